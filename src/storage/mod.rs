//! Storage: the database connection, migrations, and one store type per area (identity,
//! payments, each API's own tables). sea-orm is used here and nowhere else; the layers above call
//! store methods and get plain rows and enums back.
//!
//! A store is a thin wrapper around a connection — the pool or a transaction — so the same
//! queries run alone or inside a larger transaction (`SessionStore(&tx)`), and nothing inside a
//! transaction reaches for the pool behind its back.

use std::time::Duration;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, EntityTrait, Set, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

/// Declare a table's entity module: `entity!(name, "table", key type, auto-increment, { columns });`.
macro_rules! entity {
    ($(#[$meta:meta])* $module:ident, $table:literal, $key:ty, $auto:literal, { $($column:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        pub mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = $auto)]
                pub id: $key,
                $(pub $column: $ty,)*
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

pub mod charging;
pub mod charger_sim;
pub mod community;
pub mod heating;
pub mod id_counter;
pub mod identity;
mod migration;
pub mod o2o;
pub mod payments;
pub mod points;
pub mod rate_limit;
pub mod sandbox;
mod secret;
pub mod security_platform;

/// A storage failure. Callers answer it as their API's internal error (or "unavailable") and
/// log it; the message never reaches a client. `Clone`: one failed read of several callers'
/// rows (`crate::coalesce`) is each caller's failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The database refused or failed a statement.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// A row holds something this version cannot read (a corrupt or foreign value).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A read shared with other requests (`crate::coalesce`) ended without answering this one:
    /// it ran past `crate::coalesce::ASK_TIMEOUT`, its task panicked, or the runtime is
    /// stopping. Names the read.
    #[error("the {0} ended without an answer")]
    Unanswered(&'static str),
}

/// The database behind the real server: SQLite (embedded default) or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// Connections for state that may lose its last writes in a power cut (the request budgets,
    /// the sandbox payment platform's ledger): [`Db::volatile`].
    volatile: DatabaseConnection,
    /// A SQLite file's connection for [`Db::checkpoint_wal`] (none for PostgreSQL and in-memory
    /// SQLite).
    checkpointer: Option<DatabaseConnection>,
}

/// The longest a statement on a SQLite file waits for a pooled connection before it fails: a
/// file cannot go away, so a long wait is only ever a queue (a burst of writers behind the write
/// lock), which is better waited out than refused.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a statement on PostgreSQL waits for a pooled connection before it fails. A
/// server-side database can go away, and sqlx then retries connecting until this ends: each
/// request would hang for [`ACQUIRE_TIMEOUT`] and be answered 500 only then. Long enough for a
/// queue for the 16 connections under load (the payment benchmark's 64 concurrent flows wait
/// milliseconds), short beside a client's own timeout.
pub const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a statement waits for a PostgreSQL connection of [`Db::volatile`] before it
/// fails, as a failed store does: the per-IP limit then lets its requests through (logged),
/// heating's binding attempts refuse the attempt (a guess is never uncounted), a sandbox
/// ledger statement answers an error. A counting is one short statement, and with the database
/// gone the request's own statement would otherwise wait behind it.
pub const BUDGET_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest [`Db::ping`] waits for the database's answer (a probe's own timeout is about a
/// second; sqlx's ping has none of its own on a connection whose peer went silent).
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest a statement on a SQLite file waits for another connection's lock (SQLite's busy
/// timeout) before it fails with `database is locked`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many frames (pages, 4 KiB each) a SQLite file's write-ahead log may hold before
/// [`Db::checkpoint_wal`] empties it; SQLite's own automatic checkpoint starts at 1,000.
pub const WAL_TRUNCATE_FRAMES: i64 = 1_000;

/// A connection pool's state ([`Db::pool`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Connections open, idle or in use.
    pub open: u32,
    /// Of those, the idle ones.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// Whether `url` names an in-memory SQLite database (each connection would be its own).
fn sqlite_in_memory(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
}

/// What every pool of ours shares: no statement logging (tokens and codes are bound values),
/// [`ACQUIRE_TIMEOUT`] to get a connection on SQLite and [`POSTGRES_ACQUIRE_TIMEOUT`] on
/// PostgreSQL — opening one included: sqlx has one deadline for both (sea-orm's
/// `connect_timeout` sets the same one, so it is not set here).
fn base_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    let acquire = if url.starts_with("sqlite:") { ACQUIRE_TIMEOUT } else { POSTGRES_ACQUIRE_TIMEOUT };
    options.sqlx_logging(false).acquire_timeout(acquire);
    options
}

/// How long a start waits for its database to accept connections: a PostgreSQL started beside
/// the server (a container, a machine's boot) may still be starting, and a pool's own acquire
/// timeout is shorter than that on PostgreSQL.
pub const START_WAIT: Duration = Duration::from_secs(30);

/// A SQLite file's connection as the request pools open it: write-ahead log, [`BUSY_TIMEOUT`],
/// foreign keys enforced.
fn sqlite_file(options: sea_orm::sqlx::sqlite::SqliteConnectOptions) -> sea_orm::sqlx::sqlite::SqliteConnectOptions {
    options.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal).busy_timeout(BUSY_TIMEOUT).foreign_keys(true)
}

/// Open a pool, waiting out another process's switch of a SQLite file into WAL mode: that
/// switch takes an exclusive lock which SQLite's busy timeout does not wait for (see sqlx's
/// `SqliteConnectOptions::journal_mode`), so two instances starting on one new file at once
/// could fail with `database is locked`. At most about 2 s of retries, 20 ms apart. A database
/// refusing connections (sqlx retries those until the pool's acquire timeout) is asked again
/// until [`START_WAIT`] has passed. Any other error at once.
async fn open(options: ConnectOptions) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let started = std::time::Instant::now();
    let mut retries = 100;
    loop {
        match Database::connect(options.clone()).await {
            Err(error) if retries > 0 && is_busy(&error) => {
                retries -= 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) if is_timed_out(&error) && started.elapsed() < START_WAIT => {
                tracing::warn!(waited_ms = started.elapsed().as_millis() as u64, "the database accepts no connection yet; asking again");
            }
            other => return other,
        }
    }
}

/// Whether `error` is the pool's acquire timeout (at start: no connection could be opened).
fn is_timed_out(error: &sea_orm::DbErr) -> bool {
    matches!(error, sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(sqlx_error)) if matches!(**sqlx_error, sea_orm::sqlx::Error::PoolTimedOut))
}

/// Whether connecting met SQLite's `SQLITE_BUSY` (`database is locked`, code 5), or one of its extended
/// codes (sqlx reports the extended code, whose low byte is the primary one).
fn is_busy(error: &sea_orm::DbErr) -> bool {
    let sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(sqlx_error)) = error else { return false };
    sqlx_error.as_database_error().and_then(|e| e.code()).and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| code & 0xff == 5)
}

/// How many connections a SQLite file gets: readers run beside the one writer (WAL), and a
/// request that holds a transaction never waits for the connection another request holds.
const SQLITE_CONNECTIONS: u32 = 4;

impl Db {
    /// Connect to `url` (`sqlite://file.db?mode=rwc`, `sqlite::memory:`, `postgres://…`) and apply
    /// every pending migration (two servers starting at once wait for each other).
    ///
    /// A SQLite file runs in WAL mode with several connections and a busy timeout, and every
    /// write transaction starts `BEGIN IMMEDIATE` ([`write()`]): writers queue for the write lock
    /// up front instead of failing half-way with `SQLITE_BUSY`. `sqlite::memory:` is one
    /// connection (each connection would be its own database).
    pub async fn connect(url: &str) -> Result<Db, StorageError> {
        let mut options = base_options(url);
        if url.starts_with("sqlite:") {
            let connections = if sqlite_in_memory(url) { 1 } else { SQLITE_CONNECTIONS };
            // Nothing can take a SQLite file's connection away: no ping before every statement
            // (it was a second round trip to the connection's worker thread per statement).
            options.test_before_acquire(false);
            options.max_connections(connections).min_connections(1).map_sqlx_sqlite_opts(sqlite_file);
        } else {
            // A server-side connection can be lost while idle: ping it before use only then,
            // not before every statement (a round trip each).
            options.max_connections(16).test_before_acquire_if_idle_for(Duration::from_secs(30));
        }
        let conn = open(options).await?;
        // Migrate inside one write transaction (both databases have transactional DDL), under an
        // advisory lock on PostgreSQL: a second instance starting at the same moment waits, then
        // finds the schema in place, instead of failing half-way through `CREATE TABLE`.
        let tx = write(&conn).await?;
        if conn.get_database_backend() == DbBackend::Postgres {
            tx.execute_unprepared("SELECT pg_advisory_xact_lock(7262617069)").await?;
        }
        migration::Migrator::up(&tx, None).await.map_err(|error| match error {
            // A database made by mpapi before its tables moved to the shared blocks (December
            // 2026): no migration path, and such databases only ever held development data.
            sea_orm::DbErr::Custom(detail) if detail.contains("m20261121_000002_heating") => StorageError::Corrupt(format!(
                "this database was made by an older mpapi whose heating tables are gone; it holds only development data: delete it (mpapi.db) or point DATABASE_URL at a new one ({detail})"
            )),
            other => other.into(),
        })?;
        tx.commit().await?;
        let volatile = Db::connect_volatile(url, &conn).await?;
        let checkpointer = Db::connect_checkpointer(url).await?;
        Ok(Db { conn, volatile, checkpointer })
    }

    /// The connection behind [`Db::checkpoint_wal`] for a SQLite file: a busy timeout of 100 ms,
    /// as a checkpoint that empties the log holds back writers while it waits for readers.
    async fn connect_checkpointer(url: &str) -> Result<Option<DatabaseConnection>, StorageError> {
        if !url.starts_with("sqlite:") || sqlite_in_memory(url) {
            return Ok(None);
        }
        let mut options = base_options(url);
        options
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|o| o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal).busy_timeout(Duration::from_millis(100)));
        Ok(Some(open(options).await?))
    }

    /// Keep a SQLite file's write-ahead log short; answers the frames it held (`None`: not a
    /// SQLite file). SQLite's automatic checkpoints copy the log into the database but start
    /// the log over only at a moment no reader is using it, and a server answering reads
    /// without pause never has one: the log then grows without end (half a gigabyte in 25 s
    /// of a benchmark's reads beside the per-IP budgets' writes), and every read searches its
    /// index, ever slower. Past [`WAL_TRUNCATE_FRAMES`] this checkpoints in `TRUNCATE` mode,
    /// which waits (at most 100 ms, holding writers back meanwhile; busy: next time) until the
    /// readers have moved onto the database, then empties the log. The server calls it every
    /// second (`serve::spawn_wal_checkpoints`); `None` too once the database is closed.
    pub async fn checkpoint_wal(&self) -> Result<Option<i64>, StorageError> {
        let Some(conn) = &self.checkpointer else { return Ok(None) };
        if conn.get_sqlite_connection_pool().is_closed() {
            return Ok(None);
        }
        // (busy, frames in the log, frames copied into the database); busy is a row, not an error.
        let state = conn.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)")).await?;
        let frames = state.map(|row| row.try_get_by_index::<i64>(1)).transpose()?.unwrap_or(0);
        if frames >= WAL_TRUNCATE_FRAMES {
            let truncated = conn.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(TRUNCATE)")).await?;
            if truncated.map(|row| row.try_get_by_index::<i64>(0)).transpose()? == Some(1) {
                tracing::debug!(frames, "a reader held the SQLite log past 100 ms; emptying it next time");
            }
        }
        Ok(Some(frames))
    }

    /// The pool behind [`Db::volatile`]: commits that do not wait for the disk. On SQLite one
    /// connection with `synchronous = NORMAL` (WAL: a commit is durable once checkpointed, or once
    /// a `FULL` commit of another connection syncs the log it shares; the default `FULL` syncs
    /// the log on every commit, about a millisecond each on this disk) —
    /// one connection, so its writes queue here rather than sleeping in SQLite's busy handler
    /// against each other; on PostgreSQL a few connections with `synchronous_commit = off` (a
    /// commit does not wait for the WAL flush, so a row every request updates is not held
    /// locked across one). An in-memory SQLite database has one connection, shared.
    async fn connect_volatile(url: &str, conn: &DatabaseConnection) -> Result<DatabaseConnection, StorageError> {
        let mut options = base_options(url);
        if url.starts_with("sqlite:") {
            if sqlite_in_memory(url) {
                return Ok(conn.clone());
            }
            options
                .test_before_acquire(false)
                .max_connections(1)
                .min_connections(1)
                .map_sqlx_sqlite_opts(|o| sqlite_file(o).synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal));
        } else {
            options
                .max_connections(4)
                .acquire_timeout(BUDGET_ACQUIRE_TIMEOUT)
                .test_before_acquire_if_idle_for(Duration::from_secs(30))
                .map_sqlx_postgres_opts(|o| o.options([("synchronous_commit", "off")]));
        }
        Ok(open(options).await?)
    }

    /// The connection pool, for store types.
    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The pool for state whose last writes may be lost in a power cut or a crash of PostgreSQL
    /// itself (never in a crash of this process): the request budgets (`rate_limit`: the per-IP
    /// limits, written on every request, and heating's binding attempts), and the sandbox
    /// payment platform's ledger (`Db::sandbox_pay`: a stand-in for WeChat Pay's records, three
    /// of its four writes a payment) — never the server's own money or sessions. Its commits do
    /// not wait for the disk; a later commit that does (of any connection: the log is one) makes
    /// them durable too.
    pub(crate) fn volatile(&self) -> &DatabaseConnection {
        &self.volatile
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.conn.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            _ => "other",
        }
    }

    /// Close every connection of the pool (shared by all clones): every later query fails.
    /// Shutdown uses it; tests use it to take the database away under a running server.
    pub async fn close(&self) {
        let _ = self.conn.close_by_ref().await;
        let _ = self.volatile.close_by_ref().await;
        if let Some(checkpointer) = &self.checkpointer {
            let _ = checkpointer.close_by_ref().await;
        }
    }

    /// Whether the database answers within [`PING_TIMEOUT`] (health checks).
    pub async fn ping(&self) -> bool {
        tokio::time::timeout(PING_TIMEOUT, self.conn.ping()).await.is_ok_and(|answer| answer.is_ok())
    }

    /// The connection pool as it is now (`/metrics`).
    pub fn pool(&self) -> PoolState {
        fn state<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> PoolState {
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            PoolState { open: pool.size(), idle, max: pool.options().get_max_connections() }
        }
        match self.conn.get_database_backend() {
            DbBackend::Sqlite => state(self.conn.get_sqlite_connection_pool()),
            DbBackend::Postgres => state(self.conn.get_postgres_connection_pool()),
            _ => PoolState::default(),
        }
    }

    /// The seed sets of demo data (`<api>.demo`) this database received: a production server
    /// must hold none (the demo owners' ID numbers are public).
    pub async fn demo_seeds(&self) -> Result<Vec<String>, StorageError> {
        use sea_orm::{ColumnTrait, QueryFilter};
        Ok(secret::seed_applied::Entity::find()
            .filter(secret::seed_applied::Column::Name.like("%.demo"))
            .all(&self.conn)
            .await?
            .into_iter()
            .map(|row| row.name)
            .collect())
    }

    /// Whether this database received seed set `name` (a restart skips building it).
    pub async fn seeded(&self, name: &str) -> Result<bool, StorageError> {
        Ok(secret::seed_applied::Entity::find_by_id(name.to_owned()).one(&self.conn).await?.is_some())
    }

    /// The secret called `name`: the stored one, else `generate()` stored now. Two servers
    /// starting at once agree: the first insert wins and both read it back. `generate` runs only
    /// when no secret of that name is stored (it may be costly: the sandbox's RSA keys).
    pub async fn secret(&self, name: &str, generate: impl FnOnce() -> String) -> Result<String, StorageError> {
        if let Some(value) = self.stored_secret(name).await? {
            return Ok(value);
        }
        let row = secret::ActiveModel {
            name: Set(name.to_owned()),
            value: Set(generate()),
            created_at: Set(chrono::Utc::now().timestamp_millis()),
        };
        secret::Entity::insert(row)
            .on_conflict(OnConflict::column(secret::Column::Name).do_nothing().to_owned())
            .exec_without_returning(&self.conn)
            .await?;
        secret::Entity::find_by_id(name.to_owned())
            .one(&self.conn)
            .await?
            .map(|row| row.value)
            .ok_or_else(|| StorageError::Corrupt(format!("secret {name} vanished after insert")))
    }

    /// The secret called `name` if one is stored (nothing is generated).
    pub async fn stored_secret(&self, name: &str) -> Result<Option<String>, StorageError> {
        Ok(secret::Entity::find_by_id(name.to_owned()).one(&self.conn).await?.map(|row| row.value))
    }
}

/// Claim seed set `name` inside `tx`: true when this database had not received it (the marker
/// is now written, and commits with the seed), false when it had. Of two instances seeding at
/// once, the second waits on the marker's key until the first commits, then finds it.
pub(crate) async fn claim_seed(tx: &sea_orm::DatabaseTransaction, name: &str, now: i64) -> Result<bool, StorageError> {
    let inserted = secret::seed_applied::Entity::insert(secret::seed_applied::ActiveModel {
        name: Set(name.to_owned()),
        applied_at: Set(now),
    })
    .on_conflict(OnConflict::column(secret::seed_applied::Column::Name).do_nothing().to_owned())
    .exec_without_returning(tx)
    .await?;
    Ok(inserted > 0)
}

/// Begin a write transaction on `conn`: `BEGIN IMMEDIATE` on SQLite (the write lock is taken at
/// once, so two writers queue rather than deadlock on a lock upgrade), a plain `BEGIN` on
/// PostgreSQL (row locks decide there), a savepoint inside a transaction.
pub(crate) async fn write<C: TransactionTrait + ConnectionTrait>(conn: &C) -> Result<C::Transaction, sea_orm::DbErr> {
    let options = TransactionOptions {
        sqlite_transaction_mode: (conn.get_database_backend() == DbBackend::Sqlite).then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    conn.begin_with_options(options).await
}

/// Whether an `UPDATE` changed a row (the guard of every conditional write).
pub(crate) fn affected(result: sea_orm::UpdateResult) -> bool {
    result.rows_affected > 0
}

/// A `LIKE '%text%'` pattern matching `text` literally: its own `%`, `_` and `\\` escaped.
pub(crate) fn contains(text: &str) -> sea_orm::sea_query::LikeExpr {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')
}

/// Whether a statement failed on a unique index.
pub(crate) fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(error.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Define a status column's enum: stored as the lower-case text given, read back strictly (an
/// unknown value is a [`StorageError::Corrupt`] row, never a silent default).
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, sea_orm::EnumIter, sea_orm::DeriveActiveEnum)]
        #[sea_orm(rs_type = "String", db_type = "String(sea_orm::sea_query::StringLen::N(16))")]
        $vis enum $name {
            $($(#[$vmeta])* #[sea_orm(string_value = $text)] $variant,)+
        }

        impl $name {
            /// The value as stored.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }
    };
}
pub(crate) use text_enum;
