//! `plan/*`: the planner at 50k due enrollments over 200 mailboxes against the first-fit
//! baseline, and its scaling from 10k to 1M.
//!
//! * `plan/50k_contacts_200_mailboxes`: a fresh day (nothing planned or sent yet, no caps).
//! * `plan/50k_busy_day`: the same fleet in the middle of a day: half of each mailbox's
//!   capacity planned or sent, gaps of 60 to 120 s, per-sequence and per-domain caps with
//!   their counts (see [`PlanningFixture::busy_day`]).
//!
//! Each plans with working memory kept from one plan to the next ([`plan_with`]), as the
//! engine does.
#![expect(missing_docs, reason = "bench items are not public API")]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sequence_benches::{baseline_first_fit, PlanningFixture};
use sequence_scheduler::planner::{plan_with, PlanScratch, PlannerConfig};

fn plan_50k(c: &mut Criterion) {
    let fixture = PlanningFixture::new(50_000, 200, 42);
    let config = PlannerConfig::with_seed(42);
    let mut group = c.benchmark_group("plan");
    group.sample_size(30);
    group.throughput(Throughput::Elements(50_000));
    group.bench_function("50k_contacts_200_mailboxes", |b| {
        let mut scratch = PlanScratch::default();
        b.iter(|| {
            black_box(plan_with(
                &mut scratch,
                fixture.now,
                &fixture.input(),
                &config,
            ))
        });
    });
    group.bench_function("50k_contacts_200_mailboxes_baseline_first_fit", |b| {
        b.iter(|| black_box(baseline_first_fit(&fixture.input(), fixture.now)));
    });
    let busy = PlanningFixture::busy_day(50_000, 200, 42);
    group.bench_function("50k_busy_day", |b| {
        let mut scratch = PlanScratch::default();
        b.iter(|| black_box(plan_with(&mut scratch, busy.now, &busy.input(), &config)));
    });
    group.finish();
}

fn plan_scaling(c: &mut Criterion) {
    let config = PlannerConfig::with_seed(42);
    let mut group = c.benchmark_group("plan/scaling");
    group.sample_size(10);
    for due in [10_000usize, 50_000, 200_000, 1_000_000] {
        // 200 mailboxes per 50k enrollments.
        let fixture = PlanningFixture::new(due, (due / 250).max(40), 42);
        group.throughput(Throughput::Elements(due as u64));
        group.bench_with_input(BenchmarkId::from_parameter(due), &fixture, |b, f| {
            let mut scratch = PlanScratch::default();
            b.iter(|| black_box(plan_with(&mut scratch, f.now, &f.input(), &config)));
        });
    }
    group.finish();
}

criterion_group!(benches, plan_50k, plan_scaling);
criterion_main!(benches);
