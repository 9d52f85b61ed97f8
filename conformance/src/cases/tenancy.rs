//! Tenant isolation: "no read or write crosses tenants" (`TenantId`), "Every method ... is
//! scoped to a tenant where it takes one" (`Store`).

use sequence_core::enrollment::Enrollment;
use sequence_core::ids::TenantId;
use sequence_core::store::{ChangeSet, EnrollOutcome, Store, StoreError};

use crate::fixtures::{claim, ok, plan, sent, t0, World};

/// Tenant B can read none of tenant A's rows, by id or in lists.
pub async fn tenant_cannot_read_another_tenants_rows<S: Store + 'static>(store: S) {
    let a = World::build(&store, 1, 30, 1, 1).await;
    let b = World::build(&store, 1, 30, 1, 1).await;
    let e = a.enroll_all(&store, t0()).await.remove(0);
    b.enroll_all(&store, t0()).await;
    plan(&store, t0(), vec![a.plan_send(&e, 0, t0(), 30)]).await;
    let c = claim(&store, t0(), 10).await;
    for c in &c {
        ok(
            "complete_send",
            store.complete_send(t0(), sent(c, t0(), 1)).await,
        );
    }
    let tb = b.tenant;
    let leaks: Vec<(&str, bool)> = vec![
        (
            "get_sequence",
            ok("get_sequence", store.get_sequence(tb, a.sequence.id).await).is_some(),
        ),
        (
            "list_sequences",
            ok("list_sequences", store.list_sequences(tb).await)
                .iter()
                .any(|s| s.tenant != tb),
        ),
        (
            "get_mailbox",
            ok(
                "get_mailbox",
                store.get_mailbox(tb, a.mailboxes[0].id).await,
            )
            .is_some(),
        ),
        (
            "list_mailboxes",
            ok("list_mailboxes", store.list_mailboxes(tb).await)
                .iter()
                .any(|m| m.tenant != tb),
        ),
        (
            "get_contact",
            ok("get_contact", store.get_contact(tb, a.contacts[0].id).await).is_some(),
        ),
        (
            "find_contact_by_email",
            // B has a contact with the same address of its own: it may find that one only.
            ok(
                "find_contact_by_email",
                store.find_contact_by_email(tb, &a.contacts[0].email).await,
            )
            .is_some_and(|c| c.id == a.contacts[0].id || c.tenant != tb),
        ),
        (
            "get_enrollment",
            ok("get_enrollment", store.get_enrollment(tb, e.id).await).is_some(),
        ),
        (
            "list_enrollments",
            !ok(
                "list_enrollments",
                store.list_enrollments(tb, a.sequence.id).await,
            )
            .is_empty(),
        ),
        (
            "open_enrollments_of_contact",
            !ok(
                "open_enrollments_of_contact",
                store
                    .open_enrollments_of_contact(tb, a.contacts[0].id)
                    .await,
            )
            .is_empty(),
        ),
        (
            "sends_of_enrollment",
            !ok(
                "sends_of_enrollment",
                store.sends_of_enrollment(tb, e.id).await,
            )
            .is_empty(),
        ),
        (
            "sends_of_sequence",
            !ok(
                "sends_of_sequence",
                store.sends_of_sequence(tb, a.sequence.id).await,
            )
            .is_empty(),
        ),
    ];
    let leaked: Vec<&str> = leaks.iter().filter(|(_, l)| *l).map(|(m, _)| *m).collect();
    assert!(
        leaked.is_empty(),
        "tenant B read tenant A's rows through: {leaked:?}"
    );
    // A's own reads still work, so the checks above are not vacuous.
    assert!(
        ok("get_enrollment", store.get_enrollment(a.tenant, e.id).await).is_some()
            && !ok(
                "sends_of_sequence",
                store.sends_of_sequence(a.tenant, a.sequence.id).await
            )
            .is_empty(),
        "tenant A must read its own enrollment and sends"
    );
}

/// Tenant B can change none of tenant A's rows: saves, upserts, enrollments and change sets
/// naming A's ids are refused, and A's rows stay as they were.
pub async fn tenant_cannot_change_another_tenants_rows<S: Store + 'static>(store: S) {
    let a = World::build(&store, 1, 30, 1, 1).await;
    let b = World::build(&store, 1, 30, 1, 1).await;
    let tb = b.tenant;
    let e = a.enroll_all(&store, t0()).await.remove(0);

    let mut seq = a.sequence.clone();
    seq.tenant = tb;
    seq.name = "Hijacked".into();
    let r1 = store.save_sequence(&seq, Some(a.sequence.version())).await;
    let r2 = store.save_sequence(&seq, None).await;
    assert!(
        r1.is_err() && r2.is_err(),
        "save_sequence must refuse to overwrite another tenant's sequence (replace: {r1:?}, insert: {r2:?})"
    );
    let mut mb = a.mailboxes[0].clone();
    mb.tenant = tb;
    mb.daily_limit = 1;
    let r1 = store
        .save_mailbox(&mb, Some(a.mailboxes[0].version()))
        .await;
    let r2 = store.save_mailbox(&mb, None).await;
    assert!(
        r1.is_err() && r2.is_err(),
        "save_mailbox must refuse to overwrite another tenant's mailbox (replace: {r1:?}, insert: {r2:?})"
    );
    let mut contact = a.contacts[0].clone();
    contact.tenant = tb;
    let r = store.upsert_contacts(tb, &[contact.clone()]).await;
    assert!(
        matches!(r, Err(StoreError::NotFound { .. })),
        "upsert_contacts must refuse another tenant's contact id with NotFound, got {r:?}"
    );
    let rows = vec![
        Enrollment::new(tb, a.sequence.id, b.contacts[0].id, t0(), t0()),
        Enrollment::new(tb, b.sequence.id, a.contacts[0].id, t0(), t0()),
        Enrollment::new(a.tenant, a.sequence.id, a.contacts[0].id, t0(), t0()),
    ];
    let answers = ok("enroll", store.enroll(tb, t0(), rows).await);
    assert!(
        answers
            .iter()
            .all(|o| matches!(o, EnrollOutcome::Invalid { .. })),
        "enroll must refuse (Invalid) rows naming another tenant's sequence, contact or tenant, got {answers:?}"
    );
    let mut moved = e.clone();
    moved.tenant = tb;
    if let Err(err) = moved.pause(None) {
        panic!("fixture: pause: {err}");
    }
    let r = store
        .apply_changes(
            t0(),
            ChangeSet {
                enrollments: vec![(moved, e.version())],
                ..ChangeSet::default()
            },
        )
        .await;
    assert!(
        r.is_err(),
        "apply_changes must refuse an enrollment relabelled with another tenant, got {r:?}"
    );
    let r = store
        .apply_changes(
            t0(),
            ChangeSet {
                contacts: vec![(contact.clone(), contact.version())],
                ..ChangeSet::default()
            },
        )
        .await;
    assert!(
        r.is_err(),
        "apply_changes must refuse a contact relabelled with another tenant, got {r:?}"
    );

    // Tenant A's rows are untouched.
    assert_eq!(
        ok(
            "get_sequence",
            store.get_sequence(a.tenant, a.sequence.id).await
        )
        .as_ref(),
        Some(&a.sequence),
        "tenant A's sequence must be unchanged"
    );
    assert_eq!(
        ok(
            "get_mailbox",
            store.get_mailbox(a.tenant, a.mailboxes[0].id).await
        )
        .as_ref(),
        Some(&a.mailboxes[0]),
        "tenant A's mailbox must be unchanged"
    );
    assert_eq!(
        ok(
            "get_contact",
            store.get_contact(a.tenant, a.contacts[0].id).await
        )
        .as_ref(),
        Some(&a.contacts[0]),
        "tenant A's contact must be unchanged"
    );
    assert_eq!(
        a.enrollment(&store, e.id).await,
        e,
        "tenant A's enrollment must be unchanged"
    );
    assert!(
        ok("list_sequences", store.list_sequences(tb).await)
            .iter()
            .all(|s| s.id != a.sequence.id),
        "tenant B must not have gained tenant A's sequence"
    );
    let _ = TenantId::new();
}
