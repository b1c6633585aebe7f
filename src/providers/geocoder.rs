//! Reverse geocoding for o2o (004 §登陆相关 根据经纬度获取所在城市): a GCJ-02 position → the GB/T 2260
//! code of its county. The sandbox picks the nearest seeded county; the real provider is Tencent
//! LBS's WebService 逆地址解析 (`GET /ws/geocoder/v1/`), WeChat's own map vendor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use md5::{Digest as _, Md5};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::ProviderError;
use crate::config::{GeocoderConfig, ProviderKind};

/// Finds the county-level area at a position.
#[async_trait]
pub trait ReverseGeocoder: Send + Sync + 'static {
    /// The GB/T 2260 code (adcode, `440305`) of the county-level area at (`lat`, `lng`), GCJ-02
    /// degrees (what `wx.getLocation({type: 'gcj02'})` gives); `None` when the position is in no
    /// mainland area (the sea, abroad, Hong Kong/Macau/Taiwan). Vendor refusals and outages are
    /// [`ProviderError`]s.
    async fn county_of(&self, lat: f64, lng: f64) -> Result<Option<i32>, ProviderError>;
}

/// The geocoder `config` selects: [`SandboxGeocoder`], or [`TencentGeocoder`] (which needs its
/// key, `geocoder.key`).
pub fn from_config(config: &GeocoderConfig) -> anyhow::Result<Arc<dyn ReverseGeocoder>> {
    Ok(match config.provider {
        ProviderKind::Sandbox => Arc::new(SandboxGeocoder),
        ProviderKind::Real => Arc::new(TencentGeocoder::new(config).context("geocoder")?),
    })
}

/// The sandbox geocoder: the seeded county whose centre is nearest
/// ([`crate::areas::nearest_county`]), offline and deterministic; near a county border it may
/// answer the neighbour, and far out at sea or abroad it answers `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxGeocoder;

#[async_trait]
impl ReverseGeocoder for SandboxGeocoder {
    async fn county_of(&self, lat: f64, lng: f64) -> Result<Option<i32>, ProviderError> {
        Ok(crate::areas::nearest_county(lat, lng).map(|a| a.area_id))
    }
}

const TENCENT: &str = "tencent-geocoder";
/// The request path; the signature covers it exactly as requested.
const PATH: &str = "/ws/geocoder/v1/";

/// The real geocoder: Tencent LBS WebService 逆地址解析,
/// `GET {base_url}/ws/geocoder/v1/?key=…&location={lat},{lng}[&sig=…]`. With an SK configured
/// every request carries `sig` = lowercase hex MD5 of
/// `/ws/geocoder/v1/?` + the parameters sorted by name, unencoded, joined by `&` + SK (Tencent's
/// "签名校验" for GET). The answer's `status` 0 gives `result.ad_info.adcode`; any other status
/// (`110` source not authorised, `121` quota, `310` bad parameters, `311` bad key, `347` no
/// result, …) is [`ProviderError::Vendor`] with that status and the `message`. Statuses other
/// than HTTP 200, unreadable answers and timeouts are [`ProviderError::Transport`]. Neither the
/// key nor the SK appears in logs, errors or `Debug`.
pub struct TencentGeocoder {
    base_url: String,
    key: SecretString,
    secret_key: Option<SecretString>,
    http: reqwest::Client,
}

impl fmt::Debug for TencentGeocoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TencentGeocoder")
            .field("base_url", &self.base_url)
            .field("signed", &self.secret_key.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    status: i64,
    #[serde(default)]
    message: String,
    result: Option<AnswerResult>,
}

#[derive(Deserialize)]
struct AnswerResult {
    ad_info: Option<AdInfo>,
}

#[derive(Deserialize)]
struct AdInfo {
    /// Mainland China is `156`; abroad and the sea answer another code or none.
    #[serde(default)]
    nation_code: String,
    /// A string in the answer (`"440305"`), sometimes empty or `-1` at sea.
    #[serde(default)]
    adcode: serde_json::Value,
}

/// Tencent's GET signature: lowercase hex MD5 of `path` + `?` + `params` (already sorted by
/// name, unencoded) joined by `&` + `secret_key`.
pub fn tencent_sig(path: &str, params: &[(&str, &str)], secret_key: &str) -> String {
    let query = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    hex::encode(Md5::digest(format!("{path}?{query}{secret_key}").as_bytes()))
}

impl TencentGeocoder {
    /// From configuration; a missing key or base URL is [`ProviderError::Config`] naming the
    /// setting. An empty SK counts as none (unsigned requests).
    pub fn new(config: &GeocoderConfig) -> Result<TencentGeocoder, ProviderError> {
        let config_error = |detail: &str| ProviderError::Config { provider: TENCENT, detail: detail.into() };
        let key = config
            .key
            .clone()
            .filter(|s| !s.expose_secret().trim().is_empty())
            .ok_or_else(|| config_error("geocoder.key is not set"))?;
        if config.base_url.trim().is_empty() {
            return Err(config_error("geocoder.base_url is not set"));
        }
        let secret_key = config.secret_key.clone().filter(|s| !s.expose_secret().trim().is_empty());
        Ok(TencentGeocoder {
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            key,
            secret_key,
            http: super::http_client(TENCENT, Duration::from_millis(config.timeout_ms.max(1)))?,
        })
    }
}

#[async_trait]
impl ReverseGeocoder for TencentGeocoder {
    async fn county_of(&self, lat: f64, lng: f64) -> Result<Option<i32>, ProviderError> {
        // Six decimals (about 0.1 m) as the contract's positions have; the same text is signed
        // and sent.
        let location = format!("{lat:.6},{lng:.6}");
        // Sorted by name, as the signature needs.
        let unsigned = [("key", self.key.expose_secret()), ("location", location.as_str())];
        let sig = self.secret_key.as_ref().map(|sk| tencent_sig(PATH, &unsigned, sk.expose_secret()));
        let mut params = unsigned.to_vec();
        if let Some(sig) = &sig {
            params.push(("sig", sig.as_str()));
        }
        let response = super::send(TENCENT, self.http.get(format!("{}{PATH}", self.base_url)).query(&params)).await;
        // The query carries the key.
        let answer: Answer = super::json_answer(TENCENT, response).await?;
        if answer.status != 0 {
            return Err(ProviderError::Vendor { provider: TENCENT, code: answer.status.to_string(), message: answer.message });
        }
        let Some(ad_info) = answer.result.and_then(|r| r.ad_info) else {
            return Ok(None);
        };
        if !ad_info.nation_code.is_empty() && ad_info.nation_code != "156" {
            return Ok(None);
        }
        let adcode = match &ad_info.adcode {
            serde_json::Value::String(s) => s.trim().parse::<i32>().ok(),
            serde_json::Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            _ => None,
        };
        // Only a 6-digit mainland code is an area; 71xxxx/81xxxx/82xxxx (Taiwan, Hong Kong,
        // Macau) are not in our table.
        Ok(adcode.filter(|c| (110_000..=659_999).contains(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sandbox_answers_the_nearest_county() {
        assert_eq!(SandboxGeocoder.county_of(22.540503, 113.943223).await.unwrap(), Some(440305));
        assert_eq!(SandboxGeocoder.county_of(39.9087, 116.3975).await.unwrap(), Some(110101));
        assert_eq!(SandboxGeocoder.county_of(20.0, 125.0).await.unwrap(), None);
        let sandbox = from_config(&GeocoderConfig::default()).expect("the default is the sandbox");
        assert_eq!(sandbox.county_of(22.540503, 113.943223).await.unwrap(), Some(440305));
    }

    #[test]
    fn tencent_needs_a_key_and_keeps_it_out_of_debug() {
        let config = GeocoderConfig { provider: ProviderKind::Real, key: Some("KEY-1234567890".into()), secret_key: Some("SK-abcdef".into()), ..GeocoderConfig::default() };
        let geocoder = TencentGeocoder::new(&config).expect("configured");
        let debug = format!("{geocoder:?}");
        assert!(!debug.contains("KEY-1234567890") && !debug.contains("SK-abcdef"), "{debug}");
        for broken in [GeocoderConfig { key: None, ..config.clone() }, GeocoderConfig { key: Some(" ".into()), ..config.clone() }, GeocoderConfig { base_url: String::new(), ..config.clone() }] {
            assert!(matches!(TencentGeocoder::new(&broken), Err(ProviderError::Config { .. })));
        }
        let error = from_config(&GeocoderConfig { key: None, ..config }).err().expect("no key");
        assert!(format!("{error:#}").contains("geocoder.key"), "{error:#}");
    }

    #[test]
    fn the_signature_follows_tencents_example() {
        // Tencent's documented example (key and SK as published there).
        let sig = tencent_sig("/ws/geocoder/v1", &[("key", "5Q5BZ-5EVWJ-SN5F3-K6QBZ-B3FAO-RVBWM"), ("location", "28.7033487,115.8660847")], "SWvT26ypwq5Nwb5RvS8cLi6NSoH8HlJX");
        assert_eq!(sig, "90da272bfa19122547298e2b0bcc0e50");
    }
}
