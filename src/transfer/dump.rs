//! The portable dump: `leadcache export --format json` and `leadcache import FILE`.
//!
//! ```json
//! {"format":"leadcache-dump","version":1,"exported_at":"2026-11-24T03:00:00.000Z",
//!  "leads":[{"id":..., every column incl. airtable_id, version, sync fields, remote_fields,
//!            "events":[...], "enrichments":[...], "campaigns":[memberships], "outbox":{...}|null}, ...],
//!  "campaigns":[{"id":...,"name":...}, ...]}
//! ```
//!
//! - The `format` key comes first, so a reader can tell a dump from other JSON by its first bytes
//!   ([`is_dump`]). `version` changes when a field's meaning changes; readers refuse newer ones.
//! - Written lead by lead (constant memory); read lead by lead too (a streaming serde visitor),
//!   all in one transaction: an import lands whole or not at all.
//! - Times are RFC 3339 UTC with their full precision; JSON columns (`extra`, `remote_fields`,
//!   event `changes`, enrichment `data`) are embedded as JSON. The duplicate keys are not in the
//!   dump: they are derived, and recomputed on import by the current rules.
//! - Event and enrichment row ids are not kept (they are local counters); their order is.
//!
//! **Import semantics** (merge by id): a lead whose id is not in the database is inserted with
//! everything it carries (events, enrichments, campaign memberships, its outbox row), exactly as
//! exported. A lead whose id exists already is left alone (the local copy wins) and counted as
//! skipped. A lead that cannot be stored (e.g. its `airtable_id` belongs to another local lead) is
//! counted as failed with the reason, without stopping the others; so is a lead whose texts
//! break the character rule of stored text (`leads::validate::chars`: control and bidi
//! characters), a value Airtable gave included. Campaigns are inserted when their id is new. To replace a database by a dump, import into an empty one
//! (`leadcache reset --yes` first). Every import is recorded in `import_log`.
//!
//! **Into a small table** (fewer than [`DEFER_UPKEEP_BELOW`] leads, a restore into a new
//! database typically), index upkeep is deferred to the end of the import's transaction
//! (`crate::leads::bulk::with_deferred_upkeep`): a dump of 100,000 leads into an empty database
//! took 28.3-31.4 s with the indexes and FTS triggers maintained lead by lead, 24.4-25.1 s with
//! the upkeep deferred. A stream's size is not known before it is read, so the table's size
//! decides: rebuilding the indexes of a small table costs little whatever the dump holds.

use std::io::Read as _;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::export::Format;
use crate::db::models::{Campaign, CampaignLead, Lead, LeadEvent, OutboxRow};
use crate::db::schema::{
    campaign_leads, campaigns, enrichments, import_log, lead_events, leads, outbox,
};
use crate::error::{AppError, quote};
use crate::leads::validate::Lines;

pub const FORMAT: &str = "leadcache-dump";
pub const VERSION: u32 = 1;
/// Below this many rows in `leads`, an import defers index upkeep (see the module doc).
pub const DEFER_UPKEEP_BELOW: i64 = 10_000;

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn text_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DumpEvent {
    pub kind: String,
    pub actor: String,
    pub changes: Value,
    pub message: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DumpEnrichment {
    pub provider: String,
    pub data: Value,
    pub confidence: Option<f64>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DumpMembership {
    pub campaign_id: String,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub status: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub replied_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DumpOutbox {
    pub operation: String,
    pub fields: Value,
    pub seq: i32,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DumpCampaign {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One lead of a dump with everything hanging off it.
#[derive(Debug, Serialize, Deserialize)]
pub struct DumpLead {
    pub id: String,
    pub airtable_id: Option<String>,
    pub full_name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub linkedin_url: Option<String>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub location: Option<String>,
    pub industry: Option<String>,
    pub company_size: Option<String>,
    pub status: String,
    pub source: Option<String>,
    pub score: Option<f64>,
    pub verified: bool,
    pub enriched: bool,
    pub needs_enrichment: bool,
    pub scraped_at: Option<DateTime<Utc>>,
    pub enriched_at: Option<DateTime<Utc>>,
    pub contacted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub extra: Value,
    pub remote_fields: Option<Value>,
    pub remote_modified_at: Option<DateTime<Utc>>,
    pub synced_at: Option<DateTime<Utc>>,
    pub sync_state: String,
    #[serde(default)]
    pub events: Vec<DumpEvent>,
    #[serde(default)]
    pub enrichments: Vec<DumpEnrichment>,
    #[serde(default)]
    pub campaigns: Vec<DumpMembership>,
    #[serde(default)]
    pub outbox: Option<DumpOutbox>,
}

impl DumpLead {
    fn from_lead(l: Lead) -> DumpLead {
        DumpLead {
            extra: json_text(&l.extra),
            remote_fields: l.remote_fields.as_deref().map(json_text),
            id: l.id,
            airtable_id: l.airtable_id,
            full_name: l.full_name,
            email: l.email,
            company: l.company,
            title: l.title,
            linkedin_url: l.linkedin_url,
            website: l.website,
            phone: l.phone,
            location: l.location,
            industry: l.industry,
            company_size: l.company_size,
            status: l.status,
            source: l.source,
            score: l.score,
            verified: l.verified,
            enriched: l.enriched,
            needs_enrichment: l.needs_enrichment,
            scraped_at: l.scraped_at.map(utc),
            enriched_at: l.enriched_at.map(utc),
            contacted_at: l.contacted_at.map(utc),
            created_at: utc(l.created_at),
            updated_at: utc(l.updated_at),
            deleted_at: l.deleted_at.map(utc),
            version: l.version,
            remote_modified_at: l.remote_modified_at.map(utc),
            synced_at: l.synced_at.map(utc),
            sync_state: l.sync_state,
            events: vec![],
            enrichments: vec![],
            campaigns: vec![],
            outbox: None,
        }
    }

    /// The character rule of stored text (`leads::validate::chars`) over what a caller wrote:
    /// the lead's texts and `extra`, event actors and messages, enrichment providers and data,
    /// campaign messages. (`remote_fields`, event `changes` and the outbox row are copies of
    /// those or of Airtable's values, and are not checked.)
    fn check_text(&self) -> Result<(), AppError> {
        use crate::leads::validate::{Lines, chars, json_chars};
        let texts = [
            ("id", Some(&self.id)),
            ("airtable_id", self.airtable_id.as_ref()),
            ("full_name", Some(&self.full_name)),
            ("email", self.email.as_ref()),
            ("company", self.company.as_ref()),
            ("title", self.title.as_ref()),
            ("linkedin_url", self.linkedin_url.as_ref()),
            ("website", self.website.as_ref()),
            ("phone", self.phone.as_ref()),
            ("location", self.location.as_ref()),
            ("industry", self.industry.as_ref()),
            ("company_size", self.company_size.as_ref()),
            ("status", Some(&self.status)),
            ("source", self.source.as_ref()),
            ("sync_state", Some(&self.sync_state)),
        ];
        for (field, v) in texts {
            if let Some(v) = v {
                chars(field, v, Lines::Single)?;
            }
        }
        json_chars("extra", &self.extra)?;
        for e in &self.events {
            chars("events.actor", &e.actor, Lines::Single)?;
            if let Some(m) = &e.message {
                chars("events.message", m, Lines::Multi)?;
            }
        }
        for e in &self.enrichments {
            chars("enrichments.provider", &e.provider, Lines::Single)?;
            json_chars("enrichments.data", &e.data)?;
        }
        for m in &self.campaigns {
            if let Some(v) = &m.subject {
                chars("campaigns.subject", v, Lines::Single)?;
            }
            if let Some(v) = &m.body {
                chars("campaigns.body", v, Lines::Multi)?;
            }
        }
        Ok(())
    }

    /// The lead row (keys recomputed).
    fn to_lead(&self) -> Lead {
        let n = |t: &DateTime<Utc>| t.naive_utc();
        let mut lead = Lead {
            id: self.id.clone(),
            airtable_id: self.airtable_id.clone(),
            full_name: self.full_name.clone(),
            email: self.email.clone(),
            company: self.company.clone(),
            title: self.title.clone(),
            linkedin_url: self.linkedin_url.clone(),
            website: self.website.clone(),
            phone: self.phone.clone(),
            location: self.location.clone(),
            industry: self.industry.clone(),
            company_size: self.company_size.clone(),
            status: self.status.clone(),
            source: self.source.clone(),
            score: self.score,
            verified: self.verified,
            enriched: self.enriched,
            needs_enrichment: self.needs_enrichment,
            scraped_at: self.scraped_at.as_ref().map(n),
            enriched_at: self.enriched_at.as_ref().map(n),
            contacted_at: self.contacted_at.as_ref().map(n),
            created_at: n(&self.created_at),
            updated_at: n(&self.updated_at),
            deleted_at: self.deleted_at.as_ref().map(n),
            version: self.version,
            extra: text_json(&self.extra),
            remote_fields: self.remote_fields.as_ref().map(text_json),
            remote_modified_at: self.remote_modified_at.as_ref().map(n),
            synced_at: self.synced_at.as_ref().map(n),
            sync_state: self.sync_state.clone(),
            email_key: None,
            linkedin_key: None,
            name_company_key: None,
            company_key: None,
        };
        crate::leads::keys::apply(&mut lead);
        lead
    }
}

/// The JSON dump as an export [`Format`].
#[derive(Debug, Default)]
pub struct Dump {
    written: u64,
}

impl Format for Dump {
    fn header(&mut self, _: &mut SqliteConnection) -> Result<Vec<u8>, AppError> {
        let now = serde_json::to_string(&crate::time::format(crate::time::now()))?;
        Ok(format!(
            "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"exported_at\":{now},\"leads\":["
        )
        .into_bytes())
    }

    fn page(&mut self, conn: &mut SqliteConnection, page: &[Lead]) -> Result<Vec<u8>, AppError> {
        let ids: Vec<String> = page.iter().map(|l| l.id.clone()).collect();
        let events: Vec<LeadEvent> = lead_events::table
            .filter(lead_events::lead_id.eq_any(&ids))
            .order((lead_events::lead_id, lead_events::at, lead_events::id))
            .select(LeadEvent::as_select())
            .load(conn)?;
        let enrich: Vec<crate::db::models::Enrichment> = enrichments::table
            .filter(enrichments::lead_id.eq_any(&ids))
            .order((enrichments::lead_id, enrichments::at, enrichments::id))
            .select(crate::db::models::Enrichment::as_select())
            .load(conn)?;
        let members: Vec<CampaignLead> = campaign_leads::table
            .filter(campaign_leads::lead_id.eq_any(&ids))
            .order((campaign_leads::lead_id, campaign_leads::campaign_id))
            .select(CampaignLead::as_select())
            .load(conn)?;
        let queued: Vec<OutboxRow> = outbox::table
            .filter(outbox::lead_id.eq_any(&ids))
            .select(OutboxRow::as_select())
            .load(conn)?;
        let mut by_id: std::collections::HashMap<String, DumpLead> = page
            .iter()
            .map(|l| (l.id.clone(), DumpLead::from_lead(l.clone())))
            .collect();
        for e in events {
            if let Some(d) = by_id.get_mut(&e.lead_id) {
                d.events.push(DumpEvent {
                    kind: e.kind,
                    actor: e.actor,
                    changes: json_text(&e.changes),
                    message: e.message,
                    at: utc(e.at),
                });
            }
        }
        for e in enrich {
            if let Some(d) = by_id.get_mut(&e.lead_id) {
                d.enrichments.push(DumpEnrichment {
                    provider: e.provider,
                    data: json_text(&e.data),
                    confidence: e.confidence,
                    at: utc(e.at),
                });
            }
        }
        for m in members {
            if let Some(d) = by_id.get_mut(&m.lead_id) {
                d.campaigns.push(DumpMembership {
                    campaign_id: m.campaign_id,
                    subject: m.subject,
                    body: m.body,
                    status: m.status,
                    sent_at: m.sent_at.map(utc),
                    replied_at: m.replied_at.map(utc),
                    created_at: utc(m.created_at),
                    updated_at: utc(m.updated_at),
                });
            }
        }
        for o in queued {
            if let Some(d) = by_id.get_mut(&o.lead_id) {
                d.outbox = Some(DumpOutbox {
                    operation: o.operation,
                    fields: json_text(&o.fields),
                    seq: o.seq,
                    attempts: o.attempts,
                    next_attempt_at: utc(o.next_attempt_at),
                    last_error: o.last_error,
                    state: o.state,
                    created_at: utc(o.created_at),
                    updated_at: utc(o.updated_at),
                });
            }
        }
        let mut out = Vec::with_capacity(page.len() * 1024);
        for l in page {
            if let Some(d) = by_id.remove(&l.id) {
                if self.written > 0 {
                    out.push(b',');
                }
                out.push(b'\n');
                serde_json::to_writer(&mut out, &d)?;
                self.written += 1;
            }
        }
        Ok(out)
    }

    fn footer(&mut self, conn: &mut SqliteConnection) -> Result<Vec<u8>, AppError> {
        let rows: Vec<Campaign> = campaigns::table
            .order(campaigns::id)
            .select(Campaign::as_select())
            .load(conn)?;
        let list: Vec<DumpCampaign> = rows
            .into_iter()
            .map(|c| DumpCampaign {
                id: c.id,
                name: c.name,
                description: c.description,
                created_at: utc(c.created_at),
                updated_at: utc(c.updated_at),
            })
            .collect();
        let mut out = b"\n],\n\"campaigns\":".to_vec();
        serde_json::to_writer(&mut out, &list)?;
        out.extend_from_slice(b"}\n");
        Ok(out)
    }
}

/// Whether `file` is a leadcache dump: a JSON object whose first key is `"format"` with the value
/// `"leadcache-dump"` (as leadcache writes it). Anything else is for the legacy importer.
pub fn is_dump(file: &Path) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(256);
    std::fs::File::open(file)?
        .take(256)
        .read_to_end(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    let rest = text.trim_start_matches('\u{feff}').trim_start();
    let Some(rest) = rest.strip_prefix('{') else {
        return Ok(false);
    };
    let Some(rest) = rest.trim_start().strip_prefix("\"format\"") else {
        return Ok(false);
    };
    let Some(rest) = rest.trim_start().strip_prefix(':') else {
        return Ok(false);
    };
    Ok(rest.trim_start().starts_with(&format!("\"{FORMAT}\"")))
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub imported: u64,
    pub skipped: u64,
    pub failed: u64,
    pub campaigns: u64,
    /// The first problems (at most 100), for the report and `import_log`.
    pub errors: Vec<String>,
}

impl ImportStats {
    fn problem(&mut self, msg: String) {
        if self.errors.len() < 100 {
            self.errors.push(msg);
        }
    }
}

/// Inserts one lead and what hangs off it, inside a savepoint.
fn insert_lead(
    conn: &mut SqliteConnection,
    d: &DumpLead,
    stats: &mut ImportStats,
) -> Result<(), AppError> {
    let exists: i64 = leads::table
        .filter(leads::id.eq(&d.id))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        stats.skipped += 1;
        return Ok(());
    }
    let result = conn.transaction(|c| -> Result<(), AppError> {
        d.check_text()?;
        let lead = d.to_lead();
        diesel::insert_into(leads::table).values(&lead).execute(c)?;
        for e in &d.events {
            diesel::insert_into(lead_events::table)
                .values((
                    lead_events::lead_id.eq(&d.id),
                    lead_events::kind.eq(&e.kind),
                    lead_events::actor.eq(&e.actor),
                    lead_events::changes.eq(text_json(&e.changes)),
                    lead_events::message.eq(&e.message),
                    lead_events::at.eq(e.at.naive_utc()),
                ))
                .execute(c)?;
        }
        for e in &d.enrichments {
            diesel::insert_into(enrichments::table)
                .values((
                    enrichments::lead_id.eq(&d.id),
                    enrichments::provider.eq(&e.provider),
                    enrichments::data.eq(text_json(&e.data)),
                    enrichments::confidence.eq(e.confidence),
                    enrichments::at.eq(e.at.naive_utc()),
                ))
                .execute(c)?;
        }
        for m in &d.campaigns {
            let row = CampaignLead {
                campaign_id: m.campaign_id.clone(),
                lead_id: d.id.clone(),
                subject: m.subject.clone(),
                body: m.body.clone(),
                status: m.status.clone(),
                sent_at: m.sent_at.map(|t| t.naive_utc()),
                replied_at: m.replied_at.map(|t| t.naive_utc()),
                created_at: m.created_at.naive_utc(),
                updated_at: m.updated_at.naive_utc(),
            };
            diesel::insert_into(campaign_leads::table)
                .values(&row)
                .execute(c)?;
        }
        if let Some(o) = &d.outbox {
            let row = OutboxRow {
                lead_id: d.id.clone(),
                operation: o.operation.clone(),
                fields: text_json(&o.fields),
                seq: o.seq,
                attempts: o.attempts,
                next_attempt_at: o.next_attempt_at.naive_utc(),
                last_error: o.last_error.clone(),
                state: o.state.clone(),
                created_at: o.created_at.naive_utc(),
                updated_at: o.updated_at.naive_utc(),
            };
            diesel::insert_into(outbox::table).values(&row).execute(c)?;
        }
        // The events went in directly, not through `history::record`.
        crate::leads::stays::refresh(c, &d.id)?;
        Ok(())
    });
    match result {
        Ok(()) => stats.imported += 1,
        Err(e) => {
            stats.failed += 1;
            let why = match &e {
                AppError::Conflict(m) => m.clone(),
                other => other.to_string(),
            };
            stats.problem(format!("lead {}: {why}", d.id));
        }
    }
    Ok(())
}

/// Inserts the campaigns that are new; one whose texts break the character rule is skipped (and
/// its memberships dropped as dangling), with the reason among the problems.
fn insert_campaigns(
    conn: &mut SqliteConnection,
    list: &[DumpCampaign],
    stats: &mut ImportStats,
) -> Result<(), AppError> {
    for c in list {
        let checked =
            crate::leads::validate::chars("name", &c.name, Lines::Single).and_then(|()| {
                c.description.as_deref().map_or(Ok(()), |d| {
                    crate::leads::validate::chars("description", d, Lines::Multi)
                })
            });
        if let Err(e) = checked {
            stats.problem(format!("campaign {}: {e}; skipped", c.id));
            continue;
        }
        let n = diesel::insert_or_ignore_into(campaigns::table)
            .values(&Campaign {
                id: c.id.clone(),
                name: c.name.clone(),
                description: c.description.clone(),
                created_at: c.created_at.naive_utc(),
                updated_at: c.updated_at.naive_utc(),
            })
            .execute(conn)?;
        stats.campaigns += n as u64;
    }
    Ok(())
}

mod reader {
    //! The streaming reader: a serde visitor that stores each lead as soon as it is parsed.

    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use super::*;

    pub struct DumpSeed<'a> {
        pub conn: &'a mut SqliteConnection,
        pub stats: &'a mut ImportStats,
    }

    fn db<E: de::Error>(e: AppError) -> E {
        E::custom(format!("database: {e}"))
    }

    impl<'de> DeserializeSeed<'de> for DumpSeed<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for DumpSeed<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a leadcache dump object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut format_ok = false;
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "format" => {
                        let f: String = map.next_value()?;
                        if f != FORMAT {
                            return Err(de::Error::custom(format!(
                                "not a leadcache dump (format {})",
                                quote(&f)
                            )));
                        }
                        format_ok = true;
                    }
                    "version" => {
                        let v: u32 = map.next_value()?;
                        if v > VERSION {
                            return Err(de::Error::custom(format!(
                                "dump version {v} is newer than this leadcache reads ({VERSION}); upgrade first"
                            )));
                        }
                    }
                    "leads" | "campaigns" if !format_ok => {
                        return Err(de::Error::custom(
                            "not a leadcache dump (no format key before the data)",
                        ));
                    }
                    "leads" => map.next_value_seed(Leads {
                        conn: &mut *self.conn,
                        stats: &mut *self.stats,
                    })?,
                    "campaigns" => {
                        let list: Vec<DumpCampaign> = map.next_value()?;
                        insert_campaigns(self.conn, &list, self.stats).map_err(db)?;
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            if !format_ok {
                return Err(de::Error::custom("not a leadcache dump (no format key)"));
            }
            Ok(())
        }
    }

    struct Leads<'a> {
        conn: &'a mut SqliteConnection,
        stats: &'a mut ImportStats,
    }

    impl<'de> DeserializeSeed<'de> for Leads<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Leads<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of leads")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(lead) = seq.next_element::<DumpLead>()? {
                insert_lead(self.conn, &lead, self.stats).map_err(db)?;
            }
            Ok(())
        }
    }
}

/// Imports the dump `file` in one transaction and records it in `import_log`.
pub fn import(conn: &mut SqliteConnection, file: &Path) -> Result<ImportStats, AppError> {
    let started = crate::time::now();
    let reader = std::fs::File::open(file).map_err(|e| {
        AppError::validation("file", format!("cannot open {}: {e}", file.display()))
    })?;
    let reader = std::io::BufReader::with_capacity(256 * 1024, reader);
    let mut stats = ImportStats::default();
    let outcome = conn.immediate_transaction(|c| -> Result<(), AppError> {
        // Memberships may come before their campaigns in the file: check references at commit.
        c.batch_execute("PRAGMA defer_foreign_keys = ON")?;
        let rows: i64 = leads::table.count().get_result(c)?;
        crate::leads::bulk::with_deferred_upkeep(c, rows < DEFER_UPKEEP_BELOW, |c| {
            let mut de = serde_json::Deserializer::from_reader(reader);
            serde::de::DeserializeSeed::deserialize(
                reader::DumpSeed {
                    conn: c,
                    stats: &mut stats,
                },
                &mut de,
            )
            .and_then(|()| de.end())
            .map_err(|e| AppError::validation("file", format!("{}: {e}", file.display())))?;
            let dangling = diesel::delete(
                campaign_leads::table
                    .filter(campaign_leads::campaign_id.ne_all(campaigns::table.select(campaigns::id))),
            )
            .execute(c)?;
            if dangling > 0 {
                stats.problem(format!(
                    "{dangling} campaign membership(s) named a campaign missing from the dump; dropped"
                ));
            }
            Ok(())
        })
    });
    let (status, errors) = match &outcome {
        Ok(()) => ("done", stats.errors.clone()),
        Err(e) => ("failed", vec![e.to_string()]),
    };
    diesel::insert_into(import_log::table)
        .values((
            import_log::file.eq(file.to_string_lossy().into_owned()),
            import_log::started_at.eq(started),
            import_log::finished_at.eq(crate::time::now()),
            import_log::imported.eq(if outcome.is_ok() {
                stats.imported as i32
            } else {
                0
            }),
            import_log::merged.eq(0),
            import_log::failed.eq(stats.failed as i32),
            import_log::status.eq(status),
            import_log::dry_run.eq(false),
            import_log::errors.eq(serde_json::to_string(&errors)?),
        ))
        .execute(conn)?;
    outcome.map(|()| stats)
}
