//! Proposals: `/prospects/{id}/proposals`, `/proposals/{id}` and its transitions.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::FirmAuth;
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use super::{AppState, envelope};
use crate::domain::audit::{self, Outcome};
use crate::domain::permissions::Permission;
use crate::domain::proposals::{self, LineItemInput, Proposal, Transition};
use crate::domain::{DomainError, RequestMeta};

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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such prospect in this firm", body = ErrorBody),
    )
)]
pub async fn create_proposal(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<NewProposalBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, prospect) = (auth.firm, path.into_inner());
    let body = body.into_inner();
    let event = auth.audit("proposal.created", Outcome::Success, &meta);
    let proposal = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let proposal =
                    proposals::create(conn, firm, prospect, &body.title, body.currency, &body.line_items).await?;
                audit::record(conn, &event.with_target("proposal", proposal.id)).await?;
                Ok::<_, DomainError>(proposal)
            }
            .scope_boxed()
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
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn list_proposals(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    path: web::Path<Uuid>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let spec = page.spec()?;
    let (firm, prospect, page_spec) = (auth.firm, path.into_inner(), spec.clone());
    let listed = state
        .db()
        .firm_tx(firm, |conn| {
            async move { proposals::list(conn, firm, Some(prospect), &page_spec).await }.scope_boxed()
        })
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such proposal or version in this firm", body = ErrorBody),
    )
)]
pub async fn get_proposal(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
    query: web::Query<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let (firm, id, version) = (auth.firm, path.into_inner(), query.version);
    let proposal = state
        .db()
        .firm_tx(firm, |conn| async move { proposals::find(conn, firm, id, version).await }.scope_boxed())
        .await?;
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such proposal in this firm", body = ErrorBody),
        (status = 409, description = "Accepted, declined or expired", body = ErrorBody),
    )
)]
pub async fn revise_proposal(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<ReviseProposalBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let body = body.into_inner();
    let event = auth.audit("proposal.revised", Outcome::Success, &meta).with_target("proposal", id);
    let proposal = audit::audited(state.db(), firm, event, |conn| {
        async move { proposals::revise(conn, firm, id, body.title, &body.line_items).await }.scope_boxed()
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such proposal in this firm", body = ErrorBody),
        (status = 409, description = "Not allowed from the current status", body = ErrorBody),
    )
)]
pub async fn transition_proposal(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<TransitionBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id, action) = (auth.firm, path.into_inner(), body.action);
    let event = auth
        .audit("proposal.transitioned", Outcome::Success, &meta)
        .with_target("proposal", id)
        .with_metadata(serde_json::json!({ "action": format!("{action:?}").to_lowercase() }));
    let proposal = audit::audited(state.db(), firm, event, |conn| {
        async move { proposals::transition(conn, firm, id, action).await }.scope_boxed()
    })
    .await?;
    Ok(envelope::ok(proposal))
}
