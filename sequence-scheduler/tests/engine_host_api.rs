//! The host API a team meets on its first day: contact import with an answer per row, a
//! contact's history, a mailbox's use for dashboards, sequence copies, out-of-office and
//! bounce kinds, and virtual time without a hand-written loop.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

mod support;

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use sequence_core::prelude::*;
use sequence_core::store::EnrollOutcome;
use sequence_scheduler::{EngineConfig, EngineError};
use support::{start, three_steps, World};

#[tokio::test]
async fn import_answers_every_row_and_stores_the_valid_ones() {
    let w = World::new(EngineConfig::with_seed(1));
    // A contact already known and unsubscribed: a re-import must not make it sendable.
    let known = w.contacts(1).await[0];
    w.engine.unsubscribe(w.tenant, known).await.unwrap();

    let rows = vec![
        ContactRow::new("ann@acme.example")
            .with_name("Ann", "Lee")
            .with_timezone("Europe/Berlin")
            .with_tag("vip"),
        ContactRow::new("not an address").with_timezone("Mars/Base"),
        ContactRow::new("P0@Client.example").with_company("Client Inc"),
        ContactRow::new("ANN@acme.example").with_company("Acme"),
    ];
    let answers = w.engine.import_contacts(w.tenant, &rows).await.unwrap();
    assert_eq!(answers.len(), 4, "one answer per row: {answers:?}");

    let ImportOutcome::Created { contact: ann } = answers[0] else {
        panic!("a new address is created: {answers:?}");
    };
    let ImportOutcome::Invalid { problems } = &answers[1] else {
        panic!("a bad row is invalid: {answers:?}");
    };
    let mut paths: Vec<&str> = problems.problems.iter().map(|p| p.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["email", "timezone"],
        "every problem, with its field"
    );
    assert_eq!(
        answers[2],
        ImportOutcome::Updated { contact: known },
        "a known address (any case) updates that contact"
    );
    assert_eq!(
        answers[3],
        ImportOutcome::Updated { contact: ann },
        "a second row of one address is the same contact"
    );

    let store = w.engine.store();
    let ann_row = store.get_contact(w.tenant, ann).await.unwrap().unwrap();
    assert_eq!(ann_row.timezone, Some(chrono_tz::Europe::Berlin));
    assert_eq!(
        ann_row.company.as_deref(),
        Some("Acme"),
        "the later row wins"
    );
    assert!(ann_row.has_tag("vip"), "{ann_row:?}");
    let known_row = store.get_contact(w.tenant, known).await.unwrap().unwrap();
    assert_eq!(known_row.company.as_deref(), Some("Client Inc"));
    assert_eq!(
        known_row.status(),
        ContactStatus::Unsubscribed,
        "an import never lifts a suppression"
    );
    assert!(store
        .find_contact_by_email(w.tenant, "not an address")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_contacts_history_lists_every_enrollment_and_unknown_contacts_are_not_found() {
    let w = World::new(EngineConfig::with_seed(2));
    let pool = w.mailboxes(1, chrono_tz::UTC, 50).await;
    let first = w.sequence("First", &pool, three_steps(), |_| {}).await;
    let second = w.sequence("Second", &pool, three_steps(), |_| {}).await;
    let people = w.contacts(1).await;
    w.enroll(first, &people).await;
    w.run_for(Duration::hours(1)).await;
    w.engine.reply(w.tenant, people[0]).await.unwrap();
    w.run_for(Duration::hours(1)).await;
    let answers = w.enroll(second, &people).await;
    assert!(
        matches!(answers[0], EnrollOutcome::Suppressed { .. }),
        "a contact who replied is not enrolled again in sequences that exit on reply"
    );
    let history = w
        .engine
        .enrollments_of_contact(w.tenant, people[0])
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].sequence, first);
    assert_eq!(history[0].exit_reason(), Some(ExitReason::Replied));

    let unknown = w
        .engine
        .enrollments_of_contact(w.tenant, ContactId::new())
        .await;
    assert!(matches!(unknown, Err(EngineError::NotFound { .. })));
}

#[tokio::test]
async fn mailbox_use_counts_the_local_day_and_week_and_names_the_next_opening() {
    let w = World::new(EngineConfig::with_seed(3));
    let hours = SendWindow::new(
        WeekdaySet::WEEKDAYS,
        "09:00".parse().unwrap(),
        "17:00".parse().unwrap(),
    )
    .unwrap();
    let ny = Mailbox::new(w.tenant, "ana@sender.example", chrono_tz::America::New_York)
        .unwrap()
        .with_daily_limit(4)
        .with_schedule(WeeklySchedule::windows(vec![hours]));
    let ny = w.engine.create_mailbox(ny).await.unwrap();
    let seq = w.sequence("Use", &[ny.id], three_steps(), |_| {}).await;
    let people = w.contacts(6).await;
    w.enroll(seq, &people).await;

    // Tuesday 2026-03-10 20:00Z is 16:00 in New York (EDT): the day's sends are made.
    let tuesday_evening = Utc.with_ymd_and_hms(2026, 3, 10, 20, 0, 0).unwrap();
    w.run_until(tuesday_evening).await;
    let usage = w.engine.mailbox_usage(w.tenant, ny.id).await.unwrap();
    let tuesday = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
    let sent_on = |day: NaiveDate| {
        w.transport
            .attempts()
            .iter()
            .filter(|a| {
                a.at.with_timezone(&chrono_tz::America::New_York)
                    .date_naive()
                    == day
            })
            .count() as u32
    };
    assert_eq!(usage.today.date, tuesday);
    assert_eq!(usage.limit_today, 4);
    assert_eq!(usage.today.attempts, sent_on(tuesday));
    assert!(usage.today.used >= usage.today.attempts && usage.today.used <= 4);
    assert_eq!(usage.left_today(), 4 - usage.today.used);
    assert_eq!(usage.week.len(), 7);
    assert_eq!(usage.week[0].date.weekday(), chrono::Weekday::Mon);
    let monday = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    assert_eq!(usage.week[0].attempts, sent_on(monday));
    assert_eq!(
        usage.attempts_this_week(),
        w.transport.attempts().len() as u32,
        "every attempt so far falls in this week"
    );
    assert!(usage.open_now, "16:00 on a Tuesday is inside 09:00-17:00");
    assert_eq!(usage.next_opening, Some(tuesday_evening));

    // After hours: closed, and the next opening is Wednesday 09:00 EDT.
    w.run_until(tuesday_evening + Duration::hours(2)).await;
    let usage = w.engine.mailbox_usage(w.tenant, ny.id).await.unwrap();
    assert!(!usage.open_now);
    assert_eq!(
        usage.next_opening,
        Some(Utc.with_ymd_and_hms(2026, 3, 11, 13, 0, 0).unwrap())
    );
}

#[tokio::test]
async fn a_sequence_copy_is_a_draft_with_the_same_steps_and_no_enrollments() {
    let w = World::new(EngineConfig::with_seed(4));
    let pool = w.mailboxes(2, chrono_tz::UTC, 50).await;
    let original = w
        .sequence("Original", &pool, three_steps(), |s| s.track_opens = true)
        .await;
    let people = w.contacts(3).await;
    w.enroll(original, &people).await;
    w.run_for(Duration::hours(2)).await;

    let copy = w
        .engine
        .clone_sequence(w.tenant, original, "Original (copy)")
        .await
        .unwrap();
    assert_ne!(copy.id, original);
    assert_eq!(copy.status(), SequenceStatus::Draft);
    assert_eq!(copy.name, "Original (copy)");
    assert!(copy.track_opens);
    let stored = w
        .engine
        .store()
        .get_sequence(w.tenant, original)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(copy.steps(), stored.steps());
    assert_eq!(copy.mailbox_pool, stored.mailbox_pool);
    assert_eq!(
        stored.status(),
        SequenceStatus::Active,
        "the original is untouched"
    );
    assert!(w.enrollments(copy.id).await.is_empty());
    assert_eq!(w.enrollments(original).await.len(), 3);
    // The copy lives on its own: it activates and enrolls.
    w.engine.activate_sequence(w.tenant, copy.id).await.unwrap();
    let answers = w.enroll(copy.id, &people[..1]).await;
    assert!(matches!(answers[0], EnrollOutcome::Enrolled { .. }));

    let bad = w.engine.clone_sequence(w.tenant, original, "").await;
    assert!(matches!(bad, Err(EngineError::Invalid(_))), "{bad:?}");
}

#[tokio::test]
async fn out_of_office_pauses_and_a_soft_bounce_is_not_a_hard_one() {
    let w = World::new(EngineConfig::with_seed(5));
    let pool = w.mailboxes(1, chrono_tz::UTC, 50).await;
    let seq = w.sequence("Signals", &pool, three_steps(), |_| {}).await;
    let people = w.contacts(3).await;
    w.enroll(seq, &people).await;
    w.run_for(Duration::hours(1)).await;

    let back = start() + Duration::days(5);
    w.engine
        .out_of_office(w.tenant, people[0], back)
        .await
        .unwrap();
    w.engine
        .bounce(w.tenant, people[1], BounceKind::Soft)
        .await
        .unwrap();
    let bounced_at = w.clock.now();
    w.engine
        .bounce(w.tenant, people[2], BounceKind::Hard)
        .await
        .unwrap();
    w.run_until(start() + Duration::days(10)).await;

    let store = w.engine.store();
    let status = |i: usize| {
        let id = people[i];
        async move {
            store
                .get_contact(w.tenant, id)
                .await
                .unwrap()
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        status(0).await,
        ContactStatus::Active,
        "out-of-office is not a reply"
    );
    assert_eq!(
        status(1).await,
        ContactStatus::Active,
        "a soft bounce keeps the contact"
    );
    assert_eq!(status(2).await, ContactStatus::Bounced);
    let attempts = w.transport.attempts();
    let of = |i: usize| attempts.iter().filter(|a| a.contact == people[i]).count();
    assert_eq!(
        of(0),
        3,
        "the out-of-office contact goes on after it is back"
    );
    assert!(
        attempts
            .iter()
            .filter(|a| a.contact == people[0] && a.step == 1)
            .all(|a| a.at >= back),
        "nothing goes to the contact while away"
    );
    assert_eq!(of(1), 3, "one soft bounce leaves the retry budget");
    assert!(
        attempts
            .iter()
            .filter(|a| a.contact == people[2])
            .all(|a| a.at <= bounced_at && a.step == 0),
        "a hard bounce stops everything: {attempts:#?}"
    );
}

#[tokio::test]
async fn run_until_adds_up_the_ticks_and_leaves_the_clock_at_the_end() {
    let w = World::new(EngineConfig::with_seed(6));
    let pool = w.mailboxes(1, chrono_tz::UTC, 50).await;
    let seq = w.sequence("Run", &pool, three_steps(), |_| {}).await;
    let people = w.contacts(4).await;
    w.enroll(seq, &people).await;
    let end = start() + Duration::days(7);
    let report = w.engine.run_until(end).await.unwrap();
    assert_eq!(report.sent, 12);
    assert_eq!(report.completed, 4);
    assert_eq!(w.clock.now(), end);
    assert_eq!(w.transport.attempts().len(), 12);
    // Nothing is left: a second call sends nothing and ends at its own end.
    let again = w.engine.run_until(end + Duration::days(1)).await.unwrap();
    assert_eq!(again.sent, 0);
    assert_eq!(w.clock.now(), end + Duration::days(1));
}

/// `run` records each tick for a host's health check, and `wake` makes it tick at once
/// instead of at the end of its sleep (here an hour).
#[tokio::test]
async fn run_records_its_latest_tick_and_wakes_on_demand() {
    let w = World::new(EngineConfig::with_seed(1).poll_interval(Duration::hours(1)));
    assert!(w.engine.last_run_tick().is_none());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let engine = w.engine.clone();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    let first = loop {
        if let Some(t) = w.engine.last_run_tick() {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert_eq!(first.error, None);
    w.engine.wake();
    let woken = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match w.engine.last_run_tick() {
                Some(t) if t.ended_at > first.ended_at => break t,
                _ => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("a woken run ticks again long before its hour of sleep is over");
    assert_eq!(woken.error, None);
    stop.send(()).unwrap();
    running.await.unwrap();
}
