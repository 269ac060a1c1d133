//! The SLA timers as the database keeps them. Every running clock has its due moment (and,
//! until given, its warning moment) stored with it (`domain::sla`); the firm's timer child
//! on the owning node holds those moments in memory only to know when to wake. What fires
//! is decided here, in the database, under the node's fencing token: a clock is breached or
//! warned once, whichever node, whatever restarts (`cp_sla_fire`).
//!
//! Edits of a policy or a calendar move due moments of tickets nobody touched: the time
//! counted so far is closed under the old rules in the edit's transaction and the moments
//! are cleared ([`rules_changed`]), and a job ([`RECOMPUTE_JOB`]) then walks the open
//! tickets and sets their clocks by the new rules ([`recompute_page`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::business_time::BusinessCalendar;
use super::sla::{self, METRICS, TicketChange};
use super::{DomainError, FirmId, business_calendars, cluster, jobs, sla_policies, tickets, webhooks};
use crate::db::schema::{jobs as jobs_table, sla_clocks, sla_policies as policies_table, tickets as tickets_table};

/// The child kind that keeps a firm's SLA timers, and the notices it listens to.
pub const TIMERS_KIND: &str = "sla_timers";
/// The one timer child of a firm.
pub const TIMERS_KEY: &str = "timers";
/// The job that sets open tickets' clocks by edited rules.
pub const RECOMPUTE_JOB: &str = "sla.recompute";
/// Attempts for an escalation notice's webhook delivery.
pub const NOTICE_ATTEMPTS: i32 = 8;
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
    pub fn event_type(self) -> super::webhooks::EventType {
        match self {
            Alarm::Warning => super::webhooks::EventType::SlaWarning,
            Alarm::Breach => super::webhooks::EventType::SlaBreached,
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

type PendingQuery<'a> = sla_clocks::BoxedQuery<
    'a,
    diesel::pg::Pg,
    (diesel::sql_types::Uuid, Text, Nullable<Timestamptz>, Nullable<Timestamptz>, Nullable<Timestamptz>),
>;

/// The firm's clocks that wait for a moment: running and not yet breached.
fn pending_clocks<'a>(firm: FirmId) -> PendingQuery<'a> {
    sla_clocks::table
        .filter(sla_clocks::firm_id.eq(firm.into_uuid()))
        .filter(sla_clocks::running_since.is_not_null())
        .filter(sla_clocks::breached_at.is_null())
        .select((
            sla_clocks::ticket_id,
            sla_clocks::metric,
            sla_clocks::warn_at,
            sla_clocks::warned_at,
            sla_clocks::due_at,
        ))
        .into_boxed()
}

/// Every pending timer of the firm, handed to `visit` as the rows stream in (one query;
/// the rows are never all in memory at once).
pub async fn each_pending(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    mut visit: impl FnMut(PendingTimer) + Send,
) -> Result<usize, DomainError> {
    use futures_util::TryStreamExt;
    let mut rows = pending_clocks(firm).load_stream::<PendingRow>(conn).await?;
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        for timer in pending_of(std::slice::from_ref(&row)) {
            visit(timer);
            count += 1;
        }
    }
    Ok(count)
}

/// The pending timers of some tickets (they changed).
pub async fn pending_for(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    tickets: &[Uuid],
) -> Result<Vec<PendingTimer>, DomainError> {
    let rows: Vec<PendingRow> = pending_clocks(firm).filter(sla_clocks::ticket_id.eq_any(tickets)).load(conn).await?;
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

/// Fires what is due by `now` (about `limit` breaches and `limit` warnings at most), while
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
) -> Result<Option<Vec<Fired>>, DomainError> {
    if !cluster::holds(conn, cluster_name, firm, fencing_token).await? {
        return Ok(None);
    }
    fire(conn, firm, None, now, limit).await.map(Some)
}

/// Fires what of one ticket's clocks is due by `now`, in the transaction of a change to the
/// ticket (whose row the caller has locked), before the change is applied: a reply that
/// lands after the due moment but before the timer still leaves the breach recorded, with
/// its event and notices. Any node may: the clock's guards keep it to once.
pub async fn fire_ticket(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    ticket: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Fired>, DomainError> {
    fire(conn, firm, Some(ticket), now, i32::try_from(METRICS.len()).unwrap_or(3)).await
}

async fn fire(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    ticket: Option<Uuid>,
    now: DateTime<Utc>,
    limit: i32,
) -> Result<Vec<Fired>, DomainError> {
    let fired: Vec<Fired> = crate::db::cached_query("SELECT * FROM cp_sla_fire($1, $2, $3, $4)")
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<Timestamptz, _>(now)
        .bind::<Integer, _>(limit)
        .bind::<Nullable<SqlUuid>, _>(ticket)
        .load(conn)
        .await?;
    // When each policy's notices may go out: now, or when its notice calendar next opens.
    let mut send_at: HashMap<Option<Uuid>, DateTime<Utc>> = HashMap::new();
    for fire in &fired {
        let at = match send_at.get(&fire.policy_id) {
            Some(at) => *at,
            None => {
                let opens = match fire.policy_id {
                    Some(policy) => notice_calendar(conn, firm, policy).await?.and_then(|c| c.next_open(now)),
                    None => None,
                };
                let at = opens.unwrap_or(now);
                send_at.insert(fire.policy_id, at);
                at
            }
        };
        webhooks::emit_at(conn, firm, fire.alarm().event_type(), fire.payload(now), NOTICE_ATTEMPTS, at).await?;
    }
    Ok(fired)
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

/// The calendar each of the firm's policies counts in, taken before an edit of the rules
/// so the time counted up to the edit is closed under them.
pub struct RulesBefore {
    calendars: HashMap<Uuid, BusinessCalendar>,
}

pub async fn rules_before(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<RulesBefore, DomainError> {
    let mut calendars = HashMap::new();
    let mut loaded: HashMap<Uuid, BusinessCalendar> = HashMap::new();
    for policy in sla_policies::list(conn, firm).await? {
        let calendar = match policy.business_calendar_id {
            Some(id) => match loaded.get(&id) {
                Some(calendar) => calendar.clone(),
                None => {
                    let calendar = business_calendars::find(conn, firm, id).await?.calendar()?;
                    loaded.insert(id, calendar.clone());
                    calendar
                }
            },
            None => BusinessCalendar::always(chrono_tz::UTC),
        };
        calendars.insert(policy.id, calendar);
    }
    Ok(RulesBefore { calendars })
}

/// After an edit of the rules (in its transaction): the running clocks of `policies` (all
/// when `None`) close the time counted up to `at` under the rules as they were, and wait
/// with no due moment until the recompute job sets them by the new rules — so no timer
/// fires by a moment the edit made wrong. The firm needs an owner for its timers from now.
pub async fn rules_changed(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    cluster_name: &str,
    at: DateTime<Utc>,
    before: &RulesBefore,
    policies: Option<&[Uuid]>,
) -> Result<(), DomainError> {
    sla::close_counted_time(conn, firm, &before.calendars, policies, at).await?;
    cluster::require_owner(conn, cluster_name, firm).await?;
    cluster::request_refresh(conn, cluster_name, firm).await?;
    // One queued recompute covers every edit made before it runs: it reads the rules then.
    let queued: bool = diesel::select(diesel::dsl::exists(
        jobs_table::table
            .filter(jobs_table::firm_id.eq(firm.into_uuid()))
            .filter(jobs_table::kind.eq(RECOMPUTE_JOB))
            .filter(jobs_table::state.eq("queued")),
    ))
    .get_result(conn)
    .await?;
    if !queued {
        jobs::enqueue(conn, firm, RECOMPUTE_JOB, serde_json::json!({ "edited_at": at }), 8).await?;
    }
    Ok(())
}

/// Runs `edit` of a business calendar and, when policies count in it, closes their
/// clocks' counted time under the calendar as it was ([`rules_changed`]).
pub async fn calendar_edit<T>(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    calendar: Uuid,
    cluster_name: &str,
    edit: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, DomainError>,
) -> Result<T, DomainError> {
    let counting: Vec<Uuid> = policies_table::table
        .filter(policies_table::firm_id.eq(firm.into_uuid()))
        .filter(policies_table::business_calendar_id.eq(calendar))
        .select(policies_table::id)
        .load(conn)
        .await?;
    if counting.is_empty() {
        return edit(conn).await;
    }
    let before = rules_before(conn, firm).await?;
    let edited = edit(conn).await?;
    rules_changed(conn, firm, cluster_name, Utc::now(), &before, Some(&counting)).await?;
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
