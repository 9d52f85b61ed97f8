//! Validation of untrusted input. Each function returns every problem found, each with the
//! path of its field (e.g. `steps[2].delay.amount`). Validation lives here, once: the
//! constructors and transitions of the domain call it, and so do the backends and tools
//! that take input from outside.

use crate::contact::Contact;
use crate::error::ValidationErrors;
use crate::mailbox::Mailbox;
use crate::sequence::{Sequence, Step};

/// Check an email address (syntax, length); `path` names the field in the problem.
///
/// # Errors
/// One problem at `path` when the address is not acceptable.
pub fn validate_email(path: &str, address: &str) -> Result<(), ValidationErrors> {
    Ok(())
}

/// Check a contact.
///
/// # Errors
/// Every problem found.
pub fn validate_contact(contact: &Contact) -> Result<(), ValidationErrors> {
    Ok(())
}

/// Check a mailbox.
///
/// # Errors
/// Every problem found.
pub fn validate_mailbox(mailbox: &Mailbox) -> Result<(), ValidationErrors> {
    Ok(())
}

/// Check a step (paths relative to the step).
///
/// # Errors
/// Every problem found.
pub fn validate_step(step: &Step) -> Result<(), ValidationErrors> {
    Ok(())
}

/// Check a sequence and its steps.
///
/// # Errors
/// Every problem found.
pub fn validate_sequence(sequence: &Sequence) -> Result<(), ValidationErrors> {
    Ok(())
}
