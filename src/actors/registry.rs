//! One `FirmRegistry` per node: firm -> `FirmSupervisor`, started on first use and spread
//! over a small pool of arbiters (threads), so busy firms do not share one thread.
//!
//! It is also where the node's ownership (from [`super::cluster`]) reaches the
//! supervisors: taking a firm starts its owned children here, releasing one stops them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::prelude::*;
use uuid::Uuid;

use super::LiveContext;
use super::board::{Board, ChildReport};
use super::child::{ChildKey, ChildKind, Placement};
use super::hub::{ConversationHub, Counts, HUB_KEY, HUB_KIND, HubCounts};
use super::supervisor::{Backoff, Ensure, FirmSupervisor, Lookup, Notice, Refresh, ReleaseOwnership, TakeOwnership};
use crate::bus::Bus;
use crate::config::Settings;
use crate::db::Db;
use crate::tenant::FirmId;

/// A child could not be reached: its supervisor was stopping, or the kind is unknown here.
#[derive(Debug, thiserror::Error)]
pub enum ChildUnavailable {
    #[error("no child kind `{0}` runs on this node")]
    UnknownKind(&'static str),
    #[error("the firm's supervisor is restarting")]
    Restarting,
}

#[derive(Clone)]
pub struct FirmRegistry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    db: Db,
    bus: Bus,
    settings: Arc<Settings>,
    /// This node's id in presence notices.
    node: Uuid,
    kinds: Arc<Vec<Arc<dyn ChildKind>>>,
    backoff: Backoff,
    /// How long a child asked to stop may take before it is aborted.
    stop_grace: Duration,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    supervisors: Mutex<HashMap<FirmId, Addr<FirmSupervisor>>>,
    /// Firms this node owns, with their fencing tokens (the cluster loop's word).
    owned: Mutex<HashMap<FirmId, i64>>,
    board: Board,
    /// Per firm: bumped when its hub ends (see `hub_endings`).
    hub_endings: Mutex<HashMap<FirmId, tokio::sync::watch::Sender<u64>>>,
    /// Per firm: turns for database work its sockets ask for (see `socket_db_turn`).
    socket_db_work: Mutex<HashMap<FirmId, Arc<tokio::sync::Semaphore>>>,
}

impl FirmRegistry {
    /// Starts `realtime.arbiters` threads (at least one). Call once per node, inside the
    /// actix system, outside the per-worker factory.
    pub fn new(db: Db, bus: Bus, settings: Arc<Settings>, kinds: Vec<Arc<dyn ChildKind>>) -> Self {
        let arbiters = (0..settings.realtime.arbiters.max(1)).map(|_| Arbiter::new().handle()).collect();
        let backoff = Backoff {
            base: Duration::from_millis(settings.realtime.child_restart_base_ms.max(1)),
            max: Duration::from_secs(settings.realtime.child_restart_max_secs.max(1)),
        };
        // Half the margin the cluster loop keeps before its lease ends, so a fenced node's
        // children are gone before any other node may start theirs.
        let heartbeat = Duration::from_millis(settings.cluster.heartbeat_ms.max(50));
        let lease = Duration::from_millis(settings.cluster.lease_ms).max(heartbeat * 2);
        let stop_grace = heartbeat.min(lease / 4) / 2;
        FirmRegistry {
            inner: Arc::new(RegistryInner {
                db,
                bus,
                settings,
                node: Uuid::now_v7(),
                kinds: Arc::new(kinds),
                backoff,
                stop_grace,
                arbiters,
                next_arbiter: AtomicUsize::new(0),
                supervisors: Mutex::new(HashMap::new()),
                owned: Mutex::new(HashMap::new()),
                board: Board::default(),
                hub_endings: Mutex::new(HashMap::new()),
                socket_db_work: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The live layer's context: database, bus, settings and this registry.
    pub fn context(&self) -> LiveContext {
        LiveContext {
            db: self.inner.db.clone(),
            bus: self.inner.bus.clone(),
            settings: self.inner.settings.clone(),
            registry: self.clone(),
        }
    }

    /// This node's id in presence notices.
    pub fn node(&self) -> Uuid {
        self.inner.node
    }

    pub fn board(&self) -> &Board {
        &self.inner.board
    }

    /// The registered kinds' names and placements.
    pub fn kinds(&self) -> Vec<(&'static str, Placement)> {
        self.inner.kinds.iter().map(|k| (k.name(), k.placement())).collect()
    }

    /// The firm's supervisor, started when there is none (or the last one stopped).
    fn supervisor(&self, firm: FirmId) -> Addr<FirmSupervisor> {
        let mut supervisors = self.inner.supervisors.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = supervisors.get(&firm).filter(|a| a.connected()) {
            return existing.clone();
        }
        supervisors.retain(|_, a| a.connected());
        let index = self.inner.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.inner.arbiters.len();
        let (live, kinds, backoff, grace) =
            (self.context(), self.inner.kinds.clone(), self.inner.backoff, self.inner.stop_grace);
        // Built by hand rather than with `start_in_arbiter` so that every poll of the
        // supervisor runs inside its span and its log lines carry the firm.
        let (sender, receiver) = actix::dev::channel::channel(16);
        let addr = Addr::new(sender);
        let span = tracing::info_span!("supervisor", firm_id = %firm);
        self.inner.arbiters[index].spawn_fn(move || {
            let running =
                Context::with_receiver(receiver).into_future(FirmSupervisor::new(firm, live, kinds, backoff, grace));
            actix::spawn(tracing::Instrument::instrument(running, span));
        });
        supervisors.insert(firm, addr.clone());
        addr
    }

    fn existing(&self, firm: FirmId) -> Option<Addr<FirmSupervisor>> {
        self.inner
            .supervisors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&firm)
            .filter(|a| a.connected())
            .cloned()
    }

    /// A `PerNode` child's address, started if need be. A supervisor may stop just as it
    /// is handed out (its last child finished); the request then goes to a new one.
    pub async fn child<A: Actor>(
        &self,
        firm: FirmId,
        kind: &'static str,
        key: &str,
    ) -> Result<Addr<A>, ChildUnavailable> {
        for _ in 0..3 {
            let ensure = Ensure { kind, key: key.to_owned() };
            match self.supervisor(firm).send(ensure).await {
                Ok(Some(address)) => {
                    return address.downcast::<Addr<A>>().map(|a| *a).map_err(|_| ChildUnavailable::UnknownKind(kind));
                }
                Ok(None) => return Err(ChildUnavailable::UnknownKind(kind)),
                Err(_) => tokio::task::yield_now().await,
            }
        }
        Err(ChildUnavailable::Restarting)
    }

    /// A signal that changes each time the firm's hub ends on this node, so its sessions
    /// join the next one at once instead of each polling its hub's address.
    pub fn hub_endings(&self, firm: FirmId) -> tokio::sync::watch::Receiver<u64> {
        let mut endings = self.inner.hub_endings.lock().unwrap_or_else(PoisonError::into_inner);
        endings.entry(firm).or_insert_with(|| tokio::sync::watch::channel(0).0).subscribe()
    }

    pub(super) fn hub_ended(&self, firm: FirmId) {
        let endings = self.inner.hub_endings.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ended) = endings.get(&firm) {
            ended.send_modify(|count| *count += 1);
        }
    }

    /// A turn for database work one of the firm's sockets asks for (subscribing, history,
    /// read positions, sending): at most `realtime.max_socket_db_work_per_firm` at once per
    /// firm on this node, so one firm's sockets cannot take the pool from every other firm.
    /// Held for the transaction; `None` only if the turns were closed, which never happens.
    pub async fn socket_db_turn(&self, firm: FirmId) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let turns = {
            let mut work = self.inner.socket_db_work.lock().unwrap_or_else(PoisonError::into_inner);
            let most = self.inner.settings.realtime.max_socket_db_work_per_firm.max(1);
            work.entry(firm).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(most))).clone()
        };
        turns.acquire_owned().await.ok()
    }

    /// The firm's conversation hub on this node, started if need be.
    pub async fn hub(&self, firm: FirmId) -> Result<Addr<ConversationHub>, ChildUnavailable> {
        self.child::<ConversationHub>(firm, HUB_KIND, HUB_KEY).await
    }

    /// The hub's counts, for tests; zeros when the firm has no hub here.
    pub async fn hub_counts(&self, firm: FirmId) -> HubCounts {
        let empty = HubCounts { sessions: 0, watched_conversations: 0 };
        let running = self.children(firm).iter().any(|c| c.kind == HUB_KIND);
        if !running || self.existing(firm).is_none() {
            return empty;
        }
        let Ok(hub) = self.hub(firm).await else { return empty };
        hub.send(Counts).await.unwrap_or(empty)
    }

    /// The firm's children on this node, with state, restarts and last error.
    pub fn children(&self, firm: FirmId) -> Vec<ChildReport> {
        self.inner.board.firm(firm)
    }

    /// Times the firm's children on this node were started again after ending unasked.
    pub fn restarts(&self, firm: FirmId) -> u32 {
        self.children(firm).iter().map(|c| c.status.restarts).sum()
    }

    /// Firms with a running supervisor on this node.
    pub fn firms(&self) -> usize {
        self.inner.supervisors.lock().unwrap_or_else(PoisonError::into_inner).values().filter(|a| a.connected()).count()
    }

    /// Firms this node owns, with their fencing tokens.
    pub fn owned(&self) -> HashMap<FirmId, i64> {
        self.inner.owned.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn owns(&self, firm: FirmId) -> bool {
        self.inner.owned.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&firm)
    }

    /// This node now owns `firm`: start its owned children.
    pub(super) async fn take_ownership(&self, firm: FirmId, fencing_token: i64) {
        self.inner.owned.lock().unwrap_or_else(PoisonError::into_inner).insert(firm, fencing_token);
        // A supervisor that is just stopping (its last child gone) refuses the message;
        // the next attempt reaches a new one.
        for _ in 0..50 {
            if self.supervisor(firm).send(TakeOwnership { fencing_token }).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Not owned as far as this node is concerned: the cluster loop's next full check
        // finds the firm held in the database and tries again.
        self.inner.owned.lock().unwrap_or_else(PoisonError::into_inner).remove(&firm);
        tracing::error!(firm_id = %firm, "could not start the firm's owned children; trying again later");
    }

    /// Stops `firm`'s owned children and waits until they have ended; false when that could
    /// not be confirmed within `patience` (the firm must then not be handed on: its row stays
    /// until this node's lease lapses).
    pub(super) async fn release_ownership(&self, firm: FirmId, patience: Duration) -> bool {
        self.inner.owned.lock().unwrap_or_else(PoisonError::into_inner).remove(&firm);
        let Some(supervisor) = self.existing(firm) else { return true };
        match tokio::time::timeout(patience, supervisor.send(ReleaseOwnership)).await {
            Ok(Ok(())) => true,
            // The supervisor ended (and its children with it) before answering.
            Ok(Err(_)) => !supervisor.connected(),
            Err(_) => {
                tracing::error!(firm_id = %firm, "owned children did not stop in time");
                false
            }
        }
    }

    /// Looks again at which owned children `firm` needs, when this node owns it. Other
    /// nodes hear of it through [`super::cluster::request_refresh`].
    pub fn refresh(&self, firm: FirmId) {
        if self.owns(firm)
            && let Some(supervisor) = self.existing(firm)
        {
            supervisor.do_send(Refresh);
        }
    }

    /// The address of a child running here (owned or not), without starting one.
    pub async fn running_child<A: Actor>(&self, firm: FirmId, kind: &'static str, key: &str) -> Option<Addr<A>> {
        let supervisor = self.existing(firm)?;
        let address = supervisor.send(Lookup { kind, key: key.to_owned() }).await.ok()??;
        address.downcast::<Addr<A>>().ok().map(|a| *a)
    }

    /// Passes `what` to `firm`'s running children of `kind` on this node, if any.
    pub fn notice(&self, firm: FirmId, kind: &str, what: &str) {
        if let Some(supervisor) = self.existing(firm) {
            supervisor.do_send(Notice { kind: Some(kind.to_owned()), what: Some(what.to_owned()) });
        }
    }

    /// Tells every running child on this node that notices may have been lost.
    pub fn notices_lost(&self) {
        let supervisors: Vec<Addr<FirmSupervisor>> =
            self.inner.supervisors.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        for supervisor in supervisors.into_iter().filter(|s| s.connected()) {
            supervisor.do_send(Notice { kind: None, what: None });
        }
    }

    /// Children of `kind`/`key` that this node runs for `firm` right now (tests, status).
    pub fn is_running(&self, firm: FirmId, kind: &str, key: &ChildKey) -> bool {
        self.children(firm)
            .iter()
            .any(|c| c.kind == kind && &c.key == key && c.status.state == super::board::ChildState::Running)
    }
}
