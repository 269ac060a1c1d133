//! Business time: when a firm is open, by an IANA time zone, working windows per weekday
//! and closed dates, and the arithmetic SLA clocks need on it — the moment a span of open
//! time ends ("4 business hours from Friday 16:00") and the open time between two moments.
//!
//! Rules, chosen to match what people mean:
//! - A window belongs to the weekday it starts on; an end at or before its start is on the
//!   next day (22:00–06:00 crosses midnight; 00:00–00:00 is the whole day). Windows that
//!   meet or overlap merge, so consecutive whole days have no gap at midnight.
//! - An instant is open when it lies in a window and its local date is not a closed date: a
//!   holiday closes its whole local day, including the part of a window from the day before
//!   that runs past midnight into it.
//! - Local times are read in the zone on the day they fall: a window starting in the hour a
//!   spring-forward skips starts when the clocks resume; a window ending in the hour a
//!   fall-back repeats ends at its second occurrence (the day has that hour twice, and so
//!   does the window); a window starting in it starts at its first.
//! - `Always` is open around the clock, closed dates aside.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;

/// How far ahead the arithmetic looks for open time before it gives up (a calendar that is
/// closed for longer has no due moment).
const HORIZON_DAYS: i64 = 3 * 366;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: NaiveTime,
    /// At or before `start`: on the next day.
    pub end: NaiveTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hours {
    /// Open around the clock.
    Always,
    /// Windows per weekday, Monday first.
    Weekly([Vec<Window>; 7]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    pub zone: Tz,
    pub hours: Hours,
    /// Closed local dates, as inclusive ranges.
    pub closed: Vec<(NaiveDate, NaiveDate)>,
}

/// The instant a local date and time names in `zone`: the first of two in a repeated hour
/// (`later` false) or the second (`later` true); for a time the clocks skipped, the moment
/// they resume.
pub(crate) fn instant(zone: Tz, local: NaiveDateTime, later: bool) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(first, second) => if later { second } else { first }.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: the first whole local minute after it that exists is when the
            // clocks resumed (gaps start and end on whole minutes, and last hours at most).
            let mut probe = local.with_second(0).unwrap_or(local).with_nanosecond(0).unwrap_or(local);
            for _ in 0..(48 * 60) {
                let Some(next) = probe.checked_add_signed(Duration::minutes(1)) else { break };
                probe = next;
                if let Some(at) = zone.from_local_datetime(&probe).earliest() {
                    return at.with_timezone(&Utc);
                }
            }
            local.and_utc()
        }
    }
}

impl BusinessCalendar {
    pub fn always(zone: Tz) -> Self {
        BusinessCalendar { zone, hours: Hours::Always, closed: Vec::new() }
    }

    fn is_closed(&self, date: NaiveDate) -> bool {
        self.closed.iter().any(|(from, to)| *from <= date && date <= *to)
    }

    /// Open intervals that start on local `date` (before closed dates are cut out).
    fn raw_intervals(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let next = date.succ_opt().unwrap_or(date);
        match &self.hours {
            Hours::Always => vec![(
                instant(self.zone, date.and_time(NaiveTime::MIN), false),
                instant(self.zone, next.and_time(NaiveTime::MIN), false),
            )],
            Hours::Weekly(days) => days[date.weekday().num_days_from_monday() as usize]
                .iter()
                .map(|w| {
                    let end_date = if w.end <= w.start { next } else { date };
                    (
                        instant(self.zone, date.and_time(w.start), false),
                        instant(self.zone, end_date.and_time(w.end), true),
                    )
                })
                .filter(|(start, end)| start < end)
                .collect(),
        }
    }

    /// Cuts closed local dates out of an interval.
    fn cut_closed(&self, (start, end): (DateTime<Utc>, DateTime<Utc>), out: &mut Vec<(DateTime<Utc>, DateTime<Utc>)>) {
        let mut cursor = start;
        while cursor < end {
            let local_date = cursor.with_timezone(&self.zone).date_naive();
            let day_end =
                instant(self.zone, local_date.succ_opt().unwrap_or(local_date).and_time(NaiveTime::MIN), false)
                    .min(end);
            if day_end <= cursor {
                break;
            }
            if !self.is_closed(local_date) {
                match out.last_mut() {
                    Some(last) if last.1 >= cursor => last.1 = last.1.max(day_end),
                    _ => out.push((cursor, day_end)),
                }
            }
            cursor = day_end;
        }
    }

    /// Merged open intervals overlapping `[from, from + days)`, in order, clipped to start
    /// no earlier than `from`.
    fn open_intervals(&self, from: DateTime<Utc>, days: i64) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        // A window from the day before may still be open at `from`.
        let local = from.with_timezone(&self.zone).date_naive();
        let first = local.checked_sub_signed(Duration::days(1)).unwrap_or(local);
        let mut raw: Vec<_> = (0..=days + 1)
            .filter_map(|offset| first.checked_add_signed(Duration::days(offset)))
            .flat_map(|date| self.raw_intervals(date))
            .collect();
        raw.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for (start, end) in raw {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let mut open = Vec::new();
        for (start, end) in merged {
            if end > from {
                self.cut_closed((start.max(from), end), &mut open);
            }
        }
        open
    }

    /// The moment `span` of open time has passed after `start`; `None` when the calendar
    /// has not that much open time within three years.
    pub fn add(&self, start: DateTime<Utc>, span: Duration) -> Option<DateTime<Utc>> {
        let mut left = span;
        if left <= Duration::zero() {
            return Some(start);
        }
        let mut from = start;
        let mut searched = 0;
        while searched < HORIZON_DAYS {
            for (open_from, open_to) in self.open_intervals(from, 31) {
                let length = open_to - open_from;
                if length >= left {
                    return Some(open_from + left);
                }
                left -= length;
                from = open_to;
            }
            searched += 31;
            let next = start.checked_add_signed(Duration::days(searched))?;
            from = from.max(next);
        }
        None
    }

    /// Open time between two moments (zero when `to` is not after `from`).
    pub fn elapsed(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        let days = (to - from).num_days() + 2;
        self.open_intervals(from, days)
            .into_iter()
            .take_while(|(start, _)| *start < to)
            .map(|(start, end)| end.min(to) - start)
            .fold(Duration::zero(), |sum, part| sum + part)
    }

    /// `at` when the calendar is open then, else the moment it next opens; `None` when it
    /// does not open within three years.
    pub fn next_open(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut searched = 0;
        while searched < HORIZON_DAYS {
            let from = at.checked_add_signed(Duration::days(searched))?;
            if let Some((start, _)) = self.open_intervals(from, 31).first() {
                return Some((*start).max(at));
            }
            searched += 31;
        }
        None
    }

    /// Whether the calendar is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.open_intervals(at, 1).first().is_some_and(|(start, end)| *start <= at && at < *end)
    }
}

/// Monday-to-Friday hours, the same each day.
pub fn weekdays(zone: Tz, windows: &[Window]) -> BusinessCalendar {
    let day = |weekday: Weekday| if weekday.num_days_from_monday() < 5 { windows.to_vec() } else { Vec::new() };
    let days = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
    BusinessCalendar { zone, hours: Hours::Weekly(days.map(day)), closed: Vec::new() }
}

#[cfg(test)]
mod tests {
    //! Every expected moment here was worked out by hand. New York is UTC-5 in winter
    //! (EST) and UTC-4 in summer (EDT); in 2026 its clocks jump from 02:00 to 03:00 on
    //! Sunday 8 March and fall back from 02:00 to 01:00 on Sunday 1 November.
    use super::*;

    const NEW_YORK: Tz = chrono_tz::America::New_York;

    fn time(hhmm: &str) -> NaiveTime {
        NaiveTime::parse_from_str(hhmm, "%H:%M").expect("a time")
    }

    fn window(start: &str, end: &str) -> Window {
        Window { start: time(start), end: time(end) }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("an RFC 3339 moment").with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
    }

    fn every_day(zone: Tz, windows: &[Window]) -> BusinessCalendar {
        BusinessCalendar { zone, hours: Hours::Weekly(std::array::from_fn(|_| windows.to_vec())), closed: Vec::new() }
    }

    #[test]
    fn four_business_hours_from_friday_afternoon_end_monday_noon() {
        let office = weekdays(NEW_YORK, &[window("09:00", "17:00")]);
        // Friday 4 Dec 16:00 EST: one hour on Friday, three on Monday 7 Dec from 09:00.
        let due = office.add(utc("2026-12-04T16:00:00-05:00"), Duration::hours(4));
        assert_eq!(due, Some(utc("2026-12-07T12:00:00-05:00")));
        assert_eq!(
            office.elapsed(utc("2026-12-04T16:00:00-05:00"), utc("2026-12-07T12:00:00-05:00")),
            Duration::hours(4)
        );
        // Asked at night, the clock starts at the next opening.
        let due = office.add(utc("2026-12-08T20:00:00-05:00"), Duration::minutes(30));
        assert_eq!(due, Some(utc("2026-12-09T09:30:00-05:00")));
        assert!(!office.is_open(utc("2026-12-05T12:00:00-05:00")), "Saturday");
        assert!(office.is_open(utc("2026-12-04T09:00:00-05:00")));
        assert!(!office.is_open(utc("2026-12-04T17:00:00-05:00")), "a window's end is not in it");
    }

    #[test]
    fn the_next_opening_is_now_while_open_and_monday_morning_from_friday_evening() {
        let office = weekdays(NEW_YORK, &[window("09:00", "17:00")]);
        let open = utc("2026-12-04T10:15:00-05:00");
        assert_eq!(office.next_open(open), Some(open));
        assert_eq!(office.next_open(utc("2026-12-04T17:00:00-05:00")), Some(utc("2026-12-07T09:00:00-05:00")));
        assert_eq!(office.next_open(utc("2026-12-05T23:59:00-05:00")), Some(utc("2026-12-07T09:00:00-05:00")));
        let never = weekdays(NEW_YORK, &[]);
        assert_eq!(never.next_open(open), None);
    }

    #[test]
    fn a_window_across_midnight_counts_on_both_sides() {
        let night = every_day(NEW_YORK, &[window("22:00", "06:00")]);
        // Tuesday 1 Dec 21:00: opens at 22:00, three hours later is 01:00 Wednesday.
        assert_eq!(
            night.add(utc("2026-12-01T21:00:00-05:00"), Duration::hours(3)),
            Some(utc("2026-12-02T01:00:00-05:00"))
        );
        assert_eq!(
            night.elapsed(utc("2026-12-01T23:00:00-05:00"), utc("2026-12-02T05:00:00-05:00")),
            Duration::hours(6)
        );
        // From 05:00 with two hours to go: one hour before 06:00, the other from 22:00.
        assert_eq!(
            night.add(utc("2026-12-02T05:00:00-05:00"), Duration::hours(2)),
            Some(utc("2026-12-02T23:00:00-05:00"))
        );
    }

    #[test]
    fn a_split_shift_skips_lunch() {
        let office = weekdays(NEW_YORK, &[window("09:00", "12:00"), window("13:00", "17:00")]);
        // Monday 7 Dec 11:00 + 2 h: 11–12, then 13–14.
        assert_eq!(
            office.add(utc("2026-12-07T11:00:00-05:00"), Duration::hours(2)),
            Some(utc("2026-12-07T14:00:00-05:00"))
        );
        assert_eq!(
            office.elapsed(utc("2026-12-07T08:00:00-05:00"), utc("2026-12-07T18:00:00-05:00")),
            Duration::hours(7)
        );
        assert!(!office.is_open(utc("2026-12-07T12:30:00-05:00")));
    }

    #[test]
    fn spring_forward_day_is_an_hour_short() {
        let always = BusinessCalendar::always(NEW_YORK);
        // Saturday 7 March 12:00 EST + 24 h of real time = Sunday 13:00 EDT (17:00 UTC both).
        assert_eq!(
            always.add(utc("2026-03-07T12:00:00-05:00"), Duration::hours(24)),
            Some(utc("2026-03-08T13:00:00-04:00"))
        );
        // The local day of 8 March holds 23 hours.
        assert_eq!(
            always.elapsed(utc("2026-03-08T00:00:00-05:00"), utc("2026-03-09T00:00:00-04:00")),
            Duration::hours(23)
        );
        // 01:00–05:00 on that day is three real hours (01:00 EST = 06:00Z to 05:00 EDT = 09:00Z).
        let early = every_day(NEW_YORK, &[window("01:00", "05:00")]);
        assert_eq!(
            early.elapsed(utc("2026-03-08T00:00:00-05:00"), utc("2026-03-08T12:00:00-04:00")),
            Duration::hours(3)
        );
        // A window starting at 02:30, which does not exist that day, starts when the clocks
        // resume at 03:00 EDT.
        let skipped = every_day(NEW_YORK, &[window("02:30", "04:00")]);
        assert_eq!(
            skipped.add(utc("2026-03-08T00:00:00-05:00"), Duration::minutes(10)),
            Some(utc("2026-03-08T03:10:00-04:00"))
        );
        assert_eq!(
            skipped.elapsed(utc("2026-03-08T00:00:00-05:00"), utc("2026-03-08T12:00:00-04:00")),
            Duration::hours(1)
        );
        // On an ordinary day it is an hour and a half.
        assert_eq!(
            skipped.elapsed(utc("2026-03-09T00:00:00-04:00"), utc("2026-03-09T12:00:00-04:00")),
            Duration::minutes(90)
        );
    }

    #[test]
    fn fall_back_day_is_an_hour_long() {
        let always = BusinessCalendar::always(NEW_YORK);
        assert_eq!(
            always.elapsed(utc("2026-11-01T00:00:00-04:00"), utc("2026-11-02T00:00:00-05:00")),
            Duration::hours(25)
        );
        // 01:00–03:00 holds the repeated hour: 01:00 EDT (05:00Z) to 03:00 EST (08:00Z).
        let early = every_day(NEW_YORK, &[window("01:00", "03:00")]);
        assert_eq!(
            early.elapsed(utc("2026-11-01T00:00:00-04:00"), utc("2026-11-01T12:00:00-05:00")),
            Duration::hours(3)
        );
        // Two and a half hours from 01:00 EDT: through both 01:xx hours, then 02:00–02:30 EST.
        assert_eq!(
            early.add(utc("2026-11-01T01:00:00-04:00"), Duration::minutes(150)),
            Some(utc("2026-11-01T02:30:00-05:00"))
        );
        // Business hours the next day are unaffected: Monday 2 Nov 09:00 EST.
        let office = weekdays(NEW_YORK, &[window("09:00", "17:00")]);
        assert_eq!(
            office.add(utc("2026-10-30T16:00:00-04:00"), Duration::hours(2)),
            Some(utc("2026-11-02T10:00:00-05:00"))
        );
    }

    #[test]
    fn a_holiday_inside_the_span_is_skipped() {
        let mut office = weekdays(NEW_YORK, &[window("09:00", "17:00")]);
        office.closed.push((date("2026-12-07"), date("2026-12-07")));
        // Friday 4 Dec 16:00 + 4 h: one hour Friday, Monday closed, three hours Tuesday.
        assert_eq!(
            office.add(utc("2026-12-04T16:00:00-05:00"), Duration::hours(4)),
            Some(utc("2026-12-08T12:00:00-05:00"))
        );
        // Around the clock but closed 24–26 December: 48 hours from 23 Dec 12:00 are 12 on the
        // 23rd and 36 from the 27th at 00:00, so 28 Dec 12:00 — not six days later.
        let mut always = BusinessCalendar::always(NEW_YORK);
        always.closed.push((date("2026-12-24"), date("2026-12-26")));
        assert_eq!(
            always.add(utc("2026-12-23T12:00:00-05:00"), Duration::hours(48)),
            Some(utc("2026-12-28T12:00:00-05:00"))
        );
        assert_eq!(
            always.elapsed(utc("2026-12-23T00:00:00-05:00"), utc("2026-12-28T00:00:00-05:00")),
            Duration::hours(48)
        );
    }

    #[test]
    fn a_holiday_closes_the_night_shift_running_into_it() {
        let mut night = every_day(NEW_YORK, &[window("22:00", "06:00")]);
        night.closed.push((date("2026-12-02"), date("2026-12-02")));
        // Tuesday 1 Dec 22:00 + 3 h: 22:00–24:00 Tuesday, Wednesday is closed (both its early
        // hours and its evening), then Thursday 00:00–01:00.
        assert_eq!(
            night.add(utc("2026-12-01T22:00:00-05:00"), Duration::hours(3)),
            Some(utc("2026-12-03T01:00:00-05:00"))
        );
    }

    #[test]
    fn around_the_clock_has_no_gap_at_midnight() {
        let always = BusinessCalendar::always(NEW_YORK);
        assert!(always.is_open(utc("2026-12-02T00:00:00-05:00")));
        assert_eq!(
            always.add(utc("2026-12-01T23:30:00-05:00"), Duration::hours(1)),
            Some(utc("2026-12-02T00:30:00-05:00"))
        );
        assert_eq!(
            always.elapsed(utc("2026-12-01T23:00:00-05:00"), utc("2026-12-02T01:00:00-05:00")),
            Duration::hours(2)
        );
        // The same with a whole-day window every day.
        let whole_days = every_day(NEW_YORK, &[window("00:00", "00:00")]);
        assert_eq!(
            whole_days.elapsed(utc("2026-12-01T23:00:00-05:00"), utc("2026-12-02T01:00:00-05:00")),
            Duration::hours(2)
        );
        assert_eq!(
            whole_days.add(utc("2026-12-01T23:30:00-05:00"), Duration::days(3)),
            Some(utc("2026-12-04T23:30:00-05:00"))
        );
    }

    #[test]
    fn a_calendar_without_open_time_has_no_due_moment() {
        let never = BusinessCalendar { zone: NEW_YORK, hours: Hours::Weekly(Default::default()), closed: Vec::new() };
        assert_eq!(never.add(utc("2026-12-01T12:00:00Z"), Duration::hours(1)), None);
        assert_eq!(never.elapsed(utc("2026-12-01T12:00:00Z"), utc("2026-12-09T12:00:00Z")), Duration::zero());
        let office = weekdays(NEW_YORK, &[window("09:00", "17:00")]);
        assert_eq!(office.add(utc("2026-12-01T12:00:00Z"), Duration::zero()), Some(utc("2026-12-01T12:00:00Z")));
    }
}
