//! The engine: the one place that talks to the world. It drives the [`Store`], the
//! [`Transport`] and the [`Clock`] and turns plans into sent email.
//!
//! One [`Engine::tick`] does, at an instant `now`:
//!
//! 1. give up expired leases (a crash between the transport call and its record): the send
//!    is marked `uncertain` and not sent again, unless at-least-once delivery is configured;
//! 2. take the store's planning lease (several engines may share one store; one plans at a
//!    time, and a plan made under a lease that ran out is refused whole); fetch the
//!    enrollments that are due, resume those whose pause ran out, exit those whose contact
//!    can no longer be written to, evaluate step conditions (skip or exit);
//! 3. plan the rest with [`crate::planner::plan`] and persist the plan with its capacity
//!    reservations in one unit of work;
//! 4. claim the planned sends whose instant has come and whose mailbox's gap has passed
//!    (under a lease, a wave of at most `concurrency` at a time), re-check each right
//!    before the transport call against the state as it is then (enrollment, contact,
//!    mailbox, sequence, the day's attempts against the current limit: one read for the
//!    wave, read again for a send whose state a host call changed meanwhile; sends of a
//!    wave to one person go one after another), render it, send it, and record the
//!    outcome: advance to the next step, complete, retry a transient failure after
//!    `base * 2^(n-1)`, or exit.
//!
//! # On a wall clock
//!
//! A tick that sends through a slow server lasts minutes. Each send reads the engine's
//! clock: its re-check, its window, its mailbox-local day, the mailbox's gap and the next
//! step's delay follow the instant the transport was really called and answered, not the
//! instant the tick started. A late tick (after an outage) drains the backlog at each
//! mailbox's pace; a send that no longer fits its window is given back and planned again.

mod bounds;
mod contacts;
mod dispatch;
mod mailboxes;
mod plan;
mod run;
mod sequences;
mod signals;
mod stats;
mod tick;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sequence_core::error::Entity;
use sequence_core::ports::{Clock, EventSink, NoopEventSink};
use sequence_core::store::{Store, StoreError};
use sequence_core::template::Renderer;
use sequence_core::transport::Transport;
use sequence_core::TransitionError;
use serde::{Deserialize, Serialize};

use crate::clock::SystemClock;
use crate::planner::PlannerConfig;

pub use mailboxes::MailboxUsage;
pub use run::RunTick;
pub use stats::{Explanation, SequenceStats, StepStats, VariantStats};
pub use tick::TickReport;

/// An engine failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The domain refused a change.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Input was invalid.
    #[error(transparent)]
    Invalid(#[from] sequence_core::error::ValidationErrors),
    /// A record the call names does not exist in the tenant.
    #[error("{entity} {id} not found")]
    NotFound {
        /// The kind of record.
        entity: Entity,
        /// Its id.
        id: String,
    },
    /// A record kept changing under the engine's writes (other writers won every retry):
    /// nothing half-done was left; calling again finishes the work.
    #[error("{entity} {id} kept changing while the engine wrote it; call again")]
    KeptChanging {
        /// The kind of record.
        entity: Entity,
        /// Its id.
        id: String,
    },
}

impl EngineError {
    /// A record of `entity` with id `id` is missing in the tenant.
    pub(crate) fn not_found(entity: Entity, id: impl std::fmt::Display) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::seconds(600),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` failed attempts (`base * 2^(failures - 1)`).
    #[must_use]
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base * (1i32 << exp)
    }
}

/// What happens to a send whose lease expired while it was being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverySemantics {
    /// Mark it uncertain and never send it again (the default: no duplicates).
    #[default]
    AtMostOnce,
    /// Plan it again: the contact may get it twice.
    AtLeastOnce,
}

/// The engine's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The planner's settings (its seed also picks A/B variants).
    pub planner: PlannerConfig,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Expired-lease policy.
    pub delivery: DeliverySemantics,
    /// How long a claim holds a send.
    pub lease: Duration,
    /// Most due enrollments planned in one pass.
    pub plan_batch: usize,
    /// Most sends claimed in one pass.
    pub claim_batch: usize,
    /// Most transport calls in flight at once (never two for one mailbox), and so the most
    /// sends a claim takes: each claim and each record of what came of the sends is a
    /// round of store writes, paid once per wave of this many. 64 by default: a fleet of
    /// 200 mailboxes has a third of them in flight at once.
    pub concurrency: usize,
    /// The longest `run` sleeps between ticks.
    pub poll_interval: Duration,
    /// How long the store's planning lease is held (renewed before each planning batch):
    /// long enough for one batch, short enough that a crashed engine's lease soon runs out.
    pub planning_lease: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            planner: PlannerConfig::default(),
            retry: RetryPolicy::default(),
            delivery: DeliverySemantics::AtMostOnce,
            lease: Duration::minutes(5),
            plan_batch: 100_000,
            claim_batch: 1_000,
            concurrency: 64,
            poll_interval: Duration::seconds(30),
            planning_lease: Duration::seconds(30),
        }
    }
}

impl EngineConfig {
    /// The default settings with `seed` for every random choice.
    #[must_use]
    pub fn with_seed(seed: u64) -> Self {
        Self {
            planner: PlannerConfig::with_seed(seed),
            ..Self::default()
        }
    }
    /// Set the retry policy (builder style).
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Set the expired-lease policy (builder style).
    #[must_use]
    pub fn delivery(mut self, delivery: DeliverySemantics) -> Self {
        self.delivery = delivery;
        self
    }
    /// Set the lease length (builder style).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Set the transport concurrency (builder style; at least 1).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }
    /// Set the longest sleep of `run` (builder style).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
}

struct Inner {
    store: Arc<dyn Store>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn EventSink>,
    config: EngineConfig,
    renderer: Renderer,
    /// This engine's token for the store's planning lease.
    planner_token: uuid::Uuid,
    /// The planner's working memory, kept between ticks.
    plan_scratch: std::sync::Mutex<crate::planner::PlanScratch>,
    /// Wakes [`Engine::run`] before the end of its sleep ([`Engine::wake`]).
    wake: tokio::sync::Notify,
    /// What the latest tick of [`Engine::run`] did ([`Engine::last_run_tick`]).
    last_run_tick: std::sync::Mutex<Option<run::RunTick>>,
    /// How many host calls have changed state so far ([`Engine::host_changed`]).
    host_changes: std::sync::atomic::AtomicU64,
}

/// The sequence engine. Cheap to clone: clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`] from its required parts, a store and a transport, given up front
/// so that [`build`](EngineBuilder::build) cannot fail. The clock defaults to the system
/// clock, the event sink to none, the settings to [`EngineConfig::default`].
///
/// ```
/// # use sequence_scheduler::{Engine, EngineConfig, VirtualClock};
/// # use sequence_core::transport::{Delivery, OutgoingEmail, SendError, Transport};
/// # struct Accept;
/// # #[async_trait::async_trait]
/// # impl Transport for Accept {
/// #     async fn send(&self, _: &OutgoingEmail) -> Result<Delivery, SendError> {
/// #         Ok(Delivery::with_response("250 ok"))
/// #     }
/// # }
/// let clock = VirtualClock::new(chrono::Utc::now());
/// let engine = Engine::builder(backend_memory::MemoryStore::new(), Accept)
///     .clock(clock)
///     .config(EngineConfig::with_seed(7))
///     .build();
/// # let _ = engine;
/// ```
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn EventSink>,
    config: EngineConfig,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// A builder with the required parts, already shared (`Arc<dyn Store>` and
    /// `Arc<dyn Transport>`); [`Engine::builder`] takes them by value.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, transport: Arc<dyn Transport>) -> Self {
        Self {
            store,
            transport,
            clock: Arc::new(SystemClock),
            sink: Arc::new(NoopEventSink),
            config: EngineConfig::default(),
        }
    }
    /// The clock (the system clock when not set). With a
    /// [`VirtualClock`](crate::VirtualClock), [`Engine::run_until`] jumps from one instant
    /// with work to the next instead of sleeping.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }
    /// The event sink.
    #[must_use]
    pub fn event_sink(mut self, sink: impl EventSink + 'static) -> Self {
        self.sink = Arc::new(sink);
        self
    }
    /// The settings.
    #[must_use]
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }
    /// Build the engine.
    #[must_use]
    pub fn build(self) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store: self.store,
                transport: self.transport,
                clock: self.clock,
                sink: self.sink,
                config: self.config,
                renderer: Renderer::new(),
                planner_token: uuid::Uuid::new_v4(),
                plan_scratch: std::sync::Mutex::default(),
                wake: tokio::sync::Notify::new(),
                last_run_tick: std::sync::Mutex::default(),
                host_changes: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }
}

impl Engine {
    /// Start building an engine on `store` and `transport` (any `Arc<S>` of a store is a
    /// store too, so one store can be shared with the host or other engines).
    #[must_use]
    pub fn builder(
        store: impl Store + 'static,
        transport: impl Transport + 'static,
    ) -> EngineBuilder {
        EngineBuilder::new(Arc::new(store), Arc::new(transport))
    }

    /// The store the engine works on.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The engine's settings.
    #[must_use]
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    /// Count a change a host call made through this engine (a signal, a pause, an edit):
    /// a round of sends under way reads again what it read before its next call (see
    /// `dispatch_round`).
    fn host_changed(&self) {
        self.inner
            .host_changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Apply a host call's change set and count it as a host change, whatever the answer
    /// (a round under way that reads again for nothing costs one read).
    async fn apply_host_changes(
        &self,
        now: DateTime<Utc>,
        changes: sequence_core::store::ChangeSet,
    ) -> Result<(), StoreError> {
        let applied = self.inner.store.apply_changes(now, changes).await;
        self.host_changed();
        applied
    }

    /// How many host calls have changed state through this engine so far.
    fn host_changes(&self) -> u64 {
        self.inner
            .host_changes
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn emit(
        &self,
        tenant: sequence_core::ids::TenantId,
        events: &[sequence_core::event::DomainEvent],
    ) {
        let now = self.now();
        for e in events {
            self.inner.sink.emit(tenant, now, e);
        }
    }
}
