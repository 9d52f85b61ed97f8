//! Transports for hosts' own tests (feature `test-util`): they send nothing.
//!
//! * [`RecordingTransport`] writes down every call (with the clock's instant) and fails the
//!   attempts it is told to, by contact and step, like an SMTP server answering 421 or 550;
//!   it also notices two calls of one mailbox at once (which the engine never makes).
//! * [`FaultyTransport`] wraps any transport (yours, or the SMTP one against a test server)
//!   and injects failures by call count or seeded chance, and latency on a virtual clock
//!   (a slow server), so a host can see how its campaigns ride out an outage.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use sequence_scheduler::testing::{Fault, FaultyTransport, RecordingTransport};
//! use sequence_scheduler::VirtualClock;
//!
//! let clock = VirtualClock::new(Utc.with_ymd_and_hms(2026, 3, 9, 9, 0, 0).unwrap());
//! let recording = RecordingTransport::new(clock.clone());
//! // Every third call fails as a 421 would; each call takes 30 virtual seconds.
//! let transport = FaultyTransport::new(recording.clone())
//!     .fail_every(3, Fault::Transient)
//!     .latency(clock, chrono::Duration::seconds(30));
//! # let _ = transport;
//! ```

mod faulty;
mod recording;

use sequence_core::transport::{FailureCategory, SendError};
use serde::{Deserialize, Serialize};

pub use faulty::FaultyTransport;
pub use recording::{Attempt, AttemptOutcome, RecordingTransport};

/// The kind of failure to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Like SMTP 421 4.3.2: retried later.
    Transient,
    /// Like SMTP 550 5.1.1: not retried; the contact bounced.
    Permanent,
}

impl Fault {
    /// The error a transport answers for this fault.
    #[must_use]
    pub fn error(self) -> SendError {
        match self {
            Self::Transient => {
                SendError::transient(FailureCategory::Other, "421 4.3.2 try again later")
                    .with_codes(Some(421), Some("4.3.2".into()))
            }
            Self::Permanent => {
                SendError::permanent(FailureCategory::InvalidRecipient, "550 5.1.1 no such user")
                    .with_codes(Some(550), Some("5.1.1".into()))
            }
        }
    }
}
