//! The lead write paths. Each function runs inside the caller's (immediate) transaction and
//! writes the lead, its history event(s) and its outbox row together, so they land or fail as one.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde_json::{Map, Value};

use crate::db::models::{Enrichment, Lead, LeadEvent, NewEnrichment};
use crate::db::schema::{enrichments, leads};
use crate::error::AppError;
use crate::leads::history::{self, kind};
use crate::leads::outbox::{self, Op};
use crate::leads::{fields, keys, validate};

/// Who writes, and how writes are to be synced.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// The token name, `airtable`, `system`, or `local` when the server is open.
    pub actor: String,
    /// Airtable is configured: changes are `pending` (else `local`, kept in the outbox for later).
    pub sync_enabled: bool,
    /// Statuses accepted from the API, in pipeline order.
    pub statuses: Vec<String>,
    /// How long a delete waits in the outbox before a push sends it (`SYNC_DELETE_GRACE`).
    pub delete_grace: std::time::Duration,
}

impl WriteCtx {
    fn pending_state(&self) -> &'static str {
        if self.sync_enabled {
            "pending"
        } else {
            "local"
        }
    }
}

/// What a write did, for subscribers (`leadChanged`).
#[derive(Debug, Clone)]
pub struct Written {
    pub lead: Lead,
    pub kind: ChangeKind,
    pub changed_fields: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

/// Whether an id looks like an Airtable record id (`rec` + 14 characters).
pub fn is_airtable_id(id: &str) -> bool {
    id.len() == 17 && id.starts_with("rec") && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Finds a lead by local id or Airtable record id.
pub fn find(conn: &mut SqliteConnection, id: &str) -> Result<Option<Lead>, AppError> {
    let q = leads::table.select(Lead::as_select());
    let found = if is_airtable_id(id) {
        q.filter(leads::airtable_id.eq(id)).first(conn).optional()?
    } else {
        q.filter(leads::id.eq(id)).first(conn).optional()?
    };
    Ok(found)
}

pub fn get(conn: &mut SqliteConnection, id: &str) -> Result<Lead, AppError> {
    find(conn, id)?.ok_or_else(|| AppError::not_found(format!("lead {id}")))
}

/// A lead with nothing set, as a base for creates and pulls.
pub fn blank(id: String, now: NaiveDateTime) -> Lead {
    Lead {
        id,
        airtable_id: None,
        full_name: String::new(),
        email: None,
        company: None,
        title: None,
        linkedin_url: None,
        website: None,
        phone: None,
        location: None,
        industry: None,
        company_size: None,
        status: "new".into(),
        source: None,
        score: None,
        verified: false,
        enriched: false,
        needs_enrichment: false,
        scraped_at: None,
        enriched_at: None,
        contacted_at: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        version: 1,
        extra: "{}".into(),
        remote_fields: None,
        remote_modified_at: None,
        synced_at: None,
        sync_state: "local".into(),
        email_key: None,
        linkedin_key: None,
        name_company_key: None,
        company_key: None,
    }
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Builds (does not store) a lead from validated `changes`. `full_name` is required.
pub fn build(
    ctx: &WriteCtx,
    changes: &Map<String, Value>,
    now: NaiveDateTime,
) -> Result<Lead, AppError> {
    if !changes.contains_key("full_name") {
        return Err(AppError::validation("full_name", "is required"));
    }
    let mut lead = blank(new_id(), now);
    validate::apply(&mut lead, changes, &ctx.statuses)?;
    keys::apply(&mut lead);
    lead.sync_state = ctx.pending_state().into();
    Ok(lead)
}

/// The changed-field names the outbox records for a diff (`extra` keys as `extra.<name>`).
fn outbox_fields(changes: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (field, change) in changes {
        if field == "extra" {
            let (old, new) = match change {
                Value::Array(pair) if pair.len() == 2 => (&pair[0], &pair[1]),
                _ => continue,
            };
            let empty = Map::new();
            let (old, new) = (
                old.as_object().unwrap_or(&empty),
                new.as_object().unwrap_or(&empty),
            );
            for k in old.keys().chain(new.keys()) {
                let name = format!("extra.{k}");
                if old.get(k) != new.get(k) && !out.contains(&name) {
                    out.push(name);
                }
            }
        } else {
            out.push(field.clone());
        }
    }
    out
}

/// Stores a lead built by [`build`], with its `created` event, first stay and outbox row: the
/// rows of [`insert_many`] of this one lead, whose single-row statements `db::batch` keeps
/// prepared like any other size.
pub fn insert(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    lead: Lead,
) -> Result<Written, AppError> {
    let changes = fields::created(&lead);
    insert_many(
        conn,
        ctx,
        std::slice::from_ref(&lead),
        std::slice::from_ref(&changes),
    )?;
    Ok(created(lead, &changes))
}

/// What [`insert`] returns for `lead`, without storing it (`leads::bulk` stores it later with
/// [`insert_many`]). `changes` is [`fields::created`] of the lead.
pub fn created(lead: Lead, changes: &Map<String, Value>) -> Written {
    let changed = outbox_fields(changes);
    Written {
        lead,
        kind: ChangeKind::Created,
        changed_fields: changed,
    }
}

/// [`insert`] for many leads at once, in multi-row INSERTs: the same rows (lead, `created` event,
/// first stay, outbox create) as inserting each, a few statements per `db::batch::ROWS` leads. None of the
/// leads may be stored already. `changes[i]` is [`fields::created`] of `new[i]`.
pub fn insert_many(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    new: &[Lead],
    changes: &[Map<String, Value>],
) -> Result<(), AppError> {
    debug_assert_eq!(new.len(), changes.len());
    crate::db::batch::insert::<_, Lead>(conn, leads::table, new)?;
    let events: Vec<history::Event<'_>> = new
        .iter()
        .zip(changes)
        .map(|(lead, changes)| history::Event {
            lead_id: &lead.id,
            kind: kind::CREATED,
            changes,
            message: None,
            at: lead.created_at,
        })
        .collect();
    history::record_many(conn, &ctx.actor, &events)?;
    let creates: Vec<(&str, Vec<String>, NaiveDateTime)> = new
        .iter()
        .zip(changes)
        .map(|(lead, changes)| (lead.id.as_str(), outbox_fields(changes), lead.created_at))
        .collect();
    outbox::record_creates(conn, &creates)
}

/// Validates and stores a new lead.
pub fn create(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    changes: &Map<String, Value>,
) -> Result<Written, AppError> {
    let lead = build(ctx, changes, crate::time::now())?;
    insert(conn, ctx, lead)
}

/// Writes `new` over `old` (same id), bumping the version, recording history of `event_kind` and
/// queueing the changed fields. Returns `None` when nothing changed.
pub fn save_change(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    old: &Lead,
    mut new: Lead,
    event_kind: &str,
) -> Result<Option<Written>, AppError> {
    keys::apply(&mut new);
    let changes = fields::diff(old, &new);
    if changes.is_empty() {
        return Ok(None);
    }
    let now = crate::time::now();
    new.version = old.version + 1;
    new.updated_at = now;
    if new.sync_state != "conflict" {
        new.sync_state = ctx.pending_state().into();
    }
    let n = diesel::update(
        leads::table
            .filter(leads::id.eq(&old.id))
            .filter(leads::version.eq(old.version)),
    )
    .set(&new)
    .execute(conn)?;
    if n != 1 {
        return Err(AppError::Conflict(format!(
            "lead {} changed meanwhile; read it again",
            old.id
        )));
    }
    let changed = outbox_fields(&changes);
    history::record_change(conn, &new.id, event_kind, &ctx.actor, changes, now)?;
    outbox::record(conn, &new.id, Op::Update, &changed, now)?;
    Ok(Some(Written {
        lead: new,
        kind: ChangeKind::Updated,
        changed_fields: changed,
    }))
}

fn live(conn: &mut SqliteConnection, id: &str) -> Result<Lead, AppError> {
    let lead = get(conn, id)?;
    if lead.deleted_at.is_some() {
        return Err(AppError::Conflict(format!(
            "lead {id} is deleted; restore it first"
        )));
    }
    Ok(lead)
}

/// Applies a validated patch. `expected_version` makes the write fail when the lead moved on.
pub fn update(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    id: &str,
    patch: &Map<String, Value>,
    expected_version: Option<i32>,
) -> Result<Written, AppError> {
    let old = live(conn, id)?;
    if let Some(v) = expected_version
        && v != old.version
    {
        return Err(AppError::Conflict(format!(
            "lead {id} is at version {}, not {v}; read it again and retry",
            old.version
        )));
    }
    let mut new = old.clone();
    validate::apply(&mut new, patch, &ctx.statuses)?;
    Ok(
        save_change(conn, ctx, &old, new, kind::UPDATED)?.unwrap_or(Written {
            lead: old,
            kind: ChangeKind::Updated,
            changed_fields: vec![],
        }),
    )
}

/// Soft delete.
pub fn delete(conn: &mut SqliteConnection, ctx: &WriteCtx, id: &str) -> Result<Written, AppError> {
    let old = live(conn, id)?;
    let now = crate::time::now();
    let mut new = old.clone();
    new.deleted_at = Some(now);
    new.updated_at = now;
    new.version += 1;
    new.sync_state = ctx.pending_state().into();
    diesel::update(leads::table.filter(leads::id.eq(&old.id)))
        .set(&new)
        .execute(conn)?;
    history::record(
        conn,
        &new.id,
        kind::DELETED,
        &ctx.actor,
        &Map::new(),
        None,
        now,
    )?;
    outbox::record_delete(conn, &new.id, now, ctx.delete_grace)?;
    Ok(Written {
        lead: new,
        kind: ChangeKind::Deleted,
        changed_fields: vec![],
    })
}

/// Undoes a soft delete. Inside the delete's grace (its outbox row is still a delete that was
/// never pushed), the delete is cancelled: the outbox row goes back to the changes queued before
/// it, or away, and nothing reaches Airtable for the delete. After it, the record is gone from
/// Airtable and the lead is queued as a create (Airtable gives it a new record id).
pub fn restore(conn: &mut SqliteConnection, ctx: &WriteCtx, id: &str) -> Result<Written, AppError> {
    let old = get(conn, id)?;
    if old.deleted_at.is_none() {
        return Err(AppError::Conflict(format!("lead {id} is not deleted")));
    }
    let now = crate::time::now();
    let mut new = old.clone();
    new.deleted_at = None;
    new.updated_at = now;
    new.version += 1;
    let queued = outbox::cancel_delete(conn, &new.id, new.airtable_id.is_some(), now)?;
    let (message, changed) = match queued {
        outbox::Cancelled::Nothing => {
            // The record in Airtable was never touched: the lead is as synced as before.
            if new.sync_state != "conflict" {
                new.sync_state = if ctx.sync_enabled { "synced" } else { "local" }.into();
            }
            (
                "the delete was cancelled before it reached Airtable",
                vec![],
            )
        }
        outbox::Cancelled::Back(fields) => {
            new.sync_state = ctx.pending_state().into();
            (
                "the delete was cancelled before it reached Airtable",
                fields,
            )
        }
        outbox::Cancelled::NotQueued => {
            let all: Vec<String> = fields::SYNCED.iter().map(|f| f.to_string()).collect();
            let op = if new.airtable_id.is_some() {
                Op::Update
            } else {
                Op::Create
            };
            outbox::record(conn, &new.id, op, &all, now)?;
            new.sync_state = ctx.pending_state().into();
            let message = if op == Op::Create && old.synced_at.is_some() {
                "the delete had reached Airtable: the lead will be created there again, as a new record"
            } else {
                "every field will be sent to Airtable again"
            };
            (message, all)
        }
    };
    diesel::update(leads::table.filter(leads::id.eq(&old.id)))
        .set(&new)
        .execute(conn)?;
    history::record(
        conn,
        &new.id,
        kind::RESTORED,
        &ctx.actor,
        &Map::new(),
        Some(message),
        now,
    )?;
    Ok(Written {
        lead: new,
        kind: ChangeKind::Created,
        changed_fields: changed,
    })
}

/// Adds a note to a lead's history (notes stay local: Airtable has no field for them).
pub fn add_note(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    lead_id: &str,
    text: &str,
) -> Result<LeadEvent, AppError> {
    let text = validate::note(text)?;
    let lead = get(conn, lead_id)?;
    history::record(
        conn,
        &lead.id,
        kind::NOTE,
        &ctx.actor,
        &Map::new(),
        Some(text),
        crate::time::now(),
    )
}

/// Stores enrichment data and marks the lead enriched.
pub fn add_enrichment(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    lead_id: &str,
    provider: &str,
    data: &Value,
    confidence: Option<f64>,
) -> Result<(Enrichment, Option<Written>), AppError> {
    let provider = provider.trim();
    if provider.is_empty() || provider.len() > 100 {
        return Err(AppError::validation(
            "provider",
            "must be 1 to 100 characters",
        ));
    }
    validate::chars("provider", provider, validate::Lines::Single)?;
    if !data.is_object() {
        return Err(AppError::validation("data", "expected a JSON object"));
    }
    validate::json_chars("data", data)?;
    let encoded = serde_json::to_string(data)?;
    if encoded.len() > 256 * 1024 {
        return Err(AppError::validation("data", "is larger than 256 KiB"));
    }
    if let Some(c) = confidence
        && !(0.0..=1.0).contains(&c)
    {
        return Err(AppError::validation(
            "confidence",
            "must be between 0 and 1",
        ));
    }
    let old = live(conn, lead_id)?;
    let now = crate::time::now();
    let row = NewEnrichment {
        lead_id: &old.id,
        provider,
        data: encoded,
        confidence,
        at: now,
    };
    let enrichment = diesel::insert_into(enrichments::table)
        .values(&row)
        .returning(Enrichment::as_returning())
        .get_result(conn)?;
    let mut new = old.clone();
    new.enriched = true;
    new.enriched_at = Some(now);
    new.needs_enrichment = false;
    let written = save_change(conn, ctx, &old, new, kind::ENRICHED)?;
    if written.is_none() {
        history::record(
            conn,
            &old.id,
            kind::ENRICHED,
            &ctx.actor,
            &Map::new(),
            Some(provider),
            now,
        )?;
    }
    Ok((enrichment, written))
}

/// Enrichments of many leads, newest first.
pub fn enrichments_for(
    conn: &mut SqliteConnection,
    ids: &[String],
) -> Result<Vec<Enrichment>, AppError> {
    Ok(enrichments::table
        .filter(enrichments::lead_id.eq_any(ids))
        .order((enrichments::at.desc(), enrichments::id.desc()))
        .select(Enrichment::as_select())
        .load(conn)?)
}
