//! Pacing: how the client stays under Airtable's per-base rate limit.
//!
//! - One [`BasePacer`] per (API URL, base id) in the process, handed out by a registry, so every
//!   client and every clone of a client that talks to a base shares it. (Airtable counts 5 req/s
//!   per base, whatever the token.)
//! - **The rule: at most `rate` requests in any 1-second window, as the server sees them.** The
//!   pacer has `rate` slots. A request takes a free slot before it is sent and gives it back when
//!   its answer (status line and headers) arrives, or when it fails; the slot is free again one
//!   window (1 s + `margin`) *after that*. Why the answer and not the send time: the server saw
//!   the request somewhere between the two, so two requests using one slot arrive at least a
//!   window apart whatever the network's delays, and no `rate + 1` requests can arrive within
//!   one second (two of them would share a slot). Spacing send times instead needs a margin as
//!   large as the worst jitter between two requests' delays, paid on every request, and still
//!   429s (a 30 s lock-out) when the jitter is larger.
//! - What it costs: a burst of up to `rate` requests goes at once, then each slot waits one window
//!   plus the request's round trip. Sequential requests (a pull's pages, a push's batches) take
//!   `ceil(n / rate) - 1` windows plus the round trips of the first request of each window: on
//!   loopback about the rate bound `n / rate` s, over a WAN with a round trip `L` about
//!   `(1 s + L)` per `rate` requests. (The even spacing this replaced cost `1.1 × 1 s / rate` per
//!   request: 10 % over the bound everywhere, and it still relied on the jitter staying under
//!   20 ms.)
//! - `margin` (`ClientOptions::pacing_margin`) covers the clocks alone: timer granularity and a
//!   server clock that runs slightly fast. It does not need to cover network jitter.
//! - After a 429 the pacer is paused (`rate_limit_pause` + jitter): every caller waits before its
//!   next request to that base.
//! - Retryable failures (5xx, timeouts, connection errors) back off with full jitter:
//!   `uniform(0, min(max, initial × 2^(attempt-1)))`, at least `Retry-After` when the server sent one.
//!   The base is then marked as backing off for that time ([`BasePacer::back_off`]): nobody is
//!   held by it, but a caller who cannot wait (a read-through) asks [`BasePacer::busy`] and does
//!   not send a request that would most likely fail or, after a 429, extend the lock-out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;

/// One slot: usable from an instant, or held by a request in flight.
#[derive(Debug, Clone, Copy)]
enum Slot {
    FreeFrom(Instant),
    InFlight,
}

#[derive(Debug)]
struct State {
    slots: Vec<Slot>,
    paused_until: Option<Instant>,
    backing_off_until: Option<Instant>,
}

/// Why a base should not be asked now by a caller who cannot wait, and for how long more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Paused after a 429 (every request waits).
    Paused(Duration),
    /// Backing off after 5xx, timeouts or connection errors.
    BackingOff(Duration),
}

/// The shared pacing state of one base.
#[derive(Debug)]
pub struct BasePacer {
    window: Duration,
    state: Mutex<State>,
    /// Signalled when a request in flight gives its slot back.
    released: Notify,
}

/// A slot held by one request; dropping it (when the answer came, or the request failed or was
/// abandoned) starts the slot's window.
#[derive(Debug)]
pub struct Permit<'a> {
    pacer: &'a BasePacer,
    slot: usize,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let free_from = Instant::now() + self.pacer.window;
        self.pacer.lock().slots[self.slot] = Slot::FreeFrom(free_from);
        self.pacer.released.notify_waiters();
    }
}

impl BasePacer {
    /// A pacer for at most `rate` requests in any window of 1 s + `margin`.
    pub fn new(rate: u32, margin: Duration) -> Self {
        let now = Instant::now();
        BasePacer {
            window: Duration::from_secs(1) + margin,
            state: Mutex::new(State {
                slots: vec![Slot::FreeFrom(now); rate.max(1) as usize],
                paused_until: None,
                backing_off_until: None,
            }),
            released: Notify::new(),
        }
    }

    /// The window a slot stays taken after its request's answer.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until this base may receive one more request (after any pause following a 429) and
    /// takes a slot for it. Hold the permit until the answer's headers arrive.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            // Registered before looking, so a release between the look and the wait is not lost.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let wake = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.paused_until.filter(|t| *t > now) {
                    Some(until) => Some(until),
                    None => {
                        let soonest = state
                            .slots
                            .iter()
                            .enumerate()
                            .filter_map(|(i, s)| match s {
                                Slot::FreeFrom(t) => Some((i, *t)),
                                Slot::InFlight => None,
                            })
                            .min_by_key(|(_, t)| *t);
                        match soonest {
                            Some((slot, t)) if t <= now => {
                                state.slots[slot] = Slot::InFlight;
                                return Permit { pacer: self, slot };
                            }
                            Some((_, t)) => Some(t),
                            // Every slot is in flight: wait for an answer.
                            None => None,
                        }
                    }
                }
            };
            match wake {
                Some(t) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(t) => {}
                        () = &mut released => {}
                    }
                }
                None => released.await,
            }
        }
    }

    /// Pauses the base for `d` (keeps a longer pause already in force).
    pub fn pause(&self, d: Duration) {
        let mut state = self.lock();
        let t = Instant::now() + d;
        if state.paused_until.is_none_or(|old| old < t) {
            state.paused_until = Some(t);
        }
    }

    /// Marks the base as backing off for `d` after a retryable failure (keeps a longer mark).
    /// Unlike [`Self::pause`] it holds nobody; see [`Self::busy`].
    pub fn back_off(&self, d: Duration) {
        let mut state = self.lock();
        let t = Instant::now() + d;
        if state.backing_off_until.is_none_or(|old| old < t) {
            state.backing_off_until = Some(t);
        }
    }

    /// Whether the base is paused (429) or backing off (errors) now, and for how long more.
    pub fn busy(&self) -> Option<Busy> {
        let state = self.lock();
        let now = Instant::now();
        let left = |t: Option<Instant>| t.filter(|t| *t > now).map(|t| t - now);
        left(state.paused_until)
            .map(Busy::Paused)
            .or_else(|| left(state.backing_off_until).map(Busy::BackingOff))
    }
}

/// (API URL, base id) -> pacer.
type Registry = Mutex<HashMap<(String, String), Arc<BasePacer>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The process-wide pacer of `base_id` at `api_url`. The first caller's rate and margin win.
pub fn pacer_for(api_url: &str, base_id: &str, rate: u32, margin: Duration) -> Arc<BasePacer> {
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
        let a = pacer_for("http://x/", "appA", 5, Duration::from_millis(10));
        let b = pacer_for("http://x", "appA", 5, Duration::from_millis(10));
        let c = pacer_for("http://x", "appB", 5, Duration::from_millis(10));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(a.window() >= Duration::from_secs(1));
    }

    // Real time, lower bounds only: what the pacer guarantees, never how fast the machine is.

    /// Sends `n` requests one after another, each answered `latency` after it was let through;
    /// returns when each was let through.
    async fn sequential(pacer: &BasePacer, n: usize, latency: Duration) -> Vec<Instant> {
        let mut sent = Vec::new();
        for _ in 0..n {
            let permit = pacer.acquire().await;
            sent.push(Instant::now());
            tokio::time::sleep(latency).await;
            drop(permit);
        }
        sent
    }

    #[tokio::test]
    async fn a_slot_is_free_again_one_window_after_its_answer() {
        let pacer = BasePacer::new(2, Duration::ZERO);
        let latency = Duration::from_millis(20);
        let sent = sequential(&pacer, 5, latency).await;
        for i in 2..5 {
            assert!(
                sent[i] - sent[i - 2] >= latency + pacer.window(),
                "request {i} went {:?} after request {}",
                sent[i] - sent[i - 2],
                i - 2
            );
        }
    }

    #[tokio::test]
    async fn requests_in_flight_hold_their_slots_until_answered() {
        let pacer = Arc::new(BasePacer::new(2, Duration::ZERO));
        let a = pacer.acquire().await;
        let b = pacer.acquire().await;
        let waiter = {
            let pacer = pacer.clone();
            tokio::spawn(async move {
                let _c = pacer.acquire().await;
                Instant::now()
            })
        };
        // Slow answers: the third request waits for the first of them, then one more window.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let answered = Instant::now();
        drop(a);
        let third = waiter.await.unwrap();
        assert!(
            third - answered >= Duration::from_secs(1),
            "{:?}",
            third - answered
        );
        drop(b);
    }

    #[test]
    fn busy_tells_a_pause_from_a_back_off_and_ends() {
        let pacer = BasePacer::new(5, Duration::ZERO);
        assert_eq!(pacer.busy(), None);
        pacer.back_off(Duration::from_secs(60));
        assert!(matches!(pacer.busy(), Some(Busy::BackingOff(d)) if d > Duration::from_secs(50)));
        pacer.pause(Duration::from_secs(30));
        assert!(
            matches!(pacer.busy(), Some(Busy::Paused(_))),
            "a pause is told first"
        );
        let short = BasePacer::new(5, Duration::ZERO);
        short.back_off(Duration::ZERO);
        assert_eq!(short.busy(), None, "a mark in the past is over");
    }

    #[tokio::test]
    async fn a_pause_holds_every_caller() {
        let pacer = BasePacer::new(5, Duration::ZERO);
        let start = Instant::now();
        pacer.pause(Duration::from_millis(300));
        drop(pacer.acquire().await);
        assert!(Instant::now() - start >= Duration::from_millis(300));
    }
}
