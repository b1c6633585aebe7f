//! Verification of what WeChat Pay sends (domain.md §2.2): the RSA-SHA256 signature of API
//! answers and notifies (`Wechatpay-*` headers over `timestamp\nnonce\nbody\n`, key chosen by
//! serial, timestamp within 5 minutes, probe signatures refused) and the AEAD_AES_256_GCM
//! `resource` of notifies, opened with the APIv3 key.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce};
use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use axum::http::HeaderMap;

use super::keys::{self, KeyError};
use super::{Notification, NotifyError, NotifyEvent, refund_notice_from_json, transaction_from_json};

/// Signatures with this prefix are WeChat Pay's probe traffic: they must never verify
/// (domain.md §2.2 notify step 4).
pub const PROBE_SIGNATURE_PREFIX: &str = "WECHATPAY/SIGNTEST/";

/// How far a notify or response timestamp may be from now, in seconds (domain.md §2.2 step 3).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

/// The only resource algorithm WeChat Pay v3 uses.
pub const RESOURCE_ALGORITHM: &str = "AEAD_AES_256_GCM";

/// The headers WeChat Pay signs its answers and notifies with: seconds since the epoch.
pub const HEADER_TIMESTAMP: &str = "Wechatpay-Timestamp";
/// A random string, part of the signed message.
pub const HEADER_NONCE: &str = "Wechatpay-Nonce";
/// base64 of the RSA-SHA256 signature.
pub const HEADER_SIGNATURE: &str = "Wechatpay-Signature";
/// Which key signed: a platform certificate serial or `PUB_KEY_ID_…`.
pub const HEADER_SERIAL: &str = "Wechatpay-Serial";
/// Always [`super::sign::SIGNATURE_TYPE`].
pub const HEADER_SIGNATURE_TYPE: &str = "Wechatpay-Signature-Type";

/// What WeChat Pay's signature covers: `timestamp\nnonce\nbody\n` (the raw body bytes).
pub(super) fn signed_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// An encrypted `resource` of a notify (also what [`super::sandbox::PlatformSigner::encrypt_resource`] makes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    /// Always `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// base64 of ciphertext ‖ 16-byte tag.
    pub ciphertext: String,
    /// 12 ASCII characters, used as the GCM nonce bytes.
    pub nonce: String,
    /// The GCM additional data (`transaction` for payments, `refund` for refunds); may be empty.
    #[serde(default)]
    pub associated_data: String,
    /// What the plaintext is (`transaction`, `refund`).
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

/// The `Wechatpay-*` headers of a notify or answer, as read from the request or response.
struct NotifyHeaders<'a> {
    timestamp: &'a str,
    nonce: &'a str,
    signature: &'a str,
    serial: &'a str,
}

impl<'a> NotifyHeaders<'a> {
    /// A missing or non-ASCII header is [`NotifyError::Signature`] (nothing to verify with).
    fn from_map(map: &'a HeaderMap) -> Result<NotifyHeaders<'a>, NotifyError> {
        let get = |name: &str| {
            map.get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| NotifyError::Signature(format!("missing header {name}")))
        };
        Ok(NotifyHeaders {
            timestamp: get(HEADER_TIMESTAMP)?,
            nonce: get(HEADER_NONCE)?,
            signature: get(HEADER_SIGNATURE)?,
            serial: get(HEADER_SERIAL)?,
        })
    }
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
        Ok(NotifyVerifier { keys: BTreeMap::new(), apiv3_key: keys::apiv3_key(apiv3_key)? })
    }

    /// Add the public key for `serial` (SPKI or PKCS#1, PEM or DER).
    pub fn add_key(&mut self, serial: impl Into<String>, public_key: &[u8]) -> Result<(), KeyError> {
        let serial = serial.into();
        if serial.is_empty() {
            return Err(KeyError("a verification key needs a serial".into()));
        }
        self.keys.insert(serial, keys::parse_public_key(public_key)?);
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
    /// named by `Wechatpay-Serial`, all read from `headers`. Refuses, as
    /// [`NotifyError::Signature`]: a missing header, an unknown serial, a probe
    /// (`WECHATPAY/SIGNTEST/…`), a timestamp that is not all digits or more than
    /// [`MAX_CLOCK_SKEW_SECONDS`] from `now`, a signature that is not base64 or does not verify.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<(), NotifyError> {
        let refuse = |why: &str| Err(NotifyError::Signature(why.to_string()));
        let headers = NotifyHeaders::from_map(headers)?;
        let Some(key) = self.keys.get(headers.serial) else {
            return Err(NotifyError::Signature(format!("unknown serial {}", headers.serial)));
        };
        if headers.signature.starts_with(PROBE_SIGNATURE_PREFIX) {
            return refuse("probe signature (WECHATPAY/SIGNTEST/)");
        }
        let ts = headers.timestamp;
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
        key.verify_sig(&signed_message(ts, headers.nonce, body), &signature)
            .or_else(|_| refuse("signature does not verify"))
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

    /// Verify a notify ([`NotifyVerifier::verify`]), parse its envelope, decrypt its resource and
    /// read it by `original_type`: `transaction` (payments) or `refund` (refunds; both arrive at
    /// the same notify URL). Without an `original_type`, the `event_type` prefix (`TRANSACTION.`,
    /// `REFUND.`) decides. Anything else is [`NotifyError::Body`].
    pub fn parse_notify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Notification, NotifyError> {
        self.verify(headers, body, now)?;
        let envelope: NotifyEnvelope =
            serde_json::from_slice(body).map_err(|e| NotifyError::Body(format!("not a notify: {e}")))?;
        let plaintext = self.decrypt_resource(&envelope.resource)?;
        let kind = match envelope.resource.original_type.as_str() {
            "" => envelope.event_type.split('.').next().unwrap_or_default().to_ascii_lowercase(),
            kind => kind.to_string(),
        };
        let event = match kind.as_str() {
            "transaction" => transaction_from_json(&plaintext).map(NotifyEvent::Transaction),
            "refund" => refund_notice_from_json(&plaintext).map(NotifyEvent::Refund),
            other => Err(format!("unknown resource type {other:?} ({})", envelope.event_type)),
        }
        .map_err(|e| NotifyError::Body(format!("resource: {e}")))?;
        Ok(Notification { id: envelope.id, event_type: envelope.event_type, event })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use axum::http::HeaderValue;
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;
    use crate::providers::wechat_pay::sandbox::PlatformSigner;
    use crate::providers::wechat_pay::{RefundStatus, TradeState, vectors};

    // RSA-2048 keygen takes a noticeable moment; share one platform across tests.
    fn platform() -> &'static PlatformSigner {
        static P: OnceLock<PlatformSigner> = OnceLock::new();
        P.get_or_init(|| PlatformSigner::generate().expect("keygen"))
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_734_508_528, 0).single().expect("valid time")
    }

    /// `headers` with `name` set to `value`.
    fn with(headers: &HeaderMap, name: &'static str, value: &str) -> HeaderMap {
        let mut headers = headers.clone();
        headers.insert(name, HeaderValue::from_str(value).expect("header value"));
        headers
    }

    fn transaction_json() -> serde_json::Value {
        json!({
            "appid": "wx123", "mchid": "1900000001", "out_trade_no": "ORDER_000001",
            "transaction_id": "4200000000202412181234567890", "trade_type": "JSAPI",
            "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "success_time": "2024-12-18T15:55:28+08:00", "payer": {"openid": "o_payer"},
            "amount": {"total": 12345, "payer_total": 12345, "currency": "CNY", "payer_currency": "CNY"}
        })
    }

    /// A notify of `event_type` whose resource (`associated_data` = `original_type` = `kind`) is
    /// `plaintext`.
    fn notify_body_of(event_type: &str, kind: &str, plaintext: &serde_json::Value) -> Vec<u8> {
        let resource = platform().encrypt_resource(plaintext.to_string().as_bytes(), kind).expect("encrypt");
        serde_json::to_vec(&NotifyEnvelope {
            id: "EV-1".into(),
            create_time: "2024-12-18T15:55:28+08:00".into(),
            event_type: event_type.into(),
            resource_type: "encrypt-resource".into(),
            summary: "支付成功".into(),
            resource,
        })
        .expect("json")
    }

    fn notify_body() -> Vec<u8> {
        notify_body_of("TRANSACTION.SUCCESS", "transaction", &transaction_json())
    }

    #[test]
    fn notify_round_trip_decrypts_the_transaction() {
        let body = notify_body();
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        let verifier = platform().verifier().expect("verifier");
        let n = verifier.parse_notify(&headers, &body, now()).expect("verifies");
        assert_eq!((n.id.as_str(), n.event_type.as_str()), ("EV-1", "TRANSACTION.SUCCESS"));
        let NotifyEvent::Transaction(t) = n.event else { panic!("a transaction: {:?}", n.event) };
        assert_eq!(t.out_trade_no, "ORDER_000001");
        assert_eq!(t.transaction_id.as_deref(), Some("4200000000202412181234567890"));
        assert_eq!(t.amount_total_fen, 12345);
        assert_eq!(t.payer_openid.as_deref(), Some("o_payer"));
        assert_eq!(t.trade_state, TradeState::Success);
        // 15:55:28 Beijing time is 07:55:28 UTC.
        assert_eq!(t.success_time, Utc.with_ymd_and_hms(2024, 12, 18, 7, 55, 28).single());
    }

    #[test]
    fn refund_notifies_arrive_at_the_same_parser() {
        let refund = json!({
            "mchid": "1900000001", "out_trade_no": "ORDER_000001", "transaction_id": "4200000000202412181234567890",
            "out_refund_no": "R_000001", "refund_id": "50000000382019052709732678859", "refund_status": "SUCCESS",
            "success_time": "2024-12-18T16:00:00+08:00", "user_received_account": "招商银行信用卡0403",
            "amount": {"total": 12345, "refund": 2345, "payer_total": 12345, "payer_refund": 2345}
        });
        let verifier = platform().verifier().expect("verifier");
        let body = notify_body_of("REFUND.SUCCESS", "refund", &refund);
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        let n = verifier.parse_notify(&headers, &body, now()).expect("verifies");
        let NotifyEvent::Refund(r) = n.event else { panic!("a refund: {:?}", n.event) };
        assert_eq!((r.out_refund_no.as_str(), r.refund_id.as_str()), ("R_000001", "50000000382019052709732678859"));
        assert_eq!((r.mchid.as_str(), r.out_trade_no.as_str()), ("1900000001", "ORDER_000001"));
        assert_eq!((r.status, r.refund_fen, r.total_fen), (RefundStatus::Success, 2345, 12345));
        assert_eq!(r.success_time, Utc.with_ymd_and_hms(2024, 12, 18, 8, 0, 0).single());

        // ABNORMAL has no success_time; without original_type the event type decides.
        let abnormal = json!({
            "mchid": "1900000001", "out_trade_no": "ORDER_000001", "transaction_id": "4200000000202412181234567890",
            "out_refund_no": "R_000002", "refund_id": "50000000382019052709732678860", "refund_status": "ABNORMAL",
            "amount": {"total": 12345, "refund": 100, "payer_total": 12345, "payer_refund": 100}
        });
        let mut envelope: NotifyEnvelope =
            serde_json::from_slice(&notify_body_of("REFUND.ABNORMAL", "refund", &abnormal)).expect("json");
        envelope.resource.original_type = String::new();
        let body = serde_json::to_vec(&envelope).expect("json");
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        let n = verifier.parse_notify(&headers, &body, now()).expect("verifies");
        assert!(
            matches!(n.event, NotifyEvent::Refund(r) if r.status == RefundStatus::Abnormal && r.success_time.is_none())
        );

        // A resource of a kind we do not read, and a refund with a status we do not know.
        for (event_type, kind, plaintext) in [
            ("PAYSCORE.USER_OPEN_SERVICE", "payscore", json!({})),
            (
                "REFUND.SUCCESS",
                "refund",
                json!({"out_refund_no": "R", "refund_id": "5", "refund_status": "LOST", "amount": {"total": 1, "refund": 1}}),
            ),
        ] {
            let body = notify_body_of(event_type, kind, &plaintext);
            let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
            assert!(matches!(verifier.parse_notify(&headers, &body, now()), Err(NotifyError::Body(_))), "{event_type}");
        }
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
    fn wrong_key_unknown_serial_missing_headers_and_bad_base64_are_refused() {
        let body = notify_body();
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        // The right serial but another key: a merchant configured with the wrong public key.
        let other = PlatformSigner::generate().expect("keygen");
        let wrong = NotifyVerifier::new(&[7u8; 32])
            .and_then(|v| v.with_key(platform().serial(), &other.public_key_der()?))
            .expect("verifier");
        assert!(matches!(wrong.verify(&headers, &body, now()), Err(NotifyError::Signature(_))));

        let verifier = platform().verifier().expect("verifier");
        let unknown = with(&headers, HEADER_SERIAL, "PUB_KEY_ID_OTHER");
        assert!(
            matches!(verifier.verify(&unknown, &body, now()), Err(NotifyError::Signature(m)) if m.contains("unknown serial"))
        );
        let garbage = with(&headers, HEADER_SIGNATURE, "not base64!!");
        assert!(matches!(verifier.verify(&garbage, &body, now()), Err(NotifyError::Signature(_))));
        for name in [HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SERIAL] {
            let mut missing = headers.clone();
            missing.remove(name);
            assert!(
                matches!(verifier.verify(&missing, &body, now()), Err(NotifyError::Signature(m)) if m.contains("missing header")),
                "{name}"
            );
        }
    }

    #[test]
    fn timestamps_must_be_within_five_minutes() {
        let body = notify_body();
        let verifier = platform().verifier().expect("verifier");
        for (offset, ok) in [(-301, false), (301, false), (-299, true), (299, true), (300, true)] {
            let headers = platform().sign_notify_at(&body, now().timestamp() + offset, "n1").expect("sign");
            assert_eq!(verifier.verify(&headers, &body, now()).is_ok(), ok, "offset {offset}");
        }
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        let signed = with(&headers, HEADER_TIMESTAMP, &format!("+{}", now().timestamp()));
        assert!(matches!(verifier.verify(&signed, &body, now()), Err(NotifyError::Signature(_))));
    }

    #[test]
    fn probe_signatures_are_refused() {
        let body = notify_body();
        let headers = platform().sign_notify_at(&body, now().timestamp(), "n1").expect("sign");
        let signature = headers[HEADER_SIGNATURE].to_str().expect("ascii").to_string();
        let probe = with(&headers, HEADER_SIGNATURE, &format!("{PROBE_SIGNATURE_PREFIX}{signature}"));
        let verifier = platform().verifier().expect("verifier");
        assert!(matches!(verifier.verify(&probe, &body, now()), Err(NotifyError::Signature(m)) if m.contains("probe")));
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

    // ---- published vectors (vectors.rs) -------------------------------------------------------

    fn go_notify_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (HEADER_TIMESTAMP, vectors::GO_NOTIFY_TIMESTAMP),
            (HEADER_NONCE, vectors::GO_NOTIFY_NONCE),
            (HEADER_SIGNATURE, vectors::GO_NOTIFY_SIGNATURE),
            (HEADER_SERIAL, vectors::GO_NOTIFY_SERIAL),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers
    }

    fn go_notify_time() -> DateTime<Utc> {
        Utc.timestamp_opt(vectors::GO_NOTIFY_TIMESTAMP.parse().expect("seconds"), 0).single().expect("valid time")
    }

    #[test]
    fn wechatpay_go_notify_verifies_and_refuses_when_tampered() {
        let verifier = NotifyVerifier::new(vectors::JAVA_APIV3_KEY.as_bytes())
            .and_then(|v| v.with_key(vectors::GO_NOTIFY_SERIAL, vectors::GO_PUBLIC_KEY.as_bytes()))
            .expect("verifier");
        let body = vectors::GO_NOTIFY_BODY.as_bytes();
        let headers = go_notify_headers();
        verifier.verify(&headers, body, go_notify_time()).expect("WeChat's own signed notify verifies");

        // One word of the body changed (签约成功 → 签约失败).
        let tampered = vectors::GO_NOTIFY_BODY.replace("签约成功", "签约失败");
        assert!(matches!(
            verifier.verify(&headers, tampered.as_bytes(), go_notify_time()),
            Err(NotifyError::Signature(_))
        ));
        // A trailing newline, as a body re-serialised or read twice might gain.
        let mut newline = body.to_vec();
        newline.push(b'\n');
        assert!(verifier.verify(&headers, &newline, go_notify_time()).is_err());
        // Another nonce or timestamp than the ones signed.
        let other_nonce = with(&headers, HEADER_NONCE, "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBZ");
        assert!(verifier.verify(&other_nonce, body, go_notify_time()).is_err());
        let other_time = with(&headers, HEADER_TIMESTAMP, "1624523847");
        assert!(verifier.verify(&other_time, body, go_notify_time()).is_err());
        // The genuine notify, more than five minutes late.
        let late = go_notify_time() + chrono::TimeDelta::seconds(MAX_CLOCK_SKEW_SECONDS + 1);
        assert!(
            matches!(verifier.verify(&headers, body, late), Err(NotifyError::Signature(m)) if m.contains("5 minutes"))
        );
    }

    #[test]
    fn wechatpay_java_gcm_vector_opens() {
        let verifier = NotifyVerifier::new(vectors::JAVA_APIV3_KEY.as_bytes()).expect("verifier");
        let resource = EncryptedResource {
            algorithm: RESOURCE_ALGORITHM.into(),
            ciphertext: vectors::JAVA_GCM_CIPHERTEXT.into(),
            nonce: vectors::JAVA_GCM_NONCE.into(),
            associated_data: vectors::JAVA_GCM_AAD.into(),
            original_type: String::new(),
        };
        assert_eq!(verifier.decrypt_resource(&resource).expect("opens"), vectors::JAVA_GCM_PLAINTEXT.as_bytes());
        // The SDK's own negative cases: another AAD, another nonce.
        let bad_aad = EncryptedResource { associated_data: "bad-associatedData".into(), ..resource.clone() };
        assert!(matches!(verifier.decrypt_resource(&bad_aad), Err(NotifyError::Body(_))));
        let bad_nonce = EncryptedResource { nonce: "bad-4a9R25RW".into(), ..resource };
        assert!(matches!(verifier.decrypt_resource(&bad_nonce), Err(NotifyError::Body(_))));
    }

    #[test]
    fn wechatpay_java_certificate_resource_opens_to_the_named_certificate() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject as _;

        let verifier = NotifyVerifier::new(vectors::JAVA_APIV3_KEY.as_bytes()).expect("verifier");
        let resource = EncryptedResource {
            algorithm: RESOURCE_ALGORITHM.into(),
            ciphertext: vectors::JAVA_CERTIFICATE_CIPHERTEXT.into(),
            nonce: vectors::JAVA_CERTIFICATE_NONCE.into(),
            associated_data: "certificate".into(),
            original_type: String::new(),
        };
        let plaintext = verifier.decrypt_resource(&resource).expect("opens");
        let certificate = CertificateDer::from_pem_slice(&plaintext).expect("a PEM certificate");
        // The serial it was published under is the certificate's own (its DER INTEGER).
        let serial = hex::decode(vectors::JAVA_CERTIFICATE_SERIAL).expect("hex");
        assert!(certificate.windows(serial.len()).any(|w| w == serial.as_slice()));
    }
}
