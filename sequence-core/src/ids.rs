//! Typed identifiers. Each wraps a [`Uuid`] so that a mailbox id can never be passed where
//! a contact id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use uuid::Uuid;

/// The name-based (version 5) UUID of `name` in the OID namespace: the same id as
/// `Uuid::new_v5(&Uuid::NAMESPACE_OID, name)`, hashed with the CPU's SHA instructions where
/// it has them (a plan derives an id for each of thousands of sends).
fn name_based(name: &[u8]) -> Uuid {
    let mut hash = Sha1::new();
    hash.update(Uuid::NAMESPACE_OID.as_bytes());
    hash.update(name);
    let digest = hash.finalize();
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

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
                Self(name_based(key.as_bytes()))
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

impl EnrollmentId {
    /// An id derived from `name` and ordered by `at`: a UUID v7 whose time is `at` (whole
    /// milliseconds since the epoch; 0 before it) and whose other bits are the name's hash.
    /// The same name and instant give the same id; enrollments made together get ids side
    /// by side, so a bulk enrollment adds to the ends of the indexes keyed by id instead of
    /// all over them.
    #[must_use]
    pub fn derived_at(at: chrono::DateTime<chrono::Utc>, name: &str) -> Self {
        let key = format!("EnrollmentId:{name}");
        let hash = name_based(key.as_bytes());
        let mut rest = [0u8; 10];
        rest.copy_from_slice(&hash.as_bytes()[6..]);
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &rest).into_uuid())
    }
}

impl SendId {
    /// The id of the one outbox row of step `step` of `enrollment`: the idempotency key
    /// `(enrollment, step)` names the row, so every backend and every engine derive the
    /// same id. Equal to `SendId::from_name(&format!("{enrollment}/{step}"))`, without
    /// building the strings (a plan may make thousands).
    #[must_use]
    pub fn of_step(enrollment: EnrollmentId, step: u32) -> Self {
        const PREFIX: &[u8] = b"SendId:";
        // "SendId:" + a hyphenated UUID + "/" + at most 10 digits.
        let mut buf = [0u8; 7 + 36 + 1 + 10];
        let mut len = PREFIX.len();
        buf[..len].copy_from_slice(PREFIX);
        let uuid = enrollment
            .0
            .hyphenated()
            .encode_lower(&mut buf[len..len + uuid::fmt::Hyphenated::LENGTH])
            .len();
        len += uuid;
        buf[len] = b'/';
        len += 1;
        let mut digits = [0u8; 10];
        let mut n = step;
        let mut d = digits.len();
        loop {
            d -= 1;
            // `n % 10` is a single digit.
            digits[d] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let tail = &digits[d..];
        buf[len..len + tail.len()].copy_from_slice(tail);
        len += tail.len();
        Self(name_based(&buf[..len]))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn name_based_ids_are_uuid_v5_in_the_oid_namespace() {
        for name in [
            "",
            "a",
            "SendId:00000000-0000-0000-0000-000000000001/0",
            &"x".repeat(200),
        ] {
            assert_eq!(
                super::name_based(name.as_bytes()),
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()),
                "{name:?}"
            );
        }
    }

    #[test]
    fn derived_enrollment_ids_are_stable_distinct_and_ordered_by_instant() {
        use chrono::TimeZone;
        let t = |s| chrono::Utc.timestamp_opt(1_770_000_000 + s, 0).unwrap();
        let a = EnrollmentId::derived_at(t(0), "a");
        assert_eq!(
            a,
            EnrollmentId::derived_at(t(0), "a"),
            "the same name and instant"
        );
        assert_ne!(a, EnrollmentId::derived_at(t(0), "b"), "another name");
        assert_ne!(a, EnrollmentId::derived_at(t(1), "a"), "another instant");
        let mut ids: Vec<EnrollmentId> = (0..100_i64)
            .map(|i| EnrollmentId::derived_at(t(i), &format!("name {}", 100 - i)))
            .collect();
        let made = ids.clone();
        ids.sort();
        assert_eq!(ids, made, "ordered by instant whatever the names");
        assert_eq!(a.0.get_version_num(), 7);
    }

    use super::*;

    #[test]
    fn a_steps_send_id_is_its_named_id() {
        for step in [0, 1, 9, 10, 12_345, u32::MAX] {
            for e in [
                EnrollmentId::from_u128(0),
                EnrollmentId::from_u128(u128::MAX),
                EnrollmentId::new(),
            ] {
                assert_eq!(
                    SendId::of_step(e, step),
                    SendId::from_name(&format!("{e}/{step}"))
                );
            }
        }
    }
}
