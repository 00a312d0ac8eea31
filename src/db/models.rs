//! Diesel rows: one struct per table shape. API shapes live in `crate::graphql::types` and are
//! built from these with `From`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::*;

/// A lead as stored, without the internal `rid`. Used for inserts, whole-row updates and reads.
///
/// `treat_none_as_null` (for updates) and `treat_none_as_default_value = false` (for inserts):
/// `None` is bound as NULL. With `DEFAULT` in the VALUES, diesel turns a multi-row INSERT on
/// SQLite into one statement per row inside a savepoint, which costs bulk writes most of their time.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(
    table_name = leads,
    check_for_backend(diesel::sqlite::Sqlite),
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
pub struct Lead {
    pub id: String,
    pub airtable_id: Option<String>,
    pub full_name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub linkedin_url: Option<String>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub location: Option<String>,
    pub industry: Option<String>,
    pub company_size: Option<String>,
    pub status: String,
    pub source: Option<String>,
    pub score: Option<f64>,
    pub verified: bool,
    pub enriched: bool,
    pub needs_enrichment: bool,
    pub scraped_at: Option<NaiveDateTime>,
    pub enriched_at: Option<NaiveDateTime>,
    pub contacted_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    pub version: i32,
    pub extra: String,
    pub remote_fields: Option<String>,
    pub remote_modified_at: Option<NaiveDateTime>,
    pub synced_at: Option<NaiveDateTime>,
    pub sync_state: String,
    pub email_key: Option<String>,
    pub linkedin_key: Option<String>,
    pub name_company_key: Option<String>,
    pub company_key: Option<String>,
}

/// A lead with its row id, for keyset pagination and the full-text index.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = leads, check_for_backend(diesel::sqlite::Sqlite))]
pub struct LeadRow {
    pub rid: i64,
    #[diesel(embed)]
    pub lead: Lead,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = lead_events, check_for_backend(diesel::sqlite::Sqlite))]
pub struct LeadEvent {
    pub id: i64,
    pub lead_id: String,
    pub kind: String,
    pub actor: String,
    pub changes: String,
    pub message: Option<String>,
    pub at: NaiveDateTime,
}

/// `None` is bound as NULL, not `DEFAULT`, so many events go in one multi-row INSERT (see
/// [`Lead`]). Owned, not borrowed: diesel keeps the prepared statement of a fixed-size batch only
/// for `'static` row types (see [`crate::db::batch`]).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = lead_events, treat_none_as_default_value = false)]
pub struct NewLeadEvent {
    pub lead_id: String,
    pub kind: String,
    pub actor: String,
    pub changes: String,
    pub message: Option<String>,
    pub at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = enrichments, check_for_backend(diesel::sqlite::Sqlite))]
pub struct Enrichment {
    pub id: i64,
    pub lead_id: String,
    pub provider: String,
    pub data: String,
    pub confidence: Option<f64>,
    pub at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = enrichments)]
pub struct NewEnrichment<'a> {
    pub lead_id: &'a str,
    pub provider: &'a str,
    pub data: String,
    pub confidence: Option<f64>,
    pub at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = campaigns, check_for_backend(diesel::sqlite::Sqlite))]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = campaign_leads, check_for_backend(diesel::sqlite::Sqlite), treat_none_as_null = true)]
pub struct CampaignLead {
    pub campaign_id: String,
    pub lead_id: String,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub status: String,
    pub sent_at: Option<NaiveDateTime>,
    pub replied_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// `None` is bound as NULL, not `DEFAULT`, so many rows go in one multi-row INSERT (see [`Lead`]).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(
    table_name = outbox,
    check_for_backend(diesel::sqlite::Sqlite),
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
pub struct OutboxRow {
    pub lead_id: String,
    pub operation: String,
    pub fields: String,
    pub seq: i32,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub state: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sync_runs, check_for_backend(diesel::sqlite::Sqlite))]
pub struct SyncRun {
    pub id: i64,
    pub kind: String,
    pub trigger: String,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub outcome: String,
    pub phase: Option<String>,
    pub fetched: i32,
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub pushed: i32,
    pub failed: i32,
    pub conflicts: i32,
    pub requests: i32,
    pub retries: i32,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sync_conflicts, check_for_backend(diesel::sqlite::Sqlite))]
pub struct SyncConflict {
    pub id: i64,
    pub lead_id: String,
    pub field: String,
    pub local_value: Option<String>,
    pub remote_value: Option<String>,
    pub base_value: Option<String>,
    pub resolution: String,
    pub created_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub resolved_by: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = import_log, check_for_backend(diesel::sqlite::Sqlite))]
pub struct ImportLog {
    pub id: i64,
    pub file: String,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub imported: i32,
    pub merged: i32,
    pub failed: i32,
    pub status: String,
    pub dry_run: bool,
    pub errors: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::sqlite::Sqlite))]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: String,
    pub token_hash: String,
    pub prefix: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = backups, check_for_backend(diesel::sqlite::Sqlite))]
pub struct BackupRow {
    pub id: i64,
    pub file: String,
    pub reason: String,
    pub created_at: NaiveDateTime,
    pub size_bytes: i64,
    pub duration_ms: i64,
    pub lead_count: i64,
    pub outcome: String,
    pub error: Option<String>,
}
