//! # backend-postgres
//!
//! The PostgreSQL [`Store`](sequence_core::Store) of the sequence engine, on sqlx: each
//! `Store` method one transaction, claims with `FOR UPDATE SKIP LOCKED`, capacity counted per
//! mailbox-local day under a row lock, so that several engine processes can share one
//! database without sending anything twice or over a limit.
//!
//! Not written yet: this crate is a placeholder in the workspace so that the layout and the
//! dependency direction (it depends on `sequence-core` alone) are fixed. Until it lands, run
//! the engine on `backend-memory`; the `sequence-conformance` suite is what it will have to
//! pass.
