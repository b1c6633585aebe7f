//! 支付: recharges credited once by WeChat Pay v2's notify however often it comes, forged and
//! mismatched notifies refused, a WeChat payment overtaken by a balance payment (its late money
//! never pays twice, and goes back through the sandbox), failed payments, payment status and its
//! owner, and the refusals.


use serde_json::json;

use super::*;
use crate::app::{md5_sign, xml_fields, xml_of};

/// POST a v2 notify: (HTTP status, return_code).
async fn notify(app: &TestApp, body: Vec<u8>) -> (u16, String) {
    crate::app::post_v2_notify(app, NOTIFY, body).await
}

/// A recharge of `amount` yuan by WeChat; its id.
async fn recharge(app: &TestApp, token: &str, amount: serde_json::Value) -> String {
    let data = ok(&app.post(RECHARGE, Some(token), json!({ "amount": amount, "paymentMethod": 1 })).await);
    data["rechargeId"].as_str().unwrap().to_owned()
}

/// GET /api/payment/{id}/status's data.
async fn payment_status(app: &TestApp, token: &str, id: &str) -> serde_json::Value {
    ok(&app.get(&format!("/api/payment/{id}/status"), Some(token)).await)
}

/// With `apis.charging.public_url` set, the pay page's URL starts there, not at the request's
/// `Host` (behind a proxy that ends TLS, that would say `http://`); a setting that is not an
/// http(s) URL stops the start, naming it, as the setting does on an API whose answers carry
/// no links.
#[tokio::test]
async fn the_pay_page_url_starts_at_the_configured_public_url() {
    let app = TestApp::spawn("charging", |config| {
        config.apis.get_mut("charging").unwrap().public_url = Some("https://ev.example.com/charging/".into());
    })
    .await;
    let token = driver(&app, "behind-a-proxy").await;
    let data = ok(&app.post(RECHARGE, Some(&token), json!({ "amount": 10, "paymentMethod": 1 })).await);
    let id = data["rechargeId"].as_str().unwrap();
    assert_eq!(data["paymentUrl"], format!("https://ev.example.com/charging{PAY_PAGE}?paymentId={id}"), "{data}");

    let dir = tempfile::tempdir().unwrap();
    let mut config = mpapi::config::Config { database_url: crate::app::fresh_database(&dir).await, ..Default::default() };
    config.apis.get_mut("charging").unwrap().public_url = Some("ev.example.com".into());
    let refused = mpapi::serve::Server::new(config).await.expect_err("refused").to_string();
    assert!(refused.contains("apis.charging.public_url"), "{refused}");
    // Refused where it serves an API whose answers carry no links; the others start.
    let mut config = mpapi::config::Config { database_url: app.server.config.database_url.clone(), ..Default::default() };
    config.apis.get_mut("heating").unwrap().public_url = Some("https://heating.example.com".into());
    let server = mpapi::serve::Server::new(config).await.expect("the server starts");
    let Err(refused) = server.router(mpapi::apis::by_id("heating").unwrap(), 1).await else { panic!("heating started with a public_url") };
    let refused = refused.to_string();
    assert!(refused.contains("apis.heating.public_url"), "{refused}");
    assert!(server.router(mpapi::apis::by_id("charging").unwrap(), 2).await.is_ok());
}

#[tokio::test]
async fn a_recharge_paid_in_the_sandbox_is_credited_once() {
    let app = TestApp::charging().await;
    let token = driver(&app, "recharger").await;
    let data = ok(&app.post(RECHARGE, Some(&token), json!({ "amount": 100, "paymentMethod": 1 })).await);
    let id = data["rechargeId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("RC") && id.len() == 22, "{data}");
    assert_eq!((&data["amount"], &data["paymentMethod"]), (&json!(100.0), &json!(1)));
    assert!(data["qrCodeUrl"].as_str().unwrap().starts_with("weixin://wxpay/bizpayurl?pr="), "{data}");
    assert_eq!(data["paymentUrl"], app.url(&format!("{PAY_PAGE}?paymentId={id}")));
    let waiting = payment_status(&app, &token, &id).await;
    assert_eq!(
        (&waiting["paymentStatus"], &waiting["orderId"], &waiting["amount"], &waiting["transactionId"]),
        (&json!(1), &json!(""), &json!(100.0), &json!(null)),
        "{waiting}"
    );
    // Its pay page.
    let page = app.get(&format!("{PAY_PAGE}?paymentId={id}"), Some(&token)).await;
    assert!(page.status == 200 && page.body.as_str().unwrap().contains("账户充值") && page.body.as_str().unwrap().contains("¥100.00"), "{}", page.body);
    // Each load shows the code_url the recharge answered (reused, not placed again), and no
    // JSAPI button: WeChat Pay would refuse the NATIVE order placed again as JSAPI.
    let qr = data["qrCodeUrl"].as_str().unwrap();
    let placed_at = app.server.db.payments().get(&id).await.unwrap().unwrap().prepay.expect("placed").at;
    for _ in 0..2 {
        let page = app.get(&format!("{PAY_PAGE}?paymentId={id}"), Some(&token)).await;
        let html = page.body.as_str().unwrap();
        assert!(html.contains(&format!("<code>{qr}</code>")) && !html.contains("WeixinJSBridge") && !html.contains("paySign"), "{html}");
        let latest = app.server.db.payments().get(&id).await.unwrap().unwrap().prepay.expect("placed");
        assert_eq!((latest.id.as_str(), latest.at), (qr, placed_at), "the recharge's own placing");
    }
    assert_eq!(balance(&app, &token).await, 0);

    let paid = app.sandbox_pay(&id, "success").await;
    assert_eq!((paid.status, &paid.body["notify"]["status"]), (200, &json!(200)), "{}", paid.body);
    assert_eq!(balance(&app, &token).await, 10_000);
    let done = payment_status(&app, &token, &id).await;
    assert_eq!((&done["paymentStatus"], &done["paymentMethod"], &done["amount"]), (&json!(2), &json!(1), &json!(100.0)), "{done}");
    assert!(done["transactionId"].as_str().unwrap().starts_with("42000") && done["paymentTime"].is_string(), "{done}");
    // The sandbox will not pay it again; the balance stays.
    assert_eq!(app.sandbox_pay(&id, "success").await.status, 409);
    assert_eq!(balance(&app, &token).await, 10_000);
    // Another user may not see it.
    let other = driver(&app, "nosy").await;
    refused(&app.get(&format!("/api/payment/{id}/status"), Some(&other)).await, 403, 403);
    refused(&app.get(&format!("{PAY_PAGE}?paymentId={id}"), Some(&other)).await, 403, 403);
    refused(&app.get("/api/payment/RC20260101000000123456/status", Some(&other)).await, 404, 404);
    refused(&app.get("/api/payment/PAY20260101000000123456/status", Some(&other)).await, 404, 404);
    refused(&app.get(&format!("{PAY_PAGE}?paymentId=PAY20260101000000123456"), Some(&other)).await, 404, 404);
}

#[tokio::test]
async fn the_same_notify_delivered_again_and_again_credits_once() {
    let app = TestApp::charging().await;
    let token = driver(&app, "double-notify").await;
    let id = recharge(&app, &token, json!(100)).await;
    let (_, body) = app.pay_platform("charging").build_notify(&id, true).await.unwrap();
    let transaction = xml_fields(&body)["transaction_id"].clone();
    assert_eq!(notify(&app, body.clone()).await, (200, "SUCCESS".to_owned()));
    assert_eq!(notify(&app, body.clone()).await, (200, "SUCCESS".to_owned()), "a repeat is acknowledged");
    let acks = join_all((0..4).map(|_| notify(&app, body.clone())).collect()).await;
    assert!(acks.iter().all(|ack| *ack == (200, "SUCCESS".to_owned())), "{acks:?}");
    assert_eq!(balance(&app, &token).await, 10_000);
    let status = payment_status(&app, &token, &id).await;
    assert_eq!((&status["paymentStatus"], &status["transactionId"]), (&json!(2), &json!(transaction)));
    // Hours later, WeChat still retrying: nothing changes.
    advance(&app, 3 * 3600);
    assert_eq!(notify(&app, body).await, (200, "SUCCESS".to_owned()));
    let token = driver(&app, "double-notify").await;
    assert_eq!(balance(&app, &token).await, 10_000);
}

#[tokio::test]
async fn concurrent_notifies_of_two_recharges_credit_each_once() {
    let app = TestApp::charging().await;
    let token = driver(&app, "two-recharges").await;
    let first = recharge(&app, &token, json!(100)).await;
    let second = recharge(&app, &token, json!(0.01)).await;
    let pay = app.pay_platform("charging");
    let (_, a) = pay.build_notify(&first, true).await.unwrap();
    let (_, b) = pay.build_notify(&second, true).await.unwrap();
    let bodies: Vec<Vec<u8>> = (0..6).map(|n| if n % 2 == 0 { a.clone() } else { b.clone() }).collect();
    let acks = join_all(bodies.into_iter().map(|body| notify(&app, body)).collect()).await;
    assert!(acks.iter().all(|ack| *ack == (200, "SUCCESS".to_owned())), "{acks:?}");
    assert_eq!(balance(&app, &token).await, 10_001);
}

#[tokio::test]
async fn forged_and_mismatched_notifies_are_refused_and_credit_nothing() {
    let app = TestApp::charging().await;
    let token = driver(&app, "forger-victim").await;
    let id = recharge(&app, &token, json!(100)).await;
    let (_, body) = app.pay_platform("charging").build_notify(&id, true).await.unwrap();
    let genuine = xml_fields(&body);
    let key = app.pay_platform("charging").api_key().await.unwrap().expect("v2");
    assert_eq!(md5_sign(&genuine, &key), genuine["sign"], "the test signs as WeChat does");
    assert_eq!(genuine["total_fee"], "10000");
    let mut forgeries = Vec::new();
    // Changed after signing.
    let mut more = genuine.clone();
    more.insert("total_fee".into(), "1000000".into());
    more.insert("cash_fee".into(), "1000000".into());
    forgeries.push(("altered after signing", more));
    // Signed with another key.
    let mut wrong_key = genuine.clone();
    wrong_key.insert("sign".into(), md5_sign(&genuine, "0123456789abcdef0123456789abcdef"));
    forgeries.push(("another key", wrong_key));
    // No sign.
    let mut unsigned = genuine.clone();
    unsigned.remove("sign");
    forgeries.push(("unsigned", unsigned));
    // Signed as only WeChat can, but another amount than the recharge's.
    let mut amount = genuine.clone();
    amount.insert("total_fee".into(), "1".into());
    amount.insert("cash_fee".into(), "1".into());
    amount.insert("transaction_id".into(), "4200000000000000000000000001".into());
    amount.insert("sign".into(), md5_sign(&amount, &key));
    forgeries.push(("another total_fee", amount));
    // Signed, but for no payment of ours.
    let mut unknown = genuine.clone();
    unknown.insert("out_trade_no".into(), "RC20260101000000999999".into());
    unknown.insert("transaction_id".into(), "4200000000000000000000000002".into());
    unknown.insert("sign".into(), md5_sign(&unknown, &key));
    forgeries.push(("unknown out_trade_no", unknown));
    for (what, fields) in forgeries {
        let reply = app.post_raw(NOTIFY, "text/xml", xml_of(&fields)).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        let ack = xml_fields(reply.body.as_str().unwrap().as_bytes());
        assert_eq!(ack["return_code"], "FAIL", "{what}");
        assert!(!ack["return_msg"].is_empty(), "{what}");
        assert_eq!(balance(&app, &token).await, 0, "{what} credited the balance");
    }
    // Not XML; an entity attack.
    for junk in [b"{\"return_code\":\"SUCCESS\"}".to_vec(), b"<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><a>&x;</a></xml>".to_vec()] {
        let reply = app.post_raw(NOTIFY, "text/xml", junk).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(xml_fields(reply.body.as_str().unwrap().as_bytes())["return_code"], "FAIL", "{}", reply.body);
    }
    // WeChat Pay's own failure (`return_code` FAIL) settles nothing; its ack says why.
    let mut failed = genuine.clone();
    failed.insert("return_code".into(), "FAIL".into());
    failed.insert("sign".into(), md5_sign(&failed, &key));
    let reply = app.post_raw(NOTIFY, "text/xml", xml_of(&failed)).await;
    let ack = xml_fields(reply.body.as_str().unwrap().as_bytes());
    assert_eq!((reply.status, ack["return_code"].as_str(), ack["return_msg"].as_str()), (400, "FAIL", "通知报文无法解析或解密"), "{}", reply.body);
    assert_eq!(payment_status(&app, &token, &id).await["paymentStatus"], 1);
    // The genuine one still credits, once.
    assert_eq!(notify(&app, body).await, (200, "SUCCESS".to_owned()));
    assert_eq!(balance(&app, &token).await, 10_000);
}

#[tokio::test]
async fn concurrent_wechat_pays_of_one_order_open_one_payment() {
    let app = TestApp::charging().await;
    let token = demo(&app).await;
    let order = finished_session(&app, &token, 1).await["id"].as_str().unwrap().to_owned();
    let pays = (0..6).map(|_| app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 }))).collect();
    let ids: std::collections::BTreeSet<String> =
        join_all(pays).await.iter().map(|reply| ok(reply)["paymentId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test]
async fn only_the_orders_own_user_pays_it_not_the_operator() {
    let app = TestApp::charging().await;
    let token = demo(&app).await;
    let detail = finished_session(&app, &token, 1).await;
    let order = detail["id"].as_str().unwrap().to_owned();
    let admin = operator(&app).await;
    let before = balance(&app, &admin).await;
    for method in [3, 1] {
        let refused = app.post(PAY, Some(&admin), json!({ "orderId": order, "paymentMethod": method })).await;
        assert_eq!(refused.status, 403, "method {method}: {}", refused.body);
    }
    assert_eq!(balance(&app, &admin).await, before);
    // The operator still reads it; its driver pays it.
    assert_eq!(order_detail(&app, &admin, &order).await["paymentStatus"], 0);
    let paid = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 3 })).await);
    assert_eq!(paid["paymentStatus"], 2, "{paid}");
}

/// The demo user's finished session whose WeChat payment was opened, then paid from the balance
/// instead: (token, order id, its total in fen, the WeChat payment's id).
async fn overtaken_by_the_balance(app: &TestApp) -> (String, String, i64, String) {
    let token = demo(app).await;
    let detail = finished_session(app, &token, 1).await;
    let order = detail["id"].as_str().unwrap().to_owned();
    let total = fen(&detail["totalAmount"]);
    let payment = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await)["paymentId"].as_str().unwrap().to_owned();
    let by_balance = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 3 })).await);
    assert_eq!(by_balance["paymentStatus"], 2);
    assert_eq!(balance(app, &token).await, DEMO_BALANCE_FEN - total);
    (token, order, total, payment)
}

#[tokio::test]
async fn a_wechat_payment_overtaken_by_the_balance_never_pays_twice() {
    let app = TestApp::charging().await;
    let (token, order, total, payment) = overtaken_by_the_balance(&app).await;
    // The WeChat money arrives late: acknowledged (WeChat stops retrying), not applied.
    let (_, late) = app.pay_platform("charging").build_notify(&payment, true).await.unwrap();
    assert_eq!(notify(&app, late.clone()).await, (200, "SUCCESS".to_owned()));
    assert_eq!(notify(&app, late).await, (200, "SUCCESS".to_owned()));
    let status = payment_status(&app, &token, &payment).await;
    assert!(matches!(status["paymentStatus"].as_i64(), Some(3 | 4)), "failed or refunded: {status}");
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!((&detail["paymentStatus"], &detail["paymentMethod"]), (&json!(1), &json!(3)), "{detail}");
    assert_eq!(balance(&app, &token).await, DEMO_BALANCE_FEN - total, "debited once");
    let stored = app.server.db.payments().get(&payment).await.unwrap().unwrap();
    assert_ne!(stored.refund_state, mpapi::storage::payments::RefundState::None, "the WeChat money goes back: {stored:?}");
    // Paid: a new payment either way is refused.
    refused(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await, 409, 4003);
    refused(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 3 })).await, 409, 4003);
}

#[tokio::test]
async fn concurrent_balance_payments_of_one_order_debit_once() {
    let app = TestApp::charging().await;
    let token = demo(&app).await;
    let detail = finished_session(&app, &token, 3).await;
    let order = detail["id"].as_str().unwrap().to_owned();
    let total = fen(&detail["totalAmount"]);
    let body = json!({ "orderId": order, "paymentMethod": 3 });
    let replies = join_all((0..8).map(|_| app.post(PAY, Some(&token), body.clone())).collect()).await;
    let paid: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(paid.len(), 1, "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    for reply in replies.iter().filter(|r| r.status != 200) {
        refused(reply, 409, 4003);
    }
    assert_eq!(balance(&app, &token).await, DEMO_BALANCE_FEN - total);
    let payment = paid[0].data()["paymentId"].as_str().unwrap();
    assert_eq!(payment_status(&app, &token, payment).await["paymentStatus"], 2);
}

#[tokio::test]
async fn a_failed_wechat_payment_leaves_the_order_payable() {
    let app = TestApp::charging().await;
    let token = driver(&app, "card-declined").await;
    let detail = finished_session(&app, &token, 1).await;
    let order = detail["id"].as_str().unwrap().to_owned();
    let first = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await)["paymentId"].as_str().unwrap().to_owned();
    let failed = app.sandbox_pay(&first, "fail").await;
    assert_eq!((failed.status, &failed.body["notify"]["status"]), (200, &json!(200)), "{}", failed.body);
    assert_eq!(payment_status(&app, &token, &first).await["paymentStatus"], 3);
    assert_eq!(order_detail(&app, &token, &order).await["paymentStatus"], 0);
    // Paying from a balance of 0: 1005. A new WeChat payment then succeeds.
    refused(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 3 })).await, 400, 1005);
    let second = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await)["paymentId"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(app.sandbox_pay(&second, "success").await.body["notify"]["status"], json!(200));
    assert_eq!(payment_status(&app, &token, &second).await["paymentStatus"], 2);
    assert_eq!(order_detail(&app, &token, &order).await["paymentStatus"], 1);
    assert_eq!(payment_status(&app, &token, &first).await["paymentStatus"], 3);
    // 支付宝 is not offered: a bad request.
    let other = driver(&app, "card-declined-2").await;
    let detail = finished_session(&app, &other, 1).await;
    let reply = app.post(PAY, Some(&other), json!({ "orderId": detail["id"], "paymentMethod": 2 })).await;
    refused(&reply, 400, 400);
    assert!(reply.body["message"].as_str().unwrap().contains("支付宝"), "{}", reply.body);
    // Another user's order cannot be paid by him.
    refused(&app.post(PAY, Some(&token), json!({ "orderId": detail["id"], "paymentMethod": 1 })).await, 403, 403);
}

#[tokio::test]
async fn recharge_refusals() {
    let app = TestApp::charging().await;
    let token = driver(&app, "bad-recharge").await;
    for amount in [json!(0.001), json!(0), json!(-5), json!(100.005), json!(5000.01)] {
        let reply = app.post(RECHARGE, Some(&token), json!({ "amount": amount, "paymentMethod": 1 })).await;
        assert_eq!((reply.status, reply.code()), (400, 400), "{amount}: {}", reply.body);
    }
    // Past the contract's maximum: refused by the generated router, naming the field.
    let over = app.post(RECHARGE, Some(&token), json!({ "amount": 5000.01, "paymentMethod": 1 })).await;
    assert!(over.body["message"].as_str().unwrap().contains("amount: 应不大于5000"), "{}", over.body);
    refused(&app.post(RECHARGE, Some(&token), json!({ "amount": 100, "paymentMethod": 2 })).await, 400, 400);
    assert_eq!(app.post(RECHARGE, Some(&token), json!({ "amount": 100, "paymentMethod": 3 })).await.status, 400);
    assert_eq!(app.post(RECHARGE, None, json!({ "amount": 100, "paymentMethod": 1 })).await.status, 401);
    // The largest recharge is fine.
    let id = recharge(&app, &token, json!(5000)).await;
    assert_eq!(payment_status(&app, &token, &id).await["amount"], json!(5000.0));
    assert_eq!(balance(&app, &token).await, 0);
}

/// The same, paid through the sandbox platform (`/_sandbox/pay`), end to end: the notify is
/// acknowledged, the balance is debited once, and the WeChat money goes back through the
/// platform — by the refund the server starts from the notify, or, should that one reach the
/// platform while it is still delivering the payment (told to ask again, `SYSTEM_ERROR`), by
/// the sweep's next ask. Which of the two happens is a race between the refund task and the
/// platform's paid mark; in five runs on SQLite the refund the notify started did it.
#[tokio::test]
async fn a_sandbox_payment_overtaken_by_the_balance_is_refunded() {
    use mpapi::storage::payments::RefundState;

    let app = TestApp::charging().await;
    let (token, _, total, payment) = overtaken_by_the_balance(&app).await;
    let paid = app.sandbox_pay(&payment, "success").await;
    assert_eq!((paid.status, &paid.body["notify"]["status"]), (200, &json!(200)), "{}", paid.body);
    let refunded = || async {
        // The refund runs in the background, and the platform's refund notify after it.
        let mut stored = app.server.db.payments().get(&payment).await.unwrap().unwrap();
        for _ in 0..400 {
            if stored.refund_state == RefundState::Refunded {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            stored = app.server.db.payments().get(&payment).await.unwrap().unwrap();
        }
        stored
    };
    let mut stored = refunded().await;
    let payments = app.server.payments(&app.parts("charging"), app.address.port(), NOTIFY, std::sync::Arc::new(mpapi::storage::charging::Settler));
    for _ in 0..2 {
        if stored.refund_state == RefundState::Refunded {
            break;
        }
        // Told to ask again: the sweep does, a minute or two on (and the next sweep asks the
        // platform how the refund ended, should its notify be slow).
        app.server.clock.advance(Duration::from_secs(121));
        mpapi::serve::housekeeping("charging", &payments, &app.server.db, &app.server.clock).await.unwrap();
        stored = refunded().await;
    }
    assert_eq!((stored.refund_state, stored.amount_fen, stored.refunded_fen), (RefundState::Refunded, total, total), "{stored:?}");
    assert_eq!(balance(&app, &token).await, DEMO_BALANCE_FEN - total, "debited once");
}
