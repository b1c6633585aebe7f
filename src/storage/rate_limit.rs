//! Request budgets in the database (`rate_window`): each client's admissions within the last
//! window, read, counted by [`crate::ratelimit::Window`] and written back only if no other
//! instance wrote in between, so every instance on the database counts against one budget per
//! client.

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

impl RateLimitStore {
    /// The budgets in `db`. They live on [`Db::volatile`]: a power cut may forget the last
    /// requests counted (their clients get them back), a crash of the process nothing.
    pub fn new(db: Db) -> RateLimitStore {
        RateLimitStore(db)
    }

    /// `client`'s row of limit `scope`, if it spent any of its budget within a window.
    pub async fn load(&self, scope: &str, client: &str) -> Result<Option<BudgetRow>, StorageError> {
        let conn = self.0.volatile();
        let backend = conn.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => "SELECT spent, seen_us, version FROM rate_window WHERE scope = $1 AND client = $2",
            _ => "SELECT spent, seen_us, version FROM rate_window WHERE scope = ?1 AND client = ?2",
        };
        let row = conn.query_one_raw(Statement::from_sql_and_values(backend, sql, [scope.into(), client.into()])).await?;
        Ok(match row {
            Some(row) => Some(BudgetRow { spent: row.try_get_by_index(0)?, seen_us: row.try_get_by_index(1)?, version: row.try_get_by_index(2)? }),
            None => None,
        })
    }

    /// Write `client`'s row of `scope` at version `next` — `spent`, `seen_us`, and
    /// `expires_us` (when all of it has left the window, for [`RateLimitStore::prune`]) — if it
    /// is still at `read` (the version [`RateLimitStore::load`] answered; `None`: there was no
    /// row). False: another instance wrote first; read again.
    #[allow(clippy::too_many_arguments)]
    pub async fn save(&self, scope: &str, client: &str, read: Option<i64>, next: i64, spent: &str, seen_us: i64, expires_us: i64) -> Result<bool, StorageError> {
        let conn = self.0.volatile();
        let backend = conn.get_database_backend();
        let postgres = backend == DbBackend::Postgres;
        let (sql, values): (&str, Vec<sea_orm::Value>) = match read {
            None => (
                if postgres {
                    "INSERT INTO rate_window (scope, client, spent, seen_us, version, expires_us) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, client) DO NOTHING"
                } else {
                    "INSERT INTO rate_window (scope, client, spent, seen_us, version, expires_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (scope, client) DO NOTHING"
                },
                vec![scope.into(), client.into(), spent.into(), seen_us.into(), next.into(), expires_us.into()],
            ),
            Some(version) => (
                if postgres {
                    "UPDATE rate_window SET spent = $3, seen_us = $4, version = $5, expires_us = $6 WHERE scope = $1 AND client = $2 AND version = $7"
                } else {
                    "UPDATE rate_window SET spent = ?3, seen_us = ?4, version = ?5, expires_us = ?6 WHERE scope = ?1 AND client = ?2 AND version = ?7"
                },
                vec![scope.into(), client.into(), spent.into(), seen_us.into(), next.into(), expires_us.into(), version.into()],
            ),
        };
        Ok(conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?.rows_affected() == 1)
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
