//! Retention: the events outbox written, and what is finished deleted in bounded batches.

use chrono::{DateTime, Utc};
use sequence_core::event::DomainEvent;
use sequence_core::ids::TenantId;
use sequence_core::store::StoreError;
use sqlx::postgres::PgPool;
use sqlx::types::Json;
use sqlx::PgConnection;

use crate::error::Db;
use crate::rows::limit;

/// What [`PostgresStore::prune`](crate::PostgresStore::prune) deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pruned {
    /// Final sends of final enrollments.
    pub sends: u64,
    /// Recorded events.
    pub events: u64,
    /// Mailbox-days and daily counters of past dates.
    pub counters: u64,
}

pub(crate) async fn record_events(
    conn: &mut PgConnection,
    tenant: TenantId,
    at: DateTime<Utc>,
    events: &[DomainEvent],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (tenant_id, at, doc) \
         SELECT $1, $2, d FROM unnest($3::jsonb[]) WITH ORDINALITY AS x(d, n) ORDER BY n",
    )
    .bind(tenant.0)
    .bind(at)
    .bind(events.iter().map(Json).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

/// Run one bounded `DELETE` (its own transaction) until it deletes fewer than `batch` rows.
async fn drain<T>(
    pool: &PgPool,
    sql: &'static str,
    older_than: T,
    batch: usize,
) -> Result<u64, StoreError>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Copy + Send,
{
    let mut total = 0;
    loop {
        let deleted = sqlx::query(sql)
            .bind(older_than)
            .bind(limit(batch))
            .execute(pool)
            .await
            .db()?
            .rows_affected();
        total += deleted;
        if deleted < u64::try_from(batch).unwrap_or(u64::MAX) {
            return Ok(total);
        }
    }
}

pub(crate) async fn prune(
    pool: &PgPool,
    older_than: DateTime<Utc>,
    batch: usize,
) -> Result<Pruned, StoreError> {
    if batch == 0 {
        return Ok(Pruned::default());
    }
    // A final send of a final enrollment is never read by the engine again.
    let sends = drain(
        pool,
        "DELETE FROM sends WHERE (tenant_id, id) IN ( \
             SELECT s.tenant_id, s.id FROM sends s \
             JOIN enrollments e ON e.tenant_id = s.tenant_id AND e.id = s.enrollment_id \
             WHERE s.status IN ('sent', 'failed', 'cancelled', 'uncertain') \
               AND e.status IN ('completed', 'exited') AND s.planned_at < $1 \
             LIMIT $2)",
        older_than,
        batch,
    )
    .await?;
    let events = drain(
        pool,
        "DELETE FROM events WHERE (tenant_id, id) IN ( \
             SELECT tenant_id, id FROM events WHERE at < $1 LIMIT $2)",
        older_than,
        batch,
    )
    .await?;
    // Dates before the day before the cutoff's UTC date, so that no zone's current day is
    // touched.
    let before = older_than.date_naive() - chrono::Days::new(1);
    let mut counters = drain(
        pool,
        "DELETE FROM mailbox_days WHERE (tenant_id, mailbox_id, local_date) IN ( \
             SELECT tenant_id, mailbox_id, local_date FROM mailbox_days \
             WHERE local_date < $1 LIMIT $2)",
        before,
        batch,
    )
    .await?;
    counters += drain(
        pool,
        "DELETE FROM daily_new_starts WHERE (tenant_id, day, sequence_id) IN ( \
             SELECT tenant_id, day, sequence_id FROM daily_new_starts \
             WHERE day < $1 LIMIT $2)",
        before,
        batch,
    )
    .await?;
    counters += drain(
        pool,
        "DELETE FROM daily_domain_sends WHERE (tenant_id, day, domain) IN ( \
             SELECT tenant_id, day, domain FROM daily_domain_sends \
             WHERE day < $1 LIMIT $2)",
        before,
        batch,
    )
    .await?;
    Ok(Pruned {
        sends,
        events,
        counters,
    })
}
