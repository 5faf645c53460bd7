//! Unguessable ids and tokens from the operating system's randomness.
//!
//! `fastrand` is a fine PRNG for jitter and simulations but predictable from its output, so
//! anything that guards access (task ids a viewer must not guess, subscribe tokens) comes from
//! the `getrandom` system call. A system call, not `/dev/urandom`: opening a file needs a free
//! descriptor, and a server at its open-file limit must still be able to make a token.

/// Characters of every [`token`]: a subscribe token longer than this was not made by the server.
pub const TOKEN_LEN: usize = 32;

/// 128 random bits as [`TOKEN_LEN`] lowercase hex digits.
pub fn token() -> String {
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills `bytes` from the kernel's randomness, which never blocks once the kernel is seeded
/// (long before a server starts).
fn fill(bytes: &mut [u8]) {
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            // Only ENOSYS (a kernel older than 3.17) or EFAULT remain: nothing to go on with.
            Err(e) => panic!("the getrandom system call failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_distinct_hex() {
        let (a, b) = (super::token(), super::token());
        assert_ne!(a, b);
        assert!(
            a.len() == super::TOKEN_LEN && a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{a}"
        );
    }
}
