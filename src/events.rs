//! The in-process change bus: every lead write (local or pulled from Airtable) and every sync-run
//! update is published here once, after its transaction commits; subscriptions and the admin page
//! listen. A bounded broadcast channel: a subscriber that falls too far behind loses its place
//! (and is told so) instead of slowing writers down.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::db::models::{Lead, SyncRun};
use crate::leads::{ChangeKind, Written};

/// How many events a subscriber may fall behind before it is dropped.
pub const CAPACITY: usize = 1024;

#[derive(Debug, Clone)]
pub struct LeadChange {
    pub kind: ChangeKind,
    pub lead: Arc<Lead>,
    pub changed_fields: Arc<Vec<String>>,
    pub actor: Arc<str>,
}

#[derive(Clone)]
pub struct Bus {
    leads: broadcast::Sender<LeadChange>,
    sync: broadcast::Sender<Arc<SyncRun>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            leads: broadcast::channel(CAPACITY).0,
            sync: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Bus {
    pub fn publish(&self, written: &Written, actor: &str) {
        // An error only means nobody listens right now.
        let _ = self.leads.send(LeadChange {
            kind: written.kind,
            lead: Arc::new(written.lead.clone()),
            changed_fields: Arc::new(written.changed_fields.clone()),
            actor: Arc::from(actor),
        });
    }

    pub fn publish_run(&self, run: &SyncRun) {
        let _ = self.sync.send(Arc::new(run.clone()));
    }

    pub fn lead_changes(&self) -> broadcast::Receiver<LeadChange> {
        self.leads.subscribe()
    }

    pub fn sync_runs(&self) -> broadcast::Receiver<Arc<SyncRun>> {
        self.sync.subscribe()
    }
}
