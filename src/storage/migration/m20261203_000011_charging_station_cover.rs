//! `idx_charging_station_cover`: the stations' position with their id, so that the nearby
//! search's box query (003 §2.1) is answered from the index alone.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(super::index("idx_charging_station_cover", "charging_station", &["latitude_e6", "longitude_e6", "id"], false)).await?;
        // The (latitude, longitude) index is a prefix of the new one.
        manager.drop_index(Index::drop().name("idx_charging_station_position").table("charging_station").if_exists().to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(super::index("idx_charging_station_position", "charging_station", &["latitude_e6", "longitude_e6"], false)).await?;
        manager.drop_index(Index::drop().name("idx_charging_station_cover").table("charging_station").if_exists().to_owned()).await
    }
}
