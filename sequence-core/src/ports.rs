//! The small ports besides [`Store`](crate::store::Store) and
//! [`Transport`](crate::transport::Transport): the clock and the event sink.

use chrono::{DateTime, Utc};

use crate::event::DomainEvent;
use crate::ids::TenantId;

/// Where "now" comes from. The engine asks it; nothing in this crate reads a clock.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Move to `at` if this is a clock that moves only when told to (a virtual clock for
    /// tests, simulations and forecasts) and answer `true`; a real clock answers `false`
    /// (the default) and the caller waits instead.
    fn advance_to(&self, at: DateTime<Utc>) -> bool {
        let _ = at;
        false
    }
}

/// Receives domain events as they happen. Must not block: forward to a channel or a log.
pub trait EventSink: Send + Sync {
    /// One event of `tenant` at `at`.
    fn emit(&self, tenant: TenantId, at: DateTime<Utc>, event: &DomainEvent);
}

/// An event sink that drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopEventSink;

impl EventSink for NoopEventSink {
    fn emit(&self, _tenant: TenantId, _at: DateTime<Utc>, _event: &DomainEvent) {}
}
