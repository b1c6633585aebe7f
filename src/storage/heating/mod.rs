//! The heating API's queries (000). Every multi-row change runs in one transaction; every
//! "only if still …" change is a conditional `UPDATE` whose affected-row count decides, so two
//! requests racing for the same code, token, account or bill cannot both win.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Set, TransactionTrait,
};

pub mod entity;

use entity::{account, agreement, bill, config, notification, order, order_bill, refresh_used, season, session, sms_code, sms_throttle, user};

use super::{Db, StorageError};

/// A user row.
pub type User = user::Model;
/// A verification code row.
pub type SmsCode = sms_code::Model;
/// A heat account row.
pub type Account = account::Model;
/// A heating season row.
pub type Season = season::Model;
/// A bill row.
pub type Bill = bill::Model;
/// An order row.
pub type Order = order::Model;
/// An order's bill line.
pub type OrderBill = order_bill::Model;
/// An agreement row.
pub type Agreement = agreement::Model;

/// Bill states as stored.
pub mod bill_status {
    /// Not paid yet.
    pub const UNPAID: &str = "unpaid";
    /// Paid by an order.
    pub const PAID: &str = "paid";
}

/// Order states as stored (and on the wire, 000 §5.3).
pub mod order_status {
    /// Waiting for payment.
    pub const PENDING: &str = "pending";
    /// Paid (a verified notify said so).
    pub const PAID: &str = "paid";
    /// Payment failed, or placing the order with WeChat Pay failed.
    pub const FAILED: &str = "failed";
    /// Expired unpaid, or replaced.
    pub const CANCELED: &str = "canceled";
}

/// What a refresh-token rotation found.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Rotated: the session and user it belongs to.
    Rotated {
        /// The session (`sid`).
        session_id: String,
        /// Its user.
        user_id: String,
    },
    /// The token was already rotated away: its session is now revoked.
    Reused,
    /// Unknown, expired, or its session was revoked.
    Invalid,
}

/// What settling a payment notify did.
#[derive(Debug, PartialEq, Eq)]
pub enum Settlement {
    /// The order is now paid and its bills with it.
    Paid,
    /// The order is now failed and its bills released.
    Failed,
    /// Nothing to change: this notify (or one with the same outcome) was handled before.
    Duplicate,
    /// No such order.
    UnknownOrder,
    /// The notify's amount is not the order's; nothing changed.
    AmountMismatch,
    /// A bill of this order was paid or taken by another order meanwhile; nothing changed.
    BillsTaken,
}

/// Profile fields to write; `None` leaves a field alone. `id_card` is `(ciphertext, masked)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    /// 昵称.
    pub nickname: Option<String>,
    /// 真实姓名.
    pub real_name: Option<String>,
    /// 身份证号: AES-256-GCM ciphertext (base64) and its masked form.
    pub id_card: Option<(String, String)>,
    /// 地址.
    pub address: Option<String>,
}

/// A new order and the bills it pays.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// `O` + ms + random digits; also the WeChat Pay out_trade_no.
    pub order_id: String,
    /// Who orders.
    pub user_id: String,
    /// The account whose bills are paid.
    pub heat_account: String,
    /// Total in fen (bills plus late fees).
    pub amount_fen: i64,
    /// Creation time, ms.
    pub created_at: i64,
    /// After this (ms) the order can no longer be paid and its bills are free again.
    pub expires_at: i64,
    /// `(bill_id, amount_fen, late_fee_fen)` of every bill paid.
    pub bills: Vec<(String, i64, i64)>,
}

/// What a verified payment notify says (000 §5.5), as settling needs it.
#[derive(Debug, Clone, Copy)]
pub struct Notified<'a> {
    /// The notification id (dedupes redeliveries).
    pub notify_id: &'a str,
    /// `TRANSACTION.SUCCESS`, …
    pub event_type: &'a str,
    /// Our order id.
    pub out_trade_no: &'a str,
    /// `SUCCESS`, `PAYERROR`, …
    pub trade_state: &'a str,
    /// WeChat Pay's transaction id.
    pub transaction_id: &'a str,
    /// The amount paid, in fen.
    pub amount_fen: i64,
    /// When the payer paid (the notify's `success_time`), ms.
    pub paid_at: i64,
}

/// A payment record of the history (000 §5.4): one per bill of an order.
#[derive(Debug, Clone)]
pub struct Record {
    /// The order.
    pub order: Order,
    /// The bill line.
    pub line: OrderBill,
    /// The bill's season.
    pub heating_season: String,
}

/// One row of the history query.
#[derive(Debug, FromQueryResult)]
struct RecordRow {
    order_id: String,
    bill_id: String,
    amount_fen: i64,
    late_fee_fen: i64,
    heating_season: String,
}

/// Everything a first start writes (see `heating::seed`).
#[derive(Debug, Clone, Default)]
pub struct SeedData {
    /// Heat accounts.
    pub accounts: Vec<Account>,
    /// Seasons.
    pub seasons: Vec<Season>,
    /// Bills.
    pub bills: Vec<Bill>,
    /// Orders (the paid history).
    pub orders: Vec<Order>,
    /// Their bill lines.
    pub order_bills: Vec<OrderBill>,
    /// The two agreements.
    pub agreements: Vec<Agreement>,
    /// System configuration `(key, JSON value or None)`.
    pub config: Vec<(String, Option<String>)>,
}

fn affected(result: sea_orm::UpdateResult) -> bool {
    result.rows_affected > 0
}

impl Db {
    // ---- seed -------------------------------------------------------------------------------

    /// Write each part of `data` whose tables are still empty (first start): the accounts with
    /// their bills and orders, the seasons, the agreements, the configuration. Answers whether
    /// any part was written.
    pub async fn heating_seed(&self, data: SeedData) -> Result<bool, StorageError> {
        let tx = self.conn().begin().await?;
        let mut wrote = false;
        if !data.accounts.is_empty() && account::Entity::find().count(&tx).await? == 0 {
            for row in data.accounts {
                account::Entity::insert(account::ActiveModel::from(row)).exec_without_returning(&tx).await?;
            }
            for row in data.bills {
                bill::Entity::insert(bill::ActiveModel::from(row)).exec_without_returning(&tx).await?;
            }
            for row in data.orders {
                order::Entity::insert(order::ActiveModel::from(row)).exec_without_returning(&tx).await?;
            }
            for row in data.order_bills {
                order_bill::Entity::insert(order_bill::ActiveModel::from(row)).exec_without_returning(&tx).await?;
            }
            wrote = true;
        }
        if season::Entity::find().count(&tx).await? == 0 {
            for row in data.seasons {
                season::Entity::insert(season::ActiveModel::from(row)).exec_without_returning(&tx).await?;
                wrote = true;
            }
        }
        if agreement::Entity::find().count(&tx).await? == 0 {
            for row in data.agreements {
                agreement::Entity::insert(agreement::ActiveModel::from(row)).exec_without_returning(&tx).await?;
                wrote = true;
            }
        }
        if config::Entity::find().count(&tx).await? == 0 {
            for (key, value) in data.config {
                config::Entity::insert(config::ActiveModel { key: Set(key), value: Set(value) })
                    .exec_without_returning(&tx)
                    .await?;
                wrote = true;
            }
        }
        tx.commit().await?;
        Ok(wrote)
    }

    // ---- SMS codes --------------------------------------------------------------------------

    /// Take the phone's send slot: true when its last code is at least `interval_ms` old (or it
    /// never had one), and the slot is now `now`. False means "too soon" (000 §7: 1 per minute).
    pub async fn heating_sms_take_slot(&self, phone: &str, now: i64, interval_ms: i64) -> Result<bool, StorageError> {
        let updated = sms_throttle::Entity::update_many()
            .col_expr(sms_throttle::Column::LastSentAt, Expr::value(now))
            .filter(sms_throttle::Column::Phone.eq(phone))
            .filter(sms_throttle::Column::LastSentAt.lte(now - interval_ms))
            .exec(self.conn())
            .await?;
        if affected(updated) {
            return Ok(true);
        }
        let inserted = sms_throttle::Entity::insert(sms_throttle::ActiveModel {
            phone: Set(phone.to_owned()),
            last_sent_at: Set(now),
        })
        .on_conflict(OnConflict::column(sms_throttle::Column::Phone).do_nothing().to_owned())
        .exec_without_returning(self.conn())
        .await?;
        Ok(inserted > 0)
    }

    /// When the phone's send slot was last taken (ms).
    pub async fn heating_sms_slot_taken_at(&self, phone: &str) -> Result<Option<i64>, StorageError> {
        Ok(sms_throttle::Entity::find_by_id(phone.to_owned()).one(self.conn()).await?.map(|row| row.last_sent_at))
    }

    /// Undo a send that failed: the slot taken at `taken_at` and the code stored with it go, so
    /// the user may retry at once and an earlier code still works.
    pub async fn heating_sms_withdraw(&self, phone: &str, purpose: &str, taken_at: i64) -> Result<(), StorageError> {
        let tx = self.conn().begin().await?;
        sms_code::Entity::delete_many()
            .filter(sms_code::Column::Phone.eq(phone))
            .filter(sms_code::Column::Purpose.eq(purpose))
            .filter(sms_code::Column::CreatedAt.eq(taken_at))
            .exec(&tx)
            .await?;
        sms_throttle::Entity::delete_many()
            .filter(sms_throttle::Column::Phone.eq(phone))
            .filter(sms_throttle::Column::LastSentAt.eq(taken_at))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Store a sent code (its keyed hash).
    pub async fn heating_sms_insert(
        &self,
        phone: &str,
        purpose: &str,
        code_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        sms_code::Entity::insert(sms_code::ActiveModel {
            id: NotSet,
            phone: Set(phone.to_owned()),
            purpose: Set(purpose.to_owned()),
            code_hash: Set(code_hash.to_owned()),
            attempts: Set(0),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
        })
        .exec_without_returning(self.conn())
        .await?;
        Ok(())
    }

    /// The newest unused code sent to `phone` for `purpose` (a new code replaces older ones).
    pub async fn heating_sms_latest(&self, phone: &str, purpose: &str) -> Result<Option<SmsCode>, StorageError> {
        Ok(sms_code::Entity::find()
            .filter(sms_code::Column::Phone.eq(phone))
            .filter(sms_code::Column::Purpose.eq(purpose))
            .order_by_desc(sms_code::Column::Id)
            .one(self.conn())
            .await?
            .filter(|code| code.used_at.is_none()))
    }

    /// Take one of code `id`'s `max_attempts` checks before comparing it, so parallel guesses
    /// cannot all be compared; false when none is left.
    pub async fn heating_sms_take_attempt(&self, id: i64, max_attempts: i32) -> Result<bool, StorageError> {
        let updated = sms_code::Entity::update_many()
            .col_expr(sms_code::Column::Attempts, Expr::col(sms_code::Column::Attempts).add(1))
            .filter(sms_code::Column::Id.eq(id))
            .filter(sms_code::Column::Attempts.lt(max_attempts))
            .exec(self.conn())
            .await?;
        Ok(affected(updated))
    }

    /// Give back the check a right guess took (only wrong guesses count against a code).
    pub async fn heating_sms_return_attempt(&self, id: i64) -> Result<(), StorageError> {
        sms_code::Entity::update_many()
            .col_expr(sms_code::Column::Attempts, Expr::col(sms_code::Column::Attempts).sub(1))
            .filter(sms_code::Column::Id.eq(id))
            .filter(sms_code::Column::Attempts.gt(0))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    /// Use code `id` up; false when it was used meanwhile (codes are single-use).
    pub async fn heating_sms_consume(&self, id: i64, now: i64) -> Result<bool, StorageError> {
        let updated = sms_code::Entity::update_many()
            .col_expr(sms_code::Column::UsedAt, Expr::value(now))
            .filter(sms_code::Column::Id.eq(id))
            .filter(sms_code::Column::UsedAt.is_null())
            .exec(self.conn())
            .await?;
        Ok(affected(updated))
    }

    // ---- users ------------------------------------------------------------------------------

    /// The user with this phone.
    pub async fn heating_user_by_phone(&self, phone: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find().filter(user::Column::Phone.eq(phone)).one(self.conn()).await?)
    }

    /// The user with this id.
    pub async fn heating_user(&self, id: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find_by_id(id.to_owned()).one(self.conn()).await?)
    }

    /// Insert a user; false when the phone is taken (the unique index decides, not a prior read).
    pub async fn heating_user_insert(&self, row: User) -> Result<bool, StorageError> {
        let inserted = user::Entity::insert(user::ActiveModel::from(row))
            .on_conflict(OnConflict::column(user::Column::Phone).do_nothing().to_owned())
            .exec_without_returning(self.conn())
            .await?;
        Ok(inserted > 0)
    }

    /// Set the profile fields that changed (`None`: leave as is) and `updated_at`; no other
    /// column is written, so a concurrent password change is never undone.
    pub async fn heating_user_set_profile(&self, id: &str, change: &ProfileChange, now: i64) -> Result<(), StorageError> {
        let mut update = user::Entity::update_many().col_expr(user::Column::UpdatedAt, Expr::value(now));
        if let Some(nickname) = &change.nickname {
            update = update.col_expr(user::Column::Nickname, Expr::value(nickname.clone()));
        }
        if let Some(real_name) = &change.real_name {
            update = update.col_expr(user::Column::RealName, Expr::value(real_name.clone()));
        }
        if let Some((cipher, masked)) = &change.id_card {
            update = update
                .col_expr(user::Column::IdCardCipher, Expr::value(cipher.clone()))
                .col_expr(user::Column::IdCardMasked, Expr::value(masked.clone()));
        }
        if let Some(address) = &change.address {
            update = update.col_expr(user::Column::Address, Expr::value(address.clone()));
        }
        update.filter(user::Column::Id.eq(id)).exec(self.conn()).await?;
        Ok(())
    }

    /// Set a user's password hash (and `updated_at`).
    pub async fn heating_user_set_password(&self, id: &str, password_hash: &str, now: i64) -> Result<(), StorageError> {
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    /// Record a login; answers the previous login time (`None`: this is the first login).
    pub async fn heating_user_mark_login(&self, id: &str, now: i64) -> Result<Option<i64>, StorageError> {
        let tx = self.conn().begin().await?;
        let previous = user::Entity::find_by_id(id.to_owned()).one(&tx).await?.and_then(|u| u.last_login_at);
        user::Entity::update_many()
            .col_expr(user::Column::LastLoginAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(previous)
    }

    // ---- sessions ---------------------------------------------------------------------------

    /// Start a session with its first refresh token (hash).
    pub async fn heating_session_insert(
        &self,
        id: &str,
        user_id: &str,
        refresh_hash: &str,
        refresh_expires_at: i64,
        now: i64,
    ) -> Result<(), StorageError> {
        session::Entity::insert(session::ActiveModel {
            id: Set(id.to_owned()),
            user_id: Set(user_id.to_owned()),
            refresh_hash: Set(refresh_hash.to_owned()),
            refresh_expires_at: Set(refresh_expires_at),
            created_at: Set(now),
            revoked_at: Set(None),
        })
        .exec_without_returning(self.conn())
        .await?;
        Ok(())
    }

    /// Whether session `id` of `user_id` is live (not revoked).
    pub async fn heating_session_live(&self, id: &str, user_id: &str) -> Result<bool, StorageError> {
        Ok(session::Entity::find_by_id(id.to_owned())
            .one(self.conn())
            .await?
            .is_some_and(|s| s.user_id == user_id && s.revoked_at.is_none()))
    }

    /// Revoke session `id` (logout, or reuse of a rotated refresh token).
    pub async fn heating_session_revoke(&self, id: &str, now: i64) -> Result<(), StorageError> {
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(self.conn())
            .await?;
        Ok(())
    }

    /// Revoke every live session of `user_id` but `keep` (a password change signs other devices out).
    pub async fn heating_sessions_revoke_others(&self, user_id: &str, keep: &str, now: i64) -> Result<u64, StorageError> {
        Ok(session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::Id.ne(keep))
            .filter(session::Column::RevokedAt.is_null())
            .exec(self.conn())
            .await?
            .rows_affected)
    }

    /// Exchange refresh token `old_hash` for `new_hash`. A token presented a second time revokes
    /// its session (RFC 9700 reuse detection): whoever holds a copy loses it too.
    pub async fn heating_session_rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: i64,
        now: i64,
    ) -> Result<Rotation, StorageError> {
        let tx = self.conn().begin().await?;
        let current = session::Entity::find().filter(session::Column::RefreshHash.eq(old_hash)).one(&tx).await?;
        let outcome = match current {
            Some(s) if s.revoked_at.is_none() && s.refresh_expires_at > now => {
                let updated = session::Entity::update_many()
                    .col_expr(session::Column::RefreshHash, Expr::value(new_hash))
                    .col_expr(session::Column::RefreshExpiresAt, Expr::value(new_expires_at))
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
                    Rotation::Rotated { session_id: s.id, user_id: s.user_id }
                } else {
                    Rotation::Invalid
                }
            }
            Some(_) => Rotation::Invalid,
            None => match refresh_used::Entity::find_by_id(old_hash.to_owned()).one(&tx).await? {
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

    // ---- accounts, seasons, bills -----------------------------------------------------------

    /// The heat account with this number.
    pub async fn heating_account(&self, heat_account: &str) -> Result<Option<Account>, StorageError> {
        Ok(account::Entity::find_by_id(heat_account.to_owned()).one(self.conn()).await?)
    }

    /// The heat account bound to `user_id`.
    pub async fn heating_account_of(&self, user_id: &str) -> Result<Option<Account>, StorageError> {
        Ok(account::Entity::find().filter(account::Column::BoundUserId.eq(user_id)).one(self.conn()).await?)
    }

    /// Bind `heat_account` to `user_id`, only if nobody holds it and the user holds no other
    /// account, and in the same transaction fill the user's profile fields that are still empty
    /// from `fill`. False (nothing written): already bound.
    pub async fn heating_account_bind(
        &self,
        heat_account: &str,
        user_id: &str,
        fill: &ProfileChange,
        now: i64,
    ) -> Result<bool, StorageError> {
        let tx = self.conn().begin().await?;
        let updated = account::Entity::update_many()
            .col_expr(account::Column::BoundUserId, Expr::value(user_id))
            .col_expr(account::Column::BoundAt, Expr::value(now))
            .filter(account::Column::HeatAccount.eq(heat_account))
            .filter(account::Column::BoundUserId.is_null())
            .exec(&tx)
            .await;
        // The unique index on bound_user_id refuses a second account for the same user.
        let updated = match updated {
            Ok(result) => affected(result),
            Err(error) if is_unique_violation(&error) => false,
            Err(error) => return Err(error.into()),
        };
        if !updated {
            tx.rollback().await?;
            return Ok(false);
        }
        let only_if_empty = |column: user::Column, value: String| {
            user::Entity::update_many()
                .col_expr(column, Expr::value(value))
                .col_expr(user::Column::UpdatedAt, Expr::value(now))
                .filter(user::Column::Id.eq(user_id))
                .filter(column.is_null())
        };
        if let Some(real_name) = &fill.real_name {
            only_if_empty(user::Column::RealName, real_name.clone()).exec(&tx).await?;
        }
        if let Some((cipher, masked)) = &fill.id_card {
            user::Entity::update_many()
                .col_expr(user::Column::IdCardCipher, Expr::value(cipher.clone()))
                .col_expr(user::Column::IdCardMasked, Expr::value(masked.clone()))
                .col_expr(user::Column::UpdatedAt, Expr::value(now))
                .filter(user::Column::Id.eq(user_id))
                .filter(user::Column::IdCardCipher.is_null())
                .exec(&tx)
                .await?;
        }
        if let Some(address) = &fill.address {
            only_if_empty(user::Column::Address, address.clone()).exec(&tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Every season, oldest first.
    pub async fn heating_seasons(&self) -> Result<Vec<Season>, StorageError> {
        Ok(season::Entity::find().order_by_asc(season::Column::Season).all(self.conn()).await?)
    }

    /// Every bill of an account, oldest season first.
    pub async fn heating_bills(&self, heat_account: &str) -> Result<Vec<Bill>, StorageError> {
        Ok(bill::Entity::find()
            .filter(bill::Column::HeatAccount.eq(heat_account))
            .order_by_asc(bill::Column::HeatingSeason)
            .order_by_asc(bill::Column::BillId)
            .all(self.conn())
            .await?)
    }

    // ---- orders -----------------------------------------------------------------------------

    /// Create an order holding its bills until `expires_at`: only unpaid bills of the account
    /// that no live order holds. False (nothing written): a bill is paid or held.
    pub async fn heating_order_create(&self, new: NewOrder) -> Result<bool, StorageError> {
        let tx = self.conn().begin().await?;
        let ids: Vec<String> = new.bills.iter().map(|(id, _, _)| id.clone()).collect();
        // The claim is the first write, so concurrent claims queue on the row locks (PostgreSQL)
        // or the database lock (SQLite) and the loser sees the winner's hold.
        let claimed = bill::Entity::update_many()
            .col_expr(bill::Column::OrderId, Expr::value(new.order_id.clone()))
            .col_expr(bill::Column::HoldUntil, Expr::value(new.expires_at))
            .filter(bill::Column::BillId.is_in(ids.clone()))
            .filter(bill::Column::HeatAccount.eq(&new.heat_account))
            .filter(bill::Column::Status.eq(bill_status::UNPAID))
            .filter(Condition::any().add(bill::Column::OrderId.is_null()).add(bill::Column::HoldUntil.lt(new.created_at)))
            .exec(&tx)
            .await?;
        if claimed.rows_affected != ids.len() as u64 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Orders whose holds lapsed are over.
        order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(order_status::CANCELED))
            .filter(order::Column::HeatAccount.eq(&new.heat_account))
            .filter(order::Column::Status.eq(order_status::PENDING))
            .filter(order::Column::ExpiresAt.lt(new.created_at))
            .exec(&tx)
            .await?;
        order::Entity::insert(order::ActiveModel {
            order_id: Set(new.order_id.clone()),
            user_id: Set(Some(new.user_id.clone())),
            heat_account: Set(new.heat_account.clone()),
            amount_fen: Set(new.amount_fen),
            status: Set(order_status::PENDING.to_owned()),
            prepay_id: Set(None),
            transaction_id: Set(None),
            created_at: Set(new.created_at),
            expires_at: Set(new.expires_at),
            paid_at: Set(None),
        })
        .exec_without_returning(&tx)
        .await?;
        for (bill_id, amount_fen, late_fee_fen) in new.bills {
            order_bill::Entity::insert(order_bill::ActiveModel {
                order_id: Set(new.order_id.clone()),
                bill_id: Set(bill_id),
                amount_fen: Set(amount_fen),
                late_fee_fen: Set(late_fee_fen),
            })
            .exec_without_returning(&tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Record the prepay_id WeChat Pay gave the order.
    pub async fn heating_order_set_prepay(&self, order_id: &str, prepay_id: &str) -> Result<(), StorageError> {
        order::Entity::update_many()
            .col_expr(order::Column::PrepayId, Expr::value(prepay_id))
            .filter(order::Column::OrderId.eq(order_id))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    /// Fail a pending order and free its bills (placing it with WeChat Pay failed).
    pub async fn heating_order_fail(&self, order_id: &str) -> Result<(), StorageError> {
        let tx = self.conn().begin().await?;
        fail_pending(&tx, order_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The order with this id.
    pub async fn heating_order(&self, order_id: &str) -> Result<Option<Order>, StorageError> {
        Ok(order::Entity::find_by_id(order_id.to_owned()).one(self.conn()).await?)
    }

    /// The bill lines of an order.
    pub async fn heating_order_bills(&self, order_id: &str) -> Result<Vec<OrderBill>, StorageError> {
        Ok(order_bill::Entity::find()
            .filter(order_bill::Column::OrderId.eq(order_id))
            .order_by_asc(order_bill::Column::BillId)
            .all(self.conn())
            .await?)
    }

    /// Every order of an account, newest first.
    pub async fn heating_orders(&self, heat_account: &str) -> Result<Vec<Order>, StorageError> {
        Ok(order::Entity::find()
            .filter(order::Column::HeatAccount.eq(heat_account))
            .order_by_desc(order::Column::CreatedAt)
            .order_by_desc(order::Column::OrderId)
            .all(self.conn())
            .await?)
    }

    /// The payment records (one per bill line) of an account's orders created in
    /// `[from, to)` ms, newest first: the page asked for (`offset`, `limit` records) and the total
    /// count, both computed by the database.
    pub async fn heating_records(
        &self,
        heat_account: &str,
        from: Option<i64>,
        to: Option<i64>,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<Record>), StorageError> {
        let mut lines = order_bill::Entity::find()
            .join(JoinType::InnerJoin, order_bill::Relation::Order.def())
            .join(JoinType::InnerJoin, order_bill::Relation::Bill.def())
            .filter(order::Column::HeatAccount.eq(heat_account));
        if let Some(from) = from {
            lines = lines.filter(order::Column::CreatedAt.gte(from));
        }
        if let Some(to) = to {
            lines = lines.filter(order::Column::CreatedAt.lt(to));
        }
        let total = lines.clone().count(self.conn()).await?;
        let rows = lines
            .select_only()
            .column(order_bill::Column::OrderId)
            .column(order_bill::Column::BillId)
            .column(order_bill::Column::AmountFen)
            .column(order_bill::Column::LateFeeFen)
            .column(bill::Column::HeatingSeason)
            .order_by_desc(order::Column::CreatedAt)
            .order_by_desc(order::Column::OrderId)
            .order_by_asc(order_bill::Column::BillId)
            .offset(offset)
            .limit(limit)
            .into_model::<RecordRow>()
            .all(self.conn())
            .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.order_id.clone()).collect();
        let orders = order::Entity::find().filter(order::Column::OrderId.is_in(ids)).all(self.conn()).await?;
        let records = rows
            .into_iter()
            .map(|row| {
                let order = orders
                    .iter()
                    .find(|o| o.order_id == row.order_id)
                    .cloned()
                    .ok_or_else(|| StorageError::Corrupt(format!("order {} vanished", row.order_id)))?;
                let line = OrderBill {
                    order_id: row.order_id,
                    bill_id: row.bill_id,
                    amount_fen: row.amount_fen,
                    late_fee_fen: row.late_fee_fen,
                };
                Ok(Record { order, line, heating_season: row.heating_season })
            })
            .collect::<Result<_, StorageError>>()?;
        Ok((total, records))
    }

    /// Apply a verified payment notify in one transaction: record it (its id dedupes), then
    /// mark the order and its bills paid — or the order failed and its bills free.
    pub async fn heating_settle(&self, notified: &Notified<'_>, now: i64) -> Result<Settlement, StorageError> {
        let Notified { notify_id, event_type, out_trade_no, trade_state, transaction_id, amount_fen, paid_at } = *notified;
        let tx = self.conn().begin().await?;
        let fresh = notification::Entity::insert(notification::ActiveModel {
            id: Set(notify_id.to_owned()),
            order_id: Set(out_trade_no.to_owned()),
            event_type: Set(event_type.to_owned()),
            trade_state: Set(trade_state.to_owned()),
            outcome: Set("received".to_owned()),
            received_at: Set(now),
        })
        .on_conflict(OnConflict::column(notification::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&tx)
        .await?;
        if fresh == 0 {
            // A redelivery: answer as the first delivery was answered (a refusal stays a refusal).
            let stored = notification::Entity::find_by_id(notify_id.to_owned()).one(&tx).await?;
            tx.rollback().await?;
            return Ok(match stored.map(|n| n.outcome).as_deref() {
                Some("unknown_order") => Settlement::UnknownOrder,
                Some("amount_mismatch") => Settlement::AmountMismatch,
                _ => Settlement::Duplicate,
            });
        }
        let Some(order) = order::Entity::find_by_id(out_trade_no.to_owned()).one(&tx).await? else {
            return finish(tx, notify_id, Settlement::UnknownOrder).await;
        };
        if order.amount_fen != amount_fen {
            return finish(tx, notify_id, Settlement::AmountMismatch).await;
        }
        // The order row is always written first (here and in `fail_pending`), so concurrent
        // notifies of one order queue on it instead of deadlocking on its bills.
        if trade_state != "SUCCESS" {
            let outcome = fail_pending(&tx, out_trade_no).await?;
            return finish(tx, notify_id, outcome).await;
        }
        let paid = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(order_status::PAID))
            .col_expr(order::Column::TransactionId, Expr::value(transaction_id))
            .col_expr(order::Column::PaidAt, Expr::value(paid_at))
            .filter(order::Column::OrderId.eq(out_trade_no))
            .filter(order::Column::Status.ne(order_status::PAID))
            .exec(&tx)
            .await?;
        if !affected(paid) {
            return finish(tx, notify_id, Settlement::Duplicate).await;
        }
        // Pending — or failed/canceled and paid after all: the bills must still be free for it.
        let lines = order_bill::Entity::find().filter(order_bill::Column::OrderId.eq(out_trade_no)).all(&tx).await?;
        for line in &lines {
            let updated = bill::Entity::update_many()
                .col_expr(bill::Column::Status, Expr::value(bill_status::PAID))
                .col_expr(bill::Column::PaidAt, Expr::value(paid_at))
                .col_expr(bill::Column::LateFeePaidFen, Expr::value(line.late_fee_fen))
                .col_expr(bill::Column::OrderId, Expr::value(out_trade_no))
                .col_expr(bill::Column::HoldUntil, Expr::value(Option::<i64>::None))
                .filter(bill::Column::BillId.eq(&line.bill_id))
                .filter(bill::Column::Status.eq(bill_status::UNPAID))
                .filter(
                    Condition::any()
                        .add(bill::Column::OrderId.eq(out_trade_no))
                        .add(bill::Column::OrderId.is_null())
                        .add(bill::Column::HoldUntil.lt(now)),
                )
                .exec(&tx)
                .await?;
            if !affected(updated) {
                tx.rollback().await?;
                return self.heating_record_notification(notify_id, out_trade_no, event_type, trade_state, "bills_taken", now).await;
            }
        }
        finish(tx, notify_id, Settlement::Paid).await
    }

    async fn heating_record_notification(
        &self,
        notify_id: &str,
        order_id: &str,
        event_type: &str,
        trade_state: &str,
        outcome: &str,
        now: i64,
    ) -> Result<Settlement, StorageError> {
        notification::Entity::insert(notification::ActiveModel {
            id: Set(notify_id.to_owned()),
            order_id: Set(order_id.to_owned()),
            event_type: Set(event_type.to_owned()),
            trade_state: Set(trade_state.to_owned()),
            outcome: Set(outcome.to_owned()),
            received_at: Set(now),
        })
        .on_conflict(OnConflict::column(notification::Column::Id).do_nothing().to_owned())
        .exec_without_returning(self.conn())
        .await?;
        Ok(Settlement::BillsTaken)
    }

    // ---- configuration ----------------------------------------------------------------------

    /// The agreements, by kind (`user_agreement`, `privacy_policy`).
    pub async fn heating_agreements(&self) -> Result<Vec<Agreement>, StorageError> {
        Ok(agreement::Entity::find().all(self.conn()).await?)
    }

    /// The system configuration as `(key, JSON value or None)`.
    pub async fn heating_config(&self) -> Result<Vec<(String, Option<String>)>, StorageError> {
        Ok(config::Entity::find().all(self.conn()).await?.into_iter().map(|row| (row.key, row.value)).collect())
    }
}

/// Fail a pending order and release its bills, inside `tx`.
async fn fail_pending<C: ConnectionTrait>(tx: &C, order_id: &str) -> Result<Settlement, StorageError> {
    let updated = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(order_status::FAILED))
        .filter(order::Column::OrderId.eq(order_id))
        .filter(order::Column::Status.eq(order_status::PENDING))
        .exec(tx)
        .await?;
    if !affected(updated) {
        return Ok(Settlement::Duplicate);
    }
    bill::Entity::update_many()
        .col_expr(bill::Column::OrderId, Expr::value(Option::<String>::None))
        .col_expr(bill::Column::HoldUntil, Expr::value(Option::<i64>::None))
        .filter(bill::Column::OrderId.eq(order_id))
        .filter(bill::Column::Status.eq(bill_status::UNPAID))
        .exec(tx)
        .await?;
    Ok(Settlement::Failed)
}

/// Write the notification's outcome and commit.
async fn finish(tx: sea_orm::DatabaseTransaction, notify_id: &str, outcome: Settlement) -> Result<Settlement, StorageError> {
    let label = match outcome {
        Settlement::Paid => "paid",
        Settlement::Failed => "failed",
        Settlement::Duplicate => "duplicate",
        Settlement::UnknownOrder => "unknown_order",
        Settlement::AmountMismatch => "amount_mismatch",
        Settlement::BillsTaken => "bills_taken",
    };
    notification::Entity::update_many()
        .col_expr(notification::Column::Outcome, Expr::value(label))
        .filter(notification::Column::Id.eq(notify_id))
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(outcome)
}

fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(error.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}
