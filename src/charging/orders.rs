//! Charging orders and their charger (003 §5, §9.1, §9.2, §9.4, §9.5, §9.7): creating one holds
//! its port (one live order a port), starting it drives the charger, every read of a live order
//! syncs it with the charger ([`ChargingService::sync`]: meter samples, the money limit, the
//! charger's own stop, faults, a lost device), and settling bills the samples by the tariff
//! fixed at creation. The watchdog syncs every live order, so every order ends.

use generated::charging::types::*;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::error::ChargingError;
use super::service::{ChargingService, LOST_AFTER, MAX_PAGE_SIZE, START_WINDOW, TIERS, kwh_f64, ok, scaled, seconds_i32, wire};
use super::tariff::{Sample, Tariff};
use crate::api_support::PageRequest;
use crate::clock::{beijing_day_start, iso_s};
use crate::identity::Principal;
use crate::money::{fen, yuan};
use crate::providers::charger::{DriverError, Limit, PortState, Reading, StartCommand, StopReason};
use crate::storage::charging::{Created, Finish, Order, OrderFilter, User};

/// 003 §5.1 order status.
pub mod status {
    /// 0 创建: the port is held, the charger not yet started.
    pub const CREATED: i32 = 0;
    /// 1 进行中.
    pub const CHARGING: i32 = 1;
    /// 2 已完成.
    pub const COMPLETED: i32 = 2;
    /// 3 已取消 (never charged).
    pub const CANCELLED: i32 = 3;
    /// 4 异常 (fault, lost device): billed on the last meter reading.
    pub const ABNORMAL: i32 = 4;

    /// Whether an order of `status` is live: created or charging, not yet ended.
    pub fn is_live(status: i32) -> bool {
        matches!(status, CREATED | CHARGING)
    }
}

/// 003 §5.1 chargingMode → the charger's limit. Amounts are yuan (whole fen), minutes 1–1440,
/// kWh with at most three decimals (Wh) up to 1000.
fn limit_of(mode: i32, parameter: Decimal) -> Result<(Limit, i64), ChargingError> {
    match mode {
        1 => Ok((Limit::Full, 0)),
        2 => match fen(parameter) {
            Some(f) if f > 0 => Ok((Limit::Fen(f), f)),
            _ => Err(ChargingError::invalid("按金额充电时chargingParameter须为大于0的金额(元)，最多两位小数")),
        },
        3 => match parameter.to_i64().filter(|m| parameter.fract().is_zero() && (1..=1440).contains(m)) {
            Some(minutes) => Ok((Limit::Seconds(minutes * 60), 0)),
            None => Err(ChargingError::invalid("按时间充电时chargingParameter须为1-1440的整数分钟")),
        },
        4 => {
            let wh = parameter * Decimal::ONE_THOUSAND;
            match wh.to_i64().filter(|w| wh.fract().is_zero() && (1..=1_000_000).contains(w)) {
                Some(wh) => Ok((Limit::Wh(wh), 0)),
                None => Err(ChargingError::invalid("按电量充电时chargingParameter须为大于0、不超过1000的电量(kWh)，最多三位小数")),
            }
        }
        _ => Ok((Limit::None, 0)),
    }
}

/// A stored order's limit, as sent to the charger.
fn order_limit(order: &Order) -> Limit {
    let parameter: Decimal = order.charging_parameter.parse().unwrap_or_default();
    limit_of(order.charging_mode, parameter).map(|(l, _)| l).unwrap_or(Limit::None)
}

/// The samples up to the moment `cap_wh` had been delivered (linear between samples).
fn samples_until(samples: &[Sample], cap_wh: i64) -> Vec<Sample> {
    let mut out = Vec::with_capacity(samples.len());
    for (i, sample) in samples.iter().enumerate() {
        if sample.energy_wh <= cap_wh {
            out.push(*sample);
            continue;
        }
        if let Some(previous) = i.checked_sub(1).map(|p| samples[p]) {
            let span = (sample.energy_wh - previous.energy_wh).max(1);
            let at = previous.at_ms + (sample.at_ms - previous.at_ms) * (cap_wh - previous.energy_wh) / span;
            out.push(Sample { at_ms: at, energy_wh: cap_wh });
        }
        break;
    }
    out
}

/// The bill of `samples`, or — when it exceeds `limit_fen` (> 0) — of the most energy whose bill
/// does not (bills grow with energy: a binary search over Wh).
pub(super) fn capped_bill(tariff: &Tariff, samples: &[Sample], limit_fen: i64) -> super::tariff::Bill {
    let full = tariff.bill(samples);
    if limit_fen <= 0 || full.total_fen <= limit_fen {
        return full;
    }
    let first = samples.first().map_or(0, |s| s.energy_wh);
    let (mut low, mut high) = (first, first + full.energy_wh);
    while low < high {
        let mid = low + (high - low + 1) / 2;
        if tariff.bill(&samples_until(samples, mid)).total_fen <= limit_fen {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    tariff.bill(&samples_until(samples, low))
}

/// 3002 for a new order while `unpaid` (ended, billed, not paid) waits for its payment.
fn unpaid_first(unpaid: &Order) -> ChargingError {
    ChargingError::new(3002, format!("订单状态错误：订单{}尚未支付，请先支付", unpaid.order_no))
}

fn new_order_id(now: i64) -> (String, String) {
    let stamp = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&crate::clock::BEIJING);
    let digits = crate::random::digits(4);
    (format!("ORD{}{digits}", stamp.format("%Y%m%d%H%M%S")), format!("CD{}{digits}", stamp.format("%Y%m%d%H%M%S")))
}

impl ChargingService {
    /// The caller's order `id`: 3001 when none, 403 when another user's (an operator may see any).
    pub(super) async fn own_order(&self, user: &User, id: &str) -> Result<Order, ChargingError> {
        let order = self.db.charging().order(id.trim()).await?.ok_or_else(|| ChargingError::new(3001, "订单不存在"))?;
        if order.user_id != user.id && !Self::is_admin(user) {
            return Err(ChargingError::forbidden("权限不足：不是您的订单"));
        }
        Ok(order)
    }

    /// operationId `order_create` (003 §5.1): hold the port for a new order, post-paid (amount
    /// 0 until it ends). The tariff is fixed now. Balance orders need a balance, and stop when
    /// the bill reaches it; an unpaid ended order must be paid first (3002), and a user has one
    /// live order at a time (3002: else each balance order would be capped at the whole
    /// balance, and bills beyond it left unpaid); 支付宝 is not offered inside WeChat (400).
    pub async fn order_create(&self, who: &Principal, body: &OrderCreateRequest) -> Result<OrderCreateResponse, ChargingError> {
        let user = self.account(who).await?;
        let mode = body.charging_mode as i32;
        let method = body.payment_method as i32;
        let (_, amount_fen) = limit_of(mode, body.charging_parameter)?;
        if method == 2 {
            return Err(ChargingError::invalid("暂不支持支付宝（小程序内无法调起），请选择微信或余额支付"));
        }
        let store = self.db.charging();
        let pile = store.pile(body.pile_id.trim()).await?.ok_or_else(|| ChargingError::new(2002, "充电桩不存在"))?;
        let port = store.port(body.port_id.trim()).await?.filter(|p| p.pile_id == pile.id).ok_or_else(|| ChargingError::new(2003, "充电端口不存在"))?;
        if let Some(unpaid) = store.unpaid_order(user.id).await? {
            return Err(unpaid_first(&unpaid));
        }
        let limit_fen = match method {
            3 if user.balance_fen <= 0 => return Err(ChargingError::new(1005, "账户余额不足，请先充值")),
            3 if amount_fen > user.balance_fen => return Err(ChargingError::new(1005, "账户余额不足：充电金额超过账户余额")),
            3 => if amount_fen > 0 { amount_fen } else { user.balance_fen },
            _ => amount_fen,
        };
        // Ask the charger now: a port that faulted or a device that went away since the last
        // sweep is refused with its own code, not "taken".
        let (pile, ports) = self.refresh_pile(&pile).await?;
        let port = ports.into_iter().map(|(p, _)| p).find(|p| p.id == port.id).ok_or_else(|| ChargingError::new(2003, "充电端口不存在"))?;
        if !pile.online {
            return Err(ChargingError::new(2004, "充电桩离线"));
        }
        if pile.status == 3 || port.status == 3 {
            return Err(ChargingError::new(2006, "充电端口故障"));
        }
        if port.disabled {
            return Err(ChargingError::new(2006, "充电端口故障：该端口已停用"));
        }
        let station = store.station(&pile.station_id).await?;
        // The operator took the station out of service: its ports take no order.
        if let Some(station) = station.as_ref().filter(|s| !super::catalogue::in_service(s)) {
            let why = if station.status == 2 { "充电站维护中" } else { "充电站故障" };
            return Err(ChargingError::new(2006, format!("充电端口故障：{why}，暂停服务")));
        }
        let (tariff, billing_mode) = self.tariff_for(pile.pile_type).await?;
        let now = self.clock.now_ms();
        let (id, order_no) = new_order_id(now);
        let mut order = Order {
            id,
            order_no,
            user_id: user.id,
            pile_id: pile.id.clone(),
            port_id: port.id.clone(),
            station_name: station.map(|s| s.name).unwrap_or_default(),
            pile_no: pile.pile_no.clone(),
            port_no: port.port_no,
            device_address: pile.device_address.clone(),
            charging_mode: mode,
            charging_parameter: body.charging_parameter.normalize().to_string(),
            payment_method: method,
            status: status::CREATED,
            payment_status: 0,
            billing_mode,
            tariff: serde_json::to_string(&tariff).map_err(|e| ChargingError::internal(e.to_string()))?,
            limit_fen,
            started_at: None,
            ended_at: None,
            energy_wh: 0,
            charging_seconds: 0,
            power_w: 0,
            voltage_dv: 0,
            current_ca: 0,
            stop_reason: None,
            sharp_wh: 0,
            sharp_fen: 0,
            peak_wh: 0,
            peak_fen: 0,
            flat_wh: 0,
            flat_fen: 0,
            valley_wh: 0,
            valley_fen: 0,
            deep_valley_wh: 0,
            deep_valley_fen: 0,
            amount_fen: 0,
            service_fee_fen: 0,
            total_fen: 0,
            paid_at: None,
            transaction_id: None,
            remark: String::new(),
            last_read_at: None,
            created_at: now,
            updated_at: now,
        };
        let order = 'placed: {
            for _ in 0..5 {
                match store.create_order(order.clone()).await? {
                    Created::Placed(order) => break 'placed *order,
                    Created::PortTaken => return Err(ChargingError::new(2005, "充电端口已被占用")),
                    Created::UserBusy(live) => {
                        return Err(ChargingError::new(3002, format!("订单状态错误：订单{}尚未结束，请先停止或等待其结束", live.order_no)));
                    }
                    // Ended while the charger was asked (a sync of the pile): paid first.
                    Created::Unpaid(unpaid) => return Err(unpaid_first(&unpaid)),
                    // Another order drew the same four digits in the same second: draw again.
                    Created::IdTaken => (order.id, order.order_no) = new_order_id(now),
                }
            }
            return Err(ChargingError::internal("no free order id after 5 draws"));
        };
        Ok(OrderCreateResponse {
            code: ok()?,
            message: "订单创建成功".into(),
            data: OrderCreateData {
                order_id: order.id.clone(),
                order_no: order.order_no.clone(),
                status: wire(order.status)?,
                payment_status: wire(order.payment_status)?,
                payment_method: wire(order.payment_method)?,
                amount: yuan(0),
                start_time: iso_s(order.created_at),
                // Post-paid: the mini-program's own payment page, opened once the order ends.
                payment_url: (method == 1).then(|| format!("/pages/payment/pay?orderId={}", order.id)),
                device_address: order.device_address.clone(),
            },
        })
    }

    /// Start an order's charger: only the order's own device and port; an order already
    /// charging is started again (the charger answers the same session: idempotent).
    async fn start_order(&self, order: &Order) -> Result<Order, ChargingError> {
        match order.status {
            status::CREATED | status::CHARGING => {}
            status::COMPLETED => return Err(ChargingError::new(3003, "订单已完成")),
            status::CANCELLED => return Err(ChargingError::new(3004, "订单已取消")),
            _ => return Err(ChargingError::new(3002, "订单状态错误：订单已异常结束")),
        }
        let now = self.clock.now_ms();
        if order.status == status::CREATED && order.created_at + START_WINDOW.as_millis() as i64 <= now {
            self.sync(order.clone()).await?;
            return Err(ChargingError::new(3004, "订单已取消：创建后5分钟内未启动"));
        }
        let user = self.db.charging().user(order.user_id).await?.ok_or_else(|| ChargingError::new(1001, "用户不存在"))?;
        let available_fen = if order.payment_method == 3 { user.balance_fen } else { order.limit_fen };
        let command = StartCommand {
            device_address: order.device_address.clone(),
            port: order.port_no,
            order_id: order.id.clone(),
            limit: order_limit(order),
            available_fen,
        };
        self.driver.start(&command).await?;
        let store = self.db.charging();
        if store.mark_started(&order.id, now).await? {
            store.record_sample(&order.id, now, 0, 0, 0, 0, 0).await?;
        }
        let current = store.order(&order.id).await?.ok_or_else(|| ChargingError::new(3001, "订单不存在"))?;
        if current.status == status::CHARGING {
            return Ok(current);
        }
        // A stop (or the start window's end) took the order while its charger was being
        // started: the charger must not charge on for an order that has ended.
        match self.driver.stop(&current.device_address, current.port_no, &current.id, StopReason::User).await {
            Ok(()) | Err(DriverError::NotCharging) => {}
            Err(error) => tracing::warn!(order = current.id, %error, "stopping a charger started for an ended order failed; the watchdog stops it"),
        }
        Err(match current.status {
            status::CANCELLED => ChargingError::new(3004, "订单已取消"),
            status::COMPLETED => ChargingError::new(3003, "订单已完成"),
            _ => ChargingError::new(3002, "订单状态错误：订单已异常结束"),
        })
    }

    /// operationId `charging_start` (003 §9.1): start the caller's order on its device.
    pub async fn charging_start(&self, who: &Principal, body: &ChargingStartRequest) -> Result<ChargingControlResponse, ChargingError> {
        let user = self.account(who).await?;
        let order = self.own_order(&user, &body.order_id).await?;
        if order.device_address != body.device_address.trim() {
            return Err(ChargingError::invalid("deviceAddress与订单的充电桩不一致"));
        }
        let order = self.start_order(&order).await?;
        Ok(ChargingControlResponse {
            code: ok()?,
            message: "启动成功".into(),
            data: ChargingControlData { success: true, order_id: order.id.clone(), status: wire(order.status)? },
        })
    }

    /// operationId `device_charging_start` (003 §9.4): the device-level start of an order on
    /// that device's `port` (default 1). `chargingMode` must be the order's; the limit sent is
    /// the order's (the request's `chargingParam`/`availableAmount` are the device's units of
    /// the same thing, so the server's own values win). A card start needs `cardId`.
    pub async fn device_charging_start(&self, who: &Principal, device_address: &str, body: &DeviceChargingStartRequest) -> Result<CommandSentResponse, ChargingError> {
        let user = self.account(who).await?;
        let pile = self.pile_at(device_address).await?;
        let order = self.own_order(&user, &body.order_id).await?;
        let port = body.port.unwrap_or(1);
        if order.device_address != pile.device_address || order.port_no != port {
            return Err(ChargingError::invalid("订单不在该充电桩的该端口上"));
        }
        if body.start_mode as i32 == 1 && body.card_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return Err(ChargingError::invalid("卡启动(startMode=1)时cardId必填"));
        }
        if body.charging_mode as i32 != order.charging_mode {
            return Err(ChargingError::invalid("chargingMode与订单的充电模式不一致"));
        }
        if body.charging_param < 0 || body.available_amount < 0 {
            return Err(ChargingError::invalid("chargingParam与availableAmount不能为负"));
        }
        self.start_order(&order).await?;
        Ok(CommandSentResponse { code: ok()?, message: "成功".into(), data: CommandSentData { message: "启动充电命令已发送".into() } })
    }

    /// Stop an order with `reason`: a created order is cancelled (its port freed); a charging
    /// one is stopped on its charger and settled on the charger's final reading.
    async fn stop_order(&self, order: Order, reason: StopReason) -> Result<Order, ChargingError> {
        match order.status {
            status::CREATED => {
                if !self.settle(&order, status::CANCELLED, None, self.clock.now_ms(), 0).await? {
                    // Started since it was read (a start raced this stop): stopped on its charger.
                    let current = self.db.charging().order(&order.id).await?.ok_or_else(|| ChargingError::new(3001, "订单不存在"))?;
                    if current.status == status::CHARGING {
                        return Box::pin(self.stop_order(current, reason)).await;
                    }
                }
            }
            status::CHARGING => {
                match self.driver.stop(&order.device_address, order.port_no, &order.id, reason).await {
                    // Already ended on the charger's side: the sync below settles how it ended.
                    Ok(()) | Err(DriverError::NotCharging) => {}
                    Err(error) => return Err(error.into()),
                }
                self.sync(order.clone()).await?;
                // A charger that took the stop but still reports the session (a slow gateway):
                // settle on what it delivered by now.
                let current = self.db.charging().order(&order.id).await?.ok_or_else(|| ChargingError::new(3001, "订单不存在"))?;
                if current.status == status::CHARGING {
                    self.settle(&current, status::COMPLETED, Some(reason), self.clock.now_ms(), 0).await?;
                }
            }
            status::COMPLETED => return Err(ChargingError::new(3003, "订单已完成")),
            status::CANCELLED => return Err(ChargingError::new(3004, "订单已取消")),
            _ => return Err(ChargingError::new(3002, "订单状态错误：订单已异常结束")),
        }
        self.db.charging().order(&order.id).await?.ok_or_else(|| ChargingError::new(3001, "订单不存在"))
    }

    /// The reason a stop asked for through the API (003 §5.4, §9.2, §9.5 `stopReason`) is
    /// recorded with: 1 用户主动停止 or 7 其他 as the caller says. 2–6 (full, a time, energy or
    /// money limit, a pile fault) are what the charger or the server observes: a driver's stop
    /// naming one is recorded as 1, so that a driver can neither end an order abnormal (6 ends
    /// it 4 异常) nor skew the stop and fault records. An operator may name any (a fault seen on
    /// site). Outside 1..=7: 400.
    fn stop_reason(user: &User, code: i32) -> Result<StopReason, ChargingError> {
        let reason = StopReason::from_code(code).ok_or_else(|| ChargingError::invalid("stopReason须为1-7"))?;
        Ok(match reason {
            StopReason::User | StopReason::Other => reason,
            _ if Self::is_admin(user) => reason,
            _ => StopReason::User,
        })
    }

    /// operationId `order_stop` (003 §5.4).
    pub async fn order_stop(&self, who: &Principal, id: &str, body: &OrderStopRequest) -> Result<OrderStopResponse, ChargingError> {
        let user = self.account(who).await?;
        let order = self.own_order(&user, id).await?;
        let order = self.stop_order(order, Self::stop_reason(&user, body.stop_reason as i32)?).await?;
        Ok(OrderStopResponse {
            code: ok()?,
            message: "停止成功".into(),
            data: OrderStopData {
                order_id: order.id.clone(),
                status: wire(order.status)?,
                end_time: iso_s(order.ended_at.unwrap_or(order.updated_at)),
                power_consumption: kwh_f64(order.energy_wh),
                charging_time: seconds_i32(order.charging_seconds),
                amount: yuan(order.amount_fen),
            },
        })
    }

    /// operationId `charging_stop` (003 §9.2): stop the caller's order on its device.
    pub async fn charging_stop(&self, who: &Principal, body: &ChargingStopRequest) -> Result<ChargingControlResponse, ChargingError> {
        let user = self.account(who).await?;
        let order = self.own_order(&user, &body.order_id).await?;
        if order.device_address != body.device_address.trim() {
            return Err(ChargingError::invalid("deviceAddress与订单的充电桩不一致"));
        }
        let order = self.stop_order(order, Self::stop_reason(&user, body.stop_reason as i32)?).await?;
        Ok(ChargingControlResponse {
            code: ok()?,
            message: "停止成功".into(),
            data: ChargingControlData { success: true, order_id: order.id.clone(), status: wire(order.status)? },
        })
    }

    /// operationId `device_charging_stop` (003 §9.5): the device-level stop of an order on
    /// `port` (default 1).
    pub async fn device_charging_stop(&self, who: &Principal, device_address: &str, body: &DeviceChargingStopRequest) -> Result<CommandSentResponse, ChargingError> {
        let user = self.account(who).await?;
        let pile = self.pile_at(device_address).await?;
        let order = self.own_order(&user, &body.order_id).await?;
        if order.device_address != pile.device_address || order.port_no != body.port.unwrap_or(1) {
            return Err(ChargingError::invalid("订单不在该充电桩的该端口上"));
        }
        if order.status == status::CREATED {
            return Err(ChargingError::new(5004, "充电桩未在充电中"));
        }
        self.stop_order(order, Self::stop_reason(&user, body.stop_reason as i32)?).await?;
        Ok(CommandSentResponse { code: ok()?, message: "成功".into(), data: CommandSentData { message: "停止充电命令已发送".into() } })
    }

    /// operationId `pile_configure` (003 §9.7): operators only; the bytes go to the device as
    /// they are. A device charging on any port is refused (5003).
    pub async fn pile_configure(&self, who: &Principal, device_address: &str, config: &[u8]) -> Result<CommandSentResponse, ChargingError> {
        let user = self.account(who).await?;
        if !Self::is_admin(&user) {
            return Err(ChargingError::forbidden("权限不足：仅运维人员可配置充电桩"));
        }
        let pile = self.pile_at(device_address).await?;
        let ports = self.db.charging().ports_of(Some(std::slice::from_ref(&pile.id))).await?;
        if ports.iter().any(|p| p.current_order_id.is_some()) {
            return Err(ChargingError::new(5003, "充电桩正在充电中"));
        }
        self.driver.configure(&pile.device_address, config).await?;
        Ok(CommandSentResponse { code: ok()?, message: "成功".into(), data: CommandSentData { message: "配置命令已发送".into() } })
    }

    /// Bring a live order up to date with its charger and end it when the charger has — the one
    /// place an order changes while charging (reads, stops and the watchdog all come here):
    /// - created and not started within [`START_WINDOW`]: cancelled;
    /// - charging: a meter sample; the bill reaching the order's money limit (按金额, or the
    ///   balance) stops it (5 定额停止); the charger's own stop (full, time, energy, unplugged)
    ///   completes it; a fault ends it abnormal (6) and faults the port; a session the charger
    ///   no longer has ends abnormal (7); a charger silent for [`LOST_AFTER`] ends it abnormal (6)
    ///   on the last reading.
    ///
    /// Every ending is a conditional write: concurrent syncs settle an order once.
    pub async fn sync(&self, order: Order) -> Result<(), ChargingError> {
        let now = self.clock.now_ms();
        match order.status {
            status::CREATED if order.created_at + START_WINDOW.as_millis() as i64 <= now => {
                self.settle(&order, status::CANCELLED, None, now, 0).await.map(|_| ())
            }
            status::CHARGING => self.sync_charging(&order, now).await,
            _ => Ok(()),
        }
    }

    async fn sync_charging(&self, order: &Order, now: i64) -> Result<(), ChargingError> {
        let store = self.db.charging();
        let reading = match self.driver.read(&order.device_address, order.port_no).await {
            Ok(reading) => reading,
            Err(DriverError::Offline | DriverError::Timeout | DriverError::UnknownDevice) => {
                let heard = order.last_read_at.or(order.started_at).unwrap_or(order.created_at);
                if heard + LOST_AFTER.as_millis() as i64 <= now {
                    tracing::warn!(api = "charging", order = order.id, "the charger stopped answering; the order ends abnormal");
                    return self.settle(order, status::ABNORMAL, Some(StopReason::Fault), heard, 0).await.map(|_| ());
                }
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        if reading.order_id.as_deref() != Some(order.id.as_str()) {
            // The charger has no session of this order (restarted, or another session): it ended
            // at the last reading we have.
            let heard = order.last_read_at.unwrap_or(now);
            return self.settle(order, status::ABNORMAL, Some(StopReason::Other), heard, 0).await.map(|_| ());
        }
        let started = reading.session_started_at.unwrap_or(order.started_at.unwrap_or(now));
        match reading.state {
            PortState::Idle | PortState::Starting => Ok(()),
            PortState::Charging => {
                let at = reading.read_at;
                store
                    .record_sample(&order.id, at, reading.energy_wh, reading.power_w, reading.voltage_dv, reading.current_ca, (at - started) / 1000)
                    .await?;
                if order.limit_fen > 0 {
                    // Uncapped: has what was delivered reached the limit?
                    let bill = self.bill_with_limit(order, 0).await?;
                    if bill.total_fen >= order.limit_fen {
                        match self.driver.stop(&order.device_address, order.port_no, &order.id, StopReason::Amount).await {
                            Ok(()) | Err(DriverError::NotCharging) => {}
                            Err(error) => return Err(error.into()),
                        }
                        return self.settle(order, status::COMPLETED, Some(StopReason::Amount), at, 0).await.map(|_| ());
                    }
                }
                Ok(())
            }
            PortState::Finished(reason) => {
                let ended = reading.session_ended_at.unwrap_or(reading.read_at);
                store.record_sample(&order.id, ended, reading.energy_wh, 0, 0, 0, (ended - started) / 1000).await?;
                let outcome = if reason == StopReason::Fault { status::ABNORMAL } else { status::COMPLETED };
                self.settle(order, outcome, Some(reason), ended, 0).await.map(|_| ())
            }
            PortState::Fault(fault_type) => {
                let ended = reading.session_ended_at.unwrap_or(reading.read_at);
                store.record_sample(&order.id, ended, reading.energy_wh, 0, 0, 0, (ended - started) / 1000).await?;
                self.settle(order, status::ABNORMAL, Some(StopReason::Fault), ended, fault_type.max(1)).await.map(|_| ())
            }
        }
    }

    /// The order's bill so far: its samples by its tariff — never more than its money limit
    /// (按金额, or the balance it may spend): the energy a charger delivers past the limit
    /// before it is stopped (at most one reading's worth) is not charged.
    async fn bill_of(&self, order: &Order) -> Result<super::tariff::Bill, ChargingError> {
        self.bill_with_limit(order, order.limit_fen).await
    }

    /// The bill of the samples, capped at `limit_fen` when that is positive.
    async fn bill_with_limit(&self, order: &Order, limit_fen: i64) -> Result<super::tariff::Bill, ChargingError> {
        let tariff: Tariff = serde_json::from_str(&order.tariff).map_err(|e| ChargingError::internal(format!("order {} tariff: {e}", order.id)))?;
        let samples: Vec<Sample> = self.db.charging().samples(&order.id).await?.into_iter().map(|(at_ms, energy_wh)| Sample { at_ms, energy_wh }).collect();
        Ok(capped_bill(&tariff, &samples, limit_fen))
    }

    /// End `order` as `outcome` at `ended_at`, billed on its samples (nothing for a
    /// cancellation); the port is freed (faulted with `port_fault` when not 0). Once: answers
    /// whether this call ended it (`false`: it had ended already, or, as a cancellation, it
    /// had started meanwhile).
    async fn settle(&self, order: &Order, outcome: i32, reason: Option<StopReason>, ended_at: i64, port_fault: i32) -> Result<bool, ChargingError> {
        let bill = if outcome == status::CANCELLED { None } else { Some(self.bill_of(order).await?) };
        let finish = finish_of(order, bill.as_ref(), outcome, reason, ended_at, port_fault);
        Ok(self.db.charging().finish(&order.id, &finish, self.clock.now_ms()).await?)
    }

    /// A charger back after a silence reports the final reading of a session whose order ended
    /// abnormal while it was silent (after [`LOST_AFTER`], billed on the last reading then):
    /// the energy it delivered meanwhile is billed too — the order's bill is corrected to the
    /// final reading (its tariff and money limit as ever) while it is unpaid and no payment of
    /// it waits ([`ChargingStore::rebill_lost`]). A paid order stays as paid. Answers whether
    /// the bill changed.
    pub(super) async fn bill_final_reading(&self, order: &Order, reading: &Reading) -> Result<bool, ChargingError> {
        let lost = order.status == status::ABNORMAL && order.stop_reason == Some(StopReason::Fault.code());
        // Only an ended session's own final reading, and only one that ended after the order
        // did: an order the charger ended itself (a fault it reported) ended when the session
        // did, and one billed on this reading already ends where it does — nothing new there,
        // so the sweep's every look costs nothing more.
        let ended = match reading.state {
            PortState::Finished(_) | PortState::Fault(_) => reading.session_ended_at,
            PortState::Idle | PortState::Starting | PortState::Charging => None,
        };
        let Some(ended) = ended.filter(|ended| order.ended_at.is_none_or(|at| *ended > at)) else {
            return Ok(false);
        };
        if !lost || reading.order_id.as_deref() != Some(order.id.as_str()) || reading.energy_wh <= order.energy_wh {
            return Ok(false);
        }
        if order.payment_status != 0 {
            tracing::debug!(api = "charging", order = order.id, billed_wh = order.energy_wh, final_wh = reading.energy_wh, "a paid order's charger reported more energy after it ended; not billed");
            return Ok(false);
        }
        let started = reading.session_started_at.or(order.started_at).unwrap_or(ended);
        let store = self.db.charging();
        store.record_sample(&order.id, ended, reading.energy_wh, 0, 0, 0, (ended - started) / 1000).await?;
        // Billed again even where the money limit leaves the amount as it was: the order then
        // ends where the session did, and is not looked at again.
        let bill = self.bill_of(order).await?;
        let finish = finish_of(order, Some(&bill), status::ABNORMAL, Some(StopReason::Fault), ended, 0);
        let corrected = store.rebill_lost(order, &finish, self.clock.now_ms()).await?;
        if corrected {
            tracing::info!(api = "charging", order = order.id, billed_wh = order.energy_wh, final_wh = bill.energy_wh, "the charger's final reading billed");
        }
        Ok(corrected && bill.energy_wh > order.energy_wh)
    }

    /// Sync a live order, then read it again.
    async fn current(&self, order: Order) -> Result<Order, ChargingError> {
        if status::is_live(order.status) {
            let id = order.id.clone();
            self.sync(order).await?;
            return self.db.charging().order(&id).await?.ok_or_else(|| ChargingError::new(3001, "订单不存在"));
        }
        Ok(order)
    }

    /// operationId `order_get` (003 §5.2): the order with its time-of-use breakdown (amounts
    /// so far while charging).
    pub async fn order_get(&self, who: &Principal, id: &str) -> Result<OrderDetailResponse, ChargingError> {
        let user = self.account(who).await?;
        let order = self.current(self.own_order(&user, id).await?).await?;
        let live = if order.status == status::CHARGING { Some(self.bill_of(&order).await?) } else { None };
        let line = |i: usize, stored: (i64, i64)| match &live {
            Some(bill) => {
                let l = bill.line(TIERS[i]);
                (l.energy_wh, l.amount_fen)
            }
            None => stored,
        };
        let [sharp, peak, flat, valley, deep] = [
            line(0, (order.sharp_wh, order.sharp_fen)),
            line(1, (order.peak_wh, order.peak_fen)),
            line(2, (order.flat_wh, order.flat_fen)),
            line(3, (order.valley_wh, order.valley_fen)),
            line(4, (order.deep_valley_wh, order.deep_valley_fen)),
        ];
        let (energy, amount, fee, total) = match &live {
            Some(b) => (b.energy_wh, b.amount_fen, b.service_fee_fen, b.total_fen),
            None => (order.energy_wh, order.amount_fen, order.service_fee_fen, order.total_fen),
        };
        Ok(OrderDetailResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: OrderDetail {
                id: order.id.clone(),
                order_no: order.order_no.clone(),
                user_id: order.user_id,
                pile_id: order.pile_id.clone(),
                pile_no: order.pile_no.clone(),
                port_id: order.port_id.clone(),
                port_no: order.port_no.to_string(),
                station_name: order.station_name.clone(),
                amount: yuan(amount),
                start_time: iso_s(order.started_at.unwrap_or(order.created_at)),
                end_time: order.ended_at.map(iso_s),
                power_consumption: kwh_f64(energy),
                charging_time: seconds_i32(order.charging_seconds),
                power: scaled(order.power_w, 1000),
                status: wire(order.status)?,
                payment_status: wire(order.payment_status)?,
                payment_method: wire(order.payment_method)?,
                payment_time: order.paid_at.map(iso_s),
                service_fee: yuan(fee),
                total_amount: yuan(total),
                transaction_id: order.transaction_id.clone(),
                charging_mode: wire(order.charging_mode)?,
                stop_reason: order.stop_reason.map(wire).transpose()?,
                billing_mode: order.billing_mode,
                sharp_electricity: kwh_f64(sharp.0),
                sharp_amount: yuan(sharp.1),
                peak_electricity: kwh_f64(peak.0),
                peak_amount: yuan(peak.1),
                flat_electricity: kwh_f64(flat.0),
                flat_amount: yuan(flat.1),
                valley_electricity: kwh_f64(valley.0),
                valley_amount: yuan(valley.1),
                deep_valley_electricity: kwh_f64(deep.0),
                deep_valley_amount: yuan(deep.1),
                remark: order.remark.clone(),
                device_address: order.device_address.clone(),
                update_time: iso_s(order.updated_at),
            },
        })
    }

    /// operationId `order_status_get` (003 §5.2.1): the order now — while charging, the kWh and
    /// the electricity amount billed so far (capped where a prepaid amount ends), and the
    /// charger's latest power, voltage and current.
    pub async fn order_status_get(&self, who: &Principal, id: &str) -> Result<OrderStatusResponse, ChargingError> {
        let user = self.account(who).await?;
        let order = self.current(self.own_order(&user, id).await?).await?;
        let charging = order.status == status::CHARGING;
        // While charging, the kWh and the amount are the bill so far, both capped where the
        // prepaid limit ends (as §5.2's detail and the settled order show them): the charger's
        // meter may run past the limit until it stops.
        let (energy, amount) = if charging {
            let bill = self.bill_of(&order).await?;
            (bill.energy_wh, bill.amount_fen)
        } else {
            (order.energy_wh, order.amount_fen)
        };
        let now = self.clock.now_ms();
        Ok(OrderStatusResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: OrderRealtimeStatus {
                id: order.id.clone(),
                status: wire(order.status)?,
                payment_status: wire(order.payment_status)?,
                start_time: iso_s(order.started_at.unwrap_or(order.created_at)),
                end_time: order.ended_at.map(iso_s),
                power_consumption: kwh_f64(energy),
                charging_time: seconds_i32(if charging { order.started_at.map_or(0, |s| (now - s) / 1000) } else { order.charging_seconds }),
                power: scaled(order.power_w, 1000),
                amount: yuan(amount),
                voltage: if charging { scaled(order.voltage_dv, 10) } else { 0.0 },
                current_ampere: if charging { scaled(order.current_ca, 100) } else { 0.0 },
                current_time: iso_s(now),
            },
        })
    }

    /// operationId `order_list` (003 §5.3): the caller's orders, newest first; `startDate` and
    /// `endDate` are Beijing dates, both inclusive, on the creation time. A charging order's
    /// kWh and amount are the bill so far, as §5.2 and §5.2.1 show them (the last reading
    /// recorded; the list asks no charger).
    pub async fn order_list(&self, who: &Principal, input: &generated::charging::OrderListInput) -> Result<OrderListResponse, ChargingError> {
        let user = self.account(who).await?;
        let date = |value: &Option<String>, what: &str| -> Result<Option<chrono::NaiveDate>, ChargingError> {
            value
                .as_deref()
                .map(|d| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| ChargingError::invalid(format!("{what}格式须为YYYY-MM-DD"))))
                .transpose()
        };
        let (from, to) = (date(&input.start_date, "startDate")?, date(&input.end_date, "endDate")?);
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(ChargingError::invalid("startDate不能晚于endDate"));
        }
        let filter = OrderFilter {
            status: input.status.map(|s| s as i32),
            from: from.map(beijing_day_start),
            to: to.and_then(|t| t.succ_opt()).map(beijing_day_start),
        };
        let request = PageRequest::new(i64::from(input.page_num), i64::from(input.page_size), MAX_PAGE_SIZE);
        let page = self.db.charging().orders_of(user.id, filter, request).await?;
        let mut list = Vec::with_capacity(page.items.len());
        for order in &page.items {
            // A user has at most one live order, so at most one bill is computed a page.
            let (energy, amount) = if order.status == status::CHARGING {
                let bill = self.bill_of(order).await?;
                (bill.energy_wh, bill.amount_fen)
            } else {
                (order.energy_wh, order.amount_fen)
            };
            list.push(OrderListItem {
                id: order.id.clone(),
                order_no: order.order_no.clone(),
                station_name: order.station_name.clone(),
                pile_no: order.pile_no.clone(),
                port_no: order.port_no.to_string(),
                amount: yuan(amount),
                start_time: iso_s(order.started_at.unwrap_or(order.created_at)),
                end_time: order.ended_at.map(iso_s),
                power_consumption: kwh_f64(energy),
                charging_time: seconds_i32(order.charging_seconds),
                status: wire(order.status)?,
                payment_status: wire(order.payment_status)?,
            });
        }
        Ok(OrderListResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: OrderListData {
                total: page.total as i64,
                page_num: page.request.page as i32,
                page_size: page.request.size as i32,
                pages: page.pages() as i32,
                list,
            },
        })
    }

    /// The watchdog's round: sync every live order (oldest first, at most 500 a round).
    pub async fn watch_orders(&self) -> Result<usize, ChargingError> {
        let orders = self.db.charging().live_orders(500).await?;
        let count = orders.len();
        for order in orders {
            let id = order.id.clone();
            if let Err(error) = self.sync(order).await {
                tracing::warn!(api = "charging", order = id, %error, "syncing an order failed");
            }
        }
        Ok(count)
    }
}

/// How `order` ends as `outcome` at `ended_at` (ms), billed as `bill` (`None`: a cancellation,
/// nothing billed).
fn finish_of(order: &Order, bill: Option<&super::tariff::Bill>, outcome: i32, reason: Option<StopReason>, ended_at: i64, port_fault: i32) -> Finish {
    let mut lines = [(0, 0); 5];
    if let Some(bill) = bill {
        for (i, tier) in TIERS.iter().enumerate() {
            let line = bill.line(*tier);
            lines[i] = (line.energy_wh, line.amount_fen);
        }
    }
    let started = order.started_at.unwrap_or(ended_at);
    Finish {
        status: outcome,
        stop_reason: reason.map(StopReason::code),
        ended_at,
        charging_seconds: ((ended_at - started) / 1000).max(0),
        lines,
        energy_wh: bill.map_or(0, |b| b.energy_wh),
        amount_fen: bill.map_or(0, |b| b.amount_fen),
        service_fee_fen: bill.map_or(0, |b| b.service_fee_fen),
        total_fen: bill.map_or(0, |b| b.total_fen),
        port_fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bill_past_its_money_limit_is_capped_at_the_energy_the_limit_buys() {
        let tariff = Tariff::flat(Decimal::ONE, Decimal::ZERO).unwrap();
        let samples = [Sample { at_ms: 0, energy_wh: 0 }, Sample { at_ms: 10_000, energy_wh: 10_000 }];
        // The most energy whose bill stays within 5.00 yuan: 5.004 kWh still rounds to 5.00.
        let capped = capped_bill(&tariff, &samples, 500);
        assert_eq!((capped.energy_wh, capped.total_fen), (5_004, 500));
        // Under the limit, or without one: the whole bill.
        assert_eq!(capped_bill(&tariff, &samples, 2_000).total_fen, 1_000);
        assert_eq!(capped_bill(&tariff, &samples, 0).total_fen, 1_000);
        // With a 15 % fee the cap keeps amount + fee within the limit.
        let with_fee = Tariff::flat(Decimal::ONE, Decimal::from(15)).unwrap();
        let capped = capped_bill(&with_fee, &samples, 500);
        assert!(capped.total_fen <= 500 && capped.total_fen >= 499, "{capped:?}");
        assert_eq!(capped.total_fen, capped.amount_fen + capped.service_fee_fen);
    }
}
