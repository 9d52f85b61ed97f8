//! Mailbox credentials and the [`CredentialProvider`] the host implements (vault,
//! environment, database). Credentials are asked for each time a new connection is opened,
//! so a rotated password or a refreshed OAuth token is picked up without a restart; they are
//! handed to lettre for the AUTH command and kept nowhere else.
//!
//! They are never logged: [`Credentials`] prints as `Credentials(***)` in `Debug`, has no
//! `Display` and no `Serialize`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use sequence_core::ids::MailboxId;

/// How credentials are presented to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A password, with AUTH PLAIN (or LOGIN when the server offers only that).
    Password,
    /// An OAuth 2 access token, with AUTH XOAUTH2 (Gmail, Microsoft 365).
    XOAuth2,
}

/// A mailbox's login. Its `Debug` output is `Credentials(***)`; it cannot be serialized.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    secret: String,
    method: AuthMethod,
}

impl Credentials {
    /// A user name and password (AUTH PLAIN or LOGIN).
    #[must_use]
    pub fn password(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            secret: password.into(),
            method: AuthMethod::Password,
        }
    }

    /// A user name and an OAuth 2 access token (AUTH XOAUTH2).
    #[must_use]
    pub fn xoauth2(username: impl Into<String>, access_token: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            secret: access_token.into(),
            method: AuthMethod::XOAuth2,
        }
    }

    /// How these credentials are presented.
    #[must_use]
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// The lettre credentials and the mechanisms to try, in order.
    pub(crate) fn to_lettre(
        &self,
    ) -> (
        lettre::transport::smtp::authentication::Credentials,
        Vec<lettre::transport::smtp::authentication::Mechanism>,
    ) {
        use lettre::transport::smtp::authentication::Mechanism;
        let mechanisms = match self.method {
            AuthMethod::Password => vec![Mechanism::Plain, Mechanism::Login],
            AuthMethod::XOAuth2 => vec![Mechanism::Xoauth2],
        };
        (
            lettre::transport::smtp::authentication::Credentials::new(
                self.username.clone(),
                self.secret.clone(),
            ),
            mechanisms,
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// The host's source of settings or credentials failed (the send is retried later). Its
/// message is logged and stored with the send: never put a secret in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LookupError {
    message: String,
}

impl LookupError {
    /// A lookup failure with a message (no secrets).
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Gives the credentials of a mailbox. The host implements it over its vault, environment
/// or database; a `HashMap<MailboxId, Credentials>` is one, and [`NoCredentials`] is one for
/// servers that need no login.
///
/// It is called each time a new connection to the mailbox's server is opened (not for
/// every message: connections are pooled), without any lock held.
#[async_trait]
pub trait CredentialProvider: Send + Sync {
    /// The credentials of `mailbox`, or `None` to send without AUTH.
    ///
    /// # Errors
    /// The source could not be read (the send is retried later).
    async fn credentials(&self, mailbox: MailboxId) -> Result<Option<Credentials>, LookupError>;
}

/// A [`CredentialProvider`] for servers that need no login (a local relay or test server).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCredentials;

#[async_trait]
impl CredentialProvider for NoCredentials {
    async fn credentials(&self, _mailbox: MailboxId) -> Result<Option<Credentials>, LookupError> {
        Ok(None)
    }
}

#[async_trait]
impl CredentialProvider for HashMap<MailboxId, Credentials> {
    async fn credentials(&self, mailbox: MailboxId) -> Result<Option<Credentials>, LookupError> {
        Ok(self.get(&mailbox).cloned())
    }
}

#[async_trait]
impl<T: CredentialProvider + ?Sized> CredentialProvider for Arc<T> {
    async fn credentials(&self, mailbox: MailboxId) -> Result<Option<Credentials>, LookupError> {
        (**self).credentials(mailbox).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_everything() {
        let c = Credentials::password("ana@sender.example", "hunter2");
        let shown = format!("{c:?} {:?}", Some(&c));
        assert_eq!(shown, "Credentials(***) Some(Credentials(***))");
        assert!(!shown.contains("hunter2") && !shown.contains("ana"));
        let map: HashMap<MailboxId, Credentials> = [(
            MailboxId::from_u128(1),
            Credentials::xoauth2("ana", "ya29.token"),
        )]
        .into();
        assert!(!format!("{map:?}").contains("ya29"));
    }
}
