//! Backups under load, restore round trips, the server lock, corruption at start-up, migrations
//! that fail.

use std::path::{Path, PathBuf};

use diesel::prelude::*;
use leadcache::backup::{self, Reason};
use leadcache::config::Config;
use leadcache::db::Db;
use leadcache::db::models::{Lead, LeadEvent, OutboxRow};
use leadcache::db::schema::{lead_events, leads, outbox};
use leadcache::state::Mode;
use serde_json::json;

use crate::support::TestApp;

fn integrity_ok(path: &Path) -> bool {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap()
        == "ok"
}

fn ids_in(path: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut s = c.prepare("SELECT id FROM leads").unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_eight_writers_write_is_complete_and_checked() {
    let app = TestApp::start().await;
    for i in 0..20 {
        app.create_lead(json!({"fullName": format!("Before {i}")}))
            .await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (db, ctx, stop) = (
            app.db().clone(),
            app.state().write_ctx("writer"),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 5 {
                let ctx = ctx.clone();
                let name = format!("Writer {w} lead {n}");
                db.write(move |c| {
                    let mut m = serde_json::Map::new();
                    m.insert("full_name".into(), json!(name));
                    leadcache::leads::store::create(c, &ctx, &m)
                })
                .await
                .unwrap();
                n += 1;
            }
            n
        }));
    }
    // Let the writers get going, then note what is committed and back up.
    while app.count("SELECT COUNT(*) AS n FROM leads").await < 60 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let committed: Vec<String> = app
        .db()
        .run(|c| Ok(leads::table.select(leads::id).load::<String>(c)?))
        .await
        .unwrap();
    let data = app
        .ok(
            "mutation { backupNow { file reason outcome leadCount sizeBytes } }",
            json!({}),
        )
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written: i32 = futures::future::join_all(writers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert!(written >= 40);

    let b = &data["backupNow"];
    assert_eq!(b["outcome"], "ok");
    assert_eq!(b["reason"], "manual");
    let file = app
        .dir
        .path()
        .join("backups")
        .join(b["file"].as_str().unwrap());
    assert!(
        b["file"].as_str().unwrap().starts_with("leads-") && file.is_file(),
        "{b}"
    );
    assert!(integrity_ok(&file));
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&app.dir.path().join("backups")), 0o700);
    let in_backup = ids_in(&file);
    assert_eq!(b["leadCount"].as_i64().unwrap(), in_backup.len() as i64);
    for id in &committed {
        assert!(
            in_backup.contains(id),
            "lead {id}, committed before the backup, is missing from it"
        );
    }
    assert_eq!(
        b["sizeBytes"].as_i64().unwrap(),
        std::fs::metadata(&file).unwrap().len() as i64
    );
    let listed = app
        .ok("{ backups { file outcome reason } }", json!({}))
        .await;
    assert_eq!(listed["backups"][0]["file"], b["file"]);
}

#[tokio::test]
async fn backup_now_needs_the_admin_role() {
    let app = TestApp::start().await;
    let secret = app
        .db()
        .run(|c| Ok(leadcache::tokens::create(c, "reader", leadcache::auth::Role::Write)?.0))
        .await
        .unwrap();
    let app = TestApp {
        token: Some(secret),
        ..app
    };
    app.err("mutation { backupNow { file } }", json!({}), "FORBIDDEN")
        .await;
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM backups").await, 0);
}

type EventKey = (
    String,
    String,
    String,
    String,
    Option<String>,
    chrono::NaiveDateTime,
);

fn snapshot(conn: &mut SqliteConnection) -> (Vec<Lead>, Vec<EventKey>, Vec<String>) {
    let l = leads::table
        .order(leads::id)
        .select(Lead::as_select())
        .load(conn)
        .unwrap();
    let e: Vec<LeadEvent> = lead_events::table
        .order(lead_events::id)
        .select(LeadEvent::as_select())
        .load(conn)
        .unwrap();
    let e = e
        .into_iter()
        .map(|e| (e.lead_id, e.kind, e.actor, e.changes, e.message, e.at))
        .collect();
    let o: Vec<OutboxRow> = outbox::table
        .order(outbox::lead_id)
        .select(OutboxRow::as_select())
        .load(conn)
        .unwrap();
    (l, e, o.iter().map(|r| format!("{r:?}")).collect())
}

#[tokio::test]
async fn restore_round_trip_keeps_every_lead_event_and_pending_outbox_row() {
    let app = TestApp::start_mode(Mode::Airtable, |_| {}).await;
    let a = app
        .create_lead(json!({"fullName": "Ada", "email": "ada@example.com", "score": 7.5}))
        .await;
    let b = app
        .create_lead(json!({"fullName": "Bob", "extra": {"Tags": ["x"]}}))
        .await;
    app.ok(
        "mutation($id: ID!) { updateLead(id: $id, patch: {status: \"contacted\"}) { version } }",
        json!({"id": a["id"]}),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { deleteLead(id: $id) { id } }",
        json!({"id": b["id"]}),
    )
    .await;
    app.db()
        .run(|c| {
            leadcache::db::meta::set(
                c,
                leadcache::db::meta::PULL_WATERMARK,
                "2026-11-20T00:00:00.000Z",
            )
        })
        .await
        .unwrap();
    let before = app.db().run(|c| Ok(snapshot(c))).await.unwrap();
    assert_eq!(before.2.len(), 2, "both leads have pending outbox rows");
    let data = app.ok("mutation { backupNow { file } }", json!({})).await;
    let file = app
        .dir
        .path()
        .join("backups")
        .join(data["backupNow"]["file"].as_str().unwrap());
    app.create_lead(json!({"fullName": "After the backup"}))
        .await;

    let TestApp { dir, running, .. } = app;
    let mut config = Config::for_database(dir.path().join("leads.db"));
    config.backup_dir = dir.path().join("backups");
    running.stop().await.unwrap();

    // A server holding the database blocks the restore, and says why.
    let lock = backup::lock::acquire(&config.database_path).unwrap();
    let err = backup::restore::restore(&config, &file, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Stop it first") && err.contains("WAL"),
        "{err}"
    );
    drop(lock);

    let done = backup::restore::restore(&config, &file, false).unwrap();
    let previous = done.previous.unwrap();
    assert!(
        ids_in(&previous).len() == 3,
        "the replaced database was backed up first"
    );
    let db = Db::open(&config.database_path).unwrap();
    let mut conn = db.conn().unwrap();
    let after = snapshot(&mut conn);
    assert_eq!(after.0, before.0, "every lead, every column");
    assert_eq!(after.1, before.1, "every event");
    assert_eq!(after.2, before.2, "every outbox row");
    use leadcache::db::meta;
    assert_eq!(
        meta::get(&mut conn, meta::PULL_WATERMARK)
            .unwrap()
            .as_deref(),
        Some("2026-11-20T00:00:00.000Z")
    );
    assert!(meta::get(&mut conn, "restored_at").unwrap().is_some());
    let reasons: Vec<String> = leadcache::db::schema::backups::table
        .select(leadcache::db::schema::backups::reason)
        .load(&mut conn)
        .unwrap();
    assert!(reasons.contains(&"pre-restore".to_string()), "{reasons:?}");
}

#[tokio::test]
async fn restore_refuses_files_that_are_not_leadcache_databases() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_database(dir.path().join("leads.db"));
    let text = dir.path().join("notes.db");
    std::fs::write(&text, "hello").unwrap();
    assert!(backup::restore::restore(&config, &text, false).is_err());
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = backup::restore::restore(&config, &other, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a leadcache database"), "{err}");
    assert!(!config.database_path.exists(), "nothing was touched");
}

fn seeded(dir: &Path, n: usize) -> Config {
    let mut config = Config::for_database(dir.join("leads.db"));
    config.backup_dir = dir.join("backups");
    let db = leadcache::app::open_database(&config).unwrap();
    leadcache::seed::seed(&mut db.conn().unwrap(), n, 1, false).unwrap();
    config
}

#[test]
fn a_corrupted_database_stops_start_up_with_the_restore_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = seeded(dir.path(), 2000);
    let db = Db::open(&config.database_path).unwrap();
    let (taken, _) = backup::take(&db, &config.backup_dir, Reason::Manual, 5).unwrap();
    drop(db); // the last connection checkpoints the WAL into the file
    let bytes = std::fs::read(&config.database_path).unwrap();
    let page = 4096;
    let middle = (bytes.len() / page / 2) * page;
    let mut damaged = bytes.clone();
    for b in &mut damaged[middle..middle + 64] {
        *b = !*b;
    }
    std::fs::write(&config.database_path, &damaged).unwrap();

    let err = leadcache::app::open_database(&config)
        .expect_err("start-up must refuse a damaged database");
    let msg = format!("{err:#}");
    assert!(msg.contains("damaged"), "{msg}");
    assert!(
        msg.contains(&format!("leadcache restore {}", taken.path.display())),
        "{msg}"
    );
    let report = backup::check::full_check(&config.database_path);
    assert!(!report.ok(), "{report}");

    backup::restore::restore(&config, &taken.path, false).unwrap();
    leadcache::app::open_database(&config).expect("the restored database starts");
    assert!(backup::check::full_check(&config.database_path).ok());
}

#[test]
fn check_reports_outbox_and_history_problems() {
    let dir = tempfile::tempdir().unwrap();
    let config = seeded(dir.path(), 10);
    assert!(backup::check::full_check(&config.database_path).ok());
    let c = rusqlite::Connection::open(&config.database_path).unwrap();
    c.execute_batch(
        "PRAGMA foreign_keys = OFF; UPDATE leads SET sync_state = 'pending' WHERE rid = 1; \
         DELETE FROM outbox WHERE lead_id = (SELECT id FROM leads WHERE rid = 1); \
         INSERT INTO lead_events (lead_id, kind, actor, changes, at) VALUES ('gone', 'note', 'x', '{}', '2026-01-01');",
    )
    .unwrap();
    let report = backup::check::full_check(&config.database_path);
    let failed: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| !f.ok)
        .map(|f| f.check)
        .collect();
    assert!(failed.contains(&"pending leads in the outbox"), "{report}");
    assert!(failed.contains(&"events without a lead"), "{report}");
    assert!(failed.contains(&"foreign_key_check"), "{report}");
}

#[test]
fn check_finds_stale_stored_stays_and_repair_rebuilds_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = seeded(dir.path(), 300);
    assert!(backup::check::full_check(&config.database_path).ok());
    let c = rusqlite::Connection::open(&config.database_path).unwrap();
    // Stays edited by hand: one lead loses its stays, another gets a wrong length.
    c.execute_batch(
        "DELETE FROM lead_stays WHERE lead_id = (SELECT id FROM leads WHERE rid = 1); \
         UPDATE lead_stays SET days = 999 WHERE id = (SELECT MIN(id) FROM lead_stays WHERE days IS NOT NULL);",
    )
    .unwrap();
    let counts = |c: &rusqlite::Connection| {
        c.query_row(
            "SELECT (SELECT COUNT(*) FROM leads), (SELECT COUNT(*) FROM lead_events)",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .unwrap()
    };
    let before = counts(&c);
    let report = backup::check::full_check(&config.database_path);
    let failed: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| !f.ok)
        .map(|f| f.check)
        .collect();
    assert_eq!(failed, ["stored pipeline stays"], "{report}");

    backup::cli::check(&config, true).unwrap();
    assert!(backup::check::full_check(&config.database_path).ok());
    assert_eq!(counts(&c), before, "repair changes derived data only");
}

fn migrations_with(dir: &Path, broken_sql: &str) -> PathBuf {
    let root = dir.join("migrations");
    let initial =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite/2026-11-24-000001_initial");
    let to = root.join("2026-11-24-000001_initial");
    std::fs::create_dir_all(&to).unwrap();
    for f in ["up.sql", "down.sql"] {
        std::fs::copy(initial.join(f), to.join(f)).unwrap();
    }
    let broken = root.join("2026-12-01-000001_add_broken_column");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("up.sql"), broken_sql).unwrap();
    std::fs::write(broken.join("down.sql"), "SELECT 1;").unwrap();
    root
}

#[test]
fn a_failing_migration_leaves_the_file_byte_identical_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let config = seeded(dir.path(), 50);
    let before = std::fs::read(&config.database_path).unwrap();
    assert!(!before.is_empty());
    let root = migrations_with(
        dir.path(),
        "ALTER TABLE leads ADD COLUMN broken TEXT;\nUPDATE leads SET broken = 'x';\nINSERT INTO no_such_table VALUES (1);\n",
    );
    let db = Db::open(&config.database_path).unwrap();
    let source = diesel_migrations::FileBasedMigrations::from_path(&root).unwrap();
    let err = db.migrate_from(source).unwrap_err().to_string();
    assert!(
        err.contains("2026-12-01-000001_add_broken_column") && err.contains("no_such_table"),
        "{err}"
    );
    drop(db);
    let after = std::fs::read(&config.database_path).unwrap();
    assert!(before == after, "the database file changed");
    // r2d2 closes pooled connections after the pool is dropped, asynchronously: give the last
    // close (which removes the WAL) a moment on a loaded machine.
    let wal = config.database_path.with_file_name("leads.db-wal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!wal.exists());
}

#[test]
fn pending_migrations_on_a_database_with_data_are_preceded_by_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let config = seeded(dir.path(), 5);
    // Make the initial migration look pending on a database that has data and history.
    let c = rusqlite::Connection::open(&config.database_path).unwrap();
    c.execute_batch(
        "DELETE FROM __diesel_schema_migrations; INSERT INTO __diesel_schema_migrations (version) VALUES ('20200101000000');",
    )
    .unwrap();
    drop(c);
    let err =
        leadcache::app::open_database(&config).expect_err("re-running the initial migration fails");
    assert!(
        format!("{err:#}").contains("2026-11-24-000001_initial"),
        "{err:#}"
    );
    let files = backup::files(&config.backup_dir);
    assert_eq!(files.len(), 1, "a pre-migration backup was taken first");
    assert_eq!(ids_in(&files[0]).len(), 5);
    let c = rusqlite::Connection::open(&config.database_path).unwrap();
    let reason: String = c
        .query_row("SELECT reason FROM backups", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reason, "pre-migration");

    // A brand-new database is not backed up.
    let fresh = tempfile::tempdir().unwrap();
    let mut config = Config::for_database(fresh.path().join("leads.db"));
    config.backup_dir = fresh.path().join("backups");
    leadcache::app::open_database(&config).unwrap();
    assert!(backup::files(&config.backup_dir).is_empty());
}
