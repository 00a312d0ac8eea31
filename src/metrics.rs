//! Prometheus metrics (`GET /metrics`, SPEC §6) and the hooks other modules call.
//!
//! One recorder per process: `metrics` has a single global recorder, so [`handle`] installs the
//! Prometheus recorder the first time it is asked (a `OnceLock`) and every app — tests start many
//! in one process — shares it. Counters therefore add up across apps in one process; gauges that
//! describe the database are set from the app's own database right before each scrape
//! ([`render`]), so a scrape always shows the scraped app's state.
//!
//! | series | type | labels | from |
//! |---|---|---|---|
//! | `graphql_operations_total` | counter | `operation`, `outcome` (ok/error) | [`GraphqlMetrics`] |
//! | `graphql_operation_duration_seconds` | histogram | `operation` | [`GraphqlMetrics`] |
//! | `lead_cache_hits_total`, `lead_cache_misses_total` | counter | | [`record_cache_hit`], [`record_cache_miss`] |
//! | `airtable_requests_total` | counter | `kind`, `status` | [`record_airtable_request`] |
//! | `airtable_retries_total`, `airtable_rate_limited_total` | counter | | [`record_airtable_retry`], [`record_airtable_rate_limited`] |
//! | `sync_runs_total` | counter | `kind`, `outcome` | [`record_sync_run`] |
//! | `sync_run_duration_seconds` | histogram | `kind` | [`record_sync_run`] |
//! | `duplicates_detected_total` | counter | `rule` | [`record_duplicate`] |
//! | `outbox_depth` | gauge | `state` (pending/failed/dead) | scrape |
//! | `sync_conflicts_open`, `leads_total`, `database_size_bytes`, `backup_age_seconds` | gauge | | scrape |
//!
//! Operation names come from clients, so they are cleaned (letters, digits, `_`, at most 64) and
//! at most [`MAX_OPERATION_NAMES`] distinct names get their own series; later ones are counted as
//! `other`, so a client cannot grow the metrics without bound. Nothing secret or personal is ever
//! a label: no tokens, no query text, no lead data.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_graphql::Response;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use diesel::prelude::*;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::db::Db;
use crate::error::AppError;

/// Most distinct GraphQL operation names with their own series.
pub const MAX_OPERATION_NAMES: usize = 200;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use. `None` when another
/// recorder was installed first (then `/metrics` says so instead of showing nothing).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS);
            let installed = builder.and_then(|b| b.install_recorder());
            match installed {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "graphql_operations_total",
        "GraphQL operations by operation name and outcome"
    );
    describe_histogram!(
        "graphql_operation_duration_seconds",
        "GraphQL operation latency"
    );
    describe_counter!(
        "lead_cache_hits_total",
        "lead(id) answered from the local cache"
    );
    describe_counter!(
        "lead_cache_misses_total",
        "lead(id) not in the local cache (read-through)"
    );
    describe_counter!(
        "airtable_requests_total",
        "Airtable API requests by kind and HTTP status"
    );
    describe_counter!("airtable_retries_total", "Airtable requests retried");
    describe_counter!("airtable_rate_limited_total", "Airtable 429 answers");
    describe_counter!("sync_runs_total", "Sync runs by kind and outcome");
    describe_histogram!("sync_run_duration_seconds", "Sync run duration");
    describe_counter!(
        "duplicates_detected_total",
        "Duplicate leads detected by rule"
    );
    describe_gauge!("outbox_depth", "Outbox rows by state");
    describe_gauge!("sync_conflicts_open", "Unresolved sync conflicts");
    describe_gauge!("leads_total", "Leads in the cache (not deleted)");
    describe_gauge!(
        "database_size_bytes",
        "Database file size (page_count * page_size)"
    );
    describe_gauge!(
        "backup_age_seconds",
        "Seconds since the newest good backup (-1: none yet)"
    );
    // Series that exist from the start, so dashboards and alerts see 0 rather than nothing.
    ::metrics::counter!("lead_cache_hits_total").increment(0);
    ::metrics::counter!("lead_cache_misses_total").increment(0);
    ::metrics::counter!("airtable_retries_total").increment(0);
    ::metrics::counter!("airtable_rate_limited_total").increment(0);
}

/// `lead(id)` found the lead locally.
pub fn record_cache_hit() {
    ::metrics::counter!("lead_cache_hits_total").increment(1);
}

/// `lead(id)` did not find the lead locally (the sync engine's read-through path calls this).
pub fn record_cache_miss() {
    ::metrics::counter!("lead_cache_misses_total").increment(1);
}

/// One Airtable request: `kind` as `list`, `get`, `create`, `update`, `delete`; `status` the HTTP
/// status or `error` when no answer came.
pub fn record_airtable_request(kind: &'static str, status: &str) {
    ::metrics::counter!("airtable_requests_total", "kind" => kind, "status" => status.to_string())
        .increment(1);
}

/// One Airtable request retried.
pub fn record_airtable_retry() {
    ::metrics::counter!("airtable_retries_total").increment(1);
}

/// One 429 from Airtable.
pub fn record_airtable_rate_limited() {
    ::metrics::counter!("airtable_rate_limited_total").increment(1);
}

/// One finished sync run: `kind` as in `sync_runs.kind` (`full_pull`, `incremental_pull`, `push`,
/// `sweep`), `outcome` as in `sync_runs.outcome` (`ok`, `error`, ...).
pub fn record_sync_run(kind: &str, outcome: &str, duration: Duration) {
    ::metrics::counter!("sync_runs_total", "kind" => kind.to_string(), "outcome" => outcome.to_string()).increment(1);
    ::metrics::histogram!("sync_run_duration_seconds", "kind" => kind.to_string())
        .record(duration.as_secs_f64());
}

/// One duplicate detected: `rule` as `linkedin`, `email` or `name_company`.
pub fn record_duplicate(rule: &str) {
    ::metrics::counter!("duplicates_detected_total", "rule" => rule.to_string()).increment(1);
}

/// The metrics in Prometheus text format, with the database gauges refreshed first.
pub async fn render(db: &Db) -> Result<String, AppError> {
    let Some(handle) = handle() else {
        return Ok("# metrics recorder not installed in this process\n".into());
    };
    let gauges = db.run(read_gauges).await?;
    // Gauges are process-wide: hold the lock from setting them to rendering, so two apps in one
    // process (tests) never mix their numbers in one scrape.
    static RENDER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = RENDER.lock().await;
    for (state, n) in [
        ("pending", gauges.pending),
        ("failed", gauges.failed),
        ("dead", gauges.dead),
    ] {
        ::metrics::gauge!("outbox_depth", "state" => state).set(n as f64);
    }
    ::metrics::gauge!("sync_conflicts_open").set(gauges.open_conflicts as f64);
    ::metrics::gauge!("leads_total").set(gauges.leads as f64);
    ::metrics::gauge!("database_size_bytes").set(gauges.size_bytes as f64);
    ::metrics::gauge!("backup_age_seconds")
        .set(gauges.backup_age_seconds.map_or(-1.0, |s| s as f64));
    handle.run_upkeep();
    Ok(handle.render())
}

struct Gauges {
    pending: i64,
    failed: i64,
    dead: i64,
    open_conflicts: i64,
    leads: i64,
    size_bytes: i64,
    backup_age_seconds: Option<i64>,
}

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn read_gauges(c: &mut SqliteConnection) -> Result<Gauges, AppError> {
    use crate::db::schema::{backups, leads, sync_conflicts};
    let (pending, failed, dead) = crate::leads::outbox::counts(c)?;
    let open_conflicts: i64 = sync_conflicts::table
        .filter(sync_conflicts::resolved_at.is_null())
        .count()
        .get_result(c)?;
    let leads: i64 = leads::table
        .filter(leads::deleted_at.is_null())
        .count()
        .get_result(c)?;
    let size_bytes = diesel::sql_query(
        "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()",
    )
    .get_result::<Number>(c)?
    .n;
    let newest: Option<chrono::NaiveDateTime> = backups::table
        .filter(backups::outcome.eq("ok"))
        .select(diesel::dsl::max(backups::created_at))
        .first(c)?;
    let backup_age_seconds = newest.map(|t| (crate::time::now() - t).num_seconds().max(0));
    Ok(Gauges {
        pending,
        failed,
        dead,
        open_conflicts,
        leads,
        size_bytes,
        backup_age_seconds,
    })
}

/// An operation name reduced to letters, digits and `_` (at most 64), safe in labels and logs.
fn clean(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// The label of an operation name (bounded, see the module docs).
fn operation_label(name: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return "anonymous".into();
    };
    let clean = clean(name);
    if clean.is_empty() {
        return "other".into();
    }
    let Ok(mut seen) = SEEN.get_or_init(Default::default).lock() else {
        return "other".into();
    };
    if seen.contains(&clean) {
        return clean;
    }
    if seen.len() >= MAX_OPERATION_NAMES {
        return "other".into();
    }
    seen.insert(clean.clone());
    clean
}

/// The GraphQL extension that counts and times every operation and logs slow ones.
pub struct GraphqlMetrics {
    slow: Duration,
}

impl GraphqlMetrics {
    /// Operations slower than `slow` are logged with a warning (`SLOW_QUERY_MS`).
    pub fn new(slow: Duration) -> Self {
        // Make sure the recorder exists before the first operation is counted.
        let _ = handle();
        GraphqlMetrics { slow }
    }
}

impl ExtensionFactory for GraphqlMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GraphqlMetricsExtension { slow: self.slow })
    }
}

struct GraphqlMetricsExtension {
    slow: Duration,
}

#[async_trait::async_trait]
impl Extension for GraphqlMetricsExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let started = Instant::now();
        let response = next.run(ctx, operation_name).await;
        let elapsed = started.elapsed();
        let operation = operation_label(operation_name);
        if let (Some(slot), Some(name)) = (
            ctx.data_opt::<crate::guard::OperationSlot>(),
            operation_name,
        ) {
            slot.set(&clean(name));
        }
        let outcome = if response.is_ok() { "ok" } else { "error" };
        ::metrics::counter!("graphql_operations_total", "operation" => operation.clone(), "outcome" => outcome)
            .increment(1);
        ::metrics::histogram!("graphql_operation_duration_seconds", "operation" => operation.clone())
            .record(elapsed.as_secs_f64());
        if elapsed >= self.slow {
            tracing::warn!(
                operation = %operation,
                elapsed_ms = elapsed.as_millis() as u64,
                outcome,
                "slow GraphQL operation {operation}: {} ms",
                elapsed.as_millis()
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_cleaned_and_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("Get-Lead\"}")), "GetLead");
        assert_eq!(operation_label(Some("---")), "other");
        for i in 0..(MAX_OPERATION_NAMES + 10) {
            operation_label(Some(&format!("flood{i}")));
        }
        assert_eq!(operation_label(Some("brandNewAfterTheFlood")), "other");
        assert_eq!(
            operation_label(Some("GetLead")),
            "GetLead",
            "names seen before keep their series"
        );
    }
}
