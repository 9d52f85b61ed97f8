//! From an SMTP reply to a classified [`SendError`]: 4xx transient, 5xx permanent, the
//! enhanced status code (RFC 3463) kept, and a category that tells the engine whose fault it
//! was (the contact's address, or the mailbox: credentials, rate, connection).
//!
//! The enhanced code decides first; the reply code and the reply's wording decide when the
//! server gave no enhanced code or a generic one. The same function serves for replies the
//! transport meets and for bounces (DSNs) the host parses later.

use sequence_core::transport::{FailureCategory, SendError};

/// The enhanced status code (`class.subject.detail`, RFC 3463) that a reply's text starts
/// with, if any: `"5.1.1 User unknown"` gives `Some("5.1.1")`.
#[must_use]
pub fn enhanced_status_code(text: &str) -> Option<&str> {
    let word = text.split_whitespace().next()?;
    parse_enhanced(word).map(|_| word)
}

/// `class.subject.detail` as numbers, when `code` is one (class 2, 4 or 5; subject and
/// detail of 1 to 3 digits).
fn parse_enhanced(code: &str) -> Option<(u8, u16, u16)> {
    let mut parts = code.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let digits = |s: &str| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !matches!(class, "2" | "4" | "5") || !digits(subject) || !digits(detail) {
        return None;
    }
    Some((
        class.parse().ok()?,
        subject.parse().ok()?,
        detail.parse().ok()?,
    ))
}

fn mentions(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

const RATE_WORDS: &[&str] = &[
    "rate limit",
    "rate-limit",
    "ratelimit",
    "too many",
    "throttl",
    "slow down",
    "sending limit",
    "sending quota",
    "daily limit",
    "daily user sending",
    "exceeded the rate",
    "unusual rate",
];
const FULL_WORDS: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "over quota",
    "quota exceeded",
    "exceeded storage",
    "insufficient storage",
    "out of storage",
    "disk full",
];
const RECIPIENT_WORDS: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "no such mailbox",
    "no such recipient",
    "does not exist",
    "doesn't exist",
    "invalid recipient",
    "unknown recipient",
    "recipient unknown",
    "recipient not found",
    "user not found",
    "mailbox not found",
    "mailbox unavailable",
    "address rejected",
    "not a valid mailbox",
    "no mailbox",
];
const POLICY_WORDS: &[&str] = &[
    "spam",
    "blocked",
    "blacklist",
    "blocklist",
    "denylist",
    "policy",
    "reputation",
    "not authorized",
    "unauthenticated",
    "dmarc",
    "spf",
    "dkim",
    "junk",
];
const AUTH_WORDS: &[&str] = &["authentication", "auth ", "credentials", "password"];

/// The category of a negative reply. Order matters: credentials, then what the enhanced
/// code says about the recipient, then rate wording, then the rest of the enhanced code,
/// then the reply code and its wording.
#[must_use]
pub(crate) fn category(code: u16, enhanced: Option<&str>, text: &str) -> FailureCategory {
    use FailureCategory as C;
    let text = text.to_ascii_lowercase();
    let permanent = code >= 500;
    let parts = enhanced.and_then(parse_enhanced);
    let (subject, detail) = parts.map_or((0, 0), |(_, s, d)| (s, d));

    // Credentials refused or required.
    if matches!(code, 530 | 534 | 535 | 538)
        || (subject == 7 && matches!(detail, 8 | 9 | 11 | 12 | 13))
        || (code == 454 && mentions(&text, AUTH_WORDS))
    {
        return C::AuthFailure;
    }
    if parts.is_some() {
        match (subject, detail) {
            // Bad sender address (X.1.7, X.1.8): the mailbox's problem, not the contact's.
            (1, 7 | 8) => return C::InvalidMessage,
            (1, _) if permanent => return C::InvalidRecipient,
            (2, 2) => return C::MailboxFull,
            (2, 1) if permanent => return C::InvalidRecipient,
            (2, 3) | (3, 4) | (6, _) => return C::InvalidMessage,
            _ => {}
        }
    }
    if mentions(&text, RATE_WORDS) {
        return C::RateLimited;
    }
    if parts.is_some() {
        match (subject, detail) {
            (4, 4) if permanent => return C::InvalidRecipient,
            (7, _) if permanent => return C::PolicyBlock,
            // Greylisting and temporary policy refusals: the server asks to come back later.
            (7, _) => return C::RateLimited,
            _ => {}
        }
    }
    match code {
        421 => C::Connection,
        452 | 552 if mentions(&text, FULL_WORDS) || code == 552 => C::MailboxFull,
        551 | 553 => C::InvalidRecipient,
        _ if mentions(&text, FULL_WORDS) => C::MailboxFull,
        _ if mentions(&text, POLICY_WORDS) => C::PolicyBlock,
        _ if mentions(&text, RECIPIENT_WORDS) => C::InvalidRecipient,
        554 => C::PolicyBlock,
        _ => C::Other,
    }
}

/// Classify a negative SMTP reply: 4xx (and anything below 500) transient, 5xx permanent,
/// with the reply code, the enhanced code when there is one (taken from `text` when
/// `enhanced` is `None`), and a category:
///
/// | reply | category | whose fault |
/// | --- | --- | --- |
/// | 530, 534, 535, 538, X.7.8, X.7.9, 454 with auth wording | `AuthFailure` | mailbox |
/// | rate wording ("too many", "rate limit", ...), transient X.7.x | `RateLimited` | mailbox |
/// | 421 otherwise | `Connection` | mailbox |
/// | X.1.7, X.1.8 (sender address), X.3.4 (too big), X.6.x | `InvalidMessage` | mailbox |
/// | 5.1.x, 5.2.1, 5.4.4, 551, 553, "user unknown" | `InvalidRecipient` | contact |
/// | X.2.2, 552, "mailbox full" | `MailboxFull` | contact |
/// | 5.7.x, 554, "spam", "blocked", "policy" | `PolicyBlock` | neither: the enrollment ends, the contact is not bounced |
/// | anything else | `Other` | contact when permanent |
///
/// ```
/// use sequence_core::transport::FailureCategory;
/// use transport_smtp::classify_reply;
///
/// let e = classify_reply(550, None, "5.1.1 <bob@example.com>: User unknown");
/// assert!(e.is_permanent() && e.is_contact_fault());
/// assert_eq!(e.category(), FailureCategory::InvalidRecipient);
/// assert_eq!((e.code(), e.enhanced_code()), (Some(550), Some("5.1.1")));
///
/// let e = classify_reply(421, None, "4.7.0 Too many messages, slow down");
/// assert!(e.is_transient() && e.is_mailbox_fault());
/// assert_eq!(e.category(), FailureCategory::RateLimited);
/// ```
#[must_use]
pub fn classify_reply(code: u16, enhanced: Option<&str>, text: &str) -> SendError {
    let enhanced = enhanced.or_else(|| enhanced_status_code(text));
    let category = category(code, enhanced, text);
    let error = if code >= 500 {
        SendError::permanent(category, text)
    } else {
        SendError::transient(category, text)
    };
    error.with_codes(Some(code), enhanced.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureCategory as C;

    #[test]
    fn finds_enhanced_codes() {
        assert_eq!(enhanced_status_code("5.1.1 User unknown"), Some("5.1.1"));
        assert_eq!(enhanced_status_code("4.7.28 slow"), Some("4.7.28"));
        assert_eq!(enhanced_status_code("  2.0.0 Ok"), Some("2.0.0"));
        assert_eq!(enhanced_status_code("User unknown"), None);
        assert_eq!(enhanced_status_code("5.1 half"), None);
        assert_eq!(enhanced_status_code("3.1.1 bad class"), None);
        assert_eq!(enhanced_status_code("5.1234.1 too long"), None);
        assert_eq!(enhanced_status_code(""), None);
    }

    #[test]
    fn classifies_common_replies() {
        let cases: &[(u16, &str, bool, C, bool)] = &[
            // code, text, permanent, category, mailbox fault
            (550, "5.1.1 User unknown", true, C::InvalidRecipient, false),
            (550, "No such user here", true, C::InvalidRecipient, false),
            (
                553,
                "mailbox name not allowed",
                true,
                C::InvalidRecipient,
                false,
            ),
            (552, "5.2.2 Mailbox full", true, C::MailboxFull, false),
            (452, "4.2.2 Over quota", false, C::MailboxFull, false),
            (452, "Insufficient storage", false, C::MailboxFull, false),
            (
                550,
                "5.7.1 Message rejected as spam",
                true,
                C::PolicyBlock,
                false,
            ),
            (554, "Transaction failed", true, C::PolicyBlock, false),
            (
                550,
                "5.7.26 Unauthenticated email is not accepted",
                true,
                C::PolicyBlock,
                false,
            ),
            (
                535,
                "5.7.8 Authentication credentials invalid",
                true,
                C::AuthFailure,
                true,
            ),
            (
                530,
                "5.7.0 Authentication required",
                true,
                C::AuthFailure,
                true,
            ),
            (
                454,
                "4.7.0 Temporary authentication failure",
                false,
                C::AuthFailure,
                true,
            ),
            (
                421,
                "4.7.0 Too many connections, slow down",
                false,
                C::RateLimited,
                true,
            ),
            (
                421,
                "Service not available, closing channel",
                false,
                C::Connection,
                true,
            ),
            (
                450,
                "4.7.1 Greylisted, try again later",
                false,
                C::RateLimited,
                true,
            ),
            (
                451,
                "4.7.28 Unusual rate of mail",
                false,
                C::RateLimited,
                true,
            ),
            (
                550,
                "5.4.5 Daily user sending quota exceeded",
                true,
                C::RateLimited,
                true,
            ),
            (450, "4.2.1 Mailbox busy", false, C::Other, false),
            (
                451,
                "4.3.0 Local error in processing",
                false,
                C::Other,
                false,
            ),
            (
                552,
                "5.3.4 Message size exceeds fixed limit",
                true,
                C::InvalidMessage,
                true,
            ),
            (
                553,
                "5.1.8 Bad sender address domain",
                true,
                C::InvalidMessage,
                true,
            ),
            (
                550,
                "5.4.4 Unable to route",
                true,
                C::InvalidRecipient,
                false,
            ),
            (500, "5.5.2 Syntax error", true, C::Other, false),
        ];
        for &(code, text, permanent, category, mailbox) in cases {
            let e = classify_reply(code, None, text);
            assert_eq!(e.is_permanent(), permanent, "{code} {text}");
            assert_eq!(e.category(), category, "{code} {text}");
            assert_eq!(e.is_mailbox_fault(), mailbox, "{code} {text}");
            assert_eq!(
                e.is_contact_fault(),
                permanent && !mailbox && category != C::PolicyBlock,
                "{code} {text}"
            );
            assert_eq!(e.code(), Some(code));
            assert_eq!(e.enhanced_code(), enhanced_status_code(text));
            assert_eq!(e.message(), text);
        }
    }

    #[test]
    fn explicit_enhanced_code_wins_over_text() {
        let e = classify_reply(550, Some("5.2.2"), "rejected");
        assert_eq!(e.category(), C::MailboxFull);
        assert_eq!(e.enhanced_code(), Some("5.2.2"));
    }
}
