//! The heating API's application errors and their envelope (`{code, message, data: null,
//! timestamp}`, 000 "错误码说明") and HTTP status; `api_support::error_output` puts them in each
//! operation's documented variant.

use generated::heating::types::{ErrorResponse, ErrorResponseCode};

use crate::api_support::ApiError;
use crate::identity::{CodeError, SessionError};
use crate::payments::PayError;
use crate::storage::StorageError;

/// Everything a heating operation can refuse with. The HTTP status follows the contract's
/// mapping (openapi/heating.yaml description): document code in the body, status by class.
#[derive(Debug, thiserror::Error)]
pub enum HeatingError {
    /// 400 / 400: the request is well-formed but wrong (message says what).
    #[error("{0}")]
    BadRequest(String),
    /// 400 / 1002 验证码错误 (also: too many wrong attempts).
    #[error("{0}")]
    CodeWrong(&'static str),
    /// 400 / 1006 验证码已过期.
    #[error("验证码已过期")]
    CodeExpired,
    /// 400 / 1005 密码错误.
    #[error("旧密码错误")]
    PasswordWrong,
    /// 409 / 1003 用户已存在.
    #[error("用户已存在")]
    UserExists,
    /// 404 / 1004 用户不存在.
    #[error("用户不存在，请先注册")]
    UserNotFound,
    /// 401 / 401.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404 / 404 (未绑定供热账号, 订单不存在, …).
    #[error("{0}")]
    NotFound(&'static str),
    /// 429 / 1008 操作频繁; the client may retry after this many seconds.
    #[error("操作频繁，请稍后再试")]
    TooFrequent(u64),
    /// 429 / 1008: the phone's codes for today are used up; retry after this many seconds.
    #[error("今日验证码发送次数已达上限，请稍后再试")]
    DailyCap(u64),
    /// 502 / 1007 验证码发送失败 (the SMS provider failed).
    #[error("验证码发送失败")]
    SmsFailed,
    /// 502 / 500: WeChat Pay refused or failed to place the order.
    #[error("微信支付下单失败，请稍后重试")]
    PayFailed,
    /// 500 / 500: storage or another fault of ours; details go to the log only.
    #[error("服务器内部错误")]
    Internal(String),
}

impl From<StorageError> for HeatingError {
    fn from(error: StorageError) -> HeatingError {
        HeatingError::Internal(error.to_string())
    }
}

impl From<CodeError> for HeatingError {
    fn from(error: CodeError) -> HeatingError {
        match error {
            CodeError::TooSoon(seconds) | CodeError::ClientCap(seconds) => HeatingError::TooFrequent(seconds),
            CodeError::DailyCap(seconds) => HeatingError::DailyCap(seconds),
            CodeError::Wrong => HeatingError::CodeWrong("验证码错误"),
            CodeError::Exhausted => HeatingError::CodeWrong("验证码错误次数过多，请重新获取"),
            CodeError::Expired => HeatingError::CodeExpired,
            CodeError::SendFailed => HeatingError::SmsFailed,
            CodeError::Storage(error) => error.into(),
        }
    }
}

impl From<SessionError> for HeatingError {
    fn from(error: SessionError) -> HeatingError {
        match error {
            SessionError::Expired => HeatingError::Unauthorized("token已过期"),
            SessionError::Storage(error) => error.into(),
            SessionError::Invalid | SessionError::RefreshExpired | SessionError::Reused | SessionError::AlreadyRenewed => {
                HeatingError::Unauthorized("Token无效")
            }
        }
    }
}

impl From<PayError> for HeatingError {
    fn from(error: PayError) -> HeatingError {
        match error {
            PayError::Provider(_) => HeatingError::PayFailed,
            PayError::PayerNeeded => HeatingError::BadRequest("请先调用wx.login，并在wx_code中传入获得的code".into()),
            PayError::NotPayable => HeatingError::BadRequest("订单已失效，请重新下单".into()),
            PayError::Storage(error) => error.into(),
        }
    }
}

impl ApiError for HeatingError {
    type Body = ErrorResponse;

    fn status(&self) -> u16 {
        match self {
            HeatingError::BadRequest(_) | HeatingError::CodeWrong(_) | HeatingError::CodeExpired | HeatingError::PasswordWrong => 400,
            HeatingError::UserExists => 409,
            HeatingError::UserNotFound | HeatingError::NotFound(_) => 404,
            HeatingError::Unauthorized(_) => 401,
            HeatingError::TooFrequent(_) | HeatingError::DailyCap(_) => 429,
            HeatingError::SmsFailed | HeatingError::PayFailed => 502,
            HeatingError::Internal(_) => 500,
        }
    }

    fn body(&self, now_ms: i64) -> ErrorResponse {
        let code = match self {
            HeatingError::BadRequest(_) => ErrorResponseCode::Value400,
            HeatingError::CodeWrong(_) => ErrorResponseCode::Value1002,
            HeatingError::CodeExpired => ErrorResponseCode::Value1006,
            HeatingError::PasswordWrong => ErrorResponseCode::Value1005,
            HeatingError::UserExists => ErrorResponseCode::Value1003,
            HeatingError::UserNotFound => ErrorResponseCode::Value1004,
            HeatingError::Unauthorized(_) => ErrorResponseCode::Value401,
            HeatingError::NotFound(_) => ErrorResponseCode::Value404,
            HeatingError::TooFrequent(_) | HeatingError::DailyCap(_) => ErrorResponseCode::Value1008,
            HeatingError::SmsFailed => ErrorResponseCode::Value1007,
            HeatingError::PayFailed | HeatingError::Internal(_) => ErrorResponseCode::Value500,
        };
        ErrorResponse { code, message: self.to_string(), data: (), timestamp: now_ms }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            HeatingError::TooFrequent(seconds) | HeatingError::DailyCap(seconds) => Some(*seconds),
            _ => None,
        }
    }

    fn internal_detail(&self) -> Option<&str> {
        match self {
            HeatingError::Internal(detail) => Some(detail),
            _ => None,
        }
    }

    fn internal() -> HeatingError {
        HeatingError::Internal(String::new())
    }
}
