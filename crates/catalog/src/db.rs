//! The database handle every part shares: a small pool of connections to
//! SQLite or PostgreSQL, and transactions that commit or roll back whole.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rusqlite::TransactionBehavior;

use crate::error::DbError;
use crate::params;
use crate::target::Target;
use crate::tx::{Engine, Tx};

/// How a database is opened.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Most connections held at once.
    pub pool_size: u32,
    /// How long opening a connection, or waiting for a free one, may take.
    pub connect_timeout: Duration,
    /// How long an SQLite write waits for another writer.
    pub busy_timeout: Duration,
    /// How many times a PostgreSQL write that lost to a concurrent one runs
    /// again before the call answers [`DbError::Busy`].
    pub retries: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(10),
            retries: 8,
        }
    }
}

/// The catalog database: cheap to clone, shared by every part of a process.
///
/// Transactions run on a blocking thread: the `async` calls move them to
/// tokio's blocking pool, the `_blocking` ones are for code already off the
/// async workers (a CLI command, a `spawn_blocking` body).
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Connector>,
    target: Arc<Target>,
    retries: u32,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.target)
    }
}

/// How a transaction's statements see others' writes.
#[derive(Clone, Copy)]
pub(crate) enum Access {
    /// One consistent snapshot, no writes.
    Read,
    /// Writes, serialized with every other writer.
    Write,
    /// Schema changes under the migration lock; each statement sees what
    /// committed before it (PostgreSQL's READ COMMITTED).
    Migrate,
}

impl Database {
    /// Opens the database (creating the SQLite file when missing). Fails
    /// with [`DbError::Unreachable`] when no connection can be made within
    /// `connect_timeout`.
    pub async fn open(target: Target, options: OpenOptions) -> Result<Database, DbError> {
        tokio::task::spawn_blocking(move || Database::open_blocking(target, &options))
            .await
            .map_err(|e| DbError::Other(format!("opening the catalog: {e}")))?
    }

    /// [`Database::open`], on the calling thread.
    pub fn open_blocking(target: Target, options: &OpenOptions) -> Result<Database, DbError> {
        let unreachable = |reason: String| DbError::Unreachable {
            target: target.to_string(),
            reason,
        };
        if let Target::Sqlite(path) = &target
            && let Some(dir) = path.parent()
        {
            fs::create_dir_all(dir).map_err(|e| unreachable(e.to_string()))?;
        }
        let connector = Connector {
            target: target.clone(),
            options: options.clone(),
        };
        // One connection up front proves the database is there and says why
        // not in the caller's terms, before the pool starts retrying quietly.
        let first = connector
            .connect_now()
            .map_err(|e| unreachable(e.to_string()))?;
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size)
            .min_idle(Some(0))
            .connection_timeout(options.connect_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(LogErrors))
            .build_unchecked(connector);
        drop(first);
        Ok(Database {
            pool,
            target: Arc::new(target),
            retries: options.retries,
        })
    }

    /// The database, without its password.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The engine it runs on.
    pub fn engine(&self) -> Engine {
        match *self.target {
            Target::Sqlite(_) => Engine::Sqlite,
            Target::Postgres(_) => Engine::Postgres,
        }
    }

    /// Runs `f` in a read-only transaction that sees one consistent state.
    pub async fn read<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        blocking(move || db.read_blocking(f)).await
    }

    /// Runs `f` in a write transaction, serialized with every other writer
    /// of every process; commits when `f` answers `Ok`. On PostgreSQL, `f`
    /// runs again (a few times, after a short random pause) when its
    /// transaction lost to a concurrent one, so `f` must only touch the
    /// database.
    pub async fn write<T, E>(
        &self,
        f: impl FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        blocking(move || db.write_blocking(f)).await
    }

    /// [`Database::read`] on the calling thread, which must not be one of
    /// tokio's async workers.
    pub fn read_blocking<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut f = Some(f);
        self.transact(Access::Read, 0, |tx| match f.take() {
            Some(f) => f(tx),
            None => Err(E::from(DbError::Other("a read ran twice".into()))),
        })
    }

    /// [`Database::write`] on the calling thread, which must not be one of
    /// tokio's async workers.
    pub fn write_blocking<T, E: From<DbError>>(
        &self,
        f: impl FnMut(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transact(Access::Write, self.retries, f)
    }

    /// How many times `part`'s data changed (see [`Tx::changed`]): a
    /// process that caches it reloads when this moves.
    pub async fn generation(&self, part: &'static str) -> Result<i64, DbError> {
        self.read(move |tx| {
            let row = tx.query_opt(
                "SELECT generation FROM catalog_changes WHERE part = $1",
                params![part],
            )?;
            row.map_or(Ok(0), |r| r.get(0))
        })
        .await
    }

    pub(crate) fn transact<T, E: From<DbError>>(
        &self,
        access: Access,
        retries: u32,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut attempt = 0;
        loop {
            let mut conn = self.pool.get().map_err(|e| {
                DbError::Unavailable(format!("no connection to {}: {e}", self.target))
            })?;
            let mut tx = conn.begin(access)?;
            let (error, conflicted) = match f(&mut tx) {
                Ok(value) => match tx.commit() {
                    Ok(()) => return Ok(value),
                    Err((e, conflicted)) => (E::from(e), conflicted),
                },
                Err(e) => (e, tx.conflicted),
            };
            if !conflicted || attempt >= retries {
                return Err(error);
            }
            attempt += 1;
            let pause = rand::rng().random_range(10..=50) * u64::from(attempt);
            tracing::debug!(
                attempt,
                pause_ms = pause,
                "catalog write lost to a concurrent one; running it again"
            );
            std::thread::sleep(Duration::from_millis(pause));
        }
    }
}

async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        E::from(DbError::Other(format!(
            "a catalog transaction stopped: {e}"
        )))
    })?
}

/// One pooled connection.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(PostgresClient),
}

/// A PostgreSQL connection that may be dropped anywhere. The synchronous
/// client says goodbye to the server when dropped, blocking on its own
/// runtime, which panics on one of tokio's async workers: where the pool
/// happens to drop it (a `Database` going out of scope in async code). So
/// the goodbye happens on a thread of its own.
pub(crate) struct PostgresClient(Option<postgres::Client>);

impl Drop for PostgresClient {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            std::thread::spawn(move || drop(client));
        }
    }
}

impl PostgresClient {
    fn get(&mut self) -> Result<&mut postgres::Client, DbError> {
        self.0
            .as_mut()
            .ok_or_else(|| DbError::Unavailable("the connection was closed".into()))
    }
}

impl Conn {
    fn begin(&mut self, access: Access) -> Result<Tx<'_>, DbError> {
        match self {
            Conn::Sqlite(conn) => {
                // IMMEDIATE takes the write lock at BEGIN, where the busy
                // timeout waits for it; a DEFERRED read that later writes
                // fails at once with SQLITE_BUSY in WAL mode.
                let behavior = match access {
                    Access::Read => TransactionBehavior::Deferred,
                    Access::Write | Access::Migrate => TransactionBehavior::Immediate,
                };
                let tx = conn
                    .transaction_with_behavior(behavior)
                    .map_err(DbError::from_sqlite)?;
                Ok(Tx::sqlite(tx))
            }
            Conn::Postgres(client) => {
                use postgres::IsolationLevel;
                let builder = client.get()?.build_transaction();
                let builder = match access {
                    Access::Read => builder
                        .isolation_level(IsolationLevel::RepeatableRead)
                        .read_only(true),
                    Access::Write => builder.isolation_level(IsolationLevel::Serializable),
                    Access::Migrate => builder.isolation_level(IsolationLevel::ReadCommitted),
                };
                let tx = builder.start().map_err(DbError::from_postgres)?;
                Ok(Tx::postgres(tx))
            }
        }
    }
}

/// Opens connections for the pool.
pub(crate) struct Connector {
    target: Target,
    options: OpenOptions,
}

impl Connector {
    fn connect_now(&self) -> Result<Conn, DbError> {
        match &self.target {
            Target::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).map_err(DbError::from_sqlite)?;
                owner_only(path).map_err(|e| DbError::Other(e.to_string()))?;
                conn.busy_timeout(self.options.busy_timeout)
                    .and_then(|()| enable_wal(&conn, self.options.busy_timeout))
                    .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
                    .map_err(DbError::from_sqlite)?;
                Ok(Conn::Sqlite(conn))
            }
            Target::Postgres(config) => {
                let mut config = (**config).clone();
                if config.get_connect_timeout().is_none() {
                    config.connect_timeout(self.options.connect_timeout);
                }
                let client = config
                    .connect(postgres::NoTls)
                    .map_err(DbError::from_postgres)?;
                Ok(Conn::Postgres(PostgresClient(Some(client))))
            }
        }
    }
}

/// Puts the database in WAL mode, retrying for up to `timeout` while it is
/// busy. Switching a new database to WAL takes its exclusive lock, and when
/// two connections opening it at once each hold a shared lock and want that
/// one, SQLite answers BUSY at once to one of them rather than calling its
/// busy handler (waiting there could never end).
fn enable_wal(conn: &rusqlite::Connection, timeout: Duration) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

impl r2d2::ManageConnection for Connector {
    type Connection = Conn;
    type Error = DbError;

    fn connect(&self) -> Result<Conn, DbError> {
        self.connect_now()
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), DbError> {
        match conn {
            Conn::Sqlite(_) => Ok(()),
            Conn::Postgres(client) => client
                .get()?
                .simple_query("")
                .map(drop)
                .map_err(DbError::from_postgres),
        }
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        matches!(conn, Conn::Postgres(PostgresClient(client)) if client.as_ref().is_none_or(postgres::Client::is_closed))
    }
}

/// Logs why the pool could not open a connection (the server's words; a
/// PostgreSQL error never holds the password).
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<DbError> for LogErrors {
    fn handle_error(&self, error: DbError) {
        tracing::warn!("catalog database connection failed: {error}");
    }
}

/// Makes the database file readable by its owner only: it holds secret
/// keys. By path, never by opening it: closing any descriptor of the file
/// would drop every POSIX lock this process holds on it, SQLite's included,
/// and let another client delete the write-ahead log under our connections.
/// SQLite gives its `-wal` and `-shm` files the database's mode.
fn owner_only(db_path: &Path) -> std::io::Result<()> {
    let mode = fs::metadata(db_path)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(db_path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
