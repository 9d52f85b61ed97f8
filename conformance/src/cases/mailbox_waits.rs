//! Mailbox waits: the follow-ups of a full mailbox held back from planning, and the events
//! that end a wait early (see "Mailbox waits" in `sequence_core::store`).

use chrono::{DateTime, Utc};
use sequence_core::enrollment::Enrollment;
use sequence_core::ids::EnrollmentId;
use sequence_core::store::{MailboxWait, PlanCommit, PlanMailboxWait, PoolDaySeen, Store};

use crate::fixtures::{at, exit_and_call_off, ok, some, t0, World};

/// The wait of the world's mailbox `mailbox` until `until`, having seen its day at `used`.
fn wait_on(w: &World, mailbox: usize, until: DateTime<Utc>, used: u32) -> PlanMailboxWait {
    PlanMailboxWait {
        wait: MailboxWait {
            tenant: w.tenant,
            mailbox: w.mailboxes[mailbox].id,
            until,
            holds_due_by: None,
        },
        seen: PoolDaySeen {
            mailbox: w.mailboxes[mailbox].id,
            local_date: t0().date_naive(),
            used,
        },
    }
}

/// Apply a plan at `now` of `sends` and mailbox waits alone.
async fn plan_waits<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    sends: Vec<sequence_core::store::PlanSend>,
    mailbox_waits: Vec<PlanMailboxWait>,
) {
    ok(
        "apply_plan (mailbox waits)",
        store
            .apply_plan(
                now,
                PlanCommit {
                    sends,
                    mailbox_waits,
                    ..PlanCommit::default()
                },
            )
            .await,
    );
}

/// The ids `due_enrollments` answers at `now`, sorted.
async fn due_set<S: Store + ?Sized>(store: &S, now: DateTime<Utc>) -> Vec<EnrollmentId> {
    let mut ids: Vec<EnrollmentId> = ok("due_enrollments", store.due_enrollments(now, 100).await)
        .iter()
        .map(|d| d.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Sorted ids.
fn sorted(ids: impl IntoIterator<Item = EnrollmentId>) -> Vec<EnrollmentId> {
    let mut v: Vec<EnrollmentId> = ids.into_iter().collect();
    v.sort_unstable();
    v
}

/// Enroll the world's contact `i` at step 1, sticky to mailbox `mailbox`, due at `due`.
async fn enroll_sticky<S: Store + ?Sized>(
    store: &S,
    w: &World,
    i: usize,
    mailbox: usize,
    due: DateTime<Utc>,
) -> Enrollment {
    let e = Enrollment::new(w.tenant, w.sequence.id, w.contacts[i].id, t0(), due)
        .with_progress(1, Some(w.mailboxes[mailbox].id));
    ok(
        "enroll",
        store.enroll(w.tenant, t0(), vec![e.clone()]).await,
    );
    e
}

/// Mailbox waits: "While a wait holds (`now < until`), the active enrollments of its tenant
/// whose sticky mailbox it is are left out of `due_enrollments`, and `next_wakeup` counts
/// each at the later of its due instant and `until`"; enrollments sticky to another mailbox
/// or going to the pool are not held, and a wait that holds none makes no wake-up;
/// `mailbox_wait` answers the wait while it holds, to its
/// tenant only, and so does the mailbox's snapshot (`held_until`); a wait naming a mailbox of another tenant is not recorded.
pub async fn a_mailbox_wait_holds_back_the_follow_ups_sticky_to_it<S: Store + 'static>(store: S) {
    let w = World::build(&store, 2, 1, 3, 4).await;
    let until = at(24 * 60);
    plan_waits(&store, t0(), Vec::new(), vec![wait_on(&w, 1, at(1), 0)]).await;
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        None,
        "a wait that holds nothing back must not make next_wakeup answer"
    );
    let held = [
        enroll_sticky(&store, &w, 0, 0, t0()).await,
        enroll_sticky(&store, &w, 1, 0, at(1)).await,
    ];
    let other_mailbox = enroll_sticky(&store, &w, 2, 1, at(3000)).await;
    let to_pool = Enrollment::new(w.tenant, w.sequence.id, w.contacts[3].id, t0(), at(3000));
    ok(
        "enroll",
        store.enroll(w.tenant, t0(), vec![to_pool.clone()]).await,
    );

    let stranger = World::build(&store, 1, 1, 1, 0).await;
    let mut foreign = wait_on(&w, 0, until, 0);
    foreign.wait.tenant = stranger.tenant;
    plan_waits(&store, t0(), Vec::new(), vec![foreign]).await;
    assert_eq!(
        due_set(&store, at(2)).await,
        sorted(held.iter().map(|e| e.id)),
        "a wait naming a mailbox of another tenant must not be recorded"
    );

    plan_waits(&store, t0(), Vec::new(), vec![wait_on(&w, 0, until, 0)]).await;
    assert!(
        due_set(&store, at(2)).await.is_empty(),
        "the follow-ups sticky to a waiting mailbox must be left out while the wait holds"
    );
    assert_eq!(
        ok(
            "mailbox_wait",
            store.mailbox_wait(w.tenant, w.mailboxes[0].id, at(2)).await
        ),
        Some(wait_on(&w, 0, until, 0).wait),
        "mailbox_wait must answer the wait while it holds"
    );
    assert_eq!(
        ok(
            "mailbox_wait",
            store
                .mailbox_wait(stranger.tenant, w.mailboxes[0].id, at(2))
                .await
        ),
        None,
        "mailbox_wait must not answer to another tenant"
    );
    assert_eq!(
        ok(
            "mailbox_wait",
            store.mailbox_wait(w.tenant, w.mailboxes[1].id, at(2)).await
        ),
        None,
        "a mailbox without a wait has none"
    );
    let snaps = ok(
        "mailbox_snapshots",
        store
            .mailbox_snapshots(at(2), &[w.mailboxes[0].id, w.mailboxes[1].id])
            .await,
    );
    let held_until = |i: usize| {
        snaps
            .iter()
            .find(|s| s.mailbox.id == w.mailboxes[i].id)
            .map(|s| s.held_until)
    };
    assert_eq!(
        (held_until(0), held_until(1)),
        (Some(Some(until)), Some(None)),
        "a mailbox snapshot must name the end of the wait holding the mailbox, and only that"
    );
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        Some(until),
        "next_wakeup must count a held follow-up at the wait's end"
    );
    assert_eq!(
        due_set(&store, at(3000)).await,
        sorted(
            held.iter()
                .map(|e| e.id)
                .chain([other_mailbox.id, to_pool.id])
        ),
        "once the wait ends, its follow-ups are due again, beside the others"
    );
    assert_eq!(
        ok(
            "mailbox_wait",
            store.mailbox_wait(w.tenant, w.mailboxes[0].id, until).await
        ),
        None,
        "mailbox_wait must not answer a wait that ended"
    );
    let after = ok(
        "mailbox_snapshots",
        store.mailbox_snapshots(until, &[w.mailboxes[0].id]).await,
    );
    assert_eq!(
        after.first().map(|s| s.held_until),
        Some(None),
        "a snapshot taken once the wait ended must name no wait"
    );
}

/// Mailbox waits: a wait with `holds_due_by` (a planning horizon cut its mailbox's plan)
/// holds back only the follow-ups due at or before that instant: one due later is read by
/// `due_enrollments` and named by `due_mailboxes` once due, and `next_wakeup` counts it at
/// its own instant while the held ones count at the wait's end; `mailbox_wait` answers the
/// instant, and the snapshot still names the wait's end.
pub async fn a_mailbox_wait_that_holds_what_was_due_lets_later_follow_ups_through<
    S: Store + 'static,
>(
    store: S,
) {
    let w = World::build(&store, 1, 1, 3, 2).await;
    let until = at(600);
    let seen_due = enroll_sticky(&store, &w, 0, 0, t0()).await;
    let mut wait = wait_on(&w, 0, until, 0);
    wait.wait.holds_due_by = Some(at(5));
    plan_waits(&store, at(1), Vec::new(), vec![wait]).await;
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        Some(until),
        "next_wakeup must count a follow-up due by the wait's instant at the wait's end"
    );
    let comes_due = enroll_sticky(&store, &w, 1, 0, at(10)).await;
    assert!(
        due_set(&store, at(9)).await.is_empty(),
        "the follow-up due by the wait's instant must be held back"
    );
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        Some(at(10)),
        "next_wakeup must count a follow-up due after the wait's instant at its own instant"
    );
    assert_eq!(
        due_set(&store, at(20)).await,
        vec![comes_due.id],
        "a follow-up due after the wait's instant must be read while the wait holds"
    );
    let store_ref = &store;
    let named = |now| async move {
        ok("due_mailboxes", store_ref.due_mailboxes(now).await)
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
    };
    assert!(
        named(at(9)).await.is_empty(),
        "due_mailboxes must not name a mailbox whose due follow-ups are all held"
    );
    assert_eq!(
        named(at(20)).await,
        vec![w.mailboxes[0].id],
        "due_mailboxes must name a mailbox with a follow-up its wait lets through"
    );
    let bound = sequence_core::store::MailboxBound {
        tenant: w.tenant,
        mailbox: w.mailboxes[0].id,
        at_most: 1,
    };
    let bounded = ok(
        "due_enrollments_bounded",
        store
            .due_enrollments_bounded(at(20), 100, &[], &[bound])
            .await,
    );
    assert_eq!(
        bounded.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![comes_due.id],
        "a bounded read must take the follow-ups the wait lets through, not the held ones"
    );
    assert_eq!(
        ok(
            "mailbox_wait",
            store
                .mailbox_wait(w.tenant, w.mailboxes[0].id, at(20))
                .await
        )
        .and_then(|w| w.holds_due_by),
        Some(at(5)),
        "mailbox_wait must answer the latest due instant the wait holds"
    );
    let snaps = ok(
        "mailbox_snapshots",
        store.mailbox_snapshots(at(20), &[w.mailboxes[0].id]).await,
    );
    assert_eq!(
        snaps.first().map(|s| s.held_until),
        Some(Some(until)),
        "the snapshot must name the end of the wait"
    );
    assert_eq!(
        due_set(&store, until).await,
        sorted([seen_due.id, comes_due.id]),
        "once the wait ends, every follow-up is due"
    );
}

/// Mailbox waits: "A mailbox wait ends early, in the same unit of work, when a reservation on
/// the mailbox is released or the mailbox is saved; ... the store records it only if the
/// mailbox's day is used at least as much as the plan saw".
pub async fn mailbox_waits_end_when_the_mailbox_may_have_room<S: Store + 'static>(store: S) {
    let w = World::build(&store, 2, 1, 3, 3).await;
    let until = at(24 * 60);
    let held = enroll_sticky(&store, &w, 0, 0, t0()).await;
    let new_start = Enrollment::new(w.tenant, w.sequence.id, w.contacts[1].id, t0(), t0());
    ok(
        "enroll",
        store.enroll(w.tenant, t0(), vec![new_start.clone()]).await,
    );
    let new_start = w.enrollment(&store, new_start.id).await;

    // The plan sends the new start on the mailbox and fills its day: the wait is recorded.
    let send = w.plan_send(&new_start, 0, at(60), 1);
    plan_waits(&store, t0(), vec![send], vec![wait_on(&w, 0, until, 1)]).await;
    assert_eq!(
        due_set(&store, at(1)).await,
        Vec::<EnrollmentId>::new(),
        "fixture: the wait holds"
    );
    // Its reservation released: the wait ends.
    exit_and_call_off(&store, &w, new_start.id, at(2)).await;
    assert_eq!(
        due_set(&store, at(3)).await,
        vec![held.id],
        "a reservation released on the mailbox must end its wait"
    );

    // Another mailbox saved: the wait holds; the mailbox saved: it ends.
    plan_waits(&store, at(3), Vec::new(), vec![wait_on(&w, 0, until, 0)]).await;
    let other = some(
        "get_mailbox",
        ok(
            "get_mailbox",
            store.get_mailbox(w.tenant, w.mailboxes[1].id).await,
        ),
    );
    ok(
        "save_mailbox",
        store.save_mailbox(&other, Some(other.version())).await,
    );
    assert!(
        due_set(&store, at(4)).await.is_empty(),
        "saving another mailbox must not end the wait"
    );
    let m = some(
        "get_mailbox",
        ok(
            "get_mailbox",
            store.get_mailbox(w.tenant, w.mailboxes[0].id).await,
        ),
    );
    let raised = m.clone().with_daily_limit(5);
    ok(
        "save_mailbox",
        store.save_mailbox(&raised, Some(m.version())).await,
    );
    assert_eq!(
        due_set(&store, at(4)).await,
        vec![held.id],
        "saving the mailbox must end its wait"
    );

    // A plan that saw the day used more than it is now (a unit released since): no wait.
    plan_waits(&store, at(4), Vec::new(), vec![wait_on(&w, 0, until, 1)]).await;
    assert_eq!(
        ok(
            "mailbox_wait",
            store.mailbox_wait(w.tenant, w.mailboxes[0].id, at(5)).await
        ),
        None,
        "a wait whose mailbox day is used less than the plan saw must not be recorded"
    );
    assert_eq!(
        due_set(&store, at(5)).await,
        vec![held.id],
        "without a wait the follow-up stays due"
    );
}

/// "The store keeps every sticky mailbox a mailbox of the enrollment's tenant": `enroll`
/// answers a row sticky to another tenant's mailbox, or to no mailbox at all, `Invalid`
/// naming the mailbox (the other rows are stored), and `apply_changes` refuses such a write
/// as `NotFound` without writing any of the set.
pub async fn an_enrollment_is_sticky_only_to_a_mailbox_of_its_tenant<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 5, 2, 3).await;
    let stranger = World::build(&store, 1, 5, 1, 0).await;
    let foreign = stranger.mailboxes[0].id;
    let nowhere = sequence_core::ids::MailboxId::new();
    let rows = vec![
        Enrollment::new(w.tenant, w.sequence.id, w.contacts[0].id, t0(), t0())
            .with_progress(1, Some(foreign)),
        Enrollment::new(w.tenant, w.sequence.id, w.contacts[1].id, t0(), t0())
            .with_progress(1, Some(nowhere)),
        Enrollment::new(w.tenant, w.sequence.id, w.contacts[2].id, t0(), t0())
            .with_progress(1, Some(w.mailboxes[0].id)),
    ];
    let answers = ok("enroll", store.enroll(w.tenant, t0(), rows.clone()).await);
    for (answer, m) in answers.iter().zip([foreign, nowhere]) {
        match answer {
            sequence_core::store::EnrollOutcome::Invalid { reason } => assert!(
                reason.contains("mailbox") && reason.contains(&m.to_string()),
                "the answer must name the mailbox: {reason}"
            ),
            other => panic!("a row sticky to mailbox {m} of no mailbox of the tenant: {other:?}"),
        }
    }
    assert!(
        matches!(
            answers[2],
            sequence_core::store::EnrollOutcome::Enrolled { .. }
        ),
        "a row sticky to the tenant's own mailbox is stored: {:?}",
        answers[2]
    );

    let stored = w.enrollment(&store, rows[2].id).await;
    let moved = stored
        .clone()
        .with_progress(stored.steps_sent(), Some(foreign));
    let refused = crate::fixtures::write_enrollment(&store, moved, stored.version()).await;
    assert!(
        matches!(
            refused,
            Err(sequence_core::store::StoreError::NotFound {
                entity: sequence_core::error::Entity::Mailbox,
                ..
            })
        ),
        "a write making an enrollment sticky to another tenant's mailbox must be refused: \
         {refused:?}"
    );
    assert_eq!(
        w.enrollment(&store, rows[2].id).await,
        stored,
        "a refused write changes nothing"
    );
}
