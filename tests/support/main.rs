//! Support: business calendars and tickets (SLA policies will join them here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;

mod calendars;
mod tickets;
