//! The sandbox: stand-ins for SMS, WeChat login, WeChat Pay and the 安防平台, and the `/_sandbox/*`
//! routes that let a developer or a test see and drive them. The routes are plain JSON, outside
//! every API contract, and each exists only on the ports of APIs whose provider it drives is the
//! sandbox.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::SecondsFormat;
use secrecy::SecretString;
use serde_json::json;

use crate::clock::Clock;
use crate::pii::valid_phone;
use crate::providers::security_platform::SandboxSecurity;
use crate::providers::sms::SandboxSms;
use crate::providers::wechat_login::SandboxLogin;
use crate::providers::wechat_pay::sandbox::{SandboxPay, SandboxPayError};

/// One API's sandbox: the providers of that API that are stand-ins.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// The API.
    pub api: &'static str,
    /// The SMS outbox, when SMS is the sandbox (`GET /_sandbox/sms`).
    pub sms: Option<Arc<SandboxSms>>,
    /// The mini-program's appid, when its WeChat login is the sandbox
    /// (`GET /_sandbox/wechat/encrypt`).
    pub login_appid: Option<String>,
    /// The payment platforms of the API's merchants that are the sandbox (one per merchant:
    /// o2o has one per operator) (`POST /_sandbox/pay/{order_id}` finds the order's).
    pub pays: Vec<Arc<SandboxPay>>,
    /// The 安防平台, when the API's is the sandbox (`POST /_sandbox/security`).
    pub security: Option<Arc<SandboxSecurity>>,
    /// The server's clock (watermarks).
    pub clock: Clock,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

impl Sandbox {
    /// Whether any of the API's providers is the sandbox (then the routes exist).
    pub fn is_active(&self) -> bool {
        self.sms.is_some()
            || self.login_appid.is_some()
            || !self.pays.is_empty()
            || self.security.is_some()
    }

    /// The routes [`Sandbox::routes`] serves, as (method and path, what it does), for the
    /// start-up banner and the index page.
    pub fn active_routes(&self) -> Vec<(&'static str, &'static str)> {
        let mut routes = Vec::new();
        if self.sms.is_some() {
            routes.push(("GET /_sandbox/sms?phone=NUMBER", "the codes sent to that phone, newest first"));
        }
        if self.login_appid.is_some() {
            routes.push((
                "GET /_sandbox/wechat/encrypt?code=CODE&data=JSON",
                "{encryptedData, iv}: the JSON object sealed as WeChat seals user data, for the sandbox session of that wx.login code",
            ));
        }
        if !self.pays.is_empty() {
            routes.push((
                "POST /_sandbox/pay/{order_id}?result=success|fail",
                "the sandbox payment platform pays (or fails) the order and sends the API a signed WeChat Pay notify",
            ));
        }
        if self.security.is_some() {
            routes.push((
                "POST /_sandbox/security?fail=true|false",
                "switch the sandbox 安防平台 to failing (安防平台接口出现故障) or back, for every instance",
            ));
        }
        routes
    }

    /// The `/_sandbox/*` routes of the API's active sandbox providers:
    ///
    /// - `GET /_sandbox/sms?phone=NUMBER` → 200 `{"phone","messages":[{"code","type","sent_at"}]}`,
    ///   this API's codes, newest first, `sent_at` RFC 3339 UTC with milliseconds; a missing or
    ///   invalid phone → 400.
    /// - `GET /_sandbox/wechat/encrypt?code=CODE&data=JSON` → 200 `{"encryptedData","iv"}`: the JSON
    ///   object `data` sealed as WeChat seals getUserProfile/getPhoneNumber data (AES-128-CBC,
    ///   watermark with this API's appid) with the session key the sandbox login gives `code` —
    ///   send them with that same code to the API's login. Missing code, or data that is no JSON
    ///   object → 400.
    /// - `POST /_sandbox/pay/{order_id}?result=success|fail` (default success; `order_id` the
    ///   out_trade_no, the prepay_id a mini-program holds, or a NATIVE code_url or its `pr` token) → 200
    ///   `{"order_id","result","notify":{"status","body"}}` after delivering the notify; unknown
    ///   order 404, expired / closed / already paid / being paid 409, bad result 400, notify not
    ///   delivered 502.
    /// - `POST /_sandbox/security?fail=true|false` → 200 `{"fault": bool}`: the sandbox 安防平台
    ///   fails every call (002 §2.2.1.4 example 4) or answers again, on every instance (the
    ///   switch is in the database); `fail` missing or another value → 400.
    ///
    /// Errors are `{"error": "…"}`.
    pub fn routes(&self) -> Router {
        let mut router = Router::new();
        if self.sms.is_some() {
            router = router.route("/_sandbox/sms", get(sms_outbox));
        }
        if self.login_appid.is_some() {
            router = router.route("/_sandbox/wechat/encrypt", get(wechat_encrypt));
        }
        if !self.pays.is_empty() {
            router = router.route("/_sandbox/pay/{order_id}", post(pay_order));
        }
        if self.security.is_some() {
            router = router.route("/_sandbox/security", post(security_fault));
        }
        router.with_state(self.clone())
    }
}

async fn sms_outbox(State(state): State<Sandbox>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(phone) = query.get("phone") else {
        return error(StatusCode::BAD_REQUEST, "query parameter phone is required");
    };
    if !valid_phone(phone) {
        return error(StatusCode::BAD_REQUEST, "phone must be a mainland mobile number: 11 digits, 1 then 3-9");
    }
    let Some(sms) = &state.sms else {
        return error(StatusCode::NOT_FOUND, "the sandbox SMS provider is not active");
    };
    let entries = match sms.entries(Some(state.api), phone).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, "reading the sandbox SMS outbox failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "the database failed");
        }
    };
    let messages: Vec<_> = entries
        .into_iter()
        .map(|e| {
            json!({
                "code": e.code,
                "type": e.purpose,
                "sent_at": e.sent_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            })
        })
        .collect();
    Json(json!({ "phone": phone, "messages": messages })).into_response()
}

async fn wechat_encrypt(State(state): State<Sandbox>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(appid) = &state.login_appid else {
        return error(StatusCode::NOT_FOUND, "the sandbox WeChat login is not active");
    };
    let Some(code) = query.get("code").filter(|c| !c.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "query parameter code is required (the wx.login code you will log in with)");
    };
    let data = match query.get("data").map(|d| serde_json::from_str::<serde_json::Value>(d)) {
        Some(Ok(data)) if data.is_object() => data,
        _ => return error(StatusCode::BAD_REQUEST, "query parameter data must be a JSON object, e.g. {\"nickName\":\"张三\"}"),
    };
    let session_key = SecretString::from(SandboxLogin::session_key_for(code));
    match crate::identity::wechat::seal(&session_key, &data, appid, state.clock.now().timestamp()) {
        Ok((encrypted_data, iv)) => Json(json!({ "encryptedData": encrypted_data, "iv": iv })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn pay_order(State(state): State<Sandbox>, Path(order_id): Path<String>, Query(query): Query<HashMap<String, String>>) -> Response {
    if state.pays.is_empty() {
        return error(StatusCode::NOT_FOUND, "the sandbox WeChat Pay provider is not active");
    }
    let result = query.get("result").map(String::as_str).unwrap_or("success");
    let success = match result {
        "success" => true,
        "fail" => false,
        _ => return error(StatusCode::BAD_REQUEST, "result must be success or fail"),
    };
    // The merchant that holds the order pays it (o2o: one platform per operator). Each `pay`
    // answers NotFound, having written nothing, when the order is not its own (a success first
    // tries its conditional claim, which changes no row of another merchant's order), and no
    // merchant is asked twice.
    let mut paid = Err(SandboxPayError::NotFound(order_id.clone()));
    for pay in &state.pays {
        paid = pay.pay(&order_id, success).await;
        if !matches!(paid, Err(SandboxPayError::NotFound(_))) {
            break;
        }
    }
    match paid {
        Ok(outcome) => Json(json!({
            "order_id": order_id,
            "result": result,
            "notify": { "status": outcome.notify_status, "body": outcome.notify_body },
        }))
        .into_response(),
        Err(e) => {
            let status = match e {
                SandboxPayError::NotFound(_) => StatusCode::NOT_FOUND,
                SandboxPayError::Expired(_)
                | SandboxPayError::Closed(_)
                | SandboxPayError::AlreadyPaid(_)
                | SandboxPayError::InProgress(_) => StatusCode::CONFLICT,
                SandboxPayError::Notify(_) => StatusCode::BAD_GATEWAY,
                SandboxPayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        }
    }
}

async fn security_fault(
    State(state): State<Sandbox>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(security) = &state.security else {
        return error(StatusCode::NOT_FOUND, "the sandbox 安防平台 is not active");
    };
    let fault = match query.get("fail").map(String::as_str) {
        Some("true") => true,
        Some("false") => false,
        _ => return error(StatusCode::BAD_REQUEST, "query parameter fail must be true or false"),
    };
    match security.set_fault(fault, state.clock.now_ms()).await {
        Ok(()) => Json(json!({ "fault": fault })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "switching the sandbox 安防平台 failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the database failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use chrono::{TimeDelta, Utc};
    use http_body_util::BodyExt as _;
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;
    use crate::providers::SmsProvider as _;
    use crate::providers::wechat_pay::{PrepayRequest, WechatPay as _};

    async fn db() -> crate::storage::Db {
        crate::storage::Db::connect("sqlite::memory:").await.expect("a database")
    }

    fn sandbox(api: &'static str) -> Sandbox {
        let clock = Clock::default();
        Sandbox { api, sms: None, login_appid: None, pays: Vec::new(), security: None, clock }
    }

    impl Sandbox {
        fn with_sms(self, sms: Arc<SandboxSms>) -> Sandbox {
            Sandbox { sms: Some(sms), ..self }
        }
    }

    async fn call(router: &Router, method: &str, uri: &str) -> (StatusCode, Value) {
        let request = Request::builder().method(method).uri(uri).body(Body::empty()).expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn sms_outbox_shows_this_apis_codes_newest_first() {
        let sms = Arc::new(SandboxSms::new(db().await));
        sms.send_code("heating", "13800000000", "123456", "login", 300).await.expect("sent");
        sms.send_code("points", "13800000000", "999999", "login", 300).await.expect("sent");
        sms.send_code("heating", "13800000000", "654321", "register", 300).await.expect("sent");
        let router = sandbox("heating").with_sms(sms).routes();

        let (status, body) = call(&router, "GET", "/_sandbox/sms?phone=13800000000").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["phone"], "13800000000");
        let messages = body["messages"].as_array().expect("array");
        assert_eq!(messages.len(), 2);
        assert_eq!((messages[0]["code"].as_str(), messages[0]["type"].as_str()), (Some("654321"), Some("register")));
        assert_eq!(messages[1]["code"], "123456");
        let sent_at = messages[0]["sent_at"].as_str().expect("string");
        assert!(sent_at.ends_with('Z') && sent_at.len() == "2024-01-01T12:00:00.000Z".len(), "{sent_at}");

        for uri in ["/_sandbox/sms", "/_sandbox/sms?phone=123", "/_sandbox/sms?phone=2380000000a"] {
            let (status, body) = call(&router, "GET", uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert!(body["error"].is_string());
        }
    }

    #[tokio::test]
    async fn routes_exist_only_for_sandbox_providers() {
        let (status, _) = call(&sandbox("heating").routes(), "POST", "/_sandbox/pay/ORDER_001").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let only_sms = sandbox("heating").with_sms(Arc::new(SandboxSms::new(db().await))).routes();
        for uri in ["/_sandbox/pay/ORDER_001", "/_sandbox/wechat/encrypt?code=a&data={}"] {
            let request = Request::builder().method("POST").uri(uri).body(Body::empty()).expect("request");
            let status = only_sms.clone().oneshot(request).await.expect("infallible").status();
            assert!(status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED, "{uri}: {status}");
        }
    }

    #[tokio::test]
    async fn the_routes_listed_are_the_routes_served() {
        let pay = Arc::new(SandboxPay::new(db().await, "wx1", "1900000001", Clock::default()).expect("a platform"));
        let only_sms = sandbox("heating").with_sms(Arc::new(SandboxSms::new(db().await)));
        let all = Sandbox { login_appid: Some("wx1".into()), pays: vec![pay], ..only_sms.clone() };
        for (sandbox, count) in [(sandbox("heating"), 0), (only_sms, 1), (all, 3)] {
            let listed = sandbox.active_routes();
            assert_eq!(listed.len(), count, "{listed:?}");
            let router = sandbox.routes();
            for (route, _) in listed {
                let (method, template) = route.split_once(' ').expect("METHOD /path");
                let uri = template
                    .replace("{order_id}", "O1")
                    .replace("NUMBER", "13800000000")
                    .replace("CODE", "c")
                    .replace("JSON", "%7B%7D")
                    .replace("success|fail", "success")
                    .replace("true|false", "false");
                // The route's own answer is JSON (even its 404 for an unknown order); the
                // router's refusal of a path it does not serve has no body.
                let (status, body) = call(&router, method, &uri).await;
                assert!(body.is_object(), "{route}: {status} {body}");
            }
        }
    }

    #[tokio::test]
    async fn encrypt_seals_for_the_sandbox_session_of_the_code() {
        let router = Sandbox { login_appid: Some("wx_sandbox_points".into()), ..sandbox("points") }.routes();
        let data = serde_json::json!({"nickName": "张三"}).to_string();
        let uri = format!("/_sandbox/wechat/encrypt?code=abc&data={}", form_urlencoded::byte_serialize(data.as_bytes()).collect::<String>());
        let (status, body) = call(&router, "GET", &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (sealed, iv) = (body["encryptedData"].as_str().unwrap(), body["iv"].as_str().unwrap());
        let opened = crate::identity::wechat::open(&SandboxLogin::session_key_for("abc"), sealed, iv, "wx_sandbox_points").unwrap();
        assert_eq!(opened["nickName"], "张三");
        assert!(crate::identity::wechat::open(&SandboxLogin::session_key_for("other"), sealed, iv, "wx_sandbox_points").is_err());
        for uri in ["/_sandbox/wechat/encrypt?data={}", "/_sandbox/wechat/encrypt?code=abc&data=[1]", "/_sandbox/wechat/encrypt?code=abc"] {
            let (status, _) = call(&router, "GET", uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        }
    }

    #[tokio::test]
    async fn security_route_switches_the_sandbox_platform() {
        let db = crate::storage::Db::connect("sqlite::memory:").await.expect("a database");
        let vault = Arc::new(crate::pii::Vault::new(&[7; 32], &[9; 32]).expect("keys"));
        let security = Arc::new(SandboxSecurity::new(db, vault));
        let listed = Sandbox { security: Some(security.clone()), ..sandbox("community") };
        assert!(listed.is_active());
        assert_eq!(listed.active_routes().len(), 1);
        let router = listed.routes();
        let (status, body) = call(&router, "POST", "/_sandbox/security?fail=true").await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "fault": true })));
        assert!(security.fault().await.expect("read"));
        let (status, body) = call(&router, "POST", "/_sandbox/security?fail=false").await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "fault": false })));
        assert!(!security.fault().await.expect("read"));
        for uri in ["/_sandbox/security", "/_sandbox/security?fail=maybe"] {
            let (status, body) = call(&router, "POST", uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert!(body["error"].is_string());
        }
        let inactive = sandbox("community").routes();
        let (status, _) = call(&inactive, "POST", "/_sandbox/security?fail=true").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "only while the platform is the sandbox");
    }

    /// Place a 1-fen order `out_trade_no` with `pay`, notified to a port nothing listens on; its
    /// prepay_id.
    async fn place(pay: &SandboxPay, out_trade_no: &str) -> String {
        pay.jsapi_prepay(&PrepayRequest {
            out_trade_no: out_trade_no.into(),
            description: "d".into(),
            amount_fen: 1,
            payer_openid: None,
            notify_url: "http://127.0.0.1:9/notify".into(),
            time_expire: Utc::now() + TimeDelta::minutes(5),
        })
        .await
        .expect("prepay")
    }

    #[tokio::test]
    async fn pay_route_errors() {
        let pay = Arc::new(SandboxPay::new(db().await, "wx1", "1900000001", Clock::default()).expect("a platform"));
        let router = Sandbox { pays: vec![pay.clone()], ..sandbox("heating") }.routes();
        let (status, body) = call(&router, "POST", "/_sandbox/pay/ORDER_404").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["error"].as_str().is_some_and(|e| e.contains("ORDER_404")));

        place(&pay, "ORDER_001").await;
        let (status, _) = call(&router, "POST", "/_sandbox/pay/ORDER_001?result=maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Nothing listens on port 9: the notify cannot be delivered, and the order stays payable.
        let (status, _) = call(&router, "POST", "/_sandbox/pay/ORDER_001").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            pay.order("ORDER_001").await.expect("read").map(|o| o.state),
            Some(crate::providers::wechat_pay::sandbox::SandboxOrderState::NotPaid)
        );
    }

    #[tokio::test]
    async fn the_pay_route_finds_the_merchant_holding_the_order() {
        // Two merchants (o2o's operators): an order placed with the second is paid by it.
        let db = db().await;
        let first = Arc::new(SandboxPay::new(db.clone(), "wx1", "1900000003", Clock::default()).expect("a platform"));
        let second = Arc::new(SandboxPay::new(db, "wx2", "1900000005", Clock::default()).expect("a platform"));
        let router = Sandbox { pays: vec![first.clone(), second.clone()], ..sandbox("o2o") }.routes();
        let prepay_id = place(&second, "ORDER_OF_5").await;
        let holds = async |pay: &SandboxPay, id: &str| pay.holds(id).await.expect("read");
        assert!(holds(&second, "ORDER_OF_5").await && holds(&second, &prepay_id).await);
        assert!(!holds(&first, "ORDER_OF_5").await && !holds(&first, &prepay_id).await);
        // The second merchant tries to deliver its notify (nothing listens: 502); the first
        // would have answered 404.
        for id in ["ORDER_OF_5", prepay_id.as_str()] {
            let (status, body) = call(&router, "POST", &format!("/_sandbox/pay/{id}")).await;
            assert_eq!(status, StatusCode::BAD_GATEWAY, "{id}: {body}");
        }
        let (status, _) = call(&router, "POST", "/_sandbox/pay/ORDER_OF_NOBODY").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
