//! A plan as the engine hands it to [`Outbox::apply_plan`](super::Outbox::apply_plan): the
//! sends to plan with the versions they were planned from, the deferrals, the waits, under
//! the planning lease; and what the store did with it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::waits::{PlanMailboxWait, PlanWait};
use crate::enrollment::Deferral;
use crate::ids::{EnrollmentId, MailboxId, SendId};

/// A send to plan: one step of one enrollment on one mailbox at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSend {
    /// The enrollment, as read (its version is checked).
    pub enrollment: EnrollmentId,
    /// The enrollment's version when it was read.
    pub enrollment_version: u64,
    /// The step.
    pub step: u32,
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The instant.
    pub at: DateTime<Utc>,
    /// The mailbox-local date of `at`.
    pub local_date: NaiveDate,
    /// The daily limit of that mailbox on that date: the store refuses to reserve past it.
    pub limit: u32,
    /// The deterministic Message-ID.
    pub message_id: String,
    /// The A/B variant.
    pub variant: u32,
    /// The recipient domain, for per-domain counts.
    pub recipient_domain: String,
}

/// A deferral to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDeferral {
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// Its version when it was read.
    pub enrollment_version: u64,
    /// Why and until when.
    pub deferral: Deferral,
}

/// The store's planning lease: while an engine holds it, no other engine plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanningLease {
    /// The holder's token (an engine keeps one for its life).
    pub token: uuid::Uuid,
    /// When it runs out unless renewed.
    pub until: DateTime<Utc>,
}

/// One plan, applied atomically by [`Outbox::apply_plan`](super::Outbox::apply_plan).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCommit {
    /// The planning lease the plan was made under; `None` only where one engine owns the
    /// store (tests, tools).
    pub planning: Option<PlanningLease>,
    /// Planned sends whose slot was given to another send: cancelled, their reservation
    /// released, their enrollment due again at `now`.
    pub preempt: Vec<SendId>,
    /// New sends.
    pub sends: Vec<PlanSend>,
    /// Deferrals.
    pub deferrals: Vec<PlanDeferral>,
    /// Sequences whose pool is full until a later instant: each replaces the sequence's
    /// earlier wait (see the module docs on pool waits).
    pub waits: Vec<PlanWait>,
    /// Mailboxes full until a later instant, for their follow-ups: each replaces the
    /// mailbox's earlier wait (see the module docs on mailbox waits).
    #[serde(default)]
    pub mailbox_waits: Vec<PlanMailboxWait>,
}

/// What [`Outbox::apply_plan`](super::Outbox::apply_plan) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanApplied {
    /// Sends stored.
    pub planned: Vec<SendId>,
    /// Sends refused because the mailbox-day was full; their enrollments are due at `now`
    /// again.
    pub over_capacity: Vec<EnrollmentId>,
    /// Items skipped because the enrollment changed since it was read, or a send for that
    /// (enrollment, step) already exists and is not waiting for a retry.
    pub stale: Vec<EnrollmentId>,
}
