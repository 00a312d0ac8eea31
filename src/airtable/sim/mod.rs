//! The Airtable simulator: a local HTTP server speaking the part of Airtable's REST API that
//! leadcache uses, the way Airtable does (shapes, limits, errors: see `airtable-api.md` §11), for
//! tests and demos. Usable in-process ([`start`] → [`SimHandle`]) and as `leadcache airtable-sim`
//! ([`SimArgs`], [`run_cli`]).
//!
//! - Routes: `/v0/{baseId}/{table}` (list, create, batch PATCH/PUT/upsert, batch delete),
//!   `/v0/{baseId}/{table}/{recordId}` (get, PATCH, PUT, delete), `POST …/listRecords`, and the
//!   control API under `/_sim/` (see `control.rs`).
//! - The table has the default field map's columns, the Lead ID field (unless
//!   [`SimConfig::lead_id_field`] is `None`), a `Last Modified` field it maintains (whole seconds),
//!   a computed `Created` field, and unmapped `Notes`, `Tags`, `Owner`, `Attachments`.
//! - Offsets are `itr…/rec…`, valid for [`SimConfig::offset_ttl`] of inactivity.
//! - Rate limit: `rate_limit` requests per base in any sliding `rate_window`, then 429 and a
//!   `lockout` during which every request of that base is refused.
//! - Faults ([`Faults`]): latency, 5xx, dropped connections (before or after applying the
//!   request), 429 storms, offset expiry, the monthly quota error.
//! - [`SimHandle::stop`] and [`SimHandle::restart`] take the server down and up on the same port
//!   with the data kept ("Airtable is down").

mod api;
mod control;
pub mod formula;
mod seed;
mod state;
mod table;
mod values;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use seed::STATUS_WEIGHTS;
pub use state::{Faults, FieldDef, FieldType, LogEntry, SimState};

/// The shape of a 429 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateLimitBody {
    /// `{"error":{"type":"RATE_LIMIT_REACHED","message":…}}` (documented).
    #[default]
    Singular,
    /// `{"errors":[{"error":"RATE_LIMIT_REACHED","message":…}]}` (seen in production).
    ErrorsArray,
}

/// The answer for an unknown record id on a single-record call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotFoundShape {
    /// 404 `{"error":{"type":"MODEL_ID_NOT_FOUND","message":"Record not found"}}`.
    #[default]
    ModelIdNotFound,
    /// 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`.
    InvalidPermissions,
    /// 404 `{"error":"NOT_FOUND"}`.
    Bare,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// 0: any free port.
    pub port: u16,
    /// The only token accepted; any bearer token when `None`.
    pub api_key: Option<String>,
    /// The only base served; any base id when `None`.
    pub base_id: Option<String>,
    pub table: String,
    /// Sample leads seeded at start (and at reset).
    pub records: usize,
    pub seed: u64,
    /// `None`: the table has no Lead ID field.
    pub lead_id_field: Option<String>,
    pub modified_field: String,
    /// Requests per base per `rate_window`; `None`: unlimited.
    pub rate_limit: Option<u32>,
    pub rate_window: Duration,
    pub lockout: Duration,
    pub rate_limit_body: RateLimitBody,
    /// A list offset expires after this long unused.
    pub offset_ttl: Duration,
    /// Most records per write request (422 `INVALID_RECORDS` above); `None`: no limit.
    pub max_batch: Option<usize>,
    pub not_found: NotFoundShape,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 0,
            api_key: None,
            base_id: None,
            table: "Leads".into(),
            records: 0,
            seed: 42,
            lead_id_field: Some("Lead ID".into()),
            modified_field: "Last Modified".into(),
            rate_limit: Some(5),
            rate_window: Duration::from_secs(1),
            lockout: Duration::from_secs(30),
            rate_limit_body: RateLimitBody::Singular,
            offset_ttl: Duration::from_secs(300),
            max_batch: Some(10),
            not_found: NotFoundShape::ModelIdNotFound,
            faults: Faults::default(),
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (the `AIRTABLE_API_URL` to use).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base id to use: the configured one, or a fixed example when any is accepted.
    pub fn base_id(&self) -> String {
        self.state
            .cfg
            .base_id
            .clone()
            .unwrap_or_else(|| "appSimulatorBase1".into())
    }

    pub fn table(&self) -> &str {
        &self.state.cfg.table
    }

    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Stops serving (connections are refused) and waits for the server to finish. Data is kept.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves again on the same port with the same data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let listener = bind(self.addr)?;
        let (shutdown, task) = serve(self.state.clone(), listener);
        self.shutdown = Some(shutdown);
        self.task = Some(task);
        Ok(())
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    socket.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
    socket
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?;
    socket
        .listen(1024)
        .with_context(|| format!("listening on {addr}"))
}

fn serve(state: Arc<SimState>, listener: TcpListener) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "Airtable simulator stopped with an error");
        }
    });
    (tx, task)
}

/// Starts a simulator on 127.0.0.1:`config.port` with a fresh table.
pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
    let port = config.port;
    start_with_state(Arc::new(SimState::new(config)), port).await
}

/// Starts a simulator serving an existing state (e.g. after a handle was dropped).
pub async fn start_with_state(state: Arc<SimState>, port: u16) -> anyhow::Result<SimHandle> {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let (shutdown, task) = serve(state.clone(), listener);
    Ok(SimHandle {
        addr,
        state,
        shutdown: Some(shutdown),
        task: Some(task),
    })
}

/// `leadcache airtable-sim`: flags, plus `AIRTABLE_API_KEY`, `AIRTABLE_BASE_ID`, `AIRTABLE_TABLE`
/// from the environment (as `serve` reads them, so one `.env` serves both).
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8090)]
    pub port: u16,
    /// Sample leads to seed.
    #[arg(long, default_value_t = 500)]
    pub records: usize,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0..1) of requests answered with a 5xx.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Seed of the sample data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Requests per second per base before 429 (0: no limit).
    #[arg(long, default_value_t = 5)]
    pub rate_limit: u32,
    /// The only token accepted (any when unset).
    #[arg(long, env = "AIRTABLE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The only base served (any when unset).
    #[arg(long, env = "AIRTABLE_BASE_ID")]
    pub base_id: Option<String>,
    #[arg(long, env = "AIRTABLE_TABLE", default_value = "Leads")]
    pub table: String,
    #[arg(long, env = "AIRTABLE_LEAD_ID_FIELD", default_value = "Lead ID")]
    pub lead_id_field: String,
    #[arg(long, env = "AIRTABLE_MODIFIED_FIELD", default_value = "Last Modified")]
    pub modified_field: String,
}

impl SimArgs {
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        if !(0.0..=1.0).contains(&self.fail_rate) {
            anyhow::bail!(
                "--fail-rate must be between 0 and 1, got {}",
                self.fail_rate
            );
        }
        let nonempty = |s: &Option<String>| {
            s.as_ref()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Ok(SimConfig {
            port: self.port,
            api_key: nonempty(&self.api_key),
            base_id: nonempty(&self.base_id),
            table: self.table.clone(),
            records: self.records,
            seed: self.seed,
            lead_id_field: Some(self.lead_id_field.clone()),
            modified_field: self.modified_field.clone(),
            rate_limit: (self.rate_limit > 0).then_some(self.rate_limit),
            faults: Faults {
                latency_ms: self.latency_ms,
                fail_rate: self.fail_rate,
                ..Faults::default()
            },
            ..SimConfig::default()
        })
    }
}

/// Runs the simulator until Ctrl-C.
pub async fn run_cli(opts: SimArgs) -> anyhow::Result<()> {
    let config = opts.to_config()?;
    let auth = if config.api_key.is_some() {
        "AIRTABLE_API_KEY only"
    } else {
        "any token"
    };
    let mut handle = start(config).await?;
    tracing::info!(
        url = %handle.url(),
        base = %handle.base_id(),
        table = %handle.table(),
        records = handle.state.record_count(),
        "Airtable simulator listening ({auth}); control API at {}/_sim/",
        handle.url()
    );
    println!(
        "Airtable simulator on {} (base {}, table {:?}, {} records, accepts {auth})",
        handle.url(),
        handle.base_id(),
        handle.table(),
        handle.state.record_count()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    handle.stop().await;
    Ok(())
}
