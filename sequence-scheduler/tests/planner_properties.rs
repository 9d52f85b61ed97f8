//! The planner against the rules of `scenario-format.md` on random fleets (proptest): every
//! plan keeps them, planning is deterministic and free of input order, no capacity is left
//! idle, and kept working memory changes no answer.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

mod planner_support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use planner_support::*;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId};
use sequence_core::mailbox::MailboxStatus;
use sequence_core::store::{DailyCounts, MailboxSnapshot, PlannedSlot};
use sequence_core::time::{local_date, SendWindow, WarmUp, WeekdaySet, WeeklySchedule};
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
        more_due_on: &[],
    };
    plan(
        f.now,
        &input,
        &PlannerConfig::with_seed(seed).with_horizon(None),
    )
}

proptest! {
    // PROPTEST_CASES raises the count for a longer search.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(200),
    ))]

    #[test]
    fn every_plan_keeps_the_rules(f in fleet_strategy(), seed in any::<u64>()) {
        let counts = DailyCounts::default();
        let input = PlanningInput { due: &f.due, mailboxes: &f.mailboxes, sequences: &f.sequences, counts: &counts, more_due_on: &[] };
        let p = plan(f.now, &input, &PlannerConfig::with_seed(seed).with_horizon(None));
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
                more_due_on: &[],
            };
            let kept = plan_with(&mut scratch, fleet.now, &input, &PlannerConfig::with_seed(seed).with_horizon(None));
            prop_assert_eq!(kept, run(fleet, seed));
        }
    }

    #[test]
    fn no_capacity_left_idle(f in fleet_strategy(), seed in any::<u64>()) {
        let counts = DailyCounts::default();
        let input = PlanningInput { due: &f.due, mailboxes: &f.mailboxes, sequences: &f.sequences, counts: &counts, more_due_on: &[] };
        let p = plan(f.now, &input, &PlannerConfig::with_seed(seed).with_horizon(None));
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
        let input = PlanningInput { due: &g.due, mailboxes: &g.mailboxes, sequences: &g.sequences, counts: &counts, more_due_on: &[] };
        let second = plan(g.now, &input, &PlannerConfig::with_seed(seed ^ 1).with_horizon(None));
        let problems = check(g.now, &input, &second);
        prop_assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_horizon_keeps_what_the_whole_day_plan_makes_and_holds_the_rest(
        f in fleet_strategy(),
        seed in any::<u64>(),
        minutes in 1_i64..600,
    ) {
        let counts = DailyCounts::default();
        let input = PlanningInput { due: &f.due, mailboxes: &f.mailboxes, sequences: &f.sequences, counts: &counts, more_due_on: &[] };
        let horizon = Duration::minutes(minutes);
        let whole = plan(f.now, &input, &PlannerConfig::with_seed(seed).with_horizon(None));
        let cut = plan(f.now, &input, &PlannerConfig::with_seed(seed).with_horizon(Some(horizon)));
        if !whole.preempt.is_empty() {
            prop_assert_eq!(&cut, &whole, "a plan that pre-empts is never cut");
            return Ok(());
        }
        // Each mailbox's cutoff: `horizon` past its first send of the whole-day plan.
        let mut cutoff: std::collections::HashMap<MailboxId, DateTime<Utc>> = Default::default();
        for s in &whole.sends {
            let c = cutoff.entry(s.mailbox).or_insert(s.at + horizon);
            *c = (*c).min(s.at + horizon);
        }
        let kept: std::collections::HashSet<_> = cut.sends.iter().map(|s| (s.enrollment, s.mailbox, s.at)).collect();
        for s in &cut.sends {
            prop_assert!(whole.sends.iter().any(|w| (w.enrollment, w.mailbox, w.at) == (s.enrollment, s.mailbox, s.at)),
                "kept a send the whole-day plan does not make: {:?}", s);
        }
        // What is cut lies past its mailbox's cutoff, and a wait holds its enrollment back no
        // longer than that cutoff: the mailbox's wait (holding what was due at `now`) for a
        // follow-up sticky to it, its pool's for a new start.
        let mailbox_wait = |m: MailboxId, c: DateTime<Utc>| {
            cut.mailboxes_full.iter().any(|w| w.mailbox == m && w.until <= c && w.holds_due_by == Some(f.now))
        };
        for s in whole.sends.iter().filter(|s| !kept.contains(&(s.enrollment, s.mailbox, s.at))) {
            let c = cutoff[&s.mailbox];
            prop_assert!(s.at >= c, "cut a send before its mailbox's cutoff: {:?}", s);
            let item = &f.due[s.index];
            let held = match item.sticky_mailbox {
                Some(m) => m == s.mailbox,
                None => cut.pools_full.iter().any(|w| w.sequence == item.sequence && w.until <= c),
            };
            prop_assert!(held && mailbox_wait(s.mailbox, c), "cut {:?}, which no wait ending by {} holds", s, c);
            // Rule 8: a mailbox cut keeps nothing past its cutoff, so no follow-up stays
            // planned there for a later plan's new start to go before.
            prop_assert!(
                !cut.sends.iter().any(|o| o.mailbox == s.mailbox && o.at >= c),
                "cut {} at {} but kept a send past it", s.mailbox, c
            );
            prop_assert!(!cut.deferred.iter().any(|d| d.enrollment == s.enrollment), "cut and deferred: {:?}", s);
        }
        // Reservations count the sends kept; deferrals are the whole-day plan's, none later.
        let reserved: u32 = cut.reservations.iter().map(|r| r.count).sum();
        prop_assert_eq!(reserved as usize, cut.sends.len());
        prop_assert_eq!(cut.deferred.len(), whole.deferred.len());
        for (a, b) in cut.deferred.iter().zip(&whole.deferred) {
            prop_assert_eq!((a.enrollment, a.reason), (b.enrollment, b.reason));
            prop_assert!(a.not_before <= b.not_before);
        }
    }
}
