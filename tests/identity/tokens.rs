//! Access tokens are checked for signature, algorithm and expiry, and against the
//! database on every request; refresh tokens rotate and betray their reuse.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use consultantpro::domain::memberships::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;

use crate::helpers::{PASSWORD, TestApp, add_member, json, new_firm, spawn_app};

async fn member_session(
    app: &TestApp,
    role: Role,
) -> (consultantpro::domain::firms::Firm, uuid::Uuid, serde_json::Value) {
    let db = app.db();
    let firm = new_firm(&db).await;
    let (email, user_id) = add_member(&db, &firm, role).await;
    let tokens = app.login_ok(&firm.slug, &email, PASSWORD).await;
    (firm, user_id, tokens)
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get_as(token, "/api/v1/me").await.status().as_u16()
}

fn access(tokens: &serde_json::Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

#[actix_web::test]
async fn forged_tampered_and_expired_tokens_are_refused() {
    let app = spawn_app().await;
    let (_, _, tokens) = member_session(&app, Role::Staff).await;
    let token = access(&tokens);
    assert_eq!(me_status(&app, token).await, 200);

    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();

    // Same claims, role raised, original signature: the signature no longer matches.
    claims["role"] = "owner".into();
    let raised = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_eq!(me_status(&app, &format!("{}.{}.{}", parts[0], raised, parts[2])).await, 401);

    // One flipped signature character.
    let mut signature = parts[2].to_owned();
    let flipped = if signature.ends_with('A') { 'B' } else { 'A' };
    signature.pop();
    signature.push(flipped);
    assert_eq!(me_status(&app, &format!("{}.{}.{}", parts[0], parts[1], signature)).await, 401);

    // `alg: none` with no signature.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(me_status(&app, &format!("{none_header}.{}.", parts[1])).await, 401);

    // Properly signed with the server's key, but expired.
    let secret = app.settings.auth.jwt_secret.expose_secret().to_owned();
    claims["role"] = "staff".into();
    claims["exp"] = (chrono::Utc::now().timestamp() - 120).into();
    let expired =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
            .unwrap();
    let response = app.get_as(&expired, "/api/v1/me").await;
    assert_eq!(response.status(), 401);
    assert_eq!(json(response).await["error"]["code"], "unauthorized");

    // Signed with another key; and a different algorithm with the same key.
    let other_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"another key entirely, 32 bytes long"),
    )
    .unwrap();
    assert_eq!(me_status(&app, &other_key).await, 401);
    claims["exp"] = (chrono::Utc::now().timestamp() + 600).into();
    let hs512 =
        jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(secret.as_bytes()))
            .unwrap();
    assert_eq!(me_status(&app, &hs512).await, 401);

    // Garbage, a missing header, the wrong scheme.
    assert_eq!(me_status(&app, "not.a.token").await, 401);
    assert_eq!(app.get("/api/v1/me").await.status(), 401);
    let basic = app.client.get(app.url("/api/v1/me")).header("authorization", "Basic YTpi").send().await.unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(json(basic).await["error"]["code"], "unauthorized");
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    let (_, _, first) = member_session(&app, Role::Staff).await;
    let refresh = |token: &str| {
        let body = serde_json::json!({ "refresh_token": token });
        let app = &app;
        async move { app.post("/api/v1/auth/refresh", &body).await }
    };
    let response = refresh(first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    let second = json(response).await["data"].clone();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(me_status(&app, access(&second)).await, 200);

    // The first refresh token was used: presenting it again is reuse.
    let reused = refresh(first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(reused.status(), 401);
    assert_eq!(json(reused).await["error"]["code"], "invalid_refresh_token");

    // The whole family is dead: the newest refresh token and every access token of it.
    assert_eq!(refresh(second["refresh_token"].as_str().unwrap()).await.status(), 401);
    assert_eq!(me_status(&app, access(&second)).await, 401);
    assert_eq!(me_status(&app, access(&first)).await, 401);
}

#[actix_web::test]
async fn refresh_reuse_is_audited() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let (owner_email, _) = add_member(&db, &firm, Role::Owner).await;
    let (staff_email, staff_id) = add_member(&db, &firm, Role::Staff).await;
    let staff = app.login_ok(&firm.slug, &staff_email, PASSWORD).await;
    let body = serde_json::json!({ "refresh_token": staff["refresh_token"] });
    assert_eq!(app.post("/api/v1/auth/refresh", &body).await.status(), 200);
    assert_eq!(app.post("/api/v1/auth/refresh", &body).await.status(), 401);

    let owner = app.login_ok(&firm.slug, &owner_email, PASSWORD).await;
    let events = json(app.get_as(access(&owner), "/api/v1/audit-events?action=auth.refresh_reuse").await).await;
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor_id"], staff_id.to_string());
    assert_eq!(events[0]["result"], "denied");
}

#[actix_web::test]
async fn malformed_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    for token in ["", "garbage", "not-a-uuid.secret", &format!("{}.made-up-secret", uuid::Uuid::now_v7())] {
        let response = app.post("/api/v1/auth/refresh", &serde_json::json!({ "refresh_token": token })).await;
        assert_eq!(response.status(), 401, "{token}");
        assert_eq!(json(response).await["error"]["code"], "invalid_refresh_token");
    }
    let response = app.post("/api/v1/auth/refresh", &serde_json::json!({ "refresh_token": 7 })).await;
    assert_eq!(response.status(), 400);
}

#[actix_web::test]
async fn logout_ends_the_session_at_once() {
    let app = spawn_app().await;
    let (_, _, tokens) = member_session(&app, Role::Staff).await;
    let response = app.post_as(access(&tokens), "/api/v1/auth/logout", &serde_json::json!({})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(me_status(&app, access(&tokens)).await, 401);
    let body = serde_json::json!({ "refresh_token": tokens["refresh_token"] });
    assert_eq!(app.post("/api/v1/auth/refresh", &body).await.status(), 401);
}

#[actix_web::test]
async fn a_deactivated_member_loses_access_at_the_next_request() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let (owner_email, _) = add_member(&db, &firm, Role::Owner).await;
    let (staff_email, staff_id) = add_member(&db, &firm, Role::Staff).await;
    let owner = app.login_ok(&firm.slug, &owner_email, PASSWORD).await;
    let staff = app.login_ok(&firm.slug, &staff_email, PASSWORD).await;
    assert_eq!(me_status(&app, access(&staff)).await, 200);

    let response = app.delete_as(access(&owner), &format!("/api/v1/members/{staff_id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["data"]["status"], "deactivated");

    // The access token is still unexpired; it no longer works.
    assert_eq!(me_status(&app, access(&staff)).await, 401);
    let body = serde_json::json!({ "refresh_token": staff["refresh_token"] });
    assert_eq!(app.post("/api/v1/auth/refresh", &body).await.status(), 401);
    assert_eq!(app.login(&firm.slug, &staff_email, PASSWORD).await.status(), 401);
}

/// The per-request session check runs outside any firm's transaction, so it must itself
/// insist on the firm, the member and the session matching.
#[actix_web::test]
async fn the_session_check_answers_only_for_the_matching_firm_member_and_session() {
    let app = spawn_app().await;
    let (firm, user_id, tokens) = member_session(&app, Role::Staff).await;
    let (other_firm, other_user, _) = member_session(&app, Role::Staff).await;
    let claims = access(&tokens).split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let session: uuid::Uuid = claims["sid"].as_str().unwrap().parse().unwrap();
    let db = app.db();
    assert_eq!(db.session_role(firm.firm_id(), user_id, session).await.unwrap().as_deref(), Some("staff"));
    assert_eq!(db.session_role(other_firm.firm_id(), user_id, session).await.unwrap(), None);
    assert_eq!(db.session_role(firm.firm_id(), other_user, session).await.unwrap(), None);
    assert_eq!(db.session_role(firm.firm_id(), user_id, uuid::Uuid::now_v7()).await.unwrap(), None);
    app.post_as(access(&tokens), "/api/v1/auth/logout", &serde_json::json!({})).await;
    assert_eq!(db.session_role(firm.firm_id(), user_id, session).await.unwrap(), None);
}
