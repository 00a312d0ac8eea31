//! How a push turns due outbox rows into Airtable requests. The push and its dry run
//! (`syncPendingChanges(dryRun: true)`) both go through [`batches`] and [`payload`], and the
//! request a dry run shows comes from the client's own request builder
//! ([`AirtableApi::preview`](crate::airtable::AirtableApi::preview)), so the dry run shows what
//! the push sends, byte for byte in the JSON sense, not a description of it.
//!
//! The order: the outbox is read oldest first in rounds of `ROUND` rows; in each round the
//! creates go first, then the updates, then the deletes, [`MAX_BATCH`] records a request, in
//! outbox order. A lead created and deleted before it ever reached Airtable needs no request.
//!
//! A push also reads the records of its updates and deletes back first (one list request per
//! 100 of them, `sync::push`'s module doc); the dry run lists the writes only. What a dry run
//! cannot know: how Airtable will answer. A batch it rejects (422) is split to
//! find the bad record, so a push that meets a bad record sends more requests than planned; a
//! table without the Lead ID field turns the first create into a plain create.

use crate::airtable::{AirtableError, MAX_BATCH, PlannedRequest, RecordUpdate, Write};
use crate::sync::SyncEngine;
use crate::sync::push::{Action, Item, ROUND, action, create_fields, update_fields};

/// The rows one write request carries.
#[derive(Debug, Clone)]
pub struct Batch {
    pub action: Action,
    pub items: Vec<Item>,
}

/// Splits one round of due rows into requests (creates, updates, deletes; 10 a request, in
/// outbox order). Rows with nothing to send are returned apart.
pub fn batches(round: Vec<Item>) -> (Vec<Batch>, Vec<Item>) {
    let mut by_action: [Vec<Item>; 3] = Default::default();
    let mut drops = Vec::new();
    for item in round {
        match action(&item) {
            Action::Create => by_action[0].push(item),
            Action::Update => by_action[1].push(item),
            Action::Delete => by_action[2].push(item),
            Action::Drop => drops.push(item),
        }
    }
    let mut out = Vec::new();
    for (items, act) in by_action
        .into_iter()
        .zip([Action::Create, Action::Update, Action::Delete])
    {
        for chunk in items.chunks(MAX_BATCH) {
            out.push(Batch {
                action: act,
                items: chunk.to_vec(),
            });
        }
    }
    (out, drops)
}

/// The write for `items` (all of one action): every field for a create, only the changed ones
/// for an update, the record ids for a delete.
pub fn payload(engine: &SyncEngine, act: Action, items: &[Item]) -> Write {
    match act {
        Action::Create => Write::Create(
            items
                .iter()
                .map(|i| create_fields(engine, &i.lead))
                .collect(),
        ),
        Action::Update => Write::Update(
            items
                .iter()
                .map(|i| RecordUpdate {
                    id: i.lead.airtable_id.clone().unwrap_or_default(),
                    fields: update_fields(engine, i),
                })
                .collect(),
        ),
        Action::Delete | Action::Drop => Write::Delete(
            items
                .iter()
                .filter_map(|i| i.lead.airtable_id.clone())
                .collect(),
        ),
    }
}

/// The requests a push of `due` (every due row, oldest first, as [`super::push::due`] reads them)
/// would send, in order, if Airtable accepts every record.
pub fn plan(engine: &SyncEngine, due: Vec<Item>) -> Result<Vec<PlannedRequest>, AirtableError> {
    let mut out = Vec::new();
    for round in due.chunks(ROUND as usize) {
        let (batches, _drops) = batches(round.to_vec());
        for batch in batches {
            out.push(
                engine
                    .api
                    .preview(&payload(engine, batch.action, &batch.items))?,
            );
        }
    }
    Ok(out)
}
