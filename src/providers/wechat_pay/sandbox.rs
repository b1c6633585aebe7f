//! The sandbox payment platform (domain.md §2.2): [`SandboxPay`] plays WeChat Pay for the
//! server — it holds orders and refunds in memory and, through [`PlatformSigner`], signs and
//! encrypts real notifies with a platform key of its own — so a frontend walks every payment
//! journey with no merchant account, through the same verification code the real provider uses.
//! Its time is the server's [`Clock`], so tests that move the clock move the sandbox too.
//!
//! In v2 mode ([`SandboxPay::new_v2`]) it speaks WeChat Pay v2 instead (domain.md §2.1): MD5
//! `paySign`, XML notifies signed with its API key, refund notifies with an encrypted `req_info`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, Nonce};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretSlice};
use serde_json::{Value, json};

use super::keys::{self, KeyError};
use super::sign::{self, MerchantSigner, SIGNATURE_TYPE};
use super::v2::{self, V2Signer};
use super::verify::{self, EncryptedResource, NotifyEnvelope, NotifyVerifier, RESOURCE_ALGORITHM};
use super::{
    Merchant, Notification, NotifyError, PayParams, PrepayRequest, ProviderError, Refund, RefundRequest, RefundStatus,
    TradeState, Transaction, WechatPay, beijing_rfc3339, valid_out_trade_no,
};
use crate::clock::Clock;

const SANDBOX: &str = "sandbox-pay";

/// What every NATIVE `code_url` starts with; a random `pr` token follows, as in WeChat's.
const CODE_URL_PREFIX: &str = "weixin://wxpay/bizpayurl?pr=";

/// WeChat Pay's side, played by the sandbox: signs notifies and responses with a platform key
/// (serial `PUB_KEY_ID_SANDBOX…`) and encrypts resources with the APIv3 key.
pub struct PlatformSigner {
    serial: String,
    key: KeyPair,
    apiv3_key: SecretSlice<u8>,
}

impl fmt::Debug for PlatformSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformSigner").field("serial", &self.serial).finish_non_exhaustive()
    }
}

impl PlatformSigner {
    /// A platform with a fresh RSA-2048 key, serial `PUB_KEY_ID_SANDBOX` + 24 hex digits, and a
    /// random 32-byte APIv3 key (32 characters of `[0-9A-Za-z]`, like a real one).
    pub fn generate() -> Result<PlatformSigner, KeyError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError("RSA key generation failed".into()))?;
        let serial = format!("PUB_KEY_ID_SANDBOX{}", hex::encode_upper(crate::random::bytes::<12>()));
        let apiv3 = crate::random::alphanumeric(32);
        Ok(PlatformSigner { serial, key, apiv3_key: SecretSlice::from(apiv3.into_bytes()) })
    }

    /// A platform with a given serial, RSA private key (PKCS#8/PKCS#1, PEM/DER) and APIv3 key
    /// (32 bytes) — tests use it to sign wiremock responses.
    pub fn new(serial: impl Into<String>, private_key: &[u8], apiv3_key: &[u8]) -> Result<PlatformSigner, KeyError> {
        keys::apiv3_key(apiv3_key)?;
        Ok(PlatformSigner {
            serial: serial.into(),
            key: keys::parse_private_key(private_key)?,
            apiv3_key: SecretSlice::from(apiv3_key.to_vec()),
        })
    }

    /// The serial sent as `Wechatpay-Serial`.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The platform public key, SPKI DER (what merchants verify with).
    pub fn public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        keys::spki_der(&self.key)
    }

    /// A verifier that knows this platform's key and APIv3 key — what a merchant configured
    /// with this platform would build.
    pub fn verifier(&self) -> Result<NotifyVerifier, KeyError> {
        NotifyVerifier::new(self.apiv3_key.expose_secret())?.with_key(self.serial.clone(), &self.public_key_der()?)
    }

    /// Encrypt `plaintext` as a notify resource (AES-256-GCM, random 12-character nonce,
    /// AAD = `associated_data`, `original_type` = `associated_data`: `transaction`, `refund`).
    pub fn encrypt_resource(&self, plaintext: &[u8], associated_data: &str) -> Result<EncryptedResource, KeyError> {
        let key = keys::apiv3_key(self.apiv3_key.expose_secret())?;
        let nonce_text = crate::random::alphanumeric(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce_text.as_bytes())
            .map_err(|_| KeyError("GCM nonce is not 12 bytes".into()))?;
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(nonce, Aad::from(associated_data.as_bytes()), &mut in_out)
            .map_err(|_| KeyError("AES-GCM encryption failed".into()))?;
        Ok(EncryptedResource {
            algorithm: RESOURCE_ALGORITHM.into(),
            ciphertext: B64.encode(in_out),
            nonce: nonce_text,
            associated_data: associated_data.into(),
            original_type: associated_data.into(),
        })
    }

    /// Sign `body` (a notify or an answer) as of `now` with a fresh nonce.
    pub fn sign_notify(&self, body: &[u8], now: DateTime<Utc>) -> Result<HeaderMap, KeyError> {
        self.sign_notify_at(body, now.timestamp(), &crate::random::nonce_str())
    }

    /// Sign `body` as of `timestamp` (seconds) with `nonce`: the `Wechatpay-Timestamp`, `-Nonce`,
    /// `-Serial`, `-Signature-Type` headers and `Wechatpay-Signature` = base64(RSA-SHA256(
    /// `timestamp\nnonce\nbody\n`)), as WeChat Pay sends them.
    pub fn sign_notify_at(&self, body: &[u8], timestamp: i64, nonce: &str) -> Result<HeaderMap, KeyError> {
        let timestamp = timestamp.to_string();
        let signature = sign::rsa_sign(&self.key, &verify::signed_message(&timestamp, nonce, body))?;
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (verify::HEADER_TIMESTAMP, timestamp.as_str()),
            (verify::HEADER_NONCE, nonce),
            (verify::HEADER_SIGNATURE, signature.as_str()),
            (verify::HEADER_SERIAL, self.serial.as_str()),
            (verify::HEADER_SIGNATURE_TYPE, SIGNATURE_TYPE),
        ] {
            let value = HeaderValue::from_str(value).map_err(|_| KeyError(format!("{name} is no header value")))?;
            headers.insert(name, value);
        }
        Ok(headers)
    }
}

/// Where a sandbox order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxOrderState {
    /// Ordered, not (successfully) paid yet (a failed attempt leaves it here: payable again).
    NotPaid,
    /// A success notify is being delivered.
    Paying,
    /// Paid: the merchant acknowledged the success notify with 2xx.
    Paid,
    /// Closed unpaid by the merchant (`close`): it can no longer be paid.
    Closed,
}

/// An order the sandbox platform holds (what `jsapi_prepay` or `native_prepay` recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOrder {
    /// The merchant's order number.
    pub out_trade_no: String,
    /// The amount in fen.
    pub amount_fen: i64,
    /// Where notifies go.
    pub notify_url: String,
    /// After this the order cannot be paid (set by the first prepay, like WeChat).
    pub time_expire: DateTime<Utc>,
    /// The payer, when the API has one.
    pub payer_openid: Option<String>,
    /// Where it stands.
    pub state: SandboxOrderState,
    /// The transaction id, once paid.
    pub transaction_id: Option<String>,
    /// When it was paid (the sandbox clock).
    pub success_time: Option<DateTime<Utc>>,
}

/// A refund the sandbox platform holds. Sandbox refunds succeed at once: the money is "back"
/// when `refund` returns, though `refund` answers `PROCESSING` like WeChat's first answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRefund {
    /// The request as first accepted (a retry must repeat its order and amounts).
    pub request: RefundRequest,
    /// `50` + 27 digits, like WeChat's refund ids.
    pub refund_id: String,
    /// The order's transaction id.
    pub transaction_id: String,
    /// When it succeeded (the sandbox clock).
    pub success_time: DateTime<Utc>,
}

impl SandboxRefund {
    fn answer(&self, status: RefundStatus) -> Refund {
        Refund {
            out_refund_no: self.request.out_refund_no.clone(),
            refund_id: self.refund_id.clone(),
            status,
            success_time: (status == RefundStatus::Success).then_some(self.success_time),
            refund_fen: self.request.refund_fen,
        }
    }
}

/// Why `SandboxPay::pay` did not pay.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxPayError {
    /// No order with this out_trade_no was placed.
    #[error("no order {0}")]
    NotFound(String),
    /// The order's time_expire has passed.
    #[error("order {0} has expired")]
    Expired(String),
    /// The merchant closed the order.
    #[error("order {0} is closed")]
    Closed(String),
    /// The order is already paid.
    #[error("order {0} is already paid")]
    AlreadyPaid(String),
    /// A payment of this order is in flight.
    #[error("order {0} is being paid")]
    InProgress(String),
    /// The notify could not be delivered (the merchant's server did not answer).
    #[error("notify not delivered: {0}")]
    Notify(String),
    /// Building or signing the notify failed.
    #[error("sandbox: {0}")]
    Internal(String),
}

impl From<KeyError> for SandboxPayError {
    fn from(e: KeyError) -> SandboxPayError {
        SandboxPayError::Internal(e.0)
    }
}

/// What the merchant answered to the sandbox's notify.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxPayOutcome {
    /// The transaction id the notify carried (`42000…`, 28 digits).
    pub transaction_id: String,
    /// The merchant's HTTP status.
    pub notify_status: u16,
    /// The merchant's body: JSON when it parses, else a JSON string.
    pub notify_body: Value,
}

/// What the sandbox platform holds.
#[derive(Default)]
struct Ledger {
    orders: HashMap<String, SandboxOrder>,
    /// The out_trade_no of each prepay_id answered, and of each NATIVE code_url and its `pr`
    /// token (a frontend holds only the prepay_id, or the code_url).
    prepays: HashMap<String, String>,
    /// The code_url of each NATIVE order, by out_trade_no (asked again, answered again).
    code_urls: HashMap<String, String>,
    /// By out_refund_no (unique per merchant, like WeChat's).
    refunds: HashMap<String, SandboxRefund>,
}

impl Ledger {
    fn refunded_fen(&self, out_trade_no: &str) -> i64 {
        self.refunds.values().filter(|r| r.request.out_trade_no == out_trade_no).map(|r| r.request.refund_fen).sum()
    }
}

/// The sandbox payment platform. It plays WeChat Pay (a platform key pair `PUB_KEY_ID_SANDBOX…`
/// and a random APIv3 key) and holds the merchant's key, so the server runs the same
/// verification code path as with the real provider. Orders and refunds live in memory; its
/// time is the server's [`Clock`]. In v2 mode a random API key signs and verifies instead (the
/// v3 keys are there but unused).
pub struct SandboxPay {
    merchant: Merchant,
    signer: MerchantSigner,
    platform: PlatformSigner,
    verifier: NotifyVerifier,
    /// v2 mode: the merchant's API key (MD5 signs).
    v2: Option<V2Signer>,
    clock: Clock,
    ledger: Mutex<Ledger>,
    http: reqwest::Client,
}

impl fmt::Debug for SandboxPay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxPay")
            .field("merchant", &self.merchant)
            .field("platform", &self.platform)
            .field("v2", &self.v2.is_some())
            .finish_non_exhaustive()
    }
}

fn vendor(code: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Vendor { provider: SANDBOX, code: code.into(), message: message.into() }
}

fn internal(e: impl fmt::Display) -> ProviderError {
    ProviderError::Config { provider: SANDBOX, detail: e.to_string() }
}

/// WeChat's out_refund_no rule: 1–64 characters of `[0-9A-Za-z_-|*@]`.
fn valid_out_refund_no(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'))
}

fn valid_notify_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
}

/// POST a signed notify to `url` once, as WeChat Pay does (no retries here); the merchant's
/// status and body.
async fn deliver(
    http: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.map_err(|e| e.to_string())?))
}

/// Resets a `Paying` order unless the payment was committed, so a dropped or failed delivery
/// never leaves the order stuck; on commit records the transaction.
struct PayingGuard<'a> {
    pay: &'a SandboxPay,
    out_trade_no: &'a str,
    /// Set once the merchant acknowledged: the transaction id and when it was paid.
    committed: Option<(String, DateTime<Utc>)>,
}

impl Drop for PayingGuard<'_> {
    fn drop(&mut self) {
        let mut ledger = self.pay.ledger();
        if let Some(order) = ledger.orders.get_mut(self.out_trade_no) {
            match self.committed.take() {
                Some((transaction_id, success_time)) => {
                    order.state = SandboxOrderState::Paid;
                    order.transaction_id = Some(transaction_id);
                    order.success_time = Some(success_time);
                }
                None => order.state = SandboxOrderState::NotPaid,
            }
        }
    }
}

impl SandboxPay {
    /// Timeout for delivering a notify.
    pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

    /// A sandbox platform for `appid`/`mchid` with freshly generated merchant and platform keys,
    /// keeping time with `clock`.
    pub fn new(appid: impl Into<String>, mchid: impl Into<String>, clock: Clock) -> Result<SandboxPay, ProviderError> {
        let config = |e: KeyError| ProviderError::Config { provider: SANDBOX, detail: e.0 };
        let merchant = Merchant { appid: appid.into(), mchid: mchid.into() };
        let signer = MerchantSigner::generate(
            merchant.mchid.clone(),
            format!("SANDBOX{}", crate::random::hex(32).to_uppercase()),
        )
        .map_err(config)?;
        let platform = PlatformSigner::generate().map_err(config)?;
        let verifier = platform.verifier().map_err(config)?;
        let http = reqwest::Client::builder()
            .timeout(SandboxPay::NOTIFY_TIMEOUT)
            .user_agent("Mozilla/4.0 (sandbox WeChat Pay notify)")
            .build()
            .map_err(|e| ProviderError::Config { provider: SANDBOX, detail: format!("HTTP client: {e}") })?;
        let ledger = Mutex::default();
        Ok(SandboxPay { merchant, signer, platform, verifier, v2: None, clock, ledger, http })
    }

    /// A sandbox platform speaking WeChat Pay v2 (domain.md §2.1) for `appid`/`mchid`, with a
    /// random 32-character API key signing MD5, keeping time with `clock`: `pay_params` sign the
    /// five `wx.requestPayment` fields with MD5, notifies are XML (Content-Type `text/xml`, no
    /// `Wechatpay-*` headers) signed with the key, refund notifies carry an encrypted `req_info`,
    /// and `verify_notify` verifies v2 notifies ([`V2Signer::parse_notify`]).
    pub fn new_v2(
        appid: impl Into<String>,
        mchid: impl Into<String>,
        clock: Clock,
    ) -> Result<SandboxPay, ProviderError> {
        let v3 = SandboxPay::new(appid, mchid, clock)?;
        Ok(SandboxPay { v2: Some(V2Signer::generate()), ..v3 })
    }

    /// v2 mode: the merchant's API v2 key (tests sign forged notifies and check `paySign` with
    /// it); `None` in v3 mode.
    pub fn api_key(&self) -> Option<&str> {
        self.v2.as_ref().map(V2Signer::expose_api_key)
    }

    /// The server's time, in whole seconds like every time WeChat Pay writes.
    fn now(&self) -> DateTime<Utc> {
        let now = self.clock.now();
        DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The platform side (its serial, public key, signing) — tests sign forged notifies with it.
    pub fn platform(&self) -> &PlatformSigner {
        &self.platform
    }

    /// The merchant key's public half, SPKI DER (verifies `paySign`).
    pub fn merchant_public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        self.signer.public_key_der()
    }

    /// The order recorded under `out_trade_no`.
    pub fn order(&self, out_trade_no: &str) -> Option<SandboxOrder> {
        self.ledger().orders.get(out_trade_no).cloned()
    }

    /// The refund recorded under `out_refund_no`.
    pub fn refund_record(&self, out_refund_no: &str) -> Option<SandboxRefund> {
        self.ledger().refunds.get(out_refund_no).cloned()
    }

    /// Build the notify WeChat Pay would send for paying `out_trade_no` (`success` or a
    /// `PAYERROR`), signed now (the sandbox clock) with the platform key; does not send it or
    /// change the order. The headers are the `Wechatpay-*` ones (v2 mode: only Content-Type
    /// `text/xml`, the XML body signed with the API key).
    pub fn build_notify(&self, out_trade_no: &str, success: bool) -> Result<(HeaderMap, Vec<u8>), SandboxPayError> {
        let order = self.order(out_trade_no).ok_or_else(|| SandboxPayError::NotFound(out_trade_no.to_string()))?;
        let transaction_id = format!("42000{}", crate::random::digits(23));
        let (headers, body) = self.transaction_notify(&order, &transaction_id, success, self.now())?;
        Ok((headers, body))
    }

    /// A signed, encrypted notify (`event_type`, resource `kind`) about `resource`, as of `now`.
    fn notify(
        &self,
        event_type: &str,
        summary: &str,
        kind: &str,
        resource: &Value,
        now: DateTime<Utc>,
    ) -> Result<(HeaderMap, Vec<u8>), KeyError> {
        let plaintext = serde_json::to_vec(resource).map_err(|e| KeyError(e.to_string()))?;
        let envelope = NotifyEnvelope {
            id: format!("EV-{}{}", now.format("%Y%m%d%H%M%S"), crate::random::digits(12)),
            create_time: beijing_rfc3339(now),
            event_type: event_type.into(),
            resource_type: "encrypt-resource".into(),
            summary: summary.into(),
            resource: self.platform.encrypt_resource(&plaintext, kind)?,
        };
        let body = serde_json::to_vec(&envelope).map_err(|e| KeyError(e.to_string()))?;
        Ok((self.platform.sign_notify(&body, now)?, body))
    }

    fn transaction_notify(
        &self,
        order: &SandboxOrder,
        transaction_id: &str,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<(HeaderMap, Vec<u8>), KeyError> {
        if let Some(v2) = &self.v2 {
            let fields = self.v2_transaction_notify(v2, order, transaction_id, success, now);
            return Ok(v2_notify(fields));
        }
        let mut transaction = json!({
            "appid": self.merchant.appid,
            "mchid": self.merchant.mchid,
            "out_trade_no": order.out_trade_no,
            "transaction_id": transaction_id,
            "trade_type": self.trade_type(&order.out_trade_no),
            "trade_state": if success { "SUCCESS" } else { "PAYERROR" },
            "trade_state_desc": if success { "支付成功" } else { "支付失败，请重新下单支付" },
            "bank_type": "OTHERS",
            "attach": "",
            "amount": {
                "total": order.amount_fen,
                "payer_total": if success { order.amount_fen } else { 0 },
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        });
        if success {
            transaction["success_time"] = json!(beijing_rfc3339(now));
        }
        if let Some(openid) = &order.payer_openid {
            transaction["payer"] = json!({ "openid": openid });
        }
        let (event_type, summary) =
            if success { ("TRANSACTION.SUCCESS", "支付成功") } else { ("TRANSACTION.PAYERROR", "支付失败") };
        self.notify(event_type, summary, "transaction", &transaction, now)
    }

    fn refund_notify(&self, refund: &SandboxRefund, now: DateTime<Utc>) -> Result<(HeaderMap, Vec<u8>), KeyError> {
        if let Some(v2) = &self.v2 {
            return Ok(v2_notify(self.v2_refund_notify(v2, refund)?));
        }
        let resource = json!({
            "mchid": self.merchant.mchid,
            "out_trade_no": refund.request.out_trade_no,
            "transaction_id": refund.transaction_id,
            "out_refund_no": refund.request.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": "SUCCESS",
            "success_time": beijing_rfc3339(refund.success_time),
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": refund.request.total_fen,
                "refund": refund.request.refund_fen,
                "payer_total": refund.request.total_fen,
                "payer_refund": refund.request.refund_fen,
            },
        });
        self.notify("REFUND.SUCCESS", "退款成功", "refund", &resource, now)
    }

    /// The v2 payment notify (domain.md §2.1) of `order`: its fields, signed with the API key.
    fn v2_transaction_notify(
        &self,
        v2: &V2Signer,
        order: &SandboxOrder,
        transaction_id: &str,
        success: bool,
        now: DateTime<Utc>,
    ) -> v2::Fields {
        let total_fee = order.amount_fen.to_string();
        let cash_fee = if success { total_fee.as_str() } else { "0" };
        let nonce = crate::random::nonce_str();
        let time_end = now.with_timezone(&crate::clock::BEIJING).format("%Y%m%d%H%M%S");
        let mut fields = v2::fields_of([
            ("return_code", "SUCCESS"),
            ("return_msg", "OK"),
            ("appid", self.merchant.appid.as_str()),
            ("mch_id", &self.merchant.mchid),
            ("nonce_str", &nonce),
            ("sign_type", v2.sign_type().as_str()),
            ("result_code", if success { "SUCCESS" } else { "FAIL" }),
            ("openid", order.payer_openid.as_deref().unwrap_or_default()),
            ("is_subscribe", "N"),
            ("trade_type", self.trade_type(&order.out_trade_no)),
            ("bank_type", "OTHERS"),
            ("total_fee", &total_fee),
            ("fee_type", "CNY"),
            ("cash_fee", cash_fee),
            ("transaction_id", transaction_id),
            ("out_trade_no", &order.out_trade_no),
            ("attach", ""),
        ]);
        if success {
            fields.insert("time_end".into(), time_end.to_string());
        } else {
            fields.insert("err_code".into(), "PAYERROR".into());
            fields.insert("err_code_des".into(), "支付失败，请重新下单支付".into());
        }
        v2.signed(fields)
    }

    /// The v2 refund notify (domain.md §2.1) of `refund`: unsigned, like WeChat's, its refund
    /// sealed in `req_info` with the API key.
    fn v2_refund_notify(
        &self,
        v2: &V2Signer,
        refund: &SandboxRefund,
    ) -> Result<v2::Fields, KeyError> {
        let refund_fee = refund.request.refund_fen.to_string();
        let total_fee = refund.request.total_fen.to_string();
        let success_time = refund.success_time.with_timezone(&crate::clock::BEIJING);
        let success_time = success_time.format("%Y-%m-%d %H:%M:%S").to_string();
        let req_info = v2.encrypt_req_info(&v2::fields_of([
            ("out_refund_no", refund.request.out_refund_no.as_str()),
            ("out_trade_no", &refund.request.out_trade_no),
            ("refund_account", "REFUND_SOURCE_RECHARGE_FUNDS"),
            ("refund_fee", &refund_fee),
            ("refund_id", &refund.refund_id),
            ("refund_recv_accout", "支付用户零钱"),
            ("refund_request_source", "API"),
            ("refund_status", "SUCCESS"),
            ("settlement_refund_fee", &refund_fee),
            ("settlement_total_fee", &total_fee),
            ("success_time", &success_time),
            ("total_fee", &total_fee),
            ("transaction_id", &refund.transaction_id),
        ]))?;
        let nonce = crate::random::nonce_str();
        Ok(v2::fields_of([
            ("return_code", "SUCCESS"),
            ("appid", self.merchant.appid.as_str()),
            ("mch_id", &self.merchant.mchid),
            ("nonce_str", &nonce),
            ("req_info", &req_info),
        ]))
    }

    /// `NATIVE` for an order placed by `native_prepay`, else `JSAPI` (notifies name it).
    fn trade_type(&self, out_trade_no: &str) -> &'static str {
        if self.ledger().code_urls.contains_key(out_trade_no) { "NATIVE" } else { "JSAPI" }
    }

    /// Check `order` as WeChat Pay does and record it (the first time; asked again, the same
    /// amount and an open order are needed); the ledger, still locked, for the caller to record
    /// what it answers.
    fn place(&self, order: &PrepayRequest) -> Result<MutexGuard<'_, Ledger>, ProviderError> {
        if order.amount_fen <= 0 {
            return Err(vendor("PARAM_ERROR", "amount.total must be a positive number of fen"));
        }
        if !valid_out_trade_no(&order.out_trade_no) {
            return Err(vendor("PARAM_ERROR", "out_trade_no must be 6-32 characters of [0-9A-Za-z_-|*]"));
        }
        if order.description.is_empty() || order.description.chars().count() > 127 {
            return Err(vendor("PARAM_ERROR", "description must be 1-127 characters"));
        }
        let now = self.now();
        if order.time_expire <= now {
            return Err(vendor("PARAM_ERROR", "time_expire must be in the future"));
        }
        if !valid_notify_url(&order.notify_url) {
            return Err(vendor("PARAM_ERROR", "notify_url must be an http(s) URL"));
        }
        let mut ledger = self.ledger();
        if let Some(existing) = ledger.orders.get(&order.out_trade_no) {
            if existing.amount_fen != order.amount_fen {
                return Err(vendor("INVALID_REQUEST", "参数与首次请求时不一致 (amount differs)"));
            }
            match existing.state {
                SandboxOrderState::Paid => return Err(vendor("ORDERPAID", "该订单已支付")),
                SandboxOrderState::Closed => return Err(vendor("ORDER_CLOSED", "订单已关闭")),
                _ if existing.time_expire <= now => {
                    return Err(vendor("ORDER_CLOSED", "订单已关闭 (time_expire passed)"));
                }
                _ => {}
            }
        } else {
            ledger.orders.insert(
                order.out_trade_no.clone(),
                SandboxOrder {
                    out_trade_no: order.out_trade_no.clone(),
                    amount_fen: order.amount_fen,
                    notify_url: order.notify_url.clone(),
                    time_expire: order.time_expire,
                    payer_openid: order.payer_openid.clone(),
                    state: SandboxOrderState::NotPaid,
                    transaction_id: None,
                    success_time: None,
                },
            );
        }
        Ok(ledger)
    }

    /// Remember an order the database says was paid before this platform started (its ledger
    /// lives in memory; WeChat Pay's survives a restart), so that it can still be queried and
    /// refunded. An order it holds already is left as it is.
    pub fn adopt_paid(&self, out_trade_no: &str, amount_fen: i64, transaction_id: &str, paid_at: DateTime<Utc>) {
        let mut ledger = self.ledger();
        ledger.orders.entry(out_trade_no.to_owned()).or_insert_with(|| SandboxOrder {
            out_trade_no: out_trade_no.to_owned(),
            amount_fen,
            notify_url: String::new(),
            time_expire: paid_at,
            payer_openid: None,
            state: SandboxOrderState::Paid,
            transaction_id: Some(transaction_id.to_owned()),
            success_time: Some(paid_at),
        });
    }

    /// Whether this platform holds the order `id` names (an out_trade_no, or a prepay_id,
    /// code_url or `pr` token it answered): which of several sandbox merchants pays it.
    pub fn holds(&self, id: &str) -> bool {
        let ledger = self.ledger();
        ledger.orders.contains_key(id) || ledger.prepays.contains_key(id)
    }

    /// Pay `out_trade_no` (`success`) or fail the attempt, and deliver the notify to the order's
    /// notify URL like WeChat Pay (one attempt, no retries). The order becomes paid only when
    /// the merchant answers a success notify with 2xx (v2 mode: and an XML ack whose
    /// `return_code` is SUCCESS); a failed attempt leaves it payable. A closed or expired order
    /// (by the sandbox clock) is refused.
    /// `id` may be the out_trade_no or a prepay_id answered for it (a mini-program sees only
    /// the prepay_id, in `package`), or a NATIVE order's code_url or its `pr` token.
    pub async fn pay(&self, id: &str, success: bool) -> Result<SandboxPayOutcome, SandboxPayError> {
        let out_trade_no = {
            let ledger = self.ledger();
            match ledger.prepays.get(id) {
                Some(no) if !ledger.orders.contains_key(id) => no.clone(),
                _ => id.to_owned(),
            }
        };
        let out_trade_no = out_trade_no.as_str();
        let now = self.now();
        let order = {
            let mut ledger = self.ledger();
            let order =
                ledger.orders.get_mut(out_trade_no).ok_or_else(|| SandboxPayError::NotFound(out_trade_no.into()))?;
            match order.state {
                SandboxOrderState::Paid => return Err(SandboxPayError::AlreadyPaid(out_trade_no.into())),
                SandboxOrderState::Paying => return Err(SandboxPayError::InProgress(out_trade_no.into())),
                SandboxOrderState::Closed => return Err(SandboxPayError::Closed(out_trade_no.into())),
                SandboxOrderState::NotPaid if order.time_expire <= now => {
                    return Err(SandboxPayError::Expired(out_trade_no.into()));
                }
                SandboxOrderState::NotPaid => {}
            }
            if success {
                order.state = SandboxOrderState::Paying;
            }
            order.clone()
        };
        let mut guard = success.then_some(PayingGuard { pay: self, out_trade_no, committed: None });
        // Real transaction ids are 28 digits starting 42000.
        let transaction_id = format!("42000{}", crate::random::digits(23));
        let (headers, body) = self.transaction_notify(&order, &transaction_id, success, now)?;
        let (status, text) =
            deliver(&self.http, &order.notify_url, headers, body).await.map_err(SandboxPayError::Notify)?;
        let acknowledged =
            (200..300).contains(&status) && (self.v2.is_none() || v2::is_ack(text.as_bytes()));
        if let Some(guard) = guard.as_mut()
            && acknowledged
        {
            guard.committed = Some((transaction_id.clone(), now));
        }
        drop(guard);
        tracing::info!(out_trade_no, success, status, "sandbox pay notify delivered");
        Ok(SandboxPayOutcome {
            transaction_id,
            notify_status: status,
            notify_body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }
}

#[async_trait]
impl WechatPay for SandboxPay {
    fn merchant(&self) -> &Merchant {
        &self.merchant
    }

    fn needs_payer(&self) -> bool {
        // APIs without a WeChat login (heating) still walk the payment journey in the sandbox.
        false
    }

    async fn jsapi_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        let mut ledger = self.place(order)?;
        let prepay_id = format!("wx{}", crate::random::hex(28));
        ledger.prepays.insert(prepay_id.clone(), order.out_trade_no.clone());
        Ok(prepay_id)
    }

    /// Checked and recorded as `jsapi_prepay` does; answers `weixin://wxpay/bizpayurl?pr=` + 12
    /// random `[0-9A-Za-z]`, the same one while the order is open. `pay` takes the code_url or
    /// its `pr` token as well as the out_trade_no.
    async fn native_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        let mut ledger = self.place(order)?;
        if let Some(code_url) = ledger.code_urls.get(&order.out_trade_no) {
            return Ok(code_url.clone());
        }
        let pr = crate::random::alphanumeric(12);
        let code_url = format!("{CODE_URL_PREFIX}{pr}");
        ledger.prepays.insert(pr, order.out_trade_no.clone());
        ledger.prepays.insert(code_url.clone(), order.out_trade_no.clone());
        ledger.code_urls.insert(order.out_trade_no.clone(), code_url.clone());
        Ok(code_url)
    }

    fn pay_params(&self, prepay_id: &str) -> Result<PayParams, ProviderError> {
        if let Some(v2) = &self.v2 {
            let nonce = crate::random::nonce_str();
            let now = self.now().timestamp();
            return Ok(v2.pay_params_at(&self.merchant.appid, prepay_id, now, &nonce));
        }
        self.signer
            .pay_params_at(&self.merchant.appid, prepay_id, self.now().timestamp(), &crate::random::nonce_str())
            .map_err(internal)
    }

    async fn query(&self, out_trade_no: &str) -> Result<Transaction, ProviderError> {
        let ledger = self.ledger();
        let order = ledger.orders.get(out_trade_no).ok_or_else(|| vendor("ORDER_NOT_EXIST", "订单不存在"))?;
        let trade_state = match order.state {
            // An unpaid order stays NOTPAY past its time_expire until the merchant closes it.
            SandboxOrderState::NotPaid => TradeState::NotPay,
            SandboxOrderState::Paying => TradeState::UserPaying,
            SandboxOrderState::Closed => TradeState::Closed,
            SandboxOrderState::Paid if ledger.refunded_fen(out_trade_no) > 0 => TradeState::Refund,
            SandboxOrderState::Paid => TradeState::Success,
        };
        Ok(Transaction {
            appid: self.merchant.appid.clone(),
            mchid: self.merchant.mchid.clone(),
            out_trade_no: order.out_trade_no.clone(),
            transaction_id: order.transaction_id.clone(),
            trade_state,
            success_time: order.success_time,
            amount_total_fen: order.amount_fen,
            payer_openid: order.payer_openid.clone(),
        })
    }

    async fn close(&self, out_trade_no: &str) -> Result<(), ProviderError> {
        let mut ledger = self.ledger();
        let order = ledger.orders.get_mut(out_trade_no).ok_or_else(|| vendor("ORDER_NOT_EXIST", "订单不存在"))?;
        match order.state {
            SandboxOrderState::Paid => Err(vendor("ORDERPAID", "该订单已支付")),
            // A payment in flight may still succeed: closing now would lose it.
            SandboxOrderState::Paying => Err(vendor("USERPAYING", "用户支付中，请稍后再试")),
            // Closing a closed order again answers like the first close.
            SandboxOrderState::NotPaid | SandboxOrderState::Closed => {
                order.state = SandboxOrderState::Closed;
                Ok(())
            }
        }
    }

    async fn refund(&self, request: &RefundRequest) -> Result<Refund, ProviderError> {
        if !valid_out_refund_no(&request.out_refund_no) {
            return Err(vendor("PARAM_ERROR", "out_refund_no must be 1-64 characters of [0-9A-Za-z_-|*@]"));
        }
        if request.refund_fen <= 0 || request.total_fen <= 0 {
            return Err(vendor("PARAM_ERROR", "amount.refund and amount.total must be positive numbers of fen"));
        }
        if !request.notify_url.is_empty() && !valid_notify_url(&request.notify_url) {
            return Err(vendor("PARAM_ERROR", "notify_url must be an http(s) URL"));
        }
        let now = self.now();
        let refund = {
            let mut ledger = self.ledger();
            if let Some(existing) = ledger.refunds.get(&request.out_refund_no) {
                // A retry: the same refund, as it stands now — if it asks for the same money from
                // the same order (WeChat's check; reason and notify URL may change).
                let first = &existing.request;
                let same = (&first.out_trade_no, first.refund_fen, first.total_fen)
                    == (&request.out_trade_no, request.refund_fen, request.total_fen);
                return if same {
                    Ok(existing.answer(RefundStatus::Success))
                } else {
                    Err(vendor("INVALID_REQUEST", "同一退款单号的请求参数与之前不一致"))
                };
            }
            let refunded = ledger.refunded_fen(&request.out_trade_no);
            let order =
                ledger.orders.get(&request.out_trade_no).ok_or_else(|| vendor("RESOURCE_NOT_EXISTS", "订单不存在"))?;
            let transaction_id = match (order.state, &order.transaction_id) {
                (SandboxOrderState::Paid, Some(id)) => id.clone(),
                _ => return Err(vendor("INVALID_REQUEST", "订单未支付，不能退款")),
            };
            if request.total_fen != order.amount_fen {
                return Err(vendor("INVALID_REQUEST", "订单金额与原订单不一致"));
            }
            if refunded + request.refund_fen > order.amount_fen {
                return Err(vendor("INVALID_REQUEST", "申请退款金额超过订单可退金额"));
            }
            let refund = SandboxRefund {
                request: request.clone(),
                refund_id: format!("50{}", crate::random::digits(27)),
                transaction_id,
                success_time: now,
            };
            ledger.refunds.insert(request.out_refund_no.clone(), refund.clone());
            refund
        };
        if !request.notify_url.is_empty() {
            let (headers, body) = self.refund_notify(&refund, now).map_err(internal)?;
            let (http, url, out_refund_no) =
                (self.http.clone(), request.notify_url.clone(), request.out_refund_no.clone());
            // WeChat notifies refunds later, from elsewhere: the answer does not wait for it.
            tokio::spawn(async move {
                match deliver(&http, &url, headers, body).await {
                    Ok((status, _)) => tracing::info!(out_refund_no, status, "sandbox refund notify delivered"),
                    Err(error) => tracing::warn!(out_refund_no, error, "sandbox refund notify not delivered"),
                }
            });
        }
        Ok(refund.answer(RefundStatus::Processing))
    }

    async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, ProviderError> {
        let ledger = self.ledger();
        let refund = ledger.refunds.get(out_refund_no).ok_or_else(|| vendor("RESOURCE_NOT_EXISTS", "退款单不存在"))?;
        Ok(refund.answer(RefundStatus::Success))
    }

    fn verify_notify(&self, headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Notification, NotifyError> {
        match &self.v2 {
            Some(v2) => v2.parse_notify(&self.merchant, body),
            None => self.verifier.parse_notify(headers, body, now),
        }
    }
}

/// A v2 notify as sent: Content-Type `text/xml` (replacing the JSON one [`deliver`] sets) and the
/// XML body.
fn v2_notify(fields: v2::Fields) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static(v2::XML_CONTENT_TYPE));
    (headers, v2::to_xml(&fields).into_bytes())
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use chrono::TimeDelta;

    use super::*;
    use crate::providers::wechat_pay::NotifyEvent;

    fn sandbox() -> &'static SandboxPay {
        static S: OnceLock<SandboxPay> = OnceLock::new();
        S.get_or_init(|| SandboxPay::new("wx0000000000sandbox", "1900000001", Clock::default()).expect("keygen"))
    }

    fn order_at(no: &str, fen: i64, now: DateTime<Utc>) -> PrepayRequest {
        PrepayRequest {
            out_trade_no: no.into(),
            description: "供暖费".into(),
            amount_fen: fen,
            payer_openid: Some("o_user".into()),
            notify_url: "http://127.0.0.1:9/notify".into(),
            time_expire: now + TimeDelta::minutes(30),
        }
    }

    fn order(no: &str, fen: i64) -> PrepayRequest {
        order_at(no, fen, Utc::now())
    }

    fn vendor_code<T: fmt::Debug>(r: Result<T, ProviderError>) -> String {
        match r {
            Err(ProviderError::Vendor { code, .. }) => code,
            other => panic!("expected a vendor error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn prepay_validates_like_wechat() {
        let pay = sandbox();
        let first = pay.jsapi_prepay(&order("SBTEST_0001", 100)).await.expect("prepay");
        assert!(first.starts_with("wx") && first.len() == 30);
        let again = pay.jsapi_prepay(&order("SBTEST_0001", 100)).await.expect("prepay again");
        assert_ne!(first, again, "a fresh prepay_id each time");
        assert_eq!(vendor_code(pay.jsapi_prepay(&order("SBTEST_0001", 101)).await), "INVALID_REQUEST");
        assert_eq!(vendor_code(pay.jsapi_prepay(&order("SBTEST_0002", 0)).await), "PARAM_ERROR");
        assert_eq!(vendor_code(pay.jsapi_prepay(&order("SB1", 100)).await), "PARAM_ERROR");
        let expired = PrepayRequest { time_expire: Utc::now() - TimeDelta::seconds(1), ..order("SBTEST_0003", 100) };
        assert_eq!(vendor_code(pay.jsapi_prepay(&expired).await), "PARAM_ERROR");
        let no_url = PrepayRequest { notify_url: "ftp://example.com/n".into(), ..order("SBTEST_0004", 100) };
        assert_eq!(vendor_code(pay.jsapi_prepay(&no_url).await), "PARAM_ERROR");
        let recorded = pay.order("SBTEST_0001").expect("recorded");
        assert_eq!((recorded.amount_fen, recorded.state), (100, SandboxOrderState::NotPaid));
        assert!(pay.order("SBTEST_0002").is_none());
        assert!(!pay.needs_payer());
    }

    #[tokio::test]
    async fn native_prepay_answers_one_code_url_per_open_order() {
        let pay = sandbox();
        let native = PrepayRequest { payer_openid: None, ..order("SBNATIVE_001", 700) };
        let code_url = pay.native_prepay(&native).await.expect("native prepay");
        let pr = code_url.strip_prefix("weixin://wxpay/bizpayurl?pr=").expect("a code_url");
        assert!(pr.len() == 12 && pr.bytes().all(|b| b.is_ascii_alphanumeric()), "{code_url}");
        assert_eq!(pay.native_prepay(&native).await.expect("again"), code_url, "the same while open");
        let other = pay.native_prepay(&PrepayRequest { payer_openid: None, ..order("SBNATIVE_002", 700) }).await;
        assert_ne!(other.expect("another order"), code_url);
        // Checked like JSAPI orders.
        assert_eq!(vendor_code(pay.native_prepay(&order("SBNATIVE_001", 701)).await), "INVALID_REQUEST");
        assert_eq!(vendor_code(pay.native_prepay(&order("SBN", 700)).await), "PARAM_ERROR");
        let recorded = pay.order("SBNATIVE_001").expect("recorded");
        assert_eq!((recorded.amount_fen, recorded.state, recorded.payer_openid), (700, SandboxOrderState::NotPaid, None));
        let (headers, body) = pay.build_notify("SBNATIVE_001", true).expect("notify");
        let n = pay.verify_notify(&headers, &body, Utc::now()).expect("verifies");
        assert!(matches!(n.event, NotifyEvent::Transaction(t) if t.amount_total_fen == 700 && t.payer_openid.is_none()));
        // `pay` finds the order by its code_url or pr token, as a JSAPI order by its prepay_id (no
        // merchant listens at port 9: the notify is not delivered and the order stays payable).
        for id in [code_url.as_str(), pr, "SBNATIVE_001"] {
            assert!(matches!(pay.pay(id, true).await, Err(SandboxPayError::Notify(_))), "{id}");
        }
        let unknown = "weixin://wxpay/bizpayurl?pr=000000000000";
        assert_eq!(pay.pay(unknown, true).await, Err(SandboxPayError::NotFound(unknown.into())));
        assert_eq!(pay.order("SBNATIVE_001").map(|o| o.state), Some(SandboxOrderState::NotPaid));
    }

    #[tokio::test]
    async fn built_notifies_verify_and_forgeries_do_not() {
        let pay = sandbox();
        pay.jsapi_prepay(&order("SBTEST_0010", 2500)).await.expect("prepay");
        let (headers, body) = pay.build_notify("SBTEST_0010", true).expect("notify");
        let n = pay.verify_notify(&headers, &body, Utc::now()).expect("verifies");
        assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
        let NotifyEvent::Transaction(t) = n.event else { panic!("a transaction") };
        assert_eq!((t.amount_total_fen, &t.trade_state), (2500, &TradeState::Success));
        assert_eq!((&t.appid, &t.mchid), (&pay.merchant().appid, &pay.merchant().mchid));
        assert!(t.transaction_id.as_deref().is_some_and(|id| id.starts_with("42000") && id.len() == 28));
        assert!(t.success_time.is_some_and(|at| (Utc::now() - at).num_seconds().abs() < 5));

        let (headers, body) = pay.build_notify("SBTEST_0010", false).expect("notify");
        let n = pay.verify_notify(&headers, &body, Utc::now()).expect("verifies");
        assert_eq!(n.event_type, "TRANSACTION.PAYERROR");
        assert!(
            matches!(n.event, NotifyEvent::Transaction(t) if t.trade_state == TradeState::PayError && t.success_time.is_none())
        );

        // Another platform's key under the sandbox serial: refused.
        let forger = PlatformSigner::generate().expect("keygen");
        let mut forged = forger.sign_notify(&body, Utc::now()).expect("sign");
        forged.insert(verify::HEADER_SERIAL, HeaderValue::from_str(pay.platform().serial()).expect("ascii"));
        assert!(matches!(pay.verify_notify(&forged, &body, Utc::now()), Err(NotifyError::Signature(_))));
        assert!(matches!(pay.build_notify("SBTEST_NOPE", true), Err(SandboxPayError::NotFound(_))));
    }

    #[tokio::test]
    async fn pay_params_are_signed_with_the_sandbox_merchant_key() {
        let pay = sandbox();
        let params = pay.pay_params("wx0123").expect("params");
        let key = keys::parse_public_key(&pay.merchant_public_key_der().expect("der")).expect("key");
        let message = format!("{}\n{}\n{}\n{}\n", params.app_id, params.time_stamp, params.nonce_str, params.package);
        let signature = B64.decode(&params.pay_sign).expect("b64");
        assert!(key.verify_sig(message.as_bytes(), &signature).is_ok());
        assert_eq!(params.app_id, "wx0000000000sandbox");
    }

    #[tokio::test]
    async fn the_sandbox_keeps_the_servers_time() {
        let clock = Clock::default();
        let pay = SandboxPay::new("wx0000000000sandbox", "1900000001", clock.clone()).expect("keygen");
        pay.jsapi_prepay(&order_at("SBCLOCK_001", 100, clock.now())).await.expect("prepay");
        // The server's clock moves 31 minutes: the order's 30 minutes are over for the sandbox too.
        clock.advance(Duration::from_secs(31 * 60));
        assert_eq!(pay.pay("SBCLOCK_001", true).await, Err(SandboxPayError::Expired("SBCLOCK_001".into())));
        // Ordering it again: its time_expire (set by the first prepay) has passed.
        assert_eq!(vendor_code(pay.jsapi_prepay(&order_at("SBCLOCK_001", 100, clock.now())).await), "ORDER_CLOSED");
        // Still NOTPAY until closed; closed, it cannot be paid, nor ordered again.
        assert_eq!(pay.query("SBCLOCK_001").await.expect("query").trade_state, TradeState::NotPay);
        pay.close("SBCLOCK_001").await.expect("closes");
        pay.close("SBCLOCK_001").await.expect("closing twice is fine");
        assert_eq!(pay.query("SBCLOCK_001").await.expect("query").trade_state, TradeState::Closed);
        assert_eq!(pay.pay("SBCLOCK_001", true).await, Err(SandboxPayError::Closed("SBCLOCK_001".into())));
        // Notifies and pay parameters are signed as of the moved clock.
        let (headers, body) = pay.build_notify("SBCLOCK_001", false).expect("notify");
        assert!(pay.verify_notify(&headers, &body, clock.now()).is_ok());
        assert!(pay.verify_notify(&headers, &body, Utc::now()).is_err(), "31 minutes from real time");
        let params = pay.pay_params("wx0123").expect("params");
        assert_eq!(params.time_stamp, clock.now().timestamp().to_string());
    }

    #[tokio::test]
    async fn unknown_and_unpaid_orders_are_vendor_errors() {
        let pay = sandbox();
        assert_eq!(vendor_code(pay.query("SBNONE_0001").await), "ORDER_NOT_EXIST");
        assert_eq!(vendor_code(pay.close("SBNONE_0001").await), "ORDER_NOT_EXIST");
        assert_eq!(vendor_code(pay.query_refund("R_NONE").await), "RESOURCE_NOT_EXISTS");
        let refund = |no: &str, out_refund_no: &str, refund_fen: i64| RefundRequest {
            out_trade_no: no.into(),
            out_refund_no: out_refund_no.into(),
            reason: None,
            refund_fen,
            total_fen: 300,
            notify_url: String::new(),
        };
        assert_eq!(vendor_code(pay.refund(&refund("SBNONE_0001", "R_0001", 100)).await), "RESOURCE_NOT_EXISTS");
        pay.jsapi_prepay(&order("SBUNPAID_01", 300)).await.expect("prepay");
        let query = pay.query("SBUNPAID_01").await.expect("query");
        assert_eq!((query.trade_state, query.transaction_id, query.success_time), (TradeState::NotPay, None, None));
        assert_eq!(vendor_code(pay.refund(&refund("SBUNPAID_01", "R_0002", 100)).await), "INVALID_REQUEST");
        assert_eq!(vendor_code(pay.refund(&refund("SBUNPAID_01", "R 0003", 100)).await), "PARAM_ERROR");
        assert_eq!(vendor_code(pay.refund(&refund("SBUNPAID_01", "R_0004", 0)).await), "PARAM_ERROR");
        let bad_url = RefundRequest { notify_url: "notify".into(), ..refund("SBUNPAID_01", "R_0005", 1) };
        assert_eq!(vendor_code(pay.refund(&bad_url).await), "PARAM_ERROR");
        assert!(pay.refund_record("R_0002").is_none());
    }

    #[test]
    fn debug_names_the_merchant_and_serial_but_no_key() {
        let pay = sandbox();
        let debug = format!("{pay:?}");
        assert!(debug.contains("1900000001") && debug.contains(pay.platform().serial()), "{debug}");
        let apiv3 = String::from_utf8(pay.platform.apiv3_key.expose_secret().to_vec()).expect("ascii");
        assert!(!debug.contains(&apiv3) && !debug.contains("KeyPair"), "{debug}");
    }

    #[test]
    fn out_refund_no_rule() {
        assert!(valid_out_refund_no("R@1|*_-"));
        assert!(valid_out_refund_no(&"1".repeat(64)));
        assert!(!valid_out_refund_no(""));
        assert!(!valid_out_refund_no(&"1".repeat(65)));
        assert!(!valid_out_refund_no("退款1"));
    }

    #[test]
    fn platform_signing_reproduces_the_wechatpay_go_notify() {
        use crate::providers::wechat_pay::vectors::{self, testing_key};
        // The platform key of wechatpay-go's notify test signs the same body, timestamp and nonce
        // into the same signature: the sandbox signs notifies exactly as WeChat Pay does.
        let platform = PlatformSigner::new(
            vectors::GO_NOTIFY_SERIAL,
            testing_key(vectors::GO_PRIVATE_KEY).as_bytes(),
            vectors::JAVA_APIV3_KEY.as_bytes(),
        )
        .expect("platform");
        let headers = platform
            .sign_notify_at(
                vectors::GO_NOTIFY_BODY.as_bytes(),
                vectors::GO_NOTIFY_TIMESTAMP.parse().expect("seconds"),
                vectors::GO_NOTIFY_NONCE,
            )
            .expect("signs");
        let header = |name: &str| headers[name].to_str().expect("ascii").to_string();
        assert_eq!(header(verify::HEADER_SIGNATURE), vectors::GO_NOTIFY_SIGNATURE);
        assert_eq!(header(verify::HEADER_TIMESTAMP), "1624523846");
        assert_eq!(header(verify::HEADER_NONCE), vectors::GO_NOTIFY_NONCE);
        assert_eq!(header(verify::HEADER_SERIAL), "D7CE59D1F522D701");
        assert_eq!(header(verify::HEADER_SIGNATURE_TYPE), "WECHATPAY2-SHA256-RSA2048");
    }
}
