//! Pulls (SPEC §5.1, §5.2): full, incremental, and the id sweep that finds deletions.
//!
//! - **Full**: every page (100 records), each page applied in one transaction. Only after a
//!   complete pass are leads whose record was not seen soft-deleted. An expired offset restarts
//!   the pass (the ids seen so far are forgotten), it never ends it.
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

use chrono::{DateTime, Utc};

use crate::airtable::{AirtableError, ListParams, ListPass, PassEvent, Record, formula};
use crate::db::meta;
use crate::error::AppError;
use crate::sync::apply::{self, MergeCtx};
use crate::sync::runs::Counts;
use crate::sync::{RunError, SyncEngine};

/// The page size asked for (Airtable's maximum).
pub const PAGE_SIZE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullMode {
    Full,
    Incremental,
}

impl SyncEngine {
    /// Applies one page in one transaction and announces the changes.
    pub(crate) async fn apply_page(
        &self,
        records: Vec<Record>,
        counts: &mut Counts,
    ) -> Result<Option<DateTime<Utc>>, AppError> {
        let remotes: Vec<_> = records.iter().map(|r| self.map.from_record(r)).collect();
        let newest = remotes.iter().filter_map(|r| r.modified_at).max();
        let ctx = MergeCtx {
            policy: self.policy,
            now: crate::time::now(),
        };
        let results = self
            .db
            .write(move |c| {
                remotes
                    .iter()
                    .map(|r| apply::apply_remote(c, &ctx, r))
                    .collect::<Result<Vec<_>, _>>()
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

    /// A full or incremental pull. Returns the counts.
    pub(crate) async fn pull(
        &self,
        mode: PullMode,
        run: &crate::sync::runs::RunHandle,
    ) -> Result<Counts, RunError> {
        let started = crate::time::now();
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
        let mut counts = Counts::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut newest: Option<DateTime<Utc>> = None;
        let mut pass = ListPass::new(self.api.as_ref(), params, self.options.max_pass_restarts);
        let phase = if watermark.is_some() {
            "pulling changes"
        } else {
            "pulling all records"
        };
        loop {
            let event = match pass.next().await {
                Ok(e) => e,
                Err(e) if watermark.is_some() && missing_modified_field(&e) => {
                    tracing::warn!(
                        field = self.map.modified_field(),
                        "the Airtable table has no usable modified field; falling back to a full pull"
                    );
                    return Box::pin(self.pull(PullMode::Full, run)).await;
                }
                Err(e) => return Err(e.into()),
            };
            match event {
                None => break,
                Some(PassEvent::Restarted { restarts }) => {
                    tracing::info!(
                        restarts,
                        "Airtable list offset expired; restarting the pass"
                    );
                    seen.clear();
                }
                Some(PassEvent::Page(records)) => {
                    seen.extend(records.iter().map(|r| r.id.clone()));
                    let page_newest = self.apply_page(records, &mut counts).await?;
                    newest = newest.max(page_newest);
                    let _ = run.progress(phase, &counts).await;
                }
            }
        }
        let is_full = watermark.is_none();
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
                    meta::LAST_FULL_PULL
                } else {
                    meta::LAST_INCREMENTAL_PULL
                };
                meta::set_time(c, key, crate::time::now())
            })
            .await?;
        Ok(counts)
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
