//! Storage: the database connection, migrations, and each API's queries. sea-orm is used here
//! and nowhere else; the layers above call the functions of [`heating`] and get plain rows back.

use std::time::Duration;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, EntityTrait, Set};
use sea_orm_migration::MigratorTrait;

pub mod heating;
mod migration;
mod secret;

/// A storage failure. Callers answer it as their API's internal error and log it; the message
/// never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database refused or failed a statement.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// A row holds something this version cannot read (a corrupt or foreign value).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// The database behind the real server: SQLite (embedded default) or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
}

impl Db {
    /// Connect to `url` (`sqlite://file.db?mode=rwc`, `sqlite::memory:`, `postgres://…`) and apply
    /// every pending migration.
    ///
    /// SQLite gets one connection: writers are serialised by SQLite anyway, and one connection
    /// keeps transactions from meeting `SQLITE_BUSY` (and makes `sqlite::memory:` one database).
    pub async fn connect(url: &str) -> Result<Db, StorageError> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false).connect_timeout(Duration::from_secs(10)).acquire_timeout(Duration::from_secs(30));
        if url.starts_with("sqlite:") {
            options.max_connections(1).min_connections(1);
        } else {
            options.max_connections(16);
        }
        let conn = Database::connect(options).await?;
        migration::Migrator::up(&conn, None).await?;
        Ok(Db { conn })
    }

    /// The connection, for this module's query functions.
    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.conn.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            _ => "other",
        }
    }

    /// Close every connection: each query after this fails, as in a database outage (the tests
    /// use it to see outages answered as such).
    pub async fn close(&self) {
        let _ = self.conn.close_by_ref().await;
    }

    /// Whether the database answers now (health checks).
    pub async fn ping(&self) -> bool {
        self.conn.ping().await.is_ok()
    }

    /// The secret called `name`: the stored one, else `generate()` stored now. Two servers
    /// starting at once agree: the first insert wins and both read it back.
    pub async fn secret(&self, name: &str, generate: impl FnOnce() -> String) -> Result<String, StorageError> {
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
}
