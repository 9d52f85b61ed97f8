//! The crate's error, [`SmtpError`], and how it becomes the engine's [`SendError`].

use std::fmt;
use std::time::Duration;

use sequence_core::ids::MailboxId;
use sequence_core::transport::{FailureCategory, SendError};

use crate::classify;
use crate::credentials::LookupError;
use crate::message::MessageError;

/// Where in the SMTP conversation a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Waiting for a free connection of the mailbox's pool.
    Queue,
    /// Name lookup, TCP connect, implicit TLS, greeting, EHLO.
    Connect,
    /// The STARTTLS upgrade.
    StartTls,
    /// AUTH.
    Auth,
    /// Checking that a pooled connection is still alive (NOOP).
    Reuse,
    /// MAIL FROM.
    MailFrom,
    /// RCPT TO.
    RcptTo,
    /// The DATA command.
    Data,
    /// The message itself and the server's final reply.
    Message,
}

impl Stage {
    pub(crate) const fn index(self) -> u8 {
        self as u8
    }

    pub(crate) const fn from_index(index: u8) -> Self {
        match index {
            0 => Self::Queue,
            1 => Self::Connect,
            2 => Self::StartTls,
            3 => Self::Auth,
            4 => Self::Reuse,
            5 => Self::MailFrom,
            6 => Self::RcptTo,
            7 => Self::Data,
            _ => Self::Message,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Queue => "waiting for a connection",
            Self::Connect => "connect",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::Reuse => "NOOP",
            Self::MailFrom => "MAIL FROM",
            Self::RcptTo => "RCPT TO",
            Self::Data => "DATA",
            Self::Message => "end of message",
        })
    }
}

/// A failure of this crate: configuration, message building, or a send.
///
/// [`SmtpError::to_send_error`] classifies it for the engine (retry? whose fault?).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// The mailbox directory has no settings for this mailbox.
    #[error("mailbox {mailbox}: no SMTP settings")]
    UnknownMailbox {
        /// The mailbox.
        mailbox: MailboxId,
    },
    /// A setting is invalid.
    #[error("{field}: {reason}")]
    InvalidSettings {
        /// The setting.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The settings ask for a connection without TLS and do not allow it.
    #[error(
        "{host}: SMTP without TLS is refused unless `allow_plain` is set (local testing only)"
    )]
    PlainNotAllowed {
        /// The server.
        host: String,
    },
    /// The host's settings or credentials source failed.
    #[error("lookup failed: {0}")]
    Lookup(#[from] LookupError),
    /// The message could not be built.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A network wait ran out.
    #[error("{stage}: timed out after {after:?}")]
    Timeout {
        /// Where.
        stage: Stage,
        /// The limit that ran out.
        after: Duration,
    },
    /// The server answered with a negative reply (4xx or 5xx).
    #[error("{stage}: server replied {code} {text}")]
    Rejected {
        /// Where.
        stage: Stage,
        /// The reply code.
        code: u16,
        /// The enhanced status code, if the reply had one.
        enhanced: Option<String>,
        /// The reply's text (lines joined).
        text: String,
    },
    /// No connection, a TLS failure, a broken or garbled conversation.
    #[error("{stage}: {reason}")]
    Connection {
        /// Where.
        stage: Stage,
        /// What happened, for people (with lettre's own message when it came from lettre).
        reason: String,
        /// The error underneath, when there is one: lettre's
        /// [`Error`](lettre::transport::smtp::Error) for a failure lettre met (downcast to
        /// it for its kind or for rustls's certificate error below it); `None` for this
        /// crate's own checks (a connection left unencrypted, a closed pool).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl SmtpError {
    /// From a lettre SMTP error met at `stage`: a negative reply becomes
    /// [`Rejected`](Self::Rejected) (its text is all there is to keep), anything else
    /// [`Connection`](Self::Connection) with lettre's error as its source.
    pub(crate) fn from_lettre(stage: Stage, error: lettre::transport::smtp::Error) -> Self {
        if let Some(code) = error.status() {
            let text = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_default();
            return Self::Rejected {
                stage,
                code: u16::from(code),
                enhanced: classify::enhanced_status_code(&text).map(str::to_owned),
                text,
            };
        }
        let reason = if error.is_tls() {
            format!("TLS: {error}")
        } else {
            error.to_string()
        };
        Self::Connection {
            stage,
            reason,
            source: Some(Box::new(error)),
        }
    }

    /// A connection failure found by this crate itself, with no error underneath.
    pub(crate) fn connection(stage: Stage, reason: impl Into<String>) -> Self {
        Self::Connection {
            stage,
            reason: reason.into(),
            source: None,
        }
    }

    /// Classify for the engine:
    ///
    /// * a negative reply as [`classify_reply`](crate::classify_reply) does, except that a
    ///   refusal while connecting, at STARTTLS or at AUTH is always the mailbox's (connection
    ///   or credentials), and a permanent refusal of MAIL FROM that does not name a reason
    ///   of the mailbox is reported as `InvalidMessage` (the envelope sender was refused:
    ///   the mailbox's problem, never a bounce of the contact);
    /// * a timeout or a broken connection: transient `Connection`;
    /// * missing or invalid settings, a plain connection not allowed, a failed lookup:
    ///   transient `Connection` (the mailbox cannot send until its configuration is fixed);
    /// * a message that cannot be built (header injection): permanent `InvalidMessage`.
    #[must_use]
    pub fn to_send_error(&self) -> SendError {
        use FailureCategory as C;
        let message = self.to_string();
        match self {
            Self::Rejected {
                stage,
                code,
                enhanced,
                text,
            } => {
                let classified = classify::classify_reply(*code, enhanced.as_deref(), text);
                let category = match (stage, classified.category()) {
                    (Stage::Auth, _) => C::AuthFailure,
                    (Stage::Connect | Stage::StartTls | Stage::Reuse, c)
                        if !matches!(c, C::AuthFailure | C::RateLimited) =>
                    {
                        C::Connection
                    }
                    (Stage::MailFrom, _) if !classified.is_mailbox_fault() && *code >= 500 => {
                        C::InvalidMessage
                    }
                    (_, c) => c,
                };
                let error = if *code >= 500 {
                    SendError::permanent(category, message)
                } else {
                    SendError::transient(category, message)
                };
                error.with_codes(Some(*code), enhanced.clone())
            }
            Self::Message(_) => SendError::permanent(C::InvalidMessage, message),
            Self::Timeout {
                stage: Stage::Message,
                ..
            } => SendError::transient(
                C::Connection,
                format!("{message} (the server may have accepted the message)"),
            ),
            Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::UnknownMailbox { .. }
            | Self::InvalidSettings { .. }
            | Self::PlainNotAllowed { .. }
            | Self::Lookup(_) => SendError::transient(C::Connection, message),
        }
    }
}

impl From<SmtpError> for SendError {
    fn from(error: SmtpError) -> Self {
        error.to_send_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(stage: Stage, code: u16, text: &str) -> SendError {
        SmtpError::Rejected {
            stage,
            code,
            enhanced: classify::enhanced_status_code(text).map(str::to_owned),
            text: text.to_owned(),
        }
        .to_send_error()
    }

    #[test]
    fn stage_decides_whose_fault() {
        let e = rejected(Stage::RcptTo, 550, "5.7.1 Sender blocked");
        assert_eq!(e.category(), FailureCategory::PolicyBlock);
        // A policy block is neither a bounce of the contact nor the mailbox's fault.
        assert!(e.is_permanent() && !e.is_contact_fault() && !e.is_mailbox_fault());
        let e = rejected(Stage::MailFrom, 550, "5.7.1 Sender blocked");
        assert_eq!(e.category(), FailureCategory::InvalidMessage);
        assert!(e.is_permanent() && e.is_mailbox_fault());
        assert_eq!(e.enhanced_code(), Some("5.7.1"));
        let e = rejected(Stage::Auth, 454, "4.3.0 Try later");
        assert_eq!(e.category(), FailureCategory::AuthFailure);
        let e = rejected(Stage::Connect, 554, "No SMTP service here");
        assert_eq!(e.category(), FailureCategory::Connection);
        assert!(e.is_permanent() && e.is_mailbox_fault());
    }

    #[test]
    fn configuration_and_network_failures_are_transient_mailbox_faults() {
        for e in [
            SmtpError::PlainNotAllowed { host: "h".into() },
            SmtpError::UnknownMailbox {
                mailbox: MailboxId::from_u128(7),
            },
            SmtpError::Timeout {
                stage: Stage::RcptTo,
                after: Duration::from_secs(1),
            },
            SmtpError::connection(Stage::Connect, "refused"),
            SmtpError::Lookup(LookupError::new("vault down")),
        ] {
            let s = e.to_send_error();
            assert!(s.is_transient() && s.is_mailbox_fault(), "{e}");
            assert_eq!(s.category(), FailureCategory::Connection);
        }
    }

    /// A failure lettre reports (nothing listens on the port) keeps lettre's error as its
    /// source, and is classified as before: a transient connection fault of the mailbox.
    #[tokio::test]
    async fn a_connection_error_keeps_lettres_error_as_its_source() {
        use lettre::transport::smtp::client::AsyncSmtpConnection;
        use lettre::transport::smtp::extension::ClientId;

        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let port = closed.local_addr().expect("local address").port();
        drop(closed);
        let Err(lettre_error) = AsyncSmtpConnection::connect_tokio1(
            ("127.0.0.1", port),
            Some(Duration::from_secs(10)),
            &ClientId::default(),
            None,
            None,
        )
        .await
        else {
            panic!("connected to a closed port");
        };
        let lettre_message = lettre_error.to_string();
        let error = SmtpError::from_lettre(Stage::Connect, lettre_error);
        let SmtpError::Connection { stage, reason, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(
            (*stage, reason.as_str()),
            (Stage::Connect, lettre_message.as_str())
        );
        let source = std::error::Error::source(&error).expect("lettre's error as the source");
        let lettre_error = source
            .downcast_ref::<lettre::transport::smtp::Error>()
            .expect("the source is lettre's error");
        assert!(
            lettre_error.status().is_none() && !lettre_error.is_tls(),
            "{lettre_error:?}"
        );
        let s = error.to_send_error();
        assert!(s.is_transient() && s.is_mailbox_fault(), "{s}");
        assert_eq!(s.category(), FailureCategory::Connection);

        let own = SmtpError::connection(Stage::StartTls, "the connection is not encrypted");
        assert!(std::error::Error::source(&own).is_none());
    }
}
