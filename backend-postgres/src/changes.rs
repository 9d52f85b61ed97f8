//! Change sets: rows loaded under lock, checked all at once (versions, tenants, one open
//! enrollment per pair), written all at once; and the wake-up of waiting enrollments by a
//! released unit of capacity.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sequence_core::contact::{normalize_email, Contact};
use sequence_core::enrollment::Enrollment;
use sequence_core::error::Entity;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::sequence::Sequence;
use sequence_core::store::{ChangeSet, StoreError};
use sequence_core::time::local_date;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::catalog::{self, conflict, written_version};
use crate::due::Seen;
use crate::error::Db;
use crate::rows::{big, doc, send_columns, SendRow};
use crate::work::{Tracked, Work};

// ---- loading ---------------------------------------------------------------------------------

/// Lock and load contacts by id (any tenant) into the working set.
pub(crate) async fn load_contacts(
    conn: &mut PgConnection,
    work: &mut Work,
    ids: impl IntoIterator<Item = ContactId>,
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = missing(ids.into_iter().map(|i| i.0), |id| {
        work.contacts.contains_key(&ContactId(id))
    });
    if ids.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query("SELECT doc FROM contacts WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    for r in &rows {
        let c: Contact = doc(r, "doc")?;
        work.contacts.insert(c.id, Tracked::clean(c));
    }
    Ok(())
}

/// Lock and load enrollments by tenant and id into the working set.
pub(crate) async fn load_enrollments(
    conn: &mut PgConnection,
    work: &mut Work,
    ids: impl IntoIterator<Item = (TenantId, EnrollmentId)>,
) -> Result<(), StoreError> {
    let items: Vec<EnrollmentItem> = ids
        .into_iter()
        .map(|(tenant, id)| (Some(tenant), id, None))
        .collect();
    load_enrollments_seen(conn, work, &items, &Seen::default(), true).await
}

/// Lock and load enrollments by id (any tenant) into the working set, each with the version
/// its caller read, if any; `seen` holds the tenant and version of each row of the due read
/// the caller's versions come from, if any.
///
/// With `lock` false, when every one of them is in `seen` at the version given, they are
/// read without a lock at those versions (by key), and recorded in `work.unlocked`: writing
/// one then checks that it is still stored at that version (see `plan::apply_plan`). When
/// one moved since, they are all locked and read as with `lock`.
pub(crate) async fn load_enrollments_seen(
    conn: &mut PgConnection,
    work: &mut Work,
    given: &[EnrollmentItem],
    seen: &Seen,
    lock: bool,
) -> Result<(), StoreError> {
    let mut wanted = HashSet::new();
    let items: Vec<(EnrollmentId, Option<u64>)> = given
        .iter()
        .filter(|(_, id, _)| !work.enrollments.contains_key(id) && wanted.insert(*id))
        .map(|&(_, id, version)| (id, version))
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    if !lock && read_unlocked(conn, work, &items, seen).await? {
        return Ok(());
    }
    // Each one's tenant: given by the caller, else the due read's row, else its identity.
    let mut tenants: HashMap<EnrollmentId, TenantId> = given
        .iter()
        .filter_map(|&(tenant, id, _)| Some((id, tenant?)))
        .collect();
    for (id, _) in &items {
        if let Some((tenant, _)) = seen.get(id) {
            tenants.entry(*id).or_insert(*tenant);
        }
    }
    tenants_of(conn, &items, &mut tenants).await?;
    let (mut keys, mut ids) = (Vec::new(), Vec::new());
    for (id, _) in &items {
        // An id without an identity is no stored enrollment: nothing to load.
        if let Some(tenant) = tenants.get(id) {
            keys.push(tenant.0);
            ids.push(id.0);
        }
    }
    // One statement locks them all, in id order (the store's lock order).
    let rows: Vec<(Json<Enrollment>,)> = sqlx::query_as(
        "SELECT e.doc FROM unnest($1::uuid[], $2::uuid[]) AS k(tenant_id, id) \
         JOIN enrollments e ON e.tenant_id = k.tenant_id AND e.id = k.id \
         ORDER BY e.id FOR UPDATE OF e",
    )
    .bind(&keys)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    for (Json(e),) in rows {
        work.enrollments.insert(e.id, Tracked::clean(e));
    }
    Ok(())
}

/// Read `items` without a lock where each is in `seen` at the version given and still
/// stored at it, into the working set as unlocked (see [`load_enrollments_seen`]); whether
/// they all were (else none is taken).
async fn read_unlocked(
    conn: &mut PgConnection,
    work: &mut Work,
    items: &[(EnrollmentId, Option<u64>)],
    seen: &Seen,
) -> Result<bool, StoreError> {
    let mut keys = (Vec::new(), Vec::new(), Vec::new());
    for (id, version) in items {
        match seen.get(id) {
            Some((tenant, at)) if Some(*at) == *version => {
                keys.0.push(tenant.0);
                keys.1.push(id.0);
                keys.2.push(big(*at));
            }
            _ => return Ok(false),
        }
    }
    let rows: Vec<(Json<Enrollment>,)> = sqlx::query_as(
        "SELECT e.doc FROM unnest($1::uuid[], $2::uuid[], $3::int8[]) AS k(tenant_id, id, version) \
         JOIN enrollments e ON e.tenant_id = k.tenant_id AND e.id = k.id \
         WHERE e.version = k.version",
    )
    .bind(&keys.0)
    .bind(&keys.1)
    .bind(&keys.2)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    if rows.len() < items.len() {
        return Ok(false);
    }
    for (Json(e),) in rows {
        work.unlocked.insert(e.id, e.version());
        work.enrollments.insert(e.id, Tracked::clean(e));
    }
    Ok(true)
}

/// An enrollment to load: its tenant when the caller knows it, its id, and the version the
/// caller read it at, if any.
pub(crate) type EnrollmentItem = (Option<TenantId>, EnrollmentId, Option<u64>);

/// Fill in `tenants` for the `items` it lacks, from their identities (by id alone: a plan's
/// enrollment the due read did not hand out, a rare path).
async fn tenants_of(
    conn: &mut PgConnection,
    items: &[(EnrollmentId, Option<u64>)],
    tenants: &mut HashMap<EnrollmentId, TenantId>,
) -> Result<(), StoreError> {
    let unknown: Vec<Uuid> = items
        .iter()
        .filter(|(id, _)| !tenants.contains_key(id))
        .map(|(id, _)| id.0)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let found: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, tenant_id FROM enrollment_identities WHERE id = ANY($1)")
            .bind(&unknown)
            .fetch_all(&mut *conn)
            .await
            .db()?;
    tenants.extend(
        found
            .into_iter()
            .map(|(id, tenant)| (EnrollmentId(id), TenantId(tenant))),
    );
    Ok(())
}

/// Lock and load sends by id (any tenant) into the working set.
pub(crate) async fn load_sends(
    conn: &mut PgConnection,
    work: &mut Work,
    ids: impl IntoIterator<Item = SendId>,
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = missing(ids.into_iter().map(|i| i.0), |id| {
        work.sends.contains_key(&SendId(id))
    });
    if ids.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(concat!(
        "SELECT ",
        send_columns!(),
        " FROM sends s WHERE s.id = ANY($1) ORDER BY s.id FOR UPDATE"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    for r in &rows {
        let row = SendRow::read(r)?;
        work.sends.insert(row.send.id, Tracked::clean(row));
    }
    Ok(())
}

/// Lock and load sequences by id (any tenant) into the working set.
async fn load_sequences(
    conn: &mut PgConnection,
    work: &mut Work,
    ids: impl IntoIterator<Item = SequenceId>,
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = missing(ids.into_iter().map(|i| i.0), |id| {
        work.sequences.contains_key(&SequenceId(id))
    });
    if ids.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query("SELECT doc FROM sequences WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    for r in &rows {
        let s: Sequence = doc(r, "doc")?;
        work.sequences.insert(s.id, Tracked::clean(s));
    }
    Ok(())
}

/// Lock and load mailboxes by id (any tenant) into the working set.
pub(crate) async fn load_mailboxes(
    conn: &mut PgConnection,
    work: &mut Work,
    ids: impl IntoIterator<Item = MailboxId>,
    lock: bool,
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = missing(ids.into_iter().map(|i| i.0), |id| {
        work.mailboxes.contains_key(&MailboxId(id))
    });
    if ids.is_empty() {
        return Ok(());
    }
    let sql = if lock {
        "SELECT doc FROM mailboxes WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    } else {
        "SELECT doc FROM mailboxes WHERE id = ANY($1)"
    };
    let rows = sqlx::query(sql)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    for r in &rows {
        let m: Mailbox = doc(r, "doc")?;
        work.mailboxes.insert(m.id, Tracked::clean(m));
    }
    Ok(())
}

/// The ids of `ids` not loaded yet, each once.
fn missing(ids: impl Iterator<Item = Uuid>, loaded: impl Fn(Uuid) -> bool) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    ids.filter(|id| !loaded(*id) && seen.insert(*id)).collect()
}

/// Lock and load every row a change set names.
pub(crate) async fn load_changes(
    conn: &mut PgConnection,
    work: &mut Work,
    changes: &ChangeSet,
) -> Result<(), StoreError> {
    // Contact writes take their tenants' contact locks first, in one order (see
    // `catalog::lock_tenant_contacts`).
    let tenants: BTreeSet<TenantId> = changes.contacts.iter().map(|(c, _)| c.tenant).collect();
    for tenant in tenants {
        catalog::lock_tenant_contacts(conn, tenant, catalog::ContactsLock::Exclusive).await?;
    }
    load_contacts(conn, work, changes.contacts.iter().map(|(c, _)| c.id)).await?;
    load_enrollments(
        conn,
        work,
        changes.enrollments.iter().map(|(e, _)| (e.tenant, e.id)),
    )
    .await?;
    load_sequences(conn, work, changes.sequences.iter().map(|(s, _)| s.id)).await?;
    load_mailboxes(
        conn,
        work,
        changes.mailboxes.iter().map(|(m, _)| m.id),
        true,
    )
    .await?;
    // The mailboxes the enrollments are sticky to, read (not locked) for their tenant.
    let sticky: Vec<MailboxId> = changes
        .enrollments
        .iter()
        .filter_map(|(e, _)| e.mailbox())
        .collect();
    load_mailboxes(conn, work, sticky, false).await?;
    load_sends(
        conn,
        work,
        changes
            .cancel_sends
            .iter()
            .copied()
            .chain(changes.tracking.iter().map(|t| t.send)),
    )
    .await
}

// ---- checking --------------------------------------------------------------------------------

/// Check a change set without writing: every record exists in its tenant (and in `tenant`,
/// when given), every version matches, an engine write keeps a contact's address, and no
/// (sequence, contact) gets two open enrollments. The rows must be loaded.
pub(crate) async fn check_changes(
    conn: &mut PgConnection,
    work: &Work,
    changes: &ChangeSet,
    tenant: Option<TenantId>,
) -> Result<(), StoreError> {
    let in_scope = |t: TenantId| tenant.is_none_or(|scope| scope == t);
    let mut contact_versions: HashMap<ContactId, u64> = HashMap::new();
    for (c, read) in &changes.contacts {
        let stored = match work.contacts.get(&c.id) {
            Some(s) if s.row.tenant == c.tenant && in_scope(c.tenant) => &s.row,
            _ => return Err(StoreError::not_found(Entity::Contact, c.id)),
        };
        let current = contact_versions
            .get(&c.id)
            .copied()
            .unwrap_or(stored.version());
        if current != *read {
            return Err(conflict(Entity::Contact, c.id, *read, current));
        }
        if normalize_email(&c.email) != normalize_email(&stored.email) {
            return Err(StoreError::Invalid(format!(
                "contact {}: an engine write may not change the address",
                c.id
            )));
        }
        contact_versions.insert(c.id, written_version(c.version(), *read));
    }
    let closing: HashSet<EnrollmentId> = changes
        .enrollments
        .iter()
        .filter(|(e, _)| e.is_final())
        .map(|(e, _)| e.id)
        .collect();
    let open_by_pair = open_enrollments_of_pairs(conn, changes).await?;
    let mut versions: HashMap<EnrollmentId, u64> = HashMap::new();
    let mut opening: HashMap<(SequenceId, ContactId), EnrollmentId> = HashMap::new();
    for (e, read) in &changes.enrollments {
        let stored = match work.enrollments.get(&e.id) {
            Some(s) if s.row.tenant == e.tenant && in_scope(e.tenant) => &s.row,
            _ => return Err(StoreError::not_found(Entity::Enrollment, e.id)),
        };
        // Sticky only to a mailbox of its tenant: the due read finds it per mailbox.
        if let Some(m) = e.mailbox().filter(|m| {
            work.mailboxes
                .get(m)
                .is_none_or(|stored| stored.row.tenant != e.tenant)
        }) {
            return Err(StoreError::not_found(Entity::Mailbox, m));
        }
        let current = versions.get(&e.id).copied().unwrap_or(stored.version());
        if current != *read {
            return Err(conflict(Entity::Enrollment, e.id, *read, current));
        }
        versions.insert(e.id, written_version(e.version(), *read));
        if !e.is_final() {
            let pair = (e.sequence, e.contact);
            let taken = open_by_pair
                .get(&pair)
                .filter(|other| **other != e.id && !closing.contains(other))
                .or_else(|| opening.get(&pair).filter(|other| **other != e.id));
            if taken.is_some() {
                return Err(StoreError::AlreadyExists {
                    entity: Entity::Enrollment,
                    id: format!("{} (sequence {}, contact {})", e.id, e.sequence, e.contact),
                });
            }
            opening.insert(pair, e.id);
        }
    }
    let mut seq_versions: HashMap<SequenceId, u64> = HashMap::new();
    for (s, read) in &changes.sequences {
        let stored = match work.sequences.get(&s.id) {
            Some(st) if st.row.tenant == s.tenant && in_scope(s.tenant) => &st.row,
            _ => return Err(StoreError::not_found(Entity::Sequence, s.id)),
        };
        let current = seq_versions.get(&s.id).copied().unwrap_or(stored.version());
        if current != *read {
            return Err(conflict(Entity::Sequence, s.id, *read, current));
        }
        seq_versions.insert(s.id, written_version(s.version(), *read));
    }
    let mut mb_versions: HashMap<MailboxId, u64> = HashMap::new();
    for (m, read) in &changes.mailboxes {
        let stored = match work.mailboxes.get(&m.id) {
            Some(st) if st.row.tenant == m.tenant && in_scope(m.tenant) => &st.row,
            _ => return Err(StoreError::not_found(Entity::Mailbox, m.id)),
        };
        let current = mb_versions.get(&m.id).copied().unwrap_or(stored.version());
        if current != *read {
            return Err(conflict(Entity::Mailbox, m.id, *read, current));
        }
        mb_versions.insert(m.id, written_version(m.version(), *read));
    }
    Ok(())
}

/// The open enrollment of each (sequence, contact) that the change set writes open.
pub(crate) async fn open_enrollments_of_pairs(
    conn: &mut PgConnection,
    changes: &ChangeSet,
) -> Result<HashMap<(SequenceId, ContactId), EnrollmentId>, StoreError> {
    let pairs = changes
        .enrollments
        .iter()
        .filter(|(e, _)| !e.is_final())
        .map(|(e, _)| (e.tenant, e.sequence, e.contact));
    open_of_pairs(conn, pairs).await
}

/// The open enrollment of each pair (`$1` tenants, `$2` sequences, `$3` contacts): a probe
/// of `enrollments_one_open` per pair, in a subquery of its own (its `LIMIT` keeps the
/// server's planner from turning it into a join). Planned afresh on every run (see
/// `enrollments::USED_IDS`).
pub(crate) const OPEN_OF_PAIRS: &str = "\
    SELECT i.id, p.s, p.c FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS p(t, s, c) \
    CROSS JOIN LATERAL ( \
        SELECT id FROM enrollment_identities \
        WHERE tenant_id = p.t AND sequence_id = p.s AND contact_id = p.c AND open \
        LIMIT 1) i";

/// The stored open enrollment of each (tenant, sequence, contact) of `pairs` that has one,
/// by (sequence, contact).
pub(crate) async fn open_of_pairs(
    conn: &mut PgConnection,
    pairs: impl IntoIterator<Item = (TenantId, SequenceId, ContactId)>,
) -> Result<HashMap<(SequenceId, ContactId), EnrollmentId>, StoreError> {
    let pairs: Vec<(Uuid, Uuid, Uuid)> =
        pairs.into_iter().map(|(t, s, c)| (t.0, s.0, c.0)).collect();
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(OPEN_OF_PAIRS)
        .bind(pairs.iter().map(|p| p.0).collect::<Vec<_>>())
        .bind(pairs.iter().map(|p| p.1).collect::<Vec<_>>())
        .bind(pairs.iter().map(|p| p.2).collect::<Vec<_>>())
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    Ok(rows
        .into_iter()
        .map(|(id, s, c)| ((SequenceId(s), ContactId(c)), EnrollmentId(id)))
        .collect())
}

// ---- writing ---------------------------------------------------------------------------------

/// Write a change set that [`check_changes`] accepted into the working set.
pub(crate) fn write_changes(work: &mut Work, changes: &ChangeSet, tenant: Option<TenantId>) {
    for (c, read) in &changes.contacts {
        let mut c = c.clone();
        let current = work.contacts.get(&c.id).map_or(*read, |t| t.row.version());
        c.set_version(written_version(c.version(), current));
        work.contacts.insert(
            c.id,
            Tracked {
                row: c,
                dirty: true,
            },
        );
    }
    for (e, read) in &changes.enrollments {
        let mut e = e.clone();
        let current = work
            .enrollments
            .get(&e.id)
            .map_or(*read, |t| t.row.version());
        e.set_version(written_version(e.version(), current));
        work.put_enrollment(e);
    }
    for id in &changes.cancel_sends {
        let ours = work
            .sends
            .get(id)
            .is_some_and(|t| tenant.is_none_or(|scope| scope == t.row.send.tenant));
        if ours {
            work.cancel_send(*id, "called off");
        }
    }
    for (s, read) in &changes.sequences {
        let mut s = s.clone();
        let current = work.sequences.get(&s.id).map_or(*read, |t| t.row.version());
        s.set_version(written_version(s.version(), current));
        work.sequences.insert(
            s.id,
            Tracked {
                row: s,
                dirty: true,
            },
        );
    }
    for (m, read) in &changes.mailboxes {
        let mut m = m.clone();
        let current = work.mailboxes.get(&m.id).map_or(*read, |t| t.row.version());
        m.set_version(written_version(m.version(), current));
        work.mailboxes.insert(
            m.id,
            Tracked {
                row: m,
                dirty: true,
            },
        );
    }
    for mark in &changes.tracking {
        if let Some(t) = work.sends.get_mut(&mark.send) {
            if tenant.is_none_or(|scope| scope == t.row.send.tenant)
                && t.row.send.mark(mark.kind, mark.at)
            {
                t.dirty = true;
            }
        }
    }
}

pub(crate) async fn apply_changes(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    changes: &ChangeSet,
) -> Result<(), StoreError> {
    let mut work = Work::default();
    load_changes(conn, &mut work, changes).await?;
    check_changes(conn, &work, changes, None).await?;
    write_changes(&mut work, changes, None);
    work.flush(conn).await?;
    wake_for_released(conn, &mut work, now).await
}

// ---- released capacity -------------------------------------------------------------------

/// Capacity a unit of work released on a mailbox's current local day goes to waiting
/// enrollments the same day: for each released unit, up to two active enrollments deferred
/// for capacity or windows that the mailbox can serve (its sequence's pool holds it, and it
/// is not sticky to another active mailbox) are made due at `now`, soonest first. Two,
/// because one woken may still not fit (its recipient's hours). Runs after the unit's
/// writes were flushed (it reads them), and flushes what it wakes.
pub(crate) async fn wake_for_released(
    conn: &mut PgConnection,
    work: &mut Work,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let released = std::mem::take(&mut work.released);
    if released.is_empty() {
        return Ok(());
    }
    load_mailboxes(conn, work, released.iter().map(|(_, m, _)| *m), false).await?;
    for (tenant, mailbox, date) in released {
        let Some(m) = work.mailboxes.get(&mailbox).map(|t| &t.row) else {
            continue;
        };
        if m.tenant != tenant || !m.is_active() || local_date(m.timezone, now) != date {
            continue;
        }
        // The pools holding the mailbox have room again: their backlog is planned anew.
        catalog::end_waits_on(conn, tenant, mailbox).await?;
        // Rows another unit holds are passed over rather than waited for.
        let rows = sqlx::query(
            "SELECT e.doc FROM enrollments e \
             JOIN sequences s ON s.tenant_id = e.tenant_id AND s.id = e.sequence_id \
             LEFT JOIN mailboxes sticky ON sticky.tenant_id = e.tenant_id \
                 AND sticky.id = e.mailbox_id \
             WHERE e.tenant_id = $1 AND e.status = 'active' AND e.due_at >= $3 \
               AND e.deferral_reason IN \
                   ('no_capacity', 'outside_mailbox_window', 'outside_recipient_window') \
               AND (e.mailbox_id IS NULL OR e.mailbox_id = $2 OR sticky.id IS NULL \
                    OR sticky.status <> 'active') \
               AND $2 = ANY(s.mailbox_pool) \
             ORDER BY e.due_at, e.id LIMIT 2 \
             FOR UPDATE OF e SKIP LOCKED",
        )
        .bind(tenant.0)
        .bind(mailbox.0)
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .db()?;
        for r in &rows {
            let mut e: Enrollment = doc(r, "doc")?;
            if e.wake(now) {
                work.put_enrollment(e);
            }
        }
    }
    work.flush(conn).await
}
