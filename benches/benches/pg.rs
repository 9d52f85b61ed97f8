//! `pg/*`: the engine on the PostgreSQL store, against the server at `DATABASE_URL` (the
//! local one, `postgres://postgres@127.0.0.1:5432/test`, when unset). Each bench works in a
//! schema of its own (`pgbench_<name>_<pid>`), made on first use and dropped at the end.
//! What is measured is what a host pays: the engine's calls with the store's reads and
//! writes.
//!
//! * `pg/enroll_50k`: `Engine::enroll` of 50,000 stored contacts into one sequence, with
//!   an answer per row. Before each run (not measured) the enrollments are deleted.
//! * `pg/claim_complete/{1,4}`: 5,000 planned sends due at once on 500 mailboxes (no
//!   gap), sent with a transport that does nothing by 1 or 4 workers: each worker is an
//!   engine with its own connection pool, as a process would be, ticking until all are
//!   sent (claim, re-check, send, complete). Throughput in sends.
//! * `pg/due_query`: `due_enrollments` over 1,000,000 stored enrollments of which 1% are
//!   due, with the engine's batch size: the 10,000 due with what planning reads of them
//!   and their contacts (the store leaves the documents out). The fixture is
//!   built once, in SQL (`generate_series` from one enrollment the store wrote).
//! * `pg/tick_50k_due`: one full `Engine::tick` (due read, plan, persist) of 50,000 due
//!   enrollments over 200 mailboxes (the `tick/50k_due` fixture of `engine.rs`): the
//!   mailboxes' windows open later that day, so nothing is claimed. The enrollments are
//!   stored again before each run (not measured).
//!
//! Run with `cargo bench -p sequence-benches --bench pg`. When no server answers, the bench
//! stops with a message that says how to start one.
#![expect(
    missing_docs,
    clippy::unwrap_used,
    reason = "bench items are not public API, and a broken fixture should stop the bench"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use backend_postgres::PostgresStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion,
    SamplingMode, Throughput,
};
use sequence_benches::{NoopTransport, TickFixture};
use sequence_core::prelude::*;
use sequence_core::store::EnrollOutcome;
use sequence_scheduler::{Engine, EngineConfig, VirtualClock};
use tokio::runtime::Runtime;

/// The server the benches use.
fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A runtime with two worker threads (this machine's cores): the workers of
/// `claim_complete/4` run in parallel, as processes would.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A group of 10 flat samples (each sample one run: these runs take 0.1 s to seconds).
fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
    elements: Option<u64>,
) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    if let Some(n) = elements {
        group.throughput(Throughput::Elements(n));
    }
    group
}

/// A schema of the bench's own on the server, with the store's migrations applied.
struct Db {
    schema: String,
    store: PostgresStore,
}

impl Db {
    /// Make `pgbench_<name>_<pid>` (dropping a left-over of the same name first).
    async fn new(name: &str) -> Self {
        let schema = format!("pgbench_{name}_{}", std::process::id());
        let url = database_url();
        let connected = tokio::time::timeout(
            StdDuration::from_secs(10),
            PostgresStore::connect_in_schema(&url, &schema),
        )
        .await;
        let store = match connected {
            Ok(Ok(store)) => store,
            Ok(Err(e)) => panic!(
                "no PostgreSQL server answers at {url}: {e:?}\n\
                 Start one (on Debian: `pg_ctlcluster 15 main start`), or point DATABASE_URL \
                 at one (a database the bench may create schemas in)."
            ),
            Err(_) => panic!(
                "no PostgreSQL server answered at {url} within 10 s.\n\
                 Start one (on Debian: `pg_ctlcluster 15 main start`), or point DATABASE_URL \
                 at one."
            ),
        };
        store.migrate().await.unwrap();
        Self { schema, store }
    }

    /// Another store (its own pool) on the same schema: a second engine process.
    async fn other_store(&self) -> PostgresStore {
        PostgresStore::connect_in_schema(&database_url(), &self.schema)
            .await
            .unwrap()
    }

    /// Forget every enrollment, send and count (not the catalog), as if nothing had been
    /// enrolled: the state before each run of a bench that enrolls or plans.
    async fn reset_outbox(&self) {
        sqlx::query(
            "TRUNCATE sends, enrollments, enrollment_identities, mailbox_days, daily_new_starts, daily_domain_sends, \
             events, pool_waits, mailbox_waits",
        )
        .execute(self.store.pool())
        .await
        .unwrap();
        sqlx::query(
            "UPDATE mailbox_state SET last_attempt_at = NULL, in_flight = false, \
             next_planned_at = NULL, ready_at = NULL",
        )
        .execute(self.store.pool())
        .await
        .unwrap();
        sqlx::query("UPDATE planning_lease SET token = NULL, until = NULL")
            .execute(self.store.pool())
            .await
            .unwrap();
    }

    /// Statistics of the fixture as it stands, as autovacuum keeps them on a live database
    /// (the planner's choices, and the plans the pools cache, follow them; the statistics of
    /// the tables just emptied would make a scan of every planned send look cheap).
    async fn analyze(&self) {
        sqlx::query("ANALYZE")
            .execute(self.store.pool())
            .await
            .unwrap();
    }

    async fn drop(self) {
        self.store.drop_schema(&self.schema).await.unwrap();
    }
}

fn engine_on(store: PostgresStore, clock: VirtualClock) -> Engine {
    Engine::builder(store, NoopTransport)
        .clock(clock)
        .config(EngineConfig::with_seed(1))
        .build()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap()
}

/// `n` contacts of `tenant`, numbered from 1.
fn contacts(tenant: TenantId, n: usize) -> Vec<Contact> {
    (0..n)
        .map(|i| {
            Contact::new(tenant, format!("c{i}@client{}.example", i % 500))
                .unwrap()
                .with_id(ContactId::from_u128(i as u128 + 1))
                .with_name(format!("C{i}"), "Doe")
        })
        .collect()
}

/// A fleet of `mailboxes` always-open UTC mailboxes without a gap and an active one-step
/// sequence on them, stored through `engine`; the sequence.
async fn fleet(engine: &Engine, tenant: TenantId, mailboxes: usize) -> SequenceId {
    let mut pool = Vec::new();
    for i in 0..mailboxes {
        let m = Mailbox::new(tenant, format!("s{i}@fleet.example"), chrono_tz::UTC)
            .unwrap()
            .with_daily_limit(1_000)
            .with_min_gap_seconds(0);
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
    seq.id
}

// ---- pg/enroll_50k ---------------------------------------------------------------------

const ENROLL: usize = 50_000;

struct EnrollSetup {
    db: Db,
    engine: Engine,
    tenant: TenantId,
    sequence: SequenceId,
    contacts: Vec<ContactId>,
}

async fn enroll_setup() -> EnrollSetup {
    let db = Db::new("enroll").await;
    let engine = engine_on(db.store.clone(), VirtualClock::new(start()));
    let tenant = TenantId::from_u128(1);
    let sequence = fleet(&engine, tenant, 10).await;
    let rows = contacts(tenant, ENROLL);
    let contacts = engine.upsert_contacts(tenant, &rows).await.unwrap();
    EnrollSetup {
        db,
        engine,
        tenant,
        sequence,
        contacts,
    }
}

fn enroll_50k(c: &mut Criterion) {
    let rt = runtime();
    let mut built: Option<EnrollSetup> = None;
    let mut group = group(c, "pg", Some(ENROLL as u64));
    group.bench_function("enroll_50k", |b| {
        let s = &*built.get_or_insert_with(|| rt.block_on(enroll_setup()));
        b.iter_custom(|iters| {
            let mut took = StdDuration::ZERO;
            for _ in 0..iters {
                rt.block_on(s.db.reset_outbox());
                let began = Instant::now();
                let answers = rt
                    .block_on(s.engine.enroll(s.tenant, s.sequence, &s.contacts))
                    .unwrap();
                took += began.elapsed();
                assert_eq!(answers.len(), ENROLL);
                assert!(answers
                    .iter()
                    .all(|a| matches!(a, EnrollOutcome::Enrolled { .. })));
            }
            took
        });
    });
    group.finish();
    if let Some(s) = built {
        rt.block_on(s.db.drop());
    }
}

// ---- pg/claim_complete/{1,4} ---------------------------------------------------------------

/// Sends per run of `claim_complete`.
const SENDS: usize = 5_000;
/// Mailboxes they are spread over (one in flight per mailbox at a time).
const SENDING_MAILBOXES: usize = 500;

struct ClaimSetup {
    db: Db,
    clock: VirtualClock,
    /// Runs so far: each run takes the next day (the clock never goes back).
    runs: std::sync::atomic::AtomicI64,
    /// The engine that plans (and the first worker).
    engines: Vec<Engine>,
    tenant: TenantId,
    sequence: SequenceId,
    contacts: Vec<ContactId>,
}

async fn claim_setup(workers: usize) -> ClaimSetup {
    let db = Db::new(&format!("claim{workers}")).await;
    let clock = VirtualClock::new(start());
    let mut engines = vec![engine_on(db.store.clone(), clock.clone())];
    for _ in 1..workers {
        engines.push(engine_on(db.other_store().await, clock.clone()));
    }
    let tenant = TenantId::from_u128(1);
    let sequence = fleet(&engines[0], tenant, SENDING_MAILBOXES).await;
    let contacts = engines[0]
        .upsert_contacts(tenant, &contacts(tenant, SENDS))
        .await
        .unwrap();
    ClaimSetup {
        db,
        clock,
        runs: std::sync::atomic::AtomicI64::new(0),
        engines,
        tenant,
        sequence,
        contacts,
    }
}

impl ClaimSetup {
    /// Enroll the contacts and plan them (spread over the run's day), then move the clock to
    /// the day's last minute, when every send is due.
    async fn prepare(&self) {
        self.db.reset_outbox().await;
        let day = start() + Duration::days(self.runs.fetch_add(1, Ordering::SeqCst));
        self.clock.set(day);
        let planner = &self.engines[0];
        planner
            .enroll(self.tenant, self.sequence, &self.contacts)
            .await
            .unwrap();
        let report = planner.tick().await.unwrap();
        assert_eq!(report.planned, SENDS, "{report:?}");
        self.db.analyze().await;
        self.clock
            .set(day + Duration::hours(23) + Duration::minutes(59));
    }

    /// Every worker ticks until all the sends went out; the time that took.
    async fn send_all(&self) -> StdDuration {
        let sent = Arc::new(AtomicUsize::new(0));
        let began = Instant::now();
        let runs = self.engines.iter().map(|engine| {
            let engine = engine.clone();
            let sent = Arc::clone(&sent);
            tokio::spawn(async move {
                let began = Instant::now();
                while began.elapsed() < StdDuration::from_secs(120) {
                    let report = engine.tick().await.unwrap();
                    let total = sent.fetch_add(report.sent, Ordering::SeqCst) + report.sent;
                    if total >= SENDS {
                        return;
                    }
                    if report.sent == 0 {
                        // Every claimable mailbox is in another worker's hands.
                        tokio::time::sleep(StdDuration::from_millis(1)).await;
                    }
                }
                panic!("the sends did not all go out within 120 s");
            })
        });
        for run in runs.collect::<Vec<_>>() {
            run.await.unwrap();
        }
        let took = began.elapsed();
        assert_eq!(sent.load(Ordering::SeqCst), SENDS);
        took
    }
}

fn claim_complete(c: &mut Criterion) {
    let rt = runtime();
    let mut group = group(c, "pg/claim_complete", Some(SENDS as u64));
    let mut built: Vec<ClaimSetup> = Vec::new();
    for workers in [1usize, 4] {
        group.bench_with_input(
            BenchmarkId::from_parameter(workers),
            &workers,
            |b, &workers| {
                if !built.iter().any(|s| s.engines.len() == workers) {
                    built.push(rt.block_on(claim_setup(workers)));
                }
                let s = built.iter().find(|s| s.engines.len() == workers).unwrap();
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            rt.block_on(async {
                                s.prepare().await;
                                s.send_all().await
                            })
                        })
                        .sum()
                });
            },
        );
    }
    group.finish();
    for s in built {
        drop(s.engines);
        rt.block_on(s.db.drop());
    }
}

// ---- pg/due_query ------------------------------------------------------------------------

/// Enrollments stored for `due_query`.
const STORED: i64 = 1_000_000;
/// One in this many is due.
const DUE_EVERY: i64 = 100;

/// One contact and one enrollment stored through the store, then `STORED - 1` copies of
/// each made in SQL with their own ids (and addresses, due instants): one in `DUE_EVERY`
/// due before `now`, the others next year.
async fn due_setup(now: DateTime<Utc>) -> Db {
    let db = Db::new("due").await;
    let store = &db.store;
    let engine = engine_on(store.clone(), VirtualClock::new(now));
    let tenant = TenantId::from_u128(1);
    let sequence = fleet(&engine, tenant, 10).await;
    let template = contacts(tenant, 1);
    store.upsert_contacts(tenant, &template).await.unwrap();
    let e = Enrollment::new(tenant, sequence, template[0].id, now, now);
    store.enroll(tenant, now, vec![e]).await.unwrap();
    // Contact g: id md5('c' || g), address c<g>@client<g % 500>.example.
    sqlx::query(
        "INSERT INTO contacts (tenant_id, id, email, status, version, doc, timezone, domain) \
         SELECT t.tenant_id, md5('c' || g)::uuid, \
             'c' || g || '@client' || (g % 500) || '.example', t.status, t.version, \
             jsonb_set(jsonb_set(t.doc::jsonb, '{id}', to_jsonb(md5('c' || g)::uuid::text)), \
                 '{email}', to_jsonb('c' || g || '@client' || (g % 500) || '.example')), \
             t.timezone, 'client' || (g % 500) || '.example' \
         FROM contacts t, generate_series(1, $1::bigint - 1) g",
    )
    .bind(STORED)
    .execute(store.pool())
    .await
    .unwrap();
    // Enrollment g: id md5('e' || g), of contact g (what it keeps of its contact: the
    // template's status and zone, contact g's domain), due at `now` minus g seconds when
    // g % DUE_EVERY = 0, else next year plus g seconds.
    sqlx::query(
        "INSERT INTO enrollments (tenant_id, id, sequence_id, contact_id, status, due_at, \
             deferral_reason, mailbox_id, enrolled_at, version, doc, step, earliest, uncertain, \
             contact_status, contact_zone, recipient_domain) \
         SELECT t.tenant_id, x.id, t.sequence_id, x.contact, t.status, x.due, NULL, NULL, \
             t.enrolled_at, t.version, \
             jsonb_set(jsonb_set(jsonb_set(jsonb_set(t.doc::jsonb, \
                 '{id}', to_jsonb(x.id::text)), '{contact}', to_jsonb(x.contact::text)), \
                 '{due_at}', to_jsonb(x.due)), '{next_due_at}', to_jsonb(x.due)), \
             t.step, x.due, t.uncertain, t.contact_status, t.contact_zone, \
             'client' || (g % 500) || '.example' \
         FROM enrollments t, generate_series(1, $1::bigint - 1) g, \
             LATERAL (SELECT md5('e' || g)::uuid AS id, md5('c' || g)::uuid AS contact, \
                 CASE WHEN g % $2 = 0 THEN $3 - make_interval(secs => g) \
                      ELSE $3 + interval '365 days' + make_interval(secs => g) END AS due) x",
    )
    .bind(STORED)
    .bind(DUE_EVERY)
    .bind(now)
    .execute(store.pool())
    .await
    .unwrap();
    // The template itself is due too: make it one of the not-due ones.
    sqlx::query("UPDATE enrollments SET due_at = $1 WHERE contact_id = $2")
        .bind(now + Duration::days(400))
        .bind(template[0].id.0)
        .execute(store.pool())
        .await
        .unwrap();
    // Their identities, as the store keeps them beside them.
    sqlx::query(
        "INSERT INTO enrollment_identities (tenant_id, id, sequence_id, contact_id, \
             enrolled_at, open) \
         SELECT tenant_id, id, sequence_id, contact_id, enrolled_at, true FROM enrollments \
         ON CONFLICT DO NOTHING",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE")
        .execute(store.pool())
        .await
        .unwrap();
    db
}

fn due_query(c: &mut Criterion) {
    let rt = runtime();
    let now = start() + Duration::hours(12);
    let batch = EngineConfig::default().plan_batch;
    let mut built: Option<Db> = None;
    let mut group = group(c, "pg", Some((STORED / DUE_EVERY) as u64));
    group.bench_function("due_query", |b| {
        let db = &*built.get_or_insert_with(|| rt.block_on(due_setup(now)));
        let due = rt.block_on(db.store.due_enrollments(now, batch)).unwrap();
        assert_eq!(due.len() as i64, STORED / DUE_EVERY - 1);
        b.iter(|| black_box(rt.block_on(db.store.due_enrollments(now, batch)).unwrap()));
    });
    group.finish();
    if let Some(db) = built {
        rt.block_on(db.drop());
    }
}

// ---- pg/tick_50k_due -----------------------------------------------------------------------

/// The due enrollments of `f`, stored before each run.
async fn store_due(f: &TickFixture, db: &Db) {
    db.reset_outbox().await;
    db.store
        .enroll(f.tenant, f.now, f.enrollments.clone())
        .await
        .unwrap();
    db.analyze().await;
}

fn tick_50k_due(c: &mut Criterion) {
    let rt = runtime();
    let mut built: Option<(TickFixture, Db)> = None;
    let mut group = group(c, "pg", Some(50_000));
    group.bench_function("tick_50k_due", |b| {
        let (fixture, db) = &*built.get_or_insert_with(|| {
            rt.block_on(async {
                let fixture = TickFixture::new();
                let db = Db::new("tick").await;
                fixture.store_catalog(&db.store).await;
                (fixture, db)
            })
        });
        b.iter_custom(|iters| {
            let mut took = StdDuration::ZERO;
            for _ in 0..iters {
                rt.block_on(store_due(fixture, db));
                let engine = engine_on(db.store.clone(), VirtualClock::new(fixture.now));
                let began = Instant::now();
                let report = rt.block_on(engine.tick()).unwrap();
                took += began.elapsed();
                assert_eq!(report.sent, 0, "{report:?}");
                // Every due enrollment was planned, deferred or left to its pool's wait
                // (read or not: the due read goes no further than the pools' room).
                let left = rt.block_on(db.store.due_enrollments(fixture.now, 1));
                assert!(left.unwrap().is_empty(), "{report:?}");
            }
            took
        });
    });
    group.finish();
    if let Some((_, db)) = built {
        rt.block_on(db.drop());
    }
}

criterion_group!(benches, enroll_50k, claim_complete, due_query, tick_50k_due);
criterion_main!(benches);
