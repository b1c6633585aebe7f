//! Which package a payment order buys (001 §2.2), the purchase history (§2.4), and settling: the
//! [`Settler`] the shared payment store calls inside its transaction when an order is paid —
//! the points are credited in the same transaction as the order turns paid.

use async_trait::async_trait;
use chrono::{Datelike, TimeZone, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    JoinType, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait,
    TransactionTrait, UpdateMany,
};

use super::entity::{order, user};
use super::expire_in;
use crate::api_support::{Page, PageRequest};
use crate::storage::payments::entity::order as pay_order;
use crate::storage::payments::{NewPayOrder, PayOrder, PayStatus, PaymentStore, Settle, Settled};
use crate::storage::{StorageError, affected, is_unique_violation, write};

/// An order of a package: the payment order and the package as ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointsOrder {
    /// The payment order.
    pub pay: PayOrder,
    /// Who ordered.
    pub user_id: String,
    /// The package.
    pub package_id: String,
    /// Its name when ordered.
    pub package_name: String,
    /// Its points when ordered.
    pub points: i64,
    /// Its price when ordered, fen.
    pub price_fen: i64,
}

/// An order to place.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    /// The payment order (its amount is the price).
    pub pay: NewPayOrder<'a>,
    /// Who orders.
    pub user_id: &'a str,
    /// The package.
    pub package_id: &'a str,
    /// Its name now.
    pub package_name: &'a str,
    /// Its points now.
    pub points: i64,
}

/// What placing an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Placed: the order as stored.
    Created(Box<PointsOrder>),
    /// The order number is taken; nothing written (draw another).
    NumberTaken,
    /// The user already has this pending, unexpired order of the package at this price (placed
    /// by a concurrent request): nothing written, answer it.
    Pending(Box<PointsOrder>),
    /// The user is gone: nothing written.
    NoUser,
}

/// The moment points credited at `now_ms` expire: 23:59:59 UTC (the document's
/// `2024-12-31T23:59:59Z`) on 31 December of the Beijing calendar year they are credited in —
/// of the next year when credited in December, so that no purchase lasts less than a month (see
/// `x-transcription-notes` of points.yaml).
pub fn year_end(now_ms: i64) -> i64 {
    let date = crate::clock::beijing_date(now_ms);
    let year = if date.month() == 12 { date.year() + 1 } else { date.year() };
    Utc.with_ymd_and_hms(year, 12, 31, 23, 59, 59)
        .single()
        .map_or(now_ms, |t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::year_end;

    #[test]
    fn points_last_to_the_end_of_their_beijing_year_and_december_points_a_year_more() {
        let at = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().timestamp_millis();
        let end = |y| Utc.with_ymd_and_hms(y, 12, 31, 23, 59, 59).unwrap().timestamp_millis();
        assert_eq!(year_end(at(2024, 6, 18, 2)), end(2024), "the document's example");
        assert_eq!(year_end(at(2024, 1, 20, 3)), end(2024));
        // 1 January 03:00 in Beijing is still 31 December in UTC: the Beijing year counts.
        assert_eq!(year_end(at(2024, 12, 31, 19)), end(2025));
        assert_eq!(year_end(at(2024, 11, 30, 15)), end(2024), "30 November 23:00 Beijing");
        assert_eq!(year_end(at(2024, 11, 30, 16)), end(2025), "1 December 00:00 Beijing");
    }
}

/// How long a pending order must still be payable to be answered again (ms): 10 minutes.
pub const REANSWER_MARGIN_MS: i64 = 10 * 60 * 1000;

/// `points_order`.
#[derive(Debug, Clone, Copy)]
pub struct PointsOrders<'c, C>(pub &'c C);

fn with_pay(row: order::Model, pay: PayOrder) -> PointsOrder {
    PointsOrder {
        pay,
        user_id: row.user_id,
        package_id: row.package_id,
        package_name: row.package_name,
        points: row.points,
        price_fen: row.price_fen,
    }
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> PointsOrders<'_, C> {
    /// operationId `points_order_create`: place an order (the payment order and its package),
    /// unless the user has a pending, unexpired order of the package at this price. Creates of
    /// one user queue on a write to the user's row, so of concurrent creates for one package one
    /// places the order and the others answer it. [`Created::NoUser`] when that row is gone.
    pub async fn create(&self, new: NewOrder<'_>) -> Result<Created, StorageError> {
        let tx = write(self.0).await?;
        let locked = user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::value(new.pay.created_at))
            .filter(user::Column::Id.eq(new.user_id))
            .exec(&tx)
            .await?;
        if !affected(locked) {
            tx.rollback().await?;
            return Ok(Created::NoUser);
        }
        if let Some(pending) = PointsOrders(&tx)
            .live_for(new.user_id, new.package_id, new.pay.amount_fen, new.pay.created_at)
            .await?
        {
            tx.rollback().await?;
            return Ok(Created::Pending(Box::new(pending)));
        }
        let pay = match PaymentStore(&tx).insert(new.pay.clone()).await {
            Ok(pay) => pay,
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                return Ok(Created::NumberTaken);
            }
            Err(error) => return Err(error.into()),
        };
        let row = order::Model {
            out_trade_no: new.pay.out_trade_no.to_owned(),
            user_id: new.user_id.to_owned(),
            package_id: new.package_id.to_owned(),
            package_name: new.package_name.to_owned(),
            points: new.points,
            price_fen: new.pay.amount_fen,
        };
        order::Entity::insert(row.clone().into_active_model())
            .exec_without_returning(&tx)
            .await?;
        tx.commit().await?;
        Ok(Created::Created(Box::new(with_pay(row, pay))))
    }

    /// operationId `points_order_create`: `user_id`'s pending order of `package_id` at
    /// `price_fen` that can still be paid for [`REANSWER_MARGIN_MS`] after `now`, if any (asking
    /// twice answers one order; one about to expire is not answered again, its payer would not
    /// finish in time).
    pub async fn live_for(
        &self,
        user_id: &str,
        package_id: &str,
        price_fen: i64,
        now: i64,
    ) -> Result<Option<PointsOrder>, StorageError> {
        let live = pay_order::Entity::find()
            .join_rev(JoinType::InnerJoin, order::Relation::PayOrder.def())
            // The user's pending orders through `idx_pay_order_user`, each joined by its key, not
            // every order the user placed (a points order's payment has its user's id).
            .filter(pay_order::Column::UserId.eq(user_id))
            .filter(order::Column::PackageId.eq(package_id))
            .filter(order::Column::PriceFen.eq(price_fen))
            .filter(pay_order::Column::Status.eq(PayStatus::Pending))
            .filter(pay_order::Column::ExpiresAt.gt(now + REANSWER_MARGIN_MS))
            .order_by_desc(pay_order::Column::CreatedAt)
            .one(self.0)
            .await?;
        match live {
            Some(pay) => self.get(&pay.out_trade_no).await,
            None => Ok(None),
        }
    }

    /// operationId `points_payment_check`: order `out_trade_no` (a points order: another API's
    /// payment order is not one).
    pub async fn get(&self, out_trade_no: &str) -> Result<Option<PointsOrder>, StorageError> {
        let Some(row) = order::Entity::find_by_id(out_trade_no.to_owned())
            .one(self.0)
            .await?
        else {
            return Ok(None);
        };
        let pay = PaymentStore(self.0)
            .get(out_trade_no)
            .await?
            .ok_or_else(|| {
                StorageError::Corrupt(format!("points order {out_trade_no} has no payment order"))
            })?;
        Ok(Some(with_pay(row, pay)))
    }

    /// operationId `points_purchase_history_list`: `user_id`'s orders, newest first, and their
    /// count.
    pub async fn history(
        &self,
        user_id: &str,
        page: PageRequest,
    ) -> Result<Page<PointsOrder>, StorageError> {
        let rows = order::Entity::find()
            .join(JoinType::InnerJoin, order::Relation::PayOrder.def())
            .filter(order::Column::UserId.eq(user_id));
        let total = rows.clone().count(self.0).await?;
        let rows = rows
            .order_by_desc(pay_order::Column::CreatedAt)
            .order_by_desc(order::Column::OutTradeNo)
            .offset(page.offset())
            .limit(page.limit())
            .all(self.0)
            .await?;
        let pays: Vec<PayOrder> = pay_order::Entity::find()
            .filter(
                pay_order::Column::OutTradeNo.is_in(rows.iter().map(|r| r.out_trade_no.clone())),
            )
            .all(self.0)
            .await?
            .into_iter()
            .map(PayOrder::from)
            .collect();
        let items = rows
            .into_iter()
            .map(|row| {
                let pay = pays
                    .iter()
                    .find(|p| p.out_trade_no == row.out_trade_no)
                    .cloned()
                    .ok_or_else(|| {
                        StorageError::Corrupt(format!("order {} vanished", row.out_trade_no))
                    })?;
                Ok(with_pay(row, pay))
            })
            .collect::<Result<_, StorageError>>()?;
        Ok(Page {
            request: page,
            total,
            items,
        })
    }
}

/// The update crediting `points` to user `id` at `now` (ms): the points last to the later of
/// the year's end and an expiry they already had, in the statement itself (reading the row
/// first would be a second).
fn credit(id: &str, points: i64, now: i64) -> UpdateMany<user::Entity> {
    credit_by(Expr::value(points), now).filter(user::Column::Id.eq(id))
}

/// [`credit`]'s columns for an increment `points` given as an expression (a subquery, a value),
/// with no user chosen yet.
fn credit_by(points: Expr, now: i64) -> UpdateMany<user::Entity> {
    user::Entity::update_many()
        .col_expr(user::Column::Balance, Expr::col(user::Column::Balance).add(points))
        .col_expr(user::Column::PointsExpireAt, expiry(now))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
}

/// A credited balance's expiry: the end of `now`'s year, or the later one it has.
fn expiry(now: i64) -> Expr {
    let year_end = year_end(now);
    Expr::case(user::Column::PointsExpireAt.gt(year_end), Expr::col(user::Column::PointsExpireAt))
        .finally(Expr::value(year_end))
        .into()
}

/// Points' part of settling a payment order (called by the payment store inside its
/// transaction): a paid order credits its points — the balance first expires if its year is
/// over — and moves the expiry to the end of this year. Nothing is held while an order is
/// pending, so a released order has nothing to free, and a late payment of a closed order is
/// credited like any other (the payer paid for exactly these points).
#[derive(Debug, Clone, Copy, Default)]
pub struct Settler;

#[async_trait]
impl Settle for Settler {
    async fn paid(
        &self,
        tx: &DatabaseTransaction,
        order: &PayOrder,
        now: i64,
    ) -> Result<Settled, StorageError> {
        // Credited at once unless the balance's year is over, the order's user and points read
        // by the same statement (one statement on the common path); else the order is read,
        // the balance expired, then credited.
        let unexpired = Condition::any()
            .add(user::Column::PointsExpireAt.is_null())
            .add(user::Column::PointsExpireAt.gte(now));
        let of_order = |column: order::Column| {
            Query::select()
                .column(column)
                .from(order::Entity)
                .and_where(order::Column::OutTradeNo.eq(order.out_trade_no.as_str()))
                .to_owned()
        };
        let credited = credit_by(Expr::SubQuery(None, Box::new(of_order(order::Column::Points).into())), now)
            .filter(user::Column::Id.in_subquery(of_order(order::Column::UserId)))
            .filter(unexpired)
            .exec(tx)
            .await?;
        if affected(credited) {
            return Ok(Settled::Applied);
        }
        let Some(row) = order::Entity::find_by_id(order.out_trade_no.clone())
            .one(tx)
            .await?
        else {
            return Ok(Settled::Conflict(format!(
                "payment order {} is not a points order",
                order.out_trade_no
            )));
        };
        expire_in(tx, &row.user_id, now).await?;
        if !affected(credit(&row.user_id, row.points, now).exec(tx).await?) {
            return Ok(Settled::Conflict(format!(
                "user {} of order {} is gone",
                row.user_id, order.out_trade_no
            )));
        }
        Ok(Settled::Applied)
    }

    async fn released(&self, _: &DatabaseTransaction, _: &PayOrder) -> Result<(), StorageError> {
        Ok(())
    }
}
