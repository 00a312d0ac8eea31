//! Push (SPEC §5.3, §5.4): the outbox, coalesced per lead, in as few requests as Airtable allows.
//!
//! Due rows are grouped into creates, updates and deletes, 10 records a request (`plan.rs`, which
//! the dry run `syncPendingChanges(dryRun: true)` shares):
//! - creates send every field plus the Lead ID (the client sends them as upserts merging on Lead
//!   ID, so a create repeated after a lost answer, or after a crash between sending and storing
//!   the answer, finds the record it made instead of making a second one); the new `airtable_id`
//!   is stored;
//! - updates PATCH only the changed fields;
//! - deletes remove the record (a record already gone counts as deleted).
//!
//! **No write without a current base** (SPEC §5.3a). Airtable has no conditional writes, so a
//! PATCH sent on a stale merge base would overwrite an edit made in Airtable since the last pull,
//! silently. Before the updates and deletes are sent, their records are read back (a list with
//! `OR(RECORD_ID() = …)`, 100 ids a request: ceil(M/100) requests for M changes, one in the common
//! case) and merged exactly as a pull would (`sync::apply`): a field changed on both sides is a
//! conflict settled by `CONFLICT_POLICY` and recorded with base, local and remote; a record found
//! gone is a deletion from Airtable (its unpushed local values are kept in the `deleted` event).
//! Then those rows are read again from the outbox and sent. The read is made per group of at most
//! 100 records, right before that group's writes, so the window left between reading and writing
//! is the time of at most ten write requests (about 2 s at 5 requests a second); an Airtable edit
//! made inside it is still overwritten, and is what the next pull then sees as the base. Creates
//! need no read (there is no record yet) and send only the fields that have a value.
//!
//! A batch Airtable rejects with 422 is split in halves until the rejected record is alone: it is
//! marked failed with Airtable's message (one warning in the log with the lead, the record and
//! the message), the others go through. Only such definitive rejections (a 422, a 404 of the
//! record) count toward a row's attempts, with exponential backoff and jitter (1 s doubling, at
//! most 5 min); after [`MAX_ATTEMPTS`] a row is `dead` and waits for a person (`retryOutbox`),
//! its reason in `last_error`.
//!
//! Airtable being down is the base's state, not the rows' (SPEC §5.4): a 5xx, timeout or
//! connection error that outlasts the client's retries, or a base backing off
//! ([`AirtableError::BackingOff`]: the client sends nothing until the base's next probe), ends
//! the run and leaves every row as it was: no attempt counted, no row backoff. While the base backs
//! off, background pushes do not start ([`SyncEngine::has_due`]), so an outage of any length costs
//! one probe per backoff interval and ends with every acknowledged write pushed. 401/403, 429 and
//! the monthly quota also end the run without counting attempts. A row changed while its push was
//! in flight (its `seq` moved) is kept for the next push.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde_json::{Map, Value};

use crate::airtable::{AirtableError, Fields, Record, Write};
use crate::db::models::{Lead, OutboxRow};
use crate::db::schema::{leads, outbox};
use crate::error::AppError;
use crate::leads::history::{self, kind};
use crate::leads::outbox::state;
use crate::sync::apply::{self, local_snapshot, remote_snapshot};
use crate::sync::plan::{self, Batch};
use crate::sync::runs::{Counts, RunHandle};
use crate::sync::{RunError, SyncEngine};

/// Failed attempts after which an outbox row is `dead`.
pub const MAX_ATTEMPTS: i32 = 8;
/// Rows handled per round (then the next round reads the outbox again).
pub(crate) const ROUND: i64 = 500;

/// One queued change, with the lead it is about.
#[derive(Debug, Clone)]
pub struct Item {
    pub row: OutboxRow,
    pub lead: Lead,
}

impl Item {
    fn fields(&self) -> Vec<String> {
        crate::leads::outbox::pending_fields(Some(&self.row))
    }
}

/// What a push will do with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    /// Deleted before it ever reached Airtable: nothing to send.
    Drop,
}

pub fn action(item: &Item) -> Action {
    let deleted = item.row.operation == "delete" || item.lead.deleted_at.is_some();
    match (deleted, item.lead.airtable_id.is_some()) {
        (true, true) => Action::Delete,
        (true, false) => Action::Drop,
        (false, true) => Action::Update,
        (false, false) => Action::Create,
    }
}

/// The Airtable fields a create sends: every synced field that has a value (never a null or an
/// unticked checkbox: Airtable leaves empty fields out anyway, and a field removed from the table
/// would fail the create), `extra`, and the Lead ID.
pub fn create_fields(engine: &SyncEngine, lead: &Lead) -> Fields {
    let mut values: BTreeMap<String, Value> = crate::leads::fields::snapshot(lead)
        .into_iter()
        .filter(|(_, v)| !matches!(v, Value::Null | Value::Bool(false)))
        .collect();
    values.insert("id".into(), Value::String(lead.id.clone()));
    let extra: Map<String, Value> = serde_json::from_str(&lead.extra).unwrap_or_default();
    engine.map.to_fields(&values, Some(&extra))
}

/// The Airtable fields an update sends: only the changed ones.
pub fn update_fields(engine: &SyncEngine, item: &Item) -> Fields {
    let snap = local_snapshot(&item.lead);
    let mut values = BTreeMap::new();
    let mut extra = Map::new();
    for f in item.fields() {
        let v = snap.get(&f).cloned().unwrap_or(Value::Null);
        match f.strip_prefix("extra.") {
            Some(name) => {
                extra.insert(name.to_string(), v);
            }
            None => {
                values.insert(f, v);
            }
        }
    }
    engine.map.to_fields(&values, Some(&extra))
}

/// Rows due now (pending, or failed and past their backoff), oldest first.
pub fn due(conn: &mut SqliteConnection, limit: i64) -> Result<Vec<Item>, AppError> {
    due_where(conn, None, limit)
}

/// The due rows of these leads (after a pre-push read merged their records).
fn due_among(conn: &mut SqliteConnection, lead_ids: &[String]) -> Result<Vec<Item>, AppError> {
    due_where(conn, Some(lead_ids), ROUND)
}

/// Due rows, of `lead_ids` only when given. Boxed: it runs once a push round, not per request.
fn due_where(
    conn: &mut SqliteConnection,
    lead_ids: Option<&[String]>,
    limit: i64,
) -> Result<Vec<Item>, AppError> {
    let now = crate::time::now();
    let mut query = outbox::table
        .inner_join(leads::table)
        .filter(outbox::state.ne(state::DEAD))
        .filter(outbox::next_attempt_at.le(now))
        .into_boxed();
    if let Some(ids) = lead_ids {
        query = query.filter(outbox::lead_id.eq_any(ids));
    }
    let rows: Vec<(OutboxRow, Lead)> = query
        .order(outbox::created_at)
        .limit(limit)
        .select((OutboxRow::as_select(), Lead::as_select()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(row, lead)| Item { row, lead })
        .collect())
}

/// Records of at most this many updates and deletes are read back in one request before they
/// are sent (see the module doc).
pub(crate) const PRE_READ: usize = 100;

/// Backoff before attempt `attempts + 1`: 1 s doubling, at most 5 min, full jitter.
fn backoff(attempts: i32) -> Duration {
    let ceiling = Duration::from_secs(1)
        .saturating_mul(1u32 << attempts.clamp(0, 20) as u32)
        .min(Duration::from_secs(300));
    let ms = rand::random_range(0..=ceiling.as_millis().max(1) as u64);
    Duration::from_millis(ms.max(500))
}

/// How a batch ended.
enum BatchError {
    /// Stop the run (auth, rate limit, quota, Airtable down).
    Stop(AirtableError),
}

impl SyncEngine {
    /// Pushes every due outbox row. Returns the counts.
    pub(crate) async fn push(&self, run: &RunHandle) -> Result<Counts, RunError> {
        let mut counts = Counts::default();
        let mut skip: Vec<String> = Vec::new();
        loop {
            let items: Vec<Item> = self.db.run(|c| due(c, ROUND)).await?;
            let items: Vec<Item> = items
                .into_iter()
                .filter(|i| !skip.contains(&i.row.lead_id))
                .collect();
            if items.is_empty() {
                break;
            }
            skip.extend(items.iter().map(|i| i.row.lead_id.clone()));
            let (creates, rest): (Vec<Item>, Vec<Item>) = items
                .into_iter()
                .partition(|i| matches!(action(i), Action::Create | Action::Drop));
            self.send_round(creates, run, &mut counts).await?;
            for group in rest.chunks(PRE_READ) {
                let ids: Vec<String> = group
                    .iter()
                    .filter_map(|i| i.lead.airtable_id.clone())
                    .collect();
                if let Err(e) = self.read_current(&ids, &mut counts).await {
                    self.note_failure(&e);
                    return Err(e.after(counts));
                }
                let lead_ids: Vec<String> = group.iter().map(|i| i.row.lead_id.clone()).collect();
                let fresh = self.db.run(move |c| due_among(c, &lead_ids)).await?;
                self.send_round(fresh, run, &mut counts).await?;
            }
        }
        Ok(counts)
    }

    /// Marks Airtable unreachable after a retryable failure.
    fn note_failure(&self, e: &RunError) {
        if e.airtable().is_some_and(AirtableError::is_outage) {
            self.set_reachable(false);
        }
    }

    /// Plans and sends rows: drops the ones with nothing to send, then every batch in order.
    async fn send_round(
        &self,
        items: Vec<Item>,
        run: &RunHandle,
        counts: &mut Counts,
    ) -> Result<(), RunError> {
        if items.is_empty() {
            return Ok(());
        }
        let (batches, drops) = plan::batches(items);
        if !drops.is_empty() {
            self.db
                .write(move |c| {
                    for i in &drops {
                        finish_row(c, &i.row)?;
                    }
                    Ok(())
                })
                .await?;
        }
        for batch in batches {
            match self.push_batch(batch, counts).await {
                Ok(()) => {
                    self.set_reachable(true);
                    let _ = run.progress("pushing", counts).await;
                }
                Err(BatchError::Stop(e)) => {
                    if e.is_outage() {
                        self.set_reachable(false);
                    }
                    // The run reports what it did before it stopped.
                    return Err(RunError::Airtable(e).after(counts.clone()));
                }
            }
        }
        Ok(())
    }

    /// The pre-push read (see the module doc): reads the current records of `ids` and merges
    /// them as a pull would; records found gone are deletions from Airtable.
    async fn read_current(&self, ids: &[String], counts: &mut Counts) -> Result<(), RunError> {
        if ids.is_empty() {
            return Ok(());
        }
        let params = crate::airtable::ListParams {
            page_size: Some(crate::sync::pull::PAGE_SIZE),
            filter_by_formula: Some(crate::airtable::formula::record_id_in(ids)),
            ..Default::default()
        };
        let mut seen = std::collections::HashSet::new();
        let mut offset: Option<String> = None;
        loop {
            let page = self.api.list_page(&params, offset.as_deref()).await?;
            seen.extend(page.records.iter().map(|r| r.id.clone()));
            self.apply_page(page.records, None, counts).await?;
            match page.offset {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
        let gone: Vec<String> = ids
            .iter()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let written = self
                .db
                .write(move |c| apply::deleted_in_airtable(c, &gone, crate::time::now()))
                .await?;
            counts.deleted += written.len() as i32;
            for w in &written {
                self.bus.publish(w, apply::ACTOR);
            }
        }
        Ok(())
    }

    /// Sends one batch; on 422 splits it to isolate the rejected records.
    async fn send_split<F, Fut>(
        &self,
        items: Vec<Item>,
        send: &F,
        counts: &mut Counts,
    ) -> Result<Vec<(Item, Option<Record>)>, BatchError>
    where
        F: Fn(Vec<Item>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(Item, Option<Record>)>, AirtableError>>,
    {
        let mut done = Vec::new();
        let mut queue = vec![items];
        while let Some(batch) = queue.pop() {
            match send(batch.clone()).await {
                Ok(ok) => done.extend(ok),
                Err(e) if e.is_unprocessable() && batch.len() > 1 => {
                    let right = batch[batch.len() / 2..].to_vec();
                    let left = batch[..batch.len() / 2].to_vec();
                    queue.push(right);
                    queue.push(left);
                }
                Err(e) if e.is_unprocessable() || e.is_not_found() => {
                    counts.failed += batch.len() as i32;
                    let message = e.to_string();
                    for i in &batch {
                        let dead = i.row.attempts + 1 >= MAX_ATTEMPTS;
                        tracing::warn!(
                            lead = %i.lead.id,
                            record = i.lead.airtable_id.as_deref().unwrap_or("(new)"),
                            attempts = i.row.attempts + 1,
                            dead,
                            "Airtable rejected the {} of lead {}: {message}{}",
                            i.row.operation,
                            i.lead.id,
                            if dead { " (now dead: retry it from the admin page once fixed)" } else { "" }
                        );
                    }
                    let rows: Vec<OutboxRow> = batch.iter().map(|i| i.row.clone()).collect();
                    self.db
                        .write(move |c| {
                            for r in &rows {
                                fail_row(c, r, &message, true)?;
                            }
                            Ok(())
                        })
                        .await
                        .map_err(|e| BatchError::Stop(AirtableError::Decode(e.to_string())))?;
                }
                // Airtable down (or backing off), auth, rate limit, quota: the request failed, not
                // the records. Their rows stay as they are, attempts untouched (module docs).
                Err(e) => return Err(BatchError::Stop(e)),
            }
        }
        Ok(done)
    }

    /// Sends one batch (split on 422, see [`Self::send_split`]) and stores the answers.
    async fn push_batch(&self, batch: Batch, counts: &mut Counts) -> Result<(), BatchError> {
        let action = batch.action;
        let send = |items: Vec<Item>| async move {
            let answered: Vec<(Item, Option<Record>)> = match plan::payload(self, action, &items) {
                Write::Create(fields) => {
                    let records = self.api.create(&fields).await?;
                    items
                        .into_iter()
                        .zip(records.into_iter().map(Some))
                        .collect()
                }
                Write::Update(updates) => {
                    let records = self.api.update(&updates).await?;
                    let mut by_id: BTreeMap<String, Record> =
                        records.into_iter().map(|r| (r.id.clone(), r)).collect();
                    items
                        .into_iter()
                        .map(|i| {
                            let rec = i.lead.airtable_id.as_ref().and_then(|id| by_id.remove(id));
                            (i, rec)
                        })
                        .collect()
                }
                Write::Delete(ids) => {
                    self.api.delete(&ids).await?;
                    items.into_iter().map(|i| (i, None)).collect()
                }
            };
            Ok(answered)
        };
        let done = self.send_split(batch.items, &send, counts).await?;
        self.store_results(done, counts).await
    }

    /// Stores what Airtable answered: ids, merge bases, outbox rows done.
    async fn store_results(
        &self,
        done: Vec<(Item, Option<Record>)>,
        counts: &mut Counts,
    ) -> Result<(), BatchError> {
        if done.is_empty() {
            return Ok(());
        }
        counts.pushed += done.len() as i32;
        let remotes: Vec<(Item, Option<crate::airtable::RemoteLead>)> = done
            .into_iter()
            .map(|(i, r)| (i, r.map(|r| self.map.from_record(&r))))
            .collect();
        self.db
            .write(move |c| {
                let now = crate::time::now();
                for (item, remote) in &remotes {
                    store_one(c, item, remote.as_ref(), now)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| {
                BatchError::Stop(AirtableError::Decode(format!(
                    "storing the push result failed: {e}"
                )))
            })?;
        Ok(())
    }
}

/// Records one pushed lead: its Airtable id and merge base, a `pushed` event, and its outbox row
/// done (unless it changed while the push was in flight).
fn store_one(
    conn: &mut SqliteConnection,
    item: &Item,
    remote: Option<&crate::airtable::RemoteLead>,
    now: chrono::NaiveDateTime,
) -> Result<(), AppError> {
    let Some(mut lead) = crate::leads::store::find(conn, &item.lead.id)? else {
        return Ok(());
    };
    let act = action(item);
    match (act, remote) {
        (Action::Delete, _) => {
            lead.airtable_id = None;
            lead.remote_fields = None;
        }
        (_, Some(r)) => {
            lead.airtable_id = Some(r.airtable_id.clone());
            // The new base: after a create, Airtable's whole answer; after an update, its answer
            // for the fields sent and the old base for the rest.
            let answer = remote_snapshot(r);
            let base: apply::Snapshot = if act == Action::Create {
                answer
            } else {
                let mut base: apply::Snapshot = lead
                    .remote_fields
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default();
                for f in item.fields() {
                    let v = answer.get(&f).cloned().unwrap_or(Value::Null);
                    base.insert(f, v);
                }
                base
            };
            lead.remote_fields = Some(serde_json::to_string(&base)?);
            lead.remote_modified_at = r.modified_at.map(|t| t.naive_utc());
        }
        _ => {}
    }
    let still_queued = finish_row(conn, &item.row)?;
    lead.synced_at = Some(now);
    if lead.sync_state != "conflict" {
        lead.sync_state = if still_queued {
            "pending".into()
        } else {
            "synced".into()
        };
    }
    diesel::update(leads::table.filter(leads::id.eq(&lead.id)))
        .set(&lead)
        .execute(conn)?;
    let msg = match act {
        Action::Create => format!(
            "created in Airtable as {}",
            lead.airtable_id.as_deref().unwrap_or("?")
        ),
        Action::Update => format!("sent {} to Airtable", item.fields().join(", ")),
        Action::Delete => "deleted in Airtable".to_string(),
        Action::Drop => return Ok(()),
    };
    history::record(
        conn,
        &lead.id,
        kind::PUSHED,
        "system",
        &Map::new(),
        Some(&msg),
        now,
    )?;
    Ok(())
}

/// Removes a pushed row unless it changed meanwhile; then it stays, as an update. Returns
/// whether the lead still has a queued row.
fn finish_row(conn: &mut SqliteConnection, sent: &OutboxRow) -> Result<bool, AppError> {
    let n = diesel::delete(
        outbox::table
            .filter(outbox::lead_id.eq(&sent.lead_id))
            .filter(outbox::seq.eq(sent.seq)),
    )
    .execute(conn)?;
    if n == 1 {
        return Ok(false);
    }
    diesel::update(
        outbox::table
            .filter(outbox::lead_id.eq(&sent.lead_id))
            .filter(outbox::operation.eq("create")),
    )
    .set(outbox::operation.eq("update"))
    .execute(conn)?;
    Ok(outbox::table
        .find(&sent.lead_id)
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Marks a row failed (with backoff) or dead after [`MAX_ATTEMPTS`]: only for Airtable's
/// definitive rejections of the record (422, 404), never for outages. `rejected`: the lead is
/// shown in error.
fn fail_row(
    conn: &mut SqliteConnection,
    row: &OutboxRow,
    message: &str,
    rejected: bool,
) -> Result<(), AppError> {
    let attempts = row.attempts + 1;
    let next =
        crate::time::now() + chrono::Duration::from_std(backoff(attempts)).unwrap_or_default();
    let new_state = if attempts >= MAX_ATTEMPTS {
        state::DEAD
    } else {
        state::FAILED
    };
    diesel::update(
        outbox::table
            .filter(outbox::lead_id.eq(&row.lead_id))
            .filter(outbox::seq.eq(row.seq)),
    )
    .set((
        outbox::attempts.eq(attempts),
        outbox::next_attempt_at.eq(next),
        outbox::last_error.eq(message),
        outbox::state.eq(new_state),
    ))
    .execute(conn)?;
    if rejected {
        diesel::update(
            leads::table
                .filter(leads::id.eq(&row.lead_id))
                .filter(leads::sync_state.ne("conflict")),
        )
        .set(leads::sync_state.eq("error"))
        .execute(conn)?;
    }
    Ok(())
}
