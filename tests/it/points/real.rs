//! Points with every provider real — code2Session and WeChat Pay v3 at wiremock stand-ins that
//! check each request down to its signature and sign their answers like WeChat: the sandbox
//! routes are gone, logins go through jscode2session (user data opened with the session_key it
//! gave), orders are JSAPI prepays whose paySign verifies, a late notify is replaced by the
//! order query, and a refund goes through the shared `Payments::refund`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use mpapi::config::{ProviderKind, WechatLoginConfig};
use mpapi::payments::Payments;
use mpapi::storage::payments::RefundState;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::*;
use crate::app::TestApp;
use crate::providers::{APPID, MCHID, MerchantSignature, PayFixture, pay_fixture, signed_response};

const NOTIFY_URL: &str = "https://pay.example.com/api/v1/points/payment-notify";
const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const PREPAY_ID: &str = "wx201410272009395522657a690389285100";

/// The stand-ins and the app configured against them.
struct Real {
    wechat: MockServer,
    pay: PayFixture,
    app: TestApp,
}

async fn real() -> Real {
    let wechat = MockServer::start().await;
    let pay = pay_fixture(&wechat);
    let wechat_uri = wechat.uri();
    let pay_config = pay.config.clone();
    let app = TestApp::spawn("points", |c| {
        let points = c.apis.get_mut("points").unwrap();
        points.appid = APPID.into();
        points.wechat_login = WechatLoginConfig { provider: ProviderKind::Real, base_url: wechat_uri, secret: Some("app-secret".into()) };
        points.wechat_pay = pay_config;
        points.wechat_pay.notify_base_url = Some("https://pay.example.com".into());
    })
    .await;
    Real { wechat, pay, app }
}

impl Real {
    /// jscode2session answers `openid` (and [`SESSION_KEY`]) for `code`.
    async fn wx_login(&self, code: &str, openid: &str) {
        Mock::given(method("GET"))
            .and(path("/sns/jscode2session"))
            .and(query_param("appid", APPID))
            .and(query_param("secret", "app-secret"))
            .and(query_param("js_code", code))
            .and(query_param("grant_type", "authorization_code"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"openid": openid, "session_key": SESSION_KEY})))
            .mount(&self.wechat)
            .await;
    }

    /// jscode2session answers `answer` for `code`.
    async fn wx_refuse(&self, code: &str, answer: ResponseTemplate) {
        Mock::given(method("GET")).and(path("/sns/jscode2session")).and(query_param("js_code", code)).respond_with(answer).mount(&self.wechat).await;
    }

    /// Log in as `openid` with a fresh code; the token.
    async fn login(&self, code: &str, openid: &str) -> String {
        self.wx_login(code, openid).await;
        login(&self.app, code).await
    }

    /// JSAPI orders of `total` fen for `openid` are accepted (signed request, payer, notify URL
    /// as expected); `times` of them exactly.
    async fn accept_orders(&self, openid: &str, total: i64, times: u64) {
        Mock::given(method("POST"))
            .and(path("/v3/pay/transactions/jsapi"))
            .and(MerchantSignature { public_key: self.pay.merchant_public.clone() })
            .and(body_partial_json(json!({"appid": APPID, "mchid": MCHID, "payer": {"openid": openid}, "notify_url": NOTIFY_URL, "amount": {"total": total}})))
            .respond_with(signed_response(&self.pay.platform, 200, format!(r#"{{"prepay_id":"{PREPAY_ID}"}}"#).as_bytes()))
            .expect(times)
            .mount(&self.wechat)
            .await;
    }

    /// A notify WeChat Pay would send about `resource` (its `original_type`), signed now by the
    /// app's clock.
    fn notify(&self, id: &str, event_type: &str, original_type: &str, resource: &Value) -> (HeaderMap, Vec<u8>) {
        let resource = self.pay.platform.encrypt_resource(resource.to_string().as_bytes(), original_type).unwrap();
        let body = json!({"id": id, "create_time": "2026-12-03T15:55:28+08:00", "event_type": event_type,
            "resource_type": "encrypt-resource", "summary": "支付成功", "resource": resource});
        let body = body.to_string().into_bytes();
        (self.pay.platform.sign_notify(&body, self.app.server.clock.now()).unwrap(), body)
    }

    fn paid(out_trade_no: &str, fen: i64, transaction_id: &str) -> Value {
        json!({"appid": APPID, "mchid": MCHID, "out_trade_no": out_trade_no, "transaction_id": transaction_id,
            "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "success_time": "2026-12-03T15:55:28+08:00", "payer": {"openid": "o_points_payer"},
            "amount": {"total": fen, "payer_total": fen, "currency": "CNY", "payer_currency": "CNY"}})
    }

    /// The payments the router uses (points' merchant and settle, the same database); points
    /// itself never refunds, so a refund is asked here.
    fn payments(&self) -> Arc<Payments> {
        let parts = self.app.parts("points");
        self.app.server.payments(&parts, self.app.address.port(), NOTIFY, Arc::new(mpapi::storage::points::Settler))
    }

    /// The last request WeChat received at `path`, waiting up to 5 s for it.
    async fn request_to(&self, wanted: &str) -> Value {
        for _ in 0..100 {
            let requests = self.wechat.received_requests().await.unwrap();
            if let Some(request) = requests.iter().rev().find(|r| r.url.path() == wanted) {
                return serde_json::from_slice(&request.body).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no request reached {wanted}");
    }
}

#[tokio::test]
async fn auth_wechat_login_with_code2session() {
    let real = real().await;
    let app = &real.app;
    // No sandbox: its routes are gone, and no demo user was seeded.
    let sandbox = &app.parts("points").sandbox;
    assert!(sandbox.login_appid.is_none() && sandbox.pays.is_empty(), "{sandbox:?}");
    assert_eq!(app.client.get(app.url("/_sandbox/wechat/encrypt?code=a&data={}")).send().await.unwrap().status(), 404);
    assert_eq!(app.client.post(app.url("/_sandbox/pay/PT1")).send().await.unwrap().status(), 404);
    assert_eq!(app.server.db.points_users().get(mpapi::points::seed::DEMO_USER).await.unwrap(), None);
    assert_eq!(app.get(NOTICE, None).await.data()["hasNotice"], false);

    // The code WeChat knows: a new user.
    real.wx_login("wx-login-1", "o_points_0001").await;
    let first = app.post(LOGIN, None, json!({"code": "wx-login-1"})).await;
    assert_eq!((first.status, first.data()["isNewUser"].as_bool()), (200, Some(true)), "{}", first.body);
    // The next wx.login, with getUserProfile and getPhoneNumber data sealed with the session_key
    // WeChat gave that login: the same user, the profile stored.
    real.wx_login("wx-login-2", "o_points_0001").await;
    let data = json!({"nickName": "张三", "avatarUrl": "https://x.example/a.png", "purePhoneNumber": "13800138000"});
    let now = app.server.clock.now().timestamp();
    let (encrypted_data, iv) = mpapi::identity::wechat::seal(&SecretString::from(SESSION_KEY), &data, APPID, now).unwrap();
    let second = app.post(LOGIN, None, json!({"code": "wx-login-2", "encryptedData": encrypted_data, "iv": iv})).await;
    assert_eq!((second.status, second.data()["isNewUser"].as_bool()), (200, Some(false)), "{}", second.body);
    assert_eq!(second.data()["userInfo"], json!({"userId": first.data()["userInfo"]["userId"], "nickName": "张三", "avatarUrl": "https://x.example/a.png"}));
    let info = user_info(app, second.data()["token"].as_str().unwrap()).await;
    assert_eq!(info["userInfo"]["bindingStatus"], json!({"phone": true, "email": false}));
    // Data sealed for another mini-program (its watermark's appid) is refused.
    real.wx_login("wx-login-3", "o_points_0001").await;
    let (encrypted_data, iv) = mpapi::identity::wechat::seal(&SecretString::from(SESSION_KEY), &data, "wx0000000000000000", now).unwrap();
    let foreign = app.post(LOGIN, None, json!({"code": "wx-login-3", "encryptedData": encrypted_data, "iv": iv})).await;
    assert_eq!((foreign.status, foreign.code()), (422, 422), "{}", foreign.body);

    // WeChat's refusals: a bad code, a risky user (422); WeChat busy or down, our appsecret
    // refused (500).
    real.wx_refuse("used-code", ResponseTemplate::new(200).set_body_json(json!({"errcode": 40029, "errmsg": "invalid code"}))).await;
    real.wx_refuse("risky-code", ResponseTemplate::new(200).set_body_json(json!({"errcode": 40226, "errmsg": "high risk user"}))).await;
    real.wx_refuse("busy-code", ResponseTemplate::new(200).set_body_json(json!({"errcode": -1, "errmsg": "system error"}))).await;
    real.wx_refuse("down-code", ResponseTemplate::new(502)).await;
    // Our own secret refused: no new wx.login would help the user, so not a 422.
    real.wx_refuse("secret-code", ResponseTemplate::new(200).set_body_json(json!({"errcode": 40125, "errmsg": "invalid appsecret"}))).await;
    let expectations = [
        ("used-code", 422, "code无效或已过期，请重新调用wx.login获取"),
        ("risky-code", 422, "登录失败：微信判定为高风险用户，请稍后再试"),
        ("busy-code", 500, "微信服务繁忙，请稍后重试"),
        ("down-code", 500, "微信服务繁忙，请稍后重试"),
        ("secret-code", 500, "微信服务繁忙，请稍后重试"),
    ];
    for (code, status, message) in expectations {
        let refused = app.post(LOGIN, None, json!({"code": code})).await;
        assert_eq!((refused.status, refused.code(), refused.body["message"].as_str()), (status, status as i64, Some(message)), "{code}: {}", refused.body);
    }
}

#[tokio::test]
async fn points_order_create_pays_as_the_wechat_login_its_session_began_with() {
    use sea_orm::ConnectionTrait as _;
    let real = real().await;
    let app = &real.app;
    let token = real.login("wx-payer-1", "o_points_payer").await;
    // The user's WeChat identity now names another openid, straight in the database: the order
    // is still placed for the session's login, so the identity was not read for it.
    let raw = sea_orm::Database::connect(&app.server.config.database_url).await.unwrap();
    let moved = raw.execute_unprepared("UPDATE wechat_identity SET openid = 'o_identity_row' WHERE openid = 'o_points_payer'").await.unwrap();
    assert_eq!(moved.rows_affected(), 1);
    real.accept_orders("o_points_payer", 3990, 1).await;
    let created = app.post(CREATE_ORDER, Some(&token), json!({"packageId": "pkg_standard_5000"})).await;
    assert_eq!(created.status, 200, "{}", created.body);
    // A session started before sessions recorded the openid: the payer is read from the identity.
    assert_eq!(raw.execute_unprepared("UPDATE session SET openid = NULL").await.unwrap().rows_affected(), 1);
    real.accept_orders("o_identity_row", 990, 1).await;
    let created = app.post(CREATE_ORDER, Some(&token), json!({"packageId": "pkg_basic_1000"})).await;
    assert_eq!(created.status, 200, "{}", created.body);
}

#[tokio::test]
async fn points_order_create_places_a_jsapi_order_with_wechat_pay() {
    let real = real().await;
    let app = &real.app;
    let token = real.login("wx-order-1", "o_points_payer").await;
    // Placed once (the stand-in expects one JSAPI order): asking again answers the prepay_id
    // recorded.
    real.accept_orders("o_points_payer", 3990, 1).await;
    let created = app.post(CREATE_ORDER, Some(&token), json!({"packageId": "pkg_standard_5000"})).await;
    assert_eq!(created.status, 200, "{}", created.body);
    let order_id = created.data()["orderId"].as_str().unwrap().to_owned();
    let params = &created.data()["paymentInfo"];
    assert_eq!((params["appId"].as_str(), params["package"].as_str(), params["signType"].as_str()), (Some(APPID), Some(format!("prepay_id={PREPAY_ID}").as_str()), Some("RSA")));
    let message = format!("{}\n{}\n{}\n{}\n", params["appId"].as_str().unwrap(), params["timeStamp"].as_str().unwrap(), params["nonceStr"].as_str().unwrap(), params["package"].as_str().unwrap());
    let signature = base64::engine::general_purpose::STANDARD.decode(params["paySign"].as_str().unwrap()).unwrap();
    real.pay.merchant_public.verify_sig(message.as_bytes(), &signature).expect("paySign verifies with the merchant's key");
    let placed = real.request_to("/v3/pay/transactions/jsapi").await;
    assert_eq!((placed["out_trade_no"].as_str(), placed["description"].as_str()), (Some(order_id.as_str()), Some("API积分商城 标准套餐")));
    // Asking again answers the same order.
    let again = app.post(CREATE_ORDER, Some(&token), json!({"packageId": "pkg_standard_5000"})).await;
    assert_eq!((again.status, again.data()["orderId"].as_str()), (200, Some(order_id.as_str())), "{}", again.body);
    // WeChat Pay's notify, signed with its key, credits the points.
    let (headers, notify) = real.notify("EV-points-1", "TRANSACTION.SUCCESS", "transaction", &Real::paid(&order_id, 3990, "4200000000000000000000008001"));
    let (status, ack) = post_notify(app, &headers, notify).await;
    assert_eq!((status, ack["code"].as_str()), (200, Some("SUCCESS")), "{ack}");
    assert_eq!(check_payment(app, &token, &order_id).await, json!({"isPaid": true, "points": 5000, "expiryDate": year_end(app)}));
    // WeChat Pay refusing an order it never had fails it: the user is told, nothing is pending.
    Mock::given(method("POST"))
        .and(path("/v3/pay/transactions/jsapi"))
        .and(body_partial_json(json!({"amount": {"total": 990}})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"code": "PARAM_ERROR", "message": "参数错误"})))
        .mount(&real.wechat)
        .await;
    let refused = app.post(CREATE_ORDER, Some(&token), json!({"packageId": "pkg_basic_1000"})).await;
    assert_eq!((refused.status, refused.code()), (500, 500), "{}", refused.body);
    assert_eq!(balance(app, &token).await, 5000);
}

#[tokio::test]
async fn points_payment_check_asks_wechat_pay_when_the_notify_is_late() {
    let real = real().await;
    let app = &real.app;
    let token = real.login("wx-order-2", "o_points_payer").await;
    real.accept_orders("o_points_payer", 990, 1).await;
    let order_id = order(app, &token, "pkg_basic_1000").await;
    // No notify came. WeChat Pay, asked, says it is paid — asked once.
    Mock::given(method("GET"))
        .and(path(format!("/v3/pay/transactions/out-trade-no/{order_id}")))
        .and(query_param("mchid", MCHID))
        .and(MerchantSignature { public_key: real.pay.merchant_public.clone() })
        .respond_with(signed_response(&real.pay.platform, 200, Real::paid(&order_id, 990, "4200000000000000000000008002").to_string().as_bytes()))
        .expect(1)
        .mount(&real.wechat)
        .await;
    assert_eq!(check_payment(app, &token, &order_id).await["isPaid"], false, "a fresh order is not queried yet");
    app.server.clock.advance(Duration::from_secs(6));
    assert_eq!(check_payment(app, &token, &order_id).await, json!({"isPaid": true, "points": 1000, "expiryDate": year_end(app)}));
    assert_eq!(check_payment(app, &token, &order_id).await["points"], 1000, "paid now: not asked again, not credited again");
    // The notify, when it finally comes, changes nothing.
    let (headers, notify) = real.notify("EV-points-2", "TRANSACTION.SUCCESS", "transaction", &Real::paid(&order_id, 990, "4200000000000000000000008002"));
    assert_eq!(post_notify(app, &headers, notify).await.0, 200);
    assert_eq!(balance(app, &token).await, 1000);
    assert_eq!(purchases(app, &token).await["list"][0]["status"], "paid");
}

/// Answers a refund request as WeChat Pay does: PROCESSING, its number echoed, signed.
struct RefundAccepted(Arc<mpapi::providers::wechat_pay::sandbox::PlatformSigner>);

impl Respond for RefundAccepted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let asked: Value = serde_json::from_slice(&request.body).unwrap();
        let answer = json!({"refund_id": "50000000382019052709732678859", "out_refund_no": asked["out_refund_no"],
            "transaction_id": "4200000000000000000000008003", "out_trade_no": asked["out_trade_no"], "channel": "ORIGINAL",
            "user_received_account": "招商银行信用卡0403", "create_time": "2026-12-03T16:00:00+08:00", "status": "PROCESSING",
            "amount": {"total": asked["amount"]["total"], "refund": asked["amount"]["refund"], "payer_total": asked["amount"]["total"],
                "payer_refund": asked["amount"]["refund"], "currency": "CNY"}});
        signed_response(&self.0, 200, answer.to_string().as_bytes())
    }
}

#[tokio::test]
async fn payments_refund_a_points_order_with_wechat_pay() {
    let real = real().await;
    let app = &real.app;
    let token = real.login("wx-order-3", "o_points_payer").await;
    real.accept_orders("o_points_payer", 990, 1).await;
    let order_id = order(app, &token, "pkg_basic_1000").await;
    let (headers, notify) = real.notify("EV-points-3", "TRANSACTION.SUCCESS", "transaction", &Real::paid(&order_id, 990, "4200000000000000000000008003"));
    assert_eq!(post_notify(app, &headers, notify).await.0, 200);
    assert_eq!(balance(app, &token).await, 1000);
    // An operator refunds it in full through the shared payments block.
    Mock::given(method("POST"))
        .and(path("/v3/refund/domestic/refunds"))
        .and(MerchantSignature { public_key: real.pay.merchant_public.clone() })
        .and(body_partial_json(json!({"out_trade_no": order_id, "notify_url": NOTIFY_URL, "amount": {"refund": 990, "total": 990, "currency": "CNY"}})))
        .respond_with(RefundAccepted(real.pay.platform.clone()))
        .expect(1)
        .mount(&real.wechat)
        .await;
    let paid = app.server.db.payments().get(&order_id).await.unwrap().unwrap();
    let started = real.payments().refund(&paid, 990, "用户申请退款").await.expect("WeChat Pay accepts the refund");
    assert!(started.is_some(), "the refund was started");
    let asked = real.request_to("/v3/refund/domestic/refunds").await;
    assert_eq!(asked["reason"], "用户申请退款");
    let stored = app.server.db.payments().get(&order_id).await.unwrap().unwrap();
    assert_eq!(stored.refund_state, RefundState::Processing, "{stored:?}");
    // A second refund of the same order is not started while this one runs.
    assert!(real.payments().refund(&stored, 990, "again").await.unwrap().is_none());
    // WeChat Pay tells points' notify URL (the one the refund was asked with) it is done; a
    // redelivery changes nothing.
    let out_refund_no = asked["out_refund_no"].as_str().unwrap().to_owned();
    let refunded = json!({"mchid": MCHID, "out_trade_no": order_id, "transaction_id": "4200000000000000000000008003",
        "out_refund_no": out_refund_no, "refund_id": "50000000382019052709732678859", "refund_status": "SUCCESS",
        "success_time": "2026-12-03T16:00:05+08:00", "user_received_account": "招商银行信用卡0403",
        "amount": {"total": 990, "refund": 990, "payer_total": 990, "payer_refund": 990}});
    let (headers, notify) = real.notify("EV-points-refund-3", "REFUND.SUCCESS", "refund", &refunded);
    assert_eq!(post_notify(app, &headers, notify.clone()).await.0, 200);
    assert_eq!(post_notify(app, &headers, notify).await.0, 200);
    let stored = app.server.db.payments().get(&order_id).await.unwrap().unwrap();
    assert_eq!((stored.refund_state, stored.refunded_fen), (RefundState::Refunded, 990), "{stored:?}");
    // The refunded order no longer reads paid.
    assert_eq!(check_payment(app, &token, &order_id).await["isPaid"], false);
    assert_eq!(purchases(app, &token).await["list"][0]["status"], "failed");
}

#[tokio::test]
async fn points_payment_check_polled_asks_wechat_pay_once_per_five_seconds() {
    let real = real().await;
    let app = &real.app;
    let token = real.login("wx-order-4", "o_points_payer").await;
    real.accept_orders("o_points_payer", 990, 1).await;
    let order_id = order(app, &token, "pkg_basic_1000").await;
    let mut unpaid = Real::paid(&order_id, 990, "unused");
    let unpaid = unpaid.as_object_mut().unwrap();
    unpaid.remove("transaction_id");
    unpaid.remove("success_time");
    unpaid.insert("trade_state".into(), json!("NOTPAY"));
    unpaid.insert("trade_state_desc".into(), json!("未支付"));
    let unpaid = serde_json::Value::Object(unpaid.clone());
    Mock::given(method("GET"))
        .and(path(format!("/v3/pay/transactions/out-trade-no/{order_id}")))
        .respond_with(signed_response(&real.pay.platform, 200, unpaid.to_string().as_bytes()))
        // Two; a third if the fifteen polls outlast five real seconds (a loaded machine).
        .expect(2..=3)
        .mount(&real.wechat)
        .await;
    app.server.clock.advance(Duration::from_secs(6));
    // A mini-program polling hard: ten polls at once, then five more, all within five seconds.
    let polls = join_all((0..10).map(|_| check_payment(app, &token, &order_id)).collect()).await;
    assert!(polls.iter().all(|poll| poll["isPaid"] == false));
    for _ in 0..5 {
        assert_eq!(check_payment(app, &token, &order_id).await["isPaid"], false);
    }
    // Five seconds on, the next poll asks again.
    app.server.clock.advance(Duration::from_secs(5));
    assert_eq!(check_payment(app, &token, &order_id).await["isPaid"], false);
}
