//! Which node owns which firm's once-only work, decided through PostgreSQL.
//!
//! Each node runs one loop on a connection of its own (so a saturated request pool never
//! delays a heartbeat). Every `cluster.heartbeat_ms` it:
//! 1. renews its lease (`cluster_nodes`) and learns the live nodes;
//! 2. when the live nodes changed, lets go of the firms that now belong on another node
//!    (rendezvous hashing over the live nodes), after their owned children have stopped;
//! 3. claims the firms that belong on it and have no owner, or an owner whose lease
//!    lapsed, and starts their owned children under the new fencing token.
//!
//! A node that cannot renew stops its owned children before its lease can lapse (it counts
//! from the moment it sent the last successful renewal, which is never later than the
//! database's own count), then rejoins under a new id, so a paused or cut-off node never
//! runs work another node has taken. A firm therefore moves within `cluster.lease_ms` plus
//! one heartbeat of its owner dying (10 s by default). Releases and departures NOTIFY the
//! other nodes, which claim at once; a graceful shutdown hands off in well under a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::LiveContext;
use crate::domain::{DomainError, cluster};
use crate::tenant::FirmId;

/// How long owned children get to stop when their firm is handed off.
const STOP_PATIENCE: Duration = Duration::from_secs(5);
/// Claims and releases are re-checked this often even when no node came or went (a firm
/// suspended, a release that failed half-way).
const FULL_CHECK_EVERY_TICKS: u64 = 10;

enum Wake {
    Timer,
    Tick,
    Refresh(FirmId),
    Shutdown(oneshot::Sender<()>),
}

enum Control {
    /// Hand every firm off and leave the cluster; answered when done.
    Shutdown(oneshot::Sender<()>),
}

/// The running loop. Dropping it does not stop the loop; [`ClusterHandle::shutdown`] hands
/// off, [`ClusterHandle::halt`] stops as a crash would.
pub struct ClusterHandle {
    control: mpsc::Sender<Control>,
    task: tokio::task::AbortHandle,
    live: LiveContext,
    /// Live nodes as of this node's last heartbeat (0 before the first).
    members: Arc<AtomicUsize>,
}

impl ClusterHandle {
    /// Stops owned work, lets every firm go at once, and leaves the cluster.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.control.send(Control::Shutdown(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Live nodes in the cluster, as of this node's last heartbeat.
    pub fn live_nodes(&self) -> usize {
        self.members.load(Ordering::Acquire)
    }

    /// Stops the loop and every owned child without telling the database, as if the
    /// process had died: the other nodes take the firms over once this node's lease lapses.
    pub async fn halt(&self) {
        self.task.abort();
        drop_all(&self.live, Duration::from_millis(500)).await;
    }
}

/// Starts the node's ownership loop (once per node, in the actix system).
pub fn start(live: LiveContext) -> ClusterHandle {
    let (control, commands) = mpsc::channel(1);
    let members = Arc::new(AtomicUsize::new(0));
    let task = actix_web::rt::spawn(Looper::new(live.clone(), members.clone()).run(commands)).abort_handle();
    ClusterHandle { control, task, live, members }
}

/// Stops the owned children of every firm this node owns, without touching the database.
async fn drop_all(live: &LiveContext, patience: Duration) {
    let registry = live.registry();
    let firms: Vec<FirmId> = registry.owned().into_keys().collect();
    futures_util::future::join_all(firms.into_iter().map(|firm| registry.release_ownership(firm, patience))).await;
    metrics::gauge!("cp_firms_owned").set(0.0);
}

struct Looper {
    live: LiveContext,
    cluster: String,
    heartbeat: Duration,
    lease: Duration,
    hostname: String,
    /// This node's incarnation: a new one after every lapse of the lease.
    node: Uuid,
    conn: Option<AsyncPgConnection>,
    /// Owned work must stop by then unless a renewal succeeds first.
    fence_at: Option<Instant>,
    last_live: Option<Vec<Uuid>>,
    members: Arc<AtomicUsize>,
    ticks: u64,
}

impl Looper {
    fn new(live: LiveContext, members: Arc<AtomicUsize>) -> Self {
        let settings = &live.settings().cluster;
        let heartbeat = Duration::from_millis(settings.heartbeat_ms.max(50));
        let lease = Duration::from_millis(settings.lease_ms).max(heartbeat * 2);
        Looper {
            cluster: settings.name.clone(),
            heartbeat,
            lease,
            hostname: hostname(),
            node: Uuid::now_v7(),
            conn: None,
            fence_at: None,
            last_live: None,
            members,
            ticks: 0,
            live,
        }
    }

    /// How long before the lease ends locally that owned work stops, leaving its children
    /// time to finish stopping before another node may start theirs.
    fn margin(&self) -> Duration {
        self.heartbeat.min(self.lease / 4)
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Control>) {
        tracing::info!(node = %self.node, cluster = %self.cluster, "joining the cluster");
        let mut next_tick = Instant::now();
        loop {
            if self.fence_at.is_some_and(|at| Instant::now() >= at) {
                self.fence("the lease could not be renewed in time").await;
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + self.heartbeat;
                // The fence runs on its own clock: whatever the database or a hand-off is
                // doing, owned work stops by `fence_at` unless a renewal came first.
                let fence_at = self.fence_at;
                let fenced = async move {
                    match fence_at {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                let round = async {
                    if self.conn.is_none() {
                        self.conn = self.connect().await;
                    }
                    if self.conn.is_some() {
                        if let Err(err) = self.tick().await {
                            tracing::warn!(error = %err, "cluster heartbeat failed; reconnecting");
                        }
                    }
                };
                tokio::select! {
                    () = round => {}
                    () = fenced => {
                        // The round was cut short; its connection (if any) went with it.
                        self.conn = None;
                        self.fence("the lease could not be renewed in time").await;
                    }
                }
            }
            let wake = self.fence_at.map_or(next_tick, |at| at.min(next_tick));
            let woken = {
                let cluster = self.cluster.clone();
                let registry = self.live.registry().clone();
                let notified = async {
                    let Some(conn) = self.conn.as_mut() else { return std::future::pending().await };
                    let mut notifications = std::pin::pin!(conn.notifications_stream());
                    while let Some(notification) = notifications.next().await {
                        let Ok(notification) = notification else { return Wake::Tick };
                        if notification.channel == cluster::REFRESH_CHANNEL {
                            if let Some((name, firm)) = notification.payload.split_once(' ')
                                && name == cluster
                                && let Ok(firm) = firm.parse::<Uuid>()
                            {
                                return Wake::Refresh(FirmId(firm));
                            }
                        } else if notification.channel == cluster::NOTICE_CHANNEL {
                            // Handed on at once; the owner's children act on it.
                            if let Some((kind, firm, what)) = cluster::parse_notice(&notification.payload) {
                                registry.notice(firm, kind, what);
                            }
                        } else if notification.payload == cluster {
                            return Wake::Tick;
                        }
                    }
                    std::future::pending().await
                };
                tokio::select! {
                    () = tokio::time::sleep_until(wake.into()) => Wake::Timer,
                    woken = notified => woken,
                    command = commands.recv() => match command {
                        Some(Control::Shutdown(done)) => Wake::Shutdown(done),
                        None => Wake::Timer,
                    },
                }
            };
            match woken {
                Wake::Timer => {}
                // A peer let firms go or left, or a firm needs an owner: look now.
                Wake::Tick => next_tick = Instant::now(),
                // Only the firm's owner acts on it; no round of the loop for that.
                Wake::Refresh(firm) => self.live.registry().refresh(firm),
                Wake::Shutdown(done) => {
                    self.leave().await;
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    async fn connect(&mut self) -> Option<AsyncPgConnection> {
        let settings = &self.live.settings().database;
        let url = settings.app_url();
        let connecting = AsyncPgConnection::establish(url.expose_secret());
        let mut conn = match tokio::time::timeout(settings.connect_timeout(), connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cluster connection failed");
                return None;
            }
            Err(_) => {
                tracing::warn!("cluster connection timed out");
                return None;
            }
        };
        let listen = format!(
            "LISTEN {}; LISTEN {}; LISTEN {}",
            cluster::WAKE_CHANNEL,
            cluster::REFRESH_CHANNEL,
            cluster::NOTICE_CHANNEL
        );
        match diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, &listen).await {
            Ok(()) => {
                // Notices sent while no connection listened are gone: children look afresh.
                self.live.registry().notices_lost();
                Some(conn)
            }
            Err(err) => {
                tracing::warn!(error = %err, "cluster LISTEN failed");
                None
            }
        }
    }

    /// One heartbeat on the node's connection; an error (or a timeout dropping it) leaves
    /// the connection closed, so the next round connects afresh.
    async fn tick(&mut self) -> Result<(), DomainError> {
        let Some(mut conn) = self.conn.take() else { return Ok(()) };
        self.tick_on(&mut conn).await?;
        self.conn = Some(conn);
        Ok(())
    }

    /// Bounds one database call, so a connection that hangs (rather than fails) is noticed.
    /// Stopping children is not bounded by it: a hand-off waits for them, then for this.
    async fn within<T>(&self, call: impl Future<Output = Result<T, DomainError>>) -> Result<T, DomainError> {
        match tokio::time::timeout(self.lease / 2, call).await {
            Ok(result) => result,
            Err(_) => Err(DomainError::Internal("the database did not answer in time".into())),
        }
    }

    async fn tick_on(&mut self, conn: &mut AsyncPgConnection) -> Result<(), DomainError> {
        self.ticks += 1;
        let lease_ms = i32::try_from(self.lease.as_millis()).unwrap_or(i32::MAX);
        let sent_at = Instant::now();
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let live =
            self.within(cluster::heartbeat(conn, self.node, &self.cluster, lease_ms, &self.hostname, pid)).await?;
        let Some(live) = live else {
            self.fence("the lease had lapsed").await;
            return Ok(());
        };
        self.fence_at = Some(sent_at + self.lease - self.margin());
        self.members.store(live.len(), Ordering::Release);
        let registry = self.live.registry().clone();

        let membership_changed = self.last_live.as_ref() != Some(&live);
        if membership_changed {
            tracing::info!(nodes = live.len(), "cluster membership changed");
        }
        if membership_changed || self.ticks % FULL_CHECK_EVERY_TICKS == 0 {
            let misplaced = self.within(cluster::misplaced(conn, self.node, &self.cluster)).await?;
            if !misplaced.is_empty() {
                let stopped = stop_confirmed(&registry, &misplaced).await;
                let released = self.within(cluster::release(conn, self.node, &self.cluster, &stopped)).await?;
                tracing::info!(released, "firms handed to the nodes they belong on");
            }
            // The database is the word on what this node holds: a step that failed half-way
            // (children stopped, row not yet cleared; a start that could not be delivered)
            // is put right here rather than left to drift.
            let held = self.within(cluster::held_by(conn, self.node, &self.cluster)).await?;
            let local = registry.owned();
            for (firm, token) in &held {
                if local.get(firm) != Some(token) {
                    registry.take_ownership(*firm, *token).await;
                }
            }
            let lost: Vec<FirmId> =
                local.keys().filter(|firm| !held.iter().any(|(held, _)| held == *firm)).copied().collect();
            stop_confirmed(&registry, &lost).await;
            self.last_live = Some(live.clone());
        }

        let claimed = self.within(cluster::claim(conn, self.node, &self.cluster)).await?;
        if !claimed.is_empty() {
            tracing::info!(claimed = claimed.len(), "firms taken over");
        }
        for (firm, fencing_token) in claimed {
            registry.take_ownership(firm, fencing_token).await;
        }
        metrics::gauge!("cp_firms_owned").set(registry.owned().len() as f64);

        if let Some(children) = registry.board().owned_if_changed() {
            let report = serde_json::to_value(&children).unwrap_or_default();
            if let Err(err) = self.within(cluster::store_children(conn, self.node, &report)).await {
                registry.board().mark_owned_changed();
                return Err(err);
            }
        }
        Ok(())
    }

    /// Stops all owned work at once and starts over as a new node.
    async fn fence(&mut self, why: &str) {
        tracing::error!(node = %self.node, why, "stopping all owned work: ownership can no longer be proven");
        drop_all(&self.live, self.margin()).await;
        self.node = Uuid::now_v7();
        self.fence_at = None;
        self.last_live = None;
        self.members.store(0, Ordering::Release);
    }

    /// Graceful shutdown: no new firms, owned children stopped, every firm whose children
    /// are confirmed stopped let go, node removed; the peers hear of it at once and claim.
    /// A firm whose children could not be confirmed stopped stays with this node's lease,
    /// which lapses on its own.
    async fn leave(&mut self) {
        let registry = self.live.registry().clone();
        let firms: Vec<FirmId> = registry.owned().into_keys().collect();
        if let Some(mut conn) = self.conn.take() {
            if self.within(cluster::mark_stopping(&mut conn, self.node)).await.is_ok() {
                self.conn = Some(conn);
            }
        }
        let stopped = stop_confirmed(&registry, &firms).await;
        metrics::gauge!("cp_firms_owned").set(0.0);
        let Some(mut conn) = self.conn.take() else {
            tracing::warn!("left without a database connection; peers take over when the lease lapses");
            return;
        };
        let released = self.within(cluster::release(&mut conn, self.node, &self.cluster, &stopped)).await;
        let departed = match (released, stopped.len() == firms.len()) {
            (Ok(_), true) => self.within(cluster::depart(&mut conn, self.node, &self.cluster)).await,
            (Ok(_), false) => Err(DomainError::Internal("some owned children did not stop".into())),
            (Err(err), _) => Err(err),
        };
        match departed {
            Ok(()) => tracing::info!(firms = firms.len(), "left the cluster; firms handed off"),
            Err(err) => tracing::warn!(error = %err, "hand-off incomplete; peers take over when the lease lapses"),
        }
    }
}

/// Stops the owned children of `firms`; the firms whose children are confirmed stopped.
async fn stop_confirmed(registry: &super::FirmRegistry, firms: &[FirmId]) -> Vec<FirmId> {
    let outcomes =
        futures_util::future::join_all(firms.iter().map(|firm| registry.release_ownership(*firm, STOP_PATIENCE))).await;
    firms.iter().zip(outcomes).filter(|(_, stopped)| *stopped).map(|(firm, _)| *firm).collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}
