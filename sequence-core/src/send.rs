//! Sends: the outbox. One row per (enrollment, step), its idempotency key.
//!
//! `planned -> sending -> sent | retry_wait | failed`, `planned | retry_wait -> cancelled`,
//! `retry_wait -> planned` (a retry), and `sending -> uncertain` when a lease expired
//! without an outcome (the transport may or may not have delivered it).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::TransitionError;
use crate::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};

/// Where a send is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SendStatus {
    /// Planned for an instant; capacity is reserved on the mailbox's local day.
    #[default]
    Planned,
    /// Claimed under a lease; the transport is (about to be) called.
    Sending,
    /// Accepted by the transport.
    Sent,
    /// Failed transiently; will be planned again after a backoff.
    RetryWait,
    /// Failed for good.
    Failed,
    /// Called off before the transport was called; its reservation was released.
    Cancelled,
    /// Its lease expired while sending: it may have gone out. Not resent by default.
    Uncertain,
}

impl SendStatus {
    /// Sent, failed, cancelled or uncertain.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Sent | Self::Failed | Self::Cancelled | Self::Uncertain
        )
    }
}

/// Proof of a claim: every write after a claim must present the same token and attempt,
/// or it is refused as a lost lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// Random token of this claim.
    pub token: Uuid,
    /// The attempt number this claim makes (1 for the first).
    pub attempt: u32,
    /// When the lease runs out.
    pub until: DateTime<Utc>,
}

/// One step of one enrollment, planned, in flight or done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduledSend {
    /// Identity.
    pub id: SendId,
    /// Owner.
    pub tenant: TenantId,
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// The sequence (denormalized).
    pub sequence: SequenceId,
    /// The contact (denormalized).
    pub contact: ContactId,
    /// The step's order.
    pub step: u32,
    /// The mailbox it goes from.
    mailbox: MailboxId,
    /// The instant it is planned for.
    planned_at: DateTime<Utc>,
    /// The mailbox-local day whose capacity it reserves.
    local_date: NaiveDate,
    /// Where it is.
    status: SendStatus,
    /// Attempts made so far.
    attempts: u32,
    /// The last error, if any.
    last_error: Option<String>,
    /// The deterministic Message-ID (without angle brackets).
    pub message_id: String,
    /// The A/B variant chosen (0 for the step's own content).
    pub variant: u32,
    /// The current lease, while sending.
    lease: Option<Lease>,
    /// When the transport accepted it.
    sent_at: Option<DateTime<Utc>>,
    /// When the contact first opened it.
    #[serde(default)]
    opened_at: Option<DateTime<Utc>>,
    /// When the contact first clicked a link in it.
    #[serde(default)]
    clicked_at: Option<DateTime<Utc>>,
}

/// Something the contact did with a sent email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrackingKind {
    /// Opened it.
    Open,
    /// Clicked a link in it.
    Click,
}

/// A tracking mark to record on a send (first one wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingMark {
    /// The send.
    pub send: SendId,
    /// Open or click.
    pub kind: TrackingKind,
    /// When.
    pub at: DateTime<Utc>,
}

impl ScheduledSend {
    /// A new planned send of `step` of `enrollment` (attempts 0, no lease).
    #[expect(
        clippy::too_many_arguments,
        reason = "a send is planned from all of its parts at once, each required"
    )]
    #[must_use]
    pub fn planned(
        tenant: TenantId,
        enrollment: EnrollmentId,
        sequence: SequenceId,
        contact: ContactId,
        step: u32,
        mailbox: MailboxId,
        planned_at: DateTime<Utc>,
        local_date: NaiveDate,
        message_id: String,
        variant: u32,
    ) -> Self {
        Self {
            id: SendId::of_step(enrollment, step),
            tenant,
            enrollment,
            sequence,
            contact,
            step,
            mailbox,
            planned_at,
            local_date,
            status: SendStatus::Planned,
            attempts: 0,
            last_error: None,
            message_id,
            variant,
            lease: None,
            sent_at: None,
            opened_at: None,
            clicked_at: None,
        }
    }

    /// The mailbox it goes from.
    #[must_use]
    pub fn mailbox(&self) -> MailboxId {
        self.mailbox
    }

    /// The instant it is planned for.
    #[must_use]
    pub fn planned_at(&self) -> DateTime<Utc> {
        self.planned_at
    }

    /// The mailbox-local day whose capacity it reserves.
    #[must_use]
    pub fn local_date(&self) -> NaiveDate {
        self.local_date
    }

    /// Where it is.
    #[must_use]
    pub fn status(&self) -> SendStatus {
        self.status
    }

    /// Attempts made so far.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last error, if any.
    #[must_use]
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The current lease, while sending.
    #[must_use]
    pub fn lease(&self) -> Option<Lease> {
        self.lease
    }

    /// When the transport accepted it.
    #[must_use]
    pub fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.sent_at
    }

    /// When the contact first opened it.
    #[must_use]
    pub fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.opened_at
    }

    /// When the contact first clicked a link in it.
    #[must_use]
    pub fn clicked_at(&self) -> Option<DateTime<Utc>> {
        self.clicked_at
    }

    /// Record a tracking mark; the first of each kind is kept. Returns whether it changed.
    pub fn mark(&mut self, kind: TrackingKind, at: DateTime<Utc>) -> bool {
        let slot = match kind {
            TrackingKind::Open => &mut self.opened_at,
            TrackingKind::Click => &mut self.clicked_at,
        };
        if slot.is_none() {
            *slot = Some(at);
            true
        } else {
            false
        }
    }
}

/// The deterministic Message-ID of a step of an enrollment, on the mailbox's domain.
#[must_use]
pub fn message_id(enrollment: EnrollmentId, step: u32, mailbox_address: &str) -> String {
    let domain = mailbox_address
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d);
    format!("{}.{step}@{domain}", enrollment.0.simple())
}

impl ScheduledSend {
    /// Start a planned attempt under `lease`.
    ///
    /// # Errors
    /// When not planned, or when the lease's attempt is not the next attempt.
    pub fn claim(&mut self, lease: Lease) -> Result<(), TransitionError> {
        if self.status != SendStatus::Planned {
            return Err(TransitionError::status("claim", self.status));
        }
        if lease.attempt != self.attempts + 1 {
            return Err(TransitionError::invariant(
                "attempts",
                format!(
                    "claim for attempt {} but {} attempts made",
                    lease.attempt, self.attempts
                ),
            ));
        }
        self.status = SendStatus::Sending;
        self.attempts = lease.attempt;
        self.lease = Some(lease);
        Ok(())
    }

    /// Check that `lease` is the one this send is held under.
    ///
    /// # Errors
    /// [`TransitionError::InvalidStatus`] when not sending, [`TransitionError::Invariant`]
    /// when another lease holds it.
    pub fn check_lease(&self, lease: &Lease) -> Result<(), TransitionError> {
        if self.status != SendStatus::Sending {
            return Err(TransitionError::status("complete", self.status));
        }
        match &self.lease {
            Some(held) if held.token == lease.token && held.attempt == lease.attempt => Ok(()),
            _ => Err(TransitionError::invariant(
                "lease",
                "lease lost: another claim holds this send",
            )),
        }
    }

    /// Record the transport's acceptance.
    ///
    /// # Errors
    /// When the lease does not hold.
    pub fn mark_sent(&mut self, lease: &Lease, at: DateTime<Utc>) -> Result<(), TransitionError> {
        self.check_lease(lease)?;
        self.status = SendStatus::Sent;
        self.sent_at = Some(at);
        self.lease = None;
        Ok(())
    }

    /// Record a failure: `retry` keeps the row for another attempt, else it is final.
    ///
    /// # Errors
    /// When the lease does not hold.
    pub fn mark_failed(
        &mut self,
        lease: &Lease,
        error: String,
        retry: bool,
    ) -> Result<(), TransitionError> {
        self.check_lease(lease)?;
        self.status = if retry {
            SendStatus::RetryWait
        } else {
            SendStatus::Failed
        };
        self.last_error = Some(crate::validate::one_line(error));
        self.lease = None;
        Ok(())
    }

    /// Plan the step again on this row: another attempt after a transient failure
    /// (`retry_wait`), or a send that was called off before it went out (`cancelled`: a
    /// pre-emption, a pause, a re-check). The attempts made so far are kept, so that one
    /// (enrollment, step) stays one row and its retry budget holds.
    ///
    /// # Errors
    /// When neither waiting for a retry nor cancelled.
    pub fn replan(
        &mut self,
        mailbox: MailboxId,
        at: DateTime<Utc>,
        local_date: NaiveDate,
    ) -> Result<(), TransitionError> {
        if !matches!(self.status, SendStatus::RetryWait | SendStatus::Cancelled) {
            return Err(TransitionError::status("plan again", self.status));
        }
        self.status = SendStatus::Planned;
        self.lease = None;
        self.mailbox = mailbox;
        self.planned_at = at;
        self.local_date = local_date;
        Ok(())
    }

    /// Call off a planned send (or one waiting for a retry).
    ///
    /// # Errors
    /// When sending or final.
    pub fn cancel(&mut self, reason: impl Into<String>) -> Result<(), TransitionError> {
        if !matches!(self.status, SendStatus::Planned | SendStatus::RetryWait) {
            return Err(TransitionError::status("cancel", self.status));
        }
        self.status = SendStatus::Cancelled;
        self.last_error = Some(crate::validate::one_line(reason.into()));
        Ok(())
    }

    /// Give a claimed send back without calling the transport (a re-check failed or the
    /// engine is shutting down): it is planned again at `at`, and the attempt is not counted.
    /// Its reservation stays on [`ScheduledSend::local_date`], so `at` must fall on that
    /// mailbox-local day.
    ///
    /// # Errors
    /// When the lease does not hold.
    pub fn release(&mut self, lease: &Lease, at: DateTime<Utc>) -> Result<(), TransitionError> {
        self.check_lease(lease)?;
        self.status = SendStatus::Planned;
        self.attempts = self.attempts.saturating_sub(1);
        self.planned_at = at;
        self.lease = None;
        Ok(())
    }

    /// The lease expired without an outcome, and the host chose at-least-once delivery: the
    /// attempt stays counted (it may have gone out) and the row is `cancelled`, so that the
    /// step is planned again through the planner, inside capacity and windows.
    ///
    /// # Errors
    /// When not sending or when the lease has not expired at `now`.
    pub fn abandon_expired(&mut self, now: DateTime<Utc>) -> Result<(), TransitionError> {
        match (&self.status, &self.lease) {
            (SendStatus::Sending, Some(lease)) if lease.until <= now => {
                self.status = SendStatus::Cancelled;
                self.last_error =
                    Some("lease expired while sending: planned again (at-least-once)".to_owned());
                self.lease = None;
                Ok(())
            }
            (SendStatus::Sending, _) => {
                Err(TransitionError::invariant("lease", "lease has not expired"))
            }
            _ => Err(TransitionError::status("abandon", self.status)),
        }
    }

    /// The lease expired without an outcome: the send may have gone out.
    ///
    /// # Errors
    /// When not sending or when the lease has not expired at `now`.
    pub fn mark_uncertain(&mut self, now: DateTime<Utc>) -> Result<(), TransitionError> {
        match (&self.status, &self.lease) {
            (SendStatus::Sending, Some(lease)) if lease.until <= now => {
                self.status = SendStatus::Uncertain;
                self.last_error = Some("lease expired while sending: delivery unknown".to_owned());
                self.lease = None;
                Ok(())
            }
            (SendStatus::Sending, _) => {
                Err(TransitionError::invariant("lease", "lease has not expired"))
            }
            _ => Err(TransitionError::status("mark uncertain", self.status)),
        }
    }
}
