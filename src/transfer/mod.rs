//! Moving leads in and out of leadcache in bulk: legacy JSON lead files (`legacy`).

pub mod legacy;
