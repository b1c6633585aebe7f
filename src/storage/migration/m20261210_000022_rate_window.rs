//! `rate_window` in place of `rate_limit`: each client's admissions within the last window, as
//! counts per slice of the window ([`crate::ratelimit::Window`]), where `rate_limit` kept GCRA's
//! one time, which let a client spend its burst and then the refill: up to twice the documented
//! requests within one window (000 §7: 100 per IP in 15 minutes; a black-box test counted 106 in
//! 61 s). `rate_limit` stays, unused by this version: instances of an earlier version still count
//! in it during a rolling upgrade (each version against its own budgets, rather than the older
//! failing every counting), and this version's pruning empties it
//! ([`crate::storage::rate_limit::RateLimitStore::prune`]).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("rate_window")
                    // The limit (`heating:ip`) and the client it counts (an IP address).
                    .col(string_len("scope", 32))
                    .col(string_len("client", 64))
                    // The admissions within the window, `slice:count` by slice, oldest first
                    // (`crate::ratelimit::Spent`).
                    .col(text("spent"))
                    // The newest request time (µs since 1970, UTC) counted: instances read their
                    // clocks before they wait for a connection, so requests reach the row out of
                    // time order; each is counted at no earlier than this.
                    .col(big_integer("seen_us"))
                    // Moved by every write (a new row's first is its time, µs, never a version
                    // of a row it replaces): a write names the version it read, so of two
                    // instances counting one client at once exactly one writes and the other
                    // reads again.
                    .col(big_integer("version"))
                    // When every admission counted has left the window (µs): pruned after. Not
                    // indexed, so every update leaves the indexes alone (HOT on PostgreSQL);
                    // pruning, once a minute, scans the few rows.
                    .col(big_integer("expires_us"))
                    .primary_key(Index::create().col("scope").col("client"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("rate_window").to_owned()).await
    }
}
