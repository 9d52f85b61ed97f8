//! Work notices across processes. A commit that may make work due sooner than the engines'
//! next wake-up (contacts enrolled, a host's change to enrollments or contacts, a sequence or
//! a mailbox saved) notifies the channel [`WORK_CHANNEL`], its payload the schema's name.
//! PostgreSQL delivers a notification when its transaction commits and folds the identical
//! ones of one transaction into one; a [`WorkListener`] hands them to a host, which wakes its
//! engine (`Engine::wake`), whose wake-up holds at most one pending tick however many
//! notices arrive: that is the debounce. No trigger is involved, and no row writes one.
//!
//! A notice is a hint, never the only way work is found: engines still poll at their next
//! wake-up or poll interval, so a notice lost while a listener reconnects delays work by at
//! most that.

use sqlx::postgres::{PgListener, PgPool};
use sqlx::PgConnection;

use crate::error::Db;
use sequence_core::store::StoreError;

/// The channel work notices are sent on.
pub const WORK_CHANNEL: &str = "sequence_engine_work";

/// Notify [`WORK_CHANNEL`] when the unit of work commits, if `changed`.
pub(crate) async fn notify_work(conn: &mut PgConnection, changed: bool) -> Result<(), StoreError> {
    if changed {
        sqlx::query("SELECT pg_notify($1, coalesce(current_schema(), ''))")
            .bind(WORK_CHANNEL)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    Ok(())
}

/// Work notices of one schema, from a connection of the store's pool that listens on
/// [`WORK_CHANNEL`] (it holds that connection while it lives, and reconnects by itself).
/// Made by [`PostgresStore::listen_for_work`](crate::PostgresStore::listen_for_work).
pub struct WorkListener {
    listener: PgListener,
    schema: String,
}

impl std::fmt::Debug for WorkListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkListener")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl WorkListener {
    /// Listen on the pool's schema (its `search_path`'s first schema).
    pub(crate) async fn new(pool: &PgPool) -> Result<Self, StoreError> {
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(pool)
            .await
            .db()?;
        let mut listener = PgListener::connect_with(pool).await.db()?;
        listener.listen(WORK_CHANNEL).await.db()?;
        Ok(Self {
            listener,
            schema: schema.unwrap_or_default(),
        })
    }

    /// Wait for the next notice from a commit in this listener's schema (notices of other
    /// schemas of the database are passed over).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the listener cannot reconnect (the pool is closed, the
    /// server is gone).
    pub async fn next(&mut self) -> Result<(), StoreError> {
        loop {
            let notice = self.listener.recv().await.db()?;
            if notice.payload() == self.schema {
                return Ok(());
            }
        }
    }
}
