//! `/sla-policies`: which tickets a policy covers and its targets. Members read them;
//! owners and admins change them. `GET /tickets/{id}/sla-policy` says which one covers a
//! ticket now.

use super::body::JsonObject;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ctx::{Audit, FirmCtx};
use super::error::{ApiError, ErrorBody};
use super::{double_option, envelope};
use crate::domain::permissions::Permission;
use crate::domain::sla_policies::{self, Conditions, PolicyInput, SlaPolicy, Targets};
use crate::domain::sla_timers;
use crate::domain::tickets::{self, TicketStatus};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPolicyBody {
    pub name: String,
    /// Tried from the lowest; default: after the existing ones.
    pub position: Option<i32>,
    pub active: Option<bool>,
    #[serde(default)]
    pub conditions: Conditions,
    pub targets: Targets,
    pub business_calendar_id: Option<Uuid>,
    /// Default `["pending", "on_hold"]`.
    pub pause_statuses: Option<Vec<TicketStatus>>,
    /// Default 75.
    pub warning_percent: Option<i32>,
    #[serde(default)]
    pub restart_resolution_on_reopen: bool,
    /// Hold escalation notices (webhooks) until this calendar is open.
    pub notice_calendar_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChanges {
    pub name: Option<String>,
    pub position: Option<i32>,
    pub active: Option<bool>,
    pub conditions: Option<Conditions>,
    pub targets: Option<Targets>,
    /// A calendar, or null to count around the clock.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub business_calendar_id: Option<Option<Uuid>>,
    pub pause_statuses: Option<Vec<TicketStatus>>,
    pub warning_percent: Option<i32>,
    pub restart_resolution_on_reopen: Option<bool>,
    /// A calendar to hold escalation notices to, or null to send them at once.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub notice_calendar_id: Option<Option<Uuid>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    pub data: Vec<SlaPolicy>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Adds a policy.
#[utoipa::path(
    post, path = "/api/v1/sla-policies", tag = "support", security(("bearer" = [])),
    request_body = NewPolicyBody,
    responses(
        (status = 201, description = "Added", body = SlaPolicy),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "Too many policies", body = ErrorBody),
    )
)]
pub async fn create_policy(ctx: FirmCtx, body: JsonObject<NewPolicyBody>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = PolicyInput {
        name: Some(body.name),
        position: body.position,
        active: body.active,
        conditions: Some(body.conditions),
        targets: Some(body.targets),
        business_calendar_id: Some(body.business_calendar_id),
        pause_statuses: body.pause_statuses,
        warning_percent: body.warning_percent,
        restart_resolution_on_reopen: Some(body.restart_resolution_on_reopen),
        notice_calendar_id: Some(body.notice_calendar_id),
    };
    let cluster = ctx.cluster_name();
    let audit = Audit::new("sla_policy.created").target_of("sla_policy", |p: &SlaPolicy| p.id);
    let policy = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            // Tickets no policy covered may be covered now, and those covered by a later
            // one may move to this one.
            let before = sla_timers::rules_before(conn, firm).await?;
            let policy = sla_policies::create(conn, firm, input.clone()).await?;
            sla_timers::rules_changed(conn, firm, cluster, Utc::now(), &before, None).await?;
            Ok(policy)
        })
        .await?;
    Ok(envelope::created(policy))
}

/// The firm's policies in the order they are tried.
#[utoipa::path(
    get, path = "/api/v1/sla-policies", tag = "support", security(("bearer" = [])),
    responses(
        (status = 200, description = "Policies", body = PolicyList),
    )
)]
pub async fn list_policies(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let policies = ctx.tx(Permission::ContentRead, async |conn, firm| sla_policies::list(conn, firm).await).await?;
    Ok(envelope::whole_list(policies))
}

/// One policy.
#[utoipa::path(
    get, path = "/api/v1/sla-policies/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Policy id")),
    responses(
        (status = 200, description = "The policy", body = SlaPolicy),
        (status = 404, description = "No such policy in this firm", body = ErrorBody),
    )
)]
pub async fn get_policy(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let policy = ctx.tx(Permission::ContentRead, async |conn, firm| sla_policies::find(conn, firm, id).await).await?;
    Ok(envelope::ok(policy))
}

/// Changes a policy: only the fields given.
#[utoipa::path(
    patch, path = "/api/v1/sla-policies/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Policy id")),
    request_body = PolicyChanges,
    responses(
        (status = 200, description = "Changed", body = SlaPolicy),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such policy in this firm", body = ErrorBody),
    )
)]
pub async fn update_policy(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<PolicyChanges>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = PolicyInput {
        name: body.name,
        position: body.position,
        active: body.active,
        conditions: body.conditions,
        targets: body.targets,
        business_calendar_id: body.business_calendar_id,
        pause_statuses: body.pause_statuses,
        warning_percent: body.warning_percent,
        restart_resolution_on_reopen: body.restart_resolution_on_reopen,
        notice_calendar_id: body.notice_calendar_id,
    };
    let (id, cluster) = (path.into_inner(), ctx.cluster_name());
    let audit = Audit::new("sla_policy.updated").target("sla_policy", id);
    let policy = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            // Conditions, order and activity decide which policy covers which ticket, so a
            // change of the rules closes every running clock under the old ones; a new name
            // or notice calendar changes no clock.
            let changes_rules = input.changes_rules();
            let before = sla_timers::rules_before(conn, firm).await?;
            let policy = sla_policies::update(conn, firm, id, input.clone()).await?;
            if changes_rules {
                sla_timers::rules_changed(conn, firm, cluster, Utc::now(), &before, None).await?;
            }
            Ok(policy)
        })
        .await?;
    Ok(envelope::ok(policy))
}

/// Deletes a policy.
#[utoipa::path(
    delete, path = "/api/v1/sla-policies/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Policy id")),
    responses(
        (status = 200, description = "Deleted", body = SlaPolicy),
        (status = 404, description = "No such policy in this firm", body = ErrorBody),
    )
)]
pub async fn delete_policy(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (id, cluster) = (path.into_inner(), ctx.cluster_name());
    let audit = Audit::new("sla_policy.deleted").target("sla_policy", id);
    let policy = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            let before = sla_timers::rules_before(conn, firm).await?;
            let policy = sla_policies::delete(conn, firm, id).await?;
            sla_timers::rules_changed(conn, firm, cluster, Utc::now(), &before, None).await?;
            Ok(policy)
        })
        .await?;
    Ok(envelope::ok(policy))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CoveringPolicy {
    /// The policy that covers the ticket now; null when none does.
    pub policy: Option<SlaPolicy>,
}

/// Which policy covers a ticket now.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}/sla-policy", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The covering policy, if any", body = CoveringPolicy),
        (status = 404, description = "No such ticket in this firm", body = ErrorBody),
    )
)]
pub async fn ticket_policy(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let policy = ctx
        .tx(Permission::ContentRead, async |conn, firm| {
            let ticket = tickets::find(conn, firm, id).await?;
            let facts = sla_policies::facts(conn, firm, &ticket).await?;
            let policies = sla_policies::list(conn, firm).await?;
            Ok(sla_policies::choose(&policies, &facts).cloned())
        })
        .await?;
    Ok(envelope::ok(CoveringPolicy { policy }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `policy`, `team` or `agent`.
    pub group_by: crate::domain::sla::ReportGroup,
    /// Tickets opened from (RFC 3339, inclusive).
    pub from: chrono::DateTime<chrono::Utc>,
    /// Tickets opened before (RFC 3339); at most three years after `from`.
    pub to: chrono::DateTime<chrono::Utc>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<crate::domain::value_sets::ReportFormat>)]
    pub format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SlaReport {
    pub data: Vec<crate::domain::sla::ReportRow>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// SLA figures per policy, team or agent for the tickets opened in a period: met,
/// breached and overdue counts, the met rate, and time-to-target percentiles in business
/// seconds. `format=csv` answers a CSV file with the same columns.
#[utoipa::path(
    get, path = "/api/v1/sla/report", tag = "support", security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "The report: JSON, or CSV with `format=csv` (a header row, then one row per group and metric)",
            content((SlaReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad query", body = ErrorBody),
    )
)]
pub async fn sla_report(ctx: FirmCtx, query: web::Query<ReportQuery>) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    if query.to <= query.from || query.to - query.from > chrono::Duration::days(3 * 366) {
        return Err(ApiError::invalid_field("to", "must be after `from`, at most three years"));
    }
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid_field("format", "must be json or csv")),
    };
    let (group, from, to) = (query.group_by, query.from, query.to);
    let rows = ctx
        .tx(Permission::ContentRead, async |conn, firm| crate::domain::sla::report(conn, firm, group, from, to).await)
        .await?;
    if !csv {
        let meta = serde_json::json!({ "count": rows.len(), "from": from, "to": to });
        return Ok(envelope::with_meta(rows, meta));
    }
    let mut out = ::csv::Writer::from_writer(Vec::new());
    let header =
        ["group", "metric", "met", "breached", "overdue", "met_rate", "p50_seconds", "p90_seconds", "p99_seconds"];
    let written = out.write_record(header).and_then(|()| {
        let number = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_default();
        rows.iter().try_for_each(|r| {
            // Group names are the firm's own text: a spreadsheet must not run them.
            crate::ingest::csv::write_row(
                &mut out,
                &[
                    r.group.as_deref().unwrap_or(""),
                    &r.metric,
                    &r.met.to_string(),
                    &r.breached.to_string(),
                    &r.overdue.to_string(),
                    &r.met_rate.map(|v| format!("{v:.4}")).unwrap_or_default(),
                    &number(r.p50_seconds),
                    &number(r.p90_seconds),
                    &number(r.p99_seconds),
                ],
            )
        })
    });
    written.map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let body = out.into_inner().map_err(|e| ApiError::internal(anyhow::anyhow!(e.to_string())))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", "attachment; filename=\"sla-report.csv\""))
        .body(body))
}
