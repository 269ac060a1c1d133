//! One `FirmRegistry` per node: firm -> `FirmSupervisor`, started on first use and spread
//! over a small pool of arbiters (threads), so busy firms do not share one thread.
//!
//! A supervisor owns its firm's children. Today that is the conversation hub; mailboxes,
//! SMS, calendar and SLA timers join it in later work. A child that dies (a panic ends
//! its task) is started again, with growing delay if it keeps dying, and gets its state
//! back from the database and from the sessions that rejoin it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix::prelude::*;
use uuid::Uuid;

use super::bus::Bus;
use super::hub::{ConversationHub, Counts, HubCounts, HubIdle};
use crate::domain::FirmId;

/// How often a supervisor looks at its children.
const CHECK_EVERY: Duration = Duration::from_millis(500);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct FirmRegistry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    bus: Bus,
    hub_idle: Duration,
    node: Uuid,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    supervisors: Mutex<HashMap<FirmId, Addr<FirmSupervisor>>>,
}

impl FirmRegistry {
    /// Starts `arbiters` threads (at least one). Call once per node, inside the actix
    /// system, outside the per-worker factory.
    pub fn new(bus: Bus, arbiters: usize, hub_idle: Duration) -> Self {
        let arbiters = (0..arbiters.max(1)).map(|_| Arbiter::new().handle()).collect();
        FirmRegistry {
            inner: Arc::new(RegistryInner {
                bus,
                hub_idle,
                node: Uuid::now_v7(),
                arbiters,
                next_arbiter: AtomicUsize::new(0),
                supervisors: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// This node's id in presence notices.
    pub fn node(&self) -> Uuid {
        self.inner.node
    }

    /// The firm's supervisor, started when there is none (or the last one stopped).
    fn supervisor(&self, firm: FirmId) -> Addr<FirmSupervisor> {
        let mut supervisors = self.inner.supervisors.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = supervisors.get(&firm).filter(|a| a.connected()) {
            return existing.clone();
        }
        let index = self.inner.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.inner.arbiters.len();
        let (bus, node, hub_idle) = (self.inner.bus.clone(), self.inner.node, self.inner.hub_idle);
        let addr = FirmSupervisor::start_in_arbiter(&self.inner.arbiters[index], move |_| FirmSupervisor {
            firm,
            bus,
            node,
            hub_idle,
            hub: None,
            restarts: 0,
            next_start: Instant::now(),
        });
        supervisors.insert(firm, addr.clone());
        addr
    }

    /// The firm's conversation hub on this node, started if need be.
    pub async fn hub(&self, firm: FirmId) -> Result<Addr<ConversationHub>, MailboxError> {
        self.supervisor(firm).send(GetHub).await
    }

    /// The hub's counts, for metrics and tests; zeros when the firm has no hub here.
    pub async fn hub_counts(&self, firm: FirmId) -> HubCounts {
        let existing = self.inner.supervisors.lock().unwrap_or_else(PoisonError::into_inner).get(&firm).cloned();
        let empty = HubCounts { sessions: 0, watched_conversations: 0 };
        let Some(supervisor) = existing else { return empty };
        let Ok(hub) = supervisor.send(GetHub).await else { return empty };
        hub.send(Counts).await.unwrap_or(empty)
    }

    /// Times the firm's children were started again after dying.
    pub async fn restarts(&self, firm: FirmId) -> u32 {
        let existing = self.inner.supervisors.lock().unwrap_or_else(PoisonError::into_inner).get(&firm).cloned();
        match existing {
            Some(supervisor) => supervisor.send(Restarts).await.unwrap_or(0),
            None => 0,
        }
    }

    /// Firms with a running supervisor on this node.
    pub fn firms(&self) -> usize {
        self.inner.supervisors.lock().unwrap_or_else(PoisonError::into_inner).values().filter(|a| a.connected()).count()
    }
}

pub struct FirmSupervisor {
    firm: FirmId,
    bus: Bus,
    node: Uuid,
    hub_idle: Duration,
    hub: Option<Addr<ConversationHub>>,
    restarts: u32,
    next_start: Instant,
}

impl FirmSupervisor {
    /// The live hub, starting one when there is none or the last one died.
    fn ensure_hub(&mut self, ctx: &mut Context<Self>) -> Addr<ConversationHub> {
        if let Some(hub) = self.hub.as_ref().filter(|h| h.connected()) {
            return hub.clone();
        }
        if self.hub.is_some() {
            self.restarts += 1;
            tracing::warn!(firm_id = %self.firm, restarts = self.restarts, "conversation hub died; starting a new one");
        }
        let hub =
            ConversationHub::new(self.firm, self.bus.clone(), self.node, ctx.address().recipient(), self.hub_idle)
                .start();
        self.hub = Some(hub.clone());
        hub
    }
}

impl Actor for FirmSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.ensure_hub(ctx);
        ctx.run_interval(CHECK_EVERY, |supervisor, ctx| {
            let dead = supervisor.hub.as_ref().is_some_and(|h| !h.connected());
            if dead && Instant::now() >= supervisor.next_start {
                // Back off when a child keeps dying, so a crash loop cannot spin a core.
                let delay = CHECK_EVERY.saturating_mul(2u32.saturating_pow(supervisor.restarts.min(6)));
                supervisor.next_start = Instant::now() + delay.min(RESTART_BACKOFF_MAX);
                supervisor.ensure_hub(ctx);
            }
        });
    }
}

#[derive(Message)]
#[rtype(result = "Addr<ConversationHub>")]
struct GetHub;

impl Handler<GetHub> for FirmSupervisor {
    type Result = MessageResult<GetHub>;

    fn handle(&mut self, _: GetHub, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.ensure_hub(ctx))
    }
}

/// The hub stopped because nobody was connected. Today it is the only child, so the
/// supervisor stops too and the registry starts a new one on next use; children that must
/// keep running (mailboxes, SLA timers) will keep their supervisor alive instead.
impl Handler<HubIdle> for FirmSupervisor {
    type Result = ();

    fn handle(&mut self, _: HubIdle, ctx: &mut Self::Context) {
        self.hub = None;
        ctx.stop();
    }
}

#[derive(Message)]
#[rtype(result = "u32")]
struct Restarts;

impl Handler<Restarts> for FirmSupervisor {
    type Result = u32;

    fn handle(&mut self, _: Restarts, _ctx: &mut Self::Context) -> u32 {
        self.restarts
    }
}
