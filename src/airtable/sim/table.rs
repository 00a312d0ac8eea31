//! The table operations of the simulated API: validation of written values, list, get, create,
//! update (PATCH merges, PUT replaces), upsert, delete. Every write is checked completely before
//! anything is applied, so a rejected request changes nothing (as on Airtable).

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::formula::{self, RecordView, Val};
use super::state::{Inner, ListIter, SimRecord, apply, iterator_alive, new_id};
use super::{NotFoundShape, SimConfig};

/// Validated cells: (field name, value or `None` to clear).
pub(crate) type Cells = Vec<(String, Option<Value>)>;

/// An error answer: status and JSON body (plus `Retry-After` for injected 503s).
#[derive(Debug, Clone)]
pub(crate) struct ApiErr {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl ApiErr {
    pub fn typed(status: u16, t: &str, message: impl Into<String>) -> Self {
        ApiErr {
            status,
            body: json!({"error": {"type": t, "message": message.into()}}),
            retry_after: None,
        }
    }

    pub fn typed_bare(status: u16, t: &str) -> Self {
        ApiErr {
            status,
            body: json!({"error": {"type": t}}),
            retry_after: None,
        }
    }

    pub fn bare(status: u16, s: &str) -> Self {
        ApiErr {
            status,
            body: json!({"error": s}),
            retry_after: None,
        }
    }

    pub fn unprocessable(t: &str, message: impl Into<String>) -> Self {
        Self::typed(422, t, message)
    }

    pub fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .or_else(|| self.body["error"]["type"].as_str())
            .or_else(|| self.body["error"].as_str())
            .unwrap_or("error")
            .to_string()
    }

    pub fn record_not_found(shape: NotFoundShape) -> Self {
        match shape {
            NotFoundShape::ModelIdNotFound => {
                Self::typed(404, "MODEL_ID_NOT_FOUND", "Record not found")
            }
            NotFoundShape::InvalidPermissions => Self::forbidden_model(),
            NotFoundShape::Bare => Self::bare(404, "NOT_FOUND"),
        }
    }

    pub fn forbidden_model() -> Self {
        Self::typed(
            403,
            "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
            "Invalid permissions, or the requested model was not found. Check that both your user and your token have the required permissions, and that the model names and/or ids are correct.",
        )
    }
}

fn invalid_records() -> ApiErr {
    ApiErr::unprocessable(
        "INVALID_RECORDS",
        "You must provide an array of up to 10 record objects, each with an 'id' ID field and a 'fields' object for cell values.",
    )
}

pub(crate) fn unknown_field(name: &str) -> ApiErr {
    ApiErr::unprocessable(
        "UNKNOWN_FIELD_NAME",
        format!("Unknown field name: \"{name}\""),
    )
}

pub(crate) fn bad_value(name: &str) -> ApiErr {
    ApiErr::unprocessable(
        "INVALID_VALUE_FOR_COLUMN",
        format!("Field \"{name}\" cannot accept the provided value"),
    )
}

/// The parameters of a list request, from the GET query or the POST body.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListQuery {
    pub page_size: Option<i64>,
    pub max_records: Option<i64>,
    pub offset: Option<String>,
    pub fields: Vec<String>,
    pub formula: Option<String>,
    /// (field, descending)
    pub sort: Vec<(String, bool)>,
    pub by_field_id: bool,
    /// Only the default view exists ("Grid view", or its id `viwGridView000000`): all records.
    pub view: Option<String>,
}

/// The name and id of the table's only view.
pub(crate) const VIEW: (&str, &str) = ("Grid view", "viwGridView000000");

/// `itr` + 14 alphanumerics + `/rec` + 14 alphanumerics.
fn offset_well_formed(o: &str) -> bool {
    let ok = |s: &str, p: &str| {
        s.len() == 17 && s.starts_with(p) && s.chars().all(|c| c.is_ascii_alphanumeric())
    };
    matches!(o.split_once('/'), Some((a, b)) if ok(a, "itr") && ok(b, "rec"))
}

struct View<'a> {
    inner: &'a Inner,
    rec: &'a SimRecord,
}

impl RecordView for View<'_> {
    fn field(&self, name: &str) -> Val {
        let Some(def) = self.inner.field_def(name) else {
            return Val::Blank;
        };
        match self.inner.cell(self.rec, def) {
            None => Val::Blank,
            Some(v) => to_val(&v),
        }
    }
    fn record_id(&self) -> String {
        self.rec.id.clone()
    }
}

fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Blank,
        Value::String(s) => Val::Str(s.clone()),
        Value::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::Bool(b) => Val::Bool(*b),
        Value::Array(a) => Val::Arr(a.iter().map(to_val).collect()),
        Value::Object(o) => ["name", "email", "filename", "id"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .map(|s| Val::Str(s.to_string()))
            .unwrap_or(Val::Blank),
    }
}

fn sort_key(v: Option<Value>) -> (bool, f64, String) {
    match v {
        None => (false, 0.0, String::new()),
        Some(Value::Number(n)) => (true, n.as_f64().unwrap_or(0.0), String::new()),
        Some(Value::Bool(b)) => (true, if b { 1.0 } else { 0.0 }, String::new()),
        Some(Value::String(s)) => (true, 0.0, s.to_lowercase()),
        Some(other) => (true, 0.0, other.to_string()),
    }
}

impl Inner {
    pub fn list(
        &mut self,
        cfg: &SimConfig,
        q: ListQuery,
        forced_expiry: bool,
    ) -> Result<Value, ApiErr> {
        let page_size = match q.page_size {
            None => 100,
            Some(n) if (0..=100).contains(&n) => n as usize,
            Some(_) => {
                return Err(ApiErr::unprocessable(
                    "INVALID_PAGE_SIZE_ARGUMENT",
                    "Page size argument should be between 0 and 100",
                ));
            }
        };
        if let Some(v) = q.view.as_deref()
            && v != VIEW.0
            && v != VIEW.1
        {
            return Err(ApiErr::unprocessable(
                "VIEW_NAME_NOT_FOUND",
                format!("View {v} not found"),
            ));
        }
        for f in q.fields.iter().chain(q.sort.iter().map(|s| &s.0)) {
            if self.field_def(f).is_none() {
                return Err(unknown_field(f));
            }
        }
        let only = (!q.fields.is_empty()).then_some(q.fields.as_slice());
        let (itr_id, ids, pos) = match &q.offset {
            Some(o) => {
                if !offset_well_formed(o) {
                    return Err(ApiErr::unprocessable(
                        "INVALID_OFFSET_VALUE",
                        format!("The value of offset {o} is invalid"),
                    ));
                }
                let itr_id = o.split('/').next().unwrap_or_default().to_string();
                let alive = self
                    .iterators
                    .get(&itr_id)
                    .is_some_and(|it| iterator_alive(it, cfg.offset_ttl));
                if forced_expiry || !alive {
                    self.iterators.remove(&itr_id);
                    return Err(ApiErr::typed_bare(
                        422,
                        "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
                    ));
                }
                let it = self.iterators.remove(&itr_id).ok_or_else(|| {
                    ApiErr::typed_bare(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE")
                })?;
                (itr_id, it.ids, it.pos)
            }
            None => {
                let expr = match q
                    .formula
                    .as_deref()
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                {
                    None => None,
                    Some(text) => Some(
                        formula::parse(text, |n| self.field_def(n).is_some()).map_err(|e| {
                            ApiErr::unprocessable("INVALID_FILTER_BY_FORMULA", e.message())
                        })?,
                    ),
                };
                let mut recs: Vec<&SimRecord> = self
                    .records
                    .values()
                    .filter(|r| {
                        expr.as_ref().is_none_or(|e| {
                            formula::eval(
                                e,
                                &View {
                                    inner: self,
                                    rec: r,
                                },
                            )
                            .truthy()
                        })
                    })
                    .collect();
                for (field, desc) in q.sort.iter().rev() {
                    let def = self
                        .field_def(field)
                        .cloned()
                        .ok_or_else(|| unknown_field(field))?;
                    recs.sort_by(|a, b| {
                        let (ka, kb) = (sort_key(self.cell(a, &def)), sort_key(self.cell(b, &def)));
                        let o = ka.partial_cmp(&kb).unwrap_or(std::cmp::Ordering::Equal);
                        if *desc { o.reverse() } else { o }
                    });
                }
                let mut ids: Vec<String> = recs.iter().map(|r| r.id.clone()).collect();
                if let Some(m) = q.max_records {
                    ids.truncate(m.max(0) as usize);
                }
                (new_id(&mut self.rng, "itr"), ids, 0)
            }
        };
        let mut records = Vec::new();
        let mut i = pos;
        while records.len() < page_size && i < ids.len() {
            if let Some(r) = self.find(&ids[i]) {
                records.push(self.render(r, q.by_field_id, only));
            }
            i += 1;
        }
        let mut body = json!({"records": records});
        if i < ids.len() && page_size > 0 {
            let last = ids[i - 1].clone();
            body["offset"] = json!(format!("{itr_id}/{last}"));
            self.iterators.insert(
                itr_id,
                ListIter {
                    ids,
                    pos: i,
                    touched: Instant::now(),
                },
            );
        }
        Ok(body)
    }

    pub fn get_one(&self, cfg: &SimConfig, id: &str, by_id: bool) -> Result<Value, ApiErr> {
        self.find(id)
            .map(|r| self.render(r, by_id, None))
            .ok_or_else(|| ApiErr::record_not_found(cfg.not_found))
    }

    fn batch<'b>(&self, cfg: &SimConfig, body: &'b Value) -> Result<&'b Vec<Value>, ApiErr> {
        let recs = body
            .get("records")
            .and_then(Value::as_array)
            .ok_or_else(invalid_records)?;
        if recs.is_empty() || cfg.max_batch.is_some_and(|m| recs.len() > m) {
            return Err(invalid_records());
        }
        if recs
            .iter()
            .any(|r| !r.get("fields").is_some_and(Value::is_object))
        {
            return Err(invalid_records());
        }
        Ok(recs)
    }

    fn fields_of(v: &Value) -> Map<String, Value> {
        v.get("fields")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    pub fn create(&mut self, cfg: &SimConfig, body: &Value) -> Result<Value, ApiErr> {
        let typecast = body
            .get("typecast")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let by_id = body
            .get("returnFieldsByFieldId")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if body.get("records").is_none() {
            let fields = body
                .get("fields")
                .and_then(Value::as_object)
                .ok_or_else(invalid_records)?;
            let cells = self.coerce_all(fields, typecast)?;
            let id = self.insert_record(cells);
            return self.get_one(cfg, &id, by_id);
        }
        let recs = self.batch(cfg, body)?;
        let mut all = Vec::new();
        for r in recs {
            all.push(self.coerce_all(&Self::fields_of(r), typecast)?);
        }
        let ids: Vec<String> = all.into_iter().map(|c| self.insert_record(c)).collect();
        let out: Vec<Value> = ids
            .iter()
            .filter_map(|id| self.find(id).map(|r| self.render(r, by_id, None)))
            .collect();
        Ok(json!({"records": out}))
    }

    /// Batch PATCH/PUT, with or without `performUpsert`.
    pub fn update(
        &mut self,
        cfg: &SimConfig,
        body: &Value,
        replace: bool,
    ) -> Result<Value, ApiErr> {
        let typecast = body
            .get("typecast")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let by_id = body
            .get("returnFieldsByFieldId")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let recs = self.batch(cfg, body)?.clone();
        let merge_on: Option<Vec<String>> = match body.get("performUpsert") {
            None | Some(Value::Null) => None,
            Some(p) => {
                let names: Vec<String> = p
                    .get("fieldsToMergeOn")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                if names.is_empty() || names.len() > 3 {
                    return Err(ApiErr::unprocessable(
                        "INVALID_REQUEST_UNKNOWN",
                        "Invalid request: performUpsert.fieldsToMergeOn must hold 1 to 3 fields",
                    ));
                }
                let mut canon = Vec::new();
                for n in &names {
                    let def = self.field_def(n).ok_or_else(|| unknown_field(n))?;
                    if def.ty.is_computed() {
                        return Err(ApiErr::unprocessable(
                            "INVALID_REQUEST_UNKNOWN",
                            format!(
                                "Invalid request: field \"{}\" cannot be used in fieldsToMergeOn",
                                def.name
                            ),
                        ));
                    }
                    canon.push(def.name.clone());
                }
                Some(canon)
            }
        };
        // Validate everything, then apply.
        let mut plan: Vec<(Option<String>, Cells)> = Vec::new();
        for r in &recs {
            let cells = self.coerce_all(&Self::fields_of(r), typecast)?;
            let id = r.get("id").and_then(Value::as_str).map(String::from);
            match (&id, &merge_on) {
                (Some(id), _) if self.find(id).is_none() => {
                    return Err(ApiErr::unprocessable(
                        "ROW_DOES_NOT_EXIST",
                        format!("Record ID {id} does not exist in this table"),
                    ));
                }
                (None, None) => return Err(invalid_records()),
                (None, Some(keys))
                    if keys
                        .iter()
                        .any(|k| !cells.iter().any(|(n, v)| n == k && v.is_some())) =>
                {
                    return Err(ApiErr::unprocessable(
                        "INVALID_VALUE_FOR_COLUMN",
                        "Every record of an upsert must have a value for each of fieldsToMergeOn",
                    ));
                }
                _ => {}
            }
            plan.push((id, cells));
        }
        let (mut created, mut updated, mut out_ids) = (Vec::new(), Vec::new(), Vec::new());
        for (id, cells) in plan {
            let target = match (id, &merge_on) {
                (Some(id), _) => Some(id),
                (None, Some(keys)) => {
                    let matches: Vec<String> = self
                        .records
                        .values()
                        .filter(|rec| {
                            keys.iter().all(|k| {
                                let want = cells
                                    .iter()
                                    .find(|(n, _)| n == k)
                                    .and_then(|(_, v)| v.as_ref());
                                rec.fields.get(k) == want
                            })
                        })
                        .map(|rec| rec.id.clone())
                        .collect();
                    if matches.len() > 1 {
                        return Err(ApiErr::unprocessable(
                            "INVALID_VALUE_FOR_COLUMN",
                            format!(
                                "Cannot update more than one record with the same fieldsToMergeOn values ({} match)",
                                matches.len()
                            ),
                        ));
                    }
                    matches.into_iter().next()
                }
                (None, None) => None,
            };
            match target {
                Some(id) => {
                    if let Some(rec) = self.find_mut(&id) {
                        apply(rec, cells, replace);
                    }
                    updated.push(id.clone());
                    out_ids.push(id);
                }
                None => {
                    let id = self.insert_record(cells);
                    created.push(id.clone());
                    out_ids.push(id);
                }
            }
        }
        let out: Vec<Value> = out_ids
            .iter()
            .filter_map(|id| self.find(id).map(|r| self.render(r, by_id, None)))
            .collect();
        let mut body = json!({"records": out});
        if merge_on.is_some() {
            body["createdRecords"] = json!(created);
            body["updatedRecords"] = json!(updated);
        }
        Ok(body)
    }

    pub fn update_one(
        &mut self,
        cfg: &SimConfig,
        id: &str,
        body: &Value,
        replace: bool,
    ) -> Result<Value, ApiErr> {
        let typecast = body
            .get("typecast")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if self.find(id).is_none() {
            return Err(ApiErr::record_not_found(cfg.not_found));
        }
        let fields = body
            .get("fields")
            .and_then(Value::as_object)
            .ok_or_else(invalid_records)?;
        let cells = self.coerce_all(fields, typecast)?;
        if let Some(rec) = self.find_mut(id) {
            apply(rec, cells, replace);
        }
        self.get_one(cfg, id, false)
    }

    pub fn delete_many(&mut self, cfg: &SimConfig, ids: &[String]) -> Result<Value, ApiErr> {
        if ids.is_empty() || cfg.max_batch.is_some_and(|m| ids.len() > m) {
            return Err(invalid_records());
        }
        if let Some(missing) = ids.iter().find(|id| self.find(id).is_none()) {
            return Err(ApiErr::typed(
                404,
                "NOT_FOUND",
                format!("Could not find a record with ID \"{missing}\"."),
            ));
        }
        for id in ids {
            if let Some(seq) = self.index.remove(id) {
                self.records.remove(&seq);
            }
        }
        Ok(
            json!({"records": ids.iter().map(|id| json!({"id": id, "deleted": true})).collect::<Vec<_>>()}),
        )
    }

    pub fn delete_one(&mut self, cfg: &SimConfig, id: &str) -> Result<Value, ApiErr> {
        match self.index.remove(id) {
            Some(seq) => {
                self.records.remove(&seq);
                Ok(json!({"id": id, "deleted": true}))
            }
            None => Err(ApiErr::record_not_found(cfg.not_found)),
        }
    }
}
