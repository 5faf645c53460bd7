//! Unguessable ids and tokens from the operating system's randomness.
//!
//! `fastrand` is a fine PRNG for jitter and simulations but predictable from its output, so
//! anything that guards access (task ids a viewer must not guess, subscribe tokens) reads
//! `/dev/urandom`, which never blocks once the kernel is seeded.

use std::io::Read;

/// 128 random bits as 32 lowercase hex digits.
pub fn token() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("the operating system's randomness is readable");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
