//! The engine end to end on the in-memory store, in virtual time, with a recording
//! transport that injects failures.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

mod support;

use chrono::{DateTime, Duration, Utc};
use sequence_core::prelude::*;
use sequence_core::store::{ClaimedSend, EnrollOutcome};
use sequence_scheduler::testing::{Attempt, AttemptOutcome, Fault};
use sequence_scheduler::{DeliverySemantics, EngineConfig, RetryPolicy};
use support::{start, three_steps, World};

/// The shared world with one sequence (three steps over `mailboxes` Berlin mailboxes, 20
/// a day) and its contacts.
struct E2e {
    world: World,
    sequence: SequenceId,
    mailboxes: Vec<MailboxId>,
    contacts: Vec<ContactId>,
}

impl std::ops::Deref for E2e {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

async fn world(contacts: usize, mailboxes: usize, config: EngineConfig) -> E2e {
    let world = World::new(config);
    let mailboxes = world
        .mailboxes(mailboxes, chrono_tz::Europe::Berlin, 20)
        .await;
    let sequence = world
        .sequence("Onboarding", &mailboxes, three_steps(), |_| {})
        .await;
    let contacts = world.contacts(contacts).await;
    E2e {
        world,
        sequence,
        mailboxes,
        contacts,
    }
}

impl E2e {
    async fn enroll_all(&self) -> Vec<EnrollOutcome> {
        self.engine
            .enroll(self.tenant, self.sequence, &self.contacts)
            .await
            .unwrap()
    }

    async fn enrollments(&self) -> Vec<Enrollment> {
        self.world.enrollments(self.sequence).await
    }
}

#[tokio::test]
async fn a_three_step_sequence_runs_to_completion_in_order_and_in_thread() {
    let w = world(5, 2, EngineConfig::with_seed(3)).await;
    let outcomes = w.enroll_all().await;
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, EnrollOutcome::Enrolled { .. })));
    w.run_until(start() + Duration::days(6)).await;

    let attempts = w.transport.attempts();
    assert_eq!(attempts.len(), 15, "{attempts:#?}");
    for c in &w.contacts {
        let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.contact == *c).collect();
        assert_eq!(
            mine.iter().map(|a| a.step).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        // Sticky sender.
        assert!(mine.iter().all(|a| a.mailbox == mine[0].mailbox));
        // Delays.
        assert!(mine[1].at - mine[0].at >= Duration::days(1));
        assert!(mine[2].at - mine[1].at >= Duration::days(2));
        // Threading: follow-ups reply to the previous step.
        assert!(mine[0].in_reply_to.is_none());
        assert!(mine[1].in_reply_to.is_some());
        assert!(mine[0].subject.starts_with("Hello P"));
    }
    let es = w.enrollments().await;
    assert!(es.iter().all(|e| e.status() == EnrollmentStatus::Completed
        && e.steps_sent() == 3
        && e.next_due_at().is_none()));
    let stats = w.engine.stats(w.tenant, w.sequence).await.unwrap();
    assert_eq!(stats.completed, 5);
    assert_eq!(stats.sent, 15);
    assert!((stats.completion_rate - 1.0).abs() < f64::EPSILON);
    assert_eq!(stats.steps.len(), 3);
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_then_exit_when_spent() {
    let config = EngineConfig::with_seed(1).retry(RetryPolicy {
        max_attempts: 3,
        base: Duration::minutes(10),
    });
    let w = world(2, 1, config).await;
    w.transport.fail(w.contacts[0], 0, Fault::Transient, 2); // succeeds on the third try
    w.transport.fail(w.contacts[1], 0, Fault::Transient, 5); // never within 3 tries
    w.enroll_all().await;
    w.run_until(start() + Duration::days(1)).await;

    let attempts = w.transport.attempts();
    let first: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.contact == w.contacts[0] && a.step == 0)
        .collect();
    assert_eq!(
        first.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(first[1].at - first[0].at >= Duration::minutes(10));
    assert!(first[2].at - first[1].at >= Duration::minutes(20));
    assert_eq!(first[2].outcome, AttemptOutcome::Sent);
    let second: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.contact == w.contacts[1])
        .collect();
    assert_eq!(second.len(), 3);
    let es = w.enrollments().await;
    let e1 = es.iter().find(|e| e.contact == w.contacts[1]).unwrap();
    assert_eq!(e1.status(), EnrollmentStatus::Exited);
    assert_eq!(e1.exit_reason(), Some(ExitReason::Failed));
}

#[tokio::test]
async fn a_permanent_failure_bounces_the_contact_everywhere() {
    let w = world(2, 1, EngineConfig::with_seed(1)).await;
    // A second sequence the same contact is in.
    let mut other = Sequence::new(w.tenant, "Other", start()).unwrap();
    other
        .add_step(Step::new(
            Delay::new(3, DelayUnit::Hours),
            "Other",
            "Other.",
        ))
        .unwrap();
    other.set_mailbox_pool(w.mailboxes.clone()).unwrap();
    let other = w.engine.create_sequence(other).await.unwrap();
    w.engine
        .activate_sequence(w.tenant, other.id)
        .await
        .unwrap();
    w.engine
        .enroll(w.tenant, other.id, &w.contacts[..1])
        .await
        .unwrap();

    w.transport.fail(w.contacts[0], 0, Fault::Permanent, 1);
    w.enroll_all().await;
    w.run_until(start() + Duration::days(5)).await;
    let attempts = w.transport.attempts();
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a.contact == w.contacts[0])
            .count(),
        1,
        "{attempts:#?}"
    );
    let contact = w
        .engine
        .store()
        .get_contact(w.tenant, w.contacts[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.status(), ContactStatus::Bounced);
    let in_other = w
        .engine
        .store()
        .list_enrollments(w.tenant, other.id)
        .await
        .unwrap();
    assert_eq!(in_other[0].exit_reason(), Some(ExitReason::Bounced));
    // The healthy contact finished.
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a.contact == w.contacts[1])
            .count(),
        3
    );
}

#[tokio::test]
async fn replies_and_unsubscribes_stop_the_sequence() {
    let w = world(3, 1, EngineConfig::with_seed(1)).await;
    w.enroll_all().await;
    w.run_until(start() + Duration::hours(23)).await;
    assert_eq!(w.transport.attempts().len(), 3);
    w.engine.reply(w.tenant, w.contacts[0]).await.unwrap();
    w.engine.unsubscribe(w.tenant, w.contacts[1]).await.unwrap();
    // Idempotent.
    w.engine.reply(w.tenant, w.contacts[0]).await.unwrap();
    w.run_until(start() + Duration::days(6)).await;
    let attempts = w.transport.attempts();
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a.contact == w.contacts[0])
            .count(),
        1
    );
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a.contact == w.contacts[1])
            .count(),
        1
    );
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a.contact == w.contacts[2])
            .count(),
        3
    );
    let es = w.enrollments().await;
    let reason = |c: ContactId| es.iter().find(|e| e.contact == c).unwrap().exit_reason();
    assert_eq!(reason(w.contacts[0]), Some(ExitReason::Replied));
    assert_eq!(reason(w.contacts[1]), Some(ExitReason::Unsubscribed));
    // Enrolling an unsubscribed contact again is refused as suppressed.
    let again = w
        .engine
        .enroll(w.tenant, w.sequence, &w.contacts[1..2])
        .await
        .unwrap();
    assert!(
        matches!(again[0], EnrollOutcome::Suppressed { .. }),
        "{again:?}"
    );
}

#[tokio::test]
async fn an_out_of_office_reply_pauses_until_it_ends() {
    let w = world(1, 1, EngineConfig::with_seed(1)).await;
    w.enroll_all().await;
    w.run_until(start() + Duration::hours(23)).await;
    let back = start() + Duration::days(4);
    w.engine
        .out_of_office(w.tenant, w.contacts[0], back)
        .await
        .unwrap();
    w.run_until(start() + Duration::days(9)).await;
    let attempts = w.transport.attempts();
    assert_eq!(attempts.len(), 3);
    assert!(attempts[1].at >= back, "{attempts:#?}");
}

#[tokio::test]
async fn a_paused_mailbox_hands_its_enrollments_to_another() {
    let w = world(4, 2, EngineConfig::with_seed(9)).await;
    w.enroll_all().await;
    w.run_until(start() + Duration::hours(23)).await;
    let first = w.transport.attempts();
    assert_eq!(first.len(), 4);
    let paused = first[0].mailbox;
    w.engine.pause_mailbox(w.tenant, paused).await.unwrap();
    w.run_until(start() + Duration::days(6)).await;
    let after: Vec<Attempt> = w.transport.attempts().into_iter().skip(4).collect();
    assert_eq!(after.len(), 8);
    assert!(after.iter().all(|a| a.mailbox != paused));
}

#[tokio::test]
async fn a_paused_sequence_carries_on_where_it_stopped() {
    let w = world(2, 1, EngineConfig::with_seed(2)).await;
    w.enroll_all().await;
    w.run_until(start() + Duration::hours(23)).await;
    w.engine.pause_sequence(w.tenant, w.sequence).await.unwrap();
    w.run_until(start() + Duration::days(5)).await;
    assert_eq!(w.transport.attempts().len(), 2);
    let why = w
        .engine
        .why_not_sending(w.tenant, w.enrollments().await[0].id)
        .await
        .unwrap();
    assert!(why.summary.contains("SequencePaused"), "{}", why.summary);
    w.engine
        .resume_sequence(w.tenant, w.sequence)
        .await
        .unwrap();
    w.run_until(start() + Duration::days(12)).await;
    assert_eq!(w.transport.attempts().len(), 6);
}

#[tokio::test]
async fn bulk_enrollment_answers_each_row() {
    let w = world(3, 1, EngineConfig::with_seed(1)).await;
    w.enroll_all().await;
    let stranger = ContactId::from_u128(999);
    let rows = w
        .engine
        .enroll(w.tenant, w.sequence, &[w.contacts[0], stranger])
        .await
        .unwrap();
    assert!(
        matches!(rows[0], EnrollOutcome::AlreadyEnrolled { .. }),
        "{rows:?}"
    );
    assert!(matches!(rows[1], EnrollOutcome::Invalid { .. }), "{rows:?}");
    assert_eq!(w.enrollments().await.len(), 3);
}

/// An at-most-once world of one enrollment whose first send was planned, then claimed the
/// way a crashed engine would: claimed, never completed (lease: five minutes).
async fn a_claim_never_completed() -> (E2e, DateTime<Utc>, Vec<ClaimedSend>) {
    let config = EngineConfig::with_seed(1)
        .delivery(DeliverySemantics::AtMostOnce)
        .lease(Duration::minutes(5));
    let w = world(1, 1, config).await;
    w.enroll_all().await;
    w.engine.tick().await.unwrap(); // plans
    let planned_at = w.engine.next_wakeup().await.unwrap().unwrap();
    let claimed = w
        .engine
        .store()
        .claim_sends(planned_at, Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    (w, planned_at, claimed)
}

#[tokio::test]
async fn an_expired_lease_is_marked_uncertain_and_not_sent_again() {
    let (w, planned_at, claimed) = a_claim_never_completed().await;
    // Later, the lease has run out.
    w.clock.set(planned_at + Duration::minutes(10));
    let report = w.engine.tick().await.unwrap();
    assert_eq!(report.expired, 1);
    let sends = w
        .engine
        .store()
        .sends_of_enrollment(w.tenant, claimed[0].send.enrollment)
        .await
        .unwrap();
    assert_eq!(sends[0].status(), SendStatus::Uncertain);
    w.run_until(start() + Duration::days(6)).await;
    // Step 0 was never sent by the transport again; the enrollment moved on.
    let attempts = w.transport.attempts();
    assert!(attempts.iter().all(|a| a.step != 0), "{attempts:#?}");
    assert_eq!(attempts.len(), 2);
}

/// An engine that expires a lease and stops before it moves the enrollment on strands
/// nothing: the store records the uncertain send on the enrollment and leaves it due in the
/// same unit, and whichever engine plans next counts the step as sent.
#[tokio::test]
async fn a_stop_between_an_expiry_and_its_advance_strands_nothing() {
    let (w, planned_at, _) = a_claim_never_completed().await;
    let store = w.engine.store();
    // Another engine expires the lease and dies before anything else.
    let later = planned_at + Duration::minutes(6);
    assert_eq!(store.expire_leases(later, false).await.unwrap().len(), 1);
    assert_eq!(
        store.next_wakeup().await.unwrap(),
        Some(later),
        "the enrollment of an uncertain send must be due"
    );
    // A third runs on.
    w.clock.set(later);
    w.run_until(start() + Duration::days(6)).await;
    let enrollments = w.enrollments().await;
    assert_eq!(enrollments.len(), 1);
    let e = &enrollments[0];
    assert!(
        e.is_final(),
        "stranded: {:?} on step {}",
        e.status(),
        e.current_step()
    );
    assert_eq!(e.steps_sent(), 3, "the uncertain step counts as sent");
    assert!(e.uncertain_send().is_none());
    let attempts = w.transport.attempts();
    assert!(attempts.iter().all(|a| a.step != 0), "{attempts:#?}");
    assert_eq!(attempts.len(), 2);
}
