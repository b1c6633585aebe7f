//! Payments, shared by every API that takes money: one order table that each API's own rows point
//! at, JSAPI pay parameters for `wx.requestPayment` or a NATIVE (scan-to-pay) `code_url` (the
//! order placed with WeChat Pay, its answer reused while valid), the order's status with an order query when the notify is late, notifies
//! (verify → dedupe → the API settles in the same transaction), closing expired orders, refunds
//! and their notifies. An API supplies its [`Settle`] (its own writes) and its order rows.
//!
//! Built on domain types: each API renders [`PayParams`], [`PayOrder`] and [`NotifyOutcome`] in
//! its own contract.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use chrono::DateTime;

use crate::clock::Clock;
use crate::providers::ProviderError;
use crate::providers::wechat_pay::{
    NotifyError, NotifyEvent, PayParams, PrepayRequest, RefundRequest, RefundStatus, TradeState, Transaction, WechatPay,
};
use crate::storage::payments::{
    NewPayOrder, Notified, PayOrder, PayStatus, RefundRow, RefundRowStatus, Reported, Settle, Settlement, TradeType,
};
use crate::storage::{Db, StorageError};

/// A notify's outcome, for the API to answer in its own ack format (v3 JSON, v2 XML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Applied, or already applied before: acknowledge (WeChat stops retrying).
    Applied,
    /// The signature, serial or timestamp does not verify: refuse with 401 (WeChat retries; a
    /// forger gets nothing).
    BadSignature,
    /// The body is no notify or does not decrypt: refuse with 400.
    Unreadable,
    /// Verified, but not ours to apply (unknown order, another merchant, another amount):
    /// refuse with 400. The text says which, for the ack's message.
    Refused(&'static str),
    /// Our fault (storage): refuse with 500, WeChat retries.
    Failed,
}

impl NotifyOutcome {
    /// The HTTP status WeChat Pay is answered with: 200 (acknowledged), 401 (signature), 400
    /// (unreadable or refused), 500 (our fault: WeChat retries).
    pub fn status(self) -> u16 {
        match self {
            NotifyOutcome::Applied => 200,
            NotifyOutcome::BadSignature => 401,
            NotifyOutcome::Unreadable | NotifyOutcome::Refused(_) => 400,
            NotifyOutcome::Failed => 500,
        }
    }

    /// The ack's `message` (v3 `{code, message}`, v2 `return_msg`).
    pub fn message(self) -> &'static str {
        match self {
            NotifyOutcome::Applied => "OK",
            NotifyOutcome::BadSignature => "签名验证失败",
            NotifyOutcome::Unreadable => "通知报文无法解析或解密",
            NotifyOutcome::Refused(why) => why,
            NotifyOutcome::Failed => "服务器内部错误",
        }
    }
}

/// Why a payment step failed.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// WeChat Pay refused or could not be reached (detail logged); the API answers its
    /// "payment failed, try again" error.
    #[error("WeChat Pay: {0}")]
    Provider(#[from] ProviderError),
    /// The merchant needs the payer's openid (real JSAPI) and the order has none.
    #[error("the payer's openid is needed")]
    PayerNeeded,
    /// The order cannot be paid any more (paid, failed, closed or expired).
    #[error("the order can no longer be paid")]
    NotPayable,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What one sweep did (see [`Payments::sweep`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired orders closed.
    pub closed: usize,
    /// Expired orders found paid after all (a notify that never came).
    pub found_paid: usize,
    /// Refunds asked for.
    pub refunds_started: usize,
    /// Refunds whose outcome was learnt by a query.
    pub refunds_settled: usize,
}

/// What [`Payments::cancel`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// Closed with WeChat Pay and ended `Closed`; the API released it.
    Cancelled,
    /// WeChat Pay had it paid: now settled as paid.
    Paid,
    /// It was no longer pending.
    NotPending,
}

/// What ending an expired pending order came to ([`Payments::expire`]).
enum Expiry {
    /// Closed now, by this call.
    Closed,
    /// Paid after all, and now settled so.
    Paid,
    /// Ended by another request or instance meanwhile.
    Ended,
    /// Left pending for the sweep to try again.
    Postponed,
}

/// What asking WeChat Pay to close an order came to.
enum Closing {
    /// WeChat Pay closed it, or never had it.
    Closed,
    /// It was paid, and is now settled so.
    Paid,
    /// Still open at WeChat Pay: the close failed.
    Open(ProviderError),
    /// Paid at WeChat Pay (`ORDERPAID`, this error), not settled here: the query failed or
    /// found nothing to settle (logged).
    PaidUnsettled(ProviderError),
}

/// One API's payments with one merchant.
pub struct Payments {
    /// The API, or for an API with several merchants (o2o's operators) the API and the
    /// merchant (`o2o:3`): the scope of its orders in `pay_order.api`, so each merchant's sweep,
    /// notifies and refunds see only its own orders.
    api: Arc<str>,
    pay: Arc<dyn WechatPay>,
    settle: Arc<dyn Settle>,
    notify_url: String,
    db: Db,
    clock: Clock,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments").field("api", &self.api).field("notify_url", &self.notify_url).finish_non_exhaustive()
    }
}

/// How long a pending order waits for its notify before a status read asks WeChat Pay.
const NOTIFY_GRACE: Duration = Duration::from_secs(5);

/// How long after WeChat Pay answered a placing its prepay_id or code_url is answered again
/// rather than the order placed anew. Both are valid 2 hours ([`crate::storage::payments::Prepay`]);
/// one answered at this age still leaves the payer 30 minutes to pay with it.
pub const PREPAY_REUSE: Duration = Duration::from_secs(90 * 60);

impl Payments {
    /// API `api`'s payments through `pay`; WeChat Pay sends notifies (payments and refunds) to
    /// `notify_url`; `settle` applies the API's own writes.
    pub fn new(api: impl Into<Arc<str>>, pay: Arc<dyn WechatPay>, settle: Arc<dyn Settle>, notify_url: String, db: Db, clock: Clock) -> Payments {
        Payments { api: api.into(), pay, settle, notify_url, db, clock }
    }

    /// A new pending order of this API (for the API's store to insert beside its own rows).
    #[allow(clippy::too_many_arguments)]
    pub fn new_order<'a>(
        &'a self,
        out_trade_no: &'a str,
        user_id: Option<&'a str>,
        payer_openid: Option<&'a str>,
        description: &'a str,
        amount_fen: i64,
        now: i64,
        ttl: Duration,
    ) -> NewPayOrder<'a> {
        let merchant = self.pay.merchant();
        NewPayOrder {
            out_trade_no,
            api: &self.api,
            appid: &merchant.appid,
            mchid: &merchant.mchid,
            user_id,
            payer_openid,
            description,
            amount_fen,
            created_at: now,
            expires_at: now + ttl.as_millis() as i64,
        }
    }

    /// `wx.requestPayment` parameters for a pending order, freshly signed. The order is placed
    /// with WeChat Pay unless its latest placing, as `order` (the caller's read of it) records
    /// it, was JSAPI, for this payer, less than [`PREPAY_REUSE`] ago: that prepay_id is signed
    /// again (WeChat would answer the same number and amount with a fresh one; asking again
    /// costs a round trip to WeChat Pay and a signature, and a client retrying its pay button
    /// would ask for each tap). A reused prepay_id is not checked against the database again:
    /// an order paid or closed since the caller read it is answered parameters WeChat Pay then
    /// refuses, as it would have had they been placed a moment earlier, and one placed again
    /// since (another request's placing) is answered the prepay_id that placing replaced. Another
    /// payer or trade type is placed again, which WeChat Pay refuses (OUT_TRADE_NO_USED; v3:
    /// INVALID_REQUEST): one out_trade_no is placed one way, for one payer. An order whose
    /// placing was interrupted has no prepay recorded, so a retry places it. Only when WeChat
    /// Pay refuses for good an order with no placing stored does the order fail (and the API's
    /// settle release what it held); a timeout, or a refusal of an order placed before (as the
    /// caller read it, or as stored when it would fail), leaves it pending.
    pub async fn pay_params(&self, order: &PayOrder) -> Result<PayParams, PayError> {
        let prepay_id = self.place(order, TradeType::Jsapi).await?;
        Ok(self.pay.pay_params(&prepay_id).await?)
    }

    /// [`Payments::pay_params`] for an API whose order outlives a failed payment attempt (o2o's
    /// stays 未支付 when the payer's bank refuses, PAYERROR, until it lapses; see
    /// `PaymentStore::reopen_failed` for what the API's settle must do): an order that failed
    /// after it was placed with WeChat Pay and has not expired is pending again first (a
    /// conditional write), then placed again (never its earlier prepay: the reopen leaves it
    /// undescribed, and placing is how a closed order is found out; a placing by a concurrent
    /// request after the reopen is reused like any other) and signed. Should WeChat Pay refuse to place it
    /// for good (it had closed the order), the order fails again and this is
    /// [`PayError::NotPayable`]. Any other order is answered as `pay_params` answers it.
    pub async fn pay_params_after_failure(&self, order: &PayOrder) -> Result<PayParams, PayError> {
        if order.status != PayStatus::Failed || order.prepay.is_none() {
            return self.pay_params(order).await;
        }
        let payments = self.db.payments();
        payments.reopen_failed(&self.api, &order.out_trade_no, self.clock.now_ms()).await?;
        // Reopened here or by a concurrent request, or not reopenable (expired, closed): as stored.
        let mut current = payments.get(&order.out_trade_no).await?.ok_or(PayError::NotPayable)?;
        current.payer_openid = order.payer_openid.clone().or(current.payer_openid);
        match self.pay_params(&current).await {
            Err(PayError::Provider(error)) if is_final(&error) && !placed_before(&error) => {
                tracing::warn!(api = &*self.api, out_trade_no = order.out_trade_no, %error, "a reopened order cannot be placed again: failed");
                payments.end_unpaid(&order.out_trade_no, PayStatus::Failed, self.settle.as_ref(), self.clock.now_ms()).await?;
                Err(PayError::NotPayable)
            }
            answer => answer,
        }
    }

    /// The NATIVE (scan-to-pay) `code_url` of a pending order, `weixin://wxpay/bizpayurl?pr=…`,
    /// to show as a QR code: placed with WeChat Pay unless its latest placing was NATIVE less
    /// than [`PREPAY_REUSE`] ago, like [`Payments::pay_params`] (same checks and failure
    /// handling), but with no payer openid needed (the payer is whoever scans it). It is valid 2
    /// hours and never past the order's expiry. The code_url is stored as
    /// the order's prepay (`PayOrder::prepay`): it marks the order as placed, so a late notify is
    /// looked up with an order query and an expired order is closed with WeChat Pay.
    pub async fn native_params(&self, order: &PayOrder) -> Result<String, PayError> {
        self.place(order, TradeType::Native).await
    }

    /// Place a pending, unexpired order with WeChat Pay as `trade` and store what it answers (the
    /// prepay_id, or the code_url) as the order's prepay; answer it. The order's recorded prepay
    /// is answered instead when its placing was `trade`, for the same payer, less than
    /// [`PREPAY_REUSE`] ago (an undescribed placing, see [`crate::storage::payments::Prepay`], never is). A final refusal of an order with no placing
    /// stored fails it ([`crate::storage::payments::PaymentStore::fail_unplaced`]; the API's
    /// settle releases what it held).
    async fn place(&self, order: &PayOrder, trade: TradeType) -> Result<String, PayError> {
        if order.status != PayStatus::Pending || order.expires_at <= self.clock.now_ms() {
            return Err(PayError::NotPayable);
        }
        if trade == TradeType::Jsapi && self.pay.needs_payer() && order.payer_openid.is_none() {
            return Err(PayError::PayerNeeded);
        }
        // NATIVE names no payer: whoever scans pays.
        let payer_openid = if trade == TradeType::Jsapi { order.payer_openid.as_deref() } else { None };
        if let Some(prepay) = &order.prepay
            && prepay.trade == Some(trade)
            && prepay.payer_openid.as_deref() == payer_openid
            && self.clock.now_ms() < prepay.at + PREPAY_REUSE.as_millis() as i64
        {
            return Ok(prepay.id.clone());
        }
        let request = PrepayRequest {
            out_trade_no: order.out_trade_no.clone(),
            description: order.description.clone(),
            amount_fen: order.amount_fen,
            payer_openid: payer_openid.map(str::to_owned),
            notify_url: self.notify_url.clone(),
            time_expire: DateTime::from_timestamp_millis(order.expires_at).unwrap_or_default(),
        };
        let payments = self.db.payments();
        let placed = match trade {
            TradeType::Jsapi => self.pay.jsapi_prepay(&request).await,
            TradeType::Native => self.pay.native_prepay(&request).await,
        };
        match placed {
            Ok(prepay) => {
                let now = self.clock.now_ms();
                if !payments.set_prepay(&order.out_trade_no, &prepay, trade, payer_openid, now).await? {
                    // It failed or closed meanwhile (another request, a notify, the sweep).
                    return Err(PayError::NotPayable);
                }
                Ok(prepay)
            }
            Err(error) => {
                tracing::warn!(api = &*self.api, out_trade_no = order.out_trade_no, %error, "WeChat Pay did not place the order");
                // Only an order with no placing stored fails here: the caller's read may predate
                // another request's placing, and OUT_TRADE_NO_USED (placed before with other
                // parameters) says WeChat Pay has it. v3 words that refusal INVALID_REQUEST, as
                // it words requests it would never take, so the failing write itself requires
                // that no placing is stored: of it and the other request's `set_prepay`, the
                // first decides (a placing accepted but not yet stored then finds the order
                // failed and answers NotPayable, handing out nothing).
                if order.prepay.is_none() && is_final(&error) && !placed_before(&error) {
                    payments.fail_unplaced(&order.out_trade_no, self.settle.as_ref(), self.clock.now_ms()).await?;
                }
                Err(error.into())
            }
        }
    }

    /// The order as it stands, asking WeChat Pay when it is still pending some seconds after it
    /// was placed (a late or lost notify) — at most once every [`NOTIFY_GRACE`] per order, on
    /// every instance together: a payment found that way settles exactly as its
    /// notify would (and the notify, when it comes, is a duplicate). A failed query is logged
    /// and the stored state answered. Pending past its expiry, it is ended now as the sweep
    /// would end it (closed, or found paid; WeChat Pay asked at most once a grace period here
    /// too), so that a reader does not see a lapsed order payable until the next sweep.
    pub async fn current(self: &Arc<Self>, out_trade_no: &str) -> Result<Option<PayOrder>, StorageError> {
        let payments = self.db.payments();
        let Some(order) = payments.get(out_trade_no).await? else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        if order.status == PayStatus::Pending && order.expires_at < now {
            if !payments.claim_query(out_trade_no, now, NOTIFY_GRACE.as_millis() as i64).await? {
                return Ok(Some(order));
            }
            return match self.expire(&order, now).await? {
                Expiry::Postponed => Ok(Some(order)),
                Expiry::Closed | Expiry::Paid | Expiry::Ended => payments.get(out_trade_no).await,
            };
        }
        let asked_late = order.created_at + NOTIFY_GRACE.as_millis() as i64 <= now;
        if order.status != PayStatus::Pending || order.prepay.is_none() || !asked_late {
            return Ok(Some(order));
        }
        // A client polling every second asks WeChat Pay once per grace period, not per poll.
        if !payments.claim_query(out_trade_no, now, NOTIFY_GRACE.as_millis() as i64).await? {
            return Ok(Some(order));
        }
        match self.pay.query(out_trade_no).await {
            Ok(transaction) => {
                self.settle_query(&transaction).await?;
                payments.get(out_trade_no).await
            }
            Err(error) => {
                tracing::warn!(api = &*self.api, out_trade_no, %error, "order query failed; answering the stored state");
                Ok(Some(order))
            }
        }
    }

    /// Settle what an order query found; nothing for an order still unpaid (or in a state this
    /// version does not act on).
    async fn settle_query(self: &Arc<Self>, transaction: &Transaction) -> Result<Option<Settlement>, StorageError> {
        let Some(reported) = reported(transaction, self.clock.now_ms()) else {
            return Ok(None);
        };
        let id = match reported {
            Reported::Paid { transaction_id, .. } => format!("query:{transaction_id}"),
            Reported::Failed => format!("query:{}:failed", transaction.out_trade_no),
        };
        let notified = Notified {
            notify_id: &id,
            api: &self.api,
            event_type: "QUERY",
            out_trade_no: &transaction.out_trade_no,
            amount_fen: transaction.amount_total_fen,
            reported,
        };
        let settlement = self.db.payments().settle(&notified, self.settle.as_ref(), self.clock.now_ms()).await?;
        self.after_settle(&transaction.out_trade_no, settlement).await;
        Ok(Some(settlement))
    }

    /// A WeChat Pay notify (payment or refund), from its headers and the raw body exactly as
    /// received: verified (signature, serial, timestamp), decrypted, checked against our merchant
    /// and the order's amount, and applied in one transaction with the API's settle.
    pub async fn notify(self: &Arc<Self>, headers: &HeaderMap, raw_body: &[u8]) -> NotifyOutcome {
        let now = self.clock.now();
        let notification = match self.pay.verify_notify(headers, raw_body, now).await {
            Ok(notification) => notification,
            Err(NotifyError::Signature(reason)) => {
                tracing::warn!(api = &*self.api, reason, "notify refused: signature");
                return NotifyOutcome::BadSignature;
            }
            Err(NotifyError::Body(reason)) => {
                tracing::warn!(api = &*self.api, reason, "notify refused: body");
                return NotifyOutcome::Unreadable;
            }
            Err(NotifyError::Unavailable(reason)) => {
                tracing::error!(api = &*self.api, reason, "notify not verified: keys unavailable");
                return NotifyOutcome::Failed;
            }
        };
        let merchant = self.pay.merchant();
        let result = match &notification.event {
            NotifyEvent::Transaction(transaction) => {
                if transaction.appid != merchant.appid || transaction.mchid != merchant.mchid {
                    tracing::error!(api = &*self.api, out_trade_no = transaction.out_trade_no, "notify for another merchant");
                    return NotifyOutcome::Refused("商户信息不一致");
                }
                if transaction.trade_state == TradeState::Success && transaction.transaction_id.is_none() {
                    return NotifyOutcome::Unreadable;
                }
                let Some(reported) = reported(transaction, now.timestamp_millis()) else {
                    // Nothing this version acts on (NOTPAY, USERPAYING, REFUND, a new state):
                    // acknowledged, the order unchanged.
                    tracing::warn!(api = &*self.api, out_trade_no = transaction.out_trade_no, state = transaction.trade_state.as_str(), "notify with nothing to settle");
                    return NotifyOutcome::Applied;
                };
                let notified = Notified {
                    notify_id: &notification.id,
                    api: &self.api,
                    event_type: &notification.event_type,
                    out_trade_no: &transaction.out_trade_no,
                    amount_fen: transaction.amount_total_fen,
                    reported,
                };
                let settled = self.db.payments().settle(&notified, self.settle.as_ref(), now.timestamp_millis()).await;
                settled.map(|settlement| (transaction.out_trade_no.clone(), Some(settlement)))
            }
            NotifyEvent::Refund(notice) => {
                if notice.mchid != merchant.mchid {
                    tracing::error!(api = &*self.api, out_refund_no = notice.out_refund_no, "refund notify for another merchant");
                    return NotifyOutcome::Refused("商户信息不一致");
                }
                match self.db.payments().refund(&self.api, &notice.out_refund_no).await {
                    Ok(Some(_)) => self
                        .record_refund(&notice.out_refund_no, notice.status, Some(&notice.refund_id))
                        .await
                        .map(|()| (notice.out_trade_no.clone(), None)),
                    Ok(None) => {
                        tracing::error!(api = &*self.api, out_refund_no = notice.out_refund_no, "notify for an unknown refund");
                        return NotifyOutcome::Refused("退款单不存在");
                    }
                    Err(error) => Err(error),
                }
            }
        };
        match result {
            Ok((out_trade_no, Some(settlement))) => {
                self.after_settle(&out_trade_no, settlement).await;
                match settlement {
                    Settlement::UnknownOrder => NotifyOutcome::Refused("订单不存在"),
                    Settlement::AmountMismatch => NotifyOutcome::Refused("金额不一致"),
                    Settlement::Paid | Settlement::Failed | Settlement::Duplicate | Settlement::RefundNeeded => NotifyOutcome::Applied,
                }
            }
            Ok((_, None)) => NotifyOutcome::Applied,
            Err(error) => {
                tracing::error!(api = &*self.api, %error, "notify not applied");
                NotifyOutcome::Failed
            }
        }
    }

    /// Log what a settlement did, and start giving back money the API could not apply — in the
    /// background, so that WeChat's notify is answered at once (the sweep asks again if this
    /// attempt fails).
    async fn after_settle(self: &Arc<Self>, out_trade_no: &str, settlement: Settlement) {
        match settlement {
            Settlement::Paid => tracing::info!(api = &*self.api, out_trade_no, "order paid"),
            Settlement::Failed => tracing::info!(api = &*self.api, out_trade_no, "order failed"),
            Settlement::Duplicate => {}
            Settlement::UnknownOrder => tracing::error!(api = &*self.api, out_trade_no, "payment for an unknown order"),
            Settlement::AmountMismatch => tracing::error!(api = &*self.api, out_trade_no, "payment amount differs from the order"),
            Settlement::RefundNeeded => {
                tracing::error!(api = &*self.api, out_trade_no, "paid order the API could not apply: refunding");
                let this = self.clone();
                let out_trade_no = out_trade_no.to_owned();
                tokio::spawn(async move {
                    match this.refund_needed(&out_trade_no).await {
                        // WeChat Pay's answer is logged by `ask_refund`: a final refusal as an
                        // error (the refund recorded closed), one to ask again (busy, or the
                        // payment still being delivered) as a warning (the refund stays under
                        // way, and the sweep asks again).
                        Ok(Some(_)) | Err(PayError::Provider(_)) => {}
                        // The sweep, say, started this order's refund first.
                        Ok(None) => tracing::warn!(api = &*this.api, out_trade_no, "no refund started here: the order is gone, or has no refund left to start"),
                        // Recorded as needing a refund, or as a refund under way: the sweep
                        // asks again.
                        Err(error) => tracing::error!(api = &*this.api, out_trade_no, %error, "refund not started yet"),
                    }
                });
            }
        }
    }

    /// Give back the whole of an order marked as needing a refund.
    async fn refund_needed(self: &Arc<Self>, out_trade_no: &str) -> Result<Option<RefundRow>, PayError> {
        let Some(order) = self.db.payments().get(out_trade_no).await? else {
            return Ok(None);
        };
        let reason = order.refund_reason.clone().unwrap_or_else(|| "订单无法履行".into());
        self.refund(&order, order.amount_fen - order.refunded_fen, &reason).await
    }

    /// Refund `refund_fen` of a paid order (the whole amount or a part; several parts may follow
    /// one another, never more than was paid): recorded first (so a retry reuses its number and
    /// the notify finds it), then asked of WeChat Pay; its outcome comes by notify, answer or
    /// query. `None`: the order has no such refund to start (not paid, a refund under way, or
    /// more than what is left).
    pub async fn refund(&self, order: &PayOrder, refund_fen: i64, reason: &str) -> Result<Option<RefundRow>, PayError> {
        let out_refund_no = refund_number(&order.out_trade_no);
        let payments = self.db.payments();
        if !payments.start_refund(&order.out_trade_no, &out_refund_no, refund_fen, reason, self.clock.now_ms()).await? {
            return Ok(None);
        }
        self.ask_refund(order, &out_refund_no, refund_fen, reason).await?;
        Ok(payments.refund(&self.api, &out_refund_no).await?)
    }

    /// Ask WeChat Pay for a refund the API recorded itself, in its own transaction with its own
    /// writes (`PaymentStore::start_refund` under a [`refund_number`]): as [`Payments::refund`]
    /// after the recording. Should the process stop before asking, the sweep finds the refund
    /// still processing and asks under the same number. `None`: no such refund of this API.
    pub async fn ask_recorded_refund(&self, out_refund_no: &str) -> Result<Option<RefundRow>, PayError> {
        let payments = self.db.payments();
        let Some(refund) = payments.refund(&self.api, out_refund_no).await? else {
            return Ok(None);
        };
        let Some(order) = payments.get(&refund.out_trade_no).await? else {
            return Ok(None);
        };
        self.ask_refund(&order, out_refund_no, refund.refund_fen, &refund.reason).await?;
        Ok(payments.refund(&self.api, out_refund_no).await?)
    }

    /// The refund `out_refund_no` of this API's orders, as it stands.
    pub async fn refund_row(&self, out_refund_no: &str) -> Result<Option<RefundRow>, StorageError> {
        self.db.payments().refund(&self.api, out_refund_no).await
    }

    async fn ask_refund(&self, order: &PayOrder, out_refund_no: &str, refund_fen: i64, reason: &str) -> Result<(), PayError> {
        let request = RefundRequest {
            out_trade_no: order.out_trade_no.clone(),
            out_refund_no: out_refund_no.to_owned(),
            reason: Some(reason.chars().take(80).collect()),
            refund_fen,
            total_fen: order.amount_fen,
            notify_url: self.notify_url.clone(),
        };
        match self.pay.refund(&request).await {
            Ok(refund) => Ok(self.record_refund(out_refund_no, refund.status, Some(&refund.refund_id)).await?),
            Err(error) if is_final(&error) => {
                // WeChat Pay said no for good (the order cannot be refunded, a wrong amount, …):
                // recorded as closed. The API's `Settle::refund_closed` puts back what the refund
                // took (o2o: the order and its codes); otherwise the order's money-back state
                // (failed) tells an operator to act.
                tracing::error!(api = &*self.api, out_refund_no, %error, "refund refused by WeChat Pay");
                self.record_refund(out_refund_no, RefundStatus::Closed, None).await?;
                Err(error.into())
            }
            Err(error) => {
                // Busy, rate-limited, not enough balance yet, or no answer: still `processing`
                // under its number; the sweep asks again with the same number.
                tracing::warn!(api = &*self.api, out_refund_no, %error, "refund not accepted yet; asking again later");
                Err(error.into())
            }
        }
    }

    async fn record_refund(&self, out_refund_no: &str, status: RefundStatus, refund_id: Option<&str>) -> Result<(), StorageError> {
        let status = match status {
            RefundStatus::Success => RefundRowStatus::Success,
            RefundStatus::Processing => RefundRowStatus::Processing,
            RefundStatus::Closed => RefundRowStatus::Closed,
            RefundStatus::Abnormal => RefundRowStatus::Abnormal,
        };
        if self.db.payments().refund_outcome(out_refund_no, status, refund_id, self.settle.as_ref(), self.clock.now_ms()).await? {
            tracing::info!(api = &*self.api, out_refund_no, status = status.as_str(), "refund finished");
        }
        Ok(())
    }

    /// Close a pending order before it expires, because its user gave it up (heating's
    /// `payment_create` for another choice of bills): closed with WeChat Pay (asked whether or
    /// not a prepay was recorded), so it can no longer be paid, then ended `Closed` and
    /// released by the API's `Settle`, in one conditional write. [`Cancelled::Paid`]: WeChat Pay
    /// says it was paid meanwhile, and it is now settled as paid. [`Cancelled::NotPending`]: it
    /// had already ended (paid, failed, closed by another request). WeChat Pay unreachable or
    /// refusing the close: [`PayError::Provider`], the order unchanged.
    pub async fn cancel(self: &Arc<Self>, order: &PayOrder) -> Result<Cancelled, PayError> {
        // Asked even when no prepay was recorded: a concurrent request may be placing it now.
        match self.close_with_wechat(order, true).await? {
            Closing::Closed => {
                let payments = self.db.payments();
                let ended = payments.end_unpaid(&order.out_trade_no, PayStatus::Closed, self.settle.as_ref(), self.clock.now_ms()).await?;
                // A placing under way when WeChat Pay was asked (the number unknown to it then)
                // may have recorded its prepay before the order ended: closed again, so the pay
                // parameters that request answered cannot pay it.
                if ended && let Some(now) = payments.get(&order.out_trade_no).await?
                    && now.prepay.is_some() && now.prepay != order.prepay
                {
                    // Paid in that moment: settled as a late payment (the API then refunds what
                    // it can no longer apply).
                    match self.close_with_wechat(&now, true).await? {
                        Closing::Closed | Closing::Paid | Closing::PaidUnsettled(_) => {}
                        Closing::Open(error) => {
                            tracing::error!(api = &*self.api, out_trade_no = order.out_trade_no, %error, "a cancelled order placed meanwhile is still open with WeChat Pay");
                        }
                    }
                }
                Ok(if ended { Cancelled::Cancelled } else { Cancelled::NotPending })
            }
            Closing::Paid => Ok(Cancelled::Paid),
            Closing::Open(error) | Closing::PaidUnsettled(error) => Err(PayError::Provider(error)),
        }
    }

    /// Ask WeChat Pay to close `order` (pending, or ended here a moment ago: `cancel`) — unless
    /// it was never placed there and `unplaced_too` is false (`ORDER_NOT_EXIST`: its placing
    /// never reached WeChat).
    /// `ORDERPAID`: the order is queried and settled as paid, [`Closing::Paid`] — or, when the
    /// query fails or finds nothing to settle, logged and [`Closing::PaidUnsettled`]. Our own
    /// rows are not touched when it closed.
    async fn close_with_wechat(self: &Arc<Self>, order: &PayOrder, unplaced_too: bool) -> Result<Closing, StorageError> {
        if order.prepay.is_none() && !unplaced_too {
            return Ok(Closing::Closed);
        }
        match self.pay.close(&order.out_trade_no).await {
            Ok(()) => Ok(Closing::Closed),
            Err(ProviderError::Vendor { code, .. }) if code == "ORDER_NOT_EXIST" => Ok(Closing::Closed),
            Err(paid @ ProviderError::Vendor { .. }) if matches!(&paid, ProviderError::Vendor { code, .. } if code == "ORDERPAID") => {
                match self.pay.query(&order.out_trade_no).await {
                    Ok(transaction) if self.settle_query(&transaction).await?.is_some() => Ok(Closing::Paid),
                    outcome => {
                        let detail = outcome.err().map(|e| e.to_string()).unwrap_or_else(|| "nothing to settle".into());
                        tracing::error!(api = &*self.api, out_trade_no = order.out_trade_no, detail, "paid per WeChat Pay, but not settled");
                        Ok(Closing::PaidUnsettled(paid))
                    }
                }
            }
            Err(error) => Ok(Closing::Open(error)),
        }
    }

    /// End `order`, pending past its expiry (`now`, ms): closed with WeChat Pay (unless never
    /// placed there), then `Closed` and released by the API's `Settle` in one conditional write
    /// ([`Expiry::Ended`]: another request or instance ended it first). Found paid after all:
    /// settled so. WeChat Pay unreachable, or paid there but not settled here: the sweep tries
    /// again later ([`Expiry::Postponed`]).
    async fn expire(self: &Arc<Self>, order: &PayOrder, now: i64) -> Result<Expiry, StorageError> {
        let payments = self.db.payments();
        Ok(match self.close_with_wechat(order, false).await? {
            Closing::Closed => {
                if payments.end_unpaid(&order.out_trade_no, PayStatus::Closed, self.settle.as_ref(), now).await? {
                    Expiry::Closed
                } else {
                    Expiry::Ended
                }
            }
            Closing::Paid => Expiry::Paid,
            Closing::PaidUnsettled(_) => {
                payments.postpone_sweep(&order.out_trade_no, now).await?;
                Expiry::Postponed
            }
            Closing::Open(error) => {
                tracing::warn!(api = &*self.api, out_trade_no = order.out_trade_no, %error, "closing an expired order failed");
                payments.postpone_sweep(&order.out_trade_no, now).await?;
                Expiry::Postponed
            }
        })
    }

    /// Housekeeping, safe on every instance at once (each step is a conditional write): close
    /// expired pending orders with WeChat Pay (one found paid after all settles instead), ask
    /// for refunds that are needed, learn the outcome of refunds pending for over a minute.
    pub async fn sweep(self: &Arc<Self>) -> Result<Swept, StorageError> {
        let mut swept = Swept::default();
        let payments = self.db.payments();
        let now = self.clock.now_ms();
        for order in payments.expired_pending(&self.api, now, 100).await? {
            match self.expire(&order, now).await? {
                Expiry::Closed => swept.closed += 1,
                Expiry::Paid => swept.found_paid += 1,
                Expiry::Ended | Expiry::Postponed => {}
            }
        }
        for order in payments.needing_refund(&self.api, 100).await? {
            match self.refund_needed(&order.out_trade_no).await {
                Ok(Some(_)) => swept.refunds_started += 1,
                Ok(None) => {}
                Err(error) => tracing::warn!(api = &*self.api, out_trade_no = order.out_trade_no, %error, "refund not started"),
            }
        }
        for refund in payments.processing_refunds(&self.api, now - 60_000, 100).await? {
            match self.pay.query_refund(&refund.out_refund_no).await {
                Ok(answer) if answer.status != RefundStatus::Processing => {
                    self.record_refund(&refund.out_refund_no, answer.status, Some(&answer.refund_id)).await?;
                    swept.refunds_settled += 1;
                }
                Ok(_) => {}
                Err(ProviderError::Vendor { code, .. }) if code == "RESOURCE_NOT_EXISTS" => {
                    // WeChat never received it (the request failed): ask again, same number.
                    if let Some(order) = payments.get(&refund.out_trade_no).await?
                        && let Err(error) = self.ask_refund(&order, &refund.out_refund_no, refund.refund_fen, &refund.reason).await
                    {
                        tracing::warn!(api = &*self.api, out_refund_no = refund.out_refund_no, %error, "refund asked again, failed");
                    }
                }
                Err(error) => tracing::warn!(api = &*self.api, out_refund_no = refund.out_refund_no, %error, "refund query failed"),
            }
        }
        Ok(swept)
    }
}

/// A new refund number for order `out_trade_no` (`R` + up to 24 of its characters + 7 random
/// digits; WeChat Pay allows 64).
pub fn refund_number(out_trade_no: &str) -> String {
    format!("R{}", &out_trade_no.chars().take(24).collect::<String>()) + &crate::random::digits(7)
}

/// What a transaction's state reports about its order: paid (`SUCCESS`), failed (`PAYERROR`,
/// `CLOSED`, `REVOKED`), or nothing to act on (`NOTPAY`, `USERPAYING`, `REFUND` — a refund
/// follows a payment this server recorded or an operator made — and states this version does not
/// know). One mapping for notifies and order queries.
fn reported(transaction: &Transaction, now_ms: i64) -> Option<Reported<'_>> {
    match (&transaction.trade_state, &transaction.transaction_id) {
        (TradeState::Success, Some(transaction_id)) => Some(Reported::Paid {
            transaction_id,
            // When the payer paid, not when the notify (perhaps a retry hours later) came.
            paid_at: transaction.success_time.map_or(now_ms, |t| t.timestamp_millis()),
        }),
        (TradeState::PayError | TradeState::Closed | TradeState::Revoked, _) => Some(Reported::Failed),
        _ => None,
    }
}

/// Whether WeChat Pay's refusal says it holds the order, placed before with other parameters
/// (v2's `OUT_TRADE_NO_USED`, 商户订单号重复: another trade type, payer or amount).
fn placed_before(error: &ProviderError) -> bool {
    matches!(error, ProviderError::Vendor { code, .. } if code == "OUT_TRADE_NO_USED")
}

/// Whether WeChat Pay's refusal is final: asking again with the same request cannot succeed. Its
/// "busy, try again" answers (`SYSTEM_ERROR`, `BIZERR_NEED_RETRY`), rate limits
/// (`FREQUENCY_LIMITED`), `NOT_ENOUGH` (the merchant's balance, which refills) and anything that
/// is not an answer (transport, our configuration) are not.
fn is_final(error: &ProviderError) -> bool {
    match error {
        ProviderError::Vendor { code, .. } => !matches!(code.as_str(), "SYSTEM_ERROR" | "BIZERR_NEED_RETRY" | "FREQUENCY_LIMITED" | "NOT_ENOUGH"),
        ProviderError::Transport { .. } | ProviderError::Config { .. } => false,
    }
}
