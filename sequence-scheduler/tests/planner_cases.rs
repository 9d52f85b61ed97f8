//! The planner on fixed cases, one per rule or deferral reason, each answer checked by hand
//! and by the rule checker of `planner_support`.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

mod planner_support;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use planner_support::*;
use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId};
use sequence_core::mailbox::Mailbox;
use sequence_core::store::{DailyCounts, MailboxSnapshot, PlannedSlot};
use sequence_core::time::{SendWindow, WarmUp, WeekdaySet, WeeklySchedule};
use sequence_scheduler::planner::{
    plan, DueStep, MailboxFull, Plan, PlannerConfig, PlanningInput, PoolFull, SequencePolicy,
};

/// One window on `days`, from `start` to `end` minutes of the local day.
fn one_window(days: WeekdaySet, start: u32, end: u32) -> WeeklySchedule {
    WeeklySchedule::windows(vec![SendWindow::new(days, lt(start), lt(end)).unwrap()])
}

fn nine_to_five() -> WeeklySchedule {
    one_window(WeekdaySet::WEEKDAYS, 9 * 60, 17 * 60)
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

struct Case {
    now: DateTime<Utc>,
    mailboxes: Vec<MailboxSnapshot>,
    sequences: Vec<SequencePolicy>,
    due: Vec<DueStep>,
    counts: DailyCounts,
}

impl Case {
    /// The whole day's plan, checked.
    fn plan(&self) -> Plan {
        let p = self.plan_with(&PlannerConfig::with_seed(7).with_horizon(None));
        let problems = check(self.now, &self.input(), &p);
        assert!(problems.is_empty(), "{problems:#?}");
        p
    }

    fn input(&self) -> PlanningInput<'_> {
        PlanningInput {
            due: &self.due,
            mailboxes: &self.mailboxes,
            sequences: &self.sequences,
            counts: &self.counts,
            more_due_on: &[],
        }
    }

    fn plan_with(&self, config: &PlannerConfig) -> Plan {
        plan(self.now, &self.input(), config)
    }
}

/// Monday 2026-03-09 10:00 in New York (14:00Z).
fn monday_ny() -> DateTime<Utc> {
    at(2026, 3, 9, 14, 0)
}

fn one_mailbox_case(limit: u32, n: usize, gap: u32) -> Case {
    let now = monday_ny();
    let m = mailbox(1, chrono_tz::America::New_York, limit, nine_to_five(), gap);
    let seq = policy(1, vec![m.id], None);
    let due = (0..n)
        .map(|i| due(i as u128 + 1, seq.id, 0, now, None, None))
        .collect();
    Case {
        now,
        mailboxes: vec![snapshot(now, m, 0)],
        sequences: vec![seq],
        due,
        counts: DailyCounts::default(),
    }
}

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

/// `n` follow-ups due now, sticky to the one mailbox of [`one_mailbox_case`].
fn follow_ups_case(limit: u32, n: usize) -> Case {
    let mut case = one_mailbox_case(limit, 0, 120);
    let (seq, mailbox) = (case.sequences[0].id, case.mailboxes[0].mailbox.id);
    case.due = (0..n)
        .map(|i| due(i as u128 + 1, seq, 1, case.now, Some(mailbox), None))
        .collect();
    case
}

/// Of `case`'s whole-day plan, the sends before `cutoff`.
fn sends_before(
    whole: &Plan,
    cutoff: DateTime<Utc>,
) -> Vec<sequence_scheduler::planner::PlannedSend> {
    whole
        .sends
        .iter()
        .filter(|s| s.at < cutoff)
        .cloned()
        .collect()
}

#[test]
fn a_horizon_keeps_the_first_hour_of_a_mailbox_full_of_follow_ups() {
    let case = follow_ups_case(30, 50);
    let whole = case.plan();
    let hour = PlannerConfig::with_seed(7).with_horizon(Some(Duration::hours(1)));
    let cut = case.plan_with(&hour);
    let cutoff = whole.sends[0].at + Duration::hours(1);
    // The sends of the first hour, as the whole day's plan makes them (30 over the 7 hours
    // left: about 4), and none after.
    let first_hour = sends_before(&whole, cutoff);
    assert!((3..=6).contains(&first_hour.len()), "{first_hour:?}");
    assert_eq!(cut.sends, first_hour);
    assert_eq!(cut.reservations[0].count as usize, first_hour.len());
    // The mailbox is full no longer: its wait ends at the cutoff (holding what was due when
    // the plan was made), and so do the deferrals that waited for room until tomorrow.
    let mailbox = case.mailboxes[0].mailbox.id;
    assert_eq!(
        cut.mailboxes_full,
        vec![MailboxFull {
            mailbox,
            until: cutoff,
            holds_due_by: Some(case.now),
        }]
    );
    assert_eq!(cut.deferred.len(), 20);
    assert!(cut.deferred.iter().all(|d| d.not_before == Some(cutoff)));
    // A day with room for every follow-up is not cut.
    let roomy = follow_ups_case(30, 10);
    assert_eq!(roomy.plan_with(&hour), roomy.plan());
}

#[test]
fn a_horizon_keeps_the_first_hour_of_a_mailbox_full_of_new_starts_when_its_pool_waits() {
    let case = one_mailbox_case(30, 50, 120);
    let whole = case.plan();
    let hour = PlannerConfig::with_seed(7).with_horizon(Some(Duration::hours(1)));
    let cut = case.plan_with(&hour);
    let cutoff = whole.sends[0].at + Duration::hours(1);
    assert_eq!(cut.sends, sends_before(&whole, cutoff));
    assert!(cut.sends.len() < whole.sends.len());
    // The pool's wait ends at the cutoff, and the mailbox takes no new start before then.
    assert_eq!(
        cut.pools_full,
        vec![PoolFull {
            sequence: case.sequences[0].id,
            until: cutoff
        }]
    );
    assert_eq!(
        cut.mailboxes_full,
        vec![MailboxFull {
            mailbox: case.mailboxes[0].mailbox.id,
            until: cutoff,
            holds_due_by: Some(case.now),
        }]
    );
    // A day that new starts fill without leaving any to wait has no pool wait to hold what
    // would be cut: it is kept whole.
    let exactly_full = one_mailbox_case(30, 30, 120);
    assert_eq!(exactly_full.plan_with(&hour), exactly_full.plan());
}

#[test]
fn a_horizon_cuts_a_held_mailbox_at_the_end_of_its_wait() {
    // The mailbox's wait (an earlier cut) ends at 11:00; ten follow-ups came due since. The
    // plan keeps those it times before 11:00 and holds the rest until then.
    let mut case = follow_ups_case(30, 10);
    let eleven = at(2026, 3, 9, 15, 0);
    case.mailboxes[0].held_until = Some(eleven);
    let whole = case.plan_with(&PlannerConfig::with_seed(7).with_horizon(None));
    let cut = case.plan_with(&PlannerConfig::with_seed(7));
    assert!(whole.sends.iter().any(|s| s.at >= eleven), "{whole:?}");
    assert_eq!(cut.sends, sends_before(&whole, eleven));
    assert_eq!(
        cut.mailboxes_full,
        vec![MailboxFull {
            mailbox: case.mailboxes[0].mailbox.id,
            until: eleven,
            holds_due_by: Some(case.now),
        }]
    );
}

#[test]
fn a_due_follow_up_goes_before_a_new_start_placed_early_in_its_recipients_hours() {
    // Ten a day. Five follow-ups without business hours are due; ten new starts of a sequence
    // with business hours would take the earliest instants those allow, and the follow-ups
    // are spread over the day. Each new start placed before a follow-up trades instants with
    // it: the five follow-ups go first.
    let now = monday_ny();
    let m = mailbox(1, chrono_tz::America::New_York, 10, nine_to_five(), 120);
    let plain = policy(1, vec![m.id], None);
    let in_hours = policy(2, vec![m.id], Some(nine_to_five()));
    let mut due_now: Vec<DueStep> = (1..=5)
        .map(|i| due(i, plain.id, 1, now, Some(m.id), None))
        .collect();
    due_now.extend((6..=15).map(|i| due(i, in_hours.id, 0, now, None, None)));
    let case = Case {
        now,
        mailboxes: vec![snapshot(now, m, 0)],
        sequences: vec![plain, in_hours],
        due: due_now,
        counts: DailyCounts::default(),
    };
    let p = case.plan_with(&PlannerConfig::with_seed(7).with_horizon(None));
    let mut sends = p.sends.clone();
    sends.sort_by_key(|s| s.at);
    let steps: Vec<u32> = sends.iter().map(|s| s.step).collect();
    assert_eq!(steps, [1, 1, 1, 1, 1, 0, 0, 0, 0, 0], "{sends:#?}");
    // The instants are the ones the new starts took: the earliest the gap allows.
    assert_eq!(sends[1].at - sends[0].at, Duration::minutes(2));
}

#[test]
fn a_follow_up_in_business_hours_takes_a_planned_new_starts_slot_before_its_own() {
    // New starts are planned every two minutes from 10:01 to 10:59; a follow-up whose
    // sequence keeps business hours comes due at 10:00. The day has room, but its first free
    // instant is 11:01: it takes the 10:01 new start's slot instead of waiting behind it.
    let now = monday_ny();
    let m = mailbox(1, chrono_tz::America::New_York, 50, nine_to_five(), 120);
    let seq = policy(1, vec![m.id], Some(nine_to_five()));
    let mut snap = snapshot(now, m.clone(), 30);
    snap.planned = (0..30_u32)
        .map(|k| PlannedSlot {
            send: SendId::from_u128(u128::from(k) + 1),
            enrollment: EnrollmentId::from_u128(u128::from(k) + 100),
            step: 0,
            at: now + Duration::minutes(1 + 2 * i64::from(k)),
        })
        .collect();
    let case = Case {
        now,
        mailboxes: vec![snap],
        due: vec![due(1, seq.id, 1, now, Some(m.id), None)],
        sequences: vec![seq],
        counts: DailyCounts::default(),
    };
    let p = case.plan_with(&PlannerConfig::with_seed(7).with_horizon(None));
    assert_eq!(p.preempt, vec![SendId::from_u128(1)]);
    assert_eq!(p.sends.len(), 1);
    assert_eq!(p.sends[0].at, now + Duration::minutes(1));
}

#[test]
fn a_mailbox_whose_follow_ups_wait_takes_no_new_start_until_its_wait_ends() {
    // Two mailboxes in the pool; the first holds its follow-ups back until 11:00.
    let now = monday_ny();
    let eleven = at(2026, 3, 9, 15, 0);
    let a = mailbox(1, chrono_tz::America::New_York, 30, nine_to_five(), 120);
    let b = mailbox(2, chrono_tz::America::New_York, 5, nine_to_five(), 120);
    let seq = policy(1, vec![a.id, b.id], None);
    let mut held = snapshot(now, a, 0);
    held.held_until = Some(eleven);
    let case = Case {
        now,
        mailboxes: vec![held, snapshot(now, b, 0)],
        due: (0..20)
            .map(|i| due(i + 1, seq.id, 0, now, None, None))
            .collect(),
        sequences: vec![seq],
        counts: DailyCounts::default(),
    };
    let p = case.plan();
    // The second takes its 5; the rest of the pool waits for the first's wait to end.
    assert_eq!(p.sends.len(), 5);
    assert!(p
        .sends
        .iter()
        .all(|s| s.mailbox == case.mailboxes[1].mailbox.id));
    assert_eq!(
        p.pools_full,
        vec![PoolFull {
            sequence: case.sequences[0].id,
            until: eleven
        }]
    );
    assert!(
        p.deferred.iter().all(|d| d.not_before == Some(eleven)),
        "{:?}",
        p.deferred
    );
}

#[test]
fn a_follow_up_takes_an_earlier_planned_new_starts_slot_even_with_room() {
    // Room for 30, 2 new starts planned today at 11:00 and 15:00; a follow-up due at 10:30
    // would be spread into the afternoon, after the 11:00 new start: it takes that slot.
    let mut case = one_mailbox_case(30, 0, 120);
    let snap = &mut case.mailboxes[0];
    let eleven = at(2026, 3, 9, 15, 0);
    let three = at(2026, 3, 9, 19, 0);
    let (early, late) = (SendId::new(), SendId::new());
    for (send, at) in [(early, eleven), (late, three)] {
        snap.planned.push(PlannedSlot {
            send,
            enrollment: EnrollmentId::new(),
            step: 0,
            at,
        });
    }
    snap.used = 2;
    let mailbox = snap.mailbox.id;
    let half_past_ten = at(2026, 3, 9, 14, 30);
    let seq = case.sequences[0].id;
    case.due
        .push(due(1, seq, 1, half_past_ten, Some(mailbox), None));
    let p = case.plan();
    assert_eq!(p.preempt, vec![early]);
    assert_eq!(p.sends.len(), 1);
    assert_eq!(p.sends[0].at, eleven);
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
fn follow_ups_go_before_new_enrollments() {
    let mut case = one_mailbox_case(5, 10, 0);
    let mb = case.mailboxes[0].mailbox.id;
    let seq = case.sequences[0].id;
    for i in 0..3 {
        case.due
            .push(due(100 + i, seq, 1, case.now, Some(mb), None));
    }
    let p = case.plan();
    let sent: HashSet<EnrollmentId> = p.sends.iter().map(|s| s.enrollment).collect();
    for i in 0..3 {
        assert!(
            sent.contains(&EnrollmentId::from_u128(100 + i)),
            "follow-up {i} not planned"
        );
    }
    // And they take the earliest slots.
    let mut by_time = p.sends.clone();
    by_time.sort_by_key(|s| s.at);
    assert!(by_time[..3].iter().all(|s| s.step == 1));
}

/// A day of one mailbox with `limit` sends, two of them taken by planned sends: a
/// follow-up in an hour and a new start (the send returned) in three hours; and a follow-up
/// of the mailbox due now.
fn a_day_with_a_planned_new_start(limit: u32) -> (Case, SendId, DateTime<Utc>) {
    let mut case = one_mailbox_case(limit, 0, 0);
    let mb = case.mailboxes[0].mailbox.id;
    let seq = case.sequences[0].id;
    let later = case.now + Duration::hours(3);
    let send = SendId::from_u128(9);
    case.mailboxes[0].used = 2;
    case.mailboxes[0].planned = vec![
        PlannedSlot {
            send: SendId::from_u128(8),
            enrollment: EnrollmentId::from_u128(50),
            step: 1,
            at: case.now + Duration::hours(1),
        },
        PlannedSlot {
            send,
            enrollment: EnrollmentId::from_u128(51),
            step: 0,
            at: later,
        },
    ];
    case.due.push(due(1, seq, 2, case.now, Some(mb), None));
    (case, send, later)
}

#[test]
fn a_follow_up_takes_over_a_planned_new_enrollment_slot() {
    let (case, send, later) = a_day_with_a_planned_new_start(2);
    let p = case.plan();
    assert_eq!(p.preempt, vec![send]);
    assert_eq!(p.sends.len(), 1);
    assert_eq!(p.sends[0].at, later);
}

#[test]
fn a_follow_up_with_room_of_its_own_leaves_the_planned_new_start_alone() {
    // The same day with room for one more: the follow-up takes that room, and the new start
    // keeps its slot (taking it over would only push the new start later, rule 10).
    let (case, _, _) = a_day_with_a_planned_new_start(3);
    let p = case.plan();
    assert!(p.preempt.is_empty(), "pre-empted with room left: {p:?}");
    assert_eq!(p.sends.len(), 1);
    assert!(p.deferred.is_empty());
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
