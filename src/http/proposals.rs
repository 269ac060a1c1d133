//! Proposals: `/prospects/{id}/proposals`, `/proposals/{id}` and its transitions.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ctx::{Audit, FirmCtx};
use super::envelope;
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use crate::domain::permissions::Permission;
use crate::domain::proposals::{self, LineItemInput, Proposal, Transition};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProposalBody {
    pub title: String,
    /// ISO 4217; defaults to the prospect's currency.
    pub currency: Option<String>,
    pub line_items: Vec<LineItemInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviseProposalBody {
    pub title: Option<String>,
    /// Replaces the lines. A sent proposal gets a new draft version; its sent one stays.
    pub line_items: Vec<LineItemInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// `send` (draft to sent), `accept`, `decline` or `expire` (from sent).
    pub action: Transition,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A past version; default the current one.
    pub version: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalList {
    pub data: Vec<Proposal>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Drafts a proposal for a prospect; totals are computed by the server.
#[utoipa::path(
    post, path = "/api/v1/prospects/{id}/proposals", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Prospect id")),
    request_body = NewProposalBody,
    responses(
        (status = 201, description = "Drafted", body = Proposal),
        (status = 400, description = "Invalid lines (fields name the line)", body = ErrorBody),
        (status = 404, description = "No such prospect in this firm", body = ErrorBody),
    )
)]
pub async fn create_proposal(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<NewProposalBody>,
) -> Result<HttpResponse, ApiError> {
    let (prospect, body) = (path.into_inner(), body.into_inner());
    let audit = Audit::new("proposal.created").target_of("proposal", |p: &Proposal| p.id);
    let proposal = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            proposals::create(conn, firm, prospect, &body.title, body.currency.clone(), &body.line_items).await
        })
        .await?;
    Ok(envelope::created(proposal))
}

/// A prospect's proposals, newest first.
#[utoipa::path(
    get, path = "/api/v1/prospects/{id}/proposals", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Prospect id"), PageParams),
    responses(
        (status = 200, description = "A page of proposals", body = ProposalList),
        (status = 400, description = "Bad cursor", body = ErrorBody),
    )
)]
pub async fn list_proposals(
    ctx: FirmCtx,
    req: HttpRequest,
    path: web::Path<Uuid>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let (spec, prospect) = (page.spec()?, path.into_inner());
    let listed = ctx
        .page(Permission::ContentRead, async |conn, firm| proposals::list(conn, firm, Some(prospect), &spec).await)
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One proposal, at its current or a past version.
#[utoipa::path(
    get, path = "/api/v1/proposals/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Proposal id"), VersionQuery),
    responses(
        (status = 200, description = "The proposal", body = Proposal),
        (status = 404, description = "No such proposal or version in this firm", body = ErrorBody),
    )
)]
pub async fn get_proposal(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    query: web::Query<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, version) = (path.into_inner(), query.version);
    let proposal =
        ctx.tx(Permission::ContentRead, async |conn, firm| proposals::find(conn, firm, id, version).await).await?;
    Ok(envelope::ok(proposal))
}

/// Replaces the lines; a sent proposal's content stays frozen in its version.
#[utoipa::path(
    patch, path = "/api/v1/proposals/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Proposal id")),
    request_body = ReviseProposalBody,
    responses(
        (status = 200, description = "Revised", body = Proposal),
        (status = 400, description = "Invalid lines", body = ErrorBody),
        (status = 404, description = "No such proposal in this firm", body = ErrorBody),
        (status = 409, description = "Accepted, declined or expired", body = ErrorBody),
    )
)]
pub async fn revise_proposal(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<ReviseProposalBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, body) = (path.into_inner(), body.into_inner());
    let audit = Audit::new("proposal.revised").target("proposal", id);
    let proposal = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            proposals::revise(conn, firm, id, body.title.clone(), &body.line_items).await
        })
        .await?;
    Ok(envelope::ok(proposal))
}

/// Sends, accepts, declines or expires a proposal (allowed moves only).
#[utoipa::path(
    post, path = "/api/v1/proposals/{id}/transition", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Proposal id")),
    request_body = TransitionBody,
    responses(
        (status = 200, description = "Moved", body = Proposal),
        (status = 400, description = "Unknown action, or nothing to send", body = ErrorBody),
        (status = 404, description = "No such proposal in this firm", body = ErrorBody),
        (status = 409, description = "Not allowed from the current status", body = ErrorBody),
    )
)]
pub async fn transition_proposal(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<TransitionBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, action) = (path.into_inner(), body.action);
    let audit = Audit::new("proposal.transitioned")
        .target("proposal", id)
        .metadata(serde_json::json!({ "action": format!("{action:?}").to_lowercase() }));
    let proposal = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            proposals::transition(conn, firm, id, action).await
        })
        .await?;
    Ok(envelope::ok(proposal))
}
