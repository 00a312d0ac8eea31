//! The transfer commands: `export` and `import`.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::dump::{self, Dump};
use super::export::{Csv, Exporter};
use crate::config::Config;

/// `leadcache export --format csv|json [filters] [-o FILE]`.
pub fn export(
    config: &Config,
    format: &str,
    output: Option<&Path>,
    pairs: &[(&'static str, String)],
) -> anyhow::Result<()> {
    let filter = super::filter::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
    let db = crate::app::open_database(config)?;
    let mut conn = db.conn()?;
    let mut out: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::with_capacity(
            256 * 1024,
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let rows = match format {
        "csv" => Exporter::new(filter, Csv).write_all(&mut conn, &mut out)?,
        "json" => Exporter::new(filter, Dump::default()).write_all(&mut conn, &mut out)?,
        other => anyhow::bail!("invalid --format {other:?}: expected csv or json"),
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
