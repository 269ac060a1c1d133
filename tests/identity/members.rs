//! Members and roles: who may manage whom, the last owner, and firm isolation.

use consultantpro::domain::memberships::Role;

use crate::helpers::{PASSWORD, add_member, json, mail_to, new_firm, run_jobs, signed_in_owner, spawn_app, token_in};

#[actix_web::test]
async fn owners_invite_members_who_join_with_a_password_of_their_own() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let email = format!("new-{}@example.com", uuid::Uuid::now_v7().simple());
    let response =
        app.post_as(&owner, "/api/v1/members", &serde_json::json!({ "email": email, "role": "staff" })).await;
    assert_eq!(response.status(), 201);
    let invitation = json(response).await["data"].clone();
    assert_eq!((invitation["status"].as_str(), invitation["role"].as_str()), (Some("invited"), Some("staff")));
    let again = app.post_as(&owner, "/api/v1/members", &serde_json::json!({ "email": email, "role": "admin" })).await;
    assert_eq!(again.status(), 409, "one open invitation per address");
    let invited = json(app.get_as(&owner, "/api/v1/members?status=invited").await).await;
    assert_eq!(invited["data"].as_array().unwrap().len(), 1);
    assert_eq!(invited["data"][0]["email"], email);

    run_jobs(&app, firm.firm_id()).await;
    let mail = mail_to(&email).await;
    assert!(mail.contains(&firm.name), "{mail}");
    let token = token_in(&mail, "accept-invitation");
    let preview = json(app.post("/api/v1/invitations/preview", &serde_json::json!({ "token": token })).await).await;
    let mut keys: Vec<&str> = preview["data"].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["firm_name", "role"], "the preview shows the firm and role only");
    let accepted = app
        .post(
            "/api/v1/invitations/accept",
            &serde_json::json!({ "token": token, "password": PASSWORD, "display_name": "New Person" }),
        )
        .await;
    assert_eq!(accepted.status(), 200);
    app.login_ok(&firm.slug, &email, PASSWORD).await;
    // Used once only.
    let reused =
        app.post("/api/v1/invitations/accept", &serde_json::json!({ "token": token, "password": PASSWORD })).await;
    assert_eq!(reused.status(), 404);

    let list = json(app.get_as(&owner, "/api/v1/members?role=staff").await).await;
    let members = list["data"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["email"], email);
    assert_eq!(json(app.get_as(&owner, "/api/v1/members?status=invited").await).await["data"], serde_json::json!([]));
    let member_again =
        app.post_as(&owner, "/api/v1/members", &serde_json::json!({ "email": email, "role": "admin" })).await;
    assert_eq!(member_again.status(), 409, "already a member");
}

#[actix_web::test]
async fn bad_member_input_is_400() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    for body in [
        serde_json::json!({ "email": "not-an-email", "role": "staff" }),
        serde_json::json!({ "email": "a@example.com", "role": "emperor" }),
        serde_json::json!({ "email": "b@example.com", "role": "staff", "password": "a long enough password" }),
        serde_json::json!({ "email": "c@example.com", "role": "staff", "display_name": "Chosen For Them" }),
        serde_json::json!({ "role": "staff" }),
    ] {
        let response = app.post_as(&owner, "/api/v1/members", &body).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    let with_password = app
        .post_as(
            &owner,
            "/api/v1/members",
            &serde_json::json!({ "email": "d@example.com", "role": "staff", "password": "x" }),
        )
        .await;
    assert!(json(with_password).await["error"]["details"]["fields"]["password"].is_string());
    let nothing =
        app.patch_as(&owner, &format!("/api/v1/members/{}", uuid::Uuid::now_v7()), &serde_json::json!({})).await;
    assert_eq!(nothing.status(), 400);
    let bad_id = app.patch_as(&owner, "/api/v1/members/42", &serde_json::json!({ "role": "staff" })).await;
    assert_eq!(bad_id.status(), 400);
    let bad_filter = app.get_as(&owner, "/api/v1/members?status=sleeping").await;
    assert_eq!(bad_filter.status(), 400);
}

#[actix_web::test]
async fn roles_decide_who_manages_whom() {
    let app = spawn_app().await;
    let db = app.db();
    let (firm, _, owner_id, _) = signed_in_owner(&app).await;
    let (admin_email, _) = add_member(&db, &firm, Role::Admin).await;
    let (staff_email, staff_id) = add_member(&db, &firm, Role::Staff).await;
    let (readonly_email, _) = add_member(&db, &firm, Role::Readonly).await;
    let admin = app.login_ok(&firm.slug, &admin_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let staff = app.login_ok(&firm.slug, &staff_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let readonly =
        app.login_ok(&firm.slug, &readonly_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let new_member = |role: &str| serde_json::json!({ "email": format!("x-{}@example.com", uuid::Uuid::now_v7().simple()), "role": role });

    // Staff and read-only members can see the list but not change it.
    assert_eq!(app.get_as(&readonly, "/api/v1/members").await.status(), 200);
    assert_eq!(app.post_as(&staff, "/api/v1/members", &new_member("staff")).await.status(), 403);
    assert_eq!(app.post_as(&readonly, "/api/v1/members", &new_member("staff")).await.status(), 403);

    // Admins manage members but not owners.
    assert_eq!(app.post_as(&admin, "/api/v1/members", &new_member("billing")).await.status(), 201);
    assert_eq!(app.post_as(&admin, "/api/v1/members", &new_member("owner")).await.status(), 403);
    let promote = serde_json::json!({ "role": "owner" });
    assert_eq!(app.patch_as(&admin, &format!("/api/v1/members/{staff_id}"), &promote).await.status(), 403);
    let demote_owner = serde_json::json!({ "role": "staff" });
    assert_eq!(app.patch_as(&admin, &format!("/api/v1/members/{owner_id}"), &demote_owner).await.status(), 403);
    let list = json(app.get_as(&admin, "/api/v1/members").await).await;
    let role_of = |user: uuid::Uuid| {
        list["data"].as_array().unwrap().iter().find(|m| m["user_id"] == user.to_string()).unwrap()["role"].clone()
    };
    assert_eq!((role_of(owner_id), role_of(staff_id)), (serde_json::json!("owner"), serde_json::json!("staff")));
    let response =
        app.patch_as(&admin, &format!("/api/v1/members/{staff_id}"), &serde_json::json!({ "role": "billing" })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["data"]["role"], "billing");
}

#[actix_web::test]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let app = spawn_app().await;
    let db = app.db();
    let (firm, _, owner_id, owner) = signed_in_owner(&app).await;
    let demote = serde_json::json!({ "role": "admin" });
    let response = app.patch_as(&owner, &format!("/api/v1/members/{owner_id}"), &demote).await;
    assert_eq!(response.status(), 409);
    assert_eq!(json(response).await["error"]["code"], "conflict");
    assert_eq!(app.delete_as(&owner, &format!("/api/v1/members/{owner_id}")).await.status(), 409);
    let deactivate = serde_json::json!({ "status": "deactivated" });
    assert_eq!(app.patch_as(&owner, &format!("/api/v1/members/{owner_id}"), &deactivate).await.status(), 409);

    // With a second owner, one may step down.
    let (_, second_owner) = add_member(&db, &firm, Role::Owner).await;
    let response = app.patch_as(&owner, &format!("/api/v1/members/{second_owner}"), &demote).await;
    assert_eq!(response.status(), 200);
    let (_, third_owner) = add_member(&db, &firm, Role::Owner).await;
    assert_eq!(app.patch_as(&owner, &format!("/api/v1/members/{owner_id}"), &demote).await.status(), 200);
    // The caller is an admin now, and the third owner is the firm's only one.
    assert_eq!(app.patch_as(&owner, &format!("/api/v1/members/{third_owner}"), &demote).await.status(), 403);
    let owners = json(app.get_as(&owner, "/api/v1/members?role=owner&status=active").await).await;
    let owners = owners["data"].as_array().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["user_id"], third_owner.to_string());
}

#[actix_web::test]
async fn member_changes_are_audited() {
    let app = spawn_app().await;
    let db = app.db();
    let (firm, _, owner_id, owner) = signed_in_owner(&app).await;
    let (_, staff_id) = add_member(&db, &firm, Role::Staff).await;
    app.patch_as(&owner, &format!("/api/v1/members/{staff_id}"), &serde_json::json!({ "role": "admin" })).await;
    app.delete_as(&owner, &format!("/api/v1/members/{staff_id}")).await;
    let events = json(app.get_as(&owner, &format!("/api/v1/audit-events?actor_id={owner_id}")).await).await;
    let actions: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"member.role_changed"), "{actions:?}");
    assert!(actions.contains(&"member.deactivated"), "{actions:?}");
    let changed = events["data"].as_array().unwrap().iter().find(|e| e["action"] == "member.role_changed").unwrap();
    assert_eq!(changed["metadata"]["role"]["from"], "staff");
    assert_eq!(changed["metadata"]["role"]["to"], "admin");
    assert_eq!(changed["target_id"], staff_id.to_string());
}

#[actix_web::test]
async fn another_firms_members_do_not_exist() {
    let app = spawn_app().await;
    let db = app.db();
    let (_, _, _, owner_a) = signed_in_owner(&app).await;
    let firm_b = new_firm(&db).await;
    let (b_email, b_member) = add_member(&db, &firm_b, Role::Staff).await;

    let path = format!("/api/v1/members/{b_member}");
    let response = app.patch_as(&owner_a, &path, &serde_json::json!({ "role": "admin" })).await;
    assert_eq!(response.status(), 404);
    assert_eq!(json(response).await["error"]["code"], "not_found");
    assert_eq!(app.delete_as(&owner_a, &path).await.status(), 404);

    let listed = json(app.get_as(&owner_a, "/api/v1/members").await).await;
    assert!(listed["data"].as_array().unwrap().iter().all(|m| m["user_id"] != b_member.to_string()));
    let events = json(app.get_as(&owner_a, "/api/v1/audit-events?limit=100").await).await;
    assert!(events["data"].as_array().unwrap().iter().all(|e| e["target_id"] != b_member.to_string()));
    // Firm B's member is still its active staff member.
    let b = app.login_ok(&firm_b.slug, &b_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(json(app.get_as(&b, "/api/v1/me").await).await["data"]["role"], "staff");
}
