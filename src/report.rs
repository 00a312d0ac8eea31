//! The pipeline report (`report`), computed in SQL over live (not deleted) leads.
//!
//! Definitions:
//! - `byStatus`: leads per current status, configured statuses in pipeline order (zeros included),
//!   then any other status found (from Airtable) by name.
//! - `funnel`: for each configured status except `lost`, in pipeline order, how many leads reached
//!   at least that stage, and their share of all leads. A lead has reached every stage up to its
//!   current status. A `lost` lead counts as having reached the stage it was lost from (the old
//!   status of its last change to `lost`; the first stage when unknown). A status that is not
//!   configured counts as the first stage.
//! - `bySource`: leads per source, most first; `source` null for leads without one.
//! - `enrichmentRate`: enriched leads / all leads (0 without leads).
//! - `createdPerDay`: leads created on each of the last 30 UTC days, today last, zero-filled.
//! - `medianDaysInStage`: per configured status, the median length in days of completed stays in
//!   it (from the `created` / `status_changed` history: a stay ends with the change that leaves
//!   it). Stays still going on are left out (they have no length yet); `null` with no completed stay.
//! - `campaigns`: per campaign, members (live leads), `sent` = messages that went out (members
//!   whose status is sent, replied or bounced), `replied`, and `replyRate` = replied / sent.

use chrono::{Duration, NaiveDate};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text, Timestamp};
use diesel::sqlite::SqliteConnection;

use crate::error::AppError;

/// The status that leaves the pipeline (see `funnel`).
pub const LOST: &str = "lost";
/// Days in `createdPerDay`.
pub const DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub total_leads: i64,
    pub by_status: Vec<(String, i64)>,
    /// (status, reached, share)
    pub funnel: Vec<(String, i64, f64)>,
    pub by_source: Vec<(Option<String>, i64)>,
    pub enrichment_rate: f64,
    /// ("YYYY-MM-DD", count), oldest first.
    pub created_per_day: Vec<(String, i64)>,
    pub median_days_in_stage: Vec<(String, Option<f64>)>,
    pub campaigns: Vec<CampaignStats>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CampaignStats {
    pub campaign_id: String,
    pub name: String,
    pub leads: i64,
    pub sent: i64,
    pub replied: i64,
    pub reply_rate: f64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = Nullable<Text>)]
    k: Option<String>,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Totals {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    enriched: i64,
}

#[derive(QueryableByName)]
struct Median {
    #[diesel(sql_type = Text)]
    k: String,
    #[diesel(sql_type = Double)]
    v: f64,
}

#[derive(QueryableByName)]
struct CampaignRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    leads: i64,
    #[diesel(sql_type = BigInt)]
    sent: i64,
    #[diesel(sql_type = BigInt)]
    replied: i64,
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Computes the report. `statuses` is the configured pipeline (LEAD_STATUSES), `today` the
/// current UTC date.
pub fn compute(
    conn: &mut SqliteConnection,
    statuses: &[String],
    today: NaiveDate,
) -> Result<Report, AppError> {
    let totals: Totals = diesel::sql_query(
        "SELECT COUNT(*) AS total, COALESCE(SUM(enriched), 0) AS enriched FROM leads WHERE deleted_at IS NULL",
    )
    .get_result(conn)?;

    let counts: Vec<Count> = diesel::sql_query(
        "SELECT status AS k, COUNT(*) AS n FROM leads WHERE deleted_at IS NULL GROUP BY status ORDER BY status",
    )
    .load(conn)?;
    let count_of = |s: &str| {
        counts
            .iter()
            .find(|c| c.k.as_deref() == Some(s))
            .map_or(0, |c| c.n)
    };
    let mut by_status: Vec<(String, i64)> =
        statuses.iter().map(|s| (s.clone(), count_of(s))).collect();
    for c in &counts {
        if let Some(k) = &c.k
            && !statuses.contains(k)
        {
            by_status.push((k.clone(), c.n));
        }
    }

    // Funnel: the position each lead reached, then a running sum from the end.
    let stages: Vec<&String> = statuses.iter().filter(|s| *s != LOST).collect();
    let mut at_position = vec![0i64; stages.len()];
    let position = |s: Option<&str>| {
        s.and_then(|s| stages.iter().position(|x| *x == s))
            .unwrap_or(0)
    };
    for c in counts.iter().filter(|c| c.k.as_deref() != Some(LOST)) {
        if let Some(slot) = at_position.get_mut(position(c.k.as_deref())) {
            *slot += c.n;
        }
    }
    if statuses.iter().any(|s| s == LOST) {
        let lost_from: Vec<Count> = diesel::sql_query(
            // The lead's latest status change (by id: events are appended in order). `+e2.kind`
            // keeps SQLite on the (lead_id, at) index instead of walking every status change.
            "SELECT e.changes ->> '$.status[0]' AS k, COUNT(*) AS n FROM leads l \
             JOIN lead_events e ON e.id = (SELECT MAX(e2.id) FROM lead_events e2 \
                  WHERE e2.lead_id = l.id AND +e2.kind = 'status_changed') \
             WHERE l.deleted_at IS NULL AND l.status = ? GROUP BY k",
        )
        .bind::<Text, _>(LOST)
        .load(conn)?;
        for c in lost_from {
            if let Some(slot) = at_position.get_mut(position(c.k.as_deref())) {
                *slot += c.n;
            }
        }
    }
    let mut funnel = Vec::with_capacity(stages.len());
    let mut reached = 0;
    for (i, s) in stages.iter().enumerate().rev() {
        reached += at_position[i];
        funnel.push(((*s).clone(), reached, ratio(reached, totals.total)));
    }
    funnel.reverse();

    let by_source: Vec<(Option<String>, i64)> = diesel::sql_query(
        "SELECT source AS k, COUNT(*) AS n FROM leads WHERE deleted_at IS NULL GROUP BY source ORDER BY n DESC, source",
    )
    .load::<Count>(conn)?
    .into_iter()
    .map(|c| (c.k, c.n))
    .collect();

    let first_day = today - Duration::days(DAYS - 1);
    let per_day: Vec<Count> = diesel::sql_query(
        "SELECT date(created_at) AS k, COUNT(*) AS n FROM leads \
         WHERE created_at >= ? AND deleted_at IS NULL GROUP BY k",
    )
    .bind::<Timestamp, _>(first_day.and_hms_opt(0, 0, 0).unwrap_or_default())
    .load(conn)?;
    let created_per_day = (0..DAYS)
        .map(|d| {
            let day = (first_day + Duration::days(d))
                .format("%Y-%m-%d")
                .to_string();
            let n = per_day
                .iter()
                .find(|c| c.k.as_deref() == Some(day.as_str()))
                .map_or(0, |c| c.n);
            (day, n)
        })
        .collect();

    let medians: Vec<Median> = diesel::sql_query(
        "WITH seq AS ( \
            SELECT e.kind, e.changes ->> '$.status[0]' AS old, \
                   julianday(e.at) - julianday(LAG(e.at) OVER (PARTITION BY e.lead_id ORDER BY e.at, e.id)) AS days \
            FROM lead_events e \
            WHERE e.kind IN ('created', 'status_changed') \
              AND e.lead_id IN (SELECT id FROM leads WHERE deleted_at IS NULL)), \
         stays AS (SELECT old AS status, days FROM seq \
                   WHERE kind = 'status_changed' AND old IS NOT NULL AND days IS NOT NULL), \
         ranked AS (SELECT status, days, ROW_NUMBER() OVER (PARTITION BY status ORDER BY days) AS rn, \
                           COUNT(*) OVER (PARTITION BY status) AS cnt FROM stays) \
         SELECT status AS k, AVG(days) AS v FROM ranked \
         WHERE rn IN ((cnt + 1) / 2, (cnt + 2) / 2) GROUP BY status",
    )
    .load(conn)?;
    let median_days_in_stage = statuses
        .iter()
        .map(|s| (s.clone(), medians.iter().find(|m| m.k == *s).map(|m| m.v)))
        .collect();

    let campaigns = diesel::sql_query(
        "SELECT c.id AS id, c.name AS name, COUNT(m.lead_id) AS leads, \
                COALESCE(SUM(CASE WHEN m.status IN ('sent', 'replied', 'bounced') THEN 1 ELSE 0 END), 0) AS sent, \
                COALESCE(SUM(CASE WHEN m.status = 'replied' THEN 1 ELSE 0 END), 0) AS replied \
         FROM campaigns c LEFT JOIN campaign_leads m ON m.campaign_id = c.id \
              AND EXISTS (SELECT 1 FROM leads l WHERE l.id = m.lead_id AND l.deleted_at IS NULL) \
         GROUP BY c.id, c.name, c.created_at ORDER BY c.created_at DESC, c.id",
    )
    .load::<CampaignRow>(conn)?
    .into_iter()
    .map(|r| CampaignStats {
        reply_rate: ratio(r.replied, r.sent),
        campaign_id: r.id,
        name: r.name,
        leads: r.leads,
        sent: r.sent,
        replied: r.replied,
    })
    .collect();

    Ok(Report {
        total_leads: totals.total,
        by_status,
        funnel,
        by_source,
        enrichment_rate: ratio(totals.enriched, totals.total),
        created_per_day,
        median_days_in_stage,
        campaigns,
    })
}
