//! Random values for identifiers, codes, tokens and nonces, all from the operating system's
//! CSPRNG (`getrandom(2)` through the `getrandom` crate). The one place the server makes
//! randomness; `fastrand` is used only for mock mode's latency jitter, which is no secret.
//! (aws-lc-rs's generator seeds itself from CPU jitter on first use — about a fifth of a start's
//! CPU — and is left to what aws-lc does itself: RSA keys and signatures.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Only fails when the OS has no entropy source; nothing sensible remains then.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// `len` characters drawn uniformly from `alphabet` (at most 256 symbols).
pub fn string(alphabet: &[u8], len: usize) -> String {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    // Bytes at or above the largest multiple of the alphabet's size are dropped, so every symbol
    // is equally likely.
    let n = alphabet.len();
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in bytes::<32>() {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % n]));
            }
        }
    }
    out
}

/// `len` random decimal digits (`"042917"`); codes that travel as integers use
/// [`digits_no_leading_zero`].
pub fn digits(len: usize) -> String {
    string(b"0123456789", len)
}

/// `len` random decimal digits, the first not `0`, for codes a client may send back as a JSON
/// integer (a leading zero would be lost).
pub fn digits_no_leading_zero(len: usize) -> String {
    let mut out = string(b"123456789", 1.min(len));
    out.push_str(&digits(len.saturating_sub(1)));
    out
}

/// `len` random lowercase hex characters (identifiers).
pub fn hex(len: usize) -> String {
    string(b"0123456789abcdef", len)
}

/// `len` random characters of `[0-9A-Za-z]` (API keys, GCM nonces, APIv3 keys).
pub fn alphanumeric(len: usize) -> String {
    string(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", len)
}

/// A nonce as WeChat Pay and Aliyun take it: 32 uppercase hex characters (16 random bytes).
pub fn nonce_str() -> String {
    hex::encode_upper(bytes::<16>())
}

/// An opaque bearer token: 32 random bytes, base64url without padding (43 characters).
pub fn opaque_token() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_their_shape() {
        assert_eq!(digits(6).len(), 6);
        assert!(digits(6).bytes().all(|b| b.is_ascii_digit()));
        for _ in 0..200 {
            let code = digits_no_leading_zero(6);
            assert_eq!(code.len(), 6);
            assert_ne!(code.as_bytes()[0], b'0');
        }
        assert_eq!(digits_no_leading_zero(0), "");
        assert!(hex(24).bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(hex(70).len(), 70);
        assert!(alphanumeric(32).bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(nonce_str().len(), 32);
        assert_eq!(opaque_token().len(), 43);
        assert_ne!(opaque_token(), opaque_token());
    }

    #[test]
    fn every_symbol_is_reachable() {
        let sample = string(b"ab", 400);
        assert!(sample.contains('a') && sample.contains('b'));
    }
}
