//! A busy fleet over 45 virtual days through the real engine: the long run every backend
//! makes, with a hook after each tick for checks a backend can make only of itself.
#![expect(
    clippy::unwrap_used,
    reason = "a broken fixture or a failed call should stop the run loudly"
)]

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use sequence_core::ids::{ContactId, MailboxId, SequenceId, TenantId};
use sequence_core::ports::Clock;
use sequence_core::prelude::*;
use sequence_core::time::local_date;
use sequence_scheduler::testing::{AttemptOutcome, Fault, RecordingTransport};
use sequence_scheduler::{Engine, EngineConfig, RetryPolicy, VirtualClock};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0).unwrap()
}

/// The engine of a busy run, ticked at each wake-up as `Engine::run` does.
struct Busy<'a> {
    engine: Engine,
    clock: VirtualClock,
    ticks: usize,
    after_tick: &'a mut dyn FnMut(DateTime<Utc>),
}

impl Busy<'_> {
    async fn run_until(&mut self, until: DateTime<Utc>) {
        loop {
            let now = self.clock.now();
            self.engine.tick().await.unwrap();
            (self.after_tick)(now);
            self.ticks += 1;
            assert!(self.ticks < 50_000, "no progress");
            let Some(next) = self.engine.next_wakeup().await.unwrap() else {
                break;
            };
            let next = next.max(now + Duration::seconds(1));
            if next >= until {
                break;
            }
            self.clock.set(next);
        }
        self.clock.set(until);
    }
}

/// Demand over capacity (so follow-ups pre-empt new starts), mailboxes in four zones with
/// business hours and gaps, a mailbox and a sequence paused and resumed, replies,
/// unsubscribes, transient and permanent failures, over 45 virtual days: the run keeps the
/// capacity and one-at-a-time rules, sends nothing twice or after a stop, and finishes
/// everything nothing stopped.
///
/// `after_tick` is called after every tick with the instant it ran at, for the checks only
/// a backend can make of itself (the memory store rebuilds its indexes from its rows).
///
/// # Panics
/// When a rule breaks, or the store or engine fails.
pub async fn busy_engine_run<S: Store + 'static>(
    store: S,
    mut after_tick: impl FnMut(DateTime<Utc>),
) {
    let clock = VirtualClock::new(start());
    let transport = RecordingTransport::new(clock.clone());
    let engine = Engine::builder(store, transport.clone())
        .clock(clock.clone())
        .config(EngineConfig::with_seed(11).retry(RetryPolicy {
            max_attempts: 3,
            base: Duration::minutes(15),
        }))
        .build();
    let tenant = TenantId::new();
    let zones: [Tz; 4] = [
        chrono_tz::America::New_York,
        chrono_tz::Europe::Berlin,
        chrono_tz::Asia::Tokyo,
        chrono_tz::UTC,
    ];
    let hours = WeeklySchedule::windows(vec![SendWindow::new(
        WeekdaySet::WEEKDAYS,
        "09:00".parse().unwrap(),
        "17:00".parse().unwrap(),
    )
    .unwrap()]);
    let mut pool = Vec::new();
    let mut zone_of: HashMap<MailboxId, Tz> = HashMap::new();
    for (i, tz) in zones.iter().enumerate() {
        let m = Mailbox::new(tenant, format!("s{i}@fleet.example"), *tz)
            .unwrap()
            .with_daily_limit(6)
            .with_min_gap_seconds(300)
            .with_schedule(hours.clone());
        zone_of.insert(m.id, *tz);
        pool.push(engine.create_mailbox(m).await.unwrap().id);
    }
    let mut sequences: Vec<SequenceId> = Vec::new();
    for name in ["A", "B"] {
        let mut s = Sequence::new(tenant, name, start()).unwrap();
        s.add_step(Step::new(Delay::ZERO, "Hi {{ first_name }}", "One."))
            .unwrap();
        s.add_step(Step::new(Delay::new(1, DelayUnit::Days), "Re: Hi", "Two.").in_thread())
            .unwrap();
        s.add_step(Step::new(Delay::new(1, DelayUnit::Days), "Last", "Three.").in_thread())
            .unwrap();
        s.set_mailbox_pool(pool.clone()).unwrap();
        let s = engine.create_sequence(s).await.unwrap();
        engine.activate_sequence(tenant, s.id).await.unwrap();
        sequences.push(s.id);
    }
    let people: Vec<Contact> = (0..80)
        .map(|i| {
            Contact::new(tenant, format!("p{i}@c{}.example", i % 7))
                .unwrap()
                .with_name(format!("P{i}"), "Doe")
        })
        .collect();
    engine.upsert_contacts(tenant, &people).await.unwrap();
    let ids: Vec<ContactId> = people.iter().map(|c| c.id).collect();
    transport.fail(ids[3], 1, Fault::Transient, 2);
    transport.fail(ids[5], 0, Fault::Permanent, 1);
    transport.fail(ids[8], 2, Fault::Transient, 9);
    engine.enroll(tenant, sequences[0], &ids).await.unwrap();
    engine
        .enroll(tenant, sequences[1], &ids[..40])
        .await
        .unwrap();

    let mut busy = Busy {
        engine: engine.clone(),
        clock: clock.clone(),
        ticks: 0,
        after_tick: &mut after_tick,
    };
    busy.run_until(start() + Duration::days(1)).await;
    engine.pause_mailbox(tenant, pool[1]).await.unwrap();
    engine.reply(tenant, ids[10]).await.unwrap();
    busy.run_until(start() + Duration::days(2)).await;
    engine.pause_sequence(tenant, sequences[1]).await.unwrap();
    engine.unsubscribe(tenant, ids[11]).await.unwrap();
    busy.run_until(start() + Duration::days(3)).await;
    engine.resume_mailbox(tenant, pool[1]).await.unwrap();
    engine
        .out_of_office(tenant, ids[12], start() + Duration::days(6))
        .await
        .unwrap();
    busy.run_until(start() + Duration::days(4)).await;
    engine.resume_sequence(tenant, sequences[1]).await.unwrap();
    busy.run_until(start() + Duration::days(45)).await;

    let attempts = transport.attempts();
    assert!(!attempts.is_empty());
    assert!(
        transport.overlaps().is_empty(),
        "two sends at once from one mailbox"
    );
    let mut per_day: HashMap<(MailboxId, NaiveDate), u32> = HashMap::new();
    for a in &attempts {
        *per_day
            .entry((a.mailbox, local_date(zone_of[&a.mailbox], a.at)))
            .or_insert(0) += 1;
    }
    let over: Vec<_> = per_day.iter().filter(|(_, n)| **n > 6).collect();
    assert!(over.is_empty(), "over the daily limit: {over:?}");
    let mut sent: HashSet<(ContactId, SequenceId, u32)> = HashSet::new();
    for a in &attempts {
        if a.outcome == AttemptOutcome::Sent {
            assert!(
                sent.insert((a.contact, a.sequence, a.step)),
                "a step was sent twice: {a:?}"
            );
        }
    }
    for (i, c) in ids.iter().enumerate() {
        for a in attempts.iter().filter(|a| a.contact == *c) {
            if i == 10 {
                assert!(a.at < start() + Duration::days(1), "sent after a reply");
            }
            if i == 11 {
                assert!(
                    a.at < start() + Duration::days(2),
                    "sent after an unsubscribe"
                );
            }
        }
    }
    // Everything that nothing stopped finished (capacity is short: it takes about five weeks).
    let stopped: HashSet<ContactId> = [ids[5], ids[8], ids[10], ids[11]].into();
    for seq in &sequences {
        for e in engine.store().list_enrollments(tenant, *seq).await.unwrap() {
            if !stopped.contains(&e.contact) {
                assert_eq!(
                    e.status(),
                    EnrollmentStatus::Completed,
                    "enrollment of {} in {seq} did not finish: {e:?}",
                    e.contact
                );
            }
        }
    }
}
