//! Encoding of list parameters: the GET query (`fields[]=`, `sort[0][field]=`, as Airtable's own
//! clients send them) and the JSON body of `POST …/listRecords`.

use serde_json::{Value, json};

use super::ListParams;

/// The GET query of a listing: `fields[]=`, `sort[0][field]=`, as Airtable's clients encode them.
pub(crate) fn list_query(params: &ListParams, offset: Option<&str>) -> Vec<(String, String)> {
    let mut q = Vec::new();
    if let Some(n) = params.page_size {
        q.push(("pageSize".into(), n.to_string()));
    }
    if let Some(n) = params.max_records {
        q.push(("maxRecords".into(), n.to_string()));
    }
    for f in &params.fields {
        q.push(("fields[]".into(), f.clone()));
    }
    if let Some(f) = &params.filter_by_formula {
        q.push(("filterByFormula".into(), f.clone()));
    }
    for (i, s) in params.sort.iter().enumerate() {
        q.push((format!("sort[{i}][field]"), s.field.clone()));
        q.push((format!("sort[{i}][direction]"), s.direction().into()));
    }
    if let Some(v) = &params.view {
        q.push(("view".into(), v.clone()));
    }
    if params.return_fields_by_field_id {
        q.push(("returnFieldsByFieldId".into(), "true".into()));
    }
    if let Some(o) = offset {
        q.push(("offset".into(), o.to_string()));
    }
    q
}

/// The JSON body of `POST …/listRecords`, same parameters as [`list_query`].
pub(crate) fn list_body(params: &ListParams, offset: Option<&str>) -> Value {
    let mut b = serde_json::Map::new();
    if let Some(n) = params.page_size {
        b.insert("pageSize".into(), n.into());
    }
    if let Some(n) = params.max_records {
        b.insert("maxRecords".into(), n.into());
    }
    if !params.fields.is_empty() {
        b.insert("fields".into(), json!(params.fields));
    }
    if let Some(f) = &params.filter_by_formula {
        b.insert("filterByFormula".into(), f.clone().into());
    }
    if !params.sort.is_empty() {
        let sort: Vec<Value> = params
            .sort
            .iter()
            .map(|s| json!({"field": s.field, "direction": s.direction()}))
            .collect();
        b.insert("sort".into(), sort.into());
    }
    if let Some(v) = &params.view {
        b.insert("view".into(), v.clone().into());
    }
    if params.return_fields_by_field_id {
        b.insert("returnFieldsByFieldId".into(), true.into());
    }
    if let Some(o) = offset {
        b.insert("offset".into(), o.into());
    }
    Value::Object(b)
}
