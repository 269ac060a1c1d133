//! Members' own events: a recurring busy event keeps bookings off its occurrences (at the
//! same local time across DST), an exception frees one, an event cannot be laid over a
//! booking, and the private feed reads back with RRULE, EXDATE and a VTIMEZONE per TZID.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{json, signed_in_owner, spawn_app};
use crate::{book, link, public_slots, set_daily_hours};

fn starts(slots: &[Value]) -> Vec<String> {
    slots.iter().map(|s| s["start"].as_str().unwrap().to_owned()).collect()
}

#[actix_web::test]
async fn a_weekly_busy_event_blocks_its_occurrences_and_an_exception_frees_one() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "America/New_York", "08:00", "12:00").await;
    let page = link(&app, &token, &[owner], json!({ "duration_minutes": 60, "slot_interval_minutes": 60 })).await;
    let slug = page["slug"].as_str().unwrap().to_owned();
    // Mondays 09:00-10:00 New York from 1 March 2027: 14:00Z before the DST change on the
    // 14th, 13:00Z after.
    let created = app
        .post_as(
            &token,
            "/api/v1/calendar/events",
            &json!({
                "title": "Team stand-up",
                "starts_at": "2027-03-01T14:00:00Z",
                "ends_at": "2027-03-01T15:00:00Z",
                "time_zone": "America/New_York",
                "rrule": "FREQ=WEEKLY;BYDAY=MO",
            }),
        )
        .await;
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let event = json(created).await["data"].clone();
    let monday_before = public_slots(&app, &slug, "2027-03-08T00:00:00Z", "2027-03-09T00:00:00Z", "UTC").await;
    assert_eq!(starts(&monday_before), ["2027-03-08T13:00:00Z", "2027-03-08T15:00:00Z", "2027-03-08T16:00:00Z"]);
    let monday_after = public_slots(&app, &slug, "2027-03-15T00:00:00Z", "2027-03-16T00:00:00Z", "UTC").await;
    assert_eq!(starts(&monday_after), ["2027-03-15T12:00:00Z", "2027-03-15T14:00:00Z", "2027-03-15T15:00:00Z"]);
    // Booking the busy hour anyway is refused.
    let at = "2027-03-15T13:00:00Z".parse().unwrap();
    assert_eq!(book(&app, &slug, at, None).await.status(), 409);

    // The stand-up is off on the 15th: that hour is bookable.
    let id = event["id"].as_str().unwrap();
    let off = app
        .post_as(
            &token,
            &format!("/api/v1/calendar/events/{id}/exceptions"),
            &json!({ "start": "2027-03-15T13:00:00Z" }),
        )
        .await;
    assert_eq!(off.status(), 200);
    assert_eq!(book(&app, &slug, at, None).await.status(), 201);

    // An event over a booking is refused; the occurrences list shows the recurrence.
    let over = app
        .post_as(
            &token,
            "/api/v1/calendar/events",
            &json!({ "title": "Dentist", "starts_at": "2027-03-15T13:30:00Z", "ends_at": "2027-03-15T14:30:00Z" }),
        )
        .await;
    assert_eq!(over.status(), 409);
    let listed =
        json(app.get_as(&token, "/api/v1/calendar/events?from=2027-03-01T00:00:00Z&to=2027-03-30T00:00:00Z").await)
            .await;
    let occurrences: Vec<&str> =
        listed["data"].as_array().unwrap().iter().map(|o| o["starts_at"].as_str().unwrap()).collect();
    assert_eq!(
        occurrences,
        ["2027-03-01T14:00:00Z", "2027-03-08T14:00:00Z", "2027-03-22T13:00:00Z", "2027-03-29T13:00:00Z"]
    );
    for bad in [
        json!({ "title": "x", "starts_at": "2027-03-01T14:00:00Z", "ends_at": "2027-03-01T13:00:00Z" }),
        json!({ "title": "x", "starts_at": "2027-03-01T14:00:00Z", "ends_at": "2027-03-01T15:00:00Z", "rrule": "FREQ=OFTEN" }),
        json!({ "title": "x", "starts_at": "2027-03-01T14:00:00Z", "ends_at": "2027-03-01T15:00:00Z", "time_zone": "Moon/Base" }),
    ] {
        assert_eq!(app.post_as(&token, "/api/v1/calendar/events", &bad).await.status(), 400, "{bad}");
    }
}

const FEED_CHECKER: &str = r#"
import json, sys
import icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
events = cal.walk("VEVENT")
zones = {str(z["TZID"]) for z in cal.walk("VTIMEZONE")}
used = set()
for event in events:
    for name in ("DTSTART", "DTEND"):
        tzid = event[name].params.get("TZID")
        if tzid:
            used.add(str(tzid))
print(json.dumps({
    "events": len(events),
    "rrules": [event["RRULE"].to_ical().decode() for event in events if "RRULE" in event],
    "exdates": sum(1 for event in events if "EXDATE" in event),
    "tzids_used": sorted(used),
    "vtimezones": sorted(zones),
}))
"#;

#[actix_web::test]
async fn the_private_feed_reads_back_with_its_recurrence_and_zones() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "Europe/Berlin", "00:00", "24:00").await;
    let event = json!({
        "title": "Board, weekly", "starts_at": "2027-03-01T14:00:00Z", "ends_at": "2027-03-01T15:00:00Z",
        "time_zone": "America/New_York", "rrule": "FREQ=WEEKLY;BYDAY=MO", "exdates": ["2027-03-22T13:00:00Z"],
    });
    assert_eq!(app.post_as(&token, "/api/v1/calendar/events", &event).await.status(), 201);
    let page = link(&app, &token, &[owner], json!({})).await;
    let tomorrow =
        (chrono::Utc::now() + chrono::Duration::days(1)).date_naive().and_hms_opt(10, 0, 0).unwrap().and_utc();
    assert_eq!(book(&app, page["slug"].as_str().unwrap(), tomorrow, None).await.status(), 201);

    let url = json(app.post_as(&token, "/api/v1/calendar/feed", &json!({})).await).await["data"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = &url[url.find("/api/v1/").unwrap()..];
    let feed = app.get(path).await;
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"].to_str().unwrap().starts_with("text/calendar"));
    let body = feed.bytes().await.unwrap();
    let python = crate::invitations::python();
    let mut child = Command::new(python)
        .args(["-c", FEED_CHECKER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["events"], 2, "{read}");
    assert_eq!(read["rrules"], json!(["FREQ=WEEKLY;BYDAY=MO"]));
    assert_eq!(read["exdates"], 1);
    assert_eq!(read["tzids_used"], json!(["America/New_York", "Europe/Berlin"]));
    assert_eq!(read["vtimezones"], read["tzids_used"]);

    // A new feed ends the old one; a made-up token finds nothing.
    let newer = json(app.post_as(&token, "/api/v1/calendar/feed", &json!({})).await).await["data"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(newer, url);
    assert_eq!(app.get(path).await.status(), 404);
    assert_eq!(app.get("/api/v1/public/calendar-feeds/nonsense").await.status(), 404);
}
