//! What comes in from outside: CSV imports now; IMAP fetch, MIME parsing and threading,
//! triage, and Twilio webhooks as they arrive. Each source lands here, maps to a firm, and
//! hands its work to the firm's actors or to `domain` inside that firm's transaction.

pub mod csv;
pub mod email;
pub mod twilio;
