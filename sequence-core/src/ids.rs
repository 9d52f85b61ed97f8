//! Typed identifiers. Each wraps a [`Uuid`] so that a mailbox id can never be passed where
//! a contact id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random id (UUID v4).
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
            /// An id from a `u128`, for tests, fixtures and deterministic simulations.
            #[must_use]
            pub const fn from_u128(value: u128) -> Self {
                Self(Uuid::from_u128(value))
            }
            /// An id derived deterministically from a name (UUID v5 in a fixed namespace).
            #[must_use]
            pub fn from_name(name: &str) -> Self {
                let key = format!("{}:{name}", stringify!($name));
                Self(Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes()))
            }
            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// A tenant: every record belongs to exactly one, and no read or write crosses tenants.
    TenantId
);
id_type!(
    /// A sequence (campaign).
    SequenceId
);
id_type!(
    /// A sending mailbox.
    MailboxId
);
id_type!(
    /// A contact (recipient).
    ContactId
);
id_type!(
    /// An enrollment of one contact in one sequence.
    EnrollmentId
);
id_type!(
    /// A send (one outbox row: one step of one enrollment).
    SendId
);
