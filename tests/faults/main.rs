//! Faults, really caused: a node killed with SIGKILL under a subscribed socket, Redis
//! stopped while messages are posted, PostgreSQL stopped for ten seconds. Each scenario
//! takes the lock below: the PostgreSQL outage is the project's own server, so nothing
//! else in this binary may run meanwhile (cargo runs test binaries one at a time).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/ws.rs"]
#[allow(dead_code)]
mod ws;

mod nodes;
mod outages;
mod sockets;

/// One fault at a time.
pub static FAULTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
