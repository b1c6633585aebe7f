//! The heating tables as sea-orm entities (see the migration for the column conventions:
//! times in ms since the epoch, money in fen).

#![allow(missing_docs)] // derive-generated items; each entity's module is documented

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
        pub last_login_at: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_sms_code`: One verification code sent (000 §1): stored as a keyed hash, never in clear.
pub mod sms_code {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_sms_code")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub phone: String,
        pub purpose: String,
        pub code_hash: String,
        pub attempts: i32,
        pub created_at: i64,
        pub expires_at: i64,
        pub used_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_sms_throttle`: When a phone was last sent a code (one per minute, 000 §7).
pub mod sms_throttle {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_sms_throttle")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub phone: String,
        pub last_sent_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_session`: A login session: the current refresh token's hash; access tokens name it (`sid`).
pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_session")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub refresh_hash: String,
        pub refresh_expires_at: i64,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_refresh_used`: Refresh tokens already rotated away; presenting one again revokes its session.
pub mod refresh_used {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_refresh_used")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub refresh_hash: String,
        pub session_id: String,
        pub used_at: i64,
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
        pub status: String,
        pub paid_at: Option<i64>,
        pub late_fee_paid_fen: Option<i64>,
        pub order_id: Option<String>,
        pub hold_until: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_order`: A payment order (000 §5.2): its amount in fen, its WeChat Pay state.
pub mod order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_order")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        pub user_id: Option<String>,
        pub heat_account: String,
        pub amount_fen: i64,
        pub status: String,
        pub prepay_id: Option<String>,
        pub transaction_id: Option<String>,
        pub created_at: i64,
        pub expires_at: i64,
        pub paid_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_order_bill`: Which bills an order pays, with the amount and late fee (fen) fixed at order time.
pub mod order_bill {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_order_bill")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub bill_id: String,
        pub amount_fen: i64,
        pub late_fee_fen: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(belongs_to = "super::order::Entity", from = "Column::OrderId", to = "super::order::Column::OrderId")]
        Order,
        #[sea_orm(belongs_to = "super::bill::Entity", from = "Column::BillId", to = "super::bill::Column::BillId")]
        Bill,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// `heating_notification`: Every verified WeChat Pay notify, by its id (dedupe and audit).
pub mod notification {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "heating_notification")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub order_id: String,
        pub event_type: String,
        pub trade_state: String,
        pub outcome: String,
        pub received_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

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
