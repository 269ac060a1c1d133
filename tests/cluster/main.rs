//! Firm supervisors across nodes: owned work runs on exactly one node, moves when that node
//! dies, is cut off or shuts down, restarts with growing delays, and spreads over nodes.
//! Two (or more) servers share the test database here, each with a pool of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
mod kinds;
mod ownership;
mod proxy;
mod sla;
