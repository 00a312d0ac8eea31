//! What the HTTP layer checks before a request reaches GraphQL, and the access log.
//!
//! - **Request shape**: a body that is not one GraphQL request (bad JSON, invalid UTF-8, wrong
//!   types) is refused with 400 `VALIDATION`; a body over the limit with 413 `LIMIT`, in the same
//!   JSON error shape as every other refusal (announced by `Content-Length`: refused before it is
//!   read, by [`body_limit`]; chunked: cut at the limit); a body that pauses longer than
//!   `HTTP_HEADER_TIMEOUT_MS` with 408 `LIMIT`.
//! - **No batching**: async-graphql would accept a JSON array of operations in one request. We
//!   refuse it (400, `LIMIT`): every limit (depth, complexity, query size, time) is per operation,
//!   and a batch would multiply them; one operation per request is also what the access log and
//!   the metrics describe. Clients send several requests instead (HTTP keep-alive makes it cheap).
//! - **Content type**: a POST must say `Content-Type: application/json` (or `application/graphql`).
//!   Browsers send `text/plain`, form and multipart bodies cross-site without asking (no CORS
//!   preflight), so accepting them would let any web page a user visits run mutations on an open
//!   loopback server (CSRF). Such requests get 415.
//! - **Open servers answer only local pages**: with no token configured, a request must be
//!   addressed to a loopback host (`Host`), which stops DNS-rebinding pages, and a WebSocket must
//!   come from a loopback `Origin` when a browser sends one, which stops cross-site WebSocket reads.
//!   The `Host` check ([`local_only`]) covers every route (the admin page, GraphiQL, the SDL, the
//!   exports, metrics), except the probes `/healthz` and `/readyz`: they answer "ok" and the
//!   database's state, nothing a rebinding page could use, and a probe's `Host` is often not
//!   `localhost` (a load balancer or monitor reaching the loopback server through a local
//!   forwarder), which must not make a healthy server look down.
//! - **Access log**: one line per request (target `leadcache::access`): method, path (never the
//!   query string: a GET GraphQL query may hold personal data), status, duration and the GraphQL
//!   operation name. Headers are never logged, so neither is `Authorization`. Probes (`/healthz`,
//!   `/readyz`, `/metrics`) and static files are logged at debug level, the rest at info.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::ParseRequestError;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::server::{MAX_BODY_BYTES, graphql_error};

/// A GraphQL request body that could not be read, as our error shape with a code.
pub struct RequestRejection(ParseRequestError);

impl From<ParseRequestError> for RequestRejection {
    fn from(e: ParseRequestError) -> Self {
        RequestRejection(e)
    }
}

impl IntoResponse for RequestRejection {
    fn into_response(self) -> Response {
        let too_large = || {
            AppError::Limit(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes"
            ))
        };
        match self.0 {
            ParseRequestError::PayloadTooLarge => graphql_error(too_large()),
            ParseRequestError::Io(e) if is_body_timeout(&e) => {
                let mut resp = graphql_error(AppError::Limit(
                    "the request body paused for longer than HTTP_HEADER_TIMEOUT_MS".into(),
                ));
                *resp.status_mut() = StatusCode::REQUEST_TIMEOUT;
                resp
            }
            ParseRequestError::Io(e) if e.to_string().contains("length limit exceeded") => {
                graphql_error(too_large())
            }
            ParseRequestError::UnsupportedBatch => {
                let mut resp = graphql_error(AppError::Limit(
                    "batched requests (a JSON array of operations) are not accepted: send one operation per request"
                        .into(),
                ));
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                resp
            }
            ParseRequestError::Io(e) => graphql_error(AppError::validation(
                "body",
                format!("not a readable GraphQL request: {e}"),
            )),
            ParseRequestError::InvalidRequest(e) => graphql_error(AppError::validation(
                "body",
                format!("not a GraphQL request: {e}"),
            )),
            other => graphql_error(AppError::validation("body", other.to_string())),
        }
    }
}

/// Whether a body read failed because the body paused too long (`tower_http`'s body timeout;
/// async-graphql-axum passes body errors on as text only).
fn is_body_timeout(e: &std::io::Error) -> bool {
    e.to_string()
        .contains("data was not received within the designated timeout")
}

/// Refuses a body whose announced size (`Content-Length`) is over [`MAX_BODY_BYTES`] with the
/// JSON `LIMIT` error, before any of it is read. (`tower_http`'s limit layer would answer such a
/// request itself, in plain text.)
pub async fn body_limit(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = announced
        && len > MAX_BODY_BYTES as u64
    {
        return graphql_error(AppError::Limit(format!(
            "the request body is {len} bytes; at most {MAX_BODY_BYTES} are accepted"
        )));
    }
    next.run(req).await
}

/// Paths answered whatever the `Host` (see the module docs).
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// On an open server (no tokens), refuses requests addressed to a host other than loopback on
/// every route but the probes, with 403 `FORBIDDEN` (DNS rebinding).
pub async fn local_only(
    axum::extract::State(app): axum::extract::State<crate::server::App>,
    req: Request,
    next: Next,
) -> Response {
    if !PROBES.contains(&req.uri().path())
        && let crate::tokens::Verdict::Open(_) = app.auth.check(None).await
        && let Err(e) = open_server_check(req.headers(), false)
    {
        return graphql_error(e);
    }
    next.run(req).await
}

/// Refuses a POST whose content type a browser may send cross-site without a preflight.
pub struct GraphqlContentType;

impl<S: Send + Sync> FromRequestParts<S> for GraphqlContentType {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::POST {
            return Ok(GraphqlContentType);
        }
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let ok = content_type == "application/json"
            || content_type == "application/graphql"
            || (content_type.starts_with("application/") && content_type.ends_with("+json"));
        if ok {
            return Ok(GraphqlContentType);
        }
        let mut resp = graphql_error(AppError::validation(
            "Content-Type",
            format!(
                "{:?} is not accepted: send the request as application/json",
                if content_type.is_empty() {
                    "(none)"
                } else {
                    content_type.as_str()
                }
            ),
        ));
        *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        Err(resp)
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The host of a `Host` header value (`example.com:8080`, `[::1]:8080`).
fn host_of(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    value.rsplit_once(':').map_or(value, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            value
        }
    })
}

/// Whether a request to an open (token-less) server may be answered: it is addressed to a
/// loopback host, and a browser `Origin`, if any, is a loopback page. Returns the refusal.
pub fn open_server_check(headers: &HeaderMap, check_origin: bool) -> Result<(), AppError> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(host) = host
        && !is_loopback_host(host_of(host))
    {
        return Err(AppError::Forbidden(
            "this server has no API tokens and answers only requests addressed to localhost; \
             create a token to serve other hosts"
                .into(),
        ));
    }
    if check_origin && let Some(origin) = headers.get(header::ORIGIN) {
        let local = origin
            .to_str()
            .ok()
            .and_then(|o| url::Url::parse(o).ok())
            .and_then(|u| u.host_str().map(is_loopback_host))
            .unwrap_or(false);
        if !local {
            return Err(AppError::Forbidden(
                "this server has no API tokens and accepts WebSocket connections only from local pages".into(),
            ));
        }
    }
    Ok(())
}

/// Where the GraphQL metrics extension leaves the operation's name for the access log.
#[derive(Clone, Default)]
pub struct OperationSlot(pub Arc<Mutex<Option<String>>>);

impl OperationSlot {
    pub fn set(&self, name: &str) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(name.to_string());
        }
    }

    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}

/// The GraphQL operation of a response, for the access log.
#[derive(Clone)]
pub struct OperationName(pub String);

/// The access-log middleware (see the module docs).
pub async fn access_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let operation = response
        .extensions()
        .get::<OperationName>()
        .map(|o| o.0.as_str())
        .unwrap_or("");
    let quiet = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics")
        || !(path.starts_with("/graphql")
            || path.starts_with("/export")
            || path.starts_with("/schema"));
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "leadcache::access",
                method = %method,
                path = %path,
                status,
                duration_ms = (duration_ms * 1000.0).round() / 1000.0,
                operation,
                "{method} {path} {status} {duration_ms:.1} ms"
            )
        };
    }
    if quiet && status < 500 {
        line!(debug);
    } else {
        line!(info);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "localhost:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "LOCALHOST",
            "app.localhost:1",
            "127.0.0.2",
        ] {
            assert!(is_loopback_host(host_of(h)), "{h}");
        }
        for h in [
            "evil.example:8080",
            "10.0.0.1",
            "localhost.evil.example",
            "[2001:db8::1]:80",
        ] {
            assert!(!is_loopback_host(host_of(h)), "{h}");
        }
    }

    #[test]
    fn open_servers_refuse_foreign_hosts_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(open_server_check(&h, true).is_ok());
        h.insert(header::ORIGIN, "http://localhost:8080".parse().unwrap());
        assert!(open_server_check(&h, true).is_ok());
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(open_server_check(&h, true).unwrap_err().code(), "FORBIDDEN");
        assert!(
            open_server_check(&h, false).is_ok(),
            "plain HTTP requests are not checked by origin"
        );
        h.insert(header::HOST, "rebound.evil.example".parse().unwrap());
        assert_eq!(
            open_server_check(&h, false).unwrap_err().code(),
            "FORBIDDEN"
        );
    }
}
