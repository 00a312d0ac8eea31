//! SPEC §5.3a: no write without a current base. An Airtable edit made since the last pull is
//! never overwritten silently by a push that follows a local write at once (no pull between):
//! the push reads the records back first and merges them as a pull would.

use leadcache::config::ConflictPolicy;
use leadcache::sync::runs::RunKind;
use serde_json::{Value, json};

use super::fixture::{Synced, next_second};

const UPDATE: &str = "mutation($id: ID!, $p: LeadPatch!) { updateLead(id: $id, patch: $p) { id } }";

/// Airtable first, then the local write, then the push (the order that lost edits before).
async fn remote_then_local(s: &Synced, id: &str, remote: Value, local: Value) {
    s.sim
        .state
        .ui_edit(id, remote.as_object().unwrap().clone())
        .unwrap();
    next_second().await;
    s.app.ok(UPDATE, json!({"id": id, "p": local})).await;
}

async fn conflicts(s: &Synced) -> Value {
    s.app
        .ok(
            "{ conflicts { field localValue remoteValue baseValue resolution } }",
            json!({}),
        )
        .await["conflicts"]
        .clone()
}

#[tokio::test]
async fn airtable_wins_an_edit_made_since_the_last_pull_is_not_overwritten_by_the_push() {
    let s = Synced::start(5, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let id = s.some_remote_ids(1).remove(0);
    let base_title = s.remote(&id)["Title"].clone();
    remote_then_local(
        &s,
        &id,
        json!({"Title": "Remote Edit", "Location": "Remote City"}),
        json!({"title": "Local Edit", "company": "Local Co"}),
    )
    .await;
    s.sim.state.clear_log();
    let run = s.run(RunKind::Push).await;
    assert_eq!(run.conflicts, 1);
    assert_eq!(
        s.remote(&id)["Title"],
        "Remote Edit",
        "Airtable's edit stays"
    );
    assert_eq!(
        s.remote(&id)["Company"],
        "Local Co",
        "the local-only change is sent"
    );
    assert_eq!(s.remote(&id)["Location"], "Remote City");
    let l = s.local(&id).await;
    assert_eq!(l["title"], "Remote Edit");
    assert_eq!(l["syncState"], "CONFLICT");
    let c = conflicts(&s).await;
    assert_eq!(c.as_array().unwrap().len(), 1, "{c}");
    assert_eq!(
        (
            &c[0]["field"],
            &c[0]["localValue"],
            &c[0]["remoteValue"],
            &c[0]["baseValue"],
            &c[0]["resolution"]
        ),
        (
            &json!("title"),
            &json!("Local Edit"),
            &json!("Remote Edit"),
            &base_title,
            &json!("remote")
        ),
        "{c}"
    );
    // The losing local value is in the lead's history.
    let events = s
        .app
        .ok(
            "query($id: ID!) { lead(id: $id) { events { kind changes } } }",
            json!({"id": id}),
        )
        .await;
    let conflict = events["lead"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "conflict")
        .cloned()
        .unwrap();
    assert_eq!(
        conflict["changes"]["title"],
        json!(["Local Edit", "Remote Edit"])
    );
    // One read for the whole push, one write.
    assert_eq!(s.api_requests(&["list"]), 1);
    assert_eq!(s.api_requests(&["update"]), 1);
}

#[tokio::test]
async fn last_modified_wins_the_newer_local_edit_is_sent_and_the_conflict_recorded() {
    let s = Synced::start_policy(5, ConflictPolicy::LastModifiedWins, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let id = s.some_remote_ids(1).remove(0);
    remote_then_local(
        &s,
        &id,
        json!({"Title": "Remote Edit"}),
        json!({"title": "Local Edit"}),
    )
    .await;
    let run = s.run(RunKind::Push).await;
    assert_eq!(run.conflicts, 1);
    assert_eq!(s.remote(&id)["Title"], "Local Edit", "the newer edit wins");
    let c = conflicts(&s).await;
    assert_eq!(
        (&c[0]["remoteValue"], &c[0]["resolution"]),
        (&json!("Remote Edit"), &json!("local")),
        "the remote value that lost is recorded: {c}"
    );
}

/// A record deleted in Airtable while it was edited here: the push does not send the edit into
/// a 404 (nor count it as a failure); the lead is deleted, as Airtable says, and its unpushed
/// value is kept in the `deleted` event.
#[tokio::test]
async fn a_record_deleted_in_airtable_while_edited_here_is_deleted_and_the_edit_kept_in_history() {
    let s = Synced::start(5, |_| {}).await;
    s.run(RunKind::FullPull).await;
    let id = s.some_remote_ids(1).remove(0);
    let local_id = s.local(&id).await["id"].as_str().unwrap().to_string();
    assert!(s.sim.state.ui_delete(&id));
    s.app
        .ok(
            UPDATE,
            json!({"id": id, "p": {"title": "Edited Meanwhile"}}),
        )
        .await;
    s.sim.state.clear_log();
    let run = s.run(RunKind::Push).await;
    assert_eq!((run.failed, run.deleted), (0, 1));
    assert_eq!(s.api_requests(&["update"]), 0);
    let lead = s
        .app
        .ok(
            "query($id: ID!) { lead(id: $id) { deletedAt events(first: 1) { kind changes message } } }",
            json!({"id": local_id}),
        )
        .await["lead"]
        .clone();
    assert!(lead["deletedAt"].is_string(), "{lead}");
    assert_eq!(lead["events"][0]["kind"], "deleted");
    assert_eq!(
        lead["events"][0]["changes"]["title"][1], "Edited Meanwhile",
        "{lead}"
    );
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM outbox").await, 0);
}
