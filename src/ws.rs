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
    let input = stream
        .take_while(|msg| futures::future::ready(msg.is_ok()))
        .filter_map(|msg| {
            futures::future::ready(match msg {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(m.into_data()),
                _ => None,
            })
        });
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
                Message::Close(Some(CloseFrame {
                    code,
                    reason: truncate(reason, MAX_CLOSE_REASON).into(),
                }))
            }
        });
    futures::pin_mut!(messages);
    let mut recheck = app.auth.rechecks(RECHECK_EVERY);
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { break };
                if sink.send(msg).await.is_err() {
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
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: CLOSE_REFUSED,
                            reason: truncate(reason, MAX_CLOSE_REASON).into(),
                        })))
                        .await;
                    break;
                }
            }
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

    #[test]
    fn tokens_come_from_either_payload_shape() {
        let p = serde_json::json!({"Authorization": "Bearer abc"});
        assert_eq!(payload_token(&p).as_deref(), Some("abc"));
        let p = serde_json::json!({"token": "xyz"});
        assert_eq!(payload_token(&p).as_deref(), Some("xyz"));
        assert_eq!(payload_token(&serde_json::json!({})), None);
    }
}
