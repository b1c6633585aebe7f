//! `idx_charging_station_band`: the stations by 0.01° latitude band, then longitude, so that the
//! nearby search (003 §2.1) reads only the rows of its box from the index rather than the whole
//! latitude strip.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The band expression is `storage::charging::LAT_BAND_E6`'s; the nearby query uses the same text.
const CREATE: &str = "CREATE INDEX idx_charging_station_band ON charging_station ((latitude_e6 / 10000), longitude_e6, latitude_e6, id)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // An index on an expression: sea-query's index builder names columns only.
        manager.get_connection().execute_unprepared(CREATE).await?;
        // The (latitude, longitude, id) index served the same query by scanning the strip.
        manager.drop_index(Index::drop().name("idx_charging_station_cover").table("charging_station").if_exists().to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(super::index("idx_charging_station_cover", "charging_station", &["latitude_e6", "longitude_e6", "id"], false)).await?;
        manager.drop_index(Index::drop().name("idx_charging_station_band").table("charging_station").if_exists().to_owned()).await
    }
}
