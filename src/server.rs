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
//! Request checks (content type, batching, local-only open servers) and the access log are in
//! [`crate::guard`].

use std::sync::Arc;

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
    let status =
        if wants_gql_json && response.data == async_graphql::Value::Null && response.is_err() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
    let content_type = if wants_gql_json {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    };
    let body = match serde_json::to_vec(&response) {
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
pub(crate) const WS_MAX_MESSAGE_BYTES: usize = 256 * 1024;

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

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
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
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::from_fn(crate::guard::access_log))
        .with_state(app)
}
