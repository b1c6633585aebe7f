//! The points API's application errors and their envelope (`{code, message, data: null}`, 001
//! 常见状态码): the HTTP status equals the code, except maintenance (HTTP 503, code 500);
//! `api_support::error_output` puts them in each operation's documented variant.

use generated::points::types::{ErrorResponse, ErrorResponseCode};

use crate::api_support::ApiError;
use crate::identity::{SessionError, WechatError};
use crate::payments::PayError;
use crate::storage::StorageError;

/// The message of a login whose encryptedData/iv do not decrypt (001 §1.1 422, the contract's
/// `decrypt_failed` example).
pub const DECRYPT_FAILED: &str = "参数错误：用户信息解密失败，请重新登录后再获取用户信息";

/// Everything a points operation can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    /// 401: no valid token or API key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: not allowed (an inactive or expired API key, a balance short of a debit).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource of the caller's.
    #[error("{0}")]
    NotFound(&'static str),
    /// 422: a parameter is wrong (message says which).
    #[error("{0}")]
    Invalid(String),
    /// HTTP 503, code 500: the system is in maintenance; writes wait (message: until when).
    #[error("{0}")]
    Maintenance(String),
    /// 500: WeChat (login or pay) failed or is busy; details logged.
    #[error("{0}")]
    Wechat(&'static str),
    /// 500: storage or another fault of ours; details go to the log only.
    #[error("服务器内部错误")]
    Internal(String),
}

impl From<StorageError> for PointsError {
    fn from(error: StorageError) -> PointsError {
        PointsError::Internal(error.to_string())
    }
}

impl From<SessionError> for PointsError {
    fn from(error: SessionError) -> PointsError {
        match error {
            SessionError::Storage(error) => error.into(),
            SessionError::Expired | SessionError::RefreshExpired => {
                PointsError::Unauthorized("登录已过期，请重新登录")
            }
            SessionError::AlreadyRenewed => {
                PointsError::Unauthorized("token已刷新过，请使用新的token或重新登录")
            }
            SessionError::Invalid | SessionError::Reused => {
                PointsError::Unauthorized("未登录或登录已过期")
            }
        }
    }
}

impl From<WechatError> for PointsError {
    fn from(error: WechatError) -> PointsError {
        match error {
            WechatError::Code(code) if code == "40226" => {
                PointsError::Invalid("登录失败：微信判定为高风险用户，请稍后再试".into())
            }
            WechatError::Code(_) => {
                PointsError::Invalid("code无效或已过期，请重新调用wx.login获取".into())
            }
            WechatError::Decrypt | WechatError::NoSession => {
                PointsError::Invalid(DECRYPT_FAILED.into())
            }
            WechatError::Unavailable(error) => {
                tracing::warn!(api = "points", %error, "code2Session failed");
                PointsError::Wechat("微信服务繁忙，请稍后重试")
            }
            WechatError::Storage(error) => error.into(),
        }
    }
}

impl From<PayError> for PointsError {
    fn from(error: PayError) -> PointsError {
        match error {
            PayError::Provider(error) => {
                tracing::warn!(api = "points", %error, "WeChat Pay failed");
                PointsError::Wechat("微信支付下单失败，请稍后重试")
            }
            PayError::NotPayable => PointsError::Invalid("参数错误：订单已失效，请重新下单".into()),
            // Every points user logged in with WeChat, so the payer is always known.
            PayError::PayerNeeded => {
                PointsError::Internal("a points order without the payer's openid".into())
            }
            PayError::Storage(error) => error.into(),
        }
    }
}

impl ApiError for PointsError {
    type Body = ErrorResponse;

    fn status(&self) -> u16 {
        match self {
            PointsError::Unauthorized(_) => 401,
            PointsError::Forbidden(_) => 403,
            PointsError::NotFound(_) => 404,
            PointsError::Invalid(_) => 422,
            PointsError::Maintenance(_) => 503,
            PointsError::Wechat(_) | PointsError::Internal(_) => 500,
        }
    }

    fn body(&self, _: i64) -> ErrorResponse {
        let code = match self {
            PointsError::Unauthorized(_) => ErrorResponseCode::Value401,
            PointsError::Forbidden(_) => ErrorResponseCode::Value403,
            PointsError::NotFound(_) => ErrorResponseCode::Value404,
            PointsError::Invalid(_) => ErrorResponseCode::Value422,
            PointsError::Maintenance(_) | PointsError::Wechat(_) | PointsError::Internal(_) => {
                ErrorResponseCode::Value500
            }
        };
        ErrorResponse {
            code,
            message: self.to_string(),
            data: (),
        }
    }

    fn internal_detail(&self) -> Option<&str> {
        match self {
            PointsError::Internal(detail) => Some(detail),
            _ => None,
        }
    }

    fn internal() -> PointsError {
        PointsError::Internal(String::new())
    }
}
