//! Clocks: the system clock for production and a virtual clock for tests and simulation.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sequence_core::ports::Clock;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to; clones share one instant.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    micros: Arc<AtomicI64>,
}

impl VirtualClock {
    /// A clock reading `start`.
    #[must_use]
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(start.timestamp_micros())),
        }
    }

    /// Set the instant (it may not move backwards: an earlier instant is ignored).
    pub fn set(&self, at: DateTime<Utc>) {
        self.micros
            .fetch_max(at.timestamp_micros(), Ordering::SeqCst);
    }

    /// Move forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = by.num_microseconds().unwrap_or(i64::MAX).max(0);
        self.micros.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        let micros = self.micros.load(Ordering::SeqCst);
        Utc.timestamp_micros(micros)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn advance_to(&self, at: DateTime<Utc>) -> bool {
        self.set(at);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = VirtualClock::new(start);
        let shared = clock.clone();
        clock.advance(Duration::hours(2));
        assert_eq!(shared.now(), start + Duration::hours(2));
        clock.set(start);
        assert_eq!(clock.now(), start + Duration::hours(2));
        clock.set(start + Duration::days(1));
        assert_eq!(shared.now(), start + Duration::days(1));
    }
}
