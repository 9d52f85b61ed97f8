//! Reading: statistics per sequence, and "why is this enrollment not sending?".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sequence_core::enrollment::{Deferral, EnrollmentStatus, ExitReason};
use sequence_core::error::Entity;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::send::SendStatus;
use serde::{Deserialize, Serialize};

use super::{Engine, EngineError};
use crate::planner::MailboxOutlook;

/// Counts of one A/B variant of a step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VariantStats {
    /// The variant (0 for the step's own content).
    pub variant: u32,
    /// Sent.
    pub sent: u64,
    /// Opened (first opens).
    pub opened: u64,
    /// Clicked (first clicks).
    pub clicked: u64,
}

/// Counts of one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepStats {
    /// The step.
    pub step: u32,
    /// Sent.
    pub sent: u64,
    /// Failed for good.
    pub failed: u64,
    /// Opened.
    pub opened: u64,
    /// Clicked.
    pub clicked: u64,
    /// Per variant.
    pub variants: Vec<VariantStats>,
}

/// Statistics of a sequence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SequenceStats {
    /// The sequence.
    pub sequence: SequenceId,
    /// Enrollments in all.
    pub enrolled: u64,
    /// Active now.
    pub active: u64,
    /// Paused now.
    pub paused: u64,
    /// Completed.
    pub completed: u64,
    /// Exited, by reason.
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
    pub steps: Vec<StepStats>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Why an enrollment is (not) sending, for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Explanation {
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// Its status.
    pub status: EnrollmentStatus,
    /// Why it ended, if it did.
    pub exit_reason: Option<ExitReason>,
    /// The step it waits to send.
    pub current_step: u32,
    /// When that step is due.
    pub due_at: Option<DateTime<Utc>>,
    /// When the engine looks at it next.
    pub next_due_at: Option<DateTime<Utc>>,
    /// The planner's last deferral (reason and `not_before`), while waiting.
    pub deferral: Option<Deferral>,
    /// When the pool wait that holds the enrollment back ends: every mailbox of its
    /// sequence's pool is full until then (see `sequence_core::store::PoolWait`).
    pub pool_wait: Option<DateTime<Utc>>,
    /// When the mailbox wait that holds the enrollment back ends: its own mailbox is full
    /// until then (see `sequence_core::store::MailboxWait`).
    #[serde(default)]
    pub mailbox_wait: Option<DateTime<Utc>>,
    /// The planned or in-flight send of the current step: (send, mailbox, instant, status).
    pub pending_send: Option<(SendId, MailboxId, DateTime<Utc>, SendStatus)>,
    /// Each mailbox that could send the step (the sequence's pool, and the enrollment's own
    /// mailbox), as it stands now: its use and limit today and when it can next send.
    pub mailboxes: Vec<MailboxOutlook>,
    /// One sentence, and a clause per mailbox while the enrollment waits.
    pub summary: String,
}

impl Engine {
    /// Statistics of a sequence: enrollments by status and exit reason, sends, rates, per
    /// step and per A/B variant.
    ///
    /// # Errors
    /// The store failed.
    pub async fn stats(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<SequenceStats, EngineError> {
        let mut completed_ended = 0u64;
        let tally = self.inner.store.sequence_tally(tenant, sequence).await?;
        let mut s = SequenceStats {
            sequence,
            ..SequenceStats::default()
        };
        let (mut started, mut completed_seconds) = (0u64, 0i64);
        for t in &tally.enrollments {
            s.enrolled += t.count;
            started += t.started;
            s.replied += t.replied;
            match t.status {
                EnrollmentStatus::Active => s.active += t.count,
                EnrollmentStatus::Paused => s.paused += t.count,
                EnrollmentStatus::Completed => {
                    s.completed += t.count;
                    completed_seconds += t.seconds_to_end;
                    completed_ended += t.ended;
                }
                _ => {
                    let reason = t.exit_reason.map_or("unknown", ExitReason::as_str);
                    *s.exited.entry(reason.to_owned()).or_default() += t.count;
                }
            }
        }
        let mut steps: BTreeMap<u32, StepStats> = BTreeMap::new();
        for t in &tally.sends {
            let st = steps.entry(t.step).or_insert_with(|| StepStats {
                step: t.step,
                ..StepStats::default()
            });
            let pos = match st.variants.iter().position(|v| v.variant == t.variant) {
                Some(pos) => pos,
                None => {
                    st.variants.push(VariantStats {
                        variant: t.variant,
                        ..VariantStats::default()
                    });
                    st.variants.len() - 1
                }
            };
            let var = &mut st.variants[pos];
            match t.status {
                SendStatus::Sent => {
                    s.sent += t.count;
                    st.sent += t.count;
                    var.sent += t.count;
                }
                SendStatus::Failed => {
                    s.failed += t.count;
                    st.failed += t.count;
                }
                _ => {}
            }
            s.opened += t.opened;
            st.opened += t.opened;
            var.opened += t.opened;
            s.clicked += t.clicked;
            st.clicked += t.clicked;
            var.clicked += t.clicked;
        }
        for st in steps.values_mut() {
            st.variants.sort_by_key(|v| v.variant);
        }
        s.steps = steps.into_values().collect();
        s.open_rate = ratio(s.opened, s.sent);
        s.click_rate = ratio(s.clicked, s.sent);
        s.reply_rate = ratio(s.replied, started);
        s.completion_rate = ratio(s.completed, s.enrolled);
        s.average_seconds_to_complete =
            (completed_ended > 0).then(|| completed_seconds as f64 / completed_ended as f64);
        Ok(s)
    }

    /// Why is this enrollment not sending? Its status, the planner's last deferral reason
    /// with its `not_before`, its pending send, if any, and each mailbox that could send it
    /// with its use today, its limit and its next opening.
    ///
    /// # Errors
    /// The enrollment is not found, or the store failed.
    pub async fn why_not_sending(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
    ) -> Result<Explanation, EngineError> {
        let store = &self.inner.store;
        let e = store
            .get_enrollment(tenant, enrollment)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                entity: Entity::Enrollment,
                id: enrollment.to_string(),
            })?;
        let pending = store
            .sends_of_enrollment(tenant, enrollment)
            .await?
            .into_iter()
            .find(|s| {
                s.step == e.current_step()
                    && matches!(
                        s.status(),
                        SendStatus::Planned | SendStatus::Sending | SendStatus::RetryWait
                    )
            })
            .map(|s| (s.id, s.mailbox(), s.planned_at(), s.status()));
        let now = self.now();
        let mut ids: Vec<MailboxId> = store
            .get_sequence(tenant, e.sequence)
            .await?
            .map(|seq| seq.mailbox_pool)
            .unwrap_or_default();
        if let Some(m) = e.mailbox().filter(|m| !ids.contains(m)) {
            ids.push(m);
        }
        let snapshots = store.mailbox_snapshots(now, &ids).await?;
        // In pool order, the enrollment's own mailbox last.
        let mailboxes: Vec<MailboxOutlook> = ids
            .iter()
            .filter_map(|id| snapshots.iter().find(|s| s.mailbox.id == *id))
            .map(|snap| MailboxOutlook::new(now, snap))
            .collect();
        let pool_wait = if e.goes_to_pool() && pending.is_none() {
            store
                .pool_wait(tenant, e.sequence, now)
                .await?
                .map(|w| w.until)
        } else {
            None
        };
        let mailbox_wait = match e.waits_on_mailbox().filter(|_| pending.is_none()) {
            Some(m) => store.mailbox_wait(tenant, m, now).await?.map(|w| w.until),
            None => None,
        };
        let wait = pool_wait.map(|t| (t, "every mailbox of the pool is full"));
        let wait = wait.or(mailbox_wait.map(|t| (t, "its mailbox is full for the day")));
        let mut summary = match (e.status(), &e.deferral(), &pending, wait) {
            (EnrollmentStatus::Completed, _, _, _) => "completed: every step was sent".to_owned(),
            (EnrollmentStatus::Exited, _, _, _) => format!("exited: {:?}", e.exit_reason()),
            (EnrollmentStatus::Paused, _, _, _) => match e.paused_until() {
                Some(t) => format!("paused until {t}"),
                None => "paused until resumed".to_owned(),
            },
            (_, _, Some((_, m, at, status)), _) => format!(
                "step {} is {status:?} on mailbox {m} for {at}",
                e.current_step()
            ),
            (_, _, None, Some((until, why))) => {
                format!("waiting: {why} (NoCapacity); looked at again at {until}")
            }
            (_, Some(d), _, _) => match d.not_before {
                Some(t) => format!("waiting: {:?}; looked at again at {t}", d.reason),
                None => format!(
                    "waiting: {:?}; until the sequence or mailbox is resumed",
                    d.reason
                ),
            },
            _ => match e.next_due_at() {
                Some(t) => format!("step {} is due at {t}", e.current_step()),
                None => "nothing scheduled".to_owned(),
            },
        };
        if e.status() == EnrollmentStatus::Active && pending.is_none() {
            for m in &mailboxes {
                summary.push_str("; ");
                summary.push_str(&m.clause());
            }
        }
        Ok(Explanation {
            enrollment,
            status: e.status(),
            exit_reason: e.exit_reason(),
            current_step: e.current_step(),
            due_at: e.due_at(),
            next_due_at: e.next_due_at(),
            deferral: e.deferral(),
            pool_wait,
            mailbox_wait,
            pending_send: pending,
            mailboxes,
            summary,
        })
    }
}
