//! Distances on the earth for "near me" searches: haversine great-circle distance in metres and
//! the latitude/longitude box that holds every point within a radius (an index narrows to the
//! box, the distance decides). Coordinates are degrees; charging stores micro-degrees.

/// The mean earth radius, metres (IUGG), the usual haversine radius.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Metres between two points (degrees), by the haversine formula.
pub fn distance_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// The box (degrees: `(lat_min, lat_max), (lng_min, lng_max)`) containing every point within
/// `radius_m` metres of (`lat`, `lng`). Near the poles, or when the box would cross the
/// antimeridian, the longitude span is the whole circle (the distance still decides).
pub fn bounding_box(lat: f64, lng: f64, radius_m: f64) -> ((f64, f64), (f64, f64)) {
    let dlat = (radius_m / EARTH_RADIUS_M).to_degrees();
    let lat_range = ((lat - dlat).max(-90.0), (lat + dlat).min(90.0));
    let cos = lat.to_radians().cos().min((lat_range.0).to_radians().cos()).min((lat_range.1).to_radians().cos());
    let dlng = if cos <= 1e-9 { 360.0 } else { (radius_m / (EARTH_RADIUS_M * cos)).to_degrees() };
    let lng_range = if dlng >= 180.0 || lng - dlng < -180.0 || lng + dlng > 180.0 { (-180.0, 180.0) } else { (lng - dlng, lng + dlng) };
    (lat_range, lng_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_between_known_places() {
        // 深圳湾科技生态园 → 南山科技园北区 (the contract's examples): about 3 km.
        let d = distance_m(22.528471, 113.944723, 22.555318, 113.950182);
        assert!((2_990.0..3_060.0).contains(&d), "{d}");
        assert_eq!(distance_m(22.5, 113.9, 22.5, 113.9), 0.0);
        // One degree of latitude is about 111.2 km.
        let degree = distance_m(0.0, 0.0, 1.0, 0.0);
        assert!((111_150.0..111_250.0).contains(&degree), "{degree}");
    }

    #[test]
    fn the_box_holds_the_circle() {
        let (lat, lng) = (22.528471, 113.944723);
        let ((lat0, lat1), (lng0, lng1)) = bounding_box(lat, lng, 5_000.0);
        // The circle's extreme points are inside the box, and just beyond it is over 5 km.
        assert!(distance_m(lat, lng, lat1, lng) >= 4_999.0 && distance_m(lat, lng, lat0, lng) >= 4_999.0);
        assert!(distance_m(lat, lng, lat, lng1) >= 4_999.0 && distance_m(lat, lng, lat, lng0) >= 4_999.0);
        assert!(lat0 < lat && lat < lat1 && lng0 < lng && lng < lng1);
        // At the antimeridian or a pole the longitude is unbounded.
        assert_eq!(bounding_box(10.0, 179.99, 5_000.0).1, (-180.0, 180.0));
        assert_eq!(bounding_box(89.99, 0.0, 5_000.0).1, (-180.0, 180.0));
    }
}
