//! Tickets: opened over the API or from a conversation, changed with a timeline, fed by the
//! conversation's turns (an agent's reply is a response, a customer's message reopens), and
//! invisible to other firms and to portal logins.

use consultantpro::domain::memberships::Role;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, add_member, invite_and_join, json, signed_in_owner, spawn_app};

async fn open(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post_as(token, "/api/v1/tickets", &body).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

async fn activity(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    json(app.get_as(token, &format!("/api/v1/tickets/{id}/activity")).await).await["data"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn tickets_change_with_a_timeline_and_a_closed_one_stays_closed() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let (_, staff_id) = add_member(&app.db(), &firm, Role::Staff).await;
    let ticket = open(
        &app,
        &token,
        json!({ "subject": "Invoice total looks wrong", "priority": "high", "team": "Billing", "tags": ["VAT", "vat", "q4"] }),
    )
    .await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    assert_eq!(ticket["status"], "new");
    assert_eq!(ticket["tags"], json!(["vat", "q4"]), "tags are kept once, in lower case");

    for query in ["status=new", "priority=high", "tag=VAT", "team=Billing"] {
        let listed = json(app.get_as(&token, &format!("/api/v1/tickets?{query}")).await).await;
        assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{query}");
    }
    assert!(json(app.get_as(&token, "/api/v1/tickets?status=open").await).await["data"].as_array().unwrap().is_empty());

    let path = format!("/api/v1/tickets/{id}");
    let changed =
        json(app.patch_as(&token, &path, &json!({ "status": "pending", "assignee_user_id": staff_id })).await).await;
    assert_eq!(changed["data"]["status"], "pending");
    let solved = json(app.patch_as(&token, &path, &json!({ "status": "solved" })).await).await;
    assert!(solved["data"]["solved_at"].is_string());
    let reopened = json(app.patch_as(&token, &path, &json!({ "status": "open", "team": null })).await).await;
    assert!(reopened["data"]["solved_at"].is_null());
    assert!(reopened["data"]["team"].is_null());
    json(app.patch_as(&token, &path, &json!({ "status": "solved" })).await).await;
    let closed = json(app.patch_as(&token, &path, &json!({ "status": "closed" })).await).await;
    assert!(closed["data"]["closed_at"].is_string());
    assert!(closed["data"]["solved_at"].is_string(), "closing keeps when it was solved");
    let refused = app.patch_as(&token, &path, &json!({ "priority": "low" })).await;
    assert_eq!(refused.status(), 409);

    let timeline = activity(&app, &token, &id).await;
    let kinds: Vec<_> = timeline.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "changed", "changed", "changed", "changed", "changed"]);
    assert_eq!(timeline[1]["detail"]["status"], json!({ "from": "new", "to": "pending" }));
    assert_eq!(timeline[1]["detail"]["assignee_user_id"]["to"], staff_id.to_string());
    assert_eq!(timeline[3]["detail"]["team"], json!({ "from": "Billing", "to": null }));
}

#[actix_web::test]
async fn bad_input_stores_nothing() {
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let (_, _, stranger, _) = signed_in_owner(&app).await;
    for (body, field) in [
        (json!({}), "subject"),
        (json!({ "subject": " " }), "subject"),
        (json!({ "subject": "x", "tags": (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>() }), "tags"),
        (json!({ "subject": "x", "assignee_user_id": stranger }), "assignee_user_id"),
        (json!({ "subject": "x", "conversation_id": uuid::Uuid::now_v7() }), "conversation_id"),
        (json!({ "subject": "x", "requester_contact_id": uuid::Uuid::now_v7() }), "requester_contact_id"),
    ] {
        let answer = app.post_as(&token, "/api/v1/tickets", &body).await;
        assert_eq!(answer.status(), 400, "{body}");
        let answer = json(answer).await;
        assert!(answer["error"]["details"]["fields"][field].is_string(), "{field}: {answer}");
    }
    for body in [json!({ "subject": "x", "priority": "asap" }), json!({ "subject": "x", "colour": "red" })] {
        let answer = app.post_as(&token, "/api/v1/tickets", &body).await;
        assert_eq!(answer.status(), 400, "{body}");
    }
    assert_eq!(app.get_as(&token, "/api/v1/tickets?status=lost").await.status(), 400);
    assert!(json(app.get_as(&token, "/api/v1/tickets").await).await["data"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn a_ticket_from_a_conversation_takes_its_turns() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let email = format!("client-{}@example.com", uuid::Uuid::now_v7().simple());
    let (contact, conversation) = crate::portal_conversation(&app, &token, &email, "Year-end questions").await;
    let ticket = open(&app, &token, json!({ "conversation_id": conversation })).await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    assert_eq!(ticket["subject"], "Year-end questions");
    assert_eq!(ticket["requester_contact_id"], contact.as_str());
    let second = app.post_as(&token, "/api/v1/tickets", &json!({ "conversation_id": conversation })).await;
    assert_eq!(second.status(), 409, "one open ticket per conversation");

    let post = |who: String, body: &'static str| {
        let path = format!("/api/v1/conversations/{conversation}/messages");
        let app = &app;
        async move { app.post_as(&who, &path, &json!({ "body": body })).await.status() }
    };
    // The agent's reply is the first response and opens the ticket.
    assert_eq!(post(token.clone(), "Happy to help").await, 201);
    let answered = json(app.get_as(&token, &format!("/api/v1/tickets/{id}")).await).await["data"].clone();
    assert_eq!(answered["status"], "open");
    assert!(answered["first_response_at"].is_string());
    let first_response = answered["first_response_at"].clone();

    // Waiting on the client; the client writes back through the portal: reopened.
    app.patch_as(&token, &format!("/api/v1/tickets/{id}"), &json!({ "status": "pending" })).await;
    let portal = invite_and_join(&app, &token, &firm, &email, "client", Some(&contact)).await;
    assert_eq!(post(portal.clone(), "Here are the figures").await, 201);
    let reopened = json(app.get_as(&token, &format!("/api/v1/tickets/{id}")).await).await["data"].clone();
    assert_eq!(reopened["status"], "open");
    assert!(reopened["last_customer_message_at"].is_string());
    // A second reply does not move the first response.
    assert_eq!(post(token.clone(), "Thanks, looking now").await, 201);
    let later = json(app.get_as(&token, &format!("/api/v1/tickets/{id}")).await).await["data"].clone();
    assert_eq!(later["first_response_at"], first_response);

    // Solved, then the client writes again: reopened; once closed, nothing moves it.
    app.patch_as(&token, &format!("/api/v1/tickets/{id}"), &json!({ "status": "solved" })).await;
    assert_eq!(post(portal.clone(), "One more thing").await, 201);
    assert_eq!(json(app.get_as(&token, &format!("/api/v1/tickets/{id}")).await).await["data"]["status"], "open");
    app.patch_as(&token, &format!("/api/v1/tickets/{id}"), &json!({ "status": "closed" })).await;
    assert_eq!(post(portal.clone(), "And another").await, 201);
    assert_eq!(json(app.get_as(&token, &format!("/api/v1/tickets/{id}")).await).await["data"]["status"], "closed");

    let kinds: Vec<String> =
        activity(&app, &token, &id).await.iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        kinds,
        [
            "created",
            "agent_response",
            "changed",
            "customer_message",
            "reopened",
            "agent_response",
            "changed",
            "customer_message",
            "reopened",
            "changed"
        ]
    );
    // A closed ticket frees its conversation for a new one; portal logins see no tickets.
    open(&app, &token, json!({ "conversation_id": conversation })).await;
    assert_eq!(app.get_as(&portal, "/api/v1/tickets").await.status(), 403);
    assert_eq!(app.get_as(&portal, &format!("/api/v1/tickets/{id}")).await.status(), 403);
}

#[actix_web::test]
async fn another_firm_sees_no_ticket_and_readonly_members_only_read() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let conversation = json(app.post_as(&token, "/api/v1/conversations", &json!({ "subject": "Internal" })).await)
        .await["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ticket = open(&app, &token, json!({ "subject": "Ours" })).await;
    let id = ticket["id"].as_str().unwrap();
    let (_, _, _, other) = signed_in_owner(&app).await;
    assert_eq!(app.get_as(&other, &format!("/api/v1/tickets/{id}")).await.status(), 404);
    assert_eq!(
        app.patch_as(&other, &format!("/api/v1/tickets/{id}"), &json!({ "status": "closed" })).await.status(),
        404
    );
    assert_eq!(app.get_as(&other, &format!("/api/v1/tickets/{id}/activity")).await.status(), 404);
    assert!(json(app.get_as(&other, "/api/v1/tickets").await).await["data"].as_array().unwrap().is_empty());
    let borrowed = app.post_as(&other, "/api/v1/tickets", &json!({ "conversation_id": conversation })).await;
    assert_eq!(borrowed.status(), 400, "another firm's conversation does not exist");

    let (email, _) = add_member(&app.db(), &firm, Role::Readonly).await;
    let readonly = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(&readonly, &format!("/api/v1/tickets/{id}")).await.status(), 200);
    assert_eq!(app.post_as(&readonly, "/api/v1/tickets", &json!({ "subject": "Mine" })).await.status(), 403);
    assert_eq!(json(app.get_as(&token, &format!("/api/v1/tickets/{id}")).await).await["data"]["status"], "new");
}
