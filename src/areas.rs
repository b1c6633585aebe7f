//! China's administrative divisions (GB/T 2260 province/city/county, `data/areas/areas.csv`) for o2o's city picker and the sandbox geocoder.
//!
//! The table is seed data generated from published packages (see `data/areas/README.md`), embedded
//! in the binary and parsed once on first use. Municipalities have a tier-2 row of their own
//! (北京 110000 → 110100 → 110101); 省直辖县级行政单位 and cities without districts are childless
//! tier-2 rows.

use std::collections::HashSet;
use std::sync::LazyLock;

/// One province (tier 1), prefecture-level city (tier 2) or county-level district (tier 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    /// The 6-digit GB/T 2260 code (`440305`).
    pub area_id: i32,
    /// The official name (`南山区`, `北京市`).
    pub name: &'static str,
    /// The parent's `area_id`; 0 for provinces.
    pub parent_id: i32,
    /// 1 province, 2 city, 3 county.
    pub tier: u8,
    /// For cities: the capital first letter of the name's pinyin (多音字 read as in the name:
    /// 重庆 `C`, 厦门 `X`), which groups the city picker (004 cities/withHot); `None` otherwise.
    pub initial: Option<char>,
    /// Longitude of the area's centre (its seat), GCJ-02, micro-degrees (113.930413° → 113930413).
    pub lng_e6: i32,
    /// Latitude of the area's centre, GCJ-02, micro-degrees.
    pub lat_e6: i32,
}

impl Area {
    /// The centre's (latitude, longitude) in GCJ-02 degrees.
    pub fn centre(&self) -> (f64, f64) {
        (f64::from(self.lat_e6) / 1e6, f64::from(self.lng_e6) / 1e6)
    }
}

const CSV: &str = include_str!("../data/areas/areas.csv");

static AREAS: LazyLock<Vec<Area>> = LazyLock::new(|| parse(CSV).unwrap_or_else(|e| panic!("data/areas/areas.csv: {e}")));

/// What the nearest-county search scans: tier-3 areas and tier-2 areas without children (东莞,
/// 仙桃, …), with their centres in degrees so the scan does no conversions.
static COUNTIES: LazyLock<Vec<(f64, f64, &'static Area)>> = LazyLock::new(|| {
    let parents: HashSet<i32> = all().iter().map(|a| a.parent_id).collect();
    all()
        .iter()
        .filter(|a| a.tier == 3 || (a.tier == 2 && !parents.contains(&a.area_id)))
        .map(|a| {
            let (lat, lng) = a.centre();
            (lat, lng, a)
        })
        .collect()
});

/// Every area, ordered by `area_id` (so a parent precedes its children). Parses the embedded
/// table on first use; a malformed table panics there (a unit test parses it).
pub fn all() -> &'static [Area] {
    &AREAS
}

/// The area with code `area_id`, if it is in the table.
pub fn by_id(area_id: i32) -> Option<&'static Area> {
    let areas = all();
    areas.binary_search_by_key(&area_id, |a| a.area_id).ok().map(|i| &areas[i])
}

/// Positions farther than this from every county centre are outside mainland China as far as
/// the sandbox can tell (the sea, abroad). Generous enough for the big counties of 新疆 and 西藏
/// near their seats; points in their emptiest parts can still fall outside.
pub const NEAREST_LIMIT_M: f64 = 100_000.0;

/// The county-level area (tier 3, or a tier-2 city without districts such as 东莞 441900)
/// whose centre is nearest to a GCJ-02 position (degrees); `None` when that centre is farther
/// than [`NEAREST_LIMIT_M`]. The sandbox's reverse geocoding (004 §登陆相关 根据经纬度获取所在城市):
/// near a border between two counties it can pick the neighbour whose seat is closer.
pub fn nearest_county(lat: f64, lng: f64) -> Option<&'static Area> {
    if !lat.is_finite() || !lng.is_finite() {
        return None;
    }
    // Rank by the equirectangular distance (no trigonometry per row: ~3k rows stay well under
    // 50 µs); at county scale it orders centres as the great circle does. The haversine decides
    // the limit.
    let k = lat.to_radians().cos();
    let (mut best, mut best_d2) = (None, f64::INFINITY);
    for &(clat, clng, area) in COUNTIES.iter() {
        let (dy, dx) = (clat - lat, (clng - lng) * k);
        let d2 = dx * dx + dy * dy;
        if d2 < best_d2 {
            (best, best_d2) = (Some(area), d2);
        }
    }
    let area = best?;
    let (clat, clng) = area.centre();
    (crate::geo::distance_m(lat, lng, clat, clng) <= NEAREST_LIMIT_M).then_some(area)
}

/// Parse the table (`area_id,name,parent_id,tier,initial,lng,lat` after a header line).
fn parse(text: &'static str) -> Result<Vec<Area>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, "area_id,name,parent_id,tier,initial,lng,lat")) => {}
        other => return Err(format!("unexpected header {other:?}")),
    }
    let mut areas = Vec::with_capacity(3300);
    for (index, line) in lines {
        if line.is_empty() {
            continue;
        }
        let row = || format!("line {}: {line:?}", index + 1);
        let fields: Vec<&'static str> = line.split(',').collect();
        let [area_id, name, parent_id, tier, initial, lng, lat] = fields[..] else {
            return Err(format!("{}: expected 7 fields", row()));
        };
        let int = |s: &str| s.parse::<i32>().map_err(|e| format!("{}: {e}", row()));
        let micro = |s: &str| {
            s.parse::<f64>().map(|d| (d * 1e6).round() as i32).map_err(|e| format!("{}: {e}", row()))
        };
        let tier = tier.parse::<u8>().map_err(|e| format!("{}: {e}", row()))?;
        let initial = match (tier, initial.as_bytes()) {
            (2, [c]) if c.is_ascii_uppercase() => Some(char::from(*c)),
            (1 | 3, []) => None,
            _ => return Err(format!("{}: tier {tier} with initial {initial:?}", row())),
        };
        areas.push(Area { area_id: int(area_id)?, name, parent_id: int(parent_id)?, tier, initial, lng_e6: micro(lng)?, lat_e6: micro(lat)? });
    }
    if !areas.is_sorted_by(|a, b| a.area_id < b.area_id) {
        return Err("rows are not in ascending area_id order (or repeat one)".into());
    }
    Ok(areas)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn area(id: i32) -> &'static Area {
        by_id(id).unwrap_or_else(|| panic!("{id} is missing"))
    }

    #[test]
    fn the_table_parses_and_hangs_together() {
        let areas = all();
        let tiers = areas.iter().fold([0usize; 4], |mut n, a| {
            n[usize::from(a.tier)] += 1;
            n
        });
        assert_eq!(tiers[1..], [31, 369, 2813], "provinces, cities, counties (data/areas/README.md)");
        let ids: HashSet<i32> = areas.iter().map(|a| a.area_id).collect();
        assert_eq!(ids.len(), areas.len(), "no area_id twice");
        let by: HashMap<i32, &Area> = areas.iter().map(|a| (a.area_id, a)).collect();
        for a in areas {
            assert!((100_000..=999_999).contains(&a.area_id), "{a:?}");
            assert_eq!(a.initial.is_some(), a.tier == 2, "{a:?}");
            // Mainland China's box, GCJ-02.
            assert!((73_000_000..136_000_000).contains(&a.lng_e6) && (3_000_000..54_000_000).contains(&a.lat_e6), "{a:?}");
            if a.tier == 1 {
                assert_eq!(a.parent_id, 0, "{a:?}");
            } else {
                let parent = by.get(&a.parent_id).unwrap_or_else(|| panic!("no parent for {a:?}"));
                assert_eq!(parent.tier + 1, a.tier, "{a:?}");
            }
        }
        assert!(parse("area_id,name\n").is_err());
        assert!(parse("area_id,name,parent_id,tier,initial,lng,lat\n1,x,0,2,,1,1\n").is_err(), "a city needs its initial");
    }

    #[test]
    fn known_places() {
        assert_eq!((area(440000).name, area(440000).tier), ("广东省", 1));
        assert_eq!((area(440300).name, area(440300).parent_id, area(440300).initial), ("深圳市", 440000, Some('S')));
        assert_eq!((area(440305).name, area(440305).parent_id, area(440305).tier), ("南山区", 440300, 3));
        assert_eq!((area(440304).name, area(440304).parent_id), ("福田区", 440300));
        // The hot cities; municipalities have a city row under the province row.
        for (id, name, initial) in [(110100, "北京市", 'B'), (310100, "上海市", 'S'), (440100, "广州市", 'G'), (440300, "深圳市", 'S')] {
            assert_eq!((area(id).name, area(id).tier, area(id).initial), (name, 2, Some(initial)));
        }
        assert_eq!(area(110101).parent_id, 110100);
        assert_eq!(area(110100).parent_id, 110000);
        // 重庆's counties sit under its one city row.
        assert_eq!(area(500229).parent_id, 500100);
        assert!(by_id(500200).is_none());
        // 多音字.
        for (id, initial) in [(500100, 'C'), (430100, 'C'), (220100, 'C'), (350200, 'X'), (340300, 'B'), (341500, 'L')] {
            assert_eq!(area(id).initial, Some(initial), "{:?}", area(id));
        }
        // Childless cities and 省直辖县级行政单位.
        for id in [441900, 442000, 460400, 620200, 429004, 469002, 659001] {
            assert_eq!(area(id).tier, 2, "{:?}", area(id));
            assert!(!all().iter().any(|a| a.parent_id == id), "{id} has no children");
        }
        assert_eq!(area(429004).parent_id, 420000);
    }

    #[test]
    fn the_nearest_county() {
        assert_eq!(nearest_county(22.540503, 113.943223).map(|a| a.area_id), Some(440305), "南山区");
        assert_eq!(nearest_county(39.9087, 116.3975).map(|a| a.area_id), Some(110101), "天安门, 东城区");
        assert_eq!(nearest_county(23.0207, 113.7518).map(|a| a.area_id), Some(441900), "东莞, a city without districts");
        assert_eq!(nearest_county(20.0, 125.0), None, "the open sea");
        assert_eq!(nearest_county(48.8566, 2.3522), None, "Paris");
        assert_eq!(nearest_county(f64::NAN, 113.9), None);
        // Fast enough to answer inline.
        let start = std::time::Instant::now();
        for i in 0..100 {
            std::hint::black_box(nearest_county(22.5 + f64::from(i) * 0.01, 113.9));
        }
        let each = start.elapsed() / 100;
        assert!(each < std::time::Duration::from_millis(2), "{each:?} a search");
    }
}
