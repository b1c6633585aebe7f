//! Request budgets in the database (`rate_limit`): GCRA with one conditional upsert per counted
//! request, so every instance on the database counts against one budget per client.

use std::sync::LazyLock;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{Db, StorageError};

/// The admitting upsert in each backend's spelling (`max(a, b)` is SQLite's two-argument scalar,
/// PostgreSQL's `GREATEST`), written once rather than on every counted request.
static ADMIT_SQLITE: LazyLock<String> = LazyLock::new(|| admit_sql("MAX", |n| format!("?{n}")));
static ADMIT_POSTGRES: LazyLock<String> = LazyLock::new(|| admit_sql("GREATEST", |n| format!("${n}")));

/// `INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING` over parameters scope, client, now,
/// interval and window (1–5): see [`RateLimitStore::admit`]. `{greatest}(seen_us, now)` is the
/// request's time as the row counts it: never earlier than a request it already counted.
fn admit_sql(greatest: &str, p: fn(usize) -> String) -> String {
    let (scope_p, client_p, now_p, interval_p, window_p) = (p(1), p(2), p(3), p(4), p(5));
    let at = format!("{greatest}(rate_limit.seen_us, {now_p})");
    format!(
        "INSERT INTO rate_limit (scope, client, tat_us, seen_us) VALUES ({scope_p}, {client_p}, {now_p} + {interval_p}, {now_p}) \
         ON CONFLICT (scope, client) DO UPDATE SET tat_us = {greatest}(rate_limit.tat_us, {at}) + {interval_p}, seen_us = {at} \
         WHERE {greatest}(rate_limit.tat_us, {at}) + {interval_p} - {window_p} <= {at} \
         RETURNING tat_us"
    )
}

/// One limit's budgets: `requests` per window per client, as GCRA keeps them — a theoretical
/// arrival time (TAT) per client that each admitted request moves one emission interval
/// (window / requests) later; a request is admitted while the TAT it would leave is at most one
/// window ahead of now. It allows the whole budget at once, then one request per interval, and
/// never more than `requests` in any window.
#[derive(Clone, Debug)]
pub struct RateLimitStore(Db);

/// What a counted request is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted; go on.
    Allowed,
    /// Over the budget: the next request is admitted in this many µs.
    Refused {
        /// µs until the next admitted request.
        wait_us: i64,
    },
}

impl RateLimitStore {
    /// The budgets in `db`.
    pub fn new(db: Db) -> RateLimitStore {
        RateLimitStore(db)
    }

    /// Count one request of `client` against limit `scope` at `now_us` (µs since 1970, UTC):
    /// one statement, an upsert whose update is conditional on the budget, so two instances
    /// counting the same client at once are serialised by the row (the database's lock) and
    /// never both take the last request. It runs on [`Db::volatile`]: a power cut may forget the
    /// last requests counted (their clients get them back), a crash of the process nothing.
    /// `interval_us` is window / requests, `window_us` the window, both > 0.
    ///
    /// Instances read their clocks before they wait for a pooled connection, so concurrent
    /// requests reach the row out of time order; the row keeps the newest time it counted
    /// (`seen_us`) and counts a request stamped earlier at that time. Otherwise a burst's last
    /// request, stamped a few ms before one already counted, would be refused though within budget.
    pub async fn admit(&self, scope: &str, client: &str, now_us: i64, interval_us: i64, window_us: i64) -> Result<Admission, StorageError> {
        let conn = self.0.volatile();
        let backend = conn.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => &*ADMIT_POSTGRES,
            _ => &*ADMIT_SQLITE,
        };
        let values: Vec<sea_orm::Value> = vec![scope.into(), client.into(), now_us.into(), interval_us.into(), window_us.into()];
        if conn.query_one_raw(Statement::from_sql_and_values(backend, sql.as_str(), values)).await?.is_some() {
            return Ok(Admission::Allowed);
        }
        // Refused: the row kept its TAT. Read it for the wait (only refusals pay this).
        let sql = match backend {
            DbBackend::Postgres => "SELECT tat_us, seen_us FROM rate_limit WHERE scope = $1 AND client = $2",
            _ => "SELECT tat_us, seen_us FROM rate_limit WHERE scope = ?1 AND client = ?2",
        };
        let row = conn.query_one_raw(Statement::from_sql_and_values(backend, sql, [scope.into(), client.into()])).await?;
        let (tat, at): (i64, i64) = match row {
            Some(row) => (row.try_get_by_index(0)?, row.try_get_by_index::<i64>(1)?.max(now_us)),
            None => (now_us, now_us),
        };
        Ok(Admission::Refused { wait_us: (tat + interval_us - window_us - at).max(0) })
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
