//! Invitations: a firm never chooses, sees or changes anything of a login; the person
//! joins by setting their own password, or by proving the login they already have.

use consultantpro::domain::mfa::code_at;

use crate::helpers::{
    PASSWORD, TestApp, json, mail_to, mails_to, run_jobs, signed_in_owner, spawn_app, spawn_app_with, token_in,
};

async fn invite(app: &TestApp, owner: &str, email: &str, role: &str) -> serde_json::Value {
    let response = app.post_as(owner, "/api/v1/members", &serde_json::json!({ "email": email, "role": role })).await;
    assert_eq!(response.status(), 201);
    json(response).await["data"].clone()
}

async fn emailed_token(app: &TestApp, firm: &consultantpro::domain::firms::Firm, email: &str) -> String {
    run_jobs(app, firm.firm_id()).await;
    token_in(&mail_to(email).await, "accept-invitation")
}

fn address() -> String {
    format!("cfo-{}@x.test", uuid::Uuid::now_v7().simple())
}

#[actix_web::test]
async fn another_firm_can_neither_set_nor_learn_an_existing_logins_password() {
    let app = spawn_app().await;
    let (firm_a, _, _, owner_a) = signed_in_owner(&app).await;
    let (firm_b, _, _, owner_b) = signed_in_owner(&app).await;
    let email = address();

    // Firm A may not choose the password (the reproduction: it used to).
    let chosen = app
        .post_as(
            &owner_a,
            "/api/v1/members",
            &serde_json::json!({ "email": email, "role": "staff", "password": "firm-chosen password" }),
        )
        .await;
    assert_eq!(chosen.status(), 400);
    invite(&app, &owner_a, &email, "staff").await;
    let token = emailed_token(&app, &firm_a, &email).await;
    let joined =
        app.post("/api/v1/invitations/accept", &serde_json::json!({ "token": token, "password": PASSWORD })).await;
    assert_eq!(joined.status(), 200);

    // Firm B invites the same address as admin: the answer is the same as for a new one.
    let for_existing = invite(&app, &owner_b, &email, "admin").await;
    let for_new = invite(&app, &owner_b, &address(), "admin").await;
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&for_existing), keys(&for_new));
    for field in ["status", "role", "contact_id", "sent_at"] {
        assert_eq!(for_existing[field], for_new[field], "{field}");
    }
    let text = for_existing.to_string();
    assert!(!text.contains("display_name") && !text.contains("mfa"), "{text}");

    // The token alone does not make firm B's admin: the login's password is needed.
    let token = emailed_token(&app, &firm_b, &email).await;
    let guessed = app
        .post("/api/v1/invitations/accept", &serde_json::json!({ "token": token, "password": "firm-chosen password" }))
        .await;
    assert_eq!(guessed.status(), 401);
    assert_eq!(app.login(&firm_b.slug, &email, PASSWORD).await.status(), 401, "not a member of B yet");
    let proved =
        app.post("/api/v1/invitations/accept", &serde_json::json!({ "token": token, "password": PASSWORD })).await;
    assert_eq!(proved.status(), 200);
    assert_eq!(json(proved).await["data"]["role"], "admin");
    app.login_ok(&firm_b.slug, &email, PASSWORD).await;
}

#[actix_web::test]
async fn an_existing_login_with_mfa_accepts_only_with_its_code() {
    let app = spawn_app().await;
    let (firm_a, _, _, owner_a) = signed_in_owner(&app).await;
    let (firm_b, _, _, owner_b) = signed_in_owner(&app).await;
    let email = address();
    let member = crate::helpers::invite_and_join(&app, &owner_a, &firm_a, &email, "staff", None).await;
    let proof = serde_json::json!({ "password": PASSWORD });
    let enrolled = json(app.post_as(&member, "/api/v1/auth/mfa/enroll", &proof).await).await;
    let secret = enrolled["data"]["secret"].as_str().unwrap().to_owned();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let confirm = serde_json::json!({ "password": PASSWORD, "code": code_at(&secret, now).unwrap() });
    assert_eq!(app.post_as(&member, "/api/v1/auth/mfa/confirm", &confirm).await.status(), 200);

    invite(&app, &owner_b, &email, "staff").await;
    let token = emailed_token(&app, &firm_b, &email).await;
    let without =
        app.post("/api/v1/invitations/accept", &serde_json::json!({ "token": token, "password": PASSWORD })).await;
    assert_eq!(without.status(), 401);
    assert_eq!(json(without).await["error"]["code"], "mfa_required");
    let wrong = app
        .post(
            "/api/v1/invitations/accept",
            &serde_json::json!({ "token": token, "password": PASSWORD, "totp_code": "000000" }),
        )
        .await;
    assert_eq!(json(wrong).await["error"]["code"], "invalid_mfa_code");
    let code = code_at(&secret, now + 30).unwrap();
    let right = app
        .post(
            "/api/v1/invitations/accept",
            &serde_json::json!({ "token": token, "password": PASSWORD, "totp_code": code }),
        )
        .await;
    assert_eq!(right.status(), 200);
}

#[actix_web::test]
async fn invitations_are_single_use_lapse_and_can_be_resent_or_withdrawn() {
    let app = spawn_app_with(|s| s.mail.invitation_ttl_hours = 0).await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    // A lifetime of zero: lapsed by the time it is used.
    let email = address();
    invite(&app, &owner, &email, "staff").await;
    run_jobs(&app, firm.firm_id()).await;
    assert_eq!(mails_to(&email), 0, "a lapsed invitation is not even sent");

    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let email = address();
    let invitation = invite(&app, &owner, &email, "billing").await;
    let id = invitation["id"].as_str().unwrap();
    let first = emailed_token(&app, &firm, &email).await;
    let resent = app.post_as(&owner, &format!("/api/v1/members/invitations/{id}/resend"), &serde_json::json!({})).await;
    assert_eq!(resent.status(), 200);
    run_jobs(&app, firm.firm_id()).await;
    assert_eq!(mails_to(&email), 2);
    let second = token_in(&mail_to(&email).await, "accept-invitation");
    assert_ne!(first, second);
    // The earlier link stopped working when the new one went out.
    assert_eq!(app.post("/api/v1/invitations/preview", &serde_json::json!({ "token": first })).await.status(), 404);
    assert_eq!(app.post("/api/v1/invitations/preview", &serde_json::json!({ "token": second })).await.status(), 200);

    let withdrawn = app.delete_as(&owner, &format!("/api/v1/members/invitations/{id}")).await;
    assert_eq!(withdrawn.status(), 200);
    assert_eq!(app.post("/api/v1/invitations/preview", &serde_json::json!({ "token": second })).await.status(), 404);
    let late =
        app.post("/api/v1/invitations/accept", &serde_json::json!({ "token": second, "password": PASSWORD })).await;
    assert_eq!(late.status(), 404);
    assert_eq!(app.login(&firm.slug, &email, PASSWORD).await.status(), 401);
    for token in ["", "nonsense", "00000000-0000-0000-0000-000000000000.x"] {
        assert_eq!(
            app.post("/api/v1/invitations/preview", &serde_json::json!({ "token": format!("{token}x") }))
                .await
                .status(),
            404,
            "{token}"
        );
    }
    // Another firm cannot resend or withdraw it.
    let (_, _, _, stranger) = signed_in_owner(&app).await;
    let other = invite(&app, &owner, &address(), "staff").await;
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(app.delete_as(&stranger, &format!("/api/v1/members/invitations/{other_id}")).await.status(), 404);
    let listed = json(app.get_as(&owner, "/api/v1/members?status=invited").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "the stranger's attempt changed nothing");
}

/// Ages every open link of `table` in the firm past its end, as time would.
async fn lapse(app: &TestApp, firm: &consultantpro::domain::firms::Firm, table: &'static str) {
    use scoped_futures::ScopedFutureExt;
    let firm_id = firm.firm_id();
    app.db()
        .firm_tx(firm_id, |conn| {
            async move {
                diesel_async::RunQueryDsl::execute(
                    diesel::sql_query(format!(
                        "UPDATE {table} SET expires_at = now() - interval '1 second' WHERE firm_id = $1"
                    ))
                    .bind::<diesel::sql_types::Uuid, _>(firm_id.into_uuid()),
                    conn,
                )
                .await
                .map_err(consultantpro::domain::DomainError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
}

#[actix_web::test]
async fn emailed_invitation_and_reset_links_stop_working_when_they_lapse() {
    let app = spawn_app().await;
    let (firm, owner_email, _, owner) = signed_in_owner(&app).await;
    let email = address();
    invite(&app, &owner, &email, "staff").await;
    let token = emailed_token(&app, &firm, &email).await;
    assert_eq!(
        app.post("/api/v1/invitations/preview", &serde_json::json!({ "token": token })).await.status(),
        200,
        "valid before it lapses"
    );
    lapse(&app, &firm, "invitations").await;
    assert_eq!(app.post("/api/v1/invitations/preview", &serde_json::json!({ "token": token })).await.status(), 404);
    let late =
        app.post("/api/v1/invitations/accept", &serde_json::json!({ "token": token, "password": PASSWORD })).await;
    assert_eq!(late.status(), 404);

    let asked =
        app.post("/api/v1/auth/password/forgot", &serde_json::json!({ "firm": firm.slug, "email": owner_email })).await;
    assert_eq!(asked.status(), 202);
    run_jobs(&app, firm.firm_id()).await;
    let reset = token_in(&mail_to(&owner_email).await, "reset-password");
    lapse(&app, &firm, "password_resets").await;
    let late = app
        .post(
            "/api/v1/auth/password/reset",
            &serde_json::json!({ "token": reset, "new_password": "a lapsed new password" }),
        )
        .await;
    assert_eq!(late.status(), 400);
    app.login_ok(&firm.slug, &owner_email, PASSWORD).await;
}

#[actix_web::test]
async fn malformed_input_to_the_new_account_endpoints_is_a_400_in_the_error_format() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let public = [
        "/api/v1/invitations/preview",
        "/api/v1/invitations/accept",
        "/api/v1/auth/password/forgot",
        "/api/v1/auth/password/reset",
    ];
    let signed_in =
        ["/api/v1/auth/password", "/api/v1/auth/mfa/enroll", "/api/v1/auth/mfa/confirm", "/api/v1/auth/mfa/disable"];
    let bodies = ["{not json", "[1, 2]", "{\"token\": 5}", "{\"unexpected\": true}", "{}"];
    for path in public.iter().chain(signed_in.iter()) {
        for body in bodies {
            let response = app
                .client
                .post(app.url(path))
                .bearer_auth(&owner)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let answer = json(response).await;
            assert_eq!(status, 400, "{path} {body}: {answer}");
            assert_eq!(answer["error"]["code"], "validation_error", "{path} {body}");
        }
    }
    // Ids that are not ids, in the invitation management paths.
    let resend = app.post_as(&owner, "/api/v1/members/invitations/42/resend", &serde_json::json!({})).await;
    assert_eq!(resend.status(), 400);
    assert_eq!(app.delete_as(&owner, "/api/v1/members/invitations/42").await.status(), 400);
}

#[actix_web::test]
async fn another_firms_invitations_cannot_be_resent_or_withdrawn() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (_, _, _, stranger) = signed_in_owner(&app).await;
    let email = address();
    let invitation = invite(&app, &owner, &email, "staff").await;
    let id = invitation["id"].as_str().unwrap();
    let resend =
        app.post_as(&stranger, &format!("/api/v1/members/invitations/{id}/resend"), &serde_json::json!({})).await;
    assert_eq!(resend.status(), 404);
    assert_eq!(json(resend).await["error"]["code"], "not_found");
    assert_eq!(app.delete_as(&stranger, &format!("/api/v1/members/invitations/{id}")).await.status(), 404);
    // Untouched: still open, and only the one email went out.
    run_jobs(&app, firm.firm_id()).await;
    assert_eq!(mails_to(&email), 1);
    let listed = json(app.get_as(&owner, "/api/v1/members?status=invited").await).await;
    assert_eq!(listed["data"][0]["id"], id);
}

/// An owner's invitation is an owner's to resend or withdraw: an admin manages members
/// but is refused both, and the invitation stays open.
#[actix_web::test]
async fn only_an_owner_resends_or_withdraws_an_owners_invitation() {
    use consultantpro::domain::memberships::Role;
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (admin_email, _) = crate::helpers::add_member(&app.db(), &firm, Role::Admin).await;
    let admin = app.login_ok(&firm.slug, &admin_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let staff = invite(&app, &owner, &address(), "staff").await;
    let co_owner = invite(&app, &owner, &address(), "owner").await;
    let (staff_id, owner_id) = (staff["id"].as_str().unwrap(), co_owner["id"].as_str().unwrap());

    let resend = |id: &str| format!("/api/v1/members/invitations/{id}/resend");
    assert_eq!(app.post_as(&admin, &resend(owner_id), &serde_json::json!({})).await.status(), 403);
    let withdrawn = app.delete_as(&admin, &format!("/api/v1/members/invitations/{owner_id}")).await;
    assert_eq!(withdrawn.status(), 403);
    let open = json(app.get_as(&owner, "/api/v1/members?status=invited").await).await;
    let ids: Vec<&str> = open["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&owner_id), "still open: {open}");
    // The control: the same admin resends a staff invitation.
    assert_eq!(app.post_as(&admin, &resend(staff_id), &serde_json::json!({})).await.status(), 200);
}
