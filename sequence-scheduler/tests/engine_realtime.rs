//! The engine on a wall clock: late ticks, slow servers, host calls landing while a batch is
//! sent, host re-syncs, sequence-wide changes, foreign mailboxes. Each test failed before the
//! fix it guards. The checks read the transport's record of calls (instants on the clock
//! when the transport was called) and compute the rules from it directly.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
mod support;

use chrono::{DateTime, Duration, Timelike, Utc};
use sequence_core::prelude::*;
use sequence_core::store::EnrollOutcome;
use sequence_core::time::{LocalTime, SendWindow, WeekdaySet, WeeklySchedule};
use sequence_core::transport::{Delivery, OutgoingEmail, SendError, Transport};
use sequence_scheduler::testing::{Attempt, RecordingTransport};
use sequence_scheduler::{Engine, EngineConfig, EngineError, VirtualClock};
use support::{start, World};

fn hm(h: u32, m: u32) -> LocalTime {
    LocalTime::from_hm(h, m).unwrap()
}

/// Every day from `start` to `end` (UTC).
fn utc_window(start: LocalTime, end: LocalTime) -> WeeklySchedule {
    WeeklySchedule::windows(vec![SendWindow::new(WeekdaySet::ALL, start, end).unwrap()])
}

/// A transport that records each call and then lets `slowness` pass on the virtual clock,
/// like an SMTP server that takes that long to answer; a host action runs inside the first
/// call.
#[derive(Clone)]
struct SlowTransport {
    inner: RecordingTransport,
    clock: VirtualClock,
    slowness: Duration,
    on_first_call: Arc<Mutex<Option<HostAction>>>,
    engine: Arc<OnceLock<Engine>>,
}

type HostAction = Box<dyn FnOnce(Engine) -> futures::future::BoxFuture<'static, ()> + Send>;

#[async_trait]
impl Transport for SlowTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        // The host acts while this call is under way (before any other send of the batch
        // has made its own re-check).
        let action = self.on_first_call.lock().unwrap().take();
        if let (Some(action), Some(engine)) = (action, self.engine.get()) {
            action(engine.clone()).await;
        }
        let answer = self.inner.send(email).await;
        self.clock.advance(self.slowness);
        answer
    }
}

/// The shared world with one sequence over the setup's mailboxes, sending through a slow
/// transport.
struct Realtime {
    world: World,
    transport: SlowTransport,
    sequence: SequenceId,
    mailboxes: Vec<Mailbox>,
    contacts: Vec<ContactId>,
}

impl std::ops::Deref for Realtime {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

struct Setup {
    mailboxes: Vec<Mailbox>,
    steps: Vec<Step>,
    contacts: usize,
    slowness: Duration,
    concurrency: usize,
}

impl Setup {
    fn new(mailboxes: Vec<Mailbox>, contacts: usize) -> Self {
        Self {
            mailboxes,
            steps: vec![Step::new(Delay::ZERO, "Hello {{ first_name }}", "Hi!")],
            contacts,
            slowness: Duration::zero(),
            concurrency: 8,
        }
    }

    async fn build(self, tenant: TenantId) -> Realtime {
        let clock = VirtualClock::new(start());
        let recording = RecordingTransport::new(clock.clone());
        let transport = SlowTransport {
            inner: recording.clone(),
            clock: clock.clone(),
            slowness: self.slowness,
            on_first_call: Arc::new(Mutex::new(None)),
            engine: Arc::new(OnceLock::new()),
        };
        let config = EngineConfig::with_seed(11).concurrency(self.concurrency);
        let world = World {
            tenant,
            ..World::with_transport(config, clock, recording, transport.clone())
        };
        let _ = transport.engine.set(world.engine.clone());
        let mut mailboxes = Vec::new();
        for m in self.mailboxes {
            mailboxes.push(world.engine.create_mailbox(m).await.unwrap());
        }
        let pool: Vec<MailboxId> = mailboxes.iter().map(|m| m.id).collect();
        let sequence = world.sequence("Outreach", &pool, self.steps, |_| {}).await;
        let contacts = world.contacts(self.contacts).await;
        Realtime {
            world,
            transport,
            sequence,
            mailboxes,
            contacts,
        }
    }
}

impl Realtime {
    async fn enroll_all(&self) {
        let answers = self
            .engine
            .enroll(self.tenant, self.sequence, &self.contacts)
            .await
            .unwrap();
        assert!(answers
            .iter()
            .all(|a| matches!(a, EnrollOutcome::Enrolled { .. })));
    }

    /// Tick at `at` on the virtual clock.
    async fn tick_at(&self, at: DateTime<Utc>) {
        self.clock.set(at);
        self.engine.tick().await.unwrap();
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.transport.inner.attempts()
    }

    fn on_first_call(&self, action: HostAction) {
        *self.transport.on_first_call.lock().unwrap() = Some(action);
    }
}

/// The smallest distance between two consecutive calls of one mailbox.
fn closest_calls(attempts: &[Attempt]) -> Option<Duration> {
    let mut by_mailbox: BTreeMap<MailboxId, Vec<DateTime<Utc>>> = BTreeMap::new();
    for a in attempts {
        by_mailbox.entry(a.mailbox).or_default().push(a.at);
    }
    by_mailbox
        .values_mut()
        .flat_map(|calls| {
            calls.sort();
            calls.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
        })
        .min()
}

// ---- 1: the gap at dispatch ------------------------------------------------------------------

#[tokio::test]
async fn a_late_tick_drains_the_backlog_at_the_mailboxs_pace() {
    let gap = 300;
    let mailbox = Mailbox::new(TenantId::from_u128(1), "ana@sender.example", chrono_tz::UTC)
        .unwrap()
        .with_daily_limit(40)
        .with_min_gap_seconds(gap)
        .with_schedule(utc_window(hm(9, 0), hm(17, 0)));
    let w = Setup::new(vec![mailbox], 40)
        .build(TenantId::from_u128(1))
        .await;
    w.enroll_all().await;
    // The first tick plans the day at 09:00 and sends what is due; then the engine stops
    // ticking for three hours (an outage) and comes back at 12:00.
    w.tick_at(start() + Duration::hours(9)).await;
    let before = w.attempts().len();
    w.tick_at(start() + Duration::hours(12)).await;
    let burst = w.attempts().len() - before;
    assert!(
        burst <= 1,
        "a late tick must not send the overdue backlog at once ({burst} sends at 12:00)"
    );
    w.run_until(start() + Duration::days(1)).await;
    let attempts = w.attempts();
    assert!(
        attempts.len() > 20,
        "the day's sends went: {}",
        attempts.len()
    );
    let closest = closest_calls(&attempts).unwrap();
    assert!(
        closest >= Duration::seconds(i64::from(gap)),
        "two calls of one mailbox were {closest} apart, under the {gap} s gap"
    );
    for a in &attempts {
        assert!(
            (9..17).contains(&a.at.hour()),
            "a send went outside its window at {}",
            a.at
        );
    }
}

// ---- 2: the clock per send --------------------------------------------------------------------

#[tokio::test]
async fn a_slow_server_never_pushes_sends_out_of_their_window_or_follow_ups_early() {
    // A window of one hour and a server that takes 20 minutes an answer: at most three calls
    // fit; the rest must wait for the next day's window, not go late.
    let mailboxes: Vec<Mailbox> = (0..2)
        .map(|i| {
            Mailbox::new(
                TenantId::from_u128(2),
                format!("m{i}@sender.example"),
                chrono_tz::UTC,
            )
            .unwrap()
            .with_daily_limit(10)
            .with_schedule(utc_window(hm(9, 0), hm(10, 0)))
        })
        .collect();
    let mut setup = Setup::new(mailboxes, 8);
    setup.slowness = Duration::minutes(20);
    setup.concurrency = 1;
    setup.steps.push(Step::new(
        Delay::new(30, DelayUnit::Minutes),
        "Re: Hello",
        "Again.",
    ));
    let w = setup.build(TenantId::from_u128(2)).await;
    w.enroll_all().await;
    w.run_until(start() + Duration::days(4)).await;
    let attempts = w.attempts();
    assert!(!attempts.is_empty());
    for a in &attempts {
        assert_eq!(
            a.at.hour(),
            9,
            "a call was made at {}, outside the 09:00-10:00 window",
            a.at
        );
    }
    // Step 1 of an enrollment goes no earlier than 30 minutes after step 0 was answered.
    let mut by_enrollment: BTreeMap<EnrollmentId, Vec<&Attempt>> = BTreeMap::new();
    for a in &attempts {
        by_enrollment.entry(a.enrollment).or_default().push(a);
    }
    for calls in by_enrollment.values() {
        if let [first, second, ..] = calls.as_slice() {
            assert!(
                second.at >= first.at + Duration::minutes(20) + Duration::minutes(30),
                "step 1 at {} came before step 0's answer ({}) plus its delay",
                second.at,
                first.at + Duration::minutes(20)
            );
        }
    }
    // Per mailbox and day, the calls that fit in an hour at 20 minutes each: at most 3.
    let mut per_day: BTreeMap<(MailboxId, chrono::NaiveDate), u32> = BTreeMap::new();
    for a in &attempts {
        *per_day.entry((a.mailbox, a.at.date_naive())).or_insert(0) += 1;
    }
    assert!(per_day.values().all(|n| *n <= 3), "{per_day:?}");
}

// ---- 3: the re-check reads the current state --------------------------------------------------

async fn batch_world(tenant: u128) -> Realtime {
    // Four mailboxes, each with one send due at once: one claim batch.
    let mailboxes: Vec<Mailbox> = (0..4)
        .map(|i| {
            Mailbox::new(
                TenantId::from_u128(tenant),
                format!("b{i}@sender.example"),
                chrono_tz::UTC,
            )
            .unwrap()
            .with_daily_limit(1)
        })
        .collect();
    let w = Setup::new(mailboxes, 4)
        .build(TenantId::from_u128(tenant))
        .await;
    w.enroll_all().await;
    // Plan the day now; the sends are spread over it.
    w.tick_at(start()).await;
    w
}

/// Tick once late in the day, when the four planned sends are all due: one claim batch.
async fn send_the_batch(w: &Realtime) {
    w.tick_at(start() + Duration::hours(23) + Duration::minutes(59))
        .await;
    w.run_until(start() + Duration::days(1)).await;
}

#[tokio::test]
async fn stops_that_land_while_a_batch_is_sent_stop_the_rest_of_it() {
    // The contacts unsubscribe while the first send of the batch is being made.
    let w = batch_world(3).await;
    let (tenant, contacts) = (w.tenant, w.contacts.clone());
    w.on_first_call(Box::new(move |engine| {
        Box::pin(async move {
            for c in contacts {
                engine.unsubscribe(tenant, c).await.unwrap();
            }
        })
    }));
    send_the_batch(&w).await;
    assert_eq!(
        w.attempts().len(),
        1,
        "no send may go after its contact unsubscribed: {:?}",
        w.attempts().iter().map(|a| a.at).collect::<Vec<_>>()
    );

    // The sequence is paused while the first send is being made.
    let w = batch_world(4).await;
    let (tenant, sequence) = (w.tenant, w.sequence);
    w.on_first_call(Box::new(move |engine| {
        Box::pin(async move {
            engine.pause_sequence(tenant, sequence).await.unwrap();
        })
    }));
    send_the_batch(&w).await;
    assert_eq!(
        w.attempts().len(),
        1,
        "nothing may go once the sequence paused"
    );

    // Every mailbox is paused while the first send is being made.
    let w = batch_world(5).await;
    let (tenant, ids) = (
        w.tenant,
        w.mailboxes.iter().map(|m| m.id).collect::<Vec<_>>(),
    );
    w.on_first_call(Box::new(move |engine| {
        Box::pin(async move {
            for m in ids {
                let _ = engine.pause_mailbox(tenant, m).await;
            }
        })
    }));
    send_the_batch(&w).await;
    assert_eq!(w.attempts().len(), 1, "a paused mailbox sends nothing more");
}

#[tokio::test]
async fn lowering_a_daily_limit_mid_day_stops_sends_planned_above_it() {
    let mailbox = Mailbox::new(TenantId::from_u128(6), "lo@sender.example", chrono_tz::UTC)
        .unwrap()
        .with_daily_limit(6)
        .with_min_gap_seconds(600)
        .with_schedule(utc_window(hm(9, 0), hm(17, 0)));
    let w = Setup::new(vec![mailbox], 6)
        .build(TenantId::from_u128(6))
        .await;
    w.enroll_all().await;
    w.run_until(start() + Duration::hours(9) + Duration::minutes(1))
        .await;
    assert!(w.attempts().len() < 3, "the day has only begun");
    // Six sends are planned over the day; the host lowers the limit to 2.
    let id = w.mailboxes[0].id;
    w.engine
        .update_mailbox(w.tenant, id, |m| {
            m.daily_limit = 2;
            Ok(())
        })
        .await
        .unwrap();
    w.run_until(start() + Duration::hours(23)).await;
    let today = w
        .attempts()
        .iter()
        .filter(|a| a.at.date_naive() == start().date_naive())
        .count();
    assert_eq!(today, 2, "the lowered limit holds for the rest of the day");
}

// ---- 4 and 10: contacts -----------------------------------------------------------------------

#[tokio::test]
async fn a_host_resync_never_lifts_a_suppression_and_one_address_is_one_contact() {
    let mailbox = Mailbox::new(TenantId::from_u128(7), "c@sender.example", chrono_tz::UTC).unwrap();
    let w = Setup::new(vec![mailbox], 2)
        .build(TenantId::from_u128(7))
        .await;
    let t = w.tenant;
    w.engine.unsubscribe(t, w.contacts[0]).await.unwrap();
    // The CRM sync sends the row again, as active, with a new company.
    let crm = Contact::new(t, "p0@client.example")
        .unwrap()
        .with_company("Acme");
    let ids = w.engine.upsert_contacts(t, &[crm]).await.unwrap();
    assert_eq!(ids, vec![w.contacts[0]], "one address is one contact");
    let stored = w
        .engine
        .store()
        .get_contact(t, w.contacts[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.status(),
        ContactStatus::Unsubscribed,
        "still unsubscribed"
    );
    assert_eq!(stored.company.as_deref(), Some("Acme"));
    let answers = w.engine.enroll(t, w.sequence, &ids).await.unwrap();
    assert!(
        matches!(answers[0], EnrollOutcome::Suppressed { .. }),
        "{answers:?}"
    );
    // The same person added again under a new id is enrolled once.
    let again = Contact::new(t, "P1@client.example").unwrap();
    let ids = w.engine.upsert_contacts(t, &[again]).await.unwrap();
    assert_eq!(ids, vec![w.contacts[1]]);
    let first = w.engine.enroll(t, w.sequence, &ids).await.unwrap();
    let second = w.engine.enroll(t, w.sequence, &ids).await.unwrap();
    assert!(matches!(first[0], EnrollOutcome::Enrolled { .. }));
    assert!(matches!(second[0], EnrollOutcome::AlreadyEnrolled { .. }));
    // Only the explicit call lifts the suppression.
    assert!(w.engine.lift_suppression(t, w.contacts[0]).await.unwrap());
    let answers = w
        .engine
        .enroll(t, w.sequence, &[w.contacts[0]])
        .await
        .unwrap();
    assert!(matches!(answers[0], EnrollOutcome::Enrolled { .. }));
}

// ---- 5: pause, resume and archive complete and may be called again -----------------------------

#[tokio::test]
async fn pause_resume_and_archive_are_idempotent_and_reach_every_enrollment() {
    let mailboxes: Vec<Mailbox> = (0..5)
        .map(|i| {
            Mailbox::new(
                TenantId::from_u128(8),
                format!("p{i}@sender.example"),
                chrono_tz::UTC,
            )
            .unwrap()
            .with_daily_limit(200)
        })
        .collect();
    // More enrollments than one page of the sweep.
    let w = Setup::new(mailboxes, 2_500)
        .build(TenantId::from_u128(8))
        .await;
    w.enroll_all().await;
    let (t, s) = (w.tenant, w.sequence);
    w.tick_at(start()).await;
    w.engine.pause_sequence(t, s).await.unwrap();
    w.engine.pause_sequence(t, s).await.unwrap();
    w.tick_at(start() + Duration::minutes(1)).await;
    let sent_before = w.attempts().len();
    w.engine.resume_sequence(t, s).await.unwrap();
    w.engine.resume_sequence(t, s).await.unwrap();
    let store = w.engine.store();
    let parked = store
        .list_enrollments(t, s)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.is_final() && e.next_due_at().is_none() && e.mailbox().is_none())
        .count();
    assert_eq!(parked, 0, "a resume must wake every parked enrollment");
    w.run_until(start() + Duration::minutes(30)).await;
    assert!(w.attempts().len() > sent_before, "sending carries on");
    w.engine.archive_sequence(t, s).await.unwrap();
    w.engine.archive_sequence(t, s).await.unwrap();
    let open = store
        .list_enrollments(t, s)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.is_final())
        .count();
    assert_eq!(open, 0, "archive ends every open enrollment");
}

// ---- 6: a mailbox of another tenant --------------------------------------------------------------

#[tokio::test]
async fn a_pool_with_another_tenants_mailbox_is_refused_and_never_spins() {
    let ours = TenantId::from_u128(9);
    let theirs = TenantId::from_u128(10);
    let mailbox = Mailbox::new(ours, "o@sender.example", chrono_tz::UTC).unwrap();
    let w = Setup::new(vec![mailbox], 1).build(ours).await;
    let foreign = w
        .engine
        .create_mailbox(Mailbox::new(theirs, "x@elsewhere.example", chrono_tz::UTC).unwrap())
        .await
        .unwrap();
    let mut seq = Sequence::new(ours, "Mixed", start()).unwrap();
    seq.add_step(Step::new(Delay::ZERO, "Hi", "Hi")).unwrap();
    seq.set_mailbox_pool(vec![w.mailboxes[0].id, foreign.id])
        .unwrap();
    match w.engine.create_sequence(seq.clone()).await {
        Err(EngineError::Invalid(problems)) => assert!(
            problems
                .problems
                .iter()
                .any(|p| p.path == "mailbox_pool[1]"),
            "{problems}"
        ),
        other => panic!("a foreign mailbox in a pool must be refused: {other:?}"),
    }
    // A pool stored around the engine (an older row) must park, not spin.
    seq.set_mailbox_pool(vec![foreign.id]).unwrap();
    seq.activate().unwrap();
    w.engine.store().save_sequence(&seq, None).await.unwrap();
    w.engine.enroll(ours, seq.id, &w.contacts).await.unwrap();
    w.tick_at(start()).await;
    let next = w.engine.next_wakeup().await.unwrap();
    assert!(
        next.is_none_or(|at| at > start()),
        "an enrollment that cannot be planned must not be due at once again ({next:?})"
    );
    assert!(w.attempts().is_empty());
}

/// One person enrolled in two one-step sequences, each on a mailbox of its own: the two
/// sequences and the person.
async fn one_person_in_two_sequences(w: &World) -> (SequenceId, SequenceId, ContactId) {
    let a = w.mailbox("a@fleet.example", chrono_tz::UTC, 50).await.id;
    let b = w.mailbox("b@fleet.example", chrono_tz::UTC, 50).await.id;
    let steps = || vec![Step::new(Delay::ZERO, "Hello", "Hi!")];
    let first = w.sequence("First", &[a], steps(), |_| {}).await;
    let second = w.sequence("Second", &[b], steps(), |_| {}).await;
    let person = w.contacts(1).await[0];
    w.enroll(first, &[person]).await;
    w.enroll(second, &[person]).await;
    (first, second, person)
}

/// Plan the first sends of `sequences` (one enrollment each), then set the clock a minute
/// past the later one, as a late tick finds them: both are claimed in one wave. The
/// instant set.
async fn both_overdue(w: &World, sequences: [SequenceId; 2]) -> DateTime<Utc> {
    w.engine.tick().await.unwrap();
    let mut last = start();
    for seq in sequences {
        let e = w.enrollments(seq).await.remove(0);
        let sends = w
            .engine
            .store()
            .sends_of_enrollment(w.tenant, e.id)
            .await
            .unwrap();
        assert_eq!(sends.len(), 1, "{seq}: its first step is planned");
        last = last.max(sends[0].planned_at());
    }
    let late = last + Duration::minutes(1);
    w.clock.set(late);
    late
}

/// The re-check reads of a wave are made together, before it goes out; a bounce answered
/// to one send of the wave still stops a send of the same wave to the same person (from
/// another sequence and mailbox) that has not gone yet.
#[tokio::test]
async fn a_bounce_in_a_wave_stops_the_waves_other_sends_to_that_contact() {
    let w = World::new(EngineConfig::with_seed(3));
    let (first, second, person) = one_person_in_two_sequences(&w).await;
    // Whichever goes first bounces (the address does not exist).
    w.transport
        .fail(person, 0, sequence_scheduler::testing::Fault::Permanent, 2);
    both_overdue(&w, [first, second]).await;
    w.engine.tick().await.unwrap();
    let attempts = w.transport.attempts();
    assert_eq!(
        attempts.len(),
        1,
        "only the send that bounced went out: {attempts:?}"
    );
    let contact = w
        .engine
        .store()
        .get_contact(w.tenant, person)
        .await
        .unwrap()
        .unwrap();
    assert!(!contact.is_sendable(), "the contact bounced");
    for seq in [first, second] {
        let e = &w.enrollments(seq).await[0];
        assert_eq!(e.status(), EnrollmentStatus::Exited, "{seq}: {e:?}");
    }
}

/// A send that waits for an earlier round of its wave (another send to the same person)
/// is not made once its claim's lease has run out: another engine may have taken it back
/// by then. It is given back and goes later, on a lease of its own.
#[tokio::test]
async fn a_send_whose_lease_ran_out_while_it_waited_is_not_made() {
    let clock = VirtualClock::new(start());
    let recording = RecordingTransport::new(clock.clone());
    // Each call takes 20 minutes; a claim's lease lasts 10.
    let slow = sequence_scheduler::testing::FaultyTransport::new(recording.clone())
        .latency(clock.clone(), Duration::minutes(20));
    let config = EngineConfig::with_seed(4).lease(Duration::minutes(10));
    let w = World::with_transport(config, clock, recording, slow);
    let (first, second, _) = one_person_in_two_sequences(&w).await;
    // Both are overdue: one wave, two rounds (one person).
    let late = both_overdue(&w, [first, second]).await;
    w.engine.tick().await.unwrap();
    let made: Vec<Attempt> = w.transport.attempts();
    assert_eq!(
        made.len(),
        1,
        "the second round's lease ran out during the first call: {made:?}"
    );
    // Given back, not lost: it goes later on a claim of its own.
    w.run_for(Duration::days(1)).await;
    let made = w.transport.attempts();
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(made[1].at > late + Duration::minutes(20), "{made:?}");
}
