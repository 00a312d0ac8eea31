//! The backup commands: `backup`, `backups`, `restore`, `check`, `migrate`.

use std::path::Path;

use anyhow::Context as _;

use super::{Reason, check, restore as restore_mod};
use crate::config::Config;
use crate::db::Db;

/// `leadcache backup`.
pub fn backup(config: &Config) -> anyhow::Result<()> {
    let db = crate::app::open_database(config)?;
    let (taken, _) = super::take(&db, &config.backup_dir, Reason::Manual, config.backup_keep)?;
    println!(
        "{}\t{} leads\t{} bytes\t{} ms",
        taken.path.display(),
        taken.lead_count,
        taken.size_bytes,
        taken.duration.as_millis()
    );
    Ok(())
}

/// `leadcache backups`: the files (newest first) and the recorded attempts.
pub fn backups(config: &Config) -> anyhow::Result<()> {
    let files = super::files(&config.backup_dir);
    if files.is_empty() {
        println!("no backups in {}", config.backup_dir.display());
    }
    for f in &files {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        println!("{}\t{size} bytes", f.display());
    }
    if config.database_path.is_file() {
        let db = Db::open(&config.database_path)?;
        let mut conn = db.conn()?;
        if let Ok(rows) = super::list(&mut conn, 50) {
            println!("\nrecorded (newest first):");
            for r in rows {
                println!(
                    "{}\t{}\t{}\t{}\t{} leads\t{}",
                    crate::time::format(r.created_at),
                    r.reason,
                    r.outcome,
                    if r.file.is_empty() { "-" } else { &r.file },
                    r.lead_count,
                    r.error.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// `leadcache restore FILE [--force]`.
pub fn restore(config: &Config, file: &Path, force: bool) -> anyhow::Result<()> {
    let done = restore_mod::restore(config, file, force)?;
    if let Some(previous) = &done.previous {
        println!("the replaced database was kept as {}", previous.display());
    }
    println!(
        "restored {} ({} leads) into {}. The next incremental pull re-reads everything changed in Airtable since the backup.",
        file.display(),
        done.lead_count,
        config.database_path.display()
    );
    Ok(())
}

/// `leadcache check`: prints the report; fails when anything is wrong.
pub fn check(config: &Config, repair: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.database_path.is_file(),
        "no database at {}",
        config.database_path.display()
    );
    if repair {
        let db = crate::app::open_database(config)?;
        let mut conn = db.conn()?;
        crate::leads::search::rebuild_index(&mut conn)?;
        let stays = crate::leads::stays::rebuild_all(&mut conn)?;
        println!("rebuilt the full-text index and {stays} stored pipeline stays");
    }
    let report = check::full_check(&config.database_path);
    print!("{report}");
    if report.ok() {
        println!("the database is healthy");
        Ok(())
    } else {
        let advice = match check::newest_good_backup(&config.backup_dir) {
            Some(b) => format!(
                "; the newest good backup is {0} (`leadcache restore {0}`)",
                b.display()
            ),
            None => String::new(),
        };
        anyhow::bail!("the check found problems{advice}")
    }
}

/// `leadcache migrate [--status]`.
pub fn migrate(config: &Config, status: bool) -> anyhow::Result<()> {
    if !status {
        let db = crate::app::open_database(config)?;
        let applied = db.applied_migrations()?;
        println!("up to date: {} migration(s) applied", applied.len());
        return Ok(());
    }
    check::startup_check(&config.database_path, &config.backup_dir).map_err(anyhow::Error::msg)?;
    let db = Db::open(&config.database_path).context("cannot open the database")?;
    for version in db.applied_migrations()? {
        println!("applied\t{version}");
    }
    for name in db.pending_migrations()? {
        println!("pending\t{name}");
    }
    Ok(())
}
