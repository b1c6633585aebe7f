//! WeChat Pay v2 (domain.md §2.1): the real provider against a wiremock stand-in of
//! api.mch.weixin.qq.com (requests checked down to their sign, answers signed like WeChat's), the
//! sandbox's v2 mode delivering XML notifies, and both through the shared payments block.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::HeaderMap;
use chrono::{TimeDelta, TimeZone as _, Utc};
use mpapi::clock::{BEIJING, Clock};
use mpapi::config::{ApiConfig, Config, PayVersion, ProviderKind, WechatPayConfig};
use mpapi::payments::{NotifyOutcome, PayError, Payments};
use mpapi::providers::ProviderError;
use mpapi::providers::wechat_pay::sandbox::{SandboxOrderState, SandboxPay};
use mpapi::providers::wechat_pay::v2::{self, Fields, SignType, V2Signer, WechatPayV2};
use mpapi::providers::wechat_pay::{
    Notification, NotifyError, NotifyEvent, PayParams, PrepayRequest, Refund, RefundRequest,
    RefundStatus, TradeState, Transaction, WechatPay,
};
use mpapi::storage::payments::{PayOrder, PayStatus, RefundRowStatus, Settle, Settled};
use mpapi::storage::{Db, StorageError};
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockBuilder, MockServer, Request, ResponseTemplate};

use crate::app::fresh_database;

/// The test merchant's API v2 key (32 characters, like a real one).
const API_KEY: &str = "mpapiV2TestKey0123456789abcdefAB";
const MCHID: &str = "1900000109";
const APPID: &str = "wxd678efh567hg6787";
const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";

/// A self-signed ECDSA P-256 certificate and its key, made for these tests with `openssl req
/// -x509 -newkey ec` (no real merchant's): what `client_cert_file` / `client_key_file` hold.
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBvTCCAWOgAwIBAgIUfRgcHoHqNYbzr1SSD9nP8e6nm60wCgYIKoZIzj0EAwIw
MzETMBEGA1UEAwwKMTkwMDAwMDEwOTEcMBoGA1UECgwTbXBhcGkgdGVzdCBtZXJj
aGFudDAgFw0yNjEyMDMxNDEzMDBaGA8yMTI2MTEwOTE0MTMwMFowMzETMBEGA1UE
AwwKMTkwMDAwMDEwOTEcMBoGA1UECgwTbXBhcGkgdGVzdCBtZXJjaGFudDBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABKeaV1M86oEKwcfn5U+FMOkuubyTi7K3BW6G
5XmRUiGON/5PB6/kISbU8kbk+P/SkKRKetM71RakGIaBYqVRpYKjUzBRMB0GA1Ud
DgQWBBSDR66DbJ6+ZogGjX1iIxBhnQxnIjAfBgNVHSMEGDAWgBSDR66DbJ6+ZogG
jX1iIxBhnQxnIjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQC/
4gZBG/lbUFls0Um3aH+XZmPVyiDe5+wKBD9hyLgzMwIgD2oe6ue4YIAFu1bHr0bD
QmvWkJhbhA8tcjdOPFSpLIE=
-----END CERTIFICATE-----
";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUVRvYFNOOxNa5BhH
KVLGW0dC8xVfwKHONulVQ1bd7amhRANCAASnmldTPOqBCsHH5+VPhTDpLrm8k4uy
twVuhuV5kVIhjjf+Twev5CEm1PJG5Pj/0pCkSnrTO9UWpBiGgWKlUaWC
-----END PRIVATE KEY-----
";

/// The v2 merchant of these tests, at `server`.
fn config(server: &MockServer) -> WechatPayConfig {
    WechatPayConfig {
        provider: ProviderKind::Real,
        version: PayVersion::V2,
        base_url: server.uri(),
        mchid: MCHID.into(),
        api_key: Some(API_KEY.into()),
        ..WechatPayConfig::default()
    }
}

fn provider(server: &MockServer) -> WechatPayV2 {
    WechatPayV2::new(APPID, &config(server)).expect("configured")
}

/// What WeChat Pay checks of a v2 request: XML it reads, sent as `text/xml`, `appid` and
/// `mch_id` ours, a 32-character nonce, a `sign` over every other field with the API key and
/// the `sign_type` it names — and the `expected` fields.
struct SignedXml {
    sign_type: SignType,
    expected: Vec<(&'static str, String)>,
}

fn signed_xml(expected: &[(&'static str, &str)]) -> SignedXml {
    let expected = expected
        .iter()
        .map(|(name, value)| (*name, value.to_string()))
        .collect();
    SignedXml {
        sign_type: SignType::Md5,
        expected,
    }
}

impl Match for SignedXml {
    fn matches(&self, request: &Request) -> bool {
        let Ok(fields) = v2::read_xml(&request.body) else {
            return false;
        };
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
        request
            .headers
            .get("content-type")
            .is_some_and(|v| v == "text/xml")
            && field("appid") == APPID
            && field("mch_id") == MCHID
            && field("nonce_str").len() == 32
            && field("sign_type") == self.sign_type.as_str()
            && v2::verify_sign(&fields, API_KEY, self.sign_type)
            && self
                .expected
                .iter()
                .all(|(name, value)| field(name) == value)
    }
}

/// An XML answer with `fields` exactly as given.
fn xml(fields: &Fields) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(v2::to_xml(fields).into_bytes(), "text/plain")
}

/// A signed request to `endpoint` with the `expected` fields.
fn call(endpoint: &str, expected: &[(&'static str, &str)]) -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(endpoint))
        .and(signed_xml(expected))
}

/// Mount `mock` answering `template`, expected exactly once.
async fn once(server: &MockServer, mock: MockBuilder, template: ResponseTemplate) {
    mock.respond_with(template).expect(1).mount(server).await;
}

/// WeChat's successful answer carrying `pairs`, signed by `signer`.
fn answer_by(signer: &V2Signer, pairs: &[(&str, &str)]) -> Fields {
    let mut fields = v2::fields_of([
        ("return_code", "SUCCESS"),
        ("return_msg", "OK"),
        ("appid", APPID),
        ("mch_id", MCHID),
        ("nonce_str", "IITRi8Iabbblz1Jc"),
        ("result_code", "SUCCESS"),
    ]);
    fields.extend(v2::fields_of(pairs.iter().copied()));
    signer.signed(fields)
}

/// [`answer_by`] the test merchant's key (MD5).
fn answer(pairs: &[(&str, &str)]) -> ResponseTemplate {
    xml(&answer_by(
        &V2Signer::new(API_KEY.into(), SignType::Md5),
        pairs,
    ))
}

/// A business failure `err_code`, signed.
fn failure(err_code: &str, err_code_des: &str) -> ResponseTemplate {
    answer(&[
        ("result_code", "FAIL"),
        ("err_code", err_code),
        ("err_code_des", err_code_des),
    ])
}

/// What `paySign` must be: the sign over exactly the five other `wx.requestPayment` fields.
fn pay_sign(params: &PayParams, api_key: &str, sign_type: SignType) -> String {
    let signed = v2::fields_of([
        ("appId", params.app_id.as_str()),
        ("timeStamp", &params.time_stamp),
        ("nonceStr", &params.nonce_str),
        ("package", &params.package),
        ("signType", &params.sign_type),
    ]);
    v2::sign(&signed, api_key, sign_type)
}

/// `fields` signed with a key that is not the merchant's (a forger's).
fn forged(fields: Fields) -> Fields {
    V2Signer::new("f".repeat(32).into(), SignType::Md5).signed(fields)
}

/// A database of its own for a sandbox platform (its keys and ledger live there).
async fn sandbox_db() -> mpapi::storage::Db {
    mpapi::storage::Db::connect("sqlite::memory:").await.expect("a database")
}

/// What `pay` makes of a notify of `fields` (v2 notifies carry no headers to check).
async fn verify(pay: &dyn WechatPay, fields: &Fields) -> Result<Notification, NotifyError> {
    pay.verify_notify(&HeaderMap::new(), v2::to_xml(fields).as_bytes(), Utc::now()).await
}

/// The message of the vendor error `code` (panics on anything else).
fn expect_vendor<T: std::fmt::Debug>(result: Result<T, ProviderError>, code: &str) -> String {
    match result {
        Err(ProviderError::Vendor {
            code: got, message, ..
        }) if got == code => message,
        other => panic!("expected the vendor error {code}, got {other:?}"),
    }
}

fn order(out_trade_no: &str, description: &str, openid: Option<&str>) -> PrepayRequest {
    PrepayRequest {
        out_trade_no: out_trade_no.into(),
        description: description.into(),
        amount_fen: 1_860,
        payer_openid: openid.map(str::to_owned),
        notify_url: "https://example.com/api/pay/notify".into(),
        time_expire: Utc::now() + TimeDelta::minutes(30),
    }
}

fn received_fields(request: &Request) -> Fields {
    v2::read_xml(&request.body).expect("the request is XML")
}

#[tokio::test]
async fn unifiedorder_sends_a_signed_order_and_reads_the_prepay_id() {
    let server = MockServer::start().await;
    let order = order("CM202412180001", "物业费 2024年12月", Some(OPENID));
    let time_expire = order
        .time_expire
        .with_timezone(&BEIJING)
        .format("%Y%m%d%H%M%S")
        .to_string();
    once(
        &server,
        call(
            "/pay/unifiedorder",
            &[
                ("body", "物业费 2024年12月"),
                ("out_trade_no", "CM202412180001"),
                ("total_fee", "1860"),
                ("spbill_create_ip", v2::SPBILL_CREATE_IP),
                ("notify_url", "https://example.com/api/pay/notify"),
                ("trade_type", "JSAPI"),
                ("openid", OPENID),
                ("time_expire", &time_expire),
            ],
        ),
        answer(&[
            ("trade_type", "JSAPI"),
            ("prepay_id", "wx201410272009395522657a690389285100"),
        ]),
    )
    .await;
    let pay = provider(&server);
    assert!(pay.needs_payer());
    let prepay_id = pay.jsapi_prepay(&order).await.expect("prepay");
    assert_eq!(prepay_id, "wx201410272009395522657a690389285100");

    // wx.requestPayment's parameters: MD5 over exactly the five fields.
    let params = pay.pay_params(&prepay_id).await.expect("params");
    assert_eq!(
        (params.app_id.as_str(), params.sign_type.as_str()),
        (APPID, "MD5")
    );
    assert_eq!(
        params.package,
        "prepay_id=wx201410272009395522657a690389285100"
    );
    assert_eq!(params.pay_sign, pay_sign(&params, API_KEY, SignType::Md5));
    assert!(
        (Utc::now().timestamp() - params.time_stamp.parse::<i64>().expect("seconds")).abs() < 5
    );
}

#[tokio::test]
async fn hmac_merchants_sign_requests_and_pay_parameters_with_hmac() {
    let server = MockServer::start().await;
    let hmac = V2Signer::new(API_KEY.into(), SignType::HmacSha256);
    once(
        &server,
        Mock::given(method("POST"))
            .and(path("/pay/unifiedorder"))
            .and(SignedXml {
                sign_type: SignType::HmacSha256,
                expected: Vec::new(),
            }),
        xml(&answer_by(&hmac, &[("prepay_id", "wx2024")])),
    )
    .await;
    let config = WechatPayConfig {
        sign_type: SignType::HmacSha256,
        ..config(&server)
    };
    let pay = WechatPayV2::new(APPID, &config).expect("configured");
    // A long description is cut to 128 bytes on a character boundary.
    let long = "社区物业费".repeat(10);
    assert_eq!(
        pay.jsapi_prepay(&order("CM202412180002", &long, Some(OPENID)))
            .await
            .expect("prepay"),
        "wx2024"
    );
    let sent = received_fields(&server.received_requests().await.expect("recording")[0]);
    assert_eq!(
        sent["body"],
        "社区物业费".repeat(10).chars().take(42).collect::<String>()
    );
    assert_eq!(sent["sign"].len(), 64);

    let params = pay.pay_params("wx2024").await.expect("params");
    assert_eq!(params.sign_type, "HMAC-SHA256");
    assert_eq!(
        params.pay_sign,
        pay_sign(&params, API_KEY, SignType::HmacSha256)
    );
}

#[tokio::test]
async fn fail_answers_are_vendor_errors() {
    let server = MockServer::start().await;
    let unifiedorder = |no: &str| call("/pay/unifiedorder", &[("out_trade_no", no)]);
    unifiedorder("CM_PAID_0001")
        .respond_with(failure("ORDERPAID", "该订单已支付"))
        .mount(&server)
        .await;
    unifiedorder("CM_BUSY_0001")
        .respond_with(failure("SYSTEMERROR", "系统错误"))
        .mount(&server)
        .await;
    unifiedorder("CM_SHUT_0001")
        .respond_with(failure("ORDERCLOSED", "订单已关闭"))
        .mount(&server)
        .await;
    // A communication failure carries no sign.
    let refused = v2::fields_of([("return_code", "FAIL"), ("return_msg", "签名错误")]);
    unifiedorder("CM_SIGN_0001")
        .respond_with(xml(&refused))
        .mount(&server)
        .await;
    let pay = provider(&server);
    for (out_trade_no, code, message) in [
        ("CM_PAID_0001", "ORDERPAID", "该订单已支付"),
        ("CM_BUSY_0001", "SYSTEM_ERROR", "系统错误"),
        ("CM_SHUT_0001", "ORDER_CLOSED", "订单已关闭"),
        ("CM_SIGN_0001", "FAIL", "签名错误"),
    ] {
        let result = pay
            .jsapi_prepay(&order(out_trade_no, "物业费", Some(OPENID)))
            .await;
        assert_eq!(expect_vendor(result, code), message);
    }
    // Without a payer, nothing is sent.
    let result = pay
        .jsapi_prepay(&order("CM_NOBODY_01", "物业费", None))
        .await;
    assert!(
        matches!(result, Err(ProviderError::Config { detail, .. }) if detail.contains("openid"))
    );
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        4
    );
}

#[tokio::test]
async fn answers_that_do_not_verify_are_transport_errors() {
    let server = MockServer::start().await;
    let prepay = [("prepay_id", "wx201410272009395522657a690389285100")];
    let stranger = V2Signer::new("0123456789abcdef0123456789abcdef".into(), SignType::Md5);
    let mut tampered = answer_by(&V2Signer::new(API_KEY.into(), SignType::Md5), &prepay);
    tampered.insert("prepay_id".into(), "wx_swapped".into());
    let mut unsigned = answer_by(&stranger, &prepay);
    unsigned.remove("sign");
    let mut foreign = answer_by(&V2Signer::new(API_KEY.into(), SignType::Md5), &prepay);
    foreign.insert("mch_id".into(), "1900000110".into());
    let foreign = V2Signer::new(API_KEY.into(), SignType::Md5).signed(foreign);
    let answers = [
        ("signed by another key", xml(&answer_by(&stranger, &prepay))),
        ("changed after signing", xml(&tampered)),
        ("unsigned", xml(&unsigned)),
        ("another merchant's", xml(&foreign)),
        (
            "HTTP 500",
            ResponseTemplate::new(500).set_body_string("busy"),
        ),
        (
            "not XML",
            ResponseTemplate::new(200).set_body_string("{\"prepay_id\":\"wx1\"}"),
        ),
        (
            "a DOCTYPE",
            ResponseTemplate::new(200).set_body_string("<!DOCTYPE xml><xml></xml>"),
        ),
    ];
    let pay = provider(&server);
    for (what, template) in answers {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(template)
            .mount(&server)
            .await;
        let result = pay
            .jsapi_prepay(&order("CM202412180003", "物业费", Some(OPENID)))
            .await;
        assert!(
            matches!(result, Err(ProviderError::Transport { .. })),
            "{what}: {result:?}"
        );
    }
}

const CODE_URL: &str = "weixin://wxpay/bizpayurl?pr=Xz6dUpAzz";

#[tokio::test]
async fn native_unifiedorder_sends_a_product_id_and_no_openid_and_reads_the_code_url() {
    let server = MockServer::start().await;
    // The payer's openid is left out even when the order has one: whoever scans pays.
    let order = order("CM202412180010", "物业费 2024年12月", Some(OPENID));
    let time_expire = order
        .time_expire
        .with_timezone(&BEIJING)
        .format("%Y%m%d%H%M%S")
        .to_string();
    once(
        &server,
        call(
            "/pay/unifiedorder",
            &[
                ("body", "物业费 2024年12月"),
                ("out_trade_no", "CM202412180010"),
                ("total_fee", "1860"),
                ("spbill_create_ip", v2::SPBILL_CREATE_IP),
                ("notify_url", "https://example.com/api/pay/notify"),
                ("trade_type", "NATIVE"),
                ("product_id", "CM202412180010"),
                ("time_expire", &time_expire),
            ],
        ),
        answer(&[
            ("trade_type", "NATIVE"),
            ("prepay_id", "wx201410272009395522657a690389285100"),
            ("code_url", CODE_URL),
        ]),
    )
    .await;
    let pay = provider(&server);
    assert_eq!(pay.native_prepay(&order).await.expect("prepay"), CODE_URL);
    let sent = received_fields(&server.received_requests().await.expect("recording")[0]);
    assert!(!sent.contains_key("openid"), "{sent:?}");

    // product_id is at most 32 bytes: a longer order number is cut.
    server.reset().await;
    let template = answer(&[("prepay_id", "wx2024"), ("code_url", CODE_URL)]);
    once(&server, call("/pay/unifiedorder", &[]), template).await;
    let long = format!("CM{}", "7".repeat(38));
    let code_url = pay.native_prepay(&order_without_payer(&long)).await;
    assert_eq!(code_url.expect("prepay"), CODE_URL);
    let sent = received_fields(&server.received_requests().await.expect("recording")[0]);
    assert_eq!(
        (sent["out_trade_no"].as_str(), sent["product_id"].as_str()),
        (long.as_str(), &long[..32])
    );
}

fn order_without_payer(out_trade_no: &str) -> PrepayRequest {
    order(out_trade_no, "物业费", None)
}

#[tokio::test]
async fn native_unifiedorder_refusals_and_answers_without_a_code_url_are_errors() {
    let server = MockServer::start().await;
    let unifiedorder = |no: &str| {
        call(
            "/pay/unifiedorder",
            &[("out_trade_no", no), ("trade_type", "NATIVE")],
        )
    };
    unifiedorder("CM_PAID_0010")
        .respond_with(failure("ORDERPAID", "该订单已支付"))
        .mount(&server)
        .await;
    unifiedorder("CM_SHUT_0010")
        .respond_with(failure("ORDERCLOSED", "订单已关闭"))
        .mount(&server)
        .await;
    // Verified and successful, but no code_url (a JSAPI-like answer).
    unifiedorder("CM_NOURL_0010")
        .respond_with(answer(&[("trade_type", "NATIVE"), ("prepay_id", "wx2024")]))
        .mount(&server)
        .await;
    let pay = provider(&server);
    let result = pay.native_prepay(&order_without_payer("CM_PAID_0010")).await;
    assert_eq!(expect_vendor(result, "ORDERPAID"), "该订单已支付");
    let result = pay.native_prepay(&order_without_payer("CM_SHUT_0010")).await;
    assert_eq!(expect_vendor(result, "ORDER_CLOSED"), "订单已关闭");
    let result = pay.native_prepay(&order_without_payer("CM_NOURL_0010")).await;
    assert!(
        matches!(&result, Err(ProviderError::Transport { detail, .. }) if detail.contains("code_url")),
        "{result:?}"
    );
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        3
    );
}

#[tokio::test]
async fn orderquery_is_read_into_a_transaction() {
    let server = MockServer::start().await;
    let query = |no: &str| call("/pay/orderquery", &[("out_trade_no", no)]);
    once(
        &server,
        query("CM202412180001"),
        answer(&[
            ("trade_state", "SUCCESS"),
            ("trade_state_desc", "支付成功"),
            ("openid", OPENID),
            ("trade_type", "JSAPI"),
            ("total_fee", "1860"),
            ("transaction_id", "4200002468202412181357913579"),
            ("out_trade_no", "CM202412180001"),
            ("attach", ""),
            ("time_end", "20241218155528"),
        ]),
    )
    .await;
    once(
        &server,
        query("CM202412180002"),
        answer(&[
            ("out_trade_no", "CM202412180002"),
            ("trade_state", "NOTPAY"),
            ("trade_state_desc", "订单未支付"),
        ]),
    )
    .await;
    once(
        &server,
        query("CM202412180404"),
        failure("ORDERNOTEXIST", "此交易订单号不存在"),
    )
    .await;

    let pay = provider(&server);
    assert_eq!(
        pay.query("CM202412180001").await.expect("query"),
        Transaction {
            appid: APPID.into(),
            mchid: MCHID.into(),
            out_trade_no: "CM202412180001".into(),
            transaction_id: Some("4200002468202412181357913579".into()),
            trade_state: TradeState::Success,
            // 15:55:28 Beijing time.
            success_time: Utc.with_ymd_and_hms(2024, 12, 18, 7, 55, 28).single(),
            amount_total_fen: 1_860,
            payer_openid: Some(OPENID.into()),
        }
    );
    let unpaid = pay.query("CM202412180002").await.expect("query");
    assert_eq!(
        (
            unpaid.trade_state,
            unpaid.transaction_id,
            unpaid.success_time,
            unpaid.amount_total_fen
        ),
        (TradeState::NotPay, None, None, 0)
    );
    expect_vendor(pay.query("CM202412180404").await, "ORDER_NOT_EXIST");
}

#[tokio::test]
async fn closeorder_closes_once_or_again_and_refuses_paid_orders() {
    let server = MockServer::start().await;
    for (out_trade_no, template) in [
        ("CM202412180001", answer(&[])),
        ("CM202412180002", failure("ORDERCLOSED", "订单已关闭")),
        ("CM202412180003", failure("ORDERPAID", "订单已支付")),
        ("CM202412180404", failure("ORDERNOTEXIST", "订单不存在")),
    ] {
        let close = call("/pay/closeorder", &[("out_trade_no", out_trade_no)]);
        once(&server, close, template).await;
    }
    let pay = provider(&server);
    pay.close("CM202412180001").await.expect("closed");
    pay.close("CM202412180002")
        .await
        .expect("closed before: closed");
    expect_vendor(pay.close("CM202412180003").await, "ORDERPAID");
    // The name the payments sweep takes as "nothing to close".
    expect_vendor(pay.close("CM202412180404").await, "ORDER_NOT_EXIST");
}

fn refund_request(out_refund_no: &str) -> RefundRequest {
    RefundRequest {
        out_trade_no: "CM202412180001".into(),
        out_refund_no: out_refund_no.into(),
        reason: Some("重复缴费".into()),
        refund_fen: 600,
        total_fen: 1_860,
        notify_url: "https://example.com/api/pay/notify".into(),
    }
}

#[tokio::test]
async fn refunds_need_the_merchant_certificate() {
    let server = MockServer::start().await;
    let pay = provider(&server);
    let result = pay.refund(&refund_request("R2024121900001")).await;
    let needs_cert = matches!(&result, Err(ProviderError::Config { detail, .. })
        if detail.contains("client_cert_file"));
    assert!(needs_cert, "{result:?}");
    assert!(
        server
            .received_requests()
            .await
            .expect("recording")
            .is_empty(),
        "nothing sent"
    );
}

#[tokio::test]
async fn refund_and_refund_query_are_signed_and_read() {
    let server = MockServer::start().await;
    once(
        &server,
        call(
            "/secapi/pay/refund",
            &[
                ("out_trade_no", "CM202412180001"),
                ("out_refund_no", "R2024121900001"),
                ("total_fee", "1860"),
                ("refund_fee", "600"),
                ("refund_desc", "重复缴费"),
                ("notify_url", "https://example.com/api/pay/notify"),
            ],
        ),
        answer(&[
            ("transaction_id", "4200002468202412181357913579"),
            ("out_trade_no", "CM202412180001"),
            ("out_refund_no", "R2024121900001"),
            ("refund_id", "50000408942018111907145868882"),
            ("refund_fee", "600"),
            ("total_fee", "1860"),
            ("cash_fee", "1860"),
        ]),
    )
    .await;
    let refundquery = |no: &str| call("/pay/refundquery", &[("out_refund_no", no)]);
    once(
        &server,
        refundquery("R2024121900001"),
        answer(&[
            ("transaction_id", "4200002468202412181357913579"),
            ("out_trade_no", "CM202412180001"),
            ("total_fee", "1860"),
            ("refund_count", "1"),
            ("out_refund_no_0", "R2024121900001"),
            ("refund_id_0", "50000408942018111907145868882"),
            ("refund_fee_0", "600"),
            ("refund_status_0", "SUCCESS"),
            ("refund_success_time_0", "2024-12-19 10:00:05"),
        ]),
    )
    .await;
    once(
        &server,
        refundquery("R2024121900404"),
        failure("REFUNDNOTEXIST", "退款订单查询失败"),
    )
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (
        dir.path().join("apiclient_cert.pem"),
        dir.path().join("apiclient_key.pem"),
    );
    std::fs::write(&cert, TEST_CERT).expect("write");
    std::fs::write(&key, TEST_KEY).expect("write");
    let config = WechatPayConfig {
        client_cert_file: Some(cert),
        client_key_file: Some(key),
        ..config(&server)
    };
    let pay = WechatPayV2::new(APPID, &config).expect("configured with the certificate");
    assert_eq!(
        pay.refund(&refund_request("R2024121900001"))
            .await
            .expect("accepted"),
        Refund {
            out_refund_no: "R2024121900001".into(),
            refund_id: "50000408942018111907145868882".into(),
            status: RefundStatus::Processing,
            success_time: None,
            refund_fen: 600,
        }
    );
    let refund = pay.query_refund("R2024121900001").await.expect("query");
    assert_eq!(
        (refund.status, refund.refund_fen),
        (RefundStatus::Success, 600)
    );
    assert_eq!(
        refund.success_time,
        Utc.with_ymd_and_hms(2024, 12, 19, 2, 0, 5).single()
    );
    // The name the payments sweep takes as "WeChat never received it: ask again".
    expect_vendor(
        pay.query_refund("R2024121900404").await,
        "RESOURCE_NOT_EXISTS",
    );
}

#[tokio::test]
async fn real_provider_verifies_payment_and_refund_notifies() {
    let server = MockServer::start().await;
    let pay = provider(&server);
    let merchant = V2Signer::new(API_KEY.into(), SignType::Md5);
    let notify = answer_by(
        &merchant,
        &[
            ("openid", OPENID),
            ("trade_type", "JSAPI"),
            ("total_fee", "1860"),
            ("transaction_id", "4200002468202412181357913579"),
            ("out_trade_no", "CM202412180001"),
            ("time_end", "20241218155528"),
        ],
    );
    let n = verify(&pay, &notify).await.expect("verifies");
    assert_eq!(n.id, "v2:4200002468202412181357913579");
    assert!(matches!(n.event, NotifyEvent::Transaction(t) if t.amount_total_fen == 1_860));
    let result = verify(&pay, &forged(notify.clone())).await;
    assert!(
        matches!(result, Err(NotifyError::Signature(_))),
        "{result:?}"
    );

    let req_info = merchant
        .encrypt_req_info(&v2::fields_of([
            ("out_refund_no", "R2024121900001"),
            ("out_trade_no", "CM202412180001"),
            ("refund_fee", "600"),
            ("refund_id", "50000408942018111907145868882"),
            ("refund_status", "SUCCESS"),
            ("success_time", "2024-12-19 10:00:05"),
            ("total_fee", "1860"),
            ("transaction_id", "4200002468202412181357913579"),
        ]))
        .expect("sealed");
    let refund = v2::fields_of([
        ("return_code", "SUCCESS"),
        ("appid", APPID),
        ("mch_id", MCHID),
        ("nonce_str", "0d4f14ee4f5d2b3bb2b5dbc3e4e6b3e4"),
        ("req_info", &req_info),
    ]);
    let n = verify(&pay, &refund).await.expect("opens");
    assert_eq!(
        (n.id.as_str(), n.event_type.as_str()),
        ("v2:refund:R2024121900001:SUCCESS", "REFUND.SUCCESS")
    );
    assert!(matches!(n.event, NotifyEvent::Refund(r) if r.refund_fen == 600 && r.mchid == MCHID));
}

#[test]
fn community_and_charging_pay_with_v2_and_production_wants_their_key() {
    for (api, version) in [
        ("community", PayVersion::V2),
        ("charging", PayVersion::V2),
        ("heating", PayVersion::V3),
        ("points", PayVersion::V3),
        ("o2o", PayVersion::V3),
    ] {
        assert_eq!(
            ApiConfig::defaults(api).wechat_pay.version,
            version,
            "{api}"
        );
    }
    let mut config = Config::default();
    let community = config.apis.get_mut("community").expect("a section");
    community.wechat_pay.provider = ProviderKind::Real;
    let problems = config.production_problems(&["community"]).join("\n");
    assert!(
        problems.contains("apis.community.wechat_pay.api_key"),
        "{problems}"
    );
    config
        .apis
        .get_mut("community")
        .expect("a section")
        .wechat_pay
        .api_key = Some(API_KEY.into());
    let problems = config.production_problems(&["community"]).join("\n");
    assert!(!problems.contains("api_key"), "{problems}");
    // v3 merchants need no v2 key.
    assert!(
        !config
            .production_problems(&["heating"])
            .join("\n")
            .contains("api_key")
    );
}

// ---------------------------------------------------------------- the sandbox in v2 mode

/// A merchant stand-in answering every notify with `status` and `body`.
async fn merchant_answering(status: u16, body: String) -> MockServer {
    let merchant = MockServer::start().await;
    let answer =
        ResponseTemplate::new(status).set_body_raw(body.into_bytes(), v2::XML_CONTENT_TYPE);
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&merchant)
        .await;
    merchant
}

fn sandbox_order(out_trade_no: &str, notify_url: String) -> PrepayRequest {
    PrepayRequest {
        notify_url,
        ..order(out_trade_no, "物业费", Some(OPENID))
    }
}

#[tokio::test]
async fn sandbox_v2_delivers_xml_notifies_signed_with_its_key() {
    let merchant = merchant_answering(200, v2::notify_ack(true, "")).await;
    let pay = SandboxPay::new_v2(sandbox_db().await, APPID, MCHID, Clock::default()).expect("sandbox");
    let api_key = pay.api_key().await.unwrap().expect("v2 mode");
    assert_eq!(api_key.len(), 32);
    pay.jsapi_prepay(&sandbox_order("SB_V2_ORDER_01", merchant.uri()))
        .await
        .expect("prepay");

    let outcome = pay.pay("SB_V2_ORDER_01", true).await.expect("paid");
    assert_eq!(outcome.notify_status, 200);
    assert_eq!(
        pay.order("SB_V2_ORDER_01").await.unwrap().map(|o| o.state),
        Some(SandboxOrderState::Paid)
    );
    let received = merchant.received_requests().await.expect("recording");
    let notify = &received[0];
    assert_eq!(notify.headers["content-type"], "text/xml");
    assert!(
        !notify
            .headers
            .keys()
            .any(|name| name.as_str().starts_with("wechatpay-"))
    );
    let fields = v2::read_xml(&notify.body).expect("XML");
    assert!(
        v2::verify_sign(&fields, &api_key, SignType::Md5),
        "signed with the sandbox's key"
    );
    assert_eq!(
        (
            fields["return_code"].as_str(),
            fields["result_code"].as_str()
        ),
        ("SUCCESS", "SUCCESS")
    );
    assert_eq!(
        (fields["total_fee"].as_str(), fields["openid"].as_str()),
        ("1860", OPENID)
    );
    let n = pay
        .verify_notify(&notify.headers, &notify.body, Utc::now())
        .await
        .expect("verifies");
    assert_eq!(n.id, format!("v2:{}", outcome.transaction_id));
    let NotifyEvent::Transaction(t) = n.event else {
        panic!("a transaction")
    };
    assert_eq!(
        (t.trade_state, t.amount_total_fen),
        (TradeState::Success, 1_860)
    );
    assert!(
        t.success_time
            .is_some_and(|at| (Utc::now() - at).num_seconds().abs() < 5)
    );

    // Pay parameters: MD5 over the five fields, with the sandbox's key.
    let params = pay.pay_params("wx_sandbox_prepay").await.expect("params");
    assert_eq!(
        (params.sign_type.as_str(), params.pay_sign.clone()),
        ("MD5", pay_sign(&params, &api_key, SignType::Md5))
    );

    // A notify signed with another key is refused.
    let mut tampered = fields.clone();
    tampered.insert("total_fee".into(), "1".into());
    let result = verify(&pay, &forged(tampered)).await;
    assert!(
        matches!(result, Err(NotifyError::Signature(_))),
        "{result:?}"
    );
    // The v3 sandbox has no v2 key.
    assert!(
        SandboxPay::new(sandbox_db().await, APPID, MCHID, Clock::default())
            .expect("sandbox")
            .api_key()
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn sandbox_v2_order_is_paid_only_when_the_merchant_acks_success() {
    let failing = merchant_answering(200, v2::notify_ack(false, "签名验证失败")).await;
    let pay = SandboxPay::new_v2(sandbox_db().await, APPID, MCHID, Clock::default()).expect("sandbox");
    pay.jsapi_prepay(&sandbox_order("SB_V2_ORDER_02", failing.uri()))
        .await
        .expect("prepay");
    let outcome = pay.pay("SB_V2_ORDER_02", true).await.expect("delivered");
    assert_eq!(outcome.notify_status, 200);
    assert_eq!(
        pay.order("SB_V2_ORDER_02").await.unwrap().map(|o| o.state),
        Some(SandboxOrderState::NotPaid),
        "FAIL ack"
    );
    let received = failing.received_requests().await.expect("recording");
    let n = pay
        .verify_notify(&received[0].headers, &received[0].body, Utc::now())
        .await
        .expect("verifies");
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");

    let ok = merchant_answering(200, v2::notify_ack(true, "")).await;
    pay.jsapi_prepay(&sandbox_order("SB_V2_ORDER_03", ok.uri()))
        .await
        .expect("prepay");
    pay.pay("SB_V2_ORDER_03", false).await.expect("delivered");
    let received = ok.received_requests().await.expect("recording");
    let n = pay
        .verify_notify(&received[0].headers, &received[0].body, Utc::now())
        .await
        .expect("verifies");
    assert_eq!(
        (n.id.as_str(), n.event_type.as_str()),
        ("v2:SB_V2_ORDER_03:FAIL", "TRANSACTION.PAYERROR")
    );
    assert!(
        matches!(n.event, NotifyEvent::Transaction(t) if t.trade_state == TradeState::PayError)
    );
}

// ---------------------------------------------------------------- through the payments block

/// An API's settle that only counts what it was asked to apply.
#[derive(Default)]
struct Counting {
    paid: Mutex<Vec<String>>,
}

#[async_trait]
impl Settle for Counting {
    async fn paid(
        &self,
        _tx: &sea_orm::DatabaseTransaction,
        order: &PayOrder,
        _now: i64,
    ) -> Result<Settled, StorageError> {
        self.paid
            .lock()
            .expect("lock")
            .push(order.out_trade_no.clone());
        Ok(Settled::Applied)
    }

    async fn released(
        &self,
        _tx: &sea_orm::DatabaseTransaction,
        _order: &PayOrder,
    ) -> Result<(), StorageError> {
        Ok(())
    }
}

/// A merchant server answering v2 notifies the way the community adapter will: the payments
/// block's outcome as HTTP status and [`v2::notify_ack`]. Keeps the bodies it received.
async fn serve_notifies(
    listener: tokio::net::TcpListener,
    payments: Arc<Payments>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (payments, bodies) = (payments.clone(), bodies.clone());
            async move {
                bodies.lock().expect("lock").push(body.to_vec());
                let outcome = payments.notify(&headers, &body).await;
                let status = axum::http::StatusCode::from_u16(outcome.status()).expect("a status");
                let ack = v2::notify_ack(outcome == NotifyOutcome::Applied, outcome.message());
                (status, [("content-type", v2::XML_CONTENT_TYPE)], ack)
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serving") });
}

#[tokio::test]
async fn sandbox_v2_payments_settle_once_and_refund_through_the_shared_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&fresh_database(&dir).await)
        .await
        .expect("database");
    let clock = Clock::default();
    let sandbox = Arc::new(SandboxPay::new_v2(sandbox_db().await, APPID, MCHID, clock.clone()).expect("sandbox"));
    let settle = Arc::new(Counting::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port 0 binds");
    let notify_url = format!("http://{}/notify", listener.local_addr().expect("bound"));
    let api = "community";
    let payments = Arc::new(Payments::new(
        api,
        sandbox.clone(),
        settle.clone(),
        notify_url,
        db.clone(),
        clock.clone(),
    ));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    serve_notifies(listener, payments.clone(), bodies.clone()).await;

    let no = format!("CM{}", mpapi::random::digits(16));
    let now = clock.now_ms();
    let new = payments.new_order(
        &no,
        None,
        Some(OPENID),
        "物业费",
        1_860,
        now,
        std::time::Duration::from_secs(1800),
    );
    db.payments().insert(new).await.expect("inserted");
    let order = db
        .payments()
        .get(&no)
        .await
        .expect("read")
        .expect("the order");
    let params = payments.pay_params(&order).await.expect("pay parameters");
    assert_eq!(params.sign_type, "MD5");

    let outcome = sandbox.pay(&no, true).await.expect("paid");
    assert_eq!(
        (outcome.notify_status, outcome.notify_body.as_str()),
        (200, Some(v2::notify_ack(true, "").as_str()))
    );
    let paid = db
        .payments()
        .get(&no)
        .await
        .expect("read")
        .expect("the order");
    assert_eq!(
        (paid.status, paid.transaction_id.as_deref()),
        (PayStatus::Paid, Some(outcome.transaction_id.as_str()))
    );

    // WeChat delivers the same notify again: acknowledged, applied once.
    let first = bodies.lock().expect("lock")[0].clone();
    assert_eq!(
        payments.notify(&HeaderMap::new(), &first).await,
        NotifyOutcome::Applied
    );
    assert_eq!(*settle.paid.lock().expect("lock"), vec![no.clone()]);
    // A forged one is refused as a bad signature.
    let mut tampered = v2::read_xml(&first).expect("XML");
    tampered.insert("total_fee".into(), "1".into());
    let forged = v2::to_xml(&forged(tampered));
    let outcome = payments.notify(&HeaderMap::new(), forged.as_bytes()).await;
    assert_eq!(outcome, NotifyOutcome::BadSignature);

    // A refund: asked of the sandbox, finished by its v2 refund notify (encrypted req_info).
    let refund = payments
        .refund(&paid, 600, "重复缴费")
        .await
        .expect("asked")
        .expect("started");
    for _ in 0..200 {
        let row = db
            .payments()
            .refund(api, &refund.out_refund_no)
            .await
            .expect("read")
            .expect("the refund");
        if row.status == RefundRowStatus::Success {
            let bodies = bodies.lock().expect("lock");
            let refund_notify = v2::read_xml(bodies.last().expect("a notify")).expect("XML");
            assert!(refund_notify.contains_key("req_info") && !refund_notify.contains_key("sign"));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the refund notify did not finish the refund");
}

/// A pending order of `payments` with no payer (NATIVE needs none), inserted and read back.
async fn stored_order(db: &Db, payments: &Payments, no: &str, clock: &Clock) -> PayOrder {
    let now = clock.now_ms();
    let new = payments.new_order(
        no,
        None,
        None,
        "物业费",
        1_860,
        now,
        std::time::Duration::from_secs(1800),
    );
    db.payments().insert(new).await.expect("inserted");
    db.payments()
        .get(no)
        .await
        .expect("read")
        .expect("the order")
}

/// Payments through the real v2 provider at `server`, on a fresh database in `dir` (its URL
/// last).
async fn real_payments(server: &MockServer, dir: &tempfile::TempDir) -> (Db, Clock, Payments, String) {
    let url = fresh_database(dir).await;
    let db = Db::connect(&url).await.expect("database");
    let clock = Clock::default();
    let payments = Payments::new(
        "community",
        Arc::new(provider(server)),
        Arc::new(Counting::default()),
        "https://example.com/api/pay/notify".into(),
        db.clone(),
        clock.clone(),
    );
    (db, clock, payments, url)
}

#[tokio::test]
async fn native_params_store_the_code_url_and_a_final_refusal_fails_the_order() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, clock, payments, _) = real_payments(&server, &dir).await;
    let stored = |no: &'static str| {
        let db = db.clone();
        async move {
            db.payments()
                .get(no)
                .await
                .expect("read")
                .expect("the order")
        }
    };

    let order = stored_order(&db, &payments, "CM202412180020", &clock).await;
    let placed = call(
        "/pay/unifiedorder",
        &[
            ("out_trade_no", "CM202412180020"),
            ("trade_type", "NATIVE"),
            ("product_id", "CM202412180020"),
        ],
    );
    once(
        &server,
        placed,
        answer(&[("prepay_id", "wx2024"), ("code_url", CODE_URL)]),
    )
    .await;
    // The real provider needs the payer for JSAPI, not for NATIVE.
    let result = payments.pay_params(&order).await;
    assert!(matches!(result, Err(PayError::PayerNeeded)), "{result:?}");
    assert_eq!(
        payments.native_params(&order).await.expect("code_url"),
        CODE_URL
    );
    // Stored as the order's prepay: the order counts as placed (queried when its notify is
    // late, closed with WeChat when it expires).
    let placed = stored("CM202412180020").await;
    assert_eq!(
        (placed.status, placed.prepay.map(|prepay| prepay.id)),
        (PayStatus::Pending, Some(CODE_URL.to_owned()))
    );

    // A final refusal of an order never placed fails it; failed, it is not placed again.
    let order = stored_order(&db, &payments, "CM202412180021", &clock).await;
    let refused = call("/pay/unifiedorder", &[("out_trade_no", "CM202412180021")]);
    once(&server, refused, failure("PARAM_ERROR", "product_id 不能为空")).await;
    let result = payments.native_params(&order).await;
    assert!(
        matches!(&result, Err(PayError::Provider(ProviderError::Vendor { code, .. })) if code == "PARAM_ERROR"),
        "{result:?}"
    );
    let failed = stored("CM202412180021").await;
    assert_eq!(failed.status, PayStatus::Failed);
    let result = payments.native_params(&failed).await;
    assert!(matches!(result, Err(PayError::NotPayable)), "{result:?}");

    // OUT_TRADE_NO_USED says WeChat Pay holds the order (placed by a request this read
    // predates, with other parameters): the order stays pending, not failed.
    let order = stored_order(&db, &payments, "CM202412180023", &clock).await;
    let used = call("/pay/unifiedorder", &[("out_trade_no", "CM202412180023")]);
    once(&server, used, failure("OUT_TRADE_NO_USED", "商户订单号重复")).await;
    let result = payments.native_params(&order).await;
    assert!(matches!(&result, Err(PayError::Provider(ProviderError::Vendor { code, .. })) if code == "OUT_TRADE_NO_USED"), "{result:?}");
    assert_eq!(stored("CM202412180023").await.status, PayStatus::Pending);

    // A refusal WeChat takes back later (busy) leaves the order pending.
    let order = stored_order(&db, &payments, "CM202412180022", &clock).await;
    let busy = call("/pay/unifiedorder", &[("out_trade_no", "CM202412180022")]);
    once(&server, busy, failure("SYSTEMERROR", "系统繁忙")).await;
    let result = payments.native_params(&order).await;
    assert!(matches!(result, Err(PayError::Provider(_))), "{result:?}");
    assert_eq!(stored("CM202412180022").await.status, PayStatus::Pending);
}

#[tokio::test]
async fn a_v3_refusal_of_an_order_another_request_placed_leaves_it_pending() {
    let db = sandbox_db().await;
    let clock = Clock::default();
    let sandbox = Arc::new(SandboxPay::new(db.clone(), APPID, MCHID, clock.clone()).expect("sandbox"));
    let payments = Payments::new("heating", sandbox, Arc::new(Counting::default()), "https://example.com/api/payment/notify".into(), db.clone(), clock.clone());
    // An order stored without a payer (heating's, before its wx_code), read by two requests at
    // once, each with the wx_code of another WeChat account.
    let read = stored_order(&db, &payments, "HT202612070001", &clock).await;
    let for_payer = |openid: &str| PayOrder { payer_openid: Some(openid.into()), ..read.clone() };
    let first = payments.pay_params(&for_payer("o_payer_a")).await.expect("placed for the first payer");
    // The second, from its read before that placing: WeChat Pay (v3) refuses another payer as
    // INVALID_REQUEST. The order it holds stays pending, payable by the first payer.
    let refused = payments.pay_params(&for_payer("o_payer_b")).await.expect_err("another payer");
    assert!(matches!(&refused, PayError::Provider(ProviderError::Vendor { code, .. }) if code == "INVALID_REQUEST"), "{refused:?}");
    let now = db.payments().get("HT202612070001").await.expect("read").expect("the order");
    assert_eq!(now.status, PayStatus::Pending);
    let again = payments.pay_params(&PayOrder { payer_openid: Some("o_payer_a".into()), ..now }).await.expect("the first payer pays");
    assert_eq!(again.package, first.package, "its placing, answered again");
    // An order no request placed is still failed by a final refusal (no amount: an order
    // WeChat Pay would never take).
    let never = stored_order(&db, &payments, "HT202612070002", &clock).await;
    let other_amount = PayOrder { amount_fen: 0, ..never };
    let refused = payments.pay_params(&other_amount).await.expect_err("no amount");
    assert!(matches!(&refused, PayError::Provider(ProviderError::Vendor { code, .. }) if code == "PARAM_ERROR"), "{refused:?}");
    assert_eq!(db.payments().get("HT202612070002").await.expect("read").expect("the order").status, PayStatus::Failed);
}

/// `server` places every order it is asked to: prepay_id `wx2024` and code_url [`CODE_URL`].
async fn places_every_order(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/pay/unifiedorder"))
        .respond_with(answer(&[("prepay_id", "wx2024"), ("code_url", CODE_URL)]))
        .mount(server)
        .await;
}

/// Real payments at a stand-in for WeChat Pay that places every order (`places_every_order`),
/// holding pending order `no` of 18.60 yuan (1,860 fen) for `payer`, payable `ttl_secs` seconds
/// from now: the database, its clock, the payments and the database's URL.
async fn order_at_a_stand_in(
    server: &MockServer,
    dir: &tempfile::TempDir,
    no: &str,
    payer: Option<&str>,
    ttl_secs: u64,
) -> (Db, Clock, Payments, String) {
    let (db, clock, payments, url) = real_payments(server, dir).await;
    places_every_order(server).await;
    let new = payments.new_order(no, None, payer, "物业费", 1_860, clock.now_ms(), std::time::Duration::from_secs(ttl_secs));
    db.payments().insert(new).await.expect("inserted");
    (db, clock, payments, url)
}

/// The unifiedorder calls `server` has received so far.
async fn placings(server: &MockServer) -> usize {
    let requests = server.received_requests().await.expect("recorded");
    requests.iter().filter(|r| r.url.path() == "/pay/unifiedorder").count()
}

#[tokio::test]
async fn a_placed_order_answers_its_prepay_again_while_it_is_valid() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // An order that outlives the reuse window (points' and charging's live 2 hours).
    let no = "CM202412180030";
    let (db, clock, payments, url) = order_at_a_stand_in(&server, &dir, no, None, 3 * 3600).await;
    let stored = || async { db.payments().get(no).await.expect("read").expect("the order") };
    let for_payer = |order: PayOrder, openid: &str| PayOrder { payer_openid: Some(openid.into()), ..order };

    // The stand-in places whatever it is asked; WeChat Pay itself would refuse an order placed
    // again for another payer or as another trade type (OUT_TRADE_NO_USED, as the sandbox
    // does): what this shows is when the order is asked to be placed again, not that WeChat
    // Pay accepts it. Placed once for the payer; asked again, the same prepay_id is signed afresh.
    let first = payments.pay_params(&for_payer(stored().await, OPENID)).await.expect("placed");
    assert_eq!((first.package.as_str(), placings(&server).await), ("prepay_id=wx2024", 1));
    let again = payments.pay_params(&stored().await).await.expect("answered again");
    assert_eq!((again.package.as_str(), placings(&server).await), ("prepay_id=wx2024", 1));
    assert_ne!(again.nonce_str, first.nonce_str, "signed again");
    assert_eq!(again.pay_sign, pay_sign(&again, API_KEY, SignType::Md5));
    // A prepay_id is the payer's: another payer's order is placed again.
    payments.pay_params(&for_payer(stored().await, "oOtherPayer")).await.expect("placed for another");
    assert_eq!(placings(&server).await, 2);
    // NATIVE is another placing (a code_url, no payer), and reused alike; JSAPI after it is placed again.
    assert_eq!(payments.native_params(&stored().await).await.expect("code_url"), CODE_URL);
    assert_eq!(placings(&server).await, 3);
    assert_eq!(payments.native_params(&stored().await).await.expect("code_url again"), CODE_URL);
    assert_eq!(placings(&server).await, 3);
    payments.pay_params(&stored().await).await.expect("placed as JSAPI again");
    assert_eq!(placings(&server).await, 4);
    // Reused until PREPAY_REUSE after it was answered (the clock runs on: moved to a second
    // before that, then to it), placed again from then on.
    let end = stored().await.prepay.expect("recorded").at + mpapi::payments::PREPAY_REUSE.as_millis() as i64;
    let move_to = |ms: i64| clock.advance(std::time::Duration::from_millis((ms - clock.now_ms()).max(0) as u64));
    move_to(end - 1_000);
    payments.pay_params(&stored().await).await.expect("still reused");
    assert_eq!(placings(&server).await, 4);
    move_to(end);
    payments.pay_params(&stored().await).await.expect("placed anew");
    assert_eq!(placings(&server).await, 5);
    assert!(stored().await.prepay.expect("recorded").at >= end, "the new placing is recorded");
    // An instance of an earlier version (a rolling upgrade) places it again and records only
    // the prepay_id and its time: the trade and payer recorded before no longer describe it,
    // so it is not reused but placed again.
    let raw = sea_orm::Database::connect(url.as_str()).await.expect("a connection of its own");
    // (A millisecond later than this version's placing at the least, as any later placing is.)
    let earlier = format!("UPDATE pay_order SET prepay_id = 'wxEarlierVersion', prepay_at = {} WHERE out_trade_no = '{no}'", clock.now_ms() + 1);
    sea_orm::ConnectionTrait::execute_unprepared(&raw, &earlier).await.expect("written");
    let again = payments.pay_params(&stored().await).await.expect("placed again");
    assert_eq!((again.package.as_str(), placings(&server).await), ("prepay_id=wx2024", 6));
}

/// After a failed attempt (PAYERROR) the reopened order is placed again, never answered the
/// failed attempt's prepay_id; a second request holding the same stale (failed) copy of the
/// order is answered that new placing, not a third.
#[tokio::test]
async fn a_reopened_order_is_placed_once_more_and_that_placing_reused() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let no = "CM202412180040";
    let (db, _, payments, _) = order_at_a_stand_in(&server, &dir, no, Some(OPENID), 15 * 60).await;
    let stored = || async { db.payments().get(no).await.expect("read").expect("the order") };
    payments.pay_params(&stored().await).await.expect("placed");
    assert_eq!(placings(&server).await, 1);
    db.payments().mark_reported(no, mpapi::storage::payments::Reported::Failed).await.expect("failed");
    let stale = stored().await;
    assert_eq!(stale.status, PayStatus::Failed);
    payments.pay_params_after_failure(&stale).await.expect("reopened and placed");
    assert_eq!(placings(&server).await, 2, "the failed attempt's prepay_id is not answered");
    payments.pay_params_after_failure(&stale).await.expect("answered");
    assert_eq!(placings(&server).await, 2, "the reopened order's placing is reused");
    assert_eq!(stored().await.status, PayStatus::Pending);
}

#[tokio::test]
async fn sandbox_v2_native_orders_are_paid_by_their_code_url_and_settle_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&fresh_database(&dir).await)
        .await
        .expect("database");
    let clock = Clock::default();
    let sandbox = Arc::new(SandboxPay::new_v2(sandbox_db().await, APPID, MCHID, clock.clone()).expect("sandbox"));
    let settle = Arc::new(Counting::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port 0 binds");
    let notify_url = format!("http://{}/notify", listener.local_addr().expect("bound"));
    let payments = Arc::new(Payments::new(
        "charging",
        sandbox.clone(),
        settle.clone(),
        notify_url,
        db.clone(),
        clock.clone(),
    ));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    serve_notifies(listener, payments.clone(), bodies.clone()).await;

    let no = format!("CD{}", mpapi::random::digits(16));
    let order = stored_order(&db, &payments, &no, &clock).await;
    let code_url = payments.native_params(&order).await.expect("code_url");
    let pr = code_url
        .strip_prefix("weixin://wxpay/bizpayurl?pr=")
        .expect("a code_url");
    // Asked again while the order is open: the same code_url, stored as the order's prepay.
    assert_eq!(
        payments.native_params(&order).await.expect("again"),
        code_url
    );
    let placed = db
        .payments()
        .get(&no)
        .await
        .expect("read")
        .expect("the order");
    assert_eq!(
        placed.prepay.as_ref().map(|prepay| prepay.id.as_str()),
        Some(code_url.as_str())
    );
    // A JSAPI placing of the order is refused, as WeChat Pay refuses one out_trade_no placed
    // again as another trade type (OUT_TRADE_NO_USED): the order stays pending, its code_url
    // still answered.
    let refused = payments.pay_params(&placed).await.expect_err("JSAPI after NATIVE");
    assert!(
        matches!(&refused, PayError::Provider(ProviderError::Vendor { code, message, .. }) if code == "OUT_TRADE_NO_USED" && message.contains("placed native first")),
        "{refused:?}"
    );
    let after = db.payments().get(&no).await.expect("read").expect("the order");
    assert_eq!((after.status, after.prepay.map(|prepay| prepay.id)), (PayStatus::Pending, Some(code_url.clone())));
    // So from a read taken before the NATIVE placing (no prepay in it): WeChat Pay holds the
    // order, which is not failed.
    assert!(order.prepay.is_none());
    let refused = payments.pay_params(&order).await.expect_err("JSAPI after NATIVE, from a stale read");
    assert!(matches!(&refused, PayError::Provider(ProviderError::Vendor { code, .. }) if code == "OUT_TRADE_NO_USED"), "{refused:?}");
    assert_eq!(db.payments().get(&no).await.expect("read").expect("the order").status, PayStatus::Pending);
    assert_eq!(payments.native_params(&placed).await.expect("NATIVE again"), code_url);

    // The payer scans: the sandbox's pay takes the pr token (or the code_url) like a prepay_id.
    let outcome = sandbox.pay(pr, true).await.expect("paid");
    assert_eq!(
        (outcome.notify_status, outcome.notify_body.as_str()),
        (200, Some(v2::notify_ack(true, "").as_str()))
    );
    let paid = db
        .payments()
        .get(&no)
        .await
        .expect("read")
        .expect("the order");
    assert_eq!(
        (paid.status, paid.transaction_id.as_deref()),
        (PayStatus::Paid, Some(outcome.transaction_id.as_str()))
    );
    assert_eq!(*settle.paid.lock().expect("lock"), vec![no.clone()]);
    let notify = v2::read_xml(&bodies.lock().expect("lock")[0]).expect("XML");
    assert_eq!(
        (notify["trade_type"].as_str(), notify["out_trade_no"].as_str()),
        ("NATIVE", no.as_str())
    );
    assert!(notify.get("openid").is_none_or(String::is_empty));

    // Paid: no code_url any more, and the sandbox will not be paid twice.
    let result = payments.native_params(&paid).await;
    assert!(matches!(result, Err(PayError::NotPayable)), "{result:?}");
    assert!(sandbox.pay(&code_url, true).await.is_err());
    assert_eq!(*settle.paid.lock().expect("lock"), vec![no]);
}
