//! One tick: expire leases, plan what is due, dispatch what has come.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sequence_core::condition::OnConditionFail;
use sequence_core::contact::ContactStatus;
use sequence_core::enrollment::{EnrollmentStatus, ExitReason};
use sequence_core::event::DomainEvent;
use sequence_core::ids::{MailboxId, SequenceId};
use sequence_core::send::message_id;
use sequence_core::sequence::{Sequence, SequenceStatus};
use sequence_core::store::{
    ChangeSet, DueEnrollment, PlanCommit, PlanDeferral, PlanSend, PlanningLease, StoreError,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument};

use super::{DeliverySemantics, Engine, EngineError};
use crate::planner::{plan, DueStep, PlanningInput, SequencePolicy};
use crate::rng::mix;

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
    /// Do all the work due at `now`: expire leases, plan due enrollments (while this engine
    /// holds the store's planning lease; another engine planning meanwhile leaves the
    /// planning to it), send what has come.
    ///
    /// # Errors
    /// The store failed.
    #[instrument(name = "tick", skip(self), fields(now = %now))]
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, EngineError> {
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
        let token = self.inner.planner_token;
        let lease_for = self.inner.config.planning_lease;
        let mut held = None;
        let result = async {
            for _ in 0..4 {
                let Some(lease) = store.acquire_planning(now, token, lease_for).await? else {
                    debug!("another engine is planning");
                    return Ok(());
                };
                held = Some(lease);
                let due = store
                    .due_enrollments(now, self.inner.config.plan_batch)
                    .await?;
                if due.is_empty() {
                    break;
                }
                let full = due.len() >= self.inner.config.plan_batch;
                let progressed = match self.plan_due(now, due, lease, report).await {
                    Ok(progressed) => progressed,
                    Err(EngineError::Store(StoreError::PlanningLeaseLost)) => {
                        debug!("planning lease lost: the plan was dropped");
                        held = None;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                if !full && !progressed {
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
        // At most once: the step may have gone out. Report it and move the enrollment on,
        // so that it neither resends nor stalls.
        for send in expired {
            self.emit(
                send.tenant,
                &[DomainEvent::SendUncertain {
                    send: send.id,
                    enrollment: send.enrollment,
                }],
            );
            self.advance_past_uncertain(now, &send).await?;
        }
        Ok(())
    }

    /// Move an enrollment past a step whose send became uncertain, as if it had been sent
    /// at `now` (it may well have been). Read again and retried when the enrollment changes
    /// meanwhile, so that a conflict never leaves it planned without a live send.
    async fn advance_past_uncertain(
        &self,
        now: DateTime<Utc>,
        send: &sequence_core::send::ScheduledSend,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let Some(seq) = store.get_sequence(send.tenant, send.sequence).await? else {
            return Ok(());
        };
        let zone = store
            .get_contact(send.tenant, send.contact)
            .await?
            .and_then(|c| c.timezone)
            .unwrap_or(chrono_tz::UTC);
        for _ in 0..5 {
            let Some(mut e) = store.get_enrollment(send.tenant, send.enrollment).await? else {
                return Ok(());
            };
            if e.is_final() || e.current_step != send.step {
                return Ok(());
            }
            let next = seq
                .step(send.step + 1)
                .map(|s| s.delay.after(now, zone, &seq.holidays));
            let v = e.version;
            let events = e.step_sent(send.step, now, send.message_id.clone(), next)?;
            let changes = ChangeSet {
                enrollments: vec![(e, v)],
                ..ChangeSet::default()
            };
            match store.apply_changes(now, changes).await {
                Ok(()) => {
                    self.emit(send.tenant, &events);
                    return Ok(());
                }
                Err(err) if err.is_conflict() => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(EngineError::Store(StoreError::Backend(format!(
            "enrollment {} kept changing while its uncertain send was recorded",
            send.enrollment
        ))))
    }

    /// Plan one batch of due enrollments. Returns whether anything changed that could make
    /// more work due at `now`.
    #[instrument(name = "plan", skip(self, due, report), fields(due = due.len()))]
    async fn plan_due(
        &self,
        now: DateTime<Utc>,
        due: Vec<DueEnrollment>,
        lease: PlanningLease,
        report: &mut TickReport,
    ) -> Result<bool, EngineError> {
        let store = &self.inner.store;
        let seq_ids: Vec<SequenceId> = {
            let set: HashSet<SequenceId> = due.iter().map(|d| d.enrollment.sequence).collect();
            set.into_iter().collect()
        };
        let sequences: HashMap<SequenceId, Sequence> = store
            .get_sequences(&seq_ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();

        // Before planning: resume, exit, skip, complete.
        let mut changes = ChangeSet::default();
        let mut events: Vec<(sequence_core::ids::TenantId, DomainEvent)> = Vec::new();
        let mut to_plan: Vec<DueEnrollment> = Vec::with_capacity(due.len());
        for d in due {
            let DueEnrollment {
                mut enrollment,
                contact,
            } = d;
            let v = enrollment.version;
            let tenant = enrollment.tenant;
            if enrollment.status == EnrollmentStatus::Paused {
                events.push((tenant, enrollment.resume(now)?));
                report.resumed += 1;
                changes.enrollments.push((enrollment, v));
                continue;
            }
            let Some(seq) = sequences
                .get(&enrollment.sequence)
                .filter(|s| s.status != SequenceStatus::Archived)
            else {
                events.push((tenant, enrollment.exit(ExitReason::SequenceArchived, now)?));
                report.exited += 1;
                changes.enrollments.push((enrollment, v));
                continue;
            };
            match contact.status {
                ContactStatus::Active => {}
                ContactStatus::Unsubscribed => {
                    events.push((tenant, enrollment.exit(ExitReason::Unsubscribed, now)?));
                    report.exited += 1;
                    changes.enrollments.push((enrollment, v));
                    continue;
                }
                _ => {
                    events.push((tenant, enrollment.exit(ExitReason::Bounced, now)?));
                    report.exited += 1;
                    changes.enrollments.push((enrollment, v));
                    continue;
                }
            }
            if seq.status == SequenceStatus::Active {
                let Some(step) = seq.step(enrollment.current_step) else {
                    // Steps were removed under it: nothing left to send.
                    let ev = enrollment.skip_step(enrollment.current_step, now, None)?;
                    report.completed += 1;
                    events.extend(ev.into_iter().map(|e| (tenant, e)));
                    changes.enrollments.push((enrollment, v));
                    continue;
                };
                if let Some(cond) = &step.condition {
                    if !cond.condition.evaluate(&contact) {
                        match cond.on_fail {
                            OnConditionFail::Exit => {
                                events.push((
                                    tenant,
                                    enrollment.exit(ExitReason::ConditionNotMet, now)?,
                                ));
                                report.exited += 1;
                            }
                            OnConditionFail::Skip => {
                                let zone = contact.timezone.unwrap_or(chrono_tz::UTC);
                                let next = seq
                                    .step(enrollment.current_step + 1)
                                    .map(|s| s.delay.after(now, zone, &seq.holidays));
                                let ev =
                                    enrollment.skip_step(enrollment.current_step, now, next)?;
                                report.skipped += 1;
                                if enrollment.status == EnrollmentStatus::Completed {
                                    report.completed += 1;
                                }
                                events.extend(ev.into_iter().map(|e| (tenant, e)));
                            }
                        }
                        changes.enrollments.push((enrollment, v));
                        continue;
                    }
                }
            }
            to_plan.push(DueEnrollment {
                enrollment,
                contact,
            });
        }
        let mut progressed = !changes.is_empty();
        self.apply_leniently(now, changes).await?;
        for (tenant, e) in &events {
            self.emit(*tenant, std::slice::from_ref(e));
        }
        if to_plan.is_empty() {
            return Ok(progressed);
        }

        // Plan.
        let mut mailbox_ids: HashSet<MailboxId> = HashSet::new();
        for d in &to_plan {
            if let Some(seq) = sequences.get(&d.enrollment.sequence) {
                mailbox_ids.extend(seq.mailbox_pool.iter().copied());
            }
            mailbox_ids.extend(d.enrollment.mailbox);
        }
        let mailbox_ids: Vec<MailboxId> = mailbox_ids.into_iter().collect();
        let snapshots = store.mailbox_snapshots(now, &mailbox_ids).await?;
        // Only the counts the sequences' caps need: none at all without caps.
        let capped_starts: Vec<SequenceId> = sequences
            .values()
            .filter(|s| s.new_enrollments_per_day.is_some())
            .map(|s| s.id)
            .collect();
        let capped_domains: Vec<(sequence_core::ids::TenantId, String)> = to_plan
            .iter()
            .filter(|d| {
                sequences
                    .get(&d.enrollment.sequence)
                    .is_some_and(|s| s.per_domain_daily_cap.is_some())
            })
            .map(|d| (d.enrollment.tenant, d.contact.email_domain()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let counts = if capped_starts.is_empty() && capped_domains.is_empty() {
            sequence_core::store::DailyCounts::default()
        } else {
            store
                .daily_counts(now, &capped_starts, &capped_domains)
                .await?
        };
        // A pool lists mailboxes of its own tenant only; any other is not offered (saving a
        // sequence refuses them, this keeps a plan from ever choosing one).
        let tenant_of: HashMap<MailboxId, sequence_core::ids::TenantId> = snapshots
            .iter()
            .map(|s| (s.mailbox.id, s.mailbox.tenant))
            .collect();
        let policies: Vec<SequencePolicy> = sequences
            .values()
            .map(|s| {
                let mut policy = SequencePolicy::from(s);
                policy.pool.retain(|m| tenant_of.get(m) == Some(&s.tenant));
                policy
            })
            .collect();
        let due_steps: Vec<DueStep> = to_plan
            .iter()
            .map(|d| DueStep {
                enrollment: d.enrollment.id,
                tenant: d.enrollment.tenant,
                sequence: d.enrollment.sequence,
                step: d.enrollment.current_step,
                earliest: d.enrollment.due_at.unwrap_or(now),
                sticky_mailbox: d
                    .enrollment
                    .mailbox
                    .filter(|m| tenant_of.get(m) == Some(&d.enrollment.tenant)),
                contact_zone: d.contact.timezone,
                recipient_domain: d.contact.email_domain(),
            })
            .collect();
        let input = PlanningInput {
            due: &due_steps,
            mailboxes: &snapshots,
            sequences: &policies,
            counts: &counts,
        };
        let the_plan = plan(now, &input, &self.inner.config.planner);

        let addresses: HashMap<MailboxId, &str> = snapshots
            .iter()
            .map(|s| (s.mailbox.id, s.mailbox.address.as_str()))
            .collect();
        let seed = self.inner.config.planner.seed;
        let commit = PlanCommit {
            planning: Some(lease),
            preempt: the_plan.preempt.clone(),
            sends: the_plan
                .sends
                .iter()
                .map(|s| {
                    let d = &to_plan[s.index];
                    let variant = sequences
                        .get(&d.enrollment.sequence)
                        .and_then(|seq| seq.step(s.step))
                        .map_or(0, |step| {
                            step.choose_variant(mix(
                                seed,
                                mix(d.enrollment.id.0.as_u128() as u64, u64::from(s.step)),
                            ))
                        });
                    PlanSend {
                        enrollment: s.enrollment,
                        enrollment_version: d.enrollment.version,
                        step: s.step,
                        mailbox: s.mailbox,
                        at: s.at,
                        local_date: s.local_date,
                        limit: s.limit,
                        message_id: message_id(
                            s.enrollment,
                            s.step,
                            addresses.get(&s.mailbox).copied().unwrap_or(""),
                        ),
                        variant,
                        recipient_domain: due_steps[s.index].recipient_domain.clone(),
                    }
                })
                .collect(),
            deferrals: the_plan
                .deferred
                .iter()
                .map(|d| PlanDeferral {
                    enrollment: d.enrollment,
                    enrollment_version: to_plan[d.index].enrollment.version,
                    deferral: sequence_core::enrollment::Deferral {
                        reason: d.reason,
                        not_before: d.not_before,
                    },
                })
                .collect(),
        };
        let applied = store.apply_plan(now, commit).await?;
        report.planned += applied.planned.len();
        report.deferred += the_plan.deferred.len();
        report.preempted += the_plan.preempt.len();
        progressed |= !the_plan.preempt.is_empty() || !applied.over_capacity.is_empty();
        Ok(progressed)
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
