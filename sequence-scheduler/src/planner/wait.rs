//! Step 6 of the module docs: the sequences whose pool the plan leaves full.

use super::day::Day;
use super::{instant, MailboxFull, Planner, PoolFull};

impl Planner<'_> {
    /// Step 6: for each sequence of `ran_out` (by index: its pool ran out of room for some
    /// enrollment), a [`PoolFull`] when every active mailbox of its pool is full for its
    /// current local day once the plan is made (or holds its follow-ups back), until the first
    /// of them opens again (or its wait ends). None
    /// when no mailbox of the pool is active (those enrollments are parked instead) or none
    /// ever opens again.
    pub(super) fn wait_for_full_pools(&mut self, ran_out: &[u32]) {
        for &seq in ran_out {
            let Some(policy) = self.input.sequences.get(seq as usize) else {
                continue;
            };
            let active: Vec<&Day> = policy
                .pool
                .iter()
                .filter_map(|id| self.mailbox_index.get(id))
                .filter_map(|&i| self.days.get(i as usize))
                .filter(|day| day.active)
                .collect();
            // A mailbox holding its follow-ups back is closed to the pool until its wait ends.
            let closed = |day: &&Day| day.is_full() || day.held_until.is_some();
            if active.is_empty() || !active.iter().all(closed) {
                continue;
            }
            let Some(until) = active.iter().filter_map(|day| day.reopens_to_pool()).min() else {
                continue;
            };
            if until > self.now_s {
                self.out.pool_full(PoolFull {
                    sequence: policy.id,
                    until: instant(until),
                });
            }
        }
    }

    /// Step 6, for sticky enrollments: for each mailbox of `ran_out` (by index: a sticky
    /// enrollment found no room on it), a [`MailboxFull`] when it is active and full for its
    /// current local day once the plan is made, with no planned new start left that a
    /// follow-up could take over, until it opens again.
    pub(super) fn wait_for_full_mailboxes(&mut self, ran_out: &[u32]) {
        for &mb in ran_out {
            let Some(day) = self.days.get(mb as usize) else {
                continue;
            };
            if !day.active || !day.is_full() || !day.movable.is_empty() {
                continue;
            }
            if let Some(until) = day.next_day_open.filter(|&t| t > self.now_s) {
                let full = MailboxFull {
                    mailbox: day.id,
                    until: instant(until),
                    holds_due_by: None,
                };
                self.out.mailbox_full(full);
            }
        }
    }
}
