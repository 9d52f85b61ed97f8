//! What the planner tests share: fleets built from a few parts (mailboxes, snapshots, due
//! steps, sequence policies) and the checker of the plan-level rules of
//! `scenario-format.md`, written against the rules, not from the planner's code.
#![allow(dead_code, unreachable_pub)] // each test binary uses a part of the shared support
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;

use sequence_core::ids::{EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::{Mailbox, MailboxStatus};
use sequence_core::store::{DailyCounts, MailboxSnapshot};
use sequence_core::time::{local_date, LocalTime, SendWindow, WeekdaySet, WeeklySchedule};
use sequence_scheduler::planner::{
    plan, DueStep, Plan, PlannerConfig, PlanningInput, SequencePolicy,
};

pub fn tenant() -> TenantId {
    TenantId::from_u128(1)
}

pub fn lt(m: u32) -> LocalTime {
    LocalTime::from_hm(m / 60, m % 60).unwrap()
}

pub fn mailbox(i: u128, tz: Tz, limit: u32, schedule: WeeklySchedule, gap: u32) -> Mailbox {
    Mailbox::new(tenant(), format!("m{i}@sender.example"), tz)
        .unwrap()
        .with_id(MailboxId::from_u128(1000 + i))
        .with_daily_limit(limit)
        .with_schedule(schedule)
        .with_min_gap_seconds(gap)
}

pub fn snapshot(now: DateTime<Utc>, m: Mailbox, used: u32) -> MailboxSnapshot {
    MailboxSnapshot {
        local_date: local_date(m.timezone, now),
        mailbox: m,
        used,
        last_attempt_at: None,
        planned: Vec::new(),
        held_until: None,
    }
}

pub fn due(
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

pub fn policy(id: u128, pool: Vec<MailboxId>, recipient: Option<WeeklySchedule>) -> SequencePolicy {
    SequencePolicy {
        id: SequenceId::from_u128(id),
        active: true,
        pool,
        recipient_windows: recipient,
        new_enrollments_per_day: None,
        per_domain_daily_cap: None,
        more_due: false,
    }
}

// ---- fixed cases ------------------------------------------------------------------------------

/// One window on `days`, from `start` to `end` minutes of the local day.
pub fn one_window(days: WeekdaySet, start: u32, end: u32) -> WeeklySchedule {
    WeeklySchedule::windows(vec![SendWindow::new(days, lt(start), lt(end)).unwrap()])
}

/// Business hours on weekdays.
pub fn nine_to_five() -> WeeklySchedule {
    one_window(WeekdaySet::WEEKDAYS, 9 * 60, 17 * 60)
}

/// An instant in UTC.
pub fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// A plan's input, owned: the fixed cases build one and plan it.
pub struct Case {
    pub now: DateTime<Utc>,
    pub mailboxes: Vec<MailboxSnapshot>,
    pub sequences: Vec<SequencePolicy>,
    pub due: Vec<DueStep>,
    pub counts: DailyCounts,
}

impl Case {
    /// The whole day's plan, checked.
    pub fn plan(&self) -> Plan {
        let p = self.plan_with(&PlannerConfig::with_seed(7).with_horizon(None));
        let problems = check(self.now, &self.input(), &p);
        assert!(problems.is_empty(), "{problems:#?}");
        p
    }

    /// The planner's view of the case.
    pub fn input(&self) -> PlanningInput<'_> {
        PlanningInput {
            due: &self.due,
            mailboxes: &self.mailboxes,
            sequences: &self.sequences,
            counts: &self.counts,
            more_due_on: &[],
        }
    }

    /// The plan made with `config`, unchecked.
    pub fn plan_with(&self, config: &PlannerConfig) -> Plan {
        plan(self.now, &self.input(), config)
    }
}

/// Monday 2026-03-09 10:00 in New York (14:00Z).
pub fn monday_ny() -> DateTime<Utc> {
    at(2026, 3, 9, 14, 0)
}

/// One New York mailbox (nine to five, `limit` a day, `gap` seconds) and `n` new starts due
/// now, at [`monday_ny`].
pub fn one_mailbox_case(limit: u32, n: usize, gap: u32) -> Case {
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

/// `n` follow-ups due now, sticky to the one mailbox of [`one_mailbox_case`].
pub fn follow_ups_case(limit: u32, n: usize) -> Case {
    let mut case = one_mailbox_case(limit, 0, 120);
    let (seq, mailbox) = (case.sequences[0].id, case.mailboxes[0].mailbox.id);
    case.due = (0..n)
        .map(|i| due(i as u128 + 1, seq, 1, case.now, Some(mailbox), None))
        .collect();
    case
}

// ---- the rule checker ---------------------------------------------------------------------------

/// Check every plan-level rule; return the problems found.
pub fn check(now: DateTime<Utc>, input: &PlanningInput<'_>, plan: &Plan) -> Vec<String> {
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
    problems.extend(follow_ups_go_first(input, plan, &mailboxes, &sequences));
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

/// Rule 8 within a plan: no new start on a mailbox goes before a follow-up of the plan on
/// that mailbox that is due by then and could go then (its recipient's windows), when the new
/// start could as well go at the follow-up's instant: the two could trade places.
fn follow_ups_go_first(
    input: &PlanningInput<'_>,
    plan: &Plan,
    mailboxes: &HashMap<MailboxId, &MailboxSnapshot>,
    sequences: &HashMap<SequenceId, &SequencePolicy>,
) -> Vec<String> {
    let may_go_at = |index: usize, mailbox: MailboxId, t: DateTime<Utc>| {
        let item = &input.due[index];
        let zone = item
            .contact_zone
            .or_else(|| mailboxes.get(&mailbox).map(|s| s.mailbox.timezone));
        match (&sequences[&item.sequence].recipient_windows, zone) {
            (Some(rw), Some(zone)) => rw.contains(zone, t),
            _ => true,
        }
    };
    let mut problems = Vec::new();
    for start in plan.sends.iter().filter(|s| s.step == 0) {
        for f in &plan.sends {
            let trade = f.mailbox == start.mailbox
                && f.step > 0
                && f.at > start.at
                && input.due[f.index].earliest <= start.at
                && may_go_at(f.index, f.mailbox, start.at)
                && may_go_at(start.index, start.mailbox, f.at);
            if trade {
                problems.push(format!(
                    "item {} starts at {} before item {}, a follow-up due by then, at {}",
                    start.index, start.at, f.index, f.at
                ));
            }
        }
    }
    problems
}

/// Is there an instant today on `m` where `item` could still go (work-conserving check)?
pub fn could_still_send(
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
