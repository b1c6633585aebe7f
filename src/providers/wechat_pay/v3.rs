//! The real WeChat Pay v3 provider (domain.md §2.2): [`WechatPayV3`], HTTPS to
//! api.mch.weixin.qq.com with merchant-signed requests; every answer's signature is verified
//! before it is used.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use super::sign::MerchantSigner;
use super::verify::{self, NotifyVerifier};
use super::{
    Notification, NotifyError, NotifyHeaders, PayParams, PrepayRequest, ProviderError, WechatPay, beijing_rfc3339,
};
use crate::config::WechatPayConfig;

const REAL: &str = "wechat-pay";

/// The JSAPI order path (domain.md §2.2).
pub const JSAPI_PATH: &str = "/v3/pay/transactions/jsapi";

/// The JSON body of `POST /v3/pay/transactions/jsapi`.
#[derive(Debug, Serialize)]
struct JsapiBody<'a> {
    appid: &'a str,
    mchid: &'a str,
    description: &'a str,
    out_trade_no: &'a str,
    time_expire: String,
    notify_url: &'a str,
    amount: JsapiAmount,
    payer: JsapiPayer<'a>,
}

#[derive(Debug, Serialize)]
struct JsapiAmount {
    total: i64,
    currency: &'static str,
}

#[derive(Debug, Serialize)]
struct JsapiPayer<'a> {
    openid: &'a str,
}

#[derive(Deserialize)]
struct PrepayAnswer {
    prepay_id: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    code: String,
    #[serde(default)]
    message: String,
}

fn real_config(detail: impl Into<String>) -> ProviderError {
    ProviderError::Config { provider: REAL, detail: detail.into() }
}

fn real_transport(detail: impl Into<String>) -> ProviderError {
    ProviderError::Transport { provider: REAL, detail: detail.into() }
}

/// The real WeChat Pay v3 provider (JSAPI): orders with merchant-signed requests, verifies every
/// response and notify against the WeChat Pay public key (`PUB_KEY_ID_…`).
pub struct WechatPayV3 {
    base_url: String,
    appid: String,
    public_key_id: String,
    signer: MerchantSigner,
    verifier: NotifyVerifier,
    http: reqwest::Client,
}

impl fmt::Debug for WechatPayV3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPayV3")
            .field("base_url", &self.base_url)
            .field("appid", &self.appid)
            .field("mchid", &self.signer.mchid())
            .field("public_key_id", &self.public_key_id)
            .finish_non_exhaustive()
    }
}

impl WechatPayV3 {
    /// Per-request timeout.
    pub const TIMEOUT: Duration = Duration::from_secs(10);

    /// Build from configuration: reads the merchant private key (PKCS#8 PEM) and the WeChat Pay
    /// public key (SPKI PEM) files. Anything missing or unparsable is [`ProviderError::Config`].
    pub fn new(config: &WechatPayConfig) -> Result<WechatPayV3, ProviderError> {
        for (name, value) in [
            ("appid", &config.appid),
            ("mchid", &config.mchid),
            ("merchant_serial_no", &config.merchant_serial_no),
            ("public_key_id", &config.public_key_id),
            ("base_url", &config.base_url),
        ] {
            if value.trim().is_empty() {
                return Err(real_config(format!("wechat_pay.{name} is not set")));
            }
        }
        let read = |name: &str, path: &Option<std::path::PathBuf>| {
            let path = path.as_ref().ok_or_else(|| real_config(format!("wechat_pay.{name} is not set")))?;
            std::fs::read(path).map_err(|e| real_config(format!("reading {}: {e}", path.display())))
        };
        let private_key = read("merchant_private_key_file", &config.merchant_private_key_file)?;
        let public_key = read("public_key_file", &config.public_key_file)?;
        let apiv3_key = config
            .apiv3_key
            .as_ref()
            .filter(|k| !k.expose_secret().is_empty())
            .ok_or_else(|| real_config("wechat_pay.apiv3_key is not set"))?;
        let signer = MerchantSigner::new(&config.mchid, &config.merchant_serial_no, &private_key)
            .map_err(|e| real_config(format!("merchant private key: {e}")))?;
        let verifier = NotifyVerifier::new(apiv3_key.expose_secret().as_bytes())
            .and_then(|v| v.with_key(&config.public_key_id, &public_key))
            .map_err(|e| real_config(format!("WeChat Pay public key / APIv3 key: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(WechatPayV3::TIMEOUT)
            // WeChat Pay v3 refuses requests without a User-Agent.
            .user_agent(concat!("mpapi/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| real_config(format!("HTTP client: {e}")))?;
        Ok(WechatPayV3 {
            base_url: config.base_url.trim_end_matches('/').to_string(),
            appid: config.appid.clone(),
            public_key_id: config.public_key_id.clone(),
            signer,
            verifier,
            http,
        })
    }
}

#[async_trait]
impl WechatPay for WechatPayV3 {
    fn merchant(&self) -> (&str, &str) {
        (&self.appid, self.signer.mchid())
    }

    async fn jsapi_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        let openid = order.payer_openid.as_deref().ok_or_else(|| real_config("JSAPI needs a payer openid"))?;
        let body = serde_json::to_vec(&JsapiBody {
            appid: &self.appid,
            mchid: self.signer.mchid(),
            description: &order.description,
            out_trade_no: &order.out_trade_no,
            time_expire: beijing_rfc3339(order.time_expire),
            notify_url: &order.notify_url,
            amount: JsapiAmount { total: order.amount_fen, currency: "CNY" },
            payer: JsapiPayer { openid },
        })
        .map_err(|e| real_config(format!("order body: {e}")))?;
        let url = reqwest::Url::parse(&format!("{}{JSAPI_PATH}", self.base_url))
            .map_err(|e| real_config(format!("wechat_pay.base_url: {e}")))?;
        // Sign the path as sent, so a base_url with a path prefix still verifies.
        let signed_path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let authorization =
            self.signer.authorization("POST", &signed_path, &body).map_err(|e| real_config(format!("signing: {e}")))?;
        let response = self
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            // Ask for responses signed with the public key we hold (domain.md §2.2).
            .header("Wechatpay-Serial", &self.public_key_id)
            .body(body)
            .send()
            .await
            .map_err(|e| real_transport(e.to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| real_transport(e.to_string()))?;
        if !status.is_success() {
            return match serde_json::from_slice::<ErrorAnswer>(&bytes) {
                Ok(e) => Err(ProviderError::Vendor { provider: REAL, code: e.code, message: e.message }),
                Err(_) => Err(real_transport(format!("HTTP {status}, unreadable answer"))),
            };
        }
        // An unverified answer might not come from WeChat Pay: never use its prepay_id.
        verify::headers_from_map(&headers)
            .and_then(|h| self.verifier.verify(&h, &bytes, Utc::now()))
            .map_err(|e| real_transport(format!("response {e}")))?;
        let answer: PrepayAnswer =
            serde_json::from_slice(&bytes).map_err(|e| real_transport(format!("answer without prepay_id: {e}")))?;
        Ok(answer.prepay_id)
    }

    fn pay_params(&self, prepay_id: &str) -> Result<PayParams, ProviderError> {
        self.signer.pay_params(&self.appid, prepay_id).map_err(|e| real_config(format!("signing: {e}")))
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
    use super::*;

    #[test]
    fn real_provider_needs_its_configuration() {
        let config = WechatPayConfig { provider: crate::config::ProviderKind::Real, ..WechatPayConfig::default() };
        match WechatPayV3::new(&config) {
            Err(ProviderError::Config { detail, .. }) => assert!(detail.contains("merchant_serial_no"), "{detail}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
