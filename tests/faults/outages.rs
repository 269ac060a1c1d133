//! PostgreSQL stopped for ten seconds: every request answers 503 in the error format, and
//! the same server recovers once the database is back, without a restart.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, json, signed_in_owner, spawn_app};

/// Runs `scripts/services.sh` with `action` against the project's PostgreSQL.
fn postgres(action: &str) {
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh"))
        .arg(action)
        .env("CP_ENV", "test")
        .output()
        .unwrap();
    assert!(output.status.success(), "services.sh {action}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Stops PostgreSQL now and starts it again when dropped, so a failing test never leaves
/// the database down for the tests after it.
struct Outage {
    ended: bool,
}

impl Outage {
    fn begin() -> Self {
        postgres("postgres-stop");
        Outage { ended: false }
    }

    fn end(mut self) {
        postgres("postgres-start");
        self.ended = true;
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if !self.ended {
            postgres("postgres-start");
        }
    }
}

/// `response` is a 503 in the error format, answered promptly.
async fn unavailable(what: &str, asked: Instant, response: reqwest::Response) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(body["error"]["code"], "unavailable", "{what}: {body}");
    assert!(!body.to_string().to_lowercase().contains("connection refused"), "{what} leaks the cause: {body}");
    assert!(asked.elapsed() < Duration::from_secs(8), "{what} took {:?}", asked.elapsed());
}

async fn answers_while_down(app: &TestApp, token: &str, firm: &str, conversation: &str) {
    let asked = Instant::now();
    unavailable("the conversation list", asked, app.get_as(token, "/api/v1/conversations").await).await;
    let asked = Instant::now();
    let post = app
        .post_as(token, &format!("/api/v1/conversations/{conversation}/messages"), &json!({ "body": "lost?" }))
        .await;
    unavailable("a new message", asked, post).await;
    let asked = Instant::now();
    let login = app
        .post("/api/v1/auth/login", &json!({ "firm": firm, "email": "nobody@example.com", "password": "whatever" }))
        .await;
    unavailable("a sign-in", asked, login).await;
    let asked = Instant::now();
    unavailable("readiness", asked, app.get("/ready/").await).await;
}

#[actix_web::test]
async fn postgres_stopped_for_ten_seconds_is_503_everywhere_then_the_same_server_recovers() {
    let _one_fault = crate::FAULTS.lock().await;
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let created = json(app.post_as(&token, "/api/v1/conversations", &json!({ "subject": "Outage" })).await).await;
    let conversation = created["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/ready/").await.status(), 200, "the positive control: ready before the outage");

    let outage = Outage::begin();
    let down_since = Instant::now();
    while down_since.elapsed() < Duration::from_secs(10) {
        answers_while_down(&app, &token, &firm.slug, &conversation).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    outage.end();

    let back = Instant::now();
    while app.get("/ready/").await.status() != 200 {
        assert!(back.elapsed() < Duration::from_secs(30), "the server did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every kind of request works again on the same server; the outage stored nothing.
    let posted = app
        .post_as(&token, &format!("/api/v1/conversations/{conversation}/messages"), &json!({ "body": "after" }))
        .await;
    assert_eq!(posted.status(), 201);
    assert_eq!(json(posted).await["data"]["seq"], 1, "no message was stored during the outage");
    let listed = json(app.get_as(&token, "/api/v1/conversations").await).await;
    assert!(listed["data"].as_array().unwrap().iter().any(|c| c["id"] == conversation.as_str()), "{listed}");
}
