//! Reads bounded by the pool's room: `due_pools` names the sequences a bound can apply to,
//! and `due_enrollments_bounded` reads each bounded sequence's new starts no further than its
//! bound (see "Reads bounded by the pool's room" in `sequence_core::store`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sequence_core::enrollment::Enrollment;
use sequence_core::ids::{EnrollmentId, SequenceId, TenantId};
use sequence_core::store::{PlanCommit, PlanWait, PoolBound, PoolWait, Store};

use crate::fixtures::{at, ok, t0, World};

/// Enroll `rows` as they are.
async fn enroll<S: Store + ?Sized>(store: &S, tenant: TenantId, rows: &[Enrollment]) {
    let answers = ok("enroll", store.enroll(tenant, t0(), rows.to_vec()).await);
    assert_eq!(answers.len(), rows.len(), "enroll must answer every row");
}

/// The new start of contact `i` of `w`, due at minute `due`.
fn new_start(w: &World, i: usize, due: i64) -> Enrollment {
    Enrollment::new(w.tenant, w.sequence.id, w.contacts[i].id, t0(), at(due))
}

/// The ids a bounded read answers at `now`, in its order.
async fn read<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    limit: usize,
    bounds: &[PoolBound],
) -> Vec<EnrollmentId> {
    ok(
        "due_enrollments_bounded",
        store.due_enrollments_bounded(now, limit, bounds).await,
    )
    .iter()
    .map(|d| d.enrollment.id)
    .collect()
}

/// The sequences `due_pools` names at `now`, among those of `worlds`.
async fn pools<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    worlds: &[&World],
) -> HashSet<(TenantId, SequenceId)> {
    let ours: HashSet<(TenantId, SequenceId)> =
        worlds.iter().map(|w| (w.tenant, w.sequence.id)).collect();
    ok("due_pools", store.due_pools(now).await)
        .into_iter()
        .filter(|p| ours.contains(p))
        .collect()
}

fn bound(w: &World, at_most: usize) -> PoolBound {
    PoolBound {
        tenant: w.tenant,
        sequence: w.sequence.id,
        at_most,
    }
}

/// Bounded reads: "of each bounded sequence, only the earliest `at_most` enrollments that
/// go to the pool are read"; a follow-up with a sticky mailbox, another sequence, a bound
/// naming another tenant are not bounded; of two bounds of one sequence the smaller holds;
/// `limit` still applies to the whole; the order is
/// earliest first. `due_pools` names the sequences with a due enrollment that goes to the
/// pool, not those whose only due enrollments have a sticky mailbox, nor those a wait holds.
pub async fn a_bounded_read_takes_each_pool_no_further_than_its_bound<S: Store + 'static>(
    store: S,
) {
    let a = World::build(&store, 1, 30, 2, 6).await;
    let b = World::build(&store, 1, 30, 2, 2).await;
    // A: a follow-up on its sticky mailbox due first, then five new starts; B: two new
    // starts in between.
    let sticky = new_start(&a, 5, 0).with_progress(1, Some(a.mailboxes[0].id));
    let a_starts: Vec<Enrollment> = (0..5).map(|i| new_start(&a, i, 1 + 2 * i as i64)).collect();
    let b_starts: Vec<Enrollment> = (0..2).map(|i| new_start(&b, i, 2 + 2 * i as i64)).collect();
    enroll(&store, a.tenant, std::slice::from_ref(&sticky)).await;
    enroll(&store, a.tenant, &a_starts).await;
    enroll(&store, b.tenant, &b_starts).await;
    let now = at(30);
    // Earliest first: sticky (0), a0 (1), b0 (2), a1 (3), b1 (4), a2 (5), a3 (7), a4 (9).
    let (s, a_ids, b_ids) = (
        sticky.id,
        a_starts.iter().map(|e| e.id).collect::<Vec<_>>(),
        b_starts.iter().map(|e| e.id).collect::<Vec<_>>(),
    );

    assert_eq!(
        pools(&store, t0(), &[&a, &b]).await,
        HashSet::new(),
        "a sequence whose only due enrollment has a sticky mailbox has no due pool"
    );
    assert_eq!(
        pools(&store, now, &[&a, &b]).await,
        HashSet::from([(a.tenant, a.sequence.id), (b.tenant, b.sequence.id)]),
        "due_pools must name every sequence with a due new start"
    );

    assert_eq!(
        read(&store, now, 100, &[]).await,
        vec![s, a_ids[0], b_ids[0], a_ids[1], b_ids[1], a_ids[2], a_ids[3], a_ids[4]],
        "with no bound, the bounded read is the due read"
    );
    assert_eq!(
        read(&store, now, 100, &[bound(&a, 2)]).await,
        vec![s, a_ids[0], b_ids[0], a_ids[1], b_ids[1]],
        "a bound of 2 must take the sequence's two earliest new starts, and leave its \
         sticky follow-up and the other sequence unbounded"
    );
    assert_eq!(
        read(&store, now, 100, &[bound(&a, 0), bound(&b, 1)]).await,
        vec![s, b_ids[0]],
        "a bound of 0 must take none of the sequence's new starts"
    );
    assert_eq!(
        read(&store, now, 100, &[bound(&a, 3), bound(&a, 1)]).await,
        vec![s, a_ids[0], b_ids[0], b_ids[1]],
        "a sequence named twice must be read up to the smaller bound"
    );
    assert_eq!(
        read(&store, now, 3, &[bound(&a, 2)]).await,
        vec![s, a_ids[0], b_ids[0]],
        "the limit must still apply to the whole answer"
    );
    assert_eq!(
        read(&store, at(4), 100, &[bound(&a, 10)]).await,
        vec![s, a_ids[0], b_ids[0], a_ids[1], b_ids[1]],
        "a bound above what is due must take what is due, and nothing not yet due"
    );
    let foreign = PoolBound {
        tenant: b.tenant,
        ..bound(&a, 0)
    };
    assert_eq!(
        read(&store, now, 100, &[foreign]).await.len(),
        8,
        "a bound naming the sequence with another tenant must not bound it"
    );

    let wait = PoolWait {
        tenant: a.tenant,
        sequence: a.sequence.id,
        until: at(600),
    };
    let plan = PlanCommit {
        waits: vec![PlanWait {
            wait,
            seen: Vec::new(),
        }],
        ..PlanCommit::default()
    };
    ok("apply_plan (wait)", store.apply_plan(t0(), plan).await);
    assert_eq!(
        pools(&store, now, &[&a, &b]).await,
        HashSet::from([(b.tenant, b.sequence.id)]),
        "due_pools must leave out a sequence whose wait holds"
    );
    assert_eq!(
        read(&store, now, 100, &[bound(&a, 5)]).await,
        vec![s, b_ids[0], b_ids[1]],
        "a bound must not let a held sequence's new starts through"
    );
}
