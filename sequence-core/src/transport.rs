//! The `Transport` port: how a rendered email leaves the engine, and how a failure is
//! classified so the engine knows whether to retry and whose fault it was.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};

/// A rendered email, ready for a transport. The engine builds it; its fields are plain data
/// so that transports and test doubles can build one too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingEmail {
    /// Owner.
    pub tenant: TenantId,
    /// The outbox row.
    pub send: SendId,
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// The sequence.
    pub sequence: SequenceId,
    /// The contact.
    pub contact: ContactId,
    /// The step's order.
    pub step: u32,
    /// The attempt number (1 for the first).
    pub attempt: u32,
    /// The A/B variant (0 for the step's own content).
    pub variant: u32,
    /// The sending mailbox.
    pub mailbox: MailboxId,
    /// The sending address.
    pub from_address: String,
    /// The sender's display name.
    pub from_name: Option<String>,
    /// The recipient's address.
    pub to_address: String,
    /// The recipient's display name.
    pub to_name: Option<String>,
    /// Rendered subject.
    pub subject: String,
    /// Rendered text body.
    pub text_body: String,
    /// Rendered HTML body, if the step has one.
    pub html_body: Option<String>,
    /// Deterministic Message-ID of this (enrollment, step), without angle brackets.
    pub message_id: String,
    /// For a follow-up in thread: the previous step's Message-ID.
    pub in_reply_to: Option<String>,
    /// For a follow-up in thread: every earlier step's Message-ID, oldest first.
    pub references: Vec<String>,
    /// Whether to add an open pixel.
    pub track_opens: bool,
    /// Whether to rewrite links for click tracking.
    pub track_clicks: bool,
}

/// What a transport reports when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Delivery {
    /// The server's answer, e.g. `250 2.0.0 Ok: queued as 1234`.
    pub response: Option<String>,
}

impl Delivery {
    /// A delivery with the server's answer.
    pub fn with_response(response: impl Into<String>) -> Self {
        Self {
            response: Some(response.into()),
        }
    }
}

/// What kind of failure a send met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureCategory {
    /// The address does not exist (550 5.1.1).
    InvalidRecipient,
    /// The recipient's mailbox is full (452/552).
    MailboxFull,
    /// Refused by policy or as spam (550 5.7.x).
    PolicyBlock,
    /// The server asks the sender to slow down (421/450 with rate wording, 4.7.x).
    RateLimited,
    /// The mailbox's credentials were refused (535).
    AuthFailure,
    /// No connection, a timeout, or TLS failure.
    Connection,
    /// The message could not be built (e.g. a header injection attempt).
    InvalidMessage,
    /// Anything else.
    Other,
}

/// A failed send, classified. Ask it: retry? whose fault?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct SendError {
    permanent: bool,
    category: FailureCategory,
    code: Option<u16>,
    enhanced_code: Option<String>,
    message: String,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.permanent {
            "permanent"
        } else {
            "transient"
        };
        write!(f, "{kind} failure ({:?}", self.category)?;
        if let Some(code) = self.code {
            write!(f, ", {code}")?;
        }
        if let Some(enhanced) = &self.enhanced_code {
            write!(f, " {enhanced}")?;
        }
        write!(f, "): {}", self.message)
    }
}

impl SendError {
    /// A failure worth retrying later (4xx, connection trouble).
    pub fn transient(category: FailureCategory, message: impl Into<String>) -> Self {
        Self {
            permanent: false,
            category,
            code: None,
            enhanced_code: None,
            message: message.into(),
        }
    }
    /// A failure that will not go away (5xx).
    pub fn permanent(category: FailureCategory, message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            category,
            code: None,
            enhanced_code: None,
            message: message.into(),
        }
    }
    /// Attach the SMTP reply code and the enhanced status code (RFC 3463), if any.
    #[must_use]
    pub fn with_codes(mut self, code: Option<u16>, enhanced: Option<String>) -> Self {
        self.code = code;
        self.enhanced_code = enhanced;
        self
    }
    /// Retry later?
    #[must_use]
    pub fn is_transient(&self) -> bool {
        !self.permanent
    }
    /// Give up on this recipient?
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
    /// The failure's category.
    #[must_use]
    pub fn category(&self) -> FailureCategory {
        self.category
    }
    /// Whether the mailbox, not the contact, is at fault (credentials refused, rate limited,
    /// no connection, or an unbuildable message): the engine slows or suspends the mailbox
    /// instead of bouncing the contact.
    #[must_use]
    pub fn is_mailbox_fault(&self) -> bool {
        matches!(
            self.category,
            FailureCategory::AuthFailure
                | FailureCategory::RateLimited
                | FailureCategory::Connection
                | FailureCategory::InvalidMessage
        )
    }
    /// Whether the contact's address is at fault (a bounce): a permanent failure that is
    /// neither the mailbox's nor a policy block. A policy or spam block (5.7.x) is as often
    /// about the sender's reputation as about the recipient, so it ends the enrollment
    /// without marking the contact bounced everywhere.
    #[must_use]
    pub fn is_contact_fault(&self) -> bool {
        self.permanent && !self.is_mailbox_fault() && self.category != FailureCategory::PolicyBlock
    }
    /// The SMTP reply code, if any.
    #[must_use]
    pub fn code(&self) -> Option<u16> {
        self.code
    }
    /// The enhanced status code, if any (e.g. `5.1.1`).
    #[must_use]
    pub fn enhanced_code(&self) -> Option<&str> {
        self.enhanced_code.as_deref()
    }
    /// The server's or transport's message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Sends rendered email. Implementations must be safe to call concurrently for different
/// mailboxes; the engine never calls it twice at once for one mailbox.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Send one email.
    ///
    /// # Errors
    /// A classified [`SendError`].
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError>;
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        (**self).send(email).await
    }
}
