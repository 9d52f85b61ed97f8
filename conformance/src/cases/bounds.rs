//! Reads bounded by the pool's room: `due_pools` names the sequences a bound can apply to,
//! and `due_enrollments_bounded` reads each bounded sequence's new starts no further than its
//! bound (see "Reads bounded by the pool's room" in `sequence_core::store`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sequence_core::enrollment::Enrollment;
use sequence_core::ids::{EnrollmentId, MailboxId, SequenceId, TenantId};
use sequence_core::store::{
    MailboxBound, MailboxWait, PlanCommit, PlanMailboxWait, PlanWait, PoolBound, PoolDaySeen,
    PoolWait, Store,
};

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
        store.due_enrollments_bounded(now, limit, bounds, &[]).await,
    )
    .iter()
    .map(|d| d.id)
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

/// The follow-up of contact `i` of `w` sticky to mailbox `mailbox`, due at minute `due`.
fn follow_up(w: &World, i: usize, mailbox: usize, due: i64) -> Enrollment {
    new_start(w, i, due).with_progress(1, Some(w.mailboxes[mailbox].id))
}

/// Bounded reads per mailbox: "for each `mailboxes` entry, all but the earliest `at_most` of
/// the due enrollments of its tenant sticky to the mailbox" are left out; new starts, other
/// mailboxes and a bound naming another tenant are not bounded; of two bounds the smaller
/// holds; pool and mailbox bounds apply together. `due_mailboxes` names the mailboxes with a
/// due follow-up sticky to them, not those a wait holds.
pub async fn a_bounded_read_takes_each_mailbox_no_further_than_its_bound<S: Store + 'static>(
    store: S,
) {
    let w = World::build(&store, 2, 30, 3, 8).await;
    // Mailbox 0: four follow-ups (minutes 0, 2, 4, 6); mailbox 1: two (1, 3); two new starts
    // (5, 7); the follow-up at minute 6 is due only then.
    let on_0: Vec<Enrollment> = (0..4).map(|i| follow_up(&w, i, 0, 2 * i as i64)).collect();
    let on_1: Vec<Enrollment> = (0..2)
        .map(|i| follow_up(&w, 4 + i, 1, 1 + 2 * i as i64))
        .collect();
    let starts: Vec<Enrollment> = (0..2)
        .map(|i| new_start(&w, 6 + i, 5 + 2 * i as i64))
        .collect();
    for rows in [&on_0, &on_1, &starts] {
        enroll(&store, w.tenant, rows).await;
    }
    let ids = |rows: &[&Enrollment]| -> Vec<EnrollmentId> { rows.iter().map(|e| e.id).collect() };
    let mb = |mailbox: usize, at_most: usize| MailboxBound {
        tenant: w.tenant,
        mailbox: w.mailboxes[mailbox].id,
        at_most,
    };
    let bounded = |pools: Vec<PoolBound>, mailboxes: Vec<MailboxBound>| {
        let store = &store;
        async move {
            ok(
                "due_enrollments_bounded",
                store
                    .due_enrollments_bounded(at(10), 100, &pools, &mailboxes)
                    .await,
            )
            .iter()
            .map(|d| d.id)
            .collect::<Vec<EnrollmentId>>()
        }
    };

    assert_eq!(
        bounded(Vec::new(), vec![mb(0, 2)]).await,
        ids(&[&on_0[0], &on_1[0], &on_0[1], &on_1[1], &starts[0], &starts[1]]),
        "a mailbox bound reads the earliest of its follow-ups, earliest first, and no other"
    );
    assert_eq!(
        bounded(Vec::new(), vec![mb(0, 3), mb(0, 1), mb(1, 0)]).await,
        ids(&[&on_0[0], &starts[0], &starts[1]]),
        "of two bounds the smaller holds; a bound of 0 reads none"
    );
    let stranger = World::build(&store, 1, 30, 1, 0).await;
    let foreign = MailboxBound {
        tenant: stranger.tenant,
        ..mb(0, 0)
    };
    assert_eq!(
        bounded(Vec::new(), vec![foreign]).await.len(),
        8,
        "a bound naming another tenant does not bound"
    );
    assert_eq!(
        bounded(vec![bound(&w, 1)], vec![mb(0, 1), mb(1, 1)]).await,
        ids(&[&on_0[0], &on_1[0], &starts[0]]),
        "pool and mailbox bounds apply together"
    );

    let due_on = |now: DateTime<Utc>| {
        let store = &store;
        let ours = [w.mailboxes[0].id, w.mailboxes[1].id];
        async move {
            let mut named: Vec<MailboxId> = ok("due_mailboxes", store.due_mailboxes(now).await)
                .into_iter()
                .filter(|(t, m)| *t == w.tenant && ours.contains(m))
                .map(|(_, m)| m)
                .collect();
            named.sort_unstable();
            named
        }
    };
    let mut both = vec![w.mailboxes[0].id, w.mailboxes[1].id];
    both.sort_unstable();
    assert_eq!(
        due_on(at(0)).await,
        vec![w.mailboxes[0].id],
        "due_mailboxes names only mailboxes with a due follow-up"
    );
    assert_eq!(
        due_on(at(1)).await,
        both,
        "due_mailboxes names each of them"
    );
    let wait = PlanMailboxWait {
        wait: MailboxWait {
            tenant: w.tenant,
            mailbox: w.mailboxes[0].id,
            until: at(600),
            holds_due_by: None,
        },
        seen: PoolDaySeen {
            mailbox: w.mailboxes[0].id,
            local_date: t0().date_naive(),
            used: 0,
        },
    };
    ok(
        "apply_plan (a mailbox wait)",
        store
            .apply_plan(
                at(2),
                PlanCommit {
                    mailbox_waits: vec![wait],
                    ..PlanCommit::default()
                },
            )
            .await,
    );
    assert_eq!(
        due_on(at(3)).await,
        vec![w.mailboxes[1].id],
        "due_mailboxes leaves out a mailbox whose wait holds"
    );
}
