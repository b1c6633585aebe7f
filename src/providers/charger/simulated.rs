//! The simulated charger (the sandbox, 003 §9 远程控制 / §10 设备接口): piles and sessions in the database, readings computed from them and the clock.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ChargerDriver, Connection, DriverError, Limit, PortState, Reading, StartCommand, StopReason};
use crate::clock::Clock;
use crate::storage::Db;
use crate::storage::charger_sim::{DeviceRow, LimitKind, NewDevice, PortRow, SessionRow};

/// Simulated ms over which power ramps from 0 to the rated power.
const RAMP_MS: i64 = 60_000;
/// From this rated power (W) a pile is DC: its vehicle holds more.
const DC_FROM_W: i64 = 20_000;
/// What a vehicle takes before it is full on a DC pile, Wh.
const FULL_DC_WH: i64 = 40_000;
/// What a vehicle takes before it is full on an AC pile, Wh.
const FULL_AC_WH: i64 = 10_000;
/// The temperature of a pile at rest, 0.1 ℃.
const AMBIENT_DC: i64 = 250;
/// W·ms in a Wh.
const W_MS_PER_WH: i128 = 3_600_000;

/// How fast the simulated piles go (`[….charger.simulation]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimulationConfig {
    /// Simulated seconds of charging per real second (default 60: a real minute charges an
    /// hour); 0 counts as 1.
    pub time_scale: u32,
    /// How long after an accepted start power begins to flow, real ms (default 1000): the port
    /// reads Starting until then.
    pub accept_delay_ms: i64,
}

impl Default for SimulationConfig {
    fn default() -> SimulationConfig {
        SimulationConfig { time_scale: 60, accept_delay_ms: 1000 }
    }
}

/// A simulated pile (the charging seed registers one per seeded pile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDevice {
    /// The device address (003 deviceAddress).
    pub device_address: String,
    /// The communication module's IMEI (003 §10.1).
    pub imei: String,
    /// Where it connects from, `IP:port` (003 §10.1).
    pub endpoint: String,
    /// How many ports, numbered from 1.
    pub ports: i32,
    /// Rated power of each port, W (≥ 20 000 is DC).
    pub rated_power_w: i64,
    /// Output voltage, V: DC 750, AC 220.
    pub voltage_v: i64,
}

/// What the sandbox can make a simulated pile do (`POST /_sandbox/devices/{deviceAddress}?event=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimEvent {
    /// The device disconnects: commands and reads are [`DriverError::Offline`]; its live
    /// sessions end then with [`StopReason::Fault`], which shows once it is back.
    Offline,
    /// Back to normal: connected, answering, accepting starts, no port faulted.
    Online,
    /// A port (default 1) faults with a faultType (default 1): its live session ends with
    /// [`StopReason::Fault`] and the port reads [`PortState::Fault`] until `online`.
    Fault,
    /// The vehicle is unplugged: the port's live session ends with [`StopReason::Other`].
    Unplug,
    /// The vehicle is full: the port's live session ends with [`StopReason::Full`].
    Full,
    /// The device stops answering: commands and reads are [`DriverError::Timeout`] (at once: the
    /// simulator does not make the caller wait) until `online`.
    NoAnswer,
    /// The device refuses starts ([`DriverError::Refused`]) until `online`.
    Reject,
}

impl SimEvent {
    /// Every event, in the order the sandbox lists them.
    pub const ALL: [SimEvent; 7] =
        [SimEvent::Offline, SimEvent::Online, SimEvent::Fault, SimEvent::Unplug, SimEvent::Full, SimEvent::NoAnswer, SimEvent::Reject];

    /// The event's name in the sandbox route (`offline`, `no_answer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SimEvent::Offline => "offline",
            SimEvent::Online => "online",
            SimEvent::Fault => "fault",
            SimEvent::Unplug => "unplug",
            SimEvent::Full => "full",
            SimEvent::NoAnswer => "no_answer",
            SimEvent::Reject => "reject",
        }
    }

    /// The event called `name`.
    pub fn parse(name: &str) -> Option<SimEvent> {
        SimEvent::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// A simulated pile as the sandbox shows it: what was registered, its connection and modes, and
/// every port's reading (computed even while it is offline or not answering).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceState {
    /// The pile.
    pub device: SimDevice,
    /// Whether it is connected.
    pub online: bool,
    /// When it last connected, ms.
    pub connected_at: i64,
    /// Whether it ignores commands and reads.
    pub no_answer: bool,
    /// Whether it refuses starts.
    pub reject: bool,
    /// (port number, reading), by port.
    pub ports: Vec<(i32, Reading)>,
}

/// The simulated piles (tables `charger_sim_device`, `charger_sim_port`), driven by the charging
/// service through [`ChargerDriver`] and by a developer through [`routes`].
///
/// Nothing lives in process memory and nothing runs in the background: a start stores the
/// session with the instant its limit will end it (the power curve is deterministic), and every
/// reading is computed from the stored session and `now`. So every instance of the server sees
/// the same piles, and a session finishes at its limit without anyone writing it down.
///
/// The physics, in simulated time (`time_scale` simulated seconds per real second, counted from
/// when power begins to flow, `accept_delay_ms` after the start was accepted): power ramps
/// linearly from 0 to the rated power (W) over the first 60 s, then stays there; energy is its
/// integral (Wh, floored); a vehicle is full at 40 kWh on a DC pile (rated ≥ 20 kW), 10 kWh on
/// an AC one; voltage is the pile's (0.1 V), current = power / voltage (0.01 A), temperature =
/// 25 ℃ + 1 ℃ per kW of power (0.1 ℃).
///
/// How a session ends shows in the reading ([`Reading::session_end`]): a limit, a stop, `unplug`
/// or `full` give `Finished(reason)`; a port fault gives `Fault(faultType)` with the order still
/// on it (and `Finished(Fault)` once the fault is cleared); a device that went offline reads
/// `Finished(Fault)`, ended at the instant it went offline, once it is back.
#[derive(Debug, Clone)]
pub struct SimulatedChargers {
    db: Db,
    clock: Clock,
    time_scale: u32,
    accept_delay_ms: i64,
}

impl SimulatedChargers {
    /// The piles in `db`, on `clock`, at `config`'s speed.
    pub fn new(db: Db, clock: Clock, config: SimulationConfig) -> SimulatedChargers {
        SimulatedChargers {
            db,
            clock,
            // Stored per session as an i32; 0 would freeze time.
            time_scale: config.time_scale.clamp(1, i32::MAX as u32),
            accept_delay_ms: config.accept_delay_ms.max(0),
        }
    }

    /// Add `device`, or update a known one keeping its ports' sessions and faults (idempotent:
    /// the charging seed calls it on every start). The device is connected afterwards: a new or
    /// offline one connects now, a connected one keeps its connection time.
    pub async fn register(&self, device: &SimDevice) -> Result<(), DriverError> {
        let spec = NewDevice {
            device_address: device.device_address.clone(),
            imei: device.imei.clone(),
            endpoint: device.endpoint.clone(),
            ports: device.ports,
            rated_power_w: device.rated_power_w,
            voltage_v: device.voltage_v,
        };
        Ok(self.db.charger_sim().register(&spec, self.clock.now_ms()).await?)
    }

    /// Make `device_address` do `event` (see [`SimEvent`]); `port` (default 1) and `fault_type`
    /// (default 1; 1 保险丝熔断, 2 继电器粘连) matter to the port events. An unknown device is
    /// [`DriverError::UnknownDevice`], a port it does not have or another fault type
    /// [`DriverError::Refused`].
    pub async fn event(&self, device_address: &str, event: SimEvent, port: Option<i32>, fault_type: Option<i32>) -> Result<(), DriverError> {
        let device = self.device(device_address).await?;
        let store = self.db.charger_sim();
        let now = self.clock.now_ms();
        let port = port.unwrap_or(1);
        match event {
            SimEvent::Offline => store.offline(device_address, StopReason::Fault.code(), now).await?,
            SimEvent::Online => store.online(device_address, now).await?,
            SimEvent::Fault => {
                has_port(&device, port)?;
                let fault_type = fault_type.unwrap_or(1);
                if !(1..=2).contains(&fault_type) {
                    return Err(DriverError::Refused(format!("faultType must be 1 (保险丝熔断) or 2 (继电器粘连), not {fault_type}")));
                }
                store.fault(device_address, port, fault_type, StopReason::Fault.code(), now).await?;
            }
            SimEvent::Unplug | SimEvent::Full => {
                has_port(&device, port)?;
                let reason = if event == SimEvent::Full { StopReason::Full } else { StopReason::Other };
                store.end_live(device_address, Some(port), None, reason.code(), now).await?;
            }
            SimEvent::NoAnswer => store.set_mode(device_address, true, false, now).await?,
            SimEvent::Reject => store.set_mode(device_address, false, true, now).await?,
        }
        tracing::info!(device = device_address, event = event.as_str(), port, "sandbox charger event");
        Ok(())
    }

    /// The pile as the sandbox shows it, whatever it is doing.
    pub async fn state(&self, device_address: &str) -> Result<DeviceState, DriverError> {
        let device = self.device(device_address).await?;
        let ports = self.db.charger_sim().ports(device_address).await?;
        let now = self.clock.now_ms();
        let readings = ports
            .iter()
            .filter(|p| (1..=device.device.ports).contains(&p.port))
            .map(|p| (p.port, reading(&device, p, now)))
            .collect();
        let spec = device.device;
        Ok(DeviceState {
            device: SimDevice {
                device_address: spec.device_address,
                imei: spec.imei,
                endpoint: spec.endpoint,
                ports: spec.ports,
                rated_power_w: spec.rated_power_w,
                voltage_v: spec.voltage_v,
            },
            online: device.online,
            connected_at: device.connected_at,
            no_answer: device.no_answer,
            reject: device.reject,
            ports: readings,
        })
    }

    async fn device(&self, device_address: &str) -> Result<DeviceRow, DriverError> {
        self.db.charger_sim().device(device_address).await?.ok_or(DriverError::UnknownDevice)
    }

    /// The session a start at `now` stores: power flows after the accept delay, and the limit
    /// (if the device stops at it by itself) schedules the end.
    fn session(&self, device: &DeviceRow, command: &StartCommand, now: i64) -> SessionRow {
        let charging_at = now + self.accept_delay_ms;
        let power_w = device.device.rated_power_w.max(0);
        let (limit_kind, limit_value) = match command.limit {
            Limit::Full => (LimitKind::Full, 0),
            Limit::Seconds(s) => (LimitKind::Seconds, s.max(0)),
            Limit::Fen(f) => (LimitKind::Fen, f.max(0)),
            Limit::Wh(w) => (LimitKind::Wh, w.max(0)),
            Limit::None => (LimitKind::None, 0),
        };
        let scale = self.time_scale as i64;
        let end = match limit_kind {
            LimitKind::Seconds => Some((div_ceil(limit_value.saturating_mul(1000), scale), StopReason::Timed)),
            LimitKind::Wh => sim_ms_for_energy(power_w, limit_value).map(|m| (div_ceil(m, scale), StopReason::Energy)),
            LimitKind::Full => sim_ms_for_energy(power_w, full_wh(power_w)).map(|m| (div_ceil(m, scale), StopReason::Full)),
            // The server bills money and stops the device itself.
            LimitKind::Fen | LimitKind::None => None,
        };
        SessionRow {
            order_id: command.order_id.clone(),
            accepted_at: now,
            charging_at,
            limit_kind,
            limit_value,
            available_fen: command.available_fen,
            power_w,
            time_scale: self.time_scale as i32,
            ends_at: end.map(|(real_ms, _)| charging_at.saturating_add(real_ms)),
            end_reason: end.map(|(_, reason)| reason.code()),
        }
    }
}

/// A device that can take a command now: connected and answering.
fn answering(device: &DeviceRow) -> Result<(), DriverError> {
    if !device.online {
        return Err(DriverError::Offline);
    }
    if device.no_answer {
        return Err(DriverError::Timeout);
    }
    Ok(())
}

fn has_port(device: &DeviceRow, port: i32) -> Result<(), DriverError> {
    if (1..=device.device.ports).contains(&port) {
        Ok(())
    } else {
        Err(DriverError::Refused(format!("device {} has no port {port} (ports 1..={})", device.device.device_address, device.device.ports)))
    }
}

/// ⌈a / b⌉ for a ≥ 0, b > 0, without overflowing.
fn div_ceil(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b != 0)
}

/// What a vehicle takes on a pile of `rated_w` before it is full, Wh.
fn full_wh(rated_w: i64) -> i64 {
    if rated_w >= DC_FROM_W { FULL_DC_WH } else { FULL_AC_WH }
}

/// Power after `sim_ms` simulated ms of charging, W.
fn power_at(rated_w: i64, sim_ms: i64) -> i64 {
    rated_w * sim_ms.clamp(0, RAMP_MS) / RAMP_MS
}

/// Energy after `sim_ms` simulated ms of charging, Wh (floored): the integral of the ramp
/// (P·t²/2R) then of the constant power (P·(t − R/2)), in exact integers.
fn energy_at(rated_w: i64, sim_ms: i64) -> i64 {
    let (p, t, r) = (rated_w.max(0) as i128, sim_ms.max(0) as i128, RAMP_MS as i128);
    let w_ms = if t <= r { p * t * t / (2 * r) } else { p * (t - r / 2) };
    (w_ms / W_MS_PER_WH) as i64
}

/// The first simulated ms at which the energy reaches `wh`; `None` when it never does (no power).
fn sim_ms_for_energy(rated_w: i64, wh: i64) -> Option<i64> {
    if wh <= 0 {
        return Some(0);
    }
    if rated_w <= 0 {
        return None;
    }
    // Invert the integral in floating point, then settle on the exact millisecond.
    let (p, target, r) = (rated_w as f64, wh as f64 * W_MS_PER_WH as f64, RAMP_MS as f64);
    let estimate = if target <= p * r / 2.0 { (2.0 * r * target / p).sqrt() } else { target / p + r / 2.0 };
    if estimate > 1e15 {
        // Thousands of years: it never ends on its own.
        return None;
    }
    let mut t = (estimate as i64).max(0);
    while energy_at(rated_w, t) < wh {
        t += 1;
    }
    while t > 0 && energy_at(rated_w, t - 1) >= wh {
        t -= 1;
    }
    Some(t)
}

/// What port `port` of `device` reports at `now` (ms), from the stored state alone.
fn reading(device: &DeviceRow, port: &PortRow, now: i64) -> Reading {
    let voltage_v = device.device.voltage_v;
    let mut reading = Reading {
        online: device.online,
        state: PortState::Idle,
        order_id: None,
        energy_wh: 0,
        power_w: 0,
        voltage_dv: voltage_v * 10,
        current_ca: 0,
        temperature_dc: AMBIENT_DC,
        session_started_at: None,
        session_ended_at: None,
        read_at: now,
    };
    let Some(session) = &port.session else {
        if let Some(fault_type) = port.fault_type {
            reading.state = PortState::Fault(fault_type);
        }
        return reading;
    };
    let ended = session.ends_at.filter(|at| *at <= now);
    let end_reason = session.end_reason.and_then(StopReason::from_code).unwrap_or(StopReason::Other);
    // The session shows under a fault only if the fault ended it (see `PortState::Fault`).
    if let Some(fault_type) = port.fault_type {
        reading.state = PortState::Fault(fault_type);
        if ended.is_none() || end_reason != StopReason::Fault {
            return reading;
        }
    }
    // Everything about the session is as of its end when it has one, else now.
    let until = ended.unwrap_or(now);
    let mut sim_ms = (until - session.charging_at).max(0).saturating_mul(session.time_scale.max(1) as i64);
    if session.limit_kind == LimitKind::Seconds {
        sim_ms = sim_ms.min(session.limit_value.saturating_mul(1000));
    }
    let mut energy_wh = energy_at(session.power_w, sim_ms);
    match session.limit_kind {
        // The device stops on the exact Wh; the end instant was rounded up to a whole ms.
        LimitKind::Wh => energy_wh = energy_wh.min(session.limit_value),
        LimitKind::Full => energy_wh = energy_wh.min(full_wh(session.power_w)),
        LimitKind::Seconds | LimitKind::Fen | LimitKind::None => {}
    }
    reading.order_id = Some(session.order_id.clone());
    reading.energy_wh = energy_wh;
    reading.session_started_at = (session.charging_at <= until).then_some(session.charging_at);
    reading.session_ended_at = ended;
    if port.fault_type.is_some() {
        return reading;
    }
    reading.state = match ended {
        Some(_) => PortState::Finished(end_reason),
        None if now < session.charging_at => PortState::Starting,
        None => PortState::Charging,
    };
    if reading.state == PortState::Charging {
        reading.power_w = power_at(session.power_w, sim_ms);
        // W / V = A; the reading counts 0.01 A.
        reading.current_ca = if voltage_v > 0 { reading.power_w * 100 / voltage_v } else { 0 };
        reading.temperature_dc = AMBIENT_DC + reading.power_w / 100;
    }
    reading
}

#[async_trait]
impl ChargerDriver for SimulatedChargers {
    async fn start(&self, command: &StartCommand) -> Result<(), DriverError> {
        let device = self.device(&command.device_address).await?;
        answering(&device)?;
        has_port(&device, command.port)?;
        if device.reject {
            return Err(DriverError::Refused("the device refused the start (sandbox reject)".into()));
        }
        let store = self.db.charger_sim();
        // The conditional write decides; when it loses, the port's row says why. If the port
        // freed up in between (a stop, a limit reached), try again.
        for _ in 0..3 {
            let now = self.clock.now_ms();
            if store.start(&command.device_address, command.port, &self.session(&device, command, now), now).await? {
                return Ok(());
            }
            let port = store.port(&command.device_address, command.port).await?.ok_or(DriverError::UnknownDevice)?;
            if let Some(fault_type) = port.fault_type {
                return Err(DriverError::PortFault(fault_type));
            }
            if let Some(session) = &port.session {
                if session.order_id == command.order_id {
                    // Live: idempotent. Ended: accepted before; the reading tells how it ended.
                    return Ok(());
                }
                if session.ends_at.is_none_or(|at| at > self.clock.now_ms()) {
                    return Err(DriverError::Busy);
                }
            }
        }
        Err(DriverError::Busy)
    }

    async fn stop(&self, device_address: &str, port: i32, order_id: &str, reason: StopReason) -> Result<(), DriverError> {
        let device = self.device(device_address).await?;
        answering(&device)?;
        has_port(&device, port)?;
        let ended = self.db.charger_sim().end_live(device_address, Some(port), Some(order_id), reason.code(), self.clock.now_ms()).await?;
        if ended { Ok(()) } else { Err(DriverError::NotCharging) }
    }

    async fn read(&self, device_address: &str, port: i32) -> Result<Reading, DriverError> {
        let device = self.device(device_address).await?;
        answering(&device)?;
        has_port(&device, port)?;
        let row = self.db.charger_sim().port(device_address, port).await?.ok_or(DriverError::UnknownDevice)?;
        Ok(reading(&device, &row, self.clock.now_ms()))
    }

    async fn configure(&self, device_address: &str, config: &[u8]) -> Result<(), DriverError> {
        let device = self.device(device_address).await?;
        answering(&device)?;
        // The simulated pile has nothing to configure: it acknowledges, as a device does.
        tracing::info!(device = device_address, bytes = config.len(), "sandbox charger configured");
        Ok(())
    }

    async fn connections(&self) -> Result<Vec<Connection>, DriverError> {
        Ok(self
            .db
            .charger_sim()
            .online_devices()
            .await?
            .into_iter()
            .map(|d| Connection {
                imei: d.device.imei,
                device_address: d.device.device_address,
                endpoint: d.device.endpoint,
                connected_at: d.connected_at,
            })
            .collect())
    }
}

// ---------------------------------------------------------------- sandbox routes

/// The routes, with what each does (start-up banner and index page).
pub const ROUTES: &[(&str, &str)] = &[
    (
        "POST /_sandbox/devices/{deviceAddress}?event=offline|online|fault|unplug|full|no_answer|reject&port=1&faultType=1",
        "a simulated charging pile goes offline or back online, a port faults (1 保险丝熔断, 2 继电器粘连), the vehicle is unplugged or full, the pile stops answering or refuses starts",
    ),
    ("GET /_sandbox/devices/{deviceAddress}", "a simulated charging pile's connection and every port's reading"),
];

/// A port state's name on the wire (the device gateway's words).
pub(crate) fn state_name(state: PortState) -> &'static str {
    match state {
        PortState::Idle => "idle",
        PortState::Starting => "starting",
        PortState::Charging => "charging",
        PortState::Finished(_) => "finished",
        PortState::Fault(_) => "fault",
    }
}

/// A reading as JSON, in the device gateway's shape plus the port number.
fn reading_json(port: i32, r: &Reading) -> Value {
    let (stop_reason, fault_type) = match r.state {
        PortState::Finished(reason) => (Some(reason.code()), None),
        PortState::Fault(fault_type) => (r.order_id.as_ref().map(|_| StopReason::Fault.code()), Some(fault_type)),
        PortState::Idle | PortState::Starting | PortState::Charging => (None, None),
    };
    json!({
        "port": port,
        "online": r.online,
        "state": state_name(r.state),
        "stopReason": stop_reason,
        "faultType": fault_type,
        "orderId": r.order_id,
        "energyWh": r.energy_wh,
        "powerW": r.power_w,
        "voltageDv": r.voltage_dv,
        "currentCa": r.current_ca,
        "temperatureDc": r.temperature_dc,
        "startedAt": r.session_started_at,
        "endedAt": r.session_ended_at,
        "readAt": r.read_at,
    })
}

fn state_json(state: &DeviceState, event: Option<SimEvent>) -> Value {
    json!({
        "deviceAddress": state.device.device_address,
        "event": event.map(SimEvent::as_str),
        "imei": state.device.imei,
        "endpoint": state.device.endpoint,
        "online": state.online,
        "connectedAt": state.connected_at,
        "noAnswer": state.no_answer,
        "reject": state.reject,
        "ratedPowerW": state.device.rated_power_w,
        "voltageV": state.device.voltage_v,
        "ports": state.ports.iter().map(|(port, r)| reading_json(*port, r)).collect::<Vec<_>>(),
    })
}

fn refusal(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

fn failure(error: DriverError) -> Response {
    match error {
        DriverError::UnknownDevice => refusal(StatusCode::NOT_FOUND, "no such device"),
        DriverError::Refused(why) => refusal(StatusCode::BAD_REQUEST, why),
        other => {
            tracing::error!(error = %other, "sandbox charger");
            refusal(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

/// - `POST /_sandbox/devices/{deviceAddress}?event=…&port=1&faultType=1` → 200
///   `{"deviceAddress", "event", "online", …, "ports": [{"port", "state", "stopReason",
///   "faultType", "orderId", "energyWh", "powerW", "voltageDv", "currentCa", "temperatureDc",
///   "startedAt", "endedAt", "readAt"}, …]}` after the event (see [`SimEvent`]); unknown device
///   404; unknown event, a port the device lacks, another faultType or an unreadable number 400.
/// - `GET /_sandbox/devices/{deviceAddress}` → 200, the same state (`"event": null`); unknown
///   device 404.
///
/// Errors are `{"message": "…"}`.
pub fn routes(chargers: Arc<SimulatedChargers>) -> Router {
    Router::new().route("/_sandbox/devices/{deviceAddress}", post(drive).get(show)).with_state(chargers)
}

async fn show(State(chargers): State<Arc<SimulatedChargers>>, Path(device_address): Path<String>) -> Response {
    match chargers.state(&device_address).await {
        Ok(state) => Json(state_json(&state, None)).into_response(),
        Err(e) => failure(e),
    }
}

async fn drive(
    State(chargers): State<Arc<SimulatedChargers>>,
    Path(device_address): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let names = SimEvent::ALL.map(SimEvent::as_str).join("|");
    let event = match query.get("event") {
        None => return refusal(StatusCode::BAD_REQUEST, format!("event is required: {names}")),
        Some(name) => match SimEvent::parse(name) {
            Some(event) => event,
            None => return refusal(StatusCode::BAD_REQUEST, format!("unknown event {name:?}: {names}")),
        },
    };
    let number = |key: &str| -> Result<Option<i32>, String> {
        query.get(key).map(|v| v.parse::<i32>().map_err(|_| format!("{key} must be a number, not {v:?}"))).transpose()
    };
    let (port, fault_type) = match (number("port"), number("faultType")) {
        (Ok(port), Ok(fault_type)) => (port, fault_type),
        (Err(why), _) | (_, Err(why)) => return refusal(StatusCode::BAD_REQUEST, why),
    };
    if let Err(e) = chargers.event(&device_address, event, port, fault_type).await {
        return failure(e);
    }
    match chargers.state(&device_address).await {
        Ok(state) => Json(state_json(&state, Some(event))).into_response(),
        Err(e) => failure(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_the_integral_of_the_ramp_then_the_rated_power() {
        // 7 kW: the ramp's 60 s give 7000·30 W·s = 58.3 Wh; an hour then gives 7 kWh more.
        assert_eq!(energy_at(7000, 0), 0);
        assert_eq!(energy_at(7000, RAMP_MS), 58);
        assert_eq!(energy_at(7000, RAMP_MS + 3_600_000), 7058);
        assert_eq!(energy_at(7000, 30_000), 14, "7000·30²/120 W·s = 14.58 Wh");
        assert_eq!(power_at(7000, 30_000), 3500);
        assert_eq!(power_at(7000, 10 * RAMP_MS), 7000);
    }

    #[test]
    fn the_energy_instant_is_the_first_millisecond_that_reaches_it() {
        for (rated, wh) in [(7000, 1), (7000, 58), (7000, 59), (7000, 5000), (60_000, 40_000), (120_000, 1), (3500, 10_000)] {
            let t = sim_ms_for_energy(rated, wh).expect("power flows");
            assert!(energy_at(rated, t) >= wh, "{rated} W, {wh} Wh at {t}");
            assert!(energy_at(rated, t - 1) < wh, "{rated} W, {wh} Wh before {t}");
        }
        assert_eq!(sim_ms_for_energy(0, 10), None);
        assert_eq!(sim_ms_for_energy(7000, 0), Some(0));
    }

    #[test]
    fn events_have_their_route_names() {
        for event in SimEvent::ALL {
            assert_eq!(SimEvent::parse(event.as_str()), Some(event));
        }
        assert_eq!(SimEvent::parse("explode"), None);
    }
}
