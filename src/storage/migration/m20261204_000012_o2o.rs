//! The o2o API's own tables (004): areas (GB/T 2260, seeded from `data/areas`), accounts (a phone
//! is the account) and the openids bound to them per operator's appid, merchant categories,
//! merchants, goods, orders with their price snapshot, one verify code per unit bought, and the
//! bridge page's scene ids. Sessions, WeChat identities, SMS codes and WeChat Pay orders live in
//! the shared tables.
//!
//! Times are `BIGINT` ms since the epoch (UTC); money `BIGINT` fen; coordinates GCJ-02
//! micro-degrees (`BIGINT`); `business_time` as two `HH:MM:SS` texts.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table("o2o_area")
                .col(big_integer("id").primary_key())
                .col(integer("area_id").unique_key())
                .col(string("name"))
                .col(integer("parent_id"))
                .col(integer("tier"))
                .col(string("initial"))
                .col(big_integer("lng_e6"))
                .col(big_integer("lat_e6"))
                .col(integer("hot_rank"))
                .to_owned(),
            Table::create()
                .table("o2o_user")
                .col(big_integer("id").primary_key())
                .col(string("name"))
                .col(string("mobile").unique_key())
                .col(big_integer("created_at"))
                .to_owned(),
            // One row per (appid, openid) that logged in: the shared WeChat identity's id (the
            // session subject) and, once `/login` bound a phone, the account.
            Table::create()
                .table("o2o_openid")
                .col(string("identity_id").primary_key())
                .col(big_integer("oper_id"))
                .col(string("appid"))
                .col(string("openid"))
                .col(big_integer_null("user_id"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("o2o_category")
                .col(big_integer("id").primary_key())
                .col(big_integer("pid"))
                .col(string("name"))
                .col(string("icon"))
                .col(integer("status"))
                .col(integer("sort"))
                .to_owned(),
            Table::create()
                .table("o2o_merchant")
                .col(big_integer("id").primary_key())
                .col(big_integer("oper_id"))
                .col(big_integer("merchant_category_id"))
                .col(string("name"))
                .col(string("brand"))
                .col(integer("region"))
                .col(string("address"))
                .col(integer("province_id"))
                .col(integer("city_id"))
                .col(integer("area_id"))
                .col(big_integer("lng_e6"))
                .col(big_integer("lat_e6"))
                .col(string("open_time"))
                .col(string("close_time"))
                .col(string("logo"))
                .col(string("desc_pic"))
                .col(text("desc"))
                .col(string("contacter"))
                .col(string("contacter_phone"))
                .col(integer("status"))
                .to_owned(),
            Table::create()
                .table("o2o_goods")
                .col(big_integer("id").primary_key())
                .col(big_integer("oper_id"))
                .col(big_integer("merchant_id"))
                .col(string("name"))
                .col(text("desc"))
                .col(big_integer("market_price_fen"))
                .col(big_integer("price_fen"))
                .col(string("start_date"))
                .col(string("end_date"))
                .col(string("open_time"))
                .col(string("close_time"))
                .col(string("thumb_url"))
                .col(string("pic"))
                .col(text("pic_list"))
                .col(text("buy_info"))
                .col(integer("status"))
                .col(big_integer("sell_number"))
                .to_owned(),
            Table::create()
                .table("o2o_order")
                .col(big_integer("id").primary_key())
                .col(string("order_no").unique_key())
                .col(big_integer("oper_id"))
                .col(big_integer("user_id"))
                .col(string("user_name"))
                .col(string_null("notify_mobile"))
                .col(big_integer("merchant_id"))
                .col(string("merchant_name"))
                .col(big_integer("goods_id"))
                .col(string("goods_name"))
                .col(string("goods_pic"))
                .col(string("goods_thumb_url"))
                .col(big_integer("price_fen"))
                .col(integer("buy_number"))
                .col(big_integer("pay_price_fen"))
                .col(integer("status"))
                .col(big_integer_null("pay_time"))
                .col(big_integer_null("refund_price_fen"))
                .col(big_integer_null("refund_time"))
                // Set by the one refund request that wins (a conditional write): unique.
                .col(string_null("out_refund_no").unique_key())
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            Table::create()
                .table("o2o_verify_code")
                .col(big_integer("id").primary_key().auto_increment())
                .col(big_integer("order_id"))
                .col(string("verify_code").unique_key())
                .col(integer("status"))
                .col(big_integer_null("verified_at"))
                .col(big_integer("created_at"))
                .to_owned(),
            Table::create()
                .table("o2o_scene")
                .col(string("id").primary_key())
                .col(big_integer("oper_id"))
                .col(big_integer("user_id"))
                .col(string("order_no"))
                .col(big_integer("expires_at"))
                .col(big_integer("created_at"))
                .to_owned(),
        ];
        for mut table in tables {
            manager.create_table(table.if_not_exists().to_owned()).await?;
        }
        for (name, table, columns, unique) in [
            ("idx_o2o_area_parent", "o2o_area", &["parent_id"][..], false),
            ("idx_o2o_openid_appid", "o2o_openid", &["appid", "openid"][..], true),
            ("idx_o2o_openid_user", "o2o_openid", &["user_id", "oper_id"][..], false),
            ("idx_o2o_merchant_position", "o2o_merchant", &["lat_e6", "lng_e6", "id"][..], false),
            ("idx_o2o_merchant_city", "o2o_merchant", &["city_id"][..], false),
            ("idx_o2o_goods_merchant", "o2o_goods", &["merchant_id"][..], false),
            ("idx_o2o_order_user", "o2o_order", &["user_id", "created_at"][..], false),
            ("idx_o2o_verify_code_order", "o2o_verify_code", &["order_id"][..], false),
        ] {
            manager.create_index(index(name, table, columns, unique)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["o2o_scene", "o2o_verify_code", "o2o_order", "o2o_goods", "o2o_merchant", "o2o_category", "o2o_openid", "o2o_user", "o2o_area"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
