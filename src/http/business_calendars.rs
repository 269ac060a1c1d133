//! `/business-calendars`: when the firm is open, for support SLA clocks. Every member
//! reads them; owners and admins change them. `due` and `elapsed` show the arithmetic the
//! clocks use, so a calendar can be checked before a policy relies on it.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ctx::{Audit, FirmCtx};
use super::error::{ApiError, ErrorBody};
use super::{double_option, envelope};
use crate::domain::business_calendars::{self, BusinessCalendarView, CalendarInput, HolidaySpec, WindowSpec};
use crate::domain::permissions::Permission;
use crate::domain::sla_timers;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCalendarBody {
    pub name: String,
    /// IANA zone, e.g. `Europe/Paris`.
    pub time_zone: String,
    #[serde(default)]
    pub always_open: bool,
    #[serde(default)]
    pub windows: Vec<WindowSpec>,
    #[serde(default)]
    pub holidays: Vec<HolidaySpec>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarChanges {
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub always_open: Option<bool>,
    /// Replaces the list.
    pub windows: Option<Vec<WindowSpec>>,
    /// Replaces the list.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<HolidaySpec>>)]
    pub holidays: Option<Option<Vec<HolidaySpec>>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarList {
    pub data: Vec<BusinessCalendarView>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Starts a calendar.
#[utoipa::path(
    post, path = "/api/v1/business-calendars", tag = "support", security(("bearer" = [])),
    request_body = NewCalendarBody,
    responses(
        (status = 201, description = "Created", body = BusinessCalendarView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "Too many calendars", body = ErrorBody),
    )
)]
pub async fn create_calendar(ctx: FirmCtx, body: JsonObject<NewCalendarBody>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = CalendarInput {
        name: Some(body.name),
        time_zone: Some(body.time_zone),
        always_open: Some(body.always_open),
        windows: Some(body.windows),
        holidays: Some(body.holidays),
    };
    let audit = Audit::new("business_calendar.created").target_of("business_calendar", |c: &BusinessCalendarView| c.id);
    let calendar = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            business_calendars::create(conn, firm, input.clone()).await
        })
        .await?;
    Ok(envelope::created(calendar))
}

/// The firm's calendars, oldest first.
#[utoipa::path(
    get, path = "/api/v1/business-calendars", tag = "support", security(("bearer" = [])),
    responses(
        (status = 200, description = "Calendars", body = CalendarList),
    )
)]
pub async fn list_calendars(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let calendars =
        ctx.tx(Permission::ContentRead, async |conn, firm| business_calendars::list(conn, firm).await).await?;
    Ok(envelope::whole_list(calendars))
}

/// One calendar.
#[utoipa::path(
    get, path = "/api/v1/business-calendars/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Calendar id")),
    responses(
        (status = 200, description = "The calendar", body = BusinessCalendarView),
        (status = 404, description = "No such calendar in this firm", body = ErrorBody),
    )
)]
pub async fn get_calendar(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(calendar_of(&ctx, path.into_inner()).await?))
}

/// Changes a calendar: only the fields given; `windows` and `holidays` replace their lists.
#[utoipa::path(
    patch, path = "/api/v1/business-calendars/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Calendar id")),
    request_body = CalendarChanges,
    responses(
        (status = 200, description = "Changed", body = BusinessCalendarView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such calendar in this firm", body = ErrorBody),
    )
)]
pub async fn update_calendar(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<CalendarChanges>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = CalendarInput {
        name: body.name,
        time_zone: body.time_zone,
        always_open: body.always_open,
        windows: body.windows,
        holidays: body.holidays.map(Option::unwrap_or_default),
    };
    let (id, cluster) = (path.into_inner(), ctx.cluster_name());
    let audit = Audit::new("business_calendar.updated").target("business_calendar", id);
    let calendar = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            sla_timers::calendar_edit(conn, firm, id, cluster, async |conn| {
                business_calendars::update(conn, firm, id, input.clone()).await
            })
            .await
        })
        .await?;
    Ok(envelope::ok(calendar))
}

/// Deletes a calendar.
#[utoipa::path(
    delete, path = "/api/v1/business-calendars/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Calendar id")),
    responses(
        (status = 200, description = "Deleted", body = BusinessCalendarView),
        (status = 404, description = "No such calendar in this firm", body = ErrorBody),
        (status = 409, description = "An SLA policy counts in this calendar", body = ErrorBody),
    )
)]
pub async fn delete_calendar(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::new("business_calendar.deleted").target("business_calendar", id);
    let calendar = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            business_calendars::delete(conn, firm, id).await
        })
        .await?;
    Ok(envelope::ok(calendar))
}

/// A holiday feed is small: years of public holidays fit in a few dozen kilobytes.
const MAX_ICAL_BYTES: usize = 256 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportedHolidays {
    pub calendar: BusinessCalendarView,
    /// Closed dates added (ones the calendar had already are skipped).
    pub added: usize,
}

/// Adds the all-day events of an iCalendar file (a public-holiday feed) as closed dates.
#[utoipa::path(
    post, path = "/api/v1/business-calendars/{id}/holidays/import", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Calendar id")),
    request_body(content = String, content_type = "text/calendar", description = "An iCalendar file"),
    responses(
        (status = 200, description = "Imported", body = ImportedHolidays),
        (status = 400, description = "Not an iCalendar file, or too many dates", body = ErrorBody),
        (status = 404, description = "No such calendar in this firm", body = ErrorBody),
        (status = 413, description = "Larger than 256 KiB", body = ErrorBody),
        (status = 415, description = "Not text/calendar", body = ErrorBody),
    )
)]
pub async fn import_holidays(
    ctx: FirmCtx,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    ctx.require(Permission::IntegrationsManage).await?;
    super::body::require_media_type(&req, "text/calendar", "send the iCalendar file as text/calendar")?;
    if body.len() > MAX_ICAL_BYTES {
        return Err(ApiError::PayloadTooLarge(format!("an iCalendar file here is at most {MAX_ICAL_BYTES} bytes")));
    }
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::invalid_field("body", "must be UTF-8"))?;
    let holidays = business_calendars::holidays_from_ical(text)?;
    let (id, cluster) = (path.into_inner(), ctx.cluster_name());
    let audit = Audit::new("business_calendar.updated").target("business_calendar", id);
    let (calendar, added) = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            sla_timers::calendar_edit(conn, firm, id, cluster, async |conn| {
                business_calendars::add_holidays(conn, firm, id, holidays.clone()).await
            })
            .await
        })
        .await?;
    Ok(envelope::ok(ImportedHolidays { calendar, added }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DueQuery {
    /// RFC 3339.
    pub from: DateTime<Utc>,
    /// Open minutes to add (0 to 1,576,800: three years, the furthest the arithmetic looks).
    pub minutes: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Due {
    /// When `minutes` of open time have passed after `from`; null when the calendar is not
    /// open that long within three years.
    pub due: Option<DateTime<Utc>>,
}

/// Three years of minutes: the furthest the arithmetic looks ahead.
const MAX_MINUTES: i64 = 3 * 365 * 24 * 60;

/// Moments are taken between 1900 and 2200: the arithmetic has no use for others, and
/// the extremes of the calendar cannot be stepped across.
fn check_moment(field: &str, at: DateTime<Utc>) -> Result<(), ApiError> {
    let year = chrono::Datelike::year(&at);
    if (1900..=2200).contains(&year) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(field, "must be between the years 1900 and 2200"))
    }
}

async fn calendar_of(ctx: &FirmCtx, id: Uuid) -> Result<BusinessCalendarView, ApiError> {
    ctx.tx(Permission::ContentRead, async |conn, firm| business_calendars::find(conn, firm, id).await).await
}

/// The moment a span of open time ends, as SLA clocks compute it.
#[utoipa::path(
    get, path = "/api/v1/business-calendars/{id}/due", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Calendar id"), DueQuery),
    responses(
        (status = 200, description = "The due moment", body = Due),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "No such calendar in this firm", body = ErrorBody),
    )
)]
pub async fn due(ctx: FirmCtx, path: web::Path<Uuid>, query: web::Query<DueQuery>) -> Result<HttpResponse, ApiError> {
    check_moment("from", query.from)?;
    if !(0..=MAX_MINUTES).contains(&query.minutes) {
        return Err(ApiError::invalid_field("minutes", "must be between 0 and 1576800 (three years)"));
    }
    let calendar = calendar_of(&ctx, path.into_inner()).await?.calendar()?;
    Ok(envelope::ok(Due { due: calendar.add(query.from, Duration::minutes(query.minutes)) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ElapsedQuery {
    /// RFC 3339.
    pub from: DateTime<Utc>,
    /// RFC 3339; at most three years after `from`.
    pub to: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Elapsed {
    /// Open time between `from` and `to`, in seconds.
    pub seconds: i64,
}

/// Open time between two moments, as SLA clocks count it.
#[utoipa::path(
    get, path = "/api/v1/business-calendars/{id}/elapsed", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Calendar id"), ElapsedQuery),
    responses(
        (status = 200, description = "Open time", body = Elapsed),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "No such calendar in this firm", body = ErrorBody),
    )
)]
pub async fn elapsed(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    query: web::Query<ElapsedQuery>,
) -> Result<HttpResponse, ApiError> {
    check_moment("from", query.from)?;
    check_moment("to", query.to)?;
    if query.to - query.from > Duration::days(3 * 366) {
        return Err(ApiError::invalid_field("to", "must be at most three years after `from`"));
    }
    let calendar = calendar_of(&ctx, path.into_inner()).await?.calendar()?;
    Ok(envelope::ok(Elapsed { seconds: calendar.elapsed(query.from, query.to).num_seconds() }))
}
