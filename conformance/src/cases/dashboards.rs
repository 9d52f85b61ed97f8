//! What hosts read for dashboards and contact pages: a contact's whole history, and a
//! mailbox's use per local day.

use chrono::{Duration, NaiveDate};
use sequence_core::enrollment::{Enrollment, ExitReason};
use sequence_core::ids::TenantId;
use sequence_core::store::{EnrollOutcome, MailboxDay, Store, StoreError};

use crate::fixtures::{at, claim, ok, plan, sequence, t0, write_enrollment, World};

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
