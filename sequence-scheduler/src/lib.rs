//! # sequence-scheduler
//!
//! The planner and the engine of the sequence engine.
//!
//! * [`planner::plan`] is a pure function: given the due enrollments, the mailboxes with
//!   their current local day, and the sequences' policies, it returns which mailbox sends
//!   which step at which instant, or why each other enrollment waits and until when.
//! * [`Engine`] drives a [`Store`](sequence_core::Store), a
//!   [`Transport`](sequence_core::Transport) and a [`Clock`](sequence_core::Clock): it plans,
//!   persists the plan with its capacity reservations, claims due sends under leases,
//!   re-checks, renders, sends, and records each outcome.

pub mod clock;
pub mod engine;
pub mod planner;
mod rng;
#[cfg(feature = "test-util")]
pub mod testing;

pub use clock::{SystemClock, VirtualClock};
pub use engine::{
    DeliverySemantics, Engine, EngineBuilder, EngineConfig, EngineError, Explanation, MailboxUsage,
    RetryPolicy, RunTick, SequenceStats, StepStats, TickReport, VariantStats,
};
pub use planner::{plan, MailboxOutlook, Plan, PlannerConfig, PlanningInput};
