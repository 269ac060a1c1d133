//! Business calendars over the API: kept as given, checked, imported from iCalendar, and
//! computed exactly as SLA clocks will use them; another firm's do not exist.

use consultantpro::domain::memberships::Role;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, add_member, json, signed_in_owner, spawn_app};

fn office_hours() -> Value {
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday"];
    let windows: Vec<Value> = days
        .iter()
        .flat_map(|day| {
            [
                json!({ "weekday": day, "start": "09:00", "end": "12:00" }),
                json!({ "weekday": day, "start": "13:00", "end": "17:00" }),
            ]
        })
        .collect();
    json!({ "name": "New York office", "time_zone": "America/New_York", "windows": windows })
}

async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.post_as(token, "/api/v1/business-calendars", body).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

async fn due(app: &TestApp, token: &str, id: &str, from: &str, minutes: i64) -> Value {
    let from = from.replace('+', "%2B");
    let answer = app.get_as(token, &format!("/api/v1/business-calendars/{id}/due?from={from}&minutes={minutes}")).await;
    assert_eq!(answer.status(), 200);
    json(answer).await["data"]["due"].clone()
}

#[actix_web::test]
async fn a_calendar_computes_business_time_across_lunch_weekends_and_holidays() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let calendar = create(&app, &token, &office_hours()).await;
    let id = calendar["id"].as_str().unwrap();
    assert_eq!(calendar["windows"].as_array().unwrap().len(), 10);

    // Five business hours from Friday 4 Dec 16:00 EST: one on Friday, then Monday 09–12 and,
    // after lunch, 13–14: 14:00 EST.
    assert_eq!(due(&app, &token, id, "2026-12-04T16:00:00-05:00", 300).await, "2026-12-07T19:00:00Z");
    assert_eq!(due(&app, &token, id, "2026-12-04T16:00:00-05:00", 240).await, "2026-12-07T17:00:00Z");
    let elapsed = app
        .get_as(
            &token,
            &format!("/api/v1/business-calendars/{id}/elapsed?from=2026-12-04T21:00:00Z&to=2026-12-07T19:00:00Z"),
        )
        .await;
    assert_eq!(json(elapsed).await["data"]["seconds"], 5 * 3600);

    // A holiday feed closes Monday 7 Dec: the same five hours end on Tuesday.
    let feed = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\nUID:x@test\r\n\
                DTSTART;VALUE=DATE:20261207\r\nDTEND;VALUE=DATE:20261208\r\nSUMMARY:Firm day off\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let import = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url(&format!("/api/v1/business-calendars/{id}/holidays/import")))
            .bearer_auth(&token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let imported = json(import(feed, "text/calendar").await.unwrap()).await;
    assert_eq!(imported["data"]["added"], 1, "{imported}");
    assert_eq!(imported["data"]["calendar"]["holidays"][0]["name"], "Firm day off");
    assert_eq!(json(import(feed, "text/calendar").await.unwrap()).await["data"]["added"], 0, "imported once");
    assert_eq!(due(&app, &token, id, "2026-12-04T16:00:00-05:00", 300).await, "2026-12-08T19:00:00Z");
    assert_eq!(import("garbage", "text/calendar").await.unwrap().status(), 400);
    assert_eq!(import(feed, "application/json").await.unwrap().status(), 415);

    // Around the clock: no gap at midnight.
    let always =
        create(&app, &token, &json!({ "name": "24/7", "time_zone": "Europe/Paris", "always_open": true })).await;
    assert_eq!(
        due(&app, &token, always["id"].as_str().unwrap(), "2026-12-01T23:30:00+01:00", 60).await,
        "2026-12-01T23:30:00Z"
    );
}

#[actix_web::test]
async fn bad_input_is_refused_field_by_field() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let bad = json!({
        "name": "",
        "time_zone": "Mars/Olympus",
        "windows": [{ "weekday": "monday", "start": "9am", "end": "25:00" }],
        "holidays": [{ "from": "2026-12-10", "to": "2026-12-01" }],
    });
    let answer = app.post_as(&token, "/api/v1/business-calendars", &bad).await;
    assert_eq!(answer.status(), 400);
    let fields = json(answer).await["error"]["details"]["fields"].clone();
    for field in ["name", "time_zone", "windows[0].start", "windows[0].end", "holidays[0].to"] {
        assert!(fields[field].is_string(), "{field}: {fields}");
    }
    for shape in [
        json!({ "name": "x", "time_zone": "UTC", "windows": [{ "weekday": "funday", "start": "09:00", "end": "17:00" }] }),
        json!({ "name": "x", "time_zone": "UTC", "holidays": [{ "from": "2026-02-30" }] }),
        json!({ "name": "x", "time_zone": "UTC", "extra": true }),
    ] {
        let answer = app.post_as(&token, "/api/v1/business-calendars", &shape).await;
        assert_eq!(answer.status(), 400, "{shape}");
        assert_eq!(json(answer).await["error"]["code"], "validation_error");
    }
    let calendar = create(&app, &token, &office_hours()).await;
    let id = calendar["id"].as_str().unwrap();
    // A file nested far deeper than any calendar is refused before it is parsed.
    let bomb = format!("BEGIN:VCALENDAR\r\n{}", "BEGIN:VEVENT\r\n".repeat(5000));
    let answer = app
        .client
        .post(app.url(&format!("/api/v1/business-calendars/{id}/holidays/import")))
        .bearer_auth(&token)
        .header("Content-Type", "text/calendar")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    for query in [
        "from=yesterday&minutes=5",
        "from=2026-12-01T00:00:00Z&minutes=-1",
        "from=2026-12-01T00:00:00Z",
        "from=2026-12-01T00:00:00Z&minutes=99999999",
        "from=1800-01-01T00:00:00Z&minutes=5",
        "from=-262144-01-01T00:00:00Z&minutes=5",
    ] {
        let answer = app.get_as(&token, &format!("/api/v1/business-calendars/{id}/due?{query}")).await;
        assert_eq!(answer.status(), 400, "{query}");
    }
    for query in
        ["from=2026-12-01T00:00:00Z&to=2300-01-01T00:00:00Z", "from=2026-12-01T00:00:00Z&to=2031-01-01T00:00:00Z"]
    {
        let answer = app.get_as(&token, &format!("/api/v1/business-calendars/{id}/elapsed?{query}")).await;
        assert_eq!(answer.status(), 400, "{query}");
    }
    // Nothing bad was stored along the way.
    let list = json(app.get_as(&token, "/api/v1/business-calendars").await).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn members_read_admins_change_and_other_firms_see_nothing() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let calendar = create(&app, &token, &office_hours()).await;
    let id = calendar["id"].as_str().unwrap();
    let path = format!("/api/v1/business-calendars/{id}");

    let changed = app.patch_as(&token, &path, &json!({ "name": "NYC", "holidays": [{ "from": "2026-12-25" }] })).await;
    assert_eq!(changed.status(), 200);
    let changed = json(changed).await;
    assert_eq!(changed["data"]["name"], "NYC");
    assert_eq!(changed["data"]["windows"].as_array().unwrap().len(), 10, "untouched");
    assert_eq!(changed["data"]["holidays"], json!([{ "from": "2026-12-25", "to": null, "name": null }]));

    let (email, _) = add_member(&app.db(), &firm, Role::Staff).await;
    let staff = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(&staff, &path).await.status(), 200);
    assert_eq!(app.patch_as(&staff, &path, &json!({ "name": "Mine" })).await.status(), 403);
    assert_eq!(app.delete_as(&staff, &path).await.status(), 403);

    let (_, _, _, other) = signed_in_owner(&app).await;
    assert_eq!(app.get_as(&other, &path).await.status(), 404);
    assert_eq!(app.patch_as(&other, &path, &json!({ "name": "Taken" })).await.status(), 404);
    assert_eq!(app.get_as(&other, &format!("{path}/due?from=2026-12-01T00:00:00Z&minutes=5")).await.status(), 404);
    assert_eq!(app.delete_as(&other, &path).await.status(), 404);
    assert!(json(app.get_as(&other, "/api/v1/business-calendars").await).await["data"].as_array().unwrap().is_empty());
    let still = json(app.get_as(&token, &path).await).await;
    assert_eq!(still["data"]["name"], "NYC", "{still}");
    assert_eq!(still["data"]["windows"].as_array().unwrap().len(), 10, "{still}");

    assert_eq!(app.delete_as(&token, &path).await.status(), 200);
    assert_eq!(app.get_as(&token, &path).await.status(), 404);
    let audit = json(app.get_as(&token, "/api/v1/audit-events?action=business_calendar.updated").await).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1);
}
