//! What a due read hands out: a due enrollment's planning fields, and its documents.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::contact::{Contact, ContactStatus};
use crate::enrollment::{self, Enrollment, EnrollmentStatus};
use crate::ids::{ContactId, EnrollmentId, MailboxId, SequenceId, TenantId};

/// An enrollment that is due, as planning reads it: the fields a plan decides on, of the
/// enrollment and of its contact, and their documents where the store holds them at hand.
///
/// A store that keeps its rows in memory hands out the documents with each row (shared,
/// not copied); one that keeps them on a server may leave them out ([`Self::documents`]
/// `None`), so that a due read of 10,000 enrollments sends and decodes a few columns per
/// row rather than two documents: a planner that needs the documents of a row (to settle
/// it: a pause that ran out, a step's condition) reads them with
/// [`Outbox::due_documents`](super::Outbox::due_documents).
#[derive(Debug, Clone, PartialEq)]
pub struct DueEnrollment {
    /// The enrollment.
    pub id: EnrollmentId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its sequence.
    pub sequence: SequenceId,
    /// Its contact.
    pub contact: ContactId,
    /// Its status ([`Enrollment::status`]): active, or paused whose pause has run out.
    pub status: EnrollmentStatus,
    /// The step to send next ([`Enrollment::current_step`]).
    pub step: u32,
    /// The earliest instant that step may go ([`Enrollment::due_at`]).
    pub earliest: Option<DateTime<Utc>>,
    /// The mailbox it sends from, once sticky ([`Enrollment::mailbox`]).
    pub mailbox: Option<MailboxId>,
    /// The version it was read at ([`Enrollment::version`]).
    pub version: u64,
    /// Whether a send of its current step has an unknown outcome
    /// ([`Enrollment::uncertain_send`]).
    pub uncertain: bool,
    /// Its contact's status ([`Contact::status`]).
    pub contact_status: ContactStatus,
    /// Its contact's time zone ([`Contact::timezone`]).
    pub contact_zone: Option<Tz>,
    /// Its contact's address domain ([`Contact::email_domain`]) as the store read it, or
    /// `None` when [`Self::documents`] carries the contact, from which it is then derived
    /// where needed (a planner needs it only for the sends it plans and for sequences that
    /// cap sends per domain): see [`Self::recipient_domain`]. One of the two is given.
    pub domain: Option<String>,
    /// The enrollment and contact documents, when the store handed them out with the row.
    pub documents: Option<DueDocuments>,
}

/// The documents of a due enrollment: the enrollment and its contact, shared. A store that
/// keeps them in memory hands out the rows it holds, and a planner that changes one copies
/// it first (`Arc::make_mut`), so that a tick of 50,000 due enrollments copies only the few
/// it settles.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDocuments {
    /// The enrollment.
    pub enrollment: Arc<Enrollment>,
    /// Its contact.
    pub contact: Arc<Contact>,
}

impl DueEnrollment {
    /// The row of `enrollment` and `contact`, with both documents (its domain is derived
    /// from the contact when asked for, not copied).
    #[must_use]
    pub fn of(enrollment: Arc<Enrollment>, contact: Arc<Contact>) -> Self {
        let e = &*enrollment;
        Self {
            id: e.id,
            tenant: e.tenant,
            sequence: e.sequence,
            contact: e.contact,
            status: e.status(),
            step: e.current_step(),
            earliest: e.due_at(),
            mailbox: e.mailbox(),
            version: e.version(),
            uncertain: e.uncertain_send().is_some(),
            contact_status: contact.status(),
            contact_zone: contact.timezone,
            domain: None,
            documents: Some(DueDocuments {
                enrollment,
                contact,
            }),
        }
    }

    /// Its contact's address domain: [`Self::domain`], else derived from the contact
    /// [`Self::documents`] carries (empty when neither is given).
    #[must_use]
    pub fn recipient_domain(&self) -> String {
        match (&self.domain, &self.documents) {
            (Some(domain), _) => domain.clone(),
            (None, Some(documents)) => documents.contact.email_domain(),
            (None, None) => String::new(),
        }
    }

    /// Whether its next send goes to its sequence's pool ([`Enrollment::goes_to_pool`]).
    #[must_use]
    pub fn goes_to_pool(&self) -> bool {
        enrollment::goes_to_pool(self.status, self.mailbox)
    }

    /// The mailbox whose wait holds it back ([`Enrollment::waits_on_mailbox`]).
    #[must_use]
    pub fn waits_on_mailbox(&self) -> Option<MailboxId> {
        enrollment::waits_on_mailbox(self.status, self.mailbox)
    }
}
