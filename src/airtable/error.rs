//! Errors of the Airtable client, one variant per class of airtable-api.md §5.
//!
//! Accepted error body shapes (all seen from the real API):
//! - `{"error":{"type":"T","message":"M"}}` (message sometimes missing),
//! - `{"error":"NOT_FOUND"}` (a bare string),
//! - `{"errors":[{"error":"RATE_LIMIT_REACHED","message":"M"}]}` (429s seen in production).
//!
//! Messages come from Airtable's body or from reqwest errors (which name the URL, never headers),
//! so the token never appears in an error.

use std::time::Duration;

/// The `type` of a 422 answer. Airtable's message is kept next to it in
/// [`AirtableError::Unprocessable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnprocessableKind {
    UnknownFieldName,
    InvalidValueForColumn,
    RowDoesNotExist,
    InvalidRecords,
    InvalidFilterByFormula,
    /// The list offset expired: restart the pass from the beginning.
    IteratorNotAvailable,
    InvalidOffsetValue,
    InvalidPageSize,
    InvalidMultipleChoiceOptions,
    InvalidRequestBody,
    InvalidRequestUnknown,
    ViewNameNotFound,
    Other(String),
}

impl UnprocessableKind {
    pub fn from_type(t: &str) -> Self {
        match t {
            "UNKNOWN_FIELD_NAME" => Self::UnknownFieldName,
            "INVALID_VALUE_FOR_COLUMN" => Self::InvalidValueForColumn,
            "ROW_DOES_NOT_EXIST" => Self::RowDoesNotExist,
            "INVALID_RECORDS" => Self::InvalidRecords,
            "INVALID_FILTER_BY_FORMULA" => Self::InvalidFilterByFormula,
            "LIST_RECORDS_ITERATOR_NOT_AVAILABLE" => Self::IteratorNotAvailable,
            "INVALID_OFFSET_VALUE" => Self::InvalidOffsetValue,
            "INVALID_PAGE_SIZE_ARGUMENT" => Self::InvalidPageSize,
            "INVALID_MULTIPLE_CHOICE_OPTIONS" => Self::InvalidMultipleChoiceOptions,
            "INVALID_REQUEST_BODY" => Self::InvalidRequestBody,
            "INVALID_REQUEST_UNKNOWN" => Self::InvalidRequestUnknown,
            "VIEW_NAME_NOT_FOUND" => Self::ViewNameNotFound,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_type(&self) -> &str {
        match self {
            Self::UnknownFieldName => "UNKNOWN_FIELD_NAME",
            Self::InvalidValueForColumn => "INVALID_VALUE_FOR_COLUMN",
            Self::RowDoesNotExist => "ROW_DOES_NOT_EXIST",
            Self::InvalidRecords => "INVALID_RECORDS",
            Self::InvalidFilterByFormula => "INVALID_FILTER_BY_FORMULA",
            Self::IteratorNotAvailable => "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
            Self::InvalidOffsetValue => "INVALID_OFFSET_VALUE",
            Self::InvalidPageSize => "INVALID_PAGE_SIZE_ARGUMENT",
            Self::InvalidMultipleChoiceOptions => "INVALID_MULTIPLE_CHOICE_OPTIONS",
            Self::InvalidRequestBody => "INVALID_REQUEST_BODY",
            Self::InvalidRequestUnknown => "INVALID_REQUEST_UNKNOWN",
            Self::ViewNameNotFound => "VIEW_NAME_NOT_FOUND",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for UnprocessableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_type())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AirtableError {
    /// 429 `RATE_LIMIT_REACHED` (either body shape). Retried after the base's pause.
    #[error("Airtable rate limit reached: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 429 `PUBLIC_API_BILLING_LIMIT_EXCEEDED`: the plan's monthly cap. Never retried.
    #[error("Airtable monthly API quota exceeded: {message}")]
    QuotaExceeded { message: String },
    /// 401, or 403 on a base/table (missing scope, base not shared with the token). Stops the run.
    #[error("Airtable refused the token (HTTP {status} {kind}): {message}")]
    Auth {
        status: u16,
        kind: String,
        message: String,
    },
    /// The record does not exist (404 `MODEL_ID_NOT_FOUND`, 404 `{"error":"NOT_FOUND"}`, or 403
    /// `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND` on a single-record call).
    #[error("Airtable record not found ({kind}): {message}")]
    NotFound { kind: String, message: String },
    /// 422 of any type, with Airtable's message.
    #[error("Airtable rejected the request ({kind}): {message}")]
    Unprocessable {
        kind: UnprocessableKind,
        message: String,
    },
    /// Any other 4xx.
    #[error("Airtable answered HTTP {status} {kind}: {message}")]
    Client {
        status: u16,
        kind: String,
        message: String,
    },
    /// 5xx: retryable, with the server's `Retry-After` when given.
    #[error("Airtable server error HTTP {status} {kind}: {message}")]
    Server {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request timed out: retryable.
    #[error("Airtable request timed out")]
    Timeout,
    /// Could not connect, or the connection broke before a full answer: retryable.
    #[error("Airtable connection failed: {message}")]
    Connection {
        message: String,
        /// True when the request certainly never reached the server (connect failed).
        not_sent: bool,
    },
    /// Not sent: the base is failing (5xx, timeouts, connection errors) and its next probe is
    /// not due yet (see `pacing.rs`). Retryable later; costs no request.
    #[error("Airtable is unreachable; next attempt in {} s", retry_in.as_secs().max(1))]
    BackingOff { retry_in: Duration },
    /// A 2xx answer whose body was not what the API documents.
    #[error("unexpected Airtable response: {0}")]
    Decode(String),
    /// Refused locally before sending (e.g. more than 10 records in a batch).
    #[error("invalid Airtable request: {0}")]
    InvalidRequest(String),
    /// No token, or the token file could not be read.
    #[error("Airtable token unavailable: {0}")]
    Token(String),
}

impl AirtableError {
    /// Whether waiting and sending again may succeed (429 rate limit, 5xx, timeouts, connection).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Timeout
                | Self::Connection { .. }
                | Self::BackingOff { .. }
        )
    }

    /// Whether this says Airtable is down or failing (5xx, timeout, connection error, or the
    /// base backing off after those): the request, not the record, failed, so it never counts
    /// toward an outbox row's attempts.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Self::Server { .. } | Self::Timeout | Self::Connection { .. } | Self::BackingOff { .. }
        )
    }

    /// 401/403 on the base or table, or no usable token: stop the run, do not retry.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Auth { .. } | Self::Token(_))
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Self::RateLimited { .. })
    }

    pub fn is_quota(&self) -> bool {
        matches!(self, Self::QuotaExceeded { .. })
    }

    /// Airtable rejected the content of the request (a 422): a per-record failure for the push.
    pub fn is_unprocessable(&self) -> bool {
        matches!(self, Self::Unprocessable { .. })
    }

    /// The 422 type, when this is a 422.
    pub fn unprocessable_kind(&self) -> Option<&UnprocessableKind> {
        match self {
            Self::Unprocessable { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// Whether this is `LIST_RECORDS_ITERATOR_NOT_AVAILABLE` (restart the list pass).
    pub fn is_iterator_expired(&self) -> bool {
        self.unprocessable_kind() == Some(&UnprocessableKind::IteratorNotAvailable)
    }

    /// Builds the error for a non-2xx answer. `single_record` marks calls on one record id, where
    /// a 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND` means "no such record".
    pub fn from_response(
        status: u16,
        body: &str,
        retry_after: Option<Duration>,
        single_record: bool,
    ) -> Self {
        let (kind, message) = parse_error_body(body);
        let kind_or = |default: &str| kind.clone().unwrap_or_else(|| default.to_string());
        let message = message.unwrap_or_default();
        match status {
            429 => {
                if kind.as_deref() == Some("PUBLIC_API_BILLING_LIMIT_EXCEEDED") {
                    Self::QuotaExceeded { message }
                } else {
                    Self::RateLimited {
                        message,
                        retry_after,
                    }
                }
            }
            401 => Self::Auth {
                status,
                kind: kind_or("AUTHENTICATION_REQUIRED"),
                message,
            },
            403 => {
                let k = kind_or("FORBIDDEN");
                if single_record && k == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND" {
                    Self::NotFound { kind: k, message }
                } else {
                    Self::Auth {
                        status,
                        kind: k,
                        message,
                    }
                }
            }
            404 => Self::NotFound {
                kind: kind_or("NOT_FOUND"),
                message,
            },
            422 => Self::Unprocessable {
                kind: UnprocessableKind::from_type(&kind_or("INVALID_REQUEST_UNKNOWN")),
                message,
            },
            500..=599 => Self::Server {
                status,
                kind: kind_or(""),
                message,
                retry_after,
            },
            _ => Self::Client {
                status,
                kind: kind_or(""),
                message,
            },
        }
    }

    pub(crate) fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            return Self::Timeout;
        }
        // `without_url`: the URL holds no secret, but keep messages short and stable.
        let message = std::error::Error::source(e)
            .map(|s| format!("{e}: {s}"))
            .unwrap_or_else(|| e.to_string());
        Self::Connection {
            message,
            not_sent: e.is_connect(),
        }
    }
}

/// `(type, message)` from any of the accepted body shapes.
pub fn parse_error_body(body: &str) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        let trimmed = body.trim();
        return (
            None,
            (!trimmed.is_empty()).then(|| trimmed.chars().take(300).collect()),
        );
    };
    let message_of =
        |o: &serde_json::Value| o.get("message").and_then(|m| m.as_str()).map(String::from);
    if let Some(err) = v.get("error") {
        if let Some(t) = err.as_str() {
            return (Some(t.to_string()), message_of(&v));
        }
        let t = err.get("type").and_then(|t| t.as_str()).map(String::from);
        return (t, message_of(err));
    }
    if let Some(first) = v
        .get("errors")
        .and_then(|e| e.as_array())
        .and_then(|a| a.first())
    {
        let t = first
            .get("error")
            .or_else(|| first.get("type"))
            .and_then(|t| t.as_str())
            .map(String::from);
        return (t, message_of(first));
    }
    (None, None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_body_shape() {
        let e = AirtableError::from_response(
            429,
            r#"{"errors":[{"error":"RATE_LIMIT_REACHED","message":"Rate limit exceeded. Please try again later"}]}"#,
            None,
            false,
        );
        assert!(e.is_rate_limited());
        let e = AirtableError::from_response(
            429,
            r#"{"error":{"type":"RATE_LIMIT_REACHED","message":"x"}}"#,
            None,
            false,
        );
        assert!(e.is_rate_limited() && e.is_retryable());
        let e = AirtableError::from_response(
            429,
            r#"{"error":{"type":"PUBLIC_API_BILLING_LIMIT_EXCEEDED","message":"q"}}"#,
            None,
            false,
        );
        assert!(e.is_quota() && !e.is_retryable());
        let e = AirtableError::from_response(404, r#"{"error":"NOT_FOUND"}"#, None, true);
        assert!(e.is_not_found());
        let e = AirtableError::from_response(
            403,
            r#"{"error":{"type":"INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND","message":"m"}}"#,
            None,
            true,
        );
        assert!(e.is_not_found());
        let e = AirtableError::from_response(
            403,
            r#"{"error":{"type":"INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND","message":"m"}}"#,
            None,
            false,
        );
        assert!(e.is_auth() && !e.is_retryable());
        let e = AirtableError::from_response(
            422,
            r#"{"error":{"type":"LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}"#,
            None,
            false,
        );
        assert!(e.is_iterator_expired());
        let e = AirtableError::from_response(
            503,
            r#"{"error":{"type":"RETRIABLE_ERROR","message":"m"}}"#,
            Some(Duration::from_secs(2)),
            false,
        );
        assert!(e.is_retryable());
        let e = AirtableError::from_response(502, "<html>bad gateway</html>", None, false);
        assert!(e.is_retryable());
    }
}
