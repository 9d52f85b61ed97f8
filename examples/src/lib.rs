//! Runnable programs for the sequence engine.
