//! Sync operations: refresh, push (with a dry run), conflict resolution, outbox retries.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};

use crate::auth::Role;
use crate::error::{AppError, GqlResultExt};
use crate::graphql::types::{SyncConflict, SyncRun};
use crate::graphql::{caller, state};
use crate::sync::conflicts::{self, Side};
use crate::sync::runs::RunKind;

/// Which side of a conflict to keep.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ConflictSide {
    /// Keep the local value and push it to Airtable.
    Local,
    /// Keep Airtable's value.
    Remote,
}

/// One request a push would send (dry run).
#[derive(SimpleObject)]
pub struct PlannedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query under the Airtable API URL.
    pub path: String,
    /// JSON body.
    pub body: async_graphql::Json<serde_json::Value>,
}

/// What a push would do (dry run).
#[derive(SimpleObject)]
pub struct PushPlan {
    /// Outbox rows due now.
    pub changes: i32,
    /// The exact requests, in order.
    pub requests: Vec<PlannedRequest>,
}

#[derive(Default)]
pub struct SyncQuery;

#[Object]
impl SyncQuery {
    /// The Airtable requests the next push would send, without sending them.
    async fn push_plan(&self, ctx: &Context<'_>) -> async_graphql::Result<PushPlan> {
        caller(ctx)?.require(Role::Read).gql()?;
        let engine = state(ctx).engine().gql()?.clone();
        let items = engine
            .db
            .run(|c| crate::sync::push::due(c, 10_000))
            .await
            .gql()?;
        let requests = crate::sync::push::plan(&engine, &items)
            .into_iter()
            .map(|p| PlannedRequest {
                method: p.method.to_string(),
                path: p.path,
                body: async_graphql::Json(p.body),
            })
            .collect();
        Ok(PushPlan {
            changes: items.len() as i32,
            requests,
        })
    }
}

#[derive(Default)]
pub struct SyncMutation;

#[Object]
impl SyncMutation {
    /// Pulls from Airtable in the background: changes since the last pull, or everything with
    /// `force: true` (also when the cache was never filled). Returns the run (or the one already going).
    async fn refresh_cache(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(false)")] force: Option<bool>,
    ) -> async_graphql::Result<SyncRun> {
        caller(ctx)?.require(Role::Write).gql()?;
        let engine = state(ctx).engine().gql()?;
        let never = engine
            .db
            .run(|c| crate::db::meta::get(c, crate::db::meta::LAST_FULL_PULL))
            .await
            .gql()?
            .is_none();
        let kind = if force.unwrap_or(false) || never {
            RunKind::FullPull
        } else {
            RunKind::IncrementalPull
        };
        let run = engine.start(kind, "manual").await.gql()?;
        Ok(SyncRun::from(&run))
    }

    /// Pushes the outbox to Airtable in the background; returns the run (or the one already going).
    async fn sync_pending_changes(&self, ctx: &Context<'_>) -> async_graphql::Result<SyncRun> {
        caller(ctx)?.require(Role::Write).gql()?;
        let run = state(ctx)
            .engine()
            .gql()?
            .start(RunKind::Push, "manual")
            .await
            .gql()?;
        Ok(SyncRun::from(&run))
    }

    /// Settles a conflict: keep the local value (pushed to Airtable) or Airtable's.
    async fn resolve_conflict(
        &self,
        ctx: &Context<'_>,
        id: ID,
        keep: ConflictSide,
    ) -> async_graphql::Result<SyncConflict> {
        let caller = caller(ctx)?;
        caller.require(Role::Write).gql()?;
        let state = state(ctx);
        let id: i64 = id
            .parse()
            .map_err(|_| AppError::validation("id", "not a conflict id"))
            .gql()?;
        let side = if keep == ConflictSide::Local {
            Side::Local
        } else {
            Side::Remote
        };
        let wctx = state.write_ctx(&caller.name);
        let (conflict, written) = state
            .db
            .write(move |c| conflicts::resolve(c, &wctx, id, side))
            .await
            .gql()?;
        if let Some(w) = written {
            state.bus.publish(&w, &caller.name);
        }
        if side == Side::Local {
            state.lead_written();
        }
        Ok(SyncConflict::from(conflict))
    }

    /// Makes failed and dead outbox rows due again (one lead, or all). Returns how many.
    async fn retry_outbox(
        &self,
        ctx: &Context<'_>,
        lead_id: Option<ID>,
    ) -> async_graphql::Result<i32> {
        caller(ctx)?.require(Role::Write).gql()?;
        let state = state(ctx);
        let n = state
            .db
            .write(move |c| {
                crate::leads::outbox::retry(
                    c,
                    lead_id.as_ref().map(|i| i.as_str()),
                    crate::time::now(),
                )
            })
            .await
            .gql()?;
        if n > 0 {
            state.lead_written();
        }
        Ok(n as i32)
    }
}
