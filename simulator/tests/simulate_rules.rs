//! `simulate` against the ten rules of `scenario-format.md`: one scenario per rule at
//! least, random scenarios checked by the independent checker, and every kind of invalid
//! input through the binary's library entry point.
#![allow(clippy::unwrap_used, clippy::too_many_lines, missing_docs)]

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use sequence_simulator::check::{check, mailbox_days_below_limit, unfinished};
use sequence_simulator::cli::{main_with, EXIT_INVALID, EXIT_OK};
use sequence_simulator::scenario::{self, Scenario};
use sequence_simulator::simulate::{self, Attempt, Outcome, Run};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Parse, run and check the rules; return the scenario and the run.
fn simulate(v: &Value) -> (Scenario, Run) {
    let scenario = scenario::parse(&v.to_string()).unwrap_or_else(|p| panic!("{p:#?}"));
    let run = runtime()
        .block_on(simulate::run(&scenario, &simulate::Options::default()))
        .unwrap();
    let problems = check(&scenario, &run);
    assert!(problems.is_empty(), "rules broken: {problems:#?}");
    (scenario, run)
}

const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

#[allow(clippy::needless_pass_by_value)] // reads better at the call sites
fn mailbox(id: &str, tz: &str, limit: u32, gap: u32, windows: Value) -> Value {
    json!({ "id": id, "email": format!("{id}@sender.example"), "timezone": tz,
            "daily_limit": limit, "min_gap_seconds": gap, "windows": windows })
}

fn business_hours() -> Value {
    json!([{ "days": WEEKDAYS, "start": "09:00", "end": "17:00" }])
}

fn step(amount: u32, unit: &str, subject: &str) -> Value {
    json!({ "delay": { "amount": amount, "unit": unit }, "subject": subject, "body": "Hello {{first_name}}" })
}

fn contacts(n: usize, seq: &str, at: &str, tz: Option<&str>) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut c = json!({ "id": format!("c{i}"), "email": format!("c{i}@client{}.example", i % 7),
                                "first_name": format!("N{i}"),
                                "enroll": [{ "sequence": seq, "at": at }] });
            if let Some(tz) = tz {
                c["timezone"] = json!(tz);
            }
            c
        })
        .collect()
}

fn of<'a>(run: &'a Run, contact: &str) -> Vec<&'a Attempt> {
    run.attempts
        .iter()
        .filter(|a| a.contact == contact)
        .collect()
}

fn status<'a>(run: &'a Run, contact: &str, seq: &str) -> (&'a str, Option<&'a str>) {
    let r = run
        .summary
        .enrollments
        .iter()
        .find(|r| r.contact == contact && r.sequence == seq)
        .unwrap();
    (r.status.as_str(), r.exit_reason.as_deref())
}

// ---- rule 1 and rule 7: capacity, and every open mailbox-day full under saturation -------

/// [`mailbox_days_below_limit`] on Monday to Friday (the weekend is closed).
fn weekdays_below_limit(scenario: &Scenario, run: &Run) -> Vec<(String, NaiveDate, u32, u32)> {
    mailbox_days_below_limit(scenario, run)
        .into_iter()
        .filter(|(_, day, _, _)| chrono::Datelike::weekday(day).num_days_from_monday() < 5)
        .collect()
}

#[test]
fn rule_1_and_7_capacity_per_local_day_filled_under_saturation() {
    // Two mailboxes in zones far apart, 5 and 3 a day, with far more demand than capacity.
    let v = json!({
        "name": "saturation", "start": "2026-03-09T00:00:00Z", "days": 5, "seed": 3,
        "mailboxes": [
            mailbox("mb-ny", "America/New_York", 5, 120, business_hours()),
            mailbox("mb-tok", "Asia/Tokyo", 3, 120, business_hours()),
        ],
        "sequences": [{ "id": "s", "mailboxes": ["mb-ny", "mb-tok"],
                        "steps": [step(0, "days", "Hi {{first_name}}"), step(1, "days", "Re: Hi")] }],
        "contacts": contacts(80, "s", "2026-03-09T00:00:00Z", None),
    });
    let (scenario, run) = simulate(&v);
    // Every weekday fully inside the scenario reaches its limit; weekends are closed.
    let below = weekdays_below_limit(&scenario, &run);
    assert!(
        below.is_empty(),
        "work-conserving: days below their limit {below:?}"
    );
    assert_eq!(run.summary.mailboxes[0].attempts, 5 * 5);
    // Tokyo's Monday 09:00 is the scenario's start: Monday to Friday, three a day.
    assert_eq!(run.summary.mailboxes[1].attempts, 15);
}

#[test]
fn rule_7_every_mailbox_of_a_pool_in_three_zones_fills_its_days() {
    // One sequence, three mailboxes in New York, London and Tokyo, 30 a day, 09:00-17:00 on
    // weekdays, 1,500 contacts enrolled at once: new starts wait for weeks, so every
    // weekday of every mailbox must reach its limit, the Tokyo one included.
    let v = json!({
        "name": "three-zones", "start": "2026-03-09T00:00:00Z", "days": 35, "seed": 5,
        "mailboxes": [
            mailbox("mb-ny", "America/New_York", 30, 0, business_hours()),
            mailbox("mb-ldn", "Europe/London", 30, 0, business_hours()),
            mailbox("mb-tyo", "Asia/Tokyo", 30, 0, business_hours()),
        ],
        "sequences": [{ "id": "s", "mailboxes": ["mb-ny", "mb-ldn", "mb-tyo"],
                        "steps": [step(0, "days", "Hi {{first_name}}"), step(2, "days", "Re: Hi"),
                                  step(3, "days", "Last one")] }],
        "contacts": contacts(1500, "s", "2026-03-09T00:00:00Z", None),
    });
    let (scenario, run) = simulate(&v);
    let started = run.attempts.iter().filter(|a| a.step == 0).count();
    assert!(
        started < 1500,
        "fixture: new starts wait to the end ({started} started)"
    );
    let below = weekdays_below_limit(&scenario, &run);
    assert!(below.is_empty(), "weekdays below their limit: {below:?}");
}

#[test]
fn rule_7_capacity_freed_by_replies_is_used_the_same_day() {
    // Six a day, twenty waiting. A first run shows whose sends are planned for after 10:00;
    // in a second run those contacts reply at 10:00, so their sends are called off, and the
    // units must go to contacts still waiting, the same day.
    let mut v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 1, "seed": 12,
        "mailboxes": [mailbox("mb", "UTC", 6, 60, business_hours())],
        "sequences": [{ "id": "s", "mailboxes": ["mb"], "steps": [step(0, "days", "Hi")] }],
        "contacts": contacts(20, "s", "2026-03-09T00:00:00Z", None),
    });
    let ten = Utc.with_ymd_and_hms(2026, 3, 9, 10, 0, 0).unwrap();
    let (_, first) = simulate(&v);
    let late: Vec<String> = first
        .attempts
        .iter()
        .filter(|a| a.at >= ten)
        .map(|a| a.contact.clone())
        .collect();
    assert!(
        late.len() >= 3,
        "fixture: sends planned after 10:00: {:?}",
        first.attempts
    );
    v["events"] = json!(late
        .iter()
        .map(|c| json!({ "at": "2026-03-09T10:00:00Z", "type": "reply", "contact": c }))
        .collect::<Vec<_>>());
    let (_, second) = simulate(&v);
    assert!(second.attempts.iter().all(|a| !late.contains(&a.contact)));
    assert_eq!(
        second.attempts.len(),
        6,
        "the day must reach its limit: {:?}",
        second.attempts
    );
}

#[test]
fn rule_1_warm_up_ramps_the_limit() {
    let mut mb = mailbox("mb", "Europe/Berlin", 20, 60, business_hours());
    mb["warmup"] = json!({ "start": 2, "increment": 3, "since": "2026-03-10" });
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 5,
        "mailboxes": [mb],
        "sequences": [{ "id": "s", "mailboxes": ["mb"], "steps": [step(0, "days", "Hi")] }],
        "contacts": contacts(60, "s", "2026-03-09T00:00:00Z", None),
    });
    let (_, run) = simulate(&v);
    let mut per_day: HashMap<NaiveDate, u32> = HashMap::new();
    for a in &run.attempts {
        *per_day.entry(a.at.date_naive()).or_default() += 1;
    }
    let day = |d: u32| {
        per_day
            .get(&NaiveDate::from_ymd_opt(2026, 3, d).unwrap())
            .copied()
            .unwrap_or(0)
    };
    // Before `since`: the start value; then start + increment * k.
    assert_eq!(
        [day(9), day(10), day(11), day(12), day(13)],
        [2, 2, 5, 8, 11]
    );
}

// ---- rule 2: windows, DST both ways, odd offsets, windows over midnight ------------------

#[test]
fn rule_2_windows_across_spring_forward_and_fall_back() {
    // New York springs forward on Sunday 2026-03-08 (02:00 -> 03:00) and falls back on
    // Sunday 2026-11-01 (02:00 -> 01:00). The windows straddle the changes.
    for start in ["2026-03-07T00:00:00Z", "2026-10-31T00:00:00Z"] {
        let windows = json!([{ "days": ["sun"], "start": "01:30", "end": "03:30" },
                             { "days": ["sat", "mon"], "start": "23:00", "end": "02:30" }]);
        let v = json!({
            "start": start, "days": 3, "seed": 11,
            "mailboxes": [mailbox("mb", "America/New_York", 40, 60, windows)],
            "sequences": [{ "id": "s", "mailboxes": ["mb"],
                            "recipient_windows": [{ "days": ["sat", "sun", "mon"], "start": "00:00", "end": "24:00" }],
                            "steps": [step(0, "minutes", "Hi")] }],
            "contacts": contacts(60, "s", start, Some("Europe/London")),
        });
        let (_, run) = simulate(&v);
        assert!(
            run.attempts.len() >= 40,
            "{start}: only {} attempts",
            run.attempts.len()
        );
    }
}

#[test]
fn rule_2_odd_offsets_and_recipient_windows() {
    // Kathmandu (+05:45) mailboxes, Lord Howe (30-minute DST) and Chatham (+12:45) contacts,
    // a window over midnight, recipient windows in the contacts' zones.
    let odd_zone_contacts: Vec<Value> = [
        contacts(10, "s", "2026-04-03T00:00:00Z", Some("Australia/Lord_Howe")),
        contacts(10, "s", "2026-04-03T00:00:00Z", Some("Pacific/Chatham")),
    ]
    .concat()
    .into_iter()
    .enumerate()
    .map(|(i, mut c)| {
        c["id"] = json!(format!("k{i}"));
        c["email"] = json!(format!("k{i}@odd-zones.example"));
        c
    })
    .collect();
    let v = json!({
        "start": "2026-04-03T00:00:00Z", "days": 4, "seed": 5,
        "mailboxes": [
            mailbox("ktm", "Asia/Kathmandu", 30, 300, json!([{ "days": ["fri", "sat", "sun"], "start": "22:00", "end": "06:00" }])),
            mailbox("kir", "Pacific/Kiritimati", 30, 300, business_hours()),
        ],
        "sequences": [{ "id": "s", "mailboxes": ["ktm", "kir"],
                        "recipient_windows": [{ "days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "07:00", "end": "20:00" }],
                        "steps": [step(0, "days", "Hi"), step(6, "hours", "Re: Hi")] }],
        "contacts": odd_zone_contacts,
    });
    let (_, run) = simulate(&v);
    assert!(!run.attempts.is_empty());
}

// ---- rule 3: gap ------------------------------------------------------------------------------

#[test]
fn rule_3_min_gap_between_a_mailboxs_attempts() {
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 2,
        "mailboxes": [mailbox("mb", "UTC", 30, 1800, json!([{ "days": WEEKDAYS, "start": "09:00", "end": "12:00" }]))],
        "sequences": [{ "id": "s", "mailboxes": ["mb"], "steps": [step(0, "days", "Hi")] }],
        "contacts": contacts(30, "s", "2026-03-09T00:00:00Z", None),
    });
    let (_, run) = simulate(&v);
    // [09:00, 12:00) holds exactly six sends 30 minutes apart per day.
    assert_eq!(run.attempts.len(), 12);
}

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

// ---- rule 8: follow-ups first ----------------------------------------------------------------------

#[test]
fn rule_8_follow_ups_go_before_new_starts_when_capacity_is_short() {
    // Four a day. Monday morning four contacts start; their follow-ups come due early on
    // Tuesday, when eight more contacts are waiting to start: the follow-ups take the day.
    let mut cs = contacts(4, "s", "2026-03-09T00:00:00Z", None);
    for i in 4..12 {
        cs.push(
            json!({ "id": format!("c{i}"), "email": format!("c{i}@x.example"),
                        "enroll": [{ "sequence": "s", "at": "2026-03-10T00:00:00Z" }] }),
        );
    }
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 3, "seed": 1,
        "mailboxes": [mailbox("mb", "UTC", 4, 300, json!([{ "days": WEEKDAYS, "start": "09:00", "end": "12:00" }]))],
        "sequences": [{ "id": "s", "mailboxes": ["mb"], "steps": [step(0, "days", "One"), step(20, "hours", "Two")] }],
        "contacts": cs,
    });
    let (_, run) = simulate(&v);
    let on = |d: u32| -> Vec<u32> {
        run.attempts
            .iter()
            .filter(|a| a.at.date_naive() == NaiveDate::from_ymd_opt(2026, 3, d).unwrap())
            .map(|a| a.step)
            .collect()
    };
    assert_eq!(on(9), [0, 0, 0, 0]);
    assert_eq!(on(10), [1, 1, 1, 1]);
    assert_eq!(on(11), [0, 0, 0, 0]);
}

#[test]
fn rule_8_a_follow_up_that_comes_due_takes_a_planned_new_start_slot() {
    // Follow-ups come due during Tuesday's window, after the day's new starts were planned:
    // each takes the slot of a new start planned later than it, so no new start goes out
    // while a follow-up is waiting.
    let mut cs = contacts(4, "s", "2026-03-09T00:00:00Z", None);
    for i in 4..12 {
        cs.push(
            json!({ "id": format!("c{i}"), "email": format!("c{i}@x.example"),
                        "enroll": [{ "sequence": "s", "at": "2026-03-10T00:00:00Z" }] }),
        );
    }
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 3, "seed": 1,
        "mailboxes": [mailbox("mb", "UTC", 4, 300, business_hours())],
        "sequences": [{ "id": "s", "mailboxes": ["mb"], "steps": [step(0, "days", "One"), step(1, "days", "Two")] }],
        "contacts": cs,
    });
    let (_, run) = simulate(&v);
    let due: Vec<DateTime<Utc>> = run
        .attempts
        .iter()
        .filter(|a| {
            a.step == 0 && a.at.date_naive() == NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()
        })
        .map(|a| a.at + Duration::days(1))
        .collect();
    for a in run.attempts.iter().filter(|a| {
        a.step == 0 && a.at.date_naive() == NaiveDate::from_ymd_opt(2026, 3, 10).unwrap()
    }) {
        let waiting = due.iter().filter(|d| **d <= a.at).count();
        let done = run
            .attempts
            .iter()
            .filter(|f| f.step == 1 && f.at <= a.at)
            .count();
        assert_eq!(
            waiting, done,
            "new start at {} while a follow-up waited",
            a.at
        );
    }
}

// ---- rule 9: spread ----------------------------------------------------------------------------------

#[test]
fn rule_9_attempts_spread_over_the_open_window() {
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 1, "seed": 21,
        "mailboxes": [mailbox("mb", "UTC", 16, 120, business_hours())],
        "sequences": [{ "id": "s", "mailboxes": ["mb"], "steps": [step(0, "days", "Hi")] }],
        "contacts": contacts(40, "s", "2026-03-09T00:00:00Z", None),
    });
    let (_, run) = simulate(&v);
    assert_eq!(run.attempts.len(), 16);
    let hours: Vec<u32> = run.attempts.iter().map(|a| a.at.hour()).collect();
    // Two per hour on average across 09:00-17:00: every hour of the window has some, none
    // has more than four.
    for h in 9..17 {
        let n = hours.iter().filter(|&&x| x == h).count();
        assert!((1..=4).contains(&n), "hour {h}: {n} attempts ({hours:?})");
    }
    // And jittered: not all exactly 30 minutes apart.
    let gaps: std::collections::HashSet<i64> = run
        .attempts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).num_seconds())
        .collect();
    assert!(gaps.len() > 3, "{gaps:?}");
}

#[test]
fn rule_9_late_enrollments_spread_over_what_is_left_of_the_window() {
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 1, "seed": 8,
        "mailboxes": [mailbox("mb", "UTC", 10, 60, business_hours())],
        "sequences": [{ "id": "s", "mailboxes": ["mb"], "steps": [step(0, "days", "Hi")] }],
        "contacts": contacts(10, "s", "2026-03-09T13:00:00Z", None),
    });
    let (_, run) = simulate(&v);
    assert_eq!(run.attempts.len(), 10);
    let first = run.attempts.first().unwrap().at;
    let last = run.attempts.last().unwrap().at;
    assert!(first < Utc.with_ymd_and_hms(2026, 3, 9, 14, 0, 0).unwrap());
    assert!(
        last >= Utc.with_ymd_and_hms(2026, 3, 9, 16, 0, 0).unwrap(),
        "bunched: last at {last}"
    );
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
    let (_, run) = simulate(&v);
    assert!(
        unfinished(&run_scenario(&v), &run).is_empty(),
        "{:?}",
        unfinished(&run_scenario(&v), &run)
    );
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

fn run_scenario(v: &Value) -> Scenario {
    scenario::parse(&v.to_string()).unwrap()
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

// ---- the binary's entry point: outputs, and invalid input ------------------------------------------

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("simulate-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cli(scenario_text: &str, name: &str) -> (u8, String, PathBuf) {
    let dir = temp_dir(name);
    let path = dir.join("scenario.json");
    std::fs::write(&path, scenario_text).unwrap();
    let out = dir.join("out");
    let mut err = Vec::new();
    let code = main_with(
        [
            "simulate",
            "--quiet",
            "--check",
            "--scenario",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .map(Into::into),
        &mut err,
    );
    (code, String::from_utf8(err).unwrap(), out)
}

fn valid() -> Value {
    json!({
        "name": "cli", "start": "2026-03-09T00:00:00Z", "days": 2, "seed": 7,
        "mailboxes": [mailbox("mb-1", "America/New_York", 5, 60, business_hours())],
        "sequences": [{ "id": "seq-a", "mailboxes": ["mb-1"], "steps": [step(0, "days", "Hi {{first_name}}")] }],
        "contacts": contacts(3, "seq-a", "2026-03-09T00:00:00Z", None),
    })
}

#[test]
fn the_binary_writes_its_four_files() {
    let (code, err, out) = cli(&valid().to_string(), "ok");
    assert_eq!(code, EXIT_OK, "{err}");
    let sends = std::fs::read_to_string(out.join("sends.jsonl")).unwrap();
    let lines: Vec<Value> = sends
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 8);
        for k in [
            "at", "mailbox", "contact", "sequence", "step", "attempt", "outcome", "subject",
        ] {
            assert!(keys.contains(&k), "{k} missing in {l}");
        }
        assert!(l["at"].as_str().unwrap().ends_with('Z'), "{l}");
        assert_eq!(l["outcome"], "sent");
        assert!(l["subject"].as_str().unwrap().starts_with("Hi N"));
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["enrollments"].as_array().unwrap().len(), 3);
    assert_eq!(summary["enrollments"][0]["status"], "completed");
    assert_eq!(summary["enrollments"][0]["exit_reason"], Value::Null);
    assert_eq!(
        summary["mailboxes"][0],
        json!({ "id": "mb-1", "attempts": 3 })
    );
    assert!(summary["wall_seconds"].as_f64().unwrap() >= 0.0);
    let forecast = std::fs::read_to_string(out.join("forecast.txt")).unwrap();
    assert!(
        forecast.contains("seq-a")
            && forecast.contains("mb-1")
            && forecast.contains("A week sooner?"),
        "{forecast}"
    );
    let svg = std::fs::read_to_string(out.join("volume.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("step 0"),
        "{}",
        &svg[..200.min(svg.len())]
    );
}

/// Exit 2, one line per problem naming its path, and no output at all.
fn invalid(v: &str, name: &str, expected: &[&str]) {
    let (code, err, out) = cli(v, name);
    assert_eq!(code, EXIT_INVALID, "{name}: {err}");
    for e in expected {
        assert!(
            err.lines().any(|l| l.starts_with(e)),
            "{name}: no line starting {e:?} in:\n{err}"
        );
    }
    assert_eq!(
        err.lines().count(),
        expected.len(),
        "{name}: one line per problem:\n{err}"
    );
    assert!(!out.exists(), "{name}: wrote output");
}

#[test]
fn unparsable_json() {
    invalid("{ \"start\": ", "json", &["$: not valid JSON"]);
    invalid("[1, 2]", "not-object", &["$: expected an object"]);
}

#[test]
fn unknown_fields() {
    let mut v = valid();
    v["colour"] = json!("blue");
    v["mailboxes"][0]["nickname"] = json!("x");
    v["sequences"][0]["steps"][0]["delay"]["weeks"] = json!(1);
    invalid(
        &v.to_string(),
        "unknown",
        &[
            "colour: unknown field",
            "mailboxes[0].nickname: unknown field",
            "sequences[0].steps[0].delay.weeks: unknown field",
        ],
    );
}

#[test]
fn bad_zones_and_times() {
    let mut v = valid();
    v["mailboxes"][0]["timezone"] = json!("Mars/Base");
    v["mailboxes"][0]["windows"][0]["start"] = json!("9am");
    v["mailboxes"][0]["windows"][0]["days"] = json!(["mon", "funday"]);
    v["contacts"][1]["timezone"] = json!("Europe/Atlantis");
    v["start"] = json!("2026-03-09 00:00");
    v["contacts"][0]["enroll"][0]["at"] = json!("yesterday");
    invalid(
        &v.to_string(),
        "zones",
        &[
            "start:",
            "mailboxes[0].timezone: unknown time zone \"Mars/Base\"",
            "mailboxes[0].windows[0].days[1]:",
            "mailboxes[0].windows[0].start:",
            "contacts[0].enroll[0].at:",
            "contacts[1].timezone:",
        ],
    );
    let mut v = valid();
    v["mailboxes"][0]["windows"][0]["end"] = json!("09:00");
    v["mailboxes"][0]["warmup"] = json!({ "start": 1, "increment": 1, "since": "March" });
    invalid(
        &v.to_string(),
        "empty-window",
        &["mailboxes[0].windows[0].end:", "mailboxes[0].warmup.since:"],
    );
}

#[test]
fn unknown_ids_and_duplicates() {
    let mut v = valid();
    v["sequences"][0]["mailboxes"] = json!(["mb-1", "mb-9"]);
    v["contacts"][0]["enroll"][0]["sequence"] = json!("seq-z");
    v["contacts"][2]["id"] = json!("c1");
    v["events"] = json!([{ "at": "2026-03-09T10:00:00Z", "type": "reply", "contact": "nobody" },
                         { "at": "2026-03-09T10:00:00Z", "type": "pause_mailbox", "mailbox": "mb-2" },
                         { "at": "2026-03-09T10:00:00Z", "type": "explode" }]);
    v["failures"] = json!([{ "contact": "c1", "step": 4, "error": "transient" }]);
    invalid(
        &v.to_string(),
        "ids",
        &[
            "sequences[0].mailboxes[1]: unknown mailbox \"mb-9\"",
            "contacts[0].enroll[0].sequence: unknown sequence \"seq-z\"",
            "events[0].contact:",
            "events[1].mailbox:",
            "events[2].type:",
            "failures[0].step:",
            "contacts[2].id: duplicate id \"c1\"",
        ],
    );
}

#[test]
fn negative_numbers_and_empty_steps() {
    let mut v = valid();
    v["days"] = json!(-3);
    v["mailboxes"][0]["daily_limit"] = json!(-1);
    v["mailboxes"][0]["min_gap_seconds"] = json!(1.5);
    v["sequences"][0]["steps"] = json!([]);
    v["retry"] = json!({ "max_attempts": 0 });
    invalid(
        &v.to_string(),
        "numbers",
        &[
            "days: must not be negative",
            "retry.max_attempts:",
            "mailboxes[0].daily_limit: must not be negative",
            "mailboxes[0].min_gap_seconds:",
            "sequences[0].steps: must have at least one step",
        ],
    );
    let mut v = valid();
    v["sequences"][0]["steps"][0]["delay"]["amount"] = json!(-2);
    v["sequences"][0]["steps"][0]["subject"] = json!("Hi {{ first_name");
    invalid(
        &v.to_string(),
        "step",
        &[
            "sequences[0].steps[0].delay.amount: must not be negative",
            "sequences[0].steps[0].subject:",
        ],
    );
    let mut v = valid();
    v["contacts"][0]["email"] = json!("not-an-address");
    v["mailboxes"] = json!("mb-1");
    invalid(
        &v.to_string(),
        "types",
        &["mailboxes: expected a list", "contacts[0].email:"],
    );
}

#[test]
fn one_address_two_contacts() {
    // Contacts are unique by address: a second contact with the address of another (in
    // another case) would be the same person, so the scenario is refused.
    let mut v = valid();
    let first = v["contacts"][0]["email"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    v["contacts"][1]["email"] = json!(first.to_uppercase());
    invalid(
        &v.to_string(),
        "same-address",
        &["contacts[1].email: address"],
    );
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
