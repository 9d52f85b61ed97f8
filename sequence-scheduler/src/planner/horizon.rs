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
//! as densely as the first did.
//!
//! A mailbox's plan is cut at its **cutoff**: the horizon past its first send in the plan
//! when the plan leaves its day full, or the end of the wait that holds it
//! ([`MailboxSnapshot::held_until`](sequence_core::store::MailboxSnapshot::held_until)).
//! Everything the plan gives it from the cutoff on is cut, follow-ups and new starts alike,
//! so the next plan finds no follow-up planned past the cutoff for a new start to jump
//! ahead of (rule 8), and it is cut only when a wait holds back every enrollment it cuts:
//!
//! * a follow-up sticky to the mailbox is held by the mailbox's wait, which ends at the
//!   cutoff and holds only the enrollments due when the plan was made
//!   ([`MailboxFull::holds_due_by`]): a follow-up that comes due meanwhile is planned, and
//!   takes a kept new start's slot if it must. Until the cutoff the mailbox takes no new
//!   start (its snapshot's `held_until`);
//! * a new start is held by its pool's wait, so only when the plan leaves the pool full
//!   ([`PoolFull`](super::PoolFull)); its wait ends at the first cutoff of the pool.
//!
//! A plan that pre-empts a send is kept whole (a follow-up then takes the slot of a send
//! planned before, wherever it lies).

use chrono::{DateTime, Duration, Utc};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::{MailboxId, SequenceId};

use super::draft::reservations;
use super::{instant, MailboxFull, Plan, Planner, PlanningInput, SequencePolicy};

/// What a plan leaves of a mailbox's day that the horizon may cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DayLeft {
    /// Full: the cutoff is the horizon past the mailbox's first send in the plan.
    Full,
    /// Held by a wait until this instant: the cutoff.
    HeldUntil(DateTime<Utc>),
}

impl Planner<'_> {
    /// The mailboxes whose plan the horizon may cut, once the plan is made.
    pub(super) fn days_left(&self) -> HashMap<MailboxId, DayLeft> {
        self.days
            .iter()
            .filter(|day| day.active)
            .filter_map(|day| match day.held_until {
                Some(h) => Some((day.id, DayLeft::HeldUntil(instant(h)))),
                None => day.is_full().then_some((day.id, DayLeft::Full)),
            })
            .collect()
    }
}

/// Cut `plan`, made at `now`, at each mailbox's cutoff (see the [module docs](self)).
pub(super) fn keep_within(
    plan: &mut Plan,
    input: &PlanningInput<'_>,
    now: DateTime<Utc>,
    horizon: Duration,
    left: &HashMap<MailboxId, DayLeft>,
) {
    if !plan.preempt.is_empty()
        || horizon <= Duration::zero()
        || plan.sends.is_empty()
        || left.is_empty()
    {
        return;
    }
    let cutoffs = cutoffs(plan, horizon, left);
    let cut = cut_held_sends(plan, input, &cutoffs);
    if cut.is_empty() {
        return;
    }
    plan.reservations = reservations(&plan.sends);
    end_waits_at_cutoffs(plan, input, now, &cut);
}

/// The cutoff of each mailbox of `left` that the plan gives a send: `horizon` past its first
/// send when full, the end of its wait when held.
fn cutoffs(
    plan: &Plan,
    horizon: Duration,
    left: &HashMap<MailboxId, DayLeft>,
) -> HashMap<MailboxId, DateTime<Utc>> {
    let mut first: HashMap<MailboxId, DateTime<Utc>> = HashMap::default();
    for s in plan.sends.iter().filter(|s| left.contains_key(&s.mailbox)) {
        first
            .entry(s.mailbox)
            .and_modify(|t| *t = (*t).min(s.at))
            .or_insert(s.at);
    }
    first
        .into_iter()
        .filter_map(|(m, t)| {
            let cutoff = match left.get(&m)? {
                DayLeft::HeldUntil(until) => *until,
                DayLeft::Full => t
                    .checked_add_signed(horizon)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            };
            Some((m, cutoff))
        })
        .collect()
}

/// Cut the sends at or past their mailbox's cutoff, of each mailbox whose every such send a
/// wait would hold back; the cutoff of each mailbox cut.
fn cut_held_sends(
    plan: &mut Plan,
    input: &PlanningInput<'_>,
    cutoffs: &HashMap<MailboxId, DateTime<Utc>>,
) -> HashMap<MailboxId, DateTime<Utc>> {
    let pools_full: HashSet<SequenceId> = plan.pools_full.iter().map(|f| f.sequence).collect();
    // A follow-up sticky to the mailbox waits on the mailbox's wait; a new start on its
    // pool's, which only a full pool has.
    let held = |index: usize, mailbox: MailboxId| {
        input
            .due
            .get(index)
            .is_some_and(|row| match row.sticky_mailbox {
                Some(sticky) => sticky == mailbox,
                None => pools_full.contains(&row.sequence),
            })
    };
    let mut uncut: HashSet<MailboxId> = HashSet::default();
    for s in &plan.sends {
        let past = cutoffs.get(&s.mailbox).is_some_and(|&c| s.at >= c);
        if past && !held(s.index, s.mailbox) {
            uncut.insert(s.mailbox);
        }
    }
    let mut cut: HashMap<MailboxId, DateTime<Utc>> = HashMap::default();
    plan.sends.retain(|s| {
        let Some(&cutoff) = cutoffs.get(&s.mailbox) else {
            return true;
        };
        if s.at < cutoff || uncut.contains(&s.mailbox) {
            return true;
        }
        cut.insert(s.mailbox, cutoff);
        false
    });
    cut
}

/// End every wait the cut sends' enrollments are held by at the cutoff: each mailbox cut
/// waits until its cutoff (holding the enrollments due at `now`), each full pool until the
/// first cutoff of its mailboxes, and each deferral that waits for room on a mailbox cut
/// until that mailbox's cutoff.
fn end_waits_at_cutoffs(
    plan: &mut Plan,
    input: &PlanningInput<'_>,
    now: DateTime<Utc>,
    cut: &HashMap<MailboxId, DateTime<Utc>>,
) {
    for (&mailbox, &at) in cut {
        match plan
            .mailboxes_full
            .iter_mut()
            .find(|f| f.mailbox == mailbox)
        {
            Some(full) => {
                full.until = full.until.min(at);
                full.holds_due_by = Some(now);
            }
            None => plan.mailboxes_full.push(MailboxFull {
                mailbox,
                until: at,
                holds_due_by: Some(now),
            }),
        }
    }
    // Each sequence's first cutoff over its pool, worked out once: a plan may defer tens of
    // thousands of its enrollments.
    let pool_cuts: HashMap<SequenceId, DateTime<Utc>> = input
        .sequences
        .iter()
        .filter_map(|p: &SequencePolicy| {
            let first = p.pool.iter().filter_map(|m| cut.get(m)).min()?;
            Some((p.id, *first))
        })
        .collect();
    let pool_cut = |sequence: SequenceId| pool_cuts.get(&sequence).copied();
    for full in &mut plan.pools_full {
        if let Some(at) = pool_cut(full.sequence) {
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
