//! How mail leaves: through the configured SMTP relay (every mailbox sends through it,
//! logging in as its user), or, in a try-out without SMTP settings, into the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sequence_engine::async_trait;
use sequence_engine::domain::ids::MailboxId;
use sequence_engine::domain::transport::{Delivery, OutgoingEmail, SendError, Transport};
use sequence_engine::smtp::{
    CredentialProvider, Credentials, LookupError, MailboxDirectory, Security, SmtpError,
    SmtpSettings, SmtpTransport, TrackedSend, Tracker,
};

use crate::config::{SmtpConfig, SmtpSecurity};

/// A transport that sends nothing and logs each message (subject, addresses, its
/// unsubscribe link): `--memory` without SMTP settings.
#[derive(Debug)]
pub struct LogTransport {
    tracker: Tracker,
    logged: AtomicU64,
}

impl LogTransport {
    /// A log transport whose log lines carry `tracker`'s unsubscribe links.
    #[must_use]
    pub fn new(tracker: Tracker) -> Self {
        Self {
            tracker,
            logged: AtomicU64::new(0),
        }
    }
    /// How many messages were logged.
    #[must_use]
    pub fn logged(&self) -> u64 {
        self.logged.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Transport for LogTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        let n = self.logged.fetch_add(1, Ordering::Relaxed) + 1;
        let unsubscribe = self.tracker.unsubscribe_url(&TrackedSend::from(email));
        tracing::info!(
            n,
            from = %email.from_address,
            to = %email.to_address,
            step = email.step,
            enrollment = %email.enrollment,
            subject = %email.subject,
            %unsubscribe,
            "mail logged, not sent (no SMTP configured)"
        );
        Ok(Delivery::with_response("250 logged"))
    }
}

/// The relay's settings for every mailbox.
#[derive(Debug)]
struct Relay(SmtpSettings);

#[async_trait]
impl MailboxDirectory for Relay {
    async fn settings(&self, _mailbox: MailboxId) -> Result<Option<SmtpSettings>, LookupError> {
        Ok(Some(self.0.clone()))
    }
}

/// The relay's login for every mailbox.
struct RelayLogin(Option<Credentials>);

#[async_trait]
impl CredentialProvider for RelayLogin {
    async fn credentials(&self, _mailbox: MailboxId) -> Result<Option<Credentials>, LookupError> {
        Ok(self.0.clone())
    }
}

/// The SMTP transport for `config`, signing links with `tracker`.
///
/// # Errors
/// The settings are refused by the transport.
pub fn smtp_transport(
    config: &SmtpConfig,
    tracker: Tracker,
) -> Result<Arc<dyn Transport>, SmtpError> {
    let security = match config.security {
        SmtpSecurity::Tls => Security::ImplicitTls,
        SmtpSecurity::Starttls => Security::StartTls,
        SmtpSecurity::Plain => Security::Plain,
    };
    let mut settings = SmtpSettings::new(config.host.clone(), security)
        .with_plain_allowed(config.allow_plain)
        .with_helo_name("sequence-service.localhost");
    if let Some(port) = config.port {
        settings = settings.with_port(port);
    }
    settings.validate()?;
    let login = match (&config.username, &config.password) {
        (Some(user), Some(password)) => Some(Credentials::password(user, password.expose())),
        _ => None,
    };
    let mut builder = SmtpTransport::builder()
        .directory(Relay(settings))
        .credentials(RelayLogin(login))
        .tracker(tracker);
    if let Some(mailto) = &config.unsubscribe_mailto {
        builder = builder.unsubscribe_mailto(mailto)?;
    }
    Ok(Arc::new(builder.build()?))
}
