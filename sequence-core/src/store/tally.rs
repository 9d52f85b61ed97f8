//! Counts over a sequence's enrollments and sends, which a store aggregates where its rows
//! live (PostgreSQL: `GROUP BY`), so that statistics never load every row.

use serde::{Deserialize, Serialize};

use crate::enrollment::{Enrollment, EnrollmentStatus, ExitReason};
use crate::send::{ScheduledSend, SendStatus};

/// The enrollments of a sequence that share a status and an exit reason, counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EnrollmentTally {
    /// Their status.
    pub status: EnrollmentStatus,
    /// Why they ended early, when they did.
    pub exit_reason: Option<ExitReason>,
    /// How many.
    pub count: u64,
    /// Of those, how many sent at least one step.
    pub started: u64,
    /// Of those, how many got a reply.
    pub replied: u64,
    /// Of those, how many have an end instant.
    pub ended: u64,
    /// Over those with an end instant: the sum of whole seconds from enrollment to end.
    pub seconds_to_end: i64,
}

impl EnrollmentTally {
    /// A group of no enrollments yet, of this status (and no exit reason).
    #[must_use]
    pub fn new(status: EnrollmentStatus) -> Self {
        Self {
            status,
            exit_reason: None,
            count: 0,
            started: 0,
            replied: 0,
            ended: 0,
            seconds_to_end: 0,
        }
    }
}

/// The sends of a sequence that share a step, an A/B variant and a status, counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SendTally {
    /// Their step.
    pub step: u32,
    /// Their A/B variant.
    pub variant: u32,
    /// Their status.
    pub status: SendStatus,
    /// How many.
    pub count: u64,
    /// Of those, how many were opened.
    pub opened: u64,
    /// Of those, how many were clicked.
    pub clicked: u64,
}

impl SendTally {
    /// A group of no sends yet.
    #[must_use]
    pub fn new(step: u32, variant: u32, status: SendStatus) -> Self {
        Self {
            step,
            variant,
            status,
            count: 0,
            opened: 0,
            clicked: 0,
        }
    }
}

/// What [`crate::store::Outbox::sequence_tally`] answers: a sequence's enrollments and sends,
/// counted by group. Each group appears once; the order is (status, exit reason) for
/// enrollments and (step, variant, status) for sends, statuses in the order their enums
/// declare them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SequenceTally {
    /// Enrollments by (status, exit reason).
    pub enrollments: Vec<EnrollmentTally>,
    /// Sends by (step, variant, status).
    pub sends: Vec<SendTally>,
}

impl SequenceTally {
    /// Count rows a store holds: what a store that keeps its rows in memory answers.
    #[must_use]
    pub fn of<'a>(
        enrollments: impl IntoIterator<Item = &'a Enrollment>,
        sends: impl IntoIterator<Item = &'a ScheduledSend>,
    ) -> Self {
        let mut by_status: Vec<EnrollmentTally> = Vec::new();
        for e in enrollments {
            let key = (e.status(), e.exit_reason());
            let pos = match by_status
                .iter()
                .position(|t| (t.status, t.exit_reason) == key)
            {
                Some(pos) => pos,
                None => {
                    by_status.push(EnrollmentTally {
                        exit_reason: key.1,
                        ..EnrollmentTally::new(key.0)
                    });
                    by_status.len() - 1
                }
            };
            let t = &mut by_status[pos];
            t.count += 1;
            t.started += u64::from(e.steps_sent() > 0);
            t.replied += u64::from(e.replied_at().is_some());
            if let Some(end) = e.ended_at() {
                t.ended += 1;
                t.seconds_to_end += (end - e.enrolled_at).num_seconds();
            }
        }
        let mut by_step: Vec<SendTally> = Vec::new();
        for s in sends {
            let key = (s.step, s.variant, s.status());
            let pos = match by_step
                .iter()
                .position(|t| (t.step, t.variant, t.status) == key)
            {
                Some(pos) => pos,
                None => {
                    by_step.push(SendTally::new(key.0, key.1, key.2));
                    by_step.len() - 1
                }
            };
            let t = &mut by_step[pos];
            t.count += 1;
            t.opened += u64::from(s.opened_at().is_some());
            t.clicked += u64::from(s.clicked_at().is_some());
        }
        Self::sorted(by_status, by_step)
    }

    /// The tallies in their documented order.
    #[must_use]
    pub fn sorted(mut enrollments: Vec<EnrollmentTally>, mut sends: Vec<SendTally>) -> Self {
        enrollments.sort_by_key(|t| (t.status as u8, t.exit_reason.map(ExitReason::as_str)));
        sends.sort_by_key(|t| (t.step, t.variant, t.status as u8));
        Self { enrollments, sends }
    }
}
