//! Where and how each mailbox connects: [`SmtpSettings`], and the [`MailboxDirectory`] that
//! the host implements to look them up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sequence_core::ids::MailboxId;

use crate::credentials::LookupError;
use crate::error::SmtpError;

/// How the connection to a mailbox's server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Security {
    /// TLS from the first byte ("SMTPS", usually port 465; preferred by RFC 8314).
    ImplicitTls,
    /// A plain connection upgraded with STARTTLS, which must succeed (usually port 587).
    /// A server that does not offer STARTTLS is an error, never a silent fallback.
    StartTls,
    /// No encryption at all. Refused unless [`SmtpSettings::allow_plain`] is set: for a
    /// local test server only.
    Plain,
}

impl Security {
    /// The usual port: 465, 587 or 25.
    #[must_use]
    pub const fn default_port(self) -> u16 {
        match self {
            Self::ImplicitTls => 465,
            Self::StartTls => 587,
            Self::Plain => 25,
        }
    }
}

/// How long each part of a send may take. Every network wait is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Timeouts {
    /// Name lookup, TCP connect, implicit TLS handshake, greeting and EHLO together.
    pub connect: Duration,
    /// Each command and its reply (STARTTLS, AUTH, MAIL FROM, RCPT TO, DATA, NOOP, RSET).
    pub command: Duration,
    /// Writing the message and waiting for the server's final reply.
    pub data: Duration,
    /// The whole send, from waiting for a connection to the final reply: a guard over the
    /// others.
    pub send: Duration,
}

impl Default for Timeouts {
    /// 15 s to connect, 30 s per command, 60 s for the message, 120 s in all.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(15),
            command: Duration::from_secs(30),
            data: Duration::from_secs(60),
            send: Duration::from_secs(120),
        }
    }
}

impl Timeouts {
    /// Set the connect timeout (builder style).
    #[must_use]
    pub fn with_connect(mut self, timeout: Duration) -> Self {
        self.connect = timeout;
        self
    }
    /// Set the per-command timeout (builder style).
    #[must_use]
    pub fn with_command(mut self, timeout: Duration) -> Self {
        self.command = timeout;
        self
    }
    /// Set the message timeout (builder style).
    #[must_use]
    pub fn with_data(mut self, timeout: Duration) -> Self {
        self.data = timeout;
        self
    }
    /// Set the whole-send guard (builder style).
    #[must_use]
    pub fn with_send(mut self, timeout: Duration) -> Self {
        self.send = timeout;
        self
    }
}

/// The SMTP server of one mailbox, and how to talk to it. Credentials are not here: they
/// come from the [`CredentialProvider`](crate::CredentialProvider) when a connection opens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SmtpSettings {
    /// Server host name (also the name its TLS certificate must carry).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// How the connection is secured.
    pub security: Security,
    /// Whether [`Security::Plain`] is allowed. Off by default; for local testing only.
    pub allow_plain: bool,
    /// Connect, command, message and whole-send timeouts.
    pub timeouts: Timeouts,
    /// Most connections open to this server at once; idle ones are kept for reuse.
    pub pool_size: usize,
    /// How long an idle connection is kept before it is closed instead of reused.
    pub idle_timeout: Duration,
    /// The name sent with EHLO; the machine's host name when `None`.
    pub helo_name: Option<String>,
    /// Extra trusted root certificates (PEM), e.g. a company's private CA. The bundled
    /// Mozilla roots are always trusted.
    pub root_certificates: Vec<String>,
}

impl SmtpSettings {
    /// Settings for `host` with `security` on its usual port, default timeouts, a pool of
    /// two connections kept idle for at most 60 s.
    #[must_use]
    pub fn new(host: impl Into<String>, security: Security) -> Self {
        Self {
            host: host.into(),
            port: security.default_port(),
            security,
            allow_plain: false,
            timeouts: Timeouts::default(),
            pool_size: 2,
            idle_timeout: Duration::from_secs(60),
            helo_name: None,
            root_certificates: Vec::new(),
        }
    }
    /// Set the port (builder style).
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    /// Allow [`Security::Plain`] (builder style). Only for a test server on this machine:
    /// credentials and mail then cross the network in clear.
    #[must_use]
    pub fn with_plain_allowed(mut self, allow: bool) -> Self {
        self.allow_plain = allow;
        self
    }
    /// Set the timeouts (builder style).
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }
    /// Set the pool size, at least 1 (builder style).
    #[must_use]
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }
    /// Set how long idle connections are kept (builder style).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }
    /// Set the EHLO name (builder style).
    #[must_use]
    pub fn with_helo_name(mut self, name: impl Into<String>) -> Self {
        self.helo_name = Some(name.into());
        self
    }
    /// Trust one more root certificate, PEM-encoded (builder style).
    #[must_use]
    pub fn with_root_certificate(mut self, pem: impl Into<String>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Check the settings: a host name, a port, non-zero timeouts and pool, and plain mode
    /// only when allowed. Root certificates are parsed when the first connection is built.
    ///
    /// # Errors
    /// [`SmtpError::PlainNotAllowed`] or [`SmtpError::InvalidSettings`].
    pub fn validate(&self) -> Result<(), SmtpError> {
        let invalid = |field: &str, reason: &str| {
            Err(SmtpError::InvalidSettings {
                field: field.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if self.host.is_empty()
            || self
                .host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@')
        {
            return invalid("host", "must be a host name");
        }
        if self.port == 0 {
            return invalid("port", "must not be 0");
        }
        if self.pool_size == 0 {
            return invalid("pool_size", "must be at least 1");
        }
        let t = &self.timeouts;
        for (field, value) in [
            ("timeouts.connect", t.connect),
            ("timeouts.command", t.command),
            ("timeouts.data", t.data),
            ("timeouts.send", t.send),
        ] {
            if value.is_zero() {
                return invalid(field, "must not be zero");
            }
        }
        if let Some(name) = &self.helo_name {
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return invalid("helo_name", "must be a host name");
            }
        }
        if self.security == Security::Plain && !self.allow_plain {
            return Err(SmtpError::PlainNotAllowed {
                host: self.host.clone(),
            });
        }
        Ok(())
    }
}

/// Looks up the SMTP settings of a mailbox. The host implements it over its configuration
/// (a file, environment variables, a database); a `HashMap` is one.
///
/// It is asked before every send, so a changed answer takes effect at the next send: the
/// mailbox's pooled connections are then closed and new ones opened with the new settings.
/// Keep it fast (cache in the host if the source is slow).
#[async_trait]
pub trait MailboxDirectory: Send + Sync {
    /// The settings of `mailbox`, or `None` if it has none.
    ///
    /// # Errors
    /// The host's source could not be read (the send is retried later).
    async fn settings(&self, mailbox: MailboxId) -> Result<Option<SmtpSettings>, LookupError>;
}

#[async_trait]
impl MailboxDirectory for HashMap<MailboxId, SmtpSettings> {
    async fn settings(&self, mailbox: MailboxId) -> Result<Option<SmtpSettings>, LookupError> {
        Ok(self.get(&mailbox).cloned())
    }
}

#[async_trait]
impl<T: MailboxDirectory + ?Sized> MailboxDirectory for Arc<T> {
    async fn settings(&self, mailbox: MailboxId) -> Result<Option<SmtpSettings>, LookupError> {
        (**self).settings(mailbox).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_is_refused_unless_allowed() {
        let plain = SmtpSettings::new("127.0.0.1", Security::Plain).with_port(2525);
        assert!(matches!(
            plain.validate(),
            Err(SmtpError::PlainNotAllowed { .. })
        ));
        assert!(plain.with_plain_allowed(true).validate().is_ok());
        assert!(SmtpSettings::new("smtp.example.com", Security::StartTls)
            .validate()
            .is_ok());
    }

    #[test]
    fn rejects_bad_fields() {
        let s = SmtpSettings::new("smtp example", Security::ImplicitTls);
        assert!(
            matches!(s.validate(), Err(SmtpError::InvalidSettings { field, .. }) if field == "host")
        );
        let s = SmtpSettings::new("smtp.example.com", Security::ImplicitTls)
            .with_timeouts(Timeouts::default().with_command(Duration::ZERO));
        assert!(
            matches!(s.validate(), Err(SmtpError::InvalidSettings { field, .. }) if field == "timeouts.command")
        );
        assert_eq!(
            SmtpSettings::new("h", Security::ImplicitTls)
                .with_pool_size(0)
                .pool_size,
            1
        );
    }
}
