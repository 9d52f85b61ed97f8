//! Several engines on one store: four engines, each ticking in its own task on a
//! multi-threaded runtime against one `MemoryStore` and one virtual clock, run 5,000
//! three-step enrollments over 20 mailboxes to the end. Nothing is sent twice, no
//! mailbox-day goes over its limit, no gap is broken, nothing is lost, and the run ends
//! within 10% of the days one engine takes. The rules are computed from the transport's
//! record of calls, with chrono-tz, not with the engine's code.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use std::collections::{BTreeMap, HashMap};

use backend_memory::MemoryStore;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use sequence_core::prelude::*;
use sequence_core::store::EnrollOutcome;
use sequence_core::time::{LocalTime, SendWindow, WeekdaySet, WeeklySchedule};
use sequence_scheduler::testing::{Attempt, AttemptOutcome, RecordingTransport};
use sequence_scheduler::{Engine, EngineConfig, VirtualClock};

const CONTACTS: usize = 5_000;
const MAILBOXES: usize = 20;
const LIMIT: u32 = 100;
const GAP_SECONDS: u32 = 120;
const ZONES: [Tz; 4] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::Asia::Kolkata,
];

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0).unwrap()
}

struct Fleet {
    engines: Vec<Engine>,
    clock: VirtualClock,
    transport: RecordingTransport,
    tenant: TenantId,
    sequence: SequenceId,
    mailboxes: Vec<Mailbox>,
}

async fn fleet(engines: usize) -> Fleet {
    let store = std::sync::Arc::new(MemoryStore::new());
    let clock = VirtualClock::new(start());
    let transport = RecordingTransport::new(clock.clone());
    let engines: Vec<Engine> = (0..engines)
        .map(|_| {
            Engine::builder(store.clone(), transport.clone())
                .clock(clock.clone())
                .config(EngineConfig::with_seed(42))
                .build()
        })
        .collect();
    let host = &engines[0];
    let tenant = TenantId::from_u128(77);
    let window = SendWindow::new(
        WeekdaySet::WEEKDAYS,
        LocalTime::from_hm(8, 0).unwrap(),
        LocalTime::from_hm(18, 0).unwrap(),
    )
    .unwrap();
    let mut mailboxes = Vec::new();
    for i in 0..MAILBOXES {
        let m = Mailbox::new(
            tenant,
            format!("sender{i}@fleet.example"),
            ZONES[i % ZONES.len()],
        )
        .unwrap()
        .with_daily_limit(LIMIT)
        .with_min_gap_seconds(GAP_SECONDS)
        .with_schedule(WeeklySchedule::windows(vec![window]));
        mailboxes.push(host.create_mailbox(m).await.unwrap());
    }
    let mut seq = Sequence::new(tenant, "Fleet", start()).unwrap();
    seq.add_step(Step::new(Delay::ZERO, "Hello {{ first_name }}", "Hi"))
        .unwrap();
    seq.add_step(Step::new(Delay::new(1, DelayUnit::Days), "Re: Hello", "Again").in_thread())
        .unwrap();
    seq.add_step(Step::new(Delay::new(2, DelayUnit::Days), "Last", "Bye").in_thread())
        .unwrap();
    seq.set_mailbox_pool(mailboxes.iter().map(|m| m.id).collect())
        .unwrap();
    let seq = host.create_sequence(seq).await.unwrap();
    host.activate_sequence(tenant, seq.id).await.unwrap();
    let people: Vec<Contact> = (0..CONTACTS)
        .map(|i| {
            Contact::new(tenant, format!("p{i}@client{}.example", i % 97))
                .unwrap()
                .with_name(format!("P{i}"), "Doe")
        })
        .collect();
    let ids = host.upsert_contacts(tenant, &people).await.unwrap();
    let answers = host.enroll(tenant, seq.id, &ids).await.unwrap();
    assert!(answers
        .iter()
        .all(|a| matches!(a, EnrollOutcome::Enrolled { .. })));
    Fleet {
        engines,
        clock,
        transport,
        tenant,
        sequence: seq.id,
        mailboxes,
    }
}

impl Fleet {
    /// Every engine ticks at each wake-up, each in its own task, until nothing is left.
    async fn run_to_completion(&self) {
        let end = start() + Duration::days(60);
        let mut t = start();
        for _ in 0..1_000_000 {
            self.clock.set(t);
            let ticks: Vec<_> = self
                .engines
                .iter()
                .map(|e| {
                    let e = e.clone();
                    tokio::spawn(async move { e.tick().await })
                })
                .collect();
            for tick in ticks {
                tick.await.unwrap().unwrap();
            }
            let Some(next) = self.engines[0].next_wakeup().await.unwrap() else {
                return;
            };
            t = next.max(t + Duration::seconds(1));
            assert!(t < end, "the run did not finish in 60 days");
        }
        panic!("no progress");
    }

    /// Check the rules on the record of calls; the instant by which 99% of the calls were
    /// made (the very last one depends on where a lone follow-up falls, which the random
    /// ids of the run decide, not on how many engines there were).
    async fn check(&self) -> DateTime<Utc> {
        let attempts = self.transport.attempts();
        assert!(
            self.transport.overlaps().is_empty(),
            "a mailbox sent two at once"
        );
        // Nothing sent twice, nothing lost.
        let mut sent: HashMap<(EnrollmentId, u32), u32> = HashMap::new();
        for a in attempts
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Sent)
        {
            *sent.entry((a.enrollment, a.step)).or_insert(0) += 1;
        }
        let twice = sent.values().filter(|n| **n > 1).count();
        assert_eq!(twice, 0, "{twice} steps were sent more than once");
        assert_eq!(
            sent.len(),
            CONTACTS * 3,
            "every step of every enrollment is sent"
        );
        let enrollments = self.engines[0]
            .store()
            .list_enrollments(self.tenant, self.sequence)
            .await
            .unwrap();
        let unfinished = enrollments
            .iter()
            .filter(|e| e.status() != EnrollmentStatus::Completed)
            .count();
        assert_eq!(unfinished, 0, "every enrollment completes");
        // Limits per mailbox-local day, and gaps.
        let zone: HashMap<MailboxId, Tz> =
            self.mailboxes.iter().map(|m| (m.id, m.timezone)).collect();
        let mut per_day: BTreeMap<(MailboxId, NaiveDate), u32> = BTreeMap::new();
        let mut calls: BTreeMap<MailboxId, Vec<DateTime<Utc>>> = BTreeMap::new();
        for a in &attempts {
            let local = a.at.with_timezone(&zone[&a.mailbox]).date_naive();
            *per_day.entry((a.mailbox, local)).or_insert(0) += 1;
            calls.entry(a.mailbox).or_default().push(a.at);
        }
        let over = per_day.values().filter(|n| **n > LIMIT).count();
        assert_eq!(over, 0, "{over} mailbox-days went over the limit");
        let mut broken = 0;
        for list in calls.values_mut() {
            list.sort();
            broken += list
                .windows(2)
                .filter(|w| w[1] - w[0] < Duration::seconds(i64::from(GAP_SECONDS)))
                .count();
        }
        assert_eq!(broken, 0, "{broken} gaps were broken");
        let mut instants: Vec<DateTime<Utc>> = attempts.iter().map(|a: &Attempt| a.at).collect();
        instants.sort();
        instants[instants.len() * 99 / 100]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_engines_on_one_store_keep_every_rule_and_finish_as_fast_as_one() {
    let one = fleet(1).await;
    one.run_to_completion().await;
    let one_done = one.check().await;

    let four = fleet(4).await;
    four.run_to_completion().await;
    let four_done = four.check().await;

    let days = |done: DateTime<Utc>| (done - start()).num_seconds() as f64 / 86_400.0;
    let (d1, d4) = (days(one_done), days(four_done));
    eprintln!("99% sent: one engine after {d1:.2} days; four engines after {d4:.2} days");
    assert!(
        d4 <= d1 * 1.1,
        "four engines took {d4:.2} days, one engine {d1:.2}: more than 10% longer"
    );
}
