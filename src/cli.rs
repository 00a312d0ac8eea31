//! The command line (SPEC §9). Every setting of `config` is also a flag here (kebab case of the
//! variable name, e.g. `--leadcache-bind`), accepted by every subcommand; flags win over the
//! environment and `.env`.

use std::collections::HashMap;
use std::io::Write as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::auth::Role;
use crate::config::{Config, Source};

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
}

#[derive(Debug, Parser)]
#[command(name = "leadcache", version, about = "A local, offline-proof GraphQL cache of an Airtable lead table")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub settings: SettingFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL, the admin page, metrics and health checks.
    Serve {
        /// Demo: a demo database (data/demo.db) with sample leads, syncing with a built-in Airtable simulator.
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
    let config = Config::load(&Source::from_env(cli.settings.overrides()))?;
    crate::app::init_logging(&config);
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve { demo } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
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
            println!("seeded {n} leads in {:.2} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Reset { yes } => {
            if !yes {
                anyhow::bail!("reset deletes every lead and all history; run `leadcache reset --yes` to confirm");
            }
            let db = crate::app::open_database(&config)?;
            let mut conn = db.conn()?;
            crate::maintenance::reset(&mut conn)?;
            println!("all leads and history deleted");
            Ok(())
        }
        Command::Sql { query, max_rows } => {
            crate::app::open_database(&config)?;
            let result = crate::sqlconsole::run(&config.database_path, &query, max_rows, crate::sqlconsole::TIME_LIMIT)
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
    }
}

fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<()> {
    let db = crate::app::open_database(config)?;
    let mut conn = db.conn()?;
    match cmd {
        TokenCommand::Create { name, role } => {
            let role = Role::parse(&role).context("--role must be read, write or admin")?;
            let (secret, row) = crate::tokens::create(&mut conn, &name, role).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{secret}");
            eprintln!("token {:?} ({}) created; it is shown only this once", row.name, row.role);
        }
        TokenCommand::List => {
            for t in crate::tokens::list(&mut conn)? {
                let state = if t.revoked_at.is_some() { "revoked" } else { "live" };
                println!("{}\t{}\t{}…\t{}\t{}", t.name, t.role, t.prefix, crate::time::format(t.created_at), state);
            }
        }
        TokenCommand::Revoke { name } => {
            if !crate::tokens::revoke(&mut conn, &name)? {
                anyhow::bail!("no live token named {name:?}");
            }
            println!("token {name:?} revoked");
        }
    }
    Ok(())
}
