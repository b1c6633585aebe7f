//! The simulated charging piles' tables (003 §9, §10): devices and their ports' sessions; only the simulated charger uses them.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

use super::{Db, StorageError, affected, text_enum, write};

/// The tables as sea-orm entities (see the migration `m20261203_000010_charger_sim`).
#[allow(missing_docs)] // derive-generated items; each entity's module is documented
pub mod entity {
    /// `charger_sim_device`: a simulated pile, its connection and its answering mode.
    pub mod device {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "charger_sim_device")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub device_address: String,
            pub imei: String,
            pub endpoint: String,
            pub ports: i32,
            pub rated_power_w: i64,
            pub voltage_v: i64,
            pub online: bool,
            pub connected_at: i64,
            pub offline_at: Option<i64>,
            pub no_answer: bool,
            pub reject: bool,
            pub created_at: i64,
            pub updated_at: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// `charger_sim_port`: a port's fault and its current or last session.
    pub mod port {
        use sea_orm::entity::prelude::*;

        use super::super::LimitKind;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "charger_sim_port")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub device_address: String,
            #[sea_orm(primary_key, auto_increment = false)]
            pub port: i32,
            pub fault_type: Option<i32>,
            pub order_id: Option<String>,
            pub accepted_at: Option<i64>,
            pub charging_at: Option<i64>,
            pub limit_kind: Option<LimitKind>,
            pub limit_value: i64,
            pub available_fen: i64,
            pub power_w: i64,
            pub time_scale: i32,
            pub ends_at: Option<i64>,
            pub end_reason: Option<i32>,
            pub updated_at: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

use entity::{device, port};

text_enum! {
    /// The kind of limit a simulated session stops at (003 §9.4 chargingMode).
    pub enum LimitKind {
        /// Until the vehicle is full.
        Full = "full",
        /// A number of (simulated) seconds.
        Seconds = "seconds",
        /// An amount of money, fen (the server stops the device).
        Fen = "fen",
        /// An energy, Wh.
        Wh = "wh",
        /// No limit (the server stops the device).
        None = "none",
    }
}

/// A simulated pile as registered (the charging seed's piles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// The device address (003 deviceAddress).
    pub device_address: String,
    /// The communication module's IMEI.
    pub imei: String,
    /// Where it connects from, `IP:port`.
    pub endpoint: String,
    /// How many ports (numbered from 1).
    pub ports: i32,
    /// Rated power of each port, W.
    pub rated_power_w: i64,
    /// Output voltage, V (DC 750, AC 220).
    pub voltage_v: i64,
}

/// A simulated pile's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// What was registered.
    pub device: NewDevice,
    /// Whether it is connected.
    pub online: bool,
    /// When it last connected, ms.
    pub connected_at: i64,
    /// When it went offline, ms (`None` while online).
    pub offline_at: Option<i64>,
    /// Whether it ignores commands and reads (sandbox `no_answer`).
    pub no_answer: bool,
    /// Whether it refuses starts (sandbox `reject`).
    pub reject: bool,
}

/// A session on a port: what the start stored, and its end (scheduled by the limit at start, or
/// written by a stop or an event). The session is live while `ends_at` is `None` or later than now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The order it charges for.
    pub order_id: String,
    /// When the start was accepted, ms.
    pub accepted_at: i64,
    /// When power begins to flow, ms.
    pub charging_at: i64,
    /// The limit's kind.
    pub limit_kind: LimitKind,
    /// The limit's value in its unit (s, fen, Wh; 0 for full and none).
    pub limit_value: i64,
    /// The money the user has, fen.
    pub available_fen: i64,
    /// The rated power the session charges at, W.
    pub power_w: i64,
    /// Simulated seconds per real second.
    pub time_scale: i32,
    /// When the session ends or ended, ms.
    pub ends_at: Option<i64>,
    /// Why (003 §5.4 stopReason code), with `ends_at`.
    pub end_reason: Option<i32>,
}

/// A port's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRow {
    /// The port number, from 1.
    pub port: i32,
    /// The fault the port has (1 保险丝熔断, 2 继电器粘连), if any.
    pub fault_type: Option<i32>,
    /// The current or last session.
    pub session: Option<SessionRow>,
}

impl From<device::Model> for DeviceRow {
    fn from(row: device::Model) -> DeviceRow {
        DeviceRow {
            device: NewDevice {
                device_address: row.device_address,
                imei: row.imei,
                endpoint: row.endpoint,
                ports: row.ports,
                rated_power_w: row.rated_power_w,
                voltage_v: row.voltage_v,
            },
            online: row.online,
            connected_at: row.connected_at,
            offline_at: row.offline_at,
            no_answer: row.no_answer,
            reject: row.reject,
        }
    }
}

impl TryFrom<port::Model> for PortRow {
    type Error = StorageError;

    fn try_from(row: port::Model) -> Result<PortRow, StorageError> {
        let session = match row.order_id {
            None => None,
            Some(order_id) => {
                let corrupt =
                    || StorageError::Corrupt(format!("charger_sim_port {}/{}: a session without its start", row.device_address, row.port));
                Some(SessionRow {
                    order_id,
                    accepted_at: row.accepted_at.ok_or_else(corrupt)?,
                    charging_at: row.charging_at.ok_or_else(corrupt)?,
                    limit_kind: row.limit_kind.ok_or_else(corrupt)?,
                    limit_value: row.limit_value,
                    available_fen: row.available_fen,
                    power_w: row.power_w,
                    time_scale: row.time_scale,
                    ends_at: row.ends_at,
                    end_reason: row.end_reason,
                })
            }
        };
        Ok(PortRow { port: row.port, fault_type: row.fault_type, session })
    }
}

/// A session is live (Starting or Charging) at `now`: one exists and it has not ended yet.
fn live(now: i64) -> Condition {
    Condition::all()
        .add(port::Column::OrderId.is_not_null())
        .add(Condition::any().add(port::Column::EndsAt.is_null()).add(port::Column::EndsAt.gt(now)))
}

/// The simulated piles' store.
#[derive(Debug, Clone, Copy)]
pub struct ChargerSimStore<'c, C>(pub &'c C);

impl Db {
    /// The simulated charging piles' store on the pool.
    pub fn charger_sim(&self) -> ChargerSimStore<'_, sea_orm::DatabaseConnection> {
        ChargerSimStore(self.conn())
    }
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> ChargerSimStore<'_, C> {
    /// Add `spec`, or update what it says of a known device and keep its ports' state; either way
    /// the device is connected afterwards (a device that was offline reconnects at `now`, ms).
    /// Ports `1..=spec.ports` exist afterwards. Two instances registering at once both succeed.
    pub async fn register(&self, spec: &NewDevice, now: i64) -> Result<(), StorageError> {
        let tx = write(self.0).await?;
        let inserted = device::Entity::insert(device::ActiveModel {
            device_address: Set(spec.device_address.clone()),
            imei: Set(spec.imei.clone()),
            endpoint: Set(spec.endpoint.clone()),
            ports: Set(spec.ports),
            rated_power_w: Set(spec.rated_power_w),
            voltage_v: Set(spec.voltage_v),
            online: Set(true),
            connected_at: Set(now),
            offline_at: Set(None),
            no_answer: Set(false),
            reject: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(OnConflict::column(device::Column::DeviceAddress).do_nothing().to_owned())
        .exec_without_returning(&tx)
        .await?;
        if inserted == 0 {
            device::Entity::update_many()
                .col_expr(device::Column::Imei, Expr::value(spec.imei.clone()))
                .col_expr(device::Column::Endpoint, Expr::value(spec.endpoint.clone()))
                .col_expr(device::Column::Ports, Expr::value(spec.ports))
                .col_expr(device::Column::RatedPowerW, Expr::value(spec.rated_power_w))
                .col_expr(device::Column::VoltageV, Expr::value(spec.voltage_v))
                .col_expr(device::Column::UpdatedAt, Expr::value(now))
                .filter(device::Column::DeviceAddress.eq(spec.device_address.as_str()))
                .exec(&tx)
                .await?;
            // Only a disconnected device gets a new connection: re-running the seed on a second
            // instance must not move the connection time of a device that stayed connected.
            device::Entity::update_many()
                .col_expr(device::Column::Online, Expr::value(true))
                .col_expr(device::Column::ConnectedAt, Expr::value(now))
                .col_expr(device::Column::OfflineAt, Expr::value(Option::<i64>::None))
                .filter(device::Column::DeviceAddress.eq(spec.device_address.as_str()))
                .filter(device::Column::Online.eq(false))
                .exec(&tx)
                .await?;
        }
        for number in 1..=spec.ports {
            port::Entity::insert(port::ActiveModel {
                device_address: Set(spec.device_address.clone()),
                port: Set(number),
                fault_type: Set(None),
                order_id: Set(None),
                accepted_at: Set(None),
                charging_at: Set(None),
                limit_kind: Set(None),
                limit_value: Set(0),
                available_fen: Set(0),
                power_w: Set(0),
                time_scale: Set(1),
                ends_at: Set(None),
                end_reason: Set(None),
                updated_at: Set(now),
            })
            .on_conflict(OnConflict::columns([port::Column::DeviceAddress, port::Column::Port]).do_nothing().to_owned())
            .exec_without_returning(&tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The device at `device_address`.
    pub async fn device(&self, device_address: &str) -> Result<Option<DeviceRow>, StorageError> {
        Ok(device::Entity::find_by_id(device_address.to_owned()).one(self.0).await?.map(DeviceRow::from))
    }

    /// Every connected device, by address.
    pub async fn online_devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        Ok(device::Entity::find()
            .filter(device::Column::Online.eq(true))
            .order_by_asc(device::Column::DeviceAddress)
            .all(self.0)
            .await?
            .into_iter()
            .map(DeviceRow::from)
            .collect())
    }

    /// Port `number` of `device_address`.
    pub async fn port(&self, device_address: &str, number: i32) -> Result<Option<PortRow>, StorageError> {
        port::Entity::find_by_id((device_address.to_owned(), number)).one(self.0).await?.map(PortRow::try_from).transpose()
    }

    /// Every port of `device_address`, by number.
    pub async fn ports(&self, device_address: &str) -> Result<Vec<PortRow>, StorageError> {
        port::Entity::find()
            .filter(port::Column::DeviceAddress.eq(device_address))
            .order_by_asc(port::Column::Port)
            .all(self.0)
            .await?
            .into_iter()
            .map(PortRow::try_from)
            .collect()
    }

    /// Store `session` on the port if, at `now` (ms), the port has no fault and no live session,
    /// and its last session is not of the same order (a repeated start must not charge an order
    /// twice). One conditional `UPDATE`: of concurrent starts exactly one wins, on SQLite and on
    /// PostgreSQL (where the losers re-check the condition on the winner's row). True when stored.
    pub async fn start(&self, device_address: &str, number: i32, session: &SessionRow, now: i64) -> Result<bool, StorageError> {
        let free = Condition::any().add(port::Column::OrderId.is_null()).add(
            Condition::all()
                .add(port::Column::EndsAt.is_not_null())
                .add(port::Column::EndsAt.lte(now))
                .add(port::Column::OrderId.ne(session.order_id.as_str())),
        );
        let updated = port::Entity::update_many()
            .col_expr(port::Column::OrderId, Expr::value(session.order_id.clone()))
            .col_expr(port::Column::AcceptedAt, Expr::value(session.accepted_at))
            .col_expr(port::Column::ChargingAt, Expr::value(session.charging_at))
            .col_expr(port::Column::LimitKind, Expr::value(session.limit_kind.as_str()))
            .col_expr(port::Column::LimitValue, Expr::value(session.limit_value))
            .col_expr(port::Column::AvailableFen, Expr::value(session.available_fen))
            .col_expr(port::Column::PowerW, Expr::value(session.power_w))
            .col_expr(port::Column::TimeScale, Expr::value(session.time_scale))
            .col_expr(port::Column::EndsAt, Expr::value(session.ends_at))
            .col_expr(port::Column::EndReason, Expr::value(session.end_reason))
            .col_expr(port::Column::UpdatedAt, Expr::value(now))
            .filter(port::Column::DeviceAddress.eq(device_address))
            .filter(port::Column::Port.eq(number))
            .filter(port::Column::FaultType.is_null())
            .filter(free)
            .exec(self.0)
            .await?;
        Ok(affected(updated))
    }

    /// End the session live at `now` (ms) on port `number` (every port when `None`), only if it
    /// is of `order_id` when one is given, with stopReason code `reason`. True when one ended.
    pub async fn end_live(
        &self,
        device_address: &str,
        number: Option<i32>,
        order_id: Option<&str>,
        reason: i32,
        now: i64,
    ) -> Result<bool, StorageError> {
        let mut update = port::Entity::update_many()
            .col_expr(port::Column::EndsAt, Expr::value(now))
            .col_expr(port::Column::EndReason, Expr::value(reason))
            .col_expr(port::Column::UpdatedAt, Expr::value(now))
            .filter(port::Column::DeviceAddress.eq(device_address))
            .filter(live(now));
        if let Some(number) = number {
            update = update.filter(port::Column::Port.eq(number));
        }
        if let Some(order_id) = order_id {
            update = update.filter(port::Column::OrderId.eq(order_id));
        }
        Ok(affected(update.exec(self.0).await?))
    }

    /// Port `number` faults with `fault_type` at `now` (ms): its live session ends then with
    /// stopReason code `reason`; both in one transaction, so no start slips in between.
    pub async fn fault(&self, device_address: &str, number: i32, fault_type: i32, reason: i32, now: i64) -> Result<(), StorageError> {
        let tx = write(self.0).await?;
        ChargerSimStore(&tx).end_live(device_address, Some(number), None, reason, now).await?;
        port::Entity::update_many()
            .col_expr(port::Column::FaultType, Expr::value(fault_type))
            .col_expr(port::Column::UpdatedAt, Expr::value(now))
            .filter(port::Column::DeviceAddress.eq(device_address))
            .filter(port::Column::Port.eq(number))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The device disconnects at `now` (ms), if connected: every live session on it ends then
    /// with stopReason code `reason` (visible once it reconnects).
    pub async fn offline(&self, device_address: &str, reason: i32, now: i64) -> Result<(), StorageError> {
        let tx = write(self.0).await?;
        let updated = device::Entity::update_many()
            .col_expr(device::Column::Online, Expr::value(false))
            .col_expr(device::Column::OfflineAt, Expr::value(now))
            .col_expr(device::Column::UpdatedAt, Expr::value(now))
            .filter(device::Column::DeviceAddress.eq(device_address))
            .filter(device::Column::Online.eq(true))
            .exec(&tx)
            .await?;
        if affected(updated) {
            ChargerSimStore(&tx).end_live(device_address, None, None, reason, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The device is back to normal at `now` (ms): connected (a new connection if it was
    /// offline), answering, accepting starts, and no port faulted.
    pub async fn online(&self, device_address: &str, now: i64) -> Result<(), StorageError> {
        let tx = write(self.0).await?;
        device::Entity::update_many()
            .col_expr(device::Column::Online, Expr::value(true))
            .col_expr(device::Column::ConnectedAt, Expr::value(now))
            .col_expr(device::Column::OfflineAt, Expr::value(Option::<i64>::None))
            .filter(device::Column::DeviceAddress.eq(device_address))
            .filter(device::Column::Online.eq(false))
            .exec(&tx)
            .await?;
        device::Entity::update_many()
            .col_expr(device::Column::NoAnswer, Expr::value(false))
            .col_expr(device::Column::Reject, Expr::value(false))
            .col_expr(device::Column::UpdatedAt, Expr::value(now))
            .filter(device::Column::DeviceAddress.eq(device_address))
            .exec(&tx)
            .await?;
        port::Entity::update_many()
            .col_expr(port::Column::FaultType, Expr::value(Option::<i32>::None))
            .col_expr(port::Column::UpdatedAt, Expr::value(now))
            .filter(port::Column::DeviceAddress.eq(device_address))
            .filter(port::Column::FaultType.is_not_null())
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Switch the device to ignoring everything (`no_answer`) or to refusing starts (`reject`),
    /// at `now` (ms); [`ChargerSimStore::online`] switches both back.
    pub async fn set_mode(&self, device_address: &str, no_answer: bool, reject: bool, now: i64) -> Result<(), StorageError> {
        let mut update = device::Entity::update_many().col_expr(device::Column::UpdatedAt, Expr::value(now));
        if no_answer {
            update = update.col_expr(device::Column::NoAnswer, Expr::value(true));
        }
        if reject {
            update = update.col_expr(device::Column::Reject, Expr::value(true));
        }
        update.filter(device::Column::DeviceAddress.eq(device_address)).exec(self.0).await?;
        Ok(())
    }
}
