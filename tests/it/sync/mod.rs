//! The sync engine against the Airtable simulator, asserting the data on both sides.

pub mod fixture;
mod outage;
mod prepush;
mod pulls;
mod push;
mod read_through;
mod restore;

use std::time::Duration;

use leadcache::airtable::ClientOptions;
use leadcache::config::ConflictPolicy;
use leadcache::state::Mode;
use leadcache::sync::runs::RunKind;
use serde_json::{Value, json};

use crate::support::TestApp;
use fixture::{Synced, next_second};

#[tokio::test]
async fn an_empty_cache_is_filled_by_a_full_pull_in_the_fewest_requests() {
    let s = Synced::start(2500, |_| {}).await;
    let run = s.run(RunKind::FullPull).await;
    assert_eq!(run.requests, 25, "ceil(2500 / 100) list requests");
    assert_eq!(run.fetched, 2500);
    assert_eq!(run.created, 2500);
    assert_eq!(s.api_requests(&["list"]), 25);
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) AS n FROM leads WHERE sync_state = 'synced'")
            .await,
        2500
    );
    // The data matches on both sides.
    for id in s.some_remote_ids(5) {
        let remote = s.remote(&id);
        let local = s.local(&id).await;
        assert_eq!(local["fullName"], remote["Full Name"]);
        assert_eq!(local["company"], remote["Company"]);
    }
    assert_eq!(
        s.app.count("SELECT COUNT(*) AS n FROM outbox").await,
        0,
        "pulled leads are not pushed back"
    );
    // Pulled leads enter the pipeline like any other: one stored stay each, as derived.
    assert_eq!(
        s.app.count("SELECT COUNT(*) AS n FROM lead_stays").await,
        2500
    );
    let stale = s
        .app
        .db()
        .run(|c| leadcache::leads::stays::inconsistent(c, 10))
        .await
        .unwrap();
    assert!(stale.is_empty(), "stale stays for {stale:?}");
}

#[tokio::test]
async fn incremental_pulls_cost_one_request_when_quiet_and_fetch_only_changes() {
    let s = Synced::start(150, |_| {}).await;
    s.run(RunKind::FullPull).await;
    next_second().await;
    let quiet = s.run(RunKind::IncrementalPull).await;
    assert_eq!((quiet.requests, quiet.fetched), (1, 0));
    next_second().await;
    let ids = s.some_remote_ids(7);
    for id in &ids {
        s.sim
            .state
            .ui_edit(
                id,
                json!({"Title": "Chief Sync Officer"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .unwrap();
    }
    let run = s.run(RunKind::IncrementalPull).await;
    assert_eq!(run.fetched, 7);
    assert_eq!(run.updated, 7);
    assert_eq!(run.requests, 1);
    for id in &ids {
        assert_eq!(s.local(id).await["title"], "Chief Sync Officer");
    }
    let events = s.app.count("SELECT COUNT(*) AS n FROM lead_events WHERE kind = 'pulled' AND actor = 'airtable' AND changes LIKE '%Chief Sync Officer%'").await;
    assert_eq!(events, 7);

    // A status changed in Airtable moves the lead through the stored pipeline too.
    next_second().await;
    let before = s.local(&ids[0]).await;
    let old_status = before["status"].as_str().unwrap().to_string();
    let new_status = if old_status == "contacted" {
        "replied"
    } else {
        "contacted"
    };
    s.sim
        .state
        .ui_edit(
            &ids[0],
            json!({"Status": new_status}).as_object().unwrap().clone(),
        )
        .unwrap();
    s.run(RunKind::IncrementalPull).await;
    let lead_id = before["id"].as_str().unwrap().to_string();
    let stays = s
        .app
        .db()
        .run(move |c| {
            use diesel::prelude::*;
            use leadcache::db::schema::lead_stays as t;
            Ok(t::table
                .filter(t::lead_id.eq(&lead_id))
                .order(t::id)
                .select((t::status, t::from_status))
                .load::<(String, Option<String>)>(c)?)
        })
        .await
        .unwrap();
    assert_eq!(
        stays.last(),
        Some(&(new_status.to_string(), Some(old_status))),
        "{stays:?}"
    );
}

#[tokio::test]
async fn created_leads_reach_airtable_once_and_get_their_ids() {
    let s = Synced::start(0, |c| c.faults.drop_response_next = 0).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let l = s
            .app
            .create_lead(json!({"fullName": leadcache::seed::FIRST_NAMES[i * 3].to_string() + " " + leadcache::seed::LAST_NAMES[i * 4], "company": "Acme"}))
            .await;
        ids.push(l["id"].as_str().unwrap().to_string());
    }
    // The first create request is applied by Airtable but its answer is lost: the retry must
    // not make second records (creates are upserts on Lead ID).
    s.sim.state.update_faults(|f| f.drop_response_next = 1);
    let run = s.run(RunKind::Push).await;
    assert_eq!(run.pushed, 12);
    assert_eq!(s.sim.state.record_count(), 12, "no duplicates");
    for id in &ids {
        let l = s
            .app
            .ok(
                "query($id: ID!) { lead(id: $id) { airtableId syncState } }",
                json!({"id": id}),
            )
            .await;
        let rec = l["lead"]["airtableId"].as_str().unwrap().to_string();
        assert_eq!(s.remote(&rec)["Lead ID"], id.as_str());
        assert_eq!(l["lead"]["syncState"], "SYNCED");
    }
}

#[tokio::test]
async fn a_crash_between_pushing_and_storing_the_answer_leaves_no_duplicate() {
    let s = Synced::start(0, |_| {}).await;
    let lead = s
        .app
        .create_lead(json!({"fullName": "Crash Test", "email": "crash@example.com"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    // What a push does before it can store the answer: the record reaches Airtable...
    let engine = s.engine();
    let item = s
        .app
        .db()
        .run(|c| leadcache::sync::push::due(c, 10))
        .await
        .unwrap();
    let fields = leadcache::sync::push::create_fields(&engine, &item[0].lead);
    let api = leadcache::airtable::HttpClient::from_config(
        s.app.state().config.airtable.as_ref().unwrap(),
        ClientOptions::default(),
    )
    .unwrap();
    use leadcache::airtable::AirtableApi;
    api.create(&[fields]).await.unwrap();
    // ...and the process dies. After restart the outbox row is still there; the push repeats.
    let run = s.run(RunKind::Push).await;
    assert_eq!(run.pushed, 1);
    assert_eq!(
        s.sim.state.record_count(),
        1,
        "the upsert found the record instead of making a second"
    );
    let l = s
        .app
        .ok(
            "query($id: ID!) { lead(id: $id) { airtableId syncState } }",
            json!({"id": id}),
        )
        .await;
    assert!(l["lead"]["airtableId"].is_string());
}

#[tokio::test]
async fn remote_deletions_apply_only_after_a_complete_sweep_and_expired_offsets_restart() {
    let s = Synced::start(250, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let gone = s.some_remote_ids(3);
    for id in &gone {
        assert!(s.sim.state.ui_delete(id));
    }
    // A sweep that fails half way deletes nothing.
    s.sim.state.update_faults(|f| {
        f.expire_next_offsets = 100;
    });
    let failed = s.engine().run(RunKind::Sweep, "test").await.unwrap();
    assert_eq!(
        failed.outcome, "failed",
        "an offset that keeps expiring ends the pass"
    );
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) AS n FROM leads WHERE deleted_at IS NOT NULL")
            .await,
        0
    );
    // One expired offset mid-pass restarts it; the completed pass applies the deletions.
    s.sim.state.update_faults(|f| f.expire_next_offsets = 1);
    s.sim.state.clear_log();
    let run = s.run(RunKind::Sweep).await;
    assert_eq!(run.deleted, 3);
    assert_eq!(
        s.api_requests(&["list"]),
        1 + 1 + 3,
        "page 1, page 2 refused (expired offset), then all 3 pages again"
    );
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) AS n FROM leads WHERE deleted_at IS NOT NULL")
            .await,
        3
    );
    assert_eq!(
        s.app.count("SELECT COUNT(*) AS n FROM lead_events WHERE kind = 'deleted' AND actor = 'airtable'").await,
        3
    );
}

async fn edit_both_sides(s: &Synced, id: &str, local: Value, remote: Value) {
    let q = "mutation($id: ID!, $p: LeadPatch!) { updateLead(id: $id, patch: $p) { id } }";
    s.app.ok(q, json!({"id": id, "p": local})).await;
    next_second().await;
    s.sim
        .state
        .ui_edit(id, remote.as_object().unwrap().clone())
        .unwrap();
}

#[tokio::test]
async fn same_field_on_both_sides_airtable_wins_and_the_conflict_is_recorded() {
    let s = Synced::start(20, |_| {}).await;
    s.run(RunKind::FullPull).await;
    next_second().await;
    let id = s.some_remote_ids(1).remove(0);
    edit_both_sides(
        &s,
        &id,
        json!({"title": "Local Title", "company": "Local Co"}),
        json!({"Title": "Remote Title", "Location": "Remote City"}),
    )
    .await;
    let run = s.run(RunKind::IncrementalPull).await;
    assert_eq!(run.conflicts, 1);
    let l = s.local(&id).await;
    assert_eq!(l["title"], "Remote Title", "airtable-wins");
    assert_eq!(
        l["company"], "Local Co",
        "a field changed only here is kept"
    );
    assert_eq!(l["syncState"], "CONFLICT");
    let c = s
        .app
        .ok(
            "{ conflicts { id field localValue remoteValue resolution open } }",
            json!({}),
        )
        .await;
    let c = &c["conflicts"][0];
    assert_eq!(
        (
            c["field"].as_str(),
            c["localValue"].as_str(),
            c["remoteValue"].as_str()
        ),
        (Some("title"), Some("Local Title"), Some("Remote Title"))
    );
    // The push sends the local-only change, not the lost one.
    s.run(RunKind::Push).await;
    assert_eq!(s.remote(&id)["Company"], "Local Co");
    assert_eq!(s.remote(&id)["Title"], "Remote Title");
    assert_eq!(s.remote(&id)["Location"], "Remote City");
    // A person keeps the local value: it is pushed.
    let r = s
        .app
        .ok("mutation($id: ID!) { resolveConflict(id: $id, keep: LOCAL) { open resolution resolvedBy } }", json!({"id": c["id"]}))
        .await;
    assert_eq!(r["resolveConflict"]["open"], false);
    assert_eq!(r["resolveConflict"]["resolution"], "local");
    s.run(RunKind::Push).await;
    assert_eq!(s.remote(&id)["Title"], "Local Title");
    assert_eq!(s.local(&id).await["syncState"], "SYNCED");
}

#[tokio::test]
async fn same_field_on_both_sides_last_modified_wins() {
    let s = Synced::start_policy(20, ConflictPolicy::LastModifiedWins, |_| {}).await;
    s.run(RunKind::FullPull).await;
    next_second().await;
    let ids = s.some_remote_ids(2);
    // Local later than remote: local wins.
    s.sim
        .state
        .ui_edit(
            &ids[0],
            json!({"Title": "Older Remote"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
    next_second().await;
    s.app
        .ok(
            "mutation($id: ID!) { updateLead(id: $id, patch: {title: \"Newer Local\"}) { id } }",
            json!({"id": ids[0]}),
        )
        .await;
    // Remote later than local: remote wins.
    edit_both_sides(
        &s,
        &ids[1],
        json!({"title": "Older Local"}),
        json!({"Title": "Newer Remote"}),
    )
    .await;
    let run = s.run(RunKind::IncrementalPull).await;
    assert_eq!(run.conflicts, 2);
    assert_eq!(s.local(&ids[0]).await["title"], "Newer Local");
    assert_eq!(s.local(&ids[1]).await["title"], "Newer Remote");
    s.run(RunKind::Push).await;
    assert_eq!(s.remote(&ids[0])["Title"], "Newer Local");
    assert_eq!(s.remote(&ids[1])["Title"], "Newer Remote");
}

#[tokio::test]
async fn airtable_down_reads_and_writes_go_on_and_everything_is_pushed_once_back() {
    let mut s = Synced::start(20, |_| {}).await;
    s.run(RunKind::FullPull).await;
    s.sim.stop().await;
    let mut ids = Vec::new();
    for i in 0..100 {
        let l = s
            .app
            .create_lead(json!({"fullName": format!("Offline {i}")}))
            .await;
        ids.push(l["id"].as_str().unwrap().to_string());
    }
    let total = s.app.ok("{ leads { totalCount } }", json!({})).await;
    assert_eq!(
        total["leads"]["totalCount"], 120,
        "reads work while Airtable is down"
    );
    let run = s.engine().run(RunKind::Push, "test").await.unwrap();
    assert_eq!(run.outcome, "failed");
    let status = s
        .app
        .ok(
            "{ cacheStatus { airtableReachable pendingChanges failedChanges } }",
            json!({}),
        )
        .await;
    assert_eq!(status["cacheStatus"]["airtableReachable"], false);
    s.sim.restart().await.unwrap();
    // The outage counted no attempt on any row.
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) AS n FROM outbox WHERE attempts > 0")
            .await,
        0
    );
    s.app.ok("mutation { retryOutbox }", json!({})).await;
    // The base backs off after the outage: its next probe is at most `backoff_max` away.
    tokio::time::sleep(fixture::fast_options().client.backoff_max + Duration::from_millis(50))
        .await;
    let run = s.run(RunKind::Push).await;
    assert_eq!(run.pushed, 100);
    assert_eq!(s.sim.state.record_count(), 120, "each lead exactly once");
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM outbox").await, 0);
}

#[tokio::test]
async fn a_storm_of_5xx_and_429_converges_without_passing_the_rate_limit() {
    let s = Synced::start(300, |_| {}).await;
    s.sim.state.update_faults(|f| {
        f.fail_rate = 0.2;
        f.rate_limit_next = 3;
    });
    let run = s.run(RunKind::FullPull).await;
    assert!(run.fetched >= 300);
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM leads").await, 300);
    // Never more than 5 requests in any one-second window.
    let times: Vec<u64> = s
        .sim
        .state
        .log()
        .iter()
        .filter(|e| e.kind.is_some())
        .map(|e| e.t_us)
        .collect();
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| **u < t + 1_000_000)
            .count();
        assert!(in_window <= 5, "{in_window} requests within one second");
    }
}

#[tokio::test]
async fn one_rejected_record_does_not_hold_back_its_batch() {
    let s = Synced::start(10, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let ids = s.some_remote_ids(10);
    let q = "mutation($id: ID!, $p: LeadPatch!) { updateLead(id: $id, patch: $p) { id } }";
    for (i, id) in ids.iter().enumerate() {
        let patch = if i == 4 {
            json!({"title": "Bad", "extra": {"No Such Field": "x"}})
        } else {
            json!({"title": "Good"})
        };
        s.app.ok(q, json!({"id": id, "p": patch})).await;
    }
    let run = s.engine().run(RunKind::Push, "test").await.unwrap();
    assert_eq!(run.outcome, "partial");
    assert_eq!((run.pushed, run.failed), (9, 1));
    for (i, id) in ids.iter().enumerate() {
        if i != 4 {
            assert_eq!(s.remote(id)["Title"], "Good");
        }
    }
    let bad = s.local(&ids[4]).await;
    assert_eq!(bad["syncState"], "ERROR");
    let o = s
        .app
        .ok(
            "{ outbox(state: FAILED) { leadId lastError attempts } }",
            json!({}),
        )
        .await;
    let entry = &o["outbox"][0];
    assert!(
        entry["lastError"]
            .as_str()
            .unwrap()
            .contains("No Such Field"),
        "{entry}"
    );
    assert_eq!(entry["attempts"], 1);
}

#[tokio::test]
async fn read_through_fetches_an_uncached_record() {
    let s = Synced::start(5, |_| {}).await;
    let id = s.some_remote_ids(1).remove(0);
    let l = s.local(&id).await;
    assert_eq!(
        l["airtableId"],
        id.as_str(),
        "fetched from Airtable and cached"
    );
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM leads").await, 1);
}

#[tokio::test]
async fn refresh_returns_the_running_run_instead_of_starting_another() {
    let s = Synced::start(600, |_| {}).await;
    let a = s
        .app
        .ok(
            "mutation { refreshCache(force: true) { id kind outcome } }",
            json!({}),
        )
        .await;
    let b = s
        .app
        .ok(
            "mutation { refreshCache(force: true) { id kind outcome } }",
            json!({}),
        )
        .await;
    assert_eq!(a["refreshCache"]["id"], b["refreshCache"]["id"]);
    assert_eq!(a["refreshCache"]["outcome"], "running");
    // Wait for it to finish.
    for _ in 0..100 {
        let r = s
            .app
            .ok("{ syncRuns(first: 1) { outcome } }", json!({}))
            .await;
        if r["syncRuns"][0]["outcome"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM leads").await, 600);
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM sync_runs").await, 1);
}

#[tokio::test]
async fn local_only_mode_refuses_sync_operations_clearly() {
    let app = TestApp::start().await;
    let e = app
        .err("mutation { refreshCache { id } }", json!({}), "UNAVAILABLE")
        .await;
    assert!(e["message"].as_str().unwrap().contains("local-only"));
    for q in [
        "mutation { syncPendingChanges { run { id } } }",
        "mutation { syncPendingChanges(dryRun: true) { plan { changes } } }",
    ] {
        let e = app.err(q, json!({}), "UNAVAILABLE").await;
        assert!(e["message"].as_str().unwrap().contains("local-only"));
    }
    let _ = Mode::LocalOnly;
}
