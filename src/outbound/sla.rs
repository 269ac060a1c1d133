//! The job that sets open tickets' SLA clocks by edited rules (a policy or calendar
//! changed). Not a message going out, but durable work all the same: queued with the edit,
//! retried until done, run by whichever node's runner claims it.

use chrono::Utc;
use scoped_futures::ScopedFutureExt;

use super::job::{JobContext, JobOutcome};
use crate::domain::jobs::Job;
use crate::domain::sla_timers;

/// Walks the firm's open tickets a page per transaction. Setting a ticket by the rules it
/// is already set by changes nothing, so a retry from the start is safe.
pub async fn recompute(ctx: &JobContext, job: &Job) -> JobOutcome {
    let firm = job.firm();
    let mut after = None;
    loop {
        let page = ctx
            .db
            .firm_tx(firm, |conn| {
                async move { sla_timers::recompute_page(conn, firm, after, Utc::now()).await }.scope_boxed()
            })
            .await;
        match page {
            Ok(Some(last)) => after = Some(last),
            Ok(None) => return JobOutcome::Done,
            Err(err) => return JobOutcome::Retry(format!("setting clocks by the new rules: {err}")),
        }
    }
}
