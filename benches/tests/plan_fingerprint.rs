//! Pins the planner's decisions on the benchmark fixtures, so that work on its speed can
//! show it changed no send, deferral, reason or instant: each test hashes the whole plan
//! (serialised, in the planner's output order) and compares it with the recorded value.
//!
//! A change that means to alter decisions updates the constants below, and says so in its
//! commit. `PLAN_DUMP_DIR=dir` also writes each plan as JSON there, for a diff.
#![allow(missing_docs)]

use sequence_benches::PlanningFixture;
use sequence_scheduler::planner::{plan, Plan, PlannerConfig};

/// 64-bit FNV-1a: stable across Rust versions and platforms, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Plans `fixture` with seed 42 and checks the plan's hash against `expected`.
fn check(name: &str, fixture: &PlanningFixture, expected: u64) {
    let p: Plan = plan(fixture.now, &fixture.input(), &PlannerConfig::with_seed(42));
    assert_eq!(p.sends.len() + p.deferred.len(), fixture.due.len());
    let json = serde_json::to_vec(&p).expect("a plan serialises");
    if let Some(dir) = std::env::var_os("PLAN_DUMP_DIR") {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.json")),
            &json,
        )
        .expect("write the dump");
    }
    let h = fnv1a(&json);
    assert_eq!(h, expected, "the plan of {name} changed: {h:#018x}");
}

#[test]
fn plain_50k_plan_is_unchanged() {
    check(
        "plain_50k",
        &PlanningFixture::new(50_000, 200, 42),
        PLAIN_50K,
    );
}

#[test]
fn busy_day_50k_plan_is_unchanged() {
    check(
        "busy_day_50k",
        &PlanningFixture::busy_day(50_000, 200, 42),
        BUSY_DAY_50K,
    );
}

const PLAIN_50K: u64 = 0xded3_1429_2e6f_f6fa;
const BUSY_DAY_50K: u64 = 0x8000_1312_6f7f_c655;
