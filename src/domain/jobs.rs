//! The durable job queue (a tenant table). Side effects that must not be lost or repeated
//! (webhooks now; email, SMS, SLA work later) are enqueued in the same transaction as the
//! change that causes them, so a rolled-back change sends nothing.
//!
//! Workers on every node claim due jobs with `FOR UPDATE SKIP LOCKED` under a lease
//! (`cp_claim_jobs`), run them, and record the outcome only while they still hold the
//! lease. A worker that dies leaves its lease to expire; the job is then claimed again, so
//! delivery is at least once, and each job carries its id as an idempotency key.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pagination::{Direction, Page, PageSpec, past_time_key};
use super::{DomainError, FirmId};
use crate::db::schema::jobs;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = jobs)]
pub struct Job {
    #[serde(skip)]
    #[schema(ignore)]
    pub firm_id: Uuid,
    pub id: Uuid,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[schema(value_type = super::value_sets::JobState)]
    pub state: String,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub lease_owner: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    pub fn firm(&self) -> FirmId {
        FirmId(self.firm_id)
    }
}

/// Adds a job inside the caller's transaction; it runs only if that transaction commits.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    kind: &str,
    payload: serde_json::Value,
    max_attempts: i32,
) -> Result<Uuid, DomainError> {
    enqueue_at(conn, firm, kind, payload, max_attempts, Utc::now()).await
}

/// As [`enqueue`], to run no earlier than `run_at` (paced sends).
pub async fn enqueue_at(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    kind: &str,
    payload: serde_json::Value,
    max_attempts: i32,
    run_at: DateTime<Utc>,
) -> Result<Uuid, DomainError> {
    let id = Uuid::now_v7();
    diesel::insert_into(jobs::table)
        .values((
            jobs::firm_id.eq(firm.into_uuid()),
            jobs::id.eq(id),
            jobs::kind.eq(kind),
            jobs::payload.eq(payload),
            jobs::max_attempts.eq(max_attempts.clamp(1, 100)),
            jobs::run_at.eq(run_at),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    firm_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Leases up to `batch` due jobs to `worker`, across firms or of `only_firm`. Ids only: the
/// job itself is read inside its firm's transaction.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    worker: &str,
    lease_secs: i32,
    batch: i32,
    only_firm: Option<FirmId>,
) -> Result<Vec<(FirmId, Uuid)>, DomainError> {
    let claimed = crate::db::cached_query("SELECT firm_id, id FROM cp_claim_jobs($1, $2, $3, $4)")
        .bind::<Text, _>(worker)
        .bind::<Integer, _>(lease_secs)
        .bind::<Integer, _>(batch)
        .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(only_firm.map(FirmId::into_uuid))
        .load::<Claimed>(conn)
        .await?;
    Ok(claimed.into_iter().map(|c| (FirmId(c.firm_id), c.id)).collect())
}

/// The job, if `worker` still holds its lease.
pub async fn leased(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    worker: &str,
) -> Result<Option<Job>, DomainError> {
    Ok(jobs::table
        .filter(jobs::firm_id.eq(firm.into_uuid()))
        .filter(jobs::id.eq(id))
        .filter(jobs::state.eq("running"))
        .filter(jobs::lease_owner.eq(worker))
        .select(Job::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Marks a leased job done. False when the lease was lost (another worker took over).
pub async fn succeed(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid, worker: &str) -> Result<bool, DomainError> {
    let now = Utc::now();
    let changed = diesel::update(jobs::table)
        .filter(jobs::firm_id.eq(firm.into_uuid()))
        .filter(jobs::id.eq(id))
        .filter(jobs::state.eq("running"))
        .filter(jobs::lease_owner.eq(worker))
        .set((
            jobs::state.eq("succeeded"),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
            jobs::last_error.eq(None::<String>),
            jobs::updated_at.eq(now),
            jobs::finished_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(changed == 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    Retrying {
        at: DateTime<Utc>,
    },
    Dead,
    /// The lease was lost; whoever holds it now decides.
    LeaseLost,
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, times a random factor
/// in [0.5, 1.5) so failed jobs of one outage do not all return at once.
pub fn backoff(attempt: i32, base: Duration, cap: Duration) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(0);
    let raw_ms = base.num_milliseconds().saturating_mul(1_i64 << exponent.min(30));
    let capped = raw_ms.min(cap.num_milliseconds()).max(1);
    let factor: f64 = rand::rng().random_range(0.5..1.5);
    // Milliseconds stay far below 2^52, so the float round trip is exact enough.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    Duration::milliseconds((capped as f64 * factor) as i64)
}

/// Records a failed attempt: back to the queue after a backoff, or to the dead-letter
/// queue once `max_attempts` are used up, with the error kept either way.
pub async fn fail(
    conn: &mut AsyncPgConnection,
    job: &Job,
    worker: &str,
    error: &str,
    permanent: bool,
    base: Duration,
    cap: Duration,
) -> Result<AfterFailure, DomainError> {
    let now = Utc::now();
    let error: String = error.chars().take(2000).collect();
    let dead = permanent || job.attempts >= job.max_attempts;
    let retry_at = now + backoff(job.attempts, base, cap);
    let changed = diesel::update(jobs::table)
        .filter(jobs::firm_id.eq(job.firm_id))
        .filter(jobs::id.eq(job.id))
        .filter(jobs::state.eq("running"))
        .filter(jobs::lease_owner.eq(worker))
        .set((
            jobs::state.eq(if dead { "dead" } else { "queued" }),
            jobs::run_at.eq(if dead { job.run_at } else { retry_at }),
            jobs::last_error.eq(Some(error)),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
            jobs::updated_at.eq(now),
            jobs::finished_at.eq(dead.then_some(now)),
        ))
        .execute(conn)
        .await?;
    Ok(match (changed, dead) {
        (0, _) => AfterFailure::LeaseLost,
        (_, true) => AfterFailure::Dead,
        (_, false) => AfterFailure::Retrying { at: retry_at },
    })
}

/// Puts a leased job back in the queue to run after `wait`, without counting the attempt
/// and keeping its last error (a waiting job has not failed). False when the lease was lost.
pub async fn defer(conn: &mut AsyncPgConnection, job: &Job, worker: &str, wait: Duration) -> Result<bool, DomainError> {
    let changed = diesel::update(jobs::table)
        .filter(jobs::firm_id.eq(job.firm_id))
        .filter(jobs::id.eq(job.id))
        .filter(jobs::state.eq("running"))
        .filter(jobs::lease_owner.eq(worker))
        .set((
            jobs::state.eq("queued"),
            jobs::run_at.eq(Utc::now() + wait),
            jobs::attempts.eq((job.attempts - 1).max(0)),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
            jobs::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(changed == 1)
}

/// Sort key of job lists (newest change first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JobKey {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// The firm's dead-letter queue, most recently failed first.
pub async fn list_dead(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    spec: &PageSpec<JobKey>,
) -> Result<Page<Job, JobKey>, DomainError> {
    let keyset = |op: &'static str, key: JobKey| past_time_key("updated_at, id", op, key.at, key.id);
    let mut query = jobs::table
        .filter(jobs::firm_id.eq(firm.into_uuid()))
        .filter(jobs::state.eq("dead"))
        .select(Job::as_select())
        .into_boxed();
    query = match spec.position {
        Some((Direction::Forward, key)) => {
            query.filter(keyset("<", key)).order((jobs::updated_at.desc(), jobs::id.desc()))
        }
        Some((Direction::Backward, key)) => {
            query.filter(keyset(">", key)).order((jobs::updated_at.asc(), jobs::id.asc()))
        }
        None => query.order((jobs::updated_at.desc(), jobs::id.desc())),
    };
    let rows = query.limit(spec.fetch_limit()).load(conn).await?;
    Ok(Page::from_rows(rows, spec, |j: &Job| JobKey { at: j.updated_at, id: j.id }))
}

/// Puts a dead job back in the queue with a fresh set of attempts.
pub async fn retry_dead(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Job, DomainError> {
    let job: Job = jobs::table
        .filter(jobs::firm_id.eq(firm.into_uuid()))
        .filter(jobs::id.eq(id))
        .select(Job::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("job"))?;
    if job.state != "dead" {
        return Err(DomainError::Conflict(format!("only a dead job can be retried; this one is {}", job.state)));
    }
    Ok(diesel::update(jobs::table)
        .filter(jobs::firm_id.eq(firm.into_uuid()))
        .filter(jobs::id.eq(id))
        .set((
            jobs::state.eq("queued"),
            jobs::attempts.eq(0),
            jobs::run_at.eq(Utc::now()),
            jobs::finished_at.eq(None::<DateTime<Utc>>),
            jobs::updated_at.eq(Utc::now()),
        ))
        .returning(Job::as_returning())
        .get_result(conn)
        .await?)
}

#[derive(QueryableByName)]
struct StateCount {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    jobs: i64,
}

/// Jobs per state across firms (numbers only), for metrics.
pub async fn counts(conn: &mut AsyncPgConnection) -> Result<Vec<(String, i64)>, DomainError> {
    Ok(crate::db::cached_query("SELECT state, jobs FROM cp_job_counts()")
        .load::<StateCount>(conn)
        .await?
        .into_iter()
        .map(|c| (c.state, c.jobs))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let base = Duration::seconds(2);
        let cap = Duration::minutes(60);
        for _ in 0..100 {
            let first = backoff(1, base, cap).num_milliseconds();
            assert!((1_000..3_000).contains(&first), "{first}");
            let fifth = backoff(5, base, cap).num_milliseconds();
            assert!((16_000..48_000).contains(&fifth), "{fifth}");
            let late = backoff(40, base, cap).num_milliseconds();
            assert!(late < 5_400_000, "{late}");
        }
    }
}
