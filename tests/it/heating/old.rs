//! The heating API (000) for real: the document's journey end to end, and the fault cases —
//! concurrent payment, duplicate and forged notifies, rate limits, code expiry and attempts,
//! refresh-token reuse. Every JSON answer is checked against openapi/heating.yaml by `TestApp`.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::app::TestApp;

const OWNER_ID: &str = "610102199001011231";

/// Send a code of `kind` to `phone` and read it from the sandbox outbox.
async fn code(app: &TestApp, phone: &str, kind: &str) -> String {
    let sent = app.post("/api/sms/send", None, json!({"phone": phone, "type": kind})).await;
    assert_eq!((sent.status, sent.code()), (200, 200), "{}", sent.body);
    app.sms_code(phone).await
}

/// Register `phone` and log in; answers (access token, refresh token). Codes are one per phone
/// per minute, so the clock moves a minute between them.
async fn user(app: &TestApp, phone: &str) -> (String, String) {
    let register_code = code(app, phone, "register").await;
    let registered =
        app.post("/api/auth/register", None, json!({"phone": phone, "code": register_code, "password": "123456789"})).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    app.server.clock.advance(Duration::from_secs(61));
    let login_code = code(app, phone, "login").await;
    let login = app.post("/api/auth/login", None, json!({"phone": phone, "code": login_code})).await;
    assert_eq!(login.status, 200, "{}", login.body);
    (login.data()["token"].as_str().unwrap().to_owned(), login.data()["refresh_token"].as_str().unwrap().to_owned())
}

/// A user bound to H202400001.
async fn owner(app: &TestApp, phone: &str) -> String {
    let (token, _) = user(app, phone).await;
    let bound = app
        .post(
            "/api/heat/bind",
            Some(&token),
            json!({"heat_account": "H202400001", "real_name": "张三", "id_card": OWNER_ID, "address": "天山区xx小区xx号楼xx单元xx室"}),
        )
        .await;
    assert_eq!(bound.status, 200, "{}", bound.body);
    token
}

/// Create a payment for every unpaid bill; answers (order_id, amount).
async fn order(app: &TestApp, token: &str) -> (String, Value) {
    let info = app.get("/api/payment/info", Some(token)).await;
    let bills: Vec<Value> = info.data()["unpaid_bills"].as_array().unwrap().iter().map(|b| b["bill_id"].clone()).collect();
    let amount = info.data()["total_unpaid"].as_f64().unwrap() + info.data()["total_late_fee"].as_f64().unwrap();
    let amount = json!((amount * 100.0).round() / 100.0);
    let created = app.post("/api/payment/create", Some(token), json!({"bill_ids": bills, "amount": amount})).await;
    assert_eq!(created.status, 200, "{}", created.body);
    (created.data()["order_id"].as_str().unwrap().to_owned(), amount)
}

#[tokio::test]
async fn the_documented_journey() {
    let app = TestApp::heating().await;
    let phone = "13888888888";

    // §1.1 → §2.2 register, §2.1 login
    let register_code = code(&app, phone, "register").await;
    assert_eq!(register_code.len(), 6);
    let verified = app.post("/api/sms/verify", None, json!({"phone": phone, "code": register_code, "type": "register"})).await;
    assert_eq!((verified.status, verified.data()["is_valid"].as_bool()), (200, Some(true)));
    let registered = app
        .post("/api/auth/register", None, json!({"phone": phone, "code": register_code, "password": "123456789", "nickname": "用户昵称"}))
        .await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    assert_eq!(registered.data()["nickname"], "用户昵称");
    assert_eq!(registered.data()["user_id"].as_str().unwrap().len(), 24);
    app.server.clock.advance(Duration::from_secs(61));
    let login_code = code(&app, phone, "login").await;
    let login = app.post("/api/auth/login", None, json!({"phone": phone, "code": login_code})).await;
    assert_eq!((login.status, login.body["message"].as_str()), (200, Some("登录成功")));
    assert_eq!(login.data()["expires_in"], 7200);
    assert_eq!(login.data()["user_info"]["is_first_login"], true);
    let token = login.data()["token"].as_str().unwrap().to_owned();
    let refresh_token = login.data()["refresh_token"].as_str().unwrap().to_owned();

    // §3.1 profile before binding
    let profile = app.get("/api/user/profile", Some(&token)).await;
    assert_eq!(profile.status, 200);
    assert_eq!((profile.data()["phone"].as_str(), profile.data()["heat_account"].as_str()), (Some(phone), None));

    // §4.1 bind: the document's own ID number fails GB 11643, the owner's real one binds.
    let bind = |id: &str| {
        json!({"heat_account": "H202400001", "real_name": "张三", "id_card": id, "address": "天山区xx小区xx号楼xx单元xx室"})
    };
    let refused = app.post("/api/heat/bind", Some(&token), bind("610102199001011234")).await;
    assert_eq!((refused.status, refused.code()), (400, 400), "{}", refused.body);
    let bound = app.post("/api/heat/bind", Some(&token), bind(OWNER_ID)).await;
    assert_eq!(bound.status, 200, "{}", bound.body);
    assert_eq!(bound.data()["heating_area"], json!(85.5));
    assert_eq!(bound.data()["heating_fee"], json!(1250.5));

    // §3.1 again: the binding filled the profile, masked.
    let profile = app.get("/api/user/profile", Some(&token)).await;
    assert_eq!(profile.data()["id_card"], "610102********1231");
    assert_eq!(profile.data()["real_name"], "张三");
    assert_eq!(profile.data()["heat_account"], "H202400001");
    assert_eq!(profile.data()["balance"], json!(-1250.5));

    // §4.2 account, §5.1 bills
    let account = app.get("/api/heat/account", Some(&token)).await;
    assert_eq!(account.status, 200);
    assert_eq!(account.data()["unpaid_fee"], json!(1250.5));
    assert_eq!(account.data()["paid_fee"], json!(2499.0));
    assert_eq!(account.data()["current_balance"], json!(-1250.5));
    let info = app.get("/api/payment/info", Some(&token)).await;
    assert_eq!(info.data()["unpaid_bills"].as_array().unwrap().len(), 1);
    assert_eq!(info.data()["total_unpaid"], json!(1250.5));

    // §5.2 a wrong amount is refused; the right one orders.
    let bill_id = info.data()["unpaid_bills"][0]["bill_id"].clone();
    let late_fee = info.data()["total_late_fee"].as_f64().unwrap();
    let wrong = app.post("/api/payment/create", Some(&token), json!({"bill_ids": [bill_id], "amount": 1.0})).await;
    assert_eq!((wrong.status, wrong.code()), (400, 400));
    let text = app.post("/api/payment/create", Some(&token), json!({"bill_ids": [bill_id], "amount": "1250.50"})).await;
    assert_eq!((text.status, text.code()), (400, 400), "money is a JSON number: {}", text.body);
    let (order_id, amount) = order(&app, &token).await;
    assert_eq!(amount, json!(((1250.5 + late_fee) * 100.0_f64).round() / 100.0));
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(status.data()["status"], "pending");

    // §5.5 the sandbox pays: a signed v3 notify reaches our notify endpoint.
    let paid = app.sandbox_pay(&order_id, "success").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["notify"]["status"], 200, "{}", paid.body);
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(status.data()["status"], "paid");
    assert!(status.data()["paid_at"].is_string());
    let info = app.get("/api/payment/info", Some(&token)).await;
    assert_eq!(info.data()["unpaid_bills"], json!([]));

    // §5.4 history: this payment first, then the two seeded ones.
    let history = app.get("/api/payment/history?page=1&size=20", Some(&token)).await;
    assert_eq!(history.data()["total"], 3);
    assert_eq!(history.data()["records"][0]["order_id"], order_id.as_str());
    assert_eq!(history.data()["records"][0]["status"], "paid");
    let page2 = app.get("/api/payment/history?page=2&size=2", Some(&token)).await;
    assert_eq!((page2.data()["total"].as_i64(), page2.data()["records"].as_array().unwrap().len()), (Some(3), 1));

    // §7.1 statistics from the payments.
    let stats = app.get("/api/statistics/user", Some(&token)).await;
    assert_eq!(stats.status, 200);
    assert_eq!(stats.data()["total_heating_seasons"], 3);
    assert_eq!(stats.data()["current_season_paid"], amount);

    // §2.3 refresh rotates; §2.4 logout ends the session.
    let refreshed = app.post("/api/auth/refresh", None, json!({"refresh_token": refresh_token})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let new_token = refreshed.data()["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/user/profile", Some(&new_token)).await.status, 200);
    let logout = app.post("/api/auth/logout", Some(&new_token), json!({})).await;
    assert_eq!(logout.status, 200, "{}", logout.body);
    let after = app.get("/api/user/profile", Some(&new_token)).await;
    assert_eq!((after.status, after.code()), (401, 401));
    let refresh_after = app.post("/api/auth/refresh", None, json!({"refresh_token": refreshed.data()["refresh_token"]})).await;
    assert_eq!(refresh_after.status, 401);
}

#[tokio::test]
async fn public_operations_answer_from_storage() {
    let app = TestApp::heating().await;
    let health = app.get("/health", None).await;
    assert_eq!((health.status, health.data()["mongodb"].as_str()), (200, Some("connected")));
    let agreements = app.get("/api/config/agreements", None).await;
    assert_eq!(agreements.data()["user_agreement"]["title"], "用户协议");
    assert_eq!(agreements.data()["privacy_policy"]["version"], "1.0");
    let system = app.get("/api/config/system", None).await;
    assert_eq!(system.data()["customer_service_phone"], "0991-1234567");
    assert_eq!(system.data()["maintenance_notice"], Value::Null);
    insta::assert_json_snapshot!("heating_system_config", system.data());
}

#[tokio::test]
async fn sms_codes_are_typed_limited_and_expire() {
    let app = TestApp::heating().await;
    let phone = "13900000001";
    // A malformed phone number is the document's 1001 (§1.1), naming the field.
    let malformed = app.post("/api/sms/send", None, json!({"phone": "1388888888", "type": "login"})).await;
    assert_eq!((malformed.status, malformed.code()), (400, 1001), "{}", malformed.body);
    assert!(malformed.body["message"].as_str().unwrap().starts_with("手机号格式不正确"));
    let first = code(&app, phone, "register").await;
    // One per phone per minute, with Retry-After.
    let again = app.post("/api/sms/send", None, json!({"phone": phone, "type": "register"})).await;
    assert_eq!((again.status, again.code()), (429, 1008));
    let wait: u64 = again.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // A code of another type does not register.
    let wrong_type = app.post("/api/sms/verify", None, json!({"phone": phone, "code": first, "type": "login"})).await;
    assert_eq!((wrong_type.status, wrong_type.code()), (400, 1002));
    // Five wrong guesses kill the code, even for the right guess after.
    let wrong = if first == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let reply = app.post("/api/sms/verify", None, json!({"phone": phone, "code": wrong, "type": "register"})).await;
        assert_eq!(reply.code(), 1002);
    }
    let dead = app.post("/api/sms/verify", None, json!({"phone": phone, "code": first, "type": "register"})).await;
    assert_eq!((dead.status, dead.code()), (400, 1002));
    // A new code after a minute; after 5 minutes it has expired.
    app.server.clock.advance(Duration::from_secs(61));
    let second = code(&app, phone, "register").await;
    app.server.clock.advance(Duration::from_secs(301));
    let expired = app.post("/api/auth/register", None, json!({"phone": phone, "code": second, "password": "123456789"})).await;
    assert_eq!((expired.status, expired.code()), (400, 1006));
    // Codes are single-use.
    let third = code(&app, phone, "register").await;
    let ok = app.post("/api/auth/register", None, json!({"phone": phone, "code": third, "password": "123456789"})).await;
    assert_eq!(ok.status, 200);
    // Logging in needs a registered phone.
    app.server.clock.advance(Duration::from_secs(61));
    let stranger = code(&app, "13900000010", "login").await;
    let unknown = app.post("/api/auth/login", None, json!({"phone": "13900000010", "code": stranger})).await;
    assert_eq!((unknown.status, unknown.code()), (404, 1004));
    let used = app.post("/api/auth/register", None, json!({"phone": phone, "code": third, "password": "123456789"})).await;
    assert_eq!((used.status, used.code()), (400, 1002), "a used code");
    // Registering a registered phone is 1003 — only with a valid code, so it reveals nothing to
    // someone without the phone.
    let fourth = code(&app, phone, "register").await;
    let exists = app.post("/api/auth/register", None, json!({"phone": phone, "code": fourth, "password": "123456789"})).await;
    assert_eq!((exists.status, exists.code()), (409, 1003));
    let guess = app.post("/api/auth/register", None, json!({"phone": "13900000011", "code": "123456", "password": "123456789"})).await;
    assert_eq!(guess.code(), 1002);
}

#[tokio::test]
async fn parallel_guesses_cannot_exceed_the_attempt_limit() {
    let app = TestApp::heating().await;
    let phone = "13900000012";
    let right = code(&app, phone, "register").await;
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let body = json!({"phone": phone, "code": wrong, "type": "register"});
    let guesses: Vec<_> = (0..12).map(|_| app.post("/api/sms/verify", None, body.clone())).collect();
    for reply in futures_util_join_all(guesses).await {
        assert_eq!(reply.code(), 1002);
    }
    // Twelve wrong guesses at once: at most five were compared, and the code is dead now.
    let dead = app.post("/api/sms/verify", None, json!({"phone": phone, "code": right, "type": "register"})).await;
    assert_eq!((dead.status, dead.code(), dead.body["message"].as_str()), (400, 1002, Some("验证码错误次数过多，请重新获取")));
}

#[tokio::test]
async fn the_ip_limit_answers_1008_and_spares_notifies() {
    let app = TestApp::spawn("heating", |c| c.rate_limit.requests = 5).await;
    for _ in 0..5 {
        assert_eq!(app.get("/api/config/system", None).await.status, 200);
    }
    let limited = app.get("/api/config/system", None).await;
    assert_eq!((limited.status, limited.code()), (429, 1008));
    assert!(limited.headers.contains_key("retry-after"));
    // WeChat Pay's notifies are not counted: this one reaches verification (and fails there).
    let notify = app
        .client
        .post(app.url("/api/payment/notify"))
        .header("Wechatpay-Timestamp", "1")
        .header("Wechatpay-Nonce", "n")
        .header("Wechatpay-Signature", "c2ln")
        .header("Wechatpay-Serial", "PUB_KEY_ID_X")
        .json(&json!({"id": "EV-1", "create_time": "2024-12-18T15:55:28+08:00", "event_type": "TRANSACTION.SUCCESS",
            "resource_type": "encrypt-resource", "summary": "支付成功",
            "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": "eA==", "associated_data": "transaction", "original_type": "transaction", "nonce": "n"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(notify.status(), 401);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_session() {
    let app = TestApp::heating().await;
    let (token, refresh) = user(&app, "13900000002").await;
    let first = app.post("/api/auth/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!(first.status, 200);
    // The old token again: refused, and the session it belonged to is over.
    let reuse = app.post("/api/auth/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!((reuse.status, reuse.code()), (401, 401));
    let rotated = app.post("/api/auth/refresh", None, json!({"refresh_token": first.data()["refresh_token"]})).await;
    assert_eq!(rotated.status, 401);
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 401);
    // Access tokens expire after 2 hours.
    let (token, _) = {
        app.server.clock.advance(Duration::from_secs(61));
        let login_code = code(&app, "13900000002", "login").await;
        let login = app.post("/api/auth/login", None, json!({"phone": "13900000002", "code": login_code})).await;
        assert_eq!(login.data()["user_info"]["is_first_login"], false);
        (login.data()["token"].as_str().unwrap().to_owned(), ())
    };
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 200);
    app.server.clock.advance(Duration::from_secs(7201));
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 401);
    assert_eq!(app.get("/api/user/profile", Some("not-a-token")).await.status, 401);
}

#[tokio::test]
async fn profile_and_password_changes() {
    let app = TestApp::heating().await;
    let phone = "13900000003";
    let (token, _) = user(&app, phone).await;
    let bad = app.put("/api/user/profile", Some(&token), json!({"id_card": "610102199001011234"})).await;
    assert_eq!((bad.status, bad.code()), (400, 400));
    let updated =
        app.put("/api/user/profile", Some(&token), json!({"nickname": "新昵称", "id_card": "11010519491231002x", "address": "新地址"})).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.data()["updated_fields"], json!(["nickname", "id_card", "address"]));
    let same = app.put("/api/user/profile", Some(&token), json!({"nickname": "新昵称"})).await;
    assert_eq!(same.data()["updated_fields"], json!([]));
    let profile = app.get("/api/user/profile", Some(&token)).await;
    assert_eq!(profile.data()["id_card"], "110105********002X");
    // Password: the old one must match (1005), then the reset code.
    app.server.clock.advance(Duration::from_secs(61));
    let reset_code = code(&app, phone, "reset_password").await;
    let change = |old: &str, code: &str| {
        json!({"old_password": old, "new_password": "abcdef123", "phone": phone, "code": code})
    };
    let wrong = app.put("/api/user/password", Some(&token), change("nope-nope", &reset_code)).await;
    assert_eq!((wrong.status, wrong.code()), (400, 1005));
    // A second device signed in before the change is signed out by it; this one stays.
    let other_device = {
        app.server.clock.advance(Duration::from_secs(61));
        let login_code = code(&app, phone, "login").await;
        let login = app.post("/api/auth/login", None, json!({"phone": phone, "code": login_code})).await;
        login.data()["token"].as_str().unwrap().to_owned()
    };
    let changed = app.put("/api/user/password", Some(&token), change("123456789", &reset_code)).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(app.get("/api/user/profile", Some(&other_device)).await.status, 401);
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.status, 200);
    let reused = app.put("/api/user/password", Some(&token), change("abcdef123", &reset_code)).await;
    assert_eq!(reused.code(), 1002, "the code was used up");
}

#[tokio::test]
async fn an_account_binds_once_and_only_for_its_owner() {
    let app = TestApp::heating().await;
    let (first, _) = user(&app, "13900000004").await;
    let (second, _) = user(&app, "13900000005").await;
    let body = |name: &str, id: &str| json!({"heat_account": "H202400001", "real_name": name, "id_card": id, "address": "x"});
    let wrong_name = app.post("/api/heat/bind", Some(&first), body("李四", OWNER_ID)).await;
    assert_eq!((wrong_name.status, wrong_name.code()), (400, 400));
    let wrong_id = app.post("/api/heat/bind", Some(&first), body("张三", "11010519491231002X")).await;
    assert_eq!((wrong_id.status, wrong_id.code()), (400, 400));
    let unknown = app
        .post("/api/heat/bind", Some(&first), json!({"heat_account": "H999", "real_name": "张三", "id_card": OWNER_ID, "address": "x"}))
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, 404));
    assert_eq!(app.get("/api/heat/account", Some(&first)).await.code(), 404);
    assert_eq!(app.post("/api/heat/bind", Some(&first), body("张三", OWNER_ID)).await.status, 200);
    let taken = app.post("/api/heat/bind", Some(&second), body("张三", OWNER_ID)).await;
    assert_eq!((taken.status, taken.code(), taken.body["message"].as_str()), (400, 400, Some("供热账号已被绑定")));
    // The other user sees no order of this account.
    let (order_id, _) = order(&app, &first).await;
    assert_eq!(app.get(&format!("/api/payment/status/{order_id}"), Some(&second)).await.status, 404);
    assert_eq!(app.get("/api/statistics/user", Some(&second)).await.code(), 404);
}

#[tokio::test]
async fn concurrent_payment_of_one_bill_pays_once() {
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
    let account = app.server.db.heating_bills("H202400002").await.unwrap();
    let bill = account[0].clone();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let db = app.server.db.clone();
        let bill = bill.clone();
        tasks.push(tokio::spawn(async move {
            let now = chrono::Utc::now().timestamp_millis();
            db.heating_order_create(mpapi::storage::heating::NewOrder {
                order_id: format!("ORACE{i}"),
                user_id: "u".into(),
                heat_account: "H202400002".into(),
                amount_fen: bill.amount_fen,
                created_at: now,
                expires_at: now + 60_000,
                bills: vec![(bill.bill_id.clone(), bill.amount_fen, 0)],
            })
            .await
            .unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1);
}

async fn futures_join(app: &TestApp, token: &str, body: &Value, n: usize) -> Vec<crate::app::Reply> {
    let mut set = Vec::new();
    for _ in 0..n {
        set.push(app.post("/api/payment/create", Some(token), body.clone()));
    }
    let mut replies = Vec::new();
    // Drive them together: all requests are in flight before any answer is read.
    let joined = futures_util_join_all(set).await;
    replies.extend(joined);
    replies
}

async fn futures_util_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut handles = Vec::new();
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, future) in pinned.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => outputs[i] = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    handles.extend(outputs.into_iter().map(|o| o.expect("every future finished")));
    handles
}

/// POST a notify as WeChat Pay would.
async fn post_notify(app: &TestApp, headers: &HeaderMap, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/api/payment/notify"))
        .header("Content-Type", "application/json")
        .headers(headers.clone())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn duplicate_notifies_change_state_once() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000007").await;
    let (order_id, _) = order(&app, &token).await;
    let sandbox = app.server.providers.sandbox.clone().unwrap().pay.unwrap();
    let (headers, body) = sandbox.build_notify(&order_id, true).unwrap();
    let (first, second) =
        tokio::join!(post_notify(&app, &headers, body.clone()), post_notify(&app, &headers, body.clone()));
    assert_eq!((first.0, second.0), (200, 200), "{first:?} {second:?}");
    assert_eq!(first.1["code"], "SUCCESS");
    let third = post_notify(&app, &headers, body).await;
    assert_eq!(third.0, 200);
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(status.data()["status"], "paid");
    let paid_at = status.data()["paid_at"].clone();
    // A second, distinct success notify for the same order changes nothing either.
    let (headers, body) = sandbox.build_notify(&order_id, true).unwrap();
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    let again = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(again.data()["paid_at"], paid_at);
    let stats = app.get("/api/statistics/user", Some(&token)).await;
    assert_eq!(stats.data()["current_season_paid"], status.data()["amount"]);
}

#[tokio::test]
async fn forged_or_stale_notifies_are_refused() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000008").await;
    let (order_id, _) = order(&app, &token).await;
    let sandbox = app.server.providers.sandbox.clone().unwrap().pay.unwrap();
    let (headers, body) = sandbox.build_notify(&order_id, true).unwrap();
    // The body changed after signing.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'"').unwrap();
    tampered.insert(at, b' ');
    assert_eq!(post_notify(&app, &headers, tampered).await.0, 401);
    // Signed by someone else: a serial we do not know, a signature that does not verify, probe traffic.
    let with = |name: &'static str, value: String| {
        let mut headers = headers.clone();
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
        headers
    };
    let unknown = with("Wechatpay-Serial", "PUB_KEY_ID_0000000000000000000000000000".into());
    assert_eq!(post_notify(&app, &unknown, body.clone()).await.0, 401);
    let forged = with("Wechatpay-Signature", base64_of(&[7u8; 256]));
    assert_eq!(post_notify(&app, &forged, body.clone()).await.0, 401);
    let signature = headers["Wechatpay-Signature"].to_str().unwrap();
    let probe = with("Wechatpay-Signature", format!("WECHATPAY/SIGNTEST/{signature}"));
    assert_eq!(post_notify(&app, &probe, body.clone()).await.0, 401);
    // Stale: more than 5 minutes after it was signed.
    app.server.clock.advance(Duration::from_secs(301));
    let (status, answer) = post_notify(&app, &headers, body).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("FAIL")));
    let unchanged = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(unchanged.data()["status"], "pending");
}

#[tokio::test]
async fn a_failed_payment_frees_the_bills() {
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

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// With every provider real (Aliyun SMS and WeChat Pay v3 at wiremock stand-ins) the sandbox
/// routes are gone, codes travel through Aliyun's API, and payment orders are placed with a
/// signed JSAPI request whose signed answer is verified.
#[tokio::test]
async fn real_providers_replace_the_sandbox() {
    use mpapi::config::ProviderKind;
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let aliyun = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("Action", "SendSms"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Code": "OK", "Message": "OK", "BizId": "1", "RequestId": "r"})))
        .mount(&aliyun)
        .await;
    let wechat = MockServer::start().await;
    let pay = crate::providers::pay_fixture(&wechat);
    let app = TestApp::spawn("heating", |c| {
        c.sms.provider = ProviderKind::Real;
        c.sms.endpoint = aliyun.uri();
        c.sms.access_key_id = "LTAI_test_id".into();
        c.sms.access_key_secret = Some("aliyun-test-secret".into());
        c.sms.sign_name = "供暖缴费".into();
        c.sms.template_code = "SMS_123456789".into();
        c.wechat_login.provider = ProviderKind::Real;
        c.wechat_login.appid = "wxd678efh567hg6787".into();
        c.wechat_login.secret = Some("app-secret".into());
        c.wechat_pay = pay.config.clone();
        // Real payments seed no demo accounts unless asked (their owners' IDs are public).
        c.demo_data = Some(true);
    })
    .await;
    assert!(app.server.providers.sandbox.is_none());
    assert_eq!(app.client.get(app.url("/_sandbox/sms?phone=13800000000")).send().await.unwrap().status(), 404);

    // The code Aliyun was asked to send is the one that registers.
    let phone = "13800000000";
    let sent = app.post("/api/sms/send", None, json!({"phone": phone, "type": "register"})).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let requests = aliyun.received_requests().await.unwrap();
    let template = requests[0].url.query_pairs().find(|(k, _)| k == "TemplateParam").unwrap().1.into_owned();
    let code: Value = serde_json::from_str(&template).unwrap();
    let registered = app
        .post("/api/auth/register", None, json!({"phone": phone, "code": code["code"], "password": "123456789"}))
        .await;
    assert_eq!(registered.status, 200, "{}", registered.body);

    // Aliyun refusing (its flow control) is the document's 1007.
    aliyun.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控"})))
        .mount(&aliyun)
        .await;
    app.server.clock.advance(Duration::from_secs(61));
    let refused = app.post("/api/sms/send", None, json!({"phone": phone, "type": "login"})).await;
    assert_eq!((refused.status, refused.code()), (502, 1007), "{}", refused.body);

    // JSAPI needs the payer's openid, which the heating document never collects: the real
    // provider refuses before calling WeChat, and the order fails cleanly (502, code 500).
    Mock::given(method("POST"))
        .and(path("/v3/pay/transactions/jsapi"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&wechat)
        .await;
    app.server.clock.advance(Duration::from_secs(61));
    let token = {
        aliyun.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Code": "OK", "Message": "OK"})))
            .mount(&aliyun)
            .await;
        assert_eq!(app.post("/api/sms/send", None, json!({"phone": phone, "type": "login"})).await.status, 200);
        let requests = aliyun.received_requests().await.unwrap();
        let template = requests[0].url.query_pairs().find(|(k, _)| k == "TemplateParam").unwrap().1.into_owned();
        let code: Value = serde_json::from_str(&template).unwrap();
        let login = app.post("/api/auth/login", None, json!({"phone": phone, "code": code["code"]})).await;
        login.data()["token"].as_str().unwrap().to_owned()
    };
    let bound = app
        .post(
            "/api/heat/bind",
            Some(&token),
            json!({"heat_account": "H202400001", "real_name": "张三", "id_card": OWNER_ID, "address": "x"}),
        )
        .await;
    assert_eq!(bound.status, 200, "{}", bound.body);
    let info = app.get("/api/payment/info", Some(&token)).await;
    let amount = info.data()["total_unpaid"].as_f64().unwrap() + info.data()["total_late_fee"].as_f64().unwrap();
    let create = app
        .post(
            "/api/payment/create",
            Some(&token),
            json!({"bill_ids": [info.data()["unpaid_bills"][0]["bill_id"]], "amount": (amount * 100.0).round() / 100.0}),
        )
        .await;
    assert_eq!((create.status, create.code()), (502, 500), "{}", create.body);
    // The bills are free again: the failed order does not hold them.
    let again = app.get("/api/payment/info", Some(&token)).await;
    assert_eq!(again.data()["unpaid_bills"].as_array().unwrap().len(), 1);
}

/// A notify signed by the platform (so it verifies) about `transaction`.
fn platform_notify(app: &TestApp, id: &str, transaction: Value) -> (HeaderMap, Vec<u8>) {
    let sandbox = app.server.providers.sandbox.clone().unwrap().pay.unwrap();
    let resource = sandbox.platform().encrypt_resource(transaction.to_string().as_bytes(), "transaction").unwrap();
    let body = json!({"id": id, "create_time": "2026-11-21T15:55:28+08:00", "event_type": "TRANSACTION.SUCCESS",
        "resource_type": "encrypt-resource", "summary": "支付成功", "resource": resource});
    let body = body.to_string().into_bytes();
    (sandbox.platform().sign_notify(&body, app.server.clock.now()).unwrap(), body)
}

#[tokio::test]
async fn verified_notifies_we_cannot_apply_are_refused_every_time() {
    let app = TestApp::heating().await;
    let token = owner(&app, "13900000013").await;
    let (order_id, amount) = order(&app, &token).await;
    let (appid, mchid) = {
        let pay = app.server.providers.wechat_pay.clone();
        let merchant = pay.merchant();
        (merchant.appid.clone(), merchant.mchid.clone())
    };
    let fen = (amount.as_f64().unwrap() * 100.0).round() as i64;
    let transaction = |out_trade_no: &str, total: i64| {
        json!({"appid": appid, "mchid": mchid, "out_trade_no": out_trade_no, "transaction_id": "4200000000000000000000000001",
            "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "success_time": "2026-11-21T15:55:28+08:00", "payer": {"openid": "sb_x"},
            "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}})
    };
    // Another amount than the order's: refused, and refused again when WeChat retries it.
    let (headers, body) = platform_notify(&app, "EV-mismatch", transaction(&order_id, fen - 1));
    for _ in 0..2 {
        let (status, answer) = post_notify(&app, &headers, body.clone()).await;
        assert_eq!((status, answer["code"].as_str(), answer["message"].as_str()), (400, Some("FAIL"), Some("金额不一致")));
    }
    // An order we never made.
    let (headers, body) = platform_notify(&app, "EV-unknown", transaction("O0000000000000", fen));
    for _ in 0..2 {
        assert_eq!(post_notify(&app, &headers, body.clone()).await.0, 400);
    }
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!(status.data()["status"], "pending");
    // The right one pays, with the payer's success_time as paid_at.
    let (headers, body) = platform_notify(&app, "EV-right", transaction(&order_id, fen));
    assert_eq!(post_notify(&app, &headers, body).await.0, 200);
    let status = app.get(&format!("/api/payment/status/{order_id}"), Some(&token)).await;
    assert_eq!((status.data()["status"].as_str(), status.data()["paid_at"].as_str()), (Some("paid"), Some("2026-11-21T07:55:28.000Z")));
}

#[tokio::test]
async fn a_database_outage_during_authentication_is_503_not_401() {
    let app = TestApp::heating().await;
    let (token, _) = user(&app, "13900000020").await;
    app.server.db.close().await;
    // Not through `app.get`: 503 is the router's unavailable answer (x-rejections), which the
    // operations do not list.
    let reply = app.client.get(app.url("/api/user/profile")).bearer_auth(&token).send().await.expect("answered");
    assert_eq!(reply.status(), 503);
    let body: Value = reply.json().await.expect("JSON");
    assert_eq!(body["code"], 500, "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    // A token that is no token at all is still refused as such: no database is asked.
    let reply = app.client.get(app.url("/api/user/profile")).bearer_auth("not-a-token").send().await.expect("answered");
    assert_eq!(reply.status(), 401);
}
