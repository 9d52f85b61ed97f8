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

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sequence_core::contact::Contact;
use sequence_core::enrollment::{
    suppression, Deferral, DeferralReason, Enrollment, EnrollmentStatus,
};
use sequence_core::event::DomainEvent;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::send::{Lease, ScheduledSend, SendStatus};
use sequence_core::sequence::{ReenrollmentRule, Sequence};
use sequence_core::store::{
    ChangeSet, ClaimedSend, DailyCounts, DueEnrollment, EnrollOutcome, EnrollmentCursor,
    MailboxSnapshot, PlanApplied, PlanCommit, PlanSend, PlannedSlot, PlanningLease, SendCompletion,
    SendContext, StoreError,
};
use sequence_core::time::local_date;
use uuid::Uuid;

fn not_found(entity: &'static str, id: impl Display) -> StoreError {
    StoreError::NotFound {
        entity,
        id: id.to_string(),
    }
}

fn conflict(entity: &'static str, id: impl Display, expected: u64, found: u64) -> StoreError {
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
    match e.status {
        EnrollmentStatus::Active => e.next_due_at,
        EnrollmentStatus::Paused => e.paused_until,
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

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
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
        ReenrollmentRule::AfterExit => previous.status == EnrollmentStatus::Exited,
        ReenrollmentRule::AfterCompletion => previous.status == EnrollmentStatus::Completed,
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
            status: s.status,
            planned_at: s.planned_at,
            lease_until: s.lease.map(|l| l.until),
            mailbox: s.mailbox,
        }
    }
}

/// What an enrollment's indexes depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EnrollmentKeys {
    id: EnrollmentId,
    due: Option<DateTime<Utc>>,
    open: bool,
    sequence: SequenceId,
    contact: ContactId,
    enrolled_at: DateTime<Utc>,
}

impl EnrollmentKeys {
    fn of(e: &Enrollment) -> Self {
        Self {
            id: e.id,
            due: due_key(e),
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

/// Planned sends by instant.
type Queue = BTreeSet<(DateTime<Utc>, SendId)>;

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

/// Rows and indexes.
#[derive(Debug, Default)]
pub(crate) struct State {
    sequences: HashMap<SequenceId, Sequence>,
    sequences_by_tenant: HashMap<TenantId, BTreeSet<SequenceId>>,
    mailboxes: HashMap<MailboxId, Mailbox>,
    mailboxes_by_tenant: HashMap<TenantId, BTreeSet<MailboxId>>,
    contacts: HashMap<ContactId, Contact>,
    /// (tenant, lower-cased address) -> contacts.
    contacts_by_email: HashMap<(TenantId, String), BTreeSet<ContactId>>,

    enrollments: HashMap<EnrollmentId, Enrollment>,
    /// Due enrollments by [`due_key`].
    due: BTreeSet<(DateTime<Utc>, EnrollmentId)>,
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
    daily: HashMap<NaiveDate, DailyCounts>,

    events: Vec<(TenantId, DateTime<Utc>, DomainEvent)>,
    tokens: Tokens,
    /// Reservations released by the current unit of work, as (mailbox, local date): the
    /// unit wakes enrollments that can use them before it returns.
    released: Vec<(MailboxId, NaiveDate)>,
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
                    entity: "sequence",
                    id: sequence.id.to_string(),
                })
            }
            (None, None) => {}
            (Some(_), None) => return Err(not_found("sequence", sequence.id)),
            (Some(_), Some(stored)) if stored.tenant != sequence.tenant => {
                return Err(not_found("sequence", sequence.id))
            }
            (Some(read), Some(stored)) if stored.version != read => {
                return Err(conflict("sequence", sequence.id, read, stored.version))
            }
            (Some(read), Some(_)) => sequence.version = written_version(sequence.version, read),
        }
        self.put_sequence(sequence);
        Ok(())
    }

    fn put_sequence(&mut self, sequence: Sequence) {
        self.sequences_by_tenant
            .entry(sequence.tenant)
            .or_default()
            .insert(sequence.id);
        self.sequences.insert(sequence.id, sequence);
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
                    entity: "mailbox",
                    id: mailbox.id.to_string(),
                })
            }
            (None, None) => {}
            (Some(_), None) => return Err(not_found("mailbox", mailbox.id)),
            (Some(_), Some(stored)) if stored.tenant != mailbox.tenant => {
                return Err(not_found("mailbox", mailbox.id))
            }
            (Some(read), Some(stored)) if stored.version != read => {
                return Err(conflict("mailbox", mailbox.id, read, stored.version))
            }
            (Some(read), Some(_)) => mailbox.version = written_version(mailbox.version, read),
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
        self.mailboxes.insert(id, mailbox);
        // Its gap may have changed, and with it when its next send becomes claimable.
        self.refresh_ready(id);
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

    // ---- contacts -------------------------------------------------------------------------------

    pub(crate) fn upsert_contacts(
        &mut self,
        tenant: TenantId,
        contacts: &[Contact],
    ) -> Result<Vec<ContactId>, StoreError> {
        // Resolve every row first (nothing is written when one is refused); rows of one
        // call that share an address resolve to one contact.
        let mut batch: HashMap<String, ContactId> = HashMap::default();
        let mut targets = Vec::with_capacity(contacts.len());
        for c in contacts {
            let foreign = c.tenant != tenant
                || self
                    .contacts
                    .get(&c.id)
                    .is_some_and(|stored| stored.tenant != tenant);
            if foreign {
                return Err(not_found("contact", c.id));
            }
            let address = normalize_email(&c.email);
            let holder = batch.get(&address).copied().or_else(|| {
                self.find_contact_by_email(tenant, &c.email)
                    .map(|found| found.id)
            });
            let target = match holder {
                Some(id) => {
                    if id != c.id && self.contacts.contains_key(&c.id) {
                        // The row's own contact exists under another address, which a
                        // different contact holds: two people cannot share an address.
                        return Err(StoreError::AlreadyExists {
                            entity: "contact",
                            id: format!("{} (address {address} belongs to {id})", c.id),
                        });
                    }
                    id
                }
                None => c.id,
            };
            batch.insert(address, target);
            targets.push(target);
        }
        for (c, target) in contacts.iter().zip(&targets) {
            let stored = self.contacts.get(target).cloned();
            let contact = match stored {
                Some(mut stored) => {
                    stored.apply_host_update(c);
                    stored.version += 1;
                    stored
                }
                None => c.clone(),
            };
            self.put_contact(contact);
        }
        Ok(targets)
    }

    fn put_contact(&mut self, contact: Contact) {
        let key = (contact.tenant, normalize_email(&contact.email));
        if let Some(old) = self.contacts.get(&contact.id) {
            let old_key = (old.tenant, normalize_email(&old.email));
            if old_key != key {
                if let Entry::Occupied(mut set) = self.contacts_by_email.entry(old_key) {
                    set.get_mut().remove(&contact.id);
                    if set.get().is_empty() {
                        set.remove();
                    }
                }
            }
        }
        self.contacts_by_email
            .entry(key)
            .or_default()
            .insert(contact.id);
        self.contacts.insert(contact.id, contact);
    }

    pub(crate) fn get_contact(&self, tenant: TenantId, id: ContactId) -> Option<Contact> {
        self.contacts
            .get(&id)
            .filter(|c| c.tenant == tenant)
            .cloned()
    }

    pub(crate) fn find_contact_by_email(&self, tenant: TenantId, email: &str) -> Option<Contact> {
        self.contacts_by_email
            .get(&(tenant, normalize_email(email)))
            .and_then(|ids| ids.iter().find_map(|id| self.contacts.get(id)))
            .filter(|c| c.tenant == tenant)
            .cloned()
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
        let old = self.enrollments.get(&e.id).map(EnrollmentKeys::of);
        if old != Some(new) {
            self.reindex_enrollment(old, new);
        }
        match self.enrollments.entry(e.id) {
            Entry::Occupied(mut slot) => *slot.get_mut() = e,
            Entry::Vacant(slot) => {
                slot.insert(e);
            }
        }
    }

    fn reindex_enrollment(&mut self, old: Option<EnrollmentKeys>, new: EnrollmentKeys) {
        let id = new.id;
        let old_due = old.and_then(|o| o.due);
        if old_due != new.due {
            if let Some(k) = old_due {
                self.due.remove(&(k, id));
            }
            if let Some(k) = new.due {
                self.due.insert((k, id));
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

    pub(crate) fn get_enrollment(&self, tenant: TenantId, id: EnrollmentId) -> Option<Enrollment> {
        self.enrollments
            .get(&id)
            .filter(|e| e.tenant == tenant)
            .cloned()
    }

    pub(crate) fn list_enrollments(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Vec<Enrollment> {
        if self
            .sequences
            .get(&sequence)
            .is_none_or(|s| s.tenant != tenant)
        {
            return Vec::new();
        }
        self.enrollments_by_sequence
            .get(&sequence)
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| self.enrollments.get(id))
            .filter(|e| e.tenant == tenant)
            .cloned()
            .collect()
    }

    pub(crate) fn open_enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Vec<Enrollment> {
        let Some(list) = self.enrollments_by_sequence.get(&sequence) else {
            return Vec::new();
        };
        let from = match after {
            Some(c) => std::ops::Bound::Excluded((c.enrolled_at, c.id)),
            None => std::ops::Bound::Unbounded,
        };
        list.range((from, std::ops::Bound::Unbounded))
            .filter_map(|(_, id)| self.enrollments.get(id))
            .filter(|e| e.tenant == tenant && !e.is_final())
            .take(limit)
            .cloned()
            .collect()
    }

    pub(crate) fn open_sends_of(
        &self,
        tenant: TenantId,
        enrollments: &[EnrollmentId],
    ) -> Vec<ScheduledSend> {
        enrollments
            .iter()
            .filter_map(|id| self.sends_by_enrollment.get(id))
            .flat_map(BTreeMap::values)
            .filter_map(|id| self.sends.get(id))
            .map(|row| &row.send)
            .filter(|s| {
                s.tenant == tenant
                    && matches!(s.status, SendStatus::Planned | SendStatus::RetryWait)
            })
            .cloned()
            .collect()
    }

    pub(crate) fn open_enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Vec<Enrollment> {
        self.enrollments_by_contact
            .get(&contact)
            .into_iter()
            .flatten()
            .filter_map(|id| self.enrollments.get(id))
            .filter(|e| e.tenant == tenant && !e.is_final())
            .cloned()
            .collect()
    }

    pub(crate) fn due_enrollments(&self, now: DateTime<Utc>, limit: usize) -> Vec<DueEnrollment> {
        self.due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| {
                let enrollment = self.enrollments.get(id)?;
                let contact = self.contacts.get(&enrollment.contact)?;
                Some(DueEnrollment {
                    enrollment: enrollment.clone(),
                    contact: contact.clone(),
                })
            })
            .take(limit)
            .collect()
    }

    // ---- sends: reads --------------------------------------------------------------------------

    pub(crate) fn sends_of_enrollment(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
    ) -> Vec<ScheduledSend> {
        self.sends_by_enrollment
            .get(&enrollment)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter_map(|id| self.sends.get(id))
            .filter(|row| row.send.tenant == tenant)
            .map(|row| row.send.clone())
            .collect()
    }

    pub(crate) fn sends_of_sequence(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Vec<ScheduledSend> {
        self.sends_by_sequence
            .get(&sequence)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sends.get(id))
            .filter(|row| row.send.tenant == tenant)
            .map(|row| row.send.clone())
            .collect()
    }

    pub(crate) fn mailbox_snapshots(
        &self,
        now: DateTime<Utc>,
        ids: &[MailboxId],
    ) -> Vec<MailboxSnapshot> {
        let mut seen =
            HashSet::with_capacity_and_hasher(ids.len(), foldhash::fast::RandomState::default());
        ids.iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| {
                let mailbox = self.mailboxes.get(id)?;
                let date = local_date(mailbox.timezone, now);
                let outbox = self.outboxes.get(id);
                let planned = outbox
                    .into_iter()
                    .flat_map(|o| o.planned.iter())
                    .filter_map(|(at, sid)| {
                        let row = self.sends.get(sid)?;
                        Some(PlannedSlot {
                            send: *sid,
                            enrollment: row.send.enrollment,
                            step: row.send.step,
                            at: *at,
                        })
                    })
                    .collect();
                Some(MailboxSnapshot {
                    mailbox: mailbox.clone(),
                    local_date: date,
                    used: self.used_on(*id, date),
                    last_attempt_at: outbox.and_then(|o| o.last_attempt_at),
                    planned,
                })
            })
            .collect()
    }

    pub(crate) fn daily_counts(
        &self,
        now: DateTime<Utc>,
        sequences: &[SequenceId],
        domains: &[(TenantId, String)],
    ) -> DailyCounts {
        let mut out = DailyCounts::default();
        let Some(day) = self.daily.get(&now.date_naive()) else {
            return out;
        };
        for id in sequences {
            if let Some(n) = day.new_starts.get(id) {
                out.new_starts.insert(*id, *n);
            }
        }
        for key in domains {
            if let Some(n) = day.per_domain.get(key) {
                out.per_domain.insert(key.clone(), *n);
            }
        }
        out
    }

    pub(crate) fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        [
            self.due.first().map(|(at, _)| *at),
            self.ready.first().map(|(at, _)| *at),
            self.leases.first().map(|(until, _)| *until),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- counters -------------------------------------------------------------------------------

    fn used_on(&self, mailbox: MailboxId, date: NaiveDate) -> u32 {
        self.used.get(&(mailbox, date)).copied().unwrap_or(0)
    }

    fn reserve(&mut self, mailbox: MailboxId, date: NaiveDate) {
        let n = self.used.entry((mailbox, date)).or_insert(0);
        *n = n.saturating_add(1);
    }

    fn unreserve(&mut self, mailbox: MailboxId, date: NaiveDate) {
        if let Entry::Occupied(mut n) = self.used.entry((mailbox, date)) {
            *n.get_mut() = n.get().saturating_sub(1);
            if *n.get() == 0 {
                n.remove();
            }
        }
    }

    fn daily_add(&mut self, date: NaiveDate, send: &ScheduledSend, domain: &str, new_start: bool) {
        let day = self.daily.entry(date).or_default();
        if new_start {
            *day.new_starts.entry(send.sequence).or_insert(0) += 1;
        }
        *day.per_domain
            .entry((send.tenant, domain.to_owned()))
            .or_insert(0) += 1;
    }

    fn daily_sub(&mut self, date: NaiveDate, send: &ScheduledSend, domain: &str, new_start: bool) {
        let Some(day) = self.daily.get_mut(&date) else {
            return;
        };
        if new_start {
            if let Entry::Occupied(mut n) = day.new_starts.entry(send.sequence) {
                *n.get_mut() = n.get().saturating_sub(1);
                if *n.get() == 0 {
                    n.remove();
                }
            }
        }
        if let Entry::Occupied(mut n) = day.per_domain.entry((send.tenant, domain.to_owned())) {
            *n.get_mut() = n.get().saturating_sub(1);
            if *n.get() == 0 {
                n.remove();
            }
        }
    }

    // ---- sends: index upkeep ------------------------------------------------------------------

    fn index_send(&mut self, k: SendKeys) {
        match k.status {
            SendStatus::Planned => {
                self.planned.insert((k.planned_at, k.id));
                self.outboxes
                    .entry(k.mailbox)
                    .or_default()
                    .planned
                    .insert((k.planned_at, k.id));
            }
            SendStatus::Sending => {
                if let Some(until) = k.lease_until {
                    self.leases.insert((until, k.id));
                }
                self.outboxes
                    .entry(k.mailbox)
                    .or_default()
                    .sending
                    .insert(k.id);
            }
            _ => {}
        }
    }

    fn unindex_send(&mut self, k: SendKeys) {
        match k.status {
            SendStatus::Planned => {
                self.planned.remove(&(k.planned_at, k.id));
                if let Some(o) = self.outboxes.get_mut(&k.mailbox) {
                    o.planned.remove(&(k.planned_at, k.id));
                }
            }
            SendStatus::Sending => {
                if let Some(until) = k.lease_until {
                    self.leases.remove(&(until, k.id));
                }
                if let Some(o) = self.outboxes.get_mut(&k.mailbox) {
                    o.sending.remove(&k.id);
                }
            }
            _ => {}
        }
    }

    /// Put a mailbox in [`State::ready`] under the instant its earliest planned send becomes
    /// claimable while nothing of it is in flight; take it out otherwise.
    fn refresh_ready(&mut self, mailbox: MailboxId) {
        let gap = self.gap_of(mailbox);
        let Some(o) = self.outboxes.get_mut(&mailbox) else {
            return;
        };
        let want = ready_key(o.sending.is_empty(), &o.planned, o.last_attempt_at, gap);
        if want != o.ready_at {
            if let Some(old) = o.ready_at {
                self.ready.remove(&(old, mailbox));
            }
            if let Some(new) = want {
                self.ready.insert((new, mailbox));
            }
            o.ready_at = want;
        }
    }

    /// A mailbox's minimum gap between attempts.
    fn gap_of(&self, mailbox: MailboxId) -> Duration {
        self.mailboxes.get(&mailbox).map_or(Duration::zero(), |m| {
            Duration::seconds(i64::from(m.min_gap_seconds))
        })
    }

    fn count_attempt(&mut self, mailbox: MailboxId, date: NaiveDate) {
        *self.attempts.entry((mailbox, date)).or_insert(0) += 1;
    }

    fn uncount_attempt(&mut self, mailbox: MailboxId, date: NaiveDate) {
        if let Entry::Occupied(mut n) = self.attempts.entry((mailbox, date)) {
            *n.get_mut() = n.get().saturating_sub(1);
            if *n.get() == 0 {
                n.remove();
            }
        }
    }

    /// Change one send in place with `f`, keeping the indexes in step.
    fn update_send<T>(&mut self, id: SendId, f: impl FnOnce(&mut SendRow) -> T) -> Option<T> {
        let row = self.sends.get_mut(&id)?;
        let before = SendKeys::of(&row.send);
        let out = f(row);
        let after = SendKeys::of(&row.send);
        if before != after {
            self.unindex_send(before);
            self.index_send(after);
            self.refresh_ready(before.mailbox);
            if after.mailbox != before.mailbox {
                self.refresh_ready(after.mailbox);
            }
        }
        Some(out)
    }

    fn insert_send(&mut self, row: SendRow) {
        let s = &row.send;
        self.sends_by_enrollment
            .entry(s.enrollment)
            .or_default()
            .insert(s.step, s.id);
        self.sends_by_sequence
            .entry(s.sequence)
            .or_default()
            .push(s.id);
        let keys = SendKeys::of(s);
        self.index_send(keys);
        self.sends.insert(keys.id, row);
        self.refresh_ready(keys.mailbox);
    }

    /// Cancel a planned send (releasing its reservation and its daily counts) or one waiting
    /// for a retry (which holds no reservation). Other sends are left as they are. Returns
    /// whether the send was cancelled.
    fn cancel_send(&mut self, id: SendId, reason: &str) -> bool {
        let Some(status) = self.sends.get(&id).map(|r| r.send.status) else {
            return false;
        };
        if !matches!(status, SendStatus::Planned | SendStatus::RetryWait) {
            return false;
        }
        let done = self.update_send(id, |row| {
            row.send.cancel(reason).ok().map(|()| {
                (
                    row.send.clone(),
                    row.domain.clone(),
                    row.pending.take(),
                    row.prev_last_attempt.take(),
                )
            })
        });
        let Some(Some((send, domain, pending, _))) = done else {
            return false;
        };
        if status == SendStatus::Planned {
            self.unreserve(send.mailbox, send.local_date);
            self.released.push((send.mailbox, send.local_date));
        }
        if let Some((date, new_start)) = pending {
            self.daily_sub(date, &send, &domain, new_start);
        }
        true
    }

    /// The enrollment of a send that was called off is looked at again from `now`.
    fn release_enrollment(&mut self, id: EnrollmentId, now: DateTime<Utc>) {
        let Some(mut e) = self.enrollments.get(&id).cloned() else {
            return;
        };
        if e.release_planned(now).is_ok() {
            self.put_enrollment(e);
        }
    }

    // ---- changes -----------------------------------------------------------------------------------

    /// Check a change set without writing: every record exists in its tenant (and in
    /// `tenant`, when given), every version matches, and no (sequence, contact) gets two
    /// open enrollments.
    fn check_changes(
        &self,
        changes: &ChangeSet,
        tenant: Option<TenantId>,
    ) -> Result<(), StoreError> {
        let in_scope = |t: TenantId| tenant.is_none_or(|scope| scope == t);
        let mut contact_versions: HashMap<ContactId, u64> = HashMap::default();
        for (c, read) in &changes.contacts {
            let stored = match self.contacts.get(&c.id) {
                Some(stored) if stored.tenant == c.tenant && in_scope(c.tenant) => stored,
                _ => return Err(not_found("contact", c.id)),
            };
            let current = contact_versions
                .get(&c.id)
                .copied()
                .unwrap_or(stored.version);
            if current != *read {
                return Err(conflict("contact", c.id, *read, current));
            }
            if normalize_email(&c.email) != normalize_email(&stored.email) {
                return Err(StoreError::Invalid(format!(
                    "contact {}: an engine write may not change the address",
                    c.id
                )));
            }
            contact_versions.insert(c.id, written_version(c.version, *read));
        }
        let closing: HashSet<EnrollmentId> = changes
            .enrollments
            .iter()
            .filter(|(e, _)| e.is_final())
            .map(|(e, _)| e.id)
            .collect();
        let mut versions: HashMap<EnrollmentId, u64> = HashMap::default();
        let mut opening: HashMap<(SequenceId, ContactId), EnrollmentId> = HashMap::default();
        for (e, read) in &changes.enrollments {
            let stored = match self.enrollments.get(&e.id) {
                Some(s) if s.tenant == e.tenant && in_scope(e.tenant) => s,
                _ => return Err(not_found("enrollment", e.id)),
            };
            let current = versions.get(&e.id).copied().unwrap_or(stored.version);
            if current != *read {
                return Err(conflict("enrollment", e.id, *read, current));
            }
            versions.insert(e.id, written_version(e.version, *read));
            if !e.is_final() {
                let pair = (e.sequence, e.contact);
                let taken = self
                    .open_by_pair
                    .get(&pair)
                    .filter(|other| **other != e.id && !closing.contains(other))
                    .or_else(|| opening.get(&pair).filter(|other| **other != e.id));
                if taken.is_some() {
                    return Err(StoreError::AlreadyExists {
                        entity: "enrollment",
                        id: format!("{} (sequence {}, contact {})", e.id, e.sequence, e.contact),
                    });
                }
                opening.insert(pair, e.id);
            }
        }
        let mut seq_versions: HashMap<SequenceId, u64> = HashMap::default();
        for (s, read) in &changes.sequences {
            let stored = match self.sequences.get(&s.id) {
                Some(stored) if stored.tenant == s.tenant && in_scope(s.tenant) => stored,
                _ => return Err(not_found("sequence", s.id)),
            };
            let current = seq_versions.get(&s.id).copied().unwrap_or(stored.version);
            if current != *read {
                return Err(conflict("sequence", s.id, *read, current));
            }
            seq_versions.insert(s.id, written_version(s.version, *read));
        }
        let mut mb_versions: HashMap<MailboxId, u64> = HashMap::default();
        for (m, read) in &changes.mailboxes {
            let stored = match self.mailboxes.get(&m.id) {
                Some(stored) if stored.tenant == m.tenant && in_scope(m.tenant) => stored,
                _ => return Err(not_found("mailbox", m.id)),
            };
            let current = mb_versions.get(&m.id).copied().unwrap_or(stored.version);
            if current != *read {
                return Err(conflict("mailbox", m.id, *read, current));
            }
            mb_versions.insert(m.id, written_version(m.version, *read));
        }
        Ok(())
    }

    /// Write a change set that [`State::check_changes`] accepted.
    fn write_changes(&mut self, changes: ChangeSet, tenant: Option<TenantId>) {
        for (mut c, read) in changes.contacts {
            let current = self.contacts.get(&c.id).map_or(read, |st| st.version);
            c.version = written_version(c.version, current);
            self.put_contact(c);
        }
        for (mut e, read) in changes.enrollments {
            let current = self.enrollments.get(&e.id).map_or(read, |s| s.version);
            e.version = written_version(e.version, current);
            self.put_enrollment(e);
        }
        for id in changes.cancel_sends {
            let ours = self
                .sends
                .get(&id)
                .is_some_and(|row| tenant.is_none_or(|t| t == row.send.tenant));
            if ours {
                self.cancel_send(id, "called off");
            }
        }
        for (mut s, read) in changes.sequences {
            let current = self.sequences.get(&s.id).map_or(read, |st| st.version);
            s.version = written_version(s.version, current);
            self.put_sequence(s);
        }
        for (mut m, read) in changes.mailboxes {
            let current = self.mailboxes.get(&m.id).map_or(read, |st| st.version);
            m.version = written_version(m.version, current);
            self.put_mailbox(m);
        }
        for mark in changes.tracking {
            if let Some(row) = self.sends.get_mut(&mark.send) {
                if tenant.is_none_or(|t| t == row.send.tenant) {
                    row.send.mark(mark.kind, mark.at);
                }
            }
        }
    }

    pub(crate) fn apply_changes(
        &mut self,
        now: DateTime<Utc>,
        changes: ChangeSet,
    ) -> Result<(), StoreError> {
        self.check_changes(&changes, None)?;
        self.write_changes(changes, None);
        self.wake_for_released(now);
        Ok(())
    }

    /// Capacity a unit of work released on a mailbox's current local day goes to waiting
    /// enrollments the same day: for each released unit, up to two active enrollments
    /// deferred for capacity or windows that the mailbox can serve (its sequence's pool holds
    /// it, and it is not sticky to another active mailbox) are made due at `now`, soonest
    /// first. Two, because one woken may still not fit (its recipient's hours).
    fn wake_for_released(&mut self, now: DateTime<Utc>) {
        /// How far down the due index one released unit looks.
        const SCAN: usize = 512;
        for (mailbox, date) in std::mem::take(&mut self.released) {
            let Some(m) = self.mailboxes.get(&mailbox) else {
                continue;
            };
            if !m.is_active() || local_date(m.timezone, now) != date {
                continue;
            }
            let tenant = m.tenant;
            let from = (now, EnrollmentId(Uuid::nil()));
            let woken: Vec<EnrollmentId> = self
                .due
                .range(from..)
                .take(SCAN)
                .filter_map(|(_, id)| self.enrollments.get(id))
                .filter(|e| {
                    e.tenant == tenant
                        && e.status == EnrollmentStatus::Active
                        && e.deferral.is_some_and(|d| {
                            matches!(
                                d.reason,
                                DeferralReason::NoCapacity
                                    | DeferralReason::OutsideMailboxWindow
                                    | DeferralReason::OutsideRecipientWindow
                            )
                        })
                        && e.mailbox.is_none_or(|sticky| {
                            sticky == mailbox
                                || self.mailboxes.get(&sticky).is_none_or(|s| !s.is_active())
                        })
                        && self
                            .sequences
                            .get(&e.sequence)
                            .is_some_and(|s| s.mailbox_pool.contains(&mailbox))
                })
                .take(2)
                .map(|e| e.id)
                .collect();
            for id in woken {
                if let Some(mut e) = self.enrollments.get(&id).cloned() {
                    if e.wake(now) {
                        self.put_enrollment(e);
                    }
                }
            }
        }
    }

    // ---- planning -------------------------------------------------------------------------------

    pub(crate) fn acquire_planning(
        &mut self,
        now: DateTime<Utc>,
        token: Uuid,
        lease_for: Duration,
    ) -> Option<PlanningLease> {
        let free = self
            .planning
            .is_none_or(|held| held.token == token || held.until <= now);
        if !free {
            return None;
        }
        let lease = PlanningLease {
            token,
            until: now
                .checked_add_signed(lease_for)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        self.planning = Some(lease);
        Some(lease)
    }

    pub(crate) fn release_planning(&mut self, lease: PlanningLease) {
        if self.planning.is_some_and(|held| held.token == lease.token) {
            self.planning = None;
        }
    }

    pub(crate) fn apply_plan(
        &mut self,
        now: DateTime<Utc>,
        plan: PlanCommit,
    ) -> Result<PlanApplied, StoreError> {
        if let Some(lease) = plan.planning {
            let held = self
                .planning
                .is_some_and(|held| held.token == lease.token && held.until > now);
            if !held {
                return Err(StoreError::PlanningLeaseLost);
            }
        }
        let mut out = PlanApplied::default();
        for id in plan.preempt {
            let Some(enrollment) = self.sends.get(&id).map(|r| r.send.enrollment) else {
                continue;
            };
            if self.sends.get(&id).map(|r| r.send.status) != Some(SendStatus::Planned) {
                continue;
            }
            if self.cancel_send(id, "pre-empted by a follow-up") {
                self.release_enrollment(enrollment, now);
            }
        }
        // A pre-empted unit goes to the follow-up that took it, not to a waiting enrollment.
        self.released.clear();
        for ps in plan.sends {
            match self.plan_one(&ps) {
                PlanOne::Planned(id) => out.planned.push(id),
                PlanOne::OverCapacity => out.over_capacity.push(ps.enrollment),
                PlanOne::Stale => out.stale.push(ps.enrollment),
            }
        }
        for d in plan.deferrals {
            let Some(mut e) = self.enrollments.get(&d.enrollment).cloned() else {
                continue;
            };
            if e.version == d.enrollment_version && e.defer(d.deferral).is_ok() {
                self.put_enrollment(e);
            }
        }
        Ok(out)
    }

    fn plan_one(&mut self, ps: &PlanSend) -> PlanOne {
        let Some(e) = self.enrollments.get(&ps.enrollment) else {
            return PlanOne::Stale;
        };
        if e.version != ps.enrollment_version
            || e.status != EnrollmentStatus::Active
            || e.current_step != ps.step
        {
            return PlanOne::Stale;
        }
        let (tenant, sequence, contact) = (e.tenant, e.sequence, e.contact);
        if self
            .mailboxes
            .get(&ps.mailbox)
            .is_none_or(|m| m.tenant != tenant)
        {
            // No plan can ever use this mailbox: park the enrollment (a pool change wakes
            // it) rather than leave it due at the same instant.
            if let Some(mut e) = self.enrollments.get(&ps.enrollment).cloned() {
                let parked = Deferral {
                    reason: DeferralReason::NoActiveMailboxInPool,
                    not_before: None,
                };
                if e.defer(parked).is_ok() {
                    self.put_enrollment(e);
                }
            }
            return PlanOne::Stale;
        }
        let existing = self
            .sends_by_enrollment
            .get(&ps.enrollment)
            .and_then(|steps| steps.get(&ps.step))
            .copied();
        if let Some(id) = existing {
            let reusable = self.sends.get(&id).is_some_and(|row| {
                matches!(
                    row.send.status,
                    SendStatus::RetryWait | SendStatus::Cancelled
                )
            });
            if !reusable {
                return PlanOne::Stale;
            }
        }
        if self.used_on(ps.mailbox, ps.local_date) >= ps.limit {
            return PlanOne::OverCapacity;
        }
        let send = match existing {
            Some(id) => {
                let replanned = self.update_send(id, |row| {
                    // Waiting for a retry, or called off before it went out (pre-empted,
                    // released, paused): planned again in place, keeping its id and attempts,
                    // so (enrollment, step) stays one row.
                    let ok = row.send.replan(ps.mailbox, ps.at, ps.local_date).is_ok();
                    if ok {
                        if row.send.attempts == 0 {
                            // Nothing went out yet: the Message-ID follows the new mailbox.
                            row.send.message_id.clone_from(&ps.message_id);
                        }
                        row.domain.clone_from(&ps.recipient_domain);
                    }
                    ok.then(|| row.send.clone())
                });
                match replanned {
                    Some(Some(send)) => send,
                    _ => return PlanOne::Stale,
                }
            }
            None => {
                let mut send = ScheduledSend::planned(
                    tenant,
                    ps.enrollment,
                    sequence,
                    contact,
                    ps.step,
                    ps.mailbox,
                    ps.at,
                    ps.local_date,
                    ps.message_id.clone(),
                    ps.variant,
                );
                // Deterministic: the idempotency key names the row.
                send.id = SendId::from_name(&format!("{}/{}", ps.enrollment, ps.step));
                self.insert_send(SendRow {
                    send: send.clone(),
                    domain: ps.recipient_domain.clone(),
                    pending: None,
                    prev_last_attempt: None,
                });
                send
            }
        };
        self.reserve(ps.mailbox, ps.local_date);
        let new_start = send.step == 0 && send.attempts == 0;
        let date = send.planned_at.date_naive();
        self.daily_add(date, &send, &ps.recipient_domain, new_start);
        if let Some(row) = self.sends.get_mut(&send.id) {
            row.pending = Some((date, new_start));
        }
        if let Some(mut e) = self.enrollments.get(&ps.enrollment).cloned() {
            if e.mark_planned(ps.mailbox).is_ok() {
                self.put_enrollment(e);
            }
        }
        PlanOne::Planned(send.id)
    }

    // ---- dispatch --------------------------------------------------------------------------------

    pub(crate) fn claim_sends(
        &mut self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Vec<ClaimedSend> {
        let until = now
            .checked_add_signed(lease_for)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // One candidate per mailbox with nothing in flight, by its earliest planned send.
        let candidates: Vec<MailboxId> = self
            .ready
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, mailbox)| *mailbox)
            .collect();
        let mut out = Vec::with_capacity(candidates.len());
        for mailbox in candidates {
            let Some(outbox) = self.outboxes.get(&mailbox) else {
                continue;
            };
            let Some(&(_, id)) = outbox.planned.first() else {
                continue;
            };
            let prev = outbox.last_attempt_at;
            let Some(row) = self.sends.get(&id) else {
                continue;
            };
            let (Some(enrollment), Some(contact)) = (
                self.enrollments.get(&row.send.enrollment),
                self.contacts.get(&row.send.contact),
            ) else {
                continue;
            };
            let (enrollment, contact) = (enrollment.clone(), contact.clone());
            let lease = Lease {
                token: self.tokens.next(),
                attempt: row.send.attempts.saturating_add(1),
                until,
            };
            let claimed = self.update_send(id, |row| {
                row.send.claim(lease).ok().map(|()| {
                    row.prev_last_attempt = prev;
                    row.send.clone()
                })
            });
            let Some(Some(send)) = claimed else {
                continue;
            };
            if let Some(o) = self.outboxes.get_mut(&mailbox) {
                o.last_attempt_at = Some(prev.map_or(now, |p| p.max(now)));
            }
            self.count_attempt(mailbox, send.local_date);
            out.push(ClaimedSend {
                send,
                lease,
                enrollment,
                contact,
            });
        }
        out
    }

    pub(crate) fn send_context(&self, tenant: TenantId, id: SendId) -> Option<SendContext> {
        let send = &self
            .sends
            .get(&id)
            .filter(|r| r.send.tenant == tenant)?
            .send;
        Some(SendContext {
            enrollment: self.enrollments.get(&send.enrollment).cloned(),
            contact: self.contacts.get(&send.contact).cloned(),
            mailbox: self.mailboxes.get(&send.mailbox).cloned(),
            sequence: self.sequences.get(&send.sequence).cloned(),
            attempts_on_day: self
                .attempts
                .get(&(send.mailbox, send.local_date))
                .copied()
                .unwrap_or(0),
        })
    }

    pub(crate) fn complete_send(
        &mut self,
        now: DateTime<Utc>,
        completion: SendCompletion,
    ) -> Result<(), StoreError> {
        let SendCompletion {
            send,
            lease,
            enrollment,
            enrollment_version,
            attempted_at,
            changes,
        } = completion;
        let id = send.id;
        let Some(row) = self.sends.get(&id) else {
            return Err(not_found("send", id));
        };
        if row.send.check_lease(&lease).is_err() {
            return Err(StoreError::LeaseLost { send: id });
        }
        if !matches!(
            send.status,
            SendStatus::Sent | SendStatus::RetryWait | SendStatus::Failed
        ) {
            return Err(StoreError::Backend(format!(
                "complete_send: send {id} must be sent, retry_wait or failed, not {:?}",
                send.status
            )));
        }
        let tenant = row.send.tenant;
        let row_mailbox = row.send.mailbox;
        if enrollment.id != row.send.enrollment {
            return Err(not_found("enrollment", enrollment.id));
        }
        let mut all = changes;
        all.enrollments.insert(0, (enrollment, enrollment_version));
        self.check_changes(&all, Some(tenant))?;

        // Nothing can fail from here on.
        // The mailbox's latest attempt is when the transport was called, not the claim.
        if let Some(o) = self.outboxes.get_mut(&row_mailbox) {
            o.last_attempt_at = o.last_attempt_at.max(Some(attempted_at));
        }
        let at = send.sent_at.unwrap_or(now);
        let error = send.last_error.clone().unwrap_or_default();
        let outcome = send.status;
        self.update_send(id, |row| {
            let done = match outcome {
                SendStatus::Sent => row.send.mark_sent(&lease, at),
                _ => row
                    .send
                    .mark_failed(&lease, error, outcome == SendStatus::RetryWait),
            };
            if done.is_ok() {
                // The attempt is made: its counts stay.
                row.pending = None;
                row.prev_last_attempt = None;
            }
        });
        self.write_changes(all, Some(tenant));
        self.wake_for_released(now);
        Ok(())
    }

    pub(crate) fn release_send(
        &mut self,
        now: DateTime<Utc>,
        id: SendId,
        lease: Lease,
        replan_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let Some(row) = self.sends.get(&id) else {
            return Err(not_found("send", id));
        };
        if row.send.check_lease(&lease).is_err() {
            return Err(StoreError::LeaseLost { send: id });
        }
        let at = replan_at.unwrap_or(now);
        let released = self.update_send(id, |row| {
            row.send.release(&lease, at).ok().map(|()| {
                (
                    row.prev_last_attempt.take(),
                    row.pending,
                    row.send.clone(),
                    row.domain.clone(),
                )
            })
        });
        let Some(Some((prev, pending, send, domain))) = released else {
            return Err(StoreError::LeaseLost { send: id });
        };
        // No attempt was made: the mailbox's latest attempt is the one before this claim.
        if let Some(o) = self.outboxes.get_mut(&send.mailbox) {
            o.last_attempt_at = prev;
        }
        self.uncount_attempt(send.mailbox, send.local_date);
        self.refresh_ready(send.mailbox);
        if replan_at.is_some() {
            // The reservation is kept; the daily counts follow the new instant's UTC date.
            if let Some((old, new_start)) = pending {
                let new = send.planned_at.date_naive();
                if new != old {
                    self.daily_sub(old, &send, &domain, new_start);
                    self.daily_add(new, &send, &domain, new_start);
                    if let Some(row) = self.sends.get_mut(&id) {
                        row.pending = Some((new, new_start));
                    }
                }
            }
        } else if self.cancel_send(id, "given back before sending") {
            self.release_enrollment(send.enrollment, now);
            self.wake_for_released(now);
        }
        Ok(())
    }

    pub(crate) fn expire_leases(&mut self, now: DateTime<Utc>, resend: bool) -> Vec<ScheduledSend> {
        let expired: Vec<SendId> = self
            .leases
            .iter()
            .take_while(|(until, _)| *until <= now)
            .map(|(_, id)| *id)
            .collect();
        let mut out = Vec::with_capacity(expired.len());
        for id in expired {
            // Re-checked here, under the lock: still sending, lease still run out.
            let Some(row) = self.sends.get(&id) else {
                continue;
            };
            if row.send.lease.is_none_or(|l| l.until > now) {
                continue;
            }
            if row.send.status != SendStatus::Sending {
                continue;
            }
            let changed = self.update_send(id, |row| {
                let done = if resend {
                    row.send.abandon_expired(now)
                } else {
                    row.send.mark_uncertain(now)
                };
                done.ok().map(|()| {
                    // The attempt may have gone out: it stays counted on its day.
                    row.pending = None;
                    row.prev_last_attempt = None;
                    row.send.clone()
                })
            });
            let Some(Some(send)) = changed else {
                continue;
            };
            if resend {
                // At least once: the step is planned again by the planner, inside capacity.
                self.release_enrollment(send.enrollment, now);
            }
            out.push(send);
        }
        out
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
    #[allow(clippy::too_many_lines)]
    pub(crate) fn check_indexes(&self) -> Result<(), String> {
        #[allow(clippy::needless_pass_by_value)]
        fn same<T: PartialEq + std::fmt::Debug>(
            what: &str,
            kept: T,
            rebuilt: T,
        ) -> Result<(), String> {
            if kept == rebuilt {
                Ok(())
            } else {
                Err(format!("{what}: index {kept:?} but rows say {rebuilt:?}"))
            }
        }
        fn non_empty<K: Clone + Ord, V: Clone + Ord>(
            map: &HashMap<K, BTreeSet<V>>,
        ) -> BTreeMap<K, BTreeSet<V>> {
            map.iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
        // Sequences, mailboxes, contacts.
        let mut by_tenant: HashMap<TenantId, BTreeSet<SequenceId>> = HashMap::default();
        for s in self.sequences.values() {
            by_tenant.entry(s.tenant).or_default().insert(s.id);
        }
        same(
            "sequences by tenant",
            non_empty(&self.sequences_by_tenant),
            non_empty(&by_tenant),
        )?;
        let mut by_tenant: HashMap<TenantId, BTreeSet<MailboxId>> = HashMap::default();
        for m in self.mailboxes.values() {
            by_tenant.entry(m.tenant).or_default().insert(m.id);
        }
        same(
            "mailboxes by tenant",
            non_empty(&self.mailboxes_by_tenant),
            non_empty(&by_tenant),
        )?;
        let mut by_email: HashMap<(TenantId, String), BTreeSet<ContactId>> = HashMap::default();
        for c in self.contacts.values() {
            by_email
                .entry((c.tenant, normalize_email(&c.email)))
                .or_default()
                .insert(c.id);
        }
        same(
            "contacts by email",
            non_empty(&self.contacts_by_email),
            non_empty(&by_email),
        )?;

        // Enrollments.
        let due: BTreeSet<(DateTime<Utc>, EnrollmentId)> = self
            .enrollments
            .values()
            .filter_map(|e| due_key(e).map(|k| (k, e.id)))
            .collect();
        same("due enrollments", &self.due, &due)?;
        let mut open: HashMap<(SequenceId, ContactId), EnrollmentId> = HashMap::default();
        let mut history: HashMap<(SequenceId, ContactId), BTreeSet<EnrollmentId>> =
            HashMap::default();
        let mut by_contact: HashMap<ContactId, BTreeSet<EnrollmentId>> = HashMap::default();
        let mut by_sequence: HashMap<SequenceId, BTreeSet<(DateTime<Utc>, EnrollmentId)>> =
            HashMap::default();
        for e in self.enrollments.values() {
            let pair = (e.sequence, e.contact);
            if !e.is_final() {
                if let Some(other) = open.insert(pair, e.id) {
                    return Err(format!(
                        "two open enrollments {other} and {} of one (sequence, contact)",
                        e.id
                    ));
                }
            }
            history.entry(pair).or_default().insert(e.id);
            by_contact.entry(e.contact).or_default().insert(e.id);
            by_sequence
                .entry(e.sequence)
                .or_default()
                .insert((e.enrolled_at, e.id));
        }
        same(
            "open enrollment per (sequence, contact)",
            self.open_by_pair.iter().collect::<BTreeMap<_, _>>(),
            open.iter().collect::<BTreeMap<_, _>>(),
        )?;
        let kept_history: HashMap<(SequenceId, ContactId), BTreeSet<EnrollmentId>> = self
            .history_by_pair
            .iter()
            .map(|(k, v)| (*k, v.iter().copied().collect()))
            .collect();
        if self
            .history_by_pair
            .values()
            .any(|v| v.len() != v.iter().collect::<HashSet<_>>().len())
        {
            return Err("an enrollment is listed twice in a (sequence, contact) history".into());
        }
        same(
            "enrollment history",
            non_empty(&kept_history),
            non_empty(&history),
        )?;
        same(
            "enrollments by contact",
            non_empty(&self.enrollments_by_contact),
            non_empty(&by_contact),
        )?;
        same(
            "enrollments by sequence",
            non_empty(&self.enrollments_by_sequence),
            non_empty(&by_sequence),
        )?;

        // Sends.
        let mut keys: HashMap<EnrollmentId, BTreeMap<u32, SendId>> = HashMap::default();
        let mut by_seq: HashMap<SequenceId, BTreeSet<SendId>> = HashMap::default();
        let mut planned = BTreeSet::new();
        let mut leases = BTreeSet::new();
        let mut per_box: HashMap<MailboxId, (Queue, BTreeSet<SendId>)> = HashMap::default();
        let mut held: HashMap<(MailboxId, NaiveDate), u32> = HashMap::default();
        for (id, row) in &self.sends {
            let s = &row.send;
            if *id != s.id {
                return Err(format!("send row {id} holds send {}", s.id));
            }
            if keys
                .entry(s.enrollment)
                .or_default()
                .insert(s.step, s.id)
                .is_some()
            {
                return Err(format!("two sends for ({}, {})", s.enrollment, s.step));
            }
            by_seq.entry(s.sequence).or_default().insert(s.id);
            match s.status {
                SendStatus::Planned => {
                    planned.insert((s.planned_at, s.id));
                    per_box
                        .entry(s.mailbox)
                        .or_default()
                        .0
                        .insert((s.planned_at, s.id));
                    *held.entry((s.mailbox, s.local_date)).or_insert(0) += 1;
                }
                SendStatus::Sending => {
                    let lease = s
                        .lease
                        .ok_or_else(|| format!("send {} sending without a lease", s.id))?;
                    leases.insert((lease.until, s.id));
                    per_box.entry(s.mailbox).or_default().1.insert(s.id);
                    *held.entry((s.mailbox, s.local_date)).or_insert(0) += 1;
                }
                _ => {}
            }
        }
        same(
            "sends by (enrollment, step)",
            self.sends_by_enrollment
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, v.clone()))
                .collect::<BTreeMap<_, _>>(),
            keys.into_iter().collect::<BTreeMap<_, _>>(),
        )?;
        let kept_by_seq: HashMap<SequenceId, BTreeSet<SendId>> = self
            .sends_by_sequence
            .iter()
            .map(|(k, v)| (*k, v.iter().copied().collect()))
            .collect();
        if self.sends_by_sequence.values().map(Vec::len).sum::<usize>() != self.sends.len() {
            return Err("sends by sequence: a send is listed twice or missing".into());
        }
        same(
            "sends by sequence",
            non_empty(&kept_by_seq),
            non_empty(&by_seq),
        )?;
        same("planned sends", &self.planned, &planned)?;
        same("leases", &self.leases, &leases)?;
        let mut ready = BTreeSet::new();
        for (m, o) in &self.outboxes {
            let (p, sending) = per_box.remove(m).unwrap_or_default();
            same("a mailbox's planned sends", &o.planned, &p)?;
            same("a mailbox's sends in flight", &o.sending, &sending)?;
            if sending.len() > 1 {
                return Err(format!("mailbox {m} has {} sends in flight", sending.len()));
            }
            let want = ready_key(sending.is_empty(), &p, o.last_attempt_at, self.gap_of(*m));
            same("a mailbox's ready key", o.ready_at, want)?;
            if let Some(at) = want {
                ready.insert((at, *m));
            }
        }
        if let Some((m, _)) = per_box
            .iter()
            .find(|(_, (p, s))| !p.is_empty() || !s.is_empty())
        {
            return Err(format!("mailbox {m} has sends but no outbox"));
        }
        same("ready mailboxes", &self.ready, &ready)?;
        for (key, n) in &held {
            let counted = self.used.get(key).copied().unwrap_or(0);
            if counted < *n {
                return Err(format!(
                    "mailbox-day {key:?} counts {counted} but holds {n} planned or sending sends"
                ));
            }
        }
        if self.used.values().any(|n| *n == 0) {
            return Err("a mailbox-day count of zero is kept".into());
        }
        for (key, n) in &self.attempts {
            let counted = self.used.get(key).copied().unwrap_or(0);
            if counted < *n {
                return Err(format!(
                    "mailbox-day {key:?} counts {counted} but holds {n} attempts"
                ));
            }
        }
        Ok(())
    }

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
