//! Streaming exports: pages of 1,000 leads read with keyset cursors (oldest first, by
//! `created_at` then row id, so rows never shift between pages) and rendered chunk by chunk, so
//! memory stays flat at any table size. The command line writes chunks to a file; the HTTP
//! handlers send them down the response as they come.
//!
//! Each page is its own read: an export taken while leads are written is not one snapshot (a lead
//! created meanwhile may or may not be in it, none is duplicated or skipped among those that
//! existed at the start). For a snapshot, take a backup.

use diesel::sqlite::SqliteConnection;

use crate::db::models::Lead;
use crate::error::AppError;
use crate::leads::query::{self, Direction, LeadFilter, Order, OrderKey};

/// Leads per page.
pub const PAGE: i64 = 1000;

const ORDER: &[Order] = &[Order {
    key: OrderKey::CreatedAt,
    dir: Direction::Asc,
}];

/// A file format: a header, the rendering of a page, a footer.
pub trait Format: Send + 'static {
    fn header(&mut self, conn: &mut SqliteConnection) -> Result<Vec<u8>, AppError>;
    fn page(&mut self, conn: &mut SqliteConnection, leads: &[Lead]) -> Result<Vec<u8>, AppError>;
    fn footer(&mut self, conn: &mut SqliteConnection) -> Result<Vec<u8>, AppError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Pages,
    Footer,
    Done,
}

/// Produces an export chunk by chunk. Move it into `Db::run` for each chunk.
pub struct Exporter<F: Format> {
    filter: LeadFilter,
    format: F,
    after: Option<String>,
    stage: Stage,
    pub rows: u64,
}

impl<F: Format> Exporter<F> {
    pub fn new(filter: LeadFilter, format: F) -> Self {
        Exporter {
            filter,
            format,
            after: None,
            stage: Stage::Header,
            rows: 0,
        }
    }

    /// The next chunk, or `None` when the export is complete.
    pub fn next_chunk(&mut self, conn: &mut SqliteConnection) -> Result<Option<Vec<u8>>, AppError> {
        match self.stage {
            Stage::Header => {
                self.stage = Stage::Pages;
                self.format.header(conn).map(Some)
            }
            Stage::Pages => {
                let page = query::list(conn, &self.filter, ORDER, PAGE, self.after.as_deref())?;
                self.after = page.rows.last().map(|r| query::encode_cursor(ORDER, r));
                if !page.has_next {
                    self.stage = Stage::Footer;
                }
                self.rows += page.rows.len() as u64;
                let leads: Vec<Lead> = page.rows.into_iter().map(|r| r.lead).collect();
                self.format.page(conn, &leads).map(Some)
            }
            Stage::Footer => {
                self.stage = Stage::Done;
                self.format.footer(conn).map(Some)
            }
            Stage::Done => Ok(None),
        }
    }

    /// Writes the whole export to `out` (command line). Returns the number of leads.
    pub fn write_all(
        mut self,
        conn: &mut SqliteConnection,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, AppError> {
        while let Some(chunk) = self.next_chunk(conn)? {
            out.write_all(&chunk)
                .map_err(|e| AppError::internal(format!("cannot write the export: {e}")))?;
        }
        out.flush()
            .map_err(|e| AppError::internal(format!("cannot write the export: {e}")))?;
        Ok(self.rows)
    }
}

/// CSV columns: every user-visible column, `extra` as JSON text.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "airtable_id",
    "full_name",
    "email",
    "company",
    "title",
    "linkedin_url",
    "website",
    "phone",
    "location",
    "industry",
    "company_size",
    "status",
    "source",
    "score",
    "verified",
    "enriched",
    "needs_enrichment",
    "scraped_at",
    "enriched_at",
    "contacted_at",
    "created_at",
    "updated_at",
    "deleted_at",
    "version",
    "sync_state",
    "synced_at",
    "extra",
];

/// One row per lead; times RFC 3339 UTC, flags `true`/`false`, empty cells for nothing.
///
/// **Formula injection** (SPEC §14, OWASP "CSV Injection"): lead texts come from Airtable,
/// scrapers and callers, and a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and
/// some start a formula after a leading tab or CR). Every text cell that starts with one of these
/// is written with a leading `'`, which spreadsheets show as text and do not evaluate: a company
/// `=HYPERLINK("http://x")` becomes `'=HYPERLINK("http://x")`, a phone `+1 555 0100` becomes
/// `'+1 555 0100`. Numbers are written as numbers: `score` (`-5` is the number minus five, which
/// a spreadsheet reads as such and cannot run) and `version` are never prefixed, and every other
/// column is text, so a reader of the file knows which columns may carry the prefix. The CSV is
/// for people and spreadsheets; the JSON dump is the lossless format (values exactly as stored).
///
/// `bom`: the file starts with a UTF-8 byte order mark (EF BB BF), so Excel reads it as UTF-8
/// instead of the system code page (`?bom=1`, `leadcache export --bom`).
#[derive(Debug, Default)]
pub struct Csv {
    pub bom: bool,
}

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A text cell as written: with a leading `'` when it starts like a formula (see [`Csv`]).
pub fn cell(v: &str) -> std::borrow::Cow<'_, str> {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{v}"))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

fn csv_bytes(
    rows: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>,
) -> Result<Vec<u8>, AppError> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(256 * 1024));
    rows(&mut w).map_err(AppError::internal)?;
    w.into_inner()
        .map_err(|e| AppError::internal(e.to_string()))
}

fn t(v: Option<chrono::NaiveDateTime>) -> String {
    v.map(crate::time::format).unwrap_or_default()
}

fn s(v: &Option<String>) -> std::borrow::Cow<'_, str> {
    cell(v.as_deref().unwrap_or(""))
}

impl Format for Csv {
    fn header(&mut self, _: &mut SqliteConnection) -> Result<Vec<u8>, AppError> {
        let mut out = if self.bom { BOM.to_vec() } else { Vec::new() };
        out.extend(csv_bytes(|w| w.write_record(CSV_COLUMNS))?);
        Ok(out)
    }

    fn page(&mut self, _: &mut SqliteConnection, leads: &[Lead]) -> Result<Vec<u8>, AppError> {
        csv_bytes(|w| {
            for l in leads {
                let score = l.score.map(|x| x.to_string()).unwrap_or_default();
                let version = l.version.to_string();
                let (created, updated) = (t(Some(l.created_at)), t(Some(l.updated_at)));
                let (scraped, enriched, contacted) =
                    (t(l.scraped_at), t(l.enriched_at), t(l.contacted_at));
                let (deleted, synced) = (t(l.deleted_at), t(l.synced_at));
                let flag = |b: bool| if b { "true" } else { "false" };
                w.write_record([
                    // Text cells through `cell`/`s` (formula prefix); numbers, flags and
                    // times as they are (they never start with a formula character but `-`
                    // of a negative score, which is a number).
                    cell(&l.id).as_ref(),
                    &s(&l.airtable_id),
                    &cell(&l.full_name),
                    &s(&l.email),
                    &s(&l.company),
                    &s(&l.title),
                    &s(&l.linkedin_url),
                    &s(&l.website),
                    &s(&l.phone),
                    &s(&l.location),
                    &s(&l.industry),
                    &s(&l.company_size),
                    &cell(&l.status),
                    &s(&l.source),
                    &score,
                    flag(l.verified),
                    flag(l.enriched),
                    flag(l.needs_enrichment),
                    &scraped,
                    &enriched,
                    &contacted,
                    &created,
                    &updated,
                    &deleted,
                    &version,
                    &cell(&l.sync_state),
                    &synced,
                    &cell(&l.extra),
                ])?;
            }
            Ok(())
        })
    }

    fn footer(&mut self, _: &mut SqliteConnection) -> Result<Vec<u8>, AppError> {
        Ok(Vec::new())
    }
}
