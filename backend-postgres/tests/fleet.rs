//! Four engine processes on one database. This test binary runs itself again four times as
//! workers (`support/worker.rs`), each an engine on a `PostgresStore` on one shared schema
//! with a virtual clock of its own. The test is the coordinator: it makes the fixture, then
//! at each instant tells every worker to tick there, waits for all four, asks the store for
//! the next wake-up and moves the shared virtual clock on to it, until nothing is left. The
//! rules are checked on the record the workers' transports wrote (a row per call, committed
//! before the call answers), with chrono-tz and nothing of the engine's: no (enrollment,
//! step) sent twice, no mailbox-day over its limit, no gap broken, no call outside a
//! window, nothing lost.
//!
//! The fixture pushes every rule to its edge: 20 mailboxes in four zones, each open one
//! hour a weekday (09:00-10:00 local) with a limit of 30 a day and a gap of 120 s, so that
//! a full day is exactly packed (30 x 120 s = one hour); demand is over capacity for days,
//! so follow-ups compete with new starts. The planner's jitter is off, so the five
//! mailboxes of a zone send at the same instants and the four processes race for them at
//! each one (with jitter almost every instant has one send, and one process gets it).
//!
//! Size: 1,000 enrollments of three steps by default (about 1,250 instants, 45 s of run
//! in a debug build on this 2-core machine under load). The 5,000 costs about five
//! times that and runs with `FLEET_ENROLLMENTS=5000`: every instant costs each process a
//! few transactions whether it sends or not, so the run time follows the number of
//! instants, which follows the number of sends.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

mod support;

use std::time::Instant;

use chrono::Duration;
use chrono_tz::Tz;
use sequence_core::prelude::*;
use sequence_scheduler::EngineConfig;
use support::fleet::{fixture, start, Shape};
use support::worker::{self, Answer, Record, Worker, WorkerSetup};

/// The worker processes.
const WORKERS: usize = 4;
/// Enrollments, of three steps each, unless `FLEET_ENROLLMENTS` says otherwise.
const ENROLLMENTS: usize = 1_000;
const MAILBOXES: usize = 20;
const LIMIT: u32 = 30;
const GAP_SECONDS: u32 = 120;
const ZONES: [Tz; 4] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::Asia::Kolkata,
];

/// Each mailbox is open 09:00-10:00 local: 30 sends 120 s apart fill the hour exactly.
fn shape() -> Shape {
    Shape {
        enrollments: match std::env::var("FLEET_ENROLLMENTS") {
            Ok(n) => n.parse().unwrap(),
            Err(_) => ENROLLMENTS,
        },
        mailboxes: MAILBOXES,
        zones: &ZONES,
        daily_limit: LIMIT,
        gap_seconds: GAP_SECONDS,
        open_hour: 9,
        close_hour: 10,
    }
}

/// The worker's side: an engine process when the coordinator started this binary as one;
/// nothing otherwise (so in an ordinary run it passes at once).
#[test]
fn fleet_worker() {
    let mut config = EngineConfig::with_seed(42);
    config.planner.jitter = 0.0;
    worker::serve_if_worker(&WorkerSetup {
        config,
        pause: std::time::Duration::ZERO,
        connections: 4,
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_engine_processes_on_one_database_keep_every_rule() {
    let began = Instant::now();
    let shape = shape();
    let size = shape.enrollments;
    let store = support::fresh_store().await;
    let pool = store.store.pool().clone();
    worker::create_call_table(&pool).await;
    let fx = fixture(&store, &shape).await;
    let set_up = began.elapsed();

    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|i| Worker::spawn("fleet_worker", &store.schema, i))
        .collect();
    let end = start() + Duration::days(90);
    let mut t = start();
    let mut instants = 0_usize;
    let (mut in_the_past, mut longest_in_the_past) = (0_usize, 0_usize);
    let mut sent_by = vec![0_usize; WORKERS];
    loop {
        for w in &mut workers {
            assert!(w.tick(t).await, "worker {} is gone", w.index);
        }
        for w in &mut workers {
            match w.answer().await {
                Answer::Done { sent, .. } => sent_by[w.index] += sent,
                other => panic!("worker {} at {t}: {other:?}", w.index),
            }
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
        assert!(t < end, "the run did not finish in 90 virtual days");
    }
    for w in workers {
        w.quit().await;
    }
    let ran = began.elapsed() - set_up;

    // The rules, on the transport's record.
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
    let per_step = record.per_step();
    let lost: Vec<(EnrollmentId, u32)> = fx
        .enrollments
        .iter()
        .flat_map(|e| (0..3).map(move |s| (*e, s)))
        .filter(|k| !per_step.contains_key(k))
        .collect();
    assert!(
        lost.is_empty(),
        "{} steps were never sent, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert_eq!(calls.len(), size * 3, "a call of a step not enrolled");
    let over = record.over_limit(LIMIT);
    assert!(
        over.is_empty(),
        "{} mailbox-days went over {LIMIT}: {:?}",
        over.len(),
        &over[..over.len().min(5)]
    );
    let broken = record.gaps_broken(Duration::seconds(GAP_SECONDS.into()));
    assert!(
        broken.is_empty(),
        "{} gaps of {GAP_SECONDS} s were broken: {:?}",
        broken.len(),
        &broken[..broken.len().min(5)]
    );
    let (open, close) = shape.window();
    let outside = record.outside_window(open, close);
    assert!(
        outside.is_empty(),
        "{} calls outside the window: {:?}",
        outside.len(),
        &outside[..outside.len().min(5)]
    );
    // The fixture did push the rules to their edges (else the checks above prove little).
    let full_days = record.per_day().values().filter(|n| **n == LIMIT).count();
    assert!(full_days > 0, "no mailbox-day reached its limit");
    let tightest = record.tightest_gap().unwrap();
    assert!(
        tightest < Duration::seconds(i64::from(GAP_SECONDS) * 3 / 2),
        "no two calls of a mailbox came near the gap (closest {tightest})"
    );
    // The store agrees: every enrollment completed, every send sent.
    let enrollments = store
        .list_enrollments(fx.tenant, fx.sequence)
        .await
        .unwrap();
    assert_eq!(enrollments.len(), size);
    let unfinished: Vec<_> = enrollments
        .iter()
        .filter(|e| e.status() != EnrollmentStatus::Completed)
        .collect();
    assert!(
        unfinished.is_empty(),
        "{} enrollments did not complete, e.g. {:?}",
        unfinished.len(),
        unfinished.first()
    );
    // Each identity row (what reads by sequence, contact or id go through) agrees with its
    // enrollment, written by all four processes: none left open.
    let (identities, disagree): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE e.id IS NULL \
             OR i.open <> (e.status IN ('active', 'paused')) \
             OR i.sequence_id <> e.sequence_id OR i.contact_id <> e.contact_id \
             OR i.enrolled_at <> e.enrolled_at) \
         FROM enrollment_identities i \
         LEFT JOIN enrollments e ON e.tenant_id = i.tenant_id AND e.id = i.id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((identities, disagree), (size as i64, 0));
    let sends = store
        .sends_of_sequence(fx.tenant, fx.sequence)
        .await
        .unwrap();
    let not_sent: Vec<_> = sends
        .iter()
        .filter(|s| s.status() != SendStatus::Sent)
        .collect();
    assert!(
        not_sent.is_empty() && sends.len() == size * 3,
        "{} sends, {} not sent, e.g. {:?}",
        sends.len(),
        not_sent.len(),
        not_sent.first()
    );
    // Four processes did the work, not one.
    let mut by_worker = vec![0_usize; WORKERS];
    for c in &calls {
        by_worker[usize::try_from(c.worker).unwrap()] += 1;
    }
    assert_eq!(
        by_worker, sent_by,
        "the workers' reports and the record differ"
    );
    assert!(
        by_worker.iter().all(|n| *n > 0),
        "a worker sent nothing: {by_worker:?}"
    );
    let last = calls.iter().map(|c| c.at).max().unwrap();
    eprintln!(
        "fleet: {WORKERS} processes, {size} enrollments x 3 steps over {MAILBOXES} mailboxes: \
         {} calls, by worker {by_worker:?}; {full_days} mailbox-days full, closest calls \
         {tightest}; {instants} instants ({longest_in_the_past} at most in a row a second on), \
         the last call {:.2} virtual days in; set-up {:.1} s, run {:.1} s",
        calls.len(),
        (last - start()).num_seconds() as f64 / 86_400.0,
        set_up.as_secs_f64(),
        ran.as_secs_f64()
    );
}

/// The checks above catch what they check: a record with a step called twice, a
/// mailbox-day over its limit, calls closer than the gap and calls outside the window (a
/// Saturday, and a minute after closing) is refused on each count, and one without is not.
#[test]
fn the_record_checks_catch_each_broken_rule() {
    use chrono::{TimeZone, Utc};
    use support::worker::Call;
    use uuid::Uuid;

    let berlin = MailboxId(Uuid::from_u128(1));
    let zones = [(berlin, chrono_tz::Europe::Berlin)].into_iter().collect();
    // Monday 9 March 2026, 09:00 in Berlin is 08:00 UTC.
    let at = |d: u32, h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 3, d, h, m, s).unwrap();
    let call = |e: u128, step: u32, at| Call {
        worker: 0,
        send: Uuid::new_v4(),
        enrollment: EnrollmentId(Uuid::from_u128(e)),
        step,
        attempt: 1,
        mailbox: berlin,
        at,
    };
    let good: Vec<Call> = (0..3)
        .map(|i| call(i, 0, at(9, 8, 2 * u32::try_from(i).unwrap(), 0)))
        .collect();
    let (open, close) = (
        chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
    );
    let gap = Duration::seconds(120);
    let ok = Record {
        calls: &good,
        zones: &zones,
    };
    assert!(ok.twice().is_empty() && ok.over_limit(3).is_empty());
    assert!(ok.gaps_broken(gap).is_empty() && ok.outside_window(open, close).is_empty());
    assert_eq!(ok.tightest_gap(), Some(gap));

    let mut bad = good.clone();
    bad.push(call(0, 0, at(9, 8, 30, 0))); // step 0 of enrollment 0 again
    bad.push(call(9, 0, at(9, 8, 31, 0))); // 60 s after the last: gap broken
    bad.push(call(8, 0, at(14, 8, 40, 0))); // a Saturday
    bad.push(call(7, 0, at(10, 9, 0, 0))); // Tuesday 10:00 Berlin: the window has closed
    let bad_record = Record {
        calls: &bad,
        zones: &zones,
    };
    assert_eq!(bad_record.twice().len(), 1);
    // Monday has 5 calls in Berlin; the limit of 3 is broken once, that of 5 never.
    assert_eq!(bad_record.over_limit(3).len(), 1);
    assert!(bad_record.over_limit(5).is_empty());
    assert_eq!(bad_record.gaps_broken(gap).len(), 1);
    assert_eq!(bad_record.outside_window(open, close).len(), 2);
}
