//! `/leads` and `/prospects`, and lead conversion.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ctx::{Audit, FirmCtx};
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use super::{double_option, envelope};
use crate::domain::permissions::Permission;
use crate::domain::pipeline::{
    self, Conversion, ConvertOptions, CreatedSort, Lead, LeadFilter, LeadInput, Prospect, ProspectFilter, ProspectInput,
};
use crate::domain::webhooks;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadBody {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub source: Option<Option<String>>,
    /// `new`, `contacted`, `qualified` or `disqualified` (`converted` comes from converting).
    #[schema(value_type = Option<crate::domain::value_sets::LeadStatus>)]
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
    #[param(value_type = Option<crate::domain::value_sets::LeadStatus>)]
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

fn region(ctx: &FirmCtx) -> &str {
    ctx.phone_region()
}

/// Creates a lead.
#[utoipa::path(
    post, path = "/api/v1/leads", tag = "crm", security(("bearer" = [])),
    request_body = LeadBody,
    responses(
        (status = 201, description = "Created", body = Lead),
        (status = 400, description = "Invalid fields", body = ErrorBody),
    )
)]
pub async fn create_lead(ctx: FirmCtx, body: JsonObject<LeadBody>) -> Result<HttpResponse, ApiError> {
    let region = region(&ctx);
    let input = LeadInput::from(body.into_inner());
    let audit = Audit::new("lead.created").target_of("lead", |l: &Lead| l.id);
    let lead = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            pipeline::create_lead(conn, firm, input.clone(), region).await
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
    )
)]
pub async fn list_leads(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<LeadQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let spec = page.spec()?;
    let query = query.into_inner();
    let filter = LeadFilter { status: query.status, q: query.q, sort: query.sort.unwrap_or_default() };
    let listed = ctx
        .page(Permission::ContentRead, async |conn, firm| pipeline::list_leads(conn, firm, &filter, &spec).await)
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
        (status = 404, description = "No such lead in this firm", body = ErrorBody),
    )
)]
pub async fn get_lead(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let lead = ctx.tx(Permission::ContentRead, async |conn, firm| pipeline::find_lead(conn, firm, id).await).await?;
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
        (status = 404, description = "No such lead in this firm", body = ErrorBody),
        (status = 409, description = "The lead is converted", body = ErrorBody),
    )
)]
pub async fn update_lead(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<LeadBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, region) = (path.into_inner(), region(&ctx));
    let input = LeadInput::from(body.into_inner());
    let audit = Audit::new("lead.updated").target("lead", id);
    let lead = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            pipeline::update_lead(conn, firm, id, input.clone(), region).await
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
        (status = 404, description = "No such lead in this firm", body = ErrorBody),
        (status = 409, description = "Already converted, or disqualified", body = ErrorBody),
    )
)]
pub async fn convert_lead(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<ConvertBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, region, attempts) = (path.into_inner(), region(&ctx), ctx.job_attempts());
    let body = body.into_inner();
    let options =
        ConvertOptions { client_id: body.client_id, prospect_name: body.prospect_name, currency: body.currency };
    let audit = Audit::new("lead.converted").target("lead", id).metadata_of(|conversion: &Conversion| {
        serde_json::json!({
            "client_id": conversion.client.id,
            "contact_id": conversion.contact.id,
            "prospect_id": conversion.prospect.id,
        })
    });
    let conversion = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            let conversion = pipeline::convert(conn, firm, id, options.clone(), region).await?;
            if conversion.client_created {
                let data = serde_json::json!({ "client_id": conversion.client.id });
                webhooks::emit(conn, firm, webhooks::EventType::ClientCreated, data, attempts).await?;
            }
            Ok(conversion)
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
    #[schema(value_type = Option<crate::domain::value_sets::ProspectStage>)]
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
    #[param(value_type = Option<crate::domain::value_sets::ProspectStage>)]
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
    )
)]
pub async fn create_prospect(ctx: FirmCtx, body: JsonObject<ProspectBody>) -> Result<HttpResponse, ApiError> {
    let input = ProspectInput::from(body.into_inner());
    let audit = Audit::new("prospect.created").target_of("prospect", |p: &Prospect| p.id);
    let prospect = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            pipeline::create_prospect(conn, firm, input.clone(), None).await
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
    )
)]
pub async fn list_prospects(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<ProspectQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let spec = page.spec()?;
    let query = query.into_inner();
    let filter =
        ProspectFilter { stage: query.stage, client_id: query.client_id, sort: query.sort.unwrap_or_default() };
    let listed = ctx
        .page(Permission::ContentRead, async |conn, firm| pipeline::list_prospects(conn, firm, &filter, &spec).await)
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
        (status = 404, description = "No such prospect in this firm", body = ErrorBody),
    )
)]
pub async fn get_prospect(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let prospect =
        ctx.tx(Permission::ContentRead, async |conn, firm| pipeline::find_prospect(conn, firm, id).await).await?;
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
        (status = 404, description = "No such prospect in this firm", body = ErrorBody),
    )
)]
pub async fn update_prospect(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<ProspectBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let input = ProspectInput::from(body.into_inner());
    let audit = Audit::new("prospect.updated").target("prospect", id);
    let prospect = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            pipeline::update_prospect(conn, firm, id, input.clone()).await
        })
        .await?;
    Ok(envelope::ok(prospect))
}
