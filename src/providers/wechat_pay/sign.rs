//! Merchant signing for WeChat Pay v3 (domain.md §2.2): the `Authorization` header of every API
//! request and the `paySign` of `wx.requestPayment`, both RSA-SHA256 PKCS#1 v1.5 with the
//! merchant API private key (`apiclient_key.pem`), base64.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Utc;

use super::PayParams;
use super::keys::{self, KeyError};

/// The `Authorization` scheme and `Wechatpay-Signature-Type` value (RSA-SHA256, PKCS#1 v1.5).
pub const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";

/// base64(RSA-SHA256-PKCS1v15(`key`, `message`)). PKCS#1 v1.5 is deterministic: the same key and
/// message always give the same signature (the known-answer tests rely on it).
pub(super) fn rsa_sign(key: &KeyPair, message: &[u8]) -> Result<String, KeyError> {
    let mut signature = vec![0u8; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), message, &mut signature)
        .map_err(|_| KeyError("RSA signing failed".into()))?;
    Ok(B64.encode(signature))
}

/// What the `Authorization` signature covers: `METHOD\nURL\ntimestamp\nnonce\nbody\n` (every line
/// ends with `\n`, the body's too, an empty body included).
fn request_message(method: &str, url: &str, timestamp: i64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{method}\n{url}\n{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// What `paySign` covers: `appId\ntimeStamp\nnonceStr\npackage\n` (`signType` is not signed).
fn pay_message(app_id: &str, time_stamp: &str, nonce_str: &str, package: &str) -> String {
    format!("{app_id}\n{time_stamp}\n{nonce_str}\n{package}\n")
}

/// The merchant side of v3 signing: `Authorization` headers for API requests and `paySign` for
/// `wx.requestPayment` (domain.md §2.2), with the merchant API private key (`apiclient_key.pem`).
pub struct MerchantSigner {
    mchid: String,
    serial_no: String,
    key: KeyPair,
}

impl fmt::Debug for MerchantSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantSigner")
            .field("mchid", &self.mchid)
            .field("serial_no", &self.serial_no)
            .finish_non_exhaustive()
    }
}

impl MerchantSigner {
    /// A signer for merchant `mchid` whose API certificate has serial `serial_no`; `private_key`
    /// is the RSA private key, PKCS#8 PEM (`apiclient_key.pem`), PKCS#1 PEM, or DER.
    pub fn new(
        mchid: impl Into<String>,
        serial_no: impl Into<String>,
        private_key: &[u8],
    ) -> Result<MerchantSigner, KeyError> {
        Ok(MerchantSigner {
            mchid: mchid.into(),
            serial_no: serial_no.into(),
            key: keys::parse_private_key(private_key)?,
        })
    }

    /// A signer with a freshly generated RSA-2048 key (the sandbox merchant).
    pub fn generate(mchid: impl Into<String>, serial_no: impl Into<String>) -> Result<MerchantSigner, KeyError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError("RSA key generation failed".into()))?;
        Ok(MerchantSigner { mchid: mchid.into(), serial_no: serial_no.into(), key })
    }

    /// The merchant id (商户号).
    pub fn mchid(&self) -> &str {
        &self.mchid
    }

    /// The merchant API certificate serial number.
    pub fn serial_no(&self) -> &str {
        &self.serial_no
    }

    /// The public half, SPKI DER (what WeChat Pay verifies merchant signatures with).
    pub fn public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        keys::spki_der(&self.key)
    }

    /// The private key, PKCS#8 DER (for writing a generated key to a file in tests).
    pub fn private_key_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        keys::pkcs8_der(&self.key)
    }

    /// base64(RSA-SHA256-PKCS1v15(merchant key, message)).
    pub fn sign(&self, message: &[u8]) -> Result<String, KeyError> {
        rsa_sign(&self.key, message)
    }

    /// The `Authorization` header for a request signed now with a fresh nonce. `url` is the
    /// path with its query (`/v3/pay/transactions/jsapi`), `body` the exact bytes sent (empty
    /// for GET).
    pub fn authorization(&self, method: &str, url: &str, body: &[u8]) -> Result<String, KeyError> {
        self.authorization_at(method, url, body, Utc::now().timestamp(), &crate::random::nonce_str())
    }

    /// [`MerchantSigner::authorization`] with a given timestamp (seconds) and nonce:
    /// `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"`
    /// signing `METHOD\nURL\ntimestamp\nnonce\nbody\n`.
    pub fn authorization_at(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
        timestamp: i64,
        nonce: &str,
    ) -> Result<String, KeyError> {
        let signature = self.sign(&request_message(method, url, timestamp, nonce, body))?;
        Ok(format!(
            "{SIGNATURE_TYPE} mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.mchid, self.serial_no
        ))
    }

    /// `wx.requestPayment` parameters for `prepay_id`, signed as of `timestamp` (seconds) with
    /// `nonce_str`: paySign = base64(RSA-SHA256(`appId\ntimeStamp\nnonceStr\nprepay_id=…\n`)).
    pub fn pay_params_at(
        &self,
        appid: &str,
        prepay_id: &str,
        timestamp: i64,
        nonce_str: &str,
    ) -> Result<PayParams, KeyError> {
        let time_stamp = timestamp.to_string();
        let package = format!("prepay_id={prepay_id}");
        let pay_sign = self.sign(pay_message(appid, &time_stamp, nonce_str, &package).as_bytes())?;
        Ok(PayParams {
            app_id: appid.to_string(),
            time_stamp,
            nonce_str: nonce_str.to_string(),
            package,
            sign_type: "RSA".into(),
            pay_sign,
        })
    }

    /// [`MerchantSigner::pay_params_at`] now, with a fresh nonce.
    pub fn pay_params(&self, appid: &str, prepay_id: &str) -> Result<PayParams, KeyError> {
        self.pay_params_at(appid, prepay_id, Utc::now().timestamp(), &crate::random::nonce_str())
    }
}

/// Parse the parameters of an `Authorization: WECHATPAY2-SHA256-RSA2048 k="v",…` header.
/// Answers `None` when the scheme is not [`SIGNATURE_TYPE`] or a parameter is malformed.
pub fn parse_authorization(header: &str) -> Option<BTreeMap<String, String>> {
    let params = header.strip_prefix(SIGNATURE_TYPE)?.strip_prefix(' ')?;
    let mut out = BTreeMap::new();
    for part in params.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        let value = value.strip_prefix('"')?.strip_suffix('"')?;
        out.insert(key.to_string(), value.to_string());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::wechat_pay::vectors::{self, testing_key};

    /// The merchant of WeChat Pay's signing guides, with its published test key.
    fn doc_merchant() -> MerchantSigner {
        MerchantSigner::new(vectors::DOC_MCHID, vectors::DOC_SERIAL, testing_key(vectors::DOC_MERCHANT_KEY).as_bytes())
            .expect("the documentation's key loads")
    }

    #[test]
    fn authorization_reproduces_the_documented_jsapi_signature() {
        let header = doc_merchant()
            .authorization_at(
                "POST",
                "/v3/pay/transactions/jsapi",
                vectors::DOC_JSAPI_BODY.as_bytes(),
                vectors::DOC_TIMESTAMP,
                vectors::DOC_NONCE,
            )
            .expect("signs");
        assert_eq!(
            header,
            format!(
                "WECHATPAY2-SHA256-RSA2048 mchid=\"1900007291\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\",\
                 signature=\"{}\",timestamp=\"1554208460\",serial_no=\"408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB\"",
                vectors::DOC_JSAPI_SIGNATURE
            )
        );
        let params = parse_authorization(&header).expect("parses");
        assert_eq!(
            params.keys().map(String::as_str).collect::<Vec<_>>(),
            ["mchid", "nonce_str", "serial_no", "signature", "timestamp"]
        );
        assert_eq!(params["signature"], vectors::DOC_JSAPI_SIGNATURE);
    }

    #[test]
    fn request_messages_match_the_published_strings_to_sign() {
        // wechatpay-go @ 6dbd7ce2ec5967ac2de5fa053479b411967b9c29,
        // core/auth/credentials/wechat_pay_credential_test.go: the strings its mock signer was
        // handed, for a GET without a body and a POST whose body itself ends with "\n".
        assert_eq!(
            request_message("GET", "/v3/certificates", 1624523846, "A1B2C3D4E5F6G7", b""),
            b"GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n"
        );
        assert_eq!(
            request_message("POST", "/v3/certificates", 1624523846, "A1B2C3D4E5F6G7", b"Hello World!\n"),
            b"POST\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\nHello World!\n\n"
        );
        // The official paySign example (pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter7_2_9.shtml).
        assert_eq!(
            pay_message(
                "wx8888888888888888",
                "1414561699",
                "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
                "prepay_id=wx201410272009395522657a690389285100"
            ),
            "wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n"
        );
    }

    #[test]
    fn pay_params_reproduce_the_documented_pay_sign() {
        let params = doc_merchant()
            .pay_params_at(
                vectors::DOC_PAY_APPID,
                vectors::DOC_PAY_PREPAY_ID,
                vectors::DOC_TIMESTAMP,
                vectors::DOC_NONCE,
            )
            .expect("signs");
        assert_eq!(
            params,
            PayParams {
                app_id: "wx2421b1c4370ec43b".into(),
                time_stamp: "1554208460".into(),
                nonce_str: "593BEC0C930BF1AFEB40B4A08C8FB242".into(),
                package: "prepay_id=wx201410272009395522657a690389285100".into(),
                sign_type: "RSA".into(),
                pay_sign: vectors::DOC_PAY_SIGN.into(),
            }
        );
    }

    #[test]
    fn signing_reproduces_wechatpay_go() {
        let signer =
            MerchantSigner::new("1234567890", "F5765756002FDD77", testing_key(vectors::GO_PRIVATE_KEY).as_bytes())
                .expect("wechatpay-go's key loads");
        assert_eq!(signer.sign(b"source").expect("signs"), vectors::GO_SOURCE_SIGNATURE);
    }

    #[test]
    fn signing_now_uses_the_clock_and_a_fresh_nonce() {
        let signer = doc_merchant();
        let before = Utc::now().timestamp();
        let header = signer.authorization("GET", "/v3/certificates", b"").expect("signs");
        let params = parse_authorization(&header).expect("parses");
        let timestamp: i64 = params["timestamp"].parse().expect("seconds");
        assert!((before..=Utc::now().timestamp()).contains(&timestamp));
        assert_eq!(params["nonce_str"].len(), 32);
        // Now-signing is at-signing with the time and nonce it chose.
        let again = signer.authorization_at("GET", "/v3/certificates", b"", timestamp, &params["nonce_str"]);
        assert_eq!(again.expect("signs"), header);

        let pay = signer.pay_params(vectors::DOC_PAY_APPID, vectors::DOC_PAY_PREPAY_ID).expect("signs");
        let pay_again = signer.pay_params_at(
            vectors::DOC_PAY_APPID,
            vectors::DOC_PAY_PREPAY_ID,
            pay.time_stamp.parse().expect("seconds"),
            &pay.nonce_str,
        );
        assert_eq!(pay_again.expect("signs"), pay);
        assert_ne!(signer.pay_params("wx1", "p").expect("signs").nonce_str, pay.nonce_str);
    }

    #[test]
    fn malformed_authorization_headers_do_not_parse() {
        assert!(parse_authorization("WECHATPAY2-SHA256-RSA2048 mchid=\"1\"").is_some());
        for header in [
            "Bearer abc",
            "WECHATPAY2-SHA256-RSA2048mchid=\"1\"",
            "WECHATPAY2-SHA256-RSA2048 mchid=1",
            "WECHATPAY2-SHA256-RSA2048 mchid",
        ] {
            assert!(parse_authorization(header).is_none(), "{header}");
        }
    }

    #[test]
    fn debug_shows_no_key() {
        let debug = format!("{:?}", doc_merchant());
        assert!(debug.contains("1900007291") && debug.contains("408B07E7"), "{debug}");
        assert!(!debug.contains("key"), "{debug}");
    }
}
