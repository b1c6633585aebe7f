//! One way from an API's application error to its answer: the error says its status, its body in
//! the API's envelope and, for 429s, how long to wait; the generated `FromErrorAnswer` impls
//! (emitted from the spec's responses) put it in the operation's variant for that status. Nothing
//! is copied per API: an API implements [`ApiError`] once.

use generated::runtime::{AuthError, ErrorAnswer, FromErrorAnswer, OperationOutput, Prepared};

/// An API's application error.
pub trait ApiError: std::fmt::Display + Sized {
    /// The error envelope of the API's contract.
    type Body: serde::Serialize;

    /// The HTTP status the contract gives this error.
    fn status(&self) -> u16;
    /// The envelope, stamped `now_ms`.
    fn body(&self, now_ms: i64) -> Self::Body;
    /// Seconds a client should wait before trying again (429s: `Retry-After`).
    fn retry_after(&self) -> Option<u64> {
        None
    }
    /// When the error is our fault: the detail for the log (never sent to the client).
    fn internal_detail(&self) -> Option<&str> {
        None
    }
    /// The API's internal error (HTTP 500), answered in place of an error whose status the
    /// operation does not document.
    fn internal() -> Self;
}

/// Answer `error` as `operation`'s output: the variant documented for its status, in the API's
/// envelope, internal detail logged. A status the operation does not document is a bug of ours:
/// logged, and answered as the operation's 500 (or, where even that is undocumented, a 500 with
/// the API's internal-error envelope).
pub fn error_output<E, O>(api: &'static str, operation: &'static str, error: E, now_ms: i64) -> O
where
    E: ApiError,
    O: FromErrorAnswer<E::Body> + OperationOutput,
{
    if let Some(detail) = error.internal_detail() {
        tracing::error!(api, operation, detail, "internal error");
    }
    let answer = ErrorAnswer { status: error.status(), body: error.body(now_ms), retry_after: error.retry_after() };
    match O::from_error_answer(answer) {
        Ok(output) => output,
        Err(answer) => {
            tracing::error!(api, operation, status = answer.status, %error, "an error status the operation does not document");
            let internal = E::internal();
            let fallback = ErrorAnswer { status: internal.status(), body: internal.body(now_ms), retry_after: None };
            O::from_error_answer(fallback).unwrap_or_else(|fallback| {
                O::prepared(Prepared {
                    status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    media_type: Some("application/json"),
                    headers: Vec::new(),
                    body: serde_json::to_vec(&fallback.body).unwrap_or_default().into(),
                })
            })
        }
    }
}

/// An API's refusal of a credential as the generated router answers it: our own fault (storage
/// could not check it) is `Unavailable` — HTTP 503, because a 401 would make every mini-program
/// drop its token and a database blip would sign everyone out — anything else `Unauthenticated`
/// in the error's own words.
pub fn auth_error<E: ApiError>(api: &'static str, error: E) -> AuthError {
    match error.internal_detail() {
        Some(detail) => {
            tracing::error!(api, detail, "authentication could not be checked");
            AuthError::Unavailable("服务暂时不可用，请稍后重试".into())
        }
        None => AuthError::Unauthenticated(error.to_string()),
    }
}
