//! The charger drivers (003 §9, §10): the simulated piles on a fresh database driven through a whole session and every sandbox event, and the device gateway against wiremock.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use mpapi::clock::Clock;
use mpapi::config::ProviderKind;
use mpapi::providers::ProviderError;
use mpapi::providers::charger::simulated::{self, ROUTES};
use mpapi::providers::charger::{
    self as charger, ChargerConfig, ChargerDriver, Connection, DeviceGateway, DriverError, GatewayConfig, Limit, PortState,
    Reading, SimDevice, SimEvent, SimulatedChargers, SimulationConfig, StartCommand, StopReason,
};
use mpapi::storage::Db;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::app::fresh_database;
use crate::support::send;

// ---------------------------------------------------------------- the simulated piles

const AC: &str = "SIM-AC-0001";
const DC: &str = "SIM-DC-0001";
const RAMP_MS: f64 = 60_000.0;

fn ac() -> SimDevice {
    SimDevice {
        device_address: AC.into(),
        imei: "860000000000001".into(),
        endpoint: "10.0.0.11:50001".into(),
        ports: 2,
        rated_power_w: 7000,
        voltage_v: 220,
    }
}

fn dc() -> SimDevice {
    SimDevice {
        device_address: DC.into(),
        imei: "860000000000002".into(),
        endpoint: "10.0.0.12:50001".into(),
        ports: 2,
        rated_power_w: 60_000,
        voltage_v: 750,
    }
}

/// A new database: in memory, or a fresh schema when `DATABASE_URL` is PostgreSQL (CI runs these
/// tests there too).
async fn database() -> Db {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => fresh_database(&tempfile::tempdir().expect("a temporary folder")).await,
        _ => "sqlite::memory:".to_owned(),
    };
    Db::connect(&url).await.expect("a new database")
}

/// The simulator on a new database with both piles registered, and its clock.
async fn piles() -> (SimulatedChargers, Clock) {
    piles_with(SimulationConfig::default()).await
}

/// The two piles on a simulator of `config`.
async fn piles_with(config: SimulationConfig) -> (SimulatedChargers, Clock) {
    let db = database().await;
    let clock = Clock::default();
    let sim = SimulatedChargers::new(db, clock.clone(), config);
    sim.register(&ac()).await.expect("registered");
    sim.register(&dc()).await.expect("registered");
    (sim, clock)
}

fn command(device: &str, port: i32, order: &str, limit: Limit) -> StartCommand {
    StartCommand { device_address: device.into(), port, order_id: order.into(), limit, available_fen: 10_000 }
}

fn advance(clock: &Clock, ms: u64) {
    clock.advance(Duration::from_millis(ms));
}

/// The analytic energy, Wh (floored), after `real_ms` of charging at `rated_w` at scale 60:
/// ∫ P, P ramping from 0 to the rated power over 60 simulated s, then constant.
fn integral_wh(rated_w: i64, real_ms: i64) -> i64 {
    let (p, t) = (rated_w as f64, (real_ms * 60) as f64);
    let w_ms = if t <= RAMP_MS { p * t * t / (2.0 * RAMP_MS) } else { p * (t - RAMP_MS / 2.0) };
    (w_ms / 3_600_000.0).floor() as i64
}

/// An accept delay no loaded machine outruns between a start and the next command (the test
/// clock runs on in real time between its moves).
const SLOW_ACCEPT: SimulationConfig = SimulationConfig { time_scale: 60, accept_delay_ms: 10_000 };

/// Real ms from power flowing to `wh` at `rated_w` at scale 60.
fn real_ms_for(rated_w: i64, wh: i64) -> f64 {
    (wh as f64 * 3_600_000.0 / rated_w as f64 + RAMP_MS / 2.0) / 60.0
}

async fn read(sim: &SimulatedChargers, device: &str, port: i32) -> Reading {
    sim.read(device, port).await.expect("the port reads")
}

#[tokio::test]
async fn a_session_starts_then_charges_along_the_power_curve() {
    // The clock runs on in real time between its moves, so the figures are checked against
    // the reading's own `read_at`, with ranges a slow machine stays inside.
    let (sim, clock) = piles_with(SLOW_ACCEPT).await;
    sim.start(&command(AC, 1, "order-1", Limit::None)).await.expect("accepted");

    let starting = read(&sim, AC, 1).await;
    assert_eq!(starting.state, PortState::Starting);
    assert_eq!(starting.order_id.as_deref(), Some("order-1"));
    assert!(starting.online);
    assert_eq!((starting.energy_wh, starting.power_w, starting.current_ca), (0, 0, 0));
    assert_eq!((starting.session_started_at, starting.session_ended_at), (None, None));
    assert_eq!(starting.voltage_dv, 2200, "the pile's voltage, 0.1 V");
    assert_eq!(starting.session_end("order-1"), None);

    advance(&clock, 10_000);
    let charging = read(&sim, AC, 1).await;
    assert_eq!(charging.state, PortState::Charging);
    let started = charging.session_started_at.expect("power flows");
    assert!(started <= charging.read_at && charging.read_at - started < 10_000, "{charging:?}");

    // Half a real second: 30 simulated seconds into the 60-second ramp, half the power (more
    // on a slow machine, up to the rated power).
    advance(&clock, 500);
    let ramping = read(&sim, AC, 1).await;
    let sim_ms = (ramping.read_at - started) * 60;
    assert_eq!(ramping.power_w, 7000 * sim_ms.min(60_000) / 60_000);
    assert!((3500..=7000).contains(&ramping.power_w), "{ramping:?}");
    assert_eq!(ramping.energy_wh, integral_wh(7000, ramping.read_at - started));

    // Two real minutes: two simulated hours at 7 kW, less the ramp's lost half minute.
    advance(&clock, 120_000);
    let later = read(&sim, AC, 1).await;
    assert_eq!(later.state, PortState::Charging);
    assert_eq!(later.session_started_at, Some(started));
    assert_eq!(later.energy_wh, integral_wh(7000, later.read_at - started));
    assert!((14_000..15_000).contains(&later.energy_wh), "{later:?}");
    assert_eq!(later.power_w, 7000);
    assert_eq!(later.current_ca, 7000 * 100 / 220, "P / U in 0.01 A");
    assert_eq!(later.temperature_dc, 250 + 70, "25 ℃ + 1 ℃ per kW");
}

#[tokio::test]
async fn limits_finish_the_session_by_themselves() {
    let (sim, clock) = piles().await;
    sim.start(&command(AC, 1, "timed", Limit::Seconds(600))).await.expect("accepted");
    sim.start(&command(AC, 2, "energy", Limit::Wh(5000))).await.expect("accepted");
    sim.start(&command(DC, 1, "full-dc", Limit::Full)).await.expect("accepted");
    sim.start(&command(DC, 2, "money", Limit::Fen(500))).await.expect("accepted");

    advance(&clock, 1000 + 5000);
    for (device, port) in [(AC, 1), (AC, 2), (DC, 1), (DC, 2)] {
        assert_eq!(read(&sim, device, port).await.state, PortState::Charging, "{device}/{port} before its limit");
    }

    advance(&clock, 95_000);
    // 600 simulated seconds = 10 real seconds; 570 s at 7 kW after the ramp's 30.
    let timed = read(&sim, AC, 1).await;
    assert_eq!(timed.state, PortState::Finished(StopReason::Timed));
    assert_eq!(timed.session_end("timed"), Some(StopReason::Timed));
    let started = timed.session_started_at.expect("it charged");
    assert_eq!(timed.session_ended_at, Some(started + 10_000));
    assert_eq!(timed.energy_wh, 7000 * 570 / 3600);
    assert_eq!((timed.power_w, timed.current_ca), (0, 0));

    let energy = read(&sim, AC, 2).await;
    assert_eq!(energy.state, PortState::Finished(StopReason::Energy));
    assert_eq!(energy.energy_wh, 5000, "exactly the limit");
    let took = (energy.session_ended_at.unwrap() - energy.session_started_at.unwrap()) as f64;
    assert!((took - real_ms_for(7000, 5000)).abs() <= 1.0, "ended at the interpolated instant: {took} ms");

    let full = read(&sim, DC, 1).await;
    assert_eq!(full.state, PortState::Finished(StopReason::Full));
    assert_eq!(full.energy_wh, 40_000, "a DC vehicle holds 40 kWh");
    let took = (full.session_ended_at.unwrap() - full.session_started_at.unwrap()) as f64;
    assert!((took - real_ms_for(60_000, 40_000)).abs() <= 1.0, "{took} ms");

    let money = read(&sim, DC, 2).await;
    assert_eq!(money.state, PortState::Charging, "a money limit is the server's to enforce");
    assert_eq!(money.energy_wh, integral_wh(60_000, money.read_at - money.session_started_at.unwrap()));

    // An AC vehicle is full at 10 kWh, in 86.2 real seconds at 7 kW.
    sim.start(&command(AC, 1, "full-ac", Limit::Full)).await.expect("the finished port takes a new order");
    advance(&clock, 1000 + 80_000);
    assert_eq!(read(&sim, AC, 1).await.state, PortState::Charging);
    advance(&clock, 10_000);
    let full = read(&sim, AC, 1).await;
    assert_eq!((full.state, full.energy_wh, full.order_id.as_deref()), (PortState::Finished(StopReason::Full), 10_000, Some("full-ac")));

    // No limit never stops either: ten simulated hours later it still charges.
    sim.start(&command(AC, 2, "open", Limit::None)).await.expect("accepted");
    advance(&clock, 1000 + 600_000);
    let open = read(&sim, AC, 2).await;
    assert_eq!(open.state, PortState::Charging);
    assert_eq!(open.energy_wh, integral_wh(7000, open.read_at - open.session_started_at.unwrap()));
}

#[tokio::test]
async fn a_start_for_an_ended_order_is_accepted_and_charges_nothing_more() {
    let (sim, clock) = piles().await;
    sim.start(&command(AC, 1, "once", Limit::Seconds(60))).await.expect("accepted");
    advance(&clock, 1000 + 2000);
    let finished = read(&sim, AC, 1).await;
    assert_eq!(finished.state, PortState::Finished(StopReason::Timed));
    sim.start(&command(AC, 1, "once", Limit::Seconds(60))).await.expect("a repeated start is Ok");
    assert_eq!(read(&sim, AC, 1).await.session_ended_at, finished.session_ended_at, "not restarted");
}

#[tokio::test]
async fn a_stop_freezes_the_session() {
    let (sim, clock) = piles().await;
    sim.start(&command(AC, 1, "order-1", Limit::Seconds(3600))).await.expect("accepted");
    advance(&clock, 1000 + 30_000);
    assert_eq!(
        sim.stop(AC, 1, "another-order", StopReason::User).await.unwrap_err().to_string(),
        DriverError::NotCharging.to_string()
    );
    sim.stop(AC, 1, "order-1", StopReason::User).await.expect("stopped");
    let stopped = read(&sim, AC, 1).await;
    assert_eq!(stopped.state, PortState::Finished(StopReason::User));
    assert_eq!(stopped.session_end("order-1"), Some(StopReason::User));
    let ended = stopped.session_ended_at.expect("ended");
    assert_eq!(stopped.energy_wh, integral_wh(7000, ended - stopped.session_started_at.unwrap()));
    assert!(stopped.energy_wh > 3000, "{stopped:?}");

    advance(&clock, 60_000);
    let later = read(&sim, AC, 1).await;
    assert_eq!((later.state, later.energy_wh, later.session_ended_at), (stopped.state, stopped.energy_wh, Some(ended)));
    assert!(matches!(sim.stop(AC, 1, "order-1", StopReason::User).await, Err(DriverError::NotCharging)));

}

#[tokio::test]
async fn a_stop_before_power_flows_charges_nothing() {
    let (sim, _) = piles_with(SLOW_ACCEPT).await;
    sim.start(&command(AC, 2, "order-2", Limit::None)).await.expect("accepted");
    sim.stop(AC, 2, "order-2", StopReason::Amount).await.expect("stopped while starting");
    let early = read(&sim, AC, 2).await;
    assert_eq!((early.state, early.energy_wh, early.session_started_at), (PortState::Finished(StopReason::Amount), 0, None));
    assert!(early.session_ended_at.is_some());
}

#[tokio::test]
async fn a_port_is_busy_for_another_order_and_idempotent_for_its_own() {
    let (sim, clock) = piles().await;
    assert_eq!(read(&sim, AC, 1).await.state, PortState::Idle);
    sim.start(&command(AC, 1, "a", Limit::None)).await.expect("accepted");
    sim.start(&command(AC, 1, "a", Limit::None)).await.expect("the same order again while starting");
    assert!(matches!(sim.start(&command(AC, 1, "b", Limit::None)).await, Err(DriverError::Busy)));
    advance(&clock, 2000);
    sim.start(&command(AC, 1, "a", Limit::None)).await.expect("the same order again while charging");
    assert!(matches!(sim.start(&command(AC, 1, "b", Limit::None)).await, Err(DriverError::Busy)));
    sim.start(&command(AC, 2, "b", Limit::None)).await.expect("the other port is free");
    sim.stop(AC, 1, "a", StopReason::User).await.expect("stopped");
    sim.start(&command(AC, 1, "c", Limit::None)).await.expect("a finished port is free");
    assert_eq!(read(&sim, AC, 1).await.order_id.as_deref(), Some("c"));
}

#[tokio::test]
async fn offline_hides_the_device_and_ends_its_session_at_that_instant() {
    let (sim, clock) = piles().await;
    sim.start(&command(AC, 1, "order-1", Limit::None)).await.expect("accepted");
    advance(&clock, 1000 + 10_000);
    let before = clock.now_ms();
    sim.event(AC, SimEvent::Offline, None, None).await.expect("offline");
    assert!(matches!(sim.read(AC, 1).await, Err(DriverError::Offline)));
    assert!(matches!(sim.start(&command(AC, 2, "order-2", Limit::None)).await, Err(DriverError::Offline)));
    assert!(matches!(sim.stop(AC, 1, "order-1", StopReason::User).await, Err(DriverError::Offline)));
    assert!(matches!(sim.configure(AC, &[1, 2]).await, Err(DriverError::Offline)));
    let connected: Vec<String> = sim.connections().await.expect("listed").into_iter().map(|c| c.device_address).collect();
    assert_eq!(connected, vec![DC.to_owned()]);
    let state = sim.state(AC).await.expect("the sandbox still sees it");
    assert!(!state.online && !state.ports[0].1.online);

    advance(&clock, 30_000);
    sim.event(AC, SimEvent::Online, None, None).await.expect("online");
    let after = read(&sim, AC, 1).await;
    assert_eq!(after.state, PortState::Finished(StopReason::Fault));
    assert_eq!(after.session_end("order-1"), Some(StopReason::Fault));
    let ended = after.session_ended_at.expect("ended");
    assert!((before..before + 1000).contains(&ended), "ended when the device went offline, not now: {after:?}");
    assert_eq!(after.energy_wh, integral_wh(7000, ended - after.session_started_at.unwrap()));
    let connection = sim.connections().await.expect("listed").into_iter().find(|c| c.device_address == AC).expect("connected again");
    assert!(connection.connected_at >= before + 30_000, "a new connection");
}

#[tokio::test]
async fn a_fault_ends_the_live_session_and_keeps_it_readable() {
    let (sim, clock) = piles().await;
    sim.start(&command(AC, 1, "order-1", Limit::None)).await.expect("accepted");
    sim.start(&command(AC, 2, "order-2", Limit::None)).await.expect("accepted");
    advance(&clock, 1000 + 20_000);
    sim.event(AC, SimEvent::Fault, Some(1), Some(2)).await.expect("fault");
    let faulted = read(&sim, AC, 1).await;
    assert_eq!(faulted.state, PortState::Fault(2));
    assert_eq!(faulted.order_id.as_deref(), Some("order-1"), "the fault ended this order's session");
    assert_eq!(faulted.session_end("order-1"), Some(StopReason::Fault));
    assert_eq!(faulted.session_end("order-2"), None);
    assert!(faulted.energy_wh > 0 && faulted.session_ended_at.is_some());
    assert_eq!(faulted.power_w, 0);
    advance(&clock, 10_000);
    assert_eq!(read(&sim, AC, 1).await.energy_wh, faulted.energy_wh, "frozen");
    assert!(matches!(sim.start(&command(AC, 1, "order-3", Limit::None)).await, Err(DriverError::PortFault(2))));
    assert!(matches!(sim.stop(AC, 1, "order-1", StopReason::User).await, Err(DriverError::NotCharging)));
    assert_eq!(read(&sim, AC, 2).await.state, PortState::Charging, "the other port goes on");

    // Back online the fault clears; the session still reads as ended by it.
    sim.event(AC, SimEvent::Online, None, None).await.expect("online");
    let cleared = read(&sim, AC, 1).await;
    assert_eq!((cleared.state, cleared.energy_wh), (PortState::Finished(StopReason::Fault), faulted.energy_wh));
    sim.start(&command(AC, 1, "order-3", Limit::None)).await.expect("the port works again");
}

#[tokio::test]
async fn a_fault_without_a_live_session_carries_no_order() {
    let (sim, clock) = piles().await;
    sim.event(AC, SimEvent::Fault, Some(2), None).await.expect("fault on an idle port");
    let idle = read(&sim, AC, 2).await;
    assert_eq!((idle.state, idle.order_id.as_deref()), (PortState::Fault(1), None), "faultType defaults to 1");

    sim.start(&command(AC, 1, "done", Limit::None)).await.expect("accepted");
    advance(&clock, 2000);
    sim.stop(AC, 1, "done", StopReason::User).await.expect("stopped");
    sim.event(AC, SimEvent::Fault, None, Some(1)).await.expect("fault on port 1 (the default)");
    let faulted = read(&sim, AC, 1).await;
    assert_eq!((faulted.state, faulted.order_id.as_deref()), (PortState::Fault(1), None));
    assert_eq!(faulted.session_end("done"), None);
    sim.event(AC, SimEvent::Online, None, None).await.expect("online");
    assert_eq!(read(&sim, AC, 1).await.session_end("done"), Some(StopReason::User), "its own reason again");
}

#[tokio::test]
async fn unplugging_and_a_full_vehicle_end_the_session() {
    let (sim, clock) = piles().await;
    sim.start(&command(DC, 1, "unplugged", Limit::None)).await.expect("accepted");
    sim.start(&command(DC, 2, "full", Limit::Fen(100_000))).await.expect("accepted");
    advance(&clock, 1000 + 5000);
    sim.event(DC, SimEvent::Unplug, Some(1), None).await.expect("unplug");
    sim.event(DC, SimEvent::Full, Some(2), None).await.expect("full");
    let unplugged = read(&sim, DC, 1).await;
    assert_eq!(unplugged.state, PortState::Finished(StopReason::Other));
    assert!(unplugged.energy_wh > 0);
    let full = read(&sim, DC, 2).await;
    assert_eq!(full.state, PortState::Finished(StopReason::Full));
    assert_eq!(full.session_end("full"), Some(StopReason::Full));
    // Nothing live any more: the events change nothing.
    sim.event(DC, SimEvent::Unplug, Some(2), None).await.expect("unplug again");
    assert_eq!(read(&sim, DC, 2).await.state, PortState::Finished(StopReason::Full));
}

#[tokio::test]
async fn a_silent_device_times_out_and_a_refusing_one_refuses_starts() {
    let (sim, clock) = piles().await;
    sim.start(&command(AC, 1, "order-1", Limit::None)).await.expect("accepted");
    sim.event(AC, SimEvent::NoAnswer, None, None).await.expect("no_answer");
    assert!(matches!(sim.read(AC, 1).await, Err(DriverError::Timeout)));
    assert!(matches!(sim.start(&command(AC, 2, "order-2", Limit::None)).await, Err(DriverError::Timeout)));
    assert!(matches!(sim.stop(AC, 1, "order-1", StopReason::User).await, Err(DriverError::Timeout)));
    assert!(matches!(sim.configure(AC, &[0, 255]).await, Err(DriverError::Timeout)));
    assert!(sim.connections().await.unwrap().iter().any(|c| c.device_address == AC), "still connected");
    sim.event(AC, SimEvent::Online, None, None).await.expect("online");
    advance(&clock, 2000);
    assert_eq!(read(&sim, AC, 1).await.state, PortState::Charging, "silence ended nothing");

    sim.event(AC, SimEvent::Reject, None, None).await.expect("reject");
    assert!(matches!(sim.start(&command(AC, 2, "order-2", Limit::None)).await, Err(DriverError::Refused(_))));
    assert_eq!(read(&sim, AC, 2).await.state, PortState::Idle, "reads still answer");
    sim.stop(AC, 1, "order-1", StopReason::User).await.expect("stops still answer");
    sim.event(AC, SimEvent::Online, None, None).await.expect("online");
    sim.start(&command(AC, 2, "order-2", Limit::None)).await.expect("accepted again");
    sim.configure(AC, &[1, 2, 3]).await.expect("configured");
}

#[tokio::test]
async fn unknown_devices_ports_and_fault_types_are_refused() {
    let (sim, _clock) = piles().await;
    assert!(matches!(sim.start(&command("nope", 1, "o", Limit::None)).await, Err(DriverError::UnknownDevice)));
    assert!(matches!(sim.read("nope", 1).await, Err(DriverError::UnknownDevice)));
    assert!(matches!(sim.stop("nope", 1, "o", StopReason::User).await, Err(DriverError::UnknownDevice)));
    assert!(matches!(sim.configure("nope", &[]).await, Err(DriverError::UnknownDevice)));
    assert!(matches!(sim.event("nope", SimEvent::Offline, None, None).await, Err(DriverError::UnknownDevice)));
    assert!(matches!(sim.start(&command(AC, 3, "o", Limit::None)).await, Err(DriverError::Refused(_))));
    assert!(matches!(sim.read(AC, 0).await, Err(DriverError::Refused(_))));
    assert!(matches!(sim.event(AC, SimEvent::Fault, Some(3), None).await, Err(DriverError::Refused(_))));
    assert!(matches!(sim.event(AC, SimEvent::Fault, Some(1), Some(3)).await, Err(DriverError::Refused(_))));
}

#[tokio::test]
async fn registering_again_keeps_the_live_state() {
    let (sim, clock) = piles().await;
    let connected_at = sim.state(AC).await.unwrap().connected_at;
    sim.start(&command(AC, 1, "order-1", Limit::None)).await.expect("accepted");
    advance(&clock, 5000);
    sim.register(&SimDevice { endpoint: "10.0.0.99:50001".into(), ..ac() }).await.expect("registered again");
    let state = sim.state(AC).await.unwrap();
    assert_eq!((state.connected_at, state.device.endpoint.as_str()), (connected_at, "10.0.0.99:50001"));
    let reading = read(&sim, AC, 1).await;
    assert_eq!((reading.state, reading.order_id.as_deref()), (PortState::Charging, Some("order-1")));

    // An offline device reconnects when registered.
    sim.event(AC, SimEvent::Offline, None, None).await.unwrap();
    advance(&clock, 1000);
    sim.register(&ac()).await.expect("registered again");
    let connections: Vec<Connection> = sim.connections().await.unwrap();
    let ac_connection = connections.iter().find(|c| c.device_address == AC).expect("connected");
    assert_eq!((ac_connection.imei.as_str(), ac_connection.endpoint.as_str()), ("860000000000001", "10.0.0.11:50001"));
    assert!(ac_connection.connected_at > connected_at);
}

/// Two server instances on one database, 50 orders racing for one idle port.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_starts_on_one_port_exactly_one_wins() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&fresh_database(&dir).await).await.expect("the database");
    let clock = Clock::default();
    let one = Arc::new(SimulatedChargers::new(db.clone(), clock.clone(), SimulationConfig::default()));
    let two = Arc::new(SimulatedChargers::new(db, clock, SimulationConfig::default()));
    one.register(&ac()).await.expect("registered");
    two.register(&ac()).await.expect("registered by the other instance too");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let sim = if i % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move { sim.start(&command(AC, 1, &format!("order-{i}"), Limit::None)).await })
        })
        .collect();
    let results: Vec<Result<(), DriverError>> =
        futures_util::future::join_all(tasks).await.into_iter().map(|r| r.expect("the task ran")).collect();
    let won = results.iter().filter(|r| r.is_ok()).count();
    let busy = results.iter().filter(|r| matches!(r, Err(DriverError::Busy))).count();
    assert_eq!((won, busy), (1, 49), "{results:?}");
    let winner = results.iter().position(Result::is_ok).unwrap();
    assert_eq!(two.read(AC, 1).await.unwrap().order_id, Some(format!("order-{winner}")), "both instances see the winner");

    // On the test's usual database as well, through one instance.
    let (sim, _clock) = piles().await;
    let sim = Arc::new(sim);
    let starts = (0..50).map(|i| {
        let sim = sim.clone();
        async move { sim.start(&command(DC, 2, &format!("order-{i}"), Limit::Full)).await }
    });
    let results = futures_util::future::join_all(starts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(results.iter().filter(|r| matches!(r, Err(DriverError::Busy))).count(), 49);
}

#[tokio::test]
async fn the_sandbox_routes_drive_and_show_a_pile() {
    let (sim, clock) = piles().await;
    let sim = Arc::new(sim);
    let router = simulated::routes(sim.clone());
    sim.start(&command(AC, 1, "order-1", Limit::None)).await.expect("accepted");
    advance(&clock, 1000 + 5000);

    let post = |uri: &str| Request::post(uri).body(Body::empty()).unwrap();
    let reply = send(&router, post(&format!("/_sandbox/devices/{AC}?event=fault&port=1&faultType=2"))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!((body["deviceAddress"].as_str(), body["event"].as_str()), (Some(AC), Some("fault")));
    assert_eq!(body["online"], json!(true));
    let ports = body["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0]["port"], json!(1));
    assert_eq!(ports[0]["state"], json!("fault"));
    assert_eq!(ports[0]["faultType"], json!(2));
    assert_eq!(ports[0]["stopReason"], json!(6));
    assert_eq!(ports[0]["orderId"], json!("order-1"));
    assert!(ports[0]["energyWh"].as_i64().unwrap() > 0);
    assert_eq!(ports[1]["state"], json!("idle"));

    let reply = send(&router, Request::get(format!("/_sandbox/devices/{AC}")).body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["event"], Value::Null);
    assert_eq!(reply.json()["ports"][0]["state"], json!("fault"));

    let reply = send(&router, post(&format!("/_sandbox/devices/{AC}?event=online"))).await;
    assert_eq!(reply.json()["ports"][0]["state"], json!("finished"));
    assert_eq!(reply.json()["ports"][0]["stopReason"], json!(6));

    let reply = send(&router, post(&format!("/_sandbox/devices/{AC}?event=explode"))).await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["message"].as_str().unwrap().contains("no_answer"), "{}", reply.body);
    let reply = send(&router, post(&format!("/_sandbox/devices/{AC}?event=fault&port=x"))).await;
    assert_eq!(reply.status, 400);
    let reply = send(&router, post(&format!("/_sandbox/devices/{AC}?event=fault&port=9"))).await;
    assert_eq!(reply.status, 400);
    let reply = send(&router, post("/_sandbox/devices/nope?event=offline")).await;
    assert_eq!(reply.status, 404);
    assert!(reply.json()["message"].is_string());
    let reply = send(&router, Request::get("/_sandbox/devices/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, 404);

    assert!(ROUTES.iter().any(|(route, _)| route.starts_with("POST /_sandbox/devices/")));
}

#[tokio::test]
async fn the_configuration_selects_the_driver() {
    let db = database().await;
    let config = ChargerConfig::default();
    assert_eq!(config.provider, ProviderKind::Sandbox);
    assert_eq!((config.simulation.time_scale, config.simulation.accept_delay_ms), (60, 1000));
    let (_, sandbox) = charger::from_config(&config, db.clone(), Clock::default()).expect("the sandbox");
    assert!(sandbox.is_some());

    let real = ChargerConfig { provider: ProviderKind::Real, ..ChargerConfig::default() };
    assert!(charger::from_config(&real, db.clone(), Clock::default()).is_err(), "real needs a gateway");
    let real = ChargerConfig { gateway: Some(gateway_config("https://gateway.example/api")), ..real };
    let (_, sandbox) = charger::from_config(&real, db, Clock::default()).expect("the gateway");
    assert!(sandbox.is_none());

    // Deserialized from TOML-like JSON: the timeout defaults, the token never comes back out.
    let parsed: ChargerConfig =
        serde_json::from_value(json!({ "provider": "real", "gateway": { "base_url": "https://g.example", "token": TOKEN } })).unwrap();
    assert_eq!(parsed.gateway.as_ref().unwrap().timeout_ms, 5000);
    assert_eq!(parsed.simulation, SimulationConfig::default());
    let written = serde_json::to_string(&parsed).unwrap();
    assert!(!written.contains(TOKEN), "{written}");
}

// ---------------------------------------------------------------- the device gateway

const TOKEN: &str = "gw-token-0123456789";
const ADDRESS: &str = "860001000123";

fn gateway_config(base_url: &str) -> GatewayConfig {
    GatewayConfig { base_url: base_url.into(), token: TOKEN.into(), timeout_ms: 5000 }
}

/// The gateway at `server`, under a path prefix (joined, not replaced).
fn gateway(server: &MockServer) -> DeviceGateway {
    DeviceGateway::new(&gateway_config(&format!("{}/gw/", server.uri())), Clock::default()).expect("configured")
}

fn bearer() -> wiremock::matchers::HeaderExactMatcher {
    header("Authorization", format!("Bearer {TOKEN}").as_str())
}

#[tokio::test]
async fn the_gateway_starts_with_each_charging_mode() {
    let cases = [
        (Limit::Full, 1, 0),
        (Limit::Fen(500), 2, 500),
        (Limit::Seconds(3600), 3, 3600),
        (Limit::Wh(12_345), 4, 1234),
        (Limit::None, 5, 0),
    ];
    for (limit, mode, param) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/gw/devices/{ADDRESS}/ports/2/start")))
            .and(bearer())
            .and(body_json(json!({ "orderId": "CD20261203000001", "chargingMode": mode, "chargingParam": param, "availableAmount": 2000 })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&server)
            .await;
        let start = StartCommand { device_address: ADDRESS.into(), port: 2, order_id: "CD20261203000001".into(), limit, available_fen: 2000 };
        gateway(&server).start(&start).await.unwrap_or_else(|e| panic!("{limit:?}: {e}"));
    }
}

#[tokio::test]
async fn the_gateway_stops_configures_and_lists() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/gw/devices/{ADDRESS}/ports/1/stop")))
        .and(bearer())
        .and(body_json(json!({ "orderId": "CD1", "stopReason": 5 })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/gw/devices/{ADDRESS}/config")))
        .and(bearer())
        .and(body_json(json!({ "config": [1, 0, 255, 16] })))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/gw/devices"))
        .and(bearer())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            { "imei": "860000000000001", "deviceAddress": ADDRESS, "endpoint": "112.5.6.7:40211", "connectedAt": 1_764_748_800_000i64 }
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let gateway = gateway(&server);
    gateway.stop(ADDRESS, 1, "CD1", StopReason::Amount).await.expect("stopped");
    gateway.configure(ADDRESS, &[1, 0, 255, 16]).await.expect("configured");
    assert_eq!(
        gateway.connections().await.expect("listed"),
        vec![Connection {
            imei: "860000000000001".into(),
            device_address: ADDRESS.into(),
            endpoint: "112.5.6.7:40211".into(),
            connected_at: 1_764_748_800_000
        }]
    );
}

async fn read_answering(answer: Value) -> Result<Reading, DriverError> {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/gw/devices/{ADDRESS}/ports/1")))
        .and(bearer())
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(&server)
        .await;
    gateway(&server).read(ADDRESS, 1).await
}

#[tokio::test]
async fn the_gateway_reads_a_port() {
    let charging = read_answering(json!({
        "online": true, "state": "charging", "orderId": "CD1", "energyWh": 1234, "powerW": 6950,
        "voltageDv": 2201, "currentCa": 3158, "temperatureDc": 318, "startedAt": 1_764_748_800_000i64
    }))
    .await
    .expect("read");
    assert_eq!(charging.state, PortState::Charging);
    assert!(charging.online);
    assert_eq!(charging.order_id.as_deref(), Some("CD1"));
    assert_eq!(
        (charging.energy_wh, charging.power_w, charging.voltage_dv, charging.current_ca, charging.temperature_dc),
        (1234, 6950, 2201, 3158, 318)
    );
    assert_eq!((charging.session_started_at, charging.session_ended_at), (Some(1_764_748_800_000), None));
    assert!(charging.read_at > 1_764_748_800_000);

    let states = [
        (json!({ "online": true, "state": "idle" }), PortState::Idle, None),
        (json!({ "online": true, "state": "starting", "orderId": "CD1" }), PortState::Starting, Some("CD1")),
        (json!({ "online": true, "state": "finished", "stopReason": 3, "orderId": "CD1" }), PortState::Finished(StopReason::Timed), Some("CD1")),
        (json!({ "online": true, "state": "finished", "orderId": "CD1" }), PortState::Finished(StopReason::Other), Some("CD1")),
        (json!({ "online": true, "state": "fault", "faultType": 2, "stopReason": 6, "orderId": "CD1" }), PortState::Fault(2), Some("CD1")),
        // The fault came after the session had ended for its own reason: it carries no order.
        (json!({ "online": true, "state": "fault", "faultType": 1, "stopReason": 1, "orderId": "CD1" }), PortState::Fault(1), None),
    ];
    for (answer, state, order) in states {
        let reading = read_answering(answer.clone()).await.unwrap_or_else(|e| panic!("{answer}: {e}"));
        assert_eq!((reading.state, reading.order_id.as_deref()), (state, order), "{answer}");
    }
    assert!(matches!(read_answering(json!({ "online": false, "state": "charging" })).await, Err(DriverError::Offline)));
    assert!(matches!(
        read_answering(json!({ "online": true, "state": "exploded" })).await,
        Err(DriverError::Provider(ProviderError::Transport { .. }))
    ));
    assert!(matches!(read_answering(json!({ "state": "idle" })).await, Err(DriverError::Provider(ProviderError::Transport { .. }))));
}

#[tokio::test]
async fn the_gateway_maps_its_errors() {
    let start = StartCommand { device_address: ADDRESS.into(), port: 1, order_id: "CD1".into(), limit: Limit::None, available_fen: 0 };
    type Expected = fn(&DriverError) -> bool;
    let cases: Vec<(&str, ResponseTemplate, Expected)> = vec![
        ("404", ResponseTemplate::new(404), |e| matches!(e, DriverError::UnknownDevice)),
        ("busy", ResponseTemplate::new(409).set_body_json(json!({ "error": "busy" })), |e| matches!(e, DriverError::Busy)),
        ("not charging", ResponseTemplate::new(409).set_body_json(json!({ "error": "not_charging" })), |e| {
            matches!(e, DriverError::NotCharging)
        }),
        ("offline", ResponseTemplate::new(409).set_body_json(json!({ "error": "offline" })), |e| matches!(e, DriverError::Offline)),
        ("fault", ResponseTemplate::new(409).set_body_json(json!({ "error": "fault", "faultType": 2 })), |e| {
            matches!(e, DriverError::PortFault(2))
        }),
        ("refused", ResponseTemplate::new(409).set_body_json(json!({ "error": "refused", "message": "枪未连接" })), |e| {
            matches!(e, DriverError::Refused(m) if m == "枪未连接")
        }),
        ("409 other", ResponseTemplate::new(409).set_body_json(json!({ "error": "mystery" })), |e| {
            matches!(e, DriverError::Provider(ProviderError::Vendor { code, .. }) if code == "mystery")
        }),
        ("504", ResponseTemplate::new(504), |e| matches!(e, DriverError::Timeout)),
        ("500", ResponseTemplate::new(500).set_body_json(json!({ "message": "down" })), |e| {
            matches!(e, DriverError::Provider(ProviderError::Vendor { code, message, .. }) if code == "500" && message == "down")
        }),
        ("401", ResponseTemplate::new(401).set_body_string("no"), |e| {
            matches!(e, DriverError::Provider(ProviderError::Vendor { code, .. }) if code == "401")
        }),
    ];
    for (name, template, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path(format!("/gw/devices/{ADDRESS}/ports/1/start"))).respond_with(template).mount(&server).await;
        let error = gateway(&server).start(&start).await.expect_err(name);
        assert!(expected(&error), "{name}: {error:?}");
    }

    // Slower than the timeout: Timeout.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/gw/devices/{ADDRESS}/ports/1/stop")))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let slow = DeviceGateway::new(&GatewayConfig { timeout_ms: 200, ..gateway_config(&format!("{}/gw", server.uri())) }, Clock::default()).unwrap();
    let answer = slow.stop(ADDRESS, 1, "CD1", StopReason::User).await;
    assert!(matches!(answer, Err(DriverError::Timeout)), "{answer:?}");

    // Nobody there: Transport.
    let closed = DeviceGateway::new(&gateway_config("http://127.0.0.1:1"), Clock::default()).unwrap();
    assert!(matches!(closed.connections().await, Err(DriverError::Provider(ProviderError::Transport { .. }))));

    // An unreadable list: Transport.
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path("/gw/devices")).respond_with(ResponseTemplate::new(200).set_body_string("<html>")).mount(&server).await;
    assert!(matches!(gateway(&server).connections().await, Err(DriverError::Provider(ProviderError::Transport { .. }))));
}

#[tokio::test]
async fn the_gateway_needs_its_configuration_and_hides_its_token() {
    let good = gateway_config("https://gateway.example/api");
    let gateway = DeviceGateway::new(&good, Clock::default()).expect("configured");
    let debug = format!("{gateway:?} {good:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    for broken in [
        GatewayConfig { token: "".into(), ..good.clone() },
        GatewayConfig { base_url: "not a url".into(), ..good.clone() },
        GatewayConfig { base_url: "ftp://gateway.example".into(), ..good.clone() },
        GatewayConfig { timeout_ms: 0, ..good.clone() },
    ] {
        assert!(matches!(DeviceGateway::new(&broken, Clock::default()), Err(ProviderError::Config { .. })), "{broken:?}");
    }
}
