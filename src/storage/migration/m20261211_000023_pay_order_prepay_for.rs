//! `pay_order.prepay_trade`, `pay_order.prepay_openid`, `pay_order.prepay_trade_at`: how the
//! order's recorded prepay was placed (JSAPI or NATIVE), for which payer, and the `prepay_at` of
//! the placing they describe — so that asking for the pay parameters again answers that prepay
//! while it is valid instead of placing the order with WeChat Pay again. An instance of an
//! earlier version (a rolling upgrade) records a placing without them; its `prepay_at` then
//! differs from `prepay_trade_at`, and the order is placed again, as it was before.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager.alter_table(Table::alter().table("pay_order").add_column(string_len_null("prepay_trade", 16)).to_owned()).await?;
        manager.alter_table(Table::alter().table("pay_order").add_column(string_null("prepay_openid")).to_owned()).await?;
        manager.alter_table(Table::alter().table("pay_order").add_column(big_integer_null("prepay_trade_at")).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("pay_order").drop_column("prepay_trade_at").to_owned()).await?;
        manager.alter_table(Table::alter().table("pay_order").drop_column("prepay_openid").to_owned()).await?;
        manager.alter_table(Table::alter().table("pay_order").drop_column("prepay_trade").to_owned()).await
    }
}
