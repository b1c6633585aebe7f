//! Payment tables shared by every API: orders (each API's own rows point at them),
//! notifications (dedupe and audit), refunds. Money is `BIGINT` fen; times `BIGINT` ms (UTC).

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table("pay_order")
                .col(string("out_trade_no").primary_key())
                .col(string("api"))
                .col(string("appid"))
                .col(string("mchid"))
                .col(string_null("user_id"))
                .col(string_null("payer_openid"))
                .col(string("description"))
                .col(big_integer("amount_fen"))
                .col(string_len("status", 16))
                .col(string_null("prepay_id"))
                .col(big_integer_null("prepay_at"))
                .col(string_null("transaction_id").unique_key())
                .col(big_integer("created_at"))
                .col(big_integer("expires_at"))
                .col(big_integer_null("paid_at"))
                .col(big_integer_null("closed_at"))
                .col(string_len("refund_state", 16))
                .col(string_null("refund_reason"))
                .col(big_integer("refunded_fen"))
                .col(integer("sweep_attempts"))
                .col(big_integer_null("sweep_after"))
                .to_owned(),
            Table::create()
                .table("pay_notification")
                .col(string("id").primary_key())
                .col(string("api"))
                .col(string("out_trade_no"))
                .col(string("event_type"))
                .col(string("outcome"))
                .col(big_integer("received_at"))
                .to_owned(),
            Table::create()
                .table("pay_refund")
                .col(string("out_refund_no").primary_key())
                .col(string("out_trade_no"))
                .col(big_integer("refund_fen"))
                .col(string("reason"))
                .col(string_len("status", 16))
                .col(string_null("refund_id"))
                .col(big_integer("created_at"))
                .col(big_integer_null("finished_at"))
                .foreign_key(ForeignKey::create().from("pay_refund", "out_trade_no").to("pay_order", "out_trade_no"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        for index in [
            index("pay_order_status", "pay_order", &["api", "status", "expires_at"], false),
            index("pay_order_refund", "pay_order", &["api", "refund_state"], false),
            index("pay_notification_received", "pay_notification", &["received_at"], false),
            index("pay_refund_order", "pay_refund", &["out_trade_no"], false),
        ] {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["pay_refund", "pay_notification", "pay_order"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
