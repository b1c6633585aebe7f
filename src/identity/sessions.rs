//! Sessions: start one at login, authenticate access tokens against it, renew it in the API's
//! refresh style, revoke it. One `session` table for every API (`api` column); nothing in
//! process memory, so a logout on one instance ends the session on all.

use std::sync::Arc;

use crate::clock::Clock;
use crate::coalesce::ReadsById;
use crate::config::{RefreshStyle, TokenConfig};
use crate::storage::identity::{NewSession, Rotation, Session};
use crate::storage::{Db, StorageError};

use super::tokens::Tokens;

/// Who is calling: a user and the session of their access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user id.
    pub user_id: String,
    /// The session (`sid`); logout revokes it.
    pub session_id: String,
    /// The WeChat openid the session was started with ([`Sessions::start_wechat`]), read with
    /// the session from the server's own row, never from the token; `None` for any other login,
    /// and for a session started before sessions recorded it.
    pub openid: Option<String>,
}

impl Principal {
    /// The caller a session row names.
    fn of(session: Session) -> Principal {
        Principal { user_id: session.user_id, session_id: session.id, openid: session.openid }
    }
}

/// Tokens just issued (`Debug` leaves them out: they are bearer credentials).
#[derive(Clone)]
pub struct Issued {
    /// The access token (JWT).
    pub access_token: String,
    /// Its lifetime, seconds (the documents' `expires_in`).
    pub expires_in: u64,
    /// The new refresh token, for APIs with rotating refresh tokens.
    pub refresh_token: Option<String>,
    /// The session.
    pub principal: Principal,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("expires_in", &self.expires_in).field("principal", &self.principal).finish_non_exhaustive()
    }
}

/// Why a token was not accepted. Each API words these in its own envelope.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Not a token of this API (bad signature, other audience, malformed), or its session is
    /// gone or revoked.
    #[error("token invalid")]
    Invalid,
    /// A valid token past its lifetime.
    #[error("token expired")]
    Expired,
    /// A renewal came too late (refresh token expired, or the expired access token is past
    /// its grace window).
    #[error("refresh window over")]
    RefreshExpired,
    /// A rotated refresh token was presented again: its session is now revoked.
    #[error("refresh token reused")]
    Reused,
    /// This renewal was already made (by another request with the same token).
    #[error("already renewed")]
    AlreadyRenewed,
    /// The session could not be checked (storage down): not the client's fault.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One API's sessions.
pub struct Sessions {
    api: &'static str,
    tokens: Tokens,
    policy: TokenConfig,
    db: Db,
    clock: Clock,
    /// The session checks in flight: those that arrive while one read of sessions is out go
    /// together in the next ([`ReadsById`]; every check still reads the database, after its
    /// request arrived).
    checks: ReadsById<Session>,
}

/// Sessions read in one statement at most (a power of two).
const CHECKS_PER_READ: usize = 64;

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("api", &self.api).field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Sessions {
    /// API `api`'s sessions under `policy`, its tokens signed with a key derived from `master`.
    pub fn new(api: &'static str, master: &[u8], policy: TokenConfig, db: Db, clock: Clock) -> anyhow::Result<Arc<Sessions>> {
        let tokens = Tokens::new(master, api, policy.access_ttl())?;
        let sessions = db.clone();
        let read = move |ids: Vec<String>| {
            let sessions = sessions.clone();
            async move { sessions.sessions().get_many(api, &ids).await }
        };
        let checks = ReadsById::new("session check", CHECKS_PER_READ, read, |session: &Session| session.id.as_str());
        Ok(Arc::new(Sessions { api, tokens, policy, db, clock, checks }))
    }

    /// The token policy.
    pub fn policy(&self) -> &TokenConfig {
        &self.policy
    }

    fn issue(&self, principal: Principal, generation: i32, refresh_token: Option<String>, now_ms: i64) -> Issued {
        Issued {
            access_token: self.tokens.issue(&principal.user_id, &principal.session_id, generation, now_ms / 1000),
            expires_in: self.tokens.access_ttl().as_secs(),
            refresh_token,
            principal,
        }
    }

    /// When a session renewed (or started) at `now_ms` is over unless renewed again: its refresh
    /// token's expiry (rotating), its access token's expiry plus the grace window (expired
    /// access), or its access token's expiry (no refresh).
    fn session_end(&self, now_ms: i64) -> i64 {
        let access = now_ms + self.policy.access_ttl().as_millis() as i64;
        let window = self.policy.refresh_window().as_millis() as i64;
        match self.policy.refresh {
            RefreshStyle::Rotating => now_ms + window,
            RefreshStyle::ExpiredAccess => access + window,
            RefreshStyle::None => access,
        }
    }

    /// Start a session for `user_id` (a login): an access token, and a refresh token when the
    /// API's refresh style is rotating.
    pub async fn start(&self, user_id: &str) -> Result<Issued, StorageError> {
        self.begin(user_id, None).await
    }

    /// Start a session for `user_id` logged in by WeChat as `openid` (code2Session's, never the
    /// client's), as [`Sessions::start`] does; every [`Principal`] of the session carries the
    /// openid, so an API paying with this login (points' JSAPI payer) reads no WeChat identity
    /// for it.
    pub async fn start_wechat(&self, user_id: &str, openid: &str) -> Result<Issued, StorageError> {
        self.begin(user_id, Some(openid)).await
    }

    async fn begin(&self, user_id: &str, openid: Option<&str>) -> Result<Issued, StorageError> {
        let now = self.clock.now_ms();
        let session_id = crate::random::hex(24);
        let refresh_token = (self.policy.refresh == RefreshStyle::Rotating).then(crate::random::opaque_token);
        let refresh_hash = refresh_token.as_deref().map(token_hash);
        self.db
            .sessions()
            .insert(NewSession {
                id: &session_id,
                api: self.api,
                user_id,
                refresh_hash: refresh_hash.as_deref(),
                expires_at: self.session_end(now),
                openid,
                now,
            })
            .await?;
        let principal = Principal { user_id: user_id.to_owned(), session_id, openid: openid.map(str::to_owned) };
        Ok(self.issue(principal, 0, refresh_token, now))
    }

    /// The caller behind an access token: valid signature and audience, unexpired (against our
    /// clock), session live, and — where the token is its own renewal (points, community) — not
    /// exchanged for a newer one yet: a token presented for renewal before it expired is spent,
    /// not left working for the rest of its hour beside its successor.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, SessionError> {
        let claims = self.tokens.verify(token).map_err(|_| SessionError::Invalid)?;
        if claims.exp * 1000 <= self.clock.now_ms() {
            return Err(SessionError::Expired);
        }
        let exchanged = |session: &Session| self.policy.refresh == RefreshStyle::ExpiredAccess && claims.generation < session.generation;
        match self.checks.read(claims.sid.clone()).await? {
            Some(session) if session.user_id == claims.sub && session.revoked_at.is_none() && !exchanged(&session) => {
                Ok(Principal { user_id: claims.sub, session_id: claims.sid, openid: session.openid })
            }
            _ => Err(SessionError::Invalid),
        }
    }

    /// Renew with a rotating refresh token (heating 000 §2.3): the old token dies; presenting it
    /// again revokes the whole session.
    pub async fn refresh_rotating(&self, refresh_token: &str) -> Result<Issued, SessionError> {
        if self.policy.refresh != RefreshStyle::Rotating {
            return Err(SessionError::Invalid);
        }
        let now = self.clock.now_ms();
        let new_token = crate::random::opaque_token();
        let rotation = self
            .db
            .sessions()
            .rotate(self.api, &token_hash(refresh_token), &token_hash(&new_token), self.session_end(now), now)
            .await?;
        match rotation {
            Rotation::Rotated(session) => {
                let generation = session.generation;
                Ok(self.issue(Principal::of(session), generation, Some(new_token), now))
            }
            Rotation::Reused => {
                tracing::warn!(api = self.api, "a rotated refresh token was presented again; its session is revoked");
                Err(SessionError::Reused)
            }
            Rotation::Invalid => Err(SessionError::Invalid),
        }
    }

    /// Renew with the access token itself, expired or not, within the grace window after its
    /// expiry, once (points 001 "请求头: 需要携带过期token", community 002): of two requests
    /// presenting the same token exactly one gets a new one.
    pub async fn refresh_expired(&self, access_token: &str) -> Result<Issued, SessionError> {
        if self.policy.refresh != RefreshStyle::ExpiredAccess {
            return Err(SessionError::Invalid);
        }
        let claims = self.tokens.verify(access_token).map_err(|_| SessionError::Invalid)?;
        let now = self.clock.now_ms();
        if claims.exp * 1000 + self.policy.refresh_window().as_millis() as i64 <= now {
            return Err(SessionError::RefreshExpired);
        }
        let sessions = self.db.sessions();
        let session = match sessions.get(self.api, &claims.sid).await? {
            Some(session) if session.user_id == claims.sub && session.revoked_at.is_none() => session,
            _ => return Err(SessionError::Invalid),
        };
        if !sessions.advance(&claims.sid, claims.generation, self.session_end(now)).await? {
            return Err(SessionError::AlreadyRenewed);
        }
        Ok(self.issue(Principal::of(session), claims.generation + 1, None, now))
    }

    /// End `who`'s session (its access and refresh tokens stop working).
    pub async fn revoke(&self, who: &Principal) -> Result<(), StorageError> {
        self.db.sessions().revoke(&who.session_id, self.clock.now_ms()).await
    }

    /// End every other session of `who`'s user (a password change); this one stays.
    pub async fn revoke_others(&self, who: &Principal) -> Result<u64, StorageError> {
        self.db.sessions().revoke_others(self.api, &who.user_id, Some(&who.session_id), self.clock.now_ms()).await
    }
}

/// Lower-hex SHA-256 of a high-entropy token (refresh tokens are stored only as this; a keyed
/// digest would add nothing for 256 random bits).
pub fn token_hash(token: &str) -> String {
    use aws_lc_rs::digest::{SHA256, digest};
    hex::encode(digest(&SHA256, token.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_hashes_are_sha256_hex() {
        assert_eq!(super::token_hash("a"), "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
    }
}
