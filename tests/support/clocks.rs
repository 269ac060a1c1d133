//! A ticket's SLA clocks follow the ticket: started on opening, met by responses and
//! solutions, restarted by customer messages, paused in pause statuses, carried on when
//! reopened, and retargeted (keeping their time) when the priority changes.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json, signed_in_owner, spawn_app};

async fn clocks(app: &TestApp, token: &str, ticket: &str) -> Vec<Value> {
    json(app.get_as(token, &format!("/api/v1/tickets/{ticket}/sla")).await).await["data"].as_array().unwrap().clone()
}

fn clock<'a>(all: &'a [Value], metric: &str) -> &'a Value {
    all.iter().find(|c| c["metric"] == metric).unwrap_or_else(|| panic!("no {metric} clock in {all:?}"))
}

fn moment(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap().with_timezone(&Utc)
}

async fn patch(app: &TestApp, token: &str, ticket: &str, body: Value) {
    let answer = app.patch_as(token, &format!("/api/v1/tickets/{ticket}"), &body).await;
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
}

#[actix_web::test]
async fn clocks_follow_the_ticket() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let targets = json!({
        "normal": { "first_response_minutes": 60, "next_response_minutes": 30, "resolution_minutes": 480 },
        "urgent": { "first_response_minutes": 15, "next_response_minutes": 10, "resolution_minutes": 120 },
    });
    let policy =
        app.post_as(&token, "/api/v1/sla-policies", &json!({ "name": "Around the clock", "targets": targets })).await;
    assert_eq!(policy.status(), 201);
    let email = format!("cy-{}@example.com", uuid::Uuid::now_v7().simple());
    let (_, conversation) = crate::portal_conversation(&app, &token, &email, "Help").await;
    let ticket = json(app.post_as(&token, "/api/v1/tickets", &json!({ "conversation_id": conversation })).await).await
        ["data"]
        .clone();
    let id = ticket["id"].as_str().unwrap().to_owned();
    let opened = moment(&ticket["created_at"]);

    // Opening starts first response (60 min) and resolution (480 min), around the clock.
    let all = clocks(&app, &token, &id).await;
    assert_eq!(all.len(), 2);
    assert_eq!(clock(&all, "first_response")["state"], "running");
    assert_eq!(moment(&clock(&all, "first_response")["due_at"]), opened + Duration::minutes(60));
    assert_eq!(moment(&clock(&all, "resolution")["due_at"]), opened + Duration::minutes(480));
    // The list carries the next moments, for badges that count down without a call per row.
    let listed = listed_ticket(&app, &token, &id).await;
    assert_eq!(moment(&listed["sla_next_due_at"]), opened + Duration::minutes(60), "{listed}");
    // The policy warns at its default 75%: first response's 45th minute comes first.
    assert_eq!(moment(&listed["sla_next_warn_at"]), opened + Duration::minutes(45), "{listed}");

    // Waiting on the client pauses every clock.
    patch(&app, &token, &id, json!({ "status": "pending" })).await;
    let listed = listed_ticket(&app, &token, &id).await;
    assert!(listed["sla_next_due_at"].is_null() && listed["sla_next_warn_at"].is_null(), "paused: {listed}");
    let all = clocks(&app, &token, &id).await;
    assert_eq!(clock(&all, "resolution")["state"], "paused");
    assert!(clock(&all, "resolution")["due_at"].is_null());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    patch(&app, &token, &id, json!({ "status": "open" })).await;
    let all = clocks(&app, &token, &id).await;
    let resolution = clock(&all, "resolution");
    assert_eq!(resolution["state"], "running");
    assert!(resolution["paused_seconds"].as_i64().unwrap() >= 1, "{resolution}");
    assert!(moment(&resolution["due_at"]) > opened + Duration::minutes(480), "the pause moved the due moment");

    // The agent's reply meets first response.
    let post = app
        .post_as(&token, &format!("/api/v1/conversations/{conversation}/messages"), &json!({ "body": "On it" }))
        .await;
    assert_eq!(post.status(), 201);
    assert_eq!(clock(&clocks(&app, &token, &id).await, "first_response")["state"], "met");

    // Lowered to a priority the policy sets no targets for, the clocks stop; raised back,
    // what the ticket still waits for starts again (resolution), what it got does not
    // (first response).
    patch(&app, &token, &id, json!({ "priority": "low" })).await;
    assert!(clocks(&app, &token, &id).await.iter().all(|c| c["state"] != "running"));
    patch(&app, &token, &id, json!({ "priority": "normal" })).await;
    let all = clocks(&app, &token, &id).await;
    assert_eq!(clock(&all, "resolution")["state"], "running");
    assert_eq!(clock(&all, "first_response")["state"], "met");

    // Raised to urgent: the new targets apply to the time already counted.
    let before = clock(&clocks(&app, &token, &id).await, "resolution").clone();
    patch(&app, &token, &id, json!({ "priority": "urgent" })).await;
    let after = clock(&clocks(&app, &token, &id).await, "resolution").clone();
    assert_eq!(after["target_seconds"], 120 * 60);
    assert!(after["elapsed_seconds"].as_i64() >= before["elapsed_seconds"].as_i64());
    assert!(moment(&after["due_at"]) < moment(&before["due_at"]));
    assert_eq!(clock(&clocks(&app, &token, &id).await, "first_response")["state"], "met", "met stays met");

    // Solved: resolution met; then reopened, it carries on from where it stopped.
    patch(&app, &token, &id, json!({ "status": "solved" })).await;
    let solved = clock(&clocks(&app, &token, &id).await, "resolution").clone();
    assert_eq!(solved["state"], "met");
    patch(&app, &token, &id, json!({ "status": "open" })).await;
    let reopened = clock(&clocks(&app, &token, &id).await, "resolution").clone();
    assert_eq!(reopened["state"], "running");
    assert!(reopened["elapsed_seconds"].as_i64() >= solved["elapsed_seconds"].as_i64());
    assert_eq!(reopened["started_at"], before["started_at"], "the same clock, not a new one");
}

#[actix_web::test]
async fn without_a_covering_policy_there_are_no_clocks() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let ticket =
        json(app.post_as(&token, "/api/v1/tickets", &json!({ "subject": "Uncovered" })).await).await["data"].clone();
    assert!(clocks(&app, &token, ticket["id"].as_str().unwrap()).await.is_empty());
    let (_, _, _, other) = signed_in_owner(&app).await;
    let path = format!("/api/v1/tickets/{}/sla", ticket["id"].as_str().unwrap());
    assert_eq!(app.get_as(&other, &path).await.status(), 404);
}

#[actix_web::test]
async fn the_report_counts_met_and_open_targets_per_group_in_json_and_csv() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let targets = json!({ "normal": { "first_response_minutes": 60, "resolution_minutes": 480 } });
    let policy =
        json(app.post_as(&token, "/api/v1/sla-policies", &json!({ "name": "Standard", "targets": targets })).await)
            .await["data"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let conversation =
        json(app.post_as(&token, "/api/v1/conversations", &json!({ "subject": "Q" })).await).await["data"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let answered = json(
        app.post_as(&token, "/api/v1/tickets", &json!({ "conversation_id": conversation, "team": "Tier 1" })).await,
    )
    .await["data"]
        .clone();
    json(app.post_as(&token, "/api/v1/tickets", &json!({ "subject": "Waiting", "team": "Tier 1" })).await).await;
    let reply =
        app.post_as(&token, &format!("/api/v1/conversations/{conversation}/messages"), &json!({ "body": "Hi" })).await;
    assert_eq!(reply.status(), 201);
    assert!(answered["id"].is_string());

    let period = "from=2000-01-01T00:00:00Z&to=2002-01-01T00:00:00Z";
    let empty = json(app.get_as(&token, &format!("/api/v1/sla/report?group_by=policy&{period}")).await).await;
    assert!(empty["data"].as_array().unwrap().is_empty(), "tickets outside the period do not count");
    let now = Utc::now();
    let period = format!(
        "from={}&to={}",
        (now - Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (now + Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let report = json(app.get_as(&token, &format!("/api/v1/sla/report?group_by=policy&{period}")).await).await;
    let rows = report["data"].as_array().unwrap();
    let first = rows.iter().find(|r| r["metric"] == "first_response").unwrap();
    assert_eq!(first["group"], policy.as_str());
    assert_eq!((first["met"].as_i64(), first["breached"].as_i64()), (Some(1), Some(0)));
    assert_eq!(first["met_rate"], 1.0);
    assert!(first["p50_seconds"].as_f64().unwrap() < 600.0);
    let resolution = rows.iter().find(|r| r["metric"] == "resolution").unwrap();
    assert_eq!((resolution["met"].as_i64(), resolution["overdue"].as_i64()), (Some(0), Some(0)));
    assert!(resolution["met_rate"].is_null());

    let by_team = json(app.get_as(&token, &format!("/api/v1/sla/report?group_by=team&{period}")).await).await;
    assert!(by_team["data"].as_array().unwrap().iter().all(|r| r["group"] == "Tier 1"));
    let csv = app.get_as(&token, &format!("/api/v1/sla/report?group_by=agent&format=csv&{period}")).await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("group,metric,met,breached,overdue,met_rate,p50_seconds,p90_seconds,p99_seconds"));
    assert_eq!(lines.count(), 2, "{text}");

    for query in [
        "group_by=colour",
        "group_by=team&format=xml",
        "group_by=team&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let query = if query.contains("from=") { query.to_owned() } else { format!("{query}&{period}") };
        assert_eq!(app.get_as(&token, &format!("/api/v1/sla/report?{query}")).await.status(), 400, "{query}");
    }
    let (_, _, _, other) = signed_in_owner(&app).await;
    let theirs = json(app.get_as(&other, &format!("/api/v1/sla/report?group_by=policy&{period}")).await).await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn a_priority_change_while_paused_keeps_the_pause_and_the_time_already_counted() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let targets = json!({
        "normal": { "first_response_minutes": 60, "resolution_minutes": 480 },
        "urgent": { "first_response_minutes": 15, "resolution_minutes": 120 },
    });
    let policy = app.post_as(&token, "/api/v1/sla-policies", &json!({ "name": "Tiers", "targets": targets })).await;
    assert_eq!(policy.status(), 201);
    let ticket = json(app.post_as(&token, "/api/v1/tickets", &json!({ "subject": "Audit letter" })).await).await;
    let id = ticket["data"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    patch(&app, &token, &id, json!({ "status": "on_hold" })).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = clock(&clocks(&app, &token, &id).await, "resolution").clone();
    assert_eq!(before["state"], "paused");

    // Raised to urgent while on hold: still paused, nothing counted or lost meanwhile,
    // the new target in place.
    patch(&app, &token, &id, json!({ "priority": "urgent" })).await;
    let during = clock(&clocks(&app, &token, &id).await, "resolution").clone();
    assert_eq!(during["state"], "paused");
    assert_eq!(during["target_seconds"], 120 * 60);
    assert!(during["due_at"].is_null());
    assert_eq!(during["elapsed_seconds"], before["elapsed_seconds"]);
    assert!(during["elapsed_seconds"].as_i64().unwrap() >= 1);
    assert!(during["paused_seconds"].as_i64() >= before["paused_seconds"].as_i64());

    // Back to open: it runs on from what it had, the pause kept, due by the new target.
    patch(&app, &token, &id, json!({ "status": "open" })).await;
    let after = clock(&clocks(&app, &token, &id).await, "resolution").clone();
    assert_eq!(after["state"], "running");
    assert!(after["paused_seconds"].as_i64().unwrap() >= 1, "{after}");
    let left = 120 * 60 - after["elapsed_seconds"].as_i64().unwrap();
    let expected = Utc::now() + Duration::seconds(left);
    assert!((moment(&after["due_at"]) - expected).num_seconds().abs() <= 2, "{after}");
}

/// The ticket as `GET /tickets` shows it.
async fn listed_ticket(app: &TestApp, token: &str, id: &str) -> serde_json::Value {
    let page = json(app.get_as(token, "/api/v1/tickets?limit=100").await).await;
    page["data"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned().expect("the ticket is listed")
}
