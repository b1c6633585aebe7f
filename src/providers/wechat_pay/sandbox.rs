//! The sandbox payment platform (domain.md §2.2): [`SandboxPay`] plays WeChat Pay for the
//! server — it holds orders in memory, and, through [`PlatformSigner`], signs and encrypts real
//! notifies with a platform key of its own — so a frontend walks every payment journey with no
//! merchant account, through the same verification code the real provider uses.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, Nonce};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretSlice};
use serde_json::{Value, json};

use super::keys::{self, KeyError};
use super::sign::{self, MerchantSigner, SIGNATURE_TYPE};
use super::verify::{self, EncryptedResource, NotifyEnvelope, NotifyVerifier, RESOURCE_ALGORITHM};
use super::{
    Notification, NotifyError, NotifyHeaders, PayParams, PrepayRequest, ProviderError, WechatPay, beijing_rfc3339,
    valid_out_trade_no,
};

const SANDBOX: &str = "sandbox-pay";

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
    /// AAD = `associated_data`, `original_type` = `associated_data`).
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

    /// Sign `body` (a notify or a response) now with a fresh nonce.
    pub fn sign_notify(&self, body: &[u8]) -> Result<NotifyHeaders, KeyError> {
        self.sign_notify_at(body, Utc::now().timestamp(), &crate::random::nonce_str())
    }

    /// Sign `body` as of `timestamp` (seconds) with `nonce`: base64(RSA-SHA256(
    /// `timestamp\nnonce\nbody\n`)).
    pub fn sign_notify_at(&self, body: &[u8], timestamp: i64, nonce: &str) -> Result<NotifyHeaders, KeyError> {
        let timestamp = timestamp.to_string();
        let signature = sign::rsa_sign(&self.key, &verify::signed_message(&timestamp, nonce, body))?;
        Ok(NotifyHeaders { timestamp, nonce: nonce.to_string(), signature, serial: self.serial.clone() })
    }
}

/// Where a sandbox order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxOrderState {
    /// Ordered, not (successfully) paid yet.
    NotPaid,
    /// A success notify is being delivered.
    Paying,
    /// Paid: the merchant acknowledged the success notify with 2xx.
    Paid,
}

/// An order the sandbox platform holds (what `jsapi_prepay` recorded).
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
    /// Paid or not.
    pub state: SandboxOrderState,
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

/// The sandbox payment platform. It plays WeChat Pay (a platform key pair `PUB_KEY_ID_SANDBOX…`
/// and a random APIv3 key) and holds the merchant's key, so the server runs the same
/// verification code path as with the real provider. Orders live in memory.
pub struct SandboxPay {
    appid: String,
    merchant: MerchantSigner,
    platform: PlatformSigner,
    verifier: NotifyVerifier,
    orders: Mutex<HashMap<String, SandboxOrder>>,
    http: reqwest::Client,
}

impl fmt::Debug for SandboxPay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxPay")
            .field("appid", &self.appid)
            .field("mchid", &self.merchant.mchid())
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

fn vendor(code: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Vendor { provider: SANDBOX, code: code.into(), message: message.into() }
}

/// Resets a `Paying` order to `NotPaid` unless the payment was committed, so a dropped or failed
/// delivery never leaves the order stuck.
struct PayingGuard<'a> {
    pay: &'a SandboxPay,
    out_trade_no: &'a str,
    committed: bool,
}

impl Drop for PayingGuard<'_> {
    fn drop(&mut self) {
        let mut orders = self.pay.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(order) = orders.get_mut(self.out_trade_no) {
            order.state = if self.committed { SandboxOrderState::Paid } else { SandboxOrderState::NotPaid };
        }
    }
}

impl SandboxPay {
    /// Timeout for delivering a notify.
    pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

    /// A sandbox platform for `appid`/`mchid` with freshly generated merchant and platform keys.
    pub fn new(appid: impl Into<String>, mchid: impl Into<String>) -> Result<SandboxPay, ProviderError> {
        let config = |e: KeyError| ProviderError::Config { provider: SANDBOX, detail: e.0 };
        let mchid = mchid.into();
        let merchant = MerchantSigner::generate(mchid, format!("SANDBOX{}", crate::random::hex(32).to_uppercase()))
            .map_err(config)?;
        let platform = PlatformSigner::generate().map_err(config)?;
        let verifier = platform.verifier().map_err(config)?;
        let http = reqwest::Client::builder()
            .timeout(SandboxPay::NOTIFY_TIMEOUT)
            .user_agent("Mozilla/4.0 (sandbox WeChat Pay notify)")
            .build()
            .map_err(|e| ProviderError::Config { provider: SANDBOX, detail: format!("HTTP client: {e}") })?;
        Ok(SandboxPay { appid: appid.into(), merchant, platform, verifier, orders: Mutex::new(HashMap::new()), http })
    }

    /// The platform side (its serial, public key, signing) — tests sign forged notifies with it.
    pub fn platform(&self) -> &PlatformSigner {
        &self.platform
    }

    /// The merchant key's public half, SPKI DER (verifies `paySign`).
    pub fn merchant_public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        self.merchant.public_key_der()
    }

    /// The order recorded under `out_trade_no`.
    pub fn order(&self, out_trade_no: &str) -> Option<SandboxOrder> {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner).get(out_trade_no).cloned()
    }

    /// Build the notify WeChat Pay would send for paying `out_trade_no` (`success` or a
    /// `PAYERROR`), signed now with the platform key; does not send it or change the order.
    pub fn build_notify(&self, out_trade_no: &str, success: bool) -> Result<(NotifyHeaders, Vec<u8>), SandboxPayError> {
        let order = self.order(out_trade_no).ok_or_else(|| SandboxPayError::NotFound(out_trade_no.to_string()))?;
        let (headers, body, _) = self.notify_for(&order, success, Utc::now())?;
        Ok((headers, body))
    }

    fn notify_for(
        &self,
        order: &SandboxOrder,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<(NotifyHeaders, Vec<u8>, String), SandboxPayError> {
        // Real transaction ids are 28 digits starting 42000.
        let transaction_id = format!("42000{}", crate::random::digits(23));
        let mut transaction = json!({
            "appid": self.appid,
            "mchid": self.merchant.mchid(),
            "out_trade_no": order.out_trade_no,
            "transaction_id": transaction_id,
            "trade_type": "JSAPI",
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
        let plaintext = serde_json::to_vec(&transaction).map_err(|e| SandboxPayError::Internal(e.to_string()))?;
        let envelope = NotifyEnvelope {
            id: format!("EV-{}{}", now.format("%Y%m%d%H%M%S"), crate::random::digits(12)),
            create_time: beijing_rfc3339(now),
            event_type: if success { "TRANSACTION.SUCCESS" } else { "TRANSACTION.PAYERROR" }.into(),
            resource_type: "encrypt-resource".into(),
            summary: if success { "支付成功" } else { "支付失败" }.into(),
            resource: self.platform.encrypt_resource(&plaintext, "transaction")?,
        };
        let body = serde_json::to_vec(&envelope).map_err(|e| SandboxPayError::Internal(e.to_string()))?;
        let headers = self.platform.sign_notify(&body)?;
        Ok((headers, body, transaction_id))
    }

    /// Pay `out_trade_no` (`success`) or fail the attempt, and deliver the notify to the order's
    /// notify URL like WeChat Pay (one attempt, no retries). The order becomes paid only when
    /// the merchant answers a success notify with 2xx; a failed attempt leaves it payable.
    pub async fn pay(&self, out_trade_no: &str, success: bool) -> Result<SandboxPayOutcome, SandboxPayError> {
        let now = Utc::now();
        let order = {
            let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
            let order = orders.get_mut(out_trade_no).ok_or_else(|| SandboxPayError::NotFound(out_trade_no.into()))?;
            match order.state {
                SandboxOrderState::Paid => return Err(SandboxPayError::AlreadyPaid(out_trade_no.into())),
                SandboxOrderState::Paying => return Err(SandboxPayError::InProgress(out_trade_no.into())),
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
        let mut guard = success.then_some(PayingGuard { pay: self, out_trade_no, committed: false });
        let (headers, body, transaction_id) = self.notify_for(&order, success, now)?;
        let response = self
            .http
            .post(&order.notify_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Wechatpay-Timestamp", &headers.timestamp)
            .header("Wechatpay-Nonce", &headers.nonce)
            .header("Wechatpay-Signature", &headers.signature)
            .header("Wechatpay-Serial", &headers.serial)
            .header("Wechatpay-Signature-Type", SIGNATURE_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|e| SandboxPayError::Notify(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| SandboxPayError::Notify(e.to_string()))?;
        if let Some(guard) = guard.as_mut() {
            guard.committed = status.is_success();
        }
        drop(guard);
        tracing::info!(out_trade_no, success, status = status.as_u16(), "sandbox pay notify delivered");
        Ok(SandboxPayOutcome {
            transaction_id,
            notify_status: status.as_u16(),
            notify_body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }
}

#[async_trait]
impl WechatPay for SandboxPay {
    fn merchant(&self) -> (&str, &str) {
        (&self.appid, self.merchant.mchid())
    }

    async fn jsapi_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        if order.amount_fen <= 0 {
            return Err(vendor("PARAM_ERROR", "amount.total must be a positive number of fen"));
        }
        if !valid_out_trade_no(&order.out_trade_no) {
            return Err(vendor("PARAM_ERROR", "out_trade_no must be 6-32 characters of [0-9A-Za-z_-|*]"));
        }
        if order.description.is_empty() || order.description.chars().count() > 127 {
            return Err(vendor("PARAM_ERROR", "description must be 1-127 characters"));
        }
        let now = Utc::now();
        if order.time_expire <= now {
            return Err(vendor("PARAM_ERROR", "time_expire must be in the future"));
        }
        match reqwest::Url::parse(&order.notify_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return Err(vendor("PARAM_ERROR", "notify_url must be an http(s) URL")),
        }
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = orders.get(&order.out_trade_no) {
            if existing.amount_fen != order.amount_fen {
                return Err(vendor("INVALID_REQUEST", "参数与首次请求时不一致 (amount differs)"));
            }
            if existing.state == SandboxOrderState::Paid {
                return Err(vendor("ORDERPAID", "该订单已支付"));
            }
            if existing.time_expire <= now {
                return Err(vendor("ORDER_CLOSED", "订单已关闭 (time_expire passed)"));
            }
        } else {
            orders.insert(
                order.out_trade_no.clone(),
                SandboxOrder {
                    out_trade_no: order.out_trade_no.clone(),
                    amount_fen: order.amount_fen,
                    notify_url: order.notify_url.clone(),
                    time_expire: order.time_expire,
                    payer_openid: order.payer_openid.clone(),
                    state: SandboxOrderState::NotPaid,
                },
            );
        }
        Ok(format!("wx{}", crate::random::hex(28)))
    }

    fn pay_params(&self, prepay_id: &str) -> Result<PayParams, ProviderError> {
        self.merchant
            .pay_params(&self.appid, prepay_id)
            .map_err(|e| ProviderError::Config { provider: SANDBOX, detail: e.0 })
    }

    fn verify_notify(
        &self,
        headers: &NotifyHeaders,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Notification, NotifyError> {
        self.verifier.parse_notify(headers, body, now)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use chrono::TimeDelta;

    use super::*;

    fn sandbox() -> &'static SandboxPay {
        static S: OnceLock<SandboxPay> = OnceLock::new();
        S.get_or_init(|| SandboxPay::new("wx0000000000sandbox", "1900000001").expect("keygen"))
    }

    fn order(no: &str, fen: i64) -> PrepayRequest {
        PrepayRequest {
            out_trade_no: no.into(),
            description: "供暖费".into(),
            amount_fen: fen,
            payer_openid: Some("o_user".into()),
            notify_url: "http://127.0.0.1:9/notify".into(),
            time_expire: Utc::now() + TimeDelta::minutes(30),
        }
    }

    fn vendor_code(r: Result<String, ProviderError>) -> String {
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
        let recorded = pay.order("SBTEST_0001").expect("recorded");
        assert_eq!((recorded.amount_fen, recorded.state), (100, SandboxOrderState::NotPaid));
        assert!(pay.order("SBTEST_0002").is_none());
    }

    #[tokio::test]
    async fn built_notifies_verify_and_forgeries_do_not() {
        let pay = sandbox();
        pay.jsapi_prepay(&order("SBTEST_0010", 2500)).await.expect("prepay");
        let (headers, body) = pay.build_notify("SBTEST_0010", true).expect("notify");
        let n = pay.verify_notify(&headers, &body, Utc::now()).expect("verifies");
        assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
        assert_eq!(n.transaction.amount_total_fen, 2500);
        assert_eq!(n.transaction.trade_state, "SUCCESS");
        assert_eq!((n.transaction.appid.as_str(), n.transaction.mchid.as_str()), pay.merchant());
        assert!(n.transaction.transaction_id.starts_with("42000") && n.transaction.transaction_id.len() == 28);
        assert!(n.transaction.success_time.as_deref().is_some_and(|t| t.ends_with("+08:00")));

        let (headers, body) = pay.build_notify("SBTEST_0010", false).expect("notify");
        let n = pay.verify_notify(&headers, &body, Utc::now()).expect("verifies");
        assert_eq!((n.event_type.as_str(), n.transaction.trade_state.as_str()), ("TRANSACTION.PAYERROR", "PAYERROR"));
        assert_eq!(n.transaction.success_time, None);

        // Another platform's key under the sandbox serial: refused.
        let forger = PlatformSigner::generate().expect("keygen");
        let forged = forger.sign_notify(&body).expect("sign");
        let forged = NotifyHeaders { serial: pay.platform().serial().into(), ..forged };
        assert!(matches!(pay.verify_notify(&forged, &body, Utc::now()), Err(NotifyError::Signature(_))));
        assert!(matches!(pay.build_notify("SBTEST_NOPE", true), Err(SandboxPayError::NotFound(_))));
    }

    #[tokio::test]
    async fn pay_params_are_signed_with_the_sandbox_merchant_key() {
        let pay = sandbox();
        let params = pay.pay_params("wx0123").expect("params");
        let key = keys::parse_public_key(&pay.merchant_public_key_der().expect("der")).expect("key");
        let message = format!("{}\n{}\n{}\n{}\n", params.app_id, params.time_stamp, params.nonce_str, params.package);
        use base64::Engine as _;
        let signature = base64::engine::general_purpose::STANDARD.decode(&params.pay_sign).expect("b64");
        assert!(key.verify_sig(message.as_bytes(), &signature).is_ok());
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
        assert_eq!(headers.signature, vectors::GO_NOTIFY_SIGNATURE);
        assert_eq!((headers.timestamp.as_str(), headers.serial.as_str()), ("1624523846", "D7CE59D1F522D701"));
    }
}
