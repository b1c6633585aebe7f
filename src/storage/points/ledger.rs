//! Metered debits (the `points_consume` operation) and the consumption history (001 §2.5).

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::PointsUsers;
use super::entity::{ConsumptionKind, KeyStatus, api_key, consumption, user};
use crate::api_support::{Page, PageRequest};
use crate::storage::{StorageError, affected, is_unique_violation, write};

/// A consumption record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumption {
    /// `cr_…`.
    pub id: String,
    /// A debit or an expiry.
    pub kind: ConsumptionKind,
    /// What was consumed.
    pub title: String,
    /// Details, if given.
    pub description: Option<String>,
    /// Points consumed (positive).
    pub points: i64,
    /// When, ms.
    pub consumed_at: i64,
    /// The API key that spent them, if any.
    pub api_key_id: Option<String>,
    /// Its name at the time.
    pub api_key_name: Option<String>,
}

impl From<consumption::Model> for Consumption {
    fn from(row: consumption::Model) -> Consumption {
        Consumption {
            id: row.id,
            kind: row.kind,
            title: row.title,
            description: row.description,
            points: row.points,
            consumed_at: row.consumed_at,
            api_key_id: row.api_key_id,
            api_key_name: row.api_key_name,
        }
    }
}

/// A metered debit to make.
#[derive(Debug, Clone)]
pub struct Debit<'a> {
    /// Whose points.
    pub user_id: &'a str,
    /// The key spending them.
    pub api_key_id: &'a str,
    /// Its name (kept on the record).
    pub api_key_name: &'a str,
    /// Points (≥ 1).
    pub cost: i64,
    /// The caller's idempotency key: one debit per user and key.
    pub idempotency_key: &'a str,
    /// The record's title.
    pub title: &'a str,
    /// The record's description.
    pub description: Option<&'a str>,
    /// Now, ms.
    pub now: i64,
    /// The key's `last_used_at` is written only when older than this (ms): one write a minute.
    pub touch_before: i64,
}

/// What a debit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Debited {
    /// Debited now: the record and the balance after it.
    Done(Consumption, i64),
    /// This idempotency key debited before, with the same cost and title: that record and the
    /// balance now.
    Repeated(Consumption, i64),
    /// This idempotency key debited before with another cost or title: nothing done.
    KeyReused,
    /// The key was switched off, deleted or expired since the request was authenticated:
    /// nothing done.
    KeyUnusable,
    /// The balance (after any expiry) does not cover the cost: nothing done.
    Short(i64),
}

/// A consumption record id: `cr_` + the UTC date + 12 random hex digits (`cr_20240619_3f9c…`).
pub(crate) fn record_id(at_ms: i64) -> String {
    let date = chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .format("%Y%m%d");
    format!("cr_{date}_{}", crate::random::hex(12))
}

/// `points_consumption` and the balance it debits.
#[derive(Debug, Clone, Copy)]
pub struct PointsLedger<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> PointsLedger<'_, C> {
    /// operationId `points_consume`: debit `debit.cost` points. Points whose year is over expire
    /// first, in their own transaction (the expiry stands whatever the debit does). Then, in one
    /// transaction: the key is checked as it stands now (its owner may have switched it off or
    /// deleted it since the request was authenticated; on PostgreSQL the row is locked `FOR
    /// UPDATE`, so such a change waits for the debit), the record is inserted (its idempotency key is unique
    /// per user, so a concurrent repeat waits for this one and then finds it), and the balance is
    /// lowered only if it still covers the cost (`balance >= cost`, a conditional write:
    /// concurrent debits never take more than there is).
    pub async fn debit(&self, debit: &Debit<'_>) -> Result<Debited, StorageError> {
        PointsUsers(self.0).current(debit.user_id, debit.now).await?;
        let tx = write(self.0).await?;
        let mut key = api_key::Entity::find_by_id(debit.api_key_id.to_owned())
            .filter(api_key::Column::UserId.eq(debit.user_id))
            .filter(api_key::Column::Status.eq(KeyStatus::Active))
            .filter(api_key::Column::DeletedAt.is_null())
            .filter(api_key::Column::ExpiresAt.gt(debit.now));
        if tx.get_database_backend() == DbBackend::Postgres {
            // Exclusive, not shared: the debit updates this row (`last_used_at`) after the
            // user's balance, so two debits holding it shared would each wait for the other's
            // share to end — a deadlock PostgreSQL breaks by failing one. Taken exclusively, the
            // key row orders debits on one key before either touches the balance.
            key = key.lock_exclusive();
        }
        if key.one(&tx).await?.is_none() {
            tx.rollback().await?;
            return Ok(Debited::KeyUnusable);
        }
        let record = consumption::ActiveModel {
            id: Set(record_id(debit.now)),
            user_id: Set(debit.user_id.to_owned()),
            kind: Set(ConsumptionKind::Consume),
            title: Set(debit.title.to_owned()),
            description: Set(debit.description.map(str::to_owned)),
            points: Set(debit.cost),
            consumed_at: Set(debit.now),
            api_key_id: Set(Some(debit.api_key_id.to_owned())),
            api_key_name: Set(Some(debit.api_key_name.to_owned())),
            idempotency_key: Set(Some(debit.idempotency_key.to_owned())),
        };
        match consumption::Entity::insert(record.clone())
            .exec_without_returning(&tx)
            .await
        {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                // A failed statement ends a PostgreSQL transaction: read the first debit outside.
                tx.rollback().await?;
                return self.repeated(debit).await;
            }
            Err(error) => return Err(error.into()),
        }
        let debited = user::Entity::update_many()
            .col_expr(
                user::Column::Balance,
                Expr::col(user::Column::Balance).sub(debit.cost),
            )
            .col_expr(user::Column::UpdatedAt, Expr::value(debit.now))
            .filter(user::Column::Id.eq(debit.user_id))
            .filter(user::Column::Balance.gte(debit.cost))
            .filter(user::Column::PointsExpireAt.gte(debit.now))
            .exec(&tx)
            .await?;
        if !affected(debited) {
            tx.rollback().await?;
            return Ok(Debited::Short(self.balance(debit.user_id, debit.now).await?));
        }
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(debit.now))
            .filter(api_key::Column::Id.eq(debit.api_key_id))
            .filter(
                Condition::any()
                    .add(api_key::Column::LastUsedAt.is_null())
                    .add(api_key::Column::LastUsedAt.lt(debit.touch_before)),
            )
            .exec(&tx)
            .await?;
        let balance = balance_in(&tx, debit.user_id).await?;
        tx.commit().await?;
        let record = Consumption {
            id: record.id.unwrap(),
            kind: ConsumptionKind::Consume,
            title: debit.title.to_owned(),
            description: debit.description.map(str::to_owned),
            points: debit.cost,
            consumed_at: debit.now,
            api_key_id: Some(debit.api_key_id.to_owned()),
            api_key_name: Some(debit.api_key_name.to_owned()),
        };
        Ok(Debited::Done(record, balance))
    }

    async fn repeated(&self, debit: &Debit<'_>) -> Result<Debited, StorageError> {
        let first = consumption::Entity::find()
            .filter(consumption::Column::UserId.eq(debit.user_id))
            .filter(consumption::Column::IdempotencyKey.eq(debit.idempotency_key))
            .one(self.0)
            .await?
            .ok_or_else(|| {
                StorageError::Corrupt(format!(
                    "idempotency key {} taken, record missing",
                    debit.idempotency_key
                ))
            })?;
        if first.points != debit.cost || first.title != debit.title {
            return Ok(Debited::KeyReused);
        }
        Ok(Debited::Repeated(
            first.into(),
            self.balance(debit.user_id, debit.now).await?,
        ))
    }

    /// The balance now (expired first if its year is over).
    async fn balance(&self, user_id: &str, now: i64) -> Result<i64, StorageError> {
        Ok(PointsUsers(self.0).current(user_id, now).await?.map_or(0, |u| u.balance))
    }

    /// operationId `points_consumption_history_list`: `user_id`'s records, newest first, and
    /// their count.
    pub async fn history(
        &self,
        user_id: &str,
        page: PageRequest,
    ) -> Result<Page<Consumption>, StorageError> {
        let rows = consumption::Entity::find().filter(consumption::Column::UserId.eq(user_id));
        let total = rows.clone().count(self.0).await?;
        let items = rows
            .order_by_desc(consumption::Column::ConsumedAt)
            .order_by_desc(consumption::Column::Id)
            .offset(page.offset())
            .limit(page.limit())
            .all(self.0)
            .await?
            .into_iter()
            .map(Consumption::from)
            .collect();
        Ok(Page {
            request: page,
            total,
            items,
        })
    }
}

async fn balance_in(tx: &DatabaseTransaction, user_id: &str) -> Result<i64, StorageError> {
    Ok(user::Entity::find_by_id(user_id.to_owned())
        .one(tx)
        .await?
        .map_or(0, |u| u.balance))
}
