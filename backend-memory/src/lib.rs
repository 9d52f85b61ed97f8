//! # backend-memory
//!
//! [`MemoryStore`]: the [`Store`](sequence_core::Store) of the sequence engine kept in memory. It is the embedded
//! default for hosts that need no database, and the test double of the engine's tests and
//! simulations. It keeps the same promises PostgreSQL does: one active enrollment per
//! (sequence, contact), optimistic-lock conflicts, leases checked on every write after a
//! claim, capacity reservations that never exceed a limit, and every read and write scoped
//! to its tenant.
//!
//! ## How it works
//!
//! One [`std::sync::Mutex`] guards the whole state, so each [`Store`](sequence_core::Store) method is one atomic
//! unit of work: it takes the lock, checks everything, writes, and lets go. No method awaits
//! while it holds the lock (none awaits at all). Clones of a `MemoryStore` share one state.
//!
//! The rows sit beside indexes that let a tick touch only what is due, so its cost grows
//! with the work due and not with what is stored:
//!
//! * due enrollments ordered by `next_due_at` (paused ones by the end of their pause);
//! * planned sends ordered by instant, globally (for [`Outbox::next_wakeup`]) and per mailbox
//!   (for snapshots), and the mailboxes with nothing in flight ordered by their earliest
//!   planned send (what [`Outbox::claim_sends`] walks); sends in flight by lease expiry;
//! * attempts plus reservations per (mailbox, mailbox-local date), the latest attempt per
//!   mailbox, and daily counts per UTC date (new starts per sequence, sends per recipient
//!   domain);
//! * (enrollment, step) -> send, the idempotency key; (sequence, contact) -> open enrollment,
//!   the uniqueness, and its history for the re-enrollment rule; enrollments per contact and
//!   per sequence; sends per sequence; contacts per (tenant, lower-cased address).
//!
//! ## Example
//!
//! ```
//! use backend_memory::MemoryStore;
//! use chrono::{TimeZone, Utc};
//! use sequence_core::prelude::*;
//! use sequence_core::store::EnrollOutcome;
//!
//! # futures::executor::block_on(async {
//! let store = MemoryStore::new();
//! let tenant = TenantId::new();
//! let now = Utc.with_ymd_and_hms(2026, 3, 9, 8, 0, 0).unwrap();
//!
//! let mailbox = Mailbox::new(tenant, "ana@sender.example", chrono_tz::Europe::Berlin)?;
//! store.save_mailbox(&mailbox, None).await?;
//! let mut sequence = Sequence::new(tenant, "Welcome", now)?;
//! sequence.add_step(Step::new(Delay::ZERO, "Hi {{ first_name }}", "Hello!"))?;
//! sequence.set_mailbox_pool(vec![mailbox.id])?;
//! sequence.activate()?;
//! store.save_sequence(&sequence, None).await?;
//! let contact = Contact::new(tenant, "Bo@Client.example")?;
//! store.upsert_contacts(tenant, &[contact.clone()]).await?;
//!
//! // One active enrollment per (sequence, contact): the second row is refused.
//! let rows = vec![
//!     Enrollment::new(tenant, sequence.id, contact.id, now, now),
//!     Enrollment::new(tenant, sequence.id, contact.id, now, now),
//! ];
//! let answers = store.enroll(tenant, now, rows).await?;
//! assert!(matches!(answers[0], EnrollOutcome::Enrolled { .. }));
//! assert!(matches!(answers[1], EnrollOutcome::AlreadyEnrolled { .. }));
//!
//! // The enrollment is due now, with its contact; addresses match case-insensitively.
//! let due = store.due_enrollments(now, 100).await?;
//! assert_eq!(due.len(), 1);
//! assert_eq!(due[0].contact, contact.id);
//! assert_eq!(due[0].recipient_domain(), "client.example");
//! let found = store.find_contact_by_email(tenant, "bo@client.EXAMPLE").await?;
//! assert_eq!(found.map(|c| c.id), Some(contact.id));
//! assert_eq!(store.next_wakeup().await?, Some(now));
//!
//! // Another tenant sees none of it.
//! assert!(store.get_contact(TenantId::new(), contact.id).await?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod state;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sequence_core::contact::Contact;
use sequence_core::enrollment::{Enrollment, EnrollmentStatus};
use sequence_core::event::DomainEvent;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::send::{Lease, ScheduledSend};
use sequence_core::sequence::Sequence;
use sequence_core::store::{
    Catalog, ChangeSet, ClaimedSend, DailyCounts, DraftDeletion, DueDocuments, DueEnrollment,
    EnrollOutcome, EnrollmentCursor, MailboxBound, MailboxDay, MailboxSnapshot, MailboxWait,
    Outbox, PlanApplied, PlanCommit, PlanningLease, PoolBound, PoolWait, SendCompletion,
    SendContext, SequenceTally, StoreError,
};

use state::State;

/// A [`Store`](sequence_core::Store) in memory, safe to share across tasks; clones share one state.
///
/// Each method is one atomic unit of work under one lock. A record written with a version
/// check is stored with the caller's version, or with the version read plus one when the
/// caller did not bump it, so that optimistic locking holds either way.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MemoryStore");
        match self.state.try_lock() {
            Ok(state) => {
                let (sequences, mailboxes, contacts, enrollments, sends) = state.sizes();
                d.field("sequences", &sequences)
                    .field("mailboxes", &mailboxes)
                    .field("contacts", &contacts)
                    .field("enrollments", &enrollments)
                    .field("sends", &sends);
            }
            Err(_) => {
                d.field("state", &"<locked>");
            }
        }
        d.finish()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The domain events recorded with [`Outbox::record_events`] for `tenant`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when a panic poisoned the state.
    pub fn recorded_events(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<(DateTime<Utc>, DomainEvent)>, StoreError> {
        Ok(self.lock()?.events_of(tenant))
    }

    /// Rebuild every index from the rows and compare them with the indexes kept; the first
    /// difference found, if any. A full scan under the lock: a check for tests and
    /// simulations, not for hot paths.
    ///
    /// # Errors
    /// A description of the first index that disagrees with the rows, or of a poisoned
    /// state.
    #[cfg(feature = "test-util")]
    pub fn check_indexes(&self) -> Result<(), String> {
        self.lock().map_err(|e| e.to_string())?.check_indexes()
    }

    /// The state, for one unit of work. A panic while the lock was held may have left the
    /// state half-written, so a poisoned lock is reported instead of recovered.
    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::backend("memory store: state poisoned by an earlier panic"))
    }
}

#[async_trait]
impl Catalog for MemoryStore {
    async fn save_sequence(
        &self,
        sequence: &Sequence,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.lock()?.save_sequence(sequence, expected_version)
    }

    async fn get_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Option<Sequence>, StoreError> {
        Ok(self.lock()?.get_sequence(tenant, id))
    }

    async fn list_sequences(&self, tenant: TenantId) -> Result<Vec<Sequence>, StoreError> {
        Ok(self.lock()?.list_sequences(tenant))
    }

    async fn delete_draft_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<DraftDeletion, StoreError> {
        Ok(self.lock()?.delete_draft_sequence(tenant, id))
    }

    async fn get_sequences(&self, ids: &[SequenceId]) -> Result<Vec<Sequence>, StoreError> {
        Ok(self.lock()?.get_sequences(ids))
    }

    async fn save_mailbox(
        &self,
        mailbox: &Mailbox,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.lock()?.save_mailbox(mailbox, expected_version)
    }

    async fn get_mailbox(
        &self,
        tenant: TenantId,
        id: MailboxId,
    ) -> Result<Option<Mailbox>, StoreError> {
        Ok(self.lock()?.get_mailbox(tenant, id))
    }

    async fn list_mailboxes(&self, tenant: TenantId) -> Result<Vec<Mailbox>, StoreError> {
        Ok(self.lock()?.list_mailboxes(tenant))
    }

    async fn upsert_contacts(
        &self,
        tenant: TenantId,
        contacts: &[Contact],
    ) -> Result<Vec<ContactId>, StoreError> {
        self.lock()?.upsert_contacts(tenant, contacts)
    }

    async fn get_contact(
        &self,
        tenant: TenantId,
        id: ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        Ok(self.lock()?.get_contact(tenant, id))
    }

    async fn find_contacts_by_email(
        &self,
        tenant: TenantId,
        emails: &[String],
    ) -> Result<Vec<Contact>, StoreError> {
        Ok(self.lock()?.find_contacts_by_email(tenant, emails))
    }

    async fn find_contact_by_email(
        &self,
        tenant: TenantId,
        email: &str,
    ) -> Result<Option<Contact>, StoreError> {
        Ok(self.lock()?.find_contact_by_email(tenant, email))
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn enroll(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        enrollments: Vec<Enrollment>,
    ) -> Result<Vec<EnrollOutcome>, StoreError> {
        Ok(self.lock()?.enroll(tenant, now, enrollments))
    }

    async fn get_enrollment(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
    ) -> Result<Option<Enrollment>, StoreError> {
        Ok(self.lock()?.get_enrollment(tenant, id))
    }

    async fn list_enrollments(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        Ok(self.lock()?.list_enrollments(tenant, sequence))
    }

    async fn open_enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        Ok(self
            .lock()?
            .open_enrollments_page(tenant, sequence, after, limit))
    }

    async fn enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        status: Option<EnrollmentStatus>,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        Ok(self
            .lock()?
            .enrollments_page(tenant, sequence, status, after, limit))
    }

    async fn open_sends_of(
        &self,
        tenant: TenantId,
        enrollments: &[EnrollmentId],
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        Ok(self.lock()?.open_sends_of(tenant, enrollments))
    }

    async fn open_enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        Ok(self.lock()?.open_enrollments_of_contact(tenant, contact))
    }

    async fn enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        Ok(self.lock()?.enrollments_of_contact(tenant, contact))
    }

    async fn mailbox_days(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<MailboxDay>, StoreError> {
        self.lock()?.mailbox_days(tenant, mailbox, from, to)
    }

    async fn sends_of_enrollment(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        Ok(self.lock()?.sends_of_enrollment(tenant, enrollment))
    }

    async fn sends_of_sequence(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        Ok(self.lock()?.sends_of_sequence(tenant, sequence))
    }

    async fn sequence_tally(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<SequenceTally, StoreError> {
        Ok(self.lock()?.sequence_tally(tenant, sequence))
    }

    async fn apply_changes(
        &self,
        now: DateTime<Utc>,
        changes: ChangeSet,
    ) -> Result<(), StoreError> {
        self.lock()?.apply_changes(now, changes)
    }

    async fn due_enrollments(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        Ok(self.lock()?.due_enrollments(now, limit))
    }

    async fn due_documents(
        &self,
        due: &[(TenantId, EnrollmentId)],
    ) -> Result<Vec<DueDocuments>, StoreError> {
        Ok(self.lock()?.due_documents(due))
    }

    async fn due_pools(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, SequenceId)>, StoreError> {
        Ok(self.lock()?.due_pools(now))
    }

    async fn due_mailboxes(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, MailboxId)>, StoreError> {
        Ok(self.lock()?.due_mailboxes(now))
    }

    async fn due_enrollments_bounded(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        pools: &[PoolBound],
        mailboxes: &[MailboxBound],
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        Ok(self
            .lock()?
            .due_enrollments_bounded(now, limit, pools, mailboxes))
    }

    async fn mailbox_snapshots(
        &self,
        now: DateTime<Utc>,
        ids: &[MailboxId],
    ) -> Result<Vec<MailboxSnapshot>, StoreError> {
        Ok(self.lock()?.mailbox_snapshots(now, ids))
    }

    async fn daily_counts(
        &self,
        now: DateTime<Utc>,
        sequences: &[SequenceId],
        domains: &[(TenantId, String)],
    ) -> Result<DailyCounts, StoreError> {
        Ok(self.lock()?.daily_counts(now, sequences, domains))
    }

    async fn apply_plan(
        &self,
        now: DateTime<Utc>,
        plan: PlanCommit,
    ) -> Result<PlanApplied, StoreError> {
        self.lock()?.apply_plan(now, plan)
    }

    async fn claim_sends(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedSend>, StoreError> {
        Ok(self.lock()?.claim_sends(now, lease_for, limit))
    }

    async fn acquire_planning(
        &self,
        now: DateTime<Utc>,
        token: uuid::Uuid,
        lease_for: Duration,
    ) -> Result<Option<PlanningLease>, StoreError> {
        Ok(self.lock()?.acquire_planning(now, token, lease_for))
    }

    async fn release_planning(&self, lease: PlanningLease) -> Result<(), StoreError> {
        self.lock()?.release_planning(lease);
        Ok(())
    }

    async fn send_context(
        &self,
        tenant: TenantId,
        send: SendId,
    ) -> Result<Option<SendContext>, StoreError> {
        Ok(self.lock()?.send_context(tenant, send))
    }

    async fn send_contexts(
        &self,
        sends: &[(TenantId, SendId)],
    ) -> Result<Vec<Option<SendContext>>, StoreError> {
        let state = self.lock()?;
        Ok(sends
            .iter()
            .map(|&(tenant, send)| state.send_context(tenant, send))
            .collect())
    }

    async fn complete_send(
        &self,
        now: DateTime<Utc>,
        completion: SendCompletion,
    ) -> Result<(), StoreError> {
        self.lock()?.complete_send(now, completion)
    }

    async fn release_send(
        &self,
        now: DateTime<Utc>,
        send: SendId,
        lease: Lease,
        replan_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.lock()?.release_send(now, send, lease, replan_at)
    }

    async fn expire_leases(
        &self,
        now: DateTime<Utc>,
        resend: bool,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        Ok(self.lock()?.expire_leases(now, resend))
    }

    async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock()?.next_wakeup())
    }

    async fn pool_wait(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        now: DateTime<Utc>,
    ) -> Result<Option<PoolWait>, StoreError> {
        Ok(self.lock()?.pool_wait(tenant, sequence, now))
    }

    async fn mailbox_wait(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        now: DateTime<Utc>,
    ) -> Result<Option<MailboxWait>, StoreError> {
        Ok(self.lock()?.mailbox_wait(tenant, mailbox, now))
    }

    async fn record_events(
        &self,
        tenant: TenantId,
        at: DateTime<Utc>,
        events: &[DomainEvent],
    ) -> Result<(), StoreError> {
        self.lock()?.record_events(tenant, at, events);
        Ok(())
    }
}
