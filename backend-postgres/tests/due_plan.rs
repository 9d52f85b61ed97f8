//! The due read's plan on PostgreSQL, in a binary of its own: its vacuum must not wait for
//! the transactions the other due-read tests hold open.

mod support;

use chrono::{DateTime, Duration, Utc};
use sequence_conformance::fixtures::t0;

/// `EXPLAIN ANALYZE` of the due read at `now`, a line per row.
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a failed read fails the test"
)]
async fn explain_due_read(pool: &sqlx::PgPool, now: DateTime<Utc>) -> Vec<String> {
    sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {}",
        backend_postgres::DUE_QUERY
    ))
    .bind(now)
    .bind(100_000_i64)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The due read's active branches are index-only scans: `enrollments_due_to_pool` and
/// `enrollments_due_on_mailbox` carry every column it hands out, so on a vacuumed page a due
/// enrollment costs no visit to the heap. 20,000 enrollments copied from one the engine
/// enrolled, one in 100 due and half of those sticky to the mailbox, vacuumed: the read
/// takes both indexes alone (no heap fetch) and answers all 201 due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_due_read_is_served_by_its_indexes_alone() {
    use sequence_core::prelude::*;
    use sequence_scheduler::VirtualClock;

    let store = support::fresh_store().await;
    let clock = VirtualClock::new(t0());
    let engine = support::recording_engine(&store, &clock);
    support::one_enrolled(&engine, t0(), vec![Step::new(Delay::ZERO, "One", "1")]).await;
    let pool = store.store.pool();
    let now = t0() + Duration::minutes(1);
    sqlx::query(
        "INSERT INTO enrollments (tenant_id, id, sequence_id, contact_id, status, due_at, \
             deferral_reason, mailbox_id, enrolled_at, version, doc, step, earliest, uncertain, \
             contact_status, contact_zone, recipient_domain) \
         SELECT t.tenant_id, md5('e' || g)::uuid, t.sequence_id, t.contact_id, t.status, \
             CASE WHEN g % 100 = 0 THEN $1 - make_interval(secs => g) \
                  ELSE $1 + interval '30 days' END, \
             NULL, CASE WHEN g % 200 = 0 THEN m.id END, t.enrolled_at, t.version, t.doc, \
             CASE WHEN g % 200 = 0 THEN 1 ELSE 0 END, t.earliest, t.uncertain, \
             t.contact_status, t.contact_zone, t.recipient_domain \
         FROM enrollments t, mailboxes m, generate_series(1, 20000) g",
    )
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    // VACUUM marks a page all-visible once no snapshot older than its rows is open on the
    // server; another test binary's transaction may still be: try a few times.
    let mut lines = Vec::new();
    for _ in 0..10 {
        sqlx::query("VACUUM ANALYZE enrollments")
            .execute(pool)
            .await
            .unwrap();
        lines = explain_due_read(pool, now).await;
        if !lines
            .iter()
            .any(|l| l.contains("Heap Fetches: ") && !l.ends_with(": 0"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let text = lines.join("\n");
    println!("EXPLAIN of the due read:\n{text}");
    for index in ["enrollments_due_to_pool", "enrollments_due_on_mailbox"] {
        assert!(
            text.contains(&format!("Index Only Scan using {index}")),
            "the due read must read {index} alone:\n{text}"
        );
    }
    let fetches: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split("Heap Fetches: ").nth(1))
        .collect();
    assert_eq!(fetches.len(), 2, "{text}");
    assert!(fetches.iter().all(|n| n.trim() == "0"), "{text}");
    let due = store.store.due_enrollments(now, 100_000).await.unwrap();
    assert_eq!(due.len(), 201);
    assert_eq!(due.iter().filter(|d| d.mailbox.is_some()).count(), 100);
}
