//! Members' bookable hours, booking links, and the bookings made through them.
//!
//! A booking is checked again on the server whatever the client sent (the start must be a
//! slot the link offers now: hours, alignment, notice, window, buffers), and then the
//! database has the final word: the booking's busy time (slot plus buffers) goes into
//! `calendar_busy`, whose exclusion constraints refuse a second booking of the member over
//! any of it. Of concurrent requests for one slot, or for overlapping slots of different
//! lengths, one succeeds and the others are conflicts.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::booking_slots::{self, Availability, SlotRules};
use super::business_calendars::{WindowSpec, parse_time};
use super::business_time::Window;
use super::{DomainError, FieldErrors, FirmId, from_json, memberships, to_json};
use crate::db::schema::{availability_schedules, booking_links, bookings};

/// The most days one slot listing may span.
pub const MAX_LISTING_DAYS: i64 = 62;
const MAX_WINDOWS: usize = 70;
const MAX_OVERRIDES: usize = 400;
const MAX_QUESTIONS: usize = 20;
const MAX_ANSWER_CHARS: usize = 2000;

/// Refuses a moment outside 1970-2200, before any arithmetic on it: such dates are no
/// calendar's business, and chrono's arithmetic would overflow near its limits.
pub fn check_moment(field: &str, at: DateTime<Utc>) -> Result<(), DomainError> {
    use chrono::Datelike;
    if (1970..=2200).contains(&at.year()) {
        Ok(())
    } else {
        Err(DomainError::invalid_field(field, "must be between the years 1970 and 2200"))
    }
}

/// Whether text holds a control character (PostgreSQL refuses NUL; line breaks would
/// forge lines in emails).
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// A time range within one day, local wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    #[schema(example = "09:00")]
    pub start: String,
    #[schema(example = "17:00")]
    pub end: String,
}

/// A date whose hours replace the weekly ones; no windows: not available that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateOverride {
    pub date: NaiveDate,
    #[serde(default)]
    pub windows: Vec<TimeRange>,
}

/// A member's bookable hours.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AvailabilityView {
    pub user_id: Uuid,
    /// IANA zone the windows are in.
    pub time_zone: String,
    pub windows: Vec<WindowSpec>,
    pub overrides: Vec<DateOverride>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityInput {
    pub time_zone: String,
    pub windows: Vec<WindowSpec>,
    #[serde(default)]
    pub overrides: Vec<DateOverride>,
}

/// Minutes of the week a window covers on its day, as a half-open range (a window across
/// midnight runs past 1440).
fn minutes(window: &Window) -> (u32, u32) {
    use chrono::Timelike;
    let start = window.start.hour() * 60 + window.start.minute();
    let end = window.end.hour() * 60 + window.end.minute();
    (start, if end <= start { end + 1440 } else { end })
}

fn spans_meet(a: &Window, b: &Window) -> bool {
    let ((a_start, a_end), (b_start, b_end)) = (minutes(a), minutes(b));
    a_start < b_end && b_start < a_end
}

fn window_of(start: &str, end: &str) -> Option<Window> {
    Some(Window { start: parse_time(start, false)?, end: parse_time(end, true)? })
}

impl AvailabilityView {
    pub fn availability(&self) -> Result<Availability, DomainError> {
        let zone = self
            .time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| DomainError::Internal(format!("stored time zone {} unknown", self.time_zone)))?;
        let mut weekly: [Vec<Window>; 7] = Default::default();
        for spec in &self.windows {
            if let Some(window) = window_of(&spec.start, &spec.end) {
                weekly[spec.weekday.index()].push(window);
            }
        }
        let overrides = self
            .overrides
            .iter()
            .map(|o| (o.date, o.windows.iter().filter_map(|w| window_of(&w.start, &w.end)).collect()))
            .collect();
        Ok(Availability { zone, weekly, overrides })
    }
}

fn check_availability(input: &AvailabilityInput) -> Result<(), DomainError> {
    let mut errors = FieldErrors::default();
    if input.time_zone.parse::<chrono_tz::Tz>().is_err() {
        errors.insert("time_zone".into(), "must be an IANA time zone, e.g. Europe/Paris".into());
    }
    if input.windows.len() > MAX_WINDOWS {
        errors.insert("windows".into(), format!("at most {MAX_WINDOWS}"));
    }
    for (i, w) in input.windows.iter().enumerate() {
        let Some(window) = window_of(&w.start, &w.end) else {
            errors.insert(format!("windows[{i}]"), "start must be HH:MM, end HH:MM or 24:00".into());
            continue;
        };
        // Overlapping windows of one day would offer the same slots twice over (and cost
        // twice the work): one day's hours are given once.
        let overlaps = input.windows[..i]
            .iter()
            .filter(|other| other.weekday == w.weekday)
            .any(|other| window_of(&other.start, &other.end).is_some_and(|o| spans_meet(&o, &window)));
        if overlaps {
            errors.insert(format!("windows[{i}]"), "overlaps another window of the same day".into());
        }
    }
    if input.overrides.len() > MAX_OVERRIDES {
        errors.insert("overrides".into(), format!("at most {MAX_OVERRIDES}"));
    }
    for (i, o) in input.overrides.iter().enumerate() {
        if o.windows.len() > 10 {
            errors.insert(format!("overrides[{i}].windows"), "at most 10".into());
        }
        for (j, w) in o.windows.iter().enumerate() {
            if window_of(&w.start, &w.end).is_none() {
                errors.insert(format!("overrides[{i}].windows[{j}]"), "start must be HH:MM, end HH:MM or 24:00".into());
            }
        }
    }
    DomainError::check(errors)
}

type AvailabilityRow = (Uuid, String, serde_json::Value, serde_json::Value, DateTime<Utc>);

fn availability_view(row: AvailabilityRow) -> Result<AvailabilityView, DomainError> {
    let (user_id, time_zone, windows, overrides, updated_at) = row;
    Ok(AvailabilityView {
        user_id,
        time_zone,
        windows: from_json("windows", windows)?,
        overrides: from_json("overrides", overrides)?,
        updated_at,
    })
}

/// A member's hours, if set.
pub async fn availability(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user: Uuid,
) -> Result<Option<AvailabilityView>, DomainError> {
    let row: Option<AvailabilityRow> = availability_schedules::table
        .filter(availability_schedules::firm_id.eq(firm.into_uuid()))
        .filter(availability_schedules::user_id.eq(user))
        .select((
            availability_schedules::user_id,
            availability_schedules::time_zone,
            availability_schedules::windows,
            availability_schedules::overrides,
            availability_schedules::updated_at,
        ))
        .first(conn)
        .await
        .optional()?;
    row.map(availability_view).transpose()
}

/// Sets a member's hours (replacing what they were).
pub async fn set_availability(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user: Uuid,
    input: AvailabilityInput,
) -> Result<AvailabilityView, DomainError> {
    check_availability(&input)?;
    let values = (
        availability_schedules::firm_id.eq(firm.into_uuid()),
        availability_schedules::user_id.eq(user),
        availability_schedules::time_zone.eq(&input.time_zone),
        availability_schedules::windows.eq(to_json(&input.windows)?),
        availability_schedules::overrides.eq(to_json(&input.overrides)?),
        availability_schedules::updated_at.eq(Utc::now()),
    );
    diesel::insert_into(availability_schedules::table)
        .values(values.clone())
        .on_conflict((availability_schedules::firm_id, availability_schedules::user_id))
        .do_update()
        .set(values)
        .execute(conn)
        .await?;
    availability(conn, firm, user).await?.ok_or(DomainError::NotFound("availability"))
}

/// A question the invitee answers when booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The key its answer is sent under (`[a-z0-9_]`, up to 40).
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub required: bool,
}

/// How a link with several members picks one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// One member.
    Single,
    /// Whoever is free, the one with the fewest upcoming bookings first.
    RoundRobin,
}

impl Assignment {
    fn as_str(self) -> &'static str {
        match self {
            Assignment::Single => "single",
            Assignment::RoundRobin => "round_robin",
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BookingLink {
    pub id: Uuid,
    /// The public page: `/api/v1/public/booking-links/{slug}`.
    pub slug: String,
    pub title: String,
    pub member_ids: Vec<Uuid>,
    #[schema(value_type = Assignment)]
    pub assignment: String,
    pub duration_minutes: i32,
    pub buffer_before_minutes: i32,
    pub buffer_after_minutes: i32,
    pub min_notice_minutes: i32,
    /// How many days ahead slots are offered.
    pub window_days: i32,
    pub slot_interval_minutes: i32,
    pub questions: Vec<Question>,
    /// Bookings wait as `pending` until a member confirms them.
    pub requires_confirmation: bool,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = booking_links)]
struct LinkRow {
    id: Uuid,
    slug: String,
    title: String,
    member_ids: Vec<Uuid>,
    assignment: String,
    duration_minutes: i32,
    buffer_before_minutes: i32,
    buffer_after_minutes: i32,
    min_notice_minutes: i32,
    window_days: i32,
    slot_interval_minutes: i32,
    questions: serde_json::Value,
    requires_confirmation: bool,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl LinkRow {
    fn link(self) -> Result<BookingLink, DomainError> {
        Ok(BookingLink {
            questions: from_json("questions", self.questions)?,
            id: self.id,
            slug: self.slug,
            title: self.title,
            member_ids: self.member_ids,
            assignment: self.assignment,
            duration_minutes: self.duration_minutes,
            buffer_before_minutes: self.buffer_before_minutes,
            buffer_after_minutes: self.buffer_after_minutes,
            min_notice_minutes: self.min_notice_minutes,
            window_days: self.window_days,
            slot_interval_minutes: self.slot_interval_minutes,
            requires_confirmation: self.requires_confirmation,
            active: self.active,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl BookingLink {
    pub fn rules(&self) -> SlotRules {
        let minutes = |m: i32| Duration::minutes(i64::from(m));
        SlotRules {
            duration: minutes(self.duration_minutes),
            interval: minutes(self.slot_interval_minutes),
            buffer_before: minutes(self.buffer_before_minutes),
            buffer_after: minutes(self.buffer_after_minutes),
            min_notice: minutes(self.min_notice_minutes),
            window: Duration::days(i64::from(self.window_days)),
        }
    }
}

/// A link as created or changed; on creation `title`, `member_ids` and `duration_minutes`
/// are required.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    /// Default: made from the title and a random suffix.
    pub slug: Option<String>,
    pub title: Option<String>,
    pub member_ids: Option<Vec<Uuid>>,
    pub assignment: Option<Assignment>,
    pub duration_minutes: Option<i32>,
    pub buffer_before_minutes: Option<i32>,
    pub buffer_after_minutes: Option<i32>,
    pub min_notice_minutes: Option<i32>,
    pub window_days: Option<i32>,
    /// Default: the duration.
    pub slot_interval_minutes: Option<i32>,
    pub questions: Option<Vec<Question>>,
    pub requires_confirmation: Option<bool>,
    pub active: Option<bool>,
}

fn check_link(input: &LinkInput, errors: &mut FieldErrors) {
    let in_range = |errors: &mut FieldErrors, field: &str, value: Option<i32>, low: i32, high: i32| {
        if value.is_some_and(|v| !(low..=high).contains(&v)) {
            errors.insert(field.into(), format!("must be {low} to {high}"));
        }
    };
    if let Some(slug) = &input.slug {
        let ok = (3..=63).contains(&slug.len())
            && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !slug.starts_with('-');
        if !ok {
            errors.insert("slug".into(), "3 to 63 of a-z, 0-9 and -, not starting with -".into());
        }
    }
    if input.title.as_ref().is_some_and(|t| t.trim().is_empty() || t.chars().count() > 200 || has_control(t)) {
        errors.insert("title".into(), "must be 1 to 200 characters, no control characters".into());
    }
    if input.member_ids.as_ref().is_some_and(|m| m.is_empty() || m.len() > 20) {
        errors.insert("member_ids".into(), "1 to 20 members".into());
    }
    in_range(errors, "duration_minutes", input.duration_minutes, 5, 720);
    in_range(errors, "buffer_before_minutes", input.buffer_before_minutes, 0, 240);
    in_range(errors, "buffer_after_minutes", input.buffer_after_minutes, 0, 240);
    in_range(errors, "min_notice_minutes", input.min_notice_minutes, 0, 525_600);
    in_range(errors, "window_days", input.window_days, 1, 365);
    in_range(errors, "slot_interval_minutes", input.slot_interval_minutes, 5, 720);
    if let Some(questions) = &input.questions {
        if questions.len() > MAX_QUESTIONS {
            errors.insert("questions".into(), format!("at most {MAX_QUESTIONS}"));
        }
        for (i, q) in questions.iter().enumerate() {
            let id_ok = (1..=40).contains(&q.id.len())
                && q.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !id_ok || questions[..i].iter().any(|other| other.id == q.id) {
                errors.insert(format!("questions[{i}].id"), "1 to 40 of a-z, 0-9 and _, unique".into());
            }
            if q.label.trim().is_empty() || q.label.chars().count() > 300 || has_control(&q.label) {
                errors.insert(
                    format!("questions[{i}].label"),
                    "must be 1 to 300 characters, no control characters".into(),
                );
            }
        }
    }
}

/// Every member named must be an active member of the firm (not a portal login).
async fn check_members(conn: &mut AsyncPgConnection, firm: FirmId, members: &[Uuid]) -> Result<(), DomainError> {
    for (i, member) in members.iter().enumerate() {
        let usable = match memberships::find(conn, firm, *member).await {
            Ok(found) => found.status == "active" && found.role != "client",
            Err(DomainError::NotFound(_)) => false,
            Err(other) => return Err(other),
        };
        if !usable || members[..i].contains(member) {
            return Err(DomainError::invalid_field(
                &format!("member_ids[{i}]"),
                "must be an active member of this firm, named once",
            ));
        }
    }
    Ok(())
}

fn generated_slug(title: &str) -> String {
    let mut base: String = title
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    base.truncate(40);
    let base = base.trim_end_matches('-');
    let suffix = &Uuid::new_v4().simple().to_string()[..8];
    if base.is_empty() { format!("book-{suffix}") } else { format!("{base}-{suffix}") }
}

/// What a new link must name (the body is shared with the update, where all are optional).
pub const LINK_REQUIRED_ON_CREATE: [&str; 3] = ["title", "member_ids", "duration_minutes"];

pub async fn create_link(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    by: Uuid,
    input: LinkInput,
) -> Result<BookingLink, DomainError> {
    let mut errors = FieldErrors::default();
    check_link(&input, &mut errors);
    let missing = [input.title.is_none(), input.member_ids.is_none(), input.duration_minutes.is_none()];
    for (field, missing) in LINK_REQUIRED_ON_CREATE.into_iter().zip(missing) {
        if missing {
            errors.insert(field.into(), "is required".into());
        }
    }
    DomainError::check(errors)?;
    let members = input.member_ids.clone().unwrap_or_default();
    check_members(conn, firm, &members).await?;
    let title = input.title.as_deref().unwrap_or_default().trim().to_owned();
    let slug = input.slug.clone().unwrap_or_else(|| generated_slug(&title));
    let duration = input.duration_minutes.unwrap_or(30);
    let assignment =
        input.assignment.unwrap_or(if members.len() > 1 { Assignment::RoundRobin } else { Assignment::Single });
    let row = diesel::insert_into(booking_links::table)
        .values((
            booking_links::firm_id.eq(firm.into_uuid()),
            booking_links::id.eq(Uuid::now_v7()),
            booking_links::slug.eq(&slug),
            booking_links::title.eq(&title),
            booking_links::member_ids.eq(&members),
            booking_links::assignment.eq(assignment.as_str()),
            booking_links::duration_minutes.eq(duration),
            booking_links::buffer_before_minutes.eq(input.buffer_before_minutes.unwrap_or(0)),
            booking_links::buffer_after_minutes.eq(input.buffer_after_minutes.unwrap_or(0)),
            booking_links::min_notice_minutes.eq(input.min_notice_minutes.unwrap_or(0)),
            booking_links::window_days.eq(input.window_days.unwrap_or(60)),
            booking_links::slot_interval_minutes.eq(input.slot_interval_minutes.unwrap_or(duration)),
            booking_links::questions.eq(to_json(&input.questions.clone().unwrap_or_default())?),
            booking_links::requires_confirmation.eq(input.requires_confirmation.unwrap_or(false)),
            booking_links::active.eq(input.active.unwrap_or(true)),
            booking_links::created_by.eq(Some(by)),
        ))
        .returning(LinkRow::as_returning())
        .get_result(conn)
        .await
        .map_err(DomainError::conflict_on_unique("that slug is taken; choose another"))?;
    row.link()
}

pub async fn find_link(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<BookingLink, DomainError> {
    booking_links::table
        .filter(booking_links::firm_id.eq(firm.into_uuid()))
        .filter(booking_links::id.eq(id))
        .select(LinkRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("booking link"))?
        .link()
}

pub async fn list_links(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<BookingLink>, DomainError> {
    booking_links::table
        .filter(booking_links::firm_id.eq(firm.into_uuid()))
        .order((booking_links::created_at, booking_links::id))
        .select(LinkRow::as_select())
        .limit(500)
        .load(conn)
        .await?
        .into_iter()
        .map(LinkRow::link)
        .collect()
}

pub async fn update_link(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: LinkInput,
) -> Result<BookingLink, DomainError> {
    let mut errors = FieldErrors::default();
    check_link(&input, &mut errors);
    DomainError::check(errors)?;
    find_link(conn, firm, id).await?;
    if let Some(members) = &input.member_ids {
        check_members(conn, firm, members).await?;
    }
    let questions = input.questions.as_ref().map(to_json).transpose()?;
    diesel::update(booking_links::table)
        .filter(booking_links::firm_id.eq(firm.into_uuid()))
        .filter(booking_links::id.eq(id))
        .set((
            input.slug.as_ref().map(|s| booking_links::slug.eq(s.clone())),
            input.title.as_deref().map(|t| booking_links::title.eq(t.trim().to_owned())),
            input.member_ids.as_ref().map(|m| booking_links::member_ids.eq(m.clone())),
            input.assignment.map(|a| booking_links::assignment.eq(a.as_str())),
            input.duration_minutes.map(|d| booking_links::duration_minutes.eq(d)),
            input.buffer_before_minutes.map(|b| booking_links::buffer_before_minutes.eq(b)),
            input.buffer_after_minutes.map(|b| booking_links::buffer_after_minutes.eq(b)),
            input.min_notice_minutes.map(|n| booking_links::min_notice_minutes.eq(n)),
            input.window_days.map(|w| booking_links::window_days.eq(w)),
            input.slot_interval_minutes.map(|s| booking_links::slot_interval_minutes.eq(s)),
            questions.map(|q| booking_links::questions.eq(q)),
            input.requires_confirmation.map(|r| booking_links::requires_confirmation.eq(r)),
            input.active.map(|a| booking_links::active.eq(a)),
            booking_links::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .map_err(DomainError::conflict_on_unique("that slug is taken; choose another"))?;
    find_link(conn, firm, id).await
}

#[derive(QueryableByName)]
struct LinkFirm {
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    firm: Option<Uuid>,
}

/// The firm of an active link, by its public slug (on a platform connection).
pub async fn firm_of_slug(conn: &mut AsyncPgConnection, slug: &str) -> Result<Option<FirmId>, DomainError> {
    let row = crate::db::cached_query("SELECT cp_booking_link_firm($1) AS firm")
        .bind::<diesel::sql_types::Text, _>(slug)
        .get_result::<LinkFirm>(conn)
        .await?;
    Ok(row.firm.map(FirmId))
}

/// An active link by its slug, within the firm.
pub async fn find_by_slug(conn: &mut AsyncPgConnection, firm: FirmId, slug: &str) -> Result<BookingLink, DomainError> {
    booking_links::table
        .filter(booking_links::firm_id.eq(firm.into_uuid()))
        .filter(booking_links::slug.eq(slug))
        .filter(booking_links::active.eq(true))
        .select(LinkRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("booking link"))?
        .link()
}

#[derive(QueryableByName)]
struct BusyRange {
    #[diesel(sql_type = Timestamptz)]
    starts: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    ends: DateTime<Utc>,
}

/// A member's busy time meeting `[from, to)` (but for booking `except`), sorted by start.
async fn busy(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    member: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    except: Option<Uuid>,
) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>, DomainError> {
    let rows = crate::db::cached_query(
        "SELECT lower(during) AS starts, upper(during) AS ends FROM calendar_busy \
          WHERE firm_id = $1 AND user_id = $2 AND during && tstzrange($3, $4, '[)') \
            AND ($5::uuid IS NULL OR booking_id IS DISTINCT FROM $5) ORDER BY lower(during)",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(member)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(except)
    .load::<BusyRange>(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.starts, r.ends)).collect())
}

/// A member's bookable hours, when they are an active member of the firm who has set some:
/// a member who left (or was deactivated) is offered no more.
async fn member_hours(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    member: Uuid,
) -> Result<Option<Availability>, DomainError> {
    let active = match memberships::find(conn, firm, member).await {
        Ok(found) => found.status == "active",
        Err(DomainError::NotFound(_)) => false,
        Err(other) => return Err(other),
    };
    if !active {
        return Ok(None);
    }
    availability(conn, firm, member).await?.map(|hours| hours.availability()).transpose()
}

/// Whether the link offers `start` with `member`: `None` when their hours, the alignment,
/// the notice or the window never allow it; else whether their busy time (all of it but
/// booking `except`'s, which is being moved) leaves it free.
async fn start_offered(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    link: &BookingLink,
    member: Uuid,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    except: Option<Uuid>,
) -> Result<Option<bool>, DomainError> {
    let Some(hours) = member_hours(conn, firm, member).await? else { return Ok(None) };
    let rules = link.rules();
    let probe = (start, start + Duration::seconds(1));
    if !booking_slots::slots(&hours, &rules, &[], now, probe.0, probe.1).contains(&start) {
        return Ok(None);
    }
    let around = rules.blocked(start);
    let busy = busy(conn, firm, member, around, except).await?;
    Ok(Some(booking_slots::slots(&hours, &rules, &busy, now, probe.0, probe.1).contains(&start)))
}

/// The link's slots in `[from, to)`: a start is offered when any of its members is free.
pub async fn link_slots(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    link: &BookingLink,
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, DomainError> {
    check_moment("from", from)?;
    check_moment("to", to)?;
    if to <= from || to - from > Duration::days(MAX_LISTING_DAYS) {
        return Err(DomainError::invalid_field("to", format!("must be after `from`, at most {MAX_LISTING_DAYS} days")));
    }
    let rules = link.rules();
    let around = (from - rules.buffer_before - rules.duration, to + rules.duration + rules.buffer_after);
    let mut all = Vec::new();
    for member in &link.member_ids {
        let Some(hours) = member_hours(conn, firm, *member).await? else { continue };
        let busy = busy(conn, firm, *member, around, None).await?;
        all.extend(booking_slots::slots(&hours, &rules, &busy, now, from, to));
    }
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = bookings)]
pub struct Booking {
    pub id: Uuid,
    pub link_id: Uuid,
    pub member_user_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// `pending` (awaiting a member's confirmation), `confirmed` or `cancelled`.
    #[schema(value_type = super::value_sets::BookingStatus)]
    pub status: String,
    pub invitee_name: String,
    pub invitee_email: String,
    pub invitee_time_zone: String,
    #[schema(value_type = Object)]
    pub answers: serde_json::Value,
    /// The invitation's UID, the same for every change of this booking.
    pub ical_uid: String,
    /// Raised on every change, as calendars expect.
    pub ical_sequence: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// What an invitee sends to book.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    /// One of the slots offered (RFC 3339).
    pub start: DateTime<Utc>,
    /// The invitee's IANA zone (for their invitation).
    pub tz: String,
    pub name: String,
    pub email: String,
    /// Answers to the link's questions, by question id.
    #[serde(default)]
    pub answers: serde_json::Map<String, serde_json::Value>,
}

fn check_request(link: &BookingLink, request: &BookingRequest) -> Result<(), DomainError> {
    let mut errors = FieldErrors::default();
    if request.tz.parse::<chrono_tz::Tz>().is_err() {
        errors.insert("tz".into(), "must be an IANA time zone".into());
    }
    if request.name.trim().is_empty() || request.name.chars().count() > 200 || has_control(&request.name) {
        errors.insert("name".into(), "must be 1 to 200 characters, no control characters".into());
    }
    if check_moment("start", request.start).is_err() {
        errors.insert("start".into(), "must be between the years 1970 and 2200".into());
    }
    let email = request.email.trim();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !plausible {
        errors.insert("email".into(), "must be an email address".into());
    }
    for (key, value) in &request.answers {
        match (link.questions.iter().find(|q| &q.id == key), value.as_str()) {
            (None, _) => {
                errors.insert(format!("answers.{key}"), "no such question".into());
            }
            (Some(_), Some(text)) if text.chars().count() <= MAX_ANSWER_CHARS && !text.contains('\0') => {}
            (Some(_), _) => {
                errors.insert(format!("answers.{key}"), format!("must be text of at most {MAX_ANSWER_CHARS}"));
            }
        }
    }
    for question in link.questions.iter().filter(|q| q.required) {
        let answered = request.answers.get(&question.id).and_then(|v| v.as_str()).is_some_and(|t| !t.trim().is_empty());
        if !answered {
            errors.insert(format!("answers.{}", question.id), "is required".into());
        }
    }
    DomainError::check(errors)
}

/// The link's members in the order they are offered a booking: as listed for a single
/// member; for round robin, the fewest upcoming bookings first.
async fn members_in_turn(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    link: &BookingLink,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, DomainError> {
    if link.assignment != Assignment::RoundRobin.as_str() {
        return Ok(link.member_ids.clone());
    }
    let counts: Vec<(Uuid, i64)> = bookings::table
        .filter(bookings::firm_id.eq(firm.into_uuid()))
        .filter(bookings::member_user_id.eq_any(&link.member_ids))
        .filter(bookings::status.ne("cancelled"))
        .filter(bookings::starts_at.ge(now))
        .group_by(bookings::member_user_id)
        .select((bookings::member_user_id, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    let mut members = link.member_ids.clone();
    members.sort_by_key(|m| counts.iter().find(|(id, _)| id == m).map_or(0, |(_, n)| *n));
    Ok(members)
}

/// Books `request` on `link`, checked again here whatever the client saw: a start no
/// member's hours, the notice, the window or the buffers allow is refused (400); one that
/// was free but is taken now is a conflict (409). Runs in the caller's transaction.
pub async fn book(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    link: &BookingLink,
    request: &BookingRequest,
    now: DateTime<Utc>,
) -> Result<Booking, DomainError> {
    check_request(link, request)?;
    let start = request.start;
    let mut offered = false;
    for member in members_in_turn(conn, firm, link, now).await? {
        let Some(free) = start_offered(conn, firm, link, member, now, start, None).await? else { continue };
        offered = true;
        if !free {
            continue;
        }
        match insert_booking(conn, firm, link, member, request).await {
            Ok(booking) => return Ok(booking),
            Err(DomainError::Conflict(_)) => continue,
            Err(other) => return Err(other),
        }
    }
    if offered {
        Err(DomainError::Conflict("that time was just booked; choose another slot".into()))
    } else {
        Err(DomainError::invalid_field("start", "is not a slot this link offers now"))
    }
}

/// The booking and its busy time, in a savepoint: the exclusion constraint's refusal
/// (someone booked the member over it meanwhile) is a conflict and undoes both.
async fn insert_booking(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    link: &BookingLink,
    member: Uuid,
    request: &BookingRequest,
) -> Result<Booking, DomainError> {
    let rules = link.rules();
    let (blocked_from, blocked_to) = rules.blocked(request.start);
    let id = Uuid::now_v7();
    let status = if link.requires_confirmation { "pending" } else { "confirmed" };
    let values = (
        bookings::firm_id.eq(firm.into_uuid()),
        bookings::id.eq(id),
        bookings::link_id.eq(link.id),
        bookings::member_user_id.eq(member),
        bookings::starts_at.eq(request.start),
        bookings::ends_at.eq(request.start + rules.duration),
        bookings::status.eq(status),
        bookings::invitee_name.eq(request.name.trim().to_owned()),
        bookings::invitee_email.eq(request.email.trim().to_owned()),
        bookings::invitee_time_zone.eq(request.tz.clone()),
        bookings::answers.eq(serde_json::Value::Object(request.answers.clone())),
        bookings::ical_uid.eq(format!("{id}@consultantpro")),
    );
    let inserted = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            let booking = diesel::insert_into(bookings::table)
                .values(values)
                .returning(Booking::as_returning())
                .get_result(conn)
                .await?;
            crate::db::cached_query(
                "INSERT INTO calendar_busy (firm_id, id, user_id, during, kind, booking_id) \
                     VALUES ($1, $2, $3, tstzrange($4, $5, '[)'), 'booking', $6)",
            )
            .bind::<SqlUuid, _>(firm.into_uuid())
            .bind::<SqlUuid, _>(Uuid::now_v7())
            .bind::<SqlUuid, _>(member)
            .bind::<Timestamptz, _>(blocked_from)
            .bind::<Timestamptz, _>(blocked_to)
            .bind::<SqlUuid, _>(id)
            .execute(conn)
            .await?;
            Ok(booking)
        })
        .await;
    match inserted {
        Ok(booking) => Ok(booking),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::ExclusionViolation, _)) => {
            Err(DomainError::Conflict("that time was just booked".into()))
        }
        Err(other) => Err(other.into()),
    }
}

/// The firm's bookings starting in `[from, to)`, of one member or all, in order.
pub async fn list(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    member: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Booking>, DomainError> {
    let mut query = bookings::table
        .filter(bookings::firm_id.eq(firm.into_uuid()))
        .filter(bookings::starts_at.ge(from))
        .filter(bookings::starts_at.lt(to))
        .order((bookings::starts_at, bookings::id))
        .select(Booking::as_select())
        .limit(1000)
        .into_boxed();
    if let Some(member) = member {
        query = query.filter(bookings::member_user_id.eq(member));
    }
    Ok(query.load(conn).await?)
}

/// Confirms a booking that waited for a member (`pending`): the invitation goes out again,
/// confirmed, with a higher sequence. With whether this call confirmed it.
pub async fn confirm(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<(Booking, bool), DomainError> {
    let booking = lock(conn, firm, id).await?;
    match booking.status.as_str() {
        "confirmed" => return Ok((booking, false)),
        "cancelled" => return Err(DomainError::Conflict("a cancelled booking cannot be confirmed".into())),
        _ => {}
    }
    let confirmed = diesel::update(bookings::table)
        .filter(bookings::firm_id.eq(firm.into_uuid()))
        .filter(bookings::id.eq(id))
        .set((
            bookings::status.eq("confirmed"),
            bookings::ical_sequence.eq(bookings::ical_sequence + 1),
            bookings::updated_at.eq(Utc::now()),
        ))
        .returning(Booking::as_returning())
        .get_result(conn)
        .await?;
    Ok((confirmed, true))
}

/// Cancels a booking: its busy time is freed and its invitation sequence raised. With
/// whether this call cancelled it (false: it already was).
pub async fn cancel(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<(Booking, bool), DomainError> {
    let booking: Booking = bookings::table
        .filter(bookings::firm_id.eq(firm.into_uuid()))
        .filter(bookings::id.eq(id))
        .select(Booking::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("booking"))?;
    if booking.status == "cancelled" {
        return Ok((booking, false));
    }
    crate::db::cached_query("DELETE FROM calendar_busy WHERE firm_id = $1 AND booking_id = ANY ($2)")
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<Array<SqlUuid>, _>(vec![id])
        .execute(conn)
        .await?;
    let now = Utc::now();
    let cancelled = diesel::update(bookings::table)
        .filter(bookings::firm_id.eq(firm.into_uuid()))
        .filter(bookings::id.eq(id))
        .set((
            bookings::status.eq("cancelled"),
            bookings::cancelled_at.eq(Some(now)),
            bookings::ical_sequence.eq(bookings::ical_sequence + 1),
            bookings::updated_at.eq(now),
        ))
        .returning(Booking::as_returning())
        .get_result(conn)
        .await?;
    Ok((cancelled, true))
}

/// A booking of the firm, as it is now (no lock: for reading it).
pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Booking, DomainError> {
    bookings::table
        .filter(bookings::firm_id.eq(firm.into_uuid()))
        .filter(bookings::id.eq(id))
        .select(Booking::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("booking"))
}

/// A booking of the firm, locked for the rest of the transaction.
pub async fn lock(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Booking, DomainError> {
    bookings::table
        .filter(bookings::firm_id.eq(firm.into_uuid()))
        .filter(bookings::id.eq(id))
        .select(Booking::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("booking"))
}

/// Moves a booking to `start`, with the same member: the new time must be a slot the link
/// offers that member now (the booking's own current time aside), and the exclusion
/// constraint has the last word as for a new booking. The invitation's UID stays; its
/// sequence rises.
pub async fn reschedule(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Booking, DomainError> {
    check_moment("start", start)?;
    let booking = lock(conn, firm, id).await?;
    if booking.status == "cancelled" {
        return Err(DomainError::Conflict("a cancelled booking cannot be moved; book again".into()));
    }
    if booking.starts_at <= now {
        return Err(DomainError::Conflict("a booking that has begun cannot be moved".into()));
    }
    let link = find_link(conn, firm, booking.link_id).await?;
    if !link.active {
        return Err(DomainError::Conflict("this booking page is closed; ask the firm to move it".into()));
    }
    match start_offered(conn, firm, &link, booking.member_user_id, now, start, Some(id)).await? {
        None => return Err(DomainError::invalid_field("start", "is not a slot this link offers now")),
        Some(false) => return Err(DomainError::Conflict("that time was just booked; choose another slot".into())),
        Some(true) => {}
    }
    let rules = link.rules();
    let (blocked_from, blocked_to) = rules.blocked(start);
    let moved = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            crate::db::cached_query(
                "UPDATE calendar_busy SET during = tstzrange($3, $4, '[)') WHERE firm_id = $1 AND booking_id = $2",
            )
            .bind::<SqlUuid, _>(firm.into_uuid())
            .bind::<SqlUuid, _>(id)
            .bind::<Timestamptz, _>(blocked_from)
            .bind::<Timestamptz, _>(blocked_to)
            .execute(conn)
            .await?;
            diesel::update(bookings::table)
                .filter(bookings::firm_id.eq(firm.into_uuid()))
                .filter(bookings::id.eq(id))
                .set((
                    bookings::starts_at.eq(start),
                    bookings::ends_at.eq(start + rules.duration),
                    // A page whose bookings a member confirms asks again for the new time.
                    bookings::status.eq(if link.requires_confirmation { "pending" } else { "confirmed" }),
                    bookings::ical_sequence.eq(bookings::ical_sequence + 1),
                    bookings::updated_at.eq(Utc::now()),
                ))
                .returning(Booking::as_returning())
                .get_result(conn)
                .await
        })
        .await;
    match moved {
        Ok(booking) => Ok(booking),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::ExclusionViolation, _)) => {
            Err(DomainError::Conflict("that time was just booked".into()))
        }
        Err(other) => Err(other.into()),
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn manage_mac(secret: &[u8], firm: FirmId, booking: Uuid) -> Option<HmacSha256> {
    use hmac::Mac;
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).ok()?;
    mac.update(b"booking-manage|");
    mac.update(firm.into_uuid().as_bytes());
    mac.update(booking.as_bytes());
    Some(mac)
}

/// The invitee's link to cancel or move a booking: the firm and booking, signed with the
/// server's key, so nothing is stored and nothing can be guessed. Base64url, 64 characters.
pub fn manage_token(secret: &[u8], firm: FirmId, booking: Uuid) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut bytes = Vec::with_capacity(48);
    bytes.extend_from_slice(firm.into_uuid().as_bytes());
    bytes.extend_from_slice(booking.as_bytes());
    if let Some(mac) = manage_mac(secret, firm, booking) {
        bytes.extend_from_slice(&mac.finalize().into_bytes()[..16]);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The firm and booking a manage token names, when its signature holds.
pub fn parse_manage_token(secret: &[u8], token: &str) -> Option<(FirmId, Uuid)> {
    use base64::Engine;
    use hmac::Mac;
    if token.len() != 64 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.as_bytes()).ok()?;
    if bytes.len() != 48 {
        return None;
    }
    let firm = FirmId(Uuid::from_slice(&bytes[..16]).ok()?);
    let booking = Uuid::from_slice(&bytes[16..32]).ok()?;
    manage_mac(secret, firm, booking)?.verify_truncated_left(&bytes[32..]).ok()?;
    Some((firm, booking))
}

/// The job that emails a booking's invitation or cancellation to one side.
pub const NOTIFY_JOB: &str = "booking.notify";

/// Queues the invitation (or cancellation) for the invitee and the member, as the booking
/// stands now, in the caller's transaction.
pub async fn queue_notices(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    booking: &Booking,
    attempts: i32,
) -> Result<(), DomainError> {
    let method = if booking.status == "cancelled" { "CANCEL" } else { "REQUEST" };
    for recipient in ["invitee", "member"] {
        let payload = serde_json::json!({
            "booking_id": booking.id,
            "recipient": recipient,
            "method": method,
            "sequence": booking.ical_sequence,
            "starts_at": booking.starts_at,
            "ends_at": booking.ends_at,
        });
        super::jobs::enqueue(conn, firm, NOTIFY_JOB, payload, attempts).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manage_token_names_its_booking_and_nothing_else() {
        let (firm, booking) = (FirmId(Uuid::now_v7()), Uuid::now_v7());
        let token = manage_token(b"a key of the server", firm, booking);
        assert_eq!(token.len(), 64);
        assert_eq!(parse_manage_token(b"a key of the server", &token), Some((firm, booking)));
        assert_eq!(parse_manage_token(b"another key", &token), None);
        // Another booking in the same token's place, or one character changed: refused.
        let forged = manage_token(b"a key of the server", firm, Uuid::now_v7());
        let spliced = format!("{}{}", &forged[..43], &token[43..]);
        assert_eq!(parse_manage_token(b"a key of the server", &spliced), None);
        let mut flipped = token.clone().into_bytes();
        flipped[60] = if flipped[60] == b'A' { b'B' } else { b'A' };
        assert_eq!(parse_manage_token(b"a key of the server", &String::from_utf8(flipped).unwrap()), None);
        assert_eq!(parse_manage_token(b"a key of the server", "short"), None);
    }
}
