//! From an [`OutgoingEmail`] to the bytes on the wire: headers checked against injection,
//! threading, one-click unsubscribe, multipart/alternative, open pixel and tracked links.

use std::str::FromStr;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use sequence_core::transport::OutgoingEmail;

use crate::error::SmtpError;
use crate::html;
use crate::tracking::{TokenKind, TrackedSend, Tracker, MAX_TARGET_LEN};

/// Why a message could not be built. At the [`Transport`](sequence_core::Transport)
/// boundary it is a permanent failure with category `InvalidMessage`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A line break or another control character in a header field: refused, since it
    /// could add headers or recipients (header injection). The value is not repeated here.
    #[error("{field}: contains a line break or control character (header injection refused)")]
    HeaderInjection {
        /// The field, e.g. `subject` or `references[1]`.
        field: String,
    },
    /// An address that is not a valid `local@domain`.
    #[error("{field}: invalid address {value:?}: {reason}")]
    InvalidAddress {
        /// The field.
        field: String,
        /// The address.
        value: String,
        /// Why.
        reason: String,
    },
    /// A Message-ID that is not `left@right` of plain ASCII characters (without the angle
    /// brackets, which the transport adds).
    #[error("{field}: invalid Message-ID {value:?}")]
    InvalidMessageId {
        /// The field.
        field: String,
        /// The identifier.
        value: String,
    },
    /// lettre refused to build the message.
    #[error("message could not be built: {0}")]
    Build(String),
}

/// A message ready to send: its envelope and its formatted bytes.
#[derive(Debug, Clone)]
pub struct ComposedMessage {
    message: Message,
}

impl ComposedMessage {
    /// The message as sent (RFC 5322, CRLF line ends).
    #[must_use]
    pub fn formatted(&self) -> Vec<u8> {
        self.message.formatted()
    }

    /// The envelope sender (MAIL FROM).
    #[must_use]
    pub fn envelope_from(&self) -> Option<String> {
        self.message.envelope().from().map(ToString::to_string)
    }

    /// The envelope recipients (RCPT TO).
    #[must_use]
    pub fn envelope_to(&self) -> Vec<String> {
        self.message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    pub(crate) fn envelope(&self) -> &lettre::address::Envelope {
        self.message.envelope()
    }
}

/// Builds messages: the headers that keep a sequence deliverable and compliant, and the
/// tracking the email asks for.
///
/// * `From` with the mailbox's display name, `To` with the contact's name, `Subject`,
///   `Date`, and the engine's deterministic `Message-ID` (angle brackets added).
/// * A follow-up in thread gets `In-Reply-To` and `References` with the earlier steps'
///   Message-IDs, and `Re: ` before its subject unless it starts with `Re:` already.
/// * `List-Unsubscribe` with a `mailto:` (when an address is configured) and an https link
///   (when a [`Tracker`] is), and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
///   with the https link (RFC 8058).
/// * A text body, or text and HTML as `multipart/alternative`. With a tracker, an open
///   pixel when `track_opens` and tracked `href`s when `track_clicks` (HTML only; `mailto:`,
///   anchors and the tracker's own links are left alone).
///
/// Every header value is checked first: a line break or control character is a
/// [`MessageError::HeaderInjection`], never a silently cleaned value.
#[derive(Debug, Clone, Default)]
pub struct MessageComposer {
    tracker: Option<Tracker>,
    unsubscribe_mailto: Option<Address>,
}

/// Refuse CR, LF, NUL and every other control character (tab included) in a header value.
fn check_header(field: &str, value: &str) -> Result<(), MessageError> {
    if value.chars().any(char::is_control) {
        return Err(MessageError::HeaderInjection {
            field: field.to_owned(),
        });
    }
    Ok(())
}

fn parse_address(field: &str, value: &str) -> Result<Address, MessageError> {
    check_header(field, value)?;
    Address::from_str(value).map_err(|e| MessageError::InvalidAddress {
        field: field.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

/// Check a Message-ID (without brackets) and return it with brackets.
fn message_id(field: &str, value: &str) -> Result<String, MessageError> {
    check_header(field, value)?;
    let valid = value.split_once('@').is_some_and(|(left, right)| {
        !left.is_empty()
            && !right.is_empty()
            && left.chars().all(is_atext)
            && right.chars().all(is_atext)
            && value.len() <= 250
    });
    if !valid {
        return Err(MessageError::InvalidMessageId {
            field: field.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok(format!("<{value}>"))
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

impl MessageComposer {
    /// A composer without tracking and without a `mailto:` unsubscribe address.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sign open, click and unsubscribe links with `tracker` (builder style).
    #[must_use]
    pub fn with_tracker(mut self, tracker: Tracker) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// The address that receives `mailto:` unsubscribe requests (builder style). Its
    /// subject carries the unsubscribe token when a tracker is set.
    ///
    /// # Errors
    /// [`SmtpError::InvalidSettings`] if it is not an address.
    pub fn with_unsubscribe_mailto(mut self, address: &str) -> Result<Self, SmtpError> {
        let address = parse_address("unsubscribe_mailto", address).map_err(|e| {
            SmtpError::InvalidSettings {
                field: "unsubscribe_mailto".into(),
                reason: e.to_string(),
            }
        })?;
        self.unsubscribe_mailto = Some(address);
        Ok(self)
    }

    /// The tracker, if any (a host's web handler verifies tokens with it).
    #[must_use]
    pub fn tracker(&self) -> Option<&Tracker> {
        self.tracker.as_ref()
    }

    /// The `List-Unsubscribe` value, if there is anything to put in it, and whether it has
    /// an https link (then one-click applies).
    fn list_unsubscribe(&self, send: &TrackedSend) -> Option<(String, bool)> {
        let token = self
            .tracker
            .as_ref()
            .map(|t| t.token(TokenKind::Unsubscribe, send, None));
        let mut parts = Vec::with_capacity(2);
        if let Some(address) = &self.unsubscribe_mailto {
            match &token {
                Some(token) => {
                    parts.push(format!("<mailto:{address}?subject=unsubscribe%20{token}>"));
                }
                None => parts.push(format!("<mailto:{address}?subject=unsubscribe>")),
            }
        }
        let https = self.tracker.as_ref().map(|t| t.unsubscribe_url(send));
        let one_click = https.is_some();
        if let Some(url) = https {
            parts.push(format!("<{url}>"));
        }
        (!parts.is_empty()).then(|| (parts.join(", "), one_click))
    }

    /// The HTML body with the tracking the email asks for.
    fn tracked_html(&self, email: &OutgoingEmail, html: &str) -> String {
        let Some(tracker) = &self.tracker else {
            if email.track_opens || email.track_clicks {
                tracing::debug!(send = %email.send, "tracking asked for, but no tracker is configured");
            }
            return html.to_owned();
        };
        let send = TrackedSend::from(email);
        let mut body = if email.track_clicks {
            html::rewrite_links(html, |url| {
                (html::is_web_url(url) && !tracker.is_own_url(url) && url.len() <= MAX_TARGET_LEN)
                    .then(|| tracker.click_url(&send, url))
            })
        } else {
            html.to_owned()
        };
        if email.track_opens {
            body = html::add_open_pixel(&body, &tracker.open_url(&send));
        }
        body
    }

    /// Build the message for `email`.
    ///
    /// # Errors
    /// [`MessageError`]: header injection, an invalid address or Message-ID.
    pub fn compose(&self, email: &OutgoingEmail) -> Result<ComposedMessage, MessageError> {
        let from = parse_address("from_address", &email.from_address)?;
        let to = parse_address("to_address", &email.to_address)?;
        if let Some(name) = &email.from_name {
            check_header("from_name", name)?;
        }
        if let Some(name) = &email.to_name {
            check_header("to_name", name)?;
        }
        check_header("subject", &email.subject)?;
        let id = message_id("message_id", &email.message_id)?;
        let in_reply_to = email
            .in_reply_to
            .as_deref()
            .map(|v| message_id("in_reply_to", v))
            .transpose()?;
        let references = email
            .references
            .iter()
            .enumerate()
            .map(|(i, r)| message_id(&format!("references[{i}]"), r))
            .collect::<Result<Vec<_>, _>>()?;

        let threaded = in_reply_to.is_some() || !references.is_empty();
        let subject = if threaded && !starts_with_re(&email.subject) {
            format!("Re: {}", email.subject)
        } else {
            email.subject.clone()
        };

        let non_empty = |n: &Option<String>| n.as_ref().filter(|n| !n.trim().is_empty()).cloned();
        let mut builder = Message::builder()
            .from(Mailbox::new(non_empty(&email.from_name), from))
            .to(Mailbox::new(non_empty(&email.to_name), to))
            .subject(subject)
            .message_id(Some(id));
        if let Some(parent) = in_reply_to {
            builder = builder.in_reply_to(parent);
        }
        if !references.is_empty() {
            builder = builder.references(references.join(" "));
        }
        if let Some((value, one_click)) = self.list_unsubscribe(&TrackedSend::from(email)) {
            builder = builder.raw_header(header("List-Unsubscribe", value));
            if one_click {
                builder = builder.raw_header(header(
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
            }
        }
        let message = match &email.html_body {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                email.text_body.clone(),
                self.tracked_html(email, html),
            )),
            None => builder.singlepart(SinglePart::plain(email.text_body.clone())),
        }
        .map_err(|e| MessageError::Build(e.to_string()))?;
        Ok(ComposedMessage { message })
    }
}

fn starts_with_re(subject: &str) -> bool {
    subject
        .trim_start()
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("re:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};

    pub(crate) fn email() -> OutgoingEmail {
        OutgoingEmail {
            tenant: TenantId::from_u128(1),
            send: SendId::from_u128(2),
            enrollment: EnrollmentId::from_u128(3),
            sequence: SequenceId::from_u128(4),
            contact: ContactId::from_u128(5),
            step: 0,
            attempt: 1,
            variant: 0,
            mailbox: MailboxId::from_u128(6),
            from_address: "ana@sender.example".into(),
            from_name: Some("Ana Lima".into()),
            to_address: "bob@example.com".into(),
            to_name: Some("Bob".into()),
            subject: "Hello".into(),
            text_body: "Hi Bob".into(),
            html_body: None,
            message_id: "s0.e3@sender.example".into(),
            in_reply_to: None,
            references: Vec::new(),
            track_opens: false,
            track_clicks: false,
        }
    }

    fn text(m: &ComposedMessage) -> String {
        String::from_utf8(m.formatted()).unwrap()
    }

    #[test]
    fn first_step_has_no_thread_headers_and_no_re() {
        let m = MessageComposer::new().compose(&email()).unwrap();
        let t = text(&m);
        assert!(t.contains("Subject: Hello\r\n"), "{t}");
        assert!(t.contains("Message-ID: <s0.e3@sender.example>\r\n"));
        assert!(t.contains("From: \"Ana Lima\" <ana@sender.example>\r\n"));
        assert!(!t.contains("In-Reply-To") && !t.contains("References"));
        assert!(!t.contains("List-Unsubscribe"));
        assert!(!t.contains("multipart"));
        assert_eq!(m.envelope_from().as_deref(), Some("ana@sender.example"));
        assert_eq!(m.envelope_to(), vec!["bob@example.com".to_owned()]);
    }

    #[test]
    fn follow_up_is_prefixed_once() {
        let mut e = email();
        e.in_reply_to = Some("s0.e3@sender.example".into());
        e.references = vec!["s0.e3@sender.example".into()];
        let t = text(&MessageComposer::new().compose(&e).unwrap());
        assert!(t.contains("Subject: Re: Hello\r\n"), "{t}");
        assert!(t.contains("In-Reply-To: <s0.e3@sender.example>\r\n"));
        assert!(t.contains("References: <s0.e3@sender.example>\r\n"));
        for already in ["Re: Hello", "RE: Hello", "re:Hello", " Re: Hello"] {
            e.subject = already.into();
            let t = text(&MessageComposer::new().compose(&e).unwrap());
            assert!(
                !t.contains("Re: Re") && !t.contains("Re: RE") && !t.contains("Re: re"),
                "{t}"
            );
        }
    }

    #[test]
    fn refuses_header_injection_in_every_field() {
        type Poison = fn(&mut OutgoingEmail);
        let cases: &[(&str, Poison)] = &[
            ("subject", |e| {
                e.subject = "Hi\r\nBcc: victim@example.com".into();
            }),
            ("subject", |e| e.subject = "Hi\nX-Evil: 1".into()),
            ("from_name", |e| {
                e.from_name = Some("Ana\r\nBcc: x@example.com".into());
            }),
            ("to_name", |e| e.to_name = Some("Bob\rX: y".into())),
            ("to_address", |e| {
                e.to_address = "bob@example.com\r\nBcc: x@example.com".into();
            }),
            ("from_address", |e| {
                e.from_address = "ana@sender.example\n".into();
            }),
            ("message_id", |e| e.message_id = "a@b\r\nX: y".into()),
            ("in_reply_to", |e| e.in_reply_to = Some("a@b\0".into())),
            ("references[1]", |e| {
                e.references = vec!["a@b".into(), "c@d\r\nX: y".into()];
            }),
            ("subject", |e| e.subject = "nul\u{0}".into()),
            ("subject", |e| e.subject = "next line\u{85}".into()),
        ];
        for (field, poison) in cases {
            let mut e = email();
            poison(&mut e);
            assert_eq!(
                MessageComposer::new().compose(&e).unwrap_err(),
                MessageError::HeaderInjection {
                    field: (*field).to_owned()
                }
            );
        }
    }

    #[test]
    fn refuses_bad_addresses_and_ids() {
        let mut e = email();
        e.to_address = "bob at example.com".into();
        assert!(matches!(
            MessageComposer::new().compose(&e),
            Err(MessageError::InvalidAddress { field, .. }) if field == "to_address"
        ));
        for bad in ["<a@b>", "no-at-sign", "a b@c", "@b", "a@", "a@b@c"] {
            let mut e = email();
            e.message_id = bad.into();
            assert!(
                matches!(
                    MessageComposer::new().compose(&e),
                    Err(MessageError::InvalidMessageId { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unsubscribe_headers_follow_configuration() {
        let tracker = Tracker::new("https://t.example.com", "0123456789abcdef0123").unwrap();
        let both = MessageComposer::new()
            .with_tracker(tracker.clone())
            .with_unsubscribe_mailto("unsubscribe@sender.example")
            .unwrap();
        let t = text(&both.compose(&email()).unwrap());
        assert!(
            t.contains(
                "List-Unsubscribe: <mailto:unsubscribe@sender.example?subject=unsubscribe%20"
            ),
            "{t}"
        );
        assert!(t.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
        let mailto_only = MessageComposer::new()
            .with_unsubscribe_mailto("unsubscribe@sender.example")
            .unwrap();
        let t = text(&mailto_only.compose(&email()).unwrap());
        assert!(t.contains(
            "List-Unsubscribe: <mailto:unsubscribe@sender.example?subject=unsubscribe>\r\n"
        ));
        assert!(!t.contains("List-Unsubscribe-Post"));
        assert!(MessageComposer::new()
            .with_unsubscribe_mailto("not an address")
            .is_err());
    }

    #[test]
    fn tracking_only_when_asked() {
        let tracker = Tracker::new("https://t.example.com", "0123456789abcdef0123").unwrap();
        let composer = MessageComposer::new().with_tracker(tracker);
        let mut e = email();
        e.html_body = Some(r#"<p><a href="https://example.com/">x</a></p>"#.into());
        let t = text(&composer.compose(&e).unwrap());
        assert!(t.contains("multipart/alternative"));
        assert!(!t.contains("t.example.com/o/") && !t.contains("t.example.com/c/"));
        e.track_opens = true;
        e.track_clicks = true;
        // Undo quoted-printable's soft line breaks.
        let t = text(&composer.compose(&e).unwrap()).replace("=\r\n", "");
        assert!(t.contains("<img src=3D\"https://t.example.com/o/"), "{t}");
        assert!(t.contains("<a href=3D\"https://t.example.com/c/"), "{t}");
    }
}
