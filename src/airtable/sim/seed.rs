//! Deterministic, realistic sample leads for the simulator (same seed, same records).

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

const FIRST: &[&str] = &[
    "Ava", "Liam", "Maya", "Noah", "Sofia", "Lucas", "Emma", "Mateo", "Chloe", "Ethan", "Zoe",
    "Arjun", "Priya", "Kenji", "Yuki", "Lena", "Jonas", "Amara", "Kwame", "Isabel", "Omar",
    "Fatima", "Hannah", "Felix", "Nora", "Diego", "Camille", "Mei", "Tomás", "Ingrid",
];
const LAST: &[&str] = &[
    "Johnson",
    "García",
    "Müller",
    "Nguyen",
    "Patel",
    "Kim",
    "Rossi",
    "Silva",
    "Cohen",
    "Okafor",
    "Tanaka",
    "Novak",
    "Dubois",
    "Andersson",
    "Murphy",
    "Kowalski",
    "Haddad",
    "Schmidt",
    "Fernández",
    "Chen",
    "Larsen",
    "Moreau",
    "Ibrahim",
    "Walsh",
    "Costa",
];
const COMPANIES: &[(&str, &str, &str)] = &[
    ("Acme Robotics", "acmerobotics.com", "Manufacturing"),
    ("Brightline Health", "brightlinehealth.io", "Healthcare"),
    ("Northwind Logistics", "northwind.co", "Logistics"),
    ("Lumen Analytics", "lumenanalytics.ai", "Software"),
    ("Bluefin Capital", "bluefincap.com", "Financial Services"),
    ("Greenleaf Foods", "greenleaffoods.com", "Food & Beverage"),
    ("Orbital Systems", "orbitalsys.space", "Aerospace"),
    ("Cobalt Security", "cobaltsec.io", "Cybersecurity"),
    ("Helix Bio", "helixbio.com", "Biotech"),
    ("Summit Retail Group", "summitretail.com", "Retail"),
    ("Quanta Energy", "quantaenergy.com", "Energy"),
    ("Pixel & Pine", "pixelandpine.design", "Design"),
    ("Vertex Cloud", "vertexcloud.dev", "Software"),
    ("Harbor Legal", "harborlegal.law", "Legal"),
    ("Atlas Education", "atlasedu.org", "Education"),
];
const TITLES: &[&str] = &[
    "CEO",
    "CTO",
    "VP of Sales",
    "Head of Marketing",
    "Director of Operations",
    "Engineering Manager",
    "Founder",
    "Head of Growth",
    "Procurement Lead",
    "COO",
    "Product Manager",
    "Chief Revenue Officer",
];
const LOCATIONS: &[&str] = &[
    "San Francisco, CA",
    "New York, NY",
    "Austin, TX",
    "London, UK",
    "Berlin, Germany",
    "Paris, France",
    "Toronto, Canada",
    "Amsterdam, Netherlands",
    "Singapore",
    "Sydney, Australia",
];
const SIZES: &[&str] = &["1-10", "11-50", "51-200", "201-500", "501-1000", "1000+"];
const SOURCES: &[&str] = &[
    "linkedin",
    "apollo",
    "website",
    "referral",
    "conference",
    "import",
];
/// Statuses in pipeline order with their share (percent) of leads, like a real funnel.
pub const STATUS_WEIGHTS: &[(&str, u32)] = &[
    ("new", 28),
    ("scraped", 20),
    ("enriched", 15),
    ("verified", 10),
    ("contacted", 11),
    ("replied", 6),
    ("qualified", 4),
    ("won", 2),
    ("lost", 4),
];
const TAGS: &[&str] = &["hot", "enterprise", "follow-up", "partner", "churn-risk"];

fn pick<'a>(rng: &mut StdRng, xs: &'a [&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn slug(s: &str) -> String {
    deunicode::deunicode(s)
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The fields of sample lead number `i` (Airtable names of the default map).
pub fn lead(rng: &mut StdRng, i: usize) -> Map<String, Value> {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let (company, domain, industry) = COMPANIES[rng.random_range(0..COMPANIES.len())];
    let mut roll = rng.random_range(0..100u32);
    let mut stage = 0;
    for (n, (_, w)) in STATUS_WEIGHTS.iter().enumerate() {
        if roll < *w {
            stage = n;
            break;
        }
        roll -= w;
    }
    let status = STATUS_WEIGHTS[stage].0;
    let day = |rng: &mut StdRng, from: i64| {
        let base = chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        let t = base
            + chrono::Duration::days(from + rng.random_range(0..30))
            + chrono::Duration::minutes(rng.random_range(0..600));
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut f = Map::new();
    f.insert("Full Name".into(), json!(format!("{first} {last}")));
    if rng.random_bool(0.9) {
        f.insert(
            "Email".into(),
            json!(format!("{}.{}@{domain}", slug(first), slug(last))),
        );
    }
    f.insert("Company".into(), json!(company));
    f.insert("Title".into(), json!(pick(rng, TITLES)));
    if rng.random_bool(0.8) {
        f.insert(
            "LinkedIn URL".into(),
            json!(format!(
                "https://www.linkedin.com/in/{}-{}-{i:04}",
                slug(first),
                slug(last)
            )),
        );
    }
    f.insert("Website".into(), json!(format!("https://{domain}")));
    if rng.random_bool(0.5) {
        f.insert(
            "Phone".into(),
            json!(format!("+1 415 555 {:04}", rng.random_range(0..10_000u32))),
        );
    }
    f.insert("Location".into(), json!(pick(rng, LOCATIONS)));
    f.insert("Industry".into(), json!(industry));
    f.insert("Company Size".into(), json!(pick(rng, SIZES)));
    f.insert("Status".into(), json!(status));
    f.insert("Source".into(), json!(pick(rng, SOURCES)));
    if rng.random_bool(0.7) {
        f.insert("Score".into(), json!(rng.random_range(0..=100u32)));
    }
    f.insert("Scraped At".into(), json!(day(rng, 0)));
    if stage >= 2 {
        f.insert("Enriched".into(), json!(true));
        f.insert("Enriched At".into(), json!(day(rng, 30)));
    } else if rng.random_bool(0.5) {
        f.insert("Needs Enrichment".into(), json!(true));
    }
    if stage >= 3 {
        f.insert("Verified".into(), json!(true));
    }
    if stage >= 4 {
        f.insert("Contacted At".into(), json!(day(rng, 60)));
    }
    if rng.random_bool(0.3) {
        f.insert(
            "Notes".into(),
            json!(format!(
                "Met {first} at a {industry} event. Follow up in Q2."
            )),
        );
    }
    if rng.random_bool(0.4) {
        f.insert("Tags".into(), json!([pick(rng, TAGS)]));
    }
    if rng.random_bool(0.3) {
        f.insert(
            "Owner".into(),
            json!({"id": "usrSimOwner000001", "email": "owner@example.com", "name": "Sam Owner"}),
        );
    }
    f
}
