//! The heating API (000, 乌鲁木齐热力集团供热缴费) for real: the generated [`HeatingApi`] trait
//! implemented over [`service::HeatingService`]. Each operation here only unwraps its input,
//! calls the service method of the same name and wraps the answer in the envelope; errors
//! become their documented variant through [`crate::api_support::error_output`].

use std::sync::Arc;

use generated::heating::types::*;
use generated::heating::*;
use generated::runtime::{AuthError, Context, Credential};

pub mod error;
pub mod seed;
pub mod service;

use error::HeatingError;
use service::HeatingService;

use crate::api_support::{auth_error, error_output};
use crate::identity::Principal;

/// The real heating server: the generated trait over the service.
#[derive(Clone)]
pub struct Heating(pub Arc<HeatingService>);

impl Heating {
    fn now(&self) -> i64 {
        self.0.clock.now_ms()
    }
}

/// Wrap a service result: `Ok` in the operation's 200 envelope with `$message`, `Err` in the
/// variant documented for its status.
macro_rules! answer {
    ($self:ident, $ctx:ident, $result:expr, $output:ident, $response:ident, $code:ident, $message:literal) => {{
        let now = $self.now();
        match $result {
            Ok(data) => $output::Ok($response { code: $code::Value200, message: $message.into(), data, timestamp: now }),
            Err(error) => error_output("heating", $ctx.operation_id, error, now),
        }
    }};
}

impl HeatingApi for Heating {
    type Principal = Principal;

    async fn authenticate(&self, _: Operation, credential: Credential) -> Result<Principal, AuthError> {
        self.0.authenticate(credential.secret()).await.map_err(|error| auth_error("heating", error))
    }

    async fn sms_send(&self, ctx: Context<()>, input: SmsSendInput) -> SmsSendOutput {
        let body = input.body;
        let client = self.0.clients.of(&ctx.headers, &ctx.extensions);
        answer!(self, ctx, self.0.sms_send(&body.phone, &body.r#type, client).await, SmsSendOutput, SmsSendResponse, SmsSendResponseCode, "验证码发送成功")
    }

    async fn sms_verify(&self, ctx: Context<()>, input: SmsVerifyInput) -> SmsVerifyOutput {
        let body = input.body;
        let kind = match body.r#type {
            SmsVerifyRequestType::Login => SmsSendRequestType::Login,
            SmsVerifyRequestType::Register => SmsSendRequestType::Register,
            SmsVerifyRequestType::ResetPassword => SmsSendRequestType::ResetPassword,
        };
        let result = self.0.sms_verify(&body.phone, &kind, &body.code).await;
        answer!(self, ctx, result, SmsVerifyOutput, SmsVerifyResponse, SmsVerifyResponseCode, "验证码正确")
    }

    async fn auth_login(&self, ctx: Context<()>, input: AuthLoginInput) -> AuthLoginOutput {
        let body = input.body;
        answer!(self, ctx, self.0.auth_login(&body.phone, &body.code).await, AuthLoginOutput, LoginResponse, LoginResponseCode, "登录成功")
    }

    async fn auth_register(&self, ctx: Context<()>, input: AuthRegisterInput) -> AuthRegisterOutput {
        let b = input.body;
        let result = self.0.auth_register(&b.phone, &b.code, &b.password, b.nickname.as_deref()).await;
        answer!(self, ctx, result, AuthRegisterOutput, RegisterResponse, RegisterResponseCode, "注册成功")
    }

    async fn auth_refresh(&self, ctx: Context<()>, input: AuthRefreshInput) -> AuthRefreshOutput {
        let result = self.0.auth_refresh(&input.body.refresh_token).await;
        answer!(self, ctx, result, AuthRefreshOutput, RefreshResponse, RefreshResponseCode, "token刷新成功")
    }

    async fn auth_logout(&self, ctx: Context<Principal>, _: AuthLogoutInput) -> AuthLogoutOutput {
        answer!(self, ctx, self.0.auth_logout(&ctx.principal).await, AuthLogoutOutput, LogoutResponse, LogoutResponseCode, "登出成功")
    }

    async fn user_profile_get(&self, ctx: Context<Principal>, _: UserProfileGetInput) -> UserProfileGetOutput {
        let result = self.0.user_profile_get(&ctx.principal).await;
        answer!(self, ctx, result, UserProfileGetOutput, UserProfileResponse, UserProfileResponseCode, "获取成功")
    }

    async fn user_profile_update(&self, ctx: Context<Principal>, input: UserProfileUpdateInput) -> UserProfileUpdateOutput {
        let result = self.0.user_profile_update(&ctx.principal, &input.body).await.map(|updated_fields| UserProfileUpdateData { updated_fields });
        answer!(self, ctx, result, UserProfileUpdateOutput, UserProfileUpdateResponse, UserProfileUpdateResponseCode, "更新成功")
    }

    async fn user_password_update(&self, ctx: Context<Principal>, input: UserPasswordUpdateInput) -> UserPasswordUpdateOutput {
        let result = self.0.user_password_update(&ctx.principal, &input.body).await;
        answer!(self, ctx, result, UserPasswordUpdateOutput, UserPasswordUpdateResponse, UserPasswordUpdateResponseCode, "密码修改成功")
    }

    async fn heat_bind(&self, ctx: Context<Principal>, input: HeatBindInput) -> HeatBindOutput {
        answer!(self, ctx, self.0.heat_bind(&ctx.principal, &input.body).await, HeatBindOutput, HeatBindResponse, HeatBindResponseCode, "绑定成功")
    }

    async fn heat_account_get(&self, ctx: Context<Principal>, _: HeatAccountGetInput) -> HeatAccountGetOutput {
        let result = self.0.heat_account_get(&ctx.principal).await;
        answer!(self, ctx, result, HeatAccountGetOutput, HeatAccountResponse, HeatAccountResponseCode, "获取成功")
    }

    async fn payment_info_get(&self, ctx: Context<Principal>, _: PaymentInfoGetInput) -> PaymentInfoGetOutput {
        let result = self.0.payment_info_get(&ctx.principal).await;
        answer!(self, ctx, result, PaymentInfoGetOutput, PaymentInfoResponse, PaymentInfoResponseCode, "获取成功")
    }

    async fn payment_create(&self, ctx: Context<Principal>, input: PaymentCreateInput) -> PaymentCreateOutput {
        let result = self.0.payment_create(&ctx.principal, &input.body).await;
        answer!(self, ctx, result, PaymentCreateOutput, PaymentCreateResponse, PaymentCreateResponseCode, "订单创建成功")
    }

    async fn payment_status_get(&self, ctx: Context<Principal>, input: PaymentStatusGetInput) -> PaymentStatusGetOutput {
        let result = self.0.payment_status_get(&ctx.principal, &input.order_id).await;
        answer!(self, ctx, result, PaymentStatusGetOutput, PaymentStatusResponse, PaymentStatusResponseCode, "查询成功")
    }

    async fn payment_history_list(&self, ctx: Context<Principal>, input: PaymentHistoryListInput) -> PaymentHistoryListOutput {
        let result = self
            .0
            .payment_history_list(&ctx.principal, input.page, input.size, input.start_date.as_deref(), input.end_date.as_deref())
            .await;
        answer!(self, ctx, result, PaymentHistoryListOutput, PaymentHistoryResponse, PaymentHistoryResponseCode, "获取成功")
    }

    async fn payment_notify(&self, ctx: Context<()>, _: PaymentNotifyInput) -> PaymentNotifyOutput {
        // The signature covers the bytes as received, never a re-serialisation of the body.
        let outcome = self.0.payment_notify(&ctx.headers, &ctx.raw_body).await;
        let ack = |code| WechatPayNotifyAck { code, message: outcome.message().into() };
        match outcome.status() {
            200 => PaymentNotifyOutput::Ok(ack(WechatPayNotifyAckCode::Success)),
            401 => PaymentNotifyOutput::Unauthorized(ack(WechatPayNotifyAckCode::Fail)),
            400 => PaymentNotifyOutput::BadRequest(ack(WechatPayNotifyAckCode::Fail)),
            _ => PaymentNotifyOutput::InternalServerError(ack(WechatPayNotifyAckCode::Fail)),
        }
    }

    async fn config_agreements_get(&self, ctx: Context<()>, _: ConfigAgreementsGetInput) -> ConfigAgreementsGetOutput {
        let result = self.0.config_agreements_get().await;
        answer!(self, ctx, result, ConfigAgreementsGetOutput, AgreementsResponse, AgreementsResponseCode, "获取成功")
    }

    async fn config_system_get(&self, ctx: Context<()>, _: ConfigSystemGetInput) -> ConfigSystemGetOutput {
        let result = self.0.config_system_get().await;
        answer!(self, ctx, result, ConfigSystemGetOutput, SystemConfigResponse, SystemConfigResponseCode, "获取成功")
    }

    async fn statistics_user_get(&self, ctx: Context<Principal>, _: StatisticsUserGetInput) -> StatisticsUserGetOutput {
        let result = self.0.statistics_user_get(&ctx.principal).await;
        answer!(self, ctx, result, StatisticsUserGetOutput, UserStatisticsResponse, UserStatisticsResponseCode, "获取成功")
    }

    async fn health_check(&self, _: Context<()>, _: HealthCheckInput) -> HealthCheckOutput {
        let now = self.now();
        let healthy = self.0.health_check().await;
        let data = HealthData {
            status: if healthy { HealthDataStatus::Ok } else { HealthDataStatus::Error },
            timestamp: crate::clock::iso_ms(now),
            // The contract keeps the original implementation's field name; it reports our
            // database (SQLite or PostgreSQL), see the spec's x-transcription-notes.
            mongodb: if healthy { HealthDataMongodb::Connected } else { HealthDataMongodb::Disconnected },
        };
        if healthy {
            HealthCheckOutput::Ok(HealthResponse { code: HealthResponseCode::Value200, message: "success".into(), data, timestamp: now })
        } else {
            HealthCheckOutput::ServiceUnavailable(HealthUnavailableResponse {
                code: HealthUnavailableResponseCode::Value500,
                message: "服务不可用：数据库未连接".into(),
                data,
                timestamp: now,
            })
        }
    }
}

/// The heating API's answer to a request over the per-IP limit (000 §7), stamped `now` (ms):
/// HTTP 429, code 1008, `Retry-After` — the same answer as any of its 429s, through the same
/// mapping.
pub fn rate_limited(retry_after: u64, now: i64) -> axum::response::Response {
    let output: SmsSendOutput = error_output("heating", "rate_limit", HeatingError::TooFrequent(retry_after), now);
    generated::runtime::into_response(output)
}
