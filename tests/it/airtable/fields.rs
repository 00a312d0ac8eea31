//! Field mapping round trips through the simulator.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use leadcache::airtable::sim::SimConfig;
use leadcache::airtable::{AirtableApi, FieldMap, Record, RecordUpdate};
use serde_json::{Map, Value, json};

use super::{fast_client, start_sim, unlimited};

fn map() -> FieldMap {
    FieldMap::default_map("Lead ID", "Last Modified")
}

fn values(v: Value) -> BTreeMap<String, Value> {
    v.as_object().unwrap().clone().into_iter().collect()
}

#[tokio::test]
async fn local_values_round_trip_through_airtable() {
    let sim = start_sim(unlimited()).await;
    let client = fast_client(&sim);
    let m = map();
    let local = values(json!({
        "id": "0192f0c4-0000-7000-8000-000000000001",
        "full_name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical Engines",
        "title": "CTO", "linkedin_url": "https://www.linkedin.com/in/ada", "website": "https://ae.example",
        "phone": "+44 20 0000 0000", "location": "London, UK", "industry": "Computing",
        "company_size": "11-50", "status": "qualified", "source": "referral", "score": 87.5,
        "verified": true, "enriched": false, "needs_enrichment": false,
        "scraped_at": "2026-01-02T03:04:05.000Z", "enriched_at": null, "contacted_at": "2026-02-03T04:05:06.789Z"
    }));
    let fields = m.to_fields(&local, None);
    assert!(!fields.contains_key("Last Modified"));
    assert_eq!(fields["Lead ID"], "0192f0c4-0000-7000-8000-000000000001");
    let rec = client.create(&[fields]).await.unwrap().remove(0);
    assert!(
        !rec.fields.contains_key("Enriched"),
        "false is omitted by Airtable"
    );
    assert!(!rec.fields.contains_key("Enriched At"));
    let remote = m.from_record(&rec);
    assert_eq!(
        remote.lead_id.as_deref(),
        Some("0192f0c4-0000-7000-8000-000000000001")
    );
    let mut expected = local.clone();
    expected.remove("id");
    assert_eq!(
        remote.values, expected,
        "every mapped field, absent ones as null/false"
    );
    assert!(remote.modified_at.is_some());
    assert!(
        remote.extra.contains_key("Created"),
        "unmapped computed fields land in extra"
    );
    assert!(!remote.extra.contains_key("Last Modified"));

    // Clearing: null goes out and the cell disappears.
    let patch = m.to_fields(
        &values(json!({"email": null, "verified": false})),
        Some(&remote.extra),
    );
    assert_eq!(patch.get("Email"), Some(&Value::Null));
    assert!(
        !patch.contains_key("Created"),
        "read-only names are never sent"
    );
    let rec = client
        .update(&[RecordUpdate {
            id: rec.id.clone(),
            fields: patch,
        }])
        .await
        .unwrap()
        .remove(0);
    let remote = m.from_record(&rec);
    assert_eq!(remote.values["email"], Value::Null);
    assert_eq!(remote.values["verified"], json!(false));
    assert_eq!(remote.values["full_name"], "Ada Lovelace");
}

#[tokio::test]
async fn unmapped_values_of_every_type_are_kept_and_written_back() {
    let sim = start_sim(SimConfig {
        records: 0,
        ..unlimited()
    })
    .await;
    let client = fast_client(&sim);
    let m = map();
    let id = sim
        .state
        .ui_create(
            json!({
                "Full Name": "Grace Hopper",
                "Notes": "Line one\nline two <airtable:mention id=\"x\">@Sam</airtable:mention>",
                "Tags": ["hot", "enterprise"],
                "Owner": {"id": "usrAAAAAAAAAAAAAA", "email": "o@example.com", "name": "Owner"},
                "Attachments": [{"url": "https://files.example/cv.pdf"}]
            })
            .as_object()
            .unwrap()
            .clone(),
        )
        .unwrap();
    let rec = client.get_record(&id).await.unwrap().unwrap();
    let remote = m.from_record(&rec);
    for k in ["Notes", "Tags", "Owner", "Attachments"] {
        assert_eq!(remote.extra.get(k), rec.fields.get(k), "{k} kept as sent");
    }
    // Writing extra back (unchanged) is accepted by Airtable: no computed field slips in.
    let fields = m.to_fields(&remote.values, Some(&remote.extra));
    client
        .update(&[RecordUpdate {
            id: id.clone(),
            fields,
        }])
        .await
        .unwrap();
    let again = m.from_record(&client.get_record(&id).await.unwrap().unwrap());
    assert_eq!(again.extra["Tags"], json!(["hot", "enterprise"]));
    assert_eq!(again.extra["Owner"]["email"], "o@example.com");
}

#[test]
fn tolerant_reading_of_odd_cells() {
    let m = map();
    let fields: Map<String, Value> = json!({
        "Full Name": 12345,
        "Email": {"error": "#ERROR!"},
        "Score": {"specialValue": "NaN"},
        "Verified": true,
        "Scraped At": "2022-09-05",
        "Company": ["Acme (lookup)"],
        "Lead ID": "lc-9",
        "Last Modified": "2026-03-01T10:00:00.000Z",
        "Lookup Emails": ["a@x.com", {"error": "#ERROR!"}],
        "Rollup": {"specialValue": "NaN"},
        "Barcode": {"text": "123", "type": "ean8"},
        "AI": {"state": "generated", "isStale": false, "value": "Summary"},
        "Button": {"label": "Open", "url": null},
        "Links": ["recAAAAAAAAAAAAAA", "recBBBBBBBBBBBBBB"],
        "Rating": 0
    })
    .as_object()
    .unwrap()
    .clone();
    let created: DateTime<Utc> = "2026-01-01T00:00:00.000Z".parse().unwrap();
    let rec = Record {
        id: "recCCCCCCCCCCCCCC".into(),
        created_time: created,
        fields: fields.clone(),
    };
    let r = m.from_record(&rec);
    assert_eq!(r.values["full_name"], "12345");
    assert_eq!(r.values["email"], Value::Null);
    assert_eq!(r.values["score"], Value::Null);
    assert_eq!(r.values["verified"], true);
    assert_eq!(r.values["enriched"], false);
    assert_eq!(r.values["scraped_at"], "2022-09-05T00:00:00.000Z");
    assert_eq!(r.values["company"], "Acme (lookup)");
    assert_eq!(r.lead_id.as_deref(), Some("lc-9"));
    assert_eq!(
        r.modified_at.unwrap().to_rfc3339(),
        "2026-03-01T10:00:00+00:00"
    );
    for k in [
        "Lookup Emails",
        "Rollup",
        "Barcode",
        "AI",
        "Button",
        "Links",
        "Rating",
    ] {
        assert_eq!(r.extra.get(k), fields.get(k), "{k} kept losslessly");
    }
    assert_eq!(r.extra.len(), 7);
    let out = m.to_fields(&BTreeMap::new(), Some(&r.extra));
    assert!(
        !out.contains_key("Rollup"),
        "error cells are computed: never written"
    );
    assert!(out.contains_key("Barcode"));
}

#[test]
fn field_map_from_a_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("map.toml");
    std::fs::write(&p, "full_name = \"Name\"\nscore = \"Lead Score\"\n").unwrap();
    let m = FieldMap::load(Some(&p), "Lead ID", "Last Modified").unwrap();
    assert_eq!(m.airtable_name("full_name"), Some("Name"));
    assert_eq!(m.local_name("Lead Score"), Some("score"));
    std::fs::write(&p, "nickname = \"Nick\"\n").unwrap();
    let err = FieldMap::load(Some(&p), "Lead ID", "Last Modified").unwrap_err();
    assert!(err.to_string().contains("nickname"), "{err}");
}
