//! One tick: expire leases, plan what is due, dispatch what has come.

use chrono::{DateTime, Utc};
use sequence_core::event::DomainEvent;
use sequence_core::store::{ChangeSet, StoreError};
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument};

use super::{DeliverySemantics, Engine, EngineError};

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TickReport {
    /// Sends whose lease had expired (marked uncertain, or planned again).
    pub expired: usize,
    /// Paused enrollments resumed because their pause ran out.
    pub resumed: usize,
    /// Steps skipped because their condition failed.
    pub skipped: usize,
    /// Enrollments that exited.
    pub exited: usize,
    /// Enrollments that completed.
    pub completed: usize,
    /// Sends planned.
    pub planned: usize,
    /// Enrollments deferred.
    pub deferred: usize,
    /// Enrollments of a full pool left to its pool wait instead of deferred one by one (see
    /// `sequence_core::store::PoolWait`).
    pub held: usize,
    /// Planned sends pre-empted by follow-ups.
    pub preempted: usize,
    /// Sends the transport accepted.
    pub sent: usize,
    /// Attempts that failed for good.
    pub failed: usize,
    /// Attempts that failed and will be retried.
    pub retried: usize,
    /// Claimed sends given back without an attempt (a re-check failed).
    pub released: usize,
}

impl std::ops::AddAssign for TickReport {
    fn add_assign(&mut self, other: Self) {
        self.expired += other.expired;
        self.resumed += other.resumed;
        self.skipped += other.skipped;
        self.exited += other.exited;
        self.completed += other.completed;
        self.planned += other.planned;
        self.deferred += other.deferred;
        self.held += other.held;
        self.preempted += other.preempted;
        self.sent += other.sent;
        self.failed += other.failed;
        self.retried += other.retried;
        self.released += other.released;
    }
}

/// The instant work of one tick happens at: the tick's `now` plus the time the tick has
/// taken so far on the engine's clock. A tick that sends through a slow server lasts
/// minutes, and each send, its re-check and its outcome follow the instant it really
/// happened, not the one the tick started at. (A virtual clock that nobody advances keeps
/// the tick at its `now`.)
#[derive(Clone)]
pub(super) struct TickClock {
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    clock: std::sync::Arc<dyn sequence_core::ports::Clock>,
}

impl TickClock {
    /// The current instant of the tick.
    pub(super) fn now(&self) -> DateTime<Utc> {
        let elapsed = (self.clock.now() - self.started).max(chrono::Duration::zero());
        self.now
            .checked_add_signed(elapsed)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl Engine {
    /// Do all the work due now on the engine's clock: expire leases, plan due enrollments
    /// (while this engine holds the store's planning lease; another engine planning
    /// meanwhile leaves the planning to it), send what has come. Each send reads the clock
    /// again, so a tick that lasts minutes keeps every send inside its window.
    ///
    /// # Errors
    /// The store failed.
    pub async fn tick(&self) -> Result<TickReport, EngineError> {
        self.tick_at(self.now()).await
    }

    #[instrument(name = "tick", skip(self), fields(now = %now))]
    async fn tick_at(&self, now: DateTime<Utc>) -> Result<TickReport, EngineError> {
        let clock = TickClock {
            now,
            started: self.now(),
            clock: self.inner.clock.clone(),
        };
        let mut report = TickReport::default();
        self.expire_leases(now, &mut report).await?;
        self.plan_under_lease(now, &mut report).await?;
        self.dispatch_due(&clock, &mut report).await?;
        debug!(?report, "tick done");
        Ok(report)
    }

    /// Plan what is due, in batches, under the planning lease (renewed before each batch).
    async fn plan_under_lease(
        &self,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        // Most ticks find nothing due: one read says so, without taking and giving back the
        // lease (two writes, each a commit a database flushes to disk).
        if store.due_enrollments(now, 1).await?.is_empty() {
            return Ok(());
        }
        let token = self.inner.planner_token;
        let lease_for = self.inner.config.planning_lease;
        let mut held = None;
        let result = async {
            for batch in 0..4 {
                let Some(lease) = store.acquire_planning(now, token, lease_for).await? else {
                    debug!("another engine is planning");
                    return Ok(());
                };
                held = Some(lease);
                // New starts are read no further than their pools can serve today, and
                // follow-ups no further than their mailboxes can.
                let bounds = self.read_bounds(now, batch).await?;
                let due = store
                    .due_enrollments_bounded(
                        now,
                        self.inner.config.plan_batch,
                        &bounds.pools,
                        &bounds.mailboxes,
                    )
                    .await?;
                if due.is_empty() {
                    break;
                }
                let full = due.len() >= self.inner.config.plan_batch;
                // A sequence (mailbox) read to its bound whose pool (mailbox) the plan left
                // with room has more to read now; one left waiting has its unread backlog
                // held by the wait.
                let (progressed, unread) =
                    match self.plan_due(now, due, &bounds, lease, report).await {
                        Ok(outcome) => outcome,
                        Err(EngineError::Store(StoreError::PlanningLeaseLost)) => {
                            debug!("planning lease lost: the plan was dropped");
                            held = None;
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    };
                if !full && !progressed && !unread {
                    break;
                }
            }
            Ok(())
        }
        .await;
        if let Some(lease) = held {
            store.release_planning(lease).await?;
        }
        result
    }

    /// The earliest instant at which a tick would find something to do.
    ///
    /// # Errors
    /// The store failed.
    pub async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>, EngineError> {
        Ok(self.inner.store.next_wakeup().await?)
    }

    async fn expire_leases(
        &self,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), EngineError> {
        let resend = self.inner.config.delivery == DeliverySemantics::AtLeastOnce;
        let expired = self.inner.store.expire_leases(now, resend).await?;
        report.expired += expired.len();
        if resend {
            return Ok(());
        }
        // At most once: the step may have gone out. Report it; the store left each
        // enrollment due with the uncertain send recorded, and planning moves it past the
        // step, so that it neither resends nor stalls (whichever engine plans next).
        for send in expired {
            self.emit(
                send.tenant,
                &[DomainEvent::SendUncertain {
                    send: send.id,
                    enrollment: send.enrollment,
                }],
            );
        }
        Ok(())
    }

    /// Apply changes; when a version conflict refuses the batch, apply them one by one and
    /// leave the conflicting ones for the next tick (they were changed by someone else).
    pub(super) async fn apply_leniently(
        &self,
        now: DateTime<Utc>,
        changes: ChangeSet,
    ) -> Result<(), EngineError> {
        if changes.is_empty() {
            return Ok(());
        }
        match self.inner.store.apply_changes(now, changes.clone()).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_conflict() => {
                for (enrollment, v) in changes.enrollments {
                    let one = ChangeSet {
                        enrollments: vec![(enrollment, v)],
                        ..ChangeSet::default()
                    };
                    match self.inner.store.apply_changes(now, one).await {
                        Ok(()) => {}
                        Err(e) if e.is_conflict() => debug!("skipped a changed enrollment"),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
