//! The bodies of the sequence routes: ours, and the original service's (accepted as well),
//! turned into domain steps with every problem named by its field.

use chrono::{DateTime, Utc};
use sequence_engine::domain::error::Problems;
use sequence_engine::domain::ids::{MailboxId, SequenceId};
use sequence_engine::domain::sequence::{Sequence, SequenceStatus, Step};
use sequence_engine::domain::time::{Delay, DelayUnit};
use sequence_engine::domain::validate::validate_step;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::problem::ApiError;

/// A step's delay: how long after the previous step (after enrollment, for the first).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayBody {
    /// How many units (never negative).
    pub amount: u32,
    /// `minutes`, `hours`, `days` or `business_days`.
    #[schema(value_type = String, example = "business_days")]
    pub unit: DelayUnit,
}

/// One step as a client writes it. The original service's fields are accepted too:
/// `step_order`, `content` for `body`, and `wait_days` for a delay in days. Single-brace
/// variables of the original (`{name}`, `{first_name}`) become template variables.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct StepBody {
    /// The original service's position (unique; steps are sorted by it).
    #[serde(default)]
    pub step_order: Option<u32>,
    /// A name for people.
    #[serde(default)]
    pub name: Option<String>,
    /// Subject template.
    pub subject: String,
    /// Text body template (`content` in the original service).
    #[serde(alias = "content")]
    pub body: String,
    /// HTML body template (open and click tracking apply to it).
    #[serde(default)]
    pub html_body: Option<String>,
    /// The original service's delay in days.
    #[serde(default)]
    pub wait_days: Option<u32>,
    /// The delay (give this or `wait_days`).
    #[serde(default)]
    pub delay: Option<DelayBody>,
    /// Send as a reply in the thread of the previous step.
    #[serde(default)]
    pub reply_in_thread: bool,
}

/// A new sequence. `open_tracking_enabled` and `click_tracking_enabled` (the original
/// service's names) are accepted for `track_opens` and `track_clicks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewSequence {
    /// Name (required).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Add an open pixel to HTML bodies.
    #[serde(default, alias = "open_tracking_enabled")]
    pub track_opens: bool,
    /// Rewrite links in HTML bodies for click tracking.
    #[serde(default, alias = "click_tracking_enabled")]
    pub track_clicks: bool,
    /// Exit an enrollment when its contact replies (default true).
    #[serde(default)]
    pub exit_on_reply: Option<bool>,
    /// The mailboxes it sends from; when empty at activation, every mailbox of the tenant.
    #[serde(default)]
    pub mailbox_pool: Vec<Uuid>,
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<StepBody>,
}

/// Changes to a sequence; absent fields are kept. `steps` replaces every step (draft only).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct SequenceChanges {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Open tracking.
    #[serde(default, alias = "open_tracking_enabled")]
    pub track_opens: Option<bool>,
    /// Click tracking.
    #[serde(default, alias = "click_tracking_enabled")]
    pub track_clicks: Option<bool>,
    /// Exit on reply.
    #[serde(default)]
    pub exit_on_reply: Option<bool>,
    /// The mailbox pool.
    #[serde(default)]
    pub mailbox_pool: Option<Vec<Uuid>>,
    /// Every step, replacing the present ones (draft only).
    #[serde(default)]
    pub steps: Option<Vec<StepBody>>,
}

/// A clone's name.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CloneBody {
    /// The copy's name (`<name> (copy)` when absent).
    #[serde(default)]
    pub name: Option<String>,
}

/// A step as the API shows it; its `id` is its position, from 0.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    /// The step's id in `/steps/{step_id}`: its position, from 0.
    pub id: u32,
    /// Its position, from 0.
    pub step_order: u32,
    /// Name.
    pub name: String,
    /// Subject template.
    pub subject: String,
    /// Text body template.
    pub body: String,
    /// HTML body template.
    pub html_body: Option<String>,
    /// The delay.
    pub delay: DelayBody,
    /// Sent as a reply in the thread.
    pub reply_in_thread: bool,
}

/// A sequence as the API shows it. `id`, `name` and `step_count` are what the original
/// service answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SequenceView {
    /// Id.
    #[schema(value_type = Uuid)]
    pub id: SequenceId,
    /// Name.
    pub name: String,
    /// How many steps.
    pub step_count: usize,
    /// `draft`, `active`, `paused` or `archived`.
    #[schema(value_type = String, example = "draft")]
    pub status: SequenceStatus,
    /// Description.
    pub description: String,
    /// Open tracking.
    pub track_opens: bool,
    /// Click tracking.
    pub track_clicks: bool,
    /// Exit on reply.
    pub exit_on_reply: bool,
    /// The mailboxes it sends from.
    #[schema(value_type = Vec<Uuid>)]
    pub mailbox_pool: Vec<MailboxId>,
    /// The steps.
    pub steps: Vec<StepView>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<&Sequence> for SequenceView {
    fn from(s: &Sequence) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            step_count: s.steps().len(),
            status: s.status(),
            description: s.description.clone(),
            track_opens: s.track_opens,
            track_clicks: s.track_clicks,
            exit_on_reply: s.exit_on_reply,
            mailbox_pool: s.mailbox_pool.clone(),
            steps: s
                .steps()
                .iter()
                .map(|st| StepView {
                    id: st.order,
                    step_order: st.order,
                    name: st.name.clone(),
                    subject: st.subject.clone(),
                    body: st.body.clone(),
                    html_body: st.html_body.clone(),
                    delay: DelayBody {
                        amount: st.delay.amount,
                        unit: st.delay.unit,
                    },
                    reply_in_thread: st.reply_in_thread,
                })
                .collect(),
            created_at: s.created_at,
        }
    }
}

/// The original service's single-brace variables (`{name}`, `{first_name}`) as template
/// variables (`{{ first_name }}`); a template that already uses `{{` or `{%` is ours and
/// left alone. `{name}` is the contact's first name, as in the original service.
#[must_use]
pub fn upgrade_braces(source: &str) -> String {
    if source.contains("{{") || source.contains("{%") {
        return source.to_owned();
    }
    let mut out = String::with_capacity(source.len() + 8);
    let mut rest = source;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}');
        let name = close.map(|c| &after[..c]);
        match name {
            Some(n)
                if !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                let var = if n == "name" { "first_name" } else { n };
                out.push_str("{{ ");
                out.push_str(var);
                out.push_str(" }}");
                rest = &after[n.len() + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Domain steps from `bodies`, sorted by `step_order` when given; every problem is named
/// (`steps[1].wait_days`), all of them at once.
///
/// # Errors
/// 422 with each problem.
pub fn steps_from(bodies: &[StepBody]) -> Result<Vec<Step>, ApiError> {
    let mut problems = Problems::new();
    let mut steps: Vec<(u32, Step)> = Vec::with_capacity(bodies.len());
    let mut seen = std::collections::HashSet::new();
    for (i, b) in bodies.iter().enumerate() {
        let at = format!("steps[{i}]");
        let order = b.step_order.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX));
        if b.step_order.is_some() && !seen.insert(order) {
            problems.push(format!("{at}.step_order"), "another step has this order");
        }
        match step_from(b) {
            Ok(step) => {
                if let Err(e) = validate_step(&step) {
                    problems.extend_prefixed(&at, e);
                }
                steps.push((order, step));
            }
            Err((field, reason)) => problems.push(format!("{at}.{field}"), reason),
        }
    }
    problems
        .finish()
        .map_err(|e| ApiError::validation("", &e))?;
    steps.sort_by_key(|(order, _)| *order);
    Ok(steps.into_iter().map(|(_, s)| s).collect())
}

/// One domain step, or the field that is wrong and why.
fn step_from(b: &StepBody) -> Result<Step, (&'static str, String)> {
    let delay = match (b.delay, b.wait_days) {
        (Some(_), Some(_)) => {
            return Err(("delay", "give `delay` or `wait_days`, not both".into()));
        }
        (Some(d), None) => Delay::new(d.amount, d.unit),
        (None, Some(days)) => Delay::new(days, DelayUnit::Days),
        (None, None) => Delay::ZERO,
    };
    let mut step = Step::new(delay, upgrade_braces(&b.subject), upgrade_braces(&b.body));
    if let Some(name) = &b.name {
        step = step.with_name(name.clone());
    }
    if let Some(html) = &b.html_body {
        step = step.with_html_body(upgrade_braces(html));
    }
    if b.reply_in_thread {
        step = step.in_thread();
    }
    Ok(step)
}

/// Mailbox ids from the body's UUIDs.
#[must_use]
pub fn pool_from(ids: &[Uuid]) -> Vec<MailboxId> {
    ids.iter().copied().map(MailboxId).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_braces_become_variables() {
        assert_eq!(
            upgrade_braces("Hi {name}, welcome!"),
            "Hi {{ first_name }}, welcome!"
        );
        assert_eq!(upgrade_braces("{first_name} {x"), "{{ first_name }} {x");
        assert_eq!(upgrade_braces("{ not a var }"), "{ not a var }");
        assert_eq!(upgrade_braces("Hi {{ company }}"), "Hi {{ company }}");
    }

    #[test]
    fn steps_are_sorted_by_order_and_problems_named() {
        let body = |order, wait| StepBody {
            step_order: Some(order),
            name: None,
            subject: format!("s{order}"),
            body: "b".into(),
            html_body: None,
            wait_days: Some(wait),
            delay: None,
            reply_in_thread: false,
        };
        let steps = steps_from(&[body(1, 3), body(0, 0)]).unwrap();
        assert_eq!(steps[0].subject, "s0");
        assert_eq!(steps[1].delay, Delay::new(3, DelayUnit::Days));
        let mut bad = body(0, 1);
        bad.delay = Some(DelayBody {
            amount: 1,
            unit: DelayUnit::Hours,
        });
        let e = steps_from(&[body(0, 0), body(0, 1), bad]).unwrap_err();
        let fields: Vec<String> = e.problem().errors.into_iter().map(|e| e.field).collect();
        assert!(
            fields.contains(&"steps[1].step_order".to_owned()),
            "{fields:?}"
        );
        assert!(fields.contains(&"steps[2].delay".to_owned()), "{fields:?}");
    }
}
