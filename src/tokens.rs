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
//! The server re-reads tokens at most every [`CACHE_TTL`], so a token created or revoked from the
//! command line takes effect within that time without a restart.

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

pub const CACHE_TTL: Duration = Duration::from_secs(2);
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

/// Creates a token; returns the secret (to show once) and the stored row.
pub fn create(
    conn: &mut SqliteConnection,
    name: &str,
    role: Role,
) -> Result<(String, ApiToken), AppError> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(AppError::validation(
            "name",
            "1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    if matches!(name, "airtable" | "system" | "local") {
        return Err(AppError::validation(
            "name",
            format!("{name:?} is reserved for leadcache's own changes"),
        ));
    }
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
            AppError::Conflict(_) => {
                AppError::Conflict(format!("a token named {name:?} exists already"))
            }
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
                format!("token {:?}: role must be read, write or admin", t.name),
            )
        })?;
        let hex = t.sha256.trim().to_ascii_lowercase();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(AppError::validation(
                "LEADCACHE_TOKENS_FILE",
                format!("token {:?}: sha256 must be 64 hex characters", t.name),
            ));
        }
        out.insert(hex, Caller { name: t.name, role });
    }
    Ok(out)
}

/// What the server knows of tokens right now: hash -> caller, for live tokens of the database
/// and the file.
type Live = std::sync::Arc<HashMap<String, Caller>>;

/// Resolves bearer tokens to callers, with a short cache.
pub struct TokenAuth {
    db: Db,
    file: Option<std::path::PathBuf>,
    cache: Mutex<Option<(Instant, Live)>>,
}

/// The outcome of checking a request's credentials.
#[derive(Debug)]
pub enum Verdict {
    Allowed(Caller),
    /// No valid credentials where some are required.
    Denied(AppError),
}

impl TokenAuth {
    pub fn new(db: Db, file: Option<std::path::PathBuf>) -> Self {
        TokenAuth {
            db,
            file,
            cache: Mutex::new(None),
        }
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
        if let Ok(cache) = self.cache.lock()
            && let Some((at, live)) = cache.as_ref()
            && at.elapsed() <= CACHE_TTL
        {
            return Ok(live.clone());
        }
        let file = self.file.clone();
        let live: Live =
            std::sync::Arc::new(self.db.run(move |c| Self::load(c, file.as_deref())).await?);
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((Instant::now(), live.clone()));
        }
        Ok(live)
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
            None if live.is_empty() => Verdict::Allowed(Caller::open()),
            None => Verdict::Denied(AppError::Unauthenticated(
                "this server requires a token: send Authorization: Bearer <token>".into(),
            )),
            Some(token) => match live.get(&hash(token)) {
                Some(caller) => Verdict::Allowed(caller.clone()),
                None => {
                    Verdict::Denied(AppError::Unauthenticated("unknown or revoked token".into()))
                }
            },
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
