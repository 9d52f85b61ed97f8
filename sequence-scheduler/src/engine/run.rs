//! `run` and `run_until`: ticks on the engine's clock, from one instant with work to the
//! next.

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use tracing::{error, info};

use super::{Engine, EngineError, TickReport};

/// The latest tick [`Engine::run`] made, for a host's health check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RunTick {
    /// When it ended, on the wall clock (not the engine's clock: a health check compares
    /// it with the time now).
    pub ended_at: DateTime<Utc>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Engine {
    /// Tick on the engine's clock until `shutdown` resolves, sleeping until the next planned
    /// instant or the poll interval, whichever is sooner, or until [`Engine::wake`]. A tick
    /// under way when the signal comes is finished (its in-flight sends complete and are
    /// recorded); no new claim is made after it. A failed tick is logged and tried again
    /// after the poll interval, so this never fails; [`Engine::last_run_tick`] tells how the
    /// latest one went.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        info!("engine running");
        loop {
            let result = self.tick().await;
            let tick = RunTick {
                ended_at: Utc::now(),
                error: result.as_ref().err().map(ToString::to_string),
            };
            *self
                .inner
                .last_run_tick
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tick);
            if let Err(e) = result {
                error!(error = %e, "tick failed");
            }
            let wait = match self.next_wakeup().await {
                Ok(next) => self.wait_until(next, None),
                Err(e) => {
                    error!(error = %e, "next wakeup failed");
                    self.poll_interval()
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
                () = self.inner.wake.notified() => {}
            }
        }
        info!("engine stopped");
    }

    /// Tell [`Engine::run`] there is new work (contacts enrolled, a sequence resumed), so
    /// that it ticks now instead of at the end of its sleep. A wake with no `run` sleeping
    /// is kept for its next sleep.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// The latest tick [`Engine::run`] made, if it made one.
    #[must_use]
    pub fn last_run_tick(&self) -> Option<RunTick> {
        self.inner
            .last_run_tick
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Run until the engine's clock reaches `end`: tick, move to the next instant with work
    /// (or `end`, whichever is sooner), tick again. With a
    /// [`VirtualClock`](crate::VirtualClock) the clock jumps from one
    /// wake-up to the next, so weeks pass in milliseconds, as in `simulate`; with any other
    /// clock the engine sleeps in between (at most the poll interval at a time). The clock
    /// is left at `end` and work due exactly then is left for the next call, so a host can
    /// act at an instant (a reply, a pause) and go on: `run_until(t)`, act,
    /// `run_until(end)`. Answers what the ticks did, added up.
    ///
    /// # Errors
    /// The first tick that failed (the clock stays where it was).
    pub async fn run_until(&self, end: DateTime<Utc>) -> Result<TickReport, EngineError> {
        let mut report = TickReport::default();
        loop {
            let now = self.now();
            if now >= end {
                return Ok(report);
            }
            report += self.tick().await?;
            let next = self.next_wakeup().await?;
            // Never stand still: what was due now was handled by this tick.
            let jump = next
                .unwrap_or(end)
                .max(self.now() + Duration::seconds(1))
                .min(end);
            if !self.inner.clock.advance_to(jump) {
                tokio::time::sleep(self.wait_until(next, Some(end))).await;
            }
        }
    }

    /// How long to sleep before the next tick on a real clock: until `next` (or `end`),
    /// at most the poll interval, at least 10 ms.
    fn wait_until(
        &self,
        next: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> std::time::Duration {
        let poll = self.poll_interval();
        let target = match (next, end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wait = target.map_or(poll, |at| {
            (at - self.now()).to_std().unwrap_or_default().min(poll)
        });
        wait.max(std::time::Duration::from_millis(10))
    }

    fn poll_interval(&self) -> std::time::Duration {
        self.inner
            .config
            .poll_interval
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(30))
    }
}
