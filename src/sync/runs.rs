//! `sync_runs`: one row per pull, push or sweep, updated as the run moves through its phases and
//! published on the change bus (`syncProgress`).

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::Db;
use crate::db::models::SyncRun;
use crate::db::schema::sync_runs;
use crate::error::AppError;
use crate::events::Bus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    FullPull,
    IncrementalPull,
    Push,
    Sweep,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::FullPull => "full_pull",
            RunKind::IncrementalPull => "incremental_pull",
            RunKind::Push => "push",
            RunKind::Sweep => "sweep",
        }
    }
}

/// Counters of a run, written to its row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub fetched: i32,
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub pushed: i32,
    pub failed: i32,
    pub conflicts: i32,
    pub requests: i32,
    pub retries: i32,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.fetched += other.fetched;
        self.created += other.created;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.pushed += other.pushed;
        self.failed += other.failed;
        self.conflicts += other.conflicts;
    }
}

pub fn get(conn: &mut SqliteConnection, id: i64) -> Result<SyncRun, AppError> {
    Ok(sync_runs::table
        .find(id)
        .select(SyncRun::as_select())
        .first(conn)?)
}

/// A run in progress: its row id, and the bus to announce changes on.
#[derive(Clone)]
pub struct RunHandle {
    pub id: i64,
    db: Db,
    bus: Bus,
}

impl RunHandle {
    pub async fn begin(
        db: &Db,
        bus: &Bus,
        kind: RunKind,
        trigger: &str,
    ) -> Result<RunHandle, AppError> {
        let trigger = trigger.to_string();
        let run = db
            .write(move |c| {
                Ok(diesel::insert_into(sync_runs::table)
                    .values((
                        sync_runs::kind.eq(kind.as_str()),
                        sync_runs::trigger.eq(trigger),
                        sync_runs::started_at.eq(crate::time::now()),
                        sync_runs::outcome.eq("running"),
                        sync_runs::phase.eq("starting"),
                    ))
                    .returning(SyncRun::as_returning())
                    .get_result(c)?)
            })
            .await?;
        bus.publish_run(&run);
        Ok(RunHandle {
            id: run.id,
            db: db.clone(),
            bus: bus.clone(),
        })
    }

    /// Records progress (phase and counters so far) and announces it.
    pub async fn progress(&self, phase: &str, counts: &Counts) -> Result<(), AppError> {
        let (id, phase, counts) = (self.id, phase.to_string(), counts.clone());
        let run = self
            .db
            .write(move |c| {
                diesel::update(sync_runs::table.find(id))
                    .set((sync_runs::phase.eq(phase), counters(&counts)))
                    .execute(c)?;
                get(c, id)
            })
            .await?;
        self.bus.publish_run(&run);
        Ok(())
    }

    /// Finishes the run: `success`, `partial` (some records failed) or `failed` (with `error`).
    pub async fn finish(
        &self,
        outcome: &str,
        counts: &Counts,
        error: Option<String>,
    ) -> Result<SyncRun, AppError> {
        let (id, outcome, counts) = (self.id, outcome.to_string(), counts.clone());
        let run = self
            .db
            .write(move |c| {
                diesel::update(sync_runs::table.find(id))
                    .set((
                        sync_runs::outcome.eq(outcome),
                        sync_runs::phase.eq("done"),
                        sync_runs::finished_at.eq(crate::time::now()),
                        sync_runs::error.eq(error),
                        counters(&counts),
                    ))
                    .execute(c)?;
                get(c, id)
            })
            .await?;
        self.bus.publish_run(&run);
        Ok(run)
    }
}

#[allow(clippy::type_complexity)]
fn counters(
    c: &Counts,
) -> (
    diesel::dsl::Eq<sync_runs::fetched, i32>,
    diesel::dsl::Eq<sync_runs::created, i32>,
    diesel::dsl::Eq<sync_runs::updated, i32>,
    diesel::dsl::Eq<sync_runs::deleted, i32>,
    diesel::dsl::Eq<sync_runs::pushed, i32>,
    diesel::dsl::Eq<sync_runs::failed, i32>,
    diesel::dsl::Eq<sync_runs::conflicts, i32>,
    diesel::dsl::Eq<sync_runs::requests, i32>,
    diesel::dsl::Eq<sync_runs::retries, i32>,
) {
    (
        sync_runs::fetched.eq(c.fetched),
        sync_runs::created.eq(c.created),
        sync_runs::updated.eq(c.updated),
        sync_runs::deleted.eq(c.deleted),
        sync_runs::pushed.eq(c.pushed),
        sync_runs::failed.eq(c.failed),
        sync_runs::conflicts.eq(c.conflicts),
        sync_runs::requests.eq(c.requests),
        sync_runs::retries.eq(c.retries),
    )
}
