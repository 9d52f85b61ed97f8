//! Step 3 of the module docs: a mailbox for each due enrollment, in priority order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap as HashMap;

use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::MailboxId;

use super::day::Day;
use super::hours::{MAILBOX_ZONE, NO_HOURS};
use super::order::{Entry, Order, FOLLOW_UP, NEW, NO_SNAPSHOT};
use super::{secs, Planner, PlanningInput, SequencePolicy, NONE};

/// A pool mailbox in a heap, least loaded first: (load key, tie, mailbox, its stamp when the
/// load key was read).
type HeapItem = (u64, u64, u32, u32);

/// The mailboxes of a pool by load.
type Heap = BinaryHeap<Reverse<HeapItem>>;

/// The mailbox an enrollment takes capacity on, and its instant when it has business hours
/// (else it is timed with the rest, in step 4).
type Choice = (u32, Option<i64>);

/// Today's counts that the per-sequence and per-domain caps read, as this plan adds to them.
pub(super) struct Caps {
    /// New enrollments started today, per sequence.
    new_starts: Vec<u32>,
    /// Attempts today per numbered (tenant, recipient domain) (see [`Entry::domain`]).
    pub(super) per_domain: Vec<u32>,
    /// When both counts start again from zero: the next UTC midnight, in seconds.
    next_utc_midnight: i64,
}

impl Caps {
    /// The counts of `input` at `now` (the domains are numbered, and counted, in step 2).
    pub(super) fn new(now: DateTime<Utc>, input: &PlanningInput<'_>) -> Self {
        let next_utc_midnight = {
            let d = now.date_naive().succ_opt().unwrap_or(now.date_naive());
            d.and_hms_opt(0, 0, 0)
                .map_or(secs(now) + 86_400, |t| t.and_utc().timestamp())
        };
        Self {
            new_starts: input
                .sequences
                .iter()
                .map(|s| input.counts.new_starts.get(&s.id).copied().unwrap_or(0))
                .collect(),
            per_domain: Vec::new(),
            next_utc_midnight,
        }
    }

    /// The cap that `entry`, of `class` and of the sequence `seq` (whose policy is `policy`),
    /// has reached, if any.
    fn reached(
        &self,
        policy: &SequencePolicy,
        class: u32,
        seq: u32,
        entry: &Entry,
    ) -> Option<DeferralReason> {
        if class == NEW {
            if let Some(cap) = policy.new_enrollments_per_day {
                if self.new_starts[seq as usize] >= cap {
                    return Some(DeferralReason::NewEnrollmentCapReached);
                }
            }
        }
        if let Some(cap) = policy.per_domain_daily_cap {
            let count = self
                .per_domain
                .get(entry.domain as usize)
                .copied()
                .unwrap_or(0);
            if count >= cap {
                return Some(DeferralReason::RecipientDomainCapReached);
            }
        }
        None
    }

    /// Count the send of `entry`, of `class` and of the sequence `seq`.
    fn count(&mut self, entry: &Entry, class: u32, seq: u32) {
        if class == NEW {
            self.new_starts[seq as usize] += 1;
        }
        if let Some(c) = self.per_domain.get_mut(entry.domain as usize) {
            *c += 1;
        }
    }
}

/// The sequences' pools, and what the assignment learns of them as it goes.
struct Pools {
    /// Each sequence's pool mailboxes, as indices among the days.
    members: Vec<Vec<u32>>,
    /// Heaps of pool mailboxes by load, per (sequence, recipient hours).
    heaps: HashMap<(u32, u32), Heap>,
    /// Per (sequence, recipient hours) whose pool found no room today: why, and the first
    /// instant at which a pool mailbox that can take them opens.
    exhausted: HashMap<(u32, u32), (DeferralReason, Option<i64>)>,
}

impl Pools {
    /// The pools of `sequences`, whose mailboxes `mailbox_index` numbers.
    fn new(sequences: &[SequencePolicy], mailbox_index: &HashMap<MailboxId, u32>) -> Self {
        Self {
            members: sequences
                .iter()
                .map(|s| {
                    s.pool
                        .iter()
                        .filter_map(|m| mailbox_index.get(m).copied())
                        .collect()
                })
                .collect(),
            heaps: HashMap::default(),
            exhausted: HashMap::default(),
        }
    }
}

/// A heap of the mailboxes of `pool` that have capacity left today.
fn heap_of(pool: &[u32], days: &[Day]) -> Heap {
    let mut h = Heap::new();
    for &mb in pool {
        let d = &days[mb as usize];
        if d.takes_from_pool() {
            h.push(Reverse((d.load_key(), d.tie, mb, d.stamp)));
        }
    }
    h
}

impl Planner<'_> {
    /// Step 3: assign each enrollment, in priority order, a mailbox: its sticky mailbox while
    /// that is active, else the least-loaded mailbox of its sequence's pool that can take it;
    /// or defer it. Returns the sequences (by index) whose pool ran out of room for some
    /// enrollment, and the mailboxes (by index) that ran out of room for some enrollment
    /// sticky to them.
    pub(super) fn assign(&mut self, order: &Order) -> (Vec<u32>, Vec<u32>) {
        let sequences = self.input.sequences;
        let mut pools = Pools::new(sequences, &self.mailbox_index);
        // Per mailbox (by index), whether a sticky enrollment found no room on it.
        let mut sticky_ran_out = vec![false; self.days.len()];
        for (class, seq, entry) in order.iter() {
            let policy = &sequences[seq as usize];
            if let Some(reason) = self.caps.reached(policy, class, seq, entry) {
                let lifts = self.caps.next_utc_midnight;
                self.out.defer_entry(entry, reason, Some(lifts));
                continue;
            }
            let sticky = (entry.sticky < NO_SNAPSHOT).then_some(entry.sticky);
            let choice = match sticky.filter(|&mb| self.days[mb as usize].active) {
                Some(mb) => {
                    let choice = self.assign_sticky(entry, class, seq, mb);
                    if choice.is_none() && self.out.deferred_for_room(entry) {
                        if let Some(seen) = sticky_ran_out.get_mut(mb as usize) {
                            *seen = true;
                        }
                    }
                    choice
                }
                // A new enrollment, or a sticky mailbox that is paused: least-loaded of the pool.
                None => self.assign_from_pool(&mut pools, entry, seq),
            };
            if let Some((mb, at)) = choice {
                self.take(entry, class, seq, mb, at);
            }
        }
        let mut ran_out: Vec<u32> = pools.exhausted.keys().map(|&(seq, _)| seq).collect();
        ran_out.sort_unstable();
        ran_out.dedup();
        let sticky_ran_out = (0_u32..)
            .zip(sticky_ran_out)
            .filter_map(|(mb, ran_out)| ran_out.then_some(mb))
            .collect();
        (ran_out, sticky_ran_out)
    }

    /// The sticky mailbox `mb` (active) for `entry`, of `class` and of the sequence `seq`;
    /// `None` when that settles it without taking capacity (a slot taken over, or deferred).
    fn assign_sticky(&mut self, entry: &Entry, class: u32, seq: u32, mb: u32) -> Option<Choice> {
        let allowed = self
            .hours
            .meet(entry.hours, seq, mb, &self.days[mb as usize]);
        // When the day has no room left for it, a follow-up takes over the earliest planned
        // new-enrollment slot it can use: capacity moves from one to the other, and the new
        // start waits (rule 8). With room, both go, and step 4 gives the follow-up the slot
        // of a new start planned before its own instant (`Day::take_over_before`).
        let follow_up = class == FOLLOW_UP;
        let day = &self.days[mb as usize];
        let next_day = day.next_day_open.or(Some(self.recheck));
        if day.cap_left == 0 {
            let reason = if day.limit > day.used {
                DeferralReason::OutsideMailboxWindow
            } else {
                DeferralReason::NoCapacity
            };
            if !(follow_up && self.take_over_slot(entry, seq, mb, i64::MAX)) {
                self.out.defer_entry(entry, reason, next_day);
            }
            return None;
        }
        if entry.hours != NO_HOURS {
            let found = if allowed == Some(false) {
                None
            } else {
                self.hours
                    .list(entry.hours, seq, day.zone)
                    .and_then(|list| day.find_reserved(list, entry.earliest))
            };
            if let Some(t) = found {
                // A new start planned between the follow-up's earliest instant and `t`, in its
                // hours, would go out while it waits: the follow-up takes that slot instead.
                if follow_up && self.take_over_slot(entry, seq, mb, t) {
                    return None;
                }
                return Some((mb, Some(t)));
            }
            let nb = self.hours.next_open(entry.hours, seq, day);
            if !(follow_up && self.take_over_slot(entry, seq, mb, i64::MAX)) {
                let reason = DeferralReason::OutsideRecipientWindow;
                self.out
                    .defer_entry(entry, reason, Some(nb.max(self.now_s + 60)));
            }
            None
        } else if day.takes_unrestricted() {
            Some((mb, None))
        } else {
            if !(follow_up && self.take_over_slot(entry, seq, mb, i64::MAX)) {
                self.out
                    .defer_entry(entry, DeferralReason::NoCapacity, next_day);
            }
            None
        }
    }

    /// Give the follow-up `entry`, of the sequence `seq`, the earliest planned new-enrollment
    /// slot on `mb` before `before` that it can use (at or after its earliest instant, in its
    /// business hours), pre-empting that send; it is timed there in step 4, with the day's
    /// other sends. Whether there was one.
    fn take_over_slot(&mut self, entry: &Entry, seq: u32, mb: u32, before: i64) -> bool {
        let item = self.on_mailbox(entry, seq, mb);
        let day = &mut self.days[mb as usize];
        let hours = self.hours.list(item.hours, seq, day.zone);
        match day.take_over(hours, before, item.earliest, &mut self.out) {
            Some(t) => {
                day.placed.push((item, t));
                true
            }
            None => false,
        }
    }

    /// The least-loaded mailbox of the pool of `seq` that can take `entry`; `None` when it is
    /// deferred instead.
    fn assign_from_pool(&mut self, pools: &mut Pools, entry: &Entry, seq: u32) -> Option<Choice> {
        let pool = &pools.members[seq as usize];
        if !pool.iter().any(|&mb| self.days[mb as usize].active) {
            let reason = if entry.sticky != NONE {
                DeferralReason::MailboxPaused
            } else {
                DeferralReason::NoActiveMailboxInPool
            };
            // Parked: only a mailbox resumed, or a pool changed, can change the answer,
            // and the engine wakes these when that happens. Looking again every few
            // minutes through a long pause would re-plan them all, again and again.
            self.out.defer_entry(entry, reason, None);
            return None;
        }
        let key = (seq, entry.hours);
        if let Some(&(reason, first_open)) = pools.exhausted.get(&key) {
            self.out
                .defer_entry(entry, reason, first_open.or(Some(self.recheck)));
            return None;
        }
        let days = &self.days;
        let heap = pools
            .heaps
            .entry(key)
            .or_insert_with(|| heap_of(pool, days));
        if let Some((item, at)) = self.pick(heap, entry, seq) {
            heap.push(Reverse(item));
            return Some((item.2, at));
        }
        // Every pool mailbox is full (or closed) for this key today.
        let (reason, first_open) = self.pool_closed(pool, entry.hours != NO_HOURS);
        pools.exhausted.insert(key, (reason, first_open));
        self.out
            .defer_entry(entry, reason, first_open.or(Some(self.recheck)));
        None
    }

    /// Pop `heap` down to the least-loaded mailbox that can take `entry`, of the sequence
    /// `seq`, today: its heap item, and the instant `entry` takes there when it has business
    /// hours. On the way, a mailbox whose load has changed goes back in with its new load; one
    /// that cannot take `entry` leaves the heap, which serves only enrollments like it.
    fn pick(
        &mut self,
        heap: &mut Heap,
        entry: &Entry,
        seq: u32,
    ) -> Option<(HeapItem, Option<i64>)> {
        while let Some(Reverse(item)) = heap.pop() {
            let (_, _, mb, stamp) = item;
            let d = &self.days[mb as usize];
            if !d.takes_from_pool() {
                continue;
            }
            if stamp != d.stamp {
                heap.push(Reverse((d.load_key(), d.tie, mb, d.stamp)));
                continue;
            }
            if self.hours.meet(entry.hours, seq, mb, d) == Some(false) {
                // Never usable for this key today: drop it from this heap.
                continue;
            }
            if entry.hours != NO_HOURS {
                let found = self
                    .hours
                    .list(entry.hours, seq, d.zone)
                    .and_then(|list| d.find_reserved(list, entry.earliest));
                match found {
                    Some(t) => return Some((item, Some(t))),
                    // No room left in these hours on this mailbox today.
                    None => continue,
                }
            }
            if d.takes_unrestricted() {
                return Some((item, None));
            }
        }
        None
    }

    /// Why no mailbox of `pool` can take an enrollment (with business hours when
    /// `restricted`) today, and when they are all looked at again: when the first pool
    /// mailbox that can take them opens (one whose next day has a limit above zero), not a
    /// later one, so that whichever zone opens first, its capacity goes to the backlog.
    fn pool_closed(&self, pool: &[u32], restricted: bool) -> (DeferralReason, Option<i64>) {
        let days = &self.days;
        let mut outside = true;
        let mut first_open: Option<i64> = None;
        let mut first_any: Option<i64> = None;
        for &mb in pool {
            let d = &days[mb as usize];
            if !d.active {
                continue;
            }
            if d.limit > d.used && !d.free.is_empty() {
                outside = false;
            }
            if let Some(c) = d.next_day_open {
                first_any = Some(first_any.map_or(c, |f| f.min(c)));
                if d.next_day_limit > 0 {
                    first_open = Some(first_open.map_or(c, |f| f.min(c)));
                }
            }
            // A mailbox holding its follow-ups back takes from the pool again when its wait
            // ends, if it has room then.
            if let Some(h) = d.held_until.filter(|_| d.limit > d.used) {
                first_open = Some(first_open.map_or(h, |f| f.min(h)));
            }
        }
        let first_open = first_open.or(first_any);
        let reason = if restricted && !outside {
            DeferralReason::OutsideRecipientWindow
        } else if outside
            && pool
                .iter()
                .any(|&mb| days[mb as usize].limit > days[mb as usize].used)
        {
            DeferralReason::OutsideMailboxWindow
        } else {
            DeferralReason::NoCapacity
        };
        (reason, first_open)
    }

    /// `entry`, of the sequence `seq`, as it goes on `mb`: business hours in the mailbox's
    /// zone are known now that the mailbox is (step 4 reads them).
    fn on_mailbox(&mut self, entry: &Entry, seq: u32, mb: u32) -> Entry {
        let mut item = *entry;
        if item.hours == MAILBOX_ZONE {
            item.hours = self.hours.of(seq, self.days[mb as usize].zone);
        }
        item
    }

    /// Take capacity on `mb` for `entry`, of `class` and of the sequence `seq`: at `at` when
    /// it has business hours, else among the sends timed in step 4; and count it against
    /// the caps.
    fn take(&mut self, entry: &Entry, class: u32, seq: u32, mb: u32, at: Option<i64>) {
        let item = self.on_mailbox(entry, seq, mb);
        let day = &mut self.days[mb as usize];
        match at {
            Some(t) => day.reserve(item, t),
            None => day.assign(item),
        }
        self.caps.count(entry, class, seq);
    }
}
