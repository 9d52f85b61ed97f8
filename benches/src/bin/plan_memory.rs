//! Plans once for N due enrollments (default 1,000,000) and prints what was planned, so
//! that `/usr/bin/time -v` can report the peak memory of the case.
//!
//! `cargo run --release -p sequence-benches --bin plan_memory -- 1000000`

use sequence_benches::PlanningFixture;
use sequence_scheduler::planner::{plan, PlannerConfig};

fn main() {
    let due: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let fixture = PlanningFixture::new(due, (due / 250).max(40), 42);
    let started = std::time::Instant::now();
    let p = plan(fixture.now, &fixture.input(), &PlannerConfig::with_seed(42));
    println!(
        "{} due over {} mailboxes: {} planned, {} deferred, in {:?}",
        due,
        fixture.mailboxes.len(),
        p.sends.len(),
        p.deferred.len(),
        started.elapsed()
    );
}
