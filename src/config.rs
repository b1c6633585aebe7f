//! Server configuration: defaults, then an optional TOML file, then `MPAPI_*` environment
//! variables (and `DATABASE_URL`). Secrets are [`SecretString`]s: they never reach a log.
//!
//! Server-wide settings sit at the top (database, secrets, the SMS account, CORS, the
//! environment); everything that belongs to one mini-program — its appid and WeChat login, its
//! WeChat Pay merchant, its token policy, its request limit — sits in `[apis.<id>]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

/// Everything `mpapi serve` reads at start.
///
/// Sources, later ones winning: built-in defaults; the TOML file named by `--config` or
/// `MPAPI_CONFIG` (default `mpapi.toml` when it exists); environment variables `MPAPI_…` with `__`
/// between levels (`MPAPI_SMS__PROVIDER=real`, `MPAPI_APIS__HEATING__WECHAT_PAY__MCHID=…`);
/// `DATABASE_URL`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `development` (default) or `production`: production refuses to start with anything that
    /// is only fit for development (sandbox providers, generated secrets, …; see
    /// [`Config::production_problems`]).
    pub env: Environment,
    /// `sqlite://mpapi.db?mode=rwc` (default) or `postgres://…`.
    pub database_url: String,
    /// Secrets the server signs and encrypts with.
    pub secrets: Secrets,
    /// The SMS account every API sends its codes through.
    pub sms: SmsConfig,
    /// Browser origins allowed to call `serve` (CORS). Empty (default): any origin — mini-programs
    /// are no browsers, and the tokens are bearer tokens, not cookies.
    pub cors_origins: Vec<String>,
    /// Take the client IP from the last `X-Forwarded-For` entry (set this only behind a reverse
    /// proxy that appends it, such as the production ingress; otherwise clients could pick their
    /// own IP). Default: the TCP peer.
    pub trust_forwarded_for: bool,
    /// Seed the demo data (heat account H202400001 …) into a fresh database. Unset: only while
    /// the API's WeChat Pay is the sandbox — the demo owners' ID numbers are public, so a server
    /// taking real payments must not hold their accounts unless asked to.
    pub demo_data: Option<bool>,
    /// How log lines are written: `text` (default) or `json`, one object per line for a log
    /// collector (`MPAPI_LOG_FORMAT`). `serve` reads it here; the other commands (`mock` reads no
    /// configuration file) take only the variable: [`Config::log_format_from_env`].
    pub log_format: crate::logging::Format,
    /// Redis (`redis://[:password@]host:6379/0`, `MPAPI_REDIS_URL`) for the state every instance
    /// shares that changes on every request — today the per-IP limits. Unset (default): that
    /// state lives in the database like the rest (a write per counted request).
    #[serde(serialize_with = "skip_secret")]
    pub redis_url: Option<SecretString>,
    /// Per-API settings, by API id (`heating`, `points`, …); an API without a section gets
    /// [`ApiConfig::defaults`].
    pub apis: BTreeMap<String, ApiConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            env: Environment::Development,
            database_url: "sqlite://mpapi.db?mode=rwc".into(),
            secrets: Secrets::default(),
            sms: SmsConfig::default(),
            cors_origins: Vec::new(),
            trust_forwarded_for: false,
            demo_data: None,
            log_format: crate::logging::Format::Text,
            redis_url: None,
            apis: crate::apis::APIS.iter().map(|api| (api.id.to_owned(), ApiConfig::defaults(api.id))).collect(),
        }
    }
}

/// Where the server runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A developer's machine or a test: sandbox providers and generated keys are fine.
    #[default]
    Development,
    /// Real users and real money: nothing of the sandbox may be active.
    Production,
}

/// Keys for tokens and personal data. When one is not configured the server generates it on first
/// start and keeps it in the database (fine for development; production refuses it, so the keys
/// do not sit beside the data they protect).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Secrets {
    /// The master key for access tokens, hex, ≥ 32 bytes; each API signs with its own key derived
    /// from it (HMAC-SHA256 of the API id), so a token of one API never verifies for another.
    #[serde(serialize_with = "skip_secret")]
    pub jwt: Option<SecretString>,
    /// AES-256-GCM key for personal data at rest (ID numbers, WeChat session keys): 64 hex
    /// characters.
    #[serde(serialize_with = "skip_secret")]
    pub pii_key: Option<SecretString>,
    /// HMAC pepper for blind indexes and code hashes, hex, ≥ 32 bytes.
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
    /// The template (模板CODE) with one `${code}` variable, for every purpose without its own.
    pub template_code: String,
    /// Templates by code purpose (`login`, `register`, `reset_password`, …), overriding
    /// `template_code`.
    pub templates: BTreeMap<String, String>,
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
            templates: BTreeMap::new(),
        }
    }
}

/// One mini-program's settings (`[apis.<id>]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// The mini-program's appid: WeChat login, encryptedData watermarks and payments use it.
    pub appid: String,
    /// WeChat login (code2Session) for this appid.
    pub wechat_login: WechatLoginConfig,
    /// The WeChat Pay merchant this API takes payments with.
    pub wechat_pay: WechatPayConfig,
    /// Access-token lifetime and refresh style.
    pub tokens: TokenConfig,
    /// The per-IP request limit; `None`: no limit (only heating's document states one).
    pub rate_limit: Option<RateLimitConfig>,
    /// Where uploaded files (community's face photos, 002 §2.3.1) are kept and how their URLs
    /// are signed.
    pub files: FilesConfig,
    /// ID-card OCR (community, 002 §2.3.2).
    pub ocr: OcrConfig,
    /// The 安防平台 (security platform) asked about residents and owners (community, 002 §2.2).
    pub security_platform: SecurityPlatformConfig,
    /// The chargers (charging, 003 §9–§10): simulated (default) or a device gateway.
    pub charger: crate::providers::charger::ChargerConfig,
    /// Reverse geocoding, a position to its county (o2o, 004 §登陆相关 根据经纬度获取所在城市).
    pub geocoder: GeocoderConfig,
    /// The operators (运营中心) of an API with several mini-programs (o2o, 004): each its own
    /// appid, WeChat login and WeChat Pay merchant. Empty for the others, which use `appid`,
    /// `wechat_login` and `wechat_pay` above; o2o uses only these (default: the sandbox operators
    /// 3 and 5 of the contract's examples).
    pub operators: Vec<OperatorConfig>,
    /// The API's address as its clients reach it (`https://api.example.com`; a path is kept):
    /// the start of the URLs it answers — community's page links (002 §4.1.1), charging's pay
    /// page (003 §6.1), and community's file URLs unless `files.public_base_url` is set. Unset:
    /// `http://` and the request's `Host`, right with no proxy in front; production requires an
    /// https one for community and charging ([`crate::api_support::PublicUrl`]); the other APIs
    /// refuse it when served (their answers carry no URLs of their own).
    pub public_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig::defaults("")
    }
}

impl ApiConfig {
    /// API `id`'s mini-programs and their merchants: its own (section `apis.{id}`, operator 0)
    /// when it has no operators, else each operator's (`apis.{id}.operators[{i}]`), in
    /// configuration order.
    pub fn mini_programs(&self, id: &str) -> Vec<MiniProgram<'_>> {
        if self.operators.is_empty() {
            let section = format!("apis.{id}");
            vec![MiniProgram { section, operator: 0, appid: &self.appid, login: &self.wechat_login, pay: &self.wechat_pay }]
        } else {
            self.operators
                .iter()
                .enumerate()
                .map(|(i, o)| MiniProgram { section: format!("apis.{id}.operators[{i}]"), operator: o.id, appid: &o.appid, login: &o.wechat_login, pay: &o.wechat_pay })
                .collect()
        }
    }

    /// The documented defaults of API `id`: heating 000 (2 h tokens, rotating refresh tokens,
    /// 100 requests per IP per 15 min), points 001 (2 h, the expired token refreshable for 7
    /// days), community 002 (1 h, 14 days), charging 003 (24 h, no refresh), o2o 004 (the
    /// document is silent: 7 days, no refresh). WeChat Pay v2 for community and charging, v3 for
    /// the others.
    pub fn defaults(id: &str) -> ApiConfig {
        let days = |n: u64| n * 24 * 3600;
        let (access_ttl_seconds, refresh, refresh_seconds) = match id {
            "heating" => (7200, RefreshStyle::Rotating, days(30)),
            "points" => (7200, RefreshStyle::ExpiredAccess, days(7)),
            "community" => (3600, RefreshStyle::ExpiredAccess, days(14)),
            "charging" => (86_400, RefreshStyle::None, 0),
            _ => (days(7), RefreshStyle::None, 0),
        };
        // Community's and charging's documents pay with WeChat Pay v2 (XML), the others with v3.
        let pay_version = match id {
            "community" | "charging" => PayVersion::V2,
            _ => PayVersion::V3,
        };
        ApiConfig {
            appid: format!("wx_sandbox_{}", if id.is_empty() { "app" } else { id }),
            wechat_login: WechatLoginConfig::default(),
            wechat_pay: WechatPayConfig { version: pay_version, ..WechatPayConfig::default() },
            tokens: TokenConfig { access_ttl_seconds, refresh, refresh_seconds },
            rate_limit: (id == "heating").then(RateLimitConfig::default),
            files: FilesConfig::default(),
            ocr: OcrConfig::default(),
            security_platform: SecurityPlatformConfig::default(),
            charger: crate::providers::charger::ChargerConfig::default(),
            geocoder: GeocoderConfig::default(),
            operators: if id == "o2o" { OperatorConfig::sandbox_pair() } else { Vec::new() },
            public_url: None,
        }
    }
}

/// One mini-program of an API and its merchant, as configured (see [`ApiConfig::mini_programs`]).
#[derive(Debug, Clone)]
pub struct MiniProgram<'a> {
    /// Where it is configured, for messages: `apis.heating`, `apis.o2o.operators[1]`.
    pub section: String,
    /// The operator id (0 for an API without operators).
    pub operator: i64,
    /// The appid.
    pub appid: &'a str,
    /// Its WeChat login.
    pub login: &'a WechatLoginConfig,
    /// Its WeChat Pay merchant.
    pub pay: &'a WechatPayConfig,
}

/// One operator (运营中心) of an API with several mini-programs (`[[apis.o2o.operators]]`,
/// 004): its mini-program and its WeChat Pay merchant. The appid a request names routes it to
/// its operator; it never authorises anything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OperatorConfig {
    /// The operator id (`oper_id` on the wire, the H5 page's `targetOperId`).
    pub id: i64,
    /// Its name, for logs and the banner.
    pub name: String,
    /// Its mini-program's appid.
    pub appid: String,
    /// WeChat login (code2Session) for that appid.
    pub wechat_login: WechatLoginConfig,
    /// Its WeChat Pay merchant (v3).
    pub wechat_pay: WechatPayConfig,
}

impl OperatorConfig {
    /// The sandbox operators of the contract's examples: 3 (the default mini-program, 蜀大侠火锅's
    /// operator) and 5 (茶颜小筑's), each with its own sandbox appid and merchant.
    pub fn sandbox_pair() -> Vec<OperatorConfig> {
        [(3, "运营中心3", "wx_sandbox_o2o_oper3", "1900000003"), (5, "运营中心5", "wx_sandbox_o2o_oper5", "1900000005")]
            .into_iter()
            .map(|(id, name, appid, mchid)| OperatorConfig {
                id,
                name: name.into(),
                appid: appid.into(),
                wechat_login: WechatLoginConfig::default(),
                wechat_pay: WechatPayConfig { mchid: mchid.into(), ..WechatPayConfig::default() },
            })
            .collect()
    }
}

/// How an API's access tokens live and are renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenConfig {
    /// Access-token lifetime, seconds (the documents' `expires_in`).
    pub access_ttl_seconds: u64,
    /// How a client gets a new access token.
    pub refresh: RefreshStyle,
    /// `rotating`: the refresh token's lifetime; `expired-access`: how long after its expiry an
    /// access token may still be exchanged (once). Seconds.
    pub refresh_seconds: u64,
}

impl Default for TokenConfig {
    fn default() -> TokenConfig {
        ApiConfig::defaults("").tokens
    }
}

impl TokenConfig {
    /// The access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_ttl_seconds)
    }

    /// The refresh window (see [`TokenConfig::refresh_seconds`]).
    pub fn refresh_window(&self) -> Duration {
        Duration::from_secs(self.refresh_seconds)
    }
}

/// The refresh styles the five documents use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefreshStyle {
    /// No refresh: log in again (charging).
    None,
    /// An opaque refresh token, exchanged for a new pair; a token used twice revokes its session
    /// (heating).
    Rotating,
    /// The expired access token itself, presented once within a grace window (points, community).
    ExpiredAccess,
}

/// WeChat login: sandbox openids, or code2Session at api.weixin.qq.com.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WechatLoginConfig {
    /// `sandbox` (default) or `real`.
    pub provider: ProviderKind,
    /// `https://api.weixin.qq.com` (tests point it at wiremock).
    pub base_url: String,
    /// The mini-program's AppSecret.
    #[serde(serialize_with = "skip_secret")]
    pub secret: Option<SecretString>,
}

impl Default for WechatLoginConfig {
    fn default() -> WechatLoginConfig {
        WechatLoginConfig { provider: ProviderKind::Sandbox, base_url: "https://api.weixin.qq.com".into(), secret: None }
    }
}

/// WeChat Pay (JSAPI), v3 or v2 (`version`). The sandbox generates its own merchant and platform
/// keys (v3) or API key (v2) at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WechatPayConfig {
    /// `sandbox` (default) or `real`.
    pub provider: ProviderKind,
    /// The protocol the merchant speaks: `v3` (JSON, RSA; heating, points, o2o) or `v2` (XML,
    /// MD5/HMAC-SHA256 signs; community and charging). Default: the API's (see
    /// [`ApiConfig::defaults`]).
    pub version: PayVersion,
    /// `https://api.mch.weixin.qq.com` (tests point it at wiremock).
    pub base_url: String,
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
    /// The public base URL notifies are sent to (`https://pay.example.com`); the API's notify
    /// path is appended. Default: `http://127.0.0.1:{port}`, right for the sandbox only — a real
    /// merchant must set an https URL WeChat can reach.
    pub notify_base_url: Option<String>,
    /// v2: the API key (API密钥, 32 characters, 商户平台→API安全), which signs every request,
    /// answer and notify and decrypts refund notifies. Not the APIv3 key (domain.md §2.1).
    #[serde(serialize_with = "skip_secret")]
    pub api_key: Option<SecretString>,
    /// v2: how requests are signed, `MD5` (default) or `HMAC-SHA256`; answers and notifies
    /// without a `sign_type` are checked the same way.
    pub sign_type: SignType,
    /// v2: the merchant API certificate, PEM (`apiclient_cert.pem`) — the file's path. Refunds
    /// (`/secapi/pay/refund`) need it and `client_key_file` for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// v2: the merchant API certificate's private key, PEM (`apiclient_key.pem`) — the file's
    /// path.
    pub client_key_file: Option<PathBuf>,
}

/// The WeChat Pay protocol of a merchant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayVersion {
    /// API v2: XML bodies signed with the API key (MD5 or HMAC-SHA256), refunds over mutual
    /// TLS (domain.md §2.1).
    V2,
    /// API v3: JSON bodies, RSA signatures, AES-GCM notify resources (domain.md §2.2).
    #[default]
    V3,
}

/// How WeChat Pay v2 signs (`sign_type`, domain.md §2.1), named as on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignType {
    /// `MD5`: uppercase hex MD5 of `k=v&…&key=API_KEY`.
    #[default]
    #[serde(rename = "MD5")]
    Md5,
    /// `HMAC-SHA256`: uppercase hex HMAC-SHA256 of the same string, keyed with the API key.
    #[serde(rename = "HMAC-SHA256")]
    HmacSha256,
}

impl SignType {
    /// The wire name, `MD5` or `HMAC-SHA256`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }

    /// The sign type WeChat writes as `s`; `None` for another.
    pub fn from_wire(s: &str) -> Option<SignType> {
        match s {
            "MD5" => Some(SignType::Md5),
            "HMAC-SHA256" => Some(SignType::HmacSha256),
            _ => None,
        }
    }
}

impl Default for WechatPayConfig {
    fn default() -> WechatPayConfig {
        WechatPayConfig {
            provider: ProviderKind::Sandbox,
            base_url: "https://api.mch.weixin.qq.com".into(),
            mchid: "1900000001".into(),
            merchant_serial_no: String::new(),
            merchant_private_key_file: None,
            apiv3_key: None,
            public_key_id: String::new(),
            public_key_file: None,
            notify_base_url: None,
            version: PayVersion::V3,
            api_key: None,
            sign_type: SignType::Md5,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

/// A per-IP request limit (heating 000 §7: 100 requests per 15 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Requests allowed per window and IP.
    pub requests: u32,
    /// The window, in seconds.
    pub window_seconds: u64,
}

impl Default for RateLimitConfig {
    fn default() -> RateLimitConfig {
        RateLimitConfig { requests: 100, window_seconds: 15 * 60 }
    }
}

/// Where files are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilesProvider {
    /// A directory on this machine (`local_dir`): fine for one instance or a shared volume.
    #[default]
    Local,
    /// An S3-compatible bucket (AWS S3, Aliyun OSS, MinIO, …), kept private.
    S3,
}

/// Private file storage (002 §2.3.1 face photos). Files are never public: clients load them
/// through `GET /files/{key}` on the API's port with a signed, expiring URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FilesConfig {
    /// `local` (default) or `s3`.
    pub provider: FilesProvider,
    /// `local`: the directory (created if missing). Default `data/files`.
    pub local_dir: PathBuf,
    /// `s3`: the endpoint (`https://oss-cn-hangzhou.aliyuncs.com`); empty: AWS's own. With
    /// `virtual_hosted_style` it must include the bucket (`https://BUCKET.oss-cn-hangzhou…`).
    pub endpoint: String,
    /// `s3`: the bucket (private: no public-read ACL or policy).
    pub bucket: String,
    /// `s3`: the region (`oss-cn-hangzhou`, `us-east-1`, …).
    pub region: String,
    /// `s3`: the access key id.
    pub access_key_id: String,
    /// `s3`: the secret access key.
    #[serde(serialize_with = "skip_secret")]
    pub secret_access_key: Option<SecretString>,
    /// `s3`: virtual-hosted-style requests (`BUCKET.endpoint/key`), which Aliyun OSS requires;
    /// false: path style (`endpoint/BUCKET/key`).
    pub virtual_hosted_style: bool,
    /// The public base URL file URLs start with (`https://api.example.com`); `/files/{key}` is
    /// appended. Default: the API's `public_url`, else `http://127.0.0.1:{port}`, right for
    /// development only.
    pub public_base_url: Option<String>,
    /// How long a signed file URL stays valid, seconds (default 3600).
    pub url_ttl_seconds: u64,
    /// The largest file accepted, bytes (default 5 MiB).
    pub max_bytes: usize,
}

impl Default for FilesConfig {
    fn default() -> FilesConfig {
        FilesConfig {
            provider: FilesProvider::Local,
            local_dir: PathBuf::from("data/files"),
            endpoint: String::new(),
            bucket: String::new(),
            region: String::new(),
            access_key_id: String::new(),
            secret_access_key: None,
            virtual_hosted_style: false,
            public_base_url: None,
            url_ttl_seconds: 3600,
            max_bytes: 5 * 1024 * 1024,
        }
    }
}

/// ID-card OCR (002 §2.3.2): the deterministic sandbox, or Aliyun market's 身份证识别
/// (`/rest/160601/ocr/ocr_idcard.json`, billed per call through an AppCode).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OcrConfig {
    /// `sandbox` (default) or `real`.
    pub provider: ProviderKind,
    /// `https://cardnumber.market.alicloudapi.com` (tests point it at wiremock).
    pub base_url: String,
    /// The Aliyun market AppCode.
    #[serde(serialize_with = "skip_secret")]
    pub appcode: Option<SecretString>,
}

impl Default for OcrConfig {
    fn default() -> OcrConfig {
        OcrConfig {
            provider: ProviderKind::Sandbox,
            base_url: "https://cardnumber.market.alicloudapi.com".into(),
            appcode: None,
        }
    }
}

/// The 安防平台 (002 §2.2): the sandbox platform kept in the database, or the real one over a
/// signed JSON adapter (see `providers::security_platform`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityPlatformConfig {
    /// `sandbox` (default) or `real`.
    pub provider: ProviderKind,
    /// The platform's base URL (`https://security.example.com`).
    pub base_url: String,
    /// Our application key there (`X-App-Key`).
    pub app_key: String,
    /// The secret requests are signed with (`X-Signature`).
    #[serde(serialize_with = "skip_secret")]
    pub app_secret: Option<SecretString>,
    /// Per-request timeout, seconds (default 5).
    pub timeout_seconds: u64,
}

impl Default for SecurityPlatformConfig {
    fn default() -> SecurityPlatformConfig {
        SecurityPlatformConfig {
            provider: ProviderKind::Sandbox,
            base_url: String::new(),
            app_key: String::new(),
            app_secret: None,
            timeout_seconds: 5,
        }
    }
}

/// Reverse geocoding (o2o, 004 §登陆相关 根据经纬度获取所在城市): the sandbox (the nearest
/// seeded county, `crate::areas::nearest_county`), or Tencent LBS's WebService
/// (`/ws/geocoder/v1/`, a key per application, optionally signed with its SK).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GeocoderConfig {
    /// `sandbox` (default) or `real`.
    pub provider: ProviderKind,
    /// `https://apis.map.qq.com` (tests point it at wiremock).
    pub base_url: String,
    /// The Tencent LBS key (`key`); required by `real`.
    #[serde(serialize_with = "skip_secret")]
    pub key: Option<SecretString>,
    /// The key's SK when the key is set to "signature verification" (`sig`); `None`: unsigned.
    #[serde(serialize_with = "skip_secret")]
    pub secret_key: Option<SecretString>,
    /// Per-request timeout, milliseconds (default 3000: the answer holds up a page load).
    pub timeout_ms: u64,
}

impl Default for GeocoderConfig {
    fn default() -> GeocoderConfig {
        GeocoderConfig {
            provider: ProviderKind::Sandbox,
            base_url: "https://apis.map.qq.com".into(),
            key: None,
            secret_key: None,
            timeout_ms: 3000,
        }
    }
}

fn skip_secret<S: serde::Serializer>(_: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

impl Config {
    /// Read the configuration: defaults, the TOML file (`explicit`, else `MPAPI_CONFIG`, else
    /// `mpapi.toml` when present), `MPAPI_…` variables, `DATABASE_URL`. `MPAPI_ENV=production`
    /// is `env = "production"`.
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
        let mut config: Config = figment.extract().context("reading the configuration")?;
        // A section in the file replaces the defaults field by field, but an API without one
        // still needs its documented defaults.
        for api in crate::apis::APIS {
            config.apis.entry(api.id.to_owned()).or_insert_with(|| ApiConfig::defaults(api.id));
        }
        Ok(config)
    }

    /// The log format `MPAPI_LOG_FORMAT` names (`text` or `json`; unset: text), for the commands
    /// that read no configuration file.
    pub fn log_format_from_env() -> Result<crate::logging::Format> {
        let figment = Figment::from(Serialized::default("log_format", crate::logging::Format::default()))
            .merge(Env::prefixed("MPAPI_").only(&["LOG_FORMAT"]));
        figment.extract_inner("log_format").context("reading MPAPI_LOG_FORMAT")
    }

    /// API `id`'s settings (its defaults when it has no section).
    pub fn api(&self, id: &str) -> ApiConfig {
        self.apis.get(id).cloned().unwrap_or_else(|| ApiConfig::defaults(id))
    }

    /// What makes this configuration unfit for production, for the APIs `serving`: sandbox
    /// providers (they hand out SMS codes and accept any login code), generated secrets (they
    /// would sit in the database beside the data they protect), real WeChat Pay without a public
    /// https notify URL, community or charging without an https `public_url` (their answers
    /// carry links). Empty when fit.
    pub fn production_problems(&self, serving: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, secret) in [("jwt", &self.secrets.jwt), ("pii_key", &self.secrets.pii_key), ("pepper", &self.secrets.pepper)] {
            if secret.is_none() {
                problems.push(format!("secrets.{name} is not set (MPAPI_SECRETS__{})", name.to_uppercase()));
            }
        }
        if self.sms.provider == ProviderKind::Sandbox {
            problems.push("sms.provider is the sandbox".into());
        }
        for id in serving {
            let api = self.api(id);
            for MiniProgram { section, appid, login, pay, .. } in api.mini_programs(id) {
                if login.provider == ProviderKind::Sandbox {
                    problems.push(format!("{section}.wechat_login.provider is the sandbox"));
                }
                if pay.provider == ProviderKind::Sandbox {
                    problems.push(format!("{section}.wechat_pay.provider is the sandbox"));
                } else {
                    if !pay.notify_base_url.as_deref().is_some_and(|u| u.starts_with("https://")) {
                        problems.push(format!("{section}.wechat_pay.notify_base_url must be a public https URL"));
                    }
                    if pay.mchid == WechatPayConfig::default().mchid {
                        problems.push(format!("{section}.wechat_pay.mchid is not set (the default is WeChat's sample merchant)"));
                    }
                    let v2_key = pay.api_key.as_ref();
                    if pay.version == PayVersion::V2 && v2_key.is_none_or(|key| key.expose_secret().is_empty()) {
                        problems.push(format!("{section}.wechat_pay.api_key is not set (API v2 key)"));
                    }
                }
                if appid.starts_with("wx_sandbox_") {
                    problems.push(format!("{section}.appid is not set"));
                }
            }
            if matches!(*id, "community" | "charging") && !crate::api_support::PublicUrl::new("", api.public_url.as_deref()).is_ok_and(|url| url.is_https()) {
                problems.push(format!("apis.{id}.public_url must be a public https URL (its answers carry links)"));
            }
            if *id == "community" {
                if api.ocr.provider == ProviderKind::Sandbox {
                    problems.push(format!("apis.{id}.ocr.provider is the sandbox"));
                }
                if api.security_platform.provider == ProviderKind::Sandbox {
                    problems.push(format!("apis.{id}.security_platform.provider is the sandbox"));
                }
                // As the start builds it: the files' own base, else the API's `public_url` as parsed.
                let public_url = crate::api_support::PublicUrl::new("", api.public_url.as_deref()).ok();
                let base = api.files.public_base_url.as_deref().or(public_url.as_ref().and_then(|url| url.configured()));
                if !base.is_some_and(|u| u.starts_with("https://")) {
                    let field = format!("apis.{id}.files.public_base_url");
                    problems.push(format!("{field} must be a public https URL"));
                }
            }
            if *id == "o2o" && api.geocoder.provider == ProviderKind::Sandbox {
                problems.push(format!("apis.{id}.geocoder.provider is the sandbox"));
            }
            if *id == "charging" && api.charger.provider == ProviderKind::Sandbox {
                problems.push(format!("apis.{id}.charger.provider is the simulator"));
            }
        }
        if self.demo_data == Some(true) {
            problems.push("demo_data is on (the demo owners' ID numbers are public)".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_format_is_text_unless_set_to_json() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mpapi.toml");
        std::fs::write(&file, "").unwrap();
        assert_eq!(Config::default().log_format, crate::logging::Format::Text);
        if std::env::var_os("MPAPI_LOG_FORMAT").is_none() {
            assert_eq!(Config::load(Some(&file)).unwrap().log_format, crate::logging::Format::Text);
            assert_eq!(Config::log_format_from_env().unwrap(), crate::logging::Format::Text);
            std::fs::write(&file, "log_format = \"json\"\n").unwrap();
            assert_eq!(Config::load(Some(&file)).unwrap().log_format, crate::logging::Format::Json);
            std::fs::write(&file, "log_format = \"xml\"\n").unwrap();
            let error = format!("{:#}", Config::load(Some(&file)).unwrap_err());
            assert!(error.contains("log_format") || error.contains("xml"), "{error}");
        }
    }

    #[test]
    fn a_config_file_overrides_defaults_and_secrets_stay_out_of_debug() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mpapi.toml");
        std::fs::write(
            &file,
            "database_url = \"sqlite::memory:\"\n[secrets]\njwt = \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n\
             [sms]\nprovider = \"real\"\naccess_key_secret = \"very-secret\"\n\
             [apis.heating]\nappid = \"wx1234567890abcdef\"\n[apis.heating.rate_limit]\nrequests = 7\n\
             [apis.points.tokens]\naccess_ttl_seconds = 60\n",
        )
        .unwrap();
        let config = Config::load(Some(&file)).unwrap();
        if std::env::var_os("DATABASE_URL").is_none() {
            // (The environment wins over the file, as documented.)
            assert_eq!(config.database_url, "sqlite::memory:");
        }
        assert_eq!(config.sms.provider, ProviderKind::Real);
        let heating = config.api("heating");
        assert_eq!(heating.appid, "wx1234567890abcdef");
        assert_eq!(heating.rate_limit.map(|l| (l.requests, l.window_seconds)), Some((7, 900)));
        assert_eq!(heating.tokens.refresh, RefreshStyle::Rotating);
        assert_eq!(heating.wechat_pay.provider, ProviderKind::Sandbox);
        let points = config.api("points");
        assert_eq!((points.tokens.access_ttl_seconds, points.tokens.refresh), (60, RefreshStyle::ExpiredAccess));
        assert_eq!(points.tokens.refresh_seconds, 7 * 24 * 3600, "the rest of the section keeps its defaults");
        assert_eq!(config.api("community").tokens.access_ttl_seconds, 3600);
        assert!(config.api("charging").rate_limit.is_none());
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret") && !debug.contains("00112233"), "{debug}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }

    #[test]
    fn production_refuses_what_only_development_may_use() {
        let config = Config::default();
        let problems = config.production_problems(&["heating"]).join("\n");
        for expected in ["secrets.jwt", "secrets.pii_key", "secrets.pepper", "sms.provider", "apis.heating.wechat_login", "apis.heating.wechat_pay", "apis.heating.appid"] {
            assert!(problems.contains(expected), "{expected} missing from:\n{problems}");
        }
        let mut config = Config::default();
        let secret = || Some(SecretString::from("00".repeat(32)));
        config.secrets = Secrets { jwt: secret(), pii_key: secret(), pepper: secret() };
        config.sms.provider = ProviderKind::Real;
        let heating = config.apis.get_mut("heating").unwrap();
        heating.appid = "wx1234567890abcdef".into();
        heating.wechat_login.provider = ProviderKind::Real;
        heating.wechat_pay.provider = ProviderKind::Real;
        heating.wechat_pay.mchid = "1230000109".into();
        heating.wechat_pay.notify_base_url = Some("http://10.0.0.1".into());
        assert_eq!(config.production_problems(&["heating"]), vec!["apis.heating.wechat_pay.notify_base_url must be a public https URL"]);
        config.apis.get_mut("heating").unwrap().wechat_pay.notify_base_url = Some("https://pay.example.com".into());
        assert!(config.production_problems(&["heating"]).is_empty());
        assert!(!config.production_problems(&["heating", "points"]).is_empty(), "points still has sandbox providers");
        config.apis.get_mut("heating").unwrap().wechat_pay.mchid = WechatPayConfig::default().mchid;
        assert_eq!(config.production_problems(&["heating"]).len(), 1, "WeChat's sample merchant");
        let o2o = Config::default().production_problems(&["o2o"]).join("\n");
        assert!(o2o.contains("apis.o2o.geocoder.provider is the sandbox"), "{o2o}");
        let heating = Config::default().production_problems(&["heating"]).join("\n");
        assert!(!heating.contains("geocoder"), "only o2o geocodes: {heating}");
        assert!(!heating.contains("public_url") && !o2o.contains("public_url"), "only community's and charging's answers carry links: {heating}");
        let charging = Config::default().production_problems(&["charging"]).join("\n");
        assert!(charging.contains("apis.charging.public_url must be a public https URL"), "{charging}");
        let mut config = Config::default();
        for (url, fit) in [("http://ev.example.com", false), ("https://ev.example.com/?a=1", false), ("HTTPS://ev.example.com", true)] {
            config.apis.get_mut("charging").unwrap().public_url = Some(url.into());
            assert_eq!(!config.production_problems(&["charging"]).join("\n").contains("public_url"), fit, "{url}");
        }
        // o2o's merchants are its operators', each checked under its own section.
        assert!(o2o.contains("apis.o2o.operators[0].wechat_pay.provider is the sandbox"), "{o2o}");
        assert!(o2o.contains("apis.o2o.operators[1].appid is not set"), "{o2o}");
        assert!(!o2o.contains("apis.o2o.wechat_pay"), "o2o's own merchant is unused: {o2o}");
    }

    #[test]
    fn o2o_has_two_sandbox_operators_with_their_own_appids_and_merchants() {
        let o2o = ApiConfig::defaults("o2o");
        let ids: Vec<i64> = o2o.operators.iter().map(|o| o.id).collect();
        assert_eq!(ids, [3, 5]);
        assert_ne!(o2o.operators[0].appid, o2o.operators[1].appid);
        assert_ne!(o2o.operators[0].wechat_pay.mchid, o2o.operators[1].wechat_pay.mchid);
        assert!(ApiConfig::defaults("heating").operators.is_empty());
    }
}
