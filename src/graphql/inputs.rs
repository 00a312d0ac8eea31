//! GraphQL input types and their conversion to the store's change maps and filters.

use async_graphql::{
    CustomValidator, Enum, ID, InputObject, InputType, InputValueError, Json, MaybeUndefined,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::graphql::types::SyncState;
use crate::leads::query::{Direction, LeadFilter, Order, OrderKey};

fn put<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.into(), v.into());
    }
}

fn put_maybe<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: MaybeUndefined<T>) {
    match v {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => {
            m.insert(k.into(), Value::Null);
        }
        MaybeUndefined::Value(v) => {
            m.insert(k.into(), v.into());
        }
    }
}

/// Most values a `LeadFilter` list (`status`, `syncState`) takes: a filter names a handful of
/// statuses, and each value becomes a SQL variable (SQLite takes at most 32,766 in a statement).
/// The other list arguments have their own caps, checked by their resolvers: `createLeads`'
/// `inputs` ([`crate::graphql::mutation::MAX_BATCH`]), `addLeadsToCampaign`'s `leadIds`
/// ([`crate::campaigns::MAX_ADD`]) and `leads`' `orderBy` (4 keys).
pub const MAX_FILTER_VALUES: usize = 100;

/// Refuses a list longer than `max` with code `LIMIT`, naming the field and the cap.
pub struct MaxValues {
    pub field: &'static str,
    pub max: usize,
}

impl<T: InputType> CustomValidator<Vec<T>> for MaxValues {
    fn check(&self, value: &Vec<T>) -> Result<(), InputValueError<Vec<T>>> {
        if value.len() <= self.max {
            return Ok(());
        }
        Err(InputValueError::custom(format!(
            "{} takes at most {} values; got {}",
            self.field,
            self.max,
            value.len()
        ))
        .with_extension("code", "LIMIT"))
    }
}

const STATUS_CAP: MaxValues = MaxValues {
    field: "LeadFilter.status",
    max: MAX_FILTER_VALUES,
};
const SYNC_STATE_CAP: MaxValues = MaxValues {
    field: "LeadFilter.syncState",
    max: MAX_FILTER_VALUES,
};

fn time(t: DateTime<Utc>) -> String {
    crate::time::format(t.naive_utc())
}

/// A new lead.
#[derive(InputObject, Debug, Clone, Default)]
pub struct LeadInput {
    /// Full name (required, trimmed).
    pub full_name: String,
    /// Email address.
    pub email: Option<String>,
    /// Company name.
    pub company: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// LinkedIn profile URL.
    pub linkedin_url: Option<String>,
    /// Company website.
    pub website: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// Industry.
    pub industry: Option<String>,
    /// Company size band.
    pub company_size: Option<String>,
    /// Pipeline status (default `new`; one of `statuses`).
    pub status: Option<String>,
    /// Where the lead came from.
    pub source: Option<String>,
    /// Lead score.
    pub score: Option<f64>,
    /// Contact details verified.
    pub verified: Option<bool>,
    /// Enrichment data present.
    pub enriched: Option<bool>,
    /// Waiting for enrichment.
    pub needs_enrichment: Option<bool>,
    /// When the lead was scraped.
    pub scraped_at: Option<DateTime<Utc>>,
    /// When the lead was enriched.
    pub enriched_at: Option<DateTime<Utc>>,
    /// When the lead was first contacted.
    pub contacted_at: Option<DateTime<Utc>>,
    /// Values of Airtable fields without a local column, by Airtable field name.
    pub extra: Option<Json<Value>>,
}

impl LeadInput {
    pub fn into_changes(self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("full_name".into(), self.full_name.into());
        put(&mut m, "email", self.email);
        put(&mut m, "company", self.company);
        put(&mut m, "title", self.title);
        put(&mut m, "linkedin_url", self.linkedin_url);
        put(&mut m, "website", self.website);
        put(&mut m, "phone", self.phone);
        put(&mut m, "location", self.location);
        put(&mut m, "industry", self.industry);
        put(&mut m, "company_size", self.company_size);
        put(&mut m, "status", self.status);
        put(&mut m, "source", self.source);
        put(&mut m, "score", self.score);
        put(&mut m, "verified", self.verified);
        put(&mut m, "enriched", self.enriched);
        put(&mut m, "needs_enrichment", self.needs_enrichment);
        put(&mut m, "scraped_at", self.scraped_at.map(time));
        put(&mut m, "enriched_at", self.enriched_at.map(time));
        put(&mut m, "contacted_at", self.contacted_at.map(time));
        put(&mut m, "extra", self.extra.map(|j| j.0));
        m
    }
}

/// Changes to a lead: only the fields given are changed; `null` clears a field.
#[derive(InputObject, Debug, Clone, Default)]
pub struct LeadPatch {
    /// Full name (cannot be cleared).
    pub full_name: MaybeUndefined<String>,
    /// Email address.
    pub email: MaybeUndefined<String>,
    /// Company name.
    pub company: MaybeUndefined<String>,
    /// Job title.
    pub title: MaybeUndefined<String>,
    /// LinkedIn profile URL.
    pub linkedin_url: MaybeUndefined<String>,
    /// Company website.
    pub website: MaybeUndefined<String>,
    /// Phone number.
    pub phone: MaybeUndefined<String>,
    /// Location.
    pub location: MaybeUndefined<String>,
    /// Industry.
    pub industry: MaybeUndefined<String>,
    /// Company size band.
    pub company_size: MaybeUndefined<String>,
    /// Pipeline status (one of `statuses`).
    pub status: MaybeUndefined<String>,
    /// Where the lead came from.
    pub source: MaybeUndefined<String>,
    /// Lead score.
    pub score: MaybeUndefined<f64>,
    /// Contact details verified.
    pub verified: MaybeUndefined<bool>,
    /// Enrichment data present.
    pub enriched: MaybeUndefined<bool>,
    /// Waiting for enrichment.
    pub needs_enrichment: MaybeUndefined<bool>,
    /// When the lead was scraped.
    pub scraped_at: MaybeUndefined<DateTime<Utc>>,
    /// When the lead was enriched.
    pub enriched_at: MaybeUndefined<DateTime<Utc>>,
    /// When the lead was first contacted.
    pub contacted_at: MaybeUndefined<DateTime<Utc>>,
    /// Airtable fields without a local column to set; a key set to null is removed.
    pub extra: MaybeUndefined<Json<Value>>,
}

impl LeadPatch {
    pub fn into_changes(self) -> Map<String, Value> {
        let mut m = Map::new();
        put_maybe(&mut m, "full_name", self.full_name);
        put_maybe(&mut m, "email", self.email);
        put_maybe(&mut m, "company", self.company);
        put_maybe(&mut m, "title", self.title);
        put_maybe(&mut m, "linkedin_url", self.linkedin_url);
        put_maybe(&mut m, "website", self.website);
        put_maybe(&mut m, "phone", self.phone);
        put_maybe(&mut m, "location", self.location);
        put_maybe(&mut m, "industry", self.industry);
        put_maybe(&mut m, "company_size", self.company_size);
        put_maybe(&mut m, "status", self.status);
        put_maybe(&mut m, "source", self.source);
        put_maybe(&mut m, "score", self.score);
        put_maybe(&mut m, "verified", self.verified);
        put_maybe(&mut m, "enriched", self.enriched);
        put_maybe(&mut m, "needs_enrichment", self.needs_enrichment);
        put_maybe(&mut m, "scraped_at", self.scraped_at.map_value(time));
        put_maybe(&mut m, "enriched_at", self.enriched_at.map_value(time));
        put_maybe(&mut m, "contacted_at", self.contacted_at.map_value(time));
        put_maybe(&mut m, "extra", self.extra.map_value(|j| j.0));
        m
    }
}

/// Which leads to return. All conditions must hold.
#[derive(InputObject, Debug, Clone, Default)]
#[graphql(name = "LeadFilter")]
pub struct LeadFilterInput {
    /// One of these statuses (at most 100).
    #[graphql(validator(custom = "STATUS_CAP"))]
    pub status: Option<Vec<String>>,
    /// Company, compared without case, punctuation or legal suffix (`acme` finds `ACME, Inc.`).
    pub company: Option<String>,
    /// Exactly this source.
    pub source: Option<String>,
    /// Exactly this industry.
    pub industry: Option<String>,
    /// Exactly this location.
    pub location: Option<String>,
    /// Enriched or not.
    pub enriched: Option<bool>,
    /// Verified or not.
    pub verified: Option<bool>,
    /// Waiting for enrichment or not.
    pub needs_enrichment: Option<bool>,
    /// One of these sync states (at most 100).
    #[graphql(validator(custom = "SYNC_STATE_CAP"))]
    pub sync_state: Option<Vec<SyncState>>,
    /// Score at least this.
    pub score_min: Option<f64>,
    /// Score at most this.
    pub score_max: Option<f64>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Updated at or after.
    pub updated_after: Option<DateTime<Utc>>,
    /// Updated before.
    pub updated_before: Option<DateTime<Utc>>,
    /// In this campaign.
    pub campaign_id: Option<ID>,
    /// Include soft-deleted leads.
    #[graphql(default_with = "Some(false)")]
    pub include_deleted: Option<bool>,
}

impl LeadFilterInput {
    pub fn into_filter(self, search: Option<String>) -> LeadFilter {
        LeadFilter {
            status: self.status,
            company: self.company,
            source: self.source,
            industry: self.industry,
            location: self.location,
            enriched: self.enriched,
            verified: self.verified,
            needs_enrichment: self.needs_enrichment,
            sync_state: self
                .sync_state
                .map(|v| v.into_iter().map(|s| s.as_str().to_string()).collect()),
            score_min: self.score_min,
            score_max: self.score_max,
            created_after: self.created_after.map(|t| t.naive_utc()),
            created_before: self.created_before.map(|t| t.naive_utc()),
            updated_after: self.updated_after.map(|t| t.naive_utc()),
            updated_before: self.updated_before.map(|t| t.naive_utc()),
            campaign_id: self.campaign_id.map(|i| i.to_string()),
            include_deleted: self.include_deleted.unwrap_or(false),
            search,
        }
    }
}

/// Sort direction.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SortDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// Fields leads can be ordered by.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum LeadOrderField {
    /// Creation time.
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Full name.
    FullName,
    /// Company (no company sorts as empty).
    Company,
    /// Status name.
    Status,
    /// Score (no score sorts lowest).
    Score,
}

/// One ordering key. Ties are broken by creation order.
#[derive(InputObject, Debug, Clone, Copy)]
pub struct LeadOrder {
    /// The field.
    pub field: LeadOrderField,
    /// The direction.
    #[graphql(default_with = "Some(SortDirection::Asc)")]
    pub direction: Option<SortDirection>,
}

impl From<LeadOrder> for Order {
    fn from(o: LeadOrder) -> Self {
        Order {
            key: match o.field {
                LeadOrderField::CreatedAt => OrderKey::CreatedAt,
                LeadOrderField::UpdatedAt => OrderKey::UpdatedAt,
                LeadOrderField::FullName => OrderKey::FullName,
                LeadOrderField::Company => OrderKey::Company,
                LeadOrderField::Status => OrderKey::Status,
                LeadOrderField::Score => OrderKey::Score,
            },
            dir: match o.direction {
                Some(SortDirection::Asc) | None => Direction::Asc,
                Some(SortDirection::Desc) => Direction::Desc,
            },
        }
    }
}

/// Enrichment data to attach to a lead.
#[derive(InputObject, Debug, Clone)]
pub struct EnrichmentInput {
    /// Who produced the data.
    pub provider: String,
    /// The data, a JSON object.
    pub data: Json<Value>,
    /// Confidence between 0 and 1.
    pub confidence: Option<f64>,
}
