//! `id_counter`: one row per sequence of ids the server hands out itself (charging's account
//! ids), holding the last id handed out ([`crate::storage::id_counter`]).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(Table::create().table("id_counter").if_not_exists().col(string("id").primary_key()).col(big_integer("last")).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("id_counter").to_owned()).await
    }
}
