//! The SLA timers as the database keeps them. Every running clock has its due moment (and,
//! until given, its warning moment) stored with it (`domain::sla`); the firm's timer child
//! on the owning node holds those moments in memory only to know when to wake. What fires
//! is decided here, in the database, under the node's fencing token: a clock is breached or
//! warned once, whichever node, whatever restarts (`cp_sla_fire`).
//!
//! Edits of a policy or a calendar move due moments of tickets nobody touched: the time
//! counted so far is closed under the old rules in the edit's transaction
//! ([`before_rules_change`]), and a job ([`RECOMPUTE_JOB`]) then walks the open tickets and
//! sets their clocks by the new rules ([`recompute_page`]).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedBoxFuture;
use serde::Serialize;
use uuid::Uuid;

use super::business_time::BusinessCalendar;
use super::sla::{self, METRICS, TicketChange};
use super::{DomainError, FirmId, business_calendars, cluster, jobs, tickets, webhooks};
use crate::db::schema::{sla_clocks, sla_policies as policies_table, tickets as tickets_table};

/// The child kind that keeps a firm's SLA timers, and the notices it listens to.
pub const TIMERS_KIND: &str = "sla_timers";
/// The one timer child of a firm.
pub const TIMERS_KEY: &str = "timers";
/// The job that sets open tickets' clocks by edited rules.
pub const RECOMPUTE_JOB: &str = "sla.recompute";
/// Tickets set per transaction by the recompute job.
pub const RECOMPUTE_PAGE: i64 = 200;

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Alarm {
    /// The policy's warning share of a target has passed.
    Warning,
    /// The target has passed.
    Breach,
}

impl Alarm {
    /// The webhook event type and socket topic.
    pub fn event_type(self) -> &'static str {
        match self {
            Alarm::Warning => "sla.warning",
            Alarm::Breach => "sla.breached",
        }
    }
}

/// How many metrics a ticket has clocks for.
pub fn metric_count() -> usize {
    METRICS.len()
}

/// A clock's metric as its index in [`METRICS`].
pub fn metric_index(metric: &str) -> Option<u8> {
    METRICS.iter().position(|m| *m == metric).and_then(|i| u8::try_from(i).ok())
}

/// One moment a running clock waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingTimer {
    pub ticket_id: Uuid,
    pub metric: u8,
    pub alarm: Alarm,
    pub at: DateTime<Utc>,
}

type PendingRow = (Uuid, String, Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn pending_of(rows: &[PendingRow]) -> Vec<PendingTimer> {
    let mut timers = Vec::with_capacity(rows.len() * 2);
    for (ticket_id, metric, warn_at, warned_at, due_at) in rows {
        let Some(metric) = metric_index(metric) else { continue };
        if warned_at.is_none()
            && let Some(at) = *warn_at
        {
            timers.push(PendingTimer { ticket_id: *ticket_id, metric, alarm: Alarm::Warning, at });
        }
        if let Some(at) = *due_at {
            timers.push(PendingTimer { ticket_id: *ticket_id, metric, alarm: Alarm::Breach, at });
        }
    }
    timers
}

/// A page of the firm's pending timers in clock order, after the clock `after`; with the
/// last clock of the page, to ask for the next (`None` once done).
pub async fn pending_page(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    after: Option<(Uuid, String)>,
    limit: i64,
) -> Result<(Vec<PendingTimer>, Option<(Uuid, String)>), DomainError> {
    let mut query = sla_clocks::table
        .filter(sla_clocks::firm_id.eq(firm.into_uuid()))
        .filter(sla_clocks::running_since.is_not_null())
        .filter(sla_clocks::breached_at.is_null())
        .order((sla_clocks::ticket_id, sla_clocks::metric))
        .select((
            sla_clocks::ticket_id,
            sla_clocks::metric,
            sla_clocks::warn_at,
            sla_clocks::warned_at,
            sla_clocks::due_at,
        ))
        .limit(limit)
        .into_boxed();
    if let Some((ticket, metric)) = after {
        query = query.filter(
            sla_clocks::ticket_id.gt(ticket).or(sla_clocks::ticket_id.eq(ticket).and(sla_clocks::metric.gt(metric))),
        );
    }
    let rows: Vec<PendingRow> = query.load(conn).await?;
    let next = if i64::try_from(rows.len()).unwrap_or(i64::MAX) < limit {
        None
    } else {
        rows.last().map(|(ticket, metric, ..)| (*ticket, metric.clone()))
    };
    Ok((pending_of(&rows), next))
}

/// The pending timers of some tickets (they changed).
pub async fn pending_for(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    tickets: &[Uuid],
) -> Result<Vec<PendingTimer>, DomainError> {
    let rows: Vec<PendingRow> = sla_clocks::table
        .filter(sla_clocks::firm_id.eq(firm.into_uuid()))
        .filter(sla_clocks::ticket_id.eq_any(tickets))
        .filter(sla_clocks::running_since.is_not_null())
        .filter(sla_clocks::breached_at.is_null())
        .select((
            sla_clocks::ticket_id,
            sla_clocks::metric,
            sla_clocks::warn_at,
            sla_clocks::warned_at,
            sla_clocks::due_at,
        ))
        .load(conn)
        .await?;
    Ok(pending_of(&rows))
}

/// Tells the firm's timers that a ticket's due moments moved (in the caller's transaction).
pub async fn ticket_moved(conn: &mut AsyncPgConnection, firm: FirmId, ticket: Uuid) -> Result<(), DomainError> {
    cluster::notify_children(conn, TIMERS_KIND, firm, &ticket.to_string()).await
}

/// Whether the firm needs a timer child: it has SLA policies, or clocks still running.
pub async fn firm_needs_timers(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<bool, DomainError> {
    let policies: bool =
        diesel::select(diesel::dsl::exists(policies_table::table.filter(policies_table::firm_id.eq(firm.into_uuid()))))
            .get_result(conn)
            .await?;
    if policies {
        return Ok(true);
    }
    Ok(diesel::select(diesel::dsl::exists(
        sla_clocks::table
            .filter(sla_clocks::firm_id.eq(firm.into_uuid()))
            .filter(sla_clocks::running_since.is_not_null())
            .filter(sla_clocks::breached_at.is_null()),
    ))
    .get_result(conn)
    .await?)
}

/// One timer that fired.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct Fired {
    /// `breached` or `warning`.
    #[diesel(sql_type = Text)]
    pub fired: String,
    #[diesel(sql_type = SqlUuid)]
    pub ticket_id: Uuid,
    #[diesel(sql_type = Text)]
    pub metric: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub due_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub policy_id: Option<Uuid>,
    #[diesel(sql_type = BigInt)]
    pub target_seconds: i64,
}

impl Fired {
    pub fn alarm(&self) -> Alarm {
        if self.fired == "breached" { Alarm::Breach } else { Alarm::Warning }
    }

    /// What sockets and webhooks are told: ids and moments, no ticket content.
    pub fn payload(&self, fired_at: DateTime<Utc>) -> serde_json::Value {
        serde_json::json!({
            "ticket_id": self.ticket_id,
            "metric": self.metric,
            "due_at": self.due_at,
            "target_seconds": self.target_seconds,
            "policy_id": self.policy_id,
            "fired_at": fired_at,
        })
    }
}

/// Fires what is due by `now` (at most `limit` breaches and `limit` warnings), while
/// `fencing_token` still holds the firm in `cluster`: the events, the ticket marks and the
/// webhook notices are written in this transaction. `None` when the token no longer holds
/// (another node owns the firm now, or is about to).
pub async fn fire_due(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    cluster_name: &str,
    fencing_token: i64,
    now: DateTime<Utc>,
    limit: i32,
    webhook_attempts: i32,
) -> Result<Option<Vec<Fired>>, DomainError> {
    if !cluster::holds(conn, cluster_name, firm, fencing_token).await? {
        return Ok(None);
    }
    let fired: Vec<Fired> = diesel::sql_query("SELECT * FROM cp_sla_fire($1, $2, $3)")
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<Timestamptz, _>(now)
        .bind::<Integer, _>(limit)
        .load(conn)
        .await?;
    let mut held: Vec<(Uuid, Option<BusinessCalendar>)> = Vec::new();
    for fire in &fired {
        let send_at = match fire.policy_id {
            Some(policy) => {
                let calendar = match held.iter().find(|(id, _)| *id == policy) {
                    Some((_, calendar)) => calendar.clone(),
                    None => {
                        let calendar = notice_calendar(conn, firm, policy).await?;
                        held.push((policy, calendar.clone()));
                        calendar
                    }
                };
                calendar.and_then(|c| c.next_open(now)).unwrap_or(now)
            }
            None => now,
        };
        webhooks::emit_at(conn, firm, fire.alarm().event_type(), fire.payload(now), webhook_attempts, send_at).await?;
    }
    Ok(Some(fired))
}

/// The calendar a policy holds its escalation notices to, if any.
async fn notice_calendar(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    policy: Uuid,
) -> Result<Option<BusinessCalendar>, DomainError> {
    let calendar: Option<Option<Uuid>> = policies_table::table
        .filter(policies_table::firm_id.eq(firm.into_uuid()))
        .filter(policies_table::id.eq(policy))
        .select(policies_table::notice_calendar_id)
        .first(conn)
        .await
        .optional()?;
    match calendar.flatten() {
        Some(id) => match business_calendars::find(conn, firm, id).await {
            Ok(found) => Ok(Some(found.calendar()?)),
            Err(DomainError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        },
        None => Ok(None),
    }
}

/// Closes the time counted so far under the current rules, for the running clocks of
/// `policies` (all when `None`): call it in an edit's transaction before the edit, so what
/// ran before it stays counted in the calendar it ran in.
pub async fn before_rules_change(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    policies: Option<&[Uuid]>,
    at: DateTime<Utc>,
) -> Result<usize, DomainError> {
    let mut query = sla_clocks::table
        .filter(sla_clocks::firm_id.eq(firm.into_uuid()))
        .filter(sla_clocks::running_since.is_not_null())
        .select((sla_clocks::ticket_id, sla_clocks::metric, sla_clocks::policy_id))
        .into_boxed();
    if let Some(policies) = policies {
        query = query.filter(sla_clocks::policy_id.eq_any(policies.to_vec()));
    }
    // Each ticket's clocks are locked as it is counted (`sla::checkpoint`).
    let running: Vec<(Uuid, String, Option<Uuid>)> = query.load(conn).await?;
    let mut tickets: Vec<Uuid> = running.iter().map(|(ticket, ..)| *ticket).collect();
    tickets.sort_unstable();
    tickets.dedup();
    for ticket in &tickets {
        sla::checkpoint(conn, firm, *ticket, at).await?;
    }
    Ok(tickets.len())
}

/// After an edit of policies or calendars: the firm needs an owner for its timers, and
/// the open tickets' clocks are set by the new rules by a job.
pub async fn after_rules_change(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    cluster_name: &str,
    at: DateTime<Utc>,
) -> Result<(), DomainError> {
    cluster::require_owner(conn, cluster_name, firm).await?;
    cluster::request_refresh(conn, cluster_name, firm).await?;
    jobs::enqueue(conn, firm, RECOMPUTE_JOB, serde_json::json!({ "as_of": at }), 8).await?;
    Ok(())
}

/// Runs `edit` of a business calendar between [`before_rules_change`] and
/// [`after_rules_change`] for the policies that count in it (just `edit` when none does).
pub async fn calendar_edit<'a, T, F>(
    conn: &'a mut AsyncPgConnection,
    firm: FirmId,
    calendar: Uuid,
    cluster_name: &str,
    edit: F,
) -> Result<T, DomainError>
where
    F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> ScopedBoxFuture<'a, 'c, Result<T, DomainError>> + Send + 'a,
    T: Send + 'a,
{
    let counting: Vec<Uuid> = policies_table::table
        .filter(policies_table::firm_id.eq(firm.into_uuid()))
        .filter(policies_table::business_calendar_id.eq(calendar))
        .select(policies_table::id)
        .load(conn)
        .await?;
    if counting.is_empty() {
        return edit(conn).await;
    }
    let now = Utc::now();
    before_rules_change(conn, firm, Some(&counting), now).await?;
    let edited = edit(conn).await?;
    after_rules_change(conn, firm, cluster_name, now).await?;
    Ok(edited)
}

/// Sets by the current rules the clocks of up to [`RECOMPUTE_PAGE`] tickets that are not
/// solved or closed, after ticket `after`; the last ticket set, when there may be more.
pub async fn recompute_page(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    after: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<Option<Uuid>, DomainError> {
    let mut query = tickets_table::table
        .filter(tickets_table::firm_id.eq(firm.into_uuid()))
        .filter(tickets_table::status.ne_all(vec!["solved", "closed"]))
        .order(tickets_table::id)
        .select(tickets_table::id)
        .limit(RECOMPUTE_PAGE)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(tickets_table::id.gt(after));
    }
    let ids: Vec<Uuid> = query.load(conn).await?;
    for id in &ids {
        let ticket = tickets::lock(conn, firm, *id).await?;
        if !matches!(ticket.status.as_str(), "solved" | "closed") {
            sla::on_ticket(conn, firm, &ticket, TicketChange::Retarget, at).await?;
        }
    }
    Ok(if i64::try_from(ids.len()).unwrap_or(i64::MAX) < RECOMPUTE_PAGE { None } else { ids.last().copied() })
}
