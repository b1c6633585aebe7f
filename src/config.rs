//! Server configuration: defaults, then an optional TOML file, then `MPAPI_*` environment
//! variables (and `DATABASE_URL`). Secrets are [`SecretString`]s: they never reach a log.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Everything `mpapi serve` reads at start.
///
/// Sources, later ones winning: built-in defaults; the TOML file named by `--config` or
/// `MPAPI_CONFIG` (default `mpapi.toml` when it exists); environment variables `MPAPI_…` with `__`
/// between levels (`MPAPI_SMS__PROVIDER=real`, `MPAPI_WECHAT_PAY__MCHID=…`); `DATABASE_URL`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `sqlite://mpapi.db?mode=rwc` (default) or `postgres://…`.
    pub database_url: String,
    /// Secrets the server signs and encrypts with.
    pub secrets: Secrets,
    /// The SMS provider.
    pub sms: SmsConfig,
    /// WeChat mini-program login (code2Session).
    pub wechat_login: WechatLoginConfig,
    /// WeChat Pay v3.
    pub wechat_pay: WechatPayConfig,
    /// Per-IP request limit (000 §7: 100 requests per 15 minutes).
    pub rate_limit: RateLimitConfig,
    /// Seed the demo data (heat account H202400001 …) into a fresh database. Unset: only while
    /// the sandbox payment provider is active — the demo owners' ID numbers are public, so a
    /// server taking real payments must not hold their accounts unless asked to.
    pub demo_data: Option<bool>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            database_url: "sqlite://mpapi.db?mode=rwc".into(),
            secrets: Secrets::default(),
            sms: SmsConfig::default(),
            wechat_login: WechatLoginConfig::default(),
            wechat_pay: WechatPayConfig::default(),
            rate_limit: RateLimitConfig::default(),
            demo_data: None,
        }
    }
}

/// Keys for tokens and personal data. When one is not configured the server generates it on first
/// start and keeps it in the database (fine for development; set them in production so the keys do
/// not sit beside the data they protect).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Secrets {
    /// HMAC key for access tokens (JWT HS256), any length ≥ 32 bytes.
    #[serde(serialize_with = "skip_secret")]
    pub jwt: Option<SecretString>,
    /// AES-256-GCM key for ID numbers at rest: 64 hex characters.
    #[serde(serialize_with = "skip_secret")]
    pub pii_key: Option<SecretString>,
    /// HMAC pepper for blind indexes and code hashes, any length ≥ 32 bytes.
    #[serde(serialize_with = "skip_secret")]
    pub pepper: Option<SecretString>,
}

/// Which implementation a provider uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// In-process stand-in; serves `/_sandbox/*`.
    #[default]
    Sandbox,
    /// The vendor's real HTTP API.
    Real,
}

/// SMS: the sandbox outbox, or Aliyun (dysmsapi SendSms).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmsConfig {
    /// `sandbox` (default) or `real`.
    pub provider: ProviderKind,
    /// Aliyun endpoint (tests point it at wiremock).
    pub endpoint: String,
    /// Aliyun AccessKey ID.
    pub access_key_id: String,
    /// Aliyun AccessKey secret.
    #[serde(serialize_with = "skip_secret")]
    pub access_key_secret: Option<SecretString>,
    /// The approved signature (签名名称).
    pub sign_name: String,
    /// The template (模板CODE) with one `${code}` variable.
    pub template_code: String,
}

impl Default for SmsConfig {
    fn default() -> SmsConfig {
        SmsConfig {
            provider: ProviderKind::Sandbox,
            endpoint: "https://dysmsapi.aliyuncs.com".into(),
            access_key_id: String::new(),
            access_key_secret: None,
            sign_name: String::new(),
            template_code: String::new(),
        }
    }
}

/// WeChat login: sandbox openids, or code2Session at api.weixin.qq.com.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WechatLoginConfig {
    /// `sandbox` (default) or `real`.
    pub provider: ProviderKind,
    /// `https://api.weixin.qq.com` (tests point it at wiremock).
    pub base_url: String,
    /// The mini-program appid.
    pub appid: String,
    /// The mini-program AppSecret.
    #[serde(serialize_with = "skip_secret")]
    pub secret: Option<SecretString>,
}

impl Default for WechatLoginConfig {
    fn default() -> WechatLoginConfig {
        WechatLoginConfig {
            provider: ProviderKind::Sandbox,
            base_url: "https://api.weixin.qq.com".into(),
            appid: String::new(),
            secret: None,
        }
    }
}

/// WeChat Pay v3 (JSAPI). The sandbox generates its own merchant and platform keys at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WechatPayConfig {
    /// `sandbox` (default) or `real`.
    pub provider: ProviderKind,
    /// `https://api.mch.weixin.qq.com` (tests point it at wiremock).
    pub base_url: String,
    /// The mini-program appid orders are placed with.
    pub appid: String,
    /// The merchant id (商户号).
    pub mchid: String,
    /// The merchant API certificate serial number (商户API证书序列号).
    pub merchant_serial_no: String,
    /// The merchant private key, PKCS#8 PEM (`apiclient_key.pem`) — the file's path.
    pub merchant_private_key_file: Option<PathBuf>,
    /// The APIv3 key (32 bytes), for decrypting notifies.
    #[serde(serialize_with = "skip_secret")]
    pub apiv3_key: Option<SecretString>,
    /// The WeChat Pay public key id (`PUB_KEY_ID_…`).
    pub public_key_id: String,
    /// The WeChat Pay public key, SPKI PEM — the file's path.
    pub public_key_file: Option<PathBuf>,
    /// The notify URL sent with every order. Default: the API's own
    /// `http://127.0.0.1:{port}{notify path}` (right for the sandbox; set an https URL for real).
    pub notify_base_url: Option<String>,
}

impl Default for WechatPayConfig {
    fn default() -> WechatPayConfig {
        WechatPayConfig {
            provider: ProviderKind::Sandbox,
            base_url: "https://api.mch.weixin.qq.com".into(),
            appid: "wx0000000000sandbox".into(),
            mchid: "1900000001".into(),
            merchant_serial_no: String::new(),
            merchant_private_key_file: None,
            apiv3_key: None,
            public_key_id: String::new(),
            public_key_file: None,
            notify_base_url: None,
        }
    }
}

/// The per-IP limit every API request counts against (000 §7).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Requests allowed per window and IP.
    pub requests: u32,
    /// The window, in seconds.
    pub window_seconds: u64,
    /// Take the client IP from the last `X-Forwarded-For` entry (set this only behind a reverse
    /// proxy that appends it, such as the production ingress; otherwise clients could pick their
    /// own IP). Default: the TCP peer.
    pub trust_forwarded_for: bool,
}

impl Default for RateLimitConfig {
    fn default() -> RateLimitConfig {
        RateLimitConfig { requests: 100, window_seconds: 15 * 60, trust_forwarded_for: false }
    }
}

fn skip_secret<S: serde::Serializer>(_: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

impl Config {
    /// Read the configuration: defaults, the TOML file (`explicit`, else `MPAPI_CONFIG`, else
    /// `mpapi.toml` when present), `MPAPI_…` variables, `DATABASE_URL`.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let file = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("MPAPI_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("mpapi.toml")).filter(|p| p.is_file()));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &file {
            anyhow::ensure!(file.is_file(), "config file {} does not exist", file.display());
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(Env::prefixed("MPAPI_").split("__").ignore(&["CONFIG"]))
            .merge(Env::raw().only(&["DATABASE_URL"]));
        figment.extract().context("reading the configuration")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_overrides_defaults_and_secrets_stay_out_of_debug() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mpapi.toml");
        std::fs::write(
            &file,
            "database_url = \"sqlite::memory:\"\n[secrets]\njwt = \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n\
             [sms]\nprovider = \"real\"\naccess_key_secret = \"very-secret\"\n[rate_limit]\nrequests = 7\n",
        )
        .unwrap();
        let config = Config::load(Some(&file)).unwrap();
        if std::env::var_os("DATABASE_URL").is_none() {
            // (The environment wins over the file, as documented.)
            assert_eq!(config.database_url, "sqlite::memory:");
        }
        assert_eq!(config.sms.provider, ProviderKind::Real);
        assert_eq!((config.rate_limit.requests, config.rate_limit.window_seconds), (7, 900));
        assert_eq!(config.wechat_pay.provider, ProviderKind::Sandbox);
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret") && !debug.contains("00112233"), "{debug}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
