//! The firm id, below both `db` (which scopes transactions by it) and `domain` (which
//! takes it everywhere), so neither has to import the other for it.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A firm's id. A newtype because handing one firm's id where another's belongs is the
/// one mistake this system must never make quietly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct FirmId(pub Uuid);

impl FirmId {
    pub fn into_uuid(self) -> Uuid {
        self.0
    }
}

impl fmt::Display for FirmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
