//! Pool waits: the backlog of a full pool held back from planning, and every event that
//! ends a wait early (see "Pool waits" in `sequence_core::store`).

use chrono::{DateTime, Utc};
use sequence_core::enrollment::Enrollment;
use sequence_core::ids::EnrollmentId;
use sequence_core::store::{PlanCommit, PlanSend, PlanWait, PoolDaySeen, PoolWait, Store};

use crate::fixtures::{at, contact, exit_and_call_off, mailbox, ok, some, t0, World};

/// Apply a plan at `now` of `sends` and `waits` alone (each wait having seen nothing).
async fn plan_with_waits<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    sends: Vec<PlanSend>,
    waits: Vec<PoolWait>,
) {
    let waits = waits
        .into_iter()
        .map(|wait| PlanWait {
            wait,
            seen: Vec::new(),
        })
        .collect();
    plan_with_seen_waits(store, now, sends, waits).await;
}

/// Apply a plan at `now` of `sends` and `waits` alone.
async fn plan_with_seen_waits<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    sends: Vec<PlanSend>,
    waits: Vec<PlanWait>,
) {
    ok(
        "apply_plan (waits)",
        store
            .apply_plan(
                now,
                PlanCommit {
                    sends,
                    waits,
                    ..PlanCommit::default()
                },
            )
            .await,
    );
}

/// The ids `due_enrollments` answers at `now`, in its order.
async fn due_ids<S: Store + ?Sized>(store: &S, now: DateTime<Utc>) -> Vec<EnrollmentId> {
    ok("due_enrollments", store.due_enrollments(now, 100).await)
        .iter()
        .map(|d| d.id)
        .collect()
}

/// Save the world's sequence again as it is stored.
async fn save_sequence_unchanged<S: Store + ?Sized>(store: &S, w: &World) {
    let seq = some(
        "get_sequence",
        ok(
            "get_sequence",
            store.get_sequence(w.tenant, w.sequence.id).await,
        ),
    );
    ok(
        "save_sequence",
        store.save_sequence(&seq, Some(seq.version())).await,
    );
}

/// Whether the world's sequence has a wait that holds at `now`.
async fn recorded<S: Store + ?Sized>(store: &S, w: &World, now: DateTime<Utc>) -> bool {
    ok(
        "pool_wait",
        store.pool_wait(w.tenant, w.sequence.id, now).await,
    )
    .is_some()
}

/// The wait of the world's sequence until `until`.
fn wait_of(w: &World, until: DateTime<Utc>) -> PoolWait {
    PoolWait {
        tenant: w.tenant,
        sequence: w.sequence.id,
        until,
    }
}

/// Pool waits: "While a wait holds (`now < until`), the sequence's enrollments that go to
/// the pool ... are left out of `due_enrollments`, and `next_wakeup` counts each of them at
/// the later of its due instant and the wait's `until`"; an enrollment with a sticky mailbox
/// is not held back; `pool_wait` answers the wait while it holds; a wait of a sequence of
/// another tenant is not recorded.
pub async fn a_pool_wait_holds_back_the_pools_backlog<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 2, 3).await;
    plan_with_waits(&store, t0(), Vec::new(), vec![wait_of(&w, at(1))]).await;
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        None,
        "a wait that holds nothing back must not make next_wakeup answer"
    );
    let es = w.enroll_all(&store, t0()).await;
    let other = World::build(&store, 1, 30, 1, 0).await;
    let foreign = PoolWait {
        tenant: other.tenant,
        ..wait_of(&w, at(600))
    };
    plan_with_waits(&store, t0(), Vec::new(), vec![foreign]).await;
    assert_eq!(
        due_ids(&store, at(1)).await.len(),
        3,
        "a wait naming a sequence of another tenant must not be recorded"
    );

    plan_with_waits(&store, t0(), Vec::new(), vec![wait_of(&w, at(600))]).await;
    assert_eq!(
        ok(
            "pool_wait",
            store.pool_wait(w.tenant, w.sequence.id, at(1)).await
        ),
        Some(wait_of(&w, at(600))),
        "pool_wait must answer the wait while it holds"
    );
    assert_eq!(
        ok(
            "pool_wait",
            store.pool_wait(other.tenant, w.sequence.id, at(1)).await
        ),
        None,
        "pool_wait must not answer another tenant's wait"
    );
    assert!(
        due_ids(&store, at(1)).await.is_empty(),
        "the enrollments that go to the pool must be left out while the wait holds"
    );
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        Some(at(600)),
        "next_wakeup must count a held enrollment at the wait's end"
    );
    let mut all = due_ids(&store, at(600)).await;
    all.sort_unstable();
    let mut expected: Vec<EnrollmentId> = es.iter().map(|e| e.id).collect();
    expected.sort_unstable();
    assert_eq!(
        all, expected,
        "once the wait ends, the backlog is due again"
    );
    assert_eq!(
        ok(
            "pool_wait",
            store.pool_wait(w.tenant, w.sequence.id, at(600)).await
        ),
        None,
        "pool_wait must not answer a wait that ended"
    );

    // An enrollment sending from a sticky mailbox does not go to the pool.
    let newcomer = contact(w.tenant, "sticky", "sticky.example");
    ok(
        "upsert_contacts",
        store
            .upsert_contacts(w.tenant, std::slice::from_ref(&newcomer))
            .await,
    );
    let sticky = Enrollment::new(w.tenant, w.sequence.id, newcomer.id, t0(), at(2))
        .with_progress(1, Some(w.mailboxes[0].id));
    ok(
        "enroll",
        store.enroll(w.tenant, t0(), vec![sticky.clone()]).await,
    );
    assert_eq!(
        due_ids(&store, at(3)).await,
        vec![sticky.id],
        "an enrollment with a sticky mailbox must stay due while its sequence waits"
    );
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        Some(at(2)),
        "next_wakeup must still see an enrollment the wait does not hold"
    );
}

/// Pool waits: "A wait ends early, in the same unit of work, on every event that can give
/// the pool room before `until`": a reservation released on a pool mailbox, a pool mailbox
/// saved, the sequence saved; a mailbox outside the pool saved leaves it.
pub async fn pool_waits_end_when_the_pool_may_have_room<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 1, 1, 3).await;
    let es = w.enroll_all(&store, t0()).await;
    let until = at(24 * 60);

    // A released reservation.
    plan_with_waits(
        &store,
        t0(),
        vec![w.plan_send(&es[0], 0, at(60), 1)],
        vec![wait_of(&w, until)],
    )
    .await;
    assert!(
        due_ids(&store, at(1)).await.is_empty(),
        "fixture: the wait holds"
    );
    exit_and_call_off(&store, &w, es[0].id, at(10)).await;
    let mut due = due_ids(&store, at(11)).await;
    due.sort_unstable();
    let mut rest = vec![es[1].id, es[2].id];
    rest.sort_unstable();
    assert_eq!(
        due, rest,
        "a reservation released on a pool mailbox must end the wait"
    );

    // A mailbox outside the pool saved: the wait holds; a pool mailbox saved: it ends.
    plan_with_waits(&store, at(11), Vec::new(), vec![wait_of(&w, until)]).await;
    let outside = mailbox(w.tenant, "outside", chrono_tz::UTC, 5);
    ok("save_mailbox", store.save_mailbox(&outside, None).await);
    assert!(
        due_ids(&store, at(12)).await.is_empty(),
        "saving a mailbox outside the pool must not end the wait"
    );
    let m = some(
        "get_mailbox",
        ok(
            "get_mailbox",
            store.get_mailbox(w.tenant, w.mailboxes[0].id).await,
        ),
    );
    let raised = m.clone().with_daily_limit(2);
    ok(
        "save_mailbox",
        store.save_mailbox(&raised, Some(m.version())).await,
    );
    assert!(
        !due_ids(&store, at(12)).await.is_empty(),
        "saving a pool mailbox must end the wait"
    );

    // The sequence saved.
    plan_with_waits(&store, at(12), Vec::new(), vec![wait_of(&w, until)]).await;
    assert!(
        due_ids(&store, at(13)).await.is_empty(),
        "fixture: the wait holds"
    );
    save_sequence_unchanged(&store, &w).await;
    assert!(
        !due_ids(&store, at(13)).await.is_empty(),
        "saving the sequence must end the wait"
    );
}

/// Pool waits: "the store records the wait only if no such day is used less now: else the
/// pool has room the plan did not see (a released reservation, or a send of the plan not
/// stored)".
pub async fn a_pool_wait_is_not_recorded_over_room_the_plan_did_not_see<S: Store + 'static>(
    store: S,
) {
    let w = World::build(&store, 1, 2, 1, 4).await;
    let es = w.enroll_all(&store, t0()).await;
    let wait = |used| PlanWait {
        wait: wait_of(&w, at(24 * 60)),
        seen: vec![PoolDaySeen {
            mailbox: w.mailboxes[0].id,
            local_date: t0().date_naive(),
            used,
        }],
    };
    // The plan stores one send and saw the day at 1 with it: the wait is recorded.
    let send = w.plan_send(&es[0], 0, at(60), 2);
    plan_with_seen_waits(&store, t0(), vec![send], vec![wait(1)]).await;
    assert!(
        recorded(&store, &w, at(1)).await,
        "a wait whose pool days are used as the plan saw them must be recorded"
    );
    // End it (the sequence saved), then a plan that saw the day at 2: a unit was released
    // since it read the day.
    save_sequence_unchanged(&store, &w).await;
    plan_with_seen_waits(&store, at(1), Vec::new(), vec![wait(2)]).await;
    assert!(
        !recorded(&store, &w, at(2)).await,
        "a wait whose pool day is used less than the plan saw must not be recorded"
    );
    // A plan whose own send was not stored (stale): its unit is free, the day still at 1.
    let mut stale = w.plan_send(&es[1], 0, at(90), 2);
    stale.enrollment_version += 1;
    plan_with_seen_waits(&store, at(2), vec![stale], vec![wait(2)]).await;
    assert!(
        !recorded(&store, &w, at(3)).await,
        "a wait counting a send the store did not take must not be recorded"
    );
    assert_eq!(
        due_ids(&store, at(3)).await.len(),
        3,
        "without a wait the backlog stays due"
    );
}
