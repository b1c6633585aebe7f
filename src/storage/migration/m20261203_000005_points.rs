//! The points API's own tables (001): users and their balance, packages, the orders that buy
//! packages (each one a `pay_order`), API keys, consumption records, system status and notices.
//! Sessions, WeChat identities and payment orders live in the shared identity and payment tables.
//!
//! Times are `BIGINT` ms since the epoch (UTC); money `BIGINT` fen; points `BIGINT`.

use sea_orm_migration::{prelude::*, schema::*};

use super::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 7] = [
    "points_user",
    "points_package",
    "points_order",
    "points_api_key",
    "points_consumption",
    "points_status",
    "points_notice",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            // `balance` never goes below zero: every debit is conditional on it (and the check
            // constraint stops a bug from writing one anyway).
            Table::create()
                .table("points_user")
                .col(string("id").primary_key())
                .col(string("nick_name"))
                .col(string("avatar_url"))
                .col(string_null("phone"))
                .col(big_integer("balance").check(Expr::col("balance").gte(0)))
                .col(big_integer_null("points_expire_at"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("points_package")
                .col(string("id").primary_key())
                .col(string("name"))
                .col(big_integer("points"))
                .col(big_integer("price_fen"))
                .col(big_integer("original_price_fen"))
                .col(boolean("is_hot"))
                .col(string("description"))
                .col(integer("sort_order"))
                .col(boolean("active"))
                .to_owned(),
            Table::create()
                .table("points_order")
                .col(string("out_trade_no").primary_key())
                .col(string("user_id"))
                .col(string("package_id"))
                .col(string("package_name"))
                .col(big_integer("points"))
                .col(big_integer("price_fen"))
                .foreign_key(&mut fk(
                    "points_order",
                    "out_trade_no",
                    "pay_order",
                    "out_trade_no",
                ))
                .foreign_key(&mut fk("points_order", "user_id", "points_user", "id"))
                .foreign_key(&mut fk(
                    "points_order",
                    "package_id",
                    "points_package",
                    "id",
                ))
                .to_owned(),
            Table::create()
                .table("points_api_key")
                .col(string("id").primary_key())
                .col(string("user_id"))
                .col(string("name"))
                .col(string_uniq("digest"))
                .col(string_len("status", 16))
                .col(big_integer("created_at"))
                .col(big_integer("expires_at"))
                .col(big_integer_null("last_used_at"))
                .col(big_integer_null("deleted_at"))
                .foreign_key(&mut fk("points_api_key", "user_id", "points_user", "id"))
                .to_owned(),
            Table::create()
                .table("points_consumption")
                .col(string("id").primary_key())
                .col(string("user_id"))
                .col(string_len("kind", 16))
                .col(string("title"))
                .col(string_null("description"))
                .col(big_integer("points"))
                .col(big_integer("consumed_at"))
                .col(string_null("api_key_id"))
                .col(string_null("api_key_name"))
                .col(string_null("idempotency_key"))
                .foreign_key(&mut fk(
                    "points_consumption",
                    "user_id",
                    "points_user",
                    "id",
                ))
                .foreign_key(&mut fk(
                    "points_consumption",
                    "api_key_id",
                    "points_api_key",
                    "id",
                ))
                .to_owned(),
            Table::create()
                .table("points_status")
                .col(integer("id").primary_key())
                .col(string_len("api_status", 16))
                .col(string("message"))
                .col(boolean("maintenance"))
                .col(big_integer_null("maintenance_end_time"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("points_notice")
                .col(string("id").primary_key())
                .col(text("content"))
                .col(big_integer("start_time"))
                .col(big_integer("end_time"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        for index in [
            index("points_order_user", "points_order", &["user_id"], false),
            index("points_api_key_user", "points_api_key", &["user_id"], false),
            index(
                "points_consumption_user",
                "points_consumption",
                &["user_id", "consumed_at"],
                false,
            ),
            // One debit per (user, idempotency key); expiry records have no key (NULLs are
            // distinct in both databases).
            index(
                "points_consumption_idempotency",
                "points_consumption",
                &["user_id", "idempotency_key"],
                true,
            ),
            index(
                "points_user_expiry",
                "points_user",
                &["points_expire_at"],
                false,
            ),
        ] {
            manager.create_index(index).await?;
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
