//! 000 end to end: the document's journey, as a mini-program walks it (register, log in, bind,
//! bills, order, sandbox payment, status, history, statistics, refresh, logout).

use std::time::Duration;

use serde_json::json;

use super::{OWNER_ID, code, order};
use crate::app::TestApp;

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
    // 对接注意事项 5: amounts are written with their two decimal places (an area keeps its own).
    let text = app.client.get(app.url("/api/heat/account")).bearer_auth(&token).send().await.unwrap().text().await.unwrap();
    for written in [r#""unpaid_fee":1250.50"#, r#""paid_fee":2499.00"#, r#""current_balance":-1250.50"#, r#""heating_area":85.5,"#] {
        assert!(text.contains(written), "{written}: {text}");
    }
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
    // Nothing is owed any more: the profile and the account say so alike.
    assert_eq!(app.get("/api/user/profile", Some(&token)).await.data()["balance"], json!(0.0));
    assert_eq!(app.get("/api/heat/account", Some(&token)).await.data()["current_balance"], json!(0.0));

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

    // §2.3 refresh rotates; §2.4 logout ends the session, refresh token included.
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
