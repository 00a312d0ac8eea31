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
//!
//! **Index upkeep is deferred when a load is at least as large as the table**
//! ([`deferring_pays`]; for example the first import into a new database). Inserting a row into
//! a B-tree index keyed by something random (an email, a company) touches a random page, and
//! the full-text index is flushed and merged segment by segment; building an index in one sorted
//! pass at the end is several times cheaper. So [`with_deferred_upkeep`] drops every index on
//! `leads` except the ones duplicate lookups use ([`dedup::LOOKUP_INDEXES`]; UNIQUE constraints
//! stay too) and the full-text triggers ([`search::INDEX_TRIGGERS`]), keeping their definitions
//! from `sqlite_master`, runs the load, then creates them again and rebuilds the full-text index
//! (about a tenth of the time of an import of 100,000
//! legacy leads into an empty database; BENCHMARKS.md, session 5). It all happens in the
//! caller's transaction (required): SQLite's DDL is transactional, so an error, a rollback or a
//! dry run leaves the schema exactly as it was, and other connections never see the table
//! without its indexes. A load into a larger table keeps the indexes: rebuilding them costs more
//! than maintaining them once the table outgrows the load (100,000 leads into a table of 94,549
//! took the same time either way).

use chrono::NaiveDateTime;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::sqlite::SqliteConnection;
use serde_json::{Map, Value};

use crate::db::models::Lead;
use crate::db::schema::leads;
use crate::error::AppError;
use crate::leads::history::{self, kind};
use crate::leads::merge::{self, Outcome};
use crate::leads::{WriteCtx, dedup, fields, search, store};

/// New leads written together.
pub const BATCH: usize = 500;

/// From this many leads on, [`Placer::expect`] reads the stored leads' keys into memory instead
/// of looking each lead up (one read of 100,000 leads' keys costs about as much as 4,000 lookups).
pub const READ_KEYS_FROM: usize = 2_000;

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
    /// What to do with a duplicate ([`Placer::on_duplicate`]).
    on_duplicate: merge::OnDuplicate,
}

/// What [`with_deferred_upkeep`] dropped: the `CREATE` statements of those indexes and triggers,
/// as SQLite stored them.
#[derive(Debug)]
struct Deferred {
    indexes: Vec<String>,
    triggers: Vec<String>,
}

#[derive(QueryableByName)]
struct SchemaItem {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql: String,
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
        on_duplicate: merge::OnDuplicate::Merge,
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
        let look_up = self.on_duplicate != merge::OnDuplicate::Create;
        if look_up && self.keys.might_match(&lead) {
            self.flush(conn)?;
        }
        let found = match &self.stored {
            _ if !look_up => None,
            Some(stored) if !stored.might_match(&lead) => None,
            _ => dedup::find(conn, &lead)?,
        };
        if let Some(found) = &found
            && self.on_duplicate == merge::OnDuplicate::Fail
        {
            return Err(merge::refusal(found));
        }
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

    /// What to do with the duplicates placed from now on ([`merge::OnDuplicate::Merge`] unless
    /// set). With `Fail`, [`Placer::place`] answers a duplicate with [`merge::refusal`]'s
    /// `CONFLICT` and stores nothing of it; the caller decides whether that ends its load.
    pub fn on_duplicate(&mut self, on_duplicate: merge::OnDuplicate) {
        self.on_duplicate = on_duplicate;
    }

    /// Gets ready for `coming` leads: from [`READ_KEYS_FROM`] on, reads the stored keys.
    pub fn expect(&mut self, conn: &mut SqliteConnection, coming: usize) -> Result<(), AppError> {
        if coming >= READ_KEYS_FROM {
            self.read_stored_keys(conn)?;
        }
        Ok(())
    }

    /// Reads the keys of every stored live lead (see the module doc).
    pub fn read_stored_keys(&mut self, conn: &mut SqliteConnection) -> Result<(), AppError> {
        self.stored = Some(dedup::KeySet::of_live_leads(conn)?);
        Ok(())
    }

    /// Adds a note to a lead placed by this placer (kept with the lead if it is still waiting).
    /// A stored lead that already has a note with this text does not get it again, so an import
    /// run twice does not double its notes.
    pub fn note(
        &mut self,
        conn: &mut SqliteConnection,
        lead_id: &str,
        text: &str,
        at: NaiveDateTime,
    ) -> Result<(), AppError> {
        if self.waiting.iter().any(|l| l.id == lead_id) {
            if !self
                .notes
                .iter()
                .any(|(id, t, _)| id == lead_id && t == text)
            {
                self.notes.push((lead_id.to_string(), text.to_string(), at));
            }
            return Ok(());
        }
        if merge::has_note(conn, lead_id, text)? {
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

/// Whether loading `coming` new leads is better done with index upkeep deferred: from
/// [`READ_KEYS_FROM`] leads on, when they are at least as many as the rows in `leads` (see the
/// module doc for the measurement behind it).
pub fn deferring_pays(conn: &mut SqliteConnection, coming: usize) -> Result<bool, AppError> {
    if coming < READ_KEYS_FROM {
        return Ok(false);
    }
    let rows: i64 = leads::table.count().get_result(conn)?;
    Ok(i64::try_from(coming).unwrap_or(i64::MAX) >= rows)
}

/// Runs the load `f` with index upkeep deferred when `defer` is set (see the module doc): drops
/// the indexes on `leads` that duplicate lookups do not use and the full-text triggers, runs
/// `f`, and creates them again once `f` succeeds. Refused outside a transaction, where an error
/// in `f` would leave the table without them; inside one, the error rolls the drop back too.
pub fn with_deferred_upkeep<T>(
    conn: &mut SqliteConnection,
    defer: bool,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, AppError>,
) -> Result<T, AppError> {
    if !defer {
        return f(conn);
    }
    let deferred = defer_index_upkeep(conn)?;
    let out = f(conn)?;
    deferred.restore(conn)?;
    Ok(out)
}

fn defer_index_upkeep(conn: &mut SqliteConnection) -> Result<Deferred, AppError> {
    let depth = AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth()?;
    if depth.is_none() {
        return Err(AppError::internal(
            "index upkeep can only be deferred inside a transaction",
        ));
    }
    let items: Vec<SchemaItem> = diesel::sql_query(
        "SELECT type AS kind, name, sql FROM sqlite_master \
         WHERE tbl_name = 'leads' AND type IN ('index', 'trigger') AND sql IS NOT NULL \
         ORDER BY type, name",
    )
    .load(conn)?;
    let mut deferred = Deferred {
        indexes: Vec::new(),
        triggers: Vec::new(),
    };
    for item in items {
        let (keep, saved) = match item.kind.as_str() {
            "index" => (
                dedup::LOOKUP_INDEXES.contains(&item.name.as_str()),
                &mut deferred.indexes,
            ),
            _ => (
                !search::INDEX_TRIGGERS.contains(&item.name.as_str()),
                &mut deferred.triggers,
            ),
        };
        if keep {
            continue;
        }
        let name = item.name.replace('"', "\"\"");
        conn.batch_execute(&format!("DROP {} \"{name}\"", item.kind.to_uppercase()))?;
        saved.push(item.sql);
    }
    tracing::debug!(
        indexes = deferred.indexes.len(),
        triggers = deferred.triggers.len(),
        "index upkeep deferred to the end of the load"
    );
    Ok(deferred)
}

impl Deferred {
    /// Creates the dropped indexes and triggers again, then rebuilds the full-text index if its
    /// triggers were among them.
    fn restore(self, conn: &mut SqliteConnection) -> Result<(), AppError> {
        for sql in self.indexes.iter().chain(&self.triggers) {
            conn.batch_execute(sql)?;
        }
        if !self.triggers.is_empty() {
            search::rebuild_index(conn)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    /// Outside a transaction an error could leave `leads` without its indexes: refused, and
    /// nothing is dropped. Inside one, only the indexes lookups do not use and the full-text
    /// triggers go, and they are back once the load is done.
    #[test]
    fn deferring_needs_a_transaction_and_drops_only_what_it_restores() {
        let (_dir, db) = testing::migrated();
        let mut conn = db.conn().unwrap();
        let before = testing::schema(&mut conn);
        let err = with_deferred_upkeep(&mut conn, true, |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("inside a transaction"), "{err}");
        assert_eq!(testing::schema(&mut conn), before);

        conn.immediate_transaction::<_, AppError, _>(|c| {
            with_deferred_upkeep(c, true, |c| {
                let during = testing::schema(c);
                let gone: Vec<&str> = before
                    .iter()
                    .filter(|item| !during.contains(item))
                    .map(|(name, _)| name.as_str())
                    .collect();
                for name in &gone {
                    assert!(
                        name.starts_with("leads_") && !dedup::LOOKUP_INDEXES.contains(name),
                        "{name} was dropped"
                    );
                }
                for trigger in search::INDEX_TRIGGERS {
                    assert!(gone.contains(&trigger), "{trigger} was kept");
                }
                assert!(gone.contains(&"leads_created_at"), "{gone:?}");
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(testing::schema(&mut conn), before);
    }
}
