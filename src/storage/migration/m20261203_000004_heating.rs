//! The heating API's own tables (000): users, heat accounts, seasons, bills, the orders that pay
//! bills (each one a `pay_order`), agreements, system configuration. Sessions, codes and payment
//! orders live in the shared identity and payment tables.
//!
//! Times are `BIGINT` ms since the epoch (UTC); money `BIGINT` fen; areas `BIGINT` hundredths of a
//! m².

use sea_orm_migration::{prelude::*, schema::*};

use super::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 8] = [
    "heating_user",
    "heating_account",
    "heating_season",
    "heating_bill",
    "heating_order",
    "heating_order_bill",
    "heating_agreement",
    "heating_config",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table("heating_user")
                .col(string("id").primary_key())
                .col(string_uniq("phone"))
                .col(string("password_hash"))
                .col(string("nickname"))
                .col(string("avatar"))
                .col(string_null("real_name"))
                .col(text_null("id_card_cipher"))
                .col(string_null("id_card_masked"))
                .col(string_null("address"))
                .col(string_null("payer_openid"))
                .col(big_integer_null("last_login_at"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("heating_account")
                .col(string("heat_account").primary_key())
                .col(string("owner_name"))
                .col(string("owner_id_index"))
                .col(text("owner_id_cipher"))
                .col(string("address"))
                .col(big_integer("heating_area_centi"))
                .col(string_null("bound_user_id"))
                .col(big_integer_null("bound_at"))
                .foreign_key(&mut fk("heating_account", "bound_user_id", "heating_user", "id"))
                .to_owned(),
            Table::create()
                .table("heating_season")
                .col(string("season").primary_key())
                .col(big_integer("heating_start"))
                .col(big_integer("heating_end"))
                .col(big_integer("payment_deadline"))
                .to_owned(),
            // `order_id`/`hold_until` mark the order holding an unpaid bill. No foreign key on
            // `order_id`: the claim is written before the order row, so that concurrent claims
            // queue on the bill rows (see the heating store).
            Table::create()
                .table("heating_bill")
                .col(string("bill_id").primary_key())
                .col(string("heat_account"))
                .col(string("heating_season"))
                .col(big_integer("amount_fen"))
                .col(big_integer("bill_date"))
                .col(big_integer("due_date"))
                .col(string_len("status", 16))
                .col(big_integer_null("paid_at"))
                .col(big_integer_null("late_fee_paid_fen"))
                .col(string_null("order_id"))
                .col(big_integer_null("hold_until"))
                .foreign_key(&mut fk("heating_bill", "heat_account", "heating_account", "heat_account"))
                .foreign_key(&mut fk("heating_bill", "heating_season", "heating_season", "season"))
                .to_owned(),
            Table::create()
                .table("heating_order")
                .col(string("out_trade_no").primary_key())
                .col(string("heat_account"))
                .foreign_key(&mut fk("heating_order", "out_trade_no", "pay_order", "out_trade_no"))
                .foreign_key(&mut fk("heating_order", "heat_account", "heating_account", "heat_account"))
                .to_owned(),
            Table::create()
                .table("heating_order_bill")
                .col(string("out_trade_no"))
                .col(string("bill_id"))
                .col(big_integer("amount_fen"))
                .col(big_integer("late_fee_fen"))
                .primary_key(Index::create().col("out_trade_no").col("bill_id"))
                .foreign_key(&mut fk("heating_order_bill", "out_trade_no", "heating_order", "out_trade_no"))
                .foreign_key(&mut fk("heating_order_bill", "bill_id", "heating_bill", "bill_id"))
                .to_owned(),
            Table::create()
                .table("heating_agreement")
                .col(string("kind").primary_key())
                .col(string("title"))
                .col(text("content"))
                .col(string("version"))
                .col(string("updated_at"))
                .to_owned(),
            Table::create()
                .table("heating_config")
                .col(string("key").primary_key())
                .col(text_null("value"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        for index in [
            index("heating_account_bound_user", "heating_account", &["bound_user_id"], true),
            index("heating_bill_account", "heating_bill", &["heat_account"], false),
            index("heating_order_account", "heating_order", &["heat_account"], false),
            index("heating_order_bill_bill", "heating_order_bill", &["bill_id"], false),
        ] {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager.drop_table(Table::drop().table(Alias::new(*table)).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
