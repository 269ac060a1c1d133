//! Live work: the per-firm supervisors and their children (the conversation hub, later
//! mailboxes, SMS, calendar and SLA timers), the cluster loop that decides which node owns
//! which firm's once-only work, and the WebSocket sessions that hang off the hubs.
//!
//! This layer stands on its own: it uses `db`, `domain`, `bus` and `error`, never `http`.
//! HTTP holds a [`LiveContext`] and hands it to what it starts here.

pub mod board;
pub mod child;
pub mod cluster;
pub mod hub;
pub mod mailbox;
pub mod registry;
pub mod session;
pub mod sla_timers;
pub mod supervisor;

use std::sync::Arc;

pub use child::{ChildContext, ChildHandle, ChildKey, ChildKind, Placement, SpawnedChild, StopChild, spawn_child};
pub use registry::FirmRegistry;

use crate::bus::Bus;
use crate::config::Settings;
use diesel_async::AsyncPgConnection;
use scoped_futures::ScopedBoxFuture;

use crate::db::{Db, DbError};
use crate::tenant::FirmId;

/// What the live layer runs on: the database, the bus, the settings and the node's
/// registry of firm supervisors. Cheap to clone.
#[derive(Clone)]
pub struct LiveContext {
    db: Db,
    bus: Bus,
    settings: Arc<Settings>,
    registry: FirmRegistry,
}

impl LiveContext {
    /// Application-role pool; tenant data only through `firm_tx`.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The same context on another pool (an HTTP worker's own).
    pub fn with_db(&self, db: Db) -> LiveContext {
        LiveContext { db, ..self.clone() }
    }

    /// Pub/sub between sessions and nodes.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn shared_settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }

    /// The node's firm supervisors.
    pub fn registry(&self) -> &FirmRegistry {
        &self.registry
    }

    /// A transaction one of the firm's sockets asks for (subscribing, history, read
    /// positions, sending): `firm_tx`, run when the firm has a turn
    /// (`FirmRegistry::socket_db_turn`), which it holds for the transaction only.
    pub async fn socket_tx<'a, R, E, F>(&self, firm: FirmId, f: F) -> Result<R, E>
    where
        F: for<'r> FnOnce(&'r mut AsyncPgConnection) -> ScopedBoxFuture<'a, 'r, Result<R, E>> + Send + 'a,
        E: From<DbError> + From<diesel::result::Error> + Send + 'a,
        R: Send + 'a,
    {
        let _turn = self.registry.socket_db_turn(firm).await;
        self.db.firm_tx(firm, f).await
    }
}

/// The child kinds every node runs. Channels (mailboxes, SMS, SLA timers, calendars) add
/// theirs here; tests add their own through [`crate::ApplicationBuilder::child_kind`].
pub fn default_kinds() -> Vec<Arc<dyn ChildKind>> {
    vec![Arc::new(hub::ConversationHubKind), Arc::new(sla_timers::SlaTimersKind), Arc::new(mailbox::MailboxKind)]
}
