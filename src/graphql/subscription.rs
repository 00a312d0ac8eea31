//! Subscriptions over `/graphql/ws`, fed by the change bus.
//!
//! A subscriber that falls more than `events::CAPACITY` events behind is not allowed to slow the
//! writers down: its stream ends with an error that says so, and it should resubscribe (and
//! re-read what it needs).

use async_graphql::{Context, Enum, SimpleObject, Subscription};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::auth::Role;
use crate::error::GqlResultExt;
use crate::graphql::types::{Lead, SyncRun};
use crate::graphql::{caller, state, subscription_slot};
use crate::leads::ChangeKind as StoreKind;

/// What happened to a lead.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ChangeKind {
    /// Created (or restored).
    Created,
    /// Changed.
    Updated,
    /// Deleted.
    Deleted,
}

/// A lead changed, locally or in Airtable.
#[derive(SimpleObject)]
pub struct LeadChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The lead after the change.
    pub lead: Lead,
    /// Fields that changed.
    pub changed_fields: Vec<String>,
    /// Who changed it: a token name, `airtable`, `system` or `local`.
    pub actor: String,
}

/// The error that ends a subscription whose client fell too far behind. It is the last result of
/// the stream; the server then sends `complete` and the connection stays open for a new subscribe.
fn lagged(n: u64) -> async_graphql::Error {
    crate::error::AppError::Limit(format!(
        "subscriber too slow: it fell more than {} events behind and {n} events were dropped, so this \
         subscription has ended; subscribe again and re-read what you need",
        crate::events::CAPACITY
    ))
    .into_gql()
}

#[derive(Default)]
pub struct LeadsSubscription;

#[Subscription]
impl LeadsSubscription {
    /// Every lead change (optionally only leads with this status after the change).
    async fn lead_changed(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<LeadChange>>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let slot = subscription_slot(ctx)?;
        let rx = state(ctx).bus.lead_changes();
        let stream = BroadcastStream::new(rx)
            .filter_map(move |item| {
                let keep = match &item {
                    Ok(change) => status.as_ref().is_none_or(|s| *s == change.lead.status),
                    Err(_) => true,
                };
                futures::future::ready(keep.then_some(item))
            })
            .map(|item| match item {
                Ok(change) => Ok(LeadChange {
                    kind: match change.kind {
                        StoreKind::Created => ChangeKind::Created,
                        StoreKind::Updated => ChangeKind::Updated,
                        StoreKind::Deleted => ChangeKind::Deleted,
                    },
                    lead: Lead((*change.lead).clone()),
                    changed_fields: (*change.changed_fields).clone(),
                    actor: change.actor.to_string(),
                }),
                Err(BroadcastStreamRecvError::Lagged(n)) => Err(lagged(n)),
            })
            .scan(false, |failed, item| {
                // End the stream right after the error that says the subscriber lagged.
                if *failed {
                    return futures::future::ready(None);
                }
                *failed = item.is_err();
                futures::future::ready(Some(item))
            })
            .map(move |item| {
                let _held = &slot;
                item
            });
        Ok(stream)
    }

    /// Sync runs as they start, move through their phases and finish.
    async fn sync_progress(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<SyncRun>>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let slot = subscription_slot(ctx)?;
        let rx = state(ctx).bus.sync_runs();
        Ok(BroadcastStream::new(rx)
            .map(|item| match item {
                Ok(run) => Ok(SyncRun::from(run.as_ref())),
                Err(BroadcastStreamRecvError::Lagged(n)) => Err(lagged(n)),
            })
            .scan(false, |failed, item| {
                if *failed {
                    return futures::future::ready(None);
                }
                *failed = item.is_err();
                futures::future::ready(Some(item))
            })
            .map(move |item| {
                let _held = &slot;
                item
            }))
    }
}
