//! # backend-postgres
//!
//! [`PostgresStore`]: the [`Store`](sequence_core::Store) of the sequence engine on
//! PostgreSQL, through sqlx. A host keeps its campaigns in its own database, and any
//! number of engine processes (on one machine or many) share it without sending anything
//! twice, over a daily limit or closer than a mailbox's gap.
//!
//! ## How it works
//!
//! * **Each `Store` method is one transaction** (READ COMMITTED with explicit row locks).
//!   A transaction that loses a race with a deadlock or a serialization failure (SQLSTATE
//!   `40P01`, `40001`) is run again from the start, a few times, instead of failing.
//! * **Documents and columns.** Each entity is stored as a JSON document (its serde form,
//!   read back as is: `json` for the hot tables of enrollments, contacts and sends, whose
//!   documents are written and read whole tens of thousands at a time; `jsonb` for the
//!   rest) beside the columns queries filter, order and lock on (status,
//!   due instant, version, mailbox, planned instant, local date, normalized address). The
//!   units of work that change state load the rows they need under `FOR UPDATE`, change
//!   them with the domain's own methods, exactly as the memory store does, and write them
//!   back in batches (`UNNEST` of one array per column).
//! * **Capacity.** A plan locks the `mailbox_days` rows it reserves on, in key order, reads
//!   what is used and refuses what would exceed the limit, so racing planners never
//!   over-book a mailbox-local day. Local dates are computed in Rust with chrono-tz.
//! * **Due reads and plans.** The due read hands out what planning decides on as
//!   columns of one row per due enrollment (step, earliest instant, status, sticky
//!   mailbox, version, and its contact's status, zone and address domain), not the
//!   documents: the planner reads documents only for the rows it settles
//!   (`Outbox::due_documents`). The contact's columns are copied onto its enrollments,
//!   and every contact write that changes them rewrites the copies under the tenant's
//!   contact lock (an advisory lock that `enroll` holds shared while it copies). A plan
//!   made from the store's own due read reads its enrollments by key at the versions read,
//!   without a lock, and writes each only while it is still at that version; when one
//!   moved, the plan is applied again with its enrollments locked and read first, and the
//!   moved one is answered stale.
//! * **Identities apart.** `enrollments` carries only its key and the due indexes, so that
//!   rewriting an enrollment (each plan and completion does) writes one index entry, not
//!   five: what never changes after enrolling (sequence, contact, enrolled instant) and
//!   whether it is still open live in `enrollment_identities`, with the indexes by id, by
//!   sequence, by contact and the one that allows one open enrollment per pair. Both are
//!   written in one unit, in key order, the identities first (their unique indexes decide
//!   which rows are taken); reads by sequence, contact or id alone go through them, a probe
//!   of an index per row, planned for the size the tables have when they run.
//! * **Claims** start from `mailbox_state`, one small row per mailbox that says when its
//!   earliest planned send becomes claimable (never while one is in flight, never before
//!   the latest attempt plus the gap), through a partial index: `FOR UPDATE SKIP LOCKED`
//!   inside a `MATERIALIZED` CTE with the limit, so racing claimers take disjoint
//!   mailboxes. Every write after a claim is fenced on the lease's token and attempt.
//! * **Time** always comes from the caller: no query reads the server's clock, so virtual
//!   clocks work.
//! * **References.** Enrollments and sends point at their sequence, contact, enrollment and
//!   mailbox without foreign keys (a check query and a row lock per inserted row cost more
//!   than the rest of a bulk enrollment): the store keeps them. Those rows are never
//!   deleted, and a draft sequence's deletion and an enrollment into it lock the
//!   sequence's row against each other.
//! * **Tenants.** Every table carries `tenant_id`, and it leads every primary key, unique
//!   index and foreign key: the schema can be distributed by tenant (Citus) as it is.
//!
//! The schema is embedded ([`PostgresStore::migrate`], or [`MIGRATOR`] for a host that runs
//! migrations itself). [`PostgresStore::prune`] deletes finished sends and old events in
//! bounded batches.
//!
//! ## Example
//!
//! ```no_run
//! use backend_postgres::PostgresStore;
//! use chrono::{TimeZone, Utc};
//! use sequence_core::prelude::*;
//! use sequence_core::store::EnrollOutcome;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! store.migrate().await?;
//!
//! let tenant = TenantId::new();
//! let now = Utc.with_ymd_and_hms(2026, 3, 9, 8, 0, 0).unwrap();
//! let mailbox = Mailbox::new(tenant, "ana@sender.example", chrono_tz::Europe::Berlin)?;
//! store.save_mailbox(&mailbox, None).await?;
//! let mut sequence = Sequence::new(tenant, "Welcome", now)?;
//! sequence.add_step(Step::new(Delay::ZERO, "Hi {{ first_name }}", "Hello!"))?;
//! sequence.set_mailbox_pool(vec![mailbox.id])?;
//! sequence.activate()?;
//! store.save_sequence(&sequence, None).await?;
//! let contact = Contact::new(tenant, "bo@client.example")?;
//! store.upsert_contacts(tenant, &[contact.clone()]).await?;
//!
//! let row = Enrollment::new(tenant, sequence.id, contact.id, now, now);
//! let answers = store.enroll(tenant, now, vec![row]).await?;
//! assert!(matches!(answers[0], EnrollOutcome::Enrolled { .. }));
//! assert_eq!(store.due_enrollments(now, 100).await?.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! Hand the store to `Engine::builder(store, transport)` (in `sequence-scheduler`, or the
//! `sequence-engine` facade with its `postgres` feature) to run sequences on it.

#[macro_use]
mod unit;
mod catalog;
mod changes;
mod claims;
mod due;
mod enrollments;
mod error;
mod notices;
mod plan;
mod prune;
mod rows;
mod schema;
mod tally;
mod work;

use std::fmt;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sequence_core::contact::Contact;
use sequence_core::enrollment::{Enrollment, EnrollmentStatus};
use sequence_core::event::DomainEvent;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::send::{Lease, ScheduledSend};
use sequence_core::sequence::Sequence;
use sequence_core::store::{
    Catalog, ChangeSet, ClaimedSend, DailyCounts, DraftDeletion, DueDocuments, DueEnrollment,
    EnrollOutcome, EnrollmentCursor, MailboxBound, MailboxDay, MailboxSnapshot, MailboxWait,
    Outbox, PlanApplied, PlanCommit, PlanningLease, PoolBound, PoolWait, SendCompletion,
    SendContext, SequenceTally, StoreError,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::types::Json;

pub use notices::{WorkListener, WORK_CHANNEL};
pub use prune::Pruned;

use crate::due::SeenEnrollments;
use crate::error::Db;

/// The embedded migrations, for a host that runs them itself (`MIGRATOR.run(&pool)`);
/// [`PostgresStore::migrate`] runs them on the store's pool.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The claim statement, for hosts and tests that want to `EXPLAIN` it: `$1` is `now`, `$2`
/// the limit.
pub const CLAIM_QUERY: &str = claims::CLAIM_MAILBOXES;

/// The due read without bounds, for hosts and tests that want to `EXPLAIN` it: `$1` is
/// `now`, `$2` the limit. Its active branches are index-only scans where the visibility map
/// allows.
pub const DUE_QUERY: &str = due::DUE_READ;

/// The reads a bulk enrollment makes of its ids and pairs, for tests that `EXPLAIN` them:
/// the ids taken (`$1` ids), the latest enrollment of each pair of a tenant (`$1` tenant, `$2`
/// sequences, `$3` contacts) and the open one of each pair (`$1` tenants, `$2` sequences,
/// `$3` contacts). Each is a probe of an index per row, whatever the server's statistics say.
pub const ENROLL_READS: [&str; 3] = [
    enrollments::USED_IDS,
    enrollments::LATEST_OF_PAIRS,
    changes::OPEN_OF_PAIRS,
];

/// The PostgreSQL [`Store`](sequence_core::Store): clones share one connection pool.
///
/// Every method is one transaction (see the crate docs). The store never reads the server's
/// clock: every instant comes from the caller.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The enrollments of the latest due read, for the plan made from them.
    seen: Arc<SeenEnrollments>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish()
    }
}

impl PostgresStore {
    /// Connect to the database at `url` (`postgres://user@host:port/database`, TLS through
    /// rustls when the URL asks for it) with a pool of up to 10 connections, waiting at
    /// most 10 seconds for one. The schema is not touched: run [`PostgresStore::migrate`]
    /// once. A host that wants other pool settings builds its pool and calls
    /// [`PostgresStore::from_pool`].
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the URL is invalid or no server answers in time.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(StdDuration::from_secs(10))
            .connect(url)
            .await
            .db()?;
        Ok(Self::from_pool(pool))
    }

    /// A store on a pool the host built (its size, timeouts, TLS, `search_path`).
    #[must_use]
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            seen: Arc::default(),
        }
    }

    /// The store's pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Apply the embedded migrations that are not applied yet (in the `search_path`'s first
    /// schema). Safe to run from several processes at once: sqlx takes an advisory lock.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when a migration fails or was changed after it was applied.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::backend)
    }

    /// Delete, in batches of at most `batch` rows per statement and transaction, the sends
    /// that are final and belong to a final enrollment, planned before `older_than`, and the
    /// events recorded before it, along with the daily counters and mailbox-days older than
    /// it. A bounded job for a host's scheduler: nothing a running sequence needs is touched.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails; what was deleted before stays
    /// deleted.
    pub async fn prune(
        &self,
        older_than: DateTime<Utc>,
        batch: usize,
    ) -> Result<Pruned, StoreError> {
        prune::prune(&self.pool, older_than, batch).await
    }

    /// The domain events recorded with [`Outbox::record_events`] for `tenant`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn recorded_events(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<(DateTime<Utc>, DomainEvent)>, StoreError> {
        let rows: Vec<(DateTime<Utc>, Json<DomainEvent>)> =
            sqlx::query_as("SELECT at, doc FROM events WHERE tenant_id = $1 ORDER BY id")
                .bind(tenant.0)
                .fetch_all(&self.pool)
                .await
                .db()?;
        Ok(rows.into_iter().map(|(at, e)| (at, e.0)).collect())
    }

    /// Listen for work notices from other processes on this store's schema: contacts
    /// enrolled, a host's change, a sequence or a mailbox saved (see [`WORK_CHANNEL`]). A
    /// host wakes its engine on each, so that work another process made due is picked up at
    /// once rather than at the next poll:
    ///
    /// ```no_run
    /// # async fn wire(engine: sequence_scheduler::Engine, store: backend_postgres::PostgresStore)
    /// # -> Result<(), sequence_core::store::StoreError> {
    /// let mut notices = store.listen_for_work().await?;
    /// tokio::spawn(async move {
    ///     while notices.next().await.is_ok() {
    ///         engine.wake();
    ///     }
    /// });
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// The listener holds one connection of the store's pool while it lives.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when no connection is available or `LISTEN` fails.
    pub async fn listen_for_work(&self) -> Result<WorkListener, StoreError> {
        WorkListener::new(&self.pool).await
    }
}

#[async_trait]
impl Catalog for PostgresStore {
    async fn save_sequence(
        &self,
        sequence: &Sequence,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        transaction!(self, |conn| async {
            catalog::save_sequence(conn, sequence, expected_version).await?;
            notices::notify_work(conn, true).await
        })
    }

    async fn get_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<Option<Sequence>, StoreError> {
        read!(self, |conn| catalog::get_sequence(conn, tenant, id))
    }

    async fn list_sequences(&self, tenant: TenantId) -> Result<Vec<Sequence>, StoreError> {
        read!(self, |conn| catalog::list_sequences(conn, tenant))
    }

    async fn delete_draft_sequence(
        &self,
        tenant: TenantId,
        id: SequenceId,
    ) -> Result<DraftDeletion, StoreError> {
        transaction!(self, |conn| catalog::delete_draft_sequence(
            conn, tenant, id
        ))
    }

    async fn get_sequences(&self, ids: &[SequenceId]) -> Result<Vec<Sequence>, StoreError> {
        read!(self, |conn| catalog::get_sequences(conn, ids))
    }

    async fn save_mailbox(
        &self,
        mailbox: &Mailbox,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        transaction!(self, |conn| async {
            catalog::save_mailbox(conn, mailbox, expected_version).await?;
            notices::notify_work(conn, true).await
        })
    }

    async fn get_mailbox(
        &self,
        tenant: TenantId,
        id: MailboxId,
    ) -> Result<Option<Mailbox>, StoreError> {
        read!(self, |conn| catalog::get_mailbox(conn, tenant, id))
    }

    async fn list_mailboxes(&self, tenant: TenantId) -> Result<Vec<Mailbox>, StoreError> {
        read!(self, |conn| catalog::list_mailboxes(conn, tenant))
    }

    async fn upsert_contacts(
        &self,
        tenant: TenantId,
        contacts: &[Contact],
    ) -> Result<Vec<ContactId>, StoreError> {
        transaction!(self, |conn| catalog::upsert_contacts(
            conn, tenant, contacts
        ))
    }

    async fn get_contact(
        &self,
        tenant: TenantId,
        id: ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        read!(self, |conn| catalog::get_contact(conn, tenant, id))
    }

    async fn get_contacts(
        &self,
        tenant: TenantId,
        ids: &[ContactId],
    ) -> Result<Vec<Contact>, StoreError> {
        read!(self, |conn| catalog::get_contacts(conn, tenant, ids))
    }

    async fn find_contacts_by_email(
        &self,
        tenant: TenantId,
        emails: &[String],
    ) -> Result<Vec<Contact>, StoreError> {
        read!(self, |conn| catalog::find_contacts_by_email(
            conn, tenant, emails
        ))
    }

    async fn find_contact_by_email(
        &self,
        tenant: TenantId,
        email: &str,
    ) -> Result<Option<Contact>, StoreError> {
        read!(self, |conn| catalog::find_contact_by_email(
            conn, tenant, email
        ))
    }
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn enroll(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        enrollments: Vec<Enrollment>,
    ) -> Result<Vec<EnrollOutcome>, StoreError> {
        transaction!(self, |conn| async {
            let answers = enrollments::enroll(conn, tenant, now, &enrollments).await?;
            let enrolled = answers
                .iter()
                .any(|a| matches!(a, EnrollOutcome::Enrolled { .. }));
            notices::notify_work(conn, enrolled).await?;
            Ok(answers)
        })
    }

    async fn get_enrollment(
        &self,
        tenant: TenantId,
        id: EnrollmentId,
    ) -> Result<Option<Enrollment>, StoreError> {
        read!(self, |conn| enrollments::get_enrollment(conn, tenant, id))
    }

    async fn list_enrollments(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        read!(self, |conn| enrollments::list_enrollments(
            conn, tenant, sequence
        ))
    }

    async fn open_enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        read!(self, |conn| enrollments::open_enrollments_page(
            conn, tenant, sequence, after, limit
        ))
    }

    async fn enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        status: Option<EnrollmentStatus>,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        read!(self, |conn| enrollments::enrollments_page(
            conn, tenant, sequence, status, after, limit
        ))
    }

    async fn open_sends_of(
        &self,
        tenant: TenantId,
        enrollments: &[EnrollmentId],
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        read!(self, |conn| enrollments::open_sends_of(
            conn,
            tenant,
            enrollments
        ))
    }

    async fn open_enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        read!(self, |conn| enrollments::open_enrollments_of_contact(
            conn, tenant, contact
        ))
    }

    async fn enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        read!(self, |conn| enrollments::enrollments_of_contact(
            conn, tenant, contact
        ))
    }

    async fn mailbox_days(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<MailboxDay>, StoreError> {
        snapshot!(self, |conn| enrollments::mailbox_days(
            conn, tenant, mailbox, from, to
        ))
    }

    async fn sends_of_enrollment(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        read!(self, |conn| enrollments::sends_of_enrollment(
            conn, tenant, enrollment
        ))
    }

    async fn sends_of_sequence(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        read!(self, |conn| enrollments::sends_of_sequence(
            conn, tenant, sequence
        ))
    }

    async fn sequence_tally(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Result<SequenceTally, StoreError> {
        read!(self, |conn| tally::sequence_tally(conn, tenant, sequence))
    }

    async fn apply_changes(
        &self,
        now: DateTime<Utc>,
        changes: ChangeSet,
    ) -> Result<(), StoreError> {
        transaction!(self, |conn| async {
            changes::apply_changes(conn, now, &changes).await?;
            notices::notify_work(conn, true).await
        })
    }

    async fn due_enrollments(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        let due = read!(self, |conn| due::due_enrollments(
            conn,
            now,
            limit,
            &[],
            &[]
        ))?;
        self.seen.replace(&due);
        Ok(due)
    }

    async fn due_documents(
        &self,
        due: &[(TenantId, EnrollmentId)],
    ) -> Result<Vec<DueDocuments>, StoreError> {
        read!(self, |conn| due::due_documents(conn, due))
    }

    async fn due_pools(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, SequenceId)>, StoreError> {
        read!(self, |conn| due::due_pools(conn, now))
    }

    async fn due_mailboxes(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, MailboxId)>, StoreError> {
        read!(self, |conn| due::due_mailboxes(conn, now))
    }

    async fn due_enrollments_bounded(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        pools: &[PoolBound],
        mailboxes: &[MailboxBound],
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        let due = read!(self, |conn| due::due_enrollments(
            conn, now, limit, pools, mailboxes
        ))?;
        self.seen.replace(&due);
        Ok(due)
    }

    async fn mailbox_snapshots(
        &self,
        now: DateTime<Utc>,
        ids: &[MailboxId],
    ) -> Result<Vec<MailboxSnapshot>, StoreError> {
        snapshot!(self, |conn| plan::mailbox_snapshots(conn, now, ids))
    }

    async fn daily_counts(
        &self,
        now: DateTime<Utc>,
        sequences: &[SequenceId],
        domains: &[(TenantId, String)],
    ) -> Result<DailyCounts, StoreError> {
        snapshot!(self, |conn| plan::daily_counts(
            conn, now, sequences, domains
        ))
    }

    async fn acquire_planning(
        &self,
        now: DateTime<Utc>,
        token: uuid::Uuid,
        lease_for: Duration,
    ) -> Result<Option<PlanningLease>, StoreError> {
        transaction!(self, |conn| plan::acquire_planning(
            conn, now, token, lease_for
        ))
    }

    async fn release_planning(&self, lease: PlanningLease) -> Result<(), StoreError> {
        transaction!(self, |conn| plan::release_planning(conn, lease))
    }

    async fn apply_plan(
        &self,
        now: DateTime<Utc>,
        plan: PlanCommit,
    ) -> Result<PlanApplied, StoreError> {
        let seen = self.seen.current();
        let applied = transaction!(self, |conn| plan::apply_plan(conn, now, &plan, &seen))?;
        self.seen.release(&seen);
        Ok(applied)
    }

    async fn claim_sends(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedSend>, StoreError> {
        transaction!(self, |conn| claims::claim_sends(
            conn, now, lease_for, limit
        ))
    }

    async fn send_context(
        &self,
        tenant: TenantId,
        send: SendId,
    ) -> Result<Option<SendContext>, StoreError> {
        read!(self, |conn| claims::send_context(conn, tenant, send))
    }

    async fn send_contexts(
        &self,
        sends: &[(TenantId, SendId)],
    ) -> Result<Vec<Option<SendContext>>, StoreError> {
        read!(self, |conn| claims::send_contexts(conn, sends))
    }

    async fn complete_send(
        &self,
        now: DateTime<Utc>,
        completion: SendCompletion,
    ) -> Result<(), StoreError> {
        transaction!(self, |conn| claims::complete_send(conn, now, &completion))
    }

    /// Completions that change nothing but their send and enrollment (the usual ones: sent,
    /// or waiting for a retry) are recorded in one transaction with one statement per kind;
    /// the others (and a second completion of a send or enrollment already in the batch)
    /// one by one, as [`Outbox::complete_send`] records them.
    async fn complete_sends(
        &self,
        now: DateTime<Utc>,
        completions: Vec<SendCompletion>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut sends = std::collections::HashSet::new();
        let mut enrollments = std::collections::HashSet::new();
        let (mut batched, mut alone) = (Vec::new(), Vec::new());
        for (i, c) in completions.iter().enumerate() {
            let first = sends.insert(c.send.id) & enrollments.insert(c.enrollment.id);
            if first && c.changes.is_empty() {
                batched.push(i);
            } else {
                alone.push(i);
            }
        }
        let mut answers: Vec<Option<Result<(), StoreError>>> = std::iter::repeat_with(|| None)
            .take(completions.len())
            .collect();
        if !batched.is_empty() {
            let items: Vec<&SendCompletion> = batched.iter().map(|&i| &completions[i]).collect();
            // Their commit does not wait for the disk (see `unit::BEGIN_WITHOUT_FLUSH`):
            // one flush fewer per wave of sends.
            let got = transaction!(self, begin = Some(unit::BEGIN_WITHOUT_FLUSH), |conn| {
                claims::complete_sends(conn, now, &items)
            })?;
            for (i, answer) in batched.into_iter().zip(got) {
                answers[i] = Some(answer);
            }
        }
        for i in alone {
            let c = &completions[i];
            let answer = transaction!(self, |conn| claims::complete_send(conn, now, c));
            if let Err(StoreError::Backend(e)) = answer {
                return Err(StoreError::Backend(e));
            }
            answers[i] = Some(answer);
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(StoreError::Invalid("unanswered".to_owned()))))
            .collect())
    }

    async fn release_send(
        &self,
        now: DateTime<Utc>,
        send: SendId,
        lease: Lease,
        replan_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        transaction!(self, |conn| claims::release_send(
            conn, now, send, lease, replan_at
        ))
    }

    async fn expire_leases(
        &self,
        now: DateTime<Utc>,
        resend: bool,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        transaction!(self, |conn| claims::expire_leases(conn, now, resend))
    }

    async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        read!(self, |conn| claims::next_wakeup(conn))
    }

    async fn pool_wait(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        now: DateTime<Utc>,
    ) -> Result<Option<PoolWait>, StoreError> {
        read!(self, |conn| plan::pool_wait(conn, tenant, sequence, now))
    }

    async fn mailbox_wait(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        now: DateTime<Utc>,
    ) -> Result<Option<MailboxWait>, StoreError> {
        read!(self, |conn| plan::mailbox_wait(conn, tenant, mailbox, now))
    }

    async fn record_events(
        &self,
        tenant: TenantId,
        at: DateTime<Utc>,
        events: &[DomainEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        transaction!(self, |conn| prune::record_events(conn, tenant, at, events))
    }
}
