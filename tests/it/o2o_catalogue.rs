//! o2o's catalogue (004 §商家模块) over the demo catalogue: the category tree, the merchant search
//! (city, keyword, category with sub-categories, distance, radius, paging), a merchant, its goods
//! and one goods — what is disabled or delisted stays hidden, bad input is 10001.

use generated::o2o::MerchantListInput;
use mpapi::o2o::catalogue::{PAGE_SIZE, category_tree, goods_get, goods_list, merchant_get, merchant_list};
use mpapi::o2o::error::O2oError;
use mpapi::storage::Db;
use mpapi::storage::o2o::seed::{
    DEMO_GOODS_DELISTED, DEMO_GOODS_OF_DISABLED, DEMO_GOODS_OTHER, DEMO_GOODS_OTHER_CHEAP, DEMO_GOODS_PENNY, DEMO_GOODS_SET,
    DEMO_MERCHANT_DISABLED, DEMO_MERCHANT_FUTIAN, DEMO_MERCHANT_OTHER, DEMO_MERCHANT_OWN,
};
use serde_json::json;

use crate::app::fresh_database;

/// The contract's user position (GCJ-02), in 南山区.
const HERE: (f64, f64) = (113.943223, 22.540503);
/// 2026-06-15 12:00 Beijing, ms.
const NOW: i64 = 1_781_496_000_000;
/// `NOW`'s date in Beijing.
const TODAY: &str = "2026-06-15";

/// Every enabled demo merchant, by id.
const ALL: [i64; 7] = [1024, 1025, 1031, 1040, 1041, 1050, 1051];

async fn catalogue(dir: &tempfile::TempDir) -> (Db, String) {
    let url = fresh_database(dir).await;
    let db = Db::connect(&url).await.expect("the database");
    db.seed_o2o_areas(NOW).await.expect("areas");
    assert!(db.seed_o2o_catalogue(NOW).await.expect("seeded"));
    assert!(!db.seed_o2o_catalogue(NOW).await.expect("read"), "a restart does not seed again");
    (db, url)
}

fn query() -> MerchantListInput {
    MerchantListInput { city_id: None, keyword: None, merchant_category_id: None, lng: None, lat: None, radius: None, page: 1 }
}

fn near(radius: Option<f64>) -> MerchantListInput {
    MerchantListInput { lng: Some(HERE.0), lat: Some(HERE.1), radius, ..query() }
}

async fn ids(db: &Db, caller: i64, input: MerchantListInput) -> (i64, Vec<i64>) {
    let found = merchant_list(db, caller, &input, TODAY).await.unwrap_or_else(|e| panic!("{input:?}: {e:?}"));
    (found.total, found.list.iter().map(|m| m.id).collect())
}

fn refused(result: Result<impl std::fmt::Debug, O2oError>, message: &str) {
    let error = result.expect_err("refused");
    assert_eq!(error.code, 10001, "{error:?}");
    assert!(error.message.contains(message), "{:?} should mention {message}", error.message);
}

#[tokio::test]
async fn the_category_tree_has_sub_everywhere_and_no_disabled_category() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (db, _) = catalogue(&dir).await;
    let tree = serde_json::to_value(category_tree(&db).await.expect("the tree")).expect("json");
    // 4 宠物 is disabled, and with it its enabled child 17; 14 美发 is disabled under 3 丽人.
    let icon = |id: i64| format!("https://o2o.niucha.ren/storage/category/{id}.png");
    let leaf = |id: i64, pid: i64, name: &str| json!({"id": id, "pid": pid, "name": name, "icon": icon(id), "status": 1, "sub": []});
    assert_eq!(
        tree,
        json!({"list": [
            {"id": 1, "pid": 0, "name": "美食", "icon": icon(1), "status": 1, "sub": [
                leaf(7, 1, "火锅"),
                {"id": 8, "pid": 1, "name": "甜品饮品", "icon": icon(8), "status": 1, "sub": [leaf(16, 8, "奶茶果汁")]},
                leaf(10, 1, "粤菜"),
            ]},
            {"id": 2, "pid": 0, "name": "休闲娱乐", "icon": icon(2), "status": 1, "sub": [leaf(12, 2, "KTV")]},
            leaf(3, 0, "丽人"),
        ]})
    );
}

#[tokio::test]
async fn merchants_are_found_by_city_keyword_and_category_with_its_sub_categories() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (db, _) = catalogue(&dir).await;
    // Without filters: every normal merchant (not the disabled 1026), by id, without distance.
    let all = merchant_list(&db, 3, &query(), TODAY).await.expect("all");
    assert_eq!((all.total, all.list.iter().map(|m| m.id).collect::<Vec<_>>()), (7, ALL.to_vec()));
    assert!(all.list.iter().all(|m| m.distance.is_none()));
    assert!(!all.list.iter().any(|m| m.id == DEMO_MERCHANT_DISABLED));

    assert_eq!(ids(&db, 3, MerchantListInput { city_id: Some(440300), ..query() }).await, (3, vec![1024, 1025, 1031]));
    assert_eq!(ids(&db, 3, MerchantListInput { city_id: Some(440100), ..query() }).await, (2, vec![1040, 1041]));
    assert_eq!(ids(&db, 3, MerchantListInput { city_id: Some(110100), ..query() }).await, (2, vec![1050, 1051]));
    assert_eq!(ids(&db, 3, MerchantListInput { city_id: Some(310100), ..query() }).await, (0, vec![]));
    assert_eq!(ids(&db, 3, MerchantListInput { city_id: Some(i64::MAX), ..query() }).await, (0, vec![]));

    // The contract's keyword example: 火锅 in 深圳 is 蜀大侠火锅(海岸城店) alone (the disabled
    // 渝味坊火锅 is hidden).
    let keyword = |k: &str| MerchantListInput { keyword: Some(k.into()), ..query() };
    assert_eq!(ids(&db, 3, MerchantListInput { city_id: Some(440300), ..keyword("火锅") }).await, (1, vec![1024]));
    assert_eq!(ids(&db, 3, keyword("蜀大侠")).await, (2, vec![1024, 1025]), "name and brand");
    assert_eq!(ids(&db, 3, keyword("果然")).await, (1, vec![1040]), "brand only");
    assert_eq!(ids(&db, 3, keyword("文心五路")).await, (1, vec![1024]), "address only");
    assert_eq!(ids(&db, 3, keyword("  茶颜  ")).await, (1, vec![1031]), "trimmed");
    assert_eq!(ids(&db, 3, keyword("   ")).await, (7, ALL.to_vec()), "blank is no filter");
    assert_eq!(ids(&db, 3, keyword("%")).await, (0, vec![]), "a LIKE wildcard is literal");
    assert_eq!(ids(&db, 3, keyword("已停业")).await, (0, vec![]));

    let category = |id: i64| MerchantListInput { merchant_category_id: Some(id), ..query() };
    assert_eq!(ids(&db, 3, category(7)).await, (3, vec![1024, 1025, 1050]));
    assert_eq!(ids(&db, 3, category(8)).await, (2, vec![1031, 1040]), "甜品饮品 and its 奶茶果汁");
    assert_eq!(ids(&db, 3, category(16)).await, (1, vec![1040]));
    assert_eq!(ids(&db, 3, category(1)).await, (6, vec![1024, 1025, 1031, 1040, 1041, 1050]), "two levels down");
    assert_eq!(ids(&db, 3, category(12)).await, (1, vec![1051]));
    assert_eq!(ids(&db, 3, category(3)).await, (0, vec![]));
    assert_eq!(ids(&db, 3, category(999)).await, (0, vec![]));
    // Filters combine.
    assert_eq!(ids(&db, 3, MerchantListInput { city_id: Some(440300), ..category(1) }).await, (3, vec![1024, 1025, 1031]));
    assert_eq!(ids(&db, 3, MerchantListInput { keyword: Some("茶".into()), ..category(8) }).await, (2, vec![1031, 1040]));
    assert_eq!(ids(&db, 3, MerchantListInput { keyword: Some("茶".into()), ..category(7) }).await, (0, vec![]));
}

#[tokio::test]
async fn a_position_gives_distances_and_a_radius_keeps_the_nearby_nearest_first() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (db, _) = catalogue(&dir).await;
    // The contract's example: radius 5000 → 茶颜小筑 2196 m, then 蜀大侠 2661 m (haversine,
    // whole metres); the disabled 1026 is 1.4 km away and still hidden.
    let nearby = merchant_list(&db, 3, &near(Some(5000.0)), TODAY).await.expect("nearby");
    let seen: Vec<(i64, Option<f64>)> = nearby.list.iter().map(|m| (m.id, m.distance)).collect();
    assert_eq!((nearby.total, seen), (2, vec![(DEMO_MERCHANT_OTHER, Some(2196.0)), (DEMO_MERCHANT_OWN, Some(2661.0))]));

    assert_eq!(ids(&db, 3, near(Some(2500.0))).await, (1, vec![1031]));
    assert_eq!(ids(&db, 3, near(Some(2000.0))).await, (0, vec![]));
    assert_eq!(ids(&db, 3, near(Some(20_000.0))).await, (3, vec![1031, 1024, 1025]));
    assert_eq!(ids(&db, 3, near(Some(100_000.0))).await, (5, vec![1031, 1024, 1025, 1040, 1041]));
    assert_eq!(ids(&db, 3, MerchantListInput { keyword: Some("蜀大侠".into()), ..near(Some(20_000.0)) }).await, (2, vec![1024, 1025]));
    assert_eq!(ids(&db, 3, MerchantListInput { city_id: Some(440100), ..near(Some(5000.0)) }).await, (0, vec![]));

    // A position without a radius: everything, nearest first, each with its distance.
    let everywhere = merchant_list(&db, 3, &near(None), TODAY).await.expect("everywhere");
    assert_eq!(everywhere.total, 7);
    assert_eq!(everywhere.list.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1031, 1024, 1025, 1040, 1041, 1050, 1051]);
    let distances: Vec<f64> = everywhere.list.iter().map(|m| m.distance.expect("a distance")).collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");
    assert!((11_000.0..12_000.0).contains(&distances[2]) && distances[6] > 1_900_000.0, "{distances:?}");

    // A radius without a position counts for nothing.
    let ignored = merchant_list(&db, 3, &MerchantListInput { radius: Some(10.0), ..query() }, TODAY).await.expect("ignored");
    assert_eq!((ignored.total, ignored.list.len()), (7, 7));
    assert!(ignored.list.iter().all(|m| m.distance.is_none()));

    // The detail: the same distance with a position, none without.
    let detail = merchant_get(&db, 3, DEMO_MERCHANT_OWN, Some(HERE.0), Some(HERE.1), TODAY).await.expect("1024");
    assert_eq!(detail.distance, Some(2661.0));
    assert_eq!(merchant_get(&db, 3, DEMO_MERCHANT_OWN, None, None, TODAY).await.expect("1024").distance, None);
}

#[tokio::test]
async fn merchants_show_as_the_contract_does_with_the_callers_operator_and_their_lowest_price() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (db, _) = catalogue(&dir).await;
    let nearby = merchant_list(&db, 3, &near(Some(5000.0)), TODAY).await.expect("nearby");
    // 1031 is the contract's merchant_list example to the letter; its delisted 9.00 goods does
    // not lower lowestAmount below 15.00.
    assert_eq!(
        serde_json::to_value(&nearby.list[0]).expect("json"),
        json!({
            "id": 1031, "oper_id": 5, "merchant_category_id": 8, "merchantCategoryName": "甜品饮品",
            "name": "茶颜小筑(南山书城店)", "brand": "茶颜小筑", "region": 1,
            "address": "广东省深圳市南山区南海大道2748号南山书城1楼",
            "province": "广东省", "province_id": 440000, "city": "深圳市", "city_id": 440300, "area": "南山区", "area_id": 440305,
            "lng": 113.930046, "lat": 22.524952, "business_time": ["09:00:00", "22:00:00"],
            "logo": "https://o2o.niucha.ren/storage/merchant/1031/logo.png",
            "desc_pic": "https://o2o.niucha.ren/storage/merchant/1031/desc.jpg",
            "desc": "现煮芋圆、手作鲜奶茶，书城一楼临窗座位。", "contacter": "王芳", "contacter_phone": "0755-26653388",
            "status": 1, "distance": 2196.0, "lowestAmount": "15.00", "isOperSelf": 0
        })
    );
    // 1024 as the merchant_get example, except lowestAmount: its 1分钱体验券 (0.01) is listed, so
    // the lowest price is 0.01 where the example says 68.00.
    let own = merchant_get(&db, 3, DEMO_MERCHANT_OWN, Some(HERE.0), Some(HERE.1), TODAY).await.expect("1024");
    assert_eq!(
        serde_json::to_value(&own).expect("json"),
        json!({
            "id": 1024, "oper_id": 3, "merchant_category_id": 7, "merchantCategoryName": "火锅",
            "name": "蜀大侠火锅(海岸城店)", "brand": "蜀大侠", "region": 1,
            "address": "广东省深圳市南山区文心五路33号海岸城购物中心4楼402号",
            "province": "广东省", "province_id": 440000, "city": "深圳市", "city_id": 440300, "area": "南山区", "area_id": 440305,
            "lng": 113.936582, "lat": 22.517373, "business_time": ["10:30:00", "22:30:00"],
            "logo": "https://o2o.niucha.ren/storage/merchant/1024/logo.png",
            "desc_pic": "https://o2o.niucha.ren/storage/merchant/1024/desc.jpg",
            "desc": "正宗成都老火锅，牛油锅底现炒，毛肚、鸭肠每日新鲜直供。", "contacter": "李明", "contacter_phone": "13714268890",
            "status": 1, "distance": 2661.0, "lowestAmount": "0.01", "isOperSelf": 1
        })
    );
    // isOperSelf follows the caller's operator.
    for (caller, expected) in [(3, [(1024, 1), (1031, 0)]), (5, [(1024, 0), (1031, 1)]), (7, [(1024, 0), (1031, 0)])] {
        let found = merchant_list(&db, caller, &near(Some(5000.0)), TODAY).await.expect("nearby");
        let mut seen: Vec<(i64, i64)> = found.list.iter().map(|m| (m.id, m.is_oper_self as i64)).collect();
        seen.sort();
        assert_eq!(seen, expected.to_vec(), "caller {caller}");
    }
    // lowestAmount over listed goods; none listed: 0.00.
    let all = merchant_list(&db, 3, &query(), TODAY).await.expect("all");
    let lowest: Vec<(i64, String)> = all.list.iter().map(|m| (m.id, m.lowest_amount.to_string())).collect();
    let expected = [(1024, "0.01"), (1025, "268.00"), (1031, "15.00"), (1040, "25.00"), (1041, "99.00"), (1050, "168.00"), (1051, "0.00")];
    assert_eq!(lowest, expected.iter().map(|(id, a)| (*id, a.to_string())).collect::<Vec<_>>());
    let beijing = all.list.iter().find(|m| m.id == 1050).expect("1050");
    assert_eq!((beijing.province.as_str(), beijing.city.as_str(), beijing.area.as_str()), ("北京市", "北京市", "朝阳区"));
    assert_eq!(merchant_get(&db, 5, DEMO_MERCHANT_FUTIAN, None, None, TODAY).await.expect("1025").area, "福田区");

    // Disabled or unknown: 商户不存在.
    refused(merchant_get(&db, 3, DEMO_MERCHANT_DISABLED, None, None, TODAY).await, "商户不存在");
    refused(merchant_get(&db, 3, 99_999, None, None, TODAY).await, "商户不存在");
}

#[tokio::test]
async fn goods_are_the_listed_goods_of_normal_merchants() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (db, _) = catalogue(&dir).await;
    let own = goods_list(&db, DEMO_MERCHANT_OWN, TODAY).await.expect("1024's goods").list;
    assert_eq!(own.iter().map(|g| g.id).collect::<Vec<_>>(), vec![DEMO_GOODS_SET, DEMO_GOODS_PENNY]);
    // 2048 as the contract's examples, valid from the seeding year to the end of the next.
    assert_eq!(
        serde_json::to_value(&own[0]).expect("json"),
        json!({
            "id": 2048, "oper_id": 3, "merchant_id": 1024, "name": "双人超值火锅套餐",
            "desc": "鸳鸯锅底1份、精品肥牛1份、鲜毛肚1份、鸭血1份、时蔬拼盘1份、酸梅汤2杯",
            "market_price": "198.00", "price": "128.00", "start_date": "2026-01-01", "end_date": "2027-12-31",
            "business_time": ["10:30:00", "22:00:00"],
            "thumb_url": "https://o2o.niucha.ren/storage/goods/2048/thumb.jpg",
            "pic": "https://o2o.niucha.ren/storage/goods/2048/main.jpg",
            "pic_list": [
                "https://o2o.niucha.ren/storage/goods/2048/1.jpg",
                "https://o2o.niucha.ren/storage/goods/2048/2.jpg",
                "https://o2o.niucha.ren/storage/goods/2048/3.jpg"
            ],
            "buy_info": "1. 有效期内每日10:30-22:00可用；2. 无需预约，高峰期可能需要排队；3. 每张券限2人使用，不与店内其他优惠同享。",
            "status": 1, "sell_number": 326
        })
    );
    let penny = &own[1];
    assert_eq!(
        (penny.name.as_str(), penny.price.to_string(), penny.market_price.to_string(), penny.end_date.as_str(), penny.oper_id),
        ("1分钱体验券（酸梅汤1杯）", "0.01".into(), "8.00".into(), "2027-06-30", 3)
    );
    assert_eq!(penny.pic_list.len(), 1);

    // 1031's: the delisted 3105 is not among them; its goods are operator 5's.
    let other = goods_list(&db, DEMO_MERCHANT_OTHER, TODAY).await.expect("1031's goods").list;
    assert_eq!(other.iter().map(|g| g.id).collect::<Vec<_>>(), vec![DEMO_GOODS_OTHER_CHEAP, DEMO_GOODS_OTHER]);
    assert!(other.iter().all(|g| g.oper_id == 5 && g.merchant_id == DEMO_MERCHANT_OTHER));
    let tea = goods_get(&db, DEMO_GOODS_OTHER).await.expect("3107");
    assert_eq!((tea.name.as_str(), tea.price.to_string(), tea.oper_id), ("芋圆鲜奶茶双杯券", "26.00".into(), 5));
    assert!(goods_list(&db, 1051, TODAY).await.expect("no goods").list.is_empty());
    assert_eq!(goods_get(&db, DEMO_GOODS_SET).await.expect("2048"), own[0]);

    // Delisted, of a disabled merchant, unknown: 商品不存在; a disabled or unknown merchant's
    // list: 商户不存在.
    refused(goods_get(&db, DEMO_GOODS_DELISTED).await, "商品不存在");
    refused(goods_get(&db, DEMO_GOODS_OF_DISABLED).await, "商品不存在");
    refused(goods_get(&db, 1).await, "商品不存在");
    refused(goods_list(&db, DEMO_MERCHANT_DISABLED, TODAY).await, "商户不存在");
    refused(goods_list(&db, 99_999, TODAY).await, "商户不存在");

    // Past its end_date (2027-06-30) the penny can no longer be bought: it leaves the list and
    // no longer sets the merchant's lowest price; on its last day it is still there.
    let listed = |day: &'static str| {
        let db = db.clone();
        async move { goods_list(&db, DEMO_MERCHANT_OWN, day).await.expect("1024's goods").list.iter().map(|g| g.id).collect::<Vec<_>>() }
    };
    assert_eq!(listed("2027-06-30").await, vec![DEMO_GOODS_SET, DEMO_GOODS_PENNY]);
    assert_eq!(listed("2027-07-01").await, vec![DEMO_GOODS_SET]);
    assert_eq!(listed("2028-01-01").await, Vec::<i64>::new());
    let lowest = |day: &'static str| {
        let db = db.clone();
        async move { merchant_get(&db, 3, DEMO_MERCHANT_OWN, None, None, day).await.expect("1024").lowest_amount.to_string() }
    };
    assert_eq!(lowest("2027-06-30").await, "0.01");
    assert_eq!(lowest("2027-07-01").await, "128.00");
    // The detail still shows it: an order's goods stays viewable.
    assert_eq!(goods_get(&db, DEMO_GOODS_PENNY).await.expect("the penny").end_date, "2027-06-30");
}

#[tokio::test]
async fn pages_hold_fifteen_and_the_total_counts_every_match() {
    use sea_orm::{EntityTrait as _, IntoActiveModel as _};
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (db, url) = catalogue(&dir).await;
    // 20 more restaurants at 1024's door (equal distances: ties by id), in 深圳.
    let template = mpapi::storage::o2o::seed::merchants().into_iter().find(|m| m.id == DEMO_MERCHANT_OWN).expect("1024");
    let extra: Vec<_> = (9001..=9020).map(|id| mpapi::storage::o2o::Merchant { id, name: format!("分店{id}"), ..template.clone() }).collect();
    let conn = sea_orm::Database::connect(&url).await.expect("the database");
    mpapi::storage::o2o::entity::merchant::Entity::insert_many(extra.into_iter().map(|m| m.into_active_model()))
        .exec_without_returning(&conn)
        .await
        .expect("inserted");
    conn.close().await.expect("closed");

    let page = |page: i32, base: MerchantListInput| MerchantListInput { page, city_id: Some(440300), ..base };
    let mut by_id = vec![1024, 1025, 1031];
    by_id.extend(9001..=9020);
    let (total, first) = ids(&db, 3, page(1, query())).await;
    let (_, second) = ids(&db, 3, page(2, query())).await;
    assert_eq!((total, first.len(), second.len()), (23, PAGE_SIZE, 8));
    assert_eq!([first, second].concat(), by_id);
    assert_eq!(ids(&db, 3, page(3, query())).await, (23, vec![]), "past the end: empty, total kept");
    assert_eq!(ids(&db, 3, page(i32::MAX, query())).await, (23, vec![]));

    // Nearest first across pages: 1031, then 1024 and its 20 equidistant neighbours by id, then 1025.
    let (total, first) = ids(&db, 3, page(1, near(Some(20_000.0)))).await;
    let (_, second) = ids(&db, 3, page(2, near(Some(20_000.0)))).await;
    let mut nearest = vec![1031, 1024];
    nearest.extend(9001..=9020);
    nearest.push(1025);
    assert_eq!((total, [first, second].concat()), (23, nearest));
}

#[tokio::test]
async fn bad_input_is_10001_naming_the_field() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (db, _) = catalogue(&dir).await;
    let list = |input: MerchantListInput| {
        let db = db.clone();
        async move { merchant_list(&db, 3, &input, TODAY).await }
    };
    refused(list(MerchantListInput { page: 0, ..query() }).await, "page");
    refused(list(MerchantListInput { page: -3, ..query() }).await, "page");
    refused(list(MerchantListInput { lat: None, ..near(None) }).await, "lat");
    refused(list(MerchantListInput { lng: None, ..near(Some(5000.0)) }).await, "lng");
    refused(list(MerchantListInput { lat: Some(90.5), ..near(None) }).await, "lat");
    refused(list(MerchantListInput { lng: Some(-180.5), ..near(None) }).await, "lng");
    refused(list(MerchantListInput { lng: Some(f64::NAN), ..near(None) }).await, "lng");
    for radius in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        refused(list(near(Some(radius))).await, "radius");
    }
    refused(merchant_get(&db, 3, DEMO_MERCHANT_OWN, Some(HERE.0), None, TODAY).await, "lat");
    refused(merchant_get(&db, 3, DEMO_MERCHANT_OWN, None, Some(HERE.1), TODAY).await, "lng");
    refused(merchant_get(&db, 3, DEMO_MERCHANT_OWN, Some(HERE.0), Some(-91.0), TODAY).await, "lat");
    // The edges are in range.
    assert!(list(MerchantListInput { lng: Some(180.0), lat: Some(-90.0), ..query() }).await.is_ok());
}
