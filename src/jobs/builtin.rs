//! The jobs of the cache itself: the scheduled backup and the weekly cleanup.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::backup::{self, Reason};
use crate::db::schema::sync_runs;
use crate::state::AppState;

/// How long finished sync runs are kept.
pub const SYNC_RUNS_KEPT_DAYS: i64 = 90;

/// `BACKUP_SCHEDULE`: a checked backup, pruned to `BACKUP_KEEP`.
pub async fn backup(state: AppState) -> anyhow::Result<()> {
    let c = &state.config;
    backup::take_async(
        state.db.clone(),
        c.backup_dir.clone(),
        Reason::Scheduled,
        c.backup_keep,
    )
    .await?;
    Ok(())
}

/// `CLEANUP_SCHEDULE` (weekly): prune backups, forget sync runs older than 90 days, let SQLite
/// refresh its planner statistics (`PRAGMA optimize`) and give back free pages
/// (`PRAGMA incremental_vacuum`, which only frees pages when the database was created with
/// `auto_vacuum = INCREMENTAL`; otherwise it does nothing and costs nothing).
pub async fn cleanup(state: AppState) -> anyhow::Result<()> {
    let dir = state.config.backup_dir.clone();
    let keep = state.config.backup_keep;
    let pruned = tokio::task::spawn_blocking(move || backup::prune(&dir, keep)).await?;
    let cutoff = crate::time::now() - chrono::Duration::days(SYNC_RUNS_KEPT_DAYS);
    let deleted = state
        .db
        .write(move |c| {
            Ok(
                diesel::delete(sync_runs::table.filter(sync_runs::started_at.lt(cutoff)))
                    .filter(sync_runs::outcome.ne("running"))
                    .execute(c)?,
            )
        })
        .await?;
    state
        .db
        .run(|c| Ok(c.batch_execute("PRAGMA optimize; PRAGMA incremental_vacuum;")?))
        .await?;
    tracing::info!(
        pruned_backups = pruned.len(),
        deleted_sync_runs = deleted,
        "cleanup done"
    );
    Ok(())
}
