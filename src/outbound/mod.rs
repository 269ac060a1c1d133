//! What goes out: the job runner that performs queued side effects, and outbound
//! webhooks (later SMTP and Twilio). Nothing here is fire-and-forget from memory: every
//! effect starts as a job row committed with the change that caused it.

pub mod guard;
pub mod runner;
pub mod stripe;
pub mod webhooks;
