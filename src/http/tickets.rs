//! `/tickets`: support tickets and their activity. Members read them; owners, admins and
//! staff open and change them. Portal users have no access to tickets.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ctx::{Audit, FirmCtx};
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use super::{double_option, envelope};
use crate::bus::live;
use crate::domain::permissions::Permission;
use crate::domain::tickets::{
    self, NewTicket, Priority, Ticket, TicketChanges, TicketEvent, TicketFilter, TicketStatus, TicketSummary,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicketBody {
    /// Required unless `conversation_id` is given (its subject is then the default).
    pub subject: Option<String>,
    /// Default `normal`.
    pub priority: Option<Priority>,
    pub assignee_user_id: Option<Uuid>,
    pub team: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Default: the conversation's first contact.
    pub requester_contact_id: Option<Uuid>,
    /// The conversation (any channel) the ticket comes from; one ticket that is not closed
    /// per conversation.
    pub conversation_id: Option<Uuid>,
}

/// Opens a ticket, over the API or from a conversation.
#[utoipa::path(
    post, path = "/api/v1/tickets", tag = "support", security(("bearer" = [])),
    request_body = NewTicketBody,
    responses(
        (status = 201, description = "Opened", body = Ticket),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "The conversation has a ticket that is not closed", body = ErrorBody),
    )
)]
pub async fn create_ticket(ctx: FirmCtx, body: JsonObject<NewTicketBody>) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let body = body.into_inner();
    let input = NewTicket {
        subject: body.subject,
        priority: body.priority,
        assignee_user_id: body.assignee_user_id,
        team: body.team,
        tags: body.tags,
        requester_contact_id: body.requester_contact_id,
        conversation_id: body.conversation_id,
    };
    let audit = Audit::new("ticket.created").target_of("ticket", |t: &Ticket| t.id);
    let ticket = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            tickets::create(conn, firm, user, input.clone()).await
        })
        .await?;
    let payload = serde_json::json!({ "ticket_id": ticket.id });
    live::publish_event(ctx.state().await?.bus(), ctx.firm(), "ticket.created", payload).await;
    Ok(envelope::created(ticket))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketQuery {
    pub status: Option<TicketStatus>,
    pub priority: Option<Priority>,
    pub assignee_user_id: Option<Uuid>,
    pub team: Option<String>,
    /// Tickets carrying this tag.
    pub tag: Option<String>,
    pub requester_contact_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TicketList {
    pub data: Vec<TicketSummary>,
    /// `count`, `limit`, `next`, `previous`.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Tickets, newest first, in stable pages.
#[utoipa::path(
    get, path = "/api/v1/tickets", tag = "support", security(("bearer" = [])),
    params(TicketQuery),
    responses(
        (status = 200, description = "A page of tickets", body = TicketList),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
    )
)]
pub async fn list_tickets(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<TicketQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let spec = PageParams { limit: query.limit, cursor: query.cursor.clone() }.spec()?;
    let filter = TicketFilter {
        status: query.status,
        priority: query.priority,
        assignee_user_id: query.assignee_user_id,
        team: query.team,
        tag: query.tag,
        requester_contact_id: query.requester_contact_id,
        conversation_id: query.conversation_id,
    };
    let (listed, summaries) = ctx
        .page(Permission::ContentRead, async |conn, firm| {
            let mut listed = tickets::list(conn, firm, &filter, &spec).await?;
            let summaries = tickets::with_sla_moments(conn, firm, std::mem::take(&mut listed.items)).await?;
            Ok((listed, summaries))
        })
        .await?;
    let mut meta = page_meta(&req, &listed, &spec);
    meta["count"] = summaries.len().into();
    Ok(envelope::with_meta(summaries, meta))
}

/// One ticket.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The ticket", body = Ticket),
        (status = 404, description = "No such ticket in this firm", body = ErrorBody),
    )
)]
pub async fn get_ticket(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let ticket = ctx.tx(Permission::ContentRead, async |conn, firm| tickets::find(conn, firm, id).await).await?;
    Ok(envelope::ok(ticket))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    pub subject: Option<String>,
    pub status: Option<TicketStatus>,
    pub priority: Option<Priority>,
    /// A member, or null to unassign.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_user_id: Option<Option<Uuid>>,
    /// A team's name, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub team: Option<Option<String>>,
    /// Replaces the tags.
    pub tags: Option<Vec<String>>,
}

/// Changes a ticket: only the fields given. Solving stamps `solved_at`; a closed ticket no
/// longer changes.
#[utoipa::path(
    patch, path = "/api/v1/tickets/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Ticket id")),
    request_body = TicketPatch,
    responses(
        (status = 200, description = "Changed", body = Ticket),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such ticket in this firm", body = ErrorBody),
        (status = 409, description = "The ticket is closed", body = ErrorBody),
    )
)]
pub async fn update_ticket(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<TicketPatch>,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let (id, body) = (path.into_inner(), body.into_inner());
    let changes = TicketChanges {
        subject: body.subject,
        status: body.status,
        priority: body.priority,
        assignee_user_id: body.assignee_user_id,
        team: body.team,
        tags: body.tags,
    };
    let audit = Audit::new("ticket.updated").target("ticket", id);
    let ticket = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            tickets::update(conn, firm, user, id, changes.clone()).await
        })
        .await?;
    let payload = serde_json::json!({ "ticket_id": ticket.id, "status": ticket.status, "priority": ticket.priority });
    live::publish_event(ctx.state().await?.bus(), ctx.firm(), "ticket.updated", payload).await;
    Ok(envelope::ok(ticket))
}

#[derive(Serialize, ToSchema)]
pub struct TicketActivity {
    pub data: Vec<TicketEvent>,
    /// `count`.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// A ticket's activity, oldest first: opening, changes, the customer's messages and the
/// agents' responses (metadata only).
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}/activity", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The timeline", body = TicketActivity),
        (status = 404, description = "No such ticket in this firm", body = ErrorBody),
    )
)]
pub async fn ticket_activity(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let events = ctx.tx(Permission::ContentRead, async |conn, firm| tickets::activity(conn, firm, id).await).await?;
    let meta = serde_json::json!({ "count": events.len() });
    Ok(envelope::with_meta(events, meta))
}

#[derive(Serialize, ToSchema)]
pub struct TicketClocks {
    pub data: Vec<crate::domain::sla::ClockView>,
    /// `count`, and `as_of`: the moment the figures are for.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// The ticket's SLA clocks now: per target, its state, due moment, open time counted and
/// time paused.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}/sla", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The clocks", body = TicketClocks),
        (status = 404, description = "No such ticket in this firm", body = ErrorBody),
    )
)]
pub async fn ticket_sla(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let now = chrono::Utc::now();
    let clocks = ctx
        .tx(Permission::ContentRead, async |conn, firm| {
            let ticket = tickets::find(conn, firm, id).await?;
            crate::domain::sla::clocks(conn, firm, &ticket, now).await
        })
        .await?;
    let meta = serde_json::json!({ "count": clocks.len(), "as_of": now });
    Ok(envelope::with_meta(clocks, meta))
}
