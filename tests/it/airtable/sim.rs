//! The simulator itself: control API, seeding, stop/restart, Airtable-like details.

use std::time::Duration;

use leadcache::airtable::sim::{self, Faults, SimConfig};
use leadcache::airtable::{AirtableApi, ClientOptions, HttpClient, ListParams, list_all};
use serde_json::{Value, json};

use super::{airtable_config, api_log, fast_client, fast_opts, raw_http, start_sim, unlimited};

#[tokio::test]
async fn seeding_is_deterministic_and_realistic() {
    let a = start_sim(SimConfig {
        records: 200,
        ..unlimited()
    })
    .await;
    let b = start_sim(SimConfig {
        records: 200,
        ..unlimited()
    })
    .await;
    let strip = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .map(|mut r| {
                let f = r["fields"].as_object_mut().unwrap();
                f.remove("Last Modified");
                f.remove("Created");
                json!({"id": r["id"], "fields": r["fields"]})
            })
            .collect()
    };
    let (ra, rb) = (strip(a.state.records()), strip(b.state.records()));
    assert_eq!(ra, rb, "same seed, same records");
    let count = |s: &str| ra.iter().filter(|r| r["fields"]["Status"] == s).count();
    assert!(
        count("new") > count("contacted") && count("contacted") > count("won"),
        "a funnel"
    );
    for r in &ra {
        let id = r["id"].as_str().unwrap();
        assert!(
            id.starts_with("rec")
                && id.len() == 17
                && id.chars().all(|c| c.is_ascii_alphanumeric())
        );
        assert!(r["fields"]["Full Name"].is_string());
    }
    let with_email = ra
        .iter()
        .filter(|r| {
            r["fields"]["Email"]
                .as_str()
                .is_some_and(|e| e.contains('@'))
        })
        .count();
    assert!(with_email > 150);
}

#[tokio::test]
async fn records_look_like_airtable_records() {
    let sim = start_sim(SimConfig {
        records: 150,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let page = client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap();
    let offset = page.offset.clone().unwrap();
    let (itr, rec) = offset.split_once('/').unwrap();
    assert!(itr.starts_with("itr") && itr.len() == 17 && rec.starts_with("rec") && rec.len() == 17);
    let last = client
        .list_page(&ListParams::default(), Some(&offset))
        .await
        .unwrap();
    assert_eq!(last.offset, None, "the last page has no offset");
    for r in page.records.iter().chain(&last.records) {
        let lm = r.fields["Last Modified"].as_str().unwrap();
        assert!(lm.ends_with(".000Z"), "whole seconds: {lm}");
        assert!(
            r.fields
                .values()
                .all(|v| v != &json!("") && v != &json!(false) && v != &json!([]))
        );
    }
    let all = list_all(&client, ListParams::default(), 0).await.unwrap();
    let again = list_all(&client, ListParams::default(), 0).await.unwrap();
    let ids =
        |v: &Vec<leadcache::airtable::Record>| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&all), ids(&again), "stable order without sort");
}

#[tokio::test]
async fn ui_edits_bump_last_modified_and_show_in_incremental_pulls() {
    let sim = start_sim(SimConfig {
        records: 20,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let id = sim.state.records()[3]["id"].as_str().unwrap().to_string();
    let before = sim.state.record(&id).unwrap()["fields"]["Last Modified"].clone();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let since = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0)
        - chrono::Duration::milliseconds(1);
    sim.state
        .ui_edit(
            &id,
            json!({"Status": "won", "Email": null})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
    let rec = sim.state.record(&id).unwrap();
    assert_ne!(rec["fields"]["Last Modified"], before);
    assert!(rec["fields"].get("Email").is_none());
    // Last Modified has whole seconds: the edit shows at or after `since`'s second, the seeded
    // records (2 s older) before it.
    let params = ListParams {
        filter_by_formula: Some(leadcache::airtable::formula::modified_after(
            "Last Modified",
            since,
        )),
        ..ListParams::default()
    };
    let changed = list_all(&client, params, 0).await.unwrap();
    assert!(changed.iter().any(|r| r.id == id));
    assert_eq!(changed.len(), 1, "only the edited record");
    assert!(sim.state.ui_delete(&id));
    assert_eq!(client.get_record(&id).await.unwrap(), None);
    assert!(
        sim.state
            .ui_create(json!({"Nope": 1}).as_object().unwrap().clone())
            .is_err()
    );
}

#[tokio::test]
async fn the_control_api_over_http() {
    let sim = start_sim(SimConfig {
        records: 5,
        ..unlimited()
    })
    .await;
    let http = raw_http();
    let u = |p: &str| format!("{}/_sim/{p}", sim.url());
    let created: Value = http
        .post(u("records"))
        .json(&json!({"fields": {"Full Name": "Via Control", "Status": "new"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let edited: Value = http
        .patch(u(&format!("records/{id}")))
        .json(&json!({"fields": {"Status": "replied"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(edited["fields"]["Status"], "replied");
    let seeded: Value = http
        .post(u("seed"))
        .json(&json!({"count": 4}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seeded["ids"].as_array().unwrap().len(), 4);
    assert_eq!(sim.state.record_count(), 10);
    let resp = http
        .delete(u(&format!("records/{id}")))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let faults = Faults {
        fail_next: 1,
        ..Faults::default()
    };
    let resp = http.put(u("faults")).json(&faults).send().await.unwrap();
    assert!(resp.status().is_success());
    assert_eq!(sim.state.faults().fail_next, 1);
    let client = fast_client(&sim);
    client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap();
    let counts: Value = http
        .get(u("counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts, json!({"list": 2, "total": 2}));
    let log: Value = http
        .get(u("log"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<u64> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["kind"].is_null())
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 200]);
    let reset: Value = http
        .post(u("reset"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reset["records"], 5);
    assert!(api_log(&sim).is_empty());
    let schema: Value = http
        .get(u("schema"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Lead ID")
    );
}

#[tokio::test]
async fn stop_and_restart_on_the_same_port_keeps_the_data() {
    let mut sim = start_sim(SimConfig {
        records: 12,
        ..unlimited()
    })
    .await;
    let opts = ClientOptions {
        max_attempts: 1,
        ..fast_opts()
    };
    let client = HttpClient::from_config(&airtable_config(&sim, 1000), opts).unwrap();
    assert_eq!(
        list_all(&client, ListParams::default(), 0)
            .await
            .unwrap()
            .len(),
        12
    );
    let addr = sim.addr;
    sim.stop().await;
    assert!(!sim.is_running());
    let err = client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap_err();
    assert!(
        err.is_retryable(),
        "Airtable down is a retryable connection error: {err}"
    );
    sim.restart().await.unwrap();
    assert_eq!(sim.addr, addr);
    // The client backs the base off after the failure: the next request goes at its probe time.
    tokio::time::sleep(client.backing_off().unwrap_or_default()).await;
    assert_eq!(
        list_all(&client, ListParams::default(), 0)
            .await
            .unwrap()
            .len(),
        12
    );

    // A new handle over the same state, on a new port.
    let state = sim.state.clone();
    sim.stop().await;
    let again = sim::start_with_state(state, 0).await.unwrap();
    assert_eq!(again.state.record_count(), 12);
}

#[tokio::test]
async fn sim_args_build_a_config() {
    let args = sim::SimArgs {
        port: 0,
        records: 3,
        latency_ms: 5,
        fail_rate: 0.5,
        seed: 1,
        rate_limit: 0,
        api_key: Some("patX".into()),
        base_id: Some(String::new()),
        table: "Leads".into(),
        lead_id_field: "Lead ID".into(),
        modified_field: "Last Modified".into(),
    };
    let cfg = args.to_config().unwrap();
    assert_eq!(
        (
            cfg.rate_limit,
            cfg.base_id.as_deref(),
            cfg.faults.latency_ms
        ),
        (None, None, 5)
    );
    assert!(
        sim::SimArgs {
            fail_rate: 2.0,
            ..args
        }
        .to_config()
        .is_err()
    );
}

#[test]
fn sim_args_parse_like_the_cli() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: sim::SimArgs,
    }
    let cli = Cli::try_parse_from([
        "airtable-sim",
        "--port",
        "9999",
        "--records",
        "25",
        "--latency-ms",
        "40",
        "--fail-rate",
        "0.1",
    ])
    .unwrap();
    assert_eq!(
        (cli.sim.port, cli.sim.records, cli.sim.latency_ms),
        (9999, 25, 40)
    );
    let cfg = cli.sim.to_config().unwrap();
    assert_eq!(cfg.faults.fail_rate, 0.1);
    assert_eq!(cfg.rate_limit, Some(5));
}
