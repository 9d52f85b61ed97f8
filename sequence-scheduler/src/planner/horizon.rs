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
//! * a follow-up sticky to its mailbox, when the plan leaves that mailbox full
//!   ([`MailboxFull`](super::MailboxFull)): the store records the mailbox's wait, and until
//!   it ends the mailbox takes no new start (its snapshot's `held_until`), so no new start
//!   goes out on it while a follow-up waits (rule 8). New starts are never cut: cut, the
//!   room they leave would go to new starts planned ahead of follow-ups that come due
//!   meanwhile;
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
    // The full mailboxes this plan gives only enrollments sticky to them (a mailbox left
    // full with more due than the plan was given may have taken new starts too).
    let mut mailboxes_full: HashSet<MailboxId> =
        plan.mailboxes_full.iter().map(|f| f.mailbox).collect();
    for s in &plan.sends {
        if input
            .due
            .get(s.index)
            .is_none_or(|row| row.sticky_mailbox != Some(s.mailbox))
        {
            mailboxes_full.remove(&s.mailbox);
        }
    }
    if mailboxes_full.is_empty() {
        return;
    }
    let cutoffs = cutoffs(plan, horizon, &mailboxes_full);
    let mut cut: HashMap<MailboxId, DateTime<Utc>> = HashMap::default();
    plan.sends.retain(|s| {
        let Some(&cutoff) = cutoffs.get(&s.mailbox) else {
            return true;
        };
        let Some(row) = input.due.get(s.index) else {
            return true;
        };
        // Only a follow-up held back by its mailbox's wait is cut: that mailbox then takes no
        // new start before the cutoff (`MailboxSnapshot::held_until`), so none goes out while
        // a follow-up on it waits. A new start is never cut: the pool's other plans would
        // place new starts ahead of the follow-ups that come due meanwhile.
        let held = row.sticky_mailbox == Some(s.mailbox) && mailboxes_full.contains(&s.mailbox);
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

/// The cutoff of each mailbox of `of`: `horizon` past its first send in the plan.
fn cutoffs(
    plan: &Plan,
    horizon: Duration,
    of: &HashSet<MailboxId>,
) -> HashMap<MailboxId, DateTime<Utc>> {
    let mut first: HashMap<MailboxId, DateTime<Utc>> = HashMap::default();
    for s in plan.sends.iter().filter(|s| of.contains(&s.mailbox)) {
        first
            .entry(s.mailbox)
            .and_modify(|t| *t = (*t).min(s.at))
            .or_insert(s.at);
    }
    first
        .into_iter()
        .map(|(m, t)| {
            let cutoff = t.checked_add_signed(horizon);
            (m, cutoff.unwrap_or(DateTime::<Utc>::MAX_UTC))
        })
        .collect()
}
