//! The reqwest implementation of [`AirtableApi`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use tracing::warn;
use url::Url;

use super::error::UnprocessableKind;
use super::pacing::{self, BasePacer};
use super::params::{list_body, list_query};
use super::stats::{Outcome, RequestKind, RequestStats, StatsSnapshot};
use super::{
    AirtableApi, AirtableError, Fields, ListPage, ListParams, MAX_BATCH, PlannedRequest, Record,
    RecordUpdate, UpsertResult, Write,
};
use crate::config::{AirtableConfig, ApiKeySource, Secret};
use prepared::{Prepared, check_merge_on};

mod prepared;

/// Installs rustls' ring crypto provider (reqwest is built without one). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Tunables of the client. The defaults are production values; tests shorten the pauses.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Added to each 1-second rate window, for clocks only (timer granularity, a server clock
    /// that runs slightly fast); network jitter needs no margin (see `pacing.rs`).
    pub pacing_margin: Duration,
    /// Pause of the whole base after a 429 (Airtable locks a base out for 30 s).
    pub rate_limit_pause: Duration,
    /// Up to this much is added at random to `rate_limit_pause`.
    pub rate_limit_jitter: Duration,
    /// First backoff ceiling after a 5xx/timeout/connection error; doubles each attempt.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Attempts per call, the first included. 429s do not count (see `max_rate_limit_waits`).
    /// Once a base has failed this many times in a row (an outage, not a blip), a call sends
    /// only the base's next probe and returns its error (see `pacing.rs`).
    pub max_attempts: u32,
    /// 429 lockouts one call waits out before giving up (they spend no attempt).
    pub max_rate_limit_waits: u32,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// A GET list URL longer than this goes as `POST …/listRecords` instead.
    pub max_url_len: usize,
    /// Sent with writes: lets Airtable add missing select options (e.g. a new status).
    pub typecast: bool,
    /// How many times a list pass may start over after an expired offset before giving up.
    pub max_pass_restarts: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            pacing_margin: Duration::from_millis(10),
            rate_limit_pause: Duration::from_secs(30),
            rate_limit_jitter: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_attempts: 5,
            max_rate_limit_waits: 20,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_url_len: 16_000,
            typecast: true,
            max_pass_restarts: 5,
        }
    }
}

/// Which failures a call may send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryPolicy {
    /// Every retryable failure (reads, updates, upserts, deletes: repeating them is harmless).
    All,
    /// Only when the request surely had no effect: 429 and failed connects (plain creates).
    NotApplied,
}

/// The reqwest client. Clones share the connection pool, token, counters and pacer.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_url: String,
    table_url: Url,
    token_file: Option<PathBuf>,
    token: RwLock<Option<Secret>>,
    lead_id_field: String,
    /// False once the table turned out to have no Lead ID field.
    upsert_creates: AtomicBool,
    pacer: Arc<BasePacer>,
    stats: Arc<RequestStats>,
    opts: ClientOptions,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("table_url", &self.inner.table_url.as_str())
            .finish()
    }
}

impl HttpClient {
    /// A client for the configured base and table. A token file is read now (and again by
    /// [`AirtableApi::reload_token`]); an unreadable file is an error.
    pub fn from_config(cfg: &AirtableConfig, opts: ClientOptions) -> Result<Self, AirtableError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("leadcache/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .gzip(true)
            .build()
            .map_err(|e| AirtableError::InvalidRequest(format!("cannot build HTTP client: {e}")))?;
        let mut table_url = Url::parse(&cfg.api_url).map_err(|e| {
            AirtableError::InvalidRequest(format!(
                "AIRTABLE_API_URL {}: {e}",
                crate::error::quote(&cfg.api_url)
            ))
        })?;
        table_url
            .path_segments_mut()
            .map_err(|()| {
                AirtableError::InvalidRequest("AIRTABLE_API_URL cannot be a base".into())
            })?
            .pop_if_empty()
            .extend(["v0", cfg.base_id.as_str(), cfg.table.as_str()]);
        let (token, token_file) = match &cfg.api_key {
            Some(ApiKeySource::Value(s)) => (Some(s.clone()), None),
            Some(ApiKeySource::File(p)) => (Some(read_token_file(p)?), Some(p.clone())),
            None => (None, None),
        };
        let pacer = pacing::pacer_for(
            &cfg.api_url,
            &cfg.base_id,
            cfg.rate_limit,
            opts.pacing_margin,
        );
        Ok(HttpClient {
            inner: Arc::new(Inner {
                http,
                api_url: cfg.api_url.clone(),
                table_url,
                token_file,
                token: RwLock::new(token),
                lead_id_field: cfg.lead_id_field.clone(),
                upsert_creates: AtomicBool::new(true),
                pacer,
                stats: Arc::new(RequestStats::default()),
                opts,
            }),
        })
    }

    /// The shared counters (for a sync run that wants the live object rather than snapshots).
    pub fn request_stats(&self) -> Arc<RequestStats> {
        self.inner.stats.clone()
    }

    /// The pacing state of this client's base (shared with every client of the base).
    pub fn pacer(&self) -> Arc<BasePacer> {
        self.inner.pacer.clone()
    }

    /// The base URL this client talks to.
    pub fn api_url(&self) -> &str {
        &self.inner.api_url
    }

    /// Whether creates are still sent as upserts on the Lead ID field.
    pub fn creates_are_upserts(&self) -> bool {
        self.inner.upsert_creates.load(Ordering::Relaxed)
    }

    fn token(&self) -> Result<Secret, AirtableError> {
        self.inner
            .token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| AirtableError::Token("no AIRTABLE_API_KEY configured".into()))
    }

    fn url_with(&self, extra: &[&str]) -> Url {
        let mut url = self.inner.table_url.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.extend(extra);
        }
        url
    }

    /// Sends one call, pacing every attempt and retrying as the policy allows. Returns the JSON body.
    ///
    /// Outages are the base's, not the call's (`pacing.rs`): while the base is failing, a new
    /// call is refused at once with [`AirtableError::BackingOff`] (no request), a call already
    /// retrying waits for the base's next probe, and only one probe is in flight. A 429 pauses
    /// the base and is waited out without spending an attempt.
    async fn send(
        &self,
        kind: RequestKind,
        single_record: bool,
        policy: RetryPolicy,
        build: impl Fn(&reqwest::Client) -> RequestBuilder + Send + Sync,
    ) -> Result<Value, AirtableError> {
        let opts = &self.inner.opts;
        let pacer = &self.inner.pacer;
        let mut attempt: u32 = 1;
        let mut rate_waits: u32 = 0;
        loop {
            let _probe = loop {
                match pacer.gate() {
                    pacing::Gate::Open => break None,
                    pacing::Gate::Probe(token) => break Some(token),
                    pacing::Gate::Down { until } if attempt == 1 && rate_waits == 0 => {
                        let retry_in = until
                            .map(|t| t.saturating_duration_since(tokio::time::Instant::now()))
                            .unwrap_or_default();
                        return Err(AirtableError::BackingOff { retry_in });
                    }
                    // Another caller's probes failed meanwhile: an outage, stop here.
                    pacing::Gate::Down { until } if pacer.failures() >= opts.max_attempts => {
                        let retry_in = until
                            .map(|t| t.saturating_duration_since(tokio::time::Instant::now()))
                            .unwrap_or_default();
                        return Err(AirtableError::BackingOff { retry_in });
                    }
                    // This call is retrying: wait for the base's next probe.
                    pacing::Gate::Down { until } => pacer.wait_for_probe(until).await,
                }
            };
            let permit = pacer.acquire().await;
            let token = self.token()?;
            let sent = build(&self.inner.http)
                .bearer_auth(token.expose())
                .send()
                .await;
            // Airtable has seen the request (or never will): its rate slot's window starts now.
            drop(permit);
            let err = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match resp.text().await {
                        Ok(body) if status.is_success() => {
                            self.report(true, None);
                            self.inner.stats.record(kind, Outcome::Ok);
                            return serde_json::from_str(&body)
                                .map_err(|e| AirtableError::Decode(e.to_string()));
                        }
                        Ok(body) => AirtableError::from_response(
                            status.as_u16(),
                            &body,
                            retry_after,
                            single_record,
                        ),
                        Err(e) => AirtableError::from_reqwest(&e),
                    }
                }
                Err(e) => AirtableError::from_reqwest(&e),
            };
            let failures = match &err {
                AirtableError::Server { retry_after, .. } => self.report(false, *retry_after),
                e if e.is_outage() => self.report(false, None),
                _ => self.report(true, None),
            };
            self.inner.stats.record(kind, outcome_of(&err));
            let allowed = match policy {
                RetryPolicy::All => err.is_retryable(),
                RetryPolicy::NotApplied => matches!(
                    err,
                    AirtableError::RateLimited { .. }
                        | AirtableError::Connection { not_sent: true, .. }
                ),
            };
            if !allowed {
                return Err(err);
            }
            if let AirtableError::RateLimited { retry_after, .. } = &err {
                // Airtable locks the base out for 30 s: every caller of the base waits it out
                // (paused even when this call gives up, so a read-through that cannot wait
                // knows), and this call retries after it, spending no attempt.
                // Airtable sends no Retry-After on 429 today; honour one if it ever does.
                let pause = pacing::with_jitter(opts.rate_limit_pause, opts.rate_limit_jitter)
                    .max(retry_after.unwrap_or_default());
                pacer.pause(pause);
                rate_waits += 1;
                if rate_waits > opts.max_rate_limit_waits {
                    return Err(err);
                }
                warn!(
                    kind = kind.as_str(),
                    rate_waits,
                    pause_ms = pause.as_millis() as u64,
                    "Airtable rate limit reached; waiting out the lockout"
                );
                self.inner.stats.record_retry(kind);
                continue;
            }
            // An outage (not a blip) sends one probe per call: the run, not the call, retries.
            if attempt >= opts.max_attempts || failures >= opts.max_attempts {
                return Err(err);
            }
            let wait = pacer.backing_off().unwrap_or_default();
            warn!(kind = kind.as_str(), attempt, wait_ms = wait.as_millis() as u64, error = %err, "Airtable request failed; retrying");
            self.inner.stats.record_retry(kind);
            attempt += 1;
        }
    }

    /// Tells the base's pacer how a request ended (see `pacing.rs`); returns its failures.
    fn report(&self, reachable: bool, retry_after: Option<Duration>) -> u32 {
        let opts = &self.inner.opts;
        self.inner.pacer.report(
            reachable,
            retry_after,
            opts.backoff_initial,
            opts.backoff_max,
        )
    }

    fn check_batch(n: usize) -> Result<(), AirtableError> {
        if n > MAX_BATCH {
            return Err(AirtableError::InvalidRequest(format!(
                "{n} records in one request; Airtable takes at most {MAX_BATCH}"
            )));
        }
        Ok(())
    }

    async fn send_prepared(&self, p: &Prepared) -> Result<Value, AirtableError> {
        self.send(p.kind, false, p.policy, |c| {
            let request = c.request(p.method.clone(), p.url.clone());
            match &p.body {
                Some(body) => request.json(body),
                None => request,
            }
        })
        .await
    }

    async fn upsert_as(
        &self,
        kind: RequestKind,
        records: &[Fields],
        merge_on: &[String],
    ) -> Result<UpsertResult, AirtableError> {
        Self::check_batch(records.len())?;
        check_merge_on(merge_on)?;
        let v = self
            .send_prepared(&self.prepare_upsert(kind, records, merge_on))
            .await?;
        let ids = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (created, updated) = (ids("createdRecords"), ids("updatedRecords"));
        Ok(UpsertResult {
            records: records_of(v)?,
            created,
            updated,
        })
    }

    async fn delete_batch(&self, ids: &[String]) -> Result<Vec<String>, AirtableError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let v = self.send_prepared(&self.prepare_delete(ids)).await?;
        Ok(v.get("records")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|r| r.get("deleted").and_then(Value::as_bool) == Some(true))
                    .filter_map(|r| r.get("id").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn read_token_file(p: &std::path::Path) -> Result<Secret, AirtableError> {
    let s = std::fs::read_to_string(p).map_err(|e| {
        AirtableError::Token(format!(
            "cannot read AIRTABLE_API_KEY_FILE {}: {e}",
            p.display()
        ))
    })?;
    let t = s.trim();
    if t.is_empty() {
        return Err(AirtableError::Token(format!(
            "AIRTABLE_API_KEY_FILE {} is empty",
            p.display()
        )));
    }
    Ok(Secret::new(t))
}

fn outcome_of(e: &AirtableError) -> Outcome {
    match e {
        AirtableError::RateLimited { .. } | AirtableError::QuotaExceeded { .. } => {
            Outcome::RateLimited
        }
        AirtableError::Server { .. } => Outcome::ServerError,
        AirtableError::Timeout | AirtableError::Connection { .. } | AirtableError::Decode(_) => {
            Outcome::Network
        }
        _ => Outcome::ClientError,
    }
}

fn records_of(v: Value) -> Result<Vec<Record>, AirtableError> {
    let recs = v
        .get("records")
        .cloned()
        .ok_or_else(|| AirtableError::Decode("no `records` in the answer".into()))?;
    serde_json::from_value(recs).map_err(|e| AirtableError::Decode(e.to_string()))
}

#[async_trait]
impl AirtableApi for HttpClient {
    async fn list_page(
        &self,
        params: &ListParams,
        offset: Option<&str>,
    ) -> Result<ListPage, AirtableError> {
        if let Some(n) = params.page_size
            && !(1..=100).contains(&n)
        {
            return Err(AirtableError::InvalidRequest(format!(
                "pageSize {n} is not in 1..=100"
            )));
        }
        let mut get_url = self.inner.table_url.clone();
        get_url
            .query_pairs_mut()
            .extend_pairs(list_query(params, offset));
        let v = if get_url.as_str().len() <= self.inner.opts.max_url_len {
            self.send(RequestKind::List, false, RetryPolicy::All, |c| {
                c.get(get_url.clone())
            })
            .await?
        } else {
            let url = self.url_with(&["listRecords"]);
            let body = list_body(params, offset);
            self.send(RequestKind::List, false, RetryPolicy::All, |c| {
                c.request(Method::POST, url.clone()).json(&body)
            })
            .await?
        };
        serde_json::from_value(v).map_err(|e| AirtableError::Decode(e.to_string()))
    }

    async fn get_record(&self, id: &str) -> Result<Option<Record>, AirtableError> {
        let url = self.url_with(&[id]);
        match self
            .send(RequestKind::Get, true, RetryPolicy::All, |c| {
                c.get(url.clone())
            })
            .await
        {
            Ok(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| AirtableError::Decode(e.to_string())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create(&self, records: &[Fields]) -> Result<Vec<Record>, AirtableError> {
        Self::check_batch(records.len())?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (prepared, upsert) = self.prepare_create(records);
        if !upsert {
            return records_of(self.send_prepared(&prepared).await?);
        }
        let field = &self.inner.lead_id_field;
        match self.send_prepared(&prepared).await {
            Ok(v) => return records_of(v),
            Err(AirtableError::Unprocessable {
                kind: UnprocessableKind::UnknownFieldName,
                message,
            }) if message.contains(field.as_str()) => {
                if self.inner.upsert_creates.swap(false, Ordering::Relaxed) {
                    warn!(
                        field = %field,
                        "the Airtable table has no {field:?} field (AIRTABLE_LEAD_ID_FIELD): \
                         creates fall back to plain creates, and a create whose answer is lost \
                         is not retried. Add a single line text field {field:?} to the table \
                         to make creates idempotent"
                    );
                }
            }
            Err(e) => return Err(e),
        }
        let (plain, _) = self.prepare_create(records);
        records_of(self.send_prepared(&plain).await?)
    }

    async fn update(&self, updates: &[RecordUpdate]) -> Result<Vec<Record>, AirtableError> {
        Self::check_batch(updates.len())?;
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        records_of(self.send_prepared(&self.prepare_update(updates)).await?)
    }

    async fn upsert(
        &self,
        records: &[Fields],
        merge_on: &[String],
    ) -> Result<UpsertResult, AirtableError> {
        if records.is_empty() {
            return Ok(UpsertResult::default());
        }
        self.upsert_as(RequestKind::Upsert, records, merge_on).await
    }

    async fn delete(&self, ids: &[String]) -> Result<Vec<String>, AirtableError> {
        Self::check_batch(ids.len())?;
        match self.delete_batch(ids).await {
            // One id of the batch is already gone (deleted in Airtable, or by our own earlier
            // attempt whose answer was lost): delete one by one, counting "gone" as deleted.
            Err(e) if e.is_not_found() && ids.len() > 1 => {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    match self.delete_batch(std::slice::from_ref(id)).await {
                        Ok(mut d) => out.append(&mut d),
                        Err(e) if e.is_not_found() => out.push(id.clone()),
                        Err(e) => return Err(e),
                    }
                }
                Ok(out)
            }
            Err(e) if e.is_not_found() => Ok(ids.to_vec()),
            other => other,
        }
    }

    fn preview(&self, write: &Write) -> Result<PlannedRequest, AirtableError> {
        let prepared = match write {
            Write::Create(records) => {
                Self::check_batch(records.len())?;
                self.prepare_create(records).0
            }
            Write::Update(updates) => {
                Self::check_batch(updates.len())?;
                self.prepare_update(updates)
            }
            Write::Delete(ids) => {
                Self::check_batch(ids.len())?;
                self.prepare_delete(ids)
            }
        };
        Ok(prepared.planned())
    }

    async fn reload_token(&self) -> Result<(), AirtableError> {
        let Some(path) = self.inner.token_file.clone() else {
            return Ok(());
        };
        let secret = tokio::task::spawn_blocking(move || read_token_file(&path))
            .await
            .map_err(|e| AirtableError::Token(format!("token reload failed: {e}")))??;
        *self.inner.token.write().unwrap_or_else(|p| p.into_inner()) = Some(secret);
        Ok(())
    }

    fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    fn backing_off(&self) -> Option<Duration> {
        self.inner.pacer.backing_off()
    }
}
