//! Campaigns: `campaigns`, `createCampaign`, `addLeadsToCampaign`, `updateCampaignLead`. The rules
//! (names, member statuses and their times, history events) are in `crate::campaigns`.

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};

use crate::auth::Role;
use crate::campaigns::{self, MemberPatch};
use crate::db::models;
use crate::error::GqlResultExt;
use crate::graphql::types::{CampaignMembership, Lead};
use crate::graphql::{caller, state};
use crate::leads::query::check_first;
use crate::time::to_utc;

/// An outreach campaign.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Campaign {
    /// Campaign id.
    pub id: ID,
    /// Unique name.
    pub name: String,
    /// What it is about.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<models::Campaign> for Campaign {
    fn from(c: models::Campaign) -> Self {
        Campaign {
            id: ID(c.id),
            name: c.name,
            description: c.description,
            created_at: to_utc(c.created_at),
        }
    }
}

/// Members of a campaign by status.
#[derive(SimpleObject)]
pub struct CampaignCounts {
    /// All members (live leads).
    pub total: i64,
    /// Not sent yet.
    pub draft: i64,
    /// Sent, no answer yet.
    pub sent: i64,
    /// Answered.
    pub replied: i64,
    /// Not delivered.
    pub bounced: i64,
}

#[ComplexObject]
impl Campaign {
    /// Its live leads, in the order they were added.
    #[graphql(complexity = "crate::graphql::limits::list(first, 50, child_complexity)")]
    async fn leads(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(50)")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<Lead>> {
        let first = check_first(i64::from(first.unwrap_or(50))).gql()?;
        let id = self.id.to_string();
        let rows = state(ctx)
            .db
            .run(move |c| campaigns::leads(c, &id, first))
            .await
            .gql()?;
        Ok(rows.into_iter().map(Lead).collect())
    }

    /// Members by current status.
    async fn counts(&self, ctx: &Context<'_>) -> async_graphql::Result<CampaignCounts> {
        let id = self.id.to_string();
        let [total, draft, sent, replied, bounced] = state(ctx)
            .db
            .run(move |c| campaigns::counts(c, &id))
            .await
            .gql()?;
        Ok(CampaignCounts {
            total,
            draft,
            sent,
            replied,
            bounced,
        })
    }
}

/// A new campaign.
#[derive(InputObject)]
pub struct CampaignInput {
    /// Unique name (1 to 200 characters, trimmed).
    pub name: String,
    /// What it is about (at most 2000 characters).
    pub description: Option<String>,
}

/// Changes to one lead's place in a campaign; only the fields given change, `null` clears.
#[derive(InputObject)]
pub struct CampaignLeadPatch {
    /// Email subject (at most 500 characters).
    pub subject: MaybeUndefined<String>,
    /// Email body (at most 50,000 characters).
    pub body: MaybeUndefined<String>,
    /// draft, sent, replied or bounced. Moving to sent (or past it) sets `sentAt`, to replied
    /// sets `repliedAt`, the first time.
    pub status: Option<String>,
}

fn maybe(v: MaybeUndefined<String>) -> Option<Option<String>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(s) => Some(Some(s)),
    }
}

#[derive(Default)]
pub struct CampaignsQuery;

#[Object]
impl CampaignsQuery {
    /// All campaigns, newest first.
    #[graphql(complexity = "crate::graphql::limits::list(None, 100, child_complexity)")]
    async fn campaigns(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Campaign>> {
        caller(ctx)?.require(Role::Read).gql()?;
        let rows = state(ctx).db.run(campaigns::list).await.gql()?;
        Ok(rows.into_iter().map(Campaign::from).collect())
    }

    /// One campaign.
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Campaign> {
        caller(ctx)?.require(Role::Read).gql()?;
        let row = state(ctx)
            .db
            .run(move |c| campaigns::get(c, &id))
            .await
            .gql()?;
        Ok(row.into())
    }
}

#[derive(Default)]
pub struct CampaignsMutation;

#[Object]
impl CampaignsMutation {
    /// Creates a campaign. A name in use is refused with CONFLICT.
    async fn create_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignInput,
    ) -> async_graphql::Result<Campaign> {
        caller(ctx)?.require(Role::Write).gql()?;
        let row = state(ctx)
            .db
            .write(move |c| campaigns::create(c, &input.name, input.description.as_deref()))
            .await
            .gql()?;
        Ok(row.into())
    }

    /// Adds leads to a campaign as drafts (leads already in it stay as they are). An unknown or
    /// deleted lead fails the call and nothing is added.
    async fn add_leads_to_campaign(
        &self,
        ctx: &Context<'_>,
        campaign_id: ID,
        lead_ids: Vec<ID>,
    ) -> async_graphql::Result<Campaign> {
        let caller = caller(ctx)?;
        caller.require(Role::Write).gql()?;
        let state = state(ctx);
        let wctx = state.write_ctx(&caller.name);
        let ids: Vec<String> = lead_ids.into_iter().map(|i| i.to_string()).collect();
        let row = state
            .db
            .write(move |c| {
                campaigns::add_leads(c, &wctx, &campaign_id, &ids)?;
                campaigns::get(c, &campaign_id)
            })
            .await
            .gql()?;
        Ok(row.into())
    }

    /// Changes one lead's message or status in a campaign.
    async fn update_campaign_lead(
        &self,
        ctx: &Context<'_>,
        campaign_id: ID,
        lead_id: ID,
        patch: CampaignLeadPatch,
    ) -> async_graphql::Result<CampaignMembership> {
        let caller = caller(ctx)?;
        caller.require(Role::Write).gql()?;
        let state = state(ctx);
        let wctx = state.write_ctx(&caller.name);
        let patch = MemberPatch {
            subject: maybe(patch.subject),
            body: maybe(patch.body),
            status: patch.status,
        };
        let (campaign, row) = state
            .db
            .write(move |c| campaigns::update_member(c, &wctx, &campaign_id, &lead_id, &patch))
            .await
            .gql()?;
        Ok(CampaignMembership {
            campaign_id: ID(campaign.id),
            campaign_name: campaign.name,
            status: row.status,
            subject: row.subject,
            body: row.body,
            sent_at: row.sent_at.map(to_utc),
            replied_at: row.replied_at.map(to_utc),
        })
    }
}
