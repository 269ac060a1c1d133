//! One read-only guard for every write the API has: iterated over the OpenAPI document,
//! not listed by hand, so an endpoint added later is covered the day it appears.

use consultantpro::domain::memberships::Role;

use crate::break_glass::{operator_token, request_grant};
use crate::helpers::{PASSWORD, TestApp, add_member, json, signed_in_owner, spawn_app};

/// Every operation of the document that is not a read, with its path parameters filled.
async fn write_operations(app: &TestApp) -> Vec<(String, String)> {
    let document = json(app.get("/api/openapi.json").await).await;
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if matches!(method.as_str(), "get" | "head" | "parameters") {
                continue;
            }
            let filled: Vec<String> = path
                .split('/')
                .map(
                    |segment| {
                        if segment.starts_with('{') { uuid::Uuid::now_v7().to_string() } else { segment.to_owned() }
                    },
                )
                .collect();
            operations.push((method.to_uppercase(), filled.join("/")));
        }
    }
    assert!(operations.len() > 40, "the document lists only {} writes", operations.len());
    operations
}

async fn send(app: &TestApp, token: &str, method: &str, path: &str) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    app.client.request(method, app.url(path)).bearer_auth(token).json(&serde_json::json!({})).send().await.unwrap()
}

#[actix_web::test]
async fn a_break_glass_token_is_refused_every_write_in_the_document() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (_, requester) = operator_token(&app).await;
    let (_, approver) = operator_token(&app).await;
    let grant = request_grant(&app, &requester, firm.id, 30).await;
    let id = grant["id"].as_str().unwrap();
    app.post_as(&approver, &format!("/api/v1/platform/break-glass/{id}/approve"), &serde_json::json!({})).await;
    let response =
        app.post_as(&requester, &format!("/api/v1/platform/break-glass/{id}/token"), &serde_json::json!({})).await;
    let token = json(response).await["data"]["access_token"].as_str().unwrap().to_owned();
    // The positive control: the token reads.
    assert_eq!(app.get_as(&token, "/api/v1/clients").await.status(), 200);

    for (method, path) in write_operations(&app).await {
        let response = send(&app, &token, &method, &path).await;
        let status = response.status();
        let body = json(response).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{method} {path}");
    }
    // Refused writes are audited under the grant like every other request.
    let log = json(app.get_as(&owner, "/api/v1/audit-events?action=break_glass.request&limit=100").await).await;
    assert!(
        log["data"].as_array().unwrap().iter().any(|e| e["metadata"]["method"] != "GET" && e["result"] == "denied")
    );
}

#[actix_web::test]
async fn a_readonly_member_is_refused_every_write_but_its_own_session_and_reads() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (email, _) = add_member(&app.db(), &firm, Role::Readonly).await;
    let token = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let own = [
        "/api/v1/auth/logout",
        "/api/v1/realtime/ticket",
        "/api/v1/auth/mfa/enroll",
        "/api/v1/auth/mfa/confirm",
        "/api/v1/auth/mfa/disable",
        "/api/v1/auth/password",
    ];
    for (method, path) in write_operations(&app).await {
        let is_own =
            own.contains(&path.as_str()) || (path.starts_with("/api/v1/conversations/") && path.ends_with("/read"));
        if is_own || path == "/api/v1/auth/logout" {
            continue;
        }
        let response = send(&app, &token, &method, &path).await;
        let status = response.status();
        let body = json(response).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
    }
    // Its own session's writes pass the guard: a ticket, then log-out, work.
    let ticket = app.post_as(&token, "/api/v1/realtime/ticket", &serde_json::json!({})).await;
    assert_eq!(ticket.status(), 200);
    let conversation = app.post_as(&owner, "/api/v1/conversations", &serde_json::json!({ "subject": "Read me" })).await;
    let conversation = json(conversation).await["data"]["id"].as_str().unwrap().to_owned();
    let read = app
        .post_as(&token, &format!("/api/v1/conversations/{conversation}/read"), &serde_json::json!({ "seq": 0 }))
        .await;
    assert!(read.status().is_success(), "{}", read.status());
    let out = app.post_as(&token, "/api/v1/auth/logout", &serde_json::json!({})).await;
    assert_eq!(out.status(), 200);
    assert_eq!(app.get_as(&token, "/api/v1/me").await.status(), 401);
}

/// The guard refuses by the token; a member made read-only after signing in still carries
/// a token that says otherwise, and is refused by the standing every handler reads before
/// it touches data — with nothing stored.
#[actix_web::test]
async fn a_member_made_readonly_after_signing_in_is_refused_writes_at_once() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (email, user_id) = add_member(&app.db(), &firm, Role::Staff).await;
    let token = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let created = app.post_as(&token, "/api/v1/clients", &serde_json::json!({ "name": "Before" })).await;
    assert_eq!(created.status(), 201);

    let demoted =
        app.patch_as(&owner, &format!("/api/v1/members/{user_id}"), &serde_json::json!({ "role": "readonly" })).await;
    assert_eq!(demoted.status(), 200);
    let refused = app.post_as(&token, "/api/v1/clients", &serde_json::json!({ "name": "After" })).await;
    assert_eq!(refused.status(), 403);
    assert!(json(refused).await["error"]["message"].as_str().unwrap().contains("readonly"));
    let conversation = app.post_as(&token, "/api/v1/conversations", &serde_json::json!({ "subject": "x" })).await;
    assert_eq!(conversation.status(), 403);
    let listed = json(app.get_as(&token, "/api/v1/clients").await).await;
    let names: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Before"], "reads still work, and the refused write stored nothing");
    // Its own sign-in is still its own.
    assert_eq!(app.post_as(&token, "/api/v1/realtime/ticket", &serde_json::json!({})).await.status(), 200);
}
