//! 000 §5.5: `payment_notify` — verified over the raw body, deduplicated, refused when forged,
//! stale, for another merchant, another amount or an unknown order (and refused again on every
//! redelivery).

use std::time::Duration;

use serde_json::json;

use super::{fen_of, futures_join_all, header_of, order, owner, platform_notify, post_notify, sandbox_notify, status_of, transaction, with_header};
use crate::app::TestApp;

#[tokio::test]
async fn payment_notify_duplicates_change_state_once() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000007").await;
    let (order_id, _) = order(&app, &token).await;
    let (headers, body) = sandbox_notify(&app, &order_id, true).await;
    let deliveries = futures_join_all((0..4).map(|_| post_notify(&app, &headers, body.clone())).collect()).await;
    for (status, ack) in &deliveries {
        assert_eq!((*status, ack["code"].as_str()), (200, Some("SUCCESS")), "{deliveries:?}");
    }
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(status.data()["status"], "paid");
    let paid_at = status.data()["paid_at"].clone();
    // A second, distinct success notify for the same order changes nothing either.
    let (headers, body) = sandbox_notify(&app, &order_id, true).await;
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    let again = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(again.data()["paid_at"], paid_at);
    let stats = app.get("/api/statistics/user", Some(&token)).await;
    assert_eq!(stats.data()["current_season_paid"], status.data()["amount"]);
}

#[tokio::test]
async fn payment_notify_forged_or_stale_is_refused() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000008").await;
    let (order_id, _) = order(&app, &token).await;
    let (headers, body) = sandbox_notify(&app, &order_id, true).await;
    // The body changed after signing.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'"').unwrap();
    tampered.insert(at, b' ');
    assert_eq!(post_notify(&app, &headers, tampered).await.0, 401);
    // A serial we do not know, a signature that does not verify, probe traffic, no signature.
    let unknown = with_header(&headers, "Wechatpay-Serial", "PUB_KEY_ID_0000000000000000000000000000");
    assert_eq!(post_notify(&app, &unknown, body.clone()).await.0, 401);
    let forged = with_header(&headers, "Wechatpay-Signature", &super::base64_of(&[7u8; 256]));
    assert_eq!(post_notify(&app, &forged, body.clone()).await.0, 401);
    let probe = with_header(&headers, "Wechatpay-Signature", &format!("WECHATPAY/SIGNTEST/{}", header_of(&headers, "Wechatpay-Signature")));
    assert_eq!(post_notify(&app, &probe, body.clone()).await.0, 401);
    let mut unsigned = headers.clone();
    unsigned.remove("Wechatpay-Signature");
    let (status, ack) = post_notify(&app, &unsigned, body.clone()).await;
    assert_eq!((status / 100, ack["code"].as_str()), (4, Some("FAIL")), "a missing header is answered in WeChat's format: {ack}");
    // Stale: more than 5 minutes after it was signed.
    app.server.clock.advance(Duration::from_secs(301));
    let (status, ack) = post_notify(&app, &headers, body).await;
    assert_eq!((status, ack["code"].as_str()), (401, Some("FAIL")));
    assert_eq!(status_of(&app, &token, &order_id).await, "pending");
}

#[tokio::test]
async fn payment_notify_we_cannot_apply_is_refused_every_time() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000013").await;
    let (order_id, amount) = order(&app, &token).await;
    let fen = fen_of(&amount);
    // Another amount than the order's: refused, and refused again when WeChat retries it.
    let (headers, body) = platform_notify(&app, "EV-mismatch", "TRANSACTION.SUCCESS", transaction(&app, &order_id, fen - 1, "4200000000000000000000000001")).await;
    for _ in 0..2 {
        let (status, ack) = post_notify(&app, &headers, body.clone()).await;
        assert_eq!((status, ack["code"].as_str(), ack["message"].as_str()), (400, Some("FAIL"), Some("金额不一致")));
    }
    // An order we never made.
    let (headers, body) = platform_notify(&app, "EV-unknown", "TRANSACTION.SUCCESS", transaction(&app, "O0000000000000", fen, "4200000000000000000000000002")).await;
    for _ in 0..2 {
        assert_eq!(post_notify(&app, &headers, body.clone()).await.0, 400);
    }
    // Another merchant's payment (another mchid, or another appid), signed by the platform.
    let mut other_mchid = transaction(&app, &order_id, fen, "4200000000000000000000000003");
    other_mchid["mchid"] = json!("1900009999");
    let mut other_appid = transaction(&app, &order_id, fen, "4200000000000000000000000004");
    other_appid["appid"] = json!("wx0000000000000000");
    for (id, transaction) in [("EV-mchid", other_mchid), ("EV-appid", other_appid)] {
        let (headers, body) = platform_notify(&app, id, "TRANSACTION.SUCCESS", transaction).await;
        let (status, ack) = post_notify(&app, &headers, body).await;
        assert_eq!((status, ack["message"].as_str()), (400, Some("商户信息不一致")), "{id}");
    }
    assert_eq!(status_of(&app, &token, &order_id).await, "pending");
    // The right one pays, with the payer's success_time as paid_at.
    let (headers, body) = platform_notify(&app, "EV-right", "TRANSACTION.SUCCESS", transaction(&app, &order_id, fen, "4200000000000000000000000005")).await;
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!((status.data()["status"].as_str(), status.data()["paid_at"].as_str()), (Some("paid"), Some("2026-11-21T07:55:28.000Z")));
}

#[tokio::test]
async fn payment_notify_of_a_state_with_nothing_to_settle_changes_nothing() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000014").await;
    let (order_id, amount) = order(&app, &token).await;
    for (id, state) in [("EV-userpaying", "USERPAYING"), ("EV-refund", "REFUND"), ("EV-new", "SOMETHING_NEW")] {
        let mut resource = transaction(&app, &order_id, fen_of(&amount), "4200000000000000000000000006");
        resource["trade_state"] = json!(state);
        let (headers, body) = platform_notify(&app, id, "TRANSACTION.SUCCESS", resource).await;
        let (status, ack) = post_notify(&app, &headers, body).await;
        assert_eq!((status, ack["code"].as_str()), (200, Some("SUCCESS")), "{state}: acknowledged");
        assert_eq!(status_of(&app, &token, &order_id).await, "pending", "{state}: the order unchanged");
    }
}
