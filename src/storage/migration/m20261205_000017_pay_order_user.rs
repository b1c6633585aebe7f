//! `idx_pay_order_user`: a user's payment orders by status, for "this user's pending order"
//! (points `create-order` answering the same order twice, heating's live order of a bill set):
//! without it the lookup read every order the user ever placed, slower with each one.

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index("idx_pay_order_user", "pay_order", &["user_id", "status"], false)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_pay_order_user").table("pay_order").to_owned()).await
    }
}
