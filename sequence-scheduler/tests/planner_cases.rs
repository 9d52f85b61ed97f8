//! The planner on fixed cases, one per rule or deferral reason, each answer checked by hand
//! and by the rule checker of `planner_support`.

mod planner_support;

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};

use planner_support::*;
use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::MailboxId;
use sequence_core::mailbox::Mailbox;
use sequence_core::store::DailyCounts;
use sequence_core::time::{SendWindow, WarmUp, WeekdaySet, WeeklySchedule};
use sequence_scheduler::planner::{DueStep, PoolFull};

#[test]
fn fills_the_day_up_to_the_limit_and_defers_the_rest_to_the_next_opening() {
    let case = one_mailbox_case(30, 50, 120);
    let p = case.plan();
    assert_eq!(p.sends.len(), 30);
    assert_eq!(p.deferred.len(), 20);
    let tuesday_nine = at(2026, 3, 10, 13, 0);
    for d in &p.deferred {
        assert_eq!(d.reason, DeferralReason::NoCapacity);
        assert_eq!(d.not_before, Some(tuesday_nine));
    }
    assert_eq!(
        p.pools_full,
        vec![PoolFull {
            sequence: case.sequences[0].id,
            until: tuesday_nine
        }]
    );
    assert_eq!(p.reservations.len(), 1);
    assert_eq!(p.reservations[0].count, 30);
    assert_eq!(p.reservations[0].limit, 30);
}

#[test]
fn spreads_sends_over_the_time_still_open() {
    let case = one_mailbox_case(30, 30, 120);
    let p = case.plan();
    let first = p.sends.iter().map(|s| s.at).min().unwrap();
    let last = p.sends.iter().map(|s| s.at).max().unwrap();
    // 10:00 to 17:00 left: the sends cover most of it, not the first hour.
    assert!(last - first > Duration::hours(6), "{first} .. {last}");
    let first_hour = p
        .sends
        .iter()
        .filter(|s| s.at < case.now + Duration::hours(1))
        .count();
    assert!(
        first_hour <= 6,
        "{first_hour} sends bunched in the first hour"
    );
}

#[test]
fn a_tight_window_still_reaches_its_limit() {
    // One hour, 30 sends, two minutes apart: exactly full.
    let now = at(2026, 3, 9, 13, 0);
    let sched = one_window(WeekdaySet::ALL, 9 * 60, 10 * 60);
    let m = mailbox(1, chrono_tz::America::New_York, 30, sched, 120);
    let seq = policy(1, vec![m.id], None);
    let due = (0..40)
        .map(|i| due(i + 1, seq.id, 0, now, None, None))
        .collect();
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m, 0)],
        sequences: vec![seq],
        due,
        counts: DailyCounts::default(),
    };
    assert_eq!(case.plan().sends.len(), 30);
}

#[test]
fn least_loaded_mailbox_takes_new_enrollments_evenly() {
    let now = monday_ny();
    let mbs: Vec<Mailbox> = (0..4)
        .map(|i| mailbox(i, chrono_tz::America::New_York, 50, nine_to_five(), 0))
        .collect();
    let seq = policy(1, mbs.iter().map(|m| m.id).collect(), None);
    let due = (0..40)
        .map(|i| due(i + 1, seq.id, 0, now, None, None))
        .collect();
    let case = Case {
        now,
        mailboxes: mbs.into_iter().map(|m| snapshot(now, m, 0)).collect(),
        sequences: vec![seq],
        due,
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    let mut per: HashMap<MailboxId, usize> = HashMap::new();
    for s in &p.sends {
        *per.entry(s.mailbox).or_default() += 1;
    }
    assert_eq!(per.len(), 4);
    assert!(per.values().all(|&n| n == 10), "{per:?}");
}

#[test]
fn sequences_sharing_a_mailbox_take_turns() {
    let now = monday_ny();
    let m = mailbox(1, chrono_tz::America::New_York, 10, nine_to_five(), 0);
    let a = policy(1, vec![m.id], None);
    let b = policy(2, vec![m.id], None);
    // Sequence A has 30 older due enrollments, B has 5.
    let mut due_list: Vec<DueStep> = (0..30)
        .map(|i| due(i + 1, a.id, 0, now - Duration::hours(2), None, None))
        .collect();
    due_list.extend((0..5).map(|i| due(100 + i, b.id, 0, now, None, None)));
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m, 0)],
        sequences: vec![a, b.clone()],
        due: due_list,
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    let from_b = p
        .sends
        .iter()
        .filter(|s| case.due[s.index].sequence == b.id)
        .count();
    assert_eq!(from_b, 5);
}

#[test]
fn sticky_mailbox_is_kept_and_left_only_when_paused() {
    let now = monday_ny();
    let m1 = mailbox(1, chrono_tz::America::New_York, 10, nine_to_five(), 0);
    let mut m2 = mailbox(2, chrono_tz::America::New_York, 10, nine_to_five(), 0);
    let seq = policy(1, vec![m1.id, m2.id], None);
    let mut case = Case {
        now,
        mailboxes: vec![snapshot(now, m1.clone(), 9), snapshot(now, m2.clone(), 0)],
        sequences: vec![seq.clone()],
        due: vec![due(1, seq.id, 1, now, Some(m1.id), None)],
        counts: DailyCounts::default(),
    };
    assert_eq!(case.plan().sends[0].mailbox, m1.id);
    // Sticky mailbox full: the follow-up waits for it rather than moving.
    case.mailboxes[0].used = 10;
    let p = case.plan();
    assert!(p.sends.is_empty());
    assert_eq!(p.deferred[0].reason, DeferralReason::NoCapacity);
    // Sticky mailbox paused: it moves.
    case.mailboxes[0].used = 0;
    let mut paused = m1.clone();
    paused.pause().unwrap();
    case.mailboxes[0].mailbox = paused;
    assert_eq!(case.plan().sends[0].mailbox, m2.id);
    // Every mailbox paused: it waits, saying why.
    m2.pause().unwrap();
    case.mailboxes[1].mailbox = m2;
    let p = case.plan();
    assert_eq!(p.deferred[0].reason, DeferralReason::MailboxPaused);
    assert_eq!(p.deferred[0].not_before, None, "parked until a resume");
}

#[test]
fn deferral_reasons() {
    let now = monday_ny();
    // Outside the mailbox window: Saturday.
    let sat = at(2026, 3, 14, 15, 0);
    let m = mailbox(1, chrono_tz::America::New_York, 10, nine_to_five(), 0);
    let seq = policy(1, vec![m.id], None);
    let case = Case {
        now: sat,
        mailboxes: vec![snapshot(sat, m.clone(), 0)],
        sequences: vec![seq.clone()],
        due: vec![due(1, seq.id, 0, sat, None, None)],
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    assert_eq!(p.deferred[0].reason, DeferralReason::OutsideMailboxWindow);
    assert_eq!(p.deferred[0].not_before, Some(at(2026, 3, 16, 13, 0)));
    // No open time left in the pool's day: the pool waits for Monday's opening.
    assert_eq!(
        p.pools_full,
        vec![PoolFull {
            sequence: seq.id,
            until: at(2026, 3, 16, 13, 0)
        }]
    );

    // Outside the recipient's hours: a Tokyo contact's 09-17 never meets New York's 09-17.
    let tokyo = chrono_tz::Asia::Tokyo;
    let seq_rw = policy(2, vec![m.id], Some(nine_to_five()));
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m.clone(), 0)],
        sequences: vec![seq_rw.clone()],
        due: vec![due(1, seq_rw.id, 0, now, None, Some(tokyo))],
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    assert_eq!(p.deferred[0].reason, DeferralReason::OutsideRecipientWindow);
    // The contact's hours, not the pool, stop it: the mailbox has room, so no pool wait.
    assert!(p.pools_full.is_empty(), "{:?}", p.pools_full);

    // No active mailbox in the pool.
    let mut paused = m.clone();
    paused.pause().unwrap();
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, paused, 0)],
        sequences: vec![seq.clone()],
        due: vec![due(1, seq.id, 0, now, None, None)],
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    assert_eq!(
        (p.deferred[0].reason, p.deferred[0].not_before),
        (DeferralReason::NoActiveMailboxInPool, None)
    );
    // Parked instead: a resume wakes it.
    assert!(p.pools_full.is_empty(), "{:?}", p.pools_full);

    // New-enrollment cap.
    let mut capped = seq.clone();
    capped.new_enrollments_per_day = Some(2);
    let mut counts = DailyCounts::default();
    counts.new_starts.insert(capped.id, 1);
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m.clone(), 0)],
        sequences: vec![capped.clone()],
        due: (0..3)
            .map(|i| due(i + 1, capped.id, 0, now, None, None))
            .collect(),
        counts,
    };
    let p = case.plan();
    assert_eq!(p.sends.len(), 1);
    assert!(p
        .deferred
        .iter()
        .all(|d| d.reason == DeferralReason::NewEnrollmentCapReached
            && d.not_before == Some(at(2026, 3, 10, 0, 0))));

    // Recipient-domain cap.
    let mut dom = seq.clone();
    dom.per_domain_daily_cap = Some(1);
    let mut items: Vec<DueStep> = (0..3)
        .map(|i| due(i + 1, dom.id, 0, now, None, None))
        .collect();
    for it in &mut items {
        it.recipient_domain = "same.example".into();
    }
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m.clone(), 0)],
        sequences: vec![dom],
        due: items,
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    assert_eq!(p.sends.len(), 1);
    assert_eq!(p.deferred.len(), 2);
    assert!(p
        .deferred
        .iter()
        .all(|d| d.reason == DeferralReason::RecipientDomainCapReached));

    // Paused sequence: parked until resumed.
    let mut paused_seq = seq.clone();
    paused_seq.active = false;
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m, 0)],
        sequences: vec![paused_seq.clone()],
        due: vec![due(1, paused_seq.id, 0, now, None, None)],
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    assert_eq!(p.deferred[0].reason, DeferralReason::SequencePaused);
    assert_eq!(p.deferred[0].not_before, None);
}

#[test]
fn warm_up_caps_the_day() {
    let now = monday_ny();
    let m = mailbox(1, chrono_tz::America::New_York, 50, nine_to_five(), 0).with_warmup(WarmUp {
        start: 5,
        increment: 3,
        since: NaiveDate::from_ymd_opt(2026, 3, 7).unwrap(),
    });
    let seq = policy(1, vec![m.id], None);
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m, 0)],
        sequences: vec![seq.clone()],
        due: (0..40)
            .map(|i| due(i + 1, seq.id, 0, now, None, None))
            .collect(),
        counts: DailyCounts::default(),
    };
    // Day since + 2: 5 + 3 * 2 = 11.
    assert_eq!(case.plan().sends.len(), 11);
}

#[test]
fn spring_forward_day_keeps_windows() {
    // New York, Sunday 2026-03-08: 02:00-03:00 does not exist. Window 01:00-04:00 holds two
    // hours that day.
    let now = at(2026, 3, 8, 5, 0); // 00:00 EST
    let sched = WeeklySchedule::windows(vec![
        SendWindow::new(WeekdaySet::ALL, lt(60), lt(240)).unwrap()
    ]);
    let m = mailbox(1, chrono_tz::America::New_York, 100, sched, 600);
    let seq = policy(1, vec![m.id], None);
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m, 0)],
        sequences: vec![seq.clone()],
        due: (0..30)
            .map(|i| due(i + 1, seq.id, 0, now, None, None))
            .collect(),
        counts: DailyCounts::default(),
    };
    // Two hours, ten minutes apart: 12 sends fit.
    assert_eq!(case.plan().sends.len(), 12);
}

#[test]
fn a_tight_day_takes_its_last_send_inside_the_contacts_hours() {
    // 09:00-16:51 holds exactly 48 sends ten minutes apart (47 gaps of 600 s fit in 7 h
    // 51 min with 60 s to spare). 47 follow-ups without business hours come first; the one
    // new start may only go from 09:03 on. It fits: at 09:10, say, with the follow-ups at
    // 09:00 and from 09:20 on every ten minutes. The day must reach its limit of 48.
    let now = at(2026, 3, 9, 9, 0);
    let sched = one_window(WeekdaySet::WEEKDAYS, 9 * 60, 16 * 60 + 51);
    let m = mailbox(1, chrono_tz::UTC, 48, sched, 600);
    let plain = policy(1, vec![m.id], None);
    let hours = one_window(WeekdaySet::WEEKDAYS, 9 * 60 + 3, 17 * 60);
    let with_hours = policy(2, vec![m.id], Some(hours));
    let mut due_list: Vec<DueStep> = (0..47)
        .map(|i| due(i + 1, plain.id, 1, now, Some(m.id), None))
        .collect();
    due_list.push(due(100, with_hours.id, 0, now, None, Some(chrono_tz::UTC)));
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m, 0)],
        sequences: vec![plain, with_hours],
        due: due_list,
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    assert_eq!(p.sends.len(), 48, "deferred: {:?}", p.deferred);
}

#[test]
fn a_waiting_new_start_wakes_when_the_first_pool_mailbox_opens() {
    // Monday 2026-03-09 18:00Z. New York (EDT since Sunday) is in its window but full; London
    // has closed for the day, full; Tokyo is on its Tuesday, already full. The next openings:
    // London Tuesday 09:00 GMT = 09:00Z, New York Tuesday 09:00 EDT = 13:00Z, Tokyo Wednesday
    // 09:00 JST = Tuesday 24:00Z. Every waiting new start is looked at again at the first.
    let now = at(2026, 3, 9, 18, 0);
    let mbs = [
        mailbox(1, chrono_tz::America::New_York, 30, nine_to_five(), 120),
        mailbox(2, chrono_tz::Europe::London, 30, nine_to_five(), 120),
        mailbox(3, chrono_tz::Asia::Tokyo, 30, nine_to_five(), 120),
    ];
    let seq = policy(1, mbs.iter().map(|m| m.id).collect(), None);
    let due_list: Vec<DueStep> = (0..400)
        .map(|i| due(i + 1, seq.id, 0, now - Duration::days(10), None, None))
        .collect();
    let case = Case {
        now,
        mailboxes: mbs.into_iter().map(|m| snapshot(now, m, 30)).collect(),
        sequences: vec![seq],
        due: due_list,
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    assert!(p.sends.is_empty());
    assert_eq!(p.deferred.len(), 400);
    let london_opens = at(2026, 3, 10, 9, 0);
    assert_eq!(
        p.pools_full,
        vec![PoolFull {
            sequence: case.sequences[0].id,
            until: london_opens
        }],
        "the pool waits for its first mailbox to open"
    );
    let late: Vec<_> = p
        .deferred
        .iter()
        .filter(|d| d.reason != DeferralReason::NoCapacity || d.not_before != Some(london_opens))
        .map(|d| (d.index, d.reason, d.not_before))
        .collect();
    assert!(
        late.is_empty(),
        "{} of 400: {:?}",
        late.len(),
        &late[..late.len().min(5)]
    );
}

#[test]
fn a_step_due_in_the_part_of_a_run_after_midnight_goes_in_that_part() {
    // Chatham (+13:45 in March), every day 23:15-00:45. Now is Tuesday 00:30 local (Monday
    // 10:45Z), in the run that opened on Monday evening; its last quarter hour belongs to
    // Tuesday, as does Tuesday's own run from 23:15 (09:30Z on the 10th). Three steps due
    // now, capacity to spare: all three go by 00:45 local (11:00Z), not on Tuesday evening.
    let now = at(2026, 3, 9, 10, 45);
    let sched = one_window(WeekdaySet::ALL, 23 * 60 + 15, 45);
    let m = mailbox(1, chrono_tz::Pacific::Chatham, 50, sched, 60);
    let seq = policy(1, vec![m.id], None);
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m.clone(), 0)],
        sequences: vec![seq.clone()],
        due: (0..3)
            .map(|i| {
                due(
                    i + 1,
                    seq.id,
                    1,
                    now - Duration::minutes(5),
                    Some(m.id),
                    None,
                )
            })
            .collect(),
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    assert_eq!(p.sends.len(), 3);
    for s in &p.sends {
        assert!(
            s.at >= now && s.at < at(2026, 3, 9, 11, 0),
            "sent at {}, not in the run that ends at 11:00Z",
            s.at
        );
    }
}

/// A sequence given only part of its backlog (`more_due`: the engine read it to the pool's
/// room) waits for its pool once the plan fills it, though every enrollment it was given
/// found room; without `more_due`, or with room left, it does not.
#[test]
fn a_sequence_with_more_due_waits_once_its_pool_is_full() {
    let mut case = one_mailbox_case(30, 30, 120);
    let p = case.plan();
    assert_eq!((p.sends.len(), p.deferred.len()), (30, 0));
    assert!(
        p.pools_full.is_empty(),
        "nothing ran out: {:?}",
        p.pools_full
    );

    case.sequences[0].more_due = true;
    let p = case.plan();
    assert_eq!((p.sends.len(), p.deferred.len()), (30, 0));
    assert_eq!(
        p.pools_full,
        vec![PoolFull {
            sequence: case.sequences[0].id,
            until: at(2026, 3, 10, 13, 0)
        }],
        "the pool is full and more is due: the sequence waits"
    );

    let mut roomy = one_mailbox_case(30, 10, 120);
    roomy.sequences[0].more_due = true;
    let p = roomy.plan();
    assert!(
        p.pools_full.is_empty(),
        "room is left: the rest is read next, no wait: {:?}",
        p.pools_full
    );
}
