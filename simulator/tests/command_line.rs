//! `simulate`'s entry point, as the binary runs it: the four files of a run, and every kind
//! of invalid input answered with exit code 2, one line per problem naming its JSON path,
//! and nothing written.

#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test loudly on what it did not expect"
)]

mod support;

use std::path::PathBuf;

use serde_json::{json, Value};

use sequence_core::error::Problem;
use sequence_simulator::cli::{main_with, EXIT_INVALID, EXIT_OK};
use sequence_simulator::scenario;

use support::{business_hours, contacts, mailbox, step};

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
fn parse_gives_each_problem_its_path_and_reason_apart() {
    // What the binary prints, `path: reason`, is the domain's `Problem` displayed.
    let mut v = valid();
    v["mailboxes"][0]["timezone"] = json!("Mars/Base");
    let invalid = scenario::parse(&v.to_string()).unwrap_err();
    assert_eq!(
        invalid.problems,
        [Problem::new(
            "mailboxes[0].timezone",
            "unknown time zone \"Mars/Base\""
        )]
    );
    // A problem with the document itself is at `$`.
    let invalid = scenario::parse("[1, 2]").unwrap_err();
    assert_eq!(
        invalid.problems,
        [Problem::new("$", "expected an object, found a list")]
    );
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
