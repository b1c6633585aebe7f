//! The o2o API (004, 用户端小程序) for real: the generated [`O2oApi`] trait implemented over
//! [`service::O2oService`]. Each operation unwraps its input, calls the application function of
//! the same name and wraps the answer in the envelope `{code: 0, message: "请求成功", data}`;
//! errors become their documented variant through [`crate::api_support::error_output`].
//!
//! The parts: `service.rs` (operators, login, orders, refunds, the bridge page), [`areas`]
//! (the area operations), `catalogue.rs` (categories, merchants, goods), `render.rs` (rows in
//! the contract's shapes), [`seed`] (demo accounts and orders), [`error`] (the envelope's codes).
//! Payments settle through [`crate::storage::o2o::orders::Settler`]; notifies arrive at
//! [`NOTIFY_PATH`] per operator, outside the contract (the document has none, n26).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use generated::o2o::types::*;
use generated::o2o::*;
use generated::runtime::{AuthError, Context, Credential};

pub mod areas;
pub mod catalogue;
pub mod error;
mod render;
pub mod seed;
pub mod service;

use error::O2oError;
use service::{Caller, O2oService};

use crate::api_support::{auth_error, error_output};
use crate::storage::o2o::orders::Verified;

/// Where each operator's WeChat Pay notifies (payments and refunds) arrive: `{oper_id}` picks
/// the merchant whose keys verify it.
pub const NOTIFY_PATH: &str = "/wechatpay/notify/{oper_id}";

/// The real o2o server: the generated trait over the service.
#[derive(Clone)]
pub struct O2o(pub Arc<O2oService>);

const OK: &str = "请求成功";

/// Answer a result: `Ok(data)` in the operation's success envelope, `Err` as the variant
/// documented for its status.
macro_rules! answer {
    ($ctx:ident, $result:expr, $output:ident, $response:ident, $code:ident) => {{
        match $result {
            Ok(data) => $output::Ok($response { code: $code::Value0, message: OK.into(), data }),
            Err(error) => error_output("o2o", $ctx.operation_id, error, 0),
        }
    }};
}

/// Operations of a caller with a token: `op!(name, Input, Output, Response, Code, |service, caller, input, ctx| call)`.
macro_rules! op {
    ($name:ident, $input:ident, $output:ident, $response:ident, $code:ident, |$s:ident, $who:ident, $i:ident| $call:expr) => {
        async fn $name(&self, ctx: Context<Caller>, $i: $input) -> $output {
            let $who = &ctx.principal;
            let $s = &*self.0;
            let result: Result<_, O2oError> = $call.await;
            answer!(ctx, result, $output, $response, $code)
        }
    };
}

impl O2oApi for O2o {
    type Principal = Caller;

    async fn authenticate(&self, _: Operation, credential: Credential) -> Result<Caller, AuthError> {
        self.0.authenticate(credential.secret()).await.map_err(|error| auth_error("o2o", error))
    }

    async fn wx_login(&self, ctx: Context<()>, input: WxLoginInput) -> WxLoginOutput {
        answer!(ctx, self.0.wx_login(&ctx.headers, &input.body.code).await, WxLoginOutput, WxLoginResponse, WxLoginResponseCode)
    }

    op!(user_login, UserLoginInput, UserLoginOutput, LoginResponse, LoginResponseCode, |s, who, i| s.user_login(who, &i.body.mobile, &i.body.verify_code));
    op!(scene_id_login, SceneIdLoginInput, SceneIdLoginOutput, LoginWithSceneIdResponse, LoginWithSceneIdResponseCode, |s, who, i| s.scene_id_login(who, &i.body.scene_id));
    async fn sms_verify_code_send(&self, ctx: Context<Caller>, input: SmsVerifyCodeSendInput) -> SmsVerifyCodeSendOutput {
        let client = self.0.clients.of(&ctx.headers, &ctx.extensions);
        let result = self.0.sms_verify_code_send(&ctx.principal, &input.body.mobile, client).await;
        answer!(ctx, result, SmsVerifyCodeSendOutput, SmsVerifyCodeResponse, SmsVerifyCodeResponseCode)
    }
    op!(area_tree_get, AreaTreeGetInput, AreaTreeGetOutput, AreaTreeResponse, AreaTreeResponseCode, |s, _who, i| areas::area_tree(&s.db, i.tier as i32));
    op!(city_with_hot_list, CityWithHotListInput, CityWithHotListOutput, CitiesWithHotResponse, CitiesWithHotResponseCode, |s, _who, _i| areas::cities_with_hot(&s.db));
    op!(area_by_gps_get, AreaByGpsGetInput, AreaByGpsGetOutput, AreaByGpsResponse, AreaByGpsResponseCode, |s, _who, i| areas::area_by_gps(&s.db, s.geocoder.as_ref(), i.lat, i.lng));
    op!(merchant_category_tree_get, MerchantCategoryTreeGetInput, MerchantCategoryTreeGetOutput, MerchantCategoryTreeResponse, MerchantCategoryTreeResponseCode, |s, _who, _i| catalogue::category_tree(&s.db));
    op!(merchant_list, MerchantListInput, MerchantListOutput, MerchantListResponse, MerchantListResponseCode, |s, who, i| catalogue::merchant_list(&s.db, who.oper_id, &i, &s.today()));
    op!(merchant_get, MerchantGetInput, MerchantGetOutput, MerchantDetailResponse, MerchantDetailResponseCode, |s, who, i| catalogue::merchant_get(&s.db, who.oper_id, i.id, i.lng, i.lat, &s.today()));
    op!(goods_list, GoodsListInput, GoodsListOutput, GoodsListResponse, GoodsListResponseCode, |s, _who, i| catalogue::goods_list(&s.db, i.merchant_id, &s.today()));
    op!(goods_get, GoodsGetInput, GoodsGetOutput, GoodsDetailResponse, GoodsDetailResponseCode, |s, _who, i| catalogue::goods_get(&s.db, i.id));
    op!(order_list, OrderListInput, OrderListOutput, OrderListResponse, OrderListResponseCode, |s, who, i| s.order_list(who, i.status.map(|x| x as i32)));
    op!(order_get, OrderGetInput, OrderGetOutput, OrderDetailResponse, OrderDetailResponseCode, |s, who, i| s.order_get(who, &i.order_no));
    op!(order_buy, OrderBuyInput, OrderBuyOutput, OrderBuyResponse, OrderBuyResponseCode, |s, who, i| s.order_buy(who, i.body.goods_id, i.body.number, i.body.notify_mobile.as_ref().and_then(|m| m.as_deref())));
    op!(order_refund, OrderRefundInput, OrderRefundOutput, OrderRefundResponse, OrderRefundResponseCode, |s, who, i| s.order_refund(who, &i.body.order_no));
    op!(order_pay, OrderPayInput, OrderPayOutput, OrderBuyResponse, OrderBuyResponseCode, |s, who, i| s.order_pay(who, &i.body.order_no));

    async fn miniprogram_bridge_pay_get(&self, ctx: Context<Caller>, input: MiniprogramBridgePayGetInput) -> MiniprogramBridgePayGetOutput {
        match self.0.bridge_page(&ctx.principal, input.target_oper_id, &input.order_no, input.user_id, &input.page).await {
            Ok(html) => MiniprogramBridgePayGetOutput::Ok(html),
            Err(error) => error_output("o2o", ctx.operation_id, error, 0),
        }
    }
}

/// The routes outside the contract: each operator's WeChat Pay notify ([`NOTIFY_PATH`], v3
/// JSON ack `{code, message}`), and while `sandbox` the sandbox merchant verifying a code:
/// `POST /_sandbox/verify?verify_code=…` → 200 `{"verify_code","order_no","completed"}`;
/// unknown code 404, used, refunded or its order not paid 409, missing 400 (`{"error"}`).
pub fn extra_routes(service: Arc<O2oService>, sandbox: bool) -> Router {
    let router = Router::new().route(NOTIFY_PATH, axum::routing::post(notify));
    let router = if sandbox { router.route("/_sandbox/verify", axum::routing::post(sandbox_verify)) } else { router };
    router.with_state(service)
}

async fn notify(State(service): State<Arc<O2oService>>, Path(oper_id): Path<i64>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(operator) = service.operator(oper_id) else {
        return (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"code": "FAIL", "message": "unknown merchant"}))).into_response();
    };
    let outcome = operator.payments.notify(&headers, &body).await;
    let status = StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = if status == StatusCode::OK { "SUCCESS" } else { "FAIL" };
    (status, axum::Json(serde_json::json!({"code": code, "message": outcome.message()}))).into_response()
}

async fn sandbox_verify(State(service): State<Arc<O2oService>>, Query(query): Query<std::collections::HashMap<String, String>>) -> Response {
    let error = |status: StatusCode, message: &str| (status, axum::Json(serde_json::json!({"error": message}))).into_response();
    let Some(code) = query.get("verify_code").filter(|c| !c.is_empty() && c.len() <= 32) else {
        return error(StatusCode::BAD_REQUEST, "query parameter verify_code is required");
    };
    match service.verify(code).await {
        Ok(Verified::Verified { order_no, completed }) => {
            axum::Json(serde_json::json!({"verify_code": code, "order_no": order_no, "completed": completed})).into_response()
        }
        Ok(Verified::Unknown) => error(StatusCode::NOT_FOUND, "no such verify code"),
        Ok(Verified::NotUsable(status)) => error(StatusCode::CONFLICT, match status {
            2 => "the code is verified already",
            3 => "the code is refunded",
            _ => "the code's order is not paid",
        }),
        Err(e) => {
            tracing::error!(api = "o2o", error = %e, detail = e.detail.as_deref().unwrap_or(""), "sandbox verify failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
