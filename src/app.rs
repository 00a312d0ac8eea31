//! Starting and stopping the server: open and check the database, decide the mode, build the
//! router, serve until Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::backup::Reason;
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

/// Opens the database for work: refuses a damaged file (`PRAGMA quick_check`, with the command
/// that restores the newest good backup), backs up (reason `pre-migration`) when migrations are
/// pending on a database that has data, then runs them.
pub fn open_database(config: &Config) -> anyhow::Result<Db> {
    crate::backup::check::startup_check(&config.database_path, &config.backup_dir)
        .map_err(anyhow::Error::msg)?;
    let db = Db::open(&config.database_path)?;
    let pending = db.pending_migrations()?;
    if !pending.is_empty() && !db.applied_migrations()?.is_empty() {
        let (taken, _) = crate::backup::take(
            &db,
            &config.backup_dir,
            Reason::PreMigration,
            config.backup_keep,
        )
        .context("cannot back up the database before migrating it; nothing was changed")?;
        tracing::info!(backup = %taken.path.display(), pending = ?pending, "backed up before migrating");
    }
    let applied = db.migrate()?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied {} migration(s)", applied.len());
    }
    if let Some(stays) = crate::leads::stays::ensure_built(&mut *db.conn()?)? {
        tracing::info!(stays, "filled the stored pipeline stays from the history");
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
    // Not `axum::serve`: it has no header or idle timeout and no connection cap (see
    // `crate::server` § Connections).
    let limits = crate::server::ConnLimits::from_config(&app.state.config);
    let task = tokio::spawn(crate::server::serve(listener, service, limits, async {
        let _ = rx.await;
    }));
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
    // The demo never opens, deletes or writes any database but its own: a fresh folder in the
    // system's temp dir with its database and backups, removed at exit, whatever
    // LEAD_DATABASE_PATH or LEADCACHE_BACKUP_DIR say (a Docker image sets the first, and a demo
    // once replaced the configured database with its sample leads). Two demos never share one.
    let mut _sim = None;
    let mut _demo_folder = None;
    if demo {
        let folder = tempfile::Builder::new()
            .prefix("leadcache-demo-")
            .tempdir()
            .context("cannot create the demo's folder in the temp dir")?;
        config.database_path = folder.path().join("demo.db");
        config.backup_dir = folder.path().join("backups");
        tracing::info!(
            database = %config.database_path.display(),
            "demo: using a database of its own in {} (deleted at exit; the configured database is not opened)",
            folder.path().display()
        );
        _demo_folder = Some(folder);
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
    let _lock = crate::backup::lock::acquire(&config.database_path).map_err(|e| match e {
        crate::backup::lock::LockError::Held { .. } => {
            anyhow::anyhow!(
                "{e}: another server already serves {}",
                config.database_path.display()
            )
        }
        other => anyhow::Error::new(other),
    })?;
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
    }
    let jobs = crate::jobs::start(state.clone()).await?;
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
    if let Err(e) = jobs.stop().await {
        tracing::warn!(error = %e, "cannot stop the job scheduler cleanly");
    }
    running.stop().await
}
