//! Hostile input: every attack is refused with a clear error and code, stores nothing, and the
//! server keeps answering.

use std::collections::HashMap;
use std::time::Duration;

use futures::SinkExt;
use leadcache::auth::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::access::{post, token, ws_connect, ws_until};
use crate::support::TestApp;

async fn leads(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) AS n FROM leads").await
}

async fn still_healthy(app: &TestApp) {
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the server stopped answering");
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("(none)")
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = TestApp::start().await;
    app.create_lead(json!({"fullName": "Existing"})).await;
    let before = leads(&app).await;
    let huge = "x".repeat(leadcache::server::MAX_BODY_BYTES + 1024);
    let body = json!({"query": "mutation($n: String!) { createLead(input: {fullName: $n}) { created } }", "variables": {"n": huge}});
    let resp = app
        .http
        .post(app.url("/graphql"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp
        .json()
        .await
        .expect("the refusal is the JSON error, not plain text");
    assert_eq!(code(&body), "LIMIT", "{body:#}");
    assert_eq!(leads(&app).await, before);
    still_healthy(&app).await;
}

#[tokio::test]
async fn deep_wide_aliased_and_batched_queries_are_refused() {
    let app = TestApp::start().await;
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "fields { type { ".repeat(6),
        " } }".repeat(6)
    );
    let (status, body) = post(&app, None, json!({"query": deep})).await;
    assert_eq!((status, code(&body)), (200, "LIMIT"), "deep: {body:#}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body:#}"
    );

    // 10,000 aliases: refused by size before parsing.
    let flood: String = (0..10_000).map(|i| format!("a{i}: statuses ")).collect();
    let (_, body) = post(&app, None, json!({"query": format!("{{ {flood} }}")})).await;
    assert_eq!(code(&body), "LIMIT", "alias flood: {body:#}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("bytes"),
        "{body:#}"
    );

    // Many aliases that fit the size but not the cost: `limits::a_request_over_its_role_budget_is_refused_with_its_cost`.

    // Batches: refused whole, nothing executed.
    let one =
        json!({"query": "mutation { createLead(input: {fullName: \"Batched\"}) { created } }"});
    for n in [2, 100] {
        let batch = Value::Array(vec![one.clone(); n]);
        let resp = app
            .http
            .post(app.url("/graphql"))
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "LIMIT", "{body:#}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("one operation per request")
        );
    }
    assert_eq!(leads(&app).await, 0);
    still_healthy(&app).await;
}

#[tokio::test]
async fn malformed_bodies_and_wrong_types_get_validation_errors() {
    let app = TestApp::start().await;
    let raw = |bytes: Vec<u8>| {
        app.http
            .post(app.url("/graphql"))
            .header("Content-Type", "application/json")
            .body(bytes)
            .send()
    };
    let mut invalid_utf8 = br#"{"query": "mutation { createLead(input: {fullName: ""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xfd]);
    invalid_utf8.extend_from_slice(br#""}) { created } }"}"#);
    for body in [
        invalid_utf8,
        b"{\"query\": 5}".to_vec(),
        b"not json".to_vec(),
        b"{\"query\": \"{ statuses }\", \"variables\": [1]}".to_vec(),
    ] {
        let resp = raw(body.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{}", String::from_utf8_lossy(&body));
        let json: Value = resp.json().await.unwrap();
        assert_eq!(code(&json), "VALIDATION", "{json:#}");
    }
    // A variable of the wrong type.
    let (_, body) = post(
        &app,
        None,
        json!({"query": "mutation($i: LeadInput!) { createLead(input: $i) { created } }", "variables": {"i": {"fullName": 42, "score": "high"}}}),
    )
    .await;
    assert_eq!(code(&body), "VALIDATION", "{body:#}");
    let (_, body) = post(
        &app,
        None,
        json!({"query": "{ leads(first: \"ten\") { totalCount } }"}),
    )
    .await;
    assert_eq!(code(&body), "VALIDATION", "{body:#}");
    assert_eq!(leads(&app).await, 0);
    still_healthy(&app).await;
}

#[tokio::test]
async fn first_and_cursors_are_checked() {
    let app = TestApp::start().await;
    app.create_lead(json!({"fullName": "Only One"})).await;
    for (first, expected) in [
        ("-1", "VALIDATION"),
        ("-2147483648", "VALIDATION"),
        ("1001", "LIMIT"),
        ("100000", "LIMIT"),
    ] {
        let (_, body) = post(
            &app,
            None,
            json!({"query": format!("{{ leads(first: {first}) {{ totalCount }} }}")}),
        )
        .await;
        assert_eq!(code(&body), expected, "first {first}: {body:#}");
        let (_, body) = post(
            &app,
            None,
            json!({"query": format!("{{ searchLeads(query: \"one\", first: {first}) {{ id }} }}")}),
        )
        .await;
        assert_eq!(code(&body), expected, "searchLeads first {first}: {body:#}");
    }
    let (_, body) = post(
        &app,
        None,
        json!({"query": "{ leads(first: 0) { totalCount nodes { id } } }"}),
    )
    .await;
    assert_eq!(
        body["data"]["leads"]["nodes"],
        json!([]),
        "first: 0 is an empty page: {body:#}"
    );
    let (_, body) = post(
        &app,
        None,
        json!({"query": "{ leads(first: 99999999999) { totalCount } }"}),
    )
    .await;
    assert_eq!(code(&body), "VALIDATION", "beyond Int: {body:#}");
    let long = "A".repeat(10_000);
    for cursor in [
        "garbage",
        "eyJub3QiOiJhIGN1cnNvciJ9",
        "%%%",
        "\u{0}\u{1}",
        long.as_str(),
    ] {
        let (_, body) =
            post(&app, None, json!({"query": "query($a: String) { leads(after: $a) { totalCount } }", "variables": {"a": cursor}}))
                .await;
        assert_eq!(code(&body), "VALIDATION", "cursor {cursor:?}: {body:#}");
    }
    still_healthy(&app).await;
}

#[tokio::test]
async fn sql_looking_strings_in_every_filter_and_search_are_just_text() {
    let app = TestApp::start().await;
    app.create_lead(json!({"fullName": "Robert Tables", "company": "Acme"}))
        .await;
    let before = leads(&app).await;
    let nasty = [
        "'; DROP TABLE leads; --",
        "\" OR 1=1 --",
        "x' UNION SELECT token_hash FROM api_tokens --",
        "*) OR (1=1",
        "NEAR(a b)",
        "\"unterminated",
        "a AND OR NOT",
        "%_%",
    ];
    // Every string (or list of strings) field of LeadFilter, found by introspection.
    let (_, body) = post(&app, None, json!({"query": "{ __type(name: \"LeadFilter\") { inputFields { name type { kind name ofType { kind name ofType { kind name } } } } } }"})).await;
    let mut string_fields = Vec::new();
    for f in body["data"]["__type"]["inputFields"].as_array().unwrap() {
        let text = f["type"].to_string();
        if text.contains("\"String\"") {
            let list = text.contains("LIST");
            string_fields.push((f["name"].as_str().unwrap().to_string(), list));
        }
    }
    assert!(string_fields.len() >= 5, "{string_fields:?}");
    for s in nasty {
        for (field, list) in &string_fields {
            let value = if *list { json!([s]) } else { json!(s) };
            let mut filter = serde_json::Map::new();
            filter.insert(field.clone(), value);
            let (_, body) = post(
                &app,
                None,
                json!({"query": "query($f: LeadFilter) { leads(filter: $f) { totalCount nodes { id } } }", "variables": {"f": filter}}),
            )
            .await;
            if body.get("errors").is_some() {
                assert_eq!(code(&body), "VALIDATION", "{field} = {s:?}: {body:#}");
            } else {
                assert_eq!(
                    body["data"]["leads"]["totalCount"], 0,
                    "{field} = {s:?} matched something: {body:#}"
                );
            }
        }
        for q in [
            json!({"query": "query($s: String) { leads(search: $s) { totalCount } }", "variables": {"s": s}}),
            json!({"query": "query($s: String!) { searchLeads(query: $s) { id } }", "variables": {"s": s}}),
            json!({"query": "query($s: String!) { leadsByStatus(status: $s) { id } }", "variables": {"s": s}}),
            json!({"query": "query($s: ID!) { lead(id: $s) { id } }", "variables": {"s": s}}),
        ] {
            let (status, body) = post(&app, None, q.clone()).await;
            assert_eq!(status, 200);
            if body.get("errors").is_some() {
                assert_eq!(code(&body), "VALIDATION", "{q}: {body:#}");
            }
        }
    }
    assert_eq!(leads(&app).await, before);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'leads'")
            .await,
        1
    );
    still_healthy(&app).await;
}

#[tokio::test]
async fn sql_refuses_writes_attach_and_runaway_queries() {
    let app = TestApp::start().await;
    app.create_lead(json!({"fullName": "Kept Safe"})).await;
    let outside = app.dir.path().join("attached.db");
    let attack = [
        "DELETE FROM leads".to_string(),
        "UPDATE leads SET full_name = 'x'".to_string(),
        "INSERT INTO api_tokens (id, name, role, token_hash, prefix, created_at) VALUES ('1','e','admin','h','p','2026-01-01')"
            .to_string(),
        "DROP TABLE leads".to_string(),
        format!("ATTACH DATABASE '{}' AS other", outside.display()),
        "PRAGMA writable_schema = ON".to_string(),
        "SELECT 1; DELETE FROM leads".to_string(),
        "WITH x AS (SELECT 1) DELETE FROM leads".to_string(),
        "VACUUM INTO '/tmp/leadcache-stolen.db'".to_string(),
    ];
    for sql in &attack {
        let (_, body) =
            post(&app, None, json!({"query": "query($q: String!) { sql(query: $q) { rows } }", "variables": {"q": sql}})).await;
        assert_eq!(code(&body), "VALIDATION", "{sql}: {body:#}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("query"),
            "{body:#}"
        );
    }
    assert_eq!(leads(&app).await, 1);
    assert!(!outside.exists(), "ATTACH created a file");
    assert!(!std::path::Path::new("/tmp/leadcache-stolen.db").exists());
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM api_tokens").await, 0);

    // Reads work, with the row cap.
    let (_, body) = post(
        &app,
        None,
        json!({"query": "{ sql(query: \"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 5000) SELECT i FROM r\") { columns rows truncated elapsedMs } }"}),
    )
    .await;
    let result = &body["data"]["sql"];
    assert_eq!(result["columns"], json!(["i"]), "{body:#}");
    assert_eq!(
        result["rows"].as_array().unwrap().len(),
        leadcache::sqlconsole::MAX_ROWS
    );
    assert_eq!(result["truncated"], true);

    // A query that would run forever is interrupted at the time limit, not waited out.
    let started = std::time::Instant::now();
    let (_, body) = post(
        &app,
        None,
        json!({"query": "{ sql(query: \"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r\") { rows } }"}),
    )
    .await;
    assert_eq!(code(&body), "LIMIT", "{body:#}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{body:#}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the runaway query was not interrupted"
    );
    still_healthy(&app).await;
}

#[tokio::test]
async fn a_websocket_connection_may_hold_at_most_20_subscriptions() {
    let app = TestApp::start().await;
    let read = token(&app, "watcher", Role::Read);
    // Made before the first request, so the token cache knows both from the start.
    let writer = token(&app, "writer", Role::Write);
    let mut ws = ws_connect(&app, json!({"Authorization": format!("Bearer {read}")}))
        .await
        .unwrap();
    let max = leadcache::graphql::MAX_SUBSCRIPTIONS_PER_CONNECTION;
    let subscribe = |id: String| {
        Message::text(json!({"type": "subscribe", "id": id, "payload": {"query": "subscription { leadChanged { kind } }"}}).to_string())
    };
    for i in 0..=max {
        ws.send(subscribe(format!("s{i}"))).await.unwrap();
    }
    // Which one is refused depends on the order the server starts them in; exactly one is.
    let refused = loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), futures::StreamExt::next(&mut ws))
            .await
            .expect("a refusal");
        let Some(Ok(Message::Text(t))) = msg else {
            continue;
        };
        let m: Value = serde_json::from_str(&t).unwrap();
        if m["type"] == "error" || m["payload"]["errors"].is_array() {
            break m;
        }
    };
    assert!(refused.to_string().contains("LIMIT"), "{refused}");
    assert!(refused.to_string().contains("at most 20"), "{refused}");
    let refused_id = refused["id"].as_str().unwrap().to_string();
    let live: Vec<String> = (0..=max)
        .map(|i| format!("s{i}"))
        .filter(|id| *id != refused_id)
        .collect();

    // The other 20 are live: a change reaches them (once all of them listen on the bus;
    // subscriptions attach asynchronously after `subscribe`).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.state().bus.lead_subscribers() < max {
        assert!(
            std::time::Instant::now() < deadline,
            "the 20 subscriptions never attached"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, body) = post(
        &app,
        Some(&writer),
        json!({"query": "mutation { createLead(input: {fullName: \"Seen\"}) { created } }"}),
    )
    .await;
    assert_eq!(body["data"]["createLead"]["created"], true, "{body:#}");
    let seen = ws_until(&mut ws, &live[0]).await;
    assert_eq!(
        seen["payload"]["data"]["leadChanged"]["kind"], "CREATED",
        "{seen}"
    );

    // Completing one frees its slot.
    ws.send(Message::text(
        json!({"type": "complete", "id": live[5]}).to_string(),
    ))
    .await
    .unwrap();
    let mut accepted = false;
    for attempt in 0..50 {
        let id = format!("again{attempt}");
        ws.send(subscribe(id.clone())).await.unwrap();
        // A subscription attaches to the bus asynchronously, so a write right after `subscribe`
        // may come too early for it: write again until its answer (event or refusal) arrives.
        let mut msg = Value::Null;
        for _ in 0..20 {
            let (_, body) = post(
                &app,
                Some(&writer),
                json!({"query": "mutation { createLead(input: {fullName: \"Again\"}) { created } }"}),
            )
            .await;
            assert_eq!(body["data"]["createLead"]["created"], true);
            if let Ok(m) =
                tokio::time::timeout(Duration::from_secs(1), ws_until(&mut ws, &id)).await
            {
                msg = m;
                break;
            }
        }
        if msg["type"] == "next" && msg["payload"]["errors"].is_null() {
            accepted = true;
            break;
        }
        // The slot is freed when the server has processed `complete`; try again.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "a completed subscription did not free its slot");
    still_healthy(&app).await;
}

#[tokio::test]
async fn hostile_requests_leave_the_server_answering() {
    // A burst of every kind at once.
    let app = TestApp::start().await;
    let mut handles = Vec::new();
    let bodies: Vec<Vec<u8>> = vec![
        b"[]".to_vec(),
        b"{".to_vec(),
        vec![0xff; 1000],
        json!({"query": "{".repeat(5000)}).to_string().into_bytes(),
        json!({"query": format!("query {{ {} }}", "leads { nodes { duplicates { ".repeat(50))})
            .to_string()
            .into_bytes(),
    ];
    for b in bodies {
        let http = app.http.clone();
        let url = app.url("/graphql");
        handles.push(tokio::spawn(async move {
            http.post(url)
                .header("Content-Type", "application/json")
                .body(b)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = HashMap::new();
    for h in handles {
        *statuses.entry(h.await.unwrap()).or_insert(0) += 1;
    }
    assert!(
        statuses.keys().all(|s| *s == 400 || *s == 200),
        "{statuses:?}"
    );
    assert_eq!(leads(&app).await, 0);
    still_healthy(&app).await;
}
