use consultantpro::domain::memberships::Role;

use crate::helpers::{PASSWORD, add_member, json, portal_user, signed_in_owner, spawn_app};
use crate::{conversation, post};

#[actix_web::test]
async fn conversations_are_created_filtered_and_paged() {
    let app = spawn_app().await;
    let (firm, _, owner_id, owner) = signed_in_owner(&app).await;
    let (_, staff_id) = add_member(&app.db(), &firm, Role::Staff).await;
    let contact =
        json(app.post_as(&owner, "/api/v1/contacts", &serde_json::json!({ "first_name": "Cleo" })).await).await;
    let contact_id = contact["data"]["id"].as_str().unwrap().to_owned();

    let first = conversation(&app, &owner, serde_json::json!({ "subject": "Quarterly review" })).await;
    let second = conversation(
        &app,
        &owner,
        serde_json::json!({ "subject": "Invoice question", "channel": "email", "assignee_user_id": staff_id,
                            "participants": { "members": [staff_id], "contacts": [contact_id] } }),
    )
    .await;
    let third = conversation(&app, &owner, serde_json::json!({ "subject": "Onboarding" })).await;
    let response = app
        .patch_as(&owner, &format!("/api/v1/conversations/{third}"), &serde_json::json!({ "status": "closed" }))
        .await;
    assert_eq!(response.status(), 200);

    let got = json(app.get_as(&owner, &format!("/api/v1/conversations/{second}")).await).await;
    assert_eq!(got["data"]["channel"], "email");
    assert_eq!(got["data"]["participants"]["members"], serde_json::json!([owner_id, staff_id]));
    assert_eq!(got["data"]["participants"]["contacts"], serde_json::json!([contact_id]));

    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
    };
    let all = json(app.get_as(&owner, "/api/v1/conversations").await).await;
    assert_eq!(ids(&all), [third.clone(), second.clone(), first.clone()], "newest first");
    for (query, expected) in [
        ("status=closed", vec![third.clone()]),
        ("status=open", vec![second.clone(), first.clone()]),
        ("channel=email", vec![second.clone()]),
        (&format!("assignee_user_id={staff_id}") as &str, vec![second.clone()]),
        (&format!("participant={contact_id}"), vec![second.clone()]),
        (&format!("participant={staff_id}"), vec![second.clone()]),
        ("q=REVIEW", vec![first.clone()]),
    ] {
        let listed = json(app.get_as(&owner, &format!("/api/v1/conversations?{query}")).await).await;
        assert_eq!(ids(&listed), expected, "{query}");
    }

    // Pages stay stable while conversations are added.
    let page = json(app.get_as(&owner, "/api/v1/conversations?limit=2").await).await;
    assert_eq!(ids(&page), [third.clone(), second.clone()]);
    conversation(&app, &owner, serde_json::json!({ "subject": "Arrived between pages" })).await;
    let next = page["meta"]["next"].as_str().unwrap();
    let page = json(app.get_as(&owner, next).await).await;
    assert_eq!(ids(&page), std::slice::from_ref(&first));
    assert!(page["meta"]["next"].is_null());
}

#[actix_web::test]
async fn messages_get_gapless_seqs_resends_are_idempotent_and_unread_counts_follow() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (staff_email, staff_id) = add_member(&app.db(), &firm, Role::Staff).await;
    let staff = app.login_ok(&firm.slug, &staff_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let id =
        conversation(&app, &owner, serde_json::json!({ "subject": "Seqs", "participants": { "members": [staff_id] } }))
            .await;
    let path = format!("/api/v1/conversations/{id}/messages");

    assert_eq!(post(&app, &owner, &id, "one").await, 1);
    let first = app.post_as(&owner, &path, &serde_json::json!({ "body": "two", "client_msg_id": "c-2" })).await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    let again = app.post_as(&owner, &path, &serde_json::json!({ "body": "two", "client_msg_id": "c-2" })).await;
    assert_eq!(again.status(), 200, "a resend is not stored twice");
    assert_eq!(json(again).await["data"]["id"], first["data"]["id"]);

    let keyed = |key: &'static str| {
        app.client
            .post(app.url(&path))
            .bearer_auth(&owner)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({ "body": "three" }))
    };
    assert_eq!(keyed("k-3").send().await.unwrap().status(), 201);
    let repeat = keyed("k-3").send().await.unwrap();
    assert_eq!(repeat.status(), 200);
    assert_eq!(json(repeat).await["data"]["seq"], 3);
    let clash = app
        .client
        .post(app.url(&path))
        .bearer_auth(&owner)
        .header("Idempotency-Key", "k-4")
        .json(&serde_json::json!({ "body": "x", "client_msg_id": "other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(clash.status(), 400);

    let seqs = |body: serde_json::Value| -> Vec<i64> {
        body["data"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
    };
    assert_eq!(seqs(json(app.get_as(&owner, &path).await).await), [1, 2, 3]);
    assert_eq!(seqs(json(app.get_as(&owner, &format!("{path}?after_seq=1")).await).await), [2, 3]);
    assert_eq!(seqs(json(app.get_as(&owner, &format!("{path}?before_seq=3&limit=1")).await).await), [2]);

    // The author has read their own messages; the other participant has not.
    let unread = |token: String| {
        let app = &app;
        let id = id.clone();
        async move { json(app.get_as(&token, &format!("/api/v1/conversations/{id}")).await).await["data"]["unread"].clone() }
    };
    assert_eq!(unread(owner.clone()).await, 0);
    assert_eq!(unread(staff.clone()).await, 3);
    let read = app.post_as(&staff, &format!("/api/v1/conversations/{id}/read"), &serde_json::json!({ "seq": 2 })).await;
    assert_eq!(json(read).await["data"]["last_read_seq"], 2);
    assert_eq!(unread(staff.clone()).await, 1);
    let backwards =
        app.post_as(&staff, &format!("/api/v1/conversations/{id}/read"), &serde_json::json!({ "seq": 1 })).await;
    assert_eq!(json(backwards).await["data"]["last_read_seq"], 2, "receipts never move back");
    let listed = json(app.get_as(&staff, "/api/v1/conversations").await).await;
    assert_eq!(listed["data"][0]["unread"], 1);
    // Read receipts: the conversation shows each reader's position to the others.
    let shown = json(app.get_as(&owner, &format!("/api/v1/conversations/{id}")).await).await;
    let staff_read = shown["data"]["reads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user_id"] == staff_id.to_string())
        .map(|r| r["last_read_seq"].clone());
    assert_eq!(staff_read, Some(serde_json::json!(2)), "{shown}");
}

#[actix_web::test]
async fn concurrent_senders_get_distinct_gapless_seqs() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Busy" })).await;
    let sends = (0..20).map(|i| post(&app, &owner, &id, Box::leak(format!("message {i}").into_boxed_str())));
    let mut seqs = futures_util::future::join_all(sends).await;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
}

#[actix_web::test]
async fn bad_input_is_refused_with_the_field() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Strict" })).await;
    let cases = [
        (serde_json::json!({ "subject": "  " }), Some("subject")),
        (serde_json::json!({ "subject": "x".repeat(301) }), Some("subject")),
        (serde_json::json!({ "subject": "a", "channel": "fax" }), None),
        (
            serde_json::json!({ "subject": "a", "participants": { "members": [uuid::Uuid::now_v7()] } }),
            Some("participants"),
        ),
        (
            serde_json::json!({ "subject": "a", "participants": { "contacts": [uuid::Uuid::now_v7()] } }),
            Some("participants"),
        ),
        (serde_json::json!({ "subject": "a", "assignee_user_id": uuid::Uuid::now_v7() }), Some("assignee_user_id")),
        (serde_json::json!({ "subject": "a", "surprise": true }), None),
    ];
    for (body, field) in cases {
        let response = app.post_as(&owner, "/api/v1/conversations", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error = json(response).await;
        assert_eq!(error["error"]["code"], "validation_error", "{body}");
        if let Some(field) = field {
            assert!(error["error"]["details"]["fields"][field].is_string(), "{body}: {error}");
        }
    }
    let messages = format!("/api/v1/conversations/{id}/messages");
    for body in [
        serde_json::json!({ "body": "" }),
        serde_json::json!({ "body": "x".repeat(20_001) }),
        serde_json::json!({ "body": "x", "client_msg_id": "" }),
        serde_json::json!({ "text": "wrong field" }),
    ] {
        let response = app.post_as(&owner, &messages, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(json(response).await["error"]["code"], "validation_error");
    }
    for query in ["limit=0", "limit=201", "after_seq=-1", "after_seq=abc"] {
        assert_eq!(app.get_as(&owner, &format!("{messages}?{query}")).await.status(), 400, "{query}");
    }
    let patch = format!("/api/v1/conversations/{id}");
    assert_eq!(app.patch_as(&owner, &patch, &serde_json::json!({ "status": "archived" })).await.status(), 400);
    let read = app.post_as(&owner, &format!("/api/v1/conversations/{id}/read"), &serde_json::json!({ "seq": 5 })).await;
    assert_eq!(read.status(), 400, "cannot read past the last message");
    assert_eq!(app.get_as(&owner, "/api/v1/conversations/not-a-uuid").await.status(), 400);
    // Nothing was stored by any of it.
    let stored = json(app.get_as(&owner, &messages).await).await;
    assert!(stored["data"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn another_firms_conversations_do_not_exist() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Private" })).await;
    post(&app, &owner, &id, "secret").await;
    let (_, _, _, intruder) = signed_in_owner(&app).await;
    let path = format!("/api/v1/conversations/{id}");
    assert_eq!(app.get_as(&intruder, &path).await.status(), 404);
    assert_eq!(app.patch_as(&intruder, &path, &serde_json::json!({ "status": "closed" })).await.status(), 404);
    assert_eq!(app.get_as(&intruder, &format!("{path}/messages")).await.status(), 404);
    let sent = app.post_as(&intruder, &format!("{path}/messages"), &serde_json::json!({ "body": "hi" })).await;
    assert_eq!(sent.status(), 404);
    let read = app.post_as(&intruder, &format!("{path}/read"), &serde_json::json!({ "seq": 1 })).await;
    assert_eq!(read.status(), 404);
    let still = json(app.get_as(&owner, &path).await).await;
    assert_eq!(
        (still["data"]["status"].as_str(), still["data"]["last_seq"].as_i64()),
        (Some("open"), Some(1)),
        "{still}"
    );
    assert!(json(app.get_as(&intruder, "/api/v1/conversations").await).await["data"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn readonly_members_read_but_cannot_send() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (email, _) = add_member(&app.db(), &firm, Role::Readonly).await;
    let reader = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Look, don't touch" })).await;
    post(&app, &owner, &id, "hello").await;
    assert_eq!(app.get_as(&reader, &format!("/api/v1/conversations/{id}/messages")).await.status(), 200);
    let sent = app
        .post_as(&reader, &format!("/api/v1/conversations/{id}/messages"), &serde_json::json!({ "body": "x" }))
        .await;
    assert_eq!(sent.status(), 403);
    let started = app.post_as(&reader, "/api/v1/conversations", &serde_json::json!({ "subject": "x" })).await;
    assert_eq!(started.status(), 403);
    let stored = json(app.get_as(&owner, &format!("/api/v1/conversations/{id}/messages")).await).await;
    assert_eq!(stored["data"].as_array().unwrap().len(), 1, "only the owner's message: {stored}");
}

#[actix_web::test]
async fn portal_contacts_see_only_their_conversations() {
    let app = spawn_app().await;
    let (firm, _, owner_id, owner) = signed_in_owner(&app).await;
    let (portal, contact_id) = portal_user(&app, &firm.slug, &owner).await;
    let theirs = conversation(
        &app,
        &owner,
        serde_json::json!({ "subject": "Your engagement", "channel": "portal", "participants": { "contacts": [contact_id] } }),
    )
    .await;
    let internal = conversation(&app, &owner, serde_json::json!({ "subject": "Internal notes on them" })).await;

    let listed = json(app.get_as(&portal, "/api/v1/conversations").await).await;
    let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [theirs.as_str()]);
    assert_eq!(app.get_as(&portal, &format!("/api/v1/conversations/{internal}")).await.status(), 404);
    assert_eq!(app.get_as(&portal, &format!("/api/v1/conversations/{internal}/messages")).await.status(), 404);
    let sent = app
        .post_as(&portal, &format!("/api/v1/conversations/{internal}/messages"), &serde_json::json!({ "body": "x" }))
        .await;
    assert_eq!(sent.status(), 404);
    let untouched = json(app.get_as(&owner, &format!("/api/v1/conversations/{internal}")).await).await;
    assert_eq!(untouched["data"]["last_seq"], 0, "{untouched}");
    let reply = app
        .post_as(
            &portal,
            &format!("/api/v1/conversations/{theirs}/messages"),
            &serde_json::json!({ "body": "Thanks!" }),
        )
        .await;
    assert_eq!(reply.status(), 201);
    assert_eq!(json(reply).await["data"]["author_contact_id"], contact_id);
    // Read receipts: the portal login sees those of the members taking part (the owner), not
    // of a colleague who only looked; the firm sees everyone's.
    let (staff_email, staff_id) = add_member(&app.db(), &firm, Role::Staff).await;
    let staff = app.login_ok(&firm.slug, &staff_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    for token in [&owner, &staff, &portal] {
        let read =
            app.post_as(token, &format!("/api/v1/conversations/{theirs}/read"), &serde_json::json!({ "seq": 1 })).await;
        assert_eq!(read.status(), 200);
    }
    let readers = |body: serde_json::Value| -> Vec<String> {
        body["data"]["reads"].as_array().unwrap().iter().map(|r| r["user_id"].as_str().unwrap().to_owned()).collect()
    };
    let seen_by_portal = readers(json(app.get_as(&portal, &format!("/api/v1/conversations/{theirs}")).await).await);
    assert!(seen_by_portal.contains(&owner_id.to_string()), "{seen_by_portal:?}");
    assert!(!seen_by_portal.contains(&staff_id.to_string()), "{seen_by_portal:?}");
    assert_eq!(seen_by_portal.len(), 2, "the owner's and its own: {seen_by_portal:?}");
    let seen_by_owner = readers(json(app.get_as(&owner, &format!("/api/v1/conversations/{theirs}")).await).await);
    assert_eq!(seen_by_owner.len(), 3, "{seen_by_owner:?}");
    // A portal login starts portal conversations only, with itself in them.
    let own = app
        .post_as(&portal, "/api/v1/conversations", &serde_json::json!({ "subject": "A question", "channel": "portal" }))
        .await;
    assert_eq!(own.status(), 201);
    assert_eq!(json(own).await["data"]["participants"]["contacts"], serde_json::json!([contact_id]));
    // The rest of the firm is closed to it.
    for path in ["/api/v1/clients", "/api/v1/contacts", "/api/v1/members", "/api/v1/leads"] {
        assert_eq!(app.get_as(&portal, path).await.status(), 403, "{path}");
    }
    // A portal membership needs a contact with portal access.
    let plain =
        json(app.post_as(&owner, "/api/v1/contacts", &serde_json::json!({ "first_name": "NoPortal" })).await).await;
    for body in [
        serde_json::json!({ "email": "p1@example.com", "role": "client" }),
        serde_json::json!({ "email": "p2@example.com", "role": "client", "contact_id": plain["data"]["id"] }),
        serde_json::json!({ "email": "p3@example.com", "role": "staff", "contact_id": contact_id }),
    ] {
        let response = app.post_as(&owner, "/api/v1/members", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(json(response).await["error"]["details"]["fields"]["contact_id"].is_string());
    }
}

#[actix_web::test]
async fn a_clients_conversations_appear_on_its_timeline_at_their_latest_message() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client =
        json(app.post_as(&owner, "/api/v1/clients", &serde_json::json!({ "name": "Threaded Ltd" })).await).await;
    let client_id = client["data"]["id"].as_str().unwrap().to_owned();
    let older =
        conversation(&app, &owner, serde_json::json!({ "subject": "Older thread", "client_id": client_id })).await;
    let note = app
        .post_as(&owner, &format!("/api/v1/clients/{client_id}/notes"), &serde_json::json!({ "body": "A note" }))
        .await;
    assert_eq!(note.status(), 201);
    conversation(&app, &owner, serde_json::json!({ "subject": "Not about them" })).await;
    // A new message moves the older thread to the top.
    post(&app, &owner, &older, "fresh news").await;
    let timeline = json(app.get_as(&owner, &format!("/api/v1/clients/{client_id}/timeline")).await).await;
    let entries = timeline["data"].as_array().unwrap();
    let shown: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["kind"].as_str().unwrap(), e["text"].as_str().unwrap())).collect();
    assert_eq!(shown, [("conversation", "Older thread"), ("note", "A note"), ("change", "client.created")]);
    assert_eq!(entries[0]["detail"]["messages"], 1);
    let bad = app
        .post_as(
            &owner,
            "/api/v1/conversations",
            &serde_json::json!({ "subject": "x", "client_id": uuid::Uuid::now_v7() }),
        )
        .await;
    assert_eq!(bad.status(), 400);
}
