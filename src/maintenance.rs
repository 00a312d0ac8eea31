//! Development and upkeep operations on the whole database.

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;

use crate::error::AppError;

/// Deletes every lead and everything hanging off it (keeps tokens and the backup log).
pub fn reset(conn: &mut SqliteConnection) -> Result<(), AppError> {
    conn.immediate_transaction(|c| {
        c.batch_execute(
            "DELETE FROM sync_conflicts; DELETE FROM outbox; DELETE FROM campaign_leads; DELETE FROM campaigns; \
             DELETE FROM enrichments; DELETE FROM lead_events; DELETE FROM leads; DELETE FROM sync_runs; \
             DELETE FROM cache_meta; DELETE FROM import_log; DELETE FROM airtable_usage;",
        )?;
        Ok(())
    })
}
