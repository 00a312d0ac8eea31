//! Access control (SPEC §8): the role matrix over every operation of the schema, found by
//! introspection (so an operation added later is covered without touching this file), token
//! rotation without restart, the actor of writes, and the open (token-less) server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use leadcache::auth::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::TestApp;

/// Operations that need the admin role; every other query and subscription needs `read`, every
/// other mutation `write` (SPEC §8). Add new admin operations here.
const ADMIN_OPERATIONS: &[&str] = &[
    "sql",
    "apiTokens",
    "createApiToken",
    "revokeApiToken",
    "backups",
    "backupNow",
    "restoreBackup",
];

pub(crate) fn token(app: &TestApp, name: &str, role: Role) -> String {
    let mut conn = app.db().conn().unwrap();
    leadcache::tokens::create(&mut conn, name, role).unwrap().0
}

/// POSTs a GraphQL body with an optional bearer token: (HTTP status, JSON body).
pub(crate) async fn post(app: &TestApp, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.http.post(app.url("/graphql")).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const TYPE_REF: &str = "fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

/// One root field of the schema.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub kind: &'static str,
    pub name: String,
    /// A minimal valid document calling it.
    pub document: String,
}

impl Operation {
    fn needs(&self) -> Role {
        if ADMIN_OPERATIONS.contains(&self.name.as_str()) {
            Role::Admin
        } else if self.kind == "mutation" {
            Role::Write
        } else {
            Role::Read
        }
    }
}

fn unwrap_type(t: &Value) -> &Value {
    match t["kind"].as_str() {
        Some("NON_NULL") | Some("LIST") => unwrap_type(&t["ofType"]),
        _ => t,
    }
}

/// A GraphQL literal for a value of type `t` (required parts only).
fn literal(t: &Value, types: &HashMap<String, Value>) -> String {
    match t["kind"].as_str().unwrap_or_default() {
        "NON_NULL" => literal(&t["ofType"], types),
        "LIST" => format!("[{}]", literal(&t["ofType"], types)),
        "ENUM" => {
            let name = t["name"].as_str().unwrap();
            types[name]["enumValues"][0]["name"]
                .as_str()
                .unwrap()
                .to_string()
        }
        "INPUT_OBJECT" => {
            let name = t["name"].as_str().unwrap();
            let fields: Vec<String> = types[name]["inputFields"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["type"]["kind"] == "NON_NULL" && f["defaultValue"].is_null())
                .map(|f| {
                    format!(
                        "{}: {}",
                        f["name"].as_str().unwrap(),
                        literal(&f["type"], types)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        _ => match t["name"].as_str().unwrap_or_default() {
            "ID" => "\"00000000-0000-0000-0000-000000000000\"".into(),
            "Int" => "1".into(),
            "Float" => "1.5".into(),
            "Boolean" => "false".into(),
            "JSON" => "{}".into(),
            "DateTime" => "\"2026-01-01T00:00:00Z\"".into(),
            _ => "\"x\"".into(),
        },
    }
}

/// Every query, mutation and subscription of the schema with a minimal call.
pub(crate) async fn operations(app: &TestApp, bearer: Option<&str>) -> Vec<Operation> {
    let q = format!(
        "{{ __schema {{ \
           queryType {{ fields {{ name args {{ name defaultValue type {{ ...T }} }} type {{ ...T }} }} }} \
           mutationType {{ fields {{ name args {{ name defaultValue type {{ ...T }} }} type {{ ...T }} }} }} \
           subscriptionType {{ fields {{ name args {{ name defaultValue type {{ ...T }} }} type {{ ...T }} }} }} \
           types {{ name kind enumValues {{ name }} inputFields {{ name defaultValue type {{ ...T }} }} }} }} }} {TYPE_REF}"
    );
    let (status, body) = post(app, bearer, json!({"query": q})).await;
    assert_eq!(status, 200, "{body:#}");
    let schema = &body["data"]["__schema"];
    let types: HashMap<String, Value> = schema["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
        .collect();
    let mut out = Vec::new();
    for (kind, root) in [
        ("query", "queryType"),
        ("mutation", "mutationType"),
        ("subscription", "subscriptionType"),
    ] {
        for f in schema[root]["fields"].as_array().into_iter().flatten() {
            let name = f["name"].as_str().unwrap().to_string();
            let args: Vec<String> = f["args"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["type"]["kind"] == "NON_NULL" && a["defaultValue"].is_null())
                .map(|a| {
                    format!(
                        "{}: {}",
                        a["name"].as_str().unwrap(),
                        literal(&a["type"], &types)
                    )
                })
                .collect();
            let args = if args.is_empty() {
                String::new()
            } else {
                format!("({})", args.join(", "))
            };
            let selection = match unwrap_type(&f["type"])["kind"].as_str() {
                Some("OBJECT") | Some("INTERFACE") | Some("UNION") => " { __typename }",
                _ => "",
            };
            out.push(Operation {
                kind,
                name: name.clone(),
                document: format!("{kind} {{ {name}{args}{selection} }}"),
            });
        }
    }
    out
}

fn first_code(body: &Value) -> Option<String> {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_string)
}

/// Opens `/graphql/ws` (graphql-transport-ws) and sends `connection_init` with `payload`.
/// Returns the socket when the server acknowledged, or the refusal as text.
pub(crate) async fn ws_connect(
    app: &TestApp,
    payload: Value,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
> {
    let url = app.url("/graphql/ws").replace("http://", "ws://");
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| e.to_string())?;
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": payload}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let m: Value = serde_json::from_str(&t).unwrap();
                if m["type"] == "connection_ack" {
                    return Ok(ws);
                }
                return Err(t.to_string());
            }
            Ok(Some(Ok(Message::Close(frame)))) => return Err(format!("closed: {frame:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("connection ended".into()),
            Err(_) => panic!("no answer to connection_init"),
        }
    }
}

/// Reads messages until one with `id` is an error or `next`; returns it.
pub(crate) async fn ws_until<S>(ws: &mut S, id: &str) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time");
        if let Some(Ok(Message::Text(t))) = msg {
            let m: Value = serde_json::from_str(&t).unwrap();
            if m["id"] == id && (m["type"] == "error" || m["type"] == "next") {
                return m;
            }
        } else if !matches!(msg, Some(Ok(_))) {
            panic!("socket ended while waiting for {id}: {msg:?}");
        }
    }
}

#[tokio::test]
async fn every_operation_is_allowed_or_refused_by_role() {
    let app = TestApp::start().await;
    let admin = token(&app, "m-admin", Role::Admin);
    let write = token(&app, "m-write", Role::Write);
    let read = token(&app, "m-read", Role::Read);
    let revoked = token(&app, "m-revoked", Role::Admin);
    leadcache::tokens::revoke(&mut app.db().conn().unwrap(), "m-revoked").unwrap();
    // The token cache may hold the revoked token for up to 2 s.
    tokio::time::sleep(leadcache::tokens::CACHE_TTL + Duration::from_millis(200)).await;

    let ops = operations(&app, Some(&admin)).await;
    for expected in [
        "lead",
        "leads",
        "createLead",
        "sql",
        "apiTokens",
        "createApiToken",
        "leadChanged",
    ] {
        assert!(
            ops.iter().any(|o| o.name == expected),
            "introspection found no {expected}"
        );
    }
    let roles = [
        (Role::Read, read.as_str()),
        (Role::Write, write.as_str()),
        (Role::Admin, admin.as_str()),
    ];
    for op in ops.iter().filter(|o| o.kind != "subscription") {
        let body = json!({"query": op.document});
        for (label, bearer) in [
            ("no token", None),
            ("bad token", Some("lc_not-a-real-token")),
            ("revoked", Some(revoked.as_str())),
        ] {
            let (status, resp) = post(&app, bearer, body.clone()).await;
            assert_eq!(status, 401, "{} with {label}: {resp:#}", op.name);
            assert_eq!(
                first_code(&resp).as_deref(),
                Some("UNAUTHENTICATED"),
                "{} with {label}",
                op.name
            );
        }
        for (role, bearer) in roles {
            let (status, resp) = post(&app, Some(bearer), body.clone()).await;
            assert_eq!(status, 200, "{} as {}: {resp:#}", op.name, role.as_str());
            let code = first_code(&resp);
            if role >= op.needs() {
                assert!(
                    !matches!(code.as_deref(), Some("FORBIDDEN" | "UNAUTHENTICATED")),
                    "{} must be allowed for {}: {resp:#}",
                    op.name,
                    role.as_str()
                );
                // A malformed generated call would prove nothing: it must reach the resolver.
                let unexecuted =
                    resp["errors"][0]["path"].is_null() && code.as_deref() == Some("VALIDATION");
                assert!(
                    !unexecuted,
                    "the generated call of {} is not valid: {} {resp:#}",
                    op.name, op.document
                );
            } else {
                assert_eq!(
                    code.as_deref(),
                    Some("FORBIDDEN"),
                    "{} must be refused for {}: {resp:#}",
                    op.name,
                    role.as_str()
                );
                assert!(
                    resp["data"].is_null() || resp["data"][&op.name].is_null(),
                    "{resp:#}"
                );
            }
        }
    }

    // Subscriptions: the WebSocket refuses missing, bad and revoked tokens at connection_init...
    for (label, payload) in [
        ("no token", json!({})),
        (
            "bad token",
            json!({"Authorization": "Bearer lc_not-a-real-token"}),
        ),
        ("revoked", json!({"token": revoked})),
    ] {
        assert!(
            ws_connect(&app, payload).await.is_err(),
            "the WebSocket accepted {label}"
        );
    }
    // ...and each role may or may not subscribe to each subscription. A refusal must arrive; an
    // allowed subscription must stay silent past a sentinel, and `leadChanged` must deliver.
    let subs: Vec<&Operation> = ops.iter().filter(|o| o.kind == "subscription").collect();
    assert!(!subs.is_empty());
    for (role, bearer) in roles {
        for op in &subs {
            let mut ws = ws_connect(&app, json!({"Authorization": format!("Bearer {bearer}")}))
                .await
                .unwrap();
            let msg = json!({"type": "subscribe", "id": "op", "payload": {"query": op.document}});
            ws.send(Message::text(msg.to_string())).await.unwrap();
            if role < op.needs() {
                let e = ws_until(&mut ws, "op").await;
                assert!(
                    e.to_string().contains("FORBIDDEN"),
                    "{} must be refused for {}: {e}",
                    op.name,
                    role.as_str()
                );
                continue;
            }
            let sentinel = json!({"type": "subscribe", "id": "sentinel", "payload": {"query": "subscription { noSuchField }"}});
            ws.send(Message::text(sentinel.to_string())).await.unwrap();
            let mut sentinel_done = false;
            let quiet_until = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let wait = if sentinel_done {
                    Duration::from_millis(300)
                } else {
                    quiet_until - tokio::time::Instant::now()
                };
                let Ok(msg) = tokio::time::timeout(wait, ws.next()).await else {
                    assert!(sentinel_done, "no answer to the sentinel");
                    break;
                };
                let Some(Ok(Message::Text(t))) = msg else {
                    continue;
                };
                let m: Value = serde_json::from_str(&t).unwrap();
                if m["id"] == "sentinel" && m["type"] == "complete" {
                    sentinel_done = true;
                }
                let failed = m["type"] == "error" || m["payload"]["errors"].is_array();
                assert!(
                    !(m["id"] == "op" && failed),
                    "{} must be allowed for {}: {m}",
                    op.name,
                    role.as_str()
                );
            }
            if op.name == "leadChanged" {
                let (_, body) = post(&app, Some(&write), json!({"query": "mutation { createLead(input: {fullName: \"Sub\"}) { created } }"})).await;
                assert_eq!(body["data"]["createLead"]["created"], true);
                let m = ws_until(&mut ws, "op").await;
                assert!(m["payload"]["errors"].is_null(), "{m}");
            }
        }
    }
}

#[tokio::test]
async fn http_routes_are_guarded_like_graphql() {
    let app = TestApp::start().await;
    let read = token(&app, "r-read", Role::Read);
    for path in ["/metrics", "/export/leads.csv", "/export/leads.json"] {
        let with = app
            .http
            .get(app.url(path))
            .bearer_auth(&read)
            .send()
            .await
            .unwrap();
        if with.status() == 404 {
            // The export routes come with the export branch; until then there is nothing to guard.
            eprintln!("{path} does not exist in this build; skipped");
            continue;
        }
        assert_eq!(with.status(), 200, "{path} with a read token");
        let without = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(without.status(), 401, "{path} without a token");
        let bad = app
            .http
            .get(app.url(path))
            .bearer_auth("lc_wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 401, "{path} with a bad token");
    }
    for open in ["/healthz", "/readyz"] {
        assert_eq!(
            app.http.get(app.url(open)).send().await.unwrap().status(),
            200,
            "{open} needs no token"
        );
    }
    let malformed = app
        .http
        .post(app.url("/graphql"))
        .header("Authorization", "Basic abc")
        .json(&json!({"query": "{ statuses }"}));
    let resp = malformed.send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn tokens_made_over_graphql_work_and_revocation_needs_no_restart() {
    let app = TestApp::start().await;
    let admin = token(&app, "boss", Role::Admin);
    let (_, body) = post(
        &app,
        Some(&admin),
        json!({"query": "mutation { createApiToken(name: \"agent-7\", role: WRITE) { secret token { name role prefix revokedAt } } }"}),
    )
    .await;
    let created = &body["data"]["createApiToken"];
    let secret = created["secret"].as_str().unwrap().to_string();
    assert_eq!(created["token"]["role"], "write");
    assert!(secret.starts_with(created["token"]["prefix"].as_str().unwrap()));
    let stored = app
        .count("SELECT COUNT(*) AS n FROM api_tokens WHERE token_hash LIKE 'lc_%'")
        .await;
    assert_eq!(stored, 0, "only hashes are stored");

    // The list never shows secrets.
    let (_, list) = post(
        &app,
        Some(&admin),
        json!({"query": "{ apiTokens { name role prefix } }"}),
    )
    .await;
    assert!(!list.to_string().contains(&secret));
    assert_eq!(list["data"]["apiTokens"].as_array().unwrap().len(), 2);

    // Within the cache time the new token works, and its name is the actor of its writes.
    let deadline = Instant::now() + Duration::from_secs(15);
    let create = json!({"query": "mutation { createLead(input: {fullName: \"Ada\"}) { lead { id events { actor } } } }"});
    let lead = loop {
        let (status, body) = post(&app, Some(&secret), create.clone()).await;
        if status == 200 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the new token never started working"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        lead["data"]["createLead"]["lead"]["events"][0]["actor"], "agent-7",
        "{lead:#}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM lead_events WHERE actor = 'agent-7'")
            .await,
        1
    );

    // Its use is recorded (in the background, at most once a minute), the unused token stays null.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, list) = post(
            &app,
            Some(&admin),
            json!({"query": "{ apiTokens { name lastUsedAt } }"}),
        )
        .await;
        let tokens = list["data"]["apiTokens"].as_array().unwrap().clone();
        let used = |name: &str| {
            tokens
                .iter()
                .find(|t| t["name"] == name)
                .map(|t| t["lastUsedAt"].clone())
                .unwrap()
        };
        if used("agent-7").is_string() && used("boss").is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lastUsedAt never recorded: {list:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A write token may not manage tokens.
    let (_, refused) = post(
        &app,
        Some(&secret),
        json!({"query": "{ apiTokens { name } }"}),
    )
    .await;
    assert_eq!(first_code(&refused).as_deref(), Some("FORBIDDEN"));

    let (_, revoked) = post(
        &app,
        Some(&admin),
        json!({"query": "mutation { revokeApiToken(name: \"agent-7\") { name revokedAt } }"}),
    )
    .await;
    assert!(
        revoked["data"]["revokeApiToken"]["revokedAt"].is_string(),
        "{revoked:#}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = post(&app, Some(&secret), json!({"query": "{ statuses }"})).await;
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the revoked token kept working");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, again) = post(
        &app,
        Some(&admin),
        json!({"query": "mutation { revokeApiToken(name: \"agent-7\") { name } }"}),
    )
    .await;
    assert_eq!(first_code(&again).as_deref(), Some("NOT_FOUND"));
    let (_, bad) = post(
        &app,
        Some(&admin),
        json!({"query": "mutation { createApiToken(name: \"system\", role: READ) { secret } }"}),
    )
    .await;
    assert_eq!(
        first_code(&bad).as_deref(),
        Some("VALIDATION"),
        "reserved actor names are refused"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM api_tokens WHERE name = 'system'")
            .await,
        0
    );
}

fn file_entry(name: &str, role: &str, secret: &str) -> String {
    format!(
        "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
        leadcache::tokens::hash(secret)
    )
}

#[tokio::test]
async fn the_tokens_file_is_reread_so_rotation_needs_no_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, file_entry("rotating", "read", "lc_first-secret")).unwrap();
    let path = file.clone();
    let app = TestApp::start_with(move |c| c.tokens_file = Some(path)).await;
    let (status, _) = post(
        &app,
        Some("lc_first-secret"),
        json!({"query": "{ statuses }"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(&app, None, json!({"query": "{ statuses }"})).await;
    assert_eq!(status, 401, "a tokens file closes the server");

    std::fs::write(&file, file_entry("rotating", "read", "lc_second-secret")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (old, _) = post(
            &app,
            Some("lc_first-secret"),
            json!({"query": "{ statuses }"}),
        )
        .await;
        let (new, _) = post(
            &app,
            Some("lc_second-secret"),
            json!({"query": "{ statuses }"}),
        )
        .await;
        if old == 401 && new == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rotation not picked up: old {old}, new {new}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken file fails closed, without naming the file to the client.
    std::fs::write(&file, "this is not toml [[[").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = post(
            &app,
            Some("lc_second-secret"),
            json!({"query": "{ statuses }"}),
        )
        .await;
        if status == 503 {
            assert!(!body.to_string().contains("tokens.toml"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a broken tokens file kept serving"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_open_server_serves_only_local_callers_and_is_refused_off_loopback() {
    let app = TestApp::start().await;
    let (status, body) = post(&app, None, json!({"query": "{ statuses }"})).await;
    assert_eq!(
        status, 200,
        "no token configured: open on loopback: {body:#}"
    );
    let lead = app.create_lead(json!({"fullName": "Local Lou"})).await;
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM lead_events WHERE actor = 'local'")
            .await,
        1,
        "{lead}"
    );

    // A page on another site that rebinds its name to 127.0.0.1 is refused.
    let rebound = app
        .http
        .post(app.url("/graphql"))
        .header("Host", "evil.example")
        .json(&json!({"query": "{ statuses }"}));
    let resp = rebound.send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // A cross-site form post (text/plain, no preflight) cannot run a mutation.
    let csrf = app
        .http
        .post(app.url("/graphql"))
        .header("Content-Type", "text/plain")
        .body(
            json!({"query": "mutation { createLead(input: {fullName: \"CSRF\"}) { created } }"})
                .to_string(),
        );
    assert_eq!(csrf.send().await.unwrap().status(), 415);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads WHERE full_name = 'CSRF'")
            .await,
        0
    );

    // Binding a non-loopback address without tokens is refused at start.
    let config = leadcache::config::Config::for_database(app.dir.path().join("other.db"));
    let db = leadcache::app::open_database(&config).unwrap();
    let state = leadcache::state::AppState::new(config, db, leadcache::state::Mode::LocalOnly);
    let err = leadcache::app::start(state, "0.0.0.0:0".parse().unwrap())
        .await
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("without API tokens"), "{err}");
}

#[tokio::test]
async fn cache_status_last_backup_is_admin_only() {
    let app = TestApp::start().await;
    let read = token(&app, "dash-read", Role::Read);
    let write = token(&app, "dash-write", Role::Write);
    let admin = token(&app, "dash-admin", Role::Admin);
    let (_, body) = post(
        &app,
        Some(&admin),
        json!({"query": "mutation { backupNow { file } }"}),
    )
    .await;
    let file = body["data"]["backupNow"]["file"]
        .as_str()
        .unwrap_or_else(|| panic!("{body:#}"))
        .to_string();
    let q = json!({"query": "{ cacheStatus { totalLeads lastBackup { file reason } } }"});
    for t in [&read, &write] {
        let (status, body) = post(&app, Some(t), q.clone()).await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(
            body["data"]["cacheStatus"]["totalLeads"], 0,
            "the rest answers: {body:#}"
        );
        assert!(
            body["data"]["cacheStatus"]["lastBackup"].is_null(),
            "{body:#}"
        );
        assert_eq!(first_code(&body).as_deref(), Some("FORBIDDEN"), "{body:#}");
        assert_eq!(
            body["errors"][0]["path"],
            json!(["cacheStatus", "lastBackup"]),
            "{body:#}"
        );
        assert!(!body.to_string().contains(&file), "{body:#}");
    }
    // Without the field, a read token sees no error.
    let (_, body) = post(
        &app,
        Some(&read),
        json!({"query": "{ cacheStatus { totalLeads fresh } }"}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let (_, body) = post(&app, Some(&admin), q).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(
        body["data"]["cacheStatus"]["lastBackup"]["file"],
        file.as_str()
    );
}

#[tokio::test]
async fn the_admin_page_and_graphiql_cannot_be_framed() {
    let app = TestApp::start().await;
    for path in ["/", "/index.html", "/app.js", "/graphiql", "/no-such-page"] {
        let resp = app.get(path).await;
        let h = resp.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
    let resp = app.get("/").await;
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let host = app.running.addr.to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        csp.contains(&format!("connect-src 'self' ws://{host} wss://{host}")),
        "the page's own WebSocket is allowed: {csp}"
    );
}

#[tokio::test]
async fn an_open_server_refuses_a_foreign_host_on_every_route_but_the_probes() {
    let app = TestApp::start().await;
    let routes = [
        "/",
        "/index.html",
        "/app.js",
        "/no-such-page",
        "/graphiql",
        "/schema.graphql",
        "/metrics",
        "/export/leads.csv",
        "/export/leads.json",
        "/graphql?query=%7Bstatuses%7D",
        "/graphql/ws",
    ];
    for path in routes {
        let local = app.http.get(app.url(path)).send().await.unwrap();
        assert_ne!(local.status(), 403, "{path} refused a local caller");
        let resp = app
            .http
            .get(app.url(path))
            .header("Host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{path} answered a foreign Host");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            first_code(&body).as_deref(),
            Some("FORBIDDEN"),
            "{path}: {body}"
        );
    }
    for probe in ["/healthz", "/readyz"] {
        let resp = app
            .http
            .get(app.url(probe))
            .header("Host", "lb.internal:8080")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{probe} is for any prober");
    }
    // With tokens the server is no longer open: Host is not checked (the token is).
    let read = token(&app, "remote", Role::Read);
    let deadline = Instant::now() + leadcache::tokens::CACHE_TTL * 5;
    loop {
        let resp = app
            .http
            .get(app.url("/schema.graphql"))
            .header("Host", "leads.example")
            .bearer_auth(&read)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", resp.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_open_server_does_not_mint_or_revoke_tokens_over_graphql() {
    let app = TestApp::start().await;
    for (name, query) in [
        (
            "createApiToken",
            "mutation { createApiToken(name: \"grab\", role: ADMIN) { secret } }",
        ),
        (
            "revokeApiToken",
            "mutation { revokeApiToken(name: \"grab\") { name } }",
        ),
    ] {
        let (status, body) = post(&app, None, json!({ "query": query })).await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(
            first_code(&body).as_deref(),
            Some("FORBIDDEN"),
            "{name}: {body:#}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("leadcache token create --name N --role admin"),
            "{name}: the message says how to make the first token: {message}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM api_tokens").await, 0);
    // The server stays open to local callers: nobody was locked out.
    let (status, _) = post(&app, None, json!({"query": "{ statuses }"})).await;
    assert_eq!(status, 200);

    // With the first token from the command line (seen within the token cache's TTL), an admin
    // token creates more, working at once.
    let admin = token(&app, "first-admin", Role::Admin);
    let create =
        json!({"query": "mutation { createApiToken(name: \"agent\", role: READ) { secret } }"});
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = post(&app, Some(&admin), create.clone()).await;
        if status != 401 {
            break body;
        }
        assert!(Instant::now() < deadline, "the CLI's token never worked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let secret = body["data"]["createApiToken"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{body:#}"))
        .to_string();
    let (status, body) = post(&app, Some(&secret), json!({"query": "{ statuses }"})).await;
    assert_eq!(
        status, 200,
        "a token created over GraphQL works at once: {body:#}"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM api_tokens").await, 2);
}

#[tokio::test]
async fn a_revoke_over_graphql_takes_effect_at_once() {
    let app = TestApp::start().await;
    let admin = token(&app, "boss", Role::Admin);
    let reader = token(&app, "soon-gone", Role::Read);
    // Both tokens are in the server's token cache now.
    let (status, _) = post(&app, Some(&reader), json!({"query": "{ statuses }"})).await;
    assert_eq!(status, 200);
    let (_, body) = post(
        &app,
        Some(&admin),
        json!({"query": "mutation { revokeApiToken(name: \"soon-gone\") { revokedAt } }"}),
    )
    .await;
    assert!(
        body["data"]["revokeApiToken"]["revokedAt"].is_string(),
        "{body:#}"
    );
    // The very next request, well inside the cache's TTL, is refused.
    let (status, body) = post(&app, Some(&reader), json!({"query": "{ statuses }"})).await;
    assert_eq!(status, 401, "{body:#}");
    assert_eq!(first_code(&body).as_deref(), Some("UNAUTHENTICATED"));
}
