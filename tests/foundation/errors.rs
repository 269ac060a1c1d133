//! Bad input of every kind answers in the error format, with the right status, and the
//! server stays healthy.

use actix_web::{HttpResponse, web};
use consultantpro::http::body::JsonObject;
use serde::Deserialize;

use crate::helpers::{TestApp, json, spawn_app_with_routes};

#[derive(Deserialize)]
struct Probe {
    name: String,
    count: u32,
}

/// A JSON endpoint mounted only in tests, behind the real middleware and extractor settings.
fn probe_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/test/probe/{id}",
        web::post().to(|id: web::Path<uuid::Uuid>, body: JsonObject<Probe>| async move {
            HttpResponse::Ok()
                .json(serde_json::json!({ "data": { "id": *id, "name": body.name, "count": body.count } }))
        }),
    );
}

async fn app_with_probe() -> TestApp {
    spawn_app_with_routes(|s| s.server.max_body_bytes = 1024, probe_routes).await
}

async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert!(response.headers().contains_key("x-request-id"));
    let body = json(response).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["details"].is_object(), "{body}");
    body
}

fn probe_url(app: &TestApp) -> String {
    app.url(&format!("/test/probe/{}", uuid::Uuid::now_v7()))
}

async fn post_probe(app: &TestApp, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.client.post(probe_url(app)).header("content-type", content_type).body(body).send().await.unwrap()
}

#[actix_web::test]
async fn well_formed_input_is_accepted() {
    let app = app_with_probe().await;
    let response =
        app.client.post(probe_url(&app)).json(&serde_json::json!({"name": "a", "count": 2})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["data"]["count"], 2);
}

#[actix_web::test]
async fn unknown_route_is_404() {
    let app = app_with_probe().await;
    expect_error(app.get("/api/v1/no-such-thing").await, 404, "not_found").await;
}

#[actix_web::test]
async fn wrong_method_is_405() {
    let app = app_with_probe().await;
    let response = app.client.post(app.url("/health/")).send().await.unwrap();
    expect_error(response, 405, "method_not_allowed").await;
    let response = app.client.delete(app.url("/ready/")).send().await.unwrap();
    expect_error(response, 405, "method_not_allowed").await;
}

#[actix_web::test]
async fn malformed_json_is_400_with_position() {
    let app = app_with_probe().await;
    let response = post_probe(&app, "application/json", "{\"name\": \"a\",").await;
    let body = expect_error(response, 400, "validation_error").await;
    assert_eq!(body["error"]["details"]["kind"], "truncated");

    let response = post_probe(&app, "application/json", "{nope}").await;
    let body = expect_error(response, 400, "validation_error").await;
    assert_eq!(body["error"]["details"]["kind"], "malformed");
    assert_eq!(body["error"]["details"]["line"], 1);
}

#[actix_web::test]
async fn wrong_types_and_missing_fields_are_400() {
    let app = app_with_probe().await;
    for body in [r#"{"name": "a", "count": "two"}"#, r#"{"name": "a"}"#, r#"{"name": "a", "count": -1}"#, "[]"] {
        let response = post_probe(&app, "application/json", body).await;
        let error = expect_error(response, 400, "validation_error").await;
        assert_eq!(error["error"]["details"]["kind"], "wrong_shape", "{body}");
    }
}

#[actix_web::test]
async fn bad_utf8_is_400() {
    let app = app_with_probe().await;
    let response = post_probe(&app, "application/json", b"{\"name\": \"\xff\xfe\", \"count\": 1}".to_vec()).await;
    expect_error(response, 400, "validation_error").await;
}

#[actix_web::test]
async fn wrong_content_type_is_415() {
    let app = app_with_probe().await;
    let response = post_probe(&app, "text/plain", r#"{"name": "a", "count": 1}"#).await;
    expect_error(response, 415, "unsupported_media_type").await;
}

#[actix_web::test]
async fn oversized_body_is_413() {
    let app = app_with_probe().await;
    let big = format!(r#"{{"name": "{}", "count": 1}}"#, "x".repeat(4096));
    let response = post_probe(&app, "application/json", big).await;
    expect_error(response, 413, "payload_too_large").await;
    // The server is still fine afterwards.
    assert_eq!(app.get("/health/").await.status(), 200);
}

#[actix_web::test]
async fn malformed_path_parameter_is_400() {
    let app = app_with_probe().await;
    let response = app
        .client
        .post(app.url("/test/probe/not-a-uuid"))
        .json(&serde_json::json!({"name": "a", "count": 1}))
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "validation_error").await;
}

#[actix_web::test]
async fn text_with_a_nul_character_is_a_400_and_stores_nothing() {
    let app = crate::helpers::spawn_app().await;
    let (_, _, _, token) = crate::helpers::signed_in_owner(&app).await;
    for (body, field) in [
        (serde_json::json!({ "name": "a\u{0}b" }), "name"),
        (serde_json::json!({ "name": "Acme", "custom_fields": { "a": "\u{0}" } }), "custom_fields.a"),
    ] {
        let answer = app.post_as(&token, "/api/v1/clients", &body).await;
        let error = expect_error(answer, 400, "validation_error").await;
        assert!(error["error"]["details"]["fields"][field].is_string(), "{field}: {error}");
    }
    let listed = json(app.get_as(&token, "/api/v1/clients").await).await;
    assert!(listed["data"].as_array().unwrap().is_empty(), "{listed}");
    let searched = app.get_as(&token, "/api/v1/clients?status=active&q=a%00").await;
    let error = expect_error(searched, 400, "validation_error").await;
    assert!(error["error"]["details"]["fields"]["q"].is_string(), "{error}");
    // The positive control: the same search without the NUL answers.
    assert_eq!(app.get_as(&token, "/api/v1/clients?status=active&q=a").await.status(), 200);
}

#[actix_web::test]
async fn a_body_that_is_not_a_json_object_is_a_400_and_changes_nothing() {
    let app = crate::helpers::spawn_app().await;
    let (_, _, _, token) = crate::helpers::signed_in_owner(&app).await;
    let before = json(app.get_as(&token, "/api/v1/finance/settings").await).await;
    assert!(before["data"]["invoice_pattern"].is_string(), "{before}");
    for (body, found) in
        [("[null,null]", "array"), ("[]", "array"), ("\"x\"", "string"), ("null", "null"), ("7", "number")]
    {
        let answer = app
            .client
            .patch(app.url("/api/v1/finance/settings"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let error = expect_error(answer, 400, "validation_error").await;
        assert_eq!(error["error"]["details"]["found"], found, "{body}");
    }
    let after = json(app.get_as(&token, "/api/v1/finance/settings").await).await;
    assert_eq!(before, after);
    // The positive control: the same endpoint takes an object.
    let changed = app
        .patch_as(&token, "/api/v1/finance/settings", &serde_json::json!({ "invoice_pattern": "F-{YYYY}-{seq:04}" }))
        .await;
    assert_eq!(changed.status(), 200);
}
