//! The charging API's own tables (003): its accounts (WeChat or username/password, balance in
//! fen), stations, piles and ports (the port's `current_order_id` is unique: one live order per
//! port), orders with their tariff snapshot, meter samples and time-of-use bill, order payments,
//! balance recharges, billing rules and the system configuration. Sessions, WeChat identities and
//! WeChat Pay orders live in the shared tables.
//!
//! Times are `BIGINT` ms since the epoch (UTC); money `BIGINT` fen; energy `BIGINT` Wh; power W;
//! voltage 0.1 V; current 0.01 A; temperature 0.1 ℃. Coordinates are GCJ-02 micro-degrees
//! (`BIGINT`, 10⁻⁶ °, about 0.1 m). Rates and percentages are decimal text.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table("charging_user")
                .col(big_integer("id").primary_key())
                .col(string_null("username").unique_key())
                .col(text_null("password_hash"))
                .col(string_null("openid").unique_key())
                .col(string("nickname"))
                .col(string("avatar"))
                .col(integer("gender"))
                .col(string("country"))
                .col(string("province"))
                .col(string("city"))
                .col(string("language"))
                .col(big_integer("balance_fen"))
                .col(big_integer("points"))
                .col(string("role"))
                .col(big_integer_null("last_login_at"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("charging_station")
                .col(string("id").primary_key())
                .col(string("name"))
                .col(string("address"))
                .col(big_integer("latitude_e6"))
                .col(big_integer("longitude_e6"))
                .col(integer("status"))
                .col(text("description"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("charging_pile")
                .col(string("id").primary_key())
                .col(string("station_id"))
                .col(string("pile_no"))
                .col(integer("pile_type"))
                .col(big_integer("power_rate_w"))
                .col(string("manufacturer"))
                .col(string("imei").unique_key())
                .col(string("device_address").unique_key())
                .col(string("qr_code").unique_key())
                .col(string("ccid"))
                .col(big_integer("floating_power_w"))
                .col(boolean("auto_stop_enabled"))
                .col(integer("plugin_wait_seconds"))
                .col(integer("removal_wait_seconds"))
                .col(boolean("supports_new_protocol"))
                .col(string("protocol_version"))
                .col(string("software_version"))
                .col(string("hardware_version"))
                .col(string("rated_voltage"))
                .col(string("rated_ampere"))
                .col(integer("status"))
                .col(boolean("online"))
                .col(integer("signal_strength"))
                .col(big_integer("temperature_dc"))
                .col(big_integer_null("last_heartbeat_at"))
                .col(string("installation_date"))
                .col(string("last_maintenance_date"))
                .col(text("description"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("charging_port")
                .col(string("id").primary_key())
                .col(string("pile_id"))
                .col(integer("port_no"))
                .col(integer("port_type"))
                .col(integer("status"))
                .col(integer("fault_type"))
                .col(boolean("disabled"))
                .col(string_null("current_order_id").unique_key())
                .col(string_null("last_order_id"))
                .col(big_integer("voltage_dv"))
                .col(big_integer("current_ca"))
                .col(big_integer("power_w"))
                .col(big_integer("temperature_dc"))
                .col(big_integer("energy_wh"))
                .col(big_integer("total_times"))
                .col(big_integer("total_seconds"))
                .col(big_integer("total_wh"))
                .col(big_integer_null("last_check_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("charging_order")
                .col(string("id").primary_key())
                .col(string("order_no").unique_key())
                .col(big_integer("user_id"))
                .col(string("pile_id"))
                .col(string("port_id"))
                .col(string("station_name"))
                .col(string("pile_no"))
                .col(integer("port_no"))
                .col(string("device_address"))
                .col(integer("charging_mode"))
                .col(string("charging_parameter"))
                .col(integer("payment_method"))
                .col(integer("status"))
                .col(integer("payment_status"))
                .col(integer("billing_mode"))
                .col(text("tariff"))
                .col(big_integer("limit_fen"))
                .col(big_integer_null("started_at"))
                .col(big_integer_null("ended_at"))
                .col(big_integer("energy_wh"))
                .col(big_integer("charging_seconds"))
                .col(big_integer("power_w"))
                .col(big_integer("voltage_dv"))
                .col(big_integer("current_ca"))
                .col(integer_null("stop_reason"))
                .col(big_integer("sharp_wh"))
                .col(big_integer("sharp_fen"))
                .col(big_integer("peak_wh"))
                .col(big_integer("peak_fen"))
                .col(big_integer("flat_wh"))
                .col(big_integer("flat_fen"))
                .col(big_integer("valley_wh"))
                .col(big_integer("valley_fen"))
                .col(big_integer("deep_valley_wh"))
                .col(big_integer("deep_valley_fen"))
                .col(big_integer("amount_fen"))
                .col(big_integer("service_fee_fen"))
                .col(big_integer("total_fen"))
                .col(big_integer_null("paid_at"))
                .col(string_null("transaction_id"))
                .col(string("remark"))
                .col(big_integer_null("last_read_at"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("charging_meter_sample")
                .col(ColumnDef::new("id").big_integer().not_null().auto_increment().primary_key())
                .col(string("order_id"))
                .col(big_integer("at_ms"))
                .col(big_integer("energy_wh"))
                .col(big_integer("power_w"))
                .to_owned(),
            Table::create()
                .table("charging_payment")
                .col(string("id").primary_key())
                .col(string("order_id"))
                .col(big_integer("user_id"))
                .col(integer("method"))
                .col(integer("status"))
                .col(big_integer("amount_fen"))
                .col(big_integer_null("paid_at"))
                .col(string_null("transaction_id"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("charging_recharge")
                .col(string("id").primary_key())
                .col(big_integer("user_id"))
                .col(integer("method"))
                .col(integer("status"))
                .col(big_integer("amount_fen"))
                .col(big_integer_null("paid_at"))
                .col(string_null("transaction_id"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("charging_billing_rule")
                .col(string("id").primary_key())
                .col(string("name"))
                .col(text("description"))
                .col(integer_null("pile_type"))
                .col(string("service_fee_percent"))
                .col(string_null("flat_rate"))
                .col(text("slots"))
                .col(string("effective_date"))
                .col(boolean("is_active"))
                .col(boolean("is_default"))
                .to_owned(),
            Table::create()
                .table("charging_config")
                .col(integer("id").primary_key())
                .col(text("document"))
                .col(big_integer("updated_at"))
                .to_owned(),
        ];
        for mut table in tables {
            manager.create_table(table.if_not_exists().to_owned()).await?;
        }
        for (name, table, columns, unique) in [
            ("idx_charging_station_position", "charging_station", &["latitude_e6", "longitude_e6"][..], false),
            ("idx_charging_pile_station", "charging_pile", &["station_id"][..], false),
            ("idx_charging_port_pile", "charging_port", &["pile_id", "port_no"][..], true),
            ("idx_charging_order_user", "charging_order", &["user_id", "created_at"][..], false),
            ("idx_charging_order_status", "charging_order", &["status"][..], false),
            ("idx_charging_sample_order", "charging_meter_sample", &["order_id", "at_ms"][..], true),
            ("idx_charging_payment_order", "charging_payment", &["order_id"][..], false),
            ("idx_charging_recharge_user", "charging_recharge", &["user_id"][..], false),
        ] {
            manager.create_index(index(name, table, columns, unique)).await?;
        }
        Ok(())
    }
}
