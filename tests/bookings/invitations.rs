//! Every invitation the hub emails, read back by an independent parser (Python's
//! `icalendar`, in the virtualenv `scripts/services.sh` makes): the MIME `method` equals
//! `METHOD`, every `TZID` has its `VTIMEZONE`, the UID stays, SEQUENCE rises with each
//! change, and a cancellation is `METHOD:CANCEL` with `STATUS:CANCELLED`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{data_dir, json, messages_to, run_jobs, signed_in_owner, spawn_app};
use crate::{book_with, link, set_daily_hours};

const CHECKER: &str = r#"
import email, json, sys
import icalendar

message = email.message_from_bytes(sys.stdin.buffer.read())
parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
assert len(parts) == 1, f"{len(parts)} calendar parts"
part = parts[0]
raw = part.get_payload(decode=True)
cal = icalendar.Calendar.from_ical(raw)
events = cal.walk("VEVENT")
assert len(events) == 1, "one event"
event = events[0]
zones = {str(z["TZID"]) for z in cal.walk("VTIMEZONE")}
used = set()
for name in ("DTSTART", "DTEND"):
    tzid = event[name].params.get("TZID")
    if tzid:
        used.add(str(tzid))
print(json.dumps({
    "mime_method": part.get_param("method"),
    "method": str(cal["METHOD"]),
    "uid": str(event["UID"]),
    "sequence": int(event["SEQUENCE"]),
    "status": str(event["STATUS"]),
    "start": event.decoded("DTSTART").isoformat(),
    "end": event.decoded("DTEND").isoformat(),
    "tzids_used": sorted(used),
    "vtimezones": sorted(zones),
    "organizer": str(event["ORGANIZER"]),
    "attendee": str(event["ATTENDEE"]),
    "subject": message["Subject"],
}))
"#;

pub fn python() -> PathBuf {
    data_dir().join("pyenv/bin/python")
}

/// The calendar in an email, as the independent parser reads it.
fn parsed(message: &str) -> Value {
    let mut child = Command::new(python())
        .args(["-c", CHECKER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the checker's python (scripts/services.sh makes it)");
    child.stdin.take().unwrap().write_all(message.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "checker failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn wait_for_mails(to: &str, count: usize) -> Vec<String> {
    for _ in 0..200 {
        let found = messages_to(to);
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} mails for {to}");
}

fn day_after_tomorrow_at(hour: u32) -> DateTime<Utc> {
    crate::days_ahead_at(2, hour)
}

#[actix_web::test]
async fn invitations_reschedules_and_cancellations_read_back_as_calendars_expect() {
    let app = spawn_app().await;
    let (firm, owner_email, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "America/New_York", "00:00", "24:00").await;
    let page = link(&app, &token, &[owner], json!({ "title": "Tax review" })).await;
    let slug = page["slug"].as_str().unwrap();
    let invitee = format!("ines-{}@example.com", uuid::Uuid::now_v7().simple());
    let start = day_after_tomorrow_at(15);
    let body = json!({ "start": start, "tz": "Europe/Paris", "name": "Ines, Invitee", "email": invitee });
    let booked = book_with(&app, slug, body, None).await;
    assert_eq!(booked.status(), 201);
    let booked = json(booked).await["data"].clone();
    let manage = booked["manage_token"].as_str().unwrap().to_owned();
    run_jobs(&app, firm.firm_id()).await;

    // The invitation, in the invitee's zone and in the member's.
    let first = parsed(&wait_for_mails(&invitee, 1).await[0]);
    assert_eq!(first["method"], "REQUEST");
    assert_eq!(first["mime_method"], "REQUEST");
    assert_eq!(first["status"], "CONFIRMED");
    assert_eq!(first["sequence"], 0);
    assert_eq!(first["tzids_used"], json!(["Europe/Paris"]));
    assert_eq!(first["vtimezones"], json!(["Europe/Paris"]));
    let parsed_start = DateTime::parse_from_rfc3339(first["start"].as_str().unwrap()).unwrap();
    assert_eq!(parsed_start.with_timezone(&Utc), start, "{first}");
    assert_eq!(first["attendee"], format!("mailto:{invitee}"));
    let for_member = parsed(&wait_for_mails(&owner_email, 1).await[0]);
    assert_eq!(for_member["uid"], first["uid"]);
    assert_eq!(for_member["tzids_used"], json!(["America/New_York"]));
    assert_eq!(for_member["vtimezones"], json!(["America/New_York"]));
    assert_eq!(DateTime::parse_from_rfc3339(for_member["start"].as_str().unwrap()).unwrap().with_timezone(&Utc), start);

    // Moved by the invitee's manage token: same UID, SEQUENCE 1, the new time.
    let moved_to = start + Duration::hours(2);
    let moved = app.post("/api/v1/public/bookings/reschedule", &json!({ "token": manage, "start": moved_to })).await;
    assert_eq!(moved.status(), 200, "{}", moved.text().await.unwrap());
    run_jobs(&app, firm.firm_id()).await;
    let second = parsed(&wait_for_mails(&invitee, 2).await[1]);
    assert_eq!(second["method"], "REQUEST");
    assert_eq!(second["uid"], first["uid"]);
    assert_eq!(second["sequence"], 1);
    assert_eq!(DateTime::parse_from_rfc3339(second["start"].as_str().unwrap()).unwrap().with_timezone(&Utc), moved_to);

    // Cancelled: METHOD:CANCEL, STATUS:CANCELLED, the same UID, SEQUENCE 2, both sides.
    let cancelled = app.post("/api/v1/public/bookings/cancel", &json!({ "token": manage })).await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(json(cancelled).await["data"]["status"], "cancelled");
    run_jobs(&app, firm.firm_id()).await;
    for mails in [wait_for_mails(&invitee, 3).await, wait_for_mails(&owner_email, 3).await] {
        let last = parsed(mails.last().unwrap());
        assert_eq!(last["method"], "CANCEL");
        assert_eq!(last["mime_method"], "CANCEL");
        assert_eq!(last["status"], "CANCELLED");
        assert_eq!(last["uid"], first["uid"]);
        assert_eq!(last["sequence"], 2);
    }
    // A cancelled booking cannot be moved; a forged or mangled token finds nothing.
    let again = app.post("/api/v1/public/bookings/reschedule", &json!({ "token": manage, "start": moved_to })).await;
    assert_eq!(again.status(), 409);
    let mut forged = manage.clone().into_bytes();
    forged[63] = if forged[63] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(app.post("/api/v1/public/bookings/lookup", &json!({ "token": forged })).await.status(), 404);
    assert_eq!(app.post("/api/v1/public/bookings/lookup", &json!({ "token": "nonsense" })).await.status(), 404);
    let looked = json(app.post("/api/v1/public/bookings/lookup", &json!({ "token": manage })).await).await;
    assert_eq!(looked["data"]["status"], "cancelled");
    // The manage page learns the link (whose open times it offers) and the invitee's zone.
    assert_eq!(looked["data"]["link_slug"], slug, "{looked}");
    assert_eq!(looked["data"]["title"], "Tax review");
    assert_eq!(looked["data"]["time_zone"], "Europe/Paris");
    assert!(looked["data"]["duration_minutes"].as_i64().is_some_and(|m| m > 0), "{looked}");
}

#[actix_web::test]
async fn a_booking_awaiting_confirmation_holds_its_time_and_goes_out_tentative_then_confirmed() {
    let app = spawn_app().await;
    let (firm, owner_email, owner, token) = signed_in_owner(&app).await;
    let receiver = crate::receiver::Receiver::start(&[], 204);
    let hook = app.post_as(&token, "/api/v1/webhooks", &json!({ "url": receiver.url, "event_types": ["booking.created", "booking.confirmed", "booking.cancelled"] })).await;
    assert_eq!(hook.status(), 201);
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    let page = link(&app, &token, &[owner], json!({ "requires_confirmation": true })).await;
    let slug = page["slug"].as_str().unwrap();
    let invitee = format!("paz-{}@example.com", uuid::Uuid::now_v7().simple());
    let body = json!({ "start": day_after_tomorrow_at(9), "tz": "UTC", "name": "Paz", "email": invitee });
    let booked = book_with(&app, slug, body.clone(), None).await;
    assert_eq!(booked.status(), 201);
    let booked = json(booked).await["data"].clone();
    assert_eq!(booked["status"], "pending");
    assert_eq!(book_with(&app, slug, body, None).await.status(), 409, "a pending booking holds its time");
    run_jobs(&app, firm.firm_id()).await;
    assert_eq!(parsed(&wait_for_mails(&invitee, 1).await[0])["status"], "TENTATIVE");

    let id = booked["id"].as_str().unwrap();
    let confirmed = json(app.post_as(&token, &format!("/api/v1/bookings/{id}/confirm"), &json!({})).await).await;
    assert_eq!(confirmed["data"]["status"], "confirmed");
    assert_eq!(confirmed["data"]["ical_sequence"], 1);
    let cancelled = app.post_as(&token, &format!("/api/v1/bookings/{id}/cancel"), &json!({})).await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(app.post_as(&token, &format!("/api/v1/bookings/{id}/confirm"), &json!({})).await.status(), 409);
    run_jobs(&app, firm.firm_id()).await;
    // Sent by concurrent jobs, so in any order: calendars go by SEQUENCE.
    let mut read: Vec<Value> = wait_for_mails(&invitee, 3).await.iter().map(|m| parsed(m)).collect();
    read.sort_by_key(|r| r["sequence"].as_i64());
    let (second, third) = (read[1].clone(), read[2].clone());
    assert_eq!((second["status"].as_str(), second["sequence"].as_i64()), (Some("CONFIRMED"), Some(1)));
    assert_eq!((third["method"].as_str(), third["sequence"].as_i64()), (Some("CANCEL"), Some(2)));
    assert_eq!(wait_for_mails(&owner_email, 3).await.len(), 3);

    let got = receiver.wait_for(3, std::time::Duration::from_secs(5)).await;
    let mut events: Vec<&str> = got.iter().map(|r| r.event.as_str()).collect();
    events.sort_unstable();
    assert_eq!(events, ["booking.cancelled", "booking.confirmed", "booking.created"]);
    let created = got.iter().find(|r| r.event == "booking.created").unwrap();
    let first: Value = serde_json::from_slice(&created.body).unwrap();
    assert_eq!(first["data"]["booking_id"], id);
    assert!(first["data"].get("invitee_email").is_none(), "no invitee details in webhooks");
}
