//! The heating API (000) for real, one module per tag of `openapi/heating.yaml`, tests named
//! after the operationId they exercise: the document's journey end to end and the fault cases.
//! Every JSON answer is checked against the contract by `TestApp`.

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::app::TestApp;

mod auth;
mod config;
mod heat;
mod journey;
mod notify;
mod payment;
mod readme;
mod real;
mod server;
mod sms;
mod user;

/// The demo owner of H202400001 (张三).
pub const OWNER_ID: &str = "610102199001011231";

/// Send a code of `kind` to `phone` and read it from the sandbox outbox.
pub async fn code(app: &TestApp, phone: &str, kind: &str) -> String {
    let sent = app.post("/api/sms/send", None, json!({"phone": phone, "type": kind})).await;
    assert_eq!((sent.status, sent.code()), (200, 200), "{}", sent.body);
    app.sms_code(phone).await
}

/// Register `phone` and log in at once (a registration lets the login code go without waiting
/// out the register code's minute); answers (access token, refresh token).
pub async fn user(app: &TestApp, phone: &str) -> (String, String) {
    let register_code = code(app, phone, "register").await;
    let registered = app.post("/api/auth/register", None, json!({"phone": phone, "code": register_code, "password": "123456789"})).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    sign_in(app, phone).await
}

/// Log a registered `phone` in (a minute after its last code); answers (access, refresh).
pub async fn login(app: &TestApp, phone: &str) -> (String, String) {
    app.server.clock.advance(Duration::from_secs(61));
    sign_in(app, phone).await
}

/// Send `phone` a login code now and log in with it; answers (access, refresh).
async fn sign_in(app: &TestApp, phone: &str) -> (String, String) {
    let login_code = code(app, phone, "login").await;
    let login = app.post("/api/auth/login", None, json!({"phone": phone, "code": login_code})).await;
    assert_eq!(login.status, 200, "{}", login.body);
    (login.data()["token"].as_str().unwrap().to_owned(), login.data()["refresh_token"].as_str().unwrap().to_owned())
}

/// A user bound to H202400001.
pub async fn owner(app: &TestApp, phone: &str) -> String {
    let (token, _) = user(app, phone).await;
    let bound = app.post("/api/heat/bind", Some(&token), bind_body("张三", OWNER_ID)).await;
    assert_eq!(bound.status, 200, "{}", bound.body);
    token
}

/// A `heat_bind` body for H202400001.
pub fn bind_body(name: &str, id: &str) -> Value {
    json!({"heat_account": "H202400001", "real_name": name, "id_card": id, "address": "天山区xx小区xx号楼xx单元xx室"})
}

/// The `payment_create` body for every unpaid bill of the caller's account, as of now.
pub async fn order_body(app: &TestApp, token: &str) -> Value {
    let info = app.get("/api/payment/info", Some(token)).await;
    assert_eq!(info.status, 200, "{}", info.body);
    let bills: Vec<Value> = info.data()["unpaid_bills"].as_array().unwrap().iter().map(|b| b["bill_id"].clone()).collect();
    let amount = info.data()["total_unpaid"].as_f64().unwrap() + info.data()["total_late_fee"].as_f64().unwrap();
    json!({"bill_ids": bills, "amount": (amount * 100.0).round() / 100.0})
}

/// Create a payment for every unpaid bill; answers (order_id, amount).
pub async fn order(app: &TestApp, token: &str) -> (String, Value) {
    let body = order_body(app, token).await;
    let created = app.post("/api/payment/create", Some(token), body.clone()).await;
    assert_eq!(created.status, 200, "{}", created.body);
    (created.data()["order_id"].as_str().unwrap().to_owned(), body["amount"].clone())
}

/// An order's status as `payment_status_get` answers it.
pub async fn status_of(app: &TestApp, token: &str, order_id: &str) -> String {
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(token)).await;
    assert_eq!(status.status, 200, "{}", status.body);
    status.data()["status"].as_str().unwrap().to_owned()
}

/// POST a notify as WeChat Pay would: its headers, the body as bytes.
pub async fn post_notify(app: &TestApp, headers: &HeaderMap, body: Vec<u8>) -> (u16, Value) {
    let request = app.client.post(app.url("/api/payment/notify")).header("Content-Type", "application/json").headers(headers.clone());
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The same headers with `name` set to `value`.
pub fn with_header(headers: &HeaderMap, name: &'static str, value: &str) -> HeaderMap {
    let mut headers = headers.clone();
    headers.insert(name, value.parse().unwrap());
    headers
}

/// The value of header `name`.
pub fn header_of<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// The notify the sandbox platform would send for paying (or failing) `order_id`, not sent.
pub async fn sandbox_notify(app: &TestApp, order_id: &str, success: bool) -> (HeaderMap, Vec<u8>) {
    app.pay_platform("heating").build_notify(order_id, success).await.unwrap()
}

/// A notify signed by the sandbox platform (so it verifies) about `transaction`.
pub async fn platform_notify(app: &TestApp, id: &str, event_type: &str, transaction: Value) -> (HeaderMap, Vec<u8>) {
    let pay = app.pay_platform("heating");
    let platform = pay.platform().await.unwrap();
    let resource = platform.encrypt_resource(transaction.to_string().as_bytes(), "transaction").unwrap();
    let body = json!({"id": id, "create_time": "2026-11-21T15:55:28+08:00", "event_type": event_type,
        "resource_type": "encrypt-resource", "summary": "支付成功", "resource": resource});
    let body = body.to_string().into_bytes();
    (platform.sign_notify(&body, app.server.clock.now()).unwrap(), body)
}

/// A transaction resource for `out_trade_no` of `total` fen from the heating merchant.
pub fn transaction(app: &TestApp, out_trade_no: &str, total: i64, transaction_id: &str) -> Value {
    let merchant = app.parts("heating").pay.merchant().clone();
    json!({"appid": merchant.appid, "mchid": merchant.mchid, "out_trade_no": out_trade_no, "transaction_id": transaction_id,
        "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
        "success_time": "2026-11-21T15:55:28+08:00", "payer": {"openid": "sb_x"},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}})
}

/// Fen of a JSON yuan amount.
pub fn fen_of(amount: &Value) -> i64 {
    (amount.as_f64().unwrap() * 100.0).round() as i64
}

/// Drive `futures` together (every request in flight before any answer is read).
pub async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}

/// base64 of `bytes`.
pub fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
