//! Fee orders (4.1.1) and the bills that pay them (4.1.2, 4.2.1): a bill is one shared
//! `pay_order` over several fee orders. Each fee order is claimed by one pending bill at a time
//! (a conditional write), and a paid bill settles its orders only while they are unpaid — two
//! bills that both got paid leave the second needing a refund, never an order paid twice.

use async_trait::async_trait;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::FeeOrder;
use super::entity::{bill_order, fee_order};
use crate::api_support::{Page, PageRequest};
use crate::storage::payments::entity::order as pay_order;
use crate::storage::payments::{NewPayOrder, PayOrder, PayStatus, PaymentStore, RefundState, Settle, Settled};
use crate::storage::{StorageError, contains, is_unique_violation, write};

/// `title LIKE '%…%'` with the text's own `%`, `_` and `\` taken literally.
fn title_contains(title: &str) -> sea_orm::sea_query::SimpleExpr {
    Expr::col((fee_order::Entity, fee_order::Column::Title)).like(contains(title))
}

/// Which orders a list shows (4.1.1 携带数据).
#[derive(Debug, Clone, Default)]
pub struct FeeFilter {
    /// Paid (true) or unpaid (false) only.
    pub paid: Option<bool>,
    /// Titles containing this text.
    pub title: Option<String>,
    /// One house only.
    pub house_id: Option<i64>,
}

/// What claiming orders for a bill did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The bill is placed and holds every order.
    Placed,
    /// An order is paid, closed, or held by another pending bill: nothing written.
    Unavailable(i64),
    /// The order number is taken: nothing written (draw another).
    NumberTaken,
}

/// A paid bill and its orders (4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    /// The payment order (`payment_shop_number` is its out_trade_no, `payment_number` its
    /// transaction id).
    pub pay: PayOrder,
    /// The fee orders it paid.
    pub orders: Vec<FeeOrder>,
}

/// `community_fee_order`, `community_bill_order`.
#[derive(Debug, Clone, Copy)]
pub struct Fees<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> Fees<'_, C> {
    /// operationId `order_list`: the orders of `houses` and of account `user_id` itself,
    /// filtered, newest first.
    pub async fn list(
        &self,
        user_id: &str,
        houses: &[i64],
        filter: &FeeFilter,
        page: PageRequest,
    ) -> Result<Page<FeeOrder>, StorageError> {
        let mut visible = Condition::any().add(fee_order::Column::UserId.eq(user_id));
        if !houses.is_empty() {
            visible = visible.add(fee_order::Column::HouseId.is_in(houses.to_vec()));
        }
        let mut query = fee_order::Entity::find().filter(visible);
        if let Some(paid) = filter.paid {
            query = query.filter(fee_order::Column::Paid.eq(paid));
        }
        if let Some(title) = &filter.title {
            query = query.filter(title_contains(title));
        }
        if let Some(house_id) = filter.house_id {
            query = query.filter(fee_order::Column::HouseId.eq(house_id));
        }
        let total = query.clone().count(self.0).await?;
        let records = query
            .order_by_desc(fee_order::Column::Id)
            .offset(page.offset())
            .limit(page.limit())
            .all(self.0)
            .await?;
        Ok(Page { request: page, total, items: records })
    }

    /// The orders `ids` that exist.
    pub async fn orders(&self, ids: &[i64]) -> Result<Vec<FeeOrder>, StorageError> {
        Ok(fee_order::Entity::find()
            .filter(fee_order::Column::Id.is_in(ids.to_vec()))
            .order_by_asc(fee_order::Column::Id)
            .all(self.0)
            .await?)
    }

    /// operationId `payment_create`: place a bill (the payment order) holding `ids` until
    /// `claim_until` (ms), all or nothing: each order must be open, unpaid and held by no other
    /// live bill.
    pub async fn place_bill(
        &self,
        pay: NewPayOrder<'_>,
        ids: &[i64],
        claim_until: i64,
    ) -> Result<Claim, StorageError> {
        let tx = write(self.0).await?;
        let now = pay.created_at;
        for id in ids {
            let claimed = fee_order::Entity::update_many()
                .col_expr(fee_order::Column::OutTradeNo, Expr::value(pay.out_trade_no))
                .col_expr(fee_order::Column::ClaimedUntil, Expr::value(claim_until))
                .filter(fee_order::Column::Id.eq(*id))
                .filter(fee_order::Column::Paid.eq(false))
                .filter(fee_order::Column::Closed.eq(false))
                .filter(
                    Condition::any()
                        .add(fee_order::Column::ClaimedUntil.is_null())
                        .add(fee_order::Column::ClaimedUntil.lte(now)),
                )
                .exec(&tx)
                .await?;
            if claimed.rows_affected == 0 {
                tx.rollback().await?;
                return Ok(Claim::Unavailable(*id));
            }
        }
        match PaymentStore(&tx).insert(pay.clone()).await {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                return Ok(Claim::NumberTaken);
            }
            Err(error) => return Err(error.into()),
        }
        for id in ids {
            bill_order::Entity::insert(bill_order::ActiveModel {
                out_trade_no: Set(pay.out_trade_no.to_owned()),
                order_id: Set(*id),
            })
            .exec_without_returning(&tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Claim::Placed)
    }

    /// The live bill of `user_id` holding exactly `ids` (a repeated payment request answers it).
    pub async fn live_bill(&self, user_id: &str, ids: &[i64], now: i64) -> Result<Option<PayOrder>, StorageError> {
        let held: Vec<FeeOrder> = self.orders(ids).await?;
        let Some(first) = held.first().and_then(|o| o.out_trade_no.clone()) else {
            return Ok(None);
        };
        if held.len() != ids.len()
            || held.iter().any(|o| o.paid || o.out_trade_no.as_deref() != Some(&first) || o.claimed_until.is_none_or(|t| t <= now))
        {
            return Ok(None);
        }
        let members = bill_order::Entity::find().filter(bill_order::Column::OutTradeNo.eq(&first)).count(self.0).await?;
        if members != ids.len() as u64 {
            return Ok(None);
        }
        let pay = pay_order::Entity::find_by_id(first).one(self.0).await?.map(PayOrder::from);
        Ok(pay.filter(|p| p.status == PayStatus::Pending && p.user_id.as_deref() == Some(user_id) && p.expires_at > now))
    }

    /// operationId `payment_list`: the paid bills of account `user_id`, newest first, with
    /// their orders; with `house_id` / `title`, only bills with such an order.
    pub async fn bills(
        &self,
        user_id: &str,
        house_id: Option<i64>,
        title: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Bill>, StorageError> {
        let mut query = pay_order::Entity::find()
            .filter(pay_order::Column::Api.eq("community"))
            .filter(pay_order::Column::UserId.eq(user_id))
            .filter(pay_order::Column::Status.eq(PayStatus::Paid))
            // A bill paid after its orders were paid by another (its claim had lapsed) paid
            // nothing: its money goes back, and it is no bill of these orders.
            .filter(pay_order::Column::RefundState.eq(RefundState::None));
        if house_id.is_some() || title.is_some() {
            // Subqueries, so the database narrows the bills (no id list of unbounded length).
            let mut orders = Query::select();
            orders.column(fee_order::Column::Id).from(fee_order::Entity);
            if let Some(house_id) = house_id {
                orders.and_where(fee_order::Column::HouseId.eq(house_id));
            }
            if let Some(title) = title {
                orders.and_where(title_contains(title));
            }
            let bills = Query::select()
                .column(bill_order::Column::OutTradeNo)
                .from(bill_order::Entity)
                .and_where(bill_order::Column::OrderId.in_subquery(orders))
                .to_owned();
            query = query.filter(pay_order::Column::OutTradeNo.in_subquery(bills));
        }
        let total = query.clone().count(self.0).await?;
        let rows = query
            .order_by_desc(pay_order::Column::PaidAt)
            .order_by_desc(pay_order::Column::OutTradeNo)
            .offset(page.offset())
            .limit(page.limit())
            .all(self.0)
            .await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let ids: Vec<i64> = bill_order::Entity::find()
                .filter(bill_order::Column::OutTradeNo.eq(&row.out_trade_no))
                .all(self.0)
                .await?
                .into_iter()
                .map(|b| b.order_id)
                .collect();
            records.push(Bill { pay: PayOrder::from(row), orders: self.orders(&ids).await? });
        }
        Ok(Page { request: page, total, items: records })
    }

    /// Seed an order; its id. `paid_by`: the paid bill (already inserted) that paid it.
    #[allow(clippy::too_many_arguments)]
    pub async fn seed_order(
        &self,
        number: &str,
        house_id: Option<i64>,
        title: &str,
        amount_fen: i64,
        manager: &str,
        remark: Option<&str>,
        extra: Option<&str>,
        paid_by: Option<(&str, i64)>,
        now: i64,
    ) -> Result<i64, StorageError> {
        let id = fee_order::Entity::insert(fee_order::ActiveModel {
            id: sea_orm::NotSet,
            number: Set(number.to_owned()),
            house_id: Set(house_id),
            user_id: Set(None),
            title: Set(title.to_owned()),
            amount_fen: Set(amount_fen),
            manager: Set(manager.to_owned()),
            remark: Set(remark.map(str::to_owned)),
            extra: Set(extra.map(str::to_owned)),
            closed: Set(false),
            paid: Set(paid_by.is_some()),
            out_trade_no: Set(paid_by.map(|(no, _)| no.to_owned())),
            claimed_until: Set(None),
            paid_at: Set(paid_by.map(|(_, at)| at)),
            created_at: Set(now),
        })
        .exec(self.0)
        .await?
        .last_insert_id;
        if let Some((no, _)) = paid_by {
            bill_order::Entity::insert(bill_order::ActiveModel { out_trade_no: Set(no.to_owned()), order_id: Set(id) })
                .exec_without_returning(self.0)
                .await?;
        }
        Ok(id)
    }
}

/// Settles community bills for the shared payment store, inside its transaction.
#[derive(Debug, Clone, Copy)]
pub struct Settler;

#[async_trait]
impl Settle for Settler {
    async fn paid(&self, tx: &DatabaseTransaction, order: &PayOrder, now: i64) -> Result<Settled, StorageError> {
        let ids: Vec<i64> = bill_order::Entity::find()
            .filter(bill_order::Column::OutTradeNo.eq(&order.out_trade_no))
            .all(tx)
            .await?
            .into_iter()
            .map(|b| b.order_id)
            .collect();
        // Only orders nobody paid meanwhile: a bill whose claim lapsed and whose orders another
        // bill paid must give its money back.
        let settled = fee_order::Entity::update_many()
            .col_expr(fee_order::Column::Paid, Expr::value(true))
            .col_expr(fee_order::Column::PaidAt, Expr::value(now))
            .col_expr(fee_order::Column::OutTradeNo, Expr::value(order.out_trade_no.clone()))
            .col_expr(fee_order::Column::ClaimedUntil, Expr::value(Option::<i64>::None))
            .filter(fee_order::Column::Id.is_in(ids.clone()))
            .filter(fee_order::Column::Paid.eq(false))
            .exec(tx)
            .await?;
        if ids.is_empty() || settled.rows_affected != ids.len() as u64 {
            return Ok(Settled::Conflict("订单已由其他账单支付".into()));
        }
        Ok(Settled::Applied)
    }

    async fn released(&self, tx: &DatabaseTransaction, order: &PayOrder) -> Result<(), StorageError> {
        fee_order::Entity::update_many()
            .col_expr(fee_order::Column::OutTradeNo, Expr::value(Option::<String>::None))
            .col_expr(fee_order::Column::ClaimedUntil, Expr::value(Option::<i64>::None))
            .filter(fee_order::Column::OutTradeNo.eq(&order.out_trade_no))
            .filter(fee_order::Column::Paid.eq(false))
            .exec(tx)
            .await?;
        Ok(())
    }
}

