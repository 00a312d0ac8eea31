//! Query resolvers.

use async_graphql::{Context, ID, Object};
use diesel::prelude::*;

use crate::auth::Role;
use crate::db::models;
use crate::db::schema::{backups, sync_conflicts, sync_runs};
use crate::error::GqlResultExt;
use crate::graphql::inputs::{LeadFilterInput, LeadOrder};
use crate::graphql::types::*;
use crate::graphql::{caller, state};
use crate::leads::query::{self, Order};
use crate::sync::read_through::OperationFetches;

/// The schema extension that gives every operation (query, mutation, subscription, each
/// request of a batch) its own [`OperationFetches`], which `lead` counts its read-through
/// fetches in (`READ_THROUGH_PER_REQUEST`).
pub struct ReadThroughBudget;

impl async_graphql::extensions::ExtensionFactory for ReadThroughBudget {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(ReadThroughBudgetExtension)
    }
}

struct ReadThroughBudgetExtension;

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for ReadThroughBudgetExtension {
    async fn prepare_request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        request: async_graphql::Request,
        next: async_graphql::extensions::NextPrepareRequest<'_>,
    ) -> async_graphql::ServerResult<async_graphql::Request> {
        next.run(ctx, request.data(OperationFetches::default()))
            .await
    }
}

#[derive(Default)]
pub struct LeadsQuery;

#[Object]
impl LeadsQuery {
    /// One lead by local id or Airtable record id (`rec...`); deleted leads included. A record id
    /// not in the cache is fetched from Airtable and cached: at most `READ_THROUGH_PER_REQUEST`
    /// (5) such fetches per operation and `READ_THROUGH_PER_MINUTE` (30) a minute for everybody,
    /// else null with LIMIT; none while Airtable is paused or backing off (UNAVAILABLE).
    #[graphql(complexity = "crate::graphql::limits::COST_READ_THROUGH + child_complexity")]
    async fn lead(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Lead>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let state = state(ctx);
        let key = id.to_string();
        let found = state
            .db
            .run(move |c| crate::leads::store::find(c, &key))
            .await
            .gql()?;
        if found.is_some() {
            crate::metrics::record_cache_hit();
            return Ok(found.map(Lead));
        }
        // Read-through: an Airtable record id not in the cache is fetched (one quick attempt),
        // within the operation's and the minute's budgets (`sync::read_through`).
        match &state.sync {
            Some(engine) if crate::leads::store::is_airtable_id(&id) => {
                crate::metrics::record_cache_miss();
                // `schema()` installs `ReadThroughBudget`, so the slot is always there; a schema
                // built without it still has the shared per-minute cap.
                let fetches = ctx
                    .data_opt::<OperationFetches>()
                    .cloned()
                    .unwrap_or_default();
                Ok(engine.read_through(&id, &fetches).await.gql()?.map(Lead))
            }
            _ => Ok(None),
        }
    }

    /// Leads matching a filter and an optional full-text search, in pages (Relay connection).
    /// Default order: most recently updated first.
    #[graphql(complexity = "crate::graphql::limits::list(first, 50, child_complexity)")]
    async fn leads(
        &self,
        ctx: &Context<'_>,
        filter: Option<LeadFilterInput>,
        search: Option<String>,
        order_by: Option<Vec<LeadOrder>>,
        #[graphql(default_with = "Some(50)")] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<LeadConnection> {
        caller(ctx)?.require(Role::Read).gql()?;
        let state = state(ctx);
        let filter = filter.unwrap_or_default().into_filter(search);
        let order: Vec<Order> = order_by
            .unwrap_or_default()
            .into_iter()
            .map(Order::from)
            .collect();
        if order.len() > 4 {
            return Err(crate::error::AppError::validation(
                "orderBy",
                "at most 4 keys",
            ))
            .gql();
        }
        let f = filter.clone();
        let page_order = order.clone();
        let page = state
            .db
            .run(move |c| {
                query::list(
                    c,
                    &f,
                    &page_order,
                    i64::from(first.unwrap_or(50)),
                    after.as_deref(),
                )
            })
            .await
            .gql()?;
        let order = if order.is_empty() {
            query::DEFAULT_ORDER.to_vec()
        } else {
            order
        };
        let edges: Vec<LeadEdge> = page
            .rows
            .into_iter()
            .map(|row| LeadEdge {
                cursor: query::encode_cursor(&order, &row),
                node: Lead(row.lead),
            })
            .collect();
        let end_cursor = edges.last().map(|e| e.cursor.clone());
        Ok(LeadConnection {
            edges,
            page_info: PageInfo {
                has_next_page: page.has_next,
                end_cursor,
            },
            filter,
        })
    }

    /// Leads of one status, most recently updated first.
    #[graphql(complexity = "crate::graphql::limits::list(first, 100, child_complexity)")]
    async fn leads_by_status(
        &self,
        ctx: &Context<'_>,
        status: String,
        #[graphql(default_with = "Some(100)")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<Lead>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let filter = query::LeadFilter {
            status: Some(vec![status]),
            ..Default::default()
        };
        let page = state(ctx)
            .db
            .run(move |c| {
                query::list(
                    c,
                    &filter,
                    query::DEFAULT_ORDER,
                    i64::from(first.unwrap_or(100)),
                    None,
                )
            })
            .await
            .gql()?;
        Ok(page.rows.into_iter().map(|r| Lead(r.lead)).collect())
    }

    /// Full-text search over name, company, email, title, location and industry, best match first.
    /// Words match as prefixes (`acm` finds Acme); every word must match.
    #[graphql(
        complexity = "crate::graphql::limits::list(first, 20, child_complexity) + crate::graphql::limits::COST_SEARCH"
    )]
    async fn search_leads(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default_with = "Some(20)")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<Lead>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let leads = state(ctx)
            .db
            .run(move |c| crate::leads::search::search(c, &query, i64::from(first.unwrap_or(20))))
            .await
            .gql()?;
        Ok(leads.into_iter().map(Lead).collect())
    }

    /// The statuses accepted for writes, in pipeline order (LEAD_STATUSES).
    async fn statuses(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        caller(ctx)?.require(Role::Read).gql()?;
        Ok(state(ctx).config.lead_statuses.clone())
    }

    /// Freshness, outbox and conflict counts of the local cache.
    #[graphql(complexity = "crate::graphql::limits::COST_STATUS + child_complexity")]
    async fn cache_status(&self, ctx: &Context<'_>) -> async_graphql::Result<CacheStatus> {
        caller(ctx)?.require(Role::Read).gql()?;
        crate::status::cache_status(state(ctx)).await.gql()
    }

    /// The latest sync runs, newest first.
    #[graphql(complexity = "crate::graphql::limits::list(first, 20, child_complexity)")]
    async fn sync_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(20)")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<SyncRun>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let first = query::check_first(i64::from(first.unwrap_or(20))).gql()?;
        let rows: Vec<models::SyncRun> = state(ctx)
            .db
            .run(move |c| {
                Ok(sync_runs::table
                    .order(sync_runs::id.desc())
                    .limit(first)
                    .select(models::SyncRun::as_select())
                    .load(c)?)
            })
            .await
            .gql()?;
        Ok(rows.iter().map(SyncRun::from).collect())
    }

    /// Sync conflicts: open ones (default) or settled ones, newest first.
    #[graphql(complexity = "crate::graphql::limits::unpaged(child_complexity)")]
    async fn conflicts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(true)")] open: Option<bool>,
    ) -> async_graphql::Result<Vec<SyncConflict>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let rows: Vec<models::SyncConflict> = state(ctx)
            .db
            .run(move |c| {
                let q = sync_conflicts::table
                    .select(models::SyncConflict::as_select())
                    .into_boxed();
                let q = if open.unwrap_or(true) {
                    q.filter(sync_conflicts::resolved_at.is_null())
                } else {
                    q.filter(sync_conflicts::resolved_at.is_not_null())
                };
                Ok(q.order(sync_conflicts::id.desc())
                    .limit(query::MAX_FIRST)
                    .load(c)?)
            })
            .await
            .gql()?;
        Ok(rows.into_iter().map(SyncConflict::from).collect())
    }

    /// Local changes waiting for Airtable, oldest first (at most 1000).
    #[graphql(complexity = "crate::graphql::limits::unpaged(child_complexity)")]
    async fn outbox(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "state")] state_filter: Option<OutboxState>,
    ) -> async_graphql::Result<Vec<OutboxEntry>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let wanted = state_filter.map(|s| s.as_str());
        let rows = state(ctx)
            .db
            .run(move |c| crate::leads::outbox::list(c, wanted, query::MAX_FIRST))
            .await
            .gql()?;
        Ok(rows.into_iter().map(OutboxEntry::from).collect())
    }

    /// Backups, newest first (admin).
    #[graphql(complexity = "crate::graphql::limits::unpaged(child_complexity)")]
    async fn backups(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Backup>> {
        caller(ctx)?.require(Role::Admin).gql()?;
        let rows: Vec<models::BackupRow> = state(ctx)
            .db
            .run(|c| {
                Ok(backups::table
                    .order(backups::id.desc())
                    .limit(query::MAX_FIRST)
                    .select(models::BackupRow::as_select())
                    .load(c)?)
            })
            .await
            .gql()?;
        Ok(rows.into_iter().map(Backup::from).collect())
    }
}
