//! The heating API's application errors and the one place they become its envelope
//! (`{code, message, data: null, timestamp}`, 000 "错误码说明") and HTTP status.

use generated::heating::types::{ErrorResponse, ErrorResponseCode};
use generated::runtime::{ErrorAnswer, FromErrorAnswer};

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

impl HeatingError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            HeatingError::BadRequest(_)
            | HeatingError::CodeWrong(_)
            | HeatingError::CodeExpired
            | HeatingError::PasswordWrong => 400,
            HeatingError::UserExists => 409,
            HeatingError::UserNotFound | HeatingError::NotFound(_) => 404,
            HeatingError::Unauthorized(_) => 401,
            HeatingError::TooFrequent(_) => 429,
            HeatingError::SmsFailed | HeatingError::PayFailed => 502,
            HeatingError::Internal(_) => 500,
        }
    }

    /// The document's error code.
    pub fn code(&self) -> ErrorResponseCode {
        match self {
            HeatingError::BadRequest(_) => ErrorResponseCode::Value400,
            HeatingError::CodeWrong(_) => ErrorResponseCode::Value1002,
            HeatingError::CodeExpired => ErrorResponseCode::Value1006,
            HeatingError::PasswordWrong => ErrorResponseCode::Value1005,
            HeatingError::UserExists => ErrorResponseCode::Value1003,
            HeatingError::UserNotFound => ErrorResponseCode::Value1004,
            HeatingError::Unauthorized(_) => ErrorResponseCode::Value401,
            HeatingError::NotFound(_) => ErrorResponseCode::Value404,
            HeatingError::TooFrequent(_) => ErrorResponseCode::Value1008,
            HeatingError::SmsFailed => ErrorResponseCode::Value1007,
            HeatingError::PayFailed | HeatingError::Internal(_) => ErrorResponseCode::Value500,
        }
    }

    /// The envelope, stamped `now_ms`. Internal details are logged here and never sent.
    pub fn envelope(&self, now_ms: i64) -> ErrorResponse {
        if let HeatingError::Internal(detail) = self {
            tracing::error!(api = "heating", detail, "internal error");
        }
        ErrorResponse { code: self.code(), message: self.to_string(), data: (), timestamp: now_ms }
    }

    /// The error as an answer: its status, its envelope stamped `now_ms`, and the seconds to
    /// wait when it is a rate limit.
    pub fn answer(&self, now_ms: i64) -> ErrorAnswer<ErrorResponse> {
        let retry_after = match self {
            HeatingError::TooFrequent(seconds) => Some(*seconds),
            _ => None,
        };
        ErrorAnswer { status: self.status(), body: self.envelope(now_ms), retry_after }
    }
}

/// An operation's output built from an error: the variant its spec documents for the error's
/// status (`FromErrorAnswer`, generated from the contract). A status the operation does not
/// document is a bug of ours, logged and answered as the operation's 500.
pub fn error_output<O: FromErrorAnswer<ErrorResponse>>(error: HeatingError, now_ms: i64) -> O {
    O::from_error_answer(error.answer(now_ms)).unwrap_or_else(|refused| {
        tracing::error!(
            api = "heating",
            output = std::any::type_name::<O>(),
            status = refused.status,
            %error,
            "undocumented error status"
        );
        O::from_error_answer(HeatingError::Internal(String::new()).answer(now_ms))
            .unwrap_or_else(|_| unreachable!("every heating operation that answers errors documents 500"))
    })
}
