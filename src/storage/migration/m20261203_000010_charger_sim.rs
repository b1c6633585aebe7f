//! The simulated charging piles' tables (003 §9, §10), in the database so that every server instance drives the same piles.

use sea_orm_migration::{prelude::*, schema::*};

use super::fk;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 2] = ["charger_sim_device", "charger_sim_port"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                // A pile: its connection and answering mode (`providers::charger::simulated`).
                .table("charger_sim_device")
                .col(string("device_address").primary_key())
                .col(string("imei"))
                .col(string("endpoint"))
                .col(integer("ports"))
                .col(big_integer("rated_power_w"))
                .col(big_integer("voltage_v"))
                .col(boolean("online"))
                .col(big_integer("connected_at"))
                .col(big_integer_null("offline_at"))
                .col(boolean("no_answer"))
                .col(boolean("reject"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            // One row per port. The session columns describe the current or last session; its
            // end (`ends_at`, `end_reason`) is written at start when a limit schedules it, so a
            // reading needs no background task and no write to see a session finish.
            Table::create()
                .table("charger_sim_port")
                .col(string("device_address"))
                .col(integer("port"))
                .col(integer_null("fault_type"))
                .col(string_null("order_id"))
                .col(big_integer_null("accepted_at"))
                .col(big_integer_null("charging_at"))
                .col(string_len_null("limit_kind", 16))
                .col(big_integer("limit_value"))
                .col(big_integer("available_fen"))
                .col(big_integer("power_w"))
                .col(integer("time_scale"))
                .col(big_integer_null("ends_at"))
                .col(integer_null("end_reason"))
                .col(big_integer("updated_at"))
                .primary_key(Index::create().col("device_address").col("port"))
                .foreign_key(&mut fk(
                    "charger_sim_port",
                    "device_address",
                    "charger_sim_device",
                    "device_address",
                ))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(*table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
