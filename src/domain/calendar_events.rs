//! Members' own calendar events: one-off, or recurring by an RRULE read in the event's zone
//! (so a weekly 09:00 stays at 09:00 local across DST), with exceptions. A busy event's
//! occurrences up to [`HORIZON_DAYS`] ahead are rows of `calendar_busy`, where the exclusion
//! constraints keep bookings clear of them. A member's private feed (`.ics` at a secret
//! URL) carries their bookings and events.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{DomainError, FieldErrors, FirmId};
use crate::db::schema::{calendar_events, calendar_feeds};

/// How far ahead a recurring event's occurrences are kept as busy time (five years).
pub const HORIZON_DAYS: i64 = 5 * 366;
/// The most occurrences one event keeps as busy time.
pub const MAX_OCCURRENCES: u16 = 2000;

#[derive(Debug, Clone, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = calendar_events)]
pub struct CalendarEvent {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    /// The first occurrence.
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The zone its recurrence is read in.
    pub time_zone: String,
    /// RFC 5545 RRULE value, e.g. `FREQ=WEEKLY;BYDAY=MO,WE`.
    pub rrule: Option<String>,
    /// Occurrence starts removed from the recurrence.
    pub exdates: Vec<DateTime<Utc>>,
    /// Whether it keeps bookings away.
    pub busy: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// IANA zone; default UTC.
    pub time_zone: Option<String>,
    pub rrule: Option<String>,
    #[serde(default)]
    pub exdates: Vec<DateTime<Utc>>,
    /// Default true.
    pub busy: Option<bool>,
}

/// One occurrence of an event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Occurrence {
    pub event_id: Uuid,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub busy: bool,
}

fn zone_of(name: &str) -> Option<chrono_tz::Tz> {
    name.parse::<chrono_tz::Tz>().ok()
}

/// The occurrence starts of an event from its first up to `until`: the RRULE expanded in
/// the event's zone, exceptions removed. `None` when the rule does not parse.
pub fn occurrence_starts(
    starts_at: DateTime<Utc>,
    zone: chrono_tz::Tz,
    rule: Option<&str>,
    exdates: &[DateTime<Utc>],
    until: DateTime<Utc>,
) -> Option<Vec<DateTime<Utc>>> {
    occurrence_starts_between(starts_at, zone, rule, exdates, (starts_at, until))
}

/// As [`occurrence_starts`], only those from `from` on (a long-running rule expanded from
/// today, not from its first occurrence years ago).
pub fn occurrence_starts_between(
    starts_at: DateTime<Utc>,
    zone: chrono_tz::Tz,
    rule: Option<&str>,
    exdates: &[DateTime<Utc>],
    (from, until): (DateTime<Utc>, DateTime<Utc>),
) -> Option<Vec<DateTime<Utc>>> {
    let Some(rule) = rule else {
        return Some(if exdates.contains(&starts_at) { Vec::new() } else { vec![starts_at] });
    };
    if rule.contains(['\n', '\r', ':']) {
        return None;
    }
    let local = starts_at.with_timezone(&zone).naive_local().format("%Y%m%dT%H%M%S");
    let text = format!("DTSTART;TZID={}:{local}\nRRULE:{rule}", zone.name());
    let set: rrule::RRuleSet = text.parse().ok()?;
    let mut set = set.before(until.with_timezone(&rrule::Tz::UTC));
    if from > starts_at {
        set = set.after(from.with_timezone(&rrule::Tz::UTC));
    }
    let found = set.all(MAX_OCCURRENCES);
    Some(found.dates.into_iter().map(|d| d.with_timezone(&Utc)).filter(|d| !exdates.contains(d)).collect())
}

fn check(input: &EventInput) -> Result<chrono_tz::Tz, DomainError> {
    let mut errors = FieldErrors::default();
    if input.title.trim().is_empty() || input.title.chars().count() > 200 || super::bookings::has_control(&input.title)
    {
        errors.insert("title".into(), "must be 1 to 200 characters, no control characters".into());
    }
    for (field, at) in [("starts_at", input.starts_at), ("ends_at", input.ends_at)] {
        if super::bookings::check_moment(field, at).is_err() {
            errors.insert(field.into(), "must be between the years 1970 and 2200".into());
        }
    }
    // Nothing below may run on a moment out of range.
    DomainError::check(std::mem::take(&mut errors))?;
    if input.ends_at <= input.starts_at || input.ends_at - input.starts_at > Duration::days(7) {
        errors.insert("ends_at".into(), "must be after starts_at, at most 7 days later".into());
    }
    let zone = match input.time_zone.as_deref() {
        None => Some(chrono_tz::UTC),
        Some(name) => zone_of(name),
    };
    if zone.is_none() {
        errors.insert("time_zone".into(), "must be an IANA time zone".into());
    }
    if let Some(rule) = &input.rrule {
        let horizon = input.starts_at + Duration::days(HORIZON_DAYS);
        let parsed = zone.and_then(|z| occurrence_starts(input.starts_at, z, Some(rule), &[], horizon));
        if rule.len() > 500 || parsed.is_none() {
            errors.insert("rrule".into(), "must be an RFC 5545 RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO".into());
        } else if parsed.is_some_and(|p| p.len() >= usize::from(MAX_OCCURRENCES)) {
            errors.insert("rrule".into(), format!("at most {MAX_OCCURRENCES} occurrences in five years"));
        }
    }
    if input.exdates.len() > 500 {
        errors.insert("exdates".into(), "at most 500".into());
    }
    DomainError::check(errors)?;
    Ok(zone.unwrap_or(chrono_tz::UTC))
}

/// Puts the event's busy occurrences into `calendar_busy` (after removing what was there):
/// one that meets a booking of the member is refused with 409.
async fn materialize(conn: &mut AsyncPgConnection, firm: FirmId, event: &CalendarEvent) -> Result<(), DomainError> {
    crate::db::cached_query("DELETE FROM calendar_busy WHERE firm_id = $1 AND event_id = $2")
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<SqlUuid, _>(event.id)
        .execute(conn)
        .await?;
    if !event.busy {
        return Ok(());
    }
    let zone = zone_of(&event.time_zone).unwrap_or(chrono_tz::UTC);
    let length = event.ends_at - event.starts_at;
    let from = Utc::now() - length;
    let until = from.max(event.starts_at) + Duration::days(HORIZON_DAYS);
    let starts =
        occurrence_starts_between(event.starts_at, zone, event.rrule.as_deref(), &event.exdates, (from, until))
            .ok_or_else(|| DomainError::invalid_field("rrule", "does not parse"))?;
    let ends: Vec<DateTime<Utc>> = starts.iter().map(|s| *s + length).collect();
    let inserted = crate::db::cached_query(
        "INSERT INTO calendar_busy (firm_id, id, user_id, during, kind, event_id) \
         SELECT $1, gen_random_uuid(), $2, tstzrange(s, e, '[)'), 'event', $3 FROM unnest($4::timestamptz[], $5::timestamptz[]) AS o(s, e)",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(event.user_id)
    .bind::<SqlUuid, _>(event.id)
    .bind::<Array<Timestamptz>, _>(starts)
    .bind::<Array<Timestamptz>, _>(ends)
    .execute(conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::ExclusionViolation, _)) => {
            Err(DomainError::Conflict(
                "a booking holds some of that time; move or cancel it, or make the event not busy".into(),
            ))
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user: Uuid,
    input: EventInput,
) -> Result<CalendarEvent, DomainError> {
    let zone = check(&input)?;
    let event: CalendarEvent = diesel::insert_into(calendar_events::table)
        .values((
            calendar_events::firm_id.eq(firm.into_uuid()),
            calendar_events::id.eq(Uuid::now_v7()),
            calendar_events::user_id.eq(user),
            calendar_events::title.eq(input.title.trim()),
            calendar_events::starts_at.eq(input.starts_at),
            calendar_events::ends_at.eq(input.ends_at),
            calendar_events::time_zone.eq(zone.name()),
            calendar_events::rrule.eq(input.rrule.as_deref().map(str::trim)),
            calendar_events::exdates.eq(&input.exdates),
            calendar_events::busy.eq(input.busy.unwrap_or(true)),
        ))
        .returning(CalendarEvent::as_returning())
        .get_result(conn)
        .await?;
    materialize(conn, firm, &event).await?;
    Ok(event)
}

async fn find_own(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user: Uuid,
    id: Uuid,
) -> Result<CalendarEvent, DomainError> {
    calendar_events::table
        .filter(calendar_events::firm_id.eq(firm.into_uuid()))
        .filter(calendar_events::user_id.eq(user))
        .filter(calendar_events::id.eq(id))
        .select(CalendarEvent::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("event"))
}

/// Removes one occurrence (an exception): its time is free again.
pub async fn except(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user: Uuid,
    id: Uuid,
    occurrence: DateTime<Utc>,
) -> Result<CalendarEvent, DomainError> {
    super::bookings::check_moment("start", occurrence)?;
    let event = find_own(conn, firm, user, id).await?;
    if event.exdates.len() >= 500 {
        return Err(DomainError::invalid_field("start", "an event has at most 500 exceptions"));
    }
    let mut exdates = event.exdates.clone();
    if !exdates.contains(&occurrence) {
        exdates.push(occurrence);
    }
    let event: CalendarEvent = diesel::update(calendar_events::table)
        .filter(calendar_events::firm_id.eq(firm.into_uuid()))
        .filter(calendar_events::id.eq(id))
        .set((calendar_events::exdates.eq(exdates), calendar_events::updated_at.eq(Utc::now())))
        .returning(CalendarEvent::as_returning())
        .get_result(conn)
        .await?;
    materialize(conn, firm, &event).await?;
    Ok(event)
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user: Uuid,
    id: Uuid,
) -> Result<CalendarEvent, DomainError> {
    let event = find_own(conn, firm, user, id).await?;
    diesel::delete(calendar_events::table)
        .filter(calendar_events::firm_id.eq(firm.into_uuid()))
        .filter(calendar_events::id.eq(id))
        .execute(conn)
        .await?;
    Ok(event)
}

/// A member's events.
pub async fn list(conn: &mut AsyncPgConnection, firm: FirmId, user: Uuid) -> Result<Vec<CalendarEvent>, DomainError> {
    Ok(calendar_events::table
        .filter(calendar_events::firm_id.eq(firm.into_uuid()))
        .filter(calendar_events::user_id.eq(user))
        .order((calendar_events::starts_at, calendar_events::id))
        .select(CalendarEvent::as_select())
        .limit(1000)
        .load(conn)
        .await?)
}

/// A member's occurrences starting in `[from, to)`, in order.
pub async fn occurrences(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Occurrence>, DomainError> {
    let mut found = Vec::new();
    for event in list(conn, firm, user).await? {
        let zone = zone_of(&event.time_zone).unwrap_or(chrono_tz::UTC);
        let length = event.ends_at - event.starts_at;
        let starts =
            occurrence_starts(event.starts_at, zone, event.rrule.as_deref(), &event.exdates, to).unwrap_or_default();
        for start in starts.into_iter().filter(|s| *s >= from && *s < to) {
            found.push(Occurrence {
                event_id: event.id,
                title: event.title.clone(),
                starts_at: start,
                ends_at: start + length,
                busy: event.busy,
            });
        }
    }
    found.sort_by_key(|o| o.starts_at);
    Ok(found)
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new feed secret for the member (the old one stops working); the feed's token:
/// `{firm}.{secret}`.
pub async fn rotate_feed(conn: &mut AsyncPgConnection, firm: FirmId, user: Uuid) -> Result<String, DomainError> {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let values = (
        calendar_feeds::firm_id.eq(firm.into_uuid()),
        calendar_feeds::user_id.eq(user),
        calendar_feeds::secret_hash.eq(secret_hash(&secret)),
        calendar_feeds::created_at.eq(Utc::now()),
    );
    diesel::insert_into(calendar_feeds::table)
        .values(values.clone())
        .on_conflict((calendar_feeds::firm_id, calendar_feeds::user_id))
        .do_update()
        .set(values)
        .execute(conn)
        .await?;
    Ok(format!("{}.{secret}", firm.into_uuid().simple()))
}

/// The firm named by a feed token, and its secret.
pub fn parse_feed_token(token: &str) -> Option<(FirmId, &str)> {
    let (firm, secret) = token.split_once('.')?;
    if secret.len() != 43 {
        return None;
    }
    Some((FirmId(Uuid::parse_str(firm).ok()?), secret))
}

/// The member whose feed the secret opens.
pub async fn feed_owner(conn: &mut AsyncPgConnection, firm: FirmId, secret: &str) -> Result<Option<Uuid>, DomainError> {
    Ok(calendar_feeds::table
        .filter(calendar_feeds::firm_id.eq(firm.into_uuid()))
        .filter(calendar_feeds::secret_hash.eq(secret_hash(secret)))
        .select(calendar_feeds::user_id)
        .first(conn)
        .await
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_weekly_meeting_stays_at_nine_local_across_dst_and_skips_its_exception() {
        // Mondays 09:00 New York from 1 March 2027: 14:00Z in EST, 13:00Z from 15 March
        // (clocks went forward on the 14th); the 22nd is an exception.
        let starts = occurrence_starts(
            at("2027-03-01T14:00:00Z"),
            chrono_tz::America::New_York,
            Some("FREQ=WEEKLY;BYDAY=MO;COUNT=5"),
            &[at("2027-03-22T13:00:00Z")],
            at("2028-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            starts,
            vec![
                at("2027-03-01T14:00:00Z"),
                at("2027-03-08T14:00:00Z"),
                at("2027-03-15T13:00:00Z"),
                at("2027-03-29T13:00:00Z")
            ]
        );
    }

    #[test]
    fn rules_that_do_not_parse_or_smuggle_lines_are_refused() {
        let start = at("2027-03-01T14:00:00Z");
        let until = at("2028-01-01T00:00:00Z");
        assert!(occurrence_starts(start, chrono_tz::UTC, Some("FREQ=SOMETIMES"), &[], until).is_none());
        assert!(
            occurrence_starts(start, chrono_tz::UTC, Some("FREQ=DAILY\nEXDATE:20270302T140000Z"), &[], until).is_none()
        );
        let daily = occurrence_starts(start, chrono_tz::UTC, Some("FREQ=DAILY"), &[], until).unwrap();
        assert_eq!(daily.len(), 306, "1 March to 31 December");
    }

    #[test]
    fn feed_tokens_name_a_firm_and_carry_the_secret() {
        let firm = FirmId(Uuid::now_v7());
        let secret = "a".repeat(43);
        let token = format!("{}.{secret}", firm.into_uuid().simple());
        assert_eq!(parse_feed_token(&token), Some((firm, secret.as_str())));
        assert_eq!(parse_feed_token("nonsense"), None);
        assert_eq!(parse_feed_token(&format!("{}.short", firm.into_uuid().simple())), None);
    }
}
