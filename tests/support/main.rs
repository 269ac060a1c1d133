//! Support: business calendars, tickets and SLA policies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;

mod calendars;
mod clocks;
mod policies;
mod tickets;
