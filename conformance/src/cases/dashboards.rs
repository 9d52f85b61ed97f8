//! What hosts read for dashboards and contact pages: a contact's whole history, and a
//! mailbox's use per local day.

use chrono::{Duration, NaiveDate};
use sequence_core::enrollment::{Enrollment, EnrollmentStatus, ExitReason};
use sequence_core::ids::TenantId;
use sequence_core::send::{SendStatus, TrackingKind, TrackingMark};
use sequence_core::store::{
    ChangeSet, EnrollOutcome, MailboxDay, SequenceTally, Store, StoreError,
};

use crate::fixtures::{at, claim, failed, ok, plan, sent, sequence, t0, write_enrollment, World};

/// `enrollments_of_contact`: "Every enrollment of a contact of `tenant`, final ones
/// included, oldest first".
pub async fn enrollments_of_contact_lists_the_whole_history<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 10, 1, 2).await;
    let second = sequence(w.tenant, "Second", 1, &w.mailboxes);
    ok("save_sequence", store.save_sequence(&second, None).await);
    let ann = w.contacts[0].id;
    let first = w.enroll_all(&store, t0()).await;
    // A later enrollment of the same contact in the second sequence.
    let later = Enrollment::new(w.tenant, second.id, ann, at(30), at(30));
    let answers = ok("enroll", store.enroll(w.tenant, at(30), vec![later]).await);
    let EnrollOutcome::Enrolled { enrollment: later } = answers[0] else {
        panic!("enroll refused the second sequence's row: {answers:?}");
    };
    // The first one ends: it must still be listed.
    let mut ended = first[0].clone();
    let read = ended.version();
    if let Err(e) = ended.exit(ExitReason::Replied, at(40)) {
        panic!("fixture: exit refused: {e}");
    }
    ok("apply_changes", write_enrollment(&store, ended, read).await);
    let ids: Vec<_> = ok(
        "enrollments_of_contact",
        store.enrollments_of_contact(w.tenant, ann).await,
    )
    .into_iter()
    .map(|e| (e.id, e.is_final()))
    .collect();
    assert_eq!(
        ids,
        vec![(first[0].id, true), (later, false)],
        "enrollments_of_contact must list every enrollment of the contact, final ones \
         included, oldest first"
    );
    let other = ok(
        "enrollments_of_contact",
        store.enrollments_of_contact(TenantId::new(), ann).await,
    );
    assert!(
        other.is_empty(),
        "enrollments_of_contact must not answer another tenant's enrollments"
    );
}

/// `mailbox_days`: "What a mailbox of `tenant` used on each of its local dates from `from`
/// to `to` ... one row per date in order, zeros for a date with nothing. `NotFound` when
/// the mailbox is not the tenant's; `Invalid` when the range is empty or too long."
pub async fn mailbox_days_count_attempts_and_reservations<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 10, 1, 3).await;
    let es = w.enroll_all(&store, t0()).await;
    let applied = plan(
        &store,
        t0(),
        es.iter()
            .enumerate()
            .map(|(i, e)| w.plan_send(e, 0, at(10 * i as i64), 10))
            .collect(),
    )
    .await;
    assert_eq!(applied.planned.len(), 3, "fixture: {applied:?}");
    let claimed = claim(&store, at(0), 1).await;
    assert_eq!(claimed.len(), 1, "fixture: one send claimed");
    let monday = t0().date_naive();
    let (sunday, tuesday) = (monday - Duration::days(1), monday + Duration::days(1));
    let id = w.mailboxes[0].id;
    let days = ok(
        "mailbox_days",
        store.mailbox_days(w.tenant, id, sunday, tuesday).await,
    );
    let expected = vec![
        MailboxDay {
            date: sunday,
            attempts: 0,
            used: 0,
        },
        MailboxDay {
            date: monday,
            attempts: 1,
            used: 3,
        },
        MailboxDay {
            date: tuesday,
            attempts: 0,
            used: 0,
        },
    ];
    assert_eq!(
        days, expected,
        "mailbox_days must answer each date in order: attempts made, and made plus planned"
    );
    let foreign = store
        .mailbox_days(TenantId::new(), id, monday, monday)
        .await;
    assert!(
        matches!(foreign, Err(StoreError::NotFound { .. })),
        "mailbox_days of another tenant's mailbox must be NotFound, got {foreign:?}"
    );
    let far = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap_or(monday);
    for (from, to) in [(tuesday, monday), (monday, far)] {
        let r = store.mailbox_days(w.tenant, id, from, to).await;
        assert!(
            matches!(r, Err(StoreError::Invalid(_))),
            "mailbox_days from {from} to {to} must be Invalid, got {r:?}"
        );
    }
}

/// `sequence_tally`: "A sequence of `tenant` counted: its enrollments by status and exit
/// reason, its sends by step, A/B variant and status ... empty for another tenant's
/// sequence."
pub async fn sequence_tally_counts_enrollments_and_sends_by_group<S: Store + 'static>(store: S) {
    let w = World::build(&store, 4, 30, 1, 5).await;
    let es = w.enroll_all(&store, t0()).await;
    let items = (0..4).map(|i| w.plan_send(&es[i], i, t0(), 30)).collect();
    plan(&store, t0(), items).await;
    let claims = claim(&store, t0(), 10).await;
    assert_eq!(claims.len(), 4, "one claim per mailbox");
    let of = |i: usize| {
        claims
            .iter()
            .find(|c| c.send.enrollment == es[i].id)
            .unwrap_or_else(|| panic!("fixture: enrollment {i} was claimed"))
    };
    // Two sent (completed, one of them replied), one failed for good, one left sending.
    let mut first = sent(of(0), at(90), 1);
    first.enrollment.record_reply(at(95));
    let completions = vec![first, sent(of(1), at(90), 1), failed(of(2), at(90), None)];
    for c in completions {
        ok("complete_send", store.complete_send(at(90), c).await);
    }
    let marks = [
        (of(0).send.id, TrackingKind::Open),
        (of(0).send.id, TrackingKind::Click),
        (of(1).send.id, TrackingKind::Open),
    ];
    let tracking = marks
        .into_iter()
        .map(|(send, kind)| TrackingMark {
            send,
            kind,
            at: at(100),
        })
        .collect();
    let marked = ChangeSet {
        tracking,
        ..ChangeSet::default()
    };
    ok(
        "apply_changes (tracking)",
        store.apply_changes(at(100), marked).await,
    );
    // The fifth exits by hand half an hour in.
    let mut manual = es[4].clone();
    if let Err(err) = manual.exit(ExitReason::Manual, at(30)) {
        panic!("fixture: exit: {err}");
    }
    ok(
        "apply_changes (exit)",
        write_enrollment(&store, manual, es[4].version()).await,
    );

    let tally = ok(
        "sequence_tally",
        store.sequence_tally(w.tenant, w.sequence.id).await,
    );
    let group = |status: EnrollmentStatus, reason: Option<ExitReason>| {
        tally
            .enrollments
            .iter()
            .find(|t| t.status == status && t.exit_reason == reason)
            .map(|t| (t.count, t.started, t.replied, t.ended, t.seconds_to_end))
    };
    assert_eq!(tally.enrollments.len(), 4, "{tally:?}");
    assert_eq!(
        group(EnrollmentStatus::Completed, None),
        Some((2, 2, 1, 2, 2 * 90 * 60)),
        "two completed 90 minutes after enrolling, both started, one replied: {tally:?}"
    );
    assert_eq!(
        group(EnrollmentStatus::Exited, Some(ExitReason::Failed)),
        Some((1, 0, 0, 1, 90 * 60)),
        "{tally:?}"
    );
    assert_eq!(
        group(EnrollmentStatus::Exited, Some(ExitReason::Manual)),
        Some((1, 0, 0, 1, 30 * 60)),
        "{tally:?}"
    );
    assert_eq!(
        group(EnrollmentStatus::Active, None),
        Some((1, 0, 0, 0, 0)),
        "the one still sending is active: {tally:?}"
    );
    let sends: Vec<(SendStatus, u64, u64, u64)> = tally
        .sends
        .iter()
        .map(|t| {
            assert_eq!((t.step, t.variant), (0, 0), "{tally:?}");
            (t.status, t.count, t.opened, t.clicked)
        })
        .collect();
    for expected in [
        (SendStatus::Sent, 2, 2, 1),
        (SendStatus::Failed, 1, 0, 0),
        (SendStatus::Sending, 1, 0, 0),
    ] {
        assert!(sends.contains(&expected), "{expected:?} in {tally:?}");
    }
    assert_eq!(sends.len(), 3, "{tally:?}");

    let rows = SequenceTally::of(
        &ok(
            "list_enrollments",
            store.list_enrollments(w.tenant, w.sequence.id).await,
        ),
        &ok(
            "sends_of_sequence",
            store.sends_of_sequence(w.tenant, w.sequence.id).await,
        ),
    );
    assert_eq!(tally, rows, "the tally must count the rows the store lists");
    let other = ok(
        "sequence_tally (another tenant)",
        store.sequence_tally(TenantId::new(), w.sequence.id).await,
    );
    assert_eq!(
        other,
        SequenceTally::default(),
        "another tenant's sequence counts nothing"
    );
}
