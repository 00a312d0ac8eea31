//! `lead_events`: the append-only history of every lead.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde_json::{Map, Value};

use crate::db::models::{LeadEvent, NewLeadEvent};
use crate::db::schema::lead_events;
use crate::error::AppError;

/// The kinds of event (SPEC §3).
pub mod kind {
    pub const CREATED: &str = "created";
    pub const UPDATED: &str = "updated";
    pub const STATUS_CHANGED: &str = "status_changed";
    pub const ENRICHED: &str = "enriched";
    pub const NOTE: &str = "note";
    pub const MERGED: &str = "merged";
    pub const DELETED: &str = "deleted";
    pub const RESTORED: &str = "restored";
    pub const PULLED: &str = "pulled";
    pub const PUSHED: &str = "pushed";
    pub const CONFLICT: &str = "conflict";
    pub const RESOLVED: &str = "resolved";
}

/// Appends one event. An event that moves the lead through the pipeline (or in or out of the
/// live set) also refreshes its stored stays (`leads::stays`), so record it after the lead's row
/// is written.
pub fn record(
    conn: &mut SqliteConnection,
    lead_id: &str,
    kind: &str,
    actor: &str,
    changes: &Map<String, Value>,
    message: Option<&str>,
    at: NaiveDateTime,
) -> Result<LeadEvent, AppError> {
    let row = NewLeadEvent {
        lead_id: lead_id.to_string(),
        kind: kind.to_string(),
        actor: actor.to_string(),
        changes: serde_json::to_string(changes)?,
        message: message.map(str::to_string),
        at,
    };
    let event = diesel::insert_into(lead_events::table)
        .values(&row)
        .returning(LeadEvent::as_returning())
        .get_result(conn)?;
    if kind == self::kind::CREATED {
        crate::leads::stays::created(conn, lead_id, created_status(changes), at)?;
    } else if crate::leads::stays::moves_pipeline(kind) {
        crate::leads::stays::refresh(conn, lead_id)?;
    }
    Ok(event)
}

/// The status a lead was created with, from its `created` event's changes.
fn created_status(changes: &Map<String, Value>) -> Option<&str> {
    changes
        .get("status")
        .and_then(|pair| pair.get(1))
        .and_then(Value::as_str)
}

/// One event for [`record_many`].
pub struct Event<'a> {
    pub lead_id: &'a str,
    pub kind: &'a str,
    pub changes: &'a Map<String, Value>,
    pub message: Option<&'a str>,
    pub at: NaiveDateTime,
}

/// [`record`] for many events, in multi-row INSERTs: what recording each would store, the
/// stays included, without reading the events back.
pub fn record_many(
    conn: &mut SqliteConnection,
    actor: &str,
    events: &[Event<'_>],
) -> Result<(), AppError> {
    let rows = events
        .iter()
        .map(|e| {
            Ok(NewLeadEvent {
                lead_id: e.lead_id.to_string(),
                kind: e.kind.to_string(),
                actor: actor.to_string(),
                changes: serde_json::to_string(e.changes)?,
                message: e.message.map(str::to_string),
                at: e.at,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    crate::db::batch::insert::<_, NewLeadEvent>(conn, lead_events::table, &rows)?;
    let mut first_stays = Vec::new();
    let mut moved = Vec::new();
    for e in events {
        if e.kind == kind::CREATED {
            first_stays.push((e.lead_id, created_status(e.changes), e.at));
        } else if crate::leads::stays::moves_pipeline(e.kind) {
            moved.push(e.lead_id.to_string());
        }
    }
    crate::leads::stays::created_many(conn, &first_stays)?;
    moved.sort_unstable();
    moved.dedup();
    crate::leads::stays::refresh_many(conn, &moved)
}

/// Records a change as history: a `status_changed` event for the status (the pipeline history
/// reads these) and one event of `kind` for the other fields, when there are any.
pub fn record_change(
    conn: &mut SqliteConnection,
    lead_id: &str,
    kind: &str,
    actor: &str,
    mut changes: Map<String, Value>,
    at: NaiveDateTime,
) -> Result<(), AppError> {
    if kind != self::kind::CREATED
        && let Some(status) = changes.remove("status")
    {
        let mut only = Map::new();
        only.insert("status".into(), status);
        record(
            conn,
            lead_id,
            self::kind::STATUS_CHANGED,
            actor,
            &only,
            None,
            at,
        )?;
    }
    if !changes.is_empty() || kind == self::kind::CREATED {
        record(conn, lead_id, kind, actor, &changes, None, at)?;
    }
    Ok(())
}

/// Events of many leads at once (the DataLoader), newest first per lead.
pub fn for_leads(
    conn: &mut SqliteConnection,
    ids: &[String],
    per_lead: i64,
) -> Result<Vec<LeadEvent>, AppError> {
    let rows: Vec<LeadEvent> = lead_events::table
        .filter(lead_events::lead_id.eq_any(ids))
        .order((
            lead_events::lead_id,
            lead_events::at.desc(),
            lead_events::id.desc(),
        ))
        .select(LeadEvent::as_select())
        .load(conn)?;
    // Keep `per_lead` of each lead (rows are grouped by lead, newest first).
    let mut out = Vec::with_capacity(rows.len());
    let mut current: Option<String> = None;
    let mut n = 0;
    for e in rows {
        if current.as_deref() != Some(e.lead_id.as_str()) {
            current = Some(e.lead_id.clone());
            n = 0;
        }
        n += 1;
        if n <= per_lead {
            out.push(e);
        }
    }
    Ok(out)
}
