//! Starting and stopping the server: open and check the database, decide the mode, build the
//! router, serve until Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::{Config, LogFormat};
use crate::db::Db;
use crate::server::{App, router};
use crate::state::{AppState, Mode};

/// Sets up logging once: `RUST_LOG` filter, text or JSON lines (`LOG_FORMAT`).
pub fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Opens the database, running pending migrations.
pub fn open_database(config: &Config) -> anyhow::Result<Db> {
    let db = Db::open(&config.database_path)?;
    let applied = db.migrate()?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied {} migration(s)", applied.len());
    }
    Ok(db)
}

/// A running server (tests and the benchmark start one on port 0).
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and waits for in-flight ones.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.task.await??;
        Ok(())
    }
}

/// Binds `addr` and serves the app in the background.
pub async fn start(state: AppState, addr: SocketAddr) -> anyhow::Result<Running> {
    let app = App::for_bind(state, addr.ip().is_loopback());
    if let Some(path) = &app.state.config.tokens_file {
        crate::tokens::warn_if_readable_by_others(path);
    }
    // Reads the tokens (file included) now, so a broken tokens file stops the start with its error.
    let live_tokens = app
        .auth
        .verify()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !addr.ip().is_loopback() && live_tokens == 0 {
        anyhow::bail!(
            "refusing to listen on {addr} without API tokens: anyone on the network could read and change \
             every lead. Create one with `leadcache token create --name NAME --role admin`, or bind a \
             loopback address (LEADCACHE_BIND=127.0.0.1:8080)"
        );
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let service = router(app.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    Ok(Running {
        addr,
        app,
        shutdown: tx,
        task,
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The Airtable settings of the demo: the in-process simulator.
const DEMO_BASE: &str = "appLeadcacheDemo1";
const DEMO_KEY: &str = "patLeadcacheDemo.local";

/// `leadcache serve`.
pub async fn serve(mut config: Config, demo: bool) -> anyhow::Result<()> {
    // The demo keeps its own database, made fresh at every start to match the fresh simulator.
    let mut _sim = None;
    if demo {
        if config.database_path == std::path::Path::new("data/leads.db") {
            config.database_path = "data/demo.db".into();
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut p = config.database_path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        let sim = crate::airtable::sim::start(crate::airtable::sim::SimConfig {
            records: 250,
            api_key: Some(DEMO_KEY.into()),
            base_id: Some(DEMO_BASE.into()),
            ..Default::default()
        })
        .await?;
        tracing::info!(url = %sim.url(), records = 250, "demo: Airtable simulator started");
        config.airtable = Some(crate::config::AirtableConfig {
            api_key: Some(crate::config::ApiKeySource::Value(
                crate::config::Secret::new(DEMO_KEY),
            )),
            base_id: DEMO_BASE.into(),
            table: "Leads".into(),
            api_url: sim.url(),
            field_map: None,
            modified_field: "Last Modified".into(),
            lead_id_field: "Lead ID".into(),
            rate_limit: 5,
        });
        config.sync_push_interval = std::time::Duration::from_secs(10);
        _sim = Some(sim);
    }
    let db = open_database(&config)?;
    let mode = if demo {
        Mode::Demo
    } else if config.airtable.is_some() {
        Mode::Airtable
    } else {
        tracing::info!(
            "no Airtable settings (AIRTABLE_BASE_ID, AIRTABLE_API_KEY): running in local-only mode"
        );
        Mode::LocalOnly
    };
    let state = AppState::with_sync(
        config.clone(),
        db,
        mode,
        crate::sync::SyncOptions::default(),
    )?;
    let running = start(state.clone(), config.bind).await?;
    if let Some(engine) = &state.sync {
        engine.spawn_background(state.writes.clone(), config.cache_refresh_interval);
        spawn_push_interval(engine.clone(), config.sync_push_interval);
    }
    tracing::info!(
        mode = mode.as_str(),
        database = %config.database_path.display(),
        "leadcache listening on {} (admin page {}/, GraphiQL {}/graphiql)",
        running.addr,
        running.url(),
        running.url()
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await
}

/// Pushes the outbox every `SYNC_PUSH_INTERVAL` (besides the debounced push after writes).
fn spawn_push_interval(
    engine: std::sync::Arc<crate::sync::SyncEngine>,
    every: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick.tick().await;
        loop {
            tick.tick().await;
            let _ = engine
                .run(crate::sync::runs::RunKind::Push, "schedule")
                .await;
        }
    });
}
