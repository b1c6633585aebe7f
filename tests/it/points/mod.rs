//! The points API (001) for real, one module per area of `openapi/points.yaml`, tests named after
//! the operationId they exercise: the mini-program's journey end to end (a new user and the demo
//! user) and the fault cases — logins, refreshes, payments and their notifies, metered debits,
//! API keys, the yearly expiry, maintenance, and every provider real at wiremock. Every JSON
//! answer is checked against the contract by `TestApp`.

use axum::http::HeaderMap;
use chrono::Datelike as _;
use serde_json::{Value, json};

use crate::app::{Reply, TestApp};

mod auth;
mod consume;
mod expiry;
mod journey;
mod keys;
mod notify;
mod payment;
mod real;
mod system;

pub const LOGIN: &str = "/api/v1/auth/wechat-login";
pub const REFRESH: &str = "/api/v1/auth/refresh-token";
pub const USER_INFO: &str = "/api/v1/user/info";
pub const PACKAGES: &str = "/api/v1/points/packages";
pub const CREATE_ORDER: &str = "/api/v1/points/create-order";
pub const PURCHASES: &str = "/api/v1/points/purchase-history";
pub const CONSUMPTION: &str = "/api/v1/points/consumption-history";
pub const CONSUME: &str = "/api/v1/points/consume";
pub const NOTIFY: &str = "/api/v1/points/payment-notify";
pub const KEYS: &str = "/api/v1/api-keys";
pub const KEY_CREATE: &str = "/api/v1/api-keys/create";
pub const KEY_DELETE: &str = "/api/v1/api-keys/delete";
pub const KEY_STATUS: &str = "/api/v1/api-keys/update-status";
pub const STATUS: &str = "/api/v1/system/status";
pub const NOTICE: &str = "/api/v1/system/notice";

/// The demo user's expired key (`测试环境`) and inactive key (`旧版集成`), as seeded.
pub const EXPIRED_KEY: &str = "sk_live_DemoSandboxKeyExpired0000000000000000000";
pub const INACTIVE_KEY: &str = "sk_live_DemoSandboxKeyInactive000000000000000000";

/// Log in with a sandbox `wx.login` code only; the access token.
pub async fn login(app: &TestApp, code: &str) -> String {
    let reply = app.post(LOGIN, None, json!({"code": code})).await;
    assert_eq!((reply.status, reply.code()), (200, 0), "{}", reply.body);
    reply.data()["token"].as_str().unwrap().to_owned()
}

/// `{encryptedData, iv}` of `data` as WeChat seals it for the sandbox session of `code`.
pub async fn sealed(app: &TestApp, code: &str, data: &Value) -> (String, String) {
    let response = app
        .client
        .get(app.url("/_sandbox/wechat/encrypt"))
        .query(&[("code", code), ("data", &data.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sealed: Value = response.json().await.unwrap();
    (sealed["encryptedData"].as_str().unwrap().to_owned(), sealed["iv"].as_str().unwrap().to_owned())
}

/// `user_info_get`'s data.
pub async fn user_info(app: &TestApp, token: &str) -> Value {
    let reply = app.get(USER_INFO, Some(token)).await;
    assert_eq!((reply.status, reply.code()), (200, 0), "{}", reply.body);
    reply.data().clone()
}

/// The caller's points.
pub async fn balance(app: &TestApp, token: &str) -> i64 {
    user_info(app, token).await["points"].as_i64().unwrap()
}

/// Order `package`; the order id.
pub async fn order(app: &TestApp, token: &str, package: &str) -> String {
    let created = app.post(CREATE_ORDER, Some(token), json!({"packageId": package})).await;
    assert_eq!((created.status, created.code()), (200, 0), "{}", created.body);
    created.data()["orderId"].as_str().unwrap().to_owned()
}

/// Order `package` and have the sandbox platform pay it (its notify acknowledged); the order id.
pub async fn buy(app: &TestApp, token: &str, package: &str) -> String {
    let order_id = order(app, token, package).await;
    let paid = app.sandbox_pay(&order_id, "success").await;
    assert_eq!((paid.status, &paid.body["notify"]["status"]), (200, &json!(200)), "{}", paid.body);
    order_id
}

/// `points_payment_check`'s data.
pub async fn check_payment(app: &TestApp, token: &str, order_id: &str) -> Value {
    let reply = app.get(&format!("/api/v1/points/check-payment?orderId={order_id}"), Some(token)).await;
    assert_eq!((reply.status, reply.code()), (200, 0), "{}", reply.body);
    reply.data().clone()
}

/// Create an API key (`months`: `expiryMonths`, none for the default); (id, secret).
pub async fn create_key(app: &TestApp, token: &str, name: &str, months: Option<i64>) -> (String, String) {
    let mut body = json!({"name": name});
    if let Some(months) = months {
        body["expiryMonths"] = json!(months);
    }
    let created = app.post(KEY_CREATE, Some(token), body).await;
    assert_eq!((created.status, created.code()), (200, 0), "{}", created.body);
    (created.data()["id"].as_str().unwrap().to_owned(), created.data()["key"].as_str().unwrap().to_owned())
}

/// A metered debit with API key `secret`.
pub async fn consume(app: &TestApp, secret: &str, cost: i64, idempotency_key: &str, title: &str) -> Reply {
    app.post(CONSUME, Some(secret), json!({"cost": cost, "idempotencyKey": idempotency_key, "title": title})).await
}

/// The caller's consumption history (first 100).
pub async fn consumption(app: &TestApp, token: &str) -> Value {
    let reply = app.get(&format!("{CONSUMPTION}?page=1&size=100"), Some(token)).await;
    assert_eq!((reply.status, reply.code()), (200, 0), "{}", reply.body);
    reply.data().clone()
}

/// The caller's purchase history (first 100).
pub async fn purchases(app: &TestApp, token: &str) -> Value {
    let reply = app.get(&format!("{PURCHASES}?page=1&size=100"), Some(token)).await;
    assert_eq!((reply.status, reply.code()), (200, 0), "{}", reply.body);
    reply.data().clone()
}

/// The caller's API keys.
pub async fn keys(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = app.get(KEYS, Some(token)).await;
    assert_eq!((reply.status, reply.code()), (200, 0), "{}", reply.body);
    reply.data()["list"].as_array().unwrap().clone()
}

/// When points credited now expire: 23:59:59Z on 31 December of the clock's Beijing year, the
/// next one in December.
pub fn year_end(app: &TestApp) -> String {
    let beijing = app.server.clock.now().with_timezone(&mpapi::clock::BEIJING);
    let year = if beijing.month() == 12 { beijing.year() + 1 } else { beijing.year() };
    format!("{year}-12-31T23:59:59Z")
}

/// `value` with the members at `pointers` replaced by `"[name]"` (each must exist): what a
/// snapshot must not pin (tokens, generated ids, times).
pub fn redacted(value: &Value, pointers: &[&str]) -> Value {
    let mut value = value.clone();
    for pointer in pointers {
        let member = value.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} missing"));
        *member = json!(format!("[{}]", pointer.rsplit('/').next().unwrap()));
    }
    value
}

/// POST a notify as WeChat Pay would: its headers, the body as bytes; the acknowledgement is
/// checked against the contract.
pub async fn post_notify(app: &TestApp, headers: &HeaderMap, body: Vec<u8>) -> (u16, Value) {
    let request = app.client.post(app.url(NOTIFY)).header("Content-Type", "application/json").headers(headers.clone());
    let response = request.body(body).send().await.unwrap();
    let reply = Reply { status: response.status().as_u16(), headers: response.headers().clone(), body: response.json().await.unwrap_or(Value::Null) };
    app.check(&reqwest::Method::POST, NOTIFY, &reply);
    (reply.status, reply.body)
}

/// The notify the sandbox platform would send for paying (or failing) `order_id`, not sent.
pub async fn sandbox_notify(app: &TestApp, order_id: &str, success: bool) -> (HeaderMap, Vec<u8>) {
    app.pay_platform("points").build_notify(order_id, success).await.unwrap()
}

/// A notify signed by the sandbox platform (so it verifies) about `transaction`.
pub async fn platform_notify(app: &TestApp, id: &str, transaction: Value) -> (HeaderMap, Vec<u8>) {
    let pay = app.pay_platform("points");
    let platform = pay.platform().await.unwrap();
    let resource = platform.encrypt_resource(transaction.to_string().as_bytes(), "transaction").unwrap();
    let body = json!({"id": id, "create_time": "2026-11-21T15:55:28+08:00", "event_type": "TRANSACTION.SUCCESS",
        "resource_type": "encrypt-resource", "summary": "支付成功", "resource": resource});
    let body = body.to_string().into_bytes();
    (platform.sign_notify(&body, app.server.clock.now()).unwrap(), body)
}

/// A successful transaction resource for `out_trade_no` of `total` fen to the points merchant.
pub fn transaction(app: &TestApp, out_trade_no: &str, total: i64, transaction_id: &str) -> Value {
    let merchant = app.parts("points").pay.merchant().clone();
    json!({"appid": merchant.appid, "mchid": merchant.mchid, "out_trade_no": out_trade_no, "transaction_id": transaction_id,
        "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
        "success_time": "2026-11-21T15:55:28+08:00", "payer": {"openid": "sb_x"},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}})
}

/// Drive `futures` together (every request in flight before any answer is read).
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}

/// How many replies have `status`.
pub fn count(replies: &[Reply], status: u16) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}
