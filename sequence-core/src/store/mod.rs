//! The `Store` port: where the engine keeps sequences, mailboxes, contacts, enrollments and
//! the outbox.
//!
//! The trait is coarse on purpose: **each method is one atomic unit of work**. PostgreSQL
//! makes each one a transaction; the memory store takes one lock. Every method receives
//! `now` (no store reads a clock), so virtual time works on every backend.
//!
//! The port has two halves: the [`Catalog`] (sequences, mailboxes, contacts: what a host
//! edits) and the [`Outbox`] (enrollments, plans, claims, completions: what the engine works
//! through). [`Store`] is their union, implemented for every type that implements both; each
//! half documents the part of the contract it governs. `Arc<S>` is a store when `S` is, so
//! one store can be shared by several engines and the host.

mod catalog;
mod due;
mod outbox;
mod plan;
mod shared;
mod tally;
mod waits;

use crate::error::Entity;
use crate::ids::SendId;

pub use catalog::{Catalog, DraftDeletion};
pub use due::{DueDocuments, DueEnrollment};
pub use outbox::{
    ChangeSet, ClaimedSend, DailyCounts, EnrollOutcome, EnrollmentCursor, MailboxDay,
    MailboxSnapshot, Outbox, PlannedSlot, SendCompletion, SendContext, MAX_MAILBOX_DAYS,
};
pub use plan::{PlanApplied, PlanCommit, PlanDeferral, PlanSend, PlanningLease};
pub use tally::{EnrollmentTally, SendTally, SequenceTally};
pub use waits::{
    MailboxBound, MailboxWait, PlanMailboxWait, PlanWait, PoolBound, PoolDaySeen, PoolWait,
};

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such record in this tenant.
    #[error("{entity} {id} not found")]
    NotFound {
        /// The kind of record.
        entity: Entity,
        /// The id looked for.
        id: String,
    },
    /// The record changed since it was read (optimistic lock).
    #[error("{entity} {id}: version conflict (expected {expected}, found {found})")]
    VersionConflict {
        /// The kind of record.
        entity: Entity,
        /// Its id.
        id: String,
        /// The version the caller read.
        expected: u64,
        /// The version stored.
        found: u64,
    },
    /// A record with this identity already exists.
    #[error("{entity} {id} already exists")]
    AlreadyExists {
        /// The kind of record.
        entity: Entity,
        /// Its id.
        id: String,
    },
    /// The send's lease is held by another claim or has been taken away.
    #[error("send {send}: lease lost")]
    LeaseLost {
        /// The send.
        send: SendId,
    },
    /// The call itself is invalid (e.g. a completion whose send is neither sent, waiting
    /// for a retry nor failed). Nothing was written.
    #[error("invalid store call: {0}")]
    Invalid(String),
    /// [`Outbox::apply_plan`] was given a planning lease that is no longer held (it ran out
    /// and another engine took it): nothing of the plan was written.
    #[error("planning lease lost")]
    PlanningLeaseLost,
    /// The backend failed (connection, I/O, serialization); the cause is kept as the
    /// error's source.
    #[error("backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A backend failure caused by `error`.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Backend(error.into())
    }

    /// A record of `entity` with id `id` is missing.
    pub fn not_found(entity: Entity, id: impl std::fmt::Display) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Whether retrying the unit of work after reading again may succeed.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::VersionConflict { .. } | Self::LeaseLost { .. } | Self::PlanningLeaseLost
        )
    }
}

/// Where sequences, mailboxes, contacts, enrollments and sends live: the [`Catalog`] and
/// the [`Outbox`] together. Implemented for every type that implements both.
pub trait Store: Catalog + Outbox {}

impl<T: Catalog + Outbox + ?Sized> Store for T {}
