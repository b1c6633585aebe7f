//! Request budgets in the database (`rate_limit`): GCRA with one conditional upsert per counting
//! (of one request, or of a client's requests arriving together), so every instance on the
//! database counts against one budget per client.

use std::sync::LazyLock;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{Db, StorageError};

/// The admitting upsert in each backend's spelling (two-argument `max`/`min` are SQLite's
/// scalars, PostgreSQL's `GREATEST`/`LEAST`), written once rather than on every counting.
static ADMIT_SQLITE: LazyLock<String> = LazyLock::new(|| admit_sql("MAX", "MIN", |n| format!("?{n}")));
static ADMIT_POSTGRES: LazyLock<String> = LazyLock::new(|| admit_sql("GREATEST", "LEAST", |n| format!("${n}")));

/// `INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING` over parameters scope, client, now,
/// interval, window and the requests counted (1–6): see [`RateLimitStore::admit`].
/// `{greatest}(seen_us, now)` is the requests' time as the row counts it (never earlier than a
/// request it already counted); from the TAT at that time, `(at + window - tat) / interval`
/// more requests fit (integer division; none when negative), and the row admits as many of the
/// counted requests as fit. Every `SET` expression reads the row as it was.
fn admit_sql(greatest: &str, least: &str, p: fn(usize) -> String) -> String {
    let (scope_p, client_p, now_p, interval_p, window_p, count_p) = (p(1), p(2), p(3), p(4), p(5), p(6));
    let at = format!("{greatest}(rate_limit.seen_us, {now_p})");
    let base = format!("{greatest}(rate_limit.tat_us, {at})");
    let admitted = format!("{least}({count_p}, ({at} + {window_p} - {base}) / {interval_p})");
    let first = format!("{least}({count_p}, {window_p} / {interval_p})");
    format!(
        "INSERT INTO rate_limit (scope, client, tat_us, seen_us, admitted) \
         VALUES ({scope_p}, {client_p}, {now_p} + {first} * {interval_p}, {now_p}, {first}) \
         ON CONFLICT (scope, client) DO UPDATE SET tat_us = {base} + {admitted} * {interval_p}, seen_us = {at}, admitted = {admitted} \
         WHERE {admitted} > 0 \
         RETURNING admitted, tat_us, seen_us"
    )
}

/// One limit's budgets: `requests` per window per client, as GCRA keeps them — a theoretical
/// arrival time (TAT) per client that each admitted request moves one emission interval
/// (window / requests) later; a request is admitted while the TAT it would leave is at most one
/// window ahead of now. It allows the whole budget at once, then one request per interval: up
/// to twice `requests` within one window (see [`crate::ratelimit`]).
#[derive(Clone, Debug)]
pub struct RateLimitStore(Db);

/// What the requests counted together are told: the first `admitted` of them go on, the rest
/// are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// How many of the requests counted were admitted (from the first).
    pub admitted: u32,
    /// µs until the budget admits its next request (0 when it would admit one now).
    pub wait_us: i64,
}

impl RateLimitStore {
    /// The budgets in `db`.
    pub fn new(db: Db) -> RateLimitStore {
        RateLimitStore(db)
    }

    /// Count `count` (≥ 1) requests of `client` against limit `scope` at `now_us` (µs since
    /// 1970, UTC), admitting as many as the budget holds: one statement, an upsert whose update
    /// is conditional on the budget, so two instances counting the same client at once are
    /// serialised by the row (the database's lock) and never both take the last request. Counting
    /// n requests at once admits exactly what counting them one after another at `now_us` would.
    /// It runs on [`Db::volatile`]: a power cut may forget the last requests counted (their
    /// clients get them back), a crash of the process nothing. `interval_us` is window /
    /// requests, `window_us` the window, both > 0.
    ///
    /// Instances read their clocks before they wait for a pooled connection, so concurrent
    /// requests reach the row out of time order; the row keeps the newest time it counted
    /// (`seen_us`) and counts a request stamped earlier at that time. Otherwise a burst's last
    /// request, stamped a few ms before one already counted, would be refused though within budget.
    pub async fn admit(&self, scope: &str, client: &str, now_us: i64, interval_us: i64, window_us: i64, count: u32) -> Result<Admission, StorageError> {
        let conn = self.0.volatile();
        let backend = conn.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => &*ADMIT_POSTGRES,
            _ => &*ADMIT_SQLITE,
        };
        let values: Vec<sea_orm::Value> =
            vec![scope.into(), client.into(), now_us.into(), interval_us.into(), window_us.into(), i64::from(count.max(1)).into()];
        let (admitted, tat, at) = match conn.query_one_raw(Statement::from_sql_and_values(backend, sql.as_str(), values)).await? {
            Some(row) => (row.try_get_by_index::<i64>(0)?, row.try_get_by_index::<i64>(1)?, row.try_get_by_index::<i64>(2)?),
            None => {
                // None admitted: the row kept its TAT. Read it for the wait (only refusals pay this).
                let sql = match backend {
                    DbBackend::Postgres => "SELECT tat_us, seen_us FROM rate_limit WHERE scope = $1 AND client = $2",
                    _ => "SELECT tat_us, seen_us FROM rate_limit WHERE scope = ?1 AND client = ?2",
                };
                let row = conn.query_one_raw(Statement::from_sql_and_values(backend, sql, [scope.into(), client.into()])).await?;
                match row {
                    Some(row) => (0, row.try_get_by_index(0)?, row.try_get_by_index::<i64>(1)?.max(now_us)),
                    None => (0, now_us, now_us),
                }
            }
        };
        Ok(Admission { admitted: u32::try_from(admitted).unwrap_or(0), wait_us: (tat + interval_us - window_us - at).max(0) })
    }

    /// Forget the clients whose budget is whole again at `now_us` (their TAT has passed): the
    /// table holds only clients that spent part of their budget recently. Answers the rows
    /// deleted.
    pub async fn prune(&self, now_us: i64) -> Result<u64, StorageError> {
        let conn = self.0.volatile();
        let backend = conn.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => "DELETE FROM rate_limit WHERE tat_us < $1",
            _ => "DELETE FROM rate_limit WHERE tat_us < ?1",
        };
        Ok(conn.execute_raw(Statement::from_sql_and_values(backend, sql, [now_us.into()])).await?.rows_affected())
    }
}
