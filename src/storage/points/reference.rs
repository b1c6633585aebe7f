//! Packages (001 §2.1), system status (§4.1) and notices (§4.2), and seeding: the reference data
//! every database gets, and the demo data a sandbox database gets.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

use super::entity::{
    ConsumptionKind, KeyStatus, consumption, notice, order, package, status, user,
};
use super::keys::{NewApiKey, PointsKeys};
use crate::storage::identity::{WechatLogin, WechatStore};
use crate::storage::payments::{NewPayOrder, PaymentStore, Reported};
use crate::storage::{StorageError, claim_seed, write};

/// A package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `pkg_…`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Points it holds.
    pub points: i64,
    /// Price, fen.
    pub price_fen: i64,
    /// Price before the discount, fen.
    pub original_price_fen: i64,
    /// Sells best.
    pub is_hot: bool,
    /// Description.
    pub description: String,
    /// Position in the list.
    pub sort_order: i32,
    /// On sale.
    pub active: bool,
}

impl From<package::Model> for Package {
    fn from(row: package::Model) -> Package {
        Package {
            id: row.id,
            name: row.name,
            points: row.points,
            price_fen: row.price_fen,
            original_price_fen: row.original_price_fen,
            is_hot: row.is_hot,
            description: row.description,
            sort_order: row.sort_order,
            active: row.active,
        }
    }
}

/// The system status (001 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemStatus {
    /// `normal` or `error`.
    pub api_status: String,
    /// What to tell users.
    pub message: String,
    /// Writes are refused while true.
    pub maintenance: bool,
    /// The expected end of the current (or the next announced) maintenance, ms.
    pub maintenance_end_time: Option<i64>,
}

/// A notice (001 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The text.
    pub content: String,
    /// Shown from, ms.
    pub start_time: i64,
    /// Shown until, ms.
    pub end_time: i64,
}

/// A seeded paid or failed purchase.
#[derive(Debug, Clone)]
pub struct SeedPurchase {
    /// `PT…`.
    pub out_trade_no: String,
    /// The package bought.
    pub package_id: &'static str,
    /// Placed at, ms.
    pub created_at: i64,
    /// Paid (WeChat's transaction id), or failed.
    pub transaction_id: Option<String>,
}

/// A seeded API key.
#[derive(Debug, Clone)]
pub struct SeedKey {
    /// `ak_…`.
    pub id: &'static str,
    /// Name.
    pub name: &'static str,
    /// Digest of its secret.
    pub digest: String,
    /// Status.
    pub status: KeyStatus,
    /// Created, ms.
    pub created_at: i64,
    /// Expires, ms.
    pub expires_at: i64,
    /// Last used, ms.
    pub last_used_at: Option<i64>,
}

/// A seeded consumption record.
#[derive(Debug, Clone)]
pub struct SeedConsumption {
    /// `cr_…`.
    pub id: String,
    /// Title.
    pub title: &'static str,
    /// Description.
    pub description: Option<&'static str>,
    /// Points.
    pub points: i64,
    /// When, ms.
    pub consumed_at: i64,
    /// The key that spent them.
    pub api_key: Option<(&'static str, &'static str)>,
}

/// The demo user and their history.
#[derive(Debug, Clone)]
pub struct SeedDemo {
    /// User id.
    pub user_id: &'static str,
    /// Nickname.
    pub nick_name: &'static str,
    /// Avatar URL.
    pub avatar_url: &'static str,
    /// Their WeChat identity: appid, openid, sealed session key.
    pub wechat: (String, String, String),
    /// Balance (the paid purchases less the consumption).
    pub balance: i64,
    /// When it expires, ms.
    pub points_expire_at: i64,
    /// Purchases.
    pub purchases: Vec<SeedPurchase>,
    /// Keys.
    pub keys: Vec<SeedKey>,
    /// Consumption records.
    pub consumption: Vec<SeedConsumption>,
    /// A notice shown now.
    pub notice: Notice,
    /// The merchant the purchases were paid to: (appid, mchid).
    pub merchant: (String, String),
}

/// Packages, status, notices, seed.
#[derive(Debug, Clone, Copy)]
pub struct PointsReference<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>>
    PointsReference<'_, C>
{
    /// operationId `points_package_list`: the packages on sale, in list order.
    pub async fn packages(&self) -> Result<Vec<Package>, StorageError> {
        Ok(package::Entity::find()
            .filter(package::Column::Active.eq(true))
            .order_by_asc(package::Column::SortOrder)
            .order_by_asc(package::Column::Id)
            .all(self.0)
            .await?
            .into_iter()
            .map(Package::from)
            .collect())
    }

    /// operationId `points_order_create`: packages `ids`, on sale or not, each once, in no
    /// order; ids that are not packages are left out. One statement (`crate::coalesce` reads
    /// many requests' packages with it).
    pub async fn packages_by_id(&self, ids: &[String]) -> Result<Vec<Package>, StorageError> {
        Ok(package::Entity::find()
            .filter(package::Column::Id.is_in(ids.iter().map(String::as_str)))
            .all(self.0)
            .await?
            .into_iter()
            .map(Package::from)
            .collect())
    }

    /// operationId `system_status_get`: the status (seeded on every database).
    pub async fn status(&self) -> Result<SystemStatus, StorageError> {
        let row = status::Entity::find_by_id(1)
            .one(self.0)
            .await?
            .ok_or_else(|| StorageError::Corrupt("points_status has no row".into()))?;
        Ok(SystemStatus {
            api_status: row.api_status,
            message: row.message,
            maintenance: row.maintenance,
            maintenance_end_time: row.maintenance_end_time,
        })
    }

    /// Set the status (operators: `mpapi points status`); false when the database was never
    /// seeded (no `mpapi serve` ran on it yet).
    pub async fn set_status(&self, new: &SystemStatus, now: i64) -> Result<bool, StorageError> {
        let updated = status::Entity::update_many()
            .col_expr(
                status::Column::ApiStatus,
                Expr::value(new.api_status.clone()),
            )
            .col_expr(status::Column::Message, Expr::value(new.message.clone()))
            .col_expr(status::Column::Maintenance, Expr::value(new.maintenance))
            .col_expr(
                status::Column::MaintenanceEndTime,
                Expr::value(new.maintenance_end_time),
            )
            .col_expr(status::Column::UpdatedAt, Expr::value(now))
            .filter(status::Column::Id.eq(1))
            .exec(self.0)
            .await?;
        Ok(crate::storage::affected(updated))
    }

    /// operationId `system_notice_get`: the newest notice shown at `now`, if any.
    pub async fn notice(&self, now: i64) -> Result<Option<Notice>, StorageError> {
        Ok(notice::Entity::find()
            .filter(notice::Column::StartTime.lte(now))
            .filter(notice::Column::EndTime.gt(now))
            .order_by_desc(notice::Column::StartTime)
            .one(self.0)
            .await?
            .map(|row| Notice {
                content: row.content,
                start_time: row.start_time,
                end_time: row.end_time,
            }))
    }

    /// Publish a notice shown from `notice.start_time` until `notice.end_time` (operators).
    pub async fn add_notice(&self, id: &str, notice: &Notice) -> Result<(), StorageError> {
        notice::Entity::insert(notice::ActiveModel {
            id: Set(id.to_owned()),
            content: Set(notice.content.clone()),
            start_time: Set(notice.start_time),
            end_time: Set(notice.end_time),
        })
        .exec_without_returning(self.0)
        .await?;
        Ok(())
    }

    /// Withdraw every notice shown at `now` or later (operators): one being shown ends at
    /// `now`; one still to come ends where it starts, so it is never shown. Answers how many.
    pub async fn withdraw_notices(&self, now: i64) -> Result<u64, StorageError> {
        let shown = notice::Entity::update_many()
            .col_expr(notice::Column::EndTime, Expr::value(now))
            .filter(notice::Column::StartTime.lte(now))
            .filter(notice::Column::EndTime.gt(now))
            .exec(self.0)
            .await?;
        let coming = notice::Entity::update_many()
            .col_expr(notice::Column::EndTime, Expr::col(notice::Column::StartTime))
            .filter(notice::Column::StartTime.gt(now))
            .exec(self.0)
            .await?;
        Ok(shown.rows_affected + coming.rows_affected)
    }

    /// Seed, once per database (markers `points.reference`, `points.demo`): the packages and
    /// the status row always; the demo user, their purchases, keys, consumption and a notice
    /// when `demo` is given. Answers what was written.
    pub async fn seed(
        &self,
        packages: &[Package],
        initial: &SystemStatus,
        demo: Option<SeedDemo>,
        now: i64,
    ) -> Result<Vec<&'static str>, StorageError> {
        let tx = write(self.0).await?;
        let mut written = Vec::new();
        if claim_seed(&tx, "points.reference", now).await? {
            for p in packages {
                package::Entity::insert(package::ActiveModel {
                    id: Set(p.id.clone()),
                    name: Set(p.name.clone()),
                    points: Set(p.points),
                    price_fen: Set(p.price_fen),
                    original_price_fen: Set(p.original_price_fen),
                    is_hot: Set(p.is_hot),
                    description: Set(p.description.clone()),
                    sort_order: Set(p.sort_order),
                    active: Set(p.active),
                })
                .exec_without_returning(&tx)
                .await?;
            }
            status::Entity::insert(status::ActiveModel {
                id: Set(1),
                api_status: Set(initial.api_status.clone()),
                message: Set(initial.message.clone()),
                maintenance: Set(initial.maintenance),
                maintenance_end_time: Set(initial.maintenance_end_time),
                updated_at: Set(now),
            })
            .exec_without_returning(&tx)
            .await?;
            written.push("packages and system status");
        }
        if let Some(demo) = demo
            && claim_seed(&tx, "points.demo", now).await?
        {
            seed_demo(&tx, demo, packages, now).await?;
            written.push("the demo user");
        }
        tx.commit().await?;
        Ok(written)
    }
}

async fn seed_demo(
    tx: &DatabaseTransaction,
    demo: SeedDemo,
    packages: &[Package],
    now: i64,
) -> Result<(), StorageError> {
    user::Entity::insert(user::ActiveModel {
        id: Set(demo.user_id.to_owned()),
        nick_name: Set(demo.nick_name.to_owned()),
        avatar_url: Set(demo.avatar_url.to_owned()),
        phone: Set(None),
        balance: Set(demo.balance),
        points_expire_at: Set(Some(demo.points_expire_at)),
        created_at: Set(now - 200 * 86_400_000),
        updated_at: Set(now),
    })
    .exec_without_returning(tx)
    .await?;
    let (appid, openid, session_key_cipher) = &demo.wechat;
    WechatStore(tx)
        .upsert(WechatLogin {
            appid,
            openid,
            api: "points",
            unionid: None,
            session_key_cipher,
            new_user_id: demo.user_id,
            now,
        })
        .await?;
    let (merchant_appid, mchid) = &demo.merchant;
    for purchase in &demo.purchases {
        let p = packages
            .iter()
            .find(|p| p.id == purchase.package_id)
            .ok_or_else(|| {
                StorageError::Corrupt(format!("seed package {} missing", purchase.package_id))
            })?;
        let payments = PaymentStore(tx);
        payments
            .insert(NewPayOrder {
                out_trade_no: &purchase.out_trade_no,
                api: "points",
                appid: merchant_appid,
                mchid,
                user_id: Some(demo.user_id),
                payer_openid: Some(openid),
                description: &format!("API积分商城 {}", p.name),
                amount_fen: p.price_fen,
                created_at: purchase.created_at,
                expires_at: purchase.created_at + 2 * 3_600_000,
            })
            .await?;
        let reported = match &purchase.transaction_id {
            Some(transaction_id) => Reported::Paid { transaction_id, paid_at: purchase.created_at + 45_000 },
            None => Reported::Failed,
        };
        payments.mark_reported(&purchase.out_trade_no, reported).await?;
        order::Entity::insert(order::ActiveModel {
            out_trade_no: Set(purchase.out_trade_no.clone()),
            user_id: Set(demo.user_id.to_owned()),
            package_id: Set(p.id.clone()),
            package_name: Set(p.name.clone()),
            points: Set(p.points),
            price_fen: Set(p.price_fen),
        })
        .exec_without_returning(tx)
        .await?;
    }
    for key in &demo.keys {
        PointsKeys(tx)
            .insert(NewApiKey {
                id: key.id,
                user_id: demo.user_id,
                name: key.name,
                digest: &key.digest,
                status: key.status,
                created_at: key.created_at,
                expires_at: key.expires_at,
                last_used_at: key.last_used_at,
            })
            .await?;
    }
    for record in &demo.consumption {
        consumption::Entity::insert(consumption::ActiveModel {
            id: Set(record.id.clone()),
            user_id: Set(demo.user_id.to_owned()),
            kind: Set(ConsumptionKind::Consume),
            title: Set(record.title.to_owned()),
            description: Set(record.description.map(str::to_owned)),
            points: Set(record.points),
            consumed_at: Set(record.consumed_at),
            api_key_id: Set(record.api_key.map(|(id, _)| id.to_owned())),
            api_key_name: Set(record.api_key.map(|(_, name)| name.to_owned())),
            idempotency_key: Set(Some(format!("seed-{}", record.id))),
        })
        .exec_without_returning(tx)
        .await?;
    }
    notice::Entity::insert(notice::ActiveModel {
        id: Set("notice_demo".into()),
        content: Set(demo.notice.content.clone()),
        start_time: Set(demo.notice.start_time),
        end_time: Set(demo.notice.end_time),
    })
    .exec_without_returning(tx)
    .await?;
    Ok(())
}
