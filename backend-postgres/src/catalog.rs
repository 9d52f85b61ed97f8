//! The catalog half: sequences, mailboxes and contacts.

use std::collections::{HashMap, HashSet};

use sequence_core::contact::{normalize_email, Contact};
use sequence_core::error::Entity;
use sequence_core::ids::{ContactId, MailboxId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::sequence::{Sequence, SequenceStatus};
use sequence_core::store::{DraftDeletion, StoreError};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Db;
use crate::rows::{self, big, doc, doc_by, name};
use crate::work::{lock_mailbox_state, refresh_mailbox_state};

/// A version conflict on `entity` `id`.
pub(crate) fn conflict(
    entity: Entity,
    id: impl std::fmt::Display,
    expected: u64,
    found: u64,
) -> StoreError {
    StoreError::VersionConflict {
        entity,
        id: id.to_string(),
        expected,
        found,
    }
}

/// The version a replaced record is stored with: the caller's, but always past the version
/// it was read at, so that a second writer holding the same read version conflicts even
/// when the first forgot to bump it.
pub(crate) fn written_version(new: u64, read: u64) -> u64 {
    new.max(read.saturating_add(1))
}

/// What an insert-or-replace finds stored under an id: its tenant and version.
async fn stored_version(
    conn: &mut PgConnection,
    entity: Entity,
    id: Uuid,
) -> Result<Option<(TenantId, u64)>, StoreError> {
    let sql = if entity == Entity::Sequence {
        "SELECT tenant_id, version FROM sequences WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT tenant_id, version FROM mailboxes WHERE id = $1 FOR UPDATE"
    };
    let row: Option<(Uuid, i64)> = sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    Ok(row.map(|(t, v)| (TenantId(t), u64::try_from(v).unwrap_or(0))))
}

/// The version check of [`Catalog::save_sequence`](sequence_core::store::Catalog) and
/// `save_mailbox`: `Ok(None)` to insert, `Ok(Some(version))` to replace with that version.
fn check_save(
    entity: Entity,
    id: Uuid,
    tenant: TenantId,
    own_version: u64,
    expected: Option<u64>,
    stored: Option<(TenantId, u64)>,
) -> Result<Option<u64>, StoreError> {
    match (expected, stored) {
        (None, Some(_)) => Err(StoreError::AlreadyExists {
            entity,
            id: id.to_string(),
        }),
        (None, None) => Ok(None),
        (Some(_), None) => Err(StoreError::not_found(entity, id)),
        (Some(_), Some((stored_tenant, _))) if stored_tenant != tenant => {
            Err(StoreError::not_found(entity, id))
        }
        (Some(read), Some((_, found))) if found != read => Err(conflict(entity, id, read, found)),
        (Some(read), Some(_)) => Ok(Some(written_version(own_version, read))),
    }
}

// ---- sequences -------------------------------------------------------------------------------

pub(crate) async fn save_sequence(
    conn: &mut PgConnection,
    sequence: &Sequence,
    expected: Option<u64>,
) -> Result<(), StoreError> {
    let stored = stored_version(conn, Entity::Sequence, sequence.id.0).await?;
    let version = check_save(
        Entity::Sequence,
        sequence.id.0,
        sequence.tenant,
        sequence.version(),
        expected,
        stored,
    )?;
    let mut sequence = sequence.clone();
    match version {
        Some(v) => {
            sequence.set_version(v);
            write_sequence(conn, &sequence).await
        }
        None => {
            let inserted = sqlx::query(
                "INSERT INTO sequences (tenant_id, id, status, mailbox_pool, version, doc) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(sequence.tenant.0)
            .bind(sequence.id.0)
            .bind(name(&sequence.status())?)
            .bind(pool_of(&sequence))
            .bind(big(sequence.version()))
            .bind(Json(&sequence))
            .execute(&mut *conn)
            .await
            .db()?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::AlreadyExists {
                    entity: Entity::Sequence,
                    id: sequence.id.to_string(),
                });
            }
            Ok(())
        }
    }
}

fn pool_of(sequence: &Sequence) -> Vec<Uuid> {
    sequence.mailbox_pool.iter().map(|m| m.0).collect()
}

/// Replace a stored sequence (its version already set).
pub(crate) async fn write_sequence(
    conn: &mut PgConnection,
    sequence: &Sequence,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sequences SET status = $3, mailbox_pool = $4, version = $5, doc = $6 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(sequence.tenant.0)
    .bind(sequence.id.0)
    .bind(name(&sequence.status())?)
    .bind(pool_of(sequence))
    .bind(big(sequence.version()))
    .bind(Json(sequence))
    .execute(&mut *conn)
    .await
    .db()?;
    // Its pool, caps or status may have changed: its backlog is planned anew.
    sqlx::query("DELETE FROM pool_waits WHERE tenant_id = $1 AND sequence_id = $2")
        .bind(sequence.tenant.0)
        .bind(sequence.id.0)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}

/// [`Catalog::delete_draft_sequence`](sequence_core::store::Catalog): the row is locked
/// first, which waits for an `enroll` into it to commit (it share-locks its sequences);
/// then the `DELETE`, a new statement that sees what committed meanwhile, checks that the
/// row is a draft without enrollments, so an activation or an enrollment that commits
/// first makes it delete nothing. When nothing was deleted, one read of the row says why.
pub(crate) async fn delete_draft_sequence(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SequenceId,
) -> Result<DraftDeletion, StoreError> {
    sqlx::query("SELECT 1 FROM sequences WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    let deleted = sqlx::query(
        "DELETE FROM sequences WHERE tenant_id = $1 AND id = $2 AND status = 'draft' \
             AND NOT EXISTS (SELECT 1 FROM enrollment_identities \
                             WHERE tenant_id = $1 AND sequence_id = $2)",
    )
    .bind(tenant.0)
    .bind(id.0)
    .execute(&mut *conn)
    .await
    .db()?
    .rows_affected();
    if deleted > 0 {
        return Ok(DraftDeletion::Deleted);
    }
    Ok(match get_sequence(conn, tenant, id).await? {
        None => DraftDeletion::NotFound,
        Some(s) if s.status() != SequenceStatus::Draft => {
            DraftDeletion::NotDraft { status: s.status() }
        }
        // Still a draft, so the delete found an enrollment of it.
        Some(_) => DraftDeletion::HasEnrollments,
    })
}

pub(crate) async fn get_sequence(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SequenceId,
) -> Result<Option<Sequence>, StoreError> {
    doc_by(
        conn,
        "SELECT doc FROM sequences WHERE tenant_id = $1 AND id = $2",
        tenant,
        id.0,
    )
    .await
}

pub(crate) async fn list_sequences(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<Sequence>, StoreError> {
    let rows = sqlx::query("SELECT doc FROM sequences WHERE tenant_id = $1 ORDER BY id")
        .bind(tenant.0)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    rows.iter().map(|r| doc(r, "doc")).collect()
}

/// Sequences by id across tenants, in the order asked (each once, unknown ones left out).
pub(crate) async fn get_sequences(
    conn: &mut PgConnection,
    ids: &[SequenceId],
) -> Result<Vec<Sequence>, StoreError> {
    let wanted: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
    let rows = sqlx::query("SELECT id, doc FROM sequences WHERE id = ANY($1)")
        .bind(&wanted)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut found: HashMap<Uuid, Sequence> = HashMap::with_capacity(rows.len());
    for r in &rows {
        found.insert(rows::uuid(r, "id")?, doc(r, "doc")?);
    }
    Ok(wanted.iter().filter_map(|id| found.remove(id)).collect())
}

// ---- mailboxes -------------------------------------------------------------------------------

pub(crate) async fn save_mailbox(
    conn: &mut PgConnection,
    mailbox: &Mailbox,
    expected: Option<u64>,
) -> Result<(), StoreError> {
    let stored = stored_version(conn, Entity::Mailbox, mailbox.id.0).await?;
    let version = check_save(
        Entity::Mailbox,
        mailbox.id.0,
        mailbox.tenant,
        mailbox.version(),
        expected,
        stored,
    )?;
    let mut mailbox = mailbox.clone();
    match version {
        Some(v) => {
            mailbox.set_version(v);
            write_mailbox(conn, &mailbox).await?;
            // Its gap may have changed, and with it when its next send becomes claimable.
            let key = [(mailbox.tenant, mailbox.id)];
            lock_mailbox_state(conn, &key).await?;
            refresh_mailbox_state(conn, &key, &Default::default()).await
        }
        None => {
            let inserted = sqlx::query(
                "INSERT INTO mailboxes (tenant_id, id, status, min_gap_seconds, version, doc) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(mailbox.tenant.0)
            .bind(mailbox.id.0)
            .bind(name(&mailbox.status())?)
            .bind(gap_of(&mailbox))
            .bind(big(mailbox.version()))
            .bind(Json(&mailbox))
            .execute(&mut *conn)
            .await
            .db()?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::AlreadyExists {
                    entity: Entity::Mailbox,
                    id: mailbox.id.to_string(),
                });
            }
            sqlx::query("INSERT INTO mailbox_state (tenant_id, mailbox_id) VALUES ($1, $2)")
                .bind(mailbox.tenant.0)
                .bind(mailbox.id.0)
                .execute(&mut *conn)
                .await
                .db()?;
            Ok(())
        }
    }
}

fn gap_of(mailbox: &Mailbox) -> i32 {
    i32::try_from(mailbox.min_gap_seconds).unwrap_or(i32::MAX)
}

/// Replace a stored mailbox (its version already set), ending the pool waits of the pools
/// that hold it (its limit, status or windows may have changed). The caller recomputes its
/// `mailbox_state` (the gap may have changed).
pub(crate) async fn write_mailbox(
    conn: &mut PgConnection,
    mailbox: &Mailbox,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE mailboxes SET status = $3, min_gap_seconds = $4, version = $5, doc = $6 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(mailbox.tenant.0)
    .bind(mailbox.id.0)
    .bind(name(&mailbox.status())?)
    .bind(gap_of(mailbox))
    .bind(big(mailbox.version()))
    .bind(Json(mailbox))
    .execute(&mut *conn)
    .await
    .db()?;
    end_waits_on(conn, mailbox.tenant, mailbox.id).await
}

/// End the wait of `mailbox` and the pool waits of the sequences of `tenant` whose pool
/// holds it.
pub(crate) async fn end_waits_on(
    conn: &mut PgConnection,
    tenant: TenantId,
    mailbox: MailboxId,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH own AS (DELETE FROM mailbox_waits WHERE tenant_id = $1 AND mailbox_id = $2) \
         DELETE FROM pool_waits w USING sequences s \
         WHERE w.tenant_id = $1 AND s.tenant_id = w.tenant_id AND s.id = w.sequence_id \
           AND $2 = ANY(s.mailbox_pool)",
    )
    .bind(tenant.0)
    .bind(mailbox.0)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

pub(crate) async fn get_mailbox(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: MailboxId,
) -> Result<Option<Mailbox>, StoreError> {
    doc_by(
        conn,
        "SELECT doc FROM mailboxes WHERE tenant_id = $1 AND id = $2",
        tenant,
        id.0,
    )
    .await
}

pub(crate) async fn list_mailboxes(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<Mailbox>, StoreError> {
    let rows = sqlx::query("SELECT doc FROM mailboxes WHERE tenant_id = $1 ORDER BY id")
        .bind(tenant.0)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    rows.iter().map(|r| doc(r, "doc")).collect()
}

// ---- contacts --------------------------------------------------------------------------------

/// How a unit holds its tenant's contact lock (see [`lock_tenant_contacts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContactsLock {
    /// A unit that writes contacts.
    Exclusive,
    /// `enroll`: each enrollment stores a copy of its contact (see the migration
    /// `contact_copies`), so no contact of the tenant may be written between the moment it
    /// reads them and its commit, and a contact write that commits first is seen by its
    /// insert. Enrollments of one tenant are stored side by side.
    Shared,
}

/// A transaction-level advisory lock per tenant, taken before any row lock, by every unit
/// that writes the tenant's contacts: it serializes `upsert_contacts` of one tenant, so that
/// two imports resolving the same new address cannot both insert it (the unique index would
/// refuse the second, and the whole batch with it); and it orders contact writes against
/// `enroll`, which holds it shared.
pub(crate) async fn lock_tenant_contacts(
    conn: &mut PgConnection,
    tenant: TenantId,
    how: ContactsLock,
) -> Result<(), StoreError> {
    let sql = match how {
        ContactsLock::Exclusive => "SELECT pg_advisory_xact_lock($1)",
        ContactsLock::Shared => "SELECT pg_advisory_xact_lock_shared($1)",
    };
    sqlx::query(sql)
        .bind(tenant_contacts_key(tenant))
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}

/// The advisory lock key of a tenant's contacts.
fn tenant_contacts_key(tenant: TenantId) -> i64 {
    let (hi, lo) = tenant.0.as_u64_pair();
    i64::from_ne_bytes((hi ^ lo ^ 0x636f_6e74_6163_7473).to_ne_bytes())
}

pub(crate) async fn upsert_contacts(
    conn: &mut PgConnection,
    tenant: TenantId,
    contacts: &[Contact],
) -> Result<Vec<ContactId>, StoreError> {
    if contacts.is_empty() {
        return Ok(Vec::new());
    }
    lock_tenant_contacts(conn, tenant, ContactsLock::Exclusive).await?;
    let ids: Vec<Uuid> = contacts.iter().map(|c| c.id.0).collect();
    let emails: Vec<String> = contacts.iter().map(|c| normalize_email(&c.email)).collect();
    // Every stored contact the rows may name, by id (any tenant) or by address.
    let rows = sqlx::query(
        "SELECT doc FROM contacts WHERE id = ANY($1) OR (tenant_id = $2 AND email = ANY($3))",
    )
    .bind(&ids)
    .bind(tenant.0)
    .bind(&emails)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let mut stored: HashMap<ContactId, Contact> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let c: Contact = doc(r, "doc")?;
        stored.insert(c.id, c);
    }
    let by_email: HashMap<String, ContactId> = stored
        .values()
        .filter(|c| c.tenant == tenant)
        .map(|c| (c.normalized_email(), c.id))
        .collect();

    // Resolve every row first (nothing is written when one is refused); rows of one call
    // that share an address resolve to one contact.
    let mut batch: HashMap<&str, ContactId> = HashMap::new();
    let mut targets = Vec::with_capacity(contacts.len());
    for (c, address) in contacts.iter().zip(&emails) {
        let foreign = c.tenant != tenant || stored.get(&c.id).is_some_and(|s| s.tenant != tenant);
        if foreign {
            return Err(StoreError::not_found(Entity::Contact, c.id));
        }
        let holder = batch
            .get(address.as_str())
            .copied()
            .or_else(|| by_email.get(address).copied());
        let target = match holder {
            Some(id) => {
                if id != c.id && stored.contains_key(&c.id) {
                    // The row's own contact exists under another address, which a different
                    // contact holds: two people cannot share an address.
                    return Err(StoreError::AlreadyExists {
                        entity: Entity::Contact,
                        id: format!("{} (address {address} belongs to {id})", c.id),
                    });
                }
                id
            }
            None => c.id,
        };
        batch.insert(address, target);
        targets.push(target);
    }
    let mut written: HashMap<ContactId, Contact> = HashMap::new();
    let mut order: Vec<ContactId> = Vec::new();
    for (c, target) in contacts.iter().zip(&targets) {
        let current = written.get(target).or_else(|| stored.get(target)).cloned();
        let contact = match current {
            Some(mut current) => {
                current.apply_host_update(c);
                current.set_version(current.version() + 1);
                current
            }
            None => c.clone(),
        };
        if !written.contains_key(target) {
            order.push(*target);
        }
        written.insert(*target, contact);
    }
    let rows: Vec<&Contact> = order.iter().filter_map(|id| written.get(id)).collect();
    match rows::upsert_contacts(conn, &rows).await {
        Err(e) if crate::error::is_unique_violation(&e) => Err(StoreError::AlreadyExists {
            entity: Entity::Contact,
            id: "a row's address belongs to another contact".to_owned(),
        }),
        other => other,
    }?;
    Ok(targets)
}

pub(crate) async fn get_contact(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ContactId,
) -> Result<Option<Contact>, StoreError> {
    doc_by(
        conn,
        "SELECT doc FROM contacts WHERE tenant_id = $1 AND id = $2",
        tenant,
        id.0,
    )
    .await
}

pub(crate) async fn get_contacts(
    conn: &mut PgConnection,
    tenant: TenantId,
    ids: &[ContactId],
) -> Result<Vec<Contact>, StoreError> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query("SELECT doc FROM contacts WHERE tenant_id = $1 AND id = ANY($2)")
        .bind(tenant.0)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    rows.iter().map(|r| doc(r, "doc")).collect()
}

pub(crate) async fn find_contacts_by_email(
    conn: &mut PgConnection,
    tenant: TenantId,
    emails: &[String],
) -> Result<Vec<Contact>, StoreError> {
    let wanted: Vec<String> = emails.iter().map(|e| normalize_email(e)).collect();
    let rows = sqlx::query("SELECT doc FROM contacts WHERE tenant_id = $1 AND email = ANY($2)")
        .bind(tenant.0)
        .bind(&wanted)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut found: HashMap<String, Contact> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let c: Contact = doc(r, "doc")?;
        found.insert(c.normalized_email(), c);
    }
    let mut seen = HashSet::new();
    Ok(wanted
        .iter()
        .filter_map(|e| found.get(e))
        .filter(|c| seen.insert(c.id))
        .cloned()
        .collect())
}

pub(crate) async fn find_contact_by_email(
    conn: &mut PgConnection,
    tenant: TenantId,
    email: &str,
) -> Result<Option<Contact>, StoreError> {
    let row = sqlx::query("SELECT doc FROM contacts WHERE tenant_id = $1 AND email = $2")
        .bind(tenant.0)
        .bind(normalize_email(email))
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    row.map(|r| doc(&r, "doc")).transpose()
}
