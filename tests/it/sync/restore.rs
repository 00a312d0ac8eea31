//! Restoring a backup, then syncing: both sides end equal, nothing is sent twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use leadcache::backup;
use leadcache::config::{Config, ConflictPolicy};
use leadcache::db::meta;
use leadcache::sync::runs::RunKind;
use serde_json::{Value, json};

use super::fixture::{Synced, next_second, server_for};
use crate::support::TestApp;

const EDIT: &str = "mutation($id: ID!, $p: LeadPatch!) { updateLead(id: $id, patch: $p) { id } }";

async fn edit(s: &Synced, id: &str, patch: Value) {
    s.app.ok(EDIT, json!({"id": id, "p": patch})).await;
}

/// Takes a backup through the API; returns its file and its time.
async fn backup_now(app: &TestApp) -> (PathBuf, chrono::NaiveDateTime) {
    let data = app
        .ok("mutation { backupNow { file createdAt } }", json!({}))
        .await;
    let file = app
        .dir
        .path()
        .join("backups")
        .join(data["backupNow"]["file"].as_str().unwrap());
    let at = chrono::DateTime::parse_from_rfc3339(data["backupNow"]["createdAt"].as_str().unwrap())
        .unwrap()
        .naive_utc();
    (file, at)
}

/// Stops the server, restores `file` over its database (as `leadcache restore` does) and starts a
/// new server on it, syncing with the same simulator.
async fn restore_and_restart(s: Synced, file: &Path) -> (Synced, tempfile::TempDir) {
    let Synced { app, sim } = s;
    let TestApp { dir, running, .. } = app;
    running.stop().await.unwrap();
    let database = dir.path().join("leads.db");
    let mut config = Config::for_database(database.clone());
    config.backup_dir = dir.path().join("backups");
    backup::restore::restore(&config, file, false).unwrap();
    let app = server_for(&sim, ConflictPolicy::AirtableWins, Some(database)).await;
    (Synced { app, sim }, dir)
}

/// Asserts that the cache and the simulator hold the same live records, field for field.
async fn assert_both_sides_equal(s: &Synced) {
    let remote: BTreeMap<String, Value> = s
        .sim
        .state
        .records()
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["fields"].clone()))
        .collect();
    let local = s
        .app
        .ok(
            "{ leads(first: 1000) { totalCount nodes { id airtableId fullName title company syncState } } }",
            json!({}),
        )
        .await;
    let nodes = local["leads"]["nodes"].as_array().unwrap();
    assert_eq!(
        local["leads"]["totalCount"].as_u64().unwrap() as usize,
        remote.len(),
        "as many live leads here as records in Airtable"
    );
    for l in nodes {
        let id = l["airtableId"]
            .as_str()
            .unwrap_or_else(|| panic!("not in Airtable: {l}"));
        let r = &remote[id];
        assert_eq!(l["fullName"], r["Full Name"], "{l} vs {r}");
        assert_eq!(l["title"], r["Title"], "{l} vs {r}");
        assert_eq!(l["company"], r["Company"], "{l} vs {r}");
        if !r["Lead ID"].is_null() {
            // (A record made in Airtable by a person has none.)
            assert_eq!(r["Lead ID"], l["id"], "{l} vs {r}");
        }
        assert_eq!(l["syncState"], "SYNCED", "{l}");
    }
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM outbox").await, 0);
}

#[tokio::test]
async fn after_a_restore_one_sync_brings_back_remote_changes_and_pushes_the_restored_outbox() {
    let s = Synced::start(30, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let ids = s.some_remote_ids(4);
    let (a, b, c, d) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let d_title = s.remote(d)["Title"].clone();
    let c_local = s.local(c).await["id"].clone();
    // Pending when the backup is taken: an edit and a new lead.
    edit(&s, a, json!({"title": "Pending At Backup"})).await;
    let newcomer = s
        .app
        .create_lead(json!({"fullName": "Restored Newcomer", "company": "Backup Co"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (file, backup_at) = backup_now(&s.app).await;

    next_second().await;
    // After the backup, a person changes Airtable: an edit, a delete, a new record...
    let fields = |v: Value| v.as_object().unwrap().clone();
    s.sim
        .state
        .ui_edit(b, fields(json!({"Title": "Changed After Backup"})))
        .unwrap();
    assert!(s.sim.state.ui_delete(c));
    let made = s
        .sim
        .state
        .ui_create(fields(
            json!({"Full Name": "Made In Airtable", "Company": "Remote Co"}),
        ))
        .unwrap();
    // ...and local writes happen that the restore will undo (never pushed).
    edit(&s, d, json!({"title": "Lost By The Restore"})).await;
    s.app
        .create_lead(json!({"fullName": "Lost Newcomer"}))
        .await;

    let (s, _dir) = restore_and_restart(s, &file).await;
    let watermark = s
        .app
        .db()
        .run(|c| meta::get_time(c, meta::PULL_WATERMARK))
        .await
        .unwrap()
        .unwrap();
    assert!(
        watermark <= backup_at,
        "the restored watermark {watermark} is not after the backup ({backup_at})"
    );
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM outbox").await, 2);

    // One sync, as at start-up: a pull, then the push.
    s.sim.state.clear_log();
    let pull = s.run(RunKind::IncrementalPull).await;
    assert_eq!(
        pull.kind, "full_pull",
        "the first pull after a restore reads everything (deletions since the backup too)"
    );
    assert_eq!(pull.deleted, 1);
    let push = s.run(RunKind::Push).await;
    assert_eq!(
        (push.pushed, push.requests),
        (2, 3),
        "the edit, its pre-push read and the create"
    );

    // Airtable's changes since the backup are here.
    assert_eq!(s.local(b).await["title"], "Changed After Backup");
    let c_now = s
        .app
        .ok(
            "query($id: ID!) { lead(id: $id) { deletedAt airtableId } }",
            json!({"id": c_local}),
        )
        .await;
    assert!(c_now["lead"]["deletedAt"].is_string(), "{c_now}");
    assert_eq!(s.local(&made).await["fullName"], "Made In Airtable");
    // The restored pending changes reached Airtable, once.
    assert_eq!(s.remote(a)["Title"], "Pending At Backup");
    let created = s.sim.state.find_by_field("Lead ID", &json!(newcomer));
    assert_eq!(created.len(), 1, "the restored create made one record");
    assert_eq!(created[0]["fields"]["Full Name"], "Restored Newcomer");
    // What the restore undid is gone on both sides.
    assert_eq!(s.remote(d)["Title"], d_title);
    assert_eq!(s.local(d).await["title"], d_title);
    assert!(
        s.sim
            .state
            .find_by_field("Full Name", &json!("Lost Newcomer"))
            .is_empty()
    );
    assert_eq!(
        s.sim.state.record_count(),
        30 - 1 + 1 + 1,
        "nothing made twice"
    );
    assert_both_sides_equal(&s).await;

    // The next sync finds nothing to do.
    s.sim.state.clear_log();
    next_second().await;
    let pull = s.run(RunKind::IncrementalPull).await;
    assert_eq!(
        (
            pull.kind.as_str(),
            pull.requests,
            pull.created,
            pull.updated
        ),
        ("incremental_pull", 1, 0, 0),
        "(it re-reads the two records the push changed, and finds them equal)"
    );
    let push = s.run(RunKind::Push).await;
    assert_eq!(push.requests, 0);
}

#[tokio::test]
async fn a_restore_after_its_pending_changes_were_pushed_sends_nothing_twice() {
    let s = Synced::start(12, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let a = s.some_remote_ids(1).remove(0);
    edit(&s, &a, json!({"title": "Pushed Before Restore"})).await;
    let newcomer = s
        .app
        .create_lead(json!({"fullName": "Pushed Newcomer"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (file, _) = backup_now(&s.app).await;
    // The server pushes the backup's pending changes before the restore.
    let push = s.run(RunKind::Push).await;
    assert_eq!(push.pushed, 2);
    assert_eq!(s.sim.state.record_count(), 13);

    let (s, _dir) = restore_and_restart(s, &file).await;
    assert_eq!(
        s.app.count("SELECT COUNT(*) AS n FROM outbox").await,
        2,
        "the backup still has them queued"
    );
    s.sim.state.clear_log();
    s.run(RunKind::IncrementalPull).await;
    let push = s.run(RunKind::Push).await;
    assert_eq!(
        (
            push.requests,
            s.sim
                .state
                .log()
                .iter()
                .filter(|e| e.kind.is_some_and(|k| k.as_str() != "list"))
                .count()
        ),
        (0, 0),
        "the pull found both changes already in Airtable: nothing to send again: {:?}",
        s.sim
            .state
            .log()
            .iter()
            .filter(|e| e.kind.is_some_and(|k| k.as_str() != "list"))
            .collect::<Vec<_>>()
    );
    assert_eq!(s.sim.state.record_count(), 13, "no second record");
    assert_eq!(
        s.sim.state.find_by_field("Lead ID", &json!(newcomer)).len(),
        1
    );
    assert_eq!(s.local(&a).await["title"], "Pushed Before Restore");
    assert_both_sides_equal(&s).await;
}
