//! Reading a backlog no further than its pools can serve: before a batch is read, each
//! sequence with due new starts gets a [`PoolBound`] from the room its pool has left today,
//! a mailbox in several such pools sharing its room among them (see the store docs on
//! bounded reads). A bound that turns out short (the plan defers some of what it read for
//! the contact's hours, or gives one pool more of a shared mailbox) costs another batch,
//! never idle room: a sequence read to its bound is read again while its pool has room,
//! with a wider bound in each later batch of the tick.
//!
//! Follow-ups are read the same way per sticky mailbox: each mailbox with due follow-ups gets
//! a [`MailboxBound`] one more than its room for them (its room today plus the planned new
//! starts a follow-up may take over).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sequence_core::ids::{MailboxId, SequenceId, TenantId};
use sequence_core::sequence::{Sequence, SequenceStatus};
use sequence_core::store::{MailboxBound, MailboxSnapshot, PoolBound};

use super::{Engine, EngineError};

/// The read bound of a pool with `room` units left today, in the `batch`-th batch of a tick
/// (from 0): one more than the room, so that a full pool's plan always meets a new start it
/// has no room for and records the pool's wait; four times as much in each later batch, so
/// that a backlog the plan mostly defers for its own reasons (contacts outside their hours)
/// is still worked through in a few batches rather than one room's worth at a time.
pub(super) fn bound_for_room(room: u64, batch: u32) -> usize {
    let widen = 4_u64.saturating_pow(batch);
    usize::try_from(room.saturating_add(1).saturating_mul(widen)).unwrap_or(usize::MAX)
}

/// Each mailbox of `snapshots` with its tenant, whether it is active, and the room it has
/// left on its current local day (its limit less what is used).
fn room_by_mailbox(snapshots: &[MailboxSnapshot]) -> HashMap<MailboxId, (TenantId, bool, u64)> {
    snapshots
        .iter()
        .map(|s| {
            let m = &s.mailbox;
            let room = m.limit_on(s.local_date).saturating_sub(s.used);
            (m.id, (m.tenant, m.is_active(), u64::from(room)))
        })
        .collect()
}

/// The bounds of one batch's due read.
#[derive(Debug, Default)]
pub(super) struct ReadBounds {
    /// Per sequence with due new starts.
    pub(super) pools: Vec<PoolBound>,
    /// Per mailbox with due follow-ups.
    pub(super) mailboxes: Vec<MailboxBound>,
}

/// The room `snap`'s mailbox has for follow-ups on its current local day: its limit less
/// what is used, plus the planned new starts still ahead, which a follow-up takes over.
fn room_for_follow_ups(snap: &MailboxSnapshot, now: DateTime<Utc>) -> u64 {
    let m = &snap.mailbox;
    let room = m.limit_on(snap.local_date).saturating_sub(snap.used);
    let movable = snap
        .planned
        .iter()
        .filter(|p| p.step == 0 && p.at > now)
        .count();
    u64::from(room).saturating_add(u64::try_from(movable).unwrap_or(u64::MAX))
}

impl Engine {
    /// The bounds of the `batch`-th batch of a tick, from one read of the snapshots of the
    /// mailboxes they depend on: [`pool_bounds`] for the sequences with due new starts and
    /// [`mailbox_bounds`] for the mailboxes with due follow-ups.
    pub(super) async fn read_bounds(
        &self,
        now: DateTime<Utc>,
        batch: u32,
    ) -> Result<ReadBounds, EngineError> {
        let store = &self.inner.store;
        let due_pools: HashSet<(TenantId, SequenceId)> =
            store.due_pools(now).await?.into_iter().collect();
        let due_mailboxes = store.due_mailboxes(now).await?;
        if due_pools.is_empty() && due_mailboxes.is_empty() {
            return Ok(ReadBounds::default());
        }
        let sequences: Vec<Sequence> = if due_pools.is_empty() {
            Vec::new()
        } else {
            let ids: Vec<SequenceId> = due_pools.iter().map(|&(_, s)| s).collect();
            store
                .get_sequences(&ids)
                .await?
                .into_iter()
                .filter(|s| {
                    due_pools.contains(&(s.tenant, s.id)) && s.status() == SequenceStatus::Active
                })
                .collect()
        };
        let ids: HashSet<MailboxId> = sequences
            .iter()
            .flat_map(|s| s.mailbox_pool.iter().copied())
            .chain(due_mailboxes.iter().map(|&(_, m)| m))
            .collect();
        let ids: Vec<MailboxId> = ids.into_iter().collect();
        let snapshots = store.mailbox_snapshots(now, &ids).await?;
        Ok(ReadBounds {
            pools: pool_bounds(&sequences, &snapshots, batch),
            mailboxes: mailbox_bounds(&due_mailboxes, &snapshots, now, batch),
        })
    }
}

/// A bound for each mailbox of `due` (with due follow-ups sticky to it) that is an active
/// mailbox of its tenant, from its room for them (see [`bound_for_room`]); none for a paused
/// one (its follow-ups go to the pool).
fn mailbox_bounds(
    due: &[(TenantId, MailboxId)],
    snapshots: &[MailboxSnapshot],
    now: DateTime<Utc>,
    batch: u32,
) -> Vec<MailboxBound> {
    let by_id: HashMap<MailboxId, &MailboxSnapshot> =
        snapshots.iter().map(|s| (s.mailbox.id, s)).collect();
    due.iter()
        .filter_map(|&(tenant, mailbox)| {
            let snap = by_id.get(&mailbox)?;
            let m = &snap.mailbox;
            (m.tenant == tenant && m.is_active()).then(|| MailboxBound {
                tenant,
                mailbox,
                at_most: bound_for_room(room_for_follow_ups(snap, now), batch),
            })
        })
        .collect()
}

/// A bound for each of `sequences` (active, with due new starts), from the room its pool's
/// active mailboxes have left today, for the `batch`-th batch of the tick (see
/// [`bound_for_room`]); none for one whose pool has no active mailbox (its enrollments are
/// parked as they are read, whatever the room).
fn pool_bounds(
    sequences: &[Sequence],
    snapshots: &[MailboxSnapshot],
    batch: u32,
) -> Vec<PoolBound> {
    let room = room_by_mailbox(snapshots);
    // A mailbox in the pools of several of these sequences shares its room among them.
    let mut sharing: HashMap<MailboxId, u64> = HashMap::new();
    for s in sequences {
        for m in &s.mailbox_pool {
            *sharing.entry(*m).or_default() += 1;
        }
    }
    let share = |m: &MailboxId, tenant: TenantId| {
        let (owner, active, left) = room.get(m).copied()?;
        let k = sharing.get(m).copied().unwrap_or(1).max(1);
        (owner == tenant && active).then(|| left.div_ceil(k))
    };
    sequences
        .iter()
        .filter_map(|s| {
            let shares: Vec<u64> = s
                .mailbox_pool
                .iter()
                .filter_map(|m| share(m, s.tenant))
                .collect();
            (!shares.is_empty()).then(|| PoolBound {
                tenant: s.tenant,
                sequence: s.id,
                at_most: bound_for_room(shares.iter().sum(), batch),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_is_one_more_than_the_room_and_widens_by_batch() {
        assert_eq!(bound_for_room(0, 0), 1);
        assert_eq!(bound_for_room(760, 0), 761);
        assert_eq!(bound_for_room(760, 1), 3_044);
        assert_eq!(bound_for_room(10, 3), 704);
        assert_eq!(bound_for_room(u64::MAX, 0), usize::MAX);
        assert_eq!(bound_for_room(5, 40), usize::MAX);
    }
}
