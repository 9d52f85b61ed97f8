//! transport-smtp: filled by a later issue.
