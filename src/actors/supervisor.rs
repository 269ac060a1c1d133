//! A firm's supervisor on one node: a table of children keyed by kind and id.
//!
//! It starts `PerNode` children on demand and `Owned` children while this node owns the
//! firm. A child that crashes or fails is started again after a delay that doubles with
//! each failure in a row (with jitter, capped), and reloads its own state from the
//! database; one child's failures never touch its siblings. The supervisor lives while it
//! owns the firm or has any child, whether or not a socket is connected, and stops when
//! it has neither.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;
use tokio::sync::oneshot;

use super::LiveContext;
use super::board::{ChildState, ChildStatus};
use super::child::{ChildContext, ChildExited, ChildHandle, ChildKey, ChildKind, Exit, Placement};
use crate::tenant::FirmId;

/// A child that ran this long before failing starts its backoff from the beginning again.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Restart delays: `base * 2^(n-1)` for the n-th failure in a row, capped at `max`, of
/// which the upper half is random ("equal jitter"), so restarts of many firms spread out
/// while each delay is still at least as long as the one before.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn delay(&self, failures_in_row: u32) -> Duration {
        let exponent = failures_in_row.saturating_sub(1).min(20);
        let full = self.base.saturating_mul(1u32 << exponent).min(self.max);
        let half = full / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_millis(jitter)
    }
}

struct Slot {
    kind: Arc<dyn ChildKind>,
    handle: Option<Box<dyn ChildHandle>>,
    /// Bumped on every start; exit notices of earlier starts are ignored.
    generation: u64,
    state: ChildState,
    restarts: u32,
    failures_in_row: u32,
    last_error: Option<String>,
    started_at: Instant,
    /// The delay before the latest restart.
    restart_delay: Option<Duration>,
    /// Asked to stop (ownership lost or handed off); it is removed when it exits.
    stopping: bool,
}

pub struct FirmSupervisor {
    firm: FirmId,
    live: LiveContext,
    kinds: Arc<Vec<Arc<dyn ChildKind>>>,
    backoff: Backoff,
    /// The fencing token while this node owns the firm.
    owned: Option<i64>,
    children: HashMap<(&'static str, ChildKey), Slot>,
    /// Answered once every owned child has exited after a release.
    release_waiters: Vec<oneshot::Sender<()>>,
    /// Numbers every start of every child here, so a timer or notice about an earlier run
    /// never matches a later one, even of a slot removed and made again.
    starts: u64,
    /// A child asked to stop and still running after this is aborted.
    stop_grace: Duration,
    /// Discovery failures in a row; it is retried with backoff.
    discover_failures: u32,
}

impl FirmSupervisor {
    pub fn new(
        firm: FirmId,
        live: LiveContext,
        kinds: Arc<Vec<Arc<dyn ChildKind>>>,
        backoff: Backoff,
        stop_grace: Duration,
    ) -> Self {
        FirmSupervisor {
            firm,
            live,
            kinds,
            backoff,
            owned: None,
            children: HashMap::new(),
            release_waiters: Vec::new(),
            starts: 0,
            stop_grace,
            discover_failures: 0,
        }
    }

    fn kind(&self, name: &str) -> Option<Arc<dyn ChildKind>> {
        self.kinds.iter().find(|k| k.name() == name).cloned()
    }

    fn publish(&self, kind: &'static str, key: &ChildKey) {
        let board = self.live.registry().board();
        match self.children.get(&(kind, key.clone())) {
            Some(slot) => board.set(
                self.firm,
                kind,
                key,
                ChildStatus {
                    owned: slot.kind.placement() == Placement::Owned,
                    state: slot.state,
                    restarts: slot.restarts,
                    last_error: slot.last_error.clone(),
                    restart_delay_ms: slot.restart_delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                },
            ),
            None => board.remove(self.firm, kind, key),
        }
    }

    /// Starts (or starts again) the child in `kind`/`key`; a no-op when it runs.
    fn start(&mut self, kind: Arc<dyn ChildKind>, key: ChildKey, ctx: &mut Context<Self>) {
        let name = kind.name();
        let fencing_token = match kind.placement() {
            Placement::Owned => match self.owned {
                Some(token) => Some(token),
                None => return,
            },
            Placement::PerNode => None,
        };
        let slot = self.children.entry((name, key.clone())).or_insert_with(|| Slot {
            kind: kind.clone(),
            handle: None,
            generation: 0,
            state: ChildState::Starting,
            restarts: 0,
            failures_in_row: 0,
            last_error: None,
            started_at: Instant::now(),
            restart_delay: None,
            stopping: false,
        });
        if slot.handle.is_some() || slot.stopping {
            return;
        }
        self.starts += 1;
        slot.generation = self.starts;
        let child_ctx = ChildContext::new(
            self.firm,
            name,
            key.clone(),
            fencing_token,
            self.live.clone(),
            ctx.address().recipient(),
            slot.generation,
        );
        slot.handle = Some(kind.start(child_ctx));
        slot.state = ChildState::Running;
        slot.started_at = Instant::now();
        self.publish(name, &key);
    }

    /// Starts the owned children the kinds name for this firm, and stops those they no
    /// longer name.
    fn discover_owned(&mut self, ctx: &mut Context<Self>) {
        let owned_kinds: Vec<Arc<dyn ChildKind>> =
            self.kinds.iter().filter(|k| k.placement() == Placement::Owned).cloned().collect();
        if owned_kinds.is_empty() || self.owned.is_none() {
            return;
        }
        let (live, firm) = (self.live.clone(), self.firm);
        ctx.spawn(
            async move {
                let mut found = Vec::new();
                for kind in owned_kinds {
                    let keys = kind.discover(live.clone(), firm).await;
                    found.push((kind, keys));
                }
                found
            }
            .into_actor(self)
            .map(|found, supervisor, ctx| {
                if supervisor.owned.is_none() {
                    return;
                }
                let mut failed = false;
                for (kind, keys) in found {
                    match keys {
                        Ok(keys) => {
                            let name = kind.name();
                            let gone: Vec<ChildKey> = supervisor
                                .children
                                .keys()
                                .filter(|(k, key)| *k == name && !keys.contains(key))
                                .map(|(_, key)| key.clone())
                                .collect();
                            for key in gone {
                                supervisor.stop_child(name, &key, ctx);
                            }
                            for key in keys {
                                supervisor.start(kind.clone(), key, ctx);
                            }
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, child_kind = kind.name(), "discovering children failed");
                            failed = true;
                        }
                    }
                }
                if failed {
                    // Owned work must not stay unstarted: look again after a growing delay.
                    supervisor.discover_failures += 1;
                    let delay = supervisor.backoff.delay(supervisor.discover_failures);
                    ctx.run_later(delay, |supervisor, ctx| supervisor.discover_owned(ctx));
                } else {
                    supervisor.discover_failures = 0;
                }
            }),
        );
    }

    fn stop_child(&mut self, kind: &'static str, key: &ChildKey, ctx: &mut Context<Self>) {
        if let Some(slot) = self.children.get_mut(&(kind, key.clone())) {
            slot.stopping = true;
            slot.state = ChildState::Stopping;
            match &slot.handle {
                Some(handle) => {
                    handle.stop();
                    // Its firm may be about to start on another node: one that does not
                    // stop in time is ended.
                    let (key, generation) = (key.clone(), slot.generation);
                    ctx.run_later(self.stop_grace, move |supervisor, _ctx| {
                        if let Some(slot) = supervisor.children.get(&(kind, key.clone()))
                            && slot.generation == generation
                            && let Some(handle) = &slot.handle
                        {
                            tracing::warn!(child_kind = kind, child_id = %key, "child did not stop when asked; aborting it");
                            handle.abort();
                        }
                    });
                }
                // Waiting for a restart: nothing runs, so it is gone at once.
                None => {
                    self.children.remove(&(kind, key.clone()));
                }
            }
            self.publish(kind, key);
        }
    }

    fn owned_children_left(&self) -> bool {
        self.children.values().any(|slot| slot.kind.placement() == Placement::Owned)
    }

    fn settle(&mut self, ctx: &mut Context<Self>) {
        if !self.owned_children_left() {
            for waiter in self.release_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
        if self.owned.is_none() && self.children.is_empty() {
            ctx.stop();
        }
    }
}

impl Actor for FirmSupervisor {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let board = self.live.registry().board();
        for (kind, key) in self.children.keys() {
            board.remove(self.firm, kind, key);
        }
    }
}

/// A `PerNode` child's address, started when it is not running.
#[derive(Message)]
#[rtype(result = "Option<Box<dyn std::any::Any + Send>>")]
pub struct Ensure {
    pub kind: &'static str,
    pub key: ChildKey,
}

impl Handler<Ensure> for FirmSupervisor {
    type Result = Option<Box<dyn std::any::Any + Send>>;

    fn handle(&mut self, ensure: Ensure, ctx: &mut Self::Context) -> Self::Result {
        let kind = self.kind(ensure.kind).filter(|k| k.placement() == Placement::PerNode)?;
        let slot_key = (kind.name(), ensure.key.clone());
        // Asked for while waiting out a backoff: a caller is waiting, so it starts now (the
        // pending restart then finds a newer generation and does nothing).
        self.start(kind, ensure.key, ctx);
        self.children.get(&slot_key)?.handle.as_ref().map(|h| h.address())
    }
}

/// A running child's address, whatever its placement (`None` when it does not run here).
#[derive(Message)]
#[rtype(result = "Option<Box<dyn std::any::Any + Send>>")]
pub struct Lookup {
    pub kind: &'static str,
    pub key: ChildKey,
}

impl Handler<Lookup> for FirmSupervisor {
    type Result = Option<Box<dyn std::any::Any + Send>>;

    fn handle(&mut self, lookup: Lookup, _ctx: &mut Self::Context) -> Self::Result {
        let slot = self.children.get(&(lookup.kind, lookup.key))?;
        slot.handle.as_ref().filter(|_| !slot.stopping).map(|h| h.address())
    }
}

/// This node now owns the firm, under `fencing_token`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TakeOwnership {
    pub fencing_token: i64,
}

impl Handler<TakeOwnership> for FirmSupervisor {
    type Result = ();

    fn handle(&mut self, take: TakeOwnership, ctx: &mut Self::Context) {
        if self.owned == Some(take.fencing_token) {
            return;
        }
        self.owned = Some(take.fencing_token);
        tracing::info!(firm_id = %self.firm, fencing_token = take.fencing_token, "firm owned by this node");
        self.discover_owned(ctx);
    }
}

/// Stop every owned child; answered once they have all exited, so the node can let the
/// firm go without two nodes ever running its owned work at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseOwnership;

impl Handler<ReleaseOwnership> for FirmSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: ReleaseOwnership, ctx: &mut Self::Context) -> Self::Result {
        self.owned = None;
        let owned: Vec<(&'static str, ChildKey)> = self
            .children
            .iter()
            .filter(|(_, slot)| slot.kind.placement() == Placement::Owned)
            .map(|(id, _)| id.clone())
            .collect();
        for (kind, key) in owned {
            self.stop_child(kind, &key, ctx);
        }
        let (done, waiting) = oneshot::channel();
        self.release_waiters.push(done);
        self.settle(ctx);
        Box::pin(async move {
            let _ = waiting.await;
        })
    }
}

/// Look again at which owned children the firm needs (a mailbox was added, ...).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Refresh;

impl Handler<Refresh> for FirmSupervisor {
    type Result = ();

    fn handle(&mut self, _: Refresh, ctx: &mut Self::Context) {
        self.discover_owned(ctx);
    }
}

/// A notice for the running children of one kind (all kinds with `kind: None`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Notice {
    pub kind: Option<String>,
    pub what: Option<String>,
}

impl Handler<Notice> for FirmSupervisor {
    type Result = ();

    fn handle(&mut self, notice: Notice, _ctx: &mut Self::Context) {
        for ((name, _), slot) in &self.children {
            if notice.kind.as_deref().is_some_and(|kind| kind != *name) || slot.stopping {
                continue;
            }
            if let Some(handle) = &slot.handle {
                slot.kind.on_notice(handle.address().as_ref(), notice.what.as_deref());
            }
        }
    }
}

impl Handler<ChildExited> for FirmSupervisor {
    type Result = ();

    fn handle(&mut self, exited: ChildExited, ctx: &mut Self::Context) {
        if exited.kind == super::hub::HUB_KIND {
            self.live.registry().hub_ended(self.firm);
        }
        let id = (exited.kind, exited.key.clone());
        let Some(slot) = self.children.get_mut(&id) else { return };
        if slot.generation != exited.generation {
            return;
        }
        slot.handle = None;
        let is_owned = slot.kind.placement() == Placement::Owned;
        if slot.stopping || (is_owned && self.owned.is_none()) {
            self.children.remove(&id);
            if is_owned && self.owned.is_some() {
                // Stopped for a release that the node took back meanwhile: start afresh.
                self.discover_owned(ctx);
            }
        } else {
            match exited.exit {
                Exit::Finished => {
                    self.children.remove(&id);
                }
                failure => {
                    if slot.started_at.elapsed() >= STABLE_AFTER {
                        slot.failures_in_row = 0;
                    }
                    slot.failures_in_row += 1;
                    slot.restarts += 1;
                    slot.state = ChildState::Restarting;
                    slot.last_error = Some(failure.to_string());
                    metrics::counter!("cp_child_restarts_total", "kind" => exited.kind).increment(1);
                    let delay = self.backoff.delay(slot.failures_in_row);
                    slot.restart_delay = Some(delay);
                    tracing::warn!(
                        firm_id = %self.firm, child_kind = exited.kind, child_id = %exited.key,
                        error = %failure, restarts = slot.restarts, delay_ms = delay.as_millis() as u64,
                        "child ended; starting it again after a delay"
                    );
                    let (kind, key, generation) = (slot.kind.clone(), exited.key.clone(), slot.generation);
                    ctx.run_later(delay, move |supervisor, ctx| {
                        let waiting = supervisor
                            .children
                            .get(&(kind.name(), key.clone()))
                            .is_some_and(|s| s.generation == generation && s.handle.is_none() && !s.stopping);
                        if waiting {
                            supervisor.start(kind, key, ctx);
                        }
                    });
                }
            }
        }
        self.publish(exited.kind, &exited.key);
        self.settle(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays_double_within_their_jitter_and_stop_at_the_cap() {
        let backoff = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(3) };
        for _ in 0..200 {
            for (failures, (least, most)) in [(1, (50, 100)), (2, (100, 200)), (3, (200, 400)), (4, (400, 800))] {
                let delay = backoff.delay(failures).as_millis() as u64;
                assert!((least..=most).contains(&delay), "failure {failures}: {delay} ms");
            }
            let capped = backoff.delay(40).as_millis() as u64;
            assert!((1500..=3000).contains(&capped), "capped: {capped} ms");
        }
    }
}
