//! Foundation: the server's operational surface, the error format, tenancy enforced by
//! the database, the bus, pagination and the CLI, against real PostgreSQL and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/isolation.rs"]
mod isolation;

mod architecture;
mod audit_pages;
mod bus;
mod cli;
mod errors;
mod operations;
mod tenancy;
mod transactions;
mod web_app;
