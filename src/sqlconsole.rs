//! The admin `sql` query: one read-only statement on its own read-only connection, with a row
//! cap and a time limit.
//!
//! Diesel cannot return rows of unknown shape, interrupt a statement or install an authorizer, so
//! this uses rusqlite (same bundled SQLite, `libsqlite3-sys` shared with diesel). Defences, each
//! enough on its own for writes: the file is opened `SQLITE_OPEN_READ_ONLY`, `query_only` is on,
//! the statement must be read-only (`sqlite3_stmt_readonly`), and an authorizer allows only reads,
//! selects and functions; `ATTACH` is denied and the attached-database limit is 0, so no other file
//! can be opened. A progress handler interrupts the statement when the time limit passes.

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
pub fn run(
    path: &Path,
    query: &str,
    max_rows: usize,
    limit: Duration,
) -> Result<SqlResult, AppError> {
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
                    out.push(row.get_ref(i).map(value).unwrap_or(Value::Null));
                }
                rows.push(out);
            }
            Ok(None) => break,
            Err(e) if Instant::now() > deadline => {
                tracing::debug!(error = %e, "sql query interrupted");
                return Err(AppError::Limit(format!(
                    "the query ran longer than {} ms and was interrupted",
                    limit.as_millis()
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
