//! Campaigns: creation rules, members, message and status times, counts, history and filters.

use serde_json::json;

use crate::support::TestApp;

const CREATE: &str =
    "mutation($i: CampaignInput!) { createCampaign(input: $i) { id name description } }";
const ADD: &str = "mutation($c: ID!, $l: [ID!]!) { addLeadsToCampaign(campaignId: $c, leadIds: $l) { \
    id counts { total draft sent replied bounced } leads { fullName } } }";
const UPDATE: &str = "mutation($c: ID!, $l: ID!, $p: CampaignLeadPatch!) { updateCampaignLead(campaignId: $c, leadId: $l, patch: $p) { \
    status subject body sentAt repliedAt campaignName } }";

#[tokio::test]
async fn campaign_names_are_validated_and_unique() {
    let app = TestApp::start().await;
    let c = app
        .ok(
            CREATE,
            json!({"i": {"name": "  Q1 outreach ", "description": "CTOs"}}),
        )
        .await;
    assert_eq!(c["createCampaign"]["name"], "Q1 outreach");
    app.err(CREATE, json!({"i": {"name": "Q1 outreach"}}), "CONFLICT")
        .await;
    let e = app
        .err(CREATE, json!({"i": {"name": "   "}}), "VALIDATION")
        .await;
    assert_eq!(e["extensions"]["field"], "name");
    let e = app
        .err(
            CREATE,
            json!({"i": {"name": "x".repeat(201)}}),
            "VALIDATION",
        )
        .await;
    assert_eq!(e["extensions"]["field"], "name");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM campaigns").await, 1);
    let all = app
        .ok("{ campaigns { name description } }", json!({}))
        .await;
    assert_eq!(
        all["campaigns"],
        json!([{"name": "Q1 outreach", "description": "CTOs"}])
    );
}

#[tokio::test]
async fn members_statuses_times_counts_and_history() {
    let app = TestApp::start().await;
    let cid = app.ok(CREATE, json!({"i": {"name": "Q1"}})).await["createCampaign"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = app.create_lead(json!({"fullName": "Ann A"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = app.create_lead(json!({"fullName": "Bob B"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = app.create_lead(json!({"fullName": "Cy C"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // An unknown lead fails the whole call.
    app.err(ADD, json!({"c": cid, "l": [a, "missing"]}), "NOT_FOUND")
        .await;
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM campaign_leads").await,
        0
    );
    app.err(ADD, json!({"c": "missing", "l": [a]}), "NOT_FOUND")
        .await;

    let r = app.ok(ADD, json!({"c": cid, "l": [a, b, c, a]})).await["addLeadsToCampaign"].clone();
    assert_eq!(
        r["counts"],
        json!({"total": 3, "draft": 3, "sent": 0, "replied": 0, "bounced": 0})
    );
    assert_eq!(
        r["leads"],
        json!([{"fullName": "Ann A"}, {"fullName": "Bob B"}, {"fullName": "Cy C"}])
    );
    // Adding again changes nothing.
    let r = app.ok(ADD, json!({"c": cid, "l": [a]})).await["addLeadsToCampaign"].clone();
    assert_eq!(r["counts"]["total"], 3);

    let m = app
        .ok(
            UPDATE,
            json!({"c": cid, "l": a, "p": {"subject": "Hi", "body": "Hello Ann"}}),
        )
        .await["updateCampaignLead"]
        .clone();
    assert_eq!(
        (
            m["status"].clone(),
            m["subject"].clone(),
            m["sentAt"].clone()
        ),
        (json!("draft"), json!("Hi"), json!(null))
    );
    let m = app
        .ok(UPDATE, json!({"c": cid, "l": a, "p": {"status": "sent"}}))
        .await["updateCampaignLead"]
        .clone();
    let sent_at = m["sentAt"].clone();
    assert!(sent_at.is_string() && m["repliedAt"].is_null());
    let m = app
        .ok(
            UPDATE,
            json!({"c": cid, "l": a, "p": {"status": "replied"}}),
        )
        .await["updateCampaignLead"]
        .clone();
    assert_eq!(m["sentAt"], sent_at, "sentAt is kept");
    assert!(m["repliedAt"].is_string());
    let m = app
        .ok(
            UPDATE,
            json!({"c": cid, "l": b, "p": {"status": "bounced"}}),
        )
        .await["updateCampaignLead"]
        .clone();
    assert!(m["sentAt"].is_string(), "a bounce was sent");
    let e = app
        .err(
            UPDATE,
            json!({"c": cid, "l": c, "p": {"status": "opened"}}),
            "VALIDATION",
        )
        .await;
    assert_eq!(e["extensions"]["field"], "status");
    app.err(UPDATE, json!({"c": cid, "l": app.create_lead(json!({"fullName": "Out"})).await["id"], "p": {"status": "sent"}}), "NOT_FOUND").await;

    let q = "query($id: ID!) { campaign(id: $id) { counts { total draft sent replied bounced } } }";
    let counts = app.ok(q, json!({"id": cid})).await["campaign"]["counts"].clone();
    assert_eq!(
        counts,
        json!({"total": 3, "draft": 1, "sent": 0, "replied": 1, "bounced": 1})
    );

    let q = "query($id: ID!) { lead(id: $id) { version campaigns { campaignName status subject repliedAt } events { kind message } } }";
    let lead = app.ok(q, json!({"id": a})).await["lead"].clone();
    assert_eq!(
        lead["version"], 1,
        "campaigns are local: the lead itself did not change"
    );
    assert_eq!(lead["campaigns"][0]["campaignName"], "Q1");
    assert_eq!(lead["campaigns"][0]["status"], "replied");
    let messages: Vec<&str> = lead["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "campaign \"Q1\": status sent -> replied",
            "campaign \"Q1\": status draft -> sent",
            "campaign \"Q1\": message edited",
            "added to campaign \"Q1\""
        ]
    );
    let in_campaign = app
        .ok(
            "query($c: ID!) { leads(filter: {campaignId: $c}) { totalCount } }",
            json!({"c": cid}),
        )
        .await;
    assert_eq!(in_campaign["leads"]["totalCount"], 3);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM outbox").await,
        4,
        "only the lead creates are queued"
    );
}
