//! Business calendars (a tenant table): a firm's opening hours for SLA clocks, checked and
//! stored here, and turned into the [`BusinessCalendar`] whose arithmetic
//! `business_time` does. Closed dates come as dates or ranges, or from an iCalendar file
//! (a public-holiday feed: each all-day event closes its dates).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::business_time::{BusinessCalendar, Hours, Window};
use super::{DomainError, FieldErrors, FirmId, to_json};
use crate::db::schema::business_calendars;

pub const MAX_WINDOWS: usize = 70;
pub const MAX_HOLIDAYS: usize = 1000;
pub const MAX_CALENDARS: i64 = 200;
/// The longest closed range (a year), so a typo cannot close a calendar for decades.
pub const MAX_HOLIDAY_DAYS: i64 = 366;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A working window, in the calendar's local time. `end` at or before `start` is on the
/// next day (`22:00`–`06:00`); `00:00`–`00:00` is the whole day; `24:00` is the midnight
/// that ends the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub weekday: Weekday,
    /// `HH:MM`.
    #[schema(example = "09:00")]
    pub start: String,
    /// `HH:MM`, or `24:00`.
    #[schema(example = "17:00")]
    pub end: String,
}

/// Closed local dates, `from` to `to` inclusive (`to` defaults to `from`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidaySpec {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BusinessCalendarView {
    pub id: Uuid,
    pub name: String,
    /// IANA zone, e.g. `America/New_York`.
    pub time_zone: String,
    /// Open around the clock (closed dates aside); `windows` are then ignored.
    pub always_open: bool,
    pub windows: Vec<WindowSpec>,
    pub holidays: Vec<HolidaySpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = business_calendars)]
struct Row {
    id: Uuid,
    name: String,
    time_zone: String,
    always_open: bool,
    windows: serde_json::Value,
    holidays: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn view(self) -> Result<BusinessCalendarView, DomainError> {
        let broken = |what: &str, e: serde_json::Error| DomainError::Internal(format!("stored {what} unreadable: {e}"));
        Ok(BusinessCalendarView {
            windows: serde_json::from_value(self.windows).map_err(|e| broken("windows", e))?,
            holidays: serde_json::from_value(self.holidays).map_err(|e| broken("holidays", e))?,
            id: self.id,
            name: self.name,
            time_zone: self.time_zone,
            always_open: self.always_open,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub(crate) fn parse_time(text: &str, allow_24: bool) -> Option<NaiveTime> {
    if allow_24 && text == "24:00" {
        return Some(NaiveTime::MIN);
    }
    if text.len() != 5 {
        return None;
    }
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

impl BusinessCalendarView {
    /// The calendar the arithmetic runs on.
    pub fn calendar(&self) -> Result<BusinessCalendar, DomainError> {
        let zone = self
            .time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| DomainError::Internal(format!("stored time zone {} unknown", self.time_zone)))?;
        let hours = if self.always_open {
            Hours::Always
        } else {
            let mut days: [Vec<Window>; 7] = Default::default();
            for spec in &self.windows {
                if let (Some(start), Some(end)) = (parse_time(&spec.start, false), parse_time(&spec.end, true)) {
                    days[spec.weekday.index()].push(Window { start, end });
                }
            }
            Hours::Weekly(days)
        };
        let closed = self.holidays.iter().map(|h| (h.from, h.to.unwrap_or(h.from))).collect();
        Ok(BusinessCalendar { zone, hours, closed })
    }
}

/// What a calendar is made of, checked.
#[derive(Debug, Clone, Default)]
pub struct CalendarInput {
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub always_open: Option<bool>,
    pub windows: Option<Vec<WindowSpec>>,
    pub holidays: Option<Vec<HolidaySpec>>,
}

fn check(input: &CalendarInput, errors: &mut FieldErrors) {
    if let Some(name) = &input.name
        && (name.trim().is_empty() || name.chars().count() > 100)
    {
        errors.insert("name".into(), "must be 1 to 100 characters".into());
    }
    if let Some(zone) = &input.time_zone
        && zone.parse::<chrono_tz::Tz>().is_err()
    {
        errors.insert("time_zone".into(), format!("`{zone}` is not an IANA time zone (e.g. Europe/Paris)"));
    }
    if let Some(windows) = &input.windows {
        if windows.len() > MAX_WINDOWS {
            errors.insert("windows".into(), format!("at most {MAX_WINDOWS}"));
        }
        for (i, window) in windows.iter().enumerate() {
            if parse_time(&window.start, false).is_none() {
                errors.insert(format!("windows[{i}].start"), "must be HH:MM".into());
            }
            if parse_time(&window.end, true).is_none() {
                errors.insert(format!("windows[{i}].end"), "must be HH:MM or 24:00".into());
            }
        }
    }
    if let Some(holidays) = &input.holidays {
        if holidays.len() > MAX_HOLIDAYS {
            errors.insert("holidays".into(), format!("at most {MAX_HOLIDAYS}"));
        }
        for (i, holiday) in holidays.iter().enumerate() {
            let to = holiday.to.unwrap_or(holiday.from);
            if to < holiday.from {
                errors.insert(format!("holidays[{i}].to"), "must not be before `from`".into());
            } else if (to - holiday.from).num_days() >= MAX_HOLIDAY_DAYS {
                errors.insert(format!("holidays[{i}].to"), format!("a range is at most {MAX_HOLIDAY_DAYS} days"));
            }
            if holiday.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
                errors.insert(format!("holidays[{i}].name"), "must be at most 200 characters".into());
            }
        }
    }
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    input: CalendarInput,
) -> Result<BusinessCalendarView, DomainError> {
    let mut errors = FieldErrors::default();
    if input.name.is_none() {
        errors.insert("name".into(), "is required".into());
    }
    if input.time_zone.is_none() {
        errors.insert("time_zone".into(), "is required".into());
    }
    check(&input, &mut errors);
    DomainError::check(errors)?;
    let count: i64 = business_calendars::table
        .filter(business_calendars::firm_id.eq(firm.into_uuid()))
        .count()
        .get_result(conn)
        .await?;
    if count >= MAX_CALENDARS {
        return Err(DomainError::Conflict(format!("a firm has at most {MAX_CALENDARS} business calendars")));
    }
    let row = diesel::insert_into(business_calendars::table)
        .values((
            business_calendars::firm_id.eq(firm.into_uuid()),
            business_calendars::id.eq(Uuid::now_v7()),
            business_calendars::name.eq(input.name.as_deref().unwrap_or_default().trim()),
            business_calendars::time_zone.eq(input.time_zone.as_deref().unwrap_or_default()),
            business_calendars::always_open.eq(input.always_open.unwrap_or(false)),
            business_calendars::windows.eq(to_json(&input.windows.unwrap_or_default())?),
            business_calendars::holidays.eq(to_json(&input.holidays.unwrap_or_default())?),
        ))
        .returning(Row::as_returning())
        .get_result(conn)
        .await?;
    row.view()
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<BusinessCalendarView, DomainError> {
    business_calendars::table
        .filter(business_calendars::firm_id.eq(firm.into_uuid()))
        .filter(business_calendars::id.eq(id))
        .select(Row::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("business calendar"))?
        .view()
}

pub async fn list(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<BusinessCalendarView>, DomainError> {
    business_calendars::table
        .filter(business_calendars::firm_id.eq(firm.into_uuid()))
        .order((business_calendars::created_at, business_calendars::id))
        .select(Row::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(Row::view)
        .collect()
}

/// Changes the fields given; `windows` and `holidays`, when given, replace their lists.
pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: CalendarInput,
) -> Result<BusinessCalendarView, DomainError> {
    let mut errors = FieldErrors::default();
    check(&input, &mut errors);
    DomainError::check(errors)?;
    find(conn, firm, id).await?;
    let windows = input.windows.as_ref().map(to_json).transpose()?;
    let holidays = input.holidays.as_ref().map(to_json).transpose()?;
    diesel::update(business_calendars::table)
        .filter(business_calendars::firm_id.eq(firm.into_uuid()))
        .filter(business_calendars::id.eq(id))
        .set((
            input.name.as_deref().map(|n| business_calendars::name.eq(n.trim().to_owned())),
            input.time_zone.map(|z| business_calendars::time_zone.eq(z)),
            input.always_open.map(|a| business_calendars::always_open.eq(a)),
            windows.map(|w| business_calendars::windows.eq(w)),
            holidays.map(|h| business_calendars::holidays.eq(h)),
            business_calendars::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    find(conn, firm, id).await
}

pub async fn delete(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<BusinessCalendarView, DomainError> {
    let calendar = find(conn, firm, id).await?;
    if super::sla_policies::calendar_in_use(conn, firm, id).await? {
        return Err(DomainError::Conflict("an SLA policy counts in this calendar; change the policy first".into()));
    }
    diesel::delete(business_calendars::table)
        .filter(business_calendars::firm_id.eq(firm.into_uuid()))
        .filter(business_calendars::id.eq(id))
        .execute(conn)
        .await?;
    Ok(calendar)
}

/// The closed dates an iCalendar file names: every all-day event closes its dates
/// (`DTEND` is exclusive; without one, the single day). Events with a time of day are not
/// closures and are skipped. A file that does not parse is a validation error.
pub fn holidays_from_ical(text: &str) -> Result<Vec<HolidaySpec>, DomainError> {
    use icalendar::{Component, DatePerhapsTime};
    // The parser recurses once per nesting level: a hostile file nested thousands deep
    // would exhaust the stack. Calendars nest three deep (VCALENDAR, VEVENT, VALARM).
    let mut depth = 0usize;
    for line in text.lines() {
        let starts = |prefix: &str| line.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix));
        if starts("BEGIN:") {
            depth += 1;
            if depth > 4 {
                return Err(DomainError::invalid_field("body", "components nest deeper than an iCalendar file does"));
            }
        } else if starts("END:") {
            depth = depth.saturating_sub(1);
        }
    }
    let calendar: icalendar::Calendar =
        text.parse().map_err(|e: String| DomainError::invalid_field("body", format!("not an iCalendar file: {e}")))?;
    let mut found = Vec::new();
    for event in calendar.components.iter().filter_map(|c| c.as_event()) {
        let Some(DatePerhapsTime::Date(from)) = event.get_start() else { continue };
        let to = match event.get_end() {
            Some(DatePerhapsTime::Date(end)) if end > from => end.pred_opt().unwrap_or(from),
            _ => from,
        };
        found.push(HolidaySpec { from, to: (to != from).then_some(to), name: event.get_summary().map(str::to_owned) });
    }
    Ok(found)
}

/// Adds closed dates to a calendar, skipping ones it has already.
pub async fn add_holidays(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    new: Vec<HolidaySpec>,
) -> Result<(BusinessCalendarView, usize), DomainError> {
    if new.len() > MAX_HOLIDAYS {
        return Err(DomainError::invalid_field("body", format!("at most {MAX_HOLIDAYS} closed dates")));
    }
    let calendar = find(conn, firm, id).await?;
    let mut holidays = calendar.holidays.clone();
    let key = |h: &HolidaySpec| (h.from, h.to.unwrap_or(h.from));
    let mut known: std::collections::HashSet<_> = holidays.iter().map(key).collect();
    let mut added = 0;
    for holiday in new {
        if known.insert(key(&holiday)) {
            holidays.push(holiday);
            added += 1;
        }
    }
    holidays.sort_by_key(|h| (h.from, h.to));
    let updated =
        update(conn, firm, id, CalendarInput { holidays: Some(holidays), ..CalendarInput::default() }).await?;
    Ok((updated, added))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ical_holiday_feed_becomes_closed_dates() {
        let feed = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//Holidays//EN\r\n\
                    BEGIN:VEVENT\r\nUID:a@test\r\nDTSTART;VALUE=DATE:20261225\r\nDTEND;VALUE=DATE:20261226\r\n\
                    SUMMARY:Christmas Day\r\nEND:VEVENT\r\n\
                    BEGIN:VEVENT\r\nUID:b@test\r\nDTSTART;VALUE=DATE:20261228\r\nDTEND;VALUE=DATE:20261231\r\n\
                    SUMMARY:Office closed\r\nEND:VEVENT\r\n\
                    BEGIN:VEVENT\r\nUID:c@test\r\nDTSTART:20261215T100000Z\r\nDTEND:20261215T110000Z\r\n\
                    SUMMARY:A meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let holidays = holidays_from_ical(feed).expect("parses");
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert_eq!(
            holidays,
            vec![
                HolidaySpec { from: date("2026-12-25"), to: None, name: Some("Christmas Day".into()) },
                HolidaySpec {
                    from: date("2026-12-28"),
                    to: Some(date("2026-12-30")),
                    name: Some("Office closed".into())
                },
            ]
        );
        assert!(holidays_from_ical("not a calendar").is_err());
    }

    #[test]
    fn bad_windows_zones_and_ranges_are_named() {
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let input = CalendarInput {
            name: Some(" ".into()),
            time_zone: Some("Mars/Olympus".into()),
            windows: Some(vec![WindowSpec { weekday: Weekday::Monday, start: "9".into(), end: "25:00".into() }]),
            holidays: Some(vec![HolidaySpec { from: date("2026-12-10"), to: Some(date("2026-12-01")), name: None }]),
            ..CalendarInput::default()
        };
        let mut errors = FieldErrors::default();
        check(&input, &mut errors);
        for field in ["name", "time_zone", "windows[0].start", "windows[0].end", "holidays[0].to"] {
            assert!(errors.contains_key(field), "{field}: {errors:?}");
        }
        assert_eq!(parse_time("24:00", true), Some(NaiveTime::MIN));
        assert_eq!(parse_time("24:00", false), None);
    }
}
