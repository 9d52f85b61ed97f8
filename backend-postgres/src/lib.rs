//! backend-postgres: filled by a later issue.
