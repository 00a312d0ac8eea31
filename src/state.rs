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
        self.mode != Mode::LocalOnly
    }

    /// The write context of a caller.
    pub fn write_ctx(&self, actor: &str) -> WriteCtx {
        WriteCtx {
            actor: actor.to_string(),
            sync_enabled: self.sync_enabled(),
            statuses: self.config.lead_statuses.clone(),
        }
    }
}
