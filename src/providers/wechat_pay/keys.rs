//! Key loading for WeChat Pay v3 (domain.md §2.2): the merchant's RSA private key
//! (`apiclient_key.pem`), WeChat Pay's RSA public key (`pub_key.pem`, `PUB_KEY_ID_…`) and the
//! APIv3 key. PEM is read by `rustls-pki-types`; the keys themselves by aws-lc-rs.

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

/// A key that does not parse, or a crypto operation that failed. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn rejected(what: &'static str) -> impl FnOnce(aws_lc_rs::error::KeyRejected) -> KeyError {
    move |e| KeyError(format!("{what}: {e}"))
}

/// Whether `bytes` hold a PEM section (DER keys start with a SEQUENCE byte, never with text).
fn has_pem(bytes: &[u8]) -> bool {
    contains(bytes, b"-----BEGIN ")
}

fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// What a PEM holds instead of the key asked for, for the error message. pki-types skips
/// sections it has no type for, so the encrypted private key (`ENCRYPTED PRIVATE KEY`) is
/// recognised here by its label.
fn found_instead(bytes: &[u8], error: pem::Error) -> String {
    if !matches!(error, pem::Error::NoItemsFound) {
        return format!("unreadable PEM: {error}");
    }
    if contains(bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return "an encrypted private key; decrypt it first (`openssl pkcs8 -in key.pem -out plain.pem`)".into();
    }
    match <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes).next() {
        Some(Ok((SectionKind::Certificate, _))) => {
            "a certificate: extract its public key with `openssl x509 -pubkey -noout -in cert.pem`".into()
        }
        Some(Ok((kind, _))) => format!("a PEM {kind:?} section"),
        Some(Err(e)) => format!("unreadable PEM: {e}"),
        None => "no PEM section it can read".into(),
    }
}

/// Encode DER as PEM with 64-character lines (writing generated keys to files; pki-types only
/// reads PEM).
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
/// (`RSA PRIVATE KEY`), PEM or DER. Encrypted and non-RSA keys are [`KeyError`]s that say so.
pub fn parse_private_key(bytes: &[u8]) -> Result<KeyPair, KeyError> {
    if !has_pem(bytes) {
        return KeyPair::from_pkcs8(bytes)
            .or_else(|_| KeyPair::from_der(bytes))
            .map_err(rejected("RSA private key (DER)"));
    }
    match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(PrivateKeyDer::Pkcs8(der)) => {
            KeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(rejected("PKCS#8 RSA private key"))
        }
        Ok(PrivateKeyDer::Pkcs1(der)) => {
            KeyPair::from_der(der.secret_pkcs1_der()).map_err(rejected("PKCS#1 RSA private key"))
        }
        Ok(_) => Err(KeyError("expected an RSA private key, found an EC key".into())),
        Err(e) => Err(KeyError(format!("expected an RSA private key, found {}", found_instead(bytes, e)))),
    }
}

/// Parse an RSA public key for RSA-SHA256 verification: SPKI (`PUBLIC KEY`, the WeChat Pay
/// public key file) or PKCS#1 (`RSA PUBLIC KEY`), PEM or DER. Certificates are refused: extract
/// their key with `openssl x509 -pubkey -noout -in cert.pem`.
pub fn parse_public_key(bytes: &[u8]) -> Result<ParsedPublicKey, KeyError> {
    let der = if !has_pem(bytes) {
        bytes.to_vec()
    } else if contains(bytes, b"-----BEGIN RSA PUBLIC KEY-----") {
        // pki-types has no type for the PKCS#1 label; under the SPKI label the same base64 body
        // decodes to the same PKCS#1 DER, which aws-lc-rs takes as well as SPKI.
        let relabelled = String::from_utf8_lossy(bytes).replace("RSA PUBLIC KEY-----", "PUBLIC KEY-----");
        SubjectPublicKeyInfoDer::from_pem_slice(relabelled.as_bytes())
            .map_err(|e| KeyError(format!("PKCS#1 RSA public key: {e}")))?
            .to_vec()
    } else {
        SubjectPublicKeyInfoDer::from_pem_slice(bytes)
            .map_err(|e| KeyError(format!("expected an RSA public key, found {}", found_instead(bytes, e))))?
            .to_vec()
    };
    ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).map_err(rejected("RSA public key"))
}

/// The public half of `key`, SPKI DER.
pub(super) fn spki_der(key: &KeyPair) -> Result<Vec<u8>, KeyError> {
    use aws_lc_rs::signature::KeyPair as _;
    let der = key.public_key().as_der().map_err(|_| KeyError("encoding the public key failed".into()))?;
    Ok(der.as_ref().to_vec())
}

/// `key`, PKCS#8 DER.
pub(super) fn pkcs8_der(key: &KeyPair) -> Result<Vec<u8>, KeyError> {
    let der = key.as_der().map_err(|_| KeyError("encoding the private key failed".into()))?;
    Ok(der.as_ref().to_vec())
}

/// The APIv3 key (its 32 ASCII bytes) as an AES-256-GCM key.
pub(super) fn apiv3_key(bytes: &[u8]) -> Result<LessSafeKey, KeyError> {
    if bytes.len() != 32 {
        return Err(KeyError(format!("the APIv3 key must be 32 bytes, got {}", bytes.len())));
    }
    let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError("unusable APIv3 key".into()))?;
    Ok(LessSafeKey::new(key))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;

    use super::*;
    use crate::providers::wechat_pay::vectors::{self, testing_key};

    /// The DER of the first PEM section (any label) — test input in other encodings.
    fn der(pem: &str) -> Vec<u8> {
        let (_, der) = <(SectionKind, Vec<u8>)>::from_pem_slice(pem.as_bytes()).expect("PEM");
        der
    }

    /// Strip a fixed-size ASN.1 wrapper that `der` must start with (PKCS#8 → PKCS#1, SPKI → PKCS#1).
    fn unwrap(der: &[u8], wrapper: &[u8]) -> Vec<u8> {
        assert_eq!(&der[..wrapper.len()], wrapper, "an RSA-2048 key in the expected wrapper");
        der[wrapper.len()..].to_vec()
    }

    // PrivateKeyInfo { version 0, rsaEncryption NULL, OCTET STRING (1192 bytes) } of a 2048-bit key.
    const PKCS8_WRAPPER: &[u8] = &[
        0x30, 0x82, 0x04, 0xbe, 0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
        0x01, 0x01, 0x05, 0x00, 0x04, 0x82, 0x04, 0xa8,
    ];
    // SubjectPublicKeyInfo { rsaEncryption NULL, BIT STRING (270 bytes, 0 unused bits) }.
    const SPKI_WRAPPER: &[u8] = &[
        0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
        0x00, 0x03, 0x82, 0x01, 0x0f, 0x00,
    ];

    #[test]
    fn private_keys_load_as_pkcs8_and_pkcs1_pem_and_der() {
        let pkcs8_pem = testing_key(vectors::GO_PRIVATE_KEY);
        let pkcs8 = der(&pkcs8_pem);
        let pkcs1_der = unwrap(&pkcs8, PKCS8_WRAPPER);
        let pkcs1_pem = to_pem("RSA PRIVATE KEY", &pkcs1_der);
        let expected = der(vectors::GO_PUBLIC_KEY);
        for (what, bytes) in [
            ("PKCS#8 PEM", pkcs8_pem.as_bytes()),
            ("PKCS#8 DER", &pkcs8[..]),
            ("PKCS#1 PEM", pkcs1_pem.as_bytes()),
            ("PKCS#1 DER", &pkcs1_der[..]),
        ] {
            let key = parse_private_key(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(spki_der(&key).expect("spki"), expected, "{what}: the published public half");
        }
        // A generated key written with `to_pem` reads back as the same key.
        let pem = to_pem("PRIVATE KEY", &pkcs8_der(&parse_private_key(&pkcs8).expect("key")).expect("der"));
        assert_eq!(der(&pem), pkcs8);
    }

    #[test]
    fn public_keys_load_as_spki_and_pkcs1_pem_and_der() {
        let spki = der(vectors::GO_PUBLIC_KEY);
        let pkcs1_der = unwrap(&spki, SPKI_WRAPPER);
        let pkcs1_pem = to_pem("RSA PUBLIC KEY", &pkcs1_der);
        let signature = base64::engine::general_purpose::STANDARD.decode(vectors::GO_SOURCE_SIGNATURE).expect("b64");
        for (what, bytes) in [
            ("SPKI PEM", vectors::GO_PUBLIC_KEY.as_bytes()),
            ("SPKI DER", &spki[..]),
            ("PKCS#1 PEM", pkcs1_pem.as_bytes()),
            ("PKCS#1 DER", &pkcs1_der[..]),
        ] {
            let key = parse_public_key(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            // wechatpay-go's sha256withrsa_pubkey_verifier_test.go cases: "source" verifies,
            // "wrong source" does not.
            assert!(key.verify_sig(b"source", &signature).is_ok(), "{what}");
            assert!(key.verify_sig(b"wrong source", &signature).is_err(), "{what}");
        }
        let generated = KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("keygen");
        assert_eq!(spki_der(&generated).expect("spki"), generated.public_key().as_der().expect("der").as_ref());
    }

    #[test]
    fn unusable_keys_are_errors_that_say_why() {
        let message = |r: Result<KeyPair, KeyError>| r.err().map(|e| e.0).unwrap_or_default();
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(message(parse_private_key(encrypted.as_bytes())).contains("encrypted"));
        let certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let refused = parse_public_key(certificate.as_bytes()).err().map(|e| e.0).unwrap_or_default();
        assert!(refused.contains("openssl x509 -pubkey"), "{refused}");
        assert!(message(parse_private_key(certificate.as_bytes())).contains("found a certificate"));
        // A public key where the private key belongs, and the other way round.
        assert!(message(parse_private_key(vectors::GO_PUBLIC_KEY.as_bytes())).contains("PublicKey"));
        assert!(parse_public_key(testing_key(vectors::GO_PRIVATE_KEY).as_bytes()).is_err());
        // The right label over bytes that are no key; no PEM and no DER; a PEM without its end.
        assert!(parse_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        assert!(parse_private_key(b"garbage").is_err());
        assert!(parse_public_key(b"garbage").is_err());
        assert!(message(parse_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n")).contains("unreadable PEM"));
        // The test label wechatpay-go uses is no key label.
        assert!(parse_private_key(vectors::GO_PRIVATE_KEY.as_bytes()).is_err());
    }

    #[test]
    fn the_apiv3_key_is_32_bytes() {
        assert!(apiv3_key(vectors::JAVA_APIV3_KEY.as_bytes()).is_ok());
        assert!(apiv3_key(b"testMchAPIv3Key0").is_err(), "16 bytes would be AES-128");
        assert!(apiv3_key(&[0u8; 33]).is_err());
    }
}
