//! Every state transition of the domain and every refusal.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sequence_core::prelude::*;
use sequence_core::send::{message_id, TrackingKind};
use sequence_core::TransitionError;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::from_u128(1)
}

fn step() -> Step {
    Step::new(Delay::ZERO, "Hi {{ first_name }}", "Hello")
}

fn active_sequence() -> Sequence {
    let mut s = Sequence::new(tenant(), "Welcome", now()).unwrap();
    s.add_step(step()).unwrap();
    s.set_mailbox_pool(vec![MailboxId::from_u128(1)]).unwrap();
    s.activate().unwrap();
    s
}

fn is_status_error(e: &TransitionError) -> bool {
    matches!(e, TransitionError::InvalidStatus { .. })
}

#[test]
fn sequence_lifecycle_draft_active_paused_archived() {
    let mut s = Sequence::new(tenant(), "Welcome", now()).unwrap();
    assert_eq!(s.status(), SequenceStatus::Draft);
    let v0 = s.version();
    assert_eq!(s.add_step(step()).unwrap(), 0);
    assert_eq!(s.add_step(step()).unwrap(), 1);
    assert!(s.version() > v0);
    s.set_mailbox_pool(vec![MailboxId::from_u128(1)]).unwrap();
    s.activate().unwrap();
    assert_eq!(s.status(), SequenceStatus::Active);
    assert!(is_status_error(&s.activate().unwrap_err()));
    assert!(is_status_error(&s.resume().unwrap_err()));
    s.pause().unwrap();
    assert!(is_status_error(&s.pause().unwrap_err()));
    s.resume().unwrap();
    s.archive().unwrap();
    assert!(is_status_error(&s.archive().unwrap_err()));
    assert!(is_status_error(&s.pause().unwrap_err()));
    let events = s.drain_events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            DomainEvent::SequenceCreated { .. } => "created",
            DomainEvent::StepAdded { .. } => "step",
            DomainEvent::SequenceActivated { .. } => "activated",
            DomainEvent::SequencePaused { .. } => "paused",
            DomainEvent::SequenceResumed { .. } => "resumed",
            DomainEvent::SequenceArchived { .. } => "archived",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "step",
            "step",
            "activated",
            "paused",
            "resumed",
            "archived"
        ]
    );
    assert!(s.drain_events().is_empty());
}

#[test]
fn activation_needs_steps_and_mailboxes() {
    let mut s = Sequence::new(tenant(), "Empty", now()).unwrap();
    let err = s.activate().unwrap_err();
    assert!(
        matches!(&err, TransitionError::Invariant { field, .. } if field == "steps"),
        "{err}"
    );
    s.add_step(step()).unwrap();
    let err = s.activate().unwrap_err();
    assert!(
        matches!(&err, TransitionError::Invariant { field, .. } if field == "mailbox_pool"),
        "{err}"
    );
}

#[test]
fn steps_are_edited_only_in_draft_and_stay_contiguous() {
    let mut s = Sequence::new(tenant(), "Edit", now()).unwrap();
    for _ in 0..3 {
        s.add_step(step()).unwrap();
    }
    s.remove_step(1).unwrap();
    assert_eq!(
        s.steps().iter().map(|st| st.order).collect::<Vec<_>>(),
        vec![0, 1]
    );
    s.update_step(1, step().with_name("second")).unwrap();
    assert_eq!(s.step(1).unwrap().name, "second");
    assert!(s.update_step(5, step()).is_err());
    assert!(s.remove_step(5).is_err());
    s.set_mailbox_pool(vec![MailboxId::from_u128(1)]).unwrap();
    s.activate().unwrap();
    assert!(is_status_error(&s.add_step(step()).unwrap_err()));
    assert!(is_status_error(&s.update_step(0, step()).unwrap_err()));
    assert!(is_status_error(&s.remove_step(0).unwrap_err()));
}

#[test]
fn mailbox_pool_refuses_duplicates() {
    let mut s = Sequence::new(tenant(), "Pool", now()).unwrap();
    let m = MailboxId::from_u128(1);
    let err = s.set_mailbox_pool(vec![m, m]).unwrap_err();
    assert!(
        matches!(&err, TransitionError::Invariant { field, .. } if field == "mailbox_pool[1]"),
        "{err}"
    );
}

#[test]
fn clone_as_draft_has_new_identity_and_same_steps() {
    let s = active_sequence();
    let copy = s.clone_as_draft("Copy", now()).unwrap();
    assert_ne!(copy.id, s.id);
    assert_eq!(copy.status(), SequenceStatus::Draft);
    assert_eq!(copy.steps(), s.steps());
    assert_eq!(copy.mailbox_pool, s.mailbox_pool);
    assert_eq!(copy.name, "Copy");
}

#[test]
fn variants_are_chosen_by_weight() {
    let st = step().with_variant(Variant {
        name: "B".into(),
        weight: 3,
        subject: "B subject".into(),
        body: "B".into(),
        html_body: None,
    });
    assert_eq!(st.variant_count(), 2);
    // Weights 1 (A) and 3 (B): draws 0 -> A, 1..=3 -> B.
    assert_eq!(st.choose_variant(0), 0);
    assert_eq!(st.choose_variant(1), 1);
    assert_eq!(st.choose_variant(3), 1);
    assert_eq!(st.choose_variant(4), 0);
    assert_eq!(st.content(1).0, "B subject");
    assert_eq!(st.content(0).0, "Hi {{ first_name }}");
    let share_b = (0..4000u64)
        .filter(|d| st.choose_variant(d.wrapping_mul(0x9E37_79B9_7F4A_7C15)) == 1)
        .count();
    assert!((2700..3300).contains(&share_b), "{share_b}");
}

fn enrollment() -> Enrollment {
    Enrollment::new(
        tenant(),
        SequenceId::from_u128(1),
        ContactId::from_u128(1),
        now(),
        now(),
    )
}

#[test]
fn enrollment_moves_through_its_steps_and_completes() {
    let mut e = enrollment();
    assert_eq!(e.next_due_at(), Some(now()));
    e.mark_planned().unwrap();
    assert_eq!(e.next_due_at(), None);
    // Planned, not attempted: not sticky yet (a planned send taken back pins nothing).
    assert_eq!(e.mailbox(), None);
    e.release_planned(now()).unwrap();
    assert_eq!(e.mailbox(), None);
    e.mark_planned().unwrap();
    e.attempted_on(MailboxId::from_u128(7));
    assert_eq!(e.mailbox(), Some(MailboxId::from_u128(7)));
    let next = now() + Duration::days(2);
    let events = e.step_sent(0, now(), "a@x".into(), Some(next)).unwrap();
    assert!(matches!(
        events[0],
        DomainEvent::EnrollmentAdvanced { step: 1, .. }
    ));
    assert_eq!(e.current_step(), 1);
    assert_eq!(e.next_due_at(), Some(next));
    // Wrong step: refused.
    assert!(e.step_sent(0, now(), "b@x".into(), None).is_err());
    let events = e.step_sent(1, next, "b@x".into(), None).unwrap();
    assert!(events
        .iter()
        .any(|ev| matches!(ev, DomainEvent::EnrollmentCompleted { .. })));
    assert_eq!(e.status(), EnrollmentStatus::Completed);
    assert_eq!(e.next_due_at(), None);
    assert_eq!(
        e.thread_message_ids(),
        vec!["a@x".to_owned(), "b@x".to_owned()]
    );
    // No double completion, no exit after completion.
    assert!(e.step_sent(2, next, "c@x".into(), None).is_err());
    assert!(is_status_error(
        &e.exit(ExitReason::Manual, now()).unwrap_err()
    ));
}

#[test]
fn enrollment_pause_resume_exit() {
    let mut e = enrollment();
    let until = now() + Duration::days(3);
    e.pause(Some(until)).unwrap();
    assert_eq!(e.status(), EnrollmentStatus::Paused);
    assert_eq!(e.next_due_at(), Some(until));
    assert!(is_status_error(&e.pause(None).unwrap_err()));
    assert!(is_status_error(
        &e.defer(Deferral {
            reason: DeferralReason::NoCapacity,
            not_before: None
        })
        .unwrap_err()
    ));
    e.resume(until).unwrap();
    assert_eq!(e.next_due_at(), Some(until));
    assert!(is_status_error(&e.resume(until).unwrap_err()));
    e.pause(None).unwrap();
    e.exit(ExitReason::Replied, now()).unwrap();
    assert_eq!(e.exit_reason(), Some(ExitReason::Replied));
    assert_eq!(e.next_due_at(), None);
    assert!(is_status_error(
        &e.exit(ExitReason::Manual, now()).unwrap_err()
    ));
    assert!(e.retry_at(now()).is_err());
}

#[test]
fn deferral_never_moves_before_the_due_time_and_can_park() {
    let mut e = enrollment();
    let later = now() + Duration::hours(5);
    e.defer(Deferral {
        reason: DeferralReason::NoCapacity,
        not_before: Some(later),
    })
    .unwrap();
    assert_eq!(e.next_due_at(), Some(later));
    e.defer(Deferral {
        reason: DeferralReason::SequencePaused,
        not_before: None,
    })
    .unwrap();
    assert_eq!(e.next_due_at(), None, "parked until woken");
    assert!(e.wake(later));
    assert_eq!(e.next_due_at(), Some(later));
    assert!(!e.wake(later), "nothing to wake twice");
    e.retry_at(later + Duration::minutes(10)).unwrap();
    assert_eq!(e.due_at(), Some(later + Duration::minutes(10)));
    e.defer(Deferral {
        reason: DeferralReason::NoCapacity,
        not_before: Some(now()),
    })
    .unwrap();
    assert_eq!(
        e.next_due_at(),
        Some(later + Duration::minutes(10)),
        "never before the backoff"
    );
}

#[test]
fn current_step_only_grows_and_skips_count_as_done() {
    let mut e = enrollment();
    e.skip_step(0, now(), Some(now() + Duration::days(1)))
        .unwrap();
    assert_eq!(e.current_step(), 1);
    assert_eq!(e.steps_sent(), 0);
    assert!(e.skip_step(0, now(), None).is_err());
    e.skip_step(1, now(), None).unwrap();
    assert_eq!(e.status(), EnrollmentStatus::Completed);
}

fn send() -> ScheduledSend {
    ScheduledSend::planned(
        tenant(),
        EnrollmentId::from_u128(1),
        SequenceId::from_u128(1),
        ContactId::from_u128(1),
        0,
        MailboxId::from_u128(1),
        now(),
        NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(),
        message_id(EnrollmentId::from_u128(1), 0, "a@sender.example"),
        0,
    )
}

fn lease(attempt: u32) -> Lease {
    Lease {
        token: Uuid::from_u128(attempt.into()),
        attempt,
        until: now() + Duration::minutes(5),
    }
}

#[test]
fn send_claim_complete_and_lease_checks() {
    let mut s = send();
    assert!(s.message_id.ends_with("@sender.example"));
    assert!(s.claim(lease(2)).is_err(), "attempt must be the next one");
    s.claim(lease(1)).unwrap();
    assert_eq!(s.status(), SendStatus::Sending);
    assert!(s.claim(lease(1)).is_err(), "no double claim");
    let foreign = Lease {
        token: Uuid::from_u128(99),
        ..lease(1)
    };
    assert!(s.mark_sent(&foreign, now()).is_err(), "lease lost");
    s.mark_failed(&lease(1), "421".into(), true).unwrap();
    assert_eq!(s.status(), SendStatus::RetryWait);
    s.replan(
        MailboxId::from_u128(1),
        now() + Duration::minutes(10),
        s.local_date(),
    )
    .unwrap();
    s.claim(lease(2)).unwrap();
    s.mark_sent(&lease(2), now()).unwrap();
    assert_eq!(s.status(), SendStatus::Sent);
    assert_eq!(s.attempts(), 2);
    assert!(s.cancel("late").is_err());
    assert!(s.mark(TrackingKind::Open, now()));
    assert!(!s.mark(TrackingKind::Open, now() + Duration::hours(1)));
    assert_eq!(s.opened_at(), Some(now()));
}

#[test]
fn release_uncertain_and_cancel() {
    let mut s = send();
    s.claim(lease(1)).unwrap();
    s.release(&lease(1), now() + Duration::minutes(1)).unwrap();
    assert_eq!(s.status(), SendStatus::Planned);
    assert_eq!(s.attempts(), 0, "a release is not an attempt");
    s.claim(lease(1)).unwrap();
    assert!(s.mark_uncertain(now()).is_err(), "lease still valid");
    s.mark_uncertain(now() + Duration::minutes(6)).unwrap();
    assert_eq!(s.status(), SendStatus::Uncertain);
    assert!(s.status().is_final());
    let mut t = send();
    t.cancel("reply").unwrap();
    assert_eq!(t.status(), SendStatus::Cancelled);
    assert!(t.cancel("again").is_err());
}

#[test]
fn mailbox_status_and_limits() {
    let mut m = Mailbox::new(tenant(), "ana@sender.example", chrono_tz::America::New_York)
        .unwrap()
        .with_daily_limit(40)
        .with_warmup(WarmUp {
            start: 5,
            increment: 5,
            since: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        })
        .with_holidays(HolidayCalendar::new([
            NaiveDate::from_ymd_opt(2026, 3, 4).unwrap()
        ]));
    assert_eq!(m.limit_on(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()), 5);
    assert_eq!(m.limit_on(NaiveDate::from_ymd_opt(2026, 3, 3).unwrap()), 15);
    assert_eq!(
        m.limit_on(NaiveDate::from_ymd_opt(2026, 3, 4).unwrap()),
        0,
        "holiday"
    );
    assert_eq!(
        m.limit_on(NaiveDate::from_ymd_opt(2026, 4, 1).unwrap()),
        40,
        "capped"
    );
    assert!(m.resume().is_err());
    m.pause().unwrap();
    assert!(!m.is_active());
    assert!(m.pause().is_err());
    m.suspend("535").unwrap();
    assert_eq!(m.status(), MailboxStatus::Suspended);
    m.resume().unwrap();
    assert!(m.is_active());
    assert_eq!(m.version(), 3);
}

#[test]
fn contact_suppression_and_activity() {
    let mut c = Contact::new(tenant(), "Bo@Acme.Example")
        .unwrap()
        .with_tag("VIP");
    assert!(c.has_tag("vip"));
    assert_eq!(c.email_domain(), "acme.example");
    c.record_activity(now());
    c.record_activity(now() - Duration::hours(1));
    assert_eq!(c.last_activity_at(), Some(now()));
    c.mark_bounced();
    assert_eq!(c.status(), ContactStatus::Bounced);
    assert!(c.ensure_sendable("enroll").is_err());
    c.mark_unsubscribed();
    assert_eq!(c.status(), ContactStatus::Unsubscribed);
    c.mark_bounced();
    assert_eq!(c.status(), ContactStatus::Unsubscribed, "unsubscribe wins");
}

#[test]
fn domain_types_round_trip_through_serde() {
    let s = active_sequence();
    let json = serde_json::to_string(&s).unwrap();
    let back: Sequence = serde_json::from_str(&json).unwrap();
    assert_eq!(back.steps(), s.steps());
    assert_eq!(back.status(), SequenceStatus::Active);
    let e = enrollment();
    let back: Enrollment = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
    assert_eq!(back, e);
    let snd = send();
    let back: ScheduledSend = serde_json::from_str(&serde_json::to_string(&snd).unwrap()).unwrap();
    assert_eq!(back, snd);
    let ev = DomainEvent::EnrollmentExited {
        enrollment: e.id,
        reason: ExitReason::ConditionNotMet,
    };
    let json = serde_json::to_string(&ev).unwrap();
    assert!(
        json.contains("\"type\":\"enrollment_exited\"") && json.contains("condition_not_met"),
        "{json}"
    );
}

#[test]
fn send_errors_answer_retry_and_fault() {
    let e = SendError::transient(FailureCategory::RateLimited, "slow down")
        .with_codes(Some(421), Some("4.7.0".into()));
    assert!(e.is_transient() && e.is_mailbox_fault() && !e.is_contact_fault());
    assert_eq!(e.code(), Some(421));
    assert_eq!(e.enhanced_code(), Some("4.7.0"));
    let p = SendError::permanent(FailureCategory::InvalidRecipient, "no such user");
    assert!(p.is_permanent() && p.is_contact_fault());
    let auth = SendError::permanent(FailureCategory::AuthFailure, "535");
    assert!(auth.is_mailbox_fault() && !auth.is_contact_fault());
    assert!(p.to_string().contains("permanent"));
}

/// A server's answer is untrusted text: kept as a readable line (no NUL, no line breaks,
/// bounded), so that recording a failure never fails on a store that refuses such text.
#[test]
fn a_failure_keeps_the_servers_answer_as_one_bounded_line() {
    let mut s = send();
    s.claim(lease(1)).unwrap();
    let answer = format!("550 5.1.1 no\0such\r\nuser {}", "x".repeat(10_000));
    s.mark_failed(&lease(1), answer, false).unwrap();
    let kept = s.last_error().unwrap();
    assert!(kept.starts_with("550 5.1.1 no such user"), "{kept:?}");
    assert!(!kept.chars().any(char::is_control), "{kept:?}");
    assert!(
        kept.chars().count() <= 1_000,
        "{} characters",
        kept.chars().count()
    );
}
