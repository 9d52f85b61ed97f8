//! The due read: what planning reads of each due enrollment and its contact, as columns
//! (the documents only for the rows a planner settles), and what a store remembers of the
//! read for the plan made from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use sequence_core::contact::Contact;
use sequence_core::enrollment::Enrollment;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SequenceId, TenantId};
use sequence_core::store::{DueDocuments, DueEnrollment, MailboxBound, PoolBound, StoreError};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::error::Db;
use crate::rows::{self, limit, uint};

/// The enrollments the latest due read of a store handed out, by id, so that the plan made
/// from them is applied without locking them first, at the versions read (see
/// `changes::load_enrollments_seen`). Shared by a store's clones; replaced by each due read
/// and emptied once a plan is applied.
#[derive(Debug, Default)]
pub(crate) struct SeenEnrollments(Mutex<Arc<Seen>>);

/// The tenant and version of each enrollment a due read handed out, by id.
pub(crate) type Seen = HashMap<EnrollmentId, (TenantId, u64)>;

impl SeenEnrollments {
    /// Hold the enrollments of `due` (dropping what was held).
    pub(crate) fn replace(&self, due: &[DueEnrollment]) {
        let read: Seen = due.iter().map(|d| (d.id, (d.tenant, d.version))).collect();
        *self.lock() = Arc::new(read);
    }

    /// What is held now.
    pub(crate) fn current(&self) -> Arc<Seen> {
        Arc::clone(&self.lock())
    }

    /// Drop what is held, if it is still `held` (a later due read's rows stay).
    pub(crate) fn release(&self, held: &Arc<Seen>) {
        let mut current = self.lock();
        if Arc::ptr_eq(&current, held) {
            *current = Arc::default();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Seen>> {
        // A panic while holding the lock leaves a whole map (every write replaces it).
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The columns of a due enrollment the due read hands out (see [`due_row`]), the first two
/// its sort key.
macro_rules! due_columns {
    () => {
        "due_at, id, tenant_id, sequence_id, contact_id, status, step, earliest, mailbox_id, \
         version, uncertain, contact_status, contact_zone, recipient_domain"
    };
}

/// The latest due instant that the wait `mw` (a mailbox wait joined when it holds at `$1`, or
/// nulls) holds back: `-infinity` with no wait, `infinity` for a wait that holds them all.
macro_rules! held_through {
    () => {
        "CASE WHEN mw.until IS NULL THEN '-infinity'::timestamptz \
              ELSE coalesce(mw.holds_due_by, 'infinity'::timestamptz) END"
    };
}

/// The due read's SQL: three branches, each read in index order with the columns planning
/// reads: the paused enrollments whose pause ends, from `enrollments_due_rest`; those that go
/// to a pool, per sequence from `enrollments_due_to_pool` (passing over the sequences whose
/// pool wait holds), each sequence's read up to `$pool_limit` after `$pool_bounds` (a join
/// that may name a bound); and those sticky to a mailbox, per mailbox from
/// `enrollments_due_on_mailbox` (passing over the mailboxes whose wait holds), each read up
/// to `$mailbox_limit` after `$mailbox_bounds`. A held backlog is passed over at one probe,
/// never walked.
macro_rules! due_read {
    ($pool_bounds:literal, $pool_limit:literal, $mailbox_bounds:literal, $mailbox_limit:literal) => {
        concat!(
            "(SELECT ",
            due_columns!(),
            " FROM enrollments \
              WHERE due_at <= $1 AND status <> 'active' \
              ORDER BY due_at, id LIMIT $2) \
             UNION ALL \
             (SELECT p.* FROM sequences s ",
            $pool_bounds,
            " CROSS JOIN LATERAL ( \
                  SELECT ",
            due_columns!(),
            " FROM enrollments \
                  WHERE tenant_id = s.tenant_id AND sequence_id = s.id AND due_at <= $1 \
                    AND status = 'active' AND mailbox_id IS NULL \
                  ORDER BY due_at, id LIMIT ",
            $pool_limit,
            ") p \
              WHERE NOT EXISTS (SELECT 1 FROM pool_waits w \
                                WHERE w.tenant_id = s.tenant_id AND w.sequence_id = s.id \
                                  AND w.until > $1)) \
             UNION ALL \
             (SELECT x.* FROM mailboxes m ",
            $mailbox_bounds,
            " LEFT JOIN mailbox_waits mw \
                  ON mw.tenant_id = m.tenant_id AND mw.mailbox_id = m.id AND mw.until > $1 \
              CROSS JOIN LATERAL ( \
                  SELECT ",
            due_columns!(),
            " FROM enrollments \
                  WHERE tenant_id = m.tenant_id AND mailbox_id = m.id AND due_at <= $1 \
                    AND due_at > ",
            held_through!(),
            " AND status = 'active' AND mailbox_id IS NOT NULL \
                  ORDER BY due_at, id LIMIT ",
            $mailbox_limit,
            ") x)"
        )
    };
}

/// The due read with no bound: the limit a constant the server's planner can count on.
pub(crate) const DUE_READ: &str = due_read!("", "$2", "", "$2");

/// The due read with bounds, passed as arrays: per sequence ($3 tenants, $4 sequences, $5
/// bounds) and per sticky mailbox ($6 tenants, $7 mailboxes, $8 bounds).
const DUE_READ_BOUNDED: &str = due_read!(
    "CROSS JOIN LATERAL ( \
         SELECT min(b.at_most) AS at_most \
         FROM unnest($3::uuid[], $4::uuid[], $5::int8[]) AS b(tenant_id, sequence_id, at_most) \
         WHERE b.tenant_id = s.tenant_id AND b.sequence_id = s.id) b",
    "least($2, coalesce(b.at_most, $2))",
    "CROSS JOIN LATERAL ( \
         SELECT min(mb.at_most) AS at_most \
         FROM unnest($6::uuid[], $7::uuid[], $8::int8[]) AS mb(tenant_id, mailbox_id, at_most) \
         WHERE mb.tenant_id = m.tenant_id AND mb.mailbox_id = m.id) mb",
    "least($2, coalesce(mb.at_most, $2))"
);

pub(crate) async fn due_enrollments(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    max: usize,
    pools: &[PoolBound],
    mailboxes: &[MailboxBound],
) -> Result<Vec<DueEnrollment>, StoreError> {
    // The branches are merged here rather than sorted by the server, which would sort whole
    // documents.
    let query = if pools.is_empty() && mailboxes.is_empty() {
        sqlx::query(DUE_READ).bind(now).bind(limit(max))
    } else {
        let tenants: Vec<Uuid> = pools.iter().map(|b| b.tenant.0).collect();
        let sequences: Vec<Uuid> = pools.iter().map(|b| b.sequence.0).collect();
        let sizes: Vec<i64> = pools.iter().map(|b| limit(b.at_most)).collect();
        let mailbox_tenants: Vec<Uuid> = mailboxes.iter().map(|b| b.tenant.0).collect();
        let mailbox_ids: Vec<Uuid> = mailboxes.iter().map(|b| b.mailbox.0).collect();
        let mailbox_sizes: Vec<i64> = mailboxes.iter().map(|b| limit(b.at_most)).collect();
        sqlx::query(DUE_READ_BOUNDED)
            .bind(now)
            .bind(limit(max))
            .bind(tenants)
            .bind(sequences)
            .bind(sizes)
            .bind(mailbox_tenants)
            .bind(mailbox_ids)
            .bind(mailbox_sizes)
    };
    // Each row is decoded as it arrives, while the server still reads the next ones.
    let mut keyed: Vec<((DateTime<Utc>, Uuid), DueEnrollment)> = query
        .fetch(&mut *conn)
        .map(|row| due_row(&row.db()?))
        .try_collect()
        .await?;
    keyed.sort_unstable_by_key(|(key, _)| *key);
    keyed.truncate(max);
    Ok(keyed.into_iter().map(|(_, due)| due).collect())
}

/// A row of the due read ([`due_columns`], by position): its sort key and the enrollment.
fn due_row(r: &PgRow) -> Result<((DateTime<Utc>, Uuid), DueEnrollment), StoreError> {
    let at: DateTime<Utc> = r.try_get(0).db()?;
    let id: Uuid = r.try_get(1).db()?;
    let zone: Option<&str> = r.try_get(12).db()?;
    let due = DueEnrollment {
        id: EnrollmentId(id),
        tenant: TenantId(r.try_get(2).db()?),
        sequence: SequenceId(r.try_get(3).db()?),
        contact: ContactId(r.try_get(4).db()?),
        status: rows::enrollment_status(r.try_get(5).db()?)?,
        step: uint(r.try_get(6).db()?),
        earliest: r.try_get(7).db()?,
        mailbox: r.try_get::<Option<Uuid>, _>(8).db()?.map(MailboxId),
        version: u64::try_from(r.try_get::<i64, _>(9).db()?).unwrap_or(0),
        uncertain: r.try_get(10).db()?,
        contact_status: rows::contact_status(r.try_get(11).db()?)?,
        contact_zone: zone.map(rows::zone).transpose()?,
        domain: Some(r.try_get(13).db()?),
        documents: None,
    };
    Ok(((at, id), due))
}

/// The documents of the enrollments `due` names, each with its contact: one read by key.
pub(crate) async fn due_documents(
    conn: &mut PgConnection,
    due: &[(TenantId, EnrollmentId)],
) -> Result<Vec<DueDocuments>, StoreError> {
    let tenants: Vec<Uuid> = due.iter().map(|(t, _)| t.0).collect();
    let ids: Vec<Uuid> = due.iter().map(|(_, id)| id.0).collect();
    let rows: Vec<(Json<Enrollment>, Json<Contact>)> = sqlx::query_as(
        "SELECT e.doc, c.doc FROM unnest($1::uuid[], $2::uuid[]) AS k(tenant_id, id) \
         JOIN enrollments e ON e.tenant_id = k.tenant_id AND e.id = k.id \
         JOIN contacts c ON c.tenant_id = e.tenant_id AND c.id = e.contact_id",
    )
    .bind(tenants)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    Ok(rows
        .into_iter()
        .map(|(Json(e), Json(c))| DueDocuments {
            enrollment: Arc::new(e),
            contact: Arc::new(c),
        })
        .collect())
}

/// The sequences with an enrollment due at `now` that goes to the pool, not held by a wait:
/// one probe of `enrollments_due_to_pool` per sequence.
pub(crate) async fn due_pools(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<(TenantId, SequenceId)>, StoreError> {
    due_pairs(
        conn,
        now,
        SequenceId,
        "SELECT s.tenant_id, s.id FROM sequences s \
         WHERE EXISTS (SELECT 1 FROM enrollments e \
                       WHERE e.tenant_id = s.tenant_id AND e.sequence_id = s.id \
                         AND e.due_at <= $1 AND e.status = 'active' AND e.mailbox_id IS NULL) \
           AND NOT EXISTS (SELECT 1 FROM pool_waits w \
                           WHERE w.tenant_id = s.tenant_id AND w.sequence_id = s.id \
                             AND w.until > $1)",
    )
    .await
}

/// The mailboxes with an enrollment of their tenant due at `now` sticky to them, not held
/// by a wait: one probe of `enrollments_due_on_mailbox` per mailbox.
pub(crate) async fn due_mailboxes(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<(TenantId, MailboxId)>, StoreError> {
    due_pairs(
        conn,
        now,
        MailboxId,
        concat!(
            "SELECT m.tenant_id, m.id FROM mailboxes m \
             LEFT JOIN mailbox_waits mw \
                 ON mw.tenant_id = m.tenant_id AND mw.mailbox_id = m.id AND mw.until > $1 \
             WHERE EXISTS (SELECT 1 FROM enrollments e \
                           WHERE e.tenant_id = m.tenant_id AND e.mailbox_id = m.id \
                             AND e.due_at <= $1 AND e.status = 'active' \
                             AND e.mailbox_id IS NOT NULL AND e.due_at > ",
            held_through!(),
            ")"
        ),
    )
    .await
}

/// The (tenant, id) pairs `sql` answers with `$1` bound to `now`, each id made with `id`.
async fn due_pairs<K>(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    id: fn(Uuid) -> K,
    sql: &'static str,
) -> Result<Vec<(TenantId, K)>, StoreError> {
    let pairs: Vec<(Uuid, Uuid)> = sqlx::query_as(sql)
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    Ok(pairs
        .into_iter()
        .map(|(t, k)| (TenantId(t), id(k)))
        .collect())
}
