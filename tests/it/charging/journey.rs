//! The mini-program's whole session: log in (WeChat, username), read the configuration and the
//! tariffs, find a station near the user and by name, scan the pile's QR code, create an order
//! (按电量), start it, watch it charge, let the charger stop at the limit, check the
//! time-of-use bill against our own calculation, pay it by WeChat Pay (the pay page, the sandbox,
//! the notify) — then a second session paid from the balance, the statistics and the lists.

use serde_json::json;

use super::*;

/// The stations within 5 km of ST0001, nearest first: (id, latitude, longitude).
const NEAR_ST0001: [(&str, f64, f64); 3] =
    [("ST0001", 22.528471, 113.944723), ("ST0003", 22.517262, 113.935917), ("ST0002", 22.555318, 113.950182)];

/// Haversine metres on the IUGG mean Earth radius (independent of the server's own).
fn metres(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let a = ((p2 - p1) / 2.0).sin().powi(2) + p1.cos() * p2.cos() * ((lng2 - lng1).to_radians() / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * a.sqrt().asin()
}

/// GET /api/station/search's data (the reply checked against the contract by `TestApp`).
async fn search(app: &TestApp, token: &str, query: &str) -> serde_json::Value {
    let reply = app.get(&format!("{SEARCH}?{query}"), Some(token)).await;
    assert_eq!((reply.status, &reply.body["code"], &reply.body["message"]), (200, &json!(0), &json!("获取成功")), "{query}: {}", reply.body);
    reply.body["data"].clone()
}

/// First logins of many WeChat users at once each make their own account, with ids one after
/// another past the demo data's: an id read as `MAX(id) + 1` was the same for all of them, and
/// past five tries some were answered 500.
#[tokio::test]
async fn first_wechat_logins_at_once_each_get_an_account() {
    let app = TestApp::charging().await;
    let logins = (0..20).map(|n| app.post(WECHAT_LOGIN, None, json!({ "code": format!("crowd-{n}") }))).collect();
    let mut ids: Vec<i64> = join_all(logins).await.iter().map(|reply| ok(reply)["userId"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (DEMO_USER_ID + 1..=DEMO_USER_ID + 20).collect::<Vec<_>>());
    // A username account after them takes the next.
    let registered = ok(&app.post("/api/user/register", None, json!({ "username": "crowd_after", "password": "crowd-pass-2026" })).await);
    assert_eq!(registered["userId"], json!(DEMO_USER_ID + 21), "{registered}");
}

/// Password logins of one username are counted, right or wrong, known name or not: past ten in
/// fifteen minutes the password is not compared (1002 saying how long to wait), on any instance.
#[tokio::test]
async fn a_username_has_ten_password_logins_in_fifteen_minutes() {
    let app = TestApp::charging().await;
    for n in 0..mpapi::charging::service::LOGIN_ATTEMPTS {
        refused(&app.post(LOGIN, None, json!({ "username": OPERATOR_USERNAME, "password": format!("guess-{n:04}") })).await, 401, 1002);
    }
    let locked = app.post(LOGIN, None, json!({ "username": OPERATOR_USERNAME, "password": OPERATOR_PASSWORD })).await;
    refused(&locked, 401, 1002);
    // The window is counted in slices: the wait is the 15 minutes, or up to one slice more.
    let message = locked.body["message"].as_str().unwrap();
    let minutes: u64 = message.strip_prefix("登录尝试过于频繁，请").and_then(|m| m.strip_suffix("分钟后再试")).and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!((15..=16).contains(&minutes), "{message}");
    // Another name is its own count.
    ok(&app.post(LOGIN, None, json!({ "username": DEMO_USERNAME, "password": DEMO_PASSWORD })).await);
    app.server.clock.advance(std::time::Duration::from_secs(minutes * 60));
    ok(&app.post(LOGIN, None, json!({ "username": OPERATOR_USERNAME, "password": OPERATOR_PASSWORD })).await);
}

#[tokio::test]
async fn logins_configuration_and_tariffs() {
    let app = TestApp::charging().await;
    // WeChat: any code makes a new user with nothing on the account; the profile is kept.
    let body = json!({ "code": "journey-first-login", "userInfo": { "nickName": "阿杰的Model 3", "gender": 1, "city": "深圳" } });
    let first = ok(&app.post(WECHAT_LOGIN, None, body.clone()).await);
    assert_eq!((&first["balance"], &first["points"]), (&json!(0.0), &json!(0)), "{first}");
    assert!(first["openId"].as_str().unwrap().starts_with("sb_"), "{first}");
    assert!(first["userId"].as_i64().unwrap() > DEMO_USER_ID, "{first}");
    // The same WeChat user again: the same account, a new token.
    let again = ok(&app.post(WECHAT_LOGIN, None, body).await);
    assert_eq!((&again["userId"], &again["openId"]), (&first["userId"], &first["openId"]));
    assert_ne!(again["token"], first["token"]);
    let info = ok(&app.get(USER_INFO, again["token"].as_str()).await);
    assert_eq!((&info["nickname"], &info["gender"], &info["city"], &info["balance"]), (&json!("阿杰的Model 3"), &json!(1), &json!("深圳"), &json!(0.0)));
    // The profile changes; an avatar is an http(s) address of at most 512 characters, anything
    // else (a `javascript:` or `data:` address a page would run or inline) is refused unchanged.
    let token = again["token"].as_str();
    let avatar = "https://thirdwx.qlogo.cn/mmopen/vi_32/journey/132";
    ok(&app.put("/api/user/update", token, json!({ "nickname": "阿杰", "avatar": avatar })).await);
    for bad in ["javascript:alert(1)", "data:image/png;base64,iVBORw0KGgo=", &format!("https://a.cn/{}", "x".repeat(500))] {
        refused(&app.put("/api/user/update", token, json!({ "avatar": bad })).await, 400, 400);
    }
    let info = ok(&app.get(USER_INFO, token).await);
    assert_eq!((&info["nickname"], &info["avatar"]), (&json!("阿杰"), &json!(avatar)), "{info}");
    let forged = json!({ "code": "journey-avatar", "userInfo": { "nickName": "x", "avatarUrl": "javascript:alert(1)" } });
    refused(&app.post(WECHAT_LOGIN, None, forged).await, 400, 400);
    // `userInfo: null` (a page that never got the user's profile) is no profile, as absent is,
    // and leaves the one the account has.
    let again = ok(&app.post(WECHAT_LOGIN, None, json!({ "code": "journey-first-login", "userInfo": null })).await);
    assert_eq!(again["userId"], first["userId"], "{again}");
    let info = ok(&app.get(USER_INFO, again["token"].as_str()).await);
    assert_eq!((&info["nickname"], &info["avatar"]), (&json!("阿杰"), &json!(avatar)), "{info}");
    // An invalid code: 1004.
    refused(&app.post(WECHAT_LOGIN, None, json!({ "code": "invalid" })).await, 400, 1004);

    // Username and password: the demo driver, with his balance; a wrong password is 1002.
    let demo = ok(&app.post(LOGIN, None, json!({ "username": DEMO_USERNAME, "password": DEMO_PASSWORD })).await);
    assert_eq!(
        (&demo["userId"], &demo["openId"], &demo["balance"], &demo["points"]),
        (&json!(DEMO_USER_ID), &json!("user_10086"), &json!(86.5), &json!(320))
    );
    refused(&app.post(LOGIN, None, json!({ "username": DEMO_USERNAME, "password": "wrong-pass-2026" })).await, 401, 1002);
    refused(&app.post(LOGIN, None, json!({ "username": "nobody_here", "password": DEMO_PASSWORD })).await, 401, 1002);
    let token = demo["token"].as_str().unwrap();

    let config = ok(&app.get(CONFIG, Some(token)).await);
    assert_eq!((&config["appName"], &config["jwtExpiryInMinutes"]), (&json!("易充电"), &json!(1440)), "{config}");
    assert!(!config["wechatAppId"].as_str().unwrap().is_empty());
    assert_eq!(config["noticeList"].as_array().unwrap().len(), 1);
    assert_eq!(config["bannerList"][0]["linkUrl"], "/pages/wallet/recharge");
    // Without a token: 401.
    assert_eq!(app.get(CONFIG, None).await.status, 401);

    let rules = ok(&app.get(RULES, Some(token)).await);
    let ids: Vec<&str> = rules["billingRules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["BR001", "BR002"]);
    let dc = &rules["billingRules"][0];
    assert_eq!((&dc["pileType"], &dc["serviceFeeRate"], &dc["isActive"]), (&json!(1), &json!(15.0), &json!(true)));
    assert_eq!(rules["billingRules"][1]["serviceFeeRate"], json!(10.0));
    // BR001's slots cover the day once, each at its tier's rate.
    let mut minutes = 0;
    for slot in dc["timeRates"].as_array().unwrap() {
        let (start, end) = (slot["startTime"].as_str().unwrap(), slot["endTime"].as_str().unwrap());
        let at = |t: &str| t[..2].parse::<i64>().unwrap() * 60 + t[3..].parse::<i64>().unwrap();
        assert_eq!(at(start), minutes, "{slot}");
        minutes = at(end);
        let tier = slot["timeType"].as_i64().unwrap() as usize;
        assert_eq!(fen(&slot["rate"]), BR001_FEN_PER_KWH[tier - 1], "{slot}");
    }
    assert_eq!(minutes, 24 * 60);
    assert_eq!(
        (&rules["defaultRule"]["id"], &rules["defaultRule"]["rate"], &rules["defaultRule"]["serviceFeeRate"]),
        (&json!("BR000"), &json!(0.85), &json!(15.0))
    );
}

#[tokio::test]
async fn stations_near_by_name_in_detail_and_by_qr_code() {
    let app = TestApp::charging().await;
    let token = driver(&app, "journey-stations").await;
    let (lat, lng) = (NEAR_ST0001[0].1, NEAR_ST0001[0].2);
    let nearby = ok(&app.get(&format!("{NEARBY}?latitude={lat}&longitude={lng}"), Some(&token)).await);
    assert_eq!((&nearby["total"], &nearby["pageNum"], &nearby["pageSize"], &nearby["pages"]), (&json!(3), &json!(1), &json!(10), &json!(1)));
    let list = nearby["list"].as_array().unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, NEAR_ST0001.map(|s| s.0));
    assert_eq!(list[0]["distance"], json!(0.0));
    let mut last = -1.0;
    for (item, (id, slat, slng)) in list.iter().zip(NEAR_ST0001) {
        let distance = item["distance"].as_f64().unwrap();
        assert!((distance - metres(lat, lng, slat, slng)).abs() < 1.0, "{id}: {distance}");
        assert!(distance >= last, "sorted by distance: {nearby}");
        last = distance;
    }
    // ST0001: 8 ports, the faulty and the disabled one not available; ST0003 is in maintenance.
    assert_eq!((&list[0]["status"], &list[0]["availablePorts"], &list[0]["totalPorts"]), (&json!(1), &json!(6), &json!(8)));
    assert_eq!((&list[1]["status"], &list[1]["availablePorts"]), (&json!(2), &json!(0)));
    // The list derives availability from its own one-statement read: it agrees with the detail.
    for item in list {
        let detail = ok(&app.get(&format!("/api/station/{}", item["id"].as_str().unwrap()), Some(&token)).await);
        for field in ["status", "availablePorts", "totalPorts", "name", "latitude", "longitude"] {
            assert_eq!(item[field], detail[field], "{field} of {}", item["id"]);
        }
    }
    // Paging: two a page.
    let page2 = ok(&app.get(&format!("{NEARBY}?latitude={lat}&longitude={lng}&pageNum=2&pageSize=2"), Some(&token)).await);
    assert_eq!((&page2["total"], &page2["pageNum"], &page2["pageSize"], &page2["pages"]), (&json!(3), &json!(2), &json!(2), &json!(2)));
    assert_eq!(page2["list"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect::<Vec<_>>(), ["ST0002"]);
    // A small radius: ST0001 only.
    let close = ok(&app.get(&format!("{NEARBY}?latitude={lat}&longitude={lng}&radius=1000"), Some(&token)).await);
    assert_eq!((&close["total"], &close["list"][0]["id"]), (&json!(1), &json!("ST0001")));
    // Out of range: 400.
    assert_eq!(app.get(&format!("{NEARBY}?latitude=91&longitude={lng}"), Some(&token)).await.status, 400);
    // The contract's largest radius, 50 km, searches all of it (广州's stations are about 100 km
    // away); a larger one is refused in the envelope, never quietly searched smaller.
    let widest = ok(&app.get(&format!("{NEARBY}?latitude={lat}&longitude={lng}&radius=50000"), Some(&token)).await);
    assert_eq!(widest["total"], json!(3), "{widest}");
    refused(&app.get(&format!("{NEARBY}?latitude={lat}&longitude={lng}&radius=50001"), Some(&token)).await, 400, 400);

    // By name: all three Shenzhen stations are in 南山区; with a position, nearest first.
    let found = search(&app, &token, &format!("keyword=南山&latitude={lat}&longitude={lng}")).await;
    let ids: Vec<&str> = found["list"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!((found["total"].as_i64(), ids), (Some(3), NEAR_ST0001.map(|s| s.0).to_vec()));
    let by_name = search(&app, &token, "keyword=深圳湾").await;
    assert_eq!((&by_name["total"], &by_name["list"][0]["id"]), (&json!(1), &json!("ST0001")));
    assert_eq!(by_name["list"][0].get("distance").cloned().unwrap_or(json!(null)), json!(null), "no position, no distance");
    assert_eq!(search(&app, &token, "keyword=火星").await["total"], json!(0));
    // A keyword past 100 characters is refused in the envelope (a LIKE pattern that long is past
    // what SQLite takes: a 500).
    assert_eq!(search(&app, &token, &format!("keyword={}", "站".repeat(100))).await["total"], json!(0));
    refused(&app.get(&format!("{SEARCH}?keyword={}", "_".repeat(25_001)), Some(&token)).await, 400, 400);

    // The station's detail.
    let station = ok(&app.get("/api/station/ST0001", Some(&token)).await);
    assert_eq!((&station["name"], &station["availablePorts"], &station["totalPorts"]), (&json!("深圳湾科技生态园充电站"), &json!(6), &json!(8)));
    let piles: Vec<(&str, i64, f64, i64)> = station["piles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["pileType"].as_i64().unwrap(), p["powerRate"].as_f64().unwrap(), p["availablePorts"].as_i64().unwrap()))
        .collect();
    assert_eq!(piles, [("CP0001", 1, 60.0, 2), ("CP0002", 1, 60.0, 2), ("CP0003", 2, 7.0, 2), ("CP0004", 2, 7.0, 0)]);
    refused(&app.get("/api/station/ST9999", Some(&token)).await, 404, 2001);

    // The QR code on the pile: the pile and the device address to control it with.
    let pile = ok(&app.get(&format!("/api/ChargingPile/qrcode/{DC_QR}"), Some(&token)).await);
    assert_eq!(
        (&pile["id"], &pile["deviceAddress"], &pile["stationId"], &pile["pileType"], &pile["status"], &pile["powerRate"]),
        (&json!(DC_PILE), &json!(DC_DEVICE), &json!("ST0001"), &json!(1), &json!(1), &json!(60.0))
    );
    let ports: Vec<(&str, i64)> = pile["ports"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap(), p["status"].as_i64().unwrap())).collect();
    assert_eq!(ports, [(DC_PORT, 1), (DC_PORT_2, 1)]);
    // A URL printed as the QR code names the same pile.
    let url = ok(&app.get("/api/ChargingPile/qrcode/https%3A%2F%2Fcharge.example.com%2Fq%3Fcode%3DCDZ20230001", Some(&token)).await);
    assert_eq!(url["id"], DC_PILE);
    refused(&app.get("/api/ChargingPile/qrcode/CDZ99999999", Some(&token)).await, 404, 2002);
}

#[tokio::test]
async fn a_session_charged_billed_by_time_of_use_and_paid_by_wechat() {
    let app = TestApp::charging().await;
    // 10:59:50 Beijing: the session runs from 峰时 (until 11:00) into 尖峰.
    advance_to_beijing(&app, 10, 59, 50);
    let (token, user_id, _) = wechat_login(&app, "journey-wechat-payer").await;
    let pile = ok(&app.get(&format!("/api/ChargingPile/qrcode/{DC_QR}"), Some(&token)).await);
    let device = pile["deviceAddress"].as_str().unwrap().to_owned();

    // 按电量 10 kWh, paid by WeChat after the session.
    let reply = create(&app, &token, DC_PILE, DC_PORT, 4, json!(10), 1).await;
    let order = created(&reply, &device);
    assert_eq!(reply.data()["paymentUrl"], format!("/pages/payment/pay?orderId={order}"));
    assert_eq!(reply.data()["paymentMethod"], 1);
    let waiting = order_status(&app, &token, &order).await;
    assert_eq!((&waiting["status"], &waiting["powerConsumption"], &waiting["endTime"]), (&json!(0), &json!(0.0), &json!(null)));
    assert_eq!(port(&app, &token, DC_PORT).await["currentOrderId"], order.as_str());

    started(&app, &token, &order, &device).await;
    // Two seconds of power (the charger starts a second after accepting): past the ramp, at the
    // rated 60 kW and 750 V, i.e. 80 A.
    advance(&app, 3);
    let live = order_status(&app, &token, &order).await;
    assert_eq!(live["status"], 1, "{live}");
    let energy = wh(&live["powerConsumption"]);
    assert!(energy > 0 && energy < 30_000, "{live}");
    assert_eq!((&live["power"], &live["voltage"], &live["currentAmpere"]), (&json!(60.0), &json!(750.0), &json!(80.0)), "{live}");
    assert!(fen(&live["amount"]) > 0, "{live}");
    let meter = port(&app, &token, DC_PORT).await;
    assert_eq!((&meter["status"], &meter["currentOrderId"], &meter["voltage"]), (&json!(2), &json!(order), &json!(750.0)), "{meter}");

    // The charger stops itself at 10 kWh.
    let detail = until_ended(&app, &token, &order, 5).await;
    assert_eq!((&detail["status"], &detail["stopReason"], &detail["paymentStatus"]), (&json!(2), &json!(4), &json!(0)), "{detail}");
    assert_eq!((&detail["powerConsumption"], &detail["userId"], &detail["billingMode"]), (&json!(10.0), &json!(user_id), &json!(1)), "{detail}");
    assert_eq!((&detail["pileId"], &detail["portId"], &detail["portNo"], &detail["chargingMode"]), (&json!(DC_PILE), &json!(DC_PORT), &json!("1"), &json!(4)));
    assert!(detail["endTime"].is_string() && detail["chargingTime"].as_i64().unwrap() > 0, "{detail}");
    assert_eq!((&detail["transactionId"], &detail["paymentTime"]), (&json!(null), &json!(null)));
    // The bill, recomputed here: the tiers hold all 10 kWh, all of it in 峰 and 尖峰.
    assert_eq!(tier_wh(&detail), 10_000, "{detail}");
    assert_eq!(wh(&detail["peakElectricity"]) + wh(&detail["sharpElectricity"]), 10_000, "{detail}");
    let (amount, fee, total) = rebill(&detail, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
    assert_eq!((fen(&detail["amount"]), fen(&detail["serviceFee"]), fen(&detail["totalAmount"])), (amount, fee, total), "{detail}");
    assert!((10 * 105..=10 * 125).contains(&amount), "{amount}");
    // A read later changes nothing; the port is free and counts the session.
    advance(&app, 30);
    assert_eq!(order_detail(&app, &token, &order).await["totalAmount"], detail["totalAmount"]);
    let freed = port(&app, &token, DC_PORT).await;
    assert_eq!(
        (&freed["status"], &freed["currentOrderId"], &freed["lastOrderId"], &freed["totalChargingTimes"], &freed["totalPowerConsumption"]),
        (&json!(1), &json!(null), &json!(order), &json!(1), &json!(10.0)),
        "{freed}"
    );

    // Pay by WeChat: a payment with its NATIVE code and its pay page.
    let pay = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await);
    let payment = pay["paymentId"].as_str().unwrap().to_owned();
    assert!(payment.starts_with("PAY"), "{pay}");
    assert_eq!((&pay["orderId"], &pay["paymentStatus"], &pay["paymentMethod"]), (&json!(order), &json!(1), &json!(1)));
    assert_eq!(fen(&pay["amount"]), total);
    let qr = pay["qrCodeUrl"].as_str().unwrap();
    assert!(qr.starts_with("weixin://wxpay/bizpayurl?pr=") && qr.len() > "weixin://wxpay/bizpayurl?pr=".len(), "{pay}");
    assert_eq!(pay["paymentUrl"], app.url(&format!("{PAY_PAGE}?paymentId={payment}")));
    // Asked again while it waits: the same payment.
    let again = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await);
    assert_eq!(again["paymentId"], payment.as_str());
    let before = ok(&app.get(&format!("/api/payment/{payment}/status"), Some(&token)).await);
    assert_eq!((&before["paymentStatus"], &before["transactionId"], &before["paymentTime"]), (&json!(1), &json!(null), &json!(null)));

    // The pay page (behind the token): the amount, the code (no JSAPI button: the order was
    // placed NATIVE), and the sandbox's buttons.
    let page = app.get(&format!("{PAY_PAGE}?paymentId={payment}"), Some(&token)).await;
    assert_eq!(page.status, 200);
    let html = page.body.as_str().unwrap();
    assert!(page.headers[reqwest::header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    for needle in [payment.as_str(), &format!("¥{}.{:02}", total / 100, total % 100), qr, "模拟支付成功", "模拟支付失败"] {
        assert!(html.contains(needle), "{needle} not in {html}");
    }
    assert!(!html.contains("WeixinJSBridge"), "{html}");
    assert!(html.contains(&format!("/_sandbox/pay/{payment}?result=success")), "{html}");
    assert_eq!(app.get(&format!("{PAY_PAGE}?paymentId={payment}"), None).await.status, 401);

    // The sandbox pays: its notify settles the payment and the order.
    let paid = app.sandbox_pay(&payment, "success").await;
    assert_eq!((paid.status, &paid.body["notify"]["status"]), (200, &json!(200)), "{}", paid.body);
    let status = ok(&app.get(&format!("/api/payment/{payment}/status"), Some(&token)).await);
    assert_eq!((&status["paymentStatus"], &status["orderId"], &status["paymentMethod"]), (&json!(2), &json!(order), &json!(1)), "{status}");
    assert_eq!(fen(&status["amount"]), total);
    let transaction = status["transactionId"].as_str().unwrap();
    assert!(transaction.starts_with("42000") && transaction.len() == 28, "{status}");
    assert!(status["paymentTime"].is_string());
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!(
        (&detail["paymentStatus"], &detail["paymentMethod"], &detail["transactionId"]),
        (&json!(1), &json!(1), &json!(transaction)),
        "{detail}"
    );
    assert!(detail["paymentTime"].is_string());
    // Paid: no second payment, and the page is gone.
    refused(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await, 409, 4003);
    refused(&app.get(&format!("{PAY_PAGE}?paymentId={payment}"), Some(&token)).await, 400, 3002);

    // Statistics: this one session, today.
    let today = beijing_today(&app);
    for period in ["week", "month", "year", "all"] {
        let stats = ok(&app.get(&format!("{STATISTICS}?period={period}"), Some(&token)).await);
        assert_eq!((&stats["totalChargingTimes"], &stats["totalPowerConsumption"]), (&json!(1), &json!(10.0)), "{period}: {stats}");
        assert_eq!((fen(&stats["totalAmount"]), fen(&stats["averageAmount"])), (total, total), "{period}: {stats}");
        assert_eq!(stats["totalChargingDuration"], detail["chargingTime"]);
        assert_eq!(
            stats["chargingTrend"],
            json!([{ "date": today, "chargingTimes": 1, "powerConsumption": 10.0, "amount": detail["totalAmount"] }]),
            "{period}"
        );
    }
    // The list.
    let list = ok(&app.get(ORDERS, Some(&token)).await);
    assert_eq!((&list["total"], &list["pages"], &list["list"][0]["id"]), (&json!(1), &json!(1), &json!(order)));
    let item = &list["list"][0];
    assert_eq!(
        (&item["status"], &item["paymentStatus"], &item["powerConsumption"], &item["amount"], &item["pileNo"]),
        (&json!(2), &json!(1), &json!(10.0), &detail["amount"], &json!("CP001"))
    );
}

#[tokio::test]
async fn a_second_session_paid_from_the_balance_then_statistics_and_the_list() {
    let app = TestApp::charging().await;
    // 14:30 Beijing: all within 峰时.
    advance_to_beijing(&app, 14, 30, 0);
    let token = demo(&app).await;
    let past = ok(&app.get(&format!("{ORDERS}?status=2"), Some(&token)).await);
    assert_eq!(past["total"], json!(2), "the demo sessions: {past}");
    let past_totals: Vec<i64> = {
        let mut totals = Vec::new();
        for item in past["list"].as_array().unwrap() {
            let detail = order_detail(&app, &token, item["id"].as_str().unwrap()).await;
            assert_eq!((&detail["paymentStatus"], &detail["paymentMethod"]), (&json!(1), &json!(3)));
            let (amount, fee, total) = rebill(&detail, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
            assert_eq!((fen(&detail["amount"]), fen(&detail["serviceFee"]), fen(&detail["totalAmount"])), (amount, fee, total));
            totals.push(total);
        }
        totals
    };
    // Newest first: yesterday 19:00–20:00, 20 kWh 平 (14.00 + 2.10); three days ago 10:30–11:30, 15 kWh 峰 + 15 kWh 尖 (15.75 + 18.75 + 5.18).
    assert_eq!(past_totals, [16_10, 39_68]);

    // 按电量 2 kWh from the balance.
    let order = charging(&app, &token, 4, json!(2), 3).await;
    let detail = until_ended(&app, &token, &order, 2).await;
    assert_eq!((&detail["status"], &detail["stopReason"], &detail["powerConsumption"]), (&json!(2), &json!(4), &json!(2.0)), "{detail}");
    assert_eq!(wh(&detail["peakElectricity"]), 2000, "{detail}");
    let (amount, fee, total) = rebill(&detail, BR001_FEN_PER_KWH, BR001_FEE_PERCENT);
    assert_eq!((amount, fee, total), (210, 32, 242));
    assert_eq!(fen(&detail["totalAmount"]), total);

    let paid = ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 3 })).await);
    assert_eq!(
        (&paid["paymentStatus"], &paid["paymentMethod"], &paid["paymentUrl"], &paid["qrCodeUrl"], &paid["orderId"]),
        (&json!(2), &json!(3), &json!(null), &json!(null), &json!(order))
    );
    assert_eq!(fen(&paid["amount"]), total);
    assert_eq!(balance(&app, &token).await, DEMO_BALANCE_FEN - total);
    // Once only.
    refused(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 3 })).await, 409, 4003);
    refused(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 1 })).await, 409, 4003);
    assert_eq!(balance(&app, &token).await, DEMO_BALANCE_FEN - total);
    let payment = paid["paymentId"].as_str().unwrap();
    let status = ok(&app.get(&format!("/api/payment/{payment}/status"), Some(&token)).await);
    assert_eq!((&status["paymentStatus"], &status["paymentMethod"], &status["transactionId"]), (&json!(2), &json!(3), &json!(null)), "{status}");
    let detail = order_detail(&app, &token, &order).await;
    assert_eq!((&detail["paymentStatus"], &detail["paymentMethod"]), (&json!(1), &json!(3)));
    assert!(detail["paymentTime"].is_string());

    // Statistics of all time: the two demo sessions and this one.
    let stats = ok(&app.get(&format!("{STATISTICS}?period=all"), Some(&token)).await);
    let sum = past_totals.iter().sum::<i64>() + total;
    assert_eq!((&stats["totalChargingTimes"], &stats["totalPowerConsumption"]), (&json!(3), &json!(52.0)), "{stats}");
    assert_eq!(fen(&stats["totalAmount"]), sum, "{stats}");
    assert_eq!(fen(&stats["averageAmount"]), (sum * 2 + 3) / 6, "half up: {stats}");
    assert_eq!(stats["averagePowerConsumption"], json!(17.333));
    let trend = stats["chargingTrend"].as_array().unwrap();
    assert_eq!(trend.len(), 3, "{stats}");
    assert_eq!(trend[2], json!({ "date": beijing_today(&app), "chargingTimes": 1, "powerConsumption": 2.0, "amount": detail["totalAmount"] }));
    assert!(trend[0]["date"].as_str() < trend[1]["date"].as_str());

    // The list: newest first, by status, by Beijing date, paged.
    let today = beijing_today(&app);
    let all = ok(&app.get(ORDERS, Some(&token)).await);
    assert_eq!((&all["total"], &all["list"][0]["id"]), (&json!(3), &json!(order)));
    assert_eq!(ok(&app.get(&format!("{ORDERS}?status=2"), Some(&token)).await)["total"], json!(3));
    assert_eq!(ok(&app.get(&format!("{ORDERS}?status=1"), Some(&token)).await)["total"], json!(0));
    let dated = ok(&app.get(&format!("{ORDERS}?startDate={today}&endDate={today}"), Some(&token)).await);
    assert_eq!((&dated["total"], &dated["list"][0]["id"]), (&json!(1), &json!(order)));
    assert_eq!(ok(&app.get(&format!("{ORDERS}?endDate=2020-01-01"), Some(&token)).await)["total"], json!(0));
    let paged = ok(&app.get(&format!("{ORDERS}?pageNum=2&pageSize=2"), Some(&token)).await);
    assert_eq!((&paged["total"], &paged["pages"], &paged["pageNum"]), (&json!(3), &json!(2), &json!(2)));
    assert_eq!(paged["list"].as_array().unwrap().len(), 1);
    refused(&app.get(&format!("{ORDERS}?startDate=2026-02-01&endDate=2026-01-01"), Some(&token)).await, 400, 400);
    refused(&app.get(&format!("{ORDERS}?startDate=01/02/2026"), Some(&token)).await, 400, 400);
    // Another user's orders are not listed, nor readable.
    let other = driver(&app, "journey-someone-else").await;
    assert_eq!(ok(&app.get(ORDERS, Some(&other)).await)["total"], json!(0));
    refused(&app.get(&format!("/api/order/{order}"), Some(&other)).await, 403, 403);
    refused(&app.get(&format!("/api/order/{order}/status"), Some(&other)).await, 403, 403);
    refused(&app.get("/api/order/ORD0000000000000000", Some(&other)).await, 404, 3001);
}

#[tokio::test]
async fn an_order_paid_from_the_balance_has_no_transaction_id() {
    let app = TestApp::charging().await;
    let token = demo(&app).await;
    let detail = finished_session(&app, &token, 3).await;
    let order = detail["id"].as_str().unwrap();
    ok(&app.post(PAY, Some(&token), json!({ "orderId": order, "paymentMethod": 3 })).await);
    let detail = order_detail(&app, &token, order).await;
    assert_eq!((&detail["paymentStatus"], &detail["transactionId"]), (&json!(1), &json!(null)), "{detail}");
}

/// Paging through a crowded radius: 200 generated stations over greater Shenzhen, read seven
/// at a time, give the same stations in the same order (nearest first) as one page of 100,
/// each page's items are the next ones, and a page past the end is empty with the same total.
#[tokio::test]
async fn nearby_pages_follow_one_order_through_a_crowded_radius() {
    let app = TestApp::charging().await;
    assert!(mpapi::charging::seed::bench(&app.server.db, 200, app.server.clock.now_ms()).await.unwrap());
    let token = driver(&app, "journey-pages").await;
    let at = format!("{NEARBY}?latitude=22.65&longitude=114.05&radius=20000");
    let whole = ok(&app.get(&format!("{at}&pageNum=1&pageSize=100"), Some(&token)).await);
    let total = whole["total"].as_i64().unwrap();
    assert!(total > 30 && total <= 100, "{total} stations within 20 km: the test wants several pages of 7 and one of 100");
    let ids = |page: &Value| -> Vec<(String, f64)> {
        page["list"].as_array().unwrap().iter().map(|s| (s["id"].as_str().unwrap().to_owned(), s["distance"].as_f64().unwrap())).collect()
    };
    let expected = ids(&whole);
    assert_eq!(expected.len() as i64, total);
    assert!(expected.windows(2).all(|w| w[0].1 <= w[1].1), "{expected:?}");
    let mut paged = Vec::new();
    let pages = (total + 6) / 7;
    for number in 1..=pages + 1 {
        let page = ok(&app.get(&format!("{at}&pageNum={number}&pageSize=7"), Some(&token)).await);
        assert_eq!((page["total"].as_i64(), page["pages"].as_i64()), (Some(total), Some(pages)));
        let items = ids(&page);
        assert_eq!(items.len() as i64, if number <= pages { (total - (number - 1) * 7).min(7) } else { 0 }, "page {number}");
        paged.extend(items);
    }
    assert_eq!(paged, expected);
}
