//! [`SmtpTransport`]: the [`Transport`] that sends through each mailbox's own server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Noop, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use sequence_core::ids::MailboxId;
use sequence_core::transport::{Delivery, OutgoingEmail, SendError, Transport};
use tokio::sync::Semaphore;
use tracing::{debug, warn, Instrument};

use crate::credentials::CredentialProvider;
use crate::error::{SmtpError, Stage};
use crate::message::{ComposedMessage, MessageComposer, MessageError};
use crate::settings::{MailboxDirectory, Security, SmtpSettings};
use crate::tracking::Tracker;

/// How long a polite QUIT or RSET after a refusal may take before the connection is just
/// closed.
const COURTESY: Duration = Duration::from_secs(2);

/// Sends the engine's email through each mailbox's own SMTP server.
///
/// * **Per mailbox**: settings come from the [`MailboxDirectory`], credentials from the
///   [`CredentialProvider`] when a connection opens. Each mailbox has its own small pool of
///   connections (`pool_size`), reused while idle for less than `idle_timeout` and checked
///   with NOOP before reuse; a slow or dead server holds up only its own mailbox's sends.
/// * **Bounded**: connecting, each command and the message each have a timeout, and the
///   whole send has one more. A connection that timed out or broke is closed, never put
///   back in the pool; one whose command was refused is reset (RSET) and kept.
/// * **Secure by default**: implicit TLS or STARTTLS (which must succeed) with rustls;
///   plain SMTP only when the settings allow it explicitly.
/// * **Classified**: failures become [`SendError`]s the engine acts on (see
///   [`SmtpError::to_send_error`]).
///
/// Cheap to clone: clones share the pools.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::collections::HashMap;
/// use sequence_core::ids::MailboxId;
/// use transport_smtp::{Credentials, Security, SmtpSettings, SmtpTransport, Tracker};
///
/// let mailbox = MailboxId::new();
/// let settings = HashMap::from([(mailbox, SmtpSettings::new("smtp.sender.example", Security::StartTls))]);
/// let credentials = HashMap::from([(mailbox, Credentials::password("ana@sender.example", "app password"))]);
/// let transport = SmtpTransport::builder()
///     .directory(settings)
///     .credentials(credentials)
///     .tracker(Tracker::new("https://t.sender.example", "32 random bytes from the vault.")?)
///     .unsubscribe_mailto("unsubscribe@sender.example")?
///     .build()?;
/// // Engine::builder().transport(transport.clone())...
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SmtpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    directory: Arc<dyn MailboxDirectory>,
    credentials: Arc<dyn CredentialProvider>,
    composer: MessageComposer,
    pools: Mutex<HashMap<MailboxId, Arc<MailboxPool>>>,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pools = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("SmtpTransport")
            .field("composer", &self.inner.composer)
            .field("mailboxes", &pools)
            .finish_non_exhaustive()
    }
}

/// Builds an [`SmtpTransport`]: a directory and a credential provider are required.
#[derive(Default)]
pub struct SmtpTransportBuilder {
    directory: Option<Arc<dyn MailboxDirectory>>,
    credentials: Option<Arc<dyn CredentialProvider>>,
    composer: MessageComposer,
}

impl std::fmt::Debug for SmtpTransportBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransportBuilder")
            .field("directory", &self.directory.is_some())
            .field("credentials", &self.credentials.is_some())
            .field("composer", &self.composer)
            .finish()
    }
}

impl SmtpTransportBuilder {
    /// Where each mailbox's [`SmtpSettings`] come from (required).
    #[must_use]
    pub fn directory(mut self, directory: impl MailboxDirectory + 'static) -> Self {
        self.directory = Some(Arc::new(directory));
        self
    }
    /// Where each mailbox's credentials come from (required; [`NoCredentials`] for servers
    /// without login).
    ///
    /// [`NoCredentials`]: crate::NoCredentials
    #[must_use]
    pub fn credentials(mut self, provider: impl CredentialProvider + 'static) -> Self {
        self.credentials = Some(Arc::new(provider));
        self
    }
    /// Sign open, click and unsubscribe links with `tracker`: enables the open pixel and
    /// tracked links (when an email asks for them) and the https `List-Unsubscribe` link
    /// with one-click.
    #[must_use]
    pub fn tracker(mut self, tracker: Tracker) -> Self {
        self.composer = self.composer.with_tracker(tracker);
        self
    }
    /// The address for `mailto:` unsubscribe requests in `List-Unsubscribe`.
    ///
    /// # Errors
    /// [`SmtpError::InvalidSettings`] if it is not an address.
    pub fn unsubscribe_mailto(mut self, address: &str) -> Result<Self, SmtpError> {
        self.composer = self.composer.with_unsubscribe_mailto(address)?;
        Ok(self)
    }
    /// Use a ready [`MessageComposer`] (replaces the tracker and unsubscribe address set so
    /// far).
    #[must_use]
    pub fn composer(mut self, composer: MessageComposer) -> Self {
        self.composer = composer;
        self
    }
    /// Build the transport. No connection is opened until the first send.
    ///
    /// # Errors
    /// [`SmtpError::InvalidSettings`] without a directory or a credential provider.
    pub fn build(self) -> Result<SmtpTransport, SmtpError> {
        let missing = |field: &str| SmtpError::InvalidSettings {
            field: field.to_owned(),
            reason: "is required".to_owned(),
        };
        Ok(SmtpTransport {
            inner: Arc::new(Inner {
                directory: self.directory.ok_or_else(|| missing("directory"))?,
                credentials: self.credentials.ok_or_else(|| missing("credentials"))?,
                composer: self.composer,
                pools: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// One mailbox's connections.
struct MailboxPool {
    settings: SmtpSettings,
    tls: Option<TlsParameters>,
    permits: Semaphore,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl MailboxPool {
    /// Check the settings and prepare TLS; no network.
    fn new(settings: SmtpSettings) -> Result<Self, SmtpError> {
        settings.validate()?;
        let tls = match settings.security {
            Security::Plain => None,
            Security::ImplicitTls | Security::StartTls => {
                let mut builder = TlsParameters::builder(settings.host.clone());
                for pem in &settings.root_certificates {
                    let cert = Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                        SmtpError::InvalidSettings {
                            field: "root_certificates".into(),
                            reason: e.to_string(),
                        }
                    })?;
                    builder = builder.add_root_certificate(cert);
                }
                Some(
                    builder
                        .build_rustls()
                        .map_err(|e| SmtpError::InvalidSettings {
                            field: "tls".into(),
                            reason: e.to_string(),
                        })?,
                )
            }
        };
        if settings.security == Security::Plain {
            warn!(host = %settings.host, port = settings.port, "plain SMTP without TLS (allowed for testing)");
        }
        Ok(Self {
            permits: Semaphore::new(settings.pool_size.max(1)),
            idle: Mutex::new(Vec::new()),
            tls,
            settings,
        })
    }

    /// The most recently parked connection that has not idled too long.
    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let limit = self.settings.idle_timeout;
        // Expired connections are dropped (closed) here.
        idle.retain(|(_, since)| since.elapsed() < limit);
        idle.pop().map(|(conn, _)| conn)
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.settings.pool_size {
            idle.push((conn, Instant::now()));
        }
    }
}

/// Run one network step under `limit`, mapping lettre's error at `stage`.
async fn step<T>(
    stage: Stage,
    limit: Duration,
    future: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, SmtpError> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(SmtpError::from_lettre(stage, error)),
        Err(_) => Err(SmtpError::Timeout {
            stage,
            after: limit,
        }),
    }
}

fn reply_text(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", u16::from(response.code()), lines.join(" "))
}

impl SmtpTransport {
    /// Start building a transport.
    #[must_use]
    pub fn builder() -> SmtpTransportBuilder {
        SmtpTransportBuilder::default()
    }

    /// The tracker, if any: a host's web handler verifies tokens with it.
    #[must_use]
    pub fn tracker(&self) -> Option<&Tracker> {
        self.inner.composer.tracker()
    }

    /// Build the message for `email` as [`deliver`](Self::deliver) would, without sending.
    ///
    /// # Errors
    /// [`MessageError`] (header injection, invalid address or Message-ID).
    pub fn compose(&self, email: &OutgoingEmail) -> Result<ComposedMessage, MessageError> {
        self.inner.composer.compose(email)
    }

    /// Close the idle connections of `mailbox` and forget its settings; the next send
    /// looks them up and connects again (e.g. after its password changed).
    pub fn forget_mailbox(&self, mailbox: MailboxId) {
        self.inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&mailbox);
    }

    /// Send `email` and report the server's acceptance, or a typed error. [`Transport::send`]
    /// is this, classified.
    ///
    /// # Errors
    /// An [`SmtpError`]; [`SmtpError::to_send_error`] classifies it.
    pub async fn deliver(&self, email: &OutgoingEmail) -> Result<Delivery, SmtpError> {
        let message = self.inner.composer.compose(email)?;
        let pool = self.pool(email.mailbox).await?;
        let guard = pool.settings.timeouts.send;
        let stage = AtomicU8::new(Stage::Queue.index());
        match tokio::time::timeout(
            guard,
            self.deliver_on(&pool, email.mailbox, &message, &stage),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(SmtpError::Timeout {
                stage: Stage::from_index(stage.load(Ordering::Relaxed)),
                after: guard,
            }),
        }
    }

    /// The pool of `mailbox` for its current settings: the existing one if the settings are
    /// unchanged, else a new one (the old one closes when its last send ends). The map's
    /// lock is never held across an await.
    async fn pool(&self, mailbox: MailboxId) -> Result<Arc<MailboxPool>, SmtpError> {
        let settings = self
            .inner
            .directory
            .settings(mailbox)
            .await?
            .ok_or(SmtpError::UnknownMailbox { mailbox })?;
        let lock = || {
            self.inner
                .pools
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(pool) = lock().get(&mailbox).filter(|p| p.settings == settings) {
            return Ok(Arc::clone(pool));
        }
        let fresh = Arc::new(MailboxPool::new(settings)?);
        let mut pools = lock();
        match pools.get(&mailbox) {
            Some(pool) if pool.settings == fresh.settings => Ok(Arc::clone(pool)),
            _ => {
                debug!(%mailbox, host = %fresh.settings.host, port = fresh.settings.port, "new connection pool");
                pools.insert(mailbox, Arc::clone(&fresh));
                Ok(fresh)
            }
        }
    }

    async fn deliver_on(
        &self,
        pool: &MailboxPool,
        mailbox: MailboxId,
        message: &ComposedMessage,
        stage: &AtomicU8,
    ) -> Result<Delivery, SmtpError> {
        let _permit = pool
            .permits
            .acquire()
            .await
            .map_err(|_| SmtpError::connection(Stage::Queue, "connection pool closed"))?;
        let t = pool.settings.timeouts;
        let mut conn = None;
        while let Some(mut idle) = pool.take_idle() {
            stage.store(Stage::Reuse.index(), Ordering::Relaxed);
            if step(Stage::Reuse, t.command, idle.command(Noop))
                .await
                .is_ok()
            {
                debug!(%mailbox, "reusing a pooled connection");
                conn = Some(idle);
                break;
            }
        }
        let mut conn = match conn {
            Some(conn) => conn,
            None => self.connect(pool, mailbox, stage).await?,
        };
        match self.transmit(&mut conn, pool, message, stage).await {
            Ok(response) => {
                pool.park(conn);
                Ok(Delivery::with_response(reply_text(&response)))
            }
            Err(error @ SmtpError::Rejected { code, .. }) => {
                // The conversation is intact: reset it and keep the connection, unless the
                // server is closing it (421).
                if code != 421
                    && step(Stage::Reuse, COURTESY.min(t.command), conn.command(Rset))
                        .await
                        .is_ok()
                {
                    pool.park(conn);
                } else {
                    let _ = tokio::time::timeout(COURTESY, conn.command(Quit)).await;
                }
                Err(error)
            }
            // Timed out or broken: the conversation is out of step; drop (close) it.
            Err(error) => Err(error),
        }
    }

    /// Open, secure and authenticate a new connection.
    async fn connect(
        &self,
        pool: &MailboxPool,
        mailbox: MailboxId,
        stage: &AtomicU8,
    ) -> Result<AsyncSmtpConnection, SmtpError> {
        let s = &pool.settings;
        let t = s.timeouts;
        let credentials = self.inner.credentials.credentials(mailbox).await?;
        let hello = s
            .helo_name
            .clone()
            .map_or_else(ClientId::default, ClientId::Domain);
        let implicit = match s.security {
            Security::ImplicitTls => pool.tls.clone(),
            Security::StartTls | Security::Plain => None,
        };
        debug!(%mailbox, host = %s.host, port = s.port, security = ?s.security, "connecting");
        stage.store(Stage::Connect.index(), Ordering::Relaxed);
        let mut conn = step(
            Stage::Connect,
            t.connect,
            AsyncSmtpConnection::connect_tokio1(
                (s.host.as_str(), s.port),
                Some(t.connect),
                &hello,
                implicit,
                None,
            ),
        )
        .await?;
        if s.security == Security::StartTls {
            stage.store(Stage::StartTls.index(), Ordering::Relaxed);
            let Some(tls) = pool.tls.clone() else {
                return Err(SmtpError::connection(Stage::StartTls, "no TLS parameters"));
            };
            step(Stage::StartTls, t.command, conn.starttls(tls, &hello)).await?;
        }
        if s.security != Security::Plain && !conn.is_encrypted() {
            return Err(SmtpError::connection(
                Stage::StartTls,
                "the connection is not encrypted",
            ));
        }
        if let Some(credentials) = credentials {
            stage.store(Stage::Auth.index(), Ordering::Relaxed);
            let (credentials, mechanisms) = credentials.to_lettre();
            let result = step(Stage::Auth, t.command, conn.auth(&mechanisms, &credentials)).await;
            if let Err(error) = result {
                let _ = tokio::time::timeout(COURTESY, conn.command(Quit)).await;
                return Err(error);
            }
        }
        Ok(conn)
    }

    /// MAIL FROM, RCPT TO, DATA and the message, each under its timeout.
    async fn transmit(
        &self,
        conn: &mut AsyncSmtpConnection,
        pool: &MailboxPool,
        message: &ComposedMessage,
        stage: &AtomicU8,
    ) -> Result<Response, SmtpError> {
        let t = pool.settings.timeouts;
        let envelope = message.envelope();
        let bytes = message.formatted();
        let mut parameters = Vec::new();
        let non_ascii_addresses = envelope
            .from()
            .is_some_and(|a| !AsRef::<str>::as_ref(a).is_ascii())
            || envelope
                .to()
                .iter()
                .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii_addresses {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(MessageError::Build(
                    "the server does not support SMTPUTF8, needed for a non-ASCII address".into(),
                )
                .into());
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !bytes.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(MessageError::Build(
                    "the server does not support 8BITMIME, needed for this message".into(),
                )
                .into());
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        stage.store(Stage::MailFrom.index(), Ordering::Relaxed);
        step(
            Stage::MailFrom,
            t.command,
            conn.command(Mail::new(envelope.from().cloned(), parameters)),
        )
        .await?;
        stage.store(Stage::RcptTo.index(), Ordering::Relaxed);
        for to in envelope.to() {
            step(
                Stage::RcptTo,
                t.command,
                conn.command(Rcpt::new(to.clone(), Vec::new())),
            )
            .await?;
        }
        stage.store(Stage::Data.index(), Ordering::Relaxed);
        step(Stage::Data, t.command, conn.command(Data)).await?;
        stage.store(Stage::Message.index(), Ordering::Relaxed);
        step(Stage::Message, t.data, conn.message(&bytes)).await
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        let span = tracing::info_span!(
            "smtp_send",
            mailbox = %email.mailbox,
            send = %email.send,
            step = email.step,
            attempt = email.attempt,
        );
        async {
            match self.deliver(email).await {
                Ok(delivery) => {
                    debug!(response = ?delivery.response, "accepted");
                    Ok(delivery)
                }
                Err(error) => {
                    let classified = error.to_send_error();
                    warn!(
                        %error,
                        permanent = classified.is_permanent(),
                        category = ?classified.category(),
                        "send failed"
                    );
                    Err(classified)
                }
            }
        }
        .instrument(span)
        .await
    }
}
