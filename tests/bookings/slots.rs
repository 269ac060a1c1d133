//! Public slot lists: local wall-clock hours across spring-forward and fall-back days, a
//! half-hour DST shift, a zone without DST, and the invitee in another zone.

use serde_json::{Value, json};

use crate::helpers::{json, signed_in_owner, spawn_app};
use crate::{link, public_slots, set_hours};

fn starts(slots: &[Value]) -> Vec<&str> {
    slots.iter().map(|s| s["start"].as_str().unwrap()).collect()
}

#[actix_web::test]
async fn spring_forward_skips_the_missing_hour_and_the_invitee_sees_their_own_clock() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_hours(&app, &token, "America/New_York", &[("sunday", "00:00", "04:00")]).await;
    let page = link(&app, &token, &[owner], json!({})).await;
    let slug = page["slug"].as_str().unwrap();
    // Sunday 14 March 2027: 02:00 EST jumps to 03:00 EDT; 02:00 and 02:30 do not exist.
    let slots = public_slots(&app, slug, "2027-03-14T04:00:00Z", "2027-03-14T10:00:00Z", "Asia/Tokyo").await;
    assert_eq!(
        starts(&slots),
        [
            "2027-03-14T05:00:00Z",
            "2027-03-14T05:30:00Z",
            "2027-03-14T06:00:00Z",
            "2027-03-14T06:30:00Z",
            "2027-03-14T07:00:00Z",
            "2027-03-14T07:30:00Z"
        ]
    );
    // The invitee in Tokyo sees 14:00 to 16:30 their time.
    assert_eq!(slots[0]["local_start"], "2027-03-14T14:00:00+09:00");
    assert_eq!(slots[5]["local_start"], "2027-03-14T16:30:00+09:00");
}

#[actix_web::test]
async fn fall_back_offers_the_repeated_hour_once() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_hours(&app, &token, "America/New_York", &[("sunday", "00:00", "03:00")]).await;
    let page = link(&app, &token, &[owner], json!({})).await;
    // Sunday 7 November 2027: 02:00 EDT falls back to 01:00 EST.
    let slots =
        public_slots(&app, page["slug"].as_str().unwrap(), "2027-11-07T03:00:00Z", "2027-11-07T09:00:00Z", "UTC").await;
    assert_eq!(
        starts(&slots),
        [
            "2027-11-07T04:00:00Z",
            "2027-11-07T04:30:00Z",
            "2027-11-07T05:00:00Z",
            "2027-11-07T05:30:00Z",
            "2027-11-07T07:00:00Z",
            "2027-11-07T07:30:00Z"
        ]
    );
}

#[actix_web::test]
async fn lord_howe_moves_half_an_hour_and_kolkata_never_moves() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_hours(&app, &token, "Australia/Lord_Howe", &[("sunday", "01:00", "04:00")]).await;
    let page = link(&app, &token, &[owner], json!({})).await;
    let slug = page["slug"].as_str().unwrap().to_owned();
    // Sunday 3 October 2027: 02:00 (+10:30) jumps to 02:30 (+11:00).
    let slots = public_slots(&app, &slug, "2027-10-02T14:00:00Z", "2027-10-02T18:00:00Z", "Australia/Lord_Howe").await;
    assert_eq!(
        starts(&slots),
        [
            "2027-10-02T14:30:00Z",
            "2027-10-02T15:00:00Z",
            "2027-10-02T15:30:00Z",
            "2027-10-02T16:00:00Z",
            "2027-10-02T16:30:00Z"
        ]
    );
    assert_eq!(slots[1]["local_start"], "2027-10-03T01:30:00+10:30");
    assert_eq!(slots[2]["local_start"], "2027-10-03T02:30:00+11:00");

    set_hours(&app, &token, "Asia/Kolkata", &[("monday", "09:00", "10:00")]).await;
    // Monday 14 June 2027, 09:00 and 09:30 IST (+05:30).
    let slots = public_slots(&app, &slug, "2027-06-14T00:00:00Z", "2027-06-15T00:00:00Z", "America/New_York").await;
    assert_eq!(starts(&slots), ["2027-06-14T03:30:00Z", "2027-06-14T04:00:00Z"]);
    assert_eq!(slots[0]["local_start"], "2027-06-13T23:30:00-04:00");
}

#[actix_web::test]
async fn bad_listings_are_refused_and_unknown_or_inactive_pages_are_not_found() {
    let app = spawn_app().await;
    let (_, _, owner, token) = signed_in_owner(&app).await;
    set_hours(&app, &token, "UTC", &[("monday", "09:00", "17:00")]).await;
    let page = link(
        &app,
        &token,
        &[owner],
        json!({ "slug": format!("advice-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]) }),
    )
    .await;
    let slug = page["slug"].as_str().unwrap();
    let base = format!("/api/v1/public/booking-links/{slug}/slots");
    for query in [
        "?tz=Mars/Olympus",
        "?from=2027-01-01T00:00:00Z&to=2027-04-01T00:00:00Z",
        "?from=2027-01-02T00:00:00Z&to=2027-01-01T00:00:00Z",
        "?from=yesterday",
        "?from=%2B262142-12-31T00:00:00Z",
        "?from=2026-01-01T00:00:00Z&to=%2B262142-12-31T00:00:00Z",
        "?from=1600-01-01T00:00:00Z&to=1600-01-02T00:00:00Z",
        "?colour=blue",
    ] {
        let answer = app.get(&format!("{base}{query}")).await;
        assert_eq!(answer.status(), 400, "{query}");
        let body = json(answer).await;
        assert!(body["error"]["message"].is_string(), "{query}: {body}");
    }
    let overlapping = app
        .client
        .put(app.url("/api/v1/calendar/availability"))
        .bearer_auth(&token)
        .json(&json!({ "time_zone": "UTC", "windows": [
            { "weekday": "monday", "start": "09:00", "end": "12:00" },
            { "weekday": "monday", "start": "11:00", "end": "13:00" },
        ] }))
        .send()
        .await
        .unwrap();
    assert_eq!(overlapping.status(), 400);
    assert!(json(overlapping).await["error"]["details"]["fields"]["windows[1]"].is_string());
    assert_eq!(app.get("/api/v1/public/booking-links/no-such-page-here").await.status(), 404);
    assert_eq!(app.get(&format!("/api/v1/public/booking-links/{}", "x".repeat(300))).await.status(), 404);
    let off = app
        .patch_as(
            &token,
            &format!("/api/v1/booking-links/{}", page["id"].as_str().unwrap()),
            &json!({ "active": false }),
        )
        .await;
    assert_eq!(off.status(), 200);
    assert_eq!(app.get(&format!("/api/v1/public/booking-links/{slug}")).await.status(), 404);
}
