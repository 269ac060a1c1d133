//! One SLA clock (first response, next response or resolution of a ticket) as a value:
//! what has run of it, whether it runs now, its target, and the moments that follow from
//! them in a business calendar. Tickets' clocks are stored as these values and every
//! change goes through these transitions, so the rules live in one place:
//!
//! - A clock counts only open time of its calendar while it runs; paused (the ticket is in
//!   a pause status) it counts nothing, and the calendar time it spent paused is kept.
//! - Changing the target (a policy or priority change) keeps what has run: the new target
//!   applies to the time already elapsed, so the due moment moves, the history does not.
//! - Met and breached are decided by elapsed open time against the target; a clock that is
//!   met or stopped never changes again. A breach recorded stays (a met clock that breached
//!   first is met late).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::business_time::BusinessCalendar;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    Running,
    Paused,
    /// The target was met (on time or, with `breached_at` set, late).
    Met,
    /// The time ran out; the clock still runs until met or stopped, so lateness is known.
    Breached,
    /// Ended without being met (the ticket was solved before a response was needed, say).
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    pub target: Duration,
    /// Open time counted up to `running_since` (or in total, when not running).
    pub elapsed: Duration,
    /// Since when it runs; `None` while paused or ended.
    pub running_since: Option<DateTime<Utc>>,
    /// Calendar time spent paused, closed.
    pub paused: Duration,
    /// Since when it is paused, while it is.
    pub paused_since: Option<DateTime<Utc>>,
    pub state: ClockState,
    pub breached_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl Clock {
    pub fn start(target: Duration, at: DateTime<Utc>) -> Self {
        Clock {
            target,
            elapsed: Duration::zero(),
            running_since: Some(at),
            paused: Duration::zero(),
            paused_since: None,
            state: ClockState::Running,
            breached_at: None,
            ended_at: None,
        }
    }

    fn is_over(&self) -> bool {
        matches!(self.state, ClockState::Met | ClockState::Stopped)
    }

    /// Open time counted by `now`.
    pub fn elapsed_at(&self, now: DateTime<Utc>, calendar: &BusinessCalendar) -> Duration {
        match self.running_since {
            Some(since) => self.elapsed + calendar.elapsed(since, now),
            None => self.elapsed,
        }
    }

    /// Calendar time spent paused by `now`.
    pub fn paused_at(&self, now: DateTime<Utc>) -> Duration {
        match self.paused_since {
            Some(since) if now > since => self.paused + (now - since),
            _ => self.paused,
        }
    }

    /// When the target is reached if the clock keeps running; `None` while paused or over,
    /// or when the calendar is never open long enough.
    pub fn due_at(&self, calendar: &BusinessCalendar) -> Option<DateTime<Utc>> {
        let since = self.running_since?;
        let left = self.target - self.elapsed;
        if left <= Duration::zero() { Some(since) } else { calendar.add(since, left) }
    }

    /// When `percent` of the target is reached if the clock keeps running.
    pub fn share_at(&self, percent: i32, calendar: &BusinessCalendar) -> Option<DateTime<Utc>> {
        let since = self.running_since?;
        let share = self.target * percent.clamp(0, 100) / 100;
        let left = share - self.elapsed;
        if left <= Duration::zero() { Some(since) } else { calendar.add(since, left) }
    }

    pub fn pause(&mut self, at: DateTime<Utc>, calendar: &BusinessCalendar) {
        if let Some(since) = self.running_since.take() {
            self.elapsed += calendar.elapsed(since, at);
            self.paused_since = Some(at);
            if self.state == ClockState::Running {
                self.state = ClockState::Paused;
            }
        }
    }

    pub fn resume(&mut self, at: DateTime<Utc>) {
        if self.is_over() || self.running_since.is_some() {
            return;
        }
        if let Some(since) = self.paused_since.take()
            && at > since
        {
            self.paused += at - since;
        }
        self.running_since = Some(at);
        if self.state == ClockState::Paused {
            self.state = ClockState::Running;
        }
    }

    /// Counts what has run up to `at` in `calendar` and goes on from there: before the
    /// clock starts counting in another calendar (the covering policy changed).
    pub fn checkpoint(&mut self, at: DateTime<Utc>, calendar: &BusinessCalendar) {
        if let Some(since) = self.running_since
            && at > since
        {
            self.elapsed += calendar.elapsed(since, at);
            self.running_since = Some(at);
        }
    }

    /// A new target for the time already elapsed (a policy or priority change).
    pub fn retarget(&mut self, target: Duration) {
        if !self.is_over() {
            self.target = target;
        }
    }

    /// Records the breach the timer found at `at`, if the clock really ran out by then:
    /// true when this call recorded it (so it fires once).
    pub fn breach(&mut self, at: DateTime<Utc>, calendar: &BusinessCalendar) -> bool {
        if self.is_over() || self.breached_at.is_some() || self.running_since.is_none() {
            return false;
        }
        if self.elapsed_at(at, calendar) < self.target {
            return false;
        }
        self.breached_at = Some(at);
        self.state = ClockState::Breached;
        true
    }

    /// The target was met at `at` (a response, a solution).
    pub fn meet(&mut self, at: DateTime<Utc>, calendar: &BusinessCalendar) {
        if self.is_over() {
            return;
        }
        self.elapsed = self.elapsed_at(at, calendar);
        self.paused = self.paused_at(at);
        if self.breached_at.is_none() && self.elapsed > self.target {
            // Ran out while nobody was watching (no node owned the firm): late all the same.
            self.breached_at = Some(at);
        }
        self.running_since = None;
        self.paused_since = None;
        self.state = ClockState::Met;
        self.ended_at = Some(at);
    }

    /// Runs an ended clock on from where it stopped (a reopened ticket whose policy keeps
    /// the resolution time it had): the time counted and any breach stay.
    pub fn carry_on(&mut self, at: DateTime<Utc>) {
        if !self.is_over() {
            return;
        }
        self.state = if self.breached_at.is_some() { ClockState::Breached } else { ClockState::Running };
        self.ended_at = None;
        self.paused_since = None;
        self.running_since = Some(at);
    }

    /// Whether the clock has ended (met or stopped).
    pub fn is_ended(&self) -> bool {
        self.is_over()
    }

    /// Ends the clock without meeting it (the ticket was solved; a next-response clock that
    /// a solution made moot).
    pub fn stop(&mut self, at: DateTime<Utc>, calendar: &BusinessCalendar) {
        if self.is_over() {
            return;
        }
        self.elapsed = self.elapsed_at(at, calendar);
        self.paused = self.paused_at(at);
        self.running_since = None;
        self.paused_since = None;
        self.state = ClockState::Stopped;
        self.ended_at = Some(at);
    }
}

#[cfg(test)]
mod tests {
    //! Worked by hand, in New York (UTC-5 in December) with office hours Monday to Friday
    //! 09:00–17:00, unless said otherwise.
    use chrono::NaiveTime;

    use super::*;
    use crate::domain::business_time::{Window, weekdays};

    fn office() -> BusinessCalendar {
        let window = Window {
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap_or_default(),
        };
        weekdays(chrono_tz::America::New_York, &[window])
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("a moment").with_timezone(&Utc)
    }

    #[test]
    fn a_pause_keeps_the_clock_still_and_the_due_moment_moves() {
        let calendar = office();
        // Monday 7 Dec 10:00, 4 business hours: due 14:00.
        let mut clock = Clock::start(Duration::hours(4), at("2026-12-07T10:00:00-05:00"));
        assert_eq!(clock.due_at(&calendar), Some(at("2026-12-07T14:00:00-05:00")));
        // Pending from 11:00 (one hour counted) until Tuesday 10:00.
        clock.pause(at("2026-12-07T11:00:00-05:00"), &calendar);
        assert_eq!(clock.state, ClockState::Paused);
        assert_eq!(clock.due_at(&calendar), None, "a paused clock is due never");
        assert_eq!(clock.elapsed_at(at("2026-12-08T09:30:00-05:00"), &calendar), Duration::hours(1));
        clock.resume(at("2026-12-08T10:00:00-05:00"));
        assert_eq!(clock.paused, Duration::hours(23), "calendar time paused, kept");
        // Three hours left from Tuesday 10:00: 13:00.
        assert_eq!(clock.due_at(&calendar), Some(at("2026-12-08T13:00:00-05:00")));
        assert_eq!(clock.share_at(75, &calendar), Some(at("2026-12-08T12:00:00-05:00")), "75% of 4 h is 3 h");
    }

    #[test]
    fn a_new_target_applies_to_the_time_already_elapsed_even_while_paused() {
        let calendar = office();
        let mut clock = Clock::start(Duration::hours(8), at("2026-12-07T09:00:00-05:00"));
        clock.pause(at("2026-12-07T12:00:00-05:00"), &calendar);
        // Raised to urgent while waiting: 4 hours in all, three of them gone.
        clock.retarget(Duration::hours(4));
        assert_eq!(clock.elapsed, Duration::hours(3));
        clock.resume(at("2026-12-07T15:00:00-05:00"));
        assert_eq!(clock.due_at(&calendar), Some(at("2026-12-07T16:00:00-05:00")));
        // Lowered below what has run: due at once, and a timer then finds it breached.
        clock.retarget(Duration::hours(2));
        assert_eq!(clock.due_at(&calendar), Some(at("2026-12-07T15:00:00-05:00")));
        assert!(clock.breach(at("2026-12-07T15:00:01-05:00"), &calendar));
        assert!(!clock.breach(at("2026-12-07T15:00:02-05:00"), &calendar), "a breach is recorded once");
    }

    #[test]
    fn a_breach_fires_only_when_the_time_is_really_up() {
        let calendar = office();
        let mut clock = Clock::start(Duration::hours(1), at("2026-12-04T16:30:00-05:00"));
        // Friday 16:30 + 1 business hour = Monday 09:30; a timer waking at 17:30 Friday (wall
        // clock) finds only 30 minutes counted.
        assert!(!clock.breach(at("2026-12-04T17:30:00-05:00"), &calendar));
        assert_eq!(clock.due_at(&calendar), Some(at("2026-12-07T09:30:00-05:00")));
        assert!(clock.breach(at("2026-12-07T09:30:00-05:00"), &calendar));
        assert_eq!(clock.state, ClockState::Breached);
        // Answered late: met, and the breach stays on record.
        clock.meet(at("2026-12-07T10:00:00-05:00"), &calendar);
        assert_eq!(clock.state, ClockState::Met);
        assert_eq!(clock.breached_at, Some(at("2026-12-07T09:30:00-05:00")));
        assert_eq!(clock.elapsed, Duration::minutes(90));
    }

    #[test]
    fn met_and_stopped_clocks_never_change_and_missed_breaches_are_still_late() {
        let calendar = office();
        let mut met = Clock::start(Duration::hours(2), at("2026-12-07T09:00:00-05:00"));
        met.meet(at("2026-12-07T10:00:00-05:00"), &calendar);
        met.resume(at("2026-12-07T12:00:00-05:00"));
        met.retarget(Duration::minutes(1));
        assert!(!met.breach(at("2026-12-08T12:00:00-05:00"), &calendar));
        assert_eq!((met.state, met.elapsed, met.breached_at), (ClockState::Met, Duration::hours(1), None));

        // Solved: the next-response clock stops without being met.
        let mut next = Clock::start(Duration::hours(1), at("2026-12-07T09:00:00-05:00"));
        next.stop(at("2026-12-07T09:20:00-05:00"), &calendar);
        assert_eq!((next.state, next.elapsed), (ClockState::Stopped, Duration::minutes(20)));
        next.meet(at("2026-12-07T09:30:00-05:00"), &calendar);
        assert_eq!(next.state, ClockState::Stopped);

        // Nobody fired the breach (no node owned the firm); met after the target: late.
        let mut unwatched = Clock::start(Duration::hours(1), at("2026-12-07T09:00:00-05:00"));
        unwatched.meet(at("2026-12-07T11:00:00-05:00"), &calendar);
        assert_eq!(unwatched.breached_at, Some(at("2026-12-07T11:00:00-05:00")));
    }
}
