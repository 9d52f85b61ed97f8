//! An engine process killed with SIGKILL ten times during a run, and started again each
//! time. The engine is this test binary run again as a worker (`support/worker.rs`); the
//! test is the coordinator of a shared virtual clock, as in `fleet.rs`, and it kills the
//! worker at moments drawn from a seeded generator (real time since the process started,
//! wherever the worker then is: starting, planning, claiming, in a transport call, writing
//! its outcome), then starts a new one and asks it for the same instant again. The
//! transport writes each call into the record before it takes a little real time and
//! answers, so a kill inside a call leaves a call on record whose outcome the store never
//! learnt.
//!
//! Then, on the record and in the store: no (enrollment, step) was called twice; every send
//! ended `sent` (called exactly once) or `uncertain` (its lease ran out: called at most
//! once), none stuck `sending` or `planned`; every enrollment finished (the run came to its
//! end once the dead processes' leases expired); and the daily limit, the gap and the
//! window held throughout. The number of `uncertain` sends is reported.
//!
//! `CRASH_SEED` replays another draw of the kill moments.

mod support;

use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use chrono_tz::Tz;
use sequence_core::prelude::*;
use sequence_scheduler::EngineConfig;
use support::fleet::{fixture, start, Shape};
use support::worker::{self, Answer, Record, Worker, WorkerSetup};

/// How many times the engine process is killed.
const KILLS: usize = 10;
/// The seed of the kill moments, unless `CRASH_SEED` says otherwise.
const SEED: u64 = 0x5eed_c4a5;
/// A kill comes this long (real time) after the process started, drawn evenly.
const KILL_AFTER_MS: std::ops::Range<u64> = 50..1_200;
/// Real time each transport call takes after it is recorded.
const CALL_TAKES: StdDuration = StdDuration::from_millis(25);
const LIMIT: u32 = 30;
const GAP_SECONDS: u32 = 120;
const ZONES: [Tz; 3] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
];

/// Six mailboxes open 09:00-10:00 local, packed as in `fleet.rs`; 150 enrollments (the ten
/// kills, 0.05 to 1.2 s apart, take about the first half of the run).
fn shape() -> Shape {
    Shape {
        enrollments: 150,
        mailboxes: 6,
        zones: &ZONES,
        daily_limit: LIMIT,
        gap_seconds: GAP_SECONDS,
        open_hour: 9,
        close_hour: 10,
    }
}

/// The worker's side: an engine process when the coordinator started this binary as one;
/// nothing otherwise (so in an ordinary run it passes at once). Leases of 5 minutes (the
/// default), at most once (the default).
#[test]
fn crash_worker() {
    let mut config = EngineConfig::with_seed(7);
    config.planner.jitter = 0.0;
    worker::serve_if_worker(&WorkerSetup {
        config,
        pause: CALL_TAKES,
        connections: 4,
    });
}

/// SplitMix64: a few seeded draws, nothing more needed.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn in_range(&mut self, r: std::ops::Range<u64>) -> u64 {
        r.start + self.next() % (r.end - r.start)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_ten_times_sends_nothing_twice_and_leaves_nothing_stuck() {
    let began = Instant::now();
    let seed = match std::env::var("CRASH_SEED") {
        Ok(s) => s.parse().unwrap(),
        Err(_) => SEED,
    };
    let mut draws = Draws(seed);
    let shape = shape();
    let store = support::fresh_store().await;
    let pool = store.store.pool().clone();
    worker::create_call_table(&pool).await;
    let fx = fixture(&store, &shape).await;

    // Each incarnation of the worker has the next index, so the record says which made a call.
    let mut incarnation = 0;
    let mut w = Worker::spawn("crash_worker", &store.schema, incarnation);
    let mut kill_at = Instant::now() + StdDuration::from_millis(draws.in_range(KILL_AFTER_MS));
    let mut kills: Vec<chrono::DateTime<chrono::Utc>> = Vec::new();
    let mut expired = 0;
    let end = start() + Duration::days(90);
    let mut t = start();
    let mut instants = 0_usize;
    let (mut in_the_past, mut longest_in_the_past) = (0_usize, 0_usize);
    loop {
        let asked = w.tick(t).await;
        let answer = if kills.len() < KILLS {
            match tokio::time::timeout_at(kill_at.into(), w.answer()).await {
                Ok(a) if asked => Some(a),
                Ok(a) => panic!("worker {incarnation} is gone at {t}: {a:?}"),
                Err(_) => None,
            }
        } else {
            Some(w.answer().await)
        };
        let Some(answer) = answer else {
            // The moment has come: SIGKILL, wherever it is, and start another.
            w.kill().await;
            kills.push(t);
            incarnation += 1;
            w = Worker::spawn("crash_worker", &store.schema, incarnation);
            kill_at = Instant::now() + StdDuration::from_millis(draws.in_range(KILL_AFTER_MS));
            continue;
        };
        match answer {
            Answer::Done { expired: e, .. } => expired += e,
            other => panic!("worker {incarnation} at {t}: {other:?}"),
        }
        instants += 1;
        let Some(next) = store.next_wakeup().await.unwrap() else {
            break;
        };
        in_the_past = if next <= t { in_the_past + 1 } else { 0 };
        longest_in_the_past = longest_in_the_past.max(in_the_past);
        assert!(
            in_the_past <= worker::MOST_IN_THE_PAST,
            "stuck: the next wake-up has stayed in the past since {}",
            t - Duration::seconds(i64::try_from(in_the_past).unwrap())
        );
        t = next.max(t + Duration::seconds(1));
        assert!(
            t < end,
            "the run did not finish in 90 virtual days: something stays stuck"
        );
    }
    w.quit().await;
    assert_eq!(
        kills.len(),
        KILLS,
        "the run ended before the {KILLS} kills: make it longer"
    );

    // The record: nothing twice, and the rules held.
    let calls = worker::calls(&pool).await;
    let record = Record {
        calls: &calls,
        zones: &fx.zones,
    };
    let twice = record.twice();
    assert!(
        twice.is_empty(),
        "{} steps were sent more than once, e.g. {:?}",
        twice.len(),
        twice.first()
    );
    let over = record.over_limit(LIMIT);
    assert!(over.is_empty(), "mailbox-days over {LIMIT}: {over:?}");
    let broken = record.gaps_broken(Duration::seconds(GAP_SECONDS.into()));
    assert!(
        broken.is_empty(),
        "gaps of {GAP_SECONDS} s broken: {broken:?}"
    );
    let (open, close) = shape.window();
    let outside = record.outside_window(open, close);
    assert!(outside.is_empty(), "calls outside the window: {outside:?}");

    // The store: every send sent or uncertain, each sent one called once, nothing stuck.
    let per_step = record.per_step();
    let sends = store
        .sends_of_sequence(fx.tenant, fx.sequence)
        .await
        .unwrap();
    let enrollments = store
        .list_enrollments(fx.tenant, fx.sequence)
        .await
        .unwrap();
    let open_ones: Vec<_> = enrollments.iter().filter(|e| !e.is_final()).collect();
    let stuck: Vec<_> = open_ones
        .iter()
        .map(|e| {
            let of: Vec<_> = sends.iter().filter(|s| s.enrollment == e.id).collect();
            format!("{e:?}\n  its sends: {of:?}")
        })
        .collect();
    assert!(
        open_ones.is_empty(),
        "{} enrollments never finished (killed at virtual {kills:?}):\n{}",
        open_ones.len(),
        stuck.join("\n")
    );
    assert_eq!(
        sends.len(),
        fx.enrollments.len() * 3,
        "one send per (enrollment, step)"
    );
    let mut by_status: HashMap<SendStatus, usize> = HashMap::new();
    let (mut uncertain_called, mut uncertain_not_called) = (0, 0);
    for s in &sends {
        *by_status.entry(s.status()).or_insert(0) += 1;
        let n = per_step.get(&(s.enrollment, s.step)).copied().unwrap_or(0);
        match s.status() {
            SendStatus::Sent => assert_eq!(n, 1, "a sent send called {n} times: {s:?}"),
            SendStatus::Uncertain if n == 1 => uncertain_called += 1,
            SendStatus::Uncertain => uncertain_not_called += 1,
            other => panic!("a send ended {other:?}, neither sent nor uncertain: {s:?}"),
        }
    }
    let completed = enrollments
        .iter()
        .filter(|e| e.status() == EnrollmentStatus::Completed)
        .count();
    assert_eq!(
        completed,
        fx.enrollments.len(),
        "every enrollment completes"
    );
    let uncertain = uncertain_called + uncertain_not_called;
    eprintln!(
        "crash: seed {seed:#x}, {} kills (at virtual {:?}); {} calls; sends {:?}; \
         {uncertain} uncertain ({uncertain_called} called before the kill, \
         {uncertain_not_called} killed before the call; {expired} expiries answered by a \
         worker that lived to answer); {instants} instants ({longest_in_the_past} at most \
         in a row a second on), {:.1} s",
        kills.len(),
        kills
            .iter()
            .map(|k| k.format("%a %H:%M:%S").to_string())
            .collect::<Vec<_>>(),
        calls.len(),
        by_status,
        began.elapsed().as_secs_f64()
    );
}

/// A process that dies right after an at-most-once expiry strands nothing: the expiry
/// records the uncertain send on the enrollment and leaves it due in the same unit, and
/// the next engine to plan counts the step as sent. (It stranded the enrollment when the
/// engine moved it on in a second unit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_an_expiry_strands_nothing() {
    use sequence_core::store::Outbox as _;
    use sequence_scheduler::VirtualClock;

    let t0 = start();
    let store = support::fresh_store().await;
    let clock = VirtualClock::new(t0);
    let engine = support::recording_engine(&store, &clock);
    let (tenant, s, _) = support::one_enrolled(
        &engine,
        t0,
        vec![
            Step::new(Delay::ZERO, "One", "1"),
            Step::new(Delay::new(1, DelayUnit::Days), "Two", "2"),
        ],
    )
    .await;
    // A tick plans step 0 (later in the day).
    engine.tick().await.unwrap();
    let planned = store.sends_of_sequence(tenant, s.id).await.unwrap();
    assert_eq!(planned.len(), 1);
    let at = planned[0].planned_at();
    // One process claims it and dies in the transport call.
    let claimed = store
        .claim_sends(at, Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Another expires the lease and dies before it moves the enrollment on.
    let later = at + Duration::minutes(6);
    assert_eq!(store.expire_leases(later, false).await.unwrap().len(), 1);
    // A third runs on for ten days.
    clock.set(later);
    engine.run_until(later + Duration::days(10)).await.unwrap();
    let e = &store.list_enrollments(tenant, s.id).await.unwrap()[0];
    assert!(
        e.is_final(),
        "stranded: {:?} on step {}, next due {:?}, next wake-up {:?}",
        e.status(),
        e.current_step(),
        e.next_due_at(),
        store.next_wakeup().await.unwrap()
    );
}
