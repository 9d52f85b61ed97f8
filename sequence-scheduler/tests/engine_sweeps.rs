//! A sequence-wide change that meets a concurrent writer: the page it wrote conflicts, and
//! the change must still reach every enrollment (issue: one conflict used to leave
//! enrollments parked with no wake path, and a second resume was refused).
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use backend_memory::MemoryStore;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sequence_core::enrollment::DeferralReason;
use sequence_core::event::DomainEvent;
use sequence_core::prelude::*;
use sequence_core::send::Lease;
use sequence_core::store::{
    ChangeSet, ClaimedSend, DailyCounts, DraftDeletion, DueDocuments, DueEnrollment, EnrollOutcome,
    EnrollmentCursor, MailboxBound, MailboxDay, MailboxSnapshot, MailboxWait, PlanApplied,
    PlanCommit, PlanningLease, PoolBound, PoolWait, SendCompletion, SendContext, StoreError,
};
use sequence_scheduler::testing::RecordingTransport;
use sequence_scheduler::{Engine, EngineConfig, VirtualClock};

/// A store that, on the first multi-row change set while armed, lets "another writer"
/// change one of its enrollments first: the change set then meets a real version conflict.
struct Meddling {
    inner: MemoryStore,
    armed: AtomicBool,
    /// Planning leases taken so far.
    leases: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Catalog for Meddling {
    async fn save_sequence(
        &self,
        sequence: &Sequence,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.inner.save_sequence(sequence, expected_version).await
    }

    async fn get_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Option<Sequence>, StoreError> {
        self.inner.get_sequence(tenant, id).await
    }

    async fn list_sequences(&self, tenant: TenantId) -> Result<Vec<Sequence>, StoreError> {
        self.inner.list_sequences(tenant).await
    }

    async fn delete_draft_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<DraftDeletion, StoreError> {
        self.inner.delete_draft_sequence(tenant, id).await
    }

    async fn get_sequences(&self, ids: &[SequenceId]) -> Result<Vec<Sequence>, StoreError> {
        self.inner.get_sequences(ids).await
    }

    async fn save_mailbox(
        &self,
        mailbox: &Mailbox,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.inner.save_mailbox(mailbox, expected_version).await
    }

    async fn get_mailbox(
        &self,
        tenant: TenantId,
        id: MailboxId,
    ) -> Result<Option<Mailbox>, StoreError> {
        self.inner.get_mailbox(tenant, id).await
    }

    async fn list_mailboxes(&self, tenant: TenantId) -> Result<Vec<Mailbox>, StoreError> {
        self.inner.list_mailboxes(tenant).await
    }

    async fn upsert_contacts(
        &self,
        tenant: TenantId,
        contacts: &[Contact],
    ) -> Result<Vec<ContactId>, StoreError> {
        self.inner.upsert_contacts(tenant, contacts).await
    }

    async fn get_contact(
        &self,
        tenant: TenantId,
        id: ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        self.inner.get_contact(tenant, id).await
    }

    async fn find_contacts_by_email(
        &self,
        tenant: TenantId,
        emails: &[String],
    ) -> Result<Vec<Contact>, StoreError> {
        self.inner.find_contacts_by_email(tenant, emails).await
    }

    async fn find_contact_by_email(
        &self,
        tenant: TenantId,
        email: &str,
    ) -> Result<Option<Contact>, StoreError> {
        self.inner.find_contact_by_email(tenant, email).await
    }
}

#[async_trait]
impl Outbox for Meddling {
    async fn apply_changes(
        &self,
        now: DateTime<Utc>,
        changes: ChangeSet,
    ) -> Result<(), StoreError> {
        if changes.enrollments.len() > 1 && self.armed.swap(false, Ordering::SeqCst) {
            let (e, _) = &changes.enrollments[changes.enrollments.len() / 2];
            let mut theirs = self.inner.get_enrollment(e.tenant, e.id).await?.unwrap();
            let read = theirs.version();
            theirs.record_soft_bounce();
            self.inner
                .apply_changes(
                    now,
                    ChangeSet {
                        enrollments: vec![(theirs, read)],
                        ..ChangeSet::default()
                    },
                )
                .await?;
        }
        self.inner.apply_changes(now, changes).await
    }

    async fn enroll(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        enrollments: Vec<Enrollment>,
    ) -> Result<Vec<EnrollOutcome>, StoreError> {
        self.inner.enroll(tenant, now, enrollments).await
    }

    async fn get_enrollment(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
    ) -> Result<Option<Enrollment>, StoreError> {
        self.inner.get_enrollment(tenant, id).await
    }

    async fn list_enrollments(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.inner.list_enrollments(tenant, sequence).await
    }

    async fn open_enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.inner
            .open_enrollments_page(tenant, sequence, after, limit)
            .await
    }

    async fn enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        status: Option<EnrollmentStatus>,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.inner
            .enrollments_page(tenant, sequence, status, after, limit)
            .await
    }

    async fn open_sends_of(
        &self,
        tenant: TenantId,
        enrollments: &[EnrollmentId],
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        self.inner.open_sends_of(tenant, enrollments).await
    }

    async fn open_enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.inner
            .open_enrollments_of_contact(tenant, contact)
            .await
    }

    async fn enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.inner.enrollments_of_contact(tenant, contact).await
    }

    async fn mailbox_days(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<MailboxDay>, StoreError> {
        self.inner.mailbox_days(tenant, mailbox, from, to).await
    }

    async fn sends_of_enrollment(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        self.inner.sends_of_enrollment(tenant, enrollment).await
    }

    async fn sends_of_sequence(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        self.inner.sends_of_sequence(tenant, sequence).await
    }

    async fn due_enrollments(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        self.inner.due_enrollments(now, limit).await
    }

    async fn due_documents(
        &self,
        due: &[(TenantId, EnrollmentId)],
    ) -> Result<Vec<DueDocuments>, StoreError> {
        self.inner.due_documents(due).await
    }

    async fn due_pools(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, SequenceId)>, StoreError> {
        self.inner.due_pools(now).await
    }

    async fn due_mailboxes(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, MailboxId)>, StoreError> {
        self.inner.due_mailboxes(now).await
    }

    async fn due_enrollments_bounded(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        pools: &[PoolBound],
        mailboxes: &[MailboxBound],
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        self.inner
            .due_enrollments_bounded(now, limit, pools, mailboxes)
            .await
    }

    async fn mailbox_snapshots(
        &self,
        now: DateTime<Utc>,
        ids: &[MailboxId],
    ) -> Result<Vec<MailboxSnapshot>, StoreError> {
        self.inner.mailbox_snapshots(now, ids).await
    }

    async fn daily_counts(
        &self,
        now: DateTime<Utc>,
        sequences: &[SequenceId],
        domains: &[(TenantId, String)],
    ) -> Result<DailyCounts, StoreError> {
        self.inner.daily_counts(now, sequences, domains).await
    }

    async fn acquire_planning(
        &self,
        now: DateTime<Utc>,
        token: uuid::Uuid,
        lease_for: Duration,
    ) -> Result<Option<PlanningLease>, StoreError> {
        self.leases.fetch_add(1, Ordering::SeqCst);
        self.inner.acquire_planning(now, token, lease_for).await
    }

    async fn release_planning(&self, lease: PlanningLease) -> Result<(), StoreError> {
        self.inner.release_planning(lease).await
    }

    async fn apply_plan(
        &self,
        now: DateTime<Utc>,
        plan: PlanCommit,
    ) -> Result<PlanApplied, StoreError> {
        self.inner.apply_plan(now, plan).await
    }

    async fn claim_sends(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedSend>, StoreError> {
        self.inner.claim_sends(now, lease_for, limit).await
    }

    async fn send_context(
        &self,
        tenant: TenantId,
        send: SendId,
    ) -> Result<Option<SendContext>, StoreError> {
        self.inner.send_context(tenant, send).await
    }

    async fn complete_send(
        &self,
        now: DateTime<Utc>,
        completion: SendCompletion,
    ) -> Result<(), StoreError> {
        self.inner.complete_send(now, completion).await
    }

    async fn release_send(
        &self,
        now: DateTime<Utc>,
        send: SendId,
        lease: Lease,
        replan_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.inner.release_send(now, send, lease, replan_at).await
    }

    async fn expire_leases(
        &self,
        now: DateTime<Utc>,
        resend: bool,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        self.inner.expire_leases(now, resend).await
    }

    async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.next_wakeup().await
    }

    async fn pool_wait(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        now: DateTime<Utc>,
    ) -> Result<Option<PoolWait>, StoreError> {
        self.inner.pool_wait(tenant, sequence, now).await
    }

    async fn mailbox_wait(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        now: DateTime<Utc>,
    ) -> Result<Option<MailboxWait>, StoreError> {
        self.inner.mailbox_wait(tenant, mailbox, now).await
    }

    async fn record_events(
        &self,
        tenant: TenantId,
        at: DateTime<Utc>,
        events: &[DomainEvent],
    ) -> Result<(), StoreError> {
        self.inner.record_events(tenant, at, events).await
    }
}

/// An engine (seeded with `seed`) on a [`Meddling`] store, and in tenant `tenant` one
/// mailbox and an active one-step sequence named `name` on it.
async fn meddled_world(
    seed: u64,
    tenant: u128,
    name: &str,
) -> (Arc<Meddling>, Engine, TenantId, Sequence) {
    let start = Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0).unwrap();
    let clock = VirtualClock::new(start);
    let store = Arc::new(Meddling {
        inner: MemoryStore::new(),
        armed: AtomicBool::new(false),
        leases: std::sync::atomic::AtomicUsize::new(0),
    });
    let engine = Engine::builder(store.clone(), RecordingTransport::new(clock.clone()))
        .clock(clock)
        .config(EngineConfig::with_seed(seed))
        .build();
    let t = TenantId::from_u128(tenant);
    let m = engine
        .create_mailbox(Mailbox::new(t, "s@sender.example", chrono_tz::UTC).unwrap())
        .await
        .unwrap();
    let mut seq = Sequence::new(t, name, start).unwrap();
    seq.add_step(Step::new(Delay::ZERO, "Hi", "Hi")).unwrap();
    seq.set_mailbox_pool(vec![m.id]).unwrap();
    let seq = engine.create_sequence(seq).await.unwrap();
    engine.activate_sequence(t, seq.id).await.unwrap();
    (store, engine, t, seq)
}

#[tokio::test]
async fn a_resume_that_meets_a_conflict_still_wakes_every_enrollment() {
    let (store, engine, t, seq) = meddled_world(5, 40, "Sweep").await;
    let people: Vec<Contact> = (0..1_500)
        .map(|i| Contact::new(t, format!("p{i}@client.example")).unwrap())
        .collect();
    let ids = engine.upsert_contacts(t, &people).await.unwrap();
    let answers = engine.enroll(t, seq.id, &ids).await.unwrap();
    assert!(answers
        .iter()
        .all(|a| matches!(a, EnrollOutcome::Enrolled { .. })));

    // Paused before anything is planned: the tick parks every enrollment.
    engine.pause_sequence(t, seq.id).await.unwrap();
    engine.tick().await.unwrap();
    let parked = |list: &[Enrollment]| {
        list.iter()
            .filter(|e| {
                e.deferral()
                    .is_some_and(|d| d.reason == DeferralReason::SequencePaused)
                    && e.next_due_at().is_none()
            })
            .count()
    };
    let all = store.inner.list_enrollments(t, seq.id).await.unwrap();
    assert_eq!(parked(&all), 1_500, "the pause parks them all");

    // Another writer changes one enrollment while the resume writes its first page.
    store.armed.store(true, Ordering::SeqCst);
    engine.resume_sequence(t, seq.id).await.unwrap();
    assert!(
        !store.armed.load(Ordering::SeqCst),
        "the conflict was injected"
    );
    let all = store.inner.list_enrollments(t, seq.id).await.unwrap();
    assert_eq!(
        parked(&all),
        0,
        "the resume must wake every enrollment, conflict or not"
    );
    // And a second resume is accepted (idempotent).
    engine.resume_sequence(t, seq.id).await.unwrap();
}

/// Most ticks find nothing to plan: they must not take the planning lease (on PostgreSQL,
/// two commits flushed to disk per tick and engine), and one that finds work takes it.
#[tokio::test]
async fn a_tick_with_nothing_due_takes_no_planning_lease() {
    let (store, engine, t, seq) = meddled_world(6, 41, "Quiet").await;
    engine.tick().await.unwrap();
    assert_eq!(store.leases.load(Ordering::SeqCst), 0, "nothing was due");
    let ids = engine
        .upsert_contacts(t, &[Contact::new(t, "p@client.example").unwrap()])
        .await
        .unwrap();
    engine.enroll(t, seq.id, &ids).await.unwrap();
    let report = engine.tick().await.unwrap();
    assert_eq!(report.planned, 1, "{report:?}");
    assert!(
        store.leases.load(Ordering::SeqCst) >= 1,
        "planning takes the lease"
    );
}
