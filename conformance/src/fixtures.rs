//! Small worlds the cases build in a fresh store, and helpers that drive a store the way the
//! engine does (plan, claim, complete) without the engine.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use sequence_core::contact::Contact;
use sequence_core::enrollment::Enrollment;
use sequence_core::ids::{EnrollmentId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::send::{message_id, ScheduledSend};
use sequence_core::sequence::{Sequence, Step};
use sequence_core::store::{
    ChangeSet, ClaimedSend, DueDocuments, DueEnrollment, EnrollOutcome, MailboxSnapshot,
    PlanApplied, PlanCommit, PlanSend, SendCompletion, Store, StoreError,
};
use sequence_core::time::{local_date, Delay, DelayUnit};

/// The instant most cases happen at: Monday 2026-03-09 10:00:00 UTC (whole seconds, so every
/// backend stores it exactly).
#[must_use]
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, 10, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `t0` plus `minutes`.
#[must_use]
pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

/// Unwrap a store answer, naming the operation that failed.
///
/// # Panics
/// When the store returned an error.
#[track_caller]
pub fn ok<T>(what: &str, r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: the store failed: {e}"),
    }
}

/// Unwrap an option, naming what was missing.
///
/// # Panics
/// When `None`.
#[track_caller]
pub fn some<T>(what: &str, v: Option<T>) -> T {
    match v {
        Some(v) => v,
        None => panic!("{what}: expected a value, found none"),
    }
}

/// The documents of each row of a due read, in its order: those the row came with, else
/// read with [`Outbox::due_documents`](sequence_core::store::Outbox::due_documents). Each
/// row's planning fields must be those of its documents, and the documents those of its
/// enrollment and contact.
///
/// # Panics
/// When the store fails, leaves a row's documents out, or a row disagrees with them.
pub async fn due_documents<S: Store>(store: &S, due: &[DueEnrollment]) -> Vec<DueDocuments> {
    let missing: Vec<(TenantId, EnrollmentId)> = due
        .iter()
        .filter(|d| d.documents.is_none())
        .map(|d| (d.tenant, d.id))
        .collect();
    let mut read: std::collections::HashMap<EnrollmentId, DueDocuments> =
        ok("due_documents", store.due_documents(&missing).await)
            .into_iter()
            .map(|d| (d.enrollment.id, d))
            .collect();
    due.iter()
        .map(|d| {
            let documents = match &d.documents {
                Some(documents) => documents.clone(),
                None => some("due_documents (of a due row)", read.remove(&d.id)),
            };
            let whole = DueEnrollment::of(
                std::sync::Arc::clone(&documents.enrollment),
                std::sync::Arc::clone(&documents.contact),
            );
            // The fields alone, the domain as asked for.
            let fields = |row: &DueEnrollment| DueEnrollment {
                domain: Some(row.recipient_domain()),
                documents: None,
                ..row.clone()
            };
            assert_eq!(
                fields(&whole),
                fields(d),
                "a due enrollment's planning fields must be those of its stored enrollment and contact"
            );
            documents
        })
        .collect()
}

/// A draft sequence with `steps` steps (step 0 at once, then one a day), ready to save.
///
/// # Panics
/// Never for the fixed inputs used here.
#[must_use]
pub fn sequence(tenant: TenantId, name: &str, steps: u32, pool: &[Mailbox]) -> Sequence {
    let mut s = match Sequence::new(tenant, name, t0()) {
        Ok(s) => s,
        Err(e) => panic!("fixture sequence: {e}"),
    };
    for i in 0..steps {
        let delay = if i == 0 {
            Delay::ZERO
        } else {
            Delay::new(1, DelayUnit::Days)
        };
        let step = Step::new(
            delay,
            format!("Step {i} for {{{{ first_name }}}}"),
            "Hello.",
        );
        if let Err(e) = s.add_step(step) {
            panic!("fixture sequence step: {e}");
        }
    }
    if !pool.is_empty() {
        if let Err(e) = s.set_mailbox_pool(pool.iter().map(|m| m.id).collect()) {
            panic!("fixture sequence pool: {e}");
        }
        if let Err(e) = s.activate() {
            panic!("fixture sequence activate: {e}");
        }
    }
    // Events are not stored; drop them so stored and built copies compare equal.
    let _ = s.drain_events();
    s
}

/// A mailbox open always, in `zone`, with `limit` a day.
///
/// # Panics
/// Never for the fixed inputs used here.
#[must_use]
pub fn mailbox(tenant: TenantId, name: &str, zone: Tz, limit: u32) -> Mailbox {
    match Mailbox::new(tenant, format!("{name}@sender.example"), zone) {
        Ok(m) => m.with_daily_limit(limit),
        Err(e) => panic!("fixture mailbox: {e}"),
    }
}

/// A contact `name@domain`.
///
/// # Panics
/// Never for the fixed inputs used here.
#[must_use]
pub fn contact(tenant: TenantId, name: &str, domain: &str) -> Contact {
    match Contact::new(tenant, format!("{name}@{domain}")) {
        Ok(c) => c.with_name(name, "Doe"),
        Err(e) => panic!("fixture contact: {e}"),
    }
}

/// One tenant's mailboxes, an active sequence over all of them, and contacts.
#[derive(Debug, Clone)]
pub struct World {
    /// The tenant.
    pub tenant: TenantId,
    /// Its mailboxes (UTC, open always).
    pub mailboxes: Vec<Mailbox>,
    /// An active sequence over every mailbox.
    pub sequence: Sequence,
    /// Contacts `c{i}@d{i}.example`.
    pub contacts: Vec<Contact>,
}

impl World {
    /// Store a world: `mailboxes` mailboxes (UTC, `limit` a day), a sequence of `steps`
    /// steps, `contacts` contacts, all in a new tenant.
    pub async fn build<S: Store + ?Sized>(
        store: &S,
        mailboxes: usize,
        limit: u32,
        steps: u32,
        contacts: usize,
    ) -> Self {
        Self::build_in(store, TenantId::new(), mailboxes, limit, steps, contacts).await
    }

    /// [`World::build`] in a given tenant.
    pub async fn build_in<S: Store + ?Sized>(
        store: &S,
        tenant: TenantId,
        mailboxes: usize,
        limit: u32,
        steps: u32,
        contacts: usize,
    ) -> Self {
        let mailboxes: Vec<Mailbox> = (0..mailboxes)
            .map(|i| mailbox(tenant, &format!("m{i}"), chrono_tz::UTC, limit))
            .collect();
        for m in &mailboxes {
            ok("fixture: save_mailbox", store.save_mailbox(m, None).await);
        }
        let sequence = sequence(tenant, "Fixture", steps, &mailboxes);
        ok(
            "fixture: save_sequence",
            store.save_sequence(&sequence, None).await,
        );
        let contacts: Vec<Contact> = (0..contacts)
            .map(|i| contact(tenant, &format!("c{i}"), &format!("d{i}.example")))
            .collect();
        ok(
            "fixture: upsert_contacts",
            store.upsert_contacts(tenant, &contacts).await,
        );
        Self {
            tenant,
            mailboxes,
            sequence,
            contacts,
        }
    }

    /// Enroll every contact with its first step due at `due`; the stored enrollments.
    ///
    /// # Panics
    /// When a row is not enrolled.
    pub async fn enroll_all<S: Store + ?Sized>(
        &self,
        store: &S,
        due: DateTime<Utc>,
    ) -> Vec<Enrollment> {
        let rows: Vec<Enrollment> = self
            .contacts
            .iter()
            .map(|c| Enrollment::new(self.tenant, self.sequence.id, c.id, t0(), due))
            .collect();
        let answers = ok(
            "fixture: enroll",
            store.enroll(self.tenant, t0(), rows).await,
        );
        let mut out = Vec::with_capacity(answers.len());
        for a in answers {
            let EnrollOutcome::Enrolled { enrollment } = a else {
                panic!("fixture: enroll refused a row: {a:?}");
            };
            out.push(self.enrollment(store, enrollment).await);
        }
        out
    }

    /// The stored enrollment `id`.
    ///
    /// # Panics
    /// When it is not found.
    pub async fn enrollment<S: Store + ?Sized>(&self, store: &S, id: EnrollmentId) -> Enrollment {
        some(
            "get_enrollment",
            ok(
                "get_enrollment",
                store.get_enrollment(self.tenant, id).await,
            ),
        )
    }

    /// The stored send of `step` of enrollment `id`.
    ///
    /// # Panics
    /// When it is not found.
    pub async fn send<S: Store + ?Sized>(
        &self,
        store: &S,
        id: EnrollmentId,
        step: u32,
    ) -> ScheduledSend {
        let sends = ok(
            "sends_of_enrollment",
            store.sends_of_enrollment(self.tenant, id).await,
        );
        some(
            "sends_of_enrollment: the send of the step",
            sends.into_iter().find(|s| s.step == step),
        )
    }

    /// A plan item for `e`'s current step on mailbox `mailbox` at `at` under `limit`.
    #[must_use]
    pub fn plan_send(
        &self,
        e: &Enrollment,
        mailbox: usize,
        at: DateTime<Utc>,
        limit: u32,
    ) -> PlanSend {
        let m = &self.mailboxes[mailbox];
        let domain = self
            .contacts
            .iter()
            .find(|c| c.id == e.contact)
            .map(Contact::email_domain)
            .unwrap_or_default();
        PlanSend {
            enrollment: e.id,
            enrollment_version: e.version(),
            step: e.current_step(),
            mailbox: m.id,
            at,
            local_date: local_date(m.timezone, at),
            limit,
            message_id: message_id(e.id, e.current_step(), &m.address),
            variant: 0,
            recipient_domain: domain,
        }
    }

    /// The snapshot of mailbox `mailbox` at `now`.
    ///
    /// # Panics
    /// When the store leaves it out.
    pub async fn snapshot<S: Store + ?Sized>(
        &self,
        store: &S,
        now: DateTime<Utc>,
        mailbox: usize,
    ) -> MailboxSnapshot {
        let snaps = ok(
            "mailbox_snapshots",
            store
                .mailbox_snapshots(now, &[self.mailboxes[mailbox].id])
                .await,
        );
        some("mailbox_snapshots: the mailbox", snaps.into_iter().next())
    }
}

/// Apply a plan of sends only.
pub async fn plan<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    sends: Vec<PlanSend>,
) -> PlanApplied {
    ok(
        "apply_plan",
        store
            .apply_plan(
                now,
                PlanCommit {
                    sends,
                    ..PlanCommit::default()
                },
            )
            .await,
    )
}

/// Claim with a five-minute lease.
pub async fn claim<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<ClaimedSend> {
    ok(
        "claim_sends",
        store.claim_sends(now, Duration::minutes(5), limit).await,
    )
}

/// The completion of a claimed send that the transport accepted at `now`: the send is sent,
/// its enrollment advanced (the next step due a day later, or completed after `steps`).
///
/// # Panics
/// When the domain refuses (the claim is not what a claim should be).
#[must_use]
pub fn sent(c: &ClaimedSend, now: DateTime<Utc>, steps: u32) -> SendCompletion {
    let mut send = c.send.clone();
    if let Err(e) = send.mark_sent(&c.lease, now) {
        panic!("claimed send refused mark_sent under its own lease: {e}");
    }
    let mut e = c.enrollment.clone();
    let v = e.version();
    let next = (c.send.step + 1 < steps).then(|| now + Duration::days(1));
    if let Err(err) = e.step_sent(c.send.step, now, c.send.message_id.clone(), next) {
        panic!("claimed enrollment refused step_sent: {err}");
    }
    SendCompletion {
        send,
        lease: c.lease,
        enrollment: e,
        enrollment_version: v,
        attempted_at: now,
        changes: ChangeSet::default(),
    }
}

/// The completion of a claimed send that failed: retried at `retry_at`, or failed for good
/// (the enrollment exits `failed`).
///
/// # Panics
/// When the domain refuses.
#[must_use]
pub fn failed(
    c: &ClaimedSend,
    now: DateTime<Utc>,
    retry_at: Option<DateTime<Utc>>,
) -> SendCompletion {
    let mut send = c.send.clone();
    if let Err(e) = send.mark_failed(&c.lease, "421 try later".into(), retry_at.is_some()) {
        panic!("claimed send refused mark_failed under its own lease: {e}");
    }
    let mut e = c.enrollment.clone();
    let v = e.version();
    let changed = match retry_at {
        Some(t) => e.retry_at(t),
        None => e
            .exit(sequence_core::enrollment::ExitReason::Failed, now)
            .map(|_| ()),
    };
    if let Err(err) = changed {
        panic!("claimed enrollment refused the failure: {err}");
    }
    SendCompletion {
        send,
        lease: c.lease,
        enrollment: e,
        enrollment_version: v,
        attempted_at: now,
        changes: ChangeSet::default(),
    }
}

/// Write one changed enrollment (read at `read`).
pub async fn write_enrollment<S: Store + ?Sized>(
    store: &S,
    e: Enrollment,
    read: u64,
) -> Result<(), StoreError> {
    store
        .apply_changes(
            t0(),
            ChangeSet {
                enrollments: vec![(e, read)],
                ..ChangeSet::default()
            },
        )
        .await
}

/// Exit the enrollment `id` of `w` at `now` and call off its planned send of step 0 in one
/// change set: the send's reservation is released.
///
/// # Panics
/// When the store fails.
pub async fn exit_and_call_off<S: Store + ?Sized>(
    store: &S,
    w: &World,
    id: EnrollmentId,
    now: DateTime<Utc>,
) {
    let mut gone = w.enrollment(store, id).await;
    let read = gone.version();
    let send = w.send(store, id, 0).await;
    if let Err(e) = gone.exit(sequence_core::enrollment::ExitReason::Manual, now) {
        panic!("fixture: exit: {e}");
    }
    ok(
        "apply_changes (call off)",
        store
            .apply_changes(
                now,
                ChangeSet {
                    enrollments: vec![(gone, read)],
                    cancel_sends: vec![send.id],
                    ..ChangeSet::default()
                },
            )
            .await,
    );
}
