//! Enrollments: bulk enrollment with its uniqueness and re-enrollment rule, and the reads
//! of enrollments and sends (the due read is `due`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sequence_core::contact::Contact;
use sequence_core::enrollment::{suppression, Enrollment, EnrollmentStatus};
use sequence_core::error::Entity;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SequenceId, TenantId};
use sequence_core::send::ScheduledSend;
use sequence_core::sequence::{ReenrollmentRule, Sequence};
use sequence_core::store::{
    EnrollOutcome, EnrollmentCursor, MailboxDay, StoreError, MAX_MAILBOX_DAYS,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::catalog;
use crate::changes::open_of_pairs;
use crate::error::Db;
use crate::rows::{self, doc, doc_by, docs_by, limit, uint};

/// Whether `rule` lets a contact enter again after `previous` (its latest enrollment).
fn reenrollment_allows(rule: ReenrollmentRule, previous: &Enrollment, now: DateTime<Utc>) -> bool {
    match rule {
        ReenrollmentRule::AfterDays { days } => {
            previous.is_final()
                && previous
                    .enrolled_at
                    .checked_add_signed(Duration::days(i64::from(days)))
                    .is_some_and(|at| now >= at)
        }
        ReenrollmentRule::AfterExit => previous.status() == EnrollmentStatus::Exited,
        ReenrollmentRule::AfterCompletion => previous.status() == EnrollmentStatus::Completed,
        // `Never`, and any rule this store does not know: refuse.
        _ => false,
    }
}

/// What `enroll` knows of one (sequence, contact) while it goes through the rows.
#[derive(Debug, Default)]
struct Pair {
    /// The active or paused enrollment.
    open: Option<EnrollmentId>,
    /// The latest enrollment, by (enrolled instant, id).
    latest: Option<Enrollment>,
}

// The reads of a batch's ids and pairs: a probe of an index per row, each in a subquery of
// its own (its `LIMIT` keeps the server's planner from turning it into a join), and planned
// afresh on every run (not prepared statements), for the size the tables have now: a plan
// cached while they looked empty (a new schema, or tables just emptied) walked every pair
// for every stored row (52 s for 50,000 contacts on a connection that had enrolled batch
// after batch into tables just emptied).

/// The ids of `$1` taken in any tenant: a probe of `enrollments_by_id` each.
pub(crate) const USED_IDS: &str = "\
    SELECT i.id FROM unnest($1::uuid[]) AS k(id) \
    CROSS JOIN LATERAL (SELECT id FROM enrollment_identities WHERE id = k.id LIMIT 1) i";

/// The latest enrollment (by enrolled instant, id) of each pair of tenant `$1` (`$2`
/// sequences, `$3` contacts): a walk back of `enrollments_by_contact` per pair, stopped at
/// the first of the sequence, and its document read by key (a subquery of its own too: as a
/// join, a plan made while `enrollments` looked empty walked the tenant's enrollments for
/// each pair).
pub(crate) const LATEST_OF_PAIRS: &str = "\
    SELECT (SELECT doc FROM enrollments e WHERE e.tenant_id = $1 AND e.id = l.id) AS doc \
    FROM unnest($2::uuid[], $3::uuid[]) AS p(s, c) \
    CROSS JOIN LATERAL ( \
        SELECT i.id FROM enrollment_identities i \
        WHERE i.tenant_id = $1 AND i.contact_id = p.c AND i.sequence_id = p.s \
        ORDER BY i.enrolled_at DESC, i.id DESC LIMIT 1) l";

pub(crate) async fn enroll(
    conn: &mut PgConnection,
    tenant: TenantId,
    now: DateTime<Utc>,
    rows: &[Enrollment],
) -> Result<Vec<EnrollOutcome>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Before any row lock: no contact of the tenant changes until this unit commits, so the
    // copies the enrollments store are the contacts as stored (see the migration
    // `contact_copies`).
    catalog::lock_tenant_contacts(conn, tenant, catalog::ContactsLock::Shared).await?;
    let ours: Vec<&Enrollment> = rows.iter().filter(|e| e.tenant == tenant).collect();
    let sequence_ids: Vec<Uuid> = unique(ours.iter().map(|e| e.sequence.0));
    let contact_ids: Vec<Uuid> = unique(ours.iter().map(|e| e.contact.0));
    // Share-locked: a draft sequence cannot be deleted under its new enrollments (see
    // `delete_draft_sequence`; the references are the store's to keep, not foreign keys').
    let sequences: HashMap<SequenceId, Sequence> = sqlx::query(
        "SELECT doc FROM sequences WHERE tenant_id = $1 AND id = ANY($2) \
         ORDER BY id FOR KEY SHARE",
    )
    .bind(tenant.0)
    .bind(&sequence_ids)
    .fetch_all(&mut *conn)
    .await
    .db()?
    .iter()
    .map(|r| doc::<Sequence>(r, "doc").map(|s| (s.id, s)))
    .collect::<Result<_, _>>()?;
    let contacts: HashMap<ContactId, Contact> =
        sqlx::query("SELECT doc FROM contacts WHERE tenant_id = $1 AND id = ANY($2)")
            .bind(tenant.0)
            .bind(&contact_ids)
            .fetch_all(&mut *conn)
            .await
            .db()?
            .iter()
            .map(|r| doc::<Contact>(r, "doc").map(|c| (c.id, c)))
            .collect::<Result<_, _>>()?;

    // The mailboxes of the tenant among those the rows are sticky to.
    let sticky_ids: Vec<Uuid> = unique(ours.iter().filter_map(|e| e.mailbox()).map(|m| m.0));
    let mailboxes: HashSet<Uuid> = if sticky_ids.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar::<_, Uuid>(
            "SELECT id FROM mailboxes WHERE tenant_id = $1 AND id = ANY($2)",
        )
        .bind(tenant.0)
        .bind(&sticky_ids)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .collect()
    };

    // The ids taken, read before the pairs: an enrollment another writer commits in
    // between is then found open (answered `AlreadyEnrolled`, as the memory store would),
    // not only as a taken id.
    let wanted_ids: Vec<Uuid> = rows.iter().map(|e| e.id.0).collect();
    let mut used: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(USED_IDS)
        .bind(&wanted_ids)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .collect();
    // The open and the latest enrollment of every (sequence, contact) of the rows.
    let pairs: Vec<(Uuid, Uuid)> = unique(ours.iter().map(|e| (e.sequence.0, e.contact.0)));
    let history = sqlx::query(LATEST_OF_PAIRS)
        .bind(tenant.0)
        .bind(pairs.iter().map(|p| p.0).collect::<Vec<_>>())
        .bind(pairs.iter().map(|p| p.1).collect::<Vec<_>>())
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let open = open_of_pairs(
        conn,
        pairs
            .iter()
            .map(|&(s, c)| (tenant, SequenceId(s), ContactId(c))),
    )
    .await?;
    let mut known: HashMap<(SequenceId, ContactId), Pair> = HashMap::new();
    for r in &history {
        let e: Enrollment = doc(r, "doc")?;
        let key = (e.sequence, e.contact);
        known.entry(key).or_default().latest = Some(e);
    }
    for (pair, id) in open {
        known.entry(pair).or_default().open = Some(id);
    }

    // Each row in order, as the memory store answers it.
    let mut answers: Vec<Option<EnrollOutcome>> = Vec::with_capacity(rows.len());
    let mut accepted: Vec<(&Enrollment, &Contact)> = Vec::new();
    for e in rows {
        let invalid = |reason: String| Some(EnrollOutcome::Invalid { reason });
        if e.tenant != tenant {
            answers.push(invalid(format!(
                "enrollment {} belongs to another tenant",
                e.id
            )));
            continue;
        }
        let Some(sequence) = sequences.get(&e.sequence) else {
            answers.push(invalid(format!(
                "sequence {} not found in the tenant",
                e.sequence
            )));
            continue;
        };
        let Some(contact) = contacts.get(&e.contact) else {
            answers.push(invalid(format!(
                "contact {} not found in the tenant",
                e.contact
            )));
            continue;
        };
        if let Some(m) = e.mailbox().filter(|m| !mailboxes.contains(&m.0)) {
            answers.push(invalid(format!("mailbox {m} not found in the tenant")));
            continue;
        }
        if let Some(reason) = suppression(contact, sequence) {
            answers.push(Some(EnrollOutcome::Suppressed {
                reason: reason.as_str().to_owned(),
            }));
            continue;
        }
        let pair = known.entry((e.sequence, e.contact)).or_default();
        if let Some(open) = pair.open {
            answers.push(Some(EnrollOutcome::AlreadyEnrolled { enrollment: open }));
            continue;
        }
        if let Some(previous) = &pair.latest {
            if !reenrollment_allows(sequence.reenrollment, previous, now) {
                answers.push(Some(EnrollOutcome::AlreadyEnrolled {
                    enrollment: previous.id,
                }));
                continue;
            }
        }
        if used.contains(&e.id.0) {
            answers.push(invalid(format!("enrollment id {} is already used", e.id)));
            continue;
        }
        if e.is_final() {
            answers.push(invalid(format!("enrollment {} is already ended", e.id)));
            continue;
        }
        pair.open = Some(e.id);
        if pair
            .latest
            .as_ref()
            .is_none_or(|p| (p.enrolled_at, p.id) < (e.enrolled_at, e.id))
        {
            pair.latest = Some(e.clone());
        }
        used.insert(e.id.0);
        accepted.push((e, contact));
        // Answered once the insert says it was stored.
        answers.push(None);
    }

    let inserted = rows::insert_enrollments(conn, &accepted).await?;
    // A row another writer stored first (its id, or an open enrollment of its pair,
    // committed since this unit read them): answered from what is stored now.
    let lost: Vec<&Enrollment> = accepted
        .iter()
        .map(|(e, _)| *e)
        .filter(|e| !inserted.contains(&e.id.0))
        .collect();
    let open_now =
        open_of_pairs(conn, lost.iter().map(|e| (tenant, e.sequence, e.contact))).await?;
    let mut accepted = accepted.into_iter().map(|(e, _)| e);
    Ok(answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                let Some(e) = accepted.next() else {
                    return EnrollOutcome::Invalid {
                        reason: "internal: unanswered row".to_owned(),
                    };
                };
                if inserted.contains(&e.id.0) {
                    EnrollOutcome::Enrolled { enrollment: e.id }
                } else if let Some(open) = open_now.get(&(e.sequence, e.contact)) {
                    EnrollOutcome::AlreadyEnrolled { enrollment: *open }
                } else {
                    EnrollOutcome::Invalid {
                        reason: format!("enrollment id {} is already used", e.id),
                    }
                }
            })
        })
        .collect())
}

/// The distinct values of `items`, in first-seen order.
fn unique<T: Copy + Eq + std::hash::Hash>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.into_iter().filter(|x| seen.insert(*x)).collect()
}

/// The enrollments of rows read as `doc`.
fn enrollments_of(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Enrollment>, StoreError> {
    rows.iter().map(|r| doc(r, "doc")).collect()
}

pub(crate) async fn get_enrollment(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: EnrollmentId,
) -> Result<Option<Enrollment>, StoreError> {
    doc_by(
        conn,
        "SELECT doc FROM enrollments WHERE tenant_id = $1 AND id = $2",
        tenant,
        id.0,
    )
    .await
}

pub(crate) async fn list_enrollments(
    conn: &mut PgConnection,
    tenant: TenantId,
    sequence: SequenceId,
) -> Result<Vec<Enrollment>, StoreError> {
    docs_by(
        conn,
        "SELECT e.doc FROM enrollment_identities i \
         JOIN enrollments e ON e.tenant_id = i.tenant_id AND e.id = i.id \
         WHERE i.tenant_id = $1 AND i.sequence_id = $2 \
         ORDER BY i.enrolled_at, i.id",
        tenant,
        sequence.0,
    )
    .await
}

pub(crate) async fn open_enrollments_page(
    conn: &mut PgConnection,
    tenant: TenantId,
    sequence: SequenceId,
    after: Option<EnrollmentCursor>,
    max: usize,
) -> Result<Vec<Enrollment>, StoreError> {
    let open = [EnrollmentStatus::Active, EnrollmentStatus::Paused];
    sequence_page(conn, tenant, sequence, Some(&open), after, max).await
}

pub(crate) async fn enrollments_page(
    conn: &mut PgConnection,
    tenant: TenantId,
    sequence: SequenceId,
    status: Option<EnrollmentStatus>,
    after: Option<EnrollmentCursor>,
    max: usize,
) -> Result<Vec<Enrollment>, StoreError> {
    let wanted = status.map(|s| [s]);
    sequence_page(
        conn,
        tenant,
        sequence,
        wanted.as_ref().map(|w| &w[..]),
        after,
        max,
    )
    .await
}

/// A page of a sequence's enrollments: its identities walked in order, each enrollment read
/// by key in a subquery of its own (so that the server's planner keeps the walk and the
/// limit instead of joining the whole tables).
macro_rules! sequence_page_sql {
    () => {
        "SELECT e.doc FROM enrollment_identities i \
         CROSS JOIN LATERAL ( \
             SELECT doc, status FROM enrollments \
             WHERE tenant_id = i.tenant_id AND id = i.id LIMIT 1) e"
    };
}

/// The first page of [`sequence_page`]: `$3` the statuses (NULL: any), `$4` the limit.
const SEQUENCE_PAGE_FIRST: &str = concat!(
    sequence_page_sql!(),
    " WHERE i.tenant_id = $1 AND i.sequence_id = $2 \
       AND ($3::text[] IS NULL OR e.status = ANY($3)) \
     ORDER BY i.enrolled_at, i.id LIMIT $4"
);

/// A later page of [`sequence_page`]: after the cursor (`$4`, `$5`), `$6` the limit. A
/// statement of its own rather than `$4 IS NULL OR ...`, so that the cursor is a condition
/// of the index scan even in a generic plan (a prepared statement's plan after a few runs)
/// instead of a filter over every row before it.
const SEQUENCE_PAGE_AFTER: &str = concat!(
    sequence_page_sql!(),
    " WHERE i.tenant_id = $1 AND i.sequence_id = $2 \
       AND ($3::text[] IS NULL OR e.status = ANY($3)) \
       AND (i.enrolled_at, i.id) > ($4, $5) \
     ORDER BY i.enrolled_at, i.id LIMIT $6"
);

/// At most `max` enrollments of the tenant's `sequence` in `statuses` (any when `None`),
/// by (enrolled instant, id) after `after`: a walk of `enrollments_by_sequence`
/// (tenant_id, sequence_id, enrolled_at, id, on `enrollment_identities`) from the cursor,
/// stopped by the limit.
async fn sequence_page(
    conn: &mut PgConnection,
    tenant: TenantId,
    sequence: SequenceId,
    statuses: Option<&[EnrollmentStatus]>,
    after: Option<EnrollmentCursor>,
    max: usize,
) -> Result<Vec<Enrollment>, StoreError> {
    let statuses: Option<Vec<String>> = statuses
        .map(|all| all.iter().map(rows::name).collect())
        .transpose()?;
    let query = match after {
        None => sqlx::query(SEQUENCE_PAGE_FIRST)
            .bind(tenant.0)
            .bind(sequence.0)
            .bind(statuses),
        Some(cursor) => sqlx::query(SEQUENCE_PAGE_AFTER)
            .bind(tenant.0)
            .bind(sequence.0)
            .bind(statuses)
            .bind(cursor.enrolled_at)
            .bind(cursor.id.0),
    };
    let rows = query.bind(limit(max)).fetch_all(&mut *conn).await.db()?;
    enrollments_of(&rows)
}

pub(crate) async fn open_enrollments_of_contact(
    conn: &mut PgConnection,
    tenant: TenantId,
    contact: ContactId,
) -> Result<Vec<Enrollment>, StoreError> {
    docs_by(
        conn,
        "SELECT e.doc FROM enrollment_identities i \
         JOIN enrollments e ON e.tenant_id = i.tenant_id AND e.id = i.id \
         WHERE i.tenant_id = $1 AND i.contact_id = $2 AND i.open ORDER BY i.id",
        tenant,
        contact.0,
    )
    .await
}

pub(crate) async fn enrollments_of_contact(
    conn: &mut PgConnection,
    tenant: TenantId,
    contact: ContactId,
) -> Result<Vec<Enrollment>, StoreError> {
    docs_by(
        conn,
        "SELECT e.doc FROM enrollment_identities i \
         JOIN enrollments e ON e.tenant_id = i.tenant_id AND e.id = i.id \
         WHERE i.tenant_id = $1 AND i.contact_id = $2 \
         ORDER BY i.enrolled_at, i.id",
        tenant,
        contact.0,
    )
    .await
}

// ---- sends: reads ------------------------------------------------------------------------

fn sends_of(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<ScheduledSend>, StoreError> {
    rows.iter().map(|r| doc(r, "doc")).collect()
}

pub(crate) async fn open_sends_of(
    conn: &mut PgConnection,
    tenant: TenantId,
    enrollments: &[EnrollmentId],
) -> Result<Vec<ScheduledSend>, StoreError> {
    let ids: Vec<Uuid> = enrollments.iter().map(|e| e.0).collect();
    let rows = sqlx::query(
        "SELECT s.doc FROM sends s \
         JOIN unnest($2::uuid[]) WITH ORDINALITY AS k(id, n) ON s.enrollment_id = k.id \
         WHERE s.tenant_id = $1 AND s.status IN ('planned', 'retry_wait') \
         ORDER BY k.n, s.step",
    )
    .bind(tenant.0)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    sends_of(&rows)
}

pub(crate) async fn sends_of_enrollment(
    conn: &mut PgConnection,
    tenant: TenantId,
    enrollment: EnrollmentId,
) -> Result<Vec<ScheduledSend>, StoreError> {
    docs_by(
        conn,
        "SELECT doc FROM sends WHERE tenant_id = $1 AND enrollment_id = $2 ORDER BY step",
        tenant,
        enrollment.0,
    )
    .await
}

pub(crate) async fn sends_of_sequence(
    conn: &mut PgConnection,
    tenant: TenantId,
    sequence: SequenceId,
) -> Result<Vec<ScheduledSend>, StoreError> {
    docs_by(
        conn,
        "SELECT doc FROM sends WHERE tenant_id = $1 AND sequence_id = $2 \
         ORDER BY enrollment_id, step",
        tenant,
        sequence.0,
    )
    .await
}

pub(crate) async fn mailbox_days(
    conn: &mut PgConnection,
    tenant: TenantId,
    mailbox: MailboxId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<MailboxDay>, StoreError> {
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM mailboxes WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(mailbox.0)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    if exists.is_none() {
        return Err(StoreError::not_found(Entity::Mailbox, mailbox));
    }
    let days = (to - from).num_days() + 1;
    if !(1..=MAX_MAILBOX_DAYS).contains(&days) {
        return Err(StoreError::Invalid(format!(
            "mailbox_days: {from} to {to} is {days} days; 1 to {MAX_MAILBOX_DAYS} are allowed"
        )));
    }
    let rows: Vec<(NaiveDate, i32, i32)> = sqlx::query_as(
        "SELECT local_date, attempts, used FROM mailbox_days \
         WHERE tenant_id = $1 AND mailbox_id = $2 AND local_date BETWEEN $3 AND $4",
    )
    .bind(tenant.0)
    .bind(mailbox.0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let found: HashMap<NaiveDate, (i32, i32)> =
        rows.into_iter().map(|(d, a, u)| (d, (a, u))).collect();
    Ok(from
        .iter_days()
        .take_while(|date| *date <= to)
        .map(|date| {
            let (attempts, used) = found.get(&date).copied().unwrap_or((0, 0));
            MailboxDay {
                date,
                attempts: uint(attempts),
                used: uint(used),
            }
        })
        .collect())
}
