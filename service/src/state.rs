//! What every handler shares: the engine, the clock it runs on, the keys, the tracker and
//! the engine loop's health.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sequence_engine::domain::Clock;
use sequence_engine::smtp::Tracker;
use sequence_engine::Engine;

use crate::auth::ApiKeys;
use crate::config::Limits;

/// A clock shared by the engine and the service (the engine keeps its own private).
#[derive(Clone)]
pub struct SharedClock(pub Arc<dyn Clock>);

impl std::fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedClock").finish_non_exhaustive()
    }
}

impl Clock for SharedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
    fn advance_to(&self, at: DateTime<Utc>) -> bool {
        self.0.advance_to(at)
    }
}

/// What the engine loop last did, for `/health`.
#[derive(Debug, Clone, Default)]
pub struct EngineHealth {
    /// Whether the loop is running.
    pub running: bool,
    /// When the last tick finished (wall clock).
    pub last_tick_at: Option<DateTime<Utc>>,
    /// The last tick's error, if it failed.
    pub last_error: Option<String>,
}

/// The shared state of the handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    clock: SharedClock,
    keys: ApiKeys,
    tracker: Tracker,
    limits: Limits,
    /// Whether the engine loop (`Engine::run`) is running.
    running: AtomicBool,
}

impl AppState {
    pub(crate) fn new(
        engine: Engine,
        clock: SharedClock,
        keys: ApiKeys,
        tracker: Tracker,
        limits: Limits,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                clock,
                keys,
                tracker,
                limits,
                running: AtomicBool::new(false),
            }),
        }
    }
    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }
    /// Now, on the engine's clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }
    /// The API keys.
    #[must_use]
    pub fn keys(&self) -> &ApiKeys {
        &self.inner.keys
    }
    /// The tracking links' signer.
    #[must_use]
    pub fn tracker(&self) -> &Tracker {
        &self.inner.tracker
    }
    /// The request limits.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }
    /// The engine loop's health: whether it runs, and its latest tick.
    #[must_use]
    pub fn health(&self) -> EngineHealth {
        let last = self.inner.engine.last_run_tick();
        EngineHealth {
            running: self.inner.running.load(Ordering::Relaxed),
            last_tick_at: last.as_ref().map(|t| t.ended_at),
            last_error: last.and_then(|t| t.error),
        }
    }
    /// Tell the engine loop there is new work (contacts enrolled, a sequence resumed), so
    /// that it ticks now instead of at the end of its sleep.
    pub fn wake_engine(&self) {
        self.inner.engine.wake();
    }
    /// Record whether the engine loop runs.
    pub(crate) fn set_running(&self, running: bool) {
        self.inner.running.store(running, Ordering::Relaxed);
    }
}
