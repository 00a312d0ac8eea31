//! Applying records pulled from Airtable to the local store: a three-way merge, field by field.
//!
//! Every lead keeps `remote_fields`, the record as last seen in Airtable (normalised to local
//! field names, `extra.<Airtable name>` for unmapped fields). That is the merge base. For each
//! field, with `base`, `local` and `remote` values:
//!
//! - changed in Airtable only (`remote != base`, the field not pending locally): take Airtable's;
//! - changed locally only (pending in the outbox): keep local; the push sends it;
//! - changed on both sides to the same value: nothing to do;
//! - changed on both sides differently: a **conflict**, stored in `sync_conflicts` (base, local,
//!   remote) and settled by `CONFLICT_POLICY`: `airtable-wins` takes Airtable's value and drops
//!   the field from the outbox; `last-modified-wins` compares the time of the local change (the
//!   outbox row's `updated_at`) with Airtable's modified time. Either way the conflict stays open,
//!   and the lead's `sync_state` is `conflict`, until a person reviews it (`resolveConflict`).
//!
//! Values are compared after normalising both sides through a lead (so `42` and `42.0`, or two
//! spellings of one time, are equal). Airtable's values are stored as they come, without the
//! validation API writes get: Airtable is the source of truth.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde_json::{Map, Value};

use crate::airtable::RemoteLead;
use crate::config::ConflictPolicy;
use crate::db::models::{Lead, OutboxRow};
use crate::db::schema::{leads, outbox, sync_conflicts};
use crate::error::AppError;
use crate::leads::history::{self, kind};
use crate::leads::{ChangeKind, Written, fields, keys, store};

pub const ACTOR: &str = "airtable";

/// A flat map of a lead's synced values: local field names and `extra.<name>`.
pub type Snapshot = BTreeMap<String, Value>;

/// Sets a pulled value, leniently: a value that does not fit the field is dropped (null), an
/// empty name stays empty.
fn set_remote(lead: &mut Lead, field: &str, v: &Value) {
    if field == "full_name" && v.is_null() {
        lead.full_name = String::new();
        return;
    }
    if let Err(e) = fields::set(lead, field, v) {
        tracing::debug!(field, error = %e, "an Airtable value does not fit its local field; stored empty");
        let _ = fields::set(lead, field, &Value::Null);
    }
}

fn extra_map(lead: &Lead) -> Map<String, Value> {
    serde_json::from_str(&lead.extra).unwrap_or_default()
}

/// The synced values of a lead as a flat snapshot.
pub fn local_snapshot(lead: &Lead) -> Snapshot {
    let mut s: Snapshot = fields::snapshot(lead).into_iter().collect();
    for (k, v) in extra_map(lead) {
        s.insert(format!("extra.{k}"), v);
    }
    s
}

/// A remote record normalised to a snapshot (through a scratch lead, so values compare equal
/// to local ones).
pub fn remote_snapshot(remote: &RemoteLead) -> Snapshot {
    let mut scratch = store::blank(String::new(), crate::time::now());
    for f in fields::SYNCED {
        set_remote(
            &mut scratch,
            f,
            remote.values.get(*f).unwrap_or(&Value::Null),
        );
    }
    let mut s: Snapshot = fields::snapshot(&scratch).into_iter().collect();
    for (k, v) in &remote.extra {
        if !v.is_null() {
            s.insert(format!("extra.{k}"), v.clone());
        }
    }
    s
}

fn parse_snapshot(s: Option<&str>) -> Option<Snapshot> {
    s.and_then(|s| serde_json::from_str(s).ok())
}

/// Writes one value of a snapshot key (a local field or `extra.<name>`) onto a lead, leniently.
pub(crate) fn put(lead: &mut Lead, key: &str, v: &Value) {
    if let Some(name) = key.strip_prefix("extra.") {
        let mut extra = extra_map(lead);
        if v.is_null() {
            extra.remove(name);
        } else {
            extra.insert(name.to_string(), v.clone());
        }
        lead.extra = serde_json::to_string(&extra).unwrap_or_else(|_| "{}".into());
    } else {
        set_remote(lead, key, v);
    }
}

/// What applying one record did.
#[derive(Debug, Default)]
pub struct Applied {
    pub written: Option<Written>,
    pub created: bool,
    pub updated: bool,
    pub conflicts: i32,
}

/// Merge settings.
#[derive(Debug, Clone, Copy)]
pub struct MergeCtx {
    pub policy: ConflictPolicy,
    pub now: NaiveDateTime,
}

fn find_for(conn: &mut SqliteConnection, remote: &RemoteLead) -> Result<Option<Lead>, AppError> {
    let by_airtable: Option<Lead> = leads::table
        .filter(leads::airtable_id.eq(&remote.airtable_id))
        .select(Lead::as_select())
        .first(conn)
        .optional()?;
    if by_airtable.is_some() {
        return Ok(by_airtable);
    }
    // A lead we created whose create answer was lost: Airtable has our id in the Lead ID field.
    match &remote.lead_id {
        Some(id) => Ok(leads::table
            .filter(leads::id.eq(id))
            .filter(leads::airtable_id.is_null())
            .select(Lead::as_select())
            .first(conn)
            .optional()?),
        None => Ok(None),
    }
}

/// Applies one pulled record (inside the caller's transaction).
pub fn apply_remote(
    conn: &mut SqliteConnection,
    ctx: &MergeCtx,
    remote: &RemoteLead,
) -> Result<Applied, AppError> {
    let remote_snap = remote_snapshot(remote);
    let remote_modified = remote.modified_at.map(|t| t.naive_utc());
    let Some(old) = find_for(conn, remote)? else {
        return create_from_remote(conn, ctx, remote, &remote_snap, remote_modified);
    };
    let pending: Option<OutboxRow> = outbox::table
        .find(&old.id)
        .select(OutboxRow::as_select())
        .first(conn)
        .optional()?;
    if pending.as_ref().is_some_and(|p| p.operation == "delete") {
        // Deleted here and not pushed yet: the push deletes the record; nothing to merge.
        return Ok(Applied::default());
    }
    if old.airtable_id.is_none() && pending.as_ref().is_some_and(|p| p.operation == "create") {
        // Found by its Lead ID: our create reached Airtable but its answer never got stored (lost,
        // or the database was restored from a backup taken before it). What is left to send is
        // an update of the fields that still differ, nothing if none do.
        diesel::update(outbox::table.find(&old.id))
            .set(outbox::operation.eq("update"))
            .execute(conn)?;
    }
    let pending_fields: BTreeSet<String> = crate::leads::outbox::pending_fields(pending.as_ref())
        .into_iter()
        .collect();
    let base = parse_snapshot(old.remote_fields.as_deref());
    let local = local_snapshot(&old);

    let mut new = old.clone();
    new.airtable_id = Some(remote.airtable_id.clone());
    let mut won_by_remote: Vec<String> = Vec::new();
    let mut conflicts: Vec<(String, Value, Value, Value, &'static str)> = Vec::new();
    let keys: BTreeSet<&String> = remote_snap
        .keys()
        .chain(local.keys())
        .chain(base.iter().flat_map(|b| b.keys()))
        .collect();
    for key in keys {
        let null = Value::Null;
        let r = remote_snap.get(key).unwrap_or(&null);
        let l = local.get(key).unwrap_or(&null);
        let b = base.as_ref().map(|b| b.get(key).unwrap_or(&null));
        let local_changed = pending_fields.contains(key.as_str()) && b.is_none_or(|b| l != b);
        let remote_changed = match b {
            Some(b) => r != b,
            None => r != l,
        };
        if !remote_changed || r == l {
            if local_changed && r == l {
                won_by_remote.push(key.clone()); // converged: nothing left to push
            }
            continue;
        }
        if !local_changed {
            put(&mut new, key, r);
            continue;
        }
        // Both sides changed the field, differently.
        let remote_wins = match ctx.policy {
            ConflictPolicy::AirtableWins => true,
            ConflictPolicy::LastModifiedWins => {
                let local_at = pending.as_ref().map_or(old.updated_at, |p| p.updated_at);
                remote_modified.is_none_or(|rt| rt >= local_at)
            }
        };
        if remote_wins {
            put(&mut new, key, r);
            won_by_remote.push(key.clone());
        }
        conflicts.push((
            key.clone(),
            l.clone(),
            r.clone(),
            b.cloned().unwrap_or(Value::Null),
            if remote_wins { "remote" } else { "local" },
        ));
    }

    for (field, local_v, remote_v, base_v, resolution) in &conflicts {
        diesel::insert_into(sync_conflicts::table)
            .values((
                sync_conflicts::lead_id.eq(&old.id),
                sync_conflicts::field.eq(field),
                sync_conflicts::local_value.eq(serde_json::to_string(local_v)?),
                sync_conflicts::remote_value.eq(serde_json::to_string(remote_v)?),
                sync_conflicts::base_value.eq(serde_json::to_string(base_v)?),
                sync_conflicts::resolution.eq(*resolution),
                sync_conflicts::created_at.eq(ctx.now),
            ))
            .execute(conn)?;
        let mut changes = Map::new();
        changes.insert(
            field.clone(),
            Value::Array(vec![local_v.clone(), remote_v.clone()]),
        );
        let msg = format!("{field} changed here and in Airtable; kept the {resolution} value");
        history::record(
            conn,
            &old.id,
            kind::CONFLICT,
            ACTOR,
            &changes,
            Some(&msg),
            ctx.now,
        )?;
    }
    let remaining = drop_outbox_fields(conn, &old.id, &won_by_remote)?;

    if old.deleted_at.is_some() {
        // Deleted here because it had disappeared from Airtable; it is back.
        new.deleted_at = None;
        history::record(
            conn,
            &old.id,
            kind::RESTORED,
            ACTOR,
            &Map::new(),
            None,
            ctx.now,
        )?;
    }
    keys::apply(&mut new);
    let changes = fields::diff(&old, &new);
    let has_open_conflicts = !conflicts.is_empty() || old.sync_state == "conflict";
    new.remote_fields = Some(serde_json::to_string(&remote_snap)?);
    new.remote_modified_at = remote_modified;
    new.synced_at = Some(ctx.now);
    new.sync_state = if has_open_conflicts {
        "conflict".into()
    } else if remaining {
        "pending".into()
    } else {
        "synced".into()
    };
    let visible_change =
        !changes.is_empty() || old.deleted_at.is_some() || old.airtable_id != new.airtable_id;
    if visible_change {
        new.version = old.version + 1;
        new.updated_at = ctx.now;
    }
    diesel::update(leads::table.filter(leads::id.eq(&old.id)))
        .set(&new)
        .execute(conn)?;
    let mut applied = Applied {
        conflicts: conflicts.len() as i32,
        ..Default::default()
    };
    if !changes.is_empty() {
        let changed: Vec<String> = changes.keys().cloned().collect();
        history::record_change(conn, &new.id, kind::PULLED, ACTOR, changes, ctx.now)?;
        applied.updated = true;
        applied.written = Some(Written {
            lead: new,
            kind: ChangeKind::Updated,
            changed_fields: changed,
        });
    } else if visible_change {
        applied.written = Some(Written {
            lead: new,
            kind: ChangeKind::Updated,
            changed_fields: vec![],
        });
    }
    Ok(applied)
}

/// Removes fields from a lead's queued outbox row (Airtable's value won). Returns whether
/// anything is still queued for the lead.
pub fn drop_outbox_fields(
    conn: &mut SqliteConnection,
    lead_id: &str,
    drop: &[String],
) -> Result<bool, AppError> {
    let Some(mut row) = outbox::table
        .find(lead_id)
        .select(OutboxRow::as_select())
        .first::<OutboxRow>(conn)
        .optional()?
    else {
        return Ok(false);
    };
    if drop.is_empty() {
        return Ok(true);
    }
    let mut fields: Vec<String> = serde_json::from_str(&row.fields).unwrap_or_default();
    fields.retain(|f| !drop.contains(f));
    if fields.is_empty() && row.operation == "update" {
        diesel::delete(outbox::table.find(lead_id)).execute(conn)?;
        return Ok(false);
    }
    row.fields = serde_json::to_string(&fields)?;
    row.seq += 1;
    diesel::update(outbox::table.find(lead_id))
        .set(&row)
        .execute(conn)?;
    Ok(true)
}

fn create_from_remote(
    conn: &mut SqliteConnection,
    ctx: &MergeCtx,
    remote: &RemoteLead,
    snap: &Snapshot,
    remote_modified: Option<NaiveDateTime>,
) -> Result<Applied, AppError> {
    let id = remote
        .lead_id
        .as_deref()
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .map(str::to_string)
        .filter(|id| store::find(conn, id).ok().flatten().is_none())
        .unwrap_or_else(store::new_id);
    let created_at = remote.created_time.naive_utc();
    let mut lead = store::blank(id, created_at);
    for (key, v) in snap {
        put(&mut lead, key, v);
    }
    keys::apply(&mut lead);
    lead.airtable_id = Some(remote.airtable_id.clone());
    lead.updated_at = ctx.now;
    lead.remote_fields = Some(serde_json::to_string(snap)?);
    lead.remote_modified_at = remote_modified;
    lead.synced_at = Some(ctx.now);
    lead.sync_state = "synced".into();
    diesel::insert_into(leads::table)
        .values(&lead)
        .execute(conn)?;
    let changes = fields::created(&lead);
    let changed: Vec<String> = changes.keys().cloned().collect();
    history::record(
        conn,
        &lead.id,
        kind::PULLED,
        ACTOR,
        &changes,
        Some("created in Airtable"),
        ctx.now,
    )?;
    Ok(Applied {
        written: Some(Written {
            lead,
            kind: ChangeKind::Created,
            changed_fields: changed,
        }),
        created: true,
        updated: false,
        conflicts: 0,
    })
}

/// Soft-deletes leads whose Airtable record is gone (after a complete pass saw every id).
/// Returns the leads deleted.
pub fn delete_missing(
    conn: &mut SqliteConnection,
    seen: &std::collections::HashSet<String>,
    now: NaiveDateTime,
) -> Result<Vec<Written>, AppError> {
    let linked: Vec<(String, String)> = leads::table
        .filter(leads::airtable_id.is_not_null())
        .filter(leads::deleted_at.is_null())
        .select((leads::id, leads::airtable_id.assume_not_null()))
        .load(conn)?;
    let mut out = Vec::new();
    for (id, airtable_id) in linked {
        if !seen.contains(&airtable_id) {
            out.push(delete_gone(conn, &id, &airtable_id, now)?);
        }
    }
    Ok(out)
}

/// Soft-deletes the live leads of these Airtable records, which a read found gone (the pre-push
/// read of `sync::push`). Returns the leads deleted.
pub fn deleted_in_airtable(
    conn: &mut SqliteConnection,
    airtable_ids: &[String],
    now: NaiveDateTime,
) -> Result<Vec<Written>, AppError> {
    let linked: Vec<(String, String)> = leads::table
        .filter(leads::airtable_id.eq_any(airtable_ids))
        .filter(leads::deleted_at.is_null())
        .select((leads::id, leads::airtable_id.assume_not_null()))
        .load(conn)?;
    linked
        .iter()
        .map(|(id, airtable_id)| delete_gone(conn, id, airtable_id, now))
        .collect()
}

/// Soft-deletes one lead whose record was deleted in Airtable (Airtable is the source of truth).
/// Local changes not pushed yet are not lost: the `deleted` event holds them
/// (`{field: [base, local]}`), and its message says so.
fn delete_gone(
    conn: &mut SqliteConnection,
    id: &str,
    airtable_id: &str,
    now: NaiveDateTime,
) -> Result<Written, AppError> {
    let old = store::get(conn, id)?;
    let pending: Option<OutboxRow> = outbox::table
        .find(id)
        .select(OutboxRow::as_select())
        .first(conn)
        .optional()?;
    let mut unpushed = Map::new();
    let base = parse_snapshot(old.remote_fields.as_deref()).unwrap_or_default();
    let local = local_snapshot(&old);
    for f in crate::leads::outbox::pending_fields(pending.as_ref()) {
        let null = Value::Null;
        unpushed.insert(
            f.clone(),
            Value::Array(vec![
                base.get(&f).unwrap_or(&null).clone(),
                local.get(&f).unwrap_or(&null).clone(),
            ]),
        );
    }
    let mut new = old.clone();
    new.deleted_at = Some(now);
    new.updated_at = now;
    new.version += 1;
    new.airtable_id = None;
    new.remote_fields = None;
    new.sync_state = "synced".into();
    new.synced_at = Some(now);
    diesel::update(leads::table.filter(leads::id.eq(id)))
        .set(&new)
        .execute(conn)?;
    diesel::delete(outbox::table.find(id)).execute(conn)?;
    let msg = if unpushed.is_empty() {
        format!("record {airtable_id} was deleted in Airtable")
    } else {
        format!(
            "record {airtable_id} was deleted in Airtable while it had local changes not pushed \
             yet; they are kept in this event's changes (restore the lead to send them again)"
        )
    };
    history::record(conn, id, kind::DELETED, ACTOR, &unpushed, Some(&msg), now)?;
    Ok(Written {
        lead: new,
        kind: ChangeKind::Deleted,
        changed_fields: vec![],
    })
}
