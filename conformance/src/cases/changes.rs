//! `apply_changes`: atomic change sets.

use sequence_core::enrollment::{EnrollmentStatus, ExitReason};
use sequence_core::error::Entity;
use sequence_core::ids::SendId;
use sequence_core::send::{SendStatus, TrackingKind, TrackingMark};
use sequence_core::store::{ChangeSet, Store, StoreError};

use crate::fixtures::{at, claim, ok, plan, sent, some, t0, World};

/// `apply_changes`: "all versions match, or nothing is written and the first mismatch is
/// returned as `VersionConflict`".
pub async fn apply_changes_is_all_or_nothing<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 2, 2).await;
    let es = w.enroll_all(&store, t0()).await;
    let mut c = w.contacts[0].clone().with_tag("changed");
    c.record_activity(at(1));
    let mut e0 = es[0].clone();
    let mut e1 = es[1].clone();
    if e0.pause(None).is_err() || e1.pause(None).is_err() {
        panic!("fixture: pause");
    }
    let r = store
        .apply_changes(
            at(1),
            ChangeSet {
                contacts: vec![(c, 0)],
                enrollments: vec![(e0, es[0].version()), (e1, es[1].version() + 5)],
                ..ChangeSet::default()
            },
        )
        .await;
    match r {
        Err(StoreError::VersionConflict {
            entity,
            expected,
            found,
            ..
        }) => {
            assert_eq!(
                entity,
                Entity::Enrollment,
                "the conflict must name the entity"
            );
            assert_eq!(
                (expected, found),
                (es[1].version() + 5, es[1].version()),
                "the conflict must carry the versions read and stored"
            );
        }
        other => panic!(
            "apply_changes with one stale version must fail with VersionConflict, got {other:?}"
        ),
    }
    let e0 = w.enrollment(&store, es[0].id).await;
    assert_eq!(
        e0, es[0],
        "apply_changes refused: the other enrollment must not be written"
    );
    let c = some(
        "get_contact",
        ok(
            "get_contact",
            store.get_contact(w.tenant, w.contacts[0].id).await,
        ),
    );
    assert_eq!(
        c, w.contacts[0],
        "apply_changes refused: the contact must not be written"
    );
}

/// `ChangeSet::cancel_sends`: "Planned sends to cancel (their reservation is released).
/// Sends no longer planned are left as they are."
pub async fn apply_changes_cancels_planned_sends_and_frees_capacity<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 2, 2).await;
    let es = w.enroll_all(&store, t0()).await;
    let applied = plan(
        &store,
        t0(),
        vec![
            w.plan_send(&es[0], 0, at(60), 30),
            w.plan_send(&es[1], 0, at(0), 30),
        ],
    )
    .await;
    assert_eq!(applied.planned.len(), 2, "fixture: both sends planned");
    let claimed = claim(&store, t0(), 10).await;
    assert_eq!(claimed.len(), 1, "fixture: the due send is claimed");
    let before = w.snapshot(&store, t0(), 0).await;
    assert_eq!(before.used, 2, "fixture: one attempt and one reservation");
    ok(
        "apply_changes (cancel)",
        store
            .apply_changes(
                t0(),
                ChangeSet {
                    cancel_sends: applied.planned.clone(),
                    ..ChangeSet::default()
                },
            )
            .await,
    );
    let planned = w.send(&store, es[0].id, 0).await;
    assert_eq!(
        planned.status(),
        SendStatus::Cancelled,
        "cancel_sends must cancel a planned send"
    );
    let sending = w.send(&store, es[1].id, 0).await;
    assert_eq!(
        sending.status(),
        SendStatus::Sending,
        "cancel_sends must leave a send that is no longer planned as it is"
    );
    let after = w.snapshot(&store, t0(), 0).await;
    assert_eq!(
        after.used, 1,
        "cancelling a planned send must release its reservation (and keep the attempt)"
    );
    assert!(
        after.planned.is_empty(),
        "a cancelled send must leave the mailbox's planned list"
    );
    let again = claim(&store, at(61), 10).await;
    assert!(
        again.iter().all(|c| c.send.id != planned.id),
        "a cancelled send must never be claimed"
    );
}

/// `ChangeSet::tracking`: "Opens and clicks to record on sends (first of each kind wins;
/// unknown sends are ignored)."
pub async fn apply_changes_keeps_the_first_tracking_mark<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let e = w.enroll_all(&store, t0()).await.remove(0);
    plan(&store, t0(), vec![w.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    ok(
        "complete_send",
        store.complete_send(t0(), sent(&c, t0(), 1)).await,
    );
    let mark = |kind, minutes| TrackingMark {
        send: c.send.id,
        kind,
        at: at(minutes),
    };
    for (kind, minutes) in [
        (TrackingKind::Open, 10),
        (TrackingKind::Open, 20),
        (TrackingKind::Click, 30),
    ] {
        ok(
            "apply_changes (tracking)",
            store
                .apply_changes(
                    at(minutes),
                    ChangeSet {
                        tracking: vec![mark(kind, minutes)],
                        ..ChangeSet::default()
                    },
                )
                .await,
        );
    }
    let unknown = ChangeSet {
        tracking: vec![TrackingMark {
            send: SendId::new(),
            kind: TrackingKind::Open,
            at: at(40),
        }],
        ..ChangeSet::default()
    };
    ok(
        "apply_changes with a mark on an unknown send (must be ignored)",
        store.apply_changes(at(40), unknown).await,
    );
    let s = w.send(&store, e.id, 0).await;
    assert_eq!(
        s.opened_at(),
        Some(at(10)),
        "the first open must win; later opens must not move it"
    );
    assert_eq!(s.clicked_at(), Some(at(30)), "a click must be recorded");
    assert_eq!(
        s.status(),
        SendStatus::Sent,
        "tracking must not change the send's status"
    );
}

/// `ChangeSet::sequences` and `ChangeSet::mailboxes` are "each with the version it was read
/// at": a mismatch refuses the whole set.
pub async fn apply_changes_checks_sequence_and_mailbox_versions<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let mut seq = w.sequence.clone();
    if let Err(e) = seq.pause() {
        panic!("fixture: pause sequence: {e}");
    }
    let mut mb = w.mailboxes[0].clone();
    if let Err(e) = mb.pause() {
        panic!("fixture: pause mailbox: {e}");
    }
    let e = w.enroll_all(&store, t0()).await.remove(0);
    let mut ended = e.clone();
    if let Err(err) = ended.exit(ExitReason::Manual, t0()) {
        panic!("fixture: exit: {err}");
    }
    let r = store
        .apply_changes(
            t0(),
            ChangeSet {
                enrollments: vec![(ended.clone(), e.version())],
                sequences: vec![(seq.clone(), w.sequence.version() + 1)],
                ..ChangeSet::default()
            },
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::VersionConflict { entity: Entity::Sequence, .. })),
        "apply_changes with a stale sequence version must fail with VersionConflict on the sequence, got {r:?}"
    );
    let r = store
        .apply_changes(
            t0(),
            ChangeSet {
                enrollments: vec![(ended.clone(), e.version())],
                mailboxes: vec![(mb.clone(), w.mailboxes[0].version() + 1)],
                ..ChangeSet::default()
            },
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::VersionConflict { entity: Entity::Mailbox, .. })),
        "apply_changes with a stale mailbox version must fail with VersionConflict on the mailbox, got {r:?}"
    );
    assert_eq!(
        w.enrollment(&store, e.id).await.status(),
        EnrollmentStatus::Active,
        "a refused change set must not write its enrollments"
    );
    ok(
        "apply_changes (right versions)",
        store
            .apply_changes(
                t0(),
                ChangeSet {
                    enrollments: vec![(ended, e.version())],
                    sequences: vec![(seq.clone(), w.sequence.version())],
                    mailboxes: vec![(mb.clone(), w.mailboxes[0].version())],
                    ..ChangeSet::default()
                },
            )
            .await,
    );
    let stored_seq = ok("get_sequence", store.get_sequence(w.tenant, seq.id).await);
    assert_eq!(
        stored_seq.map(|s| s.status()),
        Some(seq.status()),
        "apply_changes must write the sequence"
    );
    let stored_mb = ok("get_mailbox", store.get_mailbox(w.tenant, mb.id).await);
    assert_eq!(
        stored_mb.map(|m| m.status()),
        Some(mb.status()),
        "apply_changes must write the mailbox"
    );
    assert_eq!(
        w.enrollment(&store, e.id).await.status(),
        EnrollmentStatus::Exited,
        "apply_changes must write the enrollment"
    );
}
