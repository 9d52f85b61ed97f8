//! A fresh schema per test: [`fresh_store`] makes one (named `pgtest_<unix secs>_<random>`),
//! applies the migrations in it through a pool whose connections use it as their
//! `search_path`, and hands out a [`SchemaStore`] that drops it when the last clone goes.
//! Schemas left by killed runs are swept when a test binary starts its first store.
//!
//! Tests read `DATABASE_URL` and fall back to the local server.
#![allow(
    dead_code,
    reason = "each test file uses a part of this module; `expect` would fail in the others"
)]

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use backend_postgres::PostgresStore;
use chrono::{DateTime, NaiveDate, Utc};
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
    SendContext, StoreError,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

pub(crate) mod fleet;
pub(crate) mod worker;

/// The server the tests use.
pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Schemas of this suite older than this are left-overs of killed runs.
const STALE_AFTER_SECS: u64 = 3_600;

/// The prefix of this suite's schemas.
const PREFIX: &str = "pgtest_";

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A connection to the server, or a panic that says how to get one.
async fn connect_admin() -> PgConnection {
    let url = database_url();
    let options = match PgConnectOptions::from_str(&url) {
        Ok(o) => o,
        Err(e) => panic!("DATABASE_URL {url:?} is not a PostgreSQL URL: {e}"),
    };
    match tokio::time::timeout(Duration::from_secs(10), options.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "no PostgreSQL server answers at {url}: {e}\n\
             Start one (on Debian: `pg_ctlcluster 15 main start`), or point DATABASE_URL at \
             one (trust auth, a database the tests may create schemas in)."
        ),
        Err(_) => panic!(
            "no PostgreSQL server answered at {url} within 10 s.\n\
             Start one (on Debian: `pg_ctlcluster 15 main start`), or point DATABASE_URL at \
             one."
        ),
    }
}

/// Drop the schemas of killed runs (once per test binary).
async fn sweep(conn: &mut PgConnection) {
    static SWEPT: OnceLock<()> = OnceLock::new();
    if SWEPT.get().is_some() {
        return;
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'pgtest\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let cutoff = unix_secs().saturating_sub(STALE_AFTER_SECS);
    for name in names {
        let born = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if born.is_some_and(|b| b < cutoff) && is_ours(&name) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .execute(&mut *conn)
                .await;
        }
    }
    let _ = SWEPT.set(());
}

/// Whether `name` is a schema name this module made (digits, underscores, hex): the only
/// names it ever splices into `DROP SCHEMA`.
fn is_ours(name: &str) -> bool {
    name.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c.is_ascii_hexdigit())
    })
}

/// Drops its schema when dropped (on a thread of its own, with its own connection).
#[derive(Debug)]
struct SchemaGuard {
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let url = database_url();
                let Ok(mut conn) = PgConnection::connect(&url).await else {
                    return;
                };
                let _ = sqlx::query("SET lock_timeout = '10s'")
                    .execute(&mut conn)
                    .await;
                if is_ours(&schema) {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
                let _ = conn.close().await;
            });
        });
        let _ = dropper.join();
    }
}

/// A [`PostgresStore`] on a schema of its own, dropped with the last clone.
#[derive(Debug, Clone)]
pub(crate) struct SchemaStore {
    pub(crate) store: PostgresStore,
    pub(crate) schema: String,
    /// An enrollment a host pauses (with no end) right before the next
    /// [`Outbox::due_documents`] reads: a change that lands between a due read and the
    /// documents' read.
    pub(crate) pause_before_documents: Arc<std::sync::Mutex<Option<(TenantId, EnrollmentId)>>>,
    _guard: Arc<SchemaGuard>,
}

/// A store on a fresh schema with the migrations applied.
pub(crate) async fn fresh_store() -> SchemaStore {
    let s = empty_store().await;
    if let Err(e) = s.store.migrate().await {
        panic!("migrations failed in {}: {e:?}", s.schema);
    }
    s
}

/// A store on a fresh, empty schema: no migration applied.
pub(crate) async fn empty_store() -> SchemaStore {
    let mut admin = connect_admin().await;
    sweep(&mut admin).await;
    let schema = format!(
        "{PREFIX}{}_{:016x}",
        unix_secs(),
        uuid::Uuid::new_v4().as_u64_pair().0
    );
    assert!(is_ours(&schema));
    if let Err(e) = sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut admin)
        .await
    {
        panic!("cannot create the test schema {schema}: {e}");
    }
    let _ = admin.close().await;
    let guard = Arc::new(SchemaGuard {
        schema: schema.clone(),
    });
    let store = PostgresStore::from_pool(schema_pool(&schema, 10).await);
    SchemaStore {
        store,
        schema,
        pause_before_documents: Arc::default(),
        _guard: guard,
    }
}

/// An engine on `store` at `clock`, recording what it sends (seed 1).
pub(crate) fn recording_engine(
    store: &SchemaStore,
    clock: &sequence_scheduler::VirtualClock,
) -> sequence_scheduler::Engine {
    use sequence_scheduler::testing::RecordingTransport;
    use sequence_scheduler::{Engine, EngineConfig};
    Engine::builder(store.clone(), RecordingTransport::new(clock.clone()))
        .clock(clock.clone())
        .config(EngineConfig::with_seed(1))
        .build()
}

/// One mailbox (UTC, no window) and an active sequence of `steps` on it, one contact
/// enrolled in it, made through `engine` at `now` in a new tenant: the tenant, the sequence
/// and the contact.
pub(crate) async fn one_enrolled(
    engine: &sequence_scheduler::Engine,
    now: DateTime<Utc>,
    steps: Vec<sequence_core::sequence::Step>,
) -> (TenantId, Sequence, Contact) {
    let tenant = TenantId::new();
    let made = async {
        let m = Mailbox::new(tenant, "a@sender.example", chrono_tz::UTC)?;
        let m = engine.create_mailbox(m).await?;
        let mut s = Sequence::new(tenant, "S", now)?;
        for step in steps {
            s.add_step(step)?;
        }
        s.set_mailbox_pool(vec![m.id])?;
        let s = engine.create_sequence(s).await?;
        engine.activate_sequence(tenant, s.id).await?;
        let c = Contact::new(tenant, "b@client.example")?;
        engine
            .upsert_contacts(tenant, std::slice::from_ref(&c))
            .await?;
        engine.enroll(tenant, s.id, &[c.id]).await?;
        Ok::<_, Box<dyn std::error::Error>>((s, c))
    };
    match made.await {
        Ok((s, c)) => (tenant, s, c),
        Err(e) => panic!("fixture: one enrolled contact: {e}"),
    }
}

/// Whether `task` is still running after a while (it waits for a lock).
pub(crate) async fn still_waiting<T>(task: &tokio::task::JoinHandle<T>) -> bool {
    tokio::time::sleep(Duration::from_millis(400)).await;
    !task.is_finished()
}

/// A pool of at most `connections` on the existing schema `schema` (its `search_path`): how
/// a test's other processes reach the schema its [`SchemaStore`] made.
pub(crate) async fn schema_pool(schema: &str, connections: u32) -> sqlx::PgPool {
    let options = match PgConnectOptions::from_str(&database_url()) {
        Ok(o) => o.options([("search_path", schema)]),
        Err(e) => panic!("DATABASE_URL is not a PostgreSQL URL: {e}"),
    };
    match PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
    {
        Ok(p) => p,
        Err(e) => panic!("cannot connect to the test schema {schema}: {e}"),
    }
}

#[async_trait]
impl Catalog for SchemaStore {
    async fn save_sequence(&self, s: &Sequence, v: Option<u64>) -> Result<(), StoreError> {
        self.store.save_sequence(s, v).await
    }
    async fn get_sequence(
        &self,
        t: TenantId,
        id: SequenceId,
    ) -> Result<Option<Sequence>, StoreError> {
        self.store.get_sequence(t, id).await
    }
    async fn list_sequences(&self, t: TenantId) -> Result<Vec<Sequence>, StoreError> {
        self.store.list_sequences(t).await
    }
    async fn delete_draft_sequence(
        &self,
        t: TenantId,
        id: SequenceId,
    ) -> Result<DraftDeletion, StoreError> {
        self.store.delete_draft_sequence(t, id).await
    }
    async fn get_sequences(&self, ids: &[SequenceId]) -> Result<Vec<Sequence>, StoreError> {
        self.store.get_sequences(ids).await
    }
    async fn save_mailbox(&self, m: &Mailbox, v: Option<u64>) -> Result<(), StoreError> {
        self.store.save_mailbox(m, v).await
    }
    async fn get_mailbox(&self, t: TenantId, id: MailboxId) -> Result<Option<Mailbox>, StoreError> {
        self.store.get_mailbox(t, id).await
    }
    async fn list_mailboxes(&self, t: TenantId) -> Result<Vec<Mailbox>, StoreError> {
        self.store.list_mailboxes(t).await
    }
    async fn upsert_contacts(
        &self,
        t: TenantId,
        c: &[Contact],
    ) -> Result<Vec<ContactId>, StoreError> {
        self.store.upsert_contacts(t, c).await
    }
    async fn get_contact(&self, t: TenantId, id: ContactId) -> Result<Option<Contact>, StoreError> {
        self.store.get_contact(t, id).await
    }
    async fn find_contacts_by_email(
        &self,
        t: TenantId,
        e: &[String],
    ) -> Result<Vec<Contact>, StoreError> {
        self.store.find_contacts_by_email(t, e).await
    }
    async fn find_contact_by_email(
        &self,
        t: TenantId,
        e: &str,
    ) -> Result<Option<Contact>, StoreError> {
        self.store.find_contact_by_email(t, e).await
    }
    async fn get_contacts(
        &self,
        t: TenantId,
        ids: &[ContactId],
    ) -> Result<Vec<Contact>, StoreError> {
        self.store.get_contacts(t, ids).await
    }
}

#[async_trait]
impl Outbox for SchemaStore {
    async fn enroll(
        &self,
        t: TenantId,
        now: DateTime<Utc>,
        rows: Vec<Enrollment>,
    ) -> Result<Vec<EnrollOutcome>, StoreError> {
        self.store.enroll(t, now, rows).await
    }
    async fn get_enrollment(
        &self,
        t: TenantId,
        id: EnrollmentId,
    ) -> Result<Option<Enrollment>, StoreError> {
        self.store.get_enrollment(t, id).await
    }
    async fn list_enrollments(
        &self,
        t: TenantId,
        s: SequenceId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.store.list_enrollments(t, s).await
    }
    async fn open_enrollments_page(
        &self,
        t: TenantId,
        s: SequenceId,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.store.open_enrollments_page(t, s, after, limit).await
    }
    async fn enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        status: Option<EnrollmentStatus>,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.store
            .enrollments_page(tenant, sequence, status, after, limit)
            .await
    }
    async fn open_sends_of(
        &self,
        t: TenantId,
        e: &[EnrollmentId],
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        self.store.open_sends_of(t, e).await
    }
    async fn open_enrollments_of_contact(
        &self,
        t: TenantId,
        c: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.store.open_enrollments_of_contact(t, c).await
    }
    async fn enrollments_of_contact(
        &self,
        t: TenantId,
        c: ContactId,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.store.enrollments_of_contact(t, c).await
    }
    async fn mailbox_days(
        &self,
        t: TenantId,
        m: MailboxId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<MailboxDay>, StoreError> {
        self.store.mailbox_days(t, m, from, to).await
    }
    async fn sends_of_enrollment(
        &self,
        t: TenantId,
        e: EnrollmentId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        self.store.sends_of_enrollment(t, e).await
    }
    async fn sends_of_sequence(
        &self,
        t: TenantId,
        s: SequenceId,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        self.store.sends_of_sequence(t, s).await
    }
    async fn apply_changes(&self, now: DateTime<Utc>, c: ChangeSet) -> Result<(), StoreError> {
        self.store.apply_changes(now, c).await
    }
    async fn due_enrollments(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        self.store.due_enrollments(now, limit).await
    }

    async fn due_documents(
        &self,
        due: &[(TenantId, EnrollmentId)],
    ) -> Result<Vec<DueDocuments>, StoreError> {
        let pause = match self.pause_before_documents.lock() {
            Ok(mut armed) => armed.take(),
            Err(_) => None,
        };
        if let Some((tenant, id)) = pause {
            let Some(mut e) = self.store.get_enrollment(tenant, id).await? else {
                panic!("fixture: the enrollment to pause is not stored");
            };
            let read_at = e.version();
            if let Err(err) = e.pause(None) {
                panic!("fixture: pause: {err}");
            }
            let changes = ChangeSet {
                enrollments: vec![(e.clone(), read_at)],
                ..ChangeSet::default()
            };
            self.store.apply_changes(e.enrolled_at, changes).await?;
        }
        self.store.due_documents(due).await
    }

    async fn due_pools(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, SequenceId)>, StoreError> {
        self.store.due_pools(now).await
    }

    async fn due_mailboxes(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TenantId, MailboxId)>, StoreError> {
        self.store.due_mailboxes(now).await
    }

    async fn due_enrollments_bounded(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        pools: &[PoolBound],
        mailboxes: &[MailboxBound],
    ) -> Result<Vec<DueEnrollment>, StoreError> {
        self.store
            .due_enrollments_bounded(now, limit, pools, mailboxes)
            .await
    }
    async fn mailbox_snapshots(
        &self,
        now: DateTime<Utc>,
        ids: &[MailboxId],
    ) -> Result<Vec<MailboxSnapshot>, StoreError> {
        self.store.mailbox_snapshots(now, ids).await
    }
    async fn daily_counts(
        &self,
        now: DateTime<Utc>,
        s: &[SequenceId],
        d: &[(TenantId, String)],
    ) -> Result<DailyCounts, StoreError> {
        self.store.daily_counts(now, s, d).await
    }
    async fn acquire_planning(
        &self,
        now: DateTime<Utc>,
        token: uuid::Uuid,
        lease_for: chrono::Duration,
    ) -> Result<Option<PlanningLease>, StoreError> {
        self.store.acquire_planning(now, token, lease_for).await
    }
    async fn release_planning(&self, lease: PlanningLease) -> Result<(), StoreError> {
        self.store.release_planning(lease).await
    }
    async fn apply_plan(
        &self,
        now: DateTime<Utc>,
        plan: PlanCommit,
    ) -> Result<PlanApplied, StoreError> {
        self.store.apply_plan(now, plan).await
    }
    async fn claim_sends(
        &self,
        now: DateTime<Utc>,
        lease_for: chrono::Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedSend>, StoreError> {
        self.store.claim_sends(now, lease_for, limit).await
    }
    async fn send_context(
        &self,
        t: TenantId,
        s: SendId,
    ) -> Result<Option<SendContext>, StoreError> {
        self.store.send_context(t, s).await
    }
    async fn complete_send(&self, now: DateTime<Utc>, c: SendCompletion) -> Result<(), StoreError> {
        self.store.complete_send(now, c).await
    }
    async fn complete_sends(
        &self,
        now: DateTime<Utc>,
        c: Vec<SendCompletion>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.store.complete_sends(now, c).await
    }
    async fn release_send(
        &self,
        now: DateTime<Utc>,
        s: SendId,
        lease: Lease,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.store.release_send(now, s, lease, at).await
    }
    async fn expire_leases(
        &self,
        now: DateTime<Utc>,
        resend: bool,
    ) -> Result<Vec<ScheduledSend>, StoreError> {
        self.store.expire_leases(now, resend).await
    }
    async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.store.next_wakeup().await
    }

    async fn pool_wait(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        now: DateTime<Utc>,
    ) -> Result<Option<PoolWait>, StoreError> {
        self.store.pool_wait(tenant, sequence, now).await
    }

    async fn mailbox_wait(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        now: DateTime<Utc>,
    ) -> Result<Option<MailboxWait>, StoreError> {
        self.store.mailbox_wait(tenant, mailbox, now).await
    }
    async fn record_events(
        &self,
        t: TenantId,
        at: DateTime<Utc>,
        e: &[DomainEvent],
    ) -> Result<(), StoreError> {
        self.store.record_events(t, at, e).await
    }
}
