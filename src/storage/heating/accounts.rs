//! Heat accounts (供热账号) and their binding to users, heating seasons, bills (000 §4, §5.1).

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

use super::entity::{BillStatus, account, bill, season};
use super::users::{HeatingUsers, ProfileChange};
use crate::storage::{StorageError, affected, is_unique_violation, write};

/// A heat account and its registered owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account number (`H202400001`).
    pub heat_account: String,
    /// 户主姓名.
    pub owner_name: String,
    /// Keyed digest of the owner's ID number (blind index).
    pub owner_id_index: String,
    /// 地址.
    pub address: String,
    /// 供热面积, hundredths of a m².
    pub heating_area_centi: i64,
    /// The user it is bound to.
    pub bound_user_id: Option<String>,
}

impl From<account::Model> for Account {
    fn from(row: account::Model) -> Account {
        Account {
            heat_account: row.heat_account,
            owner_name: row.owner_name,
            owner_id_index: row.owner_id_index,
            address: row.address,
            heating_area_centi: row.heating_area_centi,
            bound_user_id: row.bound_user_id,
        }
    }
}

/// A heating season.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Season {
    /// `2024-2025`.
    pub season: String,
    /// Heating starts, ms.
    pub heating_start: i64,
    /// Heating ends, ms.
    pub heating_end: i64,
    /// Fees are due by, ms.
    pub payment_deadline: i64,
}

impl From<season::Model> for Season {
    fn from(row: season::Model) -> Season {
        Season {
            season: row.season,
            heating_start: row.heating_start,
            heating_end: row.heating_end,
            payment_deadline: row.payment_deadline,
        }
    }
}

/// One season's bill of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    /// Its id.
    pub bill_id: String,
    /// The account.
    pub heat_account: String,
    /// The season (`2024-2025`).
    pub heating_season: String,
    /// Fen.
    pub amount_fen: i64,
    /// Billed, ms.
    pub bill_date: i64,
    /// Due, ms (the document writes 00:00Z of the due day).
    pub due_date: i64,
    /// Paid or not.
    pub status: BillStatus,
    /// Paid at, ms.
    pub paid_at: Option<i64>,
}

impl From<bill::Model> for Bill {
    fn from(row: bill::Model) -> Bill {
        Bill {
            bill_id: row.bill_id,
            heat_account: row.heat_account,
            heating_season: row.heating_season,
            amount_fen: row.amount_fen,
            bill_date: row.bill_date,
            due_date: row.due_date,
            status: row.status,
            paid_at: row.paid_at,
        }
    }
}

/// `heating_account`, `heating_season`, `heating_bill`.
#[derive(Debug, Clone, Copy)]
pub struct HeatingAccounts<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> HeatingAccounts<'_, C> {
    /// The heat account with this number.
    pub async fn get(&self, heat_account: &str) -> Result<Option<Account>, StorageError> {
        Ok(account::Entity::find_by_id(heat_account.to_owned()).one(self.0).await?.map(Account::from))
    }

    /// The heat account bound to `user_id`.
    pub async fn bound_to(&self, user_id: &str) -> Result<Option<Account>, StorageError> {
        Ok(account::Entity::find().filter(account::Column::BoundUserId.eq(user_id)).one(self.0).await?.map(Account::from))
    }

    /// operationId `heat_bind`: bind `heat_account` to `user_id`, only if nobody holds it and the user holds no other
    /// account, and in the same transaction fill the user's profile fields that are still empty
    /// from `fill`. False (nothing written): already bound.
    pub async fn bind(&self, heat_account: &str, user_id: &str, fill: &ProfileChange, now: i64) -> Result<bool, StorageError> {
        let tx = write(self.0).await?;
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
        HeatingUsers(&tx).fill_profile(user_id, fill, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every season, oldest first.
    pub async fn seasons(&self) -> Result<Vec<Season>, StorageError> {
        Ok(season::Entity::find().order_by_asc(season::Column::Season).all(self.0).await?.into_iter().map(Season::from).collect())
    }

    /// Every bill of an account, oldest season first.
    pub async fn bills(&self, heat_account: &str) -> Result<Vec<Bill>, StorageError> {
        Ok(bill::Entity::find()
            .filter(bill::Column::HeatAccount.eq(heat_account))
            .order_by_asc(bill::Column::HeatingSeason)
            .order_by_asc(bill::Column::BillId)
            .all(self.0)
            .await?
            .into_iter()
            .map(Bill::from)
            .collect())
    }
}
