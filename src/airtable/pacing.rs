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
//! - **Outages are tracked per base, not per request** (SPEC §5.4): a 5xx, a timeout or a
//!   connection error marks the base failing, and the next request may go only at the base's
//!   probe time, `initial × 2^(failures-1)` capped at `max` (equal jitter: between half and all of
//!   it), at least `Retry-After` when the server sent one. While the base is failing exactly one
//!   request at a time is let through (the probe, [`Gate::Probe`]); every other caller either
//!   waits for the probe's outcome (a call already retrying) or is told at once that the base is
//!   backing off ([`Gate::Down`]; a new call, so a push during an outage tries no row and a
//!   read-through answers at once). Any answer from the server, a 429 or a 422 included, ends the
//!   outage. So a 30-minute outage costs the first few retries and then one probe per interval:
//!   about 15 requests with the production backoff (1 s doubling, at most 5 min).

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
    outage: Outage,
}

/// The base's health as its answers showed it.
#[derive(Debug, Default)]
struct Outage {
    /// Consecutive 5xx/timeouts/connection errors; 0 while the base answers.
    failures: u32,
    /// When the next probe may go (while `failures > 0`).
    probe_at: Option<Instant>,
    /// A probe is in flight.
    probing: bool,
    /// Numbers the probes, so an old token's drop never frees a newer probe.
    probe_gen: u64,
}

/// Why a base should not be asked now by a caller who cannot wait (a read-through), and for
/// how long more at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Paused after a 429 (every request waits).
    Paused(Duration),
    /// Failing (5xx, timeouts, connection errors): until a probe gets an answer.
    BackingOff(Duration),
}

/// What a caller may do now, as [`BasePacer::gate`] says.
#[derive(Debug)]
pub enum Gate<'a> {
    /// The base answers: send.
    Open,
    /// The base is failing and this caller sends the one probe; report its outcome with
    /// [`BasePacer::report`] (dropping the token unreported frees the probe for another caller).
    Probe(ProbeToken<'a>),
    /// The base is failing: nothing may be sent before `until` (`None`: a probe is in flight).
    Down { until: Option<Instant> },
}

/// The right to send the probe of a failing base.
#[derive(Debug)]
pub struct ProbeToken<'a> {
    pacer: &'a BasePacer,
    generation: u64,
}

impl Drop for ProbeToken<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.pacer.lock();
            if state.outage.probe_gen == self.generation {
                state.outage.probing = false;
            }
        }
        self.pacer.outage_changed.notify_waiters();
    }
}

/// The shared pacing state of one base.
#[derive(Debug)]
pub struct BasePacer {
    window: Duration,
    state: Mutex<State>,
    /// Signalled when a request in flight gives its slot back.
    released: Notify,
    /// Signalled when a probe ends (reported or abandoned).
    outage_changed: Notify,
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
                outage: Outage::default(),
            }),
            released: Notify::new(),
            outage_changed: Notify::new(),
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
}

impl BasePacer {
    /// Whether the base is paused (429) or failing now: a caller who cannot wait sends nothing
    /// (the probes of the runs, not a read-through, find out when the base is back).
    pub fn busy(&self) -> Option<Busy> {
        let now = Instant::now();
        if let Some(until) = self.lock().paused_until.filter(|t| *t > now) {
            return Some(Busy::Paused(until - now));
        }
        self.backing_off().map(Busy::BackingOff)
    }

    /// Whether a request may go now (see the module docs on outages).
    pub fn gate(&self) -> Gate<'_> {
        let mut state = self.lock();
        let outage = &mut state.outage;
        if outage.failures == 0 {
            return Gate::Open;
        }
        if outage.probing {
            return Gate::Down { until: None };
        }
        match outage.probe_at {
            Some(t) if t > Instant::now() => Gate::Down { until: Some(t) },
            _ => {
                outage.probing = true;
                outage.probe_gen += 1;
                Gate::Probe(ProbeToken {
                    pacer: self,
                    generation: outage.probe_gen,
                })
            }
        }
    }

    /// Waits until the failing base may be probed: the probe in flight ended, or the base's
    /// probe time (at most `until`) came.
    pub async fn wait_for_probe(&self, until: Option<Instant>) {
        let changed = self.outage_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let deadline = {
            let state = self.lock();
            let outage = &state.outage;
            if outage.failures == 0 {
                return;
            }
            if outage.probing {
                // A probe in flight always ends: its token's drop notifies.
                until
            } else {
                match outage.probe_at {
                    Some(t) if t > Instant::now() => Some(until.map_or(t, |u| u.min(t))),
                    _ => return,
                }
            }
        };
        match deadline {
            Some(t) => {
                tokio::select! {
                    () = tokio::time::sleep_until(t) => {}
                    () = &mut changed => {}
                }
            }
            None => changed.await,
        }
    }

    /// Records how a request ended: `reachable` when the server answered (any status but 5xx),
    /// else the base's failures grow and its next probe moves out (`retry_after` at least).
    /// Returns the consecutive failures now.
    pub fn report(
        &self,
        reachable: bool,
        retry_after: Option<Duration>,
        initial: Duration,
        max: Duration,
    ) -> u32 {
        let failures = {
            let mut state = self.lock();
            let outage = &mut state.outage;
            outage.probing = false;
            if reachable {
                outage.failures = 0;
                outage.probe_at = None;
            } else {
                outage.failures = outage.failures.saturating_add(1);
                let wait = outage_backoff(outage.failures, initial, max)
                    .max(retry_after.unwrap_or_default());
                outage.probe_at = Some(Instant::now() + wait);
            }
            outage.failures
        };
        self.outage_changed.notify_waiters();
        failures
    }

    /// How long until the failing base may be probed again; `None` when it answers.
    /// (`Some(ZERO)`: a probe may go now, or one is in flight.)
    pub fn backing_off(&self) -> Option<Duration> {
        let state = self.lock();
        let outage = &state.outage;
        if outage.failures == 0 {
            return None;
        }
        let now = Instant::now();
        Some(
            outage
                .probe_at
                .filter(|t| *t > now)
                .map_or(Duration::ZERO, |t| t - now),
        )
    }

    /// Consecutive failures of the base (0 while it answers).
    pub fn failures(&self) -> u32 {
        self.lock().outage.failures
    }
}

/// The wait before probe number `failures + 1` of a failing base: `initial × 2^(failures-1)`
/// capped at `max`, with equal jitter (between half and all of it), so after the first few
/// probes they are at least `max / 2` apart.
pub fn outage_backoff(failures: u32, initial: Duration, max: Duration) -> Duration {
    let exp = initial.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(30)));
    let cap = exp.min(max);
    if cap.is_zero() {
        return cap;
    }
    let half = cap / 2;
    half + rand::rng().random_range(Duration::ZERO..=cap - half)
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
    fn outage_backoff_doubles_and_keeps_at_least_half_of_its_cap() {
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(300));
        for failures in 1..40 {
            let cap = (i * 2u32.pow((failures - 1).min(9))).min(m);
            let d = outage_backoff(failures, i, m);
            assert!(d <= cap && d >= cap / 2, "{failures}: {d:?} of {cap:?}");
        }
    }

    #[tokio::test]
    async fn a_failing_base_lets_one_probe_through_at_its_time() {
        let pacer = BasePacer::new(5, Duration::ZERO);
        let (i, m) = (Duration::from_millis(200), Duration::from_secs(1));
        assert!(matches!(pacer.gate(), Gate::Open));
        assert_eq!(pacer.report(false, None, i, m), 1);
        // Backing off: nobody may send.
        assert!(matches!(pacer.gate(), Gate::Down { until: Some(_) }));
        assert!(pacer.backing_off().is_some_and(|d| d > Duration::ZERO));
        pacer.wait_for_probe(None).await;
        let probe = pacer.gate();
        assert!(matches!(probe, Gate::Probe(_)));
        // One probe at a time.
        assert!(matches!(pacer.gate(), Gate::Down { until: None }));
        drop(probe);
        // An abandoned probe frees the slot for another caller; an answer ends the outage.
        let Gate::Probe(token) = pacer.gate() else {
            panic!("the probe was not freed");
        };
        assert_eq!(pacer.report(true, None, i, m), 0);
        drop(token);
        assert!(matches!(pacer.gate(), Gate::Open));
        assert_eq!(pacer.backing_off(), None);
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
