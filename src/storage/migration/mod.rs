//! Schema migrations (sea-orm-migration), applied in order on every start.

use sea_orm_migration::prelude::*;

mod m20261121_000001_server;
mod m20261121_000002_heating;

/// Every migration mpapi has, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261121_000001_server::Migration), Box::new(m20261121_000002_heating::Migration)]
    }
}
