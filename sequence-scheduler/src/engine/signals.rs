//! The host API for what contacts did: replies, out-of-office answers, unsubscribes,
//! bounces, opens and clicks.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sequence_core::contact::{BounceKind, Contact};
use sequence_core::enrollment::{Enrollment, EnrollmentStatus, ExitReason};
use sequence_core::error::Entity;
use sequence_core::event::DomainEvent;
use sequence_core::ids::{ContactId, EnrollmentId, SendId, SequenceId, TenantId};
use sequence_core::send::{TrackingKind, TrackingMark};
use sequence_core::sequence::Sequence;
use sequence_core::store::ChangeSet;
use sequence_core::TransitionError;
use tracing::instrument;

use super::{Engine, EngineError};

impl Engine {
    // ---- signals ----------------------------------------------------------------------------------

    /// The contact replied (a real reply, not an automatic one): enrollments of sequences
    /// with `exit_on_reply` exit (`replied`), and the contact is not enrolled again in
    /// sequences that exit on reply. Idempotent.
    ///
    /// # Errors
    /// The contact is not found, or the store failed.
    #[instrument(skip(self), level = "debug")]
    pub async fn reply(&self, tenant: TenantId, contact: ContactId) -> Result<(), EngineError> {
        self.contact_signal(tenant, contact, Contact::record_reply, |e, seq, now| {
            e.record_reply(now);
            if seq.is_some_and(|s| s.exit_on_reply) {
                e.exit(ExitReason::Replied, now).map(Some)
            } else {
                Ok(None)
            }
        })
        .await?;
        self.emit(tenant, &[DomainEvent::Replied { contact }]);
        Ok(())
    }

    /// The contact answered with an out-of-office until `back`: its active enrollments pause
    /// until then and go on where they were (nothing exits, and it does not count as a
    /// reply). Idempotent.
    ///
    /// # Errors
    /// The contact is not found, or the store failed.
    #[instrument(skip(self), level = "debug")]
    pub async fn out_of_office(
        &self,
        tenant: TenantId,
        contact: ContactId,
        back: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        self.contact_signal(tenant, contact, Contact::record_activity, |e, _, _| {
            if e.status() == EnrollmentStatus::Active {
                e.pause(Some(back)).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
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

    /// The contact's address bounced (see [`BounceKind`]): hard, the contact is bounced and
    /// exits every sequence (and is not enrolled again); soft, it counts toward each open
    /// enrollment's retry budget, which exits it (`failed`) once used up. Idempotent for
    /// hard bounces.
    ///
    /// # Errors
    /// The contact is not found, or the store failed.
    pub async fn bounce(
        &self,
        tenant: TenantId,
        contact: ContactId,
        kind: BounceKind,
    ) -> Result<(), EngineError> {
        let max = self.inner.config.retry.max_attempts;
        let hard = kind == BounceKind::Hard;
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
        self.emit(tenant, &[DomainEvent::Bounced { contact, kind }]);
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
            let read = c.version();
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
                let v = e.version();
                if let Some(ev) = on_enrollment(&mut e, seq, now)? {
                    events.push(ev);
                }
                if e.version() == v {
                    continue;
                }
                if e.status() != EnrollmentStatus::Active {
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
        Err(EngineError::KeptChanging {
            entity: Entity::Contact,
            id: contact.to_string(),
        })
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
                let read = c.version();
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
