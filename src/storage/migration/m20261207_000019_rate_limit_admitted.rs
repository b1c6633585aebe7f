//! `rate_limit.admitted`: how many requests the budget's last counting admitted. An instance
//! counts the requests of one client that arrive together in one statement
//! (`RateLimitStore::admit` when this migration was written), which may admit only some of them;
//! the statement answers the number through this column, as `RETURNING` sees only the new row.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("rate_limit").add_column(big_integer("admitted").default(1)).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("rate_limit").drop_column("admitted").to_owned()).await
    }
}
