//! Credentials: access tokens (JWT HS256, jsonwebtoken), opaque refresh tokens (stored as
//! SHA-256), passwords (argon2id).

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use aws_lc_rs::digest::{SHA256, digest};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session the token belongs to (revoked by logout).
    pub sid: String,
    /// Which API issued it (`heating`): a token of one API is no credential for another.
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// Issues and verifies access tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Access-token lifetime (000 §2.1 `expires_in`: 7200 s).
    pub ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// Why a token was refused (the client only ever sees "token invalid").
#[derive(Debug, thiserror::Error)]
#[error("token refused: {0}")]
pub struct TokenError(#[from] jsonwebtoken::errors::Error);

impl Tokens {
    /// HS256 with `secret` (≥ 32 bytes).
    pub fn new(secret: &[u8], ttl: Duration) -> anyhow::Result<Tokens> {
        anyhow::ensure!(secret.len() >= 32, "the token secret must be at least 32 bytes");
        Ok(Tokens { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), ttl })
    }

    /// A token for `user_id` in session `sid` of API `aud`, issued at `now` (s).
    pub fn issue(&self, user_id: &str, sid: &str, aud: &str, now: i64) -> String {
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: sid.to_owned(),
            aud: aud.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    /// The claims of a token of API `aud` with a valid signature. Its lifetime is NOT checked
    /// here: the caller compares `exp` with its own clock (tests move it), and can then say
    /// "expired" rather than "invalid".
    pub fn verify(&self, token: &str, aud: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_audience(&[aud]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims)
    }
}

/// Lower-hex SHA-256 of a high-entropy token (refresh tokens are stored only as this).
pub fn token_hash(token: &str) -> String {
    hex::encode(digest(&SHA256, token.as_bytes()).as_ref())
}

/// Hash a password with argon2id and a random salt (PHC string). CPU-heavy: call it from a
/// blocking task.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&crate::random::bytes::<16>()).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// Whether `password` matches the stored PHC string (false for an unreadable one).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_api_and_key() {
        let tokens = Tokens::new(&[3; 32], Duration::from_secs(7200)).unwrap();
        let now = chrono::Utc::now().timestamp();
        let token = tokens.issue("u1", "s1", "heating", now);
        let claims = tokens.verify(&token, "heating").unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str(), claims.exp - claims.iat), ("u1", "s1", 7200));
        assert!(tokens.verify(&token, "points").is_err());
        // Expiry is the caller's check (against its clock): the claims say when.
        assert_eq!(tokens.verify(&tokens.issue("u1", "s1", "heating", now - 7201), "heating").unwrap().exp, now - 1);
        let other = Tokens::new(&[4; 32], Duration::from_secs(7200)).unwrap();
        assert!(other.verify(&token, "heating").is_err());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let stored = hash_password("123456789");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_password("123456789", &stored));
        assert!(!verify_password("12345678", &stored));
        assert!(!verify_password("123456789", "not a hash"));
    }

    #[test]
    fn token_hashes_are_sha256_hex() {
        assert_eq!(token_hash("a"), "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
    }
}
