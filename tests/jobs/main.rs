//! Durable jobs and signed webhooks: retries, the dead-letter queue, leases, transactions,
//! SSRF refusals and firm isolation, against the real database and a local receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/receiver.rs"]
mod receiver;

mod queue;
mod webhooks;
