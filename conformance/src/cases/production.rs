//! What production adds to the contract: contacts unique by address and never un-suppressed
//! by a re-sync, the planning lease between engines, parked foreign mailboxes, and the
//! bounded reads that sequence-wide changes walk.

use chrono::Duration;
use sequence_core::contact::ContactStatus;
use sequence_core::enrollment::{DeferralReason, Enrollment, EnrollmentStatus, ExitReason};
use sequence_core::ids::{EnrollmentId, SequenceId, TenantId};
use sequence_core::store::{
    ChangeSet, EnrollOutcome, EnrollmentCursor, PlanCommit, Store, StoreError,
};
use uuid::Uuid;

use crate::fixtures::{
    at, contact, mailbox, ok, plan, sequence, some, t0, write_enrollment, World,
};

/// `upsert_contacts`: "A row whose normalized address belongs to a stored contact of the
/// tenant updates that contact, whatever the row's id"; "it never lifts a suppression".
pub async fn contacts_are_unique_by_address_and_resyncs_keep_suppressions<S: Store + 'static>(
    store: S,
) {
    let t = TenantId::new();
    let ann = contact(t, "ann", "acme.example");
    ok(
        "upsert_contacts",
        store.upsert_contacts(t, std::slice::from_ref(&ann)).await,
    );
    // The same person again, under a new id and another spelling of the address.
    let again = match sequence_core::contact::Contact::new(t, "ANN@Acme.example") {
        Ok(c) => c.with_name("Ann", "Updated"),
        Err(e) => panic!("fixture: {e}"),
    };
    let ids = ok(
        "upsert_contacts (same address)",
        store.upsert_contacts(t, std::slice::from_ref(&again)).await,
    );
    assert_eq!(
        ids,
        vec![ann.id],
        "a row with a stored address must resolve to that contact"
    );
    assert!(
        ok("get_contact", store.get_contact(t, again.id).await).is_none(),
        "no second contact may be made for one address"
    );
    let stored = some("get_contact", ok("get", store.get_contact(t, ann.id).await));
    assert_eq!(
        stored.last_name.as_deref(),
        Some("Updated"),
        "the update takes the row's fields"
    );
    // The contact unsubscribes (an engine write under its version) ...
    let mut unsubscribed = stored.clone();
    unsubscribed.mark_unsubscribed();
    unsubscribed.record_reply(t0());
    ok(
        "apply_changes",
        store
            .apply_changes(
                t0(),
                ChangeSet {
                    contacts: vec![(unsubscribed, stored.version())],
                    ..ChangeSet::default()
                },
            )
            .await,
    );
    // ... then the host re-syncs its CRM row, which still says active.
    let crm_row = ann.clone().with_company("Acme");
    ok(
        "upsert_contacts (re-sync)",
        store
            .upsert_contacts(t, std::slice::from_ref(&crm_row))
            .await,
    );
    let after = some("get_contact", ok("get", store.get_contact(t, ann.id).await));
    assert_eq!(
        after.status(),
        ContactStatus::Unsubscribed,
        "a host re-sync must never lift an unsubscribe"
    );
    assert_eq!(after.replied_at(), Some(t0()), "nor forget a reply");
    assert_eq!(
        after.company.as_deref(),
        Some("Acme"),
        "but takes the fields"
    );
    // A row whose own contact would take another contact's address is refused, whole.
    let ben = contact(t, "ben", "acme.example");
    ok(
        "upsert_contacts",
        store.upsert_contacts(t, std::slice::from_ref(&ben)).await,
    );
    let mut clash = ben.clone();
    clash.email = "ann@acme.example".into();
    let fresh = contact(t, "cyd", "acme.example");
    let r = store.upsert_contacts(t, &[fresh.clone(), clash]).await;
    assert!(
        matches!(r, Err(StoreError::AlreadyExists { .. })),
        "two contacts may not share an address, got {r:?}"
    );
    assert!(
        ok("get_contact", store.get_contact(t, fresh.id).await).is_none(),
        "a refused upsert writes nothing"
    );
}

/// `ChangeSet::contacts`: "Contacts to write (replace by id), each with the version it was
/// read at": a stale write is a conflict, not a lost update.
pub async fn contact_writes_check_the_version<S: Store + 'static>(store: S) {
    let t = TenantId::new();
    let c = contact(t, "dee", "acme.example");
    ok(
        "upsert_contacts",
        store.upsert_contacts(t, std::slice::from_ref(&c)).await,
    );
    let read = some("get_contact", ok("get", store.get_contact(t, c.id).await));
    // A host update lands between the read and the write.
    ok(
        "upsert_contacts",
        store.upsert_contacts(t, &[c.clone().with_tag("vip")]).await,
    );
    let mut bounced = read.clone();
    bounced.mark_bounced();
    let r = store
        .apply_changes(
            t0(),
            ChangeSet {
                contacts: vec![(bounced, read.version())],
                ..ChangeSet::default()
            },
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::VersionConflict { .. })),
        "a contact written under a stale version must conflict, got {r:?}"
    );
    let now = some("get_contact", ok("get", store.get_contact(t, c.id).await));
    assert!(now.has_tag("vip"), "the host's update must not be lost");
    assert_eq!(now.status(), ContactStatus::Active, "nothing was written");
}

/// `acquire_planning`: "`None` while another holder's lease runs"; `apply_plan`: "the lease
/// must still be held at `now` ... else `PlanningLeaseLost` and nothing is written".
pub async fn planning_lease_serializes_planners<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let es = w.enroll_all(&store, t0()).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let lease_for = Duration::seconds(30);
    let held = some(
        "acquire_planning (a)",
        ok("acquire", store.acquire_planning(t0(), a, lease_for).await),
    );
    assert!(
        ok("acquire", store.acquire_planning(t0(), b, lease_for).await).is_none(),
        "a second planner must not get the lease while it runs"
    );
    assert!(
        ok("renew", store.acquire_planning(at(0), a, lease_for).await).is_some(),
        "the holder may renew its lease"
    );
    // The lease runs out; b takes it; a's late plan must be refused whole.
    let later = t0() + Duration::seconds(31);
    let taken = ok("acquire", store.acquire_planning(later, b, lease_for).await);
    assert!(taken.is_some(), "a lease that ran out may be taken");
    let r = store
        .apply_plan(
            later,
            PlanCommit {
                planning: Some(held),
                sends: vec![w.plan_send(&es[0], 0, later, 30)],
                ..PlanCommit::default()
            },
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::PlanningLeaseLost)),
        "a plan under a lost lease must be refused, got {r:?}"
    );
    assert!(
        ok(
            "sends_of_enrollment",
            store.sends_of_enrollment(w.tenant, es[0].id).await
        )
        .is_empty(),
        "a refused plan writes nothing"
    );
    let applied = ok(
        "apply_plan (b)",
        store
            .apply_plan(
                later,
                PlanCommit {
                    planning: taken,
                    sends: vec![w.plan_send(&es[0], 0, later, 30)],
                    ..PlanCommit::default()
                },
            )
            .await,
    );
    assert_eq!(applied.planned.len(), 1, "the holder's plan is applied");
    if let Some(lease) = taken {
        ok("release_planning", store.release_planning(lease).await);
    }
    assert!(
        ok("acquire", store.acquire_planning(later, a, lease_for).await).is_some(),
        "a released lease is free at once"
    );
}

/// `apply_plan`: "A send refused because its mailbox is missing or not the tenant's parks its
/// enrollment ... rather than leaving it due at the same instant."
pub async fn apply_plan_parks_an_enrollment_whose_mailbox_is_foreign<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 1).await;
    let es = w.enroll_all(&store, t0()).await;
    let theirs = mailbox(TenantId::new(), "theirs", chrono_tz::UTC, 30);
    ok("save_mailbox", store.save_mailbox(&theirs, None).await);
    let mut ps = w.plan_send(&es[0], 0, t0(), 30);
    ps.mailbox = theirs.id;
    let applied = plan(&store, t0(), vec![ps]).await;
    assert_eq!(applied.stale, vec![es[0].id], "the send is refused");
    let e = w.enrollment(&store, es[0].id).await;
    assert_eq!(
        e.deferral().map(|d| d.reason),
        Some(DeferralReason::NoActiveMailboxInPool),
        "the enrollment is parked for its pool"
    );
    assert!(
        ok("due_enrollments", store.due_enrollments(at(60), 10).await).is_empty(),
        "a parked enrollment is not due again"
    );
}

/// `open_enrollments_page`: "enrollments ... that are not final, ordered by (enrolled
/// instant, id), after `after`"; `open_sends_of`: "`planned` or `retry_wait`".
pub async fn pages_walk_every_open_enrollment<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 7).await;
    let es = w.enroll_all(&store, t0()).await;
    // One ends: pages skip it.
    let mut ended = es[3].clone();
    if ended
        .exit(sequence_core::enrollment::ExitReason::Manual, t0())
        .is_err()
    {
        panic!("fixture: exit");
    }
    ok(
        "write",
        crate::fixtures::write_enrollment(&store, ended, es[3].version()).await,
    );
    let mut seen = Vec::new();
    let mut after: Option<EnrollmentCursor> = None;
    for _ in 0..10 {
        let page = ok(
            "open_enrollments_page",
            store
                .open_enrollments_page(w.tenant, w.sequence.id, after, 2)
                .await,
        );
        assert!(page.len() <= 2, "a page holds at most `limit`");
        let Some(last) = page.last() else {
            break;
        };
        after = Some(EnrollmentCursor::after(last));
        seen.extend(page.iter().map(|e| e.id));
    }
    let mut want: Vec<_> = es.iter().filter(|e| e.id != es[3].id).collect();
    want.sort_by_key(|e| (e.enrolled_at, e.id));
    assert_eq!(
        seen,
        want.iter().map(|e| e.id).collect::<Vec<_>>(),
        "the pages must walk every open enrollment once, in order"
    );
    assert!(
        ok(
            "open_enrollments_page (another tenant)",
            store
                .open_enrollments_page(TenantId::new(), w.sequence.id, None, 10)
                .await
        )
        .is_empty(),
        "pages are scoped to the tenant"
    );
    plan(&store, t0(), vec![w.plan_send(&es[0], 0, at(30), 30)]).await;
    let open = ok(
        "open_sends_of",
        store.open_sends_of(w.tenant, &[es[0].id, es[1].id]).await,
    );
    assert_eq!(
        open.iter().map(|s| s.enrollment).collect::<Vec<_>>(),
        vec![es[0].id],
        "open_sends_of answers the planned sends of the enrollments asked for"
    );
}

/// Every page of `enrollments_page` over `sequence` with `status`, `limit` at a time: the
/// ids in the order given.
async fn walk_pages<S: Store + ?Sized>(
    store: &S,
    tenant: TenantId,
    sequence: SequenceId,
    status: Option<EnrollmentStatus>,
    limit: usize,
) -> Vec<EnrollmentId> {
    let mut seen = Vec::new();
    let mut after: Option<EnrollmentCursor> = None;
    for _ in 0..20 {
        let page = ok(
            "enrollments_page",
            store
                .enrollments_page(tenant, sequence, status, after, limit)
                .await,
        );
        assert!(page.len() <= limit, "a page holds at most `limit`");
        assert!(
            page.iter().all(|e| status.is_none_or(|s| e.status() == s)),
            "a page with a status holds only enrollments in it: {status:?}"
        );
        let Some(last) = page.last() else {
            return seen;
        };
        after = Some(EnrollmentCursor::after(last));
        seen.extend(page.iter().map(|e| e.id));
    }
    panic!("enrollments_page: the pages of {status:?} never ended");
}

/// `enrollments_page`: "At most `limit` enrollments of a sequence of `tenant`, final ones
/// included (only those in `status` when it is given), ordered by (enrolled instant, id),
/// after `after`"; "Another tenant's sequence, or one not stored, gives an empty page".
pub async fn enrollments_page_walks_the_whole_sequence_by_status<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 8).await;
    // Enrolled in the reverse of their ids' making, two at each instant: the order is by
    // instant, then by id.
    let rows: Vec<Enrollment> = (0_i64..)
        .zip(&w.contacts)
        .map(|(i, c)| {
            let enrolled = at((7 - i) / 2);
            Enrollment::new(w.tenant, w.sequence.id, c.id, enrolled, enrolled)
        })
        .collect();
    let mut es = Vec::new();
    for answer in ok("enroll", store.enroll(w.tenant, t0(), rows).await) {
        let EnrollOutcome::Enrolled { enrollment } = answer else {
            panic!("fixture: enroll refused a row: {answer:?}");
        };
        es.push(w.enrollment(&store, enrollment).await);
    }
    // Two exit, one pauses; the rest stay active.
    for i in [1, 4] {
        let mut ended = es[i].clone();
        if ended.exit(ExitReason::Manual, t0()).is_err() {
            panic!("fixture: exit");
        }
        ok(
            "write",
            write_enrollment(&store, ended, es[i].version()).await,
        );
    }
    let mut paused = es[2].clone();
    if paused.pause(None).is_err() {
        panic!("fixture: pause");
    }
    ok(
        "write",
        write_enrollment(&store, paused, es[2].version()).await,
    );
    // Another sequence of the tenant with an enrollment of its own: never in the pages.
    let other = sequence(w.tenant, "Other", 1, &w.mailboxes);
    ok("save_sequence", store.save_sequence(&other, None).await);
    let stranger = Enrollment::new(w.tenant, other.id, w.contacts[0].id, t0(), t0());
    ok("enroll", store.enroll(w.tenant, t0(), vec![stranger]).await);

    let mut by_key: Vec<&Enrollment> = es.iter().collect();
    by_key.sort_by_key(|e| (e.enrolled_at, e.id));
    let in_order = |keep: &dyn Fn(usize) -> bool| -> Vec<EnrollmentId> {
        by_key
            .iter()
            .filter(|e| es.iter().position(|x| x.id == e.id).is_some_and(keep))
            .map(|e| e.id)
            .collect()
    };
    let (t, id) = (w.tenant, w.sequence.id);
    assert_eq!(
        walk_pages(&store, t, id, None, 3).await,
        in_order(&|_| true),
        "without a status the pages walk every enrollment of the sequence once, final ones \
         included, by (enrolled instant, id)"
    );
    assert_eq!(
        walk_pages(&store, t, id, Some(EnrollmentStatus::Exited), 1).await,
        in_order(&|i| i == 1 || i == 4),
        "a final status pages its enrollments only, in order"
    );
    assert_eq!(
        walk_pages(&store, t, id, Some(EnrollmentStatus::Paused), 2).await,
        in_order(&|i| i == 2),
        "a status pages its enrollments only"
    );
    assert_eq!(
        walk_pages(&store, t, id, Some(EnrollmentStatus::Active), 2).await,
        in_order(&|i| ![1, 2, 4].contains(&i)),
        "a status pages its enrollments only, in order"
    );
    assert!(
        walk_pages(&store, t, id, Some(EnrollmentStatus::Completed), 5)
            .await
            .is_empty(),
        "a status nobody is in gives an empty page"
    );
    let first = ok(
        "enrollments_page",
        store.enrollments_page(t, id, None, None, 3).await,
    );
    assert_eq!(first.len(), 3, "a page holds `limit` when there are more");
    assert!(
        ok(
            "enrollments_page (another tenant)",
            store
                .enrollments_page(TenantId::new(), id, None, None, 10)
                .await
        )
        .is_empty(),
        "pages are scoped to the tenant"
    );
}
