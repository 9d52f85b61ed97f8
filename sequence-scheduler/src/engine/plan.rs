//! Planning one batch of due enrollments, in three phases: settle what needs no plan
//! (resume, exit, skip, complete), plan the rest with [`crate::planner::plan`], and commit
//! the plan with its reservations in one unit of work.
//!
//! A batch may hold 100,000 enrollments, so each phase works on the batch in place, builds
//! its sets from the batch's few sequences rather than from every row, and copies no row
//! it does not need.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use sequence_core::condition::OnConditionFail;
use sequence_core::contact::{Contact, ContactStatus};
use sequence_core::enrollment::{
    Deferral, DeferralReason, Enrollment, EnrollmentStatus, ExitReason,
};
use sequence_core::event::DomainEvent;
use sequence_core::ids::{EnrollmentId, MailboxId, SequenceId, TenantId};
use sequence_core::send::message_id;
use sequence_core::sequence::{Sequence, SequenceStatus};
use sequence_core::store::{
    ChangeSet, DailyCounts, DueDocuments, DueEnrollment, MailboxSnapshot, MailboxWait, PlanCommit,
    PlanDeferral, PlanMailboxWait, PlanSend, PlanWait, PlanningLease, PoolDaySeen, PoolWait,
};
use sequence_core::TransitionError;
use tracing::instrument;

use super::bounds::ReadBounds;
use super::tick::TickReport;
use super::{Engine, EngineError};
use crate::planner::{
    plan_with, Deferred, DueStep, Plan, PlanScratch, PlanningInput, SequencePolicy,
};
use crate::rng::mix;

/// What settling a due enrollment did to it, for the tick's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// Its pause ran out.
    Resumed,
    /// It exited.
    Exited,
    /// Its last step was gone or skipped: it completed.
    Completed,
    /// Its step's condition failed and the step was skipped (`true`: that completed it).
    Skipped(bool),
    /// A send of its step became uncertain and was counted as sent (`true`: that
    /// completed it).
    PastUncertain(bool),
}

impl Settled {
    fn tally(self, report: &mut TickReport) {
        match self {
            Self::Resumed => report.resumed += 1,
            Self::Exited => report.exited += 1,
            Self::Completed => report.completed += 1,
            Self::Skipped(completed) => {
                report.skipped += 1;
                report.completed += usize::from(completed);
            }
            Self::PastUncertain(completed) => report.completed += usize::from(completed),
        }
    }
}

/// Decide, before planning, what a due enrollment needs that is not a send: `None` when it
/// is to be planned (and then it is left unchanged, and not copied), else what was done to
/// it (on its own copy: the store's row is changed only when the change is applied).
fn settle(
    shared: &mut Arc<Enrollment>,
    contact: &Contact,
    seq: Option<&Sequence>,
    now: DateTime<Utc>,
    events: &mut Vec<DomainEvent>,
) -> Result<Option<Settled>, TransitionError> {
    if let (Some(seq), Some(uncertain)) = (seq, shared.uncertain_send().cloned()) {
        // At most once: the step may have gone out, so it is counted as sent when its
        // lease ran out and never planned again.
        let e = Arc::make_mut(shared);
        let next = next_step_due(e, seq, contact, uncertain.at);
        events.extend(e.step_sent(uncertain.step, uncertain.at, uncertain.message_id, next)?);
        return Ok(Some(Settled::PastUncertain(e.is_final())));
    }
    if shared.status() == EnrollmentStatus::Paused {
        events.push(Arc::make_mut(shared).resume(now)?);
        return Ok(Some(Settled::Resumed));
    }
    let exit = |shared: &mut Arc<Enrollment>, reason, events: &mut Vec<DomainEvent>| {
        events.push(Arc::make_mut(shared).exit(reason, now)?);
        Ok(Some(Settled::Exited))
    };
    let Some(seq) = seq.filter(|s| s.status() != SequenceStatus::Archived) else {
        return exit(shared, ExitReason::SequenceArchived, events);
    };
    match contact.status() {
        ContactStatus::Active => {}
        ContactStatus::Unsubscribed => return exit(shared, ExitReason::Unsubscribed, events),
        _ => return exit(shared, ExitReason::Bounced, events),
    }
    if seq.status() != SequenceStatus::Active {
        // The planner defers it (the sequence is paused).
        return Ok(None);
    }
    let Some(step) = seq.step(shared.current_step()) else {
        // Steps were removed under it: nothing left to send.
        let e = Arc::make_mut(shared);
        events.extend(e.skip_step(e.current_step(), now, None)?);
        return Ok(Some(Settled::Completed));
    };
    let Some(cond) = step
        .condition
        .as_ref()
        .filter(|c| !c.condition.evaluate(contact))
    else {
        return Ok(None);
    };
    match cond.on_fail {
        OnConditionFail::Exit => exit(shared, ExitReason::ConditionNotMet, events),
        OnConditionFail::Skip => {
            let next = next_step_due(shared, seq, contact, now);
            let e = Arc::make_mut(shared);
            events.extend(e.skip_step(e.current_step(), now, next)?);
            Ok(Some(Settled::Skipped(
                e.status() == EnrollmentStatus::Completed,
            )))
        }
    }
}

/// When the step after the enrollment's current one is due, counted from `from` in the
/// contact's zone (UTC without one); `None` when the current step is the last.
fn next_step_due(
    e: &Enrollment,
    seq: &Sequence,
    contact: &Contact,
    from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let zone = contact.timezone.unwrap_or(chrono_tz::UTC);
    seq.step(e.current_step() + 1)
        .map(|s| s.delay.after(from, zone, &seq.holidays))
}

/// Whether [`settle`] may do something to the due enrollment `row` of `seq`: else it
/// would leave it unchanged, and the row is not looked at again. Settling has work whatever
/// the sequence for an uncertain send to count, a pause that ran out, a contact that is no
/// longer active.
fn may_settle(row: &DueEnrollment, seq: Option<&Sequence>) -> bool {
    let Some(seq) = seq else {
        return true;
    };
    row.uncertain
        || row.status != EnrollmentStatus::Active
        || row.contact_status != ContactStatus::Active
        || seq.status() == SequenceStatus::Archived
        || seq
            .step(row.step)
            .is_none_or(|step| step.condition.is_some())
}

/// The batch being planned: the enrollments left after settling and their sequences.
struct Batch {
    now: DateTime<Utc>,
    due: Vec<DueEnrollment>,
    sequences: HashMap<SequenceId, Sequence>,
}

impl Batch {
    /// Every mailbox the batch may plan on: its sequences' pools and the sticky mailboxes.
    fn mailbox_ids(&self) -> Vec<MailboxId> {
        let mut ids: HashSet<MailboxId> = self
            .sequences
            .values()
            .flat_map(|s| s.mailbox_pool.iter().copied())
            .collect();
        ids.extend(self.due.iter().filter_map(|row| row.mailbox));
        ids.into_iter().collect()
    }

    /// Each row's recipient domain where its sequence caps sends per domain, and an empty
    /// string (no allocation) elsewhere: the planner reads a domain only for a capped
    /// sequence, and the store's counts take the domains of the planned sends alone (see
    /// [`Batch::commit`]).
    fn capped_domains(&self) -> Vec<String> {
        let capped: HashSet<SequenceId> = self
            .sequences
            .values()
            .filter(|s| s.per_domain_daily_cap.is_some())
            .map(|s| s.id)
            .collect();
        self.due
            .iter()
            .map(|row| {
                if capped.contains(&row.sequence) {
                    row.recipient_domain()
                } else {
                    String::new()
                }
            })
            .collect()
    }

    /// The sequences whose new starts are capped, and the (tenant, domain) pairs whose
    /// sequences cap sends per domain: only what the caps need.
    fn capped_keys(&self, domains: &[String]) -> (Vec<SequenceId>, Vec<(TenantId, String)>) {
        let starts = self
            .sequences
            .values()
            .filter(|s| s.new_enrollments_per_day.is_some())
            .map(|s| s.id)
            .collect();
        let pairs: HashSet<(TenantId, &str)> = self
            .due
            .iter()
            .zip(domains)
            .filter(|(_, domain)| !domain.is_empty())
            .map(|(row, domain)| (row.tenant, domain.as_str()))
            .collect();
        let pairs = pairs.into_iter().map(|(t, d)| (t, d.to_owned())).collect();
        (starts, pairs)
    }

    /// The planner's view of the batch. A pool offers mailboxes of its own tenant only
    /// (saving a sequence refuses others; this keeps a plan from ever choosing one).
    /// `more_due`: the sequences whose new starts were read only up to their bound.
    fn planning_input(
        &self,
        snapshots: &[MailboxSnapshot],
        domains: Vec<String>,
        more_due: &[SequenceId],
    ) -> (Vec<SequencePolicy>, Vec<DueStep>) {
        let tenant_of: HashMap<MailboxId, TenantId> = snapshots
            .iter()
            .map(|s| (s.mailbox.id, s.mailbox.tenant))
            .collect();
        let policies = self
            .sequences
            .values()
            .map(|s| {
                let mut policy = SequencePolicy::from(s);
                policy.pool.retain(|m| tenant_of.get(m) == Some(&s.tenant));
                policy.more_due = more_due.contains(&s.id);
                policy
            })
            .collect();
        let steps = self
            .due
            .iter()
            .zip(domains)
            .map(|(row, recipient_domain)| DueStep {
                enrollment: row.id,
                tenant: row.tenant,
                sequence: row.sequence,
                step: row.step,
                earliest: row.earliest.unwrap_or(self.now),
                sticky_mailbox: row
                    .mailbox
                    .filter(|m| tenant_of.get(m) == Some(&row.tenant)),
                contact_zone: row.contact_zone,
                recipient_domain,
            })
            .collect();
        (policies, steps)
    }

    /// The plan as the store applies it: Message-IDs, A/B variants, versions read.
    fn commit(
        &self,
        the_plan: &Plan,
        snapshots: &[MailboxSnapshot],
        seed: u64,
        lease: PlanningLease,
    ) -> PlanCommit {
        let by_id: HashMap<MailboxId, &MailboxSnapshot> =
            snapshots.iter().map(|s| (s.mailbox.id, s)).collect();
        let sends = the_plan
            .sends
            .iter()
            .map(|s| {
                let row = &self.due[s.index];
                let variant = self
                    .sequences
                    .get(&row.sequence)
                    .and_then(|seq| seq.step(s.step))
                    .map_or(0, |step| {
                        step.choose_variant(mix(
                            seed,
                            mix(row.id.0.as_u128() as u64, u64::from(s.step)),
                        ))
                    });
                PlanSend {
                    enrollment: s.enrollment,
                    enrollment_version: row.version,
                    step: s.step,
                    mailbox: s.mailbox,
                    at: s.at,
                    local_date: s.local_date,
                    limit: s.limit,
                    message_id: message_id(
                        s.enrollment,
                        s.step,
                        by_id
                            .get(&s.mailbox)
                            .map_or("", |m| m.mailbox.address.as_str()),
                    ),
                    variant,
                    recipient_domain: row.recipient_domain(),
                }
            })
            .collect();
        let reserved: HashMap<(MailboxId, NaiveDate), u32> = the_plan
            .reservations
            .iter()
            .map(|r| ((r.mailbox, r.local_date), r.count))
            .collect();
        let waits: Vec<PlanWait> = the_plan
            .pools_full
            .iter()
            .filter_map(|full| {
                let seq = self.sequences.get(&full.sequence)?;
                Some(PlanWait {
                    wait: PoolWait {
                        tenant: seq.tenant,
                        sequence: seq.id,
                        until: full.until,
                    },
                    seen: pool_days_seen(seq, snapshots, &reserved),
                })
            })
            .collect();
        let mailbox_waits: Vec<PlanMailboxWait> = the_plan
            .mailboxes_full
            .iter()
            .filter_map(|full| {
                let snap = by_id.get(&full.mailbox)?;
                Some(PlanMailboxWait {
                    wait: MailboxWait {
                        tenant: snap.mailbox.tenant,
                        mailbox: full.mailbox,
                        until: full.until,
                        holds_due_by: full.holds_due_by,
                    },
                    seen: day_seen(snap, &reserved),
                })
            })
            .collect();
        // A handful of sequences: a list is searched faster than a set is hashed.
        let waiting = Waiting {
            sequences: waits.iter().map(|w| w.wait.sequence).collect(),
            mailboxes: mailbox_waits
                .iter()
                .map(|w| (w.wait.tenant, w.wait.mailbox))
                .collect(),
        };
        let deferrals = the_plan
            .deferred
            .iter()
            .filter(|d| !waiting.holds_back(&self.due[d.index], d))
            .map(|d| PlanDeferral {
                enrollment: d.enrollment,
                enrollment_version: self.due[d.index].version,
                deferral: Deferral {
                    reason: d.reason,
                    not_before: d.not_before,
                },
            })
            .collect();
        PlanCommit {
            planning: Some(lease),
            preempt: the_plan.preempt.clone(),
            sends,
            deferrals,
            waits,
            mailbox_waits,
        }
    }
}

/// What a plan saw of the current day of each active mailbox of the pool of `seq`: the
/// snapshot's use plus the plan's own reservations (the store records the pool's wait only
/// if none of these days is used less when the plan is applied).
fn pool_days_seen(
    seq: &Sequence,
    snapshots: &[MailboxSnapshot],
    reserved: &HashMap<(MailboxId, NaiveDate), u32>,
) -> Vec<PoolDaySeen> {
    snapshots
        .iter()
        .filter(|s| {
            s.mailbox.tenant == seq.tenant
                && s.mailbox.is_active()
                && seq.mailbox_pool.contains(&s.mailbox.id)
        })
        .map(|s| day_seen(s, reserved))
        .collect()
}

/// What a plan saw of the current local day of `snap`'s mailbox: the snapshot's use plus the
/// plan's own reservations.
fn day_seen(
    snap: &MailboxSnapshot,
    reserved: &HashMap<(MailboxId, NaiveDate), u32>,
) -> PoolDaySeen {
    let planned = reserved
        .get(&(snap.mailbox.id, snap.local_date))
        .copied()
        .unwrap_or(0);
    PoolDaySeen {
        mailbox: snap.mailbox.id,
        local_date: snap.local_date,
        used: snap.used.saturating_add(planned),
    }
}

/// The keys of `bounds` (each with its bound) of which `rows` holds as many rows as the bound,
/// a row counting under `key_of` it: more of them may be due, unread.
fn read_to_bound<K: Copy + Eq + std::hash::Hash>(
    rows: &[DueEnrollment],
    bounds: &[(K, usize)],
    key_of: impl Fn(&DueEnrollment) -> Option<K>,
) -> Vec<K> {
    if bounds.is_empty() {
        return Vec::new();
    }
    let mut read: HashMap<K, usize> = bounds.iter().map(|&(k, _)| (k, 0)).collect();
    for row in rows {
        if let Some(n) = key_of(row).and_then(|k| read.get_mut(&k)) {
            *n += 1;
        }
    }
    bounds
        .iter()
        .filter(|(k, at_most)| read.get(k).is_some_and(|n| n >= at_most))
        .map(|&(k, _)| k)
        .collect()
}

/// The waits a plan records: the sequences whose pool, and the (tenant, mailbox) pairs whose
/// mailbox, it leaves full.
struct Waiting {
    sequences: Vec<SequenceId>,
    mailboxes: HashSet<(TenantId, MailboxId)>,
}

impl Waiting {
    /// Whether the deferral `d` of `row` is left to a wait instead of written: it waits for
    /// room (capacity or open time, its recipient's hours included) and either goes to a
    /// pool whose wait holds it back from every plan until the pool opens, or is sticky to a
    /// mailbox whose wait does the same.
    fn holds_back(&self, row: &DueEnrollment, d: &Deferred) -> bool {
        let waits_for_room = matches!(
            d.reason,
            DeferralReason::NoCapacity
                | DeferralReason::OutsideMailboxWindow
                | DeferralReason::OutsideRecipientWindow
        );
        let held = if row.goes_to_pool() {
            self.sequences.contains(&row.sequence)
        } else {
            row.waits_on_mailbox()
                .is_some_and(|m| self.mailboxes.contains(&(row.tenant, m)))
        };
        waits_for_room && held
    }
}

impl Engine {
    /// Plan one batch of due enrollments, read with `bounds`, under the planning lease.
    /// Returns whether anything changed that could make more work due at `now`, and whether
    /// a sequence or mailbox read up to its bound was not left waiting by the plan: its
    /// unread enrollments are for the next batch.
    #[instrument(name = "plan", skip(self, due, report), fields(due = due.len()))]
    pub(super) async fn plan_due(
        &self,
        now: DateTime<Utc>,
        due: Vec<DueEnrollment>,
        bounds: &ReadBounds,
        lease: PlanningLease,
        report: &mut TickReport,
    ) -> Result<(bool, bool), EngineError> {
        // The sequences and mailboxes read up to their bound.
        let pools: Vec<_> = bounds
            .pools
            .iter()
            .map(|b| ((b.tenant, b.sequence), b.at_most))
            .collect();
        let more_due: Vec<SequenceId> = read_to_bound(&due, &pools, |row| {
            row.goes_to_pool().then_some((row.tenant, row.sequence))
        })
        .into_iter()
        .map(|(_, sequence)| sequence)
        .collect();
        let mailboxes: Vec<_> = bounds
            .mailboxes
            .iter()
            .map(|b| ((b.tenant, b.mailbox), b.at_most))
            .collect();
        let more_due_on: Vec<MailboxId> = read_to_bound(&due, &mailboxes, |row| {
            row.waits_on_mailbox().map(|m| (row.tenant, m))
        })
        .into_iter()
        .map(|(_, mailbox)| mailbox)
        .collect();
        let sequences = self.sequences_of(&due).await?;
        let mut batch = Batch {
            now,
            due,
            sequences,
        };
        let mut progressed = self.settle_batch(&mut batch, report).await?;
        if batch.due.is_empty() {
            return Ok((progressed, !more_due.is_empty() || !more_due_on.is_empty()));
        }

        let store = &self.inner.store;
        let snapshots = store.mailbox_snapshots(now, &batch.mailbox_ids()).await?;
        let domains = batch.capped_domains();
        let (starts, pairs) = batch.capped_keys(&domains);
        let counts = if starts.is_empty() && pairs.is_empty() {
            DailyCounts::default()
        } else {
            store.daily_counts(now, &starts, &pairs).await?
        };
        let (policies, steps) = batch.planning_input(&snapshots, domains, &more_due);
        let input = PlanningInput {
            due: &steps,
            mailboxes: &snapshots,
            sequences: &policies,
            counts: &counts,
            more_due_on: &more_due_on,
        };
        let the_plan = self.plan_once(now, &input);
        let seed = self.inner.config.planner.seed;
        let commit = batch.commit(&the_plan, &snapshots, seed, lease);
        // The batch shares its rows with the store: let go of them first, so that the store
        // changes them in place instead of copying each one.
        drop(batch);
        let deferred = commit.deferrals.len();
        let applied = store.apply_plan(now, commit).await?;
        report.planned += applied.planned.len();
        report.deferred += deferred;
        report.held += the_plan.deferred.len() - deferred;
        report.preempted += the_plan.preempt.len();
        progressed |= !the_plan.preempt.is_empty() || !applied.over_capacity.is_empty();
        let unread = more_due
            .iter()
            .any(|s| !the_plan.pools_full.iter().any(|f| f.sequence == *s))
            || more_due_on
                .iter()
                .any(|m| !the_plan.mailboxes_full.iter().any(|f| f.mailbox == *m));
        Ok((progressed, unread))
    }

    /// The sequences of a batch, by id.
    async fn sequences_of(
        &self,
        due: &[DueEnrollment],
    ) -> Result<HashMap<SequenceId, Sequence>, EngineError> {
        let ids: HashSet<SequenceId> = due.iter().map(|row| row.sequence).collect();
        let ids: Vec<SequenceId> = ids.into_iter().collect();
        Ok(self
            .inner
            .store
            .get_sequences(&ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect())
    }

    /// Settle the enrollments of the batch that need no plan, record what was
    /// done to them, and leave the rest in the batch. Returns whether anything changed.
    async fn settle_batch(
        &self,
        batch: &mut Batch,
        report: &mut TickReport,
    ) -> Result<bool, EngineError> {
        let now = batch.now;
        let mut changes = ChangeSet::default();
        let mut events: Vec<(TenantId, DomainEvent)> = Vec::new();
        let mut rows = std::mem::take(&mut batch.due);
        self.read_documents(&mut rows, &batch.sequences).await?;
        batch.due.reserve(rows.len());
        for mut row in rows {
            let seq = batch.sequences.get(&row.sequence);
            let may_settle = may_settle(&row, seq);
            let Some(documents) = row.documents.as_mut().filter(|_| may_settle) else {
                batch.due.push(row);
                continue;
            };
            let mut own = Vec::new();
            match settle(
                &mut documents.enrollment,
                &documents.contact,
                seq,
                now,
                &mut own,
            )? {
                None => batch.due.push(row),
                Some(settled) => {
                    settled.tally(report);
                    events.extend(own.into_iter().map(|e| (row.tenant, e)));
                    // Settling made the row its own copy: it moves into the change.
                    let Some(documents) = row.documents else {
                        continue;
                    };
                    let e = Arc::unwrap_or_clone(documents.enrollment);
                    changes.enrollments.push((e, row.version));
                }
            }
        }
        let progressed = !changes.is_empty();
        self.apply_leniently(now, changes).await?;
        for (tenant, e) in &events {
            self.emit(*tenant, std::slice::from_ref(e));
        }
        Ok(progressed)
    }

    /// Read the documents of the rows that settling may change and whose due read left
    /// them out (one read for all); a row whose enrollment moved or is gone since the due
    /// read (or whose contact is gone) is dropped from the batch.
    async fn read_documents(
        &self,
        rows: &mut Vec<DueEnrollment>,
        sequences: &HashMap<SequenceId, Sequence>,
    ) -> Result<(), EngineError> {
        let wants = |row: &DueEnrollment| {
            row.documents.is_none() && may_settle(row, sequences.get(&row.sequence))
        };
        let wanted: Vec<(TenantId, EnrollmentId)> = rows
            .iter()
            .filter(|row| wants(row))
            .map(|row| (row.tenant, row.id))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut read: HashMap<EnrollmentId, DueDocuments> = self
            .inner
            .store
            .due_documents(&wanted)
            .await?
            .into_iter()
            .map(|d| (d.enrollment.id, d))
            .collect();
        rows.retain_mut(|row| {
            if !wants(row) {
                return true;
            }
            // Settled only as the due read saw it: a row that moved since (a host's pause,
            // say) is left to the next due read, which sees it as it is.
            row.documents = read
                .remove(&row.id)
                .filter(|d| d.enrollment.version() == row.version);
            row.documents.is_some()
        });
        Ok(())
    }

    /// Run the planner on `input`, with the engine's working memory when no other tick of
    /// this engine is planning (then with fresh memory: planning never waits on it).
    fn plan_once(&self, now: DateTime<Utc>, input: &PlanningInput<'_>) -> Plan {
        let config = &self.inner.config.planner;
        match self.inner.plan_scratch.try_lock() {
            Ok(mut scratch) => plan_with(&mut scratch, now, input, config),
            Err(_) => plan_with(&mut PlanScratch::default(), now, input, config),
        }
    }
}
