//! Mailboxes through the API: validation, sealed passwords, the step-by-step test, and
//! firm isolation.

use serde_json::json;

use crate::helpers::{json, signed_in_owner, spawn_app};
use crate::{connect_mailbox, imap_password, imap_port, imap_user, wait_state};

#[actix_web::test]
async fn passwords_are_sealed_never_returned_and_bad_hosts_refused() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let user = imap_user();
    let mailbox = connect_mailbox(&app, &token, &user, json!({})).await;
    let text = mailbox.to_string();
    assert!(!text.contains(&imap_password(&app)), "{text}");
    assert_eq!(mailbox["imap"]["username"], user.as_str());
    assert_eq!(mailbox["smtp"]["password_set"], false);
    assert_eq!(mailbox["folders"], json!(["INBOX"]));
    assert_eq!(mailbox["mark_seen"], false);

    let stored = crate::count(
        &app,
        firm.firm_id(),
        "SELECT count(*) AS n FROM mailboxes WHERE id = $1::uuid AND imap_password_sealed LIKE 'v1:%' \
           AND imap_password_sealed NOT LIKE '%development-only%'",
        mailbox["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(stored, 1, "the password is stored sealed");

    for (host, tls, field) in [
        ("10.1.2.3", "tls", "imap.host"),
        ("169.254.169.254", "tls", "imap.host"),
        ("imap.example.com", "none", "imap.host"),
        ("bad host!", "tls", "imap.host"),
    ] {
        let body = json!({
            "name": "Bad", "address": "bad@firm.test",
            "imap": { "host": host, "tls": tls, "username": "u", "password": "p" },
        });
        let answer = app.post_as(&token, "/api/v1/mailboxes", &body).await;
        assert_eq!(answer.status(), 400, "{host}");
        let body = json(answer).await;
        assert!(body["error"]["details"]["fields"][field].is_string(), "{host}: {body}");
    }
    let missing_password = json!({ "name": "x", "address": "x@firm.test", "imap": { "host": "imap.example.com", "tls": "tls", "username": "u" } });
    assert_eq!(app.post_as(&token, "/api/v1/mailboxes", &missing_password).await.status(), 400);
    let unknown_field = json!({ "name": "x", "address": "x@firm.test", "nope": 1,
        "imap": { "host": "imap.example.com", "tls": "tls", "username": "u", "password": "p" } });
    assert_eq!(app.post_as(&token, "/api/v1/mailboxes", &unknown_field).await.status(), 400);
    // A stored password goes only where it was given for: moving the server needs it again.
    let moved = json!({ "imap": { "host": "imap.attacker.example", "tls": "tls", "username": user } });
    let answer = app.patch_as(&token, &format!("/api/v1/mailboxes/{}", mailbox["id"].as_str().unwrap()), &moved).await;
    assert_eq!(answer.status(), 400);
    assert!(json(answer).await["error"]["details"]["fields"]["imap.password"].is_string());
    let duplicate = json!({ "name": "Again", "address": mailbox["address"],
        "imap": { "host": "imap.example.com", "tls": "tls", "username": "u", "password": "p" } });
    assert_eq!(app.post_as(&token, "/api/v1/mailboxes", &duplicate).await.status(), 400);
}

#[actix_web::test]
async fn the_test_names_the_step_that_failed() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let good = connect_mailbox(&app, &token, &imap_user(), json!({ "enabled": false })).await;
    let id = good["id"].as_str().unwrap();
    let answer = json(app.post_as(&token, &format!("/api/v1/mailboxes/{id}/test"), &json!({})).await).await;
    assert_eq!(answer["data"]["ok"], true, "{answer}");
    assert_eq!(answer["data"]["folders"][0]["folder"], "INBOX");

    let cases = [
        (
            json!({ "imap": { "host": "127.0.0.1", "port": imap_port(&app), "tls": "none", "username": imap_user(),
                           "password": "wrong" } }),
            "authentication",
        ),
        (json!({ "folders": ["No Such Folder"] }), "folder"),
        (json!({ "imap": { "host": "127.0.0.1", "port": 1, "tls": "none", "username": "u", "password": "p" } }), "tcp"),
        (
            json!({ "imap": { "host": "no-such-host.invalid", "port": 993, "tls": "tls", "username": "u", "password": "p" } }),
            "dns",
        ),
    ];
    for (patch, step) in cases {
        let changed = app.patch_as(&token, &format!("/api/v1/mailboxes/{id}"), &patch).await;
        assert_eq!(changed.status(), 200, "{patch}");
        let answer = json(app.post_as(&token, &format!("/api/v1/mailboxes/{id}/test"), &json!({})).await).await;
        assert_eq!(answer["data"]["ok"], false, "{patch}: {answer}");
        assert_eq!(answer["data"]["failed_step"], step, "{patch}: {answer}");
        let restore = json!({ "folders": ["INBOX"], "imap": { "host": "127.0.0.1", "port": imap_port(&app), "tls": "none",
                                                               "username": good["imap"]["username"], "password": imap_password(&app) } });
        assert_eq!(app.patch_as(&token, &format!("/api/v1/mailboxes/{id}"), &restore).await.status(), 200);
    }
}

#[actix_web::test]
async fn a_failing_mailbox_says_why_and_recovers() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let user = imap_user();
    let mailbox = connect_mailbox(&app, &token, &user, json!({})).await;
    let id = mailbox["id"].as_str().unwrap();
    wait_state(&app, &token, id, "idle").await;
    let mut socket = crate::ws::connect(&app, &token).await;
    let wrong = json!({ "imap": { "host": "127.0.0.1", "port": imap_port(&app), "tls": "none", "username": user,
                                  "password": "wrong" } });
    assert_eq!(app.patch_as(&token, &format!("/api/v1/mailboxes/{id}"), &wrong).await.status(), 200);
    wait_state(&app, &token, id, "failing").await;
    // Admins hear it live as well, with the step that failed.
    let event = loop {
        let event = socket.next_of("event").await;
        if event["topic"] == "mailbox.state" && event["payload"]["state"] == "failing" {
            break event;
        }
    };
    assert_eq!(event["payload"]["mailbox_id"], id);
    assert!(event["payload"]["reason"].as_str().unwrap().starts_with("authentication"), "{event}");
    let shown = json(app.get_as(&token, &format!("/api/v1/mailboxes/{id}")).await).await;
    assert!(shown["data"]["state_reason"].as_str().unwrap().starts_with("authentication"), "{shown}");
    let right = json!({ "imap": { "host": "127.0.0.1", "port": imap_port(&app), "tls": "none", "username": user,
                                  "password": imap_password(&app) } });
    assert_eq!(app.patch_as(&token, &format!("/api/v1/mailboxes/{id}"), &right).await.status(), 200);
    wait_state(&app, &token, id, "idle").await;
    let shown = json(app.get_as(&token, &format!("/api/v1/mailboxes/{id}")).await).await;
    assert!(shown["data"]["last_sync_at"].is_string(), "{shown}");
}

#[actix_web::test]
async fn another_firm_sees_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, _, _, owner_a) = signed_in_owner(&app).await;
    let (_, _, _, owner_b) = signed_in_owner(&app).await;
    let mailbox = connect_mailbox(&app, &owner_a, &imap_user(), json!({ "enabled": false })).await;
    let id = mailbox["id"].as_str().unwrap();
    let listed = json(app.get_as(&owner_b, "/api/v1/mailboxes").await).await;
    assert_eq!(listed["data"], json!([]), "{listed}");
    assert_eq!(app.get_as(&owner_b, &format!("/api/v1/mailboxes/{id}")).await.status(), 404);
    assert_eq!(
        app.patch_as(&owner_b, &format!("/api/v1/mailboxes/{id}"), &json!({ "name": "Mine" })).await.status(),
        404
    );
    assert_eq!(app.post_as(&owner_b, &format!("/api/v1/mailboxes/{id}/test"), &json!({})).await.status(), 404);
    assert_eq!(app.delete_as(&owner_b, &format!("/api/v1/mailboxes/{id}")).await.status(), 404);
    let still = json(app.get_as(&owner_a, &format!("/api/v1/mailboxes/{id}")).await).await;
    assert_eq!(still["data"]["name"], "Support", "firm A's mailbox is unchanged");
    let listed_a = json(app.get_as(&owner_a, "/api/v1/mailboxes").await).await;
    assert_eq!(listed_a["data"].as_array().unwrap().len(), 1);
    assert_eq!(app.delete_as(&owner_a, &format!("/api/v1/mailboxes/{id}")).await.status(), 204);
    assert_eq!(app.get_as(&owner_a, &format!("/api/v1/mailboxes/{id}")).await.status(), 404);
}

#[actix_web::test]
async fn roles_reach_only_what_they_may() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let mailbox = connect_mailbox(&app, &owner, &imap_user(), json!({ "enabled": false })).await;
    let mailbox_id = mailbox["id"].as_str().unwrap();
    let (readonly_email, _) =
        crate::helpers::add_member(&app.db(), &firm, consultantpro::domain::memberships::Role::Readonly).await;
    let readonly = app.login_ok(&firm.slug, &readonly_email, crate::helpers::PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (portal, _) = crate::helpers::portal_user(&app, &firm.slug, &owner).await;

    // Mailboxes, settings and rules are for owners and admins.
    for token in [&readonly, &portal] {
        assert_eq!(app.get_as(token, "/api/v1/mailboxes").await.status(), 403);
        assert_eq!(app.get_as(token, &format!("/api/v1/mailboxes/{mailbox_id}")).await.status(), 403);
        assert_eq!(app.post_as(token, &format!("/api/v1/mailboxes/{mailbox_id}/test"), &json!({})).await.status(), 403);
        assert_eq!(app.delete_as(token, &format!("/api/v1/mailboxes/{mailbox_id}")).await.status(), 403);
        assert_eq!(app.get_as(token, "/api/v1/email/rules").await.status(), 403);
        assert_eq!(app.get_as(token, "/api/v1/email/settings").await.status(), 403);
        assert_eq!(
            app.post_as(token, "/api/v1/email/rules/dry-run", &json!({ "raw": "Subject: x\r\n\r\nx" })).await.status(),
            403
        );
    }
    // A readonly member reads the firm's mail; a portal user reads none of it.
    assert_eq!(app.get_as(&readonly, "/api/v1/emails/triage").await.status(), 200);
    assert_eq!(app.get_as(&portal, "/api/v1/emails/triage").await.status(), 403);
    assert_eq!(app.get_as(&portal, &format!("/api/v1/emails/{}", uuid::Uuid::now_v7())).await.status(), 403);
    // The mailbox is as the owner left it.
    assert_eq!(
        json(app.get_as(&owner, &format!("/api/v1/mailboxes/{mailbox_id}")).await).await["data"]["name"],
        "Support"
    );
}

/// Every table the email channel writes holds this firm's rows (the positive control) and
/// shows another firm none of them.
#[actix_web::test]
async fn every_email_table_keeps_its_rows_to_its_firm() {
    let app = spawn_app().await;
    let (other, _, _, _) = signed_in_owner(&app).await;
    let crate::Watched { firm, token, user, mailbox, id } =
        crate::watched(&app, json!({ "auto_acknowledge": "Thanks, we have it." })).await;
    let settings =
        json!({ "closed_reply": "new_conversation", "subject_window_hours": 168, "auto_reply_period_hours": 24 });
    let put = app.client.put(app.url("/api/v1/email/settings")).bearer_auth(&token).json(&settings).send().await;
    assert_eq!(put.unwrap().status(), 200);
    let rule = json!({ "name": "Digests", "conditions": [
        { "field": "subject", "operator": "contains", "value": "weekly digest" } ], "actions": { "ignore": true } });
    assert_eq!(app.post_as(&token, "/api/v1/email/rules", &rule).await.status(), 201);
    let desk = mailbox["address"].as_str().unwrap();
    let raw = format!(
        "From: owner@client.test\r\nTo: {desk}\r\nSubject: Papers\r\nMessage-ID: <{}@client.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n\
         Content-Type: text/plain\r\n\r\nAttached.\r\n--B\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\n%PDF-1.4\r\n--B--\r\n",
        uuid::Uuid::now_v7()
    );
    crate::append(&app, &user, &[raw.into_bytes()], false).await;
    crate::wait_stored(&app, firm.firm_id(), &id, 1, std::time::Duration::from_secs(20)).await;
    let tables = [
        "mailboxes",
        "mailbox_folders",
        "email_settings",
        "email_rules",
        "email_messages",
        "email_parts",
        "email_blobs",
        "email_auto_replies",
    ];
    crate::isolation::assert_isolated(&app.db(), firm.firm_id(), other.firm_id(), &tables).await;
}
