//! A ticket's SLA clocks kept in step with the ticket, in the transaction that changes it:
//! the covering policy sets the targets (for the ticket's priority) and the calendar whose
//! open time counts; the ticket's events move the clocks (`domain::sla_clock` has the
//! rules of one clock).
//!
//! - Opening starts first response and resolution.
//! - An agent's response meets first response and the running next response; each
//!   customer message starts next response afresh.
//! - Entering a pause status of the policy pauses every clock; leaving it resumes them.
//! - Solving or closing meets resolution and stops the others; reopening carries the
//!   resolution clock on from where it stopped, or starts it again when the policy says so.
//! - A change of priority, tags, team or anything else that changes the covering policy or
//!   its targets applies the new targets to the time already counted.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::business_time::BusinessCalendar;
use super::sla_clock::{Clock, ClockState};
use super::sla_policies::{self, SlaPolicy, Target};
use super::tickets::{Priority, Ticket};
use super::{DomainError, FirmId, business_calendars};
use crate::db::schema::sla_clocks;

/// How a report is answered.
pub const REPORT_FORMATS: [&str; 2] = ["json", "csv"];

pub const METRICS: [&str; 3] = ["first_response", "next_response", "resolution"];

/// What happened to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketChange {
    Opened,
    /// The status moved (`from` and `to` are status names).
    Status {
        from: String,
        to: String,
    },
    /// Priority, tags, team or requester changed: the covering policy may have.
    Retarget,
    AgentResponse,
    CustomerMessage,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sla_clocks)]
struct Row {
    metric: String,
    policy_id: Option<Uuid>,
    target_seconds: i64,
    elapsed_seconds: i64,
    running_since: Option<DateTime<Utc>>,
    paused_seconds: i64,
    paused_since: Option<DateTime<Utc>>,
    state: String,
    breached_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    due_at: Option<DateTime<Utc>>,
    warn_at: Option<DateTime<Utc>>,
    warned_at: Option<DateTime<Utc>>,
    started_at: DateTime<Utc>,
}

impl Row {
    /// The moments the timers wait for: due, and warning until it is given.
    fn awaited(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let running = self.running_since.is_some() && self.breached_at.is_none();
        (self.due_at.filter(|_| running), self.warn_at.filter(|_| running && self.warned_at.is_none()))
    }
}

fn state_of(text: &str) -> ClockState {
    match text {
        "paused" => ClockState::Paused,
        "met" => ClockState::Met,
        "breached" => ClockState::Breached,
        "stopped" => ClockState::Stopped,
        _ => ClockState::Running,
    }
}

fn state_name(state: ClockState) -> &'static str {
    match state {
        ClockState::Running => "running",
        ClockState::Paused => "paused",
        ClockState::Met => "met",
        ClockState::Breached => "breached",
        ClockState::Stopped => "stopped",
    }
}

impl Row {
    fn clock(&self) -> Clock {
        Clock {
            target: Duration::seconds(self.target_seconds),
            elapsed: Duration::seconds(self.elapsed_seconds),
            running_since: self.running_since,
            paused: Duration::seconds(self.paused_seconds),
            paused_since: self.paused_since,
            state: state_of(&self.state),
            breached_at: self.breached_at,
            ended_at: self.ended_at,
        }
    }
}

fn target_of(target: Option<&Target>, metric: &str) -> Option<Duration> {
    let target = target?;
    let minutes = match metric {
        "first_response" => target.first_response_minutes,
        "next_response" => target.next_response_minutes,
        _ => target.resolution_minutes,
    }?;
    Some(Duration::minutes(i64::from(minutes)))
}

fn priority_of(ticket: &Ticket) -> Priority {
    match ticket.priority.as_str() {
        "low" => Priority::Low,
        "high" => Priority::High,
        "urgent" => Priority::Urgent,
        _ => Priority::Normal,
    }
}

/// The calendar a policy counts in (around the clock without one, or once it is gone).
async fn calendar_of(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    policy: Option<Uuid>,
) -> Result<BusinessCalendar, DomainError> {
    let around_the_clock = BusinessCalendar::always(chrono_tz::UTC);
    let Some(policy) = policy else { return Ok(around_the_clock) };
    let calendar = match sla_policies::find(conn, firm, policy).await {
        Ok(policy) => policy.business_calendar_id,
        Err(DomainError::NotFound(_)) => None,
        Err(other) => return Err(other),
    };
    match calendar {
        Some(id) => match business_calendars::find(conn, firm, id).await {
            Ok(calendar) => calendar.calendar(),
            Err(DomainError::NotFound(_)) => Ok(around_the_clock),
            Err(other) => Err(other),
        },
        None => Ok(around_the_clock),
    }
}

/// Whether the ticket still waits for what a metric measures.
fn awaiting(ticket: &Ticket, metric: &str) -> bool {
    if matches!(ticket.status.as_str(), "solved" | "closed") {
        return false;
    }
    match metric {
        "first_response" => ticket.first_response_at.is_none(),
        "next_response" => match (ticket.last_customer_message_at, ticket.last_agent_response_at) {
            (Some(customer), Some(agent)) => customer > agent,
            (Some(_), None) => true,
            _ => false,
        },
        _ => true,
    }
}

/// The covering policy and the calendar its targets count in.
async fn covering(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    ticket: &Ticket,
) -> Result<Option<(SlaPolicy, BusinessCalendar)>, DomainError> {
    let policies = sla_policies::list(conn, firm).await?;
    if policies.iter().all(|p| !p.active) {
        return Ok(None);
    }
    let facts = sla_policies::facts(conn, firm, ticket).await?;
    let Some(policy) = sla_policies::choose(&policies, &facts).cloned() else { return Ok(None) };
    let calendar = match policy.business_calendar_id {
        Some(id) => business_calendars::find(conn, firm, id).await?.calendar()?,
        None => BusinessCalendar::always(chrono_tz::UTC),
    };
    Ok(Some((policy, calendar)))
}

/// Moves the ticket's clocks for what happened, in the caller's transaction.
pub async fn on_ticket(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    ticket: &Ticket,
    change: TicketChange,
    at: DateTime<Utc>,
) -> Result<(), DomainError> {
    // What came due before this change is a breach (or warning) first, recorded as the
    // timer would have, even when the change lands before the timer does.
    super::sla_timers::fire_ticket(conn, firm, ticket.id, at).await?;
    let rows: Vec<Row> = sla_clocks::table
        .filter(sla_clocks::firm_id.eq(firm.into_uuid()))
        .filter(sla_clocks::ticket_id.eq(ticket.id))
        .select(Row::as_select())
        .for_update()
        .load(conn)
        .await?;
    // The calendar the clocks have been counting in, for the time up to now.
    let counted_in = calendar_of(conn, firm, rows.iter().find_map(|r| r.policy_id)).await?;
    let awaited_before: Vec<_> = rows.iter().map(|r| (r.metric.clone(), r.awaited())).collect();
    let Some((policy, calendar)) = covering(conn, firm, ticket).await? else {
        // No policy covers it (any more): whatever runs stops where it is; a policy that
        // covers it again starts afresh what the ticket still waits for.
        for row in &rows {
            let mut clock = row.clock();
            clock.stop(at, &counted_in);
            let times = Moments { started_at: row.started_at, due_at: None, warn_at: None, warned_at: row.warned_at };
            save(conn, firm, ticket.id, &row.metric, None, &clock, &times).await?;
        }
        if awaited_before.iter().any(|(_, (due, warn))| due.is_some() || warn.is_some()) {
            super::sla_timers::ticket_moved(conn, firm, ticket.id).await?;
        }
        return Ok(());
    };
    let targets = policy.targets.for_priority(priority_of(ticket));
    let paused_status = |status: &str| policy.pause_statuses.iter().any(|s| s == status);
    let mut clocks: Vec<Tracked> = rows
        .iter()
        .map(|r| Tracked {
            metric: r.metric.clone(),
            clock: r.clock(),
            started_at: r.started_at,
            warned_at: r.warned_at,
        })
        .collect();
    if rows.iter().any(|r| r.policy_id != Some(policy.id)) {
        // From here on the new policy's calendar counts; what ran so far stays as counted.
        for tracked in &mut clocks {
            tracked.clock.checkpoint(at, &counted_in);
        }
    }
    let start = |clocks: &mut Vec<Tracked>, metric: &str| {
        if let Some(target) = target_of(targets, metric) {
            clocks.retain(|t| t.metric != metric);
            clocks.push(Tracked {
                metric: metric.to_owned(),
                clock: Clock::start(target, at),
                started_at: at,
                warned_at: None,
            });
        }
    };
    match &change {
        TicketChange::Opened => {
            start(&mut clocks, "first_response");
            start(&mut clocks, "resolution");
        }
        TicketChange::AgentResponse => {
            for tracked in clocks.iter_mut().filter(|t| t.metric != "resolution") {
                tracked.clock.meet(at, &calendar);
            }
        }
        TicketChange::CustomerMessage => {
            // A follow-up before anyone answered leaves the running clock alone: the
            // first unanswered message is what the response is owed for.
            let waiting = clocks.iter().any(|t| t.metric == "next_response" && !t.clock.is_ended());
            if !matches!(ticket.status.as_str(), "solved" | "closed") && !waiting {
                start(&mut clocks, "next_response");
                if paused_status(&ticket.status)
                    && let Some(tracked) = clocks.iter_mut().find(|t| t.metric == "next_response")
                {
                    tracked.clock.pause(at, &calendar);
                }
            }
        }
        TicketChange::Status { from, to } => {
            let ending = matches!(to.as_str(), "solved" | "closed");
            let reopening = matches!(from.as_str(), "solved") && !ending;
            for tracked in &mut clocks {
                if ending {
                    if tracked.metric == "resolution" {
                        tracked.clock.meet(at, &calendar);
                    } else {
                        tracked.clock.stop(at, &calendar);
                    }
                } else if reopening && tracked.metric == "resolution" {
                    if policy.restart_resolution_on_reopen {
                        if let Some(target) = target_of(targets, "resolution") {
                            *tracked = Tracked {
                                metric: tracked.metric.clone(),
                                clock: Clock::start(target, at),
                                started_at: at,
                                warned_at: None,
                            };
                        }
                    } else {
                        tracked.clock.carry_on(at);
                    }
                }
                if !ending && !tracked.clock.is_ended() {
                    if paused_status(to) {
                        tracked.clock.pause(at, &calendar);
                    } else {
                        tracked.clock.resume(at);
                    }
                }
            }
        }
        TicketChange::Retarget => {
            for tracked in &mut clocks {
                match target_of(targets, &tracked.metric) {
                    Some(target) => tracked.clock.retarget(target),
                    None => tracked.clock.stop(at, &calendar),
                }
            }
            // Targets the new policy adds, or brings back, for what the ticket still waits for.
            for metric in METRICS {
                let stopped_or_missing =
                    clocks.iter().find(|t| t.metric == metric).is_none_or(|t| t.clock.state == ClockState::Stopped);
                if stopped_or_missing && awaiting(ticket, metric) {
                    start(&mut clocks, metric);
                }
            }
            for tracked in clocks.iter_mut().filter(|t| !t.clock.is_ended()) {
                if paused_status(&ticket.status) {
                    tracked.clock.pause(at, &calendar);
                } else {
                    tracked.clock.resume(at);
                }
            }
        }
    }
    let mut moved = false;
    for tracked in &clocks {
        let times = Moments {
            started_at: tracked.started_at,
            due_at: tracked.clock.due_at(&calendar),
            warn_at: tracked.clock.share_at(policy.warning_percent, &calendar),
            warned_at: tracked.warned_at,
        };
        let waiting = tracked.clock.running_since.is_some() && tracked.clock.breached_at.is_none();
        let awaited_now =
            (times.due_at.filter(|_| waiting), times.warn_at.filter(|_| waiting && tracked.warned_at.is_none()));
        let awaited_then = awaited_before.iter().find(|(m, _)| *m == tracked.metric).map(|(_, a)| *a);
        moved |= awaited_then.unwrap_or((None, None)) != awaited_now;
        save(conn, firm, ticket.id, &tracked.metric, Some(policy.id), &tracked.clock, &times).await?;
    }
    if moved {
        // The owner's timers re-read this ticket's moments once the change commits.
        super::sla_timers::ticket_moved(conn, firm, ticket.id).await?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct RunningClock {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    ticket_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    metric: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    policy_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    elapsed_seconds: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    running_since: DateTime<Utc>,
}

/// Counts the running clocks of `policies` (all when `None`) up to `at`, each in the
/// calendar its policy counted in (`calendars`, taken before an edit of the rules), runs
/// them on from `at`, and clears their due and warning moments until they are set by the
/// new rules. Their tickets are locked first, in id order, as every ticket change locks.
/// Three statements, however many clocks.
pub async fn close_counted_time(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    calendars: &std::collections::HashMap<Uuid, BusinessCalendar>,
    policies: Option<&[Uuid]>,
    at: DateTime<Utc>,
) -> Result<usize, DomainError> {
    use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    let policies: Option<Vec<Uuid>> = policies.map(<[Uuid]>::to_vec);
    let running = "FROM sla_clocks c WHERE c.firm_id = $1 AND c.running_since IS NOT NULL \
                   AND ($2::uuid[] IS NULL OR c.policy_id = ANY ($2))";
    diesel::sql_query(format!(
        "SELECT 1 FROM tickets t WHERE t.firm_id = $1 AND t.id IN (SELECT c.ticket_id {running}) \
          ORDER BY t.id FOR UPDATE"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Nullable<Array<SqlUuid>>, _>(policies.clone())
    .execute(conn)
    .await?;
    let clocks: Vec<RunningClock> = diesel::sql_query(format!(
        "SELECT c.ticket_id, c.metric, c.policy_id, c.elapsed_seconds, c.running_since {running}"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Nullable<Array<SqlUuid>>, _>(policies)
    .load(conn)
    .await?;
    let around_the_clock = BusinessCalendar::always(chrono_tz::UTC);
    let (mut tickets, mut metrics, mut elapsed) = (Vec::new(), Vec::new(), Vec::new());
    for clock in &clocks {
        let calendar = clock.policy_id.and_then(|p| calendars.get(&p)).unwrap_or(&around_the_clock);
        let counted = calendar.elapsed(clock.running_since, at).num_seconds().max(0);
        tickets.push(clock.ticket_id);
        metrics.push(clock.metric.clone());
        elapsed.push(clock.elapsed_seconds.saturating_add(counted));
    }
    crate::db::cached_query(
        "UPDATE sla_clocks c \
            SET elapsed_seconds = v.elapsed, running_since = GREATEST(c.running_since, $5), \
                due_at = NULL, warn_at = NULL, updated_at = now() \
           FROM unnest($2::uuid[], $3::text[], $4::bigint[]) AS v(ticket_id, metric, elapsed) \
          WHERE c.firm_id = $1 AND c.ticket_id = v.ticket_id AND c.metric = v.metric",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Array<SqlUuid>, _>(tickets)
    .bind::<Array<Text>, _>(metrics)
    .bind::<Array<BigInt>, _>(elapsed)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    Ok(clocks.len())
}

/// A clock of the ticket being moved.
struct Tracked {
    metric: String,
    clock: Clock,
    started_at: DateTime<Utc>,
    warned_at: Option<DateTime<Utc>>,
}

/// A clock's moments besides its value: when it started, and when its target and warning
/// share are reached if it keeps running (for the timers).
#[derive(Clone, Copy)]
struct Moments {
    started_at: DateTime<Utc>,
    due_at: Option<DateTime<Utc>>,
    warn_at: Option<DateTime<Utc>>,
    warned_at: Option<DateTime<Utc>>,
}

async fn save(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    ticket: Uuid,
    metric: &str,
    policy: Option<Uuid>,
    clock: &Clock,
    times: &Moments,
) -> Result<(), DomainError> {
    let Moments { started_at, due_at, warn_at, warned_at } = *times;
    let values = (
        sla_clocks::firm_id.eq(firm.into_uuid()),
        sla_clocks::ticket_id.eq(ticket),
        sla_clocks::metric.eq(metric),
        sla_clocks::policy_id.eq(policy),
        sla_clocks::target_seconds.eq(clock.target.num_seconds().max(1)),
        sla_clocks::elapsed_seconds.eq(clock.elapsed.num_seconds().max(0)),
        sla_clocks::running_since.eq(clock.running_since),
        sla_clocks::paused_seconds.eq(clock.paused.num_seconds().max(0)),
        sla_clocks::paused_since.eq(clock.paused_since),
        sla_clocks::state.eq(state_name(clock.state)),
        sla_clocks::breached_at.eq(clock.breached_at),
        sla_clocks::ended_at.eq(clock.ended_at),
        sla_clocks::due_at.eq(due_at),
        sla_clocks::warn_at.eq(warn_at),
        sla_clocks::warned_at.eq(warned_at),
        sla_clocks::started_at.eq(started_at),
        sla_clocks::updated_at.eq(Utc::now()),
    );
    diesel::insert_into(sla_clocks::table)
        .values(values)
        .on_conflict((sla_clocks::firm_id, sla_clocks::ticket_id, sla_clocks::metric))
        .do_update()
        .set(values)
        .execute(conn)
        .await?;
    Ok(())
}

/// A clock as the API shows it, at a moment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClockView {
    /// `first_response`, `next_response` or `resolution`.
    pub metric: String,
    /// `running`, `paused`, `met` or `breached` (a clock whose time is up, met late or not
    /// yet met), or `stopped`.
    #[schema(value_type = ClockState)]
    pub state: ClockState,
    pub target_seconds: i64,
    /// Open time counted so far.
    pub elapsed_seconds: i64,
    /// Calendar time spent paused.
    pub paused_seconds: i64,
    /// When the target is reached if the clock keeps running; null while paused or ended.
    pub due_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
}

/// The ticket's clocks as of `now` (a running clock past its target shows `breached`
/// even before the timer has recorded it).
pub async fn clocks(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    ticket: &Ticket,
    now: DateTime<Utc>,
) -> Result<Vec<ClockView>, DomainError> {
    let rows: Vec<Row> = sla_clocks::table
        .filter(sla_clocks::firm_id.eq(firm.into_uuid()))
        .filter(sla_clocks::ticket_id.eq(ticket.id))
        .select(Row::as_select())
        .load(conn)
        .await?;
    let calendar = match covering(conn, firm, ticket).await? {
        Some((_, calendar)) => calendar,
        None => BusinessCalendar::always(chrono_tz::UTC),
    };
    let mut views: Vec<ClockView> = rows
        .into_iter()
        .map(|row| {
            let clock = row.clock();
            let elapsed = clock.elapsed_at(now, &calendar);
            let late = clock.running_since.is_some() && elapsed >= clock.target;
            let state = if late && clock.state == ClockState::Running { ClockState::Breached } else { clock.state };
            let state =
                if state == ClockState::Met && clock.breached_at.is_some() { ClockState::Breached } else { state };
            ClockView {
                metric: row.metric,
                state,
                target_seconds: row.target_seconds,
                elapsed_seconds: elapsed.num_seconds(),
                paused_seconds: clock.paused_at(now).num_seconds(),
                due_at: row.due_at.filter(|_| clock.running_since.is_some()),
                breached_at: clock.breached_at,
                ended_at: clock.ended_at,
                started_at: row.started_at,
            }
        })
        .collect();
    views.sort_by_key(|v| METRICS.iter().position(|m| *m == v.metric));
    Ok(views)
}

/// How report rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportGroup {
    Policy,
    Team,
    Agent,
}

/// One group's figures for one metric, over the tickets opened in the period.
#[derive(Debug, Clone, Serialize, diesel::QueryableByName, utoipa::ToSchema)]
pub struct ReportRow {
    /// The policy id, team name or assignee's user id (null: none).
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub group: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub metric: String,
    /// Met within target.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub met: i64,
    /// Breached (met late, or past due when the timer recorded it).
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub breached: i64,
    /// Still running and already past due.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub overdue: i64,
    /// met / (met + breached), when there is any.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    pub met_rate: Option<f64>,
    /// Business seconds to meet the target (met clocks, late or not): percentiles.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    pub p50_seconds: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    pub p90_seconds: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    pub p99_seconds: Option<f64>,
}

/// Met, breached and overdue counts and time-to-target percentiles (in the policy's
/// business time) per group and metric, for the tickets opened in `[from, to)`.
pub async fn report(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    group: ReportGroup,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ReportRow>, DomainError> {
    let key = match group {
        ReportGroup::Policy => "c.policy_id::text",
        ReportGroup::Team => "t.team",
        ReportGroup::Agent => "t.assignee_user_id::text",
    };
    let sql = format!(
        "SELECT {key} AS \"group\", c.metric, \
                count(*) FILTER (WHERE c.state = 'met' AND c.breached_at IS NULL) AS met, \
                count(*) FILTER (WHERE c.breached_at IS NOT NULL) AS breached, \
                count(*) FILTER (WHERE c.running_since IS NOT NULL AND c.breached_at IS NULL AND c.due_at < now()) \
                  AS overdue, \
                (count(*) FILTER (WHERE c.state = 'met' AND c.breached_at IS NULL))::float8 \
                  / NULLIF(count(*) FILTER (WHERE c.state = 'met' OR c.breached_at IS NOT NULL), 0) AS met_rate, \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY c.elapsed_seconds) FILTER (WHERE c.state = 'met') \
                  AS p50_seconds, \
                percentile_cont(0.9) WITHIN GROUP (ORDER BY c.elapsed_seconds) FILTER (WHERE c.state = 'met') \
                  AS p90_seconds, \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY c.elapsed_seconds) FILTER (WHERE c.state = 'met') \
                  AS p99_seconds \
           FROM sla_clocks c JOIN tickets t ON t.firm_id = c.firm_id AND t.id = c.ticket_id \
          WHERE c.firm_id = $1 AND t.created_at >= $2 AND t.created_at < $3 \
          GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2"
    );
    Ok(diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid())
        .bind::<diesel::sql_types::Timestamptz, _>(from)
        .bind::<diesel::sql_types::Timestamptz, _>(to)
        .load::<ReportRow>(conn)
        .await?)
}
