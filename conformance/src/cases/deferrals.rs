//! `apply_plan`'s deferrals, and the waiting enrollments a released unit wakes.

use sequence_core::enrollment::{Deferral, DeferralReason, ExitReason};
use sequence_core::store::{PlanApplied, PlanCommit, PlanDeferral, Store};

use crate::fixtures::{at, exit_and_call_off, ok, plan, t0, write_enrollment, World};

/// Apply a plan of deferrals alone, at `t0()`.
async fn defer<S: Store + ?Sized>(store: &S, deferrals: Vec<PlanDeferral>) -> PlanApplied {
    ok(
        "apply_plan (deferrals)",
        store
            .apply_plan(
                t0(),
                PlanCommit {
                    deferrals,
                    ..PlanCommit::default()
                },
            )
            .await,
    )
}

/// `apply_plan`: "Then each deferral whose version matches."
pub async fn apply_plan_records_deferrals_whose_version_matches<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 2).await;
    let es = w.enroll_all(&store, t0()).await;
    let deferral = Deferral {
        reason: DeferralReason::NoCapacity,
        not_before: Some(at(600)),
    };
    let applied = defer(
        &store,
        vec![
            PlanDeferral {
                enrollment: es[0].id,
                enrollment_version: es[0].version(),
                deferral,
            },
            PlanDeferral {
                enrollment: es[1].id,
                enrollment_version: es[1].version() + 1,
                deferral,
            },
        ],
    )
    .await;
    assert!(applied.planned.is_empty(), "deferrals plan nothing");
    let e0 = w.enrollment(&store, es[0].id).await;
    assert_eq!(
        (e0.deferral(), e0.next_due_at()),
        (Some(deferral), Some(at(600))),
        "a deferral whose version matches must be recorded, with next_due_at at its not_before"
    );
    let e1 = w.enrollment(&store, es[1].id).await;
    assert_eq!(
        e1, es[1],
        "a deferral whose version does not match must be ignored"
    );
    let due = ok("due_enrollments", store.due_enrollments(at(1), 10).await);
    assert_eq!(
        due.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![es[1].id],
        "a deferred enrollment must not be due before its not_before"
    );
}

/// `apply_plan`: a recorded deferral is exactly `Enrollment::defer` on the stored row:
/// looked at again at its `not_before` but never before the step is due, parked without
/// one, the version bumped; a row no longer active is left as it is.
pub async fn apply_plan_records_a_deferral_as_the_domain_does<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 2, 4).await;
    let es = w.enroll_all(&store, at(120)).await;
    let mut ended = es[3].clone();
    if let Err(err) = ended.exit(ExitReason::Manual, t0()) {
        panic!("fixture: exit: {err}");
    }
    ok(
        "apply_changes (exit)",
        write_enrollment(&store, ended, es[3].version()).await,
    );
    let es3 = w.enrollment(&store, es[3].id).await;
    let deferrals = [
        // Before the step is due (120), after it, and parked.
        (0, Some(at(60)), DeferralReason::NoCapacity),
        (1, Some(at(600)), DeferralReason::OutsideMailboxWindow),
        (2, None, DeferralReason::NoActiveMailboxInPool),
        (3, Some(at(600)), DeferralReason::NoCapacity),
    ];
    let items = deferrals
        .iter()
        .map(|&(i, not_before, reason)| PlanDeferral {
            enrollment: es[i].id,
            enrollment_version: if i == 3 {
                es3.version()
            } else {
                es[i].version()
            },
            deferral: Deferral { reason, not_before },
        })
        .collect();
    defer(&store, items).await;
    for &(i, not_before, reason) in &deferrals[..3] {
        let mut expected = es[i].clone();
        if let Err(err) = expected.defer(Deferral { reason, not_before }) {
            panic!("fixture: defer: {err}");
        }
        assert_eq!(
            w.enrollment(&store, es[i].id).await,
            expected,
            "deferral {i} must leave the row as Enrollment::defer does"
        );
    }
    assert_eq!(
        w.enrollment(&store, es[3].id).await,
        es3,
        "a deferral of an enrollment that is no longer active must change nothing"
    );
    let due = ok("due_enrollments", store.due_enrollments(at(599), 10).await);
    assert_eq!(
        due.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![es[0].id],
        "only the row deferred to before its step was due is due again at the step's instant"
    );
}

/// Reservations: "A unit released by a cancellation ... on its mailbox's current local day
/// is not left idle: in the same unit of work, up to two active enrollments waiting on a
/// capacity or window deferral that the mailbox can serve ... are made due at `now`".
pub async fn a_released_unit_wakes_waiting_enrollments<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 1, 1, 5).await;
    let es = w.enroll_all(&store, t0()).await;
    plan(&store, t0(), vec![w.plan_send(&es[0], 0, at(60), 1)]).await;
    let waiting = |reason, minutes| Deferral {
        reason,
        not_before: Some(at(minutes)),
    };
    let deferrals = [
        (1, waiting(DeferralReason::NoCapacity, 1440)),
        (2, waiting(DeferralReason::NoCapacity, 1500)),
        (3, waiting(DeferralReason::NoCapacity, 1560)),
        (4, waiting(DeferralReason::SequencePaused, 1000)),
    ];
    let items = deferrals
        .iter()
        .map(|&(i, deferral)| PlanDeferral {
            enrollment: es[i].id,
            enrollment_version: es[i].version(),
            deferral,
        })
        .collect();
    defer(&store, items).await;
    // The planned enrollment exits; its send is called off and its unit released.
    exit_and_call_off(&store, &w, es[0].id, at(10)).await;
    let mut due_at = Vec::new();
    for e in &es[1..] {
        due_at.push(w.enrollment(&store, e.id).await.next_due_at());
    }
    assert_eq!(
        due_at,
        vec![Some(at(10)), Some(at(10)), Some(at(1560)), Some(at(1000))],
        "the released unit must wake the two soonest enrollments waiting for capacity, and \
         neither a third nor one waiting for another reason"
    );
}
