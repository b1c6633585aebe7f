//! The real WeChat Pay v3 provider (domain.md §2.2): [`WechatPayV3`], HTTPS to
//! api.mch.weixin.qq.com with merchant-signed requests; every answer's signature is verified
//! before it is used.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use reqwest::{Method, Url};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use super::sign::MerchantSigner;
use super::verify::NotifyVerifier;
use super::{
    Merchant, Notification, NotifyError, PayParams, PrepayRequest, ProviderError, Refund, RefundRequest, Transaction,
    WechatPay, beijing_rfc3339, refund_from_json, transaction_from_json,
};
use crate::config::WechatPayConfig;

const REAL: &str = "wechat-pay";

/// The JSON body of `POST /v3/pay/transactions/jsapi` (and, without `payer`, of
/// `POST /v3/pay/transactions/native`).
#[derive(Debug, Serialize)]
struct JsapiBody<'a> {
    appid: &'a str,
    mchid: &'a str,
    description: &'a str,
    out_trade_no: &'a str,
    time_expire: String,
    notify_url: &'a str,
    amount: JsapiAmount,
    #[serde(skip_serializing_if = "Option::is_none")]
    payer: Option<JsapiPayer<'a>>,
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

/// The JSON body of `POST /v3/pay/transactions/out-trade-no/{no}/close`.
#[derive(Debug, Serialize)]
struct CloseBody<'a> {
    mchid: &'a str,
}

/// The JSON body of `POST /v3/refund/domestic/refunds`.
#[derive(Debug, Serialize)]
struct RefundBody<'a> {
    out_trade_no: &'a str,
    out_refund_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    notify_url: &'a str,
    amount: RefundAmount,
}

#[derive(Debug, Serialize)]
struct RefundAmount {
    refund: i64,
    total: i64,
    currency: &'static str,
}

#[derive(Deserialize)]
struct PrepayAnswer {
    prepay_id: String,
}

#[derive(Deserialize)]
struct NativeAnswer {
    code_url: String,
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

/// The real WeChat Pay v3 provider (JSAPI and NATIVE): orders with merchant-signed requests, verifies every
/// response and notify against the WeChat Pay public key (`PUB_KEY_ID_…`).
pub struct WechatPayV3 {
    base_url: Url,
    merchant: Merchant,
    public_key_id: String,
    signer: MerchantSigner,
    verifier: NotifyVerifier,
    http: reqwest::Client,
}

impl fmt::Debug for WechatPayV3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPayV3")
            .field("base_url", &self.base_url.as_str())
            .field("merchant", &self.merchant)
            .field("public_key_id", &self.public_key_id)
            .finish_non_exhaustive()
    }
}

impl WechatPayV3 {
    /// Per-request timeout.
    pub const TIMEOUT: Duration = Duration::from_secs(10);

    /// The merchant of `config` taking payments for mini-program `appid`: reads the merchant
    /// private key (PKCS#8 PEM) and the WeChat Pay public key (SPKI PEM) files. Anything missing
    /// or unparsable is [`ProviderError::Config`].
    pub fn new(appid: &str, config: &WechatPayConfig) -> Result<WechatPayV3, ProviderError> {
        let appid = appid.to_owned();
        for (name, value) in [
            ("appid", &appid),
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
        let base_url = Url::parse(config.base_url.trim_end_matches('/'))
            .ok()
            .filter(|url| !url.cannot_be_a_base())
            .ok_or_else(|| real_config(format!("wechat_pay.base_url is not a URL: {}", config.base_url)))?;
        Ok(WechatPayV3 {
            base_url,
            merchant: Merchant { appid, mchid: config.mchid.clone() },
            public_key_id: config.public_key_id.clone(),
            signer,
            verifier,
            http,
        })
    }

    /// `base_url` + the path segments (each percent-encoded as needed) + the query pairs.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base_url.clone();
        // `new` refused URLs that cannot be a base, so the path can take segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The JSON body placing `order` (JSAPI with `payer`, NATIVE without).
    fn order_body(&self, order: &PrepayRequest, payer: Option<&str>) -> Result<Vec<u8>, ProviderError> {
        serde_json::to_vec(&JsapiBody {
            appid: &self.merchant.appid,
            mchid: &self.merchant.mchid,
            description: &order.description,
            out_trade_no: &order.out_trade_no,
            time_expire: beijing_rfc3339(order.time_expire),
            notify_url: &order.notify_url,
            amount: JsapiAmount { total: order.amount_fen, currency: "CNY" },
            payer: payer.map(|openid| JsapiPayer { openid }),
        })
        .map_err(|e| real_config(format!("order body: {e}")))
    }

    /// Send a signed request and answer the body of a 2xx answer whose signature verifies.
    ///
    /// The `Authorization` signature covers the path and query exactly as sent. A non-2xx
    /// answer with WeChat's `{code, message}` is [`ProviderError::Vendor`]; anything unreadable,
    /// and any 2xx answer whose signature does not verify (it might not come from WeChat Pay:
    /// never used), is [`ProviderError::Transport`].
    async fn call(&self, method: Method, url: Url, body: Option<Vec<u8>>) -> Result<Bytes, ProviderError> {
        let signed_path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let body = body.unwrap_or_default();
        let authorization = self
            .signer
            .authorization(method.as_str(), &signed_path, &body)
            .map_err(|e| real_config(format!("signing: {e}")))?;
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::ACCEPT, "application/json")
            // Ask for answers signed with the public key we hold (domain.md §2.2).
            .header("Wechatpay-Serial", &self.public_key_id);
        if !body.is_empty() {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let response = crate::providers::send(REAL, request).await.map_err(|e| real_transport(e.to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| real_transport(e.to_string()))?;
        if !status.is_success() {
            return match serde_json::from_slice::<ErrorAnswer>(&bytes) {
                Ok(e) => Err(ProviderError::Vendor { provider: REAL, code: e.code, message: e.message }),
                Err(_) => Err(real_transport(format!("HTTP {status}, unreadable answer"))),
            };
        }
        self.verifier.verify(&headers, &bytes, Utc::now()).map_err(|e| real_transport(format!("answer {e}")))?;
        Ok(bytes)
    }
}

#[async_trait]
impl WechatPay for WechatPayV3 {
    fn merchant(&self) -> &Merchant {
        &self.merchant
    }

    fn needs_payer(&self) -> bool {
        true
    }

    async fn jsapi_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        let openid = order.payer_openid.as_deref().ok_or_else(|| real_config("JSAPI needs a payer openid"))?;
        let body = self.order_body(order, Some(openid))?;
        let url = self.url(&["v3", "pay", "transactions", "jsapi"], &[]);
        let answer = self.call(Method::POST, url, Some(body)).await?;
        let answer: PrepayAnswer =
            serde_json::from_slice(&answer).map_err(|e| real_transport(format!("answer without prepay_id: {e}")))?;
        Ok(answer.prepay_id)
    }

    /// `POST /v3/pay/transactions/native` (no payer); answers the `code_url`.
    async fn native_prepay(&self, order: &PrepayRequest) -> Result<String, ProviderError> {
        let body = self.order_body(order, None)?;
        let url = self.url(&["v3", "pay", "transactions", "native"], &[]);
        let answer = self.call(Method::POST, url, Some(body)).await?;
        let answer: NativeAnswer =
            serde_json::from_slice(&answer).map_err(|e| real_transport(format!("answer without code_url: {e}")))?;
        Ok(answer.code_url)
    }

    async fn pay_params(&self, prepay_id: &str) -> Result<PayParams, ProviderError> {
        self.signer.pay_params(&self.merchant.appid, prepay_id).map_err(|e| real_config(format!("signing: {e}")))
    }

    async fn query(&self, out_trade_no: &str) -> Result<Transaction, ProviderError> {
        let url =
            self.url(&["v3", "pay", "transactions", "out-trade-no", out_trade_no], &[("mchid", &self.merchant.mchid)]);
        let answer = self.call(Method::GET, url, None).await?;
        transaction_from_json(&answer).map_err(|e| real_transport(format!("query answer: {e}")))
    }

    async fn close(&self, out_trade_no: &str) -> Result<(), ProviderError> {
        let body = serde_json::to_vec(&CloseBody { mchid: &self.merchant.mchid })
            .map_err(|e| real_config(format!("close body: {e}")))?;
        let url = self.url(&["v3", "pay", "transactions", "out-trade-no", out_trade_no, "close"], &[]);
        // WeChat answers 204 No Content, signed like every answer.
        self.call(Method::POST, url, Some(body)).await.map(drop)
    }

    async fn refund(&self, request: &RefundRequest) -> Result<Refund, ProviderError> {
        let body = serde_json::to_vec(&RefundBody {
            out_trade_no: &request.out_trade_no,
            out_refund_no: &request.out_refund_no,
            reason: request.reason.as_deref(),
            notify_url: &request.notify_url,
            amount: RefundAmount { refund: request.refund_fen, total: request.total_fen, currency: "CNY" },
        })
        .map_err(|e| real_config(format!("refund body: {e}")))?;
        let url = self.url(&["v3", "refund", "domestic", "refunds"], &[]);
        let answer = self.call(Method::POST, url, Some(body)).await?;
        refund_from_json(&answer).map_err(|e| real_transport(format!("refund answer: {e}")))
    }

    async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, ProviderError> {
        let url = self.url(&["v3", "refund", "domestic", "refunds", out_refund_no], &[]);
        let answer = self.call(Method::GET, url, None).await?;
        refund_from_json(&answer).map_err(|e| real_transport(format!("refund answer: {e}")))
    }

    async fn verify_notify(&self, headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Notification, NotifyError> {
        self.verifier.parse_notify(headers, body, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_provider_needs_its_configuration() {
        let config = WechatPayConfig { provider: crate::config::ProviderKind::Real, ..WechatPayConfig::default() };
        match WechatPayV3::new("wx1", &config) {
            Err(ProviderError::Config { detail, .. }) => assert!(detail.contains("merchant_serial_no"), "{detail}"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
