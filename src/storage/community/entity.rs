//! The community API's own tables as sea-orm entities (see the migration for the column
//! conventions: times in ms since the epoch, money in fen, ID numbers encrypted).

#![allow(missing_docs)] // derive-generated items; each entity's module is documented

entity!(
    /// `community_community`: 小区 (2.1.1).
    community, "community_community", i64, false, {
    identifier: String, name: String, pinyin: String, community_type: i32, sort_order: i32,
});
entity!(
    /// `community_building`: 楼栋 (2.1.2).
    building, "community_building", i64, false, {
    community_identifier: String, number: i64, name: String,
});
entity!(
    /// `community_unit`: 单元 (2.1.3).
    unit, "community_unit", i64, false, {
    building_id: i64, community_identifier: String, number: i64, name: String,
});
entity!(
    /// `community_floor`: 楼层 (2.1.4).
    floor, "community_floor", i64, false, {
    unit_id: i64, community_identifier: String, number: i64, name: String,
});
entity!(
    /// `community_house`: 房屋 (2.1.5).
    house, "community_house", i64, false, {
    floor_id: i64, community_identifier: String, number: i64, name: String, house_type: String,
});
entity!(
    /// `community_user`: a mini-program account (1.2.2).
    user, "community_user", String, false, {
    openid: Option<String>, phone: String, name: String, avatar: String,
    verified_phone: Option<String>, created_at: i64, updated_at: i64,
});
entity!(
    /// `community_person`: a person (实有人口); `user_id` set once the person uses the
    /// mini-program (已激活).
    person, "community_person", i64, true, {
    name: String, phone: String, idcard_cipher: String, idcard_digest: String, sex: String,
    birth: Option<String>, nation: String, address: String, zzmm: String, tyjr: i32, dibao: i32,
    shangfang: i32, job: String, company: String, photo_key: Option<String>,
    user_id: Option<String>, created_at: i64, updated_at: i64,
});
entity!(
    /// `community_binding`: a person bound to a house (人员房屋绑定) with the owner's grants.
    binding, "community_binding", i64, true, {
    house_id: i64, person_id: i64, role: String, house_use: String, xingzhi: String,
    house_status: String, zhuhu_type: String, shouquan: bool, charge: bool,
    owner_of: Option<i64>, created_at: i64,
});
entity!(
    /// `community_review`: a submitted form waiting for, or decided by, the 物业端 (审核).
    review, "community_review", i64, true, {
    user_id: String, house_id: i64, kind: String, status: i32, refuse_reason: Option<String>,
    person_id: Option<i64>, choice: Option<i32>, role: String, house_use: String,
    xingzhi: String, house_status: String, zhuhu_type: String,
    name: String, phone: String, idcard_cipher: String, idcard_digest: String, sex: String,
    birth: Option<String>, nation: String, address: String, zzmm: String, tyjr: i32, dibao: i32,
    shangfang: i32, job: String, company: String, photo_key: Option<String>,
    pending_key: Option<String>, created_at: i64, decided_at: Option<i64>,
});
entity!(
    /// `community_fee_order`: a fee on a house or a person (4.1.1).
    fee_order, "community_fee_order", i64, true, {
    number: String, house_id: Option<i64>, user_id: Option<String>, title: String,
    amount_fen: i64, manager: String, remark: Option<String>, extra: Option<String>,
    closed: bool, paid: bool, out_trade_no: Option<String>, claimed_until: Option<i64>,
    paid_at: Option<i64>, created_at: i64,
});

/// `community_owner_check`: the owner an applicant looked up for a house, and when the owner's
/// code was verified.
pub mod owner_check {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "community_owner_check")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub house_id: i64,
        pub owner_phone: String,
        pub looked_up_at: i64,
        pub verified_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `community_bill_order`: which fee orders a bill (a `pay_order`) pays.
pub mod bill_order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "community_bill_order")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub out_trade_no: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
