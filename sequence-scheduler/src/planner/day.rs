//! Step 1 of the module docs: each mailbox's current local day ([`Day`]), as the planner
//! measures it and then fills it.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use sequence_core::ids::{MailboxId, SendId};
use sequence_core::mailbox::MailboxStatus;
use sequence_core::store::MailboxSnapshot;
use sequence_core::time::{local_date, local_day_bounds};

use crate::rng::mix;

use super::intervals::{carve, fit_count, intersect, Packing};
use super::order::Entry;
use super::{instant, secs, Planner, NONE};

impl Planner<'_> {
    /// Step 1: measure each mailbox's current local day.
    pub(super) fn measure_days(&mut self) {
        for snap in self.input.mailboxes {
            let index = u32::try_from(self.days.len()).unwrap_or(NONE);
            self.mailbox_index.insert(snap.mailbox.id, index);
            self.days
                .push(Day::measure(snap, self.now, self.config.seed));
        }
    }
}

/// Per-mailbox facts for the current local day, in seconds since the epoch.
pub(super) struct Day {
    pub(super) id: MailboxId,
    pub(super) zone: Tz,
    /// Whether the mailbox sends (neither paused nor suspended).
    pub(super) active: bool,
    pub(super) local_date: NaiveDate,
    /// Its daily limit on that date.
    pub(super) limit: u32,
    /// The minimum gap between two of its sends, in seconds.
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
    /// Attempts made plus sends reserved today, counting those this plan assigns.
    pub(super) used: u32,
    /// Breaks ties between mailboxes of equal load (seeded).
    pub(super) tie: u64,
    /// How many sends this plan has given it: a heap item with an older stamp holds a stale
    /// load key.
    pub(super) stamp: u32,
    /// While the mailbox's wait holds its follow-ups back, when it ends: until then it takes
    /// no enrollment from a pool (`MailboxSnapshot::held_until`).
    pub(super) held_until: Option<i64>,
}

impl Day {
    /// The current local day of the mailbox of `snap`, a snapshot taken at `now`; `seed`
    /// breaks ties between mailboxes.
    fn measure(snap: &MailboxSnapshot, now: DateTime<Utc>, seed: u64) -> Self {
        let now_s = secs(now);
        let m = &snap.mailbox;
        let tz = m.timezone;
        let (_, day_end) = local_day_bounds(tz, snap.local_date);
        let limit = m.limit_on(snap.local_date);
        let gap = i64::from(m.min_gap_seconds);
        let active = m.status() == MailboxStatus::Active;
        let floor = snap
            .last_attempt_at
            .map_or(now_s, |t| (secs(t) + gap).max(now_s));
        let open: Vec<(i64, i64)> = if day_end > now && active {
            m.schedule
                .open_intervals(tz, instant(floor).max(now), day_end)
                .into_iter()
                .map(|(s, e)| (secs(s), secs(e)))
                .collect()
        } else {
            Vec::new()
        };
        let mut taken: Vec<i64> = snap.planned.iter().map(|p| secs(p.at)).collect();
        taken.sort_unstable();
        let free = carve(&open, &taken, gap);
        let remaining = limit.saturating_sub(snap.used);
        let fits = u32::try_from(fit_count(&free, gap)).unwrap_or(u32::MAX);
        let mut movable: Vec<(i64, SendId)> = snap
            .planned
            .iter()
            .filter(|p| p.step == 0 && p.at > now)
            .map(|p| (secs(p.at), p.send))
            .collect();
        movable.sort_unstable();
        let next_day_open = m.schedule.next_open(tz, day_end).map(secs);
        let next_day_limit = next_day_open.map_or(0, |t| m.limit_on(local_date(tz, instant(t))));
        Self {
            id: m.id,
            zone: tz,
            active,
            local_date: snap.local_date,
            limit,
            gap,
            cap_left: if active && !free.is_empty() {
                remaining
            } else {
                0
            },
            unres_fits: u64::from(fits),
            unreserved: carve(&free, &[], gap),
            free,
            runs: open,
            reserved: Vec::new(),
            placed: Vec::new(),
            assigned: Vec::new(),
            movable,
            next_day_open,
            next_day_limit,
            used: snap.used,
            tie: mix(seed, m.id.0.as_u128() as u64),
            stamp: 0,
            held_until: snap.held_until.map(secs).filter(|&t| t > now_s),
        }
    }

    /// Whether the day can take no more send at all: its limit is reached or no open time is
    /// left.
    pub(super) fn is_full(&self) -> bool {
        self.used >= self.limit || self.free.is_empty()
    }

    /// Whether it takes an enrollment from a pool in this plan: active, with capacity left,
    /// and not holding its follow-ups back.
    pub(super) fn takes_from_pool(&self) -> bool {
        self.cap_left > 0 && self.held_until.is_none()
    }

    /// When a pool that finds this day closed to it may look again: when the wait holding
    /// its follow-ups ends, or when its next day opens.
    pub(super) fn reopens_to_pool(&self) -> Option<i64> {
        match (self.held_until, self.next_day_open) {
            (Some(h), Some(n)) => Some(h.min(n)),
            (h, n) => h.or(n),
        }
    }

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

    /// Take one more send, with business hours, at `t` (found by [`Day::find_reserved`]).
    pub(super) fn reserve(&mut self, item: Entry, t: i64) {
        let at = self.reserved.partition_point(|&x| x < t);
        self.reserved.insert(at, t);
        self.placed.push((item, t));
        self.unreserved = carve(&self.free, &self.reserved, self.gap);
        self.unres_fits = fit_count(&self.unreserved, self.gap);
        self.take();
    }

    /// Take one more send without business hours: it is timed with the rest (step 4).
    pub(super) fn assign(&mut self, item: Entry) {
        self.assigned.push(item);
        self.take();
    }

    /// Count one more send against today's capacity.
    fn take(&mut self) {
        self.cap_left -= 1;
        self.used += 1;
        self.stamp += 1;
    }

    /// How loaded the mailbox is today: used / limit, fixed point.
    pub(super) fn load_key(&self) -> u64 {
        let used = u64::from(self.used);
        let limit = u64::from(self.limit.max(1));
        (used << 24) / limit
    }
}
