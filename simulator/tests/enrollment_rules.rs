//! `simulate` against the rules of `scenario-format.md` that follow each enrollment: steps
//! in order after their delays, retries backing off (rule 4), the sticky sender (5), exits
//! and pauses (6) and completion (10); then random scenarios, checked by the independent
//! checker against rules 1 to 6.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test loudly on what it did not expect"
)]

mod support;

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use sequence_simulator::check::{check, unfinished};
use sequence_simulator::scenario;
use sequence_simulator::simulate::{self, Outcome};

use support::{business_hours, contacts, mailbox, of, runtime, simulate, status, step, WEEKDAYS};

// ---- rule 4: order, delay, retries -------------------------------------------------------------

#[test]
fn rule_4_steps_in_order_after_their_delays_and_retries_back_off() {
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 6, "seed": 2,
        "retry": { "max_attempts": 3, "base_seconds": 900 },
        "mailboxes": [mailbox("mb", "UTC", 50, 60, json!([{ "days": WEEKDAYS, "start": "08:00", "end": "20:00" }]))],
        "sequences": [{ "id": "s", "mailboxes": ["mb"],
                        "steps": [step(0, "days", "One"), step(2, "hours", "Two"), step(1, "days", "Three")] }],
        "contacts": contacts(3, "s", "2026-03-09T10:00:00Z", None),
        "failures": [{ "contact": "c1", "step": 1, "error": "transient", "count": 2 },
                     { "contact": "c2", "step": 0, "error": "transient", "count": 5 }],
    });
    let (_, run) = simulate(&v);
    let c0 = of(&run, "c0");
    assert_eq!(c0.iter().map(|a| a.step).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(c0[1].at >= c0[0].at + Duration::hours(2));
    assert!(c0[2].at >= c0[1].at + Duration::days(1));
    let c1 = of(&run, "c1");
    let steps: Vec<(u32, u32, Outcome)> =
        c1.iter().map(|a| (a.step, a.attempt, a.outcome)).collect();
    assert_eq!(
        steps,
        [
            (0, 1, Outcome::Sent),
            (1, 1, Outcome::TransientFailure),
            (1, 2, Outcome::TransientFailure),
            (1, 3, Outcome::Sent),
            (2, 1, Outcome::Sent)
        ]
    );
    assert!(c1[2].at >= c1[1].at + Duration::seconds(900));
    assert!(c1[3].at >= c1[2].at + Duration::seconds(1800));
    assert_eq!(status(&run, "c1", "s"), ("completed", None));
    // Retries spent: the enrollment exits as failed after max_attempts.
    assert_eq!(of(&run, "c2").len(), 3);
    assert_eq!(status(&run, "c2", "s"), ("exited", Some("failed")));
}

#[test]
fn rule_4_skipped_steps_count_as_done_when_skipped() {
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 5,
        "mailboxes": [mailbox("mb", "UTC", 50, 0, Value::Null)],
        "sequences": [{ "id": "s", "mailboxes": ["mb"],
                        "steps": [step(0, "hours", "One"),
                                  { "delay": { "amount": 1, "unit": "days" }, "subject": "VIP only", "body": ".",
                                    "condition": { "tag": "vip" }, "on_condition_fail": "skip" },
                                  step(1, "days", "Three")] }],
        "contacts": [
            { "id": "vip", "email": "v@x.example", "tags": ["vip"], "enroll": [{ "sequence": "s", "at": "2026-03-09T00:00:00Z" }] },
            { "id": "std", "email": "s@x.example", "enroll": [{ "sequence": "s", "at": "2026-03-09T00:00:00Z" }] },
        ],
    });
    let (_, run) = simulate(&v);
    assert_eq!(
        of(&run, "vip").iter().map(|a| a.step).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let std = of(&run, "std");
    assert_eq!(std.iter().map(|a| a.step).collect::<Vec<_>>(), [0, 2]);
    // Step 1 is skipped when it comes due (a day after step 0); step 2 a day after that.
    assert!(std[1].at >= std[0].at + Duration::days(2));
    assert_eq!(status(&run, "std", "s"), ("completed", None));
}

#[test]
fn rule_4_business_day_delays_agree_for_contacts_without_a_zone() {
    // A Pacific mailbox sending late on Friday (UTC Saturday), contacts without a zone, and
    // a business-day follow-up: every part of the engine counts the delay in the same zone,
    // so the checker finds no step before its delay.
    let v = json!({
        "start": "2026-03-13T00:00:00Z", "days": 10, "seed": 3,
        "mailboxes": [mailbox("la", "America/Los_Angeles", 30, 60,
            json!([{ "days": WEEKDAYS, "start": "15:00", "end": "20:00" }]))],
        "sequences": [{ "id": "s", "mailboxes": ["la"],
                        "steps": [step(0, "days", "Hi"), step(1, "business_days", "Re: Hi")] }],
        "contacts": contacts(20, "s", "2026-03-13T00:00:00Z", None),
    });
    let (_, run) = simulate(&v);
    assert_eq!(run.attempts.len(), 40);
}

// ---- rule 5: sticky sender ------------------------------------------------------------------------

#[test]
fn rule_5_sticky_sender_moves_only_off_a_paused_mailbox() {
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 6, "seed": 9,
        "mailboxes": [mailbox("a", "UTC", 20, 60, business_hours()), mailbox("b", "UTC", 20, 60, business_hours()),
                      mailbox("c", "UTC", 20, 60, business_hours())],
        "sequences": [{ "id": "s", "mailboxes": ["a", "b", "c"],
                        "steps": [step(0, "days", "One"), step(1, "days", "Two"), step(1, "days", "Three")] }],
        "contacts": contacts(30, "s", "2026-03-09T00:00:00Z", None),
        "events": [{ "at": "2026-03-10T00:00:00Z", "type": "pause_mailbox", "mailbox": "a" }],
    });
    let (_, run) = simulate(&v);
    let first_on_a: Vec<&str> = run
        .attempts
        .iter()
        .filter(|x| x.mailbox == "a" && x.step == 0)
        .map(|x| x.contact.as_str())
        .collect();
    assert!(
        !first_on_a.is_empty(),
        "least-loaded rotation used mailbox a"
    );
    for c in first_on_a {
        let later: Vec<_> = of(&run, c).into_iter().filter(|x| x.step > 0).collect();
        assert!(
            later.iter().all(|x| x.mailbox != "a"),
            "{c} still on paused a"
        );
        assert_eq!(status(&run, c, "s").0, "completed");
    }
    // New enrollments spread over the pool: no mailbox takes more than half of them.
    let mut starts: HashMap<&str, usize> = HashMap::new();
    for a in run.attempts.iter().filter(|a| a.step == 0) {
        *starts.entry(a.mailbox.as_str()).or_default() += 1;
    }
    assert!(starts.values().all(|&n| n <= 15), "{starts:?}");
}

// ---- rule 6: exits and pauses -------------------------------------------------------------------

#[test]
fn rule_6_replies_unsubscribes_bounces_failures_and_pauses_stop_sends() {
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 10, "seed": 4,
        "mailboxes": [mailbox("mb", "UTC", 50, 60, business_hours())],
        "sequences": [
            { "id": "s", "mailboxes": ["mb"], "steps": [step(0, "days", "One"), step(1, "days", "Two"), step(1, "days", "Three")] },
            { "id": "keep", "mailboxes": ["mb"], "exit_on_reply": false,
              "steps": [step(0, "days", "K1"), step(1, "days", "K2"), step(1, "days", "K3")] },
            { "id": "cond", "mailboxes": ["mb"],
              "steps": [step(0, "days", "C1"),
                        { "delay": { "amount": 1, "unit": "days" }, "subject": "C2", "body": ".",
                          "condition": { "tag": "vip" }, "on_condition_fail": "exit" },
                        step(1, "days", "C3")] },
        ],
        "contacts": [
            { "id": "replier", "email": "r@x.example", "enroll": [{ "sequence": "s", "at": "2026-03-09T00:00:00Z" },
                                                                 { "sequence": "keep", "at": "2026-03-09T00:00:00Z" }] },
            { "id": "unsub", "email": "u@x.example", "enroll": [{ "sequence": "s", "at": "2026-03-09T00:00:00Z" },
                                                               { "sequence": "keep", "at": "2026-03-09T00:00:00Z" }] },
            { "id": "bouncer", "email": "b@x.example", "enroll": [{ "sequence": "s", "at": "2026-03-09T00:00:00Z" }] },
            { "id": "perm", "email": "p@x.example", "enroll": [{ "sequence": "s", "at": "2026-03-09T00:00:00Z" },
                                                              { "sequence": "keep", "at": "2026-03-09T00:00:00Z" }] },
            { "id": "late", "email": "l@x.example", "enroll": [{ "sequence": "s", "at": "2026-03-12T00:00:00Z" }] },
            { "id": "nonvip", "email": "n@x.example", "enroll": [{ "sequence": "cond", "at": "2026-03-09T00:00:00Z" }] },
        ],
        "events": [
            { "at": "2026-03-09T20:00:00Z", "type": "reply", "contact": "replier" },
            { "at": "2026-03-09T20:00:00Z", "type": "unsubscribe", "contact": "unsub" },
            { "at": "2026-03-09T20:00:00Z", "type": "bounce", "contact": "bouncer" },
            { "at": "2026-03-12T00:00:00Z", "type": "pause_sequence", "sequence": "s" },
            { "at": "2026-03-16T00:00:00Z", "type": "resume_sequence", "sequence": "s" },
        ],
        "failures": [{ "contact": "perm", "step": 1, "error": "permanent", "sequence": "keep" }],
    });
    let (_, run) = simulate(&v);
    assert_eq!(status(&run, "replier", "s"), ("exited", Some("replied")));
    assert_eq!(
        status(&run, "replier", "keep").0,
        "completed",
        "exit_on_reply false"
    );
    assert_eq!(status(&run, "unsub", "s"), ("exited", Some("unsubscribed")));
    assert_eq!(
        status(&run, "unsub", "keep"),
        ("exited", Some("unsubscribed"))
    );
    assert_eq!(status(&run, "bouncer", "s"), ("exited", Some("bounced")));
    assert_eq!(status(&run, "perm", "keep"), ("exited", Some("bounced")));
    assert_eq!(status(&run, "perm", "s"), ("exited", Some("bounced")));
    assert_eq!(
        status(&run, "nonvip", "cond"),
        ("exited", Some("condition_not_met"))
    );
    assert_eq!(of(&run, "nonvip").len(), 1);
    // Paused for four days, then carried on where it stopped.
    let late = of(&run, "late");
    assert!(late.iter().all(
        |a| a.at < Utc.with_ymd_and_hms(2026, 3, 12, 0, 0, 0).unwrap()
            || a.at >= Utc.with_ymd_and_hms(2026, 3, 16, 0, 0, 0).unwrap()
    ));
    assert_eq!(late.iter().map(|a| a.step).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(status(&run, "late", "s").0, "completed");
}

#[test]
fn rule_6_a_paused_sequence_is_reported_paused() {
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 3,
        "mailboxes": [mailbox("mb", "UTC", 50, 60, Value::Null)],
        "sequences": [{ "id": "s", "mailboxes": ["mb"], "steps": [step(0, "days", "One"), step(1, "days", "Two")] }],
        "contacts": contacts(2, "s", "2026-03-09T00:00:00Z", None),
        "events": [{ "at": "2026-03-09T12:00:00Z", "type": "pause_sequence", "sequence": "s" }],
    });
    let (_, run) = simulate(&v);
    let noon = Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap();
    assert!(
        run.attempts.iter().all(|a| a.at < noon),
        "{:?}",
        run.attempts
    );
    assert_eq!(status(&run, "c0", "s").0, "paused");
    assert_eq!(status(&run, "c1", "s").0, "paused");
}

// ---- rule 10: completion -------------------------------------------------------------------------------

#[test]
fn rule_10_everything_completes_with_ample_capacity() {
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 10, "seed": 6,
        "mailboxes": [mailbox("a", "America/Chicago", 100, 60, business_hours()),
                      mailbox("b", "Europe/Paris", 100, 60, business_hours())],
        "sequences": [{ "id": "s", "mailboxes": ["a", "b"],
                        "recipient_windows": [{ "days": WEEKDAYS, "start": "08:00", "end": "18:00" }],
                        "steps": [step(0, "days", "One"), step(2, "days", "Two"), step(2, "days", "Three")] }],
        "contacts": contacts(40, "s", "2026-03-09T00:00:00Z", Some("America/New_York")),
    });
    let (scenario, run) = simulate(&v);
    let unfinished = unfinished(&scenario, &run);
    assert!(unfinished.is_empty(), "{unfinished:?}");
    assert_eq!(run.attempts.len(), 120);
}

/// A window as the test reads it from the JSON: (weekday indices from Monday, start and end
/// in minutes of the local day). Kept apart from `sequence-core`'s windows on purpose.
type TestWindow = (Vec<u32>, u32, u32);

fn test_windows(v: &Value) -> Vec<TestWindow> {
    let minutes = |s: &str| -> u32 {
        let (h, m) = s.split_once(':').unwrap();
        h.parse::<u32>().unwrap() * 60 + m.parse::<u32>().unwrap()
    };
    v.as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let days = w["days"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                        .iter()
                        .position(|n| n == d)
                        .unwrap() as u32
                })
                .collect();
            (
                days,
                minutes(w["start"].as_str().unwrap()),
                minutes(w["end"].as_str().unwrap()),
            )
        })
        .collect()
}

/// Whether `t` is inside one of `windows` in `tz`, read straight off chrono-tz's local time.
fn open_at(tz: chrono_tz::Tz, windows: &[TestWindow], t: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    let local = t.with_timezone(&tz).naive_local();
    let day = local.weekday().num_days_from_monday();
    let yesterday = (day + 6) % 7;
    let second = local.num_seconds_from_midnight();
    windows.iter().any(|(days, start, end)| {
        let (start, end) = (start * 60, end * 60);
        if start > end {
            (days.contains(&day) && second >= start) || (days.contains(&yesterday) && second < end)
        } else {
            days.contains(&day) && start <= second && second < end
        }
    })
}

/// The first open run of time at or after `due`: `[start, end)`. Windows and every zone's
/// offset change on whole minutes, so a minute scan finds the edges exactly.
fn first_open_run(
    tz: chrono_tz::Tz,
    windows: &[TestWindow],
    due: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let next_minute = |t: DateTime<Utc>| {
        t - Duration::seconds(i64::from(t.second()))
            - Duration::nanoseconds(i64::from(t.nanosecond()))
            + Duration::minutes(1)
    };
    let mut start = due;
    while !open_at(tz, windows, start) {
        start = next_minute(start);
        assert!(start - due < Duration::days(8), "never opens after {due}");
    }
    let mut end = next_minute(start);
    while open_at(tz, windows, end) {
        end += Duration::minutes(1);
    }
    (start, end)
}

#[test]
fn rule_10_a_step_due_in_a_run_across_midnight_goes_in_that_run() {
    // Windows across local midnight, daily steps, ample capacity: each step goes out in the
    // first open run at or after it falls due, whichever local day the run's parts belong
    // to. Both New York DST changes of 2026 and an April week in Chatham (+12:45/+13:45).
    let ny = json!([{ "days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "22:00", "end": "02:30" }]);
    let chatham = json!([{ "days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "23:15", "end": "00:45" }]);
    for start in [
        "2026-03-05T00:00:00Z",
        "2026-10-29T00:00:00Z",
        "2026-04-02T00:00:00Z",
    ] {
        let t0 = DateTime::parse_from_rfc3339(start).unwrap().to_utc();
        let mut cs = Vec::new();
        for i in 0..24 {
            let seq = if i % 2 == 0 { "ny" } else { "ch" };
            let at = t0 + Duration::minutes(53 * i64::from(i));
            cs.push(
                json!({ "id": format!("c{i}"), "email": format!("c{i}@x.example"),
                            "enroll": [{ "sequence": seq, "at": at.to_rfc3339() }] }),
            );
        }
        let steps = json!([
            step(0, "days", "One"),
            step(1, "days", "Two"),
            step(1, "days", "Three"),
            step(1, "days", "Four")
        ]);
        let v = json!({
            "start": start, "days": 7, "seed": 17,
            "mailboxes": [mailbox("mb-ny", "America/New_York", 100, 60, ny.clone()),
                          mailbox("mb-ch", "Pacific/Chatham", 100, 60, chatham.clone())],
            "sequences": [{ "id": "ny", "mailboxes": ["mb-ny"], "steps": steps.clone() },
                          { "id": "ch", "mailboxes": ["mb-ch"], "steps": steps }],
            "contacts": cs,
        });
        let (scenario, run) = simulate(&v);
        let mut late = Vec::new();
        for c in &scenario.contacts {
            let e = &c.enroll[0];
            let (tz, windows) = if e.sequence == "ny" {
                (chrono_tz::America::New_York, test_windows(&ny))
            } else {
                (chrono_tz::Pacific::Chatham, test_windows(&chatham))
            };
            let mut due = e.at;
            for (k, a) in of(&run, &c.id).into_iter().enumerate() {
                assert_eq!(a.step as usize, k);
                if k > 0 {
                    due += Duration::days(1);
                }
                let (open, close) = first_open_run(tz, &windows, due);
                if a.at < open || a.at >= close {
                    late.push(format!(
                        "{} step {k} due {due} went at {}, its run is [{open}, {close})",
                        c.id, a.at
                    ));
                }
                due = a.at;
            }
        }
        assert!(
            late.is_empty(),
            "{start}: {} late:\n{}",
            late.len(),
            late.join("\n")
        );
        assert!(
            run.attempts.len() >= 60,
            "{start}: {} attempts",
            run.attempts.len()
        );
    }
}

// ---- random scenarios: rules 1-6 on what we have not thought of -----------------------------

const ZONES: [&str; 12] = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "America/St_Johns",
    "Europe/Berlin",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "UTC",
];

fn window_value() -> impl Strategy<Value = Value> {
    (1u8..128, 0u32..96, 1u32..96).prop_map(|(days, start, len)| {
        let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let days: Vec<&str> = (0..7).filter(|i| days & (1 << i) != 0).map(|i| names[i]).collect();
        let start_m = start * 15;
        let end_m = (start_m + len * 15) % 1440;
        let end_m = if end_m == start_m { (start_m + 60) % 1440 } else { end_m };
        let fmt = |m: u32| if m == 0 && start_m != 0 { "24:00".to_owned() } else { format!("{:02}:{:02}", m / 60, m % 60) };
        json!({ "days": days, "start": format!("{:02}:{:02}", start_m / 60, start_m % 60), "end": fmt(end_m) })
    })
}

fn scenario_value() -> impl Strategy<Value = Value> {
    let mailbox = (
        0usize..ZONES.len(),
        0u32..8,
        prop_oneof![Just(0u32), Just(60), Just(900)],
        prop::option::of(prop::collection::vec(window_value(), 1..3)),
        prop::bool::weighted(0.2),
    );
    (
        0i64..365,
        prop::collection::vec(mailbox, 1..4),
        prop::collection::vec((prop::collection::vec(0usize..4, 1..3), 1usize..4, prop::option::weighted(0.4, prop::collection::vec(window_value(), 1..2)), any::<bool>()), 1..3),
        prop::collection::vec((0usize..3, prop::option::of(0usize..ZONES.len()), 0i64..96, any::<bool>()), 1..24),
        prop::collection::vec((0u8..7, 0usize..24, 0i64..120), 0..8),
        prop::collection::vec((0usize..24, 0u32..3, any::<bool>(), 1u32..4), 0..4),
        any::<u64>(),
    )
        .prop_map(|(day, mbs, seqs, cs, evs, fails, seed)| {
            let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(day);
            let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let mailboxes: Vec<Value> = mbs.iter().enumerate().map(|(i, (z, limit, gap, windows, paused))| {
                let mut m = json!({ "id": format!("m{i}"), "email": format!("m{i}@s.example"), "timezone": ZONES[*z],
                                    "daily_limit": limit, "min_gap_seconds": gap });
                if i % 2 == 1 {
                    m["warmup"] = json!({ "start": 1, "increment": 2, "since": (start + Duration::days(1)).date_naive().to_string() });
                }
                if let Some(w) = windows { m["windows"] = json!(w); }
                if *paused { m["status"] = json!("paused"); }
                m
            }).collect();
            let sequences: Vec<Value> = seqs.iter().enumerate().map(|(i, (pool, steps, rw, exit))| {
                let mut pool: Vec<String> = pool.iter().map(|p| format!("m{}", p % mbs.len())).collect();
                pool.sort();
                pool.dedup();
                let steps: Vec<Value> = (0..*steps).map(|k| {
                    let (amount, unit) = match (i + k) % 3 {
                        0 => (if k == 0 { 0 } else { 40 + 7 * k as u32 }, "minutes"),
                        1 => (if k == 0 { 0 } else { 5 + k as u32 }, "hours"),
                        _ => (u32::from(k % 2 == 1), "days"),
                    };
                    let mut s = step(amount, unit, "S {{first_name}}");
                    if k == 1 && *exit { s["condition"] = json!({ "tag": "t" }); s["on_condition_fail"] = json!("exit"); }
                    s
                }).collect();
                let mut s = json!({ "id": format!("s{i}"), "mailboxes": pool, "steps": steps, "exit_on_reply": !*exit });
                if let Some(rw) = rw { s["recipient_windows"] = json!(rw); }
                s
            }).collect();
            let contacts: Vec<Value> = cs.iter().enumerate().map(|(i, (s, z, at, tag))| {
                let mut c = json!({ "id": format!("c{i}"), "email": format!("c{i}@r.example"), "first_name": format!("F{i}"),
                                    "enroll": [{ "sequence": format!("s{}", s % seqs.len()), "at": rfc(start + Duration::hours(*at)) }] });
                if let Some(z) = z { c["timezone"] = json!(ZONES[*z]); }
                if *tag { c["tags"] = json!(["t"]); }
                c
            }).collect();
            let events: Vec<Value> = evs.iter().map(|(kind, target, at)| {
                let at = rfc(start + Duration::hours(*at));
                let c = format!("c{}", target % cs.len());
                let m = format!("m{}", target % mbs.len());
                let s = format!("s{}", target % seqs.len());
                match kind {
                    0 => json!({ "at": at, "type": "reply", "contact": c }),
                    1 => json!({ "at": at, "type": "unsubscribe", "contact": c }),
                    2 => json!({ "at": at, "type": "bounce", "contact": c }),
                    3 => json!({ "at": at, "type": "pause_mailbox", "mailbox": m }),
                    4 => json!({ "at": at, "type": "resume_mailbox", "mailbox": m }),
                    5 => json!({ "at": at, "type": "pause_sequence", "sequence": s }),
                    _ => json!({ "at": at, "type": "resume_sequence", "sequence": s }),
                }
            }).collect();
            let longest = seqs.iter().map(|s| s.1).max().unwrap_or(1);
            let failures: Vec<Value> = fails.iter().map(|(c, step, permanent, count)| {
                json!({ "contact": format!("c{}", c % cs.len()), "step": *step as usize % longest,
                        "error": if *permanent { "permanent" } else { "transient" }, "count": count })
            }).collect();
            json!({ "start": rfc(start), "days": 1 + seed % 7, "seed": seed, "retry": { "max_attempts": 3, "base_seconds": 600 },
                    "mailboxes": mailboxes, "sequences": sequences, "contacts": contacts,
                    "events": events, "failures": failures })
        })
}

proptest! {
    // PROPTEST_CASES raises the count for a longer search.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
    ))]

    #[test]
    fn random_scenarios_keep_rules_1_to_6(v in scenario_value()) {
        let scenario = scenario::parse(&v.to_string()).map_err(|p| TestCaseError::fail(format!("{p:?}")))?;
        let run = runtime().block_on(simulate::run(&scenario, &simulate::Options::default())).unwrap();
        let problems = check(&scenario, &run);
        prop_assert!(problems.is_empty(), "{problems:#?}\n{}", serde_json::to_string_pretty(&v).unwrap());
    }
}
