//! `leadcache import`: legacy JSON lead files with invalid records, duplicates inside the file
//! and of existing leads, `import_log`, rollback of a failed file, `--dry-run`.

use std::path::PathBuf;

use leadcache::transfer::legacy::{self, FileReport};
use serde_json::{Value, json};

use crate::support::TestApp;

fn legacy_records() -> Value {
    json!([
        {"name": "Jane Doe", "email": "jane@acme.example", "company": "Acme Inc", "position": "CTO",
         "notes": "met at the fair", "favourite_colour": "blue"},
        {"fullName": "Jane Doe", "email": "JANE@acme.example", "phone": "+1 555 0100"},
        {"full_name": "No Mail", "email": "not-an-email"},
        {"company": "Nameless"},
        "just a string",
        {"full_name": "Existing Person", "linkedinUrl": "linkedin.com/in/existing", "title": "VP"},
        {"name": "Bob Stone", "status": "Contacted", "score": "77", "linkedin": "https://www.linkedin.com/in/bob-stone"}
    ])
}

async fn run(app: &TestApp, paths: Vec<PathBuf>, dry_run: bool) -> Vec<FileReport> {
    let options = legacy::Options {
        dry_run,
        ..Default::default()
    };
    run_with(app, paths, options).await
}

async fn run_with(app: &TestApp, paths: Vec<PathBuf>, options: legacy::Options) -> Vec<FileReport> {
    let db = app.db().clone();
    let ctx = app.state().write_ctx("import");
    tokio::task::spawn_blocking(move || {
        let mut conn = db.conn().unwrap();
        legacy::import(
            &mut conn,
            &ctx,
            &paths,
            options,
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap()
    })
    .await
    .unwrap()
}

async fn tables(app: &TestApp) -> [i64; 5] {
    [
        app.count("SELECT COUNT(*) AS n FROM leads").await,
        app.count("SELECT COUNT(*) AS n FROM lead_events").await,
        app.count("SELECT COUNT(*) AS n FROM outbox").await,
        app.count("SELECT COUNT(*) AS n FROM import_log").await,
        app.count("SELECT COALESCE(SUM(version), 0) AS n FROM leads")
            .await,
    ]
}

#[tokio::test]
async fn a_legacy_file_is_validated_merged_and_logged() {
    let app = TestApp::start().await;
    let existing = app.create_lead(json!({"fullName": "Existing P.", "linkedinUrl": "https://www.linkedin.com/in/Existing/"})).await;
    let file = app.dir.path().join("leads.json");
    std::fs::write(&file, legacy_records().to_string()).unwrap();

    // A dry run gives the same counts and writes nothing.
    let before = tables(&app).await;
    let dry = run(&app, vec![file.clone()], true).await;
    assert_eq!(tables(&app).await, before, "--dry-run wrote something");

    let reports = run(&app, vec![file.clone()], false).await;
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(
        (r.records, r.imported, r.merged, r.failed, r.status),
        (7, 2, 2, 3, "partial")
    );
    assert_eq!(
        (
            dry[0].imported,
            dry[0].merged,
            dry[0].failed,
            &dry[0].errors
        ),
        (2, 2, 3, &r.errors)
    );
    let errors: Vec<(usize, Option<&str>)> = r
        .errors
        .iter()
        .map(|e| (e.index, e.field.as_deref()))
        .collect();
    assert_eq!(
        errors,
        [(2, Some("email")), (3, Some("full_name")), (4, None)]
    );

    let log = app
        .ok("{ leads(filter: {}, first: 10) { totalCount } }", json!({}))
        .await;
    assert_eq!(
        log["leads"]["totalCount"], 3,
        "Jane, Bob and the existing lead"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM import_log WHERE imported = 2 AND merged = 2 AND failed = 3 AND status = 'partial' AND dry_run = 0").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM import_log WHERE errors ->> '$[0].field' = 'email' AND errors ->> '$[0].index' = 2").await, 1);

    let q = "query($q: String!) { searchLeads(query: $q) { id fullName phone title status score extra events { kind message } } }";
    let jane = app.ok(q, json!({"q": "Jane"})).await["searchLeads"][0].clone();
    assert_eq!(
        jane["phone"], "+1 555 0100",
        "the duplicate inside the file filled the phone"
    );
    assert_eq!(jane["title"], "CTO");
    assert_eq!(jane["extra"], json!({"favourite_colour": "blue"}));
    let kinds: Vec<&str> = jane["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"note") && kinds.contains(&"merged"),
        "{kinds:?}"
    );
    let bob = app.ok(q, json!({"q": "Bob"})).await["searchLeads"][0].clone();
    assert_eq!(
        (bob["status"].clone(), bob["score"].clone()),
        (json!("contacted"), json!(77.0))
    );
    let existing_now = app
        .ok(
            "query($id: ID!) { lead(id: $id) { title } }",
            json!({"id": existing["id"]}),
        )
        .await;
    assert_eq!(
        existing_now["lead"]["title"], "VP",
        "merged into the existing lead by LinkedIn"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM outbox WHERE operation = 'create'")
            .await,
        3,
        "imports queue for push"
    );

    // Importing the same file again merges everything that is valid.
    let again = run(&app, vec![file], false).await;
    assert_eq!(
        (again[0].imported, again[0].merged, again[0].failed),
        (0, 4, 3)
    );
}

#[tokio::test]
async fn a_folder_of_files_and_a_failed_file_rolls_back_whole() {
    let app = TestApp::start().await;
    let folder = app.dir.path().join("legacy");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("a.json"),
        json!([{"name": "Ann A"}, {"name": "Boom"}, {"name": "Cy C"}]).to_string(),
    )
    .unwrap();
    std::fs::write(
        folder.join("b.json"),
        json!([{"name": "Dee D"}]).to_string(),
    )
    .unwrap();
    std::fs::write(folder.join("c.json"), "{not json").unwrap();
    std::fs::write(folder.join("notes.txt"), "ignored").unwrap();
    // A database error half way through a.json.
    app.execute("CREATE TRIGGER boom BEFORE INSERT ON leads WHEN new.full_name = 'Boom' BEGIN SELECT RAISE(ABORT, 'boom'); END;")
        .await;
    let reports = run(&app, vec![folder], false).await;
    let summary: Vec<(String, &str, usize)> = reports
        .iter()
        .map(|r| {
            (
                r.file.file_name().unwrap().to_string_lossy().into_owned(),
                r.status,
                r.imported,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a.json".into(), "failed", 0),
            ("b.json".into(), "ok", 1),
            ("c.json".into(), "failed", 0)
        ]
    );
    assert!(
        reports[0].fatal.as_deref().unwrap().contains("boom"),
        "{:?}",
        reports[0].fatal
    );
    assert!(
        reports[2]
            .fatal
            .as_deref()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads").await,
        1,
        "a.json rolled back whole"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM lead_events").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM import_log WHERE status = 'failed' AND imported = 0")
            .await,
        2
    );
}

#[tokio::test]
async fn the_command_line_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let file = dir.path().join("leads.json");
    std::fs::write(&file, legacy_records().to_string()).unwrap();
    let run = |dry: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_leadcache"));
        cmd.current_dir(dir.path())
            .env("LEAD_DATABASE_PATH", &db)
            .arg("import")
            .arg(&file);
        if dry {
            cmd.arg("--dry-run");
        }
        cmd.output().unwrap()
    };
    let out = run(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dry run, nothing written") && text.contains("3 imported, 1 merged"),
        "{text}"
    );
    assert!(text.contains("#2: email:"), "{text}");
    let count = |sql: &str| -> i64 {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM leads") + count("SELECT COUNT(*) FROM import_log"),
        0
    );
    let out = run(false);
    assert!(out.status.success());
    assert_eq!(count("SELECT COUNT(*) FROM leads"), 3);
    assert_eq!(count("SELECT COUNT(*) FROM import_log"), 1);
}

/// A file at least as large as the table (and over `bulk::READ_KEYS_FROM` records) is imported
/// with index upkeep deferred: a dry run and a failure half way leave the schema exactly as it
/// was, and a real run leaves every index, trigger and the full-text index whole.
#[tokio::test]
async fn a_large_import_into_a_small_table_defers_index_upkeep_and_rolls_back_whole() {
    let app = TestApp::start().await;
    app.create_lead(json!({"fullName": "Ada Stored", "email": "person.7@big.example"}))
        .await;
    let n = leadcache::leads::bulk::READ_KEYS_FROM + 100;
    let records: Vec<Value> = (0..n)
        .map(|i| match i {
            // Invalid, a duplicate of an earlier record, and one the trigger below rejects.
            10 => json!({"name": "Bad Mail", "email": "nope"}),
            20 => json!({"name": "Person 3 Again", "email": "PERSON.3@big.example"}),
            _ => json!({"name": format!("Person {i}"), "email": format!("person.{i}@big.example"),
                        "title": "CTO"}),
        })
        .collect();
    let file = app.dir.path().join("big.json");
    std::fs::write(&file, Value::Array(records).to_string()).unwrap();
    let schema_before = app.schema().await;
    let tables_before = tables(&app).await;

    let dry = run(&app, vec![file.clone()], true).await;
    assert_eq!(
        (dry[0].imported, dry[0].merged, dry[0].failed),
        (n - 3, 2, 1),
        "{:?}",
        dry[0].errors
    );
    assert_eq!(
        app.schema().await,
        schema_before,
        "a dry run changed the schema"
    );
    assert_eq!(
        tables(&app).await,
        tables_before,
        "a dry run wrote something"
    );

    // A failure half way rolls back the schema as well. The trigger only fires while
    // `leads_created_at` is dropped, so the import fails here only if it deferred index upkeep.
    app.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON leads WHEN new.full_name = 'Person 1500' \
                 AND NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'leads_created_at') \
                 BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .await;
    let with_boom = app.schema().await;
    let failed = run(&app, vec![file.clone()], false).await;
    assert!(
        failed[0]
            .fatal
            .as_deref()
            .is_some_and(|f| f.contains("boom")),
        "{:?}",
        failed[0].fatal
    );
    assert_eq!(
        app.schema().await,
        with_boom,
        "a failed import changed the schema"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads").await,
        1,
        "the failed file left leads behind"
    );
    app.execute("DROP TRIGGER boom").await;

    let done = run(&app, vec![file], false).await;
    assert_eq!(
        (
            done[0].imported,
            done[0].merged,
            done[0].failed,
            done[0].status
        ),
        (n - 3, 2, 1, "partial")
    );
    assert_eq!(
        app.schema().await,
        schema_before,
        "indexes or triggers missing"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads").await,
        i64::try_from(n - 2).unwrap()
    );
    // Fails with "database disk image is malformed" when the index misses rows of the table.
    app.execute("INSERT INTO leads_fts (leads_fts, rank) VALUES ('integrity-check', 1)")
        .await;
    let q = "query($q: String!) { searchLeads(query: $q) { fullName email } }";
    let found = app.ok(q, json!({"q": "Person 2049"})).await;
    assert_eq!(
        found["searchLeads"][0]["fullName"], "Person 2049",
        "{found}"
    );
    let ada = app.ok(q, json!({"q": "Ada Stored"})).await;
    assert_eq!(
        ada["searchLeads"][0]["fullName"], "Ada Stored",
        "the stored lead merged with record 7 is still found: {ada}"
    );
    let new = app
        .ok(
            "{ leads(filter: {status: [\"new\"]}, first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        new["leads"]["totalCount"],
        i64::try_from(n - 2).unwrap(),
        "the status index counts every lead"
    );
}

/// The same legacy file imported twice: the second import stores nothing new (no lead, event,
/// note, outbox row or version bump; only its own `import_log` row), and says every record was
/// merged.
#[tokio::test]
async fn importing_the_same_file_twice_changes_nothing_the_second_time() {
    let app = TestApp::start().await;
    let file = app.dir.path().join("leads.json");
    let records = json!([
        {"full_name": "Jane Doe", "email": "jane@acme.example", "title": "CTO", "notes": ["met at a fair", "wants a demo"]},
        {"fullName": "Jane Doe", "email": "JANE@acme.example", "title": "CEO", "phone": "+1 555 0100"},
        {"name": "Bob Stone", "company": "Stone Works", "notes": "called back"}
    ]);
    std::fs::write(&file, records.to_string()).unwrap();
    let first = run(&app, vec![file.clone()], false).await;
    assert_eq!((first[0].imported, first[0].merged), (2, 1));
    let after_first = tables(&app).await;
    let notes = app
        .count("SELECT COUNT(*) AS n FROM lead_events WHERE kind = 'note'")
        .await;
    assert_eq!(notes, 3);

    let second = run(&app, vec![file.clone()], false).await;
    assert_eq!(
        (second[0].imported, second[0].merged, second[0].failed),
        (0, 3, 0)
    );
    let after_second = tables(&app).await;
    assert_eq!(
        after_second[3],
        after_first[3] + 1,
        "one more import_log row"
    );
    assert_eq!(
        [
            after_second[0],
            after_second[1],
            after_second[2],
            after_second[4]
        ],
        [
            after_first[0],
            after_first[1],
            after_first[2],
            after_first[4]
        ],
        "leads, events, outbox rows and versions are as after the first import"
    );
}

/// `--on-duplicate`: `create` stores a duplicate as a lead of its own, `fail` skips it as a
/// failed record naming the lead it duplicates (and stores the rest).
#[tokio::test]
async fn on_duplicate_create_and_fail_in_an_import() {
    let app = TestApp::start().await;
    let existing = app
        .create_lead(json!({"fullName": "Jane Doe", "email": "jane@acme.example"}))
        .await;
    let file = app.dir.path().join("leads.json");
    std::fs::write(
        &file,
        json!([
            {"full_name": "Jane D.", "email": "jane@acme.example", "phone": "+1 555 0100"},
            {"full_name": "Bob Stone"}
        ])
        .to_string(),
    )
    .unwrap();
    let import = |on_duplicate| {
        let options = legacy::Options {
            dry_run: false,
            on_duplicate,
        };
        run_with(&app, vec![file.clone()], options)
    };
    use leadcache::leads::merge::OnDuplicate;
    let failed = import(OnDuplicate::Fail).await;
    let r = &failed[0];
    assert_eq!((r.imported, r.merged, r.failed), (1, 0, 1));
    assert!(
        r.errors[0]
            .message
            .contains(existing["id"].as_str().unwrap())
            && r.errors[0].message.contains("EMAIL"),
        "{:?}",
        r.errors
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads WHERE phone IS NOT NULL")
            .await,
        0,
        "the refused duplicate filled nothing"
    );
    let created = import(OnDuplicate::Create).await;
    assert_eq!((created[0].imported, created[0].merged), (2, 0));
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads WHERE email_key = 'jane@acme.example'")
            .await,
        2
    );
}
