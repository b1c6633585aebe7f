//! The community API's own tables (002): the address tree (小区→楼栋→单元→楼层→房屋), the
//! mini-program accounts, the people (实有人口) and their bindings to houses (人员房屋绑定), the
//! reviews (审核) of registration forms, owner-consent lookups, fee orders and the bills that pay
//! them. Sessions, WeChat identities, codes and payment orders live in the shared tables.
//!
//! Times are `BIGINT` ms since the epoch (UTC); money `BIGINT` fen. ID numbers are stored
//! encrypted with a keyed blind index (`idcard_digest`) for lookups, never in clear.

use sea_orm_migration::{prelude::*, schema::*};

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 12] = [
    "community_community",
    "community_building",
    "community_unit",
    "community_floor",
    "community_house",
    "community_user",
    "community_person",
    "community_binding",
    "community_review",
    "community_owner_check",
    "community_fee_order",
    "community_bill_order",
];

fn auto_id() -> ColumnDef {
    ColumnDef::new("id").big_integer().not_null().auto_increment().primary_key().to_owned()
}

/// The person columns a review carries as submitted (2.4.1 携带数据).
fn person_columns(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table
        .col(string("name"))
        .col(string("phone"))
        .col(string("idcard_cipher"))
        .col(string("idcard_digest"))
        .col(string("sex"))
        .col(string_null("birth"))
        .col(string("nation"))
        .col(string("address"))
        .col(string("zzmm"))
        .col(integer("tyjr"))
        .col(integer("dibao"))
        .col(integer("shangfang"))
        .col(string("job"))
        .col(string("company"))
        .col(string_null("photo_key"))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut tables = vec![
            Table::create()
                .table("community_community")
                .col(big_integer("id").primary_key())
                .col(string("identifier").unique_key())
                .col(string("name"))
                .col(string("pinyin"))
                .col(integer("community_type"))
                .col(integer("sort_order"))
                .to_owned(),
            Table::create()
                .table("community_building")
                .col(big_integer("id").primary_key())
                .col(string("community_identifier"))
                .col(big_integer("number"))
                .col(string("name"))
                .to_owned(),
            Table::create()
                .table("community_unit")
                .col(big_integer("id").primary_key())
                .col(big_integer("building_id"))
                .col(string("community_identifier"))
                .col(big_integer("number"))
                .col(string("name"))
                .to_owned(),
            Table::create()
                .table("community_floor")
                .col(big_integer("id").primary_key())
                .col(big_integer("unit_id"))
                .col(string("community_identifier"))
                .col(big_integer("number"))
                .col(string("name"))
                .to_owned(),
            Table::create()
                .table("community_house")
                .col(big_integer("id").primary_key())
                .col(big_integer("floor_id"))
                .col(string("community_identifier"))
                .col(big_integer("number"))
                .col(string("name"))
                .col(string("house_type"))
                .to_owned(),
            // A mini-program account: registered by phone (1.2.2), logged in from the WeChat
            // identity it was last registered or logged in from.
            Table::create()
                .table("community_user")
                .col(string("id").primary_key())
                .col(string_null("openid").unique_key())
                .col(string("phone").unique_key())
                .col(string("name"))
                .col(string("avatar"))
                .col(string_null("verified_phone"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
            {
                let mut t = Table::create();
                t.table("community_person").col(auto_id());
                person_columns(&mut t);
                t.col(string_null("user_id").unique_key())
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .to_owned()
            },
            Table::create()
                .table("community_binding")
                .col(auto_id())
                .col(big_integer("house_id"))
                .col(big_integer("person_id"))
                .col(string("role"))
                .col(string("house_use"))
                .col(string("xingzhi"))
                .col(string("house_status"))
                .col(string("zhuhu_type"))
                .col(boolean("shouquan"))
                .col(boolean("charge"))
                // The house, on the one binding that is its owner's (业主): unique, so a house
                // has one owner whatever instance approves what.
                .col(big_integer_null("owner_of").unique_key())
                .col(big_integer("created_at"))
                .to_owned(),
            {
                // `pending_key` is set while a review waits (status 2) and cleared when it is
                // decided: a unique index on it makes "one pending review per account and
                // house" a constraint, whatever instance writes.
                let mut t = Table::create();
                t.table("community_review")
                    .col(auto_id())
                    .col(string("user_id"))
                    .col(big_integer("house_id"))
                    .col(string("kind"))
                    .col(integer("status"))
                    .col(string_null("refuse_reason"))
                    .col(big_integer_null("person_id"))
                    .col(integer_null("choice"))
                    .col(string("role"))
                    .col(string("house_use"))
                    .col(string("xingzhi"))
                    .col(string("house_status"))
                    .col(string("zhuhu_type"));
                person_columns(&mut t);
                t.col(string_null("pending_key").unique_key())
                    .col(big_integer("created_at"))
                    .col(big_integer_null("decided_at"))
                    .to_owned()
            },
            // The owner an applicant looked up for a house (2.2.2), and when the owner's code
            // was verified (2.2.3): owner consent for a 与业主绑定 submission.
            Table::create()
                .table("community_owner_check")
                .col(string("user_id"))
                .col(big_integer("house_id"))
                .col(string("owner_phone"))
                .col(big_integer("looked_up_at"))
                .col(big_integer_null("verified_at"))
                .primary_key(Index::create().col("user_id").col("house_id"))
                .to_owned(),
            // A fee (物业费 …) on a house, or on a person (house_id null). `out_trade_no` is
            // the payment holding it (while `claimed_until` is ahead) or that paid it.
            Table::create()
                .table("community_fee_order")
                .col(auto_id())
                .col(string("number").unique_key())
                .col(big_integer_null("house_id"))
                .col(string_null("user_id"))
                .col(string("title"))
                .col(big_integer("amount_fen").check(Expr::col("amount_fen").gt(0)))
                .col(string("manager"))
                .col(string_null("remark"))
                .col(string_null("extra"))
                .col(boolean("closed"))
                .col(boolean("paid"))
                .col(string_null("out_trade_no"))
                .col(big_integer_null("claimed_until"))
                .col(big_integer_null("paid_at"))
                .col(big_integer("created_at"))
                .to_owned(),
            // Which fee orders a bill (one `pay_order`) pays.
            Table::create()
                .table("community_bill_order")
                .col(string("out_trade_no"))
                .col(big_integer("order_id"))
                .primary_key(Index::create().col("out_trade_no").col("order_id"))
                .to_owned(),
        ];
        for table in &mut tables {
            manager.create_table(table.if_not_exists().to_owned()).await?;
        }
        for (name, table, columns, unique) in [
            ("community_building_parent", "community_building", &["community_identifier"][..], false),
            ("community_unit_parent", "community_unit", &["building_id"][..], false),
            ("community_floor_parent", "community_floor", &["unit_id"][..], false),
            ("community_house_parent", "community_house", &["floor_id"][..], false),
            ("community_person_idcard", "community_person", &["idcard_digest"][..], true),
            ("community_binding_house_person", "community_binding", &["house_id", "person_id"][..], true),
            ("community_binding_person", "community_binding", &["person_id"][..], false),
            ("community_review_user", "community_review", &["user_id"][..], false),
            ("community_review_house", "community_review", &["house_id"][..], false),
            ("community_fee_order_house", "community_fee_order", &["house_id"][..], false),
            ("community_fee_order_user", "community_fee_order", &["user_id"][..], false),
            ("community_bill_order_order", "community_bill_order", &["order_id"][..], false),
        ] {
            manager.create_index(index(name, table, columns, unique)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager.drop_table(Table::drop().table(*table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
