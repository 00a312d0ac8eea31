//! The simulator's in-memory table, request log, faults and rate limiter, behind one mutex, and
//! the control operations (seed, edit as a person would, read the log, set faults, reset).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::SimConfig;
use super::seed;
use crate::airtable::RequestKind;

/// Faults to inject. Set at start ([`SimConfig::faults`]) or at run time
/// ([`SimState::set_faults`], `PUT /_sim/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every answer.
    pub latency_ms: u64,
    /// Share (0..1) of API requests answered with a random 500, 502 or 503.
    pub fail_rate: f64,
    /// The next N API requests are answered with `fail_status`.
    pub fail_next: u32,
    /// Status for `fail_next` (0 means 503).
    pub fail_status: u16,
    /// `Retry-After` seconds sent with injected 503s.
    pub retry_after_secs: Option<u64>,
    /// Share (0..1) of API requests whose connection is closed without an answer (not applied).
    pub drop_rate: f64,
    /// The next N API requests are closed without an answer, before being applied.
    pub drop_next: u32,
    /// The next N API requests are applied, then closed without an answer (a lost response).
    pub drop_response_next: u32,
    /// The next N API requests are answered 429 `RATE_LIMIT_REACHED` (a storm).
    pub rate_limit_next: u32,
    /// The next N list requests that carry an offset get `LIST_RECORDS_ITERATOR_NOT_AVAILABLE`.
    pub expire_next_offsets: u32,
    /// Every API request is answered 429 `PUBLIC_API_BILLING_LIMIT_EXCEEDED`.
    pub quota_exceeded: bool,
}

/// The type of a column of the simulated table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FieldType {
    Text,
    LongText,
    Number,
    Checkbox,
    DateTime,
    SingleSelect,
    MultiSelect,
    Collaborator,
    Attachments,
    /// Computed: the record's last modification time.
    LastModified,
    /// Computed: the record's creation time.
    CreatedTime,
}

impl FieldType {
    pub fn is_computed(self) -> bool {
        matches!(self, FieldType::LastModified | FieldType::CreatedTime)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldDef {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
}

/// One line of the request log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// The raw (percent-encoded) query string; empty when there is none.
    #[serde(default)]
    pub query: String,
    /// The JSON body, when the request had one (writes, `POST …/listRecords`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// None for control requests and unknown routes.
    pub kind: Option<RequestKind>,
    /// The status answered; 0 when the connection was dropped.
    pub status: u16,
    pub at: DateTime<Utc>,
    /// Microseconds since the simulator started, taken when the request arrived (monotonic).
    pub t_us: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct SimRecord {
    pub id: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// Stored (non-computed) cells by field name; empty values are not stored.
    pub fields: Map<String, Value>,
}

pub(crate) struct ListIter {
    pub ids: Vec<String>,
    pub pos: usize,
    pub touched: Instant,
}

#[derive(Default)]
pub(crate) struct RateState {
    pub window: VecDeque<Instant>,
    pub locked_until: Option<Instant>,
}

pub(crate) struct Inner {
    pub schema: Vec<FieldDef>,
    pub select_options: HashMap<String, Vec<String>>,
    pub records: BTreeMap<u64, SimRecord>,
    pub index: HashMap<String, u64>,
    pub next_seq: u64,
    pub iterators: HashMap<String, ListIter>,
    pub log: Vec<LogEntry>,
    pub faults: Faults,
    pub rate: HashMap<String, RateState>,
    pub rng: StdRng,
}

/// The simulator's state; shared by the server, its restarts and the test that drives it.
pub struct SimState {
    pub(crate) cfg: SimConfig,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) started: Instant,
    pub(crate) table_id: String,
}

/// `prefix` + 14 base62 characters.
pub(crate) fn new_id(rng: &mut StdRng, prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut s = String::from(prefix);
    for _ in 0..14 {
        s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    s
}

/// Whole seconds, as Airtable's time fields show.
pub(crate) fn now_secs() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn build_schema(cfg: &SimConfig, rng: &mut StdRng) -> Vec<FieldDef> {
    use FieldType::*;
    let mut cols: Vec<(String, FieldType)> = vec![
        ("Full Name", Text),
        ("Email", Text),
        ("Company", Text),
        ("Title", Text),
        ("LinkedIn URL", Text),
        ("Website", Text),
        ("Phone", Text),
        ("Location", Text),
        ("Industry", Text),
        ("Company Size", Text),
        ("Status", SingleSelect),
        ("Source", Text),
        ("Score", Number),
        ("Verified", Checkbox),
        ("Enriched", Checkbox),
        ("Needs Enrichment", Checkbox),
        ("Scraped At", DateTime),
        ("Enriched At", DateTime),
        ("Contacted At", DateTime),
        ("Notes", LongText),
        ("Tags", MultiSelect),
        ("Owner", Collaborator),
        ("Attachments", Attachments),
        ("Created", CreatedTime),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    cols.push((cfg.modified_field.clone(), LastModified));
    if let Some(f) = &cfg.lead_id_field {
        cols.push((f.clone(), Text));
    }
    cols.into_iter()
        .map(|(name, ty)| FieldDef {
            id: new_id(rng, "fld"),
            name,
            ty,
        })
        .collect()
}

impl SimState {
    pub(crate) fn new(cfg: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let table_id = new_id(&mut rng, "tbl");
        let schema = build_schema(&cfg, &mut rng);
        let select_options = HashMap::from([(
            "Status".to_string(),
            seed::STATUS_WEIGHTS
                .iter()
                .map(|(s, _)| s.to_string())
                .collect(),
        )]);
        let faults = cfg.faults.clone();
        let n = cfg.records;
        let state = SimState {
            cfg,
            inner: Mutex::new(Inner {
                schema,
                select_options,
                records: BTreeMap::new(),
                index: HashMap::new(),
                next_seq: 0,
                iterators: HashMap::new(),
                log: Vec::new(),
                faults,
                rate: HashMap::new(),
                rng,
            }),
            started: Instant::now(),
            table_id,
        };
        state.seed(n);
        state
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The table's id (`tbl…`); the API accepts it in place of the table name.
    pub fn table_id(&self) -> &str {
        &self.table_id
    }

    /// The columns of the table.
    pub fn schema(&self) -> Vec<FieldDef> {
        self.lock().schema.clone()
    }

    /// Adds `n` sample leads (deterministic for a given seed); returns their ids.
    pub fn seed(&self, n: usize) -> Vec<String> {
        let mut g = self.lock();
        let start = g.records.len();
        (0..n)
            .map(|i| {
                let fields = seed::lead(&mut g.rng, start + i);
                g.insert_record(fields)
            })
            .collect()
    }

    /// Creates a record as a person in the Airtable UI would (no API request is logged).
    pub fn ui_create(&self, fields: Map<String, Value>) -> Result<String, String> {
        let mut g = self.lock();
        let cleaned = g.coerce_all(&fields, true).map_err(|e| e.message())?;
        Ok(g.insert_record(cleaned))
    }

    /// Edits a record as a person would: sets the given cells (`null` clears), bumps Last Modified.
    pub fn ui_edit(&self, id: &str, fields: Map<String, Value>) -> Result<(), String> {
        let mut g = self.lock();
        let cleaned = g.coerce_all(&fields, true).map_err(|e| e.message())?;
        let seq = *g.index.get(id).ok_or_else(|| format!("no record {id}"))?;
        let rec = g
            .records
            .get_mut(&seq)
            .ok_or_else(|| format!("no record {id}"))?;
        apply(rec, cleaned, false);
        Ok(())
    }

    /// Deletes a record as a person would. False when there is no such record.
    pub fn ui_delete(&self, id: &str) -> bool {
        let mut g = self.lock();
        match g.index.remove(id) {
            Some(seq) => g.records.remove(&seq).is_some(),
            None => false,
        }
    }

    /// Every record as the API would return it (empty cells omitted), in table order.
    pub fn records(&self) -> Vec<Value> {
        let g = self.lock();
        g.records
            .values()
            .map(|r| g.render(r, false, None))
            .collect()
    }

    pub fn record(&self, id: &str) -> Option<Value> {
        let g = self.lock();
        g.find(id).map(|r| g.render(r, false, None))
    }

    pub fn record_count(&self) -> usize {
        self.lock().records.len()
    }

    /// Records whose `field` holds exactly `value`.
    pub fn find_by_field(&self, field: &str, value: &Value) -> Vec<Value> {
        let g = self.lock();
        g.records
            .values()
            .filter(|r| r.fields.get(field) == Some(value))
            .map(|r| g.render(r, false, None))
            .collect()
    }

    pub fn log(&self) -> Vec<LogEntry> {
        self.lock().log.clone()
    }

    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// API requests per kind (`list`, `get`, …) and in total (`total`).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let g = self.lock();
        let mut out = BTreeMap::new();
        for e in &g.log {
            if let Some(k) = e.kind {
                *out.entry(k.as_str().to_string()).or_insert(0) += 1;
                *out.entry("total".to_string()).or_insert(0) += 1;
            }
        }
        out
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn set_faults(&self, f: Faults) {
        self.lock().faults = f;
    }

    /// Changes the faults in place.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.lock().faults);
    }

    /// Forgets every list iterator: the next page of any pass gets
    /// `LIST_RECORDS_ITERATOR_NOT_AVAILABLE`.
    pub fn expire_offsets(&self) {
        self.lock().iterators.clear();
    }

    /// Back to the start state: the seeded records only, no log, the configured faults.
    pub fn reset(&self) {
        {
            let mut g = self.lock();
            g.records.clear();
            g.index.clear();
            g.iterators.clear();
            g.log.clear();
            g.rate.clear();
            g.faults = self.cfg.faults.clone();
            g.rng = StdRng::seed_from_u64(self.cfg.seed);
        }
        self.seed(self.cfg.records);
    }

    pub(crate) fn elapsed_us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_micros() as u64
    }
}

/// Sets cells (`None` clears); with `replace`, clears every cell not given. Bumps Last Modified.
pub(crate) fn apply(rec: &mut SimRecord, cells: Vec<(String, Option<Value>)>, replace: bool) {
    if replace {
        rec.fields.clear();
    }
    for (k, v) in cells {
        match v {
            Some(v) => rec.fields.insert(k, v),
            None => rec.fields.remove(&k),
        };
    }
    rec.modified = now_secs();
}

/// Whether Airtable leaves this value out of a record (`""`, `[]`, `false`, null; `0` stays).
pub(crate) fn is_empty_cell(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false))
        || v.as_str().is_some_and(str::is_empty)
        || v.as_array().is_some_and(Vec::is_empty)
}

impl Inner {
    pub fn field_def(&self, name_or_id: &str) -> Option<&FieldDef> {
        self.schema
            .iter()
            .find(|f| f.name == name_or_id || f.id == name_or_id)
    }

    pub fn find(&self, id: &str) -> Option<&SimRecord> {
        self.index.get(id).and_then(|s| self.records.get(s))
    }

    pub fn find_mut(&mut self, id: &str) -> Option<&mut SimRecord> {
        let seq = *self.index.get(id)?;
        self.records.get_mut(&seq)
    }

    /// Adds a record with already-validated cells; returns its id.
    pub fn insert_record(&mut self, cells: impl IntoCells) -> String {
        let id = loop {
            let id = new_id(&mut self.rng, "rec");
            if !self.index.contains_key(&id) {
                break id;
            }
        };
        let now = now_secs();
        let mut rec = SimRecord {
            id: id.clone(),
            created: now,
            modified: now,
            fields: Map::new(),
        };
        apply(&mut rec, cells.into_cells(), false);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.index.insert(id.clone(), seq);
        self.records.insert(seq, rec);
        id
    }

    /// A cell as the API shows it, computed fields included (`None` when empty).
    pub fn cell(&self, rec: &SimRecord, def: &FieldDef) -> Option<Value> {
        match def.ty {
            FieldType::LastModified => Some(json!(fmt_time(rec.modified))),
            FieldType::CreatedTime => Some(json!(fmt_time(rec.created))),
            _ => rec
                .fields
                .get(&def.name)
                .filter(|v| !is_empty_cell(v))
                .cloned(),
        }
    }

    /// `{id, createdTime, fields}`, keyed by name or field id, restricted to `only` when given.
    pub fn render(&self, rec: &SimRecord, by_id: bool, only: Option<&[String]>) -> Value {
        let mut fields = Map::new();
        for def in &self.schema {
            if let Some(only) = only
                && !only.iter().any(|n| *n == def.name || *n == def.id)
            {
                continue;
            }
            if let Some(v) = self.cell(rec, def) {
                fields.insert(
                    if by_id {
                        def.id.clone()
                    } else {
                        def.name.clone()
                    },
                    v,
                );
            }
        }
        json!({"id": rec.id, "createdTime": fmt_time(rec.created), "fields": fields})
    }
}

/// Cells to store: (field name, value or `None` to clear).
pub(crate) trait IntoCells {
    fn into_cells(self) -> Vec<(String, Option<Value>)>;
}

impl IntoCells for Vec<(String, Option<Value>)> {
    fn into_cells(self) -> Vec<(String, Option<Value>)> {
        self
    }
}

impl IntoCells for Map<String, Value> {
    fn into_cells(self) -> Vec<(String, Option<Value>)> {
        self.into_iter().map(|(k, v)| (k, Some(v))).collect()
    }
}

/// How long a list iterator lives without use.
pub(crate) fn iterator_alive(it: &ListIter, ttl: Duration) -> bool {
    it.touched.elapsed() <= ttl
}
