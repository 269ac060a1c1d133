//! Database access. Tenant data is reachable only through [`Db::firm_tx`]; platform
//! tables (firms, users, ...) through [`Db::platform_tx`], whose connection carries no
//! firm and therefore sees no tenant rows at all under row-level security.

pub mod cached;
pub mod functions;
pub mod migrate;
pub mod schema;

use std::time::{Duration, Instant};

use deadpool::managed::{PoolError, TimeoutType};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AnsiTransactionManager, AsyncConnection, AsyncPgConnection, RunQueryDsl, TransactionManager};
use scoped_futures::ScopedBoxFuture;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::DatabaseSettings;
use crate::tenant::FirmId;

pub use cached::cached_query;
pub use diesel_async::AsyncPgConnection as Connection;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection became free within the configured wait: the caller should back off (503).
    #[error("database busy: no connection available within {0:?}")]
    PoolExhausted(Duration),
    /// The server could not be reached or refused the login.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// Pool status for `/metrics` and `/ready/`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// The application role's connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<AsyncPgConnection>,
    wait_timeout: Duration,
}

impl Db {
    /// Builds the pool without connecting; connections open on first use, so a server
    /// can start (and report not-ready) while the database is down.
    ///
    /// `job_max_attempts` is set on every connection (`app.job_max_attempts`): jobs the
    /// database queues itself (a `message.created` delivery) get the server's attempts.
    pub fn new(settings: &DatabaseSettings, job_max_attempts: u32) -> Result<Self, DbError> {
        Self::sized(settings, job_max_attempts, settings.max_connections)
    }

    /// As [`Db::new`], with a pool of `max_size` connections (an HTTP worker's own pool).
    pub fn sized(settings: &DatabaseSettings, job_max_attempts: u32, max_size: usize) -> Result<Self, DbError> {
        let mut manager_config = ManagerConfig::default();
        let set_attempts = format!("SET app.job_max_attempts = {}", job_max_attempts.clamp(1, 100));
        manager_config.custom_setup = Box::new(move |url| {
            let set_attempts = set_attempts.clone();
            Box::pin(async move {
                let mut conn = AsyncPgConnection::establish(url).await?;
                diesel::sql_query(set_attempts)
                    .execute(&mut conn)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        // A checkout skips the `SELECT 1` round trip: a connection the server closed is
        // still caught (the client notices the closed socket and the pool discards it), and
        // one left mid-transaction by a dropped request is discarded too.
        manager_config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
            settings.app_url().expose_secret(),
            manager_config,
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .wait_timeout(Some(settings.wait_timeout()))
            .create_timeout(Some(settings.connect_timeout()))
            .recycle_timeout(Some(settings.recycle_timeout()))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Unavailable(format!("pool configuration: {e}")))?;
        Ok(Self { pool, wait_timeout: settings.wait_timeout() })
    }

    /// A reference that does not keep the pool open: once every holder of the pool has
    /// dropped it (an HTTP worker that stopped), [`WeakDb::status`] says so.
    pub fn downgrade(&self) -> WeakDb {
        WeakDb { pool: self.pool.weak(), wait_timeout: self.wait_timeout }
    }

    pub fn status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        }
    }

    async fn checkout(&self) -> Result<Object<AsyncPgConnection>, DbError> {
        let started = Instant::now();
        let result = self.pool.get().await;
        metrics::histogram!("db_pool_wait_seconds").record(started.elapsed().as_secs_f64());
        result.map_err(|err| {
            metrics::counter!("db_pool_errors_total", "kind" => pool_error_kind(&err)).increment(1);
            match err {
                PoolError::Timeout(TimeoutType::Wait) => DbError::PoolExhausted(self.wait_timeout),
                PoolError::Timeout(TimeoutType::Create) => DbError::Unavailable("connect timed out".to_owned()),
                PoolError::Timeout(TimeoutType::Recycle) => DbError::Unavailable("health check timed out".to_owned()),
                PoolError::Backend(e) => DbError::Unavailable(e.to_string()),
                other => DbError::Unavailable(other.to_string()),
            }
        })
    }

    /// Runs `f` in a transaction scoped to one firm: row-level security admits only that
    /// firm's rows for reads and writes. The setting is transaction-local, so it ends with
    /// the transaction and never reaches the connection's next user.
    pub async fn firm_tx<'a, R, E, F>(&self, firm_id: FirmId, f: F) -> Result<R, E>
    where
        F: for<'r> FnOnce(&'r mut AsyncPgConnection) -> ScopedBoxFuture<'a, 'r, Result<R, E>> + Send + 'a,
        E: From<DbError> + From<diesel::result::Error> + Send + 'a,
        R: Send + 'a,
    {
        let mut guard = self.begin_firm(firm_id, Planning::Auto).await?;
        let result = f(guard.conn()?).await;
        guard.end(result).await
    }

    /// [`Db::firm_tx`] for work that may simply be run again: a transaction that lost a
    /// serialization race or a deadlock is rolled back and `f` runs afresh in a new one, up
    /// to [`TRANSIENT_RETRIES`] more times with a short jittered pause, before the failure
    /// is returned (a 503 to the client). Anything else ends it at once.
    pub async fn firm_tx_retried<R, E>(
        &self,
        firm_id: FirmId,
        f: impl AsyncFnMut(&mut AsyncPgConnection) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<DbError> + From<diesel::result::Error> + Transient,
    {
        self.run_retried(firm_id, Planning::Auto, None, f).await
    }

    /// [`Db::firm_tx_retried`] for a request whose member's session has not been checked
    /// yet: the check (`cp_session_role`) is pipelined with `BEGIN` and the firm setting,
    /// so it costs no round trip and no second connection of its own. `admit` sees the role
    /// the session still carries (None: ended, or the membership inactive) and says whether
    /// `f` may run; when it may not, the transaction is rolled back and `Ok(None)` returned.
    pub async fn firm_tx_for_session<R, E>(
        &self,
        firm_id: FirmId,
        session: SessionKey,
        planning: Planning,
        admit: impl FnOnce(Option<&str>) -> bool,
        f: impl AsyncFnMut(&mut AsyncPgConnection) -> Result<R, E>,
    ) -> Result<Option<R>, E>
    where
        E: From<DbError> + From<diesel::result::Error> + Transient,
    {
        let (guard, role) = self.begin_firm_checking(firm_id, session, planning).await?;
        if !admit(role.as_deref()) {
            guard.roll_back().await?;
            return Ok(None);
        }
        self.run_retried(firm_id, planning, Some(guard), f).await.map(Some)
    }

    /// [`Db::firm_tx_retried`] with the statements planned as `planning` says.
    pub async fn firm_tx_planned<R, E>(
        &self,
        firm_id: FirmId,
        planning: Planning,
        f: impl AsyncFnMut(&mut AsyncPgConnection) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<DbError> + From<diesel::result::Error> + Transient,
    {
        self.run_retried(firm_id, planning, None, f).await
    }

    /// Runs `f` in `opened` (or a new transaction), again in a new one after a transient
    /// failure, up to [`TRANSIENT_RETRIES`] times.
    async fn run_retried<R, E>(
        &self,
        firm_id: FirmId,
        planning: Planning,
        mut opened: Option<OpenTransaction>,
        mut f: impl AsyncFnMut(&mut AsyncPgConnection) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<DbError> + From<diesel::result::Error> + Transient,
    {
        let mut retries = 0;
        loop {
            let mut guard = match opened.take() {
                Some(guard) => guard,
                None => self.begin_firm(firm_id, planning).await?,
            };
            let result = f(guard.conn()?).await;
            match guard.end(result).await {
                Err(error) if error.is_transient() && retries < TRANSIENT_RETRIES => {
                    retries += 1;
                    metrics::counter!("db_transaction_retries_total").increment(1);
                    tokio::time::sleep(retry_pause(retries)).await;
                }
                ended => return ended,
            }
        }
    }

    /// [`Db::begin_firm`] with the session's role read in the same round trip: the simple
    /// query that opens the transaction and the (prepared, cached) check are sent together
    /// and answered in order. Should either fail, the guard is dropped with the transaction
    /// in an unknown state and the connection is closed rather than reused.
    async fn begin_firm_checking(
        &self,
        firm_id: FirmId,
        session: SessionKey,
        planning: Planning,
    ) -> Result<(OpenTransaction, Option<String>), DbError> {
        let mut guard = OpenTransaction::new(self.checkout().await?);
        let conn: &mut AsyncPgConnection = guard.conn()?;
        let role = {
            let mut shared: &AsyncPgConnection = conn;
            let begin = firm_begin_sql(firm_id, planning);
            let opened = diesel_async::SimpleAsyncConnection::batch_execute(&mut shared, &begin);
            let check =
                diesel::select(functions::cp_session_role(firm_id.into_uuid(), session.user_id, session.session_id))
                    .get_result::<Option<String>>(&mut &*conn);
            let ((), role) = futures_util::future::try_join(opened, check).await?;
            role
        };
        // The transaction was opened outside diesel's manager: tell it, as
        // `begin_transaction_sql` would, so commit and rollback work as usual.
        AnsiTransactionManager::transaction_manager_status_mut(conn)
            .transaction_state()?
            .change_transaction_depth(diesel::connection::TransactionDepthChange::IncreaseDepth)?;
        Ok((guard, role))
    }

    /// A pooled connection with a transaction open and the firm set.
    async fn begin_firm(&self, firm_id: FirmId, planning: Planning) -> Result<OpenTransaction, DbError> {
        let mut guard = OpenTransaction::new(self.checkout().await?);
        let conn: &mut AsyncPgConnection = guard.conn()?;
        AnsiTransactionManager::begin_transaction_sql(conn, &firm_begin_sql(firm_id, planning)).await?;
        Ok(guard)
    }

    /// Runs `f` in a transaction with no firm set, for platform tables only. Tenant tables
    /// read as empty here and refuse writes.
    pub async fn platform_tx<'a, R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: for<'r> FnOnce(&'r mut AsyncPgConnection) -> ScopedBoxFuture<'a, 'r, Result<R, E>> + Send + 'a,
        E: From<DbError> + From<diesel::result::Error> + Send + 'a,
        R: Send + 'a,
    {
        let mut guard = OpenTransaction::new(self.checkout().await?);
        let result = guard.conn()?.transaction(async move |conn| f(conn).await).await;
        // Back to the pool only when no transaction is left open on it.
        let conn: &mut AsyncPgConnection = guard.conn()?;
        if matches!(AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth(), Ok(None)) {
            guard.finished();
        }
        result
    }

    /// The role an access token's session still carries (see `cp_session_role`): one
    /// statement, no transaction, on every authenticated request.
    pub async fn session_role(
        &self,
        firm_id: FirmId,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<String>, DbError> {
        let mut conn = self.checkout().await?;
        let role = diesel::select(functions::cp_session_role(firm_id.into_uuid(), user_id, session_id))
            .get_result::<Option<String>>(&mut conn)
            .await?;
        Ok(role)
    }

    /// Closes the pool: idle connections now, busy ones when returned; later checkouts fail.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Round trip to the database, for readiness.
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.checkout().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }
}

/// How PostgreSQL plans a transaction's prepared statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// PostgreSQL's own choice (`plan_cache_mode = auto`): a statement is planned for its
    /// values until a generic plan looks as cheap.
    Auto,
    /// One generic plan per statement and connection, for the keyset pages of a list. Their
    /// `LIMIT` is a bound value, and a generic plan costs an unknown limit at a tenth of the
    /// rows, so under `auto` PostgreSQL judges it dearer than a plan for the values and
    /// plans the page again on every request (about 0.1 ms of the database's time, as much
    /// as running it). A page is led by an index on the firm, whatever the values.
    Generic,
}

/// See [`Db::downgrade`].
pub struct WeakDb {
    pool: deadpool::managed::WeakPool<AsyncDieselConnectionManager<AsyncPgConnection>>,
    wait_timeout: Duration,
}

impl WeakDb {
    /// The pool's status while it is still open somewhere; `None` once it is gone.
    pub fn status(&self) -> Option<PoolStatus> {
        self.pool.upgrade().map(|pool| Db { pool, wait_timeout: self.wait_timeout }.status())
    }
}

/// `BEGIN` and the transaction's settings (the firm, the planning), sent as one simple
/// query (one round trip). The firm id is a UUID rendered here, never input text.
fn firm_begin_sql(firm_id: FirmId, planning: Planning) -> String {
    let plans = match planning {
        Planning::Auto => "",
        Planning::Generic => ", set_config('plan_cache_mode', 'force_generic_plan', true)",
    };
    format!("BEGIN; SELECT set_config('app.current_firm_id', '{}', true){plans}", firm_id.into_uuid())
}

/// A member's session, as an access token names it.
#[derive(Debug, Clone, Copy)]
pub struct SessionKey {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

/// A pooled connection inside a transaction. If the future running the transaction is
/// dropped half-way (a cancelled request, a child stopped mid-write), the connection must
/// not go back to the pool: it would sit idle holding the transaction's row locks until
/// someone next checked it out, blocking every writer of those rows (a take-over of a
/// firm, say) meanwhile. Dropped unfinished, it is taken out of the pool and closed, and
/// the server rolls the transaction back at once.
struct OpenTransaction {
    conn: Option<Object<AsyncPgConnection>>,
}

impl OpenTransaction {
    fn new(conn: Object<AsyncPgConnection>) -> Self {
        OpenTransaction { conn: Some(conn) }
    }

    /// Held from `new` until `finished` or drop, so this is never `Err` in practice.
    fn conn(&mut self) -> Result<&mut Object<AsyncPgConnection>, DbError> {
        self.conn.as_mut().ok_or_else(|| DbError::Unavailable("the connection was already released".into()))
    }

    /// The transaction ended (committed or rolled back): the connection may be reused.
    fn finished(mut self) {
        self.conn.take();
    }

    /// Ends the transaction without doing anything more in it.
    async fn roll_back(mut self) -> Result<(), DbError> {
        let conn: &mut AsyncPgConnection = self.conn()?;
        AnsiTransactionManager::rollback_transaction(conn).await?;
        self.finished();
        Ok(())
    }

    /// Commits on `Ok`, rolls back on `Err`. Only a clean end lets the connection go back
    /// to the pool; otherwise dropping the guard closes it.
    async fn end<R, E>(mut self, result: Result<R, E>) -> Result<R, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        let conn: &mut AsyncPgConnection = self.conn()?;
        match result {
            Ok(value) => {
                AnsiTransactionManager::commit_transaction(conn).await?;
                self.finished();
                Ok(value)
            }
            Err(error) => match AnsiTransactionManager::rollback_transaction(conn).await {
                Ok(()) => {
                    self.finished();
                    Err(error)
                }
                Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
                Err(rollback) => Err(rollback.into()),
            },
        }
    }
}

/// How many times [`Db::firm_tx_retried`] runs a transaction again after it lost a
/// serialization race or a deadlock.
pub const TRANSIENT_RETRIES: u32 = 3;

/// 5-10 ms, 10-20 ms, 20-40 ms: long enough for the winner to commit, short against a
/// request's budget.
fn retry_pause(retry: u32) -> Duration {
    let base = 5u64 << retry.saturating_sub(1).min(4);
    Duration::from_millis(base + rand::random_range(0..=base))
}

/// An error that says whether running the same transaction again could succeed.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for DbError {
    /// A serialization failure (40001) or a deadlock (40P01): the transaction lost a race
    /// and was rolled back whole, so repeating it is safe.
    fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => true,
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                info.message().starts_with("deadlock detected")
            }
            _ => false,
        }
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}

fn pool_error_kind<E>(err: &PoolError<E>) -> &'static str {
    match err {
        PoolError::Timeout(TimeoutType::Wait) => "wait_timeout",
        PoolError::Timeout(_) => "connect_timeout",
        PoolError::Backend(_) => "backend",
        _ => "other",
    }
}
