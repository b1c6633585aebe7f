//! `sandbox_pay_order.trade_type`: how the sandbox platform's order was first placed (JSAPI or
//! NATIVE). WeChat Pay refuses to place one out_trade_no again with other parameters — another
//! trade type or payer included — and the sandbox now does too. Orders recorded before it have
//! none and are not checked.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("sandbox_pay_order").add_column(string_len_null("trade_type", 16)).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("sandbox_pay_order").drop_column("trade_type").to_owned()).await
    }
}
