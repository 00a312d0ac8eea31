//! The database: a pool of SQLite connections set up the same way every time, the one helper
//! through which every blocking diesel call runs, and the embedded migrations.
//!
//! Why `Db::run`: diesel is synchronous. A query run on a tokio worker would stall every other
//! request scheduled there, so every call goes through [`Db::run`] (reads, on the blocking pool)
//! or [`Db::write`] (writes, in place with `block_in_place` on the server's runtime; see
//! `write_in_place`), which take a pooled connection, keep the caller's tracing span, and re-raise
//! a panic in the caller.

pub mod batch;
pub mod meta;
pub mod models;
pub mod schema;

use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::Sqlite;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::AppError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// How many connections the pool keeps. SQLite in WAL mode serves many readers at once and one
/// writer; a small pool keeps memory low and the busy timeout absorbs write contention.
const POOL_SIZE: u32 = 8;
/// Page cache per connection, in KiB. SQLite's default (2 MiB) is far smaller than the indexes a
/// 100,000-lead database walks (search, report, duplicate blocking); with it, reads and index
/// inserts keep re-reading pages from the OS. Pages are only allocated when used.
const CACHE_KIB: u32 = 32 * 1024;
/// Memory-mapped reads: pages come straight from the OS page cache, shared by every connection,
/// instead of a `pread` copy per page. Writes still go through the WAL. (The known caveat, a
/// SIGBUS if the file is truncated under the process, does not apply: only leadcache writes it.)
const MMAP_BYTES: u64 = 256 * 1024 * 1024;
/// How long a connection waits for a write lock before it gives up with "database is locked".
const BUSY_TIMEOUT_MS: u32 = 10_000;

pub type Conn = PooledConnection<ConnectionManager<SqliteConnection>>;

/// Errors of opening and migrating the database (start-up only; queries use [`AppError`]).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the database file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}")]
    Pool { path: PathBuf, source: r2d2::Error },
    #[error("migration {name} failed, the database was left as it was: {message}")]
    Migration { name: String, message: String },
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
}

/// Per-connection set-up. `busy_timeout` must come before `journal_mode = WAL`, or switching the
/// journal mode can fail with "database is locked" while another connection starts up.
#[derive(Debug, Clone, Copy)]
struct Pragmas {
    read_only: bool,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        let mut sql = format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -{CACHE_KIB}; PRAGMA mmap_size = {MMAP_BYTES}; \
             PRAGMA temp_store = MEMORY;"
        );
        if self.read_only {
            sql.push_str(" PRAGMA query_only = ON;");
        }
        conn.batch_execute(&sql)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<SqliteConnection>>,
    path: PathBuf,
    /// Held by a writer from before it takes a connection until its transaction ends: SQLite has
    /// one writer at a time anyway, and queueing here (FIFO-ish, no sleeping) is much cheaper than
    /// SQLite's busy handler, which makes waiting writers sleep and retry.
    writer: std::sync::Arc<std::sync::Mutex<()>>,
    /// The file this handle opened, as (device, inode): [`Db::check_file`] tells when the path
    /// no longer names it (deleted or replaced under a running server).
    file: Option<(u64, u64)>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating it with its folder, mode 0600, when missing) the database at `path`.
    /// Does not migrate: call [`Db::migrate`].
    pub fn open(path: &Path) -> Result<Db, OpenError> {
        ensure_file(path)?;
        Self::open_pool(path, POOL_SIZE, false)
    }

    /// Opens an existing database for reading only (the `sql` query, `check`).
    pub fn open_read_only(path: &Path, size: u32) -> Result<Db, OpenError> {
        Self::open_pool(path, size, true)
    }

    fn open_pool(path: &Path, size: u32, read_only: bool) -> Result<Db, OpenError> {
        let manager = ConnectionManager::<SqliteConnection>::new(path.to_string_lossy());
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(30))
            .connection_customizer(Box::new(Pragmas { read_only }))
            .build(manager)
            .map_err(|source| OpenError::Pool {
                path: path.to_owned(),
                source,
            })?;
        Ok(Db {
            pool,
            path: path.to_owned(),
            writer: Default::default(),
            file: file_identity(path),
        })
    }

    /// Whether the file at [`Db::path`] is still the one this handle opened. A server whose file
    /// was deleted or replaced (another process removed it, a `restore --force` swapped it) keeps
    /// writing to the old inode, and everything it writes is lost when it exits: `/readyz` fails
    /// with this message so that an orchestrator restarts it before more is lost.
    pub fn check_file(&self) -> Result<(), String> {
        let Some(opened) = self.file else {
            return Ok(());
        };
        match file_identity(&self.path) {
            Some(now) if now == opened => Ok(()),
            Some(_) => Err(format!(
                "the database file {} was replaced by another file while this server had it open; \
                 what the server writes goes to the old file: restart it",
                self.path.display()
            )),
            None => Err(format!(
                "the database file {} was deleted while this server had it open; what the server \
                 writes goes to the deleted file and is lost at exit: restart it",
                self.path.display()
            )),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A pooled connection for synchronous code (command line, start-up, tests). Async code uses
    /// [`Db::run`].
    pub fn conn(&self) -> Result<Conn, AppError> {
        Ok(self.pool.get()?)
    }

    /// Names of migrations embedded in the binary but not yet applied.
    pub fn pending_migrations(&self) -> Result<Vec<String>, AppError> {
        let mut conn = self.conn()?;
        let pending = conn
            .pending_migrations(MIGRATIONS)
            .map_err(AppError::internal)?;
        Ok(pending.iter().map(|m| m.name().to_string()).collect())
    }

    /// Versions of the migrations applied to this database, oldest first.
    pub fn applied_migrations(&self) -> Result<Vec<String>, AppError> {
        let mut conn = self.conn()?;
        let mut applied: Vec<String> = conn
            .applied_migrations()
            .map_err(AppError::internal)?
            .iter()
            .map(|v| v.to_string())
            .collect();
        applied.sort();
        Ok(applied)
    }

    /// Applies pending migrations, each in its own transaction (diesel wraps every migration), so a
    /// failing one leaves the database as it was before it and is named in the error.
    pub fn migrate(&self) -> Result<Vec<String>, OpenError> {
        self.migrate_from(MIGRATIONS)
    }

    /// [`Db::migrate`] from any migration source (tests use a folder with a broken migration).
    pub fn migrate_from<S: MigrationSource<Sqlite>>(
        &self,
        source: S,
    ) -> Result<Vec<String>, OpenError> {
        let mut conn = self.pool.get().map_err(|source| OpenError::Pool {
            path: self.path.clone(),
            source,
        })?;
        let pending = conn
            .pending_migrations(source)
            .map_err(|e| OpenError::Migration {
                name: "(listing)".into(),
                message: e.to_string(),
            })?;
        let mut applied = Vec::new();
        for migration in pending {
            let name = migration.name().to_string();
            conn.run_migration(&migration)
                .map_err(|e| OpenError::Migration {
                    name: name.clone(),
                    message: e.to_string(),
                })?;
            applied.push(name);
        }
        Ok(applied)
    }

    /// Runs a blocking diesel closure on the blocking pool with a pooled connection.
    pub async fn run<F, T>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        on_blocking_pool(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
    }

    /// Like [`Db::run`], inside an immediate (write-locking) transaction: SQLite takes the write
    /// lock at the start, so two writers queue on the busy timeout instead of one failing half way.
    /// Runs in place on the server's runtime (see `write_in_place`).
    pub async fn write<F, T>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let writer = self.writer.clone();
        write_in_place(move || {
            let _turn = writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut conn = pool.get()?;
            conn.immediate_transaction(f)
        })
        .await
    }
}

/// Runs a write without stalling the other tasks of the runtime.
///
/// On the multi-threaded runtime (the server's) the write runs right here with
/// [`tokio::task::block_in_place`], which first hands this worker's other tasks to another
/// thread. The request waiting for the write does not move: on the blocking pool each write was
/// two thread hand-offs (wake a pool thread, then wake the worker with the result), which on the
/// 2-core benchmark machine cost about a tenth of a `createLead` (BENCHMARKS.md, "Session 4").
/// Reads stay on the blocking pool: `block_in_place` moves the worker's other tasks to another
/// thread at every call, and with 16 concurrent readers that cost more than it saved (`lead(id)`
/// 6,774 req/s and p99 8.0 ms in place against 8,558 req/s and 4.2 ms on the pool;
/// BENCHMARKS.md, "Latest figures"). Elsewhere (a current-thread runtime, as in
/// `#[tokio::test]`, where `block_in_place` is not allowed) writes go to the blocking pool too.
async fn write_in_place<T, F>(f: F) -> Result<T, AppError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
        return tokio::task::block_in_place(f);
    }
    on_blocking_pool(f).await
}

/// Runs `f` on tokio's blocking pool in the caller's tracing span and re-raises its panic.
async fn on_blocking_pool<T, F>(f: F) -> Result<T, AppError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let task = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        f()
    });
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(AppError::internal(e)),
    }
}

/// (device, inode) of the file at `path`, if there is one.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Creates the folder and an empty file with mode 0600 before SQLite opens it, so the database
/// (and the -wal/-shm files SQLite derives from it) are never readable by others.
fn ensure_file(path: &Path) -> Result<(), OpenError> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|source| OpenError::Folder {
            path: folder.to_owned(),
            source,
        })?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| OpenError::File {
            path: path.to_owned(),
            source,
        })?;
    let mode = file
        .metadata()
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|source| OpenError::File {
                path: path.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// Helpers for the library's own tests.
#[cfg(test)]
pub(crate) mod testing {
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    /// A migrated database in a temporary folder, which lives as long as the folder.
    pub fn migrated() -> (tempfile::TempDir, super::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = super::Db::open(&dir.path().join("t.db")).unwrap();
        db.migrate().unwrap();
        (dir, db)
    }

    /// Every table, index and trigger of the database as SQLite stores it: (name, SQL).
    pub fn schema(conn: &mut SqliteConnection) -> Vec<(String, String)> {
        #[derive(QueryableByName)]
        struct Item {
            #[diesel(sql_type = Text)]
            name: String,
            #[diesel(sql_type = Text)]
            sql: String,
        }
        diesel::sql_query("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .load::<Item>(conn)
            .unwrap()
            .into_iter()
            .map(|i| (i.name, i.sql))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temp_db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        (dir, db)
    }

    fn count(db: &Db) -> i64 {
        let mut conn = db.conn().unwrap();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT COUNT(*) FROM t)",
        ))
        .get_result(&mut conn)
        .unwrap()
    }

    /// What `Db::write` promises, on whichever path the runtime takes: the result comes back,
    /// an error rolls the transaction back, and a panic reaches the caller and rolls back too.
    async fn write_contract(db: Db) {
        db.write(|c| {
            diesel::sql_query("CREATE TABLE t (x INTEGER NOT NULL)").execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
        let n = db
            .write(|c| Ok(diesel::sql_query("INSERT INTO t VALUES (1)").execute(c)?))
            .await
            .unwrap();
        assert_eq!(n, 1);

        let failed = db
            .write(|c| {
                diesel::sql_query("INSERT INTO t VALUES (2)").execute(c)?;
                Err::<(), _>(AppError::validation("x", "is wrong"))
            })
            .await;
        assert!(
            matches!(failed, Err(AppError::Validation { .. })),
            "{failed:?}"
        );
        assert_eq!(count(&db), 1, "the failed write was rolled back");

        let db2 = db.clone();
        let panicked = tokio::spawn(async move {
            db2.write(|c| -> Result<(), AppError> {
                diesel::sql_query("INSERT INTO t VALUES (3)").execute(c)?;
                panic!("boom in a write");
            })
            .await
        })
        .await
        .unwrap_err();
        assert!(panicked.is_panic());
        assert_eq!(count(&db), 1, "the panicked write was rolled back");
        db.write(|c| Ok(diesel::sql_query("INSERT INTO t VALUES (4)").execute(c)?))
            .await
            .expect("the database still takes writes after a panic");
        assert_eq!(count(&db), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_in_place_on_the_server_runtime() {
        let (_dir, db) = temp_db();
        // On a worker thread, as in a request handler (the test body runs outside the workers).
        tokio::spawn(write_contract(db)).await.unwrap();
    }

    #[tokio::test]
    async fn write_on_the_blocking_pool_on_a_current_thread_runtime() {
        let (_dir, db) = temp_db();
        write_contract(db).await;
    }

    /// A long write in place does not stall the runtime's other tasks, even with one worker: its
    /// worker's tasks are handed to another thread first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_write_in_place_does_not_stall_other_tasks() {
        let (_dir, db) = temp_db();
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let seen = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                db.write(move |_| {
                    let before = ticks.load(Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(ticks.load(Ordering::Relaxed) - before)
                })
                .await
                .unwrap()
            })
            .await
            .unwrap()
        };
        ticker.abort();
        assert!(
            seen >= 5,
            "only {seen} ticks while the write held its thread"
        );
    }
}
