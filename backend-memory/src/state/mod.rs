//! What the lock guards: the rows, their indexes, and one method per unit of work.
//!
//! Every public method of [`State`] is one whole unit of work: it checks everything it
//! needs first and writes only when nothing can fail any more, so an error leaves the state
//! as it was. The indexes are updated by the few `put_*` / `update_send` helpers and by
//! nothing else, which is what keeps them in step with the rows.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// `std`'s maps with foldhash's seeded hasher: ids are hashed on every store call, and
/// SipHash was most of the cost of a tick.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// See [`HashMap`].
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use std::fmt::Display;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sequence_core::contact::{normalize_email, Contact};
use sequence_core::enrollment::{
    suppression, Deferral, DeferralReason, Enrollment, EnrollmentStatus,
};
use sequence_core::error::Entity;
use sequence_core::event::DomainEvent;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::send::{Lease, ScheduledSend, SendStatus};
use sequence_core::sequence::{ReenrollmentRule, Sequence, SequenceStatus};
use sequence_core::store::{
    ChangeSet, ClaimedSend, DailyCounts, DraftDeletion, DueDocuments, DueEnrollment, EnrollOutcome,
    EnrollmentCursor, MailboxBound, MailboxDay, MailboxSnapshot, MailboxWait, PlanApplied,
    PlanCommit, PlanDeferral, PlanMailboxWait, PlanSend, PlanWait, PlannedSlot, PlanningLease,
    PoolBound, PoolWait, SendCompletion, SendContext, SequenceTally, StoreError, MAX_MAILBOX_DAYS,
};
use sequence_core::time::local_date;
use uuid::Uuid;

#[cfg(feature = "test-util")]
mod check;
mod contacts;
mod due;
mod outbox;
mod plan;
mod reads;

use due::{DueIndex, DueKey, DueSlot, Lane};

fn not_found(entity: Entity, id: impl Display) -> StoreError {
    StoreError::not_found(entity, id)
}

fn conflict(entity: Entity, id: impl Display, expected: u64, found: u64) -> StoreError {
    StoreError::VersionConflict {
        entity,
        id: id.to_string(),
        expected,
        found,
    }
}

/// The version a replaced record is stored with: the caller's, but always past the version
/// it was read at, so that a second writer holding the same read version conflicts even
/// when the first forgot to bump it.
fn written_version(new: u64, read: u64) -> u64 {
    new.max(read.saturating_add(1))
}

/// Where an enrollment sits in the due index: active ones by `next_due_at`, paused ones by
/// the instant their pause runs out. Final ones, planned ones (`next_due_at` `None`) and
/// paused ones without an end are not due.
fn due_key(e: &Enrollment) -> Option<DateTime<Utc>> {
    match e.status() {
        EnrollmentStatus::Active => e.next_due_at(),
        EnrollmentStatus::Paused => e.paused_until(),
        _ => None,
    }
}

/// When a mailbox's earliest planned send becomes claimable: never while a send of it is in
/// flight, and never before its latest attempt plus its gap.
fn ready_key(
    idle: bool,
    planned: &BTreeSet<(DateTime<Utc>, SendId)>,
    last_attempt: Option<DateTime<Utc>>,
    gap: Duration,
) -> Option<DateTime<Utc>> {
    if !idle {
        return None;
    }
    let (first, _) = planned.first()?;
    let paced = last_attempt.and_then(|at| at.checked_add_signed(gap));
    Some(paced.map_or(*first, |p| p.max(*first)))
}

/// Whether `rule` lets a contact enter again after `previous` (its latest enrollment, ended).
fn reenrollment_allows(rule: ReenrollmentRule, previous: &Enrollment, now: DateTime<Utc>) -> bool {
    match rule {
        ReenrollmentRule::AfterDays { days } => {
            previous.is_final()
                && previous
                    .enrolled_at
                    .checked_add_signed(Duration::days(i64::from(days)))
                    .is_some_and(|at| now >= at)
        }
        ReenrollmentRule::AfterExit => previous.status() == EnrollmentStatus::Exited,
        ReenrollmentRule::AfterCompletion => previous.status() == EnrollmentStatus::Completed,
        // `Never`, and any rule this store does not know: refuse.
        _ => false,
    }
}

/// What a send's indexes depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SendKeys {
    id: SendId,
    status: SendStatus,
    planned_at: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
    mailbox: MailboxId,
}

impl SendKeys {
    fn of(s: &ScheduledSend) -> Self {
        Self {
            id: s.id,
            status: s.status(),
            planned_at: s.planned_at(),
            lease_until: s.lease().map(|l| l.until),
            mailbox: s.mailbox(),
        }
    }
}

/// What an enrollment's indexes depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EnrollmentKeys {
    id: EnrollmentId,
    due: Option<DueSlot>,
    open: bool,
    sequence: SequenceId,
    contact: ContactId,
    enrolled_at: DateTime<Utc>,
}

impl EnrollmentKeys {
    fn of(e: &Enrollment) -> Self {
        Self {
            id: e.id,
            due: DueSlot::of(e),
            open: !e.is_final(),
            sequence: e.sequence,
            contact: e.contact,
            enrolled_at: e.enrolled_at,
        }
    }

    fn pair(self) -> (SequenceId, ContactId) {
        (self.sequence, self.contact)
    }

    fn identity(self) -> (SequenceId, ContactId, DateTime<Utc>) {
        (self.sequence, self.contact, self.enrolled_at)
    }
}

/// Lease tokens: random-looking v4 UUIDs drawn from a seed taken once, so that a claim
/// costs no system call.
#[derive(Debug)]
struct Tokens {
    seed: u64,
    counter: u64,
}

impl Default for Tokens {
    fn default() -> Self {
        let (hi, lo) = Uuid::new_v4().as_u64_pair();
        Self {
            seed: hi ^ lo.rotate_left(32),
            counter: 0,
        }
    }
}

impl Tokens {
    fn next(&mut self) -> Uuid {
        fn mix(mut z: u64) -> u64 {
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        self.counter = self.counter.wrapping_add(1);
        let a = mix(self
            .seed
            .wrapping_add(self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let b = mix(a ^ self.seed.rotate_left(17));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// One outbox row with what the store remembers beside it.
#[derive(Debug, Clone)]
struct SendRow {
    send: ScheduledSend,
    /// The recipient domain (from [`PlanSend::recipient_domain`]), for per-domain counts.
    domain: String,
    /// What this send added to the daily counts that calling it off takes back:
    /// `(UTC date, counted as a new start)`. Cleared once its attempt is made for good.
    pending: Option<(NaiveDate, bool)>,
    /// While sending: the mailbox's latest attempt before this claim, restored when the send
    /// is given back without an attempt.
    prev_last_attempt: Option<DateTime<Utc>>,
}

/// Per mailbox: its planned-and-unclaimed sends, the sends in flight, its latest attempt.
#[derive(Debug, Default)]
struct Outbox {
    /// Planned, unclaimed sends, earliest first.
    planned: BTreeSet<(DateTime<Utc>, SendId)>,
    /// Sends in `sending` (at most one, as claims keep it).
    sending: BTreeSet<SendId>,
    /// The latest instant of a claim.
    last_attempt_at: Option<DateTime<Utc>>,
    /// The key under which this mailbox sits in [`State::ready`], if it does.
    ready_at: Option<DateTime<Utc>>,
}

/// The counts of one UTC date that per-sequence and per-domain caps read: those of
/// [`DailyCounts`], in maps hashed as the store's others are (a plan adds to them once per
/// send).
#[derive(Debug, Default)]
pub(crate) struct DayCounts {
    new_starts: HashMap<SequenceId, u32>,
    per_domain: HashMap<(TenantId, String), u32>,
}

/// Rows and indexes.
#[derive(Debug, Default)]
pub(crate) struct State {
    sequences: HashMap<SequenceId, Sequence>,
    sequences_by_tenant: HashMap<TenantId, BTreeSet<SequenceId>>,
    mailboxes: HashMap<MailboxId, Mailbox>,
    mailboxes_by_tenant: HashMap<TenantId, BTreeSet<MailboxId>>,
    /// Shared, so that due reads hand out the row rather than a copy.
    contacts: HashMap<ContactId, Arc<Contact>>,
    /// (tenant, lower-cased address) -> contacts.
    contacts_by_email: HashMap<(TenantId, String), BTreeSet<ContactId>>,

    /// Shared with the due batches handed to planners: a change copies a row only while a
    /// batch still holds it (`Arc::make_mut`).
    enrollments: HashMap<EnrollmentId, Arc<Enrollment>>,
    /// Due enrollments by [`due_key`].
    due: DueIndex,
    /// While a plan is applied: the due keys taken out and put in since it began, brought
    /// into [`State::due`] at its end by [`DueIndex::move_keys`] (nothing reads the index in
    /// between).
    due_moves: Option<(Vec<DueSlot>, Vec<DueSlot>)>,
    /// The one active or paused enrollment of each (sequence, contact).
    open_by_pair: HashMap<(SequenceId, ContactId), EnrollmentId>,
    /// Every enrollment of each (sequence, contact), for the re-enrollment rule.
    history_by_pair: HashMap<(SequenceId, ContactId), Vec<EnrollmentId>>,
    enrollments_by_contact: HashMap<ContactId, BTreeSet<EnrollmentId>>,
    /// Per sequence, by (enrolled_at, id).
    enrollments_by_sequence: HashMap<SequenceId, BTreeSet<(DateTime<Utc>, EnrollmentId)>>,

    sends: HashMap<SendId, SendRow>,
    /// (enrollment, step) -> send: the idempotency key.
    sends_by_enrollment: HashMap<EnrollmentId, BTreeMap<u32, SendId>>,
    sends_by_sequence: HashMap<SequenceId, Vec<SendId>>,
    /// Every planned send by instant (for `next_wakeup`).
    planned: BTreeSet<(DateTime<Utc>, SendId)>,
    /// Sends in `sending` by lease expiry.
    leases: BTreeSet<(DateTime<Utc>, SendId)>,
    outboxes: HashMap<MailboxId, Outbox>,
    /// Mailboxes with no send in flight and a planned send, by the instant their earliest
    /// planned send becomes claimable (its instant, or the latest attempt plus the gap):
    /// what `claim_sends` walks.
    ready: BTreeSet<(DateTime<Utc>, MailboxId)>,
    /// Attempts plus reservations per (mailbox, mailbox-local date).
    used: HashMap<(MailboxId, NaiveDate), u32>,
    /// Attempts alone (claims not given back) per (mailbox, mailbox-local date).
    attempts: HashMap<(MailboxId, NaiveDate), u32>,
    /// The planning lease, while an engine holds it.
    planning: Option<PlanningLease>,
    /// Daily counts per UTC date.
    daily: HashMap<NaiveDate, DayCounts>,

    events: Vec<(TenantId, DateTime<Utc>, DomainEvent)>,
    tokens: Tokens,
    /// A scratch (tenant, domain) key, to look the daily per-domain counts up without a new
    /// string per send.
    domain_key: (TenantId, String),
    /// Reservations released by the current unit of work, as (mailbox, local date): the
    /// unit wakes enrollments that can use them before it returns.
    released: Vec<(MailboxId, NaiveDate)>,
    /// The pool wait of each sequence that has one (some may have ended: see
    /// [`State::lane_wait`]).
    waits: HashMap<SequenceId, PoolWait>,
    /// The mailbox wait of each mailbox that has one (some may have ended: see
    /// [`State::lane_wait`]).
    mailbox_waits: HashMap<MailboxId, MailboxWait>,
}

/// A wait on a lane of the due index: it ends at `until`, and holds back the lane's
/// enrollments due at or before `due_by` (`None`: all of them).
#[derive(Debug, Clone, Copy)]
struct LaneWait {
    until: DateTime<Utc>,
    due_by: Option<DateTime<Utc>>,
}

impl State {
    // ---- sequences and mailboxes --------------------------------------------------------------

    pub(crate) fn save_sequence(
        &mut self,
        sequence: &Sequence,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut sequence = sequence.clone();
        match (expected_version, self.sequences.get(&sequence.id)) {
            (None, Some(_)) => {
                return Err(StoreError::AlreadyExists {
                    entity: Entity::Sequence,
                    id: sequence.id.to_string(),
                })
            }
            (None, None) => {}
            (Some(_), None) => return Err(not_found(Entity::Sequence, sequence.id)),
            (Some(_), Some(stored)) if stored.tenant != sequence.tenant => {
                return Err(not_found(Entity::Sequence, sequence.id))
            }
            (Some(read), Some(stored)) if stored.version() != read => {
                return Err(conflict(
                    Entity::Sequence,
                    sequence.id,
                    read,
                    stored.version(),
                ))
            }
            (Some(read), Some(_)) => {
                sequence.set_version(written_version(sequence.version(), read));
            }
        }
        self.put_sequence(sequence);
        Ok(())
    }

    fn put_sequence(&mut self, sequence: Sequence) {
        // Its pool, caps or status may have changed: plan its backlog again.
        self.waits.remove(&sequence.id);
        self.sequences_by_tenant
            .entry(sequence.tenant)
            .or_default()
            .insert(sequence.id);
        self.sequences.insert(sequence.id, sequence);
    }

    /// Take a sequence out of the rows and of the per-tenant index.
    fn remove_sequence(&mut self, tenant: TenantId, id: SequenceId) {
        self.sequences.remove(&id);
        if let Some(ids) = self.sequences_by_tenant.get_mut(&tenant) {
            ids.remove(&id);
        }
    }

    pub(crate) fn delete_draft_sequence(
        &mut self,
        tenant: TenantId,
        id: SequenceId,
    ) -> DraftDeletion {
        let Some(stored) = self.sequences.get(&id).filter(|s| s.tenant == tenant) else {
            return DraftDeletion::NotFound;
        };
        if stored.status() != SequenceStatus::Draft {
            return DraftDeletion::NotDraft {
                status: stored.status(),
            };
        }
        if self
            .enrollments_by_sequence
            .get(&id)
            .is_some_and(|set| !set.is_empty())
        {
            return DraftDeletion::HasEnrollments;
        }
        self.remove_sequence(tenant, id);
        DraftDeletion::Deleted
    }

    pub(crate) fn get_sequence(&self, tenant: TenantId, id: SequenceId) -> Option<Sequence> {
        self.sequences
            .get(&id)
            .filter(|s| s.tenant == tenant)
            .cloned()
    }

    pub(crate) fn list_sequences(&self, tenant: TenantId) -> Vec<Sequence> {
        self.sequences_by_tenant
            .get(&tenant)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sequences.get(id))
            .cloned()
            .collect()
    }

    pub(crate) fn get_sequences(&self, ids: &[SequenceId]) -> Vec<Sequence> {
        let mut seen =
            HashSet::with_capacity_and_hasher(ids.len(), foldhash::fast::RandomState::default());
        ids.iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| self.sequences.get(id))
            .cloned()
            .collect()
    }

    pub(crate) fn save_mailbox(
        &mut self,
        mailbox: &Mailbox,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut mailbox = mailbox.clone();
        match (expected_version, self.mailboxes.get(&mailbox.id)) {
            (None, Some(_)) => {
                return Err(StoreError::AlreadyExists {
                    entity: Entity::Mailbox,
                    id: mailbox.id.to_string(),
                })
            }
            (None, None) => {}
            (Some(_), None) => return Err(not_found(Entity::Mailbox, mailbox.id)),
            (Some(_), Some(stored)) if stored.tenant != mailbox.tenant => {
                return Err(not_found(Entity::Mailbox, mailbox.id))
            }
            (Some(read), Some(stored)) if stored.version() != read => {
                return Err(conflict(
                    Entity::Mailbox,
                    mailbox.id,
                    read,
                    stored.version(),
                ))
            }
            (Some(read), Some(_)) => {
                mailbox.set_version(written_version(mailbox.version(), read));
            }
        }
        self.put_mailbox(mailbox);
        Ok(())
    }

    fn put_mailbox(&mut self, mailbox: Mailbox) {
        let id = mailbox.id;
        self.mailboxes_by_tenant
            .entry(mailbox.tenant)
            .or_default()
            .insert(id);
        let tenant = mailbox.tenant;
        self.mailboxes.insert(id, mailbox);
        // Its gap may have changed, and with it when its next send becomes claimable.
        self.refresh_ready(id);
        // Its limit, status or windows may have changed: the pools holding it may have room.
        self.end_waits_on(tenant, id);
    }

    /// End the wait of `mailbox` and the pool waits of the sequences of `tenant` whose pool
    /// holds it.
    fn end_waits_on(&mut self, tenant: TenantId, mailbox: MailboxId) {
        self.mailbox_waits.remove(&mailbox);
        if self.waits.is_empty() {
            return;
        }
        let sequences = &self.sequences;
        self.waits.retain(|id, w| {
            w.tenant != tenant
                || sequences
                    .get(id)
                    .is_some_and(|s| !s.mailbox_pool.contains(&mailbox))
        });
    }

    /// Whether `mailbox` is a mailbox of `tenant`: the only mailbox an enrollment of the
    /// tenant may be sticky to (a due read per mailbox would never find it otherwise).
    fn is_mailbox_of(&self, tenant: TenantId, mailbox: MailboxId) -> bool {
        self.mailboxes
            .get(&mailbox)
            .is_some_and(|m| m.tenant == tenant)
    }

    /// The wait that holds a lane of the due index back at `now`, if any: the pool wait of a
    /// pool lane's sequence, the mailbox wait of a mailbox lane's mailbox.
    fn lane_wait(&self, lane: Lane, now: DateTime<Utc>) -> Option<LaneWait> {
        match lane {
            Lane::Rest => None,
            Lane::Pool(seq) => self
                .waits
                .get(&seq)
                .filter(|w| w.until > now)
                .map(|w| LaneWait {
                    until: w.until,
                    due_by: None,
                }),
            Lane::Mailbox(tenant, mailbox) => {
                self.mailbox_wait(tenant, mailbox, now).map(|w| LaneWait {
                    until: w.until,
                    due_by: w.holds_due_by,
                })
            }
        }
    }

    /// The first key of a lane that no wait holds back at `now` (`None`: a wait holds the
    /// whole lane).
    fn lane_open_from(&self, lane: Lane, now: DateTime<Utc>) -> Option<DueKey> {
        match self.lane_wait(lane, now) {
            None => Some(DueKey::lowest(DateTime::<Utc>::MIN_UTC)),
            Some(LaneWait { due_by: None, .. }) => None,
            Some(LaneWait {
                due_by: Some(by), ..
            }) => Some(DueKey::after(by)),
        }
    }

    /// The first key of `lane` (whose first key is `first`) that no wait holds back at `now`.
    fn first_open_key(&self, lane: Lane, first: DueKey, now: DateTime<Utc>) -> Option<DueKey> {
        match self.lane_open_from(lane, now)? {
            from if from <= first => Some(first),
            from => self.due.first_from(lane, from),
        }
    }

    pub(crate) fn get_mailbox(&self, tenant: TenantId, id: MailboxId) -> Option<Mailbox> {
        self.mailboxes
            .get(&id)
            .filter(|m| m.tenant == tenant)
            .cloned()
    }

    pub(crate) fn list_mailboxes(&self, tenant: TenantId) -> Vec<Mailbox> {
        self.mailboxes_by_tenant
            .get(&tenant)
            .into_iter()
            .flatten()
            .filter_map(|id| self.mailboxes.get(id))
            .cloned()
            .collect()
    }

    // ---- enrollments ------------------------------------------------------------------------------

    pub(crate) fn enroll(
        &mut self,
        tenant: TenantId,
        now: DateTime<Utc>,
        rows: Vec<Enrollment>,
    ) -> Vec<EnrollOutcome> {
        rows.into_iter()
            .map(|e| self.enroll_one(tenant, now, e))
            .collect()
    }

    fn enroll_one(&mut self, tenant: TenantId, now: DateTime<Utc>, e: Enrollment) -> EnrollOutcome {
        let invalid = |reason: String| EnrollOutcome::Invalid { reason };
        if e.tenant != tenant {
            return invalid(format!("enrollment {} belongs to another tenant", e.id));
        }
        let Some(sequence) = self
            .sequences
            .get(&e.sequence)
            .filter(|s| s.tenant == tenant)
        else {
            return invalid(format!("sequence {} not found in the tenant", e.sequence));
        };
        let Some(contact) = self.contacts.get(&e.contact).filter(|c| c.tenant == tenant) else {
            return invalid(format!("contact {} not found in the tenant", e.contact));
        };
        if let Some(m) = e.mailbox().filter(|m| !self.is_mailbox_of(tenant, *m)) {
            return invalid(format!("mailbox {m} not found in the tenant"));
        }
        if let Some(reason) = suppression(contact, sequence) {
            return EnrollOutcome::Suppressed {
                reason: reason.as_str().to_owned(),
            };
        }
        let pair = (e.sequence, e.contact);
        if let Some(&open) = self.open_by_pair.get(&pair) {
            return EnrollOutcome::AlreadyEnrolled { enrollment: open };
        }
        let latest = self
            .history_by_pair
            .get(&pair)
            .into_iter()
            .flatten()
            .filter_map(|id| self.enrollments.get(id))
            .max_by_key(|p| (p.enrolled_at, p.id));
        if let Some(previous) = latest {
            if !reenrollment_allows(sequence.reenrollment, previous, now) {
                return EnrollOutcome::AlreadyEnrolled {
                    enrollment: previous.id,
                };
            }
        }
        if self.enrollments.contains_key(&e.id) {
            return invalid(format!("enrollment id {} is already used", e.id));
        }
        if e.is_final() {
            return invalid(format!("enrollment {} is already ended", e.id));
        }
        let id = e.id;
        self.put_enrollment(e);
        EnrollOutcome::Enrolled { enrollment: id }
    }

    /// Insert or replace an enrollment, keeping every index in step (only the indexes whose
    /// keys changed are touched).
    fn put_enrollment(&mut self, e: Enrollment) {
        let new = EnrollmentKeys::of(&e);
        let old = self.enrollments.get(&e.id).map(|e| EnrollmentKeys::of(e));
        if old != Some(new) {
            self.reindex_enrollment(old, new);
        }
        match self.enrollments.entry(e.id) {
            Entry::Occupied(mut slot) => *slot.get_mut() = Arc::new(e),
            Entry::Vacant(slot) => {
                slot.insert(Arc::new(e));
            }
        }
    }

    /// Change a stored enrollment in place with `f`, keeping the indexes in step (no copy of
    /// the row is made).
    fn change_enrollment<T>(
        &mut self,
        id: EnrollmentId,
        f: impl FnOnce(&mut Enrollment) -> T,
    ) -> Option<T> {
        let e = Arc::make_mut(self.enrollments.get_mut(&id)?);
        let before = EnrollmentKeys::of(e);
        let out = f(e);
        let after = EnrollmentKeys::of(e);
        if before != after {
            self.reindex_enrollment(Some(before), after);
        }
        Some(out)
    }

    fn reindex_enrollment(&mut self, old: Option<EnrollmentKeys>, new: EnrollmentKeys) {
        let id = new.id;
        let old_due = old.and_then(|o| o.due);
        if old_due != new.due {
            let (gone, come) = (old_due, new.due);
            if let Some((g, c)) = &mut self.due_moves {
                g.extend(gone);
                c.extend(come);
            } else {
                if let Some(k) = gone {
                    self.due.remove(&k);
                }
                if let Some(k) = come {
                    self.due.insert(k);
                }
            }
        }
        let identity = old.is_none_or(|o| o.identity() != new.identity());
        let was_open = old.is_some_and(|o| o.open);
        if let Some(o) = old {
            if o.open && (identity || !new.open) && self.open_by_pair.get(&o.pair()) == Some(&id) {
                self.open_by_pair.remove(&o.pair());
            }
            if identity {
                if let Some(list) = self.history_by_pair.get_mut(&o.pair()) {
                    list.retain(|x| *x != id);
                }
                if let Some(set) = self.enrollments_by_contact.get_mut(&o.contact) {
                    set.remove(&id);
                }
                if let Some(set) = self.enrollments_by_sequence.get_mut(&o.sequence) {
                    set.remove(&(o.enrolled_at, id));
                }
            }
        }
        if new.open && (identity || !was_open) {
            self.open_by_pair.insert(new.pair(), id);
        }
        if identity {
            self.history_by_pair.entry(new.pair()).or_default().push(id);
            self.enrollments_by_contact
                .entry(new.contact)
                .or_default()
                .insert(id);
            self.enrollments_by_sequence
                .entry(new.sequence)
                .or_default()
                .insert((new.enrolled_at, id));
        }
    }

    // ---- events ------------------------------------------------------------------------------------

    pub(crate) fn record_events(
        &mut self,
        tenant: TenantId,
        at: DateTime<Utc>,
        events: &[DomainEvent],
    ) {
        self.events
            .extend(events.iter().map(|e| (tenant, at, e.clone())));
    }

    pub(crate) fn events_of(&self, tenant: TenantId) -> Vec<(DateTime<Utc>, DomainEvent)> {
        self.events
            .iter()
            .filter(|(t, _, _)| *t == tenant)
            .map(|(_, at, e)| (*at, e.clone()))
            .collect()
    }

    /// Rebuild every index from the rows and compare; the first difference found.
    pub(crate) fn sizes(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.sequences.len(),
            self.mailboxes.len(),
            self.contacts.len(),
            self.enrollments.len(),
            self.sends.len(),
        )
    }
}

enum PlanOne {
    Planned(SendId),
    OverCapacity,
    Stale,
}
