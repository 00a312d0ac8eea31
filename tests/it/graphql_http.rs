//! GraphQL over HTTP (issue 17, item 3): request errors have no `data` key at all and answer 400
//! for `application/graphql-response+json`; a body without a query is a readable 400.

use serde_json::{Value, json};

use crate::support::TestApp;

async fn post(app: &TestApp, accept: &str, body: Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("accept", accept)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

const GQL_JSON: &str = "application/graphql-response+json";

#[tokio::test]
async fn request_errors_have_no_data_key_and_answer_400_for_graphql_response_json() {
    let app = TestApp::start().await;
    for (accept, status) in [(GQL_JSON, 400), ("application/json", 200)] {
        for query in ["{ leads { nodes { id }", "{ noSuchField }"] {
            let (got, body) = post(&app, accept, json!({"query": query})).await;
            assert_eq!(got, status, "{accept} {query}: {body}");
            let object = body.as_object().unwrap();
            assert!(!object.contains_key("data"), "{accept} {query}: {body}");
            assert!(body["errors"][0]["message"].is_string(), "{body}");
        }
    }
    // An execution error keeps `data` (here null for the missing lead, with the error's path).
    let (got, body) = post(
        &app,
        GQL_JSON,
        json!({"query": "mutation { updateLead(id: \"nope\", patch: {title: \"x\"}) { id } }"}),
    )
    .await;
    assert_eq!(got, 200, "{body}");
    assert!(body.as_object().unwrap().contains_key("data"), "{body}");
    assert_eq!(body["errors"][0]["path"][0], "updateLead");
}

#[tokio::test]
async fn a_body_without_a_query_is_a_readable_400() {
    let app = TestApp::start().await;
    for body in [json!({}), json!({"query": ""}), json!({"query": "   "})] {
        let (got, answer) = post(&app, GQL_JSON, body.clone()).await;
        assert_eq!(got, 400, "{body}: {answer}");
        assert!(
            !answer.as_object().unwrap().contains_key("data"),
            "{answer}"
        );
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("query"), "{body}: {message}");
    }
}
