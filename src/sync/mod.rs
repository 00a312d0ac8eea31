//! The sync engine (SPEC §5): keeps the local store and the Airtable table equal.
//!
//! - [`SyncEngine::run`] runs one pull, push or sweep at a time (single flight): asking while a
//!   run is going returns the running one instead of starting a second.
//! - Reads and local writes never wait on Airtable: runs happen in the background (at start, on
//!   a schedule, debounced after writes, or on request) and only read-through misses
//!   (`lead(id: "rec...")` not cached) call Airtable inline, with one quick attempt, within
//!   limits of their own (`read_through`).
//! - Every run is a `sync_runs` row with its counts and request numbers; every Airtable request,
//!   of a run or a read-through, is also added to `airtable_usage` per day, for
//!   `cacheStatus.requestsToday` and the monthly quota. A failed run reports what it
//!   did before it stopped ([`RunError::Stopped`]). A row left `running` by a crash is closed as
//!   `interrupted` when the engine's background tasks start ([`SyncEngine::close_interrupted`]).
//! - A failed pull is retried on a backoff of minutes ([`SyncOptions::retry_initial`], doubling,
//!   at most [`SyncOptions::retry_max`]), not at the next scheduled refresh: the decision is kept
//!   in `cache_meta` ([`SyncEngine::pending_retry`]) and a background task runs it when due. A
//!   failed full pull resumes from its checkpoint (`pull.rs`).
//! - While the base backs off after an outage (`airtable/pacing.rs`), background pushes do not
//!   start: no row is tried until the base's next probe.
//!
//! The parts: `pull` (full, incremental, sweep), `apply` (three-way merge of a pulled record),
//! `plan` (how due outbox rows become requests, for the push and its dry run),
//! `push` (the outbox), `conflicts` (settling a conflict by hand), `read_through` (fetching one
//! uncached record, and its limits), `runs` (bookkeeping).

pub mod apply;
pub mod conflicts;
pub mod plan;
pub mod pull;
pub mod push;
pub mod read_through;
pub mod runs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use tokio::sync::Mutex;

use crate::airtable::{AirtableApi, AirtableError, BasePacer, ClientOptions, FieldMap, HttpClient};
use crate::config::{AirtableConfig, ConflictPolicy};
use crate::db::Db;
use crate::db::models::SyncRun;
use crate::db::schema::airtable_usage;
use crate::error::AppError;
use crate::events::Bus;
use pull::PullMode;
use runs::{Counts, RunHandle, RunKind};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Airtable(#[from] AirtableError),
    #[error(transparent)]
    Local(#[from] AppError),
    /// The run stopped after storing some work: what it did, and why it stopped.
    #[error("{error}")]
    Stopped {
        counts: Counts,
        error: Box<RunError>,
    },
}

impl RunError {
    /// This error, with the counts of what the run stored before it (kept if already set).
    pub fn after(self, counts: Counts) -> RunError {
        match self {
            s @ RunError::Stopped { .. } => s,
            e => RunError::Stopped {
                counts,
                error: Box::new(e),
            },
        }
    }

    /// The Airtable error behind this one, if any.
    pub fn airtable(&self) -> Option<&AirtableError> {
        match self {
            RunError::Airtable(a) => Some(a),
            RunError::Local(_) => None,
            RunError::Stopped { error, .. } => error.airtable(),
        }
    }

    /// What the run had done when it stopped.
    pub fn counts(&self) -> Option<&Counts> {
        match self {
            RunError::Stopped { counts, .. } => Some(counts),
            _ => None,
        }
    }
}

/// `cache_meta` keys of the pending retry of a failed pull.
const RETRY_KIND: &str = "pull.retry.kind";
const RETRY_AT: &str = "pull.retry.at";
const RETRY_FAILURES: &str = "pull.retry.failures";

/// A failed pull waiting for its retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRetry {
    pub kind: RunKind,
    /// When it is due (UTC).
    pub at: chrono::NaiveDateTime,
    /// Failed runs in a row.
    pub failures: u32,
}

/// Engine settings. Defaults are production values; tests shorten them.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// How far before a pull's start the next incremental pull looks again (see `pull`).
    pub overlap: Duration,
    /// Expired offsets tolerated in one pass.
    pub max_pass_restarts: u32,
    /// Quiet time after a write before the debounced push.
    pub push_debounce: Duration,
    /// Client settings (pauses, retries).
    pub client: ClientOptions,
    /// A page of a pull whose call failed with a retryable error (after the client's own
    /// retries) is asked again this many times, after the base's backoff, before the run fails.
    pub page_retries: u32,
    /// First wait before a failed pull is run again; doubles with each failure in a row.
    pub retry_initial: Duration,
    /// Longest wait before a failed pull is run again.
    pub retry_max: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            overlap: Duration::from_secs(10),
            max_pass_restarts: 5,
            push_debounce: Duration::from_secs(2),
            client: ClientOptions::default(),
            page_retries: 3,
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(30 * 60),
        }
    }
}

/// The wait before retrying a pull that failed `failures` times in a row: `initial` doubling, at
/// most `max`, between half and all of that (jitter).
pub fn retry_delay(failures: u32, initial: Duration, max: Duration) -> Duration {
    crate::airtable::outage_backoff(failures.max(1), initial, max)
}

pub struct SyncEngine {
    pub(crate) api: Arc<dyn AirtableApi>,
    /// One attempt, short timeout: for read-through, where a caller waits.
    pub(crate) quick_api: Arc<dyn AirtableApi>,
    /// The base's pacing state, shared by both clients (read-through asks whether it is busy).
    pub(crate) pacer: Arc<BasePacer>,
    /// Read-through limits and memory.
    pub(crate) read_through: read_through::Gate,
    /// Requests of `quick_api` already added to `airtable_usage`.
    quick_counted: AtomicU64,
    pub(crate) map: FieldMap,
    pub(crate) policy: ConflictPolicy,
    pub(crate) db: Db,
    pub(crate) bus: Bus,
    pub(crate) options: SyncOptions,
    reachable: Arc<AtomicU8>,
    monthly_quota: Option<u64>,
    /// Held for the whole of a run.
    running: Arc<Mutex<()>>,
    /// The run in progress, if any.
    current: std::sync::Mutex<Option<i64>>,
}

impl SyncEngine {
    /// Builds the engine with the reqwest client for `cfg`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &AirtableConfig,
        policy: ConflictPolicy,
        monthly_quota: Option<u64>,
        read_through: read_through::ReadThroughLimits,
        db: Db,
        bus: Bus,
        reachable: Arc<AtomicU8>,
        options: SyncOptions,
    ) -> anyhow::Result<SyncEngine> {
        let map = FieldMap::from_config(cfg)?;
        let client = HttpClient::from_config(cfg, options.client.clone())?;
        let quick = HttpClient::from_config(
            cfg,
            ClientOptions {
                max_attempts: 1,
                // A 429 is answered at once (UNAVAILABLE), never waited out.
                max_rate_limit_waits: 0,
                request_timeout: Duration::from_secs(3),
                ..options.client.clone()
            },
        )?;
        Ok(SyncEngine {
            pacer: client.pacer(),
            api: Arc::new(client),
            quick_api: Arc::new(quick),
            read_through: read_through::Gate::new(read_through),
            quick_counted: AtomicU64::new(0),
            map,
            policy,
            db,
            bus,
            options,
            reachable,
            monthly_quota,
            running: Arc::new(Mutex::new(())),
            current: std::sync::Mutex::new(None),
        })
    }

    pub(crate) fn set_reachable(&self, yes: bool) {
        self.reachable
            .store(if yes { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// The run in progress, if any.
    pub async fn current_run(&self) -> Option<SyncRun> {
        let id = (*self.current.lock().ok()?)?;
        self.db.run(move |c| runs::get(c, id)).await.ok()
    }

    /// Whether the database was restored from a backup after the last complete pass over the
    /// table (full pull or id sweep). Such a cache is as old as the backup: its watermark (at
    /// most the backup's time) brings back what Airtable changed since, but records deleted
    /// since can only be found by a complete pass, so the next pull is a full pull.
    pub async fn restored_since_last_pass(&self) -> bool {
        let times = self.db.run(|c| {
            Ok((
                crate::db::meta::get_time(c, crate::backup::restore::RESTORED_AT)?,
                crate::db::meta::get_time(c, crate::db::meta::LAST_FULL_PULL)?,
                crate::db::meta::get_time(c, crate::db::meta::LAST_SWEEP)?,
            ))
        });
        match times.await {
            Ok((Some(restored), full, sweep)) => full.max(sweep).is_none_or(|t| t <= restored),
            _ => false,
        }
    }

    /// An incremental pull asked for just after a restore becomes a full pull (see
    /// [`Self::restored_since_last_pass`]).
    async fn effective(&self, kind: RunKind) -> RunKind {
        if kind == RunKind::IncrementalPull && self.restored_since_last_pass().await {
            tracing::info!(
                "the database was restored from a backup since the last full pull: pulling everything"
            );
            return RunKind::FullPull;
        }
        kind
    }

    /// Starts a run in the background and returns its row right away (or the run already going).
    pub async fn start(
        self: &Arc<Self>,
        kind: RunKind,
        trigger: &str,
    ) -> Result<SyncRun, AppError> {
        let Ok(guard) = self.running.clone().try_lock_owned() else {
            if let Some(run) = self.current_run().await {
                return Ok(run);
            }
            return Err(AppError::Conflict(
                "a sync run is finishing; try again in a moment".into(),
            ));
        };
        let kind = self.effective(kind).await;
        let handle = RunHandle::begin(&self.db, &self.bus, kind, trigger).await?;
        self.set_current(Some(handle.id));
        let first = self
            .db
            .run({
                let id = handle.id;
                move |c| runs::get(c, id)
            })
            .await?;
        let engine = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            engine.execute(kind, handle).await;
        });
        Ok(first)
    }

    /// Runs now and waits for the result (command line, jobs, tests). If a run is going, waits
    /// for it to end first.
    pub async fn run(self: &Arc<Self>, kind: RunKind, trigger: &str) -> Result<SyncRun, AppError> {
        let guard = self.running.lock().await;
        let kind = self.effective(kind).await;
        let handle = RunHandle::begin(&self.db, &self.bus, kind, trigger).await?;
        self.set_current(Some(handle.id));
        let run = self.execute(kind, handle).await;
        drop(guard);
        Ok(run)
    }

    fn set_current(&self, id: Option<i64>) {
        if let Ok(mut c) = self.current.lock() {
            *c = id;
        }
    }

    /// Executes a run whose row exists; always finishes the row.
    async fn execute(&self, kind: RunKind, handle: RunHandle) -> SyncRun {
        let started = std::time::Instant::now();
        if let Err(e) = self.api.reload_token().await {
            tracing::error!(error = %e, "cannot read the Airtable token; sync run stopped");
        }
        let before = self.api.stats();
        let result = match kind {
            RunKind::FullPull => self.pull(PullMode::Full, &handle).await,
            RunKind::IncrementalPull => self.pull(PullMode::Incremental, &handle).await,
            RunKind::Sweep => self.sweep(&handle).await,
            RunKind::Push => self.push(&handle).await,
        };
        let used = self.api.stats().since(&before);
        if let Err(e) = self.record_usage_as(kind.as_str(), used.requests()).await {
            tracing::warn!(error = %e, "could not record Airtable usage");
        }
        let (outcome, mut counts, error) = match result {
            Ok(c) if c.failed > 0 => ("partial", c, None),
            Ok(c) => {
                if kind != RunKind::Push || used.requests() > 0 {
                    self.set_reachable(true);
                }
                ("success", c, None)
            }
            Err(e) => {
                if e.airtable().is_some_and(AirtableError::is_outage) {
                    self.set_reachable(false);
                }
                tracing::error!(kind = kind.as_str(), error = %e, "sync run failed");
                // What it stored before it stopped, not zeros.
                let counts = e.counts().cloned().unwrap_or_default();
                ("failed", counts, Some(e.to_string()))
            }
        };
        if matches!(kind, RunKind::FullPull | RunKind::IncrementalPull)
            && let Err(e) = self.note_pull_outcome(kind, outcome != "failed").await
        {
            tracing::warn!(error = %e, "could not record the retry of a failed pull");
        }
        counts.requests = used.requests() as i32;
        counts.retries = used.retries as i32;
        metrics::counter!("sync_runs_total", "kind" => kind.as_str(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("sync_run_duration_seconds", "kind" => kind.as_str())
            .record(started.elapsed().as_secs_f64());
        self.set_current(None);
        match handle.finish(outcome, &counts, error).await {
            Ok(run) => run,
            Err(e) => {
                tracing::error!(error = %e, "could not record the end of a sync run");
                SyncRun {
                    id: handle.id,
                    kind: kind.as_str().into(),
                    trigger: String::new(),
                    started_at: crate::time::now(),
                    finished_at: Some(crate::time::now()),
                    outcome: "failed".into(),
                    phase: None,
                    fetched: 0,
                    created: 0,
                    updated: 0,
                    deleted: 0,
                    pushed: 0,
                    failed: 0,
                    conflicts: 0,
                    requests: 0,
                    retries: 0,
                    error: Some(e.to_string()),
                }
            }
        }
    }

    /// Adds `n` requests of `kind_s` (a run kind, or `read_through`) to today's usage, and warns
    /// when usage is past 80 % of the quota.
    async fn record_usage_as(&self, kind_s: &'static str, n: u64) -> Result<(), AppError> {
        if n == 0 {
            return Ok(());
        }
        let day = crate::time::now().date().to_string();
        let used = self
            .db
            .write(move |c| {
                diesel::insert_into(airtable_usage::table)
                    .values((
                        airtable_usage::day.eq(&day),
                        airtable_usage::kind.eq(kind_s),
                        airtable_usage::requests.eq(n as i64),
                    ))
                    .on_conflict((airtable_usage::day, airtable_usage::kind))
                    .do_update()
                    .set(airtable_usage::requests.eq(airtable_usage::requests + n as i64))
                    .execute(c)?;
                month_usage(c)
            })
            .await?;
        if let Some(q) = self.monthly_quota
            && used * 100 >= q * 80
        {
            tracing::warn!(
                used,
                quota = q,
                "Airtable usage this month is at {}% of AIRTABLE_MONTHLY_QUOTA",
                used * 100 / q
            );
        }
        Ok(())
    }

    /// Whether any outbox row is due now (background pushes skip a run, and its `sync_runs` row,
    /// when nothing is). False while the base backs off after an outage: no row is tried until
    /// its next probe may go.
    pub async fn has_due(&self) -> bool {
        if self.api.backing_off().is_some_and(|d| !d.is_zero()) {
            return false;
        }
        self.db
            .run(|c| push::due(c, 1))
            .await
            .is_ok_and(|d| !d.is_empty())
    }

    /// Records how a pull ended: a failure schedules its retry after [`retry_delay`]; a success
    /// clears a pending retry of the same kind (a full pull clears any).
    async fn note_pull_outcome(&self, kind: RunKind, ok: bool) -> Result<(), AppError> {
        let (initial, max) = (self.options.retry_initial, self.options.retry_max);
        let at = self
            .db
            .write(move |c| {
                use crate::db::meta;
                let pending = meta::get(c, RETRY_KIND)?;
                if ok {
                    if kind == RunKind::FullPull || pending.as_deref() == Some(kind.as_str()) {
                        for k in [RETRY_KIND, RETRY_AT, RETRY_FAILURES] {
                            meta::remove(c, k)?;
                        }
                    }
                    return Ok(None);
                }
                let failures = meta::get(c, RETRY_FAILURES)?
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
                    + 1;
                // A failed full pull stays the one to retry: its checkpoint resumes it.
                let retry_kind = match pending.as_deref() {
                    Some("full_pull") => RunKind::FullPull,
                    _ => kind,
                };
                let delay = retry_delay(failures, initial, max);
                let at = crate::time::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                meta::set(c, RETRY_KIND, retry_kind.as_str())?;
                meta::set_time(c, RETRY_AT, at)?;
                meta::set(c, RETRY_FAILURES, &failures.to_string())?;
                Ok(Some((at, failures)))
            })
            .await?;
        if let Some((at, failures)) = at {
            tracing::warn!(
                kind = kind.as_str(),
                failures,
                retry_at = %at,
                "the {} failed; it is retried at {at} UTC",
                kind.as_str()
            );
        }
        Ok(())
    }

    /// The retry of a failed pull, if one is pending.
    pub async fn pending_retry(&self) -> Option<PendingRetry> {
        let read = self.db.run(|c| {
            use crate::db::meta;
            Ok((
                meta::get(c, RETRY_KIND)?,
                meta::get_time(c, RETRY_AT)?,
                meta::get(c, RETRY_FAILURES)?,
            ))
        });
        let (kind, at, failures) = read.await.ok()?;
        let kind = match kind?.as_str() {
            "full_pull" => RunKind::FullPull,
            "incremental_pull" => RunKind::IncrementalPull,
            _ => return None,
        };
        Some(PendingRetry {
            kind,
            at: at?,
            failures: failures.and_then(|f| f.parse().ok()).unwrap_or(1),
        })
    }

    /// Closes every run left `running` by a process that stopped during it (crash, kill -9) as
    /// `interrupted`. Holds the run lock, so a run of this engine is never closed. Returns how
    /// many were closed.
    pub async fn close_interrupted(&self) -> Result<usize, AppError> {
        use crate::db::schema::sync_runs;
        let _no_run = self.running.lock().await;
        let now = crate::time::now();
        let closed =
            self.db
                .write(move |c| {
                    Ok(diesel::update(sync_runs::table.filter(sync_runs::outcome.eq("running")))
                    .set((
                        sync_runs::outcome.eq("interrupted"),
                        sync_runs::phase.eq("done"),
                        sync_runs::finished_at.eq(now),
                        sync_runs::error.eq(
                            "interrupted: leadcache stopped during this run (crash or kill); \
                             a full pull resumes from its last page",
                        ),
                    ))
                    .execute(c)?)
                })
                .await?;
        if closed > 0 {
            tracing::warn!(
                closed,
                "closed {closed} sync run(s) left running by a stopped process as interrupted"
            );
        }
        Ok(closed)
    }

    /// Whether optional pulls should be skipped to save the monthly quota (at 95 %); pushes
    /// always go on.
    pub async fn near_quota(&self) -> bool {
        let Some(q) = self.monthly_quota else {
            return false;
        };
        match self.db.run(month_usage).await {
            Ok(used) => used * 100 >= q * 95,
            Err(_) => false,
        }
    }

    /// Starts the background tasks: the first pull (empty cache: full; stale: incremental) and
    /// the debounced push after writes.
    pub fn spawn_background(
        self: &Arc<Self>,
        writes: Arc<tokio::sync::Notify>,
        stale_after: Duration,
    ) {
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.close_interrupted().await {
                tracing::warn!(error = %e, "cannot close the sync runs left running");
            }
            let meta = engine.db.run(|c| {
                Ok((
                    crate::db::meta::get_time(c, crate::db::meta::LAST_FULL_PULL)?,
                    crate::db::meta::get_time(c, crate::db::meta::LAST_INCREMENTAL_PULL)?,
                ))
            });
            let (full, inc) = meta.await.unwrap_or((None, None));
            let last = full.max(inc);
            let stale = last.is_none_or(|t| {
                (crate::time::now() - t).to_std().unwrap_or_default() > stale_after
            });
            let kind = if full.is_none() || engine.restored_since_last_pass().await {
                Some(RunKind::FullPull)
            } else if stale {
                Some(RunKind::IncrementalPull)
            } else {
                None
            };
            if let Some(kind) = kind {
                tracing::info!(kind = kind.as_str(), "start-up pull");
                let _ = engine.run(kind, "startup").await;
            }
            if engine.has_due().await {
                let _ = engine.run(RunKind::Push, "startup").await;
            }
        });
        // Retries of failed pulls (see `note_pull_outcome`).
        let engine = self.clone();
        tokio::spawn(async move {
            const LOOK_EVERY: Duration = Duration::from_secs(30);
            loop {
                let wait = match engine.pending_retry().await {
                    Some(r) => (r.at - crate::time::now()).to_std().unwrap_or_default(),
                    None => LOOK_EVERY,
                };
                if !wait.is_zero() {
                    tokio::time::sleep(wait.min(LOOK_EVERY)).await;
                    continue;
                }
                if let Some(r) = engine.pending_retry().await {
                    tracing::info!(
                        kind = r.kind.as_str(),
                        failures = r.failures,
                        "retrying a failed pull"
                    );
                    let _ = engine.run(r.kind, "retry").await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                writes.notified().await;
                // Debounce: wait until writes pause, then push once.
                while tokio::time::timeout(engine.options.push_debounce, writes.notified())
                    .await
                    .is_ok()
                {}
                if engine.has_due().await {
                    let _ = engine.run(RunKind::Push, "write").await;
                }
            }
        });
    }
}

fn month_usage(c: &mut diesel::sqlite::SqliteConnection) -> Result<u64, AppError> {
    use chrono::Datelike;
    let today = crate::time::now().date();
    let first = today.with_day(1).unwrap_or(today).to_string();
    let rows: Vec<i64> = airtable_usage::table
        .filter(airtable_usage::day.ge(first))
        .select(airtable_usage::requests)
        .load(c)?;
    Ok(rows.iter().sum::<i64>().max(0) as u64)
}
