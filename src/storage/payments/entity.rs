//! The payment tables as sea-orm entities: times in ms since the epoch, money in fen.

#![allow(missing_docs)] // derive-generated items; each entity's module is documented

use crate::storage::text_enum;

text_enum! {
    /// Where a payment order stands.
    pub enum PayStatus {
        /// Waiting for the payer (until `expires_at`).
        Pending = "pending",
        /// Paid: a verified notify or an order query said so.
        Paid = "paid",
        /// Payment failed, or placing the order with WeChat Pay failed.
        Failed = "failed",
        /// Closed unpaid (expired, or replaced).
        Closed = "closed",
    }
}

text_enum! {
    /// How an order was placed with WeChat Pay (its prepay's kind).
    pub enum TradeType {
        /// In the mini-program (`wx.requestPayment`): a prepay_id, for the payer's openid.
        Jsapi = "jsapi",
        /// Scan-to-pay: a `code_url`, for whoever scans it.
        Native = "native",
    }
}

text_enum! {
    /// Where an order's money back stands.
    pub enum RefundState {
        /// Nothing to give back.
        None = "none",
        /// Money was taken that must go back (the API could not apply the payment); not asked yet.
        Needed = "needed",
        /// A refund was asked for and is under way.
        Processing = "processing",
        /// Refunded.
        Refunded = "refunded",
        /// WeChat closed or could not complete the refund: an operator must act.
        Failed = "failed",
    }
}

text_enum! {
    /// Where one refund stands (WeChat Pay v3 refund `status`).
    pub enum RefundRowStatus {
        /// Asked for, not final.
        Processing = "processing",
        /// Done.
        Success = "success",
        /// Closed by WeChat (e.g. stuck more than 7 days).
        Closed = "closed",
        /// The payer's card cannot take it: an operator must act.
        Abnormal = "abnormal",
    }
}

/// `pay_order`: one payment order of any API, its amount and WeChat Pay state. Each API's own
/// rows (heating's bills) point at it by `out_trade_no`.
pub mod order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pay_order")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub out_trade_no: String,
        pub api: String,
        pub appid: String,
        pub mchid: String,
        pub user_id: Option<String>,
        pub payer_openid: Option<String>,
        pub description: String,
        pub amount_fen: i64,
        pub status: super::PayStatus,
        pub prepay_id: Option<String>,
        pub prepay_at: Option<i64>,
        pub prepay_trade: Option<super::TradeType>,
        pub prepay_openid: Option<String>,
        pub prepay_trade_at: Option<i64>,
        pub transaction_id: Option<String>,
        pub created_at: i64,
        pub expires_at: i64,
        pub paid_at: Option<i64>,
        pub closed_at: Option<i64>,
        pub refund_state: super::RefundState,
        pub refund_reason: Option<String>,
        pub refunded_fen: i64,
        pub sweep_attempts: i32,
        pub sweep_after: Option<i64>,
        pub queried_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `pay_notification`: every verified notify (and every order query that settled an order), by
/// its id: dedupe and audit.
pub mod notification {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pay_notification")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub api: String,
        pub out_trade_no: String,
        pub event_type: String,
        pub outcome: String,
        pub received_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `pay_refund`: one refund of an order.
pub mod refund {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pay_refund")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub out_refund_no: String,
        pub out_trade_no: String,
        pub refund_fen: i64,
        pub reason: String,
        pub status: super::RefundRowStatus,
        pub refund_id: Option<String>,
        pub created_at: i64,
        pub finished_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
