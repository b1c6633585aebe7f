//! WeChat Pay v3 for mini-programs (domain.md §2.2–2.3): the [`WechatPay`] trait and the types it
//! speaks, shared by the real provider ([`v3::WechatPayV3`], HTTPS to api.mch.weixin.qq.com) and the
//! sandbox payment platform ([`sandbox::SandboxPay`]).
//!
//! - [`keys`]: loading the merchant private key, WeChat Pay's public key and the APIv3 key.
//! - [`sign`]: merchant signing (`Authorization` of API requests, `paySign`).
//! - [`verify`]: signature verification of answers and notifies, resource decryption.
//! - [`v3`]: the real HTTP provider. [`sandbox`]: the sandbox platform (WeChat Pay's side too).

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};

use super::ProviderError;

pub mod keys;
pub mod sandbox;
pub mod sign;
pub mod v3;
#[cfg(test)]
mod vectors;
pub mod verify;

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

/// Beijing time, UTC+8 (checked at compile time).
const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// Format a UTC time as WeChat Pay shows it: RFC 3339, seconds, Beijing time (`+08:00`).
pub fn beijing_rfc3339(t: DateTime<Utc>) -> String {
    t.with_timezone(&BEIJING).to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// WeChat's out_trade_no rule: 6–32 characters of `[0-9A-Za-z_-|*]`.
pub fn valid_out_trade_no(s: &str) -> bool {
    (6..=32).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_has_the_plus_eight_offset() {
        let t = DateTime::parse_from_rfc3339("2024-12-18T07:55:28Z").expect("time").with_timezone(&Utc);
        assert_eq!(beijing_rfc3339(t), "2024-12-18T15:55:28+08:00");
    }

    #[test]
    fn out_trade_no_rule() {
        assert!(valid_out_trade_no("ORD_2024-01|*9"));
        assert!(!valid_out_trade_no("12345"));
        assert!(!valid_out_trade_no(&"1".repeat(33)));
        assert!(!valid_out_trade_no("ORDER 0001"));
        assert!(!valid_out_trade_no("订单000001"));
    }
}
