//! WeChat Pay for mini-programs (domain.md §2.1–2.3): the [`WechatPay`] trait and the types it
//! speaks, shared by the real providers ([`v3::WechatPayV3`], [`v2::WechatPayV2`], HTTPS to
//! api.mch.weixin.qq.com) and the sandbox payment platform ([`sandbox::SandboxPay`], either
//! protocol).
//!
//! - [`keys`]: loading the merchant private key, WeChat Pay's public key and the APIv3 key.
//! - [`sign`]: merchant signing (`Authorization` of API requests, `paySign`).
//! - [`verify`]: signature verification of answers and notifies, resource decryption.
//! - [`v3`]: the real HTTP provider. [`sandbox`]: the sandbox platform (WeChat Pay's side too).
//! - [`v2`]: WeChat Pay v2 (XML, MD5/HMAC-SHA256 signs with the API key): its signing, XML,
//!   notifies and ack, and the real v2 provider.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::clock::BEIJING;
use serde::Deserialize;

use super::ProviderError;

pub mod keys;
pub mod sandbox;
pub mod sign;
pub mod v2;
pub mod v3;
#[cfg(test)]
mod vectors;
pub mod verify;

/// A JSAPI (mini-program) order, as `POST /v3/pay/transactions/jsapi` takes it; or a NATIVE
/// (scan-to-pay) one, as `POST /v3/pay/transactions/native` takes it (no payer).
#[derive(Debug, Clone)]
pub struct PrepayRequest {
    /// Our order number (6–32 chars of `[0-9A-Za-z_-|*]`), unique per mchid.
    pub out_trade_no: String,
    /// What is bought (≤ 127 chars), shown to the payer.
    pub description: String,
    /// The amount in fen.
    pub amount_fen: i64,
    /// The payer's openid; `None` when the API has no WeChat login (the sandbox accepts that,
    /// the real provider refuses: JSAPI needs a payer). NATIVE orders do not use it.
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

/// The merchant orders are placed with: every notify and answer is checked against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    /// The mini-program appid.
    pub appid: String,
    /// The merchant id (商户号).
    pub mchid: String,
}

/// WeChat's `trade_state` of an order (domain.md §2.2; query answers and payment notifies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeState {
    /// `SUCCESS`: paid.
    Success,
    /// `REFUND`: paid, and a refund has been asked for (转入退款).
    Refund,
    /// `NOTPAY`: not paid yet.
    NotPay,
    /// `CLOSED`: closed unpaid; it can no longer be paid.
    Closed,
    /// `REVOKED`: revoked (payment-code orders only).
    Revoked,
    /// `USERPAYING`: the payer is paying (entering a password, …).
    UserPaying,
    /// `PAYERROR`: the payment failed (a declined card, …).
    PayError,
    /// A state this code does not know, as WeChat wrote it.
    Other(String),
}

impl TradeState {
    /// The state WeChat writes as `s`.
    pub fn from_wire(s: &str) -> TradeState {
        match s {
            "SUCCESS" => TradeState::Success,
            "REFUND" => TradeState::Refund,
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" => TradeState::Closed,
            "REVOKED" => TradeState::Revoked,
            "USERPAYING" => TradeState::UserPaying,
            "PAYERROR" => TradeState::PayError,
            other => TradeState::Other(other.to_string()),
        }
    }

    /// The wire name (`SUCCESS`, `NOTPAY`, …).
    pub fn as_str(&self) -> &str {
        match self {
            TradeState::Success => "SUCCESS",
            TradeState::Refund => "REFUND",
            TradeState::NotPay => "NOTPAY",
            TradeState::Closed => "CLOSED",
            TradeState::Revoked => "REVOKED",
            TradeState::UserPaying => "USERPAYING",
            TradeState::PayError => "PAYERROR",
            TradeState::Other(other) => other,
        }
    }
}

/// An order as WeChat Pay reports it: the answer of a query and the `transaction` resource of a
/// payment notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The appid the order was placed with.
    pub appid: String,
    /// The merchant id.
    pub mchid: String,
    /// Our order number.
    pub out_trade_no: String,
    /// WeChat Pay's transaction id (28 digits); `None` until the order is paid.
    pub transaction_id: Option<String>,
    /// Where the order stands.
    pub trade_state: TradeState,
    /// When the payer paid (UTC); `None` unless paid.
    pub success_time: Option<DateTime<Utc>>,
    /// The order amount (`amount.total`), in fen.
    pub amount_total_fen: i64,
    /// The payer's openid, when WeChat names one.
    pub payer_openid: Option<String>,
}

/// A refund to ask for (`POST /v3/refund/domestic/refunds`, domain.md §2.2 Refund).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The paid order to refund.
    pub out_trade_no: String,
    /// Our refund number (1–64 chars of `[0-9A-Za-z_-|*@]`), unique per merchant; a retry must
    /// reuse it.
    pub out_refund_no: String,
    /// Shown to the payer (≤ 80 chars), if any.
    pub reason: Option<String>,
    /// How much to give back, in fen (> 0; all refunds of an order together ≤ its total).
    pub refund_fen: i64,
    /// The order's total, in fen (WeChat checks it against the order).
    pub total_fen: i64,
    /// Where the refund's notify goes (the payment notify URL serves both); empty: none.
    pub notify_url: String,
}

/// Where a refund stands (WeChat's `status`, `refund_status` in notifies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    /// `SUCCESS`: the money is back with the payer.
    Success,
    /// `CLOSED`: given up (e.g. stuck in PROCESSING for 7 days); ask again under a new number.
    Closed,
    /// `PROCESSING`: under way.
    Processing,
    /// `ABNORMAL`: the payer's account refused it (a closed card, …); not final.
    Abnormal,
}

impl RefundStatus {
    /// The status WeChat writes as `s`; `None` for one this code does not know.
    pub fn from_wire(s: &str) -> Option<RefundStatus> {
        match s {
            "SUCCESS" => Some(RefundStatus::Success),
            "CLOSED" => Some(RefundStatus::Closed),
            "PROCESSING" => Some(RefundStatus::Processing),
            "ABNORMAL" => Some(RefundStatus::Abnormal),
            _ => None,
        }
    }

    /// The wire name (`SUCCESS`, `PROCESSING`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Success => "SUCCESS",
            RefundStatus::Closed => "CLOSED",
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Abnormal => "ABNORMAL",
        }
    }
}

/// A refund as WeChat Pay answers it (to the request and to a query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// Our refund number.
    pub out_refund_no: String,
    /// WeChat Pay's refund id.
    pub refund_id: String,
    /// Where it stands.
    pub status: RefundStatus,
    /// When the money was back (UTC); `None` unless `Success`.
    pub success_time: Option<DateTime<Utc>>,
    /// The amount refunded (`amount.refund`), in fen.
    pub refund_fen: i64,
}

/// The `refund` resource of a refund notify (`REFUND.SUCCESS` / `REFUND.ABNORMAL` / `REFUND.CLOSED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNotice {
    /// The merchant id.
    pub mchid: String,
    /// The refunded order.
    pub out_trade_no: String,
    /// WeChat Pay's transaction id of the order.
    pub transaction_id: String,
    /// Our refund number.
    pub out_refund_no: String,
    /// WeChat Pay's refund id.
    pub refund_id: String,
    /// Where the refund stands (`refund_status`).
    pub status: RefundStatus,
    /// When the money was back (UTC), on success.
    pub success_time: Option<DateTime<Utc>>,
    /// The amount refunded, in fen.
    pub refund_fen: i64,
    /// The order's total, in fen.
    pub total_fen: i64,
}

/// What a notify reports, by its resource's `original_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    /// `transaction`: a payment (`TRANSACTION.SUCCESS`, …).
    Transaction(Transaction),
    /// `refund`: a refund (`REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`).
    Refund(RefundNotice),
}

/// A verified, decrypted notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The notification id (unique; stored for dedupe and audit).
    pub id: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, …
    pub event_type: String,
    /// What it reports.
    pub event: NotifyEvent,
}

/// Why a notify was refused. Each maps to the notify answer in the contract (000 §5.5):
/// signature problems 401, unreadable or undecryptable bodies 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotifyError {
    /// Missing `Wechatpay-*` headers, unknown serial, bad signature, `WECHATPAY/SIGNTEST/` probe,
    /// or a timestamp more than 5 minutes from now.
    #[error("signature: {0}")]
    Signature(String),
    /// The body is not a notify, or the resource does not decrypt / parse.
    #[error("body: {0}")]
    Body(String),
    /// The keys to verify with cannot be read now (the sandbox's live in the database): ours,
    /// not the sender's — answered 500 so that WeChat retries.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// WeChat Pay v3 for mini-programs, as every API needs it: orders (JSAPI prepay, pay parameters,
/// NATIVE prepay, query, close), refunds (ask, query) and notifies of both.
///
/// Vendor errors keep WeChat's code in [`ProviderError::Vendor`] (`ORDER_NOT_EXIST`,
/// `ORDERPAID`, `INVALID_REQUEST`, `PARAM_ERROR`, …); an answer that does not verify as WeChat
/// Pay's is [`ProviderError::Transport`], never used.
#[async_trait]
pub trait WechatPay: Send + Sync + 'static {
    /// The appid and mchid orders are placed with (every notify is checked against them).
    fn merchant(&self) -> &Merchant;
    /// Whether `jsapi_prepay` needs `payer_openid` (real JSAPI: yes; the sandbox: no).
    fn needs_payer(&self) -> bool;
    /// Place a JSAPI order; the prepay_id (valid 2 h). Same out_trade_no + same params again → a
    /// fresh prepay_id.
    async fn jsapi_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError>;
    /// Place a NATIVE (scan-to-pay) order: `order.amount_fen` in fen, `order.payer_openid`
    /// unused (the payer is whoever scans). Answers the `code_url`, `weixin://wxpay/bizpayurl?pr=…`,
    /// the text to show as a QR code (valid 2 h, and never past `order.time_expire`); the same
    /// out_trade_no and params again, while the order is open, answer a code_url for the same
    /// order. WeChat's refusals (`ORDERPAID`, `ORDER_CLOSED`, `PARAM_ERROR`, …) are
    /// [`ProviderError::Vendor`]; an answer that does not verify or carries no `code_url` is
    /// [`ProviderError::Transport`].
    async fn native_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError>;
    /// Sign `wx.requestPayment` parameters for a prepay_id. Async because the sandbox reads its
    /// merchant key from the database on first use.
    async fn pay_params(&self, prepay_id: &str) -> Result<PayParams, ProviderError>;
    /// Query an order by out_trade_no (`GET /v3/pay/transactions/out-trade-no/{no}?mchid=`);
    /// unknown order → `Vendor{code:"ORDER_NOT_EXIST"}`.
    async fn query(&self, out_trade_no: &str) -> Result<Transaction, ProviderError>;
    /// Close an unpaid order (`POST …/out-trade-no/{no}/close`); a paid one →
    /// `Vendor{code:"ORDERPAID"}`.
    async fn close(&self, out_trade_no: &str) -> Result<(), ProviderError>;
    /// Ask for a refund (`POST /v3/refund/domestic/refunds`); retrying with the same
    /// out_refund_no is safe.
    async fn refund(&self, request: &RefundRequest) -> Result<Refund, ProviderError>;
    /// Query a refund (`GET /v3/refund/domestic/refunds/{out_refund_no}`).
    async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, ProviderError>;
    /// Verify a notify from its HTTP headers and raw body (signature over the raw bytes,
    /// serial-selected key, timestamp within 5 min of `now`, probe signatures refused) and
    /// decrypt it. Headers + body (not a v3-specific header struct) so a v2 XML notify fits the
    /// same trait later. Async because the sandbox reads its keys from the database on first
    /// use ([`NotifyError::Unavailable`] when it cannot).
    async fn verify_notify(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Notification, NotifyError>;
}

// ---- the JSON WeChat Pay writes (answers and notify resources), read into the types above --------

/// `amount` of a transaction or refund.
#[derive(Deserialize)]
struct WireAmount {
    total: i64,
    #[serde(default)]
    refund: Option<i64>,
}

#[derive(Deserialize)]
struct WirePayer {
    openid: Option<String>,
}

#[derive(Deserialize)]
struct WireTransaction {
    appid: String,
    mchid: String,
    out_trade_no: String,
    transaction_id: Option<String>,
    trade_state: String,
    success_time: Option<String>,
    amount: WireAmount,
    payer: Option<WirePayer>,
}

/// A refund answer (`status`) or refund notify resource (`refund_status`; it also names the
/// merchant and the order).
#[derive(Deserialize)]
struct WireRefund {
    #[serde(default)]
    mchid: String,
    #[serde(default)]
    out_trade_no: String,
    #[serde(default)]
    transaction_id: String,
    out_refund_no: String,
    refund_id: String,
    #[serde(alias = "refund_status")]
    status: String,
    success_time: Option<String>,
    amount: WireAmount,
}

/// An RFC 3339 time as UTC; absent and empty are `None`.
fn utc(time: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    match time {
        None | Some("") => Ok(None),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("success_time {t:?}: {e}")),
    }
}

/// Read a transaction (query answer, `transaction` notify resource). Errors say what is wrong.
fn transaction_from_json(json: &[u8]) -> Result<Transaction, String> {
    let wire: WireTransaction = serde_json::from_slice(json).map_err(|e| format!("not a transaction: {e}"))?;
    Ok(Transaction {
        appid: wire.appid,
        mchid: wire.mchid,
        out_trade_no: wire.out_trade_no,
        transaction_id: wire.transaction_id.filter(|id| !id.is_empty()),
        trade_state: TradeState::from_wire(&wire.trade_state),
        success_time: utc(wire.success_time.as_deref())?,
        amount_total_fen: wire.amount.total,
        payer_openid: wire.payer.and_then(|p| p.openid).filter(|id| !id.is_empty()),
    })
}

/// Read a `refund` notify resource, or a refund answer (its fields, less the mchid).
fn refund_notice_from_json(json: &[u8]) -> Result<RefundNotice, String> {
    let wire: WireRefund = serde_json::from_slice(json).map_err(|e| format!("not a refund: {e}"))?;
    Ok(RefundNotice {
        status: RefundStatus::from_wire(&wire.status)
            .ok_or_else(|| format!("unknown refund status {}", wire.status))?,
        success_time: utc(wire.success_time.as_deref())?,
        refund_fen: wire.amount.refund.ok_or("refund without amount.refund")?,
        total_fen: wire.amount.total,
        mchid: wire.mchid,
        out_trade_no: wire.out_trade_no,
        transaction_id: wire.transaction_id,
        out_refund_no: wire.out_refund_no,
        refund_id: wire.refund_id,
    })
}

/// Read a refund answer (request or query).
fn refund_from_json(json: &[u8]) -> Result<Refund, String> {
    let notice = refund_notice_from_json(json)?;
    Ok(Refund {
        out_refund_no: notice.out_refund_no,
        refund_id: notice.refund_id,
        status: notice.status,
        success_time: notice.success_time,
        refund_fen: notice.refund_fen,
    })
}

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
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;

    #[test]
    fn transactions_read_as_wechat_writes_them() {
        let paid = json!({
            "appid": "wx123", "mchid": "1900000001", "out_trade_no": "ORDER_000001",
            "transaction_id": "4200000000202412181234567890", "trade_type": "JSAPI", "trade_state": "SUCCESS",
            "success_time": "2024-12-18T15:55:28+08:00", "payer": {"openid": "o_payer"},
            "amount": {"total": 12345, "payer_total": 12345, "currency": "CNY", "payer_currency": "CNY"},
            "promotion_detail": []
        });
        let t = transaction_from_json(paid.to_string().as_bytes()).expect("reads");
        assert_eq!(t.success_time, Utc.with_ymd_and_hms(2024, 12, 18, 7, 55, 28).single());
        assert_eq!((t.trade_state, t.amount_total_fen), (TradeState::Success, 12345));
        // Empty strings are absent values; a state we do not know is kept as written.
        let mut odd = paid.clone();
        odd["transaction_id"] = json!("");
        odd["success_time"] = json!("");
        odd["payer"] = json!({"openid": ""});
        odd["trade_state"] = json!("SOMETHING_NEW");
        let t = transaction_from_json(odd.to_string().as_bytes()).expect("reads");
        assert_eq!((t.transaction_id, t.success_time, t.payer_openid), (None, None, None));
        assert_eq!(t.trade_state, TradeState::Other("SOMETHING_NEW".into()));
        assert_eq!(t.trade_state.as_str(), "SOMETHING_NEW");
        // Without its amount, or with a time that is not RFC 3339, it is no transaction.
        let mut no_amount = paid.clone();
        no_amount.as_object_mut().expect("object").remove("amount");
        assert!(transaction_from_json(no_amount.to_string().as_bytes()).is_err());
        let mut bad_time = paid;
        bad_time["success_time"] = json!("2024-12-18 15:55:28");
        assert!(transaction_from_json(bad_time.to_string().as_bytes()).is_err());
    }

    #[test]
    fn trade_states_round_trip_their_wire_names() {
        for name in ["SUCCESS", "REFUND", "NOTPAY", "CLOSED", "REVOKED", "USERPAYING", "PAYERROR"] {
            let state = TradeState::from_wire(name);
            assert!(!matches!(state, TradeState::Other(_)), "{name}");
            assert_eq!(state.as_str(), name);
        }
        for name in ["SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL"] {
            assert_eq!(RefundStatus::from_wire(name).map(RefundStatus::as_str), Some(name));
        }
        assert_eq!(RefundStatus::from_wire("success"), None);
    }

    #[test]
    fn refunds_read_from_answers_and_notifies() {
        let answer = json!({
            "refund_id": "50000000382019052709732678859", "out_refund_no": "R1", "transaction_id": "42000",
            "out_trade_no": "O1", "status": "PROCESSING", "create_time": "2024-12-19T10:00:00+08:00",
            "amount": {"total": 300, "refund": 100, "payer_total": 300, "payer_refund": 100, "currency": "CNY"}
        });
        let refund = refund_from_json(answer.to_string().as_bytes()).expect("reads");
        assert_eq!((refund.status, refund.refund_fen, refund.success_time), (RefundStatus::Processing, 100, None));
        // Notifies name the status `refund_status`.
        let mut notice = answer.clone();
        let status = notice.as_object_mut().expect("object").remove("status").expect("status");
        notice["refund_status"] = status;
        notice["mchid"] = json!("1900000001");
        let notice = refund_notice_from_json(notice.to_string().as_bytes()).expect("reads");
        assert_eq!((notice.mchid.as_str(), notice.total_fen, notice.refund_fen), ("1900000001", 300, 100));
        let mut no_refund = answer;
        no_refund["amount"] = json!({"total": 300});
        assert!(refund_from_json(no_refund.to_string().as_bytes()).is_err());
    }

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
