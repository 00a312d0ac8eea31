//! `leadcache import FILE_OR_FOLDER... [--dry-run]`: the JSON lead files agents kept before
//! leadcache. Each file is an array of lead objects with the old field names; a folder means its
//! `*.json` files (not recursive), in name order.
//!
//! - **Field names** are matched without case or punctuation (`full_name`, `fullName`, `Full Name`
//!   are one key) against the aliases in [`local_field`]; `first_name` + `last_name` make a name
//!   when there is none. `notes` (a string or a list of strings) become `note` events. Any other key
//!   goes to `extra` as it is.
//! - **Values** are converted leniently first (a number where text is expected becomes text, `"42"`
//!   a score, `"yes"` a flag, a status is lower-cased, empty strings and nulls are absent), then
//!   validated exactly like API input (`leads::validate`). An invalid record is skipped and
//!   reported with file, index, field (the file's own key) and message.
//! - **Duplicates** (inside the file and against existing leads) are merged by the rules of
//!   `leads::dedup` / `leads::merge`, in file order, so a record that duplicates an earlier one is
//!   merged into it. New leads are written in batches (`leads::bulk`), with the same outcome.
//!   A file at least as large as the table (a first import) has its index upkeep deferred to
//!   the end of its transaction (`bulk::with_deferred_upkeep`).
//! - **Records are parsed one at a time** (`Records`) after the whole file has been checked, so
//!   a broken file stores nothing and memory does not hold the file's JSON tree.
//! - **One transaction per file**: an I/O or database error half way rolls the whole file back;
//!   the `import_log` row is then written on its own with status `failed`. Otherwise the row
//!   (`ok`, or `partial` when records were skipped) commits together with the leads. Imported and
//!   merged leads are queued for Airtable through the outbox like any write.
//! - **`--dry-run`** runs the same transaction (so every count, duplicates included, is what a real
//!   run would give) and rolls it back at the end: nothing is written, not even `import_log`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use indicatif::ProgressBar;
use serde::Serialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::db::schema::import_log;
use crate::error::AppError;
use crate::leads::fields::{self, Kind};
use crate::leads::merge::OnDuplicate;
use crate::leads::{WriteCtx, bulk, store, validate};

/// One skipped record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordError {
    pub index: usize,
    /// The file's key for the field, when one field was at fault.
    pub field: Option<String>,
    pub message: String,
}

/// What importing one file did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    pub file: PathBuf,
    pub records: usize,
    pub imported: usize,
    pub merged: usize,
    pub failed: usize,
    pub errors: Vec<RecordError>,
    /// `ok`, `partial` or `failed`.
    pub status: &'static str,
    /// Why the whole file failed (nothing of it was stored).
    pub fatal: Option<String>,
}

/// Errors that stop a whole import before any file is read.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} has no .json files")]
    Empty(PathBuf),
}

/// The files named by `paths`: files as given, folders as their `*.json` files in name order.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ImportError::Io {
            path: path.clone(),
            source,
        })?;
        if !meta.is_dir() {
            out.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| ImportError::Io {
                path: path.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|x| x.eq_ignore_ascii_case("json"))
            })
            .collect();
        if found.is_empty() {
            return Err(ImportError::Empty(path.clone()));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// How an import runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Check and count, write nothing.
    pub dry_run: bool,
    /// What to do with a record that duplicates a live lead (or an earlier record): merge it
    /// (the default), create it anyway, or skip it as failed with the existing lead's id.
    pub on_duplicate: OnDuplicate,
}

/// Imports every file of `paths` (see the module doc), one transaction per file.
pub fn import(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    paths: &[PathBuf],
    options: Options,
    progress: &ProgressBar,
) -> Result<Vec<FileReport>, ImportError> {
    let mut reports = Vec::new();
    for file in files(paths)? {
        progress.set_message(file.display().to_string());
        reports.push(import_file(conn, ctx, &file, options, progress));
    }
    progress.finish_and_clear();
    Ok(reports)
}

/// `leadcache import`: imports with a progress bar and prints a summary per file and every
/// skipped record. Fails (exit status 1) when a file failed as a whole.
pub fn run_cli(
    config: &crate::config::Config,
    paths: &[PathBuf],
    options: Options,
) -> anyhow::Result<()> {
    let dry_run = options.dry_run;
    let db = crate::app::open_database(config)?;
    let mut conn = db.conn()?;
    let ctx = WriteCtx {
        actor: "import".into(),
        sync_enabled: config.airtable.is_some(),
        statuses: config.lead_statuses.clone(),
        delete_grace: config.sync_delete_grace,
    };
    let progress = ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:40}] {pos}/{len} {per_sec} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let reports = import(&mut conn, &ctx, paths, options, &progress)?;
    let prefix = if dry_run {
        "dry run, nothing written: "
    } else {
        ""
    };
    let mut any_failed = false;
    for r in &reports {
        let file = r.file.display();
        println!(
            "{prefix}{file}: {} records, {} imported, {} merged into duplicates, {} skipped ({})",
            r.records, r.imported, r.merged, r.failed, r.status
        );
        if let Some(fatal) = &r.fatal {
            any_failed = true;
            println!("  {file}: nothing imported: {fatal}");
        }
        for e in &r.errors {
            let field = e
                .field
                .as_deref()
                .map(|f| format!(" {f}:"))
                .unwrap_or_default();
            println!("  {file} #{}:{field} {}", e.index, e.message);
        }
    }
    eprintln!("done in {:.2} s", started.elapsed().as_secs_f64());
    if any_failed {
        anyhow::bail!("some files were not imported (see above)");
    }
    Ok(())
}

/// Why a file's transaction ended without committing.
enum Abort {
    DryRun(FileReport),
    Failed(String),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Failed(format!("database error: {e}"))
    }
}

impl From<AppError> for Abort {
    fn from(e: AppError) -> Self {
        Abort::Failed(e.to_string())
    }
}

/// A legacy file checked to be one JSON array: its bytes and where each record's JSON text lies
/// in them, parsed into a `serde_json::Value` only when it is placed ([`Records::parse`]).
///
/// The `Value` tree of a whole file takes about three times the file's size. Peak anonymous
/// memory of a 100,000-record import (a 27 MB file) went from 228 MiB to 166 MiB; most of the
/// rest is the stored leads' keys (`bulk::Placer::read_stored_keys`) and SQLite's 32 MiB page
/// cache. A broken file is refused before any transaction starts, and the count sizes the
/// progress bar and the choice of bulk strategy (`bulk::Placer::expect`, `bulk::deferring_pays`).
struct Records {
    bytes: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl Records {
    fn read(file: &Path) -> Result<Records, String> {
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read the file: {e}"))?;
        // A borrowed `RawValue` is a slice of `bytes`: keep where it lies, not a copy.
        let spans = match serde_json::from_slice::<Vec<&RawValue>>(&bytes) {
            Ok(records) => records
                .iter()
                .map(|r| {
                    let start = r.get().as_ptr() as usize - bytes.as_ptr() as usize;
                    start..start + r.get().len()
                })
                .collect(),
            Err(e) if !e.is_data() => return Err(format!("not valid JSON: {e}")),
            // Not an array: say so only if it is JSON at all.
            Err(_) => {
                return match serde_json::from_slice::<IgnoredAny>(&bytes) {
                    Ok(_) => Err("expected a JSON array of lead objects".to_string()),
                    Err(e) => Err(format!("not valid JSON: {e}")),
                };
            }
        };
        Ok(Records { bytes, spans })
    }

    fn count(&self) -> usize {
        self.spans.len()
    }

    /// Record `index` as a JSON value (its text was checked by [`Records::read`]).
    fn parse(&self, index: usize) -> Result<Value, AppError> {
        serde_json::from_slice(&self.bytes[self.spans[index].clone()]).map_err(AppError::internal)
    }
}

/// Imports one file; never fails as a whole without saying why in the report (and `import_log`).
pub fn import_file(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    file: &Path,
    options: Options,
    progress: &ProgressBar,
) -> FileReport {
    let dry_run = options.dry_run;
    let started = crate::time::now();
    let mut report = FileReport {
        file: file.to_owned(),
        records: 0,
        imported: 0,
        merged: 0,
        failed: 0,
        errors: Vec::new(),
        status: "failed",
        fatal: None,
    };
    let records = match Records::read(file) {
        Ok(r) => r,
        Err(message) => return failed(conn, report, message, started, dry_run),
    };
    report.records = records.count();
    progress.inc_length(records.count() as u64);
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let outcome = conn.immediate_transaction::<FileReport, Abort, _>(|c| {
        let mut r = report.clone();
        let now = crate::time::now();
        let defer = bulk::deferring_pays(c, records.count())?;
        bulk::with_deferred_upkeep(c, defer, |c| {
            bulk::with_placer(c, ctx, |c, placer| {
                placer.on_duplicate(options.on_duplicate);
                placer.expect(c, records.count())?;
                for index in 0..records.count() {
                    progress.inc(1);
                    let origin = format!("import {name} #{index}");
                    let record = records.parse(index)?;
                    match place(c, placer, ctx, &record, now, &origin) {
                        Ok(true) => r.merged += 1,
                        Ok(false) => r.imported += 1,
                        Err(Skip::Invalid(field, message)) => {
                            r.failed += 1;
                            r.errors.push(RecordError {
                                index,
                                field,
                                message,
                            });
                        }
                        Err(Skip::Fatal(e)) => return Err(e),
                    }
                }
                Ok(())
            })
        })?;
        r.status = if r.failed == 0 { "ok" } else { "partial" };
        if dry_run {
            return Err(Abort::DryRun(r));
        }
        log(c, &r, started)?;
        Ok(r)
    });
    match outcome {
        Ok(r) | Err(Abort::DryRun(r)) => r,
        Err(Abort::Failed(message)) => failed(conn, report, message, started, dry_run),
    }
}

fn failed(
    conn: &mut SqliteConnection,
    mut report: FileReport,
    message: String,
    started: chrono::NaiveDateTime,
    dry_run: bool,
) -> FileReport {
    report.status = "failed";
    report.failed = report.records;
    report.fatal = Some(message);
    if !dry_run && let Err(e) = log(conn, &report, started) {
        tracing::error!(error = %e, "cannot write the import_log row of a failed import");
    }
    report
}

fn log(
    conn: &mut SqliteConnection,
    r: &FileReport,
    started: chrono::NaiveDateTime,
) -> Result<(), AppError> {
    let mut errors = serde_json::to_value(&r.errors)?;
    if let (Some(fatal), Value::Array(list)) = (&r.fatal, &mut errors) {
        list.insert(
            0,
            serde_json::json!({"index": null, "field": null, "message": fatal}),
        );
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    diesel::insert_into(import_log::table)
        .values((
            import_log::file.eq(r.file.display().to_string()),
            import_log::started_at.eq(started),
            import_log::finished_at.eq(crate::time::now()),
            import_log::imported.eq(count(r.imported)),
            import_log::merged.eq(count(r.merged)),
            import_log::failed.eq(count(r.failed)),
            import_log::status.eq(r.status),
            import_log::dry_run.eq(false),
            import_log::errors.eq(serde_json::to_string(&errors)?),
        ))
        .execute(conn)?;
    Ok(())
}

enum Skip {
    /// The record is invalid: (the file's key, message).
    Invalid(Option<String>, String),
    Fatal(AppError),
}

/// Validates and places (stores or merges) one record. `Ok(true)`: merged into an existing lead.
fn place(
    conn: &mut SqliteConnection,
    placer: &mut bulk::Placer<'_>,
    ctx: &WriteCtx,
    record: &Value,
    now: chrono::NaiveDateTime,
    origin: &str,
) -> Result<bool, Skip> {
    let Value::Object(obj) = record else {
        return Err(Skip::Invalid(None, "expected a JSON object".into()));
    };
    let legacy = convert(obj)?;
    let invalid = |e: AppError| match e {
        AppError::Validation { field, message } => {
            let key = legacy
                .keys
                .iter()
                .find(|(local, _)| *local == field)
                .map(|(_, k)| k.clone());
            Skip::Invalid(Some(key.unwrap_or(field)), message)
        }
        other => Skip::Fatal(other),
    };
    let lead = store::build(ctx, &legacy.changes, now).map_err(invalid)?;
    let outcome = placer
        .place(conn, lead, |f| legacy.changes.contains_key(f), origin)
        .map_err(|e| match e {
            // A duplicate refused by `--on-duplicate fail`: this record is skipped.
            AppError::Conflict(message) => Skip::Invalid(None, message),
            other => Skip::Fatal(other),
        })?;
    for note in &legacy.notes {
        placer
            .note(conn, &outcome.written.lead.id, note, now)
            .map_err(Skip::Fatal)?;
    }
    Ok(outcome.duplicate_of.is_some())
}

/// A record in local terms.
struct Legacy {
    changes: Map<String, Value>,
    notes: Vec<String>,
    /// (local field, the file's key), to name the file's key in errors.
    keys: Vec<(String, String)>,
}

/// The local field a legacy key stands for (`notes` for notes, `first_name`/`last_name` for the
/// parts of a name); `None`: unknown, kept in `extra`.
pub fn local_field(key: &str) -> Option<&'static str> {
    let k: String = key
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    Some(match k.as_str() {
        "name" | "fullname" | "contactname" | "personname" => "full_name",
        "firstname" | "givenname" => "first_name",
        "lastname" | "surname" | "familyname" => "last_name",
        "email" | "emailaddress" | "mail" | "workemail" => "email",
        "linkedin" | "linkedinurl" | "linkedinprofile" | "linkedinprofileurl" => "linkedin_url",
        "company" | "companyname" | "organization" | "organisation" | "employer" => "company",
        "title" | "position" | "jobtitle" | "role" => "title",
        "website" | "companywebsite" | "web" | "url" | "homepage" => "website",
        "phone" | "phonenumber" | "telephone" | "tel" | "mobile" => "phone",
        "location" | "city" => "location",
        "industry" | "sector" => "industry",
        "companysize" | "size" | "employees" | "headcount" => "company_size",
        "status" | "stage" => "status",
        "source" | "leadsource" => "source",
        "score" | "leadscore" => "score",
        "verified" => "verified",
        "enriched" => "enriched",
        "needsenrichment" => "needs_enrichment",
        "scrapedat" => "scraped_at",
        "enrichedat" => "enriched_at",
        "contactedat" => "contacted_at",
        "notes" | "note" | "comments" | "comment" => "notes",
        _ => return None,
    })
}

fn lenient(field: &str, v: &Value) -> Option<Value> {
    let v = match v {
        Value::Null => return None,
        Value::String(s) if s.trim().is_empty() => return None,
        other => other,
    };
    Some(match (fields::kind(field), v) {
        (Some(Kind::Text), Value::Number(n)) => Value::String(n.to_string()),
        (Some(Kind::Text), Value::Bool(b)) => Value::String(b.to_string()),
        (Some(Kind::Text), Value::String(s)) if field == "status" => {
            Value::String(s.trim().to_lowercase())
        }
        (Some(Kind::Number), Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(x) => serde_json::Number::from_f64(x).map_or_else(|| v.clone(), Value::Number),
            Err(_) => v.clone(),
        },
        (Some(Kind::Flag), Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "x" => Value::Bool(true),
            "false" | "no" | "n" | "0" => Value::Bool(false),
            _ => v.clone(),
        },
        (Some(Kind::Flag), Value::Number(n)) => Value::Bool(n.as_f64().is_some_and(|x| x != 0.0)),
        _ => v.clone(),
    })
}

fn convert(obj: &Map<String, Value>) -> Result<Legacy, Skip> {
    let mut legacy = Legacy {
        changes: Map::new(),
        notes: Vec::new(),
        keys: Vec::new(),
    };
    let mut extra = Map::new();
    let (mut first, mut last) = (None, None);
    for (key, value) in obj {
        let Some(field) = local_field(key) else {
            if !value.is_null() {
                extra.insert(key.clone(), value.clone());
            }
            continue;
        };
        legacy.keys.push((field.to_string(), key.clone()));
        match field {
            "notes" => {
                let texts: Vec<&Value> = match value {
                    Value::Array(items) => items.iter().collect(),
                    Value::Null => vec![],
                    other => vec![other],
                };
                for t in texts {
                    let Value::String(s) = t else {
                        return Err(Skip::Invalid(
                            Some(key.clone()),
                            "notes must be text or a list of texts".into(),
                        ));
                    };
                    if s.trim().is_empty() {
                        continue;
                    }
                    let note = validate::note(s)
                        .map_err(|e| Skip::Invalid(Some(key.clone()), message(e)))?;
                    legacy.notes.push(note.to_string());
                }
            }
            "first_name" => {
                first = value
                    .as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            }
            "last_name" => {
                last = value
                    .as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            }
            _ => {
                if let Some(v) = lenient(field, value) {
                    legacy.changes.insert(field.to_string(), v);
                }
            }
        }
    }
    if !legacy.changes.contains_key("full_name") {
        let name = [first, last]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            legacy
                .changes
                .insert("full_name".into(), Value::String(name));
        }
    }
    if !extra.is_empty() {
        legacy.changes.insert("extra".into(), Value::Object(extra));
    }
    Ok(legacy)
}

fn message(e: AppError) -> String {
    match e {
        AppError::Validation { message, .. } => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Result<Records, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.json");
        std::fs::write(&file, text).unwrap();
        Records::read(&file)
    }

    /// The file is checked whole before anything is placed; each record then comes in order.
    #[test]
    fn records_are_checked_first_then_parsed_one_at_a_time() {
        let r = records(r#" [ {"name": "a"}, "b", 3, {"name": "d"} ] "#).unwrap();
        assert_eq!(r.count(), 4);
        let seen: Vec<Value> = (0..r.count()).map(|i| r.parse(i).unwrap()).collect();
        assert_eq!(
            seen,
            [
                serde_json::json!({"name": "a"}),
                "b".into(),
                3.into(),
                serde_json::json!({"name": "d"})
            ]
        );
        assert_eq!(records("[]").unwrap().count(), 0);

        for (text, says) in [
            ("{not json", "not valid JSON"),
            ("[{\"name\": \"a\"}, ", "not valid JSON"),
            ("[1] trailing", "not valid JSON"),
            ("", "not valid JSON"),
            ("{\"leads\": []}", "expected a JSON array of lead objects"),
            ("\"just text\"", "expected a JSON array of lead objects"),
        ] {
            let err = records(text).err().unwrap_or_default();
            assert!(err.starts_with(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn old_names_map_to_local_fields() {
        for k in ["name", "full_name", "fullName", "Full Name"] {
            assert_eq!(local_field(k), Some("full_name"), "{k}");
        }
        for k in ["linkedin_url", "linkedin", "linkedinUrl"] {
            assert_eq!(local_field(k), Some("linkedin_url"), "{k}");
        }
        assert_eq!(local_field("position"), Some("title"));
        assert_eq!(local_field("favourite_colour"), None);
    }

    #[test]
    fn values_are_converted_leniently_and_unknown_keys_kept() {
        let obj = serde_json::json!({
            "first_name": "Jane", "last_name": "Doe", "score": "42", "verified": "yes", "status": " Contacted ",
            "phone": 5550100, "notes": ["first", " "], "favourite_colour": "blue", "email": ""
        });
        let Value::Object(obj) = obj else {
            unreachable!()
        };
        let Ok(l) = convert(&obj) else {
            panic!("convert")
        };
        assert_eq!(l.changes["full_name"], "Jane Doe");
        assert_eq!(l.changes["score"], 42.0);
        assert_eq!(l.changes["verified"], true);
        assert_eq!(l.changes["status"], "contacted");
        assert_eq!(l.changes["phone"], "5550100");
        assert_eq!(
            l.changes["extra"],
            serde_json::json!({"favourite_colour": "blue"})
        );
        assert!(!l.changes.contains_key("email"));
        assert_eq!(l.notes, ["first"]);
    }
}
