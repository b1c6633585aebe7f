//! o2o's accounts and the openids bound to them, orders with their verify codes, the one refund
//! of an order, and the bridge page's scene ids (004 §登陆相关, §订单模块). Every claim is a
//! conditional write that one concurrent request wins: binding a phone (unique per appid),
//! paying (1 → 4), closing (1 → 3), refunding (codes 1 → 3 while the order is 4; back to 1 and
//! the order to 4 when WeChat Pay closes the refund), verifying (a code 1 → 2 while its order
//! is 4).

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set,
};

pub use super::entity::openid::Model as Identity;
pub use super::entity::order::Model as Order;
pub use super::entity::refund::Model as Refund;
pub use super::entity::scene::Model as Scene;
pub use super::entity::verify_code::Model as VerifyCode;

use super::entity::*;
use super::{O2oStore, User};
use crate::storage::payments::{NewPayOrder, PayOrder, PaymentStore, RefundRow, Settle, Settled};
use crate::storage::{StorageError, affected, is_unique_violation, write};

/// Order status (004 §订单模块 订单列表 `status`): 1 未支付.
pub const UNPAID: i32 = 1;
/// 3 已关闭（超时自动关闭）.
pub const CLOSED: i32 = 3;
/// 4 已付款.
pub const PAID: i32 = 4;
/// 6 已退款.
pub const REFUNDED: i32 = 6;
/// 7 已完成(不可退款).
pub const COMPLETED: i32 = 7;

/// Verify-code status: 1 未核销.
pub const CODE_UNUSED: i32 = 1;
/// 2 已核销.
pub const CODE_VERIFIED: i32 = 2;
/// 3 已退款.
pub const CODE_REFUNDED: i32 = 3;

/// What binding a phone to an openid did (`/login`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// The openid now belongs to this account (created when the phone was new).
    Bound(User),
    /// The account already has another openid under this appid (10006).
    TakenByOther,
}

/// What a refund claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundClaim {
    /// This request won: the order is 6, its unused codes 3, the refund recorded (here and as a
    /// processing `pay_refund` under `out_refund_no`).
    Claimed(Refund),
    /// Nothing to refund: the order is not 已付款, or it has no unused code left, or its payment
    /// cannot be refunded.
    Nothing,
}

/// What redeeming a scene did (`/loginWithSceneId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneRedeemed {
    /// The identity is now the account's.
    Linked,
    /// Another identity redeemed the scene first.
    Taken,
    /// The identity is bound to another account, or the account has another openid under its
    /// appid (10006); the scene stays unused.
    BoundElsewhere,
}

/// What verifying a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Verified now; `completed` when it was the order's last unused code (the order is 7).
    Verified {
        /// The code's order.
        order_no: String,
        /// Whether the order is now 已完成.
        completed: bool,
    },
    /// No such code.
    Unknown,
    /// The code is not usable: verified or refunded already, or its order is not 已付款.
    NotUsable(i32),
}

impl<C: ConnectionTrait> O2oStore<'_, C> {
    /// The openid row of WeChat identity `id` (the session subject).
    pub async fn identity(&self, id: &str) -> Result<Option<Identity>, StorageError> {
        Ok(openid::Entity::find_by_id(id.to_owned()).one(self.0).await?)
    }

    /// The account `id`.
    pub async fn user(&self, id: i64) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find_by_id(id).one(self.0).await?)
    }

    /// The order `order_no`.
    pub async fn order(&self, order_no: &str) -> Result<Option<Order>, StorageError> {
        Ok(order::Entity::find().filter(order::Column::OrderNo.eq(order_no)).one(self.0).await?)
    }

    /// Account `user_id`'s orders, newest first, of one status when given.
    pub async fn orders_of(&self, user_id: i64, status: Option<i32>) -> Result<Vec<Order>, StorageError> {
        let mut query = order::Entity::find().filter(order::Column::UserId.eq(user_id));
        if let Some(status) = status {
            query = query.filter(order::Column::Status.eq(status));
        }
        Ok(query.order_by_desc(order::Column::CreatedAt).order_by_desc(order::Column::Id).all(self.0).await?)
    }

    /// The verify codes of these orders, by id.
    pub async fn codes_of(&self, order_ids: &[i64]) -> Result<Vec<VerifyCode>, StorageError> {
        Ok(verify_code::Entity::find()
            .filter(verify_code::Column::OrderId.is_in(order_ids.iter().copied()))
            .order_by_asc(verify_code::Column::Id)
            .all(self.0)
            .await?)
    }

    /// The refund of order `order_id`.
    pub async fn refund_of(&self, order_id: i64) -> Result<Option<Refund>, StorageError> {
        Ok(refund::Entity::find().filter(refund::Column::OrderId.eq(order_id)).one(self.0).await?)
    }

    /// The scene `id`.
    pub async fn scene(&self, id: &str) -> Result<Option<Scene>, StorageError> {
        Ok(scene::Entity::find_by_id(id.to_owned()).one(self.0).await?)
    }
}

impl O2oStore<'_, DatabaseConnection> {
    /// Record that WeChat identity `id` ((`appid`, `openid`) of operator `oper_id`) logged in;
    /// answers its row (with the account it is bound to, if any).
    pub async fn record_identity(&self, id: &str, oper_id: i64, appid: &str, openid: &str, now: i64) -> Result<Identity, StorageError> {
        let row = openid::ActiveModel {
            id: Set(id.to_owned()),
            oper_id: Set(oper_id),
            appid: Set(appid.to_owned()),
            openid: Set(openid.to_owned()),
            user_id: Set(None),
            updated_at: Set(now),
        };
        openid::Entity::insert(row)
            .on_conflict(OnConflict::column(openid::Column::Id).update_column(openid::Column::UpdatedAt).to_owned())
            .exec_without_returning(self.0)
            .await?;
        self.identity(id).await?.ok_or_else(|| StorageError::Corrupt(format!("o2o_openid {id}")))
    }

    /// Bind identity `id` to the account of `mobile` (created with `name` when the phone is
    /// new): a phone proven by SMS may move an openid to its account.
    pub async fn bind_phone(&self, id: &str, mobile: &str, name: &str, now: i64) -> Result<Bound, StorageError> {
        let tx = write(self.0).await?;
        let new = user::ActiveModel { id: Set(new_id(10_000_000, 99_999_999)), name: Set(name.to_owned()), mobile: Set(mobile.to_owned()), created_at: Set(now) };
        user::Entity::insert(new)
            .on_conflict(OnConflict::column(user::Column::Mobile).do_nothing().to_owned())
            .exec_without_returning(&tx)
            .await
            .or_else(|e| if matches!(e, sea_orm::DbErr::RecordNotInserted) { Ok(0) } else { Err(e) })?;
        let account = user::Entity::find()
            .filter(user::Column::Mobile.eq(mobile))
            .one(&tx)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("o2o_user of {}", crate::pii::mask_phone(mobile))))?;
        let linked = openid::Entity::update_many()
            .col_expr(openid::Column::UserId, Expr::value(account.id))
            .col_expr(openid::Column::UpdatedAt, Expr::value(now))
            .filter(openid::Column::Id.eq(id))
            .exec(&tx)
            .await;
        match linked.map(affected) {
            Ok(true) => {
                tx.commit().await?;
                Ok(Bound::Bound(account))
            }
            Ok(false) => Err(StorageError::Corrupt(format!("o2o_openid {id}"))),
            Err(error) if is_unique_violation(&error) => Ok(Bound::TakenByOther),
            Err(error) => Err(error.into()),
        }
    }

    /// Store a scene id.
    pub async fn insert_scene(&self, scene: Scene) -> Result<(), StorageError> {
        scene::Entity::insert(scene.into_active_model()).exec_without_returning(self.0).await?;
        Ok(())
    }

    /// Redeem scene `id` for WeChat identity `identity`, linking it to the scene's account
    /// `user_id`, in one transaction: the first identity takes the scene (only it may redeem it
    /// again, a second scan of the same code), and only while the identity is unbound or bound
    /// to that account, and the account has no other openid under the identity's appid.
    /// Nothing changes unless both hold.
    pub async fn redeem_scene(&self, id: &str, identity: &str, user_id: i64, now: i64) -> Result<SceneRedeemed, StorageError> {
        let tx = write(self.0).await?;
        let taken = scene::Entity::update_many()
            .col_expr(scene::Column::RedeemedBy, Expr::value(identity))
            .filter(scene::Column::Id.eq(id))
            .filter(scene::Column::RedeemedBy.is_null().or(scene::Column::RedeemedBy.eq(identity)))
            .exec(&tx)
            .await?;
        if !affected(taken) {
            tx.rollback().await?;
            return Ok(SceneRedeemed::Taken);
        }
        let linked = openid::Entity::update_many()
            .col_expr(openid::Column::UserId, Expr::value(user_id))
            .col_expr(openid::Column::UpdatedAt, Expr::value(now))
            .filter(openid::Column::Id.eq(identity))
            .filter(openid::Column::UserId.is_null().or(openid::Column::UserId.eq(user_id)))
            .exec(&tx)
            .await;
        match linked.map(affected) {
            Ok(true) => {
                tx.commit().await?;
                Ok(SceneRedeemed::Linked)
            }
            Ok(false) => {
                tx.rollback().await?;
                Ok(SceneRedeemed::BoundElsewhere)
            }
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                Ok(SceneRedeemed::BoundElsewhere)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Place an order and its payment together; `false` when its id or number is taken (retry
    /// with others).
    pub async fn place_order(&self, order: Order, pay: NewPayOrder<'_>) -> Result<bool, StorageError> {
        let tx = write(self.0).await?;
        let placed = match PaymentStore(&tx).insert(pay).await {
            Ok(_) => order::Entity::insert(order.into_active_model()).exec_without_returning(&tx).await.map(|_| ()),
            Err(error) => Err(error),
        };
        match placed {
            Ok(()) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Claim the refund of order `order_id` (paid with `out_trade_no`) under `out_refund_no`:
    /// its unused codes become 已退款 (only those, so a code verified meanwhile stays
    /// verified) and no longer count in the goods' `sell_number`, the order 已退款 with
    /// `refund_price` = price × those codes, the refund recorded here and with the payments
    /// (processing), all in one transaction. Of concurrent claims exactly one changes the
    /// codes; the others find none left.
    pub async fn claim_refund(&self, order_id: i64, out_trade_no: &str, out_refund_no: &str, reason: &str, now: i64) -> Result<RefundClaim, StorageError> {
        let tx = write(self.0).await?;
        // Codes first, then the order: verifying locks in the same order (no deadlock).
        let refunded = verify_code::Entity::update_many()
            .col_expr(verify_code::Column::Status, Expr::value(CODE_REFUNDED))
            .filter(verify_code::Column::OrderId.eq(order_id))
            .filter(verify_code::Column::Status.eq(CODE_UNUSED))
            .filter(verify_code::Column::OrderId.in_subquery(order_in(order_id, PAID)))
            .exec(&tx)
            .await?
            .rows_affected as i64;
        let Some(order) = order::Entity::find_by_id(order_id).one(&tx).await?.filter(|_| refunded > 0) else {
            tx.rollback().await?;
            return Ok(RefundClaim::Nothing);
        };
        let amount_fen = order.price_fen * refunded;
        let claimed = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(REFUNDED))
            .col_expr(order::Column::RefundPriceFen, Expr::value(amount_fen))
            .col_expr(order::Column::RefundTime, Expr::value(now))
            .col_expr(order::Column::OutRefundNo, Expr::value(out_refund_no))
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::Id.eq(order_id))
            .filter(order::Column::Status.eq(PAID))
            .exec(&tx)
            .await?;
        if !affected(claimed) || !PaymentStore(&tx).start_refund(out_trade_no, out_refund_no, amount_fen, reason, now).await? {
            tx.rollback().await?;
            return Ok(RefundClaim::Nothing);
        }
        sold(&tx, order.goods_id, -refunded).await?;
        let row = refund::ActiveModel {
            id: NotSet,
            order_id: Set(order_id),
            out_refund_no: Set(out_refund_no.to_owned()),
            amount_fen: Set(amount_fen),
            created_at: Set(now),
        };
        refund::Entity::insert(row).exec_without_returning(&tx).await?;
        let refund = refund::Entity::find()
            .filter(refund::Column::OrderId.eq(order_id))
            .one(&tx)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("o2o_refund of {order_id}")))?;
        tx.commit().await?;
        Ok(RefundClaim::Claimed(refund))
    }

    /// Close (3) the unpaid orders whose payment failed and whose time is over (`now`, ms):
    /// the payer did not try again (a retried order is pending again, and the payments sweep
    /// closes it). Answers how many.
    pub async fn close_lapsed(&self, now: i64) -> Result<u64, StorageError> {
        use crate::storage::payments::PayStatus;
        use crate::storage::payments::entity::order as pay_order;
        let lapsed = Query::select()
            .column(pay_order::Column::OutTradeNo)
            .from(pay_order::Entity)
            .and_where(pay_order::Column::Api.like("o2o:%"))
            .and_where(pay_order::Column::Status.eq(PayStatus::Failed))
            .and_where(pay_order::Column::ExpiresAt.lt(now))
            .to_owned();
        Ok(order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(CLOSED))
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::Status.eq(UNPAID))
            .filter(order::Column::OrderNo.in_subquery(lapsed))
            .exec(self.0)
            .await?
            .rows_affected)
    }

    /// A merchant verifies `verify_code` (核销): 1 → 2 while its order is 已付款; the order
    /// becomes 已完成 when no unused code is left.
    pub async fn verify(&self, verify_code: &str, now: i64) -> Result<Verified, StorageError> {
        let tx = write(self.0).await?;
        let Some(code) = verify_code::Entity::find().filter(verify_code::Column::VerifyCode.eq(verify_code)).one(&tx).await? else {
            tx.rollback().await?;
            return Ok(Verified::Unknown);
        };
        let used = verify_code::Entity::update_many()
            .col_expr(verify_code::Column::Status, Expr::value(CODE_VERIFIED))
            .col_expr(verify_code::Column::VerifiedAt, Expr::value(now))
            .filter(verify_code::Column::Id.eq(code.id))
            .filter(verify_code::Column::Status.eq(CODE_UNUSED))
            .filter(verify_code::Column::OrderId.in_subquery(order_in(code.order_id, PAID)))
            .exec(&tx)
            .await?;
        if !affected(used) {
            tx.rollback().await?;
            let status = verify_code::Entity::find_by_id(code.id).one(self.0).await?.map_or(code.status, |c| c.status);
            return Ok(Verified::NotUsable(status));
        }
        let unused = Query::select()
            .column(verify_code::Column::OrderId)
            .from(verify_code::Entity)
            .and_where(verify_code::Column::OrderId.eq(code.order_id))
            .and_where(verify_code::Column::Status.eq(CODE_UNUSED))
            .to_owned();
        let completed = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(COMPLETED))
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::Id.eq(code.order_id))
            .filter(order::Column::Status.eq(PAID))
            .filter(order::Column::Id.not_in_subquery(unused))
            .exec(&tx)
            .await?;
        let order_no = order::Entity::find_by_id(code.order_id).one(&tx).await?.map(|o| o.order_no).unwrap_or_default();
        tx.commit().await?;
        Ok(Verified::Verified { order_no, completed: affected(completed) })
    }
}

/// `SELECT id FROM o2o_order WHERE id = ? AND status = ?`.
fn order_in(order_id: i64, status: i32) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(order::Column::Id)
        .from(order::Entity)
        .and_where(order::Column::Id.eq(order_id))
        .and_where(order::Column::Status.eq(status))
        .to_owned()
}

/// A new unpaid order of account `user` (id, name) for `number` × `goods` at its merchant
/// `merchant_name`: the goods' price, name and pictures as they are now (a snapshot), the
/// operator the goods' (004 §订单模块 下单接口).
#[allow(clippy::too_many_arguments)]
pub fn unpaid_order(id: i64, order_no: &str, user: (i64, &str), notify_mobile: Option<&str>, merchant_name: &str, goods: &super::Goods, number: i32, now: i64) -> Order {
    Order {
        id,
        order_no: order_no.to_owned(),
        oper_id: goods.oper_id,
        user_id: user.0,
        user_name: user.1.to_owned(),
        notify_mobile: notify_mobile.map(str::to_owned),
        merchant_id: goods.merchant_id,
        merchant_name: merchant_name.to_owned(),
        goods_id: goods.id,
        goods_name: goods.name.clone(),
        goods_pic: goods.pic.clone(),
        goods_thumb_url: goods.thumb_url.clone(),
        price_fen: goods.price_fen,
        buy_number: number,
        pay_price_fen: goods.price_fen * i64::from(number),
        status: UNPAID,
        pay_time: None,
        refund_price_fen: None,
        refund_time: None,
        out_refund_no: None,
        created_at: now,
        updated_at: now,
    }
}

/// A random id in `low..=high` (ids are not sequential: nothing to count orders or accounts by).
pub fn new_id(low: i64, high: i64) -> i64 {
    let span = (high - low + 1) as u64;
    low + (u64::from_le_bytes(crate::random::bytes::<8>()) % span) as i64
}

/// Settles o2o's WeChat Pay orders for the shared payment store, inside its transaction: the
/// order (`order_no` = `out_trade_no`) turns 已付款 with one verify code per unit and the goods'
/// sales counted — unless it is no longer unpaid (closed by the timeout meanwhile): then the money
/// goes back (`Conflict`). A released payment closes its unpaid order (3). A refund WeChat Pay
/// closes puts its order back (4, the codes unused), and should it succeed after all, takes it
/// again.
#[derive(Debug, Clone, Copy)]
pub struct Settler;

#[async_trait]
impl Settle for Settler {
    async fn paid(&self, tx: &DatabaseTransaction, pay: &PayOrder, now: i64) -> Result<Settled, StorageError> {
        let paid = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(PAID))
            .col_expr(order::Column::PayTime, Expr::value(pay.paid_at.unwrap_or(now)))
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::OrderNo.eq(&pay.out_trade_no))
            .filter(order::Column::Status.eq(UNPAID))
            .filter(order::Column::PayPriceFen.eq(pay.amount_fen))
            .exec(tx)
            .await?;
        if !affected(paid) {
            return Ok(Settled::Conflict("订单已关闭或已支付".into()));
        }
        let order = order::Entity::find()
            .filter(order::Column::OrderNo.eq(&pay.out_trade_no))
            .one(tx)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("o2o_order {}", pay.out_trade_no)))?;
        // 12 digits, random (not guessable, not sequential); unique by index — a collision fails
        // this settlement and WeChat Pay's retry draws new ones.
        let codes: Vec<verify_code::ActiveModel> = (0..order.buy_number)
            .map(|_| verify_code::ActiveModel {
                id: NotSet,
                order_id: Set(order.id),
                verify_code: Set(crate::random::digits_no_leading_zero(12)),
                status: Set(CODE_UNUSED),
                verified_at: Set(None),
                created_at: Set(now),
            })
            .collect();
        verify_code::Entity::insert_many(codes).exec_without_returning(tx).await?;
        sold(tx, order.goods_id, i64::from(order.buy_number)).await?;
        Ok(Settled::Applied)
    }

    /// WeChat Pay closed a user's refund (`claim_refund`) with no money moved: the order is
    /// 已付款 again, the codes that refund took are unused again (a code cannot change while
    /// they are 已退款), the goods count them as sold, and the order's refund is forgotten so
    /// that the user may ask again. A refund of a payment the API could not apply has no order
    /// here to restore.
    async fn refund_closed(&self, tx: &DatabaseTransaction, refund: &RefundRow) -> Result<(), StorageError> {
        let Some(order) = order::Entity::find()
            .filter(order::Column::OutRefundNo.eq(&refund.out_refund_no))
            .filter(order::Column::Status.eq(REFUNDED))
            .one(tx)
            .await?
        else {
            return Ok(());
        };
        let reopened = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(PAID))
            .col_expr(order::Column::RefundPriceFen, Expr::value(Option::<i64>::None))
            .col_expr(order::Column::RefundTime, Expr::value(Option::<i64>::None))
            .col_expr(order::Column::OutRefundNo, Expr::value(Option::<String>::None))
            .col_expr(order::Column::UpdatedAt, Expr::value(refund.finished_at.unwrap_or(order.updated_at)))
            .filter(order::Column::Id.eq(order.id))
            .filter(order::Column::Status.eq(REFUNDED))
            .filter(order::Column::OutRefundNo.eq(&refund.out_refund_no))
            .exec(tx)
            .await?;
        if !affected(reopened) {
            return Ok(());
        }
        let restored = verify_code::Entity::update_many()
            .col_expr(verify_code::Column::Status, Expr::value(CODE_UNUSED))
            .filter(verify_code::Column::OrderId.eq(order.id))
            .filter(verify_code::Column::Status.eq(CODE_REFUNDED))
            .exec(tx)
            .await?
            .rows_affected as i64;
        sold(tx, order.goods_id, restored).await?;
        refund::Entity::delete_many().filter(refund::Column::OutRefundNo.eq(&refund.out_refund_no)).exec(tx).await?;
        tracing::warn!(api = "o2o", order_no = order.order_no, out_refund_no = refund.out_refund_no, "refund closed by WeChat Pay: the order is paid again");
        Ok(())
    }

    /// A refund `refund_closed` undid succeeded after all: the order, still 已付款 with no other
    /// refund, is 已退款 again by this refund, with as many of its unused codes 已退款 as the
    /// money paid for (`refund_fen` / price). An order that moved on (completed, or another
    /// refund asked for) or too few unused codes left are logged for an operator: the money
    /// went back either way.
    async fn closed_refund_succeeded(&self, tx: &DatabaseTransaction, refund: &RefundRow) -> Result<(), StorageError> {
        let Some(order) = order::Entity::find().filter(order::Column::OrderNo.eq(&refund.out_trade_no)).one(tx).await? else {
            // A payment the API could not apply: it has no order here.
            return Ok(());
        };
        if order.status != PAID || order.out_refund_no.is_some() || order.price_fen <= 0 {
            tracing::error!(api = "o2o", order_no = order.order_no, out_refund_no = refund.out_refund_no, status = order.status, "a refund closed before succeeded after the order moved on; an operator must act");
            return Ok(());
        }
        let units = refund.refund_fen / order.price_fen;
        let unused: Vec<i64> = verify_code::Entity::find()
            .filter(verify_code::Column::OrderId.eq(order.id))
            .filter(verify_code::Column::Status.eq(CODE_UNUSED))
            .order_by_asc(verify_code::Column::Id)
            .all(tx)
            .await?
            .into_iter()
            .take(usize::try_from(units).unwrap_or(0))
            .map(|code| code.id)
            .collect();
        let taken = verify_code::Entity::update_many()
            .col_expr(verify_code::Column::Status, Expr::value(CODE_REFUNDED))
            .filter(verify_code::Column::Id.is_in(unused))
            .filter(verify_code::Column::Status.eq(CODE_UNUSED))
            .exec(tx)
            .await?
            .rows_affected as i64;
        let now = refund.finished_at.unwrap_or(order.updated_at);
        order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(REFUNDED))
            .col_expr(order::Column::RefundPriceFen, Expr::value(refund.refund_fen))
            .col_expr(order::Column::RefundTime, Expr::value(now))
            .col_expr(order::Column::OutRefundNo, Expr::value(&refund.out_refund_no))
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::Id.eq(order.id))
            .exec(tx)
            .await?;
        let row = refund::ActiveModel {
            id: NotSet,
            order_id: Set(order.id),
            out_refund_no: Set(refund.out_refund_no.clone()),
            amount_fen: Set(refund.refund_fen),
            created_at: Set(refund.created_at),
        };
        refund::Entity::insert(row).exec_without_returning(tx).await?;
        sold(tx, order.goods_id, -taken).await?;
        if taken < units {
            tracing::error!(api = "o2o", order_no = order.order_no, out_refund_no = refund.out_refund_no, units, taken, "a refund closed before succeeded after some of its codes were used; an operator must act");
        } else {
            tracing::warn!(api = "o2o", order_no = order.order_no, out_refund_no = refund.out_refund_no, "a refund closed before succeeded after all: the order is refunded again");
        }
        Ok(())
    }

    async fn released(&self, tx: &DatabaseTransaction, pay: &PayOrder) -> Result<(), StorageError> {
        // A payment attempt that failed (PAYERROR) after the order was placed with WeChat Pay
        // leaves the order unpaid (1): the payer may try again until it lapses — with the
        // sdk_config held, or a fresh one (`Payments::pay_params_after_failure`, which relies on
        // this) — and then `close_lapsed` closes it, or, once reopened, the payments sweep.
        // Closed by the timeout, or refused before ever being placed, the order closes now.
        if pay.status == crate::storage::payments::PayStatus::Failed && pay.prepay.is_some() {
            return Ok(());
        }
        order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(CLOSED))
            .filter(order::Column::OrderNo.eq(&pay.out_trade_no))
            .filter(order::Column::Status.eq(UNPAID))
            .exec(tx)
            .await?;
        Ok(())
    }
}

/// Count `units` more (or, negative, fewer) of goods `goods_id` as sold (`sell_number`: units
/// paid for and not refunded).
async fn sold(tx: &DatabaseTransaction, goods_id: i64, units: i64) -> Result<(), StorageError> {
    goods::Entity::update_many()
        .col_expr(goods::Column::SellNumber, Expr::col(goods::Column::SellNumber).add(units))
        .filter(goods::Column::Id.eq(goods_id))
        .exec(tx)
        .await?;
    Ok(())
}
