//! o2o's storage so far (issue 16, the catalogue half): the GB/T 2260 areas seeded once per
//! database, read by tier and by id, with the hot cities ranked.

use mpapi::storage::Db;
use mpapi::storage::o2o::HOT_CITIES;

use crate::app::fresh_database;

#[tokio::test]
async fn the_areas_are_seeded_once_and_read_by_tier() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&fresh_database(&dir).await).await.expect("the database");
    assert!(db.seed_o2o_areas(0).await.expect("seeded"));
    assert!(!db.seed_o2o_areas(0).await.expect("read"), "a restart does not seed again");
    let store = db.o2o();
    assert_eq!(store.areas(1).await.expect("provinces").len(), 31);
    assert_eq!(store.areas(2).await.expect("cities").len(), 31 + 369);
    let all = store.areas(3).await.expect("all");
    assert_eq!(all.len(), 3213);
    assert!(all.windows(2).all(|w| w[0].area_id < w[1].area_id), "by area_id");
    let nanshan = store.area(440305).await.expect("read").expect("南山区");
    assert_eq!((nanshan.name.as_str(), nanshan.parent_id, nanshan.tier), ("南山区", 440300, 3));
    let shenzhen = store.area(440300).await.expect("read").expect("深圳市");
    assert_eq!((shenzhen.initial.as_str(), shenzhen.hot_rank), ("S", 4));
    for (rank, city) in HOT_CITIES.iter().enumerate() {
        let area = store.area(*city).await.expect("read").unwrap_or_else(|| panic!("{city}"));
        assert_eq!((area.tier, area.hot_rank), (2, rank as i32 + 1), "{city}");
    }
    assert!(store.area(999999).await.expect("read").is_none());
}

#[tokio::test]
async fn the_area_operations_answer_the_tree_the_picker_and_a_position() {
    use mpapi::o2o::areas::{area_by_gps, area_tree, cities_with_hot};
    use mpapi::providers::geocoder::SandboxGeocoder;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&fresh_database(&dir).await).await.expect("the database");
    db.seed_o2o_areas(0).await.expect("seeded");

    let provinces = area_tree(&db, 1).await.expect("tier 1").list;
    assert_eq!(provinces.len(), 31);
    assert!(provinces.iter().all(|p| p.sub.is_none() && p.parent_id == 0), "no sub below the tier asked for");
    let tree = area_tree(&db, 3).await.expect("tier 3").list;
    let guangdong = tree.iter().find(|p| p.area_id == 440000).expect("广东省");
    let shenzhen = guangdong.sub.as_ref().expect("cities").iter().find(|c| c.area_id == 440300).expect("深圳市");
    let districts: Vec<i64> = shenzhen.sub.as_ref().expect("districts").iter().map(|d| d.area_id).collect();
    assert!(districts.contains(&440305) && districts.contains(&440304), "{districts:?}");
    assert!(shenzhen.sub.as_ref().unwrap().iter().all(|d| d.sub.is_none() && d.parent_id == 440300));
    let dongguan = guangdong.sub.as_ref().unwrap().iter().find(|c| c.area_id == 441900).expect("东莞市");
    assert!(dongguan.sub.is_none(), "a city without districts has no sub");

    let picker = cities_with_hot(&db).await.expect("cities");
    let hot: Vec<i64> = picker.热门.iter().map(|c| c.area_id).collect();
    assert_eq!(hot, HOT_CITIES.iter().map(|&c| i64::from(c)).collect::<Vec<_>>());
    assert!(picker.additional_properties.keys().all(|k| k.len() == 1 && k.chars().all(|c| c.is_ascii_uppercase())));
    let s_cities: Vec<&str> = picker.additional_properties["S"].iter().map(|c| c.name.as_str()).collect();
    assert!(s_cities.contains(&"深圳市") && s_cities.contains(&"上海市"), "{s_cities:?}");
    assert!(picker.additional_properties["C"].iter().any(|c| c.name == "重庆市"), "重 is chóng here");
    assert!(picker.additional_properties["X"].iter().any(|c| c.name == "厦门市"), "厦 is xià here");
    let total: usize = picker.additional_properties.values().map(Vec::len).sum();
    assert_eq!(total, 369, "every city once");

    // The contract's user position, in 南山区.
    let here = area_by_gps(&db, &SandboxGeocoder, 22.540503, 113.943223).await.expect("located");
    assert_eq!(
        (here.province.as_str(), here.province_id, here.city.as_str(), here.city_id, here.area.as_str(), here.area_id),
        ("广东省", 440000, "深圳市", 440300, "南山区", 440305)
    );
    // The open sea, and coordinates out of range: 10001.
    assert_eq!(area_by_gps(&db, &SandboxGeocoder, 20.0, 125.0).await.expect_err("nowhere").code, 10001);
    assert_eq!(area_by_gps(&db, &SandboxGeocoder, 91.0, 113.9).await.expect_err("out of range").code, 10001);
}
