//! `/audit-events`: the firm's audit log, for owners and admins.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ctx::FirmCtx;
use super::envelope;
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use crate::domain::audit::{self, AuditEvent, AuditFilter};
use crate::domain::permissions::Permission;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Exact action, e.g. `auth.login`.
    pub action: Option<String>,
    /// The acting user's or operator's id.
    pub actor_id: Option<Uuid>,
    /// Inclusive lower bound, RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound, RFC 3339.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub data: Vec<AuditEvent>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// The firm's audit log, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit-events",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery, PageParams),
    responses(
        (status = 200, description = "A page of events", body = AuditList),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
    )
)]
pub async fn list_audit_events(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<AuditQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let spec = page.spec()?;
    let query = query.into_inner();
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if from >= to {
            return Err(ApiError::invalid_field("to", "must be later than `from`"));
        }
    }
    let filter = AuditFilter { action: query.action, actor_id: query.actor_id, from: query.from, to: query.to };
    let listed =
        ctx.page(Permission::AuditRead, async |conn, firm| audit::list(conn, firm, &filter, &spec).await).await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}
