//! Rows: the documents and the columns kept beside them, read from and written to the
//! tables in batches (`UNNEST` of one array per column, one statement per kind of write).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sequence_core::contact::{Contact, ContactStatus};
use sequence_core::enrollment::{Enrollment, EnrollmentStatus};
use sequence_core::error::Entity;
use sequence_core::ids::{EnrollmentId, TenantId};
use sequence_core::send::ScheduledSend;
use sequence_core::store::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::error::{encode, Db};

// ---- conversions -------------------------------------------------------------------------

/// A count or step as PostgreSQL's `integer` (saturating: the domain's counts are small).
pub(crate) fn int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// A version as PostgreSQL's `bigint` (saturating).
pub(crate) fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An `integer` column back as a count (negative reads as zero).
pub(crate) fn uint(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// A limit as a `LIMIT` parameter.
pub(crate) fn limit(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The serialized name of a unit enum variant (`active`, `no_capacity`, ...): the names the
/// status columns hold, the same as in the documents.
pub(crate) fn name<T: Serialize>(v: &T) -> Result<String, StoreError> {
    match serde_json::to_value(v).map_err(encode)? {
        serde_json::Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

/// The unit enum variant a status column names (the reverse of [`name`]).
pub(crate) fn from_name<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(encode)
}

/// An enrollment status from its stored name (the usual ones matched here, without the
/// detour through serde that [`from_name`] takes).
pub(crate) fn enrollment_status(s: &str) -> Result<EnrollmentStatus, StoreError> {
    match s {
        "active" => Ok(EnrollmentStatus::Active),
        "paused" => Ok(EnrollmentStatus::Paused),
        other => from_name(other),
    }
}

/// A contact status from its stored name (the usual one matched here).
pub(crate) fn contact_status(s: &str) -> Result<ContactStatus, StoreError> {
    match s {
        "active" => Ok(ContactStatus::Active),
        other => from_name(other),
    }
}

/// A time zone from its stored IANA name.
pub(crate) fn zone(s: &str) -> Result<Tz, StoreError> {
    s.parse()
        .map_err(|_| StoreError::backend(format!("stored time zone {s:?} is not known")))
}

/// A document as the text stored in a `json` column (enrollments, contacts and sends keep
/// their documents as `json`: written and read as the text it is, with no `jsonb` tree to
/// build on the way in and to print on the way out).
pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::backend)
}

/// The document in column `col`.
pub(crate) fn doc<T: DeserializeOwned>(row: &PgRow, col: &str) -> Result<T, StoreError> {
    row.try_get::<Json<T>, _>(col).map(|j| j.0).db()
}

/// The documents (column `doc`) of the rows `sql` answers, in its order, with the tenant
/// bound as `$1` and `id` as `$2`.
pub(crate) async fn docs_by<T: DeserializeOwned>(
    conn: &mut PgConnection,
    sql: &'static str,
    tenant: TenantId,
    id: Uuid,
) -> Result<Vec<T>, StoreError> {
    let rows = sqlx::query(sql)
        .bind(tenant.0)
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    rows.iter().map(|r| doc(r, "doc")).collect()
}

/// The document (column `doc`) of the row `sql` answers, if any, with the tenant bound as
/// `$1` and `id` as `$2`.
pub(crate) async fn doc_by<T: DeserializeOwned>(
    conn: &mut PgConnection,
    sql: &'static str,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<T>, StoreError> {
    let row = sqlx::query(sql)
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    row.map(|r| doc(&r, "doc")).transpose()
}

/// The document in column `col`, which may be NULL (an outer join found nothing).
pub(crate) fn opt_doc<T: DeserializeOwned>(
    row: &PgRow,
    col: &str,
) -> Result<Option<T>, StoreError> {
    row.try_get::<Option<Json<T>>, _>(col)
        .map(|j| j.map(|j| j.0))
        .db()
}

/// The `uuid` in column `col`.
pub(crate) fn uuid(row: &PgRow, col: &str) -> Result<Uuid, StoreError> {
    row.try_get::<Uuid, _>(col).db()
}

// ---- enrollments -------------------------------------------------------------------------

/// When an enrollment is looked at next (the `due_at` column): active ones at `next_due_at`,
/// paused ones when their pause runs out; final ones, planned ones and paused ones without
/// an end never.
pub(crate) fn due_key(e: &Enrollment) -> Option<DateTime<Utc>> {
    match e.status() {
        EnrollmentStatus::Active => e.next_due_at(),
        EnrollmentStatus::Paused => e.paused_until(),
        _ => None,
    }
}

/// The columns of a batch of enrollments, one array each.
#[derive(Debug, Default)]
struct EnrollmentColumns {
    tenant: Vec<Uuid>,
    id: Vec<Uuid>,
    sequence: Vec<Uuid>,
    contact: Vec<Uuid>,
    status: Vec<String>,
    due_at: Vec<Option<DateTime<Utc>>>,
    deferral: Vec<Option<String>>,
    mailbox: Vec<Option<Uuid>>,
    enrolled_at: Vec<DateTime<Utc>>,
    version: Vec<i64>,
    doc: Vec<String>,
    step: Vec<i32>,
    earliest: Vec<Option<DateTime<Utc>>>,
    uncertain: Vec<bool>,
}

impl EnrollmentColumns {
    fn of<'a>(rows: impl IntoIterator<Item = &'a Enrollment>) -> Result<Self, StoreError> {
        let mut c = Self::default();
        for e in rows {
            c.tenant.push(e.tenant.0);
            c.id.push(e.id.0);
            c.sequence.push(e.sequence.0);
            c.contact.push(e.contact.0);
            c.status.push(name(&e.status())?);
            c.due_at.push(due_key(e));
            c.deferral
                .push(e.deferral().map(|d| name(&d.reason)).transpose()?);
            c.mailbox.push(e.mailbox().map(|m| m.0));
            c.enrolled_at.push(e.enrolled_at);
            c.version.push(big(e.version()));
            c.doc.push(json_text(e)?);
            c.step.push(int(e.current_step()));
            c.earliest.push(e.due_at());
            c.uncertain.push(e.uncertain_send().is_some());
        }
        Ok(c)
    }
}

/// What an enrollment keeps of its contact for the due read (see the migration
/// `due_columns`): the `contacts` columns of the same names.
struct ContactCopy {
    status: String,
    zone: Option<&'static str>,
    domain: String,
}

impl ContactCopy {
    fn of(c: &Contact) -> Result<Self, StoreError> {
        Ok(Self {
            status: name(&c.status())?,
            zone: c.timezone.map(Tz::name),
            domain: c.email_domain(),
        })
    }
}

/// Insert enrollments that are not stored yet (a row whose id or open (sequence, contact)
/// is taken is left out), each with a copy of its contact as the caller read it under the
/// tenant's contact lock it holds shared (so the copy is the contact as stored); the ids
/// inserted.
pub(crate) async fn insert_enrollments(
    conn: &mut PgConnection,
    rows: &[(&Enrollment, &Contact)],
) -> Result<HashSet<Uuid>, StoreError> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    // In key order: the indexes on the id (the two keys, `enrollments_by_id`) then grow at
    // one end instead of at a random leaf per row, which halves the insert of a large batch
    // (fewer pages touched, fewer full-page images in the WAL).
    let mut rows = rows.to_vec();
    rows.sort_unstable_by_key(|(e, _)| (e.tenant.0, e.id.0));
    // The identities first: their unique indexes (the id, one open enrollment per pair)
    // decide which rows are taken, and only those are written to `enrollments`. Two
    // statements rather than one with the rows in a CTE: the documents go to the server
    // once, and a large batch is not spilled to a temporary file and joined back.
    let taken: HashSet<Uuid> = sqlx::query_scalar(
        "INSERT INTO enrollment_identities (tenant_id, id, sequence_id, contact_id, \
             enrolled_at, open) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], \
             $5::timestamptz[], $6::bool[]) \
         ON CONFLICT DO NOTHING \
         RETURNING id",
    )
    .bind(rows.iter().map(|(e, _)| e.tenant.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|(e, _)| e.id.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|(e, _)| e.sequence.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|(e, _)| e.contact.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|(e, _)| e.enrolled_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|(e, _)| !e.is_final()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await
    .db()?
    .into_iter()
    .collect();
    rows.retain(|(e, _)| taken.contains(&e.id.0));
    if rows.is_empty() {
        return Ok(taken);
    }
    let c = EnrollmentColumns::of(rows.iter().map(|(e, _)| *e))?;
    let mut contact_status = Vec::with_capacity(rows.len());
    let mut contact_zone = Vec::with_capacity(rows.len());
    let mut recipient_domain = Vec::with_capacity(rows.len());
    for (_, contact) in &rows {
        let copy = ContactCopy::of(contact)?;
        contact_status.push(copy.status);
        contact_zone.push(copy.zone);
        recipient_domain.push(copy.domain);
    }
    sqlx::query(
        "INSERT INTO enrollments (tenant_id, id, sequence_id, contact_id, status, due_at, \
             deferral_reason, mailbox_id, enrolled_at, version, doc, step, earliest, uncertain, \
             contact_status, contact_zone, recipient_domain) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], \
             $6::timestamptz[], $7::text[], $8::uuid[], $9::timestamptz[], $10::int8[], \
             $11::json[], $12::int4[], $13::timestamptz[], $14::bool[], $15::text[], \
             $16::text[], $17::text[])",
    )
    .bind(c.tenant)
    .bind(c.id)
    .bind(c.sequence)
    .bind(c.contact)
    .bind(c.status)
    .bind(c.due_at)
    .bind(c.deferral)
    .bind(c.mailbox)
    .bind(c.enrolled_at)
    .bind(c.version)
    .bind(c.doc)
    .bind(c.step)
    .bind(c.earliest)
    .bind(c.uncertain)
    .bind(contact_status)
    .bind(contact_zone)
    .bind(recipient_domain)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(taken)
}

/// Replace stored enrollments (by tenant and id) with `rows`. A row named in `unlocked`
/// (taken from a due read without a lock, see `plan::apply_plan`) is replaced only while
/// it is still stored at the version given there; when one is not, nothing more is written
/// and the answer is a `VersionConflict` naming it (the caller rolls the statement back with
/// the rest).
pub(crate) async fn update_enrollments(
    conn: &mut PgConnection,
    rows: &[&Enrollment],
    unlocked: &HashMap<EnrollmentId, u64>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let c = EnrollmentColumns::of(rows.iter().copied())?;
    let stored_at: Vec<Option<i64>> = rows
        .iter()
        .map(|e| unlocked.get(&e.id).map(|v| big(*v)))
        .collect();
    let checked = stored_at.iter().any(Option::is_some);
    // An enrollment that stops being open (completed, exited) says so in its identity. One
    // the due read handed out (`stored_at` given) was open at the version still stored, so
    // while it stays open its identity is not looked at: a plan's enrollments cost no probe.
    let done: i64 = sqlx::query_scalar(
        "WITH e AS ( \
             UPDATE enrollments e SET status = u.status, due_at = u.due_at, \
                 deferral_reason = u.deferral_reason, mailbox_id = u.mailbox_id, \
                 version = u.version, doc = u.doc, step = u.step, earliest = u.earliest, \
                 uncertain = u.uncertain \
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], \
                 $6::uuid[], $7::int8[], $8::json[], $9::int8[], $10::int4[], \
                 $11::timestamptz[], $12::bool[]) \
                 AS u(tenant_id, id, status, due_at, deferral_reason, mailbox_id, version, doc, \
                     stored_at, step, earliest, uncertain) \
             WHERE e.tenant_id = u.tenant_id AND e.id = u.id \
               AND (u.stored_at IS NULL OR e.version = u.stored_at) \
             RETURNING e.tenant_id, e.id, e.status IN ('active', 'paused') AS open, \
                 u.stored_at IS NOT NULL AS read_open), \
         i AS ( \
             UPDATE enrollment_identities i SET open = e.open FROM e \
             WHERE NOT (e.open AND e.read_open) \
               AND i.tenant_id = e.tenant_id AND i.id = e.id AND i.open <> e.open) \
         SELECT count(*) FROM e",
    )
    .bind(&c.tenant)
    .bind(&c.id)
    .bind(c.status)
    .bind(c.due_at)
    .bind(c.deferral)
    .bind(c.mailbox)
    .bind(c.version)
    .bind(c.doc)
    .bind(&stored_at)
    .bind(c.step)
    .bind(c.earliest)
    .bind(c.uncertain)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    if checked && usize::try_from(done).is_ok_and(|n| n < rows.len()) {
        return Err(moved_enrollment(conn, &c.tenant, &c.id, &stored_at).await?);
    }
    Ok(())
}

/// The conflict of the first of the enrollments (`tenant`, `id`) stored at another version
/// than `stored_at` (where one is given): what an unlocked write found.
async fn moved_enrollment(
    conn: &mut PgConnection,
    tenant: &[Uuid],
    id: &[Uuid],
    stored_at: &[Option<i64>],
) -> Result<StoreError, StoreError> {
    let moved: Option<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT e.id, k.stored_at, e.version \
         FROM unnest($1::uuid[], $2::uuid[], $3::int8[]) AS k(tenant_id, id, stored_at) \
         JOIN enrollments e ON e.tenant_id = k.tenant_id AND e.id = k.id \
         WHERE e.version <> k.stored_at \
         LIMIT 1",
    )
    .bind(tenant)
    .bind(id)
    .bind(stored_at)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    let (id, expected, found) = moved.unwrap_or_default();
    Ok(StoreError::VersionConflict {
        entity: Entity::Enrollment,
        id: id.to_string(),
        expected: u64::try_from(expected).unwrap_or(0),
        found: u64::try_from(found).unwrap_or(0),
    })
}

// ---- contacts ----------------------------------------------------------------------------

/// Insert or replace contacts (by tenant and id).
pub(crate) async fn upsert_contacts(
    conn: &mut PgConnection,
    rows: &[&Contact],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut tenant = Vec::with_capacity(rows.len());
    let mut id = Vec::with_capacity(rows.len());
    let mut email = Vec::with_capacity(rows.len());
    let mut status = Vec::with_capacity(rows.len());
    let mut version = Vec::with_capacity(rows.len());
    let mut docs = Vec::with_capacity(rows.len());
    let mut zone = Vec::with_capacity(rows.len());
    let mut domain = Vec::with_capacity(rows.len());
    for c in rows {
        let copy = ContactCopy::of(c)?;
        tenant.push(c.tenant.0);
        id.push(c.id.0);
        email.push(c.normalized_email());
        status.push(copy.status);
        version.push(big(c.version()));
        docs.push(json_text(*c)?);
        zone.push(copy.zone);
        domain.push(copy.domain);
    }
    sqlx::query(
        "INSERT INTO contacts (tenant_id, id, email, status, version, doc, timezone, domain) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int8[], \
             $6::json[], $7::text[], $8::text[]) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET email = EXCLUDED.email, \
             status = EXCLUDED.status, version = EXCLUDED.version, doc = EXCLUDED.doc, \
             timezone = EXCLUDED.timezone, domain = EXCLUDED.domain",
    )
    .bind(&tenant)
    .bind(&id)
    .bind(email)
    .bind(status)
    .bind(version)
    .bind(docs)
    .bind(zone)
    .bind(domain)
    .execute(&mut *conn)
    .await
    .db()?;
    // What their enrollments keep of them for the due read (see the migration
    // `due_columns`), under the tenants' contact locks the caller holds: an `enroll` of one
    // of them either committed before (its rows are seen here) or waits for this unit. Only
    // the rows whose copy changes are written.
    sqlx::query(
        "UPDATE enrollments e SET contact_status = c.status, contact_zone = c.timezone, \
             recipient_domain = c.domain \
         FROM unnest($1::uuid[], $2::uuid[]) AS k(tenant_id, id) \
         JOIN contacts c ON c.tenant_id = k.tenant_id AND c.id = k.id \
         JOIN enrollment_identities i ON i.tenant_id = k.tenant_id AND i.contact_id = k.id \
         WHERE e.tenant_id = i.tenant_id AND e.id = i.id \
           AND (e.contact_status, e.contact_zone, e.recipient_domain) \
               IS DISTINCT FROM (c.status, c.timezone, c.domain)",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

// ---- sends -------------------------------------------------------------------------------

/// One outbox row with what the store keeps beside the send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SendRow {
    /// The send.
    pub(crate) send: ScheduledSend,
    /// The recipient domain, for the per-domain counts.
    pub(crate) domain: String,
    /// What the send added to the daily counts that calling it off takes back: (UTC date,
    /// counted as a new start). `None` once its attempt is made for good.
    pub(crate) pending: Option<(NaiveDate, bool)>,
    /// While sending: the mailbox's latest attempt before this claim.
    pub(crate) prev_last_attempt: Option<DateTime<Utc>>,
}

/// The columns a [`SendRow`] is read from, as a literal for `concat!`:
/// `concat!("SELECT ", send_columns!(), " FROM sends s ...")`.
macro_rules! send_columns {
    () => {
        "s.doc AS send_doc, s.recipient_domain, s.pending_date, s.pending_new_start, \
         s.prev_last_attempt_at"
    };
}
pub(crate) use send_columns;

impl SendRow {
    /// The row read with [`send_columns!`].
    pub(crate) fn read(row: &PgRow) -> Result<Self, StoreError> {
        let pending_date: Option<NaiveDate> = row.try_get("pending_date").db()?;
        let new_start: Option<bool> = row.try_get("pending_new_start").db()?;
        Ok(Self {
            send: doc(row, "send_doc")?,
            domain: row.try_get("recipient_domain").db()?,
            pending: pending_date.map(|d| (d, new_start.unwrap_or(false))),
            prev_last_attempt: row.try_get("prev_last_attempt_at").db()?,
        })
    }
}

/// Insert or replace sends (by tenant and id).
pub(crate) async fn upsert_sends(
    conn: &mut PgConnection,
    rows: &[&SendRow],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut tenant = Vec::with_capacity(n);
    let mut id = Vec::with_capacity(n);
    let mut enrollment = Vec::with_capacity(n);
    let mut sequence = Vec::with_capacity(n);
    let mut contact = Vec::with_capacity(n);
    let mut step = Vec::with_capacity(n);
    let mut mailbox = Vec::with_capacity(n);
    let mut planned_at = Vec::with_capacity(n);
    let mut local_date = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut token = Vec::with_capacity(n);
    let mut lease_attempt = Vec::with_capacity(n);
    let mut lease_until = Vec::with_capacity(n);
    let mut domain = Vec::with_capacity(n);
    let mut pending_date = Vec::with_capacity(n);
    let mut pending_new_start = Vec::with_capacity(n);
    let mut prev = Vec::with_capacity(n);
    let mut docs = Vec::with_capacity(n);
    for r in rows {
        let s = &r.send;
        tenant.push(s.tenant.0);
        id.push(s.id.0);
        enrollment.push(s.enrollment.0);
        sequence.push(s.sequence.0);
        contact.push(s.contact.0);
        step.push(int(s.step));
        mailbox.push(s.mailbox().0);
        planned_at.push(s.planned_at());
        local_date.push(s.local_date());
        status.push(name(&s.status())?);
        attempts.push(int(s.attempts()));
        token.push(s.lease().map(|l| l.token));
        lease_attempt.push(s.lease().map(|l| int(l.attempt)));
        lease_until.push(s.lease().map(|l| l.until));
        domain.push(r.domain.as_str());
        pending_date.push(r.pending.map(|(d, _)| d));
        pending_new_start.push(r.pending.map(|(_, n)| n));
        prev.push(r.prev_last_attempt);
        docs.push(json_text(s)?);
    }
    sqlx::query(
        "INSERT INTO sends (tenant_id, id, enrollment_id, sequence_id, contact_id, step, \
             mailbox_id, planned_at, local_date, status, attempts, lease_token, lease_attempt, \
             lease_until, recipient_domain, pending_date, pending_new_start, \
             prev_last_attempt_at, doc) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], \
             $6::int4[], $7::uuid[], $8::timestamptz[], $9::date[], $10::text[], $11::int4[], \
             $12::uuid[], $13::int4[], $14::timestamptz[], $15::text[], $16::date[], \
             $17::bool[], $18::timestamptz[], $19::json[]) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET mailbox_id = EXCLUDED.mailbox_id, \
             planned_at = EXCLUDED.planned_at, local_date = EXCLUDED.local_date, \
             status = EXCLUDED.status, attempts = EXCLUDED.attempts, \
             lease_token = EXCLUDED.lease_token, lease_attempt = EXCLUDED.lease_attempt, \
             lease_until = EXCLUDED.lease_until, recipient_domain = EXCLUDED.recipient_domain, \
             pending_date = EXCLUDED.pending_date, \
             pending_new_start = EXCLUDED.pending_new_start, \
             prev_last_attempt_at = EXCLUDED.prev_last_attempt_at, doc = EXCLUDED.doc",
    )
    .bind(tenant)
    .bind(id)
    .bind(enrollment)
    .bind(sequence)
    .bind(contact)
    .bind(step)
    .bind(mailbox)
    .bind(planned_at)
    .bind(local_date)
    .bind(status)
    .bind(attempts)
    .bind(token)
    .bind(lease_attempt)
    .bind(lease_until)
    .bind(domain)
    .bind(pending_date)
    .bind(pending_new_start)
    .bind(prev)
    .bind(docs)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}
