//! The integration tests: one binary, a module per area, each test on its own server and database.

mod support;

mod access;
mod hostile;
mod leads;
mod observability;
mod props;
mod schema;
