//! The lead store through the GraphQL API: every mutation with its history and outbox rows,
//! validation (nothing written on error), filters, orderings, pagination and search.

use serde_json::{Value, json};

use crate::support::TestApp;

const LEAD_FIELDS: &str = "id fullName email company status version syncState deletedAt pendingFields \
    events { kind actor changes message }";

async fn lead(app: &TestApp, id: &str) -> Value {
    let q = format!("query($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} }} }}");
    app.ok(&q, json!({"id": id})).await["lead"].clone()
}

#[tokio::test]
async fn create_lead_stores_the_lead_its_event_and_its_outbox_row() {
    let app = TestApp::start().await;
    let created = app
        .create_lead(json!({
            "fullName": "  Jane Doe ", "email": "Jane@Acme.example", "company": "Acme Inc",
            "linkedinUrl": "linkedin.com/in/jane-doe", "status": "scraped", "score": 42.5,
            "extra": {"Tags": ["vip"]}
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["fullName"], "Jane Doe", "names are trimmed");
    assert_eq!(created["version"], 1);
    let l = lead(&app, id).await;
    assert_eq!(
        l["syncState"], "LOCAL",
        "local-only mode keeps changes local"
    );
    assert_eq!(l["events"][0]["kind"], "created");
    assert_eq!(l["events"][0]["actor"], "local");
    assert_eq!(
        l["events"][0]["changes"]["email"],
        json!([null, "Jane@Acme.example"])
    );
    assert_eq!(
        l["events"][0]["changes"]["status"],
        json!([null, "scraped"])
    );
    let pending = l["pendingFields"].as_array().unwrap();
    assert!(
        pending.contains(&json!("full_name")) && pending.contains(&json!("extra.Tags")),
        "{pending:?}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM outbox WHERE operation = 'create'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads WHERE linkedin_key = 'in/jane-doe' AND email_key = 'jane@acme.example' AND company_key = 'acme'").await, 1);
}

#[tokio::test]
async fn every_validation_rule_rejects_with_its_field_and_stores_nothing() {
    let app = TestApp::start().await;
    let cases = [
        (json!({"fullName": "   "}), "full_name"),
        (json!({"fullName": "x".repeat(201)}), "full_name"),
        (json!({"fullName": "A", "email": "not-an-email"}), "email"),
        (json!({"fullName": "A", "email": "a@b"}), "email"),
        (
            json!({"fullName": "A", "linkedinUrl": "https://example.com/in/a"}),
            "linkedin_url",
        ),
        (
            json!({"fullName": "A", "website": "ftp://acme.example"}),
            "website",
        ),
        (json!({"fullName": "A", "phone": "call me maybe"}), "phone"),
        (json!({"fullName": "A", "status": "archived"}), "status"),
        (json!({"fullName": "A", "score": 1e12}), "score"),
        (
            json!({"fullName": "A", "company": "bad\u{0}byte"}),
            "company",
        ),
        (json!({"fullName": "A", "extra": [1, 2]}), "extra"),
    ];
    for (input, field) in cases {
        let e = app
            .err(
                "mutation($i: LeadInput!) { createLead(input: $i) { created } }",
                json!({"i": input}),
                "VALIDATION",
            )
            .await;
        assert_eq!(e["extensions"]["field"], field, "{e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "the message names the field: {e}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM lead_events").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM outbox").await, 0);
}

#[tokio::test]
async fn unknown_input_fields_are_rejected_by_name() {
    let app = TestApp::start().await;
    let body = app
        .gql(
            "mutation { createLead(input: {fullName: \"A\", favouriteColour: \"blue\"}) { created } }",
            json!({}),
        )
        .await;
    let e = &body["errors"][0];
    assert!(
        e["message"].as_str().unwrap().contains("favouriteColour"),
        "{body}"
    );
    assert_eq!(e["extensions"]["code"], "VALIDATION");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 0);
}

#[tokio::test]
async fn update_records_history_coalesces_the_outbox_and_checks_the_version() {
    let app = TestApp::start().await;
    let id = app.create_lead(json!({"fullName": "Jane Doe"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let q = "mutation($id: ID!, $p: LeadPatch!, $v: Int) { updateLead(id: $id, patch: $p, expectedVersion: $v) { version status title } }";
    let updated = app
        .ok(
            q,
            json!({"id": id, "p": {"title": "CTO", "status": "contacted"}, "v": 1}),
        )
        .await;
    assert_eq!(updated["updateLead"]["version"], 2);
    // A stale version is refused and changes nothing.
    app.err(
        q,
        json!({"id": id, "p": {"title": "CEO"}, "v": 1}),
        "CONFLICT",
    )
    .await;
    let l = lead(&app, &id).await;
    assert_eq!(l["version"], 2);
    let kinds: Vec<&str> = l["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["updated", "status_changed", "created"],
        "newest first"
    );
    assert_eq!(
        l["events"][1]["changes"]["status"],
        json!(["new", "contacted"])
    );
    assert_eq!(l["events"][0]["changes"]["title"], json!([null, "CTO"]));
    // Still one outbox row, still a create (never pushed), with the union of fields.
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM outbox WHERE operation = 'create' AND seq = 2")
            .await,
        1
    );
    // Clearing with null; an empty patch changes nothing.
    app.ok(q, json!({"id": id, "p": {"title": null}})).await;
    app.ok(q, json!({"id": id, "p": {}})).await;
    let l = lead(&app, &id).await;
    assert_eq!(l["version"], 3);
    app.err(q, json!({"id": id, "p": {"fullName": null}}), "VALIDATION")
        .await;
}

#[tokio::test]
async fn delete_and_restore_are_soft_and_recorded() {
    let app = TestApp::start().await;
    let id = app.create_lead(json!({"fullName": "Jane Doe"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.ok(
        "mutation($id: ID!) { deleteLead(id: $id) { deletedAt } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM outbox WHERE operation = 'delete'")
            .await,
        1
    );
    let list = app.ok("{ leads { totalCount } }", json!({})).await;
    assert_eq!(list["leads"]["totalCount"], 0, "deleted leads are hidden");
    let list = app
        .ok(
            "{ leads(filter: {includeDeleted: true}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(list["leads"]["totalCount"], 1);
    app.err(
        "mutation($id: ID!) { updateLead(id: $id, patch: {title: \"x\"}) { id } }",
        json!({"id": id}),
        "CONFLICT",
    )
    .await;
    app.err(
        "mutation($id: ID!) { deleteLead(id: $id) { id } }",
        json!({"id": id}),
        "CONFLICT",
    )
    .await;
    app.ok(
        "mutation($id: ID!) { restoreLead(id: $id) { deletedAt } }",
        json!({"id": id}),
    )
    .await;
    let l = lead(&app, &id).await;
    assert!(l["deletedAt"].is_null());
    assert_eq!(l["events"][0]["kind"], "restored");
    assert_eq!(l["events"][1]["kind"], "deleted");
    // Never pushed: the queued operation is a create again.
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM outbox WHERE operation = 'create'")
            .await,
        1
    );
    app.err(
        "mutation { deleteLead(id: \"nope\") { id } }",
        json!({}),
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn notes_and_enrichments() {
    let app = TestApp::start().await;
    let id = app
        .create_lead(json!({"fullName": "Jane Doe", "needsEnrichment": true}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let note = app
        .ok("mutation($id: ID!) { addNote(leadId: $id, text: \" Called, call back Monday \") { kind message } }", json!({"id": id}))
        .await;
    assert_eq!(note["addNote"]["message"], "Called, call back Monday");
    app.err(
        "mutation($id: ID!) { addNote(leadId: $id, text: \"  \") { kind } }",
        json!({"id": id}),
        "VALIDATION",
    )
    .await;
    let e = app
        .ok(
            "mutation($id: ID!) { addEnrichment(leadId: $id, input: {provider: \"clearbit\", data: {employees: 120}, confidence: 0.8}) { provider data confidence } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(e["addEnrichment"]["data"]["employees"], 120);
    app.err(
        "mutation($id: ID!) { addEnrichment(leadId: $id, input: {provider: \"x\", data: {}, confidence: 2}) { provider } }",
        json!({"id": id}),
        "VALIDATION",
    )
    .await;
    let l = app
        .ok("query($id: ID!) { lead(id: $id) { enriched enrichedAt needsEnrichment enrichments { provider } events { kind } } }", json!({"id": id}))
        .await;
    assert_eq!(l["lead"]["enriched"], true);
    assert_eq!(l["lead"]["needsEnrichment"], false);
    assert!(l["lead"]["enrichedAt"].is_string());
    assert_eq!(l["lead"]["enrichments"][0]["provider"], "clearbit");
    assert_eq!(l["lead"]["events"][0]["kind"], "enriched");
    assert_eq!(l["lead"]["events"][1]["kind"], "note");
}

#[tokio::test]
async fn create_leads_is_one_transaction_with_per_item_results() {
    let app = TestApp::start().await;
    let q = "mutation($i: [LeadInput!]!, $all: Boolean) { createLeads(inputs: $i, allOrNothing: $all) { created failed results { index created error errorField lead { fullName } } } }";
    let inputs = json!([{"fullName": "A"}, {"fullName": "B", "email": "nope"}, {"fullName": "C"}]);
    app.err(q, json!({"i": inputs, "all": true}), "VALIDATION")
        .await;
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads").await,
        0,
        "allOrNothing stored nothing"
    );
    let r = app.ok(q, json!({"i": inputs})).await["createLeads"].clone();
    assert_eq!(r["created"], 2);
    assert_eq!(r["failed"], 1);
    assert_eq!(r["results"][1]["errorField"], "email");
    assert_eq!(r["results"][2]["lead"]["fullName"], "C");
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM outbox").await, 2);
}

#[tokio::test]
async fn lead_by_airtable_id() {
    let app = TestApp::start().await;
    let id = app.create_lead(json!({"fullName": "Jane Doe"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lid = id.clone();
    app.db()
        .run(move |c| {
            use diesel::prelude::*;
            use leadcache::db::schema::leads;
            diesel::update(leads::table.filter(leads::id.eq(lid)))
                .set(leads::airtable_id.eq("recAAAAAAAAAAAAAA"))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let l = app
        .ok("{ lead(id: \"recAAAAAAAAAAAAAA\") { id } }", json!({}))
        .await;
    assert_eq!(l["lead"]["id"], id.as_str());
    let l = app
        .ok("{ lead(id: \"recBBBBBBBBBBBBBB\") { id } }", json!({}))
        .await;
    assert!(
        l["lead"].is_null(),
        "unknown ids are null (local-only: no read-through)"
    );
}

/// Seeds leads with distinct values to filter and order on.
async fn seed_filterable(app: &TestApp) -> Vec<String> {
    let inputs = json!([
        {"fullName": "Ann Archer", "company": "Acme Inc", "status": "new", "source": "linkedin", "industry": "Software", "location": "Berlin", "score": 10, "enriched": true, "verified": true},
        {"fullName": "Bob Baker", "company": "ACME", "status": "contacted", "source": "referral", "industry": "Fintech", "location": "Paris", "score": 50, "needsEnrichment": true},
        {"fullName": "Cat Cole", "company": "Globex", "status": "contacted", "source": "linkedin", "industry": "Software", "location": "Berlin", "score": 90},
        {"fullName": "Dan Dunn", "status": "won", "source": "website", "score": 70, "verified": true},
        {"fullName": "Eve Eden", "company": "Initech", "status": "new"}
    ]);
    let r = app
        .ok(
            "mutation($i: [LeadInput!]!) { createLeads(inputs: $i) { results { lead { id } } } }",
            json!({"i": inputs}),
        )
        .await;
    r["createLeads"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["lead"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn names(app: &TestApp, args: &str) -> Vec<String> {
    let q = format!("{{ leads({args}) {{ totalCount nodes {{ fullName }} }} }}");
    let d = app.ok(&q, json!({})).await;
    d["leads"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["fullName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_filter() {
    let app = TestApp::start().await;
    seed_filterable(&app).await;
    let by_name = "orderBy: [{field: FULL_NAME}]";
    let cases: &[(&str, &[&str])] = &[
        (
            "filter: {status: [\"contacted\"]}",
            &["Bob Baker", "Cat Cole"],
        ),
        (
            "filter: {status: [\"won\", \"new\"]}",
            &["Ann Archer", "Dan Dunn", "Eve Eden"],
        ),
        ("filter: {company: \"acme\"}", &["Ann Archer", "Bob Baker"]),
        (
            "filter: {source: \"linkedin\"}",
            &["Ann Archer", "Cat Cole"],
        ),
        (
            "filter: {industry: \"Software\"}",
            &["Ann Archer", "Cat Cole"],
        ),
        ("filter: {location: \"Paris\"}", &["Bob Baker"]),
        ("filter: {enriched: true}", &["Ann Archer"]),
        ("filter: {verified: true}", &["Ann Archer", "Dan Dunn"]),
        ("filter: {needsEnrichment: true}", &["Bob Baker"]),
        (
            "filter: {scoreMin: 50, scoreMax: 80}",
            &["Bob Baker", "Dan Dunn"],
        ),
        (
            "filter: {syncState: [LOCAL]}",
            &[
                "Ann Archer",
                "Bob Baker",
                "Cat Cole",
                "Dan Dunn",
                "Eve Eden",
            ],
        ),
        ("filter: {syncState: [SYNCED]}", &[]),
        (
            "filter: {createdAfter: \"2000-01-01T00:00:00Z\", createdBefore: \"2999-01-01T00:00:00Z\"}",
            &[
                "Ann Archer",
                "Bob Baker",
                "Cat Cole",
                "Dan Dunn",
                "Eve Eden",
            ],
        ),
        ("filter: {updatedAfter: \"2999-01-01T00:00:00Z\"}", &[]),
        ("filter: {campaignId: \"none\"}", &[]),
        (
            "filter: {status: [\"contacted\"], source: \"linkedin\"}",
            &["Cat Cole"],
        ),
        ("search: \"glob\"", &["Cat Cole"]),
    ];
    for (args, want) in cases {
        assert_eq!(
            names(&app, &format!("{args}, {by_name}")).await,
            *want,
            "{args}"
        );
    }
    let d = app
        .ok(
            "{ leads(filter: {status: [\"contacted\"]}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(d["leads"]["totalCount"], 2);
}

#[tokio::test]
async fn orderings() {
    let app = TestApp::start().await;
    seed_filterable(&app).await;
    assert_eq!(
        names(&app, "orderBy: [{field: SCORE, direction: DESC}]").await,
        [
            "Cat Cole",
            "Dan Dunn",
            "Bob Baker",
            "Ann Archer",
            "Eve Eden"
        ],
        "no score sorts last when descending"
    );
    assert_eq!(
        names(
            &app,
            "orderBy: [{field: COMPANY}, {field: FULL_NAME, direction: DESC}]"
        )
        .await,
        [
            "Dan Dunn",
            "Bob Baker",
            "Ann Archer",
            "Cat Cole",
            "Eve Eden"
        ]
    );
    assert_eq!(
        names(&app, "orderBy: [{field: STATUS}, {field: FULL_NAME}]").await,
        [
            "Bob Baker",
            "Cat Cole",
            "Ann Archer",
            "Eve Eden",
            "Dan Dunn"
        ]
    );
    assert_eq!(names(&app, "orderBy: [{field: CREATED_AT}]").await.len(), 5);
}

#[tokio::test]
async fn pagination_edges() {
    let app = TestApp::start().await;
    seed_filterable(&app).await;
    let q = "query($after: String, $first: Int) { leads(first: $first, after: $after, orderBy: [{field: SCORE}]) { totalCount edges { cursor node { fullName } } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let d = app.ok(q, json!({"after": after, "first": 2})).await["leads"].clone();
        assert_eq!(d["totalCount"], 5);
        for e in d["edges"].as_array().unwrap() {
            seen.push(e["node"]["fullName"].as_str().unwrap().to_string());
        }
        if !d["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            assert_eq!(
                d["edges"].as_array().unwrap().len(),
                1,
                "the last page holds the rest"
            );
            break;
        }
        after = d["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(
        seen,
        [
            "Eve Eden",
            "Ann Archer",
            "Bob Baker",
            "Dan Dunn",
            "Cat Cole"
        ]
    );
    // Empty page.
    let d = app.ok(q, json!({"first": 0})).await["leads"].clone();
    assert_eq!(d["edges"], json!([]));
    assert_eq!(d["pageInfo"]["hasNextPage"], true);
    // After the last row: empty, no next page.
    let all = app.ok(q, json!({"first": 5})).await["leads"].clone();
    let d = app
        .ok(
            q,
            json!({"first": 5, "after": all["pageInfo"]["endCursor"]}),
        )
        .await["leads"]
        .clone();
    assert_eq!(d["edges"], json!([]));
    assert_eq!(d["pageInfo"]["hasNextPage"], false);
    // Invalid cursors, and a cursor of another ordering.
    for bad in ["garbage", "eyJvIjpbXX0", "", "%%%"] {
        app.err(q, json!({"first": 2, "after": bad}), "VALIDATION")
            .await;
    }
    let other = app
        .ok("{ leads(first: 1) { pageInfo { endCursor } } }", json!({}))
        .await;
    app.err(
        q,
        json!({"first": 2, "after": other["leads"]["pageInfo"]["endCursor"]}),
        "VALIDATION",
    )
    .await;
    // first is capped.
    app.err(q, json!({"first": 1001}), "LIMIT").await;
    app.err(q, json!({"first": -1}), "VALIDATION").await;
}

#[tokio::test]
async fn search_ranks_prefixes_and_survives_hostile_strings() {
    let app = TestApp::start().await;
    seed_filterable(&app).await;
    app.create_lead(
        json!({"fullName": "Zed Zane", "company": "Annex Labs", "title": "Ann's assistant"}),
    )
    .await;
    let q = "query($q: String!) { searchLeads(query: $q) { fullName } }";
    let d = app.ok(q, json!({"q": "ann"})).await;
    let got: Vec<&str> = d["searchLeads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["fullName"].as_str().unwrap())
        .collect();
    assert_eq!(got[0], "Ann Archer", "a name match ranks first: {got:?}");
    assert!(
        got.contains(&"Zed Zane"),
        "prefix match on company and title: {got:?}"
    );
    let d = app.ok(q, json!({"q": "cat glob"})).await;
    assert_eq!(
        d["searchLeads"],
        json!([{"fullName": "Cat Cole"}]),
        "every word must match"
    );
    for hostile in [
        "\"",
        "'",
        "*",
        "NEAR(a b)",
        "a OR b",
        "(((",
        ")",
        "full_name:ann",
        "ann\" OR \"1\"=\"1",
        "-ann",
        "^ann",
        "'; DROP TABLE leads; --",
        "\u{0}",
        "🙂",
        "",
    ] {
        let body = app.gql(q, json!({"q": hostile})).await;
        assert!(body.get("errors").is_none(), "{hostile:?}: {body}");
    }
    app.err(q, json!({"q": "x".repeat(300)}), "VALIDATION")
        .await;
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads").await,
        6,
        "nothing was harmed"
    );
    let d = app
        .ok("{ leads(search: \"\\\"NEAR(\") { totalCount } }", json!({}))
        .await;
    assert!(d["leads"]["totalCount"].is_number());
}

#[tokio::test]
async fn depth_and_complexity_limits() {
    let app = TestApp::start().await;
    // Too deep (introspection nests as deep as one likes).
    let deep = format!(
        "{{ __schema {{ types {{ {} name {} }} }} }}",
        "fields { type { ofType { ".repeat(5),
        "} } } ".repeat(5)
    );
    let body = app.gql(&deep, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT", "{body}");
    // Too costly: many aliases of a page of 1,000 leads (the open server's caller is an admin).
    let wide: String = (0..150)
        .map(|i| format!("a{i}: leads(first: 1000) {{ nodes {{ id }} }} "))
        .collect();
    let body = app.gql(&format!("{{ {wide} }}"), json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "LIMIT",
        "{}",
        body["errors"][0]
    );
}

#[tokio::test]
async fn graphql_over_http() {
    let app = TestApp::start().await;
    let r = app.get("/graphql?query=%7B%20statuses%20%7D").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["statuses"][0], "new");
    let r = app.get("/graphql?query=mutation%20%7B%20addNote(leadId%3A%22x%22%2Ctext%3A%22y%22)%20%7B%20kind%20%7D%20%7D").await;
    assert_eq!(r.status(), 405, "mutations need POST");
    let r = app
        .http
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({"query": "{ nope }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers()["content-type"],
        "application/graphql-response+json"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["airtable"], "not configured");
    assert_eq!(app.get("/graphiql").await.status(), 200);
}
