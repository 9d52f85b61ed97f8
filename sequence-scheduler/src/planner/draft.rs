//! The plan as the phases make it, and step 5 of the module docs: the deferral of what they
//! cannot place.

use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::FxHashMap as HashMap;

use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId};

use super::day::Day;
use super::order::Entry;
use super::{instant, Deferred, MailboxFull, Plan, PlannedSend, PoolFull, Reservation};

/// The plan as the phases make it: its sends, pre-emptions and deferrals, each list in the
/// order they were decided.
pub(super) struct Draft {
    plan: Plan,
    /// `now` in seconds.
    now_s: i64,
    /// The last `not_before` made an instant, as (seconds, instant): deferrals share a handful
    /// of instants (the next openings), so this spares building a calendar date for each of
    /// thousands.
    last_instant: (i64, DateTime<Utc>),
}

impl Draft {
    /// An empty plan at `now_s`, with room for the deferral of each of `due` enrollments.
    pub(super) fn new(now_s: i64, due: usize) -> Self {
        let mut plan = Plan::default();
        plan.deferred.reserve(due);
        Self {
            plan,
            now_s,
            last_instant: (i64::MIN, DateTime::<Utc>::MIN_UTC),
        }
    }

    /// Send `entry` from the mailbox of `day` at `t`.
    pub(super) fn send(&mut self, entry: &Entry, day: &Day, t: i64) {
        self.plan.sends.push(PlannedSend {
            index: entry.idx as usize,
            enrollment: entry.enrollment,
            step: entry.step,
            mailbox: day.id,
            at: instant(t),
            local_date: day.local_date,
            limit: day.limit,
        });
    }

    /// Step 6: the pool of a sequence is full (see [`PoolFull`]).
    pub(super) fn pool_full(&mut self, full: PoolFull) {
        self.plan.pools_full.push(full);
    }

    /// Step 6: a mailbox is full (see [`MailboxFull`]).
    pub(super) fn mailbox_full(&mut self, full: MailboxFull) {
        self.plan.mailboxes_full.push(full);
    }

    /// Whether the enrollment of `entry` was just deferred for want of a mailbox's room:
    /// capacity, or open time.
    pub(super) fn deferred_for_room(&self, entry: &Entry) -> bool {
        self.plan.deferred.last().is_some_and(|d| {
            d.index == entry.idx as usize
                && matches!(
                    d.reason,
                    DeferralReason::NoCapacity | DeferralReason::OutsideMailboxWindow
                )
        })
    }

    /// Cancel the planned send `send`, whose slot a follow-up takes.
    pub(super) fn preempt(&mut self, send: SendId) {
        self.plan.preempt.push(send);
    }

    /// Step 5: defer the `index`-th due enrollment for `reason` until `not_before` (`None`:
    /// until an event, such as a resume), and never before the next second: a deferral must
    /// not be looked at again at once.
    pub(super) fn defer(
        &mut self,
        index: usize,
        enrollment: EnrollmentId,
        reason: DeferralReason,
        not_before: Option<i64>,
    ) {
        let not_before = not_before.map(|t| self.instant(t.max(self.now_s + 1)));
        self.plan.deferred.push(Deferred {
            index,
            enrollment,
            reason,
            not_before,
        });
    }

    /// [`Draft::defer`] the enrollment of `entry`.
    pub(super) fn defer_entry(
        &mut self,
        entry: &Entry,
        reason: DeferralReason,
        not_before: Option<i64>,
    ) {
        self.defer(entry.idx as usize, entry.enrollment, reason, not_before);
    }

    /// The instant `t` seconds after the epoch, remembered for the next deferral.
    fn instant(&mut self, t: i64) -> DateTime<Utc> {
        let (seen, at) = self.last_instant;
        if seen == t {
            return at;
        }
        let at = instant(t);
        self.last_instant = (t, at);
        at
    }

    /// The plan: its sends in time order, and the capacity they reserve per mailbox-day.
    pub(super) fn finish(self) -> Plan {
        let mut plan = self.plan;
        plan.reservations = reservations(&plan.sends);
        plan.sends.sort_unstable_by_key(|s| (s.at, s.mailbox));
        plan
    }
}

/// The capacity `sends` reserve, per mailbox-day, in (mailbox, local date) order.
pub(super) fn reservations(sends: &[PlannedSend]) -> Vec<Reservation> {
    let mut per_day: HashMap<(MailboxId, NaiveDate), (u32, u32)> = HashMap::default();
    for s in sends {
        let e = per_day
            .entry((s.mailbox, s.local_date))
            .or_insert((0, s.limit));
        e.0 += 1;
    }
    let mut reservations: Vec<Reservation> = per_day
        .into_iter()
        .map(|((mailbox, local_date), (count, limit))| Reservation {
            mailbox,
            local_date,
            count,
            limit,
        })
        .collect();
    reservations.sort_unstable_by_key(|r| (r.mailbox, r.local_date));
    reservations
}
