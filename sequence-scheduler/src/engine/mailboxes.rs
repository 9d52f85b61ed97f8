//! The host API for mailboxes: create, update, pause, suspend, resume, and their use.

use chrono::{DateTime, Datelike, Duration, Utc};
use sequence_core::enrollment::DeferralReason;
use sequence_core::error::Entity;
use sequence_core::event::DomainEvent;
use sequence_core::ids::{MailboxId, SequenceId, TenantId};
use sequence_core::mailbox::{Mailbox, MailboxStatus};
use sequence_core::store::{ChangeSet, MailboxDay};
use sequence_core::time::local_date;
use sequence_core::TransitionError;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::{Engine, EngineError};

/// How much of its capacity a mailbox is using, for dashboards: its current local day, its
/// local week (Monday to Sunday) and when it next opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MailboxUsage {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its status now.
    pub status: MailboxStatus,
    /// Today in the mailbox's zone: attempts made, and made plus planned.
    pub today: MailboxDay,
    /// Today's limit (the daily limit with the warm-up ramp applied; 0 on a holiday).
    pub limit_today: u32,
    /// Each day of the mailbox-local week that holds today, Monday first.
    pub week: Vec<MailboxDay>,
    /// Whether the mailbox is inside one of its windows now.
    pub open_now: bool,
    /// The next instant a window opens (now when open; `None` when it never opens).
    pub next_opening: Option<DateTime<Utc>>,
}

impl MailboxUsage {
    /// Attempts made this week so far.
    #[must_use]
    pub fn attempts_this_week(&self) -> u32 {
        self.week.iter().map(|d| d.attempts).sum()
    }
    /// What is left of today's limit (made and planned sends count).
    #[must_use]
    pub fn left_today(&self) -> u32 {
        self.limit_today.saturating_sub(self.today.used)
    }
}

impl Engine {
    /// How much of its capacity a mailbox is using now (see [`MailboxUsage`]).
    ///
    /// # Errors
    /// The mailbox is not found, or the store failed.
    pub async fn mailbox_usage(
        &self,
        tenant: TenantId,
        id: MailboxId,
    ) -> Result<MailboxUsage, EngineError> {
        let store = &self.inner.store;
        let mailbox = store
            .get_mailbox(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Entity::Mailbox, id))?;
        let now = self.now();
        let today = local_date(mailbox.timezone, now);
        let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
        let week = store
            .mailbox_days(tenant, id, monday, monday + Duration::days(6))
            .await?;
        let today_use = week
            .iter()
            .find(|d| d.date == today)
            .copied()
            .unwrap_or(MailboxDay {
                date: today,
                ..MailboxDay::default()
            });
        Ok(MailboxUsage {
            mailbox: id,
            status: mailbox.status(),
            today: today_use,
            limit_today: mailbox.limit_on(today),
            week,
            open_now: mailbox.schedule.contains(mailbox.timezone, now),
            next_opening: mailbox.schedule.next_open(mailbox.timezone, now),
        })
    }

    // ---- mailboxes ----------------------------------------------------------------------------

    /// Store a new mailbox (validated).
    ///
    /// # Errors
    /// Invalid fields, or a mailbox with that id exists.
    pub async fn create_mailbox(&self, mailbox: Mailbox) -> Result<Mailbox, EngineError> {
        mailbox.validate()?;
        self.inner.store.save_mailbox(&mailbox, None).await?;
        Ok(mailbox)
    }

    /// Change a mailbox with `change`, validate it and store it (optimistic lock).
    ///
    /// # Errors
    /// Not found, invalid, refused by the domain, or changed meanwhile.
    pub async fn update_mailbox(
        &self,
        tenant: TenantId,
        id: MailboxId,
        change: impl FnOnce(&mut Mailbox) -> Result<(), TransitionError>,
    ) -> Result<Mailbox, EngineError> {
        let mut mailbox = self
            .inner
            .store
            .get_mailbox(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Entity::Mailbox, id))?;
        let read = mailbox.version();
        change(&mut mailbox)?;
        mailbox.validate()?;
        if mailbox.version() == read {
            mailbox.set_version(read + 1);
        }
        self.inner.store.save_mailbox(&mailbox, Some(read)).await?;
        self.host_changed();
        Ok(mailbox)
    }

    /// Pause a mailbox: it sends nothing until resumed; its planned sends are called off so
    /// their enrollments can move to another mailbox of their pool.
    ///
    /// # Errors
    /// Not found, not active, or changed meanwhile.
    #[instrument(skip(self), level = "debug")]
    pub async fn pause_mailbox(&self, tenant: TenantId, id: MailboxId) -> Result<(), EngineError> {
        self.set_mailbox_status(tenant, id, Mailbox::pause).await
    }

    /// Suspend a mailbox (e.g. its credentials were refused); like a pause.
    ///
    /// # Errors
    /// Not found, already suspended, or changed meanwhile.
    pub async fn suspend_mailbox(
        &self,
        tenant: TenantId,
        id: MailboxId,
        reason: &str,
    ) -> Result<(), EngineError> {
        self.set_mailbox_status(tenant, id, |m| m.suspend(reason))
            .await
    }

    /// Resume a paused or suspended mailbox.
    ///
    /// # Errors
    /// Not found, already active, or changed meanwhile.
    pub async fn resume_mailbox(&self, tenant: TenantId, id: MailboxId) -> Result<(), EngineError> {
        self.set_mailbox_status(tenant, id, Mailbox::resume).await?;
        let sequences: Vec<SequenceId> = self
            .inner
            .store
            .list_sequences(tenant)
            .await?
            .into_iter()
            .filter(|s| s.mailbox_pool.contains(&id))
            .map(|s| s.id)
            .collect();
        self.wake_parked(tenant, &sequences).await
    }

    /// Wake the enrollments of `sequences` parked because no mailbox of their pool could
    /// send (a mailbox was resumed, or a pool changed): they are planned again at once.
    pub(super) async fn wake_parked(
        &self,
        tenant: TenantId,
        sequences: &[SequenceId],
    ) -> Result<(), EngineError> {
        let now = self.now();
        let mut changes = ChangeSet::default();
        for &seq in sequences {
            for mut e in self.inner.store.list_enrollments(tenant, seq).await? {
                let parked = e.deferral().is_some_and(|d| {
                    matches!(
                        d.reason,
                        DeferralReason::MailboxPaused | DeferralReason::NoActiveMailboxInPool
                    )
                });
                let v = e.version();
                if parked && e.wake(now) {
                    changes.enrollments.push((e, v));
                }
            }
        }
        self.apply_leniently(now, changes).await
    }

    async fn set_mailbox_status(
        &self,
        tenant: TenantId,
        id: MailboxId,
        change: impl FnOnce(&mut Mailbox) -> Result<DomainEvent, TransitionError>,
    ) -> Result<(), EngineError> {
        let now = self.now();
        let store = &self.inner.store;
        let mut mailbox = store
            .get_mailbox(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Entity::Mailbox, id))?;
        let read = mailbox.version();
        let event = change(&mut mailbox)?;
        let mut changes = ChangeSet {
            mailboxes: vec![(mailbox.clone(), read)],
            ..ChangeSet::default()
        };
        if !mailbox.is_active() {
            // Call off its planned sends; their enrollments are planned again at once.
            for snap in store.mailbox_snapshots(now, &[id]).await? {
                for slot in snap.planned {
                    changes.cancel_sends.push(slot.send);
                    if let Some(mut e) = store.get_enrollment(tenant, slot.enrollment).await? {
                        if e.is_final() {
                            continue;
                        }
                        let v = e.version();
                        e.release_planned(now)?;
                        changes.enrollments.push((e, v));
                    }
                }
            }
        }
        self.apply_host_changes(now, changes).await?;
        self.emit(tenant, &[event]);
        Ok(())
    }
}
