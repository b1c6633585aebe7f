//! Which bills a payment order pays (000 §5.2), the payment history (§5.4), and settling: the
//! [`Settler`] the shared payment store calls inside its transaction when an order is paid or
//! released.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, JoinType, Order,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Set, TransactionTrait,
};

use super::entity::{BillStatus, bill, order, order_bill};
use crate::api_support::paging::{Page, PageRequest};
use crate::storage::payments::entity::order as pay_order;
use crate::storage::payments::{NewPayOrder, PayOrder, PayStatus, PaymentStore, RefundState, Settle, Settled};
use crate::storage::{StorageError, is_unique_violation, write};

/// One bill an order pays, with the amount and late fee fixed at order time (fen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// The bill.
    pub bill_id: String,
    /// Its amount, fen.
    pub amount_fen: i64,
    /// Its late fee at order time, fen.
    pub late_fee_fen: i64,
}

/// An order to place: the payment order and the bills it pays.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    /// The payment order (its amount is the lines' sum).
    pub pay: NewPayOrder<'a>,
    /// The account whose bills are paid.
    pub heat_account: &'a str,
    /// The bills.
    pub lines: &'a [OrderLine],
}

/// What placing an order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Placed: its bills are held for it until it expires.
    Created,
    /// A bill is paid or held by another live order; nothing written.
    BillsTaken,
    /// The order number is taken; nothing written (draw another).
    NumberTaken,
}

/// A heating order: the payment order and the account it pays for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeatingOrder {
    /// The payment order.
    pub pay: PayOrder,
    /// The account.
    pub heat_account: String,
}

/// A payment record of the history (000 §5.4): one bill line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The order.
    pub order: PayOrder,
    /// The bill line.
    pub line: OrderLine,
    /// The bill's season.
    pub heating_season: String,
}

/// What an account has paid (000 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaidTotals {
    /// Every paid order (bills and late fees), fen.
    pub total_fen: i64,
    /// The part of it for the given season's bills, fen.
    pub season_fen: i64,
}

#[derive(Debug, FromQueryResult)]
struct RecordRow {
    out_trade_no: String,
    bill_id: String,
    amount_fen: i64,
    late_fee_fen: i64,
    heating_season: String,
}

/// `heating_order`, `heating_order_bill` (and the bills' holds).
#[derive(Debug, Clone, Copy)]
pub struct HeatingOrders<'c, C>(pub &'c C);

fn lines_of_account(heat_account: &str) -> sea_orm::Select<order_bill::Entity> {
    order_bill::Entity::find()
        .join(JoinType::InnerJoin, order_bill::Relation::Order.def())
        .join(JoinType::InnerJoin, order::Relation::PayOrder.def())
        .join(JoinType::InnerJoin, order_bill::Relation::Bill.def())
        .filter(order::Column::HeatAccount.eq(heat_account))
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> HeatingOrders<'_, C> {
    /// operationId `payment_create`: place an order holding its bills until it expires — only
    /// unpaid bills of the account that no live order holds.
    pub async fn create(&self, new: NewOrder<'_>) -> Result<Created, StorageError> {
        let tx = write(self.0).await?;
        let ids: Vec<&str> = new.lines.iter().map(|l| l.bill_id.as_str()).collect();
        // The claim is the first write, so concurrent claims queue on the bill rows (PostgreSQL)
        // or the write lock (SQLite) and the loser sees the winner's hold.
        let claimed = bill::Entity::update_many()
            .col_expr(bill::Column::OrderId, Expr::value(new.pay.out_trade_no))
            .col_expr(bill::Column::HoldUntil, Expr::value(new.pay.expires_at))
            .filter(bill::Column::BillId.is_in(ids.iter().copied()))
            .filter(bill::Column::HeatAccount.eq(new.heat_account))
            .filter(bill::Column::Status.eq(BillStatus::Unpaid))
            .filter(Condition::any().add(bill::Column::OrderId.is_null()).add(bill::Column::HoldUntil.lt(new.pay.created_at)))
            .exec(&tx)
            .await?;
        if claimed.rows_affected != ids.len() as u64 {
            tx.rollback().await?;
            return Ok(Created::BillsTaken);
        }
        match PaymentStore(&tx).insert(new.pay.clone()).await {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                return Ok(Created::NumberTaken);
            }
            Err(error) => return Err(error.into()),
        }
        order::Entity::insert(order::ActiveModel {
            out_trade_no: Set(new.pay.out_trade_no.to_owned()),
            heat_account: Set(new.heat_account.to_owned()),
        })
        .exec_without_returning(&tx)
        .await?;
        for line in new.lines {
            order_bill::Entity::insert(order_bill::ActiveModel {
                out_trade_no: Set(new.pay.out_trade_no.to_owned()),
                bill_id: Set(line.bill_id.clone()),
                amount_fen: Set(line.amount_fen),
                late_fee_fen: Set(line.late_fee_fen),
            })
            .exec_without_returning(&tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Created::Created)
    }

    /// operationId `payment_create`: `user_id`'s pending, unexpired order of `heat_account` for
    /// exactly the bills `bill_ids`, if any — two queries, whatever the account's history.
    pub async fn live_for(&self, user_id: &str, heat_account: &str, bill_ids: &[&str], now: i64) -> Result<Option<PayOrder>, StorageError> {
        let live: Vec<PayOrder> = pay_order::Entity::find()
            .join_rev(JoinType::InnerJoin, order::Relation::PayOrder.def())
            .filter(order::Column::HeatAccount.eq(heat_account))
            .filter(pay_order::Column::UserId.eq(user_id))
            .filter(pay_order::Column::Status.eq(PayStatus::Pending))
            .filter(pay_order::Column::ExpiresAt.gt(now))
            .order_by_desc(pay_order::Column::CreatedAt)
            .all(self.0)
            .await?
            .into_iter()
            .map(PayOrder::from)
            .collect();
        if live.is_empty() {
            return Ok(None);
        }
        let lines = order_bill::Entity::find()
            .filter(order_bill::Column::OutTradeNo.is_in(live.iter().map(|o| o.out_trade_no.clone())))
            .all(self.0)
            .await?;
        let mut wanted: Vec<&str> = bill_ids.to_vec();
        wanted.sort_unstable();
        Ok(live.into_iter().find(|o| {
            let mut ids: Vec<&str> =
                lines.iter().filter(|l| l.out_trade_no == o.out_trade_no).map(|l| l.bill_id.as_str()).collect();
            ids.sort_unstable();
            ids == wanted
        }))
    }

    /// operationId `payment_create`: the pending orders (of any user) that hold any of
    /// `heat_account`'s bills `bill_ids` as of `now` (ms) — those a new choice of bills would
    /// replace, when they are all the caller's.
    pub async fn holding(&self, heat_account: &str, bill_ids: &[&str], now: i64) -> Result<Vec<PayOrder>, StorageError> {
        let holders: Vec<Option<String>> = bill::Entity::find()
            .select_only()
            .column(bill::Column::OrderId)
            .filter(bill::Column::BillId.is_in(bill_ids.iter().copied()))
            .filter(bill::Column::HeatAccount.eq(heat_account))
            .filter(bill::Column::Status.eq(BillStatus::Unpaid))
            .filter(bill::Column::HoldUntil.gte(now))
            .into_tuple()
            .all(self.0)
            .await?;
        let holders: BTreeSet<String> = holders.into_iter().flatten().collect();
        if holders.is_empty() {
            return Ok(Vec::new());
        }
        Ok(pay_order::Entity::find()
            .filter(pay_order::Column::OutTradeNo.is_in(holders))
            .filter(pay_order::Column::Status.eq(PayStatus::Pending))
            .all(self.0)
            .await?
            .into_iter()
            .map(PayOrder::from)
            .collect())
    }

    /// operationId `payment_status_get`: the order `out_trade_no` (a heating order: another
    /// API's payment order is not one).
    pub async fn get(&self, out_trade_no: &str) -> Result<Option<HeatingOrder>, StorageError> {
        let Some(row) = order::Entity::find_by_id(out_trade_no.to_owned()).one(self.0).await? else {
            return Ok(None);
        };
        let pay = PaymentStore(self.0)
            .get(out_trade_no)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("heating order {out_trade_no} has no payment order")))?;
        Ok(Some(HeatingOrder { pay, heat_account: row.heat_account }))
    }

    /// operationId `payment_history_list`: the payment records (one per bill line) of an
    /// account's orders paid — an unpaid one created — in `[from, to)` ms, newest first by that
    /// time — the page asked for and the total count, both computed by the database.
    pub async fn records(&self, heat_account: &str, from: Option<i64>, to: Option<i64>, page: PageRequest) -> Result<Page<Record>, StorageError> {
        // 000 §5.4's contract: 按支付时间倒序, filtered by the payment's time (an unpaid
        // order's creation): an order placed at 23:55 and paid after midnight is the next day's.
        let at = || {
            Expr::expr(Func::coalesce([
                Expr::col((pay_order::Entity, pay_order::Column::PaidAt)),
                Expr::col((pay_order::Entity, pay_order::Column::CreatedAt)),
            ]))
        };
        let mut lines = lines_of_account(heat_account);
        if let Some(from) = from {
            lines = lines.filter(at().gte(from));
        }
        if let Some(to) = to {
            lines = lines.filter(at().lt(to));
        }
        let total = lines.clone().count(self.0).await?;
        let rows = lines
            .select_only()
            .column(order_bill::Column::OutTradeNo)
            .column(order_bill::Column::BillId)
            .column(order_bill::Column::AmountFen)
            .column(order_bill::Column::LateFeeFen)
            .column(bill::Column::HeatingSeason)
            .order_by(at(), Order::Desc)
            .order_by_desc(order_bill::Column::OutTradeNo)
            .order_by_asc(order_bill::Column::BillId)
            .offset(page.offset())
            .limit(page.limit())
            .into_model::<RecordRow>()
            .all(self.0)
            .await?;
        let orders: Vec<PayOrder> = pay_order::Entity::find()
            .filter(pay_order::Column::OutTradeNo.is_in(rows.iter().map(|r| r.out_trade_no.clone())))
            .all(self.0)
            .await?
            .into_iter()
            .map(PayOrder::from)
            .collect();
        let items = rows
            .into_iter()
            .map(|row| {
                let order = orders
                    .iter()
                    .find(|o| o.out_trade_no == row.out_trade_no)
                    .cloned()
                    .ok_or_else(|| StorageError::Corrupt(format!("order {} vanished", row.out_trade_no)))?;
                let line = OrderLine { bill_id: row.bill_id, amount_fen: row.amount_fen, late_fee_fen: row.late_fee_fen };
                Ok(Record { order, line, heating_season: row.heating_season })
            })
            .collect::<Result<_, StorageError>>()?;
        Ok(Page { request: page, total, items })
    }

    /// operationId `statistics_user_get`: what `heat_account`'s paid orders add up to, and the
    /// part for `season`'s bills — orders whose money goes back (another order paid their bills)
    /// do not count.
    pub async fn paid_totals(&self, heat_account: &str, season: &str) -> Result<PaidTotals, StorageError> {
        #[derive(Debug, FromQueryResult)]
        struct PaidLine {
            out_trade_no: String,
            order_fen: i64,
            amount_fen: i64,
            late_fee_fen: i64,
            heating_season: String,
        }
        let lines = lines_of_account(heat_account)
            .filter(pay_order::Column::Status.eq(PayStatus::Paid))
            .filter(pay_order::Column::RefundState.eq(RefundState::None))
            .select_only()
            .column(order_bill::Column::OutTradeNo)
            .column_as(pay_order::Column::AmountFen, "order_fen")
            .column(order_bill::Column::AmountFen)
            .column(order_bill::Column::LateFeeFen)
            .column(bill::Column::HeatingSeason)
            .order_by_asc(order_bill::Column::OutTradeNo)
            .into_model::<PaidLine>()
            .all(self.0)
            .await?;
        let mut totals = PaidTotals::default();
        let mut last_order: Option<&str> = None;
        for line in &lines {
            if last_order != Some(line.out_trade_no.as_str()) {
                totals.total_fen += line.order_fen;
                last_order = Some(&line.out_trade_no);
            }
            if line.heating_season == season {
                totals.season_fen += line.amount_fen + line.late_fee_fen;
            }
        }
        Ok(totals)
    }
}

/// Heating's part of settling a payment order (called by the payment store inside its
/// transaction): a paid order pays its bills, if they are still free for it; a released one
/// frees them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settler;

#[async_trait]
impl Settle for Settler {
    async fn paid(&self, tx: &DatabaseTransaction, order: &PayOrder, now: i64) -> Result<Settled, StorageError> {
        let paid_at = order.paid_at.unwrap_or(now);
        // In bill order, so two orders sharing bills take their row locks in the same order.
        let lines = order_bill::Entity::find()
            .filter(order_bill::Column::OutTradeNo.eq(&order.out_trade_no))
            .order_by_asc(order_bill::Column::BillId)
            .all(tx)
            .await?;
        for line in &lines {
            // Still unpaid, and held by this order or by no live order (a late payment of an
            // expired order may still take its bills if nobody else did).
            let updated = bill::Entity::update_many()
                .col_expr(bill::Column::Status, Expr::value(BillStatus::Paid))
                .col_expr(bill::Column::PaidAt, Expr::value(paid_at))
                .col_expr(bill::Column::LateFeePaidFen, Expr::value(line.late_fee_fen))
                .col_expr(bill::Column::OrderId, Expr::value(order.out_trade_no.clone()))
                .col_expr(bill::Column::HoldUntil, Expr::value(Option::<i64>::None))
                .filter(bill::Column::BillId.eq(&line.bill_id))
                .filter(bill::Column::Status.eq(BillStatus::Unpaid))
                .filter(
                    Condition::any()
                        .add(bill::Column::OrderId.eq(order.out_trade_no.clone()))
                        .add(bill::Column::OrderId.is_null())
                        .add(bill::Column::HoldUntil.lt(now)),
                )
                .exec(tx)
                .await?;
            if updated.rows_affected == 0 {
                return Ok(Settled::Conflict(format!("bill {} was paid or taken by another order", line.bill_id)));
            }
        }
        Ok(Settled::Applied)
    }

    async fn released(&self, tx: &DatabaseTransaction, order: &PayOrder) -> Result<(), StorageError> {
        bill::Entity::update_many()
            .col_expr(bill::Column::OrderId, Expr::value(Option::<String>::None))
            .col_expr(bill::Column::HoldUntil, Expr::value(Option::<i64>::None))
            .filter(bill::Column::OrderId.eq(order.out_trade_no.clone()))
            .filter(bill::Column::Status.eq(BillStatus::Unpaid))
            .exec(tx)
            .await?;
        Ok(())
    }
}
