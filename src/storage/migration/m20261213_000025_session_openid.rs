//! `session.openid`: the WeChat openid a session was started with, where the API records one
//! (points: its JSAPI orders' payer). Reading it with the session spares every order a read of
//! the WeChat identity. Sessions started before it have none, and their API reads the identity.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("session").add_column(string_null("openid")).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("session").drop_column("openid").to_owned()).await
    }
}
