//! Admin operations (SPEC §8): the read-only `sql` console and API token management. Every
//! resolver here requires the `admin` role.
//!
//! Tokens created here are the same as `leadcache token create` makes: the secret is returned once
//! (in `CreatedApiToken.secret`) and only its SHA-256 hash is stored. `apiTokens` lists the tokens
//! of the database; tokens of `LEADCACHE_TOKENS_FILE` are managed in that file and not listed.
//! Creating and revoking tokens needs a real admin token: on an open server (no token yet) they are
//! refused with FORBIDDEN, as the first token comes from `leadcache token create`. Both take effect
//! at once: the server's token cache is made stale, and open subscriptions of a revoked token are
//! closed with 4403 (`tokens::TokenChanges`).

use async_graphql::{Context, Enum, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::auth::Role;
use crate::db::models;
use crate::error::{AppError, GqlResultExt};
use crate::graphql::{caller, state};
use crate::time::to_utc;

/// What a token may do: READ (queries), WRITE (plus lead mutations), ADMIN (everything).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ApiRole {
    /// Queries and subscriptions.
    Read,
    /// Read, plus lead mutations.
    Write,
    /// Everything, including `sql`, backups and tokens.
    Admin,
}

impl From<ApiRole> for Role {
    fn from(r: ApiRole) -> Role {
        match r {
            ApiRole::Read => Role::Read,
            ApiRole::Write => Role::Write,
            ApiRole::Admin => Role::Admin,
        }
    }
}

/// An API token, without its secret.
#[derive(SimpleObject)]
pub struct ApiToken {
    /// The token's name; recorded as the actor of every change made with it.
    pub name: String,
    /// `read`, `write` or `admin`.
    pub role: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; null while it is live.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (written at most once a minute); null if never.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<models::ApiToken> for ApiToken {
    fn from(t: models::ApiToken) -> Self {
        ApiToken {
            name: t.name,
            role: t.role,
            prefix: t.prefix,
            created_at: to_utc(t.created_at),
            revoked_at: t.revoked_at.map(to_utc),
            last_used_at: t.last_used_at.map(to_utc),
        }
    }
}

/// A new token and its secret. The secret is shown only this once; store it now.
#[derive(SimpleObject)]
pub struct CreatedApiToken {
    /// The token.
    pub token: ApiToken,
    /// The secret to send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

/// The result of a `sql` query.
#[derive(SimpleObject)]
pub struct SqlResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each a list of values in column order (blobs are shown as `<N bytes>`).
    pub rows: Vec<Vec<Json<Value>>>,
    /// More rows existed than the row cap (1000) let through.
    pub truncated: bool,
    /// How long the query took, in milliseconds.
    pub elapsed_ms: i64,
}

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Runs one read-only SQL statement (SELECT, WITH, EXPLAIN) on a read-only connection (admin).
    /// At most 1000 rows are returned; a statement running longer than 5 s is interrupted with
    /// LIMIT. Writes, ATTACH and PRAGMA changes are refused with VALIDATION.
    #[graphql(complexity = "crate::graphql::limits::COST_REPORT + child_complexity")]
    async fn sql(&self, ctx: &Context<'_>, query: String) -> async_graphql::Result<SqlResult> {
        caller(ctx)?.require(Role::Admin).gql()?;
        let path = state(ctx).db.path().to_owned();
        let caps = crate::sqlconsole::Caps {
            bytes: state(ctx).config.max_response_bytes,
            ..Default::default()
        };
        let result =
            tokio::task::spawn_blocking(move || crate::sqlconsole::run(&path, &query, caps))
                .await
                .map_err(AppError::internal)
                .and_then(|r| r)
                .gql()?;
        Ok(SqlResult {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Json).collect())
                .collect(),
            truncated: result.truncated,
            elapsed_ms: i64::try_from(result.elapsed_ms).unwrap_or(i64::MAX),
        })
    }

    /// API tokens of the database, live and revoked, oldest first (admin). Never the secrets.
    async fn api_tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiToken>> {
        caller(ctx)?.require(Role::Admin).gql()?;
        let rows = state(ctx).db.run(crate::tokens::list).await.gql()?;
        Ok(rows.into_iter().map(ApiToken::from).collect())
    }
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Creates an API token (admin token; an open server refuses: its first token comes from
    /// `leadcache token create`). Names: 1 to 64 letters, digits, `-`, `_` or `.`, unique.
    /// The secret is in the answer and nowhere else; the token works at once.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: ApiRole,
    ) -> async_graphql::Result<CreatedApiToken> {
        let caller = caller(ctx)?;
        caller.require_admin_token("createApiToken").gql()?;
        let (secret, row) = state(ctx)
            .db
            .write(move |c| crate::tokens::create(c, &name, role.into()))
            .await
            .gql()?;
        state(ctx).tokens.changed();
        tracing::info!(token = %row.name, role = %row.role, by = %caller.name, "API token created");
        Ok(CreatedApiToken {
            token: ApiToken::from(row),
            secret,
        })
    }

    /// Revokes a live API token by name (admin token; an open server refuses). It stops working at
    /// once, and its open subscriptions are closed with 4403. NOT_FOUND when no live token has that
    /// name.
    async fn revoke_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<ApiToken> {
        let caller = caller(ctx)?;
        caller.require_admin_token("revokeApiToken").gql()?;
        let wanted = name.clone();
        let row = state(ctx)
            .db
            .write(move |c| {
                if !crate::tokens::revoke(c, &wanted)? {
                    return Err(AppError::not_found(format!(
                        "live token {}",
                        crate::error::quote(&wanted)
                    )));
                }
                let rows = crate::tokens::list(c)?;
                rows.into_iter().rfind(|t| t.name == wanted).ok_or_else(|| {
                    AppError::not_found(format!("token {}", crate::error::quote(&wanted)))
                })
            })
            .await
            .gql()?;
        state(ctx).tokens.changed();
        tracing::info!(token = %name, by = %caller.name, "API token revoked");
        Ok(ApiToken::from(row))
    }
}
