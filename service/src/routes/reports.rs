//! What the engine reports, as the API shows it with an OpenAPI schema: a sequence's
//! statistics, why an enrollment is (not) sending, and a mailbox's use of its capacity.
//!
//! The engine's types live in crates that know nothing of OpenAPI, so each has a view here
//! that serializes to exactly the JSON the engine's own type does (the tests below check
//! it): documenting the answers did not change them.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sequence_engine::domain::enrollment::{Deferral, DeferralReason, EnrollmentStatus, ExitReason};
use sequence_engine::domain::ids::{EnrollmentId, MailboxId, SendId, SequenceId};
use sequence_engine::domain::mailbox::MailboxStatus;
use sequence_engine::domain::send::SendStatus;
use sequence_engine::domain::store::MailboxDay;
use sequence_engine::scheduler::{
    Explanation, MailboxOutlook, MailboxUsage, SequenceStats, StepStats, VariantStats,
};
use serde::Serialize;
use utoipa::ToSchema;

/// Counts of one A/B variant of a step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariantStatsView {
    /// The variant (0 for the step's own content).
    pub variant: u32,
    /// Sent.
    pub sent: u64,
    /// Opened (first opens).
    pub opened: u64,
    /// Clicked (first clicks).
    pub clicked: u64,
}

impl From<&VariantStats> for VariantStatsView {
    fn from(v: &VariantStats) -> Self {
        Self {
            variant: v.variant,
            sent: v.sent,
            opened: v.opened,
            clicked: v.clicked,
        }
    }
}

/// Counts of one step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepStatsView {
    /// The step's position, from 0.
    pub step: u32,
    /// Sent.
    pub sent: u64,
    /// Failed for good.
    pub failed: u64,
    /// Opened.
    pub opened: u64,
    /// Clicked.
    pub clicked: u64,
    /// Per A/B variant.
    pub variants: Vec<VariantStatsView>,
}

impl From<&StepStats> for StepStatsView {
    fn from(s: &StepStats) -> Self {
        Self {
            step: s.step,
            sent: s.sent,
            failed: s.failed,
            opened: s.opened,
            clicked: s.clicked,
            variants: s.variants.iter().map(VariantStatsView::from).collect(),
        }
    }
}

/// A sequence's statistics: enrollments by status and exit reason, sends, opens, clicks,
/// replies and rates, per step and per A/B variant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SequenceStatsView {
    /// The sequence.
    #[schema(value_type = uuid::Uuid)]
    pub sequence: SequenceId,
    /// Enrollments in all.
    pub enrolled: u64,
    /// Active now.
    pub active: u64,
    /// Paused now.
    pub paused: u64,
    /// Completed.
    pub completed: u64,
    /// Exited, by reason (`replied`, `unsubscribed`, `bounced`, ...).
    pub exited: BTreeMap<String, u64>,
    /// Sends accepted by the transport.
    pub sent: u64,
    /// Sends failed for good.
    pub failed: u64,
    /// Sent emails opened.
    pub opened: u64,
    /// Sent emails clicked.
    pub clicked: u64,
    /// Enrollments whose contact replied.
    pub replied: u64,
    /// `opened / sent`.
    pub open_rate: f64,
    /// `clicked / sent`.
    pub click_rate: f64,
    /// `replied / enrollments that sent something`.
    pub reply_rate: f64,
    /// `completed / enrolled`.
    pub completion_rate: f64,
    /// Mean seconds from enrollment to completion, over completed enrollments.
    pub average_seconds_to_complete: Option<f64>,
    /// Per step.
    pub steps: Vec<StepStatsView>,
}

impl From<&SequenceStats> for SequenceStatsView {
    fn from(s: &SequenceStats) -> Self {
        Self {
            sequence: s.sequence,
            enrolled: s.enrolled,
            active: s.active,
            paused: s.paused,
            completed: s.completed,
            exited: s.exited.clone(),
            sent: s.sent,
            failed: s.failed,
            opened: s.opened,
            clicked: s.clicked,
            replied: s.replied,
            open_rate: s.open_rate,
            click_rate: s.click_rate,
            reply_rate: s.reply_rate,
            completion_rate: s.completion_rate,
            average_seconds_to_complete: s.average_seconds_to_complete,
            steps: s.steps.iter().map(StepStatsView::from).collect(),
        }
    }
}

/// The planner's last answer for an enrollment that waits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeferralView {
    /// Why it waits: `waiting_for_delay`, `no_capacity`, `outside_mailbox_window`,
    /// `outside_recipient_window`, `mailbox_paused`, `no_active_mailbox_in_pool`,
    /// `new_enrollment_cap_reached`, `recipient_domain_cap_reached`, `sequence_paused` or
    /// `retry_backoff`.
    #[schema(value_type = String)]
    pub reason: DeferralReason,
    /// The earliest instant at which planning again could change the answer; absent while
    /// it waits for an event (a resume).
    pub not_before: Option<DateTime<Utc>>,
}

impl From<&Deferral> for DeferralView {
    fn from(d: &Deferral) -> Self {
        Self {
            reason: d.reason,
            not_before: d.not_before,
        }
    }
}

/// A mailbox that could send an enrollment's step, as it stands now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailboxOutlookView {
    /// The mailbox.
    #[schema(value_type = uuid::Uuid)]
    pub mailbox: MailboxId,
    /// `active`, `paused` or `suspended`.
    #[schema(value_type = String)]
    pub status: MailboxStatus,
    /// Its local date now.
    pub local_date: NaiveDate,
    /// Attempts made plus sends reserved on that date.
    pub used_today: u32,
    /// Its daily limit on that date (warm-up applied).
    pub limit_today: u32,
    /// The first instant from now at which it is inside its windows with capacity left;
    /// absent while it does not send, or when no window opens within the next weeks.
    pub next_opening: Option<DateTime<Utc>>,
}

impl From<&MailboxOutlook> for MailboxOutlookView {
    fn from(m: &MailboxOutlook) -> Self {
        Self {
            mailbox: m.mailbox,
            status: m.status,
            local_date: m.local_date,
            used_today: m.used_today,
            limit_today: m.limit_today,
            next_opening: m.next_opening,
        }
    }
}

/// Why an enrollment is (not) sending: the engine's whole explanation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExplanationView {
    /// The enrollment.
    #[schema(value_type = uuid::Uuid)]
    pub enrollment: EnrollmentId,
    /// `active`, `paused`, `completed` or `exited`.
    #[schema(value_type = String)]
    pub status: EnrollmentStatus,
    /// Why it ended, if it did.
    #[schema(value_type = Option<String>)]
    pub exit_reason: Option<ExitReason>,
    /// The step it waits to send.
    pub current_step: u32,
    /// When that step is due.
    pub due_at: Option<DateTime<Utc>>,
    /// When the engine looks at it next.
    pub next_due_at: Option<DateTime<Utc>>,
    /// The planner's last deferral, while it waits.
    pub deferral: Option<DeferralView>,
    /// When the pool wait holding it back ends: every mailbox of its pool is full until then.
    pub pool_wait: Option<DateTime<Utc>>,
    /// When the wait of the enrollment's own mailbox ends: that mailbox is full until then.
    pub mailbox_wait: Option<DateTime<Utc>>,
    /// The planned or in-flight send of the current step, as `[send id, mailbox id,
    /// instant, status]` (status `planned`, `sending`, `retry_wait`, ...).
    #[schema(value_type = Option<(uuid::Uuid, uuid::Uuid, DateTime<Utc>, String)>)]
    pub pending_send: Option<(SendId, MailboxId, DateTime<Utc>, SendStatus)>,
    /// Each mailbox that could send the step (the sequence's pool, and the enrollment's
    /// own mailbox): its use and limit today and when it can next send.
    pub mailboxes: Vec<MailboxOutlookView>,
    /// One sentence, and a clause per mailbox while the enrollment waits.
    pub summary: String,
}

impl From<&Explanation> for ExplanationView {
    fn from(e: &Explanation) -> Self {
        Self {
            enrollment: e.enrollment,
            status: e.status,
            exit_reason: e.exit_reason,
            current_step: e.current_step,
            due_at: e.due_at,
            next_due_at: e.next_due_at,
            deferral: e.deferral.as_ref().map(DeferralView::from),
            pool_wait: e.pool_wait,
            mailbox_wait: e.mailbox_wait,
            pending_send: e.pending_send,
            mailboxes: e.mailboxes.iter().map(MailboxOutlookView::from).collect(),
            summary: e.summary.clone(),
        }
    }
}

/// What a mailbox used on one of its local dates.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailboxDayView {
    /// The mailbox-local date.
    pub date: NaiveDate,
    /// Attempts made (failed ones included: they count toward the limit).
    pub attempts: u32,
    /// Attempts made plus sends planned and not yet claimed: what counts toward the limit.
    pub used: u32,
}

impl From<&MailboxDay> for MailboxDayView {
    fn from(d: &MailboxDay) -> Self {
        Self {
            date: d.date,
            attempts: d.attempts,
            used: d.used,
        }
    }
}

/// How much of its capacity a mailbox is using: its current local day, its local week
/// (Monday to Sunday) and when it next opens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailboxUsageView {
    /// The mailbox.
    #[schema(value_type = uuid::Uuid)]
    pub mailbox: MailboxId,
    /// `active`, `paused` or `suspended`.
    #[schema(value_type = String)]
    pub status: MailboxStatus,
    /// Today in the mailbox's zone.
    pub today: MailboxDayView,
    /// Today's limit (the daily limit with the warm-up ramp applied; 0 on a holiday).
    pub limit_today: u32,
    /// Each day of the mailbox-local week that holds today, Monday first.
    pub week: Vec<MailboxDayView>,
    /// Whether the mailbox is inside one of its windows now.
    pub open_now: bool,
    /// The next instant a window opens (now when open; absent when it never opens).
    pub next_opening: Option<DateTime<Utc>>,
}

impl From<&MailboxUsage> for MailboxUsageView {
    fn from(u: &MailboxUsage) -> Self {
        Self {
            mailbox: u.mailbox,
            status: u.status,
            today: MailboxDayView::from(&u.today),
            limit_today: u.limit_today,
            week: u.week.iter().map(MailboxDayView::from).collect(),
            open_now: u.open_now,
            next_opening: u.next_opening,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn as_json(value: &impl Serialize) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn statistics_are_shown_as_the_engine_serializes_them() {
        let mut variant = VariantStats::default();
        variant.variant = 1;
        variant.sent = 4;
        let mut step = StepStats::default();
        step.step = 2;
        step.failed = 1;
        step.variants = vec![variant];
        let mut stats = SequenceStats::default();
        stats.sequence = SequenceId::new();
        stats.exited.insert("replied".into(), 3);
        stats.open_rate = 0.25;
        stats.average_seconds_to_complete = Some(86_400.5);
        stats.steps = vec![step];
        assert_eq!(as_json(&SequenceStatsView::from(&stats)), as_json(&stats));
    }

    #[test]
    fn an_explanation_is_shown_as_the_engine_serializes_it() {
        let explanation: Explanation = serde_json::from_value(json!({
            "enrollment": "5e0a3fee-1f53-56dc-aace-4f74ca6d99ad",
            "status": "active",
            "exit_reason": null,
            "current_step": 1,
            "due_at": "2026-03-09T08:00:00Z",
            "next_due_at": null,
            "deferral": {"reason": "no_capacity", "not_before": "2026-03-10T00:00:00Z"},
            "pool_wait": "2026-03-10T09:00:00Z",
            "mailbox_wait": null,
            "pending_send": ["6f519430-9b1d-5650-8e82-a240ed26ea9d",
                             "b185ba85-f92b-5f80-86cd-76b4a63ed046",
                             "2026-03-10T09:00:00Z", "planned"],
            "mailboxes": [{"mailbox": "b185ba85-f92b-5f80-86cd-76b4a63ed046",
                           "status": "active", "local_date": "2026-03-09",
                           "used_today": 30, "limit_today": 30,
                           "next_opening": "2026-03-10T09:00:00Z"}],
            "summary": "Waiting: every mailbox used its limit today."
        }))
        .unwrap();
        assert_eq!(
            as_json(&ExplanationView::from(&explanation)),
            as_json(&explanation)
        );
    }

    #[test]
    fn a_mailboxs_usage_is_shown_as_the_engine_serializes_it() {
        let day = json!({"date": "2026-03-09", "attempts": 3, "used": 5});
        let usage: MailboxUsage = serde_json::from_value(json!({
            "mailbox": "b185ba85-f92b-5f80-86cd-76b4a63ed046",
            "status": "paused",
            "today": day,
            "limit_today": 80,
            "week": [day, {"date": "2026-03-10", "attempts": 0, "used": 0}],
            "open_now": false,
            "next_opening": null
        }))
        .unwrap();
        assert_eq!(as_json(&MailboxUsageView::from(&usage)), as_json(&usage));
    }
}
