//! `leadcache restore FILE`: put a backup (or any leadcache database) back in place.
//!
//! Steps, each one a reason to stop before anything changed:
//! 1. the file passes `PRAGMA integrity_check`, has a `leads` table and only migrations this
//!    binary knows (a database from a newer leadcache is refused);
//! 2. no server holds the database ([`super::lock`]), unless `--force`;
//! 3. the current database is backed up (reason `pre-restore`); if it is too damaged for a
//!    checked backup, its raw bytes are kept aside as `<database>.before-restore-<time>`;
//! 4. the file is copied to a temp file in the database's folder, flushed, and renamed over the
//!    database (atomic), after the old database was checkpointed and its `-wal`/`-shm` removed (a
//!    stale WAL would otherwise be replayed onto the restored file).
//!
//! **Sync position.** The pull watermark (`cache_meta.pull_watermark`) and the outbox come back
//! exactly as they were in the backup; nothing here moves them. The watermark is at most the
//! backup's time (a pull never stores one later than its own start), so Airtable's changes since
//! the backup are newer than it. The restored database gets `cache_meta.restored_at` (and
//! `restored_from`); the sync engine sees a restore newer than its last complete pass and makes
//! the next pull a full pull (`SyncEngine::restored_since_last_pass`), which brings back what
//! Airtable changed since the backup *and* finds the records deleted since, which an incremental
//! pull cannot. Pending local changes in the restored outbox are then pushed; if they had already
//! reached Airtable before the restore, the full pull finds them there (creates by their Lead ID)
//! and nothing is sent twice. Local writes made after the backup are gone: that is what a
//! restore means (unless they had reached Airtable, which sends them back with the pull).

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use diesel::migration::MigrationSource;
use rusqlite::OpenFlags;

use super::{BackupError, Reason, integrity, io, sqlite};
use crate::config::Config;
use crate::db::{Db, MIGRATIONS, meta};

pub const RESTORED_AT: &str = "restored_at";
pub const RESTORED_FROM: &str = "restored_from";

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub lead_count: i64,
    /// The backup of the database that was replaced (or the raw copy kept aside).
    pub previous: Option<PathBuf>,
}

/// Checks that `file` is a sound leadcache database this binary can serve. Returns its lead count.
pub fn verify(file: &Path) -> Result<i64, BackupError> {
    if !file.is_file() {
        return Err(BackupError::Refused(format!(
            "{} is not a file",
            file.display()
        )));
    }
    let conn = rusqlite::Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite(file))?;
    integrity(&conn, file, "integrity_check")?;
    let has = |table: &str| -> Result<bool, BackupError> {
        conn.query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(sqlite(file))
    };
    if !has("leads")? || !has("__diesel_schema_migrations")? {
        return Err(BackupError::Refused(format!(
            "{} is not a leadcache database (no leads table or migration log)",
            file.display()
        )));
    }
    let known: Vec<String> = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&MIGRATIONS)
        .map_err(|e| BackupError::Refused(format!("cannot list this binary's migrations: {e}")))?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let mut stmt = conn
        .prepare("SELECT version FROM __diesel_schema_migrations")
        .map_err(sqlite(file))?;
    let applied: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .map_err(sqlite(file))?
        .collect::<Result<_, _>>()
        .map_err(sqlite(file))?;
    if let Some(unknown) = applied.iter().find(|v| !known.contains(v)) {
        return Err(BackupError::Refused(format!(
            "{} was written by a newer leadcache (migration {unknown} is unknown to this one); upgrade first",
            file.display()
        )));
    }
    conn.query_row("SELECT COUNT(*) FROM leads", [], |r| r.get(0))
        .map_err(sqlite(file))
}

/// Restores `file` over the configured database. `force` skips the live-server check.
pub fn restore(config: &Config, file: &Path, force: bool) -> Result<Restored, BackupError> {
    let target = &config.database_path;
    let lead_count = verify(file)?;
    let _lock = match super::lock::acquire(target) {
        Ok(lock) => Some(lock),
        Err(super::lock::LockError::Held { pid }) if !force => {
            return Err(BackupError::Refused(format!(
                "a leadcache server{} is using {}. Stop it first: its open connections would keep writing to \
                 the old file (its inode and WAL), so the restore would be lost or the database corrupted. \
                 Use --force only if you are sure no server runs.",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                target.display()
            )));
        }
        Err(e) if !force => return Err(BackupError::Refused(e.to_string())),
        Err(e) => {
            tracing::warn!(error = %e, "restore --force: going on without the database lock");
            None
        }
    };
    let (previous, pre_restore) =
        if target.is_file() && fs::metadata(target).map(|m| m.len() > 0).unwrap_or(false) {
            let (path, taken) = keep_previous(config)?;
            (Some(path), taken)
        } else {
            (None, None)
        };

    let folder = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(folder).map_err(io("cannot create the database folder", folder))?;
    let temp = folder.join(format!(
        ".{}.restoring",
        target
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let _ = fs::remove_file(&temp);
    copy_flushed(file, &temp)?;
    for suffix in ["-wal", "-shm"] {
        remove_if_exists(&sidecar(target, suffix))?;
    }
    fs::rename(&temp, target).map_err(io("cannot move the restored database to", target))?;
    super::sync_dir(folder);

    let db = Db::open(target).map_err(|e| BackupError::Refused(e.to_string()))?;
    let mut conn = db.conn()?;
    meta::set_time(&mut conn, RESTORED_AT, crate::time::now())?;
    meta::set(
        &mut conn,
        RESTORED_FROM,
        &file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )?;
    if let Some(taken) = pre_restore {
        // The old database's own record of this backup went away with it.
        super::record(&mut conn, Reason::PreRestore, &Ok(taken))?;
    }
    Ok(Restored {
        lead_count,
        previous,
    })
}

/// Backs up the current database before it is replaced; keeps a raw copy if it cannot.
fn keep_previous(config: &Config) -> Result<(PathBuf, Option<super::Taken>), BackupError> {
    let target = &config.database_path;
    let checked = Db::open(target)
        .map_err(|e| BackupError::Refused(e.to_string()))
        .and_then(|db| {
            let taken = super::take(
                &db,
                &config.backup_dir,
                Reason::PreRestore,
                config.backup_keep.max(2),
            );
            // Close every connection: the last one checkpoints the WAL into the file.
            drop(db);
            taken
        });
    match checked {
        Ok((taken, _)) => Ok((taken.path.clone(), Some(taken))),
        Err(e) => {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let aside = target.with_file_name(format!(
                "{}.before-restore-{stamp}",
                target
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            tracing::warn!(error = %e, aside = %aside.display(), "cannot back up the current database; keeping its raw bytes");
            copy_flushed(target, &aside)?;
            let wal = sidecar(target, "-wal");
            if wal.is_file() {
                copy_flushed(&wal, &sidecar(&aside, "-wal"))?;
            }
            Ok((aside, None))
        }
    }
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn remove_if_exists(path: &Path) -> Result<(), BackupError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot remove", path)(e)),
    }
}

/// Copies `from` to a new file `to` (mode 0600) and flushes it to disk.
fn copy_flushed(from: &Path, to: &Path) -> Result<(), BackupError> {
    let mut src = fs::File::open(from).map_err(io("cannot read", from))?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io("cannot create", to))?;
    std::io::copy(&mut src, &mut dst).map_err(io("cannot write", to))?;
    dst.flush().map_err(io("cannot write", to))?;
    dst.sync_all().map_err(io("cannot flush", to))?;
    Ok(())
}
