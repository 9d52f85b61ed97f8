//! The host API for contacts and enrollments: upserts and imports, suppressions, enrolling,
//! triggers, and one enrollment at a time.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sequence_core::contact::Contact;
use sequence_core::enrollment::{Enrollment, EnrollmentStatus, ExitReason};
use sequence_core::error::Entity;
use sequence_core::error::{Problems, ValidationErrors};
use sequence_core::event::DomainEvent;
use sequence_core::ids::{ContactId, EnrollmentId, SequenceId, TenantId};
use sequence_core::import::{ContactRow, ImportOutcome};
use sequence_core::sequence::{SequenceStatus, Trigger};
use sequence_core::store::{ChangeSet, EnrollOutcome};
use sequence_core::TransitionError;
use tracing::instrument;

use super::{Engine, EngineError};

impl Engine {
    // ---- contacts and enrollments -------------------------------------------------------------

    /// Insert or update contacts, each validated; nothing is stored when one is invalid (the
    /// error names every problem, e.g. `contacts[3].email`). A tenant's contacts are unique by
    /// address (trimmed, case-insensitive): a row with the address of a stored contact
    /// updates that contact, whatever its id. An update changes the contact's own fields and
    /// never lifts a suppression (see [`Engine::lift_suppression`]). Answers the stored id of
    /// each row, in order.
    ///
    /// # Errors
    /// Invalid contacts, a contact of another tenant, or a row whose own contact would take
    /// an address another contact holds.
    pub async fn upsert_contacts(
        &self,
        tenant: TenantId,
        contacts: &[Contact],
    ) -> Result<Vec<ContactId>, EngineError> {
        let mut problems = Problems::new();
        for (i, c) in contacts.iter().enumerate() {
            if let Err(e) = c.validate() {
                problems.extend_prefixed(&format!("contacts[{i}]"), e);
            }
        }
        problems.finish()?;
        let stored = self.inner.store.upsert_contacts(tenant, contacts).await?;
        self.host_changed();
        Ok(stored)
    }

    /// Import contacts as a host has them (addresses, zone names as strings, fields), with an
    /// answer per row in order: `Created`; `Updated` when the address belongs to a stored
    /// contact (or an earlier row), which takes the fields the row sets, keeps those it
    /// leaves out, adds its tags and custom fields, and keeps its suppressions and activity;
    /// or `Invalid` with every problem of the row and its field. The valid rows are stored
    /// even when others are invalid. Contacts are unique by normalized address.
    ///
    /// # Errors
    /// The store failed (then nothing was stored).
    pub async fn import_contacts(
        &self,
        tenant: TenantId,
        rows: &[ContactRow],
    ) -> Result<Vec<ImportOutcome>, EngineError> {
        let checked: Vec<Result<Contact, ValidationErrors>> =
            rows.iter().map(|row| row.to_contact(tenant)).collect();
        let addresses: Vec<String> = checked
            .iter()
            .filter_map(|c| c.as_ref().ok().map(Contact::normalized_email))
            .collect();
        let store = &self.inner.store;
        // One contact per address: the stored ones, then each new address's first row.
        let mut by_address: HashMap<String, Contact> = store
            .find_contacts_by_email(tenant, &addresses)
            .await?
            .into_iter()
            .map(|c| (c.normalized_email(), c))
            .collect();
        let stored_before: HashSet<ContactId> = by_address.values().map(|c| c.id).collect();
        let mut answers = Vec::with_capacity(rows.len());
        for row in checked {
            let imported = match row {
                Ok(imported) => imported,
                Err(problems) => {
                    answers.push(ImportOutcome::Invalid { problems });
                    continue;
                }
            };
            let contact = match by_address.entry(imported.normalized_email()) {
                Entry::Occupied(slot) => {
                    let contact = slot.into_mut();
                    contact.merge_import(&imported);
                    contact.id
                }
                Entry::Vacant(slot) => slot.insert(imported).id,
            };
            answers.push(ImportOutcome::Created { contact });
        }
        let contacts: Vec<Contact> = by_address.into_values().collect();
        store.upsert_contacts(tenant, &contacts).await?;
        self.host_changed();
        // A row is an update when its contact was stored before, or an earlier row made it.
        let mut seen = stored_before;
        for answer in &mut answers {
            if let ImportOutcome::Created { contact } = *answer {
                if !seen.insert(contact) {
                    *answer = ImportOutcome::Updated { contact };
                }
            }
        }
        Ok(answers)
    }

    /// Every enrollment of a contact, final ones included, oldest first: a contact's
    /// history across sequences.
    ///
    /// # Errors
    /// The contact is not found, or the store failed.
    pub async fn enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, EngineError> {
        let store = &self.inner.store;
        if store.get_contact(tenant, contact).await?.is_none() {
            return Err(EngineError::not_found(Entity::Contact, contact));
        }
        Ok(store.enrollments_of_contact(tenant, contact).await?)
    }

    /// Make a bounced or unsubscribed contact sendable again and forget its reply: only on
    /// the person's own request (a new opt-in) or for a corrected address. No other call,
    /// and no re-sync through [`Engine::upsert_contacts`], lifts a suppression. Returns
    /// whether anything changed.
    ///
    /// # Errors
    /// The contact is not found, or it changed meanwhile (call again).
    pub async fn lift_suppression(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<bool, EngineError> {
        let store = &self.inner.store;
        let mut c = store
            .get_contact(tenant, contact)
            .await?
            .ok_or_else(|| EngineError::not_found(Entity::Contact, contact))?;
        let read = c.version();
        if !c.lift_suppression() {
            return Ok(false);
        }
        let changes = ChangeSet {
            contacts: vec![(c, read)],
            ..ChangeSet::default()
        };
        self.apply_host_changes(self.now(), changes).await?;
        Ok(true)
    }

    /// Enroll contacts in a sequence, in bulk. One answer per contact, in order: enrolled,
    /// already enrolled, suppressed (bounced or unsubscribed) or invalid, each with its reason;
    /// the valid rows are stored even when others are refused.
    ///
    /// # Errors
    /// The sequence is not found, is a draft or archived, or the store failed.
    #[instrument(skip(self, contacts), fields(count = contacts.len()), level = "debug")]
    pub async fn enroll(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        contacts: &[ContactId],
    ) -> Result<Vec<EnrollOutcome>, EngineError> {
        let seq = self.load_sequence(tenant, sequence).await?;
        if matches!(
            seq.status(),
            SequenceStatus::Draft | SequenceStatus::Archived
        ) {
            return Err(TransitionError::InvalidStatus {
                action: "enroll",
                status: seq.status().into(),
            }
            .into());
        }
        let now = self.now();
        let Some(first) = seq.step(0) else {
            return Err(TransitionError::Invariant {
                field: "steps".into(),
                reason: "no step to send".into(),
            }
            .into());
        };
        let needs_zone = matches!(
            first.delay.unit,
            sequence_core::time::DelayUnit::BusinessDays
        );
        // Business days count in each contact's zone: one read for the whole batch.
        let zones: HashMap<ContactId, Tz> = if needs_zone {
            self.inner
                .store
                .get_contacts(tenant, contacts)
                .await?
                .into_iter()
                .filter_map(|c| Some((c.id, c.timezone?)))
                .collect()
        } else {
            HashMap::new()
        };
        let mut rows = Vec::with_capacity(contacts.len());
        for &contact in contacts {
            let zone = zones.get(&contact).copied().unwrap_or(Tz::UTC);
            let due = first.delay.after(now, zone, &seq.holidays);
            rows.push(Enrollment::new(tenant, sequence, contact, now, due));
        }
        let events: Vec<DomainEvent> = rows.iter().map(Enrollment::enrolled_event).collect();
        let outcomes = self.inner.store.enroll(tenant, now, rows).await?;
        let enrolled: Vec<DomainEvent> = outcomes
            .iter()
            .zip(events)
            .filter(|(o, _)| matches!(o, EnrollOutcome::Enrolled { .. }))
            .map(|(_, e)| e)
            .collect();
        self.emit(tenant, &enrolled);
        Ok(outcomes)
    }

    /// Report a fact about a contact; every active sequence of the tenant that this trigger
    /// starts enrolls the contact (its re-enrollment rule decides whether it may enter again).
    ///
    /// # Errors
    /// The store failed.
    pub async fn report_trigger(
        &self,
        tenant: TenantId,
        contact: ContactId,
        trigger: &Trigger,
    ) -> Result<Vec<(SequenceId, EnrollOutcome)>, EngineError> {
        let mut out = Vec::new();
        for seq in self.inner.store.list_sequences(tenant).await? {
            if seq.is_triggered_by(trigger) {
                let outcome = self.enroll(tenant, seq.id, &[contact]).await?;
                out.extend(outcome.into_iter().map(|o| (seq.id, o)));
            }
        }
        Ok(out)
    }

    async fn change_enrollment(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
        change: impl FnOnce(
            &mut Enrollment,
            DateTime<Utc>,
        ) -> Result<Option<DomainEvent>, TransitionError>,
    ) -> Result<Enrollment, EngineError> {
        let now = self.now();
        let store = &self.inner.store;
        let mut e = store
            .get_enrollment(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Entity::Enrollment, id))?;
        let v = e.version();
        let event = change(&mut e, now)?;
        let mut changes = ChangeSet::default();
        if e.is_final() || e.status() == EnrollmentStatus::Paused {
            changes.cancel_sends.extend(
                store
                    .open_sends_of(tenant, &[id])
                    .await?
                    .iter()
                    .map(|s| s.id),
            );
        }
        changes.enrollments.push((e.clone(), v));
        self.apply_host_changes(now, changes).await?;
        self.emit(tenant, &event.into_iter().collect::<Vec<_>>());
        Ok(e)
    }

    /// End one enrollment by hand (`manual`).
    ///
    /// # Errors
    /// Not found, already ended, or changed meanwhile.
    pub async fn exit_enrollment(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
    ) -> Result<Enrollment, EngineError> {
        self.change_enrollment(tenant, id, |e, now| {
            e.exit(ExitReason::Manual, now).map(Some)
        })
        .await
    }

    /// Pause one enrollment, until `until` if given.
    ///
    /// # Errors
    /// Not found, not active, or changed meanwhile.
    pub async fn pause_enrollment(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
        until: Option<DateTime<Utc>>,
    ) -> Result<Enrollment, EngineError> {
        self.change_enrollment(tenant, id, |e, _| e.pause(until).map(Some))
            .await
    }

    /// Resume one paused enrollment.
    ///
    /// # Errors
    /// Not found, not paused, or changed meanwhile.
    pub async fn resume_enrollment(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
    ) -> Result<Enrollment, EngineError> {
        self.change_enrollment(tenant, id, |e, now| e.resume(now).map(Some))
            .await
    }
}
