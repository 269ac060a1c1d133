//! Booking: one success among concurrent requests for a slot or for overlapping slots of
//! different lengths; the server's own checks of buffers, notice and alignment; one booking
//! per Idempotency-Key; round robin; cancelling frees the time; firms apart.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, add_member, json, signed_in_owner, spawn_app};
use crate::{book, book_with, link, public_slots, set_daily_hours};

/// Tomorrow (UTC) at `hour`:00.
fn tomorrow_at(hour: u32) -> DateTime<Utc> {
    crate::days_ahead_at(1, hour)
}

async fn statuses(responses: Vec<reqwest::Response>) -> Vec<u16> {
    let mut codes: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    codes.sort_unstable();
    codes
}

#[actix_web::test]
async fn fifty_concurrent_bookings_of_one_slot_give_exactly_one() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    let page = link(&app, &token, &[owner], json!({})).await;
    let slug = page["slug"].as_str().unwrap();
    let start = tomorrow_at(10);
    let attempts = (0..50).map(|_| book(&app, slug, start, None));
    let answers = futures_util::future::join_all(attempts).await;
    let codes = statuses(answers).await;
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 201 || *c == 409), "{codes:?}");
    let listed = json(app.get_as(&token, "/api/v1/bookings").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    // The slot is gone from the page.
    let z = |at: DateTime<Utc>| at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let slots = public_slots(&app, slug, &z(start - Duration::hours(1)), &z(start + Duration::hours(2)), "UTC").await;
    let offered: Vec<&str> = slots.iter().map(|s| s["start"].as_str().unwrap()).collect();
    assert!(offered.contains(&z(start - Duration::hours(1)).as_str()), "{offered:?}");
    assert!(!offered.contains(&z(start).as_str()), "{offered:?}");
}

#[actix_web::test]
async fn overlapping_slots_of_different_lengths_never_both_succeed() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    let short = link(&app, &token, &[owner], json!({ "title": "Quick", "duration_minutes": 30 })).await;
    let long =
        link(&app, &token, &[owner], json!({ "title": "Long", "duration_minutes": 60, "slot_interval_minutes": 30 }))
            .await;
    for hour in [8, 11, 14, 17, 20] {
        // A 60-minute meeting at hh:00 and a 30-minute one at hh:30, at the same moment.
        let (a, b) = futures_util::join!(
            book(&app, long["slug"].as_str().unwrap(), tomorrow_at(hour), None),
            book(&app, short["slug"].as_str().unwrap(), tomorrow_at(hour) + Duration::minutes(30), None),
        );
        let codes = statuses(vec![a, b]).await;
        assert_eq!(codes, [201, 409], "at {hour}:00");
    }
}

#[actix_web::test]
async fn the_server_checks_buffers_notice_and_alignment_whatever_the_client_sends() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    let buffered = link(&app, &token, &[owner], json!({ "buffer_after_minutes": 30 })).await;
    let slug = buffered["slug"].as_str().unwrap();
    assert_eq!(book(&app, slug, tomorrow_at(10), None).await.status(), 201);
    // 10:30 would start inside the first booking's buffer.
    assert_eq!(book(&app, slug, tomorrow_at(10) + Duration::minutes(30), None).await.status(), 409);
    // Not on the half hour: never offered.
    let odd = book(&app, slug, tomorrow_at(12) + Duration::minutes(10), None).await;
    assert_eq!(odd.status(), 400);
    assert!(json(odd).await["error"]["details"]["fields"]["start"].is_string());
    // Inside the minimum notice, and past the booking window.
    let noticed = link(&app, &token, &[owner], json!({ "min_notice_minutes": 2880, "window_days": 7 })).await;
    let slug = noticed["slug"].as_str().unwrap();
    assert_eq!(book(&app, slug, tomorrow_at(15), None).await.status(), 400);
    assert_eq!(book(&app, slug, tomorrow_at(15) + Duration::days(10), None).await.status(), 400);
    assert_eq!(book(&app, slug, tomorrow_at(15) + Duration::days(3), None).await.status(), 201);
}

#[actix_web::test]
async fn one_idempotency_key_books_once() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    let page = link(&app, &token, &[owner], json!({})).await;
    let slug = page["slug"].as_str().unwrap();
    let key = format!("invitee-{}", uuid::Uuid::now_v7());
    let first = book(&app, slug, tomorrow_at(9), Some(&key)).await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    let again = book(&app, slug, tomorrow_at(9), Some(&key)).await;
    assert_eq!(again.status(), 201);
    assert_eq!(json(again).await["data"]["id"], first["data"]["id"]);
    let other_body = book(&app, slug, tomorrow_at(11), Some(&key)).await;
    assert_eq!(other_body.status(), 409);
    let listed = json(app.get_as(&token, "/api/v1/bookings").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn round_robin_books_each_free_member_once_then_refuses() {
    let app = spawn_app().await;
    let (firm, _, owner, token) = signed_in_owner(&app).await;
    let (email, colleague) = add_member(&app.db(), &firm, consultantpro::domain::memberships::Role::Staff).await;
    let colleague_token = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    set_daily_hours(&app, &colleague_token, "Europe/Berlin", "00:00", "24:00").await;
    let page = link(&app, &token, &[owner, colleague], json!({ "assignment": "round_robin" })).await;
    assert_eq!(page["assignment"], "round_robin");
    let slug = page["slug"].as_str().unwrap();
    let start = tomorrow_at(13);
    assert_eq!(book(&app, slug, start, None).await.status(), 201);
    assert_eq!(book(&app, slug, start, None).await.status(), 201);
    assert_eq!(book(&app, slug, start, None).await.status(), 409);
    let listed = json(app.get_as(&token, "/api/v1/bookings").await).await;
    let mut members: Vec<String> =
        listed["data"].as_array().unwrap().iter().map(|b| b["member_user_id"].as_str().unwrap().to_owned()).collect();
    members.sort();
    let mut expected = vec![owner.to_string(), colleague.to_string()];
    expected.sort();
    assert_eq!(members, expected);
}

#[actix_web::test]
async fn cancelling_frees_the_time_and_raises_the_sequence() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    let page =
        link(&app, &token, &[owner], json!({ "questions": [{ "id": "topic", "label": "Topic", "required": true }] }))
            .await;
    let slug = page["slug"].as_str().unwrap();
    let start = tomorrow_at(16);
    let body = json!({ "start": start, "tz": "America/Chicago", "name": "Ana", "email": "ana@example.com", "answers": { "topic": "Tax" } });
    let booked = book_with(&app, slug, body.clone(), None).await;
    assert_eq!(booked.status(), 201);
    let id = json(booked).await["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(book_with(&app, slug, body.clone(), None).await.status(), 409);
    let cancelled = json(app.post_as(&token, &format!("/api/v1/bookings/{id}/cancel"), &json!({})).await).await;
    assert_eq!(cancelled["data"]["status"], "cancelled");
    assert_eq!(cancelled["data"]["ical_sequence"], 1);
    assert_eq!(book_with(&app, slug, body, None).await.status(), 201, "the time is free again");
}

#[actix_web::test]
async fn bad_bookings_are_refused_field_by_field_and_store_nothing() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    let page =
        link(&app, &token, &[owner], json!({ "questions": [{ "id": "topic", "label": "Topic", "required": true }] }))
            .await;
    let slug = page["slug"].as_str().unwrap();
    let start = tomorrow_at(10);
    let good =
        json!({ "start": start, "tz": "UTC", "name": "Bo", "email": "bo@example.com", "answers": { "topic": "VAT" } });
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    for (body, field) in [
        (with("tz", json!("Nowhere/Special")), "tz"),
        (with("name", json!("  ")), "name"),
        (with("name", json!("Bo\u{0}by")), "name"),
        (with("name", json!("Bo\nBcc: someone")), "name"),
        (with("start", json!("+262142-12-31T00:00:00Z")), "start"),
        (with("email", json!("not an email")), "email"),
        (with("answers", json!({})), "answers.topic"),
        (with("answers", json!({ "topic": "VAT", "shoe_size": "44" })), "answers.shoe_size"),
        (with("answers", json!({ "topic": 42 })), "answers.topic"),
    ] {
        let answer = book_with(&app, slug, body.clone(), None).await;
        assert_eq!(answer.status(), 400, "{body}");
        let answer = json(answer).await;
        assert!(answer["error"]["details"]["fields"][field].is_string(), "{field}: {answer}");
    }
    for body in [json!([1, 2]), json!({ "start": "soon" }), with("colour", json!("red"))] {
        assert_eq!(book_with(&app, slug, body, None).await.status(), 400);
    }
    let listed = json(app.get_as(&token, "/api/v1/bookings").await).await;
    assert!(listed["data"].as_array().unwrap().is_empty());
    // Links are checked too.
    for (body, field) in [
        (json!({ "title": "x", "member_ids": [owner], "duration_minutes": 2 }), "duration_minutes"),
        (json!({ "title": "x", "member_ids": [], "duration_minutes": 30 }), "member_ids"),
        (json!({ "title": "x", "member_ids": [owner], "duration_minutes": 30, "slug": "Bad Slug" }), "slug"),
        (json!({ "title": "x", "member_ids": [uuid::Uuid::now_v7()], "duration_minutes": 30 }), "member_ids[0]"),
    ] {
        let answer = app.post_as(&token, "/api/v1/booking-links", &body).await;
        assert_eq!(answer.status(), 400, "{body}");
        assert!(json(answer).await["error"]["details"]["fields"][field].is_string(), "{field}");
    }
    // The manage endpoints and the hours answer malformed bodies in the error format.
    for path in
        ["/api/v1/public/bookings/lookup", "/api/v1/public/bookings/cancel", "/api/v1/public/bookings/reschedule"]
    {
        for body in [json!({}), json!([1]), json!({ "token": 7 }), json!({ "token": "x", "colour": "red" })] {
            let answer = app.post(path, &body).await;
            assert_eq!(answer.status(), 400, "{path} {body}");
            assert_eq!(json(answer).await["error"]["code"], "validation_error");
        }
    }
    let reschedule = app.post("/api/v1/public/bookings/reschedule", &json!({ "token": "x" })).await;
    assert_eq!(reschedule.status(), 400, "a reschedule names its start");
    let refusal = json(reschedule).await;
    assert!(refusal["error"]["message"].as_str().unwrap().contains("missing field `start`"), "{refusal}");
    for body in [
        json!({ "time_zone": "Atlantis/Capital", "windows": [] }),
        json!({ "time_zone": "UTC", "windows": [{ "weekday": "funday", "start": "09:00", "end": "10:00" }] }),
        json!({ "time_zone": "UTC", "windows": [{ "weekday": "monday", "start": "9am", "end": "10:00" }] }),
        json!({ "time_zone": "UTC", "windows": [], "overrides": [{ "date": "2027-02-30" }] }),
    ] {
        let answer = app
            .client
            .put(app.url("/api/v1/calendar/availability"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{body}");
        assert_eq!(json(answer).await["error"]["code"], "validation_error");
    }
    let taken = app
        .post_as(
            &token,
            "/api/v1/booking-links",
            &json!({ "title": "x", "member_ids": [owner], "duration_minutes": 30, "slug": slug }),
        )
        .await;
    assert_eq!(taken.status(), 409);
}

#[actix_web::test]
async fn firms_see_only_their_own_links_and_bookings() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    let (_, _, other_owner, other_token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    let page = link(&app, &token, &[owner], json!({})).await;
    let id = page["id"].as_str().unwrap();
    assert_eq!(book(&app, page["slug"].as_str().unwrap(), tomorrow_at(10), None).await.status(), 201);
    assert_eq!(app.get_as(&other_token, &format!("/api/v1/booking-links/{id}")).await.status(), 404);
    assert_eq!(
        app.patch_as(&other_token, &format!("/api/v1/booking-links/{id}"), &json!({ "active": false })).await.status(),
        404
    );
    let theirs = json(app.get_as(&other_token, "/api/v1/bookings").await).await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
    let before = json(app.get_as(&token, "/api/v1/bookings").await).await["data"][0].clone();
    let booking = before["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post_as(&other_token, &format!("/api/v1/bookings/{booking}/cancel"), &json!({})).await.status(),
        404
    );
    assert_eq!(
        app.post_as(&other_token, &format!("/api/v1/bookings/{booking}/confirm"), &json!({})).await.status(),
        404
    );
    // The owner's link and booking are as they were.
    assert_eq!(json(app.get_as(&token, &format!("/api/v1/booking-links/{id}")).await).await["data"]["active"], true);
    assert_eq!(json(app.get_as(&token, "/api/v1/bookings").await).await["data"][0], before);
    // Another firm's member's events are not theirs to touch.
    let event = json(
        app.post_as(
            &token,
            "/api/v1/calendar/events",
            &json!({ "title": "Audit", "starts_at": "2027-05-03T14:00:00Z", "ends_at": "2027-05-03T15:00:00Z" }),
        )
        .await,
    )
    .await["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let may = "/api/v1/calendar/events?from=2027-05-01T00:00:00Z&to=2027-05-31T00:00:00Z";
    let mine_before = json(app.get_as(&token, may).await).await["data"].clone();
    assert!(mine_before.as_array().unwrap().iter().any(|o| o["event_id"] == event.as_str()), "{mine_before}");
    assert_eq!(app.delete_as(&other_token, &format!("/api/v1/calendar/events/{event}")).await.status(), 404);
    let except = app
        .post_as(
            &other_token,
            &format!("/api/v1/calendar/events/{event}/exceptions"),
            &json!({ "start": "2027-05-03T14:00:00Z" }),
        )
        .await;
    assert_eq!(except.status(), 404);
    assert_eq!(json(app.get_as(&token, may).await).await["data"], mine_before, "the event and its occurrence stand");
    let theirs = json(
        app.get_as(&other_token, "/api/v1/calendar/events?from=2027-05-01T00:00:00Z&to=2027-05-31T00:00:00Z").await,
    )
    .await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
    // Another firm's member cannot be put on a link.
    let answer = app
        .post_as(
            &other_token,
            "/api/v1/booking-links",
            &json!({ "title": "x", "member_ids": [owner], "duration_minutes": 30 }),
        )
        .await;
    assert_eq!(answer.status(), 400);
    let _ = other_owner;
}

#[actix_web::test]
async fn a_moved_booking_asks_for_confirmation_again_and_a_closed_page_moves_nothing() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_daily_hours(&app, &token, "UTC", "00:00", "24:00").await;
    let page = link(&app, &token, &[owner], json!({ "requires_confirmation": true })).await;
    let booked = json(book(&app, page["slug"].as_str().unwrap(), tomorrow_at(9), None).await).await["data"].clone();
    let (id, manage) = (booked["id"].as_str().unwrap(), booked["manage_token"].as_str().unwrap());
    let confirmed = json(app.post_as(&token, &format!("/api/v1/bookings/{id}/confirm"), &json!({})).await).await;
    assert_eq!(confirmed["data"]["status"], "confirmed");
    let moved =
        app.post("/api/v1/public/bookings/reschedule", &json!({ "token": manage, "start": tomorrow_at(11) })).await;
    assert_eq!(moved.status(), 200);
    assert_eq!(json(moved).await["data"]["status"], "pending", "the member confirms the new time");
    let closed = app
        .patch_as(
            &token,
            &format!("/api/v1/booking-links/{}", page["id"].as_str().unwrap()),
            &json!({ "active": false }),
        )
        .await;
    assert_eq!(closed.status(), 200);
    let refused =
        app.post("/api/v1/public/bookings/reschedule", &json!({ "token": manage, "start": tomorrow_at(12) })).await;
    assert_eq!(refused.status(), 409);
    let far = app
        .post("/api/v1/public/bookings/reschedule", &json!({ "token": manage, "start": "+262142-12-31T00:00:00Z" }))
        .await;
    assert_eq!(far.status(), 400);
    // Neither refusal moved it.
    let ours = json(app.get_as(&token, "/api/v1/bookings").await).await;
    let kept = ours["data"].as_array().unwrap().iter().find(|b| b["id"] == id).cloned().unwrap();
    let starts: DateTime<Utc> = kept["starts_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((kept["status"].as_str(), starts), (Some("pending"), tomorrow_at(11)), "{kept}");
}
