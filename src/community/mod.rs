//! The community API (002, 一标三实 / 万家灯火) for real: the generated [`CommunityApi`] trait
//! implemented over [`service::CommunityService`]. Each operation here only unwraps its input,
//! calls the service method of the same name and answers its response (the document's flat
//! envelope is the response type itself); errors become their documented variant through
//! [`crate::api_support::error_output`]. The notify answers WeChat Pay's XML.

use std::sync::Arc;

use generated::community::*;
use generated::runtime::{AuthError, Context, Credential};

pub mod error;
mod fees;
mod household;
pub mod sandbox;
pub mod seed;
pub mod service;

use error::CommunityError;
use service::{Caller, CommunityService};

use crate::api_support::{PublicUrl, auth_error, error_output};
use crate::identity::Principal;

/// The real community server: the generated trait over the service.
#[derive(Clone)]
pub struct Community {
    /// The application.
    pub service: Arc<CommunityService>,
    /// Where the page links of 4.1.1 and 4.1.2 start.
    pub public_url: PublicUrl,
}

/// Answer a service result: `Ok` as the operation's 200, `Err` as the variant documented for
/// its status.
macro_rules! answer {
    ($ctx:ident, $result:expr, $output:ident) => {{
        match $result {
            Ok(response) => $output::Ok(response),
            Err(error) => error_output("community", $ctx.operation_id, error, 0),
        }
    }};
}

/// The caller of an operation that needs a valid token.
fn user(caller: &Caller) -> Result<&Principal, CommunityError> {
    match caller {
        Caller::User(principal) => Ok(principal),
        Caller::Stale(why) => Err(CommunityError::Unauthorized(why.clone())),
        Caller::Renewal(_) => Err(CommunityError::Unauthorized(
            "token值因各种原因而失效，请重新调用接口获取token".into(),
        )),
    }
}

/// Operations of a logged-in user: `op!(name, Input, Output, |service, who, input| call)`.
macro_rules! user_op {
    ($name:ident, $input:ident, $output:ident, |$s:ident, $who:ident, $i:ident| $call:expr) => {
        async fn $name(&self, ctx: Context<Caller>, $i: $input) -> $output {
            let result = async {
                let $who = user(&ctx.principal)?;
                let $s = &self.service;
                // The document's refusals of a caller with a valid token say so.
                $call.await.map_err(CommunityError::token_live)
            }
            .await;
            answer!(ctx, result, $output)
        }
    };
}

impl CommunityApi for Community {
    type Principal = Caller;

    async fn authenticate(&self, operation: Operation, credential: Credential) -> Result<Caller, AuthError> {
        let secret = credential.secret();
        // 1.4.2 takes the old token, expired or not: the operation itself checks it. 1.4.1 is
        // how a mini-program whose token is past refreshing gets a new one from a code, so a
        // stale token it still sends must not stop it.
        if matches!(operation, Operation::AuthorizationRefresh | Operation::WeappAuthorizationCreate) {
            return Ok(Caller::Renewal(secret.to_owned()));
        }
        let result = self.service.authenticate(secret).await.map(Caller::User);
        // 1.1 needs no token but for owner codes; a stale one must not stop a register code.
        if operation == Operation::VerificationCodeSend
            && let Err(CommunityError::Unauthorized(why)) = &result
        {
            return Ok(Caller::Stale(why.clone()));
        }
        result.map_err(|error| auth_error("community", error))
    }

    async fn verification_code_send(&self, ctx: Context<Option<Caller>>, input: VerificationCodeSendInput) -> VerificationCodeSendOutput {
        let applicant = match &ctx.principal {
            Some(Caller::User(principal)) => Ok(Some(principal)),
            Some(Caller::Stale(why)) => Err(CommunityError::Unauthorized(why.clone())),
            // Renewal is 1.4.2's alone.
            Some(Caller::Renewal(_)) | None => Ok(None),
        };
        let client = self.service.clients.of(&ctx.headers, &ctx.extensions);
        answer!(ctx, self.service.verification_code_send(applicant, &input.body, client).await, VerificationCodeSendOutput)
    }

    async fn weapp_code_exchange(&self, ctx: Context<()>, input: WeappCodeExchangeInput) -> WeappCodeExchangeOutput {
        answer!(ctx, self.service.weapp_code_exchange(&input.body.code).await, WeappCodeExchangeOutput)
    }

    async fn weapp_user_register(&self, ctx: Context<()>, input: WeappUserRegisterInput) -> WeappUserRegisterOutput {
        answer!(ctx, self.service.weapp_user_register(&input.body).await, WeappUserRegisterOutput)
    }

    async fn weapp_authorization_create(
        &self,
        ctx: Context<Option<Caller>>,
        input: WeappAuthorizationCreateInput,
    ) -> WeappAuthorizationCreateOutput {
        let code = input.body.as_ref().map(|b| b.code.as_str());
        answer!(ctx, self.service.weapp_authorization_create(code).await, WeappAuthorizationCreateOutput)
    }

    async fn authorization_refresh(&self, ctx: Context<Caller>, _: AuthorizationRefreshInput) -> AuthorizationRefreshOutput {
        let result = match &ctx.principal {
            Caller::Renewal(token) => self.service.authorization_refresh(token).await,
            Caller::User(_) | Caller::Stale(_) => Err(CommunityError::Unauthorized("请携带旧token".into())),
        };
        answer!(ctx, result, AuthorizationRefreshOutput)
    }

    user_op!(people_permission_list, PeoplePermissionListInput, PeoplePermissionListOutput, |s, who, _i| s.people_permission_list(who));

    async fn community_list(&self, ctx: Context<()>, _: CommunityListInput) -> CommunityListOutput {
        answer!(ctx, self.service.community_list().await, CommunityListOutput)
    }

    user_op!(building_list, BuildingListInput, BuildingListOutput, |s, _who, i| s.building_list(&i.body.id));
    user_op!(unit_list, UnitListInput, UnitListOutput, |s, _who, i| s.unit_list(i.body.id));
    user_op!(floor_list, FloorListInput, FloorListOutput, |s, _who, i| s.floor_list(i.body.id));
    user_op!(house_list, HouseListInput, HouseListOutput, |s, _who, i| s.house_list(i.body.id));
    user_op!(security_phone_verify, SecurityPhoneVerifyInput, SecurityPhoneVerifyOutput, |s, who, i| s.security_phone_verify(who, &i.body));
    user_op!(security_owner_get, SecurityOwnerGetInput, SecurityOwnerGetOutput, |s, who, i| s.security_owner_get(who, i.body.id));
    user_op!(security_owner_verify, SecurityOwnerVerifyInput, SecurityOwnerVerifyOutput, |s, who, i| s.security_owner_verify(who, &i.body));
    user_op!(people_photo_upload, PeoplePhotoUploadInput, PeoplePhotoUploadOutput, |s, who, i| s.people_photo_upload(who, &i.body));
    user_op!(idcard_photo_recognize, IdcardPhotoRecognizeInput, IdcardPhotoRecognizeOutput, |s, who, i| s.idcard_photo_recognize(who, &i.body.image));
    user_op!(yibiaosanshi_submit, YibiaosanshiSubmitInput, YibiaosanshiSubmitOutput, |s, who, i| s.yibiaosanshi_submit(who, &i.body));
    user_op!(house_bind, HouseBindInput, HouseBindOutput, |s, who, i| s.house_bind(who, &i.body));
    user_op!(user_house_list, UserHouseListInput, UserHouseListOutput, |s, who, _i| s.user_house_list(who));
    user_op!(house_get, HouseGetInput, HouseGetOutput, |s, who, i| s.house_get(who, i.body.id));
    user_op!(shenhe_get, ShenheGetInput, ShenheGetOutput, |s, who, i| s.shenhe_get(who, i.body.id));
    user_op!(shenhe_delete, ShenheDeleteInput, ShenheDeleteOutput, |s, who, i| s.shenhe_delete(who, i.body.id));
    user_op!(house_shouquan_update, HouseShouquanUpdateInput, HouseShouquanUpdateOutput, |s, who, i| s.house_shouquan_update(who, i.body.id));
    user_op!(house_unbind, HouseUnbindInput, HouseUnbindOutput, |s, who, i| s.house_unbind(who, i.body.id));
    user_op!(house_charge_update, HouseChargeUpdateInput, HouseChargeUpdateOutput, |s, who, i| s.house_charge_update(who, i.body.id));

    async fn order_list(&self, ctx: Context<Caller>, input: OrderListInput) -> OrderListOutput {
        let base = self.public_url.base(&ctx.headers);
        let result = async { self.service.order_list(user(&ctx.principal)?, &input.body, &base).await.map_err(CommunityError::token_live) };
        answer!(ctx, result.await, OrderListOutput)
    }

    async fn payment_list(&self, ctx: Context<Caller>, input: PaymentListInput) -> PaymentListOutput {
        let base = self.public_url.base(&ctx.headers);
        let result = async { self.service.payment_list(user(&ctx.principal)?, &input.body, &base).await.map_err(CommunityError::token_live) };
        answer!(ctx, result.await, PaymentListOutput)
    }

    user_op!(payment_create, PaymentCreateInput, PaymentCreateOutput, |s, who, i| s.payment_create(who, &i.body.ids));

    async fn payment_notify(&self, ctx: Context<()>, _: PaymentNotifyInput) -> PaymentNotifyOutput {
        // The signature covers every field as received, never the parsed subset.
        let outcome = self.service.payment_notify(&ctx.headers, &ctx.raw_body).await;
        let ack = crate::providers::wechat_pay::v2::notify_ack(outcome.status() == 200, outcome.message());
        match outcome.status() {
            200 => PaymentNotifyOutput::Ok(ack),
            400 | 401 => PaymentNotifyOutput::BadRequest(ack),
            _ => PaymentNotifyOutput::InternalServerError(ack),
        }
    }
}
