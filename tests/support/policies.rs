//! SLA policies: kept in order, checked, and chosen for a ticket by their conditions; a
//! calendar in use stays; another firm's policies and calendars do not exist.

use serde_json::{Value, json};

use crate::helpers::{TestApp, json, signed_in_owner, spawn_app};

async fn create(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let response = app.post_as(token, path, &body).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

fn targets() -> Value {
    json!({ "urgent": { "first_response_minutes": 30, "resolution_minutes": 240 }, "normal": { "first_response_minutes": 240 } })
}

async fn covering(app: &TestApp, token: &str, ticket: &str) -> Value {
    json(app.get_as(token, &format!("/api/v1/tickets/{ticket}/sla-policy")).await).await["data"]["policy"]["name"]
        .clone()
}

#[actix_web::test]
async fn the_first_matching_active_policy_covers_a_ticket() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let client = create(&app, &token, "/api/v1/clients", json!({ "name": "Very Important Co" })).await;
    let contact = create(
        &app,
        &token,
        "/api/v1/contacts",
        json!({ "first_name": "Vera", "last_name": "Ip", "client_id": client["id"] }),
    )
    .await;
    let fallback = create(
        &app,
        &token,
        "/api/v1/sla-policies",
        json!({ "name": "Everything", "position": 20, "targets": targets() }),
    )
    .await;
    create(
        &app,
        &token,
        "/api/v1/sla-policies",
        json!({ "name": "Urgent", "position": 0, "conditions": { "priorities": ["urgent"] }, "targets": targets() }),
    )
    .await;
    create(
        &app,
        &token,
        "/api/v1/sla-policies",
        json!({ "name": "VIP", "position": 10, "conditions": { "client_ids": [client["id"]], "tags": ["Contract"] }, "targets": targets() }),
    )
    .await;
    let names: Vec<Value> = json(app.get_as(&token, "/api/v1/sla-policies").await).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("Urgent"), json!("VIP"), json!("Everything")], "in the order they are tried");

    let urgent = create(&app, &token, "/api/v1/tickets", json!({ "subject": "Down", "priority": "urgent" })).await;
    let vip = create(
        &app,
        &token,
        "/api/v1/tickets",
        json!({ "subject": "Question", "requester_contact_id": contact["id"], "tags": ["contract"] }),
    )
    .await;
    let plain =
        create(&app, &token, "/api/v1/tickets", json!({ "subject": "Other", "requester_contact_id": contact["id"] }))
            .await;
    assert_eq!(covering(&app, &token, urgent["id"].as_str().unwrap()).await, "Urgent");
    assert_eq!(covering(&app, &token, vip["id"].as_str().unwrap()).await, "VIP");
    assert_eq!(
        covering(&app, &token, plain["id"].as_str().unwrap()).await,
        "Everything",
        "the VIP policy needs the tag too"
    );

    let off = app
        .patch_as(
            &token,
            &format!("/api/v1/sla-policies/{}", fallback["id"].as_str().unwrap()),
            &json!({ "active": false }),
        )
        .await;
    assert_eq!(off.status(), 200);
    assert!(covering(&app, &token, plain["id"].as_str().unwrap()).await.is_null(), "no active policy covers it");
}

#[actix_web::test]
async fn policies_are_checked_field_by_field_and_calendars_they_use_stay() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let (_, _, _, other) = signed_in_owner(&app).await;
    let theirs = create(
        &app,
        &other,
        "/api/v1/business-calendars",
        json!({ "name": "Theirs", "time_zone": "UTC", "always_open": true }),
    )
    .await;
    for (body, field) in [
        (json!({ "name": " ", "targets": targets() }), "name"),
        (json!({ "name": "x", "targets": { "high": { "resolution_minutes": 0 } } }), "targets.high.resolution_minutes"),
        (
            json!({ "name": "x", "targets": { "low": { "first_response_minutes": 600_000 } } }),
            "targets.low.first_response_minutes",
        ),
        (json!({ "name": "x", "targets": targets(), "pause_statuses": ["open"] }), "pause_statuses"),
        (json!({ "name": "x", "targets": targets(), "warning_percent": 100 }), "warning_percent"),
        (json!({ "name": "x", "targets": targets(), "business_calendar_id": theirs["id"] }), "business_calendar_id"),
        (json!({ "name": "x", "targets": targets(), "notice_calendar_id": theirs["id"] }), "notice_calendar_id"),
    ] {
        let answer = app.post_as(&token, "/api/v1/sla-policies", &body).await;
        assert_eq!(answer.status(), 400, "{body}");
        let answer = json(answer).await;
        assert!(answer["error"]["details"]["fields"][field].is_string(), "{field}: {answer}");
    }
    for body in [
        json!({ "targets": targets() }),
        json!({ "name": "x" }),
        json!({ "name": "x", "targets": { "someday": {} } }),
        json!({ "name": "x", "targets": targets(), "conditions": { "colours": ["red"] } }),
        json!({ "name": "x", "targets": targets(), "conditions": { "priorities": ["asap"] } }),
    ] {
        assert_eq!(app.post_as(&token, "/api/v1/sla-policies", &body).await.status(), 400, "{body}");
    }
    assert!(json(app.get_as(&token, "/api/v1/sla-policies").await).await["data"].as_array().unwrap().is_empty());

    let calendar = create(
        &app,
        &token,
        "/api/v1/business-calendars",
        json!({ "name": "Ours", "time_zone": "UTC", "always_open": true }),
    )
    .await;
    let policy = create(
        &app,
        &token,
        "/api/v1/sla-policies",
        json!({ "name": "Business hours", "targets": targets(), "business_calendar_id": calendar["id"] }),
    )
    .await;
    assert_eq!(policy["pause_statuses"], json!(["pending", "on_hold"]));
    assert_eq!(policy["warning_percent"], 75);
    let calendar_path = format!("/api/v1/business-calendars/{}", calendar["id"].as_str().unwrap());
    assert_eq!(app.delete_as(&token, &calendar_path).await.status(), 409, "a policy counts in it");

    let path = format!("/api/v1/sla-policies/{}", policy["id"].as_str().unwrap());
    assert_eq!(app.get_as(&other, &path).await.status(), 404);
    assert_eq!(app.patch_as(&other, &path, &json!({ "active": false })).await.status(), 404);
    assert_eq!(app.delete_as(&other, &path).await.status(), 404);
    let still = json(app.get_as(&token, &path).await).await;
    assert_eq!(
        (still["data"]["active"].as_bool(), still["data"]["name"].as_str()),
        (Some(true), Some("Business hours"))
    );
    let cleared = json(app.patch_as(&token, &path, &json!({ "business_calendar_id": null })).await).await;
    assert!(cleared["data"]["business_calendar_id"].is_null());
    assert_eq!(app.delete_as(&token, &calendar_path).await.status(), 200);
    assert_eq!(app.delete_as(&token, &path).await.status(), 200);
    assert_eq!(app.get_as(&token, &path).await.status(), 404);
}
