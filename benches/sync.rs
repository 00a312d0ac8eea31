//! Sync benchmark (issue 4, SPEC §5.8): the sync engine against the in-process Airtable simulator
//! at Airtable's real limits (5 requests a second per base, pages of 100, 10 records a write, a
//! 30 s lock-out after a 429), with the production client settings. Figures: BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench sync                            # 10,000 records, 1,000 edits
//! cargo bench --bench sync -- --records 2000 --edits 300
//! ```
//!
//! Two measurements, each timed around one `SyncEngine::run`:
//! 1. **Full pull** of `--records` records into an empty cache: every page fetched and applied
//!    (each page one SQLite transaction, history included).
//! 2. **Push** of `--edits` leads edited through the GraphQL API (`updateLead`, one changed field
//!    each): the outbox sent as PATCH batches of 10, the answers stored.
//!
//! For each: the elapsed time against the rate bound (the minimum number of requests at 5 a
//! second: 100 requests = 20 s), the requests the simulator received against that minimum, the
//! 429s it answered, and the most requests it saw in any 1-second window. The request figures
//! come from the simulator's own log, not from the client's counters.
//!
//! **It checks, it does not only measure.** The run fails (non-zero exit) when a measurement
//! sent more requests than the minimum, saw a 429, let more than 5 requests into a 1-second
//! window, or left the data unequal (cache vs simulator after the pull; every edited record's
//! new value in the simulator after the push). `cargo test --all-targets` runs this binary
//! without `--bench`: a smoke pass of 500 records and 50 edits (a few seconds) with the same
//! checks. Time is never checked: it is the figure, and the machine is shared.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use diesel::prelude::*;
use leadcache::airtable::RequestKind;
use leadcache::airtable::sim::{self, LogEntry, SimConfig, SimHandle};
use leadcache::app::{Running, open_database, start};
use leadcache::config::{AirtableConfig, ApiKeySource, Config, Secret};
use leadcache::db::schema::leads;
use leadcache::state::{AppState, Mode};
use leadcache::sync::runs::RunKind;
use leadcache::sync::{SyncEngine, SyncOptions};
use serde_json::{Value, json};

/// The allocator of the `leadcache` binary (src/main.rs), so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY: &str = "patBenchKey.secret";
const BASE: &str = "appBenchBase00001";
/// Airtable's limit, which the simulator enforces.
const RATE: u32 = 5;
const PAGE: usize = 100;
const BATCH: usize = 10;

#[derive(Parser, Debug)]
#[command(
    name = "sync",
    about = "Sync benchmark: full pull and push against the simulator (see BENCHMARKS.md)"
)]
struct Args {
    /// Records in the simulator, pulled into an empty cache.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Leads edited locally, then pushed.
    #[arg(long, default_value_t = 1_000)]
    edits: usize,
    /// Seed of the simulator's sample records.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Passed by `cargo bench`; without it, a short smoke pass runs.
    #[arg(long, hide = true)]
    bench: bool,
    /// A name filter `cargo bench NAME` may pass; ignored.
    #[arg(hide = true)]
    filter: Option<String>,
}

/// One measured run, read from the simulator's log.
struct Figures {
    name: &'static str,
    items: usize,
    elapsed: Duration,
    requests: usize,
    minimum: usize,
    rate_limited: usize,
    max_in_a_second: usize,
    /// First to last request, as the simulator saw them arrive.
    span: Duration,
}

impl Figures {
    fn from_log(
        name: &'static str,
        items: usize,
        per_request: usize,
        elapsed: Duration,
        log: &[LogEntry],
    ) -> Figures {
        let api: Vec<&LogEntry> = log.iter().filter(|e| e.kind.is_some()).collect();
        let times: Vec<u64> = api.iter().map(|e| e.t_us).collect();
        let max_in_a_second = times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                times[i..]
                    .iter()
                    .take_while(|u| **u < t + 1_000_000)
                    .count()
            })
            .max()
            .unwrap_or(0);
        let span = match (times.first(), times.last()) {
            (Some(a), Some(b)) => Duration::from_micros(b - a),
            _ => Duration::ZERO,
        };
        Figures {
            name,
            items,
            elapsed,
            requests: api.len(),
            minimum: items.div_ceil(per_request),
            rate_limited: api.iter().filter(|e| e.status == 429).count(),
            max_in_a_second,
            span,
        }
    }

    /// The minimum requests at `RATE` a second.
    fn bound(&self) -> Duration {
        Duration::from_secs_f64(self.minimum as f64 / f64::from(RATE))
    }

    fn over_bound(&self) -> f64 {
        (self.elapsed.as_secs_f64() / self.bound().as_secs_f64() - 1.0) * 100.0
    }

    /// What is wrong with this run, if anything (never its speed).
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.requests != self.minimum {
            out.push(format!(
                "{}: {} requests, the minimum is {}",
                self.name, self.requests, self.minimum
            ));
        }
        if self.rate_limited > 0 {
            out.push(format!("{}: {} answered 429", self.name, self.rate_limited));
        }
        if self.max_in_a_second > RATE as usize {
            out.push(format!(
                "{}: {} requests within one second",
                self.name, self.max_in_a_second
            ));
        }
        out
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if !args.bench {
        args.records = args.records.min(500);
        args.edits = args.edits.min(50);
        eprintln!(
            "smoke run (no --bench): {} records, {} edits; use `cargo bench --bench sync` for figures",
            args.records, args.edits
        );
    }
    ensure!(
        args.edits <= args.records,
        "--edits ({}) cannot exceed --records ({})",
        args.edits,
        args.records
    );
    leadcache::airtable::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let figures = rt.block_on(run(&args))?;
    print_table(&figures);
    let problems: Vec<String> = figures.iter().flat_map(Figures::problems).collect();
    if !problems.is_empty() {
        bail!(
            "the sync benchmark failed its checks:\n- {}",
            problems.join("\n- ")
        );
    }
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<Vec<Figures>> {
    let t = Instant::now();
    let sim = sim::start(SimConfig {
        records: args.records,
        seed: args.seed,
        api_key: Some(KEY.into()),
        base_id: Some(BASE.into()),
        ..SimConfig::default()
    })
    .await?;
    let limits = &sim.state.config();
    ensure!(
        limits.rate_limit == Some(RATE)
            && limits.rate_window == Duration::from_secs(1)
            && limits.lockout == Duration::from_secs(30)
            && limits.max_batch == Some(BATCH),
        "the simulator does not run at Airtable's limits"
    );
    println!(
        "simulator on {} with {} records ({:.1} s to seed)",
        sim.url(),
        sim.state.record_count(),
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let mut config = Config::for_database(dir.path().join("leads.db"));
    config.backup_dir = dir.path().join("backups");
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.airtable = Some(AirtableConfig {
        api_key: Some(ApiKeySource::Value(Secret::new(KEY))),
        base_id: BASE.into(),
        table: sim.table().to_string(),
        api_url: sim.url(),
        field_map: None,
        modified_field: "Last Modified".into(),
        lead_id_field: "Lead ID".into(),
        rate_limit: RATE,
    });
    let db = open_database(&config)?;
    // Production engine settings: pacing, retries and pauses as `leadcache serve` has them.
    let state = AppState::with_sync(config.clone(), db, Mode::Airtable, SyncOptions::default())?;
    let running: Running = start(state, config.bind).await?;
    let engine = running.app.state.sync.clone().context("no sync engine")?;

    let pull = full_pull(&engine, &sim, &running, args.records).await?;
    let push = push_edits(&engine, &sim, &running, args.edits).await?;
    running.stop().await?;
    Ok(vec![pull, push])
}

async fn full_pull(
    engine: &Arc<SyncEngine>,
    sim: &SimHandle,
    running: &Running,
    records: usize,
) -> anyhow::Result<Figures> {
    println!("full pull of {records} records into an empty cache ...");
    sim.state.clear_log();
    let t = Instant::now();
    let run = engine.run(RunKind::FullPull, "bench").await?;
    let elapsed = t.elapsed();
    ensure!(
        run.outcome == "success",
        "the pull ended {}: {:?}",
        run.outcome,
        run.error
    );
    let log = sim.state.log();
    ensure!(
        log.iter()
            .all(|e| e.kind.is_none_or(|k| k == RequestKind::List)),
        "the pull sent something other than list requests"
    );
    // The cache holds every record, each linked to its Airtable id.
    let linked: i64 = running
        .app
        .state
        .db
        .run(|c| {
            Ok(leads::table
                .filter(leads::airtable_id.is_not_null())
                .filter(leads::deleted_at.is_null())
                .count()
                .get_result(c)?)
        })
        .await?;
    ensure!(
        linked as usize == records && sim.state.record_count() == records,
        "after the pull the cache has {linked} linked leads, the simulator {} records",
        sim.state.record_count()
    );
    Ok(Figures::from_log("full pull", records, PAGE, elapsed, &log))
}

async fn push_edits(
    engine: &Arc<SyncEngine>,
    sim: &SimHandle,
    running: &Running,
    edits: usize,
) -> anyhow::Result<Figures> {
    let chosen: Vec<(String, Option<String>)> = running
        .app
        .state
        .db
        .run(move |c| {
            Ok(leads::table
                .order(leads::id)
                .limit(edits as i64)
                .select((leads::id, leads::airtable_id))
                .load(c)?)
        })
        .await?;
    println!("editing {} leads through updateLead ...", chosen.len());
    let http = reqwest::Client::new();
    let url = format!("{}/graphql", running.url());
    let t = Instant::now();
    let mut expected = Vec::with_capacity(chosen.len());
    for (i, (id, airtable_id)) in chosen.iter().enumerate() {
        let title = format!("Bench Title {i}");
        let body: Value = http
            .post(&url)
            .json(&json!({
                "query": "mutation($id: ID!, $t: String!) { updateLead(id: $id, patch: {title: $t}) { id } }",
                "variables": {"id": id, "t": title},
            }))
            .send()
            .await?
            .json()
            .await?;
        ensure!(body.get("errors").is_none(), "updateLead failed: {body}");
        let airtable_id = airtable_id
            .clone()
            .context("an edited lead has no Airtable id")?;
        expected.push((airtable_id, title));
    }
    println!(
        "  {} edits in {:.1} s; pushing ...",
        expected.len(),
        t.elapsed().as_secs_f64()
    );
    sim.state.clear_log();
    let t = Instant::now();
    let run = engine.run(RunKind::Push, "bench").await?;
    let elapsed = t.elapsed();
    ensure!(
        run.outcome == "success" && run.pushed as usize == edits,
        "the push ended {} with {} pushed: {:?}",
        run.outcome,
        run.pushed,
        run.error
    );
    let log = sim.state.log();
    // Updates, and the pre-push reads of their records (SPEC 5.3a): one list per 100 of them.
    let reads = log
        .iter()
        .filter(|e| e.kind == Some(RequestKind::List))
        .count();
    ensure!(
        log.iter().all(|e| e
            .kind
            .is_none_or(|k| k == RequestKind::Update || k == RequestKind::List)),
        "the push sent something other than updates and their pre-push reads"
    );
    ensure!(
        reads <= edits.div_ceil(100),
        "the push read {reads} pages back for {edits} edits"
    );
    for (airtable_id, title) in &expected {
        let record = sim
            .state
            .record(airtable_id)
            .with_context(|| format!("record {airtable_id} is gone"))?;
        ensure!(
            record["fields"]["Title"] == title.as_str(),
            "record {airtable_id} has title {}, expected {title:?}",
            record["fields"]["Title"]
        );
    }
    let mut figures = Figures::from_log("push", edits, BATCH, elapsed, &log);
    // The minimum of a push is ceil(M/10) writes plus ceil(M/100) pre-push reads (SPEC 5.3a).
    figures.minimum += edits.div_ceil(100);
    Ok(figures)
}

fn print_table(figures: &[Figures]) {
    println!();
    println!(
        "| measurement | records | elapsed | rate bound | vs bound | requests (minimum) | 429s | most in any 1 s | first to last request |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in figures {
        println!(
            "| {} | {} | {:.2} s | {:.1} s | {:+.1} % | {} ({}) | {} | {} | {:.2} s |",
            f.name,
            f.items,
            f.elapsed.as_secs_f64(),
            f.bound().as_secs_f64(),
            f.over_bound(),
            f.requests,
            f.minimum,
            f.rate_limited,
            f.max_in_a_second,
            f.span.as_secs_f64()
        );
    }
}
