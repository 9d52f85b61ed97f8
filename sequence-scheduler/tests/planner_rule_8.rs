//! The planner's rule 8 (follow-ups before new starts) and its planning horizon on fixed
//! cases: a follow-up takes a planned new start's slot, trades instants with one placed
//! early, and a full mailbox's plan is cut an hour past its first send.

mod planner_support;

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use planner_support::*;
use sequence_core::ids::{EnrollmentId, SendId};
use sequence_core::store::{DailyCounts, PlannedSlot};
use sequence_scheduler::planner::{DueStep, MailboxFull, Plan, PlannerConfig, PoolFull};

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
