//! Validation and conversion of written cell values, by column type (as Airtable checks them,
//! with `typecast` relaxing the conversions).

use serde_json::{Map, Value, json};

use super::state::{FieldType, Inner, new_id};
use super::table::{ApiErr, Cells, bad_value, unknown_field};

impl Inner {
    /// Validates and converts written cells; keys may be names or field ids.
    pub fn coerce_all(
        &mut self,
        fields: &Map<String, Value>,
        typecast: bool,
    ) -> Result<Cells, ApiErr> {
        let mut out = Vec::new();
        for (k, v) in fields {
            let def = self.field_def(k).cloned().ok_or_else(|| unknown_field(k))?;
            if def.ty.is_computed() {
                return Err(ApiErr::unprocessable(
                    "INVALID_VALUE_FOR_COLUMN",
                    format!(
                        "Field \"{}\" cannot accept a value because the field is computed",
                        def.name
                    ),
                ));
            }
            let name = def.name.clone();
            let value = match (def.ty, v) {
                (_, Value::Null) => None,
                (FieldType::Text | FieldType::LongText, Value::String(_)) => Some(v.clone()),
                (FieldType::Text | FieldType::LongText, Value::Number(_) | Value::Bool(_))
                    if typecast =>
                {
                    Some(Value::String(v.to_string()))
                }
                (FieldType::Number, Value::Number(_)) => Some(v.clone()),
                (FieldType::Number, Value::String(s)) if typecast => {
                    let n: f64 = s.trim().parse().map_err(|_| bad_value(&name))?;
                    Some(json!(n))
                }
                (FieldType::Checkbox, Value::Bool(_)) => Some(v.clone()),
                (FieldType::Checkbox, Value::String(s)) if typecast => Some(json!(matches!(
                    s.to_lowercase().as_str(),
                    "true" | "1" | "yes" | "checked"
                ))),
                (FieldType::DateTime, Value::String(s)) => {
                    if s.is_empty() {
                        None
                    } else {
                        let t = crate::time::parse(s).ok_or_else(|| bad_value(&name))?;
                        Some(json!(super::state::fmt_time(t.and_utc())))
                    }
                }
                (FieldType::SingleSelect, Value::String(s)) => {
                    let opts = self.select_options.entry(name.clone()).or_default();
                    if !s.is_empty() && !opts.contains(s) {
                        if !typecast {
                            return Err(ApiErr::unprocessable(
                                "INVALID_MULTIPLE_CHOICE_OPTIONS",
                                format!(
                                    "Insufficient permissions to create new select option \"\"{s}\"\""
                                ),
                            ));
                        }
                        opts.push(s.clone());
                    }
                    Some(v.clone())
                }
                (FieldType::MultiSelect, Value::Array(a)) if a.iter().all(Value::is_string) => {
                    Some(v.clone())
                }
                (FieldType::MultiSelect, Value::String(s)) if typecast => Some(json!(
                    s.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .collect::<Vec<_>>()
                )),
                (FieldType::Collaborator, Value::Object(o))
                    if o.contains_key("id") || o.contains_key("email") =>
                {
                    Some(v.clone())
                }
                (FieldType::Attachments, Value::Array(a)) => {
                    let mut files = Vec::new();
                    for item in a {
                        let Some(o) = item.as_object() else {
                            return Err(bad_value(&name));
                        };
                        let mut o = o.clone();
                        if !o.contains_key("id") {
                            let url = o
                                .get("url")
                                .and_then(Value::as_str)
                                .ok_or_else(|| bad_value(&name))?;
                            let filename = url.rsplit('/').next().unwrap_or("file").to_string();
                            o.insert("id".into(), json!(new_id(&mut self.rng, "att")));
                            o.entry("filename").or_insert(json!(filename));
                            o.insert("size".into(), json!(0));
                            o.insert("type".into(), json!("application/octet-stream"));
                        }
                        files.push(Value::Object(o));
                    }
                    Some(Value::Array(files))
                }
                _ => return Err(bad_value(&name)),
            };
            out.push((name, value));
        }
        Ok(out)
    }
}
