//! What one operation may cost (SPEC §14; issue 15 item 6, issue 17 item 1): the standard
//! introspection queries pass whatever their depth, data queries keep their depth limit, and an
//! operation whose cost (list sizes times selections, plus costly fields) is over the caller's
//! role budget is refused at once with LIMIT, naming its cost and the budget.

use leadcache::auth::Role;
use serde_json::{Value, json};

use crate::access::{post, token};
use crate::support::TestApp;

/// The exact texts that common tools send, checked in (`tests/it/introspection/`): graphql-js
/// 16.15 `getIntrospectionQuery()` with no options and with every option, graphql-core 3.2.6
/// `get_introspection_query` with every option.
const INTROSPECTION: [(&str, &str); 3] = [
    (
        "graphql-js default",
        include_str!("introspection/graphql-js-16.15-default.graphql"),
    ),
    (
        "graphql-js all options",
        include_str!("introspection/graphql-js-16.15-all-options.graphql"),
    ),
    (
        "graphql-core all options",
        include_str!("introspection/graphql-core-3.2.6-all-options.graphql"),
    ),
];

#[tokio::test]
async fn the_standard_introspection_queries_pass_for_a_read_token() {
    let app = TestApp::start().await;
    let read = token(&app, "reader", Role::Read);
    for (tool, query) in INTROSPECTION {
        let (status, body) = post(&app, Some(&read), json!({"query": query})).await;
        assert_eq!(status, 200, "{tool}: {body}");
        assert!(body.get("errors").is_none(), "{tool}: {body}");
        let types = body["data"]["__schema"]["types"].as_array().unwrap();
        assert!(
            types.iter().any(|t| t["name"] == "Lead"),
            "{tool}: no Lead type"
        );
        assert_eq!(body["data"]["__schema"]["queryType"]["name"], "QueryRoot");
    }
}

#[tokio::test]
async fn data_queries_keep_their_depth_limit() {
    let app = TestApp::start().await;
    let ok =
        "{ leads { pageInfo { hasNextPage } nodes { events { kind } campaigns { campaignId } } } }";
    let (status, body) = post(&app, None, json!({"query": ok})).await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    let mut deep = String::from("id");
    for _ in 0..13 {
        deep = format!("a {{ {deep} }}");
    }
    let (_, body) = post(&app, None, json!({"query": format!("{{ {deep} }}")})).await;
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "LIMIT", "{body}");
    assert!(
        error["message"].as_str().unwrap().contains("at most 12"),
        "{body}"
    );
}

fn aliases(n: usize, field: &str) -> String {
    let mut q = String::from("{");
    for i in 0..n {
        q.push_str(&format!(" a{i}: {field}"));
    }
    q.push('}');
    q
}

fn limit_message(body: &Value) -> String {
    assert!(body.get("data").is_none_or(Value::is_null), "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "LIMIT", "{body}");
    error["message"].as_str().unwrap().to_string()
}

/// The requests of the hostile-load benchmark: each is refused before it runs, with its cost and
/// the budget of the caller's role; what a real agent asks for fits.
#[tokio::test]
async fn a_request_over_its_role_budget_is_refused_with_its_cost() {
    let app = TestApp::start().await;
    let read = token(&app, "reader", Role::Read);
    let admin = token(&app, "admin", Role::Admin);
    for (n, field) in [
        (
            600,
            "duplicateCandidates(first: 1000) { a { id } b { id } score }",
        ),
        (
            600,
            "searchLeads(query: \"acme\", first: 1000) { id fullName }",
        ),
        (600, "report { totalLeads }"),
        (1200, "cacheStatus { totalLeads }"),
    ] {
        let (_, body) = post(&app, Some(&read), json!({"query": aliases(n, field)})).await;
        let message = limit_message(&body);
        assert!(
            message.contains("costs")
                && message.contains("budget is 50000")
                && message.contains("GRAPHQL_BUDGET_READ"),
            "{message}"
        );
    }
    // Default list sizes count too: 600 aliases of `leads` (50 a page by default).
    let (_, body) = post(
        &app,
        Some(&read),
        json!({"query": aliases(600, "leads { nodes { id fullName } }")}),
    )
    .await;
    limit_message(&body);
    // Nested lists multiply.
    let (_, body) = post(
        &app,
        Some(&read),
        json!({"query": "{ leads(first: 1000) { nodes { events(first: 1000) { kind } } } }"}),
    )
    .await;
    limit_message(&body);

    // What a real agent asks for fits: a page of 1,000 leads with every field a client shows,
    // or a handful of searches.
    let page = "{ leads(first: 1000) { totalCount pageInfo { hasNextPage endCursor } nodes { id airtableId fullName email company title linkedinUrl website phone location industry companySize status source score verified enriched needsEnrichment createdAt updatedAt syncState } } }";
    let (status, body) = post(&app, Some(&read), json!({"query": page})).await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    let (_, body) = post(
        &app,
        Some(&read),
        json!({"query": aliases(10, "searchLeads(query: \"acme\") { id fullName company }")}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    // An admin's budget is larger: a duplicate scan with a full page fits.
    // (GRAPHQL_BUDGET_ADMIN; a server may set its own, see `budgets_are_settings`.)
    let (_, body) = post(
        &app,
        Some(&admin),
        json!({"query": aliases(3, "duplicateCandidates(first: 1000) { a { id } b { id } }")}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
}

/// GRAPHQL_TIMEOUT_MS stops a query that runs too long with LIMIT; the server goes on answering.
#[tokio::test]
async fn a_query_over_the_time_limit_is_stopped_with_limit() {
    let app =
        TestApp::start_with(|c| c.graphql_timeout = std::time::Duration::from_millis(1)).await;
    app.db()
        .run(|c| leadcache::seed::seed(c, 3000, 5, false))
        .await
        .unwrap();
    let body = app
        .gql(
            "{ duplicateCandidates(first: 1000) { score } report { totalLeads } }",
            json!({}),
        )
        .await;
    let message = limit_message(&body);
    assert!(message.contains("GRAPHQL_TIMEOUT_MS"), "{message}");
    // Mutations are not cut off: a committed write is never answered with an error.
    let created = app
        .create_lead(json!({"fullName": "After The Timeout"}))
        .await;
    assert!(created["id"].is_string());
}

/// MAX_RESPONSE_BYTES: a response larger than the cap is replaced by a LIMIT error; the `sql`
/// console has the same cap on its rows and on any single value (zeroblob allocates nothing).
#[tokio::test]
async fn responses_and_sql_rows_over_the_byte_cap_are_refused() {
    let app = TestApp::start_with(|c| c.max_response_bytes = 64 * 1024).await;
    app.db()
        .run(|c| leadcache::seed::seed(c, 600, 5, false))
        .await
        .unwrap();
    let body = app
        .gql(
            "{ leads(first: 600) { nodes { id fullName email company title location industry } } }",
            json!({}),
        )
        .await;
    let message = limit_message(&body);
    assert!(message.contains("MAX_RESPONSE_BYTES"), "{message}");
    let small = app
        .ok("{ leads(first: 5) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(small["leads"]["nodes"].as_array().unwrap().len(), 5);

    let sql = "query($q: String!) { sql(query: $q) { columns rows truncated } }";
    for (q, said) in [
        ("SELECT zeroblob(2000000000)", "larger than"),
        ("SELECT hex(zeroblob(100000))", "larger than"),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 900) SELECT printf('%.1000c', 'x') FROM c",
            "add up",
        ),
    ] {
        let body = app.gql(sql, json!({"q": q})).await;
        let message = limit_message(&body);
        assert!(
            message.contains(said) && message.contains("MAX_RESPONSE_BYTES"),
            "{q}: {message}"
        );
    }
    let fine = app
        .ok(sql, json!({"q": "SELECT COUNT(*) AS n FROM leads"}))
        .await;
    assert_eq!(fine["sql"]["rows"][0][0], 600);
}

/// The budgets are settings: a server with a smaller read budget refuses what the default allows.
#[tokio::test]
async fn budgets_are_settings() {
    let app = TestApp::start_with(|c| c.graphql_budgets[0] = 100).await;
    let read = token(&app, "reader", Role::Read);
    let (_, body) = post(
        &app,
        Some(&read),
        json!({"query": "{ leads(first: 50) { nodes { id fullName } } }"}),
    )
    .await;
    let message = limit_message(&body);
    assert!(message.contains("budget is 100"), "{message}");
    let (_, body) = post(
        &app,
        Some(&read),
        json!({"query": "{ leads(first: 5) { nodes { id } } }"}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
}
