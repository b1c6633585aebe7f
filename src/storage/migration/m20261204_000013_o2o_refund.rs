//! o2o's refund records (004 §订单模块 退款接口: `id` is the record's own number) and one account
//! per openid and appid: an account has at most one openid under each operator's mini-program
//! (`/login` answers 10006 when its phone is bound to another), enforced by a unique index so
//! that two concurrent bindings cannot both win. `o2o_openid.identity_id` becomes `id`, the
//! key column every entity of ours names so. A scene id remembers the one identity that
//! redeemed it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("o2o_refund")
                    .if_not_exists()
                    .col(big_integer("id").primary_key().auto_increment())
                    // One refund per order: the claim is the order's conditional write, this
                    // index the last line.
                    .col(big_integer("order_id").unique_key())
                    .col(string("out_refund_no").unique_key())
                    .col(big_integer("amount_fen"))
                    .col(big_integer("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table("o2o_openid").rename_column("identity_id", "id").to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table("o2o_scene").add_column(string_null("redeemed_by")).to_owned())
            .await?;
        // NULLs are distinct in both SQLite and PostgreSQL: unbound openids do not collide.
        manager.create_index(super::index("idx_o2o_openid_account", "o2o_openid", &["appid", "user_id"], true)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_o2o_openid_account").table("o2o_openid").if_exists().to_owned()).await?;
        manager.alter_table(Table::alter().table("o2o_scene").drop_column("redeemed_by").to_owned()).await?;
        manager.alter_table(Table::alter().table("o2o_openid").rename_column("id", "identity_id").to_owned()).await?;
        manager.drop_table(Table::drop().table("o2o_refund").if_exists().to_owned()).await
    }
}
