//! 000 §5.1–§5.4: `payment_info_get`, `payment_create`, `payment_status_get`,
//! `payment_history_list` — bills held by one live order, expiry, late fees, interrupted orders,
//! concurrent creates, late payments.

use std::time::Duration;

use serde_json::{Value, json};

use super::{fen_of, futures_join_all, login, order, order_body, owner, platform_notify, post_notify, status_of, transaction};
use crate::app::TestApp;
use mpapi::storage::heating::{Created, NewOrder, OrderLine};
use mpapi::storage::payments::{NewPayOrder, PayStatus, RefundState};

/// A pending order placed directly in storage, for `bills` of `heat_account`, never given to
/// WeChat Pay (as if the server stopped between the two steps).
fn new_order<'a>(out_trade_no: &'a str, user_id: Option<&'a str>, amount_fen: i64, now: i64) -> NewPayOrder<'a> {
    NewPayOrder {
        out_trade_no,
        api: "heating",
        appid: "wx_sandbox_heating",
        mchid: "1900000001",
        user_id,
        payer_openid: None,
        description: "供热费",
        amount_fen,
        created_at: now,
        expires_at: now + 30 * 60_000,
    }
}

#[tokio::test]
async fn payment_create_concurrently_for_one_bill_pays_once() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000006").await;
    let info = app.get("/api/payment/info", Some(&token)).await;
    let bill_id = info.data()["unpaid_bills"][0]["bill_id"].clone();
    let amount = info.data()["total_unpaid"].as_f64().unwrap() + info.data()["total_late_fee"].as_f64().unwrap();
    let body = json!({"bill_ids": [bill_id], "amount": (amount * 100.0).round() / 100.0});
    let replies = futures_join(&app, &token, &body, 8).await;
    let mut orders: Vec<String> =
        replies.iter().filter(|r| r.status == 200).map(|r| r.data()["order_id"].as_str().unwrap().to_owned()).collect();
    assert!(!orders.is_empty(), "at least one request orders");
    orders.dedup();
    assert_eq!(orders.len(), 1, "every successful create answers the same order: {orders:?}");
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_eq!((reply.status, reply.code()), (400, 400), "{}", reply.body);
    }
    // Pay it, concurrently twice: one state change.
    let (a, b) = tokio::join!(app.sandbox_pay(&orders[0], "success"), app.sandbox_pay(&orders[0], "success"));
    assert!(a.status == 200 || b.status == 200, "{} {}", a.body, b.body);
    let history = app.get("/api/payment/history", Some(&token)).await;
    let paid: Vec<&Value> =
        history.data()["records"].as_array().unwrap().iter().filter(|r| r["bill_id"] == bill_id && r["status"] == "paid").collect();
    assert_eq!(paid.len(), 1);
    // And at the storage level: racing claims of one bill, exactly one wins.
    let bills = app.server.db.heating_accounts().bills("H202400002").await.unwrap();
    let bill = bills[0].clone();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let db = app.server.db.clone();
        let bill = bill.clone();
        let now = app.server.clock.now_ms();
        tasks.push(tokio::spawn(async move {
            let number = format!("ORACE{i}");
            let lines = [OrderLine { bill_id: bill.bill_id.clone(), amount_fen: bill.amount_fen, late_fee_fen: 0 }];
            db.heating_orders().create(NewOrder { pay: new_order(&number, None, bill.amount_fen, now), heat_account: "H202400002", lines: &lines }).await.unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap() == Created::Created);
    }
    assert_eq!(won, 1);
}
/// In the sandbox an order may be placed before its payer is known (heating's `wx_code` is
/// optional there): the same bills asked for again with a `wx_code` answer that order's pay
/// parameters, placed for the payer now known, not a refusal.
#[tokio::test]
async fn payment_create_again_with_a_wx_code_pays_the_same_order() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13800138015").await;
    let mut body = order_body(&app, &token).await;
    let first = app.post("/api/payment/create", Some(&token), body.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    body["wx_code"] = json!("a-wx-code");
    let again = app.post("/api/payment/create", Some(&token), body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.data()["order_id"], first.data()["order_id"], "{}", again.body);
    let order_id = again.data()["order_id"].as_str().unwrap();
    let placed = app.server.db.payments().get(order_id).await.unwrap().unwrap();
    assert!(placed.payer_openid.is_some() && placed.prepay.and_then(|p| p.payer_openid) == placed.payer_openid, "placed for the payer now known");
}

#[tokio::test]
async fn payment_notify_a_failed_payment_frees_the_bills() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000009").await;
    let (order_id, _) = order(&app, &token).await;
    let failed = app.sandbox_pay(&order_id, "fail").await;
    assert_eq!(failed.body["notify"]["status"], 200, "{}", failed.body);
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(status.data()["status"], "failed");
    let (again, _) = order(&app, &token).await;
    assert_ne!(again, order_id);
    // History filters by Beijing date; far-past dates find nothing.
    let none = app.get("/api/payment/history?start_date=2000-01-01&end_date=2000-12-31", Some(&token)).await;
    assert_eq!(none.data()["total"], 0);
    let backwards = app.get("/api/payment/history?start_date=2025-02-01&end_date=2025-01-01", Some(&token)).await;
    assert_eq!((backwards.status, backwards.code()), (400, 400));
}

/// The sandbox platform of a one-merchant API pays only orders it took: an unknown number is 404
/// naming it; a `result` other than success/fail is 400 and the order stays payable.
#[tokio::test]
async fn sandbox_pay_of_an_order_it_never_took_is_not_found() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000019").await;
    let unknown = app.sandbox_pay("HT209912310000000001", "success").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.body.to_string().contains("HT209912310000000001"), "{}", unknown.body);
    let (order_id, _) = order(&app, &token).await;
    let odd = app.sandbox_pay(&order_id, "maybe").await;
    assert_eq!(odd.status, 400, "{}", odd.body);
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(status.data()["status"], "pending", "{}", status.body);
    let paid = app.sandbox_pay(&order_id, "success").await;
    assert_eq!((paid.status, &paid.body["notify"]["status"]), (200, &json!(200)), "{}", paid.body);
}

async fn futures_join(app: &TestApp, token: &str, body: &Value, n: usize) -> Vec<crate::app::Reply> {
    let requests = (0..n).map(|_| app.post("/api/payment/create", Some(token), body.clone())).collect();
    futures_join_all(requests).await
}

#[tokio::test]
async fn payment_create_an_expired_order_frees_its_bills() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000040").await;
    let (first, _) = order(&app, &token).await;
    // Asking again while it lives answers the same order.
    let (again, _) = order(&app, &token).await;
    assert_eq!(again, first);
    app.server.clock.advance(Duration::from_secs(30 * 60 + 1));
    assert_eq!(status_of(&app, &token, &first).await, "canceled");
    // The sandbox platform will not take money for it any more.
    let late = app.sandbox_pay(&first, "success").await;
    assert_eq!(late.status, 409, "{}", late.body);
    // Its bills are free: a new order takes them (the late fee may have grown meanwhile).
    let (second, _) = order(&app, &token).await;
    assert_ne!(second, first);
    assert_eq!(app.sandbox_pay(&second, "success").await.status, 200);
    assert_eq!(status_of(&app, &token, &second).await, "paid");
    assert_eq!(status_of(&app, &token, &first).await, "canceled");
}

#[tokio::test]
async fn payment_notify_a_late_payment_of_an_expired_order_still_applies() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000041").await;
    let (order_id, amount) = order(&app, &token).await;
    app.server.clock.advance(Duration::from_secs(31 * 60));
    // The payer paid at the last moment; the notify comes after the order's time ran out, and
    // nobody took its bills meanwhile: it applies.
    let (headers, body) = platform_notify(&app, "EV-late", "TRANSACTION.SUCCESS", transaction(&app, &order_id, fen_of(&amount), "4200000000000000000000000041")).await;
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    assert_eq!(status_of(&app, &token, &order_id).await, "paid");
    let info = app.get("/api/payment/info", Some(&token)).await;
    assert_eq!(info.data()["unpaid_bills"], json!([]));
}

#[tokio::test]
async fn payment_notify_for_bills_another_order_paid_is_kept_for_a_refund() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000042").await;
    let (first, amount) = order(&app, &token).await;
    app.server.clock.advance(Duration::from_secs(31 * 60));
    let (second, _) = order(&app, &token).await;
    assert_eq!(app.sandbox_pay(&second, "success").await.status, 200);
    // The first order's payment shows up late: WeChat must stop retrying (it is acknowledged),
    // the money is recorded as taken, and the order is marked for a refund — not just logged.
    let (headers, body) = platform_notify(&app, "EV-taken", "TRANSACTION.SUCCESS", transaction(&app, &first, fen_of(&amount), "4200000000000000000000000042")).await;
    let (status, ack) = post_notify(&app, &headers, body).await;
    assert_eq!((status, ack["code"].as_str()), (200, Some("SUCCESS")));
    let stored = app.server.db.payments().get(&first).await.unwrap().unwrap();
    assert_eq!(stored.status, PayStatus::Paid);
    assert_ne!(stored.refund_state, RefundState::None, "{stored:?}");
    assert!(stored.refund_reason.as_deref().is_some_and(|r| r.contains("taken")), "{stored:?}");
    // The bills stay paid by the second order; the first reads canceled (its money goes back)
    // and counts nowhere.
    assert_eq!(status_of(&app, &token, &first).await, "canceled");
    let history = app.get("/api/payment/history", Some(&token)).await;
    let records = history.data()["records"].as_array().unwrap();
    let state = |id: &str| records.iter().find(|r| r["order_id"] == id).map(|r| r["status"].clone());
    assert_eq!((state(&second), state(&first)), (Some(json!("paid")), Some(json!("canceled"))), "{}", history.body);
    let stats = app.get("/api/statistics/user", Some(&token)).await;
    let second_amount = app.get(&format!("/api/payment/status/{second}"), Some(&token)).await.data()["amount"].clone();
    assert_eq!(stats.data()["current_season_paid"], second_amount, "{}", stats.body);
}

#[tokio::test]
async fn payment_create_refuses_an_amount_whose_late_fee_changed() {
    let app = TestApp::heating().await;
    let mut token = owner(&app, "13900000043").await;
    // Past the bill's due day, where a late fee runs (from August to November the seeded bill
    // is not due yet).
    let info = app.get("/api/payment/info", Some(&token)).await;
    let due = chrono::DateTime::parse_from_rfc3339(info.data()["unpaid_bills"][0]["due_date"].as_str().unwrap()).unwrap();
    let overdue_from = due.with_timezone(&chrono::Utc) + chrono::Duration::days(2);
    if app.server.clock.now() < overdue_from {
        app.server.clock.advance((overdue_from - app.server.clock.now()).to_std().unwrap());
        token = login(&app, "13900000043").await.0;
    }
    let body = order_body(&app, &token).await;
    assert_ne!(body["amount"], info.data()["total_unpaid"], "a late fee runs: {body}");
    // A day later the late fee has grown by 0.05 %: the amount the client saw is refused.
    app.server.clock.advance(Duration::from_secs(86_400));
    let (token, _) = login(&app, "13900000043").await;
    let stale = app.post("/api/payment/create", Some(&token), body.clone()).await;
    assert_eq!((stale.status, stale.code()), (400, 400), "{}", stale.body);
    assert!(stale.body["message"].as_str().unwrap().starts_with("支付金额不正确"), "{}", stale.body);
    let fresh = order_body(&app, &token).await;
    assert_ne!(fresh["amount"], body["amount"]);
    assert_eq!(app.post("/api/payment/create", Some(&token), fresh).await.status, 200);
}

#[tokio::test]
async fn payment_create_picks_up_an_order_whose_placing_was_interrupted() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000044").await;
    let user_id = app.get("/api/user/profile", Some(&token)).await.data()["id"].as_str().unwrap().to_owned();
    let body = order_body(&app, &token).await;
    let bill_id = body["bill_ids"][0].as_str().unwrap().to_owned();
    let amount_fen = fen_of(&body["amount"]);
    // The order and its bill hold were written, then the server stopped before asking WeChat Pay.
    let now = app.server.clock.now_ms();
    let lines = [OrderLine { bill_id, amount_fen, late_fee_fen: 0 }];
    let created = app
        .server
        .db
        .heating_orders()
        .create(NewOrder { pay: new_order("O0000000000001", Some(&user_id), amount_fen, now), heat_account: "H202400001", lines: &lines })
        .await
        .unwrap();
    assert_eq!(created, Created::Created);
    // The retry answers that order, now placed and signed — not "being created" for 30 minutes.
    let retry = app.post("/api/payment/create", Some(&token), body).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.data()["order_id"], "O0000000000001");
    assert!(retry.data()["wechat_pay_params"]["package"].as_str().unwrap().starts_with("prepay_id=wx"));
    assert_eq!(app.sandbox_pay("O0000000000001", "success").await.status, 200);
    assert_eq!(status_of(&app, &token, "O0000000000001").await, "paid");
}

#[tokio::test]
async fn an_order_number_taken_is_drawn_again_not_a_500() {
    let app = TestApp::heating().await;
    let orders = app.server.db.heating_orders();
    let bills = app.server.db.heating_accounts().bills("H202400002").await.unwrap();
    let bill = &bills[0];
    let now = app.server.clock.now_ms();
    let lines = [OrderLine { bill_id: bill.bill_id.clone(), amount_fen: bill.amount_fen, late_fee_fen: 0 }];
    // A number already used by a seeded order of another account: refused as taken, and the
    // bill's hold is rolled back with it.
    let seeded = app.server.db.heating_orders().records("H202400001", None, None, mpapi::api_support::PageRequest::new(1, 1, 10)).await.unwrap();
    let taken = seeded.items[0].order.out_trade_no.clone();
    let outcome = orders.create(NewOrder { pay: new_order(&taken, None, bill.amount_fen, now), heat_account: "H202400002", lines: &lines }).await.unwrap();
    assert_eq!(outcome, Created::NumberTaken);
    let outcome = orders.create(NewOrder { pay: new_order("O0000000000002", None, bill.amount_fen, now), heat_account: "H202400002", lines: &lines }).await.unwrap();
    assert_eq!(outcome, Created::Created, "the bill was not left held");
}

#[tokio::test]
async fn housekeeping_closes_expired_orders_and_prunes() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000045").await;
    let (order_id, _) = order(&app, &token).await;
    let parts = app.parts("heating");
    // The same payments the router uses: its merchant (the sandbox platform), its database.
    let payments = app.server.payments(&parts, app.address.port(), "/api/payment/notify", std::sync::Arc::new(mpapi::storage::heating::Settler));
    let (swept, _) = mpapi::serve::housekeeping("heating", &payments, &app.server.db, &app.server.clock).await.unwrap();
    assert_eq!(swept.closed, 0, "a live order stays open");
    app.server.clock.advance(Duration::from_secs(31 * 60));
    let (swept, _) = mpapi::serve::housekeeping("heating", &payments, &app.server.db, &app.server.clock).await.unwrap();
    assert_eq!(swept.closed, 1);
    assert_eq!(app.server.db.payments().get(&order_id).await.unwrap().unwrap().status, PayStatus::Closed);
    // Closed with the payment platform too: it will not take money for it any more.
    let late = app.sandbox_pay(&order_id, "success").await;
    assert_eq!(late.status, 409, "{}", late.body);
    assert_eq!(status_of(&app, &token, &order_id).await, "canceled");
    // A later placing's prepay id, as the platform records one beside the order (the first
    // placing's is on the order's own row).
    let merchant = mpapi::providers::wechat_pay::WechatPay::merchant(parts.pay.as_ref());
    let ledger = app.server.db.sandbox_pay(&merchant.mchid, &merchant.appid);
    ledger.add_prepay("wx_a_later_placing", &order_id, app.server.clock.now_ms()).await.unwrap();
    assert!(ledger.resolve("wx_a_later_placing").await.unwrap().is_some());
    let first = ledger.order(&order_id).await.unwrap().unwrap().order.prepay_id.expect("the first placing's prepay_id");
    // Forty days on, the two codes of this test and the phone's send slot (more than two days
    // old), its session (its refresh token lapsed after 30 days), the later prepay id
    // (WeChat's live two hours) and three budgets whose window has passed (the client's per-IP
    // limit and code sends, the user's binding attempts) are pruned; nothing is left to prune
    // after that.
    app.server.clock.advance(Duration::from_secs(40 * 86_400));
    let (_, pruned) = mpapi::serve::housekeeping("heating", &payments, &app.server.db, &app.server.clock).await.unwrap();
    assert_eq!(pruned, 8, "two codes, a send slot, a session, a prepay id and three budgets");
    let (_, again) = mpapi::serve::housekeeping("heating", &payments, &app.server.db, &app.server.clock).await.unwrap();
    assert_eq!(again, 0);
    assert!(ledger.resolve("wx_a_later_placing").await.unwrap().is_none());
    // The platform keeps the order itself for a year's refunds, and the first prepay_id with it
    // (paying with it is refused as the closed order's); after 400 days both go.
    assert!(ledger.order(&order_id).await.unwrap().is_some());
    assert_eq!(ledger.resolve(&first).await.unwrap().map(|row| row.order.out_trade_no), Some(order_id.clone()));
    app.server.clock.advance(Duration::from_secs(361 * 86_400));
    let (_, pruned) = mpapi::serve::housekeeping("heating", &payments, &app.server.db, &app.server.clock).await.unwrap();
    assert_eq!(pruned, 1, "the sandbox platform's order");
    assert!(ledger.order(&order_id).await.unwrap().is_none());
    assert!(ledger.resolve(&first).await.unwrap().is_none());
}

/// `payment_history_list` dates a record by its payment (000 §5.4 in the contract: 按支付时间):
/// an order placed at 23:50 Beijing time and paid twenty minutes later is the next day's.
#[tokio::test]
async fn payment_history_dates_an_order_by_its_payment() {
    let app = TestApp::heating().await;
    // 23:50 Beijing time first, then a user (its token lasts two hours) orders at about 23:50.
    let now = app.server.clock.now_ms();
    let before_midnight = mpapi::clock::beijing_day_start(mpapi::clock::beijing_date(now)) + 86_400_000 - 10 * 60_000;
    let target = if before_midnight > now { before_midnight } else { before_midnight + 86_400_000 };
    app.server.clock.advance(Duration::from_millis((target - now) as u64));
    let token = owner(&app, "13900000029").await;
    let placed_on = mpapi::clock::beijing_date(app.server.clock.now_ms());
    assert_eq!(placed_on, mpapi::clock::beijing_date(target));
    let (order_id, _) = order(&app, &token).await;
    app.server.clock.advance(Duration::from_secs(1200));
    let paid = app.sandbox_pay(&order_id, "success").await;
    assert_eq!(paid.body["notify"]["status"], 200, "{}", paid.body);
    let paid_on = placed_on.succ_opt().unwrap();
    assert_eq!(mpapi::clock::beijing_date(app.server.clock.now_ms()), paid_on);
    let orders_on = |date: chrono::NaiveDate| {
        let url = format!("/api/payment/history?start_date={date}&end_date={date}");
        let token = token.clone();
        let app = &app;
        async move {
            let history = app.get(&url, Some(&token)).await;
            assert_eq!(history.status, 200, "{}", history.body);
            history.data()["records"].as_array().unwrap().iter().map(|r| r["order_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert!(!orders_on(placed_on).await.contains(&order_id), "listed on the day it was placed");
    assert!(orders_on(paid_on).await.contains(&order_id), "not listed on the day it was paid");
}

/// A user who changes which bills to pay (the document has no cancel): the unpaid order of the
/// first choice is closed with WeChat Pay and ends `canceled`, its bills go to the new order,
/// and the bill left out can be ordered on its own at once.
#[tokio::test]
async fn payment_create_for_another_choice_replaces_the_users_unpaid_order() {
    let app = TestApp::heating().await;
    let (token, bills) = owner_of_two_bills(&app, "13900000028").await;
    let create = |ids: Vec<&Value>| {
        let (app, token, body) = (&app, &token, bills_body(&ids));
        async move {
            let created = app.post("/api/payment/create", Some(token), body).await;
            assert_eq!(created.status, 200, "{}", created.body);
            created.data()["order_id"].as_str().unwrap().to_owned()
        }
    };
    let both = create(bills.iter().collect()).await;
    let extra_only = bills.iter().find(|b| b["bill_id"] == "BEXTRA0001").unwrap();
    let current = bills.iter().find(|b| b["bill_id"] != "BEXTRA0001").unwrap();
    // Now only the extra bill: a new order, the first one closed.
    let one = create(vec![extra_only]).await;
    assert_ne!(one, both);
    assert_eq!(status_of(&app, &token, &both).await, "canceled");
    let stale = app.sandbox_pay(&both, "success").await;
    assert_eq!(stale.status, 409, "the replaced order was closed with WeChat Pay: {}", stale.body);
    // The bill left out is free at once; both orders can be paid.
    let other = create(vec![current]).await;
    for order_id in [&one, &other] {
        let paid = app.sandbox_pay(order_id, "success").await;
        assert_eq!(paid.body["notify"]["status"], 200, "{}", paid.body);
        assert_eq!(status_of(&app, &token, order_id).await, "paid");
    }
    assert_eq!(status_of(&app, &token, &both).await, "canceled");
}

/// An owner of H202400001 (`phone`) whose account has a second unpaid bill, `BEXTRA0001`, of
/// the current season and due a year from now (no late fee), written straight to the
/// database: (token, the two unpaid bills as `payment_info_get` lists them).
async fn owner_of_two_bills(app: &TestApp, phone: &str) -> (String, Vec<Value>) {
    use mpapi::storage::heating::{BillStatus, entity::bill};
    use sea_orm::{ActiveModelTrait, Set};
    let token = owner(app, phone).await;
    let info = app.get("/api/payment/info", Some(&token)).await;
    let season = info.data()["unpaid_bills"][0]["heating_season"].as_str().unwrap().to_owned();
    let conn = sea_orm::Database::connect(&app.server.config.database_url).await.unwrap();
    let now = app.server.clock.now_ms();
    let extra = bill::ActiveModel {
        bill_id: Set("BEXTRA0001".into()),
        heat_account: Set("H202400001".into()),
        heating_season: Set(season),
        amount_fen: Set(10_000),
        bill_date: Set(now),
        due_date: Set(now + 365 * 86_400_000),
        status: Set(BillStatus::Unpaid),
        paid_at: Set(None),
        late_fee_paid_fen: Set(None),
        order_id: Set(None),
        hold_until: Set(None),
    };
    extra.insert(&conn).await.unwrap();
    let info = app.get("/api/payment/info", Some(&token)).await;
    let bills = info.data()["unpaid_bills"].as_array().unwrap().clone();
    assert_eq!(bills.len(), 2, "{}", info.body);
    (token, bills)
}

/// The `payment_create` body for `bills` as `payment_info_get` listed them: their amounts and
/// late fees.
fn bills_body(bills: &[&Value]) -> Value {
    let amount = bills.iter().map(|b| fen_of(&b["amount"]) + fen_of(&b["late_fee"])).sum::<i64>() as f64 / 100.0;
    json!({"bill_ids": bills.iter().map(|b| b["bill_id"].clone()).collect::<Vec<_>>(), "amount": amount})
}

/// A bill another order holds is not taken by a new choice of bills, and the caller's own
/// order is then left as it was: nothing is given up for an order that cannot be placed.
#[tokio::test]
async fn payment_create_keeps_the_users_order_when_another_holds_a_wanted_bill() {
    let app = TestApp::heating().await;
    let (token, bills) = owner_of_two_bills(&app, "13900000027").await;
    let current = bills.iter().find(|b| b["bill_id"] != "BEXTRA0001").unwrap();
    let mine = app.post("/api/payment/create", Some(&token), bills_body(&[current])).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    let mine = mine.data()["order_id"].as_str().unwrap().to_owned();
    // An order of no user of this server's (placed straight in storage) holds the extra bill.
    let now = app.server.clock.now_ms();
    let lines = [OrderLine { bill_id: "BEXTRA0001".into(), amount_fen: 10_000, late_fee_fen: 0 }];
    let held = app.server.db.heating_orders().create(NewOrder { pay: new_order("OHELD0001", None, 10_000, now), heat_account: "H202400001", lines: &lines }).await.unwrap();
    assert_eq!(held, Created::Created);
    let refused = app.post("/api/payment/create", Some(&token), bills_body(&bills.iter().collect::<Vec<_>>())).await;
    assert_eq!((refused.status, refused.body["message"].as_str()), (400, Some("账单已缴清或正在支付中，请刷新后重试")), "{}", refused.body);
    assert_eq!(status_of(&app, &token, &mine).await, "pending");
    let paid = app.sandbox_pay(&mine, "success").await;
    assert_eq!(paid.body["notify"]["status"], 200, "{}", paid.body);
}
