//! `pay_order.prepay_trade`, `pay_order.prepay_openid`: how the order's recorded prepay was
//! placed (JSAPI or NATIVE) and for which payer, so that asking for the pay parameters again
//! answers that prepay while it is valid instead of placing the order with WeChat Pay again.
//! Orders placed before this have neither and are placed again once, as before.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager.alter_table(Table::alter().table("pay_order").add_column(string_len_null("prepay_trade", 16)).to_owned()).await?;
        manager.alter_table(Table::alter().table("pay_order").add_column(string_null("prepay_openid")).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("pay_order").drop_column("prepay_openid").to_owned()).await?;
        manager.alter_table(Table::alter().table("pay_order").drop_column("prepay_trade").to_owned()).await
    }
}
