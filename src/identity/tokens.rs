//! Access tokens: JWT HS256 (jsonwebtoken), one signing key per API derived from the master
//! secret, `aud` the API id. A token names its session (`sid`) and the session's generation
//! (`gen`), so a session can be revoked and a renewal can be claimed exactly once.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::hmac;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session the token belongs to (revoked by logout).
    pub sid: String,
    /// The session's generation when the token was issued (a renewal claims it once).
    #[serde(default, rename = "gen")]
    pub generation: i32,
    /// Which API issued it (`heating`): a token of one API is no credential for another.
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// Issues and verifies one API's access tokens.
pub struct Tokens {
    api: &'static str,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// What [`Tokens::verify`] accepts, built once (its audience and required claims are sets
    /// that were otherwise allocated for every request).
    validation: Validation,
    access_ttl: Duration,
    /// Tokens whose signature and audience this process has checked, with their claims, the
    /// least recently presented dropped past [`VERIFIED_TOKENS`]. What a token's signature
    /// proves never changes (the key is fixed for the process's life), so this is no copy of
    /// state another instance could change: a session's end and a token's expiry are still
    /// checked on every request, by the caller. A client presents the same token for every
    /// request until it renews; checking it again (base64, HMAC, two JSON parses) was about
    /// 8 % of the server's CPU per authenticated read.
    verified: Mutex<lru::LruCache<Box<str>, Claims>>,
}

/// How many verified tokens each API's [`Tokens`] keeps: about 4.5 MB per API at most (a token,
/// its claims and the entry are about 550 bytes), for as many clients active at once.
const VERIFIED_TOKENS: NonZeroUsize = NonZeroUsize::new(8192).expect("non-zero");

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("api", &self.api).field("access_ttl", &self.access_ttl).finish_non_exhaustive()
    }
}

/// Why a token was refused (the client only ever sees its API's "token invalid").
#[derive(Debug, thiserror::Error)]
#[error("token refused: {0}")]
pub struct TokenError(#[from] jsonwebtoken::errors::Error);

impl Tokens {
    /// API `api`'s tokens, HS256 with a key derived from `master` (≥ 32 bytes):
    /// HMAC-SHA256(master, `"mpapi access token key\0" ‖ api`). Separate keys mean a token of one
    /// API never verifies for another, even if `aud` checking were lost.
    pub fn new(master: &[u8], api: &'static str, access_ttl: Duration) -> anyhow::Result<Tokens> {
        anyhow::ensure!(master.len() >= 32, "the token secret must be at least 32 bytes");
        let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, master));
        context.update(b"mpapi access token key\0");
        context.update(api.as_bytes());
        let key = context.sign();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_audience(&[api]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        Ok(Tokens {
            api,
            encoding: EncodingKey::from_secret(key.as_ref()),
            decoding: DecodingKey::from_secret(key.as_ref()),
            validation,
            access_ttl,
            verified: Mutex::new(lru::LruCache::new(VERIFIED_TOKENS)),
        })
    }

    /// The access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// A token for `user_id` in session `sid` at `generation`, issued at `now` (s).
    pub fn issue(&self, user_id: &str, sid: &str, generation: i32, now: i64) -> String {
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: sid.to_owned(),
            generation,
            aud: self.api.to_owned(),
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    /// The claims of a token of this API with a valid signature (HS256 only: `alg: none` and
    /// other algorithms are refused). Its lifetime is NOT checked here: the caller compares
    /// `exp` with its own clock (tests move it), and can then say "expired" rather than
    /// "invalid", or accept an expired token for renewal.
    ///
    /// A token verified before is answered from [`Tokens`]' memo of verified tokens (the same
    /// claims: the check is a pure function of the token and the key); a refused one is never
    /// kept, so it is checked again each time it is presented.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if let Some(claims) = self.verified.lock().unwrap_or_else(PoisonError::into_inner).get(token) {
            return Ok(claims.clone());
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        self.verified.lock().unwrap_or_else(PoisonError::into_inner).put(token.into(), claims.clone());
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_api_and_key() {
        let heating = Tokens::new(&[3; 32], "heating", Duration::from_secs(7200)).unwrap();
        let now = chrono::Utc::now().timestamp();
        let token = heating.issue("u1", "s1", 4, now);
        let claims = heating.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str(), claims.generation), ("u1", "s1", 4));
        assert_eq!(claims.exp - claims.iat, 7200);
        let points = Tokens::new(&[3; 32], "points", Duration::from_secs(7200)).unwrap();
        assert!(points.verify(&token).is_err(), "another API's key and audience");
        // Expiry is the caller's check (against its clock): the claims say when.
        assert_eq!(heating.verify(&heating.issue("u1", "s1", 0, now - 7201)).unwrap().exp, now - 1);
        let other = Tokens::new(&[4; 32], "heating", Duration::from_secs(7200)).unwrap();
        assert!(other.verify(&token).is_err());
    }

    /// A verified token is answered from the memo with the same claims; a tampered copy of it,
    /// or a token refused once, is refused every time (refusals are not kept).
    #[test]
    fn verified_tokens_are_remembered_and_refused_ones_are_not() {
        let tokens = Tokens::new(&[3; 32], "heating", Duration::from_secs(60)).unwrap();
        let now = chrono::Utc::now().timestamp();
        let token = tokens.issue("u1", "s1", 2, now);
        let first = tokens.verify(&token).unwrap();
        assert_eq!(tokens.verified.lock().unwrap().len(), 1);
        assert_eq!(tokens.verify(&token).unwrap(), first);
        let (head, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{head}.{flipped}{}", &signature[1..]);
        for _ in 0..2 {
            assert!(tokens.verify(&tampered).is_err(), "a changed signature");
        }
        let points = Tokens::new(&[3; 32], "points", Duration::from_secs(60)).unwrap();
        for _ in 0..2 {
            assert!(points.verify(&token).is_err(), "another API's key, also after heating verified it");
        }
        assert_eq!(tokens.verified.lock().unwrap().len(), 1, "only the verified token is kept");
        assert_eq!(points.verified.lock().unwrap().len(), 0);
    }

    #[test]
    fn only_hs256_with_our_key_verifies() {
        let tokens = Tokens::new(&[3; 32], "heating", Duration::from_secs(60)).unwrap();
        let now = chrono::Utc::now().timestamp();
        let claims = Claims { sub: "u".into(), sid: "s".into(), generation: 0, aud: "heating".into(), iat: now, exp: now + 60 };
        use base64::Engine as _;
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let unsigned = format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})), b64(&serde_json::to_value(&claims).unwrap()));
        assert!(tokens.verify(&unsigned).is_err(), "alg: none");
        let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(&[3; 32])).unwrap();
        assert!(tokens.verify(&hs512).is_err(), "HS512");
    }
}
