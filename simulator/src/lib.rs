//! # sequence-simulator
//!
//! `simulate`, the capacity-planning tool ("how long will 50k contacts take on my 200
//! mailboxes?") and the black-box check that the engine keeps its promises. It runs the
//! real engine (planner, memory store, dispatch, retries, exits) on a scenario file in
//! virtual time, jumping from one instant with work to the next, and writes every attempt,
//! a summary, a forecast and a chart. The file format and the ten rules every run keeps
//! are in `shared/scenario-format.md`.
//!
//! ```sh
//! cargo run --release -p sequence-simulator --bin simulate -- \
//!     --scenario PATH.json --out DIR [--check] [--quiet]
//! ```
//!
//! The library is what the binary is made of, so that tests and hosts can drive a
//! simulation without a process:
//!
//! 1. [`scenario::parse`] reads a scenario and reports every problem with its JSON path,
//!    as the domain's [`ValidationErrors`](sequence_core::ValidationErrors);
//! 2. [`simulate::run`] runs it and returns every attempt and a summary;
//! 3. [`check::check`] verifies rules 1 to 6 on the run, apart from the engine;
//! 4. [`report::write_all`] writes `sends.jsonl`, `summary.json`, `forecast.txt` and
//!    `volume.svg`.
//!
//! [`cli`] is the command line that does these in order.
//!
//! ```
//! use sequence_simulator::{check, scenario, simulate};
//!
//! let scenario = scenario::parse(r#"{
//!   "name": "one mailbox", "start": "2026-03-09T00:00:00Z", "days": 3, "seed": 7,
//!   "mailboxes": [{"id": "mb", "email": "ana@sender.example", "timezone": "America/New_York",
//!                  "daily_limit": 10, "min_gap_seconds": 600,
//!                  "windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}]}],
//!   "sequences": [{"id": "s", "mailboxes": ["mb"], "steps": [
//!       {"delay": {"amount": 0, "unit": "days"}, "subject": "Hi {{first_name}}", "body": "Hello"},
//!       {"delay": {"amount": 1, "unit": "days"}, "subject": "Re: Hi {{first_name}}", "body": "Again"}]}],
//!   "contacts": [{"id": "c1", "email": "bo@acme.example", "first_name": "Bo",
//!                 "enroll": [{"sequence": "s", "at": "2026-03-09T00:00:00Z"}]}]
//! }"#)?;
//! let runtime = tokio::runtime::Runtime::new()?;
//! let run = runtime.block_on(simulate::run(&scenario, &simulate::Options::default()))?;
//! assert_eq!(run.attempts.len(), 2);
//! assert_eq!(run.attempts[1].subject, "Re: Hi Bo");
//! assert!(check::check(&scenario, &run).is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! An invalid scenario gives every problem at once, each with its path:
//!
//! ```
//! let invalid = sequence_simulator::scenario::parse(r#"{
//!   "start": "2026-03-09T00:00:00Z", "days": 0,
//!   "mailboxes": [{"id": "mb", "email": "ana@sender.example", "timezone": "Mars/Base",
//!                  "daily_limit": 10}],
//!   "sequences": [], "contacts": []
//! }"#).unwrap_err();
//! let lines: Vec<String> = invalid.problems.iter().map(ToString::to_string).collect();
//! assert_eq!(lines, [
//!     "days: must be at least 1",
//!     r#"mailboxes[0].timezone: unknown time zone "Mars/Base""#,
//! ]);
//! ```

pub mod check;
pub mod cli;
pub mod report;
pub mod scenario;
pub mod simulate;
