//! backend-memory: filled by a later issue.
