//! Property: a random lead input is either stored exactly as sent (modulo the documented
//! normalisation: text trimmed, blank optional text stored as null, URLs in their parsed form) or
//! refused with VALIDATION, storing nothing.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use leadcache::leads::{WriteCtx, fields, store};

const TEXT_FIELDS: &[&str] = &[
    "full_name",
    "company",
    "title",
    "location",
    "industry",
    "source",
    "email",
    "phone",
];

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        // Printable unicode, with spaces around.
        "[ ]{0,2}\\PC{0,30}[ ]{0,2}",
        // Control characters mixed in.
        "[a-z]{0,5}[\\x00-\\x1f\\x7f][a-z]{0,5}",
        // Plausible values.
        "[A-Z][a-z]{1,10} [A-Z][a-z]{1,10}",
        "[a-z]{1,8}@[a-z]{1,8}\\.(com|io|example)",
        "\\+?[0-9 ()\\-]{3,24}",
        Just(String::new()),
        "\\PC{190,210}",
    ]
}

fn any_url() -> impl Strategy<Value = String> {
    prop_oneof![
        "(https?://)?[a-z]{1,10}\\.(com|io|example)(/[a-z0-9]{0,8})?",
        "(https?://)?(www\\.)?linkedin\\.com/in/[a-z0-9\\-]{1,12}",
        "\\PC{0,20}",
        "(ftp|file|javascript)://[a-z]{1,8}\\.com",
    ]
}

fn any_input() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::collection::vec(proptest::option::of(any_text()), TEXT_FIELDS.len()),
        proptest::option::of(any_url()),
        proptest::option::of(any_url()),
        proptest::option::of(prop_oneof![
            (-2e9f64..2e9f64),
            Just(f64::MAX),
            (0f64..100f64)
        ]),
        proptest::option::of(prop_oneof![
            Just("new".to_string()),
            Just("won".to_string()),
            "[a-z]{1,8}"
        ]),
    )
        .prop_map(|(texts, website, linkedin, score, status)| {
            let mut m = Map::new();
            for (field, value) in TEXT_FIELDS.iter().zip(texts) {
                if let Some(v) = value {
                    m.insert((*field).to_string(), Value::from(v));
                }
            }
            if let Some(w) = website {
                m.insert("website".into(), Value::from(w));
            }
            if let Some(l) = linkedin {
                m.insert("linkedin_url".into(), Value::from(l));
            }
            if let Some(s) = score {
                m.insert("score".into(), json!(s));
            }
            if let Some(s) = status {
                m.insert("status".into(), Value::from(s));
            }
            m
        })
}

fn url_form(s: &str) -> String {
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("https://{s}")
    };
    url::Url::parse(&with_scheme)
        .map(|u| u.to_string())
        .unwrap_or_default()
}

/// What must be stored for `field` when the input was `sent`.
fn expected(field: &str, sent: &Value) -> Value {
    match sent {
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                Value::Null
            } else if field == "website" || field == "linkedin_url" {
                Value::from(url_form(t))
            } else {
                Value::from(t)
            }
        }
        other => other.clone(),
    }
}

fn must_be_refused(input: &Map<String, Value>) -> bool {
    let name_blank = input
        .get("full_name")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty());
    let control = input.values().filter_map(Value::as_str).any(|s| {
        s.trim()
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    });
    let bad_score = input
        .get("score")
        .and_then(Value::as_f64)
        .is_some_and(|x| x.abs() > 1e9);
    name_blank || control || bad_score
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_leads_are_stored_exactly_or_refused_whole(input in any_input()) {
        let dir = tempfile::tempdir().unwrap();
        let db = leadcache::db::Db::open(&dir.path().join("p.db")).unwrap();
        db.migrate().unwrap();
        let mut conn = db.conn().unwrap();
        let ctx = WriteCtx {
            actor: "prop".into(),
            sync_enabled: false,
            statuses: leadcache::config::DEFAULT_STATUSES.split(',').map(String::from).collect(),
            delete_grace: std::time::Duration::from_secs(600),
        };
        let count = |c: &mut diesel::SqliteConnection| -> (i64, i64, i64) {
            use diesel::prelude::*;
            use leadcache::db::schema::{lead_events, leads, outbox};
            (
                leads::table.count().get_result(c).unwrap(),
                lead_events::table.count().get_result(c).unwrap(),
                outbox::table.count().get_result(c).unwrap(),
            )
        };
        let before = count(&mut conn);
        match store::create(&mut conn, &ctx, &input) {
            Ok(written) => {
                prop_assert!(!must_be_refused(&input), "accepted what must be refused: {input:?}");
                let stored = store::find(&mut conn, &written.lead.id).unwrap().expect("stored lead");
                for (field, sent) in &input {
                    let got = fields::get(&stored, field).unwrap_or(Value::Null);
                    let want = expected(field, sent);
                    let same = match (&got, &want) {
                        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                        _ => got == want,
                    };
                    prop_assert!(same, "{field}: sent {sent:?}, stored {got:?}, expected {want:?}");
                }
                let after = count(&mut conn);
                prop_assert_eq!(after, (before.0 + 1, before.1 + 1, before.2 + 1));
            }
            Err(e) => {
                prop_assert_eq!(e.code(), "VALIDATION", "{}", e);
                prop_assert_eq!(count(&mut conn), before, "a refused lead stored something");
            }
        }
    }
}
