//! Mutation resolvers. Every lead write runs in one immediate transaction (lead + history +
//! outbox) and is published on the change bus after it commits.

use async_graphql::{Context, ID, Object};
use diesel::sqlite::SqliteConnection;

use crate::auth::Role;
use crate::error::{AppError, AppResult, GqlResultExt};
use crate::graphql::duplicates::{DuplicateRule, OnDuplicate};
use crate::graphql::inputs::{EnrichmentInput, LeadInput, LeadPatch};
use crate::graphql::types::*;
use crate::graphql::{caller, state};
use crate::leads::dedup::Rule;
use crate::leads::{WriteCtx, Written, bulk, merge, store};

/// Most leads one `createLeads` call takes.
pub const MAX_BATCH: usize = 5000;

#[derive(Default)]
pub struct LeadsMutation;

/// Runs one lead write for a caller with the `write` role and publishes it.
async fn write_lead<F>(ctx: &Context<'_>, f: F) -> async_graphql::Result<Written>
where
    F: FnOnce(&mut SqliteConnection, &WriteCtx) -> AppResult<Written> + Send + 'static,
{
    let caller = caller(ctx)?;
    caller.require(Role::Write).gql()?;
    let state = state(ctx);
    let wctx = state.write_ctx(&caller.name);
    let written = state.db.write(move |c| f(c, &wctx)).await.gql()?;
    state.bus.publish(&written, &caller.name);
    state.lead_written();
    Ok(written)
}

fn split(duplicate_of: Option<(String, Rule)>) -> (Option<ID>, Option<DuplicateRule>) {
    match duplicate_of {
        Some((id, rule)) => (Some(ID(id)), Some(rule.into())),
        None => (None, None),
    }
}

#[Object]
impl LeadsMutation {
    /// Creates a lead (queued for Airtable). A duplicate of a live lead (same LinkedIn profile,
    /// same email, or name and company at least 85 % alike with no conflicting email or LinkedIn
    /// profile) is merged into it instead: its empty fields are filled, differing values are
    /// kept in a `merged` event, and the payload says `created: false`, `duplicateOf` and
    /// `matchedBy`. `onDuplicate: CREATE` creates it anyway; `FAIL` refuses it with CONFLICT.
    async fn create_lead(
        &self,
        ctx: &Context<'_>,
        input: LeadInput,
        #[graphql(default)] on_duplicate: OnDuplicate,
    ) -> async_graphql::Result<CreateLeadPayload> {
        let caller = caller(ctx)?;
        caller.require(Role::Write).gql()?;
        let state = state(ctx);
        let wctx = state.write_ctx(&caller.name);
        let changes = input.into_changes();
        let outcome = state
            .db
            .write(move |c| {
                merge::create_or_merge(
                    c,
                    &wctx,
                    &changes,
                    crate::time::now(),
                    "createLead",
                    on_duplicate.into(),
                )
            })
            .await
            .gql()?;
        if !outcome.written.changed_fields.is_empty() || outcome.duplicate_of.is_none() {
            state.bus.publish(&outcome.written, &caller.name);
            state.lead_written();
        }
        let (duplicate_of, matched_by) = split(outcome.duplicate_of);
        Ok(CreateLeadPayload {
            lead: Lead(outcome.written.lead),
            created: duplicate_of.is_none(),
            duplicate_of,
            matched_by,
        })
    }

    /// Creates many leads in one transaction. Invalid inputs are reported per item and store
    /// nothing; with `allOrNothing: true` one invalid input rejects the whole call. Duplicates
    /// are merged as in `createLead`, also duplicates of an earlier input of the same call;
    /// `onDuplicate` applies to every input (with `FAIL` a duplicate input is reported as failed,
    /// code CONFLICT, and the others are stored).
    #[graphql(complexity = "inputs.len().saturating_add(child_complexity)")]
    async fn create_leads(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<LeadInput>,
        #[graphql(default_with = "Some(false)")] all_or_nothing: Option<bool>,
        #[graphql(default)] on_duplicate: OnDuplicate,
    ) -> async_graphql::Result<BulkCreatePayload> {
        if inputs.len() > MAX_BATCH {
            return Err(AppError::Limit(format!(
                "createLeads takes at most {MAX_BATCH} leads a call; got {}",
                inputs.len()
            )))
            .gql();
        }
        let caller = caller(ctx)?;
        caller.require(Role::Write).gql()?;
        let state = state(ctx);
        let wctx = state.write_ctx(&caller.name);
        let all_or_nothing = all_or_nothing.unwrap_or(false);
        let changes: Vec<_> = inputs.into_iter().map(LeadInput::into_changes).collect();
        let outcome: Vec<Result<merge::Outcome, AppError>> = state
            .db
            .write(move |c| {
                let now = crate::time::now();
                let built: Vec<AppResult<_>> = changes
                    .iter()
                    .map(|ch| store::build(&wctx, ch, now))
                    .collect();
                if all_or_nothing
                    && let Some((i, Err(e))) = built.iter().enumerate().find(|(_, b)| b.is_err())
                {
                    return Err(AppError::validation(
                        format!("inputs[{i}]"),
                        format!("{e} (allOrNothing: nothing was stored)"),
                    ));
                }
                // In input order: an input that duplicates an earlier one of this call is
                // merged into it (`leads::bulk` writes new leads in batches, same outcome).
                bulk::with_placer(c, &wctx, |c, placer| {
                    placer.on_duplicate(on_duplicate.into());
                    let mut out = Vec::with_capacity(built.len());
                    for (i, (b, ch)) in built.into_iter().zip(&changes).enumerate() {
                        out.push(match b {
                            Ok(lead) => {
                                let origin = format!("createLeads input {i}");
                                // A refused duplicate (FAIL) is this input's result; any other
                                // error ends the call and rolls it back.
                                match placer.place(c, lead, |f| ch.contains_key(f), &origin) {
                                    Err(e @ AppError::Conflict(_)) => Err(e),
                                    other => Ok(other?),
                                }
                            }
                            Err(e) => Err(e),
                        });
                    }
                    Ok(out)
                })
            })
            .await
            .gql()?;
        let mut payload = BulkCreatePayload {
            created: 0,
            merged: 0,
            failed: 0,
            results: Vec::new(),
        };
        for (i, r) in outcome.into_iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            match r {
                Ok(o) => {
                    if !o.written.changed_fields.is_empty() || o.duplicate_of.is_none() {
                        state.bus.publish(&o.written, &caller.name);
                    }
                    let (duplicate_of, matched_by) = split(o.duplicate_of);
                    if duplicate_of.is_some() {
                        payload.merged += 1;
                    } else {
                        payload.created += 1;
                    }
                    payload.results.push(BulkItemResult {
                        index,
                        lead: Some(Lead(o.written.lead)),
                        created: duplicate_of.is_none(),
                        duplicate_of,
                        matched_by,
                        error: None,
                        error_field: None,
                    });
                }
                Err(e) => {
                    payload.failed += 1;
                    let field = match &e {
                        AppError::Validation { field, .. } => Some(field.clone()),
                        _ => None,
                    };
                    payload.results.push(BulkItemResult {
                        index,
                        lead: None,
                        created: false,
                        duplicate_of: None,
                        matched_by: None,
                        error: Some(e.public_message()),
                        error_field: field,
                    });
                }
            }
        }
        if payload.created + payload.merged > 0 {
            state.lead_written();
        }
        Ok(payload)
    }

    /// Changes the given fields of a lead. With `expectedVersion`, fails with CONFLICT when the
    /// lead changed since that version.
    async fn update_lead(
        &self,
        ctx: &Context<'_>,
        id: ID,
        patch: LeadPatch,
        expected_version: Option<i32>,
    ) -> async_graphql::Result<Lead> {
        let changes = patch.into_changes();
        let w = write_lead(ctx, move |c, w| {
            store::update(c, w, &id, &changes, expected_version)
        })
        .await?;
        Ok(Lead(w.lead))
    }

    /// Moves a lead to another pipeline status (a shortcut for `updateLead`).
    async fn set_lead_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: String,
    ) -> async_graphql::Result<Lead> {
        let mut changes = serde_json::Map::new();
        changes.insert("status".into(), status.into());
        let w = write_lead(ctx, move |c, w| store::update(c, w, &id, &changes, None)).await?;
        Ok(Lead(w.lead))
    }

    /// Soft-deletes a lead (and deletes its Airtable record on the next push).
    async fn delete_lead(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Lead> {
        let w = write_lead(ctx, move |c, w| store::delete(c, w, &id)).await?;
        Ok(Lead(w.lead))
    }

    /// Undoes a soft delete.
    async fn restore_lead(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Lead> {
        let w = write_lead(ctx, move |c, w| store::restore(c, w, &id)).await?;
        Ok(Lead(w.lead))
    }

    /// Adds a note to a lead's history.
    async fn add_note(
        &self,
        ctx: &Context<'_>,
        lead_id: ID,
        text: String,
    ) -> async_graphql::Result<LeadEvent> {
        let caller = caller(ctx)?;
        caller.require(Role::Write).gql()?;
        let state = state(ctx);
        let wctx = state.write_ctx(&caller.name);
        let event = state
            .db
            .write(move |c| store::add_note(c, &wctx, &lead_id, &text))
            .await
            .gql()?;
        Ok(LeadEvent(event))
    }

    /// Attaches enrichment data to a lead and marks it enriched.
    async fn add_enrichment(
        &self,
        ctx: &Context<'_>,
        lead_id: ID,
        input: EnrichmentInput,
    ) -> async_graphql::Result<Enrichment> {
        let caller = caller(ctx)?;
        caller.require(Role::Write).gql()?;
        let state = state(ctx);
        let wctx = state.write_ctx(&caller.name);
        let (enrichment, written) = state
            .db
            .write(move |c| {
                store::add_enrichment(
                    c,
                    &wctx,
                    &lead_id,
                    &input.provider,
                    &input.data.0,
                    input.confidence,
                )
            })
            .await
            .gql()?;
        if let Some(w) = written {
            state.bus.publish(&w, &caller.name);
            state.lead_written();
        }
        Ok(Enrichment(enrichment))
    }
}
