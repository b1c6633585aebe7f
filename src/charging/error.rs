//! The charging API's application error and its envelope (`{code, message, data: null}`, 003
//! §11 错误码说明): one business code each, its HTTP status by the contract's mapping (400/401/
//! 403/404 without a business code use the status itself; 9999 is HTTP 500).

use generated::charging::types::ErrorResponse;

use crate::api_support::ApiError;
use crate::identity::{SessionError, WechatError};
use crate::payments::PayError;
use crate::providers::charger::DriverError;
use crate::storage::StorageError;

/// A refusal: the business code (or 400/401/403/404), the message shown to the user, and for
/// our own faults the detail that goes to the log only.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ChargingError {
    /// The envelope's `code` (003 §11 业务错误码, or the HTTP status for the generic ones).
    pub code: i32,
    /// The envelope's `message`.
    pub message: String,
    /// Our fault's detail (logged, never sent).
    pub detail: Option<String>,
}

impl ChargingError {
    /// A refusal with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> ChargingError {
        ChargingError { code, message: message.into(), detail: None }
    }

    /// 400 请求参数错误, saying which.
    pub fn invalid(message: impl Into<String>) -> ChargingError {
        ChargingError::new(400, message)
    }

    /// 403 权限不足.
    pub fn forbidden(message: impl Into<String>) -> ChargingError {
        ChargingError::new(403, message)
    }

    /// 9999 (HTTP 500): our fault, `detail` logged.
    pub fn internal(detail: impl Into<String>) -> ChargingError {
        ChargingError { code: 9999, message: "服务器内部错误".into(), detail: Some(detail.into()) }
    }
}

/// The contract's HTTP status of each code (003 x-transcription-notes 错误码映射).
fn status_of(code: i32) -> u16 {
    match code {
        400 | 1004 | 1005 | 2004 | 2006 | 3002 | 3003 | 3004 | 5004 => 400,
        401 | 1002 => 401,
        403 => 403,
        404 | 1001 | 2001 | 2002 | 2003 | 3001 => 404,
        1003 | 2005 | 4003 | 5003 => 409,
        // The WeChat service's failure at login; the code itself when a code is refused (400).
        1_004_502 | 4001 | 4002 | 5001 | 5002 => 502,
        _ => 500,
    }
}

/// 1004 answered with HTTP 502: WeChat itself failed (not the code).
const WECHAT_DOWN: i32 = 1_004_502;

impl ApiError for ChargingError {
    type Body = ErrorResponse;

    fn status(&self) -> u16 {
        status_of(self.code)
    }

    fn body(&self, _: i64) -> ErrorResponse {
        let code = if self.code == WECHAT_DOWN { 1004 } else { self.code };
        let code = serde_json::from_value(serde_json::json!(code))
            .or_else(|_| serde_json::from_value(serde_json::json!(9999)))
            .expect("9999 is in the contract's ErrorResponse.code enum");
        ErrorResponse { code, message: self.message.clone(), data: () }
    }

    fn internal_detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    fn internal() -> ChargingError {
        ChargingError::internal("")
    }
}

impl From<StorageError> for ChargingError {
    fn from(error: StorageError) -> ChargingError {
        ChargingError::internal(error.to_string())
    }
}

impl From<SessionError> for ChargingError {
    fn from(error: SessionError) -> ChargingError {
        match error {
            SessionError::Storage(error) => error.into(),
            SessionError::Expired | SessionError::RefreshExpired | SessionError::AlreadyRenewed => {
                ChargingError::new(401, "令牌已过期，请重新登录")
            }
            SessionError::Invalid | SessionError::Reused => ChargingError::new(401, "未授权或认证失败"),
        }
    }
}

impl From<WechatError> for ChargingError {
    fn from(error: WechatError) -> ChargingError {
        match error {
            WechatError::Code(_) | WechatError::Decrypt | WechatError::NoSession => {
                ChargingError::new(1004, "微信登录失败：code无效或已过期，请重新调用wx.login")
            }
            WechatError::Unavailable(error) => {
                tracing::warn!(api = "charging", %error, "code2Session failed");
                ChargingError::new(WECHAT_DOWN, "微信登录失败：微信服务繁忙，请稍后重试")
            }
            WechatError::Storage(error) => error.into(),
        }
    }
}

impl From<PayError> for ChargingError {
    fn from(error: PayError) -> ChargingError {
        match error {
            PayError::Provider(error) => {
                tracing::warn!(api = "charging", %error, "WeChat Pay failed");
                ChargingError::new(4001, "支付失败：微信支付下单失败，请稍后重试")
            }
            PayError::NotPayable => ChargingError::new(4002, "支付超时：支付单已失效，请重新发起支付"),
            PayError::PayerNeeded => {
                ChargingError::new(4001, "支付失败：该账号未绑定微信，请使用扫码支付或余额支付")
            }
            PayError::Storage(error) => error.into(),
        }
    }
}

impl From<DriverError> for ChargingError {
    fn from(error: DriverError) -> ChargingError {
        match error {
            DriverError::Offline => ChargingError::new(2004, "充电桩离线"),
            DriverError::PortFault(_) => ChargingError::new(2006, "充电端口故障"),
            DriverError::Timeout => ChargingError::new(5002, "充电桩通信超时"),
            DriverError::Refused(why) => {
                tracing::warn!(api = "charging", why, "the charger refused a command");
                ChargingError::new(5001, "充电桩控制失败")
            }
            DriverError::Busy => ChargingError::new(5003, "充电桩正在充电中"),
            DriverError::NotCharging => ChargingError::new(5004, "充电桩未在充电中"),
            DriverError::UnknownDevice => ChargingError::new(2002, "充电桩不存在"),
            DriverError::Provider(error) => {
                tracing::warn!(api = "charging", %error, "the device gateway failed");
                ChargingError::new(5001, "充电桩控制失败")
            }
            DriverError::Storage(error) => error.into(),
        }
    }
}
