//! External services behind traits: SMS, WeChat login (code2Session) and WeChat Pay v3, each with
//! a sandbox provider (the default) and a real HTTP provider selected by configuration.
//!
//! The application layer only sees the traits. Sandbox providers keep what they "sent" in memory
//! so `/_sandbox/*` can show it; real providers talk to the vendor over HTTPS and are tested
//! against wiremock (tests/it/providers.rs).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub mod sms;
pub mod wechat_login;
pub mod wechat_pay;
pub mod wxpay;

/// Why a provider call failed. The application maps every variant to its API's "upstream failed"
/// answer (heating: HTTP 502, code 1007 for SMS); the detail goes to the log, never to a client.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The vendor could not be reached or answered something unreadable.
    #[error("{provider}: transport: {detail}")]
    Transport {
        /// Which provider (`aliyun-sms`, `wechat-pay`, …).
        provider: &'static str,
        /// What went wrong, without secrets.
        detail: String,
    },
    /// The vendor answered with an error of its own.
    #[error("{provider}: {code}: {message}")]
    Vendor {
        /// Which provider.
        provider: &'static str,
        /// The vendor's error code (`isv.BUSINESS_LIMIT_CONTROL`, `40029`, `PARAM_ERROR`, …).
        code: String,
        /// The vendor's message.
        message: String,
    },
    /// Our own configuration is unusable (a key that does not parse, …).
    #[error("{provider}: configuration: {detail}")]
    Config {
        /// Which provider.
        provider: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// Sends verification codes by SMS.
#[async_trait]
pub trait SmsProvider: Send + Sync + 'static {
    /// Send `code` to `phone` (11 digits, mainland) for `purpose` (the sending API's own word:
    /// `login`, `register`, `reset_password`, `yezhu`, …; it picks the SMS template); the code
    /// expires after `ttl_seconds`. `api` is the sending API's id, used by the sandbox outbox.
    async fn send_code(&self, api: &'static str, phone: &str, code: &str, purpose: &str, ttl_seconds: u32) -> Result<(), ProviderError>;
}

/// What code2Session answered (domain.md §1.1). The session_key never leaves the server.
#[derive(Debug, Clone)]
pub struct WechatSession {
    /// The user's openid under this mini-program.
    pub openid: String,
    /// The session key (base64 of 16 bytes), for decrypting encryptedData.
    pub session_key: secrecy::SecretString,
    /// The unionid, when the mini-program is bound to an open platform account.
    pub unionid: Option<String>,
}

/// WeChat mini-program login: `wx.login()` code → openid (code2Session).
#[async_trait]
pub trait WechatLogin: Send + Sync + 'static {
    /// Exchange a `wx.login()` code. Vendor errors keep WeChat's errcode (`40029` invalid code,
    /// `45011` rate limited, `40226` high-risk user, `-1` busy) in [`ProviderError::Vendor`].
    async fn code2session(&self, code: &str) -> Result<WechatSession, ProviderError>;
}

/// A JSAPI (mini-program) order, as `POST /v3/pay/transactions/jsapi` takes it.
#[derive(Debug, Clone)]
pub struct PrepayRequest {
    /// Our order number (6–32 chars of `[0-9A-Za-z_-|*]`), unique per mchid.
    pub out_trade_no: String,
    /// What is bought (≤ 127 chars), shown to the payer.
    pub description: String,
    /// The amount in fen.
    pub amount_fen: i64,
    /// The payer's openid; `None` when the API has no WeChat login (the sandbox accepts that,
    /// the real provider refuses: JSAPI needs a payer).
    pub payer_openid: Option<String>,
    /// Where WeChat Pay sends the notify (https, no query in production).
    pub notify_url: String,
    /// After this the order can no longer be paid.
    pub time_expire: DateTime<Utc>,
}

/// The parameters `wx.requestPayment` takes (domain.md §2.2 paySign), field names as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayParams {
    /// The mini-program appid the order was placed with.
    pub app_id: String,
    /// Seconds since the epoch, as a string.
    pub time_stamp: String,
    /// Random string.
    pub nonce_str: String,
    /// `prepay_id=…`.
    pub package: String,
    /// Always `RSA` for v3.
    pub sign_type: String,
    /// base64(RSA-SHA256(appId\ntimeStamp\nnonceStr\npackage\n)) with the merchant key.
    pub pay_sign: String,
}

/// The `Wechatpay-*` headers of a notify.
#[derive(Debug, Clone)]
pub struct NotifyHeaders {
    /// `Wechatpay-Timestamp`, seconds.
    pub timestamp: String,
    /// `Wechatpay-Nonce`.
    pub nonce: String,
    /// `Wechatpay-Signature`, base64.
    pub signature: String,
    /// `Wechatpay-Serial`: platform certificate serial or `PUB_KEY_ID_…`.
    pub serial: String,
}

/// The decrypted `transaction` resource of a payment notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The appid the order was placed with.
    pub appid: String,
    /// The merchant id.
    pub mchid: String,
    /// Our order number.
    pub out_trade_no: String,
    /// WeChat Pay's transaction id.
    pub transaction_id: String,
    /// `SUCCESS`, `PAYERROR`, `CLOSED`, `NOTPAY`, …
    pub trade_state: String,
    /// When it was paid (RFC 3339), on success.
    pub success_time: Option<String>,
    /// The order amount in fen.
    pub amount_total_fen: i64,
    /// The payer's openid.
    pub payer_openid: Option<String>,
}

/// A verified, decrypted notify.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The notification id (unique; stored for dedupe and audit).
    pub id: String,
    /// `TRANSACTION.SUCCESS`, …
    pub event_type: String,
    /// The payment it reports.
    pub transaction: Transaction,
}

/// Why a notify was refused. Each maps to the notify answer in the contract (000 §5.5):
/// signature problems 401, unreadable or undecryptable bodies 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotifyError {
    /// Unknown serial, bad signature, `WECHATPAY/SIGNTEST/` probe, or timestamp > 5 min off.
    #[error("signature: {0}")]
    Signature(String),
    /// The body is not a notify, or the resource does not decrypt / parse.
    #[error("body: {0}")]
    Body(String),
}

/// WeChat Pay v3 for mini-programs: JSAPI prepay, pay parameters, notify verification.
#[async_trait]
pub trait WechatPay: Send + Sync + 'static {
    /// The appid and mchid orders are placed with (checked against every notify).
    fn merchant(&self) -> (&str, &str);
    /// Place the order; answers the prepay_id (valid 2 hours).
    async fn jsapi_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError>;
    /// Sign `wx.requestPayment` parameters for a prepay_id with the merchant key.
    fn pay_params(&self, prepay_id: &str) -> Result<PayParams, ProviderError>;
    /// Verify a notify (signature over the raw body, timestamp within 5 minutes of `now`,
    /// probe signatures refused) and decrypt its resource.
    fn verify_notify(
        &self,
        headers: &NotifyHeaders,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Notification, NotifyError>;
}

/// The providers a server runs with.
#[derive(Clone)]
pub struct Providers {
    /// SMS sending.
    pub sms: Arc<dyn SmsProvider>,
    /// WeChat login.
    pub wechat_login: Arc<dyn WechatLogin>,
    /// WeChat Pay.
    pub wechat_pay: Arc<dyn WechatPay>,
    /// The sandbox's state when the sandbox providers are active (serves `/_sandbox/*`).
    pub sandbox: Option<crate::sandbox::Sandbox>,
}
