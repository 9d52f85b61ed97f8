//! Validation of untrusted input. Each function returns every problem found, each with the
//! path of its field (e.g. `steps[2].delay.amount`). Validation lives here, once: the
//! constructors and transitions of the domain call it, and so do the backends and tools
//! that take input from outside.
//!
//! ```
//! use sequence_core::contact::Contact;
//! use sequence_core::ids::TenantId;
//!
//! let mut contact = Contact::new(TenantId::new(), "bo@acme.example")?;
//! contact.email = "not an address".into();
//! contact.first_name = Some("Bo\r\nBcc: everyone@example.com".into());
//! let err = contact.validate().unwrap_err();
//! let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
//! assert_eq!(paths, ["email", "first_name"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use email_address::{EmailAddress, Options};

use crate::condition::{Condition, StepCondition};
use crate::contact::{Contact, FieldValue};
use crate::error::{Problems, ValidationErrors};
use crate::mailbox::Mailbox;
use crate::sequence::{Sequence, Step};
use crate::template::check_syntax;
use crate::time::{DelayUnit, LocalTime, WeeklySchedule};

/// Longest address accepted (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest name, company, tag, subject line or display name accepted.
pub const MAX_SHORT_TEXT: usize = 512;
/// Longest template body accepted, in bytes.
pub const MAX_BODY_LEN: usize = 512 * 1024;
/// Highest daily limit accepted for one mailbox.
pub const MAX_DAILY_LIMIT: u32 = 100_000;
/// Longest minimum gap accepted, in seconds (one day).
pub const MAX_GAP_SECONDS: u32 = 86_400;
/// Longest step delay accepted, per unit.
const MAX_DELAY: [(DelayUnit, u32); 4] = [
    (DelayUnit::Minutes, 60 * 24 * 3650),
    (DelayUnit::Hours, 24 * 3650),
    (DelayUnit::Days, 3650),
    (DelayUnit::BusinessDays, 2600),
];
/// Most steps in one sequence.
pub const MAX_STEPS: usize = 100;
/// Why text with a NUL character is refused, wherever it may have line breaks: no mail
/// carries one, and PostgreSQL refuses it in `text` and `jsonb`.
const NUL_REASON: &str = "contains a NUL character";

/// Longest text from outside (a server's answer) that the domain keeps, in characters.
pub const MAX_REPORTED_LEN: usize = 1_000;

/// Text from outside (a server's answer, a reason built from it) as one readable, bounded
/// line, as the domain keeps it in sends, events and logs: each run of control
/// characters (line breaks, NUL) becomes one space, and the end is cut at
/// [`MAX_REPORTED_LEN`] characters.
#[must_use]
pub fn one_line(text: String) -> String {
    if text.len() <= MAX_REPORTED_LEN && !text.chars().any(char::is_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len().min(MAX_REPORTED_LEN));
    for part in text.split(char::is_control).filter(|p| !p.is_empty()) {
        if !out.is_empty() && !out.ends_with(' ') && !part.starts_with(' ') {
            out.push(' ');
        }
        out.push_str(part);
    }
    if let Some((cut, _)) = out.char_indices().nth(MAX_REPORTED_LEN) {
        out.truncate(cut);
    }
    out.trim_end().to_owned()
}

/// Check an email address (syntax, length); `path` names the field in the problem.
///
/// # Errors
/// One problem at `path` when the address is not acceptable.
pub fn validate_email(path: &str, address: &str) -> Result<(), ValidationErrors> {
    let mut p = Problems::new();
    check_email(&mut p, path, address);
    p.finish()
}

fn check_email(p: &mut Problems, path: &str, address: &str) {
    if address.is_empty() {
        p.push(path, "is required");
    } else if address.len() > MAX_EMAIL_LEN {
        p.push(path, format!("longer than {MAX_EMAIL_LEN} characters"));
    } else if address.chars().any(char::is_control) {
        p.push(path, "contains a control character (line break?)");
    } else {
        // A bare address with at least one dot in the domain: no display names, no
        // `user@localhost`, no domain literals in mail that goes out to people.
        let options = Options::default()
            .without_display_text()
            .without_domain_literal()
            .with_minimum_sub_domains(2);
        if let Err(e) = EmailAddress::parse_with_options(address, options) {
            p.push(path, format!("{address:?} is not an email address ({e})"));
        }
    }
}

/// Text that ends up in a header or a log line: no control characters, bounded length.
fn check_line(p: &mut Problems, path: &str, text: &str, required: bool) {
    if required && text.trim().is_empty() {
        p.push(path, "is required");
    } else if text.chars().count() > MAX_SHORT_TEXT {
        p.push(path, format!("longer than {MAX_SHORT_TEXT} characters"));
    } else if text.chars().any(char::is_control) {
        p.push(path, "contains a control character (line break?)");
    }
}

fn check_optional_line(p: &mut Problems, path: &str, text: Option<&str>) {
    if let Some(text) = text {
        check_line(p, path, text, false);
    }
}

/// A name a template can use as a variable: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Check a contact.
///
/// # Errors
/// Every problem found.
pub fn validate_contact(contact: &Contact) -> Result<(), ValidationErrors> {
    let mut p = Problems::new();
    check_email(&mut p, "email", &contact.email);
    check_optional_line(&mut p, "first_name", contact.first_name.as_deref());
    check_optional_line(&mut p, "last_name", contact.last_name.as_deref());
    check_optional_line(&mut p, "company", contact.company.as_deref());
    check_optional_line(&mut p, "phone", contact.phone.as_deref());
    for tag in &contact.tags {
        check_line(&mut p, &format!("tags[{tag:?}]"), tag, true);
    }
    for (name, value) in &contact.custom_fields {
        let path = format!("custom_fields.{name}");
        if !is_identifier(name) {
            p.push(
                &path,
                "field names are letters, digits and `_`, not starting with a digit",
            );
        }
        match value {
            FieldValue::Number(n) if !n.is_finite() => p.push(&path, "must be a finite number"),
            FieldValue::Text(s) if s.len() > MAX_BODY_LEN => {
                p.push(&path, format!("longer than {MAX_BODY_LEN} bytes"));
            }
            FieldValue::Text(s) if s.contains('\0') => p.push(&path, NUL_REASON),
            _ => {}
        }
    }
    p.finish()
}

/// Check a weekly schedule; `path` names it.
fn check_schedule(p: &mut Problems, path: &str, schedule: &WeeklySchedule) {
    if let Some(windows) = schedule.window_list() {
        for (i, w) in windows.iter().enumerate() {
            let wp = format!("{path}[{i}]");
            if w.days.is_empty() {
                p.push(format!("{wp}.days"), "must name at least one weekday");
            }
            if w.start == w.end {
                p.push(format!("{wp}.end"), "must differ from start");
            }
            if w.start == LocalTime::END_OF_DAY {
                p.push(format!("{wp}.start"), "24:00 is only allowed as an end");
            }
        }
    }
}

/// Check a mailbox.
///
/// # Errors
/// Every problem found.
pub fn validate_mailbox(mailbox: &Mailbox) -> Result<(), ValidationErrors> {
    let mut p = Problems::new();
    check_email(&mut p, "address", &mailbox.address);
    check_optional_line(&mut p, "display_name", mailbox.display_name.as_deref());
    if mailbox.daily_limit > MAX_DAILY_LIMIT {
        p.push("daily_limit", format!("must be at most {MAX_DAILY_LIMIT}"));
    }
    if mailbox.min_gap_seconds > MAX_GAP_SECONDS {
        p.push(
            "min_gap_seconds",
            format!("must be at most {MAX_GAP_SECONDS} (one day)"),
        );
    }
    check_schedule(&mut p, "windows", &mailbox.schedule);
    if let Some(w) = &mailbox.warmup {
        if w.start > MAX_DAILY_LIMIT {
            p.push("warmup.start", format!("must be at most {MAX_DAILY_LIMIT}"));
        }
        if w.increment > MAX_DAILY_LIMIT {
            p.push(
                "warmup.increment",
                format!("must be at most {MAX_DAILY_LIMIT}"),
            );
        }
    }
    p.finish()
}

fn check_template(p: &mut Problems, path: &str, source: &str, one_line: bool) {
    if source.len() > MAX_BODY_LEN {
        p.push(path, format!("longer than {MAX_BODY_LEN} bytes"));
        return;
    }
    if one_line && source.chars().any(char::is_control) {
        p.push(path, "contains a control character (line break?)");
    } else if source.contains('\0') {
        p.push(path, NUL_REASON);
    }
    if let Err(e) = check_syntax(source) {
        p.push(path, e.to_string());
    }
}

fn check_condition(p: &mut Problems, path: &str, condition: &Condition) {
    match condition {
        Condition::HasTag(tag) => check_line(p, &format!("{path}.has_tag"), tag, true),
        Condition::Field { field, value, .. } => {
            if !is_identifier(field) {
                p.push(
                    format!("{path}.field.field"),
                    "field names are letters, digits and `_`, not starting with a digit",
                );
            }
            if matches!(value, FieldValue::Number(n) if !n.is_finite()) {
                p.push(format!("{path}.field.value"), "must be a finite number");
            }
            if matches!(value, FieldValue::Text(t) if t.contains('\0')) {
                p.push(format!("{path}.field.value"), NUL_REASON);
            }
        }
        Condition::LastActivity(_) => {}
        Condition::All(inner) | Condition::Any(inner) => {
            let key = if matches!(condition, Condition::All(_)) {
                "all"
            } else {
                "any"
            };
            for (i, c) in inner.iter().enumerate() {
                check_condition(p, &format!("{path}.{key}[{i}]"), c);
            }
        }
        Condition::Not(inner) => check_condition(p, &format!("{path}.not"), inner),
    }
}

/// Check a step (paths relative to the step).
///
/// # Errors
/// Every problem found.
pub fn validate_step(step: &Step) -> Result<(), ValidationErrors> {
    let mut p = Problems::new();
    check_line(&mut p, "name", &step.name, false);
    if let Some((_, max)) = MAX_DELAY.iter().find(|(u, _)| *u == step.delay.unit) {
        if step.delay.amount > *max {
            p.push("delay.amount", format!("must be at most {max}"));
        }
    }
    if step.subject.trim().is_empty() {
        p.push("subject", "is required");
    }
    check_template(&mut p, "subject", &step.subject, true);
    check_template(&mut p, "body", &step.body, false);
    if let Some(html) = &step.html_body {
        check_template(&mut p, "html_body", html, false);
    }
    if !step.variants.is_empty() && step.weight == 0 {
        p.push(
            "weight",
            "must be greater than 0 when the step has variants",
        );
    }
    for (i, v) in step.variants.iter().enumerate() {
        let vp = format!("variants[{i}]");
        check_line(&mut p, &format!("{vp}.name"), &v.name, true);
        if v.weight == 0 {
            p.push(format!("{vp}.weight"), "must be greater than 0");
        }
        if v.subject.trim().is_empty() {
            p.push(format!("{vp}.subject"), "is required");
        }
        check_template(&mut p, &format!("{vp}.subject"), &v.subject, true);
        check_template(&mut p, &format!("{vp}.body"), &v.body, false);
        if let Some(html) = &v.html_body {
            check_template(&mut p, &format!("{vp}.html_body"), html, false);
        }
    }
    if let Some(StepCondition { condition, .. }) = &step.condition {
        check_condition(&mut p, "condition", condition);
    }
    p.finish()
}

/// Check a sequence and its steps.
///
/// # Errors
/// Every problem found.
pub fn validate_sequence(sequence: &Sequence) -> Result<(), ValidationErrors> {
    let mut p = Problems::new();
    check_line(&mut p, "name", &sequence.name, true);
    if sequence.description.len() > MAX_BODY_LEN {
        p.push("description", format!("longer than {MAX_BODY_LEN} bytes"));
    }
    let steps = sequence.steps();
    if steps.len() > MAX_STEPS {
        p.push("steps", format!("at most {MAX_STEPS} steps"));
    }
    for (i, step) in steps.iter().enumerate() {
        let path = format!("steps[{i}]");
        if usize::try_from(step.order).ok() != Some(i) {
            p.push(
                format!("{path}.order"),
                format!(
                    "is {} but must be {i}: orders are unique and contiguous from 0",
                    step.order
                ),
            );
        }
        if let Err(e) = validate_step(step) {
            p.extend_prefixed(&path, e);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, m) in sequence.mailbox_pool.iter().enumerate() {
        if !seen.insert(*m) {
            p.push(format!("mailbox_pool[{i}]"), "mailbox listed twice");
        }
    }
    if let Some(windows) = &sequence.recipient_windows {
        check_schedule(&mut p, "recipient_windows", windows);
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::ids::TenantId;
    use crate::time::{Delay, SendWindow, WeekdaySet};

    fn paths(e: &ValidationErrors) -> Vec<&str> {
        e.problems.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn addresses() {
        for ok in ["bo@acme.example", "first.last+tag@sub.acme.co.uk"] {
            assert!(validate_email("email", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "bo",
            "bo@",
            "@acme.example",
            "bo@localhost",
            "Bo <bo@acme.example>",
            "bo@acme.example\r\nBcc: x@y.example",
            "bo@[127.0.0.1]",
        ] {
            let err = validate_email("contacts[0].email", bad).unwrap_err();
            assert_eq!(paths(&err), ["contacts[0].email"], "{bad:?}");
        }
        let long = format!("{}@acme.example", "a".repeat(250));
        assert!(validate_email("email", &long).is_err());
    }

    #[test]
    fn contacts_list_every_problem() {
        let mut c = Contact::new(TenantId::from_u128(1), "bo@acme.example").unwrap();
        c.email = "nope".into();
        c.company = Some("Acme\nInc".into());
        c.tags.insert(" ".into());
        c.custom_fields
            .insert("1st".into(), FieldValue::Number(f64::NAN));
        let err = validate_contact(&c).unwrap_err();
        assert_eq!(
            paths(&err),
            [
                "email",
                "company",
                "tags[\" \"]",
                "custom_fields.1st",
                "custom_fields.1st"
            ]
        );
    }

    /// A NUL character is never valid text: no mail header or body carries it, and
    /// PostgreSQL refuses it in `text` and `jsonb`, so it would fail a whole batch there.
    #[test]
    fn nul_characters_are_refused_in_multi_line_text_too() {
        let mut c = Contact::new(TenantId::from_u128(1), "bo@acme.example").unwrap();
        c.custom_fields
            .insert("note".into(), FieldValue::Text("a\0b".into()));
        c.custom_fields
            .insert("ok".into(), FieldValue::Text("two\nlines".into()));
        let err = validate_contact(&c).unwrap_err();
        assert_eq!(paths(&err), ["custom_fields.note"]);
        assert!(err.problems[0].reason.contains("NUL"), "{err}");

        let mut step = Step::new(Delay::new(0, DelayUnit::Days), "Hi", "line one\n\0");
        step.html_body = Some("<p>\0</p>".into());
        let err = validate_step(&step).unwrap_err();
        assert_eq!(paths(&err), ["body", "html_body"]);
    }

    #[test]
    fn mailboxes() {
        let mut m =
            Mailbox::new(TenantId::from_u128(1), "ana@sender.example", chrono_tz::UTC).unwrap();
        m.daily_limit = MAX_DAILY_LIMIT + 1;
        m.min_gap_seconds = MAX_GAP_SECONDS + 1;
        m.display_name = Some("Ana\r\n".into());
        m.schedule = WeeklySchedule::windows(vec![SendWindow::new(
            WeekdaySet::EMPTY,
            LocalTime::from_hm(9, 0).unwrap(),
            LocalTime::from_hm(17, 0).unwrap(),
        )
        .unwrap()]);
        let err = validate_mailbox(&m).unwrap_err();
        assert_eq!(
            paths(&err),
            [
                "display_name",
                "daily_limit",
                "min_gap_seconds",
                "windows[0].days"
            ]
        );
        assert!(Mailbox::new(TenantId::from_u128(1), "nope", chrono_tz::UTC).is_err());
    }

    #[test]
    fn steps_and_sequences() {
        let now = Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0).unwrap();
        assert!(Sequence::new(TenantId::from_u128(1), " ", now).is_err());
        let mut s = Sequence::new(TenantId::from_u128(1), "Welcome", now).unwrap();
        let err = s
            .add_step(Step::new(
                Delay::new(5000, DelayUnit::Days),
                "Hi {{ first_name",
                "{% if %}",
            ))
            .unwrap_err();
        let crate::error::TransitionError::Invalid(err) = err else {
            panic!("expected a validation error, got {err:?}")
        };
        assert_eq!(
            paths(&err),
            ["steps[0].delay.amount", "steps[0].subject", "steps[0].body"]
        );
        let err = s
            .add_step(Step::new(Delay::ZERO, "Line\nbreak", "ok"))
            .unwrap_err();
        assert!(err.to_string().contains("steps[0].subject"), "{err}");
        assert!(s.add_step(Step::new(Delay::ZERO, "Hi", "Hello")).is_ok());
        assert!(s.validate().is_ok());
    }
}
