//! Backlogs larger than the mailboxes can serve on the memory store: pool waits and mailbox
//! waits holding them instead of a deferral per enrollment, due reads bounded by the room
//! of pools and mailboxes, and the backlog going out day after day.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

mod support;

use chrono::Duration;
use sequence_core::prelude::*;
use sequence_scheduler::EngineConfig;
use support::{one_mailbox, start, Features};

/// A two-step sequence on the mailbox of `w`, and `n` contacts whose first step went out
/// from it: their follow-ups are due at the start.
async fn follow_ups_due(w: &Features, n: usize) -> SequenceId {
    let steps = vec![
        Step::new(Delay::ZERO, "Hello", "Hi!"),
        Step::new(Delay::new(1, DelayUnit::Days), "Again", "Hi again"),
    ];
    let seq = w
        .world
        .sequence("Follow-ups", &[w.mailbox], steps, |_| {})
        .await;
    let rows: Vec<Enrollment> = w
        .contacts(n)
        .await
        .iter()
        .map(|c| {
            Enrollment::new(w.tenant, seq, *c, start(), start()).with_progress(1, Some(w.mailbox))
        })
        .collect();
    let store = w.engine.store();
    store.enroll(w.tenant, start(), rows).await.unwrap();
    seq
}

/// The engine's settings with `seed`, planning each day whole (no horizon): the waits these
/// tests look at are those of a full day.
fn whole_day(seed: u64) -> EngineConfig {
    let mut config = EngineConfig::with_seed(seed);
    config.planner = config.planner.with_horizon(None);
    config
}

/// A full pool's backlog waits on one pool wait of its sequence, not on a deferral written
/// per enrollment, and goes out day after day as the pool opens again.
#[tokio::test]
async fn a_full_pools_backlog_waits_on_one_pool_wait_and_drains_day_by_day() {
    let w = one_mailbox(whole_day(9), 2).await;
    let seq = w.sequence("Backlog", |_| {}).await;
    let cs = w.contacts(5).await;
    w.engine.enroll(w.tenant, seq, &cs).await.unwrap();
    let report = w.engine.tick().await.unwrap();
    // Held: those of the backlog the tick read (no further than the pool's room allows);
    // the wait holds the others, unread.
    assert_eq!((report.planned, report.deferred), (2, 0), "{report:?}");
    assert!(report.held <= 3, "{report:?}");
    let store = w.engine.store();
    let tomorrow = start() + Duration::days(1);
    let wait = store.pool_wait(w.tenant, seq, start()).await.unwrap();
    assert_eq!(wait.map(|x| x.until), Some(tomorrow));
    let waiting: Vec<Enrollment> = store
        .list_enrollments(w.tenant, seq)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.next_due_at().is_some())
        .collect();
    assert_eq!(waiting.len(), 3);
    assert!(
        waiting.iter().all(|e| e.deferral().is_none()),
        "nothing is written per enrollment: {waiting:?}"
    );
    assert!(store.due_enrollments(start(), 10).await.unwrap().is_empty());
    // Two a day: 2, 4, then all 5.
    for (day, sent) in [(0, 2), (1, 4), (2, 5)] {
        w.run_until(start() + Duration::days(day) + Duration::hours(23))
            .await;
        let stats = w.engine.stats(w.tenant, seq).await.unwrap();
        assert_eq!(stats.sent, sent, "day {day}");
    }
}

/// A backlog far larger than its pool's room is read no further than the room allows: the
/// tick plans what fits, the pool's wait holds the rest (read or not), and "why isn't it
/// sending?" names the wait for an enrollment the tick never read.
#[tokio::test]
async fn a_backlog_is_read_no_further_than_its_pools_room() {
    let w = one_mailbox(whole_day(9), 2).await;
    let seq = w.sequence("Backlog", |_| {}).await;
    let cs = w.contacts(200).await;
    w.engine.enroll(w.tenant, seq, &cs).await.unwrap();
    let report = w.engine.tick().await.unwrap();
    assert_eq!((report.planned, report.deferred), (2, 0), "{report:?}");
    assert!(
        report.planned + report.held < 20,
        "a pool with room for 2 read {} of a backlog of 200: {report:?}",
        report.planned + report.held
    );
    let store = w.engine.store();
    assert!(
        store
            .due_enrollments(start(), 1_000)
            .await
            .unwrap()
            .is_empty(),
        "the wait holds the unread backlog too"
    );
    let last = store
        .list_enrollments(w.tenant, seq)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.next_due_at().is_some())
        .max_by_key(|e| (e.next_due_at(), e.id))
        .unwrap();
    let why = w.engine.why_not_sending(w.tenant, last.id).await.unwrap();
    assert_eq!(why.pool_wait, Some(start() + Duration::days(1)), "{why:?}");
    // Day after day, the pool sends its two.
    for (day, sent) in [(0, 2), (1, 4), (2, 6)] {
        w.run_until(start() + Duration::days(day) + Duration::hours(23))
            .await;
        let stats = w.engine.stats(w.tenant, seq).await.unwrap();
        assert_eq!(stats.sent, sent, "day {day}");
    }
}

/// A bounded read that meets only enrollments the plan defers for their own reasons (the
/// contact's hours) leaves the pool room: the same tick reads on and fills the pool from
/// the enrollments behind them, instead of leaving the room idle until the next tick.
#[tokio::test]
async fn a_bounded_read_reads_on_while_its_pool_has_room() {
    let w = one_mailbox(EngineConfig::with_seed(9), 10).await;
    let weekends = WeekdaySet::from_days(&[chrono::Weekday::Sat, chrono::Weekday::Sun]);
    let hours =
        SendWindow::new(weekends, "09:00".parse().unwrap(), "17:00".parse().unwrap()).unwrap();
    let seq = w
        .sequence("Weekends", |s| {
            s.recipient_windows = Some(WeeklySchedule::windows(vec![hours]));
        })
        .await;
    // Monday 00:00Z: Monday 09:00 in Tokyo (outside the contacts' weekend hours until
    // Saturday), Sunday 14:00 in Honolulu (inside until 03:00Z). The Tokyo contacts come
    // first, more of them than the pool's room (10) and its read bound.
    let people = |zone: chrono_tz::Tz, from: u128, n: u128| -> Vec<Contact> {
        (from..from + n)
            .map(|i| {
                Contact::new(w.tenant, format!("p{i}@client{i}.example"))
                    .unwrap()
                    .with_id(ContactId::from_u128(i))
                    .with_timezone(zone)
            })
            .collect()
    };
    let tokyo = people(chrono_tz::Asia::Tokyo, 1, 15);
    let honolulu = people(chrono_tz::Pacific::Honolulu, 100, 20);
    for (k, group) in [&tokyo, &honolulu].into_iter().enumerate() {
        w.clock.set(start() + Duration::seconds(k as i64));
        w.engine.upsert_contacts(w.tenant, group).await.unwrap();
        let ids: Vec<ContactId> = group.iter().map(|c| c.id).collect();
        w.engine.enroll(w.tenant, seq, &ids).await.unwrap();
    }
    w.clock.set(start() + Duration::seconds(5));
    let report = w.engine.tick().await.unwrap();
    assert_eq!(
        report.planned, 10,
        "the pool is filled in one tick: {report:?}"
    );
    let sends = w
        .engine
        .store()
        .sends_of_sequence(w.tenant, seq)
        .await
        .unwrap();
    let honolulu_ids: Vec<ContactId> = honolulu.iter().map(|c| c.id).collect();
    assert!(
        sends.iter().all(|s| honolulu_ids.contains(&s.contact)),
        "only contacts inside their hours are planned"
    );
    assert!(w
        .engine
        .store()
        .pool_wait(w.tenant, seq, w.clock.now())
        .await
        .unwrap()
        .is_some());
}

/// A pool with no active mailbox is not bounded by its room: one tick parks its whole
/// backlog (a resume wakes it), instead of a room's worth at a time.
#[tokio::test]
async fn a_paused_pools_backlog_is_parked_in_one_tick() {
    let w = one_mailbox(EngineConfig::with_seed(9), 5).await;
    let seq = w.sequence("Paused pool", |_| {}).await;
    let cs = w.contacts(1_000).await;
    w.engine.enroll(w.tenant, seq, &cs).await.unwrap();
    w.engine.pause_mailbox(w.tenant, w.mailbox).await.unwrap();
    let report = w.engine.tick().await.unwrap();
    assert_eq!((report.planned, report.deferred), (0, 1_000), "{report:?}");
    let parked = w
        .engine
        .store()
        .list_enrollments(w.tenant, seq)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.deferral().map(|d| d.reason) == Some(DeferralReason::NoActiveMailboxInPool))
        .count();
    assert_eq!(parked, 1_000);
}

/// Follow-ups of a full mailbox: the tick reads them no further than the mailbox's room, plans
/// what fits, the mailbox's wait holds the rest, read or not (no deferral written for each),
/// "why isn't it sending?" names the wait, and the mailbox sends its limit day after day
/// until every follow-up went.
#[tokio::test]
async fn a_full_mailboxs_follow_ups_wait_for_it_without_a_deferral_each() {
    let w = one_mailbox(whole_day(9), 2).await;
    // Six contacts whose first step went out from the mailbox: their follow-ups are due.
    let seq = follow_ups_due(&w, 6).await;
    let store = w.engine.store();
    let report = w.engine.tick().await.unwrap();
    assert_eq!((report.planned, report.deferred), (2, 0), "{report:?}");
    // Read no further than the mailbox's room (2) and one more: the wait holds the rest.
    assert_eq!(report.planned + report.held, 3, "{report:?}");
    assert!(
        store
            .due_enrollments(start(), 100)
            .await
            .unwrap()
            .is_empty(),
        "the mailbox's wait holds its follow-ups"
    );
    let mut whys = Vec::new();
    for e in store.list_enrollments(w.tenant, seq).await.unwrap() {
        whys.push(w.engine.why_not_sending(w.tenant, e.id).await.unwrap());
    }
    let why = whys
        .into_iter()
        .find(|why| why.pending_send.is_none())
        .unwrap();
    let until = why.mailbox_wait.expect("the mailbox wait is named");
    assert!(
        until > start() && until <= start() + Duration::days(1),
        "{why:?}"
    );
    assert!(
        why.summary.contains("its mailbox is full"),
        "{}",
        why.summary
    );
    assert_eq!(why.pool_wait, None, "{why:?}");
    // Day after day, the mailbox sends its two.
    for (day, sent) in [(0, 2), (1, 4), (2, 6)] {
        w.run_until(start() + Duration::days(day) + Duration::hours(23))
            .await;
        let stats = w.engine.stats(w.tenant, seq).await.unwrap();
        assert_eq!(stats.sent, sent, "day {day}");
    }
}

/// With the planning horizon (the default), a mailbox full of follow-ups is planned an hour
/// of its sending time at a time: the first tick stores the first hour's sends only, the
/// mailbox's wait holds the rest until that hour ends (no deferral written for each), and
/// the mailbox still sends its limit every day, spread over its window.
#[tokio::test]
async fn a_full_mailboxs_follow_ups_are_planned_an_hour_at_a_time_and_still_fill_each_day() {
    let w = one_mailbox(EngineConfig::with_seed(9), 8).await;
    let seq = follow_ups_due(&w, 30).await;
    let store = w.engine.store();
    let report = w.engine.tick().await.unwrap();
    // 8 over the 8 hours of the window: one in the first hour.
    assert_eq!((report.planned, report.deferred), (1, 0), "{report:?}");
    let wait = store
        .mailbox_wait(w.tenant, w.mailbox, start())
        .await
        .unwrap()
        .unwrap();
    let day = start() + Duration::days(1);
    assert!(
        wait.until < day,
        "the wait ends with the hour, not the day: {wait:?}"
    );
    assert!(store
        .due_enrollments(start(), 100)
        .await
        .unwrap()
        .is_empty());
    for (d, sent) in [(0, 8), (1, 16), (2, 24)] {
        w.run_until(start() + Duration::days(d) + Duration::hours(23))
            .await;
        let stats = w.engine.stats(w.tenant, seq).await.unwrap();
        assert_eq!(stats.sent, sent, "day {d}");
    }
}
