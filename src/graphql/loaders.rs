//! DataLoaders: nested lead fields load for a whole page of leads in one query each, instead of
//! one query per lead.

use std::collections::HashMap;

use async_graphql::ID;
use async_graphql::dataloader::Loader;
use diesel::prelude::*;

use crate::db::Db;
use crate::db::models::{Enrichment, LeadEvent, OutboxRow};
use crate::db::schema::{campaign_leads, campaigns, outbox};
use crate::error::GqlResultExt;
use crate::graphql::types::CampaignMembership;
use crate::time::to_utc;

/// Events kept per lead by the loader; `Lead.events(first)` takes from these.
const EVENTS_PER_LEAD: i64 = 1000;

fn group<T>(rows: Vec<T>, key: impl Fn(&T) -> &str) -> HashMap<String, Vec<T>> {
    let mut map: HashMap<String, Vec<T>> = HashMap::new();
    for row in rows {
        map.entry(key(&row).to_string()).or_default().push(row);
    }
    map
}

pub struct EventsLoader(pub Db);

impl Loader<String> for EventsLoader {
    type Value = Vec<LeadEvent>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let ids = keys.to_vec();
        let rows = self
            .0
            .run(move |c| crate::leads::history::for_leads(c, &ids, EVENTS_PER_LEAD))
            .await
            .gql()?;
        Ok(group(rows, |e| &e.lead_id))
    }
}

pub struct EnrichmentsLoader(pub Db);

impl Loader<String> for EnrichmentsLoader {
    type Value = Vec<Enrichment>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let ids = keys.to_vec();
        let rows = self
            .0
            .run(move |c| crate::leads::store::enrichments_for(c, &ids))
            .await
            .gql()?;
        Ok(group(rows, |e| &e.lead_id))
    }
}

pub struct OutboxLoader(pub Db);

impl Loader<String> for OutboxLoader {
    type Value = OutboxRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let ids = keys.to_vec();
        let rows: Vec<OutboxRow> = self
            .0
            .run(move |c| {
                Ok(outbox::table
                    .filter(outbox::lead_id.eq_any(&ids))
                    .select(OutboxRow::as_select())
                    .load(c)?)
            })
            .await
            .gql()?;
        Ok(rows.into_iter().map(|r| (r.lead_id.clone(), r)).collect())
    }
}

pub struct CampaignsLoader(pub Db);

impl Loader<String> for CampaignsLoader {
    type Value = Vec<CampaignMembership>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let ids = keys.to_vec();
        type Row = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<chrono::NaiveDateTime>,
            Option<chrono::NaiveDateTime>,
        );
        let rows: Vec<Row> = self
            .0
            .run(move |c| {
                Ok(campaign_leads::table
                    .inner_join(campaigns::table)
                    .filter(campaign_leads::lead_id.eq_any(&ids))
                    .order(campaign_leads::created_at.desc())
                    .select((
                        campaign_leads::lead_id,
                        campaigns::id,
                        campaigns::name,
                        campaign_leads::status,
                        campaign_leads::subject,
                        campaign_leads::body,
                        campaign_leads::sent_at,
                        campaign_leads::replied_at,
                    ))
                    .load(c)?)
            })
            .await
            .gql()?;
        let mut map: HashMap<String, Vec<CampaignMembership>> = HashMap::new();
        for (lead_id, campaign_id, name, status, subject, body, sent, replied) in rows {
            map.entry(lead_id).or_default().push(CampaignMembership {
                campaign_id: ID(campaign_id),
                campaign_name: name,
                status,
                subject,
                body,
                sent_at: sent.map(to_utc),
                replied_at: replied.map(to_utc),
            });
        }
        Ok(map)
    }
}
