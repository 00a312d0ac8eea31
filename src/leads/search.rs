//! Full-text search over name, company, email, title, location and industry (SQLite FTS5).
//!
//! User text is never passed to FTS5 as syntax: it is split into words (letters and digits), each
//! word is quoted and made a prefix (`"acm"*`), and the words are ANDed. So quotes, `*`, `NEAR`,
//! `AND`/`OR`, column filters or unbalanced parentheses in the input are just text, and a query
//! can never be a syntax error. Ranking is bm25 with a name match weighted most.
//!
//! This module is SQLite-specific by nature; a PostgreSQL backend would use `tsvector` here.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;

use crate::db::models::Lead;
use crate::db::schema::leads;
use crate::error::AppError;

pub const MAX_QUERY_CHARS: usize = 256;
pub const MAX_TERMS: usize = 12;

/// The triggers that keep `leads_fts` in step with `leads` (migration `initial`). A large load
/// drops them and rebuilds the index once at the end (`crate::leads::bulk`).
pub const INDEX_TRIGGERS: [&str; 3] = ["leads_fts_insert", "leads_fts_delete", "leads_fts_update"];

/// Builds the full-text index again from every row of `leads`, in one pass.
pub fn rebuild_index(conn: &mut SqliteConnection) -> Result<(), AppError> {
    diesel::sql_query("INSERT INTO leads_fts (leads_fts) VALUES ('rebuild')").execute(conn)?;
    Ok(())
}

/// The FTS5 query for user text, or `None` when it holds no searchable word.
pub fn fts_query(input: &str) -> Result<Option<String>, AppError> {
    if input.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::validation(
            "query",
            format!("is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    let terms: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_TERMS)
        .map(|w| format!("\"{}\"*", w.to_lowercase()))
        .collect();
    Ok(if terms.is_empty() {
        None
    } else {
        Some(terms.join(" "))
    })
}

#[derive(QueryableByName)]
struct Hit {
    #[diesel(sql_type = BigInt)]
    rowid: i64,
}

/// Leads matching `input`, best first, without deleted ones.
pub fn search(conn: &mut SqliteConnection, input: &str, first: i64) -> Result<Vec<Lead>, AppError> {
    let first = crate::leads::query::check_first(first)?;
    let Some(q) = fts_query(input)? else {
        return Ok(Vec::new());
    };
    // bm25 weights: full_name, company, email, title, location, industry.
    let hits: Vec<Hit> = diesel::sql_query(
        "SELECT f.rowid AS rowid FROM leads_fts f JOIN leads l ON l.rid = f.rowid \
         WHERE leads_fts MATCH ? AND l.deleted_at IS NULL \
         ORDER BY bm25(leads_fts, 10.0, 6.0, 4.0, 2.0, 1.0, 1.0), f.rowid LIMIT ?",
    )
    .bind::<Text, _>(&q)
    .bind::<BigInt, _>(first)
    .load(conn)?;
    let rids: Vec<i64> = hits.iter().map(|h| h.rowid).collect();
    let mut found: Vec<(i64, Lead)> = leads::table
        .filter(leads::rid.eq_any(&rids))
        .select((leads::rid, Lead::as_select()))
        .load(conn)?;
    found.sort_by_key(|(rid, _)| rids.iter().position(|r| r == rid));
    Ok(found.into_iter().map(|(_, l)| l).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_never_fts_syntax() {
        assert_eq!(fts_query("acme").unwrap().as_deref(), Some("\"acme\"*"));
        assert_eq!(
            fts_query("Jane \"Doe\" NEAR(x) OR *").unwrap().as_deref(),
            Some("\"jane\"* \"doe\"* \"near\"* \"x\"* \"or\"*")
        );
        assert_eq!(fts_query("((( ''' ***").unwrap(), None);
        assert!(fts_query(&"a".repeat(300)).is_err());
    }
}
