//! The HTTP side of the simulated API: routing, bearer auth, base/table checks, the per-base
//! sliding-window rate limit with its lock-out, fault injection, and the request log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use rand::Rng;
use serde_json::{Value, json};

use super::state::{Inner, LogEntry, SimState};
use super::table::{ApiErr, ListQuery};
use super::{RateLimitBody, control};
use crate::airtable::RequestKind;

pub(crate) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v0/{base}/{table}", any(table_route))
        .route("/v0/{base}/{table}/{rec}", any(record_route))
        .nest("/_sim", control::router())
        .fallback(|| async { json_response(404, &json!({"error": "NOT_FOUND"}), None) })
        .with_state(state)
}

struct Req {
    method: Method,
    path: String,
    base: String,
    table: String,
    rec: Option<String>,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

async fn table_route(
    State(sim): State<Arc<SimState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Path((base, table)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = query.unwrap_or_default();
    dispatch(
        sim,
        Req {
            method,
            path,
            base,
            table,
            rec: None,
            query,
            headers,
            body,
        },
    )
    .await
}

async fn record_route(
    State(sim): State<Arc<SimState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Path((base, table, rec)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = query.unwrap_or_default();
    dispatch(
        sim,
        Req {
            method,
            path,
            base,
            table,
            rec: Some(rec),
            query,
            headers,
            body,
        },
    )
    .await
}

fn classify(r: &Req) -> Option<RequestKind> {
    let upsert = || {
        serde_json::from_slice::<Value>(&r.body)
            .ok()
            .is_some_and(|v| v.get("performUpsert").is_some_and(|p| !p.is_null()))
    };
    Some(match (&r.method, r.rec.as_deref()) {
        (&Method::GET, None) => RequestKind::List,
        (&Method::POST, Some("listRecords")) => RequestKind::List,
        (&Method::GET, Some(_)) => RequestKind::Get,
        (&Method::POST, None) => RequestKind::Create,
        (&Method::PATCH | &Method::PUT, None) if upsert() => RequestKind::Upsert,
        (&Method::PATCH | &Method::PUT, _) => RequestKind::Update,
        (&Method::DELETE, _) => RequestKind::Delete,
        _ => return None,
    })
}

pub(crate) fn json_response(status: u16, body: &Value, retry_after: Option<u64>) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response();
    if let Some(s) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

/// A response whose body fails at once: hyper closes the connection without sending an answer.
fn dropped() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "connection dropped by the simulator",
        ))
    });
    Response::new(Body::from_stream(stream))
}

enum Refusal {
    Answer(ApiErr),
    Drop,
}

fn rate_limited(body: RateLimitBody) -> ApiErr {
    let msg = "Rate limit exceeded. Please try again later";
    match body {
        RateLimitBody::Singular => ApiErr::typed(429, "RATE_LIMIT_REACHED", msg),
        RateLimitBody::ErrorsArray => ApiErr {
            status: 429,
            body: json!({"errors": [{"error": "RATE_LIMIT_REACHED", "message": msg}]}),
            retry_after: None,
        },
    }
}

fn server_error(status: u16, retry_after: Option<u64>) -> ApiErr {
    match status {
        503 => ApiErr {
            retry_after,
            ..ApiErr::typed(
                503,
                "RETRIABLE_ERROR",
                "Server encountered an error while processing your request, and it is safe to retry the request",
            )
        },
        502 => ApiErr::typed(
            502,
            "BAD_GATEWAY",
            "Airtable's servers are restarting or an unexpected outage is in progress",
        ),
        s => ApiErr::typed(
            s,
            "SERVER_ERROR",
            "The server encountered an unexpected condition",
        ),
    }
}

/// Auth, base and table, rate limit and injected faults, in that order.
fn admit(sim: &SimState, g: &mut Inner, r: &Req, arrival: Instant) -> Result<(), Refusal> {
    let cfg = &sim.cfg;
    let token = r
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let authed = match (&cfg.api_key, token) {
        (_, None) => false,
        (Some(k), Some(t)) => k == t,
        (None, Some(_)) => true,
    };
    if !authed {
        return Err(Refusal::Answer(ApiErr::typed(
            401,
            "AUTHENTICATION_REQUIRED",
            "Authentication required",
        )));
    }
    if cfg.base_id.as_ref().is_some_and(|b| *b != r.base) {
        return Err(Refusal::Answer(ApiErr::bare(404, "NOT_FOUND")));
    }
    if r.table != cfg.table && r.table != sim.table_id {
        return Err(Refusal::Answer(ApiErr::forbidden_model()));
    }
    if let Some(limit) = cfg.rate_limit {
        let st = g.rate.entry(r.base.clone()).or_default();
        if st.locked_until.is_some_and(|t| t > arrival) {
            return Err(Refusal::Answer(rate_limited(cfg.rate_limit_body)));
        }
        while st
            .window
            .front()
            .is_some_and(|t| arrival.saturating_duration_since(*t) >= cfg.rate_window)
        {
            st.window.pop_front();
        }
        if st.window.len() >= limit as usize {
            st.locked_until = Some(arrival + cfg.lockout);
            return Err(Refusal::Answer(rate_limited(cfg.rate_limit_body)));
        }
        st.window.push_back(arrival);
    }
    let f = &mut g.faults;
    if f.quota_exceeded {
        return Err(Refusal::Answer(ApiErr::typed(
            429,
            "PUBLIC_API_BILLING_LIMIT_EXCEEDED",
            "API billing plan limit exceeded. You've reached the maximum number of requests allowed for this month.",
        )));
    }
    if f.rate_limit_next > 0 {
        f.rate_limit_next -= 1;
        return Err(Refusal::Answer(rate_limited(cfg.rate_limit_body)));
    }
    if f.drop_next > 0 {
        f.drop_next -= 1;
        return Err(Refusal::Drop);
    }
    let (drop_rate, fail_rate, retry_after) = (f.drop_rate, f.fail_rate, f.retry_after_secs);
    if f.fail_next > 0 {
        f.fail_next -= 1;
        let status = if f.fail_status == 0 {
            503
        } else {
            f.fail_status
        };
        return Err(Refusal::Answer(server_error(status, retry_after)));
    }
    if drop_rate > 0.0 && g.rng.random_bool(drop_rate.min(1.0)) {
        return Err(Refusal::Drop);
    }
    if fail_rate > 0.0 && g.rng.random_bool(fail_rate.min(1.0)) {
        let status = [500, 502, 503][g.rng.random_range(0..3)];
        return Err(Refusal::Answer(server_error(status, retry_after)));
    }
    Ok(())
}

fn parse_list_query(query: &str) -> ListQuery {
    let mut q = ListQuery::default();
    let mut sorts: BTreeMap<usize, (Option<String>, bool)> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "pageSize" => q.page_size = Some(v.parse().unwrap_or(-1)),
            "maxRecords" => q.max_records = v.parse().ok(),
            "offset" => q.offset = Some(v.into_owned()),
            "fields[]" | "fields" => q.fields.push(v.into_owned()),
            "filterByFormula" => q.formula = Some(v.into_owned()),
            "view" => q.view = Some(v.into_owned()),
            "returnFieldsByFieldId" => q.by_field_id = v == "1" || v == "true",
            key if key.starts_with("sort[") => {
                let mut parts = key.trim_start_matches("sort[").split("][");
                let idx = parts.next().and_then(|i| i.parse::<usize>().ok());
                let what = parts.next().map(|w| w.trim_end_matches(']'));
                if let (Some(i), Some(what)) = (idx, what) {
                    let e = sorts.entry(i).or_default();
                    match what {
                        "field" => e.0 = Some(v.into_owned()),
                        "direction" => e.1 = v == "desc",
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    q.sort = sorts
        .into_values()
        .filter_map(|(f, d)| f.map(|f| (f, d)))
        .collect();
    q
}

fn parse_list_body(v: &Value) -> ListQuery {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    ListQuery {
        page_size: v.get("pageSize").map(|p| p.as_i64().unwrap_or(-1)),
        max_records: v.get("maxRecords").and_then(Value::as_i64),
        offset: s("offset"),
        fields: v
            .get("fields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        formula: s("filterByFormula"),
        sort: v
            .get("sort")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        let f = x.get("field")?.as_str()?.to_string();
                        Some((
                            f,
                            x.get("direction").and_then(Value::as_str) == Some("desc"),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        by_field_id: v
            .get("returnFieldsByFieldId")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        view: s("view"),
    }
}

fn operate(sim: &SimState, g: &mut Inner, r: &Req) -> Result<Value, ApiErr> {
    let cfg = &sim.cfg;
    let body: Value = if r.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&r.body).map_err(|_| {
            ApiErr::unprocessable("INVALID_REQUEST_BODY", "Could not parse request body")
        })?
    };
    let mut take_offset_fault = |q: &ListQuery| {
        if q.offset.is_some() && g.faults.expire_next_offsets > 0 {
            g.faults.expire_next_offsets -= 1;
            true
        } else {
            false
        }
    };
    match (&r.method, r.rec.as_deref()) {
        (&Method::GET, None) => {
            let q = parse_list_query(&r.query);
            let forced = take_offset_fault(&q);
            g.list(cfg, q, forced)
        }
        (&Method::POST, Some("listRecords")) => {
            let q = parse_list_body(&body);
            let forced = take_offset_fault(&q);
            g.list(cfg, q, forced)
        }
        (&Method::POST, None) => g.create(cfg, &body),
        (&Method::PATCH, None) => g.update(cfg, &body, false),
        (&Method::PUT, None) => g.update(cfg, &body, true),
        (&Method::DELETE, None) => {
            let ids: Vec<String> = url::form_urlencoded::parse(r.query.as_bytes())
                .filter(|(k, _)| k == "records[]" || k == "records")
                .map(|(_, v)| v.into_owned())
                .collect();
            g.delete_many(cfg, &ids)
        }
        (&Method::GET, Some(id)) => {
            let by_id = parse_list_query(&r.query).by_field_id;
            g.get_one(cfg, id, by_id)
        }
        (&Method::PATCH, Some(id)) => g.update_one(cfg, id, &body, false),
        (&Method::PUT, Some(id)) => g.update_one(cfg, id, &body, true),
        (&Method::DELETE, Some(id)) => g.delete_one(cfg, id),
        _ => Err(ApiErr::bare(404, "NOT_FOUND")),
    }
}

async fn dispatch(sim: Arc<SimState>, r: Req) -> Response {
    let arrival = Instant::now();
    let at = chrono::Utc::now();
    let kind = classify(&r);
    let body = serde_json::from_slice::<Value>(&r.body).ok();
    let admitted = {
        let mut g = sim.lock();
        admit(&sim, &mut g, &r, arrival)
    };
    let latency = sim.lock().faults.latency_ms;
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let mut g = sim.lock();
    let (status, resp) = match admitted {
        Err(Refusal::Drop) => (0, dropped()),
        Err(Refusal::Answer(e)) => (e.status, json_response(e.status, &e.body, e.retry_after)),
        Ok(()) => {
            let result = operate(&sim, &mut g, &r);
            if g.faults.drop_response_next > 0 {
                g.faults.drop_response_next -= 1;
                (0, dropped())
            } else {
                match result {
                    Ok(v) => (200, json_response(200, &v, None)),
                    Err(e) => (e.status, json_response(e.status, &e.body, e.retry_after)),
                }
            }
        }
    };
    let seq = g.log.len() as u64;
    let t_us = sim.elapsed_us(arrival);
    g.log.push(LogEntry {
        seq,
        method: r.method.to_string(),
        path: r.path,
        query: r.query,
        body,
        kind,
        status,
        at,
        t_us,
    });
    resp
}
