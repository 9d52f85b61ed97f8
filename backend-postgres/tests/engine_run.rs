//! The engine on PostgreSQL over 45 virtual days of a busy fleet: the run every backend
//! makes (`sequence_conformance::busy_engine_run`).

mod support;

/// Demand over capacity, mailboxes in four zones with business hours and gaps, pauses,
/// replies, unsubscribes and failures: the run keeps the capacity and one-at-a-time rules,
/// sends nothing twice or after a stop, and finishes everything nothing stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_engine_run_keeps_every_rule() {
    let store = support::fresh_store().await;
    sequence_conformance::busy_engine_run(store, |_| {}).await;
}
