//! Bookings: members' hours, booking links, public slot lists across time zones and DST,
//! and booking with no double booking, ever.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/receiver.rs"]
mod receiver;

mod booking;
mod events;
mod invitations;
mod slots;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use helpers::{TestApp, json, unique_ip};

/// `days` from now (UTC) at `hour`:00.
pub fn days_ahead_at(days: i64, hour: u32) -> DateTime<Utc> {
    (Utc::now() + chrono::Duration::days(days)).date_naive().and_hms_opt(hour, 0, 0).unwrap().and_utc()
}

/// Sets the signed-in member's hours: `windows` as `(weekday, start, end)` in `zone`.
pub async fn set_hours(app: &TestApp, token: &str, zone: &str, windows: &[(&str, &str, &str)]) {
    let windows: Vec<Value> =
        windows.iter().map(|(day, start, end)| json!({ "weekday": day, "start": start, "end": end })).collect();
    let answer = app
        .client
        .put(app.url("/api/v1/calendar/availability"))
        .bearer_auth(token)
        .json(&json!({
            "time_zone": zone, "windows": windows,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
}

/// Every day of the week, the same hours.
pub async fn set_daily_hours(app: &TestApp, token: &str, zone: &str, start: &str, end: &str) {
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let windows: Vec<(&str, &str, &str)> = days.iter().map(|d| (*d, start, end)).collect();
    set_hours(app, token, zone, &windows).await;
}

/// A booking link; `extra` overrides the defaults (30 minutes, every 30, a year ahead).
pub async fn link(app: &TestApp, token: &str, members: &[uuid::Uuid], extra: Value) -> Value {
    let mut body = json!({
        "title": "Intro call",
        "member_ids": members,
        "duration_minutes": 30,
        "window_days": 365,
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let answer = app.post_as(token, "/api/v1/booking-links", &body).await;
    assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());
    json(answer).await["data"].clone()
}

/// The public slots of a page in `[from, to)`, as the invitee in `tz` sees them.
pub async fn public_slots(app: &TestApp, slug: &str, from: &str, to: &str, tz: &str) -> Vec<Value> {
    let path = format!("/api/v1/public/booking-links/{slug}/slots");
    let answer = app
        .client
        .get(app.url(&format!("{path}?from={from}&to={to}&tz={tz}")))
        .header("x-forwarded-for", unique_ip())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    json(answer).await["data"]["slots"].as_array().unwrap().clone()
}

/// Books `start` on a page from an address of its own; the response.
pub async fn book(app: &TestApp, slug: &str, start: DateTime<Utc>, key: Option<&str>) -> reqwest::Response {
    book_with(
        app,
        slug,
        json!({ "start": start, "tz": "Europe/Paris", "name": "Ines Invitee", "email": "ines@example.com" }),
        key,
    )
    .await
}

pub async fn book_with(app: &TestApp, slug: &str, body: Value, key: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/api/v1/public/booking-links/{slug}/bookings")))
        .header("x-forwarded-for", unique_ip())
        .json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}
