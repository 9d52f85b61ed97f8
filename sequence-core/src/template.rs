//! Subject and body templates, rendered with minijinja in strict mode.
//!
//! Variables come from the contact: `first_name`, `last_name`, `company`, `email`, `phone`
//! and every custom field (`{{ plan }}` or `{{ fields.plan }}`). A missing value is an error
//! unless it has a default: `{{ first_name | default("there") }}`. In HTML bodies every
//! value is HTML-escaped. A malformed template is refused when it is checked, with its line.

use crate::contact::Contact;

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template does not parse.
    #[error("template syntax error at line {line}: {reason}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Rendering failed (an undefined variable without a default, a bad filter call).
    #[error("template render error at line {line}: {reason}")]
    Render {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// How rendered values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Escape {
    /// Text (subjects, text bodies): values as they are.
    None,
    /// HTML bodies: values HTML-escaped.
    Html,
}

/// Renders templates, caching each parsed source. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Renderer {
    _private: (),
}

impl Renderer {
    /// A renderer with an empty cache.
    #[must_use]
    pub fn new() -> Self {
        todo!("helper: templates")
    }

    /// Check that `source` parses.
    ///
    /// # Errors
    /// [`TemplateError::Syntax`] with the line.
    pub fn check(&self, source: &str) -> Result<(), TemplateError> {
        todo!("helper: templates")
    }

    /// Render `source` for `contact`.
    ///
    /// # Errors
    /// A syntax or render error with its line.
    pub fn render(
        &self,
        source: &str,
        contact: &Contact,
        escape: Escape,
    ) -> Result<String, TemplateError> {
        todo!("helper: templates")
    }
}
