//! The fleet the multi-process tests run: mailboxes in a few zones, each open one window a
//! weekday with a daily limit and a gap, and one three-step sequence (follow-ups after one
//! and two days, in thread) with every contact enrolled. Made through the host API of an
//! engine that never ticks.

use std::collections::HashMap;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sequence_core::prelude::*;
use sequence_core::store::EnrollOutcome;
use sequence_core::time::{LocalTime, SendWindow, WeekdaySet, WeeklySchedule};
use sequence_scheduler::testing::RecordingTransport;
use sequence_scheduler::{Engine, EngineConfig, VirtualClock};

use super::SchemaStore;

/// What to make.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Enrollments, one contact each.
    pub(crate) enrollments: usize,
    pub(crate) mailboxes: usize,
    /// Mailbox `i` is in `zones[i % zones.len()]`.
    pub(crate) zones: &'static [Tz],
    pub(crate) daily_limit: u32,
    pub(crate) gap_seconds: u32,
    /// The window, `[open, close)` local time, Monday to Friday (whole hours).
    pub(crate) open_hour: u32,
    pub(crate) close_hour: u32,
}

impl Shape {
    /// The window's local times.
    pub(crate) fn window(&self) -> (NaiveTime, NaiveTime) {
        let at = |h| NaiveTime::from_hms_opt(h, 0, 0).expect("a whole hour");
        (at(self.open_hour), at(self.close_hour))
    }
}

/// Where the fleet's virtual time starts: a Monday, 00:00 UTC.
pub(crate) fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

/// What was made.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    pub(crate) tenant: TenantId,
    pub(crate) sequence: SequenceId,
    /// Each mailbox's zone.
    pub(crate) zones: HashMap<MailboxId, Tz>,
    pub(crate) enrollments: Vec<EnrollmentId>,
}

/// Make the fleet of `shape` in `store`.
pub(crate) async fn fixture(store: &SchemaStore, shape: &Shape) -> Fixture {
    let host = Engine::builder(
        store.clone(),
        RecordingTransport::new(VirtualClock::new(start())),
    )
    .clock(VirtualClock::new(start()))
    .config(EngineConfig::with_seed(42))
    .build();
    let tenant = TenantId::from_u128(77);
    let hours = SendWindow::new(
        WeekdaySet::WEEKDAYS,
        LocalTime::from_hm(shape.open_hour, 0).expect("an hour"),
        LocalTime::from_hm(shape.close_hour, 0).expect("an hour"),
    )
    .expect("a window");
    let mut zones = HashMap::new();
    let mut pool = Vec::new();
    for i in 0..shape.mailboxes {
        let m = Mailbox::new(
            tenant,
            format!("sender{i}@fleet.example"),
            shape.zones[i % shape.zones.len()],
        )
        .expect("a mailbox")
        .with_daily_limit(shape.daily_limit)
        .with_min_gap_seconds(shape.gap_seconds)
        .with_schedule(WeeklySchedule::windows(vec![hours]));
        let m = host.create_mailbox(m).await.expect("mailbox stored");
        zones.insert(m.id, m.timezone);
        pool.push(m.id);
    }
    let mut seq = Sequence::new(tenant, "Fleet", start()).expect("a sequence");
    let steps = [
        Step::new(Delay::ZERO, "Hello {{ first_name }}", "Hi"),
        Step::new(Delay::new(1, DelayUnit::Days), "Re: Hello", "Again").in_thread(),
        Step::new(Delay::new(2, DelayUnit::Days), "Last", "Bye").in_thread(),
    ];
    for step in steps {
        seq.add_step(step).expect("a step");
    }
    seq.set_mailbox_pool(pool).expect("a pool");
    let seq = host.create_sequence(seq).await.expect("sequence stored");
    host.activate_sequence(tenant, seq.id)
        .await
        .expect("sequence active");
    let people: Vec<Contact> = (0..shape.enrollments)
        .map(|i| {
            Contact::new(tenant, format!("p{i}@client{}.example", i % 97))
                .expect("a contact")
                .with_name(format!("P{i}"), "Doe")
        })
        .collect();
    let ids = host
        .upsert_contacts(tenant, &people)
        .await
        .expect("contacts stored");
    let enrollments = host
        .enroll(tenant, seq.id, &ids)
        .await
        .expect("enrolled")
        .into_iter()
        .map(|a| match a {
            EnrollOutcome::Enrolled { enrollment } => enrollment,
            other => panic!("not enrolled: {other:?}"),
        })
        .collect();
    Fixture {
        tenant,
        sequence: seq.id,
        zones,
        enrollments,
    }
}
