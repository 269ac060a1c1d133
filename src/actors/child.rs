//! What a firm supervisor runs: children of registered kinds, keyed by kind and id.
//!
//! A child kind is added by implementing [`ChildKind`] and registering it with the
//! application ([`crate::ApplicationBuilder::child_kind`]); the supervisor needs no edit.
//! A child is an actix actor that:
//! - loads its state from the database when it starts (a restart after a crash, or a
//!   start on another node after a failover, begins from what is stored, never from
//!   memory);
//! - keeps its [`ChildContext`] for as long as it runs: the context going away is how the
//!   supervisor learns that the child ended, whether it stopped, failed or panicked;
//! - stops when sent [`StopChild`] (the node lost or handed off the firm, or shuts down).
//!
//! Placement decides where a kind runs. `PerNode` children (the conversation hub serving
//! a node's own sockets) start on demand on any node that asks for them. `Owned` children
//! (a mailbox watcher, SMS pacing, SLA timers) run on exactly one node per firm: the one
//! holding the firm's ownership (see [`super::cluster`]); the supervisor starts the ones
//! [`ChildKind::discover`] names when the node takes the firm and stops them when it lets go.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use actix::prelude::*;
use futures_util::future::BoxFuture;
use tracing::Instrument;

use super::LiveContext;
use crate::tenant::FirmId;

/// Where a kind's children run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On every node that asks for one, started on demand; per-node state only.
    PerNode,
    /// Once per firm across all nodes, on the node that owns the firm.
    Owned,
}

/// A child's id within its kind: a mailbox id, or a fixed name for a kind with one child
/// per firm.
pub type ChildKey = String;

/// A kind of child. Implement it, register it, and every firm's supervisor can run it.
pub trait ChildKind: Send + Sync + 'static {
    /// The kind's name in logs, metrics and `consultantpro status` (`snake_case`, stable).
    fn name(&self) -> &'static str;

    fn placement(&self) -> Placement;

    /// For `Owned` kinds: the children the firm needs now, read from the database. Called
    /// when the node takes the firm and again on [`super::FirmRegistry::refresh`].
    /// `PerNode` kinds start on demand and keep the default (none).
    fn discover(&self, live: LiveContext, firm: FirmId) -> BoxFuture<'static, anyhow::Result<Vec<ChildKey>>> {
        let _ = (live, firm);
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Starts one child, on the calling arbiter. Use [`spawn_child`] so the child's log
    /// lines carry the firm, kind and key.
    fn start(&self, ctx: ChildContext) -> Box<dyn ChildHandle>;

    /// Passes a notice to a running child of this kind (its address, as
    /// [`ChildHandle::address`] gives it): `Some(what)` from
    /// [`crate::domain::cluster::notify_children`], or `None` when notices may have been
    /// lost (the node's listening connection was down) and the child should look afresh.
    fn on_notice(&self, address: &(dyn Any + Send), what: Option<&str>) {
        let _ = (address, what);
    }
}

/// Asks a child to stop; every child actor handles it (usually with `ctx.stop()`).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopChild;

/// The supervisor's hold on a running child.
pub trait ChildHandle: Send {
    /// Asks the child to stop ([`StopChild`]).
    fn stop(&self);
    /// Ends the child at once, wherever it is: for a child that did not stop when asked,
    /// since its firm's work may be about to start on another node.
    fn abort(&self);
    /// The child's address as `Box<Addr<A>>`, for callers that message it directly.
    fn address(&self) -> Box<dyn Any + Send>;
}

/// A child started by [`spawn_child`]: its address and its task.
pub struct SpawnedChild<A: Actor> {
    address: Addr<A>,
    task: tokio::task::AbortHandle,
}

impl<A> SpawnedChild<A>
where
    A: Actor,
{
    pub fn address(&self) -> &Addr<A> {
        &self.address
    }
}

impl<A> ChildHandle for SpawnedChild<A>
where
    A: Actor<Context = Context<A>> + Handler<StopChild>,
{
    fn stop(&self) {
        self.address.do_send(StopChild);
    }

    fn abort(&self) {
        self.task.abort();
    }

    fn address(&self) -> Box<dyn Any + Send> {
        Box::new(self.address.clone())
    }
}

/// Starts `actor` on the current arbiter with every poll inside `span`, so each line it
/// logs carries the span's fields.
pub fn spawn_child<A>(actor: A, span: tracing::Span) -> SpawnedChild<A>
where
    A: Actor<Context = Context<A>>,
{
    let running = Context::new().into_future(actor);
    let address = running.address();
    let task = actix::spawn(running.instrument(span)).abort_handle();
    SpawnedChild { address, task }
}

/// How a child ended, as the supervisor hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It ended without saying why: a panic, or a stop it did not announce. Restarted.
    Crashed,
    /// It reported a failure ([`ChildContext::fail`]). Restarted with backoff.
    Failed(String),
    /// Its work is done ([`ChildContext::finish`]), e.g. a hub nobody is connected to.
    Finished,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Crashed => f.write_str("stopped unexpectedly (panic or unannounced stop)"),
            Exit::Failed(reason) => f.write_str(reason),
            Exit::Finished => f.write_str("finished"),
        }
    }
}

/// Told to the supervisor when a child's context is dropped.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ChildExited {
    pub kind: &'static str,
    pub key: ChildKey,
    /// Which start of the slot this was, so a late notice about an earlier run is ignored.
    pub generation: u64,
    pub exit: Exit,
}

/// Reports the child's end when dropped: with the actor on a stop, or with its task when
/// the actor panicked. Nothing else needs to remember to tell the supervisor.
struct ExitNotice {
    supervisor: Recipient<ChildExited>,
    kind: &'static str,
    key: ChildKey,
    generation: u64,
    exit: Mutex<Exit>,
}

impl Drop for ExitNotice {
    fn drop(&mut self) {
        let exit = std::mem::replace(self.exit.get_mut().unwrap_or_else(PoisonError::into_inner), Exit::Crashed);
        self.supervisor.do_send(ChildExited {
            kind: self.kind,
            key: std::mem::take(&mut self.key),
            generation: self.generation,
            exit,
        });
    }
}

/// The longest failure reason kept.
pub const MAX_ERROR_CHARS: usize = 200;

/// A failure reason as it is kept: one line, at most [`MAX_ERROR_CHARS`] characters.
fn error_summary(reason: &str) -> String {
    reason.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_ERROR_CHARS).collect()
}

/// What a child is given when it starts; it keeps it for its whole life.
pub struct ChildContext {
    pub firm: FirmId,
    pub kind: &'static str,
    pub key: ChildKey,
    /// For `Owned` children: the fencing token of this node's ownership of the firm. It
    /// grows with every change of owner, so a write guarded by it (`firm_ownership`
    /// still holding this token) can never come from a node that has lost the firm.
    pub fencing_token: Option<i64>,
    pub live: LiveContext,
    notice: Arc<ExitNotice>,
}

impl ChildContext {
    pub(super) fn new(
        firm: FirmId,
        kind: &'static str,
        key: ChildKey,
        fencing_token: Option<i64>,
        live: LiveContext,
        supervisor: Recipient<ChildExited>,
        generation: u64,
    ) -> Self {
        let notice =
            Arc::new(ExitNotice { supervisor, kind, key: key.clone(), generation, exit: Mutex::new(Exit::Crashed) });
        ChildContext { firm, kind, key, fencing_token, live, notice }
    }

    /// The span every line of this child is logged in.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!("child", firm_id = %self.firm, child_kind = self.kind, child_id = %self.key)
    }

    /// Records why the child is about to stop; the supervisor restarts it with backoff and
    /// shows the reason as its last error, in logs, `/metrics`-adjacent status and the
    /// platform's `consultantpro status`. Metadata only — which step failed and why (`IMAP
    /// authentication refused`), never content (addresses, subjects, bodies); it is cut to
    /// [`MAX_ERROR_CHARS`] characters.
    pub fn fail(&self, reason: impl Into<String>) {
        self.set_exit(Exit::Failed(error_summary(&reason.into())));
    }

    /// Records that the child's work is done: it stops and is not restarted.
    pub fn finish(&self) {
        self.set_exit(Exit::Finished);
    }

    fn set_exit(&self, exit: Exit) {
        *self.notice.exit.lock().unwrap_or_else(PoisonError::into_inner) = exit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_are_kept_to_one_short_line() {
        let long = format!("IMAP login refused\r\nby server\t{}", "x".repeat(500));
        let summary = error_summary(&long);
        assert_eq!(summary.chars().count(), MAX_ERROR_CHARS);
        assert!(summary.starts_with("IMAP login refused  by server x"), "{summary}");
        assert!(!summary.chars().any(char::is_control));
        assert_eq!(error_summary("short"), "short");
    }
}
