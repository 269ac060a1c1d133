//! Conversations over REST and live over WebSockets: ordering, replay, fan-out across
//! nodes, slow clients, bad frames, and who may see what.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/ws.rs"]
mod ws;

mod limits;
mod live;
mod rest;

use helpers::{TestApp, json};

/// Starts a conversation as `token`; returns its id.
pub async fn conversation(app: &TestApp, token: &str, body: serde_json::Value) -> String {
    let response = app.post_as(token, "/api/v1/conversations", &body).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

/// Posts a message over REST; returns its seq.
pub async fn post(app: &TestApp, token: &str, conversation_id: &str, body: &str) -> i64 {
    let response = app
        .post_as(
            token,
            &format!("/api/v1/conversations/{conversation_id}/messages"),
            &serde_json::json!({ "body": body }),
        )
        .await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["seq"].as_i64().unwrap()
}
