//! `cache_meta`: small key/value facts about the cache (last pulls, the pull watermark, ...).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::schema::cache_meta;
use crate::error::AppError;

pub const LAST_FULL_PULL: &str = "last_full_pull";
pub const LAST_INCREMENTAL_PULL: &str = "last_incremental_pull";
pub const PULL_WATERMARK: &str = "pull_watermark";
pub const LAST_SWEEP: &str = "last_sweep";

pub fn get(conn: &mut SqliteConnection, key: &str) -> Result<Option<String>, AppError> {
    Ok(cache_meta::table
        .find(key)
        .select(cache_meta::value)
        .first::<String>(conn)
        .optional()?)
}

pub fn set(conn: &mut SqliteConnection, key: &str, value: &str) -> Result<(), AppError> {
    let now = crate::time::now();
    diesel::insert_into(cache_meta::table)
        .values((
            cache_meta::key.eq(key),
            cache_meta::value.eq(value),
            cache_meta::updated_at.eq(now),
        ))
        .on_conflict(cache_meta::key)
        .do_update()
        .set((cache_meta::value.eq(value), cache_meta::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

pub fn remove(conn: &mut SqliteConnection, key: &str) -> Result<(), AppError> {
    diesel::delete(cache_meta::table.find(key)).execute(conn)?;
    Ok(())
}

/// Removes every key starting with `prefix`.
pub fn remove_prefix(conn: &mut SqliteConnection, prefix: &str) -> Result<(), AppError> {
    let pattern = format!("{}%", prefix.replace('%', "\\%").replace('_', "\\_"));
    diesel::delete(cache_meta::table.filter(cache_meta::key.like(pattern).escape('\\')))
        .execute(conn)?;
    Ok(())
}

/// Keys starting with `prefix`, with their values, in key order.
pub fn with_prefix(
    conn: &mut SqliteConnection,
    prefix: &str,
) -> Result<Vec<(String, String)>, AppError> {
    let pattern = format!("{}%", prefix.replace('%', "\\%").replace('_', "\\_"));
    Ok(cache_meta::table
        .filter(cache_meta::key.like(pattern).escape('\\'))
        .order(cache_meta::key)
        .select((cache_meta::key, cache_meta::value))
        .load(conn)?)
}

pub fn get_time(conn: &mut SqliteConnection, key: &str) -> Result<Option<NaiveDateTime>, AppError> {
    Ok(get(conn, key)?.and_then(|v| crate::time::parse(&v)))
}

pub fn set_time(conn: &mut SqliteConnection, key: &str, at: NaiveDateTime) -> Result<(), AppError> {
    set(conn, key, &crate::time::format(at))
}
