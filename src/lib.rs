//! leadcache: a local SQLite copy of an Airtable lead table, served to agents over GraphQL.
//!
//! The binary (`src/main.rs`) only parses the command line and calls [`cli::run`]. Everything else
//! lives here, by area: `config` (settings), `db` (schema, pool, migrations), `leads` (the lead
//! store: validation, history, outbox, queries, search), `graphql` (the API), `server` (the HTTP
//! router), `airtable` (client and simulator), `sync` (pull, push, conflicts), `jobs`, `web`
//! (the embedded admin page).

pub mod airtable;
pub mod app;
pub mod auth;
pub mod backup;
pub mod campaigns;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod graphql;
pub mod guard;
pub mod jobs;
pub mod leads;
pub mod maintenance;
pub mod metrics;
pub mod report;
pub mod seed;
pub mod server;
pub mod sqlconsole;
pub mod state;
pub mod status;
pub mod sync;
pub mod time;
pub mod tokens;
pub mod transfer;
pub mod web;
pub mod ws;
