//! `simulate` against the rules of `scenario-format.md` that bound what a mailbox sends:
//! capacity per local day and warm-up (rule 1), windows across DST and odd offsets (2), the
//! gap (3), full days under saturation (7), follow-ups first (8) and spread (9). Each
//! scenario runs through the real engine and then the independent checker.

mod support;

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use serde_json::{json, Value};

use sequence_simulator::check::mailbox_days_below_limit;
use sequence_simulator::scenario::Scenario;
use sequence_simulator::simulate::Run;

use support::{business_hours, contacts, mailbox, simulate, step, WEEKDAYS};

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
fn rule_7_a_new_start_whose_planned_send_was_taken_back_stays_free_to_move() {
    // Two mailboxes of one pool, the second opening four hours after the first, and new
    // starts enrolled through the day, far over capacity. Follow-ups take the slots of
    // planned new starts; a new start whose planned send was taken back has sent nothing,
    // so it must not stay pinned to that mailbox (it did: those piled up as "retries" on
    // one mailbox while the other mailbox's days went unused).
    let contacts: Vec<Value> = (0..30)
        .map(|i| {
            json!({ "id": format!("c{i}"), "email": format!("c{i}@people.example"),
                    "enroll": [{ "sequence": "s", "at": format!("2026-03-09T{:02}:00:00Z", i % 24) }] })
        })
        .collect();
    let afternoons = json!([{ "days": WEEKDAYS, "start": "13:00", "end": "17:00" }]);
    let v = json!({
        "name": "taken-back", "start": "2026-03-09T00:00:00Z", "days": 10, "seed": 2,
        "mailboxes": [
            mailbox("a", "UTC", 4, 60, business_hours()),
            mailbox("b", "UTC", 4, 60, afternoons),
        ],
        "sequences": [{ "id": "s", "mailboxes": ["a", "b"],
                        "steps": [step(0, "days", "One"), step(1, "days", "Two"),
                                  step(1, "days", "Three")] }],
        "contacts": contacts,
    });
    let (scenario, run) = simulate(&v);
    let started = run.attempts.iter().filter(|a| a.step == 0).count();
    assert!(
        started < 30,
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
fn rule_8_a_pool_over_two_zones_never_starts_on_a_mailbox_whose_follow_ups_wait() {
    // Eight a day on each of two mailboxes, London and New York. Monday, 16 contacts start;
    // on Tuesday each has two follow-ups (the second due as soon as the first went), 16 per
    // mailbox for 8 attempts, while 20 more contacts wait to start. Tuesday belongs to the
    // follow-ups on both mailboxes, whichever of them opens first.
    let mut cs = contacts(16, "s", "2026-03-09T00:00:00Z", None);
    for i in 16..36 {
        cs.push(
            json!({ "id": format!("c{i}"), "email": format!("c{i}@x.example"),
                        "enroll": [{ "sequence": "s", "at": "2026-03-10T00:00:00Z" }] }),
        );
    }
    let v = json!({
        "start": "2026-03-09T00:00:00Z", "days": 3, "seed": 3,
        "mailboxes": [
            mailbox("ldn", "Europe/London", 8, 300, business_hours()),
            mailbox("nyc", "America/New_York", 8, 300, business_hours()),
        ],
        "sequences": [{ "id": "s", "mailboxes": ["ldn", "nyc"],
                        "steps": [step(0, "days", "One"), step(1, "days", "Two"), step(0, "days", "Three")] }],
        "contacts": cs,
    });
    let (_, run) = simulate(&v);
    // Each follow-up's due instant: the step before it went, plus its delay (a day for the
    // first, none for the second); and when it went, if it did.
    let delays = [Duration::zero(), Duration::days(1), Duration::zero()];
    let mut follow_ups: Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    for c in 0..36 {
        let contact = format!("c{c}");
        let sent = |step: u32| {
            run.attempts
                .iter()
                .find(|a| a.contact == contact && a.step == step)
                .map(|a| (a.mailbox.clone(), a.at))
        };
        for step in 1..3_u32 {
            if let Some((mb, before)) = sent(step - 1) {
                let due = before + delays[step as usize];
                follow_ups.push((mb, due, sent(step).map(|(_, at)| at)));
            }
        }
    }
    let starts = run.attempts.iter().filter(|a| a.step == 0);
    let mut tuesday_starts = 0;
    for a in starts.filter(|a| a.at.date_naive() == NaiveDate::from_ymd_opt(2026, 3, 10).unwrap()) {
        tuesday_starts += 1;
        let waiting = follow_ups
            .iter()
            .filter(|(mb, due, went)| {
                *mb == a.mailbox && *due <= a.at && went.is_none_or(|w| w > a.at)
            })
            .count();
        assert_eq!(
            waiting, 0,
            "{} started {} at {} while {waiting} follow-ups waited",
            a.mailbox, a.contact, a.at
        );
    }
    // The follow-ups (32 on Tuesday) outnumber the 16 attempts: few new starts, if any, go
    // before the first follow-up is due.
    assert!(
        tuesday_starts <= 4,
        "{tuesday_starts} new starts on Tuesday"
    );
}

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
