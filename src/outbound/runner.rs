//! The job runner: one per node, sharing the queue with every other node's. It claims due
//! jobs in batches (leased, `SKIP LOCKED`), runs them concurrently up to a limit, and
//! records each outcome only while it still holds the job's lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use scoped_futures::ScopedFutureExt;
use tokio::sync::Semaphore;
use uuid::Uuid;

pub use super::job::{JobContext, JobOutcome};
use crate::domain::jobs::{self, AfterFailure, Job};
use crate::domain::{DomainError, FirmId};

#[derive(Clone)]
pub struct JobRunner {
    ctx: JobContext,
    worker_id: String,
    permits: Arc<Semaphore>,
    /// Serve one firm only (a dedicated worker); `None` serves every firm.
    only_firm: Option<FirmId>,
}

impl JobRunner {
    pub fn new(ctx: JobContext, worker_id: impl Into<String>) -> Self {
        let permits = Arc::new(Semaphore::new(ctx.settings.jobs.concurrency.max(1)));
        Self { ctx, worker_id: worker_id.into(), permits, only_firm: None }
    }

    /// Restricts this runner to one firm's jobs.
    pub fn only_firm(mut self, firm: FirmId) -> Self {
        self.only_firm = Some(firm);
        self
    }

    /// A worker id unique to this process.
    pub fn process_worker_id() -> String {
        format!("node-{}-{}", std::process::id(), Uuid::now_v7().simple())
    }

    /// Claims one batch and runs it to the end; returns how many jobs were claimed.
    pub async fn run_once(&self) -> Result<usize, DomainError> {
        let jobs_settings = &self.ctx.settings.jobs;
        let lease = i32::try_from(jobs_settings.lease_secs).unwrap_or(60);
        let batch = i32::try_from(jobs_settings.batch_size.max(1)).unwrap_or(20);
        let (worker, only_firm) = (self.worker_id.clone(), self.only_firm);
        let claimed = self
            .ctx
            .db
            .platform_tx(|conn| async move { jobs::claim(conn, &worker, lease, batch, only_firm).await }.scope_boxed())
            .await?;
        let count = claimed.len();
        let mut running = Vec::with_capacity(count);
        for (firm, id) in claimed {
            let permit = Arc::clone(&self.permits).acquire_owned().await;
            let runner = self.clone();
            running.push(tokio::spawn(async move {
                let _permit = permit;
                runner.process(firm, id).await;
            }));
        }
        for task in running {
            let _ = task.await;
        }
        Ok(count)
    }

    /// Runs until the process ends. A full batch is followed at once by the next; an
    /// empty one waits the poll interval.
    pub async fn run(self) {
        let idle = Duration::from_millis(self.ctx.settings.jobs.poll_interval_ms.max(10));
        let batch = usize::try_from(self.ctx.settings.jobs.batch_size).unwrap_or(20);
        loop {
            match self.run_once().await {
                Ok(n) if n >= batch => continue,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "claiming jobs failed"),
            }
            tokio::time::sleep(idle).await;
        }
    }

    async fn process(&self, firm: FirmId, id: Uuid) {
        let worker = self.worker_id.clone();
        let leased = self
            .ctx
            .db
            .firm_tx(firm, |conn| async move { jobs::leased(conn, firm, id, &worker).await }.scope_boxed())
            .await;
        let job = match leased {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, job = %id, "reading a claimed job failed; its lease will expire");
                return;
            }
        };
        let started = Instant::now();
        let outcome = match super::job_handler(&job.kind) {
            Some(handler) => handler(&self.ctx, &job).await,
            None => JobOutcome::Fail(format!("no handler for job kind `{}`", job.kind)),
        };
        let label = match &outcome {
            JobOutcome::Done => "done",
            JobOutcome::Retry(_) => "retry",
            JobOutcome::Fail(_) => "failed",
            JobOutcome::Defer(_) => "deferred",
        };
        metrics::counter!("jobs_processed_total", "kind" => job.kind.clone(), "outcome" => label).increment(1);
        metrics::histogram!("job_duration_seconds", "kind" => job.kind.clone()).record(started.elapsed().as_secs_f64());
        if let Err(err) = self.finish(&job, outcome).await {
            tracing::warn!(error = %err, job = %id, "recording a job outcome failed; its lease will expire");
        }
    }

    async fn finish(&self, job: &Job, outcome: JobOutcome) -> Result<(), DomainError> {
        let worker = self.worker_id.clone();
        let settings = &self.ctx.settings.jobs;
        let base = ChronoDuration::milliseconds(i64::try_from(settings.backoff_base_ms).unwrap_or(2000));
        let cap = ChronoDuration::seconds(i64::try_from(settings.backoff_max_secs).unwrap_or(3600));
        let firm = job.firm();
        let after = self
            .ctx
            .db
            .firm_tx(firm, |conn| {
                async move {
                    match outcome {
                        JobOutcome::Done => {
                            jobs::succeed(conn, firm, job.id, &worker).await?;
                            Ok(None)
                        }
                        JobOutcome::Retry(error) => {
                            jobs::fail(conn, job, &worker, &error, false, base, cap).await.map(Some)
                        }
                        JobOutcome::Fail(error) => {
                            jobs::fail(conn, job, &worker, &error, true, base, cap).await.map(Some)
                        }
                        JobOutcome::Defer(wait) => {
                            let wait = ChronoDuration::from_std(wait).unwrap_or(ChronoDuration::seconds(1));
                            jobs::defer(conn, job, &worker, wait).await?;
                            Ok(None)
                        }
                    }
                }
                .scope_boxed()
            })
            .await?;
        match after {
            Some(AfterFailure::Dead) => {
                tracing::warn!(job = %job.id, kind = %job.kind, "job moved to the dead-letter queue")
            }
            Some(AfterFailure::Retrying { at }) => tracing::debug!(job = %job.id, %at, "job will be retried"),
            Some(AfterFailure::LeaseLost) => {
                tracing::warn!(job = %job.id, "lease lost before the outcome was recorded")
            }
            None => {}
        }
        Ok(())
    }
}
