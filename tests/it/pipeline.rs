//! Pipeline and enrichment: `setLeadStatus` history, `Lead.stages`, `addEnrichment` flags and
//! `Lead.enrichments` order.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn stages_follow_every_status_change() {
    let app = TestApp::start().await;
    let id = app.create_lead(json!({"fullName": "Jane Doe"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let set =
        "mutation($id: ID!, $s: String!) { setLeadStatus(id: $id, status: $s) { status version } }";
    for s in ["scraped", "contacted", "lost"] {
        assert_eq!(
            app.ok(set, json!({"id": id, "s": s})).await["setLeadStatus"]["status"],
            s
        );
    }
    let e = app
        .err(set, json!({"id": id, "s": "archived"}), "VALIDATION")
        .await;
    assert_eq!(e["extensions"]["field"], "status");
    let q = "query($id: ID!) { lead(id: $id) { status version stages { status enteredAt leftAt days } events { kind changes } } }";
    let lead = app.ok(q, json!({"id": id})).await["lead"].clone();
    assert_eq!(lead["status"], "lost");
    assert_eq!(lead["version"], 4, "the refused status changed nothing");
    let stages = lead["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["new", "scraped", "contacted", "lost"]);
    for pair in stages.windows(2) {
        assert_eq!(
            pair[0]["leftAt"], pair[1]["enteredAt"],
            "a stage ends when the next begins"
        );
        assert!(pair[0]["days"].as_f64().unwrap() >= 0.0);
    }
    assert!(stages[3]["leftAt"].is_null());
    let changes: Vec<_> = lead["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status_changed")
        .map(|e| e["changes"]["status"].clone())
        .collect();
    assert_eq!(
        changes,
        [
            json!(["contacted", "lost"]),
            json!(["scraped", "contacted"]),
            json!(["new", "scraped"])
        ]
    );
}

#[tokio::test]
async fn enrichment_sets_the_flags_and_lists_newest_first() {
    let app = TestApp::start().await;
    let id = app
        .create_lead(json!({"fullName": "Jane Doe", "needsEnrichment": true}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let add = "mutation($id: ID!, $i: EnrichmentInput!) { addEnrichment(leadId: $id, input: $i) { id provider confidence } }";
    app.ok(add, json!({"id": id, "i": {"provider": "site-analyzer", "data": {"stack": ["rust"]}, "confidence": 0.9}})).await;
    app.ok(
        add,
        json!({"id": id, "i": {"provider": "traits", "data": {"tone": "formal"}}}),
    )
    .await;
    let e = app
        .err(
            add,
            json!({"id": id, "i": {"provider": "x", "data": {}, "confidence": 1.5}}),
            "VALIDATION",
        )
        .await;
    assert_eq!(e["extensions"]["field"], "confidence");
    app.err(
        add,
        json!({"id": id, "i": {"provider": "x", "data": [1]}}),
        "VALIDATION",
    )
    .await;
    let q = "query($id: ID!) { lead(id: $id) { enriched enrichedAt needsEnrichment enrichments { provider data } } }";
    let lead = app.ok(q, json!({"id": id})).await["lead"].clone();
    assert_eq!(lead["enriched"], true);
    assert!(lead["enrichedAt"].is_string());
    assert_eq!(lead["needsEnrichment"], false);
    let providers: Vec<&str> = lead["enrichments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["traits", "site-analyzer"], "latest first");
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM enrichments").await,
        2,
        "refused inputs stored nothing"
    );
}
