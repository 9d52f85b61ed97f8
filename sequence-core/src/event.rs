//! Domain events: what happened, for the host's event sink.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contact::BounceKind;
use crate::enrollment::ExitReason;
use crate::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId};

/// Something that happened to a sequence, an enrollment, a mailbox or a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
#[non_exhaustive]
pub enum DomainEvent {
    /// A sequence was created (as a draft).
    SequenceCreated {
        /// The sequence.
        sequence: SequenceId,
    },
    /// A sequence started sending.
    SequenceActivated {
        /// The sequence.
        sequence: SequenceId,
    },
    /// A sequence was paused.
    SequencePaused {
        /// The sequence.
        sequence: SequenceId,
    },
    /// A sequence was resumed.
    SequenceResumed {
        /// The sequence.
        sequence: SequenceId,
    },
    /// A sequence was archived.
    SequenceArchived {
        /// The sequence.
        sequence: SequenceId,
    },
    /// A step was added to a draft sequence.
    StepAdded {
        /// The sequence.
        sequence: SequenceId,
        /// The new step's order.
        order: u32,
    },
    /// A contact was enrolled in a sequence.
    ContactEnrolled {
        /// The enrollment.
        enrollment: EnrollmentId,
        /// The sequence.
        sequence: SequenceId,
        /// The contact.
        contact: ContactId,
    },
    /// An enrollment moved to a new current step.
    EnrollmentAdvanced {
        /// The enrollment.
        enrollment: EnrollmentId,
        /// The new current step.
        step: u32,
    },
    /// An enrollment finished every step.
    EnrollmentCompleted {
        /// The enrollment.
        enrollment: EnrollmentId,
    },
    /// An enrollment ended early.
    EnrollmentExited {
        /// The enrollment.
        enrollment: EnrollmentId,
        /// Why.
        reason: ExitReason,
    },
    /// An enrollment was paused.
    EnrollmentPaused {
        /// The enrollment.
        enrollment: EnrollmentId,
        /// When it resumes by itself, if known.
        until: Option<DateTime<Utc>>,
    },
    /// An enrollment was resumed.
    EnrollmentResumed {
        /// The enrollment.
        enrollment: EnrollmentId,
    },
    /// A mailbox was paused.
    MailboxPaused {
        /// The mailbox.
        mailbox: MailboxId,
    },
    /// A mailbox was suspended.
    MailboxSuspended {
        /// The mailbox.
        mailbox: MailboxId,
        /// Why.
        reason: String,
    },
    /// A mailbox was resumed.
    MailboxResumed {
        /// The mailbox.
        mailbox: MailboxId,
    },
    /// The transport accepted a send.
    Sent {
        /// The send.
        send: SendId,
        /// The enrollment.
        enrollment: EnrollmentId,
        /// The step.
        step: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// A send attempt failed.
    SendFailed {
        /// The send.
        send: SendId,
        /// The enrollment.
        enrollment: EnrollmentId,
        /// The step.
        step: u32,
        /// Whether it will be retried.
        will_retry: bool,
        /// The error.
        error: String,
    },
    /// A send's lease ran out while sending: it may have been delivered.
    SendUncertain {
        /// The send.
        send: SendId,
        /// The enrollment.
        enrollment: EnrollmentId,
    },
    /// A contact opened a send.
    Opened {
        /// The enrollment.
        enrollment: EnrollmentId,
        /// The step.
        step: u32,
    },
    /// A contact clicked a link of a send.
    Clicked {
        /// The enrollment.
        enrollment: EnrollmentId,
        /// The step.
        step: u32,
    },
    /// A contact replied.
    Replied {
        /// The contact.
        contact: ContactId,
    },
    /// A contact's address bounced.
    Bounced {
        /// The contact.
        contact: ContactId,
        /// Hard (permanent) or soft.
        kind: BounceKind,
    },
    /// A contact unsubscribed.
    Unsubscribed {
        /// The contact.
        contact: ContactId,
    },
}
