//! Placing many leads in one transaction (`createLeads`, legacy imports): the outcome of
//! [`merge::place`] for each lead in input order, with new leads written in batches.
//!
//! Why batches: written one by one, every lead costs a handful of single-row statements, and each
//! statement that follows a write to the full-text index makes SQLite flush that index to disk
//! (FTS5 does so at every statement savepoint), so 100,000 leads made 100,000 tiny index segments
//! to merge. Written [`BATCH`] at a time, a lead costs a share of one multi-row INSERT per table
//! and the index is flushed once per batch.
//!
//! Why the outcome is the same as placing one by one: a lead's duplicates are looked up in the
//! database ([`dedup::find`]) *and* among the leads waiting in the batch
//! ([`dedup::KeySet::might_match`], which never misses a rule [`dedup::find`] would fire). When
//! a waiting lead might match, the batch is written first and the lookup then runs against the
//! database alone, exactly as it would have after one-by-one writes. Waiting leads get the same
//! ids, times and rows they would get from [`store::insert`] (rows are assigned in input order),
//! and everything still commits or rolls back with the caller's transaction.
//!
//! When many leads are placed (an import), [`Placer::read_stored_keys`] also keeps the keys of
//! every stored live lead in memory: a lead that matches none of them and none of the waiting
//! ones is new without a query. Keys are only ever added (a merge adds the kept lead's new keys),
//! so the set stays a superset of what [`dedup::find`] could return and the outcome is unchanged.

use chrono::NaiveDateTime;
use diesel::sqlite::SqliteConnection;
use serde_json::{Map, Value};

use crate::db::models::Lead;
use crate::error::AppError;
use crate::leads::history::{self, kind};
use crate::leads::merge::{self, Outcome};
use crate::leads::{WriteCtx, dedup, fields, store};

/// New leads written together.
pub const BATCH: usize = 500;

/// Places leads for [`with_placer`].
pub struct Placer<'a> {
    ctx: &'a WriteCtx,
    waiting: Vec<Lead>,
    /// [`fields::created`] of each waiting lead, for its event and outbox row.
    waiting_changes: Vec<Map<String, Value>>,
    keys: dedup::KeySet,
    /// The keys of the stored live leads, when read ([`Placer::read_stored_keys`]).
    stored: Option<dedup::KeySet>,
    /// Notes on waiting leads: (lead id, text, at).
    notes: Vec<(String, String, NaiveDateTime)>,
}

/// Runs `f` with a [`Placer`] and writes what is still waiting when `f` succeeds. Call it inside
/// a transaction: an error anywhere leaves nothing behind.
pub fn with_placer<T>(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    f: impl FnOnce(&mut SqliteConnection, &mut Placer<'_>) -> Result<T, AppError>,
) -> Result<T, AppError> {
    let mut placer = Placer {
        ctx,
        waiting: Vec::new(),
        waiting_changes: Vec::new(),
        keys: dedup::KeySet::default(),
        stored: None,
        notes: Vec::new(),
    };
    let out = f(conn, &mut placer)?;
    placer.flush(conn)?;
    Ok(out)
}

impl Placer<'_> {
    /// [`merge::place`]: stores `lead` (at the latest when the batch is written) or merges it
    /// into the live lead it duplicates.
    pub fn place(
        &mut self,
        conn: &mut SqliteConnection,
        lead: Lead,
        offered: impl Fn(&str) -> bool,
        origin: &str,
    ) -> Result<Outcome, AppError> {
        if self.keys.might_match(&lead) {
            self.flush(conn)?;
        }
        let found = match &self.stored {
            Some(stored) if !stored.might_match(&lead) => None,
            _ => dedup::find(conn, &lead)?,
        };
        if let Some(found) = found {
            let outcome = merge::into_match(conn, self.ctx, found, &lead, offered, origin)?;
            if let Some(stored) = &mut self.stored {
                stored.add(&outcome.written.lead);
            }
            return Ok(outcome);
        }
        self.keys.add(&lead);
        let changes = fields::created(&lead);
        self.waiting.push(lead.clone());
        let written = store::created(lead, &changes);
        self.waiting_changes.push(changes);
        if self.waiting.len() >= BATCH {
            self.flush(conn)?;
        }
        Ok(Outcome {
            written,
            duplicate_of: None,
        })
    }

    /// Reads the keys of every stored live lead (see the module doc). Worth it before placing
    /// thousands of leads: one read of 100,000 leads' keys costs about as much as 4,000 lookups.
    pub fn read_stored_keys(&mut self, conn: &mut SqliteConnection) -> Result<(), AppError> {
        self.stored = Some(dedup::KeySet::of_live_leads(conn)?);
        Ok(())
    }

    /// Adds a note to a lead placed by this placer (kept with the lead if it is still waiting).
    pub fn note(
        &mut self,
        conn: &mut SqliteConnection,
        lead_id: &str,
        text: &str,
        at: NaiveDateTime,
    ) -> Result<(), AppError> {
        if self.waiting.iter().any(|l| l.id == lead_id) {
            self.notes.push((lead_id.to_string(), text.to_string(), at));
            return Ok(());
        }
        history::record(
            conn,
            lead_id,
            kind::NOTE,
            &self.ctx.actor,
            &Map::new(),
            Some(text),
            at,
        )?;
        Ok(())
    }

    /// Writes the waiting leads and their notes.
    fn flush(&mut self, conn: &mut SqliteConnection) -> Result<(), AppError> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        tracing::trace!(leads = self.waiting.len(), "writing a batch of new leads");
        store::insert_many(conn, self.ctx, &self.waiting, &self.waiting_changes)?;
        let empty = Map::new();
        let notes: Vec<history::Event<'_>> = self
            .notes
            .iter()
            .map(|(lead_id, text, at)| history::Event {
                lead_id,
                kind: kind::NOTE,
                changes: &empty,
                message: Some(text),
                at: *at,
            })
            .collect();
        history::record_many(conn, &self.ctx.actor, &notes)?;
        let written = std::mem::take(&mut self.keys);
        if let Some(stored) = &mut self.stored {
            stored.absorb(written);
        }
        self.waiting.clear();
        self.waiting_changes.clear();
        self.notes.clear();
        Ok(())
    }
}
