//! Hostile-load benchmark (issue 15, "Done when"): does a handful of callers sending the most
//! costly requests they can slow everybody else down? The real server, started in-process on
//! 127.0.0.1 over a temp database seeded with 100,000 leads and syncing with the in-process
//! Airtable simulator, is driven over HTTP in two phases of the same length:
//!
//! 1. **baseline**: 16 victim clients send `lead(id)` of random seeded leads, back to back;
//! 2. **attacked**: the same 16 victims, while 4 attacker clients loop over the costly requests of
//!    issue 15 items 6-8 ([`Attack`]).
//!
//! The targets: the victims' p99 attacked stays within 3x of their p99 at baseline, and the
//! process's peak RSS stays under 300 MB. Figures and how to read them: BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench hostile                          # 100,000 leads, 10 s a phase
//! cargo bench --bench hostile -- --leads 10000 --seconds 5
//! ```
//!
//! Decisions a reader may ask about:
//! - **Three runtimes, one process.** The server on its own multi-thread runtime (one worker per
//!   core, as `leadcache serve`), the victims on a second (`lc-load`, one worker), the attackers on
//!   a third (`lc-attack`, one worker), so decoding an attacker's 1 MB answer never delays the
//!   clock of a victim's request. The CPU each used comes from `/proc/self/task/*/schedstat`
//!   (`benches/http/procfs.rs`); the attackers' share is printed as "other" (it also holds the
//!   RSS sampler and the main thread, which mostly sleep).
//! - **What the attackers are.** Separate tokens and connections: the victims and attacker 1's
//!   read requests use two different read tokens, the `sql` requests an admin token. Each attacker
//!   starts at a different request of the cycle, so the costly ones overlap the way a real loop
//!   would. Every answer is classified: `LIMIT` (every error has `extensions.code` `LIMIT`; data may
//!   be partial, as for the read-throughs over the per-operation budget), `ok` (data and no error),
//!   or `other` (anything else, with a sample printed).
//! - **The end of the attacked phase.** Attackers send nothing new once the victims' time is up;
//!   the requests still in flight get `--grace` seconds to finish (default 15 s, above
//!   `GRAPHQL_TIMEOUT_MS` and the `sql` limit of 5 s), and are counted as "unfinished" after that.
//! - **RSS** is sampled every 100 ms from `/proc/self/status` by a thread of its own, over the
//!   whole run (seeding included): `VmRSS`, `RssAnon`, `RssFile`, and `Pss` every second
//!   (`hostile/peaks.rs` says why all four); whole process: server, clients and the benchmark's
//!   latency vectors. Peaks are printed per phase and for the run; the target is checked on the
//!   run's peak `VmRSS`, against 300 MB = 286.1 MiB.
//! - **Without `--bench`** (`cargo test --all-targets` runs bench binaries that way) it is a smoke
//!   pass: 1,000 leads, 1 s a phase, a 0.5 s grace. It fails only on errors (a request that does
//!   not parse, a victim query that returns the wrong lead), never on the targets.

#[path = "hostile/attacks.rs"]
mod attacks;
#[path = "hostile/peaks.rs"]
mod peaks;
#[path = "http/procfs.rs"]
mod procfs;
#[path = "http/report.rs"]
mod report;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use diesel::prelude::*;
use leadcache::airtable::sim::{self, SimConfig};
use leadcache::app::{Running, open_database, start};
use leadcache::auth::Role;
use leadcache::config::{AirtableConfig, ApiKeySource, Config, Secret};
use leadcache::db::schema::leads;
use leadcache::state::{AppState, Mode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::attacks::{ATTACKS, Attack, Ending, Sent, classify, print_attacks};
use crate::peaks::{Peak, Peaks};
use crate::procfs::{cores, rss_mib, thread_cpu};
use crate::report::{Outcome, print_summary};

/// The allocator of the `leadcache` binary (src/main.rs), so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Most a victim's p99 under attack may be, as a multiple of its p99 at baseline.
const MAX_P99_RATIO: f64 = 3.0;
/// Most the process's RSS may reach, in bytes (300 MB).
const MAX_RSS_BYTES: f64 = 300e6;
/// The simulator's API key and base (as the sync tests use them).
const SIM_KEY: &str = "patBenchKey.secret";
const SIM_BASE: &str = "appBenchBase00001";

#[derive(Parser, Debug)]
#[command(
    name = "hostile",
    about = "Hostile-load benchmark of leadcache: lead(id) latency while attackers send costly requests (see BENCHMARKS.md)"
)]
struct Args {
    /// Leads seeded before the run.
    #[arg(long, default_value_t = 100_000)]
    leads: usize,
    /// Measured seconds of each phase (baseline, attacked).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds of the victims before the baseline (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Victim clients sending `lead(id)`.
    #[arg(long, default_value_t = 16)]
    victims: usize,
    /// Attacker clients looping over the costly requests.
    #[arg(long, default_value_t = 4)]
    attackers: usize,
    /// Seconds the attackers' requests still in flight at the end may take to finish.
    #[arg(long, default_value_t = 15.0)]
    grace: f64,
    /// Seed of the generated leads and of the request mix.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Attack with these only (comma-separated), to see which one costs the victims; default
    /// all, in the order listed.
    #[arg(long, value_delimiter = ',')]
    attacks: Vec<Attack>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// A name filter `cargo bench NAME` may pass; ignored.
    #[arg(hide = true)]
    filter: Option<String>,
}

const LEAD_Q: &str =
    "query($id: ID!) { lead(id: $id) { id fullName email company status updatedAt version } }";

/// What the clients need to build and send requests.
#[derive(Clone)]
struct Bench {
    /// The victims' connections.
    victims: reqwest::Client,
    /// The attackers' connections (a pool of their own).
    attackers: reqwest::Client,
    url: String,
    ids: Arc<Vec<String>>,
    /// The attackers' cycle.
    attacks: Arc<Vec<Attack>>,
    victim_token: String,
    attacker_token: String,
    admin_token: String,
}

/// The top-level shape of a victim's response, read without building it.
#[derive(Deserialize)]
struct Envelope {
    data: Option<IgnoredAny>,
    errors: Option<IgnoredAny>,
}

impl Bench {
    fn lead_body(&self, rng: &mut StdRng) -> (String, Vec<u8>) {
        let id = self.ids[rng.random_range(0..self.ids.len())].clone();
        let body = serde_json::to_vec(&json!({"query": LEAD_Q, "variables": {"id": id}}))
            .unwrap_or_default();
        (id, body)
    }

    async fn send_victim(&self, body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let resp = self
            .victims
            .post(&self.url)
            .bearer_auth(&self.victim_token)
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

    /// Sends one attack and classifies the answer.
    async fn send_attack(
        &self,
        attack: Attack,
        rng: &mut StdRng,
    ) -> anyhow::Result<(Ending, Option<String>)> {
        let token = if attack.admin() {
            &self.admin_token
        } else {
            &self.attacker_token
        };
        let resp = self
            .attackers
            .post(&self.url)
            .bearer_auth(token)
            .json(&attack.body(rng))
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        Ok(classify(status, &bytes))
    }

    /// Checks one victim response in full, and that every attack except the 5 s runaway is
    /// answered as expected, before anything is timed: a malformed query would make a toothless
    /// attack and fast numbers.
    async fn sanity(&self) -> anyhow::Result<()> {
        let mut rng = StdRng::seed_from_u64(7);
        let (id, body) = self.lead_body(&mut rng);
        let v: Value = serde_json::from_slice(&self.send_victim(body).await?)?;
        ensure!(
            v.get("errors").is_none() && v["data"]["lead"]["id"] == json!(id),
            "lead(id) did not return lead {id}: {v}"
        );
        for &attack in self.attacks.iter() {
            if attack == Attack::Runaway {
                continue;
            }
            let t0 = Instant::now();
            let (ending, note) = self.send_attack(attack, &mut rng).await?;
            ensure!(
                ending == attack.expected(),
                "{}: expected {:?}, got {ending:?} ({})",
                attack.name(),
                attack.expected(),
                note.unwrap_or_default()
            );
            println!(
                "checked: {} -> {ending:?} in {:.0} ms",
                attack.name(),
                t0.elapsed().as_secs_f64() * 1e3
            );
        }
        Ok(())
    }

    /// `n` victims send `lead(id)` back to back for `dur`. Returns every request's duration (ns),
    /// the error count and the wall time until the last victim stopped.
    async fn victims_drive(
        &self,
        n: usize,
        dur: Duration,
        seed: u64,
    ) -> anyhow::Result<(Vec<u64>, u64, f64)> {
        let start = Instant::now();
        let deadline = start + dur;
        let mut tasks = tokio::task::JoinSet::new();
        for client in 0..n {
            let bench = self.clone();
            tasks.spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(client as u64));
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let (_, body) = bench.lead_body(&mut rng);
                    let t0 = Instant::now();
                    let reply = bench.send_victim(body).await;
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
}

/// Attacker `index` of `of` loops over the attacks, starting at its own place in the cycle, until
/// `stop`; a request still running at `stop + grace` is dropped and counted as unfinished.
async fn attacker(
    bench: Bench,
    index: usize,
    of: usize,
    stop: Instant,
    grace: Duration,
    seed: u64,
) -> Vec<Sent> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xA77A_C4E5 ^ index as u64);
    let mut sent = Vec::new();
    let cycle = bench.attacks.clone();
    let mut next = index * cycle.len() / of.max(1);
    while Instant::now() < stop && !cycle.is_empty() {
        let attack = cycle[next % cycle.len()];
        next += 1;
        let t0 = Instant::now();
        let answer =
            tokio::time::timeout_at((stop + grace).into(), bench.send_attack(attack, &mut rng))
                .await;
        let (ending, note) = match answer {
            Ok(Ok(classified)) => classified,
            Ok(Err(e)) => (Ending::Other, Some(format!("request failed: {e}"))),
            Err(_) => (Ending::Unfinished, None),
        };
        sent.push(Sent {
            attack,
            ending,
            nanos: t0.elapsed().as_nanos() as u64,
            note,
        });
    }
    sent
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    // `cargo test --all-targets` runs this binary without `--bench`: a small smoke pass proves the
    // victims' query and the attacks still work, without the minutes a real run takes.
    if !args.bench {
        args.leads = args.leads.min(1_000);
        args.seconds = args.seconds.min(1);
        args.warmup = 0;
        args.grace = args.grace.min(0.5);
        eprintln!(
            "smoke run (no --bench): {} leads, 1 s per phase; use `cargo bench --bench hostile` for figures",
            args.leads
        );
    }
    ensure!(args.victims > 0, "--victims must be at least 1");
    ensure!(args.leads > 0, "--leads must be at least 1");
    ensure!(
        args.grace.is_finite() && args.grace >= 0.0,
        "--grace must be a number of seconds"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let load_before = loadavg();
    let peaks = Peaks::start()?;

    // The server's runtime: what `#[tokio::main]` builds (one worker per core). Idle blocking
    // threads are kept, so their CPU time stays countable between two readings.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lc-server")
        .thread_keep_alive(Duration::from_secs(3600))
        .build()?;
    let victim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("lc-load")
        .build()?;
    let attack_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("lc-attack")
        .build()?;

    // The Airtable the server reads through to: the simulator with an empty table, so every
    // `rec…` id is unknown (item 8). Background sync is never started.
    let simulator = server_rt.block_on(sim::start(SimConfig {
        records: 0,
        api_key: Some(SIM_KEY.into()),
        base_id: Some(SIM_BASE.into()),
        ..Default::default()
    }))?;

    let dir = tempfile::tempdir()?;
    let mut config = Config::for_database(dir.path().join("leads.db"));
    config.backup_dir = dir.path().join("backups");
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.airtable = Some(AirtableConfig {
        api_key: Some(ApiKeySource::Value(Secret::new(SIM_KEY))),
        base_id: SIM_BASE.into(),
        table: "Leads".into(),
        api_url: simulator.url(),
        field_map: None,
        modified_field: "Last Modified".into(),
        lead_id_field: "Lead ID".into(),
        rate_limit: 5,
    });
    let db = open_database(&config)?;

    println!(
        "leadcache hostile-load benchmark: {} leads, {} victims of lead(id), {} attackers, {} s per \
         phase after {} s warm-up, {} cores; load average {load_before}",
        args.leads,
        args.victims,
        args.attackers,
        args.seconds,
        args.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let t = Instant::now();
    let (ids, tokens) = {
        let mut conn = db.conn()?;
        leadcache::seed::seed(&mut conn, args.leads, args.seed, false)?;
        let ids = leads::table.select(leads::id).load::<String>(&mut *conn)?;
        let mut token = |name: &str, role: Role| {
            leadcache::tokens::create(&mut conn, name, role)
                .map(|(secret, _)| secret)
                .with_context(|| format!("creating token {name}"))
        };
        let tokens = [
            token("bench-victim", Role::Read)?,
            token("bench-attacker", Role::Read)?,
            token("bench-admin", Role::Admin)?,
        ];
        (ids, tokens)
    };
    ensure!(
        ids.len() >= args.leads,
        "seeded {} leads, expected {}",
        ids.len(),
        args.leads
    );
    let seeding = peaks.take();
    println!(
        "seeded {} leads in {:.1} s; peak while seeding: VmRSS {:.0} MiB, RssAnon {:.0} MiB",
        ids.len(),
        t.elapsed().as_secs_f64(),
        seeding.vm_rss,
        seeding.rss_anon
    );

    let state = AppState::with_sync(
        config.clone(),
        db,
        Mode::Airtable,
        leadcache::sync::SyncOptions::default(),
    )?;
    let running: Running = server_rt.block_on(start(state, config.bind))?;
    println!(
        "server on {} with Airtable at {} (rss {:.0} MiB)\n",
        running.url(),
        simulator.url(),
        rss_mib("VmRSS:")
    );

    let [victim_token, attacker_token, admin_token] = tokens;
    let client = |idle: usize| {
        reqwest::Client::builder()
            .no_gzip()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(idle)
            .timeout(Duration::from_secs(60))
            .build()
    };
    let bench = Bench {
        victims: client(args.victims.max(16))?,
        attackers: client(args.attackers.max(4))?,
        url: format!("{}/graphql", running.url()),
        ids: Arc::new(ids),
        attacks: Arc::new(if args.attacks.is_empty() {
            ATTACKS.to_vec()
        } else {
            ATTACKS
                .into_iter()
                .filter(|a| args.attacks.contains(a))
                .collect()
        }),
        victim_token,
        attacker_token,
        admin_token,
    };

    let outcome = run_phases(&bench, &args, &peaks, &victim_rt, &attack_rt);
    let cycle = bench.attacks.to_vec();
    drop(bench);
    // An attack cut at the end of the grace may leave a `sql` statement running on the blocking
    // pool for up to 5 s: do not wait for it.
    let _ = server_rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(2), running.stop()).await });
    drop(simulator);
    server_rt.shutdown_background();
    let (victims, attacks) = outcome?;
    let run_peak = peaks.take();
    let overall = seeding
        .max(run_peak)
        .max(victims.peak_baseline)
        .max(victims.peak_attacked);
    drop(peaks);
    let load_after = loadavg();

    print_attacks(&attacks, &cycle);
    let peak_baseline = victims.peak_baseline;
    let peak_attacked = victims.peak_attacked;
    let (baseline, attacked) = (victims.baseline, victims.attacked);
    let base_p99 = baseline.ms(0.99);
    let attacked_p99 = attacked.ms(0.99);
    print_summary(&[baseline, attacked]);
    let ratio = attacked_p99 / base_p99;
    let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
    let rss_ok = overall.vm_rss * 1048576.0 < MAX_RSS_BYTES;
    let ratio_ok = ratio <= MAX_P99_RATIO;
    println!(
        "| victims' p99 attacked / baseline <= {MAX_P99_RATIO} | {ratio:.2} ({attacked_p99:.3} ms / {base_p99:.3} ms) | {} |",
        verdict(ratio_ok)
    );
    println!(
        "| peak RSS (VmRSS) < 300 MB (286.1 MiB) | {:.1} MiB (RssAnon {:.1}, RssFile {:.1}, Pss {:.1} MiB) | {} |",
        overall.vm_rss,
        overall.rss_anon,
        overall.rss_file,
        overall.pss,
        verdict(rss_ok)
    );
    println!(
        "\npeak memory by phase, MiB:\n\n| phase | VmRSS | RssAnon | RssFile | Pss |\n|---|---:|---:|---:|---:|"
    );
    for (name, p) in [
        ("seeding", seeding),
        ("baseline", peak_baseline),
        ("attacked", peak_attacked),
        ("whole run", overall),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            p.vm_rss, p.rss_anon, p.rss_file, p.pss
        );
    }
    println!("\nkernel VmHWM {:.1} MiB", rss_mib("VmHWM:"));
    println!("load average before {load_before}, after {load_after}\n");
    let line = |ok: bool, what: String| {
        println!("{} {what}", if ok { "PASS" } else { "FAIL" });
    };
    line(
        ratio_ok,
        format!(
            "victims' p99 ratio {ratio:.2} <= {MAX_P99_RATIO} (attacked {attacked_p99:.3} ms, baseline {base_p99:.3} ms)"
        ),
    );
    line(
        rss_ok,
        format!(
            "peak RSS {:.1} MB < 300 MB (VmRSS {:.1} MiB; RssAnon {:.1} MiB, Pss {:.1} MiB)",
            overall.vm_rss * 1048576.0 / 1e6,
            overall.vm_rss,
            overall.rss_anon,
            overall.pss
        ),
    );
    if !args.bench {
        println!("(smoke run: the targets are printed, not enforced)");
    }
    Ok(())
}

/// The victims' two phases (`rss_mib`: the phase's peak VmRSS) and the memory peaks during them.
struct Victims {
    baseline: Outcome,
    attacked: Outcome,
    peak_baseline: Peak,
    peak_attacked: Peak,
}

/// Runs the sanity checks, the baseline and the attacked phase.
fn run_phases(
    bench: &Bench,
    args: &Args,
    peaks: &Peaks,
    victim_rt: &tokio::runtime::Runtime,
    attack_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<(Victims, Vec<Sent>)> {
    victim_rt.block_on(bench.sanity())?;
    let dur = Duration::from_secs(args.seconds);
    if args.warmup > 0 {
        victim_rt.block_on(bench.victims_drive(
            args.victims,
            Duration::from_secs(args.warmup),
            args.seed ^ 0xFFFF,
        ))?;
    }

    println!(
        "\n== baseline: {} victims of lead(id), {} s",
        args.victims, args.seconds
    );
    let _ = peaks.take();
    let cpu0 = thread_cpu();
    let (mut latencies, errors, seconds) =
        victim_rt.block_on(bench.victims_drive(args.victims, dur, args.seed))?;
    let cpu1 = thread_cpu();
    latencies.sort_unstable();
    let peak_baseline = peaks.take();
    let baseline = outcome(
        "lead(id), baseline",
        args.victims,
        (latencies, errors, seconds),
        cores(&cpu0, &cpu1, seconds),
        peak_baseline,
    );
    print_phase(&baseline, other_cores(&cpu0, &cpu1, seconds), peak_baseline);

    println!(
        "== attacked: {} victims of lead(id), {} s, while {} attackers loop over {} costly requests",
        args.victims,
        args.seconds,
        args.attackers,
        bench.attacks.len()
    );
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let stop = start + dur;
    let grace = Duration::from_secs_f64(args.grace);
    let attackers: Vec<_> = (0..args.attackers)
        .map(|i| {
            attack_rt.spawn(attacker(
                bench.clone(),
                i,
                args.attackers,
                stop,
                grace,
                args.seed,
            ))
        })
        .collect();
    let (mut latencies, errors, seconds) =
        victim_rt.block_on(bench.victims_drive(args.victims, dur, args.seed ^ 0xA7))?;
    let cpu1 = thread_cpu();
    let mut sent = Vec::new();
    for a in attackers {
        sent.extend(attack_rt.block_on(a)?);
    }
    let tail = start.elapsed().as_secs_f64() - seconds;
    latencies.sort_unstable();
    let peak_attacked = peaks.take();
    let attacked = outcome(
        "lead(id), attacked",
        args.victims,
        (latencies, errors, seconds),
        cores(&cpu0, &cpu1, seconds),
        peak_attacked,
    );
    print_phase(&attacked, other_cores(&cpu0, &cpu1, seconds), peak_attacked);
    println!(
        "attackers: {} requests; the last ones finished {tail:.1} s after the victims stopped\n",
        sent.len()
    );
    Ok((
        Victims {
            baseline,
            attacked,
            peak_baseline,
            peak_attacked,
        },
        sent,
    ))
}

/// A victims' phase as the HTTP benchmark's [`Outcome`] (`rss_mib`: the phase's peak VmRSS).
fn outcome(
    name: &str,
    clients: usize,
    (latencies, errors, seconds): (Vec<u64>, u64, f64),
    (server_cores, load_cores): (f64, f64),
    peak: Peak,
) -> Outcome {
    Outcome {
        name: name.to_string(),
        concurrency: clients,
        requests: latencies.len() as u64,
        errors,
        seconds,
        latencies,
        server_cores,
        load_cores,
        rss_mib: peak.vm_rss,
        leads: 0,
    }
}

/// Cores used by the threads that are neither the server's nor the victims' (the attackers, the
/// RSS sampler, the main thread).
fn other_cores(
    a: &std::collections::HashMap<&str, u64>,
    b: &std::collections::HashMap<&str, u64>,
    seconds: f64,
) -> f64 {
    let ns = b
        .get("other")
        .copied()
        .unwrap_or(0)
        .saturating_sub(a.get("other").copied().unwrap_or(0));
    ns as f64 / 1e9 / seconds
}

fn print_phase(p: &Outcome, other: f64, peak: Peak) {
    println!(
        "requests {}  errors {}  req/s {:.0}\nlatency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}\n\
         cpu cores used: server {:.2}  victims {:.2}  other (attackers, sampler) {other:.2}\n\
         peak memory MiB: VmRSS {:.0}  RssAnon {:.0}  RssFile {:.0}  Pss {:.0}\n",
        p.requests,
        p.errors,
        p.rate(),
        p.ms(0.5),
        p.ms(0.9),
        p.ms(0.99),
        p.ms(1.0),
        p.server_cores,
        p.load_cores,
        peak.vm_rss,
        peak.rss_anon,
        peak.rss_file,
        peak.pss,
    );
}

/// `/proc/loadavg`'s three averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
