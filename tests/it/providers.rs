//! The real providers against wiremock stand-ins of Aliyun SMS, code2Session and WeChat Pay v3
//! (requests checked down to their signatures, answers signed like WeChat's), and the sandbox
//! payment platform delivering verifiable notifies.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{TimeDelta, TimeZone as _, Utc};
use mpapi::clock::Clock;
use mpapi::config::{ProviderKind, SmsConfig, WechatLoginConfig, WechatPayConfig};
use mpapi::providers::sms::{AliyunSms, aliyun_canonical_query, aliyun_signature};
use mpapi::providers::wechat_login::Code2Session;
use mpapi::providers::wechat_pay::sandbox::{PlatformSigner, SandboxOrderState, SandboxPay, SandboxPayError};
use mpapi::providers::wechat_pay::v3::WechatPayV3;
use mpapi::providers::wechat_pay::{
    Merchant, NotifyError, NotifyEvent, PrepayRequest, Refund, RefundNotice, RefundRequest, RefundStatus, TradeState,
    Transaction, WechatPay as _, keys, sign,
};
use mpapi::providers::{ProviderError, SmsProvider as _, WechatLogin as _};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_partial_json, header, method, path, query_param};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

// ---------------------------------------------------------------- Aliyun SMS

const ALIYUN_SECRET: &str = "aliyun-test-secret";

fn aliyun(server: &MockServer) -> AliyunSms {
    AliyunSms::new(&SmsConfig {
        provider: ProviderKind::Real,
        endpoint: server.uri(),
        access_key_id: "LTAI_test_id".into(),
        access_key_secret: Some(ALIYUN_SECRET.into()),
        sign_name: "供暖缴费".into(),
        template_code: "SMS_123456789".into(),
        templates: Default::default(),
    })
    .expect("configured")
}

/// Recomputes Aliyun's signature V1 over the received query and compares it with `Signature`.
struct AliyunSignature;

impl Match for AliyunSignature {
    fn matches(&self, request: &Request) -> bool {
        let mut params: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let Some(signature) = params.remove("Signature") else { return false };
        signature == aliyun_signature("GET", &aliyun_canonical_query(&params), ALIYUN_SECRET)
    }
}

/// Aliyun's `Timestamp`: UTC `YYYY-MM-DDThh:mm:ssZ`, close to now.
struct AliyunTimestamp;

impl Match for AliyunTimestamp {
    fn matches(&self, request: &Request) -> bool {
        request.url.query_pairs().any(|(k, v)| {
            k == "Timestamp"
                && v.len() == 20
                && chrono::NaiveDateTime::parse_from_str(&v, "%Y-%m-%dT%H:%M:%SZ")
                    .is_ok_and(|t| (Utc::now().naive_utc() - t).num_seconds().abs() < 60)
        })
    }
}

#[tokio::test]
async fn aliyun_send_sms_sends_a_signed_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .and(query_param("AccessKeyId", "LTAI_test_id"))
        .and(query_param("Action", "SendSms"))
        .and(query_param("Format", "JSON"))
        .and(query_param("PhoneNumbers", "13800000000"))
        .and(query_param("RegionId", "cn-hangzhou"))
        .and(query_param("SignName", "供暖缴费"))
        .and(query_param("SignatureMethod", "HMAC-SHA1"))
        .and(query_param("SignatureVersion", "1.0"))
        .and(query_param("TemplateCode", "SMS_123456789"))
        .and(query_param("TemplateParam", r#"{"code":"246810"}"#))
        .and(query_param("Version", "2017-05-25"))
        .and(AliyunTimestamp)
        .and(AliyunSignature)
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"Message": "OK", "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990", "Code": "OK", "BizId": "900619746936498440^0"}),
        ))
        .expect(2)
        .mount(&server)
        .await;
    let sms = aliyun(&server);
    for _ in 0..2 {
        sms.send_code("heating", "13800000000", "246810", "login", 300).await.expect("sent");
    }
    // Each request carries its own nonce: Aliyun refuses a replayed SignatureNonce.
    let nonces: Vec<String> = server
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .filter_map(|r| r.url.query_pairs().find(|(k, _)| k == "SignatureNonce").map(|(_, v)| v.into_owned()))
        .collect();
    assert_eq!(nonces.len(), 2);
    assert!(nonces[0].len() >= 16 && nonces[0] != nonces[1]);
}

#[tokio::test]
async fn aliyun_error_code_is_a_vendor_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Message": "触发小时级流控Permits:5", "RequestId": "x", "Code": "isv.BUSINESS_LIMIT_CONTROL"
        })))
        .mount(&server)
        .await;
    match aliyun(&server).send_code("heating", "13800000000", "1", "login", 300).await {
        Err(ProviderError::Vendor { code, message, .. }) => {
            assert_eq!(code, "isv.BUSINESS_LIMIT_CONTROL");
            assert!(message.contains("流控"));
        }
        other => panic!("expected a vendor error, got {other:?}"),
    }
}

#[tokio::test]
async fn aliyun_http_failure_is_a_transport_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let result = aliyun(&server).send_code("heating", "13800000000", "1", "login", 300).await;
    assert!(matches!(result, Err(ProviderError::Transport { .. })), "{result:?}");

    // Nothing listening at all.
    let gone = AliyunSms::new(&SmsConfig {
        endpoint: "http://127.0.0.1:9".into(),
        access_key_id: "id".into(),
        access_key_secret: Some("s".into()),
        sign_name: "s".into(),
        template_code: "t".into(),
        ..SmsConfig::default()
    })
    .expect("configured");
    let result = gone.send_code("heating", "13800000000", "1", "login", 300).await;
    assert!(matches!(result, Err(ProviderError::Transport { .. })), "{result:?}");
}

// ---------------------------------------------------------------- code2Session

fn code2session(server: &MockServer) -> Code2Session {
    Code2Session::new(
        "wx1234567890abcdef",
        &WechatLoginConfig { provider: ProviderKind::Real, base_url: server.uri(), secret: Some("app-secret-value".into()) },
    )
    .expect("configured")
}

#[tokio::test]
async fn code2session_answers_the_openid_even_as_text_plain() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/sns/jscode2session"))
        .and(query_param("appid", "wx1234567890abcdef"))
        .and(query_param("secret", "app-secret-value"))
        .and(query_param("js_code", "0a1b2c"))
        .and(query_param("grant_type", "authorization_code"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"session_key":"tiihtNczf5v6AKRyjwEUhQ==","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","unionid":"oU_union"}"#)
                .insert_header("content-type", "text/plain"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let session = code2session(&server).code2session("0a1b2c").await.expect("logged in");
    assert_eq!(session.openid, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    assert_eq!(session.session_key.expose_secret(), "tiihtNczf5v6AKRyjwEUhQ==");
    assert_eq!(session.unionid.as_deref(), Some("oU_union"));
}

#[tokio::test]
async fn code2session_errcode_is_a_vendor_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/sns/jscode2session"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"errcode":40029,"errmsg":"invalid code, rid: 6763a3f0-1e2b"}"#)
                .insert_header("content-type", "text/plain"),
        )
        .mount(&server)
        .await;
    match code2session(&server).code2session("used").await {
        Err(ProviderError::Vendor { code, message, .. }) => {
            assert_eq!(code, "40029");
            assert!(message.starts_with("invalid code"));
        }
        other => panic!("expected 40029, got {other:?}"),
    }
}

// ---------------------------------------------------------------- WeChat Pay v3

const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000000000";
const APIV3_KEY: &str = "0123456789abcdefghijABCDEFGHIJ01";
pub(crate) const MCHID: &str = "1900000109";
/// The mini-program the test merchant takes payments for.
pub(crate) const APPID: &str = "wxd678efh567hg6787";
const MERCHANT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";

/// Test keys generated with aws-lc-rs and written as PEM files, plus the config pointing at them.
pub(crate) struct PayFixture {
    _dir: tempfile::TempDir,
    pub(crate) config: WechatPayConfig,
    pub(crate) merchant_public: ParsedPublicKey,
    pub(crate) platform: std::sync::Arc<PlatformSigner>,
}

fn write_pem(dir: &std::path::Path, name: &str, label: &str, der: &[u8]) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, keys::to_pem(label, der)).expect("write pem");
    file
}

pub(crate) fn pay_fixture(server: &MockServer) -> PayFixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let merchant = KeyPair::generate(KeySize::Rsa2048).expect("keygen");
    let platform = KeyPair::generate(KeySize::Rsa2048).expect("keygen");
    let merchant_pkcs8 = merchant.as_der().expect("pkcs8");
    let merchant_spki = merchant.public_key().as_der().expect("spki");
    let platform_pkcs8 = platform.as_der().expect("pkcs8");
    let platform_spki = platform.public_key().as_der().expect("spki");
    let config = WechatPayConfig {
        provider: ProviderKind::Real,
        base_url: server.uri(),
        mchid: MCHID.into(),
        merchant_serial_no: MERCHANT_SERIAL.into(),
        merchant_private_key_file: Some(write_pem(
            dir.path(),
            "apiclient_key.pem",
            "PRIVATE KEY",
            merchant_pkcs8.as_ref(),
        )),
        apiv3_key: Some(APIV3_KEY.into()),
        public_key_id: PUBLIC_KEY_ID.into(),
        public_key_file: Some(write_pem(dir.path(), "pub_key.pem", "PUBLIC KEY", platform_spki.as_ref())),
        notify_base_url: None,
        ..WechatPayConfig::default()
    };
    PayFixture {
        _dir: dir,
        config,
        merchant_public: ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, merchant_spki.as_ref()).expect("key"),
        platform: std::sync::Arc::new(PlatformSigner::new(PUBLIC_KEY_ID, platform_pkcs8.as_ref(), APIV3_KEY.as_bytes()).expect("platform")),
    }
}

/// What WeChat Pay checks first: the `Authorization` header's shape and the merchant's
/// RSA-SHA256 signature over `METHOD\nPATH\ntimestamp\nnonce\nbody\n`.
pub(crate) struct MerchantSignature {
    pub(crate) public_key: ParsedPublicKey,
}

impl Match for MerchantSignature {
    fn matches(&self, request: &Request) -> bool {
        let Some(auth) = request.headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
        let Some(params) = sign::parse_authorization(auth) else { return false };
        let keys: Vec<&str> = params.keys().map(String::as_str).collect();
        if keys != ["mchid", "nonce_str", "serial_no", "signature", "timestamp"]
            || params["mchid"] != MCHID
            || params["serial_no"] != MERCHANT_SERIAL
            || params["nonce_str"].is_empty()
            || !params["timestamp"].parse::<i64>().is_ok_and(|t| (Utc::now().timestamp() - t).abs() < 60)
        {
            return false;
        }
        let mut path = request.url.path().to_string();
        if let Some(q) = request.url.query() {
            path = format!("{path}?{q}");
        }
        let mut message =
            format!("{}\n{path}\n{}\n{}\n", request.method, params["timestamp"], params["nonce_str"]).into_bytes();
        message.extend_from_slice(&request.body);
        message.push(b'\n');
        let Ok(signature) = B64.decode(&params["signature"]) else { return false };
        self.public_key.verify_sig(&message, &signature).is_ok()
    }
}

/// A request without a body, as `GET` sends it (the signed body line is empty).
struct NoBody;

impl Match for NoBody {
    fn matches(&self, request: &Request) -> bool {
        request.body.is_empty() && !request.headers.contains_key("content-type")
    }
}

fn jsapi_order(out_trade_no: &str, openid: Option<&str>, notify_url: &str) -> PrepayRequest {
    PrepayRequest {
        out_trade_no: out_trade_no.into(),
        description: "2024-2025采暖季供暖费".into(),
        amount_fen: 186_000,
        payer_openid: openid.map(str::to_string),
        notify_url: notify_url.into(),
        time_expire: Utc::now() + TimeDelta::minutes(30),
    }
}

/// `template` with `headers` (a `Wechatpay-*` set) added.
fn with_headers(mut template: ResponseTemplate, headers: &HeaderMap) -> ResponseTemplate {
    for (name, value) in headers {
        template = template.insert_header(name.as_str(), value.to_str().expect("ascii header"));
    }
    template
}

/// An answer signed with `platform` like WeChat Pay's (`Wechatpay-*` headers over the body, now).
pub(crate) fn signed_response(platform: &PlatformSigner, status: u16, body: &[u8]) -> ResponseTemplate {
    let headers = platform.sign_notify(body, Utc::now()).expect("sign");
    with_headers(ResponseTemplate::new(status).set_body_raw(body.to_vec(), "application/json"), &headers)
}

/// 2xx answers no caller may use: unsigned, signed over another body, signed by another key
/// under WeChat's serial, signed six minutes ago.
fn untrusted_responses(platform: &PlatformSigner, status: u16, body: &[u8]) -> Vec<(&'static str, ResponseTemplate)> {
    let answer = || ResponseTemplate::new(status).set_body_raw(body.to_vec(), "application/json");
    let stranger = KeyPair::generate(KeySize::Rsa2048).expect("keygen");
    let stranger = PlatformSigner::new(PUBLIC_KEY_ID, stranger.as_der().expect("pkcs8").as_ref(), APIV3_KEY.as_bytes())
        .expect("platform");
    let other_body = platform.sign_notify(br#"{"other":"body"}"#, Utc::now()).expect("sign");
    let by_stranger = stranger.sign_notify(body, Utc::now()).expect("sign");
    let stale = platform.sign_notify(body, Utc::now() - TimeDelta::minutes(6)).expect("sign");
    vec![
        ("unsigned", answer()),
        ("signed over another body", with_headers(answer(), &other_body)),
        ("signed by another key", with_headers(answer(), &by_stranger)),
        ("signed six minutes ago", with_headers(answer(), &stale)),
    ]
}

fn vendor_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"code": code, "message": message}))
}

/// The message of the vendor error `code` (panics on anything else).
fn expect_vendor<T: std::fmt::Debug>(result: Result<T, ProviderError>, code: &str) -> String {
    match result {
        Err(ProviderError::Vendor { code: got, message, .. }) if got == code => message,
        other => panic!("expected the vendor error {code}, got {other:?}"),
    }
}

/// A paid order as WeChat Pay's query answers it (fields of the v3 query-order answer).
fn paid_transaction(out_trade_no: &str) -> Value {
    json!({
        "appid": "wxd678efh567hg6787", "mchid": MCHID, "out_trade_no": out_trade_no,
        "transaction_id": "4200002468202412181357913579", "trade_type": "JSAPI", "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功", "bank_type": "CMC", "attach": "", "success_time": "2024-12-18T15:55:28+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": 186000, "payer_total": 186000, "currency": "CNY", "payer_currency": "CNY"}
    })
}

/// A refund as WeChat Pay answers it (fields of the v3 refund answer).
fn refund_answer(out_refund_no: &str, status: &str, success_time: Option<&str>) -> Value {
    let mut answer = json!({
        "refund_id": "50000000382019052709732678859", "out_refund_no": out_refund_no,
        "transaction_id": "4200002468202412181357913579", "out_trade_no": "HT202412180001",
        "channel": "ORIGINAL", "user_received_account": "招商银行信用卡0403", "create_time": "2024-12-19T10:00:00+08:00",
        "status": status, "funds_account": "AVAILABLE",
        "amount": {"total": 186000, "refund": 60000, "payer_total": 186000, "payer_refund": 60000,
            "settlement_refund": 60000, "settlement_total": 186000, "discount_refund": 0, "currency": "CNY"}
    });
    if let Some(at) = success_time {
        answer["success_time"] = json!(at);
    }
    answer
}

fn refund_request(out_refund_no: &str) -> RefundRequest {
    RefundRequest {
        out_trade_no: "HT202412180001".into(),
        out_refund_no: out_refund_no.into(),
        reason: Some("重复缴费".into()),
        refund_fen: 60_000,
        total_fen: 186_000,
        notify_url: "https://example.com/api/payment/notify".into(),
    }
}

#[tokio::test]
async fn jsapi_prepay_signs_the_request_and_verifies_the_answer() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    let answer = br#"{"prepay_id":"wx26112221580621e9b071c00d9e093b0000"}"#;
    Mock::given(method("POST"))
        .and(path("/v3/pay/transactions/jsapi"))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/json"))
        .and(header("wechatpay-serial", PUBLIC_KEY_ID))
        .and(body_partial_json(json!({
            "appid": "wxd678efh567hg6787",
            "mchid": MCHID,
            "description": "2024-2025采暖季供暖费",
            "out_trade_no": "HT202412180001",
            "notify_url": "https://example.com/api/payment/notify",
            "amount": {"total": 186000, "currency": "CNY"},
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        })))
        .and(MerchantSignature { public_key: fx.merchant_public.clone() })
        .respond_with(signed_response(&fx.platform, 200, answer))
        .expect(1)
        .mount(&server)
        .await;
    let pay = WechatPayV3::new(APPID, &fx.config).expect("configured");
    assert_eq!(pay.merchant(), &Merchant { appid: "wxd678efh567hg6787".into(), mchid: MCHID.into() });
    assert!(pay.needs_payer());
    let debug = format!("{pay:?}");
    assert!(debug.contains(PUBLIC_KEY_ID) && !debug.contains(APIV3_KEY), "{debug}");
    let order =
        jsapi_order("HT202412180001", Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"), "https://example.com/api/payment/notify");
    let prepay_id = pay.jsapi_prepay(&order).await.expect("prepay");
    assert_eq!(prepay_id, "wx26112221580621e9b071c00d9e093b0000");

    let sent: Value = server.received_requests().await.expect("recording")[0].body_json().expect("json");
    let time_expire = sent["time_expire"].as_str().expect("time_expire");
    assert!(time_expire.ends_with("+08:00"), "{time_expire}");
    let parsed = chrono::DateTime::parse_from_rfc3339(time_expire).expect("rfc 3339");
    assert_eq!(parsed.timestamp(), order.time_expire.timestamp());

    // The pay parameters verify with the merchant public key.
    let params = pay.pay_params(&prepay_id).await.expect("params");
    let message = format!("wxd678efh567hg6787\n{}\n{}\nprepay_id={prepay_id}\n", params.time_stamp, params.nonce_str);
    let signature = B64.decode(&params.pay_sign).expect("base64");
    assert!(fx.merchant_public.verify_sig(message.as_bytes(), &signature).is_ok());
}

#[tokio::test]
async fn jsapi_prepay_error_answer_is_a_vendor_error() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    Mock::given(method("POST"))
        .and(path("/v3/pay/transactions/jsapi"))
        .respond_with(vendor_error(
            400,
            "PARAM_ERROR",
            "输入源“/body/payer/openid”映射到值字段“用户标识”字符串规则校验失败",
        ))
        .mount(&server)
        .await;
    let pay = WechatPayV3::new(APPID, &fx.config).expect("configured");
    let message = expect_vendor(
        pay.jsapi_prepay(&jsapi_order("HT202412180003", Some("bad"), "https://example.com/n")).await,
        "PARAM_ERROR",
    );
    assert!(message.contains("openid"));
    // Without a payer, nothing is sent.
    let result = pay.jsapi_prepay(&jsapi_order("HT202412180004", None, "https://example.com/n")).await;
    assert!(matches!(result, Err(ProviderError::Config { detail, .. }) if detail.contains("payer openid")));
    assert_eq!(server.received_requests().await.expect("recording").len(), 1);
}

#[tokio::test]
async fn native_prepay_signs_an_order_without_payer_and_reads_the_code_url() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    let answer = br#"{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}"#;
    Mock::given(method("POST"))
        .and(path("/v3/pay/transactions/native"))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/json"))
        .and(header("wechatpay-serial", PUBLIC_KEY_ID))
        .and(body_partial_json(json!({
            "appid": "wxd678efh567hg6787",
            "mchid": MCHID,
            "description": "2024-2025采暖季供暖费",
            "out_trade_no": "HT202412180020",
            "notify_url": "https://example.com/api/payment/notify",
            "amount": {"total": 186000, "currency": "CNY"},
        })))
        .and(MerchantSignature { public_key: fx.merchant_public.clone() })
        .respond_with(signed_response(&fx.platform, 200, answer))
        .expect(1)
        .mount(&server)
        .await;
    let pay = WechatPayV3::new(APPID, &fx.config).expect("configured");
    // An openid on the order is not sent: whoever scans pays.
    let order =
        jsapi_order("HT202412180020", Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"), "https://example.com/api/payment/notify");
    assert_eq!(pay.native_prepay(&order).await.expect("prepay"), "weixin://wxpay/bizpayurl?pr=p4lpSuKzz");
    let sent: Value = server.received_requests().await.expect("recording")[0].body_json().expect("json");
    assert!(sent.get("payer").is_none(), "{sent}");
    let time_expire = sent["time_expire"].as_str().expect("time_expire");
    let parsed = chrono::DateTime::parse_from_rfc3339(time_expire).expect("rfc 3339");
    assert!(time_expire.ends_with("+08:00") && parsed.timestamp() == order.time_expire.timestamp(), "{time_expire}");
}

#[tokio::test]
async fn native_prepay_refusals_and_answers_without_a_code_url_are_errors() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    Mock::given(method("POST"))
        .and(path("/v3/pay/transactions/native"))
        .and(body_partial_json(json!({"out_trade_no": "HT202412180021"})))
        .respond_with(vendor_error(400, "ORDERPAID", "该订单已支付"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/pay/transactions/native"))
        .and(body_partial_json(json!({"out_trade_no": "HT202412180022"})))
        .respond_with(signed_response(&fx.platform, 200, br#"{"prepay_id":"wx26112221580621e9b071c00d9e093b0000"}"#))
        .mount(&server)
        .await;
    let pay = WechatPayV3::new(APPID, &fx.config).expect("configured");
    let result = pay.native_prepay(&jsapi_order("HT202412180021", None, "https://example.com/n")).await;
    assert_eq!(expect_vendor(result, "ORDERPAID"), "该订单已支付");
    let result = pay.native_prepay(&jsapi_order("HT202412180022", None, "https://example.com/n")).await;
    assert!(
        matches!(&result, Err(ProviderError::Transport { detail, .. }) if detail.contains("code_url")),
        "{result:?}"
    );
}

#[tokio::test]
async fn query_signs_its_query_string_and_reads_the_transaction() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    let query = |no: &str| {
        Mock::given(method("GET"))
            .and(path(format!("/v3/pay/transactions/out-trade-no/{no}")))
            .and(query_param("mchid", MCHID))
            .and(header("accept", "application/json"))
            .and(header("wechatpay-serial", PUBLIC_KEY_ID))
            .and(NoBody)
            .and(MerchantSignature { public_key: fx.merchant_public.clone() })
    };
    let paid = paid_transaction("HT202412180001").to_string();
    query("HT202412180001")
        .respond_with(signed_response(&fx.platform, 200, paid.as_bytes()))
        .expect(1)
        .mount(&server)
        .await;
    // An unpaid order: no transaction_id, no success_time, payer without openid.
    let unpaid = json!({"appid": "wxd678efh567hg6787", "mchid": MCHID, "out_trade_no": "HT202412180002",
        "trade_state": "NOTPAY", "trade_state_desc": "订单未支付", "payer": {},
        "amount": {"total": 186000, "currency": "CNY", "payer_currency": "CNY"}})
    .to_string();
    query("HT202412180002")
        .respond_with(signed_response(&fx.platform, 200, unpaid.as_bytes()))
        .expect(1)
        .mount(&server)
        .await;
    query("HT202412180404")
        .respond_with(vendor_error(404, "ORDER_NOT_EXIST", "订单不存在"))
        .expect(1)
        .mount(&server)
        .await;

    let pay = WechatPayV3::new(APPID, &fx.config).expect("configured");
    let t = pay.query("HT202412180001").await.expect("query");
    assert_eq!(
        t,
        Transaction {
            appid: "wxd678efh567hg6787".into(),
            mchid: MCHID.into(),
            out_trade_no: "HT202412180001".into(),
            transaction_id: Some("4200002468202412181357913579".into()),
            trade_state: TradeState::Success,
            // 15:55:28 Beijing time.
            success_time: Utc.with_ymd_and_hms(2024, 12, 18, 7, 55, 28).single(),
            amount_total_fen: 186_000,
            payer_openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
        }
    );
    let t = pay.query("HT202412180002").await.expect("query");
    assert_eq!(
        (t.trade_state, t.transaction_id, t.success_time, t.payer_openid),
        (TradeState::NotPay, None, None, None)
    );
    expect_vendor(pay.query("HT202412180404").await, "ORDER_NOT_EXIST");
}

#[tokio::test]
async fn close_posts_the_mchid_and_takes_the_signed_no_content() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    let close = |no: &str| {
        Mock::given(method("POST"))
            .and(path(format!("/v3/pay/transactions/out-trade-no/{no}/close")))
            .and(header("content-type", "application/json"))
            .and(header("wechatpay-serial", PUBLIC_KEY_ID))
            .and(body_json(json!({"mchid": MCHID})))
            .and(MerchantSignature { public_key: fx.merchant_public.clone() })
    };
    close("HT202412180001").respond_with(signed_response(&fx.platform, 204, b"")).expect(1).mount(&server).await;
    close("HT202412180002").respond_with(vendor_error(400, "ORDERPAID", "订单已支付")).expect(1).mount(&server).await;
    let pay = WechatPayV3::new(APPID, &fx.config).expect("configured");
    pay.close("HT202412180001").await.expect("closed");
    expect_vendor(pay.close("HT202412180002").await, "ORDERPAID");
}

#[tokio::test]
async fn refund_and_refund_query_are_signed_and_read() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    let processing = refund_answer("RF202412190001", "PROCESSING", None).to_string();
    Mock::given(method("POST"))
        .and(path("/v3/refund/domestic/refunds"))
        .and(header("content-type", "application/json"))
        .and(header("wechatpay-serial", PUBLIC_KEY_ID))
        .and(body_json(json!({
            "out_trade_no": "HT202412180001",
            "out_refund_no": "RF202412190001",
            "reason": "重复缴费",
            "notify_url": "https://example.com/api/payment/notify",
            "amount": {"refund": 60000, "total": 186000, "currency": "CNY"},
        })))
        .and(MerchantSignature { public_key: fx.merchant_public.clone() })
        .respond_with(signed_response(&fx.platform, 200, processing.as_bytes()))
        .expect(1)
        .mount(&server)
        .await;
    // No reason and no notify URL: both left out of the body.
    Mock::given(method("POST"))
        .and(path("/v3/refund/domestic/refunds"))
        .and(body_json(json!({
            "out_trade_no": "HT202412180001",
            "out_refund_no": "RF202412190002",
            "amount": {"refund": 60000, "total": 186000, "currency": "CNY"},
        })))
        .and(MerchantSignature { public_key: fx.merchant_public.clone() })
        .respond_with(vendor_error(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起"))
        .expect(1)
        .mount(&server)
        .await;
    let success = refund_answer("RF202412190001", "SUCCESS", Some("2024-12-19T10:00:05+08:00")).to_string();
    Mock::given(method("GET"))
        .and(path("/v3/refund/domestic/refunds/RF202412190001"))
        .and(header("wechatpay-serial", PUBLIC_KEY_ID))
        .and(NoBody)
        .and(MerchantSignature { public_key: fx.merchant_public.clone() })
        .respond_with(signed_response(&fx.platform, 200, success.as_bytes()))
        .expect(1)
        .mount(&server)
        .await;

    let pay = WechatPayV3::new(APPID, &fx.config).expect("configured");
    let refund = pay.refund(&refund_request("RF202412190001")).await.expect("refund");
    assert_eq!(
        refund,
        Refund {
            out_refund_no: "RF202412190001".into(),
            refund_id: "50000000382019052709732678859".into(),
            status: RefundStatus::Processing,
            success_time: None,
            refund_fen: 60_000,
        }
    );
    let bare = RefundRequest { reason: None, notify_url: String::new(), ..refund_request("RF202412190002") };
    expect_vendor(pay.refund(&bare).await, "NOT_ENOUGH");
    let refund = pay.query_refund("RF202412190001").await.expect("query");
    assert_eq!((refund.status, refund.refund_fen), (RefundStatus::Success, 60_000));
    assert_eq!(refund.success_time, Utc.with_ymd_and_hms(2024, 12, 19, 2, 0, 5).single());
}

/// Every call refuses a 2xx answer that WeChat Pay did not sign, whatever the body says.
#[tokio::test]
async fn no_call_uses_an_answer_that_does_not_verify() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    let pay = WechatPayV3::new(APPID, &fx.config).expect("configured");
    let calls = [
        ("prepay", br#"{"prepay_id":"wx_forged"}"#.to_vec()),
        ("native", br#"{"code_url":"weixin://wxpay/bizpayurl?pr=forged"}"#.to_vec()),
        ("query", paid_transaction("HT202412180001").to_string().into_bytes()),
        ("close", Vec::new()),
        (
            "refund",
            refund_answer("RF202412190001", "SUCCESS", Some("2024-12-19T10:00:05+08:00")).to_string().into_bytes(),
        ),
        (
            "query_refund",
            refund_answer("RF202412190001", "SUCCESS", Some("2024-12-19T10:00:05+08:00")).to_string().into_bytes(),
        ),
    ];
    for (call, body) in calls {
        for (how, response) in untrusted_responses(&fx.platform, if body.is_empty() { 204 } else { 200 }, &body) {
            server.reset().await;
            Mock::given(wiremock::matchers::any()).respond_with(response).mount(&server).await;
            let result = match call {
                "prepay" => pay
                    .jsapi_prepay(&jsapi_order("HT202412180001", Some("o1"), "https://example.com/n"))
                    .await
                    .map(drop),
                "native" => pay
                    .native_prepay(&jsapi_order("HT202412180001", None, "https://example.com/n"))
                    .await
                    .map(drop),
                "query" => pay.query("HT202412180001").await.map(drop),
                "close" => pay.close("HT202412180001").await,
                "refund" => pay.refund(&refund_request("RF202412190001")).await.map(drop),
                _ => pay.query_refund("RF202412190001").await.map(drop),
            };
            match result {
                Err(ProviderError::Transport { detail, .. }) => {
                    assert!(detail.contains("answer"), "{call}, {how}: {detail}")
                }
                other => panic!("{call}, {how}: expected a refused answer, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn real_provider_verifies_and_decrypts_payment_and_refund_notifies() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    let pay = WechatPayV3::new(APPID, &fx.config).expect("configured");
    let notify = |event_type: &str, kind: &str, resource: &Value| {
        let resource = fx.platform.encrypt_resource(resource.to_string().as_bytes(), kind).expect("encrypt");
        let body = serde_json::to_vec(&json!({
            "id": "EV-2024121815552800123456789", "create_time": "2024-12-18T15:55:28+08:00",
            "event_type": event_type, "resource_type": "encrypt-resource", "summary": "支付成功",
            "resource": resource,
        }))
        .expect("json");
        (fx.platform.sign_notify(&body, Utc::now()).expect("sign"), body)
    };
    let (headers, body) = notify("TRANSACTION.SUCCESS", "transaction", &paid_transaction("HT202412180001"));
    let n = pay.verify_notify(&headers, &body, Utc::now()).await.expect("verifies");
    assert_eq!(n.id, "EV-2024121815552800123456789");
    let NotifyEvent::Transaction(t) = n.event else { panic!("a transaction") };
    assert_eq!((t.amount_total_fen, t.trade_state), (186_000, TradeState::Success));
    assert_eq!(t.transaction_id.as_deref(), Some("4200002468202412181357913579"));
    assert!(matches!(
        pay.verify_notify(&headers, &body, Utc::now() + TimeDelta::seconds(301)).await,
        Err(NotifyError::Signature(_))
    ));

    let refund = json!({
        "mchid": MCHID, "out_trade_no": "HT202412180001", "transaction_id": "4200002468202412181357913579",
        "out_refund_no": "RF202412190001", "refund_id": "50000000382019052709732678859", "refund_status": "SUCCESS",
        "success_time": "2024-12-19T10:00:05+08:00", "user_received_account": "招商银行信用卡0403",
        "amount": {"total": 186000, "refund": 60000, "payer_total": 186000, "payer_refund": 60000}
    });
    let (headers, body) = notify("REFUND.SUCCESS", "refund", &refund);
    let n = pay.verify_notify(&headers, &body, Utc::now()).await.expect("verifies");
    assert_eq!(n.event_type, "REFUND.SUCCESS");
    assert_eq!(
        n.event,
        NotifyEvent::Refund(RefundNotice {
            mchid: MCHID.into(),
            out_trade_no: "HT202412180001".into(),
            transaction_id: "4200002468202412181357913579".into(),
            out_refund_no: "RF202412190001".into(),
            refund_id: "50000000382019052709732678859".into(),
            status: RefundStatus::Success,
            success_time: Utc.with_ymd_and_hms(2024, 12, 19, 2, 0, 5).single(),
            refund_fen: 60_000,
            total_fen: 186_000,
        })
    );
}

#[test]
fn real_pay_configuration_errors() {
    let server_uri = "http://127.0.0.1:9".to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = KeyPair::generate(KeySize::Rsa2048).expect("keygen");
    let good = WechatPayConfig {
        provider: ProviderKind::Real,
        base_url: server_uri,
        mchid: MCHID.into(),
        merchant_serial_no: MERCHANT_SERIAL.into(),
        merchant_private_key_file: Some(write_pem(
            dir.path(),
            "k.pem",
            "PRIVATE KEY",
            key.as_der().expect("der").as_ref(),
        )),
        apiv3_key: Some(APIV3_KEY.into()),
        public_key_id: PUBLIC_KEY_ID.into(),
        public_key_file: Some(write_pem(
            dir.path(),
            "p.pem",
            "PUBLIC KEY",
            key.public_key().as_der().expect("der").as_ref(),
        )),
        notify_base_url: None,
        ..WechatPayConfig::default()
    };
    assert!(WechatPayV3::new("wx1", &good).is_ok());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").expect("write");
    assert!(matches!(WechatPayV3::new(" ", &good), Err(ProviderError::Config { .. })), "an appid is needed");
    for broken in [
        WechatPayConfig { mchid: "".into(), ..good.clone() },
        WechatPayConfig { base_url: "api.mch.weixin.qq.com".into(), ..good.clone() },
        WechatPayConfig { apiv3_key: None, ..good.clone() },
        WechatPayConfig { apiv3_key: Some("too-short".into()), ..good.clone() },
        WechatPayConfig { merchant_private_key_file: None, ..good.clone() },
        WechatPayConfig { merchant_private_key_file: Some(dir.path().join("missing.pem")), ..good.clone() },
        WechatPayConfig { merchant_private_key_file: Some(garbage.clone()), ..good.clone() },
        WechatPayConfig { public_key_file: Some(garbage), ..good.clone() },
        WechatPayConfig { public_key_id: "".into(), ..good.clone() },
    ] {
        assert!(matches!(WechatPayV3::new("wx1", &broken), Err(ProviderError::Config { .. })));
    }
}

// ---------------------------------------------------------------- sandbox WeChat Pay

fn sandbox_order(out_trade_no: &str, notify_url: String, now: chrono::DateTime<Utc>) -> PrepayRequest {
    PrepayRequest {
        out_trade_no: out_trade_no.into(),
        description: "供暖费".into(),
        amount_fen: 4_321,
        payer_openid: Some("sb_0123456789abcdef012345678".into()),
        notify_url,
        time_expire: now + TimeDelta::minutes(30),
    }
}

/// A merchant stand-in answering every notify with `status`.
async fn merchant_answering(status: u16) -> MockServer {
    let merchant = MockServer::start().await;
    let answer = match status {
        204 => ResponseTemplate::new(204),
        200 => ResponseTemplate::new(200).set_body_json(json!({"code": "SUCCESS", "message": "OK"})),
        _ => ResponseTemplate::new(status).set_body_string("database down"),
    };
    Mock::given(method("POST")).respond_with(answer).mount(&merchant).await;
    merchant
}

/// A database of its own for a sandbox platform (its keys and ledger live there).
async fn sandbox_db() -> mpapi::storage::Db {
    mpapi::storage::Db::connect("sqlite::memory:").await.expect("a database")
}

#[tokio::test]
async fn sandbox_pay_delivers_a_notify_that_verifies_and_decrypts() {
    let merchant = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/payment/notify"))
        .and(header("content-type", "application/json"))
        .and(header("wechatpay-signature-type", "WECHATPAY2-SHA256-RSA2048"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"code": "SUCCESS", "message": "OK"})))
        .expect(1)
        .mount(&merchant)
        .await;
    let pay = SandboxPay::new(sandbox_db().await, "wx0000000000sandbox", "1900000001", Clock::default()).expect("sandbox");
    let notify_url = format!("{}/api/payment/notify", merchant.uri());
    pay.jsapi_prepay(&sandbox_order("SB_ORDER_0001", notify_url, Utc::now())).await.expect("prepay");

    let outcome = pay.pay("SB_ORDER_0001", true).await.expect("paid");
    assert_eq!(outcome.notify_status, 200);
    assert_eq!(outcome.notify_body, json!({"code": "SUCCESS", "message": "OK"}));
    assert_eq!(pay.order("SB_ORDER_0001").await.unwrap().map(|o| o.state), Some(SandboxOrderState::Paid));

    // What the merchant received verifies with the provider's own code path and decrypts.
    let received = merchant.received_requests().await.expect("recording");
    let serial = received[0].headers["wechatpay-serial"].to_str().expect("ascii");
    assert_eq!(serial, pay.platform().await.unwrap().serial());
    assert!(serial.starts_with("PUB_KEY_ID_SANDBOX"));
    let n = pay.verify_notify(&received[0].headers, &received[0].body, Utc::now()).await.expect("verifies");
    assert!(n.id.starts_with("EV-"));
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    let NotifyEvent::Transaction(t) = n.event else { panic!("a transaction") };
    assert_eq!(
        (t.out_trade_no.as_str(), t.amount_total_fen, &t.trade_state),
        ("SB_ORDER_0001", 4_321, &TradeState::Success)
    );
    assert_eq!(t.transaction_id.as_deref(), Some(outcome.transaction_id.as_str()));
    assert_eq!(t.payer_openid.as_deref(), Some("sb_0123456789abcdef012345678"));
    assert_eq!((t.appid.as_str(), t.mchid.as_str()), ("wx0000000000sandbox", "1900000001"));
    let envelope: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(envelope["resource"]["associated_data"], "transaction");
    assert_eq!(envelope["resource_type"], "encrypt-resource");
    assert_eq!(envelope["summary"], "支付成功");

    // A body altered in transit no longer verifies.
    let mut tampered = received[0].body.clone();
    tampered.extend_from_slice(b" ");
    assert!(matches!(pay.verify_notify(&received[0].headers, &tampered, Utc::now()).await, Err(NotifyError::Signature(_))));

    assert_eq!(pay.pay("SB_ORDER_0001", true).await, Err(SandboxPayError::AlreadyPaid("SB_ORDER_0001".into())));
    assert_eq!(pay.pay("SB_UNKNOWN_01", true).await, Err(SandboxPayError::NotFound("SB_UNKNOWN_01".into())));
}

#[tokio::test]
async fn sandbox_order_is_paid_only_when_the_merchant_acknowledges_success() {
    let refusing = merchant_answering(500).await;
    let ok = merchant_answering(204).await;
    let pay = SandboxPay::new(sandbox_db().await, "wx0000000000sandbox", "1900000001", Clock::default()).expect("sandbox");
    pay.jsapi_prepay(&sandbox_order("SB_ORDER_0002", refusing.uri(), Utc::now())).await.expect("prepay");
    let outcome = pay.pay("SB_ORDER_0002", true).await.expect("delivered");
    assert_eq!((outcome.notify_status, outcome.notify_body), (500, json!("database down")));
    assert_eq!(pay.order("SB_ORDER_0002").await.unwrap().map(|o| o.state), Some(SandboxOrderState::NotPaid));
    assert_eq!(pay.query("SB_ORDER_0002").await.expect("query").trade_state, TradeState::NotPay);

    pay.jsapi_prepay(&sandbox_order("SB_ORDER_0003", ok.uri(), Utc::now())).await.expect("prepay");
    let outcome = pay.pay("SB_ORDER_0003", false).await.expect("delivered");
    assert_eq!(outcome.notify_status, 204);
    assert_eq!(pay.order("SB_ORDER_0003").await.unwrap().map(|o| o.state), Some(SandboxOrderState::NotPaid), "a failed payment");
    let received = ok.received_requests().await.expect("recording");
    let last = received.last().expect("a notify");
    let n = pay.verify_notify(&last.headers, &last.body, Utc::now()).await.expect("verifies");
    assert_eq!(n.event_type, "TRANSACTION.PAYERROR");
    assert!(matches!(n.event, NotifyEvent::Transaction(t) if t.trade_state == TradeState::PayError));
    pay.pay("SB_ORDER_0003", true).await.expect("retry succeeds");
    assert_eq!(pay.order("SB_ORDER_0003").await.unwrap().map(|o| o.state), Some(SandboxOrderState::Paid));
}

#[tokio::test]
async fn sandbox_expired_order_cannot_be_paid() {
    let clock = Clock::default();
    let pay = SandboxPay::new(sandbox_db().await, "wx0000000000sandbox", "1900000001", clock.clone()).expect("sandbox");
    pay.jsapi_prepay(&sandbox_order("SB_ORDER_0004", "http://127.0.0.1:9/n".into(), clock.now()))
        .await
        .expect("prepay");
    clock.advance(std::time::Duration::from_secs(30 * 60 + 1));
    assert_eq!(pay.pay("SB_ORDER_0004", true).await, Err(SandboxPayError::Expired("SB_ORDER_0004".into())));
}

/// The refund notifies `merchant` has received so far, verified and decrypted by `pay`.
async fn refund_notices(pay: &SandboxPay, merchant: &MockServer) -> Vec<RefundNotice> {
    let mut notices = Vec::new();
    for request in merchant.received_requests().await.expect("recording") {
        let n = pay.verify_notify(&request.headers, &request.body, Utc::now()).await.expect("every notify verifies");
        if let NotifyEvent::Refund(notice) = n.event {
            assert_eq!(n.event_type, "REFUND.SUCCESS");
            notices.push(notice);
        }
    }
    notices
}

/// Wait (up to 20 s) until `merchant` has received `count` refund notifies; they come from a task
/// of their own, a moment after `refund` answered.
async fn wait_for_refund_notices(pay: &SandboxPay, merchant: &MockServer, count: usize) -> Vec<RefundNotice> {
    for _ in 0..800 {
        let notices = refund_notices(pay, merchant).await;
        if notices.len() >= count {
            return notices;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{count} refund notifies expected, got {:?}", refund_notices(pay, merchant).await)
}

#[tokio::test]
async fn sandbox_plays_the_whole_order_and_refund_life() {
    let merchant = merchant_answering(200).await;
    let pay = SandboxPay::new(sandbox_db().await, "wx0000000000sandbox", "1900000001", Clock::default()).expect("sandbox");
    pay.jsapi_prepay(&sandbox_order("SB_ORDER_0005", merchant.uri(), Utc::now())).await.expect("prepay");
    let unpaid = pay.query("SB_ORDER_0005").await.expect("query");
    assert_eq!((unpaid.trade_state, unpaid.transaction_id), (TradeState::NotPay, None));

    let outcome = pay.pay("SB_ORDER_0005", true).await.expect("paid");
    let paid = pay.query("SB_ORDER_0005").await.expect("query");
    assert_eq!(paid.trade_state, TradeState::Success);
    assert_eq!(paid.transaction_id.as_deref(), Some(outcome.transaction_id.as_str()));
    assert!(paid.success_time.is_some_and(|at| (Utc::now() - at).num_seconds().abs() < 5));
    expect_vendor(pay.close("SB_ORDER_0005").await, "ORDERPAID");

    let request = |out_refund_no: &str, refund_fen: i64| RefundRequest {
        out_trade_no: "SB_ORDER_0005".into(),
        out_refund_no: out_refund_no.into(),
        reason: Some("退费".into()),
        refund_fen,
        total_fen: 4_321,
        notify_url: merchant.uri(),
    };
    let first = pay.refund(&request("SB_REFUND_01", 1_000)).await.expect("refund");
    assert_eq!((first.status, first.refund_fen, first.success_time), (RefundStatus::Processing, 1_000, None));
    assert!(first.refund_id.starts_with("50") && first.refund_id.len() == 29, "{}", first.refund_id);
    let notices = wait_for_refund_notices(&pay, &merchant, 1).await;
    let [notice] = notices.as_slice() else { panic!("one refund notify, got {notices:?}") };
    assert_eq!(
        (notice.out_refund_no.as_str(), notice.refund_id.as_str(), notice.status),
        ("SB_REFUND_01", first.refund_id.as_str(), RefundStatus::Success)
    );
    assert_eq!((notice.mchid.as_str(), notice.out_trade_no.as_str()), ("1900000001", "SB_ORDER_0005"));
    assert_eq!(notice.transaction_id, outcome.transaction_id);
    assert_eq!((notice.refund_fen, notice.total_fen), (1_000, 4_321));
    let queried = pay.query_refund("SB_REFUND_01").await.expect("query");
    assert_eq!((queried.status, &queried.refund_id), (RefundStatus::Success, &first.refund_id));
    assert_eq!(queried.success_time, notice.success_time);
    assert_eq!(pay.query("SB_ORDER_0005").await.expect("query").trade_state, TradeState::Refund);

    // The same out_refund_no again is the same refund (another reason is no other refund); with
    // other amounts it is refused.
    let again = pay.refund(&RefundRequest { reason: None, ..request("SB_REFUND_01", 1_000) }).await.expect("retry");
    assert_eq!((again.refund_id, again.status), (first.refund_id.clone(), RefundStatus::Success));
    expect_vendor(pay.refund(&request("SB_REFUND_01", 999)).await, "INVALID_REQUEST");
    // All refunds together stay within the order's 4321 fen.
    expect_vendor(pay.refund(&request("SB_REFUND_02", 3_322)).await, "INVALID_REQUEST");
    expect_vendor(
        pay.refund(&RefundRequest { total_fen: 4_320, ..request("SB_REFUND_02", 10) }).await,
        "INVALID_REQUEST",
    );
    pay.refund(&request("SB_REFUND_02", 3_321)).await.expect("the rest");
    assert_eq!(wait_for_refund_notices(&pay, &merchant, 2).await[1].refund_fen, 3_321);
    expect_vendor(pay.refund(&request("SB_REFUND_03", 1)).await, "INVALID_REQUEST");
    assert!(pay.refund_record("SB_REFUND_03").await.unwrap().is_none());
    // A refund without a notify URL sends nothing.
    let before = merchant.received_requests().await.expect("recording").len();
    pay.jsapi_prepay(&sandbox_order("SB_ORDER_0006", merchant.uri(), Utc::now())).await.expect("prepay");
    pay.pay("SB_ORDER_0006", true).await.expect("paid");
    let quiet =
        RefundRequest { out_trade_no: "SB_ORDER_0006".into(), notify_url: String::new(), ..request("SB_REFUND_04", 1) };
    pay.refund(&quiet).await.expect("refund");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(merchant.received_requests().await.expect("recording").len(), before + 1, "the payment notify only");
}

// ---- the sandbox platform and outbox over one database, as two instances see them (issue 17) ----

/// Two sandbox platforms of merchant 1900000001 over one fresh database (each with its own
/// connection pool, as two instances have: PostgreSQL when `DATABASE_URL` says so), and that
/// database.
async fn two_platforms(dir: &tempfile::TempDir, v2: bool) -> (mpapi::storage::Db, SandboxPay, SandboxPay) {
    let url = crate::app::fresh_database(dir).await;
    let new = if v2 { SandboxPay::new_v2 } else { SandboxPay::new };
    let (db_a, db_b) = (mpapi::storage::Db::connect(&url).await.expect("a"), mpapi::storage::Db::connect(&url).await.expect("b"));
    let (appid, mchid) = (String::from("wx0000000000sandbox"), String::from("1900000001"));
    let a = new(db_a.clone(), appid.clone(), mchid.clone(), Clock::default()).expect("platform a");
    let b = new(db_b, appid, mchid, Clock::default()).expect("platform b");
    (db_a, a, b)
}

#[tokio::test]
async fn sandbox_platforms_over_one_database_are_one_platform() {
    let dir = tempfile::tempdir().expect("a folder");
    let (db, a, b) = two_platforms(&dir, false).await;
    // Nothing is generated until a key is needed; then both, asking at once, agree on one set.
    for what in ["merchant_key", "platform_key", "apiv3_key"] {
        assert!(db.stored_secret(&format!("sandbox_pay:1900000001:{what}")).await.expect("read").is_none(), "{what}");
    }
    let (platform_a, platform_b) = tokio::join!(a.platform(), b.platform());
    assert_eq!(platform_a.expect("a's keys").serial(), platform_b.expect("b's keys").serial());
    assert_eq!(a.merchant_public_key_der().await.expect("a"), b.merchant_public_key_der().await.expect("b"));

    // Placed through A, paid through B by its prepay_id; the notify B signed verifies at A.
    let merchant = merchant_answering(200).await;
    let prepay_id = a.jsapi_prepay(&sandbox_order("SB_SHARED_001", merchant.uri(), Utc::now())).await.expect("prepay");
    assert!(b.holds(&prepay_id).await.expect("read") && b.holds("SB_SHARED_001").await.expect("read"));
    // Placed again through B: a fresh prepay_id, which both hold beside the first (kept on the
    // order's row; the later one beside it).
    let again = b.jsapi_prepay(&sandbox_order("SB_SHARED_001", merchant.uri(), Utc::now())).await.expect("placed again");
    assert_ne!(again, prepay_id);
    assert!(a.holds(&again).await.expect("read") && a.holds(&prepay_id).await.expect("read"));
    // Placed through both at once: one records the order with its prepay_id, the other its own
    // beside it; each instance holds both.
    let racing = sandbox_order("SB_SHARED_003", merchant.uri(), Utc::now());
    let (first_a, first_b) = tokio::join!(a.jsapi_prepay(&racing), b.jsapi_prepay(&racing));
    let (first_a, first_b) = (first_a.expect("placed through A"), first_b.expect("placed through B"));
    assert_ne!(first_a, first_b);
    for id in [&first_a, &first_b] {
        assert!(a.holds(id).await.expect("read") && b.holds(id).await.expect("read"), "{id}");
    }
    let outcome = b.pay(&prepay_id, true).await.expect("paid through B");
    assert_eq!(outcome.notify_status, 200);
    let received = merchant.received_requests().await.expect("recording");
    let n = a.verify_notify(&received[0].headers, &received[0].body, Utc::now()).await.expect("A verifies B's notify");
    let NotifyEvent::Transaction(t) = n.event else { panic!("a transaction") };
    assert_eq!((t.out_trade_no.as_str(), t.transaction_id.as_deref()), ("SB_SHARED_001", Some(outcome.transaction_id.as_str())));
    assert_eq!(a.order("SB_SHARED_001").await.expect("read").map(|o| o.state), Some(SandboxOrderState::Paid));
    assert_eq!(a.pay("SB_SHARED_001", true).await, Err(SandboxPayError::AlreadyPaid("SB_SHARED_001".into())));
    let queried = a.query("SB_SHARED_001").await.expect("query");
    assert_eq!((queried.trade_state, queried.transaction_id), (TradeState::Success, Some(outcome.transaction_id.clone())));

    // B's pay parameters verify with A's merchant key.
    let params = b.pay_params(&prepay_id).await.expect("params");
    let merchant_key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, a.merchant_public_key_der().await.expect("der")).expect("key");
    let message = format!("{}\n{}\n{}\n{}\n", params.app_id, params.time_stamp, params.nonce_str, params.package);
    assert!(merchant_key.verify_sig(message.as_bytes(), &B64.decode(&params.pay_sign).expect("base64")).is_ok());

    // One code_url for a NATIVE order, whichever instance answers, even at once.
    let native = PrepayRequest { payer_openid: None, ..sandbox_order("SB_SHARED_002", merchant.uri(), Utc::now()) };
    let (url_a, url_b) = tokio::join!(a.native_prepay(&native), b.native_prepay(&native));
    let code_url = url_a.expect("a");
    assert_eq!(code_url, url_b.expect("b"));
    assert!(a.holds(&code_url).await.expect("read"));
    // Closed through B: closed for A.
    b.close("SB_SHARED_002").await.expect("closes");
    assert_eq!(a.query("SB_SHARED_002").await.expect("query").trade_state, TradeState::Closed);
    assert_eq!(a.pay(&code_url, true).await, Err(SandboxPayError::Closed("SB_SHARED_002".into())));

    // A refund recorded through A is B's to answer.
    let refund = RefundRequest {
        out_trade_no: "SB_SHARED_001".into(),
        out_refund_no: "SB_SHARED_R1".into(),
        reason: None,
        refund_fen: 321,
        total_fen: 4_321,
        notify_url: String::new(),
    };
    let first = a.refund(&refund).await.expect("refund");
    assert_eq!(b.query_refund("SB_SHARED_R1").await.expect("query").refund_id, first.refund_id);
    assert_eq!(b.refund(&refund).await.expect("a retry through B").refund_id, first.refund_id);
    assert_eq!(b.query("SB_SHARED_001").await.expect("query").trade_state, TradeState::Refund);
}

#[tokio::test]
async fn sandbox_v2_platforms_over_one_database_share_the_api_key() {
    let dir = tempfile::tempdir().expect("a folder");
    let (_db, a, b) = two_platforms(&dir, true).await;
    let (key_a, key_b) = tokio::join!(a.api_key(), b.api_key());
    let key = key_a.expect("read").expect("v2");
    assert_eq!((key.len(), Some(key.clone())), (32, key_b.expect("read")));
    let merchant = merchant_answering(200).await;
    a.jsapi_prepay(&sandbox_order("SB_SHARED_V2_1", merchant.uri(), Utc::now())).await.expect("prepay");
    let (headers, body) = b.build_notify("SB_SHARED_V2_1", true).await.expect("notify");
    assert!(a.verify_notify(&headers, &body, Utc::now()).await.is_ok(), "B's v2 notify verifies at A");
}

#[tokio::test]
async fn sandbox_payments_of_one_order_from_two_instances_at_once_pay_it_once() {
    let dir = tempfile::tempdir().expect("a folder");
    let (_db, a, b) = two_platforms(&dir, false).await;
    // A merchant slow enough that both payments are in flight together.
    let merchant = MockServer::start().await;
    let slow = ResponseTemplate::new(200)
        .set_body_json(json!({"code": "SUCCESS", "message": "OK"}))
        .set_delay(std::time::Duration::from_millis(300));
    Mock::given(method("POST")).respond_with(slow).mount(&merchant).await;
    for n in 0..3 {
        let no = format!("SB_RACE_00{n}");
        a.jsapi_prepay(&sandbox_order(&no, merchant.uri(), Utc::now())).await.expect("prepay");
        let (paid_a, paid_b) = tokio::join!(a.pay(&no, true), b.pay(&no, true));
        let results = [paid_a, paid_b];
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        let refused = results.iter().find_map(|r| r.as_ref().err()).expect("one refused");
        assert!(
            matches!(refused, SandboxPayError::InProgress(_) | SandboxPayError::AlreadyPaid(_)),
            "{refused:?}"
        );
        assert_eq!(b.order(&no).await.expect("read").map(|o| o.state), Some(SandboxOrderState::Paid));
    }
    assert_eq!(merchant.received_requests().await.expect("recording").len(), 3, "one notify per order");
}

#[tokio::test]
async fn sandbox_refunds_from_two_instances_never_exceed_the_order() {
    let dir = tempfile::tempdir().expect("a folder");
    let (_db, a, b) = two_platforms(&dir, false).await;
    a.adopt_paid("SB_RACE_REFUND", 4_321, "4200000000000000000000000001", Utc::now()).await.expect("adopted");
    let request = |out_refund_no: String| RefundRequest {
        out_trade_no: "SB_RACE_REFUND".into(),
        out_refund_no,
        reason: None,
        refund_fen: 1_000,
        total_fen: 4_321,
        notify_url: String::new(),
    };
    // Ten refunds of 1000 fen at once, split over both: four fit in 4321.
    let requests: Vec<_> = (0..10).map(|n| request(format!("SB_RR_{n:02}"))).collect();
    let (a, b) = (&a, &b);
    let answers = futures_util::future::join_all(
        requests.iter().enumerate().map(|(n, r)| async move { if n % 2 == 0 { a.refund(r).await } else { b.refund(r).await } }),
    )
    .await;
    assert_eq!(answers.iter().filter(|r| r.is_ok()).count(), 4, "{answers:?}");
    for refused in answers.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(refused, ProviderError::Vendor { code, .. } if code == "INVALID_REQUEST"), "{refused:?}");
    }
    // One out_refund_no asked through both at once is one refund.
    a.adopt_paid("SB_RACE_REFUND2", 4_321, "4200000000000000000000000002", Utc::now()).await.expect("adopted");
    let same = RefundRequest { out_trade_no: "SB_RACE_REFUND2".into(), ..request("SB_RR_SAME".into()) };
    let (first, second) = tokio::join!(a.refund(&same), b.refund(&same));
    assert_eq!(first.expect("a").refund_id, second.expect("b").refund_id);
    let more = RefundRequest { refund_fen: 3_322, ..RefundRequest { out_refund_no: "SB_RR_MORE".into(), ..same.clone() } };
    assert!(a.refund(&more).await.is_err(), "the first 1000 counted once: 3322 more is too much");
}

#[tokio::test]
async fn two_servers_show_one_sandbox_outbox_and_make_no_key_at_start() {
    let dir = tempfile::tempdir().expect("a folder");
    let config = mpapi::config::Config { database_url: crate::app::fresh_database(&dir).await, ..mpapi::config::Config::default() };
    let a = crate::app::TestApp::start("heating", config.clone(), dir).await;
    let b = crate::app::TestApp::start("heating", config, tempfile::tempdir().expect("a folder")).await;
    // Starting made no sandbox key (RSA generation was a third of a cold start): the payment
    // platform makes its keys on first use.
    for what in ["merchant_key", "platform_key"] {
        assert!(a.server.db.stored_secret(&format!("sandbox_pay:1900000001:{what}")).await.expect("read").is_none(), "{what}");
    }
    let sent = a.post("/api/sms/send", None, json!({"phone": "13900000091", "type": "login"})).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    for app in [&a, &b] {
        let outbox: Value = app.client.get(app.url("/_sandbox/sms?phone=13900000091")).send().await.expect("answered").json().await.expect("json");
        let messages = outbox["messages"].as_array().expect("messages");
        assert_eq!((messages.len(), messages[0]["type"].as_str()), (1, Some("login")), "{outbox}");
    }
}
