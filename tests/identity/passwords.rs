//! A password belongs to its person: changed with the current one, reset by email, and
//! either way every other session of that login ends, in every firm.

use crate::helpers::{
    PASSWORD, TestApp, invite_and_join, json, mail_to, mails_to, run_jobs, signed_in_owner, spawn_app, spawn_app_with,
    token_in,
};

const NEW_PASSWORD: &str = "a brand new password";

async fn member_of_two_firms(app: &TestApp) -> (String, String, String, String, String) {
    let (firm_a, _, _, owner_a) = signed_in_owner(app).await;
    let (firm_b, _, _, owner_b) = signed_in_owner(app).await;
    let email = format!("two-{}@example.com", uuid::Uuid::now_v7().simple());
    let in_a = invite_and_join(app, &owner_a, &firm_a, &email, "staff", None).await;
    let in_b = invite_and_join(app, &owner_b, &firm_b, &email, "staff", None).await;
    (email, firm_a.slug, firm_b.slug, in_a, in_b)
}

#[actix_web::test]
async fn changing_the_password_ends_the_other_sessions_in_every_firm() {
    let app = spawn_app().await;
    let (email, slug_a, slug_b, in_a, in_b) = member_of_two_firms(&app).await;
    let change = |current: &str| serde_json::json!({ "current_password": current, "new_password": NEW_PASSWORD });
    let wrong = app.post_as(&in_a, "/api/v1/auth/password", &change("not the password")).await;
    assert_eq!(wrong.status(), 401);
    let short = app
        .post_as(
            &in_a,
            "/api/v1/auth/password",
            &serde_json::json!({ "current_password": PASSWORD, "new_password": "short" }),
        )
        .await;
    assert_eq!(short.status(), 400);
    assert_eq!(app.get_as(&in_b, "/api/v1/me").await.status(), 200, "nothing ended yet");

    let changed = app.post_as(&in_a, "/api/v1/auth/password", &change(PASSWORD)).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(json(changed).await["data"]["sessions_ended"], 1, "the session in firm B, not the one that changed it");
    assert_eq!(app.get_as(&in_b, "/api/v1/me").await.status(), 401, "the other firm's session ended");
    assert_eq!(app.get_as(&in_a, "/api/v1/me").await.status(), 200, "the session that changed it goes on");
    assert_eq!(app.login(&slug_b, &email, PASSWORD).await.status(), 401);
    app.login_ok(&slug_b, &email, NEW_PASSWORD).await;
    app.login_ok(&slug_a, &email, NEW_PASSWORD).await;
}

#[actix_web::test]
async fn a_forgotten_password_is_reset_by_email_once_and_ends_every_session() {
    let app = spawn_app().await;
    let (email, slug_a, slug_b, in_a, in_b) = member_of_two_firms(&app).await;
    let firm_a = consultantpro::domain::onboarding::find_firm(&app.db(), &slug_a).await.unwrap();

    // The same answer whether or not the address belongs to anyone.
    let unknown = format!("nobody-{}@example.com", uuid::Uuid::now_v7().simple());
    let mut answers = Vec::new();
    for address in [&email, &unknown] {
        let response =
            app.post("/api/v1/auth/password/forgot", &serde_json::json!({ "firm": slug_a, "email": address })).await;
        answers.push((response.status().as_u16(), json(response).await));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 202);
    run_jobs(&app, firm_a.firm_id()).await;
    assert_eq!(mails_to(&unknown), 0);
    let token = token_in(&mail_to(&email).await, "reset-password");

    // A refused password costs no link; the right one ends every session.
    let short =
        app.post("/api/v1/auth/password/reset", &serde_json::json!({ "token": token, "new_password": "short" })).await;
    assert_eq!(short.status(), 400);
    let reset = app
        .post("/api/v1/auth/password/reset", &serde_json::json!({ "token": token, "new_password": NEW_PASSWORD }))
        .await;
    assert_eq!(reset.status(), 200);
    assert_eq!(app.get_as(&in_a, "/api/v1/me").await.status(), 401);
    assert_eq!(app.get_as(&in_b, "/api/v1/me").await.status(), 401);
    app.login_ok(&slug_b, &email, NEW_PASSWORD).await;
    // Used once.
    let again = app
        .post(
            "/api/v1/auth/password/reset",
            &serde_json::json!({ "token": token, "new_password": "yet another password" }),
        )
        .await;
    assert_eq!(again.status(), 400);
    app.login_ok(&slug_a, &email, NEW_PASSWORD).await;
}

#[actix_web::test]
async fn a_reset_link_lapses_and_requests_are_throttled() {
    let app = spawn_app_with(|s| s.mail.password_reset_ttl_minutes = 0).await;
    let (firm, email, _, _) = signed_in_owner(&app).await;
    let response =
        app.post("/api/v1/auth/password/forgot", &serde_json::json!({ "firm": firm.slug, "email": email })).await;
    assert_eq!(response.status(), 202);
    run_jobs(&app, firm.firm_id()).await;
    assert_eq!(mails_to(&email), 0, "a lapsed reset is not sent");
    // Five requests for one address use up its allowance (the first above counted).
    for _ in 0..4 {
        let response =
            app.post("/api/v1/auth/password/forgot", &serde_json::json!({ "firm": firm.slug, "email": email })).await;
        assert_eq!(response.status(), 202);
    }
    let response =
        app.post("/api/v1/auth/password/forgot", &serde_json::json!({ "firm": firm.slug, "email": email })).await;
    assert_eq!(response.status(), 429);
    let bogus = app
        .post(
            "/api/v1/auth/password/reset",
            &serde_json::json!({ "token": format!("{}.nope", firm.id), "new_password": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(bogus.status(), 400);
}
