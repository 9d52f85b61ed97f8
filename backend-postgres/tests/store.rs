//! What the conformance suite does not cover: the claim query's plan, the events outbox,
//! retention, migrations run twice, and a server that does not answer.

mod support;

use backend_postgres::{PostgresStore, CLAIM_QUERY};
use chrono::{Duration, TimeZone, Utc};
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

/// Migrations already applied are not applied again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_is_harmless() {
    let s = support::fresh_store().await;
    s.store.migrate().await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(s.store.pool())
        .await
        .unwrap();
    assert_eq!(applied, 1);
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
