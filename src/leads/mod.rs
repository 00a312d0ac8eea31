//! The lead store: validation, normalised keys, history, outbox, writes, queries and search.
//! Everything here is synchronous diesel code meant to run inside `Db::run`/`Db::write`.

pub mod bulk;
pub mod dedup;
pub mod fields;
pub mod history;
pub mod keys;
pub mod merge;
pub mod outbox;
pub mod pipeline;
pub mod query;
pub mod search;
pub mod stays;
pub mod store;
pub mod validate;

pub use store::{ChangeKind, WriteCtx, Written};
