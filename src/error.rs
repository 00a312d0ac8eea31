//! The error policy of leadcache.
//!
//! - Module boundaries return `thiserror` enums: [`AppError`] for everything a request can hit,
//!   narrower enums where a caller needs to tell cases apart (the Airtable client, opening the
//!   database). The command line and jobs use `anyhow` on top.
//! - [`AppError`] knows its machine code (`NOT_FOUND`, `VALIDATION`, `CONFLICT`, `FORBIDDEN`,
//!   `UNAUTHENTICATED`, `LIMIT`, `UNAVAILABLE`, `INTERNAL`). GraphQL puts it in `extensions.code`;
//!   HTTP handlers turn it into a status code.
//! - `diesel::result::Error::NotFound` becomes [`AppError::NotFound`] in exactly one place, the
//!   `From` impl below. Code that knows *what* was missing uses [`AppError::not_found`].
//! - Internal errors (database, I/O, bugs) are logged once, where they are turned into a response,
//!   and the client sees only "internal error": no SQL, paths or secrets leak out.

use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid {field}: {message}")]
    Validation { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(diesel::result::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn not_found(what: impl Display) -> Self {
        AppError::NotFound(what.to_string())
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(e: impl Display) -> Self {
        AppError::Internal(e.to_string())
    }

    /// The machine-readable code of this error (GraphQL `extensions.code`).
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::Validation { .. } => "VALIDATION",
            AppError::Conflict(_) => "CONFLICT",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Limit(_) => "LIMIT",
            AppError::Unavailable(_) => "UNAVAILABLE",
            AppError::Database(_) | AppError::Internal(_) => "INTERNAL",
        }
    }

    /// Whether this error hides details that must not reach a client.
    pub fn is_internal(&self) -> bool {
        matches!(self, AppError::Database(_) | AppError::Internal(_))
    }

    /// The message a client may see.
    pub fn public_message(&self) -> String {
        if self.is_internal() {
            "internal error".to_string()
        } else {
            self.to_string()
        }
    }

    pub fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Validation { .. } => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Limit(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::NotFound("record".into()),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                AppError::Conflict(format!("already exists: {}", info.message()))
            }
            other => AppError::Database(other),
        }
    }
}

impl From<r2d2::Error> for AppError {
    fn from(e: r2d2::Error) -> Self {
        AppError::Unavailable(format!("no database connection available: {e}"))
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        AppError::Internal(format!("JSON: {e}"))
    }
}

impl async_graphql::ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        if self.is_internal() {
            tracing::error!(error = %self, "request failed");
        }
        let code = self.code();
        let field = match self {
            AppError::Validation { field, .. } => Some(field.clone()),
            _ => None,
        };
        async_graphql::Error::new(self.public_message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = field {
                ext.set("field", field);
            }
        })
    }
}

impl AppError {
    /// This error as a GraphQL error with `extensions.code`.
    pub fn into_gql(self) -> async_graphql::Error {
        use async_graphql::ErrorExtensions;
        self.extend()
    }
}

/// Turns an [`AppResult`] into a GraphQL result that carries `extensions.code`. (async-graphql
/// converts any `Display` error by itself, without a code, so resolvers call `.gql()` instead of `?`
/// on an `AppError`.)
pub trait GqlResultExt<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResultExt<T> for AppResult<T> {
    fn gql(self) -> async_graphql::Result<T> {
        use async_graphql::ErrorExtensions;
        self.map_err(|e| e.extend())
    }
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        if self.is_internal() {
            tracing::error!(error = %self, "request failed");
        }
        let body =
            serde_json::json!({"error": {"code": self.code(), "message": self.public_message()}});
        (self.http_status(), axum::Json(body)).into_response()
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// `s` in double quotes for a message, as the user wrote it: unlike `{:?}`, which escapes
/// combining marks and other printable Unicode (`"पन\u{94d}ह"`), only what would garble or
/// reorder the line is escaped: control characters (`\n`, `\t`, `\r`, `\u{1b}`), bidi
/// controls (`\u{202e}`), `"` and `\`.
pub fn quote(s: &str) -> Quoted<'_> {
    Quoted(s)
}

/// See [`quote`].
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                c if c.is_control() || crate::leads::validate::is_bidi_control(c) => {
                    write!(f, "\\u{{{:x}}}", c as u32)?;
                }
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// An `anyhow` error and its causes on one line, `outer: cause: root`, each said once. A
/// `thiserror` variant that shows its `source` in its own message (`cannot read {path}:
/// {source}`) and also returns it as its source would otherwise print the cause twice
/// (`... (os error 2): No such file or directory (os error 2)`), as `{:#}` does: a cause whose
/// message the line holds already is left out. The command line prints errors with this.
pub fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{quote, report};

    #[test]
    fn a_cause_shown_by_its_wrapper_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read {path}: {source}")]
        struct Read {
            path: &'static str,
            source: std::io::Error,
        }
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(Read {
            path: "x.json",
            source: io,
        })
        .context("import failed");
        assert_eq!(
            report(&e),
            "import failed: cannot read x.json: entity not found"
        );
        let plain = anyhow::anyhow!("root").context("middle").context("top");
        assert_eq!(report(&plain), "top: middle: root");
    }

    #[test]
    fn quoting_keeps_unicode_and_escapes_controls() {
        assert_eq!(quote("पन्ह").to_string(), "\"पन्ह\"");
        assert_eq!(quote("Ñoño").to_string(), "\"Ñoño\"");
        assert_eq!(
            quote("a\"b\\c\n\u{1b}\u{202e}").to_string(),
            "\"a\\\"b\\\\c\\n\\u{1b}\\u{202e}\""
        );
    }
}
