//! The o2o API's storage (004): the GB/T 2260 areas, accounts and the openids bound to them,
//! merchant categories, merchants and goods (the catalogue), orders with their verify codes, and
//! the bridge page's scene ids. Rows are the entity models (plain structs).
//!
//! This file: the areas and the catalogue; `orders.rs`: accounts, orders, codes, refunds,
//! scenes.

pub mod demo;
pub mod entity;
pub mod orders;
pub mod seed;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

pub use entity::area::Model as Area;
pub use entity::category::Model as Category;
pub use entity::goods::Model as Goods;
pub use entity::merchant::Model as Merchant;
pub use entity::user::Model as User;

use super::{Db, StorageError, contains, write};
use entity::*;

/// The hot cities of the city picker (`热门`), in order: 北京, 上海, 广州, 深圳, 杭州, 成都.
pub const HOT_CITIES: [i32; 6] = [110100, 310100, 440100, 440300, 330100, 510100];

impl Db {
    /// The o2o store over the pool.
    pub fn o2o(&self) -> O2oStore<'_, sea_orm::DatabaseConnection> {
        O2oStore(self.conn())
    }

    /// Seed the areas (`crate::areas::all`, ids 1… in code order, [`HOT_CITIES`] ranked) once
    /// per database: `false` when it has them already.
    pub async fn seed_o2o_areas(&self, now: i64) -> Result<bool, StorageError> {
        use sea_orm::Set;
        let tx = write(self.conn()).await?;
        if !super::claim_seed(&tx, "o2o.areas", now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let rows: Vec<area::ActiveModel> = crate::areas::all()
            .iter()
            .enumerate()
            .map(|(i, a)| area::ActiveModel {
                id: Set(i as i64 + 1),
                area_id: Set(a.area_id),
                name: Set(a.name.to_string()),
                parent_id: Set(a.parent_id),
                tier: Set(i32::from(a.tier)),
                initial: Set(a.initial.map(String::from).unwrap_or_default()),
                lng_e6: Set(i64::from(a.lng_e6)),
                lat_e6: Set(i64::from(a.lat_e6)),
                hot_rank: Set(HOT_CITIES.iter().position(|&c| c == a.area_id).map_or(0, |p| p as i32 + 1)),
            })
            .collect();
        for chunk in rows.chunks(300) {
            area::Entity::insert_many(chunk.to_vec()).exec_without_returning(&tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// The o2o tables, over the pool or a transaction.
#[derive(Debug, Clone, Copy)]
pub struct O2oStore<'c, C>(pub &'c C);

/// What a merchant search filters on (004 §商家模块 获取商家列表); every part optional.
#[derive(Debug, Clone, Default)]
pub struct MerchantFilter<'a> {
    /// `city_id`: the merchant's city area_id.
    pub city_id: Option<i32>,
    /// `keyword`: contained in the name, brand or address.
    pub keyword: Option<&'a str>,
    /// The category and its sub-categories.
    pub category_ids: Option<Vec<i64>>,
    /// A box around the user's position (micro-degrees, inclusive): the radius' candidates.
    pub within: Option<((i64, i64), (i64, i64))>,
}

impl<C: ConnectionTrait> O2oStore<'_, C> {
    /// Areas down to `tier` (1 provinces … 3 counties), by area_id.
    pub async fn areas(&self, tier: i32) -> Result<Vec<Area>, StorageError> {
        Ok(area::Entity::find().filter(area::Column::Tier.lte(tier)).order_by_asc(area::Column::AreaId).all(self.0).await?)
    }

    /// The area `area_id`.
    pub async fn area(&self, area_id: i32) -> Result<Option<Area>, StorageError> {
        Ok(area::Entity::find().filter(area::Column::AreaId.eq(area_id)).one(self.0).await?)
    }

    /// The categories with status 1 (正常), by sort then id.
    pub async fn categories(&self) -> Result<Vec<Category>, StorageError> {
        Ok(category::Entity::find()
            .filter(category::Column::Status.eq(1))
            .order_by_asc(category::Column::Sort)
            .order_by_asc(category::Column::Id)
            .all(self.0)
            .await?)
    }

    /// Merchants with status 1 (正常) matching `filter`, by id.
    pub async fn merchants(&self, filter: &MerchantFilter<'_>) -> Result<Vec<Merchant>, StorageError> {
        let mut query = merchant::Entity::find().filter(merchant::Column::Status.eq(1));
        if let Some(city) = filter.city_id {
            query = query.filter(merchant::Column::CityId.eq(city));
        }
        if let Some(keyword) = filter.keyword {
            query = query.filter(
                Condition::any()
                    .add(Expr::col(merchant::Column::Name).like(contains(keyword)))
                    .add(Expr::col(merchant::Column::Brand).like(contains(keyword)))
                    .add(Expr::col(merchant::Column::Address).like(contains(keyword))),
            );
        }
        if let Some(ids) = &filter.category_ids {
            query = query.filter(merchant::Column::MerchantCategoryId.is_in(ids.iter().copied()));
        }
        if let Some(((lat0, lat1), (lng0, lng1))) = filter.within {
            query = query.filter(merchant::Column::LatE6.between(lat0, lat1)).filter(merchant::Column::LngE6.between(lng0, lng1));
        }
        Ok(query.order_by_asc(merchant::Column::Id).all(self.0).await?)
    }

    /// The merchant `id` if its status is 1 (正常).
    pub async fn merchant(&self, id: i64) -> Result<Option<Merchant>, StorageError> {
        Ok(merchant::Entity::find_by_id(id).filter(merchant::Column::Status.eq(1)).one(self.0).await?)
    }

    /// The lowest price of the listed (上架) goods of each of `merchant_ids` still valid on
    /// `today` (Beijing, `YYYY-MM-DD`: `end_date` not past), fen.
    pub async fn lowest_prices(&self, merchant_ids: &[i64], today: &str) -> Result<Vec<(i64, i64)>, StorageError> {
        Ok(goods::Entity::find()
            .select_only()
            .column(goods::Column::MerchantId)
            .column_as(goods::Column::PriceFen.min(), "lowest")
            .filter(goods::Column::MerchantId.is_in(merchant_ids.iter().copied()))
            .filter(goods::Column::Status.eq(1))
            .filter(goods::Column::EndDate.gte(today))
            .group_by(goods::Column::MerchantId)
            .into_tuple()
            .all(self.0)
            .await?)
    }

    /// The listed (上架) goods of merchant `merchant_id` still valid on `today` (Beijing,
    /// `YYYY-MM-DD`: `end_date` not past), by id.
    pub async fn goods_of(&self, merchant_id: i64, today: &str) -> Result<Vec<Goods>, StorageError> {
        Ok(goods::Entity::find()
            .filter(goods::Column::MerchantId.eq(merchant_id))
            .filter(goods::Column::Status.eq(1))
            .filter(goods::Column::EndDate.gte(today))
            .order_by_asc(goods::Column::Id)
            .all(self.0)
            .await?)
    }

    /// The goods `id` (listed or not: an order's snapshot may name a delisted one).
    pub async fn goods(&self, id: i64) -> Result<Option<Goods>, StorageError> {
        Ok(goods::Entity::find_by_id(id).one(self.0).await?)
    }

    /// The areas among `area_ids`, any tier (a merchant's province, city and county names).
    pub async fn areas_of(&self, area_ids: &[i32]) -> Result<Vec<Area>, StorageError> {
        Ok(area::Entity::find().filter(area::Column::AreaId.is_in(area_ids.iter().copied())).all(self.0).await?)
    }

    /// The categories among `ids` whatever their status: a merchant keeps its category's name
    /// when the category is no longer shown in the tree.
    pub async fn categories_of(&self, ids: &[i64]) -> Result<Vec<Category>, StorageError> {
        Ok(category::Entity::find().filter(category::Column::Id.is_in(ids.iter().copied())).all(self.0).await?)
    }
}
