//! The sandbox's SMS outbox and payment platform (orders, prepay ids, refunds), in the database so
//! that every instance over it shows the same messages and holds the same orders (issue 17).

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 4] = ["sandbox_sms", "sandbox_pay_order", "sandbox_pay_prepay", "sandbox_pay_refund"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            // A message the sandbox "sent"; newest first is by id. Bounded by the writer: each
            // send deletes the rows beyond the newest `capacity`.
            Table::create()
                .table("sandbox_sms")
                .col(big_pk_auto("id"))
                .col(string_len("api", 16))
                .col(string_len("phone", 16))
                .col(string_len("code", 16))
                .col(string_len("purpose", 32))
                .col(big_integer("sent_at"))
                .to_owned(),
            // An order a sandbox merchant (mchid + appid: one API's or one operator's) holds.
            // `state` changes only by conditional writes; `attempt_id`/`attempt_until` name the
            // payment being delivered and when its claim lapses (a crashed instance's claim
            // must not block the order for ever). `refunded_fen` is the sum of its refunds,
            // raised only `WHERE refunded_fen + refund <= amount_fen`.
            Table::create()
                .table("sandbox_pay_order")
                .col(string_len("mchid", 32))
                .col(string_len("appid", 32))
                .col(string_len("out_trade_no", 32))
                .col(big_integer("amount_fen"))
                .col(text("notify_url"))
                .col(big_integer("time_expire"))
                .col(string_len_null("payer_openid", 128))
                .col(string_len("state", 16))
                .col(string_len_null("transaction_id", 32))
                .col(big_integer_null("success_time"))
                .col(string_len_null("code_url", 64))
                .col(big_integer("refunded_fen"))
                .col(string_len_null("attempt_id", 32))
                .col(big_integer_null("attempt_until"))
                .col(big_integer("created_at"))
                .primary_key(Index::create().col("mchid").col("appid").col("out_trade_no"))
                .to_owned(),
            // What a frontend holds instead of the out_trade_no: a prepay_id, a NATIVE
            // code_url or its `pr` token.
            Table::create()
                .table("sandbox_pay_prepay")
                .col(string_len("mchid", 32))
                .col(string_len("appid", 32))
                .col(string_len("id", 64))
                .col(string_len("out_trade_no", 32))
                .col(big_integer("created_at"))
                .primary_key(Index::create().col("mchid").col("appid").col("id"))
                .to_owned(),
            // A refund, by out_refund_no: the request as first accepted and what it answered.
            Table::create()
                .table("sandbox_pay_refund")
                .col(string_len("mchid", 32))
                .col(string_len("appid", 32))
                .col(string_len("out_refund_no", 64))
                .col(string_len("out_trade_no", 32))
                .col(big_integer("refund_fen"))
                .col(big_integer("total_fen"))
                .col(text_null("reason"))
                .col(text("notify_url"))
                .col(string_len("refund_id", 32))
                .col(string_len("transaction_id", 32))
                .col(big_integer("success_time"))
                .primary_key(Index::create().col("mchid").col("appid").col("out_refund_no"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        // The outbox is read by phone, newest first.
        manager.create_index(index("idx_sandbox_sms_phone", "sandbox_sms", &["phone", "id"], false)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager.drop_table(Table::drop().table(Alias::new(*table)).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
