//! The lead's user-visible fields by name, as JSON values.
//!
//! This table is what history (`{field: [old, new]}`), the outbox (changed field names), the
//! Airtable mapping and exports agree on. Values: text fields are strings, `score` a number, the
//! three flags booleans, times RFC 3339 strings (`2026-05-01T12:00:00.000Z`); empty is `null`.

use serde_json::Value;

use crate::db::models::Lead;
use crate::error::AppError;

/// Fields synced with Airtable and recorded in history, in display order.
pub const SYNCED: &[&str] = &[
    "full_name",
    "email",
    "company",
    "title",
    "linkedin_url",
    "website",
    "phone",
    "location",
    "industry",
    "company_size",
    "status",
    "source",
    "score",
    "verified",
    "enriched",
    "needs_enrichment",
    "scraped_at",
    "enriched_at",
    "contacted_at",
];

/// The field kinds, for parsing values that arrive as JSON (pulls, imports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Number,
    Flag,
    Time,
}

pub fn kind(field: &str) -> Option<Kind> {
    Some(match field {
        "score" => Kind::Number,
        "verified" | "enriched" | "needs_enrichment" => Kind::Flag,
        "scraped_at" | "enriched_at" | "contacted_at" => Kind::Time,
        f if SYNCED.contains(&f) => Kind::Text,
        _ => return None,
    })
}

fn text(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

fn time(v: &Option<chrono::NaiveDateTime>) -> Value {
    v.map_or(Value::Null, |t| Value::String(crate::time::format(t)))
}

/// The value of `field` on `lead`; `None` for a name that is not a synced field.
pub fn get(lead: &Lead, field: &str) -> Option<Value> {
    Some(match field {
        "full_name" => Value::String(lead.full_name.clone()),
        "email" => text(&lead.email),
        "company" => text(&lead.company),
        "title" => text(&lead.title),
        "linkedin_url" => text(&lead.linkedin_url),
        "website" => text(&lead.website),
        "phone" => text(&lead.phone),
        "location" => text(&lead.location),
        "industry" => text(&lead.industry),
        "company_size" => text(&lead.company_size),
        "status" => Value::String(lead.status.clone()),
        "source" => text(&lead.source),
        "score" => lead
            .score
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        "verified" => Value::Bool(lead.verified),
        "enriched" => Value::Bool(lead.enriched),
        "needs_enrichment" => Value::Bool(lead.needs_enrichment),
        "scraped_at" => time(&lead.scraped_at),
        "enriched_at" => time(&lead.enriched_at),
        "contacted_at" => time(&lead.contacted_at),
        _ => return None,
    })
}

/// All synced fields of `lead` as a JSON object.
pub fn snapshot(lead: &Lead) -> serde_json::Map<String, Value> {
    SYNCED
        .iter()
        .filter_map(|f| get(lead, f).map(|v| (f.to_string(), v)))
        .collect()
}

fn as_text(field: &str, v: &Value) -> Result<Option<String>, AppError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        _ => Err(AppError::validation(field, "expected text")),
    }
}

fn as_time(field: &str, v: &Value) -> Result<Option<chrono::NaiveDateTime>, AppError> {
    match as_text(field, v)? {
        None => Ok(None),
        Some(s) => crate::time::parse(&s).map(Some).ok_or_else(|| {
            AppError::validation(
                field,
                format!("{} is not a date or time", crate::error::quote(&s)),
            )
        }),
    }
}

/// Sets `field` on `lead` from a JSON value, converting leniently (a number where text is
/// expected becomes its text). Used for values that come from Airtable or files; GraphQL input is
/// typed and validated in `validate`.
pub fn set(lead: &mut Lead, field: &str, v: &Value) -> Result<(), AppError> {
    match field {
        "full_name" => {
            lead.full_name = as_text(field, v)?
                .ok_or_else(|| AppError::validation(field, "must not be empty"))?
        }
        "email" => lead.email = as_text(field, v)?,
        "company" => lead.company = as_text(field, v)?,
        "title" => lead.title = as_text(field, v)?,
        "linkedin_url" => lead.linkedin_url = as_text(field, v)?,
        "website" => lead.website = as_text(field, v)?,
        "phone" => lead.phone = as_text(field, v)?,
        "location" => lead.location = as_text(field, v)?,
        "industry" => lead.industry = as_text(field, v)?,
        "company_size" => lead.company_size = as_text(field, v)?,
        "status" => lead.status = as_text(field, v)?.unwrap_or_else(|| "new".to_string()),
        "source" => lead.source = as_text(field, v)?,
        "score" => {
            lead.score = match v {
                Value::Null => None,
                Value::Number(n) => n.as_f64(),
                Value::String(s) if s.trim().is_empty() => None,
                Value::String(s) => Some(
                    s.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| {
                            AppError::validation(
                                field,
                                format!("{} is not a number", crate::error::quote(s)),
                            )
                        })?,
                ),
                _ => return Err(AppError::validation(field, "expected a number")),
            }
        }
        "verified" | "enriched" | "needs_enrichment" => {
            let b = match v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => matches!(
                    s.trim().to_ascii_lowercase().as_str(),
                    "true" | "yes" | "1" | "x"
                ),
                Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
                _ => return Err(AppError::validation(field, "expected true or false")),
            };
            match field {
                "verified" => lead.verified = b,
                "enriched" => lead.enriched = b,
                _ => lead.needs_enrichment = b,
            }
        }
        "scraped_at" => lead.scraped_at = as_time(field, v)?,
        "enriched_at" => lead.enriched_at = as_time(field, v)?,
        "contacted_at" => lead.contacted_at = as_time(field, v)?,
        other => return Err(AppError::validation(other, "unknown field")),
    }
    Ok(())
}

/// `{field: [null, value]}` for every field a new lead has set (its `created` event).
pub fn created(lead: &Lead) -> serde_json::Map<String, Value> {
    let mut changes = serde_json::Map::new();
    for f in SYNCED {
        match get(lead, f) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(v) => {
                changes.insert(f.to_string(), Value::Array(vec![Value::Null, v]));
            }
        }
    }
    if lead.extra != "{}" {
        let v: Value = serde_json::from_str(&lead.extra).unwrap_or(Value::Null);
        changes.insert(
            "extra".to_string(),
            Value::Array(vec![Value::Object(Default::default()), v]),
        );
    }
    changes
}

/// `{field: [old, new]}` for every synced field that differs between `old` and `new`.
pub fn diff(old: &Lead, new: &Lead) -> serde_json::Map<String, Value> {
    let mut changes = serde_json::Map::new();
    for f in SYNCED {
        let (a, b) = (get(old, f), get(new, f));
        if a != b {
            changes.insert(
                f.to_string(),
                Value::Array(vec![a.unwrap_or(Value::Null), b.unwrap_or(Value::Null)]),
            );
        }
    }
    if old.extra != new.extra {
        let a: Value = serde_json::from_str(&old.extra).unwrap_or(Value::Null);
        let b: Value = serde_json::from_str(&new.extra).unwrap_or(Value::Null);
        changes.insert("extra".to_string(), Value::Array(vec![a, b]));
    }
    changes
}
