//! HTTP load benchmark (SPEC §13): the real server, started in-process on 127.0.0.1 over a temp
//! database seeded with 100,000 leads, driven over HTTP with reqwest at concurrency 16 for a fixed
//! time per scenario. Figures and how to read them: BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench http                       # defaults: 100,000 leads, 10 s a scenario, 16 clients
//! cargo bench --bench http -- --seconds 20 --only lead,status
//! scripts/bench.sh                               # the same, output kept in target/bench-http.txt
//! ```
//!
//! Decisions a reader may ask about:
//! - **Two runtimes, one process.** The server runs on its own multi-thread tokio runtime (one
//!   worker per core, as `leadcache serve` builds it, plus the blocking pool where every SQLite
//!   call runs); the load generator on a second runtime with one worker (`--client-threads`).
//!   Their threads are named (`lc-server`, `lc-load`), so the CPU time each used is read from
//!   `/proc/self/task/*/schedstat` and printed per scenario: that says whether a figure is bound
//!   by the CPU the two share (2 cores) rather than by the server alone.
//! - **Exact percentiles.** Every request's duration is kept and sorted (a few hundred thousand
//!   `u64` per scenario), so no histogram crate is needed and nothing is bucketed.
//! - **Errors are counted, not ignored.** A request is an error when the status is not 200, the
//!   body is not a JSON object with non-null `data`, or it carries `errors`. Before timing, each
//!   scenario checks one response in full (shape and content), so a broken query fails the run
//!   instead of producing fast numbers.
//! - **RSS** is read from `/proc/self/status` and is the whole process: server, load generator and
//!   the benchmark's own latency vectors (~16 bytes a request).

#[path = "http/procfs.rs"]
mod procfs;
#[path = "http/report.rs"]
mod report;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, ValueEnum};
use diesel::prelude::*;
use leadcache::app::{Running, open_database, start};
use leadcache::config::Config;
use leadcache::db::schema::leads;
use leadcache::graphql::mutation::MAX_BATCH;
use leadcache::seed::{COMPANY_STEMS, FIRST_NAMES, LAST_NAMES};
use leadcache::state::{AppState, Mode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::procfs::{cores, rss_mib, thread_cpu};
use crate::report::{Outcome, print_summary};

/// The allocator of the `leadcache` binary (src/main.rs), so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "http",
    about = "HTTP load benchmark of leadcache (see BENCHMARKS.md)"
)]
struct Args {
    /// Leads seeded before the run.
    #[arg(long, default_value_t = 100_000)]
    leads: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds per scenario (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent clients (each sends its next request when the previous one is answered).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Leads created through `createLeads` in the bulk measurement.
    #[arg(long, default_value_t = 100_000)]
    bulk: usize,
    /// Leads per `createLeads` call in the bulk measurement (at most the server's cap).
    #[arg(long, default_value_t = MAX_BATCH)]
    batch: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Seed of the generated leads and of the request mix.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run only these scenarios (comma-separated); default all, in the order listed.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// A name filter `cargo bench NAME` may pass; ignored (use --only).
    #[arg(hide = true)]
    filter: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `lead(id)` with random ids of seeded leads.
    Lead,
    /// `leads(filter: {status}, first: 50, orderBy: UPDATED_AT DESC)`: a status page.
    Status,
    /// `searchLeads(query, first: 20)` with names, company stems and 3-letter prefixes.
    Search,
    /// `createLead` with unique names and emails, at the configured concurrency.
    Create,
    /// `createLead` with a single client: the latency one agent sees without queueing.
    Create1,
    /// `createLeads` of `--bulk` leads in batches of `--batch`, timed in total.
    Bulk,
}

const ALL: &[Scenario] = &[
    Scenario::Lead,
    Scenario::Status,
    Scenario::Search,
    Scenario::Create,
    Scenario::Create1,
    Scenario::Bulk,
];

const LEAD_Q: &str =
    "query($id: ID!) { lead(id: $id) { id fullName email company status updatedAt version } }";
const STATUS_Q: &str = "query($s: [String!]) { leads(filter: {status: $s}, first: 50, \
     orderBy: [{field: UPDATED_AT, direction: DESC}]) { nodes { id fullName email company status updatedAt } \
     pageInfo { hasNextPage endCursor } } }";
const SEARCH_Q: &str = "query($q: String!) { searchLeads(query: $q, first: 20) { id fullName email company status updatedAt } }";
const CREATE_Q: &str = "mutation($i: LeadInput!) { createLead(input: $i) { created lead { id version fullName status } } }";
const BULK_Q: &str = "mutation($i: [LeadInput!]!) { createLeads(inputs: $i) { created failed } }";

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    // `cargo test --all-targets` runs this binary without `--bench`: a small smoke pass proves
    // every scenario still answers correctly, without the minutes a real run takes.
    if !args.bench {
        args.leads = args.leads.min(300);
        args.bulk = args.bulk.min(200);
        args.batch = args.batch.min(100);
        args.seconds = args.seconds.min(1);
        args.warmup = 0;
        eprintln!(
            "smoke run (no --bench): {} leads, 1 s per scenario; use `cargo bench` for figures",
            args.leads
        );
    }
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    ensure!(
        args.batch > 0 && args.batch <= MAX_BATCH,
        "--batch must be 1..={MAX_BATCH}"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scenarios: Vec<Scenario> = ALL
        .iter()
        .copied()
        .filter(|s| args.only.is_empty() || args.only.contains(s))
        .collect();

    // The server's runtime: what `#[tokio::main]` builds (one worker per core). Idle blocking
    // threads are kept, so their CPU time stays countable between two readings.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lc-server")
        .thread_keep_alive(Duration::from_secs(3600))
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .thread_name("lc-load")
        .build()?;

    let dir = tempfile::tempdir()?;
    let mut config = Config::for_database(dir.path().join("leads.db"));
    config.backup_dir = dir.path().join("backups");
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    let db = open_database(&config)?;

    print_header(&args);
    let t = Instant::now();
    let ids: Vec<String> = {
        let mut conn = db.conn()?;
        leadcache::seed::seed(&mut conn, args.leads, args.seed, false)?;
        leads::table.select(leads::id).load::<String>(&mut *conn)?
    };
    ensure!(
        ids.len() >= args.leads,
        "seeded {} leads, expected {}",
        ids.len(),
        args.leads
    );
    let db_bytes = std::fs::metadata(&config.database_path)
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "seeded {} leads (with history and outbox rows) in {:.1} s; database {:.0} MiB",
        ids.len(),
        t.elapsed().as_secs_f64(),
        db_bytes as f64 / 1048576.0
    );

    let state = AppState::new(config.clone(), db, Mode::LocalOnly);
    let running: Running = server_rt.block_on(start(state, config.bind))?;
    println!(
        "server on {} (rss {:.0} MiB)\n",
        running.url(),
        rss_mib("VmRSS:")
    );

    let bench = Bench {
        http: reqwest::Client::builder()
            .no_gzip()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(args.concurrency.max(16))
            .build()?,
        url: format!("{}/graphql", running.url()),
        ids: Arc::new(ids),
        statuses: Arc::new(config.lead_statuses.clone()),
        words: Arc::new(search_words()),
        nonce: format!("{:x}", rand::rng().random::<u32>()),
        counter: Arc::new(AtomicU64::new(0)),
    };
    let mut results = Vec::new();
    let outcome = client_rt.block_on(async {
        for s in &scenarios {
            let r = match s {
                Scenario::Bulk => bench.bulk(args.bulk, args.batch).await?,
                Scenario::Create1 => bench.load(*s, 1, &args).await?,
                _ => bench.load(*s, args.concurrency, &args).await?,
            };
            results.push(r);
        }
        anyhow::Ok(())
    });
    server_rt.block_on(running.stop())?;
    outcome?;
    print_summary(&results);
    Ok(())
}

/// What the load generator needs to build and send requests.
#[derive(Clone)]
struct Bench {
    http: reqwest::Client,
    url: String,
    ids: Arc<Vec<String>>,
    statuses: Arc<Vec<String>>,
    words: Arc<Vec<String>>,
    /// Makes created names and emails unique across runs on the same database.
    nonce: String,
    counter: Arc<AtomicU64>,
}

/// The top-level shape of a GraphQL response, read without building it.
#[derive(Deserialize)]
struct Envelope {
    data: Option<IgnoredAny>,
    errors: Option<IgnoredAny>,
}

impl Bench {
    fn unique(&self) -> String {
        format!(
            "{}-{}",
            self.nonce,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn new_lead(&self, rng: &mut StdRng) -> Value {
        let n = self.unique();
        let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
        let stem = COMPANY_STEMS[rng.random_range(0..COMPANY_STEMS.len())];
        json!({
            "fullName": format!("{first} {last} {n}"),
            "email": format!("bench.{n}@{}.example", stem.to_lowercase().replace(' ', "-")),
            "company": format!("{stem} Labs"),
            "title": "Head of Growth",
            "linkedinUrl": format!("https://www.linkedin.com/in/bench-{n}"),
            "location": "Berlin, Germany",
            "industry": "Software",
            "source": "benchmark",
            "score": rng.random_range(0..=100) as f64,
        })
    }

    /// A request body of `scenario`, and what its response must satisfy when checked in full.
    fn request(&self, scenario: Scenario, rng: &mut StdRng) -> (Value, Check) {
        match scenario {
            Scenario::Lead => {
                let id = self.ids[rng.random_range(0..self.ids.len())].clone();
                (
                    json!({"query": LEAD_Q, "variables": {"id": id}}),
                    Check::Lead(id),
                )
            }
            Scenario::Status => {
                let s = self.statuses[rng.random_range(0..self.statuses.len())].clone();
                (
                    json!({"query": STATUS_Q, "variables": {"s": [s]}}),
                    Check::Status(s),
                )
            }
            Scenario::Search => {
                let q = self.words[rng.random_range(0..self.words.len())].clone();
                (
                    json!({"query": SEARCH_Q, "variables": {"q": q}}),
                    Check::Search,
                )
            }
            Scenario::Create | Scenario::Create1 | Scenario::Bulk => (
                json!({"query": CREATE_Q, "variables": {"i": self.new_lead(rng)}}),
                Check::Created,
            ),
        }
    }

    /// Sends one body; returns the response body when it was a 200.
    async fn send(&self, body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let resp = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?.to_vec();
        ensure!(
            status == reqwest::StatusCode::OK,
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        Ok(bytes)
    }

    /// Checks one response of `scenario` in full before timing it.
    async fn sanity(&self, scenario: Scenario) -> anyhow::Result<()> {
        let mut rng = StdRng::seed_from_u64(7);
        let (mut body, check) = self.request(scenario, &mut rng);
        if scenario == Scenario::Search {
            body["variables"]["q"] = json!("Smith");
        }
        let bytes = self.send(serde_json::to_vec(&body)?).await?;
        let v: Value = serde_json::from_slice(&bytes)?;
        ensure!(v.get("errors").is_none(), "{scenario:?}: errors in {v}");
        check
            .verify(&v["data"])
            .with_context(|| format!("{scenario:?}: unexpected response {v}"))
    }

    /// Runs `scenario` with `concurrency` clients: warm-up, then `--seconds` measured.
    async fn load(
        &self,
        scenario: Scenario,
        concurrency: usize,
        args: &Args,
    ) -> anyhow::Result<Outcome> {
        let name = scenario_name(scenario);
        println!(
            "== {name}: {concurrency} client(s), {} s after a {} s warm-up",
            args.seconds, args.warmup
        );
        self.sanity(scenario).await?;
        if args.warmup > 0 {
            self.drive(
                scenario,
                concurrency,
                Duration::from_secs(args.warmup),
                args.seed ^ 0xFFFF,
            )
            .await?;
        }
        let cpu0 = thread_cpu();
        let (mut latencies, errors, seconds) = self
            .drive(
                scenario,
                concurrency,
                Duration::from_secs(args.seconds),
                args.seed,
            )
            .await?;
        let cpu1 = thread_cpu();
        latencies.sort_unstable();
        let (server_cores, load_cores) = cores(&cpu0, &cpu1, seconds);
        let out = Outcome {
            name: name.to_string(),
            concurrency,
            requests: latencies.len() as u64,
            errors,
            seconds,
            latencies,
            server_cores,
            load_cores,
            rss_mib: rss_mib("VmRSS:"),
            leads: 0,
        };
        println!(
            "requests {}  errors {}  req/s {:.0}\nlatency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}\n\
             cpu cores used: server {:.2}  load generator {:.2}  (machine has {})\nrss {:.0} MiB (peak {:.0} MiB)\n",
            out.requests,
            out.errors,
            out.rate(),
            out.ms(0.5),
            out.ms(0.9),
            out.ms(0.99),
            out.ms(1.0),
            out.server_cores,
            out.load_cores,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            out.rss_mib,
            rss_mib("VmHWM:"),
        );
        Ok(out)
    }

    /// `concurrency` clients send requests back to back for `dur`. Returns every request's
    /// duration (ns), the error count and the wall time until the last client stopped.
    async fn drive(
        &self,
        scenario: Scenario,
        concurrency: usize,
        dur: Duration,
        seed: u64,
    ) -> anyhow::Result<(Vec<u64>, u64, f64)> {
        let start = Instant::now();
        let deadline = start + dur;
        let mut tasks = tokio::task::JoinSet::new();
        for client in 0..concurrency {
            let bench = self.clone();
            tasks.spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(client as u64));
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let (body, _) = bench.request(scenario, &mut rng);
                    let body = serde_json::to_vec(&body).unwrap_or_default();
                    let t0 = Instant::now();
                    let reply = bench.send(body).await;
                    latencies.push(t0.elapsed().as_nanos() as u64);
                    let ok = reply.is_ok_and(|b| {
                        serde_json::from_slice::<Envelope>(&b)
                            .is_ok_and(|e| e.data.is_some() && e.errors.is_none())
                    });
                    if !ok {
                        errors += 1;
                    }
                }
                (latencies, errors)
            });
        }
        let mut all = Vec::new();
        let mut errors = 0;
        while let Some(joined) = tasks.join_next().await {
            let (l, e) = joined?;
            all.extend(l);
            errors += e;
        }
        Ok((all, errors, start.elapsed().as_secs_f64()))
    }

    /// Creates `total` leads through `createLeads`, `batch` a call, one call at a time; the bodies
    /// are built before the clock starts.
    async fn bulk(&self, total: usize, batch: usize) -> anyhow::Result<Outcome> {
        println!("== createLeads bulk: {total} leads in calls of {batch}, one call at a time");
        let mut rng = StdRng::seed_from_u64(99);
        let mut bodies = Vec::new();
        let mut left = total;
        while left > 0 {
            let n = left.min(batch);
            let inputs: Vec<Value> = (0..n).map(|_| self.new_lead(&mut rng)).collect();
            bodies.push((
                n,
                serde_json::to_vec(&json!({"query": BULK_Q, "variables": {"i": inputs}}))?,
            ));
            left -= n;
        }
        let largest = bodies.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let mut latencies = Vec::new();
        for (n, body) in bodies {
            let t0 = Instant::now();
            let bytes = self.send(body).await?;
            latencies.push(t0.elapsed().as_nanos() as u64);
            let v: Value = serde_json::from_slice(&bytes)?;
            let created = v["data"]["createLeads"]["created"].as_u64();
            if created != Some(n as u64) || v.get("errors").is_some() {
                bail!("createLeads of {n} did not create them all: {v}");
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let cpu1 = thread_cpu();
        latencies.sort_unstable();
        let (server_cores, load_cores) = cores(&cpu0, &cpu1, seconds);
        let out = Outcome {
            name: "createLeads bulk".into(),
            concurrency: 1,
            requests: latencies.len() as u64,
            errors: 0,
            seconds,
            latencies,
            server_cores,
            load_cores,
            rss_mib: rss_mib("VmRSS:"),
            leads: total as u64,
        };
        println!(
            "{} leads in {:.2} s ({:.0} leads/s); {} calls (largest body {:.1} MiB), per call p50 {:.0} ms, max {:.0} ms\n\
             cpu cores used: server {:.2}  load generator {:.2}\nrss {:.0} MiB (peak {:.0} MiB)\n",
            total,
            seconds,
            total as f64 / seconds,
            out.requests,
            largest as f64 / 1048576.0,
            out.ms(0.5),
            out.ms(1.0),
            out.server_cores,
            out.load_cores,
            out.rss_mib,
            rss_mib("VmHWM:"),
        );
        Ok(out)
    }
}

/// What a fully checked response must hold.
enum Check {
    Lead(String),
    Status(String),
    Search,
    Created,
}

impl Check {
    fn verify(&self, data: &Value) -> anyhow::Result<()> {
        match self {
            Check::Lead(id) => ensure!(data["lead"]["id"] == json!(id), "lead {id} not returned"),
            Check::Status(s) => {
                let nodes = data["leads"]["nodes"].as_array().context("no nodes")?;
                ensure!(!nodes.is_empty(), "no lead with status {s}");
                ensure!(
                    nodes.iter().all(|n| n["status"] == json!(s)),
                    "a lead of another status"
                );
                let times: Vec<&str> = nodes
                    .iter()
                    .filter_map(|n| n["updatedAt"].as_str())
                    .collect();
                ensure!(
                    times.windows(2).all(|w| w[0] >= w[1]),
                    "not ordered by updatedAt desc"
                );
            }
            Check::Search => {
                let hits = data["searchLeads"].as_array().context("no list")?;
                ensure!(!hits.is_empty(), "no hit for a common name");
            }
            Check::Created => {
                ensure!(data["createLead"]["created"] == json!(true), "not created");
                ensure!(data["createLead"]["lead"]["id"].is_string(), "no id");
            }
        }
        Ok(())
    }
}

fn scenario_name(s: Scenario) -> &'static str {
    match s {
        Scenario::Lead => "lead(id)",
        Scenario::Status => "leads(status, first 50)",
        Scenario::Search => "searchLeads(first 20)",
        Scenario::Create => "createLead",
        Scenario::Create1 => "createLead, 1 client",
        Scenario::Bulk => "createLeads bulk",
    }
}

/// Search terms as agents type them: first names, last names, company stems and 3-letter prefixes.
fn search_words() -> Vec<String> {
    let mut words = Vec::new();
    for w in FIRST_NAMES.iter().chain(LAST_NAMES).chain(COMPANY_STEMS) {
        words.push((*w).to_string());
        let prefix: String = w.chars().take(3).collect::<String>().to_lowercase();
        if prefix.chars().count() == 3 {
            words.push(prefix);
        }
    }
    words
}

fn print_header(args: &Args) {
    println!(
        "leadcache HTTP benchmark: {} leads, {} client(s), {} s per scenario after {} s warm-up, \
         load generator on {} thread(s), {} cores",
        args.leads,
        args.concurrency,
        args.seconds,
        args.warmup,
        args.client_threads,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
