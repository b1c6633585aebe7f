//! ID-card OCR (002 §2.3.2): a deterministic sandbox of fictional identities, and Aliyun market's
//! 身份证识别 (`POST /rest/160601/ocr/ocr_idcard.json`, AppCode authentication).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::ProviderError;
use crate::config::{OcrConfig, ProviderKind};

/// What the front (face) side of a resident ID card says (002 §2.3.2.4 `data`).
#[derive(Clone, PartialEq, Eq)]
pub struct IdCardFace {
    /// 姓名.
    pub name: String,
    /// 公民身份号码, 18 characters as read (not validated: a misread number is possible, so the
    /// caller checks it with [`crate::pii::IdNumber::parse`]).
    pub idcard: String,
    /// 性别: `男` or `女`.
    pub gender: String,
    /// 民族, without 族: `汉`, `回`, …
    pub nation: String,
    /// 出生: `YYYYMMDD` (`19921130`).
    pub birthday: String,
    /// 住址.
    pub address: String,
}

impl fmt::Debug for IdCardFace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdCardFace")
            .field("name", &self.name)
            .field("idcard", &crate::pii::mask_id_number(&self.idcard))
            .field("gender", &self.gender)
            .field("nation", &self.nation)
            .field("birthday", &self.birthday)
            .finish_non_exhaustive()
    }
}

/// Why an ID card was not read.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// The image is the problem: blurry, cut off, not an ID card's face side (002 §2.3.2.4
    /// example 3, "扫描失败，请重新上传更加清晰的照片或者手动填写个人信息"); the user may retry
    /// or fill the form by hand.
    #[error("the image could not be read as an ID card")]
    Unreadable,
    /// The service failed (quota, AppCode, outage, timeout): also example 3 to the user
    /// ("接口欠费了"), but an operator's problem.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// Reads the face side of a resident ID card.
#[async_trait]
pub trait IdCardOcr: Send + Sync + 'static {
    /// Read `image` (the decoded bytes of 002 §2.3.2 `image`, JPEG or PNG).
    async fn recognize(&self, image: &[u8]) -> Result<IdCardFace, OcrError>;
}

/// The OCR `config` selects: [`SandboxOcr`], or [`AliyunOcr`] (which needs its AppCode).
pub fn from_config(config: &OcrConfig) -> anyhow::Result<Arc<dyn IdCardOcr>> {
    Ok(match config.provider {
        ProviderKind::Sandbox => Arc::new(SandboxOcr),
        ProviderKind::Real => Arc::new(AliyunOcr::new(config).context("ocr")?),
    })
}

/// The fictional people the sandbox reads: (name, ID number, gender, nation, address). Every
/// number passes GB 11643 and agrees with the birthday and gender read beside it.
const SANDBOX_PEOPLE: [(&str, &str, &str, &str, &str); 4] = [
    (
        "张伟",
        "310104199003153577",
        "男",
        "汉",
        "上海市徐汇区示例路88号3号楼201室",
    ),
    (
        "王芳",
        "440305199508232461",
        "女",
        "汉",
        "广东省深圳市南山区示例大道100号",
    ),
    (
        "刘洋",
        "510107197911023572",
        "男",
        "回",
        "四川省成都市武侯区示例街5号2单元",
    ),
    (
        "陈静",
        "320106199302142469",
        "女",
        "满",
        "江苏省南京市鼓楼区示例巷7号",
    ),
];

/// The sandbox OCR: any image of at least [`SandboxOcr::MIN_BYTES`] reads as one of a few
/// fictional people, the same image always as the same one (SHA-256 of the bytes picks); a
/// smaller image is [`OcrError::Unreadable`], so the manual path (002 §2.3.2.4 example 3) can be
/// walked.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxOcr;

impl SandboxOcr {
    /// Images below this many bytes are unreadable.
    pub const MIN_BYTES: usize = 1024;

    /// Everyone the sandbox can read.
    pub fn people() -> Vec<IdCardFace> {
        SANDBOX_PEOPLE
            .iter()
            .map(|&(name, idcard, gender, nation, address)| IdCardFace {
                name: name.to_owned(),
                idcard: idcard.to_owned(),
                gender: gender.to_owned(),
                nation: nation.to_owned(),
                birthday: idcard[6..14].to_owned(),
                address: address.to_owned(),
            })
            .collect()
    }

    /// Who the sandbox reads in `image`, `None` when it is too small.
    pub fn face_for(image: &[u8]) -> Option<IdCardFace> {
        if image.len() < SandboxOcr::MIN_BYTES {
            return None;
        }
        let hash = digest::digest(&digest::SHA256, image);
        let mut people = SandboxOcr::people();
        let index = usize::from(hash.as_ref()[0]) % people.len();
        Some(people.swap_remove(index))
    }
}

#[async_trait]
impl IdCardOcr for SandboxOcr {
    async fn recognize(&self, image: &[u8]) -> Result<IdCardFace, OcrError> {
        SandboxOcr::face_for(image).ok_or(OcrError::Unreadable)
    }
}

const ALIYUN: &str = "aliyun-ocr";

/// The real OCR: Aliyun market 身份证识别. `POST {base_url}/rest/160601/ocr/ocr_idcard.json`,
/// `Authorization: APPCODE {appcode}`, body
/// `{"image": base64, "configure": "{\"side\":\"face\"}"}`; answer `{"success": true,
/// "name", "num", "sex", "nationality", "birth": "19921130", "address", …}`. `success: false`
/// or HTTP 400 (the gateway's reason in `X-Ca-Error-Message`) is [`OcrError::Unreadable`];
/// 403 (AppCode, quota), other statuses, unreadable answers and timeouts
/// ([`AliyunOcr::TIMEOUT`]) are [`OcrError::Provider`].
pub struct AliyunOcr {
    url: String,
    appcode: SecretString,
    http: reqwest::Client,
}

impl fmt::Debug for AliyunOcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliyunOcr")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct AliyunAnswer {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    name: String,
    #[serde(default)]
    num: String,
    #[serde(default)]
    sex: String,
    #[serde(default)]
    nationality: String,
    #[serde(default)]
    birth: String,
    #[serde(default)]
    address: String,
}

fn transport(detail: impl Into<String>) -> OcrError {
    OcrError::Provider(ProviderError::Transport {
        provider: ALIYUN,
        detail: detail.into(),
    })
}

impl AliyunOcr {
    /// Per-request timeout.
    pub const TIMEOUT: Duration = Duration::from_secs(10);

    /// From configuration; a missing AppCode or base URL is [`ProviderError::Config`].
    pub fn new(config: &OcrConfig) -> Result<AliyunOcr, ProviderError> {
        let config_error = |detail: &str| ProviderError::Config {
            provider: ALIYUN,
            detail: detail.into(),
        };
        let appcode = config
            .appcode
            .clone()
            .filter(|s| !s.expose_secret().trim().is_empty())
            .ok_or_else(|| config_error("ocr.appcode is not set"))?;
        if config.base_url.trim().is_empty() {
            return Err(config_error("ocr.base_url is not set"));
        }
        Ok(AliyunOcr {
            url: format!(
                "{}/rest/160601/ocr/ocr_idcard.json",
                config.base_url.trim_end_matches('/')
            ),
            appcode,
            http: super::http_client(ALIYUN, AliyunOcr::TIMEOUT)?,
        })
    }
}

#[async_trait]
impl IdCardOcr for AliyunOcr {
    async fn recognize(&self, image: &[u8]) -> Result<IdCardFace, OcrError> {
        let body =
            serde_json::json!({ "image": B64.encode(image), "configure": "{\"side\":\"face\"}" });
        let request = self
            .http
            .post(&self.url)
            .header(
                "Authorization",
                format!("APPCODE {}", self.appcode.expose_secret()),
            )
            .json(&body);
        let response = super::send(ALIYUN, request)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let reason = response
            .headers()
            .get("X-Ca-Error-Message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response
            .text()
            .await
            .map_err(|e| transport(e.to_string()))?;
        if status == reqwest::StatusCode::BAD_REQUEST {
            tracing::info!(%reason, "Aliyun OCR: the image was refused");
            return Err(OcrError::Unreadable);
        }
        if !status.is_success() {
            let detail = if reason.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {reason}")
            };
            return Err(OcrError::Provider(ProviderError::Vendor {
                provider: ALIYUN,
                code: status.as_u16().to_string(),
                message: detail,
            }));
        }
        let answer: AliyunAnswer = serde_json::from_str(&text)
            .map_err(|e| transport(format!("unreadable answer: {e}")))?;
        if !answer.success || answer.name.is_empty() || answer.num.is_empty() {
            tracing::info!("Aliyun OCR: no ID card face found in the image");
            return Err(OcrError::Unreadable);
        }
        Ok(IdCardFace {
            name: answer.name,
            idcard: answer.num.to_ascii_uppercase(),
            gender: answer.sex,
            nation: answer.nationality,
            birthday: answer.birth,
            address: answer.address,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::pii::IdNumber;

    #[test]
    fn sandbox_people_are_valid_and_consistent() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let people = SandboxOcr::people();
        assert!(people.len() >= 3);
        for face in &people {
            assert!(IdNumber::parse(&face.idcard, today).is_ok(), "{face:?}");
            assert_eq!(face.birthday, face.idcard[6..14]);
            let odd = (face.idcard.as_bytes()[16] - b'0') % 2 == 1;
            assert_eq!(face.gender, if odd { "男" } else { "女" }, "{face:?}");
        }
        assert!(
            !format!("{:?}", people[0]).contains(&people[0].idcard),
            "Debug masks the number"
        );
    }

    #[tokio::test]
    async fn sandbox_is_deterministic_and_small_images_are_unreadable() {
        let image = |seed: u8| {
            (0..2048u32)
                .map(|i| (i as u8).wrapping_mul(seed))
                .collect::<Vec<u8>>()
        };
        let first = SandboxOcr.recognize(&image(3)).await.expect("read");
        assert_eq!(SandboxOcr.recognize(&image(3)).await.expect("read"), first);
        assert!(SandboxOcr::people().contains(&first));
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..=255u8 {
            seen.insert(
                SandboxOcr::face_for(&image(seed))
                    .expect("big enough")
                    .idcard,
            );
        }
        assert_eq!(
            seen.len(),
            SANDBOX_PEOPLE.len(),
            "every identity is reachable"
        );
        let small = vec![0xffu8; SandboxOcr::MIN_BYTES - 1];
        assert!(matches!(
            SandboxOcr.recognize(&small).await,
            Err(OcrError::Unreadable)
        ));
    }

    #[test]
    fn aliyun_needs_an_appcode() {
        let config = OcrConfig {
            provider: ProviderKind::Real,
            appcode: Some("code".into()),
            ..OcrConfig::default()
        };
        assert!(AliyunOcr::new(&config).is_ok());
        for broken in [
            OcrConfig {
                appcode: None,
                ..config.clone()
            },
            OcrConfig {
                appcode: Some(" ".into()),
                ..config.clone()
            },
            OcrConfig {
                base_url: String::new(),
                ..config.clone()
            },
        ] {
            assert!(matches!(
                AliyunOcr::new(&broken),
                Err(ProviderError::Config { .. })
            ));
        }
        assert!(from_config(&OcrConfig::default()).is_ok());
        assert!(
            from_config(&OcrConfig {
                appcode: None,
                ..config
            })
            .is_err()
        );
    }
}
