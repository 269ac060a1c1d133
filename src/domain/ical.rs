//! iCalendar text for booking invitations (RFC 5545, with iTIP methods of RFC 5546 for
//! email per RFC 6047): one event with a stable UID and a SEQUENCE raised on every change,
//! `METHOD:REQUEST` for new and changed bookings, `METHOD:CANCEL` with `STATUS:CANCELLED`
//! for cancellations, times in the reader's zone with a `VTIMEZONE` for every `TZID` used
//! (its observances worked out from the zone database for the years around the event).

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};

/// What the invitation asks of the reader's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Add or update the event.
    Request,
    /// Remove it.
    Cancel,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Request => "REQUEST",
            Method::Cancel => "CANCEL",
        }
    }
}

/// A person on the invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
}

/// One booking as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub method: Method,
    pub uid: String,
    pub sequence: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub summary: String,
    pub description: String,
    pub organizer: Person,
    pub attendee: Person,
    /// The zone the reader sees the times in.
    pub zone: Tz,
    /// Awaiting the organizer's confirmation.
    pub tentative: bool,
    pub stamp: DateTime<Utc>,
}

/// Escapes a TEXT value (RFC 5545 3.3.11).
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value, quoted when it holds characters a bare one may not.
fn param(value: &str) -> String {
    let clean: String = value.chars().filter(|c| !c.is_control() && *c != '"').collect();
    if clean.contains([':', ';', ',']) { format!("\"{clean}\"") } else { clean }
}

/// Folds a content line at 75 octets, never inside a character (RFC 5545 3.1).
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        let size = c.len_utf8();
        if width + size > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += size;
    }
    out.push_str("\r\n");
}

fn utc_stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

fn local_stamp(at: NaiveDateTime) -> String {
    at.format("%Y%m%dT%H%M%S").to_string()
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let seconds = seconds.abs();
    let (hours, minutes, rest) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    if rest == 0 { format!("{sign}{hours:02}{minutes:02}") } else { format!("{sign}{hours:02}{minutes:02}{rest:02}") }
}

/// A change of offset: the instant, and the offsets before and after.
struct Transition {
    at: DateTime<Utc>,
    from: i32,
    to: i32,
    daylight: bool,
    name: String,
}

fn offset_at(zone: Tz, at: DateTime<Utc>) -> i32 {
    zone.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc()
}

/// The zone's changes of offset from `from` to `to`, found hour by hour and then to the
/// minute (zones change on whole minutes).
fn transitions(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Transition> {
    let mut found = Vec::new();
    let mut at = from;
    let mut offset = offset_at(zone, at);
    while at < to {
        let next = at + Duration::hours(1);
        let next_offset = offset_at(zone, next);
        if next_offset != offset {
            let (mut low, mut high) = (at, next);
            while high - low > Duration::minutes(1) {
                let middle = low + (high - low) / 2;
                if offset_at(zone, middle) == offset { low = middle } else { high = middle }
            }
            let after = zone.offset_from_utc_datetime(&high.naive_utc());
            found.push(Transition {
                at: high,
                from: offset,
                to: next_offset,
                daylight: !after.dst_offset().is_zero(),
                name: after.abbreviation().unwrap_or("").to_owned(),
            });
            offset = next_offset;
        }
        at = next;
    }
    found
}

/// A `VTIMEZONE` for `zone` with its observances from the year before `around` to the
/// year after (or one fixed observance for a zone that does not change).
fn vtimezone(zone: Tz, around: DateTime<Utc>, out: &mut String) {
    let year = around.year();
    let from = Utc.with_ymd_and_hms(year - 1, 1, 1, 0, 0, 0).single().unwrap_or(around);
    let to = Utc.with_ymd_and_hms(year + 2, 1, 1, 0, 0, 0).single().unwrap_or(around);
    fold("BEGIN:VTIMEZONE", out);
    fold(&format!("TZID:{}", zone.name()), out);
    let changes = transitions(zone, from, to);
    if changes.is_empty() {
        let offset = zone.offset_from_utc_datetime(&around.naive_utc());
        let seconds = offset.fix().local_minus_utc();
        fold("BEGIN:STANDARD", out);
        fold("DTSTART:19700101T000000", out);
        fold(&format!("TZOFFSETFROM:{}", offset_text(seconds)), out);
        fold(&format!("TZOFFSETTO:{}", offset_text(seconds)), out);
        if let Some(name) = offset.abbreviation() {
            fold(&format!("TZNAME:{}", text(name)), out);
        }
        fold("END:STANDARD", out);
    }
    for change in changes {
        let kind = if change.daylight { "DAYLIGHT" } else { "STANDARD" };
        // An observance starts at the local time of the change, read in the old offset.
        let local = change.at.naive_utc() + Duration::seconds(i64::from(change.from));
        fold(&format!("BEGIN:{kind}"), out);
        fold(&format!("DTSTART:{}", local_stamp(local)), out);
        fold(&format!("TZOFFSETFROM:{}", offset_text(change.from)), out);
        fold(&format!("TZOFFSETTO:{}", offset_text(change.to)), out);
        if !change.name.is_empty() {
            fold(&format!("TZNAME:{}", text(&change.name)), out);
        }
        fold(&format!("END:{kind}"), out);
    }
    fold("END:VTIMEZONE", out);
}

/// The invitation as iCalendar text (CRLF lines, folded).
pub fn invitation(invite: &Invitation) -> String {
    let mut out = String::new();
    let zone = invite.zone;
    let local = |at: DateTime<Utc>| local_stamp(at.with_timezone(&zone).naive_local());
    fold("BEGIN:VCALENDAR", &mut out);
    fold("VERSION:2.0", &mut out);
    fold("PRODID:-//ConsultantPro//Bookings//EN", &mut out);
    fold("CALSCALE:GREGORIAN", &mut out);
    fold(&format!("METHOD:{}", invite.method.as_str()), &mut out);
    vtimezone(zone, invite.starts_at, &mut out);
    fold("BEGIN:VEVENT", &mut out);
    fold(&format!("UID:{}", text(&invite.uid)), &mut out);
    fold(&format!("SEQUENCE:{}", invite.sequence.max(0)), &mut out);
    fold(&format!("DTSTAMP:{}", utc_stamp(invite.stamp)), &mut out);
    fold(&format!("DTSTART;TZID={}:{}", zone.name(), local(invite.starts_at)), &mut out);
    fold(&format!("DTEND;TZID={}:{}", zone.name(), local(invite.ends_at)), &mut out);
    fold(&format!("SUMMARY:{}", text(&invite.summary)), &mut out);
    if !invite.description.is_empty() {
        fold(&format!("DESCRIPTION:{}", text(&invite.description)), &mut out);
    }
    fold(&format!("ORGANIZER;CN={}:mailto:{}", param(&invite.organizer.name), invite.organizer.email.trim()), &mut out);
    fold(
        &format!(
            "ATTENDEE;CN={};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:mailto:{}",
            param(&invite.attendee.name),
            invite.attendee.email.trim()
        ),
        &mut out,
    );
    let status = match (invite.method, invite.tentative) {
        (Method::Cancel, _) => "CANCELLED",
        (Method::Request, true) => "TENTATIVE",
        (Method::Request, false) => "CONFIRMED",
    };
    fold(&format!("STATUS:{status}"), &mut out);
    fold("TRANSP:OPAQUE", &mut out);
    fold("END:VEVENT", &mut out);
    fold("END:VCALENDAR", &mut out);
    out
}

/// One entry of a member's feed: a booking or an event, possibly recurring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub uid: String,
    pub sequence: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub summary: String,
    pub zone: Tz,
    /// An RRULE value, read in `zone`.
    pub rrule: Option<String>,
    pub exdates: Vec<DateTime<Utc>>,
    pub tentative: bool,
    pub busy: bool,
}

/// A member's feed: every entry in its own zone, a `VTIMEZONE` for each zone used.
pub fn feed(name: &str, entries: &[FeedEntry], stamp: DateTime<Utc>) -> String {
    let mut out = String::new();
    fold("BEGIN:VCALENDAR", &mut out);
    fold("VERSION:2.0", &mut out);
    fold("PRODID:-//ConsultantPro//Calendar//EN", &mut out);
    fold("CALSCALE:GREGORIAN", &mut out);
    fold("METHOD:PUBLISH", &mut out);
    fold(&format!("X-WR-CALNAME:{}", text(name)), &mut out);
    let mut zones: Vec<Tz> = Vec::new();
    for entry in entries {
        if !zones.contains(&entry.zone) {
            zones.push(entry.zone);
            vtimezone(entry.zone, stamp, &mut out);
        }
    }
    for entry in entries {
        let zone = entry.zone;
        let local = |at: DateTime<Utc>| local_stamp(at.with_timezone(&zone).naive_local());
        fold("BEGIN:VEVENT", &mut out);
        fold(&format!("UID:{}", text(&entry.uid)), &mut out);
        fold(&format!("SEQUENCE:{}", entry.sequence.max(0)), &mut out);
        fold(&format!("DTSTAMP:{}", utc_stamp(stamp)), &mut out);
        fold(&format!("DTSTART;TZID={}:{}", zone.name(), local(entry.starts_at)), &mut out);
        fold(&format!("DTEND;TZID={}:{}", zone.name(), local(entry.ends_at)), &mut out);
        if let Some(rule) = &entry.rrule {
            fold(&format!("RRULE:{}", rule.replace(['\r', '\n'], "")), &mut out);
        }
        for exdate in &entry.exdates {
            fold(&format!("EXDATE;TZID={}:{}", zone.name(), local(*exdate)), &mut out);
        }
        fold(&format!("SUMMARY:{}", text(&entry.summary)), &mut out);
        fold(&format!("STATUS:{}", if entry.tentative { "TENTATIVE" } else { "CONFIRMED" }), &mut out);
        fold(&format!("TRANSP:{}", if entry.busy { "OPAQUE" } else { "TRANSPARENT" }), &mut out);
        fold("END:VEVENT", &mut out);
    }
    fold("END:VCALENDAR", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn invite(zone: Tz, method: Method) -> Invitation {
        Invitation {
            method,
            uid: "0193@consultantpro".into(),
            sequence: 2,
            starts_at: at("2027-03-28T00:30:00Z"),
            ends_at: at("2027-03-28T01:30:00Z"),
            summary: "Tax review; year-end, part 2".into(),
            description: "Line one\nLine two".into(),
            organizer: Person { name: "Mia Member".into(), email: "mia@firm.example".into() },
            attendee: Person { name: "Ines, Invitee".into(), email: "ines@example.com".into() },
            zone,
            tentative: false,
            stamp: at("2026-12-02T12:00:00Z"),
        }
    }

    #[test]
    fn a_request_names_its_zone_and_carries_the_observances_around_it() {
        let ics = invitation(&invite(chrono_tz::Europe::London, Method::Request));
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
        assert!(ics.contains("\r\nMETHOD:REQUEST\r\n"));
        assert!(ics.contains("\r\nTZID:Europe/London\r\n"));
        // 28 March 2027, 01:00 GMT: clocks go to 02:00 BST; the meeting starts at 00:30
        // GMT and ends at 02:30 BST, an hour later in real time.
        assert!(ics.contains(
            "BEGIN:DAYLIGHT\r\nDTSTART:20270328T010000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\nTZNAME:BST\r\n"
        ));
        assert!(
            ics.contains("BEGIN:STANDARD\r\nDTSTART:20271031T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\n")
        );
        assert!(ics.contains("\r\nDTSTART;TZID=Europe/London:20270328T003000\r\n"));
        assert!(ics.contains("\r\nDTEND;TZID=Europe/London:20270328T023000\r\n"));
        assert!(ics.contains("\r\nSEQUENCE:2\r\n"));
        assert!(ics.contains("\r\nSTATUS:CONFIRMED\r\n"));
        assert!(ics.contains("\r\nSUMMARY:Tax review\\; year-end\\, part 2\r\n"));
        assert!(ics.contains("\r\nDESCRIPTION:Line one\\nLine two\r\n"));
        assert!(ics.contains("ATTENDEE;CN=\"Ines, Invitee\";"));
        assert!(ics.lines().all(|l| l.len() <= 75), "folded at 75 octets");
    }

    #[test]
    fn a_cancel_keeps_the_uid_and_says_cancelled() {
        let ics = invitation(&invite(chrono_tz::Asia::Kolkata, Method::Cancel));
        assert!(ics.contains("\r\nMETHOD:CANCEL\r\n"));
        assert!(ics.contains("\r\nUID:0193@consultantpro\r\n"));
        assert!(ics.contains("\r\nSTATUS:CANCELLED\r\n"));
        // No changes in Kolkata: one fixed observance.
        assert!(
            ics.contains("BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\n")
        );
        assert!(ics.contains("\r\nDTSTART;TZID=Asia/Kolkata:20270328T060000\r\n"));
    }

    #[test]
    fn long_lines_fold_between_characters() {
        let mut out = String::new();
        let line = format!("SUMMARY:{}", "é".repeat(60));
        fold(&line, &mut out);
        for part in out.split("\r\n").filter(|p| !p.is_empty()) {
            assert!(part.len() <= 75, "{part}");
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded.trim_end(), line);
    }
}
