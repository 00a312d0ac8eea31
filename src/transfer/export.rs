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
#[derive(Debug, Default)]
pub struct Csv;

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

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

impl Format for Csv {
    fn header(&mut self, _: &mut SqliteConnection) -> Result<Vec<u8>, AppError> {
        csv_bytes(|w| w.write_record(CSV_COLUMNS))
    }

    fn page(&mut self, _: &mut SqliteConnection, leads: &[Lead]) -> Result<Vec<u8>, AppError> {
        csv_bytes(|w| {
            for l in leads {
                w.write_record([
                    l.id.as_str(),
                    s(&l.airtable_id),
                    &l.full_name,
                    s(&l.email),
                    s(&l.company),
                    s(&l.title),
                    s(&l.linkedin_url),
                    s(&l.website),
                    s(&l.phone),
                    s(&l.location),
                    s(&l.industry),
                    s(&l.company_size),
                    &l.status,
                    s(&l.source),
                    &l.score.map(|x| x.to_string()).unwrap_or_default(),
                    if l.verified { "true" } else { "false" },
                    if l.enriched { "true" } else { "false" },
                    if l.needs_enrichment { "true" } else { "false" },
                    &t(l.scraped_at),
                    &t(l.enriched_at),
                    &t(l.contacted_at),
                    &t(Some(l.created_at)),
                    &t(Some(l.updated_at)),
                    &t(l.deleted_at),
                    &l.version.to_string(),
                    &l.sync_state,
                    &t(l.synced_at),
                    &l.extra,
                ])?;
            }
            Ok(())
        })
    }

    fn footer(&mut self, _: &mut SqliteConnection) -> Result<Vec<u8>, AppError> {
        Ok(Vec::new())
    }
}
