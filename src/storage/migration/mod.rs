//! Schema migrations (sea-orm-migration), applied in order on every start.

use sea_orm_migration::prelude::*;

mod m20261121_000001_server;
mod m20261203_000001_seed;
mod m20261203_000002_identity;
mod m20261203_000003_payments;
mod m20261203_000004_heating;
mod m20261203_000005_points;
mod m20261203_000006_pay_order_query;
mod m20261203_000007_community;
mod m20261203_000008_security_platform;
mod m20261203_000009_charging;
mod m20261203_000010_charger_sim;
mod m20261203_000011_charging_station_cover;
mod m20261204_000012_o2o;
mod m20261204_000013_o2o_refund;
mod m20261204_000014_charging_station_band;
mod m20261205_000015_sandbox_state;
mod m20261205_000016_rate_limit;
mod m20261205_000017_pay_order_user;
mod m20261206_000018_sandbox_pay_created;
mod m20261207_000019_rate_limit_admitted;
mod m20261208_000020_pay_refund_processing;
mod m20261209_000021_rate_limit_hot;
mod m20261210_000022_rate_window;
mod m20261211_000023_pay_order_prepay_for;
mod m20261212_000024_sandbox_pay_trade;
mod m20261213_000025_session_openid;
mod m20261214_000026_sandbox_pay_first_prepay;
mod m20261215_000027_id_counter;

/// Every migration mpapi has, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_server::Migration),
            Box::new(m20261203_000001_seed::Migration),
            Box::new(m20261203_000002_identity::Migration),
            Box::new(m20261203_000003_payments::Migration),
            Box::new(m20261203_000004_heating::Migration),
            Box::new(m20261203_000005_points::Migration),
            Box::new(m20261203_000006_pay_order_query::Migration),
            Box::new(m20261203_000007_community::Migration),
            Box::new(m20261203_000008_security_platform::Migration),
            Box::new(m20261203_000009_charging::Migration),
            Box::new(m20261203_000010_charger_sim::Migration),
            Box::new(m20261203_000011_charging_station_cover::Migration),
            Box::new(m20261204_000012_o2o::Migration),
            Box::new(m20261204_000013_o2o_refund::Migration),
            Box::new(m20261204_000014_charging_station_band::Migration),
            Box::new(m20261205_000015_sandbox_state::Migration),
            Box::new(m20261205_000016_rate_limit::Migration),
            Box::new(m20261205_000017_pay_order_user::Migration),
            Box::new(m20261206_000018_sandbox_pay_created::Migration),
            Box::new(m20261207_000019_rate_limit_admitted::Migration),
            Box::new(m20261208_000020_pay_refund_processing::Migration),
            Box::new(m20261209_000021_rate_limit_hot::Migration),
            Box::new(m20261210_000022_rate_window::Migration),
            Box::new(m20261211_000023_pay_order_prepay_for::Migration),
            Box::new(m20261212_000024_sandbox_pay_trade::Migration),
            Box::new(m20261213_000025_session_openid::Migration),
            Box::new(m20261214_000026_sandbox_pay_first_prepay::Migration),
            Box::new(m20261215_000027_id_counter::Migration),
        ]
    }
}

/// `CREATE [UNIQUE] INDEX IF NOT EXISTS name ON table (columns)`.
fn index(name: &str, table: &str, columns: &[&str], unique: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Alias::new(table)).if_not_exists();
    for column in columns {
        index.col(Alias::new(*column));
    }
    if unique {
        index.unique();
    }
    index.to_owned()
}

/// A foreign key `from.column → to.to_column`.
fn fk(from: &str, column: &str, to: &str, to_column: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(Alias::new(from), Alias::new(column)).to(Alias::new(to), Alias::new(to_column)).to_owned()
}
