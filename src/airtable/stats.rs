//! Request accounting: every request by kind and outcome, plus retries.
//!
//! [`RequestStats`] is shared (`Arc`) by all clones of a client. A sync run snapshots it before and
//! after to record its own request count. The same events also go to the `metrics` facade as
//! `airtable_requests_total{kind,status}`, `airtable_retries_total{kind}` and
//! `airtable_rate_limited_total`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    List,
    Get,
    Create,
    Update,
    Upsert,
    Delete,
}

impl RequestKind {
    pub const ALL: [RequestKind; 6] = [
        RequestKind::List,
        RequestKind::Get,
        RequestKind::Create,
        RequestKind::Update,
        RequestKind::Upsert,
        RequestKind::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::List => "list",
            RequestKind::Get => "get",
            RequestKind::Create => "create",
            RequestKind::Update => "update",
            RequestKind::Upsert => "upsert",
            RequestKind::Delete => "delete",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    RateLimited,
    ClientError,
    ServerError,
    Network,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RateLimited => "429",
            Outcome::ClientError => "4xx",
            Outcome::ServerError => "5xx",
            Outcome::Network => "network",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Atomic counters, shared by every clone of a client.
#[derive(Debug, Default)]
pub struct RequestStats {
    counts: [[AtomicU64; 5]; 6],
    retries: AtomicU64,
    rate_limited: AtomicU64,
}

/// A copy of the counters at one moment. `after.since(&before)` gives one run's share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// `[kind][outcome]`, indexed like [`RequestKind::ALL`] and [`Outcome`].
    pub counts: [[u64; 5]; 6],
    pub retries: u64,
    pub rate_limited: u64,
}

impl StatsSnapshot {
    /// Every request sent, whatever its outcome.
    pub fn requests(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn by_kind(&self, kind: RequestKind) -> u64 {
        self.counts[kind.index()].iter().sum()
    }

    pub fn by_outcome(&self, outcome: Outcome) -> u64 {
        self.counts.iter().map(|k| k[outcome.index()]).sum()
    }

    pub fn since(&self, before: &StatsSnapshot) -> StatsSnapshot {
        let mut out = self.clone();
        for (k, row) in out.counts.iter_mut().enumerate() {
            for (o, c) in row.iter_mut().enumerate() {
                *c = c.saturating_sub(before.counts[k][o]);
            }
        }
        out.retries = self.retries.saturating_sub(before.retries);
        out.rate_limited = self.rate_limited.saturating_sub(before.rate_limited);
        out
    }
}

impl RequestStats {
    pub fn record(&self, kind: RequestKind, outcome: Outcome) {
        self.counts[kind.index()][outcome.index()].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("airtable_requests_total", "kind" => kind.as_str(), "status" => outcome.as_str())
            .increment(1);
        if outcome == Outcome::RateLimited {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("airtable_rate_limited_total").increment(1);
        }
    }

    pub fn record_retry(&self, kind: RequestKind) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("airtable_retries_total", "kind" => kind.as_str()).increment(1);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let mut s = StatsSnapshot::default();
        for (k, row) in self.counts.iter().enumerate() {
            for (o, c) in row.iter().enumerate() {
                s.counts[k][o] = c.load(Ordering::Relaxed);
            }
        }
        s.retries = self.retries.load(Ordering::Relaxed);
        s.rate_limited = self.rate_limited.load(Ordering::Relaxed);
        s
    }
}
