//! Request budgets in the database (`rate_window`): each client's admissions within the last
//! window, read, counted by [`crate::ratelimit::Window`] and written back only if no other
//! instance wrote in between, so every instance on the database counts against one budget per
//! client.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{Db, StorageError};

/// One limit's budgets as rows of `rate_window`: a client's admissions within the window
/// (`spent`, the text of [`crate::ratelimit::Spent`]) and a version every write moves. The
/// counting itself is [`crate::ratelimit::Window`]'s; this store reads a row and writes it back
/// on condition.
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

/// A client's row as read: what it spent (`spent`, `seen_us`) and the version a write must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRow {
    /// [`crate::ratelimit::Spent`]'s text.
    pub spent: String,
    /// The newest request time counted, µs since 1970 (UTC).
    pub seen_us: i64,
    /// Moved by every write.
    pub version: i64,
}

/// One client's budget to write at version `next`, if still at `read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetWrite<'a> {
    /// The client (an IP address, a user id; never empty: the empty client pads the statements'
    /// lists and is never written).
    pub client: &'a str,
    /// The version read (`None`: there was no row).
    pub read: Option<i64>,
    /// The version written.
    pub next: i64,
    /// [`crate::ratelimit::Spent`]'s text.
    pub spent: String,
    /// The newest request time counted, µs since 1970 (UTC).
    pub seen_us: i64,
    /// When all of it has left the window, µs since 1970 ([`RateLimitStore::prune`] deletes it
    /// after).
    pub expires_us: i64,
}

impl RateLimitStore {
    /// The budgets in `db`. They live on [`Db::volatile`]: a power cut may forget the last
    /// requests counted (their clients get them back), a crash of the process nothing.
    pub fn new(db: Db) -> RateLimitStore {
        RateLimitStore(db)
    }

    /// The rows of `clients` (distinct) under limit `scope`, by client: those that spent any of
    /// their budget within a window. One statement; the list is padded to a power of two (with
    /// its last client), so a connection's prepared statements are a handful of lengths.
    pub async fn load_many(&self, scope: &str, clients: &[&str]) -> Result<HashMap<String, BudgetRow>, StorageError> {
        if clients.is_empty() {
            return Ok(HashMap::new());
        }
        let conn = self.0.volatile();
        let backend = conn.get_database_backend();
        let listed = clients.len().next_power_of_two();
        let sql = match backend {
            // Each client looked up on its own (by the primary key once the table is more than a
            // few pages): a plain `IN` list, planned while the table was nearly empty (a table of
            // budgets fills within seconds of a start), scanned every client of the scope and
            // filtered them.
            DbBackend::Postgres => format!(
                "SELECT r.client, r.spent, r.seen_us, r.version FROM (VALUES {}) AS v (client) CROSS JOIN LATERAL \
                 (SELECT client, spent, seen_us, version FROM rate_window WHERE scope = $1 AND client = v.client LIMIT 1) AS r",
                values_rows(backend, listed, 1, 2)
            ),
            _ => format!(
                "SELECT client, spent, seen_us, version FROM rate_window WHERE scope = ?1 AND client IN ({})",
                (2..listed + 2).map(|n| placeholder(backend, n)).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(listed + 1);
        values.push(scope.into());
        values.extend((0..listed).map(|n| clients[n.min(clients.len() - 1)].into()));
        let rows = conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            let client: String = row.try_get_by_index(0)?;
            found.insert(client, BudgetRow { spent: row.try_get_by_index(1)?, seen_us: row.try_get_by_index(2)?, version: row.try_get_by_index(3)? });
        }
        Ok(found)
    }

    /// Write each of `updates` (distinct clients of limit `scope` whose rows were read) if its
    /// row is still at the version read ([`BudgetWrite::read`]): one conditional `UPDATE … FROM
    /// (VALUES …)` for all of them. Answers the clients written; the others were written first by
    /// another instance (read again).
    pub async fn update_many(&self, scope: &str, updates: &[BudgetWrite<'_>]) -> Result<HashSet<String>, StorageError> {
        self.write_many(scope, updates, update_statement).await
    }

    /// Make the rows of `inserts` (distinct clients of limit `scope` that had none), unless
    /// another instance made one first: one `INSERT … ON CONFLICT DO NOTHING` for all of them.
    /// Answers the clients written; the others were made first by another instance (read again).
    pub async fn insert_many(&self, scope: &str, inserts: &[BudgetWrite<'_>]) -> Result<HashSet<String>, StorageError> {
        self.write_many(scope, inserts, insert_statement).await
    }

    /// `writes` by the statement `statement` makes of them, sorted by client: two instances
    /// writing the same clients at once then usually lock their rows in the same order (the
    /// order a statement locks rows in is its plan's). Should PostgreSQL still abort one (a
    /// deadlock, detected after `deadlock_timeout`, with another instance's write or with the
    /// prune; a serialization failure), nothing of it was written: the clients are answered as
    /// not written, to be read again.
    async fn write_many(
        &self,
        scope: &str,
        writes: &[BudgetWrite<'_>],
        statement: fn(DbBackend, &str, &[&BudgetWrite]) -> Option<SqlAndValues>,
    ) -> Result<HashSet<String>, StorageError> {
        let conn = self.0.volatile();
        let backend = conn.get_database_backend();
        let mut sorted: Vec<&BudgetWrite> = writes.iter().collect();
        sorted.sort_unstable_by_key(|write| write.client);
        let Some((sql, values, client)) = statement(backend, scope, &sorted) else { return Ok(HashSet::new()) };
        // One write (a turn of one client, the usual case) is told by the rows it affected:
        // rows answered by `RETURNING` are each a hand-over from sqlx's SQLite worker. By hand,
        // six alternating runs of each build, a one-client read on SQLite was 4.7 % slower than
        // with the one-row statements these replaced while a single write used `RETURNING`, and
        // 1.6 % slower without.
        let written = if let [only] = sorted[..] {
            conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await
                .map(|done| if done.rows_affected() == 1 { HashSet::from([only.client.to_owned()]) } else { HashSet::new() })
        } else {
            let returning = format!("{sql} RETURNING {client}");
            conn.query_all_raw(Statement::from_sql_and_values(backend, returning, values))
                .await
                .and_then(|rows| rows.iter().map(|row| row.try_get_by_index::<String>(0)).collect())
        };
        match written {
            Ok(written) => Ok(written),
            Err(error) if lost_to_another_writer(&error) => {
                tracing::debug!(%error, scope, clients = writes.len(), "a budget write lost to another writer; read again");
                Ok(HashSet::new())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Forget the clients whose admissions have all left the window at `now_us`: the table
    /// holds only clients that spent part of their budget recently. Also the budgets of earlier
    /// versions' `rate_limit` (GCRA) that are whole again, as those versions pruned them: kept
    /// by migration 000022 for instances of an earlier version during a rolling upgrade, and
    /// emptied once they are gone. Answers the rows deleted.
    pub async fn prune(&self, now_us: i64) -> Result<u64, StorageError> {
        let conn = self.0.volatile();
        let backend = conn.get_database_backend();
        let mut deleted = 0;
        for sql in match backend {
            DbBackend::Postgres => ["DELETE FROM rate_window WHERE expires_us < $1", "DELETE FROM rate_limit WHERE tat_us < $1"],
            _ => ["DELETE FROM rate_window WHERE expires_us < ?1", "DELETE FROM rate_limit WHERE tat_us < ?1"],
        } {
            deleted += conn.execute_raw(Statement::from_sql_and_values(backend, sql, [now_us.into()])).await?.rows_affected();
        }
        Ok(deleted)
    }
}

/// A write's text (without its `RETURNING` clause), its parameters, and the column naming the
/// client of a row it wrote.
type SqlAndValues = (String, Vec<sea_orm::Value>, &'static str);

/// Whether PostgreSQL aborted a statement for a deadlock (`40P01`) or a serialization failure
/// (`40001`): it wrote nothing, and trying again is right.
fn lost_to_another_writer(error: &sea_orm::DbErr) -> bool {
    let (sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(error)) | sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error))) = error else {
        return false;
    };
    matches!(error.as_database_error().and_then(|e| e.code()).as_deref(), Some("40P01" | "40001"))
}

/// The `n`-th (from 1) parameter of a statement for `backend`.
fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

/// `rows` rows of `columns` parameters each, from parameter `first`: `(?2, ?3), (?4, ?5)`.
fn values_rows(backend: DbBackend, rows: usize, columns: usize, first: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", (0..columns).map(|column| placeholder(backend, first + row * columns + column)).collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The conditional update of the rows read, padded to a power of two with rows that match
/// nothing (client `''`, version −1); `None` when there are none.
fn update_statement(backend: DbBackend, scope: &str, updates: &[&BudgetWrite]) -> Option<SqlAndValues> {
    if updates.is_empty() {
        return None;
    }
    let listed = updates.len().next_power_of_two();
    // A CTE names the VALUES' columns on both databases (SQLite's own names are column1…).
    let rows = values_rows(backend, listed, 6, 2);
    let sql = match backend {
        // The rows found one client at a time (see `load_many`), then updated by their tuple
        // id: a join of the list with the table, planned while the table was nearly empty,
        // hashed every client of the scope. A row another instance wrote meanwhile has a new
        // tuple id, and its version is checked again on the row as it is now.
        DbBackend::Postgres => format!(
            "WITH v (client, read_version, next_version, spent, seen_us, expires_us) AS (VALUES {rows}), \
             found AS (SELECT r.at, v.* FROM v CROSS JOIN LATERAL \
             (SELECT ctid AS at FROM rate_window WHERE scope = $1 AND client = v.client AND version = v.read_version LIMIT 1) AS r) \
             UPDATE rate_window SET spent = found.spent, seen_us = found.seen_us, version = found.next_version, expires_us = found.expires_us \
             FROM found WHERE rate_window.ctid = found.at AND rate_window.version = found.read_version"
        ),
        _ => format!(
            "WITH v (client, read_version, next_version, spent, seen_us, expires_us) AS (VALUES {rows}) \
             UPDATE rate_window SET spent = v.spent, seen_us = v.seen_us, version = v.next_version, expires_us = v.expires_us \
             FROM v WHERE rate_window.scope = ?1 AND rate_window.client = v.client AND rate_window.version = v.read_version"
        ),
    };
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(1 + listed * 6);
    values.push(scope.into());
    for n in 0..listed {
        match updates.get(n) {
            Some(write) => values.extend([
                write.client.into(),
                write.read.unwrap_or(-1).into(),
                write.next.into(),
                write.spent.clone().into(),
                write.seen_us.into(),
                write.expires_us.into(),
            ]),
            None => values.extend(["".into(), (-1i64).into(), 0i64.into(), "".into(), 0i64.into(), 0i64.into()]),
        }
    }
    let client = if backend == DbBackend::Postgres { "rate_window.client" } else { "client" };
    Some((sql, values, client))
}

/// The insert of new rows (none written if another instance made the row first), padded to a
/// power of two with rows the `WHERE` leaves out (client `''`); `None` when there are none.
fn insert_statement(backend: DbBackend, scope: &str, inserts: &[&BudgetWrite]) -> Option<SqlAndValues> {
    if inserts.is_empty() {
        return None;
    }
    let listed = inserts.len().next_power_of_two();
    let sql = format!(
        "WITH v (client, next_version, spent, seen_us, expires_us) AS (VALUES {}) \
         INSERT INTO rate_window (scope, client, spent, seen_us, version, expires_us) \
         SELECT {}, v.client, v.spent, v.seen_us, v.next_version, v.expires_us FROM v WHERE v.client <> '' \
         ON CONFLICT (scope, client) DO NOTHING",
        values_rows(backend, listed, 5, 2),
        placeholder(backend, 1)
    );
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(1 + listed * 5);
    values.push(scope.into());
    for n in 0..listed {
        match inserts.get(n) {
            Some(write) => {
                values.extend([write.client.into(), write.next.into(), write.spent.clone().into(), write.seen_us.into(), write.expires_us.into()])
            }
            None => values.extend(["".into(), 0i64.into(), "".into(), 0i64.into(), 0i64.into()]),
        }
    }
    Some((sql, values, "client"))
}
