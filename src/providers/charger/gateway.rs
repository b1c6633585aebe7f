//! The real charger: a vendor device gateway (which holds the piles' TCP connections, 003 §10 设备接口) over HTTP JSON.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ChargerDriver, Connection, DriverError, Limit, PortState, Reading, StartCommand, StopReason};
use crate::clock::Clock;
use crate::providers::ProviderError;

const GATEWAY: &str = "device-gateway";

/// The device gateway (`[….charger.gateway]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatewayConfig {
    /// The gateway's base URL (`https://gateway.example.com/api`; tests point it at wiremock).
    pub base_url: String,
    /// The bearer token every request carries. Never logged, never serialized.
    #[serde(serialize_with = "redacted")]
    pub token: SecretString,
    /// Per-request timeout, ms (default 5000); a request that takes longer is
    /// [`DriverError::Timeout`].
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    5000
}

// A written-out configuration must not hold the token; an empty one is refused when read back.
fn redacted<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("")
}

/// The device gateway over HTTP JSON, every request with `Authorization: Bearer <token>`:
///
/// - 003 §9.4 启动充电(详细版): `POST {base}/devices/{addr}/ports/{port}/start`
///   `{"orderId", "chargingMode", "chargingParam", "availableAmount"}` — chargingMode 1 full
///   (param 0), 2 amount (fen), 3 time (s), 4 energy (0.01 kWh, the limit's Wh floored so the
///   device never delivers more than asked), 5 none (param 0); availableAmount in fen;
/// - stop: `POST …/ports/{port}/stop` `{"orderId", "stopReason"}` (003 §5.4);
/// - read: `GET …/ports/{port}` → `{"online", "state": "idle|starting|charging|finished|fault",
///   "stopReason"?, "faultType"?, "orderId"?, "energyWh", "powerW", "voltageDv", "currentCa",
///   "temperatureDc", "startedAt"?, "endedAt"?}` (ms);
/// - 003 §9.7: `POST {base}/devices/{addr}/config` `{"config": [bytes]}`;
/// - 003 §10.1: `GET {base}/devices` → `[{"imei", "deviceAddress", "endpoint", "connectedAt"}]`.
///
/// Answers: 2xx success; 404 [`DriverError::UnknownDevice`]; 409 `{"error": "busy" |
/// "not_charging" | "offline" | "fault" (with "faultType") | "refused" (with "message")}` the
/// matching [`DriverError`]; 504 or no answer within `timeout_ms` [`DriverError::Timeout`]; any
/// other status [`ProviderError::Vendor`] (code = the status, message = the answer's `message`
/// or `error`); unreachable or an unreadable 2xx answer [`ProviderError::Transport`].
pub struct DeviceGateway {
    base_url: Url,
    token: SecretString,
    http: reqwest::Client,
    clock: Clock,
}

impl fmt::Debug for DeviceGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceGateway").field("base_url", &self.base_url.as_str()).finish_non_exhaustive()
    }
}

fn transport(detail: impl Into<String>) -> ProviderError {
    ProviderError::Transport { provider: GATEWAY, detail: detail.into() }
}

/// 003 §9.4 chargingMode and chargingParam of a limit.
fn charging_mode(limit: Limit) -> (i32, i64) {
    match limit {
        Limit::Full => (1, 0),
        Limit::Fen(fen) => (2, fen),
        Limit::Seconds(seconds) => (3, seconds),
        Limit::Wh(wh) => (4, wh.div_euclid(10)),
        Limit::None => (5, 0),
    }
}

/// `GET …/ports/{port}`'s answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireReading {
    online: bool,
    state: String,
    stop_reason: Option<i32>,
    fault_type: Option<i32>,
    order_id: Option<String>,
    #[serde(default)]
    energy_wh: i64,
    #[serde(default)]
    power_w: i64,
    #[serde(default)]
    voltage_dv: i64,
    #[serde(default)]
    current_ca: i64,
    #[serde(default)]
    temperature_dc: i64,
    started_at: Option<i64>,
    ended_at: Option<i64>,
}

/// `GET /devices`' answer, one element.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireConnection {
    imei: String,
    device_address: String,
    endpoint: String,
    connected_at: i64,
}

impl DeviceGateway {
    /// From configuration, stamping readings with `clock`; a base URL that does not parse, an
    /// empty token or a zero timeout is [`ProviderError::Config`].
    pub fn new(config: &GatewayConfig, clock: Clock) -> Result<DeviceGateway, ProviderError> {
        let config_error = |detail: String| ProviderError::Config { provider: GATEWAY, detail };
        let base_url = Url::parse(config.base_url.trim())
            .ok()
            .filter(|url| !url.cannot_be_a_base() && matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| config_error(format!("charger.gateway.base_url {:?} is not an http(s) URL", config.base_url)))?;
        if config.token.expose_secret().trim().is_empty() {
            return Err(config_error("charger.gateway.token is not set".into()));
        }
        if config.timeout_ms == 0 {
            return Err(config_error("charger.gateway.timeout_ms must be positive".into()));
        }
        Ok(DeviceGateway {
            base_url,
            token: config.token.clone(),
            http: crate::providers::http_client(GATEWAY, Duration::from_millis(config.timeout_ms))?,
            clock,
        })
    }

    /// `{base}/{segments…}`, each segment percent-encoded (a device address is the caller's
    /// text).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Send `body` (if any) to `segments` with `method`; the 2xx answer's body.
    async fn call(&self, method: Method, segments: &[&str], body: Option<Value>) -> Result<String, DriverError> {
        let url = self.url(segments);
        let mut request = self.http.request(method, url.clone()).bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = crate::providers::send(GATEWAY, request).await.map_err(|e| {
            if e.is_timeout() { DriverError::Timeout } else { DriverError::Provider(transport(format!("{}: {}", url.path(), e.without_url()))) }
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            if e.is_timeout() { DriverError::Timeout } else { DriverError::Provider(transport(format!("{}: {}", url.path(), e.without_url()))) }
        })?;
        if status.is_success() {
            return Ok(text);
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let field = |key: &str| answer.get(key).and_then(Value::as_str).map(str::to_owned);
        Err(match status {
            StatusCode::NOT_FOUND => DriverError::UnknownDevice,
            StatusCode::GATEWAY_TIMEOUT => DriverError::Timeout,
            StatusCode::CONFLICT => match field("error").as_deref() {
                Some("busy") => DriverError::Busy,
                Some("not_charging") => DriverError::NotCharging,
                Some("offline") => DriverError::Offline,
                Some("fault") => DriverError::PortFault(answer.get("faultType").and_then(Value::as_i64).unwrap_or(0) as i32),
                Some("refused") => DriverError::Refused(field("message").unwrap_or_else(|| "refused".into())),
                other => DriverError::Provider(ProviderError::Vendor {
                    provider: GATEWAY,
                    code: other.unwrap_or("409").to_owned(),
                    message: field("message").unwrap_or_default(),
                }),
            },
            _ => DriverError::Provider(ProviderError::Vendor {
                provider: GATEWAY,
                code: status.as_u16().to_string(),
                message: field("message").or_else(|| field("error")).unwrap_or_default(),
            }),
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(path: &str, text: &str) -> Result<T, DriverError> {
        serde_json::from_str(text).map_err(|e| {
            // serde's message may quote a value: only where it failed.
            DriverError::Provider(transport(format!("{path}: unreadable answer ({:?} at line {} column {})", e.classify(), e.line(), e.column())))
        })
    }
}

/// A wire reading as a [`Reading`] read at `read_at`.
fn reading_of(wire: WireReading, read_at: i64) -> Result<Reading, DriverError> {
    if !wire.online {
        return Err(DriverError::Offline);
    }
    let mut order_id = wire.order_id;
    let state = match wire.state.as_str() {
        "idle" => PortState::Idle,
        "starting" => PortState::Starting,
        "charging" => PortState::Charging,
        "finished" => PortState::Finished(wire.stop_reason.and_then(StopReason::from_code).unwrap_or_else(|| {
            // A session that ended must read as ended, even without a usable reason.
            tracing::warn!(stop_reason = ?wire.stop_reason, "device gateway: a finished session without a known stopReason");
            StopReason::Other
        })),
        "fault" => {
            // `PortState::Fault` carries an order only when the fault ended that order's session.
            if wire.stop_reason.is_some_and(|r| r != StopReason::Fault.code()) {
                order_id = None;
            }
            PortState::Fault(wire.fault_type.unwrap_or(0))
        }
        other => return Err(DriverError::Provider(transport(format!("unknown port state {other:?}")))),
    };
    Ok(Reading {
        online: true,
        state,
        order_id,
        energy_wh: wire.energy_wh,
        power_w: wire.power_w,
        voltage_dv: wire.voltage_dv,
        current_ca: wire.current_ca,
        temperature_dc: wire.temperature_dc,
        session_started_at: wire.started_at,
        session_ended_at: wire.ended_at,
        read_at,
    })
}

#[async_trait]
impl ChargerDriver for DeviceGateway {
    async fn start(&self, command: &StartCommand) -> Result<(), DriverError> {
        let (mode, param) = charging_mode(command.limit);
        let body = json!({
            "orderId": command.order_id,
            "chargingMode": mode,
            "chargingParam": param,
            "availableAmount": command.available_fen,
        });
        let port = command.port.to_string();
        self.call(Method::POST, &["devices", &command.device_address, "ports", &port, "start"], Some(body)).await?;
        Ok(())
    }

    async fn stop(&self, device_address: &str, port: i32, order_id: &str, reason: StopReason) -> Result<(), DriverError> {
        let body = json!({ "orderId": order_id, "stopReason": reason.code() });
        let port = port.to_string();
        self.call(Method::POST, &["devices", device_address, "ports", &port, "stop"], Some(body)).await?;
        Ok(())
    }

    async fn read(&self, device_address: &str, port: i32) -> Result<Reading, DriverError> {
        let port = port.to_string();
        let text = self.call(Method::GET, &["devices", device_address, "ports", &port], None).await?;
        let read_at = self.clock.now_ms();
        reading_of(Self::parse("ports", &text)?, read_at)
    }

    async fn configure(&self, device_address: &str, config: &[u8]) -> Result<(), DriverError> {
        self.call(Method::POST, &["devices", device_address, "config"], Some(json!({ "config": config }))).await?;
        Ok(())
    }

    async fn connections(&self) -> Result<Vec<Connection>, DriverError> {
        let text = self.call(Method::GET, &["devices"], None).await?;
        let devices: Vec<WireConnection> = Self::parse("devices", &text)?;
        Ok(devices
            .into_iter()
            .map(|d| Connection { imei: d.imei, device_address: d.device_address, endpoint: d.endpoint, connected_at: d.connected_at })
            .collect())
    }
}
