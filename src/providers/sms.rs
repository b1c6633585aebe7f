//! SMS verification codes: the sandbox outbox (default) and Aliyun dysmsapi `SendSms` with RPC
//! signature V1 (domain.md §6).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::{ProviderError, SmsProvider};
use crate::config::SmsConfig;
use crate::storage::sandbox::SmsRow;
use crate::storage::{Db, StorageError};

/// One message the sandbox "sent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The sending API's id (`heating`, …).
    pub api: String,
    /// The phone number (11 digits).
    pub phone: String,
    /// The verification code.
    pub code: String,
    /// What the code is for (the API's word).
    pub purpose: String,
    /// When it was sent (UTC, to the millisecond).
    pub sent_at: DateTime<Utc>,
}

/// The sandbox SMS provider: keeps the most recent messages (newest first) for
/// `GET /_sandbox/sms` and logs each code. The outbox is a table (`sandbox_sms`), not process
/// memory, so a code sent through one instance shows in the outbox of every instance over the
/// same database. The codes are not secrets here: showing them is the sandbox's purpose.
pub struct SandboxSms {
    db: Db,
    capacity: usize,
}

impl fmt::Debug for SandboxSms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxSms").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl SandboxSms {
    /// How many messages the outbox keeps by default (older ones are deleted as new ones come).
    pub const DEFAULT_CAPACITY: usize = 1000;

    /// The outbox in `db`, keeping [`SandboxSms::DEFAULT_CAPACITY`] messages.
    pub fn new(db: Db) -> SandboxSms {
        SandboxSms::with_capacity(db, SandboxSms::DEFAULT_CAPACITY)
    }

    /// The outbox in `db`, keeping at most `capacity` messages (at least 1) of all APIs and
    /// phones together.
    pub fn with_capacity(db: Db, capacity: usize) -> SandboxSms {
        SandboxSms { db, capacity: capacity.max(1) }
    }

    /// The messages sent to `phone`, newest first; only those of `api` when given. A storage
    /// failure is a [`StorageError`].
    pub async fn entries(&self, api: Option<&str>, phone: &str) -> Result<Vec<OutboxEntry>, StorageError> {
        let rows = self.db.sandbox_sms().to_phone(api, phone).await?;
        Ok(rows
            .into_iter()
            .map(|row| OutboxEntry {
                api: row.api,
                phone: row.phone,
                code: row.code,
                purpose: row.purpose,
                sent_at: DateTime::from_timestamp_millis(row.sent_at).unwrap_or_default(),
            })
            .collect())
    }
}

#[async_trait]
impl SmsProvider for SandboxSms {
    async fn send_code(&self, api: &'static str, phone: &str, code: &str, purpose: &str, ttl_seconds: u32) -> Result<(), ProviderError> {
        // The sandbox code is no secret (showing it is the point); the phone is still masked.
        let masked = crate::pii::mask_phone(phone);
        let message = SmsRow { api: api.to_owned(), phone: phone.to_owned(), code: code.to_owned(), purpose: purpose.to_owned(), sent_at: Utc::now().timestamp_millis() };
        let capacity = u64::try_from(self.capacity).unwrap_or(u64::MAX);
        // A message the outbox cannot show was not "sent": the caller answers it as an SMS failure.
        self.db
            .sandbox_sms()
            .push(&message, capacity)
            .await
            .map_err(|e| ProviderError::Transport { provider: "sandbox-sms", detail: e.to_string() })?;
        tracing::info!(api, phone = masked, code, purpose, ttl_seconds, "sandbox SMS sent (full number: GET /_sandbox/sms)");
        Ok(())
    }
}

const ALIYUN: &str = "aliyun-sms";

/// Percent-encode per Aliyun's RPC rules (RFC 3986): keep `A-Za-z0-9-_.~`, encode every other
/// UTF-8 byte as `%XX` (so space is `%20`, `*` is `%2A`).
pub fn aliyun_percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query: parameters sorted by name, `encode(name)=encode(value)` joined by `&`.
pub fn aliyun_canonical_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", aliyun_percent_encode(k), aliyun_percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signature V1: base64(HMAC-SHA1(secret + "&", `METHOD&%2F&` + encode(canonical query))).
pub fn aliyun_signature(method: &str, canonical_query: &str, access_key_secret: &str) -> String {
    let string_to_sign = format!("{method}&%2F&{}", aliyun_percent_encode(canonical_query));
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, format!("{access_key_secret}&").as_bytes());
    B64.encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

/// The real SMS provider: Aliyun dysmsapi `SendSms` (Version 2017-05-25): a template per code
/// purpose (or one for all), each with a `${code}` variable.
pub struct AliyunSms {
    endpoint: String,
    access_key_id: String,
    access_key_secret: SecretString,
    sign_name: String,
    template_code: String,
    templates: BTreeMap<String, String>,
    http: reqwest::Client,
}

impl fmt::Debug for AliyunSms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliyunSms")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("sign_name", &self.sign_name)
            .field("template_code", &self.template_code)
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendSmsAnswer {
    code: String,
    #[serde(default)]
    message: String,
}

impl AliyunSms {
    /// Per-request timeout: a login should not hang on a slow SMS gateway.
    pub const TIMEOUT: Duration = Duration::from_secs(10);

    /// Build from configuration; a missing access key, secret, sign name or default template is
    /// [`ProviderError::Config`] (purposes without a template of their own use the default).
    pub fn new(config: &SmsConfig) -> Result<AliyunSms, ProviderError> {
        let missing = |what: &str| ProviderError::Config { provider: ALIYUN, detail: format!("sms.{what} is not set") };
        let secret = config.access_key_secret.clone().filter(|s| !s.expose_secret().is_empty());
        let access_key_secret = secret.ok_or_else(|| missing("access_key_secret"))?;
        for (name, value) in [
            ("access_key_id", &config.access_key_id),
            ("sign_name", &config.sign_name),
            ("template_code", &config.template_code),
            ("endpoint", &config.endpoint),
        ] {
            if value.trim().is_empty() {
                return Err(missing(name));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(AliyunSms::TIMEOUT)
            .build()
            .map_err(|e| ProviderError::Config { provider: ALIYUN, detail: format!("HTTP client: {e}") })?;
        Ok(AliyunSms {
            endpoint: config.endpoint.trim_end_matches('/').to_string(),
            access_key_id: config.access_key_id.clone(),
            access_key_secret,
            sign_name: config.sign_name.clone(),
            template_code: config.template_code.clone(),
            templates: config.templates.clone(),
            http,
        })
    }

    /// The template for `purpose`: its own, else the default.
    fn template(&self, purpose: &str) -> &str {
        self.templates.get(purpose).map_or(&self.template_code, String::as_str)
    }

    /// The signed request URL for sending `code` to `phone` for `purpose`, with the given nonce
    /// and time.
    fn url(&self, phone: &str, code: &str, purpose: &str, nonce: &str, now: DateTime<Utc>) -> String {
        let template_param = serde_json::json!({ "code": code }).to_string();
        let params: BTreeMap<String, String> = [
            ("AccessKeyId", self.access_key_id.as_str()),
            ("Action", "SendSms"),
            ("Format", "JSON"),
            ("PhoneNumbers", phone),
            ("RegionId", "cn-hangzhou"),
            ("SignName", &self.sign_name),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", self.template(purpose)),
            ("TemplateParam", &template_param),
            ("Timestamp", &now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ("Version", "2017-05-25"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let query = aliyun_canonical_query(&params);
        let signature = aliyun_signature("GET", &query, self.access_key_secret.expose_secret());
        format!("{}/?Signature={}&{query}", self.endpoint, aliyun_percent_encode(&signature))
    }
}

fn transport(detail: impl Into<String>) -> ProviderError {
    ProviderError::Transport { provider: ALIYUN, detail: detail.into() }
}

#[async_trait]
impl SmsProvider for AliyunSms {
    async fn send_code(&self, _api: &'static str, phone: &str, code: &str, purpose: &str, _ttl_seconds: u32) -> Result<(), ProviderError> {
        let nonce = crate::random::nonce_str();
        let url = self.url(phone, code, purpose, &nonce, Utc::now());
        // without_url: the URL carries the AccessKeyId and signature, which stay out of logs.
        let response = super::send(ALIYUN, self.http.get(url)).await.map_err(|e| transport(e.without_url().to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| transport(e.without_url().to_string()))?;
        if status.is_server_error() {
            return Err(transport(format!("HTTP {status}")));
        }
        match serde_json::from_str::<SendSmsAnswer>(&text) {
            Ok(answer) if answer.code == "OK" && status.is_success() => Ok(()),
            Ok(answer) if answer.code != "OK" => {
                Err(ProviderError::Vendor { provider: ALIYUN, code: answer.code, message: answer.message })
            }
            _ => Err(transport(format!("HTTP {status}, unreadable answer"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_follows_aliyun_rules() {
        assert_eq!(aliyun_percent_encode("a b*c~d-_.e"), "a%20b%2Ac~d-_.e");
        assert_eq!(aliyun_percent_encode("{\"code\":\"1\"}"), "%7B%22code%22%3A%221%22%7D");
        assert_eq!(aliyun_percent_encode("阿"), "%E9%98%BF");
        assert_eq!(aliyun_percent_encode("+/="), "%2B%2F%3D");
    }

    /// Aliyun's documented SendSms example (AccessKeySecret `testSecret`), as used by the
    /// Aliyun SDK tests: the signature is `zJDF+Lrzhj/ThnlvIToysFRq6t4=`.
    #[test]
    fn signature_matches_the_documented_example() {
        let params: BTreeMap<String, String> = [
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let query = aliyun_canonical_query(&params);
        assert!(query.starts_with("AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&"));
        assert!(query.contains("&TemplateParam=%7B%22customer%22%3A%22test%22%7D&Timestamp=2017-07-12T02%3A42%3A19Z&"));
        assert_eq!(aliyun_signature("GET", &query, "testSecret"), "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
        assert_ne!(aliyun_signature("GET", &query, "otherSecret"), "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
    }

    #[tokio::test]
    async fn sandbox_outbox_is_newest_first_per_api_and_bounded() {
        let sms = SandboxSms::with_capacity(Db::connect("sqlite::memory:").await.expect("a database"), 3);
        sms.send_code("heating", "13800000000", "111111", "login", 300).await.expect("sent");
        sms.send_code("points", "13800000000", "222222", "register", 300).await.expect("sent");
        sms.send_code("heating", "13800000000", "333333", "reset_password", 300).await.expect("sent");
        let codes = async |api, phone| sms.entries(api, phone).await.expect("read").into_iter().map(|e| e.code).collect::<Vec<_>>();
        assert_eq!(codes(Some("heating"), "13800000000").await, ["333333", "111111"]);
        assert_eq!(codes(None, "13800000000").await, ["333333", "222222", "111111"]);
        assert!(codes(None, "13900000000").await.is_empty());
        sms.send_code("heating", "13900000000", "444444", "login", 300).await.expect("sent");
        assert_eq!(codes(None, "13800000000").await, ["333333", "222222"], "the oldest is dropped");
        let newest = &sms.entries(None, "13900000000").await.expect("read")[0];
        assert_eq!((newest.api.as_str(), newest.purpose.as_str()), ("heating", "login"));
        assert!((Utc::now() - newest.sent_at).num_seconds().abs() < 5);
    }

    /// Two providers over one database (two instances) show one outbox.
    #[tokio::test]
    async fn sandbox_outbox_is_shared_through_the_database() {
        let dir = tempfile::tempdir().expect("a directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("sms.db").display());
        let (a, b) = (Db::connect(&url).await.expect("a database"), Db::connect(&url).await.expect("again"));
        let (first, second) = (SandboxSms::new(a), SandboxSms::new(b));
        first.send_code("o2o", "13800000000", "123456", "login", 300).await.expect("sent");
        second.send_code("o2o", "13800000000", "654321", "login", 300).await.expect("sent");
        for sms in [&first, &second] {
            let codes: Vec<_> = sms.entries(Some("o2o"), "13800000000").await.expect("read").into_iter().map(|e| e.code).collect();
            assert_eq!(codes, ["654321", "123456"]);
        }
    }

    #[test]
    fn aliyun_needs_its_configuration() {
        let config = SmsConfig {
            access_key_id: "id".into(),
            access_key_secret: Some("secret".into()),
            sign_name: "sign".into(),
            template_code: "SMS_1".into(),
            ..SmsConfig::default()
        };
        let sms = AliyunSms::new(&config).expect("ok");
        assert_eq!(sms.template("login"), "SMS_1");
        let per_purpose = SmsConfig { templates: [("yezhu".to_owned(), "SMS_2".to_owned())].into(), ..config.clone() };
        let sms = AliyunSms::new(&per_purpose).expect("ok");
        assert_eq!((sms.template("yezhu"), sms.template("login")), ("SMS_2", "SMS_1"));
        for broken in [
            SmsConfig { access_key_secret: None, ..config.clone() },
            SmsConfig { access_key_secret: Some("".into()), ..config.clone() },
            SmsConfig { access_key_id: "".into(), ..config.clone() },
            SmsConfig { sign_name: "".into(), ..config.clone() },
            SmsConfig { template_code: "".into(), ..config.clone() },
        ] {
            assert!(matches!(AliyunSms::new(&broken), Err(ProviderError::Config { .. })));
        }
        let debug = format!("{:?}", AliyunSms::new(&config).expect("ok"));
        assert!(!debug.contains("secret"));
    }
}
