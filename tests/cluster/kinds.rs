//! Child kinds of the tests' own, written against the public trait as a channel would be.
//!
//! `Ticker` (owned) does one unit of work every few milliseconds, each stored as an
//! audit row numbered `n` inside a transaction that checks its fencing token, and starts
//! from the highest stored `n`: its state lives in the database. `Flaky` (owned) panics
//! while starting for its first few starts of key `crashy`; key `steady` just runs.
//! A process-wide log records which node runs what, since both nodes of a test live here.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix::prelude::*;
use consultantpro::actors::{
    ChildContext, ChildHandle, ChildKey, ChildKind, LiveContext, Placement, StopChild, spawn_child,
};
use consultantpro::domain::audit::{self, ActorType, NewAuditEvent, Outcome};
use consultantpro::domain::{DomainError, FirmId, cluster};
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

pub const TICKER: &str = "test_ticker";
pub const FLAKY: &str = "test_flaky";
const TICK_EVERY: Duration = Duration::from_millis(20);

/// A child: firm, kind, key.
type ChildId = (FirmId, &'static str, String);

/// Where each (firm, kind, key) child is running now: the node ids of live actors.
static RUNNING: LazyLock<Mutex<HashMap<ChildId, Vec<Uuid>>>> = LazyLock::new(Default::default);

/// Every start: when, on which node, and the state it loaded.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    pub at: Instant,
    pub node: Uuid,
    pub loaded: i64,
}

static STARTS: LazyLock<Mutex<HashMap<ChildId, Vec<Start>>>> = LazyLock::new(Default::default);

pub fn running(firm: FirmId, kind: &'static str, key: &str) -> Vec<Uuid> {
    RUNNING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(firm, kind, key.to_owned()))
        .cloned()
        .unwrap_or_default()
}

pub fn starts(firm: FirmId, kind: &'static str, key: &str) -> Vec<Start> {
    STARTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(firm, kind, key.to_owned()))
        .cloned()
        .unwrap_or_default()
}

fn record_start(firm: FirmId, kind: &'static str, key: &str, node: Uuid, loaded: i64) {
    STARTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry((firm, kind, key.to_owned()))
        .or_default()
        .push(Start { at: Instant::now(), node, loaded });
}

fn set_running(firm: FirmId, kind: &'static str, key: &str, node: Uuid, on: bool) {
    let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    let nodes = running.entry((firm, kind, key.to_owned())).or_default();
    if on {
        nodes.push(node);
    } else {
        nodes.retain(|n| *n != node);
    }
}

#[derive(QueryableByName)]
struct Highest {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The highest tick stored for a ticker key.
pub async fn stored_ticks(live: &LiveContext, firm: FirmId, key: &str) -> Result<i64, DomainError> {
    let key = key.to_owned();
    live.db()
        .firm_tx(firm, |conn| {
            async move {
                let row = diesel::sql_query(
                    "SELECT coalesce(max((metadata->>'n')::bigint), 0) AS n FROM audit_events
                      WHERE firm_id = $1 AND action = 'test.tick' AND target_id = $2",
                )
                .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid())
                .bind::<diesel::sql_types::Text, _>(key)
                .get_result::<Highest>(conn)
                .await?;
                Ok::<_, DomainError>(row.n)
            }
            .scope_boxed()
        })
        .await
}

/// Every stored tick number of a key, in storage order.
pub async fn all_ticks(live: &LiveContext, firm: FirmId, key: &str) -> Vec<i64> {
    let key = key.to_owned();
    live.db()
        .firm_tx(firm, |conn| {
            async move {
                let rows = diesel::sql_query(
                    "SELECT (metadata->>'n')::bigint AS n FROM audit_events
                      WHERE firm_id = $1 AND action = 'test.tick' AND target_id = $2 ORDER BY occurred_at, id",
                )
                .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid())
                .bind::<diesel::sql_types::Text, _>(key)
                .load::<Highest>(conn)
                .await?;
                Ok::<_, DomainError>(rows.into_iter().map(|r| r.n).collect())
            }
            .scope_boxed()
        })
        .await
        .expect("ticks read")
}

/// Ticker keys a firm needs besides `main` (a test adds one, then asks for a refresh).
static EXTRA_TICKERS: LazyLock<Mutex<HashMap<FirmId, Vec<String>>>> = LazyLock::new(Default::default);

pub fn add_ticker_key(firm: FirmId, key: &str) {
    EXTRA_TICKERS.lock().unwrap_or_else(PoisonError::into_inner).entry(firm).or_default().push(key.to_owned());
}

pub struct TickerKind;

impl ChildKind for TickerKind {
    fn name(&self) -> &'static str {
        TICKER
    }

    fn placement(&self) -> Placement {
        Placement::Owned
    }

    fn discover(&self, _live: LiveContext, firm: FirmId) -> BoxFuture<'static, anyhow::Result<Vec<ChildKey>>> {
        let mut keys = vec!["main".to_owned()];
        keys.extend(
            EXTRA_TICKERS.lock().unwrap_or_else(PoisonError::into_inner).get(&firm).cloned().unwrap_or_default(),
        );
        Box::pin(async move { Ok(keys) })
    }

    fn start(&self, ctx: ChildContext) -> Box<dyn ChildHandle> {
        let span = ctx.span();
        Box::new(spawn_child(Ticker { ctx, n: 0, busy: false }, span))
    }
}

struct Ticker {
    ctx: ChildContext,
    n: i64,
    /// A unit is being stored; the interval skips until it is done, so units never overlap.
    busy: bool,
}

impl Ticker {
    fn node(&self) -> Uuid {
        self.ctx.live.registry().node()
    }

    /// One unit of work, stored only while this node's fencing token is current.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.busy, true) {
            return;
        }
        let next = self.n + 1;
        let (live, firm, key) = (self.ctx.live.clone(), self.ctx.firm, self.ctx.key.clone());
        let token = self.ctx.fencing_token.unwrap_or(-1);
        let cluster_name = live.settings().cluster.name.clone();
        ctx.spawn(
            async move {
                live.db()
                    .firm_tx(firm, |conn| {
                        async move {
                            if !cluster::holds(conn, &cluster_name, firm, token).await? {
                                return Ok(false);
                            }
                            let event =
                                NewAuditEvent::new(firm, ActorType::System, None, "test.tick", Outcome::Success)
                                    .with_target("test_child", &key)
                                    .with_metadata(serde_json::json!({ "n": next }));
                            audit::record(conn, &event).await?;
                            Ok::<_, DomainError>(true)
                        }
                        .scope_boxed()
                    })
                    .await
            }
            .into_actor(self)
            .map(move |stored, ticker, ctx| match stored {
                Ok(true) => {
                    ticker.n = next;
                    ticker.busy = false;
                }
                Ok(false) => {
                    ticker.ctx.fail("fencing token no longer current");
                    ctx.stop();
                }
                // The database is away; the next tick tries again.
                Err(_) => ticker.busy = false,
            }),
        );
    }
}

impl Actor for Ticker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        set_running(self.ctx.firm, TICKER, &self.ctx.key, self.node(), true);
        let (live, firm, key) = (self.ctx.live.clone(), self.ctx.firm, self.ctx.key.clone());
        ctx.wait(async move { stored_ticks(&live, firm, &key).await }.into_actor(self).map(|loaded, ticker, ctx| {
            match loaded {
                Ok(n) => {
                    ticker.n = n;
                    record_start(ticker.ctx.firm, TICKER, &ticker.ctx.key, ticker.node(), n);
                    ctx.run_interval(TICK_EVERY, |ticker, ctx| ticker.tick(ctx));
                }
                Err(err) => {
                    ticker.ctx.fail(format!("loading state failed: {err}"));
                    ctx.stop();
                }
            }
        }));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        set_running(self.ctx.firm, TICKER, &self.ctx.key, self.node(), false);
    }
}

impl Handler<StopChild> for Ticker {
    type Result = ();

    fn handle(&mut self, _: StopChild, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// How many of its first starts the `crashy` key panics in.
pub const FLAKY_PANICS: usize = 3;

pub struct FlakyKind;

impl ChildKind for FlakyKind {
    fn name(&self) -> &'static str {
        FLAKY
    }

    fn placement(&self) -> Placement {
        Placement::Owned
    }

    fn discover(&self, _live: LiveContext, _firm: FirmId) -> BoxFuture<'static, anyhow::Result<Vec<ChildKey>>> {
        Box::pin(async { Ok(vec!["steady".to_owned(), "crashy".to_owned()]) })
    }

    fn start(&self, ctx: ChildContext) -> Box<dyn ChildHandle> {
        let span = ctx.span();
        Box::new(spawn_child(Flaky { ctx }, span))
    }
}

struct Flaky {
    ctx: ChildContext,
}

impl Actor for Flaky {
    type Context = Context<Self>;

    #[allow(clippy::panic)]
    fn started(&mut self, _ctx: &mut Self::Context) {
        let node = self.ctx.live.registry().node();
        let before = starts(self.ctx.firm, FLAKY, &self.ctx.key).len();
        record_start(self.ctx.firm, FLAKY, &self.ctx.key, node, 0);
        if self.ctx.key == "crashy" && before < FLAKY_PANICS {
            panic!("test child {} crashes on start {}", self.ctx.key, before + 1);
        }
        set_running(self.ctx.firm, FLAKY, &self.ctx.key, node, true);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        set_running(self.ctx.firm, FLAKY, &self.ctx.key, self.ctx.live.registry().node(), false);
    }
}

impl Handler<StopChild> for Flaky {
    type Result = ();

    fn handle(&mut self, _: StopChild, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

pub const STUBBORN: &str = "test_stubborn";

/// Ignores `StopChild`: the supervisor must end it some other way before its firm moves.
pub struct StubbornKind;

impl ChildKind for StubbornKind {
    fn name(&self) -> &'static str {
        STUBBORN
    }

    fn placement(&self) -> Placement {
        Placement::Owned
    }

    fn discover(&self, _live: LiveContext, _firm: FirmId) -> BoxFuture<'static, anyhow::Result<Vec<ChildKey>>> {
        Box::pin(async { Ok(vec!["main".to_owned()]) })
    }

    fn start(&self, ctx: ChildContext) -> Box<dyn ChildHandle> {
        let span = ctx.span();
        Box::new(spawn_child(Stubborn { ctx }, span))
    }
}

struct Stubborn {
    ctx: ChildContext,
}

impl Actor for Stubborn {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        set_running(self.ctx.firm, STUBBORN, &self.ctx.key, self.ctx.live.registry().node(), true);
        record_start(self.ctx.firm, STUBBORN, &self.ctx.key, self.ctx.live.registry().node(), 0);
    }
}

/// An aborted actor is dropped without `stopped`; its drop is what marks it gone.
impl Drop for Stubborn {
    fn drop(&mut self) {
        set_running(self.ctx.firm, STUBBORN, &self.ctx.key, self.ctx.live.registry().node(), false);
    }
}

impl Handler<StopChild> for Stubborn {
    type Result = ();

    fn handle(&mut self, _: StopChild, _ctx: &mut Self::Context) {}
}

pub const SHY: &str = "test_shy";

/// Discovery fails for a firm's first `SHY_FAILURES` attempts, then names one child.
pub struct ShyKind;

pub const SHY_FAILURES: usize = 2;
static SHY_ATTEMPTS: LazyLock<Mutex<HashMap<FirmId, usize>>> = LazyLock::new(Default::default);

pub fn shy_attempts(firm: FirmId) -> usize {
    SHY_ATTEMPTS.lock().unwrap_or_else(PoisonError::into_inner).get(&firm).copied().unwrap_or(0)
}

impl ChildKind for ShyKind {
    fn name(&self) -> &'static str {
        SHY
    }

    fn placement(&self) -> Placement {
        Placement::Owned
    }

    fn discover(&self, _live: LiveContext, firm: FirmId) -> BoxFuture<'static, anyhow::Result<Vec<ChildKey>>> {
        let attempt = {
            let mut attempts = SHY_ATTEMPTS.lock().unwrap_or_else(PoisonError::into_inner);
            let count = attempts.entry(firm).or_default();
            *count += 1;
            *count
        };
        Box::pin(async move {
            if attempt <= SHY_FAILURES {
                anyhow::bail!("the database is away (attempt {attempt})");
            }
            Ok(vec!["main".to_owned()])
        })
    }

    fn start(&self, ctx: ChildContext) -> Box<dyn ChildHandle> {
        let span = ctx.span();
        Box::new(spawn_child(Shy { ctx }, span))
    }
}

struct Shy {
    ctx: ChildContext,
}

impl Actor for Shy {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        set_running(self.ctx.firm, SHY, &self.ctx.key, self.ctx.live.registry().node(), true);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        set_running(self.ctx.firm, SHY, &self.ctx.key, self.ctx.live.registry().node(), false);
    }
}

impl Handler<StopChild> for Shy {
    type Result = ();

    fn handle(&mut self, _: StopChild, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
