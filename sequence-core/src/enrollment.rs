//! Enrollments: one contact going through one sequence.
//!
//! `active -> paused -> active`, `active -> completed`, `active | paused -> exited(reason)`.
//! `current_step` only grows; `next_due_at` is `None` once completed or exited, and while a
//! send of the current step is planned or in flight.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contact::{Contact, ContactStatus};
use crate::error::TransitionError;
use crate::event::DomainEvent;
use crate::ids::{ContactId, EnrollmentId, MailboxId, SequenceId, TenantId};
use crate::sequence::Sequence;

/// Why `contact` may not be enrolled in `sequence`, if it may not: a bounced or
/// unsubscribed contact is never enrolled, and a contact who replied is not enrolled in a
/// sequence that exits on reply (it would exit at once). Stores call this inside
/// [`Outbox::enroll`](crate::store::Outbox::enroll), so the rule is kept in one place.
#[must_use]
pub fn suppression(contact: &Contact, sequence: &Sequence) -> Option<ExitReason> {
    match contact.status() {
        ContactStatus::Bounced => Some(ExitReason::Bounced),
        ContactStatus::Unsubscribed => Some(ExitReason::Unsubscribed),
        ContactStatus::Active if contact.replied_at().is_some() && sequence.exit_on_reply => {
            Some(ExitReason::Replied)
        }
        ContactStatus::Active => None,
    }
}

/// Where an enrollment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EnrollmentStatus {
    /// Going through its steps.
    #[default]
    Active,
    /// Held (by the host, or until an out-of-office ends).
    Paused,
    /// Every step done.
    Completed,
    /// Ended early, with a reason.
    Exited,
}

impl EnrollmentStatus {
    /// Completed or exited.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Exited)
    }
}

/// Why an enrollment ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExitReason {
    /// The contact replied (sequence has `exit_on_reply`).
    Replied,
    /// The contact unsubscribed.
    Unsubscribed,
    /// The contact's address bounced, or a send failed permanently.
    Bounced,
    /// A step's condition failed with `exit`.
    ConditionNotMet,
    /// Transient failures used up the retry budget.
    Failed,
    /// The host ended it.
    Manual,
    /// The sequence was archived.
    SequenceArchived,
}

impl ExitReason {
    /// The reason's name, as serialized: `replied`, `unsubscribed`, `bounced`,
    /// `condition_not_met`, `failed`, `manual`, `sequence_archived`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replied => "replied",
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
            Self::ConditionNotMet => "condition_not_met",
            Self::Failed => "failed",
            Self::Manual => "manual",
            Self::SequenceArchived => "sequence_archived",
        }
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the planner did not send an enrollment's step yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeferralReason {
    /// The step's delay has not passed.
    WaitingForDelay,
    /// Every usable mailbox has used its limit for the local day.
    NoCapacity,
    /// The mailbox's windows are closed.
    OutsideMailboxWindow,
    /// The contact's business hours are closed.
    OutsideRecipientWindow,
    /// The sticky mailbox is paused or suspended and no other mailbox can take over.
    MailboxPaused,
    /// No mailbox of the pool is active.
    NoActiveMailboxInPool,
    /// The sequence started its quota of new enrollments for the day.
    NewEnrollmentCapReached,
    /// The contact's domain got its quota of attempts for the day.
    RecipientDomainCapReached,
    /// The sequence is paused.
    SequencePaused,
    /// Waiting for a retry after a transient failure.
    RetryBackoff,
}

/// The planner's last answer for an enrollment that is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Deferral {
    /// Why it waits.
    pub reason: DeferralReason,
    /// The earliest instant at which planning again could change the answer; `None` parks
    /// the enrollment until an event (a resume) wakes it.
    pub not_before: Option<DateTime<Utc>>,
}

/// A send of an enrollment's current step whose outcome is unknown: its lease ran out
/// while the transport was called, so the step may have gone out. Under at-most-once
/// delivery the step is never sent again; the enrollment is moved past it as if it had
/// been sent at [`UncertainSend::at`] ([`Enrollment::step_sent`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UncertainSend {
    /// The step the send was for.
    pub step: u32,
    /// The Message-ID it was sent with, kept for threading the next steps.
    pub message_id: String,
    /// When its lease was found expired.
    pub at: DateTime<Utc>,
}

/// Whether an enrollment with `status` and sticky `mailbox` sends next from whichever
/// mailbox of its sequence's pool has room ([`Enrollment::goes_to_pool`]).
pub(crate) fn goes_to_pool(status: EnrollmentStatus, mailbox: Option<MailboxId>) -> bool {
    status == EnrollmentStatus::Active && mailbox.is_none()
}

/// The mailbox an enrollment with `status` and sticky `mailbox` waits on
/// ([`Enrollment::waits_on_mailbox`]).
pub(crate) fn waits_on_mailbox(
    status: EnrollmentStatus,
    mailbox: Option<MailboxId>,
) -> Option<MailboxId> {
    mailbox.filter(|_| status == EnrollmentStatus::Active)
}

/// One contact in one sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Enrollment {
    /// Identity.
    pub id: EnrollmentId,
    /// Owner.
    pub tenant: TenantId,
    /// The sequence.
    pub sequence: SequenceId,
    /// The contact.
    pub contact: ContactId,
    /// Where it is.
    status: EnrollmentStatus,
    /// Why it ended early, when exited.
    exit_reason: Option<ExitReason>,
    /// The next step to send (equal to the step count once completed).
    current_step: u32,
    /// The earliest instant the current step may go (its delay and any backoff passed).
    due_at: Option<DateTime<Utc>>,
    /// When the engine should look at this enrollment next; `None` when it is final or a
    /// send of the current step is planned or in flight.
    next_due_at: Option<DateTime<Utc>>,
    /// The planner's last deferral, while waiting.
    deferral: Option<Deferral>,
    /// The mailbox it sends from: sticky once an attempt was made from it (a planned send
    /// taken back before any attempt pins nothing).
    mailbox: Option<MailboxId>,
    /// Message-IDs of the steps sent so far, for threading.
    thread_message_ids: Vec<String>,
    /// Steps sent successfully.
    steps_sent: u32,
    /// When it was enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// When the previous step was sent or skipped.
    last_step_at: Option<DateTime<Utc>>,
    /// When it completed or exited.
    ended_at: Option<DateTime<Utc>>,
    /// While paused: when it resumes by itself (an out-of-office end), if known.
    paused_until: Option<DateTime<Utc>>,
    /// When the contact last replied in this enrollment, if ever.
    #[serde(default)]
    replied_at: Option<DateTime<Utc>>,
    /// Soft bounces reported for this enrollment; they count toward the retry budget.
    #[serde(default)]
    soft_bounces: u32,
    /// A send of the current step whose outcome is unknown (its lease ran out while the
    /// transport was called), waiting to be counted as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uncertain_send: Option<UncertainSend>,
    /// Optimistic-lock version, bumped on every change.
    version: u64,
}

impl Enrollment {
    /// A new active enrollment whose first step is due at `first_due`. Its id is derived
    /// from the tenant, sequence, contact and `now`, and ordered by `now`
    /// ([`EnrollmentId::derived_at`]).
    #[must_use]
    pub fn new(
        tenant: TenantId,
        sequence: SequenceId,
        contact: ContactId,
        now: DateTime<Utc>,
        first_due: DateTime<Utc>,
    ) -> Self {
        Self {
            // Derived, not random: the same enrollment made twice has one id (so a retried
            // bulk enrollment is idempotent), and simulations are reproducible from a seed.
            // Ordered by `now`, so that a bulk enrollment appends to the stores' indexes.
            id: EnrollmentId::derived_at(
                now,
                &format!(
                    "{}/{}/{}/{}",
                    tenant.0,
                    sequence.0,
                    contact.0,
                    now.timestamp_micros()
                ),
            ),
            tenant,
            sequence,
            contact,
            status: EnrollmentStatus::Active,
            exit_reason: None,
            current_step: 0,
            due_at: Some(first_due),
            next_due_at: Some(first_due),
            deferral: None,
            mailbox: None,
            thread_message_ids: Vec::new(),
            steps_sent: 0,
            enrolled_at: now,
            last_step_at: None,
            ended_at: None,
            paused_until: None,
            replied_at: None,
            soft_bounces: 0,
            uncertain_send: None,
            version: 0,
        }
    }

    /// Look at a waiting enrollment again at `now` (a resumed sequence or mailbox, freed
    /// capacity). Only an active enrollment that is not planned is changed; returns whether it
    /// was.
    pub fn wake(&mut self, now: DateTime<Utc>) -> bool {
        if self.status != EnrollmentStatus::Active || self.deferral.is_none() {
            return false;
        }
        self.deferral = None;
        self.next_due_at = Some(self.due_at.map_or(now, |d| d.max(now)));
        self.bump();
        true
    }

    /// Record a reply at `at` (idempotent for the same or an earlier instant).
    pub fn record_reply(&mut self, at: DateTime<Utc>) {
        if self.replied_at.is_none_or(|prev| prev < at) {
            self.replied_at = Some(at);
            self.bump();
        }
    }

    /// Count a soft bounce; returns the count so far.
    pub fn record_soft_bounce(&mut self) -> u32 {
        self.soft_bounces += 1;
        self.bump();
        self.soft_bounces
    }

    /// Set the id (builder style, before the enrollment is stored).
    #[must_use]
    pub fn with_id(mut self, id: EnrollmentId) -> Self {
        self.id = id;
        self
    }

    /// A new enrollment carried over from another tool with `steps_sent` steps already
    /// sent, from `mailbox` when known (it stays the contact's sender): its next step is
    /// step `steps_sent` (builder style, before it is stored).
    #[must_use]
    pub fn with_progress(mut self, steps_sent: u32, mailbox: Option<MailboxId>) -> Self {
        self.current_step = steps_sent;
        self.steps_sent = steps_sent;
        self.mailbox = mailbox;
        self
    }

    /// The event that records this enrollment's creation.
    #[must_use]
    pub fn enrolled_event(&self) -> DomainEvent {
        DomainEvent::ContactEnrolled {
            enrollment: self.id,
            sequence: self.sequence,
            contact: self.contact,
        }
    }

    /// Where it is.
    #[must_use]
    pub fn status(&self) -> EnrollmentStatus {
        self.status
    }

    /// Why it ended early, when exited.
    #[must_use]
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.exit_reason
    }

    /// The next step to send (equal to the step count once completed).
    #[must_use]
    pub fn current_step(&self) -> u32 {
        self.current_step
    }

    /// The earliest instant the current step may go (its delay and any backoff passed).
    #[must_use]
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        self.due_at
    }

    /// When the engine should look at this enrollment next; `None` when it is final or a
    /// send of the current step is planned or in flight.
    #[must_use]
    pub fn next_due_at(&self) -> Option<DateTime<Utc>> {
        self.next_due_at
    }

    /// The planner's last deferral, while waiting.
    #[must_use]
    pub fn deferral(&self) -> Option<Deferral> {
        self.deferral
    }

    /// The mailbox it sends from: sticky once an attempt was made from it
    /// ([`Self::attempted_on`]); `None` before the first attempt.
    #[must_use]
    pub fn mailbox(&self) -> Option<MailboxId> {
        self.mailbox
    }

    /// Whether its next send goes to whichever mailbox of its sequence's pool has room: it
    /// is active and no attempt has made a mailbox sticky yet. What a
    /// [`PoolWait`](crate::store::PoolWait) holds back.
    #[must_use]
    pub fn goes_to_pool(&self) -> bool {
        goes_to_pool(self.status, self.mailbox)
    }

    /// The mailbox its next send goes to when it is active and an attempt made a mailbox
    /// sticky: what a [`MailboxWait`](crate::store::MailboxWait) of that mailbox holds back.
    #[must_use]
    pub fn waits_on_mailbox(&self) -> Option<MailboxId> {
        waits_on_mailbox(self.status, self.mailbox)
    }

    /// Message-IDs of the steps sent so far, for threading.
    #[must_use]
    pub fn thread_message_ids(&self) -> &[String] {
        &self.thread_message_ids
    }

    /// Steps sent successfully.
    #[must_use]
    pub fn steps_sent(&self) -> u32 {
        self.steps_sent
    }

    /// When the previous step was sent or skipped.
    #[must_use]
    pub fn last_step_at(&self) -> Option<DateTime<Utc>> {
        self.last_step_at
    }

    /// When it completed or exited.
    #[must_use]
    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.ended_at
    }

    /// While paused: when it resumes by itself (an out-of-office end), if known.
    #[must_use]
    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        self.paused_until
    }

    /// When the contact last replied in this enrollment, if ever.
    #[must_use]
    pub fn replied_at(&self) -> Option<DateTime<Utc>> {
        self.replied_at
    }

    /// Soft bounces reported for this enrollment; they count toward the retry budget.
    #[must_use]
    pub fn soft_bounces(&self) -> u32 {
        self.soft_bounces
    }

    /// A send of the current step whose outcome is unknown, waiting to be counted as sent.
    #[must_use]
    pub fn uncertain_send(&self) -> Option<&UncertainSend> {
        self.uncertain_send.as_ref()
    }

    /// Optimistic-lock version, bumped on every change.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// For stores: the version the record is stored at (optimistic locking). Nothing in
    /// the domain decides on it, so setting it breaks no invariant.
    pub fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    /// Completed or exited.
    #[must_use]
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }

    fn ensure_active(&self, action: &'static str) -> Result<(), TransitionError> {
        if self.status == EnrollmentStatus::Active {
            Ok(())
        } else {
            Err(TransitionError::status(action, self.status))
        }
    }

    fn bump(&mut self) {
        self.version += 1;
    }

    /// The planner deferred the current step: look again at `not_before` (never before the
    /// step is due).
    ///
    /// # Errors
    /// When not active.
    pub fn defer(&mut self, deferral: Deferral) -> Result<(), TransitionError> {
        self.ensure_active("defer")?;
        self.deferral = Some(deferral);
        // Without a `not_before` the enrollment is parked until an event wakes it (a resume).
        self.next_due_at = deferral
            .not_before
            .map(|nb| self.due_at.map_or(nb, |due| due.max(nb)));
        self.bump();
        Ok(())
    }

    /// A send of the current step was planned: nothing is due until it is sent or taken
    /// back. Its mailbox becomes sticky only with an attempt ([`Self::attempted_on`]): a new
    /// start whose planned send a follow-up took over is free to go from any mailbox of the
    /// pool.
    ///
    /// # Errors
    /// When not active.
    pub fn mark_planned(&mut self) -> Result<(), TransitionError> {
        self.ensure_active("plan")?;
        self.deferral = None;
        self.next_due_at = None;
        self.bump();
        Ok(())
    }

    /// An attempt of the current step was made from `mailbox` (sent, failed, or of unknown
    /// outcome): the enrollment sends from it from now on (rule 5, sticky sender), until that
    /// mailbox is paused.
    pub fn attempted_on(&mut self, mailbox: MailboxId) {
        if self.mailbox != Some(mailbox) {
            self.mailbox = Some(mailbox);
            self.bump();
        }
    }

    /// A planned send was cancelled or released before the transport was called: the step
    /// is looked at again from `at`.
    ///
    /// # Errors
    /// When final.
    pub fn release_planned(&mut self, at: DateTime<Utc>) -> Result<(), TransitionError> {
        if self.is_final() {
            return Err(TransitionError::status("release", self.status));
        }
        if self.status == EnrollmentStatus::Active {
            self.next_due_at = Some(self.due_at.map_or(at, |d| d.max(at)));
        }
        self.bump();
        Ok(())
    }

    /// A send of `step` from `mailbox` became uncertain at `at` (its lease ran out during
    /// the transport call); the mailbox is sticky, as after any attempt. Recorded in the
    /// same unit of work that marks the send, with the enrollment due at `at` (when
    /// active), so that whoever plans next moves it past the step
    /// ([`Self::step_sent`]) even when the engine that expired the lease stopped first.
    ///
    /// # Errors
    /// When final or when `step` is not the current step.
    pub fn send_uncertain(
        &mut self,
        step: u32,
        message_id: String,
        mailbox: MailboxId,
        at: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if self.is_final() {
            return Err(TransitionError::status(
                "record uncertain send",
                self.status,
            ));
        }
        if step != self.current_step {
            return Err(TransitionError::invariant(
                "current_step",
                format!(
                    "step {step} uncertain but the current step is {}",
                    self.current_step
                ),
            ));
        }
        self.uncertain_send = Some(UncertainSend {
            step,
            message_id,
            at,
        });
        self.mailbox = Some(mailbox);
        if self.status == EnrollmentStatus::Active {
            self.deferral = None;
            self.next_due_at = Some(at);
        }
        self.bump();
        Ok(())
    }

    /// The current step was sent at `at` with `message_id`; the next step is due at
    /// `next_due` (`None` when it was the last step, which completes the enrollment).
    ///
    /// # Errors
    /// When not active or when `step` is not the current step.
    pub fn step_sent(
        &mut self,
        step: u32,
        at: DateTime<Utc>,
        message_id: String,
        next_due: Option<DateTime<Utc>>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        // A send in flight when the enrollment was paused still counts as sent.
        if self.is_final() {
            return Err(TransitionError::status("record sent step", self.status));
        }
        if step != self.current_step {
            return Err(TransitionError::invariant(
                "current_step",
                format!(
                    "step {step} sent but the current step is {}",
                    self.current_step
                ),
            ));
        }
        self.thread_message_ids.push(message_id);
        self.steps_sent += 1;
        self.advance_to(step + 1, at, next_due)
    }

    /// The current step's condition failed with `skip` at `at`; the next step is due at
    /// `next_due` (`None` completes).
    ///
    /// # Errors
    /// When not active or when `step` is not the current step.
    pub fn skip_step(
        &mut self,
        step: u32,
        at: DateTime<Utc>,
        next_due: Option<DateTime<Utc>>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.ensure_active("skip step")?;
        if step != self.current_step {
            return Err(TransitionError::invariant(
                "current_step",
                format!(
                    "step {step} skipped but the current step is {}",
                    self.current_step
                ),
            ));
        }
        self.advance_to(step + 1, at, next_due)
    }

    fn advance_to(
        &mut self,
        next_step: u32,
        at: DateTime<Utc>,
        next_due: Option<DateTime<Utc>>,
    ) -> Result<Vec<DomainEvent>, TransitionError> {
        self.current_step = next_step;
        self.last_step_at = Some(at);
        self.uncertain_send = None;
        self.deferral = None;
        self.bump();
        let mut events = vec![DomainEvent::EnrollmentAdvanced {
            enrollment: self.id,
            step: next_step,
        }];
        match next_due {
            Some(due) => {
                self.due_at = Some(due);
                if self.status == EnrollmentStatus::Active {
                    self.next_due_at = Some(due);
                }
            }
            None => {
                self.status = EnrollmentStatus::Completed;
                self.due_at = None;
                self.next_due_at = None;
                self.paused_until = None;
                self.ended_at = Some(at);
                events.push(DomainEvent::EnrollmentCompleted {
                    enrollment: self.id,
                });
            }
        }
        Ok(events)
    }

    /// A transient failure: try the current step again no earlier than `retry_at`.
    ///
    /// # Errors
    /// When final.
    pub fn retry_at(&mut self, retry_at: DateTime<Utc>) -> Result<(), TransitionError> {
        if self.is_final() {
            return Err(TransitionError::status("retry", self.status));
        }
        self.due_at = Some(retry_at);
        self.deferral = Some(Deferral {
            reason: DeferralReason::RetryBackoff,
            not_before: Some(retry_at),
        });
        if self.status == EnrollmentStatus::Active {
            self.next_due_at = Some(retry_at);
        }
        self.bump();
        Ok(())
    }

    /// `active -> paused`, optionally until an instant (an out-of-office's end).
    ///
    /// # Errors
    /// When not active.
    pub fn pause(&mut self, until: Option<DateTime<Utc>>) -> Result<DomainEvent, TransitionError> {
        self.ensure_active("pause")?;
        self.status = EnrollmentStatus::Paused;
        self.paused_until = until;
        self.next_due_at = until;
        self.bump();
        Ok(DomainEvent::EnrollmentPaused {
            enrollment: self.id,
            until,
        })
    }

    /// `paused -> active` at `now`; the current step is due at the later of its due time and
    /// `now`.
    ///
    /// # Errors
    /// When not paused.
    pub fn resume(&mut self, now: DateTime<Utc>) -> Result<DomainEvent, TransitionError> {
        if self.status != EnrollmentStatus::Paused {
            return Err(TransitionError::status("resume", self.status));
        }
        self.status = EnrollmentStatus::Active;
        self.paused_until = None;
        self.deferral = None;
        self.next_due_at = Some(self.due_at.map_or(now, |d| d.max(now)));
        self.bump();
        Ok(DomainEvent::EnrollmentResumed {
            enrollment: self.id,
        })
    }

    /// `active | paused -> exited(reason)` at `now`.
    ///
    /// # Errors
    /// When already completed or exited.
    pub fn exit(
        &mut self,
        reason: ExitReason,
        now: DateTime<Utc>,
    ) -> Result<DomainEvent, TransitionError> {
        if self.is_final() {
            return Err(TransitionError::status("exit", self.status));
        }
        self.status = EnrollmentStatus::Exited;
        self.exit_reason = Some(reason);
        self.due_at = None;
        self.next_due_at = None;
        self.deferral = None;
        self.paused_until = None;
        self.ended_at = Some(now);
        self.bump();
        Ok(DomainEvent::EnrollmentExited {
            enrollment: self.id,
            reason,
        })
    }
}
