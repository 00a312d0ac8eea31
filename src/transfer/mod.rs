//! Moving leads in and out (SPEC §9, §12): the streaming CSV export, the versioned JSON dump and
//! its importer, the shared filter parser, the HTTP export endpoints, and legacy JSON lead files
//! (`legacy`).

pub mod cli;
pub mod dump;
pub mod export;
pub mod filter;
pub mod http;
pub mod legacy;
