//! `points_payment_notify` (our contract extension): verified over the raw body, deduplicated —
//! repeated and concurrent deliveries credit the points once — and refused when forged, tampered
//! with, or about another amount or merchant (nothing credited).

use std::sync::Arc;
use std::time::Duration;

use mpapi::storage::payments::PayStatus;
use serde_json::json;

use super::*;
use crate::app::TestApp;

#[tokio::test]
async fn points_payment_notify_duplicates_credit_once() {
    let app = TestApp::points().await;
    let token = login(&app, "notify-twice").await;
    let order_id = order(&app, &token, "pkg_standard_5000").await;
    let (headers, body) = sandbox_notify(&app, &order_id, true).await;
    // Eight identical deliveries at once.
    let deliveries = join_all((0..8).map(|_| post_notify(&app, &headers, body.clone())).collect()).await;
    for (status, ack) in &deliveries {
        assert_eq!((*status, ack["code"].as_str()), (200, Some("SUCCESS")), "{deliveries:?}");
    }
    assert_eq!(balance(&app, &token).await, 5000);
    // WeChat retrying later, and a second, distinct success notify of the same order.
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    let (headers, body) = sandbox_notify(&app, &order_id, true).await;
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    assert_eq!(check_payment(&app, &token, &order_id).await, json!({"isPaid": true, "points": 5000, "expiryDate": year_end(&app)}));
    let history = purchases(&app, &token).await;
    assert_eq!((history["total"].as_i64(), history["list"][0]["status"].as_str()), (Some(1), Some("paid")));
}

#[tokio::test]
async fn points_payment_notify_concurrent_for_two_orders_credits_both() {
    let app = TestApp::points().await;
    let token = login(&app, "notify-two-orders").await;
    let basic = order(&app, &token, "pkg_basic_1000").await;
    let standard = order(&app, &token, "pkg_standard_5000").await;
    let (a, b) = (sandbox_notify(&app, &basic, true).await, sandbox_notify(&app, &standard, true).await);
    let deliveries = join_all(vec![post_notify(&app, &a.0, a.1.clone()), post_notify(&app, &b.0, b.1.clone()), post_notify(&app, &a.0, a.1), post_notify(&app, &b.0, b.1)]).await;
    assert!(deliveries.iter().all(|(status, _)| *status == 200), "{deliveries:?}");
    assert_eq!(balance(&app, &token).await, 6000);
}

#[tokio::test]
async fn points_payment_notify_forged_is_refused_and_credits_nothing() {
    let app = TestApp::points().await;
    let token = login(&app, "notify-forged").await;
    let order_id = order(&app, &token, "pkg_basic_1000").await;
    let (headers, body) = sandbox_notify(&app, &order_id, true).await;
    // The body changed after signing.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'"').unwrap();
    tampered.insert(at, b' ');
    let (status, ack) = post_notify(&app, &headers, tampered).await;
    assert_eq!((status, ack["code"].as_str()), (401, Some("FAIL")), "{ack}");
    // A signature that does not verify, a serial we do not know, a probe, another timestamp.
    let forged = [
        ("Wechatpay-Signature", base64_of(&[7u8; 256])),
        ("Wechatpay-Serial", "PUB_KEY_ID_0000000000000000000000000000".to_owned()),
        ("Wechatpay-Signature", format!("WECHATPAY/SIGNTEST/{}", headers["Wechatpay-Signature"].to_str().unwrap())),
        // (From the signed header, not the clock: a second turning over since the signing
        // would make the clock's "another" the signed one.)
        ("Wechatpay-Timestamp", (headers["Wechatpay-Timestamp"].to_str().unwrap().parse::<i64>().unwrap() - 1).to_string()),
    ];
    for (name, value) in forged {
        let mut headers = headers.clone();
        headers.insert(name, value.parse().unwrap());
        let (status, ack) = post_notify(&app, &headers, body.clone()).await;
        assert_eq!((status, ack["code"].as_str()), (401, Some("FAIL")), "{name}: {ack}");
    }
    // Signed by a platform key that is not WeChat's.
    let stranger = mpapi::providers::wechat_pay::sandbox::PlatformSigner::generate().unwrap();
    let mut headers_of_stranger = stranger.sign_notify(&body, app.server.clock.now()).unwrap();
    headers_of_stranger.insert("Wechatpay-Serial", headers["Wechatpay-Serial"].clone());
    assert_eq!(post_notify(&app, &headers_of_stranger, body.clone()).await.0, 401);
    assert_eq!(check_payment(&app, &token, &order_id).await["isPaid"], false);
    assert_eq!(balance(&app, &token).await, 0);
    // The genuine one credits.
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    assert_eq!(balance(&app, &token).await, 1000);
}

#[tokio::test]
async fn points_payment_notify_of_another_amount_or_merchant_is_refused() {
    let app = TestApp::points().await;
    let token = login(&app, "notify-amount").await;
    let order_id = order(&app, &token, "pkg_basic_1000").await;
    // One fen short, and refused again when WeChat redelivers it.
    let (headers, body) = platform_notify(&app, "EV-short", transaction(&app, &order_id, 989, "4200000000000000000000000101")).await;
    for _ in 0..2 {
        let (status, ack) = post_notify(&app, &headers, body.clone()).await;
        assert_eq!((status, ack["code"].as_str(), ack["message"].as_str()), (400, Some("FAIL"), Some("金额不一致")));
    }
    // Another merchant's payment, signed by the platform.
    let mut other = transaction(&app, &order_id, 990, "4200000000000000000000000102");
    other["mchid"] = json!("1900009999");
    let (headers, body) = platform_notify(&app, "EV-mchid", other).await;
    let (status, ack) = post_notify(&app, &headers, body).await;
    assert_eq!((status, ack["message"].as_str()), (400, Some("商户信息不一致")));
    // An order we never made, refused again when redelivered (its record is not left saying paid).
    let (headers, body) = platform_notify(&app, "EV-unknown", transaction(&app, "PT20240101000000" , 990, "4200000000000000000000000103")).await;
    for _ in 0..2 {
        assert_eq!(post_notify(&app, &headers, body.clone()).await.0, 400);
    }
    assert_eq!(check_payment(&app, &token, &order_id).await["isPaid"], false);
    assert_eq!(balance(&app, &token).await, 0);
    // The right amount pays.
    let (headers, body) = platform_notify(&app, "EV-right", transaction(&app, &order_id, 990, "4200000000000000000000000104")).await;
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    assert_eq!(check_payment(&app, &token, &order_id).await["points"], 1000);
}

#[tokio::test]
async fn points_payment_notify_a_late_payment_of_a_closed_order_is_credited() {
    let app = TestApp::points().await;
    let token = login(&app, "notify-late").await;
    let order_id = order(&app, &token, "pkg_basic_1000").await;
    // The order runs out unpaid and the housekeeping closes it (with the payment platform too).
    app.server.clock.advance(Duration::from_secs(2 * 3600 + 1));
    let parts = app.parts("points");
    let payments = app.server.payments(&parts, app.address.port(), NOTIFY, Arc::new(mpapi::storage::points::Settler));
    let (swept, _) = mpapi::serve::housekeeping("points", &payments, &app.server.db, &app.server.clock).await.unwrap();
    assert_eq!(swept.closed, 1, "{swept:?}");
    assert_eq!(app.server.db.payments().get(&order_id).await.unwrap().unwrap().status, PayStatus::Closed);
    let token = login(&app, "notify-late").await;
    assert_eq!(purchases(&app, &token).await["list"][0]["status"], "failed");
    // The payer paid at the last moment and the notify comes now: the money is taken, so the
    // points are credited.
    let (headers, body) = platform_notify(&app, "EV-late", transaction(&app, &order_id, 990, "4200000000000000000000000105")).await;
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    assert_eq!(check_payment(&app, &token, &order_id).await, json!({"isPaid": true, "points": 1000, "expiryDate": year_end(&app)}));
    assert_eq!(purchases(&app, &token).await["list"][0]["status"], "paid");
}

/// base64 of `bytes`.
fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
