//! `seed_applied`: which seed sets a database has received (`heating.reference`,
//! `heating.demo`, …). Inserting the marker is the claim: of two instances starting at once on
//! one database, one seeds and the other finds the marker.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create().table("seed_applied").col(string("name").primary_key()).col(big_integer("applied_at")).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("seed_applied").to_owned()).await
    }
}
