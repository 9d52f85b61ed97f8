//! Sequences and their steps.
//!
//! A sequence moves `draft -> active <-> paused`, and from any status to `archived`.
//! Steps are edited only in `draft`; activation needs at least one step; step orders are
//! unique and contiguous from 0 (the methods keep them so).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::condition::StepCondition;
use crate::error::{TransitionError, ValidationErrors};
use crate::event::DomainEvent;
use crate::ids::{MailboxId, SequenceId, TenantId};
use crate::time::{Delay, HolidayCalendar, WeeklySchedule};

/// Where a sequence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SequenceStatus {
    /// Being written; steps may change; nothing is sent.
    #[default]
    Draft,
    /// Sending.
    Active,
    /// Sends nothing until resumed, then carries on where it stopped.
    Paused,
    /// Finished for good; its enrollments exit.
    Archived,
}

/// An A/B variant of a step's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// A short label, e.g. `B`.
    pub name: String,
    /// Relative weight (> 0).
    pub weight: u32,
    /// Subject template.
    pub subject: String,
    /// Text body template.
    pub body: String,
    /// Optional HTML body template.
    #[serde(default)]
    pub html_body: Option<String>,
}

/// One email of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Step {
    /// Position, from 0, contiguous.
    pub order: u32,
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// Wait after the previous step (after enrollment, for step 0).
    pub delay: Delay,
    /// Subject template (variant A when there are variants).
    pub subject: String,
    /// Text body template.
    pub body: String,
    /// Optional HTML body template.
    #[serde(default)]
    pub html_body: Option<String>,
    /// Extra A/B variants; the step's own content is variant 0 with weight `weight`.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Weight of the step's own content when there are variants.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Optional condition, evaluated when the step comes due.
    #[serde(default)]
    pub condition: Option<StepCondition>,
    /// Send as a reply in the thread of the earlier steps (`In-Reply-To`, `Re:` subject).
    #[serde(default)]
    pub reply_in_thread: bool,
}

fn default_weight() -> u32 {
    1
}

impl Step {
    /// A step with a delay, subject and body; order is set when it is added to a sequence.
    pub fn new(delay: Delay, subject: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            order: 0,
            name: String::new(),
            delay,
            subject: subject.into(),
            body: body.into(),
            html_body: None,
            variants: Vec::new(),
            weight: 1,
            condition: None,
            reply_in_thread: false,
        }
    }
    /// Set the name (builder style).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Set an HTML body (builder style).
    #[must_use]
    pub fn with_html_body(mut self, html: impl Into<String>) -> Self {
        self.html_body = Some(html.into());
        self
    }
    /// Add an A/B variant (builder style).
    #[must_use]
    pub fn with_variant(mut self, variant: Variant) -> Self {
        self.variants.push(variant);
        self
    }
    /// Set a condition (builder style).
    #[must_use]
    pub fn with_condition(mut self, condition: StepCondition) -> Self {
        self.condition = Some(condition);
        self
    }
    /// Reply in the thread of the earlier steps (builder style).
    #[must_use]
    pub fn in_thread(mut self) -> Self {
        self.reply_in_thread = true;
        self
    }

    /// The number of content variants (1 without A/B testing).
    #[must_use]
    pub fn variant_count(&self) -> usize {
        1 + self.variants.len()
    }

    /// Pick a variant by weight from a uniform 64-bit draw (reproducible from a seed).
    /// Returns 0 for the step's own content, `i + 1` for `variants[i]`.
    #[must_use]
    pub fn choose_variant(&self, draw: u64) -> u32 {
        if self.variants.is_empty() {
            return 0;
        }
        let weights: Vec<u64> = std::iter::once(u64::from(self.weight))
            .chain(self.variants.iter().map(|v| u64::from(v.weight)))
            .collect();
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return 0;
        }
        let mut point = draw % total;
        for (i, w) in weights.iter().enumerate() {
            if point < *w {
                return u32::try_from(i).unwrap_or(0);
            }
            point -= w;
        }
        0
    }

    /// The templates (subject, text body, HTML body) of variant `index`.
    #[must_use]
    pub fn content(&self, index: u32) -> (&str, &str, Option<&str>) {
        match index
            .checked_sub(1)
            .and_then(|i| self.variants.get(i as usize))
        {
            Some(v) => (&v.subject, &v.body, v.html_body.as_deref()),
            None => (&self.subject, &self.body, self.html_body.as_deref()),
        }
    }
}

/// Whether a contact may enter a sequence again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum ReenrollmentRule {
    /// Never: one enrollment per contact, ever.
    #[default]
    Never,
    /// After the earlier enrollment ended (completed or exited), once `days` have passed
    /// since it was created.
    AfterDays {
        /// Days since the earlier enrollment began.
        days: u32,
    },
    /// After the earlier enrollment exited (not completed).
    AfterExit,
    /// After the earlier enrollment completed.
    AfterCompletion,
}

/// A fact about a contact that enrolls it in an active sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
#[non_exhaustive]
pub enum Trigger {
    /// A tag was added to the contact.
    TagAdded(String),
    /// The contact joined a list.
    ListJoined(String),
    /// The contact submitted a form.
    FormSubmitted(String),
    /// The contact entered a pipeline stage.
    PipelineEntered(String),
}

/// A multi-step email sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Sequence {
    /// Identity.
    pub id: SequenceId,
    /// Owner.
    pub tenant: TenantId,
    /// Name (required).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Where it is in its life.
    #[serde(default)]
    status: SequenceStatus,
    /// Steps, ordered from 0.
    #[serde(default)]
    steps: Vec<Step>,
    /// The mailboxes it sends from.
    #[serde(default)]
    pub mailbox_pool: Vec<MailboxId>,
    /// The contact's business hours, in the contact's zone (`None`: any time).
    #[serde(default)]
    pub recipient_windows: Option<WeeklySchedule>,
    /// Exit an enrollment when its contact replies (default true).
    #[serde(default = "default_true")]
    pub exit_on_reply: bool,
    /// Add an open pixel to HTML bodies.
    #[serde(default)]
    pub track_opens: bool,
    /// Rewrite links for click tracking.
    #[serde(default)]
    pub track_clicks: bool,
    /// Local dates business-day delays skip.
    #[serde(default)]
    pub holidays: HolidayCalendar,
    /// At most this many new enrollments start (step 0) per day, if set.
    #[serde(default)]
    pub new_enrollments_per_day: Option<u32>,
    /// At most this many attempts per recipient domain per day, if set.
    #[serde(default)]
    pub per_domain_daily_cap: Option<u32>,
    /// Whether a contact may enter again.
    #[serde(default)]
    pub reenrollment: ReenrollmentRule,
    /// Facts that enroll a contact while the sequence is active.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Optimistic-lock version, bumped on every change.
    #[serde(default)]
    version: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    events: Vec<DomainEvent>,
}

fn default_true() -> bool {
    true
}

impl Sequence {
    /// A new draft sequence.
    ///
    /// # Errors
    /// When the name is empty or too long.
    pub fn new(
        tenant: TenantId,
        name: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let mut seq = Self {
            id: SequenceId::new(),
            tenant,
            name: name.into(),
            description: String::new(),
            status: SequenceStatus::Draft,
            steps: Vec::new(),
            mailbox_pool: Vec::new(),
            recipient_windows: None,
            exit_on_reply: true,
            track_opens: false,
            track_clicks: false,
            holidays: HolidayCalendar::default(),
            new_enrollments_per_day: None,
            per_domain_daily_cap: None,
            reenrollment: ReenrollmentRule::Never,
            triggers: Vec::new(),
            version: 0,
            created_at: now,
            events: Vec::new(),
        };
        seq.validate()?;
        seq.events
            .push(DomainEvent::SequenceCreated { sequence: seq.id });
        Ok(seq)
    }

    /// A draft copy named `name`, with a new id: the same steps, pool, windows, caps and
    /// rules, none of the original's enrollments, created at `now`.
    ///
    /// # Errors
    /// When the name is empty or too long.
    pub fn duplicate(
        &self,
        name: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let copy = Self {
            name: name.into(),
            steps: self.steps.clone(),
            mailbox_pool: self.mailbox_pool.clone(),
            recipient_windows: self.recipient_windows.clone(),
            exit_on_reply: self.exit_on_reply,
            track_opens: self.track_opens,
            track_clicks: self.track_clicks,
            holidays: self.holidays.clone(),
            new_enrollments_per_day: self.new_enrollments_per_day,
            per_domain_daily_cap: self.per_domain_daily_cap,
            reenrollment: self.reenrollment,
            triggers: self.triggers.clone(),
            description: self.description.clone(),
            ..Self::new(self.tenant, "copy", now)?
        };
        copy.validate()?;
        Ok(copy)
    }

    /// Set the id (builder style, before the sequence is stored).
    #[must_use]
    pub fn with_id(mut self, id: SequenceId) -> Self {
        self.id = id;
        for e in &mut self.events {
            if let DomainEvent::SequenceCreated { sequence } = e {
                *sequence = id;
            }
        }
        self
    }

    /// Where the sequence is in its life; it changes only through `activate`, `pause`,
    /// `resume` and `archive`, which check the change is allowed.
    #[must_use]
    pub fn status(&self) -> SequenceStatus {
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

    /// The steps, in order.
    #[must_use]
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Step `order`, if any.
    #[must_use]
    pub fn step(&self, order: u32) -> Option<&Step> {
        self.steps.get(order as usize)
    }

    /// Check every field and every step.
    ///
    /// # Errors
    /// Every problem found, each with its field path.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        crate::validate::validate_sequence(self)
    }

    /// Take the domain events collected since the last call.
    pub fn drain_events(&mut self) -> Vec<DomainEvent> {
        std::mem::take(&mut self.events)
    }

    fn ensure_draft(&self, action: &'static str) -> Result<(), TransitionError> {
        if self.status == SequenceStatus::Draft {
            Ok(())
        } else {
            Err(TransitionError::status(action, self.status))
        }
    }

    fn touch(&mut self, event: DomainEvent) {
        self.version += 1;
        self.events.push(event);
    }

    /// Append a step (draft only). Its order becomes the next free one.
    ///
    /// # Errors
    /// When the sequence is not a draft, or the step is invalid.
    pub fn add_step(&mut self, mut step: Step) -> Result<u32, TransitionError> {
        self.ensure_draft("add step")?;
        let order = u32::try_from(self.steps.len())
            .map_err(|_| TransitionError::invariant("steps", "too many steps"))?;
        step.order = order;
        crate::validate::validate_step(&step).map_err(|e| {
            let mut p = crate::error::Problems::new();
            p.extend_prefixed(&format!("steps[{order}]"), e);
            TransitionError::Invalid(
                p.finish()
                    .err()
                    .unwrap_or_else(|| ValidationErrors::one("steps", "invalid")),
            )
        })?;
        self.steps.push(step);
        self.touch(DomainEvent::StepAdded {
            sequence: self.id,
            order,
        });
        Ok(order)
    }

    /// Replace step `order` (draft only); its order is kept.
    ///
    /// # Errors
    /// When the sequence is not a draft, the step does not exist, or it is invalid.
    pub fn update_step(&mut self, order: u32, mut step: Step) -> Result<(), TransitionError> {
        self.ensure_draft("update step")?;
        step.order = order;
        crate::validate::validate_step(&step)?;
        let slot = self
            .steps
            .get_mut(order as usize)
            .ok_or_else(|| TransitionError::invariant(format!("steps[{order}]"), "no such step"))?;
        *slot = step;
        self.version += 1;
        Ok(())
    }

    /// Remove step `order` (draft only); later steps move up so orders stay contiguous.
    ///
    /// # Errors
    /// When the sequence is not a draft or the step does not exist.
    pub fn remove_step(&mut self, order: u32) -> Result<Step, TransitionError> {
        self.ensure_draft("remove step")?;
        if order as usize >= self.steps.len() {
            return Err(TransitionError::invariant(
                format!("steps[{order}]"),
                "no such step",
            ));
        }
        let removed = self.steps.remove(order as usize);
        for (i, s) in self.steps.iter_mut().enumerate() {
            s.order = u32::try_from(i).unwrap_or(u32::MAX);
        }
        self.version += 1;
        Ok(removed)
    }

    /// Set the mailbox pool. Allowed in any status but archived.
    ///
    /// # Errors
    /// When archived, or when the pool names a mailbox twice.
    pub fn set_mailbox_pool(&mut self, pool: Vec<MailboxId>) -> Result<(), TransitionError> {
        if self.status == SequenceStatus::Archived {
            return Err(TransitionError::status("set mailbox pool", self.status));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in pool.iter().enumerate() {
            if !seen.insert(*m) {
                return Err(TransitionError::invariant(
                    format!("mailbox_pool[{i}]"),
                    "mailbox listed twice",
                ));
            }
        }
        self.mailbox_pool = pool;
        self.version += 1;
        Ok(())
    }

    /// `draft -> active`. Needs at least one step and a non-empty mailbox pool.
    ///
    /// # Errors
    /// When not a draft, when there is no step or no mailbox, or when validation fails.
    pub fn activate(&mut self) -> Result<(), TransitionError> {
        self.ensure_draft("activate")?;
        if self.steps.is_empty() {
            return Err(TransitionError::invariant(
                "steps",
                "at least one step is required to activate",
            ));
        }
        if self.mailbox_pool.is_empty() {
            return Err(TransitionError::invariant(
                "mailbox_pool",
                "at least one mailbox is required to activate",
            ));
        }
        self.validate()?;
        self.status = SequenceStatus::Active;
        self.touch(DomainEvent::SequenceActivated { sequence: self.id });
        Ok(())
    }

    /// `active -> paused`.
    ///
    /// # Errors
    /// When not active.
    pub fn pause(&mut self) -> Result<(), TransitionError> {
        if self.status != SequenceStatus::Active {
            return Err(TransitionError::status("pause", self.status));
        }
        self.status = SequenceStatus::Paused;
        self.touch(DomainEvent::SequencePaused { sequence: self.id });
        Ok(())
    }

    /// `paused -> active`.
    ///
    /// # Errors
    /// When not paused.
    pub fn resume(&mut self) -> Result<(), TransitionError> {
        if self.status != SequenceStatus::Paused {
            return Err(TransitionError::status("resume", self.status));
        }
        self.status = SequenceStatus::Active;
        self.touch(DomainEvent::SequenceResumed { sequence: self.id });
        Ok(())
    }

    /// Any status `-> archived`.
    ///
    /// # Errors
    /// When already archived.
    pub fn archive(&mut self) -> Result<(), TransitionError> {
        if self.status == SequenceStatus::Archived {
            return Err(TransitionError::status("archive", self.status));
        }
        self.status = SequenceStatus::Archived;
        self.touch(DomainEvent::SequenceArchived { sequence: self.id });
        Ok(())
    }

    /// A new draft with new ids and the same steps and settings, named `name`.
    ///
    /// # Errors
    /// When `name` is invalid.
    pub fn clone_as_draft(
        &self,
        name: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let mut copy = Self::new(self.tenant, name, now)?;
        copy.description.clone_from(&self.description);
        copy.steps.clone_from(&self.steps);
        copy.mailbox_pool.clone_from(&self.mailbox_pool);
        copy.recipient_windows.clone_from(&self.recipient_windows);
        copy.exit_on_reply = self.exit_on_reply;
        copy.track_opens = self.track_opens;
        copy.track_clicks = self.track_clicks;
        copy.holidays.clone_from(&self.holidays);
        copy.new_enrollments_per_day = self.new_enrollments_per_day;
        copy.per_domain_daily_cap = self.per_domain_daily_cap;
        copy.reenrollment = self.reenrollment;
        copy.triggers.clone_from(&self.triggers);
        Ok(copy)
    }

    /// Whether the sequence is sending now.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.status == SequenceStatus::Active
    }

    /// Whether `trigger` enrolls contacts in this sequence (only while active).
    #[must_use]
    pub fn is_triggered_by(&self, trigger: &Trigger) -> bool {
        self.is_active() && self.triggers.iter().any(|t| t == trigger)
    }
}
