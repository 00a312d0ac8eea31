//! The fixture of the sync tests: a simulator and a server syncing with it.

use std::sync::Arc;
use std::time::Duration;

use leadcache::airtable::ClientOptions;
use leadcache::airtable::sim::{self, SimConfig, SimHandle};
use leadcache::config::{AirtableConfig, ApiKeySource, ConflictPolicy, Secret};
use leadcache::sync::SyncEngine;
use leadcache::sync::runs::RunKind;
use serde_json::{Value, json};

use crate::support::TestApp;

pub const KEY: &str = "patTestKey.secret";
pub const BASE: &str = "appTestBase000001";

pub fn fast_options() -> leadcache::sync::SyncOptions {
    leadcache::sync::SyncOptions {
        overlap: Duration::ZERO,
        max_pass_restarts: 5,
        push_debounce: Duration::from_millis(50),
        client: ClientOptions {
            rate_limit_pause: Duration::from_millis(1200),
            rate_limit_jitter: Duration::from_millis(10),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            max_attempts: 6,
            request_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub struct Synced {
    pub app: TestApp,
    pub sim: SimHandle,
}

impl Synced {
    pub async fn start(records: usize, tweak: impl FnOnce(&mut SimConfig)) -> Synced {
        Synced::start_policy(records, ConflictPolicy::AirtableWins, tweak).await
    }

    /// A simulator of `records` and a server syncing with it with these engine options.
    pub async fn start_with_options(
        records: usize,
        options: leadcache::sync::SyncOptions,
        tweak: impl FnOnce(&mut SimConfig),
    ) -> Synced {
        let sim = start_sim(records, tweak).await;
        let url = sim.url();
        let app = TestApp::start_synced(
            move |c| {
                c.sync_delete_grace = Duration::ZERO;
                c.airtable = Some(airtable_config(url));
            },
            options,
        )
        .await;
        Synced { app, sim }
    }

    pub async fn start_policy(
        records: usize,
        policy: ConflictPolicy,
        tweak: impl FnOnce(&mut SimConfig),
    ) -> Synced {
        let sim = start_sim(records, tweak).await;
        let app = server_for(&sim, policy, None).await;
        Synced { app, sim }
    }

    /// A simulator of `records` and a server (airtable-wins) whose configuration `tweak` changes
    /// last (see [`server_tweaked`]).
    pub async fn start_configured(
        records: usize,
        tweak: impl FnOnce(&mut leadcache::config::Config),
    ) -> Synced {
        let sim = start_sim(records, |_| {}).await;
        let app = server_tweaked(&sim, ConflictPolicy::AirtableWins, None, tweak).await;
        Synced { app, sim }
    }

    pub fn engine(&self) -> Arc<SyncEngine> {
        self.app.state().sync.clone().unwrap()
    }

    pub async fn run(&self, kind: RunKind) -> leadcache::db::models::SyncRun {
        let run = self.engine().run(kind, "test").await.unwrap();
        assert_ne!(run.outcome, "failed", "run failed: {:?}", run.error);
        run
    }

    pub fn api_requests(&self, kinds: &[&str]) -> usize {
        self.sim
            .state
            .log()
            .iter()
            .filter(|e| e.kind.is_some_and(|k| kinds.contains(&k.as_str())))
            .count()
    }

    /// The simulator's record with this Airtable id, as its fields.
    pub fn remote(&self, id: &str) -> Value {
        self.sim.state.record(id).unwrap()["fields"].clone()
    }

    /// The local lead for an Airtable id.
    pub async fn local(&self, airtable_id: &str) -> Value {
        self.app
            .ok(
                "query($id: ID!) { lead(id: $id) { id fullName title status company syncState deletedAt airtableId extra } }",
                json!({"id": airtable_id}),
            )
            .await["lead"]
            .clone()
    }

    pub fn some_remote_ids(&self, n: usize) -> Vec<String> {
        self.sim
            .state
            .records()
            .iter()
            .take(n)
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A simulator of `records` for [`BASE`] with [`KEY`], its 429 lockout shortened to 1 s, then
/// `tweak`ed.
async fn start_sim(records: usize, tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut cfg = SimConfig {
        records,
        api_key: Some(KEY.into()),
        base_id: Some(BASE.into()),
        lockout: Duration::from_secs(1),
        ..Default::default()
    };
    tweak(&mut cfg);
    sim::start(cfg).await.unwrap()
}

/// Waits until the wall clock is in a later whole second than now (Airtable's modified times
/// have whole seconds; see the incremental pull's docs).
pub async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// A server syncing with `sim`: on a fresh database, or on `database` (whose folder also holds
/// the backups).
pub async fn server_for(
    sim: &SimHandle,
    policy: ConflictPolicy,
    database: Option<std::path::PathBuf>,
) -> TestApp {
    server_tweaked(sim, policy, database, |_| {}).await
}

/// [`server_for`], with `tweak` applied to the configuration last. Deletes are pushed at once
/// here (`SYNC_DELETE_GRACE` 0) unless `tweak` sets a grace: the tests of the grace do.
pub async fn server_tweaked(
    sim: &SimHandle,
    policy: ConflictPolicy,
    database: Option<std::path::PathBuf>,
    tweak: impl FnOnce(&mut leadcache::config::Config),
) -> TestApp {
    let url = sim.url();
    TestApp::start_synced(
        move |c| {
            c.sync_delete_grace = Duration::ZERO;
            if let Some(db) = database {
                c.backup_dir = db.with_file_name("backups");
                c.database_path = db;
            }
            c.conflict_policy = policy;
            c.airtable = Some(airtable_config(url));
            tweak(c);
        },
        fast_options(),
    )
    .await
}

/// The Airtable settings of a server syncing with the simulator at `url`.
fn airtable_config(url: String) -> AirtableConfig {
    AirtableConfig {
        api_key: Some(ApiKeySource::Value(Secret::new(KEY))),
        base_id: BASE.into(),
        table: "Leads".into(),
        api_url: url,
        field_map: None,
        modified_field: "Last Modified".into(),
        lead_id_field: "Lead ID".into(),
        rate_limit: 5,
    }
}
