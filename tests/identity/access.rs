//! Access that follows what it hangs on: a portal login its contact, every session its
//! firm, a session its sign-in.

use std::time::Duration;

use scoped_futures::ScopedFutureExt;

use crate::helpers::{PASSWORD, TestApp, json, set_firm_status, signed_in_owner, spawn_app, spawn_app_with};

/// A client with a contact that has portal access and a portal login for it: (client id,
/// contact id, portal access token, portal refresh token).
async fn portal_login(app: &TestApp, firm_slug: &str, owner: &str) -> (String, String, String, String) {
    let client = json(app.post_as(owner, "/api/v1/clients", &serde_json::json!({ "name": "Client A" })).await).await;
    let client_id = client["data"]["id"].as_str().unwrap().to_owned();
    let contact = app
        .post_as(
            owner,
            "/api/v1/contacts",
            &serde_json::json!({ "first_name": "Portal", "portal_access": true, "client_id": client_id }),
        )
        .await;
    assert_eq!(contact.status(), 201);
    let contact_id = json(contact).await["data"]["id"].as_str().unwrap().to_owned();
    let email = format!("portal-{}@example.com", uuid::Uuid::now_v7().simple());
    let db = app.db();
    let firm = consultantpro::domain::onboarding::find_firm(&db, firm_slug).await.unwrap();
    crate::helpers::invite_and_join(app, owner, &firm, &email, "client", Some(&contact_id)).await;
    let tokens = app.login_ok(firm_slug, &email, PASSWORD).await;
    (
        client_id,
        contact_id,
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// What the portal login can still do: (list conversations, post in its conversation,
/// refresh).
async fn portal_reach(app: &TestApp, token: &str, conversation: &str, refresh: &str) -> (u16, u16, u16) {
    let listed = app.get_as(token, "/api/v1/conversations").await.status().as_u16();
    let posted = app
        .post_as(token, &format!("/api/v1/conversations/{conversation}/messages"), &serde_json::json!({ "body": "hi" }))
        .await
        .status()
        .as_u16();
    let refreshed =
        app.post("/api/v1/auth/refresh", &serde_json::json!({ "refresh_token": refresh })).await.status().as_u16();
    (listed, posted, refreshed)
}

async fn portal_conversation(app: &TestApp, owner: &str, contact_id: &str) -> String {
    let created = app
        .post_as(
            owner,
            "/api/v1/conversations",
            &serde_json::json!({ "subject": "Engagement", "channel": "portal", "participants": { "contacts": [contact_id] } }),
        )
        .await;
    assert_eq!(created.status(), 201);
    json(created).await["data"]["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn portal_access_ends_with_the_contacts_access_archive_or_move() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let other_client = json(app.post_as(&owner, "/api/v1/clients", &serde_json::json!({ "name": "Client B" })).await)
        .await["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let changes: [(&str, serde_json::Value); 3] = [
        ("portal access off", serde_json::json!({ "portal_access": false })),
        ("moved to another client", serde_json::json!({ "client_id": other_client })),
        ("archived", serde_json::Value::Null),
    ];
    for (what, change) in changes {
        let (_, contact_id, token, refresh) = portal_login(&app, &firm.slug, &owner).await;
        let conversation = portal_conversation(&app, &owner, &contact_id).await;
        // The positive control: before the change the login reaches all three (the refresh
        // token is spent here, so the check below uses the new one).
        let listed = app.get_as(&token, "/api/v1/conversations").await.status();
        assert_eq!(listed, 200, "{what}");
        let posted = app
            .post_as(
                &token,
                &format!("/api/v1/conversations/{conversation}/messages"),
                &serde_json::json!({ "body": "a" }),
            )
            .await;
        assert_eq!(posted.status(), 201, "{what}");
        let renewed =
            json(app.post("/api/v1/auth/refresh", &serde_json::json!({ "refresh_token": refresh })).await).await;
        let (token, refresh) = (
            renewed["data"]["access_token"].as_str().unwrap().to_owned(),
            renewed["data"]["refresh_token"].as_str().unwrap().to_owned(),
        );

        let changed = if change.is_null() {
            app.delete_as(&owner, &format!("/api/v1/contacts/{contact_id}")).await
        } else {
            app.patch_as(&owner, &format!("/api/v1/contacts/{contact_id}"), &change).await
        };
        assert!(changed.status().is_success(), "{what}: {}", changed.status());
        assert_eq!(portal_reach(&app, &token, &conversation, &refresh).await, (401, 401, 401), "{what}");
    }
}

#[actix_web::test]
async fn a_portal_user_starts_conversations_with_only_its_own_contact() {
    let app = spawn_app().await;
    let (firm, _, owner_id, owner) = signed_in_owner(&app).await;
    let (_, contact_id, token, _) = portal_login(&app, &firm.slug, &owner).await;
    let (_, someone_else, other_token, _) = portal_login(&app, &firm.slug, &owner).await;
    let missing = uuid::Uuid::now_v7().to_string();
    let mut refusals = Vec::new();
    for other in [someone_else.as_str(), missing.as_str()] {
        let response = app
            .post_as(
                &token,
                "/api/v1/conversations",
                &serde_json::json!({ "subject": "Hello", "channel": "portal", "participants": { "contacts": [other] } }),
            )
            .await;
        assert_eq!(response.status(), 400);
        refusals.push(json(response).await["error"].clone());
    }
    assert_eq!(refusals[0], refusals[1], "an existing and a made-up contact must be refused alike");

    // Its own contact and the firm's staff are fine.
    let response = app
        .post_as(
            &token,
            "/api/v1/conversations",
            &serde_json::json!({ "subject": "Hello", "channel": "portal",
                                 "participants": { "contacts": [contact_id], "members": [owner_id] } }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created = json(response).await;
    assert_eq!(created["data"]["participants"]["contacts"], serde_json::json!([contact_id]));
    // The firm sees it; the other contact's login sees none of it.
    let listed = json(app.get_as(&owner, "/api/v1/conversations").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let theirs = json(app.get_as(&other_token, "/api/v1/conversations").await).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 0);
}

#[actix_web::test]
async fn a_suspended_firms_sessions_end_at_the_next_request_and_refresh() {
    let app = spawn_app().await;
    let (firm, email, _, _) = signed_in_owner(&app).await;
    let tokens = app.login_ok(&firm.slug, &email, PASSWORD).await;
    let (token, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    assert_eq!(app.get_as(token, "/api/v1/me").await.status(), 200);
    set_firm_status(&app.db(), firm.firm_id(), "suspended").await;
    assert_eq!(app.get_as(token, "/api/v1/me").await.status(), 401);
    assert_eq!(app.get_as(token, "/api/v1/clients").await.status(), 401);
    let refreshed = app.post("/api/v1/auth/refresh", &serde_json::json!({ "refresh_token": refresh })).await;
    assert_eq!(refreshed.status(), 401);
    // Reactivated, the same session works again: suspension refuses, it does not revoke.
    set_firm_status(&app.db(), firm.firm_id(), "active").await;
    assert_eq!(app.get_as(token, "/api/v1/me").await.status(), 200);
}

#[actix_web::test]
async fn a_session_is_not_renewed_past_its_lifetime() {
    let app = spawn_app_with(|s| s.auth.session_lifetime_secs = 2).await;
    let (firm, email, _, _) = signed_in_owner(&app).await;
    let tokens = app.login_ok(&firm.slug, &email, PASSWORD).await;
    // Within the lifetime, refresh works (and rotates).
    let renewed =
        app.post("/api/v1/auth/refresh", &serde_json::json!({ "refresh_token": tokens["refresh_token"] })).await;
    assert_eq!(renewed.status(), 200);
    let refresh = json(renewed).await["data"]["refresh_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = app.post("/api/v1/auth/refresh", &serde_json::json!({ "refresh_token": refresh })).await;
    assert_eq!(late.status(), 401);
    assert_eq!(json(late).await["error"]["code"], "invalid_refresh_token");
}

#[actix_web::test]
async fn a_firm_cannot_end_the_sessions_of_someone_who_is_not_its_member() {
    let app = spawn_app().await;
    let (firm_a, _, _, _) = signed_in_owner(&app).await;
    let (_, _, b_owner_id, b_owner) = signed_in_owner(&app).await;
    let firm_a_id = firm_a.firm_id();
    let ended = app
        .state
        .db()
        .firm_tx(firm_a_id, |conn| {
            async move { consultantpro::domain::sessions::revoke_everywhere(conn, b_owner_id, None, "attack").await }
                .scope_boxed()
        })
        .await
        .unwrap();
    assert_eq!(ended, 0);
    assert_eq!(app.get_as(&b_owner, "/api/v1/me").await.status(), 200, "firm B's owner is still signed in");
}

/// A member's standing is read in the request's own transaction, with `BEGIN`: a role
/// taken away shows at the very next read, a deactivation ends the next read with 401, and
/// the refused reads leave the server's connections fit for the requests after them.
#[actix_web::test]
async fn a_changed_role_or_membership_shows_at_the_next_read() {
    use consultantpro::domain::memberships::Role;
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (admin_email, admin_id) = crate::helpers::add_member(&app.db(), &firm, Role::Admin).await;
    let admin = app.login_ok(&firm.slug, &admin_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(&admin, "/api/v1/audit-events").await.status(), 200);

    let member = format!("/api/v1/members/{admin_id}");
    let demoted = app.patch_as(&owner, &member, &serde_json::json!({ "role": "staff" })).await;
    assert_eq!(demoted.status(), 200);
    let refused = app.get_as(&admin, "/api/v1/audit-events").await;
    assert_eq!(refused.status(), 403);
    assert!(json(refused).await["error"]["message"].as_str().unwrap().contains("staff"));
    assert_eq!(app.get_as(&admin, "/api/v1/clients").await.status(), 200, "staff still read clients");

    let off = app.patch_as(&owner, &member, &serde_json::json!({ "status": "deactivated" })).await;
    assert_eq!(off.status(), 200);
    for _ in 0..20 {
        assert_eq!(app.get_as(&admin, "/api/v1/clients").await.status(), 401);
    }
    // Twenty refusals later, every pooled connection still serves.
    for _ in 0..20 {
        assert_eq!(app.get_as(&owner, "/api/v1/clients").await.status(), 200);
    }
}
