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
        match self {
            Self::HasTag(tag) => contact.has_tag(tag),
            Self::Field { field, op, value } => contact
                .custom_fields
                .get(field)
                .is_some_and(|actual| op.compare(actual, value)),
            Self::LastActivity(test) => test.holds(contact.last_activity_at()),
            Self::All(inner) => inner.iter().all(|c| c.evaluate(contact)),
            Self::Any(inner) => inner.iter().any(|c| c.evaluate(contact)),
            Self::Not(inner) => !inner.evaluate(contact),
        }
    }
}

/// A field value as a number, when it is one (numeric text counts).
fn as_number(value: &FieldValue) -> Option<f64> {
    match value {
        FieldValue::Number(n) => Some(*n),
        FieldValue::Text(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        FieldValue::Bool(_) => None,
    }
}

/// A field value as text, for text comparisons.
fn as_text(value: &FieldValue) -> String {
    match value {
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::Number(n) => n.to_string(),
        FieldValue::Text(s) => s.to_lowercase(),
    }
}

impl FieldOp {
    /// Whether `actual op expected` holds. Numbers (and numeric text) compare numerically,
    /// booleans by value, text case-insensitively.
    #[must_use]
    pub fn compare(self, actual: &FieldValue, expected: &FieldValue) -> bool {
        use std::cmp::Ordering;
        let ordering = match (actual, expected) {
            (FieldValue::Bool(a), FieldValue::Bool(b)) => Some(a.cmp(b)),
            _ => match (as_number(actual), as_number(expected)) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => Some(as_text(actual).cmp(&as_text(expected))),
            },
        };
        match self {
            Self::Equals => ordering == Some(Ordering::Equal),
            Self::Contains => as_text(actual).contains(&as_text(expected)),
            Self::GreaterThan => ordering == Some(Ordering::Greater),
            Self::LessThan => ordering == Some(Ordering::Less),
        }
    }
}

impl LastActivity {
    /// Whether the test holds for a last-activity instant (`None`: never active).
    #[must_use]
    pub fn holds(self, last_activity: Option<DateTime<Utc>>) -> bool {
        match self {
            Self::Before(t) => last_activity.is_some_and(|a| a < t),
            Self::After(t) => last_activity.is_some_and(|a| a > t),
            Self::IsNull => last_activity.is_none(),
        }
    }
}

impl StepCondition {
    /// A condition with its failure action.
    #[must_use]
    pub fn new(condition: Condition, on_fail: OnConditionFail) -> Self {
        Self { condition, on_fail }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ids::TenantId;

    fn contact() -> Contact {
        Contact::new(TenantId::from_u128(1), "bo@acme.example")
            .unwrap()
            .with_tag("VIP")
            .with_field("plan", FieldValue::Text("Pro Annual".into()))
            .with_field("seats", FieldValue::Number(12.0))
            .with_field("score", FieldValue::Text("7.5".into()))
            .with_field("trial", FieldValue::Bool(true))
    }

    fn field(name: &str, op: FieldOp, value: FieldValue) -> Condition {
        Condition::Field {
            field: name.into(),
            op,
            value,
        }
    }

    #[test]
    fn tags_compare_case_insensitively() {
        assert!(Condition::HasTag("vip".into()).evaluate(&contact()));
        assert!(!Condition::HasTag("churned".into()).evaluate(&contact()));
    }

    #[test]
    fn fields_compare_as_numbers_text_and_booleans() {
        let c = contact();
        let t = |s: &str| FieldValue::Text(s.into());
        assert!(field("plan", FieldOp::Equals, t("pro annual")).evaluate(&c));
        assert!(field("plan", FieldOp::Contains, t("ANNUAL")).evaluate(&c));
        assert!(!field("plan", FieldOp::Contains, t("monthly")).evaluate(&c));
        assert!(field("seats", FieldOp::GreaterThan, FieldValue::Number(10.0)).evaluate(&c));
        assert!(!field("seats", FieldOp::GreaterThan, FieldValue::Number(12.0)).evaluate(&c));
        assert!(field("seats", FieldOp::LessThan, t("100")).evaluate(&c));
        assert!(field("score", FieldOp::GreaterThan, FieldValue::Number(7.0)).evaluate(&c));
        assert!(field("seats", FieldOp::Equals, t("12")).evaluate(&c));
        assert!(field("trial", FieldOp::Equals, FieldValue::Bool(true)).evaluate(&c));
        assert!(!field("trial", FieldOp::Equals, FieldValue::Bool(false)).evaluate(&c));
        // A field the contact does not have never holds, whatever the operator.
        assert!(!field("missing", FieldOp::Equals, t("")).evaluate(&c));
        assert!(!field("missing", FieldOp::LessThan, FieldValue::Number(1.0)).evaluate(&c));
    }

    #[test]
    fn last_activity_before_after_and_null() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let mut c = contact();
        assert!(Condition::LastActivity(LastActivity::IsNull).evaluate(&c));
        assert!(!Condition::LastActivity(LastActivity::Before(t)).evaluate(&c));
        assert!(!Condition::LastActivity(LastActivity::After(t)).evaluate(&c));
        c.record_activity(t - chrono::Duration::days(1));
        assert!(Condition::LastActivity(LastActivity::Before(t)).evaluate(&c));
        assert!(!Condition::LastActivity(LastActivity::After(t)).evaluate(&c));
        assert!(!Condition::LastActivity(LastActivity::IsNull).evaluate(&c));
    }

    #[test]
    fn combinators() {
        let c = contact();
        let yes = Condition::HasTag("vip".into());
        let no = Condition::HasTag("nope".into());
        assert!(Condition::All(vec![yes.clone(), yes.clone()]).evaluate(&c));
        assert!(!Condition::All(vec![yes.clone(), no.clone()]).evaluate(&c));
        assert!(Condition::Any(vec![no.clone(), yes.clone()]).evaluate(&c));
        assert!(!Condition::Any(vec![no.clone()]).evaluate(&c));
        assert!(Condition::Not(Box::new(no)).evaluate(&c));
        assert!(Condition::All(vec![]).evaluate(&c));
    }

    #[test]
    fn conditions_round_trip_through_serde() {
        let cond = StepCondition::new(
            Condition::All(vec![
                Condition::HasTag("vip".into()),
                field("seats", FieldOp::GreaterThan, FieldValue::Number(3.0)),
            ]),
            OnConditionFail::Exit,
        );
        let json = serde_json::to_string(&cond).unwrap();
        let back: StepCondition = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cond);
    }
}
