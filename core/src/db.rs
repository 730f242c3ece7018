//! One database handle over PostgreSQL or SQLite, chosen by the URL scheme.
//!
//! Query code is written once against the portable schema in [`crate::schema`]
//! and dispatched to the concrete connection type by the [`db_run!`] macro, the
//! one place where the two backends differ at compile time.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection, TransactionManager};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::{Error, Result};

/// SQL statements started by this process, for `/metrics` and for tests
/// that check a request runs a bounded number of statements.
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// How many SQL statements this process has started.
pub fn statements_started() -> u64 {
    STATEMENTS.load(Ordering::Relaxed)
}

fn count_statements(event: diesel::connection::InstrumentationEvent<'_>) {
    if let diesel::connection::InstrumentationEvent::StartQuery { .. } = event {
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// The SQLite connection type used behind the pool.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// Which database engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL through diesel-async's native connection.
    Postgres,
    /// SQLite through diesel-async's wrapper around the sync connection.
    Sqlite,
}

/// Pool sizing and timeouts.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// Maximum connections in the pool.
    pub max_size: usize,
    /// How long a request waits for a free connection before UNAVAILABLE.
    pub wait_timeout: Duration,
    /// How long opening a new connection may take.
    pub create_timeout: Duration,
    /// How long checking a returned connection may take.
    pub recycle_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            create_timeout: Duration::from_secs(5),
            recycle_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
enum Pools {
    Pg(Pool<AsyncPgConnection>),
    // SQLite allows one writer at a time; serialising write transactions in
    // the process means a deferred BEGIN can never hit SQLITE_BUSY_SNAPSHOT
    // against another of our own writers. Other processes rely on the busy
    // timeout.
    Sqlite(Pool<SqliteConn>, Arc<Mutex<()>>),
}

/// The shared database handle. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pools: Pools,
    url: String,
}

/// A borrowed connection of either backend, passed to repository functions.
/// A repository function that takes `&mut Conn` works the same inside or
/// outside a transaction.
pub enum Conn<'a> {
    /// A PostgreSQL connection.
    Pg(&'a mut AsyncPgConnection),
    /// A SQLite connection.
    Sqlite(&'a mut SqliteConn),
}

/// Runs the same diesel query code on whichever backend `conn` is.
///
/// `db_run!(conn, |c| query.load::<T>(c).await)` expands the body once per
/// backend, with `c` bound to the concrete connection type.
#[macro_export]
macro_rules! db_run {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Pg($c) => {
                let $c: &mut ::diesel_async::AsyncPgConnection = &mut **$c;
                $body
            }
            $crate::db::Conn::Sqlite($c) => {
                let $c: &mut $crate::db::SqliteConn = &mut **$c;
                $body
            }
        }
    };
}

/// Inserts `rows` (a slice of insertable values) into `table` on a
/// `&mut Conn`: multi-row statements of up to 1,000 rows on PostgreSQL, one
/// statement per row on SQLite (diesel's SQLite batch insert cannot take
/// rows with optional columns). Bulk writers (imports, events, the demo)
/// all go through it.
#[macro_export]
macro_rules! insert_all {
    ($conn:expr, $table:expr, $rows:expr) => {{
        match $conn {
            $crate::db::Conn::Pg(c) => {
                for chunk in $rows.chunks(1_000) {
                    ::diesel_async::RunQueryDsl::execute(
                        ::diesel::insert_into($table).values(chunk.to_vec()),
                        &mut **c,
                    )
                    .await?;
                }
            }
            $crate::db::Conn::Sqlite(c) => {
                for r in $rows.iter() {
                    ::diesel_async::RunQueryDsl::execute(
                        ::diesel::insert_into($table).values(r.clone()),
                        &mut **c,
                    )
                    .await?;
                }
            }
        }
    }};
}

/// A pooled connection checked out of a [`Db`].
// One lives briefly on the stack per request; boxing would cost an allocation
// per checkout for nothing.
#[allow(clippy::large_enum_variant)]
pub enum PooledConn {
    /// PostgreSQL.
    Pg(Object<AsyncPgConnection>),
    /// SQLite.
    Sqlite(Object<SqliteConn>),
}

impl PooledConn {
    /// Borrows the connection for repository calls.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            PooledConn::Pg(c) => Conn::Pg(c),
            PooledConn::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

/// An open transaction. Commit it with [`Tx::commit`]; dropping it without a
/// commit (an error part-way) rolls it back by closing the connection: it
/// never goes back to the pool with the transaction open, so no lock it
/// took outlives the request.
pub struct Tx {
    conn: Option<PooledConn>,
    finished: bool,
    _write_guard: Option<OwnedMutexGuard<()>>,
}

impl Tx {
    fn pooled(&mut self) -> &mut PooledConn {
        self.conn.as_mut().expect("transaction connection")
    }

    /// Borrows the transaction's connection for repository calls.
    pub fn conn(&mut self) -> Conn<'_> {
        self.pooled().conn()
    }

    /// Commits the transaction.
    pub async fn commit(mut self) -> Result<()> {
        match self.pooled() {
            PooledConn::Pg(c) => {
                <AsyncPgConnection as AsyncConnection>::TransactionManager::commit_transaction(
                    &mut **c,
                )
                .await?
            }
            PooledConn::Sqlite(c) => {
                <SqliteConn as AsyncConnection>::TransactionManager::commit_transaction(&mut **c)
                    .await?
            }
        }
        self.finished = true;
        Ok(())
    }

    /// Rolls the transaction back explicitly (dropping does the same by
    /// closing the connection).
    pub async fn rollback(mut self) -> Result<()> {
        match self.pooled() {
            PooledConn::Pg(c) => {
                <AsyncPgConnection as AsyncConnection>::TransactionManager::rollback_transaction(
                    &mut **c,
                )
                .await?
            }
            PooledConn::Sqlite(c) => {
                <SqliteConn as AsyncConnection>::TransactionManager::rollback_transaction(&mut **c)
                    .await?
            }
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Detach the connection from the pool and close it: the server (or
        // SQLite) rolls the transaction back and releases its locks now,
        // before the write guard below is released.
        match self.conn.take() {
            Some(PooledConn::Pg(o)) => drop(Object::take(o)),
            Some(PooledConn::Sqlite(o)) => drop(Object::take(o)),
            None => {}
        }
    }
}

fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
}

impl Db {
    /// Opens a pool for `url` (`postgres://…` or `sqlite://path`). For SQLite
    /// the file's directory is created if missing.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Db> {
        let pools = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut cfg = ManagerConfig::<AsyncPgConnection>::default();
            // No `SELECT 1` per checkout: a connection whose socket closed
            // (a restarted server) reports itself broken and is replaced;
            // one that dies mid-query fails that query as UNAVAILABLE.
            cfg.recycling_method = RecyclingMethod::Fast;
            cfg.custom_setup = Box::new(|url: &str| {
                let url = url.to_owned();
                async move {
                    let mut conn = AsyncPgConnection::establish(&url).await?;
                    conn.set_instrumentation(count_statements);
                    Ok(conn)
                }
                .boxed()
            });
            let mgr = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, cfg);
            let pool = Pool::builder(mgr)
                .max_size(settings.max_size)
                .runtime(deadpool::Runtime::Tokio1)
                .wait_timeout(Some(settings.wait_timeout))
                .create_timeout(Some(settings.create_timeout))
                .recycle_timeout(Some(settings.recycle_timeout))
                .build()
                .map_err(|e| Error::Config(format!("database pool: {e}")))?;
            Pools::Pg(pool)
        } else if let Some(path) = sqlite_path(url) {
            if path.is_empty() {
                return Err(Error::Config(
                    "database-url: sqlite URL has no file path".into(),
                ));
            }
            if let Some(dir) = Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::Config(format!(
                            "database-url: cannot create {}: {e}",
                            dir.display()
                        ))
                    })?;
                }
            }
            let mut cfg = ManagerConfig::<SqliteConn>::default();
            cfg.recycling_method = RecyclingMethod::Fast;
            cfg.custom_setup = Box::new(|url: &str| {
                let url = url.to_owned();
                async move {
                    let mut conn = SqliteConn::establish(&url).await?;
                    conn.set_instrumentation(count_statements);
                    conn.batch_execute(
                        // busy_timeout first: switching the journal mode takes a
                        // lock and must wait for a committing writer, not fail.
                        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    )
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    Ok(conn)
                }
                .boxed()
            });
            let mgr = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, cfg);
            let pool = Pool::builder(mgr)
                .max_size(settings.max_size)
                .runtime(deadpool::Runtime::Tokio1)
                .wait_timeout(Some(settings.wait_timeout))
                .create_timeout(Some(settings.create_timeout))
                .recycle_timeout(Some(settings.recycle_timeout))
                .build()
                .map_err(|e| Error::Config(format!("database pool: {e}")))?;
            Pools::Sqlite(pool, Arc::new(Mutex::new(())))
        } else {
            return Err(Error::Config(format!(
                "database-url: unsupported scheme in {:?} (use postgres://… or sqlite://path)",
                redact_url(url)
            )));
        };
        Ok(Db {
            pools,
            url: url.to_owned(),
        })
    }

    /// Which backend this handle talks to.
    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Pg(_) => Backend::Postgres,
            Pools::Sqlite(..) => Backend::Sqlite,
        }
    }

    /// The URL this handle was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks out a connection (UNAVAILABLE when the pool times out).
    pub async fn conn(&self) -> Result<PooledConn> {
        Ok(match &self.pools {
            Pools::Pg(p) => PooledConn::Pg(p.get().await.map_err(Error::from_pool)?),
            Pools::Sqlite(p, _) => PooledConn::Sqlite(p.get().await.map_err(Error::from_pool)?),
        })
    }

    /// Opens a transaction. Every write goes through one.
    pub async fn begin(&self) -> Result<Tx> {
        let guard = match &self.pools {
            Pools::Sqlite(_, lock) => Some(lock.clone().lock_owned().await),
            Pools::Pg(_) => None,
        };
        let mut conn = self.conn().await?;
        match &mut conn {
            PooledConn::Pg(c) => {
                <AsyncPgConnection as AsyncConnection>::TransactionManager::begin_transaction(
                    &mut **c,
                )
                .await?
            }
            PooledConn::Sqlite(c) => {
                <SqliteConn as AsyncConnection>::TransactionManager::begin_transaction(&mut **c)
                    .await?
            }
        }
        Ok(Tx {
            conn: Some(conn),
            finished: false,
            _write_guard: guard,
        })
    }

    /// Pool usage: (connections open, connections idle, max size).
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let s = match &self.pools {
            Pools::Pg(p) => p.status(),
            Pools::Sqlite(p, _) => p.status(),
        };
        (s.size, s.available, s.max_size)
    }

    /// Applies pending embedded migrations; returns how many ran.
    pub async fn migrate(&self) -> Result<usize> {
        let url = self.url.clone();
        let backend = self.backend();
        tokio::task::spawn_blocking(move || -> Result<usize> {
            let rt = tokio::runtime::Handle::current();
            match backend {
                Backend::Postgres => {
                    let conn = rt.block_on(AsyncPgConnection::establish(&url))?;
                    let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
                    let done = harness
                        .run_pending_migrations(PG_MIGRATIONS)
                        .map_err(|e| Error::Internal(format!("migration failed: {e}")))?;
                    Ok(done.len())
                }
                Backend::Sqlite => {
                    use diesel::Connection;
                    let path = sqlite_path(&url).unwrap_or_default();
                    let mut conn = SqliteConnection::establish(path)?;
                    diesel::connection::SimpleConnection::batch_execute(
                        &mut conn,
                        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;",
                    )?;
                    let done = conn
                        .run_pending_migrations(SQLITE_MIGRATIONS)
                        .map_err(|e| Error::Internal(format!("migration failed: {e}")))?;
                    Ok(done.len())
                }
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("migration task: {e}")))?
    }

    /// Refreshes the query planner's statistics (`ANALYZE`), after a bulk
    /// load: without it a table filled from empty keeps plans made for an
    /// empty table where statistics are not kept up by autovacuum.
    pub async fn analyze(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        crate::db_run!(&mut conn, |c| c.batch_execute("ANALYZE").await)?;
        tx.commit().await
    }

    /// True when the database answers and no migration is pending.
    pub async fn ready(&self) -> bool {
        let Ok(mut c) = self.conn().await else {
            return false;
        };
        let mut conn = c.conn();
        crate::db_run!(&mut conn, |c| c.batch_execute("SELECT 1").await).is_ok()
    }
}

/// Hides a password in a database URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The migration versions this build embeds for `backend`, sorted (the same
/// list for both backends: the trees carry matching versions).
pub fn migration_versions(backend: Backend) -> Vec<String> {
    use diesel::migration::MigrationSource;
    let names: Vec<String> = match backend {
        Backend::Postgres => MigrationSource::<diesel::pg::Pg>::migrations(&PG_MIGRATIONS)
            .map(|ms| ms.iter().map(|m| m.name().version().to_string()).collect())
            .unwrap_or_default(),
        Backend::Sqlite => {
            MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
                .map(|ms| ms.iter().map(|m| m.name().version().to_string()).collect())
                .unwrap_or_default()
        }
    };
    let mut names = names;
    names.sort();
    names
}
