//! Heating users (000 §2, §3): registration, profile, password, logins, the payer openid.

use std::sync::LazyLock;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, Set};

use super::entity::{BillStatus, user};
use crate::storage::{StorageError, affected};

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id (24 hex characters).
    pub id: String,
    /// Mainland mobile number (unique).
    pub phone: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// 昵称.
    pub nickname: String,
    /// Avatar URL ("" when none).
    pub avatar: String,
    /// 真实姓名.
    pub real_name: Option<String>,
    /// 身份证号, AES-256-GCM sealed.
    pub id_card_cipher: Option<String>,
    /// 身份证号, masked (`610102********1231`).
    pub id_card_masked: Option<String>,
    /// 地址.
    pub address: Option<String>,
    /// The openid the user pays with (from a `wx.login` code given at payment).
    pub payer_openid: Option<String>,
    /// Registered, ms.
    pub created_at: i64,
    /// Last changed, ms.
    pub updated_at: i64,
}

impl From<user::Model> for User {
    fn from(row: user::Model) -> User {
        User {
            id: row.id,
            phone: row.phone,
            password_hash: row.password_hash,
            nickname: row.nickname,
            avatar: row.avatar,
            real_name: row.real_name,
            id_card_cipher: row.id_card_cipher,
            id_card_masked: row.id_card_masked,
            address: row.address,
            payer_openid: row.payer_openid,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// What 000 §3.1 shows of a user, read in one statement with the heat account bound to them
/// and what its bills still owe.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Profile {
    /// Id (24 hex characters).
    pub id: String,
    /// Mainland mobile number.
    pub phone: String,
    /// 昵称.
    pub nickname: String,
    /// Avatar URL ("" when none).
    pub avatar: String,
    /// 真实姓名.
    pub real_name: Option<String>,
    /// 身份证号, masked (`610102********1231`).
    pub id_card_masked: Option<String>,
    /// 地址.
    pub address: Option<String>,
    /// Registered, ms.
    pub created_at: i64,
    /// Last changed, ms.
    pub updated_at: i64,
    /// The heat account bound to the user (at most one: a unique index), if any.
    pub heat_account: Option<String>,
    /// What that account's unpaid bills add up to, fen (0 without an account).
    pub owed_fen: i64,
}

/// The account bound to the user of the row (`bound_user_id` is unique, so one at most).
const BOUND_ACCOUNT_SQL: &str = "(SELECT a.heat_account FROM heating_account a WHERE a.bound_user_id = heating_user.id)";

/// What the bound account's unpaid bills add up to (`SUM` is numeric on PostgreSQL: cast back).
/// The status is the entity's own spelling, written into the SQL once.
static OWED_FEN_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "(SELECT CAST(COALESCE(SUM(b.amount_fen), 0) AS BIGINT) FROM heating_bill b \
         JOIN heating_account a ON a.heat_account = b.heat_account \
         WHERE a.bound_user_id = heating_user.id AND b.status = '{}')",
        BillStatus::Unpaid.as_str()
    )
});

/// A user to register.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Id.
    pub id: &'a str,
    /// Phone.
    pub phone: &'a str,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    /// 昵称.
    pub nickname: &'a str,
    /// Now, ms.
    pub now: i64,
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

/// `heating_user`.
#[derive(Debug, Clone, Copy)]
pub struct HeatingUsers<'c, C>(pub &'c C);

impl<C: ConnectionTrait> HeatingUsers<'_, C> {
    /// The user with this phone.
    pub async fn by_phone(&self, phone: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find().filter(user::Column::Phone.eq(phone)).one(self.0).await?.map(User::from))
    }

    /// The user with this id.
    pub async fn get(&self, id: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find_by_id(id.to_owned()).one(self.0).await?.map(User::from))
    }

    /// operationId `user_profile_get` (000 §3.1): the profiles of users `ids` (each once, in no
    /// order; ids that are no user are left out), each with its bound account and what it owes, in
    /// one statement (the profile is the most read operation after a login, and concurrent
    /// reads go together: `HeatingService::profiles`).
    pub async fn profiles(&self, ids: &[String]) -> Result<Vec<Profile>, StorageError> {
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids.iter().map(String::as_str)))
            .select_only()
            .columns([
                user::Column::Id,
                user::Column::Phone,
                user::Column::Nickname,
                user::Column::Avatar,
                user::Column::RealName,
                user::Column::IdCardMasked,
                user::Column::Address,
                user::Column::CreatedAt,
                user::Column::UpdatedAt,
            ])
            .expr_as(Expr::cust(BOUND_ACCOUNT_SQL), "heat_account")
            .expr_as(Expr::cust(OWED_FEN_SQL.as_str()), "owed_fen")
            .into_model::<Profile>()
            .all(self.0)
            .await?)
    }

    /// operationId `auth_register`: register; false when the phone is taken (the unique index decides, not a prior read).
    pub async fn insert(&self, new: NewUser<'_>) -> Result<bool, StorageError> {
        let inserted = user::Entity::insert(user::ActiveModel {
            id: Set(new.id.to_owned()),
            phone: Set(new.phone.to_owned()),
            password_hash: Set(new.password_hash.to_owned()),
            nickname: Set(new.nickname.to_owned()),
            avatar: Set(String::new()),
            real_name: Set(None),
            id_card_cipher: Set(None),
            id_card_masked: Set(None),
            address: Set(None),
            payer_openid: Set(None),
            last_login_at: Set(None),
            created_at: Set(new.now),
            updated_at: Set(new.now),
        })
        .on_conflict(OnConflict::column(user::Column::Phone).do_nothing().to_owned())
        .exec_without_returning(self.0)
        .await?;
        Ok(inserted > 0)
    }

    /// operationId `user_profile_update`: set the profile fields that changed (`None`: leave as is) and `updated_at`; no other
    /// column is written, so a concurrent password change is never undone.
    pub async fn set_profile(&self, id: &str, change: &ProfileChange, now: i64) -> Result<(), StorageError> {
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
        update.filter(user::Column::Id.eq(id)).exec(self.0).await?;
        Ok(())
    }

    /// Fill the profile fields of `change` that are still empty (binding an account), each
    /// written only where it is still null.
    pub async fn fill_profile(&self, id: &str, change: &ProfileChange, now: i64) -> Result<(), StorageError> {
        let only_if_empty = |column: user::Column, value: String| {
            user::Entity::update_many()
                .col_expr(column, Expr::value(value))
                .col_expr(user::Column::UpdatedAt, Expr::value(now))
                .filter(user::Column::Id.eq(id))
                .filter(column.is_null())
        };
        if let Some(real_name) = &change.real_name {
            only_if_empty(user::Column::RealName, real_name.clone()).exec(self.0).await?;
        }
        if let Some((cipher, masked)) = &change.id_card {
            only_if_empty(user::Column::IdCardCipher, cipher.clone())
                .col_expr(user::Column::IdCardMasked, Expr::value(masked.clone()))
                .exec(self.0)
                .await?;
        }
        if let Some(address) = &change.address {
            only_if_empty(user::Column::Address, address.clone()).exec(self.0).await?;
        }
        Ok(())
    }

    /// operationId `user_password_update`: set a user's password hash (and `updated_at`).
    pub async fn set_password(&self, id: &str, password_hash: &str, now: i64) -> Result<(), StorageError> {
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .exec(self.0)
            .await?;
        Ok(())
    }

    /// Remember the openid the user pays with.
    pub async fn set_payer_openid(&self, id: &str, openid: &str) -> Result<(), StorageError> {
        user::Entity::update_many()
            .col_expr(user::Column::PayerOpenid, Expr::value(openid))
            .filter(user::Column::Id.eq(id))
            .exec(self.0)
            .await?;
        Ok(())
    }

    /// operationId `auth_login`: record a login at `now`; answers whether it is the user's first. The first login is
    /// claimed by a conditional write, so of two concurrent first logins only one says so.
    pub async fn mark_login(&self, id: &str, now: i64) -> Result<bool, StorageError> {
        let first = user::Entity::update_many()
            .col_expr(user::Column::LastLoginAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .filter(user::Column::LastLoginAt.is_null())
            .exec(self.0)
            .await?;
        if affected(first) {
            return Ok(true);
        }
        user::Entity::update_many()
            .col_expr(user::Column::LastLoginAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .exec(self.0)
            .await?;
        Ok(false)
    }
}
