//! `lead_stays`: every live lead's stays in each pipeline status, stored.
//!
//! Why stored: the report's "median days in each stage" and the funnel's "lost from" would
//! otherwise replay the whole history (about 3 events a lead; 11 s at 100,000 leads). Stored, a
//! median is a count and an `OFFSET` walk of one index.
//!
//! The rows are derived, never edited by hand: [`refresh`] recomputes one lead's stays from its
//! history with [`pipeline::stages`], the same code behind `Lead.stages`, so the report and a
//! lead's page can never disagree. [`history::record`](crate::leads::history::record) calls it for
//! every event that can move a lead through the pipeline or in or out of the live set (created,
//! pulled, status changed, deleted, restored, merged), and `history::record_many` does the same
//! for many events (bulk creates, the seeder). The dump import writes history rows directly and
//! calls [`refresh`] itself. A deleted lead has no
//! stays (the report is about live leads); restoring it recomputes them.
//!
//! A database that predates the table is filled once at start ([`ensure_built`], flag
//! `cache_meta.lead_stays_built`). `leadcache check` compares the table with a fresh derivation.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::meta;
use crate::db::models::{Lead, LeadEvent};
use crate::db::schema::{lead_events, lead_stays, leads};
use crate::error::AppError;
use crate::leads::history::kind;
use crate::leads::pipeline;

/// `cache_meta` key set once the table has been filled from the history.
pub const BUILT: &str = "lead_stays_built";

/// Event kinds after which a lead's stays are recomputed.
pub fn moves_pipeline(event_kind: &str) -> bool {
    matches!(
        event_kind,
        kind::CREATED
            | kind::PULLED
            | kind::STATUS_CHANGED
            | kind::DELETED
            | kind::RESTORED
            | kind::MERGED
    )
}

#[derive(Debug, Clone, PartialEq, Insertable, Queryable)]
#[diesel(table_name = lead_stays, treat_none_as_default_value = false)]
pub struct StayRow {
    pub lead_id: String,
    pub status: String,
    pub from_status: Option<String>,
    pub entered_at: NaiveDateTime,
    pub left_at: Option<NaiveDateTime>,
    pub days: Option<f64>,
}

/// The stays `lead` should have, from its pipeline events (any order).
fn derive(lead: &Lead, events: &[LeadEvent]) -> Vec<StayRow> {
    if lead.deleted_at.is_some() {
        return Vec::new();
    }
    // `now` only sets the length of the open stay, which is not stored.
    let stages = pipeline::stages(lead, events, lead.updated_at);
    let mut out: Vec<StayRow> = Vec::with_capacity(stages.len());
    for s in stages {
        let from_status = out.last().map(|p| p.status.clone());
        out.push(StayRow {
            lead_id: lead.id.clone(),
            status: s.status,
            from_status,
            entered_at: s.entered_at,
            left_at: s.left_at,
            days: s.left_at.map(|_| s.days),
        });
    }
    out
}

fn pipeline_events(
    conn: &mut SqliteConnection,
    ids: &[String],
) -> Result<Vec<LeadEvent>, AppError> {
    // The kind is filtered here, not in SQL: with `kind IN (...)` in the query SQLite may walk
    // the (kind, at) index over the whole history instead of the (lead_id, at) one.
    let all: Vec<LeadEvent> = lead_events::table
        .filter(lead_events::lead_id.eq_any(ids))
        .order((lead_events::lead_id, lead_events::at, lead_events::id))
        .select(LeadEvent::as_select())
        .load(conn)?;
    Ok(only_pipeline(all))
}

fn only_pipeline(events: Vec<LeadEvent>) -> Vec<LeadEvent> {
    events
        .into_iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                kind::CREATED | kind::PULLED | kind::STATUS_CHANGED
            )
        })
        .collect()
}

fn by_lead(events: Vec<LeadEvent>) -> HashMap<String, Vec<LeadEvent>> {
    let mut out: HashMap<String, Vec<LeadEvent>> = HashMap::new();
    for e in events {
        out.entry(e.lead_id.clone()).or_default().push(e);
    }
    out
}

/// Recomputes the stays of the lead `id` (none when it is deleted or gone). Not `refresh_many` of
/// one id: this runs on every pipeline write, and diesel caches these `=` statements but never
/// its `IN (...)` lists.
pub fn refresh(conn: &mut SqliteConnection, id: &str) -> Result<(), AppError> {
    diesel::delete(lead_stays::table.filter(lead_stays::lead_id.eq(id))).execute(conn)?;
    let lead: Option<Lead> = leads::table
        .filter(leads::id.eq(id))
        .filter(leads::deleted_at.is_null())
        .select(Lead::as_select())
        .first(conn)
        .optional()?;
    let Some(lead) = lead else { return Ok(()) };
    let events: Vec<LeadEvent> = lead_events::table
        .filter(lead_events::lead_id.eq(id))
        .order((lead_events::at, lead_events::id))
        .select(LeadEvent::as_select())
        .load(conn)?;
    insert(conn, &derive(&lead, &only_pipeline(events)))
}

/// The stay of a lead that was just created (its `created` event is its only history): what
/// [`refresh`] would store, without reading anything back.
pub fn created(
    conn: &mut SqliteConnection,
    id: &str,
    status: Option<&str>,
    at: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::insert_into(lead_stays::table)
        .values(first_stay(id, status, at))
        .execute(conn)?;
    Ok(())
}

/// [`created`] for many new leads: `(id, status, created at)`.
pub fn created_many(
    conn: &mut SqliteConnection,
    leads: &[(&str, Option<&str>, NaiveDateTime)],
) -> Result<(), AppError> {
    let rows: Vec<StayRow> = leads
        .iter()
        .map(|(id, status, at)| first_stay(id, *status, *at))
        .collect();
    insert(conn, &rows)
}

fn first_stay(id: &str, status: Option<&str>, at: NaiveDateTime) -> StayRow {
    StayRow {
        lead_id: id.to_string(),
        status: status.unwrap_or("new").to_string(),
        from_status: None,
        entered_at: at,
        left_at: None,
        days: None,
    }
}

/// [`refresh`] for many leads at once (a few statements per 500 leads).
pub fn refresh_many(conn: &mut SqliteConnection, ids: &[String]) -> Result<(), AppError> {
    for chunk in ids.chunks(500) {
        diesel::delete(lead_stays::table.filter(lead_stays::lead_id.eq_any(chunk)))
            .execute(conn)?;
        let found: Vec<Lead> = leads::table
            .filter(leads::id.eq_any(chunk))
            .filter(leads::deleted_at.is_null())
            .select(Lead::as_select())
            .load(conn)?;
        let ids: Vec<String> = found.iter().map(|l| l.id.clone()).collect();
        let events = by_lead(pipeline_events(conn, &ids)?);
        let rows: Vec<StayRow> = found
            .iter()
            .flat_map(|lead| derive(lead, events.get(&lead.id).map_or(&[], Vec::as_slice)))
            .collect();
        insert(conn, &rows)?;
    }
    Ok(())
}

fn insert(conn: &mut SqliteConnection, rows: &[StayRow]) -> Result<(), AppError> {
    crate::db::batch::insert::<_, StayRow>(conn, lead_stays::table, rows)?;
    Ok(())
}

/// Refills the whole table from the history, in one transaction. Returns the number of stays.
pub fn rebuild_all(conn: &mut SqliteConnection) -> Result<usize, AppError> {
    conn.immediate_transaction(|conn| {
        diesel::delete(lead_stays::table).execute(conn)?;
        let ids: Vec<String> = leads::table
            .filter(leads::deleted_at.is_null())
            .order(leads::rid)
            .select(leads::id)
            .load(conn)?;
        refresh_many(conn, &ids)?;
        meta::set(conn, BUILT, "1")?;
        Ok(lead_stays::table.count().get_result::<i64>(conn)? as usize)
    })
}

/// Fills the table once for a database that predates it.
pub fn ensure_built(conn: &mut SqliteConnection) -> Result<Option<usize>, AppError> {
    if meta::get(conn, BUILT)?.is_some() {
        return Ok(None);
    }
    rebuild_all(conn).map(Some)
}

/// Leads whose stored stays differ from a fresh derivation (for `leadcache check`), at most `limit`.
pub fn inconsistent(conn: &mut SqliteConnection, limit: usize) -> Result<Vec<String>, AppError> {
    let mut bad = Vec::new();
    let mut after = 0i64;
    loop {
        let batch: Vec<(i64, Lead)> = leads::table
            .filter(leads::rid.gt(after))
            .order(leads::rid)
            .select((leads::rid, Lead::as_select()))
            .limit(500)
            .load(conn)?;
        let Some((last, _)) = batch.last() else {
            return Ok(bad);
        };
        after = *last;
        let found: Vec<Lead> = batch.into_iter().map(|(_, lead)| lead).collect();
        let ids: Vec<String> = found.iter().map(|l| l.id.clone()).collect();
        let events = by_lead(pipeline_events(conn, &ids)?);
        let stored: Vec<StayRow> = lead_stays::table
            .filter(lead_stays::lead_id.eq_any(&ids))
            .order((lead_stays::lead_id, lead_stays::entered_at, lead_stays::id))
            .select((
                lead_stays::lead_id,
                lead_stays::status,
                lead_stays::from_status,
                lead_stays::entered_at,
                lead_stays::left_at,
                lead_stays::days,
            ))
            .load(conn)?;
        let mut stored_by_lead: HashMap<&str, Vec<&StayRow>> = HashMap::new();
        for row in &stored {
            stored_by_lead
                .entry(row.lead_id.as_str())
                .or_default()
                .push(row);
        }
        for lead in &found {
            let want = derive(lead, events.get(&lead.id).map_or(&[], Vec::as_slice));
            let have = stored_by_lead.remove(lead.id.as_str()).unwrap_or_default();
            let same = want.len() == have.len()
                && want.iter().zip(&have).all(|(w, h)| {
                    w.status == h.status
                        && w.from_status == h.from_status
                        && w.entered_at == h.entered_at
                        && w.left_at == h.left_at
                        && match (w.days, h.days) {
                            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
                            (a, b) => a == b,
                        }
                });
            if !same {
                bad.push(lead.id.clone());
                if bad.len() >= limit {
                    return Ok(bad);
                }
            }
        }
    }
}
