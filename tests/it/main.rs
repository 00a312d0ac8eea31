//! The integration tests: one binary, a module per area, each test on its own server and database.

mod support;

mod backup;
mod export;
mod jobs;
mod leads;
mod schema;
