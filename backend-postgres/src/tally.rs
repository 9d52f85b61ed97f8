//! Statistics as SQL aggregates: a sequence's enrollments and sends counted by group where
//! they live, so that no row leaves the server.

use sequence_core::ids::{SequenceId, TenantId};
use sequence_core::store::{EnrollmentTally, SendTally, SequenceTally, StoreError};
use sqlx::{PgConnection, Row};

use crate::error::Db;
use crate::rows::{from_name, uint};

/// Enrollments by (status, exit reason). The document's `exit_reason`, `steps_sent`,
/// `replied_at` and `ended_at` are read in place; seconds to the end are whole seconds, as
/// the domain counts them.
const ENROLLMENTS: &str = "\
    SELECT status, doc->>'exit_reason' AS exit_reason, count(*) AS n, \
        count(*) FILTER (WHERE (doc->>'steps_sent')::int8 > 0) AS started, \
        count(*) FILTER (WHERE doc->>'replied_at' IS NOT NULL) AS replied, \
        count(*) FILTER (WHERE doc->>'ended_at' IS NOT NULL) AS ended, \
        COALESCE(sum(trunc(EXTRACT(EPOCH FROM \
            ((doc->>'ended_at')::timestamptz - enrolled_at)))), 0)::int8 AS seconds \
    FROM enrollments WHERE tenant_id = $1 AND sequence_id = $2 \
    GROUP BY status, doc->>'exit_reason'";

/// Sends by (step, variant, status), with their first opens and clicks.
const SENDS: &str = "\
    SELECT step, COALESCE((doc->>'variant')::int4, 0) AS variant, status, count(*) AS n, \
        count(*) FILTER (WHERE doc->>'opened_at' IS NOT NULL) AS opened, \
        count(*) FILTER (WHERE doc->>'clicked_at' IS NOT NULL) AS clicked \
    FROM sends WHERE tenant_id = $1 AND sequence_id = $2 \
    GROUP BY step, 2, status";

/// A count column as the tally holds it.
fn count(row: &sqlx::postgres::PgRow, col: &str) -> Result<u64, StoreError> {
    let n: i64 = row.try_get(col).db()?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn sequence_tally(
    conn: &mut PgConnection,
    tenant: TenantId,
    sequence: SequenceId,
) -> Result<SequenceTally, StoreError> {
    let rows = sqlx::query(ENROLLMENTS)
        .bind(tenant.0)
        .bind(sequence.0)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut enrollments = Vec::with_capacity(rows.len());
    for r in &rows {
        let status: String = r.try_get("status").db()?;
        let exit_reason: Option<String> = r.try_get("exit_reason").db()?;
        let mut t: EnrollmentTally = EnrollmentTally::new(from_name(&status)?);
        t.exit_reason = exit_reason.as_deref().map(from_name).transpose()?;
        t.count = count(r, "n")?;
        t.started = count(r, "started")?;
        t.replied = count(r, "replied")?;
        t.ended = count(r, "ended")?;
        t.seconds_to_end = r.try_get("seconds").db()?;
        enrollments.push(t);
    }
    let rows = sqlx::query(SENDS)
        .bind(tenant.0)
        .bind(sequence.0)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut sends = Vec::with_capacity(rows.len());
    for r in &rows {
        let status: String = r.try_get("status").db()?;
        let mut t = SendTally::new(
            uint(r.try_get("step").db()?),
            uint(r.try_get("variant").db()?),
            from_name(&status)?,
        );
        t.count = count(r, "n")?;
        t.opened = count(r, "opened")?;
        t.clicked = count(r, "clicked")?;
        sends.push(t);
    }
    Ok(SequenceTally::sorted(enrollments, sends))
}
