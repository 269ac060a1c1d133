//! `/webhooks`: where a firm wants its events, the delivery log, redelivery and a test
//! ping; and `/jobs`: the firm's dead-letter queue. Owners and admins only.

use super::body::JsonObject;
use crate::domain::webhooks::EventSelector;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ctx::{Audit, FirmCtx};
use super::envelope;
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use crate::domain::jobs::{self, Job};
use crate::domain::permissions::Permission;
use crate::domain::webhooks::{self, Delivery, Endpoint, EndpointInput};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpointBody {
    /// http(s) URL; internal addresses are refused when sending.
    pub url: String,
    /// Event types to receive, or `["*"]` for all.
    #[schema(value_type = Vec<EventSelector>, min_items = 1)]
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChanges {
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<EventSelector>>, min_items = 1)]
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    /// `true` re-enables an endpoint switched off after failures, clearing its streak.
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    pub endpoint: Endpoint,
    /// Signs every delivery; shown only now.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub data: Vec<Endpoint>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub data: Vec<Delivery>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub data: Vec<Job>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewSecret {
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedDelivery {
    pub delivery_id: Uuid,
}

/// Registers an endpoint; its signing secret is in this response only.
#[utoipa::path(
    post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = NewEndpointBody,
    responses(
        (status = 201, description = "Registered", body = EndpointWithSecret),
        (status = 400, description = "Bad URL or event types", body = ErrorBody),
    )
)]
pub async fn create_endpoint(ctx: FirmCtx, body: JsonObject<NewEndpointBody>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = EndpointInput {
        url: Some(body.url),
        description: body.description,
        event_types: Some(body.event_types),
        active: body.active,
    };
    let secrets = ctx.state().await?.secret_box()?;
    let audit = Audit::new("webhook.created").target_of("webhook_endpoint", |(e, _): &(Endpoint, String)| e.id);
    let (endpoint, secret) = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            webhooks::create(conn, firm, &input, &secrets).await
        })
        .await?;
    Ok(envelope::created(EndpointWithSecret { endpoint, secret }))
}

/// The firm's endpoints.
#[utoipa::path(
    get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses(
        (status = 200, description = "Endpoints, oldest first", body = EndpointList),
    )
)]
pub async fn list_endpoints(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let endpoints = ctx.tx(Permission::IntegrationsManage, async |conn, firm| webhooks::list(conn, firm).await).await?;
    Ok(envelope::whole_list(endpoints))
}

/// One endpoint.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = Endpoint),
        (status = 404, description = "No such endpoint in this firm", body = ErrorBody),
    )
)]
pub async fn get_endpoint(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let endpoint =
        ctx.tx(Permission::IntegrationsManage, async |conn, firm| webhooks::find(conn, firm, id).await).await?;
    Ok(envelope::ok(endpoint))
}

/// Changes an endpoint.
#[utoipa::path(
    patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body = EndpointChanges,
    responses(
        (status = 200, description = "Changed", body = Endpoint),
        (status = 400, description = "Bad values", body = ErrorBody),
        (status = 404, description = "No such endpoint in this firm", body = ErrorBody),
    )
)]
pub async fn update_endpoint(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<EndpointChanges>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = EndpointInput {
        url: body.url,
        description: body.description,
        event_types: body.event_types,
        active: body.active,
    };
    let id = path.into_inner();
    let audit = Audit::new("webhook.updated").target("webhook_endpoint", id);
    let endpoint = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            webhooks::update(conn, firm, id, &input).await
        })
        .await?;
    Ok(envelope::ok(endpoint))
}

/// Removes an endpoint; nothing more is sent to it.
#[utoipa::path(
    delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "Removed", body = Object),
        (status = 404, description = "No such endpoint in this firm", body = ErrorBody),
    )
)]
pub async fn delete_endpoint(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::new("webhook.deleted").target("webhook_endpoint", id);
    ctx.audited(Permission::IntegrationsManage, audit, async |conn, firm| webhooks::delete(conn, firm, id).await)
        .await?;
    Ok(envelope::ok(serde_json::json!({ "deleted": true })))
}

/// Replaces the signing secret; the new one is in this response only.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "New secret", body = NewSecret),
        (status = 404, description = "No such endpoint in this firm", body = ErrorBody),
    )
)]
pub async fn rotate_secret(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (id, secrets) = (path.into_inner(), ctx.state().await?.secret_box()?);
    let audit = Audit::new("webhook.secret_rotated").target("webhook_endpoint", id);
    let secret = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            webhooks::rotate_secret(conn, firm, id, &secrets).await
        })
        .await?;
    Ok(envelope::ok(NewSecret { secret }))
}

/// Sends a `ping` event to the endpoint through the queue.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/ping", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 202, description = "Queued", body = QueuedDelivery),
        (status = 404, description = "No such endpoint in this firm", body = ErrorBody),
    )
)]
pub async fn ping(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (id, attempts) = (path.into_inner(), ctx.job_attempts());
    let delivery_id = ctx
        .tx(Permission::IntegrationsManage, async |conn, firm| {
            webhooks::find(conn, firm, id).await?;
            let data = serde_json::json!({ "message": "ConsultantPro webhook test" });
            webhooks::enqueue_delivery(conn, firm, id, webhooks::EventType::Ping, data, attempts).await
        })
        .await?;
    Ok(HttpResponse::Accepted()
        .json(envelope::Envelope { data: QueuedDelivery { delivery_id }, meta: serde_json::json!({}) }))
}

/// The endpoint's delivery log, newest first: state, attempts, last status, latency, error.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), PageParams),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryList),
        (status = 400, description = "Bad cursor", body = ErrorBody),
        (status = 404, description = "No such endpoint in this firm", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    ctx: FirmCtx,
    req: HttpRequest,
    path: web::Path<Uuid>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let (spec, id) = (page.spec()?, path.into_inner());
    let listed = ctx
        .tx(Permission::IntegrationsManage, async |conn, firm| webhooks::deliveries(conn, firm, id, &spec).await)
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// Sends one delivery again, with the same delivery id.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), ("delivery_id" = Uuid, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued again", body = Delivery),
        (status = 404, description = "No such endpoint or delivery in this firm", body = ErrorBody),
    )
)]
pub async fn redeliver(ctx: FirmCtx, path: web::Path<(Uuid, Uuid)>) -> Result<HttpResponse, ApiError> {
    let ((endpoint_id, delivery_id), attempts) = (path.into_inner(), ctx.job_attempts());
    let delivery = ctx
        .tx(Permission::IntegrationsManage, async |conn, firm| {
            webhooks::redeliver(conn, firm, endpoint_id, delivery_id, attempts).await
        })
        .await?;
    Ok(HttpResponse::Accepted().json(envelope::Envelope { data: delivery, meta: serde_json::json!({}) }))
}

/// The firm's dead-letter queue: jobs that used up their attempts, with their last error.
#[utoipa::path(
    get, path = "/api/v1/jobs/dead", tag = "jobs", security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of dead jobs, most recent first", body = JobList),
        (status = 400, description = "Bad cursor", body = ErrorBody),
    )
)]
pub async fn list_dead_jobs(
    ctx: FirmCtx,
    req: HttpRequest,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let spec = page.spec()?;
    let listed =
        ctx.page(Permission::IntegrationsManage, async |conn, firm| jobs::list_dead(conn, firm, &spec).await).await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// Puts a dead job back in the queue with a fresh set of attempts.
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "Queued again", body = Job),
        (status = 404, description = "No such job in this firm", body = ErrorBody),
        (status = 409, description = "The job is not dead", body = ErrorBody),
    )
)]
pub async fn retry_job(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::new("job.retried").target("job", id);
    let job = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| jobs::retry_dead(conn, firm, id).await)
        .await?;
    Ok(envelope::ok(job))
}
