//! Outreach campaigns: a named set of leads, each with its own message and delivery status.
//!
//! Campaigns are local to leadcache (Airtable's lead table has no field for them), so membership
//! changes do not touch a lead's version or the outbox. They do show in the lead's history: adding a
//! lead and every change of its message or status records an `updated` event with empty `changes`
//! and a message (`added to campaign "Q1"`, `campaign "Q1": status draft -> sent`), so the history
//! tells the whole story of a lead without looking like a field change that waits for a push.
//!
//! Member status: `draft` -> `sent` -> `replied`, or `bounced`. `sentAt` is set the first time a
//! member moves to `sent` (or straight to `replied`/`bounced`: both imply it was sent);
//! `repliedAt` the first time it moves to `replied`. Moving back does not clear them.
//!
//! Texts follow the character rule of `leads::validate::chars`: name and subject are single
//! lines; description and body may hold tabs and line breaks (LF or CRLF).

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde_json::Map;

use crate::db::models::{Campaign, CampaignLead};
use crate::db::schema::{campaign_leads, campaigns, leads};
use crate::error::{AppError, quote};
use crate::leads::WriteCtx;
use crate::leads::history::{self, kind};
use crate::leads::validate::{self, Lines};

pub const STATUSES: &[&str] = &["draft", "sent", "replied", "bounced"];
pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 2_000;
pub const MAX_SUBJECT: usize = 500;
pub const MAX_BODY: usize = 50_000;
/// Most leads one `addLeadsToCampaign` call takes.
pub const MAX_ADD: usize = 5_000;

/// A campaign text, trimmed, `None` when blank; characters as `leads::validate::chars`.
fn text(
    field: &str,
    v: Option<&str>,
    max: usize,
    lines: Lines,
) -> Result<Option<String>, AppError> {
    let Some(s) = v.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if s.chars().count() > max {
        return Err(AppError::validation(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    validate::chars(field, s, lines)?;
    Ok(Some(s.to_string()))
}

/// Creates a campaign; names are unique (compared as written, after trimming).
pub fn create(
    conn: &mut SqliteConnection,
    name: &str,
    description: Option<&str>,
) -> Result<Campaign, AppError> {
    let name = text("name", Some(name), MAX_NAME, Lines::Single)?
        .ok_or_else(|| AppError::validation("name", "must not be blank"))?;
    let description = text("description", description, MAX_DESCRIPTION, Lines::Multi)?;
    let taken: i64 = campaigns::table
        .filter(campaigns::name.eq(&name))
        .count()
        .get_result(conn)?;
    if taken > 0 {
        return Err(AppError::Conflict(format!(
            "a campaign named {} exists already",
            quote(&name)
        )));
    }
    let now = crate::time::now();
    let row = Campaign {
        id: crate::leads::store::new_id(),
        name,
        description,
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(campaigns::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}

pub fn get(conn: &mut SqliteConnection, id: &str) -> Result<Campaign, AppError> {
    campaigns::table
        .find(id)
        .select(Campaign::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("campaign {id}")))
}

pub fn list(conn: &mut SqliteConnection) -> Result<Vec<Campaign>, AppError> {
    Ok(campaigns::table
        .order(campaigns::created_at.desc())
        .select(Campaign::as_select())
        .load(conn)?)
}

/// Adds live leads to a campaign as drafts. Leads already in it are left as they are; an unknown
/// or deleted lead fails the whole call (NOT_FOUND / CONFLICT naming it) and nothing is added.
/// Returns how many were added.
pub fn add_leads(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    campaign_id: &str,
    lead_ids: &[String],
) -> Result<usize, AppError> {
    if lead_ids.len() > MAX_ADD {
        return Err(AppError::Limit(format!(
            "at most {MAX_ADD} leads a call; got {}",
            lead_ids.len()
        )));
    }
    let campaign = get(conn, campaign_id)?;
    let mut ids: Vec<String> = Vec::with_capacity(lead_ids.len());
    for id in lead_ids {
        let lead = crate::leads::store::get(conn, id)?;
        if lead.deleted_at.is_some() {
            return Err(AppError::Conflict(format!(
                "lead {id} is deleted; restore it first"
            )));
        }
        if !ids.contains(&lead.id) {
            ids.push(lead.id);
        }
    }
    let members: Vec<String> = campaign_leads::table
        .filter(campaign_leads::campaign_id.eq(&campaign.id))
        .filter(campaign_leads::lead_id.eq_any(&ids))
        .select(campaign_leads::lead_id)
        .load(conn)?;
    let now = crate::time::now();
    let message = format!("added to campaign {}", quote(&campaign.name));
    let mut added = 0;
    for id in ids.iter().filter(|id| !members.contains(id)) {
        let row = CampaignLead {
            campaign_id: campaign.id.clone(),
            lead_id: id.clone(),
            subject: None,
            body: None,
            status: "draft".into(),
            sent_at: None,
            replied_at: None,
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(campaign_leads::table)
            .values(&row)
            .execute(conn)?;
        history::record(
            conn,
            id,
            kind::UPDATED,
            &ctx.actor,
            &Map::new(),
            Some(&message),
            now,
        )?;
        added += 1;
    }
    if added > 0 {
        diesel::update(campaigns::table.find(&campaign.id))
            .set(campaigns::updated_at.eq(now))
            .execute(conn)?;
    }
    Ok(added)
}

/// A change to one member: `None` leaves a field; `Some(None)` clears subject or body.
#[derive(Debug, Clone, Default)]
pub struct MemberPatch {
    pub subject: Option<Option<String>>,
    pub body: Option<Option<String>>,
    pub status: Option<String>,
}

/// Changes a member's message or status (see the module doc for the times).
pub fn update_member(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    campaign_id: &str,
    lead_id: &str,
    patch: &MemberPatch,
) -> Result<(Campaign, CampaignLead), AppError> {
    let campaign = get(conn, campaign_id)?;
    let lead = crate::leads::store::get(conn, lead_id)?;
    let mut row: CampaignLead = campaign_leads::table
        .find((&campaign.id, &lead.id))
        .select(CampaignLead::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("lead {lead_id} in campaign {campaign_id}")))?;
    let old = row.clone();
    if let Some(s) = &patch.subject {
        row.subject = text("subject", s.as_deref(), MAX_SUBJECT, Lines::Single)?;
    }
    if let Some(b) = &patch.body {
        row.body = text("body", b.as_deref(), MAX_BODY, Lines::Multi)?;
    }
    let now = crate::time::now();
    if let Some(status) = &patch.status {
        let status = status.trim().to_ascii_lowercase();
        if !STATUSES.contains(&status.as_str()) {
            return Err(AppError::validation(
                "status",
                format!(
                    "{} is not a campaign status ({})",
                    quote(&status),
                    STATUSES.join(", ")
                ),
            ));
        }
        if status != "draft" && row.sent_at.is_none() {
            row.sent_at = Some(now);
        }
        if status == "replied" && row.replied_at.is_none() {
            row.replied_at = Some(now);
        }
        row.status = status;
    }
    if row == old {
        return Ok((campaign, row));
    }
    row.updated_at = now;
    diesel::update(campaign_leads::table.find((&campaign.id, &lead.id)))
        .set(&row)
        .execute(conn)?;
    let mut what = Vec::new();
    if row.status != old.status {
        what.push(format!("status {} -> {}", old.status, row.status));
    }
    if row.subject != old.subject || row.body != old.body {
        what.push("message edited".to_string());
    }
    let message = format!("campaign {}: {}", quote(&campaign.name), what.join(", "));
    history::record(
        conn,
        &lead.id,
        kind::UPDATED,
        &ctx.actor,
        &Map::new(),
        Some(&message),
        now,
    )?;
    Ok((campaign, row))
}

/// Members per status of one campaign: (total, draft, sent, replied, bounced).
pub fn counts(conn: &mut SqliteConnection, campaign_id: &str) -> Result<[i64; 5], AppError> {
    let rows: Vec<(String, i64)> = campaign_leads::table
        .filter(campaign_leads::campaign_id.eq(campaign_id))
        .group_by(campaign_leads::status)
        .select((campaign_leads::status, diesel::dsl::count_star()))
        .load(conn)?;
    let get = |s: &str| rows.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    let total = rows.iter().map(|(_, n)| n).sum();
    Ok([
        total,
        get("draft"),
        get("sent"),
        get("replied"),
        get("bounced"),
    ])
}

/// The live leads of a campaign, in the order they were added.
pub fn leads(
    conn: &mut SqliteConnection,
    campaign_id: &str,
    first: i64,
) -> Result<Vec<crate::db::models::Lead>, AppError> {
    Ok(campaign_leads::table
        .inner_join(leads::table)
        .filter(campaign_leads::campaign_id.eq(campaign_id))
        .filter(leads::deleted_at.is_null())
        .order((campaign_leads::created_at, leads::rid))
        .select(crate::db::models::Lead::as_select())
        .limit(first)
        .load(conn)?)
}
