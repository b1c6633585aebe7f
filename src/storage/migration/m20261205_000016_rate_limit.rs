//! `rate_limit`: each client's request budget (its GCRA theoretical arrival time) per limit, in
//! the database so that every instance counts against the same budget (issue 17).

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("rate_limit")
                    // The limit (`heating:ip`) and the client it counts (an IP address).
                    .col(string_len("scope", 32))
                    .col(string_len("client", 64))
                    // When the client's budget is whole again, µs since 1970 (UTC): GCRA's
                    // theoretical arrival time of its next request.
                    .col(big_integer("tat_us"))
                    // The newest request time (µs) this budget has counted: instances read
                    // their clocks before they wait for a connection, so requests can reach
                    // the row out of time order; each is counted at no earlier than this.
                    .col(big_integer("seen_us"))
                    .primary_key(Index::create().col("scope").col("client"))
                    .to_owned(),
            )
            .await?;
        // Pruning deletes the rows whose budget is whole again.
        manager.create_index(index("idx_rate_limit_tat", "rate_limit", &["tat_us"], false)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("rate_limit").to_owned()).await
    }
}
