//! The admin `sql` query: one read-only statement on its own read-only connection, with a row
//! cap and a time limit.
//!
//! Diesel cannot return rows of unknown shape, interrupt a statement or install an authorizer, so
//! this uses rusqlite (same bundled SQLite, `libsqlite3-sys` shared with diesel). Defences, each
//! enough on its own for writes: the file is opened `SQLITE_OPEN_READ_ONLY`, `query_only` is on,
//! the statement must be read-only (`sqlite3_stmt_readonly`), and an authorizer allows only reads,
//! selects and functions; `ATTACH` is denied and the attached-database limit is 0, so no other file
//! can be opened.
//!
//! Limits ([`Caps`]): at most `rows` rows; the time limit covers the whole call, running the
//! statement *and* reading its rows out (a progress handler interrupts SQLite's VM when it
//! passes, and the row loop checks it between rows); and the rows may add up to at most `bytes`
//! (`MAX_RESPONSE_BYTES`), with no single value larger than that either: SQLite's
//! `SQLITE_LIMIT_LENGTH` is set to it, so `SELECT zeroblob(2e9)` fails inside SQLite with
//! "string or blob too big" instead of allocating gigabytes.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::error::AppError;

pub const MAX_ROWS: usize = 1000;
pub const TIME_LIMIT: Duration = Duration::from_secs(5);
pub const MAX_QUERY_CHARS: usize = 10_000;
/// Default byte cap of the rows (the server passes `MAX_RESPONSE_BYTES`).
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// What one `sql` call may return and take.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub rows: usize,
    pub time: Duration,
    pub bytes: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            rows: MAX_ROWS,
            time: TIME_LIMIT,
            bytes: MAX_BYTES,
        }
    }
}

/// The bytes a value adds to the JSON answer (close enough to bound memory).
fn size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Null => 4,
        other => other.to_string().len(),
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SqlResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// More rows existed than were returned.
    pub truncated: bool,
    pub elapsed_ms: u64,
}

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select
        | AuthAction::Read { .. }
        | AuthAction::Function { .. }
        | AuthAction::Recursive => Authorization::Allow,
        _ => Authorization::Deny,
    }
}

fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(format!("<{} bytes>", b.len())),
    }
}

fn refused(message: impl Into<String>) -> AppError {
    AppError::validation("query", message)
}

/// Runs `query` read-only against the database file at `path`.
pub fn run(path: &Path, query: &str, caps: Caps) -> Result<SqlResult, AppError> {
    let Caps {
        rows: max_rows,
        time: limit,
        bytes: max_bytes,
    } = caps;
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(refused(format!(
            "is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let started = Instant::now();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(AppError::internal)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
        .map_err(AppError::internal)?;
    conn.set_limit(
        Limit::SQLITE_LIMIT_LENGTH,
        i32::try_from(max_bytes).unwrap_or(i32::MAX),
    )
    .map_err(AppError::internal)?;
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 2000;")
        .map_err(AppError::internal)?;
    conn.authorizer(Some(authorize))
        .map_err(AppError::internal)?;
    let deadline = started + limit;
    conn.progress_handler(1_000, Some(move || Instant::now() > deadline))
        .map_err(AppError::internal)?;

    let mut stmt = conn.prepare(query).map_err(|e| refused(sql_message(&e)))?;
    if !stmt.readonly() {
        return Err(refused(
            "only read-only statements (SELECT, WITH, EXPLAIN) are allowed",
        ));
    }
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let mut rows = Vec::new();
    let mut truncated = false;
    let mut bytes = 0usize;
    let too_slow = || {
        AppError::Limit(format!(
            "the query ran longer than {} ms and was interrupted",
            limit.as_millis()
        ))
    };
    let mut cursor = stmt.query([]).map_err(|e| refused(sql_message(&e)))?;
    loop {
        match cursor.next() {
            Ok(Some(row)) => {
                if rows.len() == max_rows {
                    truncated = true;
                    break;
                }
                let mut out = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    let v = row.get_ref(i).map(value).unwrap_or(Value::Null);
                    bytes = bytes.saturating_add(size(&v));
                    out.push(v);
                }
                if bytes > max_bytes {
                    return Err(AppError::Limit(format!(
                        "the rows add up to more than {max_bytes} bytes (MAX_RESPONSE_BYTES); \
                         select fewer or shorter columns, or add a LIMIT"
                    )));
                }
                rows.push(out);
                if Instant::now() > deadline {
                    return Err(too_slow());
                }
            }
            Ok(None) => break,
            Err(e) if Instant::now() > deadline => {
                tracing::debug!(error = %e, "sql query interrupted");
                return Err(too_slow());
            }
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::TooBig => {
                return Err(AppError::Limit(format!(
                    "a value is larger than {max_bytes} bytes (MAX_RESPONSE_BYTES)"
                )));
            }
            Err(e) => return Err(refused(sql_message(&e))),
        }
    }
    Ok(SqlResult {
        columns,
        rows,
        truncated,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// SQLite's own message (it names the problem and never holds secrets: the query is the user's).
fn sql_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) if m == "not authorized" => {
            "not allowed: only read-only statements (no writes, ATTACH or PRAGMA changes)".into()
        }
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        rusqlite::Error::MultipleStatement => "only one statement is allowed".into(),
        other => other.to_string(),
    }
}
