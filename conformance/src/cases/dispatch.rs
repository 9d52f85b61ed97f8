//! Claims and leases: `claim_sends`, `complete_send`, `release_send`, `expire_leases`.

use chrono::Duration;
use sequence_core::contact::ContactStatus;
use sequence_core::enrollment::{EnrollmentStatus, ExitReason};
use sequence_core::send::SendStatus;
use sequence_core::store::{ChangeSet, SendCompletion, Store, StoreError};
use uuid::Uuid;

use crate::fixtures::{at, claim, failed, ok, plan, sent, some, t0, World};

/// `claim_sends`: "Claim at most `limit` planned sends whose instant has come, earliest
/// first, under leases that run out at `now + lease_for`"; "the lease carries the new
/// number"; `ClaimedSend` carries "The enrollment" and "The contact".
pub async fn claim_sends_takes_due_sends_earliest_first_under_a_lease<S: Store + 'static>(
    store: S,
) {
    let w = World::build(&store, 3, 30, 1, 3).await;
    let es = w.enroll_all(&store, at(-60)).await;
    plan(
        &store,
        at(-60),
        vec![
            w.plan_send(&es[0], 0, at(-10), 30),
            w.plan_send(&es[1], 1, at(-20), 30),
            w.plan_send(&es[2], 2, at(5), 30),
        ],
    )
    .await;
    let claimed = ok(
        "claim_sends",
        store.claim_sends(t0(), Duration::minutes(7), 10).await,
    );
    let order: Vec<_> = claimed.iter().map(|c| c.send.enrollment).collect();
    assert_eq!(
        order,
        vec![es[1].id, es[0].id],
        "claim_sends must return the sends whose instant has come, earliest first, and no later one"
    );
    for c in &claimed {
        assert_eq!(
            c.lease.until,
            at(7),
            "the lease must run out at now + lease_for"
        );
        assert_eq!(
            (c.lease.attempt, c.send.attempts()),
            (1, 1),
            "a first claim must carry attempt 1 and count it on the send"
        );
        assert_eq!(
            (c.send.status(), c.send.lease()),
            (SendStatus::Sending, Some(c.lease)),
            "a claimed send must be sending under its lease"
        );
        let e = w.enrollment(&store, c.send.enrollment).await;
        assert_eq!(
            c.enrollment, e,
            "ClaimedSend must carry the stored enrollment"
        );
        assert_eq!(
            c.contact.id, e.contact,
            "ClaimedSend must carry the enrollment's contact"
        );
        let stored = w.send(&store, c.send.enrollment, 0).await;
        assert_eq!(
            stored, c.send,
            "the stored send must be the claimed one (sending, under the lease)"
        );
    }
    let tokens: std::collections::HashSet<_> = claimed.iter().map(|c| c.lease.token).collect();
    assert_eq!(
        tokens.len(),
        claimed.len(),
        "each claim must have its own lease token"
    );
    assert!(
        claim(&store, t0(), 10).await.is_empty(),
        "nothing more is due at now"
    );
}

/// `claim_sends`: "A send whose mailbox already has a send in `sending` (from any claimer)
/// is not claimed, and one call returns at most one send per mailbox".
pub async fn claim_sends_one_per_mailbox_and_none_while_sending<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 2).await;
    let es = w.enroll_all(&store, at(-60)).await;
    plan(
        &store,
        at(-60),
        vec![
            w.plan_send(&es[0], 0, at(-2), 30),
            w.plan_send(&es[1], 0, at(-1), 30),
        ],
    )
    .await;
    let first = claim(&store, t0(), 10).await;
    assert_eq!(
        first.iter().map(|c| c.send.enrollment).collect::<Vec<_>>(),
        vec![es[0].id],
        "one call must return at most one send per mailbox (the earliest)"
    );
    assert!(
        claim(&store, t0(), 10).await.is_empty(),
        "no send may be claimed while its mailbox has a send in sending"
    );
    ok(
        "complete_send",
        store.complete_send(t0(), sent(&first[0], t0(), 1)).await,
    );
    let second = claim(&store, t0(), 10).await;
    assert_eq!(
        second.iter().map(|c| c.send.enrollment).collect::<Vec<_>>(),
        vec![es[1].id],
        "once the mailbox's send is done, its next send can be claimed"
    );
}

/// `claim_sends`: "Claim at most `limit`".
pub async fn claim_sends_respects_the_limit<S: Store + 'static>(store: S) {
    let w = World::build(&store, 5, 30, 1, 5).await;
    let es = w.enroll_all(&store, at(-60)).await;
    plan(
        &store,
        at(-60),
        es.iter()
            .enumerate()
            .map(|(i, e)| w.plan_send(e, i, at(-(i as i64) - 1), 30))
            .collect(),
    )
    .await;
    let two = claim(&store, t0(), 2).await;
    assert_eq!(
        two.iter().map(|c| c.send.enrollment).collect::<Vec<_>>(),
        vec![es[4].id, es[3].id],
        "claim_sends must return at most `limit` sends, the earliest"
    );
    assert_eq!(
        claim(&store, t0(), 10).await.len(),
        3,
        "the sends left are claimed by the next call"
    );
}

/// `complete_send`: "`LeaseLost` when the lease does not hold" (the store checks "both
/// token and attempt").
pub async fn complete_send_checks_the_lease<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    plan(&store, t0(), vec![w.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    let good = sent(&c, at(1), 1);
    let mut wrong_token = good.clone();
    wrong_token.lease.token = Uuid::new_v4();
    let mut wrong_attempt = good.clone();
    wrong_attempt.lease.attempt += 1;
    for (what, completion) in [("token", wrong_token), ("attempt", wrong_attempt)] {
        let r = store.complete_send(at(1), completion).await;
        assert!(
            matches!(r, Err(StoreError::LeaseLost { send }) if send == c.send.id),
            "complete_send with a wrong lease {what} must fail with LeaseLost naming the send, got {r:?}"
        );
    }
    assert_eq!(
        w.send(&store, e.id, 0).await.status(),
        SendStatus::Sending,
        "a refused completion must not change the send"
    );
    assert_eq!(
        w.enrollment(&store, e.id).await,
        c.enrollment,
        "a refused completion must not change the enrollment"
    );
    ok(
        "complete_send (right lease)",
        store.complete_send(at(1), good.clone()).await,
    );
    let s = w.send(&store, e.id, 0).await;
    assert_eq!(
        (s.status(), s.sent_at(), s.lease()),
        (SendStatus::Sent, Some(at(1)), None),
        "complete_send must record the outcome"
    );
    let r = store.complete_send(at(2), good).await;
    assert!(
        matches!(r, Err(StoreError::LeaseLost { .. })),
        "a lease no longer holds once the send is completed: a second completion must be LeaseLost, got {r:?}"
    );
}

/// `complete_send`: "`VersionConflict` when a version does not match (then nothing is
/// written)".
pub async fn complete_send_version_conflict_writes_nothing<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 2, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    plan(&store, t0(), vec![w.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    // Someone changes the enrollment while the transport is called.
    let mut meanwhile = c.enrollment.clone();
    meanwhile.record_reply(at(1));
    ok(
        "apply_changes (reply)",
        crate::fixtures::write_enrollment(&store, meanwhile, c.enrollment.version()).await,
    );
    let mut completion = sent(&c, at(2), 2);
    let mut bounced = w.contacts[0].clone();
    bounced.mark_bounced();
    let read = bounced.version();
    completion.changes.contacts.push((bounced, read));
    let r = store.complete_send(at(2), completion).await;
    assert!(
        matches!(r, Err(StoreError::VersionConflict { .. })),
        "complete_send with a stale enrollment version must fail with VersionConflict, got {r:?}"
    );
    let s = w.send(&store, e.id, 0).await;
    assert_eq!(
        (s.status(), s.lease()),
        (SendStatus::Sending, Some(c.lease)),
        "after a version conflict the send must still be sending under its lease"
    );
    let contact = some(
        "get_contact",
        ok(
            "get_contact",
            store.get_contact(w.tenant, w.contacts[0].id).await,
        ),
    );
    assert_eq!(
        contact.status(),
        ContactStatus::Active,
        "after a version conflict the other changes must not be written"
    );
    // Read again and record once more: it goes through.
    let fresh = w.enrollment(&store, e.id).await;
    let mut retry = c.clone();
    retry.enrollment = fresh;
    ok(
        "complete_send (after reading again)",
        store.complete_send(at(2), sent(&retry, at(2), 2)).await,
    );
    let after = w.enrollment(&store, e.id).await;
    assert_eq!(
        (after.current_step(), after.replied_at()),
        (1, Some(at(1))),
        "the retried completion must keep the other writer's change and add its own"
    );
}

/// `complete_send`: "Record the outcome of a claimed send atomically with its enrollment and
/// the other changes" (a bounced contact and its other enrollments, their planned sends
/// called off and their reservations released).
pub async fn complete_send_applies_outcome_and_changes_atomically<S: Store + 'static>(store: S) {
    let w = World::build(&store, 2, 30, 2, 1).await;
    let t = w.tenant;
    let e1 = w.enroll_all(&store, t0()).await.remove(0);
    let mut other = crate::fixtures::sequence(t, "Other", 1, &w.mailboxes);
    other.name = "Other".into();
    ok("save_sequence", store.save_sequence(&other, None).await);
    let row = sequence_core::enrollment::Enrollment::new(t, other.id, w.contacts[0].id, t0(), t0());
    ok("enroll", store.enroll(t, t0(), vec![row.clone()]).await);
    let e2 = w.enrollment(&store, row.id).await;
    plan(
        &store,
        t0(),
        vec![
            w.plan_send(&e1, 0, t0(), 30),
            w.plan_send(&e2, 1, at(60), 30),
        ],
    )
    .await;
    let c = claim(&store, t0(), 10).await.remove(0);
    assert_eq!(c.send.enrollment, e1.id, "fixture: e1's send is claimed");
    let e2 = w.enrollment(&store, e2.id).await;
    let s2 = w.send(&store, e2.id, 0).await;

    let mut send = c.send.clone();
    if let Err(e) = send.mark_failed(&c.lease, "550 5.1.1 no such user".into(), false) {
        panic!("fixture: mark_failed: {e}");
    }
    let mut e = c.enrollment.clone();
    let v = e.version();
    let mut e2x = e2.clone();
    if e.exit(ExitReason::Bounced, t0()).is_err() || e2x.exit(ExitReason::Bounced, t0()).is_err() {
        panic!("fixture: exit");
    }
    let mut contact = c.contact.clone();
    contact.mark_bounced();
    ok(
        "complete_send",
        store
            .complete_send(
                t0(),
                SendCompletion {
                    send,
                    lease: c.lease,
                    enrollment: e,
                    enrollment_version: v,
                    attempted_at: t0(),
                    changes: ChangeSet {
                        contacts: vec![(contact.clone(), contact.version())],
                        enrollments: vec![(e2x, e2.version())],
                        cancel_sends: vec![s2.id],
                        ..ChangeSet::default()
                    },
                },
            )
            .await,
    );
    let s1 = w.send(&store, e1.id, 0).await;
    assert_eq!(
        (s1.status(), s1.last_error().is_some(), s1.lease()),
        (SendStatus::Failed, true, None),
        "complete_send must record the failure on the send"
    );
    let after1 = w.enrollment(&store, e1.id).await;
    let after2 = w.enrollment(&store, e2.id).await;
    assert_eq!(
        (after1.exit_reason(), after2.exit_reason()),
        (Some(ExitReason::Bounced), Some(ExitReason::Bounced)),
        "complete_send must write its enrollment and the other enrollments of the change set"
    );
    let contact = some(
        "get_contact",
        ok("get_contact", store.get_contact(t, w.contacts[0].id).await),
    );
    assert_eq!(
        contact.status(),
        ContactStatus::Bounced,
        "complete_send must write the contact of the change set"
    );
    assert_eq!(
        w.send(&store, e2.id, 0).await.status(),
        SendStatus::Cancelled,
        "complete_send must cancel the change set's planned sends"
    );
    assert_eq!(
        (
            w.snapshot(&store, t0(), 0).await.used,
            w.snapshot(&store, t0(), 1).await.used
        ),
        (1, 0),
        "the failed attempt stays counted; the cancelled send's reservation is released"
    );
}

/// Module docs: "An attempt is never released: a failed attempt counts toward the day's
/// limit."
pub async fn failed_attempts_stay_counted<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 3).await;
    let es = w.enroll_all(&store, t0()).await;
    plan(&store, t0(), vec![w.plan_send(&es[0], 0, t0(), 2)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    ok(
        "complete_send (failed)",
        store.complete_send(at(1), failed(&c, at(1), None)).await,
    );
    plan(&store, at(1), vec![w.plan_send(&es[1], 0, at(1), 2)]).await;
    let c = claim(&store, at(1), 1).await.remove(0);
    ok(
        "complete_send (retry_wait)",
        store
            .complete_send(at(2), failed(&c, at(2), Some(at(30))))
            .await,
    );
    assert_eq!(
        w.snapshot(&store, at(2), 0).await.used,
        2,
        "failed attempts (final or waiting for a retry) must stay counted"
    );
    let applied = plan(&store, at(2), vec![w.plan_send(&es[2], 0, at(3), 2)]).await;
    assert_eq!(
        applied.over_capacity,
        vec![es[2].id],
        "a day whose limit was used by failed attempts must refuse more sends"
    );
}

/// `release_send`: "Give a claimed send back without an attempt: planned again at
/// `replan_at`"; `ScheduledSend::release`: "the attempt is not counted"; module docs: the
/// reservation is taken by the plan and kept until claimed, cancelled or pre-empted.
pub async fn release_send_with_an_instant_keeps_the_reservation<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    plan(&store, t0(), vec![w.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    ok(
        "release_send",
        store
            .release_send(at(1), c.send.id, c.lease, Some(at(30)))
            .await,
    );
    let s = w.send(&store, e.id, 0).await;
    assert_eq!(
        (s.status(), s.planned_at(), s.attempts(), s.lease()),
        (SendStatus::Planned, at(30), 0, None),
        "release_send with an instant must plan the send again then, without counting the attempt"
    );
    assert_eq!(
        w.snapshot(&store, at(1), 0).await.used,
        1,
        "release_send with an instant must keep the reservation"
    );
    assert!(
        claim(&store, at(29), 10).await.is_empty(),
        "the released send is not due before its new instant"
    );
    let again = claim(&store, at(30), 10).await;
    assert_eq!(
        again.first().map(|c| (c.send.id, c.lease.attempt)),
        Some((s.id, 1)),
        "the released send is claimed again at its new instant, as attempt 1"
    );
    let e_after = w.enrollment(&store, e.id).await;
    assert_eq!(
        e_after.next_due_at(),
        None,
        "a send planned again keeps its enrollment planned"
    );
}

/// `release_send`: "or cancelled (its reservation released and its enrollment due again at
/// `now`) when `replan_at` is `None`".
pub async fn release_send_without_an_instant_cancels_and_frees_capacity<S: Store + 'static>(
    store: S,
) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    plan(&store, t0(), vec![w.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    ok(
        "release_send",
        store.release_send(at(1), c.send.id, c.lease, None).await,
    );
    assert_eq!(
        w.send(&store, e.id, 0).await.status(),
        SendStatus::Cancelled,
        "release_send without an instant must cancel the send"
    );
    assert_eq!(
        w.snapshot(&store, at(1), 0).await.used,
        0,
        "release_send without an instant must release the reservation"
    );
    let due = ok("due_enrollments", store.due_enrollments(at(1), 10).await);
    assert_eq!(
        due.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![e.id],
        "release_send without an instant must make the enrollment due again at now"
    );
    assert_eq!(
        due[0].status,
        EnrollmentStatus::Active,
        "the enrollment stays active"
    );
}

/// `release_send`: "`LeaseLost` when the lease does not hold."
pub async fn release_send_checks_the_lease<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    plan(&store, t0(), vec![w.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    let mut wrong = c.lease;
    wrong.token = Uuid::new_v4();
    let r = store.release_send(at(1), c.send.id, wrong, None).await;
    assert!(
        matches!(r, Err(StoreError::LeaseLost { .. })),
        "release_send with a wrong token must fail with LeaseLost, got {r:?}"
    );
    let mut wrong = c.lease;
    wrong.attempt += 1;
    let r = store
        .release_send(at(1), c.send.id, wrong, Some(at(5)))
        .await;
    assert!(
        matches!(r, Err(StoreError::LeaseLost { .. })),
        "release_send with a wrong attempt must fail with LeaseLost, got {r:?}"
    );
    assert_eq!(
        w.send(&store, e.id, 0).await.status(),
        SendStatus::Sending,
        "a refused release must leave the send sending"
    );
    ok(
        "complete_send",
        store.complete_send(at(1), sent(&c, at(1), 1)).await,
    );
    let r = store.release_send(at(2), c.send.id, c.lease, None).await;
    assert!(
        matches!(r, Err(StoreError::LeaseLost { .. })),
        "release_send after the send was completed must fail with LeaseLost, got {r:?}"
    );
    assert_eq!(
        w.send(&store, e.id, 0).await.status(),
        SendStatus::Sent,
        "a refused release must not undo the outcome"
    );
}

/// `expire_leases`: "Sends in `sending` whose lease ran out at `now`: marked `uncertain`
/// with, in the same unit, the enrollment recording it (due at `now`) ... Returns the sends
/// changed"; module docs: "If the process dies between a claim and its
/// outcome, the attempt stays counted and the send is found by `expire_leases`".
pub async fn expire_leases_marks_uncertain_only_after_expiry<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    plan(&store, t0(), vec![w.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    assert_eq!(c.lease.until, at(5), "fixture: a five-minute lease");
    let early = ok("expire_leases", store.expire_leases(at(4), false).await);
    assert!(
        early.is_empty(),
        "expire_leases must not touch a lease that has not run out, got {early:?}"
    );
    let expired = ok("expire_leases", store.expire_leases(at(6), false).await);
    assert_eq!(
        expired
            .iter()
            .map(|s| (s.id, s.status()))
            .collect::<Vec<_>>(),
        vec![(c.send.id, SendStatus::Uncertain)],
        "expire_leases must mark a send whose lease ran out uncertain and return it"
    );
    assert_eq!(
        w.send(&store, e.id, 0).await.status(),
        SendStatus::Uncertain,
        "the uncertain status must be stored"
    );
    assert_eq!(
        w.snapshot(&store, at(6), 0).await.used,
        1,
        "the expired attempt must stay counted"
    );
    // In the same unit, the enrollment records the uncertain send and is due, so that a
    // caller that stops now strands nothing: the next planner moves it past the step.
    let recorded = w.enrollment(&store, e.id).await;
    assert_eq!(
        recorded
            .uncertain_send()
            .map(|u| (u.step, u.message_id.clone(), u.at)),
        Some((0, c.send.message_id.clone(), at(6))),
        "expire_leases must record the uncertain send on its enrollment"
    );
    assert_eq!(
        recorded.mailbox(),
        Some(c.send.mailbox()),
        "the uncertain attempt's mailbox must be sticky"
    );
    assert_eq!(
        recorded.next_due_at(),
        Some(at(6)),
        "the enrollment of an uncertain send must be due at now"
    );
    let due = ok("due_enrollments", store.due_enrollments(at(6), 10).await);
    assert_eq!(
        due.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![e.id],
        "the enrollment of an uncertain send must be found by due_enrollments"
    );
    let r = store.complete_send(at(7), sent(&c, at(7), 1)).await;
    assert!(
        matches!(r, Err(StoreError::LeaseLost { .. })),
        "a completion under an expired (taken) lease must fail with LeaseLost, got {r:?}"
    );
    assert!(
        claim(&store, at(8), 10).await.is_empty(),
        "an uncertain send must not be claimed again"
    );
    assert!(
        ok("expire_leases", store.expire_leases(at(60), false).await).is_empty(),
        "a send already expired is not returned again"
    );
}

/// `expire_leases`: "or, with `resend`, abandoned (`cancelled`, the attempt still counted)
/// with the enrollment due again at `now` (the attempt's mailbox sticky), so the planner
/// plans the step again inside capacity".
pub async fn expire_leases_with_resend_plans_again<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    plan(&store, t0(), vec![w.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    let expired = ok("expire_leases", store.expire_leases(at(6), true).await);
    assert_eq!(
        expired
            .iter()
            .map(|s| (s.id, s.status(), s.attempts()))
            .collect::<Vec<_>>(),
        vec![(c.send.id, SendStatus::Cancelled, 1)],
        "expire_leases with resend must abandon the send (cancelled) with the attempt still counted"
    );
    assert_eq!(
        w.snapshot(&store, at(6), 0).await.used,
        1,
        "the abandoned attempt must stay counted"
    );
    let due = w.enrollment(&store, e.id).await;
    assert_eq!(
        due.next_due_at(),
        Some(at(6)),
        "the enrollment must be due again at now"
    );
    assert_eq!(
        due.mailbox(),
        Some(c.send.mailbox()),
        "the attempt's mailbox must be sticky for the send planned again"
    );
    assert!(
        claim(&store, at(6), 10).await.is_empty(),
        "an abandoned send is not claimed before it is planned again"
    );
    // Planned again through apply_plan: the same row, attempts kept, claimed as attempt 2.
    plan(&store, at(6), vec![w.plan_send(&due, 0, at(7), 30)]).await;
    let again = claim(&store, at(7), 10).await;
    assert_eq!(
        again.first().map(|c| (c.send.id, c.lease.attempt)),
        Some((c.send.id, 2)),
        "the re-planned send must be the same row, claimed as attempt 2"
    );
    assert_eq!(
        w.snapshot(&store, at(7), 0).await.used,
        2,
        "both attempts count toward the day"
    );
    let r = store.complete_send(at(7), sent(&c, at(7), 1)).await;
    assert!(
        matches!(r, Err(StoreError::LeaseLost { .. })),
        "the first claim's lease must no longer hold, got {r:?}"
    );
}

/// `complete_sends`: "each exactly as [`Outbox::complete_send`] records it", "with one
/// answer per completion, in order"; a refused completion "gets that error as its answer,
/// writes nothing of its own, and does not stop the others".
///
/// [`Outbox::complete_send`]: sequence_core::store::Outbox::complete_send
pub async fn complete_sends_answers_each_completion_and_records_the_rest<S: Store + 'static>(
    store: S,
) {
    let w = World::build(&store, 4, 30, 2, 4).await;
    let es = w.enroll_all(&store, t0()).await;
    plan(
        &store,
        t0(),
        es.iter()
            .enumerate()
            .map(|(i, e)| w.plan_send(e, i, t0(), 30))
            .collect(),
    )
    .await;
    let mut claimed = claim(&store, t0(), 10).await;
    claimed.sort_by_key(|c| es.iter().position(|e| e.id == c.send.enrollment));
    assert_eq!(claimed.len(), 4, "one send claimed per mailbox");
    let good = sent(&claimed[1], at(1), 2);
    let mut wrong_lease = good.clone();
    wrong_lease.lease.token = Uuid::new_v4();
    let mut stale = sent(&claimed[2], at(1), 2);
    stale.enrollment_version += 1;
    let batch = vec![
        sent(&claimed[0], at(1), 2),
        wrong_lease,
        stale,
        failed(&claimed[3], at(1), Some(at(30))),
    ];
    let answers = ok("complete_sends", store.complete_sends(at(1), batch).await);
    assert_eq!(
        answers.len(),
        4,
        "complete_sends must answer every completion"
    );
    assert!(
        answers[0].is_ok() && answers[3].is_ok(),
        "the valid completions must be recorded, got {answers:?}"
    );
    assert!(
        matches!(&answers[1], Err(StoreError::LeaseLost { send }) if *send == claimed[1].send.id),
        "a completion under a wrong lease must answer LeaseLost, got {:?}",
        answers[1]
    );
    assert!(
        matches!(&answers[2], Err(StoreError::VersionConflict { .. })),
        "a completion with a stale enrollment version must answer VersionConflict, got {:?}",
        answers[2]
    );
    let s0 = w.send(&store, es[0].id, 0).await;
    assert_eq!(
        (s0.status(), s0.sent_at(), s0.lease()),
        (SendStatus::Sent, Some(at(1)), None),
        "a recorded completion must record the send's outcome"
    );
    assert_eq!(
        w.enrollment(&store, es[0].id).await.current_step(),
        1,
        "a recorded completion must write its enrollment"
    );
    assert_eq!(
        w.send(&store, es[3].id, 0).await.status(),
        SendStatus::RetryWait,
        "a failed attempt to retry must be recorded as retry_wait"
    );
    for (i, what) in [(1, "lease"), (2, "version")] {
        assert_eq!(
            w.send(&store, es[i].id, 0).await.status(),
            SendStatus::Sending,
            "a completion refused for its {what} must not change its send"
        );
        assert_eq!(
            w.enrollment(&store, es[i].id).await,
            claimed[i].enrollment,
            "a completion refused for its {what} must not change its enrollment"
        );
    }
    ok(
        "complete_send (after the batch, right lease)",
        store.complete_send(at(2), good).await,
    );
    assert_eq!(
        w.send(&store, es[1].id, 0).await.status(),
        SendStatus::Sent,
        "a send whose completion was refused can still be completed under its lease"
    );
}
