//! Paying for charging (003 §6): an ended order from the balance (immediate) or by WeChat Pay v2
//! (NATIVE `code_url` as `qrCodeUrl`, and the pay page showing it), recharges, the v2 notify and
//! the payment's status (asking WeChat Pay when the notify is late).

use generated::charging::types::*;

use super::error::ChargingError;
use super::orders::status;
use super::service::{ChargingService, MAX_RECHARGE_FEN, PAY_TTL, ok, wire};
use crate::clock::iso_s;
use crate::identity::Principal;
use crate::money::{fen, yuan};
use crate::payments::NotifyOutcome;
use crate::start::escape;
use crate::storage::charging::{BalancePaid, Payment, PlacedPayment, Recharge, User};
use crate::storage::payments::{PayOrder, PayStatus, RefundState};

/// 003 §6.2 payment status: 0 未支付, 1 支付中, 2 支付成功, 3 支付失败, 4 已退款.
fn payment_status(stored: i32, pay: Option<&PayOrder>) -> i32 {
    match pay {
        None => stored,
        Some(pay) if pay.refund_state != RefundState::None => 4,
        Some(pay) => match pay.status {
            PayStatus::Paid if stored == 3 => 3,
            PayStatus::Paid => 2,
            PayStatus::Pending if pay.prepay.is_some() => 1,
            PayStatus::Pending => 0,
            PayStatus::Failed | PayStatus::Closed => 3,
        },
    }
}

/// `PAY` or `RC` and 14 Beijing time digits and 6 random ones (a valid out_trade_no).
fn pay_id(prefix: &str, now: i64) -> String {
    let stamp = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&crate::clock::BEIJING);
    format!("{prefix}{}{}", stamp.format("%Y%m%d%H%M%S"), crate::random::digits(6))
}

impl ChargingService {
    /// The page a WeChat payment or recharge is paid on (003 §6.5).
    fn pay_page_url(base: &str, id: &str) -> String {
        format!("{base}/api/payment/wechat/pay?paymentId={id}")
    }

    /// Place (or find) the shared pay order `id` and answer its code_url.
    async fn code_url(&self, id: &str) -> Result<String, ChargingError> {
        let pay = self.db.payments().get(id).await?.ok_or_else(|| ChargingError::internal(format!("pay order {id} missing")))?;
        Ok(self.payments.native_params(&pay).await?)
    }

    /// operationId `payment_pay` (003 §6.1): pay an ended order's total. Balance: at once, once
    /// (a conditional debit: 1005 when short, 4003 when paid). WeChat: a payment (the waiting
    /// one again, if any) with its QR code and pay page; the notify settles it. 支付宝: 400 (a WeChat mini-program cannot pay with it).
    /// Only the order's own user pays it (403): the operator, who may read and stop any order,
    /// would otherwise pay a driver's order with the operator's own balance, or open a payment
    /// the driver cannot see.
    pub async fn payment_pay(&self, who: &Principal, body: &PaymentPayRequest, base: &str) -> Result<PaymentPayResponse, ChargingError> {
        let user = self.account(who).await?;
        let order = self.own_order(&user, &body.order_id).await?;
        if order.user_id != user.id {
            return Err(ChargingError::forbidden("权限不足：只能支付自己的订单"));
        }
        let method = body.payment_method as i32;
        if order.payment_status != 0 {
            return Err(ChargingError::new(4003, "重复支付：订单已支付"));
        }
        match order.status {
            status::COMPLETED | status::ABNORMAL => {}
            status::CANCELLED => return Err(ChargingError::new(3004, "订单已取消，无需支付")),
            _ => return Err(ChargingError::new(3002, "订单状态错误：充电结束后才能支付")),
        }
        if order.total_fen <= 0 {
            return Err(ChargingError::new(3002, "订单状态错误：订单金额为0，无需支付"));
        }
        let now = self.clock.now_ms();
        let store = self.db.charging();
        match method {
            3 => {
                let payment = Payment {
                    id: pay_id("PAY", now),
                    order_id: order.id.clone(),
                    user_id: user.id,
                    method: 3,
                    status: 2,
                    amount_fen: order.total_fen,
                    paid_at: Some(now),
                    transaction_id: None,
                    created_at: now,
                    updated_at: now,
                };
                match store.pay_from_balance(&order.id, order.total_fen, payment).await? {
                    BalancePaid::Paid(payment) => Ok(PaymentPayResponse {
                        code: ok()?,
                        message: "支付成功".into(),
                        data: PaymentPayData {
                            payment_id: payment.id.clone(),
                            order_id: order.id.clone(),
                            payment_status: wire(2)?,
                            payment_method: wire(3)?,
                            amount: yuan(payment.amount_fen),
                            payment_url: None,
                            qr_code_url: None,
                        },
                    }),
                    BalancePaid::Short => Err(ChargingError::new(1005, "账户余额不足，请先充值或选择微信支付")),
                    BalancePaid::NotPayable => Err(ChargingError::new(4003, "重复支付：订单已支付")),
                }
            }
            1 => {
                let payment = match store.waiting_payment(&order.id).await? {
                    Some(payment) if payment.amount_fen == order.total_fen => payment,
                    _ => self.new_payment(&user, &order.id, &format!("充电费-{}", order.order_no), order.total_fen).await?,
                };
                let qr = self.code_url(&payment.id).await?;
                Ok(PaymentPayResponse {
                    code: ok()?,
                    message: "支付订单已创建".into(),
                    data: PaymentPayData {
                        payment_id: payment.id.clone(),
                        order_id: order.id.clone(),
                        payment_status: wire(1)?,
                        payment_method: wire(1)?,
                        amount: yuan(payment.amount_fen),
                        payment_url: Some(Self::pay_page_url(base, &payment.id)),
                        qr_code_url: Some(qr),
                    },
                })
            }
            _ => Err(ChargingError::invalid("暂不支持支付宝（小程序内无法调起），请选择微信或余额支付")),
        }
    }

    async fn new_payment(&self, user: &User, order_id: &str, description: &str, amount_fen: i64) -> Result<Payment, ChargingError> {
        for _ in 0..3 {
            let now = self.clock.now_ms();
            let payment = Payment {
                id: pay_id("PAY", now),
                order_id: order_id.to_owned(),
                user_id: user.id,
                method: 1,
                status: 0,
                amount_fen,
                paid_at: None,
                transaction_id: None,
                created_at: now,
                updated_at: now,
            };
            let uid = user.id.to_string();
            let pay = self.payments.new_order(&payment.id, Some(&uid), user.openid.as_deref(), description, amount_fen, now, PAY_TTL);
            match self.db.charging().place_payment(payment.clone(), pay).await? {
                PlacedPayment::Placed => return Ok(payment),
                PlacedPayment::Waiting(waiting) => return Ok(*waiting),
                PlacedPayment::IdTaken => {}
            }
        }
        Err(ChargingError::internal("three payment ids taken"))
    }

    /// operationId `payment_status_get` (003 §6.2): the caller's payment (or recharge), with
    /// WeChat Pay asked when its notify is late.
    pub async fn payment_status_get(&self, who: &Principal, id: &str) -> Result<PaymentStatusResponse, ChargingError> {
        let user = self.account(who).await?;
        let id = id.trim();
        let store = self.db.charging();
        let (order_id, method, stored, amount, owner, paid_at) = if let Some(p) = store.payment(id).await? {
            (p.order_id.clone(), p.method, p.status, p.amount_fen, p.user_id, p.paid_at)
        } else if let Some(r) = store.recharge(id).await? {
            let stored = match r.status {
                1 => 2,
                2 => 3,
                _ => 0,
            };
            (String::new(), r.method, stored, r.amount_fen, r.user_id, r.paid_at)
        } else {
            return Err(ChargingError::new(404, "支付记录不存在"));
        };
        if owner != user.id && !Self::is_admin(&user) {
            return Err(ChargingError::forbidden("权限不足：不是您的支付记录"));
        }
        // A balance payment has no WeChat Pay order: it was paid when recorded.
        let pay = if method == 3 { None } else { self.payments.current(id).await? };
        let status = payment_status(stored, pay.as_ref());
        let paid_at = pay.as_ref().and_then(|p| p.paid_at).or(paid_at).filter(|_| status == 2 || status == 4);
        Ok(PaymentStatusResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: PaymentStatusData {
                payment_id: id.to_owned(),
                order_id,
                payment_status: wire(status)?,
                payment_method: wire(method)?,
                amount: yuan(amount),
                payment_time: paid_at.map(iso_s),
                transaction_id: pay.as_ref().and_then(|p| p.transaction_id.clone()),
            },
        })
    }

    /// operationId `payment_recharge` (003 §6.3): a balance top-up by WeChat Pay (0.01 to
    /// 5000.00 yuan, whole fen); credited once by the notify. 支付宝: 400.
    pub async fn payment_recharge(&self, who: &Principal, body: &PaymentRechargeRequest, base: &str) -> Result<PaymentRechargeResponse, ChargingError> {
        let user = self.account(who).await?;
        let amount_fen = fen(body.amount).filter(|f| (1..=MAX_RECHARGE_FEN).contains(f)).ok_or_else(|| {
            ChargingError::invalid("充值金额须为0.01-5000.00元，最多两位小数")
        })?;
        if body.payment_method as i32 != 1 {
            return Err(ChargingError::invalid("暂不支持支付宝（小程序内无法调起），请选择微信支付"));
        }
        let mut placed = None;
        for _ in 0..3 {
            let now = self.clock.now_ms();
            let recharge = Recharge {
                id: pay_id("RC", now),
                user_id: user.id,
                method: 1,
                status: 0,
                amount_fen,
                paid_at: None,
                transaction_id: None,
                created_at: now,
                updated_at: now,
            };
            let uid = user.id.to_string();
            let pay = self.payments.new_order(&recharge.id, Some(&uid), user.openid.as_deref(), "账户充值", amount_fen, now, PAY_TTL);
            if self.db.charging().place_recharge(recharge.clone(), pay).await? {
                placed = Some(recharge);
                break;
            }
        }
        let recharge = placed.ok_or_else(|| ChargingError::internal("three recharge ids taken"))?;
        let qr = self.code_url(&recharge.id).await?;
        Ok(PaymentRechargeResponse {
            code: ok()?,
            message: "充值订单已创建".into(),
            data: PaymentRechargeData {
                recharge_id: recharge.id.clone(),
                amount: yuan(amount_fen),
                payment_method: wire(1)?,
                payment_url: Self::pay_page_url(base, &recharge.id),
                qr_code_url: qr,
            },
        })
    }

    /// operationId `payment_wechat_notify` (003 §6.4): a WeChat Pay v2 notify, verified and
    /// settled once by the shared payments block.
    pub async fn payment_wechat_notify(&self, headers: &axum::http::HeaderMap, raw_body: &[u8]) -> NotifyOutcome {
        self.payments.notify(headers, raw_body).await
    }

    /// operationId `payment_wechat_pay_page` (003 §6.5): the HTML page of a waiting payment or
    /// recharge of the caller: the amount and the NATIVE QR link (the order's code_url, placed
    /// again only once the one answered is 90 minutes old); with the sandbox, buttons that pay
    /// or fail it. No JSAPI button: the order was placed NATIVE when it was made (`qrCodeUrl`),
    /// and WeChat Pay refuses to place one out_trade_no again as another trade type
    /// (OUT_TRADE_NO_USED; the sandbox refuses it too). The page stays behind the bearer token
    /// (the contract's security): a mini-program pays with `qrCodeUrl` (long-press) or its own
    /// page (`paymentUrl` of order_create) and polls `payment_status_get`.
    pub async fn payment_wechat_pay_page(&self, who: &Principal, id: &str, sandbox: bool) -> Result<String, ChargingError> {
        let user = self.account(who).await?;
        let id = id.trim();
        let store = self.db.charging();
        let (owner, amount_fen, title) = if let Some(p) = store.payment(id).await? {
            (p.user_id, p.amount_fen, "充电费")
        } else if let Some(r) = store.recharge(id).await? {
            (r.user_id, r.amount_fen, "账户充值")
        } else {
            return Err(ChargingError::new(404, "支付记录不存在"));
        };
        if owner != user.id {
            return Err(ChargingError::forbidden("权限不足：不是您的支付记录"));
        }
        let pay = self.db.payments().get(id).await?.ok_or_else(|| ChargingError::new(404, "支付记录不存在"))?;
        if pay.status != PayStatus::Pending {
            return Err(ChargingError::new(3002, "订单状态错误：该支付已结束"));
        }
        let qr = self.payments.native_params(&pay).await?;
        let mut html = format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>微信支付</title></head><body>\
             <h1>{}</h1><p>支付单号：{}</p><p>金额：¥{}</p><p>扫码支付：<code>{}</code></p>",
            escape(title),
            escape(id),
            yuan(amount_fen),
            escape(&qr)
        );
        if sandbox {
            html.push_str(&format!(
                "<p>沙箱：<button onclick=\"fetch('/_sandbox/pay/{id}?result=success',{{method:'POST'}}).then(function(r){{return r.text()}}).then(function(t){{document.body.insertAdjacentText('beforeend',t)}})\">模拟支付成功</button>\
                 <button onclick=\"fetch('/_sandbox/pay/{id}?result=fail',{{method:'POST'}}).then(function(r){{return r.text()}}).then(function(t){{document.body.insertAdjacentText('beforeend',t)}})\">模拟支付失败</button></p>",
                id = escape(id)
            ));
        }
        html.push_str("</body></html>");
        Ok(html)
    }
}
