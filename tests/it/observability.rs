//! Metrics (`GET /metrics`) and logs: the series exist and count, and no secret or personal data
//! reaches the log (the real binary, JSON logs at debug level).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::TestApp;

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

#[tokio::test]
async fn metrics_expose_every_series() {
    let app = TestApp::start().await;
    let lead = app.create_lead(json!({"fullName": "Metric Mia"})).await;
    app.create_lead(json!({"fullName": "Metric Max"})).await;
    let id = lead["id"].as_str().unwrap();
    app.ok(
        "query MetricsProbeLookup($id: ID!) { lead(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    app.err(
        "query MetricsProbeFails { leads(first: -1) { totalCount } }",
        json!({}),
        "VALIDATION",
    )
    .await;
    // The hooks the sync, Airtable client and duplicate code call.
    leadcache::metrics::record_sync_run("push", "ok", Duration::from_millis(120));
    leadcache::metrics::record_duplicate("email");
    leadcache::metrics::record_airtable_request("list", "200");
    leadcache::metrics::record_airtable_retry();
    leadcache::metrics::record_airtable_rate_limited();
    leadcache::metrics::record_cache_miss();

    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    for series in [
        "graphql_operations_total{operation=\"MetricsProbeLookup\",outcome=\"ok\"}",
        "graphql_operations_total{operation=\"MetricsProbeFails\",outcome=\"error\"}",
        "graphql_operation_duration_seconds_count{operation=\"MetricsProbeLookup\"}",
        "lead_cache_hits_total",
        "lead_cache_misses_total",
        "airtable_requests_total{kind=\"list\",status=\"200\"}",
        "airtable_retries_total",
        "airtable_rate_limited_total",
        "sync_runs_total{kind=\"push\",outcome=\"ok\"}",
        "sync_run_duration_seconds_count{kind=\"push\"}",
        "duplicates_detected_total{rule=\"email\"}",
        "outbox_depth{state=\"pending\"}",
        "outbox_depth{state=\"dead\"}",
        "sync_conflicts_open",
        "backup_age_seconds",
        "database_size_bytes",
        "leads_total",
    ] {
        assert!(
            sample(&text, series).is_some(),
            "{series} missing from:\n{text}"
        );
    }
    assert!(text.contains(
        "graphql_operation_duration_seconds_bucket{operation=\"MetricsProbeLookup\",le=\"0.005\"}"
    ));
    assert!(sample(&text, "lead_cache_hits_total").unwrap() >= 1.0);
    assert_eq!(sample(&text, "leads_total"), Some(2.0));
    assert_eq!(
        sample(&text, "outbox_depth{state=\"pending\"}"),
        Some(2.0),
        "two creates wait in the outbox"
    );
    assert_eq!(
        sample(&text, "backup_age_seconds"),
        Some(-1.0),
        "no backup yet"
    );
    let size = sample(&text, "database_size_bytes").unwrap();
    assert!(size >= 4096.0, "{size}");
}

/// Reads the child's stderr into `lines`; sends the listening address once it is logged.
fn collect(
    stderr: tokio::process::ChildStderr,
    lines: Arc<Mutex<Vec<String>>>,
) -> tokio::sync::oneshot::Receiver<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Some(rest) = line.split("listening on ").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(rest.split(' ').next().unwrap_or_default().to_string());
            }
            lines.lock().unwrap().push(line);
        }
    });
    rx
}

#[tokio::test]
async fn logs_are_json_with_access_lines_and_never_hold_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    let exe = env!("CARGO_BIN_EXE_leadcache");
    let airtable_key = "patSECRETairtableKEY.0123456789abcdef";
    let base = |cmd: &mut tokio::process::Command| {
        cmd.env_clear()
            .current_dir(dir.path())
            .env("LEAD_DATABASE_PATH", &db)
            .env("LEADCACHE_BACKUP_DIR", dir.path().join("backups"))
            .env("AIRTABLE_API_KEY", airtable_key)
            .env("AIRTABLE_BASE_ID", "appLOGTEST")
            .env("AIRTABLE_API_URL", "http://127.0.0.1:9")
            .env("LEADCACHE_BIND", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "debug")
            .env("SLOW_QUERY_MS", "0");
    };
    let mut create = tokio::process::Command::new(exe);
    base(&mut create);
    let out = create
        .args(["token", "create", "--name", "log-admin", "--role", "admin"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("lc_"));

    let mut serve = tokio::process::Command::new(exe);
    base(&mut serve);
    let mut child = serve
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let addr = tokio::time::timeout(
        Duration::from_secs(60),
        collect(child.stderr.take().unwrap(), lines.clone()),
    )
    .await
    .expect("the server started")
    .unwrap();
    let url = format!("http://{addr}");
    let http = reqwest::Client::new();
    let gql = |bearer: &str, body: Value| {
        http.post(format!("{url}/graphql"))
            .bearer_auth(bearer.to_string())
            .json(&body)
            .send()
    };

    let person_email = "private.person@example.org";
    let r = gql(&token, json!({"query": "mutation AddPerson($i: LeadInput!) { createLead(input: $i) { created } }", "variables": {"i": {"fullName": "Private Person", "email": person_email}}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = gql(
        &token,
        json!({"query": "query ListStatuses { statuses cacheStatus { mode } }"}),
    )
    .await
    .unwrap();
    let status_body = r.text().await.unwrap();
    assert!(
        !status_body.contains(airtable_key),
        "cacheStatus holds the Airtable key"
    );
    let r = gql("lc_wrongTOKENvalue42", json!({"query": "{ statuses }"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{url}/graphql"))
        .query(&[(
            "query",
            format!("query ByEmail {{ searchLeads(query: \"{person_email}\") {{ id }} }}"),
        )])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = gql(
        &token,
        json!({"query": "{ sql(query: \"SELECT * FROM no_such_table\") { rows } }"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = http
        .get(format!("{url}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains(airtable_key)
            && !metrics.contains(&token)
            && !metrics.contains(person_email)
    );

    // Let the access lines reach the pipe, then stop the server we started.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines = lines.lock().unwrap().clone();
    let all = lines.join("\n");

    for secret in [
        airtable_key,
        token.as_str(),
        "lc_wrongTOKENvalue42",
        person_email,
        "Private Person",
    ] {
        assert!(!all.contains(secret), "the log holds {secret:?}:\n{all}");
    }
    let token_hash = leadcache::tokens::hash(&token);
    assert!(!all.contains(&token_hash), "the log holds a token hash");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    let access: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["target"] == "leadcache::access")
        .collect();
    let find = |op: &str| access.iter().find(|v| v["operation"] == op).copied();
    let add = find("AddPerson").unwrap_or_else(|| panic!("no access line for AddPerson:\n{all}"));
    assert_eq!(add["method"], "POST");
    assert_eq!(add["path"], "/graphql");
    assert_eq!(add["status"], 200);
    assert!(add["duration_ms"].is_number());
    let by_email = find("ByEmail").expect("an access line for the GET query");
    assert_eq!(by_email["path"], "/graphql", "no query string in the path");
    assert!(
        access.iter().any(|v| v["status"] == 401),
        "refused requests are logged"
    );
    assert!(
        parsed.iter().any(|v| v["message"]
            .as_str()
            .is_some_and(|m| m.contains("slow GraphQL operation"))),
        "SLOW_QUERY_MS=0 logs every operation as slow"
    );
}
