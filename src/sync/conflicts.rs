//! Settling a conflict by hand (`resolveConflict`): keep the local value (it is queued for push,
//! overriding Airtable) or keep Airtable's (the local change is dropped from the outbox). The
//! lead leaves the `conflict` state when its last open conflict is settled.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde_json::{Map, Value};

use crate::db::models::SyncConflict;
use crate::db::schema::{leads, sync_conflicts};
use crate::error::AppError;
use crate::leads::history::{self, kind};
use crate::leads::outbox::{self, Op};
use crate::leads::{WriteCtx, Written, store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

/// Settles conflict `id`. Returns the conflict and, when the lead changed, the write.
pub fn resolve(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    id: i64,
    side: Side,
) -> Result<(SyncConflict, Option<Written>), AppError> {
    let conflict: SyncConflict = sync_conflicts::table
        .find(id)
        .select(SyncConflict::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("conflict {id}")))?;
    if conflict.resolved_at.is_some() {
        return Err(AppError::Conflict(format!(
            "conflict {id} was already resolved by {}",
            conflict.resolved_by.as_deref().unwrap_or("?")
        )));
    }
    let old = store::get(conn, &conflict.lead_id)?;
    let parse = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or(Value::Null)
    };
    let chosen = match side {
        Side::Local => parse(&conflict.local_value),
        Side::Remote => parse(&conflict.remote_value),
    };
    let mut new = old.clone();
    crate::sync::apply::put(&mut new, &conflict.field, &chosen);
    let now = crate::time::now();
    let mut written = None;
    if new != old {
        crate::leads::keys::apply(&mut new);
        let changes = crate::leads::fields::diff(&old, &new);
        new.version = old.version + 1;
        new.updated_at = now;
        diesel::update(leads::table.filter(leads::id.eq(&old.id)))
            .set(&new)
            .execute(conn)?;
        let changed: Vec<String> = changes.keys().cloned().collect();
        history::record_change(conn, &old.id, kind::UPDATED, &ctx.actor, changes, now)?;
        written = Some(Written {
            lead: new.clone(),
            kind: crate::leads::ChangeKind::Updated,
            changed_fields: changed,
        });
    }
    match side {
        // Airtable must get the local value, whatever the policy applied.
        Side::Local => outbox::record(
            conn,
            &old.id,
            Op::Update,
            std::slice::from_ref(&conflict.field),
            now,
        )?,
        Side::Remote => {
            crate::sync::apply::drop_outbox_fields(
                conn,
                &old.id,
                std::slice::from_ref(&conflict.field),
            )?;
        }
    }
    let resolution = if side == Side::Local {
        "local"
    } else {
        "remote"
    };
    diesel::update(sync_conflicts::table.find(id))
        .set((
            sync_conflicts::resolution.eq(resolution),
            sync_conflicts::resolved_at.eq(now),
            sync_conflicts::resolved_by.eq(&ctx.actor),
        ))
        .execute(conn)?;
    let mut changes = Map::new();
    changes.insert(
        conflict.field.clone(),
        Value::Array(vec![Value::Null, chosen]),
    );
    history::record(
        conn,
        &old.id,
        kind::RESOLVED,
        &ctx.actor,
        &changes,
        Some(&format!("kept the {resolution} value")),
        now,
    )?;
    // Leave the conflict state when nothing is open any more.
    let open: i64 = sync_conflicts::table
        .filter(sync_conflicts::lead_id.eq(&old.id))
        .filter(sync_conflicts::resolved_at.is_null())
        .count()
        .get_result(conn)?;
    if open == 0 {
        let queued = outbox::get(conn, &old.id)?.is_some();
        let state = if !queued {
            "synced"
        } else if ctx.sync_enabled {
            "pending"
        } else {
            "local"
        };
        diesel::update(leads::table.filter(leads::id.eq(&old.id)))
            .set(leads::sync_state.eq(state))
            .execute(conn)?;
    }
    let conflict = sync_conflicts::table
        .find(id)
        .select(SyncConflict::as_select())
        .first(conn)?;
    Ok((conflict, written))
}
