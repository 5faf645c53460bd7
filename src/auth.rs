//! Secrets compared in constant time.
//!
//! A comparison that stops at the first differing byte tells a patient attacker, through the
//! answer's timing, how many leading bytes were right. These comparisons look at every byte of
//! the longer input whatever they find.

/// Whether `given` equals `expected`, taking time that depends only on their lengths.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for i in 0..given.len().max(expected.len()) {
        let a = given.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        diff |= usize::from(a ^ b);
    }
    std::hint::black_box(diff) == 0
}

/// Whether an `Authorization` header carries `Bearer <token>`.
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let given = header.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
    constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        for wrong in
            [None, Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("s3cret"), Some("Basic s3cret"), Some("Bearer ")]
        {
            assert!(!bearer_matches(wrong, "s3cret"), "{wrong:?}");
        }
    }
}
