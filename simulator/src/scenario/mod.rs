//! The scenario file of `simulate` (see `shared/scenario-format.md`): the types of a
//! valid scenario here, and [`parse`], which reads one strictly and reports every problem
//! as the domain's [`ValidationErrors`](sequence_core::ValidationErrors): the JSON path of
//! each offending value and why (printed `path: reason`).
//!
//! Parsing goes through [`serde_json::Value`] and a walker rather than `#[derive(Deserialize)]`
//! so that one pass reports *every* problem with its JSON path, not just the first. The
//! checks themselves are the domain's (`sequence_core::validate`, the time rules, template
//! syntax): validation lives there, once.
//!
//! ```
//! let invalid = sequence_simulator::scenario::parse(r#"{"start": "nope", "days": -1}"#)
//!     .unwrap_err();
//! let paths: Vec<&str> = invalid.problems.iter().map(|p| p.path.as_str()).collect();
//! assert_eq!(paths, ["start", "days", "mailboxes", "sequences", "contacts"]);
//! assert_eq!(invalid.problems[1].reason, "must not be negative, found -1");
//! ```

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use sequence_core::time::{Delay, WarmUp, WeeklySchedule};

mod parse;
mod walker;

pub use parse::parse;

/// Retries of transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure, in seconds; it doubles after each further one.
    pub base_seconds: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_seconds: 600,
        }
    }
}

/// A sending mailbox of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxSpec {
    /// The scenario's id.
    pub id: String,
    /// The sending address.
    pub email: String,
    /// Its zone.
    pub timezone: Tz,
    /// Attempts per local day.
    pub daily_limit: u32,
    /// When it may send (always, without a `windows` key).
    pub windows: WeeklySchedule,
    /// Least seconds between two attempts.
    pub min_gap_seconds: u32,
    /// Warm-up ramp.
    pub warmup: Option<WarmUp>,
    /// Paused from the start.
    pub paused: bool,
}

/// A step of a scenario sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// Wait after the previous step (or enrollment).
    pub delay: Delay,
    /// Subject template.
    pub subject: String,
    /// Body template.
    pub body: String,
    /// The tag the contact must have for the step to go, if any.
    pub condition_tag: Option<String>,
    /// Exit (`true`) or skip (`false`) when the condition fails.
    pub exit_on_condition_fail: bool,
}

/// A sequence of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceSpec {
    /// The scenario's id.
    pub id: String,
    /// The sending pool, by mailbox id.
    pub mailboxes: Vec<String>,
    /// Exit on reply.
    pub exit_on_reply: bool,
    /// Business hours in the contact's zone.
    pub recipient_windows: Option<WeeklySchedule>,
    /// The steps.
    pub steps: Vec<StepSpec>,
}

/// An enrollment of a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollSpec {
    /// The sequence id.
    pub sequence: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A contact of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactSpec {
    /// The scenario's id.
    pub id: String,
    /// Address.
    pub email: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// Zone, if known.
    pub timezone: Option<Tz>,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Enrollments.
    pub enroll: Vec<EnrollSpec>,
}

/// What a scripted event does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// The contact replied.
    Reply(String),
    /// The contact unsubscribed.
    Unsubscribe(String),
    /// The contact's address bounced.
    Bounce(String),
    /// A mailbox was paused.
    PauseMailbox(String),
    /// A mailbox was resumed.
    ResumeMailbox(String),
    /// A sequence was paused.
    PauseSequence(String),
    /// A sequence was resumed.
    ResumeSequence(String),
}

/// A scripted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// When it takes effect.
    pub at: DateTime<Utc>,
    /// What it is.
    pub kind: EventKind,
}

/// An injected delivery failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureSpec {
    /// The contact.
    pub contact: String,
    /// The step.
    pub step: u32,
    /// Permanent (like SMTP 550) or transient (like 421).
    pub permanent: bool,
    /// How many attempts fail (transient); a permanent failure fails every attempt.
    pub count: u32,
    /// Only in this sequence; every sequence of the contact without it.
    pub sequence: Option<String>,
}

/// A whole, valid scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// The virtual clock starts here.
    pub start: DateTime<Utc>,
    /// And stops after this many days.
    pub days: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Retries.
    pub retry: Retry,
    /// Mailboxes.
    pub mailboxes: Vec<MailboxSpec>,
    /// Sequences.
    pub sequences: Vec<SequenceSpec>,
    /// Contacts.
    pub contacts: Vec<ContactSpec>,
    /// Scripted events.
    pub events: Vec<EventSpec>,
    /// Injected failures.
    pub failures: Vec<FailureSpec>,
}

impl Scenario {
    /// The instant the virtual clock stops.
    #[must_use]
    pub fn end(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::days(i64::from(self.days))
    }

    /// The mailbox with scenario id `id`.
    #[must_use]
    pub fn mailbox(&self, id: &str) -> Option<&MailboxSpec> {
        self.mailboxes.iter().find(|m| m.id == id)
    }

    /// The sequence with scenario id `id`.
    #[must_use]
    pub fn sequence(&self, id: &str) -> Option<&SequenceSpec> {
        self.sequences.iter().find(|s| s.id == id)
    }
}

/// The longest scenario accepted, in days.
pub const MAX_DAYS: u64 = 3_660;
