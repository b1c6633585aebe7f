//! The charging API (003, 充电桩) for real, one module per area of `openapi/charging.yaml`: the
//! mini-program's whole session (logins, stations, the QR code, an order charged, billed by
//! time of use and paid both ways, statistics and the lists), the order rules (one live order a
//! port under any concurrency, the start window, stops, limits, the device-level controls), every
//! fault the simulated chargers can show, and payments with WeChat Pay v2's notify (replayed,
//! forged, late). Every JSON answer is checked against the contract by `TestApp`.
//!
//! Timing: the server clock is real time plus an offset, the simulated chargers run 60 simulated
//! seconds a real second, and the watchdog syncs live orders every second. The tests move the
//! clock (`advance`) instead of sleeping, and assert only what no scheduling can change.

use std::time::Duration;

use serde_json::{Value, json};

use crate::app::{Reply, TestApp};

mod faults;
mod journey;
mod orders;
mod payments;

pub const WECHAT_LOGIN: &str = "/api/user/wechat/login";
pub const LOGIN: &str = "/api/user/login";
pub const USER_INFO: &str = "/api/user/info";
pub const CONFIG: &str = "/api/config";
pub const RULES: &str = "/api/config/billing-rules";
pub const NEARBY: &str = "/api/station/nearby";
pub const SEARCH: &str = "/api/station/search";
pub const CREATE: &str = "/api/order/create";
pub const ORDERS: &str = "/api/orders";
pub const START: &str = "/api/ChargingPile/start";
pub const STOP: &str = "/api/ChargingPile/stop";
pub const PILE_STATUS: &str = "/api/ChargingPile/status";
pub const PAY: &str = "/api/payment/pay";
pub const RECHARGE: &str = "/api/payment/recharge";
pub const NOTIFY: &str = "/api/payment/wechat/notify";
pub const PAY_PAGE: &str = "/api/payment/wechat/pay";
pub const STATISTICS: &str = "/api/statistics/charging";
pub const DEVICES: &str = "/api/devices";

/// The seeded demo driver (balance 86.50, two paid past sessions) and the operator.
pub const DEMO_USERNAME: &str = "demo_driver";
pub const DEMO_PASSWORD: &str = "demo-pass-2026";
pub const DEMO_USER_ID: i64 = 10086;
pub const DEMO_BALANCE_FEN: i64 = 86_50;
pub const OPERATOR_USERNAME: &str = "operator";
pub const OPERATOR_PASSWORD: &str = "operator-pass-2026";

/// The demo DC pile (60 kW, 750 V) at ST0001: its device, QR code and ports.
pub const DC_PILE: &str = "CP0001";
pub const DC_DEVICE: &str = "20230001";
pub const DC_QR: &str = "CDZ20230001";
pub const DC_PORT: &str = "PT000101";
pub const DC_PORT_2: &str = "PT000102";
/// The second DC pile of ST0001.
pub const DC2_PILE: &str = "CP0002";
pub const DC2_DEVICE: &str = "20230002";
pub const DC2_PORT: &str = "PT000201";
/// An AC pile (7 kW, 220 V) of ST0001.
pub const AC_PILE: &str = "CP0003";
pub const AC_DEVICE: &str = "20230003";
pub const AC_PORT: &str = "PT000301";
/// The AC pile whose port 1 is seeded faulty (保险丝熔断) and port 2 disabled.
pub const BROKEN_PILE: &str = "CP0004";
pub const FAULTY_PORT: &str = "PT000401";
pub const DISABLED_PORT: &str = "PT000402";

/// BR001 (DC) rates by `timeType` 1..=5 (尖, 峰, 平, 谷, 深谷), fen per kWh, and its service fee
/// percent; BR002 (AC) has the same slots at 10 %.
pub const BR001_FEN_PER_KWH: [i64; 5] = [125, 105, 70, 30, 22];
pub const BR001_FEE_PERCENT: i64 = 15;
pub const BR002_FEE_PERCENT: i64 = 10;
/// The order detail's tier fields, in `timeType` order.
pub const TIERS: [&str; 5] = ["sharp", "peak", "flat", "valley", "deepValley"];

/// Assert a 200 with envelope code 0; its `data`.
#[track_caller]
pub fn ok(reply: &Reply) -> Value {
    assert_eq!((reply.status, reply.code()), (200, 0), "{}", reply.body);
    reply.data().clone()
}

/// Assert a refusal with HTTP `status` and envelope `code` (and `data: null`).
#[track_caller]
pub fn refused(reply: &Reply, status: u16, code: i64) {
    assert_eq!((reply.status, reply.code()), (status, code), "{}", reply.body);
    assert_eq!(reply.data(), &Value::Null, "{}", reply.body);
}

/// Yuan (a JSON number) → fen.
#[track_caller]
pub fn fen(value: &Value) -> i64 {
    let yuan = value.as_f64().unwrap_or_else(|| panic!("not an amount: {value}"));
    (yuan * 100.0).round() as i64
}

/// kWh (a JSON number) → Wh.
#[track_caller]
pub fn wh(value: &Value) -> i64 {
    let kwh = value.as_f64().unwrap_or_else(|| panic!("not an energy: {value}"));
    (kwh * 1000.0).round() as i64
}

/// Move the server clock.
pub fn advance(app: &TestApp, seconds: u64) {
    app.server.clock.advance(Duration::from_secs(seconds));
}

/// Move the server clock to the next `hh:mm:ss` Beijing time (so a session lands in known
/// time-of-use slots).
pub fn advance_to_beijing(app: &TestApp, hh: i64, mm: i64, ss: i64) {
    const DAY: i64 = 86_400_000;
    let now = app.server.clock.now_ms();
    let of_day = (now + 8 * 3_600_000).rem_euclid(DAY);
    let target = (hh * 3600 + mm * 60 + ss) * 1000;
    let by = (target - of_day).rem_euclid(DAY);
    app.server.clock.advance(Duration::from_millis(by as u64));
}

/// Today's Beijing date on the server clock, `YYYY-MM-DD`.
pub fn beijing_today(app: &TestApp) -> String {
    let now = chrono::DateTime::from_timestamp_millis(app.server.clock.now_ms()).unwrap();
    (now + chrono::Duration::hours(8)).format("%Y-%m-%d").to_string()
}

/// A WeChat login with `code` (the sandbox makes one openid per code): (token, userId, data).
pub async fn wechat_login(app: &TestApp, code: &str) -> (String, i64, Value) {
    let data = ok(&app.post(WECHAT_LOGIN, None, json!({ "code": code })).await);
    (data["token"].as_str().unwrap().to_owned(), data["userId"].as_i64().unwrap(), data)
}

/// A WeChat user's token.
pub async fn driver(app: &TestApp, code: &str) -> String {
    wechat_login(app, code).await.0
}

/// A username login's token.
pub async fn login(app: &TestApp, username: &str, password: &str) -> String {
    let data = ok(&app.post(LOGIN, None, json!({ "username": username, "password": password })).await);
    data["token"].as_str().unwrap().to_owned()
}

/// The demo driver's token.
pub async fn demo(app: &TestApp) -> String {
    login(app, DEMO_USERNAME, DEMO_PASSWORD).await
}

/// The operator's token.
pub async fn operator(app: &TestApp) -> String {
    login(app, OPERATOR_USERNAME, OPERATOR_PASSWORD).await
}

/// The caller's balance, fen.
pub async fn balance(app: &TestApp, token: &str) -> i64 {
    fen(&ok(&app.get(USER_INFO, Some(token)).await)["balance"])
}

/// POST /api/order/create.
pub async fn create(app: &TestApp, token: &str, pile: &str, port: &str, mode: i64, parameter: Value, method: i64) -> Reply {
    app.post(
        CREATE,
        Some(token),
        json!({ "pileId": pile, "portId": port, "chargingMode": mode, "chargingParameter": parameter, "paymentMethod": method }),
    )
    .await
}

/// A created order's id (asserting status 0, unpaid, the pile's device address).
#[track_caller]
pub fn created(reply: &Reply, device: &str) -> String {
    let data = ok(reply);
    assert_eq!((&data["status"], &data["paymentStatus"], &data["amount"]), (&json!(0), &json!(0), &json!(0.0)), "{data}");
    assert_eq!(data["deviceAddress"], device, "{data}");
    data["orderId"].as_str().unwrap().to_owned()
}

/// POST /api/ChargingPile/start.
pub async fn start(app: &TestApp, token: &str, order: &str, device: &str) -> Reply {
    app.post(START, Some(token), json!({ "orderId": order, "deviceAddress": device })).await
}

/// Start `order` on `device`, asserting it charges (status 1).
pub async fn started(app: &TestApp, token: &str, order: &str, device: &str) {
    let data = ok(&start(app, token, order, device).await);
    assert_eq!(data, json!({ "success": true, "orderId": order, "status": 1 }));
}

/// A new order on the DC demo pile's port 1, started; its id.
pub async fn charging(app: &TestApp, token: &str, mode: i64, parameter: Value, method: i64) -> String {
    charging_on(app, token, (DC_PILE, DC_PORT, DC_DEVICE), mode, parameter, method).await
}

/// A new order on `(pile, port, device)`, started; its id.
pub async fn charging_on(app: &TestApp, token: &str, (pile, port, device): (&str, &str, &str), mode: i64, parameter: Value, method: i64) -> String {
    let order = created(&create(app, token, pile, port, mode, parameter, method).await, device);
    started(app, token, &order, device).await;
    order
}

/// GET /api/order/{id}/status's data.
pub async fn order_status(app: &TestApp, token: &str, id: &str) -> Value {
    ok(&app.get(&format!("/api/order/{id}/status"), Some(token)).await)
}

/// Move the clock `seconds` on and read `order`'s status (which syncs it), asserting it is still
/// charging (1); the status.
pub async fn live_after(app: &TestApp, token: &str, order: &str, seconds: u64) -> Value {
    advance(app, seconds);
    let live = order_status(app, token, order).await;
    assert_eq!(live["status"], 1, "{live}");
    live
}

/// GET /api/order/{id}'s data.
pub async fn order_detail(app: &TestApp, token: &str, id: &str) -> Value {
    ok(&app.get(&format!("/api/order/{id}"), Some(token)).await)
}

/// GET /api/port/{id}'s data.
pub async fn port(app: &TestApp, token: &str, id: &str) -> Value {
    ok(&app.get(&format!("/api/port/{id}"), Some(token)).await)
}

/// Move the clock `step` seconds at a time, reading the order's status (each read syncs it), until
/// it has ended; its detail then.
pub async fn until_ended(app: &TestApp, token: &str, id: &str, step: u64) -> Value {
    for _ in 0..600 {
        let status = order_status(app, token, id).await;
        if !matches!(status["status"].as_i64(), Some(0 | 1)) {
            return order_detail(app, token, id).await;
        }
        advance(app, step);
    }
    panic!("order {id} never ended: {}", order_detail(app, token, id).await);
}

/// A session on the DC demo pile's port 1 charged to its end (按时间 1 minute: 0.5 kWh), not
/// paid; its detail.
pub async fn finished_session(app: &TestApp, token: &str, method: i64) -> Value {
    let order = charging(app, token, 3, json!(1), method).await;
    let detail = until_ended(app, token, &order, 1).await;
    assert_eq!((&detail["status"], &detail["stopReason"], &detail["paymentStatus"]), (&json!(2), &json!(3), &json!(0)), "{detail}");
    detail
}

/// The bill of an order detail's tier lines, computed here from the tiers' kWh and BR001's
/// rates: each line rounded half up to the fen, the service fee `fee_percent` of their sum half
/// up, the total their sum: (amount, fee, total) in fen. Asserts every line's amount.
#[track_caller]
pub fn rebill(detail: &Value, fen_per_kwh: [i64; 5], fee_percent: i64) -> (i64, i64, i64) {
    let mut amount = 0;
    for (tier, rate) in TIERS.iter().zip(fen_per_kwh) {
        let energy = wh(&detail[format!("{tier}Electricity")]);
        // Wh × fen/kWh / 1000, half up.
        let line = (energy * rate + 500).div_euclid(1000);
        assert_eq!(fen(&detail[format!("{tier}Amount")]), line, "{tier}: {energy} Wh at {rate} fen/kWh: {detail}");
        amount += line;
    }
    let fee = (amount * fee_percent + 50).div_euclid(100);
    (amount, fee, amount + fee)
}

/// The sum of an order detail's tier energies, Wh.
pub fn tier_wh(detail: &Value) -> i64 {
    TIERS.iter().map(|tier| wh(&detail[format!("{tier}Electricity")])).sum()
}

/// A simulated charger event (`POST /_sandbox/devices/{device}?event=…&port=…`; `event` may carry
/// more of the query, e.g. `fault&faultType=2`); the device's state after it.
pub async fn device_event(app: &TestApp, device: &str, event: &str, port: Option<i64>) -> Value {
    let mut url = app.url(&format!("/_sandbox/devices/{device}?event={event}"));
    if let Some(port) = port {
        url.push_str(&format!("&port={port}"));
    }
    let response = app.client.post(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{event} on {device}");
    response.json().await.unwrap()
}

/// A simulated charger's state (`GET /_sandbox/devices/{device}`).
pub async fn device_state(app: &TestApp, device: &str) -> Value {
    let response = app.client.get(app.url(&format!("/_sandbox/devices/{device}"))).send().await.unwrap();
    assert_eq!(response.status(), 200, "{device}");
    response.json().await.unwrap()
}

/// Drive `futures` together (every request in flight before any answer is read).
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}
