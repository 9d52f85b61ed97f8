//! Errors of the domain: validation problems (with field paths) and refused transitions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::contact::ContactStatus;
use crate::enrollment::EnrollmentStatus;
use crate::mailbox::MailboxStatus;
use crate::send::SendStatus;
use crate::sequence::SequenceStatus;

/// One problem found in untrusted input: where it is and why it is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The field path, e.g. `steps[2].delay.amount`.
    pub path: String,
    /// Why the value is wrong, e.g. `must not be negative`.
    pub reason: String,
}

impl Problem {
    /// A problem at `path` for `reason`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Every problem found in one value, each with its path. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ValidationErrors {
    /// The problems, in the order they were found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// A single problem.
    pub fn one(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem::new(path, reason)],
        }
    }
}

/// Collects problems while a value is checked; turns into a result at the end.
#[derive(Debug, Default)]
pub struct Problems {
    problems: Vec<Problem>,
}

impl Problems {
    /// No problem yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Record a problem.
    pub fn push(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem::new(path, reason));
    }
    /// Record every problem of `errors`, with `prefix` put before each path.
    pub fn extend_prefixed(&mut self, prefix: &str, errors: ValidationErrors) {
        for p in errors.problems {
            let path = if prefix.is_empty() {
                p.path
            } else if p.path.starts_with('[') {
                format!("{prefix}{}", p.path)
            } else {
                format!("{prefix}.{}", p.path)
            };
            self.problems.push(Problem {
                path,
                reason: p.reason,
            });
        }
    }
    /// Whether nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }
    /// `Ok(())` when nothing was recorded, else every problem.
    ///
    /// # Errors
    /// The problems recorded.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors {
                problems: self.problems,
            })
        }
    }
}

/// The kinds of record the engine keeps, as errors name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entity {
    /// A [`Sequence`](crate::sequence::Sequence).
    Sequence,
    /// A step of a sequence.
    Step,
    /// A [`Mailbox`](crate::mailbox::Mailbox).
    Mailbox,
    /// A [`Contact`](crate::contact::Contact).
    Contact,
    /// An [`Enrollment`](crate::enrollment::Enrollment).
    Enrollment,
    /// A [`ScheduledSend`](crate::send::ScheduledSend).
    Send,
}

impl Entity {
    /// The entity's name in messages: `sequence`, `step`, `mailbox`, ...
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sequence => "sequence",
            Self::Step => "step",
            Self::Mailbox => "mailbox",
            Self::Contact => "contact",
            Self::Enrollment => "enrollment",
            Self::Send => "send",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status of a record, typed: what a [`TransitionError::InvalidStatus`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "entity", content = "status")]
#[non_exhaustive]
pub enum Status {
    /// A sequence's status.
    Sequence(SequenceStatus),
    /// A mailbox's status.
    Mailbox(MailboxStatus),
    /// A contact's status.
    Contact(ContactStatus),
    /// An enrollment's status.
    Enrollment(EnrollmentStatus),
    /// A send's status.
    Send(SendStatus),
}

impl Status {
    /// The kind of record the status belongs to.
    #[must_use]
    pub fn entity(self) -> Entity {
        match self {
            Self::Sequence(_) => Entity::Sequence,
            Self::Mailbox(_) => Entity::Mailbox,
            Self::Contact(_) => Entity::Contact,
            Self::Enrollment(_) => Entity::Enrollment,
            Self::Send(_) => Entity::Send,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde names (snake_case) are the names senders see in the API.
        let name = match self {
            Self::Sequence(s) => serde_name(s),
            Self::Mailbox(s) => serde_name(s),
            Self::Contact(s) => serde_name(s),
            Self::Enrollment(s) => serde_name(s),
            Self::Send(s) => serde_name(s),
        };
        f.write_str(&name)
    }
}

/// The snake_case name serde gives a unit variant.
fn serde_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("?"),
    }
}

macro_rules! status_from {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for Status {
            fn from(status: $ty) -> Self {
                Self::$variant(status)
            }
        })*
    };
}

status_from! {
    SequenceStatus => Sequence,
    MailboxStatus => Mailbox,
    ContactStatus => Contact,
    EnrollmentStatus => Enrollment,
    SendStatus => Send,
}

/// A state change the domain refused, naming the entity, the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The record is in a status from which this change is not allowed.
    #[error("{} {action}: not allowed while {status}", status.entity())]
    InvalidStatus {
        /// What was attempted, e.g. `activate`.
        action: &'static str,
        /// The current status (it names the entity).
        status: Status,
    },
    /// The change would break an invariant of the entity.
    #[error("{field}: {reason}")]
    Invariant {
        /// The field concerned, e.g. `steps`.
        field: String,
        /// Why, e.g. `at least one step is required to activate`.
        reason: String,
    },
    /// The input of the change is invalid.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationErrors),
}

impl TransitionError {
    pub(crate) fn status(action: &'static str, status: impl Into<Status>) -> Self {
        Self::InvalidStatus {
            action,
            status: status.into(),
        }
    }
    pub(crate) fn invariant(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invariant {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
