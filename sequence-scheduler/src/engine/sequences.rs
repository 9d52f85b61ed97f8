//! The host API for sequences: create, change, activate, and the sequence-wide changes
//! (pause, resume, archive) that walk every open enrollment in bounded, retryable pages.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sequence_core::enrollment::{Enrollment, ExitReason};
use sequence_core::error::Entity;
use sequence_core::error::Problems;
use sequence_core::event::DomainEvent;
use sequence_core::ids::{EnrollmentId, SendId, SequenceId, TenantId};
use sequence_core::sequence::{Sequence, SequenceStatus};
use sequence_core::store::{ChangeSet, DraftDeletion, EnrollmentCursor};
use sequence_core::TransitionError;
use tracing::instrument;

use super::{Engine, EngineError};

/// What a sequence-wide change does to each open enrollment.
#[derive(Debug, Clone, Copy)]
enum Sweep {
    /// The sequence paused: planned sends are called off, their capacity released.
    CallOff,
    /// The sequence resumed: waiting enrollments are looked at again at once.
    Wake,
    /// The sequence ended: every open enrollment exits.
    Exit(ExitReason),
}
impl Engine {
    // ---- sequences ------------------------------------------------------------------------------

    /// Store a new sequence (validated), usually a draft.
    ///
    /// # Errors
    /// Invalid, or a sequence with that id exists.
    pub async fn create_sequence(&self, mut sequence: Sequence) -> Result<Sequence, EngineError> {
        sequence.validate()?;
        self.check_pool(&sequence).await?;
        self.inner.store.save_sequence(&sequence, None).await?;
        let events = sequence.drain_events();
        self.emit(sequence.tenant, &events);
        Ok(sequence)
    }

    /// Store a draft copy of a sequence under `name` (see [`Sequence::duplicate`]): same
    /// steps, pool and rules, a new id, no enrollments. The original is untouched.
    ///
    /// # Errors
    /// The sequence is not found, the name is invalid, or the store failed.
    pub async fn clone_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
        name: impl Into<String>,
    ) -> Result<Sequence, EngineError> {
        let original = self.load_sequence(tenant, id).await?;
        let copy = original.duplicate(name, self.now())?;
        self.create_sequence(copy).await
    }

    /// Change a sequence with `change` (a domain method such as `add_step`), validate it and
    /// store it (optimistic lock).
    ///
    /// # Errors
    /// Not found, refused by the domain, invalid, or changed meanwhile.
    pub async fn update_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
        change: impl FnOnce(&mut Sequence) -> Result<(), TransitionError>,
    ) -> Result<Sequence, EngineError> {
        let mut sequence = self.load_sequence(tenant, id).await?;
        let read = sequence.version();
        let pool_before = sequence.mailbox_pool.clone();
        change(&mut sequence)?;
        sequence.validate()?;
        if sequence.mailbox_pool != pool_before {
            self.check_pool(&sequence).await?;
        }
        if sequence.version() == read {
            sequence.set_version(read + 1);
        }
        self.inner
            .store
            .save_sequence(&sequence, Some(read))
            .await?;
        self.host_changed();
        let events = sequence.drain_events();
        self.emit(tenant, &events);
        if sequence.mailbox_pool != pool_before {
            self.wake_parked(tenant, &[id]).await?;
        }
        Ok(sequence)
    }

    /// Every mailbox of a sequence's pool must be a mailbox of its tenant: a foreign or
    /// unknown one is refused with its field (`mailbox_pool[2]`).
    async fn check_pool(&self, sequence: &Sequence) -> Result<(), EngineError> {
        let mut problems = Problems::new();
        for (i, id) in sequence.mailbox_pool.iter().enumerate() {
            if self
                .inner
                .store
                .get_mailbox(sequence.tenant, *id)
                .await?
                .is_none()
            {
                problems.push(
                    format!("mailbox_pool[{i}]"),
                    format!("no mailbox {id} in this tenant"),
                );
            }
        }
        Ok(problems.finish()?)
    }

    pub(super) async fn load_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Sequence, EngineError> {
        self.inner
            .store
            .get_sequence(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Entity::Sequence, id))
    }

    /// `draft -> active`.
    ///
    /// # Errors
    /// Not found, not a draft, no step or no mailbox, or changed meanwhile.
    pub async fn activate_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Sequence, EngineError> {
        self.update_sequence(tenant, id, Sequence::activate).await
    }

    /// `active -> paused`: nothing is sent until resumed; planned sends are called off and
    /// their capacity released. Idempotent and retryable: pausing a paused sequence finishes
    /// calling off what an interrupted pause left.
    ///
    /// # Errors
    /// Not found, a draft or archived, changed meanwhile, or the store failed (call again).
    #[instrument(skip(self), level = "debug")]
    pub async fn pause_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Sequence, EngineError> {
        let sequence = self
            .move_sequence(tenant, id, SequenceStatus::Paused, Sequence::pause)
            .await?;
        self.sweep(tenant, id, Sweep::CallOff).await?;
        Ok(sequence)
    }

    /// `paused -> active`: enrollments carry on where they stopped. Idempotent and
    /// retryable: resuming an active sequence wakes whatever an interrupted resume left.
    ///
    /// # Errors
    /// Not found, a draft or archived, changed meanwhile, or the store failed (call again).
    #[instrument(skip(self), level = "debug")]
    pub async fn resume_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Sequence, EngineError> {
        let sequence = self
            .move_sequence(tenant, id, SequenceStatus::Active, Sequence::resume)
            .await?;
        self.sweep(tenant, id, Sweep::Wake).await?;
        Ok(sequence)
    }

    /// Any status `-> archived`: every open enrollment exits (`sequence_archived`).
    /// Idempotent and retryable: archiving an archived sequence ends what is still open.
    ///
    /// # Errors
    /// Not found, changed meanwhile, or the store failed (call again).
    pub async fn archive_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Sequence, EngineError> {
        let sequence = self
            .move_sequence(tenant, id, SequenceStatus::Archived, Sequence::archive)
            .await?;
        self.sweep(tenant, id, Sweep::Exit(ExitReason::SequenceArchived))
            .await?;
        Ok(sequence)
    }

    /// Delete a draft for good ([`Catalog::delete_draft_sequence`]): afterwards no read
    /// finds it. Only a draft is deleted, checked by the store in the same unit of work as
    /// the delete; any other sequence is left as it is (archive it instead).
    ///
    /// # Errors
    /// [`EngineError::NotFound`] when the tenant has no such sequence;
    /// [`TransitionError::InvalidStatus`] (action `delete`) when it is not a draft;
    /// [`TransitionError::Invariant`] on `enrollments` when contacts were enrolled into the
    /// draft through the store; or the store failed.
    ///
    /// [`Catalog::delete_draft_sequence`]: sequence_core::store::Catalog::delete_draft_sequence
    pub async fn delete_draft_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<(), EngineError> {
        match self.inner.store.delete_draft_sequence(tenant, id).await? {
            DraftDeletion::Deleted => Ok(()),
            DraftDeletion::NotDraft { status } => Err(TransitionError::InvalidStatus {
                action: "delete",
                status: status.into(),
            }
            .into()),
            DraftDeletion::HasEnrollments => Err(TransitionError::Invariant {
                field: "enrollments".into(),
                reason: "a draft with enrollments cannot be deleted; archive it instead".into(),
            }
            .into()),
            // `NotFound`, and any answer this engine does not know: nothing was deleted.
            _ => Err(EngineError::not_found(Entity::Sequence, id)),
        }
    }

    /// Put a sequence in `target` with `change`, or leave it be when it is there already.
    async fn move_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
        target: SequenceStatus,
        change: impl FnOnce(&mut Sequence) -> Result<(), TransitionError>,
    ) -> Result<Sequence, EngineError> {
        let sequence = self.load_sequence(tenant, id).await?;
        if sequence.status() == target {
            return Ok(sequence);
        }
        self.update_sequence(tenant, id, change).await
    }

    /// Apply `sweep` to every open enrollment of a sequence, a bounded page at a time, each
    /// page in one unit of work; an enrollment that changed meanwhile is read again and
    /// done on its own, so the sweep completes.
    async fn sweep(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        sweep: Sweep,
    ) -> Result<(), EngineError> {
        /// Enrollments per unit of work.
        const PAGE: usize = 1_000;
        let store = &self.inner.store;
        let mut after = None;
        loop {
            let page = store
                .open_enrollments_page(tenant, sequence, after, PAGE)
                .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(EnrollmentCursor::after(last));
            let now = self.now();
            let (changes, events) = self.sweep_page(tenant, now, page, sweep).await?;
            match self.apply_host_changes(now, changes.clone()).await {
                Ok(()) => self.emit(tenant, &events),
                Err(e) if e.is_conflict() => {
                    for (e, _) in changes.enrollments {
                        self.sweep_one(tenant, e.id, sweep).await?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The changes `sweep` makes to one page of open enrollments.
    async fn sweep_page(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        page: Vec<Enrollment>,
        sweep: Sweep,
    ) -> Result<(ChangeSet, Vec<DomainEvent>), EngineError> {
        let ids: Vec<EnrollmentId> = page.iter().map(|e| e.id).collect();
        let mut open: HashMap<EnrollmentId, Vec<SendId>> = HashMap::new();
        if !matches!(sweep, Sweep::Wake) {
            for s in self.inner.store.open_sends_of(tenant, &ids).await? {
                open.entry(s.enrollment).or_default().push(s.id);
            }
        }
        let mut changes = ChangeSet::default();
        let mut events = Vec::new();
        for mut e in page {
            let v = e.version();
            let sends = open.remove(&e.id).unwrap_or_default();
            let changed = match sweep {
                Sweep::Wake => e.wake(now),
                Sweep::CallOff if sends.is_empty() => false,
                Sweep::CallOff => {
                    e.release_planned(now)?;
                    true
                }
                Sweep::Exit(reason) => {
                    events.push(e.exit(reason, now)?);
                    true
                }
            };
            if changed {
                changes.cancel_sends.extend(sends);
                changes.enrollments.push((e, v));
            }
        }
        Ok((changes, events))
    }

    /// Apply `changes` and emit `events`: `false` when a record changed since it was read
    /// (nothing was written; read again and retry).
    pub(super) async fn apply_unless_changed(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        changes: ChangeSet,
        events: &[DomainEvent],
    ) -> Result<bool, EngineError> {
        match self.apply_host_changes(now, changes).await {
            Ok(()) => {
                self.emit(tenant, events);
                Ok(true)
            }
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Engine::sweep`] for one enrollment, read again until it holds still.
    async fn sweep_one(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
        sweep: Sweep,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        for _ in 0..5 {
            let Some(e) = store.get_enrollment(tenant, id).await? else {
                return Ok(());
            };
            if e.is_final() {
                return Ok(());
            }
            let now = self.now();
            let (changes, events) = self.sweep_page(tenant, now, vec![e], sweep).await?;
            if self
                .apply_unless_changed(tenant, now, changes, &events)
                .await?
            {
                return Ok(());
            }
        }
        Err(EngineError::KeptChanging {
            entity: Entity::Enrollment,
            id: id.to_string(),
        })
    }
}
