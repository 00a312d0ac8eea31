//! The integration tests: one binary, a module per area, each test on its own server and database.

mod support;

mod leads;
mod schema;
mod backup;
mod export;
mod jobs;
