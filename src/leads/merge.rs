//! Merging duplicates: a new lead into the existing one it duplicates (`createLead`,
//! `createLeads`, imports), and one stored lead into another by hand (`mergeLeads`).
//!
//! The field rule is the same both ways: the kept lead keeps every value it has; a field it has
//! empty (null, or a flag that is off) takes the other lead's value; a value that differs is not
//! applied but kept in a `merged` event. Emails and LinkedIn URLs that normalise to the same key
//! (`Jane@X.com` / `jane@x.com`) do not count as differing. `extra` merges key by key the same way.
//!
//! History: the filled fields go through [`store::save_change`] (a `merged` event
//! `{field: [old, new]}`, a version bump and an outbox update, so Airtable gets them); then one more
//! `merged` event records the merge itself: a message naming the rule and the other lead, and
//! `changes` `{field: [kept, incoming]}` for the values that differed (the incoming values are not
//! lost).
//!
//! **A merge that changes nothing writes nothing**: no event, no outbox row, no version bump. So
//! the same file imported twice leaves the database as the first import did: the second merge
//! fills nothing, and its differing values are those an earlier `merged` event of the lead
//! already holds (that event is not written again). A note already on a lead is not added twice
//! either (`leads::bulk::Placer::note`).
//!
//! **The caller decides** with [`OnDuplicate`] (`onDuplicate` in GraphQL, `--on-duplicate` in
//! `import`): merge (the default), create the lead anyway, or refuse it with `CONFLICT`.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde_json::{Map, Value};

use crate::db::models::Lead;
use crate::db::schema::{campaign_leads, enrichments, lead_events};
use crate::error::AppError;
use crate::leads::dedup::{self, Match, Rule};
use crate::leads::history::{self, kind};
use crate::leads::{WriteCtx, Written, fields, keys, store};

fn is_empty(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false))
}

/// Equal for merge purposes: emails and LinkedIn URLs compare by their normalised key.
fn same(field: &str, a: &Value, b: &Value) -> bool {
    let (Value::String(x), Value::String(y)) = (a, b) else {
        return a == b;
    };
    match field {
        "email" => keys::email_key(x) == keys::email_key(y),
        "linkedin_url" => keys::linkedin_key(x) == keys::linkedin_key(y),
        _ => x == y,
    }
}

/// Applies the merge rule: returns the kept lead with empty fields filled from `other`, and the
/// differing values `{field: [kept, other]}`. `offered` says which fields of `other` count (a
/// create offers the fields its input set; a stored lead offers all).
pub fn combine(
    kept: &Lead,
    other: &Lead,
    offered: impl Fn(&str) -> bool,
) -> Result<(Lead, Map<String, Value>), AppError> {
    let mut new = kept.clone();
    let mut differing = Map::new();
    for f in fields::SYNCED {
        if !offered(f) {
            continue;
        }
        let (Some(mine), Some(theirs)) = (fields::get(kept, f), fields::get(other, f)) else {
            continue;
        };
        if is_empty(&theirs) || same(f, &mine, &theirs) {
            continue;
        }
        if is_empty(&mine) {
            fields::set(&mut new, f, &theirs)?;
        } else {
            differing.insert(f.to_string(), Value::Array(vec![mine, theirs]));
        }
    }
    if offered("extra") {
        let mut extra: Map<String, Value> = serde_json::from_str(&kept.extra).unwrap_or_default();
        let theirs: Map<String, Value> = serde_json::from_str(&other.extra).unwrap_or_default();
        for (k, v) in theirs {
            match extra.get(&k) {
                None | Some(Value::Null) => {
                    extra.insert(k, v);
                }
                Some(mine) if *mine != v => {
                    differing.insert(format!("extra.{k}"), Value::Array(vec![mine.clone(), v]));
                }
                Some(_) => {}
            }
        }
        new.extra = serde_json::to_string(&extra)?;
    }
    Ok((new, differing))
}

/// What to do with a new lead that duplicates a live one (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDuplicate {
    /// Merge it into the existing lead.
    #[default]
    Merge,
    /// Create it anyway, as a lead of its own.
    Create,
    /// Refuse it: nothing is stored, the error names the existing lead and the rule.
    Fail,
}

impl OnDuplicate {
    /// From a command-line value (`merge`, `create`, `fail`; any case).
    pub fn parse(s: &str) -> Option<OnDuplicate> {
        match s.to_ascii_lowercase().as_str() {
            "merge" => Some(OnDuplicate::Merge),
            "create" => Some(OnDuplicate::Create),
            "fail" => Some(OnDuplicate::Fail),
            _ => None,
        }
    }
}

/// The `CONFLICT` error of [`OnDuplicate::Fail`]: names the existing lead and the rule.
pub fn refusal(found: &Match) -> AppError {
    AppError::Conflict(format!(
        "a duplicate of lead {} (matched by {}, score {:.2}); nothing was stored. Pass onDuplicate: \
         MERGE to merge it into that lead, or CREATE to create it anyway",
        found.lead.id,
        found.rule.as_str(),
        found.score
    ))
}

/// Whether `lead` already has a `kind` event with exactly these changes and this message.
fn has_event(
    conn: &mut SqliteConnection,
    lead_id: &str,
    event_kind: &str,
    changes: &Map<String, Value>,
    message: Option<&str>,
) -> Result<bool, AppError> {
    let changes = serde_json::to_string(changes)?;
    let mut query = lead_events::table
        .filter(lead_events::lead_id.eq(lead_id))
        .filter(lead_events::kind.eq(event_kind))
        .filter(lead_events::changes.eq(changes))
        .into_boxed();
    if let Some(message) = message {
        query = query.filter(lead_events::message.eq(message));
    }
    Ok(diesel::select(diesel::dsl::exists(query.select(lead_events::id))).get_result(conn)?)
}

/// Whether `lead` already has a note with exactly this text.
pub fn has_note(conn: &mut SqliteConnection, lead_id: &str, text: &str) -> Result<bool, AppError> {
    has_event(conn, lead_id, kind::NOTE, &Map::new(), Some(text))
}

/// Fills `kept` from `other` and records the merge (see the module doc). Returns the kept lead
/// as written.
fn absorb(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    kept: &Lead,
    other: &Lead,
    offered: impl Fn(&str) -> bool,
    message: &str,
) -> Result<Written, AppError> {
    let (new, differing) = combine(kept, other, offered)?;
    let written = store::save_change(conn, ctx, kept, new, kind::MERGED)?;
    // Nothing filled, and the differing values (if any) are already in the lead's history: the
    // merge changes nothing, so it writes nothing.
    if written.is_none()
        && (differing.is_empty() || has_event(conn, &kept.id, kind::MERGED, &differing, None)?)
    {
        return Ok(Written {
            lead: kept.clone(),
            kind: crate::leads::ChangeKind::Updated,
            changed_fields: vec![],
        });
    }
    let at = written
        .as_ref()
        .map_or_else(crate::time::now, |w| w.lead.updated_at);
    history::record(
        conn,
        &kept.id,
        kind::MERGED,
        &ctx.actor,
        &differing,
        Some(message),
        at,
    )?;
    Ok(written.unwrap_or_else(|| Written {
        lead: kept.clone(),
        kind: crate::leads::ChangeKind::Updated,
        changed_fields: vec![],
    }))
}

/// What creating a lead did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The new lead, or the existing one it was merged into.
    pub written: Written,
    /// Set when the input was a duplicate: the existing lead's id and the rule.
    pub duplicate_of: Option<(String, Rule)>,
}

/// Creates a lead from validated `changes`, or (by `on_duplicate`) merges it into the live lead
/// it duplicates. `origin` describes where it came from for the merge event (`createLead`,
/// `file.json #3`).
pub fn create_or_merge(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    changes: &Map<String, Value>,
    now: chrono::NaiveDateTime,
    origin: &str,
    on_duplicate: OnDuplicate,
) -> Result<Outcome, AppError> {
    let lead = store::build(ctx, changes, now)?;
    place(
        conn,
        ctx,
        lead,
        |f| changes.contains_key(f),
        origin,
        on_duplicate,
    )
}

/// Stores a built lead, or (by `on_duplicate`) merges it into the live lead it duplicates or
/// refuses it.
pub fn place(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    lead: Lead,
    offered: impl Fn(&str) -> bool,
    origin: &str,
    on_duplicate: OnDuplicate,
) -> Result<Outcome, AppError> {
    let found = match on_duplicate {
        OnDuplicate::Create => None,
        OnDuplicate::Merge | OnDuplicate::Fail => dedup::find(conn, &lead)?,
    };
    match found {
        None => Ok(Outcome {
            written: store::insert(conn, ctx, lead)?,
            duplicate_of: None,
        }),
        Some(found) if on_duplicate == OnDuplicate::Fail => Err(refusal(&found)),
        Some(found) => into_match(conn, ctx, found, &lead, offered, origin),
    }
}

/// Merges `lead` (built, not stored) into the stored lead `found` says it duplicates.
pub fn into_match(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    found: Match,
    lead: &Lead,
    offered: impl Fn(&str) -> bool,
    origin: &str,
) -> Result<Outcome, AppError> {
    let Match {
        lead: existing,
        rule,
        score,
    } = found;
    let message = format!(
        "merged a duplicate from {origin} (matched by {}, score {score:.2}); differing incoming values are in changes",
        rule.as_str()
    );
    let written = absorb(conn, ctx, &existing, lead, offered, &message)?;
    Ok(Outcome {
        written,
        duplicate_of: Some((existing.id, rule)),
    })
}

/// `mergeLeads`: merges lead `merge_id` into `keep_id`. The kept lead takes the merged lead's
/// values where it has none; the merged lead's events, enrichments and campaign memberships move
/// to the kept lead; the merged lead is soft-deleted (its outbox row becomes a delete); both get a
/// `merged` event. Returns (kept, merged) as written.
pub fn merge_leads(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    keep_id: &str,
    merge_id: &str,
) -> Result<(Written, Written), AppError> {
    let keep = store::get(conn, keep_id)?;
    let merge = store::get(conn, merge_id)?;
    if keep.id == merge.id {
        return Err(AppError::validation(
            "mergeId",
            "a lead cannot be merged into itself",
        ));
    }
    for (lead, field) in [(&keep, "keepId"), (&merge, "mergeId")] {
        if lead.deleted_at.is_some() {
            return Err(AppError::Conflict(format!(
                "lead {} ({field}) is deleted; restore it first",
                lead.id
            )));
        }
    }
    // Move what belongs to the person first, so the events recorded below stay where they belong.
    diesel::update(lead_events::table.filter(lead_events::lead_id.eq(&merge.id)))
        .set(lead_events::lead_id.eq(&keep.id))
        .execute(conn)?;
    diesel::update(enrichments::table.filter(enrichments::lead_id.eq(&merge.id)))
        .set(enrichments::lead_id.eq(&keep.id))
        .execute(conn)?;
    let kept_campaigns: Vec<String> = campaign_leads::table
        .filter(campaign_leads::lead_id.eq(&keep.id))
        .select(campaign_leads::campaign_id)
        .load(conn)?;
    diesel::delete(
        campaign_leads::table
            .filter(campaign_leads::lead_id.eq(&merge.id))
            .filter(campaign_leads::campaign_id.eq_any(&kept_campaigns)),
    )
    .execute(conn)?;
    diesel::update(campaign_leads::table.filter(campaign_leads::lead_id.eq(&merge.id)))
        .set(campaign_leads::lead_id.eq(&keep.id))
        .execute(conn)?;

    let message = format!(
        "lead {} merged into this one by hand; differing values of it are in changes",
        merge.id
    );
    let kept = absorb(conn, ctx, &keep, &merge, |_| true, &message)?;
    let merged = store::delete(conn, ctx, &merge.id)?;
    history::record(
        conn,
        &merge.id,
        kind::MERGED,
        &ctx.actor,
        &Map::new(),
        Some(&format!("merged into lead {}", keep.id)),
        merged.lead.updated_at,
    )?;
    Ok((kept, merged))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(name: &str) -> Lead {
        let mut l = store::blank("x".into(), crate::time::now());
        l.full_name = name.into();
        l
    }

    #[test]
    fn empty_fields_are_filled_and_differing_ones_kept_aside() {
        let mut kept = lead("Jane Doe");
        kept.email = Some("Jane@Acme.example".into());
        kept.title = Some("CTO".into());
        kept.extra = r#"{"Tag":"a"}"#.into();
        let mut other = lead("Jane Doe");
        other.email = Some("jane@acme.example".into());
        other.title = Some("CEO".into());
        other.phone = Some("+1 555 0100".into());
        other.verified = true;
        other.extra = r#"{"Tag":"b","Tier":1}"#.into();
        let (new, differing) = combine(&kept, &other, |_| true).unwrap();
        assert_eq!(new.title.as_deref(), Some("CTO"));
        assert_eq!(new.phone.as_deref(), Some("+1 555 0100"));
        assert!(new.verified);
        assert_eq!(
            new.email.as_deref(),
            Some("Jane@Acme.example"),
            "same email, other case: kept, not differing"
        );
        assert_eq!(
            differing.get("title"),
            Some(&serde_json::json!(["CTO", "CEO"]))
        );
        assert_eq!(
            differing.get("extra.Tag"),
            Some(&serde_json::json!(["a", "b"]))
        );
        assert!(!differing.contains_key("email"));
        assert_eq!(
            serde_json::from_str::<Value>(&new.extra).unwrap(),
            serde_json::json!({"Tag": "a", "Tier": 1})
        );
        let (_, only_offered) = combine(&kept, &other, |f| f == "phone").unwrap();
        assert!(only_offered.is_empty());
    }
}
