//! Step 4 of the module docs: an instant for each send a mailbox was assigned without one.

use chrono::Datelike;

use sequence_core::enrollment::DeferralReason;

use crate::rng::mix;

use super::day::Day;
use super::draft::Draft;
use super::hours::{is_allowed, Hours, NO_HOURS};
use super::intervals::carve;
use super::order::Entry;
use super::spread::spread_over_runs;
use super::Planner;

impl Planner<'_> {
    /// Step 4: time each mailbox's assigned sends, and add every send to the plan.
    pub(super) fn time(&mut self) {
        for day in &mut self.days {
            // A send that finds no instant today waits for the next local day to open (an
            // hour, when none opens).
            let next_day = day.next_day_open.unwrap_or(self.now_s + 3600);
            let timed = day.time(&mut self.out, self.config.jitter, next_day);
            for (entry, t) in follow_ups_first(timed, &self.hours) {
                self.out.send(&entry, day, t);
            }
        }
    }
}

/// Rule 8 within one mailbox's day: a new start timed before a follow-up that is due by
/// then and may go then (its business hours) gives its instant to that follow-up and takes
/// the follow-up's, when its own business hours allow. The instants stay the same, so gaps,
/// spread and capacity do too. Sends at business-hour instants are placed at the earliest
/// they fit and the rest spread over the day, so without this a new start placed early
/// could go out while a follow-up spread later waited.
///
/// One pass can leave a pair to trade (a start that took a later instant in a trade may now
/// sit before a follow-up it could not reach before), so passes repeat until one trades
/// nothing. Each trade moves a follow-up to a strictly earlier instant, so they end.
fn follow_ups_first(mut timed: Vec<(Entry, i64)>, hours: &Hours<'_>) -> Vec<(Entry, i64)> {
    timed.sort_by_key(|&(_, t)| t);
    while trade_pass(&mut timed, hours) {}
    timed
}

/// One pass of [`follow_ups_first`] over `timed` (in time order): each new start, in order,
/// trades with the first follow-up after it that it can trade with. Whether any did.
fn trade_pass(timed: &mut [(Entry, i64)], hours: &Hours<'_>) -> bool {
    let allowed_at = |entry: &Entry, t: i64| is_allowed(hours.resolved(entry.hours), t);
    // Where the follow-ups are, in time order: a new start looks only at those after it.
    let mut follow_ups: Vec<usize> = (0..timed.len()).filter(|&i| timed[i].0.step != 0).collect();
    let mut traded = false;
    for i in 0..timed.len() {
        let (start, s) = timed[i];
        if start.step != 0 {
            continue;
        }
        let after = follow_ups.partition_point(|&j| j <= i);
        if after == follow_ups.len() {
            break;
        }
        let trade = follow_ups[after..].iter().position(|&j| {
            let (f, t) = &timed[j];
            *t > s && f.earliest <= s && allowed_at(f, s) && allowed_at(&start, *t)
        });
        if let Some(k) = trade {
            let j = follow_ups.remove(after + k);
            follow_ups.insert(after, i);
            timed[i].0 = timed[j].0;
            timed[j].0 = start;
            traded = true;
        }
    }
    traded
}

impl Day {
    /// This day's sends: those with business hours at the instants they took, the rest at
    /// instants spread over the runs of open time (`jitter` as
    /// [`PlannerConfig::jitter`](super::PlannerConfig::jitter)), in priority order; one that
    /// finds no instant is deferred until `next_day`, and one that takes over a planned new
    /// start's slot is added to `out` at once.
    fn time(&mut self, out: &mut Draft, jitter: f64, next_day: i64) -> Vec<(Entry, i64)> {
        let mut timed: Vec<(Entry, i64)> = std::mem::take(&mut self.placed);
        if self.assigned.is_empty() {
            return timed;
        }
        let day_seed = mix(
            self.tie,
            u64::try_from(self.local_date.num_days_from_ce()).unwrap_or(0),
        );
        let seed = mix(day_seed, u64::from(self.used));
        let rest = std::mem::take(&mut self.assigned);
        let mut occupied: Vec<i64> = self.reserved.clone();
        let points = spread_over_runs(
            &self.unreserved,
            &self.runs,
            rest.len(),
            self.gap,
            jitter,
            seed,
        );
        let placed = self.take_points(&rest, &points, &mut occupied, &mut timed, out);
        for (entry, _) in rest.iter().zip(placed).filter(|&(_, placed)| !placed) {
            self.place_late(entry, &mut occupied, &mut timed, out, next_day);
        }
        timed
    }

    /// Give the `points` (in time order) to `rest` (in priority order): each point goes to
    /// the first entry due by then; an entry not yet due at a point waits for a later one.
    /// Which entries got a point.
    fn take_points(
        &mut self,
        rest: &[Entry],
        points: &[i64],
        occupied: &mut Vec<i64>,
        timed: &mut Vec<(Entry, i64)>,
        out: &mut Draft,
    ) -> Vec<bool> {
        let mut placed = vec![false; rest.len()];
        // Skips the placed front of the list.
        let mut first = 0;
        for &t in points {
            while first < rest.len() && placed[first] {
                first += 1;
            }
            if let Some(j) = (first..rest.len()).find(|&j| !placed[j] && rest[j].earliest <= t) {
                placed[j] = true;
                self.time_at(&rest[j], t, occupied, timed, out);
            }
        }
        placed
    }

    /// Send `entry`, which no point suited (due later than the points), at the first free
    /// instant after its earliest, away from every other send (`occupied`); or, when there
    /// is none, give its capacity back and defer it until `next_day`.
    fn place_late(
        &mut self,
        entry: &Entry,
        occupied: &mut Vec<i64>,
        timed: &mut Vec<(Entry, i64)>,
        out: &mut Draft,
        next_day: i64,
    ) {
        occupied.sort_unstable();
        let usable = carve(&self.free, occupied, self.gap);
        let slot = usable.iter().find_map(|&(s, e)| {
            let t = s.max(entry.earliest);
            (t < e).then_some(t)
        });
        if let Some(t) = slot {
            self.time_at(entry, t, occupied, timed, out);
        } else {
            self.used -= 1;
            out.defer_entry(entry, DeferralReason::NoCapacity, Some(next_day));
        }
    }

    /// Time `entry` at `t`, or in the planned new start's slot it takes over instead
    /// ([`Day::take_over_before`]); only an instant of its own is `occupied`.
    fn time_at(
        &mut self,
        entry: &Entry,
        t: i64,
        occupied: &mut Vec<i64>,
        timed: &mut Vec<(Entry, i64)>,
        out: &mut Draft,
    ) {
        match self.take_over_before(entry, t, out) {
            Some(slot) => timed.push((*entry, slot)),
            None => {
                occupied.push(t);
                timed.push((*entry, t));
            }
        }
    }

    /// Rule 8 for a follow-up `entry` the day has room for, timed at `t`: when a new start is
    /// planned on this mailbox before `t` but after the follow-up is due, the follow-up takes
    /// that slot instead (the new start is pre-empted, and planned again into the room the
    /// follow-up leaves), so no new start goes out while a follow-up waits. The slot it took,
    /// if it did. Only for a follow-up without business hours: one with them took its
    /// instant already.
    fn take_over_before(&mut self, entry: &Entry, t: i64, out: &mut Draft) -> Option<i64> {
        if entry.step == 0 || entry.hours != NO_HOURS {
            return None;
        }
        self.take_over(None, t, entry.earliest, out)
    }

    /// Pre-empt the earliest planned new start's slot on this day at or after `earliest`,
    /// before `before` and inside `allowed` (business hours; `None`: any instant), for a
    /// follow-up to take: the slot, if there was one. The caller times the follow-up there,
    /// among the day's other sends, so that rule 8 within the day sees it too
    /// ([`follow_ups_first`]).
    pub(super) fn take_over(
        &mut self,
        allowed: Option<&[(i64, i64)]>,
        before: i64,
        earliest: i64,
        out: &mut Draft,
    ) -> Option<i64> {
        let pos = self
            .movable
            .iter()
            .position(|&(t, _)| t >= earliest && t < before && is_allowed(allowed, t))?;
        let (t, send) = self.movable.remove(pos);
        out.preempt(send);
        Some(t)
    }
}
