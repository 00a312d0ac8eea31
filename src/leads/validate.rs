//! Validation of lead values written through the API or read from files.
//!
//! Changes arrive as a JSON object keyed by local field name (GraphQL input is turned into one);
//! each value is checked and normalised here before it touches a lead, so a rejected write stores
//! nothing. Values pulled from Airtable are *not* validated: Airtable is the source of truth and
//! its values are stored as they come (`fields::set`).

use serde_json::{Map, Value};

use crate::db::models::Lead;
use crate::error::AppError;
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
                            format!("{s:?} is not an RFC 3339 date-time"),
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
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(AppError::validation(field, "contains control characters"));
    }
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
                        "{s:?} is not one of the configured statuses ({})",
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
    let bad = || AppError::validation("email", format!("{s:?} is not an email address"));
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
        .map_err(|e| AppError::validation(field, format!("{s:?} is not a URL ({e})")))?;
    let host_ok = url.host_str().is_some_and(|h| h.contains('.'));
    if !matches!(url.scheme(), "http" | "https") || !host_ok {
        return Err(AppError::validation(
            field,
            format!("{s:?} is not an http(s) URL with a host"),
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
            format!("{s:?} is not a LinkedIn profile URL (https://www.linkedin.com/in/...)"),
        ));
    }
    Ok(url.to_string())
}

pub fn website(s: &str) -> Result<String, AppError> {
    Ok(parse_web_url("website", s)?.to_string())
}

/// Digits with the usual separators (`+ ( ) - . / space`), an optional extension, 5 to 20 digits.
pub fn phone(s: &str) -> Result<String, AppError> {
    let body = s.split_once(|c| c == 'x' || c == 'X').map_or(s, |(b, _)| b);
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let chars_ok = body
        .chars()
        .all(|c| c.is_ascii_digit() || " +()-./".contains(c))
        && s.chars()
            .all(|c| c.is_ascii_digit() || " +()-./xXet".contains(c));
    if !chars_ok || !(5..=20).contains(&digits) {
        return Err(AppError::validation(
            "phone",
            format!("{s:?} is not a phone number"),
        ));
    }
    Ok(s.to_string())
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
