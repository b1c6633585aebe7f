//! o2o's area operations (004 §登陆相关): the tree by tier, the city picker (热门 + A–Z), and the
//! county of a GCJ-02 position through the reverse geocoder.

use std::collections::{BTreeMap, HashMap};

use generated::o2o::types::{Area, AreaByGpsData, AreaTreeData, AreaTreeNode, CitiesWithHotData};

use super::error::O2oError;
use crate::providers::geocoder::ReverseGeocoder;
use crate::storage::Db;
use crate::storage::o2o::Area as AreaRow;

fn area(row: &AreaRow) -> Area {
    Area { id: row.id, area_id: i64::from(row.area_id), name: row.name.clone(), parent_id: i64::from(row.parent_id) }
}

/// operationId `area_tree_get` (004 §登陆相关 获取地区列表(树形结构)): provinces down to `tier`
/// (1–3), `sub` present only where an area has children in the answer.
pub async fn area_tree(db: &Db, tier: i32) -> Result<AreaTreeData, O2oError> {
    let rows = db.o2o().areas(tier.clamp(1, 3)).await?;
    let mut children: HashMap<i32, Vec<&AreaRow>> = HashMap::new();
    for row in &rows {
        children.entry(row.parent_id).or_default().push(row);
    }
    fn node(row: &AreaRow, children: &HashMap<i32, Vec<&AreaRow>>) -> AreaTreeNode {
        let sub = children.get(&row.area_id).map(|rows| rows.iter().map(|r| node(r, children)).collect());
        AreaTreeNode { id: row.id, area_id: i64::from(row.area_id), name: row.name.clone(), parent_id: i64::from(row.parent_id), sub }
    }
    let list = children.get(&0).map(|top| top.iter().map(|r| node(r, &children)).collect()).unwrap_or_default();
    Ok(AreaTreeData { list })
}

/// operationId `city_with_hot_list` (004 §登陆相关 获取城市及热门城市列表): `热门` in rank order,
/// then every city under its capital pinyin initial, each group by area_id.
pub async fn cities_with_hot(db: &Db) -> Result<CitiesWithHotData, O2oError> {
    let rows = db.o2o().areas(2).await?;
    let mut hot: Vec<&AreaRow> = rows.iter().filter(|r| r.tier == 2 && r.hot_rank > 0).collect();
    hot.sort_by_key(|r| r.hot_rank);
    let mut groups: BTreeMap<String, Vec<Area>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.tier == 2 && !r.initial.is_empty()) {
        groups.entry(row.initial.clone()).or_default().push(area(row));
    }
    Ok(CitiesWithHotData { 热门: hot.into_iter().map(area).collect(), additional_properties: groups })
}

/// operationId `area_by_gps_get` (004 §登陆相关 根据经纬度获取所在城市): the province, city and
/// county of a GCJ-02 position. A position in no mainland county, or coordinates out of range, is
/// 10001; the geocoder failing is 500 (logged).
pub async fn area_by_gps(db: &Db, geocoder: &dyn ReverseGeocoder, lat: f64, lng: f64) -> Result<AreaByGpsData, O2oError> {
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
        return Err(O2oError::invalid("经纬度不合法"));
    }
    let county = geocoder.county_of(lat, lng).await.map_err(|e| O2oError::internal(format!("reverse geocoding: {e}")))?;
    let not_found = || O2oError::invalid("无法获取所在城市");
    let store = db.o2o();
    let county = store.area(county.ok_or_else(not_found)?).await?.ok_or_else(not_found)?;
    // A childless city (东莞, 省直辖县级市) is its own county.
    let city = if county.tier == 2 { county.clone() } else { store.area(county.parent_id).await?.ok_or_else(not_found)? };
    let province = store.area(city.parent_id).await?.ok_or_else(not_found)?;
    Ok(AreaByGpsData {
        province: province.name,
        province_id: i64::from(province.area_id),
        city: city.name,
        city_id: i64::from(city.area_id),
        area: county.name,
        area_id: i64::from(county.area_id),
    })
}
