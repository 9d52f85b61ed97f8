//! # sequence-simulator
//!
//! `simulate`, the capacity-planning tool: it runs the real engine (planner, memory store,
//! dispatch, retries, exits) on a scenario file (`shared/scenario-format.md`) in virtual
//! time and writes every attempt, a summary, a forecast and a chart.
//!
//! The modules are what `simulate` is made of, so that tests (and hosts) can drive it
//! without a process: [`scenario`] parses and checks a scenario, [`simulate`] runs it,
//! [`report`] writes the files, [`check`] verifies the rules on a run, and [`cli`] is the
//! command line.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
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
//! }"#).unwrap();
//! let run = simulate::run(&scenario, &simulate::Options::default()).await.unwrap();
//! assert_eq!(run.attempts.len(), 2);
//! assert!(check::check(&scenario, &run).is_empty());
//! # });
//! ```

pub mod check;
pub mod cli;
pub mod report;
pub mod scenario;
pub mod simulate;
