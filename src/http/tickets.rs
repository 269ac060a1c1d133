//! `/tickets`: support tickets and their activity. Members read them; owners, admins and
//! staff open and change them. Portal users have no access to tickets.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::FirmAuth;
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use super::{AppState, double_option, envelope};
use crate::bus::live;
use crate::domain::RequestMeta;
use crate::domain::audit::{self, Outcome};
use crate::domain::permissions::Permission;
use crate::domain::tickets::{
    self, NewTicket, Priority, Ticket, TicketChanges, TicketEvent, TicketFilter, TicketStatus,
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role may not write content", body = ErrorBody),
        (status = 409, description = "The conversation has a ticket that is not closed", body = ErrorBody),
    )
)]
pub async fn create_ticket(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: JsonObject<NewTicketBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (user, _) = auth.member()?;
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
    let firm = auth.firm;
    let event = auth.audit("ticket.created", Outcome::Success, &meta);
    let ticket = audit::audited_creation(
        state.db(),
        firm,
        event,
        "ticket",
        |t: &Ticket| t.id,
        |conn| async move { tickets::create(conn, firm, user, input).await }.scope_boxed(),
    )
    .await?;
    live::publish_event(state.bus(), firm, "ticket.created", serde_json::json!({ "ticket_id": ticket.id })).await;
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
    pub data: Vec<Ticket>,
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Members only", body = ErrorBody),
    )
)]
pub async fn list_tickets(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    query: web::Query<TicketQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
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
    let (firm, page_spec) = (auth.firm, spec.clone());
    let listed = state
        .db()
        .firm_tx(firm, |conn| async move { tickets::list(conn, firm, &filter, &page_spec).await }.scope_boxed())
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One ticket.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The ticket", body = Ticket),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Members only", body = ErrorBody),
        (status = 404, description = "No such ticket in this firm", body = ErrorBody),
    )
)]
pub async fn get_ticket(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let ticket =
        state.db().firm_tx(firm, |conn| async move { tickets::find(conn, firm, id).await }.scope_boxed()).await?;
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role may not write content", body = ErrorBody),
        (status = 404, description = "No such ticket in this firm", body = ErrorBody),
        (status = 409, description = "The ticket is closed", body = ErrorBody),
    )
)]
pub async fn update_ticket(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<TicketPatch>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (user, _) = auth.member()?;
    let body = body.into_inner();
    let changes = TicketChanges {
        subject: body.subject,
        status: body.status,
        priority: body.priority,
        assignee_user_id: body.assignee_user_id,
        team: body.team,
        tags: body.tags,
    };
    let (firm, id) = (auth.firm, path.into_inner());
    let event = auth.audit("ticket.updated", Outcome::Success, &meta).with_target("ticket", id);
    let ticket = audit::audited(state.db(), firm, event, |conn| {
        async move { tickets::update(conn, firm, user, id, changes).await }.scope_boxed()
    })
    .await?;
    let payload = serde_json::json!({ "ticket_id": ticket.id, "status": ticket.status, "priority": ticket.priority });
    live::publish_event(state.bus(), firm, "ticket.updated", payload).await;
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Members only", body = ErrorBody),
        (status = 404, description = "No such ticket in this firm", body = ErrorBody),
    )
)]
pub async fn ticket_activity(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let events =
        state.db().firm_tx(firm, |conn| async move { tickets::activity(conn, firm, id).await }.scope_boxed()).await?;
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Members only", body = ErrorBody),
        (status = 404, description = "No such ticket in this firm", body = ErrorBody),
    )
)]
pub async fn ticket_sla(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let now = chrono::Utc::now();
    let clocks = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let ticket = tickets::find(conn, firm, id).await?;
                crate::domain::sla::clocks(conn, firm, &ticket, now).await
            }
            .scope_boxed()
        })
        .await?;
    let meta = serde_json::json!({ "count": clocks.len(), "as_of": now });
    Ok(envelope::with_meta(clocks, meta))
}
