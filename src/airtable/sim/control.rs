//! The control API under `/_sim/…` (no Airtable auth; loopback clients only). It mirrors the
//! methods of [`SimState`]:
//!
//! | route | does |
//! |---|---|
//! | `GET /_sim/records` | every record, as the API shows it |
//! | `POST /_sim/records` `{"fields":{…}}` | create a record as a person in the UI would |
//! | `PATCH /_sim/records/{id}` `{"fields":{…}}` | edit cells (`null` clears), bumping Last Modified |
//! | `DELETE /_sim/records/{id}` | delete a record |
//! | `POST /_sim/seed` `{"count":N}` | add N sample leads |
//! | `GET /_sim/log`, `DELETE /_sim/log` | the request log; clear it |
//! | `GET /_sim/counts` | API requests per kind and `total` |
//! | `GET /_sim/faults`, `PUT /_sim/faults` | read or replace the faults ([`Faults`]) |
//! | `POST /_sim/expire-offsets` | expire every list offset now |
//! | `POST /_sim/reset` | back to the start state |
//! | `GET /_sim/schema` | the table's columns |

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::json_response;
use super::state::{Faults, SimState};

type S = State<Arc<SimState>>;

pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/records", get(records).post(create))
        .route("/records/{id}", patch(edit).delete(remove))
        .route("/seed", post(seed))
        .route("/log", get(log).delete(clear_log))
        .route("/counts", get(counts))
        .route("/faults", get(faults).put(set_faults))
        .route("/expire-offsets", post(expire))
        .route("/reset", post(reset))
        .route("/schema", get(schema))
        .layer(middleware::from_fn(loopback_only))
}

async fn loopback_only(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match peer {
        Some(addr) if addr.ip().is_loopback() => next.run(req).await,
        _ => json_response(
            403,
            &json!({"error": "the control API answers loopback clients only"}),
            None,
        ),
    }
}

#[derive(Deserialize)]
struct FieldsBody {
    fields: Map<String, Value>,
}

#[derive(Deserialize)]
struct SeedBody {
    count: usize,
}

async fn records(State(s): S) -> Json<Value> {
    Json(json!({"records": s.records()}))
}

async fn create(State(s): S, Json(b): Json<FieldsBody>) -> Response {
    match s.ui_create(b.fields) {
        Ok(id) => Json(json!({"id": id})).into_response(),
        Err(e) => json_response(422, &json!({"error": e}), None),
    }
}

async fn edit(State(s): S, Path(id): Path<String>, Json(b): Json<FieldsBody>) -> Response {
    match s.ui_edit(&id, b.fields) {
        Ok(()) => Json(s.record(&id).unwrap_or(Value::Null)).into_response(),
        Err(e) => json_response(422, &json!({"error": e}), None),
    }
}

async fn remove(State(s): S, Path(id): Path<String>) -> Response {
    if s.ui_delete(&id) {
        Json(json!({"id": id, "deleted": true})).into_response()
    } else {
        json_response(404, &json!({"error": format!("no record {id}")}), None)
    }
}

async fn seed(State(s): S, Json(b): Json<SeedBody>) -> Json<Value> {
    Json(json!({"ids": s.seed(b.count)}))
}

async fn log(State(s): S) -> Json<Value> {
    Json(json!({"log": s.log()}))
}

async fn clear_log(State(s): S) -> Json<Value> {
    s.clear_log();
    Json(json!({"ok": true}))
}

async fn counts(State(s): S) -> Json<Value> {
    Json(json!(s.counts()))
}

async fn faults(State(s): S) -> Json<Faults> {
    Json(s.faults())
}

async fn set_faults(State(s): S, Json(f): Json<Faults>) -> Json<Faults> {
    s.set_faults(f);
    Json(s.faults())
}

async fn expire(State(s): S) -> Json<Value> {
    s.expire_offsets();
    Json(json!({"ok": true}))
}

async fn reset(State(s): S) -> Json<Value> {
    s.reset();
    Json(json!({"ok": true, "records": s.record_count()}))
}

async fn schema(State(s): S) -> Json<Value> {
    Json(json!({"id": s.table_id(), "name": s.config().table, "fields": s.schema()}))
}
