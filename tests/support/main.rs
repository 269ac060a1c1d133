//! Support: business calendars, tickets and SLA policies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/receiver.rs"]
mod receiver;
#[path = "../common/ws.rs"]
#[allow(dead_code)]
mod ws;

mod calendars;
mod clocks;
mod policies;
mod tickets;
mod timers;
