//! Pushing local edits: the requests a push sends, and its dry run that shows them first.

use std::time::Duration;

use diesel::prelude::*;
use leadcache::seed::{COMPANY_STEMS, FIRST_NAMES, LAST_NAMES};
use leadcache::sync::runs::RunKind;
use serde_json::{Value, json};

use super::fixture::Synced;
use crate::support::TestApp;

#[tokio::test]
async fn local_edits_are_pushed_in_batches_of_ten_with_only_the_changed_fields() {
    let s = Synced::start(30, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let ids = s.some_remote_ids(23);
    for id in &ids {
        s.app
            .ok(
                "mutation($id: ID!) { updateLead(id: $id, patch: {title: \"VP Pushing\"}) { id } }",
                json!({"id": id}),
            )
            .await;
    }
    let (outbox_before, runs_before, remote_before) = (
        outbox_rows(&s.app).await,
        s.app.count("SELECT COUNT(*) AS n FROM sync_runs").await,
        s.sim.state.records(),
    );
    s.sim.state.clear_log();
    let dry = dry_run(&s.app).await;
    let payload = &dry["syncPendingChanges"];
    assert!(payload["run"].is_null(), "a dry run starts no run");
    assert_eq!(payload["plan"]["changes"], 23);
    let planned = payload["plan"]["requests"].as_array().unwrap().clone();
    assert_eq!(planned.len(), 3, "ceil(23 / 10)");
    for r in &planned {
        assert_eq!(r["method"], "PATCH");
        for rec in r["body"]["records"].as_array().unwrap() {
            assert_eq!(
                rec["fields"],
                json!({"Title": "VP Pushing"}),
                "only the changed field is sent"
            );
        }
    }
    // The dry run sent nothing and wrote nothing.
    assert!(s.sim.state.log().is_empty(), "no request reached Airtable");
    assert_eq!(s.sim.state.records(), remote_before);
    assert_eq!(
        outbox_rows(&s.app).await,
        outbox_before,
        "outbox untouched: rows, seq, attempts, states"
    );
    assert_eq!(
        s.app.count("SELECT COUNT(*) AS n FROM sync_runs").await,
        runs_before,
        "no sync run recorded"
    );

    let run = s.run(RunKind::Push).await;
    assert_eq!(run.pushed, 23);
    assert_eq!(s.api_requests(&["update"]), 3);
    assert_eq!(
        s.api_requests(&["list"]),
        1,
        "one pre-push read of the 23 records (SPEC 5.3a)"
    );
    assert_eq!(run.requests, 4);
    assert_eq!(
        sent_writes(&s),
        planned,
        "the push sent exactly the planned requests"
    );
    for id in &ids {
        assert_eq!(s.remote(id)["Title"], "VP Pushing");
        assert_eq!(s.local(id).await["syncState"], "SYNCED");
    }
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM outbox").await, 0);
}

/// Every outbox row, all columns, in a comparable form.
async fn outbox_rows(app: &TestApp) -> Vec<String> {
    use leadcache::db::models::OutboxRow;
    use leadcache::db::schema::outbox;
    app.db()
        .run(|c| {
            Ok(outbox::table
                .order(outbox::lead_id)
                .select(OutboxRow::as_select())
                .load(c)?
                .iter()
                .map(|r| format!("{r:?}"))
                .collect())
        })
        .await
        .unwrap()
}

/// The write requests the simulator received, in the shape of a planned request.
fn sent_writes(s: &Synced) -> Vec<Value> {
    s.sim
        .state
        .log()
        .into_iter()
        .filter(|e| {
            e.kind
                .is_some_and(|k| k.as_str() != "list" && k.as_str() != "get")
        })
        .map(|e| {
            let path = if e.query.is_empty() {
                e.path
            } else {
                format!("{}?{}", e.path, e.query)
            };
            json!({"method": e.method, "path": path, "body": e.body})
        })
        .collect()
}

#[tokio::test]
async fn a_dry_run_of_creates_updates_and_deletes_is_what_the_push_sends() {
    let s = Synced::start(15, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let q = "mutation($id: ID!, $p: LeadPatch!) { updateLead(id: $id, patch: $p) { id } }";
    let remote = s.some_remote_ids(5);
    for id in &remote[..3] {
        s.app
            .ok(
                q,
                json!({"id": id, "p": {"status": "contacted", "score": 42}}),
            )
            .await;
    }
    for id in &remote[3..] {
        s.app
            .ok(
                "mutation($id: ID!) { deleteLead(id: $id) { id } }",
                json!({"id": id}),
            )
            .await;
    }
    for i in 0..12 {
        s.app
            .create_lead(json!({
                "fullName": format!("{} {}", FIRST_NAMES[i * 3], LAST_NAMES[i * 4 + 1]),
                "company": format!("{} Planning", COMPANY_STEMS[i * 2]),
            }))
            .await;
    }
    // Created and deleted before any push: nothing to send for it.
    let gone = s.app.create_lead(json!({"fullName": "Never Sent"})).await;
    s.app
        .ok(
            "mutation($id: ID!) { deleteLead(id: $id) { id } }",
            json!({"id": gone["id"]}),
        )
        .await;

    s.sim.state.clear_log();
    let dry = dry_run(&s.app).await;
    let plan = &dry["syncPendingChanges"]["plan"];
    assert_eq!(plan["changes"], 3 + 2 + 12 + 1);
    let planned = plan["requests"].as_array().unwrap().clone();
    let shape: Vec<(&str, usize)> = planned
        .iter()
        .map(|r| {
            let n = match r["body"]["records"].as_array() {
                Some(a) => a.len(),
                None => r["path"]
                    .as_str()
                    .unwrap()
                    .matches("records%5B%5D=")
                    .count(),
            };
            (r["method"].as_str().unwrap(), n)
        })
        .collect();
    assert_eq!(
        shape,
        [("PATCH", 10), ("PATCH", 2), ("PATCH", 3), ("DELETE", 2)],
        "creates (upserts on Lead ID), then updates, then deletes; 10 a request"
    );
    assert_eq!(
        planned[0]["body"]["performUpsert"],
        json!({"fieldsToMergeOn": ["Lead ID"]})
    );
    assert!(planned[3]["body"].is_null(), "a delete has no body");
    assert!(s.sim.state.log().is_empty());
    assert_eq!(s.sim.state.record_count(), 15);

    let run = s.run(RunKind::Push).await;
    assert_eq!(run.pushed, 3 + 2 + 12);
    assert_eq!(
        sent_writes(&s),
        planned,
        "request for request, body for body"
    );
    assert_eq!(s.sim.state.record_count(), 15 - 2 + 12);
    assert!(
        s.sim
            .state
            .find_by_field("Full Name", &json!("Never Sent"))
            .is_empty()
    );
    // Nothing is left to plan.
    let again = s
        .app
        .ok(
            "mutation { syncPendingChanges(dryRun: true) { plan { changes requests { method } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        again["syncPendingChanges"]["plan"],
        json!({"changes": 0, "requests": []})
    );
}

#[tokio::test]
async fn the_admin_page_push_button_sends_a_query_the_server_answers() {
    let page = include_str!("../../../web/pages/dashboard.js");
    let push = page
        .split("export const PUSH = `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("dashboard.js defines PUSH");
    let s = Synced::start(3, |_| {}).await;
    let lead = s
        .app
        .create_lead(json!({"fullName": "Button Pusher"}))
        .await;
    let data = s.app.ok(push, json!({})).await;
    let run = &data["syncPendingChanges"]["run"];
    assert_eq!(run["kind"], "push");
    // The run goes on in the background: wait for the lead to reach Airtable.
    for _ in 0..100 {
        if !s.sim.state.find_by_field("Lead ID", &lead["id"]).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the push started by the button did not reach Airtable");
}

/// `syncPendingChanges(dryRun: true)`: its run (none expected) and its plan.
async fn dry_run(app: &TestApp) -> Value {
    app.ok(
        "mutation { syncPendingChanges(dryRun: true) { run { id } plan { changes requests { method path body } } } }",
        json!({}),
    )
    .await
}
