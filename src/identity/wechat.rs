//! WeChat mini-program login for one appid (domain.md §1): `wx.login()` code → code2Session →
//! the API's user of (appid, openid), created on the first login; the session_key kept server
//! side, sealed (AES-256-GCM, [`Vault`]), never sent to or taken from a client; encryptedData
//! (AES-128-CBC with that key, watermark appid checked) opened here and nowhere else.

use std::sync::Arc;

use aws_lc_rs::cipher::{
    AES_128, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use crate::clock::Clock;
use crate::pii::Vault;
use crate::providers::{ProviderError, WechatLogin};
use crate::storage::identity::WechatLogin as LoginRow;
use crate::storage::{Db, StorageError};

/// The nickname WeChat gives everyone since November 2022 (anonymised getUserProfile data).
pub const ANONYMOUS_NICKNAME: &str = "微信用户";
/// WeChat's grey default avatar (anonymised getUserProfile data).
pub const DEFAULT_AVATAR: &str = "https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQUq24ZEaGT4poC6icRiccVGKSyXwibcPq4BWmiaIGuG1icwxaQX6grC9VemZoJ8rg/132";

/// A WeChat user after login. The API keeps its own user row under `user_id`, inserted if absent
/// on every login (not only when `is_new`: a first login whose API write failed must not leave
/// the user without a row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatUser {
    /// The API's user id (allocated on the first login).
    pub user_id: String,
    /// The openid under this mini-program.
    pub openid: String,
    /// The unionid, when the mini-program is bound to an open-platform account.
    pub unionid: Option<String>,
    /// Whether this login created the user.
    pub is_new: bool,
}

/// code2Session's errcodes that are the client's code at fault: `40029` invalid, used,
/// expired or another mini-program's, and `40226` a high-risk user WeChat blocks (domain.md
/// §1.1); `41008` no code (among the errors seen in practice there); `40163` a code already
/// used (WeChat's own list of code2Session errcodes). Any other errcode is
/// [`WechatError::Unavailable`].
pub const CLIENT_ERRCODES: [&str; 4] = ["40029", "40163", "41008", "40226"];

/// Why a WeChat login or decryption failed.
#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    /// WeChat refused the code for one of [`CLIENT_ERRCODES`] (`40029` invalid/used/foreign,
    /// `40226` high-risk user, …): the client's fault. Carries WeChat's errcode.
    #[error("code refused: {0}")]
    Code(String),
    /// WeChat could not be asked (transport, `-1` busy, `45011` rate limit) or refused our
    /// configuration (`40125` invalid appsecret, `40013` invalid appid, any errcode not in
    /// [`CLIENT_ERRCODES`]).
    #[error("WeChat unavailable: {0}")]
    Unavailable(ProviderError),
    /// encryptedData does not open with the session key, is no JSON, or carries another appid's
    /// watermark. One error for every case (no padding oracle).
    #[error("encryptedData does not decrypt")]
    Decrypt,
    /// No login of this openid to decrypt for.
    #[error("no WeChat session")]
    NoSession,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One mini-program's WeChat login.
pub struct Wechat {
    api: &'static str,
    appid: String,
    login: Arc<dyn WechatLogin>,
    db: Db,
    vault: Arc<Vault>,
    clock: Clock,
}

impl std::fmt::Debug for Wechat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wechat").field("api", &self.api).field("appid", &self.appid).finish_non_exhaustive()
    }
}

impl Wechat {
    /// API `api`'s login for mini-program `appid` through `login` (sandbox or code2Session).
    pub fn new(api: &'static str, appid: String, login: Arc<dyn WechatLogin>, db: Db, vault: Arc<Vault>, clock: Clock) -> Wechat {
        Wechat { api, appid, login, db, vault, clock }
    }

    /// The mini-program's appid.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    fn key_context(&self, openid: &str) -> String {
        session_key_context(&self.appid, openid)
    }

    async fn code2session(&self, code: &str) -> Result<crate::providers::WechatSession, WechatError> {
        self.login.code2session(code).await.map_err(|error| match error {
            ProviderError::Vendor { ref code, .. } if CLIENT_ERRCODES.contains(&code.as_str()) => WechatError::Code(code.clone()),
            // -1 (busy), 45011 (rate limit), our appid or secret refused (40013, 40125, 41002,
            // 41004), an errcode new to us: not the user's code — a new wx.login would fail the
            // same way, so the API answers its "try later" and the operator's log has the cause.
            other => WechatError::Unavailable(other),
        })
    }

    /// Log in with a `wx.login()` code: the user of its openid (created now on the first login),
    /// with the new session key stored. With `sealed` (encryptedData, iv) from the same
    /// `wx.login`, also the data opened with that fresh key.
    pub async fn login(&self, code: &str, sealed: Option<(&str, &str)>) -> Result<(WechatUser, Option<Value>), WechatError> {
        let session = self.code2session(code).await?;
        // Decrypt before storing anything: data that does not open is the client's mistake, and
        // a refused login should not count as the user's first.
        let data = sealed
            .map(|(data, iv)| open(session.session_key.expose_secret(), data, iv, &self.appid))
            .transpose()?;
        let cipher = self.vault.encrypt(session.session_key.expose_secret(), &self.key_context(&session.openid));
        let new_user_id = crate::random::hex(24);
        let upserted = self
            .db
            .wechat()
            .upsert(LoginRow {
                appid: &self.appid,
                openid: &session.openid,
                api: self.api,
                unionid: session.unionid.as_deref(),
                session_key_cipher: &cipher,
                new_user_id: &new_user_id,
                now: self.clock.now_ms(),
            })
            .await?;
        let user = WechatUser {
            user_id: upserted.user_id,
            openid: session.openid,
            unionid: session.unionid,
            is_new: upserted.created,
        };
        Ok((user, data))
    }

    /// The openid of a `wx.login()` code, nothing stored: for an API whose users log in another
    /// way but pay with WeChat (heating's payer).
    pub async fn openid(&self, code: &str) -> Result<String, WechatError> {
        Ok(self.code2session(code).await?.openid)
    }

    /// The openid of the API's user `user_id` under this mini-program (payments need the payer).
    pub async fn openid_of(&self, user_id: &str) -> Result<Option<String>, StorageError> {
        self.db.wechat().openid_of(&self.appid, self.api, user_id).await
    }

    /// What a client may be shown in place of the session_key of `openid`'s latest login
    /// (community 002 §1.2.1 answers a `session_key` the client sends back in §1.2.2): base64
    /// of 16 bytes of a keyed digest of the key — never the key itself, which WeChat forbids
    /// handing out. It changes when a login brings a new key; `None` without a login.
    pub async fn session_proof(&self, openid: &str) -> Result<Option<String>, StorageError> {
        let Some(row) = self.db.wechat().get(&self.appid, openid).await? else {
            return Ok(None);
        };
        let key = self
            .vault
            .decrypt(&row.session_key_cipher, &self.key_context(openid))
            .map_err(|_| StorageError::Corrupt(format!("session key of {openid} does not open")))?;
        let digest = self.vault.digest("wechat_identity.session_proof", &format!("{}\n{openid}\n{key}", self.appid));
        let bytes = hex::decode(&digest[..32]).unwrap_or_default();
        Ok(Some(B64.encode(bytes)))
    }

    /// Whether `proof` is [`Wechat::session_proof`] of `openid`'s latest login (compared in
    /// constant time): a client that sends back an openid and "session_key" is believed only
    /// when it holds what this server answered for that login.
    pub async fn check_session_proof(&self, openid: &str, proof: &str) -> Result<bool, StorageError> {
        let Some(expected) = self.session_proof(openid).await? else {
            return Ok(false);
        };
        Ok(aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), proof.as_bytes()).is_ok())
    }

    /// Open encryptedData of `openid`'s latest login (getPhoneNumber and the like, sent after
    /// the login that stored the key).
    pub async fn decrypt(&self, openid: &str, encrypted_data: &str, iv: &str) -> Result<Value, WechatError> {
        let row = self.db.wechat().get(&self.appid, openid).await?.ok_or(WechatError::NoSession)?;
        let key = self
            .vault
            .decrypt(&row.session_key_cipher, &self.key_context(openid))
            .map_err(|_| WechatError::Storage(StorageError::Corrupt(format!("session key of {openid} does not open"))))?;
        open(&key, encrypted_data, iv, &self.appid)
    }
}

/// The sealing context of the session_key of `openid` under `appid` (a sealed key opens only for
/// the identity it was sealed for).
pub fn session_key_context(appid: &str, openid: &str) -> String {
    format!("wechat_identity.session_key:{appid}:{openid}")
}

/// Open encryptedData (domain.md §1.3): AES-128-CBC/PKCS#7, key = base64-decoded session_key (16
/// bytes), iv = base64-decoded iv (16 bytes); the plaintext is a JSON object whose
/// `watermark.appid` must be `appid`.
pub fn open(session_key: &str, encrypted_data: &str, iv: &str, appid: &str) -> Result<Value, WechatError> {
    let key = B64.decode(session_key).map_err(|_| WechatError::Decrypt)?;
    let iv: [u8; 16] = B64.decode(iv).ok().and_then(|iv| iv.try_into().ok()).ok_or(WechatError::Decrypt)?;
    let mut buffer = B64.decode(encrypted_data).map_err(|_| WechatError::Decrypt)?;
    let key = UnboundCipherKey::new(&AES_128, &key).map_err(|_| WechatError::Decrypt)?;
    let key = PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| WechatError::Decrypt)?;
    let plain = key.decrypt(&mut buffer, DecryptionContext::Iv128(FixedLength::from(iv))).map_err(|_| WechatError::Decrypt)?;
    let value: Value = serde_json::from_slice(plain).map_err(|_| WechatError::Decrypt)?;
    if value.pointer("/watermark/appid").and_then(Value::as_str) != Some(appid) {
        return Err(WechatError::Decrypt);
    }
    Ok(value)
}

/// Seal `data` (a JSON object) as WeChat would for `appid` with `session_key`: adds
/// `watermark {appid, timestamp}` and answers `(encryptedData, iv)` in base64 — what the sandbox
/// gives a frontend that has no real WeChat behind it.
pub fn seal(session_key: &SecretString, data: &Value, appid: &str, now_s: i64) -> Result<(String, String), WechatError> {
    let mut data = data.clone();
    let object = data.as_object_mut().ok_or(WechatError::Decrypt)?;
    object.insert("watermark".into(), serde_json::json!({ "appid": appid, "timestamp": now_s }));
    let key = B64.decode(session_key.expose_secret()).map_err(|_| WechatError::Decrypt)?;
    let key = UnboundCipherKey::new(&AES_128, &key).map_err(|_| WechatError::Decrypt)?;
    let key = PaddedBlockEncryptingKey::cbc_pkcs7(key).map_err(|_| WechatError::Decrypt)?;
    let iv = crate::random::bytes::<16>();
    let mut buffer = serde_json::to_vec(&data).map_err(|_| WechatError::Decrypt)?;
    key.less_safe_encrypt(&mut buffer, EncryptionContext::Iv128(FixedLength::from(iv))).map_err(|_| WechatError::Decrypt)?;
    Ok((B64.encode(buffer), B64.encode(iv)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // WeChat's official demo (WXBizDataCrypt, "开放数据校验与解密"); domain.md §1.3.
    const APPID: &str = "wx4f4bc4dec97d474b";
    const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const ENCRYPTED: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

    #[test]
    fn the_official_example_opens() {
        let value = open(SESSION_KEY, ENCRYPTED, IV, APPID).expect("decrypts");
        assert_eq!(value["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        assert_eq!(value["nickName"], "Band");
        assert_eq!(value["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
        assert_eq!(value["watermark"]["timestamp"], 1477314187);
    }

    #[test]
    fn another_appid_a_wrong_key_or_tampering_is_one_error() {
        assert!(matches!(open(SESSION_KEY, ENCRYPTED, IV, "wx0000000000000000"), Err(WechatError::Decrypt)));
        assert!(matches!(open("AAAAAAAAAAAAAAAAAAAAAA==", ENCRYPTED, IV, APPID), Err(WechatError::Decrypt)));
        let mut tampered = B64.decode(ENCRYPTED).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(open(SESSION_KEY, &B64.encode(&tampered), IV, APPID), Err(WechatError::Decrypt)));
        assert!(matches!(open(SESSION_KEY, ENCRYPTED, "short", APPID), Err(WechatError::Decrypt)));
        assert!(matches!(open("not base64", ENCRYPTED, IV, APPID), Err(WechatError::Decrypt)));
    }

    #[test]
    fn sealed_data_opens_for_its_appid_only() {
        let key = SecretString::from(SESSION_KEY);
        let (data, iv) = seal(&key, &serde_json::json!({"nickName": "张三"}), "wx_a", 1_700_000_000).unwrap();
        let value = open(SESSION_KEY, &data, &iv, "wx_a").unwrap();
        assert_eq!((value["nickName"].as_str(), value["watermark"]["timestamp"].as_i64()), (Some("张三"), Some(1_700_000_000)));
        assert!(open(SESSION_KEY, &data, &iv, "wx_b").is_err());
        assert!(seal(&key, &serde_json::json!([1]), "wx_a", 0).is_err(), "only objects carry a watermark");
    }
}
