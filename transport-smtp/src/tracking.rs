//! Signed tracking and unsubscribe links.
//!
//! A [`Tracker`] knows the host's public base URL and a secret. It makes three kinds of
//! links, each carrying a token:
//!
//! | link | path | the host's handler then calls |
//! | --- | --- | --- |
//! | open pixel | `{base}/o/{token}` | `engine.open(tenant, enrollment, step)`, answers a 1x1 GIF |
//! | click | `{base}/c/{token}` | `engine.click(tenant, enrollment, step)`, redirects to the target |
//! | unsubscribe | `{base}/u/{token}` | `engine.unsubscribe(tenant, contact)` (GET: a confirmation page; POST `List-Unsubscribe=One-Click`: at once, RFC 8058) |
//!
//! A token is `base64url(payload || HMAC-SHA256(secret, payload))` where the payload holds
//! a version, the kind, the tenant, the enrollment, the contact, the step and, for clicks,
//! the target URL. [`Tracker::verify`] recomputes the MAC and compares it in constant time,
//! so a token whose kind, ids, step or target were changed, or that was signed with another
//! secret, is refused; the click target is read from the signed token, so the click
//! endpoint cannot be used as an open redirect.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sequence_core::ids::{ContactId, EnrollmentId, TenantId};
use sequence_core::transport::OutgoingEmail;
use sha2::Sha256;
use uuid::Uuid;

use crate::error::SmtpError;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const MAC_LEN: usize = 32;
const HEADER_LEN: usize = 1 + 1 + 16 * 3 + 4;
/// Domain separation: these MACs mean "tracking token", whatever else the secret signs.
const CONTEXT: &[u8] = b"sequence-engine/tracking-token\0";
/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Click targets longer than this are left untracked.
pub const MAX_TARGET_LEN: usize = 2048;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// The open pixel.
    Open,
    /// A tracked link.
    Click,
    /// An unsubscribe link.
    Unsubscribe,
}

impl TokenKind {
    const fn byte(self) -> u8 {
        match self {
            Self::Open => b'o',
            Self::Click => b'c',
            Self::Unsubscribe => b'u',
        }
    }
    const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'o' => Some(Self::Open),
            b'c' => Some(Self::Click),
            b'u' => Some(Self::Unsubscribe),
            _ => None,
        }
    }
    /// The path segment of this kind's links: `o`, `c` or `u`.
    #[must_use]
    pub const fn path(self) -> &'static str {
        match self {
            Self::Open => "o",
            Self::Click => "c",
            Self::Unsubscribe => "u",
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Click => "click",
            Self::Unsubscribe => "unsubscribe",
        })
    }
}

/// The send a link belongs to: what a token is signed over (with its kind and target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TrackedSend {
    /// Owner.
    pub tenant: TenantId,
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// The contact (what `unsubscribe` needs).
    pub contact: ContactId,
    /// The step's order.
    pub step: u32,
}

impl TrackedSend {
    /// The send of `(tenant, enrollment, contact, step)`.
    #[must_use]
    pub const fn new(
        tenant: TenantId,
        enrollment: EnrollmentId,
        contact: ContactId,
        step: u32,
    ) -> Self {
        Self {
            tenant,
            enrollment,
            contact,
            step,
        }
    }
}

impl From<&OutgoingEmail> for TrackedSend {
    fn from(email: &OutgoingEmail) -> Self {
        Self::new(email.tenant, email.enrollment, email.contact, email.step)
    }
}

/// A token that [`Tracker::verify`] accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct VerifiedToken {
    /// What the token is for.
    pub kind: TokenKind,
    /// Owner.
    pub tenant: TenantId,
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// The contact.
    pub contact: ContactId,
    /// The step's order.
    pub step: u32,
    /// For a click, the URL to redirect to.
    pub target: Option<String>,
}

/// Why a token was refused. Answer 404 to all of them alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of ours: bad encoding, wrong length or version, unknown fields.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The signature does not match: tampered with, or signed with another secret.
    #[error("token signature does not match")]
    BadSignature,
    /// A valid token of another kind than the endpoint expects.
    #[error("token is for {found}, expected {expected}")]
    WrongKind {
        /// The kind the caller asked for.
        expected: TokenKind,
        /// The token's kind.
        found: TokenKind,
    },
}

/// Signs and verifies tracking and unsubscribe tokens, and builds their URLs.
///
/// ```
/// use sequence_core::ids::{ContactId, EnrollmentId, TenantId};
/// use transport_smtp::{TokenKind, TrackedSend, Tracker};
///
/// let tracker = Tracker::new("https://t.sender.example", "a secret of at least 16 bytes")?;
/// let send = TrackedSend::new(TenantId::new(), EnrollmentId::new(), ContactId::new(), 2);
///
/// let url = tracker.click_url(&send, "https://example.com/pricing?plan=pro");
/// let token = url.rsplit('/').next().unwrap_or_default();
/// let verified = tracker.verify_kind(token, TokenKind::Click)?;
/// assert_eq!((verified.enrollment, verified.step), (send.enrollment, 2));
/// assert_eq!(verified.target.as_deref(), Some("https://example.com/pricing?plan=pro"));
///
/// // Another secret's token is refused.
/// let other = Tracker::new("https://t.sender.example", "another secret, 16 bytes+")?;
/// assert!(other.verify(token).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Tracker {
    base: String,
    signer: HmacSha256,
    previous: Vec<HmacSha256>,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("base", &self.base)
            .field("secret", &"***")
            .field("previous_secrets", &self.previous.len())
            .finish()
    }
}

fn keyed(secret: &[u8]) -> Result<HmacSha256, SmtpError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(SmtpError::InvalidSettings {
            field: "tracking.secret".into(),
            reason: format!("must be at least {MIN_SECRET_LEN} bytes (32 random bytes advised)"),
        });
    }
    HmacSha256::new_from_slice(secret).map_err(|e| SmtpError::InvalidSettings {
        field: "tracking.secret".into(),
        reason: e.to_string(),
    })
}

impl Tracker {
    /// A tracker whose links start with `base_url` (`https://` or `http://`, no query or
    /// fragment; a trailing `/` is dropped) and whose tokens are signed with `secret` (at
    /// least [`MIN_SECRET_LEN`] bytes; 32 random bytes advised).
    ///
    /// # Errors
    /// [`SmtpError::InvalidSettings`] for a bad URL or a short secret.
    pub fn new(base_url: impl Into<String>, secret: impl AsRef<[u8]>) -> Result<Self, SmtpError> {
        let mut base: String = base_url.into();
        while base.ends_with('/') {
            base.pop();
        }
        let lower = base.to_ascii_lowercase();
        let scheme_len = if lower.starts_with("https://") {
            8
        } else if lower.starts_with("http://") {
            7
        } else {
            0
        };
        let ok = scheme_len > 0
            && base.len() > scheme_len
            && base
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"\"'<>\\`{}|^?#&".contains(&b));
        if !ok {
            return Err(SmtpError::InvalidSettings {
                field: "tracking.base_url".into(),
                reason: "must be an absolute http(s) URL without query, fragment or spaces".into(),
            });
        }
        Ok(Self {
            base,
            signer: keyed(secret.as_ref())?,
            previous: Vec::new(),
        })
    }

    /// Also accept tokens signed with an earlier secret (builder style), so that links in
    /// mail already sent keep working after the secret is rotated. New tokens are signed
    /// with the current secret only.
    ///
    /// # Errors
    /// [`SmtpError::InvalidSettings`] for a short secret.
    pub fn with_previous_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, SmtpError> {
        self.previous.push(keyed(secret.as_ref())?);
        Ok(self)
    }

    /// The base URL, without a trailing `/`.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A signed token of `kind` for `send`; `target` is the click's URL (ignored for other
    /// kinds).
    #[must_use]
    pub fn token(&self, kind: TokenKind, send: &TrackedSend, target: Option<&str>) -> String {
        let target = match kind {
            TokenKind::Click => target.unwrap_or_default(),
            TokenKind::Open | TokenKind::Unsubscribe => "",
        };
        let mut bytes = Vec::with_capacity(HEADER_LEN + target.len() + MAC_LEN);
        bytes.push(VERSION);
        bytes.push(kind.byte());
        bytes.extend_from_slice(send.tenant.as_uuid().as_bytes());
        bytes.extend_from_slice(send.enrollment.as_uuid().as_bytes());
        bytes.extend_from_slice(send.contact.as_uuid().as_bytes());
        bytes.extend_from_slice(&send.step.to_be_bytes());
        bytes.extend_from_slice(target.as_bytes());
        let mut mac = self.signer.clone();
        mac.update(CONTEXT);
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn url(&self, kind: TokenKind, send: &TrackedSend, target: Option<&str>) -> String {
        format!(
            "{}/{}/{}",
            self.base,
            kind.path(),
            self.token(kind, send, target)
        )
    }

    /// The open pixel's URL.
    #[must_use]
    pub fn open_url(&self, send: &TrackedSend) -> String {
        self.url(TokenKind::Open, send, None)
    }

    /// A tracked link to `target` (an absolute URL, HTML entities already decoded).
    #[must_use]
    pub fn click_url(&self, send: &TrackedSend, target: &str) -> String {
        self.url(TokenKind::Click, send, Some(target))
    }

    /// The https unsubscribe link (for `List-Unsubscribe` and for the body).
    #[must_use]
    pub fn unsubscribe_url(&self, send: &TrackedSend) -> String {
        self.url(TokenKind::Unsubscribe, send, None)
    }

    /// Whether `url` is one of this tracker's links.
    #[must_use]
    pub fn is_own_url(&self, url: &str) -> bool {
        url.len() > self.base.len()
            && url.is_char_boundary(self.base.len())
            && url[..self.base.len()].eq_ignore_ascii_case(&self.base)
            && url[self.base.len()..].starts_with('/')
    }

    /// Check a token (the last path segment of a link) and read it.
    ///
    /// # Errors
    /// [`TokenError::Malformed`] or [`TokenError::BadSignature`].
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| TokenError::Malformed("not base64url"))?;
        if bytes.len() < HEADER_LEN + MAC_LEN {
            return Err(TokenError::Malformed("too short"));
        }
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let signed = std::iter::once(&self.signer)
            .chain(&self.previous)
            .any(|key| {
                let mut mac = key.clone();
                mac.update(CONTEXT);
                mac.update(payload);
                mac.verify_slice(tag).is_ok()
            });
        if !signed {
            return Err(TokenError::BadSignature);
        }
        // Signed by us: the fields below were written by `token`.
        if payload[0] != VERSION {
            return Err(TokenError::Malformed("unknown version"));
        }
        let kind = TokenKind::from_byte(payload[1]).ok_or(TokenError::Malformed("unknown kind"))?;
        let uuid = |at: usize| {
            let mut raw = [0u8; 16];
            raw.copy_from_slice(&payload[at..at + 16]);
            Uuid::from_bytes(raw)
        };
        let mut step = [0u8; 4];
        step.copy_from_slice(&payload[50..54]);
        let target = std::str::from_utf8(&payload[HEADER_LEN..])
            .map_err(|_| TokenError::Malformed("target is not UTF-8"))?;
        let target = match kind {
            TokenKind::Click if target.is_empty() => {
                return Err(TokenError::Malformed("click without target"))
            }
            TokenKind::Click => Some(target.to_owned()),
            _ if !target.is_empty() => return Err(TokenError::Malformed("unexpected target")),
            _ => None,
        };
        Ok(VerifiedToken {
            kind,
            tenant: TenantId(uuid(2)),
            enrollment: EnrollmentId(uuid(18)),
            contact: ContactId(uuid(34)),
            step: u32::from_be_bytes(step),
            target,
        })
    }

    /// [`verify`](Self::verify), and check that the token is of `kind` (an open token
    /// presented at the click endpoint is refused).
    ///
    /// # Errors
    /// As `verify`, and [`TokenError::WrongKind`].
    pub fn verify_kind(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken, TokenError> {
        let verified = self.verify(token)?;
        if verified.kind != kind {
            return Err(TokenError::WrongKind {
                expected: kind,
                found: verified.kind,
            });
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send() -> TrackedSend {
        TrackedSend::new(
            TenantId::from_u128(1),
            EnrollmentId::from_u128(2),
            ContactId::from_u128(3),
            4,
        )
    }

    fn tracker() -> Tracker {
        Tracker::new("https://t.example.com/", "0123456789abcdef0123456789abcdef").unwrap()
    }

    fn token_of(url: &str) -> &str {
        url.rsplit('/').next().unwrap()
    }

    #[test]
    fn round_trips_each_kind() {
        let t = tracker();
        let s = send();
        let open = t.open_url(&s);
        assert!(open.starts_with("https://t.example.com/o/"));
        let v = t.verify(token_of(&open)).unwrap();
        assert_eq!(
            v,
            VerifiedToken {
                kind: TokenKind::Open,
                tenant: s.tenant,
                enrollment: s.enrollment,
                contact: s.contact,
                step: 4,
                target: None,
            }
        );
        let click = t.click_url(&s, "https://example.com/a?b=1&c=ü");
        assert!(click.starts_with("https://t.example.com/c/"));
        let v = t.verify_kind(token_of(&click), TokenKind::Click).unwrap();
        assert_eq!(v.target.as_deref(), Some("https://example.com/a?b=1&c=ü"));
        let unsub = t.unsubscribe_url(&s);
        assert!(unsub.starts_with("https://t.example.com/u/"));
        let v = t
            .verify_kind(token_of(&unsub), TokenKind::Unsubscribe)
            .unwrap();
        assert_eq!((v.contact, v.target), (s.contact, None));
        assert!(token_of(&click)
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn refuses_tampered_tokens() {
        let t = tracker();
        let token = t.token(TokenKind::Click, &send(), Some("https://example.com/"));
        // Flip each character in turn: every variant must be refused.
        for i in 0..token.len() {
            let mut chars: Vec<char> = token.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let tampered: String = chars.into_iter().collect();
            if tampered != token {
                assert!(t.verify(&tampered).is_err(), "position {i}");
            }
        }
        assert_eq!(t.verify(""), Err(TokenError::Malformed("too short")));
        assert_eq!(t.verify("!!!"), Err(TokenError::Malformed("not base64url")));
        assert!(t.verify(&token[..token.len() - 4]).is_err());
    }

    #[test]
    fn refuses_changed_fields_even_with_the_old_signature() {
        let t = tracker();
        let raw = URL_SAFE_NO_PAD
            .decode(t.token(TokenKind::Open, &send(), None))
            .unwrap();
        for (at, value) in [(1, b'c'), (1, b'u'), (2, 9), (20, 9), (40, 9), (53, 5)] {
            let mut forged = raw.clone();
            forged[at] = value;
            assert_eq!(
                t.verify(&URL_SAFE_NO_PAD.encode(&forged)),
                Err(TokenError::BadSignature),
                "byte {at}"
            );
        }
        // A target appended to an open token, keeping its MAC.
        let (payload, tag) = raw.split_at(raw.len() - MAC_LEN);
        let mut forged = payload.to_vec();
        forged[1] = b'c';
        forged.extend_from_slice(b"https://evil.example/");
        forged.extend_from_slice(tag);
        assert_eq!(
            t.verify(&URL_SAFE_NO_PAD.encode(&forged)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn refuses_foreign_secret_and_wrong_kind() {
        let t = tracker();
        let other =
            Tracker::new("https://t.example.com", "another secret of 32 bytes......").unwrap();
        let token = other.token(TokenKind::Open, &send(), None);
        assert_eq!(t.verify(&token), Err(TokenError::BadSignature));
        let token = t.token(TokenKind::Open, &send(), None);
        assert_eq!(
            t.verify_kind(&token, TokenKind::Click),
            Err(TokenError::WrongKind {
                expected: TokenKind::Click,
                found: TokenKind::Open
            })
        );
    }

    #[test]
    fn accepts_previous_secret_after_rotation() {
        let old = tracker();
        let token = old.token(TokenKind::Unsubscribe, &send(), None);
        let rotated = Tracker::new("https://t.example.com", "the new secret, also 32 bytes...")
            .unwrap()
            .with_previous_secret("0123456789abcdef0123456789abcdef")
            .unwrap();
        assert!(rotated.verify(&token).is_ok());
        let fresh = rotated.token(TokenKind::Unsubscribe, &send(), None);
        assert_eq!(old.verify(&fresh), Err(TokenError::BadSignature));
    }

    #[test]
    fn validates_configuration() {
        assert!(Tracker::new("https://t.example.com", "short").is_err());
        for bad in [
            "t.example.com",
            "https://",
            "https://t.example.com/?a=1",
            "https://t.example.com/x y",
            "javascript:alert(1)",
            "https://t.example.com/\"><script>",
        ] {
            assert!(Tracker::new(bad, "0123456789abcdef").is_err(), "{bad}");
        }
        let t = tracker();
        assert_eq!(t.base_url(), "https://t.example.com");
        assert!(t.is_own_url("https://t.example.com/c/abc"));
        assert!(t.is_own_url("HTTPS://T.EXAMPLE.COM/c/abc"));
        assert!(!t.is_own_url("https://t.example.com.evil/c/abc"));
        let shown = format!("{t:?}");
        assert!(!shown.contains("0123456789abcdef"));
    }
}
