//! GraphQL output types, built from diesel rows with `From`. Every type and field is documented,
//! so the printed SDL (`schema.graphql`) documents the API.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Enum, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::db::models;
use crate::error::GqlResultExt;
use crate::graphql::loaders::{CampaignsLoader, EnrichmentsLoader, EventsLoader, OutboxLoader};
use crate::time::to_utc;

fn json(s: &str) -> Json<Value> {
    Json(serde_json::from_str(s).unwrap_or(Value::Null))
}

fn opt_json(s: &Option<String>) -> Option<Json<Value>> {
    s.as_deref().map(json)
}

/// Where a lead stands with Airtable.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SyncState {
    /// Equal to Airtable as of the last sync.
    Synced,
    /// Has local changes waiting in the outbox.
    Pending,
    /// A field changed on both sides; see `conflicts`.
    Conflict,
    /// Airtable rejected the last push; see `outbox`.
    Error,
    /// Local only (no Airtable configured); changes wait in the outbox.
    Local,
}

impl SyncState {
    pub fn parse(s: &str) -> SyncState {
        match s {
            "synced" => SyncState::Synced,
            "pending" => SyncState::Pending,
            "conflict" => SyncState::Conflict,
            "error" => SyncState::Error,
            _ => SyncState::Local,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "synced",
            SyncState::Pending => "pending",
            SyncState::Conflict => "conflict",
            SyncState::Error => "error",
            SyncState::Local => "local",
        }
    }
}

/// A sales lead.
pub struct Lead(pub models::Lead);

#[Object]
impl Lead {
    /// Local id (UUID).
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Airtable record id, once the lead is in Airtable.
    async fn airtable_id(&self) -> Option<&str> {
        self.0.airtable_id.as_deref()
    }
    /// Full name (required).
    async fn full_name(&self) -> &str {
        &self.0.full_name
    }
    /// Email address.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// Company name.
    async fn company(&self) -> Option<&str> {
        self.0.company.as_deref()
    }
    /// Job title.
    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }
    /// LinkedIn profile URL.
    async fn linkedin_url(&self) -> Option<&str> {
        self.0.linkedin_url.as_deref()
    }
    /// Company website.
    async fn website(&self) -> Option<&str> {
        self.0.website.as_deref()
    }
    /// Phone number.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    /// Location (city, country).
    async fn location(&self) -> Option<&str> {
        self.0.location.as_deref()
    }
    /// Industry.
    async fn industry(&self) -> Option<&str> {
        self.0.industry.as_deref()
    }
    /// Company size band, e.g. `51-200`.
    async fn company_size(&self) -> Option<&str> {
        self.0.company_size.as_deref()
    }
    /// Pipeline status (see `statuses`).
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Where the lead came from.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    /// Lead score.
    async fn score(&self) -> Option<f64> {
        self.0.score
    }
    /// Contact details verified.
    async fn verified(&self) -> bool {
        self.0.verified
    }
    /// Enrichment data present.
    async fn enriched(&self) -> bool {
        self.0.enriched
    }
    /// Waiting for enrichment.
    async fn needs_enrichment(&self) -> bool {
        self.0.needs_enrichment
    }
    /// When the lead was scraped.
    async fn scraped_at(&self) -> Option<DateTime<Utc>> {
        self.0.scraped_at.map(to_utc)
    }
    /// When the lead was last enriched.
    async fn enriched_at(&self) -> Option<DateTime<Utc>> {
        self.0.enriched_at.map(to_utc)
    }
    /// When the lead was first contacted.
    async fn contacted_at(&self) -> Option<DateTime<Utc>> {
        self.0.contacted_at.map(to_utc)
    }
    /// When the lead was created in leadcache.
    async fn created_at(&self) -> DateTime<Utc> {
        to_utc(self.0.created_at)
    }
    /// When the lead last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        to_utc(self.0.updated_at)
    }
    /// When the lead was deleted (soft delete), if it was.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at.map(to_utc)
    }
    /// Incremented on every change; pass it as `expectedVersion` to update safely.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// Airtable fields that have no local column, by Airtable field name.
    async fn extra(&self) -> Json<Value> {
        json(&self.0.extra)
    }
    /// Airtable's last-modified time of the record, as last seen.
    async fn remote_modified_at(&self) -> Option<DateTime<Utc>> {
        self.0.remote_modified_at.map(to_utc)
    }
    /// When the lead was last equal to Airtable.
    async fn synced_at(&self) -> Option<DateTime<Utc>> {
        self.0.synced_at.map(to_utc)
    }
    /// Where the lead stands with Airtable.
    async fn sync_state(&self) -> SyncState {
        SyncState::parse(&self.0.sync_state)
    }
    /// Local fields changed and not yet pushed to Airtable.
    async fn pending_fields(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let row = ctx
            .data_unchecked::<DataLoader<OutboxLoader>>()
            .load_one(self.0.id.clone())
            .await?;
        Ok(crate::leads::outbox::pending_fields(row.as_ref()))
    }
    /// For a deleted lead whose delete has not reached Airtable yet: when it will be sent
    /// (after SYNC_DELETE_GRACE). Restoring the lead before then cancels the delete and Airtable
    /// never sees it; after it, restoring creates a new Airtable record. Null otherwise.
    async fn delete_pushed_after(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<DateTime<Utc>>> {
        if self.0.deleted_at.is_none() {
            return Ok(None);
        }
        let row = ctx
            .data_unchecked::<DataLoader<OutboxLoader>>()
            .load_one(self.0.id.clone())
            .await?;
        Ok(row
            .filter(|r| r.operation == crate::leads::outbox::Op::Delete.as_str())
            .map(|r| to_utc(r.next_attempt_at)))
    }
    /// History of the lead, newest first.
    #[graphql(complexity = "crate::graphql::limits::list(first, 100, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(100)")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<LeadEvent>> {
        let first =
            crate::leads::query::check_first(i64::from(first.unwrap_or(100))).gql()? as usize;
        let events = ctx
            .data_unchecked::<DataLoader<EventsLoader>>()
            .load_one(self.0.id.clone())
            .await?;
        Ok(events
            .unwrap_or_default()
            .into_iter()
            .take(first)
            .map(LeadEvent)
            .collect())
    }
    /// Live leads that look like the same person (SPEC §11 rules: LinkedIn profile, then email,
    /// then name + company similarity >= 0.85), strongest first, each once. Nothing is merged;
    /// use `mergeLeads`. Empty for a deleted lead.
    #[graphql(
        complexity = "crate::graphql::limits::list(Some(first), 10, child_complexity) + crate::graphql::limits::COST_LOOKUP"
    )]
    async fn duplicates(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] first: i32,
    ) -> async_graphql::Result<Vec<crate::graphql::duplicates::DuplicateMatch>> {
        let first = crate::leads::query::check_first(i64::from(first)).gql()? as usize;
        if self.0.deleted_at.is_some() {
            return Ok(Vec::new());
        }
        let lead = self.0.clone();
        let found = crate::graphql::state(ctx)
            .db
            .run(move |c| crate::leads::dedup::matches(c, &lead, first))
            .await
            .gql()?;
        Ok(found.into_iter().map(Into::into).collect())
    }
    /// Enrichment data, newest first.
    #[graphql(complexity = "crate::graphql::limits::unpaged(child_complexity)")]
    async fn enrichments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Enrichment>> {
        let rows = ctx
            .data_unchecked::<DataLoader<EnrichmentsLoader>>()
            .load_one(self.0.id.clone())
            .await?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(Enrichment)
            .collect())
    }
    /// The lead's way through the pipeline, oldest stage first, from its `created` and
    /// `status_changed` history (see `leads::pipeline`).
    async fn stages(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Stage>> {
        let events = ctx
            .data_unchecked::<DataLoader<EventsLoader>>()
            .load_one(self.0.id.clone())
            .await?;
        let stages = crate::leads::pipeline::stages(
            &self.0,
            &events.unwrap_or_default(),
            crate::time::now(),
        );
        Ok(stages
            .into_iter()
            .map(|s| Stage {
                status: s.status,
                entered_at: to_utc(s.entered_at),
                left_at: s.left_at.map(to_utc),
                days: s.days,
            })
            .collect())
    }
    /// Campaigns this lead is part of.
    #[graphql(complexity = "crate::graphql::limits::unpaged(child_complexity)")]
    async fn campaigns(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CampaignMembership>> {
        let rows = ctx
            .data_unchecked::<DataLoader<CampaignsLoader>>()
            .load_one(self.0.id.clone())
            .await?;
        Ok(rows.unwrap_or_default())
    }
}

/// A stay of a lead in one pipeline status.
#[derive(SimpleObject, Clone, Debug)]
pub struct Stage {
    /// The status.
    pub status: String,
    /// When the lead entered it.
    pub entered_at: DateTime<Utc>,
    /// When it left (null: still there).
    pub left_at: Option<DateTime<Utc>>,
    /// Days spent in it (so far, for the current stage).
    pub days: f64,
}

/// One change in a lead's history.
pub struct LeadEvent(pub models::LeadEvent);

#[Object]
impl LeadEvent {
    /// Event id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The lead.
    async fn lead_id(&self) -> ID {
        ID(self.0.lead_id.clone())
    }
    /// created, updated, status_changed, enriched, note, merged, deleted, restored, pulled, pushed,
    /// conflict or resolved.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Who made the change: a token name, `airtable`, `system` or `local`.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// `{field: [old, new]}` for every field changed.
    async fn changes(&self) -> Json<Value> {
        json(&self.0.changes)
    }
    /// A note's text, or a description of the event.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        to_utc(self.0.at)
    }
}

/// Enrichment data from one provider.
pub struct Enrichment(pub models::Enrichment);

#[Object]
impl Enrichment {
    /// Enrichment id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The lead.
    async fn lead_id(&self) -> ID {
        ID(self.0.lead_id.clone())
    }
    /// Who produced the data (a tool or agent name).
    async fn provider(&self) -> &str {
        &self.0.provider
    }
    /// The data: website analysis, traits, ...
    async fn data(&self) -> Json<Value> {
        json(&self.0.data)
    }
    /// Confidence between 0 and 1.
    async fn confidence(&self) -> Option<f64> {
        self.0.confidence
    }
    /// When it was added.
    async fn at(&self) -> DateTime<Utc> {
        to_utc(self.0.at)
    }
}

/// A lead's place in a campaign.
#[derive(SimpleObject, Clone, Debug)]
pub struct CampaignMembership {
    /// The campaign.
    pub campaign_id: ID,
    /// The campaign's name.
    pub campaign_name: String,
    /// draft, sent, replied or bounced.
    pub status: String,
    /// Email subject.
    pub subject: Option<String>,
    /// Email body.
    pub body: Option<String>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the lead replied.
    pub replied_at: Option<DateTime<Utc>>,
}

/// A page of leads (Relay connection).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct LeadConnection {
    /// Leads with their cursors.
    pub edges: Vec<LeadEdge>,
    /// Paging information.
    pub page_info: PageInfo,
    #[graphql(skip)]
    pub filter: crate::leads::query::LeadFilter,
}

#[ComplexObject]
impl LeadConnection {
    /// The leads of this page.
    async fn nodes(&self) -> Vec<&Lead> {
        self.edges.iter().map(|e| &e.node).collect()
    }
    /// How many leads match the filter, on all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let state = ctx.data_unchecked::<crate::state::AppState>();
        let filter = self.filter.clone();
        state
            .db
            .run(move |c| crate::leads::query::count(c, &filter))
            .await
            .gql()
    }
}

/// A lead and its cursor.
#[derive(SimpleObject)]
pub struct LeadEdge {
    /// Pass as `after` to get the leads that follow.
    pub cursor: String,
    /// The lead.
    pub node: Lead,
}

/// Relay paging information.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// More leads follow this page.
    pub has_next_page: bool,
    /// Cursor of the last lead of this page.
    pub end_cursor: Option<String>,
}

/// What `createLead` did.
#[derive(SimpleObject)]
pub struct CreateLeadPayload {
    /// The stored lead (the existing one when the input was a duplicate).
    pub lead: Lead,
    /// A new lead was created (false: merged into a duplicate).
    pub created: bool,
    /// The existing lead the input duplicated.
    pub duplicate_of: Option<ID>,
    /// The rule that matched.
    pub matched_by: Option<crate::graphql::duplicates::DuplicateRule>,
}

/// One input of `createLeads`.
#[derive(SimpleObject)]
pub struct BulkItemResult {
    /// Position in the input list.
    pub index: i32,
    /// The stored lead, unless the input was rejected.
    pub lead: Option<Lead>,
    /// A new lead was created.
    pub created: bool,
    /// The existing lead the input duplicated.
    pub duplicate_of: Option<ID>,
    /// The rule that matched.
    pub matched_by: Option<crate::graphql::duplicates::DuplicateRule>,
    /// Why the input was rejected.
    pub error: Option<String>,
    /// The field that was wrong.
    pub error_field: Option<String>,
}

/// What `createLeads` did.
#[derive(SimpleObject)]
pub struct BulkCreatePayload {
    /// New leads created.
    pub created: i32,
    /// Inputs merged into existing leads.
    pub merged: i32,
    /// Inputs rejected.
    pub failed: i32,
    /// One result per input, in input order.
    pub results: Vec<BulkItemResult>,
}

/// Lets a field through only for callers with at least this role; others get `FORBIDDEN` on that
/// field (null, with the error), the rest of the object still answers.
pub struct RoleGuard(pub crate::auth::Role);

impl async_graphql::Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        crate::graphql::caller(ctx)?.require(self.0).gql()
    }
}

/// The state of the local cache.
#[derive(SimpleObject)]
pub struct CacheStatus {
    /// Leads in the cache (not deleted).
    pub total_leads: i64,
    /// The last pull is younger than CACHE_REFRESH_INTERVAL (always true in local-only mode).
    pub fresh: bool,
    /// Seconds since the last pull.
    pub age_seconds: Option<i64>,
    /// When the last full pull finished.
    pub last_full_pull: Option<DateTime<Utc>>,
    /// When the last incremental pull finished.
    pub last_incremental_pull: Option<DateTime<Utc>>,
    /// Outbox rows waiting to be pushed.
    pub pending_changes: i64,
    /// Outbox rows that failed and will be retried.
    pub failed_changes: i64,
    /// Outbox rows that gave up (retry them from the admin page).
    pub dead_changes: i64,
    /// Conflicts not yet reviewed.
    pub open_conflicts: i64,
    /// Whether Airtable answered the last request (null: not asked yet or local-only).
    pub airtable_reachable: Option<bool>,
    /// local-only, airtable or demo.
    pub mode: String,
    /// The newest backup (admin: its file name is the backup folder's, like `backups`).
    #[graphql(guard = "RoleGuard(crate::auth::Role::Admin)")]
    pub last_backup: Option<Backup>,
    /// Airtable requests made today (UTC).
    pub requests_today: i64,
    /// Airtable requests made this month (UTC).
    pub requests_this_month: i64,
}

/// A database backup.
#[derive(SimpleObject, Clone)]
pub struct Backup {
    /// File name in the backup folder.
    pub file: String,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Leads in it.
    pub lead_count: i64,
    /// ok or failed.
    pub outcome: String,
    /// scheduled, manual, pre-migration, pre-restore or pre-reset.
    pub reason: String,
}

impl From<models::BackupRow> for Backup {
    fn from(b: models::BackupRow) -> Self {
        Backup {
            file: b.file,
            created_at: to_utc(b.created_at),
            size_bytes: b.size_bytes,
            lead_count: b.lead_count,
            outcome: b.outcome,
            reason: b.reason,
        }
    }
}

/// One sync run (pull, push or sweep).
#[derive(SimpleObject, Clone)]
pub struct SyncRun {
    /// Run id.
    pub id: ID,
    /// full_pull, incremental_pull, push or sweep.
    pub kind: String,
    /// startup, schedule, manual or write.
    pub trigger: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// running, success, partial or failed.
    pub outcome: String,
    /// What it is doing now.
    pub phase: Option<String>,
    /// Records fetched from Airtable.
    pub fetched: i32,
    /// Leads created locally.
    pub created: i32,
    /// Leads updated locally.
    pub updated: i32,
    /// Leads deleted locally.
    pub deleted: i32,
    /// Changes pushed to Airtable.
    pub pushed: i32,
    /// Changes Airtable rejected.
    pub failed: i32,
    /// Conflicts found.
    pub conflicts: i32,
    /// Airtable requests made.
    pub requests: i32,
    /// Requests retried.
    pub retries: i32,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<&models::SyncRun> for SyncRun {
    fn from(r: &models::SyncRun) -> Self {
        SyncRun {
            id: ID(r.id.to_string()),
            kind: r.kind.clone(),
            trigger: r.trigger.clone(),
            started_at: to_utc(r.started_at),
            finished_at: r.finished_at.map(to_utc),
            outcome: r.outcome.clone(),
            phase: r.phase.clone(),
            fetched: r.fetched,
            created: r.created,
            updated: r.updated,
            deleted: r.deleted,
            pushed: r.pushed,
            failed: r.failed,
            conflicts: r.conflicts,
            requests: r.requests,
            retries: r.retries,
            error: r.error.clone(),
        }
    }
}

/// A field changed both locally and in Airtable since the last sync.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct SyncConflict {
    /// Conflict id.
    pub id: ID,
    /// The lead.
    pub lead_id: ID,
    /// The local field name.
    pub field: String,
    /// The local value.
    pub local_value: Option<Json<Value>>,
    /// Airtable's value.
    pub remote_value: Option<Json<Value>>,
    /// The value both sides started from.
    pub base_value: Option<Json<Value>>,
    /// The side applied: remote, local or manual.
    pub resolution: String,
    /// Not yet reviewed by a person.
    pub open: bool,
    /// When it was found.
    pub created_at: DateTime<Utc>,
    /// When a person settled it.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who settled it.
    pub resolved_by: Option<String>,
}

#[ComplexObject]
impl SyncConflict {
    /// The lead.
    async fn lead(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Lead>> {
        load_lead(ctx, &self.lead_id).await
    }
}

impl From<models::SyncConflict> for SyncConflict {
    fn from(c: models::SyncConflict) -> Self {
        SyncConflict {
            id: ID(c.id.to_string()),
            lead_id: ID(c.lead_id),
            field: c.field,
            local_value: opt_json(&c.local_value),
            remote_value: opt_json(&c.remote_value),
            base_value: opt_json(&c.base_value),
            resolution: c.resolution,
            open: c.resolved_at.is_none(),
            created_at: to_utc(c.created_at),
            resolved_at: c.resolved_at.map(to_utc),
            resolved_by: c.resolved_by,
        }
    }
}

/// State of an outbox row.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum OutboxState {
    /// Waiting for the next push.
    Pending,
    /// Failed; retried with backoff.
    Failed,
    /// Gave up after repeated failures; retry by hand.
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Failed => "failed",
            OutboxState::Dead => "dead",
        }
    }
}

/// Local changes of one lead waiting for Airtable.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct OutboxEntry {
    /// The lead.
    pub lead_id: ID,
    /// create, update or delete.
    pub operation: String,
    /// Changed fields.
    pub fields: Vec<String>,
    /// Failed attempts so far.
    pub attempts: i32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// Airtable's message for the last failure.
    pub last_error: Option<String>,
    /// pending, failed or dead.
    pub state: OutboxState,
    /// When the first unpushed change was made.
    pub created_at: DateTime<Utc>,
}

#[ComplexObject]
impl OutboxEntry {
    /// The lead.
    async fn lead(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Lead>> {
        load_lead(ctx, &self.lead_id).await
    }
}

impl From<models::OutboxRow> for OutboxEntry {
    fn from(r: models::OutboxRow) -> Self {
        let fields = crate::leads::outbox::pending_fields(Some(&r));
        OutboxEntry {
            lead_id: ID(r.lead_id),
            operation: r.operation,
            fields,
            attempts: r.attempts,
            next_attempt_at: to_utc(r.next_attempt_at),
            last_error: r.last_error,
            state: match r.state.as_str() {
                "failed" => OutboxState::Failed,
                "dead" => OutboxState::Dead,
                _ => OutboxState::Pending,
            },
            created_at: to_utc(r.created_at),
        }
    }
}

async fn load_lead(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<Option<Lead>> {
    let state = ctx.data_unchecked::<crate::state::AppState>();
    let id = id.to_string();
    let lead = state
        .db
        .run(move |c| crate::leads::store::find(c, &id))
        .await
        .gql()?;
    Ok(lead.map(Lead))
}
