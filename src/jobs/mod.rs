//! Background jobs (SPEC §5.6): a thin layer over `tokio-cron-scheduler`.
//!
//! A job is an idempotent `async fn(AppState) -> anyhow::Result<()>` registered with a name and a
//! [`Schedule`] read from a setting. The layer adds what the scheduler does not:
//!
//! - **never twice at once**: a tick that finds the previous run still going is skipped (debug
//!   log, counted in [`JobStats::skipped`]);
//! - **failures are contained**: a failing run is logged once with its cause chain, recorded
//!   (in memory and in `cache_meta` as `job.<name>.last_error`), and the next tick runs as
//!   planned; a panicking run counts as a failure too;
//! - **every run is recorded**: `cache_meta` keys `job.<name>.last_run`, `job.<name>.last_outcome`
//!   (`ok`/`failed`) survive restarts and show in `sql`; [`Scheduler::stats`] has the counters.
//!
//! Adding a job (the sync jobs plug in here, in [`register_defaults`]):
//!
//! ```ignore
//! let every = Schedule::every(config.sync_push_interval);
//! jobs.add("push", every, crate::sync::jobs::push).await?;
//! ```
//!
//! Schedules are cron expressions with 6 fields, seconds first (`0 0 3 * * *`), in UTC, or a fixed
//! interval. An empty setting disables its job (`None` schedule): nothing is registered.

mod builtin;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt as _;
use tokio_cron_scheduler::{Job, JobScheduler};

pub use builtin::{backup, cleanup};

use crate::state::AppState;

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A 6-field cron expression, seconds first, UTC.
    Cron(String),
    /// A fixed interval, first run one interval after start.
    Every(Duration),
}

impl Schedule {
    /// A cron schedule from a setting; `None` (disabled) when it is empty.
    pub fn cron(setting: Option<&str>) -> Option<Schedule> {
        setting
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Schedule::Cron(s.to_string()))
    }

    /// An interval schedule; `None` for a zero interval.
    pub fn every(interval: Duration) -> Option<Schedule> {
        (!interval.is_zero()).then_some(Schedule::Every(interval))
    }
}

/// Counters of one job since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStats {
    pub runs: u64,
    pub failures: u64,
    pub skipped: u64,
    /// The error of the latest run (`None` when it succeeded).
    pub last_error: Option<String>,
    /// The error of the latest failed run, kept after later successes.
    pub last_failure: Option<String>,
}

type BoxedJob =
    Arc<dyn Fn(AppState) -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

struct Entry {
    name: String,
    running: AtomicBool,
    runs: AtomicU64,
    failures: AtomicU64,
    skipped: AtomicU64,
    /// (latest run's error, latest failure).
    errors: std::sync::Mutex<(Option<String>, Option<String>)>,
}

/// The registered jobs of a server.
pub struct Scheduler {
    inner: JobScheduler,
    state: AppState,
    entries: HashMap<String, Arc<Entry>>,
}

impl Scheduler {
    pub async fn new(state: AppState) -> anyhow::Result<Scheduler> {
        let inner = JobScheduler::new()
            .await
            .context("cannot create the job scheduler")?;
        Ok(Scheduler {
            inner,
            state,
            entries: HashMap::new(),
        })
    }

    /// Registers `job` under `name` (unique). A `None` schedule registers nothing (the setting
    /// was empty) and logs that the job is off.
    pub async fn add<F, Fut>(
        &mut self,
        name: &str,
        schedule: Option<Schedule>,
        job: F,
    ) -> anyhow::Result<()>
    where
        F: Fn(AppState) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let Some(schedule) = schedule else {
            tracing::info!(job = name, "job {name} is disabled (empty schedule)");
            return Ok(());
        };
        anyhow::ensure!(
            !self.entries.contains_key(name),
            "job {name} is registered twice"
        );
        let entry = Arc::new(Entry {
            name: name.to_string(),
            running: AtomicBool::new(false),
            runs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            errors: std::sync::Mutex::new((None, None)),
        });
        let job: BoxedJob = Arc::new(move |state| job(state).boxed());
        let (e, state) = (entry.clone(), self.state.clone());
        let tick = move |_id, _sched| {
            let (e, state, job) = (e.clone(), state.clone(), job.clone());
            async move { run_once(&e, state, &job).await }.boxed()
        };
        let scheduled = match &schedule {
            Schedule::Cron(expr) => Job::new_async(expr.as_str(), tick).with_context(|| {
                format!(
                    "invalid schedule {} for job {name} (6 fields, seconds first)",
                    crate::error::quote(expr)
                )
            })?,
            Schedule::Every(every) => Job::new_repeated_async(*every, tick)
                .with_context(|| format!("invalid interval {every:?} for job {name}"))?,
        };
        self.inner
            .add(scheduled)
            .await
            .with_context(|| format!("cannot schedule job {name}"))?;
        tracing::info!(job = name, schedule = ?schedule, "job {name} scheduled");
        self.entries.insert(name.to_string(), entry);
        Ok(())
    }

    pub async fn start(&self) -> anyhow::Result<()> {
        self.inner
            .start()
            .await
            .context("cannot start the job scheduler")
    }

    /// Stops scheduling; a run in progress finishes on its own.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.inner
            .shutdown()
            .await
            .context("cannot stop the job scheduler")
    }

    /// The names of the registered (enabled) jobs.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether a run of `name` is going on now.
    pub fn running(&self, name: &str) -> bool {
        self.entries
            .get(name)
            .is_some_and(|e| e.running.load(Ordering::Acquire))
    }

    pub fn stats(&self, name: &str) -> Option<JobStats> {
        self.entries.get(name).map(|e| {
            let errors = e.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
            JobStats {
                runs: e.runs.load(Ordering::Acquire),
                failures: e.failures.load(Ordering::Acquire),
                skipped: e.skipped.load(Ordering::Acquire),
                last_error: errors.0,
                last_failure: errors.1,
            }
        })
    }
}

/// Clears the running flag even if the run panics or is cancelled.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// One tick: skip if still running, run, record the outcome.
async fn run_once(e: &Entry, state: AppState, job: &BoxedJob) {
    if e.running.swap(true, Ordering::AcqRel) {
        e.skipped.fetch_add(1, Ordering::AcqRel);
        tracing::debug!(job = %e.name, "job {} is still running; skipping this tick", e.name);
        return;
    }
    let _running = Running(&e.running);
    let started = crate::time::now();
    let outcome = std::panic::AssertUnwindSafe(job(state.clone()))
        .catch_unwind()
        .await;
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(crate::error::report(&err)),
        Err(_) => Some("the job panicked".to_string()),
    };
    {
        let mut errors = e.errors.lock().unwrap_or_else(|p| p.into_inner());
        errors.0 = error.clone();
        if let Some(msg) = &error {
            errors.1 = Some(msg.clone());
            e.failures.fetch_add(1, Ordering::AcqRel);
            tracing::error!(job = %e.name, error = %msg, "job {} failed: {msg}", e.name);
        }
    }
    // Counted last, so whoever sees the run counted sees its outcome too.
    e.runs.fetch_add(1, Ordering::AcqRel);
    let name = e.name.clone();
    let recorded = state
        .db
        .run(move |c| {
            use crate::db::meta;
            meta::set_time(c, &format!("job.{name}.last_run"), started)?;
            meta::set(
                c,
                &format!("job.{name}.last_outcome"),
                if error.is_some() { "failed" } else { "ok" },
            )?;
            meta::set(
                c,
                &format!("job.{name}.last_error"),
                error.as_deref().unwrap_or(""),
            )
        })
        .await;
    if let Err(err) = recorded {
        tracing::warn!(job = %e.name, error = %err, "cannot record the run of job {}", e.name);
    }
}

/// Registers the jobs every server runs, from the configuration.
pub async fn register_defaults(jobs: &mut Scheduler) -> anyhow::Result<()> {
    let config = jobs.state.config.clone();
    jobs.add(
        "backup",
        Schedule::cron(config.backup_schedule.as_deref()),
        backup,
    )
    .await?;
    jobs.add(
        "cleanup",
        Schedule::cron(config.cleanup_schedule.as_deref()),
        cleanup,
    )
    .await?;
    // Sync jobs (SPEC §5.6), when Airtable is configured. Writes also trigger a debounced push.
    if jobs.state.sync.is_some() {
        jobs.add(
            "incremental_pull",
            Schedule::every(config.cache_refresh_interval),
            sync_pull,
        )
        .await?;
        jobs.add("sweep", Schedule::cron(Some("0 15 2 * * *")), sync_sweep)
            .await?;
        jobs.add(
            "push",
            Schedule::every(config.sync_push_interval),
            sync_push,
        )
        .await?;
    }
    Ok(())
}

/// Builds, registers the default jobs and starts the scheduler of a server.
pub async fn start(state: AppState) -> anyhow::Result<Scheduler> {
    let mut jobs = Scheduler::new(state).await?;
    register_defaults(&mut jobs).await?;
    jobs.start().await?;
    Ok(jobs)
}

/// Scheduled incremental pull; skipped near the monthly quota (pushes go on).
async fn sync_pull(state: AppState) -> anyhow::Result<()> {
    let engine = state.engine()?.clone();
    if engine.near_quota().await {
        tracing::warn!(
            "skipping the scheduled pull: Airtable usage is near AIRTABLE_MONTHLY_QUOTA"
        );
        return Ok(());
    }
    let run = engine
        .run(crate::sync::runs::RunKind::IncrementalPull, "schedule")
        .await?;
    anyhow::ensure!(
        run.outcome != "failed",
        "pull failed: {}",
        run.error.unwrap_or_default()
    );
    Ok(())
}

/// Daily id sweep (finds records deleted in Airtable); skipped near the monthly quota.
async fn sync_sweep(state: AppState) -> anyhow::Result<()> {
    let engine = state.engine()?.clone();
    if engine.near_quota().await {
        tracing::warn!(
            "skipping the scheduled sweep: Airtable usage is near AIRTABLE_MONTHLY_QUOTA"
        );
        return Ok(());
    }
    let run = engine
        .run(crate::sync::runs::RunKind::Sweep, "schedule")
        .await?;
    anyhow::ensure!(
        run.outcome != "failed",
        "sweep failed: {}",
        run.error.unwrap_or_default()
    );
    Ok(())
}

/// Scheduled push of the outbox.
async fn sync_push(state: AppState) -> anyhow::Result<()> {
    if !state.engine()?.has_due().await {
        return Ok(());
    }
    let run = state
        .engine()?
        .run(crate::sync::runs::RunKind::Push, "schedule")
        .await?;
    anyhow::ensure!(
        run.outcome != "failed",
        "push failed: {}",
        run.error.unwrap_or_default()
    );
    Ok(())
}
