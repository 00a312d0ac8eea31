//! Airtable down (SPEC §5.4): an outage backs off per base, never kills a write, and costs a
//! handful of requests; a failed push reports what it pushed.

use std::time::Duration;

use diesel::prelude::*;
use leadcache::sync::runs::RunKind;
use serde_json::json;

use super::fixture::{Synced, fast_options};

/// API requests the simulator received (whatever their answer).
fn requests(s: &Synced) -> usize {
    s.sim
        .state
        .log()
        .iter()
        .filter(|e| e.kind.is_some())
        .count()
}

/// Every outbox row due now, as after a long wait (the row backoffs compressed).
async fn make_all_due(s: &Synced) {
    s.app
        .db()
        .write(|c| {
            Ok(
                diesel::sql_query("UPDATE outbox SET next_attempt_at = '2000-01-01 00:00:00'")
                    .execute(c)?,
            )
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn an_outage_kills_no_write_and_costs_a_few_probes() {
    // The production rule scaled down: backoff 50 ms doubling, at most 1 s (production: 1 s, 5 min).
    let mut options = fast_options();
    options.client.backoff_initial = Duration::from_millis(50);
    options.client.backoff_max = Duration::from_secs(1);
    let s = Synced::start_with_options(20, options, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let pulled = s.some_remote_ids(20);
    // Airtable down: every connection is dropped unanswered.
    s.sim.state.update_faults(|f| f.drop_rate = 1.0);
    s.sim.state.clear_log();
    let q = "mutation($id: ID!, $p: LeadPatch!) { updateLead(id: $id, patch: $p) { id } }";
    let mut created = Vec::new();
    let mut failed_runs = 0;
    for i in 0..200 {
        if i % 4 == 0 {
            let id = &pulled[(i / 4) % 20];
            let p = json!({"title": format!("Outage Edit {i}")});
            s.app.ok(q, json!({"id": id, "p": p})).await;
        } else {
            let l = s
                .app
                .create_lead(json!({"fullName": format!("Outage Person {i}")}))
                .await;
            created.push(l["id"].as_str().unwrap().to_string());
        }
        if i % 10 == 9 {
            // The push job at its interval, every row past its own backoff: 20 pushes, more than
            // the 8 attempts after which a row that the push counts is dead.
            make_all_due(&s).await;
            let run = s.engine().run(RunKind::Push, "test").await.unwrap();
            assert_eq!(run.outcome, "failed", "Airtable is down");
            assert_eq!(run.pushed, 0);
            failed_runs += 1;
        }
    }
    assert_eq!(failed_runs, 20);
    let during = requests(&s);
    let dead = s
        .app
        .count("SELECT COUNT(*) AS n FROM outbox WHERE state = 'dead'")
        .await;
    let attempts = s
        .app
        .count("SELECT COALESCE(MAX(attempts), 0) AS n FROM outbox")
        .await;
    assert_eq!((dead, attempts), (0, 0), "an outage counts no attempt");
    assert!(
        during <= 40,
        "{during} requests during the outage (the base backs off, one probe at a time)"
    );
    assert!(during >= 1, "the outage was probed");

    // Airtable is back: the next pushes (once the base's probe is due) send everything.
    s.sim.state.update_faults(|f| f.drop_rate = 0.0);
    for _ in 0..100 {
        if s.app.count("SELECT COUNT(*) AS n FROM outbox").await == 0 {
            break;
        }
        let _ = s.engine().run(RunKind::Push, "test").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM outbox").await, 0);
    assert_eq!(s.sim.state.record_count(), 20 + 150, "each create once");
    for id in &created {
        assert_eq!(s.sim.state.find_by_field("Lead ID", &json!(id)).len(), 1);
    }
    // Each pulled lead's last edit reached Airtable.
    for (k, id) in pulled.iter().enumerate() {
        let last = (0..200)
            .filter(|i| i % 4 == 0 && (i / 4) % 20 == k)
            .max()
            .unwrap();
        assert_eq!(s.remote(id)["Title"], format!("Outage Edit {last}"));
        assert_eq!(s.local(id).await["syncState"], "SYNCED");
    }
}

#[tokio::test]
async fn a_push_that_fails_half_way_reports_what_it_pushed() {
    let s = Synced::start(0, |_| {}).await;
    for i in 0..100 {
        s.app
            .create_lead(json!({"fullName": format!("Halfway Person {i}")}))
            .await;
    }
    // Airtable goes down after the 6th write request of the push.
    let state = s.sim.state.clone();
    let cut = tokio::spawn(async move {
        loop {
            if state.counts().get("upsert").copied().unwrap_or(0) >= 6 {
                state.update_faults(|f| f.drop_rate = 1.0);
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let run = s.engine().run(RunKind::Push, "test").await.unwrap();
    cut.abort();
    assert_eq!(run.outcome, "failed");
    let linked = s
        .app
        .count("SELECT COUNT(*) AS n FROM leads WHERE airtable_id IS NOT NULL")
        .await;
    assert!(linked >= 50, "{linked} leads pushed before the outage");
    assert_eq!(
        run.pushed as i64, linked,
        "the failed run's count is what it pushed"
    );
    assert_eq!(s.sim.state.record_count() as i64, linked);
    assert!(run.error.unwrap().contains("Airtable"));
}
