//! `GET /export/leads.csv` and `GET /export/leads.json` (SPEC §6): the `leads` filters as query
//! parameters ([`super::filter`]), the read role, and a streamed body. The CSV export also takes
//! `bom=1` (a UTF-8 byte order mark first, for Excel); its text cells are guarded against formula
//! injection ([`super::export::Csv`]).
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

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn filter(pairs: &[(String, String)]) -> Result<crate::leads::query::LeadFilter, AppError> {
    super::filter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// `bom` of the CSV export (`1`/`true`/`0`/`false`, default off), taken out of the filter's pairs.
fn take_bom(pairs: &mut Vec<(String, String)>) -> Result<bool, AppError> {
    let mut bom = false;
    let mut err = None;
    pairs.retain(|(k, v)| {
        if k != "bom" {
            return true;
        }
        match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => bom = true,
            "0" | "false" | "no" => bom = false,
            _ => {
                err = Some(AppError::validation(
                    "bom",
                    format!(
                        "expected 1 or 0 (a UTF-8 byte order mark for Excel), got {}",
                        crate::error::quote(v)
                    ),
                ));
            }
        }
        false
    });
    err.map_or(Ok(bom), Err)
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

/// `GET /export/leads.csv`: the filters, and `bom=1` for a UTF-8 byte order mark (Excel). Text
/// cells that start like a formula get a leading `'` (see [`Csv`]).
pub async fn csv(
    State(app): State<App>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    caller.require(Role::Read)?;
    let mut pairs = pairs(query.as_deref());
    let bom = take_bom(&mut pairs)?;
    let f = filter(&pairs)?;
    let body = stream(&app, Exporter::new(f, Csv { bom }));
    Ok(attachment(body, "text/csv; charset=utf-8", "csv"))
}

/// `GET /export/leads.json`: the versioned dump (`leadcache import` reads it back).
pub async fn json(
    State(app): State<App>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    caller.require(Role::Read)?;
    let f = filter(&pairs(query.as_deref()))?;
    let body = stream(&app, Exporter::new(f, Dump::default()));
    Ok(attachment(body, "application/json", "json"))
}
