//! Backups (SPEC §12): consistent copies of the live database, checked before they count.
//!
//! - **How**: SQLite's online backup API (through `rusqlite`, which links the same bundled
//!   libsqlite3 as diesel). The copy is made in one backup step, inside one read transaction of
//!   the source: in WAL mode that is a snapshot, so it holds exactly the transactions committed
//!   before it started, and the server keeps writing meanwhile (readers never block the writer).
//! - **Checked**: the copy is written to a hidden `.partial` file, switched to a rollback journal
//!   (a backup is one self-contained file, no `-wal` next to it), checked with
//!   `PRAGMA integrity_check`, and only then renamed to its final name. A failed backup leaves no
//!   file and is recorded with its error.
//! - **Where**: `LEADCACHE_BACKUP_DIR` (mode 0700), files `leads-YYYYMMDDTHHMMSSZ.db` (UTC, mode
//!   0600; `-2`, `-3`, ... when two are taken in the same second), pruned to `BACKUP_KEEP` newest.
//! - **Recorded** in the `backups` table of the live database (reason `scheduled`, `manual`,
//!   `pre-migration`, `pre-restore`, `pre-reset`).
//! - **Sync position**: the pull watermark and the outbox are rows of the database, so they travel
//!   with a backup; see [`restore`] for what happens to them on the way back.

pub mod check;
pub mod cli;
pub mod lock;
pub mod restore;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use rusqlite::OpenFlags;

use crate::db::Db;
use crate::db::models::BackupRow;
use crate::db::schema::backups;
use crate::error::AppError;

/// Why a backup was taken (the `reason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Scheduled,
    Manual,
    PreMigration,
    PreRestore,
    PreReset,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Scheduled => "scheduled",
            Reason::Manual => "manual",
            Reason::PreMigration => "pre-migration",
            Reason::PreRestore => "pre-restore",
            Reason::PreReset => "pre-reset",
        }
    }
}

/// Errors of taking, checking and restoring backups.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SQLite error on {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the copy failed its integrity check: {0}")]
    Integrity(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    App(#[from] AppError),
}

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

pub(crate) fn sqlite(path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Sqlite { path, source }
}

/// A finished backup file.
#[derive(Debug, Clone)]
pub struct Taken {
    pub path: PathBuf,
    pub size_bytes: i64,
    pub duration: Duration,
    pub lead_count: i64,
}

/// Backups of one process never run at the same time (they would race for a file name and double
/// the I/O); backups of another process are told apart by their file names.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Copies the database at `source` into `dir` and checks the copy. Blocking. Does not record or
/// prune: [`take`] does the whole job.
pub fn copy(source: &Path, dir: &Path) -> Result<Taken, BackupError> {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    ensure_dir(dir)?;
    let final_path = free_name(dir, Utc::now().naive_utc());
    let file_name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dir.join(format!(".{file_name}.partial"));
    let result = copy_into(source, &partial);
    let lead_count = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, &final_path).map_err(io("cannot rename the backup to", &final_path))?;
    sync_dir(dir);
    let size_bytes = fs::metadata(&final_path)
        .map(|m| m.len() as i64)
        .unwrap_or(0);
    Ok(Taken {
        path: final_path,
        size_bytes,
        duration: started.elapsed(),
        lead_count,
    })
}

/// The backup proper: online backup into `dest`, rollback journal, integrity check, mode 0600.
/// Returns the number of leads in the copy.
fn copy_into(source: &Path, dest: &Path) -> Result<i64, BackupError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(io("cannot create the backup file", dest))?;
    let src = rusqlite::Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(source))?;
    src.busy_timeout(Duration::from_secs(10))
        .map_err(sqlite(source))?;
    let mut dst = rusqlite::Connection::open(dest).map_err(sqlite(dest))?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(sqlite(dest))?;
        // -1: every page in one step, i.e. one read transaction on the source: a snapshot.
        loop {
            match backup.step(-1).map_err(sqlite(dest))? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    drop(src);
    let _: String = dst
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(sqlite(dest))?;
    integrity(&dst, dest, "integrity_check")?;
    let leads: i64 = dst
        .query_row("SELECT COUNT(*) FROM leads", [], |r| r.get(0))
        .map_err(sqlite(dest))?;
    dst.close().map_err(|(_, e)| sqlite(dest)(e))?;
    let file = fs::File::open(dest).map_err(io("cannot open the backup file", dest))?;
    file.sync_all()
        .map_err(io("cannot flush the backup file", dest))?;
    Ok(leads)
}

/// Runs `PRAGMA integrity_check` or `quick_check`; anything but a single `ok` is an error listing
/// the first problems.
pub(crate) fn integrity(
    conn: &rusqlite::Connection,
    path: &Path,
    pragma: &str,
) -> Result<(), BackupError> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA {pragma}(20)"))
        .map_err(sqlite(path))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(sqlite(path))?
        .collect::<Result<_, _>>()
        .map_err(sqlite(path))?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(BackupError::Integrity(rows.join("; ")))
    }
}

/// Creates the backup folder (and its parents) with mode 0700.
fn ensure_dir(dir: &Path) -> Result<(), BackupError> {
    fs::create_dir_all(dir).map_err(io("cannot create the backup folder", dir))?;
    let mode = fs::metadata(dir)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    if mode != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io("cannot restrict the backup folder", dir))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `leads-20261124T030000Z.db`, or `...Z-2.db` when taken. A name is also taken while its partial
/// file exists.
fn free_name(dir: &Path, at: NaiveDateTime) -> PathBuf {
    let stamp = at.format("%Y%m%dT%H%M%SZ");
    let mut n = 1;
    loop {
        let name = if n == 1 {
            format!("leads-{stamp}.db")
        } else {
            format!("leads-{stamp}-{n}.db")
        };
        let path = dir.join(&name);
        if !path.exists() && !dir.join(format!(".{name}.partial")).exists() {
            return path;
        }
        n += 1;
    }
}

/// The sort key of a backup file name: (timestamp, sequence), or `None` for other files.
fn name_key(name: &str) -> Option<(String, u32)> {
    let stem = name.strip_prefix("leads-")?.strip_suffix(".db")?;
    let (stamp, seq) = match stem.split_once("Z-") {
        Some((stamp, seq)) => (stamp, seq.parse().ok()?),
        None => (stem.strip_suffix('Z')?, 1),
    };
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S").ok()?;
    Some((stamp.to_string(), seq))
}

/// Backup files in `dir`, newest first.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<((String, u32), PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name_key(&name).map(|k| (k, e.path()))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Deletes the oldest backup files beyond `keep`. Returns the deleted paths.
pub fn prune(dir: &Path, keep: usize) -> Vec<PathBuf> {
    let mut deleted = Vec::new();
    for path in files(dir).into_iter().skip(keep) {
        match fs::remove_file(&path) {
            Ok(()) => deleted.push(path),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot delete an old backup")
            }
        }
    }
    deleted
}

/// Records a backup (or a failed attempt) in the `backups` table.
pub fn record(
    conn: &mut SqliteConnection,
    reason: Reason,
    outcome: &Result<Taken, BackupError>,
) -> Result<BackupRow, AppError> {
    let now = crate::time::now();
    let (file, size, ms, leads, state, error) = match outcome {
        Ok(t) => (
            t.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            t.size_bytes,
            t.duration.as_millis() as i64,
            t.lead_count,
            "ok",
            None,
        ),
        Err(e) => (String::new(), 0, 0, 0, "failed", Some(e.to_string())),
    };
    Ok(diesel::insert_into(backups::table)
        .values((
            backups::file.eq(file),
            backups::reason.eq(reason.as_str()),
            backups::created_at.eq(now),
            backups::size_bytes.eq(size),
            backups::duration_ms.eq(ms),
            backups::lead_count.eq(leads),
            backups::outcome.eq(state),
            backups::error.eq(error),
        ))
        .returning(BackupRow::as_returning())
        .get_result(conn)?)
}

/// Takes a backup of `db`, records it (also when it failed), and prunes to `keep`. Blocking: call
/// it from `spawn_blocking` or [`take_async`].
pub fn take(
    db: &Db,
    dir: &Path,
    reason: Reason,
    keep: usize,
) -> Result<(Taken, BackupRow), BackupError> {
    let outcome = copy(db.path(), dir);
    let mut conn = db.conn()?;
    let row = record(&mut conn, reason, &outcome)?;
    match outcome {
        Ok(taken) => {
            let pruned = prune(dir, keep);
            tracing::info!(
                file = %taken.path.display(),
                reason = reason.as_str(),
                leads = taken.lead_count,
                bytes = taken.size_bytes,
                ms = taken.duration.as_millis() as u64,
                pruned = pruned.len(),
                "backup taken"
            );
            Ok((taken, row))
        }
        Err(e) => Err(e),
    }
}

/// [`take`] on the blocking pool.
pub async fn take_async(
    db: Db,
    dir: PathBuf,
    reason: Reason,
    keep: usize,
) -> Result<(Taken, BackupRow), BackupError> {
    match tokio::task::spawn_blocking(move || take(&db, &dir, reason, keep)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(BackupError::App(AppError::internal(e))),
    }
}

/// Backups recorded in the database, newest first.
pub fn list(conn: &mut SqliteConnection, limit: i64) -> Result<Vec<BackupRow>, AppError> {
    Ok(backups::table
        .order(backups::id.desc())
        .limit(limit)
        .select(BackupRow::as_select())
        .load(conn)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_then_sequence() {
        assert_eq!(
            name_key("leads-20261124T030000Z.db"),
            Some(("20261124T030000".into(), 1))
        );
        assert_eq!(
            name_key("leads-20261124T030000Z-3.db"),
            Some(("20261124T030000".into(), 3))
        );
        assert_eq!(name_key("leads-nonsense.db"), None);
        assert_eq!(name_key(".leads-20261124T030000Z.db.partial"), None);
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "leads-20261124T030000Z.db",
            "leads-20261124T030000Z-2.db",
            "leads-20261123T030000Z.db",
            "notes.txt",
        ] {
            fs::write(dir.path().join(n), b"x").unwrap();
        }
        let names: Vec<String> = files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "leads-20261124T030000Z-2.db",
                "leads-20261124T030000Z.db",
                "leads-20261123T030000Z.db"
            ]
        );
        let deleted = prune(dir.path(), 1);
        assert_eq!(deleted.len(), 2);
        assert!(dir.path().join("leads-20261124T030000Z-2.db").exists());
        assert!(
            dir.path().join("notes.txt").exists(),
            "other files are never pruned"
        );
    }

    #[test]
    fn a_second_backup_in_the_same_second_gets_a_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let at = NaiveDateTime::parse_from_str("2026-11-24 03:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let first = free_name(dir.path(), at);
        assert!(first.ends_with("leads-20261124T030000Z.db"));
        fs::write(&first, b"x").unwrap();
        assert!(free_name(dir.path(), at).ends_with("leads-20261124T030000Z-2.db"));
    }
}
