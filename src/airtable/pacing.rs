//! Pacing: how the client stays under Airtable's per-base rate limit.
//!
//! - One [`BasePacer`] per (API URL, base id) in the process, handed out by a registry, so every
//!   client and every clone of a client that talks to a base shares it. (Airtable counts 5 req/s
//!   per base, whatever the token.)
//! - The pacer is a governor GCRA limiter with burst 1 and a period of `1 s / rate` stretched by a
//!   safety margin (default 10 %). Requests are therefore *spaced*, never bursted: with a burst of
//!   `rate`, a quota of `rate`/s lets `2 × rate` through in a sliding second at the boundary, which
//!   Airtable answers with 429 and a 30 s lock-out. The margin absorbs scheduling jitter between
//!   the moment a request is admitted here and the moment it reaches the server.
//! - After a 429 the pacer is paused (`rate_limit_pause` + jitter): every caller waits before its
//!   next request to that base.
//! - Retryable failures (5xx, timeouts, connection errors) back off with full jitter:
//!   `uniform(0, min(max, initial × 2^(attempt-1)))`, at least `Retry-After` when the server sent one.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use rand::Rng;
use tokio::time::Instant;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// The shared pacing state of one base.
pub struct BasePacer {
    limiter: Limiter,
    interval: Duration,
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for BasePacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasePacer")
            .field("interval", &self.interval)
            .finish()
    }
}

impl BasePacer {
    /// A pacer for `rate` requests a second, spaced at least `(1 s / rate) × (1 + margin)` apart.
    pub fn new(rate: u32, margin: f64) -> Self {
        let rate = rate.max(1);
        let interval = Duration::from_secs_f64((1.0 / f64::from(rate)) * (1.0 + margin.max(0.0)));
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        BasePacer {
            limiter: RateLimiter::direct(quota),
            interval,
            paused_until: Mutex::new(None),
        }
    }

    /// The minimum spacing between two requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits until this base may receive one more request: the pause after a 429, then a slot.
    pub async fn acquire(&self) {
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        self.limiter.until_ready().await;
        // A 429 seen by another caller while we waited for our slot pauses us too.
        let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = until.filter(|t| *t > Instant::now()) {
            tokio::time::sleep_until(t).await;
        }
    }

    /// Pauses the base for `d` (keeps a longer pause already in force).
    pub fn pause(&self, d: Duration) {
        let mut guard = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        let t = Instant::now() + d;
        if guard.is_none_or(|old| old < t) {
            *guard = Some(t);
        }
    }
}

/// (API URL, base id) -> pacer.
type Registry = Mutex<HashMap<(String, String), Arc<BasePacer>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The process-wide pacer of `base_id` at `api_url`. The first caller's rate and margin win.
pub fn pacer_for(api_url: &str, base_id: &str, rate: u32, margin: f64) -> Arc<BasePacer> {
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    map.entry((
        api_url.trim_end_matches('/').to_string(),
        base_id.to_string(),
    ))
    .or_insert_with(|| Arc::new(BasePacer::new(rate, margin)))
    .clone()
}

/// Full-jitter exponential backoff for retry number `attempt` (1 = first retry).
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exp = initial.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let cap = exp.min(max);
    if cap.is_zero() {
        return cap;
    }
    rand::rng().random_range(Duration::ZERO..=cap)
}

/// `base` plus up to `jitter` more.
pub fn with_jitter(base: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    base + rand::rng().random_range(Duration::ZERO..=jitter)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_cap() {
        for attempt in 1..20 {
            let d = backoff(attempt, Duration::from_secs(1), Duration::from_secs(300));
            assert!(d <= Duration::from_secs(300));
            assert!(d <= Duration::from_secs(1) * 2u32.pow((attempt - 1).min(9)));
        }
    }

    #[test]
    fn registry_shares_one_pacer_per_base() {
        let a = pacer_for("http://x/", "appA", 5, 0.1);
        let b = pacer_for("http://x", "appA", 5, 0.1);
        let c = pacer_for("http://x", "appB", 5, 0.1);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(a.interval() >= Duration::from_millis(200));
    }
}
