//! Configuration: read once at start, validated, passed down (no global statics).
//!
//! Every setting is an environment variable and a `serve` flag of the same name in kebab case
//! (`LEADCACHE_BIND` is `--leadcache-bind`, with short aliases for the common ones); a flag wins
//! over the environment, and `.env` in the working directory is read first when present. An invalid
//! value stops the program with a message naming the variable.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LEAD_DATABASE_PATH` (alias `LEAD_CACHE_DB_PATH`) | `data/leads.db` | SQLite file, created 0600 with its folder |
//! | `LEADCACHE_BIND` | `127.0.0.1:8080` | listen address |
//! | `AIRTABLE_API_KEY` / `AIRTABLE_API_KEY_FILE` | none | token, or a file re-read before every sync run |
//! | `AIRTABLE_BASE_ID`, `AIRTABLE_TABLE` | none, `Leads` | where the leads live; a base id needs a token (`AIRTABLE_API_KEY` or `_FILE`), else the program stops at start naming both (`airtable-sim` excepted: it serves any token then) |
//! | `AIRTABLE_API_URL` | `https://api.airtable.com` | base URL (simulator, proxy) |
//! | `AIRTABLE_FIELD_MAP` | built in | TOML file: local field = "Airtable field" |
//! | `AIRTABLE_MODIFIED_FIELD` | `Last Modified` | last-modified-time field for incremental pulls |
//! | `AIRTABLE_LEAD_ID_FIELD` | `Lead ID` | text field holding leadcache's id (creates upsert on it) |
//! | `AIRTABLE_RATE_LIMIT` | `5` | requests a second per base |
//! | `CACHE_REFRESH_INTERVAL` | `2` | hours before the cache is stale |
//! | `SYNC_PUSH_INTERVAL` | `60` | seconds between outbox pushes |
//! | `CONFLICT_POLICY` | `airtable-wins` | or `last-modified-wins` |
//! | `AIRTABLE_MONTHLY_QUOTA` | none | monthly request cap of the plan |
//! | `LEAD_STATUSES` | `new,scraped,...,lost` | statuses accepted from GraphQL writes, pipeline order |
//! | `LEADCACHE_BACKUP_DIR` | `data/backups` | backup folder (0700) |
//! | `BACKUP_SCHEDULE`, `BACKUP_KEEP` | `0 0 3 * * *`, `14` | daily backup cron (empty: off); how many kept |
//! | `CLEANUP_SCHEDULE` | `0 30 4 * * 0` | weekly cleanup cron (empty: off): prune backups, old sync runs, optimize |
//! | `LEADCACHE_TOKENS_FILE` | none | extra API tokens file |
//! | `RUST_LOG`, `LOG_FORMAT` | `info`, `text` | log filter; `json` for one object a line |
//! | `SLOW_QUERY_MS` | `500` | GraphQL operations slower than this are logged with a warning |
//! | `HTTP_HEADER_TIMEOUT_MS` | `10000` | time to send a request's headers (from its first byte, or from connecting), and the longest pause inside a request body |
//! | `HTTP_IDLE_TIMEOUT_MS` | `60000` | a keep-alive connection with no new request for this long is closed |
//! | `MAX_CONNECTIONS` | `1024` | open connections (WebSockets included); further ones are closed at once |
//! | `WS_INIT_TIMEOUT_MS` | `10000` | a WebSocket must send `connection_init` within this time (else closed 4408) |
//! | `READ_THROUGH_PER_REQUEST` | `5` | Airtable fetches of uncached records one GraphQL operation may cause |
//! | `READ_THROUGH_PER_MINUTE` | `30` | such fetches in any minute, all callers together |

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A setting that failed validation. The message names the variable (and the flag), and the
/// value as it was written (`crate::error::quote`: Unicode kept, controls escaped), or that it is
/// missing when `value` is empty.
#[derive(Debug)]
pub struct ConfigError {
    pub var: &'static str,
    pub flag: String,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ConfigError {
            var,
            flag,
            value,
            reason,
        } = self;
        if value.is_empty() {
            write!(f, "{var} (--{flag}) is not set: {reason}")
        } else {
            let value = crate::error::quote(value);
            write!(f, "invalid {var} (--{flag}) = {value}: {reason}")
        }
    }
}

impl std::error::Error for ConfigError {}

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where the Airtable token comes from.
#[derive(Debug, Clone)]
pub enum ApiKeySource {
    Value(Secret),
    /// Re-read before every sync run, so a rotated token needs no restart.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictPolicy {
    AirtableWins,
    LastModifiedWins,
}

impl ConflictPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::AirtableWins => "airtable-wins",
            ConflictPolicy::LastModifiedWins => "last-modified-wins",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct AirtableConfig {
    pub api_key: Option<ApiKeySource>,
    pub base_id: String,
    pub table: String,
    pub api_url: String,
    pub field_map: Option<PathBuf>,
    pub modified_field: String,
    pub lead_id_field: String,
    pub rate_limit: u32,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_path: PathBuf,
    pub bind: SocketAddr,
    /// `None`: local-only mode.
    pub airtable: Option<AirtableConfig>,
    pub cache_refresh_interval: Duration,
    pub sync_push_interval: Duration,
    pub conflict_policy: ConflictPolicy,
    pub monthly_quota: Option<u64>,
    pub lead_statuses: Vec<String>,
    pub backup_dir: PathBuf,
    /// `None` when set to an empty value: no scheduled backups.
    pub backup_schedule: Option<String>,
    pub backup_keep: usize,
    /// `None` when set to an empty value: no cleanup job.
    pub cleanup_schedule: Option<String>,
    pub tokens_file: Option<PathBuf>,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// GraphQL operations at least this slow are logged with a warning (`SLOW_QUERY_MS`).
    pub slow_query: Duration,
    /// How long a local delete waits in the outbox before it is pushed (`SYNC_DELETE_GRACE`); a
    /// restore inside it cancels the delete and nothing reaches Airtable.
    pub sync_delete_grace: Duration,
    /// How long one GraphQL operation may run (`GRAPHQL_TIMEOUT_MS`).
    pub graphql_timeout: Duration,
    /// Largest response body of one operation, and of the `sql` console's rows
    /// (`MAX_RESPONSE_BYTES`).
    pub max_response_bytes: usize,
    /// The cost one GraphQL operation may have, per role: read, write, admin
    /// (`GRAPHQL_BUDGET_READ`, `GRAPHQL_BUDGET_WRITE`, `GRAPHQL_BUDGET_ADMIN`; `graphql::limits`).
    pub graphql_budgets: [usize; 3],
    /// How long a client may take to send a request's headers, and the longest pause inside a
    /// request body (`HTTP_HEADER_TIMEOUT_MS`).
    pub http_header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request (`HTTP_IDLE_TIMEOUT_MS`).
    pub http_idle_timeout: Duration,
    /// Most connections open at once, WebSockets included (`MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long a WebSocket may take to send `connection_init` (`WS_INIT_TIMEOUT_MS`).
    pub ws_init_timeout: Duration,
    /// `READ_THROUGH_PER_REQUEST` and `READ_THROUGH_PER_MINUTE` (SPEC §5.7).
    pub read_through: crate::sync::read_through::ReadThroughLimits,
}

pub const DEFAULT_STATUSES: &str =
    "new,scraped,enriched,verified,contacted,replied,qualified,won,lost";

/// Every setting's variable name. `serve` flags are these names in kebab case.
pub const VARIABLES: &[&str] = &[
    "LEAD_DATABASE_PATH",
    "LEADCACHE_BIND",
    "AIRTABLE_API_KEY",
    "AIRTABLE_API_KEY_FILE",
    "AIRTABLE_BASE_ID",
    "AIRTABLE_TABLE",
    "AIRTABLE_API_URL",
    "AIRTABLE_FIELD_MAP",
    "AIRTABLE_MODIFIED_FIELD",
    "AIRTABLE_LEAD_ID_FIELD",
    "AIRTABLE_RATE_LIMIT",
    "CACHE_REFRESH_INTERVAL",
    "SYNC_PUSH_INTERVAL",
    "CONFLICT_POLICY",
    "AIRTABLE_MONTHLY_QUOTA",
    "LEAD_STATUSES",
    "LEADCACHE_BACKUP_DIR",
    "BACKUP_SCHEDULE",
    "BACKUP_KEEP",
    "CLEANUP_SCHEDULE",
    "LEADCACHE_TOKENS_FILE",
    "RUST_LOG",
    "LOG_FORMAT",
    "SLOW_QUERY_MS",
    "SYNC_DELETE_GRACE",
    "GRAPHQL_TIMEOUT_MS",
    "MAX_RESPONSE_BYTES",
    "GRAPHQL_BUDGET_READ",
    "GRAPHQL_BUDGET_WRITE",
    "GRAPHQL_BUDGET_ADMIN",
    "HTTP_HEADER_TIMEOUT_MS",
    "HTTP_IDLE_TIMEOUT_MS",
    "MAX_CONNECTIONS",
    "WS_INIT_TIMEOUT_MS",
    "READ_THROUGH_PER_REQUEST",
    "READ_THROUGH_PER_MINUTE",
];

/// The kebab-case flag of a variable: `LEADCACHE_BIND` -> `leadcache-bind`.
pub fn flag_name(var: &str) -> String {
    var.to_ascii_lowercase().replace('_', "-")
}

/// The raw values settings are read from: flags over environment.
#[derive(Debug, Clone, Default)]
pub struct Source {
    flags: HashMap<String, String>,
    env: HashMap<String, String>,
}

impl Source {
    /// The process environment (after `.env`) with the given flag values on top.
    pub fn from_env(flags: HashMap<String, String>) -> Self {
        Source {
            flags,
            env: std::env::vars().collect(),
        }
    }

    /// Settings from explicit pairs only (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Source {
            flags: HashMap::new(),
            env: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The value of `var`: its flag if given, else the variable. `Some("")` means "set, empty".
    fn raw(&self, var: &str) -> Option<&str> {
        self.flags
            .get(var)
            .or_else(|| self.env.get(var))
            .map(String::as_str)
    }

    /// Like `raw`, but an empty value counts as unset.
    fn get(&self, var: &str) -> Option<&str> {
        self.raw(var).map(str::trim).filter(|v| !v.is_empty())
    }
}

fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        flag: flag_name(var),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_or<T: std::str::FromStr>(
    src: &Source,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match src.get(var) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|e: T::Err| invalid(var, v, e.to_string())),
    }
}

/// A duration: a whole number with a unit (`s`, `m`, `h`, `d`; `90s`, `10m`), or bare seconds.
fn duration(src: &Source, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    let Some(v) = src.get(var) else {
        return Ok(default);
    };
    let t = v.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let seconds = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 && !number.is_empty() => {
            Ok(Duration::from_secs(n.saturating_mul(seconds)))
        }
        _ => Err(invalid(
            var,
            v,
            "expected a whole number of seconds, or one with a unit: 30s, 10m, 2h, 1d",
        )),
    }
}

/// A whole number above 0.
fn positive(src: &Source, var: &'static str, default: u64) -> Result<u64, ConfigError> {
    match src.get(var) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid(var, v, "expected a whole number above 0")),
        },
    }
}

/// A duration in whole milliseconds, from 1 ms to a day.
fn positive_ms(src: &Source, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
    const DAY_MS: u64 = 86_400_000;
    let v: u64 = parse_or(src, var, default)?;
    if !(1..=DAY_MS).contains(&v) {
        return Err(invalid(
            var,
            src.get(var).unwrap_or_default(),
            format!("must be from 1 to {DAY_MS} (milliseconds)"),
        ));
    }
    Ok(Duration::from_millis(v))
}

/// A cost budget (`graphql::limits`): a whole number above 0.
fn budget(src: &Source, var: &'static str, default: usize) -> Result<usize, ConfigError> {
    positive(src, var, default as u64).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn positive_f64(src: &Source, var: &'static str, default: f64) -> Result<f64, ConfigError> {
    let v: f64 = parse_or(src, var, default)?;
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(
            var,
            src.get(var).unwrap_or_default(),
            "must be a number above 0",
        ));
    }
    Ok(v)
}

impl Config {
    /// Reads and validates every setting.
    pub fn load(src: &Source) -> Result<Config, ConfigError> {
        Self::load_with(src, true)
    }

    /// [`Config::load`] for `leadcache airtable-sim`: the simulator reads `AIRTABLE_API_KEY`,
    /// `AIRTABLE_BASE_ID` and `AIRTABLE_TABLE` as its own settings (a base without a token is
    /// how it serves one base to any token), so the Airtable client settings are not checked and
    /// `airtable` is `None`.
    pub fn load_for_simulator(src: &Source) -> Result<Config, ConfigError> {
        Self::load_with(src, false)
    }

    fn load_with(src: &Source, airtable: bool) -> Result<Config, ConfigError> {
        let database_path = src
            .get("LEAD_DATABASE_PATH")
            .or_else(|| src.get("LEAD_CACHE_DB_PATH"))
            .unwrap_or("data/leads.db");
        let bind: SocketAddr = match src.get("LEADCACHE_BIND") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => v.parse().map_err(|_| {
                invalid(
                    "LEADCACHE_BIND",
                    v,
                    "expected an address and port such as 127.0.0.1:8080",
                )
            })?,
        };

        let conflict_policy = match src.get("CONFLICT_POLICY").unwrap_or("airtable-wins") {
            "airtable-wins" => ConflictPolicy::AirtableWins,
            "last-modified-wins" => ConflictPolicy::LastModifiedWins,
            other => {
                return Err(invalid(
                    "CONFLICT_POLICY",
                    other,
                    "expected airtable-wins or last-modified-wins",
                ));
            }
        };

        let statuses_raw = src.get("LEAD_STATUSES").unwrap_or(DEFAULT_STATUSES);
        let mut lead_statuses: Vec<String> = Vec::new();
        for s in statuses_raw.split(',').map(str::trim) {
            if s.is_empty() {
                return Err(invalid(
                    "LEAD_STATUSES",
                    statuses_raw,
                    "contains an empty status",
                ));
            }
            if lead_statuses.iter().any(|x| x == s) {
                return Err(invalid(
                    "LEAD_STATUSES",
                    statuses_raw,
                    format!("{s} is listed twice"),
                ));
            }
            lead_statuses.push(s.to_string());
        }

        let monthly_quota = match src.get("AIRTABLE_MONTHLY_QUOTA") {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(invalid(
                        "AIRTABLE_MONTHLY_QUOTA",
                        v,
                        "expected a whole number above 0",
                    ));
                }
            },
        };

        let backup_keep: usize = parse_or(src, "BACKUP_KEEP", 14)?;
        if backup_keep == 0 {
            return Err(invalid("BACKUP_KEEP", "0", "must keep at least one backup"));
        }
        let backup_schedule = schedule(src, "BACKUP_SCHEDULE", "0 0 3 * * *")?;
        let cleanup_schedule = schedule(src, "CLEANUP_SCHEDULE", "0 30 4 * * 0")?;

        let log_format = match src.get("LOG_FORMAT").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(invalid("LOG_FORMAT", other, "expected text or json")),
        };

        Ok(Config {
            database_path: PathBuf::from(database_path),
            bind,
            airtable: if airtable {
                Self::load_airtable(src)?
            } else {
                None
            },
            cache_refresh_interval: Duration::from_secs_f64(
                positive_f64(src, "CACHE_REFRESH_INTERVAL", 2.0)? * 3600.0,
            ),
            sync_push_interval: Duration::from_secs_f64(positive_f64(
                src,
                "SYNC_PUSH_INTERVAL",
                60.0,
            )?),
            conflict_policy,
            monthly_quota,
            lead_statuses,
            backup_dir: PathBuf::from(src.get("LEADCACHE_BACKUP_DIR").unwrap_or("data/backups")),
            backup_schedule,
            backup_keep,
            cleanup_schedule,
            tokens_file: src.get("LEADCACHE_TOKENS_FILE").map(PathBuf::from),
            log_filter: src.get("RUST_LOG").unwrap_or("info").to_string(),
            log_format,
            slow_query: Duration::from_millis(parse_or(src, "SLOW_QUERY_MS", 500u64)?),
            sync_delete_grace: duration(src, "SYNC_DELETE_GRACE", Duration::from_secs(600))?,
            graphql_timeout: positive_ms(src, "GRAPHQL_TIMEOUT_MS", 10_000)?,
            max_response_bytes: usize::try_from(positive(
                src,
                "MAX_RESPONSE_BYTES",
                16 * 1024 * 1024,
            )?)
            .unwrap_or(usize::MAX),
            graphql_budgets: [
                budget(
                    src,
                    "GRAPHQL_BUDGET_READ",
                    crate::graphql::limits::BUDGET_READ,
                )?,
                budget(
                    src,
                    "GRAPHQL_BUDGET_WRITE",
                    crate::graphql::limits::BUDGET_WRITE,
                )?,
                budget(
                    src,
                    "GRAPHQL_BUDGET_ADMIN",
                    crate::graphql::limits::BUDGET_ADMIN,
                )?,
            ],
            http_header_timeout: positive_ms(src, "HTTP_HEADER_TIMEOUT_MS", 10_000)?,
            http_idle_timeout: positive_ms(src, "HTTP_IDLE_TIMEOUT_MS", 60_000)?,
            max_connections: match parse_or::<usize>(src, "MAX_CONNECTIONS", 1024)? {
                0 => {
                    return Err(invalid(
                        "MAX_CONNECTIONS",
                        "0",
                        "must allow at least 1 connection",
                    ));
                }
                n => n,
            },
            ws_init_timeout: positive_ms(src, "WS_INIT_TIMEOUT_MS", 10_000)?,
            read_through: crate::sync::read_through::ReadThroughLimits {
                per_operation: parse_or(src, "READ_THROUGH_PER_REQUEST", 5usize)?,
                per_minute: parse_or(src, "READ_THROUGH_PER_MINUTE", 30usize)?,
            },
        })
    }

    fn load_airtable(src: &Source) -> Result<Option<AirtableConfig>, ConfigError> {
        let key = src.get("AIRTABLE_API_KEY");
        let key_file = src.get("AIRTABLE_API_KEY_FILE");
        let Some(base_id) = src.get("AIRTABLE_BASE_ID") else {
            if key.is_some() || key_file.is_some() {
                return Err(invalid(
                    "AIRTABLE_BASE_ID",
                    "",
                    "an Airtable token is set but no base: set AIRTABLE_BASE_ID (app...) or unset the token",
                ));
            }
            return Ok(None);
        };
        if !base_id.starts_with("app") || base_id.len() < 4 {
            return Err(invalid(
                "AIRTABLE_BASE_ID",
                base_id,
                "an Airtable base id starts with \"app\"",
            ));
        }
        let api_key = match (key, key_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "AIRTABLE_API_KEY_FILE",
                    key_file.unwrap_or_default(),
                    "set AIRTABLE_API_KEY or AIRTABLE_API_KEY_FILE, not both",
                ));
            }
            (Some(k), None) => Some(ApiKeySource::Value(Secret::new(k))),
            (None, Some(f)) => Some(ApiKeySource::File(PathBuf::from(f))),
            // Without a token every sync run would fail with 401 long after the start.
            (None, None) => {
                return Err(invalid(
                    "AIRTABLE_API_KEY",
                    "",
                    format!(
                        "AIRTABLE_BASE_ID is set ({base_id}) but neither AIRTABLE_API_KEY nor \
                         AIRTABLE_API_KEY_FILE is: set one of them to an Airtable personal access \
                         token, or unset AIRTABLE_BASE_ID for local-only mode"
                    ),
                ));
            }
        };
        let api_url = src
            .get("AIRTABLE_API_URL")
            .unwrap_or("https://api.airtable.com");
        match url::Url::parse(api_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(invalid(
                    "AIRTABLE_API_URL",
                    api_url,
                    "expected an http(s) URL",
                ));
            }
        }
        let rate_limit: u32 = parse_or(src, "AIRTABLE_RATE_LIMIT", 5)?;
        if rate_limit == 0 {
            return Err(invalid(
                "AIRTABLE_RATE_LIMIT",
                "0",
                "must allow at least 1 request a second",
            ));
        }
        let field_map = src.get("AIRTABLE_FIELD_MAP").map(PathBuf::from);
        if let Some(path) = &field_map
            && !path.is_file()
        {
            return Err(invalid(
                "AIRTABLE_FIELD_MAP",
                &path.to_string_lossy(),
                "no such file",
            ));
        }
        Ok(Some(AirtableConfig {
            api_key,
            base_id: base_id.to_string(),
            table: src.get("AIRTABLE_TABLE").unwrap_or("Leads").to_string(),
            api_url: api_url.trim_end_matches('/').to_string(),
            field_map,
            modified_field: src
                .get("AIRTABLE_MODIFIED_FIELD")
                .unwrap_or("Last Modified")
                .to_string(),
            lead_id_field: src
                .get("AIRTABLE_LEAD_ID_FIELD")
                .unwrap_or("Lead ID")
                .to_string(),
            rate_limit,
        }))
    }

    /// A configuration for tests and tools: defaults, the given database, local-only.
    pub fn for_database(path: impl Into<PathBuf>) -> Config {
        let mut config = Config::load(&Source::default())
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"));
        config.database_path = path.into();
        config
    }

    pub fn is_loopback(&self) -> bool {
        self.bind.ip().is_loopback()
    }
}

/// A cron setting: the default when unset, `None` (job off) when set to an empty value.
fn schedule(src: &Source, var: &'static str, default: &str) -> Result<Option<String>, ConfigError> {
    match src.raw(var) {
        None => Ok(Some(default.to_string())),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => {
            validate_cron(var, v.trim())?;
            Ok(Some(v.trim().to_string()))
        }
    }
}

/// Checks a 6-field cron expression (seconds first) by letting the scheduler parse it, so a
/// schedule accepted here is one the scheduler runs.
fn validate_cron(var: &'static str, v: &str) -> Result<(), ConfigError> {
    let fields = v.split_whitespace().count();
    let parsed = tokio_cron_scheduler::Job::new_async(v, |_, _| Box::pin(async {}));
    if !(6..=7).contains(&fields) || parsed.is_err() {
        return Err(invalid(
            var,
            v,
            "expected a cron expression with 6 fields, seconds first, e.g. \"0 0 3 * * *\"",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_local_only_on_loopback() {
        let c = Config::load(&Source::default()).unwrap();
        assert!(c.airtable.is_none());
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_path, PathBuf::from("data/leads.db"));
        assert_eq!(c.lead_statuses.len(), 9);
        assert_eq!(c.cache_refresh_interval, Duration::from_secs(7200));
        assert_eq!(c.backup_schedule.as_deref(), Some("0 0 3 * * *"));
        assert_eq!(c.slow_query, Duration::from_millis(500));
        assert_eq!(c.http_header_timeout, Duration::from_secs(10));
        assert_eq!(c.http_idle_timeout, Duration::from_secs(60));
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.ws_init_timeout, Duration::from_secs(10));
        assert_eq!(c.read_through.per_operation, 5);
        assert_eq!(c.read_through.per_minute, 30);
    }

    #[test]
    fn connection_limits_are_read_in_milliseconds() {
        let c = Config::load(&Source::from_pairs([
            ("HTTP_HEADER_TIMEOUT_MS", "250"),
            ("HTTP_IDLE_TIMEOUT_MS", "1500"),
            ("MAX_CONNECTIONS", "8"),
            ("WS_INIT_TIMEOUT_MS", "300"),
        ]))
        .unwrap();
        assert_eq!(c.http_header_timeout, Duration::from_millis(250));
        assert_eq!(c.http_idle_timeout, Duration::from_millis(1500));
        assert_eq!(c.max_connections, 8);
        assert_eq!(c.ws_init_timeout, Duration::from_millis(300));
    }

    #[test]
    fn slow_query_ms_is_read_in_milliseconds() {
        let c = Config::load(&Source::from_pairs([("SLOW_QUERY_MS", "1200")])).unwrap();
        assert_eq!(c.slow_query, Duration::from_millis(1200));
        let c = Config::load(&Source::from_pairs([("SLOW_QUERY_MS", "0")])).unwrap();
        assert_eq!(c.slow_query, Duration::ZERO, "0 logs every operation");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            ("LEADCACHE_BIND", "nowhere"),
            ("CONFLICT_POLICY", "local-wins"),
            ("CACHE_REFRESH_INTERVAL", "-1"),
            ("SYNC_PUSH_INTERVAL", "soon"),
            ("BACKUP_KEEP", "0"),
            ("BACKUP_SCHEDULE", "daily"),
            ("BACKUP_SCHEDULE", "0 0 25 * * *"),
            ("CLEANUP_SCHEDULE", "0 30 4 * *"),
            ("CLEANUP_SCHEDULE", "every sunday"),
            ("LOG_FORMAT", "xml"),
            ("SYNC_DELETE_GRACE", "soon"),
            ("SYNC_DELETE_GRACE", "10 parsecs"),
            ("SYNC_DELETE_GRACE", "-5m"),
            ("GRAPHQL_TIMEOUT_MS", "0"),
            ("MAX_RESPONSE_BYTES", "lots"),
            ("LEAD_STATUSES", "new,,won"),
            ("AIRTABLE_MONTHLY_QUOTA", "lots"),
            ("SLOW_QUERY_MS", "-5"),
            ("READ_THROUGH_PER_REQUEST", "-1"),
            ("READ_THROUGH_PER_MINUTE", "many"),
            ("SLOW_QUERY_MS", "fast"),
            ("HTTP_HEADER_TIMEOUT_MS", "0"),
            ("HTTP_IDLE_TIMEOUT_MS", "soon"),
            ("HTTP_IDLE_TIMEOUT_MS", "18446744073709551615"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "-1"),
            ("WS_INIT_TIMEOUT_MS", "0"),
        ];
        for (var, value) in cases {
            let err = Config::load(&Source::from_pairs([(var, value)])).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn schedules_default_and_an_empty_value_disables_them() {
        let c = Config::load(&Source::default()).unwrap();
        assert_eq!(c.cleanup_schedule.as_deref(), Some("0 30 4 * * 0"));
        let c = Config::load(&Source::from_pairs([
            ("CLEANUP_SCHEDULE", ""),
            ("BACKUP_SCHEDULE", " "),
        ]))
        .unwrap();
        assert_eq!(c.cleanup_schedule, None);
        assert_eq!(c.backup_schedule, None);
        let c = Config::load(&Source::from_pairs([(
            "CLEANUP_SCHEDULE",
            " */5 * * * * * ",
        )]))
        .unwrap();
        assert_eq!(c.cleanup_schedule.as_deref(), Some("*/5 * * * * *"));
    }

    #[test]
    fn the_alias_and_flags_are_honoured() {
        let c = Config::load(&Source::from_pairs([("LEAD_CACHE_DB_PATH", "/tmp/x.db")])).unwrap();
        assert_eq!(c.database_path, PathBuf::from("/tmp/x.db"));
        let mut src = Source::from_pairs([("LEADCACHE_BIND", "127.0.0.1:1")]);
        src.flags
            .insert("LEADCACHE_BIND".into(), "127.0.0.1:2".into());
        assert_eq!(Config::load(&src).unwrap().bind.port(), 2);
    }

    #[test]
    fn airtable_settings_must_be_complete() {
        let err = Config::load(&Source::from_pairs([("AIRTABLE_API_KEY", "pat123")])).unwrap_err();
        assert_eq!(err.var, "AIRTABLE_BASE_ID");
        assert!(
            !err.to_string().contains("pat123"),
            "the token must not be printed"
        );
        let c = Config::load(&Source::from_pairs([
            ("AIRTABLE_BASE_ID", "appXYZ"),
            ("AIRTABLE_API_KEY", "pat1"),
        ]))
        .unwrap();
        let at = c.airtable.unwrap();
        assert_eq!(at.table, "Leads");
        assert_eq!(at.rate_limit, 5);
        assert!(!format!("{:?}", at.api_key).contains("pat1"));
        let err = Config::load(&Source::from_pairs([("AIRTABLE_BASE_ID", "appXYZ")])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("AIRTABLE_API_KEY ") && msg.contains("AIRTABLE_API_KEY_FILE"),
            "{msg}"
        );
        let sim = Config::load_for_simulator(&Source::from_pairs([("AIRTABLE_BASE_ID", "appXYZ")]))
            .unwrap();
        assert!(sim.airtable.is_none());
    }
}
