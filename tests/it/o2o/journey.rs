//! The two journeys of 004. Own operator: wxLogin → 10003 until a phone is bound → SMS code →
//! login → where am I → merchants near → goods → buy (sdk_config) → sandbox pay → verify codes →
//! completed. Other operator: buy at operator 5 from operator 3's mini-program (no sdk_config)
//! → the bridge page's 小程序码 and scene → wxLogin in operator 5's mini-program →
//! loginWithSceneId → order/pay → sandbox pay → the order paid, seen from both.

use serde_json::json;

use super::*;

#[tokio::test]
async fn own_operator_login_bind_browse_buy_pay_verify_complete() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let (token, info) = wx_login(&app, OPER3, "journey-own").await;
    assert_eq!(info, Value::Null, "a new openid has no userInfo");
    // 步骤2 first: orders need a bound phone (10003); browsing does not.
    refused(&get(&app, OPER3, "/api/user/orders", &token).await, 401, 10003);
    refused(&post(&app, OPER3, "/api/user/order/buy", &token, json!({"goods_id": 2048, "number": 1})).await, 401, 10003);
    // A bad token is 10007 (步骤1 again).
    refused(&get(&app, OPER3, "/api/user/orders", "not-a-token").await, 401, 10007);

    let mobile = "13700000001";
    let sent = ok(&post(&app, OPER3, "/api/user/sms/verify_code", &token, json!({"mobile": mobile})).await);
    let code = sent["verify_code"].as_str().expect("echoed in the sandbox").to_owned();
    assert_eq!(code.len(), 6);
    let wrong = crate::app::wrong_code(&code);
    refused(&post(&app, OPER3, "/api/user/login", &token, json!({"mobile": mobile, "verify_code": wrong})).await, 400, 10005);
    let bound = ok(&post(&app, OPER3, "/api/user/login", &token, json!({"mobile": mobile, "verify_code": code})).await);
    assert_eq!(bound["userInfo"], json!({"name": "用户0001", "mobile": mobile}));
    // The code is used up.
    refused(&post(&app, OPER3, "/api/user/login", &token, json!({"mobile": mobile, "verify_code": code})).await, 400, 10005);
    // The same WeChat user again: bound now, userInfo comes with the token.
    let (token, info) = wx_login(&app, OPER3, "journey-own").await;
    assert_eq!(info, json!({"name": "用户0001", "mobile": mobile}));
    // Another WeChat user of the same mini-program cannot take that phone (10006).
    let (other, _) = wx_login(&app, OPER3, "journey-own-other").await;
    app.server.clock.advance(std::time::Duration::from_secs(61)); // one code a minute per phone
    ok(&post(&app, OPER3, "/api/user/sms/verify_code", &other, json!({"mobile": mobile})).await);
    let code = app.sms_code(mobile).await;
    refused(&post(&app, OPER3, "/api/user/login", &other, json!({"mobile": mobile, "verify_code": code})).await, 409, 10006);

    // Where am I: 广东省 深圳市 南山区.
    let (lng, lat) = HERE;
    let here = ok(&get(&app, OPER3, &format!("/api/user/area/getByGps?lng={lng}&lat={lat}"), &token).await);
    assert_eq!((&here["province_id"], &here["city_id"], &here["area_id"]), (&json!(440000), &json!(440300), &json!(440305)), "{here}");
    assert_eq!(here["area"], json!("南山区"));

    // Merchants within 5 km, nearest first: 茶颜小筑 (operator 5) then 蜀大侠火锅 (ours).
    let near = ok(&get(&app, OPER3, &format!("/api/user/merchants?lng={lng}&lat={lat}&radius=5000&city_id=440300"), &token).await);
    let list = near["list"].as_array().unwrap();
    let ids: Vec<i64> = list.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(&ids[..2], &[1031, 1024], "{near}");
    assert_eq!((&list[0]["isOperSelf"], &list[1]["isOperSelf"]), (&json!(0), &json!(1)));
    let d: Vec<f64> = list.iter().map(|m| m["distance"].as_f64().unwrap()).collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]) && d.iter().all(|&m| m <= 5000.0), "{d:?}");
    // A keyword past 100 characters is 10001 (a LIKE pattern that long is past what SQLite takes).
    assert_eq!(ok(&get(&app, OPER3, &format!("/api/user/merchants?keyword={}", "火".repeat(100)), &token).await)["total"], json!(0));
    refused(&get(&app, OPER3, &format!("/api/user/merchants?keyword={}", "_".repeat(25_001)), &token).await, 400, 10001);

    let goods = ok(&get(&app, OPER3, "/api/user/goods?merchant_id=1024", &token).await);
    assert!(goods["list"].as_array().unwrap().iter().any(|g| g["id"] == json!(2048)), "{goods}");
    let set = ok(&get(&app, OPER3, "/api/user/goods/detail?id=2048", &token).await);
    assert_eq!(set["price"], json!("128.00"));

    // At most 99 units (one verify code each), as the contract says; none is placed.
    for (number, why) in [(0, "number: 应不小于1"), (100, "number: 应不大于99")] {
        let refusal = post(&app, OPER3, "/api/user/order/buy", &token, json!({"goods_id": 2048, "number": number})).await;
        refused(&refusal, 400, 10001);
        assert!(refusal.body["message"].as_str().unwrap().contains(why), "{}", refusal.body);
    }
    assert_eq!(ok(&get(&app, OPER3, "/api/user/orders", &token).await)["total"], json!(0));

    // Buy two: the caller's own operator, so sdk_config for wx.requestPayment (v3, RSA).
    let bought = buy(&app, OPER3, &token, 2048, 2).await;
    assert_eq!(bought["isOperSelf"], json!(1));
    let sdk = &bought["sdk_config"];
    assert_eq!((&sdk["appId"], &sdk["signType"]), (&json!(OPER3), &json!("RSA")), "{bought}");
    assert!(sdk["package"].as_str().unwrap().starts_with("prepay_id="), "{sdk}");
    let order_no = bought["order_no"].as_str().unwrap().to_owned();
    assert!(order_no.len() == 21 && order_no.starts_with("02") && order_no.bytes().all(|b| b.is_ascii_digit()), "{order_no}");
    let unpaid = order(&app, OPER3, &token, &order_no).await;
    assert_eq!((&unpaid["status"], &unpaid["pay_price"], &unpaid["buy_number"]), (&json!(1), &json!("256.00"), &json!(2)));
    assert!(unpaid.get("items").is_none_or(Value::is_null), "no codes before payment: {unpaid}");
    assert_eq!(unpaid["user_name"], json!("用户0001"));

    // Paid: two unique 12-digit codes.
    pay(&app, &order_no).await;
    let paid = order(&app, OPER3, &token, &order_no).await;
    assert_eq!(paid["status"], json!(4));
    assert!(paid["pay_time"].as_str().is_some(), "{paid}");
    let [first, second]: [String; 2] = codes(&paid).try_into().expect("one code per unit");
    assert_ne!(first, second);
    assert!([&first, &second].iter().all(|c| c.len() == 12 && c.bytes().all(|b| b.is_ascii_digit())));
    let listed = ok(&get(&app, OPER3, "/api/user/orders?status=4", &token).await);
    assert_eq!((&listed["total"], &listed["list"][0]["order_no"]), (&json!(1), &json!(order_no)));

    // The merchant verifies one, then the other: the order is completed (7), nothing to refund.
    let (status, body) = verify(&app, &first).await;
    assert_eq!((status, &body["completed"]), (200, &json!(false)), "{body}");
    let (status, body) = verify(&app, &first).await;
    assert_eq!(status, 409, "a code is verified once: {body}");
    let (status, body) = verify(&app, &second).await;
    assert_eq!((status, &body["completed"]), (200, &json!(true)), "{body}");
    let done = order(&app, OPER3, &token, &order_no).await;
    assert_eq!(done["status"], json!(7));
    assert!(done["items"].as_array().unwrap().iter().all(|i| i["status"] == json!(2)), "{done}");
    refused(&post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": order_no})).await, 400, 10001);
    // Someone else's token does not see the order.
    refused(&get(&app, OPER3, &format!("/api/user/order/detail?order_no={order_no}"), &other).await, 401, 10003);
}

#[tokio::test]
async fn other_operator_bridge_page_scene_login_and_pay() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let token = user_with_phone(&app, OPER3, "journey-bridge", "13700000002").await;
    // 芋圆鲜奶茶双杯券 is operator 5's: bought from operator 3's mini-program, no sdk_config.
    let bought = buy(&app, OPER3, &token, 3107, 1).await;
    assert_eq!(bought["isOperSelf"], json!(0));
    assert!(bought.get("sdk_config").is_none_or(Value::is_null), "{bought}");
    let order_no = bought["order_no"].as_str().unwrap().to_owned();
    // Operator 3's mini-program cannot pay it.
    refused(&post(&app, OPER3, "/api/user/order/pay", &token, json!({"order_no": order_no})).await, 400, 10001);
    let seen = order(&app, OPER3, &token, &order_no).await;
    assert_eq!((&seen["oper_id"], &seen["isOperSelf"]), (&json!(5), &json!(0)));
    let user_id = seen["user_id"].as_i64().unwrap();

    // The bridge page, opened by operator 3's mini-program with its token: only for this order,
    // its user (the token's account) and its operator.
    let page = |target: i64, user: i64, token: &str| {
        format!("/miniprogram_bridge/pay?targetOperId={target}&orderNo={order_no}&userId={user}&page=pages/severs/index/index&token={token}")
    };
    let open = async |path: String| {
        let reply = read(app.client.get(app.url(&path)).send().await.unwrap()).await;
        app.check(&reqwest::Method::GET, &path, &reply);
        reply
    };
    for (target, user) in [(3, user_id), (5, user_id + 1), (9, user_id)] {
        refused(&open(page(target, user, &token)).await, 400, 10001);
    }
    // Knowing the order number and the user id is not enough: another account's token, or none.
    let someone = user_with_phone(&app, OPER3, "journey-bridge-someone", "13700000012").await;
    refused(&open(page(5, user_id, &someone)).await, 400, 10001);
    refused(&open(page(5, user_id, "").replace("&token=", "")).await, 401, 10007);
    // A page must be one of the mini-program's, not a way out of its directory.
    let traversal = open(page(5, user_id, &token).replace("pages/severs/index/index", "../../x")).await;
    refused(&traversal, 400, 10001);
    assert!(traversal.body["message"].as_str().unwrap().starts_with("page 不合法：须为小程序"), "{}", traversal.body);
    let reply = open(page(5, user_id, &token)).await;
    assert_eq!(reply.status, 200);
    let html = reply.body.as_str().expect("HTML");
    assert!(html.contains("data:image/png;base64,"), "{html}");
    let scene = html.split("data-scene=\"").nth(1).and_then(|s| s.split('"').next()).expect("the scene in the page").to_owned();
    assert!(html.contains(&format!("<code>{scene}</code>")), "{html}");
    assert!(!scene.is_empty() && scene.len() <= 32 && scene.bytes().all(|b| b.is_ascii_alphanumeric()), "{scene}");

    // The user scans: operator 5's mini-program logs in (a new openid there) and redeems the scene.
    let (token5, info) = wx_login(&app, OPER5, "journey-bridge-at-5").await;
    assert_eq!(info, Value::Null);
    // A scene is for the operator it was made for.
    refused(&post(&app, OPER3, "/api/user/loginWithSceneId", &token, json!({"sceneId": scene})).await, 400, 10001);
    let login = ok(&post(&app, OPER5, "/api/user/loginWithSceneId", &token5, json!({"sceneId": scene})).await);
    assert_eq!(login["payload"], json!({"user_id": user_id, "order_no": order_no}));
    assert_eq!(login["userInfo"]["mobile"], json!("13700000002"));
    // Another WeChat user scanning the same code later gets nothing.
    let (stranger, _) = wx_login(&app, OPER5, "journey-bridge-stranger").await;
    refused(&post(&app, OPER5, "/api/user/loginWithSceneId", &stranger, json!({"sceneId": scene})).await, 400, 10001);
    refused(&post(&app, OPER5, "/api/user/loginWithSceneId", &token5, json!({"sceneId": "NoSuchScene42"})).await, 400, 10001);
    // A WeChat user of operator 5 bound to another account is not moved by a scene (10006), and
    // the scene stays for its rightful redeemer.
    let bound5 = user_with_phone(&app, OPER5, "journey-bridge-bound5", "13700000013").await;
    let second = open(page(5, user_id, &token)).await;
    let second = second.body.as_str().unwrap().split("data-scene=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    let reply = post(&app, OPER5, "/api/user/loginWithSceneId", &bound5, json!({"sceneId": second})).await;
    refused(&reply, 409, 10006);
    assert_eq!(reply.body["message"], json!("该微信已绑定其他账号"));
    let (fresh5, _) = wx_login(&app, OPER5, "journey-bridge-fresh5").await;
    let reply = post(&app, OPER5, "/api/user/loginWithSceneId", &fresh5, json!({"sceneId": second})).await;
    refused(&reply, 409, 10006);
    assert_eq!(reply.body["message"], json!("该账号已在本小程序绑定其他微信"));
    // (the account already has operator 5's openid token5: one openid per mini-program)

    // Pay in operator 5's mini-program.
    let payable = ok(&post(&app, OPER5, "/api/user/order/pay", &token5, json!({"order_no": order_no})).await);
    assert_eq!((&payable["isOperSelf"], &payable["sdk_config"]["appId"]), (&json!(1), &json!(OPER5)), "{payable}");
    refused(&post(&app, OPER5, "/api/user/order/pay", &stranger, json!({"order_no": order_no})).await, 401, 10003);
    pay(&app, &order_no).await;
    let paid = order(&app, OPER5, &token5, &order_no).await;
    assert_eq!((&paid["status"], &paid["isOperSelf"]), (&json!(4), &json!(1)));
    assert_eq!(codes(&paid).len(), 1);
    let from_three = order(&app, OPER3, &token, &order_no).await;
    assert_eq!((&from_three["status"], &from_three["isOperSelf"]), (&json!(4), &json!(0)));
    // Paid: no more pay parameters.
    refused(&post(&app, OPER5, "/api/user/order/pay", &token5, json!({"order_no": order_no})).await, 400, 10001);
}

#[tokio::test]
async fn the_test_code_and_the_demo_orders() {
    let app = TestApp::spawn("o2o", |_| {}).await;
    let (token, info) = wx_login(&app, OPER3, "user").await;
    assert_eq!(info, json!({"name": "张伟", "mobile": "13912345678"}));
    let all = ok(&get(&app, OPER3, "/api/user/orders", &token).await);
    let numbers: Vec<&str> = all["list"].as_array().unwrap().iter().map(|o| o["order_no"].as_str().unwrap()).collect();
    assert_eq!(all["total"], json!(3));
    for no in ["020180416193021582734", "020180415222010166615", "020180416194512309817"] {
        assert!(numbers.contains(&no), "{numbers:?}");
    }
    let refunded = ok(&post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": "020180415222010166615"})).await);
    assert_eq!(
        (&refunded["id"], &refunded["amount"], &refunded["refund_id"], &refunded["status"]),
        (&json!(16), &json!("0.01"), &json!("50000206712018041604196575582"), &json!(2))
    );
    // The demo's paid order refunds its one unused code (the sandbox merchant knows the seeded
    // payment), and only that one.
    let paid = "020180416193021582734";
    let refund = ok(&post(&app, OPER3, "/api/user/order/refund", &token, json!({"order_no": paid})).await);
    assert_eq!((&refund["amount"], &refund["order_no"]), (&json!("128.00"), &json!(paid)), "{refund}");
    assert_ne!(refund["status"], json!(3), "{refund}");
    let after = order(&app, OPER3, &token, paid).await;
    let statuses = code_statuses(&after);
    assert_eq!((&after["status"], statuses), (&json!(6), vec![3, 2]));
    // An unknown appid is 70011 (only on wxLogin).
    let reply = call(&app, "wx_not_an_operator", reqwest::Method::POST, "/api/user/wxLogin", None, Some(json!({"code": "x1"}))).await;
    refused(&reply, 400, 70011);
}
