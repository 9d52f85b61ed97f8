//! The planner against the rules of `scenario-format.md`, on random fleets (proptest) and on
//! fixed cases, one per deferral reason.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::{Mailbox, MailboxStatus};
use sequence_core::store::{DailyCounts, MailboxSnapshot, PlannedSlot};
use sequence_core::time::{local_date, LocalTime, SendWindow, WarmUp, WeekdaySet, WeeklySchedule};
use sequence_scheduler::planner::{
    plan, plan_with, DueStep, Plan, PlanScratch, PlannerConfig, PlanningInput, SequencePolicy,
};

const ZONES: &[Tz] = &[
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Europe::Berlin,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::Pacific::Chatham,
    chrono_tz::Pacific::Kiritimati,
    chrono_tz::Etc::GMTPlus12,
    chrono_tz::America::Sao_Paulo,
    chrono_tz::UTC,
];

fn tenant() -> TenantId {
    TenantId::from_u128(1)
}

fn lt(m: u32) -> LocalTime {
    LocalTime::from_hm(m / 60, m % 60).unwrap()
}

fn mailbox(i: u128, tz: Tz, limit: u32, schedule: WeeklySchedule, gap: u32) -> Mailbox {
    Mailbox::new(tenant(), format!("m{i}@sender.example"), tz)
        .unwrap()
        .with_id(MailboxId::from_u128(1000 + i))
        .with_daily_limit(limit)
        .with_schedule(schedule)
        .with_min_gap_seconds(gap)
}

fn snapshot(now: DateTime<Utc>, m: Mailbox, used: u32) -> MailboxSnapshot {
    MailboxSnapshot {
        local_date: local_date(m.timezone, now),
        mailbox: m,
        used,
        last_attempt_at: None,
        planned: Vec::new(),
    }
}

fn due(
    i: u128,
    seq: SequenceId,
    step: u32,
    earliest: DateTime<Utc>,
    sticky: Option<MailboxId>,
    zone: Option<Tz>,
) -> DueStep {
    DueStep {
        enrollment: EnrollmentId::from_u128(i),
        tenant: tenant(),
        sequence: seq,
        step,
        earliest,
        sticky_mailbox: sticky,
        contact_zone: zone,
        recipient_domain: format!("d{}.example", i % 7),
    }
}

fn policy(id: u128, pool: Vec<MailboxId>, recipient: Option<WeeklySchedule>) -> SequencePolicy {
    SequencePolicy {
        id: SequenceId::from_u128(id),
        active: true,
        pool,
        recipient_windows: recipient,
        new_enrollments_per_day: None,
        per_domain_daily_cap: None,
    }
}

/// Check every plan-level rule; return the problems found.
fn check(now: DateTime<Utc>, input: &PlanningInput<'_>, plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    let mailboxes: HashMap<MailboxId, &MailboxSnapshot> =
        input.mailboxes.iter().map(|s| (s.mailbox.id, s)).collect();
    let sequences: HashMap<SequenceId, &SequencePolicy> =
        input.sequences.iter().map(|s| (s.id, s)).collect();

    // Every due enrollment is answered exactly once.
    let mut seen = HashSet::new();
    for s in &plan.sends {
        if !seen.insert(s.index) {
            problems.push(format!("item {} answered twice", s.index));
        }
    }
    for d in &plan.deferred {
        if !seen.insert(d.index) {
            problems.push(format!("item {} answered twice", d.index));
        }
        if let Some(nb) = d.not_before {
            if nb <= now {
                problems.push(format!("item {} deferred to {nb}, not after now", d.index));
            }
        }
    }
    if seen.len() != input.due.len() {
        problems.push(format!(
            "{} of {} items answered",
            seen.len(),
            input.due.len()
        ));
    }

    let preempted: HashSet<SendId> = plan.preempt.iter().copied().collect();
    let mut per_mailbox: HashMap<MailboxId, Vec<DateTime<Utc>>> = HashMap::new();
    for s in &plan.sends {
        let item = &input.due[s.index];
        let Some(snap) = mailboxes.get(&s.mailbox) else {
            problems.push(format!("send on unknown mailbox {}", s.mailbox));
            continue;
        };
        let m = &snap.mailbox;
        let seq = sequences[&item.sequence];
        if !seq.pool.contains(&s.mailbox) {
            problems.push(format!(
                "item {} sent from a mailbox outside its pool",
                s.index
            ));
        }
        if m.status() != MailboxStatus::Active {
            problems.push(format!("item {} planned on a paused mailbox", s.index));
        }
        if let Some(sticky) = item.sticky_mailbox {
            let sticky_active = mailboxes
                .get(&sticky)
                .is_some_and(|s| s.mailbox.status() == MailboxStatus::Active);
            if sticky_active && sticky != s.mailbox {
                problems.push(format!("item {} left its sticky mailbox", s.index));
            }
        }
        if s.at < now || s.at < item.earliest {
            problems.push(format!(
                "item {} planned at {} before now or its earliest {}",
                s.index, s.at, item.earliest
            ));
        }
        if !m.schedule.contains(m.timezone, s.at) {
            problems.push(format!(
                "item {} at {} outside the mailbox windows ({})",
                s.index, s.at, m.timezone
            ));
        }
        if let Some(rw) = &seq.recipient_windows {
            let zone = item.contact_zone.unwrap_or(m.timezone);
            if !rw.contains(zone, s.at) {
                problems.push(format!(
                    "item {} at {} outside the recipient windows ({zone})",
                    s.index, s.at
                ));
            }
        }
        if local_date(m.timezone, s.at) != snap.local_date || s.local_date != snap.local_date {
            problems.push(format!(
                "item {} planned outside the mailbox's current local day",
                s.index
            ));
        }
        per_mailbox.entry(s.mailbox).or_default().push(s.at);
    }
    for (id, mut times) in per_mailbox {
        let snap = mailboxes[&id];
        let limit = snap.mailbox.limit_on(snap.local_date);
        let released = snap
            .planned
            .iter()
            .filter(|p| preempted.contains(&p.send))
            .count() as u32;
        if snap.used - released + times.len() as u32 > limit {
            problems.push(format!(
                "mailbox {id}: {} + {} planned over limit {limit}",
                snap.used,
                times.len()
            ));
        }
        // Gaps: against each other, kept planned sends and the last attempt.
        times.extend(
            snap.planned
                .iter()
                .filter(|p| !preempted.contains(&p.send))
                .map(|p| p.at),
        );
        times.extend(snap.last_attempt_at);
        times.sort();
        let gap = Duration::seconds(i64::from(snap.mailbox.min_gap_seconds));
        for w in times.windows(2) {
            if w[1] - w[0] < gap {
                problems.push(format!(
                    "mailbox {id}: sends at {} and {} closer than {gap}",
                    w[0], w[1]
                ));
            }
        }
    }
    problems
}

/// Is there an instant today on `m` where `item` could still go (work-conserving check)?
fn could_still_send(
    now: DateTime<Utc>,
    input: &PlanningInput<'_>,
    plan: &Plan,
    item: &DueStep,
    snap: &MailboxSnapshot,
) -> bool {
    let m = &snap.mailbox;
    if m.status() != MailboxStatus::Active {
        return false;
    }
    let planned_here = plan.sends.iter().filter(|s| s.mailbox == m.id).count() as u32;
    let released = snap
        .planned
        .iter()
        .filter(|p| plan.preempt.contains(&p.send))
        .count() as u32;
    if snap.used + planned_here - released >= m.limit_on(snap.local_date) {
        return false;
    }
    let seq = input
        .sequences
        .iter()
        .find(|s| s.id == item.sequence)
        .unwrap();
    let mut others: Vec<DateTime<Utc>> = plan
        .sends
        .iter()
        .filter(|s| s.mailbox == m.id)
        .map(|s| s.at)
        .collect();
    others.extend(snap.planned.iter().map(|p| p.at));
    others.extend(snap.last_attempt_at);
    let gap = Duration::seconds(i64::from(m.min_gap_seconds));
    let (_, day_end) = sequence_core::time::local_day_bounds(m.timezone, snap.local_date);
    let mut t = now.max(item.earliest);
    // Minute scan, starting on a whole minute after now.
    t += Duration::seconds(59 - i64::from(chrono::Timelike::second(&t)) + 1);
    while t < day_end {
        let in_windows = m.schedule.contains(m.timezone, t)
            && seq
                .recipient_windows
                .as_ref()
                .is_none_or(|rw| rw.contains(item.contact_zone.unwrap_or(m.timezone), t));
        if in_windows && others.iter().all(|o| (*o - t).abs() >= gap) {
            return true;
        }
        t += Duration::minutes(1);
    }
    false
}

fn window_strategy() -> impl Strategy<Value = SendWindow> {
    (1u8..128, 0u32..1440, 30u32..1440).prop_map(|(days, start, len)| {
        let days = WeekdaySet::from_days(
            &[
                chrono::Weekday::Mon,
                chrono::Weekday::Tue,
                chrono::Weekday::Wed,
                chrono::Weekday::Thu,
                chrono::Weekday::Fri,
                chrono::Weekday::Sat,
                chrono::Weekday::Sun,
            ]
            .into_iter()
            .enumerate()
            .filter(|(i, _)| days & (1 << i) != 0)
            .map(|(_, d)| d)
            .collect::<Vec<_>>(),
        );
        let end = (start + len) % 1440;
        let end = if end == 0 { 1440 } else { end };
        let end = if end == start {
            (start + 60) % 1440
        } else {
            end
        };
        SendWindow::new(days, lt(start), lt(end)).unwrap()
    })
}

fn schedule_strategy() -> impl Strategy<Value = WeeklySchedule> {
    prop_oneof![
        1 => Just(WeeklySchedule::always()),
        4 => prop::collection::vec(window_strategy(), 1..3).prop_map(WeeklySchedule::windows),
    ]
}

#[derive(Debug, Clone)]
struct Fleet {
    now: DateTime<Utc>,
    mailboxes: Vec<MailboxSnapshot>,
    sequences: Vec<SequencePolicy>,
    due: Vec<DueStep>,
}

fn fleet_strategy() -> impl Strategy<Value = Fleet> {
    let mailbox_gen = (
        0usize..ZONES.len(),
        0u32..12,
        schedule_strategy(),
        prop_oneof![Just(0u32), Just(60), Just(300), Just(1800)],
        prop::option::weighted(0.2, (1u32..4, 0u32..3, 0i64..5)),
        0u32..4,
        prop::bool::weighted(0.1),
        prop::option::weighted(0.3, 0i64..3600 * 6),
    );
    (
        // now: any instant of 2026, incl. DST days
        0i64..365 * 24 * 3600,
        prop::collection::vec(mailbox_gen, 1..6),
        prop::collection::vec(
            (
                prop::collection::vec(0usize..6, 1..4),
                prop::option::weighted(0.4, schedule_strategy()),
            ),
            1..4,
        ),
        prop::collection::vec(
            (
                0usize..4,
                0u32..3,
                prop::option::weighted(0.5, 0usize..ZONES.len()),
                0i64..7200,
                0usize..8,
            ),
            0..40,
        ),
    )
        .prop_map(|(offset, mbs, seqs, items)| {
            let now =
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(offset);
            let mailboxes: Vec<MailboxSnapshot> = mbs
                .into_iter()
                .enumerate()
                .map(|(i, (z, limit, sched, gap, warm, used, paused, last))| {
                    let tz = ZONES[z];
                    let mut m = mailbox(i as u128, tz, limit, sched, gap);
                    if let Some((start, inc, back)) = warm {
                        m = m.with_warmup(WarmUp {
                            start,
                            increment: inc,
                            since: local_date(tz, now) - Duration::days(back),
                        });
                    }
                    if paused {
                        m.pause().unwrap();
                    }
                    let mut s = snapshot(now, m, used.min(limit));
                    s.last_attempt_at = last.map(|l| now - Duration::seconds(l));
                    s
                })
                .collect();
            let n = mailboxes.len();
            let sequences: Vec<SequencePolicy> = seqs
                .into_iter()
                .enumerate()
                .map(|(i, (pool, rw))| {
                    let mut ids: Vec<MailboxId> = pool
                        .into_iter()
                        .map(|p| mailboxes[p % n].mailbox.id)
                        .collect();
                    ids.sort();
                    ids.dedup();
                    policy(i as u128 + 1, ids, rw)
                })
                .collect();
            let due = items
                .into_iter()
                .enumerate()
                .map(|(i, (s, step, zone, ago, sticky))| {
                    let seq = &sequences[s % sequences.len()];
                    let sticky = (step > 0).then(|| seq.pool[sticky % seq.pool.len()]);
                    due(
                        i as u128 + 1,
                        seq.id,
                        step,
                        now - Duration::seconds(ago),
                        sticky,
                        zone.map(|z| ZONES[z]),
                    )
                })
                .collect();
            Fleet {
                now,
                mailboxes,
                sequences,
                due,
            }
        })
}

fn run(f: &Fleet, seed: u64) -> Plan {
    let counts = DailyCounts::default();
    let input = PlanningInput {
        due: &f.due,
        mailboxes: &f.mailboxes,
        sequences: &f.sequences,
        counts: &counts,
    };
    plan(f.now, &input, &PlannerConfig::with_seed(seed))
}

proptest! {
    // PROPTEST_CASES raises the count for a longer search.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(200),
    ))]

    #[test]
    fn every_plan_keeps_the_rules(f in fleet_strategy(), seed in any::<u64>()) {
        let counts = DailyCounts::default();
        let input = PlanningInput { due: &f.due, mailboxes: &f.mailboxes, sequences: &f.sequences, counts: &counts };
        let p = plan(f.now, &input, &PlannerConfig::with_seed(seed));
        let problems = check(f.now, &input, &p);
        prop_assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn planning_is_deterministic_and_order_free(f in fleet_strategy(), seed in any::<u64>()) {
        let a = run(&f, seed);
        prop_assert_eq!(&a, &run(&f, seed));
        let mut g = f.clone();
        g.due.reverse();
        g.mailboxes.reverse();
        g.sequences.reverse();
        let b = run(&g, seed);
        let key = |p: &Plan, due: &[DueStep]| {
            let mut sends: Vec<_> = p.sends.iter().map(|s| (due[s.index].enrollment, s.mailbox, s.at)).collect();
            sends.sort();
            let mut deferred: Vec<_> = p.deferred.iter().map(|d| (due[d.index].enrollment, d.reason, d.not_before)).collect();
            deferred.sort_by_key(|d| d.0);
            (sends, deferred)
        };
        prop_assert_eq!(key(&a, &f.due), key(&b, &g.due));
    }

    #[test]
    fn kept_working_memory_changes_no_answer(
        f in fleet_strategy(),
        g in fleet_strategy(),
        seed in any::<u64>(),
    ) {
        let mut scratch = PlanScratch::default();
        let counts = DailyCounts::default();
        for fleet in [&f, &g, &f] {
            let input = PlanningInput {
                due: &fleet.due,
                mailboxes: &fleet.mailboxes,
                sequences: &fleet.sequences,
                counts: &counts,
            };
            let kept = plan_with(&mut scratch, fleet.now, &input, &PlannerConfig::with_seed(seed));
            prop_assert_eq!(kept, run(fleet, seed));
        }
    }

    #[test]
    fn no_capacity_left_idle(f in fleet_strategy(), seed in any::<u64>()) {
        let counts = DailyCounts::default();
        let input = PlanningInput { due: &f.due, mailboxes: &f.mailboxes, sequences: &f.sequences, counts: &counts };
        let p = plan(f.now, &input, &PlannerConfig::with_seed(seed));
        // Every deferral, whatever its reason: none may leave a mailbox able to send it today.
        for d in &p.deferred {
            let item = &f.due[d.index];
            let seq = f.sequences.iter().find(|s| s.id == item.sequence).unwrap();
            let sticky_active = item.sticky_mailbox.and_then(|m| f.mailboxes.iter().find(|s| s.mailbox.id == m))
                .filter(|s| s.mailbox.status() == MailboxStatus::Active);
            let candidates: Vec<&MailboxSnapshot> = match sticky_active {
                Some(s) => vec![s],
                None => f.mailboxes.iter().filter(|s| seq.pool.contains(&s.mailbox.id)).collect(),
            };
            for snap in candidates {
                prop_assert!(!could_still_send(f.now, &input, &p, item, snap),
                    "item {} deferred ({:?}) but mailbox {} could still send it today", d.index, d.reason, snap.mailbox.id);
            }
        }
    }

    #[test]
    fn two_plans_in_a_row_stay_within_limits(f in fleet_strategy(), seed in any::<u64>()) {
        let first = run(&f, seed);
        // Apply the first plan to the snapshots, as a store would.
        let mut g = f.clone();
        for snap in &mut g.mailboxes {
            let mine: Vec<_> = first.sends.iter().filter(|s| s.mailbox == snap.mailbox.id).collect();
            let released = snap.planned.iter().filter(|p| first.preempt.contains(&p.send)).count() as u32;
            snap.used = snap.used + mine.len() as u32 - released;
            snap.planned.retain(|p| !first.preempt.contains(&p.send));
            for s in mine {
                snap.planned.push(PlannedSlot { send: SendId::new(), enrollment: s.enrollment, step: s.step, at: s.at });
            }
            snap.planned.sort_by_key(|p| p.at);
        }
        // A second wave of due enrollments, new ids.
        for d in &mut g.due {
            d.enrollment = EnrollmentId::from_u128(d.enrollment.0.as_u128() + 1_000_000);
        }
        let counts = DailyCounts::default();
        let input = PlanningInput { due: &g.due, mailboxes: &g.mailboxes, sequences: &g.sequences, counts: &counts };
        let second = plan(g.now, &input, &PlannerConfig::with_seed(seed ^ 1));
        let problems = check(g.now, &input, &second);
        prop_assert!(problems.is_empty(), "{problems:#?}");
    }
}

// ---- fixed cases ---------------------------------------------------------------------------

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
    fn plan(&self) -> Plan {
        let input = PlanningInput {
            due: &self.due,
            mailboxes: &self.mailboxes,
            sequences: &self.sequences,
            counts: &self.counts,
        };
        let p = plan(self.now, &input, &PlannerConfig::with_seed(7));
        let problems = check(self.now, &input, &p);
        assert!(problems.is_empty(), "{problems:#?}");
        p
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

#[test]
fn a_follow_up_takes_over_a_planned_new_enrollment_slot() {
    let mut case = one_mailbox_case(2, 0, 0);
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
    let p = case.plan();
    assert_eq!(p.preempt, vec![send]);
    assert_eq!(p.sends.len(), 1);
    assert_eq!(p.sends[0].at, later);
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
