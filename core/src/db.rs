//! One database handle over PostgreSQL or SQLite, chosen by the URL scheme.
//!
//! Query code is written once against the portable schema in [`crate::schema`]
//! and dispatched to the concrete connection type by the [`db_run!`] macro, the
//! one place where the two backends differ at compile time.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, Blocking>;

/// Called on a blocking thread after each piece of SQLite work it ran
/// (set once by the binary; see [`after_blocking_work`]).
static AFTER_BLOCKING: OnceLock<fn()> = OnceLock::new();

/// Sets a function that runs on the blocking thread after each piece of
/// SQLite work. The server's memory release uses it: a blocking thread
/// never parks like a worker does, and the allocator gives back what was
/// freed on its pages only when that thread itself calls in. Only the
/// first call counts.
pub fn after_blocking_work(f: fn()) {
    let _ = AFTER_BLOCKING.set(f);
}

/// Runs SQLite work on tokio's blocking threads, as diesel-async's own
/// runtime does, then the [`after_blocking_work`] function on the same
/// thread.
pub struct Blocking(tokio::runtime::Handle);

impl diesel_async::sync_connection_wrapper::SpawnBlocking for Blocking {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<
        'a,
        std::result::Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>,
    >
    where
        R: Send + 'static,
    {
        let run = self.0.spawn_blocking(move || {
            let r = task();
            if let Some(f) = AFTER_BLOCKING.get() {
                f();
            }
            r
        });
        FinishOnDrop {
            handle: self.0.clone(),
            task: run,
        }
        .map(|r| r.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>))
        .boxed()
    }

    fn get_runtime() -> Self {
        // Connections are opened by the pool, inside the runtime.
        Blocking(tokio::runtime::Handle::current())
    }
}

/// A blocking task whose future, when dropped early, waits for the task to
/// finish (as diesel-async's own runtime does): the connection stays in
/// use until its statement is done.
struct FinishOnDrop<R> {
    handle: tokio::runtime::Handle,
    task: tokio::task::JoinHandle<R>,
}

impl<R> std::future::Future for FinishOnDrop<R> {
    type Output = std::result::Result<R, tokio::task::JoinError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.get_mut().task).poll(cx)
    }
}

impl<R> Drop for FinishOnDrop<R> {
    fn drop(&mut self) {
        if !self.task.is_finished() {
            let task = &mut self.task;
            tokio::task::block_in_place(|| {
                let _ = self.handle.block_on(task);
            });
        }
    }
}

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
                // The most recently returned connection first: light load
                // keeps reusing a few, and the others can be closed when
                // idle (see `close_idle`).
                .queue_mode(deadpool::managed::QueueMode::Lifo)
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

    /// Closes the pooled SQLite connections nobody has used for `idle`.
    /// Each open connection keeps its own page cache (up to 2 MiB by
    /// default), its parsed schema and the prepared statements of every
    /// distinct SQL text it ran; after a burst of load those stay with the
    /// idle connections for as long as the pool keeps them. The pool hands
    /// out the most recently returned connection first, so at rest the
    /// background pollers keep reusing one or two and the rest age out.
    /// Returns how many were closed; PostgreSQL's pool is left alone (its
    /// connections' memory is the database server's).
    pub fn close_idle(&self, idle: Duration) -> usize {
        match &self.pools {
            Pools::Sqlite(p, _) => p.retain(|_, m| m.last_used() < idle).removed.len(),
            Pools::Pg(_) => 0,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    async fn sqlite_db(name: &str) -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("crm-db-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}", dir.join("t.db").display());
        (
            Db::connect(&url, &PoolSettings::default()).await.unwrap(),
            dir,
        )
    }

    /// Whether `c` is the connection that created the temporary table `mark`.
    async fn marked(c: &mut PooledConn) -> bool {
        crate::entity::sql::Sql::new(
            "SELECT COUNT(*) AS n FROM temp.sqlite_master WHERE name = 'mark'",
        )
        .count(&mut c.conn())
        .await
        .unwrap()
            == 1
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_sqlite_connections_are_closed_and_the_last_returned_is_handed_out_first() {
        let (db, dir) = sqlite_db("idle").await;
        // Three connections open at once; the last one returned is marked.
        let a = db.conn().await.unwrap();
        let b = db.conn().await.unwrap();
        let mut c = db.conn().await.unwrap();
        crate::entity::sql::Sql::new("CREATE TEMP TABLE mark (x)")
            .execute(&mut c.conn())
            .await
            .unwrap();
        drop(a);
        drop(b);
        drop(c);
        assert_eq!(db.pool_status().0, 3);
        // Nothing has been idle for a minute.
        assert_eq!(db.close_idle(Duration::from_secs(60)), 0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The most recently returned connection is handed out again (and so
        // counts as used); the two others stay idle and are closed.
        let mut again = db.conn().await.unwrap();
        assert!(marked(&mut again).await, "not the last returned connection");
        drop(again);
        assert_eq!(db.close_idle(Duration::from_millis(200)), 2);
        assert_eq!(db.pool_status().0, 1);
        // The one kept is the marked one; a closed one is simply opened
        // again when needed.
        let mut kept = db.conn().await.unwrap();
        let mut new = db.conn().await.unwrap();
        assert!(marked(&mut kept).await);
        assert!(!marked(&mut new).await);
        drop((kept, new));
        assert_eq!(db.pool_status().0, 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    static AFTER: AtomicUsize = AtomicUsize::new(0);
    static ON: std::sync::Mutex<Vec<std::thread::ThreadId>> = std::sync::Mutex::new(Vec::new());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_work_runs_the_after_blocking_hook_on_the_thread_that_did_it() {
        fn after() {
            AFTER.fetch_add(1, Ordering::Relaxed);
            ON.lock().unwrap().push(std::thread::current().id());
        }
        after_blocking_work(after);
        let (db, dir) = sqlite_db("hook").await;
        let before = AFTER.load(Ordering::Relaxed);
        let mut c = db.conn().await.unwrap();
        let n = crate::entity::sql::Sql::new("SELECT 7 AS n")
            .count(&mut c.conn())
            .await
            .unwrap();
        assert_eq!(n, 7);
        assert!(AFTER.load(Ordering::Relaxed) > before);
        // Not on the caller's thread: on the blocking thread that ran it.
        let here = std::thread::current().id();
        assert!(ON.lock().unwrap().iter().all(|t| *t != here));
        drop(c);
        let _ = std::fs::remove_dir_all(dir);
    }
}
