//! The outbox: one row per lead with changes not yet in Airtable, written in the same transaction
//! as the change itself, so an acknowledged write can never be lost.
//!
//! Rows are coalesced per lead: the operation that matters for Airtable and the union of the
//! changed fields. The rules:
//!
//! | queued | then | becomes |
//! |---|---|---|
//! | create | update | create (all fields are sent anyway) |
//! | create or update | delete | delete (a delete without an `airtable_id` is a no-op when pushed) |
//! | delete (not yet pushed) | restore | what was queued before the delete (nothing, an update of those fields, or the create) |
//! | delete (pushed: no row) | restore | create of every field (a new Airtable record) |
//!
//! A delete waits `SYNC_DELETE_GRACE` (default 10 minutes) before it is due ([`record_delete`]):
//! a `deleteLead` followed by `restoreLead` inside it is an undo that Airtable never sees
//! ([`cancel_delete`]). After it the delete is pushed and the record is gone; restoring then
//! creates a new record, with a new id.
//!
//! Every coalesced change bumps `seq`, resets `attempts` and makes the row due now: a push that
//! finishes compares `seq` with what it sent and keeps the row when it moved meanwhile.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::models::OutboxRow;
use crate::db::schema::outbox;
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "create" => Some(Op::Create),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }
}

pub mod state {
    pub const PENDING: &str = "pending";
    pub const FAILED: &str = "failed";
    pub const DEAD: &str = "dead";
}

/// Queues `op` on `fields` of a lead, coalescing with what is already queued.
pub fn record(
    conn: &mut SqliteConnection,
    lead_id: &str,
    op: Op,
    fields: &[String],
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let existing: Option<OutboxRow> = outbox::table
        .find(lead_id)
        .select(OutboxRow::as_select())
        .first(conn)
        .optional()?;
    let Some(mut row) = existing else {
        diesel::insert_into(outbox::table)
            .values(&new_row(lead_id, op, fields, now)?)
            .execute(conn)?;
        return Ok(());
    };
    let queued = Op::parse(&row.operation).unwrap_or(Op::Update);
    let merged = match (queued, op) {
        (_, Op::Delete) => Op::Delete,
        (Op::Create, _) => Op::Create,
        (Op::Delete, new) => new,
        (Op::Update, new) => new,
    };
    let mut all: Vec<String> = serde_json::from_str(&row.fields).unwrap_or_default();
    for f in fields {
        if !all.contains(f) {
            all.push(f.clone());
        }
    }
    row.fields = serde_json::to_string(&all)?;
    requeue(conn, row, merged, now)
}

/// Stores `row` as `op`, changed now: a new `seq` (a push in flight keeps it), no attempts, due
/// at once.
fn requeue(
    conn: &mut SqliteConnection,
    mut row: OutboxRow,
    op: Op,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    row.operation = op.as_str().to_string();
    row.seq += 1;
    row.attempts = 0;
    row.next_attempt_at = now;
    row.last_error = None;
    row.state = state::PENDING.to_string();
    row.updated_at = now;
    diesel::update(outbox::table.find(&row.lead_id))
        .set(&row)
        .execute(conn)?;
    Ok(())
}

/// Queues the delete of a lead, due only after `grace` (see the module doc).
pub fn record_delete(
    conn: &mut SqliteConnection,
    lead_id: &str,
    now: NaiveDateTime,
    grace: std::time::Duration,
) -> Result<(), AppError> {
    record(conn, lead_id, Op::Delete, &[], now)?;
    let due = now + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    diesel::update(outbox::table.find(lead_id))
        .set(outbox::next_attempt_at.eq(due))
        .execute(conn)?;
    Ok(())
}

/// What [`cancel_delete`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// No delete was waiting (it was pushed, or never queued).
    NotQueued,
    /// The delete was waiting with nothing queued before it: the row is gone.
    Nothing,
    /// The delete was waiting after these changes: they are queued again (an update, or the
    /// create of a lead that never reached Airtable).
    Back(Vec<String>),
}

/// Cancels a lead's delete that is still waiting in the outbox (see the module doc).
/// `in_airtable`: the lead has an Airtable record, so what was queued before the delete is an
/// update of its fields (else the create that never went out).
pub fn cancel_delete(
    conn: &mut SqliteConnection,
    lead_id: &str,
    in_airtable: bool,
    now: NaiveDateTime,
) -> Result<Cancelled, AppError> {
    let Some(row) = get(conn, lead_id)? else {
        return Ok(Cancelled::NotQueued);
    };
    if Op::parse(&row.operation) != Some(Op::Delete) {
        return Ok(Cancelled::NotQueued);
    }
    let fields: Vec<String> = serde_json::from_str(&row.fields).unwrap_or_default();
    let op = if in_airtable {
        if fields.is_empty() {
            diesel::delete(outbox::table.find(lead_id)).execute(conn)?;
            return Ok(Cancelled::Nothing);
        }
        Op::Update
    } else {
        Op::Create
    };
    requeue(conn, row, op, now)?;
    Ok(Cancelled::Back(fields))
}

/// Queues the creates of many leads that were just stored (none has a row yet, so there is
/// nothing to coalesce): `(lead id, changed fields, when)`, in multi-row INSERTs.
pub fn record_creates(
    conn: &mut SqliteConnection,
    creates: &[(&str, Vec<String>, NaiveDateTime)],
) -> Result<(), AppError> {
    let rows = creates
        .iter()
        .map(|(id, fields, at)| new_row(id, Op::Create, fields, *at))
        .collect::<Result<Vec<_>, _>>()?;
    crate::db::batch::insert::<_, OutboxRow>(conn, outbox::table, &rows)?;
    Ok(())
}

fn new_row(
    lead_id: &str,
    op: Op,
    fields: &[String],
    now: NaiveDateTime,
) -> Result<OutboxRow, AppError> {
    Ok(OutboxRow {
        lead_id: lead_id.to_string(),
        operation: op.as_str().to_string(),
        fields: serde_json::to_string(fields)?,
        seq: 1,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        state: state::PENDING.to_string(),
        created_at: now,
        updated_at: now,
    })
}

pub fn get(conn: &mut SqliteConnection, lead_id: &str) -> Result<Option<OutboxRow>, AppError> {
    Ok(outbox::table
        .find(lead_id)
        .select(OutboxRow::as_select())
        .first(conn)
        .optional()?)
}

/// Outbox rows, optionally of one state, oldest first.
pub fn list(
    conn: &mut SqliteConnection,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<OutboxRow>, AppError> {
    let mut q = outbox::table.select(OutboxRow::as_select()).into_boxed();
    if let Some(s) = state {
        q = q.filter(outbox::state.eq(s.to_string()));
    }
    Ok(q.order(outbox::created_at).limit(limit).load(conn)?)
}

/// Count of rows per state: (pending, failed, dead).
pub fn counts(conn: &mut SqliteConnection) -> Result<(i64, i64, i64), AppError> {
    let rows: Vec<(String, i64)> = outbox::table
        .group_by(outbox::state)
        .select((outbox::state, diesel::dsl::count_star()))
        .load(conn)?;
    let get = |s: &str| rows.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    Ok((get(state::PENDING), get(state::FAILED), get(state::DEAD)))
}

/// Makes failed and dead rows (of one lead, or all) due again. Returns how many.
pub fn retry(
    conn: &mut SqliteConnection,
    lead_id: Option<&str>,
    now: NaiveDateTime,
) -> Result<usize, AppError> {
    let mut q = diesel::update(outbox::table)
        .filter(outbox::state.ne(state::PENDING))
        .into_boxed();
    if let Some(id) = lead_id {
        q = q.filter(outbox::lead_id.eq(id.to_string()));
    }
    Ok(q.set((
        outbox::state.eq(state::PENDING),
        outbox::attempts.eq(0),
        outbox::next_attempt_at.eq(now),
    ))
    .execute(conn)?)
}

/// The changed fields of a lead's queued row (empty when nothing is queued).
pub fn pending_fields(row: Option<&OutboxRow>) -> Vec<String> {
    row.and_then(|r| serde_json::from_str(&r.fields).ok())
        .unwrap_or_default()
}
