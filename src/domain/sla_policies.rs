//! SLA policies (a tenant table): which tickets a policy covers and the targets it sets.
//! Policies are tried in order (`position`, then age); the first active one whose every
//! condition holds applies. A condition left empty holds for every ticket.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::conversations::Channel;
use super::tickets::{Priority, Ticket, TicketStatus};
use super::{DomainError, FieldErrors, FirmId, to_json};
use crate::db::schema::{business_calendars, contacts, conversations, sla_policies};

pub const MAX_POLICIES: i64 = 100;
/// The longest target: a year of minutes.
pub const MAX_TARGET_MINUTES: i32 = 525_600;

/// What a ticket must be for the policy to cover it; an empty list holds for any ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default)]
    pub priorities: Vec<Priority>,
    /// The channel of the ticket's conversation (a ticket without one matches none).
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// The requester's client.
    #[serde(default)]
    pub client_ids: Vec<Uuid>,
    /// Any of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
}

/// Targets in minutes of the policy's time (business or calendar); a missing one is not
/// tracked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub first_response_minutes: Option<i32>,
    /// After each customer message.
    pub next_response_minutes: Option<i32>,
    pub resolution_minutes: Option<i32>,
}

/// Targets per priority; a priority left out has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub low: Option<Target>,
    pub normal: Option<Target>,
    pub high: Option<Target>,
    pub urgent: Option<Target>,
}

impl Targets {
    pub fn for_priority(&self, priority: Priority) -> Option<&Target> {
        match priority {
            Priority::Low => self.low.as_ref(),
            Priority::Normal => self.normal.as_ref(),
            Priority::High => self.high.as_ref(),
            Priority::Urgent => self.urgent.as_ref(),
        }
    }

    fn all(&self) -> [(&'static str, Option<&Target>); 4] {
        [
            ("low", self.low.as_ref()),
            ("normal", self.normal.as_ref()),
            ("high", self.high.as_ref()),
            ("urgent", self.urgent.as_ref()),
        ]
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlaPolicy {
    pub id: Uuid,
    pub name: String,
    /// Policies are tried from the lowest position.
    pub position: i32,
    pub active: bool,
    pub conditions: Conditions,
    pub targets: Targets,
    /// Targets count this calendar's open time; null counts around the clock.
    pub business_calendar_id: Option<Uuid>,
    /// Statuses in which the clocks pause.
    #[schema(value_type = Vec<TicketStatus>)]
    pub pause_statuses: Vec<String>,
    /// A warning goes out when this share of a target has passed.
    pub warning_percent: i32,
    /// Whether reopening a solved ticket starts its resolution clock again (otherwise it
    /// goes on from where it stopped).
    pub restart_resolution_on_reopen: bool,
    /// Escalation notices (`sla.warning` and `sla.breached` webhooks) wait until this
    /// calendar is open; null sends them the moment the timer fires. The clocks and the
    /// ticket's events are not held.
    pub notice_calendar_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = sla_policies)]
struct Row {
    id: Uuid,
    name: String,
    position: i32,
    active: bool,
    conditions: serde_json::Value,
    targets: serde_json::Value,
    business_calendar_id: Option<Uuid>,
    pause_statuses: Vec<String>,
    warning_percent: i32,
    restart_resolution_on_reopen: bool,
    notice_calendar_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn policy(self) -> Result<SlaPolicy, DomainError> {
        let broken = |what: &str, e: serde_json::Error| DomainError::Internal(format!("stored {what} unreadable: {e}"));
        Ok(SlaPolicy {
            conditions: serde_json::from_value(self.conditions).map_err(|e| broken("conditions", e))?,
            targets: serde_json::from_value(self.targets).map_err(|e| broken("targets", e))?,
            id: self.id,
            name: self.name,
            position: self.position,
            active: self.active,
            business_calendar_id: self.business_calendar_id,
            pause_statuses: self.pause_statuses,
            warning_percent: self.warning_percent,
            restart_resolution_on_reopen: self.restart_resolution_on_reopen,
            notice_calendar_id: self.notice_calendar_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub name: Option<String>,
    pub position: Option<i32>,
    pub active: Option<bool>,
    pub conditions: Option<Conditions>,
    pub targets: Option<Targets>,
    pub business_calendar_id: Option<Option<Uuid>>,
    pub pause_statuses: Option<Vec<TicketStatus>>,
    pub warning_percent: Option<i32>,
    pub restart_resolution_on_reopen: Option<bool>,
    pub notice_calendar_id: Option<Option<Uuid>>,
}

impl PolicyInput {
    /// Whether applying it can change which policy covers a ticket, or how its clocks run
    /// (a name or a notice calendar changes neither).
    pub fn changes_rules(&self) -> bool {
        self.position.is_some()
            || self.active.is_some()
            || self.conditions.is_some()
            || self.targets.is_some()
            || self.business_calendar_id.is_some()
            || self.pause_statuses.is_some()
            || self.warning_percent.is_some()
            || self.restart_resolution_on_reopen.is_some()
    }
}

fn check(input: &mut PolicyInput, errors: &mut FieldErrors) {
    if let Some(name) = &input.name
        && (name.trim().is_empty() || name.chars().count() > 100)
    {
        errors.insert("name".into(), "must be 1 to 100 characters".into());
    }
    if input.position.is_some_and(|p| p < 0) {
        errors.insert("position".into(), "must not be negative".into());
    }
    if let Some(targets) = &input.targets {
        for (priority, target) in targets.all() {
            let Some(target) = target else { continue };
            for (name, minutes) in [
                ("first_response_minutes", target.first_response_minutes),
                ("next_response_minutes", target.next_response_minutes),
                ("resolution_minutes", target.resolution_minutes),
            ] {
                if minutes.is_some_and(|m| !(1..=MAX_TARGET_MINUTES).contains(&m)) {
                    errors.insert(format!("targets.{priority}.{name}"), format!("must be 1 to {MAX_TARGET_MINUTES}"));
                }
            }
        }
    }
    if let Some(statuses) = &input.pause_statuses
        && statuses.iter().any(|s| !matches!(s, TicketStatus::Pending | TicketStatus::OnHold))
    {
        errors.insert("pause_statuses".into(), "only pending and on_hold can pause the clocks".into());
    }
    if input.warning_percent.is_some_and(|w| !(1..=99).contains(&w)) {
        errors.insert("warning_percent".into(), "must be 1 to 99".into());
    }
    if let Some(conditions) = &mut input.conditions {
        conditions.tags = conditions.tags.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect();
        conditions.teams = conditions.teams.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        let sizes = [conditions.priorities.len(), conditions.channels.len(), conditions.client_ids.len()];
        if sizes.iter().chain([conditions.tags.len(), conditions.teams.len()].iter()).any(|n| *n > 100) {
            errors.insert("conditions".into(), "at most 100 values per condition".into());
        }
    }
}

async fn check_calendar(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    field: &str,
    calendar: Option<Uuid>,
) -> Result<(), DomainError> {
    let Some(calendar) = calendar else { return Ok(()) };
    let exists: bool = diesel::select(diesel::dsl::exists(
        business_calendars::table
            .filter(business_calendars::firm_id.eq(firm.into_uuid()))
            .filter(business_calendars::id.eq(calendar)),
    ))
    .get_result(conn)
    .await?;
    if exists { Ok(()) } else { Err(DomainError::invalid_field(field, "no such business calendar")) }
}

fn statuses(list: &[TicketStatus]) -> Vec<String> {
    list.iter().map(|s| s.as_str().to_owned()).collect()
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    mut input: PolicyInput,
) -> Result<SlaPolicy, DomainError> {
    let mut errors = FieldErrors::default();
    if input.name.is_none() {
        errors.insert("name".into(), "is required".into());
    }
    if input.targets.is_none() {
        errors.insert("targets".into(), "are required".into());
    }
    check(&mut input, &mut errors);
    DomainError::check(errors)?;
    check_calendar(conn, firm, "business_calendar_id", input.business_calendar_id.flatten()).await?;
    check_calendar(conn, firm, "notice_calendar_id", input.notice_calendar_id.flatten()).await?;
    let count: i64 =
        sla_policies::table.filter(sla_policies::firm_id.eq(firm.into_uuid())).count().get_result(conn).await?;
    if count >= MAX_POLICIES {
        return Err(DomainError::Conflict(format!("a firm has at most {MAX_POLICIES} SLA policies")));
    }
    let position = input.position.unwrap_or(i32::try_from(count).unwrap_or(0) * 10);
    let pause = input.pause_statuses.as_deref().map_or_else(|| vec!["pending".into(), "on_hold".into()], statuses);
    let row = diesel::insert_into(sla_policies::table)
        .values((
            sla_policies::firm_id.eq(firm.into_uuid()),
            sla_policies::id.eq(Uuid::now_v7()),
            sla_policies::name.eq(input.name.as_deref().unwrap_or_default().trim()),
            sla_policies::position.eq(position),
            sla_policies::active.eq(input.active.unwrap_or(true)),
            sla_policies::conditions.eq(to_json(&input.conditions.unwrap_or_default())?),
            sla_policies::targets.eq(to_json(&input.targets.unwrap_or_default())?),
            sla_policies::business_calendar_id.eq(input.business_calendar_id.flatten()),
            sla_policies::pause_statuses.eq(pause),
            sla_policies::warning_percent.eq(input.warning_percent.unwrap_or(75)),
            sla_policies::restart_resolution_on_reopen.eq(input.restart_resolution_on_reopen.unwrap_or(false)),
            sla_policies::notice_calendar_id.eq(input.notice_calendar_id.flatten()),
        ))
        .returning(Row::as_returning())
        .get_result(conn)
        .await?;
    row.policy()
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<SlaPolicy, DomainError> {
    sla_policies::table
        .filter(sla_policies::firm_id.eq(firm.into_uuid()))
        .filter(sla_policies::id.eq(id))
        .select(Row::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("SLA policy"))?
        .policy()
}

/// The firm's policies in the order they are tried.
pub async fn list(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<SlaPolicy>, DomainError> {
    sla_policies::table
        .filter(sla_policies::firm_id.eq(firm.into_uuid()))
        .order((sla_policies::position, sla_policies::created_at, sla_policies::id))
        .select(Row::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(Row::policy)
        .collect()
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    mut input: PolicyInput,
) -> Result<SlaPolicy, DomainError> {
    let mut errors = FieldErrors::default();
    check(&mut input, &mut errors);
    DomainError::check(errors)?;
    find(conn, firm, id).await?;
    if let Some(calendar) = input.business_calendar_id {
        check_calendar(conn, firm, "business_calendar_id", calendar).await?;
    }
    if let Some(calendar) = input.notice_calendar_id {
        check_calendar(conn, firm, "notice_calendar_id", calendar).await?;
    }
    let conditions = input.conditions.as_ref().map(to_json).transpose()?;
    let targets = input.targets.as_ref().map(to_json).transpose()?;
    diesel::update(sla_policies::table)
        .filter(sla_policies::firm_id.eq(firm.into_uuid()))
        .filter(sla_policies::id.eq(id))
        .set((
            input.name.as_deref().map(|n| sla_policies::name.eq(n.trim().to_owned())),
            input.position.map(|p| sla_policies::position.eq(p)),
            input.active.map(|a| sla_policies::active.eq(a)),
            conditions.map(|c| sla_policies::conditions.eq(c)),
            targets.map(|t| sla_policies::targets.eq(t)),
            input.business_calendar_id.map(|c| sla_policies::business_calendar_id.eq(c)),
            input.pause_statuses.as_deref().map(|p| sla_policies::pause_statuses.eq(statuses(p))),
            input.warning_percent.map(|w| sla_policies::warning_percent.eq(w)),
            input.restart_resolution_on_reopen.map(|r| sla_policies::restart_resolution_on_reopen.eq(r)),
            input.notice_calendar_id.map(|c| sla_policies::notice_calendar_id.eq(c)),
            sla_policies::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    find(conn, firm, id).await
}

pub async fn delete(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<SlaPolicy, DomainError> {
    let policy = find(conn, firm, id).await?;
    diesel::delete(sla_policies::table)
        .filter(sla_policies::firm_id.eq(firm.into_uuid()))
        .filter(sla_policies::id.eq(id))
        .execute(conn)
        .await?;
    Ok(policy)
}

/// Whether any policy counts in this calendar or holds its notices to it (it cannot be
/// deleted while one does).
pub async fn calendar_in_use(conn: &mut AsyncPgConnection, firm: FirmId, calendar: Uuid) -> Result<bool, DomainError> {
    Ok(diesel::select(diesel::dsl::exists(
        sla_policies::table
            .filter(sla_policies::firm_id.eq(firm.into_uuid()))
            .filter(sla_policies::business_calendar_id.eq(calendar).or(sla_policies::notice_calendar_id.eq(calendar))),
    ))
    .get_result(conn)
    .await?)
}

/// What a ticket is, as the conditions look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub priority: String,
    pub channel: Option<String>,
    pub client_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub team: Option<String>,
}

impl Conditions {
    pub fn hold_for(&self, facts: &TicketFacts) -> bool {
        let priority_ok = self.priorities.is_empty() || self.priorities.iter().any(|p| p.as_str() == facts.priority);
        let channel_ok = self.channels.is_empty()
            || facts.channel.as_deref().is_some_and(|c| self.channels.iter().any(|want| want.as_str() == c));
        let client_ok = self.client_ids.is_empty() || facts.client_id.is_some_and(|c| self.client_ids.contains(&c));
        let tags_ok = self.tags.is_empty() || facts.tags.iter().any(|t| self.tags.contains(t));
        let team_ok = self.teams.is_empty() || facts.team.as_ref().is_some_and(|t| self.teams.contains(t));
        priority_ok && channel_ok && client_ok && tags_ok && team_ok
    }
}

/// The facts of a ticket: its conversation's channel and its requester's client.
pub async fn facts(conn: &mut AsyncPgConnection, firm: FirmId, ticket: &Ticket) -> Result<TicketFacts, DomainError> {
    let channel = match ticket.conversation_id {
        Some(conversation) => conversations::table
            .filter(conversations::firm_id.eq(firm.into_uuid()))
            .filter(conversations::id.eq(conversation))
            .select(conversations::channel)
            .first::<String>(conn)
            .await
            .optional()?,
        None => None,
    };
    let client_id = match ticket.requester_contact_id {
        Some(contact) => contacts::table
            .filter(contacts::firm_id.eq(firm.into_uuid()))
            .filter(contacts::id.eq(contact))
            .select(contacts::client_id)
            .first::<Option<Uuid>>(conn)
            .await
            .optional()?
            .flatten(),
        None => None,
    };
    Ok(TicketFacts {
        priority: ticket.priority.clone(),
        channel,
        client_id,
        tags: ticket.tags.clone(),
        team: ticket.team.clone(),
    })
}

/// The policy that covers a ticket: the first active one, in order, whose conditions hold.
pub fn choose<'a>(policies: &'a [SlaPolicy], facts: &TicketFacts) -> Option<&'a SlaPolicy> {
    policies.iter().filter(|p| p.active).find(|p| p.conditions.hold_for(facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, active: bool, conditions: Conditions) -> SlaPolicy {
        SlaPolicy {
            id: Uuid::now_v7(),
            name: name.into(),
            position: 0,
            active,
            conditions,
            targets: Targets::default(),
            business_calendar_id: None,
            pause_statuses: vec![],
            warning_percent: 75,
            restart_resolution_on_reopen: false,
            notice_calendar_id: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn the_first_active_policy_whose_conditions_all_hold_applies() {
        let vip = Uuid::now_v7();
        let policies = vec![
            policy("switched off", false, Conditions::default()),
            policy(
                "urgent sms",
                true,
                Conditions { priorities: vec![Priority::Urgent], channels: vec![Channel::Sms], ..Default::default() },
            ),
            policy("vip", true, Conditions { client_ids: vec![vip], ..Default::default() }),
            policy(
                "billing team",
                true,
                Conditions { teams: vec!["Billing".into()], tags: vec!["vat".into()], ..Default::default() },
            ),
            policy("everything else", true, Conditions::default()),
        ];
        let facts = |priority: &str, channel: Option<&str>, client: Option<Uuid>, tags: &[&str], team: Option<&str>| {
            TicketFacts {
                priority: priority.into(),
                channel: channel.map(str::to_owned),
                client_id: client,
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                team: team.map(str::to_owned),
            }
        };
        let chosen = |f: TicketFacts| choose(&policies, &f).map(|p| p.name.clone());
        assert_eq!(chosen(facts("urgent", Some("sms"), Some(vip), &[], None)).as_deref(), Some("urgent sms"));
        assert_eq!(chosen(facts("urgent", Some("email"), Some(vip), &[], None)).as_deref(), Some("vip"));
        assert_eq!(chosen(facts("urgent", None, None, &["vat"], Some("Billing"))).as_deref(), Some("billing team"));
        assert_eq!(
            chosen(facts("low", None, None, &["vat"], None)).as_deref(),
            Some("everything else"),
            "a team was required"
        );
        assert_eq!(choose(&policies[..4], &facts("low", None, None, &[], None)).map(|p| p.name.as_str()), None);
    }
}
