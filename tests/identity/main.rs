//! Identity and access: log-in, tokens, MFA, members and roles, throttling, audit,
//! operators and break-glass, against the real server and database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;

mod access;
mod break_glass;
mod invitations;
mod login;
mod members;
mod mfa;
mod passwords;
mod read_only;
mod tokens;
