//! Corruption checks: the quick one at start-up and the full report of `leadcache check`.
//!
//! At start, `PRAGMA quick_check` (seconds at 100,000 leads, it skips index-content checks) runs
//! before migrations touch anything; if it fails the server does not start and the message names
//! the newest backup that itself passes the check, with the exact command to restore it.
//! `leadcache check` runs the full `integrity_check`, `foreign_key_check`, the FTS index's own
//! integrity check, and the sanity of the outbox and history against the leads.

use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;

use super::{BackupError, integrity, sqlite};
use crate::error::AppError;

/// Runs `PRAGMA quick_check` on an existing database file. A missing file is fine (it will be
/// created).
pub fn quick_check(path: &Path) -> Result<(), BackupError> {
    if !path.is_file()
        || std::fs::metadata(path)
            .map(|m| m.len() == 0)
            .unwrap_or(true)
    {
        return Ok(());
    }
    let conn = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(sqlite(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite(path))?;
    integrity(&conn, path, "quick_check")
}

/// The newest backup in `dir` that passes `quick_check`.
pub fn newest_good_backup(dir: &Path) -> Option<PathBuf> {
    super::files(dir).into_iter().find(|file| {
        rusqlite::Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite(file))
            .and_then(|c| integrity(&c, file, "quick_check"))
            .is_ok()
    })
}

/// The start-up check: `Ok` or a message saying what to do.
pub fn startup_check(database: &Path, backup_dir: &Path) -> Result<(), String> {
    let Err(e) = quick_check(database) else {
        return Ok(());
    };
    let advice = match newest_good_backup(backup_dir) {
        Some(b) => format!(
            "The newest good backup is {}. Restore it with:\n    leadcache restore {}\n\
             (the damaged file is backed up or kept aside first). Or run `leadcache check` for details.",
            b.display(),
            b.display()
        ),
        None => format!(
            "No good backup was found in {}. Run `leadcache check` for details; an export \
             (`leadcache export --format json`) may still save most leads.",
            backup_dir.display()
        ),
    };
    Err(format!(
        "the database {} is damaged and leadcache will not start on it: {e}.\n{advice}",
        database.display()
    ))
}

/// One line of the `check` report.
#[derive(Debug, Clone)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The `leadcache check` report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }

    fn add(&mut self, check: &'static str, problems: Result<Vec<String>, BackupError>) {
        let (ok, detail) = match problems {
            Ok(p) if p.is_empty() => (true, "ok".to_string()),
            Ok(p) => (false, p.join("; ")),
            Err(e) => (false, e.to_string()),
        };
        self.findings.push(Finding { check, ok, detail });
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for x in &self.findings {
            writeln!(
                f,
                "{:<5} {:<28} {}",
                if x.ok { "ok" } else { "FAIL" },
                x.check,
                x.detail
            )?;
        }
        Ok(())
    }
}

/// Sanity queries: (check name, SQL counting the problem rows, what one problem is).
const SANITY: &[(&str, &str, &str)] = &[
    (
        "outbox rows without a lead",
        "SELECT COUNT(*) FROM outbox WHERE lead_id NOT IN (SELECT id FROM leads)",
        "outbox row(s) whose lead is missing",
    ),
    (
        "pending leads in the outbox",
        "SELECT COUNT(*) FROM leads WHERE sync_state = 'pending' AND id NOT IN (SELECT lead_id FROM outbox)",
        "lead(s) marked pending with no outbox row (their change would never be pushed)",
    ),
    (
        "events without a lead",
        "SELECT COUNT(*) FROM lead_events WHERE lead_id NOT IN (SELECT id FROM leads)",
        "event(s) whose lead is missing",
    ),
    (
        "enrichments without a lead",
        "SELECT COUNT(*) FROM enrichments WHERE lead_id NOT IN (SELECT id FROM leads)",
        "enrichment(s) whose lead is missing",
    ),
];

/// The full check of `leadcache check`.
pub fn full_check(path: &Path) -> Report {
    let mut report = Report::default();
    let conn = match rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    {
        Ok(c) => c,
        Err(e) => {
            report.add("open", Err(sqlite(path)(e)));
            return report;
        }
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
    report.add(
        "integrity_check",
        integrity(&conn, path, "integrity_check").map(|()| vec![]),
    );
    report.add("foreign_key_check", foreign_keys(&conn, path));
    report.add(
        "full-text index",
        conn.execute(
            "INSERT INTO leads_fts(leads_fts) VALUES('integrity-check')",
            [],
        )
        .map(|_| vec![])
        .map_err(sqlite(path)),
    );
    report.add("stored pipeline stays", stays(path));
    for (name, sql, what) in SANITY {
        let n = conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map_err(sqlite(path));
        report.add(
            name,
            n.map(|n| {
                if n == 0 {
                    vec![]
                } else {
                    vec![format!("{n} {what}")]
                }
            }),
        );
    }
    report
}

/// Leads whose stored stays (`leads::stays`) differ from their history.
fn stays(path: &Path) -> Result<Vec<String>, BackupError> {
    use diesel::Connection;
    let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| BackupError::App(AppError::internal(e)))?;
    let bad = crate::leads::stays::inconsistent(&mut conn, 10)?;
    Ok(if bad.is_empty() {
        vec![]
    } else {
        vec![format!(
            "stored stays differ from the history for lead(s) {} (rebuilt by `leadcache check --repair`)",
            bad.join(", ")
        )]
    })
}

fn foreign_keys(conn: &rusqlite::Connection, path: &Path) -> Result<Vec<String>, BackupError> {
    let mut stmt = conn
        .prepare("PRAGMA foreign_key_check")
        .map_err(sqlite(path))?;
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(2)?)))
        .map_err(sqlite(path))?
        .collect::<Result<_, _>>()
        .map_err(sqlite(path))?;
    let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for key in rows {
        *counts.entry(key).or_default() += 1;
    }
    Ok(counts
        .into_iter()
        .map(|((table, parent), n)| format!("{n} row(s) of {table} point to a missing {parent}"))
        .collect())
}
