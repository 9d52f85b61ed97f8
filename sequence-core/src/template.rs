//! Subject and body templates, rendered with minijinja in strict mode.
//!
//! Variables come from the contact: `first_name`, `last_name`, `company`, `email`, `phone`
//! and every custom field (`{{ plan }}` or `{{ fields.plan }}`; a custom field never hides
//! one of the contact's own fields). A contact field that is not set renders as an empty
//! string; a name that is not a variable at all (a typo such as `{{ frist_name }}`) is an
//! error, because the environment is strict. `default` gives a fallback both for names that
//! are not defined and for values that are empty: `{{ first_name | default("there") }}`.
//! In HTML bodies every value is HTML-escaped. A malformed template is refused when it is
//! checked, with its line.
//!
//! ```
//! use sequence_core::contact::Contact;
//! use sequence_core::ids::TenantId;
//! use sequence_core::template::{Escape, Renderer};
//!
//! let renderer = Renderer::new();
//! let contact = Contact::new(TenantId::new(), "bo@acme.example")?.with_company("Acme & Co");
//! let subject = renderer.render("Hi {{ first_name | default('there') }}", &contact, Escape::None)?;
//! assert_eq!(subject, "Hi there");
//! let html = renderer.render("<p>{{ company }}</p>", &contact, Escape::Html)?;
//! assert_eq!(html, "<p>Acme &amp; Co</p>");
//! assert!(renderer.check("Hi {{ first_name").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::sync::RwLock;

use minijinja::value::{Rest, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use crate::contact::{Contact, FieldValue};

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

impl TemplateError {
    fn from_minijinja(e: &minijinja::Error) -> Self {
        let line = e.line().unwrap_or(1);
        let reason = match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        };
        if e.kind() == ErrorKind::SyntaxError {
            Self::Syntax { line, reason }
        } else {
            Self::Render { line, reason }
        }
    }

    /// The 1-based line of the problem.
    #[must_use]
    pub fn line(&self) -> usize {
        match self {
            Self::Syntax { line, .. } | Self::Render { line, .. } => *line,
        }
    }
}

/// How rendered values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Escape {
    /// Text (subjects, text bodies): values as they are.
    None,
    /// HTML bodies: values HTML-escaped.
    Html,
}

impl Escape {
    /// The prefix of a cached template's name; the auto-escape callback reads it back.
    fn prefix(self) -> &'static str {
        match self {
            Self::None => "text:",
            Self::Html => "html:",
        }
    }
}

/// The most parsed templates kept; past it the cache starts again (sequences have a few
/// dozen templates, so this only bounds memory against unbounded distinct sources).
const CACHE_LIMIT: usize = 4_096;

/// Renders templates, caching each parsed source. Cheap to share behind an `Arc`.
pub struct Renderer {
    env: RwLock<Environment<'static>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

/// `default(value, fallback)`: the fallback when the value is undefined, none or empty.
#[expect(
    clippy::needless_pass_by_value,
    reason = "minijinja's filter signature takes `Rest` by value"
)]
fn default_filter(value: &Value, rest: Rest<Value>) -> Value {
    let missing = value.is_undefined()
        || value.is_none()
        || value.as_str().is_some_and(|s| s.trim().is_empty());
    if missing {
        rest.first().cloned().unwrap_or_else(|| Value::from(""))
    } else {
        value.clone()
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.starts_with(Escape::Html.prefix()) {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.add_filter("default", default_filter);
    env.add_filter("d", default_filter);
    env
}

fn field_value(value: &FieldValue) -> Value {
    match value {
        FieldValue::Bool(b) => Value::from(*b),
        FieldValue::Number(n) => {
            // Whole numbers print without a trailing `.0`.
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::from(*n as i64)
            } else {
                Value::from(*n)
            }
        }
        FieldValue::Text(s) => Value::from(s.as_str()),
    }
}

/// The variables a template sees for `contact`.
fn context(contact: &Contact) -> Value {
    let text = |v: &Option<String>| Value::from(v.as_deref().unwrap_or(""));
    let fields: BTreeMap<&str, Value> = contact
        .custom_fields
        .iter()
        .map(|(k, v)| (k.as_str(), field_value(v)))
        .collect();
    let mut vars: BTreeMap<&str, Value> = fields.clone();
    vars.insert("first_name", text(&contact.first_name));
    vars.insert("last_name", text(&contact.last_name));
    vars.insert("company", text(&contact.company));
    vars.insert("phone", text(&contact.phone));
    vars.insert("email", Value::from(contact.email.as_str()));
    vars.insert("fields", Value::from_serialize(&fields));
    Value::from_serialize(&vars)
}

impl Renderer {
    /// A renderer with an empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self {
            env: RwLock::new(environment()),
        }
    }

    /// Check that `source` parses.
    ///
    /// # Errors
    /// [`TemplateError::Syntax`] with the line.
    pub fn check(&self, source: &str) -> Result<(), TemplateError> {
        check_syntax(source)
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
        let name = format!("{}{source}", escape.prefix());
        let ctx = context(contact);
        {
            let env = self
                .env
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Ok(template) = env.get_template(&name) {
                return template
                    .render(&ctx)
                    .map_err(|e| TemplateError::from_minijinja(&e));
            }
        }
        let mut env = self
            .env
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if env.templates().count() >= CACHE_LIMIT {
            *env = environment();
        }
        env.add_template_owned(name.clone(), source.to_owned())
            .map_err(|e| TemplateError::from_minijinja(&e))?;
        let template = env
            .get_template(&name)
            .map_err(|e| TemplateError::from_minijinja(&e))?;
        template
            .render(&ctx)
            .map_err(|e| TemplateError::from_minijinja(&e))
    }
}

/// Check that `source` parses as a template (no contact needed).
///
/// # Errors
/// [`TemplateError::Syntax`] with the line.
pub fn check_syntax(source: &str) -> Result<(), TemplateError> {
    let env = environment();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| TemplateError::from_minijinja(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;

    fn bo() -> Contact {
        Contact::new(TenantId::from_u128(1), "bo@acme.example")
            .unwrap()
            .with_name("Bo", "Li")
            .with_company("Acme <Labs> & \"Co\"")
            .with_field("plan", FieldValue::Text("pro".into()))
            .with_field("seats", FieldValue::Number(12.0))
            .with_field("first_name", FieldValue::Text("shadow".into()))
    }

    #[test]
    fn contact_fields_and_custom_fields_are_variables() {
        let r = Renderer::new();
        let out = r
            .render(
                "{{first_name}} {{ last_name }} of {{company}} <{{email}}> on {{ plan }}/{{ fields.plan }}, {{ seats }} seats",
                &bo(),
                Escape::None,
            )
            .unwrap();
        assert_eq!(
            out,
            "Bo Li of Acme <Labs> & \"Co\" <bo@acme.example> on pro/pro, 12 seats"
        );
    }

    #[test]
    fn a_custom_field_never_hides_a_contact_field() {
        let r = Renderer::new();
        assert_eq!(
            r.render(
                "{{ first_name }}/{{ fields.first_name }}",
                &bo(),
                Escape::None
            )
            .unwrap(),
            "Bo/shadow"
        );
    }

    #[test]
    fn missing_values_are_empty_and_defaults_fill_them() {
        let r = Renderer::new();
        let anon = Contact::new(TenantId::from_u128(1), "x@y.example").unwrap();
        assert_eq!(
            r.render("Hi {{first_name}}!", &anon, Escape::None).unwrap(),
            "Hi !"
        );
        assert_eq!(
            r.render(
                "Hi {{ first_name | default(\"there\") }}!",
                &anon,
                Escape::None
            )
            .unwrap(),
            "Hi there!"
        );
        assert_eq!(
            r.render("{{ nickname | default('friend') }}", &anon, Escape::None)
                .unwrap(),
            "friend"
        );
        assert_eq!(
            r.render(
                "Hi {{ first_name | default('there') }}",
                &bo(),
                Escape::None
            )
            .unwrap(),
            "Hi Bo"
        );
    }

    #[test]
    fn an_unknown_variable_is_a_render_error_with_its_line() {
        let r = Renderer::new();
        let err = r
            .render("line one\nHi {{ frist_name }}", &bo(), Escape::None)
            .unwrap_err();
        assert!(
            matches!(err, TemplateError::Render { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn html_bodies_escape_values_but_not_the_template() {
        let r = Renderer::new();
        let out = r
            .render("<b>{{ company }}</b>", &bo(), Escape::Html)
            .unwrap();
        assert_eq!(out, "<b>Acme &lt;Labs&gt; &amp; &quot;Co&quot;</b>");
        // The same source as text is cached separately and not escaped.
        let text = r
            .render("<b>{{ company }}</b>", &bo(), Escape::None)
            .unwrap();
        assert_eq!(text, "<b>Acme <Labs> & \"Co\"</b>");
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let r = Renderer::new();
        let err = r.check("Hello\n\n{{ first_name ").unwrap_err();
        assert!(
            matches!(err, TemplateError::Syntax { line: 3, .. }),
            "{err}"
        );
        let err = r.render("{% if %}", &bo(), Escape::None).unwrap_err();
        assert!(
            matches!(err, TemplateError::Syntax { line: 1, .. }),
            "{err}"
        );
        assert!(r.check("Hi {{ first_name | default('x') }}").is_ok());
    }

    #[test]
    fn repeated_renders_use_the_cache_and_agree() {
        let r = Renderer::new();
        let a = r
            .render("Hi {{ first_name }}", &bo(), Escape::None)
            .unwrap();
        let b = r
            .render("Hi {{ first_name }}", &bo(), Escape::None)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(r.env.read().unwrap().templates().count(), 1);
    }
}
