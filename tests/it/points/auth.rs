//! 001 §1: `auth_wechat_login` (new users, getUserProfile data and its refusals, codes WeChat
//! refuses), `auth_token_refresh` (the expired token exchanged once, within 7 days), and which
//! credential each operation takes.

use std::time::Duration;

use mpapi::points::error::DECRYPT_FAILED;
use mpapi::points::seed::DEMO_KEY;
use mpapi::points::service::{ANONYMOUS_NICKNAME, DEFAULT_AVATAR};
use serde_json::json;

use super::*;
use crate::app::TestApp;

#[tokio::test]
async fn auth_wechat_login_is_new_only_the_first_time() {
    let app = TestApp::points().await;
    let first = app.post(LOGIN, None, json!({"code": "first-login"})).await;
    assert_eq!((first.status, first.data()["isNewUser"].as_bool()), (200, Some(true)), "{}", first.body);
    assert_eq!((first.data()["userInfo"]["nickName"].as_str(), first.data()["userInfo"]["avatarUrl"].as_str()), (Some(ANONYMOUS_NICKNAME), Some(DEFAULT_AVATAR)));
    let user_id = first.data()["userInfo"]["userId"].clone();
    for _ in 0..2 {
        let again = app.post(LOGIN, None, json!({"code": "first-login"})).await;
        assert_eq!((again.status, again.data()["isNewUser"].as_bool()), (200, Some(false)), "{}", again.body);
        assert_eq!(again.data()["userInfo"]["userId"], user_id);
    }
    // Each login is a session of its own: the first token still works.
    let token = first.data()["token"].as_str().unwrap();
    assert_eq!(user_info(&app, token).await["userInfo"]["userId"], user_id);
}

#[tokio::test]
async fn auth_wechat_login_at_once_is_new_once() {
    let app = TestApp::points().await;
    // A double tap on the login button: one user, and only one answer says it is new.
    let logins = join_all((0..6).map(|_| app.post(LOGIN, None, json!({"code": "double-tap"}))).collect()).await;
    assert_eq!(count(&logins, 200), 6, "{:?}", logins.iter().map(|l| &l.body).collect::<Vec<_>>());
    let new = logins.iter().filter(|l| l.data()["isNewUser"] == true).count();
    assert_eq!(new, 1, "{:?}", logins.iter().map(|l| &l.data()["isNewUser"]).collect::<Vec<_>>());
    let user_id = &logins[0].data()["userInfo"]["userId"];
    assert!(logins.iter().all(|l| &l.data()["userInfo"]["userId"] == user_id));
}

#[tokio::test]
async fn auth_wechat_login_refuses_user_data_it_cannot_open() {
    let app = TestApp::points().await;
    let (data, iv) = sealed(&app, "sealed-for-me", &json!({"nickName": "张三"})).await;
    // Half of the pair, or data sealed for another wx.login's session: 422, the contract's
    // decrypt_failed.
    let refusals = [
        ("encryptedData without iv", json!({"code": "sealed-for-me", "encryptedData": data})),
        ("iv without encryptedData", json!({"code": "sealed-for-me", "iv": iv})),
        ("sealed for another code", json!({"code": "another-code", "encryptedData": data, "iv": iv})),
        ("not base64", json!({"code": "another-code", "encryptedData": "%%%", "iv": iv})),
        ("a short iv", json!({"code": "another-code", "encryptedData": data, "iv": "AAAA"})),
    ];
    for (what, body) in refusals {
        let refused = app.post(LOGIN, None, body).await;
        assert_eq!((refused.status, refused.code()), (422, 422), "{what}: {}", refused.body);
        if what == "sealed for another code" {
            assert_eq!(refused.body["message"], DECRYPT_FAILED);
        }
    }
    // A refused login is nobody's first: both codes are still new users.
    for code in ["another-code", "sealed-for-me"] {
        let login = app.post(LOGIN, None, json!({"code": code})).await;
        assert_eq!(login.data()["isNewUser"], true, "{code}: {}", login.body);
    }
    // A code WeChat refuses (used, expired, another appid's), or none.
    let invalid = app.post(LOGIN, None, json!({"code": "invalid"})).await;
    assert_eq!((invalid.status, invalid.code(), invalid.body["message"].as_str()), (422, 422, Some("code无效或已过期，请重新调用wx.login获取")));
    let blank = app.post(LOGIN, None, json!({"code": "   "})).await;
    assert_eq!((blank.status, blank.body["message"].as_str()), (422, Some("参数错误：code不能为空")));
    for body in [json!({"code": ""}), json!({})] {
        let refused = app.post(LOGIN, None, body.clone()).await;
        assert_eq!((refused.status, refused.code()), (422, 422), "{body}: {}", refused.body);
    }
}

#[tokio::test]
async fn auth_wechat_login_keeps_a_profile_over_anonymised_data() {
    let app = TestApp::points().await;
    let code = "profile-code";
    let login_with = |data: serde_json::Value| {
        let app = &app;
        async move {
            let (encrypted_data, iv) = sealed(app, code, &data).await;
            let login = app.post(LOGIN, None, json!({"code": code, "encryptedData": encrypted_data, "iv": iv})).await;
            assert_eq!(login.status, 200, "{}", login.body);
            login
        }
    };
    // A first login with real profile data keeps it.
    let first = login_with(json!({"nickName": "张三", "avatarUrl": "https://x.example/a.png"})).await;
    assert_eq!((first.data()["isNewUser"].as_bool(), first.data()["userInfo"]["nickName"].as_str()), (Some(true), Some("张三")));
    // WeChat's placeholders (what getUserProfile gives since 2022) do not overwrite it.
    let anonymous = login_with(json!({"nickName": ANONYMOUS_NICKNAME, "avatarUrl": DEFAULT_AVATAR})).await;
    assert_eq!(anonymous.data()["userInfo"], json!({"userId": first.data()["userInfo"]["userId"], "nickName": "张三", "avatarUrl": "https://x.example/a.png"}));
    // Unusable fields are ignored; a phone number (getPhoneNumber data) binds the phone.
    let token = login_with(json!({"nickName": "", "avatarUrl": "javascript:alert(1)", "purePhoneNumber": "13800138000"})).await.data()["token"].as_str().unwrap().to_owned();
    let info = user_info(&app, &token).await;
    assert_eq!(info["userInfo"]["nickName"], "张三");
    assert_eq!(info["userInfo"]["avatarUrl"], "https://x.example/a.png");
    assert_eq!(info["userInfo"]["bindingStatus"], json!({"phone": true, "email": false}));
    // A new name replaces the old one.
    login_with(json!({"nickName": "李四"})).await;
    assert_eq!(user_info(&app, &token).await["userInfo"]["nickName"], "李四");
}

#[tokio::test]
async fn auth_token_refresh_exchanges_the_expired_token_once() {
    let app = TestApp::points().await;
    let token = login(&app, "refresh-once").await;
    app.server.clock.advance(Duration::from_secs(3 * 3600));
    let expired = app.get(USER_INFO, Some(&token)).await;
    assert_eq!((expired.status, expired.code()), (401, 401));
    let refreshed = app.post(REFRESH, Some(&token), json!({})).await;
    assert_eq!((refreshed.status, refreshed.code(), refreshed.data()["expiresIn"].as_i64()), (200, 0, Some(7200)), "{}", refreshed.body);
    let new_token = refreshed.data()["token"].as_str().unwrap().to_owned();
    // The same expired token again: refused, the new one keeps working.
    let again = app.post(REFRESH, Some(&token), json!({})).await;
    assert_eq!((again.status, again.code(), again.body["message"].as_str()), (401, 401, Some("token已刷新过，请使用新的token或重新登录")));
    assert_eq!(user_info(&app, &new_token).await["points"], 0);
    // The new token, once expired, refreshes in its turn.
    app.server.clock.advance(Duration::from_secs(7201));
    assert_eq!(app.get(USER_INFO, Some(&new_token)).await.status, 401);
    let next = app.post(REFRESH, Some(&new_token), json!({})).await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(app.get(USER_INFO, Some(next.data()["token"].as_str().unwrap())).await.status, 200);
    // Garbage, an API key, or nothing is no token.
    for credential in [Some("not-a-token"), Some(DEMO_KEY), None] {
        let refused = app.post(REFRESH, credential, json!({})).await;
        assert_eq!((refused.status, refused.code()), (401, 401), "{credential:?}: {}", refused.body);
    }
}

#[tokio::test]
async fn auth_token_refresh_twice_at_once_one_wins() {
    let app = TestApp::points().await;
    let token = login(&app, "refresh-race").await;
    app.server.clock.advance(Duration::from_secs(2 * 3600 + 60));
    let replies = join_all((0..4).map(|_| app.post(REFRESH, Some(&token), json!({}))).collect()).await;
    assert_eq!((count(&replies, 200), count(&replies, 401)), (1, 3), "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    let winner = replies.iter().find(|r| r.status == 200).unwrap();
    assert_eq!(user_info(&app, winner.data()["token"].as_str().unwrap()).await["userInfo"]["nickName"], ANONYMOUS_NICKNAME);
}

#[tokio::test]
async fn auth_token_refresh_ends_seven_days_after_the_expiry() {
    let app = TestApp::points().await;
    let early = login(&app, "refresh-window-a").await;
    let late = login(&app, "refresh-window-b").await;
    // A token that has not expired may be exchanged too.
    let fresh = login(&app, "refresh-window-c").await;
    let unexpired = app.post(REFRESH, Some(&fresh), json!({})).await;
    assert_eq!(unexpired.status, 200, "{}", unexpired.body);
    // A minute before the window closes (2 h + 7 days after the login), it still opens.
    app.server.clock.advance(Duration::from_secs(2 * 3600 + 7 * 86_400 - 60));
    assert_eq!(app.post(REFRESH, Some(&early), json!({})).await.status, 200);
    app.server.clock.advance(Duration::from_secs(61));
    let closed = app.post(REFRESH, Some(&late), json!({})).await;
    assert_eq!((closed.status, closed.code(), closed.body["message"].as_str()), (401, 401, Some("登录已过期，请重新登录")), "{}", closed.body);
}

#[tokio::test]
async fn each_operation_takes_its_own_credential() {
    let app = TestApp::points().await;
    let token = login(&app, "demo").await;
    // An API key is no login token, a login token no API key.
    for (path, credential) in [(USER_INFO, DEMO_KEY), (KEYS, DEMO_KEY), (PACKAGES, DEMO_KEY)] {
        let refused = app.get(path, Some(credential)).await;
        assert_eq!((refused.status, refused.code()), (401, 401), "{path}: {}", refused.body);
    }
    let with_jwt = consume(&app, &token, 1, "jwt", "x").await;
    assert_eq!((with_jwt.status, with_jwt.body["message"].as_str()), (401, Some("API Key无效或已删除")));
    // Nothing, or no Bearer scheme.
    assert_eq!(app.get(USER_INFO, None).await.status, 401);
    let unsigned = app.client.get(app.url(USER_INFO)).header("Authorization", format!("Token {token}")).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    // The public operations ignore whatever is sent.
    assert_eq!(app.get(STATUS, Some("garbage")).await.status, 200);
    assert_eq!(app.get(NOTICE, None).await.status, 200);
    assert_eq!(user_info(&app, &token).await["points"], 5028);
}
