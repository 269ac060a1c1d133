//! Mail kept out of the conversations: auto-replies, list mail, the hub's own mail come
//! back, bounces (marking the failed address on its contact), and what a firm's rule
//! ignores; the rules' dry run.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{json, signed_in_owner, spawn_app};
use crate::{append, count, message, wait_stored};

#[actix_web::test]
async fn automatic_list_looping_bounced_and_ignored_mail_is_triaged() {
    let app = spawn_app().await;
    let crate::Watched { firm, token, user, mailbox, id } = crate::watched(&app, json!({})).await;
    let desk = mailbox["address"].as_str().unwrap().to_owned();

    // A contact whose address will bounce.
    let gone = format!("gone-{}@client.test", uuid::Uuid::now_v7().simple());
    let contact = app.post_as(&token, "/api/v1/contacts", &json!({ "first_name": "Gone", "emails": [gone] })).await;
    assert_eq!(contact.status(), 201);
    let contact = json(contact).await["data"]["id"].as_str().unwrap().to_owned();

    let rule = json!({ "name": "Newsletters out", "conditions": [
        { "field": "subject", "operator": "contains", "value": "weekly digest" } ], "actions": { "ignore": true } });
    assert_eq!(app.post_as(&token, "/api/v1/email/rules", &rule).await.status(), 201);

    let with = |headers: &str, subject: &str| {
        format!(
            "From: someone@client.test\r\nTo: {desk}\r\nSubject: {subject}\r\nMessage-ID: <{}@client.test>\r\n{headers}\r\nbody\r\n",
            uuid::Uuid::now_v7()
        )
        .into_bytes()
    };
    let bounce = format!(
        "From: MAILER-DAEMON@mx.client.test\r\nTo: {desk}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <{}@mx.client.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.client.test\r\n\r\n\
         Final-Recipient: rfc822; {gone}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n--B--\r\n",
        uuid::Uuid::now_v7()
    );
    let own = format!(
        "From: {desk}\r\nTo: {desk}\r\nSubject: Re: x\r\nMessage-ID: <{}@hub.consultantpro.test>\r\n\r\nours\r\n",
        uuid::Uuid::now_v7()
    );
    // Forged to look like the firm's own mail, to steer replies elsewhere.
    let forged = format!(
        "From: {desk}\r\nReply-To: thief@evil.test\r\nTo: {desk}\r\nSubject: Re: Tax return\r\n\
         Message-ID: <{}@evil.test>\r\n\r\nsend it here\r\n",
        uuid::Uuid::now_v7()
    );
    let batch = vec![
        forged.into_bytes(),
        with("Auto-Submitted: auto-replied\r\n", "Out of office"),
        with("X-Autoreply: yes\r\n", "Away"),
        with("List-Id: <news.client.test>\r\n", "News"),
        with("Precedence: bulk\r\n", "Offers"),
        with("", "Your weekly digest"),
        own.into_bytes(),
        bounce.into_bytes(),
        // Asks for no auto-replies but is a person writing: filed.
        with("X-Auto-Response-Suppress: All\r\n", "A real question"),
    ];
    append(&app, &user, &batch, false).await;
    wait_stored(&app, firm.firm_id(), &id, 9, Duration::from_secs(20)).await;

    let triaged = json(app.get_as(&token, "/api/v1/emails/triage").await).await;
    let kinds: Vec<(String, String)> = triaged["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["subject"].as_str().unwrap().to_owned(), e["triage"].as_str().unwrap().to_owned()))
        .collect();
    for (subject, kind) in [
        ("Out of office", "automatic"),
        ("Away", "automatic"),
        ("News", "automatic"),
        ("Offers", "automatic"),
        ("Your weekly digest", "ignored"),
        ("Re: x", "loop"),
        ("Re: Tax return", "loop"),
        ("Undelivered Mail Returned to Sender", "bounce"),
    ] {
        assert!(kinds.contains(&(subject.to_owned(), kind.to_owned())), "{subject} as {kind}: {kinds:?}");
    }
    assert_eq!(kinds.len(), 8, "{kinds:?}");
    let filed = count(
        &app,
        firm.firm_id(),
        "SELECT count(*) AS n FROM email_messages WHERE mailbox_id = $1::uuid AND chat_message_id IS NOT NULL",
        &id,
    )
    .await;
    assert_eq!(filed, 1, "only the person's question became a message");
    let bounced = json(app.get_as(&token, "/api/v1/emails/triage?kind=bounce").await).await;
    assert_eq!(bounced["data"][0]["bounced"]["recipients"][0]["address"], gone.as_str(), "{bounced}");
    assert_eq!(bounced["data"][0]["bounced"]["recipients"][0]["status"], "5.1.1");
    let marked = count(
        &app,
        firm.firm_id(),
        "SELECT count(*) AS n FROM contact_emails WHERE contact_id = $1::uuid AND bouncing_since IS NOT NULL \
            AND bounce_status LIKE '5.1.1%'",
        &contact,
    )
    .await;
    assert_eq!(marked, 1, "the failed address is marked bouncing on its contact");
    assert_eq!(app.get_as(&token, "/api/v1/emails/triage?kind=spam").await.status(), 400);
}

#[actix_web::test]
async fn the_dry_run_shows_triage_rules_and_thread_without_storing() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let member = json(app.get_as(&token, "/api/v1/me").await).await["data"]["user"]["id"].clone();
    let rule = json!({ "name": "VIP", "position": 1, "conditions": [
        { "field": "from", "operator": "ends_with", "value": "@vip.test" },
        { "field": "header", "header": "X-Priority", "operator": "exists" } ],
        "actions": { "assign_to": member, "add_tags": ["VIP"], "set_status": "pending" } });
    let created = app.post_as(&token, "/api/v1/email/rules", &rule).await;
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let raw = String::from_utf8(message("boss@vip.test", "desk@firm.test", "Call me", "now"))
        .unwrap()
        .replace("Subject:", "X-Priority: 1\r\nSubject:");
    let dry = json(app.post_as(&token, "/api/v1/email/rules/dry-run", &json!({ "raw": raw })).await).await;
    assert_eq!(dry["data"]["triage"], serde_json::Value::Null, "{dry}");
    assert_eq!(dry["data"]["rules"]["matched"], json!(["VIP"]));
    assert_eq!(dry["data"]["rules"]["tags"], json!(["vip"]));
    assert_eq!(dry["data"]["rules"]["status"], "pending");
    assert_eq!(dry["data"]["rules"]["assign_to"], member);
    assert_eq!(dry["data"]["conversation_id"], serde_json::Value::Null);
    let auto = String::from_utf8(message("boss@vip.test", "desk@firm.test", "Away", "x"))
        .unwrap()
        .replace("Subject:", "Auto-Submitted: auto-generated\r\nSubject:");
    let dry = json(app.post_as(&token, "/api/v1/email/rules/dry-run", &json!({ "raw": auto })).await).await;
    assert_eq!(dry["data"]["triage"], "automatic", "{dry}");

    for bad in [json!({ "raw": "" }), json!({ "raw": 5 }), json!({}), json!({ "raw": "x", "more": 1 })] {
        let answer = app.post_as(&token, "/api/v1/email/rules/dry-run", &bad).await;
        assert_eq!(answer.status(), 400, "{bad}");
        assert!(json(answer).await["error"]["code"].is_string());
    }
    let bad_rule = json!({ "name": "x", "conditions": [{ "field": "header", "operator": "contains", "value": "a" }],
                           "actions": { "ignore": true } });
    let answer = app.post_as(&token, "/api/v1/email/rules", &bad_rule).await;
    assert_eq!(answer.status(), 400);
    assert!(json(answer).await["error"]["details"]["fields"]["conditions[0].header"].is_string());
    let listed = json(app.get_as(&token, "/api/v1/email/rules").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn another_firms_rules_and_settings_are_out_of_reach_and_bad_settings_refused() {
    let app = spawn_app().await;
    let (_, _, _, owner_a) = signed_in_owner(&app).await;
    let (_, _, _, owner_b) = signed_in_owner(&app).await;
    let rule = json!({ "name": "Mine", "conditions": [{ "field": "subject", "operator": "contains", "value": "x" }],
                       "actions": { "add_tags": ["a"] } });
    let created = json(app.post_as(&owner_a, "/api/v1/email/rules", &rule).await).await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let taken = json!({ "name": "Theirs", "conditions": [{ "field": "subject", "operator": "contains", "value": "y" }],
                        "actions": { "ignore": true } });
    let put = app
        .client
        .put(app.url(&format!("/api/v1/email/rules/{id}")))
        .bearer_auth(&owner_b)
        .json(&taken)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 404);
    assert_eq!(app.delete_as(&owner_b, &format!("/api/v1/email/rules/{id}")).await.status(), 404);
    assert_eq!(json(app.get_as(&owner_b, "/api/v1/email/rules").await).await["data"], json!([]));
    let still = json(app.get_as(&owner_a, "/api/v1/email/rules").await).await;
    assert_eq!(still["data"][0]["name"], "Mine", "firm A's rule is unchanged");
    assert_eq!(still["data"][0]["actions"]["ignore"], false);

    let put_settings = |body: serde_json::Value| {
        app.client.put(app.url("/api/v1/email/settings")).bearer_auth(&owner_a).json(&body).send()
    };
    for (body, field) in [
        (json!({ "closed_reply": "delete", "subject_window_hours": 1, "auto_reply_period_hours": 1 }), "closed_reply"),
        (
            json!({ "closed_reply": "reopen", "subject_window_hours": -1, "auto_reply_period_hours": 1 }),
            "subject_window_hours",
        ),
        (
            json!({ "closed_reply": "reopen", "subject_window_hours": 1, "auto_reply_period_hours": 0 }),
            "auto_reply_period_hours",
        ),
    ] {
        let answer = put_settings(body.clone()).await.unwrap();
        assert_eq!(answer.status(), 400, "{body}");
        assert!(json(answer).await["error"]["details"]["fields"][field].is_string(), "{body}");
    }
    for body in [
        json!([]),
        json!({ "closed_reply": "reopen" }),
        json!({ "closed_reply": 1, "subject_window_hours": 1, "auto_reply_period_hours": 1 }),
    ] {
        let answer = put_settings(body.clone()).await.unwrap();
        assert_eq!(answer.status(), 400, "{body}");
        assert!(json(answer).await["error"]["code"].is_string());
    }
    let settings = json(app.get_as(&owner_a, "/api/v1/email/settings").await).await;
    assert_eq!(settings["data"]["closed_reply"], "reopen", "nothing refused was stored");
    assert_eq!(settings["data"]["subject_window_hours"], 168);
}
