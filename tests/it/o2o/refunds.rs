//! Refunds (004 §订单模块 退款接口) and the races around them: only unused codes are refunded,
//! asking again answers the same refund (退款中 until WeChat Pay's notify, then 退款成功), concurrent requests make one refund, a verify racing a
//! refund has exactly one winner per code; and the unpaid timeout with a payment arriving after it
//! (the money goes back).

use std::sync::Arc;
use std::time::Duration;

use mpapi::payments::Payments;
use mpapi::providers::wechat_pay::{RefundRequest, WechatPay};
use mpapi::storage::o2o::orders::{RefundClaim, Settler};
use mpapi::storage::payments::{PayStatus, RefundRowStatus, RefundState};
use serde_json::json;

use super::*;

async fn paid_order(app: &TestApp, token: &str, goods_id: i64, number: i32) -> (String, Vec<String>) {
    let order_no = buy(app, OPER3, token, goods_id, number).await["order_no"].as_str().unwrap().to_owned();
    pay(app, &order_no).await;
    let paid = order(app, OPER3, token, &order_no).await;
    (order_no, codes(&paid))
}

#[tokio::test]
async fn a_refund_gives_back_the_unused_codes_once() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let token = user_with_phone(&app, OPER3, "refund-partial", "13700000003").await;
    let sold_before = sold(&app, &token, 2048).await;
    let (order_no, codes) = paid_order(&app, &token, 2048, 2).await;
    assert_eq!(sold(&app, &token, 2048).await, sold_before + 2);
    assert_eq!(verify(&app, &codes[0]).await.0, 200);
    let refund = ok(&post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": order_no})).await);
    assert_eq!((&refund["amount"], &refund["order_no"]), (&json!("128.00"), &json!(order_no)), "{refund}");
    assert!(refund["status"] == json!(1) || refund["status"] == json!(2), "退款中 or already 退款成功: {refund}");
    assert!(!refund["refund_id"].as_str().unwrap().is_empty(), "WeChat Pay accepted it: {refund}");
    // WeChat Pay's refund notify follows: asking again answers the same refund, then 退款成功.
    let mut again = Value::Null;
    for _ in 0..200 {
        again = ok(&post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": order_no})).await);
        if again["status"] == json!(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((&again["id"], &again["amount"], &again["refund_id"], &again["status"]), (&refund["id"], &refund["amount"], &refund["refund_id"], &json!(2)), "{again}");
    let after = order(&app, OPER3, &token, &order_no).await;
    assert_eq!((&after["status"], &after["refund_price"]), (&json!(6), &json!("128.00")));
    let statuses = code_statuses(&after);
    assert_eq!(statuses, [2, 3], "the verified code stays verified");
    assert_eq!(sold(&app, &token, 2048).await, sold_before + 1, "sold: paid for and not refunded");
    // The refunded code can no longer be verified; asking again answers the same refund.
    assert_eq!(verify(&app, &codes[1]).await.0, 409);
    // An unpaid order has nothing to refund.
    let unpaid = buy(&app, OPER3, &token, 2051, 1).await["order_no"].as_str().unwrap().to_owned();
    refused(&post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": unpaid})).await, 400, 10001);
}

/// Goods `goods_id`'s `sell_number`.
async fn sold(app: &TestApp, token: &str, goods_id: i64) -> i64 {
    ok(&get(app, OPER3, &format!("/api/user/goods/detail?id={goods_id}"), token).await)["sell_number"].as_i64().unwrap()
}

#[tokio::test]
async fn a_refund_wechat_pay_refuses_puts_the_order_back() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let token = user_with_phone(&app, OPER3, "refund-refused", "13700000008").await;
    let (order_no, codes) = paid_order(&app, &token, 2051, 2).await;
    let sold_paid = sold(&app, &token, 2051).await;
    // The merchant gave the money back on its own (in WeChat Pay's merchant platform): WeChat Pay
    // now refuses our refund of the same order (INVALID_REQUEST: more than is left).
    let platform = app.pay_platform("o2o");
    let merchant_refund = RefundRequest {
        out_trade_no: order_no.clone(),
        out_refund_no: "MERCHANT_REFUND_1".into(),
        reason: None,
        refund_fen: 2,
        total_fen: 2,
        notify_url: String::new(),
    };
    platform.refund(&merchant_refund).await.unwrap();
    for attempt in 0..2 {
        let reply = post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": order_no})).await;
        refused(&reply, 500, 500);
        assert!(reply.body["message"].as_str().unwrap().contains("仍为已付款"), "{}", reply.body);
        // As it was: paid, both codes unused, nothing refunded, the goods still sold.
        let after = order(&app, OPER3, &token, &order_no).await;
        assert_eq!((&after["status"], &after["refund_time"]), (&json!(4), &Value::Null), "attempt {attempt}: {after}");
        let statuses = code_statuses(&after);
        assert_eq!(statuses, [1, 1], "attempt {attempt}");
        assert_eq!(sold(&app, &token, 2051).await, sold_paid, "attempt {attempt}");
        let pay = app.server.db.payments().get(&order_no).await.unwrap().unwrap();
        assert_eq!((pay.refund_state, pay.refunded_fen), (RefundState::Failed, 0), "attempt {attempt}");
    }
    // The codes are the user's to use again.
    assert_eq!(verify(&app, &codes[0]).await.0, 200);
    let after = order(&app, OPER3, &token, &order_no).await;
    assert_eq!(after["status"], json!(4));
}

#[tokio::test]
async fn a_refund_closed_later_puts_the_order_back_and_a_late_success_takes_it_again() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let token = user_with_phone(&app, OPER3, "refund-closed-later", "13700000009").await;
    let (order_no, codes) = paid_order(&app, &token, 2051, 3).await;
    let sold_paid = sold(&app, &token, 2051).await;
    let db = app.server.db.clone();
    let now = app.server.clock.now_ms();
    let order_id = db.o2o().order(&order_no).await.unwrap().unwrap().id;
    // Claimed as /order/refund claims it; WeChat Pay's outcome comes later (a notify, a query).
    let out_refund_no = "RCLOSEDLATER0001";
    let claim = db.o2o().claim_refund(order_id, &order_no, out_refund_no, "用户申请退款", now).await.unwrap();
    assert!(matches!(claim, RefundClaim::Claimed(_)), "{claim:?}");
    assert_eq!(sold(&app, &token, 2051).await, sold_paid - 3);
    // WeChat Pay closes it: the order is paid again with its codes unused, sold again; once.
    assert!(db.payments().refund_outcome(out_refund_no, RefundRowStatus::Closed, None, &Settler, now).await.unwrap());
    assert!(!db.payments().refund_outcome(out_refund_no, RefundRowStatus::Closed, None, &Settler, now).await.unwrap());
    let after = order(&app, OPER3, &token, &order_no).await;
    assert_eq!((&after["status"], &after["refund_price"], code_statuses(&after)), (&json!(4), &Value::Null, vec![1, 1, 1]), "{after}");
    assert_eq!(sold(&app, &token, 2051).await, sold_paid);
    let pay = db.payments().get(&order_no).await.unwrap().unwrap();
    assert_eq!((pay.refund_state, pay.refunded_fen), (RefundState::Failed, 0));

    // A code is used; then the closed refund turns out to have succeeded after all (3 fen back):
    // the two codes still unused are taken, the order is 已退款 by that refund again.
    assert_eq!(verify(&app, &codes[0]).await.0, 200);
    assert!(db.payments().refund_outcome(out_refund_no, RefundRowStatus::Success, Some("50300000000000000000000000001"), &Settler, now).await.unwrap());
    let after = order(&app, OPER3, &token, &order_no).await;
    assert_eq!((&after["status"], &after["refund_price"], code_statuses(&after)), (&json!(6), &json!("0.03"), vec![2, 3, 3]), "{after}");
    assert_eq!(sold(&app, &token, 2051).await, sold_paid - 2);
    let pay = db.payments().get(&order_no).await.unwrap().unwrap();
    assert_eq!((pay.refund_state, pay.refunded_fen), (RefundState::Refunded, 3));
    // Asking for the refund answers that refund, 退款成功.
    let refund = ok(&post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": order_no})).await);
    assert_eq!((&refund["amount"], &refund["status"], &refund["refund_id"]), (&json!("0.03"), &json!(2), &json!("50300000000000000000000000001")), "{refund}");
}

#[tokio::test]
async fn concurrent_refunds_make_one() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let token = user_with_phone(&app, OPER3, "refund-race", "13700000004").await;
    let (order_no, _) = paid_order(&app, &token, 2051, 3).await;
    let requests = (0..8).map(|_| post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": order_no})));
    let replies = futures_util::future::join_all(requests).await;
    let refunds: Vec<Value> = replies.iter().map(ok).collect();
    assert!(refunds.iter().all(|r| r["id"] == refunds[0]["id"] && r["amount"] == json!("0.03")), "{refunds:?}");
    // One refund of the whole: a second would have found nothing left (3 of 3 fen refunded, once
    // WeChat Pay's refund notify has come).
    let mut pay = app.server.db.payments().get(&order_no).await.unwrap().unwrap();
    for _ in 0..400 {
        if pay.refund_state != RefundState::Processing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        pay = app.server.db.payments().get(&order_no).await.unwrap().unwrap();
    }
    assert_eq!((pay.refund_state, pay.refunded_fen), (RefundState::Refunded, 3));
}

#[tokio::test]
async fn a_verify_racing_a_refund_has_one_winner() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let token = user_with_phone(&app, OPER3, "verify-race", "13700000005").await;
    for round in 0..6 {
        let (order_no, codes) = paid_order(&app, &token, 2051, 1).await;
        let refund = post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": order_no}));
        let verified = verify(&app, &codes[0]);
        let (refund, (verify_status, _)) = tokio::join!(refund, verified);
        let after = order(&app, OPER3, &token, &order_no).await;
        match (refund.status, verify_status) {
            (200, 409) => assert_eq!((&after["status"], &after["items"][0]["status"]), (&json!(6), &json!(3)), "round {round}"),
            (400, 200) => assert_eq!((&after["status"], &after["items"][0]["status"]), (&json!(7), &json!(2)), "round {round}"),
            other => panic!("round {round}: both or neither won: {other:?} {}", refund.body),
        }
    }
}

#[tokio::test]
async fn an_unpaid_order_past_its_time_reads_closed_before_any_sweep() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let token = user_with_phone(&app, OPER3, "lapsed-read", "13700000016").await;
    let listed_first = buy(&app, OPER3, &token, 2051, 1).await["order_no"].as_str().unwrap().to_owned();
    let detailed_first = buy(&app, OPER3, &token, 2051, 1).await["order_no"].as_str().unwrap().to_owned();
    app.server.clock.advance(Duration::from_secs(16 * 60));
    // No sweep ran (the server's runs once a minute, on its own clock): the reads close them.
    let listed = ok(&get(&app, OPER3, "/api/user/orders", &token).await);
    let status_of = |no: &str| listed["list"].as_array().unwrap().iter().find(|o| o["order_no"] == no).map(|o| o["status"].clone());
    assert_eq!((status_of(&listed_first), status_of(&detailed_first)), (Some(json!(3)), Some(json!(3))), "{listed}");
    assert_eq!(order(&app, OPER3, &token, &detailed_first).await["status"], json!(3));
    assert_eq!(app.server.db.payments().get(&listed_first).await.unwrap().unwrap().status, PayStatus::Closed);
    refused(&post(&app, OPER3, "/api/user/order/pay", &token, json!({"order_no": detailed_first})).await, 400, 10001);
}

#[tokio::test]
async fn an_unpaid_order_closes_and_a_late_payment_goes_back() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let token = user_with_phone(&app, OPER3, "late-notify", "13700000006").await;
    let order_no = buy(&app, OPER3, &token, 2051, 1).await["order_no"].as_str().unwrap().to_owned();
    let parts = app.parts("o2o");
    let operator = &parts.operators[0];
    let db = app.server.db.clone();
    let payments = Arc::new(Payments::new("o2o:3", operator.pay.clone(), Arc::new(Settler), app.url("/wechatpay/notify/3"), db.clone(), app.server.clock.clone()));
    // Nothing to close before the 15 minutes are over.
    assert_eq!(payments.sweep().await.unwrap().closed, 0);
    app.server.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(payments.sweep().await.unwrap().closed, 1);
    let closed = order(&app, OPER3, &token, &order_no).await;
    assert_eq!(closed["status"], json!(3));
    refused(&post(&app, OPER3, "/api/user/order/pay", &token, json!({"order_no": order_no})).await, 400, 10001);

    // The payer had paid after all: the notify arrives late. Acknowledged, the order stays
    // closed, and the money goes back with the next sweep.
    let (headers, body) = parts.sandbox.pays[0].build_notify(&order_no, true).await.unwrap();
    let mut request = app.client.post(app.url("/wechatpay/notify/3")).body(body);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let reply = read(request.send().await.unwrap()).await;
    assert_eq!((reply.status, &reply.body["code"]), (200, &json!("SUCCESS")), "{}", reply.body);
    let pay = db.payments().get(&order_no).await.unwrap().unwrap();
    // (The server's own housekeeping may have asked for the refund already.)
    assert_eq!(pay.status, PayStatus::Paid);
    assert_ne!(pay.refund_state, RefundState::None, "the money must go back");
    assert_eq!(order(&app, OPER3, &token, &order_no).await["status"], json!(3));
    // The sweep asks WeChat Pay for the money back (the sandbox, which closed the order itself,
    // refuses: the refund is recorded as failed for an operator to act on, never dropped).
    payments.sweep().await.unwrap();
    let pay = db.payments().get(&order_no).await.unwrap().unwrap();
    assert_ne!(pay.refund_state, RefundState::Needed, "the refund was asked for");
    // A notify for another operator's route does not verify against this order (unknown there).
    let (headers, body) = parts.sandbox.pays[0].build_notify(&order_no, true).await.unwrap();
    let mut request = app.client.post(app.url("/wechatpay/notify/5")).body(body);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    assert_ne!(request.send().await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn a_failed_payment_can_be_tried_again_until_the_order_lapses() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let token = user_with_phone(&app, OPER3, "failed-payment", "13700000007").await;
    // The payer's bank refuses (PAYERROR): the order stays unpaid, and a second try pays it.
    let order_no = buy(&app, OPER3, &token, 2051, 1).await["order_no"].as_str().unwrap().to_owned();
    assert_eq!(app.sandbox_pay(&order_no, "fail").await.body["notify"]["status"], json!(200));
    assert_eq!(order(&app, OPER3, &token, &order_no).await["status"], json!(1));
    pay(&app, &order_no).await;
    let paid = order(&app, OPER3, &token, &order_no).await;
    assert_eq!((&paid["status"], codes(&paid).len()), (&json!(4), 1));

    // After a failed attempt the mini-program asks for sdk_config again (/order/pay, twice at
    // once: both answer) and the payer pays with it.
    let order_no = buy(&app, OPER3, &token, 2051, 1).await["order_no"].as_str().unwrap().to_owned();
    assert_eq!(app.sandbox_pay(&order_no, "fail").await.body["notify"]["status"], json!(200));
    let again = || post(&app, OPER3, "/api/user/order/pay", &token, json!({"order_no": order_no}));
    let (first, second) = tokio::join!(again(), again());
    let mut prepay_ids = Vec::new();
    for reply in [&first, &second] {
        let package = ok(reply)["sdk_config"]["package"].as_str().unwrap().to_owned();
        prepay_ids.push(package.strip_prefix("prepay_id=").unwrap_or_else(|| panic!("{}", reply.body)).to_owned());
    }
    let db = app.server.db.clone();
    assert_eq!(db.payments().get(&order_no).await.unwrap().unwrap().status, PayStatus::Pending);
    // Paid through the fresh prepay_id, as wx.requestPayment with that sdk_config pays.
    let paid = app.sandbox_pay(&prepay_ids[1], "success").await;
    assert_eq!(paid.body["notify"]["status"], json!(200), "{}", paid.body);
    let paid = order(&app, OPER3, &token, &order_no).await;
    assert_eq!((&paid["status"], codes(&paid).len()), (&json!(4), 1));
    // A paid order is not reopened.
    assert!(!db.payments().reopen_failed("o2o:3", &order_no, app.server.clock.now_ms()).await.unwrap());

    // WeChat Pay had closed the order (the merchant, in its platform): reopened, it cannot be
    // placed again, so it fails again and /order/pay says it can no longer be paid.
    let order_no = buy(&app, OPER3, &token, 2051, 1).await["order_no"].as_str().unwrap().to_owned();
    assert_eq!(app.sandbox_pay(&order_no, "fail").await.body["notify"]["status"], json!(200));
    // (Nor is a failed order reopened for another API than its own.)
    assert!(!db.payments().reopen_failed("heating", &order_no, app.server.clock.now_ms()).await.unwrap());
    app.pay_platform("o2o").close(&order_no).await.unwrap();
    refused(&post(&app, OPER3, "/api/user/order/pay", &token, json!({"order_no": order_no})).await, 400, 10001);
    assert_eq!(db.payments().get(&order_no).await.unwrap().unwrap().status, PayStatus::Failed);
    assert_eq!(order(&app, OPER3, &token, &order_no).await["status"], json!(1), "unpaid until it lapses");

    // A failure nobody retries: the order closes (3) once its time is over, not before, and
    // can no longer be paid.
    let order_no = buy(&app, OPER3, &token, 2051, 1).await["order_no"].as_str().unwrap().to_owned();
    assert_eq!(app.sandbox_pay(&order_no, "fail").await.body["notify"]["status"], json!(200));
    assert_eq!(db.o2o().close_lapsed(app.server.clock.now_ms()).await.unwrap(), 0);
    app.server.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(db.o2o().close_lapsed(app.server.clock.now_ms()).await.unwrap(), 2, "this one and the one WeChat Pay closed");
    assert_eq!(order(&app, OPER3, &token, &order_no).await["status"], json!(3));
    refused(&post(&app, OPER3, "/api/user/order/pay", &token, json!({"order_no": order_no})).await, 400, 10001);
    // Past its time a failed order is not reopened, whatever the API asks.
    assert!(!db.payments().reopen_failed("o2o:3", &order_no, app.server.clock.now_ms()).await.unwrap());
}
