//! [`Day`]: a mailbox's current local day, as the planner measures and fills it.

use chrono::NaiveDate;
use chrono_tz::Tz;

use sequence_core::ids::{MailboxId, SendId};

use super::intervals::{carve, fit_count, intersect, Packing};
use super::Entry;

/// Per-mailbox facts for the current local day, in seconds since the epoch.
pub(super) struct Day {
    pub(super) id: MailboxId,
    pub(super) zone: Tz,
    pub(super) active: bool,
    pub(super) local_date: NaiveDate,
    pub(super) limit: u32,
    pub(super) gap: i64,
    /// Open time left today, free of planned sends' gaps: `[start, end)` seconds.
    pub(super) free: Vec<(i64, i64)>,
    /// The runs of open time left today, in order, whole (not carved by planned sends).
    pub(super) runs: Vec<(i64, i64)>,
    /// Capacity left today (limit less used and assigned).
    pub(super) cap_left: u32,
    /// Instants this plan reserved for enrollments with business hours, sorted.
    pub(super) reserved: Vec<i64>,
    /// `free` away from `reserved`: the time left for one more send.
    pub(super) unreserved: Vec<(i64, i64)>,
    /// Those enrollments with their instants.
    pub(super) placed: Vec<(Entry, i64)>,
    /// How many sends `gap` apart still fit in `free` away from `reserved`.
    pub(super) unres_fits: u64,
    /// Enrollments without business hours assigned by this plan (timed at the end).
    pub(super) assigned: Vec<Entry>,
    /// Planned new-enrollment sends that a follow-up may take over: (instant, send).
    pub(super) movable: Vec<(i64, SendId)>,
    /// First instant the windows open on the next local day (for `NoCapacity`).
    pub(super) next_day_open: Option<i64>,
    /// The limit on the day of `next_day_open`.
    pub(super) next_day_limit: u32,
    /// Load key: used / limit, fixed point.
    pub(super) used: u32,
    pub(super) tie: u64,
    pub(super) stamp: u32,
}

impl Day {
    /// Whether one more send without business hours fits today.
    pub(super) fn takes_unrestricted(&self) -> bool {
        self.cap_left > 0 && self.unres_fits > self.assigned.len() as u64
    }

    /// The earliest instant at or after `earliest` inside `allowed` where one more send fits
    /// without crowding out the sends already assigned.
    ///
    /// A send at `t` closes the open time less than `gap` from it on either side, which holds
    /// at most two of any set of sends `gap` apart. So with two places to spare any free
    /// instant will do; with one to spare, `t` must belong to some largest set of sends `gap`
    /// apart (it then costs exactly its own place); with none, no instant will do.
    pub(super) fn find_reserved(&self, allowed: &[(i64, i64)], earliest: i64) -> Option<i64> {
        if self.cap_left == 0 {
            return None;
        }
        let spare = self.unres_fits.saturating_sub(self.assigned.len() as u64);
        if spare == 0 && self.gap > 0 {
            return None;
        }
        let free = &self.unreserved;
        let mut pieces = intersect(free, allowed).into_iter().filter_map(|(s, e)| {
            let s = s.max(earliest);
            (s < e).then_some((s, e))
        });
        if spare >= 2 || self.gap <= 0 {
            return pieces.next().map(|(s, _)| s);
        }
        let earliest_packing = Packing::earliest(free, self.gap);
        let latest_packing = Packing::latest(free, self.gap);
        pieces.find_map(|(a, b)| {
            // The first place whose latest position is not before `a`; its earliest
            // position is where this piece can hold it.
            let i = latest_packing.first_at_or_after(a)?;
            let t = a.max(earliest_packing.point(i)?);
            (t < b).then_some(t)
        })
    }

    pub(super) fn reserve(&mut self, item: Entry, t: i64) {
        let at = self.reserved.partition_point(|&x| x < t);
        self.reserved.insert(at, t);
        self.placed.push((item, t));
        self.unreserved = carve(&self.free, &self.reserved, self.gap);
        self.unres_fits = fit_count(&self.unreserved, self.gap);
        self.take();
    }

    pub(super) fn take(&mut self) {
        self.cap_left -= 1;
        self.used += 1;
        self.stamp += 1;
    }

    pub(super) fn load_key(&self) -> u64 {
        let used = u64::from(self.used);
        let limit = u64::from(self.limit.max(1));
        (used << 24) / limit
    }
}
