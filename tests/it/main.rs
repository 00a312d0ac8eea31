//! The integration tests: one binary, a module per area, each test on its own server and database.

// Test code: failing loudly on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

mod support;

mod access;
mod airtable;
mod backup;
mod browser;
mod campaigns;
mod data_safety;
mod dedup;
mod export;
mod graphql_http;
mod hostile;
mod import;
mod jobs;
mod leads;
mod limits;
mod limits_net;
mod observability;
mod pipeline;
mod props;
mod report;
mod schema;
mod subscriptions;
mod sync;
mod text_safety;
