//! A member's own calendar: events (`/calendar/events`, recurring ones with exceptions)
//! and a private `.ics` feed of their events and bookings at a secret URL.

use super::body::JsonObject;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ctx::{Audit, FirmCtx};
use super::error::{ApiError, ErrorBody};
use super::{AppState, envelope};
use crate::domain::calendar_events::{self, CalendarEvent, EventInput, Occurrence};
use crate::domain::ical::{self, FeedEntry};
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, RequestMeta, bookings, memberships};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OccurrenceQuery {
    /// Default: now.
    pub from: Option<DateTime<Utc>>,
    /// Default 31 days after `from`; at most 366.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OccurrenceList {
    pub data: Vec<Occurrence>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// The signed-in member's event occurrences in a period (recurrences expanded).
#[utoipa::path(
    get, path = "/api/v1/calendar/events", tag = "bookings", security(("bearer" = [])),
    params(OccurrenceQuery),
    responses(
        (status = 200, description = "Occurrences", body = OccurrenceList),
        (status = 400, description = "Invalid period", body = ErrorBody),
    )
)]
pub async fn list_events(ctx: FirmCtx, query: web::Query<OccurrenceQuery>) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let from = query.from.unwrap_or_else(Utc::now);
    bookings::check_moment("from", from)?;
    let to = query.to.unwrap_or(from + Duration::days(31));
    bookings::check_moment("to", to)?;
    if to <= from || to - from > Duration::days(366) {
        return Err(ApiError::invalid_field("to", "must be after `from`, at most 366 days"));
    }
    let found = ctx
        .tx(Permission::ContentRead, async |conn, firm| calendar_events::occurrences(conn, firm, user, from, to).await)
        .await?;
    Ok(envelope::whole_list(found))
}

/// Adds an event to the signed-in member's calendar; a busy one keeps bookings away.
#[utoipa::path(
    post, path = "/api/v1/calendar/events", tag = "bookings", security(("bearer" = [])),
    request_body = EventInput,
    responses(
        (status = 201, description = "Added", body = CalendarEvent),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "A booking holds some of that time", body = ErrorBody),
    )
)]
pub async fn create_event(ctx: FirmCtx, body: JsonObject<EventInput>) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let input = body.into_inner();
    let audit = Audit::new("calendar_event.created").target_of("calendar_event", |e: &CalendarEvent| e.id);
    let created = ctx
        .audited(Permission::ContentRead, audit, async |conn, firm| {
            calendar_events::create(conn, firm, user, input.clone()).await
        })
        .await?;
    Ok(envelope::created(created))
}

/// Deletes one of the signed-in member's events, every occurrence.
#[utoipa::path(
    delete, path = "/api/v1/calendar/events/{id}", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "Deleted", body = CalendarEvent),
        (status = 404, description = "No such event of yours", body = ErrorBody),
    )
)]
pub async fn delete_event(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let id = path.into_inner();
    let audit = Audit::new("calendar_event.deleted").target("calendar_event", id);
    let deleted = ctx
        .audited(Permission::ContentRead, audit, async |conn, firm| calendar_events::delete(conn, firm, user, id).await)
        .await?;
    Ok(envelope::ok(deleted))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionBody {
    /// The start of the occurrence to remove.
    pub start: DateTime<Utc>,
}

/// Removes one occurrence of a recurring event; its time is free again.
#[utoipa::path(
    post, path = "/api/v1/calendar/events/{id}/exceptions", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Event id")),
    request_body = ExceptionBody,
    responses(
        (status = 200, description = "The event with its exceptions", body = CalendarEvent),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such event of yours", body = ErrorBody),
    )
)]
pub async fn add_exception(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<ExceptionBody>,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let (id, start) = (path.into_inner(), body.start);
    let audit = Audit::new("calendar_event.updated").target("calendar_event", id);
    let changed = ctx
        .audited(Permission::ContentRead, audit, async |conn, firm| {
            calendar_events::except(conn, firm, user, id, start).await
        })
        .await?;
    Ok(envelope::ok(changed))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedUrl {
    /// The private feed; anyone with it can read the calendar. Shown once; asking again
    /// makes a new one and ends the old.
    pub url: String,
}

/// Makes (or replaces) the signed-in member's private calendar feed.
#[utoipa::path(
    post, path = "/api/v1/calendar/feed", tag = "bookings", security(("bearer" = [])),
    responses(
        (status = 200, description = "The feed's URL", body = FeedUrl),
    )
)]
pub async fn rotate_feed(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let audit = Audit::new("calendar_feed.rotated").target("user", user);
    let token = ctx
        .audited(Permission::ContentRead, audit, async |conn, firm| {
            calendar_events::rotate_feed(conn, firm, user).await
        })
        .await?;
    let base = ctx.link_base_url().trim_end_matches('/');
    Ok(envelope::ok(FeedUrl { url: format!("{base}/api/v1/public/calendar-feeds/{token}") }))
}

/// A member's private feed: their events (recurring ones with RRULE and EXDATE) and
/// bookings from a month back, each in its zone with its `VTIMEZONE`.
#[utoipa::path(
    get, path = "/api/v1/public/calendar-feeds/{token}", tag = "bookings",
    params(("token" = String, Path, description = "The feed's secret token")),
    responses(
        (status = 200, description = "The calendar", body = String, content_type = "text/calendar"),
        (status = 404, description = "No feed for this token", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub async fn public_feed(
    state: web::Data<AppState>,
    meta: RequestMeta,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    super::bookings::public_allowance(&state, &meta, "calendar-feed", 120, Duration::minutes(1)).await?;
    let missing = || ApiError::NotFound("no such feed".into());
    let token = path.into_inner();
    let token = token.strip_suffix(".ics").unwrap_or(&token).to_owned();
    let (firm, secret) = calendar_events::parse_feed_token(&token).ok_or_else(missing)?;
    let secret = secret.to_owned();
    let now = Utc::now();
    let entries = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let Some(user) = calendar_events::feed_owner(conn, firm, &secret).await? else { return Ok(None) };
                // A member who left the firm reads nothing of it any more.
                match memberships::find(conn, firm, user).await {
                    Ok(member) if member.status == "active" => {}
                    Ok(_) | Err(DomainError::NotFound(_)) => return Ok(None),
                    Err(other) => return Err(other),
                }
                let zone = bookings::availability(conn, firm, user)
                    .await?
                    .and_then(|a| a.time_zone.parse::<chrono_tz::Tz>().ok())
                    .unwrap_or(chrono_tz::UTC);
                let mut entries = Vec::new();
                for event in calendar_events::list(conn, firm, user).await? {
                    entries.push(FeedEntry {
                        uid: format!("{}@consultantpro", event.id),
                        sequence: 0,
                        starts_at: event.starts_at,
                        ends_at: event.ends_at,
                        summary: event.title,
                        zone: event.time_zone.parse().unwrap_or(chrono_tz::UTC),
                        rrule: event.rrule,
                        exdates: event.exdates,
                        tentative: false,
                        busy: event.busy,
                    });
                }
                let from = now - Duration::days(31);
                for booking in bookings::list(conn, firm, Some(user), from, now + Duration::days(366)).await? {
                    if booking.status == "cancelled" {
                        continue;
                    }
                    entries.push(FeedEntry {
                        uid: booking.ical_uid,
                        sequence: booking.ical_sequence,
                        starts_at: booking.starts_at,
                        ends_at: booking.ends_at,
                        summary: format!("Booking: {}", booking.invitee_name),
                        zone,
                        rrule: None,
                        exdates: Vec::new(),
                        tentative: booking.status == "pending",
                        busy: true,
                    });
                }
                Ok::<_, DomainError>(Some(entries))
            }
            .scope_boxed()
        })
        .await?
        .ok_or_else(missing)?;
    Ok(HttpResponse::Ok()
        .content_type("text/calendar; charset=utf-8")
        .insert_header(("cache-control", "private, max-age=300"))
        .body(ical::feed("ConsultantPro", &entries, now)))
}
