//! Paths that could lose data (issue 15, items 1, 2 and 5): the demo beside a configured
//! database, commands that replace a database a server holds, a database file replaced under a
//! running server, and deletes that wait their grace before they reach Airtable.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::RunQueryDsl;
use leadcache::config::Config;
use leadcache::sync::runs::RunKind;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::TestApp;
use crate::sync::fixture::Synced;

/// Every file under `dir` with the SHA-256 of its contents, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let digest = Sha256::digest(std::fs::read(&path).unwrap());
                out.push((path, format!("{digest:x}")));
            }
        }
    }
    out.sort();
    out
}

/// A real database of `leads` seeded leads under `dir/data`, closed (no WAL left), and a backup
/// folder holding one file.
fn real_database(dir: &Path, leads: usize) -> Config {
    let mut config = Config::for_database(dir.join("data/leads.db"));
    config.backup_dir = dir.join("data/backups");
    {
        let db = leadcache::app::open_database(&config).unwrap();
        let mut conn = db.conn().unwrap();
        leadcache::seed::seed(&mut conn, leads, 7, false).unwrap();
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .unwrap();
    }
    std::fs::create_dir_all(&config.backup_dir).unwrap();
    std::fs::write(
        config.backup_dir.join("leads-20260101T000000Z.db"),
        b"an operator's backup",
    )
    .unwrap();
    config
}

fn lead_count(config: &Config) -> i64 {
    use diesel::prelude::*;
    let db = leadcache::db::Db::open(&config.database_path).unwrap();
    let mut conn = db.conn().unwrap();
    leadcache::db::schema::leads::table
        .count()
        .get_result(&mut *conn)
        .unwrap()
}

/// A `leadcache serve --demo` process started in `dir` with the configured database of
/// [`real_database`] in its environment.
struct Demo {
    child: tokio::process::Child,
    url: String,
    folder: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    async fn start(dir: &Path) -> Demo {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_leadcache"));
        cmd.env_clear()
            .current_dir(dir)
            .env("LEAD_DATABASE_PATH", dir.join("data/leads.db"))
            .env("LEADCACHE_BACKUP_DIR", dir.join("data/backups"))
            .env("LEADCACHE_BIND", "127.0.0.1:0")
            .env("TMPDIR", &tmp)
            .env("RUST_LOG", "info")
            .args(["serve", "--demo"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<(String, PathBuf)>();
        let stderr = child.stderr.take().unwrap();
        let collected = lines.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut folder = None;
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(rest) = line.split("a database of its own in ").nth(1) {
                    folder = rest.split(' ').next().map(PathBuf::from);
                }
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let (Some(tx), Some(folder)) = (tx.take(), folder.clone())
                {
                    let addr = rest.split(' ').next().unwrap_or_default().to_string();
                    let _ = tx.send((addr, folder));
                }
                collected.lock().unwrap().push(line);
            }
        });
        let (addr, folder) = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .unwrap_or_else(|_| panic!("the demo did not start: {:?}", lines.lock().unwrap()))
            .unwrap_or_else(|_| panic!("the demo stopped: {:?}", lines.lock().unwrap()));
        Demo {
            child,
            url: format!("http://{addr}"),
            folder,
            lines,
        }
    }

    async fn gql(&self, query: &str) -> Value {
        reqwest::Client::new()
            .post(format!("{}/graphql", self.url))
            .json(&json!({"query": query}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the demo's first pull has cached the simulator's 250 leads.
    async fn until_filled(&self) {
        for _ in 0..240 {
            let r = self.gql("{ cacheStatus { totalLeads } }").await;
            if r["data"]["cacheStatus"]["totalLeads"] == 250 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the demo never cached its 250 leads");
    }

    /// Stops the demo with SIGTERM, as Ctrl-C or `docker stop` would, and waits for it.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the demo stops on SIGTERM")
            .unwrap();
        assert!(exit.success(), "{exit:?}: {:?}", self.lines.lock().unwrap());
    }
}

/// `serve --demo` with LEAD_DATABASE_PATH (and LEADCACHE_BACKUP_DIR) pointing at a real database,
/// as the Docker image sets it: the demo opens, deletes and writes none of those files; it says in
/// one log line where its own database is, and that folder is gone after a clean stop. A second
/// demo started meanwhile gets a folder of its own and does not touch the first one's files.
#[tokio::test]
async fn the_demo_never_touches_a_configured_database_and_two_demos_share_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = real_database(dir.path(), 5);
    let data = dir.path().join("data");
    let before = snapshot(&data);
    assert!(before.len() >= 2, "{before:?}");

    let first = Demo::start(dir.path()).await;
    assert!(
        first.folder.starts_with(dir.path().join("tmp")),
        "the demo's folder is in the temp dir: {:?}",
        first.folder
    );
    first.until_filled().await;
    let first_db = first.folder.join("demo.db");
    assert!(first_db.is_file());
    let mode = first.gql("{ cacheStatus { mode } }").await;
    assert_eq!(mode["data"]["cacheStatus"]["mode"], "demo", "{mode}");

    let second = Demo::start(dir.path()).await;
    assert_ne!(second.folder, first.folder);
    second.until_filled().await;
    // The first demo still writes the file at its path, and says it is ready.
    assert!(
        first_db.is_file(),
        "the second demo removed the first one's database"
    );
    let ready = reqwest::get(format!("{}/readyz", first.url)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let created = first
        .gql("mutation { createLead(input: {fullName: \"Demo Person\"}) { created } }")
        .await;
    assert_eq!(created["data"]["createLead"]["created"], true, "{created}");
    let backup = first.gql("mutation { backupNow { file } }").await;
    let file = backup["data"]["backupNow"]["file"].as_str().unwrap();
    assert!(
        first.folder.join("backups").join(file).is_file(),
        "the demo backs up into its own folder: {backup}"
    );

    let (first_folder, second_folder) = (first.folder.clone(), second.folder.clone());
    first.stop().await;
    second.stop().await;
    assert!(
        !first_folder.exists(),
        "the demo's folder is removed at exit"
    );
    assert!(!second_folder.exists());
    assert_eq!(
        snapshot(&data),
        before,
        "the configured database and backup folder are byte for byte as they were"
    );
    assert_eq!(lead_count(&config), 5);
}

/// `reset` empties a database: it takes the server's lock first, so while a server holds the
/// database it refuses and deletes nothing.
#[tokio::test]
async fn reset_refuses_while_a_server_holds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = real_database(dir.path(), 3);
    let reset = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_leadcache"))
            .env_clear()
            .current_dir(dir.path())
            .env("LEAD_DATABASE_PATH", &config.database_path)
            .env("LEADCACHE_BACKUP_DIR", &config.backup_dir)
            .args(["reset", "--yes"])
            .output()
            .unwrap()
    };
    let held = leadcache::backup::lock::acquire(&config.database_path).unwrap();
    let out = reset();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by another leadcache process")
            && stderr.contains("nothing was deleted"),
        "{stderr}"
    );
    assert_eq!(lead_count(&config), 3);
    drop(held);
    let out = reset();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lead_count(&config), 0);
}

/// A server whose database file was deleted or replaced writes into a file nobody will see
/// again: `/readyz` says so (503, naming the file) instead of "ok".
#[tokio::test]
async fn readyz_fails_when_the_database_file_is_no_longer_the_one_at_its_path() {
    let app = TestApp::start().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let path = app.db().path().to_path_buf();
    std::fs::remove_file(&path).unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    let said = body["database"].as_str().unwrap();
    assert!(
        said.contains("deleted") && said.contains("restart"),
        "{body}"
    );

    std::fs::write(&path, b"").unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["database"].as_str().unwrap().contains("replaced"),
        "{body}"
    );
}

async fn delete(s: &Synced, id: &str) {
    s.app
        .ok(
            "mutation($id: ID!) { deleteLead(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
}

async fn restore(s: &Synced, id: &str) -> Value {
    s.app
        .ok(
            "mutation($id: ID!) { restoreLead(id: $id) { id airtableId syncState deletedAt events(first: 1) { kind message } } }",
            json!({"id": id}),
        )
        .await["restoreLead"]
        .clone()
}

/// A delete waits `SYNC_DELETE_GRACE` in the outbox: a push meanwhile leaves the Airtable
/// record alone, the lead says until when, and a restore inside the grace is a real undo:
/// nothing is sent, the record keeps its id, and changes queued before the delete still go out.
#[tokio::test]
async fn a_delete_waits_its_grace_and_a_restore_inside_it_is_an_undo_airtable_never_sees() {
    let s = Synced::start_configured(5, |c| {
        c.sync_delete_grace = Duration::from_secs(3600);
    })
    .await;
    s.run(RunKind::FullPull).await;
    let ids = s.some_remote_ids(2);
    let (plain, edited) = (&ids[0], &ids[1]);

    delete(&s, plain).await;
    let lead = s
        .app
        .ok(
            "query($id: ID!) { lead(id: $id) { deletedAt deletePushedAfter } }",
            json!({"id": plain}),
        )
        .await["lead"]
        .clone();
    let after =
        chrono::DateTime::parse_from_rfc3339(lead["deletePushedAfter"].as_str().unwrap()).unwrap();
    let wait = after.signed_duration_since(chrono::Utc::now());
    assert!(
        wait > chrono::Duration::minutes(59),
        "the delete is due after the grace: {lead}"
    );
    s.sim.state.clear_log();
    s.run(RunKind::Push).await;
    assert_eq!(
        s.api_requests(&["delete"]),
        0,
        "a delete inside its grace is not pushed"
    );
    assert!(s.sim.state.record(plain).is_some());

    let restored = restore(&s, plain).await;
    assert_eq!(restored["airtableId"], plain.as_str());
    assert_eq!(restored["syncState"], "SYNCED");
    assert!(
        restored["events"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{restored}"
    );
    assert_eq!(
        s.app.count("SELECT COUNT(*) AS n FROM outbox").await,
        0,
        "nothing is left to send"
    );

    // A change queued before the delete still goes out after the undo, and only it.
    s.app
        .ok(
            "mutation($id: ID!) { updateLead(id: $id, patch: {title: \"Head of Ops\"}) { id } }",
            json!({"id": edited}),
        )
        .await;
    delete(&s, edited).await;
    let restored = restore(&s, edited).await;
    assert_eq!(restored["syncState"], "PENDING");
    s.sim.state.clear_log();
    let run = s.run(RunKind::Push).await;
    assert_eq!(run.pushed, 1);
    assert_eq!(s.api_requests(&["delete"]), 0);
    assert_eq!(s.remote(edited)["Title"], "Head of Ops");
    assert_eq!(
        s.sim.state.record_count(),
        5,
        "no record deleted or created"
    );
}

/// After the grace the delete reaches Airtable; restoring then creates a new record (Airtable
/// has no undelete), and the lead's history says so.
#[tokio::test]
async fn a_restore_after_the_pushed_delete_creates_a_new_record_and_says_so() {
    let s = Synced::start(3, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let id = s.some_remote_ids(1).remove(0);
    let local_id = s.local(&id).await["id"].as_str().unwrap().to_string();
    delete(&s, &id).await;
    s.run(RunKind::Push).await;
    assert!(s.sim.state.record(&id).is_none(), "deleted in Airtable");

    let restored = restore(&s, &local_id).await;
    assert!(restored["airtableId"].is_null());
    assert!(
        restored["events"][0]["message"]
            .as_str()
            .unwrap()
            .contains("new record"),
        "{restored}"
    );
    s.run(RunKind::Push).await;
    let lead = s
        .app
        .ok(
            "query($id: ID!) { lead(id: $id) { airtableId syncState } }",
            json!({"id": local_id}),
        )
        .await["lead"]
        .clone();
    let new_id = lead["airtableId"].as_str().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(lead["syncState"], "SYNCED");
    assert_eq!(s.sim.state.record_count(), 3);
}
