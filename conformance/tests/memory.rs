//! The conformance suite against the in-memory store: one test per case, then checks only
//! the memory store can make (its indexes rebuilt from its rows after every case, and after
//! every tick of a busy engine run).

use std::sync::{Arc, Mutex};

use backend_memory::MemoryStore;

sequence_conformance::conformance_tests!(|| async { MemoryStore::new() });

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_case_leaves_the_indexes_consistent() {
    let made: Arc<Mutex<Vec<MemoryStore>>> = Arc::default();
    let record = Arc::clone(&made);
    sequence_conformance::run_all(move || {
        let store = MemoryStore::new();
        record.lock().unwrap().push(store.clone());
        async move { store }
    })
    .await;
    let made = made.lock().unwrap().clone();
    assert_eq!(made.len(), sequence_conformance::CASES.len());
    for (name, store) in sequence_conformance::CASES.iter().zip(&made) {
        if let Err(e) = store.check_indexes() {
            panic!("after case {name}: {e}");
        }
    }
}

/// The busy engine run every backend makes (see `busy_engine_run`): after every tick the
/// store's indexes match its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_engine_run_keeps_the_indexes_consistent() {
    let store = MemoryStore::new();
    let checked = store.clone();
    sequence_conformance::busy_engine_run(store, move |now| {
        if let Err(e) = checked.check_indexes() {
            panic!("after the tick at {now}: {e}");
        }
    })
    .await;
}
