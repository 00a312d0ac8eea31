//! Validation of lead values written through the API or read from files.
//!
//! Changes arrive as a JSON object keyed by local field name (GraphQL input is turned into one);
//! each value is checked and normalised here before it touches a lead, so a rejected write stores
//! nothing. Values pulled from Airtable are *not* validated: Airtable is the source of truth and
//! its values are stored as they come (`fields::set`); the CSV export neutralises what a
//! spreadsheet would run (`transfer::export`).
//!
//! **Characters in stored text** ([`chars`], SPEC §14): every text leadcache stores from a caller
//! (lead fields, `extra` keys and string values, notes, enrichment providers and data, campaign
//! name, description, subject and body; from GraphQL, legacy files and dumps, and whatever else
//! writes through `leads::store`) goes through this one rule, refused with `VALIDATION` naming the field:
//!
//! - C0 controls (U+0000-U+001F, NUL included), DEL and the C1 controls (U+007F-U+009F). Texts
//!   that may hold several lines ([`Lines::Multi`]: notes, campaign descriptions and bodies,
//!   `extra` and enrichment string values) accept tab and newline, and a CR only as part of a
//!   CRLF line end (text pasted from Windows); single-line texts (names, every lead field,
//!   keys, providers, subjects) accept none of them.
//! - Bidi embeddings, overrides and isolates: U+202A-U+202E and U+2066-U+2069. They reorder the
//!   text around them when it is shown ("Trojan Source"), so a value can read differently in
//!   the admin page, a terminal or a spreadsheet from what is stored. The marks U+200E, U+200F
//!   and U+061C are accepted: they change no order beyond their neighbours' direction and are
//!   part of ordinary Hebrew and Arabic text.

use serde_json::{Map, Value};

use crate::db::models::Lead;
use crate::error::{AppError, quote};
use crate::leads::fields::{self, Kind};

pub const MAX_NAME: usize = 200;
pub const MAX_TEXT: usize = 1_000;
pub const MAX_EXTRA_BYTES: usize = 64 * 1024;
pub const MAX_NOTE: usize = 10_000;

/// Applies `changes` to `lead`, validating every value. `statuses` is the accepted set.
pub fn apply(
    lead: &mut Lead,
    changes: &Map<String, Value>,
    statuses: &[String],
) -> Result<(), AppError> {
    for (field, value) in changes {
        if field == "extra" {
            merge_extra(lead, value)?;
            continue;
        }
        let Some(kind) = fields::kind(field) else {
            return Err(AppError::validation(field, "unknown field"));
        };
        let value = match kind {
            Kind::Text => Value::from(text(field, value, statuses)?),
            Kind::Number => number(field, value)?,
            Kind::Flag => match value {
                Value::Bool(_) => value.clone(),
                _ => return Err(AppError::validation(field, "expected true or false")),
            },
            Kind::Time => match value {
                Value::Null => Value::Null,
                Value::String(s) => match crate::time::parse(s) {
                    Some(t) => Value::String(crate::time::format(t)),
                    None => {
                        return Err(AppError::validation(
                            field,
                            format!("{} is not an RFC 3339 date-time", quote(s)),
                        ));
                    }
                },
                _ => {
                    return Err(AppError::validation(
                        field,
                        "expected an RFC 3339 date-time",
                    ));
                }
            },
        };
        fields::set(lead, field, &value)?;
    }
    Ok(())
}

fn text(field: &str, value: &Value, statuses: &[String]) -> Result<Option<String>, AppError> {
    let raw = match value {
        Value::Null => None,
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()),
        _ => return Err(AppError::validation(field, "expected text")),
    };
    let Some(s) = raw else {
        return match field {
            "full_name" => Err(AppError::validation(
                field,
                "is required and must not be blank",
            )),
            "status" => Err(AppError::validation(field, "must not be blank")),
            _ => Ok(None),
        };
    };
    let max = if field == "full_name" {
        MAX_NAME
    } else {
        MAX_TEXT
    };
    if s.chars().count() > max {
        return Err(AppError::validation(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    chars(field, s, Lines::Single)?;
    let s = match field {
        "email" => email(s)?,
        "linkedin_url" => linkedin(s)?,
        "website" => website(s)?,
        "phone" => phone(s)?,
        "status" => {
            if !statuses.iter().any(|x| x == s) {
                return Err(AppError::validation(
                    field,
                    format!(
                        "{} is not one of the configured statuses ({})",
                        quote(s),
                        statuses.join(", ")
                    ),
                ));
            }
            s.to_string()
        }
        _ => s.to_string(),
    };
    Ok(Some(s))
}

fn number(field: &str, value: &Value) -> Result<Value, AppError> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() && x.abs() <= 1e9 => Ok(value.clone()),
            _ => Err(AppError::validation(
                field,
                "must be a finite number between -1e9 and 1e9",
            )),
        },
        _ => Err(AppError::validation(field, "expected a number")),
    }
}

/// `local@domain.tld`: one `@`, no spaces, a dot in the domain, at most 254 characters.
pub fn email(s: &str) -> Result<String, AppError> {
    let bad = || AppError::validation("email", format!("{} is not an email address", quote(s)));
    if s.len() > 254 || s.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    if local.is_empty() || local.contains('@') || !domain_ok {
        return Err(bad());
    }
    Ok(s.to_string())
}

fn parse_web_url(field: &str, s: &str) -> Result<url::Url, AppError> {
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("https://{s}")
    };
    let url = url::Url::parse(&with_scheme)
        .map_err(|e| AppError::validation(field, format!("{} is not a URL ({e})", quote(s))))?;
    let host_ok = url.host_str().is_some_and(|h| h.contains('.'));
    if !matches!(url.scheme(), "http" | "https") || !host_ok {
        return Err(AppError::validation(
            field,
            format!("{} is not an http(s) URL with a host", quote(s)),
        ));
    }
    Ok(url)
}

/// A LinkedIn profile or company URL, stored with its scheme.
pub fn linkedin(s: &str) -> Result<String, AppError> {
    let url = parse_web_url("linkedin_url", s)?;
    if crate::leads::keys::linkedin_key(url.as_str()).is_none() {
        return Err(AppError::validation(
            "linkedin_url",
            format!(
                "{} is not a LinkedIn profile URL (https://www.linkedin.com/in/...)",
                quote(s)
            ),
        ));
    }
    Ok(url.to_string())
}

pub fn website(s: &str) -> Result<String, AppError> {
    Ok(parse_web_url("website", s)?.to_string())
}

/// Digits with the usual separators (`+ ( ) - . / space`), an optional extension, 5 to 20 digits.
pub fn phone(s: &str) -> Result<String, AppError> {
    let body = s.split_once(['x', 'X']).map_or(s, |(b, _)| b);
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let chars_ok = body
        .chars()
        .all(|c| c.is_ascii_digit() || " +()-./".contains(c))
        && s.chars()
            .all(|c| c.is_ascii_digit() || " +()-./xXet".contains(c));
    if !chars_ok || !(5..=20).contains(&digits) {
        return Err(AppError::validation(
            "phone",
            format!("{} is not a phone number", quote(s)),
        ));
    }
    Ok(s.to_string())
}

/// Whether a text may hold several lines (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// No tab, newline or CR.
    Single,
    /// Tab and newline; CR only before a newline.
    Multi,
}

/// A bidi embedding, override or isolate (U+202A-U+202E, U+2066-U+2069).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The character rule of stored text (module doc): `Err` names `field`, the character and where
/// it is (1-based, in characters).
pub fn chars(field: &str, s: &str, lines: Lines) -> Result<(), AppError> {
    let mut it = s.chars().peekable();
    let mut at = 0usize;
    while let Some(c) = it.next() {
        at += 1;
        let allowed = match c {
            '\t' | '\n' => lines == Lines::Multi,
            '\r' => lines == Lines::Multi && it.peek() == Some(&'\n'),
            c => !c.is_control() && !is_bidi_control(c),
        };
        if !allowed {
            let what = if is_bidi_control(c) {
                "a bidi control character"
            } else {
                "a control character"
            };
            let hint = match (c, lines) {
                ('\t' | '\n' | '\r', Lines::Single) => "; this text is a single line",
                ('\r', Lines::Multi) => "; line ends are LF or CRLF",
                _ => "",
            };
            return Err(AppError::validation(
                field,
                format!(
                    "contains {what} (U+{:04X}) at character {at}{hint}",
                    c as u32
                ),
            ));
        }
    }
    Ok(())
}

/// [`chars`] over a JSON value: object keys are single-line, string values multi-line, at any
/// depth. `field` is the name errors give (e.g. `extra`); a bad value inside is named
/// `field.key` (`extra.Notes`).
pub fn json_chars(field: &str, v: &Value) -> Result<(), AppError> {
    match v {
        Value::String(s) => chars(field, s, Lines::Multi),
        Value::Array(items) => items.iter().try_for_each(|x| json_chars(field, x)),
        Value::Object(map) => map.iter().try_for_each(|(k, x)| {
            chars(field, k, Lines::Single).map_err(|e| rename(e, field))?;
            json_chars(&format!("{field}.{k}"), x)
        }),
        _ => Ok(()),
    }
}

/// A key's error names the object (`extra`) and says it is about a key.
fn rename(e: AppError, field: &str) -> AppError {
    match e {
        AppError::Validation { message, .. } => {
            AppError::validation(field, format!("a key {message}"))
        }
        other => other,
    }
}

/// Merges a JSON object into `extra`: a `null` value removes that key.
fn merge_extra(lead: &mut Lead, value: &Value) -> Result<(), AppError> {
    let Value::Object(patch) = value else {
        return Err(AppError::validation("extra", "expected a JSON object"));
    };
    let mut extra: Map<String, Value> = serde_json::from_str(&lead.extra).unwrap_or_default();
    for (k, v) in patch {
        if k.trim().is_empty() {
            return Err(AppError::validation("extra", "keys must not be blank"));
        }
        chars("extra", k, Lines::Single).map_err(|e| rename(e, "extra"))?;
        json_chars(&format!("extra.{k}"), v)?;
        if v.is_null() {
            extra.remove(k);
        } else {
            extra.insert(k.clone(), v.clone());
        }
    }
    let encoded = serde_json::to_string(&extra)?;
    if encoded.len() > MAX_EXTRA_BYTES {
        return Err(AppError::validation(
            "extra",
            format!("is larger than {MAX_EXTRA_BYTES} bytes"),
        ));
    }
    lead.extra = encoded;
    Ok(())
}

pub fn note(text: &str) -> Result<&str, AppError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(AppError::validation("text", "a note must not be blank"));
    }
    if t.chars().count() > MAX_NOTE {
        return Err(AppError::validation(
            "text",
            format!("is longer than {MAX_NOTE} characters"),
        ));
    }
    chars("text", t, Lines::Multi)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(email("jane@example.com").is_ok());
        for bad in [
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "ja ne@example.com",
            "a@b@c.com",
            "a@.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_character_rule_of_stored_text() {
        for ok in ["Ñoño पन्ह", "שלום\u{200f}", "a\u{200e}b"] {
            assert!(chars("f", ok, Lines::Single).is_ok(), "{ok:?}");
        }
        for ok in ["a\nb", "a\r\nb", "a\tb", "end\r\n"] {
            assert!(chars("f", ok, Lines::Multi).is_ok(), "{ok:?}");
            assert!(chars("f", ok, Lines::Single).is_err(), "{ok:?}");
        }
        for bad in [
            "\0", "\u{1b}", "\u{7f}", "\u{85}", "a\rb", "\u{202a}", "\u{202e}", "\u{2066}",
            "\u{2069}",
        ] {
            assert!(chars("f", bad, Lines::Multi).is_err(), "{bad:?}");
        }
        let err = chars("company", "ab\u{202e}c", Lines::Single).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid company: contains a bidi control character (U+202E) at character 3"
        );
        let err = json_chars("extra", &serde_json::json!({"k": [1, "x\u{0}"]})).unwrap_err();
        assert!(err.to_string().starts_with("invalid extra.k: "), "{err}");
        let err = json_chars("data", &serde_json::json!({"o": {"\u{1b}": 1}})).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid data.o: a key "),
            "{err}"
        );
    }

    #[test]
    fn urls_and_phones() {
        assert_eq!(website("acme.com").unwrap(), "https://acme.com/");
        assert!(website("ftp://acme.com").is_err());
        assert!(website("not a url").is_err());
        assert!(linkedin("linkedin.com/in/jane").is_ok());
        assert!(linkedin("https://example.com/in/jane").is_err());
        assert!(phone("+1 (555) 010-2000 x12").is_ok());
        assert!(phone("call me").is_err());
        assert!(phone("12").is_err());
    }
}
