//! The integration tests: one binary, a module per area, each test on its own server and database.

// Test code: failing loudly on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

mod support;

mod access;
mod hostile;
mod leads;
mod observability;
mod props;
mod schema;
