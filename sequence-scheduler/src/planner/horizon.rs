//! The planning horizon ([`PlannerConfig::horizon`](super::PlannerConfig::horizon)): of a
//! plan that fills mailboxes for their day, only the sends of the next stretch of each
//! mailbox's sending time are kept. The rest are neither stored nor deferred: the waits that
//! hold their enrollments back end when that stretch does, and the plan made then places
//! them in the time still open.
//!
//! A plan's sends are spread over all the open time of the day (step 4), so the sends it
//! keeps are the ones it would have made anyway, and every rule a plan keeps holds for them
//! (a subset of a plan keeps its capacity, gaps and windows). The next plan sees those sends
//! as reservations and spreads the rest of the day's capacity over the rest of its open time,
//! as densely as the first did. What is cut is only what a wait holds back:
//!
//! * an enrollment that goes to the pool, when the plan leaves its sequence's pool full
//!   ([`PoolFull`](super::PoolFull)), and one sticky to the mailbox, when the plan leaves that
//!   mailbox full ([`MailboxFull`](super::MailboxFull));
//! * never in a plan that pre-empts a send (a follow-up then takes the slot of a send
//!   planned before, wherever it lies).
//!
//! A mailbox whose sends were cut is full no longer: every wait that counted it full, and
//! every deferral that waits for room on it, ends at its cutoff at the latest.

use chrono::{DateTime, Duration, Utc};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::{MailboxId, SequenceId};

use super::draft::reservations;
use super::{Plan, PlanningInput, SequencePolicy};

/// Cut `plan` at `horizon` past each mailbox's first send (see the [module docs](self)).
pub(super) fn keep_within(plan: &mut Plan, input: &PlanningInput<'_>, horizon: Duration) {
    if !plan.preempt.is_empty() || horizon <= Duration::zero() || plan.sends.is_empty() {
        return;
    }
    let cutoffs = Cutoffs::of(plan, horizon);
    let pools_full: HashSet<SequenceId> = plan.pools_full.iter().map(|f| f.sequence).collect();
    let mailboxes_full: HashSet<MailboxId> =
        plan.mailboxes_full.iter().map(|f| f.mailbox).collect();
    let mut cut: HashMap<MailboxId, DateTime<Utc>> = HashMap::default();
    plan.sends.retain(|s| {
        let Some(&cutoff) = cutoffs.0.get(&s.mailbox) else {
            return true;
        };
        let Some(row) = input.due.get(s.index) else {
            return true;
        };
        let held = match row.sticky_mailbox {
            None => pools_full.contains(&row.sequence),
            Some(m) => m == s.mailbox && mailboxes_full.contains(&m),
        };
        if s.at < cutoff || !held {
            return true;
        }
        cut.insert(s.mailbox, cutoff);
        false
    });
    if cut.is_empty() {
        return;
    }
    plan.reservations = reservations(&plan.sends);
    let sequences: HashMap<SequenceId, &SequencePolicy> =
        input.sequences.iter().map(|p| (p.id, p)).collect();
    let pool_cut = |sequence: SequenceId| -> Option<DateTime<Utc>> {
        let policy = sequences.get(&sequence)?;
        policy.pool.iter().filter_map(|m| cut.get(m)).min().copied()
    };
    for full in &mut plan.pools_full {
        if let Some(at) = pool_cut(full.sequence) {
            full.until = full.until.min(at);
        }
    }
    for full in &mut plan.mailboxes_full {
        if let Some(&at) = cut.get(&full.mailbox) {
            full.until = full.until.min(at);
        }
    }
    for d in &mut plan.deferred {
        let waits_for_room = matches!(
            d.reason,
            DeferralReason::NoCapacity
                | DeferralReason::OutsideMailboxWindow
                | DeferralReason::OutsideRecipientWindow
        );
        let (Some(not_before), Some(row)) = (d.not_before, input.due.get(d.index)) else {
            continue;
        };
        if !waits_for_room {
            continue;
        }
        let sticky = row.sticky_mailbox.and_then(|m| cut.get(&m)).copied();
        if let Some(at) = [sticky, pool_cut(row.sequence)].into_iter().flatten().min() {
            d.not_before = Some(not_before.min(at));
        }
    }
}

/// Each mailbox's cutoff: `horizon` past its first send in the plan.
struct Cutoffs(HashMap<MailboxId, DateTime<Utc>>);

impl Cutoffs {
    fn of(plan: &Plan, horizon: Duration) -> Self {
        let mut first: HashMap<MailboxId, DateTime<Utc>> = HashMap::default();
        for s in &plan.sends {
            first
                .entry(s.mailbox)
                .and_modify(|t| *t = (*t).min(s.at))
                .or_insert(s.at);
        }
        let cutoffs = first
            .into_iter()
            .map(|(m, t)| {
                (
                    m,
                    t.checked_add_signed(horizon)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC),
                )
            })
            .collect();
        Self(cutoffs)
    }
}
