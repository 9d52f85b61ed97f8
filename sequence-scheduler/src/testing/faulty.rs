//! [`FaultyTransport`]: failures and latency around any transport.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::Duration;
use sequence_core::transport::{Delivery, OutgoingEmail, SendError, Transport};

use super::Fault;
use crate::clock::VirtualClock;

/// What to inject, and what was.
#[derive(Debug, Default)]
struct Script {
    /// Calls so far.
    calls: u64,
    /// Fail every n-th call.
    every: Option<(u64, Fault)>,
    /// Fail each call with this chance, drawn from a seeded generator.
    chance: Option<(f64, Fault)>,
    /// The generator's state (splitmix64).
    rng: u64,
    /// Fail the next calls, whatever else is set.
    next: Vec<Fault>,
    /// Failures injected so far.
    injected: u64,
}

impl Script {
    /// The fault for the next call, if any.
    fn next_fault(&mut self) -> Option<Fault> {
        self.calls += 1;
        if !self.next.is_empty() {
            return Some(self.next.remove(0));
        }
        if let Some((n, fault)) = self.every {
            if n > 0 && self.calls % n == 0 {
                return Some(fault);
            }
        }
        if let Some((chance, fault)) = self.chance {
            if self.draw() < chance {
                return Some(fault);
            }
        }
        None
    }

    /// A uniform draw in [0, 1).
    fn draw(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Wraps a transport and injects failures (instead of calling it) and latency (on a
/// virtual clock, as a slow server would). Clones share one script.
#[derive(Debug, Clone)]
pub struct FaultyTransport<T> {
    inner: T,
    script: Arc<Mutex<Script>>,
    latency: Option<(VirtualClock, Duration)>,
}

impl<T: Transport> FaultyTransport<T> {
    /// `inner`, with nothing injected yet.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            script: Arc::default(),
            latency: None,
        }
    }

    /// Fail every `n`-th call with `fault` (`n` of 0 fails none).
    #[must_use]
    pub fn fail_every(self, n: u64, fault: Fault) -> Self {
        self.script().every = Some((n, fault));
        self
    }

    /// Fail each call with chance `chance` (0 to 1), drawn from a generator seeded with
    /// `seed`: the same seed fails the same calls.
    #[must_use]
    pub fn fail_at_random(self, chance: f64, seed: u64, fault: Fault) -> Self {
        {
            let mut script = self.script();
            script.chance = Some((chance.clamp(0.0, 1.0), fault));
            script.rng = seed;
        }
        self
    }

    /// Each call lets `per_call` pass on `clock` before it answers, like a server that
    /// takes that long.
    #[must_use]
    pub fn latency(mut self, clock: VirtualClock, per_call: Duration) -> Self {
        self.latency = Some((clock, per_call));
        self
    }

    /// Fail the next `count` calls with `fault` (an outage), whatever else is set.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        self.script().next.extend(std::iter::repeat_n(fault, count));
    }

    /// Calls made so far, failed ones included.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.script().calls
    }

    /// Failures injected so far.
    #[must_use]
    pub fn injected(&self) -> u64 {
        self.script().injected
    }

    /// The transport it wraps.
    #[must_use]
    pub fn inner(&self) -> &T {
        &self.inner
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl<T: Transport> Transport for FaultyTransport<T> {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        let fault = {
            let mut script = self.script();
            let fault = script.next_fault();
            script.injected += u64::from(fault.is_some());
            fault
        };
        let answer = match fault {
            Some(fault) => Err(fault.error()),
            None => self.inner.send(email).await,
        };
        if let Some((clock, per_call)) = &self.latency {
            clock.advance(*per_call);
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_and_next_and_seeded_chance() {
        let mut script = Script {
            every: Some((3, Fault::Transient)),
            ..Script::default()
        };
        let faults: Vec<_> = (0..6).map(|_| script.next_fault()).collect();
        assert_eq!(
            faults,
            [
                None,
                None,
                Some(Fault::Transient),
                None,
                None,
                Some(Fault::Transient)
            ]
        );
        script.next = vec![Fault::Permanent];
        assert_eq!(script.next_fault(), Some(Fault::Permanent));
        assert_eq!(script.next_fault(), None);

        let draws = |seed| {
            let mut s = Script {
                chance: Some((0.5, Fault::Transient)),
                rng: seed,
                ..Script::default()
            };
            (0..200)
                .map(|_| s.next_fault().is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7), "the same seed fails the same calls");
        assert_ne!(draws(7), draws(8));
        let failed = draws(7).iter().filter(|f| **f).count();
        assert!((70..130).contains(&failed), "about half fail: {failed}");
    }
}
