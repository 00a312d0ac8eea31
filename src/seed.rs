//! Realistic, deterministic sample leads (`leadcache seed --count N`): the same `--seed` gives the
//! same leads (times are relative to the start of the current UTC day). Statuses are skewed like a
//! real funnel, and each lead carries a history that walks the pipeline to its status.
//!
//! Rows are written with multi-row INSERTs (`db::batch`), 500 leads at a time, in one
//! transaction, with index upkeep deferred when the seed is at least as large as the table
//! (`leads::bulk::deferring_pays`). 100,000 leads with their events, stays and outbox rows into an
//! empty database: 18.5-20.1 s in a release build on the 2-core machine (22.2-25.4 s without the
//! deferral, same rows).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

use crate::db::models::Lead;
use crate::db::schema::leads;
use crate::error::AppError;
use crate::leads::{bulk, fields, history, keys, outbox, store};

pub const FIRST_NAMES: &[&str] = &[
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Elijah", "Sophia", "Lucas", "Mia", "Mateo", "Amelia",
    "Levi", "Harper", "Ethan", "Evelyn", "Aiden", "Chloé", "Jonas", "Léa", "Hugo", "Ingrid",
    "Sven", "Aarav", "Priya", "Chen", "Mei", "Yuki", "Hiroshi", "Fatima", "Omar", "Zoë", "Mateus",
    "Lucía", "Javier", "Anna", "Lukas", "Sara", "Tomás", "Nora", "Felix", "Ines", "Rafael",
    "Grace", "Daniel", "Maya", "Samuel", "Isabel", "Oscar", "Julia", "Adam",
];
pub const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernández",
    "Lopez",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Dubois",
    "Martin",
    "Bernard",
    "Rossi",
    "Russo",
    "Novak",
    "Kowalski",
    "Nowak",
    "Silva",
    "Santos",
    "Kim",
    "Lee",
    "Park",
    "Wang",
    "Li",
    "Zhang",
    "Tanaka",
    "Suzuki",
    "Patel",
    "Sharma",
    "Khan",
    "O'Brien",
    "Murphy",
    "Andersson",
    "Johansson",
    "Nielsen",
    "Jensen",
    "Virtanen",
    "Costa",
    "Ferreira",
    "Ivanova",
    "Horvat",
    "Yilmaz",
    "Cohen",
    "Nakamura",
];
pub const COMPANY_STEMS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Pied Piper",
    "Vandelay",
    "Soylent",
    "Cyberdyne",
    "Tyrell",
    "Wonka",
    "Gringotts",
    "Oceanic",
    "Massive Dynamic",
    "Aperture",
    "Black Mesa",
    "Nakatomi",
    "Monarch",
    "Blue Sun",
    "Dunder",
    "Prestige",
    "Sterling",
    "Bluth",
    "Nimbus",
    "Quantum",
    "Vertex",
    "Helios",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Litware",
    "Proseware",
    "Adatum",
    "Woodgrove",
    "Lucerne",
    "Alpine",
    "Coho",
    "Fourth Coffee",
    "Graphic Design",
    "Humongous",
    "Margie",
    "Wingtip",
    "Trey",
    "Relecloud",
    "Lamna",
    "Bellows",
    "Datum",
];
const COMPANY_SUFFIXES: &[&str] = &[
    "Inc",
    "Labs",
    "GmbH",
    "Ltd",
    "Systems",
    "Analytics",
    "Software",
    "AI",
    "Group",
    "SA",
    "Technologies",
    "Cloud",
];
const TITLES: &[&str] = &[
    "CEO",
    "CTO",
    "VP Engineering",
    "Head of Growth",
    "Marketing Director",
    "Sales Manager",
    "Founder",
    "Head of Data",
    "Product Manager",
    "COO",
    "Engineering Manager",
    "Director of Operations",
    "CFO",
    "Head of Partnerships",
    "Chief Revenue Officer",
];
const INDUSTRIES: &[&str] = &[
    "Software",
    "Fintech",
    "Healthcare",
    "E-commerce",
    "Manufacturing",
    "Logistics",
    "Education",
    "Media",
    "Real Estate",
    "Energy",
    "Cybersecurity",
    "Retail",
];
const LOCATIONS: &[&str] = &[
    "Berlin, Germany",
    "London, UK",
    "Paris, France",
    "New York, USA",
    "San Francisco, USA",
    "Austin, USA",
    "Toronto, Canada",
    "Amsterdam, Netherlands",
    "Stockholm, Sweden",
    "Madrid, Spain",
    "Lisbon, Portugal",
    "Tokyo, Japan",
    "Singapore",
    "Sydney, Australia",
    "Bangalore, India",
    "São Paulo, Brazil",
    "Zürich, Switzerland",
];
const SOURCES: &[&str] = &[
    "linkedin",
    "website",
    "referral",
    "conference",
    "cold-outbound",
    "import",
];
const SIZES: &[&str] = &["1-10", "11-50", "51-200", "201-500", "501-1000", "1000+"];

/// The default pipeline and the share of leads that stop at each stage (a real funnel: most leads
/// are early, few are won).
const FUNNEL: &[(&str, u32)] = &[
    ("new", 30),
    ("scraped", 18),
    ("enriched", 14),
    ("verified", 10),
    ("contacted", 12),
    ("replied", 6),
    ("qualified", 4),
    ("won", 2),
    ("lost", 4),
];

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

fn slug(s: &str) -> String {
    keys::normalize_text(s).replace(' ', "-")
}

/// One generated lead with its history.
pub struct Generated {
    pub lead: Lead,
    /// (kind, changes, at), oldest first.
    pub events: Vec<(&'static str, Map<String, Value>, NaiveDateTime)>,
}

/// Generates lead number `i` (deterministic for `rng`'s seed and `day`).
pub fn generate(rng: &mut StdRng, i: usize, day: NaiveDateTime, sync_enabled: bool) -> Generated {
    let first = pick(rng, FIRST_NAMES);
    let last = pick(rng, LAST_NAMES);
    let stem = pick(rng, COMPANY_STEMS);
    let company = format!("{stem} {}", pick(rng, COMPANY_SUFFIXES));
    let domain = format!("{}.example", slug(stem));
    let full_name = format!("{first} {last}");
    let created = day - Duration::minutes(rng.random_range(0..(90 * 24 * 60)));
    let mut id_bytes = [0u8; 16];
    rng.fill(&mut id_bytes);
    let id = uuid::Builder::from_random_bytes(id_bytes)
        .into_uuid()
        .to_string();

    let roll = rng.random_range(0..100);
    let mut acc = 0;
    let mut stage = 0;
    for (n, (_, share)) in FUNNEL.iter().enumerate() {
        acc += share;
        if roll < acc {
            stage = n;
            break;
        }
    }
    let status = FUNNEL[stage].0;

    let mut lead = store::blank(id, created);
    lead.full_name = full_name.clone();
    lead.email = Some(format!("{}.{}{}@{domain}", slug(first), slug(last), i));
    lead.company = Some(company);
    lead.title = Some(pick(rng, TITLES).to_string());
    lead.linkedin_url = Some(format!(
        "https://www.linkedin.com/in/{}-{}-{i}",
        slug(first),
        slug(last)
    ));
    lead.website = Some(format!("https://{domain}/"));
    lead.phone = (rng.random_range(0..3) > 0)
        .then(|| format!("+1 555 {:03} {:04}", i % 1000, rng.random_range(0..10000)));
    lead.location = Some(pick(rng, LOCATIONS).to_string());
    lead.industry = Some(pick(rng, INDUSTRIES).to_string());
    lead.company_size = Some(pick(rng, SIZES).to_string());
    lead.source = Some(pick(rng, SOURCES).to_string());
    lead.score = Some(f64::from(rng.random_range(0..=100u32)));
    lead.scraped_at = Some(created);
    lead.sync_state = if sync_enabled {
        "pending".into()
    } else {
        "local".into()
    };
    keys::apply(&mut lead);

    let mut events = Vec::new();
    let mut at = created;
    // Walk the pipeline up to the lead's stage ("lost" leaves from "contacted" or later).
    let path: Vec<&str> = if status == "lost" {
        let upto = rng.random_range(4..=6);
        FUNNEL[1..=upto]
            .iter()
            .map(|(s, _)| *s)
            .chain(["lost"])
            .collect()
    } else {
        FUNNEL[1..=stage].iter().map(|(s, _)| *s).collect()
    };
    let mut previous = "new";
    let mut first_status = "new";
    if path.is_empty() {
        first_status = status;
    }
    let mut created_lead = lead.clone();
    created_lead.status = first_status.to_string();
    events.push(("created", fields::created(&created_lead), created));
    for s in path {
        at += Duration::minutes(rng.random_range(60..(4 * 24 * 60)));
        if at > day {
            at = day;
        }
        let mut change = Map::new();
        change.insert(
            "status".into(),
            Value::Array(vec![previous.into(), s.into()]),
        );
        events.push(("status_changed", change, at));
        match s {
            "enriched" => {
                lead.enriched = true;
                lead.enriched_at = Some(at);
            }
            "verified" => lead.verified = true,
            "contacted" => lead.contacted_at = Some(at),
            _ => {}
        }
        previous = s;
    }
    lead.status = status.to_string();
    lead.needs_enrichment = !lead.enriched && stage >= 1;
    lead.updated_at = at;
    lead.version = i32::try_from(events.len()).unwrap_or(1);
    Generated { lead, events }
}

/// Writes `count` generated leads with their history and outbox rows in one transaction.
pub fn seed(
    conn: &mut SqliteConnection,
    count: usize,
    seed: u64,
    sync_enabled: bool,
) -> Result<usize, AppError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let day = crate::time::now()
        .date()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_else(crate::time::now);
    let offset: usize = leads::table.count().get_result::<i64>(conn)? as usize;
    conn.immediate_transaction(|conn| {
        let defer = bulk::deferring_pays(conn, count)?;
        bulk::with_deferred_upkeep(conn, defer, |conn| {
            let all_fields: Vec<String> = fields::SYNCED.iter().map(|f| f.to_string()).collect();
            let mut done = 0;
            while done < count {
                let n = (count - done).min(crate::db::batch::ROWS);
                let (rows, histories): (Vec<Lead>, Vec<_>) = (0..n)
                    .map(|k| generate(&mut rng, offset + done + k, day, sync_enabled))
                    .map(|g| (g.lead, g.events))
                    .unzip();
                crate::db::batch::insert::<_, Lead>(conn, leads::table, &rows)?;
                let events: Vec<history::Event<'_>> = rows
                    .iter()
                    .zip(&histories)
                    .flat_map(|(lead, history)| {
                        history.iter().map(|(kind, changes, at)| history::Event {
                            lead_id: &lead.id,
                            kind,
                            changes,
                            message: None,
                            at: *at,
                        })
                    })
                    .collect();
                // Also stores the stays the events make.
                history::record_many(conn, "system", &events)?;
                let creates: Vec<(&str, Vec<String>, NaiveDateTime)> = rows
                    .iter()
                    .map(|lead| (lead.id.as_str(), all_fields.clone(), lead.created_at))
                    .collect();
                outbox::record_creates(conn, &creates)?;
                done += n;
            }
            Ok(done)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn count(conn: &mut SqliteConnection, sql: &str) -> i64 {
        diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
    }

    /// Seeding thousands of leads into a small table defers index upkeep (`leads::bulk`): the
    /// leads go in while `leads_created_at` is gone, the schema comes back whole and the
    /// full-text index holds every lead, also on a second seed into the now equally large table.
    #[test]
    fn a_large_seed_leaves_every_index_whole() {
        let (_dir, db) = testing::migrated();
        let mut conn = db.conn().unwrap();
        // Counts the leads inserted while an index upkeep is deferred.
        conn.batch_execute(
            "CREATE TABLE deferred_inserts (rid INTEGER); \
             CREATE TRIGGER probe AFTER INSERT ON leads \
             WHEN NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'leads_created_at') \
             BEGIN INSERT INTO deferred_inserts VALUES (new.rid); END;",
        )
        .unwrap();
        let before = testing::schema(&mut conn);
        let n = bulk::READ_KEYS_FROM + 100;
        for round in 1..=2 {
            assert!(bulk::deferring_pays(&mut conn, n).unwrap(), "round {round}");
            assert_eq!(seed(&mut conn, n, round, false).unwrap(), n);
            assert_eq!(
                count(&mut conn, "SELECT COUNT(*) AS n FROM deferred_inserts"),
                i64::try_from(round as usize * n).unwrap(),
                "round {round}: every lead went in with the upkeep deferred"
            );
            assert_eq!(testing::schema(&mut conn), before, "round {round}");
            diesel::sql_query(
                "INSERT INTO leads_fts (leads_fts, rank) VALUES ('integrity-check', 1)",
            )
            .execute(&mut conn)
            .expect("the full-text index matches the table");
            let first = FIRST_NAMES[0];
            let by_index = count(
                &mut conn,
                &format!(
                    "SELECT COUNT(*) AS n FROM leads_fts WHERE leads_fts MATCH 'full_name:{first}'"
                ),
            );
            let by_scan = count(
                &mut conn,
                &format!(
                    "SELECT COUNT(*) AS n FROM leads WHERE ' ' || full_name || ' ' LIKE '% {first} %'"
                ),
            );
            assert!(by_scan > 0);
            assert_eq!(by_index, by_scan, "round {round}");
        }
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) AS n FROM leads"),
            i64::try_from(2 * n).unwrap()
        );
    }
}
