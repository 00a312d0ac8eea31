//! Building the client's write requests, apart from sending them, so that a dry run
//! ([`AirtableApi::preview`](crate::airtable::AirtableApi::preview)) shows exactly what a call
//! sends: both come from the builders here.

use std::sync::atomic::Ordering;

use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use super::{HttpClient, RetryPolicy};
use crate::airtable::{AirtableError, Fields, PlannedRequest, RecordUpdate, RequestKind};

/// A request built but not sent: what `AirtableApi::preview` shows is what `send_prepared`
/// sends, because both come from here.
pub(super) struct Prepared {
    pub(super) kind: RequestKind,
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) body: Option<Value>,
    pub(super) policy: RetryPolicy,
}

impl Prepared {
    pub(super) fn planned(&self) -> PlannedRequest {
        let mut path = self.url.path().to_string();
        if let Some(q) = self.url.query() {
            path.push('?');
            path.push_str(q);
        }
        PlannedRequest {
            method: self.method.to_string(),
            path,
            body: self.body.clone(),
        }
    }
}

pub(super) fn check_merge_on(merge_on: &[String]) -> Result<(), AirtableError> {
    if merge_on.is_empty() || merge_on.len() > 3 {
        return Err(AirtableError::InvalidRequest(format!(
            "upsert needs 1 to 3 fields to merge on, got {}",
            merge_on.len()
        )));
    }
    Ok(())
}

impl HttpClient {
    /// The request a create of `records` sends now: an upsert merging on the Lead ID field while
    /// the table has one (and every record carries its id), else a plain create without it.
    /// Returns whether it is the upsert.
    pub(super) fn prepare_create(&self, records: &[Fields]) -> (Prepared, bool) {
        let field = &self.inner.lead_id_field;
        let upserts = self.inner.upsert_creates.load(Ordering::Relaxed);
        let all_have_id = records.iter().all(|r| {
            r.get(field)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        });
        if upserts && all_have_id {
            return (
                self.prepare_upsert(RequestKind::Create, records, std::slice::from_ref(field)),
                true,
            );
        }
        let records: Vec<Value> = records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if !upserts {
                    // The table has no Lead ID field: sending it would fail with UNKNOWN_FIELD_NAME.
                    r.remove(field);
                }
                json!({"fields": r})
            })
            .collect();
        let prepared = Prepared {
            kind: RequestKind::Create,
            method: Method::POST,
            url: self.inner.table_url.clone(),
            body: Some(json!({"records": records, "typecast": self.inner.opts.typecast})),
            policy: RetryPolicy::NotApplied,
        };
        (prepared, false)
    }

    pub(super) fn prepare_upsert(
        &self,
        kind: RequestKind,
        records: &[Fields],
        merge_on: &[String],
    ) -> Prepared {
        Prepared {
            kind,
            method: Method::PATCH,
            url: self.inner.table_url.clone(),
            body: Some(json!({
                "performUpsert": {"fieldsToMergeOn": merge_on},
                "records": records.iter().map(|f| json!({"fields": f})).collect::<Vec<_>>(),
                "typecast": self.inner.opts.typecast,
            })),
            policy: RetryPolicy::All,
        }
    }

    pub(super) fn prepare_update(&self, updates: &[RecordUpdate]) -> Prepared {
        Prepared {
            kind: RequestKind::Update,
            method: Method::PATCH,
            url: self.inner.table_url.clone(),
            body: Some(json!({"records": updates, "typecast": self.inner.opts.typecast})),
            policy: RetryPolicy::All,
        }
    }

    pub(super) fn prepare_delete(&self, ids: &[String]) -> Prepared {
        let mut url = self.inner.table_url.clone();
        url.query_pairs_mut()
            .extend_pairs(ids.iter().map(|id| ("records[]", id.as_str())));
        Prepared {
            kind: RequestKind::Delete,
            method: Method::DELETE,
            url,
            body: None,
            policy: RetryPolicy::All,
        }
    }
}
