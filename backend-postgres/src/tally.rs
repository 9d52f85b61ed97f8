//! Statistics as SQL aggregates: a sequence's enrollments and sends counted by group where
//! they live, so that no row leaves the server.

use sequence_core::ids::{SequenceId, TenantId};
use sequence_core::store::{EnrollmentTally, SendTally, SequenceTally, StoreError};
use sqlx::{PgConnection, Row};

use crate::error::Db;
use crate::rows::{from_name, uint};

/// Enrollments by (status, exit reason). The document's `exit_reason`, `steps_sent`,
/// `replied_at` and `ended_at` are read in place (each document parsed once); seconds to
/// the end are whole seconds, as the domain counts them.
const ENROLLMENTS: &str = "\
    SELECT e.status, d.exit_reason, count(*) AS n, \
        count(*) FILTER (WHERE d.steps_sent > 0) AS started, \
        count(*) FILTER (WHERE d.replied_at IS NOT NULL) AS replied, \
        count(*) FILTER (WHERE d.ended_at IS NOT NULL) AS ended, \
        COALESCE(sum(trunc(EXTRACT(EPOCH FROM (d.ended_at - e.enrolled_at)))), 0)::int8 \
            AS seconds \
    FROM enrollment_identities i \
    JOIN enrollments e ON e.tenant_id = i.tenant_id AND e.id = i.id, \
        json_to_record(e.doc) AS d(exit_reason text, steps_sent int8, \
            replied_at timestamptz, ended_at timestamptz) \
    WHERE i.tenant_id = $1 AND i.sequence_id = $2 \
    GROUP BY e.status, d.exit_reason";

/// Sends by (step, variant, status), with their first opens and clicks.
const SENDS: &str = "\
    SELECT s.step, COALESCE(d.variant, 0) AS variant, s.status, count(*) AS n, \
        count(*) FILTER (WHERE d.opened_at IS NOT NULL) AS opened, \
        count(*) FILTER (WHERE d.clicked_at IS NOT NULL) AS clicked \
    FROM sends s, json_to_record(s.doc) AS d(variant int4, opened_at text, clicked_at text) \
    WHERE s.tenant_id = $1 AND s.sequence_id = $2 \
    GROUP BY s.step, 2, s.status";

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
