//! Pulls that finish (SPEC §5.1, §5.4): storms are survived page by page, a failed full pull
//! resumes from its checkpoint, a failed pull is retried minutes later, runs report what they
//! did, and a run a crash left `running` is closed as `interrupted`.

use std::time::Duration;

use diesel::prelude::*;
use leadcache::sync::runs::RunKind;

use super::fixture::Synced;

async fn last_full_pull(s: &Synced) -> Option<chrono::NaiveDateTime> {
    s.app
        .db()
        .run(|c| leadcache::db::meta::get_time(c, leadcache::db::meta::LAST_FULL_PULL))
        .await
        .unwrap()
}

/// Successful list requests the simulator answered.
fn pages_served(s: &Synced) -> usize {
    s.sim
        .state
        .log()
        .iter()
        .filter(|e| e.kind.is_some_and(|k| k.as_str() == "list") && e.status == 200)
        .count()
}

#[tokio::test]
async fn a_full_pull_survives_a_storm_of_5xx_429_and_expired_offsets() {
    let s = Synced::start(5000, |_| {}).await;
    // 20 % of requests answered 500/502/503, and the first offset expires.
    s.sim.state.update_faults(|f| {
        f.fail_rate = 0.2;
        f.expire_next_offsets = 1;
    });
    // Now and then a page meets three 429s and then three 5xx in a row (the measured failure: a
    // page that met 503, 502 and three 429s ended the pull).
    let state = s.sim.state.clone();
    let storm = tokio::spawn(async move {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            state.update_faults(|f| {
                f.rate_limit_next = 3;
                f.fail_next = 3;
                f.fail_status = 502;
            });
        }
    });
    let run = s.engine().run(RunKind::FullPull, "test").await.unwrap();
    storm.abort();
    assert_eq!(run.outcome, "success", "{:?}", run.error);
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) AS n FROM leads WHERE deleted_at IS NULL")
            .await,
        5000
    );
    assert!(run.fetched >= 5000);
    assert_eq!(run.deleted, 0);
    assert!(last_full_pull(&s).await.is_some(), "lastFullPull is set");
    let rate_limited = s.sim.state.log().iter().filter(|e| e.status == 429).count();
    assert!(rate_limited >= 3, "the storm happened: {rate_limited} 429s");
    // The data matches.
    for id in s.some_remote_ids(3) {
        assert_eq!(s.local(&id).await["fullName"], s.remote(&id)["Full Name"]);
    }
}

#[tokio::test]
async fn a_failed_full_pull_resumes_from_its_checkpoint_and_reports_what_it_stored() {
    let s = Synced::start(3000, |_| {}).await;
    // Airtable goes down after the 15th page of 30.
    let state = s.sim.state.clone();
    let cut = tokio::spawn(async move {
        loop {
            if state.counts().get("list").copied().unwrap_or(0) >= 15 {
                state.update_faults(|f| f.drop_rate = 1.0);
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let first = s.engine().run(RunKind::FullPull, "test").await.unwrap();
    cut.abort();
    assert_eq!(first.outcome, "failed");
    assert!(last_full_pull(&s).await.is_none());
    // The failed run reports what it stored.
    let stored = s.app.count("SELECT COUNT(*) AS n FROM leads").await;
    assert!((1000..3000).contains(&stored), "{stored} leads stored");
    assert_eq!(first.fetched as i64, stored);
    assert_eq!(first.created as i64, stored);
    assert!(first.requests > 0);

    // Airtable is back: the next run reads only the pages it did not have.
    s.sim.state.update_faults(|f| f.drop_rate = 0.0);
    s.sim.state.clear_log();
    let second = s.run(RunKind::FullPull).await;
    let pages_had = (stored / 100) as usize;
    let served = pages_served(&s);
    assert!(
        served <= 30 - pages_had + 1,
        "{served} pages read again after {pages_had} were stored"
    );
    assert_eq!(
        second.deleted, 0,
        "the ids of the first run's pages count as seen"
    );
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) AS n FROM leads WHERE deleted_at IS NULL")
            .await,
        3000
    );
    assert!(last_full_pull(&s).await.is_some());
    // Done: the checkpoint is gone, and the next full pull reads every page.
    s.sim.state.clear_log();
    s.run(RunKind::FullPull).await;
    assert_eq!(pages_served(&s), 30);
}

#[tokio::test]
async fn a_run_left_running_by_a_crash_is_closed_as_interrupted_at_start() {
    let s = Synced::start(3, |_| {}).await;
    s.app
        .db()
        .write(|c| {
            Ok(diesel::sql_query(
                "INSERT INTO sync_runs (kind, trigger, started_at, outcome, phase, fetched) \
                 VALUES ('full_pull', 'startup', '2026-01-01 00:00:00', 'running', 'pulling all records', 1200)",
            )
            .execute(c)?)
        })
        .await
        .unwrap();
    // The engine starts (as `serve` starts it).
    s.engine()
        .spawn_background(s.app.state().writes.clone(), Duration::from_secs(7200));
    let mut outcome = String::new();
    for _ in 0..100 {
        let r = s
            .app
            .ok(
                "{ syncRuns(first: 10) { id outcome error fetched } }",
                serde_json::json!({}),
            )
            .await;
        let crashed = r["syncRuns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["fetched"] == 1200)
            .cloned()
            .unwrap();
        outcome = crashed["outcome"].as_str().unwrap().to_string();
        if outcome != "running" {
            assert!(
                crashed["error"].as_str().unwrap().contains("interrupted"),
                "{crashed}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outcome, "interrupted");
    // The engine's own start-up pull is not touched.
    for _ in 0..100 {
        if s.app.count("SELECT COUNT(*) AS n FROM leads").await == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..100 {
        if s.app
            .count("SELECT COUNT(*) AS n FROM sync_runs WHERE outcome = 'running'")
            .await
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) AS n FROM sync_runs WHERE outcome = 'success'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_failed_pull_is_retried_after_minutes_not_at_the_next_refresh() {
    let s = Synced::start(300, |_| {}).await;
    let engine = s.engine();
    assert_eq!(engine.pending_retry().await, None);
    s.sim.state.update_faults(|f| f.drop_rate = 1.0);
    let before = leadcache::time::now();
    let run = engine.run(RunKind::FullPull, "test").await.unwrap();
    assert_eq!(run.outcome, "failed");
    let retry = engine.pending_retry().await.expect("a retry is scheduled");
    assert_eq!((retry.kind, retry.failures), (RunKind::FullPull, 1));
    let wait = (retry.at - before).num_seconds();
    // 1 minute, jittered to between half and all of it: minutes, not the 2-hour refresh.
    assert!((29..=61).contains(&wait), "retried after {wait} s");

    // Failing again doubles the wait.
    let before = leadcache::time::now();
    engine.run(RunKind::FullPull, "test").await.unwrap();
    let retry = engine.pending_retry().await.unwrap();
    assert_eq!(retry.failures, 2);
    let wait = (retry.at - before).num_seconds();
    assert!((59..=121).contains(&wait), "retried after {wait} s");
    // The wait is capped (30 min), well under CACHE_REFRESH_INTERVAL.
    for failures in 1..20 {
        let d = leadcache::sync::retry_delay(
            failures,
            Duration::from_secs(60),
            Duration::from_secs(1800),
        );
        assert!(d <= Duration::from_secs(1800) && d >= Duration::from_secs(30));
    }

    // A pull that succeeds clears it.
    s.sim.state.update_faults(|f| f.drop_rate = 0.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.run(RunKind::FullPull).await;
    assert_eq!(engine.pending_retry().await, None);
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM leads").await, 300);
}
