//! Heating's reference data (000 §6: agreements, system configuration) and seeding a fresh
//! database (see `heating::seed` for what is written).

use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait, Set, TransactionTrait};

use super::entity::{BillStatus, account, agreement, bill, config, order, order_bill, season};
use super::{HeatingUsers, NewUser, OrderLine, Season};
use crate::storage::payments::{NewPayOrder, PaymentStore, Reported};
use crate::storage::{StorageError, claim_seed, write};

/// An agreement (000 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// `user_agreement` or `privacy_policy`.
    pub kind: String,
    /// 标题.
    pub title: String,
    /// 内容.
    pub content: String,
    /// 版本.
    pub version: String,
    /// 更新时间 (the document's date text).
    pub updated_at: String,
}

/// A seeded heat account: its owner's ID number already sealed and indexed.
#[derive(Debug, Clone)]
pub struct SeedAccount {
    /// The account number.
    pub heat_account: String,
    /// 户主姓名.
    pub owner_name: String,
    /// Keyed digest of the owner's ID number.
    pub owner_id_index: String,
    /// The owner's ID number, sealed.
    pub owner_id_cipher: String,
    /// 地址.
    pub address: String,
    /// hundredths of a m².
    pub heating_area_centi: i64,
}

/// A seeded bill, paid by a seeded order when `paid` is set.
#[derive(Debug, Clone)]
pub struct SeedBill {
    /// The bill.
    pub bill_id: String,
    /// Its account.
    pub heat_account: String,
    /// Its season.
    pub heating_season: String,
    /// Fen.
    pub amount_fen: i64,
    /// ms.
    pub bill_date: i64,
    /// ms.
    pub due_date: i64,
    /// The order that paid it: (out_trade_no, transaction_id, paid_at ms, late fee fen).
    pub paid: Option<(String, String, i64, i64)>,
}

/// Everything a first start writes.
#[derive(Debug, Clone, Default)]
pub struct SeedData {
    /// Seasons (reference).
    pub seasons: Vec<Season>,
    /// The two agreements (reference).
    pub agreements: Vec<Agreement>,
    /// System configuration `(key, JSON value or None)` (reference).
    pub config: Vec<(String, Option<String>)>,
    /// Demo heat accounts.
    pub accounts: Vec<SeedAccount>,
    /// Demo bills and the orders that paid them.
    pub bills: Vec<SeedBill>,
    /// Demo users, registered (not bound).
    pub users: Vec<SeedUser>,
}

/// A seeded user: registered with a phone and a password hash.
#[derive(Debug, Clone)]
pub struct SeedUser {
    /// Id.
    pub id: String,
    /// Phone.
    pub phone: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// 昵称.
    pub nickname: String,
}

/// `heating_agreement`, `heating_config`, and seeding.
#[derive(Debug, Clone, Copy)]
pub struct HeatingReference<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> HeatingReference<'_, C> {
    /// operationId `config_agreements_get`: the agreements.
    pub async fn agreements(&self) -> Result<Vec<Agreement>, StorageError> {
        Ok(agreement::Entity::find()
            .all(self.0)
            .await?
            .into_iter()
            .map(|row| Agreement { kind: row.kind, title: row.title, content: row.content, version: row.version, updated_at: row.updated_at })
            .collect())
    }

    /// operationId `config_system_get`: the system configuration as `(key, JSON value or None)`.
    pub async fn config(&self) -> Result<Vec<(String, Option<String>)>, StorageError> {
        Ok(config::Entity::find().all(self.0).await?.into_iter().map(|row| (row.key, row.value)).collect())
    }

    /// Seed what this database has not received yet: the reference data (seasons, agreements,
    /// configuration) once, and the demo accounts with their bills and paid orders once (when
    /// `data` has them). Each set is claimed by its marker in the same transaction, so two
    /// instances starting at once seed it once, and a restart seeds nothing. Answers the sets
    /// written.
    pub async fn seed(&self, data: SeedData, mchid: &str, appid: &str, now: i64) -> Result<Vec<&'static str>, StorageError> {
        let mut written = Vec::new();
        let tx = write(self.0).await?;
        if claim_seed(&tx, "heating.reference", now).await? {
            for row in &data.seasons {
                insert_new(&tx, season::ActiveModel {
                    season: Set(row.season.clone()),
                    heating_start: Set(row.heating_start),
                    heating_end: Set(row.heating_end),
                    payment_deadline: Set(row.payment_deadline),
                })
                .await?;
            }
            for row in &data.agreements {
                insert_new(&tx, agreement::ActiveModel {
                    kind: Set(row.kind.clone()),
                    title: Set(row.title.clone()),
                    content: Set(row.content.clone()),
                    version: Set(row.version.clone()),
                    updated_at: Set(row.updated_at.clone()),
                })
                .await?;
            }
            for (key, value) in &data.config {
                insert_new(&tx, config::ActiveModel { key: Set(key.clone()), value: Set(value.clone()) }).await?;
            }
            written.push("reference");
        }
        if !data.accounts.is_empty() && claim_seed(&tx, "heating.demo", now).await? {
            for row in &data.accounts {
                insert_new(&tx, account::ActiveModel {
                    heat_account: Set(row.heat_account.clone()),
                    owner_name: Set(row.owner_name.clone()),
                    owner_id_index: Set(row.owner_id_index.clone()),
                    owner_id_cipher: Set(row.owner_id_cipher.clone()),
                    address: Set(row.address.clone()),
                    heating_area_centi: Set(row.heating_area_centi),
                    bound_user_id: Set(None),
                    bound_at: Set(None),
                })
                .await?;
            }
            for row in &data.bills {
                insert_new(&tx, bill::ActiveModel {
                    bill_id: Set(row.bill_id.clone()),
                    heat_account: Set(row.heat_account.clone()),
                    heating_season: Set(row.heating_season.clone()),
                    amount_fen: Set(row.amount_fen),
                    bill_date: Set(row.bill_date),
                    due_date: Set(row.due_date),
                    status: Set(if row.paid.is_some() { BillStatus::Paid } else { BillStatus::Unpaid }),
                    paid_at: Set(row.paid.as_ref().map(|p| p.2)),
                    late_fee_paid_fen: Set(row.paid.as_ref().map(|p| p.3)),
                    order_id: Set(row.paid.as_ref().map(|p| p.0.clone())),
                    hold_until: Set(None),
                })
                .await?;
                if let Some((out_trade_no, transaction_id, paid_at, late_fee)) = &row.paid {
                    seed_paid_order(&tx, row, out_trade_no, transaction_id, *paid_at, *late_fee, mchid, appid).await?;
                }
            }
            for row in &data.users {
                let new = NewUser { id: &row.id, phone: &row.phone, password_hash: &row.password_hash, nickname: &row.nickname, now };
                HeatingUsers(&tx).insert(new).await?;
            }
            written.push("demo accounts");
        }
        tx.commit().await?;
        Ok(written)
    }
}

/// A seeded bill's paid order: the payment order (paid six minutes after it was placed), the
/// heating order and its one line.
#[allow(clippy::too_many_arguments)]
async fn seed_paid_order(
    tx: &DatabaseTransaction,
    row: &SeedBill,
    out_trade_no: &str,
    transaction_id: &str,
    paid_at: i64,
    late_fee: i64,
    mchid: &str,
    appid: &str,
) -> Result<(), StorageError> {
    let created_at = paid_at - 360_000;
    let amount_fen = row.amount_fen + late_fee;
    let description = format!("供热费 {} {}", row.heat_account, row.heating_season);
    PaymentStore(tx)
        .insert(NewPayOrder {
            out_trade_no,
            api: "heating",
            appid,
            mchid,
            user_id: None,
            payer_openid: None,
            description: &description,
            amount_fen,
            created_at,
            expires_at: created_at + crate::heating::service::ORDER_TTL_MS,
        })
        .await?;
    PaymentStore(tx).mark_reported(out_trade_no, Reported::Paid { transaction_id, paid_at }).await?;
    insert_new(tx, order::ActiveModel { out_trade_no: Set(out_trade_no.to_owned()), heat_account: Set(row.heat_account.clone()) }).await?;
    let line = OrderLine { bill_id: row.bill_id.clone(), amount_fen: row.amount_fen, late_fee_fen: late_fee };
    insert_new(tx, order_bill::ActiveModel {
        out_trade_no: Set(out_trade_no.to_owned()),
        bill_id: Set(line.bill_id),
        amount_fen: Set(line.amount_fen),
        late_fee_fen: Set(line.late_fee_fen),
    })
    .await?;
    Ok(())
}

/// Insert a seed row (the set's marker, claimed in the same transaction, keeps this to once).
async fn insert_new<A>(tx: &DatabaseTransaction, row: A) -> Result<(), StorageError>
where
    A: sea_orm::ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
{
    <A::Entity as EntityTrait>::insert(row).exec_without_returning(tx).await?;
    Ok(())
}
