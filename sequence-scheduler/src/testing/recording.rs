//! [`RecordingTransport`]: a [`Transport`] that writes down every attempt and fails the
//! attempts it is told to, like an SMTP server answering 421 (transient) or 550 (permanent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId};
use sequence_core::ports::Clock;
use sequence_core::transport::{Delivery, OutgoingEmail, SendError, Transport};

use super::Fault;

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// Accepted.
    Sent,
    /// Failed with a transient error.
    TransientFailure,
    /// Failed with a permanent error.
    PermanentFailure,
}

/// One call of the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The clock's instant when the transport was called.
    pub at: DateTime<Utc>,
    /// The outbox row.
    pub send: SendId,
    /// The sending mailbox.
    pub mailbox: MailboxId,
    /// The contact.
    pub contact: ContactId,
    /// The sequence.
    pub sequence: SequenceId,
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// The step.
    pub step: u32,
    /// The attempt number the engine gave.
    pub attempt: u32,
    /// The rendered subject.
    pub subject: String,
    /// The Message-ID.
    pub message_id: String,
    /// The previous step's Message-ID, for follow-ups in thread.
    pub in_reply_to: Option<String>,
    /// What happened.
    pub outcome: AttemptOutcome,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    fault: Fault,
    remaining: u32,
}

#[derive(Debug, Default)]
struct Recording {
    attempts: Vec<Attempt>,
    /// (sequence or any, contact, step) -> rule.
    rules: HashMap<(Option<SequenceId>, ContactId, u32), Rule>,
    in_flight: HashMap<MailboxId, u32>,
    overlaps: Vec<(MailboxId, DateTime<Utc>)>,
}

/// Records every attempt; fails the first `count` attempts of a (contact, step) as told.
/// Clones share one recording.
#[derive(Clone)]
pub struct RecordingTransport {
    clock: Arc<dyn Clock>,
    inner: Arc<Mutex<Recording>>,
}

impl std::fmt::Debug for RecordingTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingTransport")
            .field("attempts", &self.attempts().len())
            .finish_non_exhaustive()
    }
}

impl RecordingTransport {
    /// A transport that stamps attempts with `clock`'s instant.
    pub fn new(clock: impl Clock + 'static) -> Self {
        Self {
            clock: Arc::new(clock),
            inner: Arc::new(Mutex::new(Recording::default())),
        }
    }

    fn recording(&self) -> std::sync::MutexGuard<'_, Recording> {
        // A panic elsewhere must not hide what was recorded.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fail the first `count` attempts of `step` to `contact`, in every sequence.
    pub fn fail(&self, contact: ContactId, step: u32, fault: Fault, count: u32) {
        self.recording().rules.insert(
            (None, contact, step),
            Rule {
                fault,
                remaining: count,
            },
        );
    }

    /// Fail the first `count` attempts of `step` to `contact` in `sequence` only.
    pub fn fail_in(
        &self,
        sequence: SequenceId,
        contact: ContactId,
        step: u32,
        fault: Fault,
        count: u32,
    ) {
        self.recording().rules.insert(
            (Some(sequence), contact, step),
            Rule {
                fault,
                remaining: count,
            },
        );
    }

    /// Every attempt so far, in the order the transport was called.
    #[must_use]
    pub fn attempts(&self) -> Vec<Attempt> {
        self.recording().attempts.clone()
    }

    /// Calls that began while another call for the same mailbox was under way (should be
    /// none: the engine never sends two at once from one mailbox).
    #[must_use]
    pub fn overlaps(&self) -> Vec<(MailboxId, DateTime<Utc>)> {
        self.recording().overlaps.clone()
    }

    fn begin(&self, email: &OutgoingEmail, at: DateTime<Utc>) -> Option<Fault> {
        let mut r = self.recording();
        let n = r.in_flight.entry(email.mailbox).or_insert(0);
        *n += 1;
        if *n > 1 {
            r.overlaps.push((email.mailbox, at));
        }
        let keys = [
            (Some(email.sequence), email.contact, email.step),
            (None, email.contact, email.step),
        ];
        let mut fault = None;
        for key in keys {
            if let Some(rule) = r.rules.get_mut(&key) {
                if rule.remaining > 0 {
                    rule.remaining -= 1;
                    fault = Some(rule.fault);
                }
                break;
            }
        }
        fault
    }

    fn end(&self, email: &OutgoingEmail, at: DateTime<Utc>, fault: Option<Fault>) {
        let mut r = self.recording();
        if let Some(n) = r.in_flight.get_mut(&email.mailbox) {
            *n = n.saturating_sub(1);
        }
        r.attempts.push(Attempt {
            at,
            send: email.send,
            mailbox: email.mailbox,
            contact: email.contact,
            sequence: email.sequence,
            enrollment: email.enrollment,
            step: email.step,
            attempt: email.attempt,
            subject: email.subject.clone(),
            message_id: email.message_id.clone(),
            in_reply_to: email.in_reply_to.clone(),
            outcome: match fault {
                None => AttemptOutcome::Sent,
                Some(Fault::Transient) => AttemptOutcome::TransientFailure,
                Some(Fault::Permanent) => AttemptOutcome::PermanentFailure,
            },
        });
    }
}

#[async_trait]
impl Transport for RecordingTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        let at = self.clock.now();
        let fault = self.begin(email, at);
        // Give other sends a chance to run now, so an overlap would be seen.
        tokio::task::yield_now().await;
        self.end(email, at, fault);
        match fault {
            None => Ok(Delivery::with_response("250 2.0.0 ok")),
            Some(fault) => Err(fault.error()),
        }
    }
}
