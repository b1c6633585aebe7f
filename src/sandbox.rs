//! The sandbox: stand-ins for SMS, WeChat login and WeChat Pay, and the `/_sandbox/*` routes that
//! let a developer or a test see and drive them. The routes are plain JSON, outside every API
//! contract, and exist only where the server mounts them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde_json::json;

use crate::providers::sms::SandboxSms;
use crate::providers::wechat_pay::sandbox::{SandboxPay, SandboxPayError};

/// The sandbox providers' shared state.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// The SMS outbox (`GET /_sandbox/sms`).
    pub sms: Arc<SandboxSms>,
    /// The payment platform when the sandbox WeChat Pay provider is active
    /// (`POST /_sandbox/pay/{order_id}`); `None` answers 404 there.
    pub pay: Option<Arc<SandboxPay>>,
}

#[derive(Clone)]
struct RouteState {
    sandbox: Sandbox,
    api: &'static str,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A mainland mobile number: 11 digits starting with 1 (domain.md §4.2).
fn valid_phone(phone: &str) -> bool {
    phone.len() == 11 && phone.starts_with('1') && phone.bytes().all(|b| b.is_ascii_digit())
}

impl Sandbox {
    /// A sandbox with an SMS outbox and, when the sandbox pay provider is active, a payment
    /// platform.
    pub fn new(sms: Arc<SandboxSms>, pay: Option<Arc<SandboxPay>>) -> Sandbox {
        Sandbox { sms, pay }
    }

    /// The `/_sandbox/*` routes for API `api` (its outbox messages only):
    ///
    /// - `GET /_sandbox/sms?phone=NUMBER` → 200 `{"phone","messages":[{"code","type","sent_at"}]}`,
    ///   newest first, `sent_at` RFC 3339 UTC with milliseconds; a missing or invalid phone → 400.
    /// - `POST /_sandbox/pay/{order_id}?result=success|fail` (default success) → 200
    ///   `{"order_id","result","notify":{"status","body"}}` after delivering the notify; unknown
    ///   order (or no sandbox pay) 404, expired / closed / already paid / being paid 409, bad result 400,
    ///   notify not delivered 502.
    ///
    /// Errors are `{"error": "…"}`.
    pub fn routes(&self, api: &'static str) -> Router {
        Router::new()
            .route("/_sandbox/sms", get(sms_outbox))
            .route("/_sandbox/pay/{order_id}", post(pay_order))
            .with_state(RouteState { sandbox: self.clone(), api })
    }
}

async fn sms_outbox(State(state): State<RouteState>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(phone) = query.get("phone") else {
        return error(StatusCode::BAD_REQUEST, "query parameter phone is required");
    };
    if !valid_phone(phone) {
        return error(StatusCode::BAD_REQUEST, "phone must be 11 digits starting with 1");
    }
    let messages: Vec<_> = state
        .sandbox
        .sms
        .entries(Some(state.api), phone)
        .into_iter()
        .map(|e| {
            json!({
                "code": e.code,
                "type": e.purpose.as_str(),
                "sent_at": e.sent_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            })
        })
        .collect();
    Json(json!({ "phone": phone, "messages": messages })).into_response()
}

async fn pay_order(
    State(state): State<RouteState>,
    Path(order_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(pay) = &state.sandbox.pay else {
        return error(StatusCode::NOT_FOUND, "the sandbox WeChat Pay provider is not active");
    };
    let result = query.get("result").map(String::as_str).unwrap_or("success");
    let success = match result {
        "success" => true,
        "fail" => false,
        _ => return error(StatusCode::BAD_REQUEST, "result must be success or fail"),
    };
    match pay.pay(&order_id, success).await {
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use chrono::{TimeDelta, Utc};
    use http_body_util::BodyExt as _;
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;
    use crate::providers::wechat_pay::{PrepayRequest, WechatPay as _};
    use crate::providers::{SmsProvider as _, SmsPurpose};

    async fn call(router: &Router, method: &str, uri: &str) -> (StatusCode, Value) {
        let request = Request::builder().method(method).uri(uri).body(Body::empty()).expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn sms_outbox_shows_this_apis_codes_newest_first() {
        let sms = Arc::new(SandboxSms::new());
        sms.send_code("heating", "13800000000", "123456", SmsPurpose::Login, 300).await.expect("sent");
        sms.send_code("points", "13800000000", "999999", SmsPurpose::Login, 300).await.expect("sent");
        sms.send_code("heating", "13800000000", "654321", SmsPurpose::Register, 300).await.expect("sent");
        let router = Sandbox::new(sms, None).routes("heating");

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
    async fn pay_route_errors() {
        let sms = Arc::new(SandboxSms::new());
        let (status, _) =
            call(&Sandbox::new(sms.clone(), None).routes("heating"), "POST", "/_sandbox/pay/ORDER_001").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let clock = crate::clock::Clock::default();
        let pay = Arc::new(SandboxPay::new("wx1", "1900000001", clock.clone()).expect("keygen"));
        let router = Sandbox::new(sms, Some(pay.clone())).routes("heating");
        let (status, body) = call(&router, "POST", "/_sandbox/pay/ORDER_404").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["error"].as_str().is_some_and(|e| e.contains("ORDER_404")));

        pay.jsapi_prepay(&PrepayRequest {
            out_trade_no: "ORDER_001".into(),
            description: "d".into(),
            amount_fen: 1,
            payer_openid: None,
            notify_url: "http://127.0.0.1:9/notify".into(),
            time_expire: Utc::now() + TimeDelta::minutes(5),
        })
        .await
        .expect("prepay");
        let (status, _) = call(&router, "POST", "/_sandbox/pay/ORDER_001?result=maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Nothing listens on port 9: the notify cannot be delivered, and the order stays payable.
        let (status, _) = call(&router, "POST", "/_sandbox/pay/ORDER_001").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            pay.order("ORDER_001").map(|o| o.state),
            Some(crate::providers::wechat_pay::sandbox::SandboxOrderState::NotPaid)
        );
        // Past its time_expire by the server's clock, or closed: 409.
        clock.advance(std::time::Duration::from_secs(6 * 60));
        let (status, body) = call(&router, "POST", "/_sandbox/pay/ORDER_001").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["error"].as_str().is_some_and(|e| e.contains("expired")), "{body}");
        pay.close("ORDER_001").await.expect("closes");
        let (status, body) = call(&router, "POST", "/_sandbox/pay/ORDER_001").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["error"].as_str().is_some_and(|e| e.contains("closed")), "{body}");
    }
}
