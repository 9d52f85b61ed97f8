//! `enroll`, the enrollment reads and `due_enrollments`.

use chrono::Duration;
use sequence_core::enrollment::{
    Deferral, DeferralReason, Enrollment, EnrollmentStatus, ExitReason,
};
use sequence_core::ids::{ContactId, EnrollmentId, TenantId};
use sequence_core::sequence::ReenrollmentRule;
use sequence_core::store::{EnrollOutcome, Store};

use sequence_core::contact::ContactStatus;
use sequence_core::store::ChangeSet;

use crate::fixtures::{
    at, contact, due_documents, ok, sequence, some, t0, write_enrollment, World,
};

/// `enroll`: "one answer per row in order. A row is refused when its contact is unknown in
/// the tenant, is not sendable, or already has an active or paused enrollment in the
/// sequence ... The valid rows are stored even when others are refused."
pub async fn enroll_answers_each_row_and_stores_the_valid_ones<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 2, 6).await;
    let t = w.tenant;
    let mut bounced = w.contacts[1].clone();
    bounced.mark_bounced();
    let mut unsubscribed = w.contacts[2].clone();
    unsubscribed.mark_unsubscribed();
    ok(
        "upsert_contacts",
        store.upsert_contacts(t, &[bounced, unsubscribed]).await,
    );
    let other = TenantId::new();
    let foreign = contact(other, "far", "away.example");
    ok(
        "upsert_contacts",
        store
            .upsert_contacts(other, std::slice::from_ref(&foreign))
            .await,
    );
    let row = |c: ContactId| Enrollment::new(t, w.sequence.id, c, t0(), t0());
    let first = row(w.contacts[0].id);
    let rows = vec![
        first.clone(),
        row(ContactId::new()),
        row(w.contacts[1].id),
        row(w.contacts[2].id),
        Enrollment::new(other, w.sequence.id, w.contacts[3].id, t0(), t0()),
        row(foreign.id),
        row(w.contacts[0].id),
        row(w.contacts[4].id),
    ];
    let last = rows[7].id;
    let answers = ok("enroll", store.enroll(t, t0(), rows).await);
    assert_eq!(answers.len(), 8, "enroll must answer once per row");
    let expect = |i: usize, ok: bool, what: &str| {
        assert!(ok, "enroll row {i} ({what}): got {:?}", answers[i]);
    };
    expect(
        0,
        answers[0]
            == EnrollOutcome::Enrolled {
                enrollment: first.id,
            },
        "a valid row must be Enrolled with its id",
    );
    expect(
        1,
        matches!(answers[1], EnrollOutcome::Invalid { .. }),
        "an unknown contact must be Invalid",
    );
    expect(
        2,
        matches!(answers[2], EnrollOutcome::Suppressed { .. }),
        "a bounced contact must be Suppressed",
    );
    expect(
        3,
        matches!(answers[3], EnrollOutcome::Suppressed { .. }),
        "an unsubscribed contact must be Suppressed",
    );
    expect(
        4,
        matches!(answers[4], EnrollOutcome::Invalid { .. }),
        "a row of another tenant must be Invalid",
    );
    expect(
        5,
        matches!(answers[5], EnrollOutcome::Invalid { .. }),
        "a contact of another tenant is unknown in this one: Invalid",
    );
    expect(
        6,
        answers[6]
            == EnrollOutcome::AlreadyEnrolled {
                enrollment: first.id,
            },
        "a second row for the same contact must be AlreadyEnrolled naming the first",
    );
    expect(
        7,
        answers[7] == EnrollOutcome::Enrolled { enrollment: last },
        "a valid row after refused ones must still be Enrolled",
    );
    let mut stored: Vec<EnrollmentId> = ok(
        "list_enrollments",
        store.list_enrollments(t, w.sequence.id).await,
    )
    .into_iter()
    .map(|e| e.id)
    .collect();
    stored.sort();
    let mut expected = vec![first.id, last];
    expected.sort();
    assert_eq!(
        stored, expected,
        "enroll must store exactly the valid rows, even when others are refused"
    );
    let e = w.enrollment(&store, first.id).await;
    assert_eq!(e, first, "an enrolled row must be stored as it was given");
}

/// `enroll`: uniqueness: a contact that "already has an active or paused enrollment in the
/// sequence" is refused (`AlreadyEnrolled` names the existing enrollment).
pub async fn enroll_refuses_a_second_open_enrollment<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 2, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    let again = Enrollment::new(w.tenant, w.sequence.id, w.contacts[0].id, t0(), t0());
    let answers = ok("enroll", store.enroll(w.tenant, at(1), vec![again]).await);
    assert_eq!(
        answers,
        vec![EnrollOutcome::AlreadyEnrolled { enrollment: e.id }],
        "enroll must refuse a second enrollment while one is active"
    );
    let mut paused = e.clone();
    if let Err(err) = paused.pause(None) {
        panic!("fixture: pause: {err}");
    }
    ok(
        "apply_changes (pause)",
        write_enrollment(&store, paused, e.version()).await,
    );
    let again = Enrollment::new(w.tenant, w.sequence.id, w.contacts[0].id, t0(), t0());
    let answers = ok("enroll", store.enroll(w.tenant, at(2), vec![again]).await);
    assert_eq!(
        answers,
        vec![EnrollOutcome::AlreadyEnrolled { enrollment: e.id }],
        "enroll must refuse a second enrollment while one is paused"
    );
}

async fn end<S: Store + 'static>(store: &S, w: &World, e: &Enrollment, completed: bool) {
    let mut ended = e.clone();
    let r = if completed {
        ended.skip_step(e.current_step(), t0(), None).map(|_| ())
    } else {
        ended.exit(ExitReason::Manual, t0()).map(|_| ())
    };
    if let Err(err) = r {
        panic!("fixture: end enrollment: {err}");
    }
    ok(
        "apply_changes (end enrollment)",
        write_enrollment(store, ended, e.version()).await,
    );
    let _ = w;
}

/// `enroll`: a row is refused "when an ended enrollment exists and the sequence's
/// re-enrollment rule refuses another at `now`".
pub async fn enroll_follows_the_reenrollment_rule<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 2).await;
    let t = w.tenant;
    let (done, gone) = (w.contacts[0].id, w.contacts[1].id);
    for rule in [
        ReenrollmentRule::Never,
        ReenrollmentRule::AfterDays { days: 3 },
        ReenrollmentRule::AfterExit,
        ReenrollmentRule::AfterCompletion,
    ] {
        let mut s = sequence(t, &format!("{rule:?}"), 1, &w.mailboxes);
        s.reenrollment = rule;
        ok("save_sequence", store.save_sequence(&s, None).await);
        let first = |c| Enrollment::new(t, s.id, c, t0(), t0());
        let answers = ok(
            "enroll",
            store.enroll(t, t0(), vec![first(done), first(gone)]).await,
        );
        let ids: Vec<EnrollmentId> = answers
            .iter()
            .map(|a| match a {
                EnrollOutcome::Enrolled { enrollment } => *enrollment,
                other => panic!("enroll ({rule:?}): a first enrollment was refused: {other:?}"),
            })
            .collect();
        let e_done = w.enrollment(&store, ids[0]).await;
        let e_gone = w.enrollment(&store, ids[1]).await;
        end(&store, &w, &e_done, true).await;
        end(&store, &w, &e_gone, false).await;

        let store = &store;
        let sid = s.id;
        let again = |c, now| async move {
            let row = Enrollment::new(t, sid, c, now, now);
            ok("enroll (again)", store.enroll(t, now, vec![row]).await).remove(0)
        };
        let refused = |a: &EnrollOutcome| matches!(a, EnrollOutcome::AlreadyEnrolled { .. });
        let accepted = |a: &EnrollOutcome| matches!(a, EnrollOutcome::Enrolled { .. });
        match rule {
            ReenrollmentRule::Never => {
                let a = again(done, t0() + Duration::days(400)).await;
                assert!(
                    refused(&a),
                    "re-enrollment rule Never must refuse a completed contact, got {a:?}"
                );
                let a = again(gone, t0() + Duration::days(400)).await;
                assert!(
                    refused(&a),
                    "re-enrollment rule Never must refuse an exited contact, got {a:?}"
                );
            }
            ReenrollmentRule::AfterDays { .. } => {
                let a = again(done, t0() + Duration::days(2)).await;
                assert!(
                    refused(&a),
                    "re-enrollment rule AfterDays(3) must refuse after 2 days, got {a:?}"
                );
                let a = again(done, t0() + Duration::days(3)).await;
                assert!(accepted(&a), "re-enrollment rule AfterDays(3) must accept once 3 days have passed, got {a:?}");
            }
            ReenrollmentRule::AfterExit => {
                let a = again(done, at(5)).await;
                assert!(
                    refused(&a),
                    "re-enrollment rule AfterExit must refuse after a completion, got {a:?}"
                );
                let a = again(gone, at(5)).await;
                assert!(
                    accepted(&a),
                    "re-enrollment rule AfterExit must accept after an exit, got {a:?}"
                );
            }
            _ => {
                let a = again(gone, at(5)).await;
                assert!(
                    refused(&a),
                    "re-enrollment rule AfterCompletion must refuse after an exit, got {a:?}"
                );
                let a = again(done, at(5)).await;
                assert!(
                    accepted(&a),
                    "re-enrollment rule AfterCompletion must accept after a completion, got {a:?}"
                );
            }
        }
    }
}

/// `get_enrollment`, `list_enrollments` ("Every enrollment of a sequence of `tenant`") and
/// `open_enrollments_of_contact` ("The enrollments of a contact of `tenant` that are not
/// final").
pub async fn enrollment_reads<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 2).await;
    let t = w.tenant;
    let es = w.enroll_all(&store, t0()).await;
    let other = sequence(t, "Other", 1, &w.mailboxes);
    ok("save_sequence", store.save_sequence(&other, None).await);
    let row = Enrollment::new(t, other.id, w.contacts[0].id, t0(), t0());
    ok("enroll", store.enroll(t, t0(), vec![row.clone()]).await);
    let mut listed: Vec<EnrollmentId> = ok(
        "list_enrollments",
        store.list_enrollments(t, w.sequence.id).await,
    )
    .into_iter()
    .map(|e| e.id)
    .collect();
    listed.sort();
    let mut expected: Vec<EnrollmentId> = es.iter().map(|e| e.id).collect();
    expected.sort();
    assert_eq!(
        listed, expected,
        "list_enrollments must return every enrollment of the sequence and no other"
    );
    let mut open: Vec<EnrollmentId> = ok(
        "open_enrollments_of_contact",
        store.open_enrollments_of_contact(t, w.contacts[0].id).await,
    )
    .into_iter()
    .map(|e| e.id)
    .collect();
    open.sort();
    let mut expected = vec![es[0].id, row.id];
    expected.sort();
    assert_eq!(
        open, expected,
        "open_enrollments_of_contact must return the contact's open enrollments in every sequence"
    );
    end(&store, &w, &es[0], false).await;
    let open: Vec<EnrollmentId> = ok(
        "open_enrollments_of_contact",
        store.open_enrollments_of_contact(t, w.contacts[0].id).await,
    )
    .into_iter()
    .map(|e| e.id)
    .collect();
    assert_eq!(
        open,
        vec![row.id],
        "open_enrollments_of_contact must leave out final enrollments"
    );
    let listed = ok(
        "list_enrollments",
        store.list_enrollments(t, w.sequence.id).await,
    );
    assert_eq!(
        listed.len(),
        2,
        "list_enrollments must still list ended enrollments"
    );
    let got = w.enrollment(&store, es[0].id).await;
    assert_eq!(
        got.status(),
        EnrollmentStatus::Exited,
        "get_enrollment must return the enrollment as last written"
    );
}

/// `due_enrollments`: "At most `limit` enrollments whose `next_due_at <= now`, earliest
/// first, with their contacts".
pub async fn due_enrollments_earliest_first_with_contacts_and_limit<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 5).await;
    let t = w.tenant;
    let dues = [at(-2), at(-30), at(0), at(1), at(-10)];
    let rows: Vec<Enrollment> = w
        .contacts
        .iter()
        .zip(dues)
        .map(|(c, due)| Enrollment::new(t, w.sequence.id, c.id, t0(), due))
        .collect();
    ok("enroll", store.enroll(t, t0(), rows.clone()).await);
    let due = ok("due_enrollments", store.due_enrollments(t0(), 100).await);
    let got: Vec<EnrollmentId> = due.iter().map(|d| d.id).collect();
    let expected = vec![rows[1].id, rows[4].id, rows[0].id, rows[2].id];
    assert_eq!(
        got, expected,
        "due_enrollments must return exactly those with next_due_at <= now, earliest first"
    );
    for (d, documents) in due.iter().zip(due_documents(&store, &due).await) {
        assert_eq!(
            (documents.enrollment.id, documents.contact.id),
            (d.id, d.contact),
            "due_enrollments must return each enrollment with its own contact"
        );
    }
    let two = ok("due_enrollments", store.due_enrollments(t0(), 2).await);
    let got: Vec<EnrollmentId> = two.iter().map(|d| d.id).collect();
    assert_eq!(
        got,
        vec![rows[1].id, rows[4].id],
        "due_enrollments must return at most `limit`, the earliest"
    );
}

/// `due_enrollments`: the rows it hands out are the caller's to change (a planner settles
/// them in place, copying a shared row first): changing one changes nothing stored, and a
/// later read still finds the row as it was.
pub async fn due_enrollments_hand_out_snapshots<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 2).await;
    let es = w.enroll_all(&store, at(-5)).await;
    let due = ok("due_enrollments", store.due_enrollments(t0(), 10).await);
    assert_eq!(due.len(), 2, "both enrollments are due");
    let mut documents = due_documents(&store, &due).await.remove(0);
    let row = std::sync::Arc::make_mut(&mut documents.enrollment);
    let id = row.id;
    if let Err(err) = row.exit(ExitReason::Manual, t0()) {
        panic!("fixture: exit: {err}");
    }
    let stored = ok("get_enrollment", store.get_enrollment(w.tenant, id).await);
    let before = es.iter().find(|e| e.id == id).cloned();
    assert_eq!(
        stored, before,
        "changing a row handed out by due_enrollments must not change the stored row"
    );
    let again = ok("due_enrollments", store.due_enrollments(t0(), 10).await);
    assert!(
        again.iter().any(|d| d.id == id && !d.status.is_final()),
        "the stored row must still be due and open"
    );
}

/// `due_enrollments`: "active ones, and paused ones whose `paused_until` has come".
pub async fn due_enrollments_include_paused_whose_pause_ran_out<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 3).await;
    let es = w.enroll_all(&store, at(-60)).await;
    for (e, until) in es.iter().zip([Some(at(-1)), Some(at(60)), None]) {
        let mut p = e.clone();
        if let Err(err) = p.pause(until) {
            panic!("fixture: pause: {err}");
        }
        ok(
            "apply_changes (pause)",
            write_enrollment(&store, p, e.version()).await,
        );
    }
    let due = ok("due_enrollments", store.due_enrollments(t0(), 100).await);
    let got: Vec<EnrollmentId> = due.iter().map(|d| d.id).collect();
    assert_eq!(
        got,
        vec![es[0].id],
        "due_enrollments must return a paused enrollment whose pause ran out, and no paused one whose pause runs on or has no end"
    );
    assert_eq!(
        due[0].status,
        EnrollmentStatus::Paused,
        "a due paused enrollment must come back as it is stored (paused)"
    );
    let later = ok("due_enrollments", store.due_enrollments(at(61), 100).await);
    assert_eq!(
        later.len(),
        2,
        "due_enrollments must return the second paused enrollment once its pause ran out"
    );
}

/// `due_enrollments` sees every write: an enrollment deferred to later is not due before
/// then, a woken one is due again, an ended one is never due.
pub async fn due_enrollments_follow_every_write<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    let mut deferred = e.clone();
    let deferral = Deferral {
        reason: DeferralReason::OutsideMailboxWindow,
        not_before: Some(at(90)),
    };
    if let Err(err) = deferred.defer(deferral) {
        panic!("fixture: defer: {err}");
    }
    ok(
        "apply_changes (defer)",
        write_enrollment(&store, deferred.clone(), e.version()).await,
    );
    let due = ok("due_enrollments", store.due_enrollments(t0(), 10).await);
    assert!(
        due.is_empty(),
        "an enrollment whose next_due_at moved past now must not be due"
    );
    let due = ok("due_enrollments", store.due_enrollments(at(90), 10).await);
    assert_eq!(
        due.len(),
        1,
        "an enrollment must be due once its new next_due_at has come"
    );
    let mut woken = deferred.clone();
    woken.wake(at(5));
    ok(
        "apply_changes (wake)",
        write_enrollment(&store, woken.clone(), deferred.version()).await,
    );
    let due = ok("due_enrollments", store.due_enrollments(at(5), 10).await);
    assert_eq!(
        due.len(),
        1,
        "an enrollment whose next_due_at moved earlier must be due from then"
    );
    let mut ended = woken.clone();
    if let Err(err) = ended.exit(ExitReason::Manual, at(6)) {
        panic!("fixture: exit: {err}");
    }
    ok(
        "apply_changes (exit)",
        write_enrollment(&store, ended, woken.version()).await,
    );
    let due = ok(
        "due_enrollments",
        store.due_enrollments(t0() + Duration::days(365), 10).await,
    );
    assert!(due.is_empty(), "an ended enrollment must never be due");
}

/// `due_enrollments`: each enrollment comes "with its contacts" as the contact is now, not
/// as it was when the enrollment was stored: a contact replaced by `upsert_contacts` (a new
/// zone) and one written by `apply_changes` (marked bounced) are read changed, and a
/// contact of two enrollments is read changed in both.
pub async fn due_enrollments_carry_the_contact_as_it_is_now<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 2).await;
    let t = w.tenant;
    let second = sequence(t, "Second", 1, &w.mailboxes);
    ok("save_sequence", store.save_sequence(&second, None).await);
    let mut rows: Vec<Enrollment> = w
        .contacts
        .iter()
        .map(|c| Enrollment::new(t, w.sequence.id, c.id, t0(), at(-5)))
        .collect();
    rows.push(Enrollment::new(
        t,
        second.id,
        w.contacts[0].id,
        t0(),
        at(-5),
    ));
    ok("enroll", store.enroll(t, t0(), rows).await);

    let moved = w.contacts[0]
        .clone()
        .with_timezone(chrono_tz::Asia::Kathmandu);
    ok(
        "upsert_contacts",
        store.upsert_contacts(t, std::slice::from_ref(&moved)).await,
    );
    let read = some(
        "get_contact",
        ok("get_contact", store.get_contact(t, w.contacts[1].id).await),
    );
    let mut bounced = read.clone();
    bounced.mark_bounced();
    ok(
        "apply_changes (contact)",
        store
            .apply_changes(
                t0(),
                ChangeSet {
                    contacts: vec![(bounced, read.version())],
                    ..ChangeSet::default()
                },
            )
            .await,
    );

    let due = ok("due_enrollments", store.due_enrollments(t0(), 10).await);
    assert_eq!(due.len(), 3, "all three enrollments are due");
    let documents = due_documents(&store, &due).await;
    for (d, documents) in due.iter().zip(&documents) {
        let stored = some(
            "get_contact",
            ok("get_contact", store.get_contact(t, d.contact).await),
        );
        assert_eq!(
            *documents.contact, stored,
            "due_enrollments must carry each contact as it is stored now"
        );
    }
    let of_moved = due
        .iter()
        .filter(|d| d.contact == moved.id)
        .filter(|d| d.contact_zone == Some(chrono_tz::Asia::Kathmandu))
        .count();
    assert_eq!(
        of_moved, 2,
        "both enrollments of a contact must carry its new zone"
    );
    assert!(
        due.iter()
            .any(|d| d.contact == read.id && d.contact_status == ContactStatus::Bounced),
        "a contact written by apply_changes must be read as written"
    );
}
