//! Operators see metadata only; content needs a reasoned, second-operator-approved,
//! time-limited grant, used only by its requester, audited in the firm, and ended by
//! expiry or revocation at once.

use std::time::Duration;

use consultantpro::bus::{Bus, Received, firm_channel};
use consultantpro::db::DbError;
use consultantpro::domain::memberships::Role;
use consultantpro::domain::operators::{self, NewOperator};
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;

use crate::helpers::{PASSWORD, TestApp, add_member, json, signed_in_owner, spawn_app};

/// A new operator with a second factor: (id, email, TOTP secret).
pub(crate) async fn new_operator(app: &TestApp) -> (uuid::Uuid, String, String) {
    let email = format!("ops-{}@platform.example.com", uuid::Uuid::now_v7().simple());
    let new = NewOperator::parse(&email, "Operator", PASSWORD).unwrap();
    let secrets = consultantpro::secret_box::SecretBox::from_settings(&app.settings.secrets).unwrap();
    let (operator, enrollment) = app
        .db()
        .platform_tx(|conn| {
            async move {
                let operator = operators::insert(conn, &new).await?;
                let enrollment = operators::enroll_totp(conn, operator.id, "ConsultantPro", &secrets).await?;
                Ok::<_, consultantpro::domain::DomainError>((operator, enrollment))
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    (operator.id, email, enrollment.secret)
}

pub(crate) fn code_now(secret: &str, offset: u64) -> String {
    consultantpro::domain::mfa::code_at(secret, u64::try_from(chrono::Utc::now().timestamp()).unwrap() + offset)
        .unwrap()
}

pub(crate) async fn operator_token(app: &TestApp) -> (uuid::Uuid, String) {
    let (id, email, secret) = new_operator(app).await;
    let body = serde_json::json!({ "email": email, "password": PASSWORD, "totp_code": code_now(&secret, 0) });
    let response = app.post("/api/v1/platform/auth/login", &body).await;
    assert_eq!(response.status(), 200);
    (id, json(response).await["data"]["access_token"].as_str().unwrap().to_owned())
}

#[actix_web::test]
async fn operators_need_their_second_factor_and_sign_out_ends_every_token() {
    let app = spawn_app().await;
    let (firm, _, _, _) = signed_in_owner(&app).await;
    let (_, email, secret) = new_operator(&app).await;
    let login = |extra: serde_json::Value| {
        let mut body = serde_json::json!({ "email": email, "password": PASSWORD });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let without = app.post("/api/v1/platform/auth/login", &login(serde_json::json!({}))).await;
    assert_eq!(json(without).await["error"]["code"], "mfa_required");
    let wrong = app.post("/api/v1/platform/auth/login", &login(serde_json::json!({ "totp_code": "000000" }))).await;
    assert_eq!(json(wrong).await["error"]["code"], "invalid_mfa_code");
    // A wrong password says nothing about the code.
    let mut bad = login(serde_json::json!({ "totp_code": code_now(&secret, 0) }));
    bad["password"] = "not the password".into();
    assert_eq!(json(app.post("/api/v1/platform/auth/login", &bad).await).await["error"]["code"], "invalid_credentials");
    let ok =
        app.post("/api/v1/platform/auth/login", &login(serde_json::json!({ "totp_code": code_now(&secret, 0) }))).await;
    assert_eq!(ok.status(), 200);
    let token = json(ok).await["data"]["access_token"].as_str().unwrap().to_owned();
    // The same code works once.
    let replay =
        app.post("/api/v1/platform/auth/login", &login(serde_json::json!({ "totp_code": code_now(&secret, 0) }))).await;
    assert_eq!(replay.status(), 401);

    // An operator without a second factor cannot sign in at all.
    let email_plain = format!("ops-{}@platform.example.com", uuid::Uuid::now_v7().simple());
    let plain = NewOperator::parse(&email_plain, "Operator", PASSWORD).unwrap();
    app.db().platform_tx(|conn| async move { operators::insert(conn, &plain).await }.scope_boxed()).await.unwrap();
    let refused = app
        .post(
            "/api/v1/platform/auth/login",
            &serde_json::json!({ "email": email_plain, "password": PASSWORD, "totp_code": "123456" }),
        )
        .await;
    assert_eq!(json(refused).await["error"]["code"], "mfa_not_enrolled");
    // Enrolled through the CLI, which shows the secret once, it can.
    let output =
        crate::helpers::cli_command().args(["enroll-operator-totp", "--email", &email_plain]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    let plain_secret = printed.lines().find_map(|l| l.trim().strip_prefix("secret: ")).unwrap().trim().to_owned();
    let body =
        serde_json::json!({ "email": email_plain, "password": PASSWORD, "totp_code": code_now(&plain_secret, 0) });
    let signed_in = app.post("/api/v1/platform/auth/login", &body).await;
    assert_eq!(signed_in.status(), 200);
    let approver = json(signed_in).await["data"]["access_token"].as_str().unwrap().to_owned();

    // A break-glass token and the platform token both end with sign-out.
    let grant = request_grant(&app, &token, firm.id, 30).await;
    let id = grant["id"].as_str().unwrap();
    app.post_as(&approver, &format!("/api/v1/platform/break-glass/{id}/approve"), &serde_json::json!({})).await;
    let issued = app.post_as(&token, &format!("/api/v1/platform/break-glass/{id}/token"), &serde_json::json!({})).await;
    let break_glass = json(issued).await["data"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(&break_glass, "/api/v1/clients").await.status(), 200);
    assert_eq!(app.get_as(&token, "/api/v1/platform/firms").await.status(), 200);
    assert_eq!(app.post_as(&token, "/api/v1/platform/auth/logout", &serde_json::json!({})).await.status(), 200);
    assert_eq!(app.get_as(&token, "/api/v1/platform/firms").await.status(), 401);
    assert_eq!(app.get_as(&break_glass, "/api/v1/clients").await.status(), 401);

    // Deactivation (the CLI's) ends the approver's token at its next request.
    assert_eq!(app.get_as(&approver, "/api/v1/platform/firms").await.status(), 200);
    let output = crate::helpers::cli_command().args(["deactivate-operator", "--email", &email_plain]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(app.get_as(&approver, "/api/v1/platform/firms").await.status(), 401);
}

pub(crate) async fn request_grant(app: &TestApp, token: &str, firm_id: uuid::Uuid, minutes: i32) -> serde_json::Value {
    let body = serde_json::json!({ "firm_id": firm_id, "reason": "Customer ticket 4711: mailbox not syncing", "minutes": minutes });
    let response = app.post_as(token, "/api/v1/platform/break-glass", &body).await;
    assert_eq!(response.status(), 201);
    json(response).await["data"].clone()
}

#[actix_web::test]
async fn operators_see_firm_metadata_and_no_content() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (_, ops) = operator_token(&app).await;

    let firms = json(app.get_as(&ops, "/api/v1/platform/firms").await).await;
    let row =
        firms["data"].as_array().unwrap().iter().find(|f| f["id"] == firm.id.to_string()).expect("firm listed").clone();
    assert_eq!(row["slug"], firm.slug);
    assert_eq!(row["member_count"], 1);
    let mut keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_at", "id", "member_count", "name", "slug", "status"]);

    // Without a grant, firm content does not exist for an operator.
    for path in ["/api/v1/members", "/api/v1/audit-events", "/api/v1/me"] {
        let response = app.get_as(&ops, path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(json(response).await["error"]["code"], "not_found");
    }
    // And the platform does not exist for a member.
    assert_eq!(app.get_as(&owner, "/api/v1/platform/firms").await.status(), 404);
    assert_eq!(app.get("/api/v1/platform/firms").await.status(), 401);

    let wrong = app
        .post(
            "/api/v1/platform/auth/login",
            &serde_json::json!({
                "email": format!("nobody-{}@platform.example.com", uuid::Uuid::now_v7().simple()),
                "password": PASSWORD
            }),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(json(wrong).await["error"]["code"], "invalid_credentials");
}

#[actix_web::test]
async fn a_grant_needs_a_reason_a_limit_and_a_second_operator() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (_, requester) = operator_token(&app).await;
    let (_, approver) = operator_token(&app).await;
    assert_eq!(app.get_as(&owner, "/api/v1/platform/break-glass").await.status(), 404);

    for body in [
        serde_json::json!({ "firm_id": firm.id, "reason": "", "minutes": 30 }),
        serde_json::json!({ "firm_id": firm.id, "reason": "Customer ticket 4711", "minutes": 241 }),
        serde_json::json!({ "firm_id": firm.id, "reason": "Customer ticket 4711", "minutes": 0 }),
        serde_json::json!({ "firm_id": firm.id, "minutes": 30 }),
    ] {
        assert_eq!(app.post_as(&requester, "/api/v1/platform/break-glass", &body).await.status(), 400, "{body}");
    }
    let unknown =
        serde_json::json!({ "firm_id": uuid::Uuid::now_v7(), "reason": "Customer ticket 4711", "minutes": 30 });
    assert_eq!(app.post_as(&requester, "/api/v1/platform/break-glass", &unknown).await.status(), 404);

    let grant = request_grant(&app, &requester, firm.id, 30).await;
    assert_eq!(grant["state"], "pending");
    let id = grant["id"].as_str().unwrap();

    // Not usable before approval; the requester cannot approve their own request.
    assert_eq!(
        app.post_as(&requester, &format!("/api/v1/platform/break-glass/{id}/token"), &serde_json::json!({}))
            .await
            .status(),
        409
    );
    let own =
        app.post_as(&requester, &format!("/api/v1/platform/break-glass/{id}/approve"), &serde_json::json!({})).await;
    assert_eq!(own.status(), 403);

    let approved =
        app.post_as(&approver, &format!("/api/v1/platform/break-glass/{id}/approve"), &serde_json::json!({})).await;
    assert_eq!(approved.status(), 200);
    assert_eq!(json(approved).await["data"]["state"], "active");
    // The grant log shows it to every operator, with who asked and why; a firm member's
    // token finds no platform surface at all.
    let log = json(app.get_as(&approver, "/api/v1/platform/break-glass").await).await;
    let listed =
        log["data"].as_array().unwrap().iter().find(|g| g["id"] == id).unwrap_or_else(|| panic!("{log}")).clone();
    assert_eq!(listed["state"], "active");
    assert_eq!(listed["firm_id"], firm.id.to_string());
    assert_eq!(listed["reason"], "Customer ticket 4711: mailbox not syncing");
    assert!(listed["approved_by"].is_string() && listed["approved_by"] != listed["requested_by"], "{listed}");
    // Approving twice is refused; only the requester may take the grant up.
    assert_eq!(
        app.post_as(&approver, &format!("/api/v1/platform/break-glass/{id}/approve"), &serde_json::json!({}))
            .await
            .status(),
        409
    );
    assert_eq!(
        app.post_as(&approver, &format!("/api/v1/platform/break-glass/{id}/token"), &serde_json::json!({}))
            .await
            .status(),
        403
    );
}

#[actix_web::test]
async fn a_grant_opens_the_firm_read_only_audits_every_request_and_tells_the_owners() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (requester_id, requester) = operator_token(&app).await;
    let (_, approver) = operator_token(&app).await;
    let grant = request_grant(&app, &requester, firm.id, 30).await;
    let id = grant["id"].as_str().unwrap();
    app.post_as(&approver, &format!("/api/v1/platform/break-glass/{id}/approve"), &serde_json::json!({})).await;

    let bus = Bus::redis(app.settings.redis.url().unwrap()).await.unwrap();
    let mut events = bus.subscribe(&firm_channel(firm.id, "events")).await.unwrap();

    let response =
        app.post_as(&requester, &format!("/api/v1/platform/break-glass/{id}/token"), &serde_json::json!({})).await;
    assert_eq!(response.status(), 200);
    let token = json(response).await["data"]["access_token"].as_str().unwrap().to_owned();

    let Received::Message(notice) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap() else {
        panic!("no notice on the firm's event stream");
    };
    let notice = consultantpro::bus::live::EventFrame::decode(&notice).expect("an event frame");
    assert_eq!(
        notice.audience,
        consultantpro::domain::permissions::Audience::Members(
            consultantpro::domain::permissions::Permission::SecurityManage
        )
    );
    let notice: serde_json::Value = serde_json::from_str(&notice.frame).unwrap();
    assert_eq!(notice["topic"], "break_glass.activated");
    assert_eq!(notice["payload"]["grant_id"], id);

    let me = json(app.get_as(&token, "/api/v1/me").await).await;
    assert_eq!(me["data"]["role"], "readonly");
    assert_eq!(me["data"]["break_glass_grant_id"], id);
    assert!(me["data"]["user"].is_null());
    assert_eq!(app.get_as(&token, "/api/v1/members").await.status(), 200);
    // Read-only: no changes, and the audit log is for owners and admins.
    let add = serde_json::json!({ "email": "x@example.com", "role": "staff" });
    assert_eq!(app.post_as(&token, "/api/v1/members", &add).await.status(), 403);

    let log = json(app.get_as(&owner, "/api/v1/audit-events?limit=100").await).await;
    let log = log["data"].as_array().unwrap();
    let requests: Vec<&serde_json::Value> = log.iter().filter(|e| e["action"] == "break_glass.request").collect();
    assert_eq!(requests.len(), 3, "every request under the grant is audited");
    assert!(requests.iter().all(|e| e["actor_type"] == "operator" && e["actor_id"] == requester_id.to_string()));
    assert!(requests.iter().any(|e| e["metadata"]["path"] == "/api/v1/members"
        && e["metadata"]["method"] == "GET"
        && e["metadata"]["status"] == 200));
    assert!(
        requests
            .iter()
            .any(|e| e["metadata"]["method"] == "POST" && e["metadata"]["status"] == 403 && e["result"] == "denied")
    );
    for step in ["break_glass.requested", "break_glass.approved", "break_glass.activated"] {
        assert!(log.iter().any(|e| e["action"] == step), "{step} missing from the firm's audit log");
    }

    let grants = json(app.get_as(&owner, "/api/v1/security/break-glass").await).await;
    let listed = &grants["data"].as_array().unwrap()[0];
    assert_eq!(listed["id"], id);
    assert_eq!(listed["reason"], "Customer ticket 4711: mailbox not syncing");
    assert!(listed["first_activated_at"].is_string());
}

#[actix_web::test]
async fn revoked_or_expired_grants_stop_working_at_once() {
    let app = spawn_app().await;
    let db = app.db();
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (admin_email, _) = add_member(&db, &firm, Role::Admin).await;
    let admin = app.login_ok(&firm.slug, &admin_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let (_, requester) = operator_token(&app).await;
    let (_, approver) = operator_token(&app).await;

    let take_up = |id: String| {
        let (app, requester, approver) = (&app, requester.clone(), approver.clone());
        async move {
            app.post_as(&approver, &format!("/api/v1/platform/break-glass/{id}/approve"), &serde_json::json!({})).await;
            let response = app
                .post_as(&requester, &format!("/api/v1/platform/break-glass/{id}/token"), &serde_json::json!({}))
                .await;
            json(response).await["data"]["access_token"].as_str().unwrap().to_owned()
        }
    };

    // Revoked by the firm's owner (an admin may not).
    let grant = request_grant(&app, &requester, firm.id, 60).await;
    let id = grant["id"].as_str().unwrap().to_owned();
    let token = take_up(id.clone()).await;
    assert_eq!(app.get_as(&token, "/api/v1/members").await.status(), 200);
    assert_eq!(
        app.post_as(&admin, &format!("/api/v1/security/break-glass/{id}/revoke"), &serde_json::json!({}))
            .await
            .status(),
        403
    );
    let revoked =
        app.post_as(&owner, &format!("/api/v1/security/break-glass/{id}/revoke"), &serde_json::json!({})).await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(json(revoked).await["data"]["state"], "revoked");
    assert_eq!(app.get_as(&token, "/api/v1/members").await.status(), 401);
    assert_eq!(
        app.post_as(&requester, &format!("/api/v1/platform/break-glass/{id}/token"), &serde_json::json!({}))
            .await
            .status(),
        409
    );

    // Revoked by an operator.
    let grant = request_grant(&app, &requester, firm.id, 60).await;
    let id = grant["id"].as_str().unwrap().to_owned();
    let token = take_up(id.clone()).await;
    assert_eq!(
        app.post_as(&approver, &format!("/api/v1/platform/break-glass/{id}/revoke"), &serde_json::json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(app.get_as(&token, "/api/v1/members").await.status(), 401);

    // Expired: the grant's time runs out while its token is still unexpired.
    let grant = request_grant(&app, &requester, firm.id, 60).await;
    let id = grant["id"].as_str().unwrap().to_owned();
    let token = take_up(id.clone()).await;
    assert_eq!(app.get_as(&token, "/api/v1/members").await.status(), 200);
    let grant_id = uuid::Uuid::parse_str(&id).unwrap();
    db.platform_tx(|conn| {
        async move {
            diesel::sql_query("UPDATE break_glass_grants SET expires_at = now() - interval '1 second' WHERE id = $1")
                .bind::<SqlUuid, _>(grant_id)
                .execute(conn)
                .await
                .map_err(DbError::from)
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    assert_eq!(app.get_as(&token, "/api/v1/members").await.status(), 401);
    let response =
        app.post_as(&requester, &format!("/api/v1/platform/break-glass/{id}/token"), &serde_json::json!({})).await;
    assert_eq!(response.status(), 409);

    // A grant on firm A says nothing about another firm: the owner of B cannot see or revoke it.
    let (_, _, _, other_owner) = signed_in_owner(&app).await;
    assert_eq!(
        app.post_as(&other_owner, &format!("/api/v1/security/break-glass/{id}/revoke"), &serde_json::json!({}))
            .await
            .status(),
        404
    );
    let others = json(app.get_as(&other_owner, "/api/v1/security/break-glass").await).await;
    assert!(others["data"].as_array().unwrap().is_empty());
    let ours = json(app.get_as(&owner, "/api/v1/security/break-glass").await).await;
    let kept = ours["data"].as_array().unwrap().iter().find(|g| g["id"] == id.as_str()).cloned().unwrap();
    assert_eq!(kept["state"], "expired", "{kept}");
    assert!(kept["revoked_at"].is_null(), "{kept}");
}
