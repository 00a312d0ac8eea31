//! Read-through (SPEC §5.7): `lead(id: "rec…")` for a record that is not in the cache fetches it
//! from Airtable, stores it, and answers it.
//!
//! Those fetches spend the same Airtable budget as sync: 5 requests a second per base, shared by
//! every client of the base, and the plan's monthly quota. A caller must not be able to spend
//! it for everybody (50 aliases of `lead(id: "rec…")` were 10 s of the base's rate, and the
//! pulls and pushes waited behind them), so a fetch happens only when all of these allow it:
//!
//! 1. **Unknown ids are remembered** for [`UNKNOWN_FOR`]: a record Airtable said does not exist is
//!    answered `null` again without a request.
//! 2. **The base is not paused or backing off** ([`crate::airtable::BasePacer::busy`]): after a 429
//!    every request waits 30 s, after errors the client backs off. A caller waiting for one record
//!    gets `UNAVAILABLE` at once instead of waiting, and adds no request that would extend a
//!    lock-out. A read-through that fails itself (timeout, 5xx, connection) is reported to the
//!    base's pacer by the client like any request, so the base is failing until a run's probe
//!    gets an answer (`airtable/pacing.rs`).
//! 3. **Per operation**: at most `READ_THROUGH_PER_REQUEST` fetches (default 5). The count lives
//!    in the operation's data ([`OperationFetches`], put there by the schema's
//!    [`crate::graphql::query::ReadThroughBudget`] extension); the fetches over it answer `null`
//!    with `LIMIT`, naming the setting.
//! 4. **Per minute, for everybody**: at most `READ_THROUGH_PER_MINUTE` fetches (default 30) in any
//!    60 s, whoever asks; over it, `LIMIT` naming the setting and when to try again.
//!
//! Every request sent is added to `airtable_usage` (kind `read_through`), so `requestsToday`, the
//! month's count and `AIRTABLE_MONTHLY_QUOTA` see it like the requests of sync runs.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::airtable::Busy;
use crate::db::models::Lead;
use crate::error::AppError;
use crate::sync::SyncEngine;
use crate::sync::apply::{self, MergeCtx};

/// How long a record id that Airtable does not have is answered `null` without asking again.
pub const UNKNOWN_FOR: Duration = Duration::from_secs(60);
/// The window of `READ_THROUGH_PER_MINUTE`.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most unknown ids remembered (the oldest are forgotten first).
const MAX_UNKNOWN: usize = 10_000;

/// The read-through settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadThroughLimits {
    /// `READ_THROUGH_PER_REQUEST`: fetches one operation may cause.
    pub per_operation: usize,
    /// `READ_THROUGH_PER_MINUTE`: fetches all callers together may cause in any 60 s.
    pub per_minute: usize,
}

impl Default for ReadThroughLimits {
    fn default() -> Self {
        ReadThroughLimits {
            per_operation: 5,
            per_minute: 30,
        }
    }
}

/// The read-through fetches of one GraphQL operation so far (shared by its resolvers, which run
/// concurrently).
#[derive(Debug, Clone, Default)]
pub struct OperationFetches(Arc<AtomicUsize>);

impl OperationFetches {
    /// Takes one fetch if fewer than `max` were taken.
    fn take(&self, max: usize) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// How many fetches this operation took.
    pub fn taken(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The engine's read-through state: the shared per-minute window and the unknown ids.
#[derive(Debug)]
pub(crate) struct Gate {
    limits: ReadThroughLimits,
    /// When each fetch of the last minute was let through, oldest first.
    recent: Mutex<VecDeque<Instant>>,
    /// Record id -> until when it is answered `null` without a request.
    unknown: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gate {
    pub(crate) fn new(limits: ReadThroughLimits) -> Self {
        Gate {
            limits,
            recent: Mutex::new(VecDeque::new()),
            unknown: Mutex::new(HashMap::new()),
        }
    }

    fn is_unknown(&self, id: &str) -> bool {
        let now = Instant::now();
        lock(&self.unknown)
            .get(id)
            .is_some_and(|until| *until > now)
    }

    fn remember_unknown(&self, id: &str) {
        let now = Instant::now();
        let mut unknown = lock(&self.unknown);
        if unknown.len() >= MAX_UNKNOWN {
            unknown.retain(|_, until| *until > now);
        }
        if unknown.len() >= MAX_UNKNOWN
            && let Some(oldest) = unknown
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            unknown.remove(&oldest);
        }
        unknown.insert(id.to_string(), now + UNKNOWN_FOR);
    }

    /// Takes one fetch of the shared per-minute budget, or says how long until one is free.
    fn take_minute(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut recent = lock(&self.recent);
        while recent.front().is_some_and(|t| now - *t >= WINDOW) {
            recent.pop_front();
        }
        if recent.len() < self.limits.per_minute {
            recent.push_back(now);
            return Ok(());
        }
        let oldest = recent.front().copied().unwrap_or(now);
        Err(WINDOW.saturating_sub(now - oldest))
    }
}

impl SyncEngine {
    /// Fetches one record that is not in the cache (read-through) and stores it, within the
    /// limits of the module docs. `Ok(None)`: Airtable has no such record (or it could not be
    /// asked: the failure is logged and the base marked as backing off).
    pub async fn read_through(
        &self,
        airtable_id: &str,
        operation: &OperationFetches,
    ) -> Result<Option<Lead>, AppError> {
        let gate = &self.read_through;
        if gate.is_unknown(airtable_id) {
            return Ok(None);
        }
        if let Some(busy) = self.pacer.busy() {
            let (why, left) = match busy {
                Busy::Paused(d) => ("is pausing after a rate limit (429)", d),
                Busy::BackingOff(d) => ("is backing off after failed requests", d),
            };
            return Err(AppError::Unavailable(format!(
                "{airtable_id} is not in the cache and was not fetched: Airtable {why}; try again in {} s",
                left.as_secs().max(1)
            )));
        }
        if !operation.take(gate.limits.per_operation) {
            return Err(AppError::Limit(format!(
                "{airtable_id} is not in the cache and was not fetched: one operation may fetch at \
                 most {} records from Airtable (READ_THROUGH_PER_REQUEST)",
                gate.limits.per_operation
            )));
        }
        if let Err(wait) = gate.take_minute() {
            return Err(AppError::Limit(format!(
                "{airtable_id} is not in the cache and was not fetched: at most {} records are \
                 fetched from Airtable a minute, for all callers together (READ_THROUGH_PER_MINUTE); \
                 try again in {} s",
                gate.limits.per_minute,
                wait.as_secs().max(1)
            )));
        }
        let fetched = self.quick_api.get_record(airtable_id).await;
        self.record_quick_usage().await;
        let record = match fetched {
            Ok(r) => {
                self.set_reachable(true);
                r
            }
            Err(e) => {
                if e.is_retryable() {
                    // The client told the base's pacer already: later read-throughs wait for
                    // the base to answer a probe.
                    self.set_reachable(false);
                }
                tracing::warn!(error = %e, "read-through fetch failed");
                return Ok(None);
            }
        };
        let Some(record) = record else {
            gate.remember_unknown(airtable_id);
            return Ok(None);
        };
        let remote = self.map.from_record(&record);
        let ctx = MergeCtx {
            policy: self.policy,
            now: crate::time::now(),
        };
        let applied = self
            .db
            .write(move |c| apply::apply_remote(c, &ctx, &remote))
            .await?;
        if let Some(w) = &applied.written {
            self.bus.publish(w, apply::ACTOR);
        }
        let id = airtable_id.to_string();
        self.db
            .run(move |c| crate::leads::store::find(c, &id))
            .await
    }

    /// Adds the read-through client's requests not yet counted to today's usage. Each request is
    /// counted once however many read-throughs finish together: the counter of what was counted
    /// only grows (`fetch_max`), and whoever moves it records the difference.
    async fn record_quick_usage(&self) {
        let total = self.quick_api.stats().requests();
        let counted = self.quick_counted.fetch_max(total, Ordering::SeqCst);
        if total > counted
            && let Err(e) = self.record_usage_as("read_through", total - counted).await
        {
            tracing::warn!(error = %e, "could not record Airtable usage");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_takes_at_most_its_budget_even_concurrently() {
        let op = OperationFetches::default();
        let taken = std::thread::scope(|s| {
            let handles: Vec<_> = (0..50).map(|_| s.spawn(|| op.take(5))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(taken, 5);
        assert_eq!(op.taken(), 5);
    }

    #[test]
    fn the_minute_window_is_shared_and_says_when_to_retry() {
        let gate = Gate::new(ReadThroughLimits {
            per_operation: 5,
            per_minute: 3,
        });
        for _ in 0..3 {
            assert!(gate.take_minute().is_ok());
        }
        let wait = gate.take_minute().unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= WINDOW, "{wait:?}");
    }

    #[test]
    fn unknown_ids_are_remembered() {
        let gate = Gate::new(ReadThroughLimits::default());
        assert!(!gate.is_unknown("recX"));
        gate.remember_unknown("recX");
        assert!(gate.is_unknown("recX"));
        assert!(!gate.is_unknown("recY"));
    }
}
