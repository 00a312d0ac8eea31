//! The application state shared by the HTTP handlers, GraphQL resolvers and jobs.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::events::Bus;
use crate::leads::WriteCtx;

/// How the server runs, as shown in `cacheStatus.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    LocalOnly,
    Airtable,
    Demo,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::LocalOnly => "local-only",
            Mode::Airtable => "airtable",
            Mode::Demo => "demo",
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub bus: Bus,
    pub mode: Mode,
    /// Whether Airtable answered the last request: 0 unknown, 1 yes, 2 no (set by the sync engine).
    pub reachable: Arc<std::sync::atomic::AtomicU8>,
    /// Notified after each committed lead write (the sync engine debounces pushes on it).
    pub writes: Arc<tokio::sync::Notify>,
    /// The sync engine; `None` in local-only mode.
    pub sync: Option<Arc<crate::sync::SyncEngine>>,
    /// Told when tokens are created or revoked over the API, so the server's token checks (and
    /// open subscriptions) see it at once.
    pub tokens: crate::tokens::TokenChanges,
}

impl AppState {
    pub fn new(config: Config, db: Db, mode: Mode) -> Self {
        AppState {
            config: Arc::new(config),
            db,
            bus: Bus::default(),
            mode,
            reachable: Arc::default(),
            writes: Arc::default(),
            sync: None,
            tokens: crate::tokens::TokenChanges::default(),
        }
    }

    pub fn airtable_reachable(&self) -> Option<bool> {
        match self.reachable.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    pub fn set_airtable_reachable(&self, yes: bool) {
        self.reachable.store(
            if yes { 1 } else { 2 },
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Called after every committed lead write: wakes the debounced push when syncing.
    pub fn lead_written(&self) {
        self.writes.notify_one();
    }

    pub fn sync_enabled(&self) -> bool {
        self.sync.is_some()
    }

    /// Builds the state; with Airtable settings, also the sync engine (not started).
    pub fn with_sync(
        config: Config,
        db: Db,
        mode: Mode,
        options: crate::sync::SyncOptions,
    ) -> anyhow::Result<Self> {
        let mut state = AppState::new(config, db, mode);
        if let Some(at) = &state.config.airtable {
            let engine = crate::sync::SyncEngine::new(
                at,
                state.config.conflict_policy,
                state.config.monthly_quota,
                state.config.read_through,
                state.db.clone(),
                state.bus.clone(),
                state.reachable.clone(),
                options,
            )?;
            state.sync = Some(Arc::new(engine));
        }
        Ok(state)
    }

    /// The sync engine, or an error saying there is none (local-only mode).
    pub fn engine(&self) -> Result<&Arc<crate::sync::SyncEngine>, crate::error::AppError> {
        self.sync.as_ref().ok_or_else(|| {
            crate::error::AppError::Unavailable(
                "no Airtable configured (local-only mode): set AIRTABLE_BASE_ID and AIRTABLE_API_KEY".into(),
            )
        })
    }

    /// The write context of a caller.
    pub fn write_ctx(&self, actor: &str) -> WriteCtx {
        WriteCtx {
            actor: actor.to_string(),
            sync_enabled: self.sync_enabled(),
            statuses: self.config.lead_statuses.clone(),
            delete_grace: self.config.sync_delete_grace,
        }
    }
}
