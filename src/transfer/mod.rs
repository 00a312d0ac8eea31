//! Moving leads in and out: CSV export, the versioned JSON dump, HTTP export.
