//! Charging orders: creating one claims its port (a conditional write: one live order a port),
//! the start, meter samples, settlement (exactly once: it releases the port and adds to its
//! totals), the owner's list and the statistics' rows.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

use super::entity::*;
use super::{ChargingStore, Order};
use crate::api_support::{Page, PageRequest};
use crate::storage::{StorageError, affected, is_unique_violation, write};

/// What creating an order did.
#[derive(Debug)]
pub enum Created {
    /// Inserted; the port is held for it.
    Placed(Box<Order>),
    /// The port is held by another live order, in use, faulty or disabled (2005).
    PortTaken,
    /// Another order has this id or number (drawn in the same second with the same four
    /// digits): nothing written; draw another.
    IdTaken,
    /// The user has this live order (created or charging) already: one at a time (3002).
    /// Nothing written.
    UserBusy(Box<Order>),
    /// The user has this ended order still to pay (3002): it is paid first. Nothing written.
    Unpaid(Box<Order>),
}

/// Which orders a list shows (003 §5.3); times are ms bounds on `created_at`, `[from, to)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFilter {
    /// Order status.
    pub status: Option<i32>,
    /// From (ms, inclusive).
    pub from: Option<i64>,
    /// To (ms, exclusive).
    pub to: Option<i64>,
}

/// How an order ends (see [`ChargingStore::finish`]).
#[derive(Debug, Clone, Copy)]
pub struct Finish {
    /// 2 completed, 3 cancelled, 4 abnormal.
    pub status: i32,
    /// 003 §5.4 stop reason (`None` for an order that never started).
    pub stop_reason: Option<i32>,
    /// When energy stopped (ms).
    pub ended_at: i64,
    /// Seconds of charging.
    pub charging_seconds: i64,
    /// Wh per tier (尖, 峰, 平, 谷, 深谷) and their amounts in fen.
    pub lines: [(i64, i64); 5],
    /// Total Wh.
    pub energy_wh: i64,
    /// Electricity, fen.
    pub amount_fen: i64,
    /// Service fee, fen.
    pub service_fee_fen: i64,
    /// amount + service fee, fen.
    pub total_fen: i64,
    /// The port's fault type after the session (0: none; the port turns idle).
    pub port_fault: i32,
}

/// `update` setting an order's bill as `finish` has it: when it ended, how long it charged, the
/// energy and amount of each tier, and the totals.
fn billed_as(update: sea_orm::UpdateMany<order::Entity>, finish: &Finish) -> sea_orm::UpdateMany<order::Entity> {
    let [sharp, peak, flat, valley, deep] = finish.lines;
    update
        .col_expr(order::Column::EndedAt, Expr::value(finish.ended_at))
        .col_expr(order::Column::ChargingSeconds, Expr::value(finish.charging_seconds))
        .col_expr(order::Column::EnergyWh, Expr::value(finish.energy_wh))
        .col_expr(order::Column::SharpWh, Expr::value(sharp.0))
        .col_expr(order::Column::SharpFen, Expr::value(sharp.1))
        .col_expr(order::Column::PeakWh, Expr::value(peak.0))
        .col_expr(order::Column::PeakFen, Expr::value(peak.1))
        .col_expr(order::Column::FlatWh, Expr::value(flat.0))
        .col_expr(order::Column::FlatFen, Expr::value(flat.1))
        .col_expr(order::Column::ValleyWh, Expr::value(valley.0))
        .col_expr(order::Column::ValleyFen, Expr::value(valley.1))
        .col_expr(order::Column::DeepValleyWh, Expr::value(deep.0))
        .col_expr(order::Column::DeepValleyFen, Expr::value(deep.1))
        .col_expr(order::Column::AmountFen, Expr::value(finish.amount_fen))
        .col_expr(order::Column::ServiceFeeFen, Expr::value(finish.service_fee_fen))
        .col_expr(order::Column::TotalFen, Expr::value(finish.total_fen))
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> ChargingStore<'_, C> {
    /// Insert `order` and hold its port for it — only if the port is idle, enabled and held by no
    /// other order (`UPDATE … WHERE current_order_id IS NULL AND status = 1`): of any number of
    /// concurrent creations on one port exactly one is placed — and only if its user has no
    /// live order and no ended order to pay: the user's row is locked first (a write to it;
    /// SQLite's write transaction holds the whole file), so of one user's concurrent creations,
    /// on any ports, exactly one is placed, and the others see it; and an order that ended
    /// between the caller's own checks and this one is seen here as unpaid, not missed.
    pub async fn create_order(&self, order: Order) -> Result<Created, StorageError> {
        use sea_orm::IntoActiveModel;
        let tx = write(self.0).await?;
        // Taken before reading the user's live orders: PostgreSQL's READ COMMITTED reads what
        // committed before each statement, so a concurrent creation of this user's must have
        // committed, or wait behind this lock, by the time the read below runs.
        user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::col(user::Column::UpdatedAt))
            .filter(user::Column::Id.eq(order.user_id))
            .exec(&tx)
            .await?;
        let locked = ChargingStore(&tx);
        if let Some(live) = locked.live_order_of(order.user_id).await? {
            tx.rollback().await?;
            return Ok(Created::UserBusy(Box::new(live)));
        }
        if let Some(unpaid) = locked.unpaid_order(order.user_id).await? {
            tx.rollback().await?;
            return Ok(Created::Unpaid(Box::new(unpaid)));
        }
        // Both writes meet a unique key when another order drew this id or number: the port's
        // `current_order_id` (a live order of this id holds another port), or the order's own
        // (an ended one has it).
        let placed = async {
            let claimed = port::Entity::update_many()
                .col_expr(port::Column::CurrentOrderId, Expr::value(order.id.clone()))
                .col_expr(port::Column::Status, Expr::value(2))
                .col_expr(port::Column::EnergyWh, Expr::value(0))
                .col_expr(port::Column::UpdatedAt, Expr::value(order.created_at))
                .filter(port::Column::Id.eq(order.port_id.clone()))
                .filter(port::Column::CurrentOrderId.is_null())
                .filter(port::Column::Status.eq(1))
                .filter(port::Column::Disabled.eq(false))
                .exec(&tx)
                .await?;
            if !affected(claimed) {
                return Ok(false);
            }
            order::Entity::insert(order.clone().into_active_model()).exec_without_returning(&tx).await?;
            Ok(true)
        }
        .await;
        match placed {
            Ok(true) => {
                tx.commit().await?;
                Ok(Created::Placed(Box::new(order)))
            }
            Ok(false) => {
                tx.rollback().await?;
                Ok(Created::PortTaken)
            }
            // The port's claim, if made, goes with the rollback.
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                Ok(Created::IdTaken)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The order `id`.
    pub async fn order(&self, id: &str) -> Result<Option<Order>, StorageError> {
        Ok(order::Entity::find_by_id(id.to_owned()).one(self.0).await?)
    }

    /// Orders not yet ended (created or charging), oldest first — the watchdog's work.
    pub async fn live_orders(&self, limit: u64) -> Result<Vec<Order>, StorageError> {
        use sea_orm::QuerySelect;
        Ok(order::Entity::find()
            .filter(order::Column::Status.is_in([0, 1]))
            .order_by_asc(order::Column::CreatedAt)
            .limit(limit)
            .all(self.0)
            .await?)
    }

    /// `user_id`'s live order (created or charging), if any: a user has one at a time.
    pub async fn live_order_of(&self, user_id: i64) -> Result<Option<Order>, StorageError> {
        Ok(order::Entity::find()
            .filter(order::Column::UserId.eq(user_id))
            .filter(order::Column::Status.is_in([0, 1]))
            .one(self.0)
            .await?)
    }

    /// Whether `user_id` has an ended order not yet paid (a new order waits for it).
    pub async fn unpaid_order(&self, user_id: i64) -> Result<Option<Order>, StorageError> {
        Ok(order::Entity::find()
            .filter(order::Column::UserId.eq(user_id))
            .filter(order::Column::Status.is_in([2, 4]))
            .filter(order::Column::PaymentStatus.eq(0))
            .filter(order::Column::TotalFen.gt(0))
            .one(self.0)
            .await?)
    }

    /// The order turned charging (the device accepted the start at `now`): only from 0.
    pub async fn mark_started(&self, id: &str, now: i64) -> Result<bool, StorageError> {
        Ok(affected(
            order::Entity::update_many()
                .col_expr(order::Column::Status, Expr::value(1))
                .col_expr(order::Column::StartedAt, Expr::value(now))
                .col_expr(order::Column::UpdatedAt, Expr::value(now))
                .filter(order::Column::Id.eq(id))
                .filter(order::Column::Status.eq(0))
                .exec(self.0)
                .await?,
        ))
    }

    /// Bill again, as `finish`, an order that ended abnormal (4, stop reason 6) while its
    /// charger was silent, once the charger reports the session's final reading: only while
    /// it is unpaid, no payment of it waits, and it is still billed as `billed` (the caller's
    /// read of it), so of concurrent
    /// corrections one applies, and a payment of the old total cannot settle after it (every
    /// payment requires the total it was made for). The port's totals take the difference.
    /// Answers whether this call corrected it.
    pub async fn rebill_lost(&self, billed: &Order, finish: &Finish, now: i64) -> Result<bool, StorageError> {
        let (id, billed_wh, billed_seconds) = (billed.id.as_str(), billed.energy_wh, billed.charging_seconds);
        let tx = write(self.0).await?;
        let corrected = billed_as(order::Entity::update_many(), finish)
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::Id.eq(id))
            .filter(order::Column::Status.eq(4))
            .filter(order::Column::StopReason.eq(6))
            .filter(order::Column::PaymentStatus.eq(0))
            .filter(order::Column::EnergyWh.eq(billed_wh))
            .exec(&tx)
            .await?;
        // Nor while a payment of it waits (placed for the old total: it could be paid any
        // moment, and would then be refunded as a conflict). Looked at after the order's row is
        // written, so a payment placed meanwhile (`place_payment` writes that row first) is seen.
        let waiting = payment::Entity::find()
            .filter(payment::Column::OrderId.eq(id))
            .filter(payment::Column::Status.is_in([0, 1]))
            .count(&tx)
            .await?;
        if !affected(corrected) || waiting > 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        port::Entity::update_many()
            .col_expr(port::Column::TotalSeconds, Expr::col(port::Column::TotalSeconds).add(finish.charging_seconds - billed_seconds))
            .col_expr(port::Column::TotalWh, Expr::col(port::Column::TotalWh).add(finish.energy_wh - billed_wh))
            .col_expr(port::Column::UpdatedAt, Expr::value(now))
            .filter(port::Column::Id.eq(&billed.port_id))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A meter sample of a charging order (a repeat of the same instant is ignored), and the
    /// order's live figures.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_sample(
        &self,
        id: &str,
        at: i64,
        energy_wh: i64,
        power_w: i64,
        voltage_dv: i64,
        current_ca: i64,
        charging_seconds: i64,
    ) -> Result<(), StorageError> {
        meter_sample::Entity::insert(meter_sample::ActiveModel {
            id: sea_orm::NotSet,
            order_id: Set(id.to_owned()),
            at_ms: Set(at),
            energy_wh: Set(energy_wh),
            power_w: Set(power_w),
        })
        .on_conflict(OnConflict::columns([meter_sample::Column::OrderId, meter_sample::Column::AtMs]).do_nothing().to_owned())
        .exec_without_returning(self.0)
        .await?;
        order::Entity::update_many()
            .col_expr(order::Column::EnergyWh, Expr::value(energy_wh))
            .col_expr(order::Column::PowerW, Expr::value(power_w))
            .col_expr(order::Column::VoltageDv, Expr::value(voltage_dv))
            .col_expr(order::Column::CurrentCa, Expr::value(current_ca))
            .col_expr(order::Column::ChargingSeconds, Expr::value(charging_seconds))
            .col_expr(order::Column::LastReadAt, Expr::value(at))
            .filter(order::Column::Id.eq(id))
            .filter(order::Column::Status.eq(1))
            .exec(self.0)
            .await?;
        Ok(())
    }

    /// An order's samples as `(at_ms, energy_wh)`, in time order.
    pub async fn samples(&self, id: &str) -> Result<Vec<(i64, i64)>, StorageError> {
        use sea_orm::QuerySelect;
        Ok(meter_sample::Entity::find()
            .select_only()
            .columns([meter_sample::Column::AtMs, meter_sample::Column::EnergyWh])
            .filter(meter_sample::Column::OrderId.eq(id))
            .order_by_asc(meter_sample::Column::AtMs)
            .into_tuple()
            .all(self.0)
            .await?)
    }

    /// End a live order (status 0 or 1; a cancellation, status 3, only an order still 0) with
    /// its bill, release its port (idle, or faulty with `port_fault`) and add the session to the
    /// port's totals — once: `false` when it had already ended, or, cancelled, started.
    pub async fn finish(&self, id: &str, finish: &Finish, now: i64) -> Result<bool, StorageError> {
        let tx = write(self.0).await?;
        let ended = billed_as(order::Entity::update_many(), finish)
            .col_expr(order::Column::Status, Expr::value(finish.status))
            .col_expr(order::Column::StopReason, Expr::value(finish.stop_reason))
            .col_expr(order::Column::PowerW, Expr::value(0))
            .col_expr(order::Column::CurrentCa, Expr::value(0))
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::Id.eq(id))
            // A start may have won the order since it was read: a charging order is never
            // cancelled (its charger would charge on, for nothing).
            .filter(order::Column::Status.is_in(if finish.status == 3 { &[0][..] } else { &[0, 1][..] }).to_owned())
            .exec(&tx)
            .await?;
        if !affected(ended) {
            tx.rollback().await?;
            return Ok(false);
        }
        let charged = finish.status != 3;
        let mut release = port::Entity::update_many()
            .col_expr(port::Column::CurrentOrderId, Expr::value(Option::<String>::None))
            .col_expr(port::Column::LastOrderId, Expr::value(id))
            .col_expr(port::Column::PowerW, Expr::value(0))
            .col_expr(port::Column::CurrentCa, Expr::value(0))
            .col_expr(port::Column::UpdatedAt, Expr::value(now));
        if finish.port_fault != 0 {
            release = release
                .col_expr(port::Column::Status, Expr::value(3))
                .col_expr(port::Column::FaultType, Expr::value(finish.port_fault));
        } else {
            // A port faulted meanwhile (by the sweep) stays faulted.
            release = release.col_expr(port::Column::Status, Expr::case(Expr::col(port::Column::Status).eq(3), 3).finally(1).into());
        }
        if charged {
            release = release
                .col_expr(port::Column::TotalTimes, Expr::col(port::Column::TotalTimes).add(1))
                .col_expr(port::Column::TotalSeconds, Expr::col(port::Column::TotalSeconds).add(finish.charging_seconds))
                .col_expr(port::Column::TotalWh, Expr::col(port::Column::TotalWh).add(finish.energy_wh));
        }
        release.filter(port::Column::CurrentOrderId.eq(id)).exec(&tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `user_id`'s orders, newest first.
    pub async fn orders_of(&self, user_id: i64, filter: OrderFilter, page: PageRequest) -> Result<Page<Order>, StorageError> {
        use sea_orm::QuerySelect;
        let mut query = order::Entity::find().filter(order::Column::UserId.eq(user_id));
        if let Some(status) = filter.status {
            query = query.filter(order::Column::Status.eq(status));
        }
        if let Some(from) = filter.from {
            query = query.filter(order::Column::CreatedAt.gte(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(order::Column::CreatedAt.lt(to));
        }
        let total = query.clone().count(self.0).await?;
        let items = query
            .order_by_desc(order::Column::CreatedAt)
            .order_by_desc(order::Column::Id)
            .offset(page.offset())
            .limit(page.limit())
            .all(self.0)
            .await?;
        Ok(Page { request: page, total, items })
    }

    /// `user_id`'s charged orders (completed or abnormal) that began at or after `from` (ms).
    pub async fn charged_since(&self, user_id: i64, from: Option<i64>) -> Result<Vec<Order>, StorageError> {
        let mut query = order::Entity::find()
            .filter(order::Column::UserId.eq(user_id))
            .filter(order::Column::Status.is_in([2, 4]));
        if let Some(from) = from {
            query = query.filter(order::Column::StartedAt.gte(from));
        }
        Ok(query.order_by_asc(order::Column::StartedAt).all(self.0).await?)
    }
}
