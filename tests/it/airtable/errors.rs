//! Every error class and its retry rule.

use std::time::Duration;

use leadcache::airtable::sim::{Faults, NotFoundShape, RateLimitBody, SimConfig};
use leadcache::airtable::{
    AirtableApi, AirtableError, ClientOptions, HttpClient, ListParams, RecordUpdate,
    UnprocessableKind,
};
use leadcache::config::{ApiKeySource, Secret};
use serde_json::json;

use super::{airtable_config, api_log, fast_client, fast_opts, start_sim, unlimited};

fn gap_ms(sim: &leadcache::airtable::sim::SimHandle, i: usize) -> u64 {
    let log = api_log(sim);
    (log[i + 1].t_us - log[i].t_us) / 1000
}

#[tokio::test]
async fn rate_limited_429_pauses_the_base_then_retries_in_both_body_shapes() {
    for shape in [RateLimitBody::Singular, RateLimitBody::ErrorsArray] {
        let sim = start_sim(SimConfig {
            rate_limit_body: shape,
            records: 3,
            ..unlimited()
        })
        .await;
        let client = fast_client(&sim);
        sim.state.update_faults(|f| f.rate_limit_next = 1);
        let page = client
            .list_page(&ListParams::default(), None)
            .await
            .unwrap();
        assert_eq!(page.records.len(), 3);
        let statuses: Vec<u16> = api_log(&sim).iter().map(|e| e.status).collect();
        assert_eq!(statuses, [429, 200], "{shape:?}");
        assert!(
            gap_ms(&sim, 0) >= 300,
            "waited the configured pause: {} ms",
            gap_ms(&sim, 0)
        );
        let stats = client.stats();
        assert_eq!(
            (stats.rate_limited, stats.retries, stats.requests()),
            (1, 1, 2)
        );
    }
}

#[tokio::test]
async fn a_real_lockout_is_waited_out() {
    // The simulator enforces 5 req/s with a 500 ms lock-out; this client paces at 100/s.
    let sim = start_sim(SimConfig {
        lockout: Duration::from_millis(500),
        records: 1,
        ..SimConfig::default()
    })
    .await;
    let opts = ClientOptions {
        rate_limit_pause: Duration::from_millis(600),
        max_attempts: 10,
        ..fast_opts()
    };
    let client = HttpClient::from_config(&airtable_config(&sim, 100), opts).unwrap();
    for _ in 0..8 {
        client
            .list_page(&ListParams::default(), None)
            .await
            .unwrap();
    }
    let log = api_log(&sim);
    assert!(log.iter().any(|e| e.status == 429));
    assert_eq!(log.iter().filter(|e| e.status == 200).count(), 8);
}

#[tokio::test]
async fn the_monthly_quota_error_is_not_retried() {
    let sim = start_sim(SimConfig {
        faults: Faults {
            quota_exceeded: true,
            ..Faults::default()
        },
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let err = client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap_err();
    assert!(err.is_quota() && !err.is_retryable(), "{err}");
    assert!(err.to_string().contains("billing plan limit"));
    assert_eq!(api_log(&sim).len(), 1);
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_error_without_retries_or_leaks() {
    let sim = start_sim(SimConfig {
        api_key: Some("patRightToken.123".into()),
        ..unlimited()
    })
    .await;
    let mut cfg = airtable_config(&sim, 1000);
    cfg.api_key = Some(ApiKeySource::Value(Secret::new("patWrongToken.456")));
    let client = HttpClient::from_config(&cfg, fast_opts()).unwrap();
    let err = client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap_err();
    assert!(err.is_auth() && !err.is_retryable(), "{err}");
    assert!(!format!("{err} {err:?}").contains("patWrongToken"));
    assert!(!format!("{client:?}").contains("patWrongToken"));
    assert_eq!(api_log(&sim).len(), 1);
    assert_eq!(api_log(&sim)[0].status, 401);
}

#[tokio::test]
async fn the_token_file_is_reread_on_reload() {
    let sim = start_sim(SimConfig {
        api_key: Some("patFromFile.1".into()),
        ..unlimited()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "patOldToken.0\n").unwrap();
    let mut cfg = airtable_config(&sim, 1000);
    cfg.api_key = Some(ApiKeySource::File(path.clone()));
    let client = HttpClient::from_config(&cfg, fast_opts()).unwrap();
    assert!(
        client
            .list_page(&ListParams::default(), None)
            .await
            .unwrap_err()
            .is_auth()
    );
    std::fs::write(&path, "patFromFile.1\n").unwrap();
    client.reload_token().await.unwrap();
    client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let err = client.reload_token().await.unwrap_err();
    assert!(err.is_auth() && err.to_string().contains("AIRTABLE_API_KEY_FILE"));
}

#[tokio::test]
async fn unknown_base_and_table() {
    let sim = start_sim(unlimited()).await;
    let mut cfg = airtable_config(&sim, 1000);
    cfg.base_id = "appNoSuchBase0000".into();
    let client = HttpClient::from_config(&cfg, fast_opts()).unwrap();
    let err = client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AirtableError::NotFound { kind, .. } if kind == "NOT_FOUND"),
        "{err}"
    );
    let mut cfg = airtable_config(&sim, 1000);
    cfg.table = "Nope".into();
    let client = HttpClient::from_config(&cfg, fast_opts()).unwrap();
    let err = client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap_err();
    assert!(err.is_auth(), "a 403 on the table stops the run: {err}");
}

#[tokio::test]
async fn every_not_found_shape_reads_as_a_missing_record() {
    for shape in [
        NotFoundShape::ModelIdNotFound,
        NotFoundShape::InvalidPermissions,
        NotFoundShape::Bare,
    ] {
        let sim = start_sim(SimConfig {
            not_found: shape,
            ..unlimited()
        })
        .await;
        let client = fast_client(&sim);
        assert_eq!(
            client.get_record("recMissingRecord1").await.unwrap(),
            None,
            "{shape:?}"
        );
        assert_eq!(api_log(&sim).len(), 1, "not retried");
    }
}

#[tokio::test]
async fn server_errors_are_retried_honouring_retry_after() {
    let sim = start_sim(SimConfig {
        records: 2,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    sim.state.update_faults(|f| {
        f.fail_next = 1;
        f.fail_status = 503;
        f.retry_after_secs = Some(1);
    });
    client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap();
    assert!(
        gap_ms(&sim, 0) >= 1000,
        "Retry-After honoured: {} ms",
        gap_ms(&sim, 0)
    );
    for status in [500, 502] {
        sim.state.clear_log();
        sim.state.update_faults(|f| {
            f.fail_next = 2;
            f.fail_status = status;
            f.retry_after_secs = None;
        });
        client
            .list_page(&ListParams::default(), None)
            .await
            .unwrap();
        let statuses: Vec<u16> = api_log(&sim).iter().map(|e| e.status).collect();
        assert_eq!(statuses, [status, status, 200]);
    }
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let sim = start_sim(unlimited()).await;
    let opts = ClientOptions {
        max_attempts: 3,
        ..fast_opts()
    };
    let client = HttpClient::from_config(&airtable_config(&sim, 1000), opts).unwrap();
    sim.state.update_faults(|f| f.fail_next = 10);
    let err = client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AirtableError::Server { status: 503, .. }),
        "{err}"
    );
    assert_eq!(api_log(&sim).len(), 3);
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn dropped_connections_and_timeouts_are_retried() {
    let sim = start_sim(SimConfig {
        records: 1,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    sim.state.update_faults(|f| f.drop_next = 2);
    client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap();
    let statuses: Vec<u16> = api_log(&sim).iter().map(|e| e.status).collect();
    assert_eq!(statuses, [0, 0, 200]);

    let opts = ClientOptions {
        request_timeout: Duration::from_millis(200),
        max_attempts: 2,
        ..fast_opts()
    };
    let slow = HttpClient::from_config(&airtable_config(&sim, 1000), opts).unwrap();
    sim.state.update_faults(|f| f.latency_ms = 1000);
    let err = slow
        .list_page(&ListParams::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, AirtableError::Timeout), "{err}");
    assert!(err.is_retryable());
    assert_eq!(slow.stats().retries, 1);
}

#[tokio::test]
async fn unprocessable_answers_keep_airtables_type_and_message() {
    let sim = start_sim(SimConfig {
        records: 3,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let id = sim.state.records()[0]["id"].as_str().unwrap().to_string();
    let update = |fields: serde_json::Value, id: &str| RecordUpdate {
        id: id.to_string(),
        fields: fields.as_object().unwrap().clone(),
    };
    let cases = [
        (
            update(json!({"Nope": 1}), &id),
            UnprocessableKind::UnknownFieldName,
            "Unknown field name: \"Nope\"",
        ),
        (
            update(json!({"Last Modified": "2024-01-01T00:00:00.000Z"}), &id),
            UnprocessableKind::InvalidValueForColumn,
            "Field \"Last Modified\" cannot accept a value because the field is computed",
        ),
        (
            update(json!({"Full Name": "X"}), "recDoesNotExist00"),
            UnprocessableKind::RowDoesNotExist,
            "Record ID recDoesNotExist00 does not exist in this table",
        ),
    ];
    for (upd, kind, message) in cases {
        let err = client.update(&[upd]).await.unwrap_err();
        assert!(
            matches!(&err, AirtableError::Unprocessable { kind: k, message: m } if *k == kind && m == message),
            "{err}"
        );
        assert!(!err.is_retryable());
    }
    let bad = |f: &str| ListParams {
        filter_by_formula: Some(f.into()),
        ..ListParams::default()
    };
    let err = client
        .list_page(&bad("SUM({Score}"), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.unprocessable_kind(),
        Some(&UnprocessableKind::InvalidFilterByFormula)
    );
    assert!(
        err.to_string()
            .contains("Invalid formula. Please check your formula text.")
    );
    let err = client
        .list_page(&bad("{Foo} = 'x'"), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Unknown field names: foo"),
        "{err}"
    );
    assert_eq!(api_log(&sim).len(), 5, "none retried");

    // What the client refuses to send, sent raw: Airtable's answers.
    let http = super::raw_http();
    let url = format!("{}/v0/{}/Leads", sim.url(), sim.base_id());
    let many: Vec<_> = (0..11)
        .map(|i| json!({"fields": {"Full Name": format!("n{i}")}}))
        .collect();
    let resp = http
        .post(&url)
        .bearer_auth("pat")
        .json(&json!({"records": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "INVALID_RECORDS");
    let resp = http
        .get(format!("{url}?pageSize=101"))
        .bearer_auth("pat")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "INVALID_PAGE_SIZE_ARGUMENT");
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}
