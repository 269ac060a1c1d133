//! CRM: clients and contacts over REST, strict about input, isolated between firms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;

mod clients;
mod contacts;
mod csv_files;
mod pipeline;
mod proposals;
