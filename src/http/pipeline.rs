//! `/leads` and `/prospects`, and lead conversion.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::FirmAuth;
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use super::{AppState, double_option, envelope};
use crate::domain::audit::{self, Outcome};
use crate::domain::permissions::Permission;
use crate::domain::pipeline::{
    self, Conversion, ConvertOptions, CreatedSort, Lead, LeadFilter, LeadInput, Prospect, ProspectFilter, ProspectInput,
};
use crate::domain::{DomainError, RequestMeta, webhooks};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadBody {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub source: Option<Option<String>>,
    /// `new`, `contacted`, `qualified` or `disqualified` (`converted` comes from converting).
    #[schema(value_type = Option<super::openapi::LeadStatus>)]
    pub status: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub company: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// Integer minor units (cents); never negative.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub estimated_value_minor: Option<Option<i64>>,
    /// ISO 4217, e.g. `USD`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub currency: Option<Option<String>>,
}

impl From<LeadBody> for LeadInput {
    fn from(b: LeadBody) -> Self {
        LeadInput {
            source: b.source,
            status: b.status,
            first_name: b.first_name,
            last_name: b.last_name,
            company: b.company,
            email: b.email,
            phone: b.phone,
            estimated_value_minor: b.estimated_value_minor,
            currency: b.currency,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeadQuery {
    #[param(value_type = Option<super::openapi::LeadStatus>)]
    pub status: Option<String>,
    /// Substring of the name, company or email.
    pub q: Option<String>,
    /// `-created_at` (default) or `created_at`.
    pub sort: Option<CreatedSort>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeadList {
    pub data: Vec<Lead>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

fn region(state: &AppState) -> String {
    state.settings().crm.default_phone_region.clone()
}

/// Creates a lead.
#[utoipa::path(
    post, path = "/api/v1/leads", tag = "crm", security(("bearer" = [])),
    request_body = LeadBody,
    responses(
        (status = 201, description = "Created", body = Lead),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
    )
)]
pub async fn create_lead(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: JsonObject<LeadBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, region) = (auth.firm, region(&state));
    let event = auth.audit("lead.created", Outcome::Success, &meta);
    let input = LeadInput::from(body.into_inner());
    let lead = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let lead = pipeline::create_lead(conn, firm, input, &region).await?;
                audit::record(conn, &event.with_target("lead", lead.id)).await?;
                Ok::<_, DomainError>(lead)
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::created(lead))
}

/// Lists leads, newest first.
#[utoipa::path(
    get, path = "/api/v1/leads", tag = "crm", security(("bearer" = [])),
    params(LeadQuery, PageParams),
    responses(
        (status = 200, description = "A page of leads", body = LeadList),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn list_leads(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    query: web::Query<LeadQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let spec = page.spec()?;
    let query = query.into_inner();
    let filter = LeadFilter { status: query.status, q: query.q, sort: query.sort.unwrap_or_default() };
    let (firm, page_spec) = (auth.firm, spec.clone());
    let listed = state
        .db()
        .firm_tx(firm, |conn| async move { pipeline::list_leads(conn, firm, &filter, &page_spec).await }.scope_boxed())
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One lead.
#[utoipa::path(
    get, path = "/api/v1/leads/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Lead id")),
    responses(
        (status = 200, description = "The lead", body = Lead),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such lead in this firm", body = ErrorBody),
    )
)]
pub async fn get_lead(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let lead =
        state.db().firm_tx(firm, |conn| async move { pipeline::find_lead(conn, firm, id).await }.scope_boxed()).await?;
    Ok(envelope::ok(lead))
}

/// Changes the fields given. A converted lead cannot change.
#[utoipa::path(
    patch, path = "/api/v1/leads/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Lead id")),
    request_body = LeadBody,
    responses(
        (status = 200, description = "Changed", body = Lead),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such lead in this firm", body = ErrorBody),
        (status = 409, description = "The lead is converted", body = ErrorBody),
    )
)]
pub async fn update_lead(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<LeadBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id, region) = (auth.firm, path.into_inner(), region(&state));
    let event = auth.audit("lead.updated", Outcome::Success, &meta).with_target("lead", id);
    let input = LeadInput::from(body.into_inner());
    let lead = audit::audited(state.db(), firm, event, |conn| {
        async move { pipeline::update_lead(conn, firm, id, input, &region).await }.scope_boxed()
    })
    .await?;
    Ok(envelope::ok(lead))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertBody {
    /// Link this existing client instead of creating one from the lead.
    pub client_id: Option<Uuid>,
    /// Name of the new prospect; defaults to "<client> opportunity".
    pub prospect_name: Option<String>,
    /// Currency of the prospect when the lead has none.
    pub currency: Option<String>,
}

/// Converts a lead, once: creates or links its client and contact and opens a prospect,
/// all in one transaction.
#[utoipa::path(
    post, path = "/api/v1/leads/{id}/convert", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Lead id")),
    request_body = ConvertBody,
    responses(
        (status = 200, description = "Converted", body = Conversion),
        (status = 400, description = "Invalid client or currency", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such lead in this firm", body = ErrorBody),
        (status = 409, description = "Already converted, or disqualified", body = ErrorBody),
    )
)]
pub async fn convert_lead(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<ConvertBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id, region) = (auth.firm, path.into_inner(), region(&state));
    let attempts = state.job_attempts();
    let body = body.into_inner();
    let options =
        ConvertOptions { client_id: body.client_id, prospect_name: body.prospect_name, currency: body.currency };
    let event = auth.audit("lead.converted", Outcome::Success, &meta).with_target("lead", id);
    let conversion = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let conversion = pipeline::convert(conn, firm, id, options, &region).await?;
                let metadata = serde_json::json!({
                    "client_id": conversion.client.id,
                    "contact_id": conversion.contact.id,
                    "prospect_id": conversion.prospect.id,
                });
                audit::record(conn, &event.with_metadata(metadata)).await?;
                if conversion.client_created {
                    let data = serde_json::json!({ "client_id": conversion.client.id });
                    webhooks::emit(conn, firm, webhooks::EventType::ClientCreated, data, attempts).await?;
                }
                Ok::<_, DomainError>(conversion)
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::ok(conversion))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProspectBody {
    pub client_id: Option<Uuid>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub contact_id: Option<Option<Uuid>>,
    pub name: Option<String>,
    /// `discovery`, `proposal`, `negotiation`, `won` or `lost`.
    #[schema(value_type = Option<super::openapi::ProspectStage>)]
    pub stage: Option<String>,
    /// Integer minor units (cents); never negative.
    pub value_minor: Option<i64>,
    /// ISO 4217, e.g. `EUR`.
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = Date)]
    pub expected_close_date: Option<Option<NaiveDate>>,
    /// Percent, 0 to 100.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i16>)]
    pub probability: Option<Option<i16>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub owner_user_id: Option<Option<Uuid>>,
}

impl From<ProspectBody> for ProspectInput {
    fn from(b: ProspectBody) -> Self {
        ProspectInput {
            client_id: b.client_id,
            contact_id: b.contact_id,
            name: b.name,
            stage: b.stage,
            value_minor: b.value_minor,
            currency: b.currency,
            expected_close_date: b.expected_close_date,
            probability: b.probability,
            owner_user_id: b.owner_user_id,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProspectQuery {
    #[param(value_type = Option<super::openapi::ProspectStage>)]
    pub stage: Option<String>,
    pub client_id: Option<Uuid>,
    /// `-created_at` (default) or `created_at`.
    pub sort: Option<CreatedSort>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProspectList {
    pub data: Vec<Prospect>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Opens a prospect (an opportunity) with a client.
#[utoipa::path(
    post, path = "/api/v1/prospects", tag = "crm", security(("bearer" = [])),
    request_body = ProspectBody,
    responses(
        (status = 201, description = "Created", body = Prospect),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
    )
)]
pub async fn create_prospect(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: JsonObject<ProspectBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let firm = auth.firm;
    let event = auth.audit("prospect.created", Outcome::Success, &meta);
    let input = ProspectInput::from(body.into_inner());
    let prospect = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let prospect = pipeline::create_prospect(conn, firm, input, None).await?;
                audit::record(conn, &event.with_target("prospect", prospect.id)).await?;
                Ok::<_, DomainError>(prospect)
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::created(prospect))
}

/// Lists prospects, newest first.
#[utoipa::path(
    get, path = "/api/v1/prospects", tag = "crm", security(("bearer" = [])),
    params(ProspectQuery, PageParams),
    responses(
        (status = 200, description = "A page of prospects", body = ProspectList),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn list_prospects(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    query: web::Query<ProspectQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let spec = page.spec()?;
    let query = query.into_inner();
    let filter =
        ProspectFilter { stage: query.stage, client_id: query.client_id, sort: query.sort.unwrap_or_default() };
    let (firm, page_spec) = (auth.firm, spec.clone());
    let listed = state
        .db()
        .firm_tx(firm, |conn| {
            async move { pipeline::list_prospects(conn, firm, &filter, &page_spec).await }.scope_boxed()
        })
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One prospect.
#[utoipa::path(
    get, path = "/api/v1/prospects/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Prospect id")),
    responses(
        (status = 200, description = "The prospect", body = Prospect),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such prospect in this firm", body = ErrorBody),
    )
)]
pub async fn get_prospect(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let prospect = state
        .db()
        .firm_tx(firm, |conn| async move { pipeline::find_prospect(conn, firm, id).await }.scope_boxed())
        .await?;
    Ok(envelope::ok(prospect))
}

/// Changes the fields given.
#[utoipa::path(
    patch, path = "/api/v1/prospects/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Prospect id")),
    request_body = ProspectBody,
    responses(
        (status = 200, description = "Changed", body = Prospect),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such prospect in this firm", body = ErrorBody),
    )
)]
pub async fn update_prospect(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<ProspectBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let event = auth.audit("prospect.updated", Outcome::Success, &meta).with_target("prospect", id);
    let input = ProspectInput::from(body.into_inner());
    let prospect = audit::audited(state.db(), firm, event, |conn| {
        async move { pipeline::update_prospect(conn, firm, id, input).await }.scope_boxed()
    })
    .await?;
    Ok(envelope::ok(prospect))
}
