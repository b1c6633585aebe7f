//! The points API's own tables as sea-orm entities (see the migration for the column
//! conventions: times in ms since the epoch, money in fen).

#![allow(missing_docs)] // derive-generated items; each entity's module is documented

use crate::storage::text_enum;

text_enum! {
    /// Whether an API key may be used (001 §3.4); expiry is read from `expires_at`.
    pub enum KeyStatus {
        /// Usable until it expires.
        Active = "active",
        /// Switched off by its owner.
        Inactive = "inactive",
    }
}

text_enum! {
    /// What a consumption record is.
    pub enum ConsumptionKind {
        /// A debit by a metered call (`points_consume`).
        Consume = "consume",
        /// The balance expired at its year's end.
        Expire = "expire",
    }
}

/// `points_user`: A user of the points API (created at the first WeChat login), the balance and
/// when it expires.
pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "points_user")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub nick_name: String,
        pub avatar_url: String,
        pub phone: Option<String>,
        pub balance: i64,
        pub points_expire_at: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `points_package`: A package of points on sale (001 §2.1).
pub mod package {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "points_package")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub points: i64,
        pub price_fen: i64,
        pub original_price_fen: i64,
        pub is_hot: bool,
        pub description: String,
        pub sort_order: i32,
        pub active: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `points_order`: Which package a payment order buys, with the package as it was when ordered.
pub mod order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "points_order")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub out_trade_no: String,
        pub user_id: String,
        pub package_id: String,
        pub package_name: String,
        pub points: i64,
        pub price_fen: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "crate::storage::payments::entity::order::Entity",
            from = "Column::OutTradeNo",
            to = "crate::storage::payments::entity::order::Column::OutTradeNo"
        )]
        PayOrder,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// `points_api_key`: An API key (001 §3): only a keyed digest of the secret is kept.
pub mod api_key {
    use sea_orm::entity::prelude::*;

    use super::KeyStatus;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "points_api_key")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub name: String,
        pub digest: String,
        pub status: KeyStatus,
        pub created_at: i64,
        pub expires_at: i64,
        pub last_used_at: Option<i64>,
        pub deleted_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `points_consumption`: A consumption record (001 §2.5): a metered debit, or an expiry.
pub mod consumption {
    use sea_orm::entity::prelude::*;

    use super::ConsumptionKind;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "points_consumption")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub kind: ConsumptionKind,
        pub title: String,
        pub description: Option<String>,
        pub points: i64,
        pub consumed_at: i64,
        pub api_key_id: Option<String>,
        pub api_key_name: Option<String>,
        pub idempotency_key: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `points_status`: The one row of system status (001 §4.1), id 1.
pub mod status {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "points_status")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub api_status: String,
        pub message: String,
        pub maintenance: bool,
        pub maintenance_end_time: Option<i64>,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `points_notice`: System notices (001 §4.2), each shown between its start and end.
pub mod notice {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "points_notice")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub content: String,
        pub start_time: i64,
        pub end_time: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
