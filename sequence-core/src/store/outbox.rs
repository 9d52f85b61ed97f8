//! The outbox half of the [`Store`](super::Store): enrollments, plans, claims and
//! completions, the records the engine works through.
//!
//! # Capacity reservations
//!
//! A planned send reserves one unit of its mailbox's capacity on the mailbox-local day of its
//! planned instant ([`ScheduledSend::local_date`]). The reservation is **taken** by
//! [`Outbox::apply_plan`], which refuses any send that would bring the day's count over the
//! limit given in the plan; it **turns into an attempt** when the send is claimed (the count
//! does not change); it is **released** when a planned send is cancelled or pre-empted. An
//! attempt is never released: a failed attempt counts toward the day's limit. If the
//! process dies between a claim and its outcome, the attempt stays counted and the send is
//! found by [`Outbox::expire_leases`].
//!
//! A unit released by a cancellation ([`Outbox::apply_changes`], [`Outbox::complete_send`],
//! [`Outbox::release_send`] without a new instant) on its mailbox's current local day is not
//! left idle: in the same unit of work, up to two active enrollments waiting on a
//! capacity or window deferral that the mailbox can serve (its sequence's pool holds it,
//! and they are not sticky to another active mailbox) are made due at `now`, soonest
//! first. A unit released by a pre-emption goes to the follow-up that took it.
//!
//! # Leases
//!
//! [`Outbox::claim_sends`] gives each claimed send a [`Lease`] (random token, attempt number,
//! expiry). [`Outbox::complete_send`] and [`Outbox::release_send`] check both token and attempt
//! and answer [`StoreError::LeaseLost`] on a mismatch; they never overwrite silently.
//!
//! # Pace
//!
//! A claim never gives a mailbox an attempt closer than its `min_gap_seconds` to the one
//! before it, whatever is overdue: a mailbox's planned send becomes claimable at the later of
//! its planned instant and the mailbox's latest attempt plus its gap. The latest attempt is
//! the instant the transport was called ([`SendCompletion::attempted_at`]), not the claim,
//! so a send that waited between its claim and its call still spaces the next one. A backlog
//! after a late tick or an outage therefore drains at the mailbox's pace, and
//! [`Outbox::next_wakeup`] answers when the next one becomes claimable.
//!
//! # Pool waits
//!
//! When a plan finds every mailbox of a sequence's pool full for its current local day (at
//! its limit, or with no open time left), no new start of that sequence can go before the
//! first of them opens again, and re-planning the backlog before then would only defer it
//! again. The plan then says so once, as a [`PoolWait`] in [`PlanCommit::waits`], instead of
//! one deferral per waiting enrollment. While a wait holds (`now < until`), the sequence's
//! enrollments that go to the pool ([`Enrollment::goes_to_pool`]: active, no sticky mailbox
//! yet) are left out of [`Outbox::due_enrollments`], and [`Outbox::next_wakeup`] counts each
//! of them at the later of its due instant and the wait's `until`.
//!
//! A wait ends early, in the same unit of work, on every event that can give the pool room
//! before `until`:
//!
//! * a reservation released on a mailbox of the sequence's pool (the released unit is
//!   served at once, see above);
//! * a mailbox of the pool saved (limit raised, resumed, windows changed);
//! * the sequence saved (pool, caps or status changed).
//!
//! A plan is made from a snapshot, and a reservation may be released between the snapshot
//! and the commit, ending no wait because none was recorded yet. So a plan gives, with each
//! wait, what it saw of each active pool mailbox's day ([`PlanWait::seen`]), and the store
//! records the wait only if no such day is used less now: else the pool has room the plan
//! did not see (a released reservation, or a send of the plan not stored), and the held
//! enrollments are simply due, for the next plan.
//!
//! # Mailbox waits
//!
//! The same holds for follow-ups, which go to their sticky mailbox: when a plan finds that
//! mailbox full for its current local day (at its limit with nothing a follow-up may
//! pre-empt, or with no open time left), none of its follow-ups can go before it opens
//! again. The plan says so once, as a [`MailboxWait`] in [`PlanCommit::mailbox_waits`],
//! instead of one deferral per follow-up. While a wait holds (`now < until`), the active
//! enrollments of its tenant whose sticky mailbox it is
//! ([`Enrollment::waits_on_mailbox`]) are left out of [`Outbox::due_enrollments`], and
//! [`Outbox::next_wakeup`] counts each at the later of its due instant and `until`, and the
//! mailbox's snapshot ([`Outbox::mailbox_snapshots`]) names `until` as
//! [`MailboxSnapshot::held_until`]: a plan starts no new enrollment on the mailbox before
//! then. (With a planning horizon the engine cuts a full mailbox's plan at an hour and ends
//! its wait there, so the wait may end while the day still has room. Such a wait holds back
//! only the enrollments due when the plan was made, [`MailboxWait::holds_due_by`]: one that
//! comes due later is left in the due read, so that it can take the slot of a new start
//! planned before the wait ends.)
//!
//! A mailbox wait ends early, in the same unit of work, when a reservation on the mailbox is
//! released or the mailbox is saved; and, as with pool waits, the store records it only if
//! the mailbox's day is used at least as much as the plan saw ([`PlanMailboxWait::seen`]).
//!
//! # Reads bounded by the pool's room
//!
//! A backlog may be far larger than the pools that serve it: 35,000 new starts for pools
//! that can take 7,000 sends today. Reading all of them to plan the few that fit costs a
//! tick most of its time. So a planner may first ask which sequences have due enrollments
//! that go to their pool ([`Outbox::due_pools`]), size each pool's room from its mailboxes'
//! snapshots, and read with a [`PoolBound`] per sequence
//! ([`Outbox::due_enrollments_bounded`]): of each bounded sequence, only the earliest
//! `at_most` enrollments that go to the pool are read; the rest stay due, unread. A planner
//! that reads a sequence up to its bound treats the sequence as having more due than it
//! read: if the plan then leaves the pool full, it records the pool's wait, which holds the
//! unread ones too. Follow-ups are read the same way per sticky mailbox
//! ([`Outbox::due_mailboxes`], [`MailboxBound`]), held by a [`MailboxWait`].
//!
//! # Several engines
//!
//! Any number of engines may share one store. Claims hand a send to one claimer only, and
//! completions are fenced by the lease. Planning is serialized: an engine plans only while
//! it holds the store's planning lease ([`Outbox::acquire_planning`], a short lease renewed
//! by its holder), and [`Outbox::apply_plan`] refuses a plan whose lease is no longer held
//! ([`StoreError::PlanningLeaseLost`]), so two engines never plan the same mailbox-day from

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::due::{DueDocuments, DueEnrollment};
use super::plan::{PlanApplied, PlanCommit, PlanningLease};
use super::tally::SequenceTally;
use super::waits::{MailboxBound, MailboxWait, PoolBound, PoolWait};
use super::StoreError;
use crate::contact::Contact;
use crate::enrollment::{Enrollment, EnrollmentStatus};
use crate::event::DomainEvent;
use crate::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use crate::mailbox::Mailbox;
use crate::send::{Lease, ScheduledSend, TrackingMark};
use crate::sequence::Sequence;

/// The answer for one row of a bulk enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
#[non_exhaustive]
pub enum EnrollOutcome {
    /// Stored.
    Enrolled {
        /// The new enrollment.
        enrollment: EnrollmentId,
    },
    /// The contact is already active or paused in the sequence, or the re-enrollment rule
    /// refused a new one.
    AlreadyEnrolled {
        /// The existing enrollment.
        enrollment: EnrollmentId,
    },
    /// The contact is bounced or unsubscribed.
    Suppressed {
        /// Why.
        reason: String,
    },
    /// The row was invalid (unknown contact, wrong tenant, ...).
    Invalid {
        /// Why.
        reason: String,
    },
}

/// A mailbox with what planning needs to know of its current local day.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxSnapshot {
    /// The mailbox.
    pub mailbox: Mailbox,
    /// The mailbox-local date of `now`.
    pub local_date: NaiveDate,
    /// Attempts made plus sends reserved on that date.
    pub used: u32,
    /// The latest instant at which this mailbox made an attempt (or claimed a send still
    /// in flight), for gaps.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Sends planned on this mailbox and not yet claimed, earliest first.
    pub planned: Vec<PlannedSlot>,
    /// When the mailbox's wait ends, while one holds the enrollments sticky to it back
    /// ([`MailboxWait`]): until then no new enrollment is planned on it, so that none starts
    /// while its follow-ups wait.
    pub held_until: Option<DateTime<Utc>>,
}

/// A planned, unclaimed send, as planning sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedSlot {
    /// The send.
    pub send: SendId,
    /// Its enrollment.
    pub enrollment: EnrollmentId,
    /// Its step.
    pub step: u32,
    /// Its instant.
    pub at: DateTime<Utc>,
}

/// The longest range [`Outbox::mailbox_days`] answers: a year and a day.
pub const MAX_MAILBOX_DAYS: i64 = 366;

/// What a mailbox used on one of its local dates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxDay {
    /// The mailbox-local date.
    pub date: NaiveDate,
    /// Attempts made (failed ones included: they count toward the limit).
    pub attempts: u32,
    /// Attempts made plus sends planned and not yet claimed: what counts toward the limit.
    pub used: u32,
}

/// Counts of one day that per-sequence and per-domain caps need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyCounts {
    /// Step-0 sends planned or made per sequence on the UTC date.
    pub new_starts: HashMap<SequenceId, u32>,
    /// Sends planned or made per (tenant, recipient domain) on the UTC date.
    pub per_domain: HashMap<(TenantId, String), u32>,
}

/// Where a page of enrollments starts: after this (enrolled instant, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EnrollmentCursor {
    /// The last enrollment's enrolment instant.
    pub enrolled_at: DateTime<Utc>,
    /// The last enrollment's id.
    pub id: EnrollmentId,
}

impl EnrollmentCursor {
    /// The cursor just after `enrollment`.
    #[must_use]
    pub fn after(enrollment: &Enrollment) -> Self {
        Self {
            enrolled_at: enrollment.enrolled_at,
            id: enrollment.id,
        }
    }
}

/// What the re-check right before a transport call reads: the current state of everything
/// that may stop a claimed send, in one unit of work.
#[derive(Debug, Clone, PartialEq)]
pub struct SendContext {
    /// The send's enrollment, as it is now.
    pub enrollment: Option<Enrollment>,
    /// Its contact, as it is now.
    pub contact: Option<Contact>,
    /// The send's mailbox, as it is now.
    pub mailbox: Option<Mailbox>,
    /// The send's sequence, as it is now.
    pub sequence: Option<Sequence>,
    /// Attempts counted on the send's mailbox and mailbox-local day, this claim included
    /// (reservations not yet claimed are not counted).
    pub attempts_on_day: u32,
}

/// A claimed send with what dispatching it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedSend {
    /// The send, now `sending`.
    pub send: ScheduledSend,
    /// The lease every later write must present.
    pub lease: Lease,
    /// The enrollment.
    pub enrollment: Enrollment,
    /// The contact.
    pub contact: Contact,
}

/// The outcome of a claimed send, applied atomically by [`Outbox::complete_send`].
#[derive(Debug, Clone, PartialEq)]
pub struct SendCompletion {
    /// The send, updated by the caller (`sent`, `retry_wait` or `failed`).
    pub send: ScheduledSend,
    /// The lease it was claimed under.
    pub lease: Lease,
    /// The enrollment, updated by the caller.
    pub enrollment: Enrollment,
    /// The enrollment's version when it was read (optimistic lock).
    pub enrollment_version: u64,
    /// The instant the transport was called: the mailbox's latest attempt, for its gap.
    pub attempted_at: DateTime<Utc>,
    /// Other changes of the same unit of work (a bounced contact and its other
    /// enrollments), see [`ChangeSet`].
    pub changes: ChangeSet,
}

/// A set of writes applied atomically: every version matches or nothing is written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeSet {
    /// Contacts to write (replace by id), each with the version it was read at.
    pub contacts: Vec<(Contact, u64)>,
    /// Enrollments to write, each with the version it was read at.
    pub enrollments: Vec<(Enrollment, u64)>,
    /// Sends to cancel: planned ones (their reservation is released) and ones waiting for a
    /// retry (which hold none). Sends in flight or final are left as they are.
    pub cancel_sends: Vec<SendId>,
    /// Sequences to write, each with the version it was read at.
    pub sequences: Vec<(Sequence, u64)>,
    /// Mailboxes to write, each with the version it was read at.
    pub mailboxes: Vec<(Mailbox, u64)>,
    /// Opens and clicks to record on sends (first of each kind wins; unknown sends are
    /// ignored).
    pub tracking: Vec<TrackingMark>,
}

impl ChangeSet {
    /// Whether there is nothing to write.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
            && self.enrollments.is_empty()
            && self.cancel_sends.is_empty()
            && self.sequences.is_empty()
            && self.mailboxes.is_empty()
            && self.tracking.is_empty()
    }
}

/// Where enrollments and their sends live: the half of a [`Store`](super::Store) that
/// plans, claims and completions go through.
///
/// Every method is one atomic unit of work and is scoped to a tenant where it takes one.
/// Implementations must be safe to share across tasks and processes.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Store new enrollments of `tenant`, one answer per row in order. A row is refused when
    /// its contact is unknown in the tenant (`Invalid`); when
    /// [`suppression`](crate::enrollment::suppression) refuses the contact for the sequence
    /// (`Suppressed`, with the exit reason's name: bounced, unsubscribed, or replied in a
    /// sequence that exits on reply); when the contact already has an active or paused
    /// enrollment in the sequence (the uniqueness lives here, not in the caller); or when an
    /// ended enrollment exists and the sequence's re-enrollment rule refuses another at `now`.
    /// The valid rows are stored even when others are refused.
    async fn enroll(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        enrollments: Vec<Enrollment>,
    ) -> Result<Vec<EnrollOutcome>, StoreError>;

    /// An enrollment of `tenant`, if any.
    async fn get_enrollment(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
    ) -> Result<Option<Enrollment>, StoreError>;

    /// Every enrollment of a sequence of `tenant`.
    async fn list_enrollments(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<Enrollment>, StoreError>;

    /// At most `limit` enrollments of a sequence of `tenant` that are not final, ordered by
    /// (enrolled instant, id), after `after`: a bounded page for work over a whole sequence.
    async fn open_enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError>;

    /// At most `limit` enrollments of a sequence of `tenant`, final ones included (only
    /// those in `status` when it is given), ordered by (enrolled instant, id), after
    /// `after`: a bounded page for listing a whole sequence, so that no caller holds more
    /// than a page of it. Another tenant's sequence, or one not stored, gives an empty
    /// page.
    async fn enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        status: Option<EnrollmentStatus>,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError>;

    /// The sends of these enrollments of `tenant` that may still go out: `planned` or
    /// `retry_wait` (what an enrollment that stops must call off), in one read.
    async fn open_sends_of(
        &self,
        tenant: TenantId,
        enrollments: &[EnrollmentId],
    ) -> Result<Vec<ScheduledSend>, StoreError>;

    /// The enrollments of a contact of `tenant` that are not final.
    async fn open_enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError>;

    /// Every enrollment of a contact of `tenant`, final ones included, oldest first.
    async fn enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError>;

    /// What a mailbox of `tenant` used on each of its local dates from `from` to `to`
    /// (inclusive, at most [`MAX_MAILBOX_DAYS`] dates), one row per date in order, zeros
    /// for a date with nothing. `NotFound` when the mailbox is not the tenant's; `Invalid`
    /// when the range is empty or too long.
    async fn mailbox_days(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<MailboxDay>, StoreError>;

    /// The sends of an enrollment of `tenant`, by step.
    async fn sends_of_enrollment(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
    ) -> Result<Vec<ScheduledSend>, StoreError>;

    /// Every send of a sequence of `tenant` (for statistics).
    async fn sends_of_sequence(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<ScheduledSend>, StoreError>;

    /// A sequence of `tenant` counted: its enrollments by status and exit reason, its sends
    /// by step, A/B variant and status (see [`SequenceTally`]); empty for another tenant's
    /// sequence. What statistics read, however large the sequence.
    ///
    /// The default counts the rows of [`Outbox::list_enrollments`] and
    /// [`Outbox::sends_of_sequence`]; a backend overrides it to count where its rows live.
    async fn sequence_tally(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<SequenceTally, StoreError> {
        let enrollments = self.list_enrollments(tenant, sequence).await?;
        let sends = self.sends_of_sequence(tenant, sequence).await?;
        Ok(SequenceTally::of(&enrollments, &sends))
    }

    /// Apply a [`ChangeSet`] atomically: all versions match, or nothing is written and the
    /// first mismatch is returned as `VersionConflict`.
    async fn apply_changes(&self, now: DateTime<Utc>, changes: ChangeSet)
        -> Result<(), StoreError>;

    /// At most `limit` enrollments whose `next_due_at <= now`, earliest first, each with
    /// what planning reads of it and of its contact as stored now ([`DueEnrollment`]; the
    /// documents too where the store holds them at hand): active ones, and paused ones whose
    /// `paused_until` has come. An enrollment that goes to the pool of a sequence whose
    /// [`PoolWait`] holds at `now` is left out, and so is one that waits on a mailbox whose
    /// [`MailboxWait`] holds.
    async fn due_enrollments(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueEnrollment>, StoreError>;

    /// The documents of due enrollments, each with its contact as stored now, by tenant and
    /// id: for the rows of a due read that came without them ([`DueEnrollment::documents`]).
    /// An enrollment or contact no longer stored is left out; the answer is in no particular
    /// order.
    async fn due_documents(
        &self,
        due: &[(TenantId, EnrollmentId)],
    ) -> Result<Vec<DueDocuments>, StoreError>;

    /// The sequences (with their tenants) that have an enrollment due at `now` that goes to
    /// their pool ([`Enrollment::goes_to_pool`]) and is not held by the sequence's
    /// [`PoolWait`], in no particular order: the sequences a [`PoolBound`] can bound.
    ///
    /// The default answers none, and a planner then reads unbounded.
    async fn due_pools(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, SequenceId)>, StoreError> {
        let _ = now;
        Ok(Vec::new())
    }

    /// The mailboxes (with their tenants) that have an enrollment of their tenant due at
    /// `now` sticky to them ([`Enrollment::waits_on_mailbox`]) and not held by the mailbox's
    /// [`MailboxWait`], in no particular order: the mailboxes a [`MailboxBound`] can bound.
    ///
    /// The default answers none, and a planner then reads their follow-ups unbounded.
    async fn due_mailboxes(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, MailboxId)>, StoreError> {
        let _ = now;
        Ok(Vec::new())
    }

    /// [`Outbox::due_enrollments`] with each bounded sequence and mailbox read up to its
    /// bound: the earliest `limit` of the enrollments due at `now`, after leaving out, for
    /// each `pools` entry, all but the earliest `at_most` of its sequence's due enrollments
    /// that go to the pool, and for each `mailboxes` entry, all but the earliest `at_most` of
    /// the due enrollments of its tenant sticky to the mailbox. Other enrollments (paused
    /// ones, those of sequences and mailboxes not named, or named with another tenant) are
    /// not bounded. A sequence or mailbox named twice is read up to the smaller bound.
    ///
    /// The default reads every due enrollment and then leaves the bounded ones out; a
    /// backend overrides it to read no more than it returns.
    async fn due_enrollments_bounded(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        pools: &[PoolBound],
        mailboxes: &[MailboxBound],
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        if pools.is_empty() && mailboxes.is_empty() {
            return self.due_enrollments(now, limit).await;
        }
        let mut pool_left: HashMap<(TenantId, SequenceId), usize> = HashMap::new();
        for b in pools {
            pool_left
                .entry((b.tenant, b.sequence))
                .and_modify(|n| *n = (*n).min(b.at_most))
                .or_insert(b.at_most);
        }
        let mut mailbox_left: HashMap<(TenantId, MailboxId), usize> = HashMap::new();
        for b in mailboxes {
            mailbox_left
                .entry((b.tenant, b.mailbox))
                .and_modify(|n| *n = (*n).min(b.at_most))
                .or_insert(b.at_most);
        }
        let mut due = self.due_enrollments(now, usize::MAX).await?;
        due.retain(|d| {
            let left = if d.goes_to_pool() {
                pool_left.get_mut(&(d.tenant, d.sequence))
            } else if let Some(m) = d.waits_on_mailbox() {
                mailbox_left.get_mut(&(d.tenant, m))
            } else {
                None
            };
            match left {
                None => true,
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
            }
        });
        due.truncate(limit);
        Ok(due)
    }

    /// Snapshots of the mailboxes for the mailbox-local day of `now` (mailboxes not found are
    /// left out).
    async fn mailbox_snapshots(
        &self,
        now: DateTime<Utc>,
        ids: &[MailboxId],
    ) -> Result<Vec<MailboxSnapshot>, StoreError>;

    /// Counts for per-sequence and per-domain caps: sends planned or made whose planned
    /// instant falls on the UTC date of `now`, for the `sequences` and (tenant, recipient
    /// domain) pairs asked for only (a key with no send is left out), so that the cost
    /// follows what a plan needs rather than the day's volume.
    async fn daily_counts(
        &self,
        now: DateTime<Utc>,
        sequences: &[SequenceId],
        domains: &[(TenantId, String)],
    ) -> Result<DailyCounts, StoreError>;

    /// Take or renew the planning lease at `now` for `token`, until `now + lease_for`:
    /// `Some` when it was free, had run out, or is already `token`'s; `None` while another
    /// holder's lease runs.
    async fn acquire_planning(
        &self,
        now: DateTime<Utc>,
        token: uuid::Uuid,
        lease_for: Duration,
    ) -> Result<Option<PlanningLease>, StoreError>;

    /// Give the planning lease back (nothing happens when `lease` no longer holds it).
    async fn release_planning(&self, lease: PlanningLease) -> Result<(), StoreError>;

    /// Apply a plan atomically (see the module docs on reservations). With
    /// [`PlanCommit::planning`], the lease must still be held at `now` (same token, not run
    /// out), else [`StoreError::PlanningLeaseLost`] and nothing is written. Pre-emptions first,
    /// then each send: skipped as stale when its enrollment's version differs or is not
    /// active, or when a send of that (enrollment, step) exists and is neither `retry_wait`
    /// nor `cancelled` (those are planned again in place, keeping their attempts, with
    /// [`ScheduledSend::replan`]), or when the mailbox is not the tenant's; refused as over
    /// capacity when the mailbox-day
    /// count is at `limit`; else stored, counted, and its enrollment marked planned
    /// ([`Enrollment::mark_planned`]: nothing due; its mailbox becomes sticky only with an
    /// attempt). A send refused because its mailbox is missing or not the tenant's parks its
    /// enrollment (deferred `NoActiveMailboxInPool`, no instant) rather than leaving it due
    /// at the same instant. Then each deferral whose version matches. Then the waits of
    /// sequences of their tenant that have not ended by `now` and whose pool days are used
    /// at least as much as the plan saw; waits that ended by `now` may be dropped.
    async fn apply_plan(
        &self,
        now: DateTime<Utc>,
        plan: PlanCommit,
    ) -> Result<PlanApplied, StoreError>;

    /// Claim at most `limit` planned sends whose instant has come, earliest first, under
    /// leases that run out at `now + lease_for`. No send is returned to two claimers. A send
    /// whose mailbox already has a send in `sending` (from any claimer) is not claimed, and
    /// one call returns at most one send per mailbox, so a mailbox never sends two at once.
    /// A mailbox's send is claimable only once its latest attempt is at least its
    /// `min_gap_seconds` before `now` (see the module docs on pace). Claiming counts an
    /// attempt on the send's mailbox-day ([`SendContext::attempts_on_day`]) and increments
    /// the send's attempt count (the lease carries the new number).
    async fn claim_sends(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedSend>, StoreError>;

    /// The current state of what may stop a send of `tenant` (see [`SendContext`]); `None`
    /// when there is no such send.
    async fn send_context(
        &self,
        tenant: TenantId,
        send: SendId,
    ) -> Result<Option<SendContext>, StoreError>;

    /// [`Outbox::send_context`] of each of `sends` (tenant and send), one answer per send,
    /// in order: the re-check read of a whole wave of claimed sends, right before the wave
    /// goes out. Each answer is what [`Outbox::send_context`] would answer for its send.
    ///
    /// The default reads them one by one; a backend overrides it to read a wave in a few
    /// statements, each sequence and mailbox once however many sends share it.
    async fn send_contexts(
        &self,
        sends: &[(TenantId, SendId)],
    ) -> Result<Vec<Option<SendContext>>, StoreError> {
        let mut out = Vec::with_capacity(sends.len());
        for &(tenant, send) in sends {
            out.push(self.send_context(tenant, send).await?);
        }
        Ok(out)
    }

    /// Record the outcome of a claimed send atomically with its enrollment and the other
    /// changes; the mailbox's latest attempt becomes [`SendCompletion::attempted_at`] (if
    /// later). `LeaseLost` when the lease does not hold; `VersionConflict` when a version
    /// does not match (then nothing is written).
    async fn complete_send(
        &self,
        now: DateTime<Utc>,
        completion: SendCompletion,
    ) -> Result<(), StoreError>;

    /// Record the outcomes of several claimed sends: each exactly as
    /// [`Outbox::complete_send`] records it (atomically with its enrollment and its other
    /// changes), with one answer per completion, in order. A completion that
    /// [`Outbox::complete_send`] would refuse (`LeaseLost`, `VersionConflict`, `NotFound`,
    /// `Invalid`) gets that error as its answer, writes nothing of its own, and does not
    /// stop the others. `now` stands for each completion's `now`. `Err` only when the
    /// backend fails; then any of the completions may or may not have been recorded (each
    /// one whole or not at all), and the leases of those not recorded still hold.
    ///
    /// The default records them one by one with [`Outbox::complete_send`]; a backend
    /// overrides it to record a batch in one round of statements.
    async fn complete_sends(
        &self,
        now: DateTime<Utc>,
        completions: Vec<SendCompletion>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut answers = Vec::with_capacity(completions.len());
        for completion in completions {
            answers.push(match self.complete_send(now, completion).await {
                Err(StoreError::Backend(e)) => return Err(StoreError::Backend(e)),
                answer => answer,
            });
        }
        Ok(answers)
    }

    /// Give a claimed send back without an attempt: planned again at `replan_at`, or
    /// cancelled (its reservation released and its enrollment due again at `now`) when
    /// `replan_at` is `None`. The claim's attempt is taken back: it leaves the mailbox-day's
    /// attempts and the mailbox's latest attempt as they were before it. `LeaseLost` when
    /// the lease does not hold.
    async fn release_send(
        &self,
        now: DateTime<Utc>,
        send: SendId,
        lease: Lease,
        replan_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    /// Sends in `sending` whose lease ran out at `now`, re-checked inside the update: marked
    /// `uncertain` ([`ScheduledSend::mark_uncertain`]) with, in the same unit, the
    /// enrollment recording it ([`Enrollment::send_uncertain`]: due at `now`, so the next
    /// planner moves it past the step even when the caller stops before it does); or, with
    /// `resend`, abandoned
    /// ([`ScheduledSend::abandon_expired`]: `cancelled`, the attempt still counted) with the
    /// enrollment due again at `now` (the attempt's mailbox sticky,
    /// [`Enrollment::attempted_on`]), so the planner plans the step again inside capacity.
    /// A lease past its `until` holds until this runs. Returns the sends changed.
    async fn expire_leases(
        &self,
        now: DateTime<Utc>,
        resend: bool,
    ) -> Result<Vec<ScheduledSend>, StoreError>;

    /// The earliest instant at which something is due: an enrollment's `next_due_at` (a
    /// paused one's `paused_until`), the instant a planned send becomes claimable (its
    /// planned instant, or its mailbox's latest attempt plus its gap, whichever is later),
    /// or the expiry of a lease in flight (`None` when nothing is waiting). An enrollment
    /// that a [`PoolWait`] or a [`MailboxWait`] leaves out counts at the later of its due
    /// instant and the wait's `until`.
    async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The pool wait of a sequence of `tenant` that holds at `now`, if any.
    async fn pool_wait(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        now: DateTime<Utc>,
    ) -> Result<Option<PoolWait>, StoreError>;

    /// The mailbox wait of a mailbox of `tenant` that holds at `now`, if any.
    async fn mailbox_wait(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        now: DateTime<Utc>,
    ) -> Result<Option<MailboxWait>, StoreError>;

    /// Record domain events (the outbox of events, for hosts that read them back).
    async fn record_events(
        &self,
        tenant: TenantId,
        at: DateTime<Utc>,
        events: &[DomainEvent],
    ) -> Result<(), StoreError> {
        let _ = (tenant, at, events);
        Ok(())
    }
}
