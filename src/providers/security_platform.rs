//! The 安防平台 (public-security / smart-community platform, 002 §2.2): a sandbox platform kept in
//! the database, and a signed generic JSON adapter for the real one (which has no public spec).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::ProviderError;
use crate::config::{ProviderKind, SecurityPlatformConfig};
use crate::pii::Vault;
use crate::storage::security_platform::{BindingRow, HouseNumbers, PersonRow};
use crate::storage::{Db, StorageError};

/// A house as the platform knows it: by numbers, not by our ids (002 §2.3.1 names the same five
/// fields).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HouseAddress {
    /// 小区唯一标识 (`"1"` for 晨曦家园).
    pub community_identifier: String,
    /// 楼号.
    pub building_number: i64,
    /// 单元号.
    pub unit_number: i64,
    /// 楼层号.
    pub floor_number: i64,
    /// 房屋号 (`101`).
    pub house_number: i64,
}

impl HouseAddress {
    fn numbers(&self) -> HouseNumbers {
        (
            self.community_identifier.clone(),
            [
                self.building_number,
                self.unit_number,
                self.floor_number,
                self.house_number,
            ],
        )
    }

    fn from_numbers((community_identifier, [building, unit, floor, house]): HouseNumbers) -> Self {
        HouseAddress {
            community_identifier,
            building_number: building,
            unit_number: unit,
            floor_number: floor,
            house_number: house,
        }
    }
}

/// A person's tie to a house on the platform; the values are 002 前言's Chinese enumerations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformBinding {
    /// The house.
    pub house: HouseAddress,
    /// 居民角色: `业主`, `家属`, `租客`, `丈夫`, … `其他`.
    pub role: String,
    /// 房屋用途: `住宅`, `生产`, `经营`, … `其他`.
    pub house_use: String,
    /// 房屋性质: `私有`, `公有`, `其他`.
    pub xingzhi: String,
    /// 房屋状态: `自用`, `闲置`, `借用`, … `其他`.
    pub status: String,
    /// 住户类型: `业主`, `租户`, `其他`.
    pub zhuhu_type: String,
}

/// A resident the platform knows (002 §2.2.1: what the auto-bind copies).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformPerson {
    /// Name.
    pub name: String,
    /// ID number, 18 characters as the platform holds it (validate before storing). `Debug`
    /// masks it.
    pub idcard: String,
    /// Phone, 11 digits.
    pub phone: String,
    /// `男` or `女`.
    pub sex: String,
    /// Nation (`汉`).
    pub nation: String,
    /// Birthday, `YYYYMMDD`.
    pub birth: Option<String>,
    /// Address.
    pub address: String,
    /// Their houses in the community asked about.
    pub bindings: Vec<PlatformBinding>,
}

impl fmt::Debug for PlatformPerson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformPerson")
            .field("name", &self.name)
            .field("idcard", &crate::pii::mask_id_number(&self.idcard))
            .field("phone", &crate::pii::mask_phone(&self.phone))
            .field("bindings", &self.bindings)
            .finish_non_exhaustive()
    }
}

/// The owner of a house (002 §2.2.2.4 `data`: `people_phone`, `people_house_use`,
/// `people_house_xingzhi`, `people_house_status`, `people_house_role`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformOwner {
    /// The owner's name.
    pub name: String,
    /// The owner's phone, 11 digits (show it masked until the owner's code is verified,
    /// 002 §2.2.3).
    pub phone: String,
    /// 房屋用途.
    pub house_use: String,
    /// 房屋性质.
    pub xingzhi: String,
    /// 房屋状态.
    pub status: String,
    /// 居民角色 (`业主`).
    pub role: String,
}

/// The 安防平台. Every failure — unreachable, slow, an error answer, the sandbox switched to
/// failing — is a [`ProviderError`], answered as 002 §2.2.1.4 example 4 ("安防平台接口出现故障").
#[async_trait]
pub trait SecurityPlatform: Send + Sync + 'static {
    /// 002 §2.2.1: the person whose phone is `phone` with their bindings in community
    /// `community_identifier`; `None` (example 3, code "2") when the platform has nobody with
    /// that phone there.
    async fn person_by_phone(
        &self,
        community_identifier: &str,
        phone: &str,
    ) -> Result<Option<PlatformPerson>, ProviderError>;

    /// 002 §2.2.2: the owner of `address`; `None` (example 2, code "2") when it has none.
    async fn owner_of(
        &self,
        address: &HouseAddress,
    ) -> Result<Option<PlatformOwner>, ProviderError>;
}

/// The platform an API uses, and the sandbox's handle when it is the sandbox.
pub type Selected = (Arc<dyn SecurityPlatform>, Option<Arc<SandboxSecurity>>);

/// The platform `config` selects, with the sandbox's handle when it is the sandbox (for the
/// `/_sandbox/security` route; seed it with [`seed`]). The real one needs its base URL, app key
/// and secret.
pub fn from_config(
    config: &SecurityPlatformConfig,
    db: Db,
    vault: Arc<Vault>,
) -> anyhow::Result<Selected> {
    Ok(match config.provider {
        ProviderKind::Sandbox => {
            let sandbox = Arc::new(SandboxSecurity::new(db, vault));
            (sandbox.clone(), Some(sandbox))
        }
        ProviderKind::Real => {
            let real = HttpSecurityPlatform::new(config)
                .map_err(|e| anyhow::anyhow!(e).context("security_platform"))?;
            (Arc::new(real), None)
        }
    })
}

// ---------------------------------------------------------------- sandbox

const SANDBOX: &str = "sandbox-security-platform";

/// What the sandbox answers while switched to failing (002 §2.2.1.4 example 4).
pub const SANDBOX_FAULT: &str = "安防平台接口出现故障";

/// The blind-index domain of the sandbox platform's ID numbers.
const IDCARD_DOMAIN: &str = "sandbox_platform.idcard";

fn idcard_context(person_id: &str) -> String {
    format!("sandbox_platform_person.idcard:{person_id}")
}

/// The sandbox platform: people and bindings in the database (tables `sandbox_platform_*`, so
/// every instance sees the same platform), ID numbers sealed by the [`Vault`]. While switched to
/// failing (`POST /_sandbox/security?fail=true`) every call is
/// [`ProviderError::Transport`] with [`SANDBOX_FAULT`].
#[derive(Debug, Clone)]
pub struct SandboxSecurity {
    db: Db,
    vault: Arc<Vault>,
}

fn storage_error(error: StorageError) -> ProviderError {
    ProviderError::Transport {
        provider: SANDBOX,
        detail: error.to_string(),
    }
}

impl SandboxSecurity {
    /// The platform in `db`.
    pub fn new(db: Db, vault: Arc<Vault>) -> SandboxSecurity {
        SandboxSecurity { db, vault }
    }

    /// Whether the platform is switched to failing.
    pub async fn fault(&self) -> Result<bool, StorageError> {
        self.db.sandbox_platform().fault().await
    }

    /// Switch the platform to failing or back, at `now_ms`.
    pub async fn set_fault(&self, fault: bool, now_ms: i64) -> Result<(), StorageError> {
        self.db.sandbox_platform().set_fault(fault, now_ms).await
    }

    async fn answering(&self) -> Result<(), ProviderError> {
        match self.fault().await.map_err(storage_error)? {
            true => Err(ProviderError::Transport {
                provider: SANDBOX,
                detail: SANDBOX_FAULT.into(),
            }),
            false => Ok(()),
        }
    }
}

fn binding_of(row: BindingRow) -> PlatformBinding {
    PlatformBinding {
        house: HouseAddress::from_numbers(row.house),
        role: row.role,
        house_use: row.house_use,
        xingzhi: row.xingzhi,
        status: row.status,
        zhuhu_type: row.zhuhu_type,
    }
}

#[async_trait]
impl SecurityPlatform for SandboxSecurity {
    async fn person_by_phone(
        &self,
        community_identifier: &str,
        phone: &str,
    ) -> Result<Option<PlatformPerson>, ProviderError> {
        self.answering().await?;
        let store = self.db.sandbox_platform();
        let Some(row) = store
            .person_by_phone(community_identifier, phone)
            .await
            .map_err(storage_error)?
        else {
            return Ok(None);
        };
        let idcard = self
            .vault
            .decrypt(&row.idcard_cipher, &idcard_context(&row.id))
            .map_err(|e| ProviderError::Transport {
                provider: SANDBOX,
                detail: format!("person {}: {e}", row.id),
            })?;
        Ok(Some(PlatformPerson {
            name: row.name,
            idcard,
            phone: row.phone,
            sex: row.sex,
            nation: row.nation,
            birth: row.birth,
            address: row.address,
            bindings: row.bindings.into_iter().map(binding_of).collect(),
        }))
    }

    async fn owner_of(
        &self,
        address: &HouseAddress,
    ) -> Result<Option<PlatformOwner>, ProviderError> {
        self.answering().await?;
        let owner = self
            .db
            .sandbox_platform()
            .owner_of(&address.numbers())
            .await
            .map_err(storage_error)?;
        Ok(owner.map(|o| PlatformOwner {
            name: o.name,
            phone: o.phone,
            house_use: o.binding.house_use,
            xingzhi: o.binding.xingzhi,
            status: o.binding.status,
            role: o.binding.role,
        }))
    }
}

/// A person the sandbox platform is seeded with, owner of one house in community `"1"`.
struct SeedPerson {
    id: &'static str,
    name: &'static str,
    idcard: &'static str,
    phone: &'static str,
    sex: &'static str,
    address: &'static str,
    /// The house owned, as [building, unit, floor, house] in 晨曦家园.
    house: [i64; 4],
}

/// The sandbox platform's people, fictional: 王建国's number is the one 002's digest suggests,
/// 李秀英's is made up (Beijing 朝阳 110105, 1988-07-07, female). House 102 (`[1, 1, 1, 102]`)
/// has no owner.
const SEED_PEOPLE: [SeedPerson; 2] = [
    SeedPerson {
        id: "sp_wangjianguo",
        name: "王建国",
        idcard: "130302198506122131",
        phone: "17600381130",
        sex: "男",
        address: "河北省秦皇岛市海港区晨曦家园1栋1单元101号",
        house: [1, 1, 1, 101],
    },
    SeedPerson {
        id: "sp_lixiuying",
        name: "李秀英",
        idcard: "110105198807070245",
        phone: "13900000001",
        sex: "女",
        address: "北京市朝阳区示例路1号",
        house: [1, 1, 2, 201],
    },
];

/// Seed the sandbox platform once per database (marker `security_platform.demo`): 王建国
/// (phone 17600381130) owns 晨曦家园 house {"1", 1, 1, 1, 101}; 李秀英 (13900000001, the phone
/// that auto-binds, 002 §2.2.1 example 1) owns {"1", 1, 1, 2, 201}; nobody owns
/// {"1", 1, 1, 1, 102}. Every binding is 业主 / 住宅 / 私有 / 自用 / 业主. True when written now.
pub async fn seed(db: &Db, vault: &Vault) -> Result<bool, StorageError> {
    let people: Vec<PersonRow> = SEED_PEOPLE
        .iter()
        .map(|p| PersonRow {
            id: p.id.to_owned(),
            name: p.name.to_owned(),
            idcard_cipher: vault.encrypt(p.idcard, &idcard_context(p.id)),
            idcard_index: vault.digest(IDCARD_DOMAIN, p.idcard),
            phone: p.phone.to_owned(),
            sex: p.sex.to_owned(),
            nation: "汉".to_owned(),
            birth: Some(p.idcard[6..14].to_owned()),
            address: p.address.to_owned(),
            bindings: vec![BindingRow {
                house: ("1".to_owned(), p.house),
                role: "业主".to_owned(),
                house_use: "住宅".to_owned(),
                xingzhi: "私有".to_owned(),
                status: "自用".to_owned(),
                zhuhu_type: "业主".to_owned(),
            }],
        })
        .collect();
    db.sandbox_platform()
        .seed(&people, chrono::Utc::now().timestamp_millis())
        .await
}

// ---------------------------------------------------------------- real

const PLATFORM: &str = "security-platform";

/// The real platform over a generic signed JSON adapter (no public spec exists; a gateway in
/// front of the vendor's system implements it):
///
/// - `POST {base_url}/api/people/by-phone` `{"community_identifier", "phone"}` → `data`: a
///   [`PlatformPerson`] in its serde form (bindings as `{"house": {…}, "role", …}`) or `null`;
/// - `POST {base_url}/api/houses/owner` `{"community_identifier", "building_number",
///   "unit_number", "floor_number", "house_number"}` → `data`: a [`PlatformOwner`] or `null`.
///
/// Every request carries `X-App-Key`, `X-Timestamp` (unix seconds), `X-Nonce` (32 hex) and
/// `X-Signature` = hex HMAC-SHA256(app_secret, `"{timestamp}\n{nonce}\n{body}"`). Answers are
/// `{"code": 0, "data": …}`; a non-zero `code` is [`ProviderError::Vendor`] (with `message` or
/// `msg`), a non-2xx status, an unreadable answer or a timeout (`timeout_seconds`)
/// [`ProviderError::Transport`].
pub struct HttpSecurityPlatform {
    base_url: String,
    app_key: String,
    app_secret: SecretString,
    http: reqwest::Client,
}

impl fmt::Debug for HttpSecurityPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSecurityPlatform")
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ByPhone<'a> {
    community_identifier: &'a str,
    phone: &'a str,
}

#[derive(Deserialize)]
struct Envelope<T> {
    code: i64,
    #[serde(default, alias = "msg")]
    message: String,
    data: Option<T>,
}

fn transport(detail: impl Into<String>) -> ProviderError {
    ProviderError::Transport {
        provider: PLATFORM,
        detail: detail.into(),
    }
}

impl HttpSecurityPlatform {
    /// From configuration; a missing base URL, app key or secret, or a zero timeout, is
    /// [`ProviderError::Config`].
    pub fn new(config: &SecurityPlatformConfig) -> Result<HttpSecurityPlatform, ProviderError> {
        let missing = |what: &str| ProviderError::Config {
            provider: PLATFORM,
            detail: format!("security_platform.{what} is not set"),
        };
        let app_secret = config
            .app_secret
            .clone()
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or_else(|| missing("app_secret"))?;
        for (name, value) in [("base_url", &config.base_url), ("app_key", &config.app_key)] {
            if value.trim().is_empty() {
                return Err(missing(name));
            }
        }
        if config.timeout_seconds == 0 {
            return Err(missing("timeout_seconds"));
        }
        Ok(HttpSecurityPlatform {
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            app_key: config.app_key.clone(),
            app_secret,
            http: super::http_client(PLATFORM, Duration::from_secs(config.timeout_seconds))?,
        })
    }

    /// POST `body` to `path`, signed; the answer's `data`.
    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Option<T>, ProviderError> {
        let body = serde_json::to_string(body).map_err(|e| transport(format!("request: {e}")))?;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let nonce = crate::random::nonce_str();
        let signed = format!("{timestamp}\n{nonce}\n{body}");
        let signature = super::hmac_sha256_hex(
            self.app_secret.expose_secret().as_bytes(),
            signed.as_bytes(),
        );
        let request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("Content-Type", "application/json")
            .header("X-App-Key", &self.app_key)
            .header("X-Timestamp", timestamp)
            .header("X-Nonce", nonce)
            .header("X-Signature", signature)
            .body(body);
        let response = super::send(PLATFORM, request)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| transport(e.to_string()))?;
        if !status.is_success() {
            return Err(transport(format!("{path}: HTTP {status}")));
        }
        let answer: Envelope<T> = serde_json::from_str(&text)
            // serde's message may quote a value (a phone, an ID number): only where it failed.
            .map_err(|e| transport(format!("{path}: unreadable answer ({:?} at line {} column {})", e.classify(), e.line(), e.column())))?;
        if answer.code != 0 {
            return Err(ProviderError::Vendor {
                provider: PLATFORM,
                code: answer.code.to_string(),
                message: answer.message,
            });
        }
        Ok(answer.data)
    }
}

#[async_trait]
impl SecurityPlatform for HttpSecurityPlatform {
    async fn person_by_phone(
        &self,
        community_identifier: &str,
        phone: &str,
    ) -> Result<Option<PlatformPerson>, ProviderError> {
        self.call(
            "/api/people/by-phone",
            &ByPhone {
                community_identifier,
                phone,
            },
        )
        .await
    }

    async fn owner_of(
        &self,
        address: &HouseAddress,
    ) -> Result<Option<PlatformOwner>, ProviderError> {
        self.call("/api/houses/owner", address).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::pii::IdNumber;

    #[test]
    fn seeded_people_are_valid_and_consistent() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        for p in SEED_PEOPLE {
            assert!(IdNumber::parse(p.idcard, today).is_ok(), "{}", p.name);
            let odd = (p.idcard.as_bytes()[16] - b'0') % 2 == 1;
            assert_eq!(p.sex, if odd { "男" } else { "女" }, "{}", p.name);
            assert_eq!(p.phone.len(), 11);
        }
        assert_eq!(&SEED_PEOPLE[1].idcard[..14], "11010519880707");
    }

    #[test]
    fn the_real_platform_needs_its_configuration() {
        let config = SecurityPlatformConfig {
            provider: ProviderKind::Real,
            base_url: "https://platform.example".into(),
            app_key: "key".into(),
            app_secret: Some("secret".into()),
            timeout_seconds: 5,
        };
        assert!(HttpSecurityPlatform::new(&config).is_ok());
        for broken in [
            SecurityPlatformConfig {
                app_secret: None,
                ..config.clone()
            },
            SecurityPlatformConfig {
                app_key: " ".into(),
                ..config.clone()
            },
            SecurityPlatformConfig {
                base_url: String::new(),
                ..config.clone()
            },
            SecurityPlatformConfig {
                timeout_seconds: 0,
                ..config.clone()
            },
        ] {
            assert!(matches!(
                HttpSecurityPlatform::new(&broken),
                Err(ProviderError::Config { .. })
            ));
        }
        let debug = format!("{:?}", HttpSecurityPlatform::new(&config).unwrap());
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn a_person_is_masked_in_debug() {
        let person = PlatformPerson {
            name: "王建国".into(),
            idcard: "130302198506122131".into(),
            phone: "17600381130".into(),
            sex: "男".into(),
            nation: "汉".into(),
            birth: Some("19850612".into()),
            address: "晨曦家园".into(),
            bindings: vec![],
        };
        let debug = format!("{person:?}");
        assert!(
            debug.contains("130302********2131") && debug.contains("176****1130"),
            "{debug}"
        );
        assert!(
            !debug.contains("130302198506122131") && !debug.contains("17600381130"),
            "{debug}"
        );
    }
}
