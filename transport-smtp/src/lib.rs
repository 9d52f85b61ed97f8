//! # transport-smtp
//!
//! The [`Transport`](sequence_core::Transport) that sends the engine's email through each
//! mailbox's own SMTP server, with [lettre] on rustls.
//!
//! * **Connections** ([`SmtpTransport`]): per mailbox, from a [`MailboxDirectory`] of
//!   [`SmtpSettings`] (host, port, [`Security`]: implicit TLS, STARTTLS required, or plain
//!   only when explicitly allowed), with credentials from a [`CredentialProvider`] the host
//!   implements. Each mailbox has its own pool; connecting, each command and the message
//!   have timeouts, so a slow server delays only its own mailbox.
//! * **Outcomes** ([`classify_reply`], [`SmtpError::to_send_error`]): 4xx and connection
//!   trouble are transient, 5xx permanent; the reply code and the enhanced status code are
//!   kept; the category says whose fault it was (a refused login or a rate limit is the
//!   mailbox's, to pause it; an unknown user or a full mailbox is the contact's, a bounce).
//! * **Messages** ([`MessageComposer`]): `From` with the mailbox's name, the engine's
//!   deterministic `Message-ID`, `In-Reply-To`/`References` and `Re:` for follow-ups in
//!   thread, `List-Unsubscribe` (mailto and https) with one-click (RFC 8058), text or
//!   `multipart/alternative`. Line breaks in header fields are refused
//!   ([`MessageError::HeaderInjection`]).
//! * **Tracking** ([`Tracker`]): an open pixel and tracked links in HTML bodies when the
//!   sequence asks, and unsubscribe links, all carrying HMAC-SHA256-signed tokens that the
//!   host's web handler checks with [`Tracker::verify`] before calling the engine.
//!
//! ## Building a message and checking a token (no network)
//!
//! ```
//! use sequence_core::ids::*;
//! use sequence_core::transport::OutgoingEmail;
//! use transport_smtp::{MessageComposer, TokenKind, Tracker};
//!
//! let tracker = Tracker::new("https://t.sender.example", "32 random bytes from your vault")?;
//! let composer = MessageComposer::new()
//!     .with_tracker(tracker.clone())
//!     .with_unsubscribe_mailto("unsubscribe@sender.example")?;
//!
//! let email = OutgoingEmail {
//!     tenant: TenantId::new(),
//!     send: SendId::new(),
//!     enrollment: EnrollmentId::new(),
//!     sequence: SequenceId::new(),
//!     contact: ContactId::new(),
//!     step: 1,
//!     attempt: 1,
//!     variant: 0,
//!     mailbox: MailboxId::new(),
//!     from_address: "ana@sender.example".into(),
//!     from_name: Some("Ana Lima".into()),
//!     to_address: "bob@example.com".into(),
//!     to_name: Some("Bob".into()),
//!     subject: "Quick question".into(),
//!     text_body: "Hi Bob, any thoughts?".into(),
//!     html_body: Some(r#"<p>Hi Bob, see <a href="https://sender.example/demo">the demo</a>.</p>"#.into()),
//!     message_id: "e1.s1@sender.example".into(),
//!     in_reply_to: Some("e1.s0@sender.example".into()),
//!     references: vec!["e1.s0@sender.example".into()],
//!     track_opens: true,
//!     track_clicks: true,
//! };
//! let message = composer.compose(&email)?;
//! let text = String::from_utf8(message.formatted())?;
//! assert!(text.contains("Subject: Re: Quick question\r\n"));
//! assert!(text.contains("In-Reply-To: <e1.s0@sender.example>\r\n"));
//! assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
//!
//! // The host's `/u/{token}` handler:
//! let url = tracker.unsubscribe_url(&(&email).into());
//! let token = url.rsplit('/').next().unwrap_or_default();
//! let verified = tracker.verify_kind(token, TokenKind::Unsubscribe)?;
//! assert_eq!((verified.tenant, verified.contact), (email.tenant, email.contact));
//! // engine.unsubscribe(verified.tenant, verified.contact).await?;
//!
//! // A line break in a header field is refused, typed.
//! let evil = OutgoingEmail { subject: "Hi\r\nBcc: everyone@example.com".into(), ..email };
//! assert!(matches!(
//!     composer.compose(&evil),
//!     Err(transport_smtp::MessageError::HeaderInjection { .. })
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Sending (needs a server)
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::HashMap;
//! use sequence_core::ids::MailboxId;
//! use transport_smtp::{Credentials, Security, SmtpSettings, SmtpTransport, Tracker};
//!
//! let ana = MailboxId::new();
//! let transport = SmtpTransport::builder()
//!     .directory(HashMap::from([(ana, SmtpSettings::new("smtp.sender.example", Security::ImplicitTls))]))
//!     .credentials(HashMap::from([(ana, Credentials::password("ana@sender.example", "app password"))]))
//!     .tracker(Tracker::new("https://t.sender.example", "32 random bytes from your vault")?)
//!     .unsubscribe_mailto("unsubscribe@sender.example")?
//!     .build()?;
//! // let engine = Engine::builder(store, transport).build();
//! # let _ = transport; Ok(()) }
//! ```
//!
//! ## Choices worth knowing
//!
//! * TLS is rustls with the *ring* provider and the bundled Mozilla roots (feature
//!   `native-roots` uses the system's instead); extra roots per mailbox with
//!   [`SmtpSettings::with_root_certificate`]. No OpenSSL, no aws-lc.
//! * lettre's own connection pool is not used: in lettre 0.11 the async transport's
//!   `timeout` covers only the TCP connect, and a send cancelled by an outer timeout hands
//!   its half-finished connection back to lettre's pool. This crate drives lettre's
//!   [`AsyncSmtpConnection`](lettre::transport::smtp::client::AsyncSmtpConnection) itself,
//!   with a timeout on every step and a small pool per mailbox that only takes back
//!   connections whose conversation is complete.
//! * lettre's `tracing` feature stays off: it logs the raw SMTP conversation, AUTH
//!   included. This crate logs with `tracing` and never logs credentials.
//!
//! [lettre]: https://docs.rs/lettre

mod classify;
mod credentials;
mod error;
mod html;
mod message;
mod settings;
mod tracking;
mod transport;

pub use classify::{classify_reply, enhanced_status_code};
pub use credentials::{AuthMethod, CredentialProvider, Credentials, LookupError, NoCredentials};
pub use error::{SmtpError, Stage};
pub use message::{ComposedMessage, MessageComposer, MessageError};
pub use settings::{MailboxDirectory, Security, SmtpSettings, Timeouts};
pub use tracking::{
    TokenError, TokenKind, TrackedSend, Tracker, VerifiedToken, MAX_TARGET_LEN, MIN_SECRET_LEN,
};
pub use transport::{SmtpTransport, SmtpTransportBuilder};
