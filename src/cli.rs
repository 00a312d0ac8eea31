//! The command line (SPEC §9). Every setting of `config` is also a flag here (kebab case of the
//! variable name, e.g. `--leadcache-bind`), accepted by every subcommand; flags win over the
//! environment and `.env`.

use std::collections::HashMap;
use std::io::Write as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::auth::Role;
use crate::config::{Config, Source};
use crate::error::quote;

macro_rules! setting_flags {
    ($($field:ident $(| $alias:literal)? => $var:literal),* $(,)?) => {
        /// Settings as flags (see `config` for their meaning and defaults).
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct SettingFlags {
            $(
                #[arg(long, global = true, value_name = "VALUE", help_heading = "Settings",
                      help = concat!("Overrides ", $var) $(, visible_alias = $alias)?)]
                pub $field: Option<String>,
            )*
        }

        impl SettingFlags {
            pub fn overrides(&self) -> HashMap<String, String> {
                let mut m = HashMap::new();
                $( if let Some(v) = &self.$field { m.insert($var.to_string(), v.clone()); } )*
                m
            }
        }
    };
}

setting_flags! {
    lead_database_path | "database" => "LEAD_DATABASE_PATH",
    leadcache_bind | "bind" => "LEADCACHE_BIND",
    airtable_api_key => "AIRTABLE_API_KEY",
    airtable_api_key_file => "AIRTABLE_API_KEY_FILE",
    airtable_base_id => "AIRTABLE_BASE_ID",
    airtable_table => "AIRTABLE_TABLE",
    airtable_api_url => "AIRTABLE_API_URL",
    airtable_field_map => "AIRTABLE_FIELD_MAP",
    airtable_modified_field => "AIRTABLE_MODIFIED_FIELD",
    airtable_lead_id_field => "AIRTABLE_LEAD_ID_FIELD",
    airtable_rate_limit => "AIRTABLE_RATE_LIMIT",
    cache_refresh_interval => "CACHE_REFRESH_INTERVAL",
    sync_push_interval => "SYNC_PUSH_INTERVAL",
    conflict_policy => "CONFLICT_POLICY",
    airtable_monthly_quota => "AIRTABLE_MONTHLY_QUOTA",
    lead_statuses => "LEAD_STATUSES",
    leadcache_backup_dir => "LEADCACHE_BACKUP_DIR",
    backup_schedule => "BACKUP_SCHEDULE",
    backup_keep => "BACKUP_KEEP",
    cleanup_schedule => "CLEANUP_SCHEDULE",
    leadcache_tokens_file => "LEADCACHE_TOKENS_FILE",
    rust_log => "RUST_LOG",
    log_format => "LOG_FORMAT",
    slow_query_ms => "SLOW_QUERY_MS",
    sync_delete_grace => "SYNC_DELETE_GRACE",
    graphql_timeout_ms => "GRAPHQL_TIMEOUT_MS",
    max_response_bytes => "MAX_RESPONSE_BYTES",
    graphql_budget_read => "GRAPHQL_BUDGET_READ",
    graphql_budget_write => "GRAPHQL_BUDGET_WRITE",
    graphql_budget_admin => "GRAPHQL_BUDGET_ADMIN",
    http_header_timeout_ms => "HTTP_HEADER_TIMEOUT_MS",
    http_idle_timeout_ms => "HTTP_IDLE_TIMEOUT_MS",
    max_connections => "MAX_CONNECTIONS",
    ws_init_timeout_ms => "WS_INIT_TIMEOUT_MS",
    read_through_per_request => "READ_THROUGH_PER_REQUEST",
    read_through_per_minute => "READ_THROUGH_PER_MINUTE",
}

#[derive(Debug, Parser)]
#[command(
    name = "leadcache",
    version,
    about = "A local, offline-proof GraphQL cache of an Airtable lead table"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub settings: SettingFlags,
}

/// (Parsed once per run: the size of the `export` variant's filter flags does not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL, the admin page, metrics and health checks.
    Serve {
        /// Demo: sample leads in a built-in Airtable simulator, synced into a database of its own in a
        /// temp folder (never the configured one), removed at exit.
        #[arg(long)]
        demo: bool,
    },
    /// Add N realistic sample leads (deterministic for a given --seed).
    Seed {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Delete every lead and all history (a backup is kept first).
    Reset {
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Run one read-only SQL statement and print the rows as JSON lines.
    Sql {
        /// The statement.
        query: String,
        /// Most rows printed.
        #[arg(long, default_value_t = crate::sqlconsole::MAX_ROWS)]
        max_rows: usize,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Take a checked backup of the database now (safe while the server runs).
    Backup,
    /// List backups: the files in the backup folder and the recorded attempts.
    Backups,
    /// Restore a backup over the database (the current one is backed up first).
    Restore {
        /// The backup file (e.g. data/backups/leads-20261124T030000Z.db).
        file: std::path::PathBuf,
        /// Restore even though a server seems to hold the database.
        #[arg(long)]
        force: bool,
    },
    /// Check the database: integrity, foreign keys, full-text index, stored pipeline stays,
    /// outbox and history sanity.
    Check {
        /// First rebuild what is derived from the leads and their history (the full-text index
        /// and the stored pipeline stays). Safe while the server runs; nothing else is changed.
        #[arg(long)]
        repair: bool,
    },
    /// Run pending migrations (after a backup), or list them with --status.
    Migrate {
        /// Only list applied and pending migrations.
        #[arg(long)]
        status: bool,
    },
    /// Export leads as CSV or as a portable JSON dump (streamed).
    Export {
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of standard output (created with mode 0600).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
        /// Start the CSV with a UTF-8 byte order mark, so Excel reads it as UTF-8.
        #[arg(long)]
        bom: bool,
        #[command(flatten)]
        filter: ExportFilter,
    },
    /// Import legacy JSON lead files (arrays of lead objects; a folder means its *.json files):
    /// validation, duplicate merging, one transaction per file, import_log.
    Import {
        /// Files or folders.
        #[arg(required = true, value_name = "FILE_OR_FOLDER")]
        paths: Vec<std::path::PathBuf>,
        /// Show what would be imported, merged and rejected; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// What to do with a record that duplicates a live lead: merge (fill its empty fields),
        /// create (a lead of its own anyway) or fail (skip the record, naming the lead).
        #[arg(long, value_name = "merge|create|fail", default_value = "merge")]
        on_duplicate: String,
    },
    /// Sync with Airtable now: pull (changes), full (everything), push, sweep (deletions), status.
    Sync {
        #[arg(value_enum, default_value_t = SyncWhat::Status)]
        what: SyncWhat,
    },
    /// Run the Airtable simulator alone.
    AirtableSim(crate::airtable::sim::SimArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SyncWhat {
    Pull,
    Full,
    Push,
    Sweep,
    Status,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once.
    Create {
        #[arg(long)]
        name: String,
        /// read, write or admin.
        #[arg(long)]
        role: String,
    },
    /// List tokens (names, roles, prefixes; never the secrets).
    List,
    /// Revoke a token by name.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

/// Reads `.env`, the settings and runs the command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => anyhow::bail!("cannot read .env: {e}"),
    }
    let source = Source::from_env(cli.settings.overrides());
    let config = match cli.command {
        // The simulator reads the Airtable settings as its own (`Config::load_for_simulator`).
        Command::AirtableSim(_) => Config::load_for_simulator(&source)?,
        _ => Config::load(&source)?,
    };
    crate::app::init_logging(&config);
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve { demo } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(crate::app::serve(config, demo))
        }
        Command::Schema => {
            print!("{}", crate::graphql::sdl());
            Ok(())
        }
        Command::Seed { count, seed } => {
            let db = crate::app::open_database(&config)?;
            let mut conn = db.conn()?;
            let started = std::time::Instant::now();
            let sync = config.airtable.is_some();
            let n = crate::seed::seed(&mut conn, count, seed, sync)?;
            println!(
                "seeded {n} leads in {:.2} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Reset { yes } => {
            if !yes {
                anyhow::bail!(
                    "reset deletes every lead and all history; run `leadcache reset --yes` to confirm"
                );
            }
            // Taken before the database is opened: a running server would go on serving (and
            // syncing) what it has cached in memory while its database is emptied under it.
            let _lock = crate::backup::lock::acquire(&config.database_path).map_err(|e| {
                anyhow::anyhow!(
                    "{e}; stop the server before resetting its database; nothing was deleted"
                )
            })?;
            let db = crate::app::open_database(&config)?;
            let (taken, _) = crate::backup::take(
                &db,
                &config.backup_dir,
                crate::backup::Reason::PreReset,
                config.backup_keep,
            )
            .context("cannot back up before resetting; nothing was deleted")?;
            let mut conn = db.conn()?;
            crate::maintenance::reset(&mut conn)?;
            println!(
                "all leads and history deleted (backup kept: {})",
                taken.path.display()
            );
            Ok(())
        }
        Command::Sql { query, max_rows } => {
            crate::app::open_database(&config)?;
            let caps = crate::sqlconsole::Caps {
                rows: max_rows,
                bytes: config.max_response_bytes,
                ..Default::default()
            };
            let result = crate::sqlconsole::run(&config.database_path, &query, caps)
                .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string(&result.columns)?)?;
            for row in &result.rows {
                writeln!(out, "{}", serde_json::to_string(row)?)?;
            }
            if result.truncated {
                eprintln!("(stopped after {max_rows} rows)");
            }
            Ok(())
        }
        Command::Token(cmd) => token(&config, cmd),
        Command::Backup => crate::backup::cli::backup(&config),
        Command::Backups => crate::backup::cli::backups(&config),
        Command::Restore { file, force } => crate::backup::cli::restore(&config, &file, force),
        Command::Check { repair } => crate::backup::cli::check(&config, repair),
        Command::Migrate { status } => crate::backup::cli::migrate(&config, status),
        Command::Export {
            format,
            output,
            bom,
            filter,
        } => {
            crate::transfer::cli::export(&config, &format, output.as_deref(), bom, &filter.pairs())
        }
        Command::Sync { what } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(sync(config, what))
        }
        Command::AirtableSim(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(crate::airtable::sim::run_cli(args))
        }
        Command::Import {
            paths,
            dry_run,
            on_duplicate,
        } => {
            let on_duplicate = crate::leads::merge::OnDuplicate::parse(&on_duplicate)
                .with_context(|| {
                    format!("--on-duplicate must be merge, create or fail, not {on_duplicate:?}")
                })?;
            let options = crate::transfer::legacy::Options {
                dry_run,
                on_duplicate,
            };
            import(&config, &paths, options)
        }
    }
}

fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<()> {
    let db = crate::app::open_database(config)?;
    let mut conn = db.conn()?;
    match cmd {
        TokenCommand::Create { name, role } => {
            let role = Role::parse(&role).context("--role must be read, write or admin")?;
            let (secret, row) = crate::tokens::create(&mut conn, &name, role)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{secret}");
            eprintln!(
                "token {} ({}) created; it is shown only this once",
                quote(&row.name),
                row.role
            );
        }
        TokenCommand::List => {
            for t in crate::tokens::list(&mut conn)? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "live"
                };
                let used = t.last_used_at.map_or_else(
                    || "never used".to_string(),
                    |at| format!("used {}", crate::time::format(at)),
                );
                println!(
                    "{}\t{}\t{}…\t{}\t{}\t{}",
                    t.name,
                    t.role,
                    t.prefix,
                    crate::time::format(t.created_at),
                    state,
                    used
                );
            }
        }
        TokenCommand::Revoke { name } => {
            if !crate::tokens::revoke(&mut conn, &name)? {
                anyhow::bail!("no live token named {}", quote(&name));
            }
            println!("token {} revoked", quote(&name));
        }
    }
    Ok(())
}

async fn sync(config: Config, what: SyncWhat) -> anyhow::Result<()> {
    use crate::sync::runs::RunKind;
    let db = crate::app::open_database(&config)?;
    let mode = crate::state::Mode::Airtable;
    let state =
        crate::state::AppState::with_sync(config, db, mode, crate::sync::SyncOptions::default())?;
    let engine = state.engine().map_err(|e| anyhow::anyhow!("{e}"))?.clone();
    let kind = match what {
        SyncWhat::Pull => RunKind::IncrementalPull,
        SyncWhat::Full => RunKind::FullPull,
        SyncWhat::Push => RunKind::Push,
        SyncWhat::Sweep => RunKind::Sweep,
        SyncWhat::Status => {
            let status = crate::status::cache_status(&state).await?;
            println!("mode: {}", status.mode);
            println!("leads: {}", status.total_leads);
            println!(
                "fresh: {} (age {} s)",
                status.fresh,
                status.age_seconds.map_or("-".into(), |a| a.to_string())
            );
            println!(
                "pending changes: {}, failed: {}, dead: {}",
                status.pending_changes, status.failed_changes, status.dead_changes
            );
            println!("open conflicts: {}", status.open_conflicts);
            println!(
                "Airtable requests today: {}, this month: {}",
                status.requests_today, status.requests_this_month
            );
            return Ok(());
        }
    };
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("{} ...", kind.as_str()));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut progress = state.bus.sync_runs();
    let watcher = {
        let bar = bar.clone();
        tokio::spawn(async move {
            while let Ok(run) = progress.recv().await {
                bar.set_message(format!(
                    "{}: {} fetched, {} created, {} updated, {} pushed",
                    run.phase.as_deref().unwrap_or(""),
                    run.fetched,
                    run.created,
                    run.updated,
                    run.pushed
                ));
            }
        })
    };
    let run = engine.run(kind, "manual").await?;
    watcher.abort();
    bar.finish_and_clear();
    println!(
        "{} {}: fetched {}, created {}, updated {}, deleted {}, pushed {}, failed {}, conflicts {}, {} requests",
        run.kind,
        run.outcome,
        run.fetched,
        run.created,
        run.updated,
        run.deleted,
        run.pushed,
        run.failed,
        run.conflicts,
        run.requests
    );
    if let Some(e) = run.error {
        anyhow::bail!("sync failed: {e}");
    }
    Ok(())
}

/// `leadcache import`: leadcache dumps (recognised by their `format` key) are restored as they
/// are; anything else is read as legacy JSON lead files, with duplicate merging.
fn import(
    config: &Config,
    paths: &[std::path::PathBuf],
    options: crate::transfer::legacy::Options,
) -> anyhow::Result<()> {
    let (dumps, legacy): (Vec<_>, Vec<_>) = paths.iter().cloned().partition(|p| is_dump(p));
    for dump in &dumps {
        if options.dry_run {
            anyhow::bail!(
                "--dry-run is for legacy lead files; {} is a leadcache dump",
                dump.display()
            );
        }
        crate::transfer::cli::import(config, dump)?;
    }
    if !legacy.is_empty() {
        crate::transfer::legacy::run_cli(config, &legacy, options)?;
    }
    Ok(())
}

/// Whether a file starts like a leadcache dump (`{"format":"leadcache-dump", ...`).
fn is_dump(path: &std::path::Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&head[..n]);
    text.trim_start().starts_with('{') && text.contains("leadcache-dump")
}
/// The `leads` filters as flags (same meaning as GraphQL `LeadFilter`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExportFilter {
    /// Only this status (repeat for several).
    #[arg(long)]
    pub status: Vec<String>,
    #[arg(long)]
    pub company: Option<String>,
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long)]
    pub industry: Option<String>,
    #[arg(long)]
    pub location: Option<String>,
    #[arg(long)]
    pub enriched: Option<String>,
    #[arg(long)]
    pub verified: Option<String>,
    #[arg(long)]
    pub needs_enrichment: Option<String>,
    /// SYNCED, PENDING, CONFLICT, ERROR or LOCAL (repeat for several).
    #[arg(long)]
    pub sync_state: Vec<String>,
    #[arg(long)]
    pub score_min: Option<String>,
    #[arg(long)]
    pub score_max: Option<String>,
    #[arg(long)]
    pub created_after: Option<String>,
    #[arg(long)]
    pub created_before: Option<String>,
    #[arg(long)]
    pub updated_after: Option<String>,
    #[arg(long)]
    pub updated_before: Option<String>,
    #[arg(long)]
    pub campaign_id: Option<String>,
    /// Include soft-deleted leads.
    #[arg(long)]
    pub include_deleted: bool,
    /// Full-text search.
    #[arg(long)]
    pub search: Option<String>,
}

impl ExportFilter {
    /// The flags as the name/value pairs of `transfer::filter` (GraphQL names; the flags are
    /// those names in kebab case, and `transfer::cli::export` names the flag in its errors).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        out.extend(self.status.iter().map(|s| ("status", s.clone())));
        out.extend(self.sync_state.iter().map(|s| ("syncState", s.clone())));
        let single = [
            ("company", &self.company),
            ("source", &self.source),
            ("industry", &self.industry),
            ("location", &self.location),
            ("enriched", &self.enriched),
            ("verified", &self.verified),
            ("needsEnrichment", &self.needs_enrichment),
            ("scoreMin", &self.score_min),
            ("scoreMax", &self.score_max),
            ("createdAfter", &self.created_after),
            ("createdBefore", &self.created_before),
            ("updatedAfter", &self.updated_after),
            ("updatedBefore", &self.updated_before),
            ("campaignId", &self.campaign_id),
            ("search", &self.search),
        ];
        out.extend(
            single
                .into_iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k, v))),
        );
        if self.include_deleted {
            out.push(("includeDeleted", "true".into()));
        }
        out
    }
}
