//! Backup mutations (admin).

use async_graphql::{Context, Object};

use crate::auth::Role;
use crate::backup::{self, Reason};
use crate::error::{AppError, GqlResultExt};
use crate::graphql::types::Backup;
use crate::graphql::{caller, state};

#[derive(Default)]
pub struct BackupMutation;

#[Object]
impl BackupMutation {
    /// Takes a checked backup now (reason `manual`), prunes to BACKUP_KEEP and returns it (admin).
    async fn backup_now(&self, ctx: &Context<'_>) -> async_graphql::Result<Backup> {
        caller(ctx)?.require(Role::Admin).gql()?;
        let state = state(ctx);
        let c = &state.config;
        let result = backup::take_async(
            state.db.clone(),
            c.backup_dir.clone(),
            Reason::Manual,
            c.backup_keep,
        )
        .await;
        match result {
            Ok((_, row)) => Ok(Backup::from(row)),
            Err(backup::BackupError::App(e)) => Err(e).gql(),
            Err(e) => Err(AppError::internal(format!("backup failed: {e}"))).gql(),
        }
    }
}
