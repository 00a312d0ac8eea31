//! Reading leads: filters, orderings and keyset (cursor) pagination.
//!
//! Pagination is keyset, not OFFSET: a cursor holds the sort values of the last row plus its
//! `rid`, and the next page starts strictly after it, so a page costs the same at row 50 and at
//! row 90,000 and concurrent inserts never shift rows between pages. The cursor also names the
//! ordering it was made for; using it with another ordering is an error, not a silent jump.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};
use serde::{Deserialize, Serialize};

use crate::db::models::LeadRow;
use crate::db::schema::leads;
use crate::error::AppError;

pub const MAX_FIRST: i64 = 1000;

#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub status: Option<Vec<String>>,
    pub company: Option<String>,
    pub source: Option<String>,
    pub industry: Option<String>,
    pub location: Option<String>,
    pub enriched: Option<bool>,
    pub verified: Option<bool>,
    pub needs_enrichment: Option<bool>,
    pub sync_state: Option<Vec<String>>,
    pub score_min: Option<f64>,
    pub score_max: Option<f64>,
    pub created_after: Option<NaiveDateTime>,
    pub created_before: Option<NaiveDateTime>,
    pub updated_after: Option<NaiveDateTime>,
    pub updated_before: Option<NaiveDateTime>,
    pub campaign_id: Option<String>,
    pub include_deleted: bool,
    /// Full-text search (same syntax rules as `searchLeads`).
    pub search: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderKey {
    CreatedAt,
    UpdatedAt,
    FullName,
    Company,
    Status,
    Score,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub key: OrderKey,
    pub dir: Direction,
}

/// The default ordering: most recently updated first.
pub const DEFAULT_ORDER: &[Order] = &[Order {
    key: OrderKey::UpdatedAt,
    dir: Direction::Desc,
}];

/// Sort values of the last row of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum SortValue {
    Num(f64),
    Text(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    /// The ordering this cursor belongs to.
    o: Vec<Order>,
    /// Sort values, one per ordering key.
    v: Vec<SortValue>,
    /// Row id, the final tie-breaker.
    r: i64,
}

fn invalid_cursor() -> AppError {
    AppError::validation(
        "after",
        "invalid cursor: pass a cursor returned by the same query",
    )
}

fn sort_value(row: &LeadRow, key: OrderKey) -> SortValue {
    let l = &row.lead;
    match key {
        OrderKey::CreatedAt => SortValue::Text(ts(l.created_at)),
        OrderKey::UpdatedAt => SortValue::Text(ts(l.updated_at)),
        OrderKey::FullName => SortValue::Text(l.full_name.clone()),
        OrderKey::Company => SortValue::Text(l.company.clone().unwrap_or_default()),
        OrderKey::Status => SortValue::Text(l.status.clone()),
        OrderKey::Score => SortValue::Num(l.score.unwrap_or(NULL_SCORE)),
    }
}

/// Null scores sort as this value (last when descending).
const NULL_SCORE: f64 = -1e300;

fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.f").to_string()
}

pub fn encode_cursor(order: &[Order], row: &LeadRow) -> String {
    let c = Cursor {
        o: order.to_vec(),
        v: order.iter().map(|o| sort_value(row, o.key)).collect(),
        r: row.rid,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default())
}

fn decode_cursor(s: &str, order: &[Order]) -> Result<Cursor, AppError> {
    if s.len() > 4096 {
        return Err(invalid_cursor());
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim())
        .map_err(|_| invalid_cursor())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid_cursor())?;
    if c.o != order || c.v.len() != order.len() {
        return Err(invalid_cursor());
    }
    for (o, v) in order.iter().zip(&c.v) {
        let ok = match (o.key, v) {
            (OrderKey::Score, SortValue::Num(_)) => true,
            (OrderKey::CreatedAt | OrderKey::UpdatedAt, SortValue::Text(t)) => {
                NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").is_ok()
            }
            (OrderKey::FullName | OrderKey::Company | OrderKey::Status, SortValue::Text(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(invalid_cursor());
        }
    }
    Ok(c)
}

type BoxedCond = Box<dyn BoxableExpression<leads::table, Sqlite, SqlType = Bool>>;

/// The SQL expression a key sorts on. Columns are fixed names, never user input.
fn key_sql(key: OrderKey) -> &'static str {
    match key {
        OrderKey::CreatedAt => "leads.created_at",
        OrderKey::UpdatedAt => "leads.updated_at",
        OrderKey::FullName => "leads.full_name",
        OrderKey::Company => "COALESCE(leads.company, '')",
        OrderKey::Status => "leads.status",
        OrderKey::Score => "COALESCE(leads.score, -1e300)",
    }
}

/// `key <op> value` with the value bound as a parameter.
fn compare(key: OrderKey, op: &str, value: &SortValue) -> BoxedCond {
    let lhs = format!("{} {op} ", key_sql(key));
    match value {
        SortValue::Num(n) => Box::new(sql::<Bool>(&lhs).bind::<diesel::sql_types::Double, _>(*n)),
        SortValue::Text(t) => Box::new(sql::<Bool>(&lhs).bind::<Text, _>(t.clone())),
    }
}

/// Rows strictly after the cursor in `order`:
/// `k1 > v1 OR (k1 = v1 AND (k2 > v2 OR (k2 = v2 AND ... rid > r)))` (`<` for descending keys).
fn after_cursor(order: &[Order], c: &Cursor) -> BoxedCond {
    let last_dir = order.last().map_or(Direction::Desc, |o| o.dir);
    let mut cond: BoxedCond = match last_dir {
        Direction::Asc => Box::new(leads::rid.gt(c.r)),
        Direction::Desc => Box::new(leads::rid.lt(c.r)),
    };
    for (o, v) in order.iter().zip(&c.v).rev() {
        let op = if o.dir == Direction::Asc { ">" } else { "<" };
        cond = Box::new(compare(o.key, op, v).or(compare(o.key, "=", v).and(cond)));
    }
    cond
}

/// The WHERE clause of a filter, shared by the page query and the count.
pub fn filter_cond(f: &LeadFilter) -> Result<BoxedCond, AppError> {
    let mut c: BoxedCond = if f.include_deleted {
        Box::new(sql::<Bool>("1 = 1"))
    } else {
        Box::new(leads::deleted_at.is_null())
    };
    macro_rules! and {
        ($e:expr) => {
            c = Box::new(c.and($e))
        };
    }
    if let Some(s) = &f.status {
        and!(leads::status.eq_any(s.clone()));
    }
    if let Some(company) = &f.company {
        let key = crate::leads::keys::normalize_company(company).unwrap_or_default();
        and!(leads::company_key.eq(key).assume_not_null());
    }
    if let Some(v) = &f.source {
        and!(leads::source.eq(v.clone()).assume_not_null());
    }
    if let Some(v) = &f.industry {
        and!(leads::industry.eq(v.clone()).assume_not_null());
    }
    if let Some(v) = &f.location {
        and!(leads::location.eq(v.clone()).assume_not_null());
    }
    if let Some(v) = f.enriched {
        and!(leads::enriched.eq(v));
    }
    if let Some(v) = f.verified {
        and!(leads::verified.eq(v));
    }
    if let Some(v) = f.needs_enrichment {
        and!(leads::needs_enrichment.eq(v));
    }
    if let Some(s) = &f.sync_state {
        and!(leads::sync_state.eq_any(s.clone()));
    }
    if let Some(v) = f.score_min {
        and!(leads::score.ge(v).assume_not_null());
    }
    if let Some(v) = f.score_max {
        and!(leads::score.le(v).assume_not_null());
    }
    if let Some(t) = f.created_after {
        and!(leads::created_at.ge(t));
    }
    if let Some(t) = f.created_before {
        and!(leads::created_at.lt(t));
    }
    if let Some(t) = f.updated_after {
        and!(leads::updated_at.ge(t));
    }
    if let Some(t) = f.updated_before {
        and!(leads::updated_at.lt(t));
    }
    if let Some(id) = &f.campaign_id {
        and!(
            sql::<Bool>("leads.id IN (SELECT lead_id FROM campaign_leads WHERE campaign_id = ")
                .bind::<Text, _>(id.clone())
                .sql(")")
        );
    }
    if let Some(q) = &f.search {
        let fts = crate::leads::search::fts_query(q)?;
        match fts {
            Some(fts) => and!(
                sql::<Bool>("leads.rid IN (SELECT rowid FROM leads_fts WHERE leads_fts MATCH ")
                    .bind::<Text, _>(fts)
                    .sql(")")
            ),
            None => and!(sql::<Bool>("1 = 0")),
        }
    }
    Ok(c)
}

/// One page of leads.
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<LeadRow>,
    pub has_next: bool,
}

pub fn check_first(first: i64) -> Result<i64, AppError> {
    if first < 0 {
        return Err(AppError::validation("first", "must not be negative"));
    }
    if first > MAX_FIRST {
        return Err(AppError::Limit(format!(
            "first is capped at {MAX_FIRST}; ask for fewer and page with after"
        )));
    }
    Ok(first)
}

pub fn list(
    conn: &mut SqliteConnection,
    filter: &LeadFilter,
    order: &[Order],
    first: i64,
    after: Option<&str>,
) -> Result<Page, AppError> {
    let first = check_first(first)?;
    let order = if order.is_empty() {
        DEFAULT_ORDER
    } else {
        order
    };
    let mut q = leads::table
        .select(LeadRow::as_select())
        .filter(filter_cond(filter)?)
        .into_boxed();
    if let Some(after) = after {
        let c = decode_cursor(after, order)?;
        q = q.filter(after_cursor(order, &c));
    }
    for o in order {
        let expr = key_sql(o.key);
        q = match o.dir {
            Direction::Asc => q.then_order_by(sql::<Text>(expr).asc()),
            Direction::Desc => q.then_order_by(sql::<Text>(expr).desc()),
        };
    }
    q = match order.last().map_or(Direction::Desc, |o| o.dir) {
        Direction::Asc => q.then_order_by(leads::rid.asc()),
        Direction::Desc => q.then_order_by(leads::rid.desc()),
    };
    let mut rows: Vec<LeadRow> = q.limit(first + 1).load(conn)?;
    let has_next = rows.len() as i64 > first;
    rows.truncate(first as usize);
    Ok(Page { rows, has_next })
}

pub fn count(conn: &mut SqliteConnection, filter: &LeadFilter) -> Result<i64, AppError> {
    Ok(leads::table
        .filter(filter_cond(filter)?)
        .count()
        .get_result(conn)?)
}
