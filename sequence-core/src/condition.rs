//! Step conditions: whether a step applies to a contact when it comes due, and what
//! happens when it does not (`skip` the step or `exit` the enrollment).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contact::{Contact, FieldValue};

/// A test on a contact, evaluated when a step comes due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Condition {
    /// The contact has this tag (tags compare case-insensitively).
    HasTag(String),
    /// A custom field compared with a value.
    Field {
        /// The custom field's name.
        field: String,
        /// The comparison.
        op: FieldOp,
        /// The value compared with.
        value: FieldValue,
    },
    /// The contact's last activity compared with an instant.
    LastActivity(LastActivity),
    /// Every inner condition holds.
    All(Vec<Condition>),
    /// At least one inner condition holds.
    Any(Vec<Condition>),
    /// The inner condition does not hold.
    Not(Box<Condition>),
}

/// A comparison of a custom field with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldOp {
    /// Equal (text case-insensitively, numbers numerically).
    Equals,
    /// Text contains the value (case-insensitively).
    Contains,
    /// Number greater than the value (text: lexicographically greater).
    GreaterThan,
    /// Number less than the value (text: lexicographically less).
    LessThan,
}

/// A test on the contact's last activity instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LastActivity {
    /// Last activity strictly before the instant.
    Before(DateTime<Utc>),
    /// Last activity strictly after the instant.
    After(DateTime<Utc>),
    /// No activity recorded.
    IsNull,
}

/// What happens when a step's condition does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConditionFail {
    /// Skip the step; the next one is timed from the moment of skipping.
    #[default]
    Skip,
    /// End the enrollment with reason `condition_not_met`.
    Exit,
}

/// A condition attached to a step, with its failure action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepCondition {
    /// The test.
    pub condition: Condition,
    /// What to do when it fails.
    #[serde(default)]
    pub on_fail: OnConditionFail,
}

impl Condition {
    /// Whether the condition holds for `contact`.
    #[must_use]
    pub fn evaluate(&self, contact: &Contact) -> bool {
        todo!("helper: conditions")
    }
}
