//! Duplicate detection (SPEC §11): is a new or imported lead one we already have?
//!
//! The rules, tried in this order; the first that finds a live (not deleted) lead wins:
//!
//! 1. `LINKEDIN`: the same normalised LinkedIn profile (`keys::linkedin_key`), an index lookup.
//! 2. `EMAIL`: the same email, trimmed and lower-cased (`keys::email_key`), an index lookup.
//! 3. `NAME_COMPANY`: name *and* company each at least [`THRESHOLD`] similar, after
//!    normalising case, accents, punctuation and legal suffixes (`keys::name_company_key`).
//!    A fuzzy match merges only when no identifying field conflicts: two leads whose LinkedIn
//!    profiles are both known and differ, or whose emails are both known and differ, are two
//!    people however alike their names ("Hanna Kim <hanna.kim@gmail.com>" is not "Hannah Kim
//!    <hannah.kim@helixbio.com>"). Such a candidate is not a match: the lead is created, and
//!    [`candidate_pairs`] lists the pair with its score for a person to decide.
//!
//! **Similarity** is [`strsim::normalized_levenshtein`] (1 - edit distance / longer length). We
//! chose it over Jaro-Winkler because Jaro-Winkler rewards a shared prefix: "acme labs" and
//! "acme systems" (two different companies) score about 0.88 with it, while a real typo ("jon
//! smith" / "john smith", 0.90) scores well with both. An edit ratio treats both ends of a name
//! alike and is what people mean by "85 % the same".
//!
//! **Blocking**: fuzzy matching never looks at every lead. A lead's candidates come from two range
//! scans of partial indexes over live leads (migration `duplicate_blocking`):
//! - same `company_key` and a name starting with the same letter (catches typos in names), and
//! - exactly the same normalised name at any company (catches "Acme Labs" / "Acme Lab").
//!
//! Each block is capped at [`BLOCK_LIMIT`] rows. A pair with a typo in both the name's first
//! letter and the company is not found; that is the price of never scanning.
//!
//! Merging (what happens once a match is found) lives in `crate::leads::merge`.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::models::Lead;
use crate::db::schema::leads;
use crate::error::AppError;

/// Name and company must each be at least this similar.
pub const THRESHOLD: f64 = 0.85;
/// Most candidates read from one block.
pub const BLOCK_LIMIT: i64 = 1000;
/// The indexes [`matches()`] looks leads up by (migrations `initial` and `duplicate_blocking`). A
/// large load keeps these and defers the upkeep of every other index on `leads` to its end
/// (`crate::leads::bulk`), so this must name every index a lookup or a merge needs, or each one
/// becomes a scan of the table; the test of that load checks the query plans.
pub const LOOKUP_INDEXES: [&str; 4] = [
    "leads_linkedin_key",
    "leads_email_key",
    "leads_dedup_block",
    "leads_dedup_name",
];

/// Which rule found a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    Linkedin,
    Email,
    NameCompany,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Linkedin => "LINKEDIN",
            Rule::Email => "EMAIL",
            Rule::NameCompany => "NAME_COMPANY",
        }
    }
}

/// An existing lead that a lead duplicates.
#[derive(Debug, Clone)]
pub struct Match {
    pub lead: Lead,
    pub rule: Rule,
    /// 1.0 for the exact rules; the lower of name and company similarity for `NAME_COMPANY`.
    pub score: f64,
}

/// Similarity of two normalised strings, 0..=1.
pub fn similarity(a: &str, b: &str) -> f64 {
    strsim::normalized_levenshtein(a, b)
}

/// The `NAME_COMPANY` score of two `name|company` keys: the lower of the two similarities.
pub fn name_company_score(a: &str, b: &str) -> Option<f64> {
    let (an, ac) = a.split_once('|')?;
    let (bn, bc) = b.split_once('|')?;
    Some(similarity(an, bn).min(similarity(ac, bc)))
}

/// Whether two values of an identifying key (LinkedIn profile, email) are both known and differ.
pub fn contradicts(a: Option<&str>, b: Option<&str>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x != y)
}

/// Whether two leads are known to be different people: their LinkedIn profiles, or their
/// emails, are both known and differ (SPEC §11). A fuzzy match between them never merges.
pub fn different_people(a: &Lead, b: &Lead) -> bool {
    contradicts(a.linkedin_key.as_deref(), b.linkedin_key.as_deref())
        || contradicts(a.email_key.as_deref(), b.email_key.as_deref())
}

/// Live leads. A fixed type, not a boxed query: diesel caches a statement of a fixed type by its
/// type, but rebuilds a boxed one's SQL on every call, and the lookups run on every create.
type Live = diesel::dsl::Filter<leads::table, diesel::dsl::IsNull<leads::deleted_at>>;

fn live() -> Live {
    leads::table.filter(leads::deleted_at.is_null())
}

/// The name part of a `name|company` key.
fn name_of(key: &str) -> &str {
    key.split_once('|').map_or(key, |(name, _)| name)
}

/// The existing live lead that `lead` duplicates, if any: the first of [`matches()`]. `lead` itself
/// (same id) is never its own duplicate, so this works for stored leads too.
pub fn find(conn: &mut SqliteConnection, lead: &Lead) -> Result<Option<Match>, AppError> {
    Ok(matches(conn, lead, 1)?.into_iter().next())
}

/// Up to `limit` live leads that `lead` duplicates, strongest first: the exact rules in order
/// (LinkedIn profile, then email; oldest lead first), then name + company by score. A lead is
/// listed once, under its strongest rule. Stops reading as soon as `limit` are found, so
/// [`find`] (limit 1) costs one indexed lookup when the LinkedIn profile matches.
pub fn matches(
    conn: &mut SqliteConnection,
    lead: &Lead,
    limit: usize,
) -> Result<Vec<Match>, AppError> {
    let mut out: Vec<Match> = Vec::new();
    let mut seen: HashSet<String> = HashSet::from([lead.id.clone()]);
    let exact = [
        (lead.linkedin_key.clone(), Rule::Linkedin),
        (lead.email_key.clone(), Rule::Email),
    ];
    for (key, rule) in exact {
        let Some(key) = key else { continue };
        if out.len() >= limit {
            return Ok(out);
        }
        // At most `out.len()` of these are listed already (under LinkedIn), so `limit` rows always
        // hold the `limit - out.len()` still wanted. One query per column, not one boxed query
        // (see [`Live`]).
        let limit_rows = i64::try_from(limit).unwrap_or(i64::MAX);
        macro_rules! same_key {
            ($column:expr) => {
                live()
                    .filter($column.eq(&key))
                    .filter(leads::id.ne(&lead.id))
                    .order(leads::rid)
                    .select(Lead::as_select())
                    .limit(limit_rows)
                    .load::<Lead>(conn)?
            };
        }
        let found = match rule {
            Rule::Linkedin => same_key!(leads::linkedin_key),
            _ => same_key!(leads::email_key),
        };
        for found in found {
            if out.len() < limit && seen.insert(found.id.clone()) {
                out.push(Match {
                    lead: found,
                    rule,
                    score: 1.0,
                });
            }
        }
    }
    let (Some(key), Some(company)) = (&lead.name_company_key, &lead.company_key) else {
        return Ok(out);
    };
    if out.len() >= limit {
        return Ok(out);
    }
    let mut scored: Vec<(f64, i64)> = candidates(conn, key, company)?
        .into_iter()
        .filter_map(|(rid, other)| name_company_score(key, &other).map(|s| (s, rid)))
        .filter(|(s, _)| *s >= THRESHOLD)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (score, rid) in scored {
        if out.len() >= limit {
            break;
        }
        let found: Lead = leads::table
            .filter(leads::rid.eq(rid))
            .select(Lead::as_select())
            .first(conn)?;
        if seen.contains(&found.id) || different_people(&found, lead) {
            continue;
        }
        seen.insert(found.id.clone());
        out.push(Match {
            lead: found,
            rule: Rule::NameCompany,
            score,
        });
    }
    Ok(out)
}

/// The two blocks of a `name|company` key: `(rid, name_company_key)` of live leads.
fn candidates(
    conn: &mut SqliteConnection,
    key: &str,
    company: &str,
) -> Result<Vec<(i64, String)>, AppError> {
    let name = name_of(key);
    let mut out: Vec<(i64, String)> = Vec::new();
    let mut seen = HashSet::new();
    // Same company, name starting with the same letter (normalised names are ASCII).
    if let Some(first) = name.chars().next() {
        let lo = first.to_string();
        let hi = char::from_u32(first as u32 + 1)
            .map(String::from)
            .unwrap_or_else(|| "\u{7f}".into());
        let rows: Vec<(i64, Option<String>)> = live()
            .filter(leads::company_key.eq(company))
            .filter(leads::name_company_key.ge(lo))
            .filter(leads::name_company_key.lt(hi))
            .select((leads::rid, leads::name_company_key))
            .limit(BLOCK_LIMIT)
            .load(conn)?;
        for (rid, k) in rows {
            if let Some(k) = k
                && seen.insert(rid)
            {
                out.push((rid, k));
            }
        }
    }
    // Same name, any company: `name|` <= key < `name}` ('}' follows '|').
    let rows: Vec<(i64, Option<String>)> = live()
        .filter(leads::name_company_key.ge(format!("{name}|")))
        .filter(leads::name_company_key.lt(format!("{name}}}")))
        .select((leads::rid, leads::name_company_key))
        .limit(BLOCK_LIMIT)
        .load(conn)?;
    for (rid, k) in rows {
        if let Some(k) = k
            && seen.insert(rid)
        {
            out.push((rid, k));
        }
    }
    Ok(out)
}

/// The duplicate keys of a set of leads, to answer "could [`find`] return one of these leads?"
/// without a query. `leads::bulk` keeps one for the leads it has placed but not written yet, and
/// one for the stored leads when it places many. [`KeySet::might_match`] never says no wrongly:
/// it applies the same rules over the same blocks as [`matches()`], without the blocks' row cap, so
/// a `false` proves [`find`] would find none of these leads. A `true` only makes the caller ask
/// [`find`], so an occasional false alarm costs a query, never a result.
///
/// Its sets use foldhash, not the standard library's SipHash: the set is hashed into for every
/// lead placed and every key of every batch written, and foldhash took 1.8 % off the
/// instructions of a 100,000-record import (callgrind). foldhash seeds itself per process; the
/// keys come from the operator's own files and stored leads.
#[derive(Debug, Default)]
pub struct KeySet {
    linkedin: foldhash::HashSet<String>,
    email: foldhash::HashSet<String>,
    /// `company_key` -> (`name_company_key`, `linkedin_key`), for the first block.
    by_company: foldhash::HashMap<String, Vec<(String, Option<String>)>>,
    /// Normalised name -> the same, for the second block.
    by_name: foldhash::HashMap<String, Vec<(String, Option<String>)>>,
}

impl KeySet {
    pub fn add(&mut self, lead: &Lead) {
        self.add_keys(
            lead.linkedin_key.clone(),
            lead.email_key.clone(),
            lead.name_company_key.clone(),
            lead.company_key.clone(),
        );
    }

    fn add_keys(
        &mut self,
        linkedin: Option<String>,
        email: Option<String>,
        key: Option<String>,
        company: Option<String>,
    ) {
        if let (Some(key), Some(company)) = (key, company) {
            let name = name_of(&key);
            self.by_name
                .entry(name.to_string())
                .or_default()
                .push((key.clone(), linkedin.clone()));
            self.by_company
                .entry(company)
                .or_default()
                .push((key, linkedin.clone()));
        }
        if let Some(k) = linkedin {
            self.linkedin.insert(k);
        }
        if let Some(k) = email {
            self.email.insert(k);
        }
    }

    /// Adds the keys of `other` (moved, not copied).
    pub fn absorb(&mut self, other: KeySet) {
        self.linkedin.extend(other.linkedin);
        self.email.extend(other.email);
        for (company, keys) in other.by_company {
            self.by_company.entry(company).or_default().extend(keys);
        }
        for (name, keys) in other.by_name {
            self.by_name.entry(name).or_default().extend(keys);
        }
    }

    /// The keys of every live lead (one read of four columns; about 0.1 s at 100,000 leads).
    pub fn of_live_leads(conn: &mut SqliteConnection) -> Result<KeySet, AppError> {
        type Keys = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Keys> = live()
            .select((
                leads::linkedin_key,
                leads::email_key,
                leads::name_company_key,
                leads::company_key,
            ))
            .load(conn)?;
        let mut set = KeySet::default();
        for (linkedin, email, key, company) in rows {
            set.add_keys(linkedin, email, key, company);
        }
        Ok(set)
    }

    /// Whether `lead` would match one of these leads by any rule of [`matches()`].
    pub fn might_match(&self, lead: &Lead) -> bool {
        if lead
            .linkedin_key
            .as_ref()
            .is_some_and(|k| self.linkedin.contains(k))
            || lead
                .email_key
                .as_ref()
                .is_some_and(|k| self.email.contains(k))
        {
            return true;
        }
        let (Some(key), Some(company)) = (&lead.name_company_key, &lead.company_key) else {
            return false;
        };
        let name = name_of(key);
        let first = name.bytes().next();
        let same_company = self
            .by_company
            .get(company)
            .into_iter()
            .flatten()
            .filter(|(other, _)| other.bytes().next() == first);
        let same_name = self.by_name.get(name).into_iter().flatten();
        same_company.chain(same_name).any(|(other, linkedin)| {
            name_company_score(key, other).is_some_and(|s| s >= THRESHOLD)
                && !contradicts(linkedin.as_deref(), lead.linkedin_key.as_deref())
        })
    }
}

/// A pair of live leads that look alike (`duplicateCandidates`).
#[derive(Debug, Clone)]
pub struct Pair {
    pub a: Lead,
    pub b: Lead,
    pub rule: Rule,
    pub score: f64,
}

/// How many following leads of a sorted block each lead is compared with (sorted neighbourhood):
/// bounds the work of a huge block (thousands of leads at one company) to `n * WINDOW`.
pub const WINDOW: usize = 50;

/// Pairs of live leads that look alike, exact rules first (LinkedIn, then email), then
/// `NAME_COMPANY` by score, highest first; at most `first`. Nothing is merged.
///
/// Exact pairs come from self-joins on the indexed keys. Fuzzy pairs come from one read of the
/// live leads' keys, grouped in memory by the same two blocks as [`find`], each block sorted by
/// name and compared within a window of [`WINDOW`].
///
/// `stop` is checked while the blocks are compared (the long part: about a second at 100,000
/// leads); once it is set the scan ends with `LIMIT`, so a caller whose time ran out does not
/// leave it running (`graphql::limits::Cancel`).
pub fn candidate_pairs(
    conn: &mut SqliteConnection,
    first: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Vec<Pair>, AppError> {
    let mut pairs: Vec<(i64, i64, Rule, f64)> = Vec::new();
    let mut seen: HashSet<(i64, i64)> = HashSet::new();
    for (rule, column) in [(Rule::Linkedin, "linkedin_key"), (Rule::Email, "email_key")] {
        if pairs.len() >= first {
            break;
        }
        let sql = format!(
            "SELECT a.rid AS a, b.rid AS b FROM leads a JOIN leads b ON b.{column} = a.{column} AND b.rid > a.rid \
             WHERE a.{column} IS NOT NULL AND a.deleted_at IS NULL AND b.deleted_at IS NULL ORDER BY a.rid, b.rid LIMIT {}",
            first.saturating_mul(2)
        );
        for p in diesel::sql_query(sql).load::<RidPair>(conn)? {
            if seen.insert((p.a, p.b)) {
                pairs.push((p.a, p.b, rule, 1.0));
            }
        }
    }
    pairs.truncate(first);
    if pairs.len() < first {
        let mut fuzzy = fuzzy_pairs(conn, &seen, stop)?;
        fuzzy.sort_by(|x, y| y.3.total_cmp(&x.3).then(x.0.cmp(&y.0)).then(x.1.cmp(&y.1)));
        pairs.extend(fuzzy.into_iter().take(first - pairs.len()));
    }
    let rids: Vec<i64> = pairs.iter().flat_map(|p| [p.0, p.1]).collect();
    let loaded: Vec<(i64, Lead)> = leads::table
        .filter(leads::rid.eq_any(&rids))
        .select((leads::rid, Lead::as_select()))
        .load(conn)?;
    let by_rid: std::collections::HashMap<i64, Lead> = loaded.into_iter().collect();
    Ok(pairs
        .into_iter()
        .filter_map(|(a, b, rule, score)| {
            Some(Pair {
                a: by_rid.get(&a)?.clone(),
                b: by_rid.get(&b)?.clone(),
                rule,
                score,
            })
        })
        .collect())
}

#[derive(diesel::QueryableByName)]
struct RidPair {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    a: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    b: i64,
}

struct KeyRow {
    rid: i64,
    key: String,
    name: String,
    company: String,
}

fn fuzzy_pairs(
    conn: &mut SqliteConnection,
    exact: &HashSet<(i64, i64)>,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Vec<(i64, i64, Rule, f64)>, AppError> {
    let rows: Vec<(i64, Option<String>)> = live()
        .filter(leads::name_company_key.is_not_null())
        .select((leads::rid, leads::name_company_key))
        .load(conn)?;
    let mut keys: Vec<KeyRow> = rows
        .into_iter()
        .filter_map(|(rid, key)| {
            let key = key?;
            let (name, company) = key.split_once('|')?;
            let (name, company) = (name.to_string(), company.to_string());
            Some(KeyRow {
                rid,
                key,
                name,
                company,
            })
        })
        .collect();
    let mut found: Vec<(i64, i64, Rule, f64)> = Vec::new();
    let mut seen: HashSet<(i64, i64)> = exact.clone();
    // Block 1: same company, same first letter of the name; sorted by name within.
    keys.sort_by(|a, b| {
        (
            a.company.as_str(),
            a.name.as_bytes().first(),
            a.name.as_str(),
        )
            .cmp(&(
                b.company.as_str(),
                b.name.as_bytes().first(),
                b.name.as_str(),
            ))
    });
    compare_blocks(
        &keys,
        |r| (r.company.clone(), r.name.bytes().next()),
        &mut seen,
        &mut found,
        stop,
    )?;
    // Block 2: same name, any company; sorted by company within.
    keys.sort_by(|a, b| {
        (a.name.as_str(), a.company.as_str()).cmp(&(b.name.as_str(), b.company.as_str()))
    });
    compare_blocks(
        &keys,
        |r| (r.name.clone(), None),
        &mut seen,
        &mut found,
        stop,
    )?;
    Ok(found)
}

fn compare_blocks(
    keys: &[KeyRow],
    block: impl Fn(&KeyRow) -> (String, Option<u8>),
    seen: &mut HashSet<(i64, i64)>,
    found: &mut Vec<(i64, i64, Rule, f64)>,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), AppError> {
    let mut start = 0;
    while start < keys.len() {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(AppError::Limit(
                "the duplicate scan was stopped: its operation ran out of time".into(),
            ));
        }
        let b = block(&keys[start]);
        let mut end = start + 1;
        while end < keys.len() && block(&keys[end]) == b {
            end += 1;
        }
        let group = &keys[start..end];
        for (i, x) in group.iter().enumerate() {
            for y in group.iter().skip(i + 1).take(WINDOW) {
                let pair = (x.rid.min(y.rid), x.rid.max(y.rid));
                // Pairs whose identifying fields conflict are listed too: they are never merged
                // on their own, so this list is where a person sees them.
                if seen.contains(&pair) {
                    continue;
                }
                if let Some(score) = name_company_score(&x.key, &y.key)
                    && score >= THRESHOLD
                {
                    seen.insert(pair);
                    found.push((pair.0, pair.1, Rule::NameCompany, score));
                }
            }
        }
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_inclusive_and_exact() {
        // 1 - 3/20 = 0.85 exactly: a match. 1 - 3/19 = 0.842: not.
        let twenty = "abcdefghijklmnopqrst";
        assert_eq!(similarity(twenty, "abcdefghijklmnopqXYZ"), 0.85);
        assert!(
            name_company_score(&format!("{twenty}|acme"), "abcdefghijklmnopqXYZ|acme").unwrap()
                >= THRESHOLD
        );
        let nineteen = "abcdefghijklmnopqrs";
        assert!(similarity(nineteen, "abcdefghijklmnopXYZ") < THRESHOLD);
    }

    #[test]
    fn levenshtein_tells_companies_with_a_shared_word_apart() {
        assert!(similarity("acme labs", "acme systems") < THRESHOLD);
        assert!(similarity("jon smith", "john smith") >= THRESHOLD);
        assert_eq!(
            name_company_score("jane doe|acme", "jane doe|globex"),
            Some(similarity("acme", "globex"))
        );
        assert_eq!(name_company_score("jane doe", "jane doe|acme"), None);
    }

    /// A scan whose caller ran out of time stops with LIMIT instead of running on.
    #[test]
    fn the_candidate_scan_stops_when_told() {
        use std::sync::atomic::AtomicBool;
        let (_dir, db) = crate::db::testing::migrated();
        let mut conn = db.conn().unwrap();
        crate::seed::seed(&mut conn, 300, 3, false).unwrap();
        assert!(candidate_pairs(&mut conn, 50, &AtomicBool::new(false)).is_ok());
        let err = candidate_pairs(&mut conn, 50, &AtomicBool::new(true)).unwrap_err();
        assert!(matches!(err, AppError::Limit(_)), "{err}");
    }

    #[test]
    fn a_different_known_profile_is_a_different_person() {
        assert!(contradicts(Some("in/a"), Some("in/b")));
        assert!(!contradicts(Some("in/a"), None));
        assert!(!contradicts(Some("in/a"), Some("in/a")));
    }
}
