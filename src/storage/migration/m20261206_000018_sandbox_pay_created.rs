//! `idx_sandbox_pay_order_created`, `idx_sandbox_pay_prepay_created`: the sandbox payment
//! platform's orders and prepay ids by age, for the housekeeping that prunes them
//! (`Db::prune_sandbox_pay`): without them each round reads the whole table, which a benchmark's
//! payment flows fill by the hundred thousand.

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index("idx_sandbox_pay_order_created", "sandbox_pay_order", &["created_at"], false)).await?;
        manager.create_index(index("idx_sandbox_pay_prepay_created", "sandbox_pay_prepay", &["created_at"], false)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_sandbox_pay_prepay_created").table("sandbox_pay_prepay").to_owned()).await?;
        manager.drop_index(Index::drop().name("idx_sandbox_pay_order_created").table("sandbox_pay_order").to_owned()).await
    }
}
