//! Building the `filterByFormula` strings leadcache sends (the simulator parses the same forms).
//!
//! Datetimes are always compared with `IS_AFTER(…, DATETIME_PARSE('…Z'))`: comparing with a
//! string literal compares text, and a string without `Z` is read in the field's time zone.

use chrono::{DateTime, SecondsFormat, Utc};

/// A string literal: single quotes, with `\` and `'` escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A field reference `{Name}`.
pub fn field(name: &str) -> String {
    format!("{{{name}}}")
}

/// Records whose `field` (a last-modified-time field) is after `t`.
pub fn modified_after(field_name: &str, t: DateTime<Utc>) -> String {
    format!(
        "IS_AFTER({}, DATETIME_PARSE({}))",
        field(field_name),
        quote(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    )
}

/// `{field} = 'value'`.
pub fn equals(field_name: &str, value: &str) -> String {
    format!("{} = {}", field(field_name), quote(value))
}

/// `{field} = ''`: the cell is empty.
pub fn is_blank(field_name: &str) -> String {
    format!("{} = ''", field(field_name))
}

pub fn or(parts: &[String]) -> String {
    format!("OR({})", parts.join(", "))
}

pub fn and(parts: &[String]) -> String {
    format!("AND({})", parts.join(", "))
}

pub fn not(part: &str) -> String {
    format!("NOT({part})")
}

/// Records with one of these ids.
pub fn record_id_in(ids: &[String]) -> String {
    or(&ids
        .iter()
        .map(|id| format!("RECORD_ID() = {}", quote(id)))
        .collect::<Vec<_>>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_forms_leadcache_sends() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            modified_after("Last Modified", t),
            "IS_AFTER({Last Modified}, DATETIME_PARSE('2024-05-01T12:00:00.000Z'))"
        );
        assert_eq!(equals("Lead ID", "it's"), r"{Lead ID} = 'it\'s'");
        assert_eq!(
            or(&[is_blank("A"), equals("B", "x")]),
            "OR({A} = '', {B} = 'x')"
        );
    }
}
