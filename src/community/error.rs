//! The community API's application errors and their envelope: the flat `{code, msg, message,
//! token_expired?}` of 002, code "1" (出错) with HTTP 400/404/409/502/500 by case and "9"
//! (token值失效) with HTTP 401 (see `x-transcription-notes` 全文 HTTP 状态);
//! `api_support::error_output` puts them in each operation's documented variant.

use generated::community::types::{ErrorResponse, ErrorResponseCode, ErrorResponseTokenExpired};

use crate::api_support::ApiError;
use crate::identity::{CodeError, SessionError, WechatError};
use crate::payments::PayError;
use crate::storage::StorageError;

/// The document's catch-all `msg` (“服务器开小差，请重试”).
pub const MSG_RETRY: &str = "服务器开小差，请重试";
/// The document's `msg` for an upstream fault (2.2.1 示例4).
pub const MSG_UPSTREAM: &str = "系统开小差，请重试或联系工作人员";

/// What the client is told: `msg` (shown to the user) and `message` (debug text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    /// 描述返回结果.
    pub msg: String,
    /// 调试信息.
    pub message: String,
    /// 1.1 only: the phone as the request sent it.
    pub phone: Option<String>,
    /// The caller's token is valid (`token_expired: "1"` beside the refusal, as the document's
    /// examples of operations that take a token show).
    pub token_live: bool,
}

impl Told {
    /// `msg` and `message`.
    pub fn new(msg: impl Into<String>, message: impl Into<String>) -> Told {
        Told { msg: msg.into(), message: message.into(), phone: None, token_live: false }
    }

    /// The same text as `msg` and `message` (most of the document's refusals).
    pub fn same(text: impl Into<String>) -> Told {
        let text = text.into();
        Told { msg: text.clone(), message: text, phone: None, token_live: false }
    }
}

/// Everything a community operation can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum CommunityError {
    /// 400, code "1": a parameter, a code or the request itself is refused.
    #[error("{}", .0.message)]
    Invalid(Told),
    /// 401, code "9": no valid token (token_expired "0").
    #[error("{0}")]
    Unauthorized(String),
    /// 401, code "1": the token is past its 14-day refresh window (1.4.2 示例3).
    #[error("refresh window over")]
    RefreshExpired,
    /// 404, code "1": not registered (游客) or no such record of the caller's.
    #[error("{}", .0.message)]
    NotFound(Told),
    /// 409, code "1": already registered or bound.
    #[error("{}", .0.message)]
    Conflict(Told),
    /// 502, code "1": the security platform, OSS, OCR, WeChat or SMS failed.
    #[error("{}", .0.message)]
    Upstream(Told),
    /// 500, code "1": storage or another fault of ours; details go to the log only.
    #[error("服务器内部错误")]
    Internal(String),
}

impl CommunityError {
    /// 400 with `msg` and `message`.
    pub fn invalid(msg: impl Into<String>, message: impl Into<String>) -> CommunityError {
        CommunityError::Invalid(Told::new(msg, message))
    }

    /// 404 with `msg` and `message`.
    pub fn not_found(msg: impl Into<String>, message: impl Into<String>) -> CommunityError {
        CommunityError::NotFound(Told::new(msg, message))
    }

    /// 409 with `msg` and `message`.
    pub fn conflict(msg: impl Into<String>, message: impl Into<String>) -> CommunityError {
        CommunityError::Conflict(Told::new(msg, message))
    }

    /// 502 with the document's upstream `msg` and `message`.
    pub fn upstream(message: impl Into<String>) -> CommunityError {
        CommunityError::Upstream(Told::new(MSG_UPSTREAM, message))
    }

    /// The same error echoing the request's phone (1.1's refusals carry it).
    pub fn with_phone(self, phone: &str) -> CommunityError {
        let echo = |mut told: Told| {
            told.phone = Some(phone.to_owned());
            told
        };
        match self {
            CommunityError::Invalid(t) => CommunityError::Invalid(echo(t)),
            CommunityError::NotFound(t) => CommunityError::NotFound(echo(t)),
            CommunityError::Conflict(t) => CommunityError::Conflict(echo(t)),
            CommunityError::Upstream(t) => CommunityError::Upstream(echo(t)),
            other => other,
        }
    }

    /// The same refusal, said to a caller whose token is valid.
    pub fn token_live(self) -> CommunityError {
        let live = |mut told: Told| {
            told.token_live = true;
            told
        };
        match self {
            CommunityError::Invalid(t) => CommunityError::Invalid(live(t)),
            CommunityError::NotFound(t) => CommunityError::NotFound(live(t)),
            CommunityError::Conflict(t) => CommunityError::Conflict(live(t)),
            CommunityError::Upstream(t) => CommunityError::Upstream(live(t)),
            other => other,
        }
    }

    /// A wrong, used-up or expired verification code (“验证码已失效”, 1.2.2 示例3).
    pub fn code_refused() -> CommunityError {
        CommunityError::Invalid(Told::same("验证码已失效"))
    }
}

impl From<StorageError> for CommunityError {
    fn from(error: StorageError) -> CommunityError {
        CommunityError::Internal(error.to_string())
    }
}

impl From<SessionError> for CommunityError {
    fn from(error: SessionError) -> CommunityError {
        match error {
            SessionError::Storage(error) => error.into(),
            SessionError::RefreshExpired => CommunityError::RefreshExpired,
            SessionError::AlreadyRenewed => {
                CommunityError::Unauthorized("token已刷新过，请使用新的token".into())
            }
            SessionError::Expired => {
                CommunityError::Unauthorized("token值已过期，请调用刷新token接口".into())
            }
            SessionError::Invalid | SessionError::Reused => CommunityError::Unauthorized(
                "token值因各种原因而失效，请重新调用接口获取token".into(),
            ),
        }
    }
}

impl From<WechatError> for CommunityError {
    fn from(error: WechatError) -> CommunityError {
        match error {
            WechatError::Code(_) => {
                CommunityError::invalid(MSG_RETRY, "小程序code不正确，请传递新code值")
            }
            WechatError::Decrypt | WechatError::NoSession => CommunityError::invalid(
                "手机号获取失败，请重新授权",
                "encryptedData解密失败，请重新调用wx.login后再获取手机号",
            ),
            WechatError::Unavailable(error) => {
                tracing::warn!(api = "community", %error, "code2Session failed");
                CommunityError::upstream("微信登录服务繁忙，请稍后重试")
            }
            WechatError::Storage(error) => error.into(),
        }
    }
}

impl From<CodeError> for CommunityError {
    fn from(error: CodeError) -> CommunityError {
        match error {
            CodeError::Wrong | CodeError::Exhausted | CodeError::Expired => {
                CommunityError::code_refused()
            }
            CodeError::TooSoon(seconds) => CommunityError::Invalid(Told::same(format!(
                "验证码发送过于频繁，请{seconds}秒后再试"
            ))),
            CodeError::DailyCap(_) => {
                CommunityError::Invalid(Told::same("该手机号今日获取验证码次数已达上限"))
            }
            CodeError::ClientCap(seconds) => CommunityError::Invalid(Told::same(format!(
                "当前网络获取验证码过于频繁，请{seconds}秒后再试"
            ))),
            CodeError::SendFailed => CommunityError::upstream("短信发送失败，请稍后重试"),
            CodeError::Storage(error) => error.into(),
        }
    }
}

impl From<PayError> for CommunityError {
    fn from(error: PayError) -> CommunityError {
        match error {
            PayError::Provider(error) => {
                tracing::warn!(api = "community", %error, "WeChat Pay failed");
                CommunityError::upstream("微信支付下单失败，请稍后重试")
            }
            PayError::NotPayable => {
                CommunityError::Invalid(Told::same("账单已失效，请重新发起支付"))
            }
            PayError::PayerNeeded => CommunityError::Invalid(Told::new(
                "请重新登录后再支付",
                "没有付款人的openid：请通过微信登录（1.4.1）后再支付",
            )),
            PayError::Storage(error) => error.into(),
        }
    }
}

impl ApiError for CommunityError {
    type Body = ErrorResponse;

    fn status(&self) -> u16 {
        match self {
            CommunityError::Invalid(_) => 400,
            CommunityError::Unauthorized(_) | CommunityError::RefreshExpired => 401,
            CommunityError::NotFound(_) => 404,
            CommunityError::Conflict(_) => 409,
            CommunityError::Upstream(_) => 502,
            CommunityError::Internal(_) => 500,
        }
    }

    fn body(&self, _: i64) -> ErrorResponse {
        let refused = |told: &Told| ErrorResponse {
            code: ErrorResponseCode::Variant0,
            token_expired: told.token_live.then_some(ErrorResponseTokenExpired::Variant1),
            msg: told.msg.clone(),
            message: told.message.clone(),
            phone: told.phone.clone(),
        };
        match self {
            CommunityError::Invalid(told)
            | CommunityError::NotFound(told)
            | CommunityError::Conflict(told)
            | CommunityError::Upstream(told) => refused(told),
            CommunityError::Unauthorized(message) => ErrorResponse {
                code: ErrorResponseCode::Variant1,
                token_expired: Some(ErrorResponseTokenExpired::Variant0),
                msg: "请重新建立智慧平台鉴权连接".into(),
                message: message.clone(),
                phone: None,
            },
            CommunityError::RefreshExpired => refused(&Told::new(MSG_RETRY, "刷新token值失败,message编码Au335")),
            CommunityError::Internal(_) => refused(&Told::new(MSG_RETRY, "服务器内部错误")),
        }
    }

    fn internal_detail(&self) -> Option<&str> {
        match self {
            CommunityError::Internal(detail) => Some(detail),
            _ => None,
        }
    }

    fn internal() -> CommunityError {
        CommunityError::Internal(String::new())
    }
}
