//! External services behind traits: SMS, WeChat login (code2Session) and WeChat Pay v3 (its trait
//! and types in [`wechat_pay`]), each with a sandbox provider (the default) and a real HTTP provider
//! selected by configuration.
//!
//! The application layer only sees the traits. Sandbox providers keep what they "sent" in memory
//! so `/_sandbox/*` can show it; real providers talk to the vendor over HTTPS and are tested
//! against wiremock (tests/it/providers.rs).


use async_trait::async_trait;

pub mod sms;
pub mod wechat_login;
pub mod wechat_pay;

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
