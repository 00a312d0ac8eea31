//! Airtable: the REST client leadcache syncs with, and a simulator of the API for tests and demos.
//!
//! - [`AirtableApi`] is the set of operations the sync engine needs; [`HttpClient`] implements it
//!   with reqwest. Build one with [`HttpClient::from_config`].
//! - Errors: [`AirtableError`], one variant per class of Airtable's answers (see `error.rs` for the
//!   body shapes accepted).
//! - Pacing and retries: see `pacing.rs` (per-base rate slots shared by the whole process: at
//!   most `AIRTABLE_RATE_LIMIT` requests in any second as Airtable sees them, whatever the
//!   network's delays; a pause after 429 that spends no attempt; outages tracked per base, with
//!   one probe at a time at backoff intervals and new calls refused at once while it backs off)
//!   and [`ClientOptions`].
//! - Idempotent creates: [`AirtableApi::create`] sends an *upsert* merging on the Lead ID field
//!   (`AIRTABLE_LEAD_ID_FIELD`). Every lead carries leadcache's own id in that field, so a create
//!   whose answer was lost and is sent again matches the record it already made instead of making
//!   a second one. When the table has no such field, the client warns once and falls back to plain
//!   creates, which are then only retried when the request surely never left (connect errors, 429).
//! - Deletes are idempotent too: a record that is already gone counts as deleted (a batch that
//!   Airtable refuses with 404 is redone one record at a time).
//! - [`ListPass`] walks every page of a listing and restarts from the first page when Airtable says
//!   the offset expired; offsets are never kept across runs.
//! - Field mapping between Airtable names and local lead fields: [`FieldMap`], [`RemoteLead`].
//!   Read-only names never written back: the modified field, `Created`, anything added with
//!   [`FieldMap::add_read_only`], and any cell holding an error value.
//! - `sim`: the simulator (`leadcache airtable-sim`).

mod client;
mod error;
mod fields;
pub mod formula;
mod pacing;
mod params;
mod pass;
pub mod sim;
mod stats;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use client::{ClientOptions, HttpClient, install_crypto_provider};
pub use error::{AirtableError, UnprocessableKind, parse_error_body};
pub use fields::{FieldMap, FieldMapError, LOCAL_FIELDS, LocalType, RemoteLead};
pub use pacing::{BasePacer, Busy, Gate, Permit, ProbeToken, backoff, outage_backoff, pacer_for};
pub use pass::{ListPass, PassEvent, list_all};
pub use stats::{Outcome, RequestKind, RequestStats, StatsSnapshot};

/// Cell values of one record, keyed by Airtable field name (or field id).
pub type Fields = Map<String, Value>;

/// Most records Airtable takes in one write request.
pub const MAX_BATCH: usize = 10;

/// A record as Airtable returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    #[serde(rename = "createdTime")]
    pub created_time: DateTime<Utc>,
    #[serde(default)]
    pub fields: Fields,
}

/// One sort key of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub field: String,
    /// `false`: ascending (Airtable's default).
    pub descending: bool,
}

impl Sort {
    pub fn asc(field: impl Into<String>) -> Self {
        Sort {
            field: field.into(),
            descending: false,
        }
    }
    pub fn desc(field: impl Into<String>) -> Self {
        Sort {
            field: field.into(),
            descending: true,
        }
    }
    pub(crate) fn direction(&self) -> &'static str {
        if self.descending { "desc" } else { "asc" }
    }
}

/// Parameters of a listing (resent with every page, as Airtable's own clients do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListParams {
    /// 1..=100; `None` is Airtable's default (100).
    pub page_size: Option<u32>,
    pub max_records: Option<u32>,
    /// Only these fields (an id-only sweep asks for one small field).
    pub fields: Vec<String>,
    pub filter_by_formula: Option<String>,
    pub sort: Vec<Sort>,
    pub view: Option<String>,
    pub return_fields_by_field_id: bool,
}

/// One page of a listing. `offset` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ListPage {
    pub records: Vec<Record>,
    #[serde(default)]
    pub offset: Option<String>,
}

/// A record to change: its id and the fields to set (`null` clears a cell).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordUpdate {
    pub id: String,
    pub fields: Fields,
}

/// The answer to an upsert.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpsertResult {
    /// The records in the order sent.
    pub records: Vec<Record>,
    pub created: Vec<String>,
    pub updated: Vec<String>,
}

/// One batch write, as [`AirtableApi::preview`] describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// [`AirtableApi::create`].
    Create(Vec<Fields>),
    /// [`AirtableApi::update`].
    Update(Vec<RecordUpdate>),
    /// [`AirtableApi::delete`].
    Delete(Vec<String>),
}

/// One HTTP request as the client sends it (for dry runs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRequest {
    /// `POST`, `PATCH`, `DELETE`, ...
    pub method: String,
    /// The URL's path and query, percent-encoded as sent (`/v0/app…/Leads?records%5B%5D=rec…`).
    pub path: String,
    /// The JSON body; `None` when the request has none (deletes).
    pub body: Option<Value>,
}

/// The Airtable operations leadcache uses. All writes take at most [`MAX_BATCH`] records.
#[async_trait]
pub trait AirtableApi: Send + Sync {
    /// One page of the table.
    async fn list_page(
        &self,
        params: &ListParams,
        offset: Option<&str>,
    ) -> Result<ListPage, AirtableError>;

    /// One record; `Ok(None)` when it does not exist (any of Airtable's not-found answers).
    async fn get_record(&self, id: &str) -> Result<Option<Record>, AirtableError>;

    /// Creates records idempotently: an upsert merging on the Lead ID field (see the module docs).
    /// Returns the records in the order given.
    async fn create(&self, records: &[Fields]) -> Result<Vec<Record>, AirtableError>;

    /// PATCH: changes only the fields given.
    async fn update(&self, updates: &[RecordUpdate]) -> Result<Vec<Record>, AirtableError>;

    /// PATCH with `performUpsert.fieldsToMergeOn` (1–3 fields).
    async fn upsert(
        &self,
        records: &[Fields],
        merge_on: &[String],
    ) -> Result<UpsertResult, AirtableError>;

    /// Deletes records; returns the ids deleted. A record that is already gone counts as
    /// deleted (so a delete retried after a lost answer succeeds).
    async fn delete(&self, ids: &[String]) -> Result<Vec<String>, AirtableError>;

    /// The request that [`create`](Self::create), [`update`](Self::update) or
    /// [`delete`](Self::delete) would send for `write` now, without sending it. It is the
    /// first request of the call: a create the table refuses for its missing Lead ID field is
    /// sent again as a plain create, and a batch delete answered 404 is redone record by record.
    fn preview(&self, write: &Write) -> Result<PlannedRequest, AirtableError>;

    /// Re-reads the token from `AIRTABLE_API_KEY_FILE` (a no-op for a fixed token). The sync
    /// engine calls it before every run.
    async fn reload_token(&self) -> Result<(), AirtableError>;

    /// The request counters (snapshot before and after a run).
    fn stats(&self) -> StatsSnapshot;

    /// While the base is failing (5xx, timeouts, connection errors): how long until its next
    /// probe may go (`ZERO`: now, or one is in flight). `None` while it answers.
    fn backing_off(&self) -> Option<std::time::Duration> {
        None
    }
}
