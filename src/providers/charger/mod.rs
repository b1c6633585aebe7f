//! Charger drivers (003 §9 远程控制, §10 设备接口): the trait every charging-pile backend sits behind, the simulated piles (sandbox) and the vendor device gateway.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::ProviderKind;
use crate::storage::Db;

pub mod gateway;
pub mod simulated;

pub use gateway::{DeviceGateway, GatewayConfig};
pub use simulated::{SimDevice, SimEvent, SimulatedChargers, SimulationConfig};

/// 003 §5.4 stopReason: why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// 1 用户停止: the user (through the server) stopped it.
    User = 1,
    /// 2 充满: the vehicle is full.
    Full = 2,
    /// 3 时间到: the time limit was reached.
    Timed = 3,
    /// 4 电量到: the energy limit was reached.
    Energy = 4,
    /// 5 金额到: the money ran out.
    Amount = 5,
    /// 6 故障: a port fault or a lost device.
    Fault = 6,
    /// 7 其他: unplugged, or any other cause.
    Other = 7,
}

impl StopReason {
    /// The stopReason code, 1..=7.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The reason of stopReason code `v`; `None` outside 1..=7.
    pub fn from_code(v: i32) -> Option<StopReason> {
        Some(match v {
            1 => StopReason::User,
            2 => StopReason::Full,
            3 => StopReason::Timed,
            4 => StopReason::Energy,
            5 => StopReason::Amount,
            6 => StopReason::Fault,
            7 => StopReason::Other,
            _ => return None,
        })
    }
}

/// The limit a session stops at, in device units (003 §9.4 chargingMode / chargingParam).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Until the vehicle is full (chargingMode 1).
    Full,
    /// A charging time, seconds (chargingMode 3).
    Seconds(i64),
    /// An amount of money, fen (chargingMode 2); the server bills and stops the device itself.
    Fen(i64),
    /// An energy, Wh (chargingMode 4; the device counts 0.01 kWh).
    Wh(i64),
    /// No limit (chargingMode 5); the server stops the device itself.
    None,
}

/// A remote start (003 §9.4 启动充电(详细版)).
#[derive(Debug, Clone)]
pub struct StartCommand {
    /// The device address (deviceAddress).
    pub device_address: String,
    /// The port, from 1.
    pub port: i32,
    /// The order the session charges for.
    pub order_id: String,
    /// Where the session stops.
    pub limit: Limit,
    /// The money the user has for it, fen (availableAmount).
    pub available_fen: i64,
}

/// What a port is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    /// Free: nothing plugged in / no session.
    Idle,
    /// Start accepted, power not yet flowing.
    Starting,
    /// Power flowing.
    Charging,
    /// The session of `order_id` ended on the device's side (or by a stop command: the
    /// [`StopReason`] given with the stop).
    Finished(StopReason),
    /// The port has a fault: faultType 1 保险丝熔断 / 2 继电器粘连. `order_id` is `Some` exactly
    /// when a session of that order was live when the fault came: it ended then with
    /// [`StopReason::Fault`] (its energy and times stay readable). With `order_id: None` the port
    /// faulted with no live session (a session that had ended earlier for its own reason reads
    /// `Finished` again once the fault clears).
    Fault(i32),
}

/// What a port reports now (003 §10 设备接口).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Whether the device is connected. [`ChargerDriver::read`] answers an unconnected device
    /// with [`DriverError::Offline`], so this is `false` only in the sandbox's own state view.
    pub online: bool,
    /// The port's state.
    pub state: PortState,
    /// The order of the current or last session (see [`PortState::Fault`]).
    pub order_id: Option<String>,
    /// Energy of the current/last session, cumulative, Wh.
    pub energy_wh: i64,
    /// Power now, W.
    pub power_w: i64,
    /// Voltage, 0.1 V.
    pub voltage_dv: i64,
    /// Current, 0.01 A.
    pub current_ca: i64,
    /// Temperature, 0.1 ℃.
    pub temperature_dc: i64,
    /// When power began to flow, ms (`None` before, or for a session ended before it did).
    pub session_started_at: Option<i64>,
    /// When the session ended, ms.
    pub session_ended_at: Option<i64>,
    /// When this was read, ms.
    pub read_at: i64,
}

impl Reading {
    /// Whether the session of `order_id` has ended, and why: `Some(reason)` when the reading is
    /// `Finished(reason)` for that order, `Some(StopReason::Fault)` when it is `Fault(_)` for that
    /// order (a port fault ended it); `None` while it is live or when the port shows another
    /// order's session or none (the caller decides what a vanished session means).
    pub fn session_end(&self, order_id: &str) -> Option<StopReason> {
        if self.order_id.as_deref() != Some(order_id) {
            return None;
        }
        match self.state {
            PortState::Finished(reason) => Some(reason),
            PortState::Fault(_) => Some(StopReason::Fault),
            PortState::Idle | PortState::Starting | PortState::Charging => None,
        }
    }
}

/// A device's connection (003 §10.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// The communication module's IMEI.
    pub imei: String,
    /// The device address.
    pub device_address: String,
    /// Where it connects from, `IP:port`.
    pub endpoint: String,
    /// When it connected, ms.
    pub connected_at: i64,
}

/// Why a driver call failed; the codes are what the charging API answers.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The device is not connected (2004).
    #[error("device offline")]
    Offline,
    /// The port has fault type `.0` (2006).
    #[error("port fault {0}")]
    PortFault(i32),
    /// The device did not answer in time (5002).
    #[error("device did not answer")]
    Timeout,
    /// The device refused the command (5001); also a port number the device does not have.
    #[error("device refused: {0}")]
    Refused(String),
    /// The port charges for another order already (5003).
    #[error("port busy")]
    Busy,
    /// No live session of that order on the port (5004).
    #[error("not charging")]
    NotCharging,
    /// No such device (2002).
    #[error("unknown device")]
    UnknownDevice,
    /// The gateway failed (5001, logged).
    #[error(transparent)]
    Provider(#[from] crate::providers::ProviderError),
    /// Our database failed (500).
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// A charging-pile backend (003 §9 远程控制, §10 设备接口). The charging service learns how a
/// session went by reading its port: [`Reading::session_end`] tells whether the session of an
/// order has ended and why — `Some(StopReason::Fault)` when a port fault (the reading is then
/// [`PortState::Fault`] with that order's `order_id`) or a lost connection ended it.
#[async_trait::async_trait]
pub trait ChargerDriver: Send + Sync + 'static {
    /// Send a start (003 §9.4 启动充电(详细版)); Ok = the device accepted the command (it reports
    /// Starting, then Charging). A start for the order already live on that port is Ok again
    /// (idempotent), and so is one for the order whose session on that port has ended (it is not
    /// charged twice: the reading tells how it ended).
    async fn start(&self, command: &StartCommand) -> Result<(), DriverError>;
    /// Stop the session of `order_id` on the port, with the reason the server gives; afterwards
    /// the port reads `Finished(reason)` for that order. A stop for a session that already
    /// finished: NotCharging.
    async fn stop(&self, device_address: &str, port: i32, order_id: &str, reason: StopReason) -> Result<(), DriverError>;
    /// What the port reports now; an unconnected device is [`DriverError::Offline`].
    async fn read(&self, device_address: &str, port: i32) -> Result<Reading, DriverError>;
    /// 003 §9.7: raw configuration bytes (each 0..=255).
    async fn configure(&self, device_address: &str, config: &[u8]) -> Result<(), DriverError>;
    /// 003 §10.1: devices connected now.
    async fn connections(&self) -> Result<Vec<Connection>, DriverError>;
}

/// The charger backend: `provider = "sandbox"` (default, the simulated piles in the database) or
/// `"real"` (the vendor device gateway, `[….charger.gateway]`).
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(default)]
pub struct ChargerConfig {
    /// `sandbox` (default) or `real`.
    pub provider: ProviderKind,
    /// The simulated piles' speed (sandbox).
    pub simulation: SimulationConfig,
    /// The device gateway (real; required then).
    pub gateway: Option<GatewayConfig>,
}

/// The driver a configuration selects, and the simulator's handle when it is the sandbox.
pub type Selected = (Arc<dyn ChargerDriver>, Option<Arc<SimulatedChargers>>);

/// The driver `config` selects, with the simulator's handle when it is the sandbox (for
/// [`simulated::routes`] and for registering the seeded piles with [`SimulatedChargers::register`]).
/// `real` needs a usable `gateway` (base URL, token, timeout).
pub fn from_config(config: &ChargerConfig, db: Db, clock: Clock) -> anyhow::Result<Selected> {
    Ok(match config.provider {
        ProviderKind::Sandbox => {
            let simulated = Arc::new(SimulatedChargers::new(db, clock, config.simulation.clone()));
            (simulated.clone(), Some(simulated))
        }
        ProviderKind::Real => {
            let gateway = config
                .gateway
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("charger.gateway is not set (charger.provider = \"real\")"))?;
            let gateway = DeviceGateway::new(gateway, clock).map_err(|e| anyhow::anyhow!(e).context("charger"))?;
            (Arc::new(gateway), None)
        }
    })
}
