//! How mail leaves: through the configured SMTP relay, or a mailbox's own server when the
//! configuration names its address; or, in a try-out without SMTP settings, into the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sequence_engine::async_trait;
use sequence_engine::domain::ids::{MailboxId, TenantId};
use sequence_engine::domain::transport::{Delivery, OutgoingEmail, SendError, Transport};
use sequence_engine::domain::Store;
use sequence_engine::smtp::{
    CredentialProvider, Credentials, LookupError, MailboxDirectory, Security, SmtpError,
    SmtpSettings, SmtpTransport, TrackedSend, Tracker,
};

use crate::config::{Secret, SmtpConfig, SmtpSecurity};

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

/// A server and its login.
#[derive(Clone)]
struct Server {
    settings: SmtpSettings,
    login: Option<Credentials>,
}

fn security(s: SmtpSecurity) -> Security {
    match s {
        SmtpSecurity::Tls => Security::ImplicitTls,
        SmtpSecurity::Starttls => Security::StartTls,
        SmtpSecurity::Plain => Security::Plain,
    }
}

fn server(
    host: &str,
    port: Option<u16>,
    sec: SmtpSecurity,
    allow_plain: bool,
    login: (Option<&String>, Option<&Secret>),
) -> Result<Server, SmtpError> {
    let mut settings = SmtpSettings::new(host.to_owned(), security(sec))
        .with_plain_allowed(allow_plain)
        .with_helo_name("sequence-service.localhost");
    if let Some(port) = port {
        settings = settings.with_port(port);
    }
    settings.validate()?;
    let login = match login {
        (Some(user), Some(password)) => Some(Credentials::password(user, password.expose())),
        _ => None,
    };
    Ok(Server { settings, login })
}

/// Where each mailbox sends: its own server when the configuration names its address, the
/// relay otherwise. A mailbox's address is read from the store once (through the tenants
/// the service knows) and kept.
struct Directory {
    relay: Server,
    own: HashMap<String, Server>,
    store: Arc<dyn Store>,
    tenants: Vec<TenantId>,
    addresses: Mutex<HashMap<MailboxId, String>>,
}

impl Directory {
    async fn server(&self, mailbox: MailboxId) -> Result<&Server, LookupError> {
        if self.own.is_empty() {
            return Ok(&self.relay);
        }
        let known = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&mailbox)
            .cloned();
        let address = match known {
            Some(a) => a,
            None => {
                let mut found = None;
                for tenant in &self.tenants {
                    let m = self
                        .store
                        .get_mailbox(*tenant, mailbox)
                        .await
                        .map_err(|e| LookupError::new(format!("reading mailbox {mailbox}: {e}")))?;
                    if let Some(m) = m {
                        found = Some(m.address.to_ascii_lowercase());
                        break;
                    }
                }
                let address = found.unwrap_or_default();
                self.addresses
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(mailbox, address.clone());
                address
            }
        };
        Ok(self.own.get(&address).unwrap_or(&self.relay))
    }
}

#[async_trait]
impl MailboxDirectory for Directory {
    async fn settings(&self, mailbox: MailboxId) -> Result<Option<SmtpSettings>, LookupError> {
        Ok(Some(self.server(mailbox).await?.settings.clone()))
    }
}

/// The logins, from the same directory.
struct Logins(Arc<Directory>);

#[async_trait]
impl CredentialProvider for Logins {
    async fn credentials(&self, mailbox: MailboxId) -> Result<Option<Credentials>, LookupError> {
        Ok(self.0.server(mailbox).await?.login.clone())
    }
}

/// The SMTP transport for `config`, signing links with `tracker`. Mailboxes the
/// configuration names by address (`smtp.mailboxes`) send through their own server; their
/// addresses are read from `store` in `tenants`.
///
/// # Errors
/// The settings are refused by the transport.
pub fn smtp_transport(
    config: &SmtpConfig,
    tracker: Tracker,
    store: Arc<dyn Store>,
    tenants: Vec<TenantId>,
) -> Result<Arc<dyn Transport>, SmtpError> {
    let relay = server(
        &config.host,
        config.port,
        config.security,
        config.allow_plain,
        (config.username.as_ref(), config.password.as_ref()),
    )?;
    let mut own = HashMap::new();
    for (address, m) in &config.mailboxes {
        own.insert(
            address.trim().to_ascii_lowercase(),
            server(
                &m.host,
                m.port,
                m.security,
                m.allow_plain,
                (m.username.as_ref(), m.password.as_ref()),
            )?,
        );
    }
    let directory = Arc::new(Directory {
        relay,
        own,
        store,
        tenants,
        addresses: Mutex::new(HashMap::new()),
    });
    let mut builder = SmtpTransport::builder()
        .directory(Arc::clone(&directory))
        .credentials(Logins(directory))
        .tracker(tracker);
    if let Some(mailto) = &config.unsubscribe_mailto {
        builder = builder.unsubscribe_mailto(mailto)?;
    }
    Ok(Arc::new(builder.build()?))
}
