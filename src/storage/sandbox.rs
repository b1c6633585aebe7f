//! The sandbox's own state: the SMS outbox and the payment platform's orders, prepay ids and
//! refunds, shared by every instance over the database (issue 17). Only the sandbox providers
//! use them.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

use super::payments::TradeType;
use super::{Db, StorageError, affected, text_enum, write};

/// The tables as sea-orm entities (see the migration `m20261205_000015_sandbox_state`).
#[allow(missing_docs)] // derive-generated items; each entity's module is documented
pub mod entity {
    /// `sandbox_sms`: a message the sandbox "sent".
    pub mod sms {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "sandbox_sms")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub api: String,
            pub phone: String,
            pub code: String,
            pub purpose: String,
            pub sent_at: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// `sandbox_pay_order`: an order a sandbox merchant holds.
    pub mod order {
        use sea_orm::entity::prelude::*;

        use super::super::SandboxPayState;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "sandbox_pay_order")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub mchid: String,
            #[sea_orm(primary_key, auto_increment = false)]
            pub appid: String,
            #[sea_orm(primary_key, auto_increment = false)]
            pub out_trade_no: String,
            pub amount_fen: i64,
            pub notify_url: String,
            pub time_expire: i64,
            pub payer_openid: Option<String>,
            pub state: SandboxPayState,
            pub transaction_id: Option<String>,
            pub success_time: Option<i64>,
            pub code_url: Option<String>,
            pub refunded_fen: i64,
            pub attempt_id: Option<String>,
            pub attempt_until: Option<i64>,
            pub created_at: i64,
            pub trade_type: Option<crate::storage::payments::TradeType>,
            pub prepay_id: Option<String>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// `sandbox_pay_prepay`: a later placing's prepay_id, a code_url or its `pr` token, and the
    /// order it stands for (the first JSAPI placing's prepay_id is on the order's row).
    pub mod prepay {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "sandbox_pay_prepay")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub mchid: String,
            #[sea_orm(primary_key, auto_increment = false)]
            pub appid: String,
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: String,
            pub out_trade_no: String,
            pub created_at: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// `sandbox_pay_refund`: a refund as first accepted.
    pub mod refund {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "sandbox_pay_refund")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub mchid: String,
            #[sea_orm(primary_key, auto_increment = false)]
            pub appid: String,
            #[sea_orm(primary_key, auto_increment = false)]
            pub out_refund_no: String,
            pub out_trade_no: String,
            pub refund_fen: i64,
            pub total_fen: i64,
            pub reason: Option<String>,
            pub notify_url: String,
            pub refund_id: String,
            pub transaction_id: String,
            pub success_time: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

use entity::{order, prepay, refund, sms};

// ---- the SMS outbox ----------------------------------------------------------------------------

/// A message in the sandbox outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRow {
    /// The sending API's id (`heating`, …).
    pub api: String,
    /// The phone number (11 digits).
    pub phone: String,
    /// The verification code.
    pub code: String,
    /// What the code is for (the API's word).
    pub purpose: String,
    /// When it was sent, ms since the epoch (UTC).
    pub sent_at: i64,
}

/// The sandbox SMS outbox's store.
#[derive(Debug, Clone, Copy)]
pub struct SandboxSmsStore<'c, C>(pub &'c C);

impl Db {
    /// The sandbox SMS outbox's store on the pool.
    pub fn sandbox_sms(&self) -> SandboxSmsStore<'_, sea_orm::DatabaseConnection> {
        SandboxSmsStore(self.conn())
    }

    /// The store of the sandbox merchant `mchid` with mini-program `appid`, on `Db::volatile`:
    /// the ledger stands in for WeChat Pay's own records (no real money moves), and it is written
    /// three times a payment (place with its prepay_id, claim, paid), so its commits do not wait
    /// for the disk — all but the paid mark ([`SandboxPayStore::commit_payment`]), the one write no
    /// commit of the server's follows, which goes through the server's own pool. Every other
    /// write that matters is followed by a durable commit of the server's that writes (the
    /// prepay_id stored, the notify settled, the order closed, the refund recorded), which
    /// flushes the log through it. A power cut can forget a released claim (it lapses by itself,
    /// [`crate::providers::wechat_pay::sandbox::SandboxPay::ATTEMPT_TTL`]), housekeeping (done
    /// again), adopted orders (adopted again at every start), and an order placed or closed when
    /// the server's own write that follows changed nothing (its order was no longer pending:
    /// a payment of it is late, and the server refunds late payments).
    pub fn sandbox_pay<'a>(&'a self, mchid: &'a str, appid: &'a str) -> SandboxPayStore<'a, sea_orm::DatabaseConnection> {
        SandboxPayStore { conn: self.volatile(), durable: self.conn(), mchid, appid }
    }

    /// Housekeeping of every sandbox merchant's ledger, in one transaction: orders created
    /// before `orders_before` (ms) with their refunds (and the first placing's prepay_id on
    /// each order's row), and the later placings' prepay ids, code_urls and `pr` tokens made
    /// before `prepays_before` (one is made while its order is payable, so one of an order that
    /// old is long gone; paying with a first prepay_id that old is refused as its order's state
    /// says). Answers the rows deleted.
    pub async fn prune_sandbox_pay(&self, orders_before: i64, prepays_before: i64) -> Result<u64, StorageError> {
        use sea_orm::{DbBackend, Statement};
        let tx = write(self.volatile()).await?;
        let backend = tx.get_database_backend();
        // The refunds first, while their orders are there to name them (a row-value IN: the
        // same on SQLite and PostgreSQL; refunds are few, their orders found by `created_at`).
        let refunds = format!(
            "DELETE FROM sandbox_pay_refund WHERE (mchid, appid, out_trade_no) IN \
             (SELECT mchid, appid, out_trade_no FROM sandbox_pay_order WHERE created_at < {})",
            if backend == DbBackend::Postgres { "$1" } else { "?1" }
        );
        let mut deleted = tx.execute_raw(Statement::from_sql_and_values(backend, refunds, [orders_before.into()])).await?.rows_affected();
        deleted += order::Entity::delete_many().filter(order::Column::CreatedAt.lt(orders_before)).exec(&tx).await?.rows_affected;
        deleted += prepay::Entity::delete_many().filter(prepay::Column::CreatedAt.lt(prepays_before)).exec(&tx).await?.rows_affected;
        tx.commit().await?;
        Ok(deleted)
    }
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> SandboxSmsStore<'_, C> {
    /// Record `message` and drop what lies beyond the newest `keep` messages (at least 1) of
    /// every phone together, in the same transaction: the outbox stays bounded however many
    /// instances write to it. Ids grow with every insert, so "beyond the newest `keep`" is
    /// `id <= new id - keep` (on PostgreSQL a rolled-back insert leaves a gap: then a few fewer
    /// are kept, never more).
    pub async fn push(&self, message: &SmsRow, keep: u64) -> Result<(), StorageError> {
        let tx = write(self.0).await?;
        let inserted = sms::Entity::insert(sms::ActiveModel {
            id: sea_orm::NotSet,
            api: Set(message.api.clone()),
            phone: Set(message.phone.clone()),
            code: Set(message.code.clone()),
            purpose: Set(message.purpose.clone()),
            sent_at: Set(message.sent_at),
        })
        .exec(&tx)
        .await?;
        let keep = i64::try_from(Ord::max(keep, 1)).unwrap_or(i64::MAX);
        sms::Entity::delete_many().filter(sms::Column::Id.lte(inserted.last_insert_id.saturating_sub(keep))).exec(&tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The messages sent to `phone`, newest first; only those of `api` when given.
    pub async fn to_phone(&self, api: Option<&str>, phone: &str) -> Result<Vec<SmsRow>, StorageError> {
        let mut query = sms::Entity::find().filter(sms::Column::Phone.eq(phone));
        if let Some(api) = api {
            query = query.filter(sms::Column::Api.eq(api));
        }
        Ok(query
            .order_by_desc(sms::Column::Id)
            .all(self.0)
            .await?
            .into_iter()
            .map(|row| SmsRow { api: row.api, phone: row.phone, code: row.code, purpose: row.purpose, sent_at: row.sent_at })
            .collect())
    }
}

// ---- the payment platform ------------------------------------------------------------------------

text_enum! {
    /// Where a sandbox order stands, as stored.
    pub enum SandboxPayState {
        /// Ordered, not paid (a failed attempt leaves it here).
        NotPaid = "notpaid",
        /// A success notify is being delivered (`attempt_id` names it, until `attempt_until`).
        Paying = "paying",
        /// Paid: the merchant acknowledged the success notify.
        Paid = "paid",
        /// Closed unpaid by the merchant.
        Closed = "closed",
    }
}

/// An order to record (`jsapi_prepay`, `native_prepay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSandboxOrder {
    /// The merchant's order number.
    pub out_trade_no: String,
    /// The amount, fen.
    pub amount_fen: i64,
    /// Where notifies go.
    pub notify_url: String,
    /// After this the order cannot be paid, ms.
    pub time_expire: i64,
    /// The payer, when the API has one.
    pub payer_openid: Option<String>,
    /// How it was placed (`None`: recorded before the sandbox kept it, or adopted as paid).
    pub trade_type: Option<TradeType>,
    /// The prepay_id answered for the JSAPI placing that recorded it, kept on its row (later
    /// placings' prepay_ids are [`SandboxPayStore::add_prepay`]'s); `None` for a NATIVE order,
    /// an adopted one, or one recorded before the sandbox kept it here.
    pub prepay_id: Option<String>,
}

/// A sandbox order's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOrderRow {
    /// What was first recorded.
    pub order: NewSandboxOrder,
    /// Where it stands as stored (a `Paying` whose `attempt_until` has passed is payable again).
    pub state: SandboxPayState,
    /// The transaction id, once paid.
    pub transaction_id: Option<String>,
    /// When it was paid, ms.
    pub success_time: Option<i64>,
    /// Its NATIVE code_url, once `native_prepay` answered one (it is then a NATIVE order).
    pub code_url: Option<String>,
    /// The sum of its refunds, fen.
    pub refunded_fen: i64,
    /// When the claim of the payment being delivered lapses, ms (while `Paying`).
    pub attempt_until: Option<i64>,
}

impl From<order::Model> for SandboxOrderRow {
    fn from(row: order::Model) -> SandboxOrderRow {
        SandboxOrderRow {
            order: NewSandboxOrder {
                out_trade_no: row.out_trade_no,
                amount_fen: row.amount_fen,
                notify_url: row.notify_url,
                time_expire: row.time_expire,
                payer_openid: row.payer_openid,
                trade_type: row.trade_type,
                prepay_id: row.prepay_id,
            },
            state: row.state,
            transaction_id: row.transaction_id,
            success_time: row.success_time,
            code_url: row.code_url,
            refunded_fen: row.refunded_fen,
            attempt_until: row.attempt_until,
        }
    }
}

/// A refund's row: the request as first accepted and what the platform answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRefundRow {
    /// Our refund number.
    pub out_refund_no: String,
    /// The order refunded.
    pub out_trade_no: String,
    /// How much, fen.
    pub refund_fen: i64,
    /// The order's total as the request stated it, fen.
    pub total_fen: i64,
    /// Shown to the payer.
    pub reason: Option<String>,
    /// Where its notify went (empty: none).
    pub notify_url: String,
    /// `50` + 27 digits.
    pub refund_id: String,
    /// The order's transaction id.
    pub transaction_id: String,
    /// When it succeeded, ms.
    pub success_time: i64,
}

impl From<refund::Model> for SandboxRefundRow {
    fn from(row: refund::Model) -> SandboxRefundRow {
        SandboxRefundRow {
            out_refund_no: row.out_refund_no,
            out_trade_no: row.out_trade_no,
            refund_fen: row.refund_fen,
            total_fen: row.total_fen,
            reason: row.reason,
            notify_url: row.notify_url,
            refund_id: row.refund_id,
            transaction_id: row.transaction_id,
            success_time: row.success_time,
        }
    }
}

/// What [`SandboxPayStore::claim_refund`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundClaim {
    /// Recorded now: the order's refunded sum is raised by it.
    Recorded(SandboxRefundRow),
    /// A refund of this out_refund_no exists (recorded earlier, or by a concurrent request):
    /// nothing was written.
    Existing(SandboxRefundRow),
    /// No such order.
    NoOrder,
    /// The order's payment is being delivered (`Paying`, its claim not lapsed): WeChat Pay has
    /// such an order paid already. A merchant that cannot apply a payment refunds it from inside
    /// the notify's delivery; asked again later (`payments`' sweep, a minute or two on), the
    /// refund goes through if the merchant acknowledged the payment.
    PaymentInFlight,
    /// The order is not paid.
    NotPaid,
    /// The request's total is not the order's amount.
    TotalDiffers,
    /// It would take the order's refunds past its amount.
    TooMuch,
}

/// The store of one sandbox merchant (mchid + appid: one API's own, or one o2o operator's), as
/// each platform held its own ledger in memory before.
#[derive(Debug, Clone, Copy)]
pub struct SandboxPayStore<'c, C> {
    conn: &'c C,
    /// The server's own pool, whose commits wait for the disk: for the paid mark.
    durable: &'c sea_orm::DatabaseConnection,
    mchid: &'c str,
    appid: &'c str,
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> SandboxPayStore<'_, C> {
    fn orders(&self) -> Condition {
        Condition::all().add(order::Column::Mchid.eq(self.mchid)).add(order::Column::Appid.eq(self.appid))
    }

    fn order_of(&self, out_trade_no: &str) -> Condition {
        self.orders().add(order::Column::OutTradeNo.eq(out_trade_no))
    }

    /// A `Paying` order whose claim lapsed at `now` is payable (and closable) again.
    fn payable(now: i64) -> Condition {
        Condition::any().add(order::Column::State.eq(SandboxPayState::NotPaid)).add(
            Condition::all()
                .add(order::Column::State.eq(SandboxPayState::Paying))
                .add(order::Column::AttemptUntil.lte(now)),
        )
    }

    /// The order `out_trade_no`.
    pub async fn order(&self, out_trade_no: &str) -> Result<Option<SandboxOrderRow>, StorageError> {
        Ok(order::Entity::find().filter(self.order_of(out_trade_no)).one(self.conn).await?.map(SandboxOrderRow::from))
    }

    /// Record `new` unless an order of its number exists (insert-or-nothing: of two instances
    /// placing it at once one records it), then the order as stored — the caller compares it
    /// with what it asked. When the insert recorded it, the stored order is `new` as a new
    /// order, and is not read back (a statement fewer per payment); only an order placed
    /// before is read.
    pub async fn place(&self, new: &NewSandboxOrder, now: i64) -> Result<SandboxOrderRow, StorageError> {
        let row = order::Model {
            mchid: self.mchid.to_owned(),
            appid: self.appid.to_owned(),
            out_trade_no: new.out_trade_no.clone(),
            amount_fen: new.amount_fen,
            notify_url: new.notify_url.clone(),
            time_expire: new.time_expire,
            payer_openid: new.payer_openid.clone(),
            state: SandboxPayState::NotPaid,
            transaction_id: None,
            success_time: None,
            code_url: None,
            refunded_fen: 0,
            attempt_id: None,
            attempt_until: None,
            created_at: now,
            trade_type: new.trade_type,
            prepay_id: new.prepay_id.clone(),
        };
        let inserted = order::Entity::insert(row.clone().into_active_model())
            .on_conflict(
                OnConflict::columns([order::Column::Mchid, order::Column::Appid, order::Column::OutTradeNo]).do_nothing().to_owned(),
            )
            .exec_without_returning(self.conn)
            .await?;
        if inserted == 1 {
            return Ok(SandboxOrderRow::from(row));
        }
        self.order(&new.out_trade_no)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("sandbox order {} vanished after insert", new.out_trade_no)))
    }

    /// Record an order paid before the platform kept its ledger in the database (a demo order
    /// seeded straight into `pay_order`), unless it holds one of that number.
    pub async fn adopt_paid(&self, out_trade_no: &str, amount_fen: i64, transaction_id: &str, paid_at: i64) -> Result<(), StorageError> {
        order::Entity::insert(order::ActiveModel {
            mchid: Set(self.mchid.to_owned()),
            appid: Set(self.appid.to_owned()),
            out_trade_no: Set(out_trade_no.to_owned()),
            amount_fen: Set(amount_fen),
            notify_url: Set(String::new()),
            time_expire: Set(paid_at),
            payer_openid: Set(None),
            state: Set(SandboxPayState::Paid),
            transaction_id: Set(Some(transaction_id.to_owned())),
            success_time: Set(Some(paid_at)),
            code_url: Set(None),
            refunded_fen: Set(0),
            attempt_id: Set(None),
            attempt_until: Set(None),
            created_at: Set(paid_at),
            trade_type: Set(None),
            prepay_id: Set(None),
        })
        .on_conflict(
            OnConflict::columns([order::Column::Mchid, order::Column::Appid, order::Column::OutTradeNo]).do_nothing().to_owned(),
        )
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// Remember that `id` (a prepay_id of a later placing) stands for `out_trade_no`.
    pub async fn add_prepay(&self, id: &str, out_trade_no: &str, now: i64) -> Result<(), StorageError> {
        insert_prepay(self.conn, self.mchid, self.appid, id, out_trade_no, now).await
    }

    /// The order's NATIVE code_url: `code_url` (and its `pr` token) if it had none — set only
    /// `WHERE code_url IS NULL`, so of two instances answering at once both answer the one
    /// stored — else the one it has.
    pub async fn code_url(&self, out_trade_no: &str, code_url: &str, pr: &str, now: i64) -> Result<String, StorageError> {
        let tx = write(self.conn).await?;
        let set = order::Entity::update_many()
            .col_expr(order::Column::CodeUrl, Expr::value(code_url))
            .filter(self.order_of(out_trade_no))
            .filter(order::Column::CodeUrl.is_null())
            .exec(&tx)
            .await?;
        if affected(set) {
            insert_prepay(&tx, self.mchid, self.appid, pr, out_trade_no, now).await?;
            insert_prepay(&tx, self.mchid, self.appid, code_url, out_trade_no, now).await?;
        }
        let stored = order::Entity::find().filter(self.order_of(out_trade_no)).one(&tx).await?.and_then(|row| row.code_url);
        tx.commit().await?;
        stored.ok_or_else(|| StorageError::Corrupt(format!("sandbox order {out_trade_no} has no code_url")))
    }

    /// The order `id` names: the order of that number when one exists, else the order whose
    /// first prepay_id is `id`, else the order of the later prepay_id, code_url or `pr` token
    /// `id`; `None` when it names nothing.
    pub async fn resolve(&self, id: &str) -> Result<Option<SandboxOrderRow>, StorageError> {
        if let Some(row) = self.order(id).await? {
            return Ok(Some(row));
        }
        // The prepay_id alone in SQL, the merchant compared here: beside `mchid = $n` a generic
        // plan made on a nearly empty table could take the primary key's prefix and read every
        // order of the merchant (see `SessionStore::get_many`).
        let first = order::Entity::find().filter(order::Column::PrepayId.eq(id)).all(self.conn).await?;
        if let Some(row) = first.into_iter().find(|row| row.mchid == self.mchid && row.appid == self.appid) {
            return Ok(Some(SandboxOrderRow::from(row)));
        }
        match prepay::Entity::find_by_id((self.mchid.to_owned(), self.appid.to_owned(), id.to_owned())).one(self.conn).await? {
            Some(prepay) => self.order(&prepay.out_trade_no).await,
            None => Ok(None),
        }
    }

    /// Claim the payment of `out_trade_no` for the attempt `attempt_id` until `until` (ms): only
    /// if it is payable now (not paid, not closed, not claimed by a live attempt) and not
    /// expired. Of two instances paying at once one wins and gets the order as claimed (one
    /// statement, `UPDATE … RETURNING`); the other, and a number this platform does not hold,
    /// get `None`.
    pub async fn claim_payment(&self, out_trade_no: &str, attempt_id: &str, now: i64, until: i64) -> Result<Option<SandboxOrderRow>, StorageError> {
        let claimed = order::Entity::update_many()
            .col_expr(order::Column::State, Expr::value(SandboxPayState::Paying.as_str()))
            .col_expr(order::Column::AttemptId, Expr::value(attempt_id))
            .col_expr(order::Column::AttemptUntil, Expr::value(until))
            .filter(self.order_of(out_trade_no))
            .filter(Self::payable(now))
            .filter(order::Column::TimeExpire.gt(now))
            .exec_with_returning(self.conn)
            .await?;
        Ok(claimed.into_iter().next().map(SandboxOrderRow::from))
    }

    /// The attempt `attempt_id` was acknowledged: the order is paid with that transaction id at
    /// `success_time` (ms) — only while that attempt still holds it. Committed on the server's own
    /// pool, waiting for the disk: nothing the server writes after it would flush it, and a
    /// ledger that forgot it after a power cut would refuse the order's refunds as unpaid.
    pub async fn commit_payment(&self, out_trade_no: &str, attempt_id: &str, success_time: i64) -> Result<bool, StorageError> {
        let result = order::Entity::update_many()
            .col_expr(order::Column::State, Expr::value(SandboxPayState::Paid.as_str()))
            .col_expr(order::Column::TransactionId, Expr::value(attempt_id))
            .col_expr(order::Column::SuccessTime, Expr::value(success_time))
            .col_expr(order::Column::AttemptId, Expr::value(Option::<String>::None))
            .col_expr(order::Column::AttemptUntil, Expr::value(Option::<i64>::None))
            .filter(self.order_of(out_trade_no))
            .filter(order::Column::State.eq(SandboxPayState::Paying))
            .filter(order::Column::AttemptId.eq(attempt_id))
            .exec(self.durable)
            .await?;
        Ok(affected(result))
    }

    /// The attempt `attempt_id` failed or was dropped: the order is payable again — only while
    /// that attempt still holds it.
    pub async fn release_payment(&self, out_trade_no: &str, attempt_id: &str) -> Result<bool, StorageError> {
        let result = order::Entity::update_many()
            .col_expr(order::Column::State, Expr::value(SandboxPayState::NotPaid.as_str()))
            .col_expr(order::Column::AttemptId, Expr::value(Option::<String>::None))
            .col_expr(order::Column::AttemptUntil, Expr::value(Option::<i64>::None))
            .filter(self.order_of(out_trade_no))
            .filter(order::Column::State.eq(SandboxPayState::Paying))
            .filter(order::Column::AttemptId.eq(attempt_id))
            .exec(self.conn)
            .await?;
        Ok(affected(result))
    }

    /// Record `payer_openid` as the payer of `out_trade_no` if it has none yet (a sandbox JSAPI
    /// order placed first without one) and is unpaid, with no payment under way, and open at
    /// `now` (ms); false otherwise (another placing named one, or it is being paid or over).
    pub async fn name_payer(&self, out_trade_no: &str, payer_openid: &str, now: i64) -> Result<bool, StorageError> {
        let result = order::Entity::update_many()
            .col_expr(order::Column::PayerOpenid, Expr::value(payer_openid))
            .filter(self.order_of(out_trade_no))
            .filter(order::Column::PayerOpenid.is_null())
            .filter(order::Column::State.eq(SandboxPayState::NotPaid))
            .filter(order::Column::TimeExpire.gt(now))
            .exec(self.conn)
            .await?;
        Ok(affected(result))
    }

    /// Close `out_trade_no` if it is unpaid and no live attempt pays it (closing a closed order
    /// again succeeds); false otherwise — the caller reads the order to say why.
    pub async fn close(&self, out_trade_no: &str, now: i64) -> Result<bool, StorageError> {
        let result = order::Entity::update_many()
            .col_expr(order::Column::State, Expr::value(SandboxPayState::Closed.as_str()))
            .col_expr(order::Column::AttemptId, Expr::value(Option::<String>::None))
            .col_expr(order::Column::AttemptUntil, Expr::value(Option::<i64>::None))
            .filter(self.order_of(out_trade_no))
            .filter(Condition::any().add(Self::payable(now)).add(order::Column::State.eq(SandboxPayState::Closed)))
            .exec(self.conn)
            .await?;
        Ok(affected(result))
    }

    /// The refund `out_refund_no`.
    pub async fn refund(&self, out_refund_no: &str) -> Result<Option<SandboxRefundRow>, StorageError> {
        Ok(refund::Entity::find_by_id((self.mchid.to_owned(), self.appid.to_owned(), out_refund_no.to_owned()))
            .one(self.conn)
            .await?
            .map(SandboxRefundRow::from))
    }

    /// Record `new` (its `refund_id`, `transaction_id` and `success_time` are filled in from
    /// the order here) in one transaction: an existing refund of its out_refund_no is answered
    /// as it is; the order must exist, be paid (a payment being delivered at `now`, ms, is
    /// [`RefundClaim::PaymentInFlight`]) and have the request's total; its refunded sum
    /// is raised only `WHERE refunded_fen + refund <= amount_fen` (concurrent refunds never
    /// take more than was paid), then the refund is inserted-or-nothing (of two requests with
    /// one out_refund_no at once, the second finds the first's and writes nothing).
    pub async fn claim_refund(&self, new: &SandboxRefundRow, now: i64) -> Result<RefundClaim, StorageError> {
        if let Some(existing) = self.refund(&new.out_refund_no).await? {
            return Ok(RefundClaim::Existing(existing));
        }
        let tx = write(self.conn).await?;
        let store = SandboxPayStore { conn: &tx, durable: self.durable, mchid: self.mchid, appid: self.appid };
        let Some(order) = store.order(&new.out_trade_no).await? else {
            return Ok(RefundClaim::NoOrder);
        };
        let transaction_id = match (order.state, order.transaction_id) {
            (SandboxPayState::Paid, Some(id)) => id,
            (SandboxPayState::Paying, _) if order.attempt_until.is_some_and(|until| until > now) => {
                return Ok(RefundClaim::PaymentInFlight);
            }
            _ => return Ok(RefundClaim::NotPaid),
        };
        if new.total_fen != order.order.amount_fen {
            return Ok(RefundClaim::TotalDiffers);
        }
        let raised = order::Entity::update_many()
            .col_expr(order::Column::RefundedFen, Expr::col(order::Column::RefundedFen).add(new.refund_fen))
            .filter(self.order_of(&new.out_trade_no))
            .filter(order::Column::State.eq(SandboxPayState::Paid))
            .filter(Expr::col(order::Column::RefundedFen).add(new.refund_fen).lte(Expr::col(order::Column::AmountFen)))
            .exec(&tx)
            .await?;
        if !affected(raised) {
            return Ok(RefundClaim::TooMuch);
        }
        let row = SandboxRefundRow { transaction_id, ..new.clone() };
        let inserted = refund::Entity::insert(refund::ActiveModel {
            mchid: Set(self.mchid.to_owned()),
            appid: Set(self.appid.to_owned()),
            out_refund_no: Set(row.out_refund_no.clone()),
            out_trade_no: Set(row.out_trade_no.clone()),
            refund_fen: Set(row.refund_fen),
            total_fen: Set(row.total_fen),
            reason: Set(row.reason.clone()),
            notify_url: Set(row.notify_url.clone()),
            refund_id: Set(row.refund_id.clone()),
            transaction_id: Set(row.transaction_id.clone()),
            success_time: Set(row.success_time),
        })
        .on_conflict(
            OnConflict::columns([refund::Column::Mchid, refund::Column::Appid, refund::Column::OutRefundNo]).do_nothing().to_owned(),
        )
        .exec_without_returning(&tx)
        .await?;
        if inserted == 0 {
            // A concurrent request recorded this out_refund_no first: undo the raise, answer it.
            tx.rollback().await?;
            return match self.refund(&new.out_refund_no).await? {
                Some(existing) => Ok(RefundClaim::Existing(existing)),
                None => Err(StorageError::Corrupt(format!("sandbox refund {} vanished", new.out_refund_no))),
            };
        }
        tx.commit().await?;
        Ok(RefundClaim::Recorded(row))
    }
}

async fn insert_prepay<C: ConnectionTrait>(conn: &C, mchid: &str, appid: &str, id: &str, out_trade_no: &str, now: i64) -> Result<(), StorageError> {
    prepay::Entity::insert(prepay::ActiveModel {
        mchid: Set(mchid.to_owned()),
        appid: Set(appid.to_owned()),
        id: Set(id.to_owned()),
        out_trade_no: Set(out_trade_no.to_owned()),
        created_at: Set(now),
    })
    .on_conflict(OnConflict::columns([prepay::Column::Mchid, prepay::Column::Appid, prepay::Column::Id]).do_nothing().to_owned())
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::{Db, NewSandboxOrder, RefundClaim, SandboxRefundRow};
    use crate::storage::payments::TradeType;

    /// A JSAPI order `out_trade_no` of 100 fen, payable until 10,000 s.
    fn new_order_100_fen(out_trade_no: &str) -> NewSandboxOrder {
        NewSandboxOrder {
            out_trade_no: out_trade_no.into(),
            amount_fen: 100,
            notify_url: "http://127.0.0.1:9/notify".into(),
            time_expire: 10_000_000,
            payer_openid: None,
            trade_type: Some(TradeType::Jsapi),
            prepay_id: None,
        }
    }

    /// A SQLite file in `dir` (an in-memory database has one connection for both pools).
    async fn file_db(dir: &tempfile::TempDir) -> Db {
        Db::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("ledger.db").display())).await.expect("the database")
    }

    /// A SQLite file's database, in a folder that lasts while the returned `TempDir` is kept,
    /// whose ledger of merchant 1900000001 and app wx0000000000000001 has the order
    /// `out_trade_no` of 100 fen, placed at 1 s.
    async fn with_order(out_trade_no: &str) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = file_db(&dir).await;
        db.sandbox_pay("1900000001", "wx0000000000000001").place(&new_order_100_fen(out_trade_no), 1_000).await.expect("placed");
        (dir, db)
    }

    /// SQLite's `synchronous` on `conn`: 1 NORMAL (a commit does not sync the log), 2 FULL.
    async fn synchronous(conn: &impl ConnectionTrait) -> i32 {
        let row = conn.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA synchronous")).await.expect("asked").expect("a row");
        row.try_get_by_index(0).expect("a number")
    }

    /// The ledger is on `Db::volatile` (its commits do not wait for the disk), but for its paid
    /// mark, which is on the server's own pool, as the server's own records are.
    #[tokio::test]
    async fn the_ledger_commits_without_waiting_for_the_disk_but_the_paid_mark() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = file_db(&dir).await;
        let ledger = db.sandbox_pay("1900000001", "wx0000000000000001");
        assert_eq!(synchronous(ledger.conn).await, 1, "the ledger: NORMAL");
        assert_eq!(synchronous(ledger.durable).await, 2, "the paid mark: FULL");
        assert_eq!(synchronous(db.conn()).await, 2, "the server's own records: FULL");
    }

    /// The paid mark is written through the server's own pool: with the ledger's one connection
    /// taken (a transaction open on it, holding no lock yet), it is still written at once.
    #[tokio::test]
    async fn the_paid_mark_is_written_through_the_servers_own_pool() {
        use sea_orm::TransactionTrait;

        let (_dir, db) = with_order("SBMARK_001").await;
        let ledger = db.sandbox_pay("1900000001", "wx0000000000000001");
        let attempt = "4200000000000000000000000013";
        ledger.claim_payment("SBMARK_001", attempt, 2_000, 62_000).await.expect("claim").expect("claimed");
        let held = db.volatile().begin().await.expect("the ledger's connection, taken");
        let marked = tokio::time::timeout(std::time::Duration::from_secs(5), ledger.commit_payment("SBMARK_001", attempt, 3_000)).await;
        assert!(matches!(marked, Ok(Ok(true))), "written beside the taken connection: {marked:?}");
        held.rollback().await.expect("given back");
        assert_eq!(ledger.order("SBMARK_001").await.expect("read").map(|row| row.state), Some(super::SandboxPayState::Paid));
    }

    /// A payment claim lapses at its `until` exactly, and the ledger's writes agree on it: a
    /// millisecond before, the order is held (not claimed again, not closed, a refund told to
    /// ask again); at `until` it is payable (a refund "not paid", claimed again; the close is
    /// checked at the second claim's `until`, by the same rule). The provider reads a row's
    /// state by it too
    /// (`providers::wechat_pay::sandbox::tests::a_claimed_order_reads_payable_from_its_until`).
    #[tokio::test]
    async fn a_payment_claim_lapses_at_its_until_for_every_write() {
        let (_dir, db) = with_order("SBLAPSE_002").await;
        let ledger = db.sandbox_pay("1900000001", "wx0000000000000001");
        let until = 62_000;
        let claimed = ledger.claim_payment("SBLAPSE_002", "4200000000000000000000000014", 2_000, until).await.expect("claim");
        assert_eq!(claimed.and_then(|row| row.attempt_until), Some(until));
        let refund = SandboxRefundRow {
            out_refund_no: "SBLAPSE_R2".into(),
            out_trade_no: "SBLAPSE_002".into(),
            refund_fen: 100,
            total_fen: 100,
            reason: None,
            notify_url: String::new(),
            refund_id: "50000000000000000000000000014".into(),
            transaction_id: String::new(),
            success_time: 0,
        };
        let held = until - 1;
        assert_eq!(ledger.claim_refund(&refund, held).await.expect("refund"), RefundClaim::PaymentInFlight);
        assert_eq!(ledger.claim_payment("SBLAPSE_002", "4200000000000000000000000015", held, held + 60_000).await.expect("claim"), None);
        assert!(!ledger.close("SBLAPSE_002", held).await.expect("close"), "not closed while held");
        assert_eq!(ledger.claim_refund(&refund, until).await.expect("refund"), RefundClaim::NotPaid);
        let again = ledger.claim_payment("SBLAPSE_002", "4200000000000000000000000015", until, until + 60_000).await.expect("claim");
        assert_eq!(again.and_then(|row| row.attempt_until), Some(until + 60_000), "claimed again at its until");
        assert!(!ledger.close("SBLAPSE_002", until + 59_999).await.expect("close"));
        assert!(ledger.close("SBLAPSE_002", until + 60_000).await.expect("close"), "closed once the new claim lapsed");
    }
}
