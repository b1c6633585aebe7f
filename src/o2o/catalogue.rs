//! o2o's catalogue operations (004 §商家模块): the category tree, the merchant search (city,
//! keyword, category with its sub-categories, "near me"; paged) and a merchant, its goods and one
//! goods.

use std::collections::{HashMap, HashSet};

use generated::o2o::MerchantListInput;
use generated::o2o::types::{
    Goods, GoodsBusinessTimeItem, GoodsListData, GoodsPicListItem, Merchant, MerchantBusinessTimeItem, MerchantCategory,
    MerchantCategoryTreeData, MerchantListData,
};

use super::error::O2oError;
use crate::geo;
use crate::money::yuan;
use crate::storage::Db;
use crate::storage::o2o::{Area, Category, Goods as GoodsRow, Merchant as MerchantRow, MerchantFilter};

/// Merchants per page of `merchant_list` (the document gives none; ours, contract note n20).
pub const PAGE_SIZE: usize = 15;

/// A value as the contract's type (its enums); a stored value outside it is our fault.
fn wire<T: serde::de::DeserializeOwned>(value: impl serde::Serialize) -> Result<T, O2oError> {
    crate::api_support::wire(value).map_err(O2oError::internal)
}

/// Stored micro-degrees as degrees.
fn degrees(e6: i64) -> f64 {
    e6 as f64 / 1e6
}

/// The user's position from the optional `lng`/`lat` query parameters: both or neither, each in
/// range (the adapter checks the ranges too; this keeps a direct caller honest).
fn position(lng: Option<f64>, lat: Option<f64>) -> Result<Option<(f64, f64)>, O2oError> {
    match (lng, lat) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(O2oError::invalid("缺少纬度 lat（lng 与 lat 须同时传递）")),
        (None, Some(_)) => Err(O2oError::invalid("缺少经度 lng（lng 与 lat 须同时传递）")),
        (Some(lng), Some(lat)) => {
            if !(-180.0..=180.0).contains(&lng) {
                return Err(O2oError::invalid("经度 lng 不合法"));
            }
            if !(-90.0..=90.0).contains(&lat) {
                return Err(O2oError::invalid("纬度 lat 不合法"));
            }
            Ok(Some((lng, lat)))
        }
    }
}

/// Metres from the user's (`lng`, `lat`) to a merchant.
fn distance_to(from: (f64, f64), row: &MerchantRow) -> f64 {
    geo::distance_m(from.1, from.0, degrees(row.lat_e6), degrees(row.lng_e6))
}

/// operationId `merchant_category_tree_get` (004 §商家模块 获取商家类别列表): the categories with
/// status 1 as a tree by `pid` (0 at the top), siblings by sort then id. Every node carries
/// `sub`, an empty list at the leaves, as the document's example shows; a normal category under
/// a disabled one is not reachable and not shown.
pub async fn category_tree(db: &Db) -> Result<MerchantCategoryTreeData, O2oError> {
    let rows = db.o2o().categories().await?;
    let mut children: HashMap<i64, Vec<&Category>> = HashMap::new();
    // A row that is its own parent would recurse forever; it is no category of the tree.
    for row in rows.iter().filter(|r| r.id != r.pid) {
        children.entry(row.pid).or_default().push(row);
    }
    fn node(row: &Category, children: &HashMap<i64, Vec<&Category>>) -> Result<MerchantCategory, O2oError> {
        let sub = children.get(&row.id).map_or(&[][..], Vec::as_slice).iter().map(|r| node(r, children)).collect::<Result<_, _>>()?;
        Ok(MerchantCategory {
            id: row.id,
            pid: row.pid,
            name: row.name.clone(),
            icon: row.icon.clone(),
            status: wire(row.status)?,
            sub,
        })
    }
    let list = children.get(&0).map_or(&[][..], Vec::as_slice).iter().map(|r| node(r, &children)).collect::<Result<_, _>>()?;
    Ok(MerchantCategoryTreeData { list })
}

/// The category `id` and every normal category below it, at any depth (a filter by 美食 finds
/// the 火锅 restaurants). An unknown or disabled `id` is still itself: it then matches the
/// merchants filed directly under it.
async fn category_and_below(db: &Db, id: i64) -> Result<Vec<i64>, O2oError> {
    let rows = db.o2o().categories().await?;
    let mut found = vec![id];
    let mut seen: HashSet<i64> = HashSet::from([id]);
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        for row in rows.iter().filter(|r| r.pid == parent) {
            if seen.insert(row.id) {
                found.push(row.id);
            }
        }
        next += 1;
    }
    Ok(found)
}

/// operationId `merchant_list` (004 §商家模块 获取商家列表 (关键字搜索, 附近商家等)): normal
/// merchants by city, keyword (name, brand or address) and category (with its sub-categories),
/// page `page` of [`PAGE_SIZE`], `total` counting every match. With the user's `lng` and `lat`
/// each merchant carries `distance` (metres) and the list is nearest first; `radius` (metres)
/// counts only with a position and keeps the merchants within it. Without a position: by id.
/// `isOperSelf` compares the merchant's operator with `caller_oper_id` (the token's
/// mini-program's operator). `price` is the lowest of the goods on sale `today` (Beijing,
/// `YYYY-MM-DD`).
pub async fn merchant_list(db: &Db, caller_oper_id: i64, input: &MerchantListInput, today: &str) -> Result<MerchantListData, O2oError> {
    if input.page < 1 {
        return Err(O2oError::invalid("页数 page 须从 1 开始"));
    }
    if let Some(radius) = input.radius
        && !(radius.is_finite() && radius > 0.0)
    {
        return Err(O2oError::invalid("范围 radius 须大于 0"));
    }
    let here = position(input.lng, input.lat)?;
    let empty = || MerchantListData { total: 0, list: Vec::new() };
    let city_id = match input.city_id.map(i32::try_from) {
        None => None,
        Some(Ok(city)) => Some(city),
        // No area_id is that large: nothing is in that city.
        Some(Err(_)) => return Ok(empty()),
    };
    let category_ids = match input.merchant_category_id {
        Some(id) => Some(category_and_below(db, id).await?),
        None => None,
    };
    let radius = here.and(input.radius);
    // The database narrows to the radius' box (micro-degrees, widened outward so rounding loses
    // no one); the exact distance decides below.
    let within = here.zip(radius).map(|((lng, lat), radius)| {
        let ((lat0, lat1), (lng0, lng1)) = geo::bounding_box(lat, lng, radius);
        let (floor, ceil) = (|d: f64| (d * 1e6).floor() as i64, |d: f64| (d * 1e6).ceil() as i64);
        ((floor(lat0), ceil(lat1)), (floor(lng0), ceil(lng1)))
    });
    let keyword = input.keyword.as_deref().map(str::trim).filter(|k| !k.is_empty());
    let filter = MerchantFilter { city_id, keyword, category_ids, within };
    let rows = db.o2o().merchants(&filter).await?;
    // (distance, row), by id from the store.
    let mut found: Vec<(Option<f64>, MerchantRow)> = rows.into_iter().map(|row| (here.map(|at| distance_to(at, &row)), row)).collect();
    if let Some(radius) = radius {
        found.retain(|(distance, _)| distance.is_some_and(|d| d <= radius));
    }
    if here.is_some() {
        // With a radius the document asks for nearest first; with a position and no radius it is
        // silent, and "附近商家" without a radius is still a nearby list: nearest first too.
        // Ties by id, so pages do not overlap.
        found.sort_by(|a, b| a.0.unwrap_or(0.0).total_cmp(&b.0.unwrap_or(0.0)).then_with(|| a.1.id.cmp(&b.1.id)));
    }
    let total = found.len() as i64;
    let offset = usize::try_from(input.page - 1).unwrap_or(usize::MAX).saturating_mul(PAGE_SIZE);
    let page: Vec<(Option<f64>, MerchantRow)> = found.into_iter().skip(offset).take(PAGE_SIZE).collect();
    let list = merchants(db, caller_oper_id, page, today).await?;
    Ok(MerchantListData { total, list })
}

/// operationId `merchant_get` (004 §商家模块 商户详情): the normal merchant `id` with the list's
/// fields, `distance` when `lng` and `lat` are given. Missing or disabled: 10001 商户不存在 (the
/// contract's message). `today` as for [`merchant_list`].
pub async fn merchant_get(db: &Db, caller_oper_id: i64, id: i64, lng: Option<f64>, lat: Option<f64>, today: &str) -> Result<Merchant, O2oError> {
    let here = position(lng, lat)?;
    let row = db.o2o().merchant(id).await?.ok_or_else(|| O2oError::invalid("商户不存在"))?;
    let distance = here.map(|at| distance_to(at, &row));
    let mut list = merchants(db, caller_oper_id, vec![(distance, row)], today).await?;
    list.pop().ok_or_else(|| O2oError::internal("a merchant rendered to nothing"))
}

/// Merchants as the wire has them, in the given order: their category's name, their area
/// names, the lowest price of their listed goods on sale `today`.
async fn merchants(db: &Db, caller_oper_id: i64, page: Vec<(Option<f64>, MerchantRow)>, today: &str) -> Result<Vec<Merchant>, O2oError> {
    if page.is_empty() {
        return Ok(Vec::new());
    }
    let store = db.o2o();
    let ids: Vec<i64> = page.iter().map(|(_, m)| m.id).collect();
    let lowest: HashMap<i64, i64> = store.lowest_prices(&ids, today).await?.into_iter().collect();
    let mut category_ids: Vec<i64> = page.iter().map(|(_, m)| m.merchant_category_id).collect();
    category_ids.sort_unstable();
    category_ids.dedup();
    let categories: HashMap<i64, String> = store.categories_of(&category_ids).await?.into_iter().map(|c| (c.id, c.name)).collect();
    let mut area_ids: Vec<i32> = page.iter().flat_map(|(_, m)| [m.province_id, m.city_id, m.area_id]).collect();
    area_ids.sort_unstable();
    area_ids.dedup();
    let areas: HashMap<i32, Area> = store.areas_of(&area_ids).await?.into_iter().map(|a| (a.area_id, a)).collect();
    // An area the table lacks shows as an empty name rather than failing the whole list.
    let area_name = |id: i32| areas.get(&id).map(|a| a.name.clone()).unwrap_or_default();
    page.into_iter()
        .map(|(distance, row)| {
            Ok(Merchant {
                id: row.id,
                oper_id: row.oper_id,
                merchant_category_id: row.merchant_category_id,
                merchant_category_name: categories.get(&row.merchant_category_id).cloned().unwrap_or_default(),
                region: wire(row.region)?,
                province: area_name(row.province_id),
                province_id: i64::from(row.province_id),
                city: area_name(row.city_id),
                city_id: i64::from(row.city_id),
                area: area_name(row.area_id),
                area_id: i64::from(row.area_id),
                lng: degrees(row.lng_e6),
                lat: degrees(row.lat_e6),
                business_time: vec![MerchantBusinessTimeItem(row.open_time), MerchantBusinessTimeItem(row.close_time)],
                status: wire(row.status)?,
                // Whole metres, as the document's examples show them.
                distance: distance.map(f64::round),
                // A merchant without listed goods has nothing to pay for: 0.00.
                lowest_amount: yuan(lowest.get(&row.id).copied().unwrap_or(0)),
                is_oper_self: wire(i32::from(row.oper_id == caller_oper_id))?,
                name: row.name,
                brand: row.brand,
                address: row.address,
                logo: row.logo,
                desc_pic: row.desc_pic,
                desc: row.desc,
                contacter: row.contacter,
                contacter_phone: row.contacter_phone,
            })
        })
        .collect()
}

/// A stored goods as the wire has it (`pic_list` is stored as a JSON array of URLs).
fn goods(row: GoodsRow) -> Result<Goods, O2oError> {
    let pic_list: Vec<String> =
        serde_json::from_str(&row.pic_list).map_err(|e| O2oError::internal(format!("goods {} pic_list: {e}", row.id)))?;
    Ok(Goods {
        id: row.id,
        oper_id: row.oper_id,
        merchant_id: row.merchant_id,
        name: row.name,
        desc: row.desc,
        market_price: yuan(row.market_price_fen),
        price: yuan(row.price_fen),
        start_date: row.start_date,
        end_date: row.end_date,
        business_time: vec![GoodsBusinessTimeItem(row.open_time), GoodsBusinessTimeItem(row.close_time)],
        thumb_url: row.thumb_url,
        pic: row.pic,
        pic_list: pic_list.into_iter().map(GoodsPicListItem).collect(),
        buy_info: row.buy_info,
        status: wire(row.status)?,
        sell_number: row.sell_number,
    })
}

/// operationId `goods_list` (004 §商家模块 商品列表): the listed (上架) goods of the normal
/// merchant `merchant_id` whose validity has not ended by `today` (Beijing, `YYYY-MM-DD`; they
/// can no longer be bought), by id, unpaged (contract note n22). An unknown or disabled merchant
/// is 10001 商户不存在: its goods are not for sale.
pub async fn goods_list(db: &Db, merchant_id: i64, today: &str) -> Result<GoodsListData, O2oError> {
    let store = db.o2o();
    if store.merchant(merchant_id).await?.is_none() {
        return Err(O2oError::invalid("商户不存在"));
    }
    let list = store.goods_of(merchant_id, today).await?.into_iter().map(goods).collect::<Result<_, _>>()?;
    Ok(GoodsListData { list })
}

/// operationId `goods_get` (004 §商家模块 商品详情): the goods `id` if it is listed (上架) and its
/// merchant normal; otherwise 10001 商品不存在 (the contract's message). Orders keep their own
/// snapshot, so a delisted goods is hidden here only.
pub async fn goods_get(db: &Db, id: i64) -> Result<Goods, O2oError> {
    let not_found = || O2oError::invalid("商品不存在");
    let store = db.o2o();
    let row = store.goods(id).await?.filter(|g| g.status == 1).ok_or_else(not_found)?;
    if store.merchant(row.merchant_id).await?.is_none() {
        return Err(not_found());
    }
    goods(row)
}
