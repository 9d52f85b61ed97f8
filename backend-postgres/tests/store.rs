//! What the conformance suite does not cover: the claim query's plan, the events outbox,
//! retention, migrations run twice, and a server that does not answer (the due read's are
//! in `due_read.rs`).

mod support;

use backend_postgres::{PostgresStore, CLAIM_QUERY, ENROLL_READS};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sequence_conformance::fixtures::{claim, plan, sent, World};
use sequence_core::event::DomainEvent;
use sequence_core::store::{Outbox, StoreError};

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, 10, 0, 0).unwrap()
}

/// The claim starts from `mailbox_state` through its partial index on `ready_at`, locks
/// with `SKIP LOCKED` under the limit, and never scans the sends. With 5,000 mailboxes of
/// which 50 have something claimable, the plan is an index scan of `mailbox_state_ready`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_query_is_served_by_the_partial_index() {
    let s = support::fresh_store().await;
    let pool = s.store.pool();
    let tenant = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO mailboxes (tenant_id, id, status, min_gap_seconds, version, doc) \
         SELECT $1, gen_random_uuid(), 'active', 0, 0, '{}'::jsonb \
         FROM generate_series(1, 5000)",
    )
    .bind(tenant)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO mailbox_state (tenant_id, mailbox_id, ready_at) \
         SELECT tenant_id, id, \
             CASE WHEN row_number() OVER (ORDER BY id) % 100 = 0 THEN $1::timestamptz END \
         FROM mailboxes",
    )
    .bind(t0())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE mailbox_state")
        .execute(pool)
        .await
        .unwrap();
    let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {CLAIM_QUERY}"))
        .bind(t0())
        .bind(10_i64)
        .fetch_all(pool)
        .await
        .unwrap();
    let text = lines.join("\n");
    println!("EXPLAIN of the claim query:\n{text}");
    assert!(
        text.contains("mailbox_state_ready"),
        "the claim must use the partial index mailbox_state_ready:\n{text}"
    );
    assert!(
        text.contains("LockRows") && text.contains("Limit"),
        "the claim must lock under its limit:\n{text}"
    );
    assert!(
        !text.contains("sends") && !text.contains("Seq Scan"),
        "the claim must not scan:\n{text}"
    );
}

/// A mailbox's `mailbox_state`: whether a send is in flight, its earliest planned send,
/// and when it is claimable.
type MailboxState = (bool, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Each mailbox's `mailbox_state` as stored, beside what its sends say it must be: per
/// mailbox, (stored, recomputed).
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a failed read fails the test"
)]
async fn mailbox_state_against_sends(
    pool: &sqlx::PgPool,
) -> Vec<(uuid::Uuid, MailboxState, MailboxState)> {
    type Row = (
        uuid::Uuid,
        bool,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        bool,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT ms.mailbox_id, ms.in_flight, ms.next_planned_at, ms.ready_at, \
             x.in_flight, x.next_planned_at, \
             CASE WHEN x.in_flight OR x.next_planned_at IS NULL THEN NULL \
                  ELSE greatest(x.next_planned_at, \
                      ms.last_attempt_at + make_interval(secs => m.min_gap_seconds)) END \
         FROM mailbox_state ms \
         JOIN mailboxes m ON m.tenant_id = ms.tenant_id AND m.id = ms.mailbox_id \
         CROSS JOIN LATERAL ( \
             SELECT EXISTS (SELECT 1 FROM sends s WHERE s.tenant_id = ms.tenant_id \
                     AND s.mailbox_id = ms.mailbox_id AND s.status = 'sending') AS in_flight, \
                 (SELECT min(s.planned_at) FROM sends s WHERE s.tenant_id = ms.tenant_id \
                     AND s.mailbox_id = ms.mailbox_id AND s.status = 'planned') \
                     AS next_planned_at) x \
         ORDER BY ms.mailbox_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(m, a, b, c, d, e, f)| (m, (a, b, c), (d, e, f)))
        .collect()
}

/// Claims and completions set `mailbox_state` from what they know of the mailbox's sends
/// (the claimed send in flight and the next one earliest; the completed one done) instead
/// of reading the sends again: after every step of a run of claims, completions, a
/// release and a new plan, each mailbox's state is what its sends say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_completions_keep_mailbox_state_what_the_sends_say() {
    let s = support::fresh_store().await;
    let pool = s.store.pool();
    let w = World::build(&s, 3, 30, 1, 12).await;
    let es = w.enroll_all(&s, t0()).await;
    // Three sends per mailbox, a minute apart, the last two mailboxes' out of order.
    let minute = |i: i64| t0() + Duration::minutes(i);
    let mut items = Vec::new();
    for (i, e) in es.iter().take(9).enumerate() {
        let at = minute([0, 2, 1][i / 3 % 3] + i64::try_from(i % 3).unwrap() * 3);
        items.push(w.plan_send(e, i % 3, at, 30));
    }
    plan(&s, t0(), items).await;
    let check = |what: &'static str| async move {
        for (mailbox, stored, recomputed) in mailbox_state_against_sends(pool).await {
            assert_eq!(stored, recomputed, "{what}: mailbox {mailbox}");
        }
    };
    check("planned").await;
    let mut now = minute(0);
    let mut rounds = 0;
    loop {
        now += Duration::minutes(3);
        let claimed = claim(&s, now, 10).await;
        check("claimed").await;
        if claimed.is_empty() {
            break;
        }
        rounds += 1;
        // The first one of the round is given back; the others are sent together.
        let (first, rest) = claimed.split_first().unwrap();
        s.release_send(now, first.send.id, first.lease, None)
            .await
            .unwrap();
        check("released").await;
        let answers = s
            .complete_sends(now, rest.iter().map(|c| sent(c, now, 1)).collect())
            .await
            .unwrap();
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        check("completed").await;
        if rounds == 2 {
            // A new plan while sends are out: an earlier send for each mailbox.
            let more = es[9..]
                .iter()
                .enumerate()
                .map(|(i, e)| w.plan_send(e, i, now - Duration::minutes(1), 30))
                .collect();
            plan(&s, now, more).await;
            check("planned again").await;
        }
        assert!(rounds < 20, "the sends never ran out");
    }
    assert!(rounds >= 3, "{rounds} rounds");
}

/// `record_events` keeps each tenant's events in order; `recorded_events` reads them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_recorded_per_tenant_in_order() {
    let s = support::fresh_store().await;
    let w = World::build(&s, 1, 30, 1, 1).await;
    let events = vec![
        DomainEvent::SequenceActivated {
            sequence: w.sequence.id,
        },
        DomainEvent::SequencePaused {
            sequence: w.sequence.id,
        },
    ];
    s.record_events(w.tenant, t0(), &events).await.unwrap();
    s.record_events(sequence_core::ids::TenantId::new(), t0(), &events[..1])
        .await
        .unwrap();
    let back = s.store.recorded_events(w.tenant).await.unwrap();
    assert_eq!(
        back,
        events.into_iter().map(|e| (t0(), e)).collect::<Vec<_>>()
    );
}

/// `prune` deletes, in bounded batches, the final sends of final enrollments and the events
/// older than the cutoff, and nothing a running sequence still needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_what_is_finished_in_batches() {
    let s = support::fresh_store().await;
    let w = World::build(&s, 3, 30, 2, 3).await;
    let es = w.enroll_all(&s, t0()).await;
    plan(
        &s,
        t0(),
        es.iter()
            .enumerate()
            .map(|(i, e)| w.plan_send(e, i, t0(), 30))
            .collect(),
    )
    .await;
    let claimed = claim(&s, t0(), 10).await;
    assert_eq!(claimed.len(), 3);
    // Two enrollments end with their one step sent (a one-step completion); the third sends
    // its first of two steps and goes on.
    for c in &claimed[..2] {
        s.complete_send(t0(), sent(c, t0(), 1)).await.unwrap();
    }
    s.complete_send(t0(), sent(&claimed[2], t0(), 2))
        .await
        .unwrap();
    s.record_events(
        w.tenant,
        t0(),
        &[DomainEvent::SequenceActivated {
            sequence: w.sequence.id,
        }],
    )
    .await
    .unwrap();
    let later = t0() + Duration::days(40);
    let pruned = s.store.prune(later, 1).await.unwrap();
    assert_eq!((pruned.sends, pruned.events), (2, 1), "{pruned:?}");
    let kept = s
        .sends_of_enrollment(w.tenant, claimed[2].send.enrollment)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "an open enrollment keeps its sends");
    let again = s.store.prune(later, 100).await.unwrap();
    assert_eq!((again.sends, again.events, again.counters), (0, 0, 0));
}

/// Enrolling stays linear however often a connection runs it. PostgreSQL plans a named
/// statement generically from its sixth run on, and a generic plan cannot count the rows of
/// an array parameter: it took the batch for 100 rows and joined the rows inserted to the
/// rows given by a nested loop, quadratic in the batch (124 s for 50,000 rows, found by the
/// `pg/tick_50k_due` fixture). Seven batches of 20,000 on one connection each take well under
/// a second when planned for their size, and about 20 s when not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolling_again_and_again_on_one_connection_stays_linear() {
    use sequence_conformance::fixtures::sequence;
    use sequence_core::enrollment::Enrollment;
    use sequence_core::store::Catalog;

    let s = support::fresh_store().await;
    let one = PostgresStore::from_pool(support::schema_pool(&s.schema, 1).await);
    let w = World::build(&one, 1, 100, 1, 20_000).await;
    for round in 0..7 {
        let seq = sequence(w.tenant, &format!("Round {round}"), 1, &w.mailboxes);
        one.save_sequence(&seq, None).await.unwrap();
        let rows: Vec<Enrollment> = w
            .contacts
            .iter()
            .map(|c| Enrollment::new(w.tenant, seq.id, c.id, t0(), t0()))
            .collect();
        let answers = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            one.enroll(w.tenant, t0(), rows),
        )
        .await
        .unwrap_or_else(|_| panic!("enroll round {round} took over 10 s: not planned for its size"))
        .unwrap();
        assert_eq!(answers.len(), 20_000);
        // As autovacuum would, between batches: the plan is then costed on real statistics.
        // This schema's tables only: a bare `ANALYZE` also analyzes the tables of the tests
        // running beside this one, and gave the plan test below an empty `enrollments`
        // known to be empty (a `Seq Scan` there, seen in CI).
        sqlx::query("ANALYZE contacts, enrollments, enrollment_identities")
            .execute(one.pool())
            .await
            .unwrap();
    }
}

/// Migrations already applied are not applied again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_is_harmless() {
    let s = support::fresh_store().await;
    s.store.migrate().await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(s.store.pool())
        .await
        .unwrap();
    let migrations = i64::try_from(backend_postgres::MIGRATOR.iter().count()).unwrap();
    assert_eq!(applied, migrations);
}

/// A server that does not answer is a backend error whose source is sqlx's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_is_a_backend_error_with_its_cause() {
    let r = PostgresStore::connect("postgres://postgres@127.0.0.1:1/none").await;
    let Err(StoreError::Backend(cause)) = r else {
        panic!("connect to a closed port must fail with Backend, got {r:?}");
    };
    assert!(cause.downcast_ref::<sqlx::Error>().is_some(), "{cause}");
}

// ---- references kept by the store: enroll against a draft's deletion ------------------------

/// A draft sequence and one contact of a new tenant, stored.
#[expect(clippy::unwrap_used, reason = "a broken fixture fails the test")]
async fn draft_and_contact(
    store: &PostgresStore,
) -> (
    sequence_core::ids::TenantId,
    sequence_core::sequence::Sequence,
    sequence_core::contact::Contact,
) {
    use sequence_core::store::Catalog;
    let tenant = sequence_core::ids::TenantId::new();
    let mut draft = sequence_core::sequence::Sequence::new(tenant, "Draft", t0()).unwrap();
    draft
        .add_step(sequence_core::prelude::Step::new(
            sequence_core::prelude::Delay::ZERO,
            "Hi",
            "Hello",
        ))
        .unwrap();
    store.save_sequence(&draft, None).await.unwrap();
    let contact = sequence_core::contact::Contact::new(tenant, "p@client.example").unwrap();
    let stored = store
        .upsert_contacts(tenant, std::slice::from_ref(&contact))
        .await
        .unwrap();
    assert_eq!(stored, vec![contact.id]);
    (tenant, draft, contact)
}

/// Without a foreign key, `enroll` keeps the reference itself: an enrollment into a
/// sequence whose deletion is under way waits for it, then finds the sequence gone and
/// stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_waits_for_a_draft_being_deleted_and_then_refuses() {
    let s = support::fresh_store().await;
    let (tenant, draft, contact) = draft_and_contact(&s.store).await;
    // A deletion under way, as `delete_draft_sequence` makes it: the row locked first.
    let mut deleting = s.store.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM sequences WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
        .bind(tenant.0)
        .bind(draft.id.0)
        .execute(&mut *deleting)
        .await
        .unwrap();
    let store = s.store.clone();
    let e = sequence_core::enrollment::Enrollment::new(tenant, draft.id, contact.id, t0(), t0());
    let enroll = tokio::spawn(async move { store.enroll(tenant, t0(), vec![e]).await });
    assert!(
        support::still_waiting(&enroll).await,
        "enroll must wait for the sequence row a deletion holds"
    );
    sqlx::query("DELETE FROM sequences WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(draft.id.0)
        .execute(&mut *deleting)
        .await
        .unwrap();
    deleting.commit().await.unwrap();
    let answers = enroll.await.unwrap().unwrap();
    assert!(
        matches!(&answers[..], [sequence_core::store::EnrollOutcome::Invalid { reason }]
            if reason.contains("not found")),
        "{answers:?}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM enrollments")
        .fetch_one(s.store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0, "no enrollment of a deleted sequence");
}

/// `delete_draft_sequence` waits for an enrollment into the draft that is being stored
/// (it share-locks the sequence), then sees it and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_draft_waits_for_an_enrollment_being_stored_and_then_keeps_the_draft() {
    use sequence_core::store::{Catalog, DraftDeletion};
    let s = support::fresh_store().await;
    let (tenant, draft, contact) = draft_and_contact(&s.store).await;
    // An enrollment under way, as `enroll` stores it: the sequence share-locked, the row
    // inserted, not yet committed.
    let mut enrolling = s.store.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM sequences WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE")
        .bind(tenant.0)
        .bind(draft.id.0)
        .execute(&mut *enrolling)
        .await
        .unwrap();
    sqlx::query(
        "WITH i AS ( \
             INSERT INTO enrollment_identities (tenant_id, id, sequence_id, contact_id, \
                 enrolled_at, open) \
             VALUES ($1, gen_random_uuid(), $2, $3, $4, true) \
             RETURNING id) \
         INSERT INTO enrollments (tenant_id, id, sequence_id, contact_id, status, due_at, \
             deferral_reason, mailbox_id, enrolled_at, version, doc, step, uncertain, \
             contact_status, recipient_domain) \
         SELECT $1, i.id, $2, $3, 'active', $4, NULL, NULL, $4, 0, '{}', 0, false, 'active', '' \
         FROM i",
    )
    .bind(tenant.0)
    .bind(draft.id.0)
    .bind(contact.id.0)
    .bind(t0())
    .execute(&mut *enrolling)
    .await
    .unwrap();
    let store = s.store.clone();
    let id = draft.id;
    let delete = tokio::spawn(async move { store.delete_draft_sequence(tenant, id).await });
    assert!(
        support::still_waiting(&delete).await,
        "the deletion must wait for the enrollment being stored"
    );
    enrolling.commit().await.unwrap();
    assert_eq!(
        delete.await.unwrap().unwrap(),
        DraftDeletion::HasEnrollments
    );
    assert!(s
        .store
        .get_sequence(tenant, draft.id)
        .await
        .unwrap()
        .is_some());
}

/// Contacts enrolled through one store are a work notice to a listener on another pool of the
/// same schema (another process), delivered when the enrollment commits; a listener on
/// another schema of the database is not told, and an enrollment that stores nothing
/// notifies no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolling_is_a_work_notice_to_listeners_of_the_schema() {
    use std::time::Duration as StdDuration;

    let s = support::fresh_store().await;
    let elsewhere = support::fresh_store().await;
    let other = PostgresStore::from_pool(support::schema_pool(&s.schema, 2).await);
    let world = World::build(&s.store, 1, 100, 1, 2).await;
    let mut here = other.listen_for_work().await.unwrap();
    let mut there = elsewhere.store.listen_for_work().await.unwrap();
    let quiet = StdDuration::from_millis(500);

    world.enroll_all(&s.store, t0()).await;
    tokio::time::timeout(StdDuration::from_secs(10), here.next())
        .await
        .expect("a listener of the schema hears of the enrollment")
        .unwrap();
    assert!(
        tokio::time::timeout(quiet, there.next()).await.is_err(),
        "a listener of another schema hears nothing"
    );

    // The same contacts again: both refused (already enrolled), nothing stored.
    let again: Vec<_> = world
        .contacts
        .iter()
        .map(|c| {
            sequence_core::enrollment::Enrollment::new(
                world.tenant,
                world.sequence.id,
                c.id,
                t0(),
                t0(),
            )
        })
        .collect();
    let answers = s.store.enroll(world.tenant, t0(), again).await.unwrap();
    assert!(answers
        .iter()
        .all(|a| !matches!(a, sequence_core::store::EnrollOutcome::Enrolled { .. })));
    assert!(
        tokio::time::timeout(quiet, here.next()).await.is_err(),
        "an enrollment that stored nothing is no notice"
    );
}

/// The reads of a bulk enrollment probe an index per row, and are planned afresh on every
/// run for the size the tables have then: a plan cached while they looked empty (a new
/// schema, or tables just emptied) walked every pair for every stored row, and one
/// enrollment of 50,000 contacts took 52 s on a connection that had enrolled batch after
/// batch. With 20,000 identities stored (never analyzed) and as many pairs asked for, each
/// read is a nested loop of index probes; and after enrollments on a connection, none of
/// them is among its prepared statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reads_of_a_bulk_enrollment_probe_an_index_per_row_planned_afresh() {
    use sequence_core::enrollment::Enrollment;

    let s = support::fresh_store().await;
    let pool = s.store.pool();
    // Never analyzed while the test runs: an analyze of the empty `enrollments` makes it
    // known to be empty, and a `Seq Scan` of it is then the right plan for another case.
    // Other tests analyze only their own schema's tables; autovacuum is kept off these.
    for off in [
        "ALTER TABLE enrollment_identities SET (autovacuum_enabled = false)",
        "ALTER TABLE enrollments SET (autovacuum_enabled = false)",
    ] {
        sqlx::query(off).execute(pool).await.unwrap();
    }
    let tenant = uuid::Uuid::from_u128(7);
    let sequence = uuid::Uuid::from_u128(8);
    sqlx::query(
        "INSERT INTO enrollment_identities (tenant_id, id, sequence_id, contact_id, \
             enrolled_at, open) \
         SELECT $1, md5('e' || g)::uuid, $2, md5('c' || g)::uuid, now(), true \
         FROM generate_series(1, 20000) g",
    )
    .bind(tenant)
    .bind(sequence)
    .execute(pool)
    .await
    .unwrap();
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM enrollment_identities")
        .fetch_all(pool)
        .await
        .unwrap();
    let contacts: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT contact_id FROM enrollment_identities")
            .fetch_all(pool)
            .await
            .unwrap();
    let n = ids.len();
    let [used, latest, open] = ENROLL_READS;
    let plans = [
        sqlx::query_scalar(&format!("EXPLAIN (COSTS OFF) {used}"))
            .bind(&ids)
            .persistent(false)
            .fetch_all(pool)
            .await,
        sqlx::query_scalar(&format!("EXPLAIN (COSTS OFF) {latest}"))
            .bind(tenant)
            .bind(vec![sequence; n])
            .bind(&contacts)
            .persistent(false)
            .fetch_all(pool)
            .await,
        sqlx::query_scalar(&format!("EXPLAIN (COSTS OFF) {open}"))
            .bind(vec![tenant; n])
            .bind(vec![sequence; n])
            .bind(&contacts)
            .persistent(false)
            .fetch_all(pool)
            .await,
    ];
    for (i, lines) in plans.into_iter().enumerate() {
        let lines: Vec<String> = lines.unwrap();
        let plan = lines.join("\n");
        println!("{plan}");
        assert!(plan.starts_with("Nested Loop"), "read {i}:\n{plan}");
        assert!(!plan.contains("Seq Scan"), "read {i}:\n{plan}");
        assert!(!plan.contains("Hash"), "read {i}:\n{plan}");
        assert!(plan.contains("Index Cond"), "read {i}:\n{plan}");
    }

    // Enrollments through a store of one connection, one at a time: its prepared statements.
    let one = PostgresStore::from_pool(support::schema_pool(&s.schema, 1).await);
    let w = World::build(&one, 1, 100, 1, 10).await;
    for person in &w.contacts {
        let e = Enrollment::new(w.tenant, w.sequence.id, person.id, t0(), t0());
        one.enroll(w.tenant, t0(), vec![e]).await.unwrap();
    }
    let prepared: Vec<String> = sqlx::query_scalar("SELECT statement FROM pg_prepared_statements")
        .fetch_all(one.pool())
        .await
        .unwrap();
    assert!(
        prepared.iter().any(|p| p.contains("enrollment_identities")),
        "the store's other statements are prepared: {prepared:#?}"
    );
    for read in ENROLL_READS {
        assert!(
            !prepared.iter().any(|p| p.contains(read)),
            "{read} is prepared: {prepared:#?}"
        );
    }
}
