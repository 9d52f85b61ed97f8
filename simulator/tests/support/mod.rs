//! What the `simulate` tests share: scenario pieces as JSON, and a run that is checked
//! against the rules before a test looks at it.
#![allow(
    dead_code,
    reason = "each test file uses a part of this module; `expect` would fail in the others"
)]
#![expect(
    clippy::unwrap_used,
    reason = "helpers outside `#[test]` functions fail the test loudly on what it did not expect"
)]

use serde_json::{json, Value};

use sequence_simulator::check::check;
use sequence_simulator::scenario::{self, Scenario};
use sequence_simulator::simulate::{self, Attempt, Backend, Run};

/// A runtime for one simulation.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The PostgreSQL server the runs on that backend use: `DATABASE_URL`, or the local one.
pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Parse, run on the memory store and on PostgreSQL, and check the rules on both runs; the
/// two runs must make the same attempts (at the same instants; the order of attempts at one
/// instant may differ). Return the scenario and the memory run.
pub(crate) fn simulate(v: &Value) -> (Scenario, Run) {
    let scenario = scenario::parse(&v.to_string()).unwrap_or_else(|p| panic!("{p:#?}"));
    let rt = runtime();
    let run = rt
        .block_on(simulate::run(&scenario, &simulate::Options::default()))
        .unwrap();
    let problems = check(&scenario, &run);
    assert!(problems.is_empty(), "rules broken: {problems:#?}");
    let url = database_url();
    let on_postgres = simulate::Options::default().backend(Backend::Postgres(url.clone()));
    let pg = rt
        .block_on(simulate::run(&scenario, &on_postgres))
        .unwrap_or_else(|e| {
            panic!(
                "the run on PostgreSQL at {url} failed: {e}\nStart a server (on Debian: \
                 `pg_ctlcluster 15 main start`) or point DATABASE_URL at one."
            )
        });
    let problems = check(&scenario, &pg);
    assert!(
        problems.is_empty(),
        "rules broken on PostgreSQL: {problems:#?}"
    );
    assert_eq!(
        attempt_lines(&run),
        attempt_lines(&pg),
        "the memory store and PostgreSQL made different attempts"
    );
    (scenario, run)
}

/// A run's attempts as sorted JSON lines.
fn attempt_lines(run: &Run) -> Vec<String> {
    let mut lines: Vec<String> = run
        .attempts
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect();
    lines.sort();
    lines
}

/// Monday to Friday, as a window's `days`.
pub(crate) const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

/// A mailbox `id` in zone `tz`, `limit` a day, `gap` seconds apart, inside `windows`
/// (`null`: always open).
#[expect(
    clippy::needless_pass_by_value,
    reason = "call sites pass `json!` values and helpers' results; a reference would only add `&`"
)]
pub(crate) fn mailbox(id: &str, tz: &str, limit: u32, gap: u32, windows: Value) -> Value {
    json!({ "id": id, "email": format!("{id}@sender.example"), "timezone": tz,
            "daily_limit": limit, "min_gap_seconds": gap, "windows": windows })
}

/// 09:00 to 17:00, Monday to Friday.
pub(crate) fn business_hours() -> Value {
    json!([{ "days": WEEKDAYS, "start": "09:00", "end": "17:00" }])
}

/// A step `amount` `unit`s after the one before it.
pub(crate) fn step(amount: u32, unit: &str, subject: &str) -> Value {
    json!({ "delay": { "amount": amount, "unit": unit }, "subject": subject, "body": "Hello {{first_name}}" })
}

/// Contacts `c0`, `c1`, ... each enrolled in `seq` at `at`, in zone `tz` where given.
pub(crate) fn contacts(n: usize, seq: &str, at: &str, tz: Option<&str>) -> Vec<Value> {
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

/// The attempts to `contact`, in order.
pub(crate) fn of<'a>(run: &'a Run, contact: &str) -> Vec<&'a Attempt> {
    run.attempts
        .iter()
        .filter(|a| a.contact == contact)
        .collect()
}

/// The status and exit reason of `contact`'s enrollment in `seq`.
pub(crate) fn status<'a>(run: &'a Run, contact: &str, seq: &str) -> (&'a str, Option<&'a str>) {
    let r = run
        .summary
        .enrollments
        .iter()
        .find(|r| r.contact == contact && r.sequence == seq)
        .unwrap();
    (r.status.as_str(), r.exit_reason.as_deref())
}
