//! The due read on PostgreSQL: its columns after the migration that made them, the
//! contact copies it reads, and plans made from it meeting changes committed beside them.

mod support;

use backend_postgres::PostgresStore;
use chrono::Duration;
use sequence_conformance::fixtures::{due_documents, plan, t0, World};
use sequence_core::contact::{Contact, ContactStatus};
use sequence_core::enrollment::EnrollmentStatus;
use sequence_core::ids::TenantId;
use sequence_core::store::Outbox;

/// The migration that hands planning columns to the due read fills them in from the
/// documents stored before it: enrollments of each kind the due read answers (a new start,
/// a follow-up sticky to its mailbox, one with an uncertain send, a paused one whose pause
/// ran out, one of a bounced contact), with contacts in odd zones and addresses in capitals,
/// stored the way the store stored them before the migration, read due after it: every
/// row's columns are those of its documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_due_columns_migration_fills_in_stored_enrollments() {
    use sequence_conformance::fixtures::{contact, mailbox, sequence};
    use sequence_core::enrollment::Enrollment;
    use sequence_core::store::Catalog;

    const DUE_COLUMNS: i64 = 20_261_202_000_001;
    let s = support::empty_store().await;
    let pool = s.store.pool();
    for m in backend_postgres::MIGRATOR.iter() {
        if m.version < DUE_COLUMNS {
            sqlx::raw_sql(&m.sql).execute(pool).await.unwrap();
        }
    }
    let tenant = TenantId::from_u128(7);
    let sender = mailbox(tenant, "ana", chrono_tz::Europe::Berlin, 100);
    s.store.save_mailbox(&sender, None).await.unwrap();
    let seq = sequence(tenant, "Before", 3, std::slice::from_ref(&sender));
    s.store.save_sequence(&seq, None).await.unwrap();
    let zones = [
        Some(chrono_tz::Asia::Kathmandu),
        Some(chrono_tz::America::St_Johns),
        None,
        Some(chrono_tz::Australia::Eucla),
        Some(chrono_tz::Pacific::Chatham),
    ];
    let contacts: Vec<Contact> = zones
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            let mut c = contact(tenant, &format!("C{i}"), &format!("Client{i}.EXAMPLE"));
            c.timezone = *zone;
            if i == 4 {
                c.mark_bounced();
            }
            c
        })
        .collect();
    let now = t0();
    let mut rows: Vec<Enrollment> = contacts
        .iter()
        .map(|c| Enrollment::new(tenant, seq.id, c.id, now - Duration::days(3), now))
        .collect();
    rows[1].attempted_on(sender.id);
    rows[1]
        .step_sent(
            0,
            now - Duration::days(2),
            "<m0@x>".into(),
            Some(now - Duration::hours(1)),
        )
        .unwrap();
    rows[2]
        .send_uncertain(0, "<m1@x>".into(), sender.id, now - Duration::hours(2))
        .unwrap();
    rows[3].pause(Some(now - Duration::minutes(5))).unwrap();
    for c in &contacts {
        sqlx::query(
            "INSERT INTO contacts (tenant_id, id, email, status, version, doc) \
             VALUES ($1, $2, $3, $4, $5, $6::json)",
        )
        .bind(tenant.0)
        .bind(c.id.0)
        .bind(c.normalized_email())
        .bind(if c.status() == ContactStatus::Active {
            "active"
        } else {
            "bounced"
        })
        .bind(i64::try_from(c.version()).unwrap())
        .bind(serde_json::to_string(c).unwrap())
        .execute(pool)
        .await
        .unwrap();
    }
    for (e, c) in rows.iter().zip(&contacts) {
        let due_at = match e.status() {
            EnrollmentStatus::Paused => e.paused_until(),
            _ => e.next_due_at(),
        };
        let status = match e.status() {
            EnrollmentStatus::Paused => "paused",
            _ => "active",
        };
        sqlx::query(
            "WITH i AS ( \
                 INSERT INTO enrollment_identities (tenant_id, id, sequence_id, contact_id, \
                     enrolled_at, open) \
                 VALUES ($1, $2, $3, $4, $5, true) RETURNING id) \
             INSERT INTO enrollments (tenant_id, id, sequence_id, contact_id, status, due_at, \
                 mailbox_id, enrolled_at, version, doc, contact_doc) \
             SELECT $1, i.id, $3, $4, $6, $7, $8, $5, $9, $10::json, $11::json FROM i",
        )
        .bind(tenant.0)
        .bind(e.id.0)
        .bind(seq.id.0)
        .bind(c.id.0)
        .bind(e.enrolled_at)
        .bind(status)
        .bind(due_at)
        .bind(e.mailbox().map(|m| m.0))
        .bind(i64::try_from(e.version()).unwrap())
        .bind(serde_json::to_string(e).unwrap())
        .bind(serde_json::to_string(c).unwrap())
        .execute(pool)
        .await
        .unwrap();
    }
    for m in backend_postgres::MIGRATOR.iter() {
        if m.version >= DUE_COLUMNS {
            sqlx::raw_sql(&m.sql).execute(pool).await.unwrap();
        }
    }

    let due = s.store.due_enrollments(now, 100).await.unwrap();
    assert_eq!(
        due.len(),
        rows.len(),
        "every stored enrollment is due: {due:?}"
    );
    // Panics when a row's columns disagree with its documents.
    let documents = due_documents(&s.store, &due).await;
    for d in &documents {
        let stored = rows.iter().find(|e| e.id == d.enrollment.id).unwrap();
        assert_eq!(*d.enrollment, *stored);
    }
    let by_id = |e: &Enrollment| due.iter().find(|d| d.id == e.id).unwrap();
    assert_eq!(
        by_id(&rows[0]).contact_zone,
        Some(chrono_tz::Asia::Kathmandu)
    );
    assert_eq!(by_id(&rows[0]).domain.as_deref(), Some("client0.example"));
    assert_eq!(
        (by_id(&rows[1]).step, by_id(&rows[1]).mailbox),
        (1, Some(sender.id))
    );
    assert!(by_id(&rows[2]).uncertain);
    assert_eq!(by_id(&rows[3]).status, EnrollmentStatus::Paused);
    assert_eq!(by_id(&rows[4]).contact_status, ContactStatus::Bounced);
}

/// A due row is settled only as the due read saw it. Here the contact bounced, so the
/// engine reads the row's documents to exit it; a host pauses the enrollment (with no end)
/// after the due read and before that read. The engine took the newer documents for the
/// row, resumed the host's pause and then exited it; the host's pause must stand (the row
/// moved since the due read: it is left to the next one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_moved_after_the_due_read_is_not_settled_from_newer_documents() {
    use sequence_core::prelude::*;
    use sequence_core::store::Catalog;
    use sequence_scheduler::VirtualClock;

    let store = support::fresh_store().await;
    let clock = VirtualClock::new(t0());
    let engine = support::recording_engine(&store, &clock);
    let (tenant, s, c) =
        support::one_enrolled(&engine, t0(), vec![Step::new(Delay::ZERO, "One", "1")]).await;
    let e = store
        .list_enrollments(tenant, s.id)
        .await
        .unwrap()
        .remove(0);
    // The contact bounces in the store, behind the engine: the row is flagged when read due.
    let mut bounced = store.get_contact(tenant, c.id).await.unwrap().unwrap();
    bounced.mark_bounced();
    store.upsert_contacts(tenant, &[bounced]).await.unwrap();

    *store.pause_before_documents.lock().unwrap() = Some((tenant, e.id));
    engine.tick().await.unwrap();
    assert!(
        store.pause_before_documents.lock().unwrap().is_none(),
        "the engine read the row's documents"
    );
    let after = store.get_enrollment(tenant, e.id).await.unwrap().unwrap();
    assert_eq!(
        after.status(),
        EnrollmentStatus::Paused,
        "the host's pause must stand: {after:?}"
    );
}

/// A plan's enrollments still at the version the due read handed out are read by key at it
/// without a lock, and written only while still stored at it; every other item is applied
/// to the enrollment as stored. Three enrollments read due by one store: the first is planned
/// from the read; the second, changed since by another store (another engine process), is
/// stale; the third, planned by that other store (which made no due read), is read from its
/// row and planned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_takes_unchanged_enrollments_from_the_due_read_and_reads_the_rest() {
    use sequence_core::enrollment::{Deferral, DeferralReason};
    use sequence_core::send::SendStatus;
    use sequence_core::store::{PlanCommit, PlanDeferral};

    let s = support::fresh_store().await;
    let other = PostgresStore::from_pool(support::schema_pool(&s.schema, 2).await);
    let world = World::build(&s.store, 1, 100, 2, 3).await;
    let now = t0();
    world.enroll_all(&s.store, now).await;
    let due = s.store.due_enrollments(now, 10).await.unwrap();
    assert_eq!(due.len(), 3);
    let read: Vec<_> = due_documents(&s.store, &due)
        .await
        .into_iter()
        .map(|d| (*d.enrollment).clone())
        .collect();

    let later = now + Duration::hours(1);
    let deferred = other
        .apply_plan(
            now,
            PlanCommit {
                deferrals: vec![PlanDeferral {
                    enrollment: read[1].id,
                    enrollment_version: read[1].version(),
                    deferral: Deferral {
                        reason: DeferralReason::OutsideMailboxWindow,
                        not_before: Some(later),
                    },
                }],
                ..PlanCommit::default()
            },
        )
        .await
        .unwrap();
    assert!(deferred.stale.is_empty(), "{deferred:?}");

    let applied = plan(
        &s.store,
        now,
        vec![
            world.plan_send(&read[0], 0, now, 100),
            world.plan_send(&read[1], 0, now, 100),
        ],
    )
    .await;
    assert_eq!(applied.planned.len(), 1, "{applied:?}");
    assert_eq!(applied.stale, vec![read[1].id], "{applied:?}");
    let by_other = plan(&other, now, vec![world.plan_send(&read[2], 0, now, 100)]).await;
    assert_eq!(by_other.planned.len(), 1, "{by_other:?}");

    for e in [&read[0], &read[2]] {
        let stored = world.enrollment(&s.store, e.id).await;
        assert_eq!(
            stored.version(),
            e.version() + 1,
            "planned once: {stored:?}"
        );
        assert_eq!(stored.contact, e.contact);
        assert_eq!(stored.next_due_at(), None, "planned, not due: {stored:?}");
        assert_eq!(
            world.send(&s.store, e.id, 0).await.status(),
            SendStatus::Planned
        );
    }
    let changed = world.enrollment(&s.store, read[1].id).await;
    assert_eq!(
        changed.next_due_at(),
        Some(later),
        "the deferral stands: {changed:?}"
    );
    let sends = s
        .store
        .sends_of_enrollment(world.tenant, read[1].id)
        .await
        .unwrap();
    assert!(sends.is_empty(), "{sends:?}");
}

/// Each enrollment keeps a copy of its contact for the due read; a contact written while
/// its enrollments are being stored must reach them. Rounds of `enroll` and
/// `upsert_contacts` (a new zone) of the same 300 contacts, started at once from two
/// stores (two pools, as two processes): after each, every due enrollment carries its
/// contact as stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_written_while_it_is_enrolled_reaches_the_due_read() {
    use sequence_core::enrollment::Enrollment;
    use sequence_core::store::Catalog;
    let s = support::fresh_store().await;
    let other = PostgresStore::from_pool(support::schema_pool(&s.schema, 4).await);
    let zones = [
        chrono_tz::Asia::Kathmandu,
        chrono_tz::America::St_Johns,
        chrono_tz::Australia::Eucla,
        chrono_tz::Pacific::Chatham,
    ];
    for zone in zones {
        let w = World::build(&s.store, 1, 30, 1, 300).await;
        let rows: Vec<Enrollment> = w
            .contacts
            .iter()
            .map(|c| Enrollment::new(w.tenant, w.sequence.id, c.id, t0(), t0()))
            .collect();
        let moved: Vec<_> = w
            .contacts
            .iter()
            .map(|c| c.clone().with_timezone(zone))
            .collect();
        let enrolling = {
            let store = s.store.clone();
            let tenant = w.tenant;
            tokio::spawn(async move { store.enroll(tenant, t0(), rows).await })
        };
        other.upsert_contacts(w.tenant, &moved).await.unwrap();
        enrolling.await.unwrap().unwrap();

        let due = s.store.due_enrollments(t0(), 10_000).await.unwrap();
        let ours: Vec<_> = due.iter().filter(|d| d.tenant == w.tenant).collect();
        assert_eq!(ours.len(), 300, "every contact is enrolled");
        for d in ours {
            assert_eq!(
                d.contact_zone,
                Some(zone),
                "the due read must carry the contact as written, not as it was enrolled"
            );
        }
    }
}

/// A plan made from this store's due read is applied without locking its enrollments first
/// (each is written only if still stored at the version read). A host's change that holds
/// one of them while the plan is applied, and commits, is seen: the plan finds that one
/// stale, plans the other, and the host's change stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_while_a_plan_is_applied_makes_its_enrollment_stale() {
    use sequence_core::enrollment::{Deferral, DeferralReason};
    use sequence_core::send::SendStatus;

    let s = support::fresh_store().await;
    let world = World::build(&s.store, 1, 100, 2, 2).await;
    let now = t0();
    world.enroll_all(&s.store, now).await;
    let due = s.store.due_enrollments(now, 10).await.unwrap();
    let read: Vec<_> = due_documents(&s.store, &due)
        .await
        .into_iter()
        .map(|d| (*d.enrollment).clone())
        .collect();
    assert_eq!(read.len(), 2);

    // The host's change, as a unit of work makes it: the row locked, then rewritten.
    let later = now + Duration::hours(3);
    let mut deferred = read[0].clone();
    deferred
        .defer(Deferral {
            reason: DeferralReason::OutsideMailboxWindow,
            not_before: Some(later),
        })
        .unwrap();
    let mut host = s.store.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM enrollments WHERE id = $1 FOR UPDATE")
        .bind(read[0].id.0)
        .execute(&mut *host)
        .await
        .unwrap();

    let planning = {
        let store = s.store.clone();
        let sends = vec![
            world.plan_send(&read[0], 0, now, 100),
            world.plan_send(&read[1], 0, now, 100),
        ];
        tokio::spawn(async move { plan(&store, now, sends).await })
    };
    assert!(
        support::still_waiting(&planning).await,
        "the plan's write must wait for the host's lock"
    );
    sqlx::query(
        "UPDATE enrollments SET version = $2, due_at = $3, deferral_reason = $4, doc = $5 \
         WHERE id = $1",
    )
    .bind(read[0].id.0)
    .bind(i64::try_from(deferred.version()).unwrap())
    .bind(later)
    .bind("outside_mailbox_window")
    .bind(sqlx::types::Json(&deferred))
    .execute(&mut *host)
    .await
    .unwrap();
    host.commit().await.unwrap();

    let applied = planning.await.unwrap();
    assert_eq!(applied.stale, vec![read[0].id], "{applied:?}");
    assert_eq!(applied.planned.len(), 1, "{applied:?}");
    assert_eq!(world.enrollment(&s.store, read[0].id).await, deferred);
    let sends = s
        .store
        .sends_of_enrollment(world.tenant, read[0].id)
        .await
        .unwrap();
    assert!(sends.is_empty(), "{sends:?}");
    assert_eq!(
        world.send(&s.store, read[1].id, 0).await.status(),
        SendStatus::Planned
    );
}
