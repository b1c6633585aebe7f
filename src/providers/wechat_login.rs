//! WeChat mini-program login (domain.md §1.1): deterministic sandbox openids, and the real
//! `code2Session` (`GET /sns/jscode2session`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::{ProviderError, WechatLogin, WechatSession};
use crate::config::WechatLoginConfig;

const SANDBOX: &str = "sandbox-login";
const CODE2SESSION: &str = "code2session";

/// The sandbox login: any code is a user, the same code always the same user. The openid is
/// `sb_` + the first 25 hex characters of SHA-256(`mpapi-sandbox-openid:` + code) (28 characters,
/// the length of a real openid); the session_key is base64 of 16 bytes derived the same way.
/// An empty code or the literal `invalid` is refused as WeChat refuses a bad code (`40029`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxLogin;

impl SandboxLogin {
    /// The openid the sandbox gives `code`.
    pub fn openid_for(code: &str) -> String {
        let digest = digest::digest(&digest::SHA256, format!("mpapi-sandbox-openid:{code}").as_bytes());
        let hex = hex::encode(digest.as_ref());
        format!("sb_{}", &hex[..25])
    }

    /// The session_key the sandbox gives `code` (base64 of 16 bytes): what
    /// `/_sandbox/wechat/encrypt` seals data with for that code's login.
    pub fn session_key_for(code: &str) -> String {
        let digest = digest::digest(&digest::SHA256, format!("mpapi-sandbox-session-key:{code}").as_bytes());
        B64.encode(&digest.as_ref()[..16])
    }
}

#[async_trait]
impl WechatLogin for SandboxLogin {
    async fn code2session(&self, code: &str) -> Result<WechatSession, ProviderError> {
        if code.is_empty() || code == "invalid" {
            return Err(ProviderError::Vendor {
                provider: SANDBOX,
                code: "40029".into(),
                message: "invalid code".into(),
            });
        }
        Ok(WechatSession {
            openid: SandboxLogin::openid_for(code),
            session_key: SecretString::from(SandboxLogin::session_key_for(code)),
            unionid: None,
        })
    }
}

/// The real login: `GET {base_url}/sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code`.
pub struct Code2Session {
    base_url: String,
    appid: String,
    secret: SecretString,
    http: reqwest::Client,
}

impl fmt::Debug for Code2Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Code2Session")
            .field("base_url", &self.base_url)
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

/// What jscode2session answers. A success may omit `errcode` (domain.md §1.1).
#[derive(Deserialize)]
struct Answer {
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

fn transport(detail: impl Into<String>) -> ProviderError {
    ProviderError::Transport { provider: CODE2SESSION, detail: detail.into() }
}

impl Code2Session {
    /// Per-request timeout, seconds.
    pub const TIMEOUT: Duration = Duration::from_secs(10);

    /// code2Session for mini-program `appid` with its configured AppSecret; a missing appid or
    /// secret is [`ProviderError::Config`].
    pub fn new(appid: &str, config: &WechatLoginConfig) -> Result<Code2Session, ProviderError> {
        let config_error = |detail: String| ProviderError::Config { provider: CODE2SESSION, detail };
        if appid.trim().is_empty() {
            return Err(config_error("appid is not set".into()));
        }
        let secret = config
            .secret
            .clone()
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or_else(|| config_error("wechat_login.secret is not set".into()))?;
        let http = reqwest::Client::builder()
            .timeout(Code2Session::TIMEOUT)
            .build()
            .map_err(|e| config_error(format!("HTTP client: {e}")))?;
        Ok(Code2Session {
            base_url: config.base_url.trim_end_matches('/').to_string(),
            appid: appid.to_owned(),
            secret,
            http,
        })
    }
}

#[async_trait]
impl WechatLogin for Code2Session {
    async fn code2session(&self, code: &str) -> Result<WechatSession, ProviderError> {
        let request = self.http.get(format!("{}/sns/jscode2session", self.base_url)).query(&[
            ("appid", self.appid.as_str()),
            ("secret", self.secret.expose_secret()),
            ("js_code", code),
            ("grant_type", "authorization_code"),
        ]);
        let response = super::send(CODE2SESSION, request).await;
        // The query carries the AppSecret.
        let answer: Answer = super::json_answer(CODE2SESSION, response).await?;
        match answer.errcode {
            Some(errcode) if errcode != 0 => Err(ProviderError::Vendor {
                provider: CODE2SESSION,
                code: errcode.to_string(),
                message: answer.errmsg.unwrap_or_default(),
            }),
            _ => match (answer.openid, answer.session_key) {
                (Some(openid), Some(session_key)) if !openid.is_empty() => Ok(WechatSession {
                    openid,
                    session_key: SecretString::from(session_key),
                    unionid: answer.unionid.filter(|u| !u.is_empty()),
                }),
                _ => Err(transport("answer without openid or session_key")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sandbox_openids_are_deterministic_and_distinct() {
        let a = SandboxLogin.code2session("code-a").await.expect("ok");
        let again = SandboxLogin.code2session("code-a").await.expect("ok");
        let b = SandboxLogin.code2session("code-b").await.expect("ok");
        assert_eq!(a.openid, again.openid);
        assert_ne!(a.openid, b.openid);
        assert_eq!(a.openid.len(), 28);
        assert!(a.openid.starts_with("sb_") && a.openid[3..].bytes().all(|c| c.is_ascii_hexdigit()));
        // The first 25 hex digits of SHA-256("mpapi-sandbox-openid:code-a").
        let digest = digest::digest(&digest::SHA256, b"mpapi-sandbox-openid:code-a");
        assert_eq!(&a.openid[3..], &hex::encode(digest.as_ref())[..25]);
        let key = B64.decode(a.session_key.expose_secret()).expect("base64");
        assert_eq!(key.len(), 16);
        assert_eq!(a.session_key.expose_secret(), again.session_key.expose_secret());
    }

    #[tokio::test]
    async fn sandbox_refuses_bad_codes_like_wechat() {
        for code in ["", "invalid"] {
            match SandboxLogin.code2session(code).await {
                Err(ProviderError::Vendor { code, .. }) => assert_eq!(code, "40029"),
                other => panic!("expected 40029, got {other:?}"),
            }
        }
    }

    #[test]
    fn real_login_needs_appid_and_secret() {
        let ok = WechatLoginConfig { secret: Some("s".into()), ..Default::default() };
        assert!(Code2Session::new("wx1", &ok).is_ok());
        let no_secret = WechatLoginConfig { secret: None, ..ok.clone() };
        assert!(matches!(Code2Session::new("wx1", &no_secret), Err(ProviderError::Config { .. })));
        assert!(matches!(Code2Session::new(" ", &ok), Err(ProviderError::Config { .. })));
    }
}
