//! The engine's host features end to end on the memory store: triggers and re-enrollment,
//! A/B variants, tracking and statistics, soft bounces, "why is this enrollment not
//! sending?", at-least-once delivery, and `run` driving itself until shutdown.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use std::sync::Arc;

mod support;

use backend_memory::MemoryStore;

use chrono::{DateTime, Duration, Utc};
use sequence_core::prelude::*;
use sequence_core::sequence::ReenrollmentRule;
use sequence_core::store::EnrollOutcome;
use sequence_scheduler::testing::{AttemptOutcome, RecordingTransport};
use sequence_scheduler::{DeliverySemantics, Engine, EngineConfig, SequenceStats, VirtualClock};
use support::{one_mailbox, start};

#[tokio::test]
async fn triggers_enroll_and_the_reenrollment_rule_decides_again() {
    let w = one_mailbox(EngineConfig::with_seed(1), 100).await;
    let trial = Trigger::TagAdded("trial".into());
    let seq = w
        .sequence("Trial", |s| {
            s.triggers = vec![trial.clone()];
            s.reenrollment = ReenrollmentRule::AfterCompletion;
        })
        .await;
    // A sequence with another trigger, and a draft with this one: neither enrolls.
    w.sequence("Other", |s| {
        s.triggers = vec![Trigger::ListJoined("news".into())];
    })
    .await;
    let mut draft = Sequence::new(w.tenant, "Draft", start()).unwrap();
    draft.triggers = vec![trial.clone()];
    w.engine.create_sequence(draft).await.unwrap();

    let c = w.contacts(1).await[0];
    let first = w.engine.report_trigger(w.tenant, c, &trial).await.unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].0, seq);
    assert!(matches!(first[0].1, EnrollOutcome::Enrolled { .. }));
    // While the first enrollment runs, the trigger does not enroll again.
    let again = w.engine.report_trigger(w.tenant, c, &trial).await.unwrap();
    assert!(matches!(again[0].1, EnrollOutcome::AlreadyEnrolled { .. }));
    w.run_until(start() + Duration::days(1)).await;
    assert_eq!(w.transport.attempts().len(), 1);
    // Completed: `AfterCompletion` lets the contact in again.
    w.clock
        .set(start() + Duration::days(1) + Duration::hours(1));
    let after = w.engine.report_trigger(w.tenant, c, &trial).await.unwrap();
    assert!(
        matches!(after[0].1, EnrollOutcome::Enrolled { .. }),
        "{after:?}"
    );
    let stats = w.engine.stats(w.tenant, seq).await.unwrap();
    assert_eq!((stats.enrolled, stats.completed), (2, 1));
}

#[tokio::test]
async fn ab_variants_are_chosen_by_weight_reproducibly_and_reported() {
    async fn run(seed: u64) -> (Vec<(ContactId, String)>, SequenceStats) {
        let w = one_mailbox(EngineConfig::with_seed(seed), 1_000).await;
        let seq = w
            .sequence("AB", |s| {
                let step = Step::new(Delay::ZERO, "A: hello", "A").with_variant(Variant {
                    name: "B".into(),
                    weight: 3,
                    subject: "B: hello".into(),
                    body: "B".into(),
                    html_body: None,
                });
                s.update_step(0, step).unwrap();
            })
            .await;
        let contacts = w.contacts(200).await;
        w.engine.enroll(w.tenant, seq, &contacts).await.unwrap();
        w.run_until(start() + Duration::days(1)).await;
        let mut subjects: Vec<(ContactId, String)> = w
            .transport
            .attempts()
            .into_iter()
            .map(|a| (a.contact, a.subject))
            .collect();
        subjects.sort();
        (subjects, w.engine.stats(w.tenant, seq).await.unwrap())
    }
    let (subjects, stats) = run(5).await;
    assert_eq!(subjects.len(), 200);
    let b = subjects.iter().filter(|(_, s)| s.starts_with("B:")).count();
    // Weight 1 : 3, so about 150 of 200 get B.
    assert!((120..=180).contains(&b), "{b} of 200 got variant B");
    let variants = &stats.steps[0].variants;
    assert_eq!(
        variants
            .iter()
            .map(|v| (v.variant, v.sent))
            .collect::<Vec<_>>(),
        vec![(0, 200 - b as u64), (1, b as u64)]
    );
    // The same seed chooses the same variant for every contact.
    assert_eq!(run(5).await.0, subjects);
}

#[tokio::test]
async fn opens_clicks_and_replies_feed_the_statistics_once_each() {
    let w = one_mailbox(EngineConfig::with_seed(2), 100).await;
    let seq = w
        .sequence("Tracked", |s| {
            s.add_step(Step::new(Delay::new(1, DelayUnit::Days), "Again", "."))
                .unwrap();
        })
        .await;
    let cs = w.contacts(4).await;
    w.engine.enroll(w.tenant, seq, &cs).await.unwrap();
    w.run_until(start() + Duration::hours(23)).await;
    let es = w
        .engine
        .store()
        .list_enrollments(w.tenant, seq)
        .await
        .unwrap();
    let of = |c: ContactId| es.iter().find(|e| e.contact == c).unwrap().id;
    for _ in 0..2 {
        w.engine.open(w.tenant, of(cs[0]), 0).await.unwrap();
        w.engine.open(w.tenant, of(cs[1]), 0).await.unwrap();
        w.engine.click(w.tenant, of(cs[1]), 0).await.unwrap();
        w.engine.reply(w.tenant, cs[2]).await.unwrap();
    }
    assert!(
        w.engine.open(w.tenant, of(cs[0]), 1).await.is_err(),
        "step 1 was not sent"
    );
    let stats = w.engine.stats(w.tenant, seq).await.unwrap();
    assert_eq!(
        (stats.sent, stats.opened, stats.clicked, stats.replied),
        (4, 2, 1, 1)
    );
    assert!((stats.open_rate - 0.5).abs() < 1e-9);
    assert!((stats.click_rate - 0.25).abs() < 1e-9);
    assert!((stats.reply_rate - 0.25).abs() < 1e-9);
    assert_eq!(stats.exited.get("replied"), Some(&1));
    let contact = w
        .engine
        .store()
        .get_contact(w.tenant, cs[1])
        .await
        .unwrap()
        .unwrap();
    assert!(contact.last_activity_at().is_some(), "a click is activity");
}

#[tokio::test]
async fn soft_bounces_use_up_the_retry_budget() {
    let w = one_mailbox(EngineConfig::with_seed(3), 100).await;
    let seq = w
        .sequence("Soft", |s| {
            s.add_step(Step::new(Delay::new(1, DelayUnit::Days), "Again", "."))
                .unwrap();
        })
        .await;
    let c = w.contacts(1).await[0];
    w.engine.enroll(w.tenant, seq, &[c]).await.unwrap();
    w.run_until(start() + Duration::hours(23)).await;
    for _ in 0..2 {
        w.engine
            .bounce(w.tenant, c, BounceKind::Soft)
            .await
            .unwrap();
    }
    let e = &w
        .engine
        .store()
        .list_enrollments(w.tenant, seq)
        .await
        .unwrap()[0];
    assert_eq!(
        (e.status(), e.soft_bounces()),
        (EnrollmentStatus::Active, 2)
    );
    w.engine
        .bounce(w.tenant, c, BounceKind::Soft)
        .await
        .unwrap();
    let e = &w
        .engine
        .store()
        .list_enrollments(w.tenant, seq)
        .await
        .unwrap()[0];
    assert_eq!(
        (e.status(), e.exit_reason()),
        (EnrollmentStatus::Exited, Some(ExitReason::Failed))
    );
    let contact = w
        .engine
        .store()
        .get_contact(w.tenant, c)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        contact.status(),
        ContactStatus::Active,
        "a soft bounce is not a bounce"
    );
}

#[tokio::test]
async fn why_not_sending_names_the_deferral_and_when_it_is_looked_at_again() {
    // One a day: the second contact waits for tomorrow.
    let w = one_mailbox(EngineConfig::with_seed(4), 1).await;
    let seq = w.sequence("Narrow", |_| {}).await;
    let cs = w.contacts(2).await;
    w.engine.enroll(w.tenant, seq, &cs).await.unwrap();
    w.run_until(start() + Duration::hours(1)).await;
    let es = w
        .engine
        .store()
        .list_enrollments(w.tenant, seq)
        .await
        .unwrap();
    let mut explanations = Vec::new();
    for e in &es {
        explanations.push(w.engine.why_not_sending(w.tenant, e.id).await.unwrap());
    }
    let planned = explanations
        .iter()
        .find(|x| x.pending_send.is_some())
        .unwrap();
    assert!(planned.summary.contains("Planned"), "{}", planned.summary);
    let waiting = explanations
        .iter()
        .find(|x| x.pending_send.is_none())
        .unwrap();
    // The pool is full: the enrollment is held back by its sequence's pool wait (no
    // deferral of its own is written) until the mailbox's next local day.
    assert_eq!(waiting.pool_wait, Some(start() + Duration::days(1)));
    assert!(
        waiting
            .summary
            .contains(&(start() + Duration::days(1)).to_string()),
        "{}",
        waiting.summary
    );
    assert!(
        waiting.summary.contains("NoCapacity"),
        "{}",
        waiting.summary
    );
    // And per pool mailbox: its use today, its limit and its next opening (tomorrow, when
    // the always-open mailbox's next local day starts).
    assert_eq!(waiting.mailboxes.len(), 1);
    let m = &waiting.mailboxes[0];
    assert_eq!(m.mailbox, w.mailbox);
    assert_eq!((m.used_today, m.limit_today), (1, 1));
    assert_eq!(m.next_opening, Some(start() + Duration::days(1)));
    assert!(
        waiting.summary.contains("1 of 1 used"),
        "{}",
        waiting.summary
    );
    w.run_until(start() + Duration::days(2)).await;
    let done = w
        .engine
        .why_not_sending(w.tenant, waiting.enrollment)
        .await
        .unwrap();
    assert_eq!(done.status, EnrollmentStatus::Completed);
}

/// One mailbox (UTC, always open), an active sequence of one step on it, and one contact
/// enrolled, in `tenant`: the sequence.
async fn one_contact_in_one_step(engine: &Engine, tenant: TenantId) -> Sequence {
    let m = engine
        .create_mailbox(Mailbox::new(tenant, "ana@sender.example", chrono_tz::UTC).unwrap())
        .await
        .unwrap();
    let mut seq = Sequence::new(tenant, "One step", start()).unwrap();
    seq.add_step(Step::new(Delay::ZERO, "Hi", ".")).unwrap();
    seq.set_mailbox_pool(vec![m.id]).unwrap();
    let seq = engine.create_sequence(seq).await.unwrap();
    engine.activate_sequence(tenant, seq.id).await.unwrap();
    let c = Contact::new(tenant, "bo@client.example").unwrap();
    engine
        .upsert_contacts(tenant, std::slice::from_ref(&c))
        .await
        .unwrap();
    engine.enroll(tenant, seq.id, &[c.id]).await.unwrap();
    seq
}

/// A transport that never answers: the engine's tick stays inside the call until dropped.
#[derive(Clone)]
struct Hang;

#[async_trait::async_trait]
impl Transport for Hang {
    async fn send(&self, _: &OutgoingEmail) -> Result<Delivery, SendError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn at_least_once_sends_again_after_a_lost_lease_and_at_most_once_does_not() {
    for (semantics, expected) in [
        (DeliverySemantics::AtMostOnce, 0),
        (DeliverySemantics::AtLeastOnce, 1),
    ] {
        let clock = VirtualClock::new(start());
        let store = Arc::new(MemoryStore::new());
        let config = EngineConfig::with_seed(6)
            .delivery(semantics)
            .lease(Duration::minutes(5));
        let crashed = Engine::builder(store.clone(), Hang)
            .clock(clock.clone())
            .config(config.clone())
            .build();
        let tenant = TenantId::from_u128(9);
        let seq = one_contact_in_one_step(&crashed, tenant).await;
        // Plan, then "crash" inside the transport call: the claim's lease is left behind.
        crashed.tick().await.unwrap();
        let at = crashed.next_wakeup().await.unwrap().unwrap();
        clock.set(at);
        let hung = tokio::time::timeout(std::time::Duration::from_millis(50), crashed.tick());
        assert!(hung.await.is_err(), "the transport call hangs");
        // Another engine process on the same store picks up after the lease ran out.
        let transport = RecordingTransport::new(clock.clone());
        let engine = Engine::builder(store.clone(), transport.clone())
            .clock(clock.clone())
            .config(config)
            .build();
        let mut now = at + Duration::minutes(6);
        for _ in 0..100 {
            clock.set(now);
            engine.tick().await.unwrap();
            match engine.next_wakeup().await.unwrap() {
                Some(next) => now = next.max(now + Duration::seconds(1)),
                None => break,
            }
        }
        assert_eq!(
            transport.attempts().len(),
            expected,
            "{semantics:?}: {:?}",
            transport.attempts()
        );
        let sends = store.sends_of_sequence(tenant, seq.id).await.unwrap();
        let e = &store.list_enrollments(tenant, seq.id).await.unwrap()[0];
        match semantics {
            DeliverySemantics::AtMostOnce => {
                assert_eq!(sends[0].status(), SendStatus::Uncertain);
                assert_eq!(
                    e.status(),
                    EnrollmentStatus::Completed,
                    "moved on, not stuck"
                );
            }
            DeliverySemantics::AtLeastOnce => {
                assert_eq!(
                    (sends[0].status(), sends[0].attempts()),
                    (SendStatus::Sent, 2)
                );
            }
        }
    }
}

/// A clock that follows tokio's (paused) time, so `run` can sleep through days at once.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    origin: DateTime<Utc>,
    at: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.origin + Duration::from_std(self.at.elapsed()).unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn run_sends_on_its_own_until_shutdown() {
    let clock = TokioClock {
        origin: start(),
        at: tokio::time::Instant::now(),
    };
    let transport = RecordingTransport::new(clock);
    let engine = Engine::builder(MemoryStore::new(), transport.clone())
        .clock(clock)
        .config(EngineConfig::with_seed(8).poll_interval(Duration::minutes(10)))
        .build();
    let tenant = TenantId::from_u128(3);
    let m = engine
        .create_mailbox(Mailbox::new(tenant, "ana@sender.example", chrono_tz::UTC).unwrap())
        .await
        .unwrap();
    let mut seq = Sequence::new(tenant, "Run", start()).unwrap();
    seq.add_step(Step::new(Delay::ZERO, "One", ".")).unwrap();
    seq.add_step(Step::new(Delay::new(1, DelayUnit::Days), "Two", "."))
        .unwrap();
    seq.set_mailbox_pool(vec![m.id]).unwrap();
    let seq = engine.create_sequence(seq).await.unwrap();
    engine.activate_sequence(tenant, seq.id).await.unwrap();
    let people: Vec<Contact> = (0..3)
        .map(|i| Contact::new(tenant, format!("p{i}@client.example")).unwrap())
        .collect();
    engine.upsert_contacts(tenant, &people).await.unwrap();
    let ids: Vec<ContactId> = people.iter().map(|c| c.id).collect();
    engine.enroll(tenant, seq.id, &ids).await.unwrap();

    engine
        .run(tokio::time::sleep(std::time::Duration::from_secs(
            3 * 86_400,
        )))
        .await;
    let attempts = transport.attempts();
    assert_eq!(attempts.len(), 6, "{attempts:?}");
    assert!(attempts
        .iter()
        .all(|a| a.outcome == AttemptOutcome::Sent && a.at < start() + Duration::days(3)));
    let stats = engine.stats(tenant, seq.id).await.unwrap();
    assert_eq!(stats.completed, 3);
}

#[tokio::test]
async fn enrollments_wait_parked_while_their_pool_is_paused_and_wake_on_resume() {
    let w = one_mailbox(EngineConfig::with_seed(10), 100).await;
    let seq = w.sequence("Paused pool", |_| {}).await;
    let cs = w.contacts(3).await;
    w.engine.pause_mailbox(w.tenant, w.mailbox).await.unwrap();
    w.engine.enroll(w.tenant, seq, &cs).await.unwrap();
    w.run_until(start() + Duration::days(3)).await;
    assert!(w.transport.attempts().is_empty());
    let es = w
        .engine
        .store()
        .list_enrollments(w.tenant, seq)
        .await
        .unwrap();
    for e in &es {
        let d = e.deferral().unwrap();
        assert_eq!(
            (d.reason, d.not_before, e.next_due_at()),
            (DeferralReason::NoActiveMailboxInPool, None, None),
            "parked, not looked at again every few minutes"
        );
    }
    assert_eq!(
        w.engine.next_wakeup().await.unwrap(),
        None,
        "nothing to wake for"
    );
    w.engine.resume_mailbox(w.tenant, w.mailbox).await.unwrap();
    w.run_until(start() + Duration::days(4)).await;
    assert_eq!(w.transport.attempts().len(), 3);
    assert!(w
        .transport
        .attempts()
        .iter()
        .all(|a| a.at >= start() + Duration::days(3)));
}

/// A transport whose server refuses the login with an answer that carries a NUL and a line
/// break, as a broken or hostile server may.
#[derive(Clone)]
struct RefusesLogin;

#[async_trait::async_trait]
impl Transport for RefusesLogin {
    async fn send(&self, _: &OutgoingEmail) -> Result<Delivery, SendError> {
        Err(SendError::permanent(
            FailureCategory::AuthFailure,
            "535 5.7.8 bad\0credentials\r\nX-Injected: yes",
        ))
    }
}

/// Every event, as a host's sink would get it.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<DomainEvent>>>);

impl EventSink for Captured {
    fn emit(&self, _: TenantId, _: DateTime<Utc>, event: &DomainEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// A server's answer is untrusted text: the send, its event and the mailbox's suspension
/// keep it as one line without control characters, so that no store or log refuses or
/// splits it (PostgreSQL refuses NUL in `jsonb`).
#[tokio::test]
async fn a_servers_answer_is_recorded_as_one_clean_line() {
    let clock = VirtualClock::new(start());
    let events = Captured::default();
    let engine = Engine::builder(MemoryStore::new(), RefusesLogin)
        .clock(clock.clone())
        .event_sink(events.clone())
        .build();
    let tenant = TenantId::from_u128(3);
    let seq = one_contact_in_one_step(&engine, tenant).await;
    for _ in 0..5 {
        engine.tick().await.unwrap();
        if let Some(at) = engine.next_wakeup().await.unwrap() {
            clock.set(at.max(clock.now()));
        }
    }
    let texts: Vec<String> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            DomainEvent::SendFailed { error, .. } => Some(error.clone()),
            DomainEvent::MailboxSuspended { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(texts.len() >= 2, "a failure and a suspension: {texts:?}");
    let sends = engine
        .store()
        .sends_of_sequence(tenant, seq.id)
        .await
        .unwrap();
    let stored: Vec<String> = sends
        .iter()
        .filter_map(|s| s.last_error().map(str::to_owned))
        .collect();
    assert!(!stored.is_empty(), "the send keeps its error");
    for text in texts.iter().chain(&stored) {
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("bad credentials X-Injected: yes"), "{text:?}");
    }
}
