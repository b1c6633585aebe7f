//! The community API's own storage (002), one store per area: [`CommunityTree`] (the address
//! tree, read only but for seeding), [`CommunityUsers`] (accounts), [`Household`] (people,
//! their bindings to houses, reviews, owner-consent lookups), [`Fees`] (fee orders, the bills
//! that pay them, and the [`Settler`] the shared payment store calls when a bill is paid).
//! Sessions, WeChat identities, codes and payment orders are in the shared stores.
//!
//! Every "only if still …" change is a conditional write whose affected-row count decides: a
//! review is decided or deleted only while pending, an order is claimed by one payment, a bill
//! settles only orders still unpaid.

pub mod entity;
mod fees;
mod household;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

pub use entity::{
    binding::Model as Binding, building::Model as Building, community::Model as Community,
    fee_order::Model as FeeOrder, floor::Model as Floor, house::Model as House,
    person::Model as Person, review::Model as Review, unit::Model as Unit, user::Model as User,
};
pub use fees::{Bill, Claim, FeeFilter, Fees, Settler};
pub use household::{
    AutoBind, Decided, Household, LookupClaim, NewBinding, NewReview, PersonData, ReviewStatus,
    Submitted,
    person_data, review_person,
};

use entity::{building, community, floor, house, unit, user};

use super::{Db, StorageError, is_unique_violation, write};

impl Db {
    /// The address tree.
    pub fn community_tree(&self) -> CommunityTree<'_, sea_orm::DatabaseConnection> {
        CommunityTree(self.conn())
    }

    /// Mini-program accounts.
    pub fn community_users(&self) -> CommunityUsers<'_, sea_orm::DatabaseConnection> {
        CommunityUsers(self.conn())
    }

    /// People, bindings, reviews, owner checks.
    pub fn household(&self) -> Household<'_, sea_orm::DatabaseConnection> {
        Household(self.conn())
    }

    /// Fee orders and bills.
    pub fn fees(&self) -> Fees<'_, sea_orm::DatabaseConnection> {
        Fees(self.conn())
    }
}

/// A house with every level above it (the wire's `introduction` and the security platform's
/// address come from these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseAt {
    /// The house.
    pub house: House,
    /// Its floor.
    pub floor: Floor,
    /// Its unit.
    pub unit: Unit,
    /// Its building.
    pub building: Building,
    /// Its community.
    pub community: Community,
}

impl HouseAt {
    /// `晨曦家园1栋1单元1楼101号` (3.1.1 introduction).
    pub fn introduction(&self) -> String {
        format!(
            "{}{}{}{}{}",
            self.community.name, self.building.name, self.unit.name, self.floor.name, self.house.name
        )
    }
}

/// `community_community` … `community_house`.
#[derive(Debug, Clone, Copy)]
pub struct CommunityTree<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> CommunityTree<'_, C> {
    /// operationId `community_list`: every community, in display order.
    pub async fn communities(&self) -> Result<Vec<Community>, StorageError> {
        Ok(community::Entity::find()
            .order_by_asc(community::Column::SortOrder)
            .order_by_asc(community::Column::Id)
            .all(self.0)
            .await?)
    }

    /// Whether a community has the identifier `identifier` (its 唯一标识编码, 2.1.1 `identifier`).
    pub async fn has_community(&self, identifier: &str) -> Result<bool, StorageError> {
        Ok(community::Entity::find().filter(community::Column::Identifier.eq(identifier)).count(self.0).await? > 0)
    }

    /// operationId `building_list`: the buildings of the community `identifier`.
    pub async fn buildings(&self, identifier: &str) -> Result<Vec<Building>, StorageError> {
        Ok(building::Entity::find()
            .filter(building::Column::CommunityIdentifier.eq(identifier))
            .order_by_asc(building::Column::Number)
            .all(self.0)
            .await?)
    }

    /// operationId `unit_list`: the units of building `building_id`.
    pub async fn units(&self, building_id: i64) -> Result<Vec<Unit>, StorageError> {
        Ok(unit::Entity::find()
            .filter(unit::Column::BuildingId.eq(building_id))
            .order_by_asc(unit::Column::Number)
            .all(self.0)
            .await?)
    }

    /// operationId `floor_list`: the floors of unit `unit_id`.
    pub async fn floors(&self, unit_id: i64) -> Result<Vec<Floor>, StorageError> {
        Ok(floor::Entity::find()
            .filter(floor::Column::UnitId.eq(unit_id))
            .order_by_asc(floor::Column::Number)
            .all(self.0)
            .await?)
    }

    /// operationId `house_list`: the houses of floor `floor_id`.
    pub async fn houses(&self, floor_id: i64) -> Result<Vec<House>, StorageError> {
        Ok(house::Entity::find()
            .filter(house::Column::FloorId.eq(floor_id))
            .order_by_asc(house::Column::Number)
            .all(self.0)
            .await?)
    }

    /// House `id` with its floor, unit, building and community; `None` when any is missing.
    pub async fn house(&self, id: i64) -> Result<Option<HouseAt>, StorageError> {
        let Some(house) = house::Entity::find_by_id(id).one(self.0).await? else {
            return Ok(None);
        };
        let Some(floor) = floor::Entity::find_by_id(house.floor_id).one(self.0).await? else {
            return Ok(None);
        };
        let Some(unit) = unit::Entity::find_by_id(floor.unit_id).one(self.0).await? else {
            return Ok(None);
        };
        let Some(building) = building::Entity::find_by_id(unit.building_id).one(self.0).await?
        else {
            return Ok(None);
        };
        let community = community::Entity::find()
            .filter(community::Column::Identifier.eq(&building.community_identifier))
            .one(self.0)
            .await?;
        Ok(community.map(|community| HouseAt { house, floor, unit, building, community }))
    }

    /// The house at an address given by numbers (the security platform's way of naming one).
    pub async fn house_at(
        &self,
        identifier: &str,
        numbers: [i64; 4],
    ) -> Result<Option<i64>, StorageError> {
        let [building_number, unit_number, floor_number, house_number] = numbers;
        let Some(building) = building::Entity::find()
            .filter(building::Column::CommunityIdentifier.eq(identifier))
            .filter(building::Column::Number.eq(building_number))
            .one(self.0)
            .await?
        else {
            return Ok(None);
        };
        let Some(unit) = unit::Entity::find()
            .filter(unit::Column::BuildingId.eq(building.id))
            .filter(unit::Column::Number.eq(unit_number))
            .one(self.0)
            .await?
        else {
            return Ok(None);
        };
        let Some(floor) = floor::Entity::find()
            .filter(floor::Column::UnitId.eq(unit.id))
            .filter(floor::Column::Number.eq(floor_number))
            .one(self.0)
            .await?
        else {
            return Ok(None);
        };
        Ok(house::Entity::find()
            .filter(house::Column::FloorId.eq(floor.id))
            .filter(house::Column::Number.eq(house_number))
            .one(self.0)
            .await?
            .map(|house| house.id))
    }

    /// Seed the tree (rows whose id exists are left alone).
    pub async fn seed(
        &self,
        communities: Vec<Community>,
        buildings: Vec<Building>,
        units: Vec<Unit>,
        floors: Vec<Floor>,
        houses: Vec<House>,
    ) -> Result<(), StorageError> {
        macro_rules! insert_all {
            ($rows:expr, $module:ident) => {
                for row in $rows {
                    let active: $module::ActiveModel = row.into();
                    $module::Entity::insert(active)
                        .on_conflict(OnConflict::column($module::Column::Id).do_nothing().to_owned())
                        .exec_without_returning(self.0)
                        .await?;
                }
            };
        }
        insert_all!(communities, community);
        insert_all!(buildings, building);
        insert_all!(units, unit);
        insert_all!(floors, floor);
        insert_all!(houses, house);
        Ok(())
    }
}

/// `community_user`.
#[derive(Debug, Clone, Copy)]
pub struct CommunityUsers<'c, C>(pub &'c C);

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> CommunityUsers<'_, C> {
    /// Account `id`.
    pub async fn get(&self, id: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find_by_id(id.to_owned()).one(self.0).await?)
    }

    /// The account last logged in from `openid`.
    pub async fn by_openid(&self, openid: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find().filter(user::Column::Openid.eq(openid)).one(self.0).await?)
    }

    /// The account of `phone`.
    pub async fn by_phone(&self, phone: &str) -> Result<Option<User>, StorageError> {
        Ok(user::Entity::find().filter(user::Column::Phone.eq(phone)).one(self.0).await?)
    }

    /// operationId `weapp_user_register`: the account of `phone`, created (id `new_id`) unless
    /// it exists, now logged in from `openid` (an account moves to the WeChat identity it last
    /// registered or logged in from) with the nickname and avatar given. Answers the account,
    /// whether this call created it, and whether it moved from another WeChat identity.
    pub async fn register_or_login(
        &self,
        new_id: &str,
        openid: &str,
        phone: &str,
        name: &str,
        avatar: &str,
        now: i64,
    ) -> Result<(User, bool, bool), StorageError> {
        let tx = write(self.0).await?;
        // The openid leaves whatever account held it before.
        user::Entity::update_many()
            .col_expr(user::Column::Openid, Expr::value(Option::<String>::None))
            .filter(user::Column::Openid.eq(openid))
            .filter(user::Column::Phone.ne(phone))
            .exec(&tx)
            .await?;
        let existing = user::Entity::find().filter(user::Column::Phone.eq(phone)).one(&tx).await?;
        let created = existing.is_none();
        let moved = existing.as_ref().is_some_and(|row| row.openid.as_deref().is_some_and(|o| o != openid));
        let row = match existing {
            Some(row) => {
                let mut active: user::ActiveModel = row.into();
                active.openid = Set(Some(openid.to_owned()));
                active.name = Set(name.to_owned());
                active.avatar = Set(avatar.to_owned());
                active.updated_at = Set(now);
                user::Entity::update(active).exec(&tx).await?
            }
            None => {
                let row = user::Model {
                    id: new_id.to_owned(),
                    openid: Some(openid.to_owned()),
                    phone: phone.to_owned(),
                    name: name.to_owned(),
                    avatar: avatar.to_owned(),
                    verified_phone: None,
                    created_at: now,
                    updated_at: now,
                };
                let active: user::ActiveModel = row.clone().into();
                match user::Entity::insert(active).exec_without_returning(&tx).await {
                    Ok(_) => row,
                    // A concurrent registration of the same phone won: log into its account.
                    Err(error) if is_unique_violation(&error) => {
                        tx.rollback().await?;
                        return Box::pin(self.register_or_login(new_id, openid, phone, name, avatar, now))
                            .await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        };
        tx.commit().await?;
        Ok((row, created, moved))
    }

    /// Remember the phone the account verified with a code (2.2.1): the form's phone must be it
    /// or the account's.
    pub async fn set_verified_phone(&self, id: &str, phone: &str, now: i64) -> Result<(), StorageError> {
        user::Entity::update_many()
            .col_expr(user::Column::VerifiedPhone, Expr::value(phone))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .exec(self.0)
            .await?;
        Ok(())
    }
}

/// The address tree to seed.
#[derive(Debug, Clone, Default)]
pub struct SeedTree {
    /// 小区.
    pub communities: Vec<Community>,
    /// 楼栋.
    pub buildings: Vec<Building>,
    /// 单元.
    pub units: Vec<Unit>,
    /// 楼层.
    pub floors: Vec<Floor>,
    /// 房屋.
    pub houses: Vec<House>,
}

/// A fee order to seed.
#[derive(Debug, Clone)]
pub struct SeedOrder {
    /// 20-digit order number.
    pub number: String,
    /// The house charged.
    pub house_id: Option<i64>,
    /// 订单名称.
    pub title: String,
    /// Fen.
    pub amount_fen: i64,
    /// 收费来源.
    pub manager: String,
    /// 订单备注.
    pub remark: Option<String>,
    /// 订单明细.
    pub extra: Option<String>,
}

/// A paid bill to seed, with the orders it paid.
#[derive(Debug, Clone)]
pub struct SeedBill {
    /// out_trade_no (32 characters).
    pub out_trade_no: String,
    /// The payer's account and openid.
    pub user: (String, Option<String>),
    /// The merchant's appid and mchid.
    pub merchant: (String, String),
    /// WeChat Pay's transaction id.
    pub transaction_id: String,
    /// When it was paid, ms.
    pub paid_at: i64,
    /// The orders it paid.
    pub orders: Vec<SeedOrder>,
}

/// A demo person: their data, their account (activated) and bindings with (shouquan, charge).
pub type SeedPerson = (PersonData, Option<String>, Vec<(NewBinding, bool, bool)>);

/// The demo data.
#[derive(Debug, Clone, Default)]
pub struct SeedDemo {
    /// Accounts.
    pub users: Vec<User>,
    /// People, their account (activated) and bindings with (shouquan, charge).
    pub people: Vec<SeedPerson>,
    /// Reviews with their state and refusal reason.
    pub reviews: Vec<(NewReview, ReviewStatus, Option<String>)>,
    /// Unpaid orders.
    pub orders: Vec<SeedOrder>,
    /// Paid bills.
    pub bills: Vec<SeedBill>,
}

impl<C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>> CommunityTree<'_, C> {
    /// Seed a database once: the tree always, the demo data when given. Answers what was
    /// written.
    pub async fn seed_all(&self, tree: SeedTree, demo: Option<SeedDemo>, now: i64) -> Result<Vec<&'static str>, StorageError> {
        let tx = write(self.0).await?;
        let mut written = Vec::new();
        if super::claim_seed(&tx, "community.tree", now).await? {
            CommunityTree(&tx).seed(tree.communities, tree.buildings, tree.units, tree.floors, tree.houses).await?;
            written.push("the address tree");
        }
        if let Some(demo) = demo
            && super::claim_seed(&tx, "community.demo", now).await?
        {
            seed_demo(&tx, demo, now).await?;
            written.push("the demo households");
        }
        tx.commit().await?;
        Ok(written)
    }
}

async fn seed_demo(tx: &DatabaseTransaction, demo: SeedDemo, now: i64) -> Result<(), StorageError> {
    for row in demo.users {
        let active: user::ActiveModel = row.into();
        user::Entity::insert(active).exec_without_returning(tx).await?;
    }
    let household = Household(tx);
    for (data, account, bindings) in demo.people {
        household.seed_person(data, account.as_deref(), &bindings, now).await?;
    }
    for (review, status, reason) in demo.reviews {
        household.seed_review(review, status, reason.as_deref()).await?;
    }
    for o in &demo.orders {
        seed_order(tx, o, None, now).await?;
    }
    for bill in &demo.bills {
        let payments = crate::storage::payments::PaymentStore(tx);
        payments
            .insert(crate::storage::payments::NewPayOrder {
                out_trade_no: &bill.out_trade_no,
                api: "community",
                appid: &bill.merchant.0,
                mchid: &bill.merchant.1,
                user_id: Some(&bill.user.0),
                payer_openid: bill.user.1.as_deref(),
                description: &format!("物业缴费-{}笔", bill.orders.len()),
                amount_fen: bill.orders.iter().map(|o| o.amount_fen).sum(),
                created_at: bill.paid_at - 60_000,
                expires_at: bill.paid_at + 29 * 60_000,
            })
            .await?;
        payments
            .mark_reported(
                &bill.out_trade_no,
                crate::storage::payments::Reported::Paid { transaction_id: &bill.transaction_id, paid_at: bill.paid_at },
            )
            .await?;
        for o in &bill.orders {
            seed_order(tx, o, Some((&bill.out_trade_no, bill.paid_at)), now).await?;
        }
    }
    Ok(())
}

async fn seed_order(tx: &DatabaseTransaction, o: &SeedOrder, paid_by: Option<(&str, i64)>, now: i64) -> Result<i64, StorageError> {
    Fees(tx)
        .seed_order(&o.number, o.house_id, &o.title, o.amount_fen, &o.manager, o.remark.as_deref(), o.extra.as_deref(), paid_by, now)
        .await
}
