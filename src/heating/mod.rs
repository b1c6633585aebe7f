//! The heating API (000, 乌鲁木齐热力集团供热缴费) for real: the generated [`HeatingApi`] trait
//! implemented over [`service::HeatingService`]. Each operation here only unwraps its input,
//! calls the service and wraps the answer in the envelope; errors become the envelope in
//! [`error`].

use std::sync::Arc;

use generated::heating::types::{self, *};
use generated::heating::*;
use generated::runtime::{Context, Credential, Unauthenticated};

pub mod error;
pub mod seed;
pub mod service;

use error::{ErrorOutput, HeatingError};
use service::{HeatingService, HeatingUser, NotifyOutcome};

/// The real heating server: the generated trait over the service.
#[derive(Clone)]
pub struct Heating(pub Arc<HeatingService>);

impl Heating {
    fn now(&self) -> i64 {
        self.0.clock.now_ms()
    }
}

/// Wrap a service result: `Ok` in the operation's 200 envelope with `$message`, `Err` in its
/// error variant.
macro_rules! answer {
    ($self:ident, $result:expr, $output:ident, $response:ident, $code:ident, $message:literal) => {{
        let now = $self.now();
        match $result {
            Ok(data) => $output::Ok($response { code: $code::Value200, message: $message.into(), data, timestamp: now }),
            Err(error) => <$output as ErrorOutput>::from_error(error, now),
        }
    }};
}

impl HeatingApi for Heating {
    type Principal = HeatingUser;

    async fn authenticate(&self, _: Operation, credential: Credential) -> Result<HeatingUser, Unauthenticated> {
        self.0.authenticate(credential.secret()).await.map_err(|error| {
            if let HeatingError::Internal(detail) = &error {
                // The session lookup failed: refuse (fail closed) and say why in the log only.
                tracing::error!(api = "heating", detail, "authentication failed internally");
            }
            Unauthenticated::new(error.to_string())
        })
    }

    async fn sms_send(&self, _: Context<()>, input: SmsSendInput) -> SmsSendOutput {
        let body = input.body;
        answer!(self, self.0.send_code(&body.phone, &body.r#type).await, SmsSendOutput, SmsSendResponse, SmsSendResponseCode, "验证码发送成功")
    }

    async fn sms_verify(&self, _: Context<()>, input: SmsVerifyInput) -> SmsVerifyOutput {
        let body = input.body;
        let kind = match body.r#type {
            SmsVerifyRequestType::Login => SmsSendRequestType::Login,
            SmsVerifyRequestType::Register => SmsSendRequestType::Register,
            SmsVerifyRequestType::ResetPassword => SmsSendRequestType::ResetPassword,
        };
        answer!(self, self.0.verify_code(&body.phone, &kind, &body.code).await, SmsVerifyOutput, SmsVerifyResponse, SmsVerifyResponseCode, "验证码正确")
    }

    async fn auth_login(&self, _: Context<()>, input: AuthLoginInput) -> AuthLoginOutput {
        let body = input.body;
        answer!(self, self.0.login(&body.phone, &body.code).await, AuthLoginOutput, LoginResponse, LoginResponseCode, "登录成功")
    }

    async fn auth_register(&self, _: Context<()>, input: AuthRegisterInput) -> AuthRegisterOutput {
        let b = input.body;
        let result = self.0.register(&b.phone, &b.code, &b.password, b.nickname.as_deref()).await;
        answer!(self, result, AuthRegisterOutput, RegisterResponse, RegisterResponseCode, "注册成功")
    }

    async fn auth_refresh(&self, _: Context<()>, input: AuthRefreshInput) -> AuthRefreshOutput {
        let result = self.0.refresh(&input.body.refresh_token).await;
        answer!(self, result, AuthRefreshOutput, RefreshResponse, RefreshResponseCode, "token刷新成功")
    }

    async fn auth_logout(&self, ctx: Context<HeatingUser>, _: AuthLogoutInput) -> AuthLogoutOutput {
        answer!(self, self.0.logout(&ctx.principal).await, AuthLogoutOutput, LogoutResponse, LogoutResponseCode, "登出成功")
    }

    async fn user_profile_get(&self, ctx: Context<HeatingUser>, _: UserProfileGetInput) -> UserProfileGetOutput {
        let result = self.0.profile(&ctx.principal).await;
        answer!(self, result, UserProfileGetOutput, UserProfileResponse, UserProfileResponseCode, "获取成功")
    }

    async fn user_profile_update(&self, ctx: Context<HeatingUser>, input: UserProfileUpdateInput) -> UserProfileUpdateOutput {
        let result = self
            .0
            .update_profile(&ctx.principal, &input.body)
            .await
            .map(|updated_fields| UserProfileUpdateData { updated_fields });
        answer!(self, result, UserProfileUpdateOutput, UserProfileUpdateResponse, UserProfileUpdateResponseCode, "更新成功")
    }

    async fn user_password_update(&self, ctx: Context<HeatingUser>, input: UserPasswordUpdateInput) -> UserPasswordUpdateOutput {
        let result = self.0.change_password(&ctx.principal, &input.body).await;
        answer!(self, result, UserPasswordUpdateOutput, UserPasswordUpdateResponse, UserPasswordUpdateResponseCode, "密码修改成功")
    }

    async fn heat_bind(&self, ctx: Context<HeatingUser>, input: HeatBindInput) -> HeatBindOutput {
        answer!(self, self.0.bind(&ctx.principal, &input.body).await, HeatBindOutput, HeatBindResponse, HeatBindResponseCode, "绑定成功")
    }

    async fn heat_account_get(&self, ctx: Context<HeatingUser>, _: HeatAccountGetInput) -> HeatAccountGetOutput {
        let result = self.0.account(&ctx.principal).await;
        answer!(self, result, HeatAccountGetOutput, HeatAccountResponse, HeatAccountResponseCode, "获取成功")
    }

    async fn payment_info_get(&self, ctx: Context<HeatingUser>, _: PaymentInfoGetInput) -> PaymentInfoGetOutput {
        let result = self.0.payment_info(&ctx.principal).await;
        answer!(self, result, PaymentInfoGetOutput, PaymentInfoResponse, PaymentInfoResponseCode, "获取成功")
    }

    async fn payment_create(&self, ctx: Context<HeatingUser>, input: PaymentCreateInput) -> PaymentCreateOutput {
        let result = self.0.create_payment(&ctx.principal, &input.body).await;
        answer!(self, result, PaymentCreateOutput, PaymentCreateResponse, PaymentCreateResponseCode, "订单创建成功")
    }

    async fn payment_status_get(&self, ctx: Context<HeatingUser>, input: PaymentStatusGetInput) -> PaymentStatusGetOutput {
        let result = self.0.payment_status(&ctx.principal, &input.order_id).await;
        answer!(self, result, PaymentStatusGetOutput, PaymentStatusResponse, PaymentStatusResponseCode, "查询成功")
    }

    async fn payment_history_list(&self, ctx: Context<HeatingUser>, input: PaymentHistoryListInput) -> PaymentHistoryListOutput {
        let result = self
            .0
            .history(&ctx.principal, input.page, input.size, input.start_date.as_deref(), input.end_date.as_deref())
            .await;
        answer!(self, result, PaymentHistoryListOutput, PaymentHistoryResponse, PaymentHistoryResponseCode, "获取成功")
    }

    async fn payment_notify(&self, ctx: Context<()>, _: PaymentNotifyInput) -> PaymentNotifyOutput {
        // The signature covers the bytes as received, never a re-serialisation of the body; the
        // provider reads its `Wechatpay-*` headers itself.
        let ack = |code, message: &str| WechatPayNotifyAck { code, message: message.into() };
        match self.0.notify(&ctx.headers, &ctx.raw_body).await {
            NotifyOutcome::Applied => PaymentNotifyOutput::Ok(ack(WechatPayNotifyAckCode::Success, "OK")),
            NotifyOutcome::BadSignature => {
                PaymentNotifyOutput::Unauthorized(ack(WechatPayNotifyAckCode::Fail, "签名验证失败"))
            }
            NotifyOutcome::Unreadable => PaymentNotifyOutput::BadRequest(ack(WechatPayNotifyAckCode::Fail, "解密失败")),
            NotifyOutcome::Refused(why) => PaymentNotifyOutput::BadRequest(ack(WechatPayNotifyAckCode::Fail, why)),
            NotifyOutcome::Failed => {
                PaymentNotifyOutput::InternalServerError(ack(WechatPayNotifyAckCode::Fail, "服务器内部错误"))
            }
        }
    }

    async fn config_agreements_get(&self, _: Context<()>, _: ConfigAgreementsGetInput) -> ConfigAgreementsGetOutput {
        answer!(self, self.0.agreements().await, ConfigAgreementsGetOutput, AgreementsResponse, AgreementsResponseCode, "获取成功")
    }

    async fn config_system_get(&self, _: Context<()>, _: ConfigSystemGetInput) -> ConfigSystemGetOutput {
        answer!(self, self.0.system_config().await, ConfigSystemGetOutput, SystemConfigResponse, SystemConfigResponseCode, "获取成功")
    }

    async fn statistics_user_get(&self, ctx: Context<HeatingUser>, _: StatisticsUserGetInput) -> StatisticsUserGetOutput {
        let result = self.0.statistics(&ctx.principal).await;
        answer!(self, result, StatisticsUserGetOutput, UserStatisticsResponse, UserStatisticsResponseCode, "获取成功")
    }

    async fn health_check(&self, _: Context<()>, _: HealthCheckInput) -> HealthCheckOutput {
        let now = self.now();
        let healthy = self.0.healthy().await;
        let data = HealthData {
            status: if healthy { HealthDataStatus::Ok } else { HealthDataStatus::Error },
            timestamp: crate::clock::iso_ms(now),
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

/// The heating API's 429 for the per-IP limit (000 §7): HTTP 429, code 1008.
pub fn rate_limited(_retry_after: u64) -> axum::response::Response {
    let body = types::ErrorResponse {
        code: ErrorResponseCode::Value1008,
        message: "操作频繁，请稍后再试".into(),
        data: (),
        timestamp: chrono::Utc::now().timestamp_millis(),
    };
    generated::runtime::into_response(SmsSendOutput::TooManyRequests(body))
}
