//! `sandbox_pay_order.prepay_id`: the prepay_id the sandbox answered for the JSAPI placing that
//! recorded the order, kept on the order's own row, so that placing writes one row instead of
//! two; the prepay_ids of later placings stay in `sandbox_pay_prepay`. Indexed by prepay_id
//! alone for `/_sandbox/pay/{prepay_id}`.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("sandbox_pay_order").add_column(string_null("prepay_id")).to_owned()).await?;
        manager.create_index(index("idx_sandbox_pay_order_prepay", "sandbox_pay_order", &["prepay_id"], false)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_sandbox_pay_order_prepay").table("sandbox_pay_order").to_owned()).await?;
        manager.alter_table(Table::alter().table("sandbox_pay_order").drop_column("prepay_id").to_owned()).await
    }
}
