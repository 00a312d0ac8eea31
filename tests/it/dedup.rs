//! Duplicate detection and merging (SPEC §11): each rule with positive and negative cases, the
//! 0.85 boundary, the merge field rules, duplicates inside one `createLeads` call, `mergeLeads`
//! with its outbox rows, and `duplicateCandidates` over leads that were stored without merging.

use diesel::connection::InstrumentationEvent;
use serde_json::{Value, json};

use crate::support::{self, TestApp};

const CREATE: &str = "mutation($i: LeadInput!) { createLead(input: $i) { created duplicateOf matchedBy \
    lead { id fullName email phone title company linkedinUrl version } } }";

async fn create(app: &TestApp, input: Value) -> Value {
    app.ok(CREATE, json!({"i": input})).await["createLead"].clone()
}

async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    let q = "query($id: ID!) { lead(id: $id) { events { kind changes message } } }";
    app.ok(q, json!({"id": id})).await["lead"]["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// Stores a lead without duplicate detection, as a pull from Airtable does.
async fn store_as_pulled(app: &TestApp, input: Value) -> String {
    let ctx = app.state().write_ctx("airtable");
    let Value::Object(changes) = input else {
        panic!("object")
    };
    app.db()
        .write(move |c| {
            let lead = leadcache::leads::store::build(&ctx, &changes, leadcache::time::now())?;
            Ok(leadcache::leads::store::insert(c, &ctx, lead)?.lead.id)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn linkedin_url_variants_are_one_person_other_profiles_are_not() {
    let app = TestApp::start().await;
    let first = create(
        &app,
        json!({"fullName": "Jane Doe", "linkedinUrl": "https://www.linkedin.com/in/Jane-Doe/"}),
    )
    .await;
    let id = first["lead"]["id"].as_str().unwrap();
    for url in [
        "linkedin.com/in/jane-doe?trk=abc",
        "https://de.linkedin.com/in/JANE-DOE#about",
    ] {
        let r = create(&app, json!({"fullName": "J. Doe", "linkedinUrl": url})).await;
        assert_eq!(r["created"], false, "{url}");
        assert_eq!(r["duplicateOf"], id);
        assert_eq!(r["matchedBy"], "LINKEDIN");
        assert_eq!(r["lead"]["id"], id, "the payload carries the existing lead");
    }
    let other = create(
        &app,
        json!({"fullName": "Jane Doe", "linkedinUrl": "https://www.linkedin.com/in/jane-doe-2"}),
    )
    .await;
    assert_eq!(
        other["created"], true,
        "another profile is another person even with the same name"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 2);
}

#[tokio::test]
async fn email_matches_whatever_its_case_and_spaces() {
    let app = TestApp::start().await;
    let first = create(
        &app,
        json!({"fullName": "Jane Doe", "email": "Jane@Acme.example"}),
    )
    .await;
    let r = create(
        &app,
        json!({"fullName": "Janet Doe-Smith", "email": "  jane@ACME.example "}),
    )
    .await;
    assert_eq!(r["created"], false);
    assert_eq!(r["matchedBy"], "EMAIL");
    assert_eq!(r["duplicateOf"], first["lead"]["id"]);
    let r = create(
        &app,
        json!({"fullName": "Jane Doe", "email": "jane@acme2.example"}),
    )
    .await;
    assert_eq!(
        r["created"], true,
        "another email, no company: not a duplicate"
    );
}

#[tokio::test]
async fn name_and_company_similarity_at_the_085_boundary() {
    use leadcache::leads::dedup::{THRESHOLD, similarity};
    // 3 edits over 20 characters: exactly 0.85, a match.
    assert_eq!(
        similarity("christopher anderson", "christoffer andersen"),
        THRESHOLD
    );
    // 3 edits over 21: 0.857, just above.
    assert!(similarity("alexandra richardson", "aleksandra richardsen") > THRESHOLD);
    // 3 edits over 18: 0.833, just below.
    assert!(similarity("stephanie robinson", "stefanie robinsen") < THRESHOLD);

    let app = TestApp::start().await;
    let chris = create(
        &app,
        json!({"fullName": "Christopher Anderson", "company": "Globex Inc"}),
    )
    .await;
    let r = create(
        &app,
        json!({"fullName": "Christoffer Andersen", "company": "GLOBEX, Inc."}),
    )
    .await;
    assert_eq!(
        (r["created"].clone(), r["matchedBy"].clone()),
        (json!(false), json!("NAME_COMPANY"))
    );
    assert_eq!(r["duplicateOf"], chris["lead"]["id"]);

    create(
        &app,
        json!({"fullName": "Alexandra Richardson", "company": "Initech"}),
    )
    .await;
    let r = create(
        &app,
        json!({"fullName": "Aleksandra Richardsen", "company": "Initech Ltd"}),
    )
    .await;
    assert_eq!(r["created"], false, "just above the threshold");

    create(
        &app,
        json!({"fullName": "Stephanie Robinson", "company": "Initech"}),
    )
    .await;
    let r = create(
        &app,
        json!({"fullName": "Stefanie Robinsen", "company": "Initech"}),
    )
    .await;
    assert_eq!(r["created"], true, "just below the threshold");

    // Accents, case and punctuation do not matter.
    create(
        &app,
        json!({"fullName": "José Müller", "company": "Nakatomi"}),
    )
    .await;
    let r = create(
        &app,
        json!({"fullName": "JOSE MULLER", "company": "nakatomi gmbh"}),
    )
    .await;
    assert_eq!(r["matchedBy"], "NAME_COMPANY");
}

#[tokio::test]
async fn same_or_common_names_at_other_companies_are_different_people() {
    let app = TestApp::start().await;
    create(
        &app,
        json!({"fullName": "Christopher Anderson", "company": "Globex"}),
    )
    .await;
    let r = create(
        &app,
        json!({"fullName": "Christopher Anderson", "company": "Umbrella Corp"}),
    )
    .await;
    assert_eq!(r["created"], true, "same name at another company");
    create(
        &app,
        json!({"fullName": "John Smith", "company": "Acme Labs"}),
    )
    .await;
    let r = create(
        &app,
        json!({"fullName": "John Smith", "company": "Acme Systems"}),
    )
    .await;
    assert_eq!(
        r["created"], true,
        "a common name at a company sharing a word"
    );
    let r = create(&app, json!({"fullName": "John Smith"})).await;
    assert_eq!(
        r["created"], true,
        "no company: the fuzzy rule does not apply"
    );
    // Same name and company but two known, different LinkedIn profiles: two people.
    create(&app, json!({"fullName": "Ana Silva", "company": "Hooli", "linkedinUrl": "linkedin.com/in/ana-silva-1"})).await;
    let r = create(&app, json!({"fullName": "Ana Silva", "company": "Hooli", "linkedinUrl": "linkedin.com/in/ana-silva-2"})).await;
    assert_eq!(r["created"], true);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 7);
}

#[tokio::test]
async fn a_merge_fills_empty_fields_and_keeps_differing_values_in_an_event() {
    let app = TestApp::start().await;
    let first = create(
        &app,
        json!({"fullName": "Jane Doe", "email": "jane@acme.example", "title": "CTO"}),
    )
    .await;
    let id = first["lead"]["id"].as_str().unwrap();
    let r = create(
        &app,
        json!({"fullName": "Jane Doe", "email": "JANE@acme.example", "title": "CEO", "phone": "+1 555 0100", "company": "Acme"}),
    )
    .await;
    let lead = &r["lead"];
    assert_eq!(lead["title"], "CTO", "a differing value is not applied");
    assert_eq!(lead["phone"], "+1 555 0100", "an empty field is filled");
    assert_eq!(lead["company"], "Acme");
    assert_eq!(
        lead["email"], "jane@acme.example",
        "the same email in another case is not a difference"
    );
    assert_eq!(lead["version"], 2);
    let ev = events(&app, id).await;
    assert_eq!(ev[0]["kind"], "merged");
    assert_eq!(
        ev[0]["changes"],
        json!({"title": ["CTO", "CEO"]}),
        "the incoming value is kept"
    );
    assert!(
        ev[0]["message"].as_str().unwrap().contains("EMAIL"),
        "{:?}",
        ev[0]
    );
    assert_eq!(ev[1]["kind"], "merged");
    assert_eq!(ev[1]["changes"]["phone"], json!([null, "+1 555 0100"]));
    let fields: String = app
        .db()
        .run(|c| {
            Ok(leadcache::leads::outbox::list(c, None, 10)?[0]
                .fields
                .clone())
        })
        .await
        .unwrap();
    assert!(
        fields.contains("phone") && fields.contains("company"),
        "{fields}"
    );
    // A duplicate that brings nothing new changes nothing, and writes nothing either.
    let r = create(
        &app,
        json!({"fullName": "Jane Doe", "email": "jane@acme.example"}),
    )
    .await;
    assert_eq!(r["lead"]["version"], 2);
    assert_eq!(
        events(&app, id)
            .await
            .iter()
            .filter(|e| e["kind"] == "merged")
            .count(),
        2
    );
}

#[tokio::test]
async fn duplicates_inside_one_create_leads_call_are_merged() {
    let app = TestApp::start().await;
    let q = "mutation($i: [LeadInput!]!) { createLeads(inputs: $i) { created merged failed \
        results { index created duplicateOf matchedBy error lead { id phone } } } }";
    let inputs = json!([
        {"fullName": "Jane Doe", "email": "jane@acme.example"},
        {"fullName": "Jane D.", "email": "Jane@Acme.example", "phone": "+1 555 0100"},
        {"fullName": "Bob Stone", "company": "Hooli"},
        {"fullName": "Bob Stone", "company": "Hooli Inc"},
        {"fullName": "Bad", "email": "nope"},
    ]);
    let p = app.ok(q, json!({"i": inputs})).await["createLeads"].clone();
    assert_eq!(
        (
            p["created"].clone(),
            p["merged"].clone(),
            p["failed"].clone()
        ),
        (json!(2), json!(2), json!(1))
    );
    let r = p["results"].as_array().unwrap();
    assert_eq!(r[1]["duplicateOf"], r[0]["lead"]["id"]);
    assert_eq!(r[1]["matchedBy"], "EMAIL");
    assert_eq!(r[1]["lead"]["phone"], "+1 555 0100");
    assert_eq!(r[3]["matchedBy"], "NAME_COMPANY");
    assert_eq!(r[4]["created"], false);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 2);
}

#[tokio::test]
async fn merge_leads_moves_everything_and_queues_an_update_and_a_delete() {
    let app = TestApp::start().await;
    let keep = store_as_pulled(&app, json!({"full_name": "Jane Doe", "company": "Acme"})).await;
    let gone = store_as_pulled(&app, json!({"full_name": "Jane  Doe", "company": "ACME Inc", "phone": "+1 555 0100", "title": "CTO"})).await;
    // Both are in Airtable and synced: no outbox rows.
    let (k, g) = (keep.clone(), gone.clone());
    app.db()
        .run(move |c| {
            use diesel::prelude::*;
            use leadcache::db::schema::{leads, outbox};
            diesel::update(leads::table.filter(leads::id.eq(&k)))
                .set(leads::airtable_id.eq("recAAAAAAAAAAAAA1"))
                .execute(c)?;
            diesel::update(leads::table.filter(leads::id.eq(&g)))
                .set(leads::airtable_id.eq("recAAAAAAAAAAAAA2"))
                .execute(c)?;
            diesel::delete(outbox::table).execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    app.ok(
        "mutation($id: ID!) { addEnrichment(leadId: $id, input: {provider: \"clearbit\", data: {x: 1}}) { id } }",
        json!({"id": gone}),
    )
    .await;
    let c = app
        .ok(
            "mutation { createCampaign(input: {name: \"Q1\"}) { id } }",
            json!({}),
        )
        .await;
    let cid = c["createCampaign"]["id"].as_str().unwrap().to_string();
    app.ok(
        "mutation($c: ID!, $l: [ID!]!) { addLeadsToCampaign(campaignId: $c, leadIds: $l) { id } }",
        json!({"c": cid, "l": [gone, keep]}),
    )
    .await;

    let q = "mutation($k: ID!, $m: ID!) { mergeLeads(keepId: $k, mergeId: $m) { id phone title company \
        enrichments { provider } campaigns { campaignName } events { kind message } } }";
    let kept = app.ok(q, json!({"k": keep, "m": gone})).await["mergeLeads"].clone();
    assert_eq!(kept["id"], keep.as_str());
    assert_eq!(kept["phone"], "+1 555 0100");
    assert_eq!(kept["title"], "CTO");
    assert_eq!(kept["company"], "Acme", "the kept value stays");
    assert_eq!(kept["enrichments"][0]["provider"], "clearbit");
    assert_eq!(
        kept["campaigns"].as_array().unwrap().len(),
        1,
        "one membership per campaign"
    );
    let kinds: Vec<&str> = kept["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.iter().filter(|k| **k == "merged").count() >= 2,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"enriched"),
        "the merged lead's history moved: {kinds:?}"
    );

    let ops: Vec<(String, String)> = app
        .db()
        .run(|c| {
            Ok(leadcache::leads::outbox::list(c, None, 10)?
                .into_iter()
                .map(|r| (r.lead_id, r.operation))
                .collect())
        })
        .await
        .unwrap();
    assert!(ops.contains(&(keep.clone(), "update".into())), "{ops:?}");
    assert!(ops.contains(&(gone.clone(), "delete".into())), "{ops:?}");
    let merged = app
        .ok(
            "query($id: ID!) { lead(id: $id) { deletedAt events { kind message } } }",
            json!({"id": gone}),
        )
        .await;
    assert!(merged["lead"]["deletedAt"].is_string());
    let kinds: Vec<&str> = merged["lead"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["merged", "deleted"]);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM campaign_leads").await,
        1
    );

    app.err(q, json!({"k": keep, "m": keep}), "VALIDATION")
        .await;
    app.err(q, json!({"k": keep, "m": gone}), "CONFLICT").await;
    app.err(q, json!({"k": keep, "m": "nope"}), "NOT_FOUND")
        .await;
}

#[tokio::test]
async fn duplicate_candidates_lists_pulled_look_alikes_and_merges_nothing() {
    let app = TestApp::start().await;
    let a = store_as_pulled(
        &app,
        json!({"full_name": "Jane Doe", "linkedin_url": "https://linkedin.com/in/jdoe"}),
    )
    .await;
    let b = store_as_pulled(
        &app,
        json!({"full_name": "Jane D", "linkedin_url": "www.linkedin.com/in/JDoe/"}),
    )
    .await;
    let c = store_as_pulled(
        &app,
        json!({"full_name": "Bob Stone", "email": "bob@x.example"}),
    )
    .await;
    let d = store_as_pulled(
        &app,
        json!({"full_name": "Robert Stone", "email": "BOB@x.example"}),
    )
    .await;
    let e = store_as_pulled(
        &app,
        json!({"full_name": "Christopher Anderson", "company": "Globex"}),
    )
    .await;
    let f = store_as_pulled(
        &app,
        json!({"full_name": "Christoffer Andersen", "company": "Globex Inc"}),
    )
    .await;
    store_as_pulled(
        &app,
        json!({"full_name": "Christopher Anderson", "company": "Umbrella"}),
    )
    .await;
    store_as_pulled(
        &app,
        json!({"full_name": "Stefanie Robinsen", "company": "Globex"}),
    )
    .await;
    let q =
        "query($n: Int) { duplicateCandidates(first: $n) { a { id } b { id } matchedBy score } }";
    let pairs = app.ok(q, json!({"n": 50})).await["duplicateCandidates"]
        .as_array()
        .unwrap()
        .clone();
    let got: Vec<(String, String, String)> = pairs
        .iter()
        .map(|p| {
            (
                p["a"]["id"].as_str().unwrap().into(),
                p["b"]["id"].as_str().unwrap().into(),
                p["matchedBy"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (a, b, "LINKEDIN".to_string()),
            (c, d, "EMAIL".to_string()),
            (e, f, "NAME_COMPANY".to_string())
        ]
    );
    assert_eq!(pairs[2]["score"], 0.85);
    let one = app.ok(q, json!({"n": 1})).await["duplicateCandidates"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(one, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads WHERE deleted_at IS NULL")
            .await,
        8,
        "nothing merged"
    );
}

#[tokio::test]
async fn lead_duplicates_lists_every_look_alike_once_under_its_strongest_rule() {
    let app = TestApp::start().await;
    // Stored without detection (as pulled), so the look-alikes coexist.
    let me = store_as_pulled(
        &app,
        json!({"full_name": "Jane Doe", "company": "Acme Inc", "email": "jane@acme.com",
               "linkedin_url": "https://www.linkedin.com/in/jane-doe"}),
    )
    .await;
    let by_linkedin_and_email = store_as_pulled(
        &app,
        json!({"full_name": "J. Doe", "email": "JANE@acme.com",
               "linkedin_url": "https://de.linkedin.com/in/Jane-Doe/"}),
    )
    .await;
    let by_email = store_as_pulled(
        &app,
        json!({"full_name": "Janet", "email": " jane@acme.com"}),
    )
    .await;
    let by_name = store_as_pulled(
        &app,
        json!({"full_name": "Jane Doe", "company": "ACME, LLC"}),
    )
    .await;
    // Same name and company but another LinkedIn profile: a different person.
    store_as_pulled(
        &app,
        json!({"full_name": "Jane Doe", "company": "Acme", "linkedin_url": "https://linkedin.com/in/jane-doe-2"}),
    )
    .await;
    // Unrelated, and a deleted look-alike.
    store_as_pulled(&app, json!({"full_name": "John Roe", "company": "Acme"})).await;
    let deleted = store_as_pulled(
        &app,
        json!({"full_name": "Jane Doe", "email": "jane@acme.com"}),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { deleteLead(id: $id) { id } }",
        json!({"id": deleted}),
    )
    .await;

    let q = "query($id: ID!, $n: Int) { lead(id: $id) { duplicates(first: $n) { matchedBy score lead { id } } } }";
    let found = app.ok(q, json!({"id": me, "n": 10})).await["lead"]["duplicates"].clone();
    let got: Vec<(String, String)> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["lead"]["id"].as_str().unwrap().to_string(),
                m["matchedBy"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (by_linkedin_and_email.clone(), "LINKEDIN".to_string()),
            (by_email, "EMAIL".to_string()),
            (by_name, "NAME_COMPANY".to_string()),
        ],
        "{found}"
    );
    assert_eq!(found[0]["score"], 1.0);
    assert!(found[2]["score"].as_f64().unwrap() >= 0.85);

    // `first` bounds the list; out-of-range values are refused by name.
    let one = app.ok(q, json!({"id": me, "n": 1})).await["lead"]["duplicates"].clone();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["lead"]["id"], by_linkedin_and_email.as_str());
    let err = app.gql(q, json!({"id": me, "n": -1})).await;
    assert!(
        err["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("first"),
        "{err}"
    );
}

/// How placing a list of inputs (local field names) went, in terms that do not depend on generated ids: per input,
/// `(created, the input whose lead it was merged into, rule)`, and per stored lead (named by the
/// input that created it) its fields, version, event kinds, outbox row and stays.
type Placement = (
    Vec<(bool, Option<usize>, Option<&'static str>)>,
    Vec<String>,
);

/// How the inputs after the first ones are placed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum How {
    OneByOne,
    Batched,
    BatchedWithStoredKeys,
    /// With the stored keys read and index upkeep deferred (`bulk::with_deferred_upkeep`), as a
    /// large import into a small table does. Also checks that no statement run meanwhile scans
    /// `leads`, and that the indexes and the full-text index are whole again afterwards.
    BatchedDeferred,
}

/// Places `inputs`: the first `stored` one by one, the rest `how`.
async fn place_all(app: &TestApp, inputs: Vec<Value>, stored: usize, how: How) -> Placement {
    use diesel::prelude::*;
    use leadcache::db::schema::{lead_events, lead_stays, leads, outbox};
    use leadcache::leads::{bulk, merge, store};
    let ctx = app.state().write_ctx("test");
    app.db()
        .write(move |c| {
            let now = leadcache::time::now();
            let mut outcomes = Vec::new();
            let place = |c: &mut diesel::SqliteConnection,
                             placer: Option<&mut bulk::Placer<'_>>,
                             i: usize,
                             input: &Value|
             -> Result<merge::Outcome, leadcache::error::AppError> {
                let Value::Object(changes) = input else {
                    unreachable!()
                };
                let origin = format!("input {i}");
                match placer {
                    None => merge::create_or_merge(
                        c,
                        &ctx,
                        changes,
                        now,
                        &origin,
                        merge::OnDuplicate::Merge,
                    ),
                    Some(p) => {
                        let lead = store::build(&ctx, changes, now)?;
                        p.place(c, lead, |f| changes.contains_key(f), &origin)
                    }
                }
            };
            for (i, input) in inputs.iter().enumerate().take(stored) {
                outcomes.push(place(c, None, i, input)?);
            }
            let rest = inputs.iter().enumerate().skip(stored);
            match how {
                How::OneByOne => {
                    for (i, input) in rest {
                        outcomes.push(place(c, None, i, input)?);
                    }
                }
                How::Batched | How::BatchedWithStoredKeys => bulk::with_placer(c, &ctx, |c, placer| {
                    if how == How::BatchedWithStoredKeys {
                        placer.read_stored_keys(c)?;
                    }
                    for (i, input) in rest {
                        outcomes.push(place(c, Some(placer), i, input)?);
                    }
                    Ok(())
                })?,
                How::BatchedDeferred => {
                    let schema_before = support::schema(c);
                    bulk::with_deferred_upkeep(c, true, |c| {
                        bulk::with_placer(c, &ctx, |c, placer| {
                            placer.read_stored_keys(c)?;
                            assert_ne!(support::schema(c), schema_before, "nothing was deferred");
                            let log = sql_log(c);
                            for (i, input) in rest {
                                outcomes.push(place(c, Some(placer), i, input)?);
                            }
                            c.set_instrumentation(|_: InstrumentationEvent<'_>| {});
                            let run = std::mem::take(&mut *log.lock().unwrap());
                            assert_no_scan_of_leads(c, &run);
                            Ok(())
                        })
                    })?;
                    assert_eq!(support::schema(c), schema_before, "indexes and triggers restored");
                    diesel::sql_query(
                        "INSERT INTO leads_fts (leads_fts, rank) VALUES ('integrity-check', 1)",
                    )
                    .execute(c)?;
                    let first = &outcomes[stored].written.lead;
                    let found = leadcache::leads::search::search(c, &first.full_name, 50)?;
                    assert!(
                        found.iter().any(|l| l.id == first.id),
                        "the rebuilt full-text index finds {}",
                        first.full_name
                    );
                }
            }
            // Name every lead by the input that created it.
            let mut name = std::collections::HashMap::new();
            for (i, o) in outcomes.iter().enumerate() {
                if o.duplicate_of.is_none() {
                    name.insert(o.written.lead.id.clone(), i);
                }
            }
            let per_input = outcomes
                .iter()
                .map(|o| match &o.duplicate_of {
                    None => (true, None, None),
                    Some((id, rule)) => (false, Some(name[id]), Some(rule.as_str())),
                })
                .collect();
            let mut rows = Vec::new();
            let stored: Vec<leadcache::db::models::Lead> = leads::table
                .select(leadcache::db::models::Lead::as_select())
                .load(c)?;
            for lead in stored {
                let kinds: Vec<String> = lead_events::table
                    .filter(lead_events::lead_id.eq(&lead.id))
                    .order(lead_events::id)
                    .select(lead_events::kind)
                    .load(c)?;
                let queued: Option<(String, String)> = outbox::table
                    .find(&lead.id)
                    .select((outbox::operation, outbox::fields))
                    .first(c)
                    .optional()?;
                let stays: Vec<(String, Option<String>)> = lead_stays::table
                    .filter(lead_stays::lead_id.eq(&lead.id))
                    .select((lead_stays::status, lead_stays::from_status))
                    .load(c)?;
                rows.push(format!(
                    "input {}: {:?} {:?} {:?} {:?} {:?} {:?} {:?} v{} {kinds:?} {queued:?} {stays:?}",
                    name[&lead.id],
                    lead.full_name,
                    lead.email,
                    lead.company,
                    lead.linkedin_url,
                    lead.phone,
                    lead.title,
                    lead.extra,
                    lead.version,
                ));
            }
            rows.sort();
            Ok((per_input, rows))
        })
        .await
        .unwrap()
}

/// Records the SQL of every statement `c` runs from now on (without its bound values).
fn sql_log(c: &mut diesel::SqliteConnection) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use diesel::Connection;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    c.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            let text = query.to_string();
            let sql = text.split(" -- binds:").next().unwrap_or_default();
            if !sql.trim_start().starts_with("INSERT") {
                sink.lock().unwrap().push(sql.to_string());
            }
        }
    });
    log
}

/// Fails when the plan of one of `statements` reads every row of `leads`.
fn assert_no_scan_of_leads(c: &mut diesel::SqliteConnection, statements: &[String]) {
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Step {
        #[diesel(sql_type = Text)]
        detail: String,
    }
    let distinct: std::collections::BTreeSet<&String> = statements.iter().collect();
    assert!(distinct.len() >= 3, "too few statements seen: {distinct:?}");
    for sql in distinct {
        let plan: Vec<Step> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load(c)
            .unwrap();
        for step in plan {
            assert!(
                step.detail != "SCAN leads" && !step.detail.starts_with("SCAN leads "),
                "{sql}\nscans leads while its indexes are deferred: {}",
                step.detail
            );
        }
    }
}

/// Inputs full of look-alikes at every distance (inside a batch of 500 and across batches): the
/// same people with other email case, LinkedIn URL variants, name typos and company suffixes,
/// namesakes at other companies, and namesakes with another LinkedIn profile.
fn look_alikes(n: usize) -> Vec<Value> {
    const FIRST: &[&str] = &["Jane", "John", "Jon", "Ana", "Anna", "Bob", "Rob"];
    const LAST: &[&str] = &["Doe", "Smith", "Smyth", "Stone", "Muller", "Müller"];
    const COMPANIES: &[&str] = &[
        "Acme",
        "ACME Inc",
        "Acme, Inc.",
        "Hooli",
        "Hooli GmbH",
        "Globex",
    ];
    let mut x: u64 = 42;
    let mut next = |m: usize| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) as usize) % m
    };
    (0..n)
        .map(|_| {
            let (f, l) = (next(FIRST.len()), next(LAST.len()));
            let person = next(40);
            let mut input = json!({
                "full_name": format!("{} {}", FIRST[f], LAST[l]),
                "company": format!("{} {}", COMPANIES[next(COMPANIES.len())], next(30)),
            });
            if next(3) == 0 {
                let email = format!("p{person}@x{}.example", next(5));
                input["email"] = json!(if next(2) == 0 {
                    email.to_uppercase()
                } else {
                    email
                });
            }
            if next(3) == 0 {
                let host = ["https://www.", "http://de.", "https://"][next(3)];
                input["linkedin_url"] = json!(format!("{host}linkedin.com/in/p-{person}/"));
            }
            if next(2) == 0 {
                input["phone"] = json!(format!("+1 555 {:04}", next(10000)));
            }
            if next(2) == 0 {
                input["title"] = json!(["CEO", "CTO", "Founder"][next(3)]);
            }
            input
        })
        .collect()
}

#[tokio::test]
async fn batched_placement_stores_and_merges_exactly_as_one_by_one() {
    // 300 inputs stored one by one first, then 1,300 more placed four ways.
    let inputs = look_alikes(1_600);
    let mut results = Vec::new();
    for how in [
        How::OneByOne,
        How::Batched,
        How::BatchedWithStoredKeys,
        How::BatchedDeferred,
    ] {
        let app = TestApp::start().await;
        results.push((how, place_all(&app, inputs.clone(), 300, how).await));
    }
    let (_, (expected_outcomes, expected_rows)) = &results[0];
    let merged = expected_outcomes.iter().filter(|o| !o.0).count();
    let rules: std::collections::HashSet<_> =
        expected_outcomes.iter().filter_map(|o| o.2).collect();
    assert!(
        merged > 300,
        "the inputs must be mostly look-alikes: {merged} merged"
    );
    assert_eq!(rules.len(), 3, "every rule must fire: {rules:?}");
    for (how, (outcomes, rows)) in &results[1..] {
        for (i, (want, got)) in expected_outcomes.iter().zip(outcomes).enumerate() {
            assert_eq!(want, got, "{how:?}: input {i}");
        }
        assert_eq!(expected_rows.len(), rows.len(), "{how:?}: stored leads");
        for (want, got) in expected_rows.iter().zip(rows) {
            assert_eq!(want, got, "{how:?}");
        }
    }
}

/// SPEC §11: a fuzzy (name + company) match merges only when no identifying field conflicts.
/// Hanna Kim <hanna.kim@gmail.com> is not Hannah Kim <hannah.kim@helixbio.com>, however alike
/// the names: she is created, Hannah's empty phone stays empty (nothing queued for Airtable),
/// and the pair is listed as a candidate with its score for a person to decide.
#[tokio::test]
async fn a_fuzzy_match_with_a_different_email_is_another_person_listed_as_a_candidate() {
    let app = TestApp::start().await;
    let hannah = create(
        &app,
        json!({"fullName": "Hannah Kim", "company": "Helix Bio", "email": "hannah.kim@helixbio.com"}),
    )
    .await;
    let hannah_id = hannah["lead"]["id"].as_str().unwrap().to_string();
    let hanna = create(
        &app,
        json!({"fullName": "Hanna Kim", "company": "Helix Bio", "email": "hanna.kim@gmail.com", "phone": "+1 555 0142"}),
    )
    .await;
    assert_eq!(hanna["created"], true, "{hanna}");
    assert!(hanna["duplicateOf"].is_null());
    assert_eq!(hanna["lead"]["phone"], "+1 555 0142");
    let stored = app
        .ok(
            "query($id: ID!) { lead(id: $id) { phone version } }",
            json!({"id": hannah_id}),
        )
        .await;
    assert!(stored["lead"]["phone"].is_null(), "{stored}");
    assert_eq!(stored["lead"]["version"], 1);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM lead_events WHERE kind = 'merged'")
            .await,
        0
    );
    let pairs = app
        .ok(
            "{ duplicateCandidates { a { id } b { id } matchedBy score } }",
            json!({}),
        )
        .await["duplicateCandidates"]
        .clone();
    assert_eq!(pairs.as_array().unwrap().len(), 1, "{pairs}");
    assert_eq!(pairs[0]["a"]["id"], hannah_id.as_str());
    assert_eq!(pairs[0]["b"]["id"], hanna["lead"]["id"]);
    assert_eq!(pairs[0]["matchedBy"], "NAME_COMPANY");
    assert!(pairs[0]["score"].as_f64().unwrap() >= 0.85);

    // Without an email of her own she is still merged into Hannah (nothing conflicts).
    let plain = create(
        &app,
        json!({"fullName": "Hannah Kim", "company": "Helix Bio Inc", "title": "CSO"}),
    )
    .await;
    assert_eq!(plain["duplicateOf"], hannah_id.as_str(), "{plain}");
}

/// `onDuplicate`: MERGE (the default) merges, CREATE creates anyway, FAIL refuses with CONFLICT
/// naming the lead and stores nothing; in `createLeads`, FAIL refuses only the duplicate inputs.
#[tokio::test]
async fn on_duplicate_merge_create_or_fail() {
    let app = TestApp::start().await;
    let jane = create(
        &app,
        json!({"fullName": "Jane Doe", "email": "jane@acme.example"}),
    )
    .await;
    let jane_id = jane["lead"]["id"].as_str().unwrap().to_string();
    let q = "mutation($i: LeadInput!, $o: OnDuplicate!) { createLead(input: $i, onDuplicate: $o) { created duplicateOf lead { id } } }";
    let dup = json!({"fullName": "J. Doe", "email": "JANE@acme.example", "phone": "+1 555 0100"});

    let err = app.err(q, json!({"i": dup, "o": "FAIL"}), "CONFLICT").await;
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains(&jane_id) && message.contains("EMAIL"),
        "{err}"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM leads WHERE phone IS NOT NULL")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM lead_events").await, 1);

    let created = app.ok(q, json!({"i": dup, "o": "CREATE"})).await["createLead"].clone();
    assert_eq!(created["created"], true);
    assert_ne!(created["lead"]["id"], jane_id.as_str());
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 2);

    let bulk = app
        .ok(
            "mutation($i: [LeadInput!]!) { createLeads(inputs: $i, onDuplicate: FAIL) { created merged failed results { index created error } } }",
            json!({"i": [{"fullName": "New Person"}, {"fullName": "Jane Again", "email": "jane@acme.example"}]}),
        )
        .await["createLeads"]
        .clone();
    assert_eq!(
        (&bulk["created"], &bulk["merged"], &bulk["failed"]),
        (&json!(1), &json!(0), &json!(1)),
        "{bulk}"
    );
    assert!(
        bulk["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("duplicate"),
        "{bulk}"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 3);
}

/// A merge that changes nothing writes nothing: the same duplicate sent twice leaves one set of
/// events, one outbox row and one version bump (from the first merge).
#[tokio::test]
async fn a_merge_that_changes_nothing_writes_nothing() {
    let app = TestApp::start().await;
    let jane = create(
        &app,
        json!({"fullName": "Jane Doe", "email": "jane@acme.example", "title": "CTO"}),
    )
    .await;
    let id = jane["lead"]["id"].as_str().unwrap().to_string();
    let dup = json!({"fullName": "Jane Doe", "email": "jane@acme.example", "title": "CEO", "phone": "+1 555 0100"});
    let first = create(&app, dup.clone()).await;
    assert_eq!(first["lead"]["version"], 2);
    let counts = || async {
        (
            app.count("SELECT COUNT(*) AS n FROM lead_events").await,
            app.count("SELECT COUNT(*) AS n FROM outbox").await,
            app.count("SELECT COALESCE(SUM(version), 0) AS n FROM leads")
                .await,
        )
    };
    let before = counts().await;
    for input in [
        dup,
        json!({"fullName": "Jane Doe", "email": "JANE@acme.example"}),
    ] {
        let again = create(&app, input).await;
        assert_eq!(again["duplicateOf"], id.as_str());
        assert_eq!(again["lead"]["version"], 2);
        assert_eq!(
            counts().await,
            before,
            "a merge that changed nothing wrote something"
        );
    }
}
