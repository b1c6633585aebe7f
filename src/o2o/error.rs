//! The o2o API's application error and its envelope (`{code, message}`, 004 全局状态码): one
//! global code each, its HTTP status by the contract's mapping (x-transcription-notes 全局状态码 /
//! HTTP 状态映射).

use generated::o2o::types::ErrorResponse;

use crate::api_support::ApiError;
use crate::storage::StorageError;

/// A refusal: the global code, the message shown to the user, and for our own faults the detail
/// that goes to the log only.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct O2oError {
    /// The envelope's `code` (004 全局状态码).
    pub code: i32,
    /// The envelope's `message`.
    pub message: String,
    /// Our fault's detail (logged, never sent).
    pub detail: Option<String>,
}

impl O2oError {
    /// A refusal with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> O2oError {
        O2oError { code, message: message.into(), detail: None }
    }

    /// 10001 参数不合法, saying which (also "not found": the document has no such code).
    pub fn invalid(message: impl Into<String>) -> O2oError {
        O2oError::new(10001, message)
    }

    /// 500 未知错误: our fault, `detail` logged.
    pub fn internal(detail: impl Into<String>) -> O2oError {
        O2oError { code: 500, message: "未知错误".into(), detail: Some(detail.into()) }
    }
}

/// The contract's HTTP status of each global code.
fn status_of(code: i32) -> u16 {
    match code {
        10001 | 10005 | 70011 => 400,
        10003 | 10007 | 70010 => 401,
        10000 | 10004 => 404,
        10006 => 409,
        _ => 500,
    }
}

impl ApiError for O2oError {
    type Body = ErrorResponse;

    fn status(&self) -> u16 {
        status_of(self.code)
    }

    fn body(&self, _: i64) -> ErrorResponse {
        let code = serde_json::from_value(serde_json::json!(self.code))
            .or_else(|_| serde_json::from_value(serde_json::json!(500)))
            .expect("500 is in the contract's ErrorResponse.code enum");
        ErrorResponse { code, message: self.message.clone(), data: None }
    }

    fn internal_detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    fn internal() -> O2oError {
        O2oError::internal("")
    }
}

impl From<StorageError> for O2oError {
    fn from(error: StorageError) -> O2oError {
        O2oError::internal(error.to_string())
    }
}
