//! What every job handler shares: the context it runs with and the outcome it reports.
//! The runner and the handlers both depend on this module and not on each other.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::guard::OutboundPolicy;
use crate::bus::Bus;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::jobs::Job;

/// What a job handler reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    /// Worth another attempt later (receiver down, timeout, 5xx).
    Retry(String),
    /// Will never work (malformed job, refused address): straight to the dead-letter queue.
    Fail(String),
    /// Not yet: something must happen first (an earlier message of the same conversation
    /// must go out). Runs again after this long; the attempt is not counted.
    Defer(Duration),
}

/// What handlers may use.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    pub bus: Bus,
    pub settings: Arc<Settings>,
    pub policy: OutboundPolicy,
    pub http: reqwest::Client,
}

impl JobContext {
    pub fn new(db: Db, bus: Bus, settings: Arc<Settings>) -> Result<Self, reqwest::Error> {
        let policy = OutboundPolicy::new(&settings.webhooks.allow_private_hosts);
        let http = policy.client(Duration::from_secs(settings.webhooks.timeout_secs.max(1)))?;
        Ok(Self { db, bus, settings, policy, http })
    }

    pub fn max_attempts(&self) -> i32 {
        i32::try_from(self.settings.jobs.max_attempts).unwrap_or(8)
    }
}

/// Performs one job of a kind; registered by kind in [`super::job_handler`].
pub type JobHandler = for<'a> fn(&'a JobContext, &'a Job) -> BoxFuture<'a, JobOutcome>;
