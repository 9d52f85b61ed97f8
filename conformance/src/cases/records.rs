//! Sequences, mailboxes and contacts: insert, replace, versions, reads.

use sequence_core::enrollment::Enrollment;
use sequence_core::ids::{SequenceId, TenantId};
use sequence_core::sequence::SequenceStatus;
use sequence_core::store::{DraftDeletion, EnrollOutcome, Store, StoreError};

use crate::fixtures::{contact, mailbox, ok, sequence, some, t0, World};

/// `save_sequence`: "Insert a sequence (`expected_version` `None`)"; `get_sequence`: "A
/// sequence of `tenant`"; `list_sequences`: "Every sequence of `tenant`"; `get_sequences`:
/// "Sequences by id, across tenants".
pub async fn sequence_insert_get_and_list<S: Store + 'static>(store: S) {
    let a = TenantId::new();
    let b = TenantId::new();
    let s1 = sequence(a, "First", 2, &[]);
    let s2 = sequence(a, "Second", 1, &[]);
    let other = sequence(b, "Other", 1, &[]);
    for s in [&s1, &s2, &other] {
        ok("save_sequence (insert)", store.save_sequence(s, None).await);
    }
    let got = ok("get_sequence", store.get_sequence(a, s1.id).await);
    assert_eq!(
        got.as_ref(),
        Some(&s1),
        "get_sequence must return the inserted sequence as written"
    );
    let mut listed: Vec<SequenceId> = ok("list_sequences", store.list_sequences(a).await)
        .into_iter()
        .map(|s| s.id)
        .collect();
    listed.sort();
    let mut expected = vec![s1.id, s2.id];
    expected.sort();
    assert_eq!(
        listed, expected,
        "list_sequences must return every sequence of the tenant and only those"
    );
    let missing = SequenceId::new();
    let mut across: Vec<SequenceId> = ok(
        "get_sequences",
        store.get_sequences(&[s1.id, other.id, missing]).await,
    )
    .into_iter()
    .map(|s| s.id)
    .collect();
    across.sort();
    let mut expected = vec![s1.id, other.id];
    expected.sort();
    assert_eq!(
        across, expected,
        "get_sequences must find sequences by id across tenants and leave unknown ids out"
    );
}

/// `save_sequence`: "Insert a sequence (`expected_version` `None`; fails with
/// `AlreadyExists`)".
pub async fn sequence_insert_twice_is_already_exists<S: Store + 'static>(store: S) {
    let t = TenantId::new();
    let s = sequence(t, "Once", 1, &[]);
    ok(
        "save_sequence (insert)",
        store.save_sequence(&s, None).await,
    );
    let mut again = s.clone();
    again.name = "Twice".into();
    let r = store.save_sequence(&again, None).await;
    assert!(
        matches!(r, Err(StoreError::AlreadyExists { .. })),
        "save_sequence with expected_version None for an existing id must fail with AlreadyExists, got {r:?}"
    );
    let stored = ok("get_sequence", store.get_sequence(t, s.id).await);
    assert_eq!(
        stored.map(|s| s.name),
        Some("Once".to_owned()),
        "a refused insert must not change the stored sequence"
    );
}

/// `save_sequence`: "replace it when the stored version equals `expected_version` (else
/// `VersionConflict`)".
pub async fn sequence_replace_checks_the_version<S: Store + 'static>(store: S) {
    let t = TenantId::new();
    let s = sequence(t, "Versioned", 1, &[]);
    ok(
        "save_sequence (insert)",
        store.save_sequence(&s, None).await,
    );
    let mut changed = s.clone();
    changed.description = "changed".into();
    changed.set_version(s.version() + 1);
    let r = store.save_sequence(&changed, Some(s.version() + 7)).await;
    match r {
        Err(StoreError::VersionConflict {
            expected, found, ..
        }) => {
            assert_eq!(
                (expected, found),
                (s.version() + 7, s.version()),
                "VersionConflict must carry the version the caller read and the version stored"
            );
        }
        other => panic!("save_sequence with a stale expected_version must fail with VersionConflict, got {other:?}"),
    }
    let stored = ok("get_sequence", store.get_sequence(t, s.id).await);
    assert_eq!(
        stored.as_ref(),
        Some(&s),
        "a refused replace must leave the sequence as it was"
    );
    ok(
        "save_sequence (replace at the stored version)",
        store.save_sequence(&changed, Some(s.version())).await,
    );
    let stored = ok("get_sequence", store.get_sequence(t, s.id).await);
    assert_eq!(
        stored.as_ref(),
        Some(&changed),
        "save_sequence with the stored version must replace the sequence"
    );
    let r = store.save_sequence(&changed, Some(s.version())).await;
    assert!(
        matches!(r, Err(StoreError::VersionConflict { .. })),
        "a second writer holding the old version must get VersionConflict, got {r:?}"
    );
}

/// `delete_draft_sequence`: "the sequence is deleted only if ... it is still a draft ...
/// and has no enrollment. Otherwise nothing is written"; "A sequence of another tenant is
/// `NotFound`, exactly as a missing one, and is left untouched"; "afterwards no read finds
/// it".
pub async fn delete_draft_sequence_deletes_only_a_draft_of_the_tenant<S: Store + 'static>(
    store: S,
) {
    let w = World::build(&store, 1, 10, 1, 1).await;
    let t = w.tenant;
    let draft = sequence(t, "Draft", 2, &[]);
    let kept = sequence(t, "Kept draft", 1, &[]);
    let theirs = sequence(TenantId::new(), "Theirs", 1, &[]);
    for s in [&draft, &kept, &theirs] {
        ok("save_sequence (insert)", store.save_sequence(s, None).await);
    }

    let answer = ok(
        "delete_draft_sequence",
        store.delete_draft_sequence(t, draft.id).await,
    );
    assert_eq!(
        answer,
        DraftDeletion::Deleted,
        "a draft of the tenant is deleted"
    );
    assert!(
        ok("get_sequence", store.get_sequence(t, draft.id).await).is_none(),
        "get_sequence must not find a deleted draft"
    );
    let listed: Vec<SequenceId> = ok("list_sequences", store.list_sequences(t).await)
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(
        !listed.contains(&draft.id) && listed.contains(&kept.id),
        "list_sequences must leave the deleted draft out and keep the others: {listed:?}"
    );
    assert!(
        ok("get_sequences", store.get_sequences(&[draft.id]).await).is_empty(),
        "get_sequences must not find a deleted draft"
    );
    assert_eq!(
        ok(
            "delete_draft_sequence (again)",
            store.delete_draft_sequence(t, draft.id).await
        ),
        DraftDeletion::NotFound,
        "a deleted draft is not found a second time"
    );

    // Not a draft: refused, and left exactly as it was.
    let active = ok("get_sequence", store.get_sequence(t, w.sequence.id).await);
    assert_eq!(
        ok(
            "delete_draft_sequence (active)",
            store.delete_draft_sequence(t, w.sequence.id).await
        ),
        DraftDeletion::NotDraft {
            status: SequenceStatus::Active
        },
        "an active sequence is refused with its status"
    );
    assert_eq!(
        ok("get_sequence", store.get_sequence(t, w.sequence.id).await),
        active,
        "a refused delete must leave the sequence unchanged"
    );

    // Another tenant's draft: not found, and untouched.
    assert_eq!(
        ok(
            "delete_draft_sequence (another tenant's)",
            store.delete_draft_sequence(t, theirs.id).await
        ),
        DraftDeletion::NotFound,
        "another tenant's draft must be answered as missing"
    );
    assert_eq!(
        ok(
            "get_sequence",
            store.get_sequence(theirs.tenant, theirs.id).await
        )
        .as_ref(),
        Some(&theirs),
        "another tenant's draft must be left untouched"
    );

    // A draft a host enrolled a contact into through the store: refused, kept.
    let row = Enrollment::new(t, kept.id, w.contacts[0].id, t0(), t0());
    let enrolled = ok("enroll", store.enroll(t, t0(), vec![row]).await);
    assert!(
        matches!(enrolled[0], EnrollOutcome::Enrolled { .. }),
        "fixture: enroll into the draft: {enrolled:?}"
    );
    assert_eq!(
        ok(
            "delete_draft_sequence (with an enrollment)",
            store.delete_draft_sequence(t, kept.id).await
        ),
        DraftDeletion::HasEnrollments,
        "a draft with an enrollment is refused"
    );
    assert_eq!(
        ok("get_sequence", store.get_sequence(t, kept.id).await).as_ref(),
        Some(&kept),
        "a draft with an enrollment must be kept as it was"
    );
}

/// `save_mailbox`: "Insert or replace a mailbox, with the same version rule as
/// `save_sequence`"; `get_mailbox` and `list_mailboxes` are scoped to the tenant.
pub async fn mailbox_insert_replace_and_versions<S: Store + 'static>(store: S) {
    let t = TenantId::new();
    let m = mailbox(t, "ana", chrono_tz::Europe::Berlin, 40);
    let other = mailbox(TenantId::new(), "bo", chrono_tz::UTC, 10);
    ok("save_mailbox (insert)", store.save_mailbox(&m, None).await);
    ok(
        "save_mailbox (insert)",
        store.save_mailbox(&other, None).await,
    );
    let r = store.save_mailbox(&m, None).await;
    assert!(
        matches!(r, Err(StoreError::AlreadyExists { .. })),
        "save_mailbox insert of an existing id must fail with AlreadyExists, got {r:?}"
    );
    assert_eq!(
        ok("get_mailbox", store.get_mailbox(t, m.id).await).as_ref(),
        Some(&m),
        "get_mailbox must return the inserted mailbox"
    );
    let listed = ok("list_mailboxes", store.list_mailboxes(t).await);
    assert_eq!(
        listed,
        vec![m.clone()],
        "list_mailboxes must return the tenant's mailboxes only"
    );
    let mut paused = m.clone();
    if let Err(e) = paused.pause() {
        panic!("fixture: pause: {e}");
    }
    let r = store.save_mailbox(&paused, Some(m.version() + 3)).await;
    assert!(
        matches!(r, Err(StoreError::VersionConflict { .. })),
        "save_mailbox with a stale version must fail with VersionConflict, got {r:?}"
    );
    ok(
        "save_mailbox (replace)",
        store.save_mailbox(&paused, Some(m.version())).await,
    );
    assert_eq!(
        ok("get_mailbox", store.get_mailbox(t, m.id).await).as_ref(),
        Some(&paused),
        "save_mailbox at the stored version must replace the mailbox"
    );
}

/// `upsert_contacts`: "Insert or update contacts of `tenant`, and answer the stored id of
/// each row"; "Every write raises the contact's version".
pub async fn contacts_upsert_inserts_and_replaces<S: Store + 'static>(store: S) {
    let t = TenantId::new();
    let a = contact(t, "ann", "acme.example");
    let b = contact(t, "ben", "acme.example");
    let ids = ok(
        "upsert_contacts (insert)",
        store.upsert_contacts(t, &[a.clone(), b.clone()]).await,
    );
    assert_eq!(
        ids,
        vec![a.id, b.id],
        "upsert_contacts must answer each row's id"
    );
    assert_eq!(
        ok("get_contact", store.get_contact(t, a.id).await).as_ref(),
        Some(&a),
        "upsert_contacts must insert a new contact"
    );
    let a2 = a.clone().with_company("Acme").with_tag("vip");
    ok(
        "upsert_contacts (replace)",
        store.upsert_contacts(t, std::slice::from_ref(&a2)).await,
    );
    let stored = some(
        "get_contact",
        ok("get_contact", store.get_contact(t, a.id).await),
    );
    assert!(
        stored.version() > a.version(),
        "upsert_contacts must raise the version of an updated contact"
    );
    let mut expected = a2.clone();
    expected.set_version(stored.version());
    assert_eq!(
        stored, expected,
        "upsert_contacts must update a contact by id"
    );
    assert_eq!(
        ok("get_contact", store.get_contact(t, b.id).await).as_ref(),
        Some(&b),
        "upsert_contacts must leave contacts it was not given alone"
    );
}

/// `upsert_contacts`: "A contact of another tenant is refused with `NotFound`, and then
/// nothing is written."
pub async fn contacts_upsert_refuses_another_tenant_and_writes_nothing<S: Store + 'static>(
    store: S,
) {
    let a = TenantId::new();
    let b = TenantId::new();
    let theirs = contact(b, "bea", "b.example");
    ok(
        "upsert_contacts",
        store
            .upsert_contacts(b, std::slice::from_ref(&theirs))
            .await,
    );
    let mine = contact(a, "amy", "a.example");
    let r = store
        .upsert_contacts(a, &[mine.clone(), theirs.clone()])
        .await;
    assert!(
        matches!(r, Err(StoreError::NotFound { .. })),
        "upsert_contacts with a contact of another tenant must fail with NotFound, got {r:?}"
    );
    assert!(
        ok("get_contact", store.get_contact(a, mine.id).await).is_none(),
        "after a refused upsert_contacts nothing may be written, but the valid contact was"
    );
    // The same id relabelled with the caller's tenant is still another tenant's contact.
    let mut stolen = theirs.clone();
    stolen.tenant = a;
    stolen.email = "taken@a.example".into();
    let r = store.upsert_contacts(a, &[stolen]).await;
    assert!(
        matches!(r, Err(StoreError::NotFound { .. })),
        "upsert_contacts must refuse (NotFound) an id that belongs to another tenant, got {r:?}"
    );
    assert_eq!(
        ok("get_contact", store.get_contact(b, theirs.id).await).as_ref(),
        Some(&theirs),
        "another tenant's contact must be unchanged"
    );
}

/// `find_contact_by_email`: "A contact of `tenant` by address (case-insensitive)";
/// `find_contacts_by_email`: "The stored contacts of `tenant` whose normalized addresses are
/// among `emails` (each at most once)".
pub async fn contact_found_by_email_case_insensitively<S: Store + 'static>(store: S) {
    let t = TenantId::new();
    let mut c = contact(t, "Mixed.Case", "Client.Example");
    ok(
        "upsert_contacts",
        store.upsert_contacts(t, std::slice::from_ref(&c)).await,
    );
    let found = ok(
        "find_contact_by_email",
        store
            .find_contact_by_email(t, "mixed.case@client.example")
            .await,
    );
    assert_eq!(
        found.map(|f| f.id),
        Some(c.id),
        "find_contact_by_email must match the address case-insensitively"
    );
    let elsewhere = ok(
        "find_contact_by_email",
        store
            .find_contact_by_email(TenantId::new(), "mixed.case@client.example")
            .await,
    );
    assert!(
        elsewhere.is_none(),
        "find_contact_by_email must not find another tenant's contact"
    );
    let other = contact(t, "other", "client.example");
    ok(
        "upsert_contacts",
        store.upsert_contacts(t, std::slice::from_ref(&other)).await,
    );
    let asked: Vec<String> = [
        " MIXED.case@client.example",
        "mixed.case@client.example",
        "other@CLIENT.example",
        "nobody@client.example",
    ]
    .map(String::from)
    .to_vec();
    let mut batch: Vec<_> = ok(
        "find_contacts_by_email",
        store.find_contacts_by_email(t, &asked).await,
    )
    .into_iter()
    .map(|f| f.id)
    .collect();
    batch.sort();
    let mut expected = vec![c.id, other.id];
    expected.sort();
    assert_eq!(
        batch, expected,
        "find_contacts_by_email must find each stored contact of the addresses once, by \
         normalized address"
    );
    let elsewhere = ok(
        "find_contacts_by_email",
        store.find_contacts_by_email(TenantId::new(), &asked).await,
    );
    assert!(
        elsewhere.is_empty(),
        "find_contacts_by_email must not find another tenant's contacts"
    );
    c.email = "new@client.example".into();
    ok(
        "upsert_contacts (new address)",
        store.upsert_contacts(t, std::slice::from_ref(&c)).await,
    );
    let old = ok(
        "find_contact_by_email",
        store
            .find_contact_by_email(t, "Mixed.Case@Client.Example")
            .await,
    );
    assert!(
        old.is_none(),
        "find_contact_by_email must not find a contact by an address it no longer has"
    );
    let new = ok(
        "find_contact_by_email",
        store.find_contact_by_email(t, "NEW@client.example").await,
    );
    assert_eq!(
        new.map(|f| f.id),
        Some(c.id),
        "find_contact_by_email must find a contact by its new address"
    );
}

/// `get_contacts`: "The stored contacts of `tenant` whose ids are among `ids` (each at most
/// once, in no particular order; an id not stored in the tenant is left out)".
pub async fn get_contacts_reads_the_tenants_contacts_by_id<S: Store + 'static>(store: S) {
    let t = TenantId::new();
    let ours: Vec<_> = ["ana", "bo", "cy"]
        .iter()
        .map(|name| contact(t, name, "client.example"))
        .collect();
    ok("upsert_contacts", store.upsert_contacts(t, &ours).await);
    let other_tenant = TenantId::new();
    let theirs = contact(other_tenant, "dee", "client.example");
    ok(
        "upsert_contacts",
        store
            .upsert_contacts(other_tenant, std::slice::from_ref(&theirs))
            .await,
    );
    let unknown = sequence_core::ids::ContactId::new();
    let asked = [ours[2].id, ours[0].id, ours[2].id, theirs.id, unknown];
    let mut found = ok("get_contacts", store.get_contacts(t, &asked).await);
    found.sort_by_key(|c| c.id);
    let mut expected = vec![
        some(
            "get_contact",
            ok("get_contact", store.get_contact(t, ours[0].id).await),
        ),
        some(
            "get_contact",
            ok("get_contact", store.get_contact(t, ours[2].id).await),
        ),
    ];
    expected.sort_by_key(|c| c.id);
    assert_eq!(
        found, expected,
        "get_contacts must answer the tenant's stored contacts among the ids, each once, \
         leaving out another tenant's and unknown ids"
    );
    assert!(
        ok("get_contacts", store.get_contacts(t, &[]).await).is_empty(),
        "get_contacts of no id must answer nothing"
    );
}
