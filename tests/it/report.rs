//! `report` against a small dataset whose figures are worked out by hand below.

use serde_json::{Value, json};

use crate::support::TestApp;

/// Sets the time of a lead's `created` event (when `to` is None) or of its change to `to`.
async fn event_at(app: &TestApp, lead: &str, to: Option<&str>, at: &str) {
    let (lead, to, at) = (lead.to_string(), to.map(str::to_string), at.to_string());
    app.db()
        .run(move |c| {
            use diesel::RunQueryDsl;
            use diesel::sql_types::Text;
            let sql = match &to {
                None => "UPDATE lead_events SET at = ? WHERE lead_id = ? AND kind = 'created' AND ? IS NOT NULL",
                Some(_) => "UPDATE lead_events SET at = ? WHERE lead_id = ? AND kind = 'status_changed' AND changes ->> '$.status[1]' = ?",
            };
            let n = diesel::sql_query(sql)
                .bind::<Text, _>(at)
                .bind::<Text, _>(&lead)
                .bind::<Text, _>(to.unwrap_or_default())
                .execute(c)?;
            assert_eq!(n, 1);
            // History edited under the application: derive the stored stays again, as
            // `leadcache check --repair` would.
            leadcache::leads::stays::refresh(c, &lead)
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn report_figures_match_a_hand_computed_dataset() {
    let app = TestApp::start().await;
    let set = "mutation($id: ID!, $s: String!) { setLeadStatus(id: $id, status: $s) { status } }";
    let mut ids = Vec::new();
    for (name, source, path) in [
        ("L1", Some("linkedin"), vec![]),
        ("L2", Some("linkedin"), vec!["scraped"]),
        ("L3", Some("referral"), vec!["scraped", "contacted"]),
        ("L4", None, vec!["scraped", "contacted", "lost"]),
        ("L5", Some("linkedin"), vec!["scraped"]),
    ] {
        let id = app
            .create_lead(json!({"fullName": name, "source": source}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        for s in path {
            app.ok(set, json!({"id": id, "s": s})).await;
        }
        ids.push(id);
    }
    app.ok(
        "mutation($id: ID!) { addEnrichment(leadId: $id, input: {provider: \"p\", data: {}}) { id } }",
        json!({"id": ids[2]}),
    )
    .await;
    // Stays (days): L2 new 2; L3 new 4, scraped 1; L4 new 6, scraped 3, contacted 1; L5 (deleted)
    // new 100, which must not count.
    for id in &ids {
        event_at(&app, id, None, "2026-01-01 00:00:00").await;
    }
    event_at(&app, &ids[1], Some("scraped"), "2026-01-03 00:00:00").await;
    event_at(&app, &ids[2], Some("scraped"), "2026-01-05 00:00:00").await;
    event_at(&app, &ids[2], Some("contacted"), "2026-01-06 00:00:00").await;
    event_at(&app, &ids[3], Some("scraped"), "2026-01-07 00:00:00").await;
    event_at(&app, &ids[3], Some("contacted"), "2026-01-10 00:00:00").await;
    event_at(&app, &ids[3], Some("lost"), "2026-01-11 00:00:00").await;
    event_at(&app, &ids[4], Some("scraped"), "2026-04-11 00:00:00").await;
    app.ok(
        "mutation($id: ID!) { deleteLead(id: $id) { id } }",
        json!({"id": ids[4]}),
    )
    .await;
    // L1 was created two days ago.
    app.db()
        .run({
            let id = ids[0].clone();
            move |c| {
                use diesel::prelude::*;
                use leadcache::db::schema::leads;
                let t = leadcache::time::now() - chrono::Duration::days(2);
                diesel::update(leads::table.filter(leads::id.eq(id)))
                    .set(leads::created_at.eq(t))
                    .execute(c)?;
                Ok(())
            }
        })
        .await
        .unwrap();
    // Campaign Q1: L1 sent, L2 replied, L3 draft; Q2 empty.
    let cid = app
        .ok(
            "mutation { createCampaign(input: {name: \"Q1\"}) { id } }",
            json!({}),
        )
        .await["createCampaign"]["id"]
        .clone();
    app.ok(
        "mutation { createCampaign(input: {name: \"Q2\"}) { id } }",
        json!({}),
    )
    .await;
    app.ok(
        "mutation($c: ID!, $l: [ID!]!) { addLeadsToCampaign(campaignId: $c, leadIds: $l) { id } }",
        json!({"c": cid, "l": [ids[0], ids[1], ids[2]]}),
    )
    .await;
    let upd = "mutation($c: ID!, $l: ID!, $s: String) { updateCampaignLead(campaignId: $c, leadId: $l, patch: {status: $s}) { status } }";
    app.ok(upd, json!({"c": cid, "l": ids[0], "s": "sent"}))
        .await;
    app.ok(upd, json!({"c": cid, "l": ids[1], "s": "replied"}))
        .await;

    let r = app
        .ok(
            "{ report { totalLeads enrichmentRate byStatus { status count } funnel { status reached share } \
              bySource { source count } createdPerDay { day count } medianDaysInStage { status medianDays } \
              campaigns { name leads sent replied replyRate } } }",
            json!({}),
        )
        .await["report"]
        .clone();
    assert_eq!(r["totalLeads"], 4);
    assert_eq!(r["enrichmentRate"], 0.25);
    let pairs = |v: &Value, k: &str, n: &str| -> Vec<(Value, Value)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| (x[k].clone(), x[n].clone()))
            .collect()
    };
    let by_status = pairs(&r["byStatus"], "status", "count");
    let expected: Vec<(Value, Value)> = [
        ("new", 1),
        ("scraped", 1),
        ("enriched", 0),
        ("verified", 0),
        ("contacted", 1),
        ("replied", 0),
        ("qualified", 0),
        ("won", 0),
        ("lost", 1),
    ]
    .iter()
    .map(|(s, n)| (json!(s), json!(n)))
    .collect();
    assert_eq!(by_status, expected);
    // Reached: new all 4; scraped L2 L3 L4; enriched, verified, contacted: L3 and L4 (lost from
    // contacted); nothing further.
    let funnel: Vec<(Value, Value, Value)> = r["funnel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["status"].clone(),
                x["reached"].clone(),
                x["share"].clone(),
            )
        })
        .collect();
    let expected: Vec<(Value, Value, Value)> = [
        ("new", 4, 1.0),
        ("scraped", 3, 0.75),
        ("enriched", 2, 0.5),
        ("verified", 2, 0.5),
        ("contacted", 2, 0.5),
        ("replied", 0, 0.0),
        ("qualified", 0, 0.0),
        ("won", 0, 0.0),
    ]
    .iter()
    .map(|(s, n, f)| (json!(s), json!(n), json!(f)))
    .collect();
    assert_eq!(funnel, expected);
    assert_eq!(
        pairs(&r["bySource"], "source", "count"),
        [
            (json!("linkedin"), json!(2)),
            (json!(null), json!(1)),
            (json!("referral"), json!(1))
        ]
    );
    let days = r["createdPerDay"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let today = chrono::Utc::now().date_naive();
    assert_eq!(
        days[29],
        json!({"day": today.format("%Y-%m-%d").to_string(), "count": 3})
    );
    assert_eq!(
        days[27],
        json!({"day": (today - chrono::Duration::days(2)).format("%Y-%m-%d").to_string(), "count": 1})
    );
    assert_eq!(
        days.iter()
            .map(|d| d["count"].as_i64().unwrap())
            .sum::<i64>(),
        4
    );
    // Medians: new [2, 4, 6] -> 4; scraped [1, 3] -> 2; contacted [1] -> 1; the rest none.
    let medians = pairs(&r["medianDaysInStage"], "status", "medianDays");
    assert_eq!(medians[0], (json!("new"), json!(4.0)));
    assert_eq!(medians[1], (json!("scraped"), json!(2.0)));
    assert_eq!(medians[4], (json!("contacted"), json!(1.0)));
    assert!(
        medians
            .iter()
            .enumerate()
            .all(|(i, m)| [0, 1, 4].contains(&i) || m.1.is_null()),
        "{medians:?}"
    );
    let campaigns = r["campaigns"].as_array().unwrap();
    let q1 = campaigns.iter().find(|c| c["name"] == "Q1").unwrap();
    assert_eq!(
        q1,
        &json!({"name": "Q1", "leads": 3, "sent": 2, "replied": 1, "replyRate": 0.5})
    );
    let q2 = campaigns.iter().find(|c| c["name"] == "Q2").unwrap();
    assert_eq!(
        q2,
        &json!({"name": "Q2", "leads": 0, "sent": 0, "replied": 0, "replyRate": 0.0})
    );
}

/// The stored stays of every lead, as (status, from, completed) in order.
async fn stays_of(app: &TestApp, id: &str) -> Vec<(String, Option<String>, bool)> {
    let id = id.to_string();
    app.db()
        .run(move |c| {
            use diesel::prelude::*;
            use leadcache::db::schema::lead_stays as s;
            Ok(s::table
                .filter(s::lead_id.eq(&id))
                .order(s::id)
                .select((s::status, s::from_status, s::left_at.is_not_null()))
                .load::<(String, Option<String>, bool)>(c)?)
        })
        .await
        .unwrap()
}

fn stay(status: &str, from: Option<&str>, done: bool) -> (String, Option<String>, bool) {
    (status.into(), from.map(str::to_string), done)
}

#[tokio::test]
async fn stored_stays_follow_every_write_path() {
    let app = TestApp::start().await;
    let set = "mutation($id: ID!, $s: String!) { setLeadStatus(id: $id, status: $s) { status } }";
    let a = app
        .create_lead(json!({"fullName": "Ada One", "company": "A"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = app
        .create_lead(json!({"fullName": "Bo Two", "company": "B", "status": "scraped"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(stays_of(&app, &a).await, [stay("new", None, false)]);
    assert_eq!(stays_of(&app, &b).await, [stay("scraped", None, false)]);

    // Status changes, through both the shortcut and a plain update.
    app.ok(set, json!({"id": a, "s": "scraped"})).await;
    app.ok(
        "mutation($id: ID!) { updateLead(id: $id, patch: {status: \"contacted\", title: \"CTO\"}) { id } }",
        json!({"id": a}),
    )
    .await;
    assert_eq!(
        stays_of(&app, &a).await,
        [
            stay("new", None, true),
            stay("scraped", Some("new"), true),
            stay("contacted", Some("scraped"), false),
        ]
    );
    // An update that leaves the status alone changes nothing.
    app.ok(
        "mutation($id: ID!) { updateLead(id: $id, patch: {title: \"CEO\"}) { id } }",
        json!({"id": a}),
    )
    .await;
    assert_eq!(stays_of(&app, &a).await.len(), 3);

    // Deleted leads have no stays; restoring brings them back from the history.
    app.ok(
        "mutation($id: ID!) { deleteLead(id: $id) { id } }",
        json!({"id": a}),
    )
    .await;
    assert!(stays_of(&app, &a).await.is_empty());
    app.ok(
        "mutation($id: ID!) { restoreLead(id: $id) { id } }",
        json!({"id": a}),
    )
    .await;
    assert_eq!(stays_of(&app, &a).await.len(), 3);

    // A manual merge: the merged lead leaves the live set, the kept one keeps its own chain.
    app.ok(
        "mutation($k: ID!, $m: ID!) { mergeLeads(keepId: $k, mergeId: $m) { id } }",
        json!({"k": a, "m": b}),
    )
    .await;
    assert!(stays_of(&app, &b).await.is_empty());
    assert_eq!(stays_of(&app, &a).await.len(), 3);

    // Nothing anywhere differs from a fresh derivation, and the report reads the table.
    let bad = app
        .db()
        .run(|c| leadcache::leads::stays::inconsistent(c, 10))
        .await
        .unwrap();
    assert!(bad.is_empty(), "stale stays for {bad:?}");
    let r = app
        .ok(
            "{ report { medianDaysInStage { status medianDays } } }",
            json!({}),
        )
        .await;
    let medians = r["report"]["medianDaysInStage"].as_array().unwrap();
    let new = medians.iter().find(|m| m["status"] == "new").unwrap();
    assert!(new["medianDays"].as_f64().unwrap() >= 0.0, "{r}");
    let lost = medians.iter().find(|m| m["status"] == "lost").unwrap();
    assert_eq!(lost["medianDays"], Value::Null);
}
