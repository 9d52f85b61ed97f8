//! `run`: ticks on the engine's clock until a shutdown signal.

use std::future::Future;

use tracing::{error, info};

use super::{Engine, EngineError};

impl Engine {
    /// Tick on the engine's clock until `shutdown` resolves, sleeping until the next planned
    /// instant or the poll interval, whichever is sooner. A tick under way when the signal
    /// comes is finished (its in-flight sends complete and are recorded); no new claim is
    /// made after it. A failed tick is logged and retried after the poll interval.
    ///
    /// # Errors
    /// Never fails by itself; the `Result` is for symmetry with the other calls.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), EngineError> {
        tokio::pin!(shutdown);
        let poll = self
            .inner
            .config
            .poll_interval
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(30));
        info!("engine running");
        loop {
            let now = self.now();
            if let Err(e) = self.tick(now).await {
                error!(error = %e, "tick failed");
            }
            let wait = match self.next_wakeup().await {
                Ok(Some(at)) => (at - self.now()).to_std().unwrap_or_default().min(poll),
                Ok(None) => poll,
                Err(e) => {
                    error!(error = %e, "next wakeup failed");
                    poll
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait.max(std::time::Duration::from_millis(10))) => {}
            }
        }
        info!("engine stopped");
        Ok(())
    }
}
