//! GraphQL subscriptions over WebSocket (`GET /graphql/ws`), both protocols async-graphql speaks:
//! `graphql-transport-ws` (the current one, from the `graphql-ws` npm library) and the legacy
//! `graphql-ws` (Apollo's `subscriptions-transport-ws`).
//!
//! The token comes from the `connection_init` payload (`{"Authorization": "Bearer ..."}` or
//! `{"token": "..."}`), or else from the upgrade request's `Authorization` header; browsers cannot
//! set headers on a WebSocket, so the payload is the usual way.
//!
//! Why not `GraphQLWebSocket::serve` from async-graphql-axum: it closes a refused
//! `connection_init` with code 1002 ("protocol error"), where `graphql-transport-ws` asks for
//! 4403 Forbidden, and it passes error messages into close frames unchecked, though a close
//! reason may carry at most 123 bytes. This loop is the same as its, with those two fixed. Refusals
//! are told as `UNAUTHENTICATED: <why>` / `FORBIDDEN: <why>`, so a client can tell a bad token
//! from other closes; on the legacy protocol they arrive as a `connection_error` message.
//!
//! The credentials are checked again every [`RECHECK_EVERY`] while the socket is open, and at once
//! when a token is revoked over the API: a token revoked meanwhile closes it with 4403
//! `UNAUTHENTICATED: unknown or revoked token` (at once, or within 2 s of a command-line revoke).
//!
//! Bounds, on both protocols (close codes from graphql-transport-ws's PROTOCOL.md):
//! - a socket that sends no `connection_init` within `WS_INIT_TIMEOUT_MS` (10 s) is closed with
//!   4408; a `subscribe` before `connection_init` with 4401;
//! - a `subscribe` whose id is still active is closed with 4409 (async-graphql would silently
//!   replace the running subscription);
//! - a message over [`crate::server::WS_MAX_MESSAGE_BYTES`] is closed with 1009, unread;
//! - a query text over [`crate::graphql::MAX_QUERY_BYTES`] is refused as over HTTP: an `error`
//!   message for that id with code `LIMIT`; the socket and its other subscriptions stay;
//! - the socket holds one of the server's `MAX_CONNECTIONS` slots for as long as it is open.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};

use crate::server::App;
use crate::tokens::{Verdict, bearer};

/// Close code for a refused `connection_init` (graphql-transport-ws: "4403: Forbidden").
pub const CLOSE_REFUSED: u16 = 4403;
/// How often an open socket's credentials are checked again: a token revoked from the command
/// line (or tokens created on a server that was open) closes the socket with 4403 within this time
/// plus the token cache's TTL (1.5 s, under the documented 2 s), instead of streaming changes to a
/// caller who may no longer see them. A revoke over the API wakes the check at once.
pub const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// Longest close reason a WebSocket close frame can carry (125-byte control payload - 2-byte code).
const MAX_CLOSE_REASON: usize = 123;

/// The upgrade handler. Answers 400 when the client offers none of the two protocols.
pub async fn graphql_ws(
    State(app): State<App>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = offered_protocol(&headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "ask for the graphql-transport-ws or graphql-ws subprotocol (Sec-WebSocket-Protocol)",
        )
            .into_response();
    };
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(str::to_string);
    // An open server (no tokens) only serves pages of its own origin (DNS rebinding, CSWSH).
    if let Verdict::Open(_) = app.auth.check(None).await
        && let Err(e) = crate::guard::open_server_check(&headers, true)
    {
        return crate::server::graphql_error(e);
    }
    upgrade
        .max_message_size(crate::server::WS_MAX_MESSAGE_BYTES)
        .max_frame_size(crate::server::WS_MAX_MESSAGE_BYTES)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(socket, app, protocol, header_token))
}

fn offered_protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| {
            list.split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
}

/// The token of a `connection_init` payload, if it carries one.
fn payload_token(payload: &serde_json::Value) -> Option<String> {
    ["Authorization", "authorization"]
        .iter()
        .find_map(|k| {
            payload
                .get(k)
                .and_then(|v| v.as_str())
                .and_then(bearer)
                .map(str::to_string)
        })
        .or_else(|| {
            payload
                .get("token")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
}

async fn serve(
    socket: WebSocket,
    app: App,
    protocol: WebSocketProtocols,
    header_token: Option<String>,
) {
    let (mut sink, stream) = socket.split();
    let gate = Arc::new(Mutex::new(Gate::new(protocol)));
    // Answers decided while reading (a refused subscribe, a closing violation), sent by the loop.
    let (control, mut decided) = futures::channel::mpsc::unbounded::<Message>();
    let input = {
        let gate = gate.clone();
        stream
            .scan((), move |_, msg| {
                futures::future::ready(screen(msg, &gate, &control))
            })
            .filter_map(futures::future::ready)
    };
    let auth = app.auth.clone();
    // The credentials `connection_init` was let in with (`Some(None)`: an open server, no token).
    let accepted: Arc<Mutex<Option<Option<String>>>> = Arc::default();
    let admitted = accepted.clone();
    let messages = async_graphql::http::WebSocket::new(app.schema.clone(), input, protocol)
        .on_connection_init(move |payload| async move {
            let token = payload_token(&payload).or(header_token);
            match auth.check(token.as_deref()).await {
                Verdict::Allowed(caller) | Verdict::Open(caller) => {
                    if let Ok(mut slot) = admitted.lock() {
                        *slot = Some(token);
                    }
                    let mut data = async_graphql::Data::default();
                    data.insert(caller);
                    data.insert(crate::graphql::SubscriptionSlots::default());
                    Ok(data)
                }
                Verdict::Denied(e) => Err(async_graphql::Error::new(format!(
                    "{}: {}",
                    e.code(),
                    e.public_message()
                ))),
            }
        })
        .map(|msg| match msg {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => {
                let refused = code == 1002
                    && (reason.starts_with("UNAUTHENTICATED:") || reason.starts_with("FORBIDDEN:"));
                let code = if refused { CLOSE_REFUSED } else { code };
                close(code, reason)
            }
        });
    futures::pin_mut!(messages);
    let mut recheck = app.auth.rechecks(RECHECK_EVERY);
    let init_deadline = tokio::time::sleep(app.state.config.ws_init_timeout);
    futures::pin_mut!(init_deadline);
    let init_seen = |gate: &Mutex<Gate>| gate.lock().map(|g| g.init_seen).unwrap_or(true);
    loop {
        tokio::select! {
            biased;
            Some(msg) = decided.next() => {
                let closing = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || closing {
                    break;
                }
            }
            msg = messages.next() => {
                let Some(msg) = msg else {
                    // The input ended: a close decided while reading it goes out first.
                    while let Ok(msg) = decided.try_recv() {
                        let closing = matches!(msg, Message::Close(_));
                        if sink.send(msg).await.is_err() || closing {
                            break;
                        }
                    }
                    break;
                };
                if let Message::Text(text) = &msg
                    && let Ok(mut g) = gate.lock()
                {
                    g.sent(text);
                }
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            () = &mut init_deadline, if !init_seen(&gate) => {
                if !init_seen(&gate) {
                    tracing::debug!("closing a WebSocket that sent no connection_init in time");
                    let _ = sink.send(close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout".into())).await;
                    break;
                }
            }
            () = recheck.due() => {
                let Some(token) = accepted.lock().ok().and_then(|a| a.clone()) else {
                    continue;
                };
                if let Verdict::Denied(e) = app.auth.check(token.as_deref()).await {
                    let reason = format!("{}: {}", e.code(), e.public_message());
                    tracing::info!(reason, "closing a subscription socket whose credentials no longer hold");
                    let _ = sink.send(close(CLOSE_REFUSED, reason)).await;
                    break;
                }
            }
        }
    }
}

fn close(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: truncate(reason, MAX_CLOSE_REASON).into(),
    }))
}

/// One message from the client, screened before async-graphql sees it: `Some(Some(bytes))` to
/// pass on, `Some(None)` to drop (answered through `control`), `None` to end the input (a close
/// frame is queued on `control` when the client broke a rule).
fn screen(
    msg: Result<Message, axum::Error>,
    gate: &Mutex<Gate>,
    control: &futures::channel::mpsc::UnboundedSender<Message>,
) -> Option<Option<axum::body::Bytes>> {
    let bytes = match msg {
        Ok(m @ (Message::Text(_) | Message::Binary(_))) => m.into_data(),
        Ok(_) => return Some(None),
        Err(e) => {
            // tungstenite refuses a message over the cap before reading it, and says so only in
            // text. Reading on after that would read the refused message after all.
            let text = e.to_string();
            if text.contains("Message too long") || text.contains("Space limit exceeded") {
                let _ = control.unbounded_send(close(
                    CLOSE_TOO_BIG,
                    format!(
                        "message too big: at most {} bytes",
                        crate::server::WS_MAX_MESSAGE_BYTES
                    ),
                ));
            }
            return None;
        }
    };
    let screened = match gate.lock() {
        Ok(mut g) => g.screen(&bytes),
        Err(_) => Screened::Pass,
    };
    match screened {
        Screened::Pass => Some(Some(bytes)),
        Screened::Answer(text) => {
            let _ = control.unbounded_send(Message::Text(text.into()));
            Some(None)
        }
        Screened::Close(code, reason) => {
            let _ = control.unbounded_send(close(code, reason));
            None
        }
    }
}

/// Close code for a socket that sent no `connection_init` in time (graphql-transport-ws: "4408:
/// Connection initialisation timeout"; `WS_INIT_TIMEOUT_MS`).
pub const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// Close code for a `subscribe` whose id is already active ("4409: Subscriber for `<id>` already
/// exists").
pub const CLOSE_DUPLICATE_ID: u16 = 4409;
/// Close code for a `subscribe` before `connection_init` ("4401: Unauthorized").
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code for a message over [`crate::server::WS_MAX_MESSAGE_BYTES`] (RFC 6455: 1009
/// "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// What the protocol rules say about one client message.
#[derive(Debug, PartialEq)]
enum Screened {
    /// async-graphql handles it.
    Pass,
    /// Answered here (a refused operation); not passed on.
    Answer(String),
    /// The client broke the protocol: close the socket.
    Close(u16, String),
}

/// The protocol rules async-graphql leaves out (it replaces a subscription whose id is reused,
/// and knows nothing of our query-size limit), and the ids they need.
struct Gate {
    protocol: WebSocketProtocols,
    init_seen: bool,
    /// Operations started and not yet completed (by either side).
    active: std::collections::HashSet<String>,
}

/// The fields of a client message the rules look at.
#[derive(serde::Deserialize)]
struct Peek {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    /// Any JSON: a `connection_init` payload may be anything.
    payload: Option<serde_json::Value>,
}

impl Gate {
    fn new(protocol: WebSocketProtocols) -> Self {
        Gate {
            protocol,
            init_seen: false,
            active: Default::default(),
        }
    }

    fn screen(&mut self, bytes: &[u8]) -> Screened {
        // What does not parse is async-graphql's to refuse (it closes with 1002).
        let Ok(msg) = serde_json::from_slice::<Peek>(bytes) else {
            return Screened::Pass;
        };
        match (msg.kind.as_deref(), msg.id) {
            (Some("connection_init"), _) => {
                self.init_seen = true;
                Screened::Pass
            }
            (Some("subscribe" | "start"), Some(id)) => {
                if !self.init_seen {
                    return Screened::Close(CLOSE_UNAUTHORIZED, "Unauthorized".into());
                }
                if self.active.contains(&id) {
                    return Screened::Close(
                        CLOSE_DUPLICATE_ID,
                        format!("Subscriber for {id} already exists"),
                    );
                }
                let query_bytes = msg
                    .payload
                    .as_ref()
                    .and_then(|p| p.get("query"))
                    .and_then(|q| q.as_str().map(str::len))
                    .unwrap_or(0);
                let max = crate::graphql::MAX_QUERY_BYTES;
                if query_bytes > max {
                    let error = serde_json::json!({
                        "message": format!(
                            "the query text is {query_bytes} bytes; at most {max} are accepted (pass large inputs as variables)"
                        ),
                        "extensions": {"code": "LIMIT"},
                    });
                    // graphql-transport-ws: `error` with a list of errors ends the operation;
                    // the legacy protocol's `error` carries one error object.
                    let payload = match self.protocol {
                        WebSocketProtocols::GraphQLWS => serde_json::json!([error]),
                        WebSocketProtocols::SubscriptionsTransportWS => error,
                    };
                    return Screened::Answer(
                        serde_json::json!({"type": "error", "id": id, "payload": payload})
                            .to_string(),
                    );
                }
                self.active.insert(id);
                Screened::Pass
            }
            (Some("complete" | "stop"), Some(id)) => {
                self.active.remove(&id);
                Screened::Pass
            }
            _ => Screened::Pass,
        }
    }

    /// A message async-graphql sent: a `complete` frees its id.
    fn sent(&mut self, text: &str) {
        // serde writes the tag first: `{"type":"complete","id":"..."}`.
        if !text.starts_with(r#"{"type":"complete""#) {
            return;
        }
        if let Ok(Peek { id: Some(id), .. }) = serde_json::from_str::<Peek>(text) {
            self.active.remove(&id);
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        assert_eq!(truncate("short".into(), MAX_CLOSE_REASON), "short");
        let long = "é".repeat(200);
        let cut = truncate(long, MAX_CLOSE_REASON);
        assert!(cut.len() <= MAX_CLOSE_REASON, "{}", cut.len());
        assert!(cut.ends_with('…'));
    }

    fn screen(g: &mut Gate, msg: serde_json::Value) -> Screened {
        g.screen(msg.to_string().as_bytes())
    }

    #[test]
    fn the_gate_keeps_ids_unique_while_active() {
        let mut g = Gate::new(WebSocketProtocols::GraphQLWS);
        let sub = |id: &str| serde_json::json!({"type": "subscribe", "id": id, "payload": {"query": "subscription { x }"}});
        assert!(matches!(
            screen(&mut g, sub("1")),
            Screened::Close(CLOSE_UNAUTHORIZED, _)
        ));
        assert_eq!(
            screen(
                &mut g,
                serde_json::json!({"type": "connection_init", "payload": "odd"})
            ),
            Screened::Pass
        );
        assert_eq!(screen(&mut g, sub("1")), Screened::Pass);
        assert_eq!(
            screen(&mut g, sub("1")),
            Screened::Close(CLOSE_DUPLICATE_ID, "Subscriber for 1 already exists".into())
        );
        // Completed by the client, or by the server: free again.
        assert_eq!(
            screen(&mut g, serde_json::json!({"type": "complete", "id": "1"})),
            Screened::Pass
        );
        assert_eq!(screen(&mut g, sub("1")), Screened::Pass);
        g.sent(r#"{"type":"complete","id":"1"}"#);
        assert_eq!(screen(&mut g, sub("1")), Screened::Pass);
        // Whatever does not parse is async-graphql's to refuse.
        assert_eq!(g.screen(b"not json"), Screened::Pass);
    }

    #[test]
    fn a_query_over_the_limit_is_answered_not_passed_on() {
        for (protocol, list) in [
            (WebSocketProtocols::GraphQLWS, true),
            (WebSocketProtocols::SubscriptionsTransportWS, false),
        ] {
            let mut g = Gate::new(protocol);
            screen(&mut g, serde_json::json!({"type": "connection_init"}));
            let query = "x".repeat(crate::graphql::MAX_QUERY_BYTES + 1);
            let Screened::Answer(text) = screen(
                &mut g,
                serde_json::json!({"type": "start", "id": "big", "payload": {"query": query}}),
            ) else {
                panic!("not answered");
            };
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["type"], "error");
            assert_eq!(v["id"], "big");
            let error = if list {
                &v["payload"][0]
            } else {
                &v["payload"]
            };
            assert_eq!(error["extensions"]["code"], "LIMIT", "{v}");
            // Refused, so the id is not taken.
            assert!(g.active.is_empty());
        }
    }

    #[test]
    fn tokens_come_from_either_payload_shape() {
        let p = serde_json::json!({"Authorization": "Bearer abc"});
        assert_eq!(payload_token(&p).as_deref(), Some("abc"));
        let p = serde_json::json!({"token": "xyz"});
        assert_eq!(payload_token(&p).as_deref(), Some("xyz"));
        assert_eq!(payload_token(&serde_json::json!({})), None);
    }
}
