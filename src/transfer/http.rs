//! `GET /export/leads.csv` and `GET /export/leads.json` (SPEC §6): the `leads` filters as query
//! parameters ([`super::filter`]), the read role, and a streamed body.
//!
//! Streaming: a task renders one page (1,000 leads) at a time inside `Db::run` and sends it into a
//! channel of [`CHANNEL_CHUNKS`] chunks that feeds the response body. A slow client fills the
//! channel and the task waits, so the server holds a few pages at most, whatever the table size,
//! and no database connection is held between pages. A failure mid-way aborts the body (the
//! client sees an incomplete transfer, never a silently short file).

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::dump::Dump;
use super::export::{Csv, Exporter, Format};
use crate::auth::{Caller, Role};
use crate::error::AppError;
use crate::server::App;

/// Pages buffered between the database and the client.
pub const CHANNEL_CHUNKS: usize = 4;

fn filter(query: Option<&str>) -> Result<crate::leads::query::LeadFilter, AppError> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    super::filter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// The body of an export, produced page by page.
fn stream<F: Format>(app: &App, exporter: Exporter<F>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_CHUNKS);
    let db = app.state.db.clone();
    tokio::spawn(async move {
        let mut exporter = Some(exporter);
        while let Some(mut ex) = exporter.take() {
            let step = db
                .run(move |c| ex.next_chunk(c).map(|chunk| (ex, chunk)))
                .await;
            match step {
                Ok((ex, Some(chunk))) => {
                    if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                        tracing::debug!("export: the client went away");
                        return;
                    }
                    exporter = Some(ex);
                }
                Ok((_, None)) => return,
                Err(e) => {
                    tracing::error!(error = %e, "export failed mid-way");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn attachment(body: Body, content_type: &'static str, ext: &str) -> Response {
    let name = format!("leads-{}.{ext}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// `GET /export/leads.csv`.
pub async fn csv(
    State(app): State<App>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    caller.require(Role::Read)?;
    let f = filter(query.as_deref())?;
    let body = stream(&app, Exporter::new(f, Csv));
    Ok(attachment(body, "text/csv; charset=utf-8", "csv"))
}

/// `GET /export/leads.json`: the versioned dump (`leadcache import` reads it back).
pub async fn json(
    State(app): State<App>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    caller.require(Role::Read)?;
    let f = filter(query.as_deref())?;
    let body = stream(&app, Exporter::new(f, Dump::default()));
    Ok(attachment(body, "application/json", "json"))
}
