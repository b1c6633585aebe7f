//! The sandbox payment platform (domain.md §2.2): [`SandboxPay`] plays WeChat Pay for the
//! server — it holds orders and refunds in the database (shared by every instance) and, through
//! [`PlatformSigner`], signs and encrypts real notifies with a platform key of its own — so a
//! frontend walks every payment journey with no merchant account, through the same verification
//! code the real provider uses. Its time is the server's [`Clock`], so tests that move the clock
//! move the sandbox too.
//!
//! In v2 mode ([`SandboxPay::new_v2`]) it speaks WeChat Pay v2 instead (domain.md §2.1): MD5
//! `paySign`, XML notifies signed with its API key, refund notifies with an encrypted `req_info`.

use std::fmt;
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
use crate::storage::payments::TradeType;
use crate::storage::sandbox::{NewSandboxOrder, RefundClaim, SandboxOrderRow, SandboxPayState, SandboxRefundRow};
use crate::storage::{Db, StorageError};
use tokio::sync::OnceCell;

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

/// The v3 keys, read from the database (made there by the first instance that needed them) on
/// first use and kept: they never change.
struct V3Keys {
    signer: MerchantSigner,
    platform: PlatformSigner,
    verifier: NotifyVerifier,
}

/// The sandbox payment platform. It plays WeChat Pay (a platform key pair `PUB_KEY_ID_SANDBOX…`
/// and a random APIv3 key) and holds the merchant's key, so the server runs the same
/// verification code path as with the real provider; in v2 mode a random API key signs and
/// verifies instead. Its time is the server's [`Clock`].
///
/// Nothing a second instance must see lives in this process (issue 17): the keys are secrets in
/// the database (`server_secret`, `sandbox_pay:<mchid>:…`), made by the first instance that
/// needs them — never at construction, which costs nothing — and kept here once read; orders,
/// prepay ids, code_urls and refunds are rows of `sandbox_pay_*`
/// ([`crate::storage::sandbox::SandboxPayStore`]) scoped by mchid and appid, and every change
/// that must happen once (paying, closing, refunding) is a conditional write. Two instances
/// configured alike are one platform: an order placed through one is paid through the other,
/// and its notify verifies on both.
pub struct SandboxPay {
    merchant: Merchant,
    db: Db,
    /// v2 mode: notifies, `paySign` and verification use the API key.
    v2_mode: bool,
    v3: OnceCell<V3Keys>,
    v2: OnceCell<V2Signer>,
    clock: Clock,
}

impl fmt::Debug for SandboxPay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxPay")
            .field("merchant", &self.merchant)
            .field("platform", &self.v3.get().map(|keys| &keys.platform))
            .field("v2", &self.v2_mode)
            .finish_non_exhaustive()
    }
}

fn vendor(code: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Vendor { provider: SANDBOX, code: code.into(), message: message.into() }
}

fn internal(e: impl fmt::Display) -> ProviderError {
    ProviderError::Config { provider: SANDBOX, detail: e.to_string() }
}

fn storage(e: StorageError) -> SandboxPayError {
    SandboxPayError::Internal(format!("storage: {e}"))
}

/// WeChat's out_refund_no rule: 1–64 characters of `[0-9A-Za-z_-|*@]`.
fn valid_out_refund_no(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'))
}

fn valid_notify_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
}

/// A fresh RSA-2048 private key, PKCS#8 PEM.
fn rsa_pem() -> Result<String, KeyError> {
    let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError("RSA key generation failed".into()))?;
    Ok(keys::to_pem("PRIVATE KEY", &keys::pkcs8_der(&key)?))
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The HTTP client every sandbox platform of the process sends its notifies with, built on the
/// first notify: each build reads the system's root certificates, which at start cost every
/// sandbox merchant (six of them) a few milliseconds for a client used only later, if at all.
fn notify_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .timeout(SandboxPay::NOTIFY_TIMEOUT)
        .user_agent("Mozilla/4.0 (sandbox WeChat Pay notify)")
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// POST a signed notify to `url` once, as WeChat Pay does (no retries here); the merchant's
/// status and body.
async fn deliver(url: &str, headers: HeaderMap, body: Vec<u8>) -> Result<(u16, String), String> {
    let response = notify_client()?
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

/// An order's row as the provider speaks of it at `now` (ms): a payment claim that lapsed (its
/// instance stopped mid-delivery) leaves the order payable.
fn order_of(row: &SandboxOrderRow, now: i64) -> SandboxOrder {
    let state = match row.state {
        SandboxPayState::NotPaid => SandboxOrderState::NotPaid,
        SandboxPayState::Paying if row.attempt_until.is_some_and(|until| until <= now) => SandboxOrderState::NotPaid,
        SandboxPayState::Paying => SandboxOrderState::Paying,
        SandboxPayState::Paid => SandboxOrderState::Paid,
        SandboxPayState::Closed => SandboxOrderState::Closed,
    };
    SandboxOrder {
        out_trade_no: row.order.out_trade_no.clone(),
        amount_fen: row.order.amount_fen,
        notify_url: row.order.notify_url.clone(),
        time_expire: utc(row.order.time_expire),
        payer_openid: row.order.payer_openid.clone(),
        state,
        transaction_id: row.transaction_id.clone(),
        success_time: row.success_time.map(utc),
    }
}

fn refund_of(row: SandboxRefundRow) -> SandboxRefund {
    SandboxRefund {
        request: RefundRequest {
            out_trade_no: row.out_trade_no,
            out_refund_no: row.out_refund_no,
            reason: row.reason,
            refund_fen: row.refund_fen,
            total_fen: row.total_fen,
            notify_url: row.notify_url,
        },
        refund_id: row.refund_id,
        transaction_id: row.transaction_id,
        success_time: utc(row.success_time),
    }
}

/// How the order was placed, as notifies name it: as recorded, else (an order recorded before
/// the trade type was) `NATIVE` for one `native_prepay` answered a code_url for, else `JSAPI`.
fn trade_type(row: &SandboxOrderRow) -> &'static str {
    match row.order.trade_type {
        Some(TradeType::Native) => "NATIVE",
        Some(TradeType::Jsapi) => "JSAPI",
        None if row.code_url.is_some() => "NATIVE",
        None => "JSAPI",
    }
}

/// A payment claimed for delivery (`Paying` under its attempt id, the transaction id it
/// notifies): [`PayingGuard::finish`] records how it ended. Dropped unfinished (the request
/// was cancelled mid-delivery), it gives the order back at once from a spawned task; a crash
/// is covered by the claim's lapse ([`SandboxPay::ATTEMPT_TTL`]).
struct PayingGuard {
    db: Db,
    mchid: String,
    appid: String,
    out_trade_no: String,
    attempt: String,
    armed: bool,
}

impl PayingGuard {
    /// The merchant acknowledged (`paid_at`: paid then) or did not (`None`: payable again),
    /// each only while this attempt still holds the order.
    async fn finish(mut self, paid_at: Option<DateTime<Utc>>) -> Result<(), SandboxPayError> {
        self.armed = false;
        let store = self.db.sandbox_pay(&self.mchid, &self.appid);
        let held = match paid_at {
            Some(at) => store.commit_payment(&self.out_trade_no, &self.attempt, ms(at)).await,
            None => store.release_payment(&self.out_trade_no, &self.attempt).await,
        }
        .map_err(storage)?;
        if !held {
            tracing::warn!(out_trade_no = self.out_trade_no, "sandbox payment claim lapsed before the merchant answered");
        }
        Ok(())
    }
}

impl Drop for PayingGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (db, mchid, appid) = (self.db.clone(), std::mem::take(&mut self.mchid), std::mem::take(&mut self.appid));
        let (out_trade_no, attempt) = (std::mem::take(&mut self.out_trade_no), std::mem::take(&mut self.attempt));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = db.sandbox_pay(&mchid, &appid).release_payment(&out_trade_no, &attempt).await {
                    tracing::warn!(out_trade_no, %error, "releasing an abandoned sandbox payment failed (it lapses by itself)");
                }
            });
        }
    }
}

impl SandboxPay {
    /// Timeout for delivering a notify.
    pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

    /// How long a payment being delivered holds its order (`Paying`): longer than any
    /// delivery ([`SandboxPay::NOTIFY_TIMEOUT`]), so that only an instance that stopped
    /// mid-delivery lets its claim lapse, and the order becomes payable again.
    pub const ATTEMPT_TTL: Duration = Duration::from_secs(60);

    /// The sandbox platform for `appid`/`mchid` over `db`, keeping time with `clock`. Cheap: the
    /// keys are read (or made, by the first instance) on first use, the notifies' HTTP client
    /// built on the first notify. Infallible today; a `Result` like the real providers'
    /// constructors ([`ProviderError::Config`]).
    pub fn new(db: Db, appid: impl Into<String>, mchid: impl Into<String>, clock: Clock) -> Result<SandboxPay, ProviderError> {
        let merchant = Merchant { appid: appid.into(), mchid: mchid.into() };
        Ok(SandboxPay { merchant, db, v2_mode: false, v3: OnceCell::new(), v2: OnceCell::new(), clock })
    }

    /// A sandbox platform speaking WeChat Pay v2 (domain.md §2.1) for `appid`/`mchid` over
    /// `db`, with a random 32-character API key (made on first use, kept in the database)
    /// signing MD5, keeping time with `clock`: `pay_params` sign the five `wx.requestPayment`
    /// fields with MD5, notifies are XML (Content-Type `text/xml`, no `Wechatpay-*` headers)
    /// signed with the key, refund notifies carry an encrypted `req_info`, and `verify_notify`
    /// verifies v2 notifies ([`V2Signer::parse_notify`]).
    pub fn new_v2(
        db: Db,
        appid: impl Into<String>,
        mchid: impl Into<String>,
        clock: Clock,
    ) -> Result<SandboxPay, ProviderError> {
        let v3 = SandboxPay::new(db, appid, mchid, clock)?;
        Ok(SandboxPay { v2_mode: true, ..v3 })
    }

    /// The secret `sandbox_pay:<mchid>:<what>`: the stored one, else `generate()` — run on the
    /// blocking pool (RSA keys take a while) — stored now. Insert-if-absent then read back:
    /// of two instances making it at once, both end with the first one stored.
    async fn key(&self, what: &str, generate: impl FnOnce() -> Result<String, KeyError> + Send + 'static) -> Result<String, SandboxPayError> {
        let name = format!("sandbox_pay:{}:{what}", self.merchant.mchid);
        if let Some(value) = self.db.stored_secret(&name).await.map_err(storage)? {
            return Ok(value);
        }
        let fresh = tokio::task::spawn_blocking(generate).await.map_err(|e| SandboxPayError::Internal(e.to_string()))??;
        self.db.secret(&name, move || fresh).await.map_err(storage)
    }

    /// The v3 keys (merchant, platform, APIv3), read once.
    async fn v3_keys(&self) -> Result<&V3Keys, SandboxPayError> {
        self.v3
            .get_or_try_init(|| async {
                let merchant_key = self.key("merchant_key", rsa_pem).await?;
                let merchant_serial = self.key("merchant_serial", || Ok(format!("SANDBOX{}", crate::random::hex(32).to_uppercase()))).await?;
                let platform_key = self.key("platform_key", rsa_pem).await?;
                let platform_serial =
                    self.key("platform_serial", || Ok(format!("PUB_KEY_ID_SANDBOX{}", hex::encode_upper(crate::random::bytes::<12>())))).await?;
                let apiv3_key = self.key("apiv3_key", || Ok(crate::random::alphanumeric(32))).await?;
                let signer = MerchantSigner::new(self.merchant.mchid.clone(), merchant_serial, merchant_key.as_bytes())?;
                let platform = PlatformSigner::new(platform_serial, platform_key.as_bytes(), apiv3_key.as_bytes())?;
                let verifier = platform.verifier()?;
                Ok(V3Keys { signer, platform, verifier })
            })
            .await
    }

    /// The v2 API key's signer, read once.
    async fn v2_signer(&self) -> Result<&V2Signer, SandboxPayError> {
        self.v2
            .get_or_try_init(|| async {
                let api_key = self.key("v2_api_key", || Ok(crate::random::alphanumeric(32))).await?;
                Ok(V2Signer::new(api_key.into(), v2::SignType::Md5))
            })
            .await
    }

    /// v2 mode: the merchant's API v2 key (tests sign forged notifies and check `paySign` with
    /// it); `None` in v3 mode. A storage failure is [`SandboxPayError::Internal`].
    pub async fn api_key(&self) -> Result<Option<String>, SandboxPayError> {
        if !self.v2_mode {
            return Ok(None);
        }
        Ok(Some(self.v2_signer().await?.expose_api_key().to_owned()))
    }

    /// The server's time, in whole seconds like every time WeChat Pay writes.
    fn now(&self) -> DateTime<Utc> {
        let now = self.clock.now();
        DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
    }

    /// The platform side (its serial, public key, signing) — tests sign forged notifies with it.
    pub async fn platform(&self) -> Result<&PlatformSigner, SandboxPayError> {
        Ok(&self.v3_keys().await?.platform)
    }

    /// The merchant key's public half, SPKI DER (verifies `paySign`).
    pub async fn merchant_public_key_der(&self) -> Result<Vec<u8>, SandboxPayError> {
        Ok(self.v3_keys().await?.signer.public_key_der()?)
    }

    async fn row(&self, out_trade_no: &str) -> Result<Option<SandboxOrderRow>, SandboxPayError> {
        self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid).order(out_trade_no).await.map_err(storage)
    }

    /// The order recorded under `out_trade_no`, as it stands now.
    pub async fn order(&self, out_trade_no: &str) -> Result<Option<SandboxOrder>, SandboxPayError> {
        let now = ms(self.now());
        Ok(self.row(out_trade_no).await?.map(|row| order_of(&row, now)))
    }

    /// The refund recorded under `out_refund_no`.
    pub async fn refund_record(&self, out_refund_no: &str) -> Result<Option<SandboxRefund>, SandboxPayError> {
        let store = self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid);
        Ok(store.refund(out_refund_no).await.map_err(storage)?.map(refund_of))
    }

    /// Build the notify WeChat Pay would send for paying `out_trade_no` (`success` or a
    /// `PAYERROR`), signed now (the sandbox clock) with the platform key; does not send it or
    /// change the order. The headers are the `Wechatpay-*` ones (v2 mode: only Content-Type
    /// `text/xml`, the XML body signed with the API key).
    pub async fn build_notify(&self, out_trade_no: &str, success: bool) -> Result<(HeaderMap, Vec<u8>), SandboxPayError> {
        let row = self.row(out_trade_no).await?.ok_or_else(|| SandboxPayError::NotFound(out_trade_no.to_string()))?;
        let transaction_id = format!("42000{}", crate::random::digits(23));
        self.transaction_notify(&row, &transaction_id, success, self.now()).await
    }

    /// A signed, encrypted notify (`event_type`, resource `kind`) about `resource`, as of `now`.
    async fn notify(
        &self,
        event_type: &str,
        summary: &str,
        kind: &str,
        resource: &Value,
        now: DateTime<Utc>,
    ) -> Result<(HeaderMap, Vec<u8>), SandboxPayError> {
        let platform = self.platform().await?;
        let plaintext = serde_json::to_vec(resource).map_err(|e| KeyError(e.to_string()))?;
        let envelope = NotifyEnvelope {
            id: format!("EV-{}{}", now.format("%Y%m%d%H%M%S"), crate::random::digits(12)),
            create_time: beijing_rfc3339(now),
            event_type: event_type.into(),
            resource_type: "encrypt-resource".into(),
            summary: summary.into(),
            resource: platform.encrypt_resource(&plaintext, kind)?,
        };
        let body = serde_json::to_vec(&envelope).map_err(|e| KeyError(e.to_string()))?;
        Ok((platform.sign_notify(&body, now)?, body))
    }

    async fn transaction_notify(
        &self,
        row: &SandboxOrderRow,
        transaction_id: &str,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<(HeaderMap, Vec<u8>), SandboxPayError> {
        let order = &row.order;
        if self.v2_mode {
            let fields = self.v2_transaction_notify(self.v2_signer().await?, row, transaction_id, success, now);
            return Ok(v2_notify(fields));
        }
        let mut transaction = json!({
            "appid": self.merchant.appid,
            "mchid": self.merchant.mchid,
            "out_trade_no": order.out_trade_no,
            "transaction_id": transaction_id,
            "trade_type": trade_type(row),
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
        self.notify(event_type, summary, "transaction", &transaction, now).await
    }

    async fn refund_notify(&self, refund: &SandboxRefund, now: DateTime<Utc>) -> Result<(HeaderMap, Vec<u8>), SandboxPayError> {
        if self.v2_mode {
            return Ok(v2_notify(self.v2_refund_notify(self.v2_signer().await?, refund)?));
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
        self.notify("REFUND.SUCCESS", "退款成功", "refund", &resource, now).await
    }

    /// The v2 payment notify (domain.md §2.1) of `row`: its fields, signed with the API key.
    fn v2_transaction_notify(
        &self,
        v2: &V2Signer,
        row: &SandboxOrderRow,
        transaction_id: &str,
        success: bool,
        now: DateTime<Utc>,
    ) -> v2::Fields {
        let order = &row.order;
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
            ("trade_type", trade_type(row)),
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

    /// Check `order`, placed as `trade`, as WeChat Pay does and record it (the first time — of
    /// two instances placing it at once, one records it, with the `prepay_id` its JSAPI placing
    /// will answer on the order's row — and asked again, the same amount,
    /// trade type and payer and an open order are needed); the order as stored. WeChat Pay
    /// refuses one out_trade_no placed again with other parameters — another amount, trade type
    /// or payer — as `OUT_TRADE_NO_USED` (v2's 商户订单号重复; v3 mode answers INVALID_REQUEST).
    /// A payer is compared only when both placings name one: a sandbox JSAPI order may be placed
    /// first without one (heating before its `wx_code`), which WeChat Pay itself never sees (a
    /// real merchant needs the payer first); the first payer named is then recorded.
    async fn place(&self, order: &PrepayRequest, trade: TradeType, prepay_id: Option<&str>) -> Result<SandboxOrderRow, ProviderError> {
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
        let new = NewSandboxOrder {
            out_trade_no: order.out_trade_no.clone(),
            amount_fen: order.amount_fen,
            notify_url: order.notify_url.clone(),
            time_expire: ms(order.time_expire),
            payer_openid: order.payer_openid.clone(),
            trade_type: Some(trade),
            prepay_id: prepay_id.map(str::to_owned),
        };
        let store = self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid);
        let mut row = store.place(&new, ms(now)).await.map_err(internal)?;
        let used = if self.v2_mode { "OUT_TRADE_NO_USED" } else { "INVALID_REQUEST" };
        // The order as first recorded (now, or by an earlier or concurrent request) decides.
        let existing = order_of(&row, ms(now));
        if existing.amount_fen != order.amount_fen {
            return Err(vendor(used, "参数与首次请求时不一致 (amount differs)"));
        }
        // An order recorded before the sandbox kept its trade type is not checked.
        if let Some(first) = row.order.trade_type {
            if first != trade {
                return Err(vendor(used, format!("商户订单号重复 (trade_type: placed {} first)", first.as_str())));
            }
            if let (Some(first), Some(now)) = (&existing.payer_openid, &order.payer_openid)
                && first != now
            {
                return Err(vendor(used, "商户订单号重复 (openid differs)"));
            }
        }
        match existing.state {
            SandboxOrderState::Paid => return Err(vendor("ORDERPAID", "该订单已支付")),
            SandboxOrderState::Closed => return Err(vendor("ORDER_CLOSED", "订单已关闭")),
            _ if existing.time_expire <= now => return Err(vendor("ORDER_CLOSED", "订单已关闭 (time_expire passed)")),
            _ => {}
        }
        // Accepted: a JSAPI order placed without a payer records the first one named (a refused
        // placing names nobody; an order being paid or no longer payable keeps none).
        if row.order.trade_type == Some(TradeType::Jsapi)
            && trade == TradeType::Jsapi
            && row.order.payer_openid.is_none()
            && let Some(payer) = &order.payer_openid
        {
            if store.name_payer(&order.out_trade_no, payer, ms(now)).await.map_err(internal)? {
                row.order.payer_openid = Some(payer.clone());
            } else if let Some(named) = store.order(&order.out_trade_no).await.map_err(internal)?.and_then(|row| row.order.payer_openid)
                && &named != payer
            {
                // Another placing named another payer meanwhile.
                return Err(vendor(used, "商户订单号重复 (openid differs)"));
            }
        }
        Ok(row)
    }

    /// Remember an order the database says was paid (`pay_order`) but this platform never
    /// took — the demo's, seeded straight into the database — so that it can be queried and
    /// refunded. An order it holds already is left as it is (insert-or-nothing).
    pub async fn adopt_paid(&self, out_trade_no: &str, amount_fen: i64, transaction_id: &str, paid_at: DateTime<Utc>) -> Result<(), SandboxPayError> {
        let store = self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid);
        store.adopt_paid(out_trade_no, amount_fen, transaction_id, ms(paid_at)).await.map_err(storage)
    }

    /// Whether this platform holds the order `id` names (an out_trade_no, or a prepay_id,
    /// code_url or `pr` token it answered).
    pub async fn holds(&self, id: &str) -> Result<bool, SandboxPayError> {
        let store = self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid);
        Ok(store.resolve(id).await.map_err(storage)?.is_some())
    }

    /// Pay `out_trade_no` (`success`) or fail the attempt, and deliver the notify to the order's
    /// notify URL like WeChat Pay (one attempt, no retries). The order becomes paid only when
    /// the merchant answers a success notify with 2xx (v2 mode: and an XML ack whose
    /// `return_code` is SUCCESS); a failed attempt leaves it payable. A closed or expired order
    /// (by the sandbox clock) is refused.
    /// `id` may be the out_trade_no or a prepay_id answered for it (a mini-program sees only
    /// the prepay_id, in `package`), or a NATIVE order's code_url or its `pr` token. An `id`
    /// this platform does not hold is [`SandboxPayError::NotFound`] before anything is written
    /// (`/_sandbox/pay` then asks the next merchant).
    ///
    /// A success first claims the order (`NOTPAY` → `Paying`, a conditional write): of two
    /// payments at once, through one instance or two, one delivers its notify and the other is
    /// refused ([`SandboxPayError::InProgress`], or [`SandboxPayError::AlreadyPaid`] once the
    /// first is acknowledged).
    pub async fn pay(&self, id: &str, success: bool) -> Result<SandboxPayOutcome, SandboxPayError> {
        let store = self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid);
        let now = self.now();
        let refusal = |order: &SandboxOrder| {
            let out_trade_no = order.out_trade_no.as_str();
            match order.state {
                SandboxOrderState::Paid => Some(SandboxPayError::AlreadyPaid(out_trade_no.into())),
                SandboxOrderState::Paying => Some(SandboxPayError::InProgress(out_trade_no.into())),
                SandboxOrderState::Closed => Some(SandboxPayError::Closed(out_trade_no.into())),
                SandboxOrderState::NotPaid if order.time_expire <= now => Some(SandboxPayError::Expired(out_trade_no.into())),
                SandboxOrderState::NotPaid => None,
            }
        };
        // Real transaction ids are 28 digits starting 42000; it names the attempt too.
        let transaction_id = format!("42000{}", crate::random::digits(23));
        let until = ms(now) + i64::try_from(SandboxPay::ATTEMPT_TTL.as_millis()).unwrap_or(i64::MAX);
        // A success claims first, taking `id` for the out_trade_no it usually is: the claim
        // answers the order, so the common payment reads nothing before it.
        let claimed = if success { store.claim_payment(id, &transaction_id, ms(now), until).await.map_err(storage)? } else { None };
        let row = match claimed {
            Some(row) => row,
            None => {
                let row = store.resolve(id).await.map_err(storage)?.ok_or_else(|| SandboxPayError::NotFound(id.into()))?;
                if let Some(refused) = refusal(&order_of(&row, ms(now))) {
                    return Err(refused);
                }
                if !success {
                    row
                } else {
                    // `id` named the order another way (a prepay_id, a code_url), or another
                    // payment held it a moment ago.
                    let out_trade_no = row.order.out_trade_no.as_str();
                    let Some(claimed) = store.claim_payment(out_trade_no, &transaction_id, ms(now), until).await.map_err(storage)? else {
                        // Another payment got there between the read and the claim: say what it did.
                        let current = self.row(out_trade_no).await?.map(|row| order_of(&row, ms(now)));
                        return Err(current.as_ref().and_then(refusal).unwrap_or(SandboxPayError::InProgress(out_trade_no.into())));
                    };
                    claimed
                }
            }
        };
        let out_trade_no = row.order.out_trade_no.as_str();
        let guard = success.then(|| PayingGuard {
            db: self.db.clone(),
            mchid: self.merchant.mchid.clone(),
            appid: self.merchant.appid.clone(),
            out_trade_no: out_trade_no.to_owned(),
            attempt: transaction_id.clone(),
            armed: true,
        });
        let attempt = async {
            let (headers, body) = self.transaction_notify(&row, &transaction_id, success, now).await?;
            deliver(&row.order.notify_url, headers, body).await.map_err(SandboxPayError::Notify)
        }
        .await;
        let acknowledged = matches!(&attempt, Ok((status, text))
            if (200..300).contains(status) && (!self.v2_mode || v2::is_ack(text.as_bytes())));
        if let Some(guard) = guard {
            guard.finish(acknowledged.then_some(now)).await?;
        }
        let (status, text) = attempt?;
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

    /// A fresh prepay_id for every accepted placing, as WeChat Pay answers. The placing that
    /// records the order keeps its prepay_id on the order's row (one statement); a later one
    /// records its own beside it.
    async fn jsapi_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        let prepay_id = format!("wx{}", crate::random::hex(28));
        let row = self.place(order, TradeType::Jsapi, Some(&prepay_id)).await?;
        if row.order.prepay_id.as_deref() != Some(prepay_id.as_str()) {
            let store = self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid);
            store.add_prepay(&prepay_id, &order.out_trade_no, self.clock.now_ms()).await.map_err(internal)?;
        }
        Ok(prepay_id)
    }

    /// Checked and recorded as `jsapi_prepay` does; answers `weixin://wxpay/bizpayurl?pr=` + 12
    /// random `[0-9A-Za-z]`, the same one while the order is open (whichever instance is
    /// asked). `pay` takes the code_url or its `pr` token as well as the out_trade_no.
    async fn native_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        let row = self.place(order, TradeType::Native, None).await?;
        if let Some(code_url) = row.code_url {
            return Ok(code_url);
        }
        let pr = crate::random::alphanumeric(12);
        let code_url = format!("{CODE_URL_PREFIX}{pr}");
        let store = self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid);
        store.code_url(&order.out_trade_no, &code_url, &pr, self.clock.now_ms()).await.map_err(internal)
    }

    async fn pay_params(&self, prepay_id: &str) -> Result<PayParams, ProviderError> {
        if self.v2_mode {
            let v2 = self.v2_signer().await.map_err(internal)?;
            let nonce = crate::random::nonce_str();
            let now = self.now().timestamp();
            return Ok(v2.pay_params_at(&self.merchant.appid, prepay_id, now, &nonce));
        }
        let keys = self.v3_keys().await.map_err(internal)?;
        keys.signer
            .pay_params_at(&self.merchant.appid, prepay_id, self.now().timestamp(), &crate::random::nonce_str())
            .map_err(internal)
    }

    async fn query(&self, out_trade_no: &str) -> Result<Transaction, ProviderError> {
        let row = self.row(out_trade_no).await.map_err(internal)?.ok_or_else(|| vendor("ORDER_NOT_EXIST", "订单不存在"))?;
        let order = order_of(&row, ms(self.now()));
        let trade_state = match order.state {
            // An unpaid order stays NOTPAY past its time_expire until the merchant closes it.
            SandboxOrderState::NotPaid => TradeState::NotPay,
            SandboxOrderState::Paying => TradeState::UserPaying,
            SandboxOrderState::Closed => TradeState::Closed,
            SandboxOrderState::Paid if row.refunded_fen > 0 => TradeState::Refund,
            SandboxOrderState::Paid => TradeState::Success,
        };
        Ok(Transaction {
            appid: self.merchant.appid.clone(),
            mchid: self.merchant.mchid.clone(),
            out_trade_no: order.out_trade_no,
            transaction_id: order.transaction_id,
            trade_state,
            success_time: order.success_time,
            amount_total_fen: order.amount_fen,
            payer_openid: order.payer_openid,
        })
    }

    async fn close(&self, out_trade_no: &str) -> Result<(), ProviderError> {
        let store = self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid);
        // Closing a closed order again answers like the first close.
        if store.close(out_trade_no, ms(self.now())).await.map_err(internal)? {
            return Ok(());
        }
        match self.row(out_trade_no).await.map_err(internal)? {
            None => Err(vendor("ORDER_NOT_EXIST", "订单不存在")),
            Some(row) if row.state == SandboxPayState::Paid => Err(vendor("ORDERPAID", "该订单已支付")),
            // A payment in flight may still succeed: closing now would lose it.
            Some(_) => Err(vendor("USERPAYING", "用户支付中，请稍后再试")),
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
        let new = SandboxRefundRow {
            out_refund_no: request.out_refund_no.clone(),
            out_trade_no: request.out_trade_no.clone(),
            refund_fen: request.refund_fen,
            total_fen: request.total_fen,
            reason: request.reason.clone(),
            notify_url: request.notify_url.clone(),
            refund_id: format!("50{}", crate::random::digits(27)),
            transaction_id: String::new(),
            success_time: ms(now),
        };
        let store = self.db.sandbox_pay(&self.merchant.mchid, &self.merchant.appid);
        let refund = match store.claim_refund(&new, ms(now)).await.map_err(internal)? {
            RefundClaim::Recorded(row) => refund_of(row),
            RefundClaim::Existing(row) => {
                // A retry: the same refund, as it stands now — if it asks for the same money from
                // the same order (WeChat's check; reason and notify URL may change).
                let existing = refund_of(row);
                let first = &existing.request;
                let same = (&first.out_trade_no, first.refund_fen, first.total_fen)
                    == (&request.out_trade_no, request.refund_fen, request.total_fen);
                return if same {
                    Ok(existing.answer(RefundStatus::Success))
                } else {
                    Err(vendor("INVALID_REQUEST", "同一退款单号的请求参数与之前不一致"))
                };
            }
            RefundClaim::NoOrder => return Err(vendor("RESOURCE_NOT_EXISTS", "订单不存在")),
            // Retryable: the merchant asks again (`payments`' sweep) once the order is paid.
            RefundClaim::PaymentInFlight => return Err(vendor("SYSTEM_ERROR", "系统繁忙，请稍后再试 (the payment's notify is still being delivered)")),
            RefundClaim::NotPaid => return Err(vendor("INVALID_REQUEST", "订单未支付，不能退款")),
            RefundClaim::TotalDiffers => return Err(vendor("INVALID_REQUEST", "订单金额与原订单不一致")),
            RefundClaim::TooMuch => return Err(vendor("INVALID_REQUEST", "申请退款金额超过订单可退金额")),
        };
        if !request.notify_url.is_empty() {
            let (headers, body) = self.refund_notify(&refund, now).await.map_err(internal)?;
            let (url, out_refund_no) = (request.notify_url.clone(), request.out_refund_no.clone());
            // WeChat notifies refunds later, from elsewhere: the answer does not wait for it.
            tokio::spawn(async move {
                match deliver(&url, headers, body).await {
                    Ok((status, _)) => tracing::info!(out_refund_no, status, "sandbox refund notify delivered"),
                    Err(error) => tracing::warn!(out_refund_no, error, "sandbox refund notify not delivered"),
                }
            });
        }
        Ok(refund.answer(RefundStatus::Processing))
    }

    async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, ProviderError> {
        let refund = self.refund_record(out_refund_no).await.map_err(internal)?;
        let refund = refund.ok_or_else(|| vendor("RESOURCE_NOT_EXISTS", "退款单不存在"))?;
        Ok(refund.answer(RefundStatus::Success))
    }

    async fn verify_notify(&self, headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Notification, NotifyError> {
        if self.v2_mode {
            let v2 = self.v2_signer().await.map_err(|e| NotifyError::Unavailable(e.to_string()))?;
            return v2.parse_notify(&self.merchant, body);
        }
        let keys = self.v3_keys().await.map_err(|e| NotifyError::Unavailable(e.to_string()))?;
        keys.verifier.parse_notify(headers, body, now)
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
    use chrono::TimeDelta;

    use super::*;
    use crate::providers::wechat_pay::NotifyEvent;

    async fn db() -> Db {
        Db::connect("sqlite::memory:").await.expect("a database")
    }

    /// A v3 platform over a database of its own.
    async fn sandbox() -> SandboxPay {
        SandboxPay::new(db().await, "wx0000000000sandbox", "1900000001", Clock::default()).expect("a platform")
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
        let pay = &sandbox().await;
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
        let recorded = pay.order("SBTEST_0001").await.expect("read").expect("recorded");
        assert_eq!((recorded.amount_fen, recorded.state), (100, SandboxOrderState::NotPaid));
        assert!(pay.order("SBTEST_0002").await.expect("read").is_none());
        assert!(!pay.needs_payer());
    }

    #[tokio::test]
    async fn native_prepay_answers_one_code_url_per_open_order() {
        let pay = &sandbox().await;
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
        let recorded = pay.order("SBNATIVE_001").await.expect("read").expect("recorded");
        assert_eq!((recorded.amount_fen, recorded.state, recorded.payer_openid), (700, SandboxOrderState::NotPaid, None));
        let (headers, body) = pay.build_notify("SBNATIVE_001", true).await.expect("notify");
        let n = pay.verify_notify(&headers, &body, Utc::now()).await.expect("verifies");
        assert!(matches!(n.event, NotifyEvent::Transaction(t) if t.amount_total_fen == 700 && t.payer_openid.is_none()));
        // `pay` finds the order by its code_url or pr token, as a JSAPI order by its prepay_id (no
        // merchant listens at port 9: the notify is not delivered and the order stays payable).
        for id in [code_url.as_str(), pr, "SBNATIVE_001"] {
            assert!(matches!(pay.pay(id, true).await, Err(SandboxPayError::Notify(_))), "{id}");
        }
        let unknown = "weixin://wxpay/bizpayurl?pr=000000000000";
        assert_eq!(pay.pay(unknown, true).await, Err(SandboxPayError::NotFound(unknown.into())));
        assert_eq!(pay.order("SBNATIVE_001").await.expect("read").map(|o| o.state), Some(SandboxOrderState::NotPaid));
    }

    /// As WeChat Pay, one out_trade_no is placed one way for one payer: asked again as the
    /// other trade type, or for another payer, it is refused (and nothing changes); asked
    /// again as first placed, it is answered.
    #[tokio::test]
    async fn an_order_is_placed_again_only_as_first_placed() {
        let pay = &sandbox().await;
        let native = PrepayRequest { payer_openid: None, ..order("SBTRADE_001", 500) };
        let code_url = pay.native_prepay(&native).await.expect("NATIVE");
        assert_eq!(vendor_code(pay.jsapi_prepay(&native).await), "INVALID_REQUEST");
        assert_eq!(vendor_code(pay.jsapi_prepay(&order("SBTRADE_001", 500)).await), "INVALID_REQUEST");
        assert_eq!(pay.native_prepay(&native).await.expect("NATIVE again"), code_url);
        let jsapi = order("SBTRADE_002", 500);
        pay.jsapi_prepay(&jsapi).await.expect("JSAPI");
        pay.jsapi_prepay(&jsapi).await.expect("JSAPI again");
        assert_eq!(vendor_code(pay.native_prepay(&PrepayRequest { payer_openid: None, ..jsapi.clone() }).await), "INVALID_REQUEST");
        let other_payer = PrepayRequest { payer_openid: Some("o_another_payer".into()), ..jsapi.clone() };
        assert_eq!(vendor_code(pay.jsapi_prepay(&other_payer).await), "INVALID_REQUEST");
        let recorded = pay.order("SBTRADE_002").await.expect("read").expect("recorded");
        assert_eq!((recorded.payer_openid, recorded.state), (jsapi.payer_openid.clone(), SandboxOrderState::NotPaid));
        let first = pay.order("SBTRADE_001").await.expect("read").expect("recorded");
        assert_eq!((first.payer_openid, first.state), (None, SandboxOrderState::NotPaid));
        // Placed first with no payer (a sandbox-only JSAPI order), then for one: accepted; a
        // placing refused first (another amount) names nobody.
        let payerless = PrepayRequest { payer_openid: None, ..order("SBTRADE_003", 500) };
        pay.jsapi_prepay(&payerless).await.expect("JSAPI, no payer");
        let wrong_amount = PrepayRequest { payer_openid: Some("o_refused_payer".into()), ..order("SBTRADE_003", 501) };
        assert_eq!(vendor_code(pay.jsapi_prepay(&wrong_amount).await), "INVALID_REQUEST");
        assert_eq!(pay.order("SBTRADE_003").await.expect("read").expect("recorded").payer_openid, None, "a refused placing names nobody");
        pay.jsapi_prepay(&order("SBTRADE_003", 500)).await.expect("JSAPI, the payer now known");
        let named = pay.order("SBTRADE_003").await.expect("read").expect("recorded");
        assert_eq!(named.payer_openid, order("SBTRADE_003", 500).payer_openid, "recorded once named");
        let third = PrepayRequest { payer_openid: Some("o_third_payer".into()), ..order("SBTRADE_003", 500) };
        assert_eq!(vendor_code(pay.jsapi_prepay(&third).await), "INVALID_REQUEST");
    }

    #[tokio::test]
    async fn built_notifies_verify_and_forgeries_do_not() {
        let pay = &sandbox().await;
        pay.jsapi_prepay(&order("SBTEST_0010", 2500)).await.expect("prepay");
        let (headers, body) = pay.build_notify("SBTEST_0010", true).await.expect("notify");
        let n = pay.verify_notify(&headers, &body, Utc::now()).await.expect("verifies");
        assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
        let NotifyEvent::Transaction(t) = n.event else { panic!("a transaction") };
        assert_eq!((t.amount_total_fen, &t.trade_state), (2500, &TradeState::Success));
        assert_eq!((&t.appid, &t.mchid), (&pay.merchant().appid, &pay.merchant().mchid));
        assert!(t.transaction_id.as_deref().is_some_and(|id| id.starts_with("42000") && id.len() == 28));
        assert!(t.success_time.is_some_and(|at| (Utc::now() - at).num_seconds().abs() < 5));

        let (headers, body) = pay.build_notify("SBTEST_0010", false).await.expect("notify");
        let n = pay.verify_notify(&headers, &body, Utc::now()).await.expect("verifies");
        assert_eq!(n.event_type, "TRANSACTION.PAYERROR");
        assert!(
            matches!(n.event, NotifyEvent::Transaction(t) if t.trade_state == TradeState::PayError && t.success_time.is_none())
        );

        // Another platform's key under the sandbox serial: refused.
        let forger = PlatformSigner::generate().expect("keygen");
        let mut forged = forger.sign_notify(&body, Utc::now()).expect("sign");
        forged.insert(verify::HEADER_SERIAL, HeaderValue::from_str(pay.platform().await.expect("keys").serial()).expect("ascii"));
        assert!(matches!(pay.verify_notify(&forged, &body, Utc::now()).await, Err(NotifyError::Signature(_))));
        assert!(matches!(pay.build_notify("SBTEST_NOPE", true).await, Err(SandboxPayError::NotFound(_))));
    }

    #[tokio::test]
    async fn pay_params_are_signed_with_the_sandbox_merchant_key() {
        let pay = &sandbox().await;
        let params = pay.pay_params("wx0123").await.expect("params");
        let key = keys::parse_public_key(&pay.merchant_public_key_der().await.expect("der")).expect("key");
        let message = format!("{}\n{}\n{}\n{}\n", params.app_id, params.time_stamp, params.nonce_str, params.package);
        let signature = B64.decode(&params.pay_sign).expect("b64");
        assert!(key.verify_sig(message.as_bytes(), &signature).is_ok());
        assert_eq!(params.app_id, "wx0000000000sandbox");
    }

    #[tokio::test]
    async fn the_sandbox_keeps_the_servers_time() {
        let clock = Clock::default();
        let pay = SandboxPay::new(db().await, "wx0000000000sandbox", "1900000001", clock.clone()).expect("a platform");
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
        let (headers, body) = pay.build_notify("SBCLOCK_001", false).await.expect("notify");
        assert!(pay.verify_notify(&headers, &body, clock.now()).await.is_ok());
        assert!(pay.verify_notify(&headers, &body, Utc::now()).await.is_err(), "31 minutes from real time");
        let params = pay.pay_params("wx0123").await.expect("params");
        assert_eq!(params.time_stamp, clock.now().timestamp().to_string());
    }

    #[tokio::test]
    async fn unknown_and_unpaid_orders_are_vendor_errors() {
        let pay = &sandbox().await;
        assert_eq!(vendor_code(pay.query("SBNONE_0001").await), "ORDER_NOT_EXIST");
        assert_eq!(vendor_code(pay.close("SBNONE_0001").await), "ORDER_NOT_EXIST");
        assert_eq!(vendor_code(pay.query_refund("R_NONE").await), "RESOURCE_NOT_EXISTS");
        let refund = |no: &str, out_refund_no: &str, refund_fen: i64| RefundRequest { refund_fen, ..whole_refund(no, out_refund_no, 300) };
        assert_eq!(vendor_code(pay.refund(&refund("SBNONE_0001", "R_0001", 100)).await), "RESOURCE_NOT_EXISTS");
        pay.jsapi_prepay(&order("SBUNPAID_01", 300)).await.expect("prepay");
        let query = pay.query("SBUNPAID_01").await.expect("query");
        assert_eq!((query.trade_state, query.transaction_id, query.success_time), (TradeState::NotPay, None, None));
        assert_eq!(vendor_code(pay.refund(&refund("SBUNPAID_01", "R_0002", 100)).await), "INVALID_REQUEST");
        assert_eq!(vendor_code(pay.refund(&refund("SBUNPAID_01", "R 0003", 100)).await), "PARAM_ERROR");
        assert_eq!(vendor_code(pay.refund(&refund("SBUNPAID_01", "R_0004", 0)).await), "PARAM_ERROR");
        let bad_url = RefundRequest { notify_url: "notify".into(), ..refund("SBUNPAID_01", "R_0005", 1) };
        assert_eq!(vendor_code(pay.refund(&bad_url).await), "PARAM_ERROR");
        assert!(pay.refund_record("R_0002").await.expect("read").is_none());
    }

    #[tokio::test]
    async fn debug_names_the_merchant_and_serial_but_no_key() {
        let pay = &sandbox().await;
        let platform = pay.platform().await.expect("keys");
        let debug = format!("{pay:?}");
        assert!(debug.contains("1900000001") && debug.contains(platform.serial()), "{debug}");
        let apiv3 = String::from_utf8(platform.apiv3_key.expose_secret().to_vec()).expect("ascii");
        assert!(!debug.contains(&apiv3) && !debug.contains("KeyPair"), "{debug}");
    }

    #[tokio::test]
    async fn a_lapsed_payment_claim_leaves_the_order_payable() {
        let clock = Clock::default();
        let pay = SandboxPay::new(db().await, "wx0000000000sandbox", "1900000001", clock.clone()).expect("a platform");
        pay.jsapi_prepay(&order_at("SBLAPSE_001", 100, clock.now())).await.expect("prepay");
        // An instance claimed the payment, then stopped before the merchant answered.
        let store = pay.db.sandbox_pay("1900000001", "wx0000000000sandbox");
        let now = clock.now_ms();
        let claimed = store.claim_payment("SBLAPSE_001", "4200000000000000000000000009", now, now + 60_000).await.expect("claim");
        assert_eq!(claimed.map(|row| (row.state, row.order.amount_fen)), Some((SandboxPayState::Paying, 100)), "the claim answers the order as claimed");
        assert_eq!(store.claim_payment("SBLAPSE_001", "4200000000000000000000000011", now, now + 60_000).await.expect("claim"), None, "claimed once");
        assert_eq!(pay.pay("SBLAPSE_001", true).await, Err(SandboxPayError::InProgress("SBLAPSE_001".into())));
        assert_eq!(pay.query("SBLAPSE_001").await.expect("query").trade_state, TradeState::UserPaying);
        assert_eq!(vendor_code(pay.close("SBLAPSE_001").await), "USERPAYING");
        assert_eq!(vendor_code(pay.refund(&whole_refund("SBLAPSE_001", "SBLAPSE_R1", 100)).await), "SYSTEM_ERROR");
        // Once the claim lapses the order is payable again (nothing listens at port 9: the
        // attempt fails, and gives the order back).
        clock.advance(SandboxPay::ATTEMPT_TTL + Duration::from_secs(1));
        assert_eq!(pay.order("SBLAPSE_001").await.expect("read").map(|o| o.state), Some(SandboxOrderState::NotPaid));
        assert_eq!(vendor_code(pay.refund(&whole_refund("SBLAPSE_001", "SBLAPSE_R1", 100)).await), "INVALID_REQUEST", "not paid");
        assert!(matches!(pay.pay("SBLAPSE_001", true).await, Err(SandboxPayError::Notify(_))));
        assert_eq!(pay.order("SBLAPSE_001").await.expect("read").map(|o| o.state), Some(SandboxOrderState::NotPaid));
        assert!(store.claim_payment("SBLAPSE_001", "4200000000000000000000000010", clock.now_ms(), clock.now_ms() + 1).await.expect("claim").is_some());
    }

    /// The provider reads a claimed order as paying until the claim's `until`, and as payable
    /// from it: the moment the ledger's writes take as lapsed
    /// (`storage::sandbox::tests::a_payment_claim_lapses_at_its_until_for_every_write`).
    #[tokio::test]
    async fn a_claimed_order_reads_payable_from_its_until() {
        let pay = &sandbox().await;
        pay.jsapi_prepay(&order("SBLAPSE_003", 100)).await.expect("prepay");
        let store = pay.db.sandbox_pay("1900000001", "wx0000000000sandbox");
        let now = pay.clock.now_ms();
        let until = now + 60_000;
        store.claim_payment("SBLAPSE_003", "4200000000000000000000000016", now, until).await.expect("claim").expect("claimed");
        let row = store.order("SBLAPSE_003").await.expect("read").expect("the order");
        assert_eq!(order_of(&row, until - 1).state, SandboxOrderState::Paying);
        assert_eq!(order_of(&row, until).state, SandboxOrderState::NotPaid);
    }

    /// A refund of all `fen` of `out_trade_no` as `out_refund_no`, with no notify (a test sets
    /// another `refund_fen` over it).
    fn whole_refund(out_trade_no: &str, out_refund_no: &str, fen: i64) -> RefundRequest {
        RefundRequest {
            out_trade_no: out_trade_no.into(),
            out_refund_no: out_refund_no.into(),
            reason: None,
            refund_fen: fen,
            total_fen: fen,
            notify_url: String::new(),
        }
    }

    /// A merchant that cannot apply a payment refunds it while the notify is still being
    /// delivered: WeChat Pay has the order paid by then, so the sandbox says "ask again"
    /// (retryable), not "not paid" (final), and refunds once the payment is acknowledged.
    #[tokio::test]
    async fn a_refund_asked_during_the_notify_is_asked_again_later() {
        let pay = &sandbox().await;
        pay.jsapi_prepay(&order("SBFLIGHT_01", 100)).await.expect("prepay");
        let store = pay.db.sandbox_pay("1900000001", "wx0000000000sandbox");
        let (now, attempt) = (pay.clock.now_ms(), "4200000000000000000000000012");
        store.claim_payment("SBFLIGHT_01", attempt, now, now + 60_000).await.expect("claim").expect("claimed");
        let refund = whole_refund("SBFLIGHT_01", "SBFLIGHT_R1", 100);
        let during = pay.refund(&refund).await;
        assert_eq!(vendor_code(during), "SYSTEM_ERROR");
        assert!(pay.refund_record("SBFLIGHT_R1").await.expect("read").is_none(), "nothing recorded");
        assert!(store.commit_payment("SBFLIGHT_01", attempt, now).await.expect("paid"));
        let after = pay.refund(&refund).await.expect("refunded");
        assert_eq!((after.status, after.refund_fen), (RefundStatus::Processing, 100));
    }

    #[tokio::test]
    async fn a_payment_dropped_mid_delivery_gives_the_order_back() {
        let pay = &sandbox().await;
        // A merchant that takes the connection and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let url = format!("http://{}/notify", silent.local_addr().expect("bound"));
        pay.jsapi_prepay(&PrepayRequest { notify_url: url, ..order("SBDROP_001", 100) }).await.expect("prepay");
        let dropped = tokio::time::timeout(Duration::from_millis(300), pay.pay("SBDROP_001", true)).await;
        assert!(dropped.is_err(), "still delivering");
        for _ in 0..100 {
            if pay.order("SBDROP_001").await.expect("read").map(|o| o.state) == Some(SandboxOrderState::NotPaid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the dropped payment still holds the order");
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
