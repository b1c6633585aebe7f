//! Fees (002 §4): the orders a caller may see and pay (houses they own or were granted
//! `charge` on, and their own), the paid bills, and paying several orders in one WeChat Pay v2
//! order (`ids` “21A22A23”), each order claimed by one bill.

use generated::community::types::*;

use super::error::{CommunityError, Told};
use super::service::{CommunityService, live, ok_code, wire, yuan_label};
use crate::clock::beijing_local;
use crate::api_support::{Page, PageRequest};
use crate::identity::Principal;
use crate::payments::{Cancelled, NotifyOutcome};
use crate::storage::community::{Claim, FeeFilter, FeeOrder};
use crate::storage::payments::PayStatus;

/// Laravel's default `per_page` (the document's example: 15).
const PER_PAGE: i64 = 15;
/// The most `per_page` may ask for.
const MAX_PER_PAGE: u64 = 100;
/// The most orders one payment may take.
const MAX_IDS: usize = 50;
/// How long a bill holds its orders and can be paid.
const BILL_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Laravel's paginator `pages` (4.1.1 pages): `base` is where the API is reached
/// ([`crate::api_support::PublicUrl::base`]), `path` the operation's path.
pub fn laravel_pages<T>(page: &Page<T>, base: &str, path: &str) -> PageInfo {
    let url = format!("{base}{path}");
    let last = page.pages().max(1);
    let current = page.request.page;
    let link = |n: u64| format!("{url}?page={n}");
    let count = page.items.len() as u64;
    let from = page.request.offset() + 1;
    PageInfo {
        current_page: current as i32,
        first_page_url: link(1),
        from: (count > 0).then_some(from as i32),
        last_page: last as i32,
        last_page_url: link(last),
        next_page_url: (current < last).then(|| link(current + 1)),
        path: url.clone(),
        per_page: page.request.size as i32,
        prev_page_url: (current > 1).then(|| link(current - 1)),
        to: (count > 0).then_some((from + count - 1) as i32),
        total: page.total as i32,
    }
}

/// `paied` as sent: true/1 paid, false/0 unpaid (the contract admits nothing else).
fn paid_filter(value: Option<&serde_json::Value>) -> Option<bool> {
    match value? {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => Some(n.as_f64() != Some(0.0)),
        _ => None,
    }
}

/// `21A22A23` → [21, 22, 23]: positive ids, each once, at most [`MAX_IDS`].
fn parse_ids(ids: &str) -> Result<Vec<i64>, CommunityError> {
    let refuse = || CommunityError::invalid("请选择要缴费的订单", "ids须为用“A”隔开的订单id，如“21A22A23”");
    let mut out = Vec::new();
    for part in ids.trim().split(['A', 'a']) {
        let id: i64 = part.trim().parse().map_err(|_| refuse())?;
        if id <= 0 {
            return Err(refuse());
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    if out.is_empty() || out.len() > MAX_IDS {
        return Err(refuse());
    }
    out.sort_unstable();
    Ok(out)
}

impl CommunityService {
    /// The houses whose fees `who` may see and pay: owned, or granted `charge`.
    async fn paying_houses(&self, user_id: &str) -> Result<Vec<i64>, CommunityError> {
        let household = self.db.household();
        let Some(person) = household.person_of(user_id).await? else {
            return Ok(Vec::new());
        };
        Ok(household
            .bindings_of(person.id)
            .await?
            .into_iter()
            .filter(|b| b.role == "业主" || b.charge)
            .map(|b| b.house_id)
            .collect())
    }

    async fn order_wire(&self, order: &FeeOrder) -> Result<Order, CommunityError> {
        let house = match order.house_id {
            Some(id) => self.db.community_tree().house(id).await?.map(|at| at.introduction()),
            None => None,
        };
        Ok(Order {
            id: order.id,
            paied: wire(if order.paid { "已付款" } else { "未付款" })?,
            number: order.number.clone(),
            title: order.title.clone(),
            amount: yuan_label(order.amount_fen),
            house,
            status: wire(if order.closed { "已关闭" } else { "进行中" })?,
            remark: order.remark.clone(),
            extra: order.extra.clone(),
            manager: order.manager.clone(),
        })
    }

    /// operationId `order_list` (002 §4.1.1): `base` starts the page URLs
    /// ([`crate::api_support::PublicUrl::base`]).
    pub async fn order_list(&self, who: &Principal, body: &OrderListRequest, base: &str) -> Result<OrderListResponse, CommunityError> {
        let user = self.account(who).await?;
        let houses = self.paying_houses(&user.id).await?;
        let filter = FeeFilter {
            paid: paid_filter(body.paied.as_ref()),
            title: body.title.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned),
            house_id: body.house_id,
        };
        let request = PageRequest::new(body.page.map_or(1, i64::from), body.per_page.map_or(PER_PAGE, i64::from), MAX_PER_PAGE);
        let page = self.db.fees().list(&user.id, &houses, &filter, request).await?;
        let mut data = Vec::with_capacity(page.items.len());
        for order in &page.items {
            data.push(self.order_wire(order).await?);
        }
        Ok(OrderListResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: "获取订单列表成功".into(),
            message: "获取订单列表成功".into(),
            pages: laravel_pages(&page, base, "/api/v1/orders/list"),
            data,
        })
    }

    /// operationId `payment_list` (002 §4.1.2): the caller's paid bills, newest first; `id` is
    /// the smallest order id a bill paid (unique: an order is paid by one bill), `paid_at`
    /// Beijing time. `house_id` and `title` keep the bills with such an order; `paied` false (or
    /// 0) keeps none, since every bill listed is paid.
    pub async fn payment_list(&self, who: &Principal, body: &PaymentListRequest, base: &str) -> Result<PaymentListResponse, CommunityError> {
        let user = self.account(who).await?;
        let request = PageRequest::new(body.page.map_or(1, i64::from), body.per_page.map_or(PER_PAGE, i64::from), MAX_PER_PAGE);
        let page = if paid_filter(body.paied.as_ref()) == Some(false) {
            Page { request, total: 0, items: Vec::new() }
        } else {
            self.db.fees().bills(&user.id, body.house_id, body.title.as_deref().map(str::trim).filter(|t| !t.is_empty()), request).await?
        };
        let mut data = Vec::with_capacity(page.items.len());
        for bill in &page.items {
            let mut orders = Vec::with_capacity(bill.orders.len());
            for order in &bill.orders {
                let o = self.order_wire(order).await?;
                orders.push(PaymentOrder {
                    id: o.id,
                    paied: Some(wire(o.paied.as_str())?),
                    number: o.number,
                    title: o.title,
                    amount: o.amount,
                    status: wire(o.status.as_str())?,
                    remark: Some(o.remark),
                    extra: Some(o.extra),
                    house: o.house,
                    manager: Some(o.manager),
                });
            }
            data.push(Payment {
                id: bill.orders.iter().map(|o| o.id).min().unwrap_or_default(),
                total_amount: crate::money::yuan(bill.pay.amount_fen),
                paid_at: beijing_local(bill.pay.paid_at.unwrap_or(bill.pay.created_at)),
                payment_number: bill.pay.transaction_id.clone().unwrap_or_default(),
                payment_shop_number: bill.pay.out_trade_no.clone(),
                orders,
            });
        }
        Ok(PaymentListResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: "成功获取账单列表".into(),
            message: "成功获取账单列表Payments234".into(),
            pages: laravel_pages(&page, base, "/api/v1/payments/list"),
            data,
        })
    }

    /// operationId `payment_create` (002 §4.2.1): one WeChat Pay order over the orders `ids`,
    /// all visible to the caller, open and unpaid; each is held by this bill for 30 minutes (a
    /// concurrent payment of an overlapping set is refused). The same set asked again while its
    /// bill is live answers that bill afresh.
    pub async fn payment_create(&self, who: &Principal, ids: &str) -> Result<PaymentCreateResponse, CommunityError> {
        let user = self.account(who).await?;
        let ids = parse_ids(ids)?;
        let fees = self.db.fees();
        let orders = fees.orders(&ids).await?;
        let houses = self.paying_houses(&user.id).await?;
        for id in &ids {
            let visible = orders.iter().find(|o| o.id == *id).filter(|o| {
                o.user_id.as_deref() == Some(user.id.as_str()) || o.house_id.is_some_and(|h| houses.contains(&h))
            });
            let Some(order) = visible else {
                return Err(CommunityError::not_found("订单不存在", format!("订单{id}不存在或您无权支付")));
            };
            if order.paid {
                return Err(CommunityError::Invalid(Told::same(format!("订单{}已支付", order.number))));
            }
            if order.closed {
                return Err(CommunityError::Invalid(Told::same(format!("订单{}已关闭", order.number))));
            }
        }
        let now = self.clock.now_ms();
        let pay = match fees.live_bill(&user.id, &ids, now).await? {
            Some(pay) => pay,
            None => {
                let total: i64 = orders.iter().map(|o| o.amount_fen).sum();
                let description = match orders.as_slice() {
                    [one] => format!("物业缴费-{}", one.title),
                    many => format!("物业缴费-{}笔", many.len()),
                };
                let mut placed = None;
                let mut held = None;
                for _ in 0..3 {
                    let out_trade_no = crate::random::alphanumeric(32);
                    let new = self.payments.new_order(&out_trade_no, Some(&user.id), user.openid.as_deref(), &description, total, now, BILL_TTL);
                    let expires_at = new.expires_at;
                    match fees.place_bill(new, &ids, expires_at).await? {
                        Claim::Placed => {
                            placed = Some(out_trade_no);
                            break;
                        }
                        Claim::NumberTaken => continue,
                        // Held by the bill of someone who may no longer pay it: given up, and
                        // the orders claimed again.
                        Claim::Unavailable(id) if self.release_lapsed_hold(id).await? => held = Some(id),
                        Claim::Unavailable(id) => {
                            held = Some(id);
                            break;
                        }
                    }
                }
                if let (None, Some(id)) = (&placed, held) {
                    return Err(CommunityError::Invalid(Told::new(
                        "订单正在支付中，请稍后再试",
                        format!("订单{id}已被其他账单占用或已支付"),
                    )));
                }
                let out_trade_no = placed.ok_or_else(|| CommunityError::Internal("three order numbers taken".into()))?;
                self.db.payments().get(&out_trade_no).await?.ok_or_else(|| CommunityError::Internal("a placed bill vanished".into()))?
            }
        };
        let params = self.payments.pay_params(&pay).await?;
        Ok(PaymentCreateResponse {
            code: ok_code()?,
            token_expired: live()?,
            msg: "成功获取缴费信息".into(),
            data: WxPayParams {
                app_id: params.app_id,
                time_stamp: params.time_stamp,
                nonce_str: params.nonce_str,
                package: params.package,
                sign_type: wire(&params.sign_type).map_err(|_| {
                    CommunityError::Internal(format!("WeChat Pay answered sign type {}, the contract has MD5", params.sign_type))
                })?,
                pay_sign: params.pay_sign,
            },
            message: "成功获取缴费信息".into(),
        })
    }

    /// Fee order `id` is held by a pending bill whose payer may no longer pay it (unbound from
    /// the house, the pay right revoked, replaced as its owner): that bill is cancelled —
    /// closed with WeChat Pay, its orders released — so that those who may pay are not kept
    /// waiting out its 30 minutes. Answers whether the orders may be claimed again (false: no
    /// such hold, the payer may still pay, the bill was paid meanwhile, or WeChat Pay could
    /// not close it).
    async fn release_lapsed_hold(&self, id: i64) -> Result<bool, CommunityError> {
        let Some(order) = self.db.fees().orders(&[id]).await?.into_iter().next() else {
            return Ok(false);
        };
        let Some(out_trade_no) = order.out_trade_no.as_deref().filter(|_| !order.paid) else {
            return Ok(false);
        };
        let Some(bill) = self.db.payments().get(out_trade_no).await?.filter(|b| b.status == PayStatus::Pending) else {
            return Ok(false);
        };
        let Some(payer) = bill.user_id.as_deref() else {
            return Ok(false);
        };
        let may_pay = order.user_id.as_deref() == Some(payer)
            || match order.house_id {
                Some(house) => self.paying_houses(payer).await?.contains(&house),
                None => false,
            };
        if may_pay {
            return Ok(false);
        }
        match self.payments.cancel(&bill).await {
            Ok(cancelled) => {
                tracing::info!(api = "community", out_trade_no, ?cancelled, "a bill whose payer may no longer pay its orders given up");
                // Ended either way (cancelled now, or meanwhile): the claim may go again. Paid:
                // the orders are paid, and the claim says so.
                Ok(cancelled != Cancelled::Paid)
            }
            // WeChat Pay could not close it: it holds the orders as before.
            Err(error) => {
                tracing::warn!(api = "community", out_trade_no, %error, "a bill whose payer may no longer pay its orders did not close");
                Ok(false)
            }
        }
    }

    /// operationId `payment_notify`: a WeChat Pay v2 notify, verified and settled by the shared
    /// payments block (each bill's orders turn paid in the same transaction).
    pub async fn payment_notify(&self, headers: &axum::http::HeaderMap, raw_body: &[u8]) -> NotifyOutcome {
        self.payments.notify(headers, raw_body).await
    }
}
