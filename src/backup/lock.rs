//! The server's lock on its database: `leads.db.lock` next to the database, held with an
//! exclusive advisory lock (`flock`) for as long as `serve` runs, with the server's pid inside.
//!
//! `restore` swaps the database file; a running server keeps its open connections on the old
//! file's inode and WAL and would keep writing there, so the restore would be lost (or the two
//! would corrupt each other through a stale `-wal`). `restore` therefore takes the same lock and
//! refuses while a server holds it. The kernel releases a `flock` when its process dies, so a
//! crashed server never leaves a stale lock behind (the file itself may stay; it means nothing).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file of a database: `<database>.lock`.
pub fn path_for(database: &Path) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    database.with_file_name(name)
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DbLock {
    file: File,
    path: PathBuf,
}

impl DbLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DbLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the database is in use by another leadcache process{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { pid: Option<u32> },
    #[error("cannot use the lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes the lock of `database` without waiting, writing this process's pid into it.
pub fn acquire(database: &Path) -> Result<DbLock, LockError> {
    let path = path_for(database);
    let err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(err)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                pid: text.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(err(e)),
    }
    file.set_len(0).map_err(err)?;
    file.rewind().map_err(err)?;
    writeln!(file, "{}", std::process::id()).map_err(err)?;
    Ok(DbLock { file, path })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("leads.db");
        assert_eq!(path_for(&db), dir.path().join("leads.db.lock"));
        let held = acquire(&db).unwrap();
        match acquire(&db) {
            Err(LockError::Held { pid }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        acquire(&db).unwrap();
    }
}
