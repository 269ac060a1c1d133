//! The node's view of every child it runs: state, restarts and last error per firm, kind
//! and key. Supervisors write it on each change; `/metrics`, `consultantpro status` (via
//! the node's heartbeat) and tests read it. Changes are rare (a start, a crash), so one
//! lock is enough.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use super::child::ChildKey;
use crate::tenant::FirmId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Starting,
    Running,
    /// Ended unexpectedly or failed; starts again when its backoff delay has passed.
    Restarting,
    /// Asked to stop; gone once it has.
    Stopping,
}

impl ChildState {
    pub const ALL: [ChildState; 4] =
        [ChildState::Starting, ChildState::Running, ChildState::Restarting, ChildState::Stopping];

    pub fn as_str(self) -> &'static str {
        match self {
            ChildState::Starting => "starting",
            ChildState::Running => "running",
            ChildState::Restarting => "restarting",
            ChildState::Stopping => "stopping",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildStatus {
    /// Runs once per firm across nodes (on the owner), rather than on every node.
    pub owned: bool,
    pub state: ChildState,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// How long the latest restart waited (or, while `restarting`, will wait).
    pub restart_delay_ms: Option<u64>,
}

/// One row of a node's report: which child, and how it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildReport {
    pub firm_id: FirmId,
    pub kind: &'static str,
    pub key: ChildKey,
    #[serde(flatten)]
    pub status: ChildStatus,
}

#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<BoardInner>,
}

#[derive(Default)]
struct BoardInner {
    children: Mutex<BTreeMap<(FirmId, &'static str, ChildKey), ChildStatus>>,
    /// An owned child changed since the last heartbeat wrote the report.
    owned_changed: AtomicBool,
}

impl Board {
    pub fn set(&self, firm: FirmId, kind: &'static str, key: &ChildKey, status: ChildStatus) {
        let owned = status.owned;
        let mut children = self.inner.children.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = children.insert((firm, kind, key.clone()), status);
        if owned && previous.as_ref() != children.get(&(firm, kind, key.clone())) {
            self.inner.owned_changed.store(true, Ordering::Release);
        }
    }

    pub fn remove(&self, firm: FirmId, kind: &'static str, key: &ChildKey) {
        let removed =
            self.inner.children.lock().unwrap_or_else(PoisonError::into_inner).remove(&(firm, kind, key.clone()));
        if removed.is_some_and(|s| s.owned) {
            self.inner.owned_changed.store(true, Ordering::Release);
        }
    }

    /// Every child of one firm on this node.
    pub fn firm(&self, firm: FirmId) -> Vec<ChildReport> {
        let children = self.inner.children.lock().unwrap_or_else(PoisonError::into_inner);
        children
            .range((firm, "", String::new())..)
            .take_while(|((f, _, _), _)| *f == firm)
            .map(|((firm_id, kind, key), status)| ChildReport {
                firm_id: *firm_id,
                kind,
                key: key.clone(),
                status: status.clone(),
            })
            .collect()
    }

    /// The owned children, when any changed since the last call (for the heartbeat).
    pub fn owned_if_changed(&self) -> Option<Vec<ChildReport>> {
        if !self.inner.owned_changed.swap(false, Ordering::AcqRel) {
            return None;
        }
        let children = self.inner.children.lock().unwrap_or_else(PoisonError::into_inner);
        Some(
            children
                .iter()
                .filter(|(_, status)| status.owned)
                .map(|((firm_id, kind, key), status)| ChildReport {
                    firm_id: *firm_id,
                    kind,
                    key: key.clone(),
                    status: status.clone(),
                })
                .collect(),
        )
    }

    /// Marks the report as needing a rewrite (after the heartbeat failed to store it).
    pub fn mark_owned_changed(&self) {
        self.inner.owned_changed.store(true, Ordering::Release);
    }

    /// Children per kind and state, for `cp_children{kind,state}`.
    pub fn counts(&self) -> BTreeMap<(&'static str, ChildState), usize> {
        let children = self.inner.children.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counts = BTreeMap::new();
        for ((_, kind, _), status) in children.iter() {
            *counts.entry((*kind, status.state)).or_default() += 1;
        }
        counts
    }
}
