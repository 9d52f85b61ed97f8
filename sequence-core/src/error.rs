//! Errors of the domain: validation problems (with field paths) and refused transitions.

use std::fmt;

use serde::{Deserialize, Serialize};

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

/// A state change the domain refused, naming the entity, the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The entity is in a status from which this change is not allowed.
    #[error("{entity} {action}: not allowed while {status}")]
    InvalidStatus {
        /// `sequence`, `enrollment`, `send`, `mailbox`.
        entity: &'static str,
        /// What was attempted, e.g. `activate`.
        action: &'static str,
        /// The current status.
        status: String,
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
    pub(crate) fn status(
        entity: &'static str,
        action: &'static str,
        status: impl fmt::Debug,
    ) -> Self {
        Self::InvalidStatus {
            entity,
            action,
            status: format!("{status:?}").to_lowercase(),
        }
    }
    pub(crate) fn invariant(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invariant {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
