//! o2o's application (004): the operators' mini-programs, login (wxLogin per appid, the phone
//! bound by SMS, the scene login of the bridge page), orders with their WeChat Pay (v3, the
//! merchant of the goods' operator), verify codes, refunds, and the bridge page.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use generated::o2o::types::{
    LoginData, LoginWithSceneIdData, OrderBuyData, OrderBuyDataIsOperSelf, OrderListData, PaySdkConfig, PaySdkConfigSignType,
    ScenePayload, SmsVerifyCodeData, UserInfo, WxLoginData,
};

use super::error::O2oError;
use super::render;
use crate::clock::Clock;
use crate::identity::{CodeError, CodePolicy, Codes, SessionError, Sessions, Subject, Wechat, WechatError};
use crate::payments::{PayError, Payments};
use crate::providers::geocoder::ReverseGeocoder;
use crate::providers::sms::SandboxSms;
use crate::providers::wxacode::{MiniProgramCode, WxaCodeRequest};
use crate::storage::Db;
use crate::storage::payments::PayStatus;
use crate::storage::o2o::orders::{self as store, Bound, Order, RefundClaim, Scene, SceneRedeemed, Verified};

/// o2o's SMS codes (004 §登陆相关 短信接口 states no policy): [`CodePolicy::STANDARD`].
pub const CODE_POLICY: CodePolicy = CodePolicy::STANDARD;

/// How long an unpaid order can be paid before it closes (status 3; the document is silent).
pub const ORDER_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a bridge page's scene id can be redeemed.
pub const SCENE_TTL_MS: i64 = 30 * 60 * 1000;
/// The bridge page's target page when none is given (004 “目前默认 pages/severs/index/index”).
pub const DEFAULT_PAGE: &str = "pages/severs/index/index";
/// The most units one order may buy (the document sets no limit; one verify code per unit).
pub const MAX_NUMBER: i32 = 99;
/// The document's test code: in the sandbox, `/wxLogin` with it logs in as [`TEST_USER`].
pub const TEST_CODE: &str = "user";
/// The test user's phone and name (the demo user 10086, 004 example world).
pub const TEST_USER: (&str, &str) = ("13912345678", "张伟");

/// One operator's mini-program (运营中心): its appid, WeChat login, merchant and 小程序码.
pub struct Operator {
    /// The operator id (`oper_id`, the bridge page's `targetOperId`).
    pub id: i64,
    /// WeChat login for its appid.
    pub wechat: Wechat,
    /// Payments with its merchant (scope `o2o:{id}`).
    pub payments: Arc<Payments>,
    /// Its 小程序码 (`getwxacodeunlimit` with its access token, or the sandbox QR).
    pub wxacode: Arc<dyn MiniProgramCode>,
    /// Whether its WeChat login is the sandbox (then the test code `user` works).
    pub sandbox_login: bool,
}

/// Who calls: the session of a WeChat identity (an openid under one operator's appid) and the
/// account it is bound to, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The shared WeChat identity's id (the session subject).
    pub identity: String,
    /// The session.
    pub session_id: String,
    /// The operator whose mini-program the token was issued for.
    pub oper_id: i64,
    /// The openid under that mini-program's appid.
    pub openid: String,
    /// The account (`user_id`), once `/login` or `/loginWithSceneId` bound it.
    pub user_id: Option<i64>,
}

/// The o2o application.
pub struct O2oService {
    /// Storage.
    pub db: Db,
    /// Sessions (tokens for WeChat identities).
    pub sessions: Arc<Sessions>,
    /// SMS codes.
    pub codes: Codes,
    /// The SMS outbox while SMS is the sandbox ("verify_code: 验证码, 测试时存在").
    pub sandbox_sms: Option<Arc<SandboxSms>>,
    /// The operators, the first being the one a request without a mini-program Referer goes
    /// to while its login is the sandbox.
    pub operators: Vec<Operator>,
    /// Reverse geocoding for `area/getByGps`.
    pub geocoder: Arc<dyn ReverseGeocoder>,
    /// How a request's client address is found (the code sends' [`crate::identity::codes::ClientCap`]).
    pub clients: crate::ratelimit::ClientAddresses,
    /// The clock.
    pub clock: Clock,
}

fn code_error(error: CodeError) -> O2oError {
    match error {
        CodeError::Wrong => O2oError::new(10005, "验证码错误"),
        CodeError::Exhausted => O2oError::new(10005, "验证码错误次数过多，请重新获取"),
        CodeError::Expired => O2oError::new(10005, "验证码已过期，请重新获取"),
        // The document has no rate-limit code (n15): a refusal of the request's parameters.
        CodeError::TooSoon(wait) => O2oError::invalid(format!("发送过于频繁，请{wait}秒后再试")),
        CodeError::DailyCap(_) => O2oError::invalid("今日发送次数已达上限，请明天再试"),
        CodeError::ClientCap(wait) => O2oError::invalid(format!("当前网络获取验证码过于频繁，请{wait}秒后再试")),
        CodeError::SendFailed => O2oError::internal("the SMS provider failed"),
        CodeError::Storage(error) => error.into(),
    }
}

fn pay_error(error: PayError) -> O2oError {
    match error {
        PayError::NotPayable => O2oError::invalid("订单已不能支付（已支付或已关闭）"),
        PayError::PayerNeeded => O2oError::internal("the payer's openid is missing"),
        PayError::Provider(error) => O2oError::internal(format!("WeChat Pay: {error}")),
        PayError::Storage(error) => error.into(),
    }
}

fn unbound() -> O2oError {
    O2oError::new(10003, "未登录，请先绑定手机号")
}

fn no_order() -> O2oError {
    O2oError::invalid("订单不存在")
}

/// A mainland mobile number: 11 digits, 1 then 3–9.
fn valid_mobile(mobile: &str) -> bool {
    let b = mobile.as_bytes();
    b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && b.iter().all(u8::is_ascii_digit)
}

/// The appid a mini-program request comes from: `Referer: https://servicewechat.com/{appid}/…`
/// (004 “通过user agent 获取appid”: WeChat sets this Referer on every `wx.request`).
pub fn referer_appid(headers: &HeaderMap) -> Option<&str> {
    let referer = headers.get(axum::http::header::REFERER)?.to_str().ok()?;
    let rest = referer.strip_prefix("https://servicewechat.com/")?;
    let appid = rest.split('/').next()?;
    (!appid.is_empty() && appid.len() <= 32 && appid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')).then_some(appid)
}

impl O2oService {
    /// Today's date in Beijing, `YYYY-MM-DD`: the form of goods' `start_date` / `end_date`.
    pub fn today(&self) -> String {
        crate::clock::beijing_date(self.clock.now_ms()).format("%Y-%m-%d").to_string()
    }

    /// The operator `id`.
    pub fn operator(&self, id: i64) -> Option<&Operator> {
        self.operators.iter().find(|o| o.id == id)
    }

    /// The operator a request is for, by its Referer's appid — for routing, never for
    /// authority: an unknown appid is 70011; no mini-program Referer reaches the first operator
    /// while its login is the sandbox (a browser or Swagger UI), else 70011 too.
    fn operator_of(&self, headers: &HeaderMap) -> Result<&Operator, O2oError> {
        let unknown = || O2oError::new(70011, "微信appid不存在");
        match referer_appid(headers) {
            Some(appid) => self.operators.iter().find(|o| o.wechat.appid() == appid).ok_or_else(unknown),
            None => self.operators.first().filter(|o| o.sandbox_login).ok_or_else(unknown),
        }
    }

    /// The caller behind a token (the generated router's authentication): a live session of
    /// a WeChat identity that logged in here.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, O2oError> {
        let principal = self.sessions.authenticate(token).await.map_err(|error| match error {
            SessionError::Storage(error) => error.into(),
            _ => O2oError::new(10007, "token无效或不存在"),
        })?;
        let identity = self.db.o2o().identity(&principal.user_id).await?.ok_or_else(|| O2oError::new(10007, "token无效或不存在"))?;
        Ok(Caller {
            identity: identity.id,
            session_id: principal.session_id,
            oper_id: identity.oper_id,
            openid: identity.openid,
            user_id: identity.user_id,
        })
    }

    async fn user_info(&self, user_id: i64) -> Result<Option<UserInfo>, O2oError> {
        Ok(self.db.o2o().user(user_id).await?.map(|u| UserInfo { name: u.name, mobile: u.mobile }))
    }

    /// The caller's account, or 10003 (步骤2: bind a phone first).
    async fn account(&self, caller: &Caller) -> Result<(i64, UserInfo), O2oError> {
        let user_id = caller.user_id.ok_or_else(unbound)?;
        let info = self.user_info(user_id).await?.ok_or_else(unbound)?;
        Ok((user_id, info))
    }

    /// operationId `wx_login` (004 §登陆相关 微信登陆接口): code2Session with the appid of the
    /// request's mini-program; a token for that openid, with `userInfo` once it is bound. In the
    /// sandbox the code `user` is the test user (张伟, 13912345678). A refused code is 10001.
    pub async fn wx_login(&self, headers: &HeaderMap, code: &str) -> Result<WxLoginData, O2oError> {
        let operator = self.operator_of(headers)?;
        let (user, _) = operator.wechat.login(code, None).await.map_err(|error| match error {
            WechatError::Code(errcode) => O2oError::invalid(format!("code无效（微信 {errcode}）")),
            WechatError::Storage(error) => error.into(),
            other => O2oError::internal(format!("code2Session: {other}")),
        })?;
        let store = self.db.o2o();
        let now = self.clock.now_ms();
        let mut identity = store.record_identity(&user.user_id, operator.id, operator.wechat.appid(), &user.openid, now).await?;
        if code == TEST_CODE && operator.sandbox_login && identity.user_id.is_none() {
            let (mobile, name) = TEST_USER;
            if let Bound::Bound(account) = store.bind_phone(&identity.id, mobile, name, now).await? {
                identity.user_id = Some(account.id);
            }
        }
        let issued = self.sessions.start(&identity.id).await?;
        let user_info = match identity.user_id {
            Some(user_id) => self.user_info(user_id).await?,
            None => None,
        };
        Ok(WxLoginData { token: issued.access_token, user_info })
    }

    /// operationId `sms_verify_code_send` (004 §登陆相关 短信接口): a 6-digit code to `mobile`
    /// for `/login`; the code itself is in the answer only while SMS is the sandbox.
    pub async fn sms_verify_code_send(&self, _caller: &Caller, mobile: &str, client: std::net::IpAddr) -> Result<SmsVerifyCodeData, O2oError> {
        if !valid_mobile(mobile) {
            return Err(O2oError::invalid("手机号格式不正确"));
        }
        self.codes.send(mobile, "login", false, client).await.map_err(code_error)?;
        let verify_code = match &self.sandbox_sms {
            Some(sms) => sms.entries(Some("o2o"), mobile).await?.into_iter().next().map(|e| e.code),
            None => None,
        };
        Ok(SmsVerifyCodeData { verify_code })
    }

    /// operationId `user_login` (004 §登陆相关 登陆接口(绑定手机号)): the SMS code proves the
    /// phone; the caller's openid is bound to that phone's account (created when new). Wrong or
    /// expired code 10005; the account already has another openid under this appid 10006.
    pub async fn user_login(&self, caller: &Caller, mobile: &str, verify_code: &str) -> Result<LoginData, O2oError> {
        if !valid_mobile(mobile) {
            return Err(O2oError::invalid("手机号格式不正确"));
        }
        self.codes.redeem(Subject::Phone(mobile), "login", verify_code).await.map_err(code_error)?;
        let name = format!("用户{}", &mobile[7..]);
        match self.db.o2o().bind_phone(&caller.identity, mobile, &name, self.clock.now_ms()).await? {
            Bound::Bound(account) => Ok(LoginData { user_info: UserInfo { name: account.name, mobile: account.mobile } }),
            Bound::TakenByOther => Err(O2oError::new(10006, "该手机号已绑定其他微信账号")),
        }
    }

    /// operationId `scene_id_login` (004 §登陆相关 使用场景ID快捷登陆): the scene id of a bridge
    /// page made for this caller's operator links the caller's openid to the order's account
    /// and answers the order to pay. A scene is redeemed by one openid only (the first) until it
    /// expires; unknown, expired, another operator's or another openid's scene 10001; the
    /// account gone 10004; the openid bound to another account, or the account holding another
    /// openid of this mini-program, 10006 (the scene stays unused).
    pub async fn scene_id_login(&self, caller: &Caller, scene_id: &str) -> Result<LoginWithSceneIdData, O2oError> {
        let store = self.db.o2o();
        let now = self.clock.now_ms();
        let invalid = || O2oError::invalid("场景值无效或已过期");
        let scene = store.scene(scene_id).await?.filter(|s| s.expires_at > now && s.oper_id == caller.oper_id).ok_or_else(invalid)?;
        let info = self.user_info(scene.user_id).await?.ok_or_else(|| O2oError::new(10004, "账号不存在"))?;
        match store.redeem_scene(&scene.id, &caller.identity, scene.user_id, now).await? {
            SceneRedeemed::Linked => {}
            SceneRedeemed::Taken => return Err(invalid()),
            // Say which binding stands in the way: the caller's openid, or the account's other one.
            SceneRedeemed::BoundElsewhere if caller.user_id.is_some_and(|u| u != scene.user_id) => {
                return Err(O2oError::new(10006, "该微信已绑定其他账号"));
            }
            SceneRedeemed::BoundElsewhere => return Err(O2oError::new(10006, "该账号已在本小程序绑定其他微信")),
        }
        Ok(LoginWithSceneIdData { user_info: info, payload: ScenePayload { user_id: scene.user_id, order_no: scene.order_no } })
    }

    /// operationId `order_buy` (004 §订单模块 下单接口): an unpaid order of `number` units of a
    /// listed goods in its validity, at today's price (a snapshot), paid to the goods'
    /// operator's merchant; `sdk_config` (v3 JSAPI) when that operator is the caller's
    /// (`isOperSelf` 1), else the order is paid in that operator's mini-program through the
    /// bridge page. Bad goods, number or phone 10001; no bound phone 10003.
    pub async fn order_buy(&self, caller: &Caller, goods_id: i64, number: i32, notify_mobile: Option<&str>) -> Result<OrderBuyData, O2oError> {
        let (user_id, info) = self.account(caller).await?;
        if !(1..=MAX_NUMBER).contains(&number) {
            return Err(O2oError::invalid(format!("购买数量须为1到{MAX_NUMBER}")));
        }
        let notify_mobile = notify_mobile.filter(|m| !m.is_empty());
        if notify_mobile.is_some_and(|m| !valid_mobile(m)) {
            return Err(O2oError::invalid("notify_mobile 手机号格式不正确"));
        }
        let catalogue = self.db.o2o();
        let no_goods = || O2oError::invalid("商品不存在或已下架");
        let goods = catalogue.goods(goods_id).await?.filter(|g| g.status == 1).ok_or_else(no_goods)?;
        let merchant = catalogue.merchant(goods.merchant_id).await?.ok_or_else(no_goods)?;
        let now = self.clock.now_ms();
        let today = self.today();
        if today < goods.start_date || today > goods.end_date {
            return Err(O2oError::invalid("商品不在有效期内"));
        }
        if goods.price_fen <= 0 {
            return Err(O2oError::invalid("商品价格异常，暂不能购买"));
        }
        let operator = self.operator(goods.oper_id).ok_or_else(|| O2oError::internal(format!("operator {} of goods {goods_id} is not configured", goods.oper_id)))?;
        let own = goods.oper_id == caller.oper_id;
        let pay_price_fen = goods.price_fen.checked_mul(i64::from(number)).ok_or_else(|| O2oError::invalid("金额过大"))?;
        let description: String = goods.name.chars().take(40).collect();
        let user = user_id.to_string();
        let mut placed = None;
        for _ in 0..3 {
            let order_no = format!("0{}{}", chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&crate::clock::BEIJING).format("%Y%m%d%H%M%S"), crate::random::digits(6));
            let order = store::unpaid_order(store::new_id(100_000_000, 999_999_999), &order_no, (user_id, &info.name), notify_mobile, &merchant.name, &goods, number, now);
            // The payer is known now only in the goods' own operator's mini-program.
            let payer = own.then_some(caller.openid.as_str());
            let pay = operator.payments.new_order(&order_no, Some(&user), payer, &description, pay_price_fen, now, ORDER_TTL);
            if self.db.o2o().place_order(order, pay).await? {
                placed = Some(order_no);
                break;
            }
        }
        let order_no = placed.ok_or_else(|| O2oError::internal("no free order number after 3 tries"))?;
        let sdk_config = if own { Some(self.sdk_config(operator, &order_no, &caller.openid).await?) } else { None };
        let is_oper_self = if own { OrderBuyDataIsOperSelf::Value1 } else { OrderBuyDataIsOperSelf::Value0 };
        Ok(OrderBuyData { order_no, is_oper_self, sdk_config })
    }

    /// `wx.requestPayment` parameters for unpaid order `order_no` paid by `openid`.
    async fn sdk_config(&self, operator: &Operator, order_no: &str, openid: &str) -> Result<PaySdkConfig, O2oError> {
        let mut pay = operator.payments.current(order_no).await?.ok_or_else(no_order)?;
        pay.payer_openid = Some(openid.to_owned());
        // A failed attempt (PAYERROR) leaves the order 未支付 until it lapses: it may be paid again.
        let params = operator.payments.pay_params_after_failure(&pay).await.map_err(pay_error)?;
        let sign_type = match params.sign_type.as_str() {
            "MD5" => PaySdkConfigSignType::Md5,
            "HMAC-SHA256" => PaySdkConfigSignType::HmacSha256,
            _ => PaySdkConfigSignType::Rsa,
        };
        Ok(PaySdkConfig {
            app_id: params.app_id,
            nonce_str: params.nonce_str,
            package: params.package,
            sign_type,
            pay_sign: params.pay_sign,
            timestamp: params.time_stamp,
        })
    }

    /// The caller's own order `order_no` (another's is "not found": 10001), brought up to date
    /// with WeChat Pay while unpaid (a late notify).
    async fn own_order(&self, caller: &Caller, order_no: &str) -> Result<(Order, i64), O2oError> {
        let (user_id, _) = self.account(caller).await?;
        let store = self.db.o2o();
        let order = store.order(order_no).await?.filter(|o| o.user_id == user_id).ok_or_else(no_order)?;
        if order.status == store::UNPAID
            && let Some(operator) = self.operator(order.oper_id)
        {
            operator.payments.current(order_no).await?;
            let order = store.order(order_no).await?.ok_or_else(no_order)?;
            return Ok((order, user_id));
        }
        Ok((order, user_id))
    }

    /// operationId `order_pay` (an operation the document lacks, see the contract's
    /// x-transcription-notes 小程序间跳转h5 / 调起支付): `sdk_config` for the caller's own unpaid
    /// order of the caller's operator — the target mini-program after `/loginWithSceneId`.
    /// Another's or unknown order, not unpaid, or another operator's 10001.
    pub async fn order_pay(&self, caller: &Caller, order_no: &str) -> Result<OrderBuyData, O2oError> {
        let (order, _) = self.own_order(caller, order_no).await?;
        if order.status != store::UNPAID {
            return Err(O2oError::invalid("订单不是未支付状态，不能支付"));
        }
        if order.oper_id != caller.oper_id {
            return Err(O2oError::invalid("该订单须在其所属运营中心的小程序中支付"));
        }
        let operator = self.operator(order.oper_id).ok_or_else(|| O2oError::internal(format!("operator {} not configured", order.oper_id)))?;
        let sdk_config = self.sdk_config(operator, order_no, &caller.openid).await?;
        Ok(OrderBuyData { order_no: order.order_no, is_oper_self: OrderBuyDataIsOperSelf::Value1, sdk_config: Some(sdk_config) })
    }

    /// operationId `order_list` (004 §订单模块 订单列表): the caller's orders, newest first, of
    /// one status when given; `items` from 已付款 on.
    pub async fn order_list(&self, caller: &Caller, status: Option<i32>) -> Result<OrderListData, O2oError> {
        let (user_id, _) = self.account(caller).await?;
        let store = self.db.o2o();
        let mut orders = store.orders_of(user_id, status).await?;
        // An unpaid order past its time is closed as it is read (as its detail is), not shown
        // 未支付 until the next sweep. Only those: a list asks nothing about the others.
        let lapsed_before = self.clock.now_ms() - ORDER_TTL.as_millis() as i64;
        let mut ended = false;
        for order in orders.iter().filter(|o| o.status == store::UNPAID && o.created_at <= lapsed_before) {
            if let Some(operator) = self.operator(order.oper_id)
                && operator.payments.current(&order.order_no).await?.is_some_and(|pay| pay.status != PayStatus::Pending)
            {
                ended = true;
            }
        }
        if ended {
            orders = store.orders_of(user_id, status).await?;
        }
        let ids: Vec<i64> = orders.iter().map(|o| o.id).collect();
        let codes = store.codes_of(&ids).await?;
        let list = orders.iter().map(|o| render::order(o, &codes, caller.oper_id)).collect::<Result<Vec<_>, _>>()?;
        Ok(OrderListData { total: list.len() as i64, list })
    }

    /// operationId `order_get` (004 §订单模块 订单详情): the caller's order `order_no` with one
    /// verify code per unit once paid; another's or unknown 10001.
    pub async fn order_get(&self, caller: &Caller, order_no: &str) -> Result<generated::o2o::types::Order, O2oError> {
        let (order, _) = self.own_order(caller, order_no).await?;
        let codes = self.db.o2o().codes_of(&[order.id]).await?;
        render::order(&order, &codes, caller.oper_id)
    }

    /// operationId `order_refund` (004 §订单模块 退款接口): refund the unused verify codes of the
    /// caller's paid order (price × unused codes) through the operator's merchant; the order
    /// becomes 已退款. Asking again answers the same refund; of concurrent requests one refunds.
    /// Not 已付款 (unpaid, closed, completed) or nothing left to refund 10001. WeChat Pay
    /// refusing the refund for good puts the order back as it was (已付款, its codes unused)
    /// and answers 500 saying so; a refund it has not accepted yet is asked again by the sweep.
    pub async fn order_refund(&self, caller: &Caller, order_no: &str) -> Result<generated::o2o::types::Refund, O2oError> {
        let (order, _) = self.own_order(caller, order_no).await?;
        let operator = self.operator(order.oper_id).ok_or_else(|| O2oError::internal(format!("operator {} not configured", order.oper_id)))?;
        let mut claimed = false;
        if order.status == store::PAID {
            let out_refund_no = crate::payments::refund_number(&order.order_no);
            let claim = self.db.o2o().claim_refund(order.id, &order.order_no, &out_refund_no, "用户申请退款", self.clock.now_ms()).await?;
            claimed = matches!(claim, RefundClaim::Claimed(_));
            if claimed && let Err(error) = operator.payments.ask_recorded_refund(&out_refund_no).await {
                // Refused for good: closed, and the order restored (`Settler::refund_closed`).
                // Otherwise recorded and processing: the sweep asks again under the same number.
                tracing::warn!(api = "o2o", order_no, %error, "refund not accepted");
            }
        }
        let store = self.db.o2o();
        let order = store.order(order_no).await?.ok_or_else(no_order)?;
        match (order.status, store.refund_of(order.id).await?) {
            (store::REFUNDED, Some(refund)) => {
                let row = operator.payments.refund_row(&refund.out_refund_no).await?;
                Ok(render::refund(&refund, &order, row.as_ref()))
            }
            // This request's refund was closed at once (refused, or answered CLOSED): logged
            // above or by the payments block, so no internal detail here.
            (store::PAID, _) if claimed => Err(O2oError::new(500, "微信支付未受理退款，订单仍为已付款，请稍后再试或联系商家")),
            (store::COMPLETED, _) => Err(O2oError::invalid("订单已完成，不可退款")),
            _ => Err(O2oError::invalid("订单不可退款（仅已付款且有未核销的核销码的订单可退款）")),
        }
    }

    /// The bridge page (004 §订单模块 小程序间跳转h5): for an unpaid order of `user_id` held by
    /// operator `target_oper_id`, a scene id (random, [`SCENE_TTL_MS`]) and that operator's
    /// 小程序码 opening `page` (empty: the document's default) with it; answers the HTML page. The
    /// caller's token (the buying mini-program's, in the query) must be the order's user's: a
    /// scene logs its redeemer in to that account. Bad parameters or another's order 10001; the
    /// 小程序码 provider failing 500.
    pub async fn bridge_page(&self, caller: &Caller, target_oper_id: i64, order_no: &str, user_id: i64, page: &str) -> Result<String, O2oError> {
        let (account, _) = self.account(caller).await?;
        let operator = self.operator(target_oper_id).ok_or_else(|| O2oError::invalid("运营中心不存在"))?;
        let store = self.db.o2o();
        store
            .order(order_no)
            .await?
            .filter(|o| o.user_id == user_id && account == user_id && o.oper_id == target_oper_id && o.status == store::UNPAID)
            .ok_or_else(|| O2oError::invalid("订单不存在或不是待支付订单"))?;
        let page = if page.is_empty() { DEFAULT_PAGE } else { page };
        let scene_id = crate::random::alphanumeric(16);
        let request = WxaCodeRequest::new(scene_id.clone(), page);
        request.validate().map_err(|_| O2oError::invalid("page 不合法：须为小程序已发布页面的路径（至多128个字符，由字母、数字和 _-./ 组成，不以/开头，不含空段、.或..段，不带参数）"))?;
        let now = self.clock.now_ms();
        let image = operator.wxacode.unlimited(&request).await.map_err(|e| O2oError::internal(format!("getwxacodeunlimit: {e}")))?;
        store
            .insert_scene(Scene { id: scene_id.clone(), oper_id: target_oper_id, user_id, order_no: order_no.to_owned(), expires_at: now + SCENE_TTL_MS, created_at: now, redeemed_by: None })
            .await?;
        Ok(render::bridge_page(&image, &scene_id, page, operator.id))
    }

    /// The sandbox merchant verifies a code (核销, `POST /_sandbox/verify`): see
    /// [`crate::storage::o2o::O2oStore::verify`].
    pub async fn verify(&self, verify_code: &str) -> Result<Verified, O2oError> {
        Ok(self.db.o2o().verify(verify_code, self.clock.now_ms()).await?)
    }
}
