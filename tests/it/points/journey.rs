//! 001 end to end, as a mini-program walks it: a new user (login with code only and with
//! getUserProfile data, profile, packages, an order paid through the sandbox, its status and
//! history, an API key created, listed, used for metered debits, switched off and deleted, the
//! consumption history, a refresh), and the demo user of the sandbox.

use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine as _;
use chrono::{DateTime, Months, Utc};
use mpapi::points::seed::{DEMO_KEY, DEMO_USER};
use serde_json::{Value, json};

use super::*;
use crate::app::TestApp;

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("no time: {value}"))).unwrap().to_utc()
}

#[tokio::test]
async fn the_documented_journey() {
    let app = TestApp::points().await;

    // §1.1 code only: a new user, with WeChat's anonymised placeholders.
    let first = app.post(LOGIN, None, json!({"code": "journey-code"})).await;
    assert_eq!((first.status, first.code(), first.body["message"].as_str()), (200, 0, Some("success")), "{}", first.body);
    assert_eq!((first.data()["isNewUser"].as_bool(), first.data()["points"].as_i64()), (Some(true), Some(0)));
    assert_eq!(first.data()["userInfo"]["nickName"], "微信用户");
    let user_id = first.data()["userInfo"]["userId"].as_str().unwrap().to_owned();

    // §1.1 again, with getUserProfile data sealed for the session of this same code.
    let profile = json!({"nickName": "张三", "avatarUrl": "https://x.example/a.png"});
    let (encrypted_data, iv) = sealed(&app, "journey-code", &profile).await;
    let login = app.post(LOGIN, None, json!({"code": "journey-code", "encryptedData": encrypted_data, "iv": iv})).await;
    assert_eq!((login.status, login.code()), (200, 0), "{}", login.body);
    assert_eq!(login.data()["userInfo"]["userId"], user_id.as_str());
    insta::assert_json_snapshot!("points_login_with_profile", redacted(login.data(), &["/token", "/userInfo/userId"]));
    let token = login.data()["token"].as_str().unwrap().to_owned();

    // §1.3 the profile now; no points, so no expiry.
    let info = user_info(&app, &token).await;
    assert_eq!(info["userInfo"]["userId"], user_id.as_str());
    insta::assert_json_snapshot!("points_user_info_new_user", redacted(&info, &["/userInfo/userId"]));

    // §2.1 the packages on sale.
    let packages = app.get(PACKAGES, Some(&token)).await;
    assert_eq!(packages.status, 200);
    insta::assert_json_snapshot!("points_packages", packages.data());

    // §2.2 an order, with the wx.requestPayment parameters signed by the merchant's key.
    let created = app.post(CREATE_ORDER, Some(&token), json!({"packageId": "pkg_standard_5000"})).await;
    assert_eq!((created.status, created.code()), (200, 0), "{}", created.body);
    let order_id = created.data()["orderId"].as_str().unwrap().to_owned();
    assert!(order_id.starts_with("PT") && order_id.len() == 20 && order_id[2..].bytes().all(|b| b.is_ascii_digit()), "{order_id}");
    assert_eq!(created.data()["orderInfo"], json!({"packageName": "标准套餐", "points": 5000, "price": 3990,
        "createTime": created.data()["orderInfo"]["createTime"]}));
    // Whole seconds, and a loaded machine's reply may take a few.
    assert!((app.server.clock.now() - time(&created.data()["orderInfo"]["createTime"])).num_seconds().abs() <= 5);
    let pay = &created.data()["paymentInfo"];
    assert_eq!((pay["signType"].as_str(), pay["appId"].as_str()), (Some("RSA"), Some("wx_sandbox_points")));
    assert!(pay["package"].as_str().unwrap().starts_with("prepay_id=wx"), "{pay}");
    let message = format!("{}\n{}\n{}\n{}\n", pay["appId"].as_str().unwrap(), pay["timeStamp"].as_str().unwrap(), pay["nonceStr"].as_str().unwrap(), pay["package"].as_str().unwrap());
    let merchant = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, app.pay_platform("points").merchant_public_key_der().await.unwrap()).unwrap();
    let signature = base64::engine::general_purpose::STANDARD.decode(pay["paySign"].as_str().unwrap()).unwrap();
    merchant.verify_sig(message.as_bytes(), &signature).expect("paySign verifies with the merchant's key");

    // §2.3 not paid yet; §2.4 pending.
    assert_eq!(check_payment(&app, &token, &order_id).await, json!({"isPaid": false, "points": null, "expiryDate": null}));
    let history = purchases(&app, &token).await;
    assert_eq!((history["total"].as_i64(), history["list"][0]["status"].as_str()), (Some(1), Some("pending")));

    // The sandbox pays: a signed v3 notify reaches our notify endpoint and credits the points.
    let paid = app.sandbox_pay(&order_id, "success").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!((&paid.body["notify"]["status"], &paid.body["notify"]["body"]["code"]), (&json!(200), &json!("SUCCESS")), "{}", paid.body);
    assert_eq!(check_payment(&app, &token, &order_id).await, json!({"isPaid": true, "points": 5000, "expiryDate": year_end(&app)}));
    let info = user_info(&app, &token).await;
    assert_eq!((info["points"].as_i64(), info["pointsExpiryDate"].as_str()), (Some(5000), Some(year_end(&app).as_str())));
    let history = purchases(&app, &token).await;
    assert_eq!(history["total"], 1);
    assert_eq!(
        redacted(&history["list"][0], &["/purchaseTime"]),
        json!({"orderId": order_id, "packageName": "标准套餐", "points": 5000, "price": 3990, "status": "paid", "purchaseTime": "[purchaseTime]"})
    );

    // §3.2 a key: its secret once; §3.1 listed without it.
    let created = app.post(KEY_CREATE, Some(&token), json!({"name": "生产环境", "expiryMonths": 12})).await;
    assert_eq!((created.status, created.code()), (200, 0), "{}", created.body);
    let key = created.data();
    let secret = key["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_live_") && secret.len() == 48 && secret[8..].bytes().all(|b| b.is_ascii_alphanumeric()), "{secret}");
    assert_eq!((key["status"].as_str(), key["name"].as_str()), (Some("active"), Some("生产环境")));
    assert_eq!(time(&key["expiresAt"]), time(&key["createdAt"]).checked_add_months(Months::new(12)).unwrap());
    let key_id = key["id"].as_str().unwrap().to_owned();
    let listed = keys(&app, &token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0],
        json!({"id": key_id, "name": "生产环境", "status": "active", "createdAt": key["createdAt"], "expiresAt": key["expiresAt"], "lastUsedAt": null})
    );
    assert!(!listed[0].to_string().contains(&secret));

    // The metered service debits with the key.
    let debit = app
        .post(CONSUME, Some(&secret), json!({"cost": 132, "idempotencyKey": "gen-20240619-batch-0231", "title": "文本生成接口调用", "description": "调用 /v1/text/generate 共132次"}))
        .await;
    assert_eq!((debit.status, debit.code()), (200, 0), "{}", debit.body);
    assert_eq!(
        redacted(debit.data(), &["/id", "/consumeTime"]),
        json!({"id": "[id]", "title": "文本生成接口调用", "description": "调用 /v1/text/generate 共132次", "points": 132, "balance": 4868,
            "consumeTime": "[consumeTime]", "apiKeyId": key_id, "apiKeyName": "生产环境"})
    );
    assert!(debit.data()["id"].as_str().unwrap().starts_with("cr_"));
    app.server.clock.advance(Duration::from_secs(1));
    let second = consume(&app, &secret, 68, "gen-20240619-batch-0232", "图像识别接口调用").await;
    assert_eq!((second.status, second.data()["balance"].as_i64()), (200, Some(4800)), "{}", second.body);
    assert_eq!(balance(&app, &token).await, 4800);
    assert!(keys(&app, &token).await[0]["lastUsedAt"].is_string(), "the key's use is recorded");

    // §2.5 the consumption history, newest first.
    let history = consumption(&app, &token).await;
    assert_eq!(history["total"], 2);
    let list = history["list"].as_array().unwrap();
    assert_eq!((list[0]["id"].as_str(), list[0]["points"].as_i64(), list[0]["title"].as_str()), (second.data()["id"].as_str(), Some(68), Some("图像识别接口调用")));
    assert!(list[0].get("description").is_none_or(Value::is_null), "{}", list[0]);
    assert_eq!((list[1]["id"].as_str(), list[1]["apiKeyName"].as_str()), (debit.data()["id"].as_str(), Some("生产环境")));

    // §3.4 switched off, the key is refused; on again, it works; §3.3 deleted, it is unknown.
    let off = app.post(KEY_STATUS, Some(&token), json!({"id": key_id, "status": "inactive"})).await;
    assert_eq!((off.status, off.code(), off.data()), (200, 0, &Value::Null), "{}", off.body);
    assert_eq!(keys(&app, &token).await[0]["status"], "inactive");
    let refused = consume(&app, &secret, 1, "k-off", "x").await;
    assert_eq!((refused.status, refused.code(), refused.body["message"].as_str()), (403, 403, Some("API Key已停用")));
    assert_eq!(app.post(KEY_STATUS, Some(&token), json!({"id": key_id, "status": "active"})).await.status, 200);
    assert_eq!(consume(&app, &secret, 1, "k-on", "x").await.status, 200);
    let deleted = app.post(KEY_DELETE, Some(&token), json!({"id": key_id})).await;
    assert_eq!((deleted.status, deleted.code(), deleted.data()), (200, 0, &Value::Null), "{}", deleted.body);
    assert_eq!(keys(&app, &token).await, Vec::<Value>::new());
    let gone = consume(&app, &secret, 1, "k-gone", "x").await;
    assert_eq!((gone.status, gone.code()), (401, 401), "{}", gone.body);
    assert_eq!(balance(&app, &token).await, 4799);

    // §1.2 two hours later the token has expired; exchanged once, the new one works.
    app.server.clock.advance(Duration::from_secs(3 * 3600));
    let expired = app.get(USER_INFO, Some(&token)).await;
    assert_eq!((expired.status, expired.code()), (401, 401));
    let refreshed = app.post(REFRESH, Some(&token), json!({})).await;
    assert_eq!((refreshed.status, refreshed.code(), refreshed.data()["expiresIn"].as_i64()), (200, 0, Some(7200)), "{}", refreshed.body);
    let new_token = refreshed.data()["token"].as_str().unwrap();
    assert_ne!(new_token, token);
    assert_eq!(user_info(&app, new_token).await["userInfo"]["nickName"], "张三");
}

#[tokio::test]
async fn the_demo_user_journey() {
    let app = TestApp::points().await;

    // The sandbox's demo user: the contract's example story.
    let login = app.post(LOGIN, None, json!({"code": "demo"})).await;
    assert_eq!((login.status, login.code()), (200, 0), "{}", login.body);
    insta::assert_json_snapshot!("points_login_demo", redacted(login.data(), &["/token"]));
    let token = login.data()["token"].as_str().unwrap().to_owned();
    let info = user_info(&app, &token).await;
    assert_eq!(info["pointsExpiryDate"].as_str(), Some(year_end(&app).as_str()));
    insta::assert_json_snapshot!("points_user_info_demo", redacted(&info, &["/pointsExpiryDate"]));

    // Its purchases (paid, failed, paid), consumption (972 points) and keys.
    let history = purchases(&app, &token).await;
    let summary: Vec<(String, String)> = history["list"].as_array().unwrap().iter().map(|r| (r["packageName"].as_str().unwrap().to_owned(), r["status"].as_str().unwrap().to_owned())).collect();
    let expected: Vec<(String, String)> = [("标准套餐", "paid"), ("专业套餐", "failed"), ("入门套餐", "paid")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!((history["total"].as_i64(), summary), (Some(3), expected));
    let spent = consumption(&app, &token).await;
    assert_eq!(spent["total"], 4);
    assert_eq!(spent["list"].as_array().unwrap().iter().map(|r| r["points"].as_i64().unwrap()).sum::<i64>(), 972);
    let listed = keys(&app, &token).await;
    let summary: Vec<(&str, &str, &str)> = listed.iter().map(|k| (k["id"].as_str().unwrap(), k["name"].as_str().unwrap(), k["status"].as_str().unwrap())).collect();
    assert_eq!(summary, [("ak_c4e19a07f532", "旧版集成", "inactive"), ("ak_3f9c2e71d04b", "生产环境", "active"), ("ak_8b21d6e4a9c0", "测试环境", "active")]);
    assert!(time(&listed[2]["expiresAt"]) < app.server.clock.now(), "测试环境 has expired");

    // The published demo key debits; the expired and the inactive one are refused.
    let debit = consume(&app, DEMO_KEY, 28, "demo-1", "数据导出").await;
    assert_eq!((debit.status, debit.data()["balance"].as_i64(), debit.data()["apiKeyId"].as_str()), (200, Some(5000), Some("ak_3f9c2e71d04b")), "{}", debit.body);
    let expired = consume(&app, EXPIRED_KEY, 1, "demo-2", "数据导出").await;
    assert_eq!((expired.status, expired.body["message"].as_str()), (403, Some("API Key已过期")));
    let inactive = consume(&app, INACTIVE_KEY, 1, "demo-3", "数据导出").await;
    assert_eq!((inactive.status, inactive.body["message"].as_str()), (403, Some("API Key已停用")));
    // Switched on, the old integration's key works again.
    assert_eq!(app.post(KEY_STATUS, Some(&token), json!({"id": "ak_c4e19a07f532", "status": "active"})).await.status, 200);
    let revived = consume(&app, INACTIVE_KEY, 10, "demo-3", "数据导出").await;
    assert_eq!((revived.status, revived.data()["balance"].as_i64(), revived.data()["apiKeyName"].as_str()), (200, Some(4990), Some("旧版集成")));
    assert_eq!(balance(&app, &token).await, 4990);
    assert_eq!(consumption(&app, &token).await["total"], 6);

    // The sandbox's notice; the status.
    let notice = app.get(NOTICE, None).await;
    assert_eq!((notice.status, notice.data()["hasNotice"].as_bool()), (200, Some(true)));
    assert!(notice.data()["content"].as_str().unwrap().contains("demo"), "{}", notice.body);
    let status = app.get(STATUS, None).await;
    assert_eq!(status.data(), &json!({"apiStatus": "normal", "message": "服务运行正常", "maintenance": false, "maintenanceEndTime": null}));

    // A second login of the demo user is not new either; another code is a new user.
    let again = app.post(LOGIN, None, json!({"code": "demo"})).await;
    assert_eq!((again.data()["isNewUser"].as_bool(), again.data()["userInfo"]["userId"].as_str()), (Some(false), Some(DEMO_USER)));
    let stranger = app.post(LOGIN, None, json!({"code": "not-demo"})).await;
    assert_eq!((stranger.data()["isNewUser"].as_bool(), stranger.data()["points"].as_i64()), (Some(true), Some(0)));
    assert_ne!(stranger.data()["userInfo"]["userId"], DEMO_USER);
}
