//! API keys (001 §3): created with a keyed digest of the secret (the secret itself is never
//! stored), listed, switched on and off, deleted (kept as deleted: consumption records point at
//! them), found by digest for the metered calls.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

use super::entity::{KeyStatus, api_key, user};
use crate::storage::{StorageError, affected, write};

/// An API key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `ak_…`.
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// Its name.
    pub name: String,
    /// Active or inactive.
    pub status: KeyStatus,
    /// Created, ms.
    pub created_at: i64,
    /// Unusable from this moment (ms).
    pub expires_at: i64,
    /// Last debit, ms (one-minute resolution).
    pub last_used_at: Option<i64>,
}

impl From<api_key::Model> for ApiKey {
    fn from(row: api_key::Model) -> ApiKey {
        ApiKey {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            status: row.status,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    /// `ak_…`.
    pub id: &'a str,
    /// Owner.
    pub user_id: &'a str,
    /// Name.
    pub name: &'a str,
    /// The keyed digest of the secret.
    pub digest: &'a str,
    /// Its status.
    pub status: KeyStatus,
    /// Created, ms.
    pub created_at: i64,
    /// Expires, ms.
    pub expires_at: i64,
    /// Last used, ms (seeded keys).
    pub last_used_at: Option<i64>,
}

/// `points_api_key`.
#[derive(Debug, Clone, Copy)]
pub struct PointsKeys<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> PointsKeys<'_, C> {
    /// operationId `api_key_create`: store a new key unless its owner already holds `max` keys
    /// that are not deleted (false then). The owner's creates queue on a write to their user
    /// row, so concurrent creates cannot pass the limit together.
    pub async fn create(&self, new: NewApiKey<'_>, max: u64) -> Result<bool, StorageError> {
        let tx = write(self.0).await?;
        user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::value(new.created_at))
            .filter(user::Column::Id.eq(new.user_id))
            .exec(&tx)
            .await?;
        let held = api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(new.user_id))
            .filter(api_key::Column::DeletedAt.is_null())
            .count(&tx)
            .await?;
        if held >= max {
            tx.rollback().await?;
            return Ok(false);
        }
        PointsKeys(&tx).insert(new).await?;
        tx.commit().await?;
        Ok(true)
    }
}

impl<C: ConnectionTrait> PointsKeys<'_, C> {
    /// operationId `api_key_create`: store a new key.
    pub async fn insert(&self, new: NewApiKey<'_>) -> Result<(), StorageError> {
        api_key::Entity::insert(api_key::ActiveModel {
            id: Set(new.id.to_owned()),
            user_id: Set(new.user_id.to_owned()),
            name: Set(new.name.to_owned()),
            digest: Set(new.digest.to_owned()),
            status: Set(new.status),
            created_at: Set(new.created_at),
            expires_at: Set(new.expires_at),
            last_used_at: Set(new.last_used_at),
            deleted_at: Set(None),
        })
        .exec_without_returning(self.0)
        .await?;
        Ok(())
    }

    /// operationId `api_key_list`: `user_id`'s keys that are not deleted, newest first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<ApiKey>, StorageError> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(user_id))
            .filter(api_key::Column::DeletedAt.is_null())
            .order_by_desc(api_key::Column::CreatedAt)
            .order_by_desc(api_key::Column::Id)
            .all(self.0)
            .await?
            .into_iter()
            .map(ApiKey::from)
            .collect())
    }

    /// operationId `api_key_delete`: delete `user_id`'s key `id`; false when it has no such key
    /// (unknown, another user's, already deleted).
    pub async fn delete(&self, user_id: &str, id: &str, now: i64) -> Result<bool, StorageError> {
        let updated = api_key::Entity::update_many()
            .col_expr(api_key::Column::DeletedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::UserId.eq(user_id))
            .filter(api_key::Column::DeletedAt.is_null())
            .exec(self.0)
            .await?;
        Ok(affected(updated))
    }

    /// operationId `api_key_status_update`: set the status of `user_id`'s key `id`; false when
    /// it has no such key. Setting the status it has is a success.
    pub async fn set_status(
        &self,
        user_id: &str,
        id: &str,
        status: KeyStatus,
    ) -> Result<bool, StorageError> {
        // SQLite and PostgreSQL count the rows matched, changed or not.
        let updated = api_key::Entity::update_many()
            .col_expr(api_key::Column::Status, Expr::value(status))
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::UserId.eq(user_id))
            .filter(api_key::Column::DeletedAt.is_null())
            .exec(self.0)
            .await?;
        Ok(affected(updated))
    }

    /// operationId `points_consume`: the key whose secret has `digest`, unless deleted.
    pub async fn by_digest(&self, digest: &str) -> Result<Option<ApiKey>, StorageError> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::Digest.eq(digest))
            .filter(api_key::Column::DeletedAt.is_null())
            .one(self.0)
            .await?
            .map(ApiKey::from))
    }
}
