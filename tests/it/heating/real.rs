//! Heating with every provider real — Aliyun SMS, code2Session and WeChat Pay v3 at wiremock
//! stand-ins that check each request down to its signature and sign their answers like WeChat:
//! the sandbox routes are gone, codes travel through Aliyun, and heating takes real money, the
//! payer's openid coming from a `wx.login` code on `payment_create` (our contract extension).

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use mpapi::config::{ProviderKind, WechatLoginConfig};
use mpapi::storage::payments::RefundState;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::{bind_body, fen_of, order_body, post_notify, status_of};
use crate::app::TestApp;
use crate::providers::{APPID, MCHID, MerchantSignature, PayFixture, pay_fixture, signed_response};

const NOTIFY_URL: &str = "https://pay.example.com/api/payment/notify";
const DEMO_PHONE: &str = "13800138000";

/// The stand-ins and the app configured against them.
struct Real {
    aliyun: MockServer,
    wechat: MockServer,
    pay: PayFixture,
    app: TestApp,
}

async fn real() -> Real {
    let aliyun = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("Action", "SendSms"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Code": "OK", "Message": "OK", "BizId": "1", "RequestId": "r"})))
        .mount(&aliyun)
        .await;
    let wechat = MockServer::start().await;
    let pay = pay_fixture(&wechat);
    let wechat_uri = wechat.uri();
    let pay_config = pay.config.clone();
    let app = TestApp::spawn("heating", |c| {
        c.sms.provider = ProviderKind::Real;
        c.sms.endpoint = aliyun.uri();
        c.sms.access_key_id = "LTAI_test_id".into();
        c.sms.access_key_secret = Some("aliyun-test-secret".into());
        c.sms.sign_name = "供暖缴费".into();
        c.sms.template_code = "SMS_123456789".into();
        let heating = c.apis.get_mut("heating").unwrap();
        heating.appid = APPID.into();
        heating.wechat_login = WechatLoginConfig { provider: ProviderKind::Real, base_url: wechat_uri, secret: Some("app-secret".into()) };
        heating.wechat_pay = pay_config;
        heating.wechat_pay.notify_base_url = Some("https://pay.example.com".into());
        // Real payments seed no demo accounts unless asked (their owners' IDs are public).
        c.demo_data = Some(true);
    })
    .await;
    Real { aliyun, wechat, pay, app }
}

impl Real {
    /// The code Aliyun was last asked to send.
    async fn last_code(&self) -> String {
        let requests = self.aliyun.received_requests().await.unwrap();
        let request = requests.last().expect("a SendSms request");
        let template = request.url.query_pairs().find(|(k, _)| k == "TemplateParam").unwrap().1.into_owned();
        serde_json::from_str::<Value>(&template).unwrap()["code"].as_str().unwrap().to_owned()
    }

    /// Log the demo user in (one code through Aliyun); the access token.
    async fn demo_login(&self) -> String {
        let app = &self.app;
        assert_eq!(app.post("/api/sms/send", None, json!({"phone": DEMO_PHONE, "type": "login"})).await.status, 200);
        let login = app.post("/api/auth/login", None, json!({"phone": DEMO_PHONE, "code": self.last_code().await})).await;
        assert_eq!(login.status, 200, "{}", login.body);
        login.data()["token"].as_str().unwrap().to_owned()
    }

    /// Log the demo user in and bind H202400001; the access token.
    async fn demo_owner(&self) -> String {
        let app = &self.app;
        let token = self.demo_login().await;
        let bound = app.post("/api/heat/bind", Some(&token), bind_body("张三", super::OWNER_ID)).await;
        assert_eq!(bound.status, 200, "{}", bound.body);
        token
    }

    /// code2Session answers `openid` for `code`.
    async fn wx_login(&self, code: &str, openid: &str) {
        Mock::given(method("GET"))
            .and(path("/sns/jscode2session"))
            .and(query_param("appid", APPID))
            .and(query_param("js_code", code))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"openid": openid, "session_key": "tiihtNczf5v6AKRyjwEUhQ=="})))
            .mount(&self.wechat)
            .await;
    }

    /// JSAPI orders are accepted (signed request, payer and notify URL as expected); `times` of
    /// them exactly.
    async fn accept_orders(&self, openid: &str, times: u64) {
        Mock::given(method("POST"))
            .and(path("/v3/pay/transactions/jsapi"))
            .and(MerchantSignature { public_key: self.pay.merchant_public.clone() })
            .and(body_partial_json(json!({"appid": APPID, "mchid": MCHID, "payer": {"openid": openid}, "notify_url": NOTIFY_URL})))
            .respond_with(signed_response(&self.pay.platform, 200, br#"{"prepay_id":"wx201410272009395522657a690389285100"}"#))
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

    /// The refund request WeChat Pay received (waiting up to 20 s for it: it is sent in the
    /// background).
    async fn refund_request(&self) -> Value {
        for _ in 0..400 {
            let requests = self.wechat.received_requests().await.unwrap();
            if let Some(request) = requests.iter().rev().find(|r| r.url.path() == "/v3/refund/domestic/refunds") {
                return serde_json::from_slice(&request.body).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no refund request reached WeChat Pay");
    }

    /// A live order of the demo owner for its unpaid bill, placed with WeChat Pay; its number
    /// and amount in fen.
    async fn placed_order(&self, token: &str, code: &str) -> (String, i64) {
        self.wx_login(code, "o_payer_0001").await;
        let mut body = order_body(&self.app, token).await;
        body["wx_code"] = json!(code);
        let created = self.app.post("/api/payment/create", Some(token), body).await;
        assert_eq!(created.status, 200, "{}", created.body);
        (created.data()["order_id"].as_str().unwrap().to_owned(), fen_of(&created.data()["amount"]))
    }

    /// The same payments the router uses (its merchant, its database), for housekeeping.
    fn payments(&self) -> std::sync::Arc<mpapi::payments::Payments> {
        let parts = self.app.parts("heating");
        self.app.server.payments(&parts, self.app.address.port(), "/api/payment/notify", std::sync::Arc::new(mpapi::storage::heating::Settler))
    }

    fn paid(out_trade_no: &str, fen: i64, transaction_id: &str) -> Value {
        json!({"appid": APPID, "mchid": MCHID, "out_trade_no": out_trade_no, "transaction_id": transaction_id,
            "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "success_time": "2026-12-03T15:55:28+08:00", "payer": {"openid": "o_payer_0001"},
            "amount": {"total": fen, "payer_total": fen, "currency": "CNY", "payer_currency": "CNY"}})
    }
}

#[tokio::test]
async fn real_providers_replace_the_sandbox() {
    let real = real().await;
    let app = &real.app;
    assert!(!app.parts("heating").sandbox.is_active());
    for route in ["/_sandbox/sms?phone=13800000000", "/_sandbox/wechat/encrypt?code=a&data={}"] {
        assert_eq!(app.client.get(app.url(route)).send().await.unwrap().status(), 404, "{route}");
    }
    assert_eq!(app.client.post(app.url("/_sandbox/pay/O1")).send().await.unwrap().status(), 404);
    // The index page lists no sandbox route, and its first call sends nobody an SMS.
    let page = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("_sandbox") && page.contains("demo user 13800138000"), "{page}");
    assert_eq!(crate::support::page_commands(&page), vec![format!("curl -s {}/api/config/system", app.url(""))]);
    // The code Aliyun was asked to send is the one that registers.
    let phone = "13800000000";
    let sent = app.post("/api/sms/send", None, json!({"phone": phone, "type": "register"})).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let registered = app.post("/api/auth/register", None, json!({"phone": phone, "code": real.last_code().await, "password": "123456789"})).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    // Aliyun refusing (its flow control) is the document's 1007, and the phone may retry at once.
    real.aliyun.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控"})))
        .mount(&real.aliyun)
        .await;
    app.server.clock.advance(Duration::from_secs(61));
    let refused = app.post("/api/sms/send", None, json!({"phone": phone, "type": "login"})).await;
    assert_eq!((refused.status, refused.code()), (502, 1007), "{}", refused.body);
    let again = app.post("/api/sms/send", None, json!({"phone": phone, "type": "login"})).await;
    assert_eq!((again.status, again.code()), (502, 1007), "not 1008: nothing was sent");
}

#[tokio::test]
async fn payment_create_takes_real_money_with_the_payer_of_a_wx_login_code() {
    let real = real().await;
    let app = &real.app;
    let token = real.demo_owner().await;
    let body = order_body(app, &token).await;
    // Without a payer a real merchant cannot place a JSAPI order: the client is told what to send.
    let no_payer = app.post("/api/payment/create", Some(&token), body.clone()).await;
    assert_eq!((no_payer.status, no_payer.code()), (400, 400), "{}", no_payer.body);
    assert!(no_payer.body["message"].as_str().unwrap().contains("wx_code"), "{}", no_payer.body);
    // A code WeChat refuses.
    Mock::given(method("GET"))
        .and(path("/sns/jscode2session"))
        .and(query_param("js_code", "used-code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"errcode": 40029, "errmsg": "invalid code"})))
        .mount(&real.wechat)
        .await;
    let mut with_code = body.clone();
    with_code["wx_code"] = json!("used-code");
    let refused = app.post("/api/payment/create", Some(&token), with_code.clone()).await;
    assert_eq!((refused.status, refused.body["message"].as_str()), (400, Some("wx_code无效")), "{}", refused.body);
    // The payer's code: code2Session gives the openid the order is placed for — once (the
    // stand-in expects one JSAPI order): asking again answers the prepay_id recorded.
    real.wx_login("wx-code-1", "o_payer_0001").await;
    real.accept_orders("o_payer_0001", 1).await;
    with_code["wx_code"] = json!("wx-code-1");
    let created = app.post("/api/payment/create", Some(&token), with_code).await;
    assert_eq!(created.status, 200, "{}", created.body);
    let order_id = created.data()["order_id"].as_str().unwrap().to_owned();
    let params = &created.data()["wechat_pay_params"];
    assert_eq!((params["appId"].as_str(), params["package"].as_str()), (Some(APPID), Some("prepay_id=wx201410272009395522657a690389285100")));
    let message = format!("{}\n{}\n{}\n{}\n", params["appId"].as_str().unwrap(), params["timeStamp"].as_str().unwrap(), params["nonceStr"].as_str().unwrap(), params["package"].as_str().unwrap());
    let signature = base64::engine::general_purpose::STANDARD.decode(params["paySign"].as_str().unwrap()).unwrap();
    real.pay.merchant_public.verify_sig(message.as_bytes(), &signature).expect("paySign verifies with the merchant's key");
    // Asking again (no code now: the payer is remembered) answers the same order, not a new one.
    let again = app.post("/api/payment/create", Some(&token), body).await;
    assert_eq!((again.status, again.data()["order_id"].as_str()), (200, Some(order_id.as_str())), "{}", again.body);
    // WeChat Pay's notify, signed with its key, pays it.
    let (headers, notify) = real.notify("EV-real-1", "TRANSACTION.SUCCESS", "transaction", &Real::paid(&order_id, fen_of(&created.data()["amount"]), "4200000000000000000000009001"));
    let (status, ack) = post_notify(app, &headers, notify).await;
    assert_eq!((status, ack["code"].as_str()), (200, Some("SUCCESS")), "{ack}");
    assert_eq!(status_of(app, &token, &order_id).await, "paid");
}

#[tokio::test]
async fn payment_status_get_asks_wechat_pay_when_the_notify_is_late() {
    let real = real().await;
    let app = &real.app;
    let token = real.demo_owner().await;
    real.wx_login("wx-code-2", "o_payer_0001").await;
    real.accept_orders("o_payer_0001", 1).await;
    let mut body = order_body(app, &token).await;
    body["wx_code"] = json!("wx-code-2");
    let created = app.post("/api/payment/create", Some(&token), body).await;
    assert_eq!(created.status, 200, "{}", created.body);
    let order_id = created.data()["order_id"].as_str().unwrap().to_owned();
    let fen = fen_of(&created.data()["amount"]);
    // No notify came. WeChat Pay, asked, says it is paid.
    Mock::given(method("GET"))
        .and(path(format!("/v3/pay/transactions/out-trade-no/{order_id}")))
        .and(query_param("mchid", MCHID))
        .and(MerchantSignature { public_key: real.pay.merchant_public.clone() })
        .respond_with(signed_response(&real.pay.platform, 200, Real::paid(&order_id, fen, "4200000000000000000000009002").to_string().as_bytes()))
        .expect(1)
        .mount(&real.wechat)
        .await;
    assert_eq!(status_of(app, &token, &order_id).await, "pending", "a fresh order is not queried yet");
    app.server.clock.advance(Duration::from_secs(6));
    assert_eq!(status_of(app, &token, &order_id).await, "paid");
    // The notify, when it finally comes, changes nothing (and is not queried again).
    let (headers, notify) = real.notify("EV-real-2", "TRANSACTION.SUCCESS", "transaction", &Real::paid(&order_id, fen, "4200000000000000000000009002"));
    assert_eq!(post_notify(app, &headers, notify).await.0, 200);
    assert_eq!(status_of(app, &token, &order_id).await, "paid");
}

/// Answers a refund request as WeChat Pay does: PROCESSING, its number echoed, signed.
struct RefundAccepted(std::sync::Arc<mpapi::providers::wechat_pay::sandbox::PlatformSigner>);

impl Respond for RefundAccepted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let asked: Value = serde_json::from_slice(&request.body).unwrap();
        let answer = json!({"refund_id": "50000000382019052709732678859", "out_refund_no": asked["out_refund_no"],
            "transaction_id": "4200000000000000000000009003", "out_trade_no": asked["out_trade_no"], "channel": "ORIGINAL",
            "user_received_account": "招商银行信用卡0403", "create_time": "2026-12-03T16:00:00+08:00", "status": "PROCESSING",
            "amount": {"total": asked["amount"]["total"], "refund": asked["amount"]["refund"], "payer_total": asked["amount"]["total"],
                "payer_refund": asked["amount"]["refund"], "currency": "CNY"}});
        signed_response(&self.0, 200, answer.to_string().as_bytes())
    }
}

#[tokio::test]
async fn payment_notify_for_bills_another_order_paid_is_refunded() {
    let real = real().await;
    let app = &real.app;
    let token = real.demo_owner().await;
    real.wx_login("wx-code-3", "o_payer_0001").await;
    real.accept_orders("o_payer_0001", 2).await;
    let mut body = order_body(app, &token).await;
    body["wx_code"] = json!("wx-code-3");
    let first = app.post("/api/payment/create", Some(&token), body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let (first_id, first_fen) = (first.data()["order_id"].as_str().unwrap().to_owned(), fen_of(&first.data()["amount"]));
    // The first order runs out; a second one takes the bills and is paid.
    app.server.clock.advance(Duration::from_secs(31 * 60));
    let second = app.post("/api/payment/create", Some(&token), order_body(app, &token).await).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let second_id = second.data()["order_id"].as_str().unwrap().to_owned();
    assert_ne!(second_id, first_id);
    let (headers, notify) = real.notify("EV-real-3", "TRANSACTION.SUCCESS", "transaction", &Real::paid(&second_id, fen_of(&second.data()["amount"]), "4200000000000000000000009004"));
    assert_eq!(post_notify(app, &headers, notify).await.0, 200);
    // Then the first one's payment turns up: the money is taken, the bills are not free, so the
    // whole amount goes back — asked of WeChat Pay at once, with the notify URL for its outcome.
    Mock::given(method("POST"))
        .and(path("/v3/refund/domestic/refunds"))
        .and(MerchantSignature { public_key: real.pay.merchant_public.clone() })
        .and(body_partial_json(json!({"out_trade_no": first_id, "notify_url": NOTIFY_URL, "amount": {"refund": first_fen, "total": first_fen, "currency": "CNY"}})))
        .respond_with(RefundAccepted(real.pay.platform.clone()))
        .expect(1)
        .mount(&real.wechat)
        .await;
    let (headers, notify) = real.notify("EV-real-4", "TRANSACTION.SUCCESS", "transaction", &Real::paid(&first_id, first_fen, "4200000000000000000000009003"));
    let (status, ack) = post_notify(app, &headers, notify).await;
    assert_eq!((status, ack["code"].as_str()), (200, Some("SUCCESS")), "WeChat must stop retrying: {ack}");
    // The refund is asked right after the ack (not before it: WeChat wants its answer fast).
    let asked = real.refund_request().await;
    let order = app.server.db.payments().get(&first_id).await.unwrap().unwrap();
    assert_eq!(order.refund_state, RefundState::Processing, "{order:?}");
    // WeChat Pay's refund notify finishes it.
    let refund = json!({"mchid": MCHID, "out_trade_no": first_id, "transaction_id": "4200000000000000000000009003",
        "out_refund_no": asked["out_refund_no"], "refund_id": "50000000382019052709732678859", "refund_status": "SUCCESS",
        "success_time": "2026-12-03T16:00:05+08:00", "user_received_account": "招商银行信用卡0403",
        "amount": {"total": first_fen, "refund": first_fen, "payer_total": first_fen, "payer_refund": first_fen}});
    let (headers, notify) = real.notify("EV-real-5", "REFUND.SUCCESS", "refund", &refund);
    assert_eq!(post_notify(app, &headers, notify.clone()).await.0, 200);
    assert_eq!(post_notify(app, &headers, notify).await.0, 200, "a redelivered refund notify is fine too");
    let order = app.server.db.payments().get(&first_id).await.unwrap().unwrap();
    assert_eq!((order.refund_state, order.refunded_fen), (RefundState::Refunded, first_fen), "{order:?}");
    assert_eq!(status_of(app, &token, &second_id).await, "paid");
}

#[tokio::test]
async fn housekeeping_finds_a_payment_whose_notify_never_came() {
    let real = real().await;
    let app = &real.app;
    let token = real.demo_owner().await;
    real.accept_orders("o_payer_0001", 1).await;
    let (order_id, fen) = real.placed_order(&token, "wx-code-5").await;
    // The notify was lost; the order runs out. Closing it, WeChat says it is paid; asked, it
    // gives the payment, which settles like its notify would have.
    Mock::given(method("POST"))
        .and(path(format!("/v3/pay/transactions/out-trade-no/{order_id}/close")))
        .and(MerchantSignature { public_key: real.pay.merchant_public.clone() })
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"code": "ORDERPAID", "message": "该订单已支付"})))
        .expect(1)
        .mount(&real.wechat)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v3/pay/transactions/out-trade-no/{order_id}")))
        .respond_with(signed_response(&real.pay.platform, 200, Real::paid(&order_id, fen, "4200000000000000000000009005").to_string().as_bytes()))
        .mount(&real.wechat)
        .await;
    app.server.clock.advance(Duration::from_secs(31 * 60));
    let (swept, _) = mpapi::serve::housekeeping("heating", &real.payments(), &app.server.db, &app.server.clock).await.unwrap();
    assert_eq!((swept.found_paid, swept.closed), (1, 0), "{swept:?}");
    app.server.clock.advance(Duration::from_secs(61));
    let token = real.demo_login().await;
    assert_eq!(status_of(app, &token, &order_id).await, "paid");
}

#[tokio::test]
async fn refunds_wechat_cannot_take_yet_are_asked_again_and_final_refusals_are_recorded() {
    let real = real().await;
    let app = &real.app;
    let token = real.demo_owner().await;
    real.accept_orders("o_payer_0001", 1).await;
    let (order_id, fen) = real.placed_order(&token, "wx-code-6").await;
    let (headers, notify) = real.notify("EV-real-6", "TRANSACTION.SUCCESS", "transaction", &Real::paid(&order_id, fen, "4200000000000000000000009006"));
    assert_eq!(post_notify(app, &headers, notify).await.0, 200);
    let payments = real.payments();
    let order = app.server.db.payments().get(&order_id).await.unwrap().unwrap();
    // The merchant's balance is empty: not final — the refund stays under way, same number.
    Mock::given(method("POST"))
        .and(path("/v3/refund/domestic/refunds"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"code": "NOT_ENOUGH", "message": "基本账户余额不足"})))
        .up_to_n_times(1)
        .mount(&real.wechat)
        .await;
    assert!(payments.refund(&order, fen, "测试退款").await.is_err());
    let stored = app.server.db.payments().get(&order_id).await.unwrap().unwrap();
    assert_eq!(stored.refund_state, RefundState::Processing);
    let asked = real.refund_request().await;
    // A minute later the sweep asks WeChat, which never took it, and asks again with the same
    // number; this time WeChat refuses for good: recorded as failed, for an operator.
    Mock::given(method("GET"))
        .and(path(format!("/v3/refund/domestic/refunds/{}", asked["out_refund_no"].as_str().unwrap())))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"})))
        .mount(&real.wechat)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/refund/domestic/refunds"))
        .and(body_partial_json(json!({"out_refund_no": asked["out_refund_no"]})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"code": "INVALID_REQUEST", "message": "订单已全额退款"})))
        .expect(1)
        .mount(&real.wechat)
        .await;
    app.server.clock.advance(Duration::from_secs(61));
    mpapi::serve::housekeeping("heating", &payments, &app.server.db, &app.server.clock).await.unwrap();
    let stored = app.server.db.payments().get(&order_id).await.unwrap().unwrap();
    assert_eq!((stored.refund_state, stored.refunded_fen), (RefundState::Failed, 0), "{stored:?}");
    // WeChat's own word that it did refund wins over our record of a refusal.
    let refund = json!({"mchid": MCHID, "out_trade_no": order_id, "transaction_id": "4200000000000000000000009006",
        "out_refund_no": asked["out_refund_no"], "refund_id": "50000000382019052709732678860", "refund_status": "SUCCESS",
        "success_time": "2026-12-03T16:00:05+08:00", "user_received_account": "招商银行信用卡0403",
        "amount": {"total": fen, "refund": fen, "payer_total": fen, "payer_refund": fen}});
    let (headers, notify) = real.notify("EV-real-7", "REFUND.SUCCESS", "refund", &refund);
    assert_eq!(post_notify(app, &headers, notify).await.0, 200);
    let stored = app.server.db.payments().get(&order_id).await.unwrap().unwrap();
    assert_eq!((stored.refund_state, stored.refunded_fen), (RefundState::Refunded, fen), "{stored:?}");
}
