//! Seeded, stateless randomness: every random choice of the planner is a hash of the seed
//! and what is being chosen, so plans do not depend on the order of work.

/// Mix two 64-bit values into a well-distributed one (SplitMix64's finalizer).
#[must_use]
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` from a hash.
#[must_use]
pub(crate) fn unit_f64(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}
