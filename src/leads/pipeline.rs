//! A lead's way through the pipeline (`Lead.stages`), derived from its history: the `created`
//! (or `pulled`) event opens the first stage with the status the lead was created with, and every
//! `status_changed` event `{status: [old, new]}` closes the open stage and opens the next.
//!
//! A `status_changed` event whose old status is not the open stage's is skipped: after a manual
//! merge the merged lead's history sits in the kept lead's, and its changes do not continue the
//! kept lead's chain. A lead without a starting event (history trimmed, or older than leadcache's
//! history) starts at its `created_at` with the first known old status.

use chrono::NaiveDateTime;
use serde_json::Value;

use crate::db::models::{Lead, LeadEvent};
use crate::leads::history::kind;

/// One stay in one status.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub status: String,
    pub entered_at: NaiveDateTime,
    /// `None` while the lead is still in this status.
    pub left_at: Option<NaiveDateTime>,
    /// Days spent (until `now` for the current stage).
    pub days: f64,
}

fn status_pair(e: &LeadEvent) -> Option<(Option<String>, String)> {
    let changes: Value = serde_json::from_str(&e.changes).ok()?;
    let pair = changes.get("status")?.as_array()?;
    let new = pair.get(1)?.as_str()?.to_string();
    let old = pair.first().and_then(Value::as_str).map(str::to_string);
    Some((old, new))
}

fn days(from: NaiveDateTime, to: NaiveDateTime) -> f64 {
    (to - from).num_milliseconds() as f64 / 86_400_000.0
}

/// The stages of `lead`, oldest first, from its events (any order).
pub fn stages(lead: &Lead, events: &[LeadEvent], now: NaiveDateTime) -> Vec<Stage> {
    let mut sorted: Vec<&LeadEvent> = events
        .iter()
        .filter(|e| {
            e.lead_id == lead.id
                && matches!(
                    e.kind.as_str(),
                    kind::CREATED | kind::PULLED | kind::STATUS_CHANGED
                )
        })
        .collect();
    sorted.sort_by_key(|e| (e.at, e.id));
    let mut out: Vec<Stage> = Vec::new();
    for e in sorted {
        let pair = status_pair(e);
        if e.kind != kind::STATUS_CHANGED {
            if out.is_empty() {
                let status = pair.map_or_else(|| "new".to_string(), |(_, new)| new);
                out.push(Stage {
                    status,
                    entered_at: e.at,
                    left_at: None,
                    days: 0.0,
                });
            }
            continue;
        }
        let Some((old, new)) = pair else { continue };
        if out.is_empty() {
            let status = old.clone().unwrap_or_else(|| "new".to_string());
            out.push(Stage {
                status,
                entered_at: lead.created_at.min(e.at),
                left_at: None,
                days: 0.0,
            });
        }
        let Some(open) = out.last_mut() else { continue };
        if old.as_deref() != Some(open.status.as_str()) {
            continue;
        }
        open.left_at = Some(e.at);
        out.push(Stage {
            status: new,
            entered_at: e.at,
            left_at: None,
            days: 0.0,
        });
    }
    if out.is_empty() {
        out.push(Stage {
            status: lead.status.clone(),
            entered_at: lead.created_at,
            left_at: None,
            days: 0.0,
        });
    }
    for s in &mut out {
        s.days = days(s.entered_at, s.left_at.unwrap_or(now)).max(0.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_700_000_000 + h * 3600, 0)
            .unwrap()
            .naive_utc()
    }

    fn ev(id: i64, kind: &str, changes: &str, h: i64) -> LeadEvent {
        LeadEvent {
            id,
            lead_id: "l".into(),
            kind: kind.into(),
            actor: "t".into(),
            changes: changes.into(),
            message: None,
            at: at(h),
        }
    }

    #[test]
    fn chain_of_changes_and_foreign_events_skipped() {
        let mut lead = crate::leads::store::blank("l".into(), at(0));
        lead.status = "contacted".into();
        let events = vec![
            ev(
                4,
                "status_changed",
                r#"{"status":["scraped","contacted"]}"#,
                36,
            ),
            ev(1, "created", r#"{"status":[null,"new"]}"#, 0),
            ev(2, "status_changed", r#"{"status":["new","scraped"]}"#, 12),
            ev(3, "status_changed", r#"{"status":["won","lost"]}"#, 20),
            ev(5, "updated", r#"{"title":[null,"CTO"]}"#, 40),
        ];
        let s = stages(&lead, &events, at(48));
        let names: Vec<&str> = s.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(names, ["new", "scraped", "contacted"]);
        assert_eq!(s[0].days, 0.5);
        assert_eq!(s[1].days, 1.0);
        assert_eq!(s[2].left_at, None);
        assert_eq!(s[2].days, 0.5);
    }
}
