//! CRUD, pagination, offsets, the POST switch, idempotent creates.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use leadcache::airtable::sim::SimConfig;
use leadcache::airtable::{
    AirtableApi, Fields, ListParams, ListPass, PassEvent, RecordUpdate, RequestKind, Sort, formula,
    list_all,
};
use serde_json::json;

use super::{api_log, fast_client, start_sim, unlimited};

fn lead(id: &str, name: &str) -> Fields {
    json!({"Lead ID": id, "Full Name": name, "Status": "new"})
        .as_object()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn full_pass_of_2500_records_takes_exactly_25_list_requests() {
    let sim = start_sim(SimConfig {
        records: 2500,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let before = client.stats();
    let records = list_all(&client, ListParams::default(), 3).await.unwrap();
    assert_eq!(records.len(), 2500);
    let ids: HashSet<_> = records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 2500, "no record twice");
    assert_eq!(sim.state.counts().get("list"), Some(&25));
    let run = client.stats().since(&before);
    assert_eq!(run.by_kind(RequestKind::List), 25);
    assert_eq!(run.requests(), 25);
    assert_eq!(run.retries, 0);
}

#[tokio::test]
async fn expired_offset_restarts_the_pass_from_the_first_page() {
    let sim = start_sim(SimConfig {
        records: 250,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    sim.state.update_faults(|f| f.expire_next_offsets = 1);
    let mut pass = ListPass::new(&client, ListParams::default(), 3);
    let mut events = Vec::new();
    let mut seen = HashSet::new();
    while let Some(ev) = pass.next().await.unwrap() {
        match ev {
            PassEvent::Page(recs) => {
                events.push(format!("page {}", recs.len()));
                seen.extend(recs.into_iter().map(|r| r.id));
            }
            PassEvent::Restarted { restarts } => {
                events.push(format!("restart {restarts}"));
                seen.clear();
            }
        }
    }
    assert_eq!(
        events,
        ["page 100", "restart 1", "page 100", "page 100", "page 50"]
    );
    assert_eq!(seen.len(), 250);
    let statuses: Vec<u16> = api_log(&sim).iter().map(|e| e.status).collect();
    assert_eq!(statuses, [200, 422, 200, 200, 200]);

    // Without the fault: an offset whose iterator was forgotten, and a malformed one.
    let page = client
        .list_page(&ListParams::default(), None)
        .await
        .unwrap();
    let offset = page.offset.unwrap();
    sim.state.expire_offsets();
    let err = client
        .list_page(&ListParams::default(), Some(&offset))
        .await
        .unwrap_err();
    assert!(err.is_iterator_expired(), "{err}");
    let err = client
        .list_page(&ListParams::default(), Some("itrBAD"))
        .await
        .unwrap_err();
    assert_eq!(
        err.unprocessable_kind().unwrap().as_type(),
        "INVALID_OFFSET_VALUE"
    );
    assert!(err.to_string().contains("itrBAD"));
}

#[tokio::test]
async fn a_pass_that_keeps_expiring_gives_up_after_max_restarts() {
    let sim = start_sim(SimConfig {
        records: 150,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    sim.state.update_faults(|f| f.expire_next_offsets = 10);
    let err = list_all(&client, ListParams::default(), 2)
        .await
        .unwrap_err();
    assert!(err.is_iterator_expired());
    assert_eq!(sim.state.counts().get("list"), Some(&6));
}

#[tokio::test]
async fn long_list_urls_switch_to_post_list_records() {
    let sim = start_sim(SimConfig {
        records: 30,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let all = list_all(&client, ListParams::default(), 0).await.unwrap();
    let wanted: Vec<String> = all.iter().take(3).map(|r| r.id.clone()).collect();
    // 3 real ids among 700 others: the GET URL would be far over 16,000 characters.
    let mut ids: Vec<String> = (0..700).map(|i| format!("recNoSuchRecord{i:02}")).collect();
    ids.extend(wanted.iter().cloned());
    let params = ListParams {
        filter_by_formula: Some(formula::record_id_in(&ids)),
        fields: vec!["Full Name".into()],
        sort: vec![Sort::asc("Full Name")],
        ..ListParams::default()
    };
    let got = match list_all(&client, params, 0).await {
        Ok(got) => got,
        Err(e) => panic!("{e}"),
    };
    let got_ids: HashSet<_> = got.iter().map(|r| r.id.clone()).collect();
    assert_eq!(got_ids, wanted.into_iter().collect());
    assert!(
        got.iter()
            .all(|r| r.fields.keys().all(|k| k == "Full Name"))
    );
    let log = api_log(&sim);
    let last = log.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.ends_with("/listRecords")),
        ("POST", true)
    );
    assert_eq!(log[0].method, "GET", "short listings stay GET");
}

#[tokio::test]
async fn sort_fields_and_filters_are_applied() {
    let sim = start_sim(SimConfig {
        records: 120,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let params = ListParams {
        sort: vec![Sort::desc("Score")],
        fields: vec!["Score".into(), "Status".into()],
        page_size: Some(50),
        ..ListParams::default()
    };
    let recs = list_all(&client, params, 0).await.unwrap();
    assert_eq!(recs.len(), 120);
    let scores: Vec<f64> = recs
        .iter()
        .filter_map(|r| r.fields.get("Score")?.as_f64())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "sorted descending");
    let won = recs
        .iter()
        .filter(|r| r.fields.get("Status") == Some(&json!("won")))
        .count();
    let filtered = list_all(
        &client,
        ListParams {
            filter_by_formula: Some(formula::equals("Status", "won")),
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    assert_eq!(filtered.len(), won);
    let past = chrono::Utc::now() - chrono::Duration::days(1);
    let future = chrono::Utc::now() + chrono::Duration::days(1);
    let modified = |t| ListParams {
        filter_by_formula: Some(formula::modified_after("Last Modified", t)),
        ..ListParams::default()
    };
    assert_eq!(
        list_all(&client, modified(past), 0).await.unwrap().len(),
        120
    );
    assert_eq!(
        list_all(&client, modified(future), 0).await.unwrap().len(),
        0
    );
    let max = ListParams {
        max_records: Some(7),
        page_size: Some(5),
        ..Default::default()
    };
    assert_eq!(list_all(&client, max, 0).await.unwrap().len(), 7);
}

#[tokio::test]
async fn create_get_update_upsert_delete() {
    let sim = start_sim(unlimited()).await;
    let client = fast_client(&sim);
    let created = client
        .create(&[lead("lc-1", "Ada Lovelace"), lead("lc-2", "Alan Turing")])
        .await
        .unwrap();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].fields["Full Name"], "Ada Lovelace");
    assert!(created[0].id.starts_with("rec") && created[0].id.len() == 17);
    assert!(created[0].fields.contains_key("Last Modified"));
    assert!(
        !created[0].fields.contains_key("Verified"),
        "false checkboxes are omitted"
    );

    let upd = RecordUpdate {
        id: created[0].id.clone(),
        fields: json!({"Email": "ada@example.com", "Score": 0, "Status": null})
            .as_object()
            .unwrap()
            .clone(),
    };
    let updated = client.update(&[upd]).await.unwrap();
    assert_eq!(updated[0].fields["Email"], "ada@example.com");
    assert_eq!(updated[0].fields["Score"], 0, "0 is kept");
    assert_eq!(
        updated[0].fields["Full Name"], "Ada Lovelace",
        "PATCH keeps other fields"
    );
    assert!(!updated[0].fields.contains_key("Status"), "null clears");

    let got = client.get_record(&created[1].id).await.unwrap().unwrap();
    assert_eq!(got.fields["Full Name"], "Alan Turing");
    assert_eq!(client.get_record("recAAAAAAAAAAAAAA").await.unwrap(), None);

    let up = client
        .upsert(
            &[lead("lc-2", "Alan M. Turing"), lead("lc-3", "Grace Hopper")],
            &["Lead ID".into()],
        )
        .await
        .unwrap();
    assert_eq!(up.updated, vec![created[1].id.clone()]);
    assert_eq!(up.created.len(), 1);
    assert_eq!(sim.state.record_count(), 3);

    let deleted = client
        .delete(&[created[0].id.clone(), up.created[0].clone()])
        .await
        .unwrap();
    assert_eq!(deleted.len(), 2);
    assert_eq!(sim.state.record_count(), 1);
    let kinds: Vec<_> = api_log(&sim).iter().map(|e| e.kind.unwrap()).collect();
    use RequestKind::*;
    assert_eq!(kinds, [Upsert, Update, Get, Get, Upsert, Delete]);
}

#[tokio::test]
async fn a_create_whose_response_was_lost_is_retried_without_a_duplicate() {
    let sim = start_sim(unlimited()).await;
    let client = fast_client(&sim);
    sim.state.update_faults(|f| f.drop_response_next = 1);
    let created = client
        .create(&[lead("lc-lost", "Lost Response")])
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(
        sim.state.record_count(),
        1,
        "the retry matched the record the first try made"
    );
    assert_eq!(
        sim.state.find_by_field("Lead ID", &json!("lc-lost")).len(),
        1
    );
    let statuses: Vec<u16> = api_log(&sim).iter().map(|e| e.status).collect();
    assert_eq!(statuses, [0, 200], "first answer dropped after applying");
    assert_eq!(client.stats().retries, 1);
}

/// Captures tracing output of the current thread.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn creates_fall_back_to_plain_creates_when_the_lead_id_field_is_missing() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start_sim(SimConfig {
        lead_id_field: None,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    assert!(client.creates_are_upserts());
    let a = client.create(&[lead("lc-a", "First")]).await.unwrap();
    let b = client
        .create(&[lead("lc-b", "Second"), lead("lc-c", "Third")])
        .await
        .unwrap();
    assert_eq!((a.len(), b.len()), (1, 2));
    assert!(!client.creates_are_upserts());
    assert_eq!(sim.state.record_count(), 3);
    let log: Vec<_> = api_log(&sim)
        .iter()
        .map(|e| (e.kind.unwrap(), e.status))
        .collect();
    use RequestKind::*;
    assert_eq!(log, [(Upsert, 422), (Create, 200), (Create, 200)]);
    let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        out.matches("fall back to plain creates").count(),
        1,
        "warned once: {out}"
    );
    assert!(out.contains("Lead ID"));
}

#[tokio::test]
async fn plain_creates_are_not_resent_after_an_ambiguous_failure() {
    let sim = start_sim(SimConfig {
        lead_id_field: None,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    client.create(&[lead("lc-a", "First")]).await.unwrap();
    sim.state.update_faults(|f| f.drop_response_next = 1);
    let err = client.create(&[lead("lc-b", "Second")]).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(sim.state.record_count(), 2, "applied once, not sent again");
}

#[tokio::test]
async fn more_than_ten_records_are_refused_before_sending() {
    let sim = start_sim(unlimited()).await;
    let client = fast_client(&sim);
    let many: Vec<Fields> = (0..11).map(|i| lead(&format!("lc-{i}"), "X")).collect();
    assert!(matches!(
        client.create(&many).await.unwrap_err(),
        leadcache::airtable::AirtableError::InvalidRequest(_)
    ));
    assert!(api_log(&sim).is_empty());
}

#[tokio::test]
async fn views_field_ids_and_put_replace() {
    let sim = start_sim(SimConfig {
        records: 4,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let grid = ListParams {
        view: Some("Grid view".into()),
        ..ListParams::default()
    };
    assert_eq!(list_all(&client, grid, 0).await.unwrap().len(), 4);
    let err = client
        .list_page(
            &ListParams {
                view: Some("Nope".into()),
                ..ListParams::default()
            },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.unprocessable_kind().unwrap().as_type(),
        "VIEW_NAME_NOT_FOUND"
    );
    let by_id = ListParams {
        return_fields_by_field_id: true,
        ..ListParams::default()
    };
    let recs = list_all(&client, by_id, 0).await.unwrap();
    assert!(recs.iter().all(|r| {
        r.fields
            .keys()
            .all(|k| k.starts_with("fld") && k.len() == 17)
    }));

    let id = sim.state.records()[0]["id"].as_str().unwrap().to_string();
    let http = super::raw_http();
    let url = format!("{}/v0/{}/Leads/{id}", sim.url(), sim.base_id());
    let resp = http
        .put(&url)
        .bearer_auth("pat")
        .json(&json!({"fields": {"Full Name": "Only Name"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rec = client.get_record(&id).await.unwrap().unwrap();
    let mut keys: Vec<_> = rec.fields.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["Created", "Full Name", "Last Modified"],
        "PUT clears the rest"
    );
}

#[tokio::test]
async fn a_delete_whose_response_was_lost_still_succeeds() {
    let sim = start_sim(SimConfig {
        records: 5,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let ids: Vec<String> = sim.state.records()[..2]
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    sim.state.update_faults(|f| f.drop_response_next = 1);
    let deleted = client.delete(&ids).await.unwrap();
    assert_eq!(deleted, ids);
    assert_eq!(sim.state.record_count(), 3);
    let statuses: Vec<u16> = api_log(&sim).iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [0, 404, 404, 404],
        "lost answer, batch 404, then one by one"
    );
}

#[tokio::test]
async fn an_upsert_matching_several_records_is_refused() {
    let sim = start_sim(unlimited()).await;
    let client = fast_client(&sim);
    client
        .create(&[lead("lc-1", "Same Name"), lead("lc-2", "Same Name")])
        .await
        .unwrap();
    let err = client
        .upsert(&[lead("lc-3", "Same Name")], &["Full Name".into()])
        .await
        .unwrap_err();
    assert!(err.is_unprocessable() && !err.is_retryable(), "{err}");
    assert_eq!(sim.state.record_count(), 2, "nothing applied");
    let too_many: Vec<String> = ["A", "B", "C", "D"].map(String::from).to_vec();
    let err = client
        .upsert(&[lead("lc-3", "X")], &too_many)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        leadcache::airtable::AirtableError::InvalidRequest(_)
    ));
}
