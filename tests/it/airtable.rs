//! Airtable client and simulator tests. Everything talks to simulators started on 127.0.0.1.
// Tests may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod client;
mod compat;
mod errors;
mod fields;
mod pacing;
mod sim;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use leadcache::airtable::sim::{self as airsim, SimConfig, SimHandle};
use leadcache::airtable::{ClientOptions, HttpClient};
use leadcache::config::{AirtableConfig, ApiKeySource, Secret};

/// A base id no other test uses (pacers are shared per base within the process).
pub fn unique_base() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("appTest{:010}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A simulator with no rate limit (tests that are not about pacing).
pub fn unlimited() -> SimConfig {
    SimConfig {
        rate_limit: None,
        ..SimConfig::default()
    }
}

pub async fn start_sim(mut cfg: SimConfig) -> SimHandle {
    if cfg.base_id.is_none() {
        cfg.base_id = Some(unique_base());
    }
    airsim::start(cfg).await.unwrap()
}

/// Production options with pauses shortened for tests.
pub fn fast_opts() -> ClientOptions {
    ClientOptions {
        rate_limit_pause: Duration::from_millis(300),
        rate_limit_jitter: Duration::ZERO,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        max_attempts: 4,
        request_timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    }
}

pub fn airtable_config(sim: &SimHandle, rate: u32) -> AirtableConfig {
    let key = sim
        .state
        .config()
        .api_key
        .clone()
        .unwrap_or_else(|| "patTestToken.secret".into());
    AirtableConfig {
        api_key: Some(ApiKeySource::Value(Secret::new(key))),
        base_id: sim.base_id(),
        table: sim.table().to_string(),
        api_url: sim.url(),
        field_map: None,
        modified_field: "Last Modified".into(),
        lead_id_field: "Lead ID".into(),
        rate_limit: rate,
    }
}

/// A client that is not paced in practice (1000 req/s) with fast retries.
pub fn fast_client(sim: &SimHandle) -> HttpClient {
    HttpClient::from_config(&airtable_config(sim, 1000), fast_opts()).unwrap()
}

/// The simulator's log entries of API requests (not control calls), in arrival order.
pub fn api_log(sim: &SimHandle) -> Vec<airsim::LogEntry> {
    let mut log: Vec<_> = sim
        .state
        .log()
        .into_iter()
        .filter(|e| e.kind.is_some())
        .collect();
    log.sort_by_key(|e| e.t_us);
    log
}

/// A plain reqwest client (the crypto provider installed first).
pub fn raw_http() -> reqwest::Client {
    leadcache::airtable::install_crypto_provider();
    reqwest::Client::new()
}
