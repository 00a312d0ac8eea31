//! Subscriptions end to end: a real WebSocket client (tokio-tungstenite) against the real server,
//! for both protocols, with the writes made over HTTP like an agent would.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::TestApp;

/// How long to wait for one expected message (generous: a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Protocol {
    /// `graphql-transport-ws`: subscribe / next / complete.
    Transport,
    /// legacy `graphql-ws`: start / data / stop.
    Legacy,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Transport => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }
}

/// What the server sent: a JSON message, or a close frame.
#[derive(Debug)]
enum Got {
    Json(Value),
    Closed(u16, String),
}

struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    protocol: Protocol,
}

impl WsClient {
    /// Opens the socket and sends `connection_init` with `payload`; does not wait for the answer.
    async fn open(app: &TestApp, protocol: Protocol, payload: Value) -> WsClient {
        WsClient::open_with(app, protocol, payload, None).await
    }

    /// Like [`open`], optionally with a small socket receive buffer (a client that stops reading
    /// then stops the server's writes sooner).
    async fn open_with(
        app: &TestApp,
        protocol: Protocol,
        payload: Value,
        recv_buffer: Option<u32>,
    ) -> WsClient {
        let mut client = WsClient::bare(app, protocol, recv_buffer).await;
        client
            .send(json!({"type": "connection_init", "payload": payload}))
            .await;
        client
    }

    /// Opens the socket and sends nothing.
    async fn bare(app: &TestApp, protocol: Protocol, recv_buffer: Option<u32>) -> WsClient {
        let url = app.url("/graphql/ws").replacen("http://", "ws://", 1);
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(protocol.name()),
        );
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let tcp = socket.connect(app.running.addr).await.unwrap();
        let (ws, response) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            protocol.name(),
            "the server speaks the asked protocol"
        );
        WsClient { ws, protocol }
    }

    /// Opens the socket and waits for `connection_ack`.
    async fn connect(app: &TestApp, protocol: Protocol, payload: Value) -> WsClient {
        WsClient::connect_with(app, protocol, payload, None).await
    }

    async fn connect_with(
        app: &TestApp,
        protocol: Protocol,
        payload: Value,
        recv_buffer: Option<u32>,
    ) -> WsClient {
        let mut c = WsClient::open_with(app, protocol, payload, recv_buffer).await;
        match c.recv().await {
            Got::Json(m) if m["type"] == "connection_ack" => c,
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    async fn send(&mut self, msg: Value) {
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
    }

    /// The next JSON message or close frame (pings and keep-alives are skipped).
    async fn recv(&mut self) -> Got {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no message from the server in time")
                .expect("socket ended without a close frame")
                .expect("socket error");
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if matches!(v["type"].as_str(), Some("ka" | "ping" | "pong")) {
                        continue;
                    }
                    return Got::Json(v);
                }
                Message::Close(frame) => {
                    return match frame {
                        Some(f) => Got::Closed(f.code.into(), f.reason.to_string()),
                        None => Got::Closed(1005, String::new()),
                    };
                }
                _ => continue,
            }
        }
    }

    async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.protocol == Protocol::Transport {
            "subscribe"
        } else {
            "start"
        };
        self.send(
            json!({"id": id, "type": kind, "payload": {"query": query, "variables": variables}}),
        )
        .await;
    }

    async fn unsubscribe(&mut self, id: &str) {
        let kind = if self.protocol == Protocol::Transport {
            "complete"
        } else {
            "stop"
        };
        self.send(json!({"id": id, "type": kind})).await;
    }

    /// The payload of the next result (`next` / `data`) for subscription `id`.
    async fn next_payload(&mut self, id: &str) -> Value {
        let kind = if self.protocol == Protocol::Transport {
            "next"
        } else {
            "data"
        };
        match self.recv().await {
            Got::Json(m) if m["type"] == kind && m["id"] == id => m["payload"].clone(),
            other => panic!("expected {kind} for {id}, got {other:?}"),
        }
    }

    /// The `data.leadChanged` of the next result, asserting it has no errors.
    async fn next_change(&mut self, id: &str) -> Value {
        let p = self.next_payload(id).await;
        assert!(p.get("errors").is_none(), "unexpected errors: {p}");
        p["data"]["leadChanged"].clone()
    }

    /// Subscribes and waits until the server listens on the change bus (a subscription's stream
    /// starts when the server first polls it, a moment after it read the message).
    async fn subscribe_changes(&mut self, app: &TestApp, id: &str, variables: Value) {
        self.subscribe_query(app, id, CHANGES, variables).await;
    }

    async fn subscribe_query(&mut self, app: &TestApp, id: &str, query: &str, variables: Value) {
        let before = app.state().bus.lead_subscribers();
        self.subscribe(id, query, variables).await;
        wait_until(|| app.state().bus.lead_subscribers() > before).await;
    }

    /// Waits until the server would have sent something already queued: a round trip through the
    /// same connection (a ping for graphql-transport-ws; a second, throwaway subscription for the
    /// legacy protocol, whose `stop` the server answers with `complete` in order).
    async fn assert_nothing_pending(&mut self) {
        match self.protocol {
            Protocol::Transport => {
                self.send(json!({"type": "ping"})).await;
                let msg = tokio::time::timeout(WAIT, self.ws.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
                assert_eq!(v["type"], "pong", "nothing was queued before the pong: {v}");
            }
            Protocol::Legacy => {
                self.subscribe("probe", "subscription { syncProgress { id } }", json!({}))
                    .await;
                self.unsubscribe("probe").await;
                match self.recv().await {
                    Got::Json(m) if m["type"] == "complete" && m["id"] == "probe" => {}
                    other => panic!(
                        "nothing should be queued before the probe's complete, got {other:?}"
                    ),
                }
            }
        }
    }
}

/// Polls `cond` every 10 ms for up to [`WAIT`].
async fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const CHANGES: &str = "subscription($status: String) { leadChanged(status: $status) { kind changedFields actor \
    lead { id fullName status title deletedAt version } } }";

async fn lead_changes_are_delivered(protocol: Protocol) {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app, protocol, json!({})).await;
    ws.subscribe_changes(&app, "1", json!({})).await;

    let id = app
        .create_lead(json!({"fullName": "Jane Doe", "status": "scraped"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = ws.next_change("1").await;
    assert_eq!(c["kind"], "CREATED");
    assert_eq!(c["actor"], "local");
    assert_eq!(c["lead"]["id"], id.as_str());
    assert_eq!(c["lead"]["fullName"], "Jane Doe");
    let fields: Vec<&str> = c["changedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"full_name") && fields.contains(&"status"),
        "{fields:?}"
    );

    app.ok(
        "mutation($id: ID!) { updateLead(id: $id, patch: {title: \"CTO\", status: \"contacted\"}) { id } }",
        json!({"id": id}),
    )
    .await;
    let c = ws.next_change("1").await;
    assert_eq!(c["kind"], "UPDATED");
    assert_eq!(c["lead"]["title"], "CTO");
    assert_eq!(c["lead"]["status"], "contacted");
    assert_eq!(c["lead"]["version"], 2);
    let mut fields: Vec<&str> = c["changedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["status", "title"], "only the changed fields");

    app.ok(
        "mutation($id: ID!) { deleteLead(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    let c = ws.next_change("1").await;
    assert_eq!(c["kind"], "DELETED");
    assert!(c["lead"]["deletedAt"].is_string(), "{c}");

    // After unsubscribing (the server confirms with `complete`), nothing more arrives.
    ws.unsubscribe("1").await;
    match ws.recv().await {
        Got::Json(m) if m["type"] == "complete" && m["id"] == "1" => {}
        other => panic!("expected complete, got {other:?}"),
    }
    app.create_lead(json!({"fullName": "After Unsubscribe"}))
        .await;
    ws.assert_nothing_pending().await;
}

#[tokio::test]
async fn lead_changed_delivers_create_update_delete_over_graphql_transport_ws() {
    lead_changes_are_delivered(Protocol::Transport).await;
}

#[tokio::test]
async fn lead_changed_delivers_create_update_delete_over_legacy_graphql_ws() {
    lead_changes_are_delivered(Protocol::Legacy).await;
}

async fn status_argument_filters(protocol: Protocol) {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app, protocol, json!({})).await;
    ws.subscribe_changes(&app, "won", json!({"status": "won"}))
        .await;
    let a = app
        .create_lead(json!({"fullName": "Not Won", "status": "new"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = app
        .create_lead(json!({"fullName": "Won Lead", "status": "won"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The status after the change decides: moving `a` to won is delivered, moving `b` away is not.
    app.ok(
        "mutation($id: ID!) { updateLead(id: $id, patch: {status: \"lost\"}) { id } }",
        json!({"id": b}),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { updateLead(id: $id, patch: {status: \"won\"}) { id } }",
        json!({"id": a}),
    )
    .await;
    let first = ws.next_change("won").await;
    assert_eq!(
        (first["kind"].as_str(), first["lead"]["id"].as_str()),
        (Some("CREATED"), Some(b.as_str()))
    );
    let second = ws.next_change("won").await;
    assert_eq!(
        (second["kind"].as_str(), second["lead"]["id"].as_str()),
        (Some("UPDATED"), Some(a.as_str()))
    );
    assert_eq!(second["lead"]["status"], "won");
    ws.assert_nothing_pending().await;
}

#[tokio::test]
async fn lead_changed_status_argument_filters_over_graphql_transport_ws() {
    status_argument_filters(Protocol::Transport).await;
}

#[tokio::test]
async fn lead_changed_status_argument_filters_over_legacy_graphql_ws() {
    status_argument_filters(Protocol::Legacy).await;
}

/// A server with tokens configured: HTTP requests of `app` use a `write` token named `writer`;
/// returns the secret of a `read` token for the subscriber.
async fn app_with_token() -> (TestApp, String) {
    use leadcache::auth::Role;
    let mut app = TestApp::start().await;
    let (read, write) = app
        .db()
        .run(|c| {
            Ok((
                leadcache::tokens::create(c, "live-reader", Role::Read)?.0,
                leadcache::tokens::create(c, "writer", Role::Write)?.0,
            ))
        })
        .await
        .unwrap();
    app.token = Some(write);
    (app, read)
}

#[tokio::test]
async fn a_bad_token_in_connection_init_is_refused_with_4403_on_graphql_transport_ws() {
    let (app, token) = app_with_token().await;
    for payload in [
        json!({}),
        json!({"Authorization": "Bearer lc_not-a-real-token"}),
        json!({"token": "nope"}),
    ] {
        let mut ws = WsClient::open(&app, Protocol::Transport, payload.clone()).await;
        match ws.recv().await {
            Got::Closed(code, reason) => {
                assert_eq!(code, 4403, "{payload}: {reason}");
                assert!(
                    reason.starts_with("UNAUTHENTICATED: "),
                    "the reason names the problem: {reason}"
                );
            }
            other => panic!("{payload}: expected a close, got {other:?}"),
        }
    }
    // The right token, in either payload shape, is let in and its name is the actor.
    for payload in [
        json!({"Authorization": format!("Bearer {token}")}),
        json!({"token": token}),
    ] {
        let mut ws = WsClient::connect(&app, Protocol::Transport, payload).await;
        ws.subscribe_changes(&app, "1", json!({})).await;
        app.create_lead(json!({"fullName": "Seen"})).await;
        assert_eq!(ws.next_change("1").await["kind"], "CREATED");
    }
}

#[tokio::test]
async fn a_bad_token_in_connection_init_is_refused_with_connection_error_on_legacy_graphql_ws() {
    let (app, token) = app_with_token().await;
    let mut ws = WsClient::open(
        &app,
        Protocol::Legacy,
        json!({"Authorization": "Bearer wrong"}),
    )
    .await;
    match ws.recv().await {
        Got::Json(m) => {
            assert_eq!(m["type"], "connection_error", "{m}");
            assert_eq!(
                m["payload"]["message"], "UNAUTHENTICATED: unknown or revoked token",
                "{m}"
            );
        }
        other => panic!("expected connection_error, got {other:?}"),
    }
    let mut ws = WsClient::connect(
        &app,
        Protocol::Legacy,
        json!({"Authorization": format!("Bearer {token}")}),
    )
    .await;
    ws.subscribe_changes(&app, "1", json!({})).await;
    app.create_lead(json!({"fullName": "Seen"})).await;
    let c = ws.next_change("1").await;
    assert_eq!(
        (c["kind"].as_str(), c["actor"].as_str()),
        (Some("CREATED"), Some("writer"))
    );
}

/// Waits for the close frame of a socket whose token was revoked at `revoked`; returns how long
/// after the revoke it came. Changes made meanwhile may still arrive before the close.
async fn closed_after_revoke(ws: &mut WsClient, revoked: std::time::Instant) -> Duration {
    let deadline = revoked + Duration::from_secs(20);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the socket of a revoked token stayed open"
        );
        match tokio::time::timeout(Duration::from_millis(100), ws.recv()).await {
            Err(_) => continue,
            Ok(Got::Closed(code, reason)) => {
                let after = revoked.elapsed();
                assert_eq!(code, 4403, "{reason}");
                assert_eq!(reason, "UNAUTHENTICATED: unknown or revoked token");
                return after;
            }
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn revoking_a_token_from_the_command_line_closes_its_subscriptions_within_2_s() {
    // The documented bound: one recheck period plus the token cache's TTL.
    assert!(
        leadcache::ws::RECHECK_EVERY + leadcache::tokens::CACHE_TTL <= Duration::from_secs(2),
        "a command-line revoke must close sockets within the documented 2 s"
    );
    let (app, read_token) = app_with_token().await;
    let mut ws = WsClient::connect(&app, Protocol::Transport, json!({"token": read_token})).await;
    ws.subscribe_changes(&app, "1", json!({})).await;
    app.create_lead(json!({"fullName": "Before"})).await;
    assert_eq!(ws.next_change("1").await["kind"], "CREATED");

    // As `leadcache token revoke` does: straight in the database, the server is not told.
    let revoked = app
        .db()
        .run(|c| leadcache::tokens::revoke(c, "live-reader"))
        .await
        .unwrap();
    assert!(revoked);
    let at = std::time::Instant::now();
    let after = closed_after_revoke(&mut ws, at).await;
    assert!(
        after < Duration::from_millis(2500),
        "closed {after:?} after a command-line revoke (documented: within 2 s)"
    );
}

#[tokio::test]
async fn revoking_a_token_over_graphql_closes_its_subscriptions_at_once() {
    use leadcache::auth::Role;
    let (mut app, read_token) = app_with_token().await;
    let admin = app
        .db()
        .run(|c| Ok(leadcache::tokens::create(c, "boss", Role::Admin)?.0))
        .await
        .unwrap();
    let mut ws = WsClient::connect(&app, Protocol::Transport, json!({"token": read_token})).await;
    ws.subscribe_changes(&app, "1", json!({})).await;
    app.create_lead(json!({"fullName": "Before"})).await;
    assert_eq!(ws.next_change("1").await["kind"], "CREATED");

    app.token = Some(admin);
    let body = app
        .gql(
            "mutation { revokeApiToken(name: \"live-reader\") { revokedAt } }",
            json!({}),
        )
        .await;
    let at = std::time::Instant::now();
    assert!(
        body["data"]["revokeApiToken"]["revokedAt"].is_string(),
        "{body:#}"
    );
    let after = closed_after_revoke(&mut ws, at).await;
    assert!(
        after < Duration::from_secs(1),
        "closed {after:?} after a revoke over the API (expected at once)"
    );
}

#[tokio::test]
async fn a_read_token_subscribes_and_sees_writes_by_other_tokens_with_their_name() {
    let (app, read_token) = app_with_token().await;
    let mut ws = WsClient::connect(&app, Protocol::Transport, json!({"token": read_token})).await;
    ws.subscribe_changes(&app, "1", json!({})).await;
    app.create_lead(json!({"fullName": "By The Writer"})).await;
    let c = ws.next_change("1").await;
    assert_eq!(
        c["actor"], "writer",
        "the actor is the writing token's name"
    );
}

async fn slow_subscriber_is_dropped_without_slowing_writers(protocol: Protocol) {
    const WRITES: usize = 3_000;
    const BATCH: usize = 250;
    let app = TestApp::start().await;
    // A subscriber that selects a large payload (8 KB of `extra` per lead), reads nothing, and has
    // a small receive buffer: the server's socket buffers fill after a few hundred events, then the
    // bus keeps its place for `events::CAPACITY` more, then it is dropped.
    let mut slow = WsClient::connect_with(&app, protocol, json!({}), Some(8 * 1024)).await;
    slow.subscribe_query(
        &app,
        "slow",
        "subscription { leadChanged { kind lead { id extra } } }",
        json!({}),
    )
    .await;
    // A second subscriber that keeps reading proves delivery goes on for everybody else.
    let mut fast = WsClient::connect(&app, protocol, json!({})).await;
    fast.subscribe_query(
        &app,
        "fast",
        "subscription { leadChanged { kind lead { id } } }",
        json!({}),
    )
    .await;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < WRITES {
            let p = fast.next_payload("fast").await;
            assert!(
                p.get("errors").is_none(),
                "a reading subscriber is never dropped: {p}"
            );
            n += 1;
        }
        n
    });

    let blob = "x".repeat(8 * 1024);
    let writes = async {
        for batch in 0..WRITES / BATCH {
            let inputs: Vec<Value> = (0..BATCH)
                .map(|i| json!({"fullName": format!("Lead {batch}-{i}"), "extra": {"Notes": blob}}))
                .collect();
            let d = app
                .ok(
                    "mutation($i: [LeadInput!]!) { createLeads(inputs: $i) { created failed } }",
                    json!({"i": inputs}),
                )
                .await;
            assert_eq!(d["createLeads"]["created"], BATCH, "{d}");
        }
    };
    // Writers must not wait for the subscriber: if they did, they would never finish.
    tokio::time::timeout(Duration::from_secs(300), writes)
        .await
        .expect("writes blocked by a subscriber that does not read");
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads").await,
        WRITES as i64
    );
    assert_eq!(
        reader.await.unwrap(),
        WRITES,
        "the reading subscriber got every change"
    );

    // The slow subscriber resumes: first what was already in the socket buffers, then one error
    // that says why the stream ends, then `complete`.
    let mut delivered = 0;
    let error = loop {
        let p = slow.next_payload("slow").await;
        if let Some(errors) = p.get("errors") {
            break errors[0].clone();
        }
        assert_eq!(p["data"]["leadChanged"]["kind"], "CREATED");
        delivered += 1;
    };
    assert!(
        delivered < WRITES - leadcache::events::CAPACITY,
        "{delivered} changes were delivered before the drop"
    );
    assert_eq!(error["extensions"]["code"], "LIMIT", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("too slow") && message.contains("subscribe again"),
        "the message says what happened and what to do: {message}"
    );
    match slow.recv().await {
        Got::Json(m) if m["type"] == "complete" && m["id"] == "slow" => {}
        other => panic!("expected complete after the error, got {other:?}"),
    }
    // The connection itself stays usable: subscribing again works.
    slow.subscribe_changes(&app, "again", json!({})).await;
    app.create_lead(json!({"fullName": "After The Drop"})).await;
    assert_eq!(
        slow.next_change("again").await["lead"]["fullName"],
        "After The Drop"
    );
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_does_not_slow_writers_and_is_told_why_it_was_dropped_graphql_transport_ws()
 {
    slow_subscriber_is_dropped_without_slowing_writers(Protocol::Transport).await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_does_not_slow_writers_and_is_told_why_it_was_dropped_legacy_graphql_ws()
 {
    slow_subscriber_is_dropped_without_slowing_writers(Protocol::Legacy).await;
}

// ---- Protocol bounds (issue 15, item 9) ----

async fn a_socket_that_never_inits_is_closed_with_4408(protocol: Protocol) {
    let wait = Duration::from_millis(400);
    let app = TestApp::start_with(|c| c.ws_init_timeout = wait).await;
    let started = std::time::Instant::now();
    let mut silent = WsClient::bare(&app, protocol, None).await;
    match silent.recv().await {
        Got::Closed(code, reason) => {
            assert_eq!(code, 4408, "{reason}");
            assert!(reason.contains("initialisation timeout"), "{reason}");
        }
        other => panic!("expected a 4408 close, got {other:?}"),
    }
    assert!(
        started.elapsed() >= wait - Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    // A socket that did init stays open past the timeout.
    let mut ws = WsClient::connect(&app, protocol, json!({})).await;
    tokio::time::sleep(wait * 2).await;
    ws.assert_nothing_pending().await;
}

#[tokio::test]
async fn a_socket_that_never_sends_connection_init_is_closed_with_4408_graphql_transport_ws() {
    a_socket_that_never_inits_is_closed_with_4408(Protocol::Transport).await;
}

#[tokio::test]
async fn a_socket_that_never_sends_connection_init_is_closed_with_4408_legacy_graphql_ws() {
    a_socket_that_never_inits_is_closed_with_4408(Protocol::Legacy).await;
}

async fn a_reused_subscribe_id_closes_with_4409(protocol: Protocol) {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app, protocol, json!({})).await;
    ws.subscribe_changes(&app, "1", json!({})).await;
    // Completed ids may be used again.
    ws.subscribe_changes(&app, "2", json!({})).await;
    ws.unsubscribe("2").await;
    match ws.recv().await {
        Got::Json(m) if m["type"] == "complete" && m["id"] == "2" => {}
        other => panic!("expected complete for 2, got {other:?}"),
    }
    ws.subscribe_changes(&app, "2", json!({})).await;
    // A live one may not.
    ws.subscribe("1", CHANGES, json!({})).await;
    match ws.recv().await {
        Got::Closed(code, reason) => {
            assert_eq!(code, 4409, "{reason}");
            assert_eq!(reason, "Subscriber for 1 already exists");
        }
        other => panic!("expected a 4409 close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reused_subscribe_id_closes_the_socket_with_4409_graphql_transport_ws() {
    a_reused_subscribe_id_closes_with_4409(Protocol::Transport).await;
}

#[tokio::test]
async fn a_reused_subscribe_id_closes_the_socket_with_4409_legacy_graphql_ws() {
    a_reused_subscribe_id_closes_with_4409(Protocol::Legacy).await;
}

#[tokio::test]
async fn a_subscribe_before_connection_init_closes_with_4401() {
    let app = TestApp::start().await;
    let mut ws = WsClient::bare(&app, Protocol::Transport, None).await;
    ws.subscribe("1", CHANGES, json!({})).await;
    match ws.recv().await {
        Got::Closed(code, _) => assert_eq!(code, 4401),
        other => panic!("expected a 4401 close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_message_over_the_cap_closes_with_1009_and_the_server_goes_on() {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app, Protocol::Transport, json!({})).await;
    let cap = leadcache::server::WS_MAX_MESSAGE_BYTES;
    let padding = "x".repeat(cap);
    ws.send(json!({"type": "ping", "payload": {"pad": padding}}))
        .await;
    match ws.recv().await {
        Got::Closed(code, reason) => {
            assert_eq!(code, 1009, "{reason}");
            assert!(reason.contains(&cap.to_string()), "{reason}");
        }
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    let mut again = WsClient::connect(&app, Protocol::Transport, json!({})).await;
    again.assert_nothing_pending().await;
}

async fn a_query_over_64_kib_is_refused(protocol: Protocol) {
    let app = TestApp::start().await;
    let mut ws = WsClient::connect(&app, protocol, json!({})).await;
    ws.subscribe_changes(&app, "live", json!({})).await;
    let max = leadcache::graphql::MAX_QUERY_BYTES;
    let big = format!(
        "subscription {{ leadChanged {{ kind }} }}\n#{}",
        "x".repeat(65 * 1024)
    );
    assert!(big.len() > max);
    ws.subscribe("big", &big, json!({})).await;
    let refusal = match ws.recv().await {
        Got::Json(m) => m,
        other => panic!("expected an error for the big query, got {other:?}"),
    };
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["id"], "big", "{refusal}");
    let error = if protocol == Protocol::Transport {
        refusal["payload"][0].clone()
    } else {
        refusal["payload"].clone()
    };
    assert_eq!(error["extensions"]["code"], "LIMIT", "{refusal}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&max.to_string()),
        "{refusal}"
    );
    // The socket and its other subscription carry on.
    app.create_lead(json!({"fullName": "Still Here"})).await;
    assert_eq!(ws.next_change("live").await["kind"], "CREATED");
}

#[tokio::test]
async fn a_query_over_64_kib_is_refused_over_graphql_transport_ws_too() {
    a_query_over_64_kib_is_refused(Protocol::Transport).await;
}

#[tokio::test]
async fn a_query_over_64_kib_is_refused_over_legacy_graphql_ws_too() {
    a_query_over_64_kib_is_refused(Protocol::Legacy).await;
}
