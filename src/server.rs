//! The HTTP side: one function, [`router`], builds every route; the server and the tests call it.
//!
//! | route | what |
//! |---|---|
//! | `GET/POST /graphql` | GraphQL over HTTP (GET for queries only) |
//! | `GET /graphql/ws` | subscriptions (`graphql-transport-ws` and the older `graphql-ws`), see [`crate::ws`] |
//! | `GET /graphiql` | GraphiQL |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | the database answers; reports Airtable reachability |
//! | `GET /schema.graphql` | the SDL |
//! | `GET /metrics` | Prometheus metrics (any token when tokens are configured) |
//! | `GET /export/leads.csv`, `/export/leads.json` | streamed exports, `leads` filters as query parameters (read role) |
//! | `GET /` and other paths | the admin page (`web/`, embedded) |
//!
//! Request checks (content type, batching, body size, local-only open servers) and the access log
//! are in [`crate::guard`]; the admin page's headers in [`crate::web`].
//!
//! # Connections
//!
//! [`serve`] runs the accept loop (axum's own `axum::serve` has no header timeout). Each
//! connection is HTTP/1.1 on hyper, with these bounds (settings in [`crate::config`]):
//!
//! - **Header timeout** (`HTTP_HEADER_TIMEOUT_MS`, 10 s): a request's headers must arrive within
//!   this time of its first byte; a new connection must send its first request's headers within
//!   this time of connecting (as in Go's `ReadHeaderTimeout`). Inside a request body, no pause may
//!   be longer (`tower_http`'s body timeout; the request then fails with 408).
//! - **Idle timeout** (`HTTP_IDLE_TIMEOUT_MS`, 60 s): a keep-alive connection with no new request
//!   for this long is closed. hyper has no idle timeout of its own, and its
//!   `header_read_timeout` runs from the moment a connection waits for a request, idle time
//!   included, so it cannot be both a 10 s header limit and a 60 s idle limit. A small watchdog
//!   per connection (`Activity`) tells the two apart by the first byte of the next request;
//!   hyper's timer is set to their sum as a backstop. A request in progress is never cut by
//!   either (a slow GraphQL write is not lost halfway because nothing was read meanwhile),
//!   unless the client stops reading its response: a write that waits on the client for the
//!   idle timeout closes the connection.
//! - **Connection cap** (`MAX_CONNECTIONS`, 1024), WebSockets included (the cap's permit moves
//!   into the upgraded socket). Beyond it a connection is accepted and closed at once, with a
//!   warning in the log (at most one every 10 s). Not made to wait: a waiting connection sits in
//!   the kernel's backlog, where the client learns nothing until its own timeout, and once the
//!   backlog is full even health checks stall; closing tells the client now and keeps the accept
//!   loop draining the backlog. Slots held by attackers free themselves within the header
//!   timeout; slots held by WebSockets are the ones the cap is for.
//! - **HTTP/1.1 only.** hyper-util's `auto` builder (what `axum::serve` uses) first reads the
//!   protocol preface with no timer at all, so a connection that sends nothing would be held
//!   forever, the very hole these limits close; HTTP/2 was never meant to be served (axum's
//!   `http2` feature is off; it was compiled in only through reqwest's) and would need its own
//!   set of limits.
//! - **Graceful stop** ([`crate::app::Running::stop`]): stop accepting, let every connection
//!   finish the request it is serving (idle ones close at once), then return.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::GraphQLRequest;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};

use crate::guard::{
    GraphqlContentType, OperationName, OperationSlot, RequestRejection, open_server_check,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use diesel::RunQueryDsl;

use crate::auth::Caller;
use crate::error::AppError;
use crate::graphql::{AppSchema, schema};
use crate::state::AppState;
use crate::tokens::{TokenAuth, Verdict, bearer};

/// Largest request body accepted (a `createLeads` of 5,000 leads fits).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Everything a handler needs.
#[derive(Clone)]
pub struct App {
    pub state: AppState,
    pub schema: AppSchema,
    pub auth: Arc<TokenAuth>,
}

impl App {
    /// The app of a server bound to `state.config.bind`.
    pub fn new(state: AppState) -> Self {
        let loopback = state.config.bind.ip().is_loopback();
        Self::for_bind(state, loopback)
    }

    /// The app of a server bound to a loopback address (`loopback`) or not: without tokens, only
    /// a loopback server is open.
    pub fn for_bind(state: AppState, loopback: bool) -> Self {
        let auth = Arc::new(TokenAuth::new(
            state.db.clone(),
            state.config.tokens_file.clone(),
            loopback,
            state.tokens.clone(),
        ));
        App {
            schema: schema(state.clone()),
            state,
            auth,
        }
    }
}

/// The caller of a request, from its `Authorization` header. Rejects bad or missing tokens (when
/// tokens are configured) with 401 before any work is done.
impl FromRequestParts<App> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = match header {
            None => None,
            Some(h) => match bearer(h) {
                Some(t) => Some(t),
                None => {
                    return Err(graphql_error(AppError::Unauthenticated(
                        "malformed Authorization header: expected Bearer <token>".into(),
                    )));
                }
            },
        };
        match app.auth.check(token).await {
            Verdict::Allowed(caller) => Ok(caller),
            Verdict::Open(caller) => match open_server_check(&parts.headers, false) {
                Ok(()) => Ok(caller),
                Err(e) => Err(graphql_error(e)),
            },
            Verdict::Denied(e) => Err(graphql_error(e)),
        }
    }
}

/// An error as a GraphQL-shaped JSON response with the right status code.
pub(crate) fn graphql_error(e: AppError) -> Response {
    if e.is_internal() {
        tracing::error!(error = %e, "request failed");
    }
    let body = serde_json::json!({
        "errors": [{"message": e.public_message(), "extensions": {"code": e.code()}}]
    });
    let mut resp = (e.http_status(), Json(body)).into_response();
    if matches!(e, AppError::Unauthenticated(_)) {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// GraphQL over HTTP: queries by GET or POST, mutations by POST only. With
/// `Accept: application/graphql-response+json` a request that fails before execution (parse or
/// validation error) answers 400, as the GraphQL-over-HTTP spec asks; plain JSON clients get 200.
async fn graphql(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    _content_type: GraphqlContentType,
    caller: Caller,
    req: GraphQLRequest<RequestRejection>,
) -> Response {
    let request = req.into_inner();
    if request.query.len() > crate::graphql::MAX_QUERY_BYTES {
        return graphql_error(AppError::Limit(format!(
            "the query text is {} bytes; at most {} are accepted (pass large inputs as variables)",
            request.query.len(),
            crate::graphql::MAX_QUERY_BYTES
        )));
    }
    if request.query.trim().is_empty() {
        let mut resp = graphql_error(AppError::validation(
            "query",
            "the request has no query: send a GraphQL document as \"query\" (in the JSON body, \
             or as ?query= with GET)",
        ));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    }
    if method == Method::GET && is_mutation(&request.query, request.operation_name.as_deref()) {
        let mut resp = graphql_error(AppError::validation(
            "method",
            "mutations must be sent with POST",
        ));
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let operation = OperationSlot::default();
    let mut response = app
        .schema
        .execute(request.data(caller).data(operation.clone()))
        .await;
    for error in &mut response.errors {
        ensure_code(error);
    }
    let wants_gql_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(GRAPHQL_RESPONSE_JSON));
    // A request error (parse, validation, a limit checked before execution) happens before
    // execution: the GraphQL spec says `data` is then absent, not null, and GraphQL over HTTP
    // answers it 400 for `application/graphql-response+json`. An execution error always has a
    // path, and keeps `data` (null or partial).
    let request_error = response.data == async_graphql::Value::Null
        && response.is_err()
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = if wants_gql_json && request_error {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let content_type = if wants_gql_json {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    };
    let serialized = if request_error {
        serde_json::to_vec(&serde_json::json!({ "errors": response.errors }))
    } else {
        serde_json::to_vec(&response)
    };
    let body = match serialized {
        Ok(b) => b,
        Err(e) => return graphql_error(AppError::internal(e)),
    };
    let mut resp = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Some(name) = operation.get() {
        resp.extensions_mut().insert(OperationName(name));
    }
    resp
}

/// Gives every error a machine code. Errors from resolvers carry one already; errors raised by
/// async-graphql itself before execution (parse, validation, limits) do not.
fn ensure_code(error: &mut async_graphql::ServerError) {
    let ext = error.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_some() {
        return;
    }
    let limit = [
        "too complex",
        "nested too deep",
        "recursion depth",
        "too many",
    ]
    .iter()
    .any(|m| error.message.to_lowercase().contains(m));
    let input = [
        "expected input type",
        "failed to parse",
        "invalid value for argument",
        "invalid value",
    ]
    .iter()
    .any(|m| error.message.to_lowercase().contains(m));
    let code = if limit {
        "LIMIT"
    } else if error.path.is_empty() || input {
        "VALIDATION"
    } else {
        "INTERNAL"
    };
    ext.set("code", code);
}

fn is_mutation(query: &str, operation: Option<&str>) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    match doc.operations {
        DocumentOperations::Single(op) => op.node.ty != OperationType::Query,
        DocumentOperations::Multiple(ops) => ops
            .iter()
            .filter(|(name, _)| operation.is_none_or(|o| name.as_str() == o))
            .any(|(_, op)| op.node.ty != OperationType::Query),
    }
}

/// Largest WebSocket message accepted (a subscription request is a few hundred bytes).
pub const WS_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Prometheus metrics; any valid token may read them when tokens are configured.
async fn metrics(State(app): State<App>, caller: Caller) -> Response {
    if let Err(e) = caller.require(crate::auth::Role::Read) {
        return graphql_error(e);
    }
    match crate::metrics::render(&app.state.db).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => graphql_error(e),
    }
}

/// GraphiQL (its scripts come from a CDN, so only framing is restricted here).
async fn graphiql() -> Response {
    let mut resp = Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
    .into_response();
    crate::web::forbid_framing(resp.headers_mut(), "frame-ancestors 'none'");
    resp
}

async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the database answers (with Airtable's reachability), 503 when it does not.
async fn readyz(State(app): State<App>) -> Response {
    let db = app
        .state
        .db
        .run(|c| Ok(diesel::sql_query("SELECT 1").execute(c)?))
        .await;
    let airtable = match (app.state.sync_enabled(), app.state.airtable_reachable()) {
        (false, _) => "not configured",
        (true, None) => "unknown",
        (true, Some(true)) => "reachable",
        (true, Some(false)) => "unreachable",
    };
    let (status, database) = match db.map(|_| app.state.db.check_file()) {
        Ok(Ok(())) => (StatusCode::OK, "ok".to_string()),
        Ok(Err(replaced)) => {
            tracing::error!("readiness check: {replaced}");
            (StatusCode::SERVICE_UNAVAILABLE, replaced)
        }
        Err(e) => {
            tracing::error!(error = %e, "readiness check: database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable".to_string())
        }
    };
    (status, Json(serde_json::json!({"database": database, "airtable": airtable, "mode": app.state.mode.as_str()})))
        .into_response()
}

async fn schema_sdl() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        crate::graphql::sdl(),
    )
}

/// Builds the whole router.
pub fn router(app: App) -> Router {
    let body_pause = app.state.config.http_header_timeout;
    Router::new()
        .route("/graphql", get(graphql).post(graphql))
        .route("/graphql/ws", get(crate::ws::graphql_ws))
        .route("/graphiql", get(graphiql))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/schema.graphql", get(schema_sdl))
        .route("/metrics", get(metrics))
        .route("/export/leads.csv", get(crate::transfer::http::csv))
        .route("/export/leads.json", get(crate::transfer::http::json))
        .fallback(crate::web::serve)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_pause,
        ))
        // Bodies without a Content-Length (chunked) are cut at the limit here; the GraphQL
        // extractor turns that into the JSON LIMIT error. Announced sizes over it are refused by
        // `guard::body_limit` before this layer would answer in plain text.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::from_fn(crate::guard::body_limit))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::guard::local_only,
        ))
        .layer(axum::middleware::from_fn(crate::guard::access_log))
        .with_state(app)
}

// ---- Connections (see the module docs) ----

/// The connection bounds of a server, from its [`Config`](crate::config::Config).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ConnLimits {
    pub fn from_config(config: &crate::config::Config) -> Self {
        ConnLimits {
            header_timeout: config.http_header_timeout,
            idle_timeout: config.http_idle_timeout,
            max_connections: config.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets every
/// open connection finish the request it is serving, and returns when all have closed. Upgraded
/// connections (WebSockets) are not waited for.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use tokio::sync::{Semaphore, watch};
    warn_if_fd_limit_is_low(limits.max_connections);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection task holds a receiver: `stop_tx.closed()` resolves when all are gone.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_timeout + limits.idle_timeout);
    let mut refusals = Refusals::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refusals.note(limits.max_connections);
            drop(stream);
            continue;
        };
        let activity = Arc::new(Activity::new());
        let io = hyper_util::rt::TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
            _permit: permit,
        });
        let service = ConnService {
            router: router.clone(),
            activity: activity.clone(),
        };
        let conn = http.serve_connection(io, service).with_upgrades();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    ended = conn.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    why = activity.expired(limits) => {
                        tracing::debug!("closing a connection: {why}");
                        break;
                    }
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    drop(stop_rx);
    stop_tx.send_replace(());
    stop_tx.closed().await;
    Ok(())
}

/// An accept error: the client's own trouble is ignored; anything else (out of file
/// descriptors, say) is logged and retried after a pause, as `axum::serve` does.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection; trying again in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Connections closed for the cap, logged at most once every 10 s.
#[derive(Default)]
struct Refusals {
    unreported: u64,
    last_report: Option<std::time::Instant>,
}

impl Refusals {
    fn note(&mut self, cap: usize) {
        self.unreported += 1;
        let now = std::time::Instant::now();
        if self
            .last_report
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            tracing::warn!(
                refused = self.unreported,
                max_connections = cap,
                "{cap} connections are open (MAX_CONNECTIONS): closing new ones at once"
            );
            self.unreported = 0;
            self.last_report = Some(now);
        }
    }
}

/// Warns when the process may run out of file descriptors before reaching the cap (Linux: the
/// soft `Max open files` of `/proc/self/limits`; the database and logs need some too).
fn warn_if_fd_limit_is_low(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft
        && soft < max_connections.saturating_add(64)
    {
        tracing::warn!(
            open_files = soft,
            max_connections,
            "the open-file limit (ulimit -n) is below MAX_CONNECTIONS + 64: connections beyond it \
             fail to be accepted; raise the limit or lower MAX_CONNECTIONS"
        );
    }
}

/// What a connection is doing, for its watchdog: the requests in progress, and since when it has
/// been waiting for the next one.
struct Activity {
    state: Mutex<ConnState>,
    changed: tokio::sync::Notify,
    /// Fast paths for the socket hooks, which run on every read and write: whether a read would
    /// start a request (idle, no byte yet), and whether a write is marked blocked.
    awaiting_first_byte: AtomicBool,
    write_marked_blocked: AtomicBool,
}

struct ConnState {
    /// Requests whose response has not been sent in full.
    in_flight: usize,
    /// When the connection was accepted, or its last response ended.
    idle_since: tokio::time::Instant,
    /// When the first byte of the next request arrived (while no request was in progress).
    request_started: Option<tokio::time::Instant>,
    /// Whether a response has been sent: before that, the header timeout runs from the accept.
    served: bool,
    /// Since when a write has been waiting for the client to read (its receive window is full).
    write_blocked: Option<tokio::time::Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            state: Mutex::new(ConnState {
                in_flight: 0,
                idle_since: tokio::time::Instant::now(),
                request_started: None,
                served: false,
                write_blocked: None,
            }),
            changed: tokio::sync::Notify::new(),
            awaiting_first_byte: AtomicBool::new(true),
            write_marked_blocked: AtomicBool::new(false),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut ConnState) -> R) -> R {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Bytes were read from the client.
    fn read(&self) {
        if !self.awaiting_first_byte.load(Ordering::SeqCst) {
            return;
        }
        let started = self.with(|s| {
            let first = s.in_flight == 0 && s.request_started.is_none();
            if first {
                s.request_started = Some(tokio::time::Instant::now());
            }
            self.awaiting_first_byte.store(false, Ordering::SeqCst);
            first
        });
        if started {
            self.changed.notify_one();
        }
    }

    /// A write could not proceed (`blocked`), or did.
    fn write(&self, blocked: bool) {
        if self.write_marked_blocked.load(Ordering::SeqCst) == blocked {
            return;
        }
        let newly = self.with(|s| match (blocked, s.write_blocked) {
            (true, None) => {
                s.write_blocked = Some(tokio::time::Instant::now());
                self.write_marked_blocked.store(true, Ordering::SeqCst);
                true
            }
            (false, Some(_)) => {
                s.write_blocked = None;
                self.write_marked_blocked.store(false, Ordering::SeqCst);
                false
            }
            _ => false,
        });
        if newly {
            self.changed.notify_one();
        }
    }

    /// A request's headers were read; returns the guard that ends it when dropped.
    fn begin(self: &Arc<Self>) -> Busy {
        self.with(|s| {
            s.in_flight += 1;
            s.request_started = None;
            self.awaiting_first_byte.store(false, Ordering::SeqCst);
        });
        self.changed.notify_one();
        Busy(self.clone())
    }

    /// When the connection should be closed, and why. While a request is in progress, only when
    /// the client has stopped reading the response: the handler itself is never timed out here.
    fn deadline(&self, limits: ConnLimits) -> Option<(tokio::time::Instant, &'static str)> {
        self.with(|s| {
            if s.in_flight > 0 {
                s.write_blocked.map(|t| {
                    (
                        t + limits.idle_timeout,
                        "the client stopped reading its response",
                    )
                })
            } else if let Some(t) = s.request_started {
                Some((
                    t + limits.header_timeout,
                    "its request headers took too long",
                ))
            } else if !s.served {
                Some((
                    s.idle_since + limits.header_timeout,
                    "no request arrived in time after connecting",
                ))
            } else {
                Some((
                    s.idle_since + limits.idle_timeout,
                    "idle keep-alive connection",
                ))
            }
        })
    }

    /// Resolves when the connection has outlived its deadline, with the reason.
    async fn expired(&self, limits: ConnLimits) -> &'static str {
        loop {
            let changed = self.changed.notified();
            match self.deadline(limits) {
                None => changed.await,
                Some((at, why)) => {
                    if at <= tokio::time::Instant::now() {
                        return why;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// A request in progress; dropped with its response body (sent in full, or abandoned).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.with(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = tokio::time::Instant::now();
                s.request_started = None;
                s.served = true;
                self.0.awaiting_first_byte.store(true, Ordering::SeqCst);
            }
        });
        self.0.changed.notify_one();
    }
}

/// The client socket: reports reads and stalled writes to the watchdog, and holds the connection's slot of the cap
/// for as long as it is open (an upgraded WebSocket keeps it).
struct Tracked {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.write(polled.is_pending());
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.write(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as hyper's service for one connection, marking each request busy until its
/// response body is done.
#[derive(Clone)]
struct ConnService {
    router: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for ConnService {
    type Response = Response<BusyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        let busy = self.activity.begin();
        let router = self.router.clone();
        Box::pin(async move {
            let resp = tower::ServiceExt::oneshot(router, req).await?;
            Ok(resp.map(|body| BusyBody { body, _busy: busy }))
        })
    }
}

/// A response body that ends its request's [`Busy`] when dropped.
struct BusyBody {
    body: axum::body::Body,
    _busy: Busy,
}

impl hyper::body::Body for BusyBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
