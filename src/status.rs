//! `cacheStatus`: how fresh the cache is and what waits to be synced.

use chrono::{Datelike, NaiveDateTime};
use diesel::prelude::*;

use crate::db::meta;
use crate::db::models::BackupRow;
use crate::db::schema::{airtable_usage, backups, leads, sync_conflicts};
use crate::error::AppError;
use crate::graphql::types::{Backup, CacheStatus};
use crate::state::{AppState, Mode};
use crate::time::to_utc;

pub async fn cache_status(state: &AppState) -> Result<CacheStatus, AppError> {
    let refresh = chrono::Duration::from_std(state.config.cache_refresh_interval)
        .unwrap_or(chrono::Duration::hours(2));
    let mode = state.mode;
    let reachable = state.airtable_reachable();
    state
        .db
        .run(move |c| {
            let total: i64 = leads::table
                .filter(leads::deleted_at.is_null())
                .count()
                .get_result(c)?;
            let last_full = meta::get_time(c, meta::LAST_FULL_PULL)?;
            let last_inc = meta::get_time(c, meta::LAST_INCREMENTAL_PULL)?;
            let last_pull: Option<NaiveDateTime> = last_full.max(last_inc);
            let now = crate::time::now();
            let age = last_pull.map(|t| (now - t).num_seconds().max(0));
            let fresh = match mode {
                Mode::LocalOnly => true,
                _ => last_pull.is_some_and(|t| now - t < refresh),
            };
            let (pending, failed, dead) = crate::leads::outbox::counts(c)?;
            let open_conflicts: i64 = sync_conflicts::table
                .filter(sync_conflicts::resolved_at.is_null())
                .count()
                .get_result(c)?;
            let last_backup: Option<BackupRow> = backups::table
                .filter(backups::outcome.eq("ok"))
                .order(backups::id.desc())
                .select(BackupRow::as_select())
                .first(c)
                .optional()?;
            let today = now.date();
            let month_start = today.with_day(1).unwrap_or(today);
            let usage: Vec<(String, i64)> = airtable_usage::table
                .filter(airtable_usage::day.ge(month_start.to_string()))
                .select((airtable_usage::day, airtable_usage::requests))
                .load(c)?;
            let today_s = today.to_string();
            Ok(CacheStatus {
                total_leads: total,
                fresh,
                age_seconds: age,
                last_full_pull: last_full.map(to_utc),
                last_incremental_pull: last_inc.map(to_utc),
                pending_changes: pending,
                failed_changes: failed,
                dead_changes: dead,
                open_conflicts,
                airtable_reachable: reachable,
                mode: mode.as_str().to_string(),
                last_backup: last_backup.map(Backup::from),
                requests_today: usage
                    .iter()
                    .filter(|(d, _)| *d == today_s)
                    .map(|(_, n)| n)
                    .sum(),
                requests_this_month: usage.iter().map(|(_, n)| n).sum(),
            })
        })
        .await
}
