//! The heating API's tables (000): users, SMS codes, sessions, heat accounts, seasons, bills,
//! orders, notifications, agreements, system configuration.
//!
//! Times are `BIGINT` milliseconds since the Unix epoch (UTC): they compare the same way in SQLite
//! and PostgreSQL. Money is `BIGINT` fen; areas are `BIGINT` hundredths of a m².

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 13] = [
    "heating_user",
    "heating_sms_code",
    "heating_sms_throttle",
    "heating_session",
    "heating_refresh_used",
    "heating_account",
    "heating_season",
    "heating_bill",
    "heating_order",
    "heating_order_bill",
    "heating_notification",
    "heating_agreement",
    "heating_config",
];

fn index(name: &str, table: &str, columns: &[&str], unique: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table.to_owned()).if_not_exists();
    for column in columns {
        index.col(Alias::new(*column));
    }
    if unique {
        index.unique();
    }
    index.to_owned()
}

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
                .col(big_integer_null("last_login_at"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("heating_sms_code")
                .col(big_pk_auto("id"))
                .col(string("phone"))
                .col(string("purpose"))
                .col(string("code_hash"))
                .col(integer("attempts"))
                .col(big_integer("created_at"))
                .col(big_integer("expires_at"))
                .col(big_integer_null("used_at"))
                .to_owned(),
            Table::create()
                .table("heating_sms_throttle")
                .col(string("phone").primary_key())
                .col(big_integer("last_sent_at"))
                .to_owned(),
            Table::create()
                .table("heating_session")
                .col(string("id").primary_key())
                .col(string("user_id"))
                .col(string_uniq("refresh_hash"))
                .col(big_integer("refresh_expires_at"))
                .col(big_integer("created_at"))
                .col(big_integer_null("revoked_at"))
                .to_owned(),
            Table::create()
                .table("heating_refresh_used")
                .col(string("refresh_hash").primary_key())
                .col(string("session_id"))
                .col(big_integer("used_at"))
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
                .to_owned(),
            Table::create()
                .table("heating_season")
                .col(string("season").primary_key())
                .col(big_integer("heating_start"))
                .col(big_integer("heating_end"))
                .col(big_integer("payment_deadline"))
                .to_owned(),
            Table::create()
                .table("heating_bill")
                .col(string("bill_id").primary_key())
                .col(string("heat_account"))
                .col(string("heating_season"))
                .col(big_integer("amount_fen"))
                .col(big_integer("bill_date"))
                .col(big_integer("due_date"))
                .col(string("status"))
                .col(big_integer_null("paid_at"))
                .col(big_integer_null("late_fee_paid_fen"))
                .col(string_null("order_id"))
                .col(big_integer_null("hold_until"))
                .to_owned(),
            Table::create()
                .table("heating_order")
                .col(string("order_id").primary_key())
                .col(string_null("user_id"))
                .col(string("heat_account"))
                .col(big_integer("amount_fen"))
                .col(string("status"))
                .col(string_null("prepay_id"))
                .col(string_null("transaction_id"))
                .col(big_integer("created_at"))
                .col(big_integer("expires_at"))
                .col(big_integer_null("paid_at"))
                .to_owned(),
            Table::create()
                .table("heating_order_bill")
                .col(string("order_id"))
                .col(string("bill_id"))
                .col(big_integer("amount_fen"))
                .col(big_integer("late_fee_fen"))
                .primary_key(Index::create().col("order_id").col("bill_id"))
                .to_owned(),
            Table::create()
                .table("heating_notification")
                .col(string("id").primary_key())
                .col(string("order_id"))
                .col(string("event_type"))
                .col(string("trade_state"))
                .col(string("outcome"))
                .col(big_integer("received_at"))
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
        let indexes = [
            index("heating_sms_code_phone", "heating_sms_code", &["phone", "purpose"], false),
            index("heating_session_user", "heating_session", &["user_id"], false),
            index("heating_account_bound_user", "heating_account", &["bound_user_id"], true),
            index("heating_bill_account", "heating_bill", &["heat_account"], false),
            index("heating_order_account", "heating_order", &["heat_account", "created_at"], false),
            index("heating_order_transaction", "heating_order", &["transaction_id"], true),
        ];
        for index in indexes {
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
