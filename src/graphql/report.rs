//! `report`: pipeline figures for the dashboard. Definitions are in `crate::report`.

use async_graphql::{Context, ID, Object, SimpleObject};

use crate::auth::Role;
use crate::error::GqlResultExt;
use crate::graphql::{caller, state};

/// Pipeline figures over all live leads.
#[derive(SimpleObject)]
pub struct Report {
    /// Leads (not deleted).
    pub total_leads: i64,
    /// Leads per current status: configured statuses in pipeline order, then any other.
    pub by_status: Vec<StatusCount>,
    /// How many leads reached each stage (every configured status but `lost`, in order). A lost
    /// lead counts as having reached the stage it was lost from.
    pub funnel: Vec<FunnelStage>,
    /// Leads per source, most first.
    pub by_source: Vec<SourceCount>,
    /// Share of leads that are enriched, 0 to 1.
    pub enrichment_rate: f64,
    /// Leads created on each of the last 30 UTC days, oldest first, today last.
    pub created_per_day: Vec<DayCount>,
    /// Median days of completed stays per configured status (null when none has ended yet).
    pub median_days_in_stage: Vec<StageDuration>,
    /// Per campaign: members, sent, replied.
    pub campaigns: Vec<CampaignStats>,
}

/// Leads in one status.
#[derive(SimpleObject)]
pub struct StatusCount {
    /// The status.
    pub status: String,
    /// Leads in it.
    pub count: i64,
}

/// One stage of the funnel.
#[derive(SimpleObject)]
pub struct FunnelStage {
    /// The status.
    pub status: String,
    /// Leads that reached at least this stage.
    pub reached: i64,
    /// `reached` / all leads, 0 to 1.
    pub share: f64,
}

/// Leads from one source.
#[derive(SimpleObject)]
pub struct SourceCount {
    /// The source (null: none given).
    pub source: Option<String>,
    /// Leads from it.
    pub count: i64,
}

/// Leads created on one day.
#[derive(SimpleObject)]
pub struct DayCount {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Leads created that day (and not deleted).
    pub count: i64,
}

/// How long leads stay in one status.
#[derive(SimpleObject)]
pub struct StageDuration {
    /// The status.
    pub status: String,
    /// Median days of completed stays.
    pub median_days: Option<f64>,
}

/// Figures of one campaign.
#[derive(SimpleObject)]
pub struct CampaignStats {
    /// The campaign.
    pub campaign_id: ID,
    /// Its name.
    pub name: String,
    /// Members (live leads).
    pub leads: i64,
    /// Messages that went out: members whose status is sent, replied or bounced.
    pub sent: i64,
    /// Members that replied.
    pub replied: i64,
    /// replied / sent, 0 to 1 (0 when nothing was sent).
    pub reply_rate: f64,
}

impl From<crate::report::Report> for Report {
    fn from(r: crate::report::Report) -> Self {
        Report {
            total_leads: r.total_leads,
            by_status: r
                .by_status
                .into_iter()
                .map(|(status, count)| StatusCount { status, count })
                .collect(),
            funnel: r
                .funnel
                .into_iter()
                .map(|(status, reached, share)| FunnelStage {
                    status,
                    reached,
                    share,
                })
                .collect(),
            by_source: r
                .by_source
                .into_iter()
                .map(|(source, count)| SourceCount { source, count })
                .collect(),
            enrichment_rate: r.enrichment_rate,
            created_per_day: r
                .created_per_day
                .into_iter()
                .map(|(day, count)| DayCount { day, count })
                .collect(),
            median_days_in_stage: r
                .median_days_in_stage
                .into_iter()
                .map(|(status, median_days)| StageDuration {
                    status,
                    median_days,
                })
                .collect(),
            campaigns: r
                .campaigns
                .into_iter()
                .map(|c| CampaignStats {
                    campaign_id: ID(c.campaign_id),
                    name: c.name,
                    leads: c.leads,
                    sent: c.sent,
                    replied: c.replied,
                    reply_rate: c.reply_rate,
                })
                .collect(),
        }
    }
}

#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// Pipeline figures: counts by status and source, the funnel, enrichment rate, leads created
    /// per day, median days in each stage, campaign results.
    #[graphql(complexity = "crate::graphql::limits::COST_REPORT + child_complexity")]
    async fn report(&self, ctx: &Context<'_>) -> async_graphql::Result<Report> {
        caller(ctx)?.require(Role::Read).gql()?;
        let state = state(ctx);
        let statuses = state.config.lead_statuses.clone();
        let today = crate::time::now().date();
        let report = crate::report::compute_on(&state.db, statuses, today)
            .await
            .gql()?;
        Ok(report.into())
    }
}
