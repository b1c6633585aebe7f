//! The stations' positions in memory for the radius search (003 §2.1 `station_nearby_list`): a
//! copy of `charging_station`'s ids and positions, sorted by latitude band then longitude,
//! reloaded from the database once it is older than [`MAX_AGE`].
//!
//! Why a copy: the search's box over 10,000 stations is a few hundred positions, and asking
//! the database for them on every request (one statement, its rows aggregated into JSON by
//! SQLite) cost about 160 µs of SQLite and a round trip through the connection's worker thread —
//! half a request's CPU. No request writes a station (the catalogue comes only from seeds and
//! `mpapi bench-data`), so the copy is derived data, never state another instance must see: an
//! instance sees a catalogue loaded by another process within [`MAX_AGE`]. Availability, names
//! and everything else a list shows are still read from the database per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::storage::charging::LAT_BAND_E6;
use crate::storage::{Db, StorageError};

/// How old the copy may be before a search reloads it (in the background: the search that
/// notices answers from the copy it has).
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// One station's position (micro-degrees, GCJ-02) under its 0.01° latitude band.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    band: i64,
    longitude_e6: i64,
    latitude_e6: i64,
    id: Arc<str>,
}

/// A loaded copy: the entries by (band, longitude, latitude, id), and when it was read.
#[derive(Debug)]
struct Loaded {
    entries: Vec<Entry>,
    read_at: Instant,
}

/// The positions copy of one server (one per charging API; every clone of the service shares it).
#[derive(Debug)]
pub struct StationPositions {
    loaded: ArcSwapOption<Loaded>,
    reloading: AtomicBool,
    max_age: Duration,
}

impl StationPositions {
    /// An empty copy, reloaded when [`MAX_AGE`] old: the first search loads it.
    pub fn new() -> Arc<StationPositions> {
        StationPositions::with_max_age(MAX_AGE)
    }

    /// An empty copy reloaded when `max_age` old (tests: zero, a reload after every search).
    pub fn with_max_age(max_age: Duration) -> Arc<StationPositions> {
        Arc::new(StationPositions { loaded: ArcSwapOption::empty(), reloading: AtomicBool::new(false), max_age })
    }

    /// Stations whose position lies in the box (micro-degrees, inclusive), as
    /// `(id, latitude_e6, longitude_e6)` in no particular order (the ids shared with the copy:
    /// a box holds hundreds, and copying each was a visible share of a search). Reads the stations from `db`
    /// first when nothing is loaded yet (waiting for it); starts a reload in the background when
    /// the copy is older than its maximum age (one reload at a time). Errors: the database's, on
    /// a first load only.
    pub async fn in_box(self: &Arc<Self>, db: &Db, lat: (i64, i64), lng: (i64, i64)) -> Result<Vec<(Arc<str>, i64, i64)>, StorageError> {
        let loaded = match self.loaded.load_full() {
            Some(loaded) => {
                if loaded.read_at.elapsed() >= self.max_age && !self.reloading.swap(true, Ordering::AcqRel) {
                    let (this, db) = (self.clone(), db.clone());
                    tokio::spawn(async move {
                        if let Err(error) = this.reload(&db).await {
                            tracing::warn!(api = "charging", "reloading the station positions: {error}; searching the older copy");
                        }
                        this.reloading.store(false, Ordering::Release);
                    });
                }
                loaded
            }
            None => self.reload(db).await?,
        };
        Ok(loaded.in_box(lat, lng))
    }

    /// Read every station's position and make it the copy searched.
    async fn reload(&self, db: &Db) -> Result<Arc<Loaded>, StorageError> {
        let read_at = Instant::now();
        let loaded = Arc::new(Loaded::new(db.charging().station_positions().await?, read_at));
        self.loaded.store(Some(loaded.clone()));
        Ok(loaded)
    }
}

impl Loaded {
    /// The copy of `positions` (`(id, latitude_e6, longitude_e6)`, any order) read at `read_at`.
    fn new<I: Into<Arc<str>>>(positions: Vec<(I, i64, i64)>, read_at: Instant) -> Loaded {
        let mut entries: Vec<Entry> = positions
            .into_iter()
            .map(|(id, latitude_e6, longitude_e6)| Entry { band: latitude_e6 / LAT_BAND_E6, longitude_e6, latitude_e6, id: id.into() })
            .collect();
        entries.sort_unstable();
        Loaded { entries, read_at }
    }

    /// Each latitude band the box crosses is one run of the sorted entries over the box's
    /// longitudes (found by binary search); of those, the ones inside its latitudes.
    fn in_box(&self, lat: (i64, i64), lng: (i64, i64)) -> Vec<(Arc<str>, i64, i64)> {
        let mut found = Vec::new();
        // Integer division truncates toward zero and is monotonic: the bands of the box are
        // exactly those from its south edge's to its north's.
        for band in lat.0 / LAT_BAND_E6..=lat.1 / LAT_BAND_E6 {
            let start = self.entries.partition_point(|e| (e.band, e.longitude_e6) < (band, lng.0));
            for entry in self.entries[start..].iter().take_while(|e| e.band == band && e.longitude_e6 <= lng.1) {
                if (lat.0..=lat.1).contains(&entry.latitude_e6) {
                    found.push((entry.id.clone(), entry.latitude_e6, entry.longitude_e6));
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the definition (every station whose latitude and longitude lie in the box,
    /// edges included) over a grid of stations straddling band edges, the equator and the
    /// prime meridian (where the coordinates change sign).
    #[test]
    fn the_box_holds_exactly_the_stations_inside_it_edges_included() {
        let mut stations = Vec::new();
        for la in (-25_000..=25_000).step_by(2_500) {
            for ln in (-30_000..=30_000).step_by(3_000) {
                stations.push((format!("S{la}_{ln}"), 22_640_000 + la, 114_050_000 + ln));
                stations.push((format!("E{la}_{ln}"), la, ln));
            }
        }
        let refs: Vec<(&str, i64, i64)> = stations.iter().map(|(id, la, ln)| (id.as_str(), *la, *ln)).collect();
        let copy = Loaded::new(refs.clone(), Instant::now());
        let boxes = [
            ((22_630_000, 22_650_000), (114_041_000, 114_059_000)),
            ((22_615_000, 22_615_000), (114_020_000, 114_080_000)),
            ((-10_000, 10_000), (-9_000, 9_000)),
            ((-12_345, -2_500), (-30_000, -29_999)),
            ((30_000_000, 30_100_000), (0, 1)),
        ];
        for (lat, lng) in boxes {
            let mut found: Vec<(String, i64, i64)> = copy.in_box(lat, lng).into_iter().map(|(id, la, ln)| (id.to_string(), la, ln)).collect();
            found.sort();
            let mut expected: Vec<(String, i64, i64)> = refs
                .iter()
                .filter(|(_, la, ln)| (lat.0..=lat.1).contains(la) && (lng.0..=lng.1).contains(ln))
                .map(|(id, la, ln)| (id.to_string(), *la, *ln))
                .collect();
            expected.sort();
            assert_eq!(found, expected, "box {lat:?} {lng:?}");
        }
        assert!(!copy.in_box((22_630_000, 22_650_000), (114_041_000, 114_059_000)).is_empty());
    }

    /// The first search loads the copy; stations written later by another process are found
    /// once the copy is old enough and a search has started its reload.
    #[tokio::test]
    async fn stations_written_later_are_found_after_a_reload() {
        let db = Db::connect("sqlite::memory:").await.expect("a database");
        let now = chrono::Utc::now().timestamp_millis();
        // The generated stations lie over greater Shenzhen; the box is that whole area.
        let (lat, lng) = ((22_400_000, 22_900_000), (113_700_000, 114_400_000));
        let stale = StationPositions::with_max_age(Duration::from_secs(3600));
        let fresh = StationPositions::with_max_age(Duration::ZERO);
        let before = fresh.in_box(&db, lat, lng).await.unwrap().len();
        assert_eq!(stale.in_box(&db, lat, lng).await.unwrap().len(), before);
        assert!(crate::charging::seed::bench(&db, 40, now).await.unwrap());
        assert_eq!(stale.in_box(&db, lat, lng).await.unwrap().len(), before, "an hour-long copy is kept");
        // The search that notices the age answers from the copy it has and reloads behind it.
        let mut found = fresh.in_box(&db, lat, lng).await.unwrap().len();
        for _ in 0..200 {
            if found == before + 40 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            found = fresh.in_box(&db, lat, lng).await.unwrap().len();
        }
        assert_eq!(found, before + 40);
    }
}
