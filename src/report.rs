//! The pipeline report (`report`), computed in SQL over live (not deleted) leads.
//!
//! Fast at 100,000 leads (goal 100 ms, BENCHMARKS.md) because nothing replays the history: the
//! counts are one walk of the covering index `leads_report` plus a range of `leads_live_created`,
//! and the stage medians and "lost from" read the stored stays (`leads::stays`). The server reads
//! the two halves on two connections at once ([`compute_on`]).
//!
//! Definitions:
//! - `byStatus`: leads per current status, configured statuses in pipeline order (zeros included),
//!   then any other status found (from Airtable) by name.
//! - `funnel`: for each configured status except `lost`, in pipeline order, how many leads reached
//!   at least that stage, and their share of all leads. A lead has reached every stage up to its
//!   current status. A `lost` lead counts as having reached the stage it was lost from (the stage
//!   before its current `lost` stay in `Lead.stages`; the first stage when unknown). A status that is not
//!   configured counts as the first stage.
//! - `bySource`: leads per source, most first; `source` null for leads without one.
//! - `enrichmentRate`: enriched leads / all leads (0 without leads).
//! - `createdPerDay`: leads created on each of the last 30 UTC days, today last, zero-filled.
//! - `medianDaysInStage`: per configured status, the median length in days of completed stays in
//!   it (the stages of `Lead.stages`, stored in `lead_stays`: a stay ends with the change that
//!   leaves it). Stays still going on are left out (they have no length yet); `null` with no
//!   completed stay.
//! - `campaigns`: per campaign, members (live leads), `sent` = messages that went out (members
//!   whose status is sent, replied or bounced), `replied`, and `replyRate` = replied / sent.

use chrono::{Duration, NaiveDate};
use diesel::prelude::*;
use std::collections::BTreeMap;

use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};
use diesel::sqlite::SqliteConnection;

use crate::db::Db;
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
struct Group {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    source: Option<String>,
    #[diesel(sql_type = Bool)]
    enriched: bool,
    #[diesel(sql_type = BigInt)]
    n: i64,
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

/// Computes the report on one connection. `statuses` is the configured pipeline
/// (LEAD_STATUSES), `today` the current UTC date.
pub fn compute(
    conn: &mut SqliteConnection,
    statuses: &[String],
    today: NaiveDate,
) -> Result<Report, AppError> {
    let counts = read_counts(conn, today)?;
    let history = read_history(conn, statuses)?;
    Ok(assemble(statuses, counts, history))
}

/// [`compute`] with its two halves (the leads' counts; the stays and campaigns) read on two
/// pooled connections at once: WAL readers do not block each other, so the report takes about
/// as long as its slower half.
pub async fn compute_on(
    db: &Db,
    statuses: Vec<String>,
    today: NaiveDate,
) -> Result<Report, AppError> {
    let wanted = statuses.clone();
    let (counts, history) = tokio::try_join!(
        db.run(move |c| read_counts(c, today)),
        db.run(move |c| read_history(c, &wanted)),
    )?;
    Ok(assemble(&statuses, counts, history))
}

/// What the report needs from the leads table.
struct Counts {
    groups: Vec<Group>,
    per_day: Vec<Count>,
    today: NaiveDate,
}

/// What the report needs from the stored stays and the campaigns.
struct History {
    /// (the status before `lost`, leads)
    lost_from: Vec<(Option<String>, i64)>,
    medians: Vec<(String, Option<f64>)>,
    campaigns: Vec<CampaignStats>,
}

fn first_day(today: NaiveDate) -> NaiveDate {
    today - Duration::days(DAYS - 1)
}

fn read_counts(conn: &mut SqliteConnection, today: NaiveDate) -> Result<Counts, AppError> {
    // Total, by status, by source and enriched: one walk of the covering index `leads_report`.
    let groups: Vec<Group> = diesel::sql_query(
        "SELECT status, source, enriched, COUNT(*) AS n FROM leads WHERE deleted_at IS NULL \
         GROUP BY status, source, enriched",
    )
    .load(conn)?;
    // A range of the covering index `leads_live_created`.
    let per_day: Vec<Count> = diesel::sql_query(
        "SELECT date(created_at) AS k, COUNT(*) AS n FROM leads \
         WHERE deleted_at IS NULL AND created_at >= ? GROUP BY k",
    )
    .bind::<Timestamp, _>(first_day(today).and_hms_opt(0, 0, 0).unwrap_or_default())
    .load(conn)?;
    Ok(Counts {
        groups,
        per_day,
        today,
    })
}

fn read_history(conn: &mut SqliteConnection, statuses: &[String]) -> Result<History, AppError> {
    // Where each lost lead came from: the stay before its current (open) `lost` stay.
    let lost_from: Vec<(Option<String>, i64)> = if statuses.iter().any(|s| s == LOST) {
        use crate::db::schema::lead_stays as t;
        t::table
            .filter(t::status.eq(LOST))
            .filter(t::left_at.is_null())
            .group_by(t::from_status)
            .select((t::from_status, diesel::dsl::count_star()))
            .load(conn)?
    } else {
        Vec::new()
    };
    let medians = medians(conn, statuses)?;
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

    Ok(History {
        lost_from,
        medians,
        campaigns,
    })
}

fn assemble(statuses: &[String], counts: Counts, history: History) -> Report {
    let groups = &counts.groups;
    let total: i64 = groups.iter().map(|g| g.n).sum();
    let enriched: i64 = groups.iter().filter(|g| g.enriched).map(|g| g.n).sum();
    let mut by_status_map: BTreeMap<&str, i64> = BTreeMap::new();
    let mut sources: BTreeMap<Option<&str>, i64> = BTreeMap::new();
    for g in groups {
        *by_status_map.entry(g.status.as_str()).or_default() += g.n;
        *sources.entry(g.source.as_deref()).or_default() += g.n;
    }
    let count_of = |s: &str| by_status_map.get(s).copied().unwrap_or(0);
    let mut by_status: Vec<(String, i64)> =
        statuses.iter().map(|s| (s.clone(), count_of(s))).collect();
    for (k, n) in &by_status_map {
        if !statuses.iter().any(|s| s == k) {
            by_status.push(((*k).to_string(), *n));
        }
    }
    let mut by_source: Vec<(Option<String>, i64)> = sources
        .into_iter()
        .map(|(k, n)| (k.map(str::to_string), n))
        .collect();
    // Most first, then by name (None first, as SQL sorts NULL).
    by_source.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

    // Funnel: the position each lead reached, then a running sum from the end.
    let stages: Vec<&String> = statuses.iter().filter(|s| *s != LOST).collect();
    let mut at_position = vec![0i64; stages.len()];
    let position = |s: Option<&str>| {
        s.and_then(|s| stages.iter().position(|x| *x == s))
            .unwrap_or(0)
    };
    for (k, n) in by_status_map.iter().filter(|(k, _)| **k != LOST) {
        if let Some(slot) = at_position.get_mut(position(Some(k))) {
            *slot += n;
        }
    }
    for (from, n) in &history.lost_from {
        if let Some(slot) = at_position.get_mut(position(from.as_deref())) {
            *slot += n;
        }
    }
    let mut funnel = Vec::with_capacity(stages.len());
    let mut reached = 0;
    for (i, s) in stages.iter().enumerate().rev() {
        reached += at_position[i];
        funnel.push(((*s).clone(), reached, ratio(reached, total)));
    }
    funnel.reverse();

    let first = first_day(counts.today);
    let created_per_day = (0..DAYS)
        .map(|d| {
            let day = (first + Duration::days(d)).format("%Y-%m-%d").to_string();
            let n = counts
                .per_day
                .iter()
                .find(|c| c.k.as_deref() == Some(day.as_str()))
                .map_or(0, |c| c.n);
            (day, n)
        })
        .collect();

    Report {
        total_leads: total,
        by_status,
        funnel,
        by_source,
        enrichment_rate: ratio(enriched, total),
        created_per_day,
        median_days_in_stage: history.medians,
        campaigns: history.campaigns,
    }
}

/// Median length of completed stays per configured status, from the stored stays: per status a
/// range count and an `OFFSET` walk to the middle of the covering index `lead_stays_days`.
fn medians(
    conn: &mut SqliteConnection,
    statuses: &[String],
) -> Result<Vec<(String, Option<f64>)>, AppError> {
    use crate::db::schema::lead_stays as t;
    let mut out = Vec::with_capacity(statuses.len());
    for s in statuses {
        // `days` is NULL exactly while a stay goes on.
        let done = t::table
            .filter(t::status.eq(s))
            .filter(t::days.is_not_null());
        let n: i64 = done.count().get_result(conn)?;
        // Rows (n-1)/2 and n/2 (0-based): the same row when n is odd.
        let middle: Vec<f64> = done
            .select(t::days.assume_not_null())
            .order(t::days)
            .limit(if n % 2 == 1 { 1 } else { 2 })
            .offset((n - 1).max(0) / 2)
            .load(conn)?;
        let median = (!middle.is_empty()).then(|| middle.iter().sum::<f64>() / middle.len() as f64);
        out.push((s.clone(), median));
    }
    Ok(out)
}
