//! `pay_order.queried_at`: when WeChat Pay was last asked about a pending order, so that a client
//! polling its status makes at most one order query per interval, whichever instance it reaches.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("pay_order").add_column(big_integer_null("queried_at")).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("pay_order").drop_column("queried_at").to_owned()).await
    }
}
