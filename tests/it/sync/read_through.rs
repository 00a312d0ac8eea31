//! Read-through (SPEC §5.7, issue 15 item 8): `lead(id: "rec…")` of an uncached record fetches it
//! from Airtable within the operation's and the minute's budgets, never while the base is paused
//! or backing off, remembers unknown ids, and counts every request in the day's usage.

use std::time::Duration;

use leadcache::auth::Role;
use serde_json::{Value, json};

use super::fixture::{BASE, Synced};
use crate::access::{post, token};

/// One operation with an alias `a{i}: lead(id: …)` per id.
fn aliases(ids: &[String]) -> String {
    let fields: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("a{i}: lead(id: \"{id}\") {{ airtableId }}"))
        .collect();
    format!("{{ {} }}", fields.join(" "))
}

/// The codes of the errors of a response, by alias.
fn error_codes(body: &Value) -> Vec<(String, String, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["path"][0].as_str().unwrap_or_default().to_string(),
                        e["extensions"]["code"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        e["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `cacheStatus.requestsToday`, asked with `bearer` (`None`: the server is open).
async fn requests_today(s: &Synced, bearer: Option<&str>) -> i64 {
    let (_, body) = post(
        &s.app,
        bearer,
        json!({"query": "{ cacheStatus { requestsToday } }"}),
    )
    .await;
    body["data"]["cacheStatus"]["requestsToday"]
        .as_i64()
        .unwrap_or_else(|| panic!("{body:#}"))
}

#[tokio::test]
async fn one_operation_fetches_at_most_read_through_per_request_and_every_get_is_counted() {
    let s = Synced::start(60, |_| {}).await;
    let read = token(&s.app, "reader", Role::Read);
    let ids = s.some_remote_ids(50);
    let (status, body) = post(&s.app, Some(&read), json!({"query": aliases(&ids)})).await;
    assert_eq!(status, 200, "{body:#}");

    assert_eq!(
        s.api_requests(&["get"]),
        5,
        "READ_THROUGH_PER_REQUEST (5) GETs, not one per alias"
    );
    let fetched = (0..50)
        .filter(|i| body["data"][format!("a{i}")]["airtableId"].is_string())
        .count();
    assert_eq!(fetched, 5, "{body:#}");
    let errors = error_codes(&body);
    assert_eq!(errors.len(), 45, "{body:#}");
    for (alias, code, message) in &errors {
        assert_eq!(code, "LIMIT", "{alias}: {message}");
        assert!(
            message.contains("READ_THROUGH_PER_REQUEST") && message.contains("at most 5"),
            "the message names the setting and the limit: {message}"
        );
        assert!(body["data"][alias].is_null());
    }
    assert_eq!(s.app.count("SELECT COUNT(*) AS n FROM leads").await, 5);
    // The GETs are in the day's (and so the month's) Airtable budget.
    assert_eq!(requests_today(&s, Some(&read)).await, 5);
    assert_eq!(
        s.app
            .count("SELECT requests AS n FROM airtable_usage WHERE kind = 'read_through'")
            .await,
        5
    );

    // A cached record is answered from the cache: no request, no budget spent. (Which five of
    // the 50 aliases were fetched depends on the order they were resolved in: take one of them.)
    let cached = (0..50)
        .find(|i| body["data"][format!("a{i}")]["airtableId"].is_string())
        .unwrap();
    let again = aliases(&ids[cached..=cached]);
    let (_, body) = post(&s.app, Some(&read), json!({"query": again})).await;
    assert_eq!(
        body["data"]["a0"]["airtableId"],
        ids[cached].as_str(),
        "{body:#}"
    );
    assert_eq!(s.api_requests(&["get"]), 5);
}

#[tokio::test]
async fn the_per_minute_cap_is_shared_by_all_callers() {
    let s = Synced::start_configured(10, |c| {
        c.read_through.per_minute = 3;
    })
    .await;
    let one = token(&s.app, "one", Role::Read);
    let other = token(&s.app, "other", Role::Read);
    let ids = s.some_remote_ids(4);

    let (_, first) = post(&s.app, Some(&one), json!({"query": aliases(&ids[..2])})).await;
    assert!(first.get("errors").is_none(), "{first:#}");
    let (_, second) = post(&s.app, Some(&other), json!({"query": aliases(&ids[2..])})).await;
    let errors = error_codes(&second);
    assert_eq!(errors.len(), 1, "{second:#}");
    let (_, code, message) = &errors[0];
    assert_eq!(code, "LIMIT");
    assert!(
        message.contains("READ_THROUGH_PER_MINUTE") && message.contains("at most 3"),
        "{message}"
    );
    assert_eq!(s.api_requests(&["get"]), 3, "three fetches a minute in all");
    assert_eq!(requests_today(&s, Some(&one)).await, 3);
}

#[tokio::test]
async fn an_unknown_id_is_asked_once_a_minute() {
    let s = Synced::start(3, |_| {}).await;
    let unknown = "recAAAAAAAAAAAAAA";
    for _ in 0..3 {
        let l = s.local(unknown).await;
        assert!(l.is_null(), "{l}");
    }
    assert_eq!(s.api_requests(&["get"]), 1, "the miss is remembered");
    assert_eq!(requests_today(&s, None).await, 1, "the one GET is counted");
}

#[tokio::test]
async fn a_paused_base_answers_at_once_without_a_request() {
    let s = Synced::start(3, |_| {}).await;
    let id = s.some_remote_ids(1).remove(0);
    // Paused as after a 429: every request to the base waits 10 minutes.
    leadcache::airtable::pacer_for(&s.sim.url(), BASE, 5, Duration::from_millis(10))
        .pause(Duration::from_secs(600));
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        s.app.gql(
            "query($id: ID!) { lead(id: $id) { id } }",
            json!({"id": id}),
        ),
    )
    .await
    .expect("the read-through waited for the pause instead of answering");
    assert!(answer["data"]["lead"].is_null(), "{answer:#}");
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{answer:#}"
    );
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("rate limit"), "{message}");
    assert_eq!(s.api_requests(&["get"]), 0);
    assert_eq!(requests_today(&s, None).await, 0);
}

#[tokio::test]
async fn after_a_failed_or_rate_limited_read_through_the_next_sends_nothing() {
    for (label, faults) in [
        (
            "500",
            leadcache::airtable::sim::Faults {
                fail_next: 1,
                fail_status: 500,
                ..Default::default()
            },
        ),
        (
            "429",
            leadcache::airtable::sim::Faults {
                rate_limit_next: 1,
                ..Default::default()
            },
        ),
    ] {
        let s = Synced::start(3, |_| {}).await;
        let ids = s.some_remote_ids(2);
        s.sim.state.set_faults(faults);
        let first = s.local(&ids[0]).await;
        assert!(first.is_null(), "{label}: {first}");
        assert_eq!(s.api_requests(&["get"]), 1, "{label}");
        // The base is now backing off (500) or paused (429): the next read-through does not ask.
        let body = s
            .app
            .gql(
                "query($id: ID!) { lead(id: $id) { id } }",
                json!({"id": ids[1]}),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAVAILABLE",
            "{label}: {body:#}"
        );
        assert_eq!(s.api_requests(&["get"]), 1, "{label}: no second GET");
        assert_eq!(
            requests_today(&s, None).await,
            1,
            "{label}: the failed GET is counted"
        );
    }
}
