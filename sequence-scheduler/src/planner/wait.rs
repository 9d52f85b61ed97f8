//! Step 6 of the module docs: the sequences whose pool the plan leaves full.

use super::{instant, Planner, PoolFull};

impl Planner<'_> {
    /// Step 6: for each sequence of `ran_out` (by index: its pool ran out of room for some
    /// enrollment), a [`PoolFull`] when every active mailbox of its pool is full for its
    /// current local day once the plan is made, until the first of them opens again. None
    /// when no mailbox of the pool is active (those enrollments are parked instead) or none
    /// ever opens again.
    pub(super) fn wait_for_full_pools(&mut self, ran_out: &[u32]) {
        for &seq in ran_out {
            let Some(policy) = self.input.sequences.get(seq as usize) else {
                continue;
            };
            let mut until: Option<i64> = None;
            let mut full = true;
            let mut any_active = false;
            for id in &policy.pool {
                let Some(day) = self
                    .mailbox_index
                    .get(id)
                    .and_then(|&i| self.days.get(i as usize))
                else {
                    continue;
                };
                if !day.active {
                    continue;
                }
                any_active = true;
                if day.used < day.limit && !day.free.is_empty() {
                    full = false;
                    break;
                }
                if let Some(open) = day.next_day_open {
                    until = Some(until.map_or(open, |u| u.min(open)));
                }
            }
            if let (true, true, Some(until)) = (full, any_active, until) {
                if until > self.now_s {
                    self.out.pool_full(PoolFull {
                        sequence: policy.id,
                        until: instant(until),
                    });
                }
            }
        }
    }
}
