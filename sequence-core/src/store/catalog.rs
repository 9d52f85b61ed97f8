//! The catalog half of the [`Store`](super::Store): sequences, mailboxes and contacts, the
//! records a host edits.
//!
//!
//! # Contacts
//!
//! A tenant's contacts are unique by normalized address (trimmed, lower-cased). A host
//! write ([`Store::upsert_contacts`]) changes a contact's own fields and never what the
//! engine recorded (its status, replies, activity): a re-sync from a CRM never makes an
//! unsubscribed or bounced contact sendable again. Engine writes go through

use async_trait::async_trait;

use super::StoreError;
use crate::contact::Contact;
use crate::ids::{ContactId, MailboxId, SequenceId, TenantId};
use crate::mailbox::Mailbox;
use crate::sequence::{Sequence, SequenceStatus};

/// What [`Catalog::delete_draft_sequence`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DraftDeletion {
    /// The draft is gone: reads no longer find it.
    Deleted,
    /// The tenant has no sequence with that id (another tenant's id included): nothing was
    /// deleted.
    NotFound,
    /// The sequence is not a draft: nothing was deleted. Its status as the store read it.
    NotDraft {
        /// The sequence's status.
        status: SequenceStatus,
    },
    /// The draft has enrollments (a host enrolled contacts through the store itself; the
    /// engine enrolls only into active sequences): nothing was deleted.
    HasEnrollments,
}

/// Where sequences, mailboxes and contacts live: the half of a [`Store`](super::Store) that
/// the host's records go through.
///
/// Every method is one atomic unit of work and is scoped to a tenant where it takes one.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Insert a sequence (`expected_version` `None`; fails with `AlreadyExists`) or replace it
    /// when the stored version equals `expected_version` (else `VersionConflict`). A replaced
    /// record is stored with a version above the one read, even if the caller did not bump
    /// it, so a concurrent writer always sees the conflict.
    async fn save_sequence(
        &self,
        sequence: &Sequence,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;

    /// A sequence of `tenant`, if any.
    async fn get_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Option<Sequence>, StoreError>;

    /// Every sequence of `tenant`.
    async fn list_sequences(&self, tenant: TenantId) -> Result<Vec<Sequence>, StoreError>;

    /// Delete a draft sequence of `tenant` for good: afterwards no read finds it.
    ///
    /// Atomic: the sequence is deleted only if, inside the same unit of work, it is still
    /// a draft (`status` is checked by the delete itself, so an activation racing it
    /// either lands first and the delete is refused, or finds nothing to activate) and
    /// has no enrollment. Otherwise nothing is written and the answer says why
    /// ([`DraftDeletion::NotDraft`], [`DraftDeletion::HasEnrollments`]). A sequence of
    /// another tenant is [`DraftDeletion::NotFound`], exactly as a missing one, and is
    /// left untouched. A draft has no sends and no counters, so nothing else is removed;
    /// domain events recorded about it are history and are kept.
    async fn delete_draft_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<DraftDeletion, StoreError>;

    /// Sequences by id, across tenants (for planning and dispatch).
    async fn get_sequences(&self, ids: &[SequenceId]) -> Result<Vec<Sequence>, StoreError>;

    /// Insert or replace a mailbox, with the same version rule as [`Catalog::save_sequence`].
    async fn save_mailbox(
        &self,
        mailbox: &Mailbox,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;

    /// A mailbox of `tenant`, if any.
    async fn get_mailbox(
        &self,
        tenant: TenantId,
        id: MailboxId,
    ) -> Result<Option<Mailbox>, StoreError>;

    /// Every mailbox of `tenant`.
    async fn list_mailboxes(&self, tenant: TenantId) -> Result<Vec<Mailbox>, StoreError>;

    /// Insert or update contacts of `tenant`, and answer the stored id of each row, in order.
    /// A row whose normalized address (trimmed, lower-cased) belongs to a stored contact of
    /// the tenant updates that contact, whatever the row's id; else a row whose id is stored
    /// updates that contact; else the row is inserted. An update takes the row's own fields
    /// with [`Contact::apply_host_update`] and keeps the engine's (status, replies,
    /// activity): it never lifts a suppression. Every write raises the contact's version.
    /// A row of another tenant, or whose id belongs to another tenant, is refused with
    /// `NotFound`; a row whose id is stored under another address that a different contact
    /// holds is refused with `AlreadyExists`; then nothing is written.
    async fn upsert_contacts(
        &self,
        tenant: TenantId,
        contacts: &[Contact],
    ) -> Result<Vec<ContactId>, StoreError>;

    /// A contact of `tenant`, if any.
    async fn get_contact(
        &self,
        tenant: TenantId,
        id: ContactId,
    ) -> Result<Option<Contact>, StoreError>;

    /// The stored contacts of `tenant` whose ids are among `ids` (each at most once, in no
    /// particular order; an id not stored in the tenant is left out): one read for a whole
    /// batch where a host call needs its contacts.
    ///
    /// The default reads them one by one with [`Catalog::get_contact`]; a backend overrides
    /// it to read them in one statement.
    async fn get_contacts(
        &self,
        tenant: TenantId,
        ids: &[ContactId],
    ) -> Result<Vec<Contact>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for &id in ids {
            if seen.insert(id) {
                if let Some(c) = self.get_contact(tenant, id).await? {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// The stored contacts of `tenant` whose normalized addresses are among `emails` (each
    /// at most once, in no particular order): one read for a whole import.
    async fn find_contacts_by_email(
        &self,
        tenant: TenantId,
        emails: &[String],
    ) -> Result<Vec<Contact>, StoreError>;

    /// A contact of `tenant` by address (case-insensitive), if any.
    async fn find_contact_by_email(
        &self,
        tenant: TenantId,
        email: &str,
    ) -> Result<Option<Contact>, StoreError>;
}
