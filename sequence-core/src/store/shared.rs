//! `Arc<S>` is a [`Catalog`] and an [`Outbox`] (so a [`Store`](super::Store)) when `S` is:
//! one store shared by several engines and the host, as `Arc<T>` is a
//! [`Transport`](crate::transport::Transport).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::*;
use crate::contact::Contact;
use crate::enrollment::{Enrollment, EnrollmentStatus};
use crate::event::DomainEvent;
use crate::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use crate::mailbox::Mailbox;
use crate::send::{Lease, ScheduledSend};
use crate::sequence::Sequence;

#[async_trait]
impl<S: Catalog + ?Sized> Catalog for Arc<S> {
    async fn save_sequence(
        &self,
        sequence: &Sequence,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        (**self).save_sequence(sequence, expected_version).await
    }

    async fn get_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Option<Sequence>, StoreError> {
        (**self).get_sequence(tenant, id).await
    }

    async fn list_sequences(&self, tenant: TenantId) -> Result<Vec<Sequence>, StoreError> {
        (**self).list_sequences(tenant).await
    }

    async fn delete_draft_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<DraftDeletion, StoreError> {
        (**self).delete_draft_sequence(tenant, id).await
    }

    async fn get_sequences(&self, ids: &[SequenceId]) -> Result<Vec<Sequence>, StoreError> {
        (**self).get_sequences(ids).await
    }

    async fn save_mailbox(
        &self,
        mailbox: &Mailbox,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        (**self).save_mailbox(mailbox, expected_version).await
    }

    async fn get_mailbox(
        &self,
        tenant: TenantId,
        id: MailboxId,
    ) -> Result<Option<Mailbox>, StoreError> {
        (**self).get_mailbox(tenant, id).await
    }

    async fn list_mailboxes(&self, tenant: TenantId) -> Result<Vec<Mailbox>, StoreError> {
        (**self).list_mailboxes(tenant).await
    }

    async fn upsert_contacts(
        &self,
        tenant: TenantId,
        contacts: &[Contact],
    ) -> Result<Vec<ContactId>, StoreError> {
        (**self).upsert_contacts(tenant, contacts).await
    }

    async fn get_contact(
        &self,
        tenant: TenantId,
        id: ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        (**self).get_contact(tenant, id).await
    }

    async fn find_contacts_by_email(
        &self,
        tenant: TenantId,
        emails: &[String],
    ) -> Result<Vec<Contact>, StoreError> {
        (**self).find_contacts_by_email(tenant, emails).await
    }

    async fn find_contact_by_email(
        &self,
        tenant: TenantId,
        email: &str,
    ) -> Result<Option<Contact>, StoreError> {
        (**self).find_contact_by_email(tenant, email).await
    }

    async fn get_contacts(
        &self,
        tenant: TenantId,
        ids: &[ContactId],
    ) -> Result<Vec<Contact>, StoreError> {
        (**self).get_contacts(tenant, ids).await
    }
}

#[async_trait]
impl<S: Outbox + ?Sized> Outbox for Arc<S> {
    async fn enroll(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        enrollments: Vec<Enrollment>,
    ) -> Result<Vec<EnrollOutcome>, StoreError> {
        (**self).enroll(tenant, now, enrollments).await
    }

    async fn get_enrollment(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
    ) -> Result<Option<Enrollment>, StoreError> {
        (**self).get_enrollment(tenant, id).await
    }

    async fn list_enrollments(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        (**self).list_enrollments(tenant, sequence).await
    }

    async fn open_enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        (**self)
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
        (**self)
            .enrollments_page(tenant, sequence, status, after, limit)
            .await
    }

    async fn open_sends_of(
        &self,
        tenant: TenantId,
        enrollments: &[EnrollmentId],
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        (**self).open_sends_of(tenant, enrollments).await
    }

    async fn open_enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        (**self).open_enrollments_of_contact(tenant, contact).await
    }

    async fn enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        (**self).enrollments_of_contact(tenant, contact).await
    }

    async fn mailbox_days(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<MailboxDay>, StoreError> {
        (**self).mailbox_days(tenant, mailbox, from, to).await
    }

    async fn sends_of_enrollment(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        (**self).sends_of_enrollment(tenant, enrollment).await
    }

    async fn sends_of_sequence(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        (**self).sends_of_sequence(tenant, sequence).await
    }

    async fn sequence_tally(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<SequenceTally, StoreError> {
        (**self).sequence_tally(tenant, sequence).await
    }

    async fn apply_changes(
        &self,
        now: DateTime<Utc>,
        changes: ChangeSet,
    ) -> Result<(), StoreError> {
        (**self).apply_changes(now, changes).await
    }

    async fn due_enrollments(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        (**self).due_enrollments(now, limit).await
    }

    async fn due_documents(
        &self,
        due: &[(TenantId, EnrollmentId)],
    ) -> Result<Vec<DueDocuments>, StoreError> {
        (**self).due_documents(due).await
    }

    async fn due_pools(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, SequenceId)>, StoreError> {
        (**self).due_pools(now).await
    }

    async fn due_mailboxes(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, MailboxId)>, StoreError> {
        (**self).due_mailboxes(now).await
    }

    async fn due_enrollments_bounded(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        pools: &[PoolBound],
        mailboxes: &[MailboxBound],
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        (**self)
            .due_enrollments_bounded(now, limit, pools, mailboxes)
            .await
    }

    async fn mailbox_snapshots(
        &self,
        now: DateTime<Utc>,
        ids: &[MailboxId],
    ) -> Result<Vec<MailboxSnapshot>, StoreError> {
        (**self).mailbox_snapshots(now, ids).await
    }

    async fn daily_counts(
        &self,
        now: DateTime<Utc>,
        sequences: &[SequenceId],
        domains: &[(TenantId, String)],
    ) -> Result<DailyCounts, StoreError> {
        (**self).daily_counts(now, sequences, domains).await
    }

    async fn acquire_planning(
        &self,
        now: DateTime<Utc>,
        token: uuid::Uuid,
        lease_for: Duration,
    ) -> Result<Option<PlanningLease>, StoreError> {
        (**self).acquire_planning(now, token, lease_for).await
    }

    async fn release_planning(&self, lease: PlanningLease) -> Result<(), StoreError> {
        (**self).release_planning(lease).await
    }

    async fn apply_plan(
        &self,
        now: DateTime<Utc>,
        plan: PlanCommit,
    ) -> Result<PlanApplied, StoreError> {
        (**self).apply_plan(now, plan).await
    }

    async fn claim_sends(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedSend>, StoreError> {
        (**self).claim_sends(now, lease_for, limit).await
    }

    async fn send_context(
        &self,
        tenant: TenantId,
        send: SendId,
    ) -> Result<Option<SendContext>, StoreError> {
        (**self).send_context(tenant, send).await
    }

    async fn send_contexts(
        &self,
        sends: &[(TenantId, SendId)],
    ) -> Result<Vec<Option<SendContext>>, StoreError> {
        (**self).send_contexts(sends).await
    }

    async fn complete_send(
        &self,
        now: DateTime<Utc>,
        completion: SendCompletion,
    ) -> Result<(), StoreError> {
        (**self).complete_send(now, completion).await
    }

    async fn complete_sends(
        &self,
        now: DateTime<Utc>,
        completions: Vec<SendCompletion>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        (**self).complete_sends(now, completions).await
    }

    async fn release_send(
        &self,
        now: DateTime<Utc>,
        send: SendId,
        lease: Lease,
        replan_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        (**self).release_send(now, send, lease, replan_at).await
    }

    async fn expire_leases(
        &self,
        now: DateTime<Utc>,
        resend: bool,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        (**self).expire_leases(now, resend).await
    }

    async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        (**self).next_wakeup().await
    }

    async fn pool_wait(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        now: DateTime<Utc>,
    ) -> Result<Option<PoolWait>, StoreError> {
        (**self).pool_wait(tenant, sequence, now).await
    }

    async fn mailbox_wait(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        now: DateTime<Utc>,
    ) -> Result<Option<MailboxWait>, StoreError> {
        (**self).mailbox_wait(tenant, mailbox, now).await
    }

    async fn record_events(
        &self,
        tenant: TenantId,
        at: DateTime<Utc>,
        events: &[DomainEvent],
    ) -> Result<(), StoreError> {
        (**self).record_events(tenant, at, events).await
    }
}
