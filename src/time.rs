//! Time in leadcache: UTC everywhere, stored as `TIMESTAMP` without a zone, millisecond precision
//! (Airtable shows whole seconds; more digits would only make equal times compare unequal).

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

/// Now, in UTC, truncated to milliseconds.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(3)
}

pub fn to_utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// `2026-11-24T10:00:00.000Z`, the form Airtable writes and reads.
pub fn format(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses RFC 3339 (any offset, converted to UTC), a plain `YYYY-MM-DD HH:MM:SS[.fff]` taken as
/// UTC, or a date `YYYY-MM-DD` (midnight UTC).
pub fn parse(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).naive_utc().trunc_subsecs(3));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.trunc_subsecs(3));
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_airtable_and_people_write() {
        let want =
            NaiveDateTime::parse_from_str("2026-05-01 12:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(parse("2026-05-01T12:00:00.000Z"), Some(want));
        assert_eq!(parse("2026-05-01T14:00:00+02:00"), Some(want));
        assert_eq!(parse("2026-05-01 12:00:00"), Some(want));
        assert_eq!(parse("2026-05-01"), want.date().and_hms_opt(0, 0, 0));
        assert_eq!(parse("yesterday"), None);
        assert_eq!(format(want), "2026-05-01T12:00:00.000Z");
    }
}
