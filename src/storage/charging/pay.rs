//! Paying for charging (003 §6): an ended order paid from the balance (one conditional
//! transaction: the order turns paid only if it was unpaid, the balance drops only if it covers
//! the bill), or by WeChat Pay (a payment row beside the shared pay order, settled by
//! [`Settler`]); balance recharges credited once by the same settler.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    TransactionTrait,
};

use super::entity::*;
use super::{ChargingStore, Payment, Recharge};
use crate::storage::payments::{NewPayOrder, PayOrder, PaymentStore, Settle, Settled};
use crate::storage::{StorageError, affected, is_unique_violation, write};

/// What [`ChargingStore::place_payment`] did.
#[derive(Debug)]
pub enum PlacedPayment {
    /// The new payment was placed.
    Placed,
    /// A payment of the order for the same amount was waiting: that one.
    Waiting(Box<Payment>),
    /// The payment id (or its pay order's) was taken.
    IdTaken,
}

/// What a balance payment did.
#[derive(Debug)]
pub enum BalancePaid {
    /// Paid: the payment row.
    Paid(Box<Payment>),
    /// The order is paid already, or not payable (not ended, nothing to pay) (4003 / 3002).
    NotPayable,
    /// The balance does not cover the bill (1005).
    Short,
}

/// Payment status on the payment record (003 §6.2): 0 未支付, 1 支付中, 2 支付成功, 3 支付失败, 4 已退款.
const PAYMENT_PAID: i32 = 2;
const PAYMENT_FAILED: i32 = 3;

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> ChargingStore<'_, C> {
    /// Pay order `order_id` (`total_fen` as billed) from its owner's balance, recording
    /// `payment`; see [`BalancePaid`].
    pub async fn pay_from_balance(&self, order_id: &str, total_fen: i64, payment: Payment) -> Result<BalancePaid, StorageError> {
        let tx = write(self.0).await?;
        let now = payment.created_at;
        let claimed = order::Entity::update_many()
            .col_expr(order::Column::PaymentStatus, Expr::value(1))
            .col_expr(order::Column::PaymentMethod, Expr::value(3))
            .col_expr(order::Column::PaidAt, Expr::value(now))
            // No third party took the money: the order has no transaction id.
            .col_expr(order::Column::TransactionId, Expr::value(Option::<String>::None))
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::Id.eq(order_id))
            .filter(order::Column::PaymentStatus.eq(0))
            .filter(order::Column::Status.is_in([2, 4]))
            .filter(order::Column::TotalFen.eq(total_fen))
            .exec(&tx)
            .await?;
        if !affected(claimed) {
            tx.rollback().await?;
            return Ok(BalancePaid::NotPayable);
        }
        let debited = user::Entity::update_many()
            .col_expr(user::Column::BalanceFen, Expr::col(user::Column::BalanceFen).sub(total_fen))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(payment.user_id))
            .filter(user::Column::BalanceFen.gte(total_fen))
            .exec(&tx)
            .await?;
        if !affected(debited) {
            tx.rollback().await?;
            return Ok(BalancePaid::Short);
        }
        payment::Entity::insert(payment.clone().into_active_model()).exec_without_returning(&tx).await?;
        tx.commit().await?;
        Ok(BalancePaid::Paid(Box::new(payment)))
    }

    /// A WeChat payment of an order: the payment row and the shared pay order (`out_trade_no` =
    /// the payment id) in one transaction — unless a payment of the order for the same amount is
    /// still waiting (status 0 or 1), which is answered instead: of concurrent pays of one order,
    /// one opens a payment and the others answer it. The order's row is written first, a lock
    /// the others wait on (SQLite's writes are one at a time anyway), so that their look for a
    /// waiting payment comes after it. [`PlacedPayment::IdTaken`]: retry with another id.
    pub async fn place_payment(&self, payment: Payment, pay: NewPayOrder<'_>) -> Result<PlacedPayment, StorageError> {
        let tx = write(self.0).await?;
        order::Entity::update_many()
            .col_expr(order::Column::UpdatedAt, Expr::col(order::Column::UpdatedAt))
            .filter(order::Column::Id.eq(&payment.order_id))
            .exec(&tx)
            .await?;
        let waiting = payment::Entity::find()
            .filter(payment::Column::OrderId.eq(&payment.order_id))
            .filter(payment::Column::Status.is_in([0, 1]))
            .filter(payment::Column::AmountFen.eq(payment.amount_fen))
            .order_by_desc(payment::Column::CreatedAt)
            .one(&tx)
            .await?;
        if let Some(waiting) = waiting {
            tx.rollback().await?;
            return Ok(PlacedPayment::Waiting(Box::new(waiting)));
        }
        match PaymentStore(&tx).insert(pay).await {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                return Ok(PlacedPayment::IdTaken);
            }
            Err(error) => return Err(error.into()),
        }
        payment::Entity::insert(payment.into_active_model()).exec_without_returning(&tx).await?;
        tx.commit().await?;
        Ok(PlacedPayment::Placed)
    }

    /// A recharge and its shared pay order (`out_trade_no` = the recharge id), together.
    pub async fn place_recharge(&self, recharge: Recharge, pay: NewPayOrder<'_>) -> Result<bool, StorageError> {
        self.place(recharge::Entity::insert(recharge.into_active_model()), pay).await
    }

    async fn place<A: sea_orm::ActiveModelTrait>(&self, row: sea_orm::Insert<A>, pay: NewPayOrder<'_>) -> Result<bool, StorageError> {
        let tx = write(self.0).await?;
        match PaymentStore(&tx).insert(pay).await {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                return Ok(false);
            }
            Err(error) => return Err(error.into()),
        }
        row.exec_without_returning(&tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The payment `id`.
    pub async fn payment(&self, id: &str) -> Result<Option<Payment>, StorageError> {
        Ok(payment::Entity::find_by_id(id.to_owned()).one(self.0).await?)
    }

    /// The newest WeChat payment of `order_id` still waiting (status 0 or 1), to answer again.
    pub async fn waiting_payment(&self, order_id: &str) -> Result<Option<Payment>, StorageError> {
        Ok(payment::Entity::find()
            .filter(payment::Column::OrderId.eq(order_id))
            .filter(payment::Column::Status.is_in([0, 1]))
            .order_by_desc(payment::Column::CreatedAt)
            .one(self.0)
            .await?)
    }

    /// The recharge `id`.
    pub async fn recharge(&self, id: &str) -> Result<Option<Recharge>, StorageError> {
        Ok(recharge::Entity::find_by_id(id.to_owned()).one(self.0).await?)
    }
}

/// Settles charging's WeChat Pay orders for the shared payment store, inside its transaction:
/// a payment (`PAY…`) turns its order paid — unless the order was paid meanwhile (by the
/// balance, or another payment), then the money goes back (`Conflict`); a recharge (`RC…`) is
/// credited to the balance once.
#[derive(Debug, Clone, Copy)]
pub struct Settler;

#[async_trait]
impl Settle for Settler {
    async fn paid(&self, tx: &DatabaseTransaction, order: &PayOrder, now: i64) -> Result<Settled, StorageError> {
        let id = order.out_trade_no.as_str();
        let transaction_id = order.transaction_id.clone().unwrap_or_default();
        if let Some(recharge) = recharge::Entity::find_by_id(id.to_owned()).one(tx).await? {
            let credited = recharge::Entity::update_many()
                .col_expr(recharge::Column::Status, Expr::value(1))
                .col_expr(recharge::Column::PaidAt, Expr::value(now))
                .col_expr(recharge::Column::TransactionId, Expr::value(transaction_id))
                .col_expr(recharge::Column::UpdatedAt, Expr::value(now))
                .filter(recharge::Column::Id.eq(id))
                .filter(recharge::Column::Status.eq(0))
                .exec(tx)
                .await?;
            if !affected(credited) {
                return Ok(Settled::Conflict("充值记录已结束".into()));
            }
            user::Entity::update_many()
                .col_expr(user::Column::BalanceFen, Expr::col(user::Column::BalanceFen).add(recharge.amount_fen))
                .col_expr(user::Column::UpdatedAt, Expr::value(now))
                .filter(user::Column::Id.eq(recharge.user_id))
                .exec(tx)
                .await?;
            return Ok(Settled::Applied);
        }
        let Some(payment) = payment::Entity::find_by_id(id.to_owned()).one(tx).await? else {
            return Ok(Settled::Conflict("支付记录不存在".into()));
        };
        let paid = order::Entity::update_many()
            .col_expr(order::Column::PaymentStatus, Expr::value(1))
            .col_expr(order::Column::PaymentMethod, Expr::value(1))
            .col_expr(order::Column::PaidAt, Expr::value(now))
            .col_expr(order::Column::TransactionId, Expr::value(transaction_id.clone()))
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::Id.eq(payment.order_id.clone()))
            .filter(order::Column::PaymentStatus.eq(0))
            .filter(order::Column::TotalFen.eq(payment.amount_fen))
            .exec(tx)
            .await?;
        if !affected(paid) {
            // Nothing of this transaction is kept on a conflict, so the payment record is not
            // marked here: what it reads comes from its payment order, which is recorded as
            // needing a refund (`payment_status`: 4).
            return Ok(Settled::Conflict("订单已支付".into()));
        }
        payment::Entity::update_many()
            .col_expr(payment::Column::Status, Expr::value(PAYMENT_PAID))
            .col_expr(payment::Column::PaidAt, Expr::value(now))
            .col_expr(payment::Column::TransactionId, Expr::value(transaction_id))
            .col_expr(payment::Column::UpdatedAt, Expr::value(now))
            .filter(payment::Column::Id.eq(id))
            .exec(tx)
            .await?;
        Ok(Settled::Applied)
    }

    async fn released(&self, tx: &DatabaseTransaction, order: &PayOrder) -> Result<(), StorageError> {
        let id = order.out_trade_no.as_str();
        payment::Entity::update_many()
            .col_expr(payment::Column::Status, Expr::value(PAYMENT_FAILED))
            .filter(payment::Column::Id.eq(id))
            .filter(payment::Column::Status.is_in([0, 1]))
            .exec(tx)
            .await?;
        recharge::Entity::update_many()
            .col_expr(recharge::Column::Status, Expr::value(2))
            .filter(recharge::Column::Id.eq(id))
            .filter(recharge::Column::Status.eq(0))
            .exec(tx)
            .await?;
        Ok(())
    }
}
