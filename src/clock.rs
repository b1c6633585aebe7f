//! Time: the server's clock (UTC now, which tests can move forward — code expiry, token
//! lifetime, late fees — without sleeping), and the conversions between UTC inside and the
//! documents' wire formats (ISO 8601 with milliseconds, Beijing calendar days).

use std::sync::{Arc, LazyLock};
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Utc};

/// Beijing time, UTC+8: the business day of every document (heating's due days and date
/// filters, community's and o2o's local times, WeChat Pay's `+08:00` times).
pub const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// UTC time, plus an offset that only tests set.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Now (UTC).
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Now, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Move this clock (and every clone of it) forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

/// ms since the epoch as the documents write times: `2024-01-01T12:00:00.000Z` (ISO 8601, UTC).
pub fn iso_ms(ms: i64) -> String {
    // chrono's RFC 3339 writer, not a `format` string: that is parsed again on every call, and
    // these stamps are in most answers.
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// ms since the epoch as points (001) writes times: `2024-12-31T23:59:59Z` (ISO 8601, UTC,
/// whole seconds — the document's only value has none).
pub fn iso_s(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// ms since the epoch as community (002) and o2o (004) write times: `2020-11-19 13:34:38`,
/// Beijing local time, whole seconds.
pub fn beijing_local(ms: i64) -> String {
    /// `%Y-%m-%d %H:%M:%S`, parsed once.
    static LOCAL: LazyLock<Vec<Item<'static>>> =
        LazyLock::new(|| StrftimeItems::new("%Y-%m-%d %H:%M:%S").parse_to_owned().expect("a valid format"));
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&BEIJING).format_with_items(LOCAL.iter()).to_string()
}

/// The Beijing calendar day `ms` (since the epoch) falls on.
pub fn beijing_date(ms: i64) -> NaiveDate {
    BEIJING.timestamp_millis_opt(ms).single().map(|t| t.date_naive()).unwrap_or_default()
}

/// The first millisecond of Beijing calendar day `date` (16:00Z the day before).
pub fn beijing_day_start(date: NaiveDate) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    BEIJING.from_local_datetime(&midnight).single().expect("a fixed offset is never ambiguous").timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_days_start_at_sixteen_hundred_utc() {
        let date = NaiveDate::from_ymd_opt(2024, 12, 1).unwrap();
        assert_eq!(iso_ms(beijing_day_start(date)), "2024-11-30T16:00:00.000Z");
        assert_eq!(beijing_date(beijing_day_start(date)), date);
        assert_eq!(beijing_date(beijing_day_start(date) - 1), date.pred_opt().unwrap());
    }

    #[test]
    fn wire_formats_keep_their_shapes() {
        // 2024-12-31T23:59:59.005Z: a millisecond below ten, and a Beijing day one ahead.
        let ms = 1_735_689_599_005;
        assert_eq!(iso_ms(ms), "2024-12-31T23:59:59.005Z");
        assert_eq!(iso_ms(ms - 5), "2024-12-31T23:59:59.000Z");
        assert_eq!(iso_s(ms), "2024-12-31T23:59:59Z");
        assert_eq!(beijing_local(ms), "2025-01-01 07:59:59");
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
