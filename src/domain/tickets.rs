//! Support tickets (tenant tables): what a client asked for and where it stands, with an
//! activity timeline. A ticket may be linked to the conversation it came from, of any
//! channel; messages there are the customer's or the agents' turns: a customer message
//! reopens a pending or solved ticket, an agent's reply counts as a response (the first one
//! is the ticket's first response) and moves a new ticket to open.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::pagination::{CreatedKey, Page, PageSpec, keyset_comparison, past_time_key};
use super::sla::TicketChange;
use super::{DomainError, FieldErrors, FirmId};
use crate::db::schema::{conversation_participants, conversations, memberships, sla_clocks, ticket_events, tickets};

pub const MAX_TAGS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    New,
    Open,
    Pending,
    OnHold,
    Solved,
    Closed,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::New => "new",
            TicketStatus::Open => "open",
            TicketStatus::Pending => "pending",
            TicketStatus::OnHold => "on_hold",
            TicketStatus::Solved => "solved",
            TicketStatus::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = tickets)]
pub struct Ticket {
    pub id: Uuid,
    pub subject: String,
    #[schema(value_type = TicketStatus)]
    pub status: String,
    #[schema(value_type = Priority)]
    pub priority: String,
    pub assignee_user_id: Option<Uuid>,
    pub team: Option<String>,
    pub tags: Vec<String>,
    /// The client's person who asked.
    pub requester_contact_id: Option<Uuid>,
    /// The conversation it came from; its messages are the ticket's turns.
    pub conversation_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub last_customer_message_at: Option<DateTime<Utc>>,
    pub last_agent_response_at: Option<DateTime<Utc>>,
    pub solved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When any of its SLA targets was first breached, as the timers recorded it.
    pub sla_breached_at: Option<DateTime<Utc>>,
}

/// A ticket as lists show it: with the next moments its running SLA clocks warn and come
/// due, so a list can count down without asking for each ticket's clocks.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketSummary {
    #[serde(flatten)]
    pub ticket: Ticket,
    /// The earliest warning moment among its running clocks; null when none runs.
    pub sla_next_warn_at: Option<DateTime<Utc>>,
    /// The earliest due moment among its running clocks; null when none runs (paused,
    /// met, breached, or no policy covers it).
    pub sla_next_due_at: Option<DateTime<Utc>>,
}

/// A ticket's next SLA warning and due moments.
type NextMoments = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The page's tickets with their next SLA moments: one statement for the whole page.
pub async fn with_sla_moments(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    page: Vec<Ticket>,
) -> Result<Vec<TicketSummary>, DomainError> {
    use diesel::dsl::min;
    let ids: Vec<Uuid> = page.iter().map(|t| t.id).collect();
    let moments: Vec<(Uuid, NextMoments)> = sla_clocks::table
        .filter(sla_clocks::firm_id.eq(firm.into_uuid()))
        .filter(sla_clocks::ticket_id.eq_any(&ids))
        .filter(sla_clocks::state.eq("running"))
        .group_by(sla_clocks::ticket_id)
        .select((sla_clocks::ticket_id, (min(sla_clocks::warn_at), min(sla_clocks::due_at))))
        .load(conn)
        .await?;
    let moments: std::collections::HashMap<Uuid, NextMoments> = moments.into_iter().collect();
    Ok(page
        .into_iter()
        .map(|ticket| {
            let (sla_next_warn_at, sla_next_due_at) = moments.get(&ticket.id).copied().unwrap_or((None, None));
            TicketSummary { ticket, sla_next_warn_at, sla_next_due_at }
        })
        .collect())
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = ticket_events)]
pub struct TicketEvent {
    pub id: Uuid,
    /// `created`, `changed`, `customer_message`, `agent_response`, `reopened`, or the SLA
    /// timers' `sla_warning` and `sla_breached` (detail: metric, due moment, target, policy).
    #[schema(value_type = super::value_sets::TicketEventKind)]
    pub kind: String,
    /// `user`, `contact` or `system`.
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    /// What changed (field names and values of status, priority, assignee, team, tags;
    /// never message bodies).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(Uuid),
    Contact(Uuid),
    System,
}

impl Actor {
    fn parts(self) -> (&'static str, Option<Uuid>) {
        match self {
            Actor::User(id) => ("user", Some(id)),
            Actor::Contact(id) => ("contact", Some(id)),
            Actor::System => ("system", None),
        }
    }
}

async fn record(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    ticket: Uuid,
    kind: &str,
    actor: Actor,
    detail: serde_json::Value,
) -> Result<(), DomainError> {
    let (actor_type, actor_id) = actor.parts();
    diesel::insert_into(ticket_events::table)
        .values((
            ticket_events::firm_id.eq(firm.into_uuid()),
            ticket_events::ticket_id.eq(ticket),
            ticket_events::id.eq(Uuid::now_v7()),
            ticket_events::kind.eq(kind),
            ticket_events::actor_type.eq(actor_type),
            ticket_events::actor_id.eq(actor_id),
            ticket_events::detail.eq(detail),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct NewTicket {
    pub subject: Option<String>,
    pub priority: Option<Priority>,
    pub assignee_user_id: Option<Uuid>,
    pub team: Option<String>,
    pub tags: Vec<String>,
    pub requester_contact_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
}

fn clean_tags(tags: &[String], errors: &mut FieldErrors) -> Vec<String> {
    let mut cleaned: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() || tag.chars().count() > 50 {
            errors.insert("tags".into(), "each tag is 1 to 50 characters".into());
        } else if !cleaned.contains(&tag) {
            cleaned.push(tag);
        }
    }
    if cleaned.len() > MAX_TAGS {
        errors.insert("tags".into(), format!("at most {MAX_TAGS} tags"));
    }
    cleaned
}

fn clean_team(team: Option<&str>, errors: &mut FieldErrors) -> Option<String> {
    let team = team.map(str::trim).filter(|t| !t.is_empty())?;
    if team.chars().count() > 100 {
        errors.insert("team".into(), "must be at most 100 characters".into());
    }
    Some(team.to_owned())
}

fn clean_subject(subject: &str, errors: &mut FieldErrors) -> String {
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > 300 {
        errors.insert("subject".into(), "must be 1 to 300 characters".into());
    }
    subject.to_owned()
}

async fn check_assignee(conn: &mut AsyncPgConnection, firm: FirmId, user: Uuid) -> Result<(), DomainError> {
    let active: bool = diesel::select(diesel::dsl::exists(
        memberships::table
            .filter(memberships::firm_id.eq(firm.into_uuid()))
            .filter(memberships::user_id.eq(user))
            .filter(memberships::status.eq("active"))
            .filter(memberships::contact_id.is_null()),
    ))
    .get_result(conn)
    .await?;
    if active { Ok(()) } else { Err(DomainError::invalid_field("assignee_user_id", "is not an active member")) }
}

/// The first contact taking part in a conversation.
async fn first_contact(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    conversation: Uuid,
) -> Result<Option<Uuid>, DomainError> {
    Ok(conversation_participants::table
        .filter(conversation_participants::firm_id.eq(firm.into_uuid()))
        .filter(conversation_participants::conversation_id.eq(conversation))
        .filter(conversation_participants::contact_id.is_not_null())
        .order((conversation_participants::added_at, conversation_participants::id))
        .select(conversation_participants::contact_id)
        .first::<Option<Uuid>>(conn)
        .await
        .optional()?
        .flatten())
}

/// Opens a ticket. From a conversation, the subject and requester default to the
/// conversation's subject and first contact; a conversation feeds one ticket that is not
/// closed at a time.
pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    by: Uuid,
    input: NewTicket,
) -> Result<Ticket, DomainError> {
    let mut errors = FieldErrors::default();
    let mut subject = input.subject.as_deref().map(|s| clean_subject(s, &mut errors));
    let tags = clean_tags(&input.tags, &mut errors);
    let team = clean_team(input.team.as_deref(), &mut errors);
    let mut requester = input.requester_contact_id;
    if let Some(conversation) = input.conversation_id {
        let found: Option<String> = conversations::table
            .filter(conversations::firm_id.eq(firm.into_uuid()))
            .filter(conversations::id.eq(conversation))
            .select(conversations::subject)
            .first(conn)
            .await
            .optional()?;
        match found {
            Some(conversation_subject) => {
                subject.get_or_insert(conversation_subject);
                if requester.is_none() {
                    requester = first_contact(conn, firm, conversation).await?;
                }
            }
            None => {
                errors.insert("conversation_id".into(), "no such conversation".into());
            }
        }
    }
    if subject.is_none() && !errors.contains_key("subject") {
        errors.insert("subject".into(), "is required (or give a conversation_id)".into());
    }
    DomainError::check(errors)?;
    if let Some(assignee) = input.assignee_user_id {
        check_assignee(conn, firm, assignee).await?;
    }
    if let Some(contact) = requester {
        super::contacts::find(conn, firm, contact)
            .await
            .map_err(DomainError::missing_as_invalid("requester_contact_id", "no such contact"))?;
    }
    let id = Uuid::now_v7();
    let ticket = diesel::insert_into(tickets::table)
        .values((
            tickets::firm_id.eq(firm.into_uuid()),
            tickets::id.eq(id),
            tickets::subject.eq(subject.unwrap_or_default()),
            tickets::priority.eq(input.priority.unwrap_or(Priority::Normal).as_str()),
            tickets::assignee_user_id.eq(input.assignee_user_id),
            tickets::team.eq(team),
            tickets::tags.eq(tags),
            tickets::requester_contact_id.eq(requester),
            tickets::conversation_id.eq(input.conversation_id),
            tickets::created_by.eq(by),
        ))
        .returning(Ticket::as_returning())
        .get_result(conn)
        .await
        .map_err(DomainError::conflict_on_unique("this conversation already has a ticket that is not closed"))?;
    record(conn, firm, id, "created", Actor::User(by), json!({ "priority": ticket.priority })).await?;
    super::sla::on_ticket(conn, firm, &ticket, TicketChange::Opened, ticket.created_at).await?;
    Ok(ticket)
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Ticket, DomainError> {
    tickets::table
        .filter(tickets::firm_id.eq(firm.into_uuid()))
        .filter(tickets::id.eq(id))
        .select(Ticket::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("ticket"))
}

#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<TicketStatus>,
    pub priority: Option<Priority>,
    pub assignee_user_id: Option<Uuid>,
    pub team: Option<String>,
    pub tag: Option<String>,
    pub requester_contact_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
}

/// Newest first, in stable keyset pages.
pub async fn list(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    filter: &TicketFilter,
    spec: &PageSpec<CreatedKey>,
) -> Result<Page<Ticket, CreatedKey>, DomainError> {
    let mut query =
        tickets::table.filter(tickets::firm_id.eq(firm.into_uuid())).select(Ticket::as_select()).into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(tickets::status.eq(status.as_str()));
    }
    if let Some(priority) = filter.priority {
        query = query.filter(tickets::priority.eq(priority.as_str()));
    }
    if let Some(assignee) = filter.assignee_user_id {
        query = query.filter(tickets::assignee_user_id.eq(assignee));
    }
    if let Some(team) = &filter.team {
        query = query.filter(tickets::team.eq(team.trim().to_owned()));
    }
    if let Some(tag) = &filter.tag {
        query = query.filter(tickets::tags.contains(vec![tag.trim().to_lowercase()]));
    }
    if let Some(requester) = filter.requester_contact_id {
        query = query.filter(tickets::requester_contact_id.eq(requester));
    }
    if let Some(conversation) = filter.conversation_id {
        query = query.filter(tickets::conversation_id.eq(conversation));
    }
    let mut ascending = false;
    if let Some((direction, key)) = &spec.position {
        let (op, fetch_ascending) = keyset_comparison(false, *direction);
        ascending = fetch_ascending;
        query = query.filter(past_time_key("tickets.created_at, tickets.id", op, key.at, key.id));
    }
    query = if ascending {
        query.order((tickets::created_at.asc(), tickets::id.asc()))
    } else {
        query.order((tickets::created_at.desc(), tickets::id.desc()))
    };
    let rows: Vec<Ticket> = query.limit(spec.fetch_limit()).load(conn).await?;
    Ok(Page::from_rows(rows, spec, |t: &Ticket| CreatedKey { at: t.created_at, id: t.id }))
}

#[derive(Debug, Clone, Default)]
pub struct TicketChanges {
    pub subject: Option<String>,
    pub status: Option<TicketStatus>,
    pub priority: Option<Priority>,
    pub assignee_user_id: Option<Option<Uuid>>,
    pub team: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
}

/// Changes the fields given and records what changed. A closed ticket no longer changes.
pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    by: Uuid,
    id: Uuid,
    changes: TicketChanges,
) -> Result<Ticket, DomainError> {
    let before = lock(conn, firm, id).await?;
    if before.status == TicketStatus::Closed.as_str() {
        return Err(DomainError::Conflict("a closed ticket no longer changes; open a new one".into()));
    }
    let mut errors = FieldErrors::default();
    let subject = changes.subject.as_deref().map(|s| clean_subject(s, &mut errors));
    let tags = changes.tags.as_deref().map(|t| clean_tags(t, &mut errors));
    let team = changes.team.as_ref().map(|t| clean_team(t.as_deref(), &mut errors));
    DomainError::check(errors)?;
    if let Some(Some(assignee)) = changes.assignee_user_id {
        check_assignee(conn, firm, assignee).await?;
    }
    let now = Utc::now();
    let status = changes.status.map(TicketStatus::as_str);
    let mut detail = serde_json::Map::new();
    let mut note = |field: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            detail.insert(field.into(), json!({ "from": from, "to": to }));
        }
    };
    if let Some(status) = status {
        note("status", json!(before.status), json!(status));
    }
    if let Some(priority) = changes.priority {
        note("priority", json!(before.priority), json!(priority.as_str()));
    }
    if let Some(assignee) = changes.assignee_user_id {
        note("assignee_user_id", json!(before.assignee_user_id), json!(assignee));
    }
    if let Some(team) = &team {
        note("team", json!(before.team), json!(team));
    }
    if let Some(tags) = &tags {
        note("tags", json!(before.tags), json!(tags));
    }
    if subject.as_ref().is_some_and(|s| *s != before.subject) {
        // The subject is content: the timeline says it changed, not to what.
        detail.insert("subject".into(), json!({ "changed": true }));
    }
    // Reopened (not closed) from solved: the solution no longer stands.
    let leaving_solved = status.is_some_and(|s| s != "solved" && s != "closed" && before.status == "solved");
    diesel::update(tickets::table)
        .filter(tickets::firm_id.eq(firm.into_uuid()))
        .filter(tickets::id.eq(id))
        .set((
            subject.map(|s| tickets::subject.eq(s)),
            status.map(|s| tickets::status.eq(s)),
            changes.priority.map(|p| tickets::priority.eq(p.as_str())),
            changes.assignee_user_id.map(|a| tickets::assignee_user_id.eq(a)),
            team.map(|t| tickets::team.eq(t)),
            tags.map(|t| tickets::tags.eq(t)),
            (status == Some("solved") && before.status != "solved").then(|| tickets::solved_at.eq(Some(now))),
            leaving_solved.then(|| tickets::solved_at.eq(None::<DateTime<Utc>>)),
            (status == Some("closed")).then(|| tickets::closed_at.eq(Some(now))),
            tickets::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map_err(DomainError::conflict_on_unique("this conversation already has a ticket that is not closed"))?;
    let retarget = ["priority", "tags", "team"].iter().any(|field| detail.contains_key(*field));
    let status_change = detail.contains_key("status");
    if !detail.is_empty() {
        record(conn, firm, id, "changed", Actor::User(by), serde_json::Value::Object(detail)).await?;
    }
    let after = find(conn, firm, id).await?;
    if status_change {
        let change = TicketChange::Status { from: before.status.clone(), to: after.status.clone() };
        super::sla::on_ticket(conn, firm, &after, change, now).await?;
    }
    if retarget {
        super::sla::on_ticket(conn, firm, &after, TicketChange::Retarget, now).await?;
    }
    Ok(after)
}

/// The ticket, locked for the rest of the transaction.
pub async fn lock(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Ticket, DomainError> {
    tickets::table
        .filter(tickets::firm_id.eq(firm.into_uuid()))
        .filter(tickets::id.eq(id))
        .select(Ticket::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("ticket"))
}

/// The ticket's activity, oldest first.
pub async fn activity(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Vec<TicketEvent>, DomainError> {
    find(conn, firm, id).await?;
    Ok(ticket_events::table
        .filter(ticket_events::firm_id.eq(firm.into_uuid()))
        .filter(ticket_events::ticket_id.eq(id))
        .order((ticket_events::at, ticket_events::id))
        .select(TicketEvent::as_select())
        .limit(1000)
        .load(conn)
        .await?)
}

/// Who wrote a message in a ticket's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// A member of the firm answering.
    Agent(Uuid),
    /// The client's side: a portal user, an SMS or an email from a contact.
    Customer(Option<Uuid>),
}

/// A message was stored in `conversation`: the ticket it feeds (one that is not closed)
/// takes the turn. Returns the ticket when one changed.
pub async fn on_message(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    conversation: Uuid,
    turn: Turn,
    at: DateTime<Utc>,
) -> Result<Option<Ticket>, DomainError> {
    let Some(ticket) = tickets::table
        .filter(tickets::firm_id.eq(firm.into_uuid()))
        .filter(tickets::conversation_id.eq(conversation))
        .filter(tickets::status.ne("closed"))
        .select(Ticket::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let after = match turn {
        Turn::Customer(contact) => {
            let reopen = ticket.status == "pending" || ticket.status == "solved";
            let after: Ticket = diesel::update(tickets::table)
                .filter(tickets::firm_id.eq(firm.into_uuid()))
                .filter(tickets::id.eq(ticket.id))
                .set((
                    tickets::last_customer_message_at.eq(Some(at)),
                    reopen.then(|| tickets::status.eq("open")),
                    reopen.then(|| tickets::solved_at.eq(None::<DateTime<Utc>>)),
                    tickets::updated_at.eq(at),
                ))
                .returning(Ticket::as_returning())
                .get_result(conn)
                .await?;
            let actor = contact.map_or(Actor::System, Actor::Contact);
            record(conn, firm, ticket.id, "customer_message", actor, json!({})).await?;
            if reopen {
                record(conn, firm, ticket.id, "reopened", actor, json!({ "from": ticket.status, "to": "open" }))
                    .await?;
                let change = TicketChange::Status { from: ticket.status.clone(), to: "open".into() };
                super::sla::on_ticket(conn, firm, &after, change, at).await?;
            }
            super::sla::on_ticket(conn, firm, &after, TicketChange::CustomerMessage, at).await?;
            after
        }
        Turn::Agent(user) => {
            let first = ticket.first_response_at.is_none();
            let after: Ticket = diesel::update(tickets::table)
                .filter(tickets::firm_id.eq(firm.into_uuid()))
                .filter(tickets::id.eq(ticket.id))
                .set((
                    tickets::last_agent_response_at.eq(Some(at)),
                    first.then(|| tickets::first_response_at.eq(Some(at))),
                    (ticket.status == "new").then(|| tickets::status.eq("open")),
                    tickets::updated_at.eq(at),
                ))
                .returning(Ticket::as_returning())
                .get_result(conn)
                .await?;
            record(conn, firm, ticket.id, "agent_response", Actor::User(user), json!({ "first": first })).await?;
            super::sla::on_ticket(conn, firm, &after, TicketChange::AgentResponse, at).await?;
            if ticket.status == "new" {
                let change = TicketChange::Status { from: "new".into(), to: "open".into() };
                super::sla::on_ticket(conn, firm, &after, change, at).await?;
            }
            after
        }
    };
    Ok(Some(after))
}
