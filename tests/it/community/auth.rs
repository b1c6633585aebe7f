//! 1 授权: codes (1.1), registering by phone code or WeChat's phone (1.2), the session_key that
//! must be the server's own proof, logging in by code (1.4.1), refreshing with the old token
//! within 14 days, once (1.4.2), and the role (1.5.1).

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn weapp_user_register_self_phone_registers_then_logs_in() {
    let app = TestApp::community().await;
    let first = register_self_phone(&app, "wx-new-1", "13812345678", "张三").await;
    assert_eq!((first.status, first.flat_code()), (200, 0), "{}", first.body);
    assert_eq!(first.body["msg"], "您注册成功！");
    assert_eq!((&first.body["token_type"], &first.body["expires_in"]), (&json!("Bearer"), &json!(3600)));
    assert_eq!(first.body["permissions"], json!(["NewMember"]));
    insta::assert_json_snapshot!("community_register_self_phone", redacted(&first.body, &["/access_token"]));
    let token = first.body["access_token"].as_str().unwrap();
    assert_eq!(permission(&app, token).await, "NewMember");
    // The same phone again from a new wx.login: the account logs in (1.3 merged into 1.2.2).
    // A register code is no longer sent to it; a login code is.
    next_minute(&app);
    let (openid, proof) = exchange(&app, "wx-new-2").await;
    assert_eq!(send_code(&app, json!("13812345678"), "register", None).await.status, 409);
    let (key, code) = code_for(&app, "13812345678", "login").await;
    // Without a name: 1.2.2's example 2, the code left unused.
    let nameless = app
        .post(REGISTER, None, json!({ "type": "selfPhone", "verification_key": key, "verification_code": code.parse::<i64>().unwrap(),
            "openid": openid, "session_key": proof, "avatar": "https://thirdwx.qlogo.cn/mmopen/vi_32/a/132" }))
        .await;
    assert_eq!((nameless.status, nameless.flat_code()), (400, 1), "{}", nameless.body);
    assert_eq!((&nameless.body["msg"], &nameless.body["message"]), (&json!("服务器开小差，请重试"), &json!("用户的name值未传送")));
    let again = app
        .post(REGISTER, None, json!({ "type": "selfPhone", "verification_key": key, "verification_code": code.parse::<i64>().unwrap(),
            "openid": openid, "session_key": proof, "name": "张三", "avatar": "https://thirdwx.qlogo.cn/mmopen/vi_32/a/132" }))
        .await;
    assert_eq!((again.status, again.body["msg"].as_str()), (200, Some("您登陆成功！")), "{}", again.body);
    assert_eq!(again.body["permissions"], json!(["NewMember"]));
    // 1.4.1 with either code finds the account (the newest openid of the phone at least).
    let by_code = login(&app, "wx-new-2").await;
    assert_eq!((by_code.status, by_code.body["name"].as_str()), (200, Some("张三")), "{}", by_code.body);
}

#[tokio::test]
async fn weapp_user_register_weixin_opens_the_phone_with_the_servers_session_key() {
    let app = TestApp::community().await;
    let reply = register_weixin(&app, "wx-weixin-1", "13811112222", "李四").await;
    assert_eq!((reply.status, reply.flat_code(), reply.body["msg"].as_str()), (200, 0, Some("您注册成功！")), "{}", reply.body);
    // The account holds the phone WeChat sealed: a register code for it is now refused.
    let taken = send_code(&app, json!("13811112222"), "register", None).await;
    assert_eq!((taken.status, taken.flat_code()), (409, 1), "{}", taken.body);
    // Data sealed for another wx.login's session does not open with this one's key.
    let (openid, proof) = exchange(&app, "wx-weixin-2").await;
    let (encrypted_data, iv) = sealed(&app, "wx-other", &json!({ "phoneNumber": "13811113333", "purePhoneNumber": "13811113333" })).await;
    let refused = app
        .post(REGISTER, None, json!({ "type": "weixin", "encryptedData": encrypted_data, "iv": iv, "openid": openid,
            "session_key": proof, "name": "王五", "avatar": "https://a/1.png" }))
        .await;
    assert_eq!((refused.status, refused.flat_code()), (400, 1), "{}", refused.body);
    assert_eq!(login(&app, "wx-weixin-2").await.status, 404, "nothing registered");
}

#[tokio::test]
async fn weapp_user_register_refuses_a_forged_session_key() {
    let app = TestApp::community().await;
    let (openid, proof) = exchange(&app, "wx-forge").await;
    let (other_openid, other_proof) = exchange(&app, "wx-forge-other").await;
    assert_ne!(proof, other_proof);
    let (key, code) = code_for(&app, "13822223333", "register").await;
    let body = |openid: &str, session_key: &str| {
        json!({ "type": "selfPhone", "verification_key": key, "verification_code": code.parse::<i64>().unwrap(),
                "openid": openid, "session_key": session_key, "name": "冒充者", "avatar": "https://a/1.png" })
    };
    // The document's sample key, another login's proof, a proof for another openid, nothing.
    for (openid, session_key) in
        [(openid.as_str(), "gF3i6PSBHFMu2XqrY9XyPQ=="), (openid.as_str(), other_proof.as_str()), (other_openid.as_str(), proof.as_str()), (openid.as_str(), "")]
    {
        let refused = app.post(REGISTER, None, body(openid, session_key)).await;
        assert_eq!((refused.status, refused.flat_code()), (400, 1), "{session_key:?}: {}", refused.body);
    }
    assert_eq!(login(&app, "wx-forge").await.status, 404, "nothing registered");
    // An avatar that is not an http(s) address (a page would run or inline it) is refused too.
    let mut scripted = body(&openid, &proof);
    scripted["avatar"] = json!("javascript:alert(1)");
    let refused = app.post(REGISTER, None, scripted).await;
    assert_eq!((refused.status, refused.flat_code()), (400, 1), "{}", refused.body);
    // The code was not spent on the refusals: the genuine proof registers with it.
    let genuine = app.post(REGISTER, None, body(&openid, &proof)).await;
    assert_eq!((genuine.status, genuine.flat_code()), (200, 0), "{}", genuine.body);
    assert_eq!(login(&app, "wx-forge").await.status, 200);
}

#[tokio::test]
async fn verification_code_send_follows_its_types_and_one_a_minute() {
    let app = TestApp::community().await;
    // A phone as an integer, as the document's examples allow.
    let sent = send_code(&app, json!(13833334444_i64), "register", None).await;
    assert_eq!((sent.status, sent.flat_code()), (200, 0), "{}", sent.body);
    assert!(sent.body["key"].as_str().unwrap().starts_with("verificationCode_"), "{}", sent.body);
    assert_eq!(sent.body["msg"], "验证码获取成功,5分钟内有效");
    let code = app.sms_code("13833334444").await;
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0'), "{code}");
    // One a minute per phone, whatever the type.
    let soon = send_code(&app, json!("13833334444"), "verify", None).await;
    assert_eq!((soon.status, soon.flat_code()), (400, 1), "{}", soon.body);
    next_minute(&app);
    assert_eq!(send_code(&app, json!("13833334444"), "verify", None).await.status, 200);
    // register: the phone must be new (409, the phone echoed); login: registered (404); a bad
    // phone or type: 400 with 1.1.3 example 2's message.
    let registered = send_code(&app, json!(DEMO_PHONE), "register", None).await;
    assert_eq!((registered.status, registered.body["phone"].as_str()), (409, Some(DEMO_PHONE)), "{}", registered.body);
    let unknown = send_code(&app, json!("13844445555"), "login", None).await;
    assert_eq!((unknown.status, unknown.body["msg"].as_str()), (404, Some("该手机号未注册")), "{}", unknown.body);
    for bad in [json!("1761049113"), json!("23800000000"), json!(1761049113_i64)] {
        let refused = send_code(&app, bad.clone(), "register", None).await;
        assert_eq!((refused.status, refused.flat_code()), (400, 1), "{bad}: {}", refused.body);
        assert_eq!(refused.body["message"], "必须是正确的手机号", "{}", refused.body);
    }
    let bad_type = send_code(&app, json!("13844445555"), "reset", None).await;
    assert_eq!((bad_type.status, bad_type.flat_code()), (400, 1), "{}", bad_type.body);
    assert_eq!(bad_type.body["message"], "type参数必须是login、register、verify等", "{}", bad_type.body);
    // yezhu needs the house's name.
    let no_house = send_code(&app, json!(DEMO_PHONE), "yezhu", None).await;
    assert_eq!(no_house.status, 400, "{}", no_house.body);
}

#[tokio::test]
async fn one_client_address_has_thirty_codes_sent_an_hour() {
    // 1.1 sends a code to any phone for anyone who asks; the document states no limit.
    let app = TestApp::community().await;
    for n in 0..30 {
        let sent = send_code(&app, json!(format!("1385555{n:04}")), "verify", None).await;
        assert_eq!((sent.status, sent.flat_code()), (200, 0), "send {n}: {}", sent.body);
    }
    let refused = send_code(&app, json!("13855559999"), "verify", None).await;
    assert_eq!((refused.status, refused.flat_code()), (400, 1), "{}", refused.body);
    let message = refused.body["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("当前网络获取验证码过于频繁，请") && message.ends_with("秒后再试"), "{}", refused.body);
    let outbox = app.get("/_sandbox/sms?phone=13855559999", None).await;
    assert_eq!(outbox.body["messages"], json!([]), "nothing sent: {}", outbox.body);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_code_cap_counts_the_address_the_proxy_appended() {
    let app = TestApp::spawn("community", |config| config.trust_forwarded_for = true).await;
    // Each send from the address the proxy names: the client's own header line comes first.
    let send = |phone: String, forwarded: &'static str| {
        let request = app
            .client
            .post(app.url(CODE))
            .header("x-forwarded-for", "198.51.100.1")
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "phone": phone, "type": "verify" }));
        async move { crate::app::read(request.send().await.unwrap()).await }
    };
    for n in 0..30 {
        let sent = send(format!("1386666{n:04}"), "10.0.0.1, 203.0.113.9").await;
        assert_eq!(sent.status, 200, "send {n}: {}", sent.body);
    }
    let refused = send("13866669999".into(), "203.0.113.9").await;
    assert_eq!((refused.status, refused.flat_code()), (400, 1), "{}", refused.body);
    // Another address, and the forged first line named no one.
    assert_eq!(send("13866669998".into(), "203.0.113.10").await.status, 200);
    // An IPv6 client is its /64: another address in it is the same client.
    for n in 0..30 {
        assert_eq!(send(format!("1387777{n:04}"), "2001:db8:1:2::1").await.status, 200, "send {n}");
    }
    let same_line = send("13877779999".into(), "2001:db8:1:2:ffff::7").await;
    assert_eq!((same_line.status, same_line.flat_code()), (400, 1), "{}", same_line.body);
    assert_eq!(send("13877779998".into(), "2001:db8:1:3::1").await.status, 200);
}

#[tokio::test]
async fn a_code_is_single_use_and_a_wrong_one_is_refused() {
    let app = TestApp::community().await;
    let (openid, proof) = exchange(&app, "wx-codes").await;
    let (key, code) = code_for(&app, "13855556666", "register").await;
    let wrong = if code == "999999" { 999_998 } else { 999_999 };
    let body = |code: i64| {
        json!({ "type": "selfPhone", "verification_key": key, "verification_code": code, "openid": openid,
                "session_key": proof, "name": "赵六", "avatar": "https://a/1.png" })
    };
    let refused = app.post(REGISTER, None, body(wrong)).await;
    assert_eq!((refused.status, refused.body["msg"].as_str()), (400, Some("验证码已失效")), "{}", refused.body);
    assert_eq!(app.post(REGISTER, None, body(code.parse().unwrap())).await.status, 200);
    let reused = app.post(REGISTER, None, body(code.parse().unwrap())).await;
    assert_eq!((reused.status, reused.body["msg"].as_str()), (400, Some("验证码已失效")), "{}", reused.body);
    // A key that is not 1.1's.
    let mut forged = body(code.parse().unwrap());
    forged["verification_key"] = json!("verificationCode_qaFUTv8034G29I5");
    assert_eq!(app.post(REGISTER, None, forged).await.status, 400);
}

#[tokio::test]
async fn weapp_authorization_create_answers_the_demo_owner_and_refuses_visitors() {
    let app = TestApp::community().await;
    let demo = login(&app, DEMO_CODE).await;
    assert_eq!((demo.status, demo.flat_code()), (200, 0), "{}", demo.body);
    insta::assert_json_snapshot!("community_login_demo", redacted(&demo.body, &["/access_token"]));
    let visitor = login(&app, "someone-new").await;
    assert_eq!((visitor.status, visitor.flat_code(), visitor.body["message"].as_str()), (404, 1, Some("这只是个游客")), "{}", visitor.body);
    let no_code = app.post(LOGIN, None, json!({ "code": "" })).await;
    assert_eq!((no_code.status, no_code.flat_code()), (400, 1), "{}", no_code.body);
}

#[tokio::test]
async fn operations_need_a_valid_token() {
    let app = TestApp::community().await;
    for token in [None, Some("not-a-token")] {
        let reply = app.post(PERMISSIONS, token, json!({})).await;
        assert_eq!((reply.status, reply.flat_code(), reply.body["token_expired"].as_str()), (401, 9, Some("0")), "{}", reply.body);
    }
    // 2.1.1 takes none ("取消token值传递").
    let communities = app.post(COMMUNITIES, None, json!({})).await;
    assert_eq!((communities.status, communities.flat_code()), (200, 0), "{}", communities.body);
}

#[tokio::test]
async fn authorization_refresh_renews_once_within_fourteen_days() {
    let app = TestApp::community().await;
    let first = token(&app, DEMO_CODE).await;
    // Past its hour the token is refused, but renews with itself.
    app.server.clock.advance(Duration::from_secs(3601));
    let expired = app.post(PERMISSIONS, Some(&first), json!({})).await;
    assert_eq!((expired.status, expired.flat_code()), (401, 9), "{}", expired.body);
    let renewed = app.put(REFRESH, Some(&first), json!({})).await;
    assert_eq!((renewed.status, renewed.flat_code()), (200, 0), "{}", renewed.body);
    let second = renewed.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(renewed.body["permissions"], json!(["HouseMember"]));
    assert_eq!(permission(&app, &second).await, "HouseMember");
    // Once: the old token renews nothing more.
    let again = app.put(REFRESH, Some(&first), json!({})).await;
    assert_eq!((again.status, again.flat_code()), (401, 9), "{}", again.body);
    // Thirteen days after its expiry the new token still renews; after fourteen it does not,
    // and says so with the document's Au335.
    app.server.clock.advance(Duration::from_secs(3600 + 13 * 86_400));
    let late = app.put(REFRESH, Some(&second), json!({})).await;
    assert_eq!((late.status, late.flat_code()), (200, 0), "{}", late.body);
    let third = late.body["access_token"].as_str().unwrap().to_owned();
    app.server.clock.advance(Duration::from_secs(3600 + 14 * 86_400 + 1));
    let too_late = app.put(REFRESH, Some(&third), json!({})).await;
    assert_eq!(
        (too_late.status, too_late.flat_code(), too_late.body["message"].as_str()),
        (401, 1, Some("刷新token值失败,message编码Au335")),
        "{}",
        too_late.body
    );
    // 1.4.1 resets the state.
    assert_eq!(login(&app, DEMO_CODE).await.status, 200);
    // Garbage or nothing is not a token to renew.
    assert_eq!(app.put(REFRESH, Some("garbage"), json!({})).await.status, 401);
    assert_eq!(app.put(REFRESH, None, json!({})).await.status, 401);
}

#[tokio::test]
async fn a_token_renewed_before_its_hour_is_spent() {
    let app = TestApp::community().await;
    let first = token(&app, DEMO_CODE).await;
    let renewed = app.put(REFRESH, Some(&first), json!({})).await;
    assert_eq!((renewed.status, renewed.flat_code()), (200, 0), "{}", renewed.body);
    let second = renewed.body["access_token"].as_str().unwrap();
    assert_eq!(permission(&app, second).await, "HouseMember");
    let old = app.post(PERMISSIONS, Some(&first), json!({})).await;
    assert_eq!(old.status, 401, "the exchanged token still works: {}", old.body);
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_renew_once() {
    let app = TestApp::community().await;
    let old = token(&app, DEMO_CODE).await;
    app.server.clock.advance(Duration::from_secs(3601));
    let replies = join_all((0..6).map(|_| app.put(REFRESH, Some(&old), json!({}))).collect()).await;
    let renewed = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(renewed, 1, "{:?}", replies.iter().map(|r| (r.status, r.body.clone())).collect::<Vec<_>>());
    assert!(replies.iter().all(|r| r.status == 200 || (r.status == 401 && r.flat_code() == 9)));
}

#[tokio::test]
async fn an_account_moved_to_another_wechat_ends_the_old_sessions() {
    let app = TestApp::community().await;
    let phone = "13812340041";
    let first = register_self_phone(&app, "wx-first-phone", phone, "旧微信").await;
    let old = first.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.post(PERMISSIONS, Some(&old), json!({})).await.status, 200);
    // The same phone proven from another WeChat: the account moves there.
    next_minute(&app);
    let (openid, proof) = exchange(&app, "wx-second-phone").await;
    let (key, code) = code_for(&app, phone, "login").await;
    let body = json!({ "type": "selfPhone", "verification_key": key, "verification_code": code.parse::<i64>().unwrap(),
                       "openid": openid, "session_key": proof, "name": "新微信", "avatar": "https://thirdwx.qlogo.cn/mmopen/vi_32/b/132" });
    let second = app.post(REGISTER, None, body).await;
    assert_eq!((second.status, second.body["msg"].as_str()), (200, Some("您登陆成功！")), "{}", second.body);
    let new = second.body["access_token"].as_str().unwrap();
    assert_eq!(app.post(PERMISSIONS, Some(new), json!({})).await.status, 200);
    let ended = app.post(PERMISSIONS, Some(&old), json!({})).await;
    assert_eq!((ended.status, &ended.body["code"]), (401, &json!("9")), "{}", ended.body);
    // The first WeChat is a visitor now.
    let visitor = login(&app, "wx-first-phone").await;
    assert_eq!(visitor.status, 404, "{}", visitor.body);
}
