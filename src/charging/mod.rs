//! The charging API (003, 充电桩) for real: the generated [`ChargingApi`] trait implemented over
//! [`service::ChargingService`]. Each operation only unwraps its input, calls the service method
//! of the same name and answers its response; errors become their documented variant through
//! [`crate::api_support::error_output`]. The notify answers WeChat Pay v2's XML.
//!
//! The parts: `service.rs` (accounts, configuration, billing rules, statistics), `catalogue.rs`
//! (stations, piles, ports, devices), `orders.rs` (orders, the charger, the watchdog), `pay.rs`
//! (payments, recharges, the pay page), [`tariff`] (time-of-use billing), `seed.rs` (demo data
//! and the bench's generated stations).

use std::sync::Arc;

use generated::charging::*;
use generated::runtime::{AuthError, Context, Credential};

mod catalogue;
pub mod error;
mod orders;
mod pay;
pub mod positions;
pub mod seed;
pub mod service;
pub mod tariff;

use error::ChargingError;
use service::ChargingService;

use crate::api_support::{PublicUrl, auth_error, error_output};
use crate::identity::Principal;

/// The real charging server: the generated trait over the service.
#[derive(Clone)]
pub struct Charging {
    /// The application.
    pub service: Arc<ChargingService>,
    /// Whether WeChat Pay is the sandbox (the pay page then shows its buttons).
    pub sandbox_pay: bool,
    /// Where the pay page's URL (`paymentUrl` of §6.1 and §6.3) starts.
    pub public_url: PublicUrl,
}

/// Answer a service result: `Ok` as the operation's 200, `Err` as the variant documented for
/// its status.
macro_rules! answer {
    ($ctx:ident, $result:expr, $output:ident) => {{
        match $result {
            Ok(response) => $output::Ok(response),
            Err(error) => error_output("charging", $ctx.operation_id, error, 0),
        }
    }};
}

/// Operations of a logged-in user: `user_op!(name, Input, Output, |service, who, input| call)`.
macro_rules! user_op {
    ($name:ident, $input:ident, $output:ident, |$s:ident, $who:ident, $i:ident| $call:expr) => {
        async fn $name(&self, ctx: Context<Principal>, $i: $input) -> $output {
            let $who = &ctx.principal;
            let $s = &self.service;
            let result: Result<_, ChargingError> = $call.await;
            answer!(ctx, result, $output)
        }
    };
}

impl ChargingApi for Charging {
    type Principal = Principal;

    async fn authenticate(&self, _: Operation, credential: Credential) -> Result<Principal, AuthError> {
        self.service.authenticate(credential.secret()).await.map_err(|error| auth_error("charging", error))
    }

    async fn user_wechat_login(&self, ctx: Context<()>, input: UserWechatLoginInput) -> UserWechatLoginOutput {
        answer!(ctx, self.service.user_wechat_login(&input.body).await, UserWechatLoginOutput)
    }

    async fn user_login(&self, ctx: Context<()>, input: UserLoginInput) -> UserLoginOutput {
        let client = self.service.clients.of(&ctx.headers, &ctx.extensions);
        answer!(ctx, self.service.user_login(&input.body, client).await, UserLoginOutput)
    }

    async fn user_register(&self, ctx: Context<()>, input: UserRegisterInput) -> UserRegisterOutput {
        answer!(ctx, self.service.user_register(&input.body).await, UserRegisterOutput)
    }

    user_op!(user_info_get, UserInfoGetInput, UserInfoGetOutput, |s, who, _i| s.user_info_get(who));
    user_op!(user_update, UserUpdateInput, UserUpdateOutput, |s, who, i| s.user_update(who, &i.body));
    user_op!(station_nearby_list, StationNearbyListInput, StationNearbyListOutput, |s, _who, i| s.station_nearby_list(&i));
    user_op!(station_get, StationGetInput, StationGetOutput, |s, _who, i| s.station_get(&i.id));
    user_op!(station_search, StationSearchInput, StationSearchOutput, |s, _who, i| s.station_search(&i));
    user_op!(station_pile_list, StationPileListInput, StationPileListOutput, |s, _who, i| s.station_pile_list(&i.station_id, i.status.map(|x| x as i32)));
    user_op!(pile_get, PileGetInput, PileGetOutput, |s, _who, i| s.pile_get(&i.id));
    user_op!(pile_qrcode_get, PileQrcodeGetInput, PileQrcodeGetOutput, |s, _who, i| s.pile_qrcode_get(&i.code));
    user_op!(port_list, PortListInput, PortListOutput, |s, _who, i| s.port_list(i.pile_id.as_deref()));
    user_op!(port_get, PortGetInput, PortGetOutput, |s, _who, i| s.port_detail(&i.id));
    user_op!(port_status_get, PortStatusGetInput, PortStatusGetOutput, |s, _who, i| s.port_detail(&i.id));
    user_op!(order_create, OrderCreateInput, OrderCreateOutput, |s, who, i| s.order_create(who, &i.body));
    user_op!(order_get, OrderGetInput, OrderGetOutput, |s, who, i| s.order_get(who, &i.id));
    user_op!(order_status_get, OrderStatusGetInput, OrderStatusGetOutput, |s, who, i| s.order_status_get(who, &i.id));
    user_op!(order_list, OrderListInput, OrderListOutput, |s, who, i| s.order_list(who, &i));
    user_op!(order_stop, OrderStopInput, OrderStopOutput, |s, who, i| s.order_stop(who, &i.id, &i.body));

    async fn payment_pay(&self, ctx: Context<Principal>, input: PaymentPayInput) -> PaymentPayOutput {
        let base = self.public_url.base(&ctx.headers);
        answer!(ctx, self.service.payment_pay(&ctx.principal, &input.body, &base).await, PaymentPayOutput)
    }

    user_op!(payment_status_get, PaymentStatusGetInput, PaymentStatusGetOutput, |s, who, i| s.payment_status_get(who, &i.id));

    async fn payment_recharge(&self, ctx: Context<Principal>, input: PaymentRechargeInput) -> PaymentRechargeOutput {
        let base = self.public_url.base(&ctx.headers);
        answer!(ctx, self.service.payment_recharge(&ctx.principal, &input.body, &base).await, PaymentRechargeOutput)
    }

    async fn payment_wechat_notify(&self, ctx: Context<()>, _: PaymentWechatNotifyInput) -> PaymentWechatNotifyOutput {
        // The signature covers every field as received, never the parsed subset.
        let outcome = self.service.payment_wechat_notify(&ctx.headers, &ctx.raw_body).await;
        let ack = crate::providers::wechat_pay::v2::notify_ack(outcome.status() == 200, outcome.message());
        match outcome.status() {
            200 => PaymentWechatNotifyOutput::Ok(ack),
            400 | 401 => PaymentWechatNotifyOutput::BadRequest(ack),
            _ => PaymentWechatNotifyOutput::InternalServerError(ack),
        }
    }

    async fn payment_wechat_pay_page(&self, ctx: Context<Principal>, input: PaymentWechatPayPageInput) -> PaymentWechatPayPageOutput {
        let result = self.service.payment_wechat_pay_page(&ctx.principal, &input.payment_id, self.sandbox_pay).await;
        answer!(ctx, result, PaymentWechatPayPageOutput)
    }

    user_op!(statistics_charging_get, StatisticsChargingGetInput, StatisticsChargingGetOutput, |s, who, i| s.statistics_charging_get(who, i.period));
    user_op!(config_get, ConfigGetInput, ConfigGetOutput, |s, _who, _i| s.config_get());
    user_op!(billing_rules_get, BillingRulesGetInput, BillingRulesGetOutput, |s, _who, _i| s.billing_rules_get());
    user_op!(charging_start, ChargingStartInput, ChargingStartOutput, |s, who, i| s.charging_start(who, &i.body));
    user_op!(charging_stop, ChargingStopInput, ChargingStopOutput, |s, who, i| s.charging_stop(who, &i.body));
    user_op!(charging_status_get, ChargingStatusGetInput, ChargingStatusGetOutput, |s, _who, i| s.charging_status_get(&i.device_address, i.port_no.as_deref()));
    user_op!(device_charging_start, DeviceChargingStartInput, DeviceChargingStartOutput, |s, who, i| s.device_charging_start(who, &i.device_address, &i.body));
    user_op!(device_charging_stop, DeviceChargingStopInput, DeviceChargingStopOutput, |s, who, i| s.device_charging_stop(who, &i.device_address, &i.body));
    user_op!(device_charging_status_get, DeviceChargingStatusGetInput, DeviceChargingStatusGetOutput, |s, _who, i| s.device_charging_status_get(&i.device_address, i.port));

    async fn pile_configure(&self, ctx: Context<Principal>, input: PileConfigureInput) -> PileConfigureOutput {
        let bytes: Result<Vec<u8>, ChargingError> = input
            .body
            .config
            .iter()
            .map(|b| u8::try_from(b.0).map_err(|_| ChargingError::invalid("config的每个元素须为0-255的字节")))
            .collect();
        let result = match bytes {
            Ok(bytes) => self.service.pile_configure(&ctx.principal, &input.device_address, &bytes).await,
            Err(error) => Err(error),
        };
        answer!(ctx, result, PileConfigureOutput)
    }

    user_op!(device_list, DeviceListInput, DeviceListOutput, |s, who, _i| s.device_list(who));
    user_op!(device_status_get, DeviceStatusGetInput, DeviceStatusGetOutput, |s, _who, i| s.device_status_get(&i.imei));
}

/// Run the watchdog: every second, sync every live order with its charger (so every order ends:
/// completed, cancelled, abnormal); every ten seconds, the devices' connections and readings.
/// Every step is a conditional write, so all instances may run it at once.
pub fn spawn_watchdog(service: Arc<ChargingService>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round: u64 = 0;
        loop {
            tick.tick().await;
            if let Err(error) = service.watch_orders().await {
                tracing::warn!(api = "charging", %error, "the order watchdog failed; trying again in a second");
            }
            if round.is_multiple_of(10)
                && let Err(error) = service.sweep_devices().await
            {
                tracing::warn!(api = "charging", %error, "the device sweep failed; trying again in ten seconds");
            }
            round += 1;
        }
    });
}
