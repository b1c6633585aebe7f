//! `rate_limit` without `idx_rate_limit_tat`: every counting moves a budget's `tat_us`, so the
//! index made each update a new index entry, and on PostgreSQL never a HOT update (one that
//! leaves the indexes alone and whose dead versions the page itself reclaims): a busy client's
//! row left a dead heap version and two dead index entries per counting until autovacuum came
//! (46,263 updates, none HOT, and a 1.3 MB table for one row after 25 s of a load test), and every
//! counting read past them. Pruning (`RateLimitStore::prune`, once a minute) scans the table
//! instead: it holds only the clients that spent part of their budget within the window.

use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_rate_limit_tat").table("rate_limit").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index("idx_rate_limit_tat", "rate_limit", &["tat_us"], false)).await
    }
}
