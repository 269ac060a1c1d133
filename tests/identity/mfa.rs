//! TOTP enrolment, log-in with a second factor, recovery codes, disabling.

use consultantpro::domain::memberships::Role;
use consultantpro::domain::mfa::code_at;

use crate::helpers::{PASSWORD, TestApp, add_member, json, new_firm, spawn_app};

fn now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap()
}

/// Signs in a new member, enrols and confirms MFA; returns (firm slug, email, secret, recovery codes).
async fn member_with_mfa(app: &TestApp) -> (String, String, String, Vec<String>) {
    let db = app.db();
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Staff).await;
    let tokens = app.login_ok(&firm.slug, &email, PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();

    // Enrolment needs the current password.
    assert_eq!(app.post_as(token, "/api/v1/auth/mfa/enroll", &serde_json::json!({})).await.status(), 400);
    let guessed =
        app.post_as(token, "/api/v1/auth/mfa/enroll", &serde_json::json!({ "password": "not the password" })).await;
    assert_eq!(guessed.status(), 401);
    let enrolled =
        json(app.post_as(token, "/api/v1/auth/mfa/enroll", &serde_json::json!({ "password": PASSWORD })).await).await;
    let secret = enrolled["data"]["secret"].as_str().unwrap().to_owned();
    let uri = enrolled["data"]["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");

    let wrong = app
        .post_as(token, "/api/v1/auth/mfa/confirm", &serde_json::json!({ "password": PASSWORD, "code": "000000" }))
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(json(wrong).await["error"]["code"], "invalid_credentials");

    let code = code_at(&secret, now()).unwrap();
    let confirmed = app
        .post_as(token, "/api/v1/auth/mfa/confirm", &serde_json::json!({ "password": PASSWORD, "code": code }))
        .await;
    assert_eq!(confirmed.status(), 200);
    let codes: Vec<String> = json(confirmed).await["data"]["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (firm.slug, email, secret, codes)
}

async fn login_with(app: &TestApp, slug: &str, email: &str, extra: serde_json::Value) -> reqwest::Response {
    let mut body = serde_json::json!({ "firm": slug, "email": email, "password": PASSWORD });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    app.post("/api/v1/auth/login", &body).await
}

#[actix_web::test]
async fn login_needs_a_current_code_once_mfa_is_on() {
    let app = spawn_app().await;
    let (slug, email, secret, _) = member_with_mfa(&app).await;

    let response = login_with(&app, &slug, &email, serde_json::json!({})).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json(response).await["error"]["code"], "mfa_required");

    let response = login_with(&app, &slug, &email, serde_json::json!({ "totp_code": "123456" })).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json(response).await["error"]["code"], "invalid_mfa_code");

    // The confirmation used the current step; the next step's code is within the drift allowed.
    let code = code_at(&secret, now() + 30).unwrap();
    let response = login_with(&app, &slug, &email, serde_json::json!({ "totp_code": code })).await;
    assert_eq!(response.status(), 200);
    let me = json(app.get_as(json(response).await["data"]["access_token"].as_str().unwrap(), "/api/v1/me").await).await;
    assert_eq!(me["data"]["user"]["mfa_enabled"], true);

    // A code is accepted once.
    let replay = login_with(&app, &slug, &email, serde_json::json!({ "totp_code": code })).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(json(replay).await["error"]["code"], "invalid_mfa_code");

    // The right code with the wrong password reveals nothing about the code.
    let mut body =
        serde_json::json!({ "firm": slug, "email": email, "password": "not the password", "totp_code": code });
    body["totp_code"] = code_at(&secret, now() + 30).unwrap().into();
    let response = app.post("/api/v1/auth/login", &body).await;
    assert_eq!(json(response).await["error"]["code"], "invalid_credentials");
}

#[actix_web::test]
async fn a_recovery_code_works_exactly_once() {
    let app = spawn_app().await;
    let (slug, email, _, codes) = member_with_mfa(&app).await;
    let first = login_with(&app, &slug, &email, serde_json::json!({ "recovery_code": codes[0] })).await;
    assert_eq!(first.status(), 200);
    let again = login_with(&app, &slug, &email, serde_json::json!({ "recovery_code": codes[0] })).await;
    assert_eq!(again.status(), 401);
    assert_eq!(json(again).await["error"]["code"], "invalid_mfa_code");
    // Another one still works, typed in upper case without the dash.
    let typed = codes[1].replace('-', "").to_uppercase();
    assert_eq!(login_with(&app, &slug, &email, serde_json::json!({ "recovery_code": typed })).await.status(), 200);
}

#[actix_web::test]
async fn disabling_mfa_needs_the_password_and_a_code() {
    let app = spawn_app().await;
    let (slug, email, secret, codes) = member_with_mfa(&app).await;
    let tokens = json(login_with(&app, &slug, &email, serde_json::json!({ "recovery_code": codes[0] })).await).await;
    let token = tokens["data"]["access_token"].as_str().unwrap();

    let code = code_at(&secret, now() + 30).unwrap();
    let wrong_password = serde_json::json!({ "password": "not the password", "code": code });
    let response = app.post_as(token, "/api/v1/auth/mfa/disable", &wrong_password).await;
    assert_eq!(response.status(), 401);
    let password_refusal = json(response).await["error"].clone();

    let wrong_code = serde_json::json!({ "password": PASSWORD, "code": "000000" });
    let response = app.post_as(token, "/api/v1/auth/mfa/disable", &wrong_code).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json(response).await["error"], password_refusal, "a wrong password and a wrong code look alike");

    let right = serde_json::json!({ "password": PASSWORD, "code": code });
    let response = app.post_as(token, "/api/v1/auth/mfa/disable", &right).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.login(&slug, &email, PASSWORD).await.status(), 200, "no second factor once disabled");

    // Enrolling twice without confirming just replaces the pending secret; confirming twice conflicts.
    let proof = serde_json::json!({ "password": PASSWORD });
    let enrolled = json(app.post_as(token, "/api/v1/auth/mfa/enroll", &proof).await).await;
    let secret = enrolled["data"]["secret"].as_str().unwrap();
    let code = serde_json::json!({ "password": PASSWORD, "code": code_at(secret, now()).unwrap() });
    assert_eq!(app.post_as(token, "/api/v1/auth/mfa/confirm", &code).await.status(), 200);
    assert_eq!(app.post_as(token, "/api/v1/auth/mfa/enroll", &proof).await.status(), 409);
}

#[actix_web::test]
async fn wrong_passwords_and_codes_at_the_mfa_endpoints_are_throttled_like_log_in() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Staff).await;
    let token = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let guess = serde_json::json!({ "password": "not the password" });
    for _ in 0..5 {
        assert_eq!(app.post_as(&token, "/api/v1/auth/mfa/enroll", &guess).await.status(), 401);
    }
    // The allowance is used up: even the right password waits.
    let right = app.post_as(&token, "/api/v1/auth/mfa/enroll", &serde_json::json!({ "password": PASSWORD })).await;
    assert_eq!(right.status(), 429);
    assert!(right.headers().contains_key("retry-after"));
}

#[actix_web::test]
async fn a_known_password_does_not_buy_unlimited_guesses_at_the_code() {
    let app = spawn_app().await;
    let (slug, email, _, codes) = member_with_mfa(&app).await;
    let tokens = json(login_with(&app, &slug, &email, serde_json::json!({ "recovery_code": codes[0] })).await).await;
    let token = tokens["data"]["access_token"].as_str().unwrap();
    let guess = serde_json::json!({ "password": PASSWORD, "code": "000000" });
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.post_as(token, "/api/v1/auth/mfa/disable", &guess).await.status().as_u16());
    }
    assert!(statuses.contains(&429), "guessing the code was never throttled: {statuses:?}");
    assert!(statuses.iter().take_while(|s| **s == 401).count() <= 3, "{statuses:?}");
}

/// The TOTP secret column as stored for the login `email`.
async fn stored_totp_secret(app: &TestApp, email: &str) -> String {
    use consultantpro::db::schema::users;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use scoped_futures::ScopedFutureExt;
    let email = email.to_owned();
    app.db()
        .platform_tx(|conn| {
            async move {
                users::table
                    .filter(users::email.eq(&email))
                    .select(users::mfa_secret)
                    .first::<Option<String>>(conn)
                    .await
                    .map_err(consultantpro::db::DbError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap()
        .expect("MFA is on")
}

/// Puts `secret` back in the clear, as a database from before sealing would hold it (and
/// forgets the last accepted step, so the current code may be used again).
async fn store_totp_secret_in_the_clear(app: &TestApp, email: &str, secret: &str) {
    use consultantpro::db::schema::users;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use scoped_futures::ScopedFutureExt;
    let (email, secret) = (email.to_owned(), secret.to_owned());
    let changed = app
        .db()
        .platform_tx(|conn| {
            async move {
                diesel::update(users::table.filter(users::email.eq(&email)))
                    .set((users::mfa_secret.eq(Some(&secret)), users::mfa_last_step.eq(None::<i64>)))
                    .execute(conn)
                    .await
                    .map_err(consultantpro::db::DbError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    assert_eq!(changed, 1);
}

#[actix_web::test]
async fn totp_secrets_are_stored_sealed_and_migrate_seals_ones_stored_in_the_clear() {
    let app = spawn_app().await;
    let (slug, email, secret, _) = member_with_mfa(&app).await;
    let stored = stored_totp_secret(&app, &email).await;
    assert!(stored.starts_with("v1:") && !stored.contains(&secret), "{stored}");

    store_totp_secret_in_the_clear(&app, &email, &secret).await;
    let code = code_at(&secret, now()).unwrap();
    assert_eq!(login_with(&app, &slug, &email, serde_json::json!({ "totp_code": code })).await.status(), 200);

    let migrated = crate::helpers::cli_command().arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let sealed = stored_totp_secret(&app, &email).await;
    assert!(sealed.starts_with("v1:") && !sealed.contains(&secret), "{sealed}");
    // The next step's code (the current one was spent) opens the sealed secret.
    let code = code_at(&secret, now() + 30).unwrap();
    assert_eq!(login_with(&app, &slug, &email, serde_json::json!({ "totp_code": code })).await.status(), 200);
}
