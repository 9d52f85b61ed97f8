//! Sending mailboxes: the addresses sequences send from, each with its own daily limit,
//! weekly windows in its own zone, minimum gap between sends and warm-up ramp.

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{TransitionError, ValidationErrors};
use crate::event::DomainEvent;
use crate::ids::{MailboxId, TenantId};
use crate::time::{effective_daily_limit, HolidayCalendar, WarmUp, WeeklySchedule};

/// The default daily limit of a mailbox.
pub const DEFAULT_DAILY_LIMIT: u32 = 30;

/// Whether a mailbox sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MailboxStatus {
    /// Sends inside its windows and limit.
    #[default]
    Active,
    /// Paused by the host; may be resumed.
    Paused,
    /// Suspended (e.g. after authentication failures); may be resumed by the host.
    Suspended,
}

/// A sending mailbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Mailbox {
    /// Identity.
    pub id: MailboxId,
    /// Owner.
    pub tenant: TenantId,
    /// The sending address.
    pub address: String,
    /// Display name in `From`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The most attempts on one local day (before warm-up caps it).
    pub daily_limit: u32,
    /// Whether it sends.
    #[serde(default)]
    status: MailboxStatus,
    /// The zone of its windows and of its local days.
    pub timezone: Tz,
    /// When it may send, in its zone.
    #[serde(default)]
    pub schedule: WeeklySchedule,
    /// The least time between two attempts, in seconds.
    #[serde(default)]
    pub min_gap_seconds: u32,
    /// Warm-up ramp, if any.
    #[serde(default)]
    pub warmup: Option<WarmUp>,
    /// Local dates on which it sends nothing.
    #[serde(default)]
    pub holidays: HolidayCalendar,
    /// Optimistic-lock version, bumped on every change.
    #[serde(default)]
    version: u64,
}

impl Mailbox {
    /// A checked, active mailbox with the default limit, open always.
    ///
    /// # Errors
    /// Every problem found, each with its field path.
    pub fn new(
        tenant: TenantId,
        address: impl Into<String>,
        timezone: Tz,
    ) -> Result<Self, ValidationErrors> {
        let mailbox = Self {
            id: MailboxId::new(),
            tenant,
            address: address.into(),
            display_name: None,
            daily_limit: DEFAULT_DAILY_LIMIT,
            status: MailboxStatus::Active,
            timezone,
            schedule: WeeklySchedule::always(),
            min_gap_seconds: 0,
            warmup: None,
            holidays: HolidayCalendar::default(),
            version: 0,
        };
        mailbox.validate()?;
        Ok(mailbox)
    }

    /// Set the id (builder style).
    #[must_use]
    pub fn with_id(mut self, id: MailboxId) -> Self {
        self.id = id;
        self
    }
    /// Set the display name (builder style).
    #[must_use]
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
    /// Set the daily limit (builder style).
    #[must_use]
    pub fn with_daily_limit(mut self, limit: u32) -> Self {
        self.daily_limit = limit;
        self
    }
    /// Set the weekly schedule (builder style).
    #[must_use]
    pub fn with_schedule(mut self, schedule: WeeklySchedule) -> Self {
        self.schedule = schedule;
        self
    }
    /// Set the minimum gap in seconds (builder style).
    #[must_use]
    pub fn with_min_gap_seconds(mut self, seconds: u32) -> Self {
        self.min_gap_seconds = seconds;
        self
    }
    /// Set a warm-up ramp (builder style).
    #[must_use]
    pub fn with_warmup(mut self, warmup: WarmUp) -> Self {
        self.warmup = Some(warmup);
        self
    }
    /// Set the holidays (builder style).
    #[must_use]
    pub fn with_holidays(mut self, holidays: HolidayCalendar) -> Self {
        self.holidays = holidays;
        self
    }

    /// Check every field.
    ///
    /// # Errors
    /// Every problem found, each with its field path.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        crate::validate::validate_mailbox(self)
    }

    /// The limit in force on local `date` (warm-up applied; 0 on a holiday).
    #[must_use]
    pub fn limit_on(&self, date: NaiveDate) -> u32 {
        if self.holidays.contains(date) {
            0
        } else {
            effective_daily_limit(self.daily_limit, self.warmup.as_ref(), date)
        }
    }

    /// Whether the mailbox sends; it changes only through `pause`, `suspend` and `resume`.
    #[must_use]
    pub fn status(&self) -> MailboxStatus {
        self.status
    }

    /// The optimistic-lock version: every stored write raises it.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// For stores: the version the record is stored at (optimistic locking). Nothing in
    /// the domain decides on it, so setting it breaks no invariant.
    pub fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    /// Whether the mailbox may send at all now.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.status == MailboxStatus::Active
    }

    /// Pause the mailbox.
    ///
    /// # Errors
    /// When it is not active.
    pub fn pause(&mut self) -> Result<DomainEvent, TransitionError> {
        self.set_status(MailboxStatus::Paused, "pause", &[MailboxStatus::Active])?;
        Ok(DomainEvent::MailboxPaused { mailbox: self.id })
    }

    /// Suspend the mailbox (e.g. after its credentials were refused).
    ///
    /// # Errors
    /// When it is already suspended.
    pub fn suspend(&mut self, reason: impl Into<String>) -> Result<DomainEvent, TransitionError> {
        self.set_status(
            MailboxStatus::Suspended,
            "suspend",
            &[MailboxStatus::Active, MailboxStatus::Paused],
        )?;
        Ok(DomainEvent::MailboxSuspended {
            mailbox: self.id,
            reason: crate::validate::one_line(reason.into()),
        })
    }

    /// Resume a paused or suspended mailbox.
    ///
    /// # Errors
    /// When it is already active.
    pub fn resume(&mut self) -> Result<DomainEvent, TransitionError> {
        self.set_status(
            MailboxStatus::Active,
            "resume",
            &[MailboxStatus::Paused, MailboxStatus::Suspended],
        )?;
        Ok(DomainEvent::MailboxResumed { mailbox: self.id })
    }

    fn set_status(
        &mut self,
        to: MailboxStatus,
        action: &'static str,
        from: &[MailboxStatus],
    ) -> Result<(), TransitionError> {
        if !from.contains(&self.status) {
            return Err(TransitionError::status(action, self.status));
        }
        self.status = to;
        self.version += 1;
        Ok(())
    }
}
