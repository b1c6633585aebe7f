//! 000 §1: `sms_send` and `sms_verify` — codes typed by purpose, one per phone per minute, ten a
//! day, five guesses, five minutes, single use.

use std::time::Duration;

use serde_json::json;

use super::{code, futures_join_all};
use crate::app::{TestApp, wrong_code};

#[tokio::test]
async fn sms_send_and_verify_codes_are_typed_limited_and_expire() {
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
    // Digits other than ASCII's make no code (the contract's `\d` is ECMA-262's): the request is
    // refused naming the field, no guess counted.
    for foreign in ["１２３４５６", "١٢٣٤٥٦"] {
        let reply = app.post("/api/sms/verify", None, json!({"phone": phone, "code": foreign, "type": "register"})).await;
        assert_eq!((reply.status, reply.code()), (400, 400), "{}", reply.body);
        assert!(reply.body["message"].as_str().unwrap_or_default().contains("code"), "{}", reply.body);
    }
    // Five wrong guesses kill the code, even for the right guess after.
    let wrong = wrong_code(&first);
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
async fn sms_verify_parallel_guesses_cannot_exceed_the_attempt_limit() {
    let app = TestApp::heating().await;
    let phone = "13900000012";
    let right = code(&app, phone, "register").await;
    let wrong = wrong_code(&right);
    let body = json!({"phone": phone, "code": wrong, "type": "register"});
    let guesses: Vec<_> = (0..12).map(|_| app.post("/api/sms/verify", None, body.clone())).collect();
    for reply in futures_join_all(guesses).await {
        assert_eq!(reply.code(), 1002);
    }
    // Twelve wrong guesses at once: at most five were compared, and the code is dead now.
    let dead = app.post("/api/sms/verify", None, json!({"phone": phone, "code": right, "type": "register"})).await;
    assert_eq!((dead.status, dead.code(), dead.body["message"].as_str()), (400, 1002, Some("验证码错误次数过多，请重新获取")));
}

#[tokio::test]
async fn sms_send_caps_a_phone_at_ten_codes_a_day() {
    let app = TestApp::heating().await;
    let phone = "13900000020";
    for _ in 0..10 {
        code(&app, phone, "login").await;
        app.server.clock.advance(Duration::from_secs(61));
    }
    let capped = app.post("/api/sms/send", None, json!({"phone": phone, "type": "login"})).await;
    assert_eq!((capped.status, capped.code()), (429, 1008), "{}", capped.body);
    assert_eq!(capped.body["message"], "今日验证码发送次数已达上限，请稍后再试");
    // The oldest code of the last 24 hours was sent ~10 minutes ago: its slot frees in ~23 h 50.
    let wait: u64 = capped.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((23 * 3600..=24 * 3600).contains(&wait), "{wait}");
    // Another phone is not affected; the capped one may send again after a day.
    code(&app, "13900000021", "login").await;
    app.server.clock.advance(Duration::from_secs(wait));
    code(&app, phone, "login").await;
}

#[tokio::test]
async fn a_registration_lets_the_login_code_go_at_once() {
    let app = TestApp::heating().await;
    let phone = "13900000004";
    let register_code = code(&app, phone, "register").await;
    // A refused registration frees nothing: the minute stands.
    let wrong = wrong_code(&register_code);
    let refused = app.post("/api/auth/register", None, json!({"phone": phone, "code": wrong, "password": "123456789"})).await;
    assert_eq!((refused.status, refused.code()), (400, 1002), "{}", refused.body);
    let early = app.post("/api/sms/send", None, json!({"phone": phone, "type": "login"})).await;
    assert_eq!((early.status, early.code()), (429, 1008), "{}", early.body);
    // 发送验证码 → 注册 → 登录 (000 对接注意事项 1) with no minute's wait between.
    let registered = app.post("/api/auth/register", None, json!({"phone": phone, "code": register_code, "password": "123456789"})).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let login_code = code(&app, phone, "login").await;
    let login = app.post("/api/auth/login", None, json!({"phone": phone, "code": login_code})).await;
    assert_eq!((login.status, login.data()["user_info"]["is_first_login"].as_bool()), (200, Some(true)), "{}", login.body);
    // The login code took the minute again.
    let again = app.post("/api/sms/send", None, json!({"phone": phone, "type": "login"})).await;
    assert_eq!((again.status, again.code()), (429, 1008), "{}", again.body);
}

/// A registration frees only the minute its own code started: a code sent after it keeps its
/// minute.
#[tokio::test]
async fn a_registration_keeps_the_minute_of_a_later_code() {
    let app = TestApp::heating().await;
    let phone = "13900000005";
    let register_code = code(&app, phone, "register").await;
    app.server.clock.advance(Duration::from_secs(61));
    let _login_code = code(&app, phone, "login").await;
    let registered = app.post("/api/auth/register", None, json!({"phone": phone, "code": register_code, "password": "123456789"})).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let again = app.post("/api/sms/send", None, json!({"phone": phone, "type": "login"})).await;
    assert_eq!((again.status, again.code()), (429, 1008), "{}", again.body);
}
