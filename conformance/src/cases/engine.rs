//! The real engine on the store under test, in virtual time, with a recording transport
//! that injects failures.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sequence_core::contact::{Contact, ContactStatus};
use sequence_core::enrollment::{EnrollmentStatus, ExitReason};
use sequence_core::ids::{ContactId, MailboxId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::send::SendStatus;
use sequence_core::sequence::{Sequence, Step};
use sequence_core::store::{EnrollOutcome, Store};
use sequence_core::time::{local_date, Delay, DelayUnit};
use sequence_scheduler::{Engine, EngineConfig, EngineError, RetryPolicy, VirtualClock};

use sequence_scheduler::testing::{Attempt, AttemptOutcome, Fault, RecordingTransport};

const LIMIT: u32 = 3;

fn start() -> DateTime<Utc> {
    // Monday 2026-03-09 00:00Z.
    Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn engine_ok<T>(what: &str, r: Result<T, EngineError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("engine end to end: {what} failed: {e}"),
    }
}

/// A full multi-step run through the engine: a three-step sequence over three mailboxes
/// (three attempts a day each, Berlin time), eight contacts, one that fails transiently
/// twice (retried with backoff, then sent), one that fails permanently (bounced everywhere,
/// also in a second sequence), one whose retries run out (exits `failed`). Checked from the
/// transport's record and the store's rows: no mailbox over its daily limit and never two
/// sends at once from one mailbox, steps in order and at most once each, delays and
/// backoff kept, sticky mailboxes, threading, rendered subjects, and every enrollment's end.
pub async fn engine_runs_a_multi_step_sequence_end_to_end<S: Store + 'static>(store: S) {
    let clock = VirtualClock::new(start());
    let transport = RecordingTransport::new(clock.clone());
    let config = EngineConfig::with_seed(7).retry(RetryPolicy {
        max_attempts: 3,
        base: Duration::minutes(10),
    });
    let engine = Engine::builder(store, transport.clone())
        .clock(clock.clone())
        .config(config)
        .build();
    let tenant = TenantId::new();
    let mut pool = Vec::new();
    for i in 0..3 {
        let m = match Mailbox::new(
            tenant,
            format!("sender{i}@fleet.example"),
            chrono_tz::Europe::Berlin,
        ) {
            Ok(m) => m.with_daily_limit(LIMIT),
            Err(e) => panic!("fixture mailbox: {e}"),
        };
        pool.push(engine_ok("create_mailbox", engine.create_mailbox(m).await));
    }
    let pool_ids: Vec<MailboxId> = pool.iter().map(|m| m.id).collect();
    let build_sequence = |name: &str, steps: Vec<Step>| {
        let mut s = match Sequence::new(tenant, name, start()) {
            Ok(s) => s,
            Err(e) => panic!("fixture sequence: {e}"),
        };
        for step in steps {
            if let Err(e) = s.add_step(step) {
                panic!("fixture step: {e}");
            }
        }
        if let Err(e) = s.set_mailbox_pool(pool_ids.clone()) {
            panic!("fixture pool: {e}");
        }
        s
    };
    let main = build_sequence(
        "Onboarding",
        vec![
            Step::new(
                Delay::ZERO,
                "Hi {{ first_name }}",
                "Hello {{ first_name }}.",
            ),
            Step::new(
                Delay::new(1, DelayUnit::Days),
                "Re: Hi {{ first_name }}",
                "Again.",
            )
            .in_thread(),
            Step::new(Delay::new(2, DelayUnit::Days), "Last note", "Bye.").in_thread(),
        ],
    );
    let other = build_sequence(
        "Other",
        vec![Step::new(Delay::new(2, DelayUnit::Days), "Other", "Other.")],
    );
    let main = engine_ok("create_sequence", engine.create_sequence(main).await);
    let other = engine_ok("create_sequence", engine.create_sequence(other).await);
    engine_ok("activate", engine.activate_sequence(tenant, main.id).await);
    engine_ok("activate", engine.activate_sequence(tenant, other.id).await);
    let people: Vec<Contact> = (0..8)
        .map(
            |i| match Contact::new(tenant, format!("person{i}@client{i}.example")) {
                Ok(c) => c.with_name(format!("P{i}"), "Doe"),
                Err(e) => panic!("fixture contact: {e}"),
            },
        )
        .collect();
    engine_ok(
        "upsert_contacts",
        engine.upsert_contacts(tenant, &people).await,
    );
    let ids: Vec<ContactId> = people.iter().map(|c| c.id).collect();
    let (retried, bounced, spent) = (ids[0], ids[1], ids[2]);
    transport.fail(retried, 1, Fault::Transient, 2);
    transport.fail(bounced, 0, Fault::Permanent, 1);
    transport.fail(spent, 2, Fault::Transient, 5);
    let answers = engine_ok("enroll", engine.enroll(tenant, main.id, &ids).await);
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, EnrollOutcome::Enrolled { .. })),
        "enroll: {answers:?}"
    );
    let answers = engine_ok(
        "enroll",
        engine.enroll(tenant, other.id, &[bounced, ids[3]]).await,
    );
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, EnrollOutcome::Enrolled { .. })),
        "enroll: {answers:?}"
    );

    // Event-driven virtual time for two weeks.
    let until = start() + Duration::days(14);
    engine_ok("run_until", engine.run_until(until).await);

    let attempts = transport.attempts();
    assert!(
        transport.overlaps().is_empty(),
        "a mailbox sent two emails at once: {:?}",
        transport.overlaps()
    );
    // Capacity per mailbox-local day.
    let mut per_day: HashMap<(MailboxId, NaiveDate), u32> = HashMap::new();
    for a in &attempts {
        *per_day
            .entry((a.mailbox, local_date(chrono_tz::Europe::Berlin, a.at)))
            .or_insert(0) += 1;
    }
    let over: Vec<_> = per_day.iter().filter(|(_, n)| **n > LIMIT).collect();
    assert!(
        over.is_empty(),
        "attempts over the daily limit of {LIMIT}: {over:?}"
    );
    let mine = |c: ContactId, seq| -> Vec<&Attempt> {
        attempts
            .iter()
            .filter(|a| a.contact == c && a.sequence == seq)
            .collect()
    };
    // Per contact in the main sequence: order, once each, delays, sticky, threading.
    for (i, c) in ids.iter().enumerate() {
        let list = mine(*c, main.id);
        assert!(!list.is_empty(), "contact {i} got nothing");
        assert!(
            list.iter().all(|a| a.mailbox == list[0].mailbox),
            "contact {i}: every attempt must come from one (sticky) mailbox"
        );
        let ok_steps: Vec<&&Attempt> = list
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::Sent)
            .collect();
        let steps: Vec<u32> = ok_steps.iter().map(|a| a.step).collect();
        let expected: Vec<u32> = (0..u32::try_from(steps.len()).unwrap_or(0)).collect();
        assert_eq!(
            steps, expected,
            "contact {i}: steps must succeed in order, each at most once"
        );
        for pair in ok_steps.windows(2) {
            let gap = pair[1].at - pair[0].at;
            let need = if pair[1].step == 1 {
                Duration::days(1)
            } else {
                Duration::days(2)
            };
            assert!(
                gap >= need,
                "contact {i}: step {} went {gap} after step {}, before its delay",
                pair[1].step,
                pair[0].step
            );
            assert_eq!(
                pair[1].in_reply_to.as_deref(),
                Some(pair[0].message_id.as_str()),
                "contact {i}: a follow-up in thread must reply to the previous step"
            );
        }
        for a in &list {
            assert!(
                a.step != 0 || a.subject == format!("Hi P{i}"),
                "contact {i}: the subject must be rendered, got {:?}",
                a.subject
            );
        }
        let mut by_step: HashMap<u32, Vec<&&Attempt>> = HashMap::new();
        for a in &list {
            by_step.entry(a.step).or_default().push(a);
        }
        for (step, tries) in &by_step {
            let numbers: Vec<u32> = tries.iter().map(|a| a.attempt).collect();
            let expected: Vec<u32> = (1..=u32::try_from(tries.len()).unwrap_or(0)).collect();
            assert_eq!(
                numbers, expected,
                "contact {i} step {step}: attempts must be numbered 1, 2, ..."
            );
            for (k, w) in tries.windows(2).enumerate() {
                let backoff = Duration::minutes(10) * (1 << k);
                assert!(
                    w[1].at - w[0].at >= backoff,
                    "contact {i} step {step}: retry {} came {} after the failure, before the backoff of {backoff}",
                    k + 2,
                    w[1].at - w[0].at
                );
            }
        }
    }
    // The transient failures: retried twice, then sent.
    let r = mine(retried, main.id);
    let step1: Vec<AttemptOutcome> = r
        .iter()
        .filter(|a| a.step == 1)
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        step1,
        vec![
            AttemptOutcome::TransientFailure,
            AttemptOutcome::TransientFailure,
            AttemptOutcome::Sent
        ],
        "the contact failing twice transiently must be retried and then sent"
    );
    // The permanent failure: one attempt, bounced everywhere.
    assert_eq!(
        attempts.iter().filter(|a| a.contact == bounced).count(),
        1,
        "a permanent failure must not be retried, nor the contact written to in any sequence"
    );
    // The retries that run out.
    let s = mine(spent, main.id);
    assert_eq!(
        s.iter().filter(|a| a.step == 2).count(),
        3,
        "a step failing transiently every time gets max_attempts (3) attempts"
    );

    let store = engine.store();
    let contact = store
        .get_contact(tenant, bounced)
        .await
        .ok()
        .flatten()
        .map(|c| c.status());
    assert_eq!(
        contact,
        Some(ContactStatus::Bounced),
        "the permanently failing contact must be bounced"
    );
    let enrollments = match store.list_enrollments(tenant, main.id).await {
        Ok(v) => v,
        Err(e) => panic!("list_enrollments: {e}"),
    };
    for e in &enrollments {
        let expected = if e.contact == bounced {
            (EnrollmentStatus::Exited, Some(ExitReason::Bounced))
        } else if e.contact == spent {
            (EnrollmentStatus::Exited, Some(ExitReason::Failed))
        } else {
            (EnrollmentStatus::Completed, None)
        };
        assert_eq!(
            (e.status(), e.exit_reason()),
            expected,
            "enrollment of contact {} must end as expected",
            e.contact
        );
        if e.status() == EnrollmentStatus::Completed {
            assert_eq!(
                e.steps_sent(),
                3,
                "a completed enrollment sent its three steps"
            );
            assert_eq!(e.next_due_at(), None, "a completed enrollment is never due");
        }
    }
    let in_other = match store.list_enrollments(tenant, other.id).await {
        Ok(v) => v,
        Err(e) => panic!("list_enrollments: {e}"),
    };
    for e in &in_other {
        let expected = if e.contact == bounced {
            Some(ExitReason::Bounced)
        } else {
            None
        };
        assert_eq!(
            e.exit_reason(),
            expected,
            "in the second sequence, the bounced contact exits and the other completes"
        );
    }
    let sends = match store.sends_of_sequence(tenant, main.id).await {
        Ok(v) => v,
        Err(e) => panic!("sends_of_sequence: {e}"),
    };
    let sent = sends
        .iter()
        .filter(|s| s.status() == SendStatus::Sent)
        .count();
    let sent_attempts = attempts
        .iter()
        .filter(|a| a.sequence == main.id && a.outcome == AttemptOutcome::Sent)
        .count();
    assert_eq!(
        sent, sent_attempts,
        "the store must hold one sent row per accepted attempt"
    );
    assert!(
        sends.iter().all(|s| s.status().is_final()),
        "at the end no send is left planned, sending or waiting for a retry: {:?}",
        sends
            .iter()
            .filter(|s| !s.status().is_final())
            .map(|s| (s.step, s.status()))
            .collect::<Vec<_>>()
    );
    let stats = engine_ok("stats", engine.stats(tenant, main.id).await);
    assert_eq!(
        (stats.completed, stats.enrolled),
        (6, 8),
        "six of eight enrollments complete"
    );
}
