//! Bookable slots of one member: the member's hours are local wall-clock times in their
//! zone, and slots are laid out in local time from each window's start, every interval.
//! A local time that does not exist (the hour skipped when clocks spring forward) gives no
//! slot; a local time that happens twice (the hour repeated when they fall back) gives one,
//! at its first occurrence. A slot lasts its duration in real time and must end by the
//! window's end (at its second occurrence, when that is repeated). Around each slot its
//! buffers must be free of the member's busy time; the slot must start after the minimum
//! notice and within the booking window.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::business_time::{Window, instant};

/// When a member can be booked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    pub zone: Tz,
    /// Windows per weekday, Monday first.
    pub weekly: [Vec<Window>; 7],
    /// Dates whose windows replace the weekly ones (none: not available that day).
    pub overrides: Vec<(NaiveDate, Vec<Window>)>,
}

/// A booking link's rules for laying out and offering slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRules {
    pub duration: Duration,
    pub interval: Duration,
    pub buffer_before: Duration,
    pub buffer_after: Duration,
    pub min_notice: Duration,
    /// How far ahead slots are offered.
    pub window: Duration,
}

impl SlotRules {
    /// The time a booking starting at `start` keeps the member busy: the slot and its
    /// buffers.
    pub fn blocked(&self, start: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        (start - self.buffer_before, start + self.duration + self.buffer_after)
    }
}

impl Availability {
    fn windows_on(&self, date: NaiveDate) -> &[Window] {
        match self.overrides.iter().find(|(d, _)| *d == date) {
            Some((_, windows)) => windows,
            None => &self.weekly[date.weekday().num_days_from_monday() as usize],
        }
    }
}

/// The local start of each slot of a window, as instants: nonexistent local times are
/// skipped, repeated ones taken once.
fn local_starts(zone: Tz, from: NaiveDateTime, until: NaiveDateTime, step: Duration) -> Vec<DateTime<Utc>> {
    let mut starts = Vec::new();
    let mut local = from;
    while local < until {
        if let Some(at) = zone.from_local_datetime(&local).earliest() {
            starts.push(at.with_timezone(&Utc));
        }
        match local.checked_add_signed(step) {
            Some(next) => local = next,
            None => break,
        }
    }
    starts
}

/// Whether `[start, end)` meets none of `busy` (sorted by start).
fn free(busy: &[(DateTime<Utc>, DateTime<Utc>)], (start, end): (DateTime<Utc>, DateTime<Utc>)) -> bool {
    let before_end = busy.partition_point(|(b_start, _)| *b_start < end);
    !busy[..before_end].iter().any(|(_, b_end)| *b_end > start)
}

/// The member's slots starting in `[from, to)`, in order, as of `now`. `busy` is the
/// member's busy time (bookings with their buffers, busy events), sorted by start.
pub fn slots(
    availability: &Availability,
    rules: &SlotRules,
    busy: &[(DateTime<Utc>, DateTime<Utc>)],
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let earliest = from.max(now + rules.min_notice);
    let latest = to.min(now + rules.window);
    if earliest >= latest || rules.interval <= Duration::zero() {
        return Vec::new();
    }
    let zone = availability.zone;
    let first_day = earliest.with_timezone(&zone).date_naive().pred_opt().unwrap_or(NaiveDate::MIN);
    let last_day = latest.with_timezone(&zone).date_naive();
    let mut found = Vec::new();
    let mut day = first_day;
    while day <= last_day {
        let next_day = day.succ_opt().unwrap_or(day);
        for window in availability.windows_on(day) {
            let local_start = day.and_time(window.start);
            let local_end = if window.end <= window.start { next_day } else { day }.and_time(window.end);
            let window_end = instant(zone, local_end, true);
            for start in local_starts(zone, local_start, local_end, rules.interval) {
                if start < earliest || start >= latest || start + rules.duration > window_end {
                    continue;
                }
                if free(busy, rules.blocked(start)) {
                    found.push(start);
                }
            }
        }
        if next_day == day {
            break;
        }
        day = next_day;
    }
    found.sort_unstable();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn window(start: &str, end: &str) -> Window {
        let time = |t: &str| NaiveTime::parse_from_str(t, "%H:%M").unwrap();
        Window { start: time(start), end: time(end) }
    }

    fn every_day(zone: Tz, windows: &[Window]) -> Availability {
        Availability { zone, weekly: std::array::from_fn(|_| windows.to_vec()), overrides: Vec::new() }
    }

    fn rules(duration: i64, interval: i64) -> SlotRules {
        SlotRules {
            duration: Duration::minutes(duration),
            interval: Duration::minutes(interval),
            buffer_before: Duration::zero(),
            buffer_after: Duration::zero(),
            min_notice: Duration::zero(),
            window: Duration::days(400),
        }
    }

    fn day_slots(availability: &Availability, rules: &SlotRules, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        slots(availability, rules, &[], at("2026-01-01T00:00:00Z"), at(from), at(to))
    }

    #[test]
    fn the_skipped_hour_of_spring_forward_offers_nothing() {
        // New York, Sunday 8 March 2026: 02:00 EST jumps to 03:00 EDT. Hours 00:00-04:00,
        // half-hour slots: 00:00, 00:30, 01:00, 01:30 EST (05:00Z-06:30Z), then 03:00 and
        // 03:30 EDT (07:00Z, 07:30Z); 02:00 and 02:30 do not exist. The 01:30 slot lasts
        // half an hour of real time and ends at 03:00 EDT.
        let office = every_day(chrono_tz::America::New_York, &[window("00:00", "04:00")]);
        let found = day_slots(&office, &rules(30, 30), "2026-03-08T05:00:00Z", "2026-03-08T09:00:00Z");
        let expected: Vec<_> = ["05:00", "05:30", "06:00", "06:30", "07:00", "07:30"]
            .iter()
            .map(|t| at(&format!("2026-03-08T{t}:00Z")))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn the_repeated_hour_of_fall_back_is_offered_once() {
        // New York, Sunday 1 November 2026: 02:00 EDT falls back to 01:00 EST. Hours
        // 00:00-03:00: 00:00 and 00:30 EDT (04:00Z, 04:30Z), 01:00 and 01:30 at their first
        // occurrence, EDT (05:00Z, 05:30Z), 02:00 and 02:30 EST (07:00Z, 07:30Z); the
        // window ends at 03:00 EST (08:00Z). 06:00Z and 06:30Z (01:00 and 01:30 EST) are
        // the same local times again and are not offered twice.
        let office = every_day(chrono_tz::America::New_York, &[window("00:00", "03:00")]);
        let found = day_slots(&office, &rules(30, 30), "2026-11-01T04:00:00Z", "2026-11-01T09:00:00Z");
        let expected: Vec<_> = ["04:00", "04:30", "05:00", "05:30", "07:00", "07:30"]
            .iter()
            .map(|t| at(&format!("2026-11-01T{t}:00Z")))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn lord_howe_springs_forward_by_half_an_hour() {
        // Lord Howe Island, Sunday 4 October 2026: 02:00 (+10:30) jumps to 02:30 (+11:00).
        // Hours 01:00-04:00: 01:00 and 01:30 at +10:30 (14:30Z, 15:00Z on the 3rd), then
        // 02:30, 03:00 and 03:30 at +11:00 (15:30Z, 16:00Z, 16:30Z); 02:00 does not exist.
        let island = every_day(chrono_tz::Australia::Lord_Howe, &[window("01:00", "04:00")]);
        let found = day_slots(&island, &rules(30, 30), "2026-10-03T14:00:00Z", "2026-10-03T18:00:00Z");
        let expected: Vec<_> =
            ["14:30", "15:00", "15:30", "16:00", "16:30"].iter().map(|t| at(&format!("2026-10-03T{t}:00Z"))).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn a_zone_without_dst_and_a_slot_that_must_end_in_its_window() {
        // Kolkata is +05:30 all year. Hours 09:00-10:00, 30-minute slots every 15 minutes:
        // 09:00, 09:15 and 09:30 (03:30Z, 03:45Z, 04:00Z); 09:45 would end at 10:15.
        let office = every_day(chrono_tz::Asia::Kolkata, &[window("09:00", "10:00")]);
        let found = day_slots(&office, &rules(30, 15), "2026-06-15T00:00:00Z", "2026-06-16T00:00:00Z");
        assert_eq!(found, vec![at("2026-06-15T03:30:00Z"), at("2026-06-15T03:45:00Z"), at("2026-06-15T04:00:00Z")]);
    }

    #[test]
    fn buffers_keep_clear_of_busy_time_and_notice_and_window_bound_the_offer() {
        // UTC, hours 09:00-12:00, 30-minute slots, 15 minutes of buffer each side, busy
        // 10:00-11:00: 09:00 (keeps 08:45-09:45) is free; 09:30 to 11:00 all touch the busy
        // hour with a buffer; 11:30 (keeps 11:15-12:15) is free and ends at 12:00.
        let office = every_day(chrono_tz::UTC, &[window("09:00", "12:00")]);
        let mut buffered = rules(30, 30);
        buffered.buffer_before = Duration::minutes(15);
        buffered.buffer_after = Duration::minutes(15);
        let busy = [(at("2026-06-15T10:00:00Z"), at("2026-06-15T11:00:00Z"))];
        let now = at("2026-06-01T00:00:00Z");
        let found = slots(&office, &buffered, &busy, now, at("2026-06-15T00:00:00Z"), at("2026-06-16T00:00:00Z"));
        assert_eq!(found, vec![at("2026-06-15T09:00:00Z"), at("2026-06-15T11:30:00Z")]);

        // Asked at 09:10 with an hour's notice: 10:10 is the earliest start, so 10:30 on.
        let mut noticed = rules(30, 30);
        noticed.min_notice = Duration::hours(1);
        let now = at("2026-06-15T09:10:00Z");
        let found = slots(&office, &noticed, &[], now, at("2026-06-15T00:00:00Z"), at("2026-06-16T00:00:00Z"));
        assert_eq!(found.first(), Some(&at("2026-06-15T10:30:00Z")));
        // A two-day window offers nothing three days out.
        noticed.window = Duration::days(2);
        let later = slots(&office, &noticed, &[], now, at("2026-06-18T00:00:00Z"), at("2026-06-19T00:00:00Z"));
        assert!(later.is_empty());
    }

    #[test]
    fn an_override_replaces_the_weekly_hours_for_its_date() {
        let mut office = every_day(chrono_tz::UTC, &[window("09:00", "10:00")]);
        let day = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap();
        office.overrides.push((day, vec![window("14:00", "15:00")]));
        office.overrides.push((day.succ_opt().unwrap(), vec![]));
        let found = day_slots(&office, &rules(60, 60), "2026-06-15T00:00:00Z", "2026-06-18T00:00:00Z");
        assert_eq!(found, vec![at("2026-06-15T14:00:00Z"), at("2026-06-17T09:00:00Z")]);
    }
}
