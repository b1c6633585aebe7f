//! o2o's demo accounts and orders (004 example world): the test user 10086 张伟 with a paid order
//! (two verify codes, one used), a refunded one (its refund record and WeChat Pay refund) and
//! an unpaid one at the other operator (for the bridge page and the scene login). Written once
//! per database, with the shared payment rows each needs.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

use super::entity::*;
use super::orders::{CODE_VERIFIED, Order, UNPAID};
use crate::storage::payments::entity::{order as pay_order, refund as pay_refund};
use crate::storage::payments::{NewPayOrder, PayStatus, PaymentStore, RefundRowStatus, RefundState};
use crate::storage::{Db, StorageError, write};

/// The demo account (004 examples): id, name, phone.
pub const DEMO_USER: (i64, &str, &str) = (10086, "张伟", "13912345678");
/// The demo's paid order (operator 3, two codes, one verified).
pub const DEMO_PAID_ORDER: &str = "020180416193021582734";
/// The demo's refunded order (operator 3).
pub const DEMO_REFUNDED_ORDER: &str = "020180415222010166615";
/// The demo's unpaid order at operator 5 (its payment stays open for a day).
pub const DEMO_UNPAID_ORDER: &str = "020180416194512309817";

/// One demo order with its shared payment (from the operator's `Payments::new_order`) and its
/// verify codes `(id, code, status)`.
pub struct DemoOrder<'a> {
    /// The order row.
    pub order: Order,
    /// Its payment, as placed.
    pub pay: NewPayOrder<'a>,
    /// Its verify codes.
    pub codes: Vec<(i64, &'static str, i32)>,
    /// Its refund: (record id, out_refund_no, WeChat Pay refund id).
    pub refund: Option<(i64, String, &'static str)>,
}

impl Db {
    /// Write the demo account and `orders` once per database (seed marker `o2o.demo`): `false`
    /// when written before.
    pub async fn seed_o2o_demo(&self, orders: Vec<DemoOrder<'_>>, now: i64) -> Result<bool, StorageError> {
        let tx = write(self.conn()).await?;
        if !crate::storage::claim_seed(&tx, "o2o.demo", now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let (id, name, mobile) = DEMO_USER;
        user::Entity::insert(user::ActiveModel { id: Set(id), name: Set(name.into()), mobile: Set(mobile.into()), created_at: Set(now) })
            .exec_without_returning(&tx)
            .await?;
        for demo in orders {
            let order = demo.order;
            PaymentStore(&tx).insert(demo.pay.clone()).await?;
            if order.status != UNPAID {
                let refunded = order.refund_price_fen.unwrap_or(0);
                pay_order::Entity::update_many()
                    .col_expr(pay_order::Column::Status, Expr::value(PayStatus::Paid))
                    .col_expr(pay_order::Column::PaidAt, Expr::value(order.pay_time))
                    .col_expr(pay_order::Column::TransactionId, Expr::value(format!("4200000{}", &order.order_no[1..])))
                    .col_expr(pay_order::Column::RefundState, Expr::value(if refunded > 0 { RefundState::Refunded } else { RefundState::None }))
                    .col_expr(pay_order::Column::RefundedFen, Expr::value(refunded))
                    .filter(pay_order::Column::OutTradeNo.eq(order.order_no.as_str()))
                    .exec(&tx)
                    .await?;
            }
            for (code_id, code, status) in &demo.codes {
                let row = verify_code::ActiveModel {
                    id: Set(*code_id),
                    order_id: Set(order.id),
                    verify_code: Set((*code).into()),
                    status: Set(*status),
                    verified_at: Set((*status == CODE_VERIFIED).then_some(now)),
                    created_at: Set(order.pay_time.unwrap_or(now)),
                };
                verify_code::Entity::insert(row).exec_without_returning(&tx).await?;
            }
            if let Some((refund_id, out_refund_no, wechat_refund_id)) = demo.refund {
                let at = order.refund_time.unwrap_or(now);
                pay_refund::Entity::insert(pay_refund::ActiveModel {
                    out_refund_no: Set(out_refund_no.clone()),
                    out_trade_no: Set(order.order_no.clone()),
                    refund_fen: Set(order.refund_price_fen.unwrap_or(0)),
                    reason: Set("用户申请退款".into()),
                    status: Set(RefundRowStatus::Success),
                    refund_id: Set(Some(wechat_refund_id.into())),
                    created_at: Set(at),
                    finished_at: Set(Some(at + 1000)),
                })
                .exec_without_returning(&tx)
                .await?;
                refund::Entity::insert(refund::ActiveModel {
                    id: Set(refund_id),
                    order_id: Set(order.id),
                    out_refund_no: Set(out_refund_no),
                    amount_fen: Set(order.refund_price_fen.unwrap_or(0)),
                    created_at: Set(at),
                })
                .exec_without_returning(&tx)
                .await?;
            }
            order::Entity::insert(order.into_active_model()).exec_without_returning(&tx).await?;
        }
        // The example ids were written explicitly: PostgreSQL's sequences must move past them.
        if tx.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            for table in ["o2o_verify_code", "o2o_refund"] {
                let sql = format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))");
                tx.execute_unprepared(&sql).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}

