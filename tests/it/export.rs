//! Exports and the dump: CSV honours filters, JSON dump -> import reproduces every column,
//! event, enrichment, campaign and outbox row; the HTTP endpoints stream with the right headers,
//! check the role and refuse bad parameters.

use diesel::prelude::*;
use leadcache::config::Config;
use leadcache::db::models::{Campaign, CampaignLead, Enrichment, Lead, LeadEvent, OutboxRow};
use leadcache::db::schema::{campaign_leads, campaigns, enrichments, lead_events, leads, outbox};
use serde_json::json;

use crate::support::TestApp;

type Snapshot = (
    Vec<Lead>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// Everything a dump carries, in a comparable form (row ids of events and enrichments left out).
fn snapshot(c: &mut SqliteConnection) -> Snapshot {
    let l = leads::table
        .order(leads::id)
        .select(Lead::as_select())
        .load(c)
        .unwrap();
    let e: Vec<LeadEvent> = lead_events::table
        .order((lead_events::lead_id, lead_events::id))
        .select(LeadEvent::as_select())
        .load(c)
        .unwrap();
    let e = e
        .into_iter()
        .map(|e| {
            format!(
                "{:?}",
                (e.lead_id, e.kind, e.actor, e.changes, e.message, e.at)
            )
        })
        .collect();
    let n: Vec<Enrichment> = enrichments::table
        .order((enrichments::lead_id, enrichments::id))
        .select(Enrichment::as_select())
        .load(c)
        .unwrap();
    let n = n
        .into_iter()
        .map(|e| format!("{:?}", (e.lead_id, e.provider, e.data, e.confidence, e.at)))
        .collect();
    let k: Vec<Campaign> = campaigns::table
        .order(campaigns::id)
        .select(Campaign::as_select())
        .load(c)
        .unwrap();
    let m: Vec<CampaignLead> = campaign_leads::table
        .order((campaign_leads::campaign_id, campaign_leads::lead_id))
        .select(CampaignLead::as_select())
        .load(c)
        .unwrap();
    let o: Vec<OutboxRow> = outbox::table
        .order(outbox::lead_id)
        .select(OutboxRow::as_select())
        .load(c)
        .unwrap();
    let dbg = |v: Vec<String>| v;
    (
        l,
        e,
        n,
        dbg(k.iter().map(|x| format!("{x:?}")).collect()),
        dbg(m.iter().map(|x| format!("{x:?}")).collect()),
        dbg(o.iter().map(|x| format!("{x:?}")).collect()),
    )
}

async fn varied_leads(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, status) in ["new", "won", "won", "lost", "contacted"]
        .iter()
        .enumerate()
    {
        let l = app
            .create_lead(json!({
                "fullName": format!("{} Ñoño", ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov"][i]), "email": format!("l{i}@example.com"), "company": "Acme, Inc.",
                "status": status, "score": 10.25 * i as f64, "extra": {"Tags": ["a", i], "Note": "x,\"y\"\nz"}
            }))
            .await;
        ids.push(l["id"].as_str().unwrap().to_string());
    }
    app.ok(
        "mutation($id: ID!, $d: JSON!) { addEnrichment(leadId: $id, input: {provider: \"web\", data: $d, confidence: 0.75}) { id } }",
        json!({"id": ids[0], "d": {"size": 12, "traits": ["b2b"]}}),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { addNote(leadId: $id, text: \"called\") { id } }",
        json!({"id": ids[1]}),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { deleteLead(id: $id) { id } }",
        json!({"id": ids[4]}),
    )
    .await;
    let (a, b) = (ids[0].clone(), ids[1].clone());
    app.db()
        .run(move |c| {
            use diesel::connection::SimpleConnection;
            c.batch_execute(&format!(
                "UPDATE leads SET airtable_id = 'recAAAAAAAAAAAAAA', remote_fields = '{{\"Full Name\":\"Lead 0\"}}', \
                   synced_at = '2026-11-01 10:00:00.123', remote_modified_at = '2026-11-01 09:59:59' WHERE id = '{a}'; \
                 INSERT INTO campaigns (id, name, description, created_at, updated_at) \
                   VALUES ('c1', 'Spring', 'mail', '2026-11-01 00:00:00', '2026-11-02 00:00:00'), \
                          ('c2', 'Empty', NULL, '2026-11-01 00:00:00', '2026-11-01 00:00:00'); \
                 INSERT INTO campaign_leads (campaign_id, lead_id, subject, body, status, sent_at, created_at, updated_at) \
                   VALUES ('c1', '{a}', 'Hi', 'Body', 'sent', '2026-11-03 08:00:00', '2026-11-01 00:00:00', '2026-11-03 08:00:00'), \
                          ('c1', '{b}', NULL, NULL, 'draft', NULL, '2026-11-01 00:00:00', '2026-11-01 00:00:00');"
            ))?;
            Ok(())
        })
        .await
        .unwrap();
    ids
}

#[tokio::test]
async fn a_json_dump_over_http_imports_back_exactly_and_a_second_import_adds_nothing() {
    let app = TestApp::start().await;
    varied_leads(&app).await;
    let before = app.db().run(|c| Ok(snapshot(c))).await.unwrap();
    let resp = app.get("/export/leads.json?includeDeleted=true").await;
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["format"], "leadcache-dump");
    assert_eq!(parsed["version"], 1);
    assert_eq!(parsed["leads"].as_array().unwrap().len(), 5);
    assert_eq!(parsed["campaigns"].as_array().unwrap().len(), 2);

    let target = tempfile::tempdir().unwrap();
    let file = target.path().join("dump.json");
    std::fs::write(&file, &body).unwrap();
    assert!(leadcache::transfer::dump::is_dump(&file).unwrap());
    let config = Config::for_database(target.path().join("leads.db"));
    let db = leadcache::app::open_database(&config).unwrap();
    let mut conn = db.conn().unwrap();
    // Into an empty table, index upkeep is deferred to the end: the schema comes back whole.
    crate::support::count_deferred_inserts(&mut conn);
    let schema = crate::support::schema(&mut conn);
    let stats = leadcache::transfer::dump::import(&mut conn, &file).unwrap();
    assert_eq!(
        (stats.imported, stats.skipped, stats.failed, stats.campaigns),
        (5, 0, 0, 2),
        "{stats:?}"
    );
    assert_eq!(crate::support::deferred_inserts(&mut conn), 5);
    assert_eq!(crate::support::schema(&mut conn), schema);
    diesel::sql_query("INSERT INTO leads_fts (leads_fts, rank) VALUES ('integrity-check', 1)")
        .execute(&mut conn)
        .expect("the full-text index matches the table");
    let after = snapshot(&mut conn);
    assert_eq!(after.0, before.0, "every column of every lead");
    assert_eq!(after.1, before.1, "events");
    assert_eq!(after.2, before.2, "enrichments");
    assert_eq!(after.3, before.3, "campaigns");
    assert_eq!(after.4, before.4, "campaign memberships");
    assert_eq!(after.5, before.5, "outbox rows");
    let hits: i64 =
        diesel::sql_query("SELECT COUNT(*) AS n FROM leads_fts WHERE leads_fts MATCH 'acme'")
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n;
    assert_eq!(hits, 5, "the full-text index follows imported leads");

    let again = leadcache::transfer::dump::import(&mut conn, &file).unwrap();
    assert_eq!(
        (again.imported, again.skipped),
        (0, 5),
        "merge by id: present leads are kept"
    );
    assert_eq!(snapshot(&mut conn).1, before.1, "no duplicated events");
    let logged: i64 =
        diesel::sql_query("SELECT COUNT(*) AS n FROM import_log WHERE status = 'done'")
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n;
    assert_eq!(logged, 2);
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn a_broken_or_foreign_file_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_database(dir.path().join("leads.db"));
    let legacy = dir.path().join("legacy.json");
    std::fs::write(&legacy, r#"[{"full_name": "A"}]"#).unwrap();
    let err = leadcache::transfer::cli::import(&config, &legacy)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a leadcache dump"), "{err}");
    let truncated = dir.path().join("cut.json");
    std::fs::write(
        &truncated,
        r#"{"format":"leadcache-dump","version":1,"leads":[{"id":"x1","full_name":"A","status":"new","verified":false,"enriched":false,"needs_enrichment":false,"created_at":"2026-11-01T00:00:00Z","updated_at":"2026-11-01T00:00:00Z","version":1,"extra":{},"sync_state":"local"},"#,
    )
    .unwrap();
    let db = leadcache::app::open_database(&config).unwrap();
    let mut conn = db.conn().unwrap();
    let schema = crate::support::schema(&mut conn);
    assert!(leadcache::transfer::dump::import(&mut conn, &truncated).is_err());
    let n: i64 = leads::table.count().get_result(&mut conn).unwrap();
    assert_eq!(
        n, 0,
        "a failed import stores no lead, not even those before the error"
    );
    assert_eq!(
        crate::support::schema(&mut conn),
        schema,
        "the indexes dropped for the import came back with the rollback"
    );
    let newer = dir.path().join("newer.json");
    std::fs::write(
        &newer,
        r#"{"format":"leadcache-dump","version":99,"leads":[]}"#,
    )
    .unwrap();
    let err = leadcache::transfer::dump::import(&mut conn, &newer)
        .unwrap_err()
        .to_string();
    assert!(err.contains("newer"), "{err}");
}

#[tokio::test]
async fn csv_export_honours_filters_and_keeps_every_column() {
    let app = TestApp::start().await;
    varied_leads(&app).await;
    let out = app.dir.path().join("won.csv");
    let config = app.state().config.as_ref().clone();
    leadcache::transfer::cli::export(
        &config,
        "csv",
        Some(&out),
        false,
        &[("status", "won".into()), ("scoreMin", "20".into())],
    )
    .unwrap();
    let mut r = csv::Reader::from_path(&out).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, leadcache::transfer::export::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "only won leads with score >= 20");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][col("status")], "won");
    assert_eq!(&rows[0][col("score")], "20.5");
    assert_eq!(&rows[0][col("full_name")], "Alan Turing Ñoño");
    let extra: serde_json::Value = serde_json::from_str(&rows[0][col("extra")]).unwrap();
    assert_eq!(
        extra["Note"], "x,\"y\"\nz",
        "extra is JSON text, quoted safely"
    );

    leadcache::transfer::cli::export(&config, "csv", Some(&out), false, &[]).unwrap();
    assert_eq!(
        csv::Reader::from_path(&out).unwrap().records().count(),
        4,
        "deleted leads only on request"
    );
    leadcache::transfer::cli::export(
        &config,
        "csv",
        Some(&out),
        false,
        &[("includeDeleted", "true".into())],
    )
    .unwrap();
    assert_eq!(csv::Reader::from_path(&out).unwrap().records().count(), 5);
    let err = leadcache::transfer::cli::export(
        &config,
        "csv",
        Some(&out),
        false,
        &[("enriched", "perhaps".into())],
    )
    .unwrap_err();
    assert!(err.to_string().contains("enriched"), "{err}");
}

#[tokio::test]
async fn http_csv_export_streams_every_filtered_row_with_attachment_headers() {
    let app = TestApp::start().await;
    app.db()
        .run(|c| leadcache::seed::seed(c, 2500, 3, false))
        .await
        .unwrap();
    let expected = app
        .count(
            "SELECT COUNT(*) AS n FROM leads WHERE deleted_at IS NULL AND status IN ('new', 'won')",
        )
        .await;
    assert!(expected > 0);
    let resp = app.get("/export/leads.csv?status=new&status=won").await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/csv; charset=utf-8");
    let disposition = h["content-disposition"].to_str().unwrap().to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"leads-")
            && disposition.ends_with(".csv\"")
            && disposition.len() == 48,
        "{disposition}"
    );
    assert!(h.get("content-length").is_none(), "streamed, not buffered");
    let body = resp.bytes().await.unwrap();
    let mut r = csv::Reader::from_reader(body.as_ref());
    let statuses: Vec<String> = r.records().map(|x| x.unwrap()[12].to_string()).collect();
    assert_eq!(
        statuses.len() as i64,
        expected,
        "every page of the filtered rows"
    );
    assert!(statuses.iter().all(|s| s == "new" || s == "won"));
    let all = app.get("/export/leads.csv").await.bytes().await.unwrap();
    assert_eq!(
        csv::Reader::from_reader(all.as_ref()).records().count() as i64,
        app.count("SELECT COUNT(*) AS n FROM leads WHERE deleted_at IS NULL")
            .await
    );
}

#[tokio::test]
async fn http_export_refuses_bad_parameters_and_needs_a_token_when_tokens_exist() {
    let app = TestApp::start().await;
    // Tokens first: the server caches what it knows about them for a moment.
    let reader = app
        .db()
        .run(|c| Ok(leadcache::tokens::create(c, "reader", leadcache::auth::Role::Read)?.0))
        .await
        .unwrap();
    assert_eq!(
        app.get("/export/leads.csv").await.status(),
        401,
        "tokens exist: anonymous is refused"
    );
    let app = TestApp {
        token: Some(reader),
        ..app
    };
    assert_eq!(
        app.get("/export/leads.csv").await.status(),
        200,
        "the read role may export"
    );
    for (query, name) in [
        ("scoreMin=lots", "scoreMin"),
        ("syncState=LOST", "syncState"),
        ("colour=red", "colour"),
        ("enriched=maybe", "enriched"),
    ] {
        let resp = app.get(&format!("/export/leads.csv?{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "VALIDATION");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(name),
            "{body}"
        );
    }
    let ok = app
        .get("/export/leads.json?syncState=LOCAL&syncState=PENDING")
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/json");
}
