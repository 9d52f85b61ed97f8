//! `engine/*`: the engine on the in-memory store with a transport that does nothing.
//!
//! * `engine/dispatch_memory`: 100,000 sends due at once; the tick that sends them all.
//! * `engine/tick_1k_due`: the cost of a tick that finds 1,000 due enrollments, with 10k
//!   and with 1M enrollments stored.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use backend_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sequence_core::prelude::*;
use sequence_scheduler::{Engine, EngineConfig, VirtualClock};

/// Accepts everything at once.
#[derive(Debug, Clone, Copy)]
struct NoopTransport;

#[async_trait]
impl Transport for NoopTransport {
    async fn send(&self, _email: &OutgoingEmail) -> Result<Delivery, SendError> {
        Ok(Delivery::default())
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap()
}

struct Setup {
    engine: Engine,
    tenant: TenantId,
    sequence: SequenceId,
}

/// `mailboxes` always-open mailboxes with room for everything, one one-step sequence.
async fn setup(mailboxes: usize, limit: u32) -> Setup {
    let clock = VirtualClock::new(start());
    let engine = Engine::builder()
        .store(MemoryStore::new())
        .transport(NoopTransport)
        .clock(clock)
        .config(EngineConfig::with_seed(1).concurrency(64))
        .build()
        .unwrap();
    let tenant = TenantId::from_u128(1);
    let mut pool = Vec::new();
    for i in 0..mailboxes {
        let m = Mailbox::new(tenant, format!("s{i}@fleet.example"), chrono_tz::UTC)
            .unwrap()
            .with_daily_limit(limit);
        pool.push(engine.create_mailbox(m).await.unwrap().id);
    }
    let mut seq = Sequence::new(tenant, "Bench", start()).unwrap();
    seq.add_step(Step::new(
        Delay::ZERO,
        "Hello {{ first_name }}",
        "Hi {{ first_name }}, a short note.",
    ))
    .unwrap();
    seq.set_mailbox_pool(pool).unwrap();
    let seq = engine.create_sequence(seq).await.unwrap();
    engine.activate_sequence(tenant, seq.id).await.unwrap();
    Setup {
        engine,
        tenant,
        sequence: seq.id,
    }
}

async fn add_contacts(s: &Setup, from: usize, n: usize, due_at: DateTime<Utc>) {
    let contacts: Vec<Contact> = (from..from + n)
        .map(|i| {
            Contact::new(s.tenant, format!("c{i}@client.example"))
                .unwrap()
                .with_id(ContactId::from_u128(i as u128 + 1))
                .with_name(format!("C{i}"), "Doe")
        })
        .collect();
    s.engine.upsert_contacts(s.tenant, &contacts).await.unwrap();
    let rows: Vec<Enrollment> = contacts
        .iter()
        .map(|c| Enrollment::new(s.tenant, s.sequence, c.id, start(), due_at))
        .collect();
    s.engine
        .store()
        .enroll(s.tenant, start(), rows)
        .await
        .unwrap();
}

fn dispatch_memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("dispatch_memory", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(async {
                    let s = setup(1_000, 200).await;
                    add_contacts(&s, 0, 100_000, start()).await;
                    // Plan everything, then dispatch once it has all come due.
                    s.engine.tick(start()).await.unwrap();
                    let end = start() + Duration::hours(23) + Duration::minutes(59);
                    let began = Instant::now();
                    let report = s.engine.tick(end).await.unwrap();
                    let took = began.elapsed();
                    assert_eq!(report.sent, 100_000, "{report:?}");
                    took
                });
            }
            total
        });
    });
    group.finish();
}

fn tick_with_stored(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("engine/tick_1k_due");
    group.sample_size(10);
    for stored in [10_000usize, 1_000_000] {
        let s = rt.block_on(async {
            let s = setup(200, 100_000).await;
            // Stored but not due: enrolled for next year.
            add_contacts(&s, 0, stored, start() + Duration::days(365)).await;
            s
        });
        let mut next = stored;
        group.bench_with_input(BenchmarkId::from_parameter(stored), &stored, |b, _| {
            b.iter_custom(|iters| {
                let mut total = StdDuration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(async {
                        add_contacts(&s, next, 1_000, start()).await;
                        next += 1_000;
                        let began = Instant::now();
                        let report = s.engine.tick(start()).await.unwrap();
                        let took = began.elapsed();
                        assert_eq!(report.planned + report.deferred, 1_000, "{report:?}");
                        took
                    });
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, dispatch_memory, tick_with_stored);
criterion_main!(benches);
