//! The integration tests: one binary, a module per area, each test on its own server and database.

mod support;

mod airtable;
mod browser;
mod campaigns;
mod dedup;
mod import;
mod leads;
mod pipeline;
mod report;
mod schema;
mod subscriptions;
mod sync;
