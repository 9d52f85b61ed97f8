//! Contact import: rows as a host has them (addresses, zone names as strings, fields),
//! checked into [`Contact`]s with every problem named by its field, and the answer per row.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::contact::{Contact, FieldValue};
use crate::error::{Problems, ValidationErrors};
use crate::ids::{ContactId, TenantId};
use crate::time::parse_time_zone;
use crate::validate::validate_contact;

/// One contact as a host imports it (from a CSV, a CRM, a form): nothing is checked yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ContactRow {
    /// The address; contacts are unique by its normalized form (trimmed, lower-cased).
    pub email: String,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Company.
    #[serde(default)]
    pub company: Option<String>,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// An IANA zone name such as `Europe/Berlin`; `None` means the mailbox's zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Custom fields.
    #[serde(default)]
    pub custom_fields: BTreeMap<String, FieldValue>,
}

impl ContactRow {
    /// A row with just an address.
    #[must_use]
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            ..Self::default()
        }
    }
    /// Set the names (builder style).
    #[must_use]
    pub fn with_name(mut self, first: impl Into<String>, last: impl Into<String>) -> Self {
        self.first_name = Some(first.into());
        self.last_name = Some(last.into());
        self
    }
    /// Set the company (builder style).
    #[must_use]
    pub fn with_company(mut self, company: impl Into<String>) -> Self {
        self.company = Some(company.into());
        self
    }
    /// Set the zone by name (builder style; checked by [`ContactRow::to_contact`]).
    #[must_use]
    pub fn with_timezone(mut self, zone: impl Into<String>) -> Self {
        self.timezone = Some(zone.into());
        self
    }
    /// Add a tag (builder style).
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }
    /// Set a custom field (builder style).
    #[must_use]
    pub fn with_field(mut self, name: impl Into<String>, value: FieldValue) -> Self {
        self.custom_fields.insert(name.into(), value);
        self
    }

    /// The contact this row describes, with a new id, in `tenant`.
    ///
    /// # Errors
    /// Every problem of the row at once, each with its field (`email`, `timezone`,
    /// `custom_fields.plan`, ...).
    pub fn to_contact(&self, tenant: TenantId) -> Result<Contact, ValidationErrors> {
        let mut problems = Problems::new();
        let timezone = match self.timezone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => match parse_time_zone(name) {
                Ok(tz) => Some(tz),
                Err(e) => {
                    problems.push("timezone", e.to_string());
                    None
                }
            },
        };
        let mut contact = Contact::unchecked(tenant, self.email.trim());
        contact.first_name.clone_from(&self.first_name);
        contact.last_name.clone_from(&self.last_name);
        contact.company.clone_from(&self.company);
        contact.phone.clone_from(&self.phone);
        contact.timezone = timezone;
        contact.tags.clone_from(&self.tags);
        contact.custom_fields.clone_from(&self.custom_fields);
        if let Err(errors) = validate_contact(&contact) {
            problems.extend_prefixed("", errors);
        }
        problems.finish().map(|()| contact)
    }
}

impl Contact {
    /// Take what an imported row gives (`imported`, the row as [`ContactRow::to_contact`]
    /// checked it) onto this stored contact of the same address: the fields the row sets
    /// replace this contact's, the fields it leaves out are kept, tags and custom fields
    /// are added. What the engine recorded (status, replies, activity) is never touched.
    pub fn merge_import(&mut self, imported: &Contact) {
        self.email.clone_from(&imported.email);
        for (mine, theirs) in [
            (&mut self.first_name, &imported.first_name),
            (&mut self.last_name, &imported.last_name),
            (&mut self.company, &imported.company),
            (&mut self.phone, &imported.phone),
        ] {
            if theirs.is_some() {
                mine.clone_from(theirs);
            }
        }
        if imported.timezone.is_some() {
            self.timezone = imported.timezone;
        }
        self.tags.extend(imported.tags.iter().cloned());
        self.custom_fields.extend(
            imported
                .custom_fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
}

/// The answer for one row of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
#[non_exhaustive]
pub enum ImportOutcome {
    /// A new contact was stored.
    Created {
        /// Its id.
        contact: ContactId,
    },
    /// The address belonged to a stored contact, which took the row's fields (its
    /// suppressions and activity are kept).
    Updated {
        /// Its id.
        contact: ContactId,
    },
    /// The row was refused; nothing of it was stored.
    Invalid {
        /// Every problem of the row, each with its field.
        problems: ValidationErrors,
    },
}

impl ImportOutcome {
    /// The stored contact's id, unless the row was invalid.
    #[must_use]
    pub fn contact(&self) -> Option<ContactId> {
        match self {
            Self::Created { contact } | Self::Updated { contact } => Some(*contact),
            Self::Invalid { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_names_every_problem_with_its_field() {
        let tenant = TenantId::new();
        let row = ContactRow::new("not an address")
            .with_timezone("Mars/Base")
            .with_field("1st", FieldValue::Number(f64::NAN));
        let errors = row.to_contact(tenant).unwrap_err();
        let paths: Vec<&str> = errors.problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"email"), "{errors}");
        assert!(paths.contains(&"timezone"), "{errors}");
        assert!(paths.contains(&"custom_fields.1st"), "{errors}");
        assert!(errors.to_string().contains("Mars/Base"), "{errors}");
    }

    #[test]
    fn a_valid_row_becomes_a_contact_with_its_zone() {
        let tenant = TenantId::new();
        let row = ContactRow::new("  Bo@Client.example ")
            .with_name("Bo", "Berg")
            .with_timezone("Asia/Kolkata")
            .with_tag("vip");
        let contact = row.to_contact(tenant).unwrap();
        assert_eq!(contact.email, "Bo@Client.example");
        assert_eq!(contact.timezone, Some(chrono_tz::Asia::Kolkata));
        assert!(contact.has_tag("VIP"));
        assert_eq!(contact.tenant, tenant);
    }
}
