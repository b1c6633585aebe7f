//! `idx_pay_refund_processing`: refunds by status and age, for the sweep's "refunds of this API
//! still under way" (`PaymentStore::processing_refunds`): without it the sweep started from the
//! API's orders and read every one of them, each tick.

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index("idx_pay_refund_processing", "pay_refund", &["status", "created_at"], false)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_pay_refund_processing").table("pay_refund").to_owned()).await
    }
}
