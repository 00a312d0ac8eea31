//! Per-base pacing measured from the simulator's request log.

use std::time::Duration;

use leadcache::airtable::sim::SimConfig;
use leadcache::airtable::{AirtableApi, HttpClient, ListParams};

use super::{airtable_config, api_log, fast_opts, start_sim};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_concurrent_requests_never_exceed_five_in_any_second() {
    // The simulator enforces 5/s itself too (a 429 would show in the log).
    let sim = start_sim(SimConfig {
        records: 5,
        ..SimConfig::default()
    })
    .await;
    let cfg = airtable_config(&sim, 5);
    // Two separately built clients and their clones share the base's pacer.
    let a = HttpClient::from_config(&cfg, fast_opts()).unwrap();
    let b = HttpClient::from_config(&cfg, fast_opts()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            c.list_page(&ListParams::default(), None)
                .await
                .map(|p| p.records.len())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 5);
    }
    let log = api_log(&sim);
    assert_eq!(log.len(), 30);
    assert!(
        log.iter().all(|e| e.status == 200),
        "no 429: {:?}",
        log.iter().map(|e| e.status).collect::<Vec<_>>()
    );
    let window = Duration::from_secs(1).as_micros() as u64;
    for (i, e) in log.iter().enumerate() {
        let in_window = log[i..]
            .iter()
            .take_while(|x| x.t_us < e.t_us + window)
            .count();
        assert!(
            in_window <= 5,
            "{in_window} requests in the second after request {i}"
        );
    }
    // Lower bound only: with at most 5 in any second, requests 0, 5, 10, ... 25 are each at
    // least a second apart, so 30 requests span at least 5 s.
    let span = log[29].t_us - log[0].t_us;
    assert!(span >= 5_000_000, "span {span} us");
}
