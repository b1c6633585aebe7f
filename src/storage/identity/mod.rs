//! Identity storage, shared by every API: sessions and their refresh tokens, verification codes
//! and their send throttle, WeChat users and their session keys. Every "only if still …" change
//! is a conditional `UPDATE` whose affected-row count decides, so two requests racing for the
//! same code, token or session cannot both win.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

pub mod entity;

use entity::{code, refresh_used, session, throttle, wechat};

use super::{Db, StorageError, affected, write};

/// A session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id (`sid` in access tokens).
    pub id: String,
    /// The API it belongs to.
    pub api: String,
    /// Its user.
    pub user_id: String,
    /// How many times its access token was renewed (`gen` in access tokens).
    pub generation: i32,
    /// After this (ms) nothing of it can be used.
    pub expires_at: i64,
    /// Revoked at (ms), if revoked.
    pub revoked_at: Option<i64>,
    /// The WeChat openid it was started with, where its API records one
    /// ([`NewSession::openid`]).
    pub openid: Option<String>,
}

impl From<session::Model> for Session {
    fn from(row: session::Model) -> Session {
        Session {
            id: row.id,
            api: row.api,
            user_id: row.user_id,
            generation: row.generation,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            openid: row.openid,
        }
    }
}

/// A new session.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// The session id.
    pub id: &'a str,
    /// The API.
    pub api: &'a str,
    /// The user.
    pub user_id: &'a str,
    /// The first refresh token's hash, for rotating sessions.
    pub refresh_hash: Option<&'a str>,
    /// When the session is over unless renewed (ms).
    pub expires_at: i64,
    /// The openid of the WeChat login starting it, for an API whose payer is that login
    /// (points); `None` elsewhere.
    pub openid: Option<&'a str>,
    /// Now, ms.
    pub now: i64,
}

/// What a refresh-token rotation found.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Rotated: the session (its generation already advanced).
    Rotated(Session),
    /// The token was already rotated away: its session is now revoked.
    Reused,
    /// Unknown, expired, or its session was revoked.
    Invalid,
}

/// How long after a refresh token was rotated presenting it again counts as a duplicate request
/// (refused, session kept) rather than reuse (session revoked), ms.
pub const REUSE_GRACE_MS: i64 = 10_000;

/// Sessions and refresh tokens (`session`, `session_refresh_used`).
#[derive(Debug, Clone, Copy)]
pub struct SessionStore<'c, C>(pub &'c C);

impl Db {
    /// The session store over the pool.
    pub fn sessions(&self) -> SessionStore<'_, sea_orm::DatabaseConnection> {
        SessionStore(self.conn())
    }

    /// The verification-code store over the pool.
    pub fn codes(&self) -> CodeStore<'_, sea_orm::DatabaseConnection> {
        CodeStore(self.conn())
    }

    /// The WeChat identity store over the pool.
    pub fn wechat(&self) -> WechatStore<'_, sea_orm::DatabaseConnection> {
        WechatStore(self.conn())
    }
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> SessionStore<'_, C> {
    /// Start a session.
    pub async fn insert(&self, new: NewSession<'_>) -> Result<(), StorageError> {
        session::Entity::insert(session::ActiveModel {
            id: Set(new.id.to_owned()),
            api: Set(new.api.to_owned()),
            user_id: Set(new.user_id.to_owned()),
            generation: Set(0),
            refresh_hash: Set(new.refresh_hash.map(str::to_owned)),
            expires_at: Set(new.expires_at),
            created_at: Set(new.now),
            revoked_at: Set(None),
            openid: Set(new.openid.map(str::to_owned)),
        })
        .exec_without_returning(self.0)
        .await?;
        Ok(())
    }

    /// Session `id` of API `api`, revoked or not.
    pub async fn get(&self, api: &str, id: &str) -> Result<Option<Session>, StorageError> {
        // The key alone in SQL, the API compared here: see `get_many`.
        Ok(session::Entity::find_by_id(id.to_owned()).one(self.0).await?.filter(|row| row.api == api).map(Session::from))
    }

    /// Sessions `ids` of API `api`, revoked or not, each once, in no order; ids that are not
    /// sessions are left out. One statement (`crate::coalesce` reads many callers' sessions
    /// with it).
    pub async fn get_many(&self, api: &str, ids: &[String]) -> Result<Vec<Session>, StorageError> {
        // Keys alone in SQL, the API compared here: with `api = $n` beside them, PostgreSQL
        // could keep a plan it made for the prepared statement while the table was nearly
        // empty — the `(api, user_id)` index, reading every session of the API per request.
        Ok(session::Entity::find()
            .filter(session::Column::Id.is_in(ids.iter().map(String::as_str)))
            .all(self.0)
            .await?
            .into_iter()
            .filter(|row| row.api == api)
            .map(Session::from)
            .collect())
    }

    /// Advance session `id`'s generation from `generation` (its life now ending at
    /// `expires_at`), only if it is still live and still at `generation`: of two requests
    /// renewing the same access token, exactly one wins.
    pub async fn advance(&self, id: &str, generation: i32, expires_at: i64) -> Result<bool, StorageError> {
        let updated = session::Entity::update_many()
            .col_expr(session::Column::Generation, Expr::value(generation + 1))
            .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::Generation.eq(generation))
            .filter(session::Column::RevokedAt.is_null())
            .exec(self.0)
            .await?;
        Ok(affected(updated))
    }

    /// Revoke session `id` (logout, or reuse of a rotated refresh token).
    pub async fn revoke(&self, id: &str, now: i64) -> Result<(), StorageError> {
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(self.0)
            .await?;
        Ok(())
    }

    /// Revoke every live session of `user_id` in `api` but `keep` (a password change signs the
    /// other devices out); answers how many.
    pub async fn revoke_others(&self, api: &str, user_id: &str, keep: Option<&str>, now: i64) -> Result<u64, StorageError> {
        let mut update = session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::Api.eq(api))
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RevokedAt.is_null());
        if let Some(keep) = keep {
            update = update.filter(session::Column::Id.ne(keep));
        }
        Ok(update.exec(self.0).await?.rows_affected)
    }

    /// Exchange refresh token `old_hash` of API `api` for `new_hash` (expiring at
    /// `new_expires_at`), advancing the session's generation. A token presented a second time
    /// revokes its session (RFC 9700 reuse detection): whoever holds a copy loses it too.
    pub async fn rotate(&self, api: &str, old_hash: &str, new_hash: &str, new_expires_at: i64, now: i64) -> Result<Rotation, StorageError> {
        let tx = write(self.0).await?;
        let current = session::Entity::find()
            .filter(session::Column::RefreshHash.eq(old_hash))
            .filter(session::Column::Api.eq(api))
            .one(&tx)
            .await?;
        let outcome = match current {
            Some(s) if s.revoked_at.is_none() && s.expires_at > now => {
                let updated = session::Entity::update_many()
                    .col_expr(session::Column::RefreshHash, Expr::value(new_hash))
                    .col_expr(session::Column::ExpiresAt, Expr::value(new_expires_at))
                    .col_expr(session::Column::Generation, Expr::col(session::Column::Generation).add(1))
                    .filter(session::Column::Id.eq(&s.id))
                    .filter(session::Column::RefreshHash.eq(old_hash))
                    .filter(session::Column::RevokedAt.is_null())
                    .exec(&tx)
                    .await?;
                if affected(updated) {
                    refresh_used::Entity::insert(refresh_used::ActiveModel {
                        refresh_hash: Set(old_hash.to_owned()),
                        session_id: Set(s.id.clone()),
                        used_at: Set(now),
                    })
                    .exec_without_returning(&tx)
                    .await?;
                    Rotation::Rotated(Session { generation: s.generation + 1, ..Session::from(s) })
                } else {
                    // Another request (on PostgreSQL, in an overlapping transaction) rotated this
                    // very token a moment ago: it won, this one is refused without revoking the
                    // winner's session.
                    Rotation::Invalid
                }
            }
            Some(_) => Rotation::Invalid,
            None => match refresh_used::Entity::find_by_id(old_hash.to_owned()).one(&tx).await? {
                // Rotated moments ago: a client retrying a refresh whose answer it lost, or two
                // refreshes fired together — not a thief; refused without signing the user out.
                Some(used) if now - used.used_at < REUSE_GRACE_MS => Rotation::Invalid,
                Some(used) => {
                    session::Entity::update_many()
                        .col_expr(session::Column::RevokedAt, Expr::value(now))
                        .filter(session::Column::Id.eq(used.session_id))
                        .filter(session::Column::RevokedAt.is_null())
                        .exec(&tx)
                        .await?;
                    Rotation::Reused
                }
                None => Rotation::Invalid,
            },
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Delete the sessions revoked or over before `before` (ms), and with them (foreign key,
    /// cascade) their rotated refresh tokens — kept until then, so reuse of a stolen token is
    /// detected for the whole life of its session. Answers the sessions deleted.
    pub async fn prune(&self, before: i64) -> Result<u64, StorageError> {
        let dead = session::Entity::delete_many()
            .filter(
                sea_orm::Condition::any()
                    .add(session::Column::RevokedAt.lt(before))
                    .add(session::Column::ExpiresAt.lt(before)),
            )
            .exec(self.0)
            .await?;
        Ok(dead.rows_affected)
    }
}

/// A verification code row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    /// Its id (a ticket names it).
    pub id: i64,
    /// The keyed digest of the code.
    pub code_hash: String,
    /// The phone it was sent to.
    pub phone: String,
    /// Sent at, ms (the time its send took the phone's slot).
    pub created_at: i64,
    /// Expires at, ms.
    pub expires_at: i64,
}

/// A code to store.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    /// The API.
    pub api: &'a str,
    /// The phone, or the key the API returned to its client.
    pub subject: &'a str,
    /// The phone it is sent to.
    pub phone: &'a str,
    /// What it is for (the API's own word: `login`, `register`, …).
    pub purpose: &'a str,
    /// Its keyed digest.
    pub code_hash: &'a str,
    /// Now, ms.
    pub now: i64,
    /// Expires at, ms.
    pub expires_at: i64,
}

/// Verification codes and the per-phone send throttle (`verification_code`, `code_throttle`).
#[derive(Debug, Clone, Copy)]
pub struct CodeStore<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> CodeStore<'_, C> {
    /// Take `phone`'s send slot in `api`: true when its last code is at least `interval_ms` old
    /// (or it never had one), and the slot is now `now`. False: too soon.
    pub async fn take_slot(&self, api: &str, phone: &str, now: i64, interval_ms: i64) -> Result<bool, StorageError> {
        let updated = throttle::Entity::update_many()
            .col_expr(throttle::Column::LastSentAt, Expr::value(now))
            .filter(throttle::Column::Api.eq(api))
            .filter(throttle::Column::Phone.eq(phone))
            .filter(throttle::Column::LastSentAt.lte(now - interval_ms))
            .exec(self.0)
            .await?;
        if affected(updated) {
            return Ok(true);
        }
        let inserted = throttle::Entity::insert(throttle::ActiveModel {
            api: Set(api.to_owned()),
            phone: Set(phone.to_owned()),
            last_sent_at: Set(now),
        })
        .on_conflict(OnConflict::columns([throttle::Column::Api, throttle::Column::Phone]).do_nothing().to_owned())
        .exec_without_returning(self.0)
        .await?;
        Ok(inserted > 0)
    }

    /// Free `phone`'s send slot in `api` if the send at `taken_at` (ms) still holds it: its
    /// next code may go at once (the day's count of codes sent is untouched).
    pub async fn free_slot(&self, api: &str, phone: &str, taken_at: i64) -> Result<(), StorageError> {
        throttle::Entity::delete_many()
            .filter(throttle::Column::Api.eq(api))
            .filter(throttle::Column::Phone.eq(phone))
            .filter(throttle::Column::LastSentAt.eq(taken_at))
            .exec(self.0)
            .await?;
        Ok(())
    }

    /// When `phone`'s send slot in `api` was last taken (ms).
    pub async fn slot_taken_at(&self, api: &str, phone: &str) -> Result<Option<i64>, StorageError> {
        Ok(throttle::Entity::find_by_id((api.to_owned(), phone.to_owned())).one(self.0).await?.map(|row| row.last_sent_at))
    }

    /// How many codes `api` sent to `phone` after `since` (ms), and when the oldest of them was
    /// sent: the daily cap's count, and when it frees a slot.
    pub async fn sent_since(&self, api: &str, phone: &str, since: i64) -> Result<(u64, Option<i64>), StorageError> {
        let sent = code::Entity::find()
            .filter(code::Column::Api.eq(api))
            .filter(code::Column::Phone.eq(phone))
            .filter(code::Column::CreatedAt.gt(since));
        let count = sent.clone().count(self.0).await?;
        let oldest = sent.order_by_asc(code::Column::CreatedAt).one(self.0).await?.map(|row| row.created_at);
        Ok((count, oldest))
    }

    /// Undo a send that failed: the slot taken at `taken_at` and the code stored with it go, so
    /// the user may retry at once and an earlier code still works.
    pub async fn withdraw(&self, api: &str, phone: &str, taken_at: i64) -> Result<(), StorageError> {
        let tx = write(self.0).await?;
        code::Entity::delete_many()
            .filter(code::Column::Api.eq(api))
            .filter(code::Column::Phone.eq(phone))
            .filter(code::Column::CreatedAt.eq(taken_at))
            .exec(&tx)
            .await?;
        throttle::Entity::delete_many()
            .filter(throttle::Column::Api.eq(api))
            .filter(throttle::Column::Phone.eq(phone))
            .filter(throttle::Column::LastSentAt.eq(taken_at))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Store a sent code (its keyed digest).
    pub async fn insert(&self, new: NewCode<'_>) -> Result<(), StorageError> {
        code::Entity::insert(code::ActiveModel {
            id: NotSet,
            api: Set(new.api.to_owned()),
            subject: Set(new.subject.to_owned()),
            phone: Set(new.phone.to_owned()),
            purpose: Set(new.purpose.to_owned()),
            code_hash: Set(new.code_hash.to_owned()),
            attempts: Set(0),
            created_at: Set(new.now),
            expires_at: Set(new.expires_at),
            used_at: Set(None),
        })
        .exec_without_returning(self.0)
        .await?;
        Ok(())
    }

    /// The newest code `api` sent for `subject` and `purpose`, if it is still unused (a new code
    /// replaces older ones).
    pub async fn latest(&self, api: &str, subject: &str, purpose: &str) -> Result<Option<StoredCode>, StorageError> {
        Ok(code::Entity::find()
            .filter(code::Column::Api.eq(api))
            .filter(code::Column::Subject.eq(subject))
            .filter(code::Column::Purpose.eq(purpose))
            .order_by_desc(code::Column::Id)
            .one(self.0)
            .await?
            .filter(|row| row.used_at.is_none())
            .map(|row| StoredCode { id: row.id, code_hash: row.code_hash, phone: row.phone, created_at: row.created_at, expires_at: row.expires_at }))
    }

    /// Take one of code `id`'s `max_attempts` checks before comparing it, so parallel guesses
    /// cannot all be compared; false when none is left.
    pub async fn take_attempt(&self, id: i64, max_attempts: i32) -> Result<bool, StorageError> {
        let updated = code::Entity::update_many()
            .col_expr(code::Column::Attempts, Expr::col(code::Column::Attempts).add(1))
            .filter(code::Column::Id.eq(id))
            .filter(code::Column::Attempts.lt(max_attempts))
            .exec(self.0)
            .await?;
        Ok(affected(updated))
    }

    /// Give back the check a right guess took (only wrong guesses count against a code).
    pub async fn return_attempt(&self, id: i64) -> Result<(), StorageError> {
        code::Entity::update_many()
            .col_expr(code::Column::Attempts, Expr::col(code::Column::Attempts).sub(1))
            .filter(code::Column::Id.eq(id))
            .filter(code::Column::Attempts.gt(0))
            .exec(self.0)
            .await?;
        Ok(())
    }

    /// Use code `id` up; false when it was used meanwhile (codes are single-use).
    pub async fn consume(&self, id: i64, now: i64) -> Result<bool, StorageError> {
        let updated = code::Entity::update_many()
            .col_expr(code::Column::UsedAt, Expr::value(now))
            .filter(code::Column::Id.eq(id))
            .filter(code::Column::UsedAt.is_null())
            .exec(self.0)
            .await?;
        Ok(affected(updated))
    }

    /// Delete codes and throttle slots older than `before` (ms); answers the rows deleted.
    pub async fn prune(&self, before: i64) -> Result<u64, StorageError> {
        let codes = code::Entity::delete_many().filter(code::Column::CreatedAt.lt(before)).exec(self.0).await?;
        let slots = throttle::Entity::delete_many().filter(throttle::Column::LastSentAt.lt(before)).exec(self.0).await?;
        Ok(codes.rows_affected + slots.rows_affected)
    }
}

/// A WeChat user of one mini-program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatUser {
    /// The API's user id this openid is.
    pub user_id: String,
    /// The unionid, when WeChat gave one.
    pub unionid: Option<String>,
    /// The sealed session_key.
    pub session_key_cipher: String,
}

/// What [`WechatStore::upsert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    /// The API's user id of this openid: the one allocated now, or the one it already had.
    pub user_id: String,
    /// Whether this call created the user (its first login).
    pub created: bool,
}

/// WeChat users by (appid, openid) and their latest session keys (`wechat_identity`).
#[derive(Debug, Clone, Copy)]
pub struct WechatStore<'c, C>(pub &'c C);

/// A WeChat login to record.
#[derive(Debug, Clone)]
pub struct WechatLogin<'a> {
    /// The mini-program.
    pub appid: &'a str,
    /// The user under it.
    pub openid: &'a str,
    /// The API that owns the appid.
    pub api: &'a str,
    /// The unionid, when WeChat gave one.
    pub unionid: Option<&'a str>,
    /// The new session_key, sealed.
    pub session_key_cipher: &'a str,
    /// The user id to allocate if this openid is new.
    pub new_user_id: &'a str,
    /// Now, ms.
    pub now: i64,
}

impl<C: ConnectionTrait> WechatStore<'_, C> {
    /// Record a login: a new openid gets `new_user_id` (the insert decides, so two concurrent
    /// first logins agree on one user); a known one keeps its user and takes the new session key
    /// (the newest login's key is the one encryptedData is sealed with).
    pub async fn upsert(&self, login: WechatLogin<'_>) -> Result<Upserted, StorageError> {
        let inserted = wechat::Entity::insert(wechat::ActiveModel {
            appid: Set(login.appid.to_owned()),
            openid: Set(login.openid.to_owned()),
            api: Set(login.api.to_owned()),
            user_id: Set(login.new_user_id.to_owned()),
            unionid: Set(login.unionid.map(str::to_owned)),
            session_key_cipher: Set(login.session_key_cipher.to_owned()),
            session_key_at: Set(login.now),
            created_at: Set(login.now),
        })
        .on_conflict(OnConflict::columns([wechat::Column::Appid, wechat::Column::Openid]).do_nothing().to_owned())
        .exec_without_returning(self.0)
        .await?;
        if inserted > 0 {
            return Ok(Upserted { user_id: login.new_user_id.to_owned(), created: true });
        }
        let mut update = wechat::Entity::update_many()
            .col_expr(wechat::Column::SessionKeyCipher, Expr::value(login.session_key_cipher))
            .col_expr(wechat::Column::SessionKeyAt, Expr::value(login.now))
            .filter(wechat::Column::Appid.eq(login.appid))
            .filter(wechat::Column::Openid.eq(login.openid))
            // An older login finishing late must not overwrite a newer key.
            .filter(wechat::Column::SessionKeyAt.lte(login.now));
        if let Some(unionid) = login.unionid {
            update = update.col_expr(wechat::Column::Unionid, Expr::value(unionid));
        }
        update.exec(self.0).await?;
        let row = self.get(login.appid, login.openid).await?.ok_or_else(|| {
            StorageError::Corrupt(format!("wechat identity {}/{} vanished", login.appid, login.openid))
        })?;
        Ok(Upserted { user_id: row.user_id, created: false })
    }

    /// The openid user `user_id` of `api` has under `appid`.
    pub async fn openid_of(&self, appid: &str, api: &str, user_id: &str) -> Result<Option<String>, StorageError> {
        Ok(wechat::Entity::find()
            .filter(wechat::Column::Appid.eq(appid))
            .filter(wechat::Column::Api.eq(api))
            .filter(wechat::Column::UserId.eq(user_id))
            .one(self.0)
            .await?
            .map(|row| row.openid))
    }

    /// The user of (`appid`, `openid`).
    pub async fn get(&self, appid: &str, openid: &str) -> Result<Option<WechatUser>, StorageError> {
        Ok(wechat::Entity::find_by_id((appid.to_owned(), openid.to_owned())).one(self.0).await?.map(|row| WechatUser {
            user_id: row.user_id,
            unionid: row.unionid,
            session_key_cipher: row.session_key_cipher,
        }))
    }
}
