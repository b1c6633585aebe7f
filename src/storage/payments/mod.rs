//! Payment storage, shared by every API: one `pay_order` table that each API's own rows point at,
//! the notifications that settled them (dedupe and audit), refunds. Settling runs the API's own
//! writes ([`Settle`]) in the same transaction as the order's; a payment the API cannot apply is
//! stored as needing a refund, never only logged.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};

pub mod entity;

pub use entity::{PayStatus, RefundRowStatus, RefundState, TradeType};
use entity::{notification, order, refund};

use super::{Db, StorageError, affected, is_unique_violation, write};

/// A payment order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayOrder {
    /// Our order number, also WeChat Pay's `out_trade_no`.
    pub out_trade_no: String,
    /// The API that placed it.
    pub api: String,
    /// The mini-program it was placed for.
    pub appid: String,
    /// The merchant it was placed with.
    pub mchid: String,
    /// Who ordered (`None`: an order from before the API's users, such as seeded history).
    pub user_id: Option<String>,
    /// The payer's openid, when known.
    pub payer_openid: Option<String>,
    /// What is bought (shown to the payer).
    pub description: String,
    /// The amount, fen.
    pub amount_fen: i64,
    /// Its state.
    pub status: PayStatus,
    /// What WeChat Pay answered the order's latest placing; `None` until it was placed.
    pub prepay: Option<Prepay>,
    /// WeChat Pay's transaction id, once paid.
    pub transaction_id: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// After this (ms) it can no longer be paid.
    pub expires_at: i64,
    /// When the payer paid, ms.
    pub paid_at: Option<i64>,
    /// Money back.
    pub refund_state: RefundState,
    /// Why money must go back.
    pub refund_reason: Option<String>,
    /// Refunded so far, fen.
    pub refunded_fen: i64,
}

/// The answer to an order's latest placing with WeChat Pay: a prepay_id (JSAPI) or a code_url
/// (NATIVE), each valid 2 hours from when it was obtained (domain.md §2.1 and §2.2 for the prepay_id;
/// [`crate::providers::wechat_pay::WechatPay::native_prepay`] for the code_url).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepay {
    /// The prepay_id, or the `weixin://wxpay/bizpayurl?pr=…` code_url.
    pub id: String,
    /// When WeChat Pay answered it, ms.
    pub at: i64,
    /// How the order was placed; `None` for a placing recorded without it (before migration 23,
    /// or by an instance of an earlier version during a rolling upgrade), or of an attempt that
    /// failed before the order was reopened ([`PaymentStore::reopen_failed`]): never reused.
    pub trade: Option<TradeType>,
    /// The payer a JSAPI prepay_id was placed for (`None`: placed without one, NATIVE, or not
    /// recorded with the placing, as for `trade`).
    pub payer_openid: Option<String>,
}

impl From<order::Model> for PayOrder {
    fn from(row: order::Model) -> PayOrder {
        PayOrder {
            out_trade_no: row.out_trade_no,
            api: row.api,
            appid: row.appid,
            mchid: row.mchid,
            user_id: row.user_id,
            payer_openid: row.payer_openid,
            description: row.description,
            amount_fen: row.amount_fen,
            status: row.status,
            prepay: row.prepay_id.zip(row.prepay_at).map(|(id, at)| {
                // Trade and payer describe this placing only if recorded with it (an earlier
                // version's instance records a placing without them).
                let described = row.prepay_trade_at == Some(at);
                Prepay {
                    id,
                    at,
                    trade: row.prepay_trade.filter(|_| described),
                    payer_openid: row.prepay_openid.filter(|_| described),
                }
            }),
            transaction_id: row.transaction_id,
            created_at: row.created_at,
            expires_at: row.expires_at,
            paid_at: row.paid_at,
            refund_state: row.refund_state,
            refund_reason: row.refund_reason,
            refunded_fen: row.refunded_fen,
        }
    }
}

/// A new payment order.
#[derive(Debug, Clone)]
pub struct NewPayOrder<'a> {
    /// Our order number.
    pub out_trade_no: &'a str,
    /// The API placing it.
    pub api: &'a str,
    /// The mini-program.
    pub appid: &'a str,
    /// The merchant.
    pub mchid: &'a str,
    /// Who orders.
    pub user_id: Option<&'a str>,
    /// The payer's openid, when known.
    pub payer_openid: Option<&'a str>,
    /// What is bought.
    pub description: &'a str,
    /// Fen.
    pub amount_fen: i64,
    /// Now, ms.
    pub created_at: i64,
    /// Payable until (ms).
    pub expires_at: i64,
}

/// What an API's [`Settle`] made of a paid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The API applied it (bills paid, points credited, …).
    Applied,
    /// The API cannot apply it (its bills were settled by another order meanwhile, …): the money
    /// must go back. The reason is stored with the order.
    Conflict(String),
}

/// An API's own writes when one of its orders is paid or released, or a refund of one closes
/// without the money moving, run inside the transaction that changes the order or the refund (so
/// they and the API's rows change together or not at all).
#[async_trait]
pub trait Settle: Send + Sync + 'static {
    /// `order` was just marked paid (at `now`, ms): apply it. A `Conflict` rolls back the whole
    /// transaction, and the payment is then recorded without the API's writes, as needing a
    /// refund (the money is taken): so `paid` must change nothing outside `tx`.
    async fn paid(&self, tx: &DatabaseTransaction, order: &PayOrder, now: i64) -> Result<Settled, StorageError>;
    /// `order` will not be paid (failed, closed): release what it held.
    async fn released(&self, tx: &DatabaseTransaction, order: &PayOrder) -> Result<(), StorageError>;
    /// `refund` of one of the API's orders was just closed with no money moved (WeChat Pay
    /// refused it for good, or answered `CLOSED`): put back what the API took when it asked for
    /// the refund, inside `tx`. By default nothing: the order's money-back state
    /// ([`RefundState::Failed`]) tells an operator to act. Not called for `ABNORMAL` (the money
    /// left the merchant and an operator routes it by hand).
    async fn refund_closed(&self, tx: &DatabaseTransaction, refund: &RefundRow) -> Result<(), StorageError> {
        let _ = (tx, refund);
        Ok(())
    }
    /// `refund`, recorded closed before (and [`Settle::refund_closed`] run), was reported
    /// successful after all (a notify or query): the money is back with the payer, so take back
    /// what `refund_closed` put back, as far as it is still there, inside `tx`. By default
    /// nothing.
    async fn closed_refund_succeeded(&self, tx: &DatabaseTransaction, refund: &RefundRow) -> Result<(), StorageError> {
        let _ = (tx, refund);
        Ok(())
    }
}

/// What a verified notify (or an order query) reports about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported<'a> {
    /// Paid (`SUCCESS`).
    Paid {
        /// WeChat Pay's transaction id.
        transaction_id: &'a str,
        /// When the payer paid (ms).
        paid_at: i64,
    },
    /// The payment failed or the order was closed (`PAYERROR`, `CLOSED`, `REVOKED`).
    Failed,
}

/// A verified report to settle.
#[derive(Debug, Clone, Copy)]
pub struct Notified<'a> {
    /// The notification id (`EV-…`; `query:<transaction_id>` for an order query): dedupes
    /// redeliveries.
    pub notify_id: &'a str,
    /// The API whose notify URL received it.
    pub api: &'a str,
    /// `TRANSACTION.SUCCESS`, …
    pub event_type: &'a str,
    /// Our order number.
    pub out_trade_no: &'a str,
    /// The order's amount as WeChat Pay saw it, fen.
    pub amount_fen: i64,
    /// What happened.
    pub reported: Reported<'a>,
}

/// What settling did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The order is now paid and the API applied it.
    Paid,
    /// The order is now failed and the API released it.
    Failed,
    /// Nothing to change: this notify (or one with the same outcome) was handled before.
    Duplicate,
    /// No such order of this API.
    UnknownOrder,
    /// The reported amount is not the order's; nothing changed.
    AmountMismatch,
    /// Paid, but the API could not apply it: the order is paid and needs a refund.
    RefundNeeded,
}

impl Settlement {
    fn label(self) -> &'static str {
        match self {
            Settlement::Paid => "paid",
            Settlement::Failed => "failed",
            Settlement::Duplicate => "duplicate",
            Settlement::UnknownOrder => "unknown_order",
            Settlement::AmountMismatch => "amount_mismatch",
            Settlement::RefundNeeded => "refund_needed",
        }
    }
}

/// How one attempt at settling a report ended ([`PaymentStore::settle`]).
enum Attempt {
    /// Committed (or, for a redelivery, nothing to commit).
    Done(Settlement),
    /// The API could not apply the payment; everything was rolled back. Its reason.
    Conflict(String),
    /// The order marked paid was another API's, or of another amount; everything was rolled
    /// back.
    Mismatch,
}

/// A refund row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    /// Our refund number.
    pub out_refund_no: String,
    /// The order it gives money back for.
    pub out_trade_no: String,
    /// Fen.
    pub refund_fen: i64,
    /// Why.
    pub reason: String,
    /// Where it stands.
    pub status: RefundRowStatus,
    /// WeChat Pay's refund id.
    pub refund_id: Option<String>,
    /// Asked for, ms.
    pub created_at: i64,
    /// Its final outcome learnt, ms.
    pub finished_at: Option<i64>,
}

impl From<refund::Model> for RefundRow {
    fn from(row: refund::Model) -> RefundRow {
        RefundRow {
            out_refund_no: row.out_refund_no,
            out_trade_no: row.out_trade_no,
            refund_fen: row.refund_fen,
            reason: row.reason,
            status: row.status,
            refund_id: row.refund_id,
            created_at: row.created_at,
            finished_at: row.finished_at,
        }
    }
}

/// Payment orders, notifications and refunds (`pay_order`, `pay_notification`, `pay_refund`).
#[derive(Debug, Clone, Copy)]
pub struct PaymentStore<'c, C>(pub &'c C);

impl Db {
    /// The payment store over the pool.
    pub fn payments(&self) -> PaymentStore<'_, sea_orm::DatabaseConnection> {
        PaymentStore(self.conn())
    }
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> PaymentStore<'_, C> {
    /// Insert a pending order (inside the API's own transaction, beside its rows). A taken
    /// `out_trade_no` is a unique violation the caller retries with a new number.
    pub async fn insert(&self, new: NewPayOrder<'_>) -> Result<PayOrder, sea_orm::DbErr> {
        let row = order::Model {
            out_trade_no: new.out_trade_no.to_owned(),
            api: new.api.to_owned(),
            appid: new.appid.to_owned(),
            mchid: new.mchid.to_owned(),
            user_id: new.user_id.map(str::to_owned),
            payer_openid: new.payer_openid.map(str::to_owned),
            description: new.description.to_owned(),
            amount_fen: new.amount_fen,
            status: PayStatus::Pending,
            prepay_id: None,
            prepay_at: None,
            prepay_trade: None,
            prepay_openid: None,
            prepay_trade_at: None,
            transaction_id: None,
            created_at: new.created_at,
            expires_at: new.expires_at,
            paid_at: None,
            closed_at: None,
            refund_state: RefundState::None,
            refund_reason: None,
            refunded_fen: 0,
            sweep_attempts: 0,
            sweep_after: None,
            queried_at: None,
        };
        order::Entity::insert(row.clone().into_active_model()).exec_without_returning(self.0).await?;
        Ok(PayOrder::from(row))
    }

    /// The order `out_trade_no`.
    pub async fn get(&self, out_trade_no: &str) -> Result<Option<PayOrder>, StorageError> {
        Ok(order::Entity::find_by_id(out_trade_no.to_owned()).one(self.0).await?.map(PayOrder::from))
    }

    /// Claim the right to ask WeChat Pay about pending order `out_trade_no` now: true when nobody
    /// asked in the last `interval_ms` (the claim is a conditional write, so of concurrent polls
    /// on any instances one asks).
    pub async fn claim_query(&self, out_trade_no: &str, now: i64, interval_ms: i64) -> Result<bool, StorageError> {
        let claimed = order::Entity::update_many()
            .col_expr(order::Column::QueriedAt, Expr::value(now))
            .filter(order::Column::OutTradeNo.eq(out_trade_no))
            .filter(order::Column::Status.eq(PayStatus::Pending))
            .filter(Condition::any().add(order::Column::QueriedAt.is_null()).add(order::Column::QueriedAt.lte(now - interval_ms)))
            .exec(self.0)
            .await?;
        Ok(affected(claimed))
    }

    /// Record what WeChat Pay answered placing a pending order as `trade` at `now` (ms) — the
    /// prepay_id or code_url — and the payer a JSAPI order was placed for (also kept as the
    /// order's payer), with `now` as `prepay_trade_at` too (see [`Prepay::trade`]); false when
    /// the order is no longer pending (nothing written).
    pub async fn set_prepay(&self, out_trade_no: &str, prepay_id: &str, trade: TradeType, payer_openid: Option<&str>, now: i64) -> Result<bool, StorageError> {
        let mut update = order::Entity::update_many()
            .col_expr(order::Column::PrepayId, Expr::value(prepay_id))
            .col_expr(order::Column::PrepayAt, Expr::value(now))
            .col_expr(order::Column::PrepayTrade, Expr::value(trade))
            .col_expr(order::Column::PrepayOpenid, Expr::value(payer_openid))
            .col_expr(order::Column::PrepayTradeAt, Expr::value(now))
            .filter(order::Column::OutTradeNo.eq(out_trade_no))
            .filter(order::Column::Status.eq(PayStatus::Pending));
        if let Some(openid) = payer_openid {
            update = update.col_expr(order::Column::PayerOpenid, Expr::value(openid));
        }
        Ok(affected(update.exec(self.0).await?))
    }

    /// Make pending again API `api`'s order that failed after it was placed with WeChat Pay (a
    /// prepay is recorded) and has not expired by `now` (ms). After a failed attempt (PAYERROR)
    /// WeChat Pay keeps the order open (NOTPAY) for another; one it closed (CLOSED, REVOKED —
    /// stored as failed alike) refuses the next placing, and the caller fails it again. Only for
    /// an API whose `Settle::released` kept the order's own rows as they were for a failed
    /// order with a prepay (o2o's): no hook runs here. The prepay of the failed attempt stays
    /// recorded (the order counts as placed) but is no longer described ([`Prepay::trade`]
    /// `None`), so every ask until the order is placed again places it. False: no such order
    /// (nothing written).
    pub async fn reopen_failed(&self, api: &str, out_trade_no: &str, now: i64) -> Result<bool, StorageError> {
        let reopened = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(PayStatus::Pending))
            .col_expr(order::Column::ClosedAt, Expr::value(Option::<i64>::None))
            .col_expr(order::Column::PrepayTradeAt, Expr::value(Option::<i64>::None))
            .filter(order::Column::Api.eq(api))
            .filter(order::Column::OutTradeNo.eq(out_trade_no))
            .filter(order::Column::Status.eq(PayStatus::Failed))
            .filter(order::Column::PrepayId.is_not_null())
            .filter(order::Column::ExpiresAt.gt(now))
            .exec(self.0)
            .await?;
        Ok(affected(reopened))
    }

    /// End a pending order unpaid (`Failed`: placing or paying it failed; `Closed`: it expired)
    /// and let the API release what it held, in one transaction. False: it was not pending.
    pub async fn end_unpaid(&self, out_trade_no: &str, status: PayStatus, settle: &dyn Settle, now: i64) -> Result<bool, StorageError> {
        self.end(out_trade_no, status, settle, now, false).await
    }

    /// Fail pending order `out_trade_no` only while no placing of it is stored (`prepay_id`
    /// unset) — WeChat Pay refused placing it for good — and let the API release what it held,
    /// in one transaction. One conditional write: of this and another request's
    /// [`PaymentStore::set_prepay`], whichever lands first decides. False: it was not pending,
    /// or another request's placing is stored (WeChat Pay holds the order).
    pub async fn fail_unplaced(&self, out_trade_no: &str, settle: &dyn Settle, now: i64) -> Result<bool, StorageError> {
        self.end(out_trade_no, PayStatus::Failed, settle, now, true).await
    }

    /// [`end_pending`] in a transaction of its own.
    async fn end(&self, out_trade_no: &str, status: PayStatus, settle: &dyn Settle, now: i64, unplaced_only: bool) -> Result<bool, StorageError> {
        let tx = write(self.0).await?;
        let ended = end_pending(&tx, out_trade_no, status, settle, now, unplaced_only).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Apply a verified report: in one transaction, record it (its id dedupes), then change the
    /// order — its row first, so concurrent reports of one order queue on it — and the API's
    /// rows with it.
    ///
    /// When the API cannot apply a payment ([`Settled::Conflict`]) that transaction is rolled
    /// back, the API's writes with it, and a second one records the report again and the
    /// payment without them, as needing a refund. Conflicts are rare; a savepoint around every
    /// API's writes would cost each payment two more round trips to the database. Between the
    /// two, a concurrent delivery of the same report may record it first: then that one
    /// answers `RefundNeeded` and this one `Duplicate` (both are acknowledged).
    ///
    /// A payment marks its order paid and reads it back in one statement, the common case: an
    /// order of another API or of another amount is then rolled back likewise (it is rare: a
    /// misrouted notify, or an amount WeChat Pay reports otherwise) and the report applied
    /// again, reading the order first.
    pub async fn settle(&self, notified: &Notified<'_>, settle: &dyn Settle, now: i64) -> Result<Settlement, StorageError> {
        let mut conflict = None;
        let mut mark_first = true;
        // At most three attempts: a payment that marked an order it may not settle is tried
        // once more reading first, and a conflict once more without the API's writes.
        for _ in 0..3 {
            match self.settle_once(notified, settle, conflict.as_deref(), mark_first, now).await? {
                Attempt::Done(settlement) => return Ok(settlement),
                Attempt::Mismatch if mark_first => mark_first = false,
                Attempt::Conflict(reason) if conflict.is_none() => conflict = Some(reason),
                Attempt::Mismatch | Attempt::Conflict(_) => break,
            }
        }
        Err(StorageError::Corrupt(format!("order {} could not be settled", notified.out_trade_no)))
    }

    /// One attempt of [`PaymentStore::settle`]: with `conflict` `None` a paid order runs the
    /// API's writes, and their conflict rolls everything back ([`Attempt::Conflict`]); with
    /// `Some(reason)` the API's writes are skipped and the order is marked as needing a refund
    /// for that reason. With `mark_first` a payment marks its order paid before reading it
    /// (one statement: the order as marked comes back), and rolls everything back when that
    /// order is another API's or of another amount ([`Attempt::Mismatch`]); without it the
    /// order is read and checked first.
    async fn settle_once(
        &self,
        notified: &Notified<'_>,
        settle: &dyn Settle,
        conflict: Option<&str>,
        mark_first: bool,
        now: i64,
    ) -> Result<Attempt, StorageError> {
        let tx = write(self.0).await?;
        let fresh = notification::Entity::insert(notification::ActiveModel {
            id: Set(notified.notify_id.to_owned()),
            api: Set(notified.api.to_owned()),
            out_trade_no: Set(notified.out_trade_no.to_owned()),
            event_type: Set(notified.event_type.to_owned()),
            // The common outcome up front, corrected by `finish` when it is another: uncommitted
            // until then, so no reader sees it early (a duplicate waits on this row's insert).
            outcome: Set(Settlement::Paid.label().to_owned()),
            received_at: Set(now),
        })
        .on_conflict(OnConflict::column(notification::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&tx)
        .await?;
        if fresh == 0 {
            // A redelivery: answer as the first delivery was answered (a refusal stays a refusal).
            let stored = notification::Entity::find_by_id(notified.notify_id.to_owned()).one(&tx).await?;
            tx.rollback().await?;
            return Ok(Attempt::Done(match stored.map(|n| n.outcome).as_deref() {
                Some("unknown_order") => Settlement::UnknownOrder,
                Some("amount_mismatch") => Settlement::AmountMismatch,
                _ => Settlement::Duplicate,
            }));
        }
        let order = match notified.reported {
            Reported::Paid { transaction_id, paid_at } if mark_first => match mark_paid(&tx, notified.out_trade_no, transaction_id, paid_at).await {
                Ok(Some(order)) if order.api == notified.api && order.amount_fen == notified.amount_fen => order,
                // Not this payment's to settle — another API's order, another amount, or (the
                // mark refused) a transaction id another order holds, which reading first
                // refuses before writing when the order is not this payment's: undo the mark,
                // and read first next time.
                Ok(Some(_)) => {
                    tx.rollback().await?;
                    return Ok(Attempt::Mismatch);
                }
                Err(StorageError::Db(error)) if is_unique_violation(&error) => {
                    tx.rollback().await?;
                    return Ok(Attempt::Mismatch);
                }
                Err(error) => return Err(error),
                Ok(None) => {
                    // Paid already, or no such order: the read tells which.
                    let outcome = checked_order(&tx, notified).await?.map_or_else(|refused| refused, |_| Settlement::Duplicate);
                    return finish(tx, notified.notify_id, outcome).await.map(Attempt::Done);
                }
            },
            reported => {
                let order = match checked_order(&tx, notified).await? {
                    Ok(order) => order,
                    Err(refused) => return finish(tx, notified.notify_id, refused).await.map(Attempt::Done),
                };
                let Reported::Paid { transaction_id, paid_at } = reported else {
                    let outcome = if end_pending(&tx, &order.out_trade_no, PayStatus::Failed, settle, now, false).await? {
                        Settlement::Failed
                    } else {
                        Settlement::Duplicate
                    };
                    return finish(tx, notified.notify_id, outcome).await.map(Attempt::Done);
                };
                match mark_paid(&tx, &order.out_trade_no, transaction_id, paid_at).await? {
                    Some(order) => order,
                    None => return finish(tx, notified.notify_id, Settlement::Duplicate).await.map(Attempt::Done),
                }
            }
        };
        if let Some(reason) = conflict {
            order::Entity::update_many()
                .col_expr(order::Column::RefundState, Expr::value(RefundState::Needed))
                .col_expr(order::Column::RefundReason, Expr::value(reason))
                .filter(order::Column::OutTradeNo.eq(&order.out_trade_no))
                .exec(&tx)
                .await?;
            return finish(tx, notified.notify_id, Settlement::RefundNeeded).await.map(Attempt::Done);
        }
        match settle.paid(&tx, &order, now).await? {
            Settled::Applied => finish(tx, notified.notify_id, Settlement::Paid).await.map(Attempt::Done),
            Settled::Conflict(reason) => {
                tx.rollback().await?;
                Ok(Attempt::Conflict(reason))
            }
        }
    }

    /// Mark an order paid or failed as `reported`, with no API writes: for history written directly
    /// (seeding), never for a live payment (that goes through [`PaymentStore::settle`]).
    pub async fn mark_reported(&self, out_trade_no: &str, reported: Reported<'_>) -> Result<(), StorageError> {
        let update = match reported {
            Reported::Paid { transaction_id, paid_at } => order::Entity::update_many()
                .col_expr(order::Column::Status, Expr::value(PayStatus::Paid))
                .col_expr(order::Column::TransactionId, Expr::value(transaction_id))
                .col_expr(order::Column::PaidAt, Expr::value(paid_at)),
            Reported::Failed => order::Entity::update_many().col_expr(order::Column::Status, Expr::value(PayStatus::Failed)),
        };
        update.filter(order::Column::OutTradeNo.eq(out_trade_no)).exec(self.0).await?;
        Ok(())
    }

    /// Pending orders of `api` whose time ran out before `now` (ms), oldest first — but not those
    /// whose last sweep failed until their next attempt is due, so a few orders WeChat Pay will
    /// not close never keep the others waiting.
    pub async fn expired_pending(&self, api: &str, now: i64, limit: u64) -> Result<Vec<PayOrder>, StorageError> {
        Ok(order::Entity::find()
            .filter(order::Column::Api.eq(api))
            .filter(order::Column::Status.eq(PayStatus::Pending))
            .filter(order::Column::ExpiresAt.lt(now))
            .filter(sea_orm::Condition::any().add(order::Column::SweepAfter.is_null()).add(order::Column::SweepAfter.lte(now)))
            .order_by_asc(order::Column::ExpiresAt)
            .limit(limit)
            .all(self.0)
            .await?
            .into_iter()
            .map(PayOrder::from)
            .collect())
    }

    /// A sweep of an expired order failed at `now` (ms): try it again later, twice as late each
    /// time (2, 4, 8 … minutes, at most a day).
    pub async fn postpone_sweep(&self, out_trade_no: &str, now: i64) -> Result<(), StorageError> {
        let Some(row) = order::Entity::find_by_id(out_trade_no.to_owned()).one(self.0).await? else {
            return Ok(());
        };
        let attempts = row.sweep_attempts.saturating_add(1);
        let wait = Ord::min(60_000_i64 << attempts.clamp(1, 11), 86_400_000);
        order::Entity::update_many()
            .col_expr(order::Column::SweepAttempts, Expr::value(attempts))
            .col_expr(order::Column::SweepAfter, Expr::value(now + wait))
            .filter(order::Column::OutTradeNo.eq(out_trade_no))
            .exec(self.0)
            .await?;
        Ok(())
    }

    /// Orders of `api` whose money must go back and was not asked for yet.
    pub async fn needing_refund(&self, api: &str, limit: u64) -> Result<Vec<PayOrder>, StorageError> {
        Ok(order::Entity::find()
            .filter(order::Column::Api.eq(api))
            .filter(order::Column::RefundState.eq(RefundState::Needed))
            .order_by_asc(order::Column::PaidAt)
            .limit(limit)
            .all(self.0)
            .await?
            .into_iter()
            .map(PayOrder::from)
            .collect())
    }

    /// The paid orders of `api` (a sandbox payment platform adopts them at start).
    pub async fn paid_of(&self, api: &str) -> Result<Vec<PayOrder>, StorageError> {
        Ok(order::Entity::find()
            .filter(order::Column::Api.eq(api))
            .filter(order::Column::Status.eq(PayStatus::Paid))
            .all(self.0)
            .await?
            .into_iter()
            .map(PayOrder::from)
            .collect())
    }

    /// Record a refund about to be asked for (before asking, so a retry reuses its
    /// `out_refund_no` and a notify arriving at once finds it), and mark the order's money back
    /// as under way. False: the order is not paid, has a refund under way, or has less than
    /// `refund_fen` left to give back.
    pub async fn start_refund(&self, out_trade_no: &str, out_refund_no: &str, refund_fen: i64, reason: &str, now: i64) -> Result<bool, StorageError> {
        let tx = write(self.0).await?;
        // One refund at a time per order, never past what was paid.
        let claimed = order::Entity::update_many()
            .col_expr(order::Column::RefundState, Expr::value(RefundState::Processing))
            .filter(order::Column::OutTradeNo.eq(out_trade_no))
            .filter(order::Column::Status.eq(PayStatus::Paid))
            .filter(order::Column::RefundState.ne(RefundState::Processing))
            .filter(Expr::col(order::Column::RefundedFen).add(refund_fen).lte(Expr::col(order::Column::AmountFen)))
            .exec(&tx)
            .await?;
        if !affected(claimed) {
            tx.rollback().await?;
            return Ok(false);
        }
        refund::Entity::insert(refund::ActiveModel {
            out_refund_no: Set(out_refund_no.to_owned()),
            out_trade_no: Set(out_trade_no.to_owned()),
            refund_fen: Set(refund_fen),
            reason: Set(reason.to_owned()),
            status: Set(RefundRowStatus::Processing),
            refund_id: Set(None),
            created_at: Set(now),
            finished_at: Set(None),
        })
        .exec_without_returning(&tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The refund `out_refund_no` of an order of `api`.
    pub async fn refund(&self, api: &str, out_refund_no: &str) -> Result<Option<RefundRow>, StorageError> {
        // The refund and its order each by its key, the API compared here: `out_trade_no IN
        // (the API's orders)` had SQLite list every order of the API for each lookup.
        let found = refund::Entity::find_by_id(out_refund_no.to_owned())
            .join(sea_orm::JoinType::InnerJoin, refund_of_order())
            .select_also(order::Entity)
            .one(self.0)
            .await?;
        Ok(found.filter(|(_, order)| order.as_ref().is_some_and(|order| order.api == api)).map(|(row, _)| RefundRow::from(row)))
    }

    /// Refunds of `api`'s orders still under way that were asked for before `before` (ms): the
    /// sweep queries them.
    pub async fn processing_refunds(&self, api: &str, before: i64, limit: u64) -> Result<Vec<RefundRow>, StorageError> {
        // Joined to each refund's order by the order's key, so the planner can start from the
        // refunds under way (`idx_pay_refund_processing`; SQLite does) rather than from every
        // order of the API (`IN` a list of them, before).
        Ok(refund::Entity::find()
            .join(sea_orm::JoinType::InnerJoin, refund_of_order())
            .filter(order::Column::Api.eq(api))
            .filter(refund::Column::Status.eq(RefundRowStatus::Processing))
            .filter(refund::Column::CreatedAt.lt(before))
            .order_by_asc(refund::Column::CreatedAt)
            .limit(limit)
            .all(self.0)
            .await?
            .into_iter()
            .map(RefundRow::from)
            .collect())
    }

    /// Record what WeChat Pay says of refund `out_refund_no` (from its answer, a notify or a
    /// query): a final status is written once (a later success overriding a failure), with the
    /// order's money-back state and refunded total; a refund closing runs the API's
    /// [`Settle::refund_closed`] in the same transaction. Answers whether this call changed
    /// anything.
    pub async fn refund_outcome(
        &self,
        out_refund_no: &str,
        status: RefundRowStatus,
        refund_id: Option<&str>,
        settle: &dyn Settle,
        now: i64,
    ) -> Result<bool, StorageError> {
        let tx = write(self.0).await?;
        let Some(row) = refund::Entity::find_by_id(out_refund_no.to_owned()).one(&tx).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        // A final outcome is written once; only a later SUCCESS (a notify or query after a refusal
        // or an ABNORMAL that an operator resolved) overrides a failure.
        let from: &[RefundRowStatus] = match status {
            RefundRowStatus::Success => &[RefundRowStatus::Processing, RefundRowStatus::Closed, RefundRowStatus::Abnormal],
            _ => &[RefundRowStatus::Processing],
        };
        let mut update = refund::Entity::update_many()
            .col_expr(refund::Column::Status, Expr::value(status))
            .filter(refund::Column::OutRefundNo.eq(out_refund_no))
            .filter(refund::Column::Status.is_in(from.iter().copied()));
        if status != RefundRowStatus::Processing {
            update = update.col_expr(refund::Column::FinishedAt, Expr::value(now));
        }
        if let Some(refund_id) = refund_id {
            update = update.col_expr(refund::Column::RefundId, Expr::value(refund_id));
        }
        let changed = affected(update.exec(&tx).await?) && status != RefundRowStatus::Processing;
        if changed {
            let (mut state, refunded) = match status {
                RefundRowStatus::Success => (RefundState::Refunded, row.refund_fen),
                _ => (RefundState::Failed, 0),
            };
            // A late outcome of an earlier refund leaves the order's refund under way as it is.
            let another_under_way = refund::Entity::find()
                .filter(refund::Column::OutTradeNo.eq(&row.out_trade_no))
                .filter(refund::Column::Status.eq(RefundRowStatus::Processing))
                .filter(refund::Column::OutRefundNo.ne(out_refund_no))
                .one(&tx)
                .await?
                .is_some();
            if another_under_way {
                state = RefundState::Processing;
            }
            order::Entity::update_many()
                .col_expr(order::Column::RefundState, Expr::value(state))
                .col_expr(order::Column::RefundedFen, Expr::col(order::Column::RefundedFen).add(refunded))
                .filter(order::Column::OutTradeNo.eq(&row.out_trade_no))
                .exec(&tx)
                .await?;
            let was = row.status;
            let settled = RefundRow { status, finished_at: Some(now), refund_id: refund_id.map(str::to_owned).or(row.refund_id.clone()), ..RefundRow::from(row) };
            match (was, status) {
                (RefundRowStatus::Processing, RefundRowStatus::Closed) => settle.refund_closed(&tx, &settled).await?,
                (RefundRowStatus::Closed, RefundRowStatus::Success) => settle.closed_refund_succeeded(&tx, &settled).await?,
                _ => {}
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Delete notification records received before `before` (ms): past WeChat's 24-hour retry
    /// ladder they dedupe nothing; the orders keep what they settled.
    pub async fn prune_notifications(&self, before: i64) -> Result<u64, StorageError> {
        Ok(notification::Entity::delete_many().filter(notification::Column::ReceivedAt.lt(before)).exec(self.0).await?.rows_affected)
    }
}

/// A refund's order (`pay_refund.out_trade_no = pay_order.out_trade_no`): what scopes a refund,
/// which names only its order, to one API.
fn refund_of_order() -> sea_orm::RelationDef {
    refund::Entity::belongs_to(order::Entity).from(refund::Column::OutTradeNo).to(order::Column::OutTradeNo).into()
}

/// End a pending order unpaid and release the API's rows, inside `tx`; false when not pending.
/// The order is changed and read back in one statement (`UPDATE … RETURNING`).
async fn end_pending(
    tx: &DatabaseTransaction,
    out_trade_no: &str,
    status: PayStatus,
    settle: &dyn Settle,
    now: i64,
    unplaced_only: bool,
) -> Result<bool, StorageError> {
    let mut update = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(status))
        .col_expr(order::Column::ClosedAt, Expr::value(now))
        .filter(order::Column::OutTradeNo.eq(out_trade_no))
        .filter(order::Column::Status.eq(PayStatus::Pending));
    if unplaced_only {
        update = update.filter(order::Column::PrepayId.is_null());
    }
    let ended = update.exec_with_returning(tx).await?;
    let Some(order) = ended.into_iter().next().map(PayOrder::from) else {
        return Ok(false);
    };
    settle.released(tx, &order).await?;
    Ok(true)
}

/// The order a report names, if it may settle it: `Err` with the report's answer when there is no
/// such order of the report's API ([`Settlement::UnknownOrder`]) or its amount is another
/// ([`Settlement::AmountMismatch`]). Read by its key alone, the API compared here: with `api =
/// $2` beside the key, PostgreSQL could keep a plan it made while the table was nearly empty —
/// the `(api, refund_state)` index, reading every order of the API for each notify (payment
/// flows by hand fell from about 300 to 210 a second within 45 s as the table grew).
async fn checked_order(tx: &DatabaseTransaction, notified: &Notified<'_>) -> Result<Result<PayOrder, Settlement>, StorageError> {
    let order = order::Entity::find_by_id(notified.out_trade_no.to_owned()).one(tx).await?.filter(|row| row.api == notified.api);
    Ok(match order {
        None => Err(Settlement::UnknownOrder),
        Some(order) if order.amount_fen != notified.amount_fen => Err(Settlement::AmountMismatch),
        Some(order) => Ok(PayOrder::from(order)),
    })
}

/// Mark order `out_trade_no` paid (pending — or failed or closed and paid after all, a late
/// payment: the money is taken) as WeChat Pay's `transaction_id` at `paid_at` (ms), whichever
/// API's it is; the order as marked, or `None` when it is paid already or no order. One
/// statement (`UPDATE … RETURNING`), by the key alone as in [`checked_order`].
async fn mark_paid(tx: &DatabaseTransaction, out_trade_no: &str, transaction_id: &str, paid_at: i64) -> Result<Option<PayOrder>, StorageError> {
    let marked = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(PayStatus::Paid))
        .col_expr(order::Column::TransactionId, Expr::value(transaction_id))
        .col_expr(order::Column::PaidAt, Expr::value(paid_at))
        .filter(order::Column::OutTradeNo.eq(out_trade_no))
        .filter(order::Column::Status.ne(PayStatus::Paid))
        .exec_with_returning(tx)
        .await?;
    Ok(marked.into_iter().next().map(PayOrder::from))
}

/// Write the notification's outcome and commit (a payment's notification was recorded paid:
/// one statement fewer on the common path).
async fn finish(tx: DatabaseTransaction, notify_id: &str, outcome: Settlement) -> Result<Settlement, StorageError> {
    if outcome != Settlement::Paid {
        notification::Entity::update_many()
            .col_expr(notification::Column::Outcome, Expr::value(outcome.label()))
            .filter(notification::Column::Id.eq(notify_id))
            .exec(&tx)
            .await?;
    }
    tx.commit().await?;
    Ok(outcome)
}
