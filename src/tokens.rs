//! API tokens (SPEC §8): created with `leadcache token create`, shown once, stored only as a
//! SHA-256 hash; optionally also listed in `LEADCACHE_TOKENS_FILE`.
//!
//! A token is `lc_` + 40 random base62 characters. Only its hash and its first 8 characters (to
//! tell tokens apart in `token list`) are kept.
//!
//! The tokens file is TOML, one table per token, with the hash rather than the secret:
//! ```toml
//! [[token]]
//! name = "enrichment-agent"
//! role = "write"
//! sha256 = "<hex of sha256(token)>"
//! ```
//!
//! The server re-reads tokens at most every [`CACHE_TTL`] (1 s), so a token created or revoked
//! from the command line (another process) takes effect within that time without a restart, and
//! an open subscription of a revoked token is closed within [`CACHE_TTL`] plus
//! [`crate::ws::RECHECK_EVERY`]: within 2 s, as documented. A token created or revoked over the
//! server's own API takes effect at once: the resolver tells [`TokenChanges`], which makes the
//! cache stale and wakes every open socket to check its credentials again ([`Rechecks`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

use crate::auth::{Caller, Role};
use crate::db::Db;
use crate::db::models::ApiToken;
use crate::db::schema::api_tokens;
use crate::error::AppError;

/// How long the token list is kept before it is read again (see the module docs).
pub const CACHE_TTL: Duration = Duration::from_secs(1);
pub const PREFIX: &str = "lc_";

pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.trim().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn generate() -> String {
    let body: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("{PREFIX}{body}")
}

/// A token name is recorded as the actor of every change made with it, so it must be short,
/// plain, and not one of the actors leadcache uses for its own changes.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err("1 to 64 letters, digits, '-', '_' or '.'".into());
    }
    if matches!(
        name.to_ascii_lowercase().as_str(),
        "airtable" | "system" | "local"
    ) {
        return Err(format!(
            "{} is reserved for leadcache's own changes",
            crate::error::quote(name)
        ));
    }
    Ok(())
}

/// Creates a token; returns the secret (to show once) and the stored row.
pub fn create(
    conn: &mut SqliteConnection,
    name: &str,
    role: Role,
) -> Result<(String, ApiToken), AppError> {
    let name = name.trim();
    check_name(name).map_err(|m| AppError::validation("name", m))?;
    let secret = generate();
    let row = ApiToken {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_string(),
        role: role.as_str().to_string(),
        token_hash: hash(&secret),
        prefix: secret.chars().take(8).collect(),
        created_at: crate::time::now(),
        last_used_at: None,
        revoked_at: None,
    };
    diesel::insert_into(api_tokens::table)
        .values(&row)
        .execute(conn)
        .map_err(|e| match AppError::from(e) {
            AppError::Conflict(_) => AppError::Conflict(format!(
                "a token named {} exists already",
                crate::error::quote(name)
            )),
            other => other,
        })?;
    Ok((secret, row))
}

pub fn list(conn: &mut SqliteConnection) -> Result<Vec<ApiToken>, AppError> {
    Ok(api_tokens::table
        .order(api_tokens::created_at)
        .select(ApiToken::as_select())
        .load(conn)?)
}

/// Revokes a token by name. Returns false when no live token has that name.
pub fn revoke(conn: &mut SqliteConnection, name: &str) -> Result<bool, AppError> {
    let n = diesel::update(
        api_tokens::table
            .filter(api_tokens::name.eq(name))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(crate::time::now()))
    .execute(conn)?;
    Ok(n > 0)
}

#[derive(serde::Deserialize)]
struct TokensFile {
    #[serde(default)]
    token: Vec<FileToken>,
}

#[derive(serde::Deserialize)]
struct FileToken {
    name: String,
    role: String,
    sha256: String,
}

/// Reads the tokens file: hash -> caller. Errors name the file and the entry.
pub fn read_file(path: &Path) -> Result<HashMap<String, Caller>, AppError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AppError::validation(
            "LEADCACHE_TOKENS_FILE",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let parsed: TokensFile = toml::from_str(&text).map_err(|e| {
        AppError::validation("LEADCACHE_TOKENS_FILE", format!("{}: {e}", path.display()))
    })?;
    let mut out = HashMap::new();
    for t in parsed.token {
        let role = Role::parse(&t.role).ok_or_else(|| {
            AppError::validation(
                "LEADCACHE_TOKENS_FILE",
                format!(
                    "token {}: role must be read, write or admin",
                    crate::error::quote(&t.name)
                ),
            )
        })?;
        check_name(&t.name).map_err(|m| {
            AppError::validation(
                "LEADCACHE_TOKENS_FILE",
                format!("token name {}: {m}", crate::error::quote(&t.name)),
            )
        })?;
        let hex = t.sha256.trim().to_ascii_lowercase();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(AppError::validation(
                "LEADCACHE_TOKENS_FILE",
                format!(
                    "token {}: sha256 must be 64 hex characters",
                    crate::error::quote(&t.name)
                ),
            ));
        }
        out.insert(hex, Caller { name: t.name, role });
    }
    Ok(out)
}

/// Warns when the tokens file can be read by the group or others (it holds hashes only, but a
/// hash list tells an attacker which names and roles exist, and the file is usually next to
/// other secrets). Called once at start.
pub fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{mode:o}"),
                "LEADCACHE_TOKENS_FILE {} is readable by other users (mode {mode:o}); run chmod 600 on it",
                path.display()
            );
        }
    }
}

/// What the server knows of tokens right now: hash -> caller, for live tokens of the database
/// and the file.
type Live = std::sync::Arc<HashMap<String, Caller>>;

/// A generation number bumped whenever tokens change through the server's own API
/// (`createApiToken`, `revokeApiToken`). Cheap to clone; every clone shares the one channel.
#[derive(Debug, Clone)]
pub struct TokenChanges(std::sync::Arc<tokio::sync::watch::Sender<u64>>);

impl Default for TokenChanges {
    fn default() -> Self {
        TokenChanges(std::sync::Arc::new(tokio::sync::watch::channel(0).0))
    }
}

impl TokenChanges {
    /// Tokens changed (call after the change is committed).
    pub fn changed(&self) {
        self.0.send_modify(|g| *g = g.wrapping_add(1));
    }

    fn generation(&self) -> u64 {
        *self.0.borrow()
    }
}

/// When an open socket should check its credentials again: every `every`, and at once after
/// tokens changed through the server's API. [`Rechecks::due`] is cancel-safe (fit for a
/// `select!` loop).
pub struct Rechecks {
    tick: tokio::time::Interval,
    changes: tokio::sync::watch::Receiver<u64>,
}

impl Rechecks {
    /// Completes at the next tick or change, whichever comes first.
    pub async fn due(&mut self) {
        tokio::select! {
            _ = self.tick.tick() => {}
            changed = self.changes.changed() => {
                // The sender is gone (the server is stopping): ticks only.
                if changed.is_err() {
                    self.tick.tick().await;
                }
            }
        }
    }
}

/// Resolves bearer tokens to callers, with a short cache.
///
/// A failure to read the tokens (a broken tokens file, the database) is cached for the same TTL and
/// logged once per TTL; meanwhile every request is refused (fail closed) with `UNAVAILABLE`, whose
/// message does not name the file.
pub struct TokenAuth {
    db: Db,
    file: Option<std::path::PathBuf>,
    /// Whether a server without tokens is open (loopback bind) or closed to everyone (any other
    /// bind: the start refuses it, and revoking the last token at run time must not open it).
    open_allowed: bool,
    /// When the list was read, the [`TokenChanges`] generation it was read in, and the list.
    cache: Mutex<Option<Cached>>,
    changes: TokenChanges,
    /// When each token's `last_used_at` was last written (by hash), to write it at most once a
    /// [`LAST_USED_EVERY`] per token instead of on every request.
    touched: Mutex<HashMap<String, Instant>>,
}

struct Cached {
    at: Instant,
    generation: u64,
    live: Result<Live, ()>,
}

/// How stale `api_tokens.last_used_at` may be: it is written at most this often per token, off
/// the request's path.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// The outcome of checking a request's credentials.
#[derive(Debug)]
pub enum Verdict {
    Allowed(Caller),
    /// No token is configured and the server is open (loopback only): the caller is
    /// [`Caller::open`]. The HTTP layer then checks the request is a local one.
    Open(Caller),
    /// No valid credentials where some are required.
    Denied(AppError),
}

impl TokenAuth {
    /// `open_allowed`: whether the server is open when no token exists (only on loopback).
    /// `changes`: told by the API when tokens change (the cache is then read again at once).
    pub fn new(
        db: Db,
        file: Option<std::path::PathBuf>,
        open_allowed: bool,
        changes: TokenChanges,
    ) -> Self {
        TokenAuth {
            db,
            file,
            open_allowed,
            cache: Mutex::new(None),
            changes,
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the tokens now, with the full error (for the start, where it stops the program).
    /// Returns how many live tokens there are.
    pub async fn verify(&self) -> Result<usize, AppError> {
        let file = self.file.clone();
        let live = self.db.run(move |c| Self::load(c, file.as_deref())).await?;
        Ok(live.len())
    }

    fn load(
        conn: &mut SqliteConnection,
        file: Option<&Path>,
    ) -> Result<HashMap<String, Caller>, AppError> {
        let rows: Vec<ApiToken> = api_tokens::table
            .filter(api_tokens::revoked_at.is_null())
            .select(ApiToken::as_select())
            .load(conn)?;
        let mut live: HashMap<String, Caller> = rows
            .into_iter()
            .filter_map(|t| {
                Role::parse(&t.role).map(|role| (t.token_hash, Caller { name: t.name, role }))
            })
            .collect();
        if let Some(path) = file {
            live.extend(read_file(path)?);
        }
        Ok(live)
    }

    async fn live(&self) -> Result<Live, AppError> {
        let unavailable = || {
            AppError::Unavailable("the API token list cannot be read; see the server log".into())
        };
        // Read before the list: a change committed while it is read leaves the cache stale.
        let generation = self.changes.generation();
        if let Ok(cache) = self.cache.lock()
            && let Some(c) = cache.as_ref()
            && c.at.elapsed() <= CACHE_TTL
            && c.generation == generation
        {
            return c.live.clone().map_err(|()| unavailable());
        }
        let file = self.file.clone();
        let loaded = self
            .db
            .run(move |c| Self::load(c, file.as_deref()))
            .await
            .map(std::sync::Arc::new);
        let cached = match &loaded {
            Ok(live) => Ok(live.clone()),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the API tokens; refusing requests until they can be read");
                Err(())
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some(Cached {
                at: Instant::now(),
                generation,
                live: cached,
            });
        }
        loaded.map_err(|_| unavailable())
    }

    /// Records that the token with this hash was used, at most once a [`LAST_USED_EVERY`], in
    /// the background (a failure is logged; the request does not wait for it). Tokens of the
    /// tokens file have no row and are left alone.
    fn touch(&self, token_hash: String) {
        let now = Instant::now();
        let due = match self.touched.lock() {
            Ok(mut touched) => match touched.get(&token_hash) {
                Some(at) if now.duration_since(*at) < LAST_USED_EVERY => false,
                _ => {
                    touched.insert(token_hash.clone(), now);
                    true
                }
            },
            Err(_) => false,
        };
        if !due {
            return;
        }
        let db = self.db.clone();
        tokio::spawn(async move {
            let written = db
                .run(move |c| {
                    Ok(diesel::update(
                        api_tokens::table.filter(api_tokens::token_hash.eq(&token_hash)),
                    )
                    .set(api_tokens::last_used_at.eq(crate::time::now()))
                    .execute(c)?)
                })
                .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, "cannot record when an API token was last used");
            }
        });
    }

    /// Rechecks of an open socket's credentials: every `every`, and at once after tokens changed
    /// through the API.
    pub fn rechecks(&self, every: Duration) -> Rechecks {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Rechecks {
            tick,
            changes: self.changes.0.subscribe(),
        }
    }

    /// Whether any token is configured (the server is then closed to callers without one).
    pub async fn any(&self) -> Result<bool, AppError> {
        Ok(!self.live().await?.is_empty())
    }

    /// Checks a bearer token (`None`: none was sent).
    pub async fn check(&self, bearer: Option<&str>) -> Verdict {
        let live = match self.live().await {
            Ok(l) => l,
            Err(e) => return Verdict::Denied(e),
        };
        match bearer {
            None if live.is_empty() && self.open_allowed => Verdict::Open(Caller::open()),
            None if live.is_empty() => Verdict::Denied(AppError::Unauthenticated(
                "this server listens on a non-loopback address and has no live API token; create one with \
                 `leadcache token create`"
                    .into(),
            )),
            None => Verdict::Denied(AppError::Unauthenticated(
                "this server requires a token: send Authorization: Bearer <token>".into(),
            )),
            Some(token) => {
                let token_hash = hash(token);
                match live.get(&token_hash) {
                    Some(caller) => {
                        self.touch(token_hash);
                        Verdict::Allowed(caller.clone())
                    }
                    None => Verdict::Denied(AppError::Unauthenticated(
                        "unknown or revoked token".into(),
                    )),
                }
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
