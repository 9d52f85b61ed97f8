//! Contacts: the people a sequence writes to.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{TransitionError, ValidationErrors};
use crate::ids::{ContactId, TenantId};

/// A custom field value on a contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// true / false.
    Bool(bool),
    /// A number.
    Number(f64),
    /// Text.
    Text(String),
}

/// Whether a contact may still be written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContactStatus {
    /// May receive sends.
    #[default]
    Active,
    /// A hard bounce or permanent failure: nothing more in any sequence.
    Bounced,
    /// Unsubscribed: nothing more in any sequence of the tenant.
    Unsubscribed,
}

/// An address in the form contacts are unique by: trimmed and lower-cased.
#[must_use]
pub fn normalize_email(address: &str) -> String {
    address.trim().to_lowercase()
}

/// How an address bounced, as the host's inbound processing (or the SMTP reply) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BounceKind {
    /// Permanent (5.x.x: no such user, domain gone): the contact is bounced, exits every
    /// sequence and is never enrolled again.
    Hard,
    /// Temporary (4.x.x: mailbox full, greylisted): counts toward each open enrollment's
    /// retry budget, which exits it (`failed`) once used up.
    Soft,
}

/// A recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Contact {
    /// Identity.
    pub id: ContactId,
    /// Owner.
    pub tenant: TenantId,
    /// The address written to.
    pub email: String,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Company.
    #[serde(default)]
    pub company: Option<String>,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// The contact's own zone, for recipient windows; `None` means the mailbox's zone.
    #[serde(default)]
    pub timezone: Option<Tz>,
    /// Tags, for conditions and triggers.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Custom fields, for templates and conditions.
    #[serde(default)]
    pub custom_fields: BTreeMap<String, FieldValue>,
    /// Whether the contact may still be written to.
    #[serde(default)]
    status: ContactStatus,
    /// The last time the contact did something (opened, clicked, replied).
    #[serde(default)]
    last_activity_at: Option<DateTime<Utc>>,
    /// The first time the contact replied (an out-of-office does not count). A contact who
    /// replied is not enrolled again in sequences that exit on reply.
    #[serde(default)]
    replied_at: Option<DateTime<Utc>>,
    /// Optimistic-lock version: every stored write raises it, and engine writes (signals,
    /// activity) are made under the version they read.
    #[serde(default)]
    version: u64,
}

impl Contact {
    /// A checked contact with just an address.
    ///
    /// # Errors
    /// Every problem with the address, with its field path.
    pub fn new(tenant: TenantId, email: impl Into<String>) -> Result<Self, ValidationErrors> {
        let contact = Self::unchecked(tenant, email);
        contact.validate()?;
        Ok(contact)
    }

    /// A contact with just an address, not yet checked (the caller validates it).
    pub(crate) fn unchecked(tenant: TenantId, email: impl Into<String>) -> Self {
        Self {
            id: ContactId::new(),
            tenant,
            email: email.into(),
            first_name: None,
            last_name: None,
            company: None,
            phone: None,
            timezone: None,
            tags: BTreeSet::new(),
            custom_fields: BTreeMap::new(),
            status: ContactStatus::Active,
            last_activity_at: None,
            replied_at: None,
            version: 0,
        }
    }

    /// Set the id (builder style).
    #[must_use]
    pub fn with_id(mut self, id: ContactId) -> Self {
        self.id = id;
        self
    }
    /// Set the names (builder style).
    #[must_use]
    pub fn with_name(mut self, first: impl Into<String>, last: impl Into<String>) -> Self {
        self.first_name = Some(first.into());
        self.last_name = Some(last.into());
        self
    }
    /// Set the company (builder style).
    #[must_use]
    pub fn with_company(mut self, company: impl Into<String>) -> Self {
        self.company = Some(company.into());
        self
    }
    /// Set the zone (builder style).
    #[must_use]
    pub fn with_timezone(mut self, tz: Tz) -> Self {
        self.timezone = Some(tz);
        self
    }
    /// Add a tag (builder style).
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }
    /// Set a custom field (builder style).
    #[must_use]
    pub fn with_field(mut self, name: impl Into<String>, value: FieldValue) -> Self {
        self.custom_fields.insert(name.into(), value);
        self
    }

    /// The address in the form contacts are unique by: trimmed and lower-cased.
    #[must_use]
    pub fn normalized_email(&self) -> String {
        normalize_email(&self.email)
    }

    /// Whether the contact has `tag` (case-insensitively).
    #[must_use]
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
    }

    /// Whether the contact may be written to; it changes only through the suppression
    /// calls (`mark_bounced`, `mark_unsubscribed`, `lift_suppression`).
    #[must_use]
    pub fn status(&self) -> ContactStatus {
        self.status
    }

    /// The last time the contact did something (opened, clicked, replied).
    #[must_use]
    pub fn last_activity_at(&self) -> Option<DateTime<Utc>> {
        self.last_activity_at
    }

    /// The first time the contact replied (an out-of-office does not count).
    #[must_use]
    pub fn replied_at(&self) -> Option<DateTime<Utc>> {
        self.replied_at
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

    /// Whether sends to this contact are still allowed.
    #[must_use]
    pub fn is_sendable(&self) -> bool {
        self.status == ContactStatus::Active
    }

    /// The domain part of the address, lower-cased (for per-domain caps).
    #[must_use]
    pub fn email_domain(&self) -> String {
        self.email
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// Check the contact (address, names without line breaks, tags).
    ///
    /// # Errors
    /// Every problem found, each with its field path.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        crate::validate::validate_contact(self)
    }

    /// Mark the contact bounced (hard bounce or permanent failure). Idempotent.
    pub fn mark_bounced(&mut self) {
        if self.status == ContactStatus::Active {
            self.status = ContactStatus::Bounced;
        }
    }

    /// Mark the contact unsubscribed. Idempotent; wins over bounced.
    pub fn mark_unsubscribed(&mut self) {
        self.status = ContactStatus::Unsubscribed;
    }

    /// Record activity (open, click, reply) at `at`; only moves forward.
    pub fn record_activity(&mut self, at: DateTime<Utc>) {
        if self.last_activity_at.is_none_or(|prev| prev < at) {
            self.last_activity_at = Some(at);
        }
    }

    /// Record a reply at `at` (not an out-of-office): activity, and the first reply kept.
    pub fn record_reply(&mut self, at: DateTime<Utc>) {
        self.record_activity(at);
        if self.replied_at.is_none_or(|prev| at < prev) {
            self.replied_at = Some(at);
        }
    }

    /// Take the host's fields of `update` (address, names, company, phone, zone, tags,
    /// custom fields) and keep what the engine learned (last activity, id, version). This is
    /// how a host re-sync (a CRM import) changes a stored contact: a suppression in `update`
    /// (bounced, unsubscribed, a reply) is added, but one already stored is never lifted,
    /// which only [`Contact::lift_suppression`] can.
    pub fn apply_host_update(&mut self, update: &Contact) {
        match update.status {
            ContactStatus::Unsubscribed => self.mark_unsubscribed(),
            ContactStatus::Bounced => self.mark_bounced(),
            ContactStatus::Active => {}
        }
        if let Some(at) = update.replied_at {
            self.record_reply(at);
        }
        self.email.clone_from(&update.email);
        self.first_name.clone_from(&update.first_name);
        self.last_name.clone_from(&update.last_name);
        self.company.clone_from(&update.company);
        self.phone.clone_from(&update.phone);
        self.timezone = update.timezone;
        self.tags.clone_from(&update.tags);
        self.custom_fields.clone_from(&update.custom_fields);
    }

    /// Make a bounced or unsubscribed contact sendable again and forget its reply, so it
    /// may be enrolled again. Only for an explicit request of the person (a new opt-in) or a
    /// corrected address: a host re-sync never does this. Returns whether anything changed.
    pub fn lift_suppression(&mut self) -> bool {
        let changed = self.status != ContactStatus::Active || self.replied_at.is_some();
        self.status = ContactStatus::Active;
        self.replied_at = None;
        changed
    }

    /// Refuse a change that is not allowed for a contact that is no longer sendable.
    ///
    /// # Errors
    /// [`TransitionError::InvalidStatus`] when the contact is bounced or unsubscribed.
    pub fn ensure_sendable(&self, action: &'static str) -> Result<(), TransitionError> {
        if self.is_sendable() {
            Ok(())
        } else {
            Err(TransitionError::status(action, self.status))
        }
    }
}
