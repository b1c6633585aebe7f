//! The points API's own storage (001), one store per aggregate: [`PointsUsers`] (users, their
//! balance and its expiry), [`PointsLedger`] (metered debits and the consumption history),
//! [`PointsKeys`] (API keys), [`PointsOrders`] (which package a payment order buys, the purchase
//! history, settling), [`PointsReference`] (packages, system status, notices, seeding).
//! Sessions, WeChat identities and payment orders are in the shared identity and payment stores.
//!
//! Every "only if still …" change is a conditional `UPDATE` whose affected-row count decides: a
//! debit only while the balance covers it, an expiry only once, a key change only for its owner.

pub mod entity;
mod keys;
mod ledger;
mod orders;
pub mod reference;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set,
    TransactionTrait,
};

pub use entity::{ConsumptionKind, KeyStatus};
pub use keys::{ApiKey, NewApiKey, PointsKeys};
pub use ledger::{Consumption, Debit, Debited, PointsLedger};
pub use orders::{Created, NewOrder, PointsOrder, PointsOrders, Settler, year_end};
pub use reference::{Notice, Package, PointsReference, SystemStatus};

use entity::{consumption, user};

use super::{Db, StorageError, affected, write};

/// A points user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user id (`userId`).
    pub id: String,
    /// Nickname.
    pub nick_name: String,
    /// Avatar URL.
    pub avatar_url: String,
    /// The phone bound through getPhoneNumber data, if any.
    pub phone: Option<String>,
    /// Points held.
    pub balance: i64,
    /// When they expire (ms): after this moment the balance is gone.
    pub points_expire_at: Option<i64>,
    /// Created, ms.
    pub created_at: i64,
}

impl From<user::Model> for User {
    fn from(row: user::Model) -> User {
        User {
            id: row.id,
            nick_name: row.nick_name,
            avatar_url: row.avatar_url,
            phone: row.phone,
            balance: row.balance,
            points_expire_at: row.points_expire_at,
            created_at: row.created_at,
        }
    }
}

/// A profile change from WeChat data: only the fields given are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    /// New nickname.
    pub nick_name: Option<String>,
    /// New avatar URL.
    pub avatar_url: Option<String>,
    /// New phone.
    pub phone: Option<String>,
}

/// The title of the consumption record an expiry writes (001 §2.5).
pub const EXPIRY_TITLE: &str = "积分过期";

impl Db {
    /// Points users.
    pub fn points_users(&self) -> PointsUsers<'_, sea_orm::DatabaseConnection> {
        PointsUsers(self.conn())
    }

    /// Metered debits and consumption records.
    pub fn points_ledger(&self) -> PointsLedger<'_, sea_orm::DatabaseConnection> {
        PointsLedger(self.conn())
    }

    /// API keys.
    pub fn points_keys(&self) -> PointsKeys<'_, sea_orm::DatabaseConnection> {
        PointsKeys(self.conn())
    }

    /// Orders of packages.
    pub fn points_orders(&self) -> PointsOrders<'_, sea_orm::DatabaseConnection> {
        PointsOrders(self.conn())
    }

    /// Packages, status, notices, seed.
    pub fn points_reference(&self) -> PointsReference<'_, sea_orm::DatabaseConnection> {
        PointsReference(self.conn())
    }
}

/// `points_user`.
#[derive(Debug, Clone, Copy)]
pub struct PointsUsers<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> PointsUsers<'_, C> {
    /// operationId `auth_wechat_login`: the user's row, inserted unless it exists (every login
    /// makes sure of it: a first login whose insert failed must not leave the user without a
    /// row); true when this call inserted it.
    pub async fn ensure(
        &self,
        id: &str,
        nick_name: &str,
        avatar_url: &str,
        now: i64,
    ) -> Result<bool, StorageError> {
        let inserted = user::Entity::insert(user::ActiveModel {
            id: Set(id.to_owned()),
            nick_name: Set(nick_name.to_owned()),
            avatar_url: Set(avatar_url.to_owned()),
            phone: Set(None),
            balance: Set(0),
            points_expire_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(OnConflict::column(user::Column::Id).do_nothing().to_owned())
        .exec_without_returning(self.0)
        .await?;
        Ok(inserted > 0)
    }

    /// User `id`.
    pub async fn get(&self, id: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find_by_id(id.to_owned())
            .one(self.0)
            .await?
            .map(User::from))
    }

    /// User `id` as of `now`: when their points' year is over, expired first (see
    /// [`expire_in`]) — a write only then, so reads stay reads.
    pub async fn current(&self, id: &str, now: i64) -> Result<Option<User>, StorageError> {
        match self.get(id).await? {
            Some(user) if user.points_expire_at.is_some_and(|at| at < now) => {
                self.expire(id, now).await?;
                self.get(id).await
            }
            other => Ok(other),
        }
    }

    /// Write the fields `change` gives.
    pub async fn set_profile(
        &self,
        id: &str,
        change: &ProfileChange,
        now: i64,
    ) -> Result<(), StorageError> {
        let mut update =
            user::Entity::update_many().col_expr(user::Column::UpdatedAt, Expr::value(now));
        if let Some(nick_name) = &change.nick_name {
            update = update.col_expr(user::Column::NickName, Expr::value(nick_name.clone()));
        }
        if let Some(avatar_url) = &change.avatar_url {
            update = update.col_expr(user::Column::AvatarUrl, Expr::value(avatar_url.clone()));
        }
        if let Some(phone) = &change.phone {
            update = update.col_expr(user::Column::Phone, Expr::value(phone.clone()));
        }
        update.filter(user::Column::Id.eq(id)).exec(self.0).await?;
        Ok(())
    }

    /// Expire user `id`'s points if their expiry has passed at `now` (see [`expire_in`]);
    /// answers the points that expired.
    pub async fn expire(&self, id: &str, now: i64) -> Result<i64, StorageError> {
        let tx = write(self.0).await?;
        let expired = expire_in(&tx, id, now).await?;
        tx.commit().await?;
        Ok(expired)
    }

    /// Housekeeping: expire up to `limit` users whose points expired before `now`; answers how
    /// many users' points expired.
    pub async fn expire_due(&self, now: i64, limit: u64) -> Result<u64, StorageError> {
        let due: Vec<String> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::PointsExpireAt.lt(now))
            .limit(limit)
            .into_tuple()
            .all(self.0)
            .await?;
        let mut expired = 0;
        for id in due {
            if self.expire(&id, now).await? > 0 {
                expired += 1;
            }
        }
        Ok(expired)
    }
}

/// Inside `tx`: if user `id`'s points expired before `now`, set the balance to 0 and the expiry
/// to none, and write a consumption record of the expired points dated at the expiry — once: the
/// update is conditional on the expiry and balance read, so of two concurrent expiries one
/// writes. Answers the points that expired (0 when none).
pub(crate) async fn expire_in(
    tx: &DatabaseTransaction,
    id: &str,
    now: i64,
) -> Result<i64, StorageError> {
    let Some(row) = user::Entity::find_by_id(id.to_owned()).one(tx).await? else {
        return Ok(0);
    };
    let Some(expire_at) = row.points_expire_at.filter(|at| *at < now) else {
        return Ok(0);
    };
    let updated = user::Entity::update_many()
        .col_expr(user::Column::Balance, Expr::value(0i64))
        .col_expr(
            user::Column::PointsExpireAt,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::PointsExpireAt.eq(expire_at))
        .filter(user::Column::Balance.eq(row.balance))
        .exec(tx)
        .await?;
    if !affected(updated) || row.balance == 0 {
        return Ok(0);
    }
    let year = chrono::DateTime::from_timestamp_millis(expire_at)
        .map(|t| chrono::Datelike::year(&t))
        .unwrap_or_default();
    consumption::Entity::insert(consumption::ActiveModel {
        id: Set(ledger::record_id(expire_at)),
        user_id: Set(id.to_owned()),
        kind: Set(ConsumptionKind::Expire),
        title: Set(EXPIRY_TITLE.to_owned()),
        description: Set(Some(format!("{year}年度积分到期清零"))),
        points: Set(row.balance),
        consumed_at: Set(expire_at),
        api_key_id: Set(None),
        api_key_name: Set(None),
        idempotency_key: Set(None),
    })
    .exec_without_returning(tx)
    .await?;
    Ok(row.balance)
}
