//! WeChat Pay v2 (domain.md §2.1): XML signed with the API key, the real provider [`WechatPayV2`].

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use aws_lc_rs::cipher::{
    AES_256, DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, NaiveDateTime, Utc};
use md5::{Digest as _, Md5};
use quick_xml::events::{BytesCData, BytesEnd, BytesStart, Event};
use secrecy::{ExposeSecret as _, SecretString};

use super::keys::KeyError;
use super::{
    Merchant, Notification, NotifyError, NotifyEvent, PayParams, PrepayRequest, ProviderError,
    Refund, RefundNotice, RefundRequest, RefundStatus, TradeState, Transaction, WechatPay,
};
use crate::clock::BEIJING;
pub use crate::config::SignType;
use crate::config::WechatPayConfig;

const REAL: &str = "wechat-pay-v2";

/// The largest XML body read, answers and notifies alike: 64 KiB (domain.md §2.1, XXE).
pub const MAX_XML_BYTES: usize = 64 * 1024;

/// The media type of v2 bodies: requests, notifies and the notify ack.
pub const XML_CONTENT_TYPE: &str = "text/xml";

/// `spbill_create_ip` of every order (a required field): [`PrepayRequest`] carries no client
/// address, so a fixed one is sent. Whether WeChat's risk control looks at it for JSAPI orders is
/// unverified; pass the payer's IP through `PrepayRequest` if it turns out to.
pub const SPBILL_CREATE_IP: &str = "127.0.0.1";

/// `body` of an order is at most 128 bytes (domain.md §2.1 unifiedorder).
const MAX_BODY_BYTES: usize = 128;

/// `product_id` of a NATIVE order is at most 32 bytes (unifiedorder).
const MAX_PRODUCT_ID_BYTES: usize = 32;

/// `time_end` and `time_expire`: `yyyyMMddHHmmss`, Beijing time.
const COMPACT_TIME: &str = "%Y%m%d%H%M%S";

/// `success_time` of a refund notify: `yyyy-MM-dd HH:mm:ss`, Beijing time.
const DASHED_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// A v2 message: field name → value, ordered by name (the order signing takes them in).
pub type Fields = BTreeMap<String, String>;

/// [`Fields`] from `(name, value)` pairs.
pub fn fields_of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Fields {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

// ---- signing (domain.md §2.1 sign algorithm) ----------------------------------------------------

/// What v2 signs: every field with a non-empty value except `sign`, sorted by name (ASCII,
/// case-sensitive), as `k=v` joined by `&` (raw UTF-8, no URL encoding), then `&key=API_KEY`.
pub fn string_to_sign(fields: &Fields, api_key: &str) -> String {
    let mut message = String::new();
    for (name, value) in fields
        .iter()
        .filter(|(name, value)| !value.is_empty() && *name != "sign")
    {
        message.push_str(name);
        message.push('=');
        message.push_str(value);
        message.push('&');
    }
    message.push_str("key=");
    message.push_str(api_key);
    message
}

/// The `sign` of `fields`: uppercase hex of MD5([`string_to_sign`]), or of HMAC-SHA256 keyed with
/// the API key over the same string.
pub fn sign(fields: &Fields, api_key: &str, sign_type: SignType) -> String {
    let message = string_to_sign(fields, api_key);
    match sign_type {
        SignType::Md5 => hex::encode_upper(Md5::digest(message.as_bytes())),
        SignType::HmacSha256 => {
            crate::providers::hmac_sha256_hex(api_key.as_bytes(), message.as_bytes())
                .to_ascii_uppercase()
        }
    }
}

/// Whether `fields` carry in `sign` the signature of their other fields (compared in constant
/// time; the hex may be either case).
pub fn verify_sign(fields: &Fields, api_key: &str, sign_type: SignType) -> bool {
    let Some(given) = fields.get("sign") else {
        return false;
    };
    let expected = sign(fields, api_key, sign_type);
    let given = given.to_ascii_uppercase();
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), given.as_bytes()).is_ok()
}

// ---- XML -------------------------------------------------------------------------------------

/// `fields` as WeChat Pay writes them: `<xml><k><![CDATA[v]]></k>…</xml>`, in name order (a
/// `]]>` inside a value is split over two CDATA sections).
pub fn to_xml(fields: &Fields) -> String {
    write_xml("xml", fields)
}

fn write_xml(root: &str, fields: &Fields) -> String {
    let mut events = vec![Event::Start(BytesStart::new(root))];
    for (name, value) in fields {
        events.push(Event::Start(BytesStart::new(name.as_str())));
        events.extend(BytesCData::escaped(value).map(Event::CData));
        events.push(Event::End(BytesEnd::new(name.as_str())));
    }
    events.push(Event::End(BytesEnd::new(root)));
    let mut writer = quick_xml::Writer::new(Vec::new());
    for event in events {
        // Writing into memory cannot fail.
        let _ = writer.write_event(event);
    }
    String::from_utf8_lossy(&writer.into_inner()).into_owned()
}

/// Read a flat XML document — one root (`<xml>`, or `<root>` inside `req_info`) holding one
/// level of fields, each text and/or CDATA — into its fields, values exactly as written.
/// Refuses, saying why: a body over [`MAX_XML_BYTES`], a `<!DOCTYPE` or `<!ENTITY` (XXE), a
/// body that is not UTF-8, nested elements, a repeated field, text outside the fields, an
/// entity other than XML's five, and anything malformed.
pub fn read_xml(body: &[u8]) -> Result<Fields, String> {
    if body.len() > MAX_XML_BYTES {
        return Err(format!("XML body over {MAX_XML_BYTES} bytes"));
    }
    let text = std::str::from_utf8(body).map_err(|_| "XML body is not UTF-8".to_string())?;
    let upper = text.to_ascii_uppercase();
    if upper.contains("<!DOCTYPE") || upper.contains("<!ENTITY") {
        return Err("XML with a DOCTYPE or ENTITY declaration is refused".into());
    }
    let mut reader = quick_xml::Reader::from_str(text);
    let mut fields = Fields::new();
    // Where the reader stands: before the root, inside it, inside one of its fields, after it.
    let mut depth = 0;
    let mut root_done = false;
    let mut field: Option<(String, String)> = None;
    let name_of =
        |start: &BytesStart<'_>| String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let insert = |fields: &mut Fields, name: String, value: String| match fields.entry(name) {
        std::collections::btree_map::Entry::Vacant(entry) => {
            entry.insert(value);
            Ok(())
        }
        std::collections::btree_map::Entry::Occupied(entry) => {
            Err(format!("field {} appears twice", entry.key()))
        }
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        match (event, depth) {
            (Event::Eof, _) => break,
            (Event::Decl(_) | Event::Comment(_), _) => {}
            (Event::DocType(_), _) => return Err("XML with a DOCTYPE is refused".into()),
            (Event::Start(_), 0) if !root_done => depth = 1,
            (Event::Start(start), 1) => {
                field = Some((name_of(&start), String::new()));
                depth = 2;
            }
            (Event::Empty(start), 1) => insert(&mut fields, name_of(&start), String::new())?,
            (Event::End(_), 2) => {
                let (name, value) = field.take().unwrap_or_default();
                insert(&mut fields, name, value)?;
                depth = 1;
            }
            (Event::End(_), 1) => {
                depth = 0;
                root_done = true;
            }
            (Event::Text(text), _) => {
                let text = text
                    .decode()
                    .map_err(|e| format!("malformed XML text: {e}"))?;
                match field.as_mut() {
                    Some((_, value)) => value.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err("text outside the fields".into()),
                }
            }
            (Event::CData(data), 2) => {
                let data = data.decode().map_err(|e| format!("malformed CDATA: {e}"))?;
                if let Some((_, value)) = field.as_mut() {
                    value.push_str(&data);
                }
            }
            (Event::GeneralRef(reference), 2) => {
                let name = reference
                    .decode()
                    .map_err(|e| format!("malformed reference: {e}"))?;
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?
                        .to_string(),
                };
                if let Some((_, value)) = field.as_mut() {
                    value.push_str(&resolved);
                }
            }
            (event, _) => return Err(format!("not a flat XML document (at {event:?})")),
        }
    }
    if !root_done {
        return Err("no complete XML document".into());
    }
    Ok(fields)
}

/// The answer to a v2 notify (domain.md §2.1): `ok` acknowledges (WeChat stops retrying),
/// otherwise FAIL with `message` (WeChat retries). On one line:
///
/// ```text
/// <xml><return_code><![CDATA[SUCCESS]]></return_code>
/// <return_msg><![CDATA[OK]]></return_msg></xml>
/// ```
///
/// Send it with Content-Type [`XML_CONTENT_TYPE`].
pub fn notify_ack(ok: bool, message: &str) -> String {
    let (code, message) = if ok {
        ("SUCCESS", "OK")
    } else {
        ("FAIL", message)
    };
    to_xml(&fields_of([("return_code", code), ("return_msg", message)]))
}

/// Whether `body` is an acknowledging [`notify_ack`] (`return_code` SUCCESS).
pub(super) fn is_ack(body: &[u8]) -> bool {
    read_xml(body).is_ok_and(|ack| ack.get("return_code").is_some_and(|code| code == "SUCCESS"))
}

// ---- reading answers and notifies ---------------------------------------------------------------

/// The non-empty value of field `name`.
fn get<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

fn required<'a>(fields: &'a Fields, name: &str) -> Result<&'a str, String> {
    get(fields, name).ok_or_else(|| format!("no {name}"))
}

/// An amount in fen (`total_fee`, `refund_fee`, …): a whole number ≥ 0.
fn fen(fields: &Fields, name: &str) -> Result<i64, String> {
    let value = required(fields, name)?;
    value
        .parse::<i64>()
        .ok()
        .filter(|fen| *fen >= 0)
        .ok_or_else(|| format!("{name} {value:?} is not fen"))
}

/// A Beijing time written in `format`, as UTC.
fn beijing_time(value: &str, format: &str) -> Result<DateTime<Utc>, String> {
    NaiveDateTime::parse_from_str(value, format)
        .ok()
        .and_then(|time| time.and_local_timezone(BEIJING).single())
        .map(|time| time.with_timezone(&Utc))
        .ok_or_else(|| format!("time {value:?} is not {format} (Beijing)"))
}

/// `time_end`, when present, as UTC.
fn time_end(fields: &Fields) -> Result<Option<DateTime<Utc>>, String> {
    get(fields, "time_end")
        .map(|t| beijing_time(t, COMPACT_TIME))
        .transpose()
}

/// A v2 refund status: `SUCCESS`, `PROCESSING`, `REFUNDCLOSE` (closed), `CHANGE` (the payer's
/// account refused it: v3's `ABNORMAL`).
fn refund_status(value: &str) -> Option<RefundStatus> {
    match value {
        "SUCCESS" => Some(RefundStatus::Success),
        "PROCESSING" => Some(RefundStatus::Processing),
        "REFUNDCLOSE" => Some(RefundStatus::Closed),
        "CHANGE" => Some(RefundStatus::Abnormal),
        _ => None,
    }
}

/// Read a transaction in `state` (an order query's `trade_state`; a payment notify's
/// `result_code`) from an orderquery answer or a payment notify. Without `total_fee` only an
/// unpaid order reads (amount 0: nothing acts on it).
fn transaction_from_fields(
    fields: &Fields,
    trade_state: TradeState,
) -> Result<Transaction, String> {
    let amount_total_fen = match get(fields, "total_fee") {
        None if matches!(trade_state, TradeState::NotPay | TradeState::UserPaying) => 0,
        _ => fen(fields, "total_fee")?,
    };
    Ok(Transaction {
        appid: get(fields, "appid").unwrap_or_default().to_owned(),
        mchid: get(fields, "mch_id").unwrap_or_default().to_owned(),
        out_trade_no: required(fields, "out_trade_no")?.to_owned(),
        transaction_id: get(fields, "transaction_id").map(str::to_owned),
        success_time: time_end(fields)?,
        amount_total_fen,
        payer_openid: get(fields, "openid").map(str::to_owned),
        trade_state,
    })
}

/// Read the refund of a refund notify: `outer` names the merchant, `inner` is the decrypted
/// `req_info`.
fn refund_notice(outer: &Fields, inner: &Fields) -> Result<RefundNotice, String> {
    let status = required(inner, "refund_status")?;
    Ok(RefundNotice {
        mchid: required(outer, "mch_id")?.to_owned(),
        out_trade_no: required(inner, "out_trade_no")?.to_owned(),
        transaction_id: get(inner, "transaction_id").unwrap_or_default().to_owned(),
        out_refund_no: required(inner, "out_refund_no")?.to_owned(),
        refund_id: required(inner, "refund_id")?.to_owned(),
        status: refund_status(status).ok_or_else(|| format!("unknown refund_status {status}"))?,
        success_time: get(inner, "success_time")
            .map(|t| beijing_time(t, DASHED_TIME))
            .transpose()?,
        refund_fen: fen(inner, "refund_fee")?,
        total_fen: fen(inner, "total_fee")?,
    })
}

/// WeChat's v2 `err_code` under the v3 name the shared payments block acts on (`SYSTEMERROR` →
/// `SYSTEM_ERROR`, `ORDERNOTEXIST` → `ORDER_NOT_EXIST`, `REFUNDNOTEXIST` →
/// `RESOURCE_NOT_EXISTS`, `NOTENOUGH` → `NOT_ENOUGH`, `INVALID_REQ_TOO_MUCH` →
/// `FREQUENCY_LIMITED`, …); codes spelt alike in both (`ORDERPAID`, `FREQUENCY_LIMITED`,
/// `BIZERR_NEED_RETRY`, `PARAM_ERROR`, `INVALID_REQUEST`, …) and unknown ones stay as they are.
pub fn v3_code(err_code: &str) -> &str {
    match err_code {
        "ORDERNOTEXIST" => "ORDER_NOT_EXIST",
        "REFUNDNOTEXIST" => "RESOURCE_NOT_EXISTS",
        "SYSTEMERROR" => "SYSTEM_ERROR",
        "NOTENOUGH" => "NOT_ENOUGH",
        "ORDERCLOSED" => "ORDER_CLOSED",
        "SIGNERROR" => "SIGN_ERROR",
        "LACK_PARAMS" => "PARAM_ERROR",
        "NOAUTH" => "NO_AUTH",
        "INVALID_REQ_TOO_MUCH" => "FREQUENCY_LIMITED",
        other => other,
    }
}

// ---- the merchant's key ------------------------------------------------------------------------

/// A merchant's API v2 key and sign type: signs requests and `paySign`, verifies answers and
/// notifies, opens (and, for the sandbox, seals) refund notifies' `req_info`. Shared by
/// [`WechatPayV2`] and the sandbox's v2 mode.
#[derive(Debug)]
pub struct V2Signer {
    /// Shown as `[REDACTED]` by `Debug`.
    api_key: SecretString,
    sign_type: SignType,
}

impl V2Signer {
    /// A signer with the API key `api_key` (32 characters for a real merchant) signing with
    /// `sign_type`.
    pub fn new(api_key: SecretString, sign_type: SignType) -> V2Signer {
        V2Signer { api_key, sign_type }
    }

    /// A signer with a random 32-character key of `[0-9A-Za-z]` signing with MD5 (the sandbox
    /// merchant).
    pub fn generate() -> V2Signer {
        V2Signer::new(crate::random::alphanumeric(32).into(), SignType::Md5)
    }

    /// How it signs.
    pub fn sign_type(&self) -> SignType {
        self.sign_type
    }

    /// The API key itself (the sandbox's, for tests that forge notifies).
    pub fn expose_api_key(&self) -> &str {
        self.api_key.expose_secret()
    }

    /// The `sign` of `fields` with this key and sign type.
    pub fn sign(&self, fields: &Fields) -> String {
        sign(fields, self.api_key.expose_secret(), self.sign_type)
    }

    /// `fields` with their `sign` added.
    pub fn signed(&self, mut fields: Fields) -> Fields {
        let sign = self.sign(&fields);
        fields.insert("sign".into(), sign);
        fields
    }

    /// Check the `sign` of `fields`: with the algorithm their `sign_type` names, else this
    /// signer's (a notify may leave `sign_type` out, domain.md §2.1). Errors say why.
    pub fn check(&self, fields: &Fields) -> Result<(), String> {
        let sign_type = match get(fields, "sign_type") {
            None => self.sign_type,
            Some(named) => {
                SignType::from_wire(named).ok_or_else(|| format!("unknown sign_type {named}"))?
            }
        };
        if !fields.contains_key("sign") {
            return Err("no sign".into());
        }
        if !verify_sign(fields, self.api_key.expose_secret(), sign_type) {
            return Err("sign does not verify".into());
        }
        Ok(())
    }

    /// `wx.requestPayment` parameters for `prepay_id` as of `timestamp` (seconds) with
    /// `nonce_str`: `paySign` signs exactly `appId`, `timeStamp`, `nonceStr`, `package`
    /// (`prepay_id=…`) and `signType` (`MD5` or `HMAC-SHA256`, as the order was placed).
    pub fn pay_params_at(
        &self,
        appid: &str,
        prepay_id: &str,
        timestamp: i64,
        nonce_str: &str,
    ) -> PayParams {
        let time_stamp = timestamp.to_string();
        let package = format!("prepay_id={prepay_id}");
        let sign_type = self.sign_type.as_str();
        let signed = fields_of([
            ("appId", appid),
            ("timeStamp", &time_stamp),
            ("nonceStr", nonce_str),
            ("package", &package),
            ("signType", sign_type),
        ]);
        PayParams {
            app_id: appid.to_owned(),
            time_stamp,
            nonce_str: nonce_str.to_owned(),
            package,
            sign_type: sign_type.to_owned(),
            pay_sign: self.sign(&signed),
        }
    }

    /// The `req_info` key: the lowercase hex MD5 of the API key, its 32 ASCII bytes.
    fn req_info_key(&self) -> Result<UnboundCipherKey, KeyError> {
        let key = hex::encode(Md5::digest(self.api_key.expose_secret().as_bytes()));
        UnboundCipherKey::new(&AES_256, key.as_bytes()).map_err(|_| KeyError("AES-256 key".into()))
    }

    /// Seal `fields` as WeChat seals a refund notify's `req_info`: `<root>` XML, AES-256-ECB
    /// with PKCS#7 padding under the [`V2Signer::decrypt_req_info`] key, base64.
    pub fn encrypt_req_info(&self, fields: &Fields) -> Result<String, KeyError> {
        let key = PaddedBlockEncryptingKey::ecb_pkcs7(self.req_info_key()?)
            .map_err(|_| KeyError("AES-256-ECB key".into()))?;
        let mut data = write_xml("root", fields).into_bytes();
        key.encrypt(&mut data)
            .map_err(|_| KeyError("AES-256-ECB encryption failed".into()))?;
        Ok(B64.encode(data))
    }

    /// Open a refund notify's `req_info` (domain.md §2.1): base64, then AES-256-ECB/PKCS#7 with
    /// the lowercase hex MD5 of the API key as the key, giving a flat `<root>` document. Not
    /// base64: [`NotifyError::Body`]; anything that does not open into such a document (another
    /// key, tampering) is [`NotifyError::Signature`] — the encryption is all that vouches for a
    /// refund notify.
    pub fn decrypt_req_info(&self, req_info: &str) -> Result<Fields, NotifyError> {
        let refuse = || NotifyError::Signature("req_info does not open with the API key".into());
        let mut data = B64
            .decode(req_info.trim())
            .map_err(|_| NotifyError::Body("req_info is not base64".into()))?;
        let key = self.req_info_key().and_then(|key| {
            PaddedBlockDecryptingKey::ecb_pkcs7(key).map_err(|_| KeyError("AES-256-ECB key".into()))
        });
        let key = key.map_err(|e| NotifyError::Body(e.0))?;
        let plain = key
            .decrypt(&mut data, DecryptionContext::None)
            .map_err(|_| refuse())?;
        read_xml(plain).map_err(|_| refuse())
    }

    /// Verify and read a v2 notify for `merchant` from its raw XML body (domain.md §2.1).
    ///
    /// - Payment notifies: `return_code` SUCCESS, `sign` verified ([`V2Signer::check`]), `appid`
    ///   and `mch_id` the merchant's; `result_code` SUCCESS is a [`TradeState::Success`]
    ///   transaction (`transaction_id`, `time_end` → `success_time`, `total_fee`, `openid`),
    ///   FAIL a [`TradeState::PayError`]. Id `v2:<transaction_id>` (a failure:
    ///   `v2:<out_trade_no>:FAIL`), event type `TRANSACTION.SUCCESS` / `TRANSACTION.PAYERROR`.
    /// - Refund notifies (with `req_info`, unsigned by WeChat; a `sign` present must verify):
    ///   the decrypted refund, `refund_status` SUCCESS / CHANGE / REFUNDCLOSE → `Success` /
    ///   `Abnormal` / `Closed`, `success_time` (Beijing) as UTC. Id
    ///   `v2:refund:<out_refund_no>:<status>`, event type `REFUND.<status>` (v3's names).
    ///
    /// The ids are stable, so redeliveries of one notify dedupe in `pay_notification`.
    /// Unreadable XML, a DOCTYPE, a body over [`MAX_XML_BYTES`], `return_code` FAIL, another
    /// merchant: [`NotifyError::Body`]; a sign or `req_info` that does not verify:
    /// [`NotifyError::Signature`].
    pub fn parse_notify(
        &self,
        merchant: &Merchant,
        body: &[u8],
    ) -> Result<Notification, NotifyError> {
        let fields = read_xml(body).map_err(NotifyError::Body)?;
        let field = |name: &str| get(&fields, name).unwrap_or_default();
        if field("return_code") != "SUCCESS" {
            let why = format!(
                "return_code {:?}: {}",
                field("return_code"),
                field("return_msg")
            );
            return Err(NotifyError::Body(why));
        }
        let req_info = get(&fields, "req_info");
        if req_info.is_none() || fields.contains_key("sign") {
            self.check(&fields).map_err(NotifyError::Signature)?;
        }
        if field("appid") != merchant.appid || field("mch_id") != merchant.mchid {
            let why = format!(
                "notify for another merchant (appid {}, mch_id {})",
                field("appid"),
                field("mch_id")
            );
            return Err(NotifyError::Body(why));
        }
        if let Some(req_info) = req_info {
            let inner = self.decrypt_req_info(req_info)?;
            let notice = refund_notice(&fields, &inner)
                .map_err(|e| NotifyError::Body(format!("req_info: {e}")))?;
            return Ok(Notification {
                id: format!(
                    "v2:refund:{}:{}",
                    notice.out_refund_no,
                    notice.status.as_str()
                ),
                event_type: format!("REFUND.{}", notice.status.as_str()),
                event: NotifyEvent::Refund(notice),
            });
        }
        let paid = field("result_code") == "SUCCESS";
        let state = if paid {
            TradeState::Success
        } else {
            TradeState::PayError
        };
        let transaction = transaction_from_fields(&fields, state).map_err(NotifyError::Body)?;
        let id = match (&transaction.transaction_id, paid) {
            (Some(transaction_id), true) => format!("v2:{transaction_id}"),
            _ => format!("v2:{}:FAIL", transaction.out_trade_no),
        };
        Ok(Notification {
            id,
            event_type: (if paid {
                "TRANSACTION.SUCCESS"
            } else {
                "TRANSACTION.PAYERROR"
            })
            .into(),
            event: NotifyEvent::Transaction(transaction),
        })
    }
}

// ---- the real provider ------------------------------------------------------------------------

fn config_error(detail: impl Into<String>) -> ProviderError {
    ProviderError::Config {
        provider: REAL,
        detail: detail.into(),
    }
}

fn transport(detail: impl Into<String>) -> ProviderError {
    ProviderError::Transport {
        provider: REAL,
        detail: detail.into(),
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn truncate_bytes(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The real WeChat Pay v2 provider (JSAPI and NATIVE, domain.md §2.1): XML requests signed with the API key
/// to `{base_url}/pay/…`, refunds to `/secapi/pay/refund` over mutual TLS with the merchant API
/// certificate; every answer's `sign` is verified before it is used. Vendor errors carry the v3
/// name of WeChat's `err_code` ([`v3_code`]); `return_code` FAIL is `Vendor{code: "FAIL"}` with
/// `return_msg`.
pub struct WechatPayV2 {
    base_url: String,
    merchant: Merchant,
    signer: V2Signer,
    http: reqwest::Client,
    /// The client presenting the merchant certificate, when configured (refunds need it).
    secapi: Option<reqwest::Client>,
}

impl fmt::Debug for WechatPayV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPayV2")
            .field("base_url", &self.base_url)
            .field("merchant", &self.merchant)
            .field("signer", &self.signer)
            .field("secapi", &self.secapi.is_some())
            .finish_non_exhaustive()
    }
}

impl WechatPayV2 {
    /// The v2 merchant of `config` taking payments for mini-program `appid`: `mchid`,
    /// `base_url`, the 32-character `api_key` and `sign_type`, and — for refunds — the merchant
    /// API certificate and its key (`client_cert_file`, `client_key_file`, PEM; both or
    /// neither). Anything missing or unreadable is [`ProviderError::Config`].
    pub fn new(appid: &str, config: &WechatPayConfig) -> Result<WechatPayV2, ProviderError> {
        for (name, value) in [
            ("appid", appid),
            ("mchid", &config.mchid),
            ("base_url", &config.base_url),
        ] {
            if value.trim().is_empty() {
                return Err(config_error(format!("wechat_pay.{name} is not set")));
            }
        }
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        if reqwest::Url::parse(&base_url).is_err() {
            return Err(config_error(format!(
                "wechat_pay.base_url is not a URL: {}",
                config.base_url
            )));
        }
        let api_key = config
            .api_key
            .clone()
            .filter(|key| key.expose_secret().chars().count() == 32)
            .ok_or_else(|| {
                config_error("wechat_pay.api_key must be the 32-character API v2 key")
            })?;
        let identity = match (&config.client_cert_file, &config.client_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let read = |path: &std::path::PathBuf| {
                    std::fs::read(path)
                        .map_err(|e| config_error(format!("reading {}: {e}", path.display())))
                };
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| config_error(format!("merchant API certificate / key: {e}")))?;
                Some(identity)
            }
            _ => {
                return Err(config_error(
                    "wechat_pay.client_cert_file and client_key_file go together",
                ));
            }
        };
        let client = |identity: Option<reqwest::Identity>| {
            let builder = reqwest::Client::builder()
                .timeout(super::v3::WechatPayV3::TIMEOUT)
                .user_agent(concat!("mpapi/", env!("CARGO_PKG_VERSION")));
            let builder = match identity {
                Some(identity) => builder.identity(identity),
                None => builder,
            };
            builder
                .build()
                .map_err(|e| config_error(format!("HTTP client: {e}")))
        };
        Ok(WechatPayV2 {
            base_url,
            merchant: Merchant {
                appid: appid.to_owned(),
                mchid: config.mchid.clone(),
            },
            signer: V2Signer::new(api_key, config.sign_type),
            http: client(None)?,
            secapi: identity
                .map(|identity| client(Some(identity)))
                .transpose()?,
        })
    }

    /// POST `params` (empty ones left out) with `appid`, `mch_id`, `nonce_str`, `sign_type` and
    /// `sign` to `path`, through the certificate-presenting client for `secapi` paths, and answer
    /// the fields of a verified, successful answer (see [`WechatPayV2::read_answer`]).
    async fn call(
        &self,
        path: &str,
        params: &[(&str, &str)],
        secapi: bool,
    ) -> Result<Fields, ProviderError> {
        let http = match (secapi, &self.secapi) {
            (false, _) => &self.http,
            (true, Some(http)) => http,
            (true, None) => {
                let why =
                    "refunds need wechat_pay.client_cert_file and client_key_file (mutual TLS)";
                return Err(config_error(why));
            }
        };
        let nonce = crate::random::nonce_str();
        let mut fields = fields_of([
            ("appid", self.merchant.appid.as_str()),
            ("mch_id", &self.merchant.mchid),
            ("nonce_str", &nonce),
            ("sign_type", self.signer.sign_type().as_str()),
        ]);
        fields.extend(
            params
                .iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let body = to_xml(&self.signer.signed(fields));
        let request = http
            .post(format!("{}{path}", self.base_url))
            .header(reqwest::header::CONTENT_TYPE, XML_CONTENT_TYPE)
            .body(body);
        let response = crate::providers::send(REAL, request)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport(e.to_string()))?;
        if !status.is_success() {
            return Err(transport(format!("HTTP {status}")));
        }
        self.read_answer(&bytes)
    }

    /// An answer's fields: `return_code` FAIL is `Vendor{code: "FAIL", message: return_msg}`;
    /// then the `sign` must verify and `appid` / `mch_id`, when present, be ours (otherwise it
    /// might not come from WeChat Pay: [`ProviderError::Transport`], never used); `result_code`
    /// FAIL is `Vendor{code: v3_code(err_code), message: err_code_des}`.
    fn read_answer(&self, body: &[u8]) -> Result<Fields, ProviderError> {
        let answer = read_xml(body).map_err(|e| transport(format!("answer: {e}")))?;
        let field = |name: &str| get(&answer, name).unwrap_or_default();
        if field("return_code") != "SUCCESS" {
            let message = field("return_msg").to_owned();
            return Err(ProviderError::Vendor {
                provider: REAL,
                code: "FAIL".into(),
                message,
            });
        }
        self.signer
            .check(&answer)
            .map_err(|e| transport(format!("answer {e}")))?;
        for (name, ours) in [
            ("appid", &self.merchant.appid),
            ("mch_id", &self.merchant.mchid),
        ] {
            if get(&answer, name).is_some_and(|theirs| theirs != ours) {
                return Err(transport(format!("answer for another {name}")));
            }
        }
        if field("result_code") != "SUCCESS" {
            let code = v3_code(field("err_code")).to_owned();
            let message = field("err_code_des").to_owned();
            return Err(ProviderError::Vendor {
                provider: REAL,
                code,
                message,
            });
        }
        Ok(answer)
    }

    /// `POST /pay/unifiedorder` of `order` as `trade_type`, with `extra` (JSAPI: `openid`;
    /// NATIVE: `product_id`): `body` the description cut to 128 bytes, `total_fee` in fen,
    /// `time_expire` `yyyyMMddHHmmss` Beijing; answers the verified answer's fields.
    async fn unifiedorder(
        &self,
        order: &PrepayRequest,
        trade_type: &str,
        extra: (&str, &str),
    ) -> Result<Fields, ProviderError> {
        let total_fee = order.amount_fen.to_string();
        let time_expire = order
            .time_expire
            .with_timezone(&BEIJING)
            .format(COMPACT_TIME)
            .to_string();
        let params = [
            ("body", truncate_bytes(&order.description, MAX_BODY_BYTES)),
            ("out_trade_no", &order.out_trade_no),
            ("total_fee", &total_fee),
            ("spbill_create_ip", SPBILL_CREATE_IP),
            ("notify_url", &order.notify_url),
            ("trade_type", trade_type),
            extra,
            ("time_expire", &time_expire),
        ];
        self.call("/pay/unifiedorder", &params, false).await
    }
}

#[async_trait]
impl WechatPay for WechatPayV2 {
    fn merchant(&self) -> &Merchant {
        &self.merchant
    }

    fn needs_payer(&self) -> bool {
        true
    }

    /// `POST /pay/unifiedorder` (trade_type JSAPI): `body` the description cut to 128 bytes,
    /// `total_fee` in fen, `time_expire` `yyyyMMddHHmmss` Beijing, `openid` the payer; answers
    /// the `prepay_id`.
    async fn jsapi_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        let openid = order
            .payer_openid
            .as_deref()
            .ok_or_else(|| config_error("JSAPI needs a payer openid"))?;
        let answer = self
            .unifiedorder(order, "JSAPI", ("openid", openid))
            .await?;
        get(&answer, "prepay_id")
            .map(str::to_owned)
            .ok_or_else(|| transport("answer without prepay_id"))
    }

    /// `POST /pay/unifiedorder` (trade_type NATIVE), as for JSAPI but with no `openid` and
    /// `product_id` the out_trade_no (cut to 32 bytes); answers the `code_url`.
    async fn native_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        let product_id = truncate_bytes(&order.out_trade_no, MAX_PRODUCT_ID_BYTES);
        let answer = self
            .unifiedorder(order, "NATIVE", ("product_id", product_id))
            .await?;
        get(&answer, "code_url")
            .map(str::to_owned)
            .ok_or_else(|| transport("answer without code_url"))
    }

    async fn pay_params(&self, prepay_id: &str) -> Result<PayParams, ProviderError> {
        let now = Utc::now().timestamp();
        Ok(self.signer.pay_params_at(
            &self.merchant.appid,
            prepay_id,
            now,
            &crate::random::nonce_str(),
        ))
    }

    /// `POST /pay/orderquery`; `ORDERNOTEXIST` is `Vendor{code: "ORDER_NOT_EXIST"}`.
    async fn query(&self, out_trade_no: &str) -> Result<Transaction, ProviderError> {
        let answer = self
            .call("/pay/orderquery", &[("out_trade_no", out_trade_no)], false)
            .await?;
        let state = required(&answer, "trade_state").map(TradeState::from_wire);
        state
            .and_then(|state| transaction_from_fields(&answer, state))
            .map_err(|e| transport(format!("query answer: {e}")))
    }

    /// `POST /pay/closeorder`; an order already closed closes again fine, a paid one is
    /// `Vendor{code: "ORDERPAID"}`.
    async fn close(&self, out_trade_no: &str) -> Result<(), ProviderError> {
        match self
            .call("/pay/closeorder", &[("out_trade_no", out_trade_no)], false)
            .await
        {
            Ok(_) => Ok(()),
            Err(ProviderError::Vendor { code, .. }) if code == "ORDER_CLOSED" => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `POST /secapi/pay/refund` over mutual TLS (without the certificate:
    /// [`ProviderError::Config`]); an accepted refund is `Processing`.
    async fn refund(&self, request: &RefundRequest) -> Result<Refund, ProviderError> {
        let total_fee = request.total_fen.to_string();
        let refund_fee = request.refund_fen.to_string();
        let params = [
            ("out_trade_no", request.out_trade_no.as_str()),
            ("out_refund_no", &request.out_refund_no),
            ("total_fee", &total_fee),
            ("refund_fee", &refund_fee),
            ("refund_desc", request.reason.as_deref().unwrap_or_default()),
            ("notify_url", &request.notify_url),
        ];
        let answer = self.call("/secapi/pay/refund", &params, true).await?;
        let refund_id =
            required(&answer, "refund_id").map_err(|e| transport(format!("refund answer: {e}")))?;
        Ok(Refund {
            out_refund_no: request.out_refund_no.clone(),
            refund_id: refund_id.to_owned(),
            status: RefundStatus::Processing,
            success_time: None,
            refund_fen: fen(&answer, "refund_fee").unwrap_or(request.refund_fen),
        })
    }

    /// `POST /pay/refundquery` by out_refund_no; `REFUNDNOTEXIST` is
    /// `Vendor{code: "RESOURCE_NOT_EXISTS"}`.
    async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, ProviderError> {
        let answer = self
            .call(
                "/pay/refundquery",
                &[("out_refund_no", out_refund_no)],
                false,
            )
            .await?;
        refund_from_query(&answer, out_refund_no)
            .map_err(|e| transport(format!("refund query answer: {e}")))
    }

    /// [`V2Signer::parse_notify`] for this merchant; v2 notifies carry no headers or time to
    /// check.
    async fn verify_notify(
        &self,
        _headers: &HeaderMap,
        body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Notification, NotifyError> {
        self.signer.parse_notify(&self.merchant, body)
    }
}

/// The refund `out_refund_no` of a refundquery answer, which lists refunds as `…_$n`
/// (`out_refund_no_0`, `refund_status_0`, `refund_success_time_0`, …).
fn refund_from_query(answer: &Fields, out_refund_no: &str) -> Result<Refund, String> {
    let count: usize = required(answer, "refund_count")?
        .parse()
        .map_err(|_| "refund_count is no number")?;
    let n = (0..count)
        .find(|n| get(answer, &format!("out_refund_no_{n}")) == Some(out_refund_no))
        .ok_or_else(|| format!("no refund {out_refund_no}"))?;
    let status = required(answer, &format!("refund_status_{n}"))?;
    let success_time = get(answer, &format!("refund_success_time_{n}"));
    Ok(Refund {
        out_refund_no: out_refund_no.to_owned(),
        refund_id: required(answer, &format!("refund_id_{n}"))?.to_owned(),
        status: refund_status(status).ok_or_else(|| format!("unknown refund_status {status}"))?,
        success_time: success_time
            .map(|t| beijing_time(t, DASHED_TIME))
            .transpose()?,
        refund_fen: fen(answer, &format!("refund_fee_{n}"))?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::config::ProviderKind;

    /// The example of WeChat's v2 signing guide (domain.md §2.1, "Test vectors [verified]").
    fn documented_fields() -> Fields {
        fields_of([
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ])
    }

    const DOC_KEY: &str = "192006250b4c09247ec02edce69f6a2d";

    fn merchant() -> Merchant {
        Merchant {
            appid: "wxd930ea5d5a258f4f".into(),
            mchid: "10000100".into(),
        }
    }

    fn signer(sign_type: SignType) -> V2Signer {
        V2Signer::new(DOC_KEY.into(), sign_type)
    }

    /// A payment notify as WeChat sends it (domain.md §2.1 payment notify fields), signed by
    /// `signer` (with its `sign_type` named unless `name_type` is false).
    fn payment_notify(signer: &V2Signer, result_code: &str, name_type: bool) -> Fields {
        let mut fields = fields_of([
            ("return_code", "SUCCESS"),
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("nonce_str", "5d2b6c2a8db53831f7eda20af46e531c"),
            ("result_code", result_code),
            ("openid", "oUpF8uMEb4qRXf22hE3X68TekukE"),
            ("is_subscribe", "N"),
            ("trade_type", "JSAPI"),
            ("bank_type", "CMC"),
            ("total_fee", "1860"),
            ("fee_type", "CNY"),
            ("cash_fee", "1860"),
            ("coupon_fee_0", "0"),
            ("transaction_id", "4200002468202412181357913579"),
            ("out_trade_no", "CM202412180001"),
            ("attach", ""),
            ("time_end", "20241218155528"),
        ]);
        if name_type {
            fields.insert("sign_type".into(), signer.sign_type().as_str().into());
        }
        signer.signed(fields)
    }

    fn parse(signer: &V2Signer, fields: &Fields) -> Result<Notification, NotifyError> {
        signer.parse_notify(&merchant(), to_xml(fields).as_bytes())
    }

    #[test]
    fn signs_reproduce_wechats_documented_example() {
        let fields = documented_fields();
        assert_eq!(
            string_to_sign(&fields, DOC_KEY),
            "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100\
             &nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d"
        );
        assert_eq!(
            sign(&fields, DOC_KEY, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
        // Checked independently: python3 hmac.new(key, stringSignTemp, hashlib.sha256), upper.
        assert_eq!(
            sign(&fields, DOC_KEY, SignType::HmacSha256),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
        // Empty values and `sign` itself are not signed.
        let mut more = fields.clone();
        more.insert("attach".into(), String::new());
        more.insert("sign".into(), "ANYTHING".into());
        assert_eq!(
            sign(&more, DOC_KEY, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
    }

    #[test]
    fn signs_verify_in_either_case_and_only_over_the_same_fields() {
        let signed = signer(SignType::Md5).signed(documented_fields());
        assert!(verify_sign(&signed, DOC_KEY, SignType::Md5));
        let mut lower = signed.clone();
        lower.insert("sign".into(), "9a0a8659f005d6984697e2ca0a9cf3b7".into());
        assert!(verify_sign(&lower, DOC_KEY, SignType::Md5));
        assert!(!verify_sign(&signed, DOC_KEY, SignType::HmacSha256));
        assert!(!verify_sign(
            &signed,
            "0".repeat(32).as_str(),
            SignType::Md5
        ));
        let mut altered = signed.clone();
        altered.insert("body".into(), "test2".into());
        assert!(!verify_sign(&altered, DOC_KEY, SignType::Md5));
        let mut extended = signed;
        extended.insert("coupon_id_0".into(), "10001".into());
        assert!(
            !verify_sign(&extended, DOC_KEY, SignType::Md5),
            "extension fields are signed too"
        );
        assert!(
            !verify_sign(&documented_fields(), DOC_KEY, SignType::Md5),
            "no sign"
        );
    }

    #[test]
    fn pay_sign_reproduces_the_documented_mini_program_example() {
        // domain.md §2.1 "Mini-program paySign (v2)", verified.
        let signer = V2Signer::new("qazwsxedcrfvtgbyhnujmikolp111111".into(), SignType::Md5);
        let params = signer.pay_params_at(
            "wxd678efh567hg6787",
            "wx2017033010242291fcfe0db70013231072",
            1490840662,
            "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        );
        assert_eq!(
            params,
            PayParams {
                app_id: "wxd678efh567hg6787".into(),
                time_stamp: "1490840662".into(),
                nonce_str: "5K8264ILTKCH16CQ2502SI8ZNMTM67VS".into(),
                package: "prepay_id=wx2017033010242291fcfe0db70013231072".into(),
                sign_type: "MD5".into(),
                pay_sign: "22D9B4E54AB1950F51E0649E8810ACD6".into(),
            }
        );
        let hmac = V2Signer::new(
            "qazwsxedcrfvtgbyhnujmikolp111111".into(),
            SignType::HmacSha256,
        )
        .pay_params_at("wxd678efh567hg6787", "wx1", 1490840662, "n");
        assert_eq!(
            (hmac.sign_type.as_str(), hmac.pay_sign.len()),
            ("HMAC-SHA256", 64)
        );
    }

    #[test]
    fn xml_is_written_as_wechat_writes_it_and_reads_back() {
        let fields = fields_of([("return_code", "SUCCESS"), ("body", "供暖费 <1> & ]]> 2")]);
        let xml = to_xml(&fields);
        assert_eq!(
            xml,
            "<xml><body><![CDATA[供暖费 <1> & ]]]]><![CDATA[> 2]]></body>\
             <return_code><![CDATA[SUCCESS]]></return_code></xml>"
        );
        assert_eq!(read_xml(xml.as_bytes()).expect("reads"), fields);
        // WeChat's answers mix CDATA and plain text, with a declaration, line breaks and
        // escaped characters.
        let answer = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n  \
                      <return_code><![CDATA[SUCCESS]]></return_code>\n  \
                      <total_fee>1860</total_fee>\n  \
                      <attach></attach><device_info/><!-- note -->\n  \
                      <body>a &amp; b &#x4E2D;</body>\n</xml>\n";
        let read = read_xml(answer.as_bytes()).expect("reads");
        assert_eq!(
            read,
            fields_of([
                ("attach", ""),
                ("body", "a & b 中"),
                ("device_info", ""),
                ("return_code", "SUCCESS"),
                ("total_fee", "1860"),
            ])
        );
        let req_info = fields_of([("out_refund_no", "R1")]);
        assert_eq!(
            read_xml(write_xml("root", &req_info).as_bytes()).expect("reads"),
            req_info
        );
    }

    #[test]
    fn xml_refuses_doctype_entities_and_anything_not_flat() {
        let xxe = "<?xml version=\"1.0\"?>\
                   <!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
                   <xml><return_code>&xxe;</return_code></xml>";
        assert!(read_xml(xxe.as_bytes()).is_err_and(|e| e.contains("DOCTYPE")));
        assert!(
            read_xml(b"<!doctype xml><xml><a>1</a></xml>").is_err_and(|e| e.contains("DOCTYPE"))
        );
        assert!(read_xml(b"<xml><a><!ENTITY x \"y\"></a></xml>").is_err());
        let large = format!("<xml><a>{}</a></xml>", "x".repeat(MAX_XML_BYTES));
        assert!(read_xml(large.as_bytes()).is_err_and(|e| e.contains("bytes")));
        for (broken, why) in [
            ("<xml><a><b>1</b></a></xml>", "nested"),
            ("<xml><a>1</a><a>2</a></xml>", "repeated field"),
            ("<xml><a>&nbsp;</a></xml>", "unknown entity"),
            ("<xml>loose<a>1</a></xml>", "text outside fields"),
            ("<xml><a>1</a>", "unclosed"),
            ("<xml><a>1</b></xml>", "mismatched"),
            ("<xml><a>1</a></xml><xml/>", "two roots"),
            ("", "empty"),
            ("SUCCESS", "no XML"),
            ("{\"return_code\":\"SUCCESS\"}", "JSON"),
        ] {
            assert!(read_xml(broken.as_bytes()).is_err(), "{why}: {broken}");
        }
        assert!(read_xml(b"<xml><a>\xff</a></xml>").is_err_and(|e| e.contains("UTF-8")));
    }

    #[test]
    fn notify_acks_are_the_documented_xml() {
        assert_eq!(
            notify_ack(true, "ignored"),
            "<xml><return_code><![CDATA[SUCCESS]]></return_code>\
             <return_msg><![CDATA[OK]]></return_msg></xml>"
        );
        assert_eq!(
            notify_ack(false, "签名验证失败"),
            "<xml><return_code><![CDATA[FAIL]]></return_code>\
             <return_msg><![CDATA[签名验证失败]]></return_msg></xml>"
        );
        assert!(is_ack(notify_ack(true, "").as_bytes()));
        assert!(!is_ack(notify_ack(false, "no").as_bytes()));
        assert!(!is_ack(b"{\"code\":\"SUCCESS\"}"));
    }

    #[test]
    fn payment_notifies_verify_and_read() {
        let md5 = signer(SignType::Md5);
        let n = parse(&md5, &payment_notify(&md5, "SUCCESS", true)).expect("verifies");
        assert_eq!(
            (n.id.as_str(), n.event_type.as_str()),
            ("v2:4200002468202412181357913579", "TRANSACTION.SUCCESS")
        );
        let NotifyEvent::Transaction(t) = n.event else {
            panic!("a transaction: {:?}", n.event)
        };
        assert_eq!(
            t,
            Transaction {
                appid: "wxd930ea5d5a258f4f".into(),
                mchid: "10000100".into(),
                out_trade_no: "CM202412180001".into(),
                transaction_id: Some("4200002468202412181357913579".into()),
                trade_state: TradeState::Success,
                // 15:55:28 Beijing time is 07:55:28 UTC.
                success_time: Utc.with_ymd_and_hms(2024, 12, 18, 7, 55, 28).single(),
                amount_total_fen: 1860,
                payer_openid: Some("oUpF8uMEb4qRXf22hE3X68TekukE".into()),
            }
        );
        // The same notify delivered again has the same id (pay_notification dedupes it).
        assert_eq!(
            parse(&md5, &payment_notify(&md5, "SUCCESS", true))
                .expect("verifies")
                .id,
            n.id
        );

        // A failed payment.
        let n = parse(&md5, &payment_notify(&md5, "FAIL", true)).expect("verifies");
        assert_eq!(
            (n.id.as_str(), n.event_type.as_str()),
            ("v2:CM202412180001:FAIL", "TRANSACTION.PAYERROR")
        );
        assert!(
            matches!(n.event, NotifyEvent::Transaction(t) if t.trade_state == TradeState::PayError)
        );

        // HMAC-SHA256: named in the notify, or left out and taken from the configuration.
        let hmac = signer(SignType::HmacSha256);
        assert!(
            parse(&md5, &payment_notify(&hmac, "SUCCESS", true)).is_ok(),
            "sign_type names HMAC"
        );
        assert!(
            parse(&hmac, &payment_notify(&hmac, "SUCCESS", false)).is_ok(),
            "configured HMAC"
        );
        assert!(matches!(
            parse(&md5, &payment_notify(&hmac, "SUCCESS", false)),
            Err(NotifyError::Signature(_))
        ));
    }

    #[test]
    fn forged_and_foreign_notifies_are_refused() {
        let ours = signer(SignType::Md5);
        let forger = V2Signer::new("0123456789abcdef0123456789abcdef".into(), SignType::Md5);
        let forged = payment_notify(&forger, "SUCCESS", true);
        assert!(matches!(
            parse(&ours, &forged),
            Err(NotifyError::Signature(_))
        ));

        // Signed, then one value changed: the amount.
        let mut tampered = payment_notify(&ours, "SUCCESS", true);
        tampered.insert("total_fee".into(), "1".into());
        assert!(matches!(
            parse(&ours, &tampered),
            Err(NotifyError::Signature(_))
        ));
        let mut unsigned = payment_notify(&ours, "SUCCESS", true);
        unsigned.remove("sign");
        let result = parse(&ours, &unsigned);
        assert!(matches!(result, Err(NotifyError::Signature(m)) if m.contains("no sign")));
        let mut odd_type = payment_notify(&ours, "SUCCESS", true);
        odd_type.insert("sign_type".into(), "RSA".into());
        assert!(matches!(
            parse(&ours, &odd_type),
            Err(NotifyError::Signature(_))
        ));

        // Correctly signed, but for another merchant or appid.
        for (name, value) in [("mch_id", "10000101"), ("appid", "wx0000000000000000")] {
            let mut fields = payment_notify(&ours, "SUCCESS", true);
            fields.insert(name.into(), value.into());
            let foreign = ours.signed(fields);
            let result = parse(&ours, &foreign);
            assert!(
                matches!(&result, Err(NotifyError::Body(m)) if m.contains("another merchant")),
                "{name}: {result:?}"
            );
        }
        // Communication failures and unreadable bodies.
        let failed = ours.signed(fields_of([
            ("return_code", "FAIL"),
            ("return_msg", "签名失败"),
        ]));
        assert!(
            matches!(parse(&ours, &failed), Err(NotifyError::Body(m)) if m.contains("签名失败"))
        );
        let xxe =
            b"<!DOCTYPE xml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><xml><a>&x;</a></xml>";
        assert!(matches!(
            ours.parse_notify(&merchant(), xxe),
            Err(NotifyError::Body(_))
        ));
        let mut no_fee = payment_notify(&ours, "SUCCESS", true);
        no_fee.remove("total_fee");
        assert!(matches!(
            parse(&ours, &ours.signed(no_fee)),
            Err(NotifyError::Body(_))
        ));
    }

    /// A refund notify as WeChat sends it (unsigned), `inner` sealed in `req_info` by `signer`.
    fn refund_notify(signer: &V2Signer, inner: &Fields) -> Fields {
        fields_of([
            ("return_code", "SUCCESS"),
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("nonce_str", "0d4f14ee4f5d2b3bb2b5dbc3e4e6b3e4"),
            ("req_info", &signer.encrypt_req_info(inner).expect("seals")),
        ])
    }

    fn refund_inner(status: &str, success_time: &str) -> Fields {
        fields_of([
            ("out_refund_no", "R2024121800001"),
            ("out_trade_no", "CM202412180001"),
            ("refund_account", "REFUND_SOURCE_RECHARGE_FUNDS"),
            ("refund_fee", "600"),
            ("refund_id", "50000408942018111907145868882"),
            ("refund_recv_accout", "支付用户零钱"),
            ("refund_request_source", "API"),
            ("refund_status", status),
            ("settlement_refund_fee", "600"),
            ("settlement_total_fee", "1860"),
            ("success_time", success_time),
            ("total_fee", "1860"),
            ("transaction_id", "4200002468202412181357913579"),
        ])
    }

    #[test]
    fn req_info_opens_an_independently_sealed_vector() {
        // openssl enc -aes-256-ecb -K <hex of md5hex("192006250b4c…")> -nosalt -base64 -A over
        // `<root><out_refund_no><![CDATA[R2024121800001]]></out_refund_no>
        // <refund_status><![CDATA[SUCCESS]]></refund_status></root>` (one line).
        let sealed = "WBzGpzQuNpcFxIlFjUUD9BfnwwNUlVAs7bwvgHME4/QSNS16LsfA9GrEwmieD457sH8vY/H7\
                      M6XsY5trwzYXUqk536YX/dQ+yd2McPLw+jmEDhgGIKulWDAjHBZRUiATENQlDVl4YcM6G2ZaZT1fp\
                      ulBrlkMHiq14Dmt/DMtLqI=";
        let opened = signer(SignType::Md5)
            .decrypt_req_info(sealed)
            .expect("opens");
        assert_eq!(
            opened,
            fields_of([
                ("out_refund_no", "R2024121800001"),
                ("refund_status", "SUCCESS")
            ])
        );
        // The key is md5hex(API key): the same for either sign type.
        assert_eq!(
            signer(SignType::HmacSha256)
                .decrypt_req_info(sealed)
                .expect("opens"),
            opened
        );
        assert_eq!(
            hex::encode(Md5::digest(DOC_KEY.as_bytes())),
            "d96eb16afdd491fa1e705096edbc2205"
        );
    }

    #[test]
    fn refund_notifies_decrypt_and_read() {
        let ours = signer(SignType::Md5);
        let notify = refund_notify(&ours, &refund_inner("SUCCESS", "2024-12-18 16:24:13"));
        let n = parse(&ours, &notify).expect("opens");
        assert_eq!(
            (n.id.as_str(), n.event_type.as_str()),
            ("v2:refund:R2024121800001:SUCCESS", "REFUND.SUCCESS")
        );
        let NotifyEvent::Refund(r) = n.event else {
            panic!("a refund: {:?}", n.event)
        };
        assert_eq!(
            r,
            RefundNotice {
                mchid: "10000100".into(),
                out_trade_no: "CM202412180001".into(),
                transaction_id: "4200002468202412181357913579".into(),
                out_refund_no: "R2024121800001".into(),
                refund_id: "50000408942018111907145868882".into(),
                status: RefundStatus::Success,
                success_time: Utc.with_ymd_and_hms(2024, 12, 18, 8, 24, 13).single(),
                refund_fen: 600,
                total_fen: 1860,
            }
        );
        for (status, expected) in [
            ("CHANGE", RefundStatus::Abnormal),
            ("REFUNDCLOSE", RefundStatus::Closed),
        ] {
            let n = parse(&ours, &refund_notify(&ours, &refund_inner(status, ""))).expect("opens");
            assert_eq!(n.event_type, format!("REFUND.{}", expected.as_str()));
            let NotifyEvent::Refund(r) = n.event else {
                panic!("a refund: {:?}", n.event)
            };
            assert_eq!((r.status, r.success_time), (expected, None));
        }
        assert!(matches!(
            parse(&ours, &refund_notify(&ours, &refund_inner("LOST", ""))),
            Err(NotifyError::Body(m)) if m.contains("refund_status")
        ));

        // Sealed with another key, or tampered: it does not open.
        let forger = V2Signer::new("0123456789abcdef0123456789abcdef".into(), SignType::Md5);
        let forged = refund_notify(&forger, &refund_inner("SUCCESS", "2024-12-18 16:24:13"));
        assert!(matches!(
            parse(&ours, &forged),
            Err(NotifyError::Signature(_))
        ));
        let mut garbled = notify.clone();
        let mut sealed = B64.decode(&garbled["req_info"]).expect("base64");
        sealed[5] ^= 0x40;
        garbled.insert("req_info".into(), B64.encode(sealed));
        assert!(matches!(
            parse(&ours, &garbled),
            Err(NotifyError::Signature(_))
        ));
        let mut not_base64 = notify.clone();
        not_base64.insert("req_info".into(), "not base64!".into());
        assert!(matches!(
            parse(&ours, &not_base64),
            Err(NotifyError::Body(_))
        ));
        // A sign on a refund notify must verify; another merchant's refund is refused.
        let mut signed_wrong = notify.clone();
        signed_wrong.insert("sign".into(), "0".repeat(32));
        assert!(matches!(
            parse(&ours, &signed_wrong),
            Err(NotifyError::Signature(_))
        ));
        assert!(parse(&ours, &ours.signed(notify.clone())).is_ok());
        let mut foreign = notify;
        foreign.insert("mch_id".into(), "10000101".into());
        assert!(matches!(parse(&ours, &foreign), Err(NotifyError::Body(_))));
    }

    #[test]
    fn v2_error_codes_take_the_names_payments_acts_on() {
        for (v2, v3) in [
            ("ORDERNOTEXIST", "ORDER_NOT_EXIST"),
            ("REFUNDNOTEXIST", "RESOURCE_NOT_EXISTS"),
            ("SYSTEMERROR", "SYSTEM_ERROR"),
            ("NOTENOUGH", "NOT_ENOUGH"),
            ("INVALID_REQ_TOO_MUCH", "FREQUENCY_LIMITED"),
            ("ORDERCLOSED", "ORDER_CLOSED"),
            ("SIGNERROR", "SIGN_ERROR"),
            // Spelt alike in both versions.
            ("ORDERPAID", "ORDERPAID"),
            ("FREQUENCY_LIMITED", "FREQUENCY_LIMITED"),
            ("BIZERR_NEED_RETRY", "BIZERR_NEED_RETRY"),
            ("PARAM_ERROR", "PARAM_ERROR"),
            ("SOMETHING_NEW", "SOMETHING_NEW"),
        ] {
            assert_eq!(v3_code(v2), v3, "{v2}");
        }
    }

    #[test]
    fn refund_queries_read_the_refund_asked_for() {
        let answer = fields_of([
            ("refund_count", "2"),
            ("out_refund_no_0", "R_OTHER"),
            ("refund_id_0", "500000"),
            ("refund_fee_0", "100"),
            ("refund_status_0", "PROCESSING"),
            ("out_refund_no_1", "R2024121800001"),
            ("refund_id_1", "500001"),
            ("refund_fee_1", "600"),
            ("refund_status_1", "SUCCESS"),
            ("refund_success_time_1", "2024-12-18 16:24:13"),
        ]);
        let refund = refund_from_query(&answer, "R2024121800001").expect("reads");
        assert_eq!(
            refund,
            Refund {
                out_refund_no: "R2024121800001".into(),
                refund_id: "500001".into(),
                status: RefundStatus::Success,
                success_time: Utc.with_ymd_and_hms(2024, 12, 18, 8, 24, 13).single(),
                refund_fen: 600,
            }
        );
        assert_eq!(
            refund_from_query(&answer, "R_OTHER").map(|r| r.status),
            Ok(RefundStatus::Processing)
        );
        assert!(refund_from_query(&answer, "R_MISSING").is_err());
    }

    #[test]
    fn order_bodies_are_cut_to_128_bytes_on_a_character_boundary() {
        assert_eq!(truncate_bytes("供暖费", 128), "供暖费");
        let long = "供".repeat(50); // 150 bytes
        let cut = truncate_bytes(&long, MAX_BODY_BYTES);
        assert_eq!((cut.len(), cut.chars().count()), (126, 42));
        assert_eq!(truncate_bytes(&"a".repeat(200), MAX_BODY_BYTES).len(), 128);
    }

    #[test]
    fn real_provider_needs_its_configuration() {
        let good = WechatPayConfig {
            provider: ProviderKind::Real,
            version: crate::config::PayVersion::V2,
            api_key: Some(DOC_KEY.into()),
            ..WechatPayConfig::default()
        };
        let pay = WechatPayV2::new("wxd930ea5d5a258f4f", &good).expect("configured");
        let debug = format!("{pay:?}");
        assert!(
            debug.contains("1900000001") && !debug.contains(DOC_KEY),
            "{debug}"
        );
        assert!(pay.needs_payer());
        for broken in [
            WechatPayConfig {
                api_key: None,
                ..good.clone()
            },
            WechatPayConfig {
                api_key: Some("too-short".into()),
                ..good.clone()
            },
            WechatPayConfig {
                mchid: String::new(),
                ..good.clone()
            },
            WechatPayConfig {
                base_url: "api.mch.weixin.qq.com".into(),
                ..good.clone()
            },
            WechatPayConfig {
                client_cert_file: Some("apiclient_cert.pem".into()),
                ..good.clone()
            },
            WechatPayConfig {
                client_cert_file: Some("/nonexistent/apiclient_cert.pem".into()),
                client_key_file: Some("/nonexistent/apiclient_key.pem".into()),
                ..good.clone()
            },
        ] {
            assert!(
                matches!(
                    WechatPayV2::new("wx1", &broken),
                    Err(ProviderError::Config { .. })
                ),
                "{broken:?}"
            );
        }
        assert!(matches!(
            WechatPayV2::new(" ", &good),
            Err(ProviderError::Config { .. })
        ));
    }
}
