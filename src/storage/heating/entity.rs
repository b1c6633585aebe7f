//! The heating API's own tables as sea-orm entities (see the migration for the column
//! conventions: times in ms since the epoch, money in fen).

#![allow(missing_docs)] // derive-generated items; each entity's module is documented

use crate::storage::text_enum;

text_enum! {
    /// Where a bill stands.
    pub enum BillStatus {
        /// Not paid yet (an order may hold it).
        Unpaid = "unpaid",
        /// Paid by an order.
        Paid = "paid",
    }
}

/// `heating_user`: One registered user (000 §2.2).
pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_user")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub phone: String,
        pub password_hash: String,
        pub nickname: String,
        pub avatar: String,
        pub real_name: Option<String>,
        pub id_card_cipher: Option<String>,
        pub id_card_masked: Option<String>,
        pub address: Option<String>,
        pub payer_openid: Option<String>,
        pub last_login_at: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_account`: A heat account (供热账号) and its owner; bound to at most one user.
pub mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_account")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub heat_account: String,
        pub owner_name: String,
        pub owner_id_index: String,
        pub owner_id_cipher: String,
        pub address: String,
        pub heating_area_centi: i64,
        pub bound_user_id: Option<String>,
        pub bound_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_season`: A heating season (`2024-2025`): its heating period and payment deadline.
pub mod season {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_season")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub season: String,
        pub heating_start: i64,
        pub heating_end: i64,
        pub payment_deadline: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_bill`: One season's bill of one account, in fen; `order_id`/`hold_until` mark the order paying it.
pub mod bill {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_bill")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub bill_id: String,
        pub heat_account: String,
        pub heating_season: String,
        pub amount_fen: i64,
        pub bill_date: i64,
        pub due_date: i64,
        pub status: super::BillStatus,
        pub paid_at: Option<i64>,
        pub late_fee_paid_fen: Option<i64>,
        pub order_id: Option<String>,
        pub hold_until: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_order`: which heat account a payment order (`pay_order`) pays bills of.
pub mod order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_order")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub out_trade_no: String,
        pub heat_account: String,
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

/// `heating_order_bill`: Which bills an order pays, with the amount and late fee (fen) fixed at order time.
pub mod order_bill {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_order_bill")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub out_trade_no: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub bill_id: String,
        pub amount_fen: i64,
        pub late_fee_fen: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(belongs_to = "super::order::Entity", from = "Column::OutTradeNo", to = "super::order::Column::OutTradeNo")]
        Order,
        #[sea_orm(belongs_to = "super::bill::Entity", from = "Column::BillId", to = "super::bill::Column::BillId")]
        Bill,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_agreement`: The user agreement and the privacy policy (000 §6.1).
pub mod agreement {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_agreement")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        pub title: String,
        pub content: String,
        pub version: String,
        pub updated_at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_config`: System configuration (000 §6.2) as key/value; `None` is JSON null.
pub mod config {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_config")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
