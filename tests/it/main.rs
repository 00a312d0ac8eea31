//! The integration tests: one binary, a module per area, each test on its own server and database.

mod support;

mod browser;
mod leads;
mod schema;
mod subscriptions;
