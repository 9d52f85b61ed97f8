//! `engine/*` and `tick/*`: the engine on the in-memory store with a transport that does
//! nothing.
//!
//! * `engine/dispatch_memory`: 100,000 sends due at once (no gap); the tick that sends them
//!   all.
//! * `engine/dispatch_day_200_mailboxes_60s_gap`: 20,000 sends planned over one virtual day
//!   on 200 mailboxes with a 60 s gap; every tick of that day, at each next wake-up as `run`
//!   does, with the store's reads and writes: the sends per second a host gets.
//! * `engine/tick_1k_due`: the cost of a tick that finds 1,000 due enrollments, with 10k
//!   and with 1M enrollments stored. After each measured tick the 1,000 are exited and
//!   their sends cancelled (not measured), so every iteration finds the same work.
//! * `tick/50k_due`: one full tick (due read, plan, persist) of 50,000 due enrollments
//!   over 200 mailboxes, on a fresh store per iteration. The mailboxes' windows open later
//!   that day, so nothing is claimed.
//! * `tick/50k_due_store/*`: the store calls of that tick one by one, with the arguments
//!   the engine passed, to show where its time goes.
#![expect(
    missing_docs,
    clippy::unwrap_used,
    reason = "bench items are not public API, and a broken fixture should stop the bench"
)]

use std::cell::OnceCell;
use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration as StdDuration, Instant};

use backend_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion,
    Throughput,
};
use sequence_benches::{NoopTransport, PlanningFixture, TickFixture, ZONES};
use sequence_core::prelude::*;
use sequence_core::store::{PlanCommit, PlanDeferral, PlanSend, PlanWait};
use sequence_scheduler::planner::{plan, PlannerConfig};
use sequence_scheduler::{Engine, EngineConfig, VirtualClock};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `iters` runs of `run` on `rt`, each answering the time it measured; their sum.
fn sum_of<F: Future<Output = StdDuration>>(
    rt: &Runtime,
    iters: u64,
    mut run: impl FnMut() -> F,
) -> StdDuration {
    (0..iters).map(|_| rt.block_on(run())).sum()
}

/// A group of 10 samples, each run counting `elements` items when given.
fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
    elements: Option<u64>,
) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    if let Some(n) = elements {
        group.throughput(Throughput::Elements(n));
    }
    group
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap()
}

fn engine_on(store: MemoryStore, clock: VirtualClock) -> Engine {
    Engine::builder(store, NoopTransport)
        .clock(clock)
        .config(EngineConfig::with_seed(1).concurrency(64))
        .build()
}

struct Setup {
    engine: Engine,
    clock: VirtualClock,
    tenant: TenantId,
    sequence: SequenceId,
}

/// `mailboxes` always-open UTC mailboxes with daily limit `limit` and minimum gap `gap`
/// seconds, one one-step sequence.
async fn setup(mailboxes: usize, limit: u32, gap: u32) -> Setup {
    let clock = VirtualClock::new(start());
    let engine = engine_on(MemoryStore::new(), clock.clone());
    let tenant = TenantId::from_u128(1);
    let mut pool = Vec::new();
    for i in 0..mailboxes {
        let m = Mailbox::new(tenant, format!("s{i}@fleet.example"), chrono_tz::UTC)
            .unwrap()
            .with_daily_limit(limit)
            .with_min_gap_seconds(gap);
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
        clock,
        tenant,
        sequence: seq.id,
    }
}

/// Enroll `n` new contacts, due at `due_at`; their enrollments.
async fn add_contacts(
    s: &Setup,
    from: usize,
    n: usize,
    due_at: DateTime<Utc>,
) -> Vec<EnrollmentId> {
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
    let ids = rows.iter().map(|e| e.id).collect();
    s.engine
        .store()
        .enroll(s.tenant, start(), rows)
        .await
        .unwrap();
    ids
}

fn dispatch_memory(c: &mut Criterion) {
    let rt = runtime();
    let mut group = group(c, "engine", Some(100_000));
    group.bench_function("dispatch_memory", |b| {
        b.iter_custom(|iters| {
            sum_of(&rt, iters, || async {
                let s = setup(1_000, 200, 0).await;
                add_contacts(&s, 0, 100_000, start()).await;
                // Plan everything, then dispatch once it has all come due.
                s.engine.tick().await.unwrap();
                let end = start() + Duration::hours(23) + Duration::minutes(59);
                s.clock.set(end);
                let began = Instant::now();
                let report = s.engine.tick().await.unwrap();
                let took = began.elapsed();
                assert_eq!(report.sent, 100_000, "{report:?}");
                took
            })
        });
    });
    group.finish();
}

/// Sends of one virtual day in `dispatch_day`: 200 mailboxes at 100 a day.
const DAY_SENDS: usize = 20_000;

/// Tick through the virtual day from the first wake-up after `start()`, as `run` would
/// (at each next wake-up, at most the poll interval apart), the clock following; the sends.
async fn run_day(s: &Setup) -> usize {
    let end = start() + Duration::days(1);
    let poll = s.engine.config().poll_interval;
    let mut now = start();
    let mut sent = 0;
    while let Some(at) = s.engine.next_wakeup().await.unwrap() {
        // Never twice at one instant: a wake-up in the past is served at once.
        now = at.clamp(now + Duration::milliseconds(1), now + poll);
        if now >= end {
            break;
        }
        s.clock.set(now);
        sent += s.engine.tick().await.unwrap().sent;
    }
    sent
}

fn dispatch_day(c: &mut Criterion) {
    let rt = runtime();
    let mut group = group(c, "engine", Some(DAY_SENDS as u64));
    group.bench_function("dispatch_day_200_mailboxes_60s_gap", |b| {
        b.iter_custom(|iters| {
            sum_of(&rt, iters, || async {
                let s = setup(200, 100, 60).await;
                add_contacts(&s, 0, DAY_SENDS, start()).await;
                // Plan the day (not measured): 100 sends per mailbox, 864 s apart.
                let planned = s.engine.tick().await.unwrap();
                assert_eq!(planned.planned, DAY_SENDS, "{planned:?}");
                let began = Instant::now();
                let sent = run_day(&s).await;
                let took = began.elapsed();
                assert_eq!(sent, DAY_SENDS);
                took
            })
        });
    });
    group.finish();
}

/// Exit `ids` and cancel their sends, so that the next tick finds none of them.
async fn undo(s: &Setup, ids: &[EnrollmentId]) {
    let store = s.engine.store();
    let mut changes = sequence_core::store::ChangeSet::default();
    for id in ids {
        let mut e = store.get_enrollment(s.tenant, *id).await.unwrap().unwrap();
        let read = e.version();
        e.exit(ExitReason::Manual, start()).unwrap();
        changes.enrollments.push((e, read));
        for send in store.sends_of_enrollment(s.tenant, *id).await.unwrap() {
            changes.cancel_sends.push(send.id);
        }
    }
    store.apply_changes(start(), changes).await.unwrap();
}

fn tick_with_stored(c: &mut Criterion) {
    let rt = runtime();
    let mut group = group(c, "engine/tick_1k_due", None);
    for stored in [10_000usize, 1_000_000] {
        // Built on first use, so that a filter that leaves this case out skips its set-up.
        let mut built: Option<Setup> = None;
        let mut next = stored;
        group.bench_with_input(
            BenchmarkId::from_parameter(stored),
            &stored,
            |b, &stored| {
                let s = &*built.get_or_insert_with(|| {
                    rt.block_on(async {
                        let s = setup(200, 100_000, 0).await;
                        // Stored but not due: enrolled for next year.
                        add_contacts(&s, 0, stored, start() + Duration::days(365)).await;
                        s
                    })
                });
                b.iter_custom(|iters| {
                    sum_of(&rt, iters, || {
                        let from = next;
                        next += 1_000;
                        async move {
                            let due = add_contacts(s, from, 1_000, start()).await;
                            let began = Instant::now();
                            let report = s.engine.tick().await.unwrap();
                            let took = began.elapsed();
                            assert_eq!(
                                report.planned + report.deferred + report.held,
                                1_000,
                                "{report:?}"
                            );
                            undo(s, &due).await;
                            took
                        }
                    })
                });
            },
        );
    }
    group.finish();
}

/// A fresh memory store holding the fixture's rows.
async fn fresh_store(f: &TickFixture) -> MemoryStore {
    let store = MemoryStore::new();
    f.store_catalog(&store).await;
    store
        .enroll(f.tenant, f.now, f.enrollments.clone())
        .await
        .unwrap();
    store
}

/// An engine on a fresh store, its clock at the fixture's `now`.
async fn engine_for(f: &TickFixture) -> Engine {
    engine_on(fresh_store(f).await, VirtualClock::new(f.now))
}

/// The plan the tick applied, read back from `store` after it: its sends, its deferrals
/// and its pool waits, with the versions the engine read (the enrolled rows' 0).
async fn commit_after_tick(f: &TickFixture, store: &MemoryStore) -> PlanCommit {
    let mut commit = PlanCommit::default();
    let by_id: std::collections::HashMap<MailboxId, &Mailbox> =
        f.mailboxes.iter().map(|m| (m.id, m)).collect();
    for seq in &f.sequences {
        for send in store.sends_of_sequence(f.tenant, seq.id).await.unwrap() {
            commit.sends.push(PlanSend {
                enrollment: send.enrollment,
                enrollment_version: 0,
                step: send.step,
                mailbox: send.mailbox(),
                at: send.planned_at(),
                local_date: send.local_date(),
                limit: by_id[&send.mailbox()].limit_on(send.local_date()),
                message_id: send.message_id.clone(),
                variant: send.variant,
                recipient_domain: f.contacts[contact_index(send.contact)].email_domain(),
            });
        }
        if let Some(wait) = store.pool_wait(f.tenant, seq.id, f.now).await.unwrap() {
            commit.waits.push(PlanWait {
                wait,
                seen: Vec::new(),
            });
        }
        for e in store.list_enrollments(f.tenant, seq.id).await.unwrap() {
            if let Some(deferral) = e.deferral() {
                commit.deferrals.push(PlanDeferral {
                    enrollment: e.id,
                    enrollment_version: 0,
                    deferral,
                });
            }
        }
    }
    commit
}

/// Where a contact of [`TickFixture`] sits in its list.
fn contact_index(id: ContactId) -> usize {
    usize::try_from(id.0.as_u128() - 1).unwrap()
}

/// The rows of `tick/*`, built on first use.
static TICK: LazyLock<TickFixture> = LazyLock::new(TickFixture::new);

fn tick_50k(c: &mut Criterion) {
    let rt = runtime();
    let mut group = group(c, "tick", Some(50_000));
    group.bench_function("50k_due", |b| {
        b.iter_batched(
            || rt.block_on(engine_for(&TICK)),
            |engine| {
                let report = rt.block_on(engine.tick()).unwrap();
                assert_eq!(report.sent, 0, "{report:?}");
                // Every due enrollment was planned, deferred or left to its pool's wait
                // (read or not: the due read goes no further than the pools' room).
                let left = rt.block_on(engine.store().due_enrollments(TICK.now, 1));
                assert!(left.unwrap().is_empty(), "{report:?}");
                // Dropped outside the measurement.
                (engine, report)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

/// What `tick/50k_due_store/*` replays: the plan the tick applied, whole and split.
struct Replay {
    store: MemoryStore,
    mailbox_ids: Vec<MailboxId>,
    planning: PlanningFixture,
    /// The plan whole, its sends only, its deferrals only: see [`Replay::NAMES`].
    commits: [PlanCommit; 3],
}

impl Replay {
    const NAMES: [&'static str; 3] = [
        "apply_plan",
        "apply_plan_sends_only",
        "apply_plan_deferrals_only",
    ];

    /// Tick once on a fresh store and read back what it applied.
    fn new(rt: &Runtime) -> Self {
        let fixture = &*TICK;
        let now = fixture.now;
        let (commit, report) = rt.block_on(async {
            let store = fresh_store(fixture).await;
            let engine = engine_on(store.clone(), VirtualClock::new(now));
            let report = engine.tick().await.unwrap();
            (commit_after_tick(fixture, &store).await, report)
        });
        assert_eq!(commit.sends.len(), report.planned);
        assert_eq!(commit.deferrals.len(), report.deferred);
        eprintln!(
            "tick/50k_due: {} planned, {} deferred, {} held by {} pool waits",
            report.planned,
            report.deferred,
            report.held,
            commit.waits.len()
        );
        let sends_only = PlanCommit {
            sends: commit.sends.clone(),
            ..PlanCommit::default()
        };
        let deferrals_only = PlanCommit {
            deferrals: commit.deferrals.clone(),
            ..PlanCommit::default()
        };
        Self {
            store: rt.block_on(fresh_store(fixture)),
            mailbox_ids: fixture.mailboxes.iter().map(|m| m.id).collect(),
            planning: PlanningFixture::in_zones(50_000, 200, 42, &ZONES[..5], now),
            commits: [commit, sends_only, deferrals_only],
        }
    }
}

fn tick_50k_store(c: &mut Criterion) {
    let rt = runtime();
    let replay = OnceCell::new();
    let replay = || replay.get_or_init(|| Replay::new(&rt));
    let now = TICK.now;
    let config = PlannerConfig::with_seed(1);
    let mut group = group(c, "tick/50k_due_store", None);
    group.bench_function("due_enrollments", |b| {
        let store = &replay().store;
        // Dropping the 50,000 rows read is measured too, as the tick drops them; keeping
        // them past the measurement (`iter_with_large_drop`) costs more in fresh pages.
        b.iter(|| black_box(rt.block_on(store.due_enrollments(now, 100_000)).unwrap()));
    });
    group.bench_function("mailbox_snapshots", |b| {
        let r = replay();
        b.iter(|| {
            black_box(
                rt.block_on(r.store.mailbox_snapshots(now, &r.mailbox_ids))
                    .unwrap(),
            )
        });
    });
    group.bench_function("plan_only", |b| {
        let input = replay().planning.input();
        b.iter(|| black_box(plan(now, &input, &config)));
    });
    for (k, name) in Replay::NAMES.into_iter().enumerate() {
        group.bench_function(name, |b| {
            let commit = &replay().commits[k];
            b.iter_batched(
                || (rt.block_on(fresh_store(&TICK)), commit.clone()),
                |(store, commit)| {
                    let applied = rt.block_on(store.apply_plan(now, commit)).unwrap();
                    (store, applied)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    dispatch_memory,
    dispatch_day,
    tick_with_stored,
    tick_50k,
    tick_50k_store
);
criterion_main!(benches);
