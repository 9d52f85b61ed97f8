//! What a plan records instead of deferring a backlog one enrollment at a time, and the
//! bounds a planner reads a backlog with: pool and mailbox waits, the days a plan saw, pool
//! and mailbox bounds. The rules they follow are those of the [`Outbox`](super::Outbox)
//! ("Pool waits", "Mailbox waits", "Reads bounded by the pool's room" in the store docs).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{MailboxId, SequenceId, TenantId};

/// "No mailbox of this sequence's pool can take a new start before `until`": what a plan
/// says once for the backlog it cannot serve, instead of deferring each enrollment of it
/// (see the module docs on pool waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PoolWait {
    /// The sequence's tenant.
    pub tenant: TenantId,
    /// The sequence.
    pub sequence: SequenceId,
    /// When the first mailbox of its pool can take a send again.
    pub until: DateTime<Utc>,
}

/// What a plan saw of one pool mailbox's current local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PoolDaySeen {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its local date.
    pub local_date: NaiveDate,
    /// Attempts plus reservations on that date, the plan's own sends included.
    pub used: u32,
}

/// A pool wait as a plan asks for it (see the module docs on pool waits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanWait {
    /// The wait.
    pub wait: PoolWait,
    /// What the plan saw of the day of each active mailbox of the pool: the wait is recorded
    /// only if none of these days is used less now.
    pub seen: Vec<PoolDaySeen>,
}

/// A mailbox full for its current local day: its follow-ups wait for it to open again (see
/// the module docs on mailbox waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MailboxWait {
    /// The mailbox's tenant.
    pub tenant: TenantId,
    /// The mailbox.
    pub mailbox: MailboxId,
    /// When the mailbox can take a send again.
    pub until: DateTime<Utc>,
    /// When set, the wait holds back only the enrollments due at or before this instant:
    /// those the plan saw (a planning horizon cut their sends). One that comes due later is
    /// due as usual, so that it can take the slot of a new start planned before `until`.
    /// `None`: it holds back all of them.
    #[serde(default)]
    pub holds_due_by: Option<DateTime<Utc>>,
}

/// A mailbox wait as a plan asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanMailboxWait {
    /// The wait.
    pub wait: MailboxWait,
    /// What the plan saw of the mailbox's current day: the wait is recorded only if that
    /// day is not used less now.
    pub seen: PoolDaySeen,
}

/// "Read at most `at_most` of this sequence's due enrollments that go to its pool": what a
/// planner passes to [`Outbox::due_enrollments_bounded`](super::Outbox::due_enrollments_bounded)
/// for a pool with little room (see
/// the module docs on bounded reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PoolBound {
    /// The sequence's tenant.
    pub tenant: TenantId,
    /// The sequence.
    pub sequence: SequenceId,
    /// The most of its enrollments that go to the pool to read, earliest first.
    pub at_most: usize,
}

/// "Read at most `at_most` of the due enrollments sticky to this mailbox": what a planner
/// passes to [`Outbox::due_enrollments_bounded`](super::Outbox::due_enrollments_bounded)
/// for a mailbox with little room for its
/// follow-ups (see the module docs on bounded reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MailboxBound {
    /// The mailbox's tenant.
    pub tenant: TenantId,
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The most of the enrollments sticky to it to read, earliest first.
    pub at_most: usize,
}
