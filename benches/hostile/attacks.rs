//! The attackers' requests (issue 15 items 6-8), how their answers are classified, and the
//! table of how they ended.

use rand::Rng;
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

/// 25 plain fields of a lead: `leads(first: 1000)` of these costs 26,001 of the read budget
/// (50,000), about the largest single list a read token may ask for.
pub const LEAD_FIELDS: &str = "id fullName email phone company companySize title website linkedinUrl \
     location industry source score status enriched enrichedAt contactedAt scrapedAt createdAt \
     updatedAt version airtableId syncState verified deletedAt";

/// A runaway recursive CTE: runs until the `sql` time limit (5 s) interrupts it.
pub const RUNAWAY_SQL: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

/// The costly requests of issue 15 that the attackers loop over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// Item 6: 600 aliases of `duplicateCandidates(first: 1000)`: over the budget.
    Duplicates600,
    /// Item 6: 600 aliases of `searchLeads(query: "acme", first: 1000)`: over the budget.
    Search600,
    /// Item 6: the largest list that fits: `leads(first: 1000)` with 25 fields.
    Leads1000,
    /// Item 6: one `duplicateCandidates(first: 1000)`, which fits: a scan of every lead's keys.
    Duplicates1000,
    /// Item 7 (admin): `SELECT hex(zeroblob(100000000))`: over the byte cap.
    Zeroblob,
    /// Item 7 (admin): a `WITH RECURSIVE` that never ends: interrupted by the time limit.
    Runaway,
    /// Item 8: 50 aliases of `lead(id: "rec…")` of records Airtable does not have.
    ReadThrough50,
}

pub const ATTACKS: [Attack; 7] = [
    Attack::Duplicates600,
    Attack::Search600,
    Attack::Leads1000,
    Attack::Duplicates1000,
    Attack::Zeroblob,
    Attack::Runaway,
    Attack::ReadThrough50,
];

impl Attack {
    pub fn name(self) -> &'static str {
        match self {
            Attack::Duplicates600 => "600 x duplicateCandidates(first: 1000)",
            Attack::Search600 => "600 x searchLeads(\"acme\", first: 1000)",
            Attack::Leads1000 => "leads(first: 1000), 25 fields",
            Attack::Duplicates1000 => "duplicateCandidates(first: 1000)",
            Attack::Zeroblob => "sql: hex(zeroblob(100000000))",
            Attack::Runaway => "sql: WITH RECURSIVE runaway",
            Attack::ReadThrough50 => "50 x lead(id: unknown rec id)",
        }
    }

    pub fn admin(self) -> bool {
        matches!(self, Attack::Zeroblob | Attack::Runaway)
    }

    /// How the server should answer it.
    pub fn expected(self) -> Ending {
        match self {
            Attack::Leads1000 | Attack::Duplicates1000 => Ending::Ok,
            _ => Ending::Limit,
        }
    }

    pub fn body(self, rng: &mut StdRng) -> Value {
        let aliases = |n: usize, field: &str| -> String {
            let mut q = String::from("{");
            for i in 0..n {
                q.push_str(&format!(" a{i}: {field}"));
            }
            q.push_str(" }");
            q
        };
        let query = match self {
            Attack::Duplicates600 => aliases(
                600,
                "duplicateCandidates(first: 1000) { a { id } b { id } score }",
            ),
            Attack::Search600 => aliases(
                600,
                "searchLeads(query: \"acme\", first: 1000) { id fullName }",
            ),
            Attack::Leads1000 => format!("{{ leads(first: 1000) {{ nodes {{ {LEAD_FIELDS} }} }} }}"),
            Attack::Duplicates1000 => {
                "{ duplicateCandidates(first: 1000) { a { id } b { id } score } }".into()
            }
            Attack::Zeroblob => {
                "{ sql(query: \"SELECT hex(zeroblob(100000000))\") { columns rows truncated elapsedMs } }"
                    .into()
            }
            Attack::Runaway => {
                return json!({
                    "query": "query($q: String!) { sql(query: $q) { rows truncated elapsedMs } }",
                    "variables": {"q": RUNAWAY_SQL},
                });
            }
            Attack::ReadThrough50 => {
                let mut q = String::from("{");
                for i in 0..50 {
                    let id: String = (0..14).map(|_| char::from(rng.sample(Alphanumeric))).collect();
                    q.push_str(&format!(" a{i}: lead(id: \"rec{id}\") {{ id fullName }}"));
                }
                q.push_str(" }");
                q
            }
        };
        json!({ "query": query })
    }
}

/// How an attacker's request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Refused or cut with `LIMIT` (every error has that code).
    Limit,
    /// Answered with data and no error.
    Ok,
    /// Anything else.
    Other,
    /// Still running when the grace after the attacked phase ran out.
    Unfinished,
}

/// The parts of a GraphQL answer the classification reads.
#[derive(Deserialize)]
pub struct Answer {
    data: Option<IgnoredAny>,
    errors: Option<Vec<AnswerError>>,
}

#[derive(Deserialize)]
pub struct AnswerError {
    message: String,
    extensions: Option<AnswerCode>,
}

#[derive(Deserialize)]
pub struct AnswerCode {
    code: Option<String>,
}

/// Classifies an answer; for `Other`, a short description of what came back.
pub fn classify(status: reqwest::StatusCode, body: &[u8]) -> (Ending, Option<String>) {
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        let text: String = String::from_utf8_lossy(body).chars().take(160).collect();
        return (
            Ending::Other,
            Some(format!("HTTP {status}, not JSON: {text}")),
        );
    };
    match answer.errors.as_deref() {
        None | Some([]) if answer.data.is_some() && status.is_success() => (Ending::Ok, None),
        Some(errors)
            if !errors.is_empty()
                && errors.iter().all(|e| {
                    e.extensions
                        .as_ref()
                        .and_then(|x| x.code.as_deref())
                        .is_some_and(|c| c == "LIMIT")
                }) =>
        {
            (Ending::Limit, None)
        }
        errors => {
            let first = errors.and_then(|e| e.first()).map_or_else(
                || "no data and no error".to_string(),
                |e| {
                    let code = e.extensions.as_ref().and_then(|x| x.code.clone());
                    let text: String = e.message.chars().take(160).collect();
                    format!("{}: {text}", code.unwrap_or_else(|| "no code".into()))
                },
            );
            (Ending::Other, Some(format!("HTTP {status}, {first}")))
        }
    }
}

/// One attacker request's record.
pub struct Sent {
    pub attack: Attack,
    pub ending: Ending,
    pub nanos: u64,
    pub note: Option<String>,
}

/// The attackers' requests by kind: how many, how each ended, how long they took.
pub fn print_attacks(sent: &[Sent], cycle: &[Attack]) {
    println!(
        "| attack | token | sent | LIMIT | ok | other | unfinished | expected | p50 ms | max ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|---:|---:|");
    let mut notes = Vec::new();
    for &attack in cycle {
        let mine: Vec<&Sent> = sent.iter().filter(|s| s.attack == attack).collect();
        let count = |e: Ending| mine.iter().filter(|s| s.ending == e).count();
        let mut nanos: Vec<u64> = mine.iter().map(|s| s.nanos).collect();
        nanos.sort_unstable();
        let ms = |q: f64| {
            if nanos.is_empty() {
                return f64::NAN;
            }
            let rank = ((q * nanos.len() as f64).ceil() as usize).clamp(1, nanos.len());
            nanos[rank - 1] as f64 / 1e6
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            attack.name(),
            if attack.admin() { "admin" } else { "read" },
            mine.len(),
            count(Ending::Limit),
            count(Ending::Ok),
            count(Ending::Other),
            count(Ending::Unfinished),
            match attack.expected() {
                Ending::Ok => "ok",
                _ => "LIMIT",
            },
            ms(0.5),
            ms(1.0),
        );
        if let Some(note) = mine.iter().find_map(|s| s.note.as_ref()) {
            notes.push(format!("{}: {note}", attack.name()));
        }
    }
    let total = |e: Ending| sent.iter().filter(|s| s.ending == e).count();
    println!(
        "| all | | {} | {} | {} | {} | {} | | | |\n",
        sent.len(),
        total(Ending::Limit),
        total(Ending::Ok),
        total(Ending::Other),
        total(Ending::Unfinished)
    );
    for note in notes {
        println!("other answer, first of its kind: {note}");
    }
    println!();
}
