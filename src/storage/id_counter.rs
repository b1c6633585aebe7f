//! Ids the server hands out one after another (charging's account ids, 10001, 10002, …), from
//! one `id_counter` row per sequence, so that requests creating rows at once, on any instance,
//! each get their own: an id read as `MAX(id) + 1` is the same for every request that reads it
//! before the first insert lands, and under twenty first logins at once five retries ran out.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::StorageError;

entity!(
    /// `id_counter`: a sequence (`id`, its name) and the last id handed out from it.
    #[allow(missing_docs)] // derive-generated items
    counter, "id_counter", String, false, {
    last: i64,
});

/// The sequences in `C` (a connection or a transaction).
pub struct IdCounters<'a, C>(pub(crate) &'a C);

impl<C: ConnectionTrait> IdCounters<'_, C> {
    /// The next id of sequence `name` (one more than the last handed out), or `None` when the
    /// sequence has not begun: [`IdCounters::raise`] it to the ids in use, then ask again. One
    /// conditional `UPDATE … RETURNING`: of requests asking at once, each gets its own id.
    pub async fn next(&self, name: &str) -> Result<Option<i64>, StorageError> {
        let updated = counter::Entity::update_many()
            .col_expr(counter::Column::Last, Expr::col(counter::Column::Last).add(1))
            .filter(counter::Column::Id.eq(name))
            .exec_with_returning(self.0)
            .await?;
        Ok(updated.first().map(|row| row.last))
    }

    /// Make sequence `name` hand out only ids above `last` (the largest in use): begins it there,
    /// or moves it up (never down) when rows were written with ids of their own (demo data).
    pub async fn raise(&self, name: &str, last: i64) -> Result<(), StorageError> {
        let row = counter::ActiveModel { id: Set(name.to_owned()), last: Set(last) };
        // `excluded` is the row that was to be inserted (PostgreSQL and SQLite alike).
        let higher = Expr::cust("CASE WHEN id_counter.last < excluded.last THEN excluded.last ELSE id_counter.last END");
        counter::Entity::insert(row)
            .on_conflict(OnConflict::column(counter::Column::Id).value(counter::Column::Last, higher).to_owned())
            .exec_without_returning(self.0)
            .await?;
        Ok(())
    }
}
