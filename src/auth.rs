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

/// Whether an `Authorization` header carries `Bearer <token>`. The scheme is case-insensitive
/// (RFC 9110, 11.1): `bearer T` is as good as `Bearer T`.
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let given = header
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, credentials)| credentials.trim());
    // An empty token never matches, whatever is configured (`Config::validate` refuses it too).
    !token.is_empty() && constant_time_eq(given.as_bytes(), token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(bearer_matches(Some("bearer s3cret"), "s3cret"), "the scheme is case-insensitive");
        assert!(bearer_matches(Some("BEARER  s3cret "), "s3cret"));
        assert!(!bearer_matches(Some("Bearer "), ""), "an empty token never matches");
        for wrong in
            [None, Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("s3cret"), Some("Basic s3cret"), Some("Bearer ")]
        {
            assert!(!bearer_matches(wrong, "s3cret"), "{wrong:?}");
        }
    }
}
