//! Identity tables shared by every API: sessions (and rotated refresh tokens), verification
//! codes (and the per-phone send throttle), WeChat users with their sealed session keys.
//!
//! Times are `BIGINT` milliseconds since the Unix epoch (UTC): they compare the same way in SQLite
//! and PostgreSQL.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table("session")
                .col(string("id").primary_key())
                .col(string("api"))
                .col(string("user_id"))
                .col(integer("generation"))
                .col(string_null("refresh_hash").unique_key())
                .col(big_integer("expires_at"))
                .col(big_integer("created_at"))
                .col(big_integer_null("revoked_at"))
                .to_owned(),
            Table::create()
                .table("session_refresh_used")
                .col(string("refresh_hash").primary_key())
                .col(string("session_id"))
                .col(big_integer("used_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("session_refresh_used", "session_id")
                        .to("session", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
            Table::create()
                .table("verification_code")
                .col(big_pk_auto("id"))
                .col(string("api"))
                .col(string("subject"))
                .col(string("phone"))
                .col(string("purpose"))
                .col(string("code_hash"))
                .col(integer("attempts"))
                .col(big_integer("created_at"))
                .col(big_integer("expires_at"))
                .col(big_integer_null("used_at"))
                .to_owned(),
            Table::create()
                .table("code_throttle")
                .col(string("api"))
                .col(string("phone"))
                .col(big_integer("last_sent_at"))
                .primary_key(Index::create().col("api").col("phone"))
                .to_owned(),
            Table::create()
                .table("wechat_identity")
                .col(string("appid"))
                .col(string("openid"))
                .col(string("api"))
                .col(string("user_id"))
                .col(string_null("unionid"))
                .col(text("session_key_cipher"))
                .col(big_integer("session_key_at"))
                .col(big_integer("created_at"))
                .primary_key(Index::create().col("appid").col("openid"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        for index in [
            index("session_user", "session", &["api", "user_id"], false),
            index("verification_code_subject", "verification_code", &["api", "subject", "purpose"], false),
            index("verification_code_phone", "verification_code", &["api", "phone", "created_at"], false),
            index("wechat_identity_user", "wechat_identity", &["api", "user_id"], true),
        ] {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["wechat_identity", "code_throttle", "verification_code", "session_refresh_used", "session"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
