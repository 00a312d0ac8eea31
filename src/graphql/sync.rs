//! Sync operations: refresh, push (with a dry run), conflict resolution, outbox retries. (The
//! sync state is read through `cacheStatus`, `syncRuns`, `conflicts` and `outbox` in `query.rs`.)

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
    /// HTTP method (`PATCH`, `POST`, `DELETE`).
    pub method: String,
    /// Path and query of the request URL, percent-encoded as sent
    /// (`/v0/{base}/{table}?records%5B%5D=rec…` for a delete).
    pub path: String,
    /// The JSON body; null for a request without one (deletes).
    pub body: Option<async_graphql::Json<serde_json::Value>>,
}

/// What a push would do now (dry run).
#[derive(SimpleObject)]
pub struct PushPlan {
    /// Outbox rows due now.
    pub changes: i32,
    /// The exact requests, in the order the push sends them, assuming Airtable accepts every
    /// record (a batch it rejects is split to find the bad record, which costs more requests).
    pub requests: Vec<PlannedRequest>,
}

/// What `syncPendingChanges` did: started a push, or, with `dryRun: true`, only planned one.
#[derive(SimpleObject)]
pub struct SyncPendingChangesPayload {
    /// The push run started (or the one already going). Null on a dry run, which starts nothing.
    pub run: Option<SyncRun>,
    /// Dry run only: the requests the push would send. Null when a push was started.
    pub plan: Option<PushPlan>,
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

    /// Pushes the outbox to Airtable in the background and returns the run (or the one already
    /// going). With `dryRun: true`, sends and changes nothing (no run, no attempt counted, the
    /// outbox untouched) and returns the exact Airtable requests the push would send instead.
    async fn sync_pending_changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] dry_run: bool,
    ) -> async_graphql::Result<SyncPendingChangesPayload> {
        caller(ctx)?.require(Role::Write).gql()?;
        let engine = state(ctx).engine().gql()?.clone();
        if !dry_run {
            let run = engine.start(RunKind::Push, "manual").await.gql()?;
            return Ok(SyncPendingChangesPayload {
                run: Some(SyncRun::from(&run)),
                plan: None,
            });
        }
        let due = engine
            .db
            .run(|c| crate::sync::push::due(c, i64::MAX))
            .await
            .gql()?;
        let changes = due.len() as i32;
        let requests = crate::sync::plan::plan(&engine, due)
            .map_err(|e| AppError::Internal(format!("cannot build the push plan: {e}")))
            .gql()?
            .into_iter()
            .map(|p| PlannedRequest {
                method: p.method,
                path: p.path,
                body: p.body.map(async_graphql::Json),
            })
            .collect();
        Ok(SyncPendingChangesPayload {
            run: None,
            plan: Some(PushPlan { changes, requests }),
        })
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
