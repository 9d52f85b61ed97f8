//! `apply_plan`'s sends and pre-emptions, `mailbox_snapshots`, `daily_counts` and
//! `next_wakeup` (deferrals: `deferrals.rs`).

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use sequence_core::enrollment::EnrollmentStatus;
use sequence_core::ids::{MailboxId, SendId};
use sequence_core::send::SendStatus;
use sequence_core::store::{ChangeSet, PlanCommit, Store};

use crate::fixtures::{at, claim, failed, ok, plan, sent, some, t0, World};

/// `apply_plan`: each valid send is "stored, counted, and its enrollment marked planned
/// (nothing due; its mailbox becomes sticky only with an attempt)".
pub async fn apply_plan_stores_reserves_and_marks_planned<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 2, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    let item = w.plan_send(&e, 0, at(10), 5);
    let applied = plan(&store, t0(), vec![item.clone()]).await;
    assert_eq!(
        applied.planned.len(),
        1,
        "apply_plan must store a valid send"
    );
    assert!(
        applied.over_capacity.is_empty() && applied.stale.is_empty(),
        "a valid send is neither stale nor over capacity: {applied:?}"
    );
    let s = w.send(&store, e.id, 0).await;
    assert_eq!(
        s.id, applied.planned[0],
        "PlanApplied::planned must name the stored send"
    );
    assert_eq!(
        s.status(),
        SendStatus::Planned,
        "a new send must be planned"
    );
    assert_eq!(
        (s.mailbox(), s.planned_at(), s.local_date(), s.step, s.attempts()),
        (item.mailbox, item.at, item.local_date, 0, 0),
        "the stored send must carry the plan's mailbox, instant, local date and step, with no attempt"
    );
    assert_eq!(
        (
            s.message_id.as_str(),
            s.variant,
            s.enrollment,
            s.tenant,
            s.contact,
            s.sequence
        ),
        (
            item.message_id.as_str(),
            item.variant,
            e.id,
            w.tenant,
            e.contact,
            e.sequence
        ),
        "the stored send must carry the plan's Message-ID and variant and its enrollment's ids"
    );
    let after = w.enrollment(&store, e.id).await;
    assert_eq!(
        after.mailbox(),
        None,
        "a planned send must not pin its enrollment to the mailbox before an attempt"
    );
    assert_eq!(
        after.next_due_at(),
        None,
        "a planned enrollment has no next_due_at"
    );
    assert!(
        after.version() > e.version(),
        "marking the enrollment planned must bump its version"
    );
    let snap = w.snapshot(&store, t0(), 0).await;
    assert_eq!(
        snap.used, 1,
        "the send must reserve one unit of the mailbox-day"
    );
    assert_eq!(
        snap.planned.iter().map(|p| p.send).collect::<Vec<_>>(),
        vec![s.id],
        "the send must be in the mailbox's planned list"
    );
    let due = ok("due_enrollments", store.due_enrollments(at(60), 10).await);
    assert!(due.is_empty(), "a planned enrollment must not be due");
}

/// `apply_plan`: a send is "refused as over capacity when the mailbox-day count is at
/// `limit`"; `PlanApplied::over_capacity`: "their enrollments are due at `now` again".
pub async fn apply_plan_refuses_sends_over_the_limit<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 4).await;
    let es = w.enroll_all(&store, t0()).await;
    let applied = plan(
        &store,
        t0(),
        es[..3]
            .iter()
            .enumerate()
            .map(|(i, e)| w.plan_send(e, 0, at(10 * (i as i64 + 1)), 2))
            .collect(),
    )
    .await;
    assert_eq!(
        applied.planned.len(),
        2,
        "apply_plan must store sends up to the limit ({applied:?})"
    );
    assert_eq!(
        applied.over_capacity,
        vec![es[2].id],
        "apply_plan must refuse the send that would exceed the limit as over_capacity"
    );
    let snap = w.snapshot(&store, t0(), 0).await;
    assert_eq!(snap.used, 2, "the count must stop at the limit");
    let due = ok("due_enrollments", store.due_enrollments(t0(), 10).await);
    assert!(
        due.iter().any(|d| d.id == es[2].id),
        "an enrollment refused as over capacity must be due at now again"
    );
    assert!(
        ok(
            "sends_of_enrollment",
            store.sends_of_enrollment(w.tenant, es[2].id).await
        )
        .is_empty(),
        "a refused send must not be stored"
    );
    // A later plan with a higher limit on the same day counts what is already reserved.
    let e3 = w.enrollment(&store, es[3].id).await;
    let e2 = w.enrollment(&store, es[2].id).await;
    let applied = plan(
        &store,
        t0(),
        vec![
            w.plan_send(&e2, 0, at(40), 3),
            w.plan_send(&e3, 0, at(50), 3),
        ],
    )
    .await;
    assert_eq!(
        (applied.planned.len(), applied.over_capacity.clone()),
        (1, vec![es[3].id]),
        "the limit must count reservations made by earlier plans"
    );
}

/// `apply_plan`: "skipped as stale when its enrollment's version differs or is not active,
/// or when a send of that (enrollment, step) exists and is not `retry_wait`".
pub async fn apply_plan_skips_stale_items<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 3).await;
    let es = w.enroll_all(&store, t0()).await;
    // 0: a version that is not the stored one.
    let mut old = es[0].clone();
    old.set_version(old.version() + 1);
    // 1: paused.
    let mut paused = es[1].clone();
    if let Err(e) = paused.pause(None) {
        panic!("fixture: pause: {e}");
    }
    ok(
        "apply_changes (pause)",
        crate::fixtures::write_enrollment(&store, paused, es[1].version()).await,
    );
    let paused = w.enrollment(&store, es[1].id).await;
    let applied = plan(
        &store,
        t0(),
        vec![
            w.plan_send(&old, 0, at(5), 30),
            w.plan_send(&paused, 0, at(5), 30),
        ],
    )
    .await;
    let mut stale = applied.stale.clone();
    stale.sort();
    let mut expected = vec![es[0].id, es[1].id];
    expected.sort();
    assert_eq!(
        stale, expected,
        "apply_plan must skip as stale a send whose enrollment version differs or which is not active"
    );
    assert!(applied.planned.is_empty(), "stale sends must not be stored");
    // 2: a send of that (enrollment, step) exists and is planned.
    let first = plan(&store, t0(), vec![w.plan_send(&es[2], 0, at(5), 30)]).await;
    assert_eq!(first.planned.len(), 1, "fixture: first plan");
    let current = w.enrollment(&store, es[2].id).await;
    let again = plan(&store, t0(), vec![w.plan_send(&current, 0, at(9), 30)]).await;
    assert_eq!(
        again.stale,
        vec![es[2].id],
        "apply_plan must skip as stale a send whose (enrollment, step) already has a planned send"
    );
    let s = w.send(&store, es[2].id, 0).await;
    assert_eq!(
        (s.id, s.planned_at()),
        (first.planned[0], at(5)),
        "the existing send must be left as it was"
    );
    let snap = w.snapshot(&store, t0(), 0).await;
    assert_eq!(snap.used, 1, "stale items must not be counted");
}

/// `apply_plan`: a send of that (enrollment, step) in `retry_wait` "is planned again in
/// place"; `claim_sends`: "Claiming increments the send's attempt count".
pub async fn apply_plan_replans_a_retry_in_place<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    let first = plan(&store, t0(), vec![w.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    ok(
        "complete_send (retry)",
        store
            .complete_send(t0(), failed(&c, t0(), Some(at(10))))
            .await,
    );
    let waiting = w.send(&store, e.id, 0).await;
    assert_eq!(
        waiting.status(),
        SendStatus::RetryWait,
        "fixture: retry_wait"
    );
    let e = w.enrollment(&store, e.id).await;
    let again = plan(&store, at(10), vec![w.plan_send(&e, 0, at(20), 30)]).await;
    assert_eq!(
        again.planned, first.planned,
        "a retry must be planned again in place: the same send id"
    );
    let sends = ok(
        "sends_of_enrollment",
        store.sends_of_enrollment(w.tenant, e.id).await,
    );
    assert_eq!(
        sends.len(),
        1,
        "a retry must not add a second row for (enrollment, step)"
    );
    assert_eq!(
        (
            sends[0].status(),
            sends[0].planned_at(),
            sends[0].attempts()
        ),
        (SendStatus::Planned, at(20), 1),
        "the retried send must be planned at its new instant with its attempt kept"
    );
    assert_eq!(
        w.snapshot(&store, at(10), 0).await.used,
        2,
        "the failed attempt stays counted and the retry reserves one more unit"
    );
    let c = claim(&store, at(20), 1).await;
    assert_eq!(
        c.first().map(|c| (c.lease.attempt, c.send.attempts())),
        Some((2, 2)),
        "claiming the retry must carry attempt 2"
    );
}

/// A send cancelled before its attempt (pre-empted, given back, called off) does not block
/// its enrollment: planning the same (enrollment, step) again stores it, in place.
///
/// This is the amendment proposed to the `apply_plan` doc ("exists and is neither
/// `retry_wait` nor `cancelled`"): without it a pre-empted or released enrollment would be
/// refused as stale for ever.
pub async fn apply_plan_replans_a_cancelled_send<S: Store + 'static>(store: S) {
    let w = World::build(&store, 2, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    let first = plan(&store, t0(), vec![w.plan_send(&e, 0, at(30), 30)]).await;
    let applied = ok(
        "apply_plan (pre-empt)",
        store
            .apply_plan(
                t0(),
                PlanCommit {
                    planning: None,
                    preempt: first.planned.clone(),
                    ..PlanCommit::default()
                },
            )
            .await,
    );
    assert!(applied.planned.is_empty(), "fixture: pre-emption only");
    let e = w.enrollment(&store, e.id).await;
    let again = plan(&store, t0(), vec![w.plan_send(&e, 1, at(40), 30)]).await;
    assert_eq!(
        again.planned.len(),
        1,
        "an enrollment whose send was cancelled must be plannable again ({again:?})"
    );
    let sends = ok(
        "sends_of_enrollment",
        store.sends_of_enrollment(w.tenant, e.id).await,
    );
    let live: Vec<_> = sends
        .iter()
        .filter(|s| s.status() == SendStatus::Planned)
        .collect();
    assert_eq!(
        live.len(),
        1,
        "exactly one planned send for (enrollment, step)"
    );
    assert_eq!(
        (live[0].mailbox(), live[0].planned_at()),
        (w.mailboxes[1].id, at(40)),
        "the send must be planned on the new mailbox at the new instant"
    );
    assert_eq!(
        w.snapshot(&store, t0(), 0).await.used,
        0,
        "the cancelled send's reservation stays released"
    );
    assert_eq!(
        w.snapshot(&store, t0(), 1).await.used,
        1,
        "the new plan reserves on its mailbox"
    );
}

/// `apply_plan`: "Pre-emptions first"; `PlanCommit::preempt`: "cancelled, their
/// reservation released, their enrollment due again at `now`".
pub async fn apply_plan_preempts_first<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 2).await;
    let es = w.enroll_all(&store, t0()).await;
    let first = plan(&store, t0(), vec![w.plan_send(&es[0], 0, at(120), 1)]).await;
    assert_eq!(first.planned.len(), 1, "fixture: the mailbox-day is full");
    let applied = ok(
        "apply_plan",
        store
            .apply_plan(
                at(5),
                PlanCommit {
                    planning: None,
                    preempt: first.planned.clone(),
                    sends: vec![w.plan_send(&es[1], 0, at(120), 1)],
                    ..PlanCommit::default()
                },
            )
            .await,
    );
    assert_eq!(
        applied.planned.len(),
        1,
        "the pre-emption must run first and free the slot the new send takes ({applied:?})"
    );
    let s0 = w.send(&store, es[0].id, 0).await;
    assert_eq!(
        s0.status(),
        SendStatus::Cancelled,
        "a pre-empted send must be cancelled"
    );
    assert_eq!(
        w.snapshot(&store, at(5), 0).await.used,
        1,
        "the pre-empted send's reservation must be released (one unit, now the new send's)"
    );
    let due = ok("due_enrollments", store.due_enrollments(at(5), 10).await);
    assert!(
        due.iter().any(|d| d.id == es[0].id),
        "the pre-empted send's enrollment must be due again at now"
    );
    let e0 = w.enrollment(&store, es[0].id).await;
    assert_eq!(
        e0.status(),
        EnrollmentStatus::Active,
        "pre-emption must not end the enrollment"
    );
}

/// `MailboxSnapshot`: "The mailbox-local date of `now`", "Attempts made plus sends reserved
/// on that date", "The latest instant at which this mailbox made an attempt (a claim)",
/// "Sends planned on this mailbox and not yet claimed, earliest first"; "mailboxes not found
/// are left out".
pub async fn mailbox_snapshots_describe_the_local_day<S: Store + 'static>(store: S) {
    let w = World::build(&store, 0, 30, 1, 3).await;
    let ny = crate::fixtures::mailbox(w.tenant, "ny", chrono_tz::America::New_York, 30);
    ok("save_mailbox", store.save_mailbox(&ny, None).await);
    let mut seq = crate::fixtures::sequence(w.tenant, "NY", 1, std::slice::from_ref(&ny));
    seq.name = "New York".into();
    ok("save_sequence", store.save_sequence(&seq, None).await);
    let w = World {
        mailboxes: vec![ny.clone()],
        sequence: seq,
        ..w
    };
    // 02:00Z on Tuesday is 22:00 on Monday in New York (EDT).
    let now = Utc
        .with_ymd_and_hms(2026, 3, 10, 2, 0, 0)
        .single()
        .unwrap_or(t0());
    let monday = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap_or_default();
    let es = w.enroll_all(&store, now).await;
    let fresh = w.snapshot(&store, now, 0).await;
    assert_eq!(
        (
            fresh.local_date,
            fresh.used,
            fresh.last_attempt_at,
            fresh.planned.len()
        ),
        (monday, 0, None, 0),
        "a fresh mailbox: the mailbox-local date of now, nothing used, no attempt, nothing planned"
    );
    let later = now + Duration::minutes(90); // 23:30 Monday local
    let tuesday = now + Duration::hours(3); // 01:00 Tuesday local
    let applied = plan(
        &store,
        now,
        vec![
            w.plan_send(&es[0], 0, now, 30),
            w.plan_send(&es[1], 0, tuesday, 30),
            w.plan_send(&es[2], 0, later, 30),
        ],
    )
    .await;
    assert_eq!(applied.planned.len(), 3, "fixture: three sends planned");
    let c = claim(&store, now, 10).await;
    assert_eq!(c.len(), 1, "fixture: one send due");
    let snaps = ok(
        "mailbox_snapshots",
        store
            .mailbox_snapshots(now, &[ny.id, MailboxId::new()])
            .await,
    );
    assert_eq!(
        snaps.len(),
        1,
        "mailbox_snapshots must leave out mailboxes not found"
    );
    let snap = &snaps[0];
    assert_eq!(snap.mailbox, ny, "the snapshot must carry the mailbox");
    assert_eq!(
        snap.local_date, monday,
        "local_date must be the mailbox-local date of now, not the UTC date"
    );
    assert_eq!(
        snap.used, 2,
        "used must count the attempt and the reservation on the local date, not the next day's"
    );
    assert_eq!(
        snap.last_attempt_at,
        Some(now),
        "last_attempt_at must be the instant of the latest claim"
    );
    let planned: Vec<_> = snap.planned.iter().map(|p| (p.send, p.at)).collect();
    let id_of = |i: usize| some("planned id", applied.planned.get(i).copied());
    let expected_ids: Vec<SendId> = vec![id_of(2), id_of(1)];
    assert_eq!(
        planned,
        vec![(expected_ids[0], later), (expected_ids[1], tuesday)],
        "planned must list the unclaimed planned sends, earliest first (the claimed one left out)"
    );
    assert_eq!(
        (snap.planned[0].enrollment, snap.planned[0].step),
        (es[2].id, 0),
        "each planned slot must name its enrollment and step"
    );
}

/// `DailyCounts`: "Step-0 sends planned or made per sequence on the UTC date", "Sends
/// planned or made per (tenant, recipient domain) on the UTC date", for the keys asked for
/// only.
pub async fn daily_counts_count_new_starts_and_domains<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 2, 3).await;
    let es = w.enroll_all(&store, t0()).await;
    let domain = |i: usize| w.contacts[i].email_domain();
    let keys: Vec<(sequence_core::ids::TenantId, String)> =
        (0..3).map(|i| (w.tenant, domain(i))).collect();
    let seqs = [w.sequence.id];
    let empty = ok("daily_counts", store.daily_counts(t0(), &seqs, &keys).await);
    assert!(
        empty.new_starts.is_empty() && empty.per_domain.is_empty(),
        "daily_counts of an empty day must be empty, got {empty:?}"
    );
    plan(
        &store,
        t0(),
        vec![
            w.plan_send(&es[0], 0, at(60), 30),
            w.plan_send(&es[1], 0, at(90), 30),
            w.plan_send(&es[2], 0, t0() + Duration::days(1), 30),
        ],
    )
    .await;
    // Step 0 of e0 is made; its step 1 planned the same day. Step 0 of e1 is called off.
    let c = claim(&store, at(60), 10).await;
    assert_eq!(c.len(), 1, "fixture: one send due on the one mailbox");
    let c0 = &c[0];
    ok(
        "complete_send",
        store.complete_send(at(60), sent(c0, at(60), 2)).await,
    );
    let e0 = w.enrollment(&store, es[0].id).await;
    plan(&store, at(60), vec![w.plan_send(&e0, 0, at(120), 30)]).await;
    let s1 = w.send(&store, es[1].id, 0).await;
    let mut e1 = w.enrollment(&store, es[1].id).await;
    let v1 = e1.version();
    if let Err(e) = e1.release_planned(at(62)) {
        panic!("fixture: release_planned: {e}");
    }
    ok(
        "apply_changes (cancel)",
        store
            .apply_changes(
                at(62),
                ChangeSet {
                    enrollments: vec![(e1, v1)],
                    cancel_sends: vec![s1.id],
                    ..ChangeSet::default()
                },
            )
            .await,
    );
    let today = ok(
        "daily_counts",
        store.daily_counts(at(180), &seqs, &keys).await,
    );
    assert_eq!(
        today.new_starts.get(&w.sequence.id).copied().unwrap_or(0),
        1,
        "new_starts must count the step-0 sends planned or made on the UTC date (a cancelled one is neither; another day's is not today's): {today:?}"
    );
    let per = |counts: &sequence_core::store::DailyCounts, i: usize| {
        counts
            .per_domain
            .get(&(w.tenant, domain(i)))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(
        (per(&today, 0), per(&today, 1), per(&today, 2)),
        (2, 0, 0),
        "per_domain must count every step planned or made for the domain on the UTC date: {today:?}"
    );
    let tomorrow = ok(
        "daily_counts",
        store
            .daily_counts(t0() + Duration::days(1), &seqs, &keys)
            .await,
    );
    assert_eq!(
        (
            tomorrow
                .new_starts
                .get(&w.sequence.id)
                .copied()
                .unwrap_or(0),
            per(&tomorrow, 2),
            per(&tomorrow, 0)
        ),
        (1, 1, 0),
        "the next UTC date must count its own sends only: {tomorrow:?}"
    );
}

/// `next_wakeup`: "The earliest instant at which something is due: an enrollment's
/// `next_due_at` (a paused one's `paused_until`), a planned send's instant, or the expiry of
/// a lease in flight (`None` when nothing is waiting)."
pub async fn next_wakeup_is_the_earliest_due_or_planned_instant<S: Store + 'static>(store: S) {
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        None,
        "next_wakeup of an empty store must be None"
    );
    let w = World::build(&store, 1, 30, 1, 2).await;
    let rows: Vec<_> = w
        .contacts
        .iter()
        .zip([at(180), at(60)])
        .map(|(c, due)| {
            sequence_core::enrollment::Enrollment::new(w.tenant, w.sequence.id, c.id, t0(), due)
        })
        .collect();
    ok("enroll", store.enroll(w.tenant, t0(), rows.clone()).await);
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        Some(at(60)),
        "next_wakeup must be the earliest next_due_at"
    );
    let e1 = w.enrollment(&store, rows[1].id).await;
    plan(&store, at(60), vec![w.plan_send(&e1, 0, at(120), 30)]).await;
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        Some(at(120)),
        "next_wakeup must be the earliest of next_due_at and planned instants"
    );
    let c = claim(&store, at(120), 10).await;
    assert_eq!(c.len(), 1, "fixture: the planned send is claimed");
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        Some(c[0].lease.until.min(at(180))),
        "a claimed send is no longer waiting, but its lease's expiry is"
    );
    ok(
        "complete_send",
        store.complete_send(at(120), sent(&c[0], at(120), 1)).await,
    );
    let e0 = w.enrollment(&store, rows[0].id).await;
    let mut gone = e0.clone();
    if let Err(e) = gone.exit(sequence_core::enrollment::ExitReason::Manual, at(121)) {
        panic!("fixture: exit: {e}");
    }
    ok(
        "apply_changes (exit)",
        crate::fixtures::write_enrollment(&store, gone, e0.version()).await,
    );
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        None,
        "next_wakeup must be None when nothing is waiting"
    );
}
