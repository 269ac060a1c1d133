//! Calendars and bookings: a member's bookable hours (`/calendar/availability`), booking
//! links (`/booking-links`), the firm's bookings (`/bookings`), and the public pages an
//! invitee books through (`/public/booking-links/{slug}`: no sign-in, limited per address).

use super::body::JsonObject;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ctx::{Audit, FirmCtx};
use super::error::{ApiError, ErrorBody};
use super::identity::throttled;
use super::once::Once;
use super::{AppState, envelope};
use crate::bus::live;
use crate::db::Connection;
use crate::domain::bookings::{
    self, AvailabilityInput, AvailabilityView, Booking, BookingLink, BookingRequest, LinkInput, Question,
};
use crate::domain::idempotency::{self, Replay};
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, FirmId, RequestMeta, throttle, webhooks};

/// Public slot listings per address per minute.
const SLOT_LISTINGS_PER_MINUTE: u32 = 120;
/// Public booking attempts per address per ten minutes.
const BOOKINGS_PER_TEN_MINUTES: u32 = 30;

/// The signed-in member's bookable hours.
#[utoipa::path(
    get, path = "/api/v1/calendar/availability", tag = "bookings", security(("bearer" = [])),
    responses(
        (status = 200, description = "The hours", body = AvailabilityView),
        (status = 404, description = "No hours set yet", body = ErrorBody),
    )
)]
pub async fn get_availability(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let hours = ctx
        .tx(Permission::ContentRead, async |conn, firm| bookings::availability(conn, firm, user).await)
        .await?
        .ok_or_else(|| ApiError::NotFound("no bookable hours set yet".into()))?;
    Ok(envelope::ok(hours))
}

/// Sets the signed-in member's bookable hours: a zone, weekly windows, date overrides.
#[utoipa::path(
    put, path = "/api/v1/calendar/availability", tag = "bookings", security(("bearer" = [])),
    request_body = AvailabilityInput,
    responses(
        (status = 200, description = "Set", body = AvailabilityView),
        (status = 400, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn set_availability(ctx: FirmCtx, body: JsonObject<AvailabilityInput>) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let input = body.into_inner();
    let audit = Audit::new("availability.updated").target("user", user);
    let hours = ctx
        .audited(Permission::ContentRead, audit, async |conn, firm| {
            bookings::set_availability(conn, firm, user, input.clone()).await
        })
        .await?;
    Ok(envelope::ok(hours))
}

/// Adds a booking link for one member or several (round robin).
#[utoipa::path(
    post, path = "/api/v1/booking-links", tag = "bookings", security(("bearer" = [])),
    request_body = LinkInput,
    responses(
        (status = 201, description = "Added", body = BookingLink),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
    )
)]
pub async fn create_link(ctx: FirmCtx, body: JsonObject<LinkInput>) -> Result<HttpResponse, ApiError> {
    let (user, _) = ctx.member()?;
    let input = body.into_inner();
    let audit = Audit::new("booking_link.created").target_of("booking_link", |l: &BookingLink| l.id);
    let link = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            bookings::create_link(conn, firm, user, input.clone()).await
        })
        .await?;
    Ok(envelope::created(link))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkList {
    pub data: Vec<BookingLink>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// The firm's booking links.
#[utoipa::path(
    get, path = "/api/v1/booking-links", tag = "bookings", security(("bearer" = [])),
    responses(
        (status = 200, description = "Links", body = LinkList),
    )
)]
pub async fn list_links(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let links = ctx.tx(Permission::ContentRead, async |conn, firm| bookings::list_links(conn, firm).await).await?;
    Ok(envelope::whole_list(links))
}

/// One booking link.
#[utoipa::path(
    get, path = "/api/v1/booking-links/{id}", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Link id")),
    responses(
        (status = 200, description = "The link", body = BookingLink),
        (status = 404, description = "No such link in this firm", body = ErrorBody),
    )
)]
pub async fn get_link(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let link = ctx.tx(Permission::ContentRead, async |conn, firm| bookings::find_link(conn, firm, id).await).await?;
    Ok(envelope::ok(link))
}

/// Changes a booking link (`active: false` takes its public page down).
#[utoipa::path(
    patch, path = "/api/v1/booking-links/{id}", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Link id")),
    request_body = LinkInput,
    responses(
        (status = 200, description = "Changed", body = BookingLink),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such link in this firm", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
    )
)]
pub async fn update_link(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<LinkInput>,
) -> Result<HttpResponse, ApiError> {
    let (id, input) = (path.into_inner(), body.into_inner());
    let audit = Audit::new("booking_link.updated").target("booking_link", id);
    let link = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            bookings::update_link(conn, firm, id, input.clone()).await
        })
        .await?;
    Ok(envelope::ok(link))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BookingsQuery {
    /// One member's bookings only.
    pub member_user_id: Option<Uuid>,
    /// Default: now.
    pub from: Option<DateTime<Utc>>,
    /// Default: 62 days after `from`.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingList {
    pub data: Vec<Booking>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// The firm's bookings starting in a period, in order (at most 1,000).
#[utoipa::path(
    get, path = "/api/v1/bookings", tag = "bookings", security(("bearer" = [])),
    params(BookingsQuery),
    responses(
        (status = 200, description = "Bookings", body = BookingList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    )
)]
pub async fn list_bookings(ctx: FirmCtx, query: web::Query<BookingsQuery>) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let from = query.from.unwrap_or_else(Utc::now);
    bookings::check_moment("from", from)?;
    let to = query.to.unwrap_or(from + Duration::days(bookings::MAX_LISTING_DAYS));
    bookings::check_moment("to", to)?;
    let member = query.member_user_id;
    let found =
        ctx.tx(Permission::ContentRead, async |conn, firm| bookings::list(conn, firm, member, from, to).await).await?;
    Ok(envelope::whole_list(found))
}

/// What sockets and webhooks hear of a booking: ids and times, not the invitee's answers.
fn booking_event(booking: &Booking) -> serde_json::Value {
    serde_json::json!({
        "booking_id": booking.id,
        "link_id": booking.link_id,
        "member_user_id": booking.member_user_id,
        "starts_at": booking.starts_at,
        "ends_at": booking.ends_at,
        "status": booking.status,
    })
}

/// Cancels a booking; its time is free again.
#[utoipa::path(
    post, path = "/api/v1/bookings/{id}/cancel", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Booking id")),
    responses(
        (status = 200, description = "Cancelled (or already was)", body = Booking),
        (status = 404, description = "No such booking in this firm", body = ErrorBody),
    )
)]
pub async fn cancel_booking(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    member_change(&ctx, id, webhooks::EventType::BookingCancelled, async |conn, firm| {
        bookings::cancel(conn, firm, id).await
    })
    .await
}

/// A member's change of a booking: audited, and when it changed anything, told to webhooks
/// (`event`), to both sides by email, and to sockets.
async fn member_change(
    ctx: &FirmCtx,
    id: Uuid,
    event: webhooks::EventType,
    mut change: impl AsyncFnMut(&mut Connection, FirmId) -> Result<(Booking, bool), DomainError>,
) -> Result<HttpResponse, ApiError> {
    let attempts = ctx.job_attempts();
    let audit = Audit::new(event.as_str()).target("booking", id);
    let (booking, changed) = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            let (booking, changed) = change(conn, firm).await?;
            if changed {
                webhooks::emit(conn, firm, event, booking_event(&booking), attempts).await?;
                bookings::queue_notices(conn, firm, &booking, attempts).await?;
            }
            Ok((booking, changed))
        })
        .await?;
    if changed {
        live::publish_event(ctx.state().await?.bus(), ctx.firm(), event.as_str(), booking_event(&booking)).await;
    }
    Ok(envelope::ok(booking))
}

/// Confirms a booking that waited for a member; both sides get the confirmed invitation.
#[utoipa::path(
    post, path = "/api/v1/bookings/{id}/confirm", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Booking id")),
    responses(
        (status = 200, description = "Confirmed (or already was)", body = Booking),
        (status = 404, description = "No such booking in this firm", body = ErrorBody),
        (status = 409, description = "The booking is cancelled", body = ErrorBody),
    )
)]
pub async fn confirm_booking(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    member_change(&ctx, id, webhooks::EventType::BookingConfirmed, async |conn, firm| {
        bookings::confirm(conn, firm, id).await
    })
    .await
}

/// Counts a public request against the client's address in `scope`; 429 past `max`.
pub(super) async fn public_allowance(
    state: &AppState,
    meta: &RequestMeta,
    scope: &str,
    max: u32,
    window: Duration,
) -> Result<(), ApiError> {
    let Some(ip) = meta.ip.as_deref() else { return Ok(()) };
    let key = throttle::scoped_ip_key(scope, ip);
    let wait = state
        .db()
        .platform_tx(|conn| async move { throttle::take_attempt(conn, &key, max, window).await }.scope_boxed())
        .await?;
    match wait {
        Some(retry_after) => Err(throttled(retry_after)),
        None => Ok(()),
    }
}

/// The firm of an active link, by slug; 404 for any other.
async fn public_link(state: &AppState, slug: &str) -> Result<(FirmId, BookingLink), ApiError> {
    let missing = || ApiError::NotFound("no such booking page".into());
    if slug.len() > 63 {
        return Err(missing());
    }
    let lookup = slug.to_owned();
    let firm = state
        .db()
        .platform_tx(|conn| async move { bookings::firm_of_slug(conn, &lookup).await }.scope_boxed())
        .await?
        .ok_or_else(missing)?;
    let slug = slug.to_owned();
    let link = state
        .db()
        .firm_tx(firm, |conn| async move { bookings::find_by_slug(conn, firm, &slug).await }.scope_boxed())
        .await
        .map_err(|err| match err {
            DomainError::NotFound(_) => missing(),
            other => other.into(),
        })?;
    Ok((firm, link))
}

/// A booking page as the invitee sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicLink {
    pub slug: String,
    pub title: String,
    pub duration_minutes: i32,
    pub questions: Vec<Question>,
    pub requires_confirmation: bool,
}

/// A booking page: its title, length and questions.
#[utoipa::path(
    get, path = "/api/v1/public/booking-links/{slug}", tag = "bookings",
    params(("slug" = String, Path, description = "The page's slug")),
    responses(
        (status = 200, description = "The page", body = PublicLink),
        (status = 404, description = "No such active page", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub async fn public_page(
    state: web::Data<AppState>,
    meta: RequestMeta,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    public_allowance(&state, &meta, "booking-page", SLOT_LISTINGS_PER_MINUTE, Duration::minutes(1)).await?;
    let (_, link) = public_link(&state, &path.into_inner()).await?;
    Ok(envelope::ok(PublicLink {
        slug: link.slug,
        title: link.title,
        duration_minutes: link.duration_minutes,
        questions: link.questions,
        requires_confirmation: link.requires_confirmation,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlotsQuery {
    /// RFC 3339; default now.
    pub from: Option<DateTime<Utc>>,
    /// RFC 3339; at most 62 days after `from`; default 7 days after it.
    pub to: Option<DateTime<Utc>>,
    /// The invitee's IANA zone, for `local_start`; default UTC.
    pub tz: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Slot {
    pub start: DateTime<Utc>,
    /// The same moment in the invitee's zone, with its offset.
    #[schema(example = "2026-03-09T09:30:00-04:00")]
    pub local_start: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotList {
    pub time_zone: String,
    pub slots: Vec<Slot>,
}

fn invitee_zone(tz: Option<&str>) -> Result<chrono_tz::Tz, ApiError> {
    match tz {
        None => Ok(chrono_tz::UTC),
        Some(name) => {
            name.parse::<chrono_tz::Tz>().map_err(|_| ApiError::invalid_field("tz", "must be an IANA time zone"))
        }
    }
}

/// The page's open slots in a period, each in the invitee's zone too.
#[utoipa::path(
    get, path = "/api/v1/public/booking-links/{slug}/slots", tag = "bookings",
    params(("slug" = String, Path, description = "The page's slug"), SlotsQuery),
    responses(
        (status = 200, description = "Open slots", body = SlotList),
        (status = 400, description = "Invalid period or zone", body = ErrorBody),
        (status = 404, description = "No such active page", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub async fn public_slots(
    state: web::Data<AppState>,
    meta: RequestMeta,
    path: web::Path<String>,
    query: web::Query<SlotsQuery>,
) -> Result<HttpResponse, ApiError> {
    public_allowance(&state, &meta, "booking-page", SLOT_LISTINGS_PER_MINUTE, Duration::minutes(1)).await?;
    let query = query.into_inner();
    let zone = invitee_zone(query.tz.as_deref())?;
    let now = Utc::now();
    let from = query.from.unwrap_or(now);
    bookings::check_moment("from", from)?;
    let to = query.to.unwrap_or(from + Duration::days(7));
    let (firm, link) = public_link(&state, &path.into_inner()).await?;
    let starts = state
        .db()
        .firm_tx(firm, |conn| async move { bookings::link_slots(conn, firm, &link, now, from, to).await }.scope_boxed())
        .await?;
    let slots =
        starts.into_iter().map(|start| Slot { start, local_start: start.with_timezone(&zone).to_rfc3339() }).collect();
    Ok(envelope::ok(SlotList { time_zone: zone.name().to_owned(), slots }))
}

/// A booking as the invitee sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicBooking {
    pub id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The start in the invitee's zone.
    pub local_start: String,
    /// `confirmed`, `pending` while the page asks a member to confirm, or `cancelled`.
    #[schema(value_type = crate::domain::value_sets::BookingStatus)]
    pub status: String,
    /// Cancels or moves this booking through `/public/bookings/{cancel,reschedule}`; also
    /// in the invitee's email. Keep it private.
    pub manage_token: String,
}

impl PublicBooking {
    fn of(booking: &Booking, secret: &[u8], firm: FirmId) -> Self {
        let zone = booking.invitee_time_zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::UTC);
        PublicBooking {
            id: booking.id,
            start: booking.starts_at,
            end: booking.ends_at,
            local_start: booking.starts_at.with_timezone(&zone).to_rfc3339(),
            status: booking.status.clone(),
            manage_token: bookings::manage_token(secret, firm, booking.id),
        }
    }
}

/// Books a slot. Send an `Idempotency-Key` to retry safely: the same key and body return
/// the first answer.
#[utoipa::path(
    post, path = "/api/v1/public/booking-links/{slug}/bookings", tag = "bookings",
    params(
        ("slug" = String, Path, description = "The page's slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key, 1 to 200 visible ASCII characters"),
    ),
    request_body = BookingRequest,
    responses(
        (status = 201, description = "Booked", body = PublicBooking),
        (status = 400, description = "Invalid field, or not a slot the page offers now", body = ErrorBody),
        (status = 404, description = "No such active page", body = ErrorBody),
        (status = 409, description = "The slot was just taken, or the key was used with another body", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub async fn public_book(
    state: web::Data<AppState>,
    meta: RequestMeta,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonObject<BookingRequest>,
) -> Result<HttpResponse, ApiError> {
    public_allowance(&state, &meta, "booking", BOOKINGS_PER_TEN_MINUTES, Duration::minutes(10)).await?;
    let request = body.into_inner();
    let (firm, link) = public_link(&state, &path.into_inner()).await?;
    let once = Once::of(&req, format!("booking:{}", link.id), &request)?;
    let attempts = state.job_attempts();
    let secret = manage_secret(&state);
    let answer = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let Once { key, scope, hash } = once;
                if let Some(key) = &key
                    && let Some(replay) = idempotency::replay(conn, firm, &scope, key, &hash).await?
                {
                    return Ok((replay, None));
                }
                let booking = bookings::book(conn, firm, &link, &request, Utc::now()).await?;
                webhooks::emit(conn, firm, webhooks::EventType::BookingCreated, booking_event(&booking), attempts)
                    .await?;
                bookings::queue_notices(conn, firm, &booking, attempts).await?;
                let shown = PublicBooking::of(&booking, &secret, firm);
                let body = serde_json::json!({ "data": shown, "meta": {} });
                let first = Replay { status: 201, body };
                if let Some(key) = &key {
                    idempotency::remember(conn, firm, &scope, key, &first).await?;
                }
                Ok::<_, DomainError>((first, Some(booking)))
            }
            .scope_boxed()
        })
        .await?;
    let (replay, fresh) = answer;
    if let Some(booking) = fresh {
        live::publish_event(state.bus(), firm, "booking.created", booking_event(&booking)).await;
    }
    Ok(HttpResponse::build(StatusCode::from_u16(replay.status).unwrap_or(StatusCode::CREATED)).json(replay.body))
}

fn manage_secret(state: &AppState) -> Vec<u8> {
    use secrecy::ExposeSecret;
    state.settings().auth.jwt_secret.expose_secret().as_bytes().to_vec()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManageBody {
    /// The booking's manage token.
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    /// The booking's manage token.
    pub token: String,
    /// The new start, one of the slots the page offers.
    pub start: DateTime<Utc>,
}

/// The booking a manage token names, checked; 404 for any token that does not hold.
async fn managed<T, F>(state: &AppState, meta: &RequestMeta, token: &str, act: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'c> FnOnce(
            &'c mut diesel_async::AsyncPgConnection,
            FirmId,
            Uuid,
        ) -> scoped_futures::ScopedBoxFuture<'static, 'c, Result<T, DomainError>>
        + Send
        + 'static,
{
    public_allowance(state, meta, "booking-manage", BOOKINGS_PER_TEN_MINUTES, Duration::minutes(10)).await?;
    let missing = || ApiError::NotFound("no such booking".into());
    let (firm, id) = bookings::parse_manage_token(&manage_secret(state), token.trim()).ok_or_else(missing)?;
    state.db().firm_tx(firm, move |conn| act(conn, firm, id)).await.map_err(|err| match err {
        DomainError::NotFound(_) => missing(),
        other => other.into(),
    })
}

/// A booking as its invitee manages it.
#[utoipa::path(
    post, path = "/api/v1/public/bookings/lookup", tag = "bookings",
    request_body = ManageBody,
    responses(
        (status = 200, description = "The booking, with the link it was made on", body = ManagedBooking),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No booking for this token", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub async fn public_lookup(
    state: web::Data<AppState>,
    meta: RequestMeta,
    body: JsonObject<ManageBody>,
) -> Result<HttpResponse, ApiError> {
    let secret = manage_secret(&state);
    let booking = managed(&state, &meta, &body.token, move |conn, firm, id| {
        async move {
            let booking = bookings::find(conn, firm, id).await?;
            let link = bookings::find_link(conn, firm, booking.link_id).await?;
            Ok(ManagedBooking {
                booking: PublicBooking::of(&booking, &secret, firm),
                link_slug: link.slug,
                title: link.title,
                duration_minutes: link.duration_minutes,
                time_zone: booking.invitee_time_zone,
            })
        }
        .scope_boxed()
    })
    .await?;
    Ok(envelope::ok(booking))
}

/// A booking as its manage page shows it: with the link it was made on, whose open times
/// the page offers for moving it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManagedBooking {
    #[serde(flatten)]
    pub booking: PublicBooking,
    /// The link's public page: its slots are where the booking can move.
    pub link_slug: String,
    pub title: String,
    pub duration_minutes: i32,
    /// The zone the invitee booked in.
    pub time_zone: String,
}

/// Cancels a booking by its manage token; both sides get a cancellation.
#[utoipa::path(
    post, path = "/api/v1/public/bookings/cancel", tag = "bookings",
    request_body = ManageBody,
    responses(
        (status = 200, description = "Cancelled (or already was)", body = PublicBooking),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No booking for this token", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub async fn public_cancel(
    state: web::Data<AppState>,
    meta: RequestMeta,
    body: JsonObject<ManageBody>,
) -> Result<HttpResponse, ApiError> {
    let (secret, attempts) = (manage_secret(&state), state.job_attempts());
    let (booking, changed, firm) = managed(&state, &meta, &body.token, move |conn, firm, id| {
        async move {
            let (booking, changed) = bookings::cancel(conn, firm, id).await?;
            if changed {
                webhooks::emit(conn, firm, webhooks::EventType::BookingCancelled, booking_event(&booking), attempts)
                    .await?;
                bookings::queue_notices(conn, firm, &booking, attempts).await?;
            }
            Ok((booking, changed, firm))
        }
        .scope_boxed()
    })
    .await?;
    if changed {
        live::publish_event(state.bus(), firm, "booking.cancelled", booking_event(&booking)).await;
    }
    Ok(envelope::ok(PublicBooking::of(&booking, &secret, firm)))
}

/// Moves a booking to another slot of its page, with the same member; both sides get the
/// updated invitation (same UID, higher SEQUENCE).
#[utoipa::path(
    post, path = "/api/v1/public/bookings/reschedule", tag = "bookings",
    request_body = RescheduleBody,
    responses(
        (status = 200, description = "Moved", body = PublicBooking),
        (status = 400, description = "Invalid body, or not a slot the page offers now", body = ErrorBody),
        (status = 404, description = "No booking for this token", body = ErrorBody),
        (status = 409, description = "The slot was just taken, or the booking is cancelled", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
    )
)]
pub async fn public_reschedule(
    state: web::Data<AppState>,
    meta: RequestMeta,
    body: JsonObject<RescheduleBody>,
) -> Result<HttpResponse, ApiError> {
    let start = body.start;
    let (secret, attempts) = (manage_secret(&state), state.job_attempts());
    let (booking, firm) = managed(&state, &meta, &body.token, move |conn, firm, id| {
        async move {
            let booking = bookings::reschedule(conn, firm, id, start, Utc::now()).await?;
            webhooks::emit(conn, firm, webhooks::EventType::BookingRescheduled, booking_event(&booking), attempts)
                .await?;
            bookings::queue_notices(conn, firm, &booking, attempts).await?;
            Ok((booking, firm))
        }
        .scope_boxed()
    })
    .await?;
    live::publish_event(state.bus(), firm, "booking.rescheduled", booking_event(&booking)).await;
    Ok(envelope::ok(PublicBooking::of(&booking, &secret, firm)))
}
