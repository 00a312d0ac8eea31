//! Pulls (SPEC §5.1, §5.2): full, incremental, and the id sweep that finds deletions.
//!
//! - **Full**: every page (100 records), each page applied in one transaction. Only after a
//!   complete pass are leads whose record was not seen soft-deleted. An expired offset restarts
//!   the pass, it never ends it. The ids seen so far are kept across the restart: an id seen
//!   once only ever saves a lead from deletion, and a record deleted in Airtable meanwhile is
//!   found by the next complete pass or sweep.
//! - **Checkpoint** (full passes): each page's transaction also stores the page's ids
//!   (`pull.seen.NNNNNN` in `cache_meta`) and the pass's state (`pull.checkpoint`: the next
//!   offset, the pages read, when the pass started). A full pass that failed, or whose process
//!   was killed, resumes from that offset on its next run instead of reading every page again;
//!   when Airtable no longer knows the offset (expired: `LIST_RECORDS_ITERATOR_NOT_AVAILABLE`, or
//!   `INVALID_OFFSET_VALUE`), it starts from the first page, still keeping the ids seen. The
//!   watermark of a resumed pass is capped by the first run's start, so a change made to an early
//!   page meanwhile is fetched by the next incremental pull. A checkpoint older than
//!   [`CHECKPOINT_MAX_AGE`] is dropped. The offset is only a hint: the ids and the stored pages
//!   are what make the resumed pass complete.
//! - **Storms**: a page whose call failed with a retryable error (after the client's own retries;
//!   a 429 spends none of them, it waits out the lockout) is asked again after the base's backoff,
//!   up to [`SyncOptions::page_retries`](crate::sync::SyncOptions::page_retries) times in a row;
//!   then the run fails, reporting what it stored, and is retried minutes later (`sync/mod.rs`).
//! - **Incremental**: only records whose modified field is after the watermark, with
//!   `IS_AFTER({Last Modified}, DATETIME_PARSE(...))`. Airtable shows modified times in whole
//!   seconds and `IS_AFTER` is strict, so a record changed in the same second as the last pull
//!   could be missed. The stored watermark therefore is `min(newest modified time seen, pull start
//!   - overlap)`: a quiet table costs one request, and anything changed near a pull is fetched
//!   again next time (applying a record twice is harmless). When the table has no modified field
//!   (`INVALID_FILTER_BY_FORMULA`/`UNKNOWN_FIELD_NAME`), it falls back to a full pull.
//! - **Sweep**: lists every id asking for one small field (the modified field) and soft-deletes
//!   leads whose record is gone, with the same complete-pass rule.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::airtable::{AirtableError, ListParams, ListPass, PassEvent, Record, formula};
use crate::db::meta;
use crate::error::AppError;
use crate::sync::apply::{self, MergeCtx};
use crate::sync::runs::Counts;
use crate::sync::{RunError, SyncEngine};

/// The page size asked for (Airtable's maximum).
pub const PAGE_SIZE: u32 = 100;

/// `cache_meta` key of the checkpoint of an unfinished full pass.
pub const CHECKPOINT: &str = "pull.checkpoint";
/// Prefix of the `cache_meta` keys holding the ids of each page of an unfinished full pass.
pub const SEEN_PREFIX: &str = "pull.seen.";
/// A checkpoint older than this is not resumed (the pass starts over).
pub const CHECKPOINT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Where an unfinished full pass stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The offset of the next page (`None`: start from the first page).
    pub offset: Option<String>,
    /// Pages stored so far.
    pub pages: u32,
    /// When the pass's first run started (UTC).
    pub started: NaiveDateTime,
}

/// The checkpoint to resume, with the ids seen so far; `None` (and any stale state removed)
/// when there is none or it is too old.
fn load_checkpoint(
    c: &mut diesel::sqlite::SqliteConnection,
) -> Result<Option<(Checkpoint, HashSet<String>)>, AppError> {
    let cp = meta::get(c, CHECKPOINT)?.and_then(|v| serde_json::from_str::<Checkpoint>(&v).ok());
    let fresh = cp.filter(|cp| {
        (crate::time::now() - cp.started)
            .to_std()
            .is_ok_and(|age| age <= CHECKPOINT_MAX_AGE)
    });
    let Some(cp) = fresh else {
        clear_checkpoint(c)?;
        return Ok(None);
    };
    let seen = meta::with_prefix(c, SEEN_PREFIX)?
        .into_iter()
        .flat_map(|(_, ids)| {
            ids.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Some((cp, seen)))
}

fn clear_checkpoint(c: &mut diesel::sqlite::SqliteConnection) -> Result<(), AppError> {
    meta::remove(c, CHECKPOINT)?;
    meta::remove_prefix(c, SEEN_PREFIX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullMode {
    Full,
    Incremental,
}

impl SyncEngine {
    /// Applies one page in one transaction (with the pass's checkpoint, for a full pass) and
    /// announces the changes.
    pub(crate) async fn apply_page(
        &self,
        records: Vec<Record>,
        checkpoint: Option<Checkpoint>,
        counts: &mut Counts,
    ) -> Result<Option<DateTime<Utc>>, AppError> {
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let remotes: Vec<_> = records.iter().map(|r| self.map.from_record(r)).collect();
        let newest = remotes.iter().filter_map(|r| r.modified_at).max();
        let ctx = MergeCtx {
            policy: self.policy,
            now: crate::time::now(),
        };
        let results = self
            .db
            .write(move |c| {
                let applied = remotes
                    .iter()
                    .map(|r| apply::apply_remote(c, &ctx, r))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(cp) = &checkpoint {
                    meta::set(c, &format!("{SEEN_PREFIX}{:06}", cp.pages), &ids.join(","))?;
                    meta::set(c, CHECKPOINT, &serde_json::to_string(cp)?)?;
                }
                Ok(applied)
            })
            .await?;
        counts.fetched += records.len() as i32;
        for a in results {
            counts.created += i32::from(a.created);
            counts.updated += i32::from(a.updated);
            counts.conflicts += a.conflicts;
            if let Some(w) = &a.written {
                self.bus.publish(w, apply::ACTOR);
            }
        }
        Ok(newest)
    }

    /// A full or incremental pull. Returns the counts; a failed pull's error carries what it
    /// stored ([`RunError::Stopped`]).
    pub(crate) async fn pull(
        &self,
        mode: PullMode,
        run: &crate::sync::runs::RunHandle,
    ) -> Result<Counts, RunError> {
        let mut counts = Counts::default();
        match self.pull_into(mode, run, &mut counts).await {
            Ok(()) => Ok(counts),
            Err(e) => Err(e.after(counts)),
        }
    }

    async fn pull_into(
        &self,
        mode: PullMode,
        run: &crate::sync::runs::RunHandle,
        counts: &mut Counts,
    ) -> Result<(), RunError> {
        let mut started = crate::time::now();
        let watermark = match mode {
            PullMode::Full => None,
            PullMode::Incremental => {
                self.db
                    .run(|c| meta::get_time(c, meta::PULL_WATERMARK))
                    .await?
            }
        };
        let mut params = ListParams {
            page_size: Some(PAGE_SIZE),
            ..Default::default()
        };
        if let Some(w) = watermark {
            params.filter_by_formula = Some(formula::modified_after(
                self.map.modified_field(),
                w.and_utc(),
            ));
        }
        let is_full = watermark.is_none();
        let mut seen: HashSet<String> = HashSet::new();
        let mut newest: Option<DateTime<Utc>> = None;
        let mut checkpoint = None;
        let mut pass = if is_full {
            let resumed = self.db.write(load_checkpoint).await?;
            let mut cp = Checkpoint {
                offset: None,
                pages: 0,
                started,
            };
            if let Some((found, ids)) = resumed {
                tracing::info!(
                    pages = found.pages,
                    ids = ids.len(),
                    "resuming the full pull from its checkpoint"
                );
                started = found.started;
                seen = ids;
                cp = found;
            }
            let pass = ListPass::resume(
                self.api.as_ref(),
                params,
                cp.offset.clone(),
                self.options.max_pass_restarts,
            );
            checkpoint = Some(cp);
            pass
        } else {
            ListPass::new(self.api.as_ref(), params, self.options.max_pass_restarts)
        };
        let phase = if watermark.is_some() {
            "pulling changes"
        } else {
            "pulling all records"
        };
        let mut page_failures = 0;
        loop {
            let event = match pass.next().await {
                Ok(e) => {
                    page_failures = 0;
                    e
                }
                Err(e) if watermark.is_some() && missing_modified_field(&e) => {
                    tracing::warn!(
                        field = self.map.modified_field(),
                        "the Airtable table has no usable modified field; falling back to a full pull"
                    );
                    return Box::pin(self.pull_into(PullMode::Full, run, counts)).await;
                }
                Err(e) if e.is_retryable() && page_failures < self.options.page_retries => {
                    // The page is asked again once the base may be probed (`airtable/pacing.rs`).
                    page_failures += 1;
                    let wait = self
                        .api
                        .backing_off()
                        .unwrap_or_default()
                        .max(self.options.client.backoff_initial);
                    tracing::warn!(
                        page_failures,
                        wait_ms = wait.as_millis() as u64,
                        error = %e,
                        "a page of the pull failed; asking again"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match event {
                None => break,
                Some(PassEvent::Restarted { restarts }) => {
                    tracing::info!(
                        restarts,
                        "Airtable list offset expired; restarting the pass (keeping the ids seen)"
                    );
                }
                Some(PassEvent::Page(records)) => {
                    seen.extend(records.iter().map(|r| r.id.clone()));
                    // Stored with the page: resume after it.
                    let cp = checkpoint.as_mut().map(|cp| {
                        cp.pages += 1;
                        cp.offset = pass.offset().map(String::from);
                        cp.clone()
                    });
                    let page_newest = self.apply_page(records, cp, counts).await?;
                    newest = newest.max(page_newest);
                    let _ = run.progress(phase, counts).await;
                }
            }
        }
        if is_full {
            counts.deleted += self.delete_missing(seen).await?;
        }
        let next_watermark = next_watermark(
            watermark.map(|w| w.and_utc()),
            newest,
            started.and_utc(),
            self.options.overlap,
        );
        self.db
            .write(move |c| {
                if let Some(w) = next_watermark {
                    meta::set_time(c, meta::PULL_WATERMARK, w.naive_utc())?;
                }
                let key = if is_full {
                    clear_checkpoint(c)?;
                    meta::LAST_FULL_PULL
                } else {
                    meta::LAST_INCREMENTAL_PULL
                };
                meta::set_time(c, key, crate::time::now())
            })
            .await?;
        Ok(())
    }

    async fn delete_missing(&self, seen: HashSet<String>) -> Result<i32, AppError> {
        let now = crate::time::now();
        let deleted = self
            .db
            .write(move |c| apply::delete_missing(c, &seen, now))
            .await?;
        for w in &deleted {
            self.bus.publish(w, apply::ACTOR);
        }
        Ok(deleted.len() as i32)
    }

    /// Lists every record id (one small field each) and deletes locally what Airtable lost.
    pub(crate) async fn sweep(
        &self,
        run: &crate::sync::runs::RunHandle,
    ) -> Result<Counts, RunError> {
        let params = ListParams {
            page_size: Some(PAGE_SIZE),
            fields: vec![self.map.modified_field().to_string()],
            ..Default::default()
        };
        let mut counts = Counts::default();
        let mut seen = HashSet::new();
        let mut pass = ListPass::new(self.api.as_ref(), params, self.options.max_pass_restarts);
        while let Some(event) = pass.next().await? {
            match event {
                PassEvent::Restarted { .. } => seen.clear(),
                PassEvent::Page(records) => {
                    counts.fetched += records.len() as i32;
                    seen.extend(records.into_iter().map(|r| r.id));
                    let _ = run.progress("listing ids", &counts).await;
                }
            }
        }
        counts.deleted += self.delete_missing(seen).await?;
        self.db
            .write(|c| meta::set_time(c, meta::LAST_SWEEP, crate::time::now()))
            .await?;
        Ok(counts)
    }
}

/// Errors that mean the table has no usable modified field for `filterByFormula`.
fn missing_modified_field(e: &AirtableError) -> bool {
    use crate::airtable::UnprocessableKind as K;
    matches!(
        e.unprocessable_kind(),
        Some(K::InvalidFilterByFormula | K::UnknownFieldName)
    )
}

/// The next watermark: the newest modified time seen, but never later than the pull's start
/// minus the overlap (see the module docs); an incremental pull that saw nothing keeps the old.
pub fn next_watermark(
    old: Option<DateTime<Utc>>,
    newest_seen: Option<DateTime<Utc>>,
    started: DateTime<Utc>,
    overlap: std::time::Duration,
) -> Option<DateTime<Utc>> {
    let cap = started - chrono::Duration::from_std(overlap).unwrap_or_default();
    match newest_seen {
        Some(n) => Some(n.min(cap).max(old.unwrap_or(n.min(cap)))),
        None => old.or(Some(cap)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_watermark_never_passes_the_pull_start_minus_overlap() {
        let start = t("2026-01-01T12:00:10Z");
        let o = Duration::from_secs(5);
        // Old records: the watermark is the newest seen.
        assert_eq!(
            next_watermark(None, Some(t("2026-01-01T11:00:00Z")), start, o),
            Some(t("2026-01-01T11:00:00Z"))
        );
        // A record changed just now: capped, so the next pull looks again.
        assert_eq!(
            next_watermark(None, Some(t("2026-01-01T12:00:09Z")), start, o),
            Some(t("2026-01-01T12:00:05Z"))
        );
        // Nothing seen: keep the old one.
        let old = Some(t("2026-01-01T10:00:00Z"));
        assert_eq!(next_watermark(old, None, start, o), old);
        // Never moves backwards.
        assert_eq!(
            next_watermark(
                Some(t("2026-01-01T12:00:07Z")),
                Some(t("2026-01-01T12:00:09Z")),
                start,
                o
            ),
            Some(t("2026-01-01T12:00:07Z"))
        );
    }
}
