//! Text that is stored, exported and printed (issue 15, items 13-15): CSV cells that start like
//! a formula are neutralised over HTTP and by the command line, `export -o` files are 0600,
//! control and bidi characters are refused at every entry point with nothing stored, and the
//! command line's messages name flags and variables, keep Unicode and say a cause once.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use leadcache::transfer::export::CSV_COLUMNS;
use serde_json::{Value, json};

use crate::support::TestApp;

/// Companies a spreadsheet would run as formulas (or after a leading tab / CR).
const FORMULAS: &[&str] = &[
    "=HYPERLINK(\"http://x\")",
    "+1",
    "@SUM(A1)",
    "-2+3",
    "\tx",
    "\rx",
];

/// One person per formula (different names: no two leads are duplicates).
const NAMES: &[&str] = &[
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Barbara Liskov",
];

/// Leads whose company is each of [`FORMULAS`], one with a negative score, one plain. Tab and CR
/// are refused by the API, so those two are written as a pull from Airtable would (stored as
/// they come).
async fn formula_leads(app: &TestApp) {
    for (i, company) in FORMULAS.iter().enumerate() {
        let stored = if company.starts_with(['\t', '\r']) {
            format!("Placeholder {i}")
        } else {
            company.to_string()
        };
        app.create_lead(json!({"fullName": NAMES[i], "company": stored, "score": 1}))
            .await;
    }
    app.create_lead(
        json!({"fullName": "Negative", "company": "Plain Co", "score": -5, "phone": "+1 555 0100"}),
    )
    .await;
    app.execute(
        "UPDATE leads SET company = char(9) || 'x' WHERE full_name = 'Edsger Dijkstra'; \
         UPDATE leads SET company = char(13) || 'x' WHERE full_name = 'Barbara Liskov';",
    )
    .await;
}

/// (full_name, company, score, phone) of every row of a CSV export.
fn rows(csv_bytes: &[u8]) -> Vec<(String, String, String, String)> {
    let mut r = csv::Reader::from_reader(csv_bytes);
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, CSV_COLUMNS);
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    r.records()
        .map(|x| {
            let x = x.unwrap();
            (
                x[col("full_name")].to_string(),
                x[col("company")].to_string(),
                x[col("score")].to_string(),
                x[col("phone")].to_string(),
            )
        })
        .collect()
}

fn assert_neutralised(csv_bytes: &[u8]) {
    let rows = rows(csv_bytes);
    assert_eq!(rows.len(), FORMULAS.len() + 1);
    for (i, formula) in FORMULAS.iter().enumerate() {
        let (_, company, score, _) = rows.iter().find(|r| r.0 == NAMES[i]).unwrap();
        assert_eq!(company, &format!("'{formula}"), "company {formula:?}");
        assert_eq!(score, "1");
    }
    let (_, company, score, phone) = rows.iter().find(|r| r.0 == "Negative").unwrap();
    assert_eq!(company, "Plain Co", "a plain cell is left alone");
    assert_eq!(score, "-5", "a negative score stays a number");
    assert_eq!(phone, "'+1 555 0100", "every text cell follows the rule");
}

fn leadcache(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadcache"));
    cmd.env_clear().current_dir(dir);
    cmd
}

/// `leadcache ARGS` under `umask` (through `sh`, so the test process's umask stays as it is).
fn leadcache_umask(dir: &Path, umask: &str, db: &Path, args: &[&str]) -> Output {
    let mut script = format!("umask {umask} && exec \"$0\"");
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_leadcache"))
        .args(args)
        .env_clear()
        .env("LEAD_DATABASE_PATH", db)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn csv_cells_that_start_like_a_formula_get_a_quote_over_http() {
    let app = TestApp::start().await;
    formula_leads(&app).await;
    let resp = app.get("/export/leads.csv").await;
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    assert!(!body.starts_with(b"\xEF\xBB\xBF"), "no BOM unless asked");
    assert_neutralised(&body);

    let bom = app.get("/export/leads.csv?bom=1").await;
    assert_eq!(bom.status(), 200);
    let bom = bom.bytes().await.unwrap();
    assert!(
        bom.starts_with(b"\xEF\xBB\xBFid,airtable_id,"),
        "BOM, then the header"
    );
    assert_neutralised(&bom[3..]);
    let filtered = app
        .get("/export/leads.csv?bom=true&company=Plain%20Co")
        .await
        .bytes()
        .await
        .unwrap();
    assert!(filtered.starts_with(b"\xEF\xBB\xBF"));
    assert_eq!(rows(&filtered[3..]).len(), 1, "bom goes with the filters");

    let bad = app.get("/export/leads.csv?bom=maybe").await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("bom"),
        "{body}"
    );
}

#[tokio::test]
async fn the_command_line_export_neutralises_formulas_adds_a_bom_and_writes_0600() {
    let app = TestApp::start().await;
    formula_leads(&app).await;
    let db = app.dir.path().join("leads.db");
    let work = tempfile::tempdir().unwrap();

    for umask in ["022", "000"] {
        let file = work.path().join(format!("leads-{umask}.csv"));
        let out = leadcache_umask(
            work.path(),
            umask,
            &db,
            &["export", "--format", "csv", "-o", file.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(mode(&file), 0o600, "umask {umask}: the export is private");
        assert_neutralised(&std::fs::read(&file).unwrap());
    }

    // A file that exists already (0644) is narrowed to 0600 as it is overwritten.
    let old = work.path().join("old.csv");
    std::fs::write(&old, "stale").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = leadcache_umask(
        work.path(),
        "022",
        &db,
        &["export", "--bom", "-o", old.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&old), 0o600);
    let bytes = std::fs::read(&old).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBFid,"), "--bom");
    assert_neutralised(&bytes[3..]);

    // To standard output too.
    let out = leadcache(work.path())
        .env("LEAD_DATABASE_PATH", &db)
        .args(["export", "--format", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_neutralised(&out.stdout);

    let json = work.path().join("dump.json");
    let out = leadcache(work.path())
        .env("LEAD_DATABASE_PATH", &db)
        .args(["export", "--format", "json", "--bom", "-o"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--bom is for --format csv"),
        "{}",
        stderr(&out)
    );
    assert!(!json.exists(), "refused before anything is written");
}

/// Row counts of every table a refused write could have touched.
async fn counts(app: &TestApp) -> [i64; 7] {
    [
        app.count("SELECT COUNT(*) AS n FROM leads").await,
        app.count("SELECT COUNT(*) AS n FROM lead_events").await,
        app.count("SELECT COUNT(*) AS n FROM outbox").await,
        app.count("SELECT COUNT(*) AS n FROM enrichments").await,
        app.count("SELECT COUNT(*) AS n FROM campaigns").await,
        app.count("SELECT COUNT(*) AS n FROM campaign_leads").await,
        app.count("SELECT COALESCE(SUM(version), 0) AS n FROM leads")
            .await,
    ]
}

/// NUL, ESC and a right-to-left override.
const BAD: &[char] = &['\u{0}', '\u{1b}', '\u{202e}'];

#[tokio::test]
async fn every_graphql_entry_point_refuses_control_and_bidi_characters_and_stores_nothing() {
    let app = TestApp::start().await;
    let lead = app
        .create_lead(json!({"fullName": "Dana Ruiz", "company": "Acme"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    let campaign = app
        .ok(
            "mutation { createCampaign(input: {name: \"Spring\"}) { id } }",
            json!({}),
        )
        .await["createCampaign"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.ok(
        "mutation($c: ID!, $l: [ID!]!) { addLeadsToCampaign(campaignId: $c, leadIds: $l) { id } }",
        json!({"c": campaign, "l": [id]}),
    )
    .await;
    let before = counts(&app).await;

    let create = "mutation($i: LeadInput!) { createLead(input: $i) { lead { id } } }";
    let create_many =
        "mutation($i: [LeadInput!]!) { createLeads(inputs: $i, allOrNothing: true) { created } }";
    let update = "mutation($id: ID!, $p: LeadPatch!) { updateLead(id: $id, patch: $p) { id } }";
    let note = "mutation($id: ID!, $t: String!) { addNote(leadId: $id, text: $t) { id } }";
    let enrich =
        "mutation($id: ID!, $i: EnrichmentInput!) { addEnrichment(leadId: $id, input: $i) { id } }";
    let new_campaign = "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }";
    let member = "mutation($c: ID!, $l: ID!, $p: CampaignLeadPatch!) { updateCampaignLead(campaignId: $c, leadId: $l, patch: $p) { status } }";

    for &c in BAD {
        let bad = format!("Mal{c}lory");
        let cases: Vec<(&str, Value, &str)> = vec![
            (create, json!({"i": {"fullName": bad}}), "full_name"),
            (
                create,
                json!({"i": {"fullName": "Ok", "company": bad}}),
                "company",
            ),
            (
                create,
                json!({"i": {"fullName": "Ok", "extra": {bad.clone(): 1}}}),
                "extra",
            ),
            (
                create,
                json!({"i": {"fullName": "Ok", "extra": {"Notes": bad}}}),
                "extra.Notes",
            ),
            (
                create_many,
                json!({"i": [{"fullName": "Fine"}, {"fullName": "Ok", "title": bad}]}),
                "inputs[1]",
            ),
            (
                update,
                json!({"id": id, "p": {"location": bad}}),
                "location",
            ),
            (
                update,
                json!({"id": id, "p": {"extra": {"k": [bad]}}}),
                "extra.k",
            ),
            (note, json!({"id": id, "t": bad}), "text"),
            (
                enrich,
                json!({"id": id, "i": {"provider": bad, "data": {}}}),
                "provider",
            ),
            (
                enrich,
                json!({"id": id, "i": {"provider": "web", "data": {bad.clone(): true}}}),
                "data",
            ),
            (
                enrich,
                json!({"id": id, "i": {"provider": "web", "data": {"bio": bad}}}),
                "data.bio",
            ),
            (new_campaign, json!({"i": {"name": bad}}), "name"),
            (
                new_campaign,
                json!({"i": {"name": "Autumn", "description": bad}}),
                "description",
            ),
            (
                member,
                json!({"c": campaign, "l": id, "p": {"subject": bad}}),
                "subject",
            ),
            (
                member,
                json!({"c": campaign, "l": id, "p": {"body": bad}}),
                "body",
            ),
        ];
        for (query, vars, field) in cases {
            let error = app.err(query, vars.clone(), "VALIDATION").await;
            assert_eq!(error["extensions"]["field"], field, "{vars}: {error}");
            let message = error["message"].as_str().unwrap();
            if field == "inputs[1]" {
                assert!(message.contains("invalid title: "), "{message}");
            }
            assert!(
                message.contains(&format!("U+{:04X}", c as u32)),
                "the message names the character: {message}"
            );
        }
    }
    assert_eq!(counts(&app).await, before, "a refused write stores nothing");

    // What stays allowed: line breaks (LF, CRLF) and tabs in multi-line texts, the directional
    // marks of ordinary right-to-left text.
    app.ok(
        note,
        json!({"id": id, "t": "line one\r\nline two\n\tindented"}),
    )
    .await;
    app.ok(
        member,
        json!({"c": campaign, "l": id, "p": {"subject": "Hi", "body": "Hello,\r\n\r\nBye"}}),
    )
    .await;
    app.create_lead(json!({"fullName": "שלום\u{200f} Cohen", "extra": {"Notes": "a\nb"}}))
        .await;
    // A single-line text refuses tab, newline and a CR, a multi-line one a lone CR.
    for (query, vars, field) in [
        (
            create,
            json!({"i": {"fullName": "Two\nLines"}}),
            "full_name",
        ),
        (
            update,
            json!({"id": id, "p": {"company": "Tab\tCo"}}),
            "company",
        ),
        (note, json!({"id": id, "t": "old\rmac"}), "text"),
    ] {
        let error = app.err(query, vars, "VALIDATION").await;
        assert_eq!(error["extensions"]["field"], field, "{error}");
    }
}

#[tokio::test]
async fn legacy_files_and_dumps_refuse_control_and_bidi_characters() {
    let app = TestApp::start().await;
    let file = app.dir.path().join("legacy.json");
    std::fs::write(
        &file,
        json!([
            {"name": "Nul Note", "notes": "call\u{0}back"},
            {"name": "Esc Co", "company": "Acme\u{1b}[31m"},
            {"name": "Bidi Key", "\u{202e}colour": "blue"},
            {"name": "Fine Person", "notes": "two\nlines"}
        ])
        .to_string(),
    )
    .unwrap();
    let before = counts(&app).await;
    let (db, ctx, paths) = (
        app.db().clone(),
        app.state().write_ctx("import"),
        vec![file.clone()],
    );
    let reports = tokio::task::spawn_blocking(move || {
        let mut conn = db.conn().unwrap();
        leadcache::transfer::legacy::import(
            &mut conn,
            &ctx,
            &paths,
            leadcache::transfer::legacy::Options::default(),
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap()
    })
    .await
    .unwrap();
    let r = &reports[0];
    assert_eq!((r.imported, r.failed), (1, 3), "{:?}", r.errors);
    let errors = format!("{:?}", r.errors);
    for needle in ["notes", "company", "extra", "U+0000", "U+001B", "U+202E"] {
        assert!(errors.contains(needle), "{needle}: {errors}");
    }
    let after = counts(&app).await;
    assert_eq!(after[0], before[0] + 1, "only the clean record is stored");

    // A dump: each lead carrying a bad character is counted as failed with the field, a
    // campaign with one is skipped; the clean lead goes in.
    let lead = |id: &str, name: &str, extra: Value| {
        json!({"id": id, "full_name": name, "status": "new", "verified": false, "enriched": false,
               "needs_enrichment": false, "created_at": "2026-11-01T00:00:00Z",
               "updated_at": "2026-11-01T00:00:00Z", "version": 1, "extra": extra,
               "sync_state": "local"})
    };
    let mut with_note = lead("d4", "Noted", json!({}));
    with_note["events"] = json!([{"kind": "note", "actor": "x", "changes": {}, "message": "hi\u{202e}", "at": "2026-11-01T00:00:00Z"}]);
    let leads = json!([
        lead("d1", "Nul\u{0}Name", json!({})),
        lead("d2", "Ok", json!({"\u{1b}k": 1})),
        lead("d3", "Clean Dump", json!({"k": "v"})),
        with_note
    ]);
    let campaigns = json!([{"id": "c9", "name": "Evil\u{202e}", "description": null,
                            "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z"}]);
    // The format key first, as leadcache writes it (`json!` sorts keys).
    let dump = format!(
        "{{\"format\":\"leadcache-dump\",\"version\":1,\"leads\":{leads},\"campaigns\":{campaigns}}}"
    );
    let dump_file = app.dir.path().join("dump.json");
    std::fs::write(&dump_file, dump).unwrap();
    let db = app.db().clone();
    let stats = tokio::task::spawn_blocking(move || {
        let mut conn = db.conn().unwrap();
        leadcache::transfer::dump::import(&mut conn, &dump_file).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        (stats.imported, stats.failed, stats.campaigns),
        (1, 3, 0),
        "{:?}",
        stats.errors
    );
    let errors = stats.errors.join("\n");
    for needle in [
        "lead d1: invalid full_name",
        "lead d2: invalid extra",
        "lead d4: invalid events.message",
        "campaign c9: invalid name",
    ] {
        assert!(errors.contains(needle), "{needle}: {errors}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads WHERE id LIKE 'd%'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM lead_events WHERE lead_id = 'd4'")
            .await,
        0,
        "nothing of a refused lead is stored"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM campaigns").await, 0);
}

/// `leadcache ARGS` in `dir` with an empty environment plus `env`.
fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = leadcache(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn command_line_errors_name_the_flag_keep_unicode_and_say_a_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let out = run(d, &[], &["export", "--created-after", "पन्ह"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("invalid --created-after: expected an RFC 3339 time or a date, got \"पन्ह\""),
        "{err}"
    );
    assert!(
        !err.contains("createdAfter") && !err.contains("\\u{"),
        "{err}"
    );
    for (flag, value) in [
        ("--needs-enrichment", "perhaps"),
        ("--score-min", "lots"),
        ("--sync-state", "LOST"),
        ("--updated-before", "soon"),
    ] {
        let err = stderr(&run(d, &[], &["export", flag, value]));
        assert!(err.contains(&format!("invalid {flag}: ")), "{flag}: {err}");
    }

    // A setting's value is quoted as written.
    let err = stderr(&run(d, &[("LEADCACHE_BIND", "पन्ह")], &["backups"]));
    assert!(
        err.contains("invalid LEADCACHE_BIND (--leadcache-bind) = \"पन्ह\""),
        "{err}"
    );

    // A missing file: the OS's reason once, not twice.
    let err = stderr(&run(d, &[], &["import", "missing.json"]));
    assert!(err.contains("missing.json"), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");

    // A database folder that cannot be created (a file is in the way).
    std::fs::write(d.join("blocker"), "").unwrap();
    let err = stderr(&run(
        d,
        &[("LEAD_DATABASE_PATH", "blocker/leads.db")],
        &["token", "list"],
    ));
    assert!(err.contains("blocker"), "{err}");
    assert_eq!(err.matches("(os error").count(), 1, "{err:?}");
}

#[test]
fn a_base_id_without_a_token_stops_the_program_at_start_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[("AIRTABLE_BASE_ID", "appBASE123")],
        &["sync", "status"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("AIRTABLE_BASE_ID")
            && err.contains("AIRTABLE_API_KEY ")
            && err.contains("AIRTABLE_API_KEY_FILE"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "stopped before touching the database"
    );
    // With a token file it starts (and reports its status).
    std::fs::write(dir.path().join("token"), "patX.y\n").unwrap();
    let out = run(
        dir.path(),
        &[
            ("AIRTABLE_BASE_ID", "appBASE123"),
            ("AIRTABLE_API_KEY_FILE", "token"),
            ("AIRTABLE_API_URL", "http://127.0.0.1:9"),
        ],
        &["sync", "status"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}
