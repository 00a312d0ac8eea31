//! The `leads` filter from name/value pairs: the query parameters of `/export/leads.*` and the
//! flags of `leadcache export` go through this one parser, so both accept the same things and
//! refuse the same things with a message naming the parameter.
//!
//! Names are the GraphQL `LeadFilter` names (`status`, `needsEnrichment`, `scoreMin`,
//! `createdAfter`, `campaignId`, `includeDeleted`, ...) plus `search`. `status` and `syncState` may
//! repeat (or hold a comma-separated list); `syncState` takes the GraphQL enum names (`PENDING`)
//! or the stored ones (`pending`). Booleans are `true`/`false`/`1`/`0`; times RFC 3339 or
//! `YYYY-MM-DD`, UTC.
//!
//! Errors name the parameter by its `LeadFilter` name; `leadcache export` turns that into the flag
//! the user typed (`createdAfter` -> `--created-after`, `super::cli::flag_of`). Values are quoted
//! as written (`crate::error::quote`), Unicode kept.

use crate::error::{AppError, quote};
use crate::leads::query::LeadFilter;

const SYNC_STATES: &[&str] = &["synced", "pending", "conflict", "error", "local"];

fn flag(name: &str, v: &str) -> Result<bool, AppError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(AppError::validation(
            name,
            format!("expected true or false, got {}", quote(v)),
        )),
    }
}

fn number(name: &str, v: &str) -> Result<f64, AppError> {
    match v.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err(AppError::validation(
            name,
            format!("expected a number, got {}", quote(v)),
        )),
    }
}

fn time(name: &str, v: &str) -> Result<chrono::NaiveDateTime, AppError> {
    crate::time::parse(v).ok_or_else(|| {
        AppError::validation(
            name,
            format!("expected an RFC 3339 time or a date, got {}", quote(v)),
        )
    })
}

fn text(name: &str, v: &str) -> Result<String, AppError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 500 {
        return Err(AppError::validation(name, "must be 1 to 500 characters"));
    }
    Ok(v.to_string())
}

/// Builds a filter from pairs; unknown names and bad values are refused.
pub fn from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<LeadFilter, AppError> {
    let mut f = LeadFilter::default();
    for (name, value) in pairs {
        match name {
            "status" => {
                let list = f.status.get_or_insert_with(Vec::new);
                for s in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    list.push(s.to_string());
                }
                if list.is_empty() {
                    return Err(AppError::validation(name, "must name a status"));
                }
            }
            "syncState" => {
                let list = f.sync_state.get_or_insert_with(Vec::new);
                for s in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let lower = s.to_ascii_lowercase();
                    if !SYNC_STATES.contains(&lower.as_str()) {
                        return Err(AppError::validation(
                            name,
                            format!(
                                "unknown sync state {}: expected SYNCED, PENDING, CONFLICT, ERROR or LOCAL",
                                quote(s)
                            ),
                        ));
                    }
                    list.push(lower);
                }
                if list.is_empty() {
                    return Err(AppError::validation(name, "must name a sync state"));
                }
            }
            "company" => f.company = Some(text(name, value)?),
            "source" => f.source = Some(text(name, value)?),
            "industry" => f.industry = Some(text(name, value)?),
            "location" => f.location = Some(text(name, value)?),
            "campaignId" => f.campaign_id = Some(text(name, value)?),
            "search" => f.search = Some(text(name, value)?),
            "enriched" => f.enriched = Some(flag(name, value)?),
            "verified" => f.verified = Some(flag(name, value)?),
            "needsEnrichment" => f.needs_enrichment = Some(flag(name, value)?),
            "includeDeleted" => f.include_deleted = flag(name, value)?,
            "scoreMin" => f.score_min = Some(number(name, value)?),
            "scoreMax" => f.score_max = Some(number(name, value)?),
            "createdAfter" => f.created_after = Some(time(name, value)?),
            "createdBefore" => f.created_before = Some(time(name, value)?),
            "updatedAfter" => f.updated_after = Some(time(name, value)?),
            "updatedBefore" => f.updated_before = Some(time(name, value)?),
            other => {
                return Err(AppError::validation(
                    other,
                    "unknown parameter; use the LeadFilter names (status, company, source, industry, location, \
                     enriched, verified, needsEnrichment, syncState, scoreMin, scoreMax, createdAfter, createdBefore, \
                     updatedAfter, updatedBefore, campaignId, includeDeleted) or search",
                ));
            }
        }
    }
    // Refuse a bad search now, before a streamed response has started.
    crate::leads::query::filter_cond(&f)?;
    Ok(f)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_listed_values_add_up() {
        let f = from_pairs([
            ("status", "new"),
            ("status", "won,lost"),
            ("syncState", "PENDING"),
            ("scoreMin", "10"),
        ])
        .unwrap();
        assert_eq!(f.status.unwrap(), ["new", "won", "lost"]);
        assert_eq!(f.sync_state.unwrap(), ["pending"]);
        assert_eq!(f.score_min, Some(10.0));
        assert!(!f.include_deleted);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (name, value) in [
            ("enriched", "maybe"),
            ("scoreMax", "high"),
            ("createdAfter", "last week"),
            ("syncState", "LOST"),
            ("bogus", "1"),
            ("company", " "),
        ] {
            match from_pairs([(name, value)]) {
                Err(AppError::Validation { field, .. }) => assert_eq!(field, name),
                other => panic!("{name}={value}: expected a validation error, got {other:?}"),
            }
        }
    }
}
