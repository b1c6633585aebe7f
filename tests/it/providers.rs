//! The real providers against wiremock stand-ins of Aliyun SMS, code2Session and WeChat Pay v3
//! (requests checked down to their signatures, answers signed like WeChat's), and the sandbox
//! payment platform delivering verifiable notifies.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{TimeDelta, Utc};
use mpapi::config::{ProviderKind, SmsConfig, WechatLoginConfig, WechatPayConfig};
use mpapi::providers::sms::{AliyunSms, aliyun_canonical_query, aliyun_signature};
use mpapi::providers::wechat_login::Code2Session;
use mpapi::providers::wechat_pay::sandbox::{PlatformSigner, SandboxOrderState, SandboxPay, SandboxPayError};
use mpapi::providers::wechat_pay::v3::WechatPayV3;
use mpapi::providers::wechat_pay::{NotifyError, PrepayRequest, WechatPay as _, keys, sign, verify};
use mpapi::providers::{ProviderError, SmsProvider as _, SmsPurpose, WechatLogin as _};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
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
        sms.send_code("heating", "13800000000", "246810", SmsPurpose::Login, 300).await.expect("sent");
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
    match aliyun(&server).send_code("heating", "13800000000", "1", SmsPurpose::Login, 300).await {
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
    let result = aliyun(&server).send_code("heating", "13800000000", "1", SmsPurpose::Login, 300).await;
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
    let result = gone.send_code("heating", "13800000000", "1", SmsPurpose::Login, 300).await;
    assert!(matches!(result, Err(ProviderError::Transport { .. })), "{result:?}");
}

// ---------------------------------------------------------------- code2Session

fn code2session(server: &MockServer) -> Code2Session {
    Code2Session::new(&WechatLoginConfig {
        provider: ProviderKind::Real,
        base_url: server.uri(),
        appid: "wx1234567890abcdef".into(),
        secret: Some("app-secret-value".into()),
    })
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
const MCHID: &str = "1900000109";
const MERCHANT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";

/// Test keys generated with aws-lc-rs and written as PEM files, plus the config pointing at them.
pub(crate) struct PayFixture {
    _dir: tempfile::TempDir,
    pub(crate) config: WechatPayConfig,
    pub(crate) merchant_public: ParsedPublicKey,
    pub(crate) platform: PlatformSigner,
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
        appid: "wxd678efh567hg6787".into(),
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
    };
    PayFixture {
        _dir: dir,
        config,
        merchant_public: ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, merchant_spki.as_ref()).expect("key"),
        platform: PlatformSigner::new(PUBLIC_KEY_ID, platform_pkcs8.as_ref(), APIV3_KEY.as_bytes()).expect("platform"),
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

/// A response signed with `platform` like WeChat Pay's (`Wechatpay-*` headers over the body).
pub(crate) fn signed_response(platform: &PlatformSigner, status: u16, body: &[u8]) -> ResponseTemplate {
    let h = platform.sign_notify(body).expect("sign");
    ResponseTemplate::new(status)
        .set_body_raw(body.to_vec(), "application/json")
        .insert_header("Wechatpay-Timestamp", h.timestamp.as_str())
        .insert_header("Wechatpay-Nonce", h.nonce.as_str())
        .insert_header("Wechatpay-Signature", h.signature.as_str())
        .insert_header("Wechatpay-Serial", h.serial.as_str())
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
    let pay = WechatPayV3::new(&fx.config).expect("configured");
    assert_eq!(pay.merchant(), ("wxd678efh567hg6787", MCHID));
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
    let params = pay.pay_params(&prepay_id).expect("params");
    let message = format!("wxd678efh567hg6787\n{}\n{}\nprepay_id={prepay_id}\n", params.time_stamp, params.nonce_str);
    let signature = B64.decode(&params.pay_sign).expect("base64");
    assert!(fx.merchant_public.verify_sig(message.as_bytes(), &signature).is_ok());
}

#[tokio::test]
async fn jsapi_prepay_refuses_an_answer_with_a_bad_signature() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    // Signed over another body: the prepay_id cannot be trusted.
    let signed = fx.platform.sign_notify(br#"{"prepay_id":"wx_original"}"#).expect("sign");
    Mock::given(method("POST"))
        .and(path("/v3/pay/transactions/jsapi"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(br#"{"prepay_id":"wx_forged"}"#.to_vec(), "application/json")
                .insert_header("Wechatpay-Timestamp", signed.timestamp.as_str())
                .insert_header("Wechatpay-Nonce", signed.nonce.as_str())
                .insert_header("Wechatpay-Signature", signed.signature.as_str())
                .insert_header("Wechatpay-Serial", signed.serial.as_str()),
        )
        .mount(&server)
        .await;
    let pay = WechatPayV3::new(&fx.config).expect("configured");
    let result = pay.jsapi_prepay(&jsapi_order("HT202412180002", Some("o1"), "https://example.com/n")).await;
    match result {
        Err(ProviderError::Transport { detail, .. }) => assert!(detail.contains("signature"), "{detail}"),
        other => panic!("expected a refused answer, got {other:?}"),
    }

    // An unsigned answer is refused too.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"prepay_id": "wx_unsigned"})))
        .mount(&server)
        .await;
    let result = pay.jsapi_prepay(&jsapi_order("HT202412180002", Some("o1"), "https://example.com/n")).await;
    assert!(matches!(result, Err(ProviderError::Transport { .. })), "{result:?}");
}

#[tokio::test]
async fn jsapi_prepay_error_answer_is_a_vendor_error() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    Mock::given(method("POST"))
        .and(path("/v3/pay/transactions/jsapi"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": "PARAM_ERROR", "message": "输入源“/body/payer/openid”映射到值字段“用户标识”字符串规则校验失败"
        })))
        .mount(&server)
        .await;
    let pay = WechatPayV3::new(&fx.config).expect("configured");
    match pay.jsapi_prepay(&jsapi_order("HT202412180003", Some("bad"), "https://example.com/n")).await {
        Err(ProviderError::Vendor { code, message, .. }) => {
            assert_eq!(code, "PARAM_ERROR");
            assert!(message.contains("openid"));
        }
        other => panic!("expected PARAM_ERROR, got {other:?}"),
    }
    // Without a payer, nothing is sent.
    let result = pay.jsapi_prepay(&jsapi_order("HT202412180004", None, "https://example.com/n")).await;
    assert!(matches!(result, Err(ProviderError::Config { detail, .. }) if detail.contains("payer openid")));
    assert_eq!(server.received_requests().await.expect("recording").len(), 1);
}

#[tokio::test]
async fn real_provider_verifies_and_decrypts_notifies_from_its_public_key() {
    let server = MockServer::start().await;
    let fx = pay_fixture(&server);
    let pay = WechatPayV3::new(&fx.config).expect("configured");
    let transaction = json!({
        "appid": "wxd678efh567hg6787", "mchid": MCHID, "out_trade_no": "HT202412180001",
        "transaction_id": "4200002468202412181357913579", "trade_type": "JSAPI", "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功", "bank_type": "OTHERS", "success_time": "2024-12-18T15:55:28+08:00",
        "payer": {"openid": "o1"}, "amount": {"total": 186000, "payer_total": 186000, "currency": "CNY", "payer_currency": "CNY"}
    });
    let resource = fx.platform.encrypt_resource(transaction.to_string().as_bytes(), "transaction").expect("encrypt");
    let body = serde_json::to_vec(&json!({
        "id": "EV-2024121815552800123456789", "create_time": "2024-12-18T15:55:28+08:00",
        "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource", "summary": "支付成功",
        "resource": resource,
    }))
    .expect("json");
    let headers = fx.platform.sign_notify(&body).expect("sign");
    let n = pay.verify_notify(&headers, &body, Utc::now()).expect("verifies");
    assert_eq!(n.id, "EV-2024121815552800123456789");
    assert_eq!(n.transaction.amount_total_fen, 186_000);
    assert_eq!(n.transaction.transaction_id, "4200002468202412181357913579");
    assert!(matches!(
        pay.verify_notify(&headers, &body, Utc::now() + TimeDelta::seconds(301)),
        Err(NotifyError::Signature(_))
    ));
}

#[test]
fn real_pay_configuration_errors() {
    let server_uri = "http://127.0.0.1:9".to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = KeyPair::generate(KeySize::Rsa2048).expect("keygen");
    let good = WechatPayConfig {
        provider: ProviderKind::Real,
        base_url: server_uri,
        appid: "wx1".into(),
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
    };
    assert!(WechatPayV3::new(&good).is_ok());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").expect("write");
    for broken in [
        WechatPayConfig { mchid: "".into(), ..good.clone() },
        WechatPayConfig { apiv3_key: None, ..good.clone() },
        WechatPayConfig { apiv3_key: Some("too-short".into()), ..good.clone() },
        WechatPayConfig { merchant_private_key_file: None, ..good.clone() },
        WechatPayConfig { merchant_private_key_file: Some(dir.path().join("missing.pem")), ..good.clone() },
        WechatPayConfig { merchant_private_key_file: Some(garbage.clone()), ..good.clone() },
        WechatPayConfig { public_key_file: Some(garbage), ..good.clone() },
        WechatPayConfig { public_key_id: "".into(), ..good.clone() },
    ] {
        assert!(matches!(WechatPayV3::new(&broken), Err(ProviderError::Config { .. })));
    }
}

// ---------------------------------------------------------------- sandbox WeChat Pay

fn sandbox_order(out_trade_no: &str, notify_url: String, expire_in: TimeDelta) -> PrepayRequest {
    PrepayRequest {
        out_trade_no: out_trade_no.into(),
        description: "供暖费".into(),
        amount_fen: 4_321,
        payer_openid: Some("sb_0123456789abcdef012345678".into()),
        notify_url,
        time_expire: Utc::now() + expire_in,
    }
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
    let pay = SandboxPay::new("wx0000000000sandbox", "1900000001").expect("sandbox");
    let notify_url = format!("{}/api/payment/notify", merchant.uri());
    pay.jsapi_prepay(&sandbox_order("SB_ORDER_0001", notify_url, TimeDelta::minutes(30))).await.expect("prepay");

    let outcome = pay.pay("SB_ORDER_0001", true).await.expect("paid");
    assert_eq!(outcome.notify_status, 200);
    assert_eq!(outcome.notify_body, json!({"code": "SUCCESS", "message": "OK"}));
    assert_eq!(pay.order("SB_ORDER_0001").map(|o| o.state), Some(SandboxOrderState::Paid));

    // What the merchant received verifies with the provider's own code path and decrypts.
    let received = merchant.received_requests().await.expect("recording");
    let headers = verify::headers_from_map(&received[0].headers).expect("Wechatpay-* headers");
    assert_eq!(headers.serial, pay.platform().serial());
    assert!(headers.serial.starts_with("PUB_KEY_ID_SANDBOX"));
    let n = pay.verify_notify(&headers, &received[0].body, Utc::now()).expect("verifies");
    assert!(n.id.starts_with("EV-"));
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(n.transaction.out_trade_no, "SB_ORDER_0001");
    assert_eq!(n.transaction.amount_total_fen, 4_321);
    assert_eq!(n.transaction.trade_state, "SUCCESS");
    assert_eq!(n.transaction.transaction_id, outcome.transaction_id);
    assert_eq!(n.transaction.payer_openid.as_deref(), Some("sb_0123456789abcdef012345678"));
    assert_eq!((n.transaction.appid.as_str(), n.transaction.mchid.as_str()), ("wx0000000000sandbox", "1900000001"));
    let envelope: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(envelope["resource"]["associated_data"], "transaction");
    assert_eq!(envelope["resource_type"], "encrypt-resource");
    assert_eq!(envelope["summary"], "支付成功");

    // A body altered in transit no longer verifies.
    let mut tampered = received[0].body.clone();
    tampered.extend_from_slice(b" ");
    assert!(matches!(pay.verify_notify(&headers, &tampered, Utc::now()), Err(NotifyError::Signature(_))));

    assert_eq!(pay.pay("SB_ORDER_0001", true).await, Err(SandboxPayError::AlreadyPaid("SB_ORDER_0001".into())));
    assert_eq!(pay.pay("SB_UNKNOWN_01", true).await, Err(SandboxPayError::NotFound("SB_UNKNOWN_01".into())));
}

#[tokio::test]
async fn sandbox_order_is_paid_only_when_the_merchant_acknowledges_success() {
    let merchant = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/refuse"))
        .respond_with(ResponseTemplate::new(500).set_body_string("database down"))
        .mount(&merchant)
        .await;
    Mock::given(method("POST")).and(path("/ok")).respond_with(ResponseTemplate::new(204)).mount(&merchant).await;
    let pay = SandboxPay::new("wx0000000000sandbox", "1900000001").expect("sandbox");
    let refuse = format!("{}/refuse", merchant.uri());
    pay.jsapi_prepay(&sandbox_order("SB_ORDER_0002", refuse, TimeDelta::minutes(30))).await.expect("prepay");
    let outcome = pay.pay("SB_ORDER_0002", true).await.expect("delivered");
    assert_eq!((outcome.notify_status, outcome.notify_body), (500, json!("database down")));
    assert_eq!(pay.order("SB_ORDER_0002").map(|o| o.state), Some(SandboxOrderState::NotPaid));

    let ok = format!("{}/ok", merchant.uri());
    pay.jsapi_prepay(&sandbox_order("SB_ORDER_0003", ok, TimeDelta::minutes(30))).await.expect("prepay");
    let outcome = pay.pay("SB_ORDER_0003", false).await.expect("delivered");
    assert_eq!(outcome.notify_status, 204);
    assert_eq!(pay.order("SB_ORDER_0003").map(|o| o.state), Some(SandboxOrderState::NotPaid), "a failed payment");
    let received = merchant.received_requests().await.expect("recording");
    let last = received.last().expect("a notify");
    let headers = verify::headers_from_map(&last.headers).expect("headers");
    let n = pay.verify_notify(&headers, &last.body, Utc::now()).expect("verifies");
    assert_eq!((n.event_type.as_str(), n.transaction.trade_state.as_str()), ("TRANSACTION.PAYERROR", "PAYERROR"));
    pay.pay("SB_ORDER_0003", true).await.expect("retry succeeds");
    assert_eq!(pay.order("SB_ORDER_0003").map(|o| o.state), Some(SandboxOrderState::Paid));
}

#[tokio::test]
async fn sandbox_expired_order_cannot_be_paid() {
    let pay = SandboxPay::new("wx0000000000sandbox", "1900000001").expect("sandbox");
    let order = sandbox_order("SB_ORDER_0004", "http://127.0.0.1:9/n".into(), TimeDelta::milliseconds(300));
    pay.jsapi_prepay(&order).await.expect("prepay");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(pay.pay("SB_ORDER_0004", true).await, Err(SandboxPayError::Expired("SB_ORDER_0004".into())));
}
