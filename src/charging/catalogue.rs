//! Stations, piles, ports and devices (003 §2, §3, §4, §9.3, §9.6, §10): lists from storage with
//! availability derived from port state and the pile's connection; detail and status reads ask
//! the charger live (and store what it says, see [`ChargingService::refresh_pile`]).

use std::collections::HashMap;

use generated::charging::types::*;

use super::error::ChargingError;
use super::service::{ChargingService, MAX_PAGE_SIZE, kwh_f64, ok, scaled, wire};
use crate::api_support::{Page, PageRequest};
use crate::clock::iso_s;
use crate::geo;
use crate::identity::Principal;
use crate::providers::charger::{DriverError, PortState, Reading, StopReason};
use crate::storage::charging::{ListedPile, ListedPort, ListedStation, Pile, Port, PortReading, Station};

/// Degrees ↔ stored micro-degrees.
fn e6(degrees: f64) -> i64 {
    (degrees * 1e6).round() as i64
}

fn degrees(e6: i64) -> f64 {
    e6 as f64 / 1e6
}

/// What a pile's availability is derived from: `charging_pile.status` (3 out of order) and
/// whether its device answers. Read off a full row or a list's row alike.
#[derive(Clone, Copy)]
pub(super) struct PileCondition {
    status: i32,
    online: bool,
}

/// What a port's availability is derived from: `charging_port.status` (3 故障, 2 使用中),
/// whether it is disabled, and whether a live order holds it.
#[derive(Clone, Copy)]
pub(super) struct PortCondition {
    status: i32,
    disabled: bool,
    occupied: bool,
}

impl From<&Pile> for PileCondition {
    fn from(pile: &Pile) -> Self {
        PileCondition { status: pile.status, online: pile.online }
    }
}

impl From<&ListedPile> for PileCondition {
    fn from(pile: &ListedPile) -> Self {
        PileCondition { status: pile.status, online: pile.online }
    }
}

impl From<&Port> for PortCondition {
    fn from(port: &Port) -> Self {
        PortCondition { status: port.status, disabled: port.disabled, occupied: port.current_order_id.is_some() }
    }
}

impl From<&ListedPort> for PortCondition {
    fn from(port: &ListedPort) -> Self {
        PortCondition { status: port.status, disabled: port.disabled, occupied: port.occupied }
    }
}

/// A port's wire status (0 离线, 1 空闲, 2 使用中, 3 故障): offline with its pile.
pub(super) fn port_status(pile: impl Into<PileCondition>, port: impl Into<PortCondition>) -> i32 {
    let (pile, port) = (pile.into(), port.into());
    if !pile.online {
        0
    } else if port.status == 3 {
        3
    } else if port.occupied || port.status == 2 {
        2
    } else {
        1
    }
}

/// Whether a new order may take the port: idle, enabled, its pile online and not out of order.
pub(super) fn port_available(pile: impl Into<PileCondition>, port: impl Into<PortCondition>) -> bool {
    let (pile, port) = (pile.into(), port.into());
    pile.status != 3 && !port.disabled && port_status(pile, port) == 1
}

/// A pile's wire status (0 离线, 1 空闲, 2 使用中, 3 故障): out of order, offline, a port free,
/// all taken, or none usable.
pub(super) fn pile_status(pile: &Pile, ports: &[&Port]) -> i32 {
    if pile.status == 3 {
        3
    } else if !pile.online {
        0
    } else if ports.iter().any(|&p| port_available(pile, p)) {
        1
    } else if ports.iter().any(|&p| port_status(pile, p) == 2) {
        2
    } else {
        3
    }
}

/// Whether the station takes orders: not under its operator's 维护中 (2) or 故障 (3).
pub(super) fn in_service(station: &Station) -> bool {
    operating(station.status)
}

/// Whether a station's operator status (`charging_station.status`) lets it take orders.
fn operating(status: i32) -> bool {
    !matches!(status, 2 | 3)
}

/// A pile's wire status at its station: 3 (none usable) while the station is out of service,
/// else [`pile_status`].
fn pile_status_at(station: Option<&Station>, pile: &Pile, ports: &[&Port]) -> i32 {
    if station.is_some_and(|s| !in_service(s)) { 3 } else { pile_status(pile, ports) }
}

/// The ports of a pile a new order may take, at its station (none while it is out of service).
fn available_at(station: Option<&Station>, pile: &Pile, ports: &[&Port]) -> i32 {
    if station.is_some_and(|s| !in_service(s)) { 0 } else { ports.iter().filter(|&&p| port_available(pile, p)).count() as i32 }
}

/// A station's wire status: its operator's 维护中/故障, else 在线 while any pile is online.
fn station_status(station: &Station, piles: &[&Pile]) -> i32 {
    station_wire_status(station.status, piles.iter().any(|p| p.online))
}

/// A station's wire status from its operator status and whether any of its piles answers.
fn station_wire_status(status: i32, any_online: bool) -> i32 {
    match status {
        2 | 3 => status,
        _ if any_online => 1,
        _ => 0,
    }
}

/// A listed station's wire status and `(available, total)` ports, as [`station_status`] and
/// [`Stock::counts`] give them for full rows.
fn listed_state(station: &ListedStation) -> (i32, i32, i32) {
    let status = station_wire_status(station.status, station.piles.iter().any(|p| p.online));
    let total = station.piles.iter().map(|p| p.ports.len() as i32).sum();
    let available = if operating(station.status) {
        station.piles.iter().map(|p| p.ports.iter().filter(|&t| port_available(p, t)).count() as i32).sum()
    } else {
        0
    };
    (status, available, total)
}

/// Stations with their piles and ports, for the lists.
struct Stock {
    piles: Vec<Pile>,
    ports: Vec<Port>,
}

impl Stock {
    fn piles_of<'a>(&'a self, station: &str) -> Vec<&'a Pile> {
        self.piles.iter().filter(|p| p.station_id == station).collect()
    }

    fn ports_of<'a>(&'a self, pile: &str) -> Vec<&'a Port> {
        self.ports.iter().filter(|p| p.pile_id == pile).collect()
    }

    /// `(available, total)` ports of a station.
    fn counts(&self, station: &Station) -> (i32, i32) {
        let mut counts = (0, 0);
        for pile in self.piles_of(&station.id) {
            for port in self.ports_of(&pile.id) {
                counts.1 += 1;
                if in_service(station) && port_available(pile, port) {
                    counts.0 += 1;
                }
            }
        }
        counts
    }
}

/// A pile's power as the wire's kW.
fn kw(w: i64) -> f64 {
    scaled(w, 1000)
}

impl ChargingService {
    /// The page's stations as a list shows them, by id.
    async fn listed<D>(&self, page: &[(D, String)]) -> Result<HashMap<String, ListedStation>, ChargingError> {
        let ids: Vec<String> = page.iter().map(|(_, id)| id.clone()).collect();
        Ok(self.db.charging().listed_stations(&ids).await?.into_iter().map(|s| (s.id.clone(), s)).collect())
    }

    async fn stock(&self, station_ids: &[String]) -> Result<Stock, ChargingError> {
        let store = self.db.charging();
        let piles = store.piles_of(station_ids).await?;
        let pile_ids: Vec<String> = piles.iter().map(|p| p.id.clone()).collect();
        let ports = store.ports_of(Some(&pile_ids)).await?;
        Ok(Stock { piles, ports })
    }

    /// operationId `station_nearby_list` (003 §2.1): stations within `radius` metres (default
    /// 5000; 1 to 50,000, the contract's bounds, so a larger radius is a 400 before this runs,
    /// never a smaller search) of a GCJ-02 position, nearest first (ties by id). The
    /// positions in memory ([`super::positions`]) narrow to the radius' box; the haversine
    /// distance decides. One statement: the page's stations with their piles and ports.
    pub async fn station_nearby_list(&self, input: &generated::charging::StationNearbyListInput) -> Result<StationNearbyResponse, ChargingError> {
        let radius = f64::from(input.radius);
        let (lat, lng) = (input.latitude, input.longitude);
        let ((lat0, lat1), (lng0, lng1)) = geo::bounding_box(lat, lng, radius);
        let candidates = self.positions.in_box(&self.db, (e6(lat0), e6(lat1)), (e6(lng0), e6(lng1))).await?;
        let mut near: Vec<(f64, std::sync::Arc<str>)> = candidates
            .into_iter()
            .map(|(id, la, ln)| (geo::distance_m(lat, lng, degrees(la), degrees(ln)), id))
            .filter(|(d, _)| *d <= radius)
            .collect();
        let request = PageRequest::new(i64::from(input.page_num), i64::from(input.page_size), MAX_PAGE_SIZE);
        // Only the stations up to the page's end need their order: put those first (linear),
        // then sort just them — a dense city's radius holds thousands, a page ten.
        let order = |a: &(f64, std::sync::Arc<str>), b: &(f64, std::sync::Arc<str>)| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1));
        let total = near.len() as u64;
        let end = request.offset().saturating_add(request.limit()).min(total) as usize;
        if end < near.len() {
            near.select_nth_unstable_by(end, order);
            near.truncate(end);
        }
        near.sort_unstable_by(order);
        let page: Vec<(f64, String)> = near.iter().skip(request.offset() as usize).map(|(d, id)| (*d, id.to_string())).collect();
        let mut stations = self.listed(&page).await?;
        let mut list = Vec::with_capacity(page.len());
        for (distance, id) in &page {
            let Some(station) = stations.remove(id) else { continue };
            let (status, available, total) = listed_state(&station);
            list.push(StationNearbyItem {
                id: station.id,
                name: station.name,
                status: wire(status)?,
                address: station.address,
                latitude: degrees(station.latitude_e6),
                longitude: degrees(station.longitude_e6),
                distance: (distance * 10.0).round() / 10.0,
                description: station.description,
                available_ports: available,
                total_ports: total,
                update_time: iso_s(station.updated_at),
            });
        }
        let page = Page { request, total, items: list };
        Ok(StationNearbyResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: StationNearbyData {
                total: page.total as i64,
                page_num: page.request.page as i32,
                page_size: page.request.size as i32,
                pages: page.pages() as i32,
                list: page.items,
            },
        })
    }

    /// operationId `station_search` (003 §2.3): stations whose name or address contains the
    /// keyword; nearest first with `distance` when a position is given, else by id.
    pub async fn station_search(&self, input: &generated::charging::StationSearchInput) -> Result<StationSearchResponse, ChargingError> {
        let keyword = input.keyword.trim();
        if keyword.is_empty() {
            return Err(ChargingError::invalid("keyword不能为空"));
        }
        let position = match (input.latitude, input.longitude) {
            (Some(lat), Some(lng)) => Some((lat, lng)),
            (None, None) => None,
            _ => return Err(ChargingError::invalid("latitude与longitude须同时提供")),
        };
        let matches = self.db.charging().stations_matching(keyword).await?;
        let mut found: Vec<(Option<f64>, String)> = matches
            .into_iter()
            .map(|(id, la, ln)| (position.map(|(lat, lng)| geo::distance_m(lat, lng, degrees(la), degrees(ln))), id))
            .collect();
        if position.is_some() {
            found.sort_by(|a, b| a.0.unwrap_or(0.0).total_cmp(&b.0.unwrap_or(0.0)).then_with(|| a.1.cmp(&b.1)));
        }
        let request = PageRequest::new(i64::from(input.page_num), i64::from(input.page_size), MAX_PAGE_SIZE);
        let page: Vec<(Option<f64>, String)> = found.iter().skip(request.offset() as usize).take(request.limit() as usize).cloned().collect();
        let mut stations = self.listed(&page).await?;
        let mut list = Vec::with_capacity(page.len());
        for (distance, id) in &page {
            let Some(station) = stations.remove(id) else { continue };
            let (status, available, total) = listed_state(&station);
            list.push(StationSearchItem {
                id: station.id,
                name: station.name,
                status: wire(status)?,
                address: station.address,
                latitude: degrees(station.latitude_e6),
                longitude: degrees(station.longitude_e6),
                distance: distance.map(|d| (d * 10.0).round() / 10.0),
                available_ports: available,
                total_ports: total,
                update_time: iso_s(station.updated_at),
            });
        }
        let page = Page { request, total: found.len() as u64, items: list };
        Ok(StationSearchResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: StationSearchData {
                total: page.total as i64,
                page_num: page.request.page as i32,
                page_size: page.request.size as i32,
                pages: page.pages() as i32,
                list: page.items,
            },
        })
    }

    async fn station_or_404(&self, id: &str) -> Result<Station, ChargingError> {
        self.db.charging().station(id).await?.ok_or_else(|| ChargingError::new(2001, "充电站不存在"))
    }

    /// operationId `station_get` (003 §2.2): the station and its piles.
    pub async fn station_get(&self, id: &str) -> Result<StationDetailResponse, ChargingError> {
        let station = self.station_or_404(id).await?;
        let stock = self.stock(std::slice::from_ref(&station.id)).await?;
        let (available, total) = stock.counts(&station);
        let mut piles = Vec::new();
        for pile in stock.piles_of(&station.id) {
            let ports = stock.ports_of(&pile.id);
            piles.push(StationPileSummary {
                id: pile.id.clone(),
                pile_no: pile.pile_no.clone(),
                pile_type: wire(pile.pile_type)?,
                status: wire(pile_status_at(Some(&station), pile, &ports))?,
                power_rate: kw(pile.power_rate_w),
                total_ports: ports.len() as i32,
                available_ports: available_at(Some(&station), pile, &ports),
            });
        }
        Ok(StationDetailResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: StationDetail {
                id: station.id.clone(),
                name: station.name.clone(),
                status: wire(station_status(&station, &stock.piles_of(&station.id)))?,
                address: station.address.clone(),
                latitude: degrees(station.latitude_e6),
                longitude: degrees(station.longitude_e6),
                description: station.description.clone(),
                available_ports: available,
                total_ports: total,
                piles,
                update_time: iso_s(station.updated_at),
            },
        })
    }

    fn port_brief(pile: &Pile, port: &Port) -> Result<PortBrief, ChargingError> {
        Ok(PortBrief {
            id: port.id.clone(),
            port_no: port.port_no.to_string(),
            port_type: wire(port.port_type)?,
            status: wire(port_status(pile, port))?,
            is_disabled: port.disabled,
        })
    }

    /// operationId `station_pile_list` (003 §3.1): every pile of the station (its `status`
    /// filter on the derived pile status), with the hardware fields.
    pub async fn station_pile_list(&self, station_id: &str, status: Option<i32>) -> Result<StationPileListResponse, ChargingError> {
        let station = self.station_or_404(station_id).await?;
        let stock = self.stock(std::slice::from_ref(&station.id)).await?;
        let mut data = Vec::new();
        for pile in stock.piles_of(&station.id) {
            let ports = stock.ports_of(&pile.id);
            let pile_status = pile_status_at(Some(&station), pile, &ports);
            if status.is_some_and(|s| s != pile_status) {
                continue;
            }
            data.push(StationPile {
                id: pile.id.clone(),
                station_id: pile.station_id.clone(),
                pile_no: pile.pile_no.clone(),
                pile_type: wire(pile.pile_type)?,
                status: wire(pile_status)?,
                power_rate: kw(pile.power_rate_w),
                manufacturer: pile.manufacturer.clone(),
                imei: pile.imei.clone(),
                total_ports: ports.len() as i32,
                floating_power: pile.floating_power_w as f64,
                auto_stop_enabled: pile.auto_stop_enabled,
                plugin_wait_time: pile.plugin_wait_seconds,
                removal_wait_time: pile.removal_wait_seconds,
                supports_new_protocol: pile.supports_new_protocol,
                protocol_version: pile.protocol_version.clone(),
                software_version: pile.software_version.clone(),
                hardware_version: pile.hardware_version.clone(),
                ccid: pile.ccid.clone(),
                voltage: pile.rated_voltage.clone(),
                ampere_value: pile.rated_ampere.clone(),
                online_status: wire(i32::from(pile.online))?,
                signal_strength: pile.signal_strength,
                temperature: scaled(pile.temperature_dc, 10),
                last_heartbeat_time: iso_s(pile.last_heartbeat_at.unwrap_or(pile.updated_at)),
                installation_date: pile.installation_date.clone(),
                last_maintenance_date: pile.last_maintenance_date.clone(),
                description: pile.description.clone(),
                update_time: iso_s(pile.updated_at),
                available_ports: available_at(Some(&station), pile, &ports),
                ports: ports.iter().map(|p| Self::port_brief(pile, p)).collect::<Result<_, _>>()?,
            });
        }
        Ok(StationPileListResponse { code: ok()?, message: "获取成功".into(), data })
    }

    /// Ask the charger about every port of `pile` and store what it says: the connection
    /// (online, heartbeat), each port's reading and fault, and — through the order sync — the
    /// live order on a port. A charger that does not answer leaves the stored readings and marks
    /// the pile offline. A session the charger runs for no live order is stopped
    /// ([`ChargingService::stop_orphan`]). Answers the pile and ports as stored afterwards, with
    /// the readings.
    pub(super) async fn refresh_pile(&self, pile: &Pile) -> Result<(Pile, Vec<(Port, Option<Reading>)>), ChargingError> {
        let store = self.db.charging();
        let ports = store.ports_of(Some(std::slice::from_ref(&pile.id))).await?;
        let now = self.clock.now_ms();
        let mut readings = Vec::with_capacity(ports.len());
        let mut answered = false;
        for port in &ports {
            match self.driver.read(&pile.device_address, port.port_no).await {
                Ok(reading) => {
                    answered |= reading.online;
                    let fault = match reading.state {
                        PortState::Fault(fault_type) => Some(fault_type.max(1)),
                        _ if port.status == 3 => Some(0),
                        _ => None,
                    };
                    let live = matches!(reading.state, PortState::Starting | PortState::Charging);
                    let values = PortReading {
                        voltage_dv: if live { reading.voltage_dv } else { 0 },
                        current_ca: if live { reading.current_ca } else { 0 },
                        power_w: if live { reading.power_w } else { 0 },
                        temperature_dc: reading.temperature_dc,
                        energy_wh: if port.current_order_id.is_some() { reading.energy_wh } else { 0 },
                    };
                    store.set_port_reading(&port.id, &values, fault, now).await?;
                    readings.push(Some(reading));
                }
                Err(DriverError::Offline | DriverError::Timeout | DriverError::UnknownDevice) => readings.push(None),
                Err(error) => return Err(error.into()),
            }
        }
        store.set_online(&pile.id, answered, answered.then_some(now)).await?;
        for (port, reading) in ports.iter().zip(&readings) {
            if let Some(reading) = reading
                && let Err(error) = self.stop_orphan(pile, port, reading).await
            {
                // Best effort: the pile's live orders, and the sweep's other piles, go on; the
                // next look at the pile tries again.
                tracing::warn!(api = "charging", device = pile.device_address, port = port.port_no, %error, "stopping a session of no live order failed");
            }
        }
        for port in &ports {
            if let Some(order_id) = &port.current_order_id
                && let Some(order) = store.order(order_id).await?
            {
                self.sync(order).await?;
            }
        }
        let pile = store.pile(&pile.id).await?.ok_or_else(|| ChargingError::new(2002, "充电桩不存在"))?;
        let ports = store.ports_of(Some(std::slice::from_ref(&pile.id))).await?;
        Ok((pile, ports.into_iter().zip(readings).collect()))
    }

    /// Stop the session `reading` shows on `port` when it belongs to no live order: an order
    /// that ended while its charger was silent (after [`super::service::LOST_AFTER`]) or was
    /// cancelled as a start reached the charger. It holds a port the server shows as free (a
    /// new order's start would meet 5003). A session of a live order is left alone, whatever
    /// the port's stored order: an ended order never turns live again, so this cannot stop a
    /// session being started. What the session delivered after its order ended while the
    /// charger was silent — read here, running or ended — is billed to that order
    /// ([`ChargingService::bill_final_reading`]).
    async fn stop_orphan(&self, pile: &Pile, port: &Port, reading: &Reading) -> Result<(), ChargingError> {
        let running = matches!(reading.state, PortState::Starting | PortState::Charging);
        let Some(session) = reading.order_id.as_deref() else {
            return Ok(());
        };
        // An ended session of the port's last order may carry a final reading its bill lacks;
        // any other ended session is none of ours to look at.
        if !running && port.last_order_id.as_deref() != Some(session) {
            return Ok(());
        }
        let order = self.db.charging().order(session).await?;
        if order.as_ref().is_some_and(|order| super::orders::status::is_live(order.status)) {
            return Ok(());
        }
        let mut last = std::borrow::Cow::Borrowed(reading);
        if running {
            tracing::warn!(api = "charging", device = pile.device_address, port = port.port_no, session, "the charger runs a session of no live order; stopping it");
            match self.driver.stop(&pile.device_address, port.port_no, session, StopReason::Other).await {
                // Ended by itself meanwhile.
                Ok(()) | Err(DriverError::NotCharging) => {}
                Err(error) => return Err(error.into()),
            }
            // The session's final reading, as it stopped.
            if let Ok(after) = self.driver.read(&pile.device_address, port.port_no).await
                && after.order_id.as_deref() == Some(session)
            {
                last = std::borrow::Cow::Owned(after);
            }
        }
        // A session of an order we never had (a database restored, a start from elsewhere) is
        // stopped and billed to nobody.
        if let Some(order) = order {
            self.bill_final_reading(&order, &last).await?;
        }
        Ok(())
    }

    async fn pile_or_404(&self, id: &str) -> Result<Pile, ChargingError> {
        self.db.charging().pile(id).await?.ok_or_else(|| ChargingError::new(2002, "充电桩不存在"))
    }

    /// The pile at `device_address` (2002 when none).
    pub(super) async fn pile_at(&self, device_address: &str) -> Result<Pile, ChargingError> {
        self.db.charging().pile_by_device(device_address).await?.ok_or_else(|| ChargingError::new(2002, "充电桩不存在"))
    }

    /// operationId `pile_get` (003 §3.2 获取充电桩详情): the pile with each port's live reading.
    pub async fn pile_get(&self, id: &str) -> Result<PileDetailResponse, ChargingError> {
        let pile = self.pile_or_404(id).await?;
        let (pile, ports) = self.refresh_pile(&pile).await?;
        let station = self.db.charging().station(&pile.station_id).await?;
        let refs: Vec<&Port> = ports.iter().map(|(p, _)| p).collect();
        let status = pile_status_at(station.as_ref(), &pile, &refs);
        Ok(PileDetailResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: PileDetail {
                id: pile.id.clone(),
                station_id: pile.station_id.clone(),
                station_name: station.map(|s| s.name).unwrap_or_default(),
                pile_no: pile.pile_no.clone(),
                pile_type: wire(pile.pile_type)?,
                status: wire(status)?,
                power_rate: kw(pile.power_rate_w),
                manufacturer: pile.manufacturer.clone(),
                total_ports: ports.len() as i32,
                online_status: wire(i32::from(pile.online))?,
                signal_strength: pile.signal_strength,
                temperature: scaled(pile.temperature_dc, 10),
                last_heartbeat_time: iso_s(pile.last_heartbeat_at.unwrap_or(pile.updated_at)),
                ports: ports
                    .iter()
                    .map(|(port, _)| {
                        Ok(PileDetailPort {
                            id: port.id.clone(),
                            port_no: port.port_no.to_string(),
                            port_type: wire(port.port_type)?,
                            status: wire(port_status(&pile, port))?,
                            voltage: scaled(port.voltage_dv, 10),
                            current_ampere: scaled(port.current_ca, 100),
                            power: scaled(port.power_w, 1000),
                            temperature: scaled(port.temperature_dc, 10),
                            electricity: kwh_f64(port.energy_wh),
                            is_disabled: port.disabled,
                        })
                    })
                    .collect::<Result<_, ChargingError>>()?,
                update_time: iso_s(pile.updated_at),
            },
        })
    }

    /// operationId `pile_qrcode_get` (003 §3.2 扫码获取充电桩信息): the pile a QR code names — its
    /// printed code, pile id, device address or IMEI, or a URL whose last path segment or
    /// `code`/`pileId` query value is one of those.
    pub async fn pile_qrcode_get(&self, code: &str) -> Result<PileQrcodeResponse, ChargingError> {
        let code = code.trim();
        let mut candidates = vec![code.to_owned()];
        if let Ok(url) = reqwest::Url::parse(code) {
            candidates.extend(url.query_pairs().filter(|(k, _)| k == "code" || k == "pileId").map(|(_, v)| v.into_owned()));
            if let Some(last) = url.path_segments().and_then(|mut s| s.next_back()).filter(|s| !s.is_empty()) {
                candidates.push(last.to_owned());
            }
        }
        let mut found = None;
        for candidate in candidates.iter().filter(|c| !c.is_empty() && c.len() <= 256) {
            if let Some(pile) = self.db.charging().pile_by_code(candidate).await? {
                found = Some(pile);
                break;
            }
        }
        let pile = found.ok_or_else(|| ChargingError::new(2002, "充电桩不存在：无法识别的二维码"))?;
        let (pile, ports) = self.refresh_pile(&pile).await?;
        let station = self.db.charging().station(&pile.station_id).await?;
        let refs: Vec<&Port> = ports.iter().map(|(p, _)| p).collect();
        let status = pile_status_at(station.as_ref(), &pile, &refs);
        Ok(PileQrcodeResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: PileQrcodeData {
                id: pile.id.clone(),
                station_id: pile.station_id.clone(),
                station_name: station.map(|s| s.name).unwrap_or_default(),
                pile_no: pile.pile_no.clone(),
                pile_type: wire(pile.pile_type)?,
                status: wire(status)?,
                power_rate: kw(pile.power_rate_w),
                device_address: pile.device_address.clone(),
                ports: refs.iter().map(|p| Self::port_brief(&pile, p)).collect::<Result<_, _>>()?,
            },
        })
    }

    /// operationId `port_list` (003 §4.1): the ports of a pile (2002 when no such pile), or of
    /// every pile.
    pub async fn port_list(&self, pile_id: Option<&str>) -> Result<PortListResponse, ChargingError> {
        let store = self.db.charging();
        let (piles, ports) = match pile_id {
            Some(id) => {
                let pile = self.pile_or_404(id).await?;
                let ports = store.ports_of(Some(std::slice::from_ref(&pile.id))).await?;
                (vec![pile], ports)
            }
            None => (store.all_piles().await?, store.ports_of(None).await?),
        };
        let piles: HashMap<&str, &Pile> = piles.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut data = Vec::with_capacity(ports.len());
        for port in &ports {
            let Some(pile) = piles.get(port.pile_id.as_str()) else { continue };
            data.push(PortListItem {
                id: port.id.clone(),
                pile_id: pile.id.clone(),
                pile_no: pile.pile_no.clone(),
                port_no: port.port_no.to_string(),
                port_type: wire(port.port_type)?,
                status: wire(port_status(*pile, port))?,
                current_order_id: port.current_order_id.clone(),
                total_charging_times: port.total_times,
                total_charging_duration: port.total_seconds,
                total_power_consumption: kwh_f64(port.total_wh),
            });
        }
        Ok(PortListResponse { code: ok()?, message: "获取成功".into(), data })
    }

    /// operationIds `port_get` and `port_status_get` (003 §4.2): the port with its live reading.
    pub async fn port_detail(&self, id: &str) -> Result<PortDetailResponse, ChargingError> {
        let store = self.db.charging();
        let port = store.port(id).await?.ok_or_else(|| ChargingError::new(2003, "充电端口不存在"))?;
        let pile = self.pile_or_404(&port.pile_id).await?;
        let (pile, ports) = self.refresh_pile(&pile).await?;
        let port = ports.into_iter().map(|(p, _)| p).find(|p| p.id == id).ok_or_else(|| ChargingError::new(2003, "充电端口不存在"))?;
        Ok(PortDetailResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: PortDetail {
                id: port.id.clone(),
                pile_id: pile.id.clone(),
                pile_no: pile.pile_no.clone(),
                port_no: port.port_no.to_string(),
                port_type: wire(port.port_type)?,
                status: wire(port_status(&pile, &port))?,
                fault_type: wire(if port.status == 3 { port.fault_type.clamp(1, 2) } else { 0 })?,
                is_disabled: port.disabled,
                current_order_id: port.current_order_id.clone(),
                last_order_id: port.last_order_id.clone(),
                voltage: scaled(port.voltage_dv, 10),
                current_ampere: scaled(port.current_ca, 100),
                power: scaled(port.power_w, 1000),
                temperature: scaled(port.temperature_dc, 10),
                electricity: kwh_f64(port.energy_wh),
                total_charging_times: port.total_times,
                total_charging_duration: port.total_seconds,
                total_power_consumption: kwh_f64(port.total_wh),
                last_check_time: iso_s(port.last_check_at.unwrap_or(port.updated_at)),
                update_time: iso_s(port.updated_at),
            },
        })
    }

    /// Whether a charger that did not answer is connected at all: silent while connected is a
    /// timeout (5002); not connected, it is 离线 (status 0), which §9.3 and §9.6 answer.
    async fn silent_but_connected(&self, device_address: &str) -> Result<bool, ChargingError> {
        Ok(self.driver.connections().await?.iter().any(|c| c.device_address == device_address))
    }

    /// operationId `charging_status_get` (003 §9.3): the device's ports (or the one `portNo`)
    /// as the charger reports them now; a device not connected reads 0 离线 (its ports too,
    /// with the last values stored), one connected but silent 5002.
    pub async fn charging_status_get(&self, device_address: &str, port_no: Option<&str>) -> Result<ChargingStatusResponse, ChargingError> {
        let pile = self.pile_at(device_address).await?;
        let wanted = match port_no {
            Some(no) => Some(no.trim().parse::<i32>().map_err(|_| ChargingError::invalid("portNo须为端口编号，如\"1\""))?),
            None => None,
        };
        let (pile, ports) = self.refresh_pile(&pile).await?;
        if wanted.is_some_and(|no| !ports.iter().any(|(p, _)| p.port_no == no)) {
            return Err(ChargingError::new(2003, "充电端口不存在"));
        }
        if !pile.online && self.silent_but_connected(&pile.device_address).await? {
            return Err(ChargingError::new(5002, "充电桩通信超时：设备未应答"));
        }
        let refs: Vec<&Port> = ports.iter().map(|(p, _)| p).collect();
        Ok(ChargingStatusResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: ChargingStatusData {
                device_address: pile.device_address.clone(),
                status: wire(pile_status(&pile, &refs))?,
                ports: ports
                    .iter()
                    .filter(|(p, _)| wanted.is_none_or(|no| p.port_no == no))
                    .map(|(port, _)| {
                        // Offline: nothing flows that anyone can see.
                        let live = |value: f64| if pile.online { value } else { 0.0 };
                        Ok(ChargingPortStatus {
                            port_no: port.port_no.to_string(),
                            status: wire(port_status(&pile, port))?,
                            voltage: live(scaled(port.voltage_dv, 10)),
                            current_ampere: live(scaled(port.current_ca, 100)),
                            power: live(scaled(port.power_w, 1000)),
                            temperature: scaled(port.temperature_dc, 10),
                            electricity: kwh_f64(port.energy_wh),
                            current_order_id: port.current_order_id.clone(),
                        })
                    })
                    .collect::<Result<_, ChargingError>>()?,
            },
        })
    }

    /// operationId `device_charging_status_get` (003 §9.6): one port as the charger reports it
    /// now (2 is "充电中" here); a device not connected reads 0 离线 with the port's last
    /// stored values, one connected but silent 5002.
    pub async fn device_charging_status_get(&self, device_address: &str, port_no: i32) -> Result<DeviceChargingStatusResponse, ChargingError> {
        let pile = self.pile_at(device_address).await?;
        let (pile, ports) = self.refresh_pile(&pile).await?;
        let (port, reading) = ports.into_iter().find(|(p, _)| p.port_no == port_no).ok_or_else(|| ChargingError::new(2003, "充电端口不存在"))?;
        let Some(reading) = reading else {
            if self.silent_but_connected(&pile.device_address).await? {
                return Err(ChargingError::new(5002, "充电桩通信超时：设备未应答"));
            }
            return Ok(DeviceChargingStatusResponse {
                code: ok()?,
                message: "获取成功".into(),
                data: DeviceChargingStatusData {
                    device_address: pile.device_address.clone(),
                    port: port.port_no,
                    status: wire(0)?,
                    voltage: 0.0,
                    current: 0.0,
                    power: 0.0,
                    temperature: scaled(port.temperature_dc, 10),
                    electricity: kwh_f64(if port.current_order_id.is_some() { port.energy_wh } else { 0 }),
                    charging_time: 0,
                    order_id: port.current_order_id.clone(),
                    update_time: iso_s(port.updated_at),
                },
            });
        };
        let charging_seconds = match (reading.session_started_at, reading.state) {
            (Some(start), PortState::Charging) => (reading.read_at - start) / 1000,
            (Some(start), _) => (reading.session_ended_at.unwrap_or(reading.read_at) - start) / 1000,
            _ => 0,
        };
        let live = matches!(reading.state, PortState::Starting | PortState::Charging);
        Ok(DeviceChargingStatusResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: DeviceChargingStatusData {
                device_address: pile.device_address.clone(),
                port: port.port_no,
                // Here 2 is 充电中 as the charger reports it: a port only held by an order
                // that has not started is 空闲 (with that order's id).
                status: wire(match port_status(&pile, &port) {
                    2 if !live => 1,
                    status => status,
                })?,
                voltage: scaled(port.voltage_dv, 10),
                current: scaled(port.current_ca, 100),
                power: scaled(port.power_w, 1000),
                temperature: scaled(port.temperature_dc, 10),
                electricity: kwh_f64(if live || port.current_order_id.is_some() { reading.energy_wh } else { 0 }),
                charging_time: super::service::seconds_i32(charging_seconds),
                order_id: if live { reading.order_id.clone() } else { port.current_order_id.clone() },
                update_time: iso_s(reading.read_at),
            },
        })
    }

    /// operationId `device_list` (003 §10.1): the devices connected now, with the endpoint the
    /// gateway sees them at.
    pub async fn device_list(&self, _who: &Principal) -> Result<DeviceListResponse, ChargingError> {
        let connections = self.driver.connections().await?;
        Ok(DeviceListResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: connections
                .into_iter()
                .map(|c| ConnectedDevice { imei: c.imei, endpoint: c.endpoint, connect_time: iso_s(c.connected_at) })
                .collect(),
        })
    }

    /// operationId `device_status_get` (003 §10.2): whether the device with `imei` is connected
    /// (an IMEI no pile has: 2002).
    pub async fn device_status_get(&self, imei: &str) -> Result<DeviceStatusResponse, ChargingError> {
        let pile = self.db.charging().pile_by_imei(imei.trim()).await?.ok_or_else(|| ChargingError::new(2002, "充电桩不存在"))?;
        let connection = self.driver.connections().await?.into_iter().find(|c| c.imei == pile.imei);
        Ok(DeviceStatusResponse {
            code: ok()?,
            message: "获取成功".into(),
            data: DeviceConnectionStatus {
                imei: pile.imei.clone(),
                is_connected: connection.is_some(),
                endpoint: connection.map(|c| c.endpoint),
            },
        })
    }

    /// The heartbeat sweep: every pile is online exactly when its device is connected; the
    /// connected ones are read (faults, readings, live orders).
    pub async fn sweep_devices(&self) -> Result<(), ChargingError> {
        let connections = self.driver.connections().await?;
        let store = self.db.charging();
        for pile in store.all_piles().await? {
            let connected = connections.iter().any(|c| c.device_address == pile.device_address);
            if connected {
                self.refresh_pile(&pile).await?;
            } else if pile.online {
                store.set_online(&pile.id, false, None).await?;
            }
        }
        Ok(())
    }
}
