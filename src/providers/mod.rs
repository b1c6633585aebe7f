//! External services behind traits: SMS, WeChat login (code2Session), WeChat Pay v3 (its trait
//! and types in [`wechat_pay`]), and community's ID-card OCR ([`ocr`]) and 安防平台
//! ([`security_platform`]), o2o's reverse geocoding ([`geocoder`]: a position to its county) and
//! 小程序码 ([`wxacode`]: `getwxacodeunlimit` with a cached `stable_token`, or a locally drawn QR
//! PNG), each with a sandbox provider (the default) and a real HTTP provider selected by
//! configuration; and private file storage ([`files`]: a local directory or an S3-compatible
//! bucket, served through signed URLs).
//!
//! The application layer only sees the traits. Sandbox providers keep what they "sent" in memory
//! (the 安防平台 in the database, which every instance shares) so `/_sandbox/*` can show it; real
//! providers talk to the vendor over HTTPS and are tested against wiremock (tests/it/providers.rs,
//! tests/it/community_providers.rs).


use async_trait::async_trait;

pub mod charger;
pub mod files;
pub mod geocoder;
pub mod ocr;
pub mod security_platform;
pub mod sms;
pub mod wechat_login;
pub mod wechat_pay;
pub mod wxacode;

/// The JSON answer of a GET whose query carries a secret (an AppSecret, a map key), read as
/// text whatever its content type (WeChat labels JSON `text/plain`): a failed send (its error
/// stripped of the URL, which holds the secret), a non-2xx status or an unreadable body is
/// [`ProviderError::Transport`] of `provider`.
pub(crate) async fn json_answer<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ProviderError> {
    let transport = |detail: String| ProviderError::Transport { provider, detail };
    let response = sent.map_err(|e| transport(e.without_url().to_string()))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| transport(e.without_url().to_string()))?;
    if !status.is_success() {
        return Err(transport(format!("HTTP {status}")));
    }
    serde_json::from_str(&text).map_err(|e| transport(format!("unreadable answer: {e}")))
}

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

/// Send `request` for `provider` (its name in errors: `aliyun-sms`, `wechat-pay`, …): every
/// request of the real providers goes out here, and is counted and timed in the metrics by
/// provider and outcome ([`crate::metrics::provider_request`]: a 2xx answer, another status, no
/// answer). A vendor's refusal inside a 2xx answer (WeChat's `errcode`, Aliyun's `Code`) is the
/// provider's to read, and counts as an answer here.
pub(crate) async fn send(provider: &'static str, request: reqwest::RequestBuilder) -> Result<reqwest::Response, reqwest::Error> {
    use crate::metrics::ProviderOutcome;
    let started = std::time::Instant::now();
    let sent = request.send().await;
    let outcome = match &sent {
        Ok(response) if response.status().is_success() => ProviderOutcome::Ok,
        Ok(_) => ProviderOutcome::HttpError,
        Err(_) => ProviderOutcome::TransportError,
    };
    crate::metrics::provider_request(provider, outcome, started.elapsed());
    sent
}

/// An HTTP client for `provider` whose every request gives up after `timeout`.
pub(crate) fn http_client(
    provider: &'static str,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| ProviderError::Config { provider, detail: format!("HTTP client: {e}") })
}

/// Lowercase hex of HMAC-SHA256(`key`, `message`): signed file URLs, the 安防平台's requests.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    hex::encode(aws_lc_rs::hmac::sign(&key, message).as_ref())
}
