//! Mapping between Airtable field names and leadcache's local lead fields (SPEC §4).
//!
//! Conversions work on plain JSON keyed by local field name, so the store can plug in without
//! knowing Airtable's names. Reading is tolerant: Airtable omits empty cells (an unchecked box is
//! absent, so absent booleans read `false`), a number where text is expected becomes its string,
//! error cells (`{"error":"#ERROR!"}`, `{"specialValue":"NaN"}`) read as null, and every unmapped
//! field is kept losslessly in `extra`. Writing never sends read-only fields (the modified field,
//! names marked read-only, and error cells, which only computed fields can hold).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::Record;
use crate::config::AirtableConfig;

/// The JSON type of a local field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalType {
    Text,
    Number,
    Bool,
    /// RFC 3339 UTC with milliseconds and `Z`.
    DateTime,
}

/// Local field, default Airtable name, type (SPEC §4; `id` is the Lead ID field, set apart).
pub const LOCAL_FIELDS: &[(&str, &str, LocalType)] = &[
    ("full_name", "Full Name", LocalType::Text),
    ("email", "Email", LocalType::Text),
    ("company", "Company", LocalType::Text),
    ("title", "Title", LocalType::Text),
    ("linkedin_url", "LinkedIn URL", LocalType::Text),
    ("website", "Website", LocalType::Text),
    ("phone", "Phone", LocalType::Text),
    ("location", "Location", LocalType::Text),
    ("industry", "Industry", LocalType::Text),
    ("company_size", "Company Size", LocalType::Text),
    ("status", "Status", LocalType::Text),
    ("source", "Source", LocalType::Text),
    ("score", "Score", LocalType::Number),
    ("verified", "Verified", LocalType::Bool),
    ("enriched", "Enriched", LocalType::Bool),
    ("needs_enrichment", "Needs Enrichment", LocalType::Bool),
    ("scraped_at", "Scraped At", LocalType::DateTime),
    ("enriched_at", "Enriched At", LocalType::DateTime),
    ("contacted_at", "Contacted At", LocalType::DateTime),
];

/// Airtable names treated as read-only besides the modified field: the default name of a
/// "Created time" field.
const DEFAULT_READ_ONLY: &[&str] = &["Created"];

#[derive(Debug, thiserror::Error)]
pub enum FieldMapError {
    #[error("cannot read AIRTABLE_FIELD_MAP {path}: {error}")]
    Read { path: String, error: String },
    #[error("AIRTABLE_FIELD_MAP is not valid TOML: {0}")]
    Toml(String),
    #[error("AIRTABLE_FIELD_MAP: unknown local field {}", crate::error::quote(.0))]
    UnknownLocal(String),
    #[error("AIRTABLE_FIELD_MAP: the value of {} must be a non-empty string", crate::error::quote(.0))]
    NotAString(String),
    #[error("AIRTABLE_FIELD_MAP: Airtable field {} is mapped twice", crate::error::quote(.0))]
    Duplicate(String),
}

/// A lead as read from Airtable.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteLead {
    pub airtable_id: String,
    pub created_time: DateTime<Utc>,
    /// The modified field's value, when present and parseable.
    pub modified_at: Option<DateTime<Utc>>,
    /// Every mapped local field (not `id`): null when absent, `false` for absent booleans.
    pub values: BTreeMap<String, Value>,
    /// Every unmapped Airtable field, as Airtable sent it.
    pub extra: Map<String, Value>,
    /// leadcache's id from the Lead ID field.
    pub lead_id: Option<String>,
}

/// Local field name <-> Airtable field name.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap {
    /// (local, Airtable, type), in [`LOCAL_FIELDS`] order.
    fields: Vec<(String, String, LocalType)>,
    lead_id_field: String,
    modified_field: String,
    read_only: BTreeSet<String>,
}

impl FieldMap {
    /// The built-in map.
    pub fn default_map(lead_id_field: &str, modified_field: &str) -> Self {
        let mut read_only: BTreeSet<String> =
            DEFAULT_READ_ONLY.iter().map(|s| s.to_string()).collect();
        read_only.insert(modified_field.to_string());
        FieldMap {
            fields: LOCAL_FIELDS
                .iter()
                .map(|(l, a, t)| (l.to_string(), a.to_string(), *t))
                .collect(),
            lead_id_field: lead_id_field.to_string(),
            modified_field: modified_field.to_string(),
            read_only,
        }
    }

    /// The built-in map with the entries of a TOML document `local_field = "Airtable Field"` on
    /// top (fields not named keep their default). `id` renames the Lead ID field.
    pub fn from_toml_str(
        toml_text: &str,
        lead_id_field: &str,
        modified_field: &str,
    ) -> Result<Self, FieldMapError> {
        let table: toml::Table =
            toml::from_str(toml_text).map_err(|e| FieldMapError::Toml(e.to_string()))?;
        let mut map = Self::default_map(lead_id_field, modified_field);
        for (local, v) in table {
            let name = v
                .as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| FieldMapError::NotAString(local.clone()))?;
            if local == "id" {
                map.lead_id_field = name.to_string();
                continue;
            }
            let entry = map
                .fields
                .iter_mut()
                .find(|(l, _, _)| *l == local)
                .ok_or_else(|| FieldMapError::UnknownLocal(local.clone()))?;
            entry.1 = name.to_string();
        }
        let mut seen = BTreeSet::new();
        for name in map.fields.iter().map(|f| &f.1).chain([&map.lead_id_field]) {
            if !seen.insert(name.as_str()) {
                return Err(FieldMapError::Duplicate(name.clone()));
            }
        }
        Ok(map)
    }

    /// The built-in map, or the one in `path`.
    pub fn load(
        path: Option<&Path>,
        lead_id_field: &str,
        modified_field: &str,
    ) -> Result<Self, FieldMapError> {
        match path {
            None => Ok(Self::default_map(lead_id_field, modified_field)),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| FieldMapError::Read {
                    path: p.display().to_string(),
                    error: e.to_string(),
                })?;
                Self::from_toml_str(&text, lead_id_field, modified_field)
            }
        }
    }

    /// The map `AIRTABLE_FIELD_MAP`, `AIRTABLE_LEAD_ID_FIELD` and `AIRTABLE_MODIFIED_FIELD` ask for.
    pub fn from_config(cfg: &AirtableConfig) -> Result<Self, FieldMapError> {
        Self::load(
            cfg.field_map.as_deref(),
            &cfg.lead_id_field,
            &cfg.modified_field,
        )
    }

    /// Marks an Airtable field as computed: never written back.
    pub fn add_read_only(&mut self, airtable_name: &str) {
        self.read_only.insert(airtable_name.to_string());
    }

    pub fn is_read_only(&self, airtable_name: &str) -> bool {
        self.read_only.contains(airtable_name)
    }

    pub fn lead_id_field(&self) -> &str {
        &self.lead_id_field
    }

    pub fn modified_field(&self) -> &str {
        &self.modified_field
    }

    /// The Airtable name of a local field (`id` gives the Lead ID field).
    pub fn airtable_name(&self, local: &str) -> Option<&str> {
        if local == "id" {
            return Some(&self.lead_id_field);
        }
        self.fields
            .iter()
            .find(|f| f.0 == local)
            .map(|f| f.1.as_str())
    }

    /// The local name of an Airtable field (the Lead ID field gives `id`).
    pub fn local_name(&self, airtable: &str) -> Option<&str> {
        if airtable == self.lead_id_field {
            return Some("id");
        }
        self.fields
            .iter()
            .find(|f| f.1 == airtable)
            .map(|f| f.0.as_str())
    }

    /// (local, Airtable, type) of every mapped field but `id`.
    pub fn mapped(&self) -> impl Iterator<Item = (&str, &str, LocalType)> {
        self.fields
            .iter()
            .map(|(l, a, t)| (l.as_str(), a.as_str(), *t))
    }

    /// Reads a record into local values.
    pub fn from_record(&self, rec: &Record) -> RemoteLead {
        let mut values = BTreeMap::new();
        for (local, airtable, ty) in self.mapped() {
            values.insert(local.to_string(), read_value(rec.fields.get(airtable), ty));
        }
        let lead_id = match read_value(rec.fields.get(&self.lead_id_field), LocalType::Text) {
            Value::String(s) => Some(s),
            _ => None,
        };
        let modified_at = rec
            .fields
            .get(&self.modified_field)
            .and_then(Value::as_str)
            .and_then(crate::time::parse)
            .map(|t| t.and_utc());
        let extra = rec
            .fields
            .iter()
            .filter(|(k, _)| self.local_name(k).is_none() && **k != self.modified_field)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        RemoteLead {
            airtable_id: rec.id.clone(),
            created_time: rec.created_time,
            modified_at,
            values,
            extra,
            lead_id,
        }
    }

    /// Airtable `fields` for local values (and unmapped `extra` values). `null` clears a cell;
    /// unknown local names are skipped; read-only fields are never included.
    pub fn to_fields(
        &self,
        values: &BTreeMap<String, Value>,
        extra: Option<&Map<String, Value>>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (local, v) in values {
            if local == "id" {
                let v = match v {
                    Value::String(s) if s.is_empty() => continue,
                    other => other.clone(),
                };
                out.insert(self.lead_id_field.clone(), v);
                continue;
            }
            let Some((_, airtable, ty)) = self.fields.iter().find(|f| f.0 == *local) else {
                tracing::debug!(field = %local, "no Airtable field for this local field; not sent");
                continue;
            };
            if self.read_only.contains(airtable) {
                continue;
            }
            out.insert(airtable.clone(), write_value(v, *ty));
        }
        for (k, v) in extra.into_iter().flatten() {
            if self.read_only.contains(k)
                || *k == self.modified_field
                || self.local_name(k).is_some()
                || is_error_cell(v)
            {
                continue;
            }
            out.insert(k.clone(), v.clone());
        }
        out
    }
}

/// `{"error":"#ERROR!"}` or `{"specialValue":"NaN"}`.
fn is_error_cell(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.len() == 1 && (o.contains_key("error") || o.contains_key("specialValue"))
    })
}

fn read_value(v: Option<&Value>, ty: LocalType) -> Value {
    let v = match v {
        None | Some(Value::Null) => {
            return if ty == LocalType::Bool {
                Value::Bool(false)
            } else {
                Value::Null
            };
        }
        Some(v) if is_error_cell(v) => {
            return if ty == LocalType::Bool {
                Value::Bool(false)
            } else {
                Value::Null
            };
        }
        Some(v) => v,
    };
    match ty {
        LocalType::Text => match v {
            Value::String(s) if s.is_empty() => Value::Null,
            Value::String(_) => v.clone(),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            // A lookup or multiple select: its texts, comma separated.
            Value::Array(a) => {
                let parts: Vec<String> = a
                    .iter()
                    .filter_map(|x| match x {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        Value::Object(o) => o.get("name").and_then(Value::as_str).map(String::from),
                        _ => None,
                    })
                    .collect();
                if parts.is_empty() {
                    Value::Null
                } else {
                    Value::String(parts.join(", "))
                }
            }
            // A collaborator or select object: its name.
            Value::Object(o) => o
                .get("name")
                .or_else(|| o.get("text"))
                .and_then(Value::as_str)
                .map(|s| Value::String(s.to_string()))
                .unwrap_or(Value::Null),
            Value::Null => Value::Null,
        },
        LocalType::Number => match v {
            Value::Number(_) => v.clone(),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Value::Array(a) if a.len() == 1 => read_value(a.first(), ty),
            _ => Value::Null,
        },
        LocalType::Bool => Value::Bool(match v {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
            Value::String(s) => matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "checked"
            ),
            Value::Array(a) => a
                .first()
                .is_some_and(|x| read_value(Some(x), ty) == Value::Bool(true)),
            _ => false,
        }),
        LocalType::DateTime => match v {
            Value::String(s) => crate::time::parse(s)
                .map(|t| Value::String(t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)))
                .unwrap_or(Value::Null),
            Value::Array(a) if a.len() == 1 => read_value(a.first(), ty),
            _ => Value::Null,
        },
    }
}

fn write_value(v: &Value, ty: LocalType) -> Value {
    match (ty, v) {
        (_, Value::Null) => Value::Null,
        (LocalType::Text, Value::String(s)) if s.is_empty() => Value::Null,
        (LocalType::Text, Value::Number(n)) => Value::String(n.to_string()),
        (LocalType::DateTime, Value::String(s)) => crate::time::parse(s)
            .map(|t| Value::String(t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)))
            .unwrap_or_else(|| v.clone()),
        _ => v.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn toml_map_overrides_and_rejects_unknown_names() {
        let m = FieldMap::from_toml_str(
            "full_name = \"Name\"\nid = \"LC ID\"",
            "Lead ID",
            "Last Modified",
        )
        .unwrap();
        assert_eq!(m.airtable_name("full_name"), Some("Name"));
        assert_eq!(m.airtable_name("email"), Some("Email"));
        assert_eq!(m.lead_id_field(), "LC ID");
        let e =
            FieldMap::from_toml_str("fullname = \"Name\"", "Lead ID", "Last Modified").unwrap_err();
        assert!(e.to_string().contains("\"fullname\""), "{e}");
        let e = FieldMap::from_toml_str("email = \"Full Name\"", "Lead ID", "Last Modified")
            .unwrap_err();
        assert!(matches!(e, FieldMapError::Duplicate(_)));
    }

    #[test]
    fn reads_tolerantly() {
        assert_eq!(read_value(Some(&json!(42)), LocalType::Text), json!("42"));
        assert_eq!(
            read_value(Some(&json!({"error":"#ERROR!"})), LocalType::Text),
            Value::Null
        );
        assert_eq!(
            read_value(Some(&json!({"specialValue":"NaN"})), LocalType::Number),
            Value::Null
        );
        assert_eq!(read_value(None, LocalType::Bool), json!(false));
        assert_eq!(
            read_value(Some(&json!("2022-09-05")), LocalType::DateTime),
            json!("2022-09-05T00:00:00.000Z")
        );
        assert_eq!(
            read_value(Some(&json!("12.5")), LocalType::Number),
            json!(12.5)
        );
    }
}
