//! The charging API's storage (003): accounts and their balance, the station → pile → port
//! catalogue with its live state, orders (the port claim, meter samples, settlement), payments,
//! recharges (with the [`Settler`] the shared payments block calls), billing rules and the
//! configuration document. Rows are the entity models (plain structs).

pub mod entity;
mod orders;
mod pay;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

pub use entity::billing_rule::Model as BillingRuleRow;
pub use entity::order::Model as Order;
pub use entity::payment::Model as Payment;
pub use entity::pile::Model as Pile;
pub use entity::port::Model as Port;
pub use entity::recharge::Model as Recharge;
pub use entity::station::Model as Station;
pub use entity::user::Model as User;
pub use orders::{Created, Finish, OrderFilter};
pub use pay::{BalancePaid, PlacedPayment, Settler};

use super::id_counter::IdCounters;
use super::{Db, StorageError, affected, contains, is_unique_violation, write};
use entity::*;

/// A station as a list shows it (003 §2.1 `StationNearbyItem`, §2.3), with the state of its
/// piles and ports that availability is derived from ([`ChargingStore::listed_stations`]).
/// Read from a JSON array in column order.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ListedStation {
    /// `charging_station.id`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// GCJ-02 latitude, micro-degrees.
    pub latitude_e6: i64,
    /// GCJ-02 longitude, micro-degrees.
    pub longitude_e6: i64,
    /// The operator's status (1 运营, 2 维护中, 3 故障).
    pub status: i32,
    /// Description.
    pub description: String,
    /// Last change, ms since the epoch (UTC).
    pub updated_at: i64,
    /// Its piles, in no particular order.
    pub piles: Vec<ListedPile>,
}

/// A pile's state in a list: `charging_pile.status` (3 out of order), whether it answers, and its
/// ports.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ListedPile {
    /// `charging_pile.status`.
    pub status: i32,
    /// `charging_pile.online`.
    #[serde(deserialize_with = "int_bool")]
    pub online: bool,
    /// Its ports, in no particular order.
    pub ports: Vec<ListedPort>,
}

/// A port's state in a list.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct ListedPort {
    /// `charging_port.status`.
    pub status: i32,
    /// `charging_port.disabled`.
    #[serde(deserialize_with = "int_bool")]
    pub disabled: bool,
    /// Whether a live order holds it (`current_order_id` set).
    #[serde(deserialize_with = "int_bool")]
    pub occupied: bool,
}

/// The select expression aggregating the stations `s` of a query into the JSON array
/// [`ListedStation`]s are read from (`[]` when there are none): each station's columns, then its
/// piles with their ports.
fn listed_json(backend: sea_orm::DbBackend) -> &'static str {
    match backend {
        sea_orm::DbBackend::Postgres => {
            "CAST(COALESCE(json_agg(json_build_array(s.id, s.name, s.address, s.latitude_e6, s.longitude_e6, s.status, s.description, s.updated_at, \
               (SELECT COALESCE(json_agg(json_build_array(p.status, CAST(p.online AS INT), \
                  (SELECT COALESCE(json_agg(json_build_array(t.status, CAST(t.disabled AS INT), CASE WHEN t.current_order_id IS NULL THEN 0 ELSE 1 END)), '[]') \
                   FROM charging_port t WHERE t.pile_id = p.id))), '[]') \
                FROM charging_pile p WHERE p.station_id = s.id))), '[]') AS TEXT)"
        }
        // A subquery's value loses its JSON subtype: json() gives it back, so that the nested
        // arrays are arrays rather than strings.
        _ => {
            "json_group_array(json_array(s.id, s.name, s.address, s.latitude_e6, s.longitude_e6, s.status, s.description, s.updated_at, \
               json((SELECT json_group_array(json_array(p.status, p.online, \
                  json((SELECT json_group_array(json_array(t.status, t.disabled, t.current_order_id IS NOT NULL)) \
                   FROM charging_port t WHERE t.pile_id = p.id)))) \
                FROM charging_pile p WHERE p.station_id = s.id))))"
        }
    }
}

/// A boolean the database wrote into JSON as 0 or 1.
fn int_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(<i64 as serde::Deserialize>::deserialize(d)? != 0)
}

/// The first user id (the document's examples are 10086 and up).
const FIRST_USER_ID: i64 = 10001;

/// The sequence of account ids ([`crate::storage::id_counter`]).
const USER_IDS: &str = "charging_user";

/// The stations' latitude bands for the nearby search: 10,000 micro-degrees (0.01°, about 1.1 km).
/// The search's copy in memory (`charging::positions`) is sorted by band, then longitude; the
/// index `idx_charging_station_band` (migration `m20261204_000014`) divides the same way, from
/// when the search asked the database for the box.
pub const LAT_BAND_E6: i64 = 10_000;

impl Db {
    /// The charging store over the pool.
    pub fn charging(&self) -> ChargingStore<'_, sea_orm::DatabaseConnection> {
        ChargingStore(self.conn())
    }
}

/// The charging tables, over the pool or a transaction.
#[derive(Debug, Clone, Copy)]
pub struct ChargingStore<'c, C>(pub &'c C);

/// A new account's fields.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Login name (username accounts).
    pub username: Option<String>,
    /// argon2 PHC string (username accounts).
    pub password_hash: Option<String>,
    /// The WeChat openid (WeChat accounts).
    pub openid: Option<String>,
    /// 昵称.
    pub nickname: String,
    /// Avatar URL.
    pub avatar: String,
    /// 0 unknown, 1 male, 2 female.
    pub gender: i32,
    /// Country, province, city, language as WeChat or the user gave them.
    pub country: String,
    /// See `country`.
    pub province: String,
    /// See `country`.
    pub city: String,
    /// See `country`.
    pub language: String,
    /// `user` or `admin` (may drive devices, 003 §9–§10).
    pub role: String,
    /// Opening balance, fen (demo data only).
    pub balance_fen: i64,
}

/// Why an account could not be created.
#[derive(Debug, PartialEq, Eq)]
pub enum NotCreated {
    /// The username is taken (1003).
    UsernameTaken,
    /// An account with this openid exists (a concurrent first login): read it.
    OpenidTaken,
}

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    /// 昵称.
    pub nickname: Option<String>,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// 0/1/2.
    pub gender: Option<i32>,
    /// Country.
    pub country: Option<String>,
    /// Province.
    pub province: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Language.
    pub language: Option<String>,
}

/// A live reading of a port, to store (see `charging::service` for the units' sources).
#[derive(Debug, Clone, Copy, Default)]
pub struct PortReading {
    /// 0.1 V.
    pub voltage_dv: i64,
    /// 0.01 A.
    pub current_ca: i64,
    /// W.
    pub power_w: i64,
    /// 0.1 ℃.
    pub temperature_dc: i64,
    /// Wh of the session on it.
    pub energy_wh: i64,
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> ChargingStore<'_, C> {
    // ---- accounts -------------------------------------------------------------------------

    /// Create an account with the next id of the [`USER_IDS`] sequence (≥ 10001,
    /// [`crate::storage::id_counter`]): accounts created at once, on any instance, each get
    /// their own. An id already in use (a row written with its own id, as the demo data is)
    /// moves the sequence past the largest, and the next is tried.
    pub async fn create_user(&self, new: &NewUser, now: i64) -> Result<Result<User, NotCreated>, StorageError> {
        let ids = IdCounters(self.0);
        for _ in 0..5 {
            let Some(id) = ids.next(USER_IDS).await? else {
                ids.raise(USER_IDS, Ord::max(self.largest_user_id().await?, FIRST_USER_ID - 1)).await?;
                continue;
            };
            let row = user::ActiveModel {
                id: Set(id),
                username: Set(new.username.clone()),
                password_hash: Set(new.password_hash.clone()),
                openid: Set(new.openid.clone()),
                nickname: Set(new.nickname.clone()),
                avatar: Set(new.avatar.clone()),
                gender: Set(new.gender),
                country: Set(new.country.clone()),
                province: Set(new.province.clone()),
                city: Set(new.city.clone()),
                language: Set(new.language.clone()),
                balance_fen: Set(new.balance_fen),
                points: Set(0),
                role: Set(new.role.clone()),
                last_login_at: Set(Some(now)),
                created_at: Set(now),
                updated_at: Set(now),
            };
            match user::Entity::insert(row).exec_without_returning(self.0).await {
                Ok(_) => return Ok(Ok(self.user(id).await?.ok_or_else(|| StorageError::Corrupt("a new user vanished".into()))?)),
                Err(error) if is_unique_violation(&error) => {
                    if let Some(name) = &new.username
                        && self.user_by_username(name).await?.is_some()
                    {
                        return Ok(Err(NotCreated::UsernameTaken));
                    }
                    if let Some(openid) = &new.openid
                        && self.user_by_openid(openid).await?.is_some()
                    {
                        return Ok(Err(NotCreated::OpenidTaken));
                    }
                    // The id was in use: hand out ids above every one that is.
                    ids.raise(USER_IDS, self.largest_user_id().await?).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(StorageError::Corrupt("no free user id after five tries".into()))
    }

    /// The largest account id in use (0 with none).
    async fn largest_user_id(&self) -> Result<i64, StorageError> {
        let largest: Option<i64> =
            user::Entity::find().select_only().column_as(user::Column::Id.max(), "max").into_tuple::<Option<i64>>().one(self.0).await?.flatten();
        Ok(largest.unwrap_or(0))
    }

    /// The account `id`.
    pub async fn user(&self, id: i64) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find_by_id(id).one(self.0).await?)
    }

    /// The account named `username`.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find().filter(user::Column::Username.eq(username)).one(self.0).await?)
    }

    /// The account of WeChat user `openid`.
    pub async fn user_by_openid(&self, openid: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find().filter(user::Column::Openid.eq(openid)).one(self.0).await?)
    }

    /// Change profile fields and/or record a login at `login_at`.
    pub async fn update_profile(&self, id: i64, change: &ProfileChange, login_at: Option<i64>, now: i64) -> Result<bool, StorageError> {
        let mut update = user::Entity::update_many().col_expr(user::Column::UpdatedAt, Expr::value(now));
        macro_rules! set {
            ($field:ident, $column:ident) => {
                if let Some(value) = change.$field.clone() {
                    update = update.col_expr(user::Column::$column, Expr::value(value));
                }
            };
        }
        set!(nickname, Nickname);
        set!(avatar, Avatar);
        set!(gender, Gender);
        set!(country, Country);
        set!(province, Province);
        set!(city, City);
        set!(language, Language);
        if let Some(at) = login_at {
            update = update.col_expr(user::Column::LastLoginAt, Expr::value(at));
        }
        Ok(affected(update.filter(user::Column::Id.eq(id)).exec(self.0).await?))
    }

    // ---- catalogue -------------------------------------------------------------------------

    /// Every station's position, as `(id, latitude_e6, longitude_e6)` in no particular order:
    /// what the radius search's copy in memory is loaded from (`charging::positions`).
    ///
    /// The database aggregates them into one JSON array (`json_group_array` on SQLite,
    /// `json_agg` on PostgreSQL) answered as one row: the driver hands rows over one at a time
    /// (on SQLite, each through its worker thread's channel), which for 10,000 stations cost
    /// several times the query itself.
    pub async fn station_positions(&self) -> Result<Vec<(String, i64, i64)>, StorageError> {
        use sea_orm::{DbBackend, Statement};
        let backend = self.0.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => "SELECT CAST(COALESCE(json_agg(json_build_array(id, latitude_e6, longitude_e6)), '[]') AS TEXT) FROM charging_station",
            _ => "SELECT json_group_array(json_array(id, latitude_e6, longitude_e6)) FROM charging_station",
        };
        let Some(row) = self.0.query_one_raw(Statement::from_string(backend, sql)).await? else {
            return Ok(Vec::new());
        };
        let json: String = row.try_get_by_index(0)?;
        serde_json::from_str(&json).map_err(|e| StorageError::Corrupt(format!("station positions: {e}")))
    }

    /// Stations whose name or address contains `keyword`, as `(id, latitude_e6, longitude_e6)`,
    /// by id.
    pub async fn stations_matching(&self, keyword: &str) -> Result<Vec<(String, i64, i64)>, StorageError> {
        Ok(station::Entity::find()
            .select_only()
            .columns([station::Column::Id, station::Column::LatitudeE6, station::Column::LongitudeE6])
            .filter(
                Condition::any()
                    .add(Expr::col(station::Column::Name).like(contains(keyword)))
                    .add(Expr::col(station::Column::Address).like(contains(keyword))),
            )
            .order_by_asc(station::Column::Id)
            .into_tuple()
            .all(self.0)
            .await?)
    }

    /// The stations `ids` (any order) with their piles and ports, as much of them as a list shows
    /// (003 §2.1, §2.3): one statement answering one JSON document.
    ///
    /// A list page is ten stations with their piles and ports; read as rows (the station, pile
    /// and port tables one by one) it was three statements and forty-odd rows, each handed over
    /// on its own through the SQLite worker thread's channel — most of the nearby search's cost.
    pub async fn listed_stations(&self, ids: &[String]) -> Result<Vec<ListedStation>, StorageError> {
        use sea_orm::{DbBackend, Statement};
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.0.get_database_backend();
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| if backend == DbBackend::Postgres { format!("${n}") } else { format!("?{n}") }).collect();
        let ids_in = placeholders.join(", ");
        let sql = format!("SELECT {} FROM charging_station s WHERE s.id IN ({ids_in})", listed_json(backend));
        let statement = Statement::from_sql_and_values(backend, sql, ids.iter().map(|id| sea_orm::Value::from(id.clone())));
        let Some(row) = self.0.query_one_raw(statement).await? else {
            return Ok(Vec::new());
        };
        let json: String = row.try_get_by_index(0)?;
        serde_json::from_str(&json).map_err(|e| StorageError::Corrupt(format!("listed stations: {e}")))
    }

    /// The station `id`.
    pub async fn station(&self, id: &str) -> Result<Option<Station>, StorageError> {
        Ok(station::Entity::find_by_id(id.to_owned()).one(self.0).await?)
    }

    /// The piles of the stations `ids`, by pile number.
    pub async fn piles_of(&self, station_ids: &[String]) -> Result<Vec<Pile>, StorageError> {
        Ok(pile::Entity::find()
            .filter(pile::Column::StationId.is_in(station_ids.iter().cloned()))
            .order_by_asc(pile::Column::PileNo)
            .all(self.0)
            .await?)
    }

    /// The pile `id`.
    pub async fn pile(&self, id: &str) -> Result<Option<Pile>, StorageError> {
        Ok(pile::Entity::find_by_id(id.to_owned()).one(self.0).await?)
    }

    /// The pile a QR code names: its `qr_code`, or its pile id, device address or IMEI.
    pub async fn pile_by_code(&self, code: &str) -> Result<Option<Pile>, StorageError> {
        Ok(pile::Entity::find()
            .filter(
                Condition::any()
                    .add(pile::Column::QrCode.eq(code))
                    .add(pile::Column::Id.eq(code))
                    .add(pile::Column::DeviceAddress.eq(code))
                    .add(pile::Column::Imei.eq(code)),
            )
            .one(self.0)
            .await?)
    }

    /// The pile at `device_address`.
    pub async fn pile_by_device(&self, device_address: &str) -> Result<Option<Pile>, StorageError> {
        Ok(pile::Entity::find().filter(pile::Column::DeviceAddress.eq(device_address)).one(self.0).await?)
    }

    /// The pile with `imei`.
    pub async fn pile_by_imei(&self, imei: &str) -> Result<Option<Pile>, StorageError> {
        Ok(pile::Entity::find().filter(pile::Column::Imei.eq(imei)).one(self.0).await?)
    }

    /// Every pile (the heartbeat sweep).
    pub async fn all_piles(&self) -> Result<Vec<Pile>, StorageError> {
        Ok(pile::Entity::find().order_by_asc(pile::Column::Id).all(self.0).await?)
    }

    /// The ports of the piles `ids` (all ports when `None`), by pile and number.
    pub async fn ports_of(&self, pile_ids: Option<&[String]>) -> Result<Vec<Port>, StorageError> {
        let mut query = port::Entity::find();
        if let Some(ids) = pile_ids {
            query = query.filter(port::Column::PileId.is_in(ids.iter().cloned()));
        }
        Ok(query.order_by_asc(port::Column::PileId).order_by_asc(port::Column::PortNo).all(self.0).await?)
    }

    /// The port `id`.
    pub async fn port(&self, id: &str) -> Result<Option<Port>, StorageError> {
        Ok(port::Entity::find_by_id(id.to_owned()).one(self.0).await?)
    }

    /// Record whether the device of `pile_id` answers (`heartbeat_at`: when it was last heard).
    pub async fn set_online(&self, pile_id: &str, online: bool, heartbeat_at: Option<i64>) -> Result<(), StorageError> {
        let mut update = pile::Entity::update_many().col_expr(pile::Column::Online, Expr::value(online));
        if let Some(at) = heartbeat_at {
            update = update.col_expr(pile::Column::LastHeartbeatAt, Expr::value(at));
        }
        update.filter(pile::Column::Id.eq(pile_id)).exec(self.0).await?;
        Ok(())
    }

    /// Store a port's live reading (and its fault state when `fault` is given: `Some(0)` clears
    /// a fault, `Some(n)` marks fault type n and status 3).
    pub async fn set_port_reading(&self, port_id: &str, reading: &PortReading, fault: Option<i32>, now: i64) -> Result<(), StorageError> {
        let mut update = port::Entity::update_many()
            .col_expr(port::Column::VoltageDv, Expr::value(reading.voltage_dv))
            .col_expr(port::Column::CurrentCa, Expr::value(reading.current_ca))
            .col_expr(port::Column::PowerW, Expr::value(reading.power_w))
            .col_expr(port::Column::TemperatureDc, Expr::value(reading.temperature_dc))
            .col_expr(port::Column::EnergyWh, Expr::value(reading.energy_wh))
            .col_expr(port::Column::LastCheckAt, Expr::value(now))
            .col_expr(port::Column::UpdatedAt, Expr::value(now));
        match fault {
            Some(0) => {
                // A repaired port is idle again unless an order holds it.
                update = update.col_expr(port::Column::FaultType, Expr::value(0)).col_expr(
                    port::Column::Status,
                    Expr::case(Expr::col(port::Column::CurrentOrderId).is_null(), 1).finally(2).into(),
                );
            }
            Some(fault_type) => {
                update = update.col_expr(port::Column::FaultType, Expr::value(fault_type)).col_expr(port::Column::Status, Expr::value(3));
            }
            None => {}
        }
        update.filter(port::Column::Id.eq(port_id)).exec(self.0).await?;
        Ok(())
    }

    // ---- rules and configuration -------------------------------------------------------------

    /// Every billing rule, the default last.
    pub async fn billing_rules(&self) -> Result<Vec<BillingRuleRow>, StorageError> {
        Ok(billing_rule::Entity::find()
            .order_by_asc(billing_rule::Column::IsDefault)
            .order_by_asc(billing_rule::Column::Id)
            .all(self.0)
            .await?)
    }

    /// The configuration document (JSON), if seeded.
    pub async fn config_document(&self) -> Result<Option<String>, StorageError> {
        Ok(config::Entity::find_by_id(1).one(self.0).await?.map(|row| row.document))
    }

    /// How many stations there are (seeding and the bench generator).
    pub async fn station_count(&self) -> Result<u64, StorageError> {
        Ok(station::Entity::find().count(self.0).await?)
    }
}

/// Rows to seed, inserted in one transaction (each table's rows as models).
#[derive(Debug, Default)]
pub struct Catalogue {
    /// Stations.
    pub stations: Vec<Station>,
    /// Piles.
    pub piles: Vec<Pile>,
    /// Ports.
    pub ports: Vec<Port>,
    /// Billing rules.
    pub rules: Vec<BillingRuleRow>,
    /// The configuration document, JSON.
    pub config: Option<String>,
    /// Accounts (demo users).
    pub users: Vec<User>,
    /// Past orders (demo history).
    pub orders: Vec<Order>,
}

impl Db {
    /// Insert a catalogue in one write transaction (in chunks: SQLite limits a statement's
    /// variables), once per database under the seed marker `seed`: `false` when it was in.
    pub async fn insert_charging_catalogue(&self, seed: &str, catalogue: Catalogue, now: i64) -> Result<bool, StorageError> {
        use sea_orm::IntoActiveModel;
        let tx = write(self.conn()).await?;
        if !super::claim_seed(&tx, seed, now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        macro_rules! insert_all {
            ($rows:expr, $entity:ident) => {
                for chunk in $rows.chunks(200) {
                    $entity::Entity::insert_many(chunk.iter().cloned().map(|row| row.into_active_model()))
                        .exec_without_returning(&tx)
                        .await?;
                }
            };
        }
        insert_all!(catalogue.users, user);
        insert_all!(catalogue.stations, station);
        insert_all!(catalogue.piles, pile);
        insert_all!(catalogue.ports, port);
        insert_all!(catalogue.rules, billing_rule);
        insert_all!(catalogue.orders, order);
        if let Some(document) = catalogue.config {
            config::Entity::insert(config::ActiveModel { id: Set(1), document: Set(document), updated_at: Set(0) })
                .exec_without_returning(&tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
