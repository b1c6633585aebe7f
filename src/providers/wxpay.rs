//! WeChat Pay v3 primitives without HTTP (domain.md §2.2): merchant request signing and paySign,
//! notify/response signature verification, AEAD_AES_256_GCM resources, and the platform side
//! (signing and encrypting notifies) that the sandbox plays.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretSlice};
use serde::{Deserialize, Serialize};

use super::{Notification, NotifyError, NotifyHeaders, PayParams, Transaction};

/// The `Authorization` scheme and `Wechatpay-Signature-Type` value (RSA-SHA256, PKCS#1 v1.5).
pub const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";

/// Signatures with this prefix are WeChat Pay's probe traffic: they must never verify
/// (domain.md §2.2 notify step 4).
pub const PROBE_SIGNATURE_PREFIX: &str = "WECHATPAY/SIGNTEST/";

/// How far a notify or response timestamp may be from now, in seconds (domain.md §2.2 step 3).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

/// The only resource algorithm WeChat Pay v3 uses.
pub const RESOURCE_ALGORITHM: &str = "AEAD_AES_256_GCM";

/// A key that does not parse, or a crypto operation that failed. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn key_error(what: impl Into<String>) -> impl FnOnce(aws_lc_rs::error::KeyRejected) -> KeyError {
    let what = what.into();
    move |e| KeyError(format!("{what}: {e}"))
}

/// Decode a PEM block (the first one, any label) or pass DER through unchanged. Answers the PEM
/// label (`PRIVATE KEY`, `PUBLIC KEY`, …), `None` for DER.
pub fn pem_or_der(bytes: &[u8]) -> Result<(Option<String>, Vec<u8>), KeyError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok((None, bytes.to_vec()));
    };
    let Some(start) = text.find("-----BEGIN ") else {
        return Ok((None, bytes.to_vec()));
    };
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or_else(|| KeyError("PEM: unterminated BEGIN line".into()))?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + "-----".len()..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body.find(&end_marker).ok_or_else(|| KeyError(format!("PEM: no END line for {label}")))?;
    let b64: String = body[..body_end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = B64.decode(b64.as_bytes()).map_err(|e| KeyError(format!("PEM {label}: base64: {e}")))?;
    Ok((Some(label), der))
}

/// Encode DER as PEM with 64-character lines (for writing generated keys to files).
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // base64 output is ASCII, so splitting at byte offsets is safe.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Parse an RSA private key: PKCS#8 (`PRIVATE KEY`, `apiclient_key.pem`) or PKCS#1
/// (`RSA PRIVATE KEY`), PEM or DER.
pub fn parse_private_key(bytes: &[u8]) -> Result<KeyPair, KeyError> {
    let (label, der) = pem_or_der(bytes)?;
    match label.as_deref() {
        Some("PRIVATE KEY") => KeyPair::from_pkcs8(&der).map_err(key_error("PKCS#8 RSA private key")),
        Some("RSA PRIVATE KEY") => KeyPair::from_der(&der).map_err(key_error("PKCS#1 RSA private key")),
        Some("ENCRYPTED PRIVATE KEY") => Err(KeyError("the private key is encrypted; decrypt it first".into())),
        Some(other) => Err(KeyError(format!("expected an RSA private key, found PEM {other}"))),
        None => {
            KeyPair::from_pkcs8(&der).or_else(|_| KeyPair::from_der(&der)).map_err(key_error("RSA private key (DER)"))
        }
    }
}

/// Parse an RSA public key for RSA-SHA256 verification: SPKI (`PUBLIC KEY`, the WeChat Pay
/// public key file) or PKCS#1 (`RSA PUBLIC KEY`), PEM or DER. Certificates are refused: extract
/// their key with `openssl x509 -pubkey -noout -in cert.pem`.
pub fn parse_public_key(bytes: &[u8]) -> Result<ParsedPublicKey, KeyError> {
    let (label, der) = pem_or_der(bytes)?;
    match label.as_deref() {
        None | Some("PUBLIC KEY") | Some("RSA PUBLIC KEY") => {
            ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).map_err(key_error("RSA public key"))
        }
        Some("CERTIFICATE") => {
            Err(KeyError("a certificate, not a public key: extract it with `openssl x509 -pubkey -noout`".into()))
        }
        Some(other) => Err(KeyError(format!("expected an RSA public key, found PEM {other}"))),
    }
}

fn rsa_sign(key: &KeyPair, message: &[u8]) -> Result<String, KeyError> {
    let mut signature = vec![0u8; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), message, &mut signature)
        .map_err(|_| KeyError("RSA signing failed".into()))?;
    Ok(B64.encode(signature))
}

fn spki_der(key: &KeyPair) -> Result<Vec<u8>, KeyError> {
    use aws_lc_rs::signature::KeyPair as _;
    let der = key.public_key().as_der().map_err(|_| KeyError("encoding the public key failed".into()))?;
    Ok(der.as_ref().to_vec())
}

fn pkcs8_der(key: &KeyPair) -> Result<Vec<u8>, KeyError> {
    let der = key.as_der().map_err(|_| KeyError("encoding the private key failed".into()))?;
    Ok(der.as_ref().to_vec())
}

fn aes_key(bytes: &[u8]) -> Result<LessSafeKey, KeyError> {
    if bytes.len() != 32 {
        return Err(KeyError(format!("the APIv3 key must be 32 bytes, got {}", bytes.len())));
    }
    let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError("unusable APIv3 key".into()))?;
    Ok(LessSafeKey::new(key))
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
        Ok(MerchantSigner { mchid: mchid.into(), serial_no: serial_no.into(), key: parse_private_key(private_key)? })
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
        spki_der(&self.key)
    }

    /// The private key, PKCS#8 DER (for writing a generated key to a file in tests).
    pub fn private_key_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        pkcs8_der(&self.key)
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
        let mut message = format!("{method}\n{url}\n{timestamp}\n{nonce}\n").into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let signature = self.sign(&message)?;
        Ok(format!(
            "{SIGNATURE_TYPE} mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.mchid, self.serial_no
        ))
    }

    /// `wx.requestPayment` parameters for `prepay_id`, signed now: paySign =
    /// base64(RSA-SHA256(`appId\ntimeStamp\nnonceStr\nprepay_id=…\n`)); `signType` is not signed.
    pub fn pay_params(&self, appid: &str, prepay_id: &str) -> Result<PayParams, KeyError> {
        let time_stamp = Utc::now().timestamp().to_string();
        let nonce_str = crate::random::nonce_str();
        let package = format!("prepay_id={prepay_id}");
        let pay_sign = self.sign(format!("{appid}\n{time_stamp}\n{nonce_str}\n{package}\n").as_bytes())?;
        Ok(PayParams { app_id: appid.to_string(), time_stamp, nonce_str, package, sign_type: "RSA".into(), pay_sign })
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

/// An encrypted `resource` of a notify (also what [`PlatformSigner::encrypt_resource`] makes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    /// Always `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// base64 of ciphertext ‖ 16-byte tag.
    pub ciphertext: String,
    /// 12 ASCII characters, used as the GCM nonce bytes.
    pub nonce: String,
    /// The GCM additional data (`transaction` for payments); may be empty.
    #[serde(default)]
    pub associated_data: String,
    /// What the plaintext is (`transaction`).
    #[serde(default)]
    pub original_type: String,
}

/// The JSON envelope of a v3 notify (domain.md §2.2; heating `WechatPayNotifyRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEnvelope {
    /// The notification id, `EV-…`.
    pub id: String,
    /// When WeChat Pay created it (RFC 3339, +08:00).
    #[serde(default)]
    pub create_time: String,
    /// `TRANSACTION.SUCCESS`, …
    pub event_type: String,
    /// `encrypt-resource`.
    #[serde(default)]
    pub resource_type: String,
    /// `支付成功`, …
    #[serde(default)]
    pub summary: String,
    /// The encrypted payload.
    pub resource: EncryptedResource,
}

#[derive(Deserialize)]
struct WireTransaction {
    appid: String,
    mchid: String,
    out_trade_no: String,
    #[serde(default)]
    transaction_id: String,
    trade_state: String,
    success_time: Option<String>,
    amount: WireAmount,
    payer: Option<WirePayer>,
}

#[derive(Deserialize)]
struct WireAmount {
    total: i64,
}

#[derive(Deserialize)]
struct WirePayer {
    openid: Option<String>,
}

/// Verifies WeChat Pay signatures — on notifies and on API responses, which sign the same
/// `timestamp\nnonce\nbody\n` — and decrypts notify resources with the APIv3 key.
///
/// Keys are looked up by `Wechatpay-Serial`: any number of platform certificate serials and/or a
/// `PUB_KEY_ID_…` public key, because during a switch WeChat mixes both (domain.md §2.2).
pub struct NotifyVerifier {
    keys: BTreeMap<String, ParsedPublicKey>,
    apiv3_key: LessSafeKey,
}

impl fmt::Debug for NotifyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyVerifier").field("serials", &self.keys.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl NotifyVerifier {
    /// A verifier with no keys yet; `apiv3_key` is the 32-byte APIv3 key (its ASCII bytes).
    pub fn new(apiv3_key: &[u8]) -> Result<NotifyVerifier, KeyError> {
        Ok(NotifyVerifier { keys: BTreeMap::new(), apiv3_key: aes_key(apiv3_key)? })
    }

    /// Add the public key for `serial` (SPKI or PKCS#1, PEM or DER).
    pub fn add_key(&mut self, serial: impl Into<String>, public_key: &[u8]) -> Result<(), KeyError> {
        let serial = serial.into();
        if serial.is_empty() {
            return Err(KeyError("a verification key needs a serial".into()));
        }
        self.keys.insert(serial, parse_public_key(public_key)?);
        Ok(())
    }

    /// [`NotifyVerifier::add_key`], builder style.
    pub fn with_key(mut self, serial: impl Into<String>, public_key: &[u8]) -> Result<NotifyVerifier, KeyError> {
        self.add_key(serial, public_key)?;
        Ok(self)
    }

    /// The serials it knows.
    pub fn serials(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Check `Wechatpay-Signature` over `timestamp\nnonce\nbody\n` (raw body bytes) with the key
    /// named by `Wechatpay-Serial`. Refuses, as [`NotifyError::Signature`]: an unknown serial, a
    /// probe (`WECHATPAY/SIGNTEST/…`), a timestamp that is not all digits or more than
    /// [`MAX_CLOCK_SKEW_SECONDS`] from `now`, a signature that is not base64 or does not verify.
    pub fn verify(&self, headers: &NotifyHeaders, body: &[u8], now: DateTime<Utc>) -> Result<(), NotifyError> {
        let refuse = |why: &str| Err(NotifyError::Signature(why.to_string()));
        let Some(key) = self.keys.get(&headers.serial) else {
            return Err(NotifyError::Signature(format!("unknown serial {}", headers.serial)));
        };
        if headers.signature.starts_with(PROBE_SIGNATURE_PREFIX) {
            return refuse("probe signature (WECHATPAY/SIGNTEST/)");
        }
        let ts = &headers.timestamp;
        if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return refuse("timestamp is not a number of seconds");
        }
        let Ok(seconds) = ts.parse::<i64>() else {
            return refuse("timestamp out of range");
        };
        if (now.timestamp() - seconds).abs() > MAX_CLOCK_SKEW_SECONDS {
            return refuse("timestamp more than 5 minutes from now");
        }
        let Ok(signature) = B64.decode(headers.signature.as_bytes()) else {
            return refuse("signature is not base64");
        };
        let mut message = format!("{ts}\n{}\n", headers.nonce).into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        key.verify_sig(&message, &signature).or_else(|_| refuse("signature does not verify"))
    }

    /// Decrypt a resource: AES-256-GCM with the APIv3 key, nonce = the `nonce` string's bytes,
    /// AAD = `associated_data`. Anything wrong is [`NotifyError::Body`].
    pub fn decrypt_resource(&self, resource: &EncryptedResource) -> Result<Vec<u8>, NotifyError> {
        let body = |why: &str| NotifyError::Body(why.to_string());
        if resource.algorithm != RESOURCE_ALGORITHM {
            return Err(NotifyError::Body(format!("unsupported algorithm {}", resource.algorithm)));
        }
        let nonce = Nonce::try_assume_unique_for_key(resource.nonce.as_bytes())
            .map_err(|_| body("resource nonce is not 12 bytes"))?;
        let mut in_out =
            B64.decode(resource.ciphertext.as_bytes()).map_err(|_| body("resource ciphertext is not base64"))?;
        let plaintext = self
            .apiv3_key
            .open_in_place(nonce, Aad::from(resource.associated_data.as_bytes()), &mut in_out)
            .map_err(|_| body("resource does not decrypt (wrong APIv3 key or tampered)"))?;
        Ok(plaintext.to_vec())
    }

    /// Verify a payment notify, parse its envelope, decrypt and parse the `transaction`.
    pub fn parse_notify(
        &self,
        headers: &NotifyHeaders,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Notification, NotifyError> {
        self.verify(headers, body, now)?;
        let envelope: NotifyEnvelope =
            serde_json::from_slice(body).map_err(|e| NotifyError::Body(format!("not a notify: {e}")))?;
        let plaintext = self.decrypt_resource(&envelope.resource)?;
        let wire: WireTransaction = serde_json::from_slice(&plaintext)
            .map_err(|e| NotifyError::Body(format!("resource is not a transaction: {e}")))?;
        Ok(Notification {
            id: envelope.id,
            event_type: envelope.event_type,
            transaction: Transaction {
                appid: wire.appid,
                mchid: wire.mchid,
                out_trade_no: wire.out_trade_no,
                transaction_id: wire.transaction_id,
                trade_state: wire.trade_state,
                success_time: wire.success_time,
                amount_total_fen: wire.amount.total,
                payer_openid: wire.payer.and_then(|p| p.openid),
            },
        })
    }
}

/// Read the `Wechatpay-Timestamp/-Nonce/-Signature/-Serial` headers of a notify or response.
/// A missing or non-ASCII header is [`NotifyError::Signature`] (nothing to verify with).
pub fn headers_from_map(map: &axum::http::HeaderMap) -> Result<NotifyHeaders, NotifyError> {
    let get = |name: &str| {
        map.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| NotifyError::Signature(format!("missing header {name}")))
    };
    Ok(NotifyHeaders {
        timestamp: get("Wechatpay-Timestamp")?,
        nonce: get("Wechatpay-Nonce")?,
        signature: get("Wechatpay-Signature")?,
        serial: get("Wechatpay-Serial")?,
    })
}

/// WeChat Pay's side, played by the sandbox: signs notifies and responses with a platform key
/// (serial `PUB_KEY_ID_SANDBOX…`) and encrypts resources with the APIv3 key.
pub struct PlatformSigner {
    serial: String,
    key: KeyPair,
    apiv3_key: SecretSlice<u8>,
}

impl fmt::Debug for PlatformSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformSigner").field("serial", &self.serial).finish_non_exhaustive()
    }
}

impl PlatformSigner {
    /// A platform with a fresh RSA-2048 key, serial `PUB_KEY_ID_SANDBOX` + 24 hex digits, and a
    /// random 32-byte APIv3 key (32 characters of `[0-9A-Za-z]`, like a real one).
    pub fn generate() -> Result<PlatformSigner, KeyError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError("RSA key generation failed".into()))?;
        let serial = format!("PUB_KEY_ID_SANDBOX{}", hex::encode_upper(crate::random::bytes::<12>()));
        let apiv3 = crate::random::alphanumeric(32);
        Ok(PlatformSigner { serial, key, apiv3_key: SecretSlice::from(apiv3.into_bytes()) })
    }

    /// A platform with a given serial, RSA private key (PKCS#8/PKCS#1, PEM/DER) and APIv3 key
    /// (32 bytes) — tests use it to sign wiremock responses.
    pub fn new(serial: impl Into<String>, private_key: &[u8], apiv3_key: &[u8]) -> Result<PlatformSigner, KeyError> {
        aes_key(apiv3_key)?;
        Ok(PlatformSigner {
            serial: serial.into(),
            key: parse_private_key(private_key)?,
            apiv3_key: SecretSlice::from(apiv3_key.to_vec()),
        })
    }

    /// The serial sent as `Wechatpay-Serial`.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The platform public key, SPKI DER (what merchants verify with).
    pub fn public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        spki_der(&self.key)
    }

    /// A verifier that knows this platform's key and APIv3 key — what a merchant configured
    /// with this platform would build.
    pub fn verifier(&self) -> Result<NotifyVerifier, KeyError> {
        NotifyVerifier::new(self.apiv3_key.expose_secret())?.with_key(self.serial.clone(), &self.public_key_der()?)
    }

    /// Encrypt `plaintext` as a notify resource (AES-256-GCM, random 12-character nonce,
    /// AAD = `associated_data`, `original_type` = `associated_data`).
    pub fn encrypt_resource(&self, plaintext: &[u8], associated_data: &str) -> Result<EncryptedResource, KeyError> {
        let key = aes_key(self.apiv3_key.expose_secret())?;
        let nonce_text = crate::random::alphanumeric(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce_text.as_bytes())
            .map_err(|_| KeyError("GCM nonce is not 12 bytes".into()))?;
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(nonce, Aad::from(associated_data.as_bytes()), &mut in_out)
            .map_err(|_| KeyError("AES-GCM encryption failed".into()))?;
        Ok(EncryptedResource {
            algorithm: RESOURCE_ALGORITHM.into(),
            ciphertext: B64.encode(in_out),
            nonce: nonce_text,
            associated_data: associated_data.into(),
            original_type: associated_data.into(),
        })
    }

    /// Sign `body` (a notify or a response) now with a fresh nonce.
    pub fn sign_notify(&self, body: &[u8]) -> Result<NotifyHeaders, KeyError> {
        self.sign_notify_at(body, Utc::now().timestamp(), &crate::random::nonce_str())
    }

    /// Sign `body` as of `timestamp` (seconds) with `nonce`: base64(RSA-SHA256(
    /// `timestamp\nnonce\nbody\n`)).
    pub fn sign_notify_at(&self, body: &[u8], timestamp: i64, nonce: &str) -> Result<NotifyHeaders, KeyError> {
        let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        Ok(NotifyHeaders {
            timestamp: timestamp.to_string(),
            nonce: nonce.to_string(),
            signature: rsa_sign(&self.key, &message)?,
            serial: self.serial.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;

    // RSA-2048 keygen takes a noticeable moment; share one platform and merchant across tests.
    fn platform() -> &'static PlatformSigner {
        static P: OnceLock<PlatformSigner> = OnceLock::new();
        P.get_or_init(|| PlatformSigner::generate().expect("keygen"))
    }

    fn merchant() -> &'static MerchantSigner {
        static M: OnceLock<MerchantSigner> = OnceLock::new();
        M.get_or_init(|| MerchantSigner::generate("1900000001", "SERIAL01").expect("keygen"))
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_734_508_528, 0).single().expect("valid time")
    }

    fn transaction_json() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "appid": "wx123", "mchid": "1900000001", "out_trade_no": "ORDER_000001",
            "transaction_id": "4200000000202412181234567890", "trade_type": "JSAPI",
            "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "success_time": "2024-12-18T15:55:28+08:00", "payer": {"openid": "o_payer"},
            "amount": {"total": 12345, "payer_total": 12345, "currency": "CNY", "payer_currency": "CNY"}
        }))
        .expect("json")
    }

    fn notify_body() -> Vec<u8> {
        let resource = platform().encrypt_resource(&transaction_json(), "transaction").expect("encrypt");
        serde_json::to_vec(&NotifyEnvelope {
            id: "EV-1".into(),
            create_time: "2024-12-18T15:55:28+08:00".into(),
            event_type: "TRANSACTION.SUCCESS".into(),
            resource_type: "encrypt-resource".into(),
            summary: "支付成功".into(),
            resource,
        })
        .expect("json")
    }

    #[test]
    fn notify_round_trip_decrypts_the_transaction() {
        let body = notify_body();
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        let verifier = platform().verifier().expect("verifier");
        let n = verifier.parse_notify(&headers, &body, now()).expect("verifies");
        assert_eq!(n.id, "EV-1");
        assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
        assert_eq!(n.transaction.out_trade_no, "ORDER_000001");
        assert_eq!(n.transaction.amount_total_fen, 12345);
        assert_eq!(n.transaction.payer_openid.as_deref(), Some("o_payer"));
        assert_eq!(n.transaction.trade_state, "SUCCESS");
        assert_eq!(n.transaction.success_time.as_deref(), Some("2024-12-18T15:55:28+08:00"));
    }

    #[test]
    fn tampered_body_is_refused() {
        let body = notify_body();
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        let mut tampered = body.clone();
        tampered.push(b' ');
        let verifier = platform().verifier().expect("verifier");
        assert!(matches!(verifier.verify(&headers, &tampered, now()), Err(NotifyError::Signature(_))));
        assert!(verifier.verify(&headers, &body, now()).is_ok());
    }

    #[test]
    fn wrong_key_unknown_serial_and_bad_base64_are_refused() {
        let body = notify_body();
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        // The right serial but another key: a merchant configured with the wrong public key.
        let other = PlatformSigner::generate().expect("keygen");
        let wrong = NotifyVerifier::new(&[7u8; 32])
            .and_then(|v| v.with_key(platform().serial(), &other.public_key_der()?))
            .expect("verifier");
        assert!(matches!(wrong.verify(&headers, &body, now()), Err(NotifyError::Signature(_))));

        let verifier = platform().verifier().expect("verifier");
        let unknown = NotifyHeaders { serial: "PUB_KEY_ID_OTHER".into(), ..headers.clone() };
        assert!(
            matches!(verifier.verify(&unknown, &body, now()), Err(NotifyError::Signature(m)) if m.contains("unknown serial"))
        );
        let garbage = NotifyHeaders { signature: "not base64!!".into(), ..headers.clone() };
        assert!(matches!(verifier.verify(&garbage, &body, now()), Err(NotifyError::Signature(_))));
    }

    #[test]
    fn timestamps_must_be_within_five_minutes() {
        let body = notify_body();
        let verifier = platform().verifier().expect("verifier");
        for (offset, ok) in [(-301, false), (301, false), (-299, true), (299, true), (300, true)] {
            let headers = platform().sign_notify_at(&body, now().timestamp() + offset, "n1").expect("sign");
            assert_eq!(verifier.verify(&headers, &body, now()).is_ok(), ok, "offset {offset}");
        }
        let mut headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        headers.timestamp = format!("+{}", now().timestamp());
        assert!(matches!(verifier.verify(&headers, &body, now()), Err(NotifyError::Signature(_))));
    }

    #[test]
    fn probe_signatures_are_refused() {
        let body = notify_body();
        let mut headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        headers.signature = format!("{PROBE_SIGNATURE_PREFIX}{}", headers.signature);
        let verifier = platform().verifier().expect("verifier");
        assert!(
            matches!(verifier.verify(&headers, &body, now()), Err(NotifyError::Signature(m)) if m.contains("probe"))
        );
    }

    #[test]
    fn gcm_round_trip_and_tampering() {
        let verifier = platform().verifier().expect("verifier");
        let resource = platform().encrypt_resource(b"hello", "transaction").expect("encrypt");
        assert_eq!(resource.nonce.len(), 12);
        assert_eq!(verifier.decrypt_resource(&resource).expect("decrypts"), b"hello");

        let mut ciphertext = B64.decode(&resource.ciphertext).expect("b64");
        ciphertext[0] ^= 1;
        let tampered = EncryptedResource { ciphertext: B64.encode(&ciphertext), ..resource.clone() };
        assert!(matches!(verifier.decrypt_resource(&tampered), Err(NotifyError::Body(_))));
        let wrong_aad = EncryptedResource { associated_data: "refund".into(), ..resource.clone() };
        assert!(matches!(verifier.decrypt_resource(&wrong_aad), Err(NotifyError::Body(_))));
        let wrong_key = NotifyVerifier::new(&[1u8; 32]).expect("verifier");
        assert!(matches!(wrong_key.decrypt_resource(&resource), Err(NotifyError::Body(_))));
    }

    #[test]
    fn undecryptable_notify_is_a_body_error() {
        let mut envelope: NotifyEnvelope = serde_json::from_slice(&notify_body()).expect("json");
        envelope.resource.ciphertext = B64.encode(b"0123456789abcdef0123");
        let body = serde_json::to_vec(&envelope).expect("json");
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        let verifier = platform().verifier().expect("verifier");
        assert!(matches!(verifier.parse_notify(&headers, &body, now()), Err(NotifyError::Body(_))));
        let headers = platform().sign_notify_at(b"{}", now().timestamp(), "n1").expect("sign");
        assert!(matches!(verifier.parse_notify(&headers, b"{}", now()), Err(NotifyError::Body(_))));
    }

    #[test]
    fn pay_params_verify_with_the_merchant_public_key() {
        let params = merchant().pay_params("wx123", "wx201410272009395522657a690389285100").expect("sign");
        assert_eq!(params.package, "prepay_id=wx201410272009395522657a690389285100");
        assert_eq!(params.sign_type, "RSA");
        assert_eq!(params.app_id, "wx123");
        let message = format!("wx123\n{}\n{}\n{}\n", params.time_stamp, params.nonce_str, params.package);
        let key = parse_public_key(&merchant().public_key_der().expect("der")).expect("key");
        let signature = B64.decode(&params.pay_sign).expect("b64");
        assert!(key.verify_sig(message.as_bytes(), &signature).is_ok());
        assert!(key.verify_sig(b"other", &signature).is_err());
    }

    #[test]
    fn authorization_header_has_the_v3_shape_and_verifies() {
        let body = br#"{"appid":"wx123"}"#;
        let header = merchant()
            .authorization_at(
                "POST",
                "/v3/pay/transactions/jsapi",
                body,
                1_554_208_460,
                "593BEC0C930BF1AFEB40B4A08C8FB242",
            )
            .expect("sign");
        assert!(header.starts_with(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\",signature=\""
        ));
        assert!(header.ends_with(",timestamp=\"1554208460\",serial_no=\"SERIAL01\""));
        let params = parse_authorization(&header).expect("parses");
        let message = format!(
            "POST\n/v3/pay/transactions/jsapi\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{}\n",
            std::str::from_utf8(body).expect("utf8")
        );
        let key = parse_public_key(&merchant().public_key_der().expect("der")).expect("key");
        let signature = B64.decode(&params["signature"]).expect("b64");
        assert!(key.verify_sig(message.as_bytes(), &signature).is_ok());
    }

    #[test]
    fn keys_load_from_pem_and_bad_keys_are_errors() {
        let pem = to_pem("PRIVATE KEY", &merchant().private_key_pkcs8_der().expect("der"));
        let reloaded = MerchantSigner::new("1", "S", pem.as_bytes()).expect("parses");
        assert_eq!(reloaded.public_key_der().expect("der"), merchant().public_key_der().expect("der"));
        let public_pem = to_pem("PUBLIC KEY", &merchant().public_key_der().expect("der"));
        assert!(parse_public_key(public_pem.as_bytes()).is_ok());

        assert!(
            MerchantSigner::new("1", "S", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
        assert!(MerchantSigner::new("1", "S", b"garbage").is_err());
        assert!(parse_public_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
        assert!(NotifyVerifier::new(b"short").is_err());
        let debug = format!("{:?} {:?}", merchant(), platform());
        assert!(!debug.contains("KeyPair") && debug.contains("SERIAL01"));
    }
}
