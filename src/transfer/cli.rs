//! The transfer commands: `export` and `import`.
//!
//! `export -o FILE` creates the file 0600 (it holds personal data), whatever the umask. CSV cells
//! that start like a formula get a leading `'` (`super::export::Csv`); `--bom` starts the CSV with
//! a UTF-8 byte order mark for Excel. Errors name the flags the user typed.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::dump::{self, Dump};
use super::export::{Csv, Exporter};
use crate::config::Config;
use crate::error::{AppError, quote};

/// The command-line flag of a filter name: `createdAfter` -> `--created-after` (the flags of
/// `leadcache export` are the `LeadFilter` names in kebab case).
pub fn flag_of(name: &str) -> String {
    let mut out = String::from("--");
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Creates (or truncates) the export file with mode 0600, whatever the umask: an export holds
/// every lead's personal data. An existing regular file is narrowed to 0600 too; a device or a
/// pipe (`-o /dev/stdout`) is written as it is.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// `leadcache export --format csv|json [--bom] [filters] [-o FILE]`. `pairs` are the filter
/// flags under their `LeadFilter` names (`crate::cli::ExportFilter::pairs`); errors name the
/// flags (`--created-after`), not those names. `bom` is for CSV only.
pub fn export(
    config: &Config,
    format: &str,
    output: Option<&Path>,
    bom: bool,
    pairs: &[(&'static str, String)],
) -> anyhow::Result<()> {
    match format {
        "csv" => {}
        "json" if bom => anyhow::bail!("--bom is for --format csv (a JSON dump has no BOM)"),
        "json" => {}
        other => anyhow::bail!("invalid --format {}: expected csv or json", quote(other)),
    }
    let filter = super::filter::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).map_err(
        |e| match e {
            AppError::Validation { field, message } => {
                anyhow::anyhow!("invalid {}: {message}", flag_of(&field))
            }
            other => anyhow::anyhow!("{}", other.public_message()),
        },
    )?;
    let db = crate::app::open_database(config)?;
    let mut conn = db.conn()?;
    let mut out: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::with_capacity(
            256 * 1024,
            create_private(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let rows = if format == "csv" {
        Exporter::new(filter, Csv { bom }).write_all(&mut conn, &mut out)?
    } else {
        Exporter::new(filter, Dump::default()).write_all(&mut conn, &mut out)?
    };
    out.flush()?;
    drop(out);
    if let Some(path) = output {
        eprintln!("exported {rows} leads to {}", path.display());
    }
    Ok(())
}

/// `leadcache import FILE`: a leadcache dump. (Other JSON files go to the legacy importer when it
/// is merged in; until then they are refused.)
pub fn import(config: &Config, file: &Path) -> anyhow::Result<()> {
    let is_dump = dump::is_dump(file).with_context(|| format!("cannot read {}", file.display()))?;
    if !is_dump {
        anyhow::bail!(
            "{} is not a leadcache dump (it does not start with {{\"format\":\"{}\"}}); export one with \
             `leadcache export --format json`",
            file.display(),
            dump::FORMAT
        );
    }
    let db = crate::app::open_database(config)?;
    let mut conn = db.conn()?;
    let stats = dump::import(&mut conn, file)
        .map_err(|e| anyhow::anyhow!("import failed, nothing was stored: {e}"))?;
    println!(
        "imported {} leads, {} campaigns; skipped {} already present; {} failed",
        stats.imported, stats.campaigns, stats.skipped, stats.failed
    );
    for e in &stats.errors {
        eprintln!("  {e}");
    }
    let _ = std::io::stdout().flush();
    Ok(())
}
