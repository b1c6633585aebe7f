//! The points API (001, API积分商城) for real: the generated [`PointsApi`] trait implemented
//! over [`service::PointsService`]. Each operation here only unwraps its input, calls the
//! service method of the same name and wraps the answer in the `{code: 0, message, data}`
//! envelope; errors become their documented variant through
//! [`crate::api_support::error_output`].

use std::sync::Arc;

use generated::points::types::*;
use generated::points::*;
use generated::runtime::{AuthError, Context, Credential};

pub mod error;
pub mod seed;
pub mod service;

use error::PointsError;
use service::{Caller, PointsService};

use crate::api_support::{auth_error, error_output};
use crate::identity::Principal;

/// The real points server: the generated trait over the service.
#[derive(Clone)]
pub struct Points(pub Arc<PointsService>);

/// Wrap a service result: `Ok` in the operation's 200 envelope, `Err` in the variant documented
/// for its status.
macro_rules! answer {
    ($ctx:ident, $result:expr, $output:ident, $response:ident) => {{
        match $result {
            Ok(data) => $output::Ok($response {
                code: SuccessCode::Value0,
                message: "success".into(),
                data,
            }),
            Err(error) => error_output("points", $ctx.operation_id, error, 0),
        }
    }};
}

/// The logged-in user of a user operation (authenticate gave every other operation its own
/// kind of caller).
fn user(caller: &Caller) -> Result<&Principal, PointsError> {
    match caller {
        Caller::User(principal) => Ok(principal),
        Caller::Renewal(_) | Caller::Key(_) => Err(PointsError::Unauthorized("未登录或登录已过期")),
    }
}

impl PointsApi for Points {
    type Principal = Caller;

    async fn authenticate(
        &self,
        operation: Operation,
        credential: Credential,
    ) -> Result<Caller, AuthError> {
        let secret = credential.secret();
        let result = match operation {
            // 001 §1.2 takes the expired token: the operation itself checks it.
            Operation::AuthTokenRefresh => return Ok(Caller::Renewal(secret.to_owned())),
            Operation::PointsConsume => self.0.authenticate_key(secret).await.map(Caller::Key),
            _ => self.0.authenticate(secret).await.map(Caller::User),
        };
        result.map_err(|error| auth_error("points", error))
    }

    async fn auth_wechat_login(
        &self,
        ctx: Context<()>,
        input: AuthWechatLoginInput,
    ) -> AuthWechatLoginOutput {
        let b = input.body;
        let result = self
            .0
            .auth_wechat_login(&b.code, b.encrypted_data.as_deref(), b.iv.as_deref())
            .await;
        answer!(ctx, result, AuthWechatLoginOutput, AuthWechatLoginResponse)
    }

    async fn auth_token_refresh(
        &self,
        ctx: Context<Caller>,
        _: AuthTokenRefreshInput,
    ) -> AuthTokenRefreshOutput {
        let result = match &ctx.principal {
            Caller::Renewal(token) => self.0.auth_token_refresh(token).await,
            _ => Err(PointsError::Unauthorized("未登录或登录已过期")),
        };
        answer!(
            ctx,
            result,
            AuthTokenRefreshOutput,
            AuthTokenRefreshResponse
        )
    }

    async fn user_info_get(&self, ctx: Context<Caller>, _: UserInfoGetInput) -> UserInfoGetOutput {
        let result = async { self.0.user_info_get(user(&ctx.principal)?).await }.await;
        answer!(ctx, result, UserInfoGetOutput, UserInfoGetResponse)
    }

    async fn points_package_list(
        &self,
        ctx: Context<Caller>,
        _: PointsPackageListInput,
    ) -> PointsPackageListOutput {
        let result = async {
            user(&ctx.principal)?;
            self.0.points_package_list().await
        }
        .await;
        answer!(
            ctx,
            result,
            PointsPackageListOutput,
            PointsPackageListResponse
        )
    }

    async fn points_order_create(
        &self,
        ctx: Context<Caller>,
        input: PointsOrderCreateInput,
    ) -> PointsOrderCreateOutput {
        let result = async { self.0.points_order_create(user(&ctx.principal)?, &input.body.package_id).await }.await;
        answer!(
            ctx,
            result,
            PointsOrderCreateOutput,
            PointsOrderCreateResponse
        )
    }

    async fn points_payment_check(
        &self,
        ctx: Context<Caller>,
        input: PointsPaymentCheckInput,
    ) -> PointsPaymentCheckOutput {
        let result = async { self.0.points_payment_check(user(&ctx.principal)?, &input.order_id).await }.await;
        answer!(
            ctx,
            result,
            PointsPaymentCheckOutput,
            PointsPaymentCheckResponse
        )
    }

    async fn points_purchase_history_list(
        &self,
        ctx: Context<Caller>,
        input: PointsPurchaseHistoryListInput,
    ) -> PointsPurchaseHistoryListOutput {
        let result = async { self.0.points_purchase_history_list(user(&ctx.principal)?, input.page, input.size).await }.await;
        answer!(
            ctx,
            result,
            PointsPurchaseHistoryListOutput,
            PointsPurchaseHistoryListResponse
        )
    }

    async fn points_consumption_history_list(
        &self,
        ctx: Context<Caller>,
        input: PointsConsumptionHistoryListInput,
    ) -> PointsConsumptionHistoryListOutput {
        let result = async { self.0.points_consumption_history_list(user(&ctx.principal)?, input.page, input.size).await }.await;
        answer!(
            ctx,
            result,
            PointsConsumptionHistoryListOutput,
            PointsConsumptionHistoryListResponse
        )
    }

    async fn points_consume(
        &self,
        ctx: Context<Caller>,
        input: PointsConsumeInput,
    ) -> PointsConsumeOutput {
        let result = match &ctx.principal {
            Caller::Key(key) => self.0.points_consume(key, &input.body).await,
            _ => Err(PointsError::Unauthorized("API Key无效或已删除")),
        };
        answer!(ctx, result, PointsConsumeOutput, PointsConsumeResponse)
    }

    async fn points_payment_notify(
        &self,
        ctx: Context<()>,
        _: PointsPaymentNotifyInput,
    ) -> PointsPaymentNotifyOutput {
        // The signature covers the bytes as received, never a re-serialisation of the body.
        let outcome = self
            .0
            .points_payment_notify(&ctx.headers, &ctx.raw_body)
            .await;
        let ack = |code| WechatPayNotifyAck {
            code,
            message: outcome.message().into(),
        };
        match outcome.status() {
            200 => PointsPaymentNotifyOutput::Ok(ack(WechatPayNotifyAckCode::Success)),
            401 => PointsPaymentNotifyOutput::Unauthorized(ack(WechatPayNotifyAckCode::Fail)),
            400 => PointsPaymentNotifyOutput::BadRequest(ack(WechatPayNotifyAckCode::Fail)),
            _ => PointsPaymentNotifyOutput::InternalServerError(ack(WechatPayNotifyAckCode::Fail)),
        }
    }

    async fn api_key_list(&self, ctx: Context<Caller>, _: ApiKeyListInput) -> ApiKeyListOutput {
        let result = async { self.0.api_key_list(user(&ctx.principal)?).await }.await;
        answer!(ctx, result, ApiKeyListOutput, ApiKeyListResponse)
    }

    async fn api_key_create(
        &self,
        ctx: Context<Caller>,
        input: ApiKeyCreateInput,
    ) -> ApiKeyCreateOutput {
        let result = async { self.0.api_key_create(user(&ctx.principal)?, &input.body).await }.await;
        answer!(ctx, result, ApiKeyCreateOutput, ApiKeyCreateResponse)
    }

    async fn api_key_delete(
        &self,
        ctx: Context<Caller>,
        input: ApiKeyDeleteInput,
    ) -> ApiKeyDeleteOutput {
        let result = async { self.0.api_key_delete(user(&ctx.principal)?, &input.body.id).await }.await;
        answer!(ctx, result, ApiKeyDeleteOutput, ApiKeyDeleteResponse)
    }

    async fn api_key_status_update(
        &self,
        ctx: Context<Caller>,
        input: ApiKeyStatusUpdateInput,
    ) -> ApiKeyStatusUpdateOutput {
        let result = async { self.0.api_key_status_update(user(&ctx.principal)?, &input.body.id, &input.body.status).await }.await;
        answer!(
            ctx,
            result,
            ApiKeyStatusUpdateOutput,
            ApiKeyStatusUpdateResponse
        )
    }

    async fn system_status_get(
        &self,
        ctx: Context<()>,
        _: SystemStatusGetInput,
    ) -> SystemStatusGetOutput {
        answer!(
            ctx,
            self.0.system_status_get().await,
            SystemStatusGetOutput,
            SystemStatusGetResponse
        )
    }

    async fn system_notice_get(
        &self,
        ctx: Context<()>,
        _: SystemNoticeGetInput,
    ) -> SystemNoticeGetOutput {
        answer!(
            ctx,
            self.0.system_notice_get().await,
            SystemNoticeGetOutput,
            SystemNoticeGetResponse
        )
    }
}
