//! The sandbox 安防平台 (002 §2.2): people with their ID numbers encrypted and blind-indexed, the
//! houses they are bound to (known by community identifier and building, unit, floor and house
//! numbers, as the platform knows them), and one state row whose `fault` makes every call fail.
//! Kept in the database so that every instance of the server sees the same platform.

use sea_orm_migration::{prelude::*, schema::*};

use super::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 3] = [
    "sandbox_platform_person",
    "sandbox_platform_binding",
    "sandbox_platform_state",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table("sandbox_platform_person")
                .col(string("id").primary_key())
                .col(string("name"))
                .col(text("idcard_cipher"))
                .col(string("idcard_index"))
                .col(string_uniq("phone"))
                .col(string("sex"))
                .col(string("nation"))
                .col(string_null("birth"))
                .col(string("address"))
                .col(big_integer("created_at"))
                .to_owned(),
            Table::create()
                .table("sandbox_platform_binding")
                .col(string("id").primary_key())
                .col(string("person_id"))
                .col(string("community_identifier"))
                .col(big_integer("building_number"))
                .col(big_integer("unit_number"))
                .col(big_integer("floor_number"))
                .col(big_integer("house_number"))
                .col(string("role"))
                .col(string("house_use"))
                .col(string("xingzhi"))
                .col(string("status"))
                .col(string("zhuhu_type"))
                .foreign_key(&mut fk(
                    "sandbox_platform_binding",
                    "person_id",
                    "sandbox_platform_person",
                    "id",
                ))
                .to_owned(),
            Table::create()
                .table("sandbox_platform_state")
                .col(integer("id").primary_key())
                .col(boolean("fault"))
                .col(big_integer("updated_at"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        for index in [
            index(
                "sandbox_platform_person_idcard",
                "sandbox_platform_person",
                &["idcard_index"],
                false,
            ),
            index(
                "sandbox_platform_binding_person",
                "sandbox_platform_binding",
                &["person_id"],
                false,
            ),
            index(
                "sandbox_platform_binding_house",
                "sandbox_platform_binding",
                &[
                    "community_identifier",
                    "building_number",
                    "unit_number",
                    "floor_number",
                    "house_number",
                ],
                false,
            ),
        ] {
            manager.create_index(index).await?;
        }
        // The one state row: the platform answers until the sandbox route says otherwise.
        let state = Query::insert()
            .into_table("sandbox_platform_state")
            .columns(["id", "fault", "updated_at"])
            .values_panic([1.into(), false.into(), 0i64.into()])
            .to_owned();
        manager.exec_stmt(state).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(*table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
