//! The host API: what an application calls to define mailboxes, enroll contacts and report
//! what contacts did (sequences are in `sequences.rs`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sequence_core::contact::Contact;
use sequence_core::enrollment::{DeferralReason, Enrollment, EnrollmentStatus, ExitReason};
use sequence_core::error::Entity;
use sequence_core::error::Problems;
use sequence_core::event::DomainEvent;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::send::{TrackingKind, TrackingMark};
use sequence_core::sequence::{Sequence, SequenceStatus, Trigger};
use sequence_core::store::{ChangeSet, EnrollOutcome};
use sequence_core::TransitionError;
use tracing::instrument;

use super::{Engine, EngineError};

impl Engine {
    // ---- mailboxes ----------------------------------------------------------------------------

    /// Store a new mailbox (validated).
    ///
    /// # Errors
    /// Invalid fields, or a mailbox with that id exists.
    pub async fn create_mailbox(&self, mailbox: Mailbox) -> Result<Mailbox, EngineError> {
        mailbox.validate()?;
        self.inner.store.save_mailbox(&mailbox, None).await?;
        Ok(mailbox)
    }

    /// Change a mailbox with `change`, validate it and store it (optimistic lock).
    ///
    /// # Errors
    /// Not found, invalid, refused by the domain, or changed meanwhile.
    pub async fn update_mailbox(
        &self,
        tenant: TenantId,
        id: MailboxId,
        change: impl FnOnce(&mut Mailbox) -> Result<(), TransitionError>,
    ) -> Result<Mailbox, EngineError> {
        let mut mailbox = self
            .inner
            .store
            .get_mailbox(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Entity::Mailbox, id))?;
        let read = mailbox.version;
        change(&mut mailbox)?;
        mailbox.validate()?;
        if mailbox.version == read {
            mailbox.version += 1;
        }
        self.inner.store.save_mailbox(&mailbox, Some(read)).await?;
        Ok(mailbox)
    }

    /// Pause a mailbox: it sends nothing until resumed; its planned sends are called off so
    /// their enrollments can move to another mailbox of their pool.
    ///
    /// # Errors
    /// Not found, not active, or changed meanwhile.
    #[instrument(skip(self), level = "debug")]
    pub async fn pause_mailbox(&self, tenant: TenantId, id: MailboxId) -> Result<(), EngineError> {
        self.set_mailbox_status(tenant, id, Mailbox::pause).await
    }

    /// Suspend a mailbox (e.g. its credentials were refused); like a pause.
    ///
    /// # Errors
    /// Not found, already suspended, or changed meanwhile.
    pub async fn suspend_mailbox(
        &self,
        tenant: TenantId,
        id: MailboxId,
        reason: &str,
    ) -> Result<(), EngineError> {
        self.set_mailbox_status(tenant, id, |m| m.suspend(reason))
            .await
    }

    /// Resume a paused or suspended mailbox.
    ///
    /// # Errors
    /// Not found, already active, or changed meanwhile.
    pub async fn resume_mailbox(&self, tenant: TenantId, id: MailboxId) -> Result<(), EngineError> {
        self.set_mailbox_status(tenant, id, Mailbox::resume).await?;
        let sequences: Vec<SequenceId> = self
            .inner
            .store
            .list_sequences(tenant)
            .await?
            .into_iter()
            .filter(|s| s.mailbox_pool.contains(&id))
            .map(|s| s.id)
            .collect();
        self.wake_parked(tenant, &sequences).await
    }

    /// Wake the enrollments of `sequences` parked because no mailbox of their pool could
    /// send (a mailbox was resumed, or a pool changed): they are planned again at once.
    pub(super) async fn wake_parked(
        &self,
        tenant: TenantId,
        sequences: &[SequenceId],
    ) -> Result<(), EngineError> {
        let now = self.now();
        let mut changes = ChangeSet::default();
        for &seq in sequences {
            for mut e in self.inner.store.list_enrollments(tenant, seq).await? {
                let parked = e.deferral.is_some_and(|d| {
                    matches!(
                        d.reason,
                        DeferralReason::MailboxPaused | DeferralReason::NoActiveMailboxInPool
                    )
                });
                let v = e.version;
                if parked && e.wake(now) {
                    changes.enrollments.push((e, v));
                }
            }
        }
        self.apply_leniently(now, changes).await
    }

    async fn set_mailbox_status(
        &self,
        tenant: TenantId,
        id: MailboxId,
        change: impl FnOnce(&mut Mailbox) -> Result<DomainEvent, TransitionError>,
    ) -> Result<(), EngineError> {
        let now = self.now();
        let store = &self.inner.store;
        let mut mailbox = store
            .get_mailbox(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Entity::Mailbox, id))?;
        let read = mailbox.version;
        let event = change(&mut mailbox)?;
        let mut changes = ChangeSet {
            mailboxes: vec![(mailbox.clone(), read)],
            ..ChangeSet::default()
        };
        if !mailbox.is_active() {
            // Call off its planned sends; their enrollments are planned again at once.
            for snap in store.mailbox_snapshots(now, &[id]).await? {
                for slot in snap.planned {
                    changes.cancel_sends.push(slot.send);
                    if let Some(mut e) = store.get_enrollment(tenant, slot.enrollment).await? {
                        if e.is_final() {
                            continue;
                        }
                        let v = e.version;
                        e.release_planned(now)?;
                        changes.enrollments.push((e, v));
                    }
                }
            }
        }
        store.apply_changes(now, changes).await?;
        self.emit(tenant, &[event]);
        Ok(())
    }

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
        Ok(self.inner.store.upsert_contacts(tenant, contacts).await?)
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
        let read = c.version;
        if !c.lift_suppression() {
            return Ok(false);
        }
        let changes = ChangeSet {
            contacts: vec![(c, read)],
            ..ChangeSet::default()
        };
        store.apply_changes(self.now(), changes).await?;
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
        if matches!(seq.status, SequenceStatus::Draft | SequenceStatus::Archived) {
            return Err(TransitionError::InvalidStatus {
                action: "enroll",
                status: seq.status.into(),
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
        let mut rows = Vec::with_capacity(contacts.len());
        for &contact in contacts {
            let zone = if needs_zone {
                self.inner
                    .store
                    .get_contact(tenant, contact)
                    .await?
                    .and_then(|c| c.timezone)
                    .unwrap_or(Tz::UTC)
            } else {
                Tz::UTC
            };
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
        let v = e.version;
        let event = change(&mut e, now)?;
        let mut changes = ChangeSet::default();
        if e.is_final() || e.status == EnrollmentStatus::Paused {
            changes.cancel_sends.extend(
                store
                    .open_sends_of(tenant, &[id])
                    .await?
                    .iter()
                    .map(|s| s.id),
            );
        }
        changes.enrollments.push((e.clone(), v));
        store.apply_changes(now, changes).await?;
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

    // ---- signals ----------------------------------------------------------------------------------

    /// The contact replied. Enrollments of sequences with `exit_on_reply` exit (`replied`);
    /// with `auto_reply_until` (an out-of-office), they pause until then instead. A contact
    /// who replied is not enrolled again in sequences that exit on reply. Idempotent.
    ///
    /// # Errors
    /// The contact is not found, or the store failed.
    #[instrument(skip(self), level = "debug")]
    pub async fn reply(
        &self,
        tenant: TenantId,
        contact: ContactId,
        auto_reply_until: Option<DateTime<Utc>>,
    ) -> Result<(), EngineError> {
        self.contact_signal(
            tenant,
            contact,
            |c, now| match auto_reply_until {
                None => c.record_reply(now),
                Some(_) => c.record_activity(now),
            },
            |e, seq, now| {
                if auto_reply_until.is_none() {
                    e.record_reply(now);
                }
                match (auto_reply_until, e.status) {
                    (Some(until), EnrollmentStatus::Active) => e.pause(Some(until)).map(Some),
                    (Some(_), _) => Ok(None),
                    (None, _) if seq.is_some_and(|s| s.exit_on_reply) => {
                        e.exit(ExitReason::Replied, now).map(Some)
                    }
                    (None, _) => Ok(None),
                }
            },
        )
        .await?;
        self.emit(tenant, &[DomainEvent::Replied { contact }]);
        Ok(())
    }

    /// The contact unsubscribed: no more sends in any sequence of the tenant, now or in
    /// sequences it would be enrolled in later. Idempotent.
    ///
    /// # Errors
    /// The contact is not found, or the store failed.
    pub async fn unsubscribe(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<(), EngineError> {
        self.contact_signal(
            tenant,
            contact,
            |c, _| c.mark_unsubscribed(),
            |e, _, now| e.exit(ExitReason::Unsubscribed, now).map(Some),
        )
        .await?;
        self.emit(tenant, &[DomainEvent::Unsubscribed { contact }]);
        Ok(())
    }

    /// The contact's address bounced. Hard: the contact is bounced and exits every sequence
    /// (and is not enrolled again). Soft: counts toward each open enrollment's retry budget,
    /// which exits it (`failed`) once used up. Idempotent for hard bounces.
    ///
    /// # Errors
    /// The contact is not found, or the store failed.
    pub async fn bounce(
        &self,
        tenant: TenantId,
        contact: ContactId,
        hard: bool,
    ) -> Result<(), EngineError> {
        let max = self.inner.config.retry.max_attempts;
        self.contact_signal(
            tenant,
            contact,
            |c, _| {
                if hard {
                    c.mark_bounced();
                }
            },
            |e, _, now| {
                if hard {
                    e.exit(ExitReason::Bounced, now).map(Some)
                } else if e.record_soft_bounce() >= max {
                    e.exit(ExitReason::Failed, now).map(Some)
                } else {
                    Ok(None)
                }
            },
        )
        .await?;
        self.emit(tenant, &[DomainEvent::Bounced { contact, hard }]);
        Ok(())
    }

    /// Apply `on_contact` to a contact and `on_enrollment` to each of its open enrollments,
    /// atomically, cancelling the planned sends of enrollments that stop.
    async fn contact_signal(
        &self,
        tenant: TenantId,
        contact: ContactId,
        on_contact: impl Fn(&mut Contact, DateTime<Utc>),
        mut on_enrollment: impl FnMut(
            &mut Enrollment,
            Option<&Sequence>,
            DateTime<Utc>,
        ) -> Result<Option<DomainEvent>, TransitionError>,
    ) -> Result<(), EngineError> {
        let now = self.now();
        let store = &self.inner.store;
        for _ in 0..3 {
            let mut c = store
                .get_contact(tenant, contact)
                .await?
                .ok_or_else(|| EngineError::not_found(Entity::Contact, contact))?;
            let read = c.version;
            on_contact(&mut c, now);
            let mut changes = ChangeSet::default();
            let mut events = Vec::new();
            let mut sequences: HashMap<SequenceId, Option<Sequence>> = HashMap::new();
            let open = store.open_enrollments_of_contact(tenant, contact).await?;
            let ids: Vec<EnrollmentId> = open.iter().map(|e| e.id).collect();
            let mut open_sends: HashMap<EnrollmentId, Vec<SendId>> = HashMap::new();
            for s in store.open_sends_of(tenant, &ids).await? {
                open_sends.entry(s.enrollment).or_default().push(s.id);
            }
            for mut e in open {
                if let std::collections::hash_map::Entry::Vacant(slot) = sequences.entry(e.sequence)
                {
                    slot.insert(store.get_sequence(tenant, e.sequence).await?);
                }
                let seq = sequences.get(&e.sequence).and_then(Option::as_ref);
                let v = e.version;
                if let Some(ev) = on_enrollment(&mut e, seq, now)? {
                    events.push(ev);
                }
                if e.version == v {
                    continue;
                }
                if e.status != EnrollmentStatus::Active {
                    changes
                        .cancel_sends
                        .extend(open_sends.remove(&e.id).unwrap_or_default());
                }
                changes.enrollments.push((e, v));
            }
            changes.contacts.push((c, read));
            if self
                .apply_unless_changed(tenant, now, changes, &events)
                .await?
            {
                return Ok(());
            }
        }
        Err(EngineError::Store(
            sequence_core::store::StoreError::Backend(
                "contact signal: enrollments kept changing; gave up after 3 tries".into(),
            ),
        ))
    }

    /// The contact opened step `step` of an enrollment. Idempotent.
    ///
    /// # Errors
    /// The enrollment is not found, or the store failed.
    pub async fn open(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
        step: u32,
    ) -> Result<(), EngineError> {
        self.track(tenant, enrollment, step, TrackingKind::Open)
            .await?;
        self.emit(tenant, &[DomainEvent::Opened { enrollment, step }]);
        Ok(())
    }

    /// The contact clicked a link of step `step` of an enrollment. Idempotent.
    ///
    /// # Errors
    /// The enrollment is not found, or the store failed.
    pub async fn click(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
        step: u32,
    ) -> Result<(), EngineError> {
        self.track(tenant, enrollment, step, TrackingKind::Click)
            .await?;
        self.emit(tenant, &[DomainEvent::Clicked { enrollment, step }]);
        Ok(())
    }

    async fn track(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
        step: u32,
        kind: TrackingKind,
    ) -> Result<(), EngineError> {
        let now = self.now();
        let store = &self.inner.store;
        let e = store
            .get_enrollment(tenant, enrollment)
            .await?
            .ok_or_else(|| EngineError::not_found(Entity::Enrollment, enrollment))?;
        let Some(send) = store
            .sends_of_enrollment(tenant, enrollment)
            .await?
            .into_iter()
            .find(|s| s.step == step)
        else {
            return Err(EngineError::not_found(
                Entity::Send,
                format!("{enrollment}/{step}"),
            ));
        };
        let mark = TrackingMark {
            send: send.id,
            kind,
            at: now,
        };
        // The contact is written under the version read: a signal landing meanwhile is
        // read again, never overwritten.
        for _ in 0..5 {
            let mut changes = ChangeSet {
                tracking: vec![mark],
                ..ChangeSet::default()
            };
            if let Some(mut c) = store.get_contact(tenant, e.contact).await? {
                let read = c.version;
                c.record_activity(now);
                changes.contacts.push((c, read));
            }
            if self.apply_unless_changed(tenant, now, changes, &[]).await? {
                return Ok(());
            }
        }
        Err(EngineError::KeptChanging {
            entity: Entity::Contact,
            id: e.contact.to_string(),
        })
    }
}
